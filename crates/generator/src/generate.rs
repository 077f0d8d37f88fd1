//! Text from the model: the chat template, decoding (greedy, or
//! temperature with nucleus top-p from a seeded stream), stop strings and
//! end-of-turn tokens, a token limit, text streamed to a callback as it
//! becomes final, and the log-probabilities a judge or a likelihood reads.

use std::ops::Range;
use std::path::Path;

use burn::tensor::Device;
use rlrag_reward::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::GeneratorError;
use crate::gguf::Gguf;
use crate::llama::{KvCache, Llama, LlamaConfig};
use crate::tokenizer::GgufTokenizer;

fn bad(reason: impl Into<String>) -> GeneratorError {
    GeneratorError::Model {
        reason: reason.into(),
    }
}

/// ChatML (`<|im_start|>role\n…<|im_end|>\n`, SmolLM2's and Qwen2.5's),
/// with the default system message the file's template adds when a
/// conversation has none. Other templates are refused by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatTemplate {
    /// The system message put first when the conversation has none.
    pub default_system: Option<String>,
}

impl ChatTemplate {
    /// The template of a GGUF file (`tokenizer.chat_template`, Jinja): it
    /// must be ChatML; its default system message is the literal its
    /// template writes after `<|im_start|>system\n` (none: no such
    /// literal, as when the caller's system message is the only one).
    pub fn from_gguf(file: &Gguf) -> Result<Self, GeneratorError> {
        let template = file
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("no tokenizer.chat_template"))?;
        Self::from_jinja(template)
    }

    /// The template from its Jinja text (see [`ChatTemplate::from_gguf`]).
    pub fn from_jinja(template: &str) -> Result<Self, GeneratorError> {
        if !(template.contains("<|im_start|>") && template.contains("<|im_end|>")) {
            return Err(bad(
                "the chat template is not ChatML (<|im_start|>…<|im_end|>), the only one read",
            ));
        }
        // The newline after the role is a real one in some templates
        // (SmolLM2's) and a Jinja escape, backslash and n, in others (Qwen's).
        let default_system = ["<|im_start|>system\n", "<|im_start|>system\\n"]
            .iter()
            .flat_map(|marker| {
                template
                    .match_indices(marker)
                    .map(move |(at, _)| at + marker.len())
            })
            .filter_map(|start| {
                let rest = &template[start..];
                let end = rest.find("<|im_end|>")?;
                let text = &rest[..end];
                // A literal, not Jinja that splices the caller's message in.
                let literal = !text.is_empty()
                    && !text.contains(['\'', '"', '{', '}', '+'])
                    && !text.contains("\\n");
                literal.then_some((start, text.to_owned()))
            })
            .min_by_key(|(start, _)| *start)
            .map(|(_, text)| text);
        Ok(Self { default_system })
    }

    /// The prompt for `messages` (`(role, content)` in order) up to the
    /// assistant's turn.
    pub fn prompt(&self, messages: &[(&str, &str)]) -> String {
        let mut out = String::new();
        if let (Some(system), false) = (
            &self.default_system,
            messages.first().is_some_and(|(role, _)| *role == "system"),
        ) {
            out.push_str(&format!("<|im_start|>system\n{system}<|im_end|>\n"));
        }
        for (role, content) in messages {
            out.push_str(&format!("<|im_start|>{role}\n{content}<|im_end|>\n"));
        }
        out.push_str("<|im_start|>assistant\n");
        out
    }
}

/// How each next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Softmax temperature; 0 (or less): greedy, the most likely token.
    pub temperature: f32,
    /// Nucleus sampling: only the most likely tokens whose probabilities
    /// sum to `top_p` are drawn from (1: all).
    pub top_p: f32,
    /// Seed of the draws (one stream per generation).
    pub seed: u64,
}

impl Sampling {
    /// The most likely token each time.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
        }
    }

    /// The token after `logits` (one row over the vocabulary).
    fn pick(&self, logits: &[f32], rng: &mut SplitMix64) -> u32 {
        let argmax = || {
            logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
                .map_or(0, |(i, _)| i as u32)
        };
        if self.temperature <= 0.0 || !self.temperature.is_finite() {
            return argmax();
        }
        let t = f64::from(self.temperature);
        let top = logits
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .fold(f32::NEG_INFINITY, f32::max);
        if !top.is_finite() {
            return argmax();
        }
        let mut probs: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .filter(|(_, x)| x.is_finite())
            .map(|(i, &x)| (i as u32, ((f64::from(x) - f64::from(top)) / t).exp()))
            .collect();
        let total: f64 = probs.iter().map(|p| p.1).sum();
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        // The smallest set of most likely tokens holding `top_p` of the mass.
        let want = f64::from(self.top_p.clamp(0.0, 1.0)) * total;
        let mut kept = 0.0;
        let mut n = 0;
        for (_, p) in &probs {
            kept += p;
            n += 1;
            if kept >= want {
                break;
            }
        }
        let mut draw = f64::from(rng.next_f32()) * kept;
        for (id, p) in &probs[..n] {
            if draw < *p {
                return *id;
            }
            draw -= p;
        }
        probs[n.saturating_sub(1)].0
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Most new tokens.
    pub max_tokens: usize,
    /// How tokens are chosen.
    pub sampling: Sampling,
    /// Generation ends before the first of these strings (not included).
    pub stop: Vec<String>,
    /// How many of the most likely alternatives to keep with each new
    /// token's log-probability ([`Generation::steps`]; 0: none kept).
    pub top_logprobs: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_tokens: 64,
            sampling: Sampling::greedy(),
            stop: Vec::new(),
            top_logprobs: 0,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model ended its turn (an end-of-turn token) or wrote a stop string.
    Stop,
    /// `max_tokens` new tokens were written.
    Length,
    /// The callback asked to stop.
    Cancelled,
}

/// What [`Generator::generate`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The text (up to a stop string; no end-of-turn token).
    pub text: String,
    /// The tokens generated (the end-of-turn token included, when one came).
    pub tokens: Vec<u32>,
    /// Tokens of the prompt.
    pub prompt_tokens: usize,
    /// Why it ended.
    pub finish: Finish,
    /// Per new token, its log-probability and the most likely
    /// alternatives', when [`GenerateOptions::top_logprobs`] asked for them
    /// (empty otherwise).
    pub steps: Vec<StepLogprobs>,
}

/// The log-probabilities of one decoding step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepLogprobs {
    /// The token chosen.
    pub token: u32,
    /// Its log-probability.
    pub logprob: f32,
    /// The most likely tokens and their log-probabilities, best first.
    pub top: Vec<(u32, f32)>,
}

/// One token of a text with its log-probability given the tokens before it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The token.
    pub id: u32,
    /// Its bytes in the text.
    pub span: Range<usize>,
    /// `log p(token | earlier tokens)`; `None` for the first token (nothing
    /// comes before it: these models have no BOS token).
    pub logprob: Option<f32>,
}

/// A generator's model directory: `config.json` ([`GeneratorConfig`]),
/// `model.safetensors` (f32) and `tokenizer.json`.
pub const CONFIG_FILE: &str = "config.json";
/// See [`CONFIG_FILE`].
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// See [`CONFIG_FILE`].
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// `config.json` of a generator's model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    /// Always `rlrag-generator` (what tells this directory from an encoder's).
    pub kind: String,
    /// The decoder's shape.
    pub model: LlamaConfig,
    /// The chat template.
    pub chat: ChatTemplate,
    /// Tokens that end the model's turn.
    pub end_tokens: Vec<u32>,
}

/// What [`GeneratorConfig::kind`] holds.
const KIND: &str = "rlrag-generator";

/// Text in, text out: a llama-family model, its tokenizer and its chat
/// template, from one GGUF file or a model directory.
#[derive(Debug)]
pub struct Generator {
    model: Llama,
    tokenizer: GgufTokenizer,
    template: ChatTemplate,
    /// Tokens that end the model's turn.
    end: Vec<u32>,
}

impl Generator {
    /// The generator a GGUF file holds (`bytes`: the whole file).
    pub fn from_gguf(bytes: &[u8], device: &Device) -> Result<Self, GeneratorError> {
        let file = Gguf::parse(bytes)?;
        let tokenizer = GgufTokenizer::from_gguf(&file)?;
        let template = ChatTemplate::from_gguf(&file)?;
        let model = Llama::from_gguf(bytes, device)?;
        // llama.cpp's end-of-generation tokens: the file's EOS and the
        // end-of-turn tokens of the chat formats.
        let mut end: Vec<u32> = file
            .metadata
            .get("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.as_u64())
            .and_then(|v| u32::try_from(v).ok())
            .into_iter()
            .collect();
        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"] {
            end.extend(tokenizer.token_id(name));
        }
        end.sort_unstable();
        end.dedup();
        Self::new(model, tokenizer, template, end)
    }

    /// A generator from its parts; the tokenizer must fit the model's
    /// vocabulary and the end tokens the tokenizer's.
    pub fn new(
        model: Llama,
        tokenizer: GgufTokenizer,
        template: ChatTemplate,
        end: Vec<u32>,
    ) -> Result<Self, GeneratorError> {
        if tokenizer.vocab_size() > model.config.vocab_size {
            return Err(bad(format!(
                "{} tokens in the vocabulary, {} rows of embeddings",
                tokenizer.vocab_size(),
                model.config.vocab_size
            )));
        }
        if let Some(t) = end.iter().find(|&&t| t as usize >= tokenizer.vocab_size()) {
            return Err(bad(format!("end token {t} is past the vocabulary")));
        }
        Ok(Self {
            model,
            tokenizer,
            template,
            end,
        })
    }

    /// The same tokenizer and template with another model of the same
    /// vocabulary (trained weights).
    pub fn with_model(&self, model: Llama) -> Result<Self, GeneratorError> {
        Self::new(
            model,
            self.tokenizer.clone(),
            self.template.clone(),
            self.end.clone(),
        )
    }

    /// The model directory's files ([`CONFIG_FILE`], [`WEIGHTS_FILE`],
    /// [`TOKENIZER_FILE`]) as bytes.
    pub fn dir_files(&self) -> Result<Vec<(&'static str, Vec<u8>)>, GeneratorError> {
        let config = GeneratorConfig {
            kind: KIND.into(),
            model: self.model.config.clone(),
            chat: self.template.clone(),
            end_tokens: self.end.clone(),
        };
        let config = serde_json::to_vec_pretty(&config).map_err(|e| bad(e.to_string()))?;
        Ok(vec![
            (CONFIG_FILE, config),
            (WEIGHTS_FILE, self.model.weights_safetensors()?),
            (TOKENIZER_FILE, self.tokenizer.to_json()?.into_bytes()),
        ])
    }

    /// The generator a model directory's files hold.
    pub fn from_dir_files(
        config: &[u8],
        weights: Vec<u8>,
        tokenizer: &[u8],
        device: &Device,
    ) -> Result<Self, GeneratorError> {
        let config: GeneratorConfig =
            serde_json::from_slice(config).map_err(|e| bad(format!("{CONFIG_FILE}: {e}")))?;
        if config.kind != KIND {
            return Err(bad(format!(
                "{CONFIG_FILE} is of a `{}`, not an {KIND}",
                config.kind
            )));
        }
        let tokenizer = std::str::from_utf8(tokenizer)
            .map_err(|e| bad(format!("{TOKENIZER_FILE}: {e}")))
            .and_then(GgufTokenizer::from_json)?;
        let model = Llama::from_safetensors(config.model, weights, device)?;
        Self::new(model, tokenizer, config.chat, config.end_tokens)
    }

    /// The generator in model directory `dir`.
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self, GeneratorError> {
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| bad(format!("{}: {e}", dir.join(name).display())))
        };
        Self::from_dir_files(
            &read(CONFIG_FILE)?,
            read(WEIGHTS_FILE)?,
            &read(TOKENIZER_FILE)?,
            device,
        )
    }

    /// The generator at `path`: a model directory (it holds
    /// [`CONFIG_FILE`]), a GGUF file, or a directory holding exactly one
    /// `.gguf` file.
    pub fn open(path: &Path, device: &Device) -> Result<Self, GeneratorError> {
        let read =
            |file: &Path| std::fs::read(file).map_err(|e| bad(format!("{}: {e}", file.display())));
        if path.join(CONFIG_FILE).is_file() {
            return Self::load_dir(path, device);
        }
        if !path.is_dir() {
            return Self::from_gguf(&read(path)?, device);
        }
        let mut found: Vec<std::path::PathBuf> = std::fs::read_dir(path)
            .map_err(|e| bad(format!("{}: {e}", path.display())))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
            .collect();
        found.sort();
        match found.as_slice() {
            [one] => Self::from_gguf(&read(one)?, device),
            [] => Err(bad(format!(
                "{}: the directory holds no .gguf file",
                path.display()
            ))),
            many => Err(bad(format!(
                "{}: the directory holds {} .gguf files: name one",
                path.display(),
                many.len()
            ))),
        }
    }

    /// The decoder.
    pub fn model(&self) -> &Llama {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    /// The chat template.
    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// Whether `id` ends the model's turn.
    pub fn is_end(&self, id: u32) -> bool {
        self.end.contains(&id)
    }

    /// Continue `prompt` (text; control tokens such as `<|im_start|>` are
    /// read as such), calling `on_text` with each piece of the answer as
    /// it becomes final (whole characters, never part of a stop string);
    /// `on_text` returning `false` ends generation.
    pub fn generate(
        &self,
        prompt: &str,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, GeneratorError> {
        let ids = self.tokenizer.encode(prompt)?;
        self.generate_ids(&ids, options, on_text)
    }

    /// [`Generator::generate`] from token ids.
    pub fn generate_ids(
        &self,
        prompt: &[u32],
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, GeneratorError> {
        self.check_prompt(prompt)?;
        self.decode(prompt, KvCache::default(), None, options, on_text)
    }

    /// `text`'s tokens with their log-probabilities (as
    /// [`Generator::token_logprobs`]), then a generation after it (as
    /// [`Generator::generate`]), from one forward pass over the text: what
    /// an echoed completion with log-probabilities needs.
    pub fn echo_generate(
        &self,
        text: &str,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<(Vec<TokenLogprob>, Generation), GeneratorError> {
        let ids = self.tokenizer.encode(text)?;
        self.check_prompt(&ids)?;
        let mut cache = KvCache::default();
        let (values, vocab) = rows(self.model.extend(&ids, &mut cache)?)?;
        let scored = self.spans(text, &ids, &values, vocab)?;
        let last = values[(ids.len() - 1) * vocab..].to_vec();
        let generation = self.decode(&ids, cache, Some(last), options, on_text)?;
        Ok((scored, generation))
    }

    fn check_prompt(&self, prompt: &[u32]) -> Result<(), GeneratorError> {
        if prompt.is_empty() {
            return Err(bad("an empty prompt"));
        }
        if prompt.len() >= self.model.config.context {
            return Err(bad(format!(
                "a prompt of {} tokens leaves no room in the model's context of {}",
                prompt.len(),
                self.model.config.context
            )));
        }
        Ok(())
    }

    /// Decode after `prompt`: `cache` holds what has run of it already and
    /// `first` the logits after its last token when they were computed.
    fn decode(
        &self,
        prompt: &[u32],
        mut cache: KvCache,
        mut first: Option<Vec<f32>>,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, GeneratorError> {
        let room = self.model.config.context.saturating_sub(prompt.len());
        let max_tokens = options.max_tokens.min(room);
        let mut rng = SplitMix64::new(options.sampling.seed);
        let mut tokens = Vec::new();
        let mut steps = Vec::new();
        let mut stream = Stream::new(&options.stop);
        let mut next = prompt.to_vec();
        let finish = loop {
            if tokens.len() >= max_tokens {
                break Finish::Length;
            }
            let logits = match first.take() {
                Some(logits) => logits,
                None => self.model.next_logits(&next, &mut cache)?,
            };
            let token = options.sampling.pick(&logits, &mut rng);
            tokens.push(token);
            if options.top_logprobs > 0 {
                let lp = log_softmax(&logits);
                steps.push(StepLogprobs {
                    token,
                    logprob: lp.get(token as usize).copied().unwrap_or(f32::NEG_INFINITY),
                    top: top_k(&lp, options.top_logprobs),
                });
            }
            if self.is_end(token) {
                break Finish::Stop;
            }
            match stream.push(self.tokenizer.token_bytes(token).unwrap_or(&[]), on_text) {
                Step::More => {}
                Step::Stop => break Finish::Stop,
                Step::Cancelled => break Finish::Cancelled,
            }
            next = vec![token];
        };
        let text = stream.finish(finish != Finish::Cancelled, on_text);
        Ok(Generation {
            text,
            tokens,
            prompt_tokens: prompt.len(),
            finish,
            steps,
        })
    }

    /// Log-probabilities of every token that can follow `prompt` (one
    /// forward pass), indexed by token id.
    pub fn next_logprobs(&self, prompt: &str) -> Result<Vec<f32>, GeneratorError> {
        let ids = self.tokenizer.encode(prompt)?;
        let logits = self.model.next_logits(&ids, &mut KvCache::default())?;
        Ok(log_softmax(&logits))
    }

    /// Each token of `text` with its log-probability given the ones before
    /// it (one forward pass).
    pub fn token_logprobs(&self, text: &str) -> Result<Vec<TokenLogprob>, GeneratorError> {
        let ids = self.tokenizer.encode(text)?;
        let (values, vocab) = rows(self.model.logits(&ids)?)?;
        self.spans(text, &ids, &values, vocab)
    }

    /// The tokens `ids` of `text` with their bytes in it and their
    /// log-probabilities from `values`, the next-token logits `[len, vocab]`.
    fn spans(
        &self,
        text: &str,
        ids: &[u32],
        values: &[f32],
        vocab: usize,
    ) -> Result<Vec<TokenLogprob>, GeneratorError> {
        let mut out = Vec::with_capacity(ids.len());
        let mut at = 0;
        for (i, &id) in ids.iter().enumerate() {
            let len = self.tokenizer.token_bytes(id).map_or(0, <[u8]>::len);
            let logprob = (i > 0).then(|| {
                let row = &values[(i - 1) * vocab..i * vocab];
                log_softmax_at(row, id as usize)
            });
            out.push(TokenLogprob {
                id,
                span: at..at + len,
                logprob,
            });
            at += len;
        }
        if at != text.len() {
            return Err(bad(format!(
                "the tokens spell {at} bytes of a {}-byte text",
                text.len()
            )));
        }
        Ok(out)
    }
}

/// Logits `[len, vocab]` as one row-major vector, and `vocab`.
fn rows(logits: burn::tensor::Tensor<2>) -> Result<(Vec<f32>, usize), GeneratorError> {
    let [_, vocab] = logits.dims();
    let values = logits
        .into_data()
        .try_into_vec()
        .map_err(|e| bad(format!("logits: {e:?}")))?;
    Ok((values, vocab))
}

/// `log softmax(row)`.
pub fn log_softmax(row: &[f32]) -> Vec<f32> {
    let norm = log_sum_exp(row);
    row.iter().map(|&x| (f64::from(x) - norm) as f32).collect()
}

/// The `k` largest entries of `row` with their indices, largest first
/// (the lower index at a tie).
pub fn top_k(row: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (i, &x) in row.iter().enumerate() {
        if best.len() == k && best.last().is_none_or(|l| x <= l.1) {
            continue;
        }
        let at = best.partition_point(|b| b.1 >= x);
        best.insert(at, (i as u32, x));
        best.truncate(k);
    }
    best
}

fn log_sum_exp(row: &[f32]) -> f64 {
    let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let top = f64::from(top);
    top + row
        .iter()
        .map(|&x| (f64::from(x) - top).exp())
        .sum::<f64>()
        .ln()
}

fn log_softmax_at(row: &[f32], id: usize) -> f32 {
    (f64::from(row[id]) - log_sum_exp(row)) as f32
}

/// What the stream says after a token.
enum Step {
    More,
    Stop,
    Cancelled,
}

/// Generated bytes turned into text for a streaming callback: only whole
/// characters are passed on, text that could still become a stop string
/// is held back, and a stop string ends the text before it.
struct Stream<'a> {
    stop: &'a [String],
    bytes: Vec<u8>,
    /// Bytes passed to the callback so far.
    sent: usize,
}

impl<'a> Stream<'a> {
    fn new(stop: &'a [String]) -> Self {
        Self {
            stop,
            bytes: Vec::new(),
            sent: 0,
        }
    }

    fn push(&mut self, piece: &[u8], on_text: &mut dyn FnMut(&str) -> bool) -> Step {
        self.bytes.extend_from_slice(piece);
        let valid = match std::str::from_utf8(&self.bytes) {
            Ok(s) => s.len(),
            Err(e) => e.valid_up_to(),
        };
        let text = String::from_utf8_lossy(&self.bytes[..valid]).into_owned();
        let found = self
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| text.find(s.as_str()))
            .min();
        if let Some(at) = found {
            self.bytes.truncate(at);
            return Step::Stop;
        }
        // Hold back the longest end of the text that begins a stop string.
        let held = self
            .stop
            .iter()
            .flat_map(|s| {
                (1..s.len())
                    .filter(|&k| s.is_char_boundary(k))
                    .map(move |k| &s[..k])
            })
            .filter(|prefix| text.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let ready = text.len() - held;
        if ready > self.sent {
            let piece = &text[self.sent..ready];
            self.sent = ready;
            if !on_text(piece) {
                return Step::Cancelled;
            }
        }
        Step::More
    }

    /// The whole text; with `emit`, what is left of it passed to the
    /// callback.
    fn finish(self, emit: bool, on_text: &mut dyn FnMut(&str) -> bool) -> String {
        let text = String::from_utf8_lossy(&self.bytes).into_owned();
        if emit && text.len() > self.sent && text.is_char_boundary(self.sent) {
            on_text(&text[self.sent..]);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn streamed(stop: &[&str], pieces: &[&[u8]]) -> (String, Vec<String>, bool) {
        let stop: Vec<String> = stop.iter().map(|s| (*s).to_owned()).collect();
        let mut stream = Stream::new(&stop);
        let mut seen = Vec::new();
        let mut stopped = false;
        for p in pieces {
            if let Step::Stop = stream.push(p, &mut |t| {
                seen.push(t.to_owned());
                true
            }) {
                stopped = true;
                break;
            }
        }
        let text = stream.finish(true, &mut |t| {
            seen.push(t.to_owned());
            true
        });
        (text, seen, stopped)
    }

    /// Streamed pieces are whole characters, join to the text, never show
    /// a stop string or any part of one, and the text ends before it.
    #[test]
    fn streaming_holds_back_partial_characters_and_stop_strings() {
        let e_acute = "é".as_bytes();
        let (text, seen, stopped) = streamed(
            &["\n\n", "END"],
            &[
                b"Caf",
                &e_acute[..1],
                &e_acute[1..],
                b" au lait",
                b"\n",
                b"x E",
                b"N",
                b"D!",
            ],
        );
        assert!(stopped);
        assert_eq!(text, "Café au lait\nx ");
        assert_eq!(seen.concat(), text);
        assert!(seen.iter().all(|p| !p.contains('\u{FFFD}')), "{seen:?}");
        // "\n" was held until "x" showed it was not "\n\n"; " E" until "N", "D".
        assert_eq!(seen, ["Caf", "é", " au lait", "\nx "]);
        let (text, seen, stopped) = streamed(&["\n\n"], &[b"one", b"\n", b"\ntwo"]);
        assert!(stopped);
        assert_eq!((text.as_str(), seen.concat().as_str()), ("one", "one"));
        // No stop string: everything, the held-back tail at the end.
        let (text, seen, stopped) = streamed(&["zz"], &[b"ab", b"z"]);
        assert!(!stopped);
        assert_eq!(
            (text.as_str(), seen),
            ("abz", vec!["ab".into(), "z".into()])
        );
    }

    /// Greedy picks the largest logit (the lowest id at a tie); sampling at
    /// a small top-p only ever draws the most likely token; a seed repeats
    /// its draws; at temperature 1 the draws follow the softmax.
    #[test]
    fn sampling_is_seeded_and_respects_top_p() {
        let logits = [0.0f32, 2.0, 2.0, 1.0, f32::NEG_INFINITY];
        let mut rng = SplitMix64::new(7);
        assert_eq!(Sampling::greedy().pick(&logits, &mut rng), 1);
        let narrow = Sampling {
            temperature: 1.0,
            top_p: 0.1,
            seed: 0,
        };
        assert!((0..200).all(|_| narrow.pick(&[0.0, 3.0, 1.0], &mut rng) == 1));
        let full = Sampling {
            temperature: 1.0,
            top_p: 1.0,
            seed: 0,
        };
        let draws = |seed| {
            let mut rng = SplitMix64::new(seed);
            (0..4000)
                .map(|_| full.pick(&logits, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(3), draws(3));
        assert_ne!(draws(3), draws(4));
        let d = draws(3);
        assert!(!d.contains(&4), "an impossible token was drawn");
        let share = |id| d.iter().filter(|&&t| t == id).count() as f64 / d.len() as f64;
        let z: f64 = [0.0f64, 2.0, 2.0, 1.0].iter().map(|x| x.exp()).sum();
        for (id, x) in [(0, 0.0f64), (1, 2.0), (3, 1.0)] {
            let want = x.exp() / z;
            assert!(
                (share(id) - want).abs() < 0.03,
                "token {id}: {} vs {want}",
                share(id)
            );
        }
    }

    /// ChatML templates give their default system message; a system message
    /// of the caller's replaces it; other templates are refused.
    #[test]
    fn chat_templates() {
        let smol = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are SmolLM<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
        let t = ChatTemplate::from_jinja(smol).unwrap();
        assert_eq!(t.default_system.as_deref(), Some("You are SmolLM"));
        assert_eq!(
            t.prompt(&[("user", "Hi")]),
            "<|im_start|>system\nYou are SmolLM<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            t.prompt(&[("system", "Be brief."), ("user", "Hi")]),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let spliced = "{{ '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}";
        // Qwen's: escaped newlines, the caller's system message spliced in
        // first, the default after.
        let qwen = r"{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}{%- else %}{{- '<|im_start|>system\nYou are Qwen.<|im_end|>\n' }}";
        assert_eq!(
            ChatTemplate::from_jinja(qwen)
                .unwrap()
                .default_system
                .as_deref(),
            Some("You are Qwen.")
        );
        assert_eq!(
            ChatTemplate::from_jinja(spliced).unwrap().default_system,
            None
        );
        let e = ChatTemplate::from_jinja("{{ bos_token }}[INST] {{ m }} [/INST]").unwrap_err();
        assert!(e.to_string().contains("ChatML"), "{e}");
    }

    #[test]
    fn top_k_is_the_largest_in_order() {
        let row = [0.5f32, 3.0, -1.0, 3.0, 2.0];
        assert_eq!(top_k(&row, 3), vec![(1, 3.0), (3, 3.0), (4, 2.0)]);
        assert_eq!(top_k(&row, 0), vec![]);
        assert_eq!(top_k(&row, 9).len(), 5);
    }

    #[test]
    fn log_softmax_normalises() {
        let lp = log_softmax(&[1.0, 2.0, 3.0]);
        let total: f64 = lp.iter().map(|&x| f64::from(x).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!((log_softmax_at(&[1.0, 2.0, 3.0], 2) - lp[2]).abs() < 1e-6);
    }
}
