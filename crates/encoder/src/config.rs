//! Model configuration: the Hugging Face BERT fields of `config.json` plus the
//! rlrag head settings stored beside them under the `"rlrag"` key.

use serde::{Deserialize, Serialize};

use crate::EncoderError;

/// The largest vocabulary a model (and an index over its terms) may have:
/// above every real tokenizer (BERT 30,522, XLM-R 250,002), and small
/// enough that a file claiming it cannot make a loader allocate much.
pub const MAX_VOCAB_SIZE: usize = 1 << 20;
/// The longest input a model may take, in tokens (BERT's is 512).
pub const MAX_LENGTH: usize = 8192;
/// The most bytes of attention scores one text may need (heads × length²
/// floats): 1 GiB, some 80 times BERT-base's at 512 tokens.
pub const MAX_ATTENTION_BYTES: u64 = 1 << 30;

/// The BERT architecture fields rlrag reads from a Hugging Face `config.json`
/// (other fields are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden width.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Feed-forward width.
    pub intermediate_size: usize,
    /// Longest supported input in tokens.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Feed-forward activation; only the exact `gelu` is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Hugging Face class names, e.g. `BertForMaskedLM`.
    #[serde(default)]
    pub architectures: Vec<String>,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

impl BertConfig {
    /// A lower bound of the parameter count: the embedding tables and each
    /// layer's attention and feed-forward matrices (`None` on overflow).
    pub fn parameters_at_least(&self) -> Option<u64> {
        let [v, h, l, i, p, t] = [
            self.vocab_size,
            self.hidden_size,
            self.num_hidden_layers,
            self.intermediate_size,
            self.max_position_embeddings,
            self.type_vocab_size,
        ]
        .map(|x| x as u64);
        let embeddings = v.checked_add(p)?.checked_add(t)?.checked_mul(h)?;
        let layer = h
            .checked_mul(h)?
            .checked_mul(4)?
            .checked_add(h.checked_mul(i)?.checked_mul(2)?)?;
        embeddings.checked_add(layer.checked_mul(l)?)
    }
}

/// The activation of the learned-sparse head, applied to vocabulary logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum SparseActivation {
    /// `log(1 + relu(x))`, SPLADE's activation (what SPLADE checkpoints are trained with).
    Log1pRelu,
    /// `elu(x) + 1`, SiDR's activation: strictly positive, so every term gets
    /// weight and top-k sparsification decides.
    Elu1p,
}

impl SparseActivation {
    /// Apply to one value.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Self::Log1pRelu => x.max(0.0).ln_1p(),
            // elu(x) + 1 = e^x for x <= 0, computed without the cancellation
            // of `expm1(x) + 1`, so weights stay positive down to e^-87.
            Self::Elu1p => {
                if x > 0.0 {
                    x + 1.0
                } else {
                    x.exp()
                }
            }
        }
    }
}

/// How a dense head pools token states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean over non-padding tokens (sentence-transformers).
    Mean,
    /// The `[CLS]` token's state.
    Cls,
}

/// The head on top of the BERT body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Head {
    /// A sentence embedding.
    Dense {
        /// Token pooling.
        pooling: Pooling,
        /// L2-normalise the pooled vector.
        normalize: bool,
    },
    /// A vocabulary-space vector from the MLM head, max-pooled over tokens.
    Sparse {
        /// Activation on the logits.
        activation: SparseActivation,
        /// Keep the `top_k` largest terms; `None` keeps every positive term.
        top_k: Option<usize>,
    },
    /// A cross-encoder: `[CLS] question [SEP] passage [SEP]` (the passage
    /// with token type 1) → the `[CLS]` state through the pooler (dense +
    /// tanh) → one relevance logit, as Hugging Face's
    /// `BertForSequenceClassification` with one label.
    CrossEncoder {
        /// The question is cut to this many tokens; the passage fills the
        /// rest of `max_length`.
        max_question_tokens: usize,
    },
}

/// The question length of a cross-encoder read from a Hugging Face
/// `BertForSequenceClassification` config without an `"rlrag"` section.
pub const DEFAULT_MAX_QUESTION_TOKENS: usize = 64;

/// rlrag's settings, stored under `"rlrag"` in `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlragSettings {
    /// The head.
    pub head: Head,
    /// Inputs are truncated to this many tokens (special tokens included).
    pub max_length: usize,
    /// A cross-encoder's map from logit to the probability that the
    /// passage answers (fit by `train-reranker` on questions it did not
    /// train on); `None`: the plain logistic of the logit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

/// The precision of the Platt fit's Gaussian prior on the bias (standard
/// deviation 10): wide, only there to keep separable data finite.
const BIAS_PRIOR: f64 = 0.01;

/// Platt scaling: P(relevant) = σ(`scale` · logit + `bias`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Multiplies the logit.
    pub scale: f32,
    /// Added after.
    pub bias: f32,
}

impl Calibration {
    /// The probability of a logit (the plain logistic without a calibration).
    pub fn probability(calibration: Option<Self>, logit: f32) -> f32 {
        let Self { scale, bias } = calibration.unwrap_or(Self {
            scale: 1.0,
            bias: 0.0,
        });
        1.0 / (1.0 + (-(scale * logit + bias)).exp())
    }

    /// The Platt fit of `(logit, relevant)` pairs: the scale and bias that
    /// maximise the likelihood of the labels (Newton's method on the two
    /// parameters with backtracking, Platt's smoothed targets, a unit
    /// Gaussian prior pulling the scale towards 1 and a wide one on the
    /// bias, so that separable data or logits that hardly vary stay finite
    /// and moderate); `None` without both classes.
    pub fn fit(pairs: &[(f32, bool)]) -> Option<Self> {
        let positives = pairs.iter().filter(|p| p.1).count() as f64;
        let negatives = pairs.len() as f64 - positives;
        if positives == 0.0 || negatives == 0.0 {
            return None;
        }
        let hi = (positives + 1.0) / (positives + 2.0);
        let lo = 1.0 / (negatives + 2.0);
        // The penalised negative log-likelihood: the data's, a unit
        // Gaussian prior on the scale around 1 and a wide one on the bias.
        let objective = |a: f64, b: f64| -> f64 {
            let data: f64 = pairs
                .iter()
                .map(|&(x, y)| {
                    let t = if y { hi } else { lo };
                    let z = a * f64::from(x) + b;
                    // log(1 + e^z) - t z, computed stably.
                    z.max(0.0) + (-z.abs()).exp().ln_1p() - t * z
                })
                .sum();
            data + 0.5 * (a - 1.0).powi(2) + 0.5 * BIAS_PRIOR * b * b
        };
        let (mut a, mut b) = (1.0f64, 0.0f64);
        let mut current = objective(a, b);
        for _ in 0..100 {
            let (mut ga, mut gb) = (a - 1.0, BIAS_PRIOR * b);
            let (mut haa, mut hab, mut hbb) = (1.0, 0.0, BIAS_PRIOR);
            for &(x, y) in pairs {
                let x = f64::from(x);
                let t = if y { hi } else { lo };
                let p = 1.0 / (1.0 + (-(a * x + b)).exp());
                let w = (p * (1.0 - p)).max(1e-12);
                ga += (p - t) * x;
                gb += p - t;
                haa += w * x * x;
                hab += w * x;
                hbb += w;
            }
            let det = haa * hbb - hab * hab;
            if det.abs() < 1e-18 {
                break;
            }
            let da = (hbb * ga - hab * gb) / det;
            let db = (haa * gb - hab * ga) / det;
            // Backtracking: a Newton step that does not lower the objective
            // is halved until it does.
            let mut step = 1.0;
            let mut moved = false;
            while step > 1e-8 {
                let (na, nb) = (a - step * da, b - step * db);
                let value = objective(na, nb);
                if value.is_finite() && value <= current {
                    (a, b, current) = (na, nb, value);
                    moved = true;
                    break;
                }
                step /= 2.0;
            }
            if !moved || (step * (da.abs() + db.abs())) < 1e-9 {
                break;
            }
        }
        (a.is_finite() && b.is_finite()).then_some(Self {
            scale: a as f32,
            bias: b as f32,
        })
    }
}

/// A whole model configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The architecture.
    pub bert: BertConfig,
    /// The head and input settings.
    pub rlrag: RlragSettings,
}

impl ModelConfig {
    /// Parse `config.json`. Without an `"rlrag"` section the head follows the
    /// architecture: `BertForMaskedLM` → sparse (`log1p_relu`, all terms),
    /// `BertForSequenceClassification` → cross-encoder (questions cut to
    /// [`DEFAULT_MAX_QUESTION_TOKENS`]), else dense (mean pooling,
    /// normalised); `max_length` = 512 capped by the positions.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EncoderError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| EncoderError::Config(e.to_string()))?;
        let bert: BertConfig = serde_json::from_value(value.clone())
            .map_err(|e| EncoderError::Config(e.to_string()))?;
        let rlrag = match value.get("rlrag") {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| EncoderError::Config(format!("`rlrag` section: {e}")))?,
            None => {
                let is = |name: &str| bert.architectures.iter().any(|a| a == name);
                let head = if is("BertForMaskedLM") {
                    Head::Sparse {
                        activation: SparseActivation::Log1pRelu,
                        top_k: None,
                    }
                } else if is("BertForSequenceClassification") {
                    Head::CrossEncoder {
                        max_question_tokens: DEFAULT_MAX_QUESTION_TOKENS,
                    }
                } else {
                    Head::Dense {
                        pooling: Pooling::Mean,
                        normalize: true,
                    }
                };
                RlragSettings {
                    head,
                    max_length: bert.max_position_embeddings.min(512),
                    calibration: None,
                }
            }
        };
        let config = Self { bert, rlrag };
        config.validate()?;
        Ok(config)
    }

    /// `config.json` bytes: the BERT fields and the `"rlrag"` section.
    pub fn to_json(&self) -> Result<Vec<u8>, EncoderError> {
        let mut value =
            serde_json::to_value(&self.bert).map_err(|e| EncoderError::Config(e.to_string()))?;
        let rlrag =
            serde_json::to_value(&self.rlrag).map_err(|e| EncoderError::Config(e.to_string()))?;
        if let Some(map) = value.as_object_mut() {
            map.insert("model_type".into(), "bert".into());
            map.insert("rlrag".into(), rlrag);
        }
        serde_json::to_vec_pretty(&value).map_err(|e| EncoderError::Config(e.to_string()))
    }

    /// Check that the numbers describe a model this crate can run, within
    /// memory whatever the file says.
    pub fn validate(&self) -> Result<(), EncoderError> {
        let b = &self.bert;
        let bad = |m: String| Err(EncoderError::Config(m));
        if b.vocab_size == 0 || b.hidden_size == 0 || b.num_attention_heads == 0 {
            return bad("vocab_size, hidden_size and num_attention_heads must be positive".into());
        }
        // Upper bounds far above any BERT, so that a hostile file cannot
        // make the loader allocate: the model is built before its weights
        // are read (and then checked against their size).
        for (name, value, range) in [
            ("vocab_size", b.vocab_size, 1..=MAX_VOCAB_SIZE),
            ("hidden_size", b.hidden_size, 1..=16_384),
            ("num_hidden_layers", b.num_hidden_layers, 1..=256),
            ("num_attention_heads", b.num_attention_heads, 1..=1024),
            ("intermediate_size", b.intermediate_size, 1..=65_536),
            (
                "max_position_embeddings",
                b.max_position_embeddings,
                2..=65_536,
            ),
            ("type_vocab_size", b.type_vocab_size, 1..=1024),
        ] {
            if !range.contains(&value) {
                return bad(format!(
                    "{name} {value} is out of range ({}..={})",
                    range.start(),
                    range.end()
                ));
            }
        }
        if !b.hidden_size.is_multiple_of(b.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                b.hidden_size, b.num_attention_heads
            ));
        }
        if b.hidden_act != "gelu" {
            return bad(format!(
                "hidden_act `{}` is not supported (only `gelu`)",
                b.hidden_act
            ));
        }
        if !b.layer_norm_eps.is_finite() || b.layer_norm_eps <= 0.0 {
            return bad(format!(
                "layer_norm_eps must be positive, got {}",
                b.layer_norm_eps
            ));
        }
        let max = self.rlrag.max_length;
        if max < 2 || max > b.max_position_embeddings {
            return bad(format!(
                "max_length {max} must be in 2..={} (max_position_embeddings)",
                b.max_position_embeddings
            ));
        }
        // One text's attention scores (heads × length² floats) must fit in
        // memory: a file can ask for 1,024 heads at no cost in weights.
        let attention = (b.num_attention_heads as u64)
            .saturating_mul((max as u64).saturating_mul(max as u64))
            .saturating_mul(4);
        if max > MAX_LENGTH || attention > MAX_ATTENTION_BYTES {
            return bad(format!(
                "max_length {max} with {} attention heads needs {attention} bytes of attention \
                 scores per text (at most {MAX_LENGTH} tokens and {MAX_ATTENTION_BYTES} bytes)",
                b.num_attention_heads
            ));
        }
        // elu1p without top_k keeps every vocabulary term (the parity test
        // checks exactly that); the encoder's batch budget bounds what such
        // vectors cost per batch.
        match self.rlrag.head {
            Head::Sparse { top_k: Some(0), .. } => bad("top_k must be at least 1".into()),
            // [CLS] question [SEP] and at least one passage token before [SEP].
            Head::CrossEncoder {
                max_question_tokens,
            } if max_question_tokens == 0 || max_question_tokens.saturating_add(4) > max => {
                bad(format!(
                    "max_question_tokens {max_question_tokens} must be in 1..={} (max_length - 4)",
                    max.saturating_sub(4)
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Calibration;

    #[test]
    fn platt_scaling_recovers_a_logistic_and_needs_both_classes() {
        // Labels drawn from σ(2x − 1) at fixed quantiles: the fit lands near (2, −1).
        let mut pairs = Vec::new();
        for i in 0..400 {
            let x = -3.0 + 6.0 * (i as f32) / 399.0;
            let p = 1.0 / (1.0 + (-(2.0 * x - 1.0)).exp());
            for j in 0..10 {
                pairs.push((x, (j as f32 + 0.5) / 10.0 < p));
            }
        }
        let c = Calibration::fit(&pairs).expect("fits");
        assert!(
            (c.scale - 2.0).abs() < 0.2 && (c.bias + 1.0).abs() < 0.2,
            "{c:?}"
        );
        assert!(Calibration::fit(&[(1.0, true), (2.0, true)]).is_none());
        // Separable data stays finite.
        let c = Calibration::fit(&[(-1.0, false), (1.0, true)]).expect("fits");
        assert!(c.scale.is_finite() && c.scale > 0.0);
        // Logits that hardly vary do not blow the scale up.
        let flat: Vec<(f32, bool)> = (0..40)
            .map(|i| (0.01 * (i % 3) as f32, i % 4 == 0))
            .collect();
        let c = Calibration::fit(&flat).expect("fits");
        assert!(c.scale.abs() < 10.0, "{c:?}");
        // Every positive above every negative, in a narrow band far from
        // zero: the bias stays moderate.
        let mut band: Vec<(f32, bool)> = (0..30).map(|i| (5.0 + 0.001 * i as f32, false)).collect();
        band.extend((0..6).map(|i| (5.1 + 0.001 * i as f32, true)));
        let c = Calibration::fit(&band).expect("fits");
        assert!(c.bias.abs() < 100.0 && c.scale.abs() < 100.0, "{c:?}");
        assert!((Calibration::probability(None, 0.0) - 0.5).abs() < 1e-6);
    }
}
