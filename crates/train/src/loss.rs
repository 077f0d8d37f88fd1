//! The reinforced contrastive (InfoNCE) loss of R3, and the listwise
//! distillation of Reinforced-IR's RLGF (KL to a teacher's order).

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

/// Listwise distillation: the mean over questions of
/// `KL(teacher ‖ student)`, each over that question's own candidates.
/// `scores` is `[questions, passages]` (already divided by the temperature);
/// `teacher[i][j]` is the teacher's logit for passage `j` of question `i`
/// (already divided by the teacher's temperature), `None` where `j` is not
/// one of its candidates. Questions with fewer than two candidates carry no
/// order and are left out; `None` when none is left.
pub fn listwise_kl(scores: Tensor<2>, teacher: &[Vec<Option<f32>>]) -> Option<Tensor<1>> {
    let [b, m] = scores.dims();
    let device = scores.device();
    let mut rows = Vec::new();
    let mut bias = Vec::new();
    let mut target = Vec::new();
    for (i, t) in teacher.iter().enumerate().take(b) {
        let logits: Vec<Option<f32>> = (0..m)
            .map(|j| t.get(j).copied().flatten().filter(|x| x.is_finite()))
            .collect();
        if logits.iter().flatten().count() < 2 {
            continue;
        }
        let top = logits
            .iter()
            .flatten()
            .fold(f32::NEG_INFINITY, |a, &x| a.max(x));
        let z: f32 = logits.iter().flatten().map(|x| (x - top).exp()).sum();
        rows.push(i as i64);
        for l in &logits {
            match l {
                Some(x) => {
                    bias.push(0.0f32);
                    target.push((x - top).exp() / z);
                }
                None => {
                    bias.push(-1.0e9);
                    target.push(0.0);
                }
            }
        }
    }
    let k = rows.len();
    if k == 0 {
        return None;
    }
    let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [k]), &device);
    let bias = Tensor::<2>::from_data(TensorData::new(bias, [k, m]), &device);
    // Σ p·(log p − log q); p log p is a constant, kept so the value is the KL.
    let entropy: f32 = target
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| p * p.ln())
        .sum();
    let target = Tensor::<2>::from_data(TensorData::new(target, [k, m]), &device);
    let logq = log_softmax(scores.select(0, rows) + bias, 1);
    let cross = (target * logq).sum().neg();
    Some(cross.add_scalar(entropy).div_scalar(k as f32))
}

/// How many (question, positive) pairs [`reinforced_infonce`] averages over
/// for `scores` of `[b, m]`: a shard's share of the batch's pairs is what
/// its loss is scaled by in a data-parallel step.
pub fn positive_pairs(roles: &[Vec<Role>], b: usize, m: usize) -> usize {
    roles
        .iter()
        .take(b)
        .map(|r| r.iter().take(m).filter(|x| **x == Role::Positive).count())
        .sum()
}

/// How many questions [`listwise_kl`] averages over for `scores` of `[b, m]`
/// (those with at least two finite teacher logits).
pub fn distilled_questions(teacher: &[Vec<Option<f32>>], b: usize, m: usize) -> usize {
    teacher
        .iter()
        .take(b)
        .filter(|t| {
            (0..m)
                .filter(|&j| t.get(j).copied().flatten().is_some_and(f32::is_finite))
                .count()
                >= 2
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// Split the questions anywhere: the shards' losses, each scaled by its
    /// share of what the loss averages over, add up to the whole batch's.
    #[test]
    fn shard_losses_scaled_by_their_share_sum_to_the_batch_loss() {
        use Role::{Negative as N, Positive as P};
        let device = Device::flex();
        let (b, m) = (5, 4);
        let raw: Vec<f32> = (0..b * m)
            .map(|i| ((i * 7919) % 13) as f32 / 4.0 - 1.5)
            .collect();
        let scores = |rows: std::ops::Range<usize>| {
            Tensor::<2>::from_data(
                TensorData::new(raw[rows.start * m..rows.end * m].to_vec(), [rows.len(), m]),
                &device,
            )
        };
        let roles = vec![
            vec![P, N, N, N],
            vec![N, N, N, N],
            vec![P, P, N, N],
            vec![N, N, N, P],
            vec![N, P, N, N],
        ];
        let teacher = vec![
            vec![Some(1.0), Some(0.0), None, Some(2.0)],
            vec![Some(1.0), None, None, None],
            vec![Some(0.5), Some(-1.0), Some(3.0), Some(0.0)],
            vec![],
            vec![None, Some(2.0), Some(1.0), None],
        ];
        let whole_c = value(reinforced_infonce(scores(0..b), &roles).expect("positives"));
        let whole_d = value(listwise_kl(scores(0..b), &teacher).expect("candidates"));
        let (pairs, questions) = (
            positive_pairs(&roles, b, m),
            distilled_questions(&teacher, b, m),
        );
        assert_eq!((pairs, questions), (5, 3));
        for cut in 0..=b {
            let (mut c, mut d) = (0.0, 0.0);
            for r in [0..cut, cut..b] {
                let (ro, te) = (&roles[r.clone()], &teacher[r.clone()]);
                if let Some(l) = reinforced_infonce(scores(r.clone()), ro) {
                    c += value(l) * positive_pairs(ro, r.len(), m) as f32 / pairs as f32;
                }
                if let Some(l) = listwise_kl(scores(r.clone()), te) {
                    d += value(l) * distilled_questions(te, r.len(), m) as f32 / questions as f32;
                }
            }
            assert!((c - whole_c).abs() < 1e-5, "cut {cut}: {c} vs {whole_c}");
            assert!((d - whole_d).abs() < 1e-5, "cut {cut}: {d} vs {whole_d}");
        }
    }

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
    fn listwise_kl_is_the_kl_over_each_questions_candidates() {
        let device = Device::flex();
        let s = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 9.0, 2.0, 2.0, 2.0], [2, 3]),
            &device,
        );
        // Question 0: candidates 0 and 1 (2 is another question's passage);
        // question 1: one candidate, no order, left out.
        let t = vec![
            vec![Some(0.0), Some(1.0), None],
            vec![Some(3.0), None, None],
        ];
        let kl = value(listwise_kl(s, &t).expect("a question with candidates"));
        let p = [1.0 / (1.0 + 1f32.exp()), 1f32.exp() / (1.0 + 1f32.exp())];
        let q = [1f32.exp() / (1.0 + 1f32.exp()), 1.0 / (1.0 + 1f32.exp())];
        let want = p[0] * (p[0] / q[0]).ln() + p[1] * (p[1] / q[1]).ln();
        assert!((kl - want).abs() < 1e-5, "{kl} vs {want}");
        // The student that agrees with the teacher has no loss.
        let same = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 1.0, 5.0], [1, 3]), &device);
        let kl = value(listwise_kl(same, &t[..1]).expect("candidates"));
        assert!(kl.abs() < 1e-5, "{kl}");
        assert!(listwise_kl(Tensor::<2>::zeros([1, 3], &device), &t[1..]).is_none());
    }

    #[test]
    fn no_positive_means_no_loss() {
        let s = Tensor::<2>::zeros([2, 3], &Device::flex());
        assert!(
            reinforced_infonce(s, &[vec![Role::Negative; 3], vec![Role::Negative; 3]]).is_none()
        );
    }
}
