//! The composite reward `correctness + w_fmt·format − λ·cost`, KunLunBaizeRAG's
//! dual objective (answer well, spend little), configured by a serde struct.

use serde::{Deserialize, Serialize};

use crate::RewardError;
use crate::answer::{NormalizedText, exact_match_any, token_f1_max};
use crate::cost::{Cost, CostWeights};

/// How correctness is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correctness {
    /// 1 when the prediction exactly matches a gold answer (normalised).
    ExactMatch,
    /// Best SQuAD token F1 of the prediction against the gold answers.
    F1,
    /// 1 when a gold answer occurs in any evidence passage (no generator needed).
    #[default]
    Containment,
}

impl std::str::FromStr for Correctness {
    type Err = String;

    /// `containment`, `f1`, `exact_match` (or `em`), as the command line spells them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "containment" => Ok(Self::Containment),
            "f1" => Ok(Self::F1),
            "exact_match" | "em" => Ok(Self::ExactMatch),
            other => Err(format!(
                "`{other}` is not one of containment, f1, exact_match"
            )),
        }
    }
}

/// Configuration of the composite reward.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardConfig {
    /// The correctness term.
    pub correctness: Correctness,
    /// λ: how much one unit of cost takes away.
    pub lambda: f64,
    /// How the episode's spending becomes one cost number.
    pub cost: CostWeights,
    /// Weight of the format score (0 disables it).
    pub format_weight: f64,
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self {
            correctness: Correctness::default(),
            lambda: 0.1,
            cost: CostWeights::default(),
            format_weight: 0.0,
        }
    }
}

/// Everything the reward looks at for one episode.
#[derive(Debug, Clone, Copy, Default)]
pub struct Episode<'a> {
    /// The generator's answer, if one was produced (`None` scores 0 for
    /// exact match and F1).
    pub prediction: Option<&'a str>,
    /// The passages gathered as evidence (used by containment).
    pub evidence: &'a [&'a str],
    /// The gold answers.
    pub answers: &'a [&'a str],
    /// What the episode spent.
    pub cost: Cost,
    /// A score from a [`crate::format::FormatReward`] hook, in `[0, 1]`.
    pub format_score: Option<f64>,
}

/// The terms of a computed reward.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RewardBreakdown {
    /// The correctness term in `[0, 1]`.
    pub correctness: f64,
    /// The format score in `[0, 1]` (0 when no hook ran).
    pub format: f64,
    /// The weighted cost (before λ).
    pub cost: f64,
    /// `correctness + format_weight·format − λ·cost`.
    pub total: f64,
}

impl RewardConfig {
    /// Check the configuration: λ and weights finite and non-negative.
    pub fn validate(&self) -> Result<(), RewardError> {
        if !self.lambda.is_finite() || self.lambda < 0.0 {
            return Err(RewardError::InvalidConfig {
                field: "lambda",
                reason: format!("must be finite and >= 0, got {}", self.lambda),
            });
        }
        if !self.format_weight.is_finite() || self.format_weight < 0.0 {
            return Err(RewardError::InvalidConfig {
                field: "format_weight",
                reason: format!("must be finite and >= 0, got {}", self.format_weight),
            });
        }
        self.cost.validate()
    }

    /// The correctness term alone.
    pub fn correctness(&self, episode: &Episode<'_>) -> f64 {
        match self.correctness {
            Correctness::ExactMatch => episode.prediction.map_or(0.0, |p| {
                f64::from(u8::from(exact_match_any(p, episode.answers)))
            }),
            Correctness::F1 => episode
                .prediction
                .map_or(0.0, |p| token_f1_max(p, episode.answers)),
            Correctness::Containment => f64::from(u8::from(
                episode
                    .evidence
                    .iter()
                    .any(|t| NormalizedText::new(t).contains_any(episode.answers)),
            )),
        }
    }

    /// The composite reward of an episode.
    pub fn reward(&self, episode: &Episode<'_>) -> Result<RewardBreakdown, RewardError> {
        self.validate()?;
        let format = match episode.format_score {
            Some(v) if !(0.0..=1.0).contains(&v) => {
                return Err(RewardError::FormatOutOfRange { value: v });
            }
            Some(v) => v,
            None => 0.0,
        };
        let correctness = self.correctness(episode);
        let cost = self.cost.cost(&episode.cost);
        Ok(RewardBreakdown {
            correctness,
            format,
            cost,
            total: correctness + self.format_weight * format - self.lambda * cost,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_by_hand() {
        let cfg = RewardConfig {
            correctness: Correctness::F1,
            lambda: 0.5,
            cost: CostWeights {
                local_call: 0.0,
                network_call: 1.0,
                round: 0.5,
                per_second: 0.0,
            },
            format_weight: 0.2,
        };
        let ep = Episode {
            prediction: Some("Barack Obama Jr."),
            answers: &["Barack Obama"],
            cost: Cost {
                network_calls: 1,
                rounds: 2,
                ..Cost::default()
            },
            format_score: Some(1.0),
            ..Episode::default()
        };
        let r = cfg.reward(&ep).expect("valid config");
        // F1 0.8; cost 1 + 2*0.5 = 2; total 0.8 + 0.2 - 0.5*2 = 0.0
        assert!((r.correctness - 0.8).abs() < 1e-12);
        assert_eq!(r.cost, 2.0);
        assert!(r.total.abs() < 1e-12);
    }

    #[test]
    fn containment_uses_evidence_and_em_needs_a_prediction() {
        let mut cfg = RewardConfig::default();
        let ep = Episode {
            evidence: &["nothing here", "It opened in 1889."],
            answers: &["1889"],
            ..Episode::default()
        };
        assert_eq!(cfg.correctness(&ep), 1.0);
        cfg.correctness = Correctness::ExactMatch;
        assert_eq!(cfg.correctness(&ep), 0.0);
        let with_pred = Episode {
            prediction: Some("in 1889"),
            ..ep
        };
        assert_eq!(cfg.correctness(&with_pred), 0.0);
        let exact = Episode {
            prediction: Some("1889."),
            ..ep
        };
        assert_eq!(cfg.correctness(&exact), 1.0);
    }

    #[test]
    fn bad_config_and_hook_values_are_errors() {
        let cfg = RewardConfig {
            lambda: -0.1,
            ..RewardConfig::default()
        };
        assert!(matches!(
            cfg.reward(&Episode::default()),
            Err(RewardError::InvalidConfig {
                field: "lambda",
                ..
            })
        ));
        let ok = RewardConfig::default();
        let ep = Episode {
            format_score: Some(1.5),
            ..Episode::default()
        };
        assert_eq!(
            ok.reward(&ep),
            Err(RewardError::FormatOutOfRange { value: 1.5 })
        );
    }

    #[test]
    fn config_reads_from_json_with_defaults_and_refuses_unknown_fields() {
        let cfg: RewardConfig = serde_json::from_str(
            r#"{"correctness":"exact_match","lambda":0.3,"cost":{"network_call":2.0}}"#,
        )
        .expect("parses");
        assert_eq!(cfg.correctness, Correctness::ExactMatch);
        assert_eq!(cfg.lambda, 0.3);
        assert_eq!(cfg.cost.network_call, 2.0);
        assert_eq!(cfg.cost.round, CostWeights::default().round);
        assert!(serde_json::from_str::<RewardConfig>(r#"{"lamda":0.3}"#).is_err());
    }
}
