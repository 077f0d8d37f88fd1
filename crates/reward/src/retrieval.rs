//! Ranking metrics with the BEIR / `pytrec_eval` (trec_eval) definitions.
//!
//! Relevance judgements are graded: a document's gain is its judgement value
//! (linear gain, as trec_eval's `ndcg_cut`), and a document counts as relevant
//! for recall, precision, MRR and all-gold when its judgement is at least 1.
//! Documents without a judgement have gain 0. A ranking is read top first;
//! a document id that repeats is counted at its first position only.

use std::collections::{BTreeMap, HashSet};

/// Graded relevance judgements of one query: document id → grade.
pub type Qrels = BTreeMap<String, i32>;

/// The first `k` distinct ids of a ranking.
fn top_k<S: AsRef<str>>(ranked: &[S], k: usize) -> impl Iterator<Item = &str> {
    let mut seen = HashSet::new();
    ranked
        .iter()
        .map(AsRef::as_ref)
        .filter(move |id| seen.insert(*id))
        .take(k)
}

fn grade(qrels: &Qrels, id: &str) -> i32 {
    qrels.get(id).copied().unwrap_or(0)
}

/// Number of judged-relevant documents (grade ≥ 1).
pub fn relevant_count(qrels: &Qrels) -> usize {
    qrels.values().filter(|&&g| g >= 1).count()
}

/// nDCG@k with linear gain and `log2(rank + 1)` discount; the ideal ranking
/// is the judgements sorted by grade. Zero when no judgement has positive gain.
pub fn ndcg_at_k<S: AsRef<str>>(ranked: &[S], qrels: &Qrels, k: usize) -> f64 {
    let discount = |rank0: usize| 1.0 / ((rank0 as f64) + 2.0).log2();
    let dcg: f64 = top_k(ranked, k)
        .enumerate()
        .map(|(i, id)| f64::from(grade(qrels, id).max(0)) * discount(i))
        .sum();
    let mut ideal: Vec<i32> = qrels.values().copied().filter(|&g| g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, &g)| f64::from(g) * discount(i))
        .sum();
    if idcg > 0.0 { dcg / idcg } else { 0.0 }
}

/// Relevant documents among the first `k`.
fn hits_at_k<S: AsRef<str>>(ranked: &[S], qrels: &Qrels, k: usize) -> usize {
    top_k(ranked, k).filter(|id| grade(qrels, id) >= 1).count()
}

/// Recall@k: relevant documents in the top `k` over all relevant documents
/// (0 when the query has none).
pub fn recall_at_k<S: AsRef<str>>(ranked: &[S], qrels: &Qrels, k: usize) -> f64 {
    let total = relevant_count(qrels);
    if total == 0 {
        return 0.0;
    }
    hits_at_k(ranked, qrels, k) as f64 / total as f64
}

/// Precision@k: relevant documents in the top `k` over `k` (trec_eval divides
/// by `k` even when fewer documents were retrieved). Zero for `k = 0`.
pub fn precision_at_k<S: AsRef<str>>(ranked: &[S], qrels: &Qrels, k: usize) -> f64 {
    if k == 0 {
        return 0.0;
    }
    hits_at_k(ranked, qrels, k) as f64 / k as f64
}

/// MRR@k: reciprocal rank of the first relevant document within the top `k`,
/// 0 when there is none (BEIR's `mrr@k`).
pub fn mrr_at_k<S: AsRef<str>>(ranked: &[S], qrels: &Qrels, k: usize) -> f64 {
    top_k(ranked, k)
        .position(|id| grade(qrels, id) >= 1)
        .map_or(0.0, |p| 1.0 / (p as f64 + 1.0))
}

/// All-gold@k: 1 when every relevant document is in the top `k` (the
/// multi-hop "all supporting passages found" check), else 0; 0 when the query
/// has no relevant document.
pub fn all_gold_at_k<S: AsRef<str>>(ranked: &[S], qrels: &Qrels, k: usize) -> f64 {
    let total = relevant_count(qrels);
    if total > 0 && hits_at_k(ranked, qrels, k) == total {
        1.0
    } else {
        0.0
    }
}

/// The retrieval metrics a report gives, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// nDCG@10 (graded qrels).
    Ndcg10,
    /// Recall@10.
    Recall10,
    /// Recall@100 (only with a depth of at least 100).
    Recall100,
    /// MRR@10.
    Mrr10,
    /// Whether a gold answer occurs in a top-10 passage.
    Containment10,
    /// Whether every gold passage is in the top 10.
    AllGold10,
}

impl Metric {
    /// Every metric, in the order reports show them.
    pub const ALL: [Metric; 6] = [
        Metric::Ndcg10,
        Metric::Recall10,
        Metric::Recall100,
        Metric::Mrr10,
        Metric::Containment10,
        Metric::AllGold10,
    ];

    /// The name in reports and JSON (`ndcg@10`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Ndcg10 => "ndcg@10",
            Metric::Recall10 => "recall@10",
            Metric::Recall100 => "recall@100",
            Metric::Mrr10 => "mrr@10",
            Metric::Containment10 => "containment@10",
            Metric::AllGold10 => "all_gold@10",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qrels(pairs: &[(&str, i32)]) -> Qrels {
        pairs.iter().map(|(d, g)| ((*d).to_string(), *g)).collect()
    }

    #[test]
    fn ndcg_graded_example_by_hand() {
        // Judgements: a=3, b=2, c=1, z=0. Ranking: b, x, a, c.
        // DCG@3  = 2/log2(2) + 0/log2(3) + 3/log2(4)            = 2 + 1.5   = 3.5
        // IDCG@3 = 3/log2(2) + 2/log2(3) + 1/log2(4) = 3 + 1.2618595 + 0.5 = 4.7618595
        // nDCG@3 = 0.7350070
        let q = qrels(&[("a", 3), ("b", 2), ("c", 1), ("z", 0)]);
        let ranked = ["b", "x", "a", "c"];
        let expected = 3.5 / (3.0 + 2.0 / 3f64.log2() + 0.5);
        assert!((ndcg_at_k(&ranked, &q, 3) - expected).abs() < 1e-12);
        assert!((ndcg_at_k(&ranked, &q, 3) - 0.735_007_0).abs() < 1e-6);
        // @4 adds c at rank 4: DCG = 3.5 + 1/log2(5); IDCG unchanged (3 graded docs)
        let expected4 = (3.5 + 1.0 / 5f64.log2()) / (3.0 + 2.0 / 3f64.log2() + 0.5);
        assert!((ndcg_at_k(&ranked, &q, 4) - expected4).abs() < 1e-12);
        assert_eq!(ndcg_at_k(&ranked, &q, 0), 0.0);
        assert_eq!(ndcg_at_k(&ranked, &qrels(&[("z", 0)]), 10), 0.0);
        assert!((ndcg_at_k(&["a", "b", "c"], &q, 10) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn recall_precision_mrr_all_gold_by_hand() {
        let q = qrels(&[("a", 1), ("b", 2), ("z", 0)]);
        let ranked = ["x", "z", "b", "y", "a"];
        assert_eq!(recall_at_k(&ranked, &q, 3), 0.5);
        assert_eq!(recall_at_k(&ranked, &q, 5), 1.0);
        assert!((precision_at_k(&ranked, &q, 3) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(precision_at_k(&ranked, &q, 10), 0.2);
        assert!((mrr_at_k(&ranked, &q, 10) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(mrr_at_k(&ranked, &q, 2), 0.0);
        assert_eq!(all_gold_at_k(&ranked, &q, 4), 0.0);
        assert_eq!(all_gold_at_k(&ranked, &q, 5), 1.0);
        assert_eq!(all_gold_at_k(&ranked, &qrels(&[("z", 0)]), 5), 0.0);
        assert_eq!(recall_at_k(&ranked, &Qrels::new(), 5), 0.0);
    }

    #[test]
    fn repeated_ids_count_once() {
        let q = qrels(&[("a", 1)]);
        let ranked = ["a", "a", "a"];
        assert!((precision_at_k(&ranked, &q, 3) - 1.0 / 3.0).abs() < 1e-12);
        assert!((ndcg_at_k(&ranked, &q, 3) - 1.0).abs() < 1e-12);
    }
}
