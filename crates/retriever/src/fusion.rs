//! Hybrid retrieval: fuse ranked lists from several retrievers.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::Hit;

/// How ranked lists are combined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    /// Reciprocal-rank fusion: `Σ wᵢ / (k + rankᵢ)`, rank from 1 (Cormack et
    /// al. use k = 60). Scale-free, so lists of any scores combine.
    Rrf {
        /// The rank offset.
        k: f32,
    },
    /// Weighted sum of min-max normalised scores (each list mapped to [0, 1];
    /// a document missing from a list gets 0 there).
    Weighted,
}

impl Default for Fusion {
    fn default() -> Self {
        Self::Rrf { k: 60.0 }
    }
}

/// Fuse `lists` (best first) with per-list `weights` into the best `k`.
/// Ties keep the order of first appearance (list order, then rank).
pub fn fuse(lists: &[Vec<Hit>], weights: &[f32], fusion: Fusion, k: usize) -> Vec<Hit> {
    let mut scores: HashMap<&str, (f32, usize)> = HashMap::new();
    let mut order = 0usize;
    for (list, &w) in lists.iter().zip(weights) {
        let (lo, hi) = list
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), h| {
                (lo.min(h.score), hi.max(h.score))
            });
        for (rank, hit) in list.iter().enumerate() {
            let contribution = match fusion {
                Fusion::Rrf { k } => w / (k + rank as f32 + 1.0),
                Fusion::Weighted => {
                    let span = hi - lo;
                    let norm = if span > 0.0 {
                        (hit.score - lo) / span
                    } else {
                        1.0
                    };
                    w * norm
                }
            };
            let entry = scores.entry(hit.id.as_str()).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            entry.0 += contribution;
        }
    }
    let mut fused: Vec<(&str, f32, usize)> =
        scores.into_iter().map(|(id, (s, o))| (id, s, o)).collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    fused
        .into_iter()
        .take(k)
        .map(|(id, score, _)| Hit::new(id, score))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(ids: &[(&str, f32)]) -> Vec<Hit> {
        ids.iter().map(|(id, s)| Hit::new(*id, *s)).collect()
    }

    #[test]
    fn rrf_by_hand() {
        let a = hits(&[("x", 9.0), ("y", 5.0)]);
        let b = hits(&[("y", 0.9), ("z", 0.1)]);
        let f = fuse(&[a, b], &[1.0, 1.0], Fusion::Rrf { k: 60.0 }, 10);
        // y: 1/62 + 1/61; x: 1/61; z: 1/62
        assert_eq!(
            f.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            ["y", "x", "z"]
        );
        assert!((f[0].score - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-7);
    }

    #[test]
    fn weighted_normalises_each_list() {
        let a = hits(&[("x", 100.0), ("y", 50.0), ("z", 0.0)]);
        let b = hits(&[("z", 0.3), ("y", 0.2)]);
        let f = fuse(&[a, b], &[1.0, 2.0], Fusion::Weighted, 2);
        // x: 1; y: 0.5 + 0; z: 0 + 2 → z, x
        assert_eq!(
            f.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            ["z", "x"]
        );
        assert!((f[0].score - 2.0).abs() < 1e-6);
        assert!(fuse(&[], &[], Fusion::Weighted, 5).is_empty());
    }
}
