//! How well a score separates positives from negatives: ROC AUC, the
//! probability that a random positive scores above a random negative (ties
//! count one half), as the Mann–Whitney U statistic over midranks. Used for
//! the teachers' and the reader's judgements ("does this passage answer the
//! question?") and the router's gate signals.

/// ROC AUC of `scored` (`(score, is_positive)` pairs); `None` without at
/// least one positive and one negative, or with a NaN score.
pub fn roc_auc(scored: &[(f64, bool)]) -> Option<f64> {
    if scored.iter().any(|(s, _)| s.is_nan()) {
        return None;
    }
    let positives = scored.iter().filter(|(_, p)| *p).count();
    let negatives = scored.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scored.len()).collect();
    order.sort_by(|&a, &b| scored[a].0.total_cmp(&scored[b].0));
    // Sum of the positives' midranks (ranks from 1; a run of equal scores
    // shares the mean of its ranks).
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scored[order[end]].0 == scored[order[start]].0 {
            end += 1;
        }
        let midrank = (start + end + 1) as f64 / 2.0;
        let in_run = order[start..end].iter().filter(|&&i| scored[i].1).count();
        rank_sum += midrank * in_run as f64;
        start = end;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the definition: the share of (positive, negative) pairs
    /// ordered right, ties one half.
    fn brute(scored: &[(f64, bool)]) -> f64 {
        let (mut won, mut pairs) = (0.0, 0.0);
        for (sp, _) in scored.iter().filter(|(_, p)| *p) {
            for (sn, _) in scored.iter().filter(|(_, p)| !*p) {
                pairs += 1.0;
                won += if sp > sn {
                    1.0
                } else if sp == sn {
                    0.5
                } else {
                    0.0
                };
            }
        }
        won / pairs
    }

    #[test]
    fn auc_is_the_share_of_pairs_ordered_right() {
        assert_eq!(roc_auc(&[(0.9, true), (0.1, false)]), Some(1.0));
        assert_eq!(roc_auc(&[(0.1, true), (0.9, false)]), Some(0.0));
        assert_eq!(roc_auc(&[(0.5, true), (0.5, false)]), Some(0.5));
        assert_eq!(roc_auc(&[(0.5, true), (0.7, true)]), None);
        assert_eq!(roc_auc(&[]), None);
        assert_eq!(roc_auc(&[(f64::NAN, true), (0.1, false)]), None);
        // Seeded cases with many ties against the pairwise definition.
        let mut x: u64 = 42;
        for _ in 0..200 {
            let scored: Vec<(f64, bool)> = (0..30)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (f64::from((x >> 33) as u32 % 7), (x >> 20) & 1 == 1)
                })
                .collect();
            if let Some(auc) = roc_auc(&scored) {
                assert!((auc - brute(&scored)).abs() < 1e-12, "{scored:?}");
            }
        }
    }
}
