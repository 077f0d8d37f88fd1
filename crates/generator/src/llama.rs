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
use burn::tensor::{Device, Int, Tensor, TensorData, activation};

use crate::GeneratorError;
use crate::gguf::Gguf;

/// Which elements a rotary position embedding rotates together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rope {
    /// Elements `2i` and `2i + 1` (llama.cpp's `NORM`: llama files).
    Adjacent,
    /// Elements `i` and `i + d/2` (`NEOX`: Qwen2 files, Hugging Face).
    Halves,
}

/// A model's shape, from the file's metadata.
#[derive(Debug, Clone, PartialEq)]
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
            architecture: arch,
        };
        if hidden % heads != 0 || heads % kv_heads != 0 || (hidden / heads) % 2 != 0 {
            return Err(bad(format!(
                "{hidden} wide with {heads} heads and {kv_heads} key/value heads"
            )));
        }
        Ok(config)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
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
/// that multiplies row vectors.
fn matrix(
    file: &Gguf,
    bytes: &[u8],
    name: &str,
    n_in: usize,
    n_out: usize,
    device: &Device,
) -> Result<Param<Tensor<2>>, GeneratorError> {
    Ok(Param::from_tensor(
        load(file, bytes, name, [n_out, n_in], device)?.transpose(),
    ))
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
        let has = |name: &str| file.tensors.iter().any(|t| t.name == name);
        let bias = |name: String, n: usize| -> Result<Option<Param<Tensor<1>>>, GeneratorError> {
            has(&name)
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
        let output = has("output.weight")
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

    /// The output matrix applied to final states `[len, hidden]`.
    fn project(&self, x: Tensor<2>) -> Tensor<2> {
        match &self.weights.output {
            Some(out) => x.matmul(out.val()),
            None => x.matmul(self.weights.embed.val().transpose()),
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

    /// Greedy decoding: `prompt`, then up to `max_tokens` tokens, each the
    /// most likely next one, stopping after any token in `stop` (it is
    /// kept). Returns the new tokens.
    pub fn generate_greedy(
        &self,
        prompt: &[u32],
        max_tokens: usize,
        stop: &[u32],
    ) -> Result<Vec<u32>, GeneratorError> {
        let mut cache = KvCache::default();
        let mut out = Vec::with_capacity(max_tokens);
        let mut next = prompt.to_vec();
        while out.len() < max_tokens {
            // Only the last position's logits are needed.
            let states = self.states(&next, &mut cache)?;
            let [n, _] = states.dims();
            let last = self.project(states.narrow(0, n - 1, 1)).argmax(1);
            let token = last
                .into_data()
                .iter::<i64>()
                .next()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| GeneratorError::Model {
                    reason: "no token came out".into(),
                })?;
            out.push(token);
            if stop.contains(&token) {
                break;
            }
            next = vec![token];
        }
        Ok(out)
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
