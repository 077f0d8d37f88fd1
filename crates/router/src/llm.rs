//! The generator adapter: a client for an OpenAI-compatible server
//! (llama.cpp's server, vLLM, OpenAI) with a timeout and retries, or for
//! the model in this process (`local:<path>`: rlrag's own decoder on a
//! GGUF file, answering the same requests with the same JSON). It answers a
//! question from passages (or from none: the plain generation of RLAG), scores
//! the gold answer's probability in one forward pass where the server returns
//! log-probabilities, judges an answer against the gold ones (LLM-as-judge),
//! judges whether a passage answers a question (P("yes") from one forward
//! pass: the reranker's teacher), and writes sub-queries for the router's
//! `decompose` hops. For self-boosting (Reinforced-IR) it writes a search
//! query for a passage, samples hypothetical documents for a query (HyDE),
//! and scores a passage by the query's likelihood given it (UPR).

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use rlrag_generator::generate::Generator;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::writer::{QueryWriter, WriterFuture, parse_sub_queries};
use crate::{Fault, Hit, RouterError};

/// Where and how to call the generator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LlmConfig {
    /// Base URL up to and including `/v1`, e.g. `http://127.0.0.1:8080/v1`;
    /// or `local:<path>`: the model in this process, from a GGUF file, a
    /// generator's model directory (`trainer train-generator`), or a
    /// directory holding one GGUF file.
    pub base_url: String,
    /// The `model` field of requests.
    pub model: String,
    /// Per-request timeout.
    pub timeout_ms: u64,
    /// Extra attempts after a failed request.
    pub retries: u32,
    /// Most tokens of a generated answer.
    pub max_answer_tokens: u32,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8080/v1".into(),
            model: "smollm2-135m-instruct".into(),
            timeout_ms: 30_000,
            retries: 1,
            max_answer_tokens: 24,
        }
    }
}

/// Most characters of one passage in a prompt (a small model's context is short).
pub const MAX_PASSAGE_CHARS: usize = 700;

/// The answer prompt; the answer follows it. One passage, several (numbered)
/// or none (the model answers from what it knows).
pub fn prompt(question: &str, passages: &[&str]) -> String {
    let cut = |p: &str| p.chars().take(MAX_PASSAGE_CHARS).collect::<String>();
    match passages {
        [] => format!(
            "Answer the question. Reply with the answer only, a few words.\n\n\
             Question: {question}\n\nAnswer:"
        ),
        [one] => format!(
            "Answer the question using the passage. Reply with the answer only, a few words.\n\n\
             Passage: {}\n\nQuestion: {question}\n\nAnswer:",
            cut(one)
        ),
        many => {
            let mut listed = String::new();
            for (i, p) in many.iter().enumerate() {
                listed.push_str(&format!("Passage {}: {}\n", i + 1, cut(p)));
            }
            format!(
                "Answer the question using the passages. Reply with the answer only, a few words.\n\n\
                 {listed}\nQuestion: {question}\n\nAnswer:"
            )
        }
    }
}

/// The LLM-as-judge prompt: is `prediction` a correct answer, given the gold ones?
/// A plain completion prompt with two worked examples, so that even a small
/// model continues with a verdict rather than a discussion.
pub fn judge_prompt(question: &str, answers: &[String], prediction: &str) -> String {
    format!(
        "Decide whether each predicted answer means the same as a gold answer.\n\n\
         Question: Who wrote Hamlet?\nGold answers: William Shakespeare\n\
         Predicted answer: It was written by Shakespeare.\nCorrect: yes\n\n\
         Question: What is the capital of Australia?\nGold answers: Canberra\n\
         Predicted answer: Sydney\nCorrect: no\n\n\
         Question: {question}\nGold answers: {}\nPredicted answer: {prediction}\nCorrect:",
        answers.join(" | ")
    )
}

/// The prompt asking for sub-queries (titles of the passages so far as hints).
pub fn sub_query_prompt(question: &str, titles: &[&str]) -> String {
    let hints = if titles.is_empty() {
        String::new()
    } else {
        format!("Passages found so far: {}\n", titles.join("; "))
    };
    format!(
        "Write up to 3 short web search queries that together find the facts needed to answer \
         the question. One query per line, nothing else.\n\nQuestion: {question}\n{hints}\nQueries:"
    )
}

/// A judge's reply read as a verdict: its first verdict word (`yes`,
/// `correct`, `true` or `no`, `incorrect`, `false`, `wrong`; small models
/// often talk first), `None` when it has none.
pub fn parse_verdict(reply: &str) -> Option<bool> {
    reply
        .split(|c: char| !c.is_ascii_alphabetic())
        .find_map(|w| match w.to_ascii_lowercase().as_str() {
            "yes" | "correct" | "true" => Some(true),
            "no" | "incorrect" | "false" | "wrong" => Some(false),
            _ => None,
        })
}

/// A blocking client with a timeout and retries (clones share the
/// connection pool).
#[derive(Debug, Clone)]
pub struct LlmClient {
    config: LlmConfig,
    backend: Backend,
}

/// Where requests go.
#[derive(Debug, Clone)]
enum Backend {
    /// An OpenAI-compatible server.
    Http(ureq::Agent),
    /// The model in this process (one request at a time).
    Local(Arc<Mutex<Generator>>),
}

/// The scheme of [`LlmConfig::base_url`] that names a model file.
pub const LOCAL_SCHEME: &str = "local:";

/// Models loaded in this process, by canonical path: clients of the same
/// file share one copy while any of them lives.
static LOADED: LazyLock<Mutex<HashMap<PathBuf, Weak<Mutex<Generator>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The model at `path` ([`Generator::open`]), loaded once per process.
fn load_local(path: &Path) -> Result<Arc<Mutex<Generator>>, String> {
    let key = path.canonicalize().map_err(|e| e.to_string())?;
    let mut loaded = LOADED.lock().map_err(|_| "the model cache was poisoned")?;
    if let Some(model) = loaded.get(&key).and_then(Weak::upgrade) {
        return Ok(model);
    }
    let generator =
        Generator::open(&key, &burn::tensor::Device::flex()).map_err(|e| e.to_string())?;
    let model = Arc::new(Mutex::new(generator));
    loaded.retain(|_, m| m.strong_count() > 0);
    loaded.insert(key, Arc::downgrade(&model));
    Ok(model)
}

impl LlmClient {
    /// A client for `config` (no request is made yet; a `local:` model is
    /// read and loaded now).
    pub fn new(config: LlmConfig) -> Result<Self, RouterError> {
        if let Some(path) = config.base_url.strip_prefix(LOCAL_SCHEME) {
            let model =
                load_local(Path::new(path)).map_err(|reason| RouterError::InvalidConfig {
                    field: "llm-url",
                    reason: format!("`{}`: {reason}", config.base_url),
                })?;
            return Ok(Self {
                config,
                backend: Backend::Local(model),
            });
        }
        if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
            return Err(RouterError::InvalidConfig {
                field: "llm-url",
                reason: format!(
                    "`{}` is not an http(s) URL (nor {LOCAL_SCHEME}<model file>)",
                    config.base_url
                ),
            });
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(config.timeout_ms.max(1))))
            .http_status_as_error(true)
            .max_redirects(0)
            .build()
            .into();
        Ok(Self {
            config,
            backend: Backend::Http(agent),
        })
    }

    /// The settings.
    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value, RouterError> {
        let url = format!("{}{path}", self.config.base_url.trim_end_matches('/'));
        let agent = match &self.backend {
            Backend::Http(agent) => agent,
            Backend::Local(model) => {
                let endpoint = |reason: String| RouterError::Endpoint {
                    url: url.clone(),
                    reason,
                };
                let model = model
                    .lock()
                    .map_err(|_| endpoint("the model was poisoned by a failed request".into()))?;
                return rlrag_generator::openai::respond(&model, path, body)
                    .map_err(|e| endpoint(e.to_string()));
            }
        };
        let mut last = String::new();
        for attempt in 0..=self.config.retries {
            if attempt > 0 {
                // Back off before asking again: 100 ms, 200 ms, 400 ms, …
                std::thread::sleep(Duration::from_millis(100 << (attempt - 1).min(6)));
            }
            let sent = agent.post(&url).send_json(body);
            match sent {
                Ok(mut response) => match response.body_mut().read_json::<Value>() {
                    Ok(v) => return Ok(v),
                    Err(e) => last = format!("unreadable reply: {e}"),
                },
                // The request itself was refused: asking again cannot help.
                Err(ureq::Error::StatusCode(status)) if (400..500).contains(&status) => {
                    return Err(RouterError::Endpoint {
                        url,
                        reason: format!("http status {status} (not retried)"),
                    });
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(RouterError::Endpoint { url, reason: last })
    }

    /// The generator's answer to `question` given `passage` (greedy).
    pub fn answer(&self, question: &str, passage: &str) -> Result<String, RouterError> {
        self.chat(&prompt(question, &[passage]), self.config.max_answer_tokens)
    }

    /// The generator's answer to `question` from `passages` (none: from what
    /// the model knows), greedy.
    pub fn answer_from(&self, question: &str, passages: &[&str]) -> Result<String, RouterError> {
        self.chat(&prompt(question, passages), self.config.max_answer_tokens)
    }

    /// LLM-as-judge: whether `prediction` answers `question` as a gold answer
    /// does. A reply that is neither yes nor no is an error.
    pub fn judge(
        &self,
        question: &str,
        answers: &[String],
        prediction: &str,
    ) -> Result<bool, RouterError> {
        let body = json!({
            "model": self.config.model,
            "prompt": judge_prompt(question, answers, prediction),
            "temperature": 0.0,
            "max_tokens": 3,
            "stop": ["\n"],
        });
        let url = format!("{}/completions", self.config.base_url);
        let reply = self.post("/completions", &body)?;
        let text = reply
            .pointer("/choices/0/text")
            .and_then(Value::as_str)
            .ok_or_else(|| RouterError::Endpoint {
                url: url.clone(),
                reason: format!("no choices[0].text in {}", truncate(&reply.to_string())),
            })?;
        parse_verdict(text).ok_or_else(|| RouterError::Endpoint {
            url,
            reason: format!("the judge replied `{}`, not yes or no", truncate(text)),
        })
    }

    /// Up to three search queries for `question`, written by the model.
    pub fn sub_queries(&self, question: &str, titles: &[&str]) -> Result<Vec<String>, RouterError> {
        let reply = self.chat(&sub_query_prompt(question, titles), 64)?;
        Ok(parse_sub_queries(&reply))
    }

    /// P("yes") that `passage` answers `question`, from the top
    /// log-probabilities of the reply's first token (one forward pass,
    /// [`passage_judge_prompt`]); `None` when neither yes nor no is among
    /// them.
    pub fn passage_verdict(
        &self,
        question: &str,
        passage: &str,
    ) -> Result<Option<f64>, RouterError> {
        let body = json!({
            "model": self.config.model,
            "prompt": passage_judge_prompt(question, passage),
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": 20,
        });
        let reply = self.post("/completions", &body)?;
        Ok(parse_yes_probability(&reply))
    }

    /// A search query that `passage` answers, sampled at `temperature`
    /// with `seed` ([`QueryPrompt`], one line); `None` when the
    /// model wrote nothing usable.
    pub fn write_query(
        &self,
        prompt: &QueryPrompt,
        passage: &str,
        temperature: f32,
        seed: u64,
    ) -> Result<Option<String>, RouterError> {
        let body = json!({
            "model": self.config.model,
            "prompt": prompt.prompt(passage),
            "temperature": temperature,
            "max_tokens": 40,
            "stop": ["\n"],
            "seed": seed,
        });
        let reply = self.post("/completions", &body)?;
        Ok(reply
            .pointer("/choices/0/text")
            .and_then(Value::as_str)
            .and_then(clean_query))
    }

    /// A hypothetical passage answering `query` (HyDE; [`hyde_prompt`]),
    /// sampled with `temperature` and nucleus `top_p`, at most `max_tokens`.
    pub fn hypothetical_document(
        &self,
        query: &str,
        temperature: f32,
        top_p: f32,
        max_tokens: u32,
        seed: u64,
    ) -> Result<String, RouterError> {
        let body = json!({
            "model": self.config.model,
            "prompt": hyde_prompt(query),
            "temperature": temperature,
            "top_p": top_p,
            "max_tokens": max_tokens,
            "stop": ["\n\n"],
            "seed": seed,
        });
        let reply = self.post("/completions", &body)?;
        Ok(reply
            .pointer("/choices/0/text")
            .and_then(Value::as_str)
            .map(|t| t.trim().to_string())
            .unwrap_or_default())
    }

    /// Mean log-probability per token of `query` written after `passage`
    /// ([`QueryPrompt`]; UPR's unsupervised passage re-ranking: the
    /// passage that makes the query likely answers it), from the prompt's
    /// echoed log-probabilities in one forward pass; `None` when the server
    /// does not return them.
    pub fn query_likelihood(
        &self,
        prompt: &QueryPrompt,
        query: &str,
        passage: &str,
    ) -> Result<Option<f64>, RouterError> {
        let prefix = prompt.prompt(passage);
        let body = json!({
            "model": self.config.model,
            "prompt": format!("{prefix} {query}"),
            "max_tokens": 1,
            "temperature": 0.0,
            "echo": true,
            "logprobs": 1,
        });
        let reply = self.post("/completions", &body)?;
        let span = prefix.len()..prefix.len() + 1 + query.len();
        Ok(parse_mean_logprob(&reply, span))
    }

    /// One greedy chat completion of a single user message.
    fn chat(&self, content: &str, max_tokens: u32) -> Result<String, RouterError> {
        let body = json!({
            "model": self.config.model,
            "messages": [{"role": "user", "content": content}],
            "temperature": 0.0,
            "max_tokens": max_tokens,
        });
        let reply = self.post("/chat/completions", &body)?;
        parse_chat_answer(&reply).ok_or_else(|| RouterError::Endpoint {
            url: format!("{}/chat/completions", self.config.base_url),
            reason: format!(
                "no choices[0].message.content in {}",
                truncate(&reply.to_string())
            ),
        })
    }

    /// The probability of `gold` following the prompt, from the prompt's
    /// echoed log-probabilities (one forward pass, nothing generated); `None`
    /// when the server does not return them.
    pub fn gold_probability(
        &self,
        question: &str,
        passage: &str,
        gold: &str,
    ) -> Result<Option<f32>, RouterError> {
        let prefix = prompt(question, &[passage]);
        let body = json!({
            "model": self.config.model,
            "prompt": format!("{prefix} {gold}"),
            "max_tokens": 1,
            "temperature": 0.0,
            "echo": true,
            "logprobs": 1,
        });
        let reply = self.post("/completions", &body)?;
        let answer = prefix.len()..prefix.len() + 1 + gold.len();
        Ok(parse_answer_logprob(&reply, answer).map(|lp| lp.exp() as f32))
    }
}

/// The generator writes the router's `decompose` sub-queries (blocking: the
/// hop waits for them before it retrieves anyway).
impl QueryWriter for LlmClient {
    fn write<'a>(&'a self, question: &'a str, evidence: &'a [Hit]) -> WriterFuture<'a> {
        Box::pin(async move {
            let titles: Vec<&str> = evidence
                .iter()
                .map(|h| h.title.as_str())
                .filter(|t| !t.is_empty())
                .collect();
            self.sub_queries(question, &titles)
                .map_err(|e| Fault::Transport {
                    detail: e.to_string(),
                })
        })
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

/// The prompt of [`LlmClient::passage_verdict`] in ChatML (the chat format
/// of SmolLM2 and Qwen2.5 Instruct), up to the assistant's first token.
pub fn passage_judge_prompt(question: &str, passage: &str) -> String {
    let passage: String = passage.chars().take(MAX_PASSAGE_CHARS).collect();
    format!(
        "<|im_start|>system\nYou judge whether a passage answers a question.<|im_end|>\n\
         <|im_start|>user\nQuestion: {question}\nPassage: {passage}\n\
         Does the passage contain the answer to the question? Reply yes or no.<|im_end|>\n\
         <|im_start|>assistant\n"
    )
}

/// P("yes") against "no" from the first generated token's top
/// log-probabilities (OpenAI completions `logprobs.top_logprobs[0]`, a map
/// of token to log-probability); spellings and case fold together ("Yes",
/// " yes"). `None` when neither is there or the reply is malformed.
pub fn parse_yes_probability(reply: &Value) -> Option<f64> {
    let top = reply
        .pointer("/choices/0/logprobs/top_logprobs/0")?
        .as_object()?;
    let (mut yes, mut no) = (0.0, 0.0);
    for (token, lp) in top {
        let Some(p) = lp.as_f64().map(f64::exp).filter(|p| p.is_finite()) else {
            continue;
        };
        match token.trim().to_ascii_lowercase().as_str() {
            "yes" => yes += p,
            "no" => no += p,
            _ => {}
        }
    }
    (yes + no > 0.0).then(|| yes / (yes + no))
}

/// The few-shot examples that show a generator the form of a search query
/// (InPars, Promptagator): the prompt of [`LlmClient::write_query`] and
/// [`LlmClient::query_likelihood`]. The default is two generic examples
/// (not from any bundled set); a user whose queries look otherwise (claims,
/// keywords, another language) gives their own, written for passages like
/// theirs.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPrompt {
    /// `(passage, query)` pairs, in prompt order.
    examples: Vec<(String, String)>,
}

impl Default for QueryPrompt {
    fn default() -> Self {
        Self {
            examples: vec![
                (
                    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It was designed by the company of engineer Gustave Eiffel and completed in 1889.".into(),
                    "who designed the eiffel tower".into(),
                ),
                (
                    "Vitamin D deficiency is associated with an increased risk of bone fractures in older adults, and supplementation reduces the incidence of hip fractures.".into(),
                    "does vitamin d supplementation prevent hip fractures in elderly people".into(),
                ),
            ],
        }
    }
}

/// An example line of a query-examples file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryExample {
    passage: String,
    query: String,
}

impl QueryPrompt {
    /// The most examples a prompt holds (a small model's context is short).
    pub const MAX_EXAMPLES: usize = 8;

    /// A prompt from `(passage, query)` examples: 1 to
    /// [`QueryPrompt::MAX_EXAMPLES`], each passage at most
    /// [`MAX_PASSAGE_CHARS`] characters, each query one non-empty line.
    pub fn new(examples: Vec<(String, String)>) -> Result<Self, RouterError> {
        let bad = |reason: String| RouterError::InvalidConfig {
            field: "query examples",
            reason,
        };
        if examples.is_empty() || examples.len() > Self::MAX_EXAMPLES {
            return Err(bad(format!(
                "{} examples (1 to {})",
                examples.len(),
                Self::MAX_EXAMPLES
            )));
        }
        for (i, (passage, query)) in examples.iter().enumerate() {
            if passage.trim().is_empty() || passage.chars().count() > MAX_PASSAGE_CHARS {
                return Err(bad(format!(
                    "example {}: the passage must have 1 to {MAX_PASSAGE_CHARS} characters",
                    i + 1
                )));
            }
            if query.trim().is_empty() || query.contains(['\n', '\r']) {
                return Err(bad(format!(
                    "example {}: the query must be one non-empty line",
                    i + 1
                )));
            }
        }
        Ok(Self { examples })
    }

    /// A prompt from JSONL, one `{"passage": …, "query": …}` per line
    /// (blank lines skipped).
    pub fn from_jsonl(text: &str) -> Result<Self, RouterError> {
        let mut examples = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let e: QueryExample =
                serde_json::from_str(line).map_err(|e| RouterError::InvalidConfig {
                    field: "query examples",
                    reason: format!("line {}: {e}", i + 1),
                })?;
            examples.push((e.passage, e.query));
        }
        Self::new(examples)
    }

    /// The examples, `(passage, query)`.
    pub fn examples(&self) -> &[(String, String)] {
        &self.examples
    }

    /// The completion prompt for `passage`: the query follows it after a
    /// space. Plain text, not a chat: small instruct models (SmolLM2-135M)
    /// follow the pattern where they ignore an instruction.
    pub fn prompt(&self, passage: &str) -> String {
        let one_line = |p: &str| -> String {
            p.chars()
                .take(MAX_PASSAGE_CHARS)
                .map(|c| if c == '\n' { ' ' } else { c })
                .collect()
        };
        let mut out = String::new();
        for (p, q) in &self.examples {
            out += &format!("Passage: {}\nQuery: {q}\n\n", one_line(p));
        }
        out + &format!("Passage: {}\nQuery:", one_line(passage))
    }

    /// Whether `query` copies the examples instead of its passage: two or
    /// more of its content words come from the examples' queries and are
    /// absent from `passage` (a small model's failure mode: "what is the
    /// origin of the eiffel tower" for a paper on myelin).
    pub fn borrows(&self, query: &str, passage: &str) -> bool {
        const FUNCTION_WORDS: [&str; 10] = [
            "does", "what", "which", "when", "where", "with", "from", "that", "this", "have",
        ];
        let words = |t: &str| -> std::collections::BTreeSet<String> {
            t.split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.chars().count() >= 4)
                .map(str::to_lowercase)
                .filter(|w| !FUNCTION_WORDS.contains(&w.as_str()))
                .collect()
        };
        let examples: String = self
            .examples
            .iter()
            .map(|(_, q)| q.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let (shots, in_passage) = (words(&examples), words(passage));
        words(query)
            .iter()
            .filter(|w| shots.contains(*w) && !in_passage.contains(*w))
            .count()
            >= 2
    }
}

/// The prompt of [`LlmClient::hypothetical_document`]: a passage follows.
pub fn hyde_prompt(query: &str) -> String {
    let query: String = query.chars().take(MAX_PASSAGE_CHARS).collect();
    format!("Write a short passage that answers the search query.\nQuery: {query}\nPassage:")
}

/// A generated query, one line, trimmed; `None` when empty or longer than
/// a query can sensibly be (a model that kept on writing).
pub fn clean_query(text: &str) -> Option<String> {
    let line = text.lines().next().unwrap_or("").trim();
    let line = line.trim_matches(|c: char| c == '"' || c == '\'');
    let words = line.split_whitespace().count();
    (2..=40).contains(&words).then(|| line.to_string())
}

/// Mean echoed log-probability of the prompt tokens that start in the byte
/// range `span` (see [`parse_answer_logprob`]).
pub fn parse_mean_logprob(reply: &Value, span: Range<usize>) -> Option<f64> {
    let offsets = reply
        .pointer("/choices/0/logprobs/text_offset")?
        .as_array()?;
    let n = offsets
        .iter()
        .filter_map(Value::as_u64)
        .filter(|&o| span.contains(&(o as usize)))
        .count();
    parse_answer_logprob(reply, span).map(|sum| sum / n.max(1) as f64)
}

/// `choices[0].message.content`, trimmed.
pub fn parse_chat_answer(reply: &Value) -> Option<String> {
    reply
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .map(|s| s.trim().to_string())
}

/// Sum of the echoed log-probabilities of the prompt tokens that start in
/// the byte range `answer` (OpenAI completions `logprobs` layout: `tokens`,
/// `token_logprobs`, `text_offset`). Entries past the range, such as the
/// generated token (which some servers leave out), are not counted; `None`
/// when absent or malformed, or when no token starts in the range.
pub fn parse_answer_logprob(reply: &Value, answer: Range<usize>) -> Option<f64> {
    let lp = reply.pointer("/choices/0/logprobs")?;
    let logprobs = lp.get("token_logprobs")?.as_array()?;
    let offsets = lp.get("text_offset")?.as_array()?;
    if logprobs.len() != offsets.len() {
        return None;
    }
    let mut sum = 0.0;
    let mut any = false;
    for (l, o) in logprobs.iter().zip(offsets) {
        if answer.contains(&(o.as_u64()? as usize)) {
            sum += l.as_f64()?;
            any = true;
        }
    }
    any.then_some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_queries_are_one_sensible_line() {
        assert_eq!(
            clean_query(" \"who designed the eiffel tower\"\nPassage: x").as_deref(),
            Some("who designed the eiffel tower")
        );
        assert_eq!(clean_query("   "), None);
        assert_eq!(clean_query("tower"), None);
        assert_eq!(clean_query(&"word ".repeat(41)), None);
        let generic = QueryPrompt::default();
        assert!(generic.borrows(
            "what is the origin of the eiffel tower",
            "Myelin basic protein is expressed in oligodendrocytes."
        ));
        // The same words are the passage's own: a fair query.
        assert!(!generic.borrows(
            "does vitamin d supplementation prevent fractures",
            "Vitamin D supplementation and the risk of fractures in older people."
        ));
        assert!(!generic.borrows(
            "who directed the no mercy man",
            "The No Mercy Man is a 1973 film."
        ));
        let p = generic.prompt("line one\nline two");
        assert!(p.starts_with("Passage: The Eiffel Tower"), "{p}");
        assert!(p.ends_with("Passage: line one line two\nQuery:"), "{p}");
    }

    /// A user's examples replace the generic ones in the prompt and in the
    /// copy check; bad files are refused with the line.
    #[test]
    fn query_examples_come_from_a_file_and_are_checked() {
        let claims = QueryPrompt::from_jsonl(
            "{\"passage\": \"Statins lowered LDL cholesterol by 40% in a trial of 2,000 adults.\", \"query\": \"Statins reduce LDL cholesterol.\"}\n\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let p = claims.prompt("Aspirin use was linked to fewer colorectal cancers.");
        assert!(p.starts_with("Passage: Statins lowered"), "{p}");
        assert!(!p.contains("Eiffel"));
        assert!(claims.borrows(
            "statins reduce cholesterol in mice",
            "A mouse model of obesity."
        ));
        assert!(!claims.borrows("what is the origin of the eiffel tower", "Myelin."));
        for (text, needle) in [
            ("", "0 examples"),
            ("{\"passage\": \"p\"}", "line 1"),
            ("{\"passage\": \"p\", \"query\": \"q\", \"x\": 1}", "line 1"),
            ("{\"passage\": \" \", \"query\": \"q\"}", "example 1"),
            (
                "{\"passage\": \"p\", \"query\": \"a\\nb\"}",
                "one non-empty line",
            ),
            (
                "{\"passage\": \"p\", \"query\": \"a\\rb\"}",
                "one non-empty line",
            ),
        ] {
            let e = QueryPrompt::from_jsonl(text).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|m| m.contains(needle)),
                "{text}: {e:?}"
            );
        }
        let nine = "{\"passage\": \"p\", \"query\": \"q\"}\n".repeat(9);
        assert!(QueryPrompt::from_jsonl(&nine).is_err());
    }

    #[test]
    fn parses_replies_and_refuses_malformed_ones() {
        let chat = json!({"choices": [{"message": {"role": "assistant", "content": " Paris \n"}}]});
        assert_eq!(parse_chat_answer(&chat).as_deref(), Some("Paris"));
        assert_eq!(parse_chat_answer(&json!({"error": "overloaded"})), None);
        let completion = json!({"choices": [{"logprobs": {
            "tokens": ["Answer", ":", " Paris", ".", "\n"],
            "token_logprobs": [null, -0.5, -0.25, -0.5, -3.0],
            "text_offset": [0, 6, 7, 13, 14]
        }}]});
        // The prompt's tokens from byte 7 to its end at 14, not the generated
        // "\n": -0.25 - 0.5.
        let lp = parse_answer_logprob(&completion, 7..14).expect("logprobs");
        assert!((lp + 0.75).abs() < 1e-12);
        // A server that leaves the generated token out: the same sum.
        let without = json!({"choices": [{"logprobs": {
            "tokens": ["Answer", ":", " Paris", "."],
            "token_logprobs": [null, -0.5, -0.25, -0.5],
            "text_offset": [0, 6, 7, 13]
        }}]});
        let lp = parse_answer_logprob(&without, 7..14).expect("logprobs");
        assert!((lp + 0.75).abs() < 1e-12);
        assert_eq!(parse_answer_logprob(&completion, 100..120), None);
        assert_eq!(parse_answer_logprob(&json!({"choices": [{}]}), 0..1), None);
        // The first token's log-probability is null: not a number to sum.
        assert_eq!(parse_answer_logprob(&completion, 0..7), None);
        // The mean over the two tokens of the range.
        let mean = parse_mean_logprob(&completion, 7..14).expect("logprobs");
        assert!((mean + 0.375).abs() < 1e-12);
    }

    #[test]
    fn prompts_and_verdicts() {
        let plain = prompt("Who?", &[]);
        assert!(!plain.contains("Passage") && plain.ends_with("Answer:"));
        let one = prompt("Who?", &["Ann wrote it."]);
        assert!(one.contains("Passage: Ann wrote it."));
        let long = "y".repeat(MAX_PASSAGE_CHARS + 50);
        let two = prompt("Who?", &["a", &long]);
        assert!(two.contains("Passage 1: a\n") && two.contains("Passage 2: "));
        assert!(!two.contains(&long), "passages are cut");
        for (reply, verdict) in [
            ("Yes.", Some(true)),
            (" no, it is not", Some(false)),
            ("**Correct**", Some(true)),
            ("Maybe", None),
            ("The gold answer is Paris, so yes.", Some(true)),
            ("", None),
        ] {
            assert_eq!(parse_verdict(reply), verdict, "{reply:?}");
        }
        let q = sub_query_prompt("Who?", &["Jaws", "Spielberg"]);
        assert!(q.contains("Jaws; Spielberg"));
    }

    #[test]
    fn yes_probability_folds_spellings_and_refuses_what_is_not_there() {
        let reply = |top: Value| json!({"choices": [{"logprobs": {"top_logprobs": [top]}}]});
        let p = parse_yes_probability(&reply(json!({"Yes": 0.0, " no": 0.0, "maybe": -0.1})));
        assert_eq!(p, Some(0.5));
        let p = parse_yes_probability(&reply(json!({" yes": -0.1, "YES": -2.0, "No": -3.0})));
        let (y, n) = ((-0.1f64).exp() + (-2.0f64).exp(), (-3.0f64).exp());
        assert!((p.unwrap_or_default() - y / (y + n)).abs() < 1e-12);
        for bad in [
            reply(json!({"maybe": -0.1})),
            reply(json!({"yes": "high"})),
            reply(json!([1, 2])),
            json!({"choices": []}),
        ] {
            assert_eq!(parse_yes_probability(&bad), None, "{bad}");
        }
        let prompt = passage_judge_prompt("Who?", &"x".repeat(5000));
        assert!(prompt.ends_with("<|im_start|>assistant\n"));
        assert!(prompt.len() < MAX_PASSAGE_CHARS + 400);
    }

    #[test]
    fn bad_urls_are_refused() {
        let bad = LlmConfig {
            base_url: "localhost:8080".into(),
            ..LlmConfig::default()
        };
        assert!(matches!(
            LlmClient::new(bad),
            Err(RouterError::InvalidConfig { .. })
        ));
    }

    /// A `local:` model that is not there, a directory without one, and a
    /// file that is not a model are refused when the client is made, by
    /// path and reason.
    #[test]
    fn missing_or_malformed_local_models_are_refused() {
        let refused = |url: String, says: &str| {
            let e = LlmClient::new(LlmConfig {
                base_url: url.clone(),
                ..LlmConfig::default()
            })
            .expect_err("refused");
            let text = e.to_string();
            assert!(text.contains(&url) && text.contains(says), "{text}");
        };
        let dir = std::env::temp_dir().join(format!("rlrag-llm-local-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        refused(format!("local:{}/none.gguf", dir.display()), "");
        refused(format!("local:{}", dir.display()), "no .gguf file");
        std::fs::write(dir.join("model.gguf"), b"GGUF not really").expect("write");
        refused(format!("local:{}", dir.display()), "GGUF");
        std::fs::write(dir.join("other.gguf"), b"").expect("write");
        refused(format!("local:{}", dir.display()), "2 .gguf files");
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
