//! The llama family in burn (SmolLM2, Llama, Qwen2): token embeddings,
//! pre-norm blocks of grouped-query attention with rotary positions and a
//! SwiGLU feed-forward, RMSNorm, and the output matrix (tied to the
//! embeddings when the file has none), loaded from a GGUF file's
//! dequantised tensors.
//!
//! llama.cpp's converter reorders the rows of each llama attention head's
//! Q and K weights so that rotary pairs are adjacent (row `2i + j` holds
//! Hugging Face's row `i + j·d/2`); it leaves Qwen2's in Hugging Face's
//! order. [`Rope`] follows the file: adjacent pairs for `llama`, halves for
//! `qwen2`, which is the same computation as Hugging Face's on the original
//! weights (`scripts/reference/golden_llama.py` checks it that way).

use burn::module::{Module, Param};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Int, Tensor, TensorData, activation};
use rlrag_reward::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::GeneratorError;
use crate::gguf::Gguf;

/// Which elements a rotary position embedding rotates together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rope {
    /// Elements `2i` and `2i + 1` (llama.cpp's `NORM`: llama files).
    Adjacent,
    /// Elements `i` and `i + d/2` (`NEOX`: Qwen2 files, Hugging Face).
    Halves,
}

/// A model's shape, from the file's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// `llama` or `qwen2`.
    pub architecture: String,
    /// Token embeddings' rows.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention: `heads` is a multiple).
    pub kv_heads: usize,
    /// Feed-forward width.
    pub feed_forward: usize,
    /// RMSNorm's epsilon.
    pub rms_eps: f64,
    /// RoPE's base frequency.
    pub rope_base: f64,
    /// Which pairs RoPE rotates.
    pub rope: Rope,
    /// Longest context the model was trained for.
    pub context: usize,
    /// Whether the output matrix is the token embeddings (no `output.weight`).
    pub tied: bool,
    /// Whether the Q, K and V projections have biases (Qwen2).
    pub qkv_bias: bool,
}

impl LlamaConfig {
    /// The shape a GGUF file declares (`general.architecture` `llama` or
    /// `qwen2`), checked for consistency.
    pub fn from_gguf(file: &Gguf) -> Result<Self, GeneratorError> {
        let bad = |reason: String| GeneratorError::Model { reason };
        let arch = file
            .metadata
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("no general.architecture".into()))?
            .to_owned();
        let rope = match arch.as_str() {
            "llama" => Rope::Adjacent,
            "qwen2" => Rope::Halves,
            other => return Err(bad(format!("architecture `{other}` (llama or qwen2)"))),
        };
        let int = |key: &str| -> Result<usize, GeneratorError> {
            let k = format!("{arch}.{key}");
            file.metadata
                .get(&k)
                .and_then(|v| v.as_u64())
                .and_then(|v| usize::try_from(v).ok())
                .filter(|&v| v > 0)
                .ok_or_else(|| bad(format!("{k} is missing or not a positive integer")))
        };
        let float = |key: &str, default: Option<f64>| -> Result<f64, GeneratorError> {
            let k = format!("{arch}.{key}");
            match file.metadata.get(&k) {
                Some(v) => v
                    .as_f64()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| bad(format!("{k} is not a positive number"))),
                None => default.ok_or_else(|| bad(format!("{k} is missing"))),
            }
        };
        let heads = int("attention.head_count")?;
        let kv_heads = match file
            .metadata
            .get(&format!("{arch}.attention.head_count_kv"))
        {
            Some(_) => int("attention.head_count_kv")?,
            None => heads,
        };
        let hidden = int("embedding_length")?;
        let embed = file.info("token_embd.weight")?;
        let config = Self {
            vocab_size: usize::try_from(embed.dims.get(1).copied().unwrap_or(0))
                .map_err(|_| bad("token_embd.weight is too large".into()))?,
            hidden,
            layers: int("block_count")?,
            heads,
            kv_heads,
            feed_forward: int("feed_forward_length")?,
            rms_eps: float("attention.layer_norm_rms_epsilon", None)?,
            rope_base: float("rope.freq_base", Some(10_000.0))?,
            rope,
            context: int("context_length")?,
            tied: file.info("output.weight").is_err(),
            qkv_bias: file.info("blk.0.attn_q.bias").is_ok(),
            architecture: arch,
        };
        config.check()?;
        Ok(config)
    }

    /// Whether the shape is one the decoder runs: heads divide the width
    /// into even head widths, key/value heads divide the heads, and every
    /// size is positive and at most 2^20 (2^24 for the vocabulary).
    pub fn check(&self) -> Result<(), GeneratorError> {
        let (hidden, heads, kv_heads) = (self.hidden, self.heads, self.kv_heads);
        let sizes = [
            self.hidden,
            self.layers,
            self.heads,
            self.kv_heads,
            self.feed_forward,
            self.context,
        ];
        if sizes.iter().any(|&n| n == 0 || n > 1 << 20)
            || self.vocab_size == 0
            || self.vocab_size > 1 << 24
            || !(self.rms_eps.is_finite() && self.rms_eps > 0.0)
            || !(self.rope_base.is_finite() && self.rope_base > 0.0)
        {
            return Err(GeneratorError::Model {
                reason: format!("sizes out of range: {self:?}"),
            });
        }
        if hidden % heads != 0 || heads % kv_heads != 0 || (hidden / heads) % 2 != 0 {
            return Err(GeneratorError::Model {
                reason: format!("{hidden} wide with {heads} heads and {kv_heads} key/value heads"),
            });
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// How many weights a model of this shape has (`None`: more than a
    /// `u64` counts).
    pub fn parameters(&self) -> Option<u64> {
        let n = |x: usize| x as u64;
        let (h, v, ff) = (n(self.hidden), n(self.vocab_size), n(self.feed_forward));
        let hd = n(self.head_dim());
        let (qo, kvo) = (
            n(self.heads).checked_mul(hd)?,
            n(self.kv_heads).checked_mul(hd)?,
        );
        let biases = if self.qkv_bias { qo + 2 * kvo } else { 0 };
        let block = [
            2 * h,
            h.checked_mul(qo)?,
            h.checked_mul(kvo)?.checked_mul(2)?,
            qo.checked_mul(h)?,
            h.checked_mul(ff)?.checked_mul(3)?,
            biases,
        ]
        .iter()
        .try_fold(0u64, |a, &b| a.checked_add(b))?;
        let embed = v.checked_mul(h)?;
        let output = if self.tied { 0 } else { embed };
        n(self.layers)
            .checked_mul(block)?
            .checked_add(embed)?
            .checked_add(output)?
            .checked_add(h)
    }
}

/// One pre-norm block: attention, then the SwiGLU feed-forward.
#[derive(Module, Debug)]
pub struct Block {
    attn_norm: Param<Tensor<1>>,
    /// Projections as `[in, out]` matrices; Qwen2's Q/K/V biases.
    q: Param<Tensor<2>>,
    k: Param<Tensor<2>>,
    v: Param<Tensor<2>>,
    q_bias: Option<Param<Tensor<1>>>,
    k_bias: Option<Param<Tensor<1>>>,
    v_bias: Option<Param<Tensor<1>>>,
    o: Param<Tensor<2>>,
    ffn_norm: Param<Tensor<1>>,
    gate: Param<Tensor<2>>,
    up: Param<Tensor<2>>,
    down: Param<Tensor<2>>,
}

/// The weights.
#[derive(Module, Debug)]
pub struct Weights {
    embed: Param<Tensor<2>>,
    blocks: Vec<Block>,
    norm: Param<Tensor<1>>,
    /// `[hidden, vocab]`; `None`: the embeddings, tied.
    output: Option<Param<Tensor<2>>>,
}

/// A llama-family decoder.
#[derive(Debug)]
pub struct Llama {
    /// Its shape.
    pub config: LlamaConfig,
    /// Its weights.
    pub weights: Weights,
}

/// A tensor of the file as a burn tensor of `shape` (ggml order reversed:
/// a `[n_in, n_out]` weight is `[n_out, n_in]` here).
fn load<const D: usize>(
    file: &Gguf,
    bytes: &[u8],
    name: &str,
    shape: [usize; D],
    device: &Device,
) -> Result<Tensor<D>, GeneratorError> {
    let info = file.info(name)?;
    let want: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
    if info.dims != want {
        return Err(GeneratorError::Model {
            reason: format!("{name} is {:?}, expected {want:?}", info.dims),
        });
    }
    let values = file.tensor(bytes, name)?;
    Ok(Tensor::from_data(TensorData::new(values, shape), device))
}

/// A `[n_out, n_in]` weight of the file as the `[n_in, n_out]` matrix
/// that multiplies row vectors, stored in that order (a transposed view
/// would make every product read the weights against their layout).
fn matrix(
    file: &Gguf,
    bytes: &[u8],
    name: &str,
    n_in: usize,
    n_out: usize,
    device: &Device,
) -> Result<Param<Tensor<2>>, GeneratorError> {
    let info = file.info(name)?;
    if info.dims != [n_in as u64, n_out as u64] {
        return Err(GeneratorError::Model {
            reason: format!("{name} is {:?}, expected [{n_in}, {n_out}]", info.dims),
        });
    }
    let rows = file.tensor(bytes, name)?;
    let mut values = vec![0.0f32; rows.len()];
    for (o, row) in rows.chunks_exact(n_in).enumerate() {
        for (i, &x) in row.iter().enumerate() {
            values[i * n_out + o] = x;
        }
    }
    Ok(Param::from_tensor(Tensor::from_data(
        TensorData::new(values, [n_in, n_out]),
        device,
    )))
}

fn vector(
    file: &Gguf,
    bytes: &[u8],
    name: &str,
    n: usize,
    device: &Device,
) -> Result<Param<Tensor<1>>, GeneratorError> {
    Ok(Param::from_tensor(load(file, bytes, name, [n], device)?))
}

impl Llama {
    /// The model a GGUF file holds (`bytes`: the whole file).
    pub fn from_gguf(bytes: &[u8], device: &Device) -> Result<Self, GeneratorError> {
        let file = Gguf::parse(bytes)?;
        let config = LlamaConfig::from_gguf(&file)?;
        let (h, hd, ff) = (config.hidden, config.head_dim(), config.feed_forward);
        let (qo, kvo) = (config.heads * hd, config.kv_heads * hd);
        let bias = |name: String, n: usize| -> Result<Option<Param<Tensor<1>>>, GeneratorError> {
            config
                .qkv_bias
                .then(|| vector(&file, bytes, &name, n, device))
                .transpose()
        };
        let mut blocks = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let p = |part: &str| format!("blk.{i}.{part}");
            blocks.push(Block {
                attn_norm: vector(&file, bytes, &p("attn_norm.weight"), h, device)?,
                q: matrix(&file, bytes, &p("attn_q.weight"), h, qo, device)?,
                k: matrix(&file, bytes, &p("attn_k.weight"), h, kvo, device)?,
                v: matrix(&file, bytes, &p("attn_v.weight"), h, kvo, device)?,
                q_bias: bias(p("attn_q.bias"), qo)?,
                k_bias: bias(p("attn_k.bias"), kvo)?,
                v_bias: bias(p("attn_v.bias"), kvo)?,
                o: matrix(&file, bytes, &p("attn_output.weight"), qo, h, device)?,
                ffn_norm: vector(&file, bytes, &p("ffn_norm.weight"), h, device)?,
                gate: matrix(&file, bytes, &p("ffn_gate.weight"), h, ff, device)?,
                up: matrix(&file, bytes, &p("ffn_up.weight"), h, ff, device)?,
                down: matrix(&file, bytes, &p("ffn_down.weight"), ff, h, device)?,
            });
        }
        let embed = Param::from_tensor(load(
            &file,
            bytes,
            "token_embd.weight",
            [config.vocab_size, h],
            device,
        )?);
        let output = (!config.tied)
            .then(|| matrix(&file, bytes, "output.weight", h, config.vocab_size, device))
            .transpose()?;
        let norm = vector(&file, bytes, "output_norm.weight", h, device)?;
        Ok(Self {
            config,
            weights: Weights {
                embed,
                blocks,
                norm,
                output,
            },
        })
    }

    /// A model of `config`'s shape whose weights `fill` gives, tensor by
    /// tensor (called with each tensor's element count).
    fn filled(
        config: LlamaConfig,
        device: &Device,
        fill: &mut dyn FnMut(usize) -> Vec<f32>,
    ) -> Result<Self, GeneratorError> {
        config.check()?;
        let (h, hd, ff, v) = (
            config.hidden,
            config.head_dim(),
            config.feed_forward,
            config.vocab_size,
        );
        let (qo, kvo) = (config.heads * hd, config.kv_heads * hd);
        let mut matrix = |rows: usize, cols: usize| {
            Param::from_tensor(Tensor::<2>::from_data(
                TensorData::new(fill(rows * cols), [rows, cols]),
                device,
            ))
        };
        let embed = matrix(v, h);
        let output = (!config.tied).then(|| matrix(h, v));
        let bias = config.qkv_bias;
        let blocks = (0..config.layers)
            .map(|_| Block {
                attn_norm: ones(h, device),
                q: matrix(h, qo),
                k: matrix(h, kvo),
                v: matrix(h, kvo),
                q_bias: bias.then(|| zeros(qo, device)),
                k_bias: bias.then(|| zeros(kvo, device)),
                v_bias: bias.then(|| zeros(kvo, device)),
                o: matrix(qo, h),
                ffn_norm: ones(h, device),
                gate: matrix(h, ff),
                up: matrix(h, ff),
                down: matrix(ff, h),
            })
            .collect();
        Ok(Self {
            weights: Weights {
                embed,
                blocks,
                norm: ones(h, device),
                output,
            },
            config,
        })
    }

    /// A model of `config`'s shape with seeded random weights (uniform in
    /// ±0.5/√width, norms 1, biases 0): small models for tests.
    pub fn random(config: LlamaConfig, seed: u64, device: &Device) -> Result<Self, GeneratorError> {
        let mut rng = SplitMix64::new(seed);
        let scale = 1.0 / (config.hidden.max(1) as f32).sqrt();
        Self::filled(config, device, &mut |n| {
            (0..n).map(|_| (rng.next_f32() - 0.5) * scale).collect()
        })
    }

    /// The weights as `model.safetensors` bytes (f32, burn's parameter
    /// names), loadable by [`Llama::from_safetensors`].
    pub fn weights_safetensors(&self) -> Result<Vec<u8>, GeneratorError> {
        let mut store = SafetensorsStore::from_bytes(None);
        self.weights
            .valid()
            .save_into(&mut store)
            .map_err(|e| weights_error(e.to_string()))?;
        let bytes = store
            .get_bytes()
            .map_err(|e| weights_error(e.to_string()))?;
        canonical_header(bytes)
    }

    /// The model of `config`'s shape with the weights of `model.safetensors`
    /// bytes ([`Llama::weights_safetensors`]): every tensor must be there
    /// with its shape, and nothing else.
    pub fn from_safetensors(
        config: LlamaConfig,
        bytes: Vec<u8>,
        device: &Device,
    ) -> Result<Self, GeneratorError> {
        config.check()?;
        // Nothing is allocated for a shape the file cannot hold.
        let need = config.parameters().and_then(|p| p.checked_mul(4));
        if need.is_none_or(|need| need > bytes.len() as u64) {
            return Err(weights_error(format!(
                "config.json describes {} parameters, more than the file's {} bytes hold",
                config
                    .parameters()
                    .map_or_else(|| "over 2^64".into(), |p| p.to_string()),
                bytes.len()
            )));
        }
        let mut model = Self::filled(config, device, &mut |n| vec![0.0; n])?;
        let mut store = SafetensorsStore::from_bytes(Some(bytes)).allow_partial(true);
        let result = model
            .weights
            .load_from(&mut store)
            .map_err(|e| weights_error(e.to_string()))?;
        if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
            return Err(weights_error(format!(
                "errors {:?}, missing {:?}, unexpected {:?}",
                result.errors, result.missing, result.unused
            )));
        }
        Ok(model)
    }

    /// A copy of the model on `device` (autodiff) whose weights train:
    /// its own graph, every weight requiring gradients.
    pub fn trainable(&self, device: &Device) -> Self {
        Self {
            config: self.config.clone(),
            weights: self.weights.clone().fork(device).train(),
        }
    }

    /// The model without autodiff (the same weights, no gradients kept).
    pub fn valid(&self) -> Self {
        Self {
            config: self.config.clone(),
            weights: self.weights.valid(),
        }
    }

    /// The next-token logits `[len, vocab]` at every position of `ids`
    /// (one sequence, causal attention from position 0).
    pub fn logits(&self, ids: &[u32]) -> Result<Tensor<2>, GeneratorError> {
        self.extend(ids, &mut KvCache::default())
    }

    /// Run `ids` after the positions `cache` holds, keep their keys and
    /// values in it, and return their next-token logits `[len, vocab]`:
    /// the same as [`Llama::logits`] of the whole sequence, row for row,
    /// without recomputing the earlier positions.
    pub fn extend(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor<2>, GeneratorError> {
        Ok(self.project(self.states(ids, cache)?))
    }

    /// `log p(continuation | prompt)`: the sum of each continuation token's
    /// log-probability given everything before it, as a one-element tensor
    /// (differentiable on an autodiff device: DPO's sequence score). Only
    /// the continuation's positions are projected onto the vocabulary.
    pub fn continuation_logprob(
        &self,
        prompt: &[u32],
        continuation: &[u32],
    ) -> Result<Tensor<1>, GeneratorError> {
        if prompt.is_empty() || continuation.is_empty() {
            return Err(GeneratorError::Model {
                reason: "a continuation needs a prompt and at least one token".into(),
            });
        }
        let ids: Vec<u32> = prompt.iter().chain(continuation).copied().collect();
        let states = self.states(&ids, &mut KvCache::default())?;
        let n = continuation.len();
        let logits = self.project(states.narrow(0, prompt.len() - 1, n));
        let device = logits.device();
        let targets = Tensor::<2, Int>::from_data(
            TensorData::new(
                continuation
                    .iter()
                    .map(|&t| i64::from(t))
                    .collect::<Vec<_>>(),
                [n, 1],
            ),
            &device,
        );
        Ok(activation::log_softmax(logits, 1)
            .gather(1, targets)
            .sum()
            .reshape([1]))
    }

    /// The output matrix applied to final states `[len, hidden]`.
    fn project(&self, x: Tensor<2>) -> Tensor<2> {
        match &self.weights.output {
            Some(out) => x.matmul(out.val()),
            // The embeddings `[vocab, hidden]` times the states' transpose:
            // the large matrix read in its own layout.
            None => self.weights.embed.val().matmul(x.transpose()).transpose(),
        }
    }

    /// [`Llama::extend`] up to the final norm: the states `[len, hidden]`
    /// the output matrix turns into logits.
    fn states(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor<2>, GeneratorError> {
        let c = &self.config;
        if ids.is_empty() {
            return Err(GeneratorError::Model {
                reason: "no tokens to run".into(),
            });
        }
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(GeneratorError::Model {
                reason: format!("token id {bad} is past the vocabulary ({})", c.vocab_size),
            });
        }
        let (start, n) = (cache.len, ids.len());
        if start + n > c.context {
            return Err(GeneratorError::Model {
                reason: format!(
                    "{} tokens are past the model's context of {}",
                    start + n,
                    c.context
                ),
            });
        }
        let device = self.weights.embed.val().device();
        let (hd, nh, nkv) = (c.head_dim(), c.heads, c.kv_heads);
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(ids.iter().map(|&t| i64::from(t)).collect::<Vec<_>>(), [n]),
            &device,
        );
        let mut x = self.weights.embed.val().select(0, index);
        let (cos, sin) = rope_tables(start, n, hd, c.rope_base, &device);
        let mask = causal_mask(start, n, &device);
        let total = start + n;
        let rms = |x: Tensor<2>, w: &Param<Tensor<1>>| {
            let scale = x
                .clone()
                .powi_scalar(2)
                .mean_dim(1)
                .add_scalar(c.rms_eps)
                .sqrt()
                .recip();
            x * scale * w.val().unsqueeze_dim(0)
        };
        let project = |x: Tensor<2>, w: &Param<Tensor<2>>, b: &Option<Param<Tensor<1>>>| {
            let y = x.matmul(w.val());
            match b {
                Some(b) => y + b.val().unsqueeze_dim(0),
                None => y,
            }
        };
        cache.layers.resize_with(self.weights.blocks.len(), || None);
        for (block, kv) in self.weights.blocks.iter().zip(cache.layers.iter_mut()) {
            let h = rms(x.clone(), &block.attn_norm);
            let heads = |t: Tensor<2>, k: usize| t.reshape([n, k, hd]).swap_dims(0, 1);
            let q = heads(project(h.clone(), &block.q, &block.q_bias), nh);
            let k = heads(project(h.clone(), &block.k, &block.k_bias), nkv);
            let v = heads(project(h, &block.v, &block.v_bias), nkv);
            let q = rotate(q, &cos, &sin, c.rope);
            let k = rotate(k, &cos, &sin, c.rope);
            let (k, v) = match kv.take() {
                Some((past_k, past_v)) => (
                    Tensor::cat(vec![past_k, k], 1),
                    Tensor::cat(vec![past_v, v], 1),
                ),
                None => (k, v),
            };
            *kv = Some((k.clone(), v.clone()));
            // Query head j reads key/value head j / (nh / nkv).
            let group = nh / nkv;
            let widen = |t: Tensor<3>| {
                t.unsqueeze_dim::<4>(1)
                    .expand([nkv, group, total, hd])
                    .reshape([nh, total, hd])
            };
            let (k, v) = (widen(k), widen(v));
            let scores = q.matmul(k.swap_dims(1, 2)).div_scalar((hd as f64).sqrt())
                + mask.clone().unsqueeze_dim(0);
            let ctx = activation::softmax(scores, 2)
                .matmul(v)
                .swap_dims(0, 1)
                .reshape([n, nh * hd]);
            x = x + ctx.matmul(block.o.val());
            let h = rms(x.clone(), &block.ffn_norm);
            let gate = activation::silu(h.clone().matmul(block.gate.val()));
            x = x + (gate * h.matmul(block.up.val())).matmul(block.down.val());
        }
        cache.len = total;
        Ok(rms(x, &self.weights.norm))
    }

    /// Run `ids` after the positions `cache` holds (as
    /// [`Llama::extend`]) and return only the last position's next-token
    /// logits: the one row decoding needs, without projecting the others
    /// onto the vocabulary.
    pub fn next_logits(
        &self,
        ids: &[u32],
        cache: &mut KvCache,
    ) -> Result<Vec<f32>, GeneratorError> {
        let states = self.states(ids, cache)?;
        let [n, _] = states.dims();
        self.project(states.narrow(0, n - 1, 1))
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| GeneratorError::Model {
                reason: format!("logits: {e:?}"),
            })
    }
}

/// The keys and values of the positions run so far, per block
/// (`[kv_heads, len, head_dim]` each): what [`Llama::extend`] attends to
/// instead of recomputing.
#[derive(Debug, Default, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<3>, Tensor<3>)>>,
    len: usize,
}

impl KvCache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A safetensors file with its JSON header's keys in sorted order (the
/// writer's metadata map has no fixed order), padded with spaces to its
/// old length: equal weights always give equal bytes.
fn canonical_header(mut bytes: Vec<u8>) -> Result<Vec<u8>, GeneratorError> {
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let ordered: std::collections::BTreeMap<String, serde_json::Value> =
                    map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
                serde_json::Value::Object(ordered.into_iter().collect())
            }
            other => other,
        }
    }
    let len = bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= bytes.len() - 8)
        .ok_or_else(|| weights_error("no safetensors header".into()))?;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + len]).map_err(|e| weights_error(e.to_string()))?;
    let mut text = serde_json::to_string(&sorted(header))
        .map_err(|e| weights_error(e.to_string()))?
        .into_bytes();
    // Keys sorted by a serde_json that keeps insertion order: compact
    // output of the same entries is never longer.
    if text.len() > len {
        return Err(weights_error("the sorted header grew".into()));
    }
    text.resize(len, b' ');
    bytes[8..8 + len].copy_from_slice(&text);
    Ok(bytes)
}

fn weights_error(reason: String) -> GeneratorError {
    GeneratorError::Model {
        reason: format!("model.safetensors: {reason}"),
    }
}

fn ones(n: usize, device: &Device) -> Param<Tensor<1>> {
    Param::from_tensor(Tensor::ones([n], device))
}

fn zeros(n: usize, device: &Device) -> Param<Tensor<1>> {
    Param::from_tensor(Tensor::zeros([n], device))
}

/// `cos` and `sin` of the angles `[n, d/2]` of positions `start..start + n`:
/// pair `i` turns by `pos · base^(-2i/d)`.
fn rope_tables(
    start: usize,
    n: usize,
    d: usize,
    base: f64,
    device: &Device,
) -> (Tensor<2>, Tensor<2>) {
    let half = d / 2;
    let mut cos = Vec::with_capacity(n * half);
    let mut sin = Vec::with_capacity(n * half);
    for pos in start..start + n {
        for i in 0..half {
            let angle = pos as f64 * base.powf(-2.0 * i as f64 / d as f64);
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (
        Tensor::from_data(TensorData::new(cos, [n, half]), device),
        Tensor::from_data(TensorData::new(sin, [n, half]), device),
    )
}

/// Rotate `t` `[heads, n, d]` by the positions' angles, pairing elements
/// as `style` says.
fn rotate(t: Tensor<3>, cos: &Tensor<2>, sin: &Tensor<2>, style: Rope) -> Tensor<3> {
    let [h, n, d] = t.dims();
    let half = d / 2;
    let (cos, sin) = (
        cos.clone().unsqueeze_dim::<3>(0),
        sin.clone().unsqueeze_dim::<3>(0),
    );
    match style {
        Rope::Adjacent => {
            let pairs = t.reshape([h, n, half, 2]);
            let a = pairs.clone().narrow(3, 0, 1).reshape([h, n, half]);
            let b = pairs.narrow(3, 1, 1).reshape([h, n, half]);
            let a2 = a.clone() * cos.clone() - b.clone() * sin.clone();
            let b2 = a * sin + b * cos;
            Tensor::stack::<4>(vec![a2, b2], 3).reshape([h, n, d])
        }
        Rope::Halves => {
            let a = t.clone().narrow(2, 0, half);
            let b = t.narrow(2, half, half);
            let a2 = a.clone() * cos.clone() - b.clone() * sin.clone();
            let b2 = a * sin + b * cos;
            Tensor::cat(vec![a2, b2], 2)
        }
    }
}

/// `[n, start + n]`: 0 where new position `start + i` may attend to
/// position `j` (`j ≤ start + i`), a large negative number elsewhere.
fn causal_mask(start: usize, n: usize, device: &Device) -> Tensor<2> {
    let total = start + n;
    let values: Vec<f32> = (0..n * total)
        .map(|k| {
            if k % total > start + k / total {
                -1.0e30
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [n, total]), device)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// A file whose metadata lacks the model's shape is refused by name,
    /// before any tensor is read; an architecture other than llama/qwen2
    /// too.
    #[test]
    fn a_file_without_a_model_shape_is_refused() {
        let bytes = crate::gguf::tests::tiny_file();
        let e = Llama::from_gguf(&bytes, &Device::flex()).unwrap_err();
        assert!(e.to_string().contains("llama.attention.head_count"), "{e}");
        let mut file = Gguf::parse(&bytes).unwrap();
        file.metadata.insert(
            "general.architecture".into(),
            crate::gguf::Value::String("mamba".into()),
        );
        let e = LlamaConfig::from_gguf(&file).unwrap_err();
        assert!(e.to_string().contains("mamba"), "{e}");
    }

    /// A random model written as `model.safetensors` and read back gives the
    /// same bytes and logits; a file too small for the shape is refused
    /// before anything is allocated, and so is a shape that does not fit.
    #[test]
    fn weights_round_trip_through_safetensors() {
        let device = Device::flex();
        let config = LlamaConfig {
            architecture: "qwen2".into(),
            vocab_size: 30,
            hidden: 8,
            layers: 2,
            heads: 2,
            kv_heads: 1,
            feed_forward: 12,
            rms_eps: 1e-6,
            rope_base: 10_000.0,
            rope: Rope::Halves,
            context: 16,
            tied: false,
            qkv_bias: true,
        };
        let model = Llama::random(config.clone(), 9, &device).unwrap();
        let bytes = model.weights_safetensors().unwrap();
        assert_eq!(bytes, model.weights_safetensors().unwrap(), "one byte form");
        let back = Llama::from_safetensors(config.clone(), bytes.clone(), &device).unwrap();
        assert_eq!(back.weights_safetensors().unwrap(), bytes);
        let ids = [1, 5, 7, 2];
        let a: Vec<f32> = model
            .logits(&ids)
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        let b: Vec<f32> = back.logits(&ids).unwrap().into_data().try_to_vec().unwrap();
        assert_eq!(a, b);
        let e = Llama::from_safetensors(config.clone(), bytes[..bytes.len() / 2].to_vec(), &device)
            .unwrap_err();
        assert!(e.to_string().contains("parameters"), "{e}");
        let wider = LlamaConfig {
            feed_forward: 10,
            ..config.clone()
        };
        let e = Llama::from_safetensors(wider, bytes.clone(), &device).unwrap_err();
        assert!(e.to_string().contains("model.safetensors"), "{e}");
        let huge = LlamaConfig {
            vocab_size: 1 << 24,
            hidden: 1 << 20,
            ..config
        };
        let e = Llama::from_safetensors(huge, bytes, &device).unwrap_err();
        assert!(e.to_string().contains("parameters"), "{e}");
    }

    /// Both rotary styles turn each pair by the same angle: rotating by
    /// position p then reading back with -p restores the input, and the
    /// two styles agree once the pairs are laid out their way.
    #[test]
    fn rotary_styles_agree_on_their_layouts() {
        let device = Device::flex();
        let (n, d) = (5, 8);
        let (cos, sin) = rope_tables(0, n, d, 10_000.0, &device);
        let values: Vec<f32> = (0..n * d).map(|i| (i as f32 * 0.37).sin()).collect();
        let halves = Tensor::<3>::from_data(TensorData::new(values.clone(), [1, n, d]), &device);
        // The same vectors with element i + j·d/2 at 2i + j.
        let mut adjacent = vec![0.0f32; n * d];
        for p in 0..n {
            for i in 0..d / 2 {
                for j in 0..2 {
                    adjacent[p * d + 2 * i + j] = values[p * d + i + j * d / 2];
                }
            }
        }
        let adjacent = Tensor::<3>::from_data(TensorData::new(adjacent, [1, n, d]), &device);
        let a: Vec<f32> = rotate(halves, &cos, &sin, Rope::Halves)
            .into_data()
            .try_to_vec()
            .unwrap();
        let b: Vec<f32> = rotate(adjacent, &cos, &sin, Rope::Adjacent)
            .into_data()
            .try_to_vec()
            .unwrap();
        for p in 0..n {
            for i in 0..d / 2 {
                for j in 0..2 {
                    let (x, y) = (a[p * d + i + j * d / 2], b[p * d + 2 * i + j]);
                    assert!((x - y).abs() < 1e-6, "{x} vs {y}");
                }
            }
        }
        // Position 0 is not turned.
        assert!((a[0] - values[0]).abs() < 1e-7 && (a[4] - values[4]).abs() < 1e-7);
    }
}
