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
}

#[cfg(test)]
mod tests {
    use super::*;

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
