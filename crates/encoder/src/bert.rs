//! The BERT family in burn: embeddings, post-norm transformer layers, and the
//! masked-language-model head whose decoder is tied to the word embeddings.
//!
//! Parameter names follow Hugging Face's after a fixed renaming
//! ([`hf_to_module_key`]), so `model.safetensors` from `BertModel`,
//! `BertForMaskedLM` and `BertForSequenceClassification` checkpoints
//! (including the legacy `LayerNorm.gamma/beta` names) load without
//! conversion.

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::config::{BertConfig, Head};
use crate::kernels::{attention_softmax, decode_max_over_tokens, gelu};

/// Token, position and segment embeddings, summed and normalised.
#[derive(Module, Debug)]
pub struct Embeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    token_type_embeddings: Embedding,
    layer_norm: LayerNorm,
}

/// One post-norm transformer layer (attention → add & norm → GELU FFN → add & norm).
#[derive(Module, Debug)]
pub struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    inter: Linear,
    out: Linear,
    out_norm: LayerNorm,
    n_heads: usize,
}

/// The BERT body.
#[derive(Module, Debug)]
pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

/// The MLM head: dense → GELU → LayerNorm → tied decoder + bias.
#[derive(Module, Debug)]
pub struct MlmHead {
    transform: Linear,
    norm: LayerNorm,
    bias: Param<Tensor<1>>,
}

/// The cross-encoder's head: the `[CLS]` state → pooler (dense + tanh) →
/// one logit (Hugging Face's `bert.pooler` and `classifier`).
#[derive(Module, Debug)]
pub struct ScoreHead {
    pooler: Linear,
    classifier: Linear,
}

/// A BERT body with an optional MLM head or cross-encoder head.
#[derive(Module, Debug)]
pub struct BertModel {
    bert: Bert,
    head: Option<MlmHead>,
    score: Option<ScoreHead>,
}

/// The standard deviation of the seeded classifier initialisation
/// (BERT's `initializer_range`).
const CLASSIFIER_INIT_STD: f64 = 0.02;

/// `n` normal draws of standard deviation `std` from SplitMix64 seeded
/// with `seed`, two uniforms per draw through Box–Muller: the cross-encoder
/// head's initialisation, written down exactly so that the independent
/// reference (`scripts/reference/golden_encoders.py`) builds the same
/// weights.
pub fn seeded_normal(seed: u64, n: usize, std: f64) -> Vec<f32> {
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // In (0, 1]: the logarithm below never sees zero.
        ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (uniform(), uniform());
            let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (normal * std) as f32
        })
        .collect()
}

/// The parts of a transformer layer's tensor names: Hugging Face's, this
/// module's.
const LAYER_PARTS: [(&str, &str); 8] = [
    ("attention.self.query.", "query."),
    ("attention.self.key.", "key."),
    ("attention.self.value.", "value."),
    ("attention.output.dense.", "attn_out."),
    ("attention.output.LayerNorm.", "attn_norm."),
    ("intermediate.dense.", "inter."),
    ("output.dense.", "out."),
    ("output.LayerNorm.", "out_norm."),
];

/// The other renamed prefixes: Hugging Face's, this module's.
const PREFIXES: [(&str, &str); 6] = [
    ("bert.embeddings.LayerNorm.", "bert.embeddings.layer_norm."),
    ("bert.pooler.dense.", "score.pooler."),
    ("classifier.", "score.classifier."),
    ("cls.predictions.transform.dense.", "head.transform."),
    ("cls.predictions.transform.LayerNorm.", "head.norm."),
    ("cls.predictions.bias", "head.bias"),
];

/// A known tensor name renamed: Hugging Face's to this module's
/// (`to_module`), or back; `None` for names outside the renaming.
fn rename_known(name: &str, to_module: bool) -> Option<String> {
    let pick = |(hf, ours): (&'static str, &'static str)| {
        if to_module { (hf, ours) } else { (ours, hf) }
    };
    // `{from}{digits}.{part}{rest}` → `{to}{digits}.{part'}{rest}`.
    let (from, to) = pick(("bert.encoder.layer.", "bert.layers."));
    let layer = name.strip_prefix(from).and_then(|rest| {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let after = rest[digits..].strip_prefix('.').filter(|_| digits > 0)?;
        let (part, renamed) = LAYER_PARTS
            .iter()
            .map(|&p| pick(p))
            .find(|(part, _)| after.starts_with(part))?;
        Some(format!(
            "{to}{}.{renamed}{}",
            &rest[..digits],
            &after[part.len()..]
        ))
    });
    layer.or_else(|| {
        PREFIXES.iter().map(|&p| pick(p)).find_map(|(from, to)| {
            let rest = name.strip_prefix(from)?;
            // A prefix ends in a dot; a whole name must match exactly.
            (from.ends_with('.') || rest.is_empty()).then(|| format!("{to}{rest}"))
        })
    })
}

/// A Hugging Face tensor name (`BertModel`, `BertForMaskedLM` or
/// `BertForSequenceClassification`) as this module's path; names it does
/// not know stay as they are.
pub fn hf_to_module_key(name: &str) -> String {
    let bare = ["embeddings.", "encoder.", "pooler."];
    let name = if bare.iter().any(|p| name.starts_with(p)) {
        format!("bert.{name}")
    } else {
        name.to_owned()
    };
    rename_known(&name, true).unwrap_or(name)
}

/// This module's tensor path as the Hugging Face name (the inverse of
/// [`hf_to_module_key`], `BertForMaskedLM` / `BertForSequenceClassification`
/// style with the `bert.` prefix),
/// so saved weights load here and in `transformers`.
pub fn module_to_hf_key(name: &str) -> String {
    rename_known(name, false).unwrap_or_else(|| name.to_owned())
}

impl BertConfig {
    /// A randomly initialised model of this shape with the parts `head`
    /// needs: the MLM head for a sparse head, the pooler and classifier for
    /// a cross-encoder.
    pub fn init(&self, head: &Head, device: &Device) -> BertModel {
        let h = self.hidden_size;
        let norm = || {
            LayerNormConfig::new(h)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        let embeddings = Embeddings {
            word_embeddings: EmbeddingConfig::new(self.vocab_size, h).init(device),
            position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, h).init(device),
            token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, h).init(device),
            layer_norm: norm(),
        };
        let layers = (0..self.num_hidden_layers)
            .map(|_| Layer {
                query: linear(h, h),
                key: linear(h, h),
                value: linear(h, h),
                attn_out: linear(h, h),
                attn_norm: norm(),
                inter: linear(h, self.intermediate_size),
                out: linear(self.intermediate_size, h),
                out_norm: norm(),
                n_heads: self.num_attention_heads,
            })
            .collect();
        let mlm = matches!(head, Head::Sparse { .. }).then(|| MlmHead {
            transform: linear(h, h),
            norm: norm(),
            bias: Param::from_tensor(Tensor::zeros([self.vocab_size], device)),
        });
        let score = matches!(head, Head::CrossEncoder { .. }).then(|| ScoreHead {
            pooler: linear(h, h),
            classifier: linear(h, 1),
        });
        BertModel {
            bert: Bert { embeddings, layers },
            head: mlm,
            score,
        }
    }
}

impl Layer {
    /// `bias` is an additive attention bias `[batch, 1, 1, len]` (0 for real
    /// tokens, a large negative number for padding), or `None` without padding.
    fn forward(&self, x: Tensor<3>, bias: Option<Tensor<4>>) -> Tensor<3> {
        let [b, l, h] = x.dims();
        let nh = self.n_heads;
        let d = h / nh;
        let split = |t: Tensor<3>| t.reshape([b, l, nh, d]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x.clone()));
        let scores = q.matmul(k.swap_dims(2, 3));
        let ctx = attention_softmax(scores, (d as f32).sqrt(), bias)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b, l, h]);
        let x = self.attn_norm.forward(x + self.attn_out.forward(ctx));
        let ff = self.out.forward(gelu(self.inter.forward(x.clone())));
        self.out_norm.forward(x + ff)
    }
}

impl Bert {
    /// Token states `[batch, len, hidden]` for `ids` `[batch, len]`;
    /// `types` are the token types (`None`: all 0); `pad` marks padding
    /// positions (true), which no token attends to (`None`: no padding).
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        types: Option<Tensor<2, Int>>,
        pad: Option<Tensor<2, Bool>>,
    ) -> Tensor<3> {
        let [b, l] = ids.dims();
        let device = ids.device();
        let positions = Tensor::<1, Int>::arange(0..l as i64, &device)
            .reshape([1, l])
            .expand([b, l]);
        let types = types.unwrap_or_else(|| Tensor::<2, Int>::zeros([b, l], &device));
        let e = &self.embeddings;
        let x = e.word_embeddings.forward(ids)
            + e.position_embeddings.forward(positions)
            + e.token_type_embeddings.forward(types);
        let mut x = e.layer_norm.forward(x);
        // Broadcast additive bias instead of a [b, heads, l, l] mask; batches
        // without padding (common: batches are length-sorted) skip it.
        let bias = pad.map(|p| p.float().mul_scalar(-1.0e9f32).reshape([b, 1, 1, l]));
        for layer in &self.layers {
            x = layer.forward(x, bias.clone());
        }
        x
    }
}

impl BertModel {
    /// Token states of the body (`pad`: the padding mask, `None` without padding).
    pub fn hidden(&self, ids: Tensor<2, Int>, pad: Option<Tensor<2, Bool>>) -> Tensor<3> {
        self.bert.forward(ids, None, pad)
    }

    /// The cross-encoder's logits `[batch]` for pair inputs `ids` with
    /// token `types`, or `None` without a cross-encoder head.
    pub fn pair_logits(
        &self,
        ids: Tensor<2, Int>,
        types: Tensor<2, Int>,
        pad: Option<Tensor<2, Bool>>,
    ) -> Option<Tensor<1>> {
        let score = self.score.as_ref()?;
        let [b, _] = ids.dims();
        let states = self.bert.forward(ids, Some(types), pad);
        let h = states.dims()[2];
        let cls = states.narrow(1, 0, 1).reshape([b, h]);
        let pooled = score.pooler.forward(cls).tanh();
        Some(score.classifier.forward(pooled).reshape([b]))
    }

    /// The model with its classifier (the one output row of a cross-encoder)
    /// set from [`seeded_normal`] (`seed`) and a zero bias, as Hugging Face
    /// initialises a new `BertForSequenceClassification` head, but
    /// reproducibly; unchanged without a cross-encoder head.
    pub fn with_seeded_classifier(mut self, seed: u64) -> Self {
        if let Some(score) = self.score.as_mut() {
            let device = score.classifier.weight.device();
            let [hidden, _] = score.classifier.weight.dims();
            let weight = seeded_normal(seed, hidden, CLASSIFIER_INIT_STD);
            score.classifier.weight = Param::from_tensor(Tensor::from_data(
                TensorData::new(weight, [hidden, 1]),
                &device,
            ));
            score.classifier.bias = Some(Param::from_tensor(Tensor::zeros([1], &device)));
        }
        self
    }

    /// Number of transformer layers.
    pub fn num_layers(&self) -> usize {
        self.bert.layers.len()
    }

    /// Stop gradients below the top `trainable` transformer layers: the
    /// embeddings (and so the tied MLM decoder) and the lower layers are
    /// frozen; the top layers and the MLM transform keep training. `None`
    /// trains everything.
    pub fn freeze_below(self, trainable: Option<usize>) -> Self {
        let Some(top) = trainable else { return self };
        let n = self.bert.layers.len();
        let keep_from = n.saturating_sub(top);
        let Bert { embeddings, layers } = self.bert;
        let layers = layers
            .into_iter()
            .enumerate()
            .map(|(i, l)| if i < keep_from { l.no_grad() } else { l })
            .collect();
        Self {
            bert: Bert {
                embeddings: embeddings.no_grad(),
                layers,
            },
            head: self.head,
            score: self.score,
        }
    }

    /// Vocabulary logits max-pooled over the tokens that `pad` does not mark
    /// (`[batch, vocab]`), or `None` without an MLM head: the MLM transform,
    /// the tied decoder, the pooling, then the output bias — added once after
    /// pooling, which equals adding it to every token's logits first (it is
    /// the same for every token, and max(x + b) = max(x) + b).
    pub fn mlm_pooled(&self, hidden: Tensor<3>, pad: Option<Tensor<2, Bool>>) -> Option<Tensor<2>> {
        let head = self.head.as_ref()?;
        let t = head.norm.forward(gelu(head.transform.forward(hidden)));
        let decoder = self.bert.embeddings.word_embeddings.weight.val();
        let vocab = decoder.dims()[0];
        Some(decode_max_over_tokens(t, decoder, pad) + head.bias.val().reshape([1, vocab]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugging_face_names_map_to_module_paths_and_back() {
        let pairs = [
            (
                "embeddings.word_embeddings.weight",
                "bert.embeddings.word_embeddings.weight",
            ),
            (
                "bert.embeddings.LayerNorm.gamma",
                "bert.embeddings.layer_norm.gamma",
            ),
            (
                "encoder.layer.0.attention.self.query.weight",
                "bert.layers.0.query.weight",
            ),
            (
                "bert.encoder.layer.11.attention.self.value.bias",
                "bert.layers.11.value.bias",
            ),
            (
                "bert.encoder.layer.3.attention.output.dense.weight",
                "bert.layers.3.attn_out.weight",
            ),
            (
                "bert.encoder.layer.3.attention.output.LayerNorm.beta",
                "bert.layers.3.attn_norm.beta",
            ),
            (
                "bert.encoder.layer.2.intermediate.dense.bias",
                "bert.layers.2.inter.bias",
            ),
            (
                "bert.encoder.layer.2.output.dense.weight",
                "bert.layers.2.out.weight",
            ),
            (
                "bert.encoder.layer.2.output.LayerNorm.weight",
                "bert.layers.2.out_norm.weight",
            ),
            (
                "cls.predictions.transform.dense.weight",
                "head.transform.weight",
            ),
            ("cls.predictions.transform.LayerNorm.bias", "head.norm.bias"),
            ("cls.predictions.bias", "head.bias"),
            ("bert.pooler.dense.weight", "score.pooler.weight"),
            ("pooler.dense.bias", "score.pooler.bias"),
            ("classifier.weight", "score.classifier.weight"),
        ];
        for (hf, ours) in pairs {
            assert_eq!(hf_to_module_key(hf), ours, "{hf}");
            let back = module_to_hf_key(ours);
            assert_eq!(
                back.trim_start_matches("bert."),
                hf.trim_start_matches("bert."),
                "{ours}"
            );
            assert!(
                ["bert.", "cls.", "classifier."]
                    .iter()
                    .any(|p| back.starts_with(p)),
                "{back}"
            );
        }
        // Names outside the renaming stay as they are.
        for other in [
            "cls.predictions.decoder.weight",
            "cls.predictions.bias_extra",
            "bert.encoder.layer.x.output.dense.weight",
            "bert.encoder.layer..output.dense.weight",
            "bert.encoder.layer.1.crossattention.weight",
            "bert.pooler.weight",
            "classifier",
        ] {
            assert_eq!(hf_to_module_key(other), other);
        }
        assert_eq!(module_to_hf_key("head.bias2"), "head.bias2");
    }
}
