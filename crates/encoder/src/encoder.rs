//! Text in, vectors out: tokenization, length-bucketed batching, and the
//! dense and learned-sparse heads over [`BertModel`].

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::module::Module;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::bert::{BertModel, hf_to_module_key, module_to_hf_key};
use crate::config::{Head, ModelConfig, Pooling, SparseActivation};
use crate::fasthash::FastMap;
use crate::safetensors::{renamed_in_place, renamed_safetensors};
use crate::tokenizer::BertTokenizer;
use crate::{EncoderError, SparseVector};

/// The three files of a model directory, as bytes (the browser fetches them;
/// natively [`Encoder::from_dir`] reads them).
#[derive(Debug, Clone, Copy)]
pub struct ModelFiles<'a> {
    /// `model.safetensors`.
    pub weights: &'a [u8],
    /// `config.json`.
    pub config: &'a [u8],
    /// `tokenizer.json`.
    pub tokenizer: &'a [u8],
}

/// Most tokens (batch × padded length) in one dense forward pass.
const DENSE_TOKEN_BUDGET: usize = 8192;
/// Most tokens in one sparse forward pass through the transformer.
const SPARSE_TOKEN_BUDGET: usize = 2048;
/// Most bytes of vocabulary logits (tokens × vocabulary floats) computed at
/// once: the MLM head runs over row chunks of the batch within this. GPUs
/// cap one buffer (WebGPU's default storage binding limit is 128 MiB).
const LOGITS_BYTE_BUDGET: usize = 64 << 20;
/// Most bytes of one batch's attention scores (rows × heads × length²
/// floats) and of its pooled output (rows × vocabulary floats for a sparse
/// model): the token budgets alone would let a model with many heads or a
/// huge vocabulary ask for gigabytes. Real models stay far below it (BERT
/// base: 16 rows of 512 tokens need 200 MB of scores).
const BATCH_BYTE_BUDGET: u64 = 256 << 20;

/// The padding of a batch: the mask (true at padding) and whether any
/// position is padding, known on the host so that the model never has to
/// read the mask back (a synchronous read, impossible on WebGPU).
struct Padding {
    mask: Tensor<2, Bool>,
    any: bool,
}

impl Padding {
    /// The attention mask the model needs: none without padding.
    fn attention(&self) -> Option<Tensor<2, Bool>> {
        self.any.then(|| self.mask.clone())
    }
}

/// One forward pass's inputs: which texts (indices into the caller's list,
/// longest first), their padded ids, token types for pairs, and padding.
struct Batch {
    members: Vec<usize>,
    ids: Tensor<2, Int>,
    types: Option<Tensor<2, Int>>,
    pad: Padding,
}

/// A loaded encoder: tokenizer, BERT weights and head settings.
pub struct Encoder {
    config: ModelConfig,
    tokenizer: Arc<BertTokenizer>,
    /// Identifies `tokenizer` in the bag cache (copies share it).
    tokenizer_id: u64,
    model: BertModel,
    device: Device,
    pad_id: u32,
}

/// A model's `config.json` and `tokenizer.json`, read and checked before its
/// weights arrive (in a browser, while `model.safetensors` still
/// downloads); [`Prepared::load`] adds the weights.
#[derive(Clone)]
pub struct Prepared {
    config: ModelConfig,
    tokenizer: Arc<BertTokenizer>,
    tokenizer_id: u64,
    pad_id: u32,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("config", &self.config)
            .field("vocab_size", &self.tokenizer.vocab_size())
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// Parse `config.json` and `tokenizer.json` and check that they agree.
    pub fn parse(config: &[u8], tokenizer: &[u8]) -> Result<Self, EncoderError> {
        let config = ModelConfig::from_json(config)?;
        let tokenizer = BertTokenizer::from_json(tokenizer, config.rlrag.max_length)?;
        // Every id the tokenizer can produce must index the embedding table.
        let count = tokenizer.vocab_size();
        let vocab = config.bert.vocab_size;
        let max = tokenizer.max_id().map_or(0, |m| m as usize);
        if count > vocab || max >= vocab {
            return Err(EncoderError::Tokenizer(format!(
                "tokenizer has {count} tokens, the largest id {max}, but the model only {vocab}: \
                 ids outside the model's vocabulary would read past its embedding table"
            )));
        }
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        Ok(Self {
            config,
            tokenizer: Arc::new(tokenizer),
            tokenizer_id: NEXT_TOKENIZER.fetch_add(1, Ordering::Relaxed),
            pad_id,
        })
    }

    /// The model's settings.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The ids the model is given for `text` (special tokens added,
    /// truncated to the model's length), known before the weights arrive;
    /// every one is below the model's vocabulary size.
    pub fn input_ids(&self, text: &str) -> Result<Vec<u32>, EncoderError> {
        self.tokenizer.encode(text)
    }

    /// The encoder with `weights` (`model.safetensors`, taken by value: its
    /// tensors are renamed in place, so the weights are not copied once
    /// more; in a browser, one copy fewer of them in memory at once).
    pub fn load(self, weights: Vec<u8>, device: &Device) -> Result<Encoder, EncoderError> {
        self.load_with(weights, device, None)
    }

    /// As [`Prepared::load`] for a new cross-encoder made from another
    /// model's weights (a sentence encoder's body and pooler): a classifier
    /// the weights lack is initialised from `seed`
    /// ([`crate::bert::seeded_normal`]); one they hold is kept.
    pub fn load_new_classifier(
        self,
        weights: Vec<u8>,
        device: &Device,
        seed: u64,
    ) -> Result<Encoder, EncoderError> {
        if !matches!(self.config.rlrag.head, Head::CrossEncoder { .. }) {
            return Err(EncoderError::Config(
                "only a cross-encoder head has a classifier to initialise".into(),
            ));
        }
        self.load_with(weights, device, Some(seed))
    }

    fn load_with(
        self,
        weights: Vec<u8>,
        device: &Device,
        classifier_seed: Option<u64>,
    ) -> Result<Encoder, EncoderError> {
        // The model is allocated before its weights are read: a config that
        // describes more parameters than the file could hold is refused
        // first (at 2 bytes a parameter, the smallest type loaded).
        let least = self.config.bert.parameters_at_least();
        if least.is_none_or(|n| n.saturating_mul(2) > weights.len() as u64) {
            return Err(EncoderError::Weights(format!(
                "config.json describes a model of at least {} parameters, more than the {} bytes of model.safetensors hold",
                least.map_or_else(|| "2^64".to_owned(), |n| n.to_string()),
                weights.len()
            )));
        }
        let mut model = self.config.bert.init(&self.config.rlrag.head, device);
        let weights = renamed_in_place(weights, hf_to_module_key)?;
        let mut store = SafetensorsStore::from_bytes(Some(weights))
            .with_from_adapter(PyTorchToBurnAdapter)
            .allow_partial(true);
        let result = model
            .load_from(&mut store)
            .map_err(|e| EncoderError::Weights(e.to_string()))?;
        if !result.errors.is_empty() {
            return Err(EncoderError::Weights(format!("{:?}", result.errors)));
        }
        let (classifier, missing): (Vec<&str>, Vec<&str>) = result
            .missing
            .iter()
            .map(|(p, _)| p.as_str())
            .partition(|p| p.starts_with("score.classifier."));
        let missing = match classifier_seed {
            Some(seed) if !classifier.is_empty() => {
                model = model.with_seeded_classifier(seed);
                missing
            }
            _ => classifier.into_iter().chain(missing).collect(),
        };
        if !missing.is_empty() {
            return Err(EncoderError::Weights(format!(
                "tensors missing for this architecture: {}",
                missing.join(", ")
            )));
        }
        Ok(Encoder {
            config: self.config,
            tokenizer: self.tokenizer,
            tokenizer_id: self.tokenizer_id,
            model,
            device: device.clone(),
            pad_id: self.pad_id,
        })
    }
}

/// How [`Encoder::new_cross_encoder`] builds a cross-encoder from another
/// BERT model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossEncoderInit {
    /// Keep the base model's first `layers` transformer layers (`None`:
    /// all): fewer layers score faster.
    pub layers: Option<usize>,
    /// Pair length in tokens, special tokens included.
    pub max_length: usize,
    /// Question length in tokens.
    pub max_question_tokens: usize,
    /// Seed of the new classifier ([`crate::bert::seeded_normal`]).
    pub seed: u64,
}

/// Tokenizer identities for [`BAGS`].
static NEXT_TOKENIZER: AtomicU64 = AtomicU64::new(0);

/// Most space-separated chunks whose token ids a thread remembers per
/// tokenizer; past it the memory starts over.
const BAG_CACHE_CHUNKS: usize = 1 << 16;

thread_local! {
    /// Tokenizer id → chunk of text → its token ids (see [`chunks`]); chunks
    /// repeat, and a hit skips the tokenizer, most of the cost of
    /// bag-of-tokens indexing.
    static BAGS: RefCell<FastMap<u64, ChunkIds>> = RefCell::new(FastMap::default());
}

/// One tokenizer's remembered chunks and their token ids.
type ChunkIds = FastMap<Box<str>, Box<[u32]>>;

/// A text cut where BERT tokenization never crosses: at ASCII spaces (the
/// normaliser keeps them and the pre-tokenizer splits there) and around
/// ASCII punctuation, which the pre-tokenizer always isolates — except in a
/// space-separated part that `may_hold_added` says may hold an added token
/// such as `[MASK]` (no added token may hold a space). A text's tokens are
/// its chunks' tokens, in order.
fn chunks<'t>(
    text: &'t str,
    may_hold_added: impl Fn(&str) -> bool + Copy + 't,
) -> impl Iterator<Item = &'t str> {
    text.split(' ')
        .filter(|c| !c.is_empty())
        .flat_map(move |part| {
            let whole = may_hold_added(part);
            let mut rest = part;
            std::iter::from_fn(move || {
                if rest.is_empty() {
                    return None;
                }
                let cut = if whole {
                    rest.len()
                } else {
                    match rest.find(|c: char| c.is_ascii_punctuation()) {
                        Some(0) => 1,
                        Some(i) => i,
                        None => rest.len(),
                    }
                };
                let (head, tail) = rest.split_at(cut);
                rest = tail;
                Some(head)
            })
        })
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("config", &self.config)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, EncoderError> {
    std::fs::read(path).map_err(|source| EncoderError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn backend<E: std::fmt::Debug>(e: E) -> EncoderError {
    EncoderError::Backend(format!("{e:?}"))
}

/// Run an encoding future to completion now: on the CPU and on native GPUs
/// reads complete synchronously; a browser GPU needs the `_async` methods.
fn read_now<T>(
    f: impl std::future::Future<Output = Result<T, EncoderError>>,
) -> Result<T, EncoderError> {
    burn::tensor::try_read_sync(f).unwrap_or_else(|| {
        Err(EncoderError::Backend(
            "this device reads results back asynchronously: use the `_async` encode methods".into(),
        ))
    })
}

impl Encoder {
    /// Load a model from its files on `device`.
    pub fn load(files: ModelFiles<'_>, device: &Device) -> Result<Self, EncoderError> {
        Self::load_owned(
            files.weights.to_vec(),
            files.config,
            files.tokenizer,
            device,
        )
    }

    /// As [`Encoder::load`], taking `model.safetensors` by value: its
    /// tensors are renamed in place, so the weights are not copied once more
    /// (in a browser, one copy fewer of them in memory at once).
    pub fn load_owned(
        weights: Vec<u8>,
        config: &[u8],
        tokenizer: &[u8],
        device: &Device,
    ) -> Result<Self, EncoderError> {
        Prepared::parse(config, tokenizer)?.load(weights, device)
    }

    /// A new cross-encoder from a BERT model's files (a sentence encoder
    /// such as all-MiniLM-L6-v2): its embeddings, first layers and pooler,
    /// and a seeded classifier; the configuration says
    /// `BertForSequenceClassification`, so the saved directory loads in
    /// Hugging Face `transformers` too.
    pub fn new_cross_encoder(
        base: ModelFiles<'_>,
        init: CrossEncoderInit,
        device: &Device,
    ) -> Result<Self, EncoderError> {
        let mut config = ModelConfig::from_json(base.config)?;
        if let Some(layers) = init.layers {
            if layers == 0 || layers > config.bert.num_hidden_layers {
                return Err(EncoderError::Config(format!(
                    "layers {layers} must be in 1..={} (the base model's)",
                    config.bert.num_hidden_layers
                )));
            }
            config.bert.num_hidden_layers = layers;
        }
        config.bert.architectures = vec!["BertForSequenceClassification".into()];
        config.rlrag = crate::RlragSettings {
            head: Head::CrossEncoder {
                max_question_tokens: init.max_question_tokens,
            },
            max_length: init.max_length,
            calibration: None,
        };
        config.validate()?;
        Prepared::parse(&config.to_json()?, base.tokenizer)?.load_new_classifier(
            base.weights.to_vec(),
            device,
            init.seed,
        )
    }

    /// Load `config.json`, `model.safetensors` and `tokenizer.json` from `dir`.
    pub fn from_dir(dir: &Path, device: &Device) -> Result<Self, EncoderError> {
        use crate::models::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
        let weights = read(&dir.join(WEIGHTS_FILE))?;
        let config = read(&dir.join(CONFIG_FILE))?;
        let tokenizer = read(&dir.join(TOKENIZER_FILE))?;
        Self::load(
            ModelFiles {
                weights: &weights,
                config: &config,
                tokenizer: &tokenizer,
            },
            device,
        )
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The weights and architecture.
    pub fn model(&self) -> &BertModel {
        &self.model
    }

    /// The vocabulary string of a token id.
    pub fn token(&self, id: u32) -> Option<String> {
        self.tokenizer.id_to_token(id)
    }

    /// Model input ids of each text: special tokens added, truncated to
    /// `max_length`.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, EncoderError> {
        texts.iter().map(|t| self.tokenizer.encode(t)).collect()
    }

    /// The longest prefix of `text` (cut at a token boundary) whose model
    /// input, special tokens included, is at most `max_tokens` long; the
    /// whole text when it fits, and never more than the model reads
    /// (`max_length`). For building inputs of an exact length (benchmarks)
    /// and for showing what the model actually read.
    pub fn truncate_to_tokens<'t>(
        &self,
        text: &'t str,
        max_tokens: usize,
    ) -> Result<&'t str, EncoderError> {
        let special = self.tokenizer.special_count();
        let max_tokens = max_tokens.min(self.config.rlrag.max_length);
        if max_tokens <= special {
            return Ok("");
        }
        let tokens = self.tokenizer.ids_with_ends(text)?;
        if tokens.len() <= max_tokens - special {
            return Ok(text);
        }
        // A cut inside a word can re-tokenize into more pieces: drop tokens
        // until the prefix fits.
        let mut keep = max_tokens - special;
        while keep > 0 {
            let prefix = text.get(..tokens[keep - 1].1).unwrap_or_default();
            if self.tokenizer.ids(prefix)?.len() + special <= max_tokens {
                return Ok(prefix);
            }
            keep -= 1;
        }
        Ok("")
    }

    /// The bag of tokens of a text: its distinct token ids without special
    /// tokens and without truncation, sorted (what SiDR's bag-of-tokens index
    /// stores; no model run).
    pub fn bag_of_tokens(&self, text: &str) -> Result<Vec<u32>, EncoderError> {
        let mut ids: Vec<u32> = Vec::new();
        BAGS.with(|bags| -> Result<(), EncoderError> {
            let Ok(mut bags) = bags.try_borrow_mut() else {
                ids = self.token_ids(text)?;
                return Ok(());
            };
            if !self.tokenizer.chunkable() {
                ids = self.token_ids(text)?;
                return Ok(());
            }
            let cache = bags.entry(self.tokenizer_id).or_default();
            let tokenizer = &self.tokenizer;
            for chunk in chunks(text, |part| tokenizer.may_hold_added(part)) {
                if let Some(known) = cache.get(chunk) {
                    ids.extend_from_slice(known);
                    continue;
                }
                let new = self.chunk_ids(chunk)?;
                ids.extend_from_slice(&new);
                if cache.len() >= BAG_CACHE_CHUNKS {
                    cache.clear();
                }
                cache.insert(chunk.into(), new.into());
            }
            Ok(())
        })?;
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The token ids of one chunk (see [`chunks`]): through the plain-word
    /// shortcut where it applies, else the whole tokenizer.
    fn chunk_ids(&self, chunk: &str) -> Result<Vec<u32>, EncoderError> {
        match self.tokenizer.plain_word_ids(chunk) {
            Some(ids) => ids,
            None => self.token_ids(chunk),
        }
    }

    /// Every token id of `text` (no special tokens, no truncation), in order
    /// (the tokenizer itself, uncached).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EncoderError> {
        self.tokenizer.ids(text)
    }

    /// Group texts into batches of similar length within a token budget;
    /// with `out_row_bytes` (what each row's output needs), also within
    /// [`BATCH_BYTE_BUDGET`] of attention scores and output. With
    /// `first_lens` (pairs: how many ids of each row are token type 0), the
    /// batches carry token types.
    fn batches(
        &self,
        ids: &[Vec<u32>],
        first_lens: Option<&[usize]>,
        budget: usize,
        out_row_bytes: Option<u64>,
    ) -> Vec<Batch> {
        let heads = self.config.bert.num_attention_heads as u64;
        let memory_rows = |len: usize| -> usize {
            let Some(out) = out_row_bytes else {
                return usize::MAX;
            };
            let attention = heads
                .saturating_mul((len as u64).saturating_mul(len as u64))
                .saturating_mul(4);
            usize::try_from(BATCH_BYTE_BUDGET / attention.max(out).max(1)).unwrap_or(usize::MAX)
        };
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut out = Vec::new();
        let mut start = 0;
        while start < order.len() {
            // Sorted longest first: the first text of a batch sets its padded length.
            let len = ids[order[start]].len().max(1);
            let count = (budget / len)
                .min(memory_rows(len))
                .clamp(1, order.len() - start);
            let members: Vec<usize> = order[start..start + count].to_vec();
            let mut flat = Vec::with_capacity(count * len);
            let mut pad = Vec::with_capacity(count * len);
            let mut types = Vec::with_capacity(if first_lens.is_some() { count * len } else { 0 });
            let any = members.iter().any(|&i| ids[i].len() < len);
            for &i in &members {
                let row = &ids[i];
                flat.extend(row.iter().map(|&t| i64::from(t)));
                flat.extend(std::iter::repeat_n(i64::from(self.pad_id), len - row.len()));
                pad.extend(std::iter::repeat_n(false, row.len()));
                pad.extend(std::iter::repeat_n(true, len - row.len()));
                if let Some(first) = first_lens {
                    let first = first[i].min(len);
                    types.extend(std::iter::repeat_n(0i64, first));
                    types.extend(std::iter::repeat_n(1i64, row.len().saturating_sub(first)));
                    types.extend(std::iter::repeat_n(0i64, len - row.len().max(first)));
                }
            }
            let ids_t =
                Tensor::<2, Int>::from_data(TensorData::new(flat, [count, len]), &self.device);
            let pad_t =
                Tensor::<2, Bool>::from_data(TensorData::new(pad, [count, len]), &self.device);
            let types = first_lens.map(|_| {
                Tensor::<2, Int>::from_data(TensorData::new(types, [count, len]), &self.device)
            });
            out.push(Batch {
                members,
                ids: ids_t,
                types,
                pad: Padding { mask: pad_t, any },
            });
            start += count;
        }
        out
    }

    /// Dense embeddings of `texts`, in order (requires a dense head). On a
    /// device that reads back asynchronously (WebGPU in a browser) use
    /// [`Encoder::encode_dense_async`].
    pub fn encode_dense(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncoderError> {
        read_now(self.encode_dense_async(texts))
    }

    /// [`Encoder::encode_dense`], reading results back asynchronously.
    pub async fn encode_dense_async(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncoderError> {
        let Head::Dense { pooling, normalize } = self.config.rlrag.head else {
            return Err(EncoderError::Input(format!(
                "this model has a {} head, not a dense one",
                self.head_name()
            )));
        };
        let ids = self.tokenize(texts)?;
        let hidden = self.config.bert.hidden_size;
        let mut out = vec![Vec::new(); texts.len()];
        for Batch {
            members,
            ids: ids_t,
            pad,
            ..
        } in self.batches(&ids, None, DENSE_TOKEN_BUDGET, Some(hidden as u64 * 4))
        {
            let pooled = self.pooled_hidden(ids_t, &pad, pooling);
            let values = pooled
                .into_data_async()
                .await
                .map_err(backend)?
                .try_to_vec::<f32>()
                .map_err(backend)?;
            for (row, &i) in members.iter().enumerate() {
                let mut v = values[row * hidden..(row + 1) * hidden].to_vec();
                if normalize {
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                    v.iter_mut().for_each(|x| *x /= norm);
                }
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Hidden states `[batch, hidden]` pooled over the non-padding tokens
    /// (differentiable; not normalised).
    fn pooled_hidden(&self, ids: Tensor<2, Int>, pad: &Padding, pooling: Pooling) -> Tensor<2> {
        let [b, _] = ids.dims();
        let hidden = self.config.bert.hidden_size;
        let states = self.model.hidden(ids, pad.attention());
        match pooling {
            Pooling::Mean => {
                let keep = pad.mask.clone().bool_not().float().unsqueeze_dim::<3>(2);
                let count = keep.clone().sum_dim(1).clamp_min(1e-9f32);
                (states * keep).sum_dim(1).div(count)
            }
            Pooling::Cls => states.narrow(1, 0, 1),
        }
        .reshape([b, hidden])
    }

    /// Dense embeddings `[texts, hidden]` as a tensor on the encoder's
    /// device, pooled and (when the head says so) L2-normalised, texts cut
    /// to `max_tokens`: what [`Encoder::encode_dense`] returns, but on an
    /// autodiff device differentiable (what dense training scores with).
    /// One forward pass: the caller sizes the batch.
    pub fn dense_embeddings(
        &self,
        texts: &[&str],
        max_tokens: usize,
    ) -> Result<Tensor<2>, EncoderError> {
        let Head::Dense { pooling, normalize } = self.config.rlrag.head else {
            return Err(EncoderError::Input(format!(
                "this model has a {} head, not a dense one",
                self.head_name()
            )));
        };
        let (order, ids, pad) = self.training_batch(texts, max_tokens)?;
        let mut pooled = self.pooled_hidden(ids, &pad, pooling);
        if normalize {
            let norm = pooled
                .clone()
                .powi_scalar(2)
                .sum_dim(1)
                .sqrt()
                .clamp_min(1e-12f32);
            pooled = pooled.div(norm);
        }
        Ok(pooled.select(0, self.inverse_order(&order)))
    }

    /// `texts` tokenized, each cut to `max_tokens` (keeping its final
    /// `[SEP]`), as one batch sorted by length: (row order, ids, padding).
    fn training_batch(
        &self,
        texts: &[&str],
        max_tokens: usize,
    ) -> Result<(Vec<usize>, Tensor<2, Int>, Padding), EncoderError> {
        if texts.is_empty() || max_tokens < 2 {
            return Err(EncoderError::Input(format!(
                "need at least one text and max_tokens >= 2 (got {} texts, {max_tokens})",
                texts.len()
            )));
        }
        let mut ids = self.tokenize(texts)?;
        for row in &mut ids {
            if row.len() > max_tokens {
                let last = row[row.len() - 1];
                row.truncate(max_tokens - 1);
                row.push(last);
            }
        }
        let Batch {
            members, ids, pad, ..
        } = self
            .batches(&ids, None, usize::MAX, None)
            .pop()
            .ok_or_else(|| EncoderError::Input("no texts".into()))?;
        Ok((members, ids, pad))
    }

    /// The index that puts rows sorted as `order` back in the caller's order.
    fn inverse_order(&self, order: &[usize]) -> Tensor<1, Int> {
        let mut inverse = vec![0i64; order.len()];
        for (row, &i) in order.iter().enumerate() {
            inverse[i] = row as i64;
        }
        Tensor::<1, Int>::from_data(TensorData::new(inverse, [order.len()]), &self.device)
    }

    /// MLM logits `[batch, vocab]` max-pooled over the non-padding tokens.
    /// The `[rows, len, vocab]` logits are made a chunk of rows at a time
    /// (see [`LOGITS_BYTE_BUDGET`]); the result is differentiable.
    fn pooled_logits(&self, ids: Tensor<2, Int>, pad: Padding) -> Result<Tensor<2>, EncoderError> {
        let [b, l] = ids.dims();
        let states = self.model.hidden(ids, pad.attention());
        let vocab = self.config.bert.vocab_size;
        // In u64: on wasm32 length × vocabulary × 4 can pass 2^32.
        let per_row = (l.max(1) as u64)
            .saturating_mul(vocab.max(1) as u64)
            .saturating_mul(4);
        let rows = usize::try_from(LOGITS_BYTE_BUDGET as u64 / per_row)
            .unwrap_or(usize::MAX)
            .clamp(1, b.max(1));
        let mut pooled = Vec::with_capacity(b.div_ceil(rows));
        for start in (0..b).step_by(rows) {
            let n = rows.min(b - start);
            let mask = pad.any.then(|| pad.mask.clone().narrow(0, start, n));
            let rows = self
                .model
                .mlm_pooled(states.clone().narrow(0, start, n), mask)
                .ok_or_else(|| EncoderError::Weights("the model has no MLM head".into()))?;
            pooled.push(rows);
        }
        Ok(if pooled.len() == 1 {
            pooled.swap_remove(0)
        } else {
            Tensor::cat(pooled, 0)
        })
    }

    /// Learned-sparse vectors of `texts`, in order (requires a sparse head):
    /// vocabulary logits, max-pooled over the non-padding tokens, activated,
    /// then the `top_k` largest positive terms.
    /// On a device that reads back asynchronously (WebGPU in a browser) use
    /// [`Encoder::encode_sparse_async`].
    pub fn encode_sparse(&self, texts: &[&str]) -> Result<Vec<SparseVector>, EncoderError> {
        read_now(self.encode_sparse_async(texts))
    }

    /// [`Encoder::encode_sparse`], reading results back asynchronously.
    pub async fn encode_sparse_async(
        &self,
        texts: &[&str],
    ) -> Result<Vec<SparseVector>, EncoderError> {
        let Head::Sparse { activation, top_k } = self.config.rlrag.head else {
            return Err(EncoderError::Input(format!(
                "this model has a {} head, not a sparse one",
                self.head_name()
            )));
        };
        let ids = self.tokenize(texts)?;
        let mut out = vec![SparseVector::default(); texts.len()];
        let vocab = self.config.bert.vocab_size as u64;
        for Batch {
            members,
            ids: ids_t,
            pad,
            ..
        } in self.batches(&ids, None, SPARSE_TOKEN_BUDGET, Some(vocab * 4))
        {
            // Both activations are monotone, so max-pooling the logits first
            // equals max-pooling the activations.
            let pooled = self.pooled_logits(ids_t, pad)?;
            let vocab = pooled.dims()[1];
            let values = pooled
                .into_data_async()
                .await
                .map_err(backend)?
                .try_to_vec::<f32>()
                .map_err(backend)?;
            for (row, &i) in members.iter().enumerate() {
                let row_values = &values[row * vocab..(row + 1) * vocab];
                out[i] = SparseVector::from_dense(row_values, activation, top_k);
            }
        }
        Ok(out)
    }

    /// Learned-sparse representations `[texts, vocab]` as a tensor on the
    /// encoder's device: MLM logits, max-pooled over the non-padding tokens,
    /// activated, all terms kept (no top-k), texts cut to `max_tokens`. On an
    /// autodiff device the result is differentiable: this is what training
    /// scores with. One forward pass: the caller sizes the batch.
    pub fn sparse_activations(
        &self,
        texts: &[&str],
        max_tokens: usize,
    ) -> Result<Tensor<2>, EncoderError> {
        let Head::Sparse { activation, .. } = self.config.rlrag.head else {
            return Err(EncoderError::Input(format!(
                "this model has a {} head, not a sparse one",
                self.head_name()
            )));
        };
        let (order, ids_t, pad) = self.training_batch(texts, max_tokens)?;
        let pooled = self.pooled_logits(ids_t, pad)?;
        let activated = match activation {
            SparseActivation::Log1pRelu => pooled.clamp_min(0.0).add_scalar(1.0).log(),
            // e^min(x,0) + max(x,0): x + 1 above zero, e^x below (elu(x) + 1).
            SparseActivation::Elu1p => pooled.clone().clamp_max(0.0).exp() + pooled.clamp_min(0.0),
        };
        Ok(activated.select(0, self.inverse_order(&order)))
    }

    /// The same encoder with other weights of the same architecture (a
    /// training step's result).
    pub fn with_model(&self, model: BertModel) -> Self {
        let device = model
            .devices()
            .into_iter()
            .next()
            .unwrap_or_else(|| self.device.clone());
        Self {
            config: self.config.clone(),
            tokenizer: Arc::clone(&self.tokenizer),
            tokenizer_id: self.tokenizer_id,
            model,
            device,
            pad_id: self.pad_id,
        }
    }

    /// The same encoder with `calibration` as its logit → probability map
    /// (saved in `config.json`).
    #[must_use]
    pub fn with_calibration(mut self, calibration: Option<crate::Calibration>) -> Self {
        self.config.rlrag.calibration = calibration;
        self
    }

    /// An inference copy: the weights without autodiff tracking, on the plain
    /// device (what retrieval during training runs on).
    pub fn valid(&self) -> Self {
        self.with_model(self.model.valid())
    }

    /// The weights as `model.safetensors` bytes with Hugging Face names
    /// (`BertForMaskedLM` layout), loadable by [`Encoder::load`].
    pub fn weights_safetensors(&self) -> Result<Vec<u8>, EncoderError> {
        let mut store = SafetensorsStore::from_bytes(None).with_to_adapter(BurnToPyTorchAdapter);
        self.model
            .valid()
            .save_into(&mut store)
            .map_err(|e| EncoderError::Weights(e.to_string()))?;
        let bytes = store
            .get_bytes()
            .map_err(|e| EncoderError::Weights(e.to_string()))?;
        renamed_safetensors(&bytes, module_to_hf_key)
    }

    /// The sparse activation and top-k of a sparse model.
    pub fn sparse_settings(&self) -> Option<(SparseActivation, Option<usize>)> {
        match self.config.rlrag.head {
            Head::Sparse { activation, top_k } => Some((activation, top_k)),
            Head::Dense { .. } | Head::CrossEncoder { .. } => None,
        }
    }

    /// The head's kind, for messages.
    fn head_name(&self) -> &'static str {
        match self.config.rlrag.head {
            Head::Dense { .. } => "dense",
            Head::Sparse { .. } => "sparse",
            Head::CrossEncoder { .. } => "cross-encoder",
        }
    }

    /// The question length a cross-encoder keeps, `None` for other heads.
    fn max_question_tokens(&self) -> Result<usize, EncoderError> {
        match self.config.rlrag.head {
            Head::CrossEncoder {
                max_question_tokens,
            } => Ok(max_question_tokens),
            _ => Err(EncoderError::Input(
                "this model is not a cross-encoder (no classifier head)".into(),
            )),
        }
    }

    /// A cross-encoder's input for (`question`, `passage`): ids as BERT's
    /// pair template builds them (the question cut to `max_question_tokens`,
    /// the passage to fill `max_length`) and how many of them are token
    /// type 0.
    pub fn tokenize_pair(
        &self,
        question: &str,
        passage: &str,
    ) -> Result<(Vec<u32>, usize), EncoderError> {
        let max_question = self.max_question_tokens()?;
        self.tokenizer.encode_pair(question, passage, max_question)
    }

    /// Every pair's ids and first-segment length ([`Encoder::tokenize_pair`]).
    fn pair_inputs<'t>(
        &self,
        pairs: impl Iterator<Item = (&'t str, &'t str)>,
    ) -> Result<(Vec<Vec<u32>>, Vec<usize>), EncoderError> {
        let inputs = pairs
            .map(|(q, p)| self.tokenize_pair(q, p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(inputs.into_iter().unzip())
    }

    /// A cross-encoder's relevance logits of each passage for `question`,
    /// in order (higher: more relevant). On a device that reads back
    /// asynchronously (WebGPU in a browser) use
    /// [`Encoder::score_pairs_async`].
    pub fn score_pairs(&self, question: &str, passages: &[&str]) -> Result<Vec<f32>, EncoderError> {
        read_now(self.score_pairs_async(question, passages))
    }

    /// [`Encoder::score_pairs`], reading results back asynchronously.
    pub async fn score_pairs_async(
        &self,
        question: &str,
        passages: &[&str],
    ) -> Result<Vec<f32>, EncoderError> {
        let (ids, first) = self.pair_inputs(passages.iter().map(|p| (question, *p)))?;
        let hidden = self.config.bert.hidden_size as u64;
        let mut out = vec![0.0f32; passages.len()];
        for batch in self.batches(&ids, Some(&first), DENSE_TOKEN_BUDGET, Some(hidden * 4)) {
            let logits = self.batch_pair_logits(batch.ids, batch.types, &batch.pad)?;
            let values = logits
                .into_data_async()
                .await
                .map_err(backend)?
                .try_to_vec::<f32>()
                .map_err(backend)?;
            for (&i, v) in batch.members.iter().zip(values) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn batch_pair_logits(
        &self,
        ids: Tensor<2, Int>,
        types: Option<Tensor<2, Int>>,
        pad: &Padding,
    ) -> Result<Tensor<1>, EncoderError> {
        let types = types.ok_or_else(|| EncoderError::Input("pairs need token types".into()))?;
        self.model
            .pair_logits(ids, types, pad.attention())
            .ok_or_else(|| EncoderError::Weights("the model has no classifier head".into()))
    }

    /// A cross-encoder's logits `[pairs]` for (question, passage) pairs as a
    /// tensor on the encoder's device, in order; on an autodiff device the
    /// result is differentiable (what training scores with). One forward
    /// pass: the caller sizes the batch.
    pub fn pair_logits(&self, pairs: &[(&str, &str)]) -> Result<Tensor<1>, EncoderError> {
        if pairs.is_empty() {
            return Err(EncoderError::Input("need at least one pair".into()));
        }
        let (ids, first) = self.pair_inputs(pairs.iter().copied())?;
        let batch = self
            .batches(&ids, Some(&first), usize::MAX, None)
            .pop()
            .ok_or_else(|| EncoderError::Input("no pairs".into()))?;
        let mut inverse = vec![0i64; batch.members.len()];
        for (row, &i) in batch.members.iter().enumerate() {
            inverse[i] = row as i64;
        }
        let logits = self.batch_pair_logits(batch.ids, batch.types, &batch.pad)?;
        let index =
            Tensor::<1, Int>::from_data(TensorData::new(inverse, [pairs.len()]), &self.device);
        Ok(logits.select(0, index))
    }
}
