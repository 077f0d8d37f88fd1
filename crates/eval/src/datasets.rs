//! Datasets as the runs cut them: a split loaded with its path in every
//! error, K-fold parts of a split's questions, and the seeded share of a
//! corpus that a router's local index holds.

use std::path::Path;
use std::str::FromStr;

use rlrag_retriever::data::fold_of;
use rlrag_retriever::hash::fnv1a;
use rlrag_retriever::{Dataset, DatasetFormat, Query, Split};

use crate::EvalError;

/// Load a dataset split; the error names the dataset.
pub fn load(
    data: &Path,
    format: Option<DatasetFormat>,
    split: Option<&Split>,
) -> Result<Dataset, EvalError> {
    Dataset::load(data, format, split).map_err(|source| EvalError::Dataset {
        data: data.to_path_buf(),
        source,
    })
}

/// One part of a K-fold cut of a split's questions (`I/K` on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fold {
    /// The part, `0..count`.
    pub index: u64,
    /// How many parts (at least 2).
    pub count: u64,
}

impl FromStr for Fold {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parse = |part: Option<&str>| part.and_then(|p| p.trim().parse::<u64>().ok());
        let mut parts = s.splitn(2, '/');
        match (parse(parts.next()), parse(parts.next())) {
            (Some(index), Some(count)) if count >= 2 && index < count => Ok(Fold { index, count }),
            _ => Err(format!(
                "`{s}` is not a fold I/K with K ≥ 2 and 0 ≤ I < K (e.g. 0/5)"
            )),
        }
    }
}

/// What a run uses its questions for: a fold keeps its part for
/// evaluation and the rest for training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Training: every part but the fold's.
    Train,
    /// Evaluation: the fold's part.
    Eval,
}

impl Fold {
    /// Whether `q` belongs to a run with `role` on this fold.
    pub fn holds(self, q: &Query, role: Role) -> bool {
        (fold_of(&q.id, self.count) == Some(self.index)) == (role == Role::Eval)
    }
}

/// Whether document `id` goes to the local index (a seeded `fraction` of them).
pub fn keep_local(seed: u64, id: &str, fraction: f64) -> bool {
    let h = fnv1a([&seed.to_le_bytes()[..], id.as_bytes()]);
    ((h >> 11) as f64 / (1u64 << 53) as f64) < fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_parse_and_partition_the_questions() {
        assert_eq!("2/5".parse(), Ok(Fold { index: 2, count: 5 }));
        for bad in ["5/5", "0/1", "x/5", "1", "-1/5"] {
            assert!(bad.parse::<Fold>().is_err(), "{bad}");
        }
        let fold = Fold { index: 0, count: 5 };
        for i in 0..100 {
            let q = Query {
                id: i.to_string(),
                text: String::new(),
                answers: Vec::new(),
                qrels: Default::default(),
            };
            assert_ne!(fold.holds(&q, Role::Train), fold.holds(&q, Role::Eval));
            // Part 0 of 5 is the `test` split.
            assert_eq!(
                fold.holds(&q, Role::Eval),
                rlrag_retriever::data::in_test_split(&q.id)
            );
        }
    }

    #[test]
    fn the_local_share_is_seeded_and_nested_by_fraction() {
        let ids: Vec<String> = (0..4000).map(|i| format!("doc{i}")).collect();
        let kept = |seed, fraction| -> Vec<&String> {
            ids.iter()
                .filter(|id| keep_local(seed, id, fraction))
                .collect()
        };
        assert_eq!(kept(42, 0.5), kept(42, 0.5));
        assert_eq!(kept(42, 1.0).len(), ids.len());
        assert!(kept(42, 0.0).is_empty());
        // A smaller share is a subset of a larger one.
        let (small, large) = (kept(42, 0.3), kept(42, 0.6));
        assert!(small.len() < large.len());
        assert!(small.iter().all(|id| large.contains(id)));
        // Other seeds split otherwise.
        assert_ne!(kept(1, 0.5), kept(2, 0.5));
    }
}
