//! Sparse vocabulary-space vectors.

use serde::{Deserialize, Serialize};

use crate::config::SparseActivation;

/// A sparse vector over the vocabulary: `(term id, weight)` pairs with
/// positive weights, sorted by term id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SparseVector {
    /// The non-zero terms, sorted by id.
    pub terms: Vec<(u32, f32)>,
}

impl SparseVector {
    /// Activate pooled logits and keep the `top_k` largest positive weights
    /// (all positive ones when `None`); ties keep the lower term id.
    pub fn from_dense(logits: &[f32], activation: SparseActivation, top_k: Option<usize>) -> Self {
        let mut terms: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter_map(|(i, &x)| {
                let w = activation.apply(x);
                (w > 0.0).then_some((i as u32, w))
            })
            .collect();
        if let Some(k) = top_k
            && terms.len() > k
        {
            let by_weight =
                |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
            terms.select_nth_unstable_by(k - 1, by_weight);
            terms.truncate(k);
            terms.sort_unstable_by_key(|t| t.0);
        }
        Self { terms }
    }

    /// Dot product with another sparse vector (merge of two sorted lists).
    pub fn dot(&self, other: &SparseVector) -> f32 {
        let (mut i, mut j, mut sum) = (0, 0, 0.0);
        while i < self.terms.len() && j < other.terms.len() {
            let (a, b) = (self.terms[i], other.terms[j]);
            match a.0.cmp(&b.0) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    sum += a.1 * b.1;
                    i += 1;
                    j += 1;
                }
            }
        }
        sum
    }

    /// The `n` heaviest terms, heaviest first.
    pub fn top(&self, n: usize) -> Vec<(u32, f32)> {
        let mut t = self.terms.clone();
        t.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        t.truncate(n);
        t
    }

    /// Sum of the weights.
    pub fn l1(&self) -> f32 {
        self.terms.iter().map(|t| t.1).sum()
    }

    /// `(1 − weight)·self + weight·other` (merge of two sorted lists): a
    /// query with a hypothetical document mixed in. Its dot product with
    /// any vector is the same mix of the two dot products.
    pub fn mix(&self, other: &SparseVector, weight: f32) -> SparseVector {
        let (a, b) = (&self.terms, &other.terms);
        let (wa, wb) = (1.0 - weight, weight);
        let mut terms = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let next = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    i += 1;
                    j += 1;
                    (x.0, wa * x.1 + wb * y.1)
                }
                (Some(x), Some(y)) if x.0 < y.0 => {
                    i += 1;
                    (x.0, wa * x.1)
                }
                (Some(x), None) => {
                    i += 1;
                    (x.0, wa * x.1)
                }
                (_, Some(y)) => {
                    j += 1;
                    (y.0, wb * y.1)
                }
                (None, None) => break,
            };
            if next.1 > 0.0 {
                terms.push(next);
            }
        }
        SparseVector { terms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mix_scores_as_the_mix_of_scores() {
        let q = SparseVector {
            terms: vec![(1, 2.0), (4, 1.0), (9, 0.5)],
        };
        let h = SparseVector {
            terms: vec![(0, 1.0), (4, 3.0), (12, 2.0)],
        };
        let d = SparseVector {
            terms: vec![(0, 0.5), (1, 1.0), (4, 2.0), (9, 4.0), (12, 1.5)],
        };
        let m = q.mix(&h, 0.2);
        assert!(m.terms.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(m.terms.len(), 5);
        let expected = 0.8 * q.dot(&d) + 0.2 * h.dot(&d);
        assert!(
            (m.dot(&d) - expected).abs() < 1e-5,
            "{} vs {expected}",
            m.dot(&d)
        );
        assert_eq!(q.mix(&h, 0.0), q);
        assert_eq!(q.mix(&SparseVector::default(), 0.0), q);
        // Weight 1: only the hypothetical document's terms remain.
        assert_eq!(q.mix(&h, 1.0), h);
    }

    #[test]
    fn activation_top_k_and_dot() {
        let logits = [-1.0, 2.0, 0.5, 3.0, -0.2];
        let v = SparseVector::from_dense(&logits, SparseActivation::Log1pRelu, None);
        assert_eq!(v.terms.iter().map(|t| t.0).collect::<Vec<_>>(), [1, 2, 3]);
        assert!((v.terms[0].1 - 3f32.ln()).abs() < 1e-6);
        let top2 = SparseVector::from_dense(&logits, SparseActivation::Log1pRelu, Some(2));
        assert_eq!(top2.terms.iter().map(|t| t.0).collect::<Vec<_>>(), [1, 3]);
        let elu = SparseVector::from_dense(&logits, SparseActivation::Elu1p, None);
        assert_eq!(elu.terms.len(), 5, "elu(x)+1 is positive everywhere");
        assert!((elu.terms[0].1 - (-1f32).exp()).abs() < 1e-6);
        assert!((v.dot(&top2) - (3f32.ln().powi(2) + 4f32.ln().powi(2))).abs() < 1e-5);
        assert_eq!(v.top(1)[0].0, 3);
        assert!((SparseVector::default().dot(&v)).abs() < f32::EPSILON);
    }
}
