//! The cost side of KunLunBaizeRAG's dual objective: what an episode spent.

use serde::{Deserialize, Serialize};

use crate::RewardError;

/// What one retrieval episode spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Queries sent to the in-process index.
    pub local_calls: u32,
    /// Queries sent to a network source.
    pub network_calls: u32,
    /// Retrieval rounds (hops).
    pub rounds: u32,
    /// Wall-clock latency of the episode in milliseconds.
    pub latency_ms: f64,
}

/// Weights that turn a [`Cost`] into one number.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CostWeights {
    /// Cost of one local query.
    pub local_call: f64,
    /// Cost of one network query.
    pub network_call: f64,
    /// Cost of one round.
    pub round: f64,
    /// Cost of one second of latency.
    pub per_second: f64,
}

impl Default for CostWeights {
    /// Network calls dominate: a local query is nearly free, a round costs a
    /// little, and latency is left to the network and round terms.
    fn default() -> Self {
        Self {
            local_call: 0.01,
            network_call: 1.0,
            round: 0.1,
            per_second: 0.0,
        }
    }
}

impl CostWeights {
    /// Check that every weight is finite and non-negative.
    pub fn validate(&self) -> Result<(), RewardError> {
        for (field, value) in [
            ("cost.local_call", self.local_call),
            ("cost.network_call", self.network_call),
            ("cost.round", self.round),
            ("cost.per_second", self.per_second),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(RewardError::InvalidConfig {
                    field,
                    reason: format!("must be finite and >= 0, got {value}"),
                });
            }
        }
        Ok(())
    }

    /// The weighted cost of an episode.
    pub fn cost(&self, c: &Cost) -> f64 {
        self.local_call * f64::from(c.local_calls)
            + self.network_call * f64::from(c.network_calls)
            + self.round * f64::from(c.rounds)
            + self.per_second * c.latency_ms.max(0.0) / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_cost_by_hand() {
        let w = CostWeights {
            local_call: 0.5,
            network_call: 2.0,
            round: 0.25,
            per_second: 1.0,
        };
        let c = Cost {
            local_calls: 2,
            network_calls: 3,
            rounds: 4,
            latency_ms: 1500.0,
        };
        // 0.5*2 + 2*3 + 0.25*4 + 1.5 = 1 + 6 + 1 + 1.5
        assert_eq!(w.cost(&c), 9.5);
        assert_eq!(w.cost(&Cost::default()), 0.0);
    }

    #[test]
    fn negative_or_nan_weights_are_refused() {
        let mut w = CostWeights::default();
        assert!(w.validate().is_ok());
        w.round = -1.0;
        assert!(matches!(
            w.validate(),
            Err(RewardError::InvalidConfig {
                field: "cost.round",
                ..
            })
        ));
        w.round = f64::NAN;
        assert!(w.validate().is_err());
    }
}
