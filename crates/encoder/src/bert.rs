//! The BERT family in burn: embeddings, post-norm transformer layers, and the
//! masked-language-model head whose decoder is tied to the word embeddings.
//!
//! Parameter names follow Hugging Face's after a fixed renaming
//! ([`hf_key_remapping`]), so `model.safetensors` from `BertModel` and
//! `BertForMaskedLM` checkpoints (including the legacy `LayerNorm.gamma/beta`
//! names) load without conversion.

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Bool, Device, Int, Tensor};

use crate::config::BertConfig;
use crate::kernels::{attention_softmax, gelu, max_over_tokens};

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

/// A BERT body with an optional MLM head.
#[derive(Module, Debug)]
pub struct BertModel {
    bert: Bert,
    head: Option<MlmHead>,
}

/// Regex renamings from Hugging Face tensor names to this module's paths.
pub fn hf_key_remapping() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"^(embeddings|encoder)\.", "bert.$1."),
        (
            r"^bert\.embeddings\.LayerNorm\.",
            "bert.embeddings.layer_norm.",
        ),
        (
            r"^bert\.encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.",
            "bert.layers.$1.$2.",
        ),
        (
            r"^bert\.encoder\.layer\.(\d+)\.attention\.output\.dense\.",
            "bert.layers.$1.attn_out.",
        ),
        (
            r"^bert\.encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.",
            "bert.layers.$1.attn_norm.",
        ),
        (
            r"^bert\.encoder\.layer\.(\d+)\.intermediate\.dense\.",
            "bert.layers.$1.inter.",
        ),
        (
            r"^bert\.encoder\.layer\.(\d+)\.output\.dense\.",
            "bert.layers.$1.out.",
        ),
        (
            r"^bert\.encoder\.layer\.(\d+)\.output\.LayerNorm\.",
            "bert.layers.$1.out_norm.",
        ),
        (r"^cls\.predictions\.transform\.dense\.", "head.transform."),
        (r"^cls\.predictions\.transform\.LayerNorm\.", "head.norm."),
        (r"^cls\.predictions\.bias$", "head.bias"),
    ]
}

/// Regex renamings from this module's paths back to Hugging Face names (the
/// inverse of [`hf_key_remapping`], `BertForMaskedLM` style with the `bert.`
/// prefix), so saved weights load here and in `transformers`.
pub fn burn_to_hf_key_remapping() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            r"^bert\.embeddings\.layer_norm\.",
            "bert.embeddings.LayerNorm.",
        ),
        (
            r"^bert\.layers\.(\d+)\.(query|key|value)\.",
            "bert.encoder.layer.$1.attention.self.$2.",
        ),
        (
            r"^bert\.layers\.(\d+)\.attn_out\.",
            "bert.encoder.layer.$1.attention.output.dense.",
        ),
        (
            r"^bert\.layers\.(\d+)\.attn_norm\.",
            "bert.encoder.layer.$1.attention.output.LayerNorm.",
        ),
        (
            r"^bert\.layers\.(\d+)\.inter\.",
            "bert.encoder.layer.$1.intermediate.dense.",
        ),
        (
            r"^bert\.layers\.(\d+)\.out\.",
            "bert.encoder.layer.$1.output.dense.",
        ),
        (
            r"^bert\.layers\.(\d+)\.out_norm\.",
            "bert.encoder.layer.$1.output.LayerNorm.",
        ),
        (r"^head\.transform\.", "cls.predictions.transform.dense."),
        (r"^head\.norm\.", "cls.predictions.transform.LayerNorm."),
        (r"^head\.bias$", "cls.predictions.bias"),
    ]
}

impl BertConfig {
    /// A randomly initialised model of this shape, with the MLM head when `mlm`.
    pub fn init(&self, mlm: bool, device: &Device) -> BertModel {
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
        let head = mlm.then(|| MlmHead {
            transform: linear(h, h),
            norm: norm(),
            bias: Param::from_tensor(Tensor::zeros([self.vocab_size], device)),
        });
        BertModel {
            bert: Bert { embeddings, layers },
            head,
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
    /// Token states `[batch, len, hidden]` for `ids` `[batch, len]`; `pad`
    /// marks padding positions (true), which no token attends to (`None`:
    /// no padding).
    pub fn forward(&self, ids: Tensor<2, Int>, pad: Option<Tensor<2, Bool>>) -> Tensor<3> {
        let [b, l] = ids.dims();
        let device = ids.device();
        let positions = Tensor::<1, Int>::arange(0..l as i64, &device)
            .reshape([1, l])
            .expand([b, l]);
        let types = Tensor::<2, Int>::zeros([b, l], &device);
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
        self.bert.forward(ids, pad)
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
        }
    }

    /// Whether the model has an MLM head.
    pub fn has_mlm_head(&self) -> bool {
        self.head.is_some()
    }

    /// Vocabulary logits max-pooled over the tokens that `pad` does not mark
    /// (`[batch, vocab]`), or `None` without an MLM head: the MLM transform,
    /// the tied decoder, the pooling, then the output bias — added once after
    /// pooling, which equals adding it to every token's logits first (it is
    /// the same for every token, and max(x + b) = max(x) + b).
    pub fn mlm_pooled(&self, hidden: Tensor<3>, pad: Option<Tensor<2, Bool>>) -> Option<Tensor<2>> {
        let head = self.head.as_ref()?;
        let t = head.norm.forward(gelu(head.transform.forward(hidden)));
        let [b, l, h] = t.dims();
        let decoder = self
            .bert
            .embeddings
            .word_embeddings
            .weight
            .val()
            .transpose();
        let vocab = decoder.dims()[1];
        let logits = t.reshape([b * l, h]).matmul(decoder).reshape([b, l, vocab]);
        Some(max_over_tokens(logits, pad) + head.bias.val().reshape([1, vocab]))
    }
}
