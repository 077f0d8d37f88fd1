//! The inverted-index core shared by BM25 (term frequencies) and the
//! learned-sparse / bag-of-tokens indexes (weights): documents in slots,
//! postings per term sorted by slot, removal with tombstones and compaction,
//! and exact top-k selection.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::{Hit, RetrieverError};
use rlrag_encoder::fasthash::FastMap;

thread_local! {
    /// Every search's score accumulator on this thread, all zeros between
    /// searches ([`Inverted::search_scores`]).
    static SCORES: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

#[cfg(test)]
thread_local! {
    /// Posting lists walked whole by [`Inverted::search_max_score`] on
    /// this thread.
    pub(crate) static WALKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A document's terms: `(term id, payload)` sorted by term id, ids unique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry<P> {
    pub id: String,
    pub terms: Vec<(u32, P)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Inverted<P> {
    /// Per term: (slot, payload), sorted by slot.
    postings: Vec<Vec<(u32, P)>>,
    /// Documents by slot; `None` once removed (until compaction).
    slots: Vec<Option<Entry<P>>>,
    by_id: FastMap<String, u32>,
}

impl<P> Default for Inverted<P> {
    fn default() -> Self {
        Self {
            postings: Vec::new(),
            slots: Vec::new(),
            by_id: FastMap::default(),
        }
    }
}

impl<P: Copy> Inverted<P> {
    /// Live documents.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Slots, live or dead (the size of a score accumulator).
    pub fn num_slots(&self) -> usize {
        self.slots.len()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Refuse a batch whose ids are indexed already or repeat.
    pub fn check_new<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), RetrieverError> {
        let mut batch = HashSet::new();
        for id in ids {
            if self.by_id.contains_key(id) || !batch.insert(id) {
                return Err(RetrieverError::DuplicateDocument { id: id.to_string() });
            }
        }
        Ok(())
    }

    /// The postings of a term (empty for unknown terms).
    pub fn postings(&self, term: u32) -> &[(u32, P)] {
        self.postings.get(term as usize).map_or(&[], Vec::as_slice)
    }

    /// Add a document (the caller checked its id). `terms` must be sorted by
    /// term id without repeats.
    pub fn push(&mut self, entry: Entry<P>) -> u32 {
        let s = self.slots.len() as u32;
        for &(t, p) in &entry.terms {
            let t = t as usize;
            if t >= self.postings.len() {
                self.postings.resize_with(t + 1, Vec::new);
            }
            self.postings[t].push((s, p));
        }
        self.by_id.insert(entry.id.clone(), s);
        self.slots.push(Some(entry));
        s
    }

    /// Remove a document; returns it, or `None` for an unknown id.
    pub fn remove(&mut self, id: &str) -> Option<Entry<P>> {
        let s = self.by_id.remove(id)?;
        let entry = self.slots.get_mut(s as usize).and_then(Option::take)?;
        for &(t, _) in &entry.terms {
            if let Some(p) = self.postings.get_mut(t as usize)
                && let Ok(i) = p.binary_search_by_key(&s, |&(slot, _)| slot)
            {
                p.remove(i);
            }
        }
        Some(entry)
    }

    /// Renumber live slots densely (keeping order) once tombstones outnumber
    /// live documents. Returns whether slots moved.
    pub fn maybe_compact(&mut self) -> bool {
        let dead = self.slots.len() - self.by_id.len();
        if dead < 64 || dead <= self.by_id.len() {
            return false;
        }
        let mut remap = vec![u32::MAX; self.slots.len()];
        let mut live = Vec::with_capacity(self.by_id.len());
        for (old, slot) in std::mem::take(&mut self.slots).into_iter().enumerate() {
            if let Some(entry) = slot {
                remap[old] = live.len() as u32;
                self.by_id.insert(entry.id.clone(), live.len() as u32);
                live.push(Some(entry));
            }
        }
        for p in &mut self.postings {
            for e in p.iter_mut() {
                e.0 = remap[e.0 as usize];
            }
        }
        self.slots = live;
        true
    }

    /// The document in a slot, if live.
    pub fn entry(&self, slot: u32) -> Option<&Entry<P>> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// A live document by id.
    pub fn entry_by_id(&self, id: &str) -> Option<&Entry<P>> {
        self.by_id.get(id).and_then(|&s| self.entry(s))
    }

    /// Live documents in slot order, with their slots.
    pub fn entries(&self) -> impl Iterator<Item = (u32, &Entry<P>)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(s, e)| e.as_ref().map(|e| (s as u32, e)))
    }

    /// Document frequency of each term id over live documents.
    pub fn document_frequency(&self, term: u32) -> usize {
        self.postings(term).len()
    }

    /// Accumulate `weight · f(slot, payload)` over a term's postings into
    /// `scores`, recording first-touched slots in `touched`.
    pub fn accumulate(
        &self,
        term: u32,
        scores: &mut [f32],
        touched: &mut Vec<u32>,
        mut f: impl FnMut(u32, P) -> f32,
    ) {
        for &(s, p) in self.postings(term) {
            let su = s as usize;
            if scores[su] == 0.0 {
                touched.push(s);
            }
            scores[su] += f(s, p);
        }
    }

    /// Score with `fill` and return the best `k` slots by score (ties:
    /// lower slot first). `fill` gets an all-zero array of
    /// [`Self::num_slots`] scores and an empty list, and adds to the scores
    /// through [`Self::accumulate`], which lists every slot it makes non-zero.
    ///
    /// The array is this thread's, kept between searches and zeroed again
    /// through the list: allocating and zeroing one per query cost a fifth
    /// of a BM25 query at 477 k documents (`scripts/bench-tantivy.sh`). A
    /// search that panics drops it, and the next starts a new one.
    pub fn search_scores(
        &self,
        k: usize,
        fill: impl FnOnce(&mut [f32], &mut Vec<u32>),
    ) -> Vec<Hit> {
        let n = self.num_slots();
        let mut scores = SCORES.with(std::cell::Cell::take);
        if scores.len() < n {
            scores.resize(n, 0.0);
        }
        let mut touched = Vec::new();
        fill(&mut scores[..n], &mut touched);
        let hits = self.top_k(&scores, &mut touched, k);
        for &s in &touched {
            scores[s as usize] = 0.0;
        }
        SCORES.with(|cell| cell.set(scores));
        hits
    }

    /// The query terms `terms[i] = (term, bound)` in the order
    /// [`Self::search_max_score`] sums them: largest bound first (ties:
    /// `terms`' order); terms no document holds are left out.
    pub fn max_score_order(&self, terms: &[(u32, f32)]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..terms.len())
            .filter(|&i| !self.postings(terms[i].0).is_empty())
            .collect();
        order.sort_by(|&a, &b| terms[b].1.total_cmp(&terms[a].1).then(a.cmp(&b)));
        order
    }

    /// The best `k` documents by `Σ f(i, slot, payload)` over the query
    /// terms `terms[i] = (term, bound)` that a document holds, summed in
    /// [`Self::max_score_order`], where no posting of `terms[i]` scores
    /// above `bound` and none below zero: the same hits, scores and tie
    /// order (lower slot first) as scoring every posting of the terms in
    /// that order with [`Self::search_scores`], without walking most of
    /// the long posting lists (MaxScore, Turtle and Flood 1995, term at a
    /// time). Rare terms (large bounds, short lists) are walked whole into
    /// the accumulator until the k-th best partial score θ exceeds what
    /// the remaining terms could add together: no document outside the
    /// accumulator can then reach the top k. From there the remaining
    /// terms are only looked up (galloping) for the documents that can
    /// still pass θ, which shrink as θ grows. BM25 at a million passages
    /// (`scripts/bench-tantivy.sh`).
    pub fn search_max_score(
        &self,
        terms: &[(u32, f32)],
        k: usize,
        f: impl Fn(usize, u32, P) -> f32,
    ) -> Vec<Hit> {
        if k == 0 {
            return Vec::new();
        }
        let order = self.max_score_order(terms);
        // rest[j]: what the terms order[j..] can add at most, together.
        let mut rest = vec![0.0f64; order.len() + 1];
        for j in (0..order.len()).rev() {
            rest[j] = rest[j + 1] + f64::from(terms[order[j]].1);
        }
        // A document must score above `cut` to matter: a hair below θ, so
        // that bounds summed in another order never drop one that ties.
        let slack = 1.0 - 1e-5;
        self.search_scores(k, |scores, touched| {
            let mut kth = Vec::new();
            let mut kth_best = |scores: &[f32], slots: &[u32]| -> f64 {
                if slots.len() < k {
                    return f64::NEG_INFINITY;
                }
                kth.clear();
                kth.extend(slots.iter().map(|&s| scores[s as usize]));
                let (_, at, _) = kth.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
                f64::from(*at) * slack
            };
            let mut j = 0;
            let mut cut = f64::NEG_INFINITY;
            while j < order.len() {
                let i = order[j];
                self.accumulate(terms[i].0, scores, touched, |s, p| f(i, s, p));
                j += 1;
                #[cfg(test)]
                WALKED.with(|c| c.set(c.get() + 1));
                // θ is at most what the walked terms add up to: no use
                // selecting it before that passes what the rest can add.
                if j < order.len() && (rest[0] - rest[j]) * slack > rest[j] {
                    cut = kth_best(scores, touched);
                    if rest[j] <= cut {
                        break;
                    }
                }
            }
            if j == order.len() {
                return;
            }
            // The documents that can still pass θ; the others drop out
            // (their partial scores zeroed: they do not compete).
            let mut alive: Vec<u32> = Vec::new();
            for &s in touched.iter() {
                if f64::from(scores[s as usize]) + rest[j] > cut {
                    alive.push(s);
                } else {
                    scores[s as usize] = 0.0;
                }
            }
            alive.sort_unstable();
            for (jj, &i) in order.iter().enumerate().skip(j) {
                let list = self.postings(terms[i].0);
                if list.len() <= alive.len() {
                    // A short list: walked (the alive documents are the
                    // ones with a score).
                    for &(s, p) in list {
                        if scores[s as usize] != 0.0 {
                            scores[s as usize] += f(i, s, p);
                        }
                    }
                } else {
                    let mut at = 0;
                    for &s in &alive {
                        at = gallop(list, at, s);
                        match list.get(at) {
                            Some(&(slot, p)) if slot == s => scores[s as usize] += f(i, s, p),
                            Some(_) => {}
                            None => break,
                        }
                    }
                }
                cut = cut.max(kth_best(scores, &alive));
                alive.retain(|&s| {
                    let keep = f64::from(scores[s as usize]) + rest[jj + 1] > cut;
                    if !keep {
                        scores[s as usize] = 0.0;
                    }
                    keep
                });
            }
            touched.retain(|&s| scores[s as usize] != 0.0);
        })
    }

    /// The best `k` of the touched slots by score (ties: lower slot first);
    /// `touched` is reordered, never shortened.
    fn top_k(&self, scores: &[f32], touched: &mut [u32], k: usize) -> Vec<Hit> {
        if k == 0 {
            return Vec::new();
        }
        let order = |a: &u32, b: &u32| {
            scores[*b as usize]
                .total_cmp(&scores[*a as usize])
                .then(a.cmp(b))
        };
        let best = if touched.len() > k {
            touched.select_nth_unstable_by(k - 1, order);
            &mut touched[..k]
        } else {
            &mut touched[..]
        };
        best.sort_unstable_by(order);
        best.iter()
            .filter_map(|&s| {
                self.entry(s)
                    .map(|e| Hit::new(e.id.clone(), scores[s as usize]))
            })
            .collect()
    }
}

/// The first position at or after `from` whose slot is at least `slot`
/// (galloping, then binary search).
fn gallop<P>(list: &[(u32, P)], from: usize, slot: u32) -> usize {
    let mut lo = from;
    let mut step = 1;
    let mut hi = from;
    while hi < list.len() && list[hi].0 < slot {
        lo = hi + 1;
        hi += step;
        step *= 2;
    }
    let hi = hi.min(list.len());
    lo + list[lo..hi].partition_point(|&(s, _)| s < slot)
}

/// Sort terms by id and merge repeats with `merge`.
pub(crate) fn normalize_terms<P: Copy>(
    mut terms: Vec<(u32, P)>,
    merge: impl Fn(P, P) -> P,
) -> Vec<(u32, P)> {
    terms.sort_by_key(|t| t.0);
    let mut out: Vec<(u32, P)> = Vec::with_capacity(terms.len());
    for (t, p) in terms {
        match out.last_mut() {
            Some((last, acc)) if *last == t => *acc = merge(*acc, p),
            _ => out.push((t, p)),
        }
    }
    out
}
