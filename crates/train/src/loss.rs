//! The reinforced contrastive (InfoNCE) loss of R3.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

/// Which passage columns are what for one question (one row of the scores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Retrieved and rewarded 1.
    Positive,
    /// Everything else: retrieved with reward 0 (hard negative) or another
    /// question's passage (in-batch negative).
    Negative,
}

/// Mean over every (question, positive passage) pair of
/// `−log softmax(scores)[positive]`, the softmax running over that positive
/// and all of the question's negatives (its other positives are left out).
/// `scores` is `[questions, passages]`, already divided by the temperature;
/// `roles[i][j]` says what passage `j` is for question `i`. Returns `None`
/// when no question has a positive.
pub fn reinforced_infonce(scores: Tensor<2>, roles: &[Vec<Role>]) -> Option<Tensor<1>> {
    let [b, m] = scores.dims();
    let device = scores.device();
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    let mut bias = Vec::new();
    for (i, r) in roles.iter().enumerate().take(b) {
        for j in 0..m.min(r.len()) {
            if r[j] != Role::Positive {
                continue;
            }
            rows.push(i as i64);
            targets.push(j as i64);
            bias.extend((0..m).map(|c| {
                if c == j || r.get(c) != Some(&Role::Positive) {
                    0.0f32
                } else {
                    -1.0e9
                }
            }));
        }
    }
    let k = rows.len();
    if k == 0 {
        return None;
    }
    let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [k]), &device);
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [k, 1]), &device);
    let bias = Tensor::<2>::from_data(TensorData::new(bias, [k, m]), &device);
    let logp = log_softmax(scores.select(0, rows) + bias, 1);
    Some(logp.gather(1, targets).mean().neg())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn value(t: Tensor<1>) -> f32 {
        t.into_scalar::<f32>()
    }

    #[test]
    fn matches_the_formula_and_ignores_other_positives() {
        let device = Device::flex();
        let s = Tensor::<2>::from_data(
            TensorData::new(vec![2.0f32, 1.0, 0.0, 5.0], [1, 4]),
            &device,
        );
        use Role::{Negative as N, Positive as P};
        // Positives 0 and 3: each softmax spans itself and negatives 1, 2.
        let loss = value(reinforced_infonce(s, &[vec![P, N, N, P]]).expect("positives"));
        let lse = |x: f32| (x.exp() + 1f32.exp() + 0f32.exp()).ln();
        let want = ((lse(2.0) - 2.0) + (lse(5.0) - 5.0)) / 2.0;
        assert!((loss - want).abs() < 1e-5, "{loss} vs {want}");
    }

    #[test]
    fn no_positive_means_no_loss() {
        let s = Tensor::<2>::zeros([2, 3], &Device::flex());
        assert!(
            reinforced_infonce(s, &[vec![Role::Negative; 3], vec![Role::Negative; 3]]).is_none()
        );
    }
}
