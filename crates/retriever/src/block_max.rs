//! Block-max pruning (BMP; Mallia, Suel and Tonellotto, SIGIR 2024) for
//! learned-sparse search over large corpora: documents sit in a forward
//! index cut into fixed-size blocks, each term keeps the largest weight it
//! has in every block (as `(block, max)` pairs for a term in few blocks, as
//! one byte per block, rounded up, for a term in many: those sum over all
//! blocks in one vectorised pass), and a query visits blocks by their upper bound
//! (`Σ q_t · max_t(block)`), best first, scoring the documents of a block
//! exactly, until no unvisited block can beat the k-th score found.
//!
//! With `alpha = 1` the result is exact: the same documents, scores and
//! order (ties: the lower original position first) as the exhaustive
//! [`crate::SparseIndex::search`]. With `alpha < 1` a block is skipped once
//! `alpha` times its bound cannot beat the k-th score: faster, approximate
//! (BMP's own knob; measure its recall against exact).
//!
//! Documents may be reordered before blocking so that similar documents
//! share blocks (tighter bounds): [`Ordering::HeaviestTerm`] groups them by
//! their heaviest terms, a cheap stand-in for the graph reordering the BMP
//! paper uses. The order never changes results, only speed.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;

use rlrag_encoder::SparseVector;

use crate::{Hit, RetrieverError};

/// Documents per block by default (BMP's sweet spot at millions of
/// passages lies between 8 and 64).
pub const DEFAULT_BLOCK_SIZE: usize = 32;
/// The largest block.
pub const MAX_BLOCK_SIZE: usize = 1 << 16;

/// Relative slack on a block's bound before it is dropped: a bound and a
/// score sum the same products in another order, so rounding may put a
/// score a few ulps above its bound.
const BOUND_SLACK: f32 = 1e-5;

/// How documents are laid out in blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ordering {
    /// As given.
    Original,
    /// Sorted by their heaviest term, then their second heaviest.
    #[default]
    HeaviestTerm,
}

/// What one search did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Blocks with a positive bound.
    pub candidate_blocks: usize,
    /// Blocks whose documents were scored.
    pub visited_blocks: usize,
    /// Documents scored.
    pub scored: usize,
}

/// A learned-sparse index searched by block-max pruning (built once; a
/// changed corpus builds it again).
#[derive(Debug, Clone)]
pub struct BlockMaxIndex {
    block_size: usize,
    vocab_size: u32,
    ids: Vec<String>,
    /// Original position of each laid-out document (ties break on it).
    origin: Vec<u32>,
    /// Forward index: document `i`'s terms are `terms[offsets[i]..offsets[i+1]]`.
    offsets: Vec<usize>,
    terms: Vec<u32>,
    weights: Vec<f32>,
    /// Per term: its largest weight in every block that holds it.
    block_max: Vec<TermBlocks>,
}

/// A term's block maxima: pairs for a term in few blocks, a dense array of
/// maxima quantised to 8 bits (rounded up, so bounds stay bounds) for a
/// term in many, summed over all blocks in one vectorised pass.
#[derive(Debug, Clone)]
enum TermBlocks {
    /// `(block, largest weight in the block)`, by block.
    Sparse(Vec<(u32, f32)>),
    /// One byte per block: the block's maximum is at most `scale · q / 255`.
    Dense { scale: f32, max: Vec<u8> },
}

impl TermBlocks {
    fn heap_bytes(&self) -> usize {
        match self {
            Self::Sparse(l) => l.capacity() * 8 + 32,
            Self::Dense { max, .. } => max.capacity() + 32,
        }
    }
}

/// A scored document in the top-k heap: the worst on top.
#[derive(Debug, Clone, Copy)]
struct Scored {
    score: f32,
    origin: u32,
    doc: u32,
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    /// Better is smaller, so the max-heap holds the worst on top: a lower
    /// score, then a later original position, is greater.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.origin.cmp(&other.origin))
    }
}

impl BlockMaxIndex {
    /// Build over `docs` (terms sorted by id, as [`SparseVector`] keeps
    /// them, weights finite and positive, ids below `vocab_size`).
    pub fn build<'a>(
        docs: impl IntoIterator<Item = (&'a str, &'a [(u32, f32)])>,
        vocab_size: u32,
        block_size: usize,
        ordering: Ordering,
    ) -> Result<Self, RetrieverError> {
        if !(1..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(RetrieverError::InvalidParameter {
                name: "block_size",
                reason: format!("{block_size} documents per block (1..={MAX_BLOCK_SIZE})"),
            });
        }
        let docs: Vec<(&str, &[(u32, f32)])> = docs.into_iter().collect();
        for (id, terms) in &docs {
            let sorted = terms.windows(2).all(|w| w[0].0 < w[1].0);
            let bad = terms
                .iter()
                .find(|(t, w)| *t >= vocab_size || !w.is_finite() || *w <= 0.0);
            if !sorted || bad.is_some() {
                return Err(RetrieverError::InvalidParameter {
                    name: "vector",
                    reason: format!(
                        "document `{id}`: terms must be sorted, unique, below {vocab_size}, \
                         with finite positive weights"
                    ),
                });
            }
        }
        if u32::try_from(docs.len()).is_err() {
            return Err(RetrieverError::InvalidParameter {
                name: "documents",
                reason: format!("{} documents (at most {})", docs.len(), u32::MAX),
            });
        }
        let mut order: Vec<u32> = (0..docs.len() as u32).collect();
        if ordering == Ordering::HeaviestTerm {
            let heaviest = |terms: &[(u32, f32)]| -> (u32, u32) {
                let mut best = (u32::MAX, f32::NEG_INFINITY, u32::MAX, f32::NEG_INFINITY);
                for &(t, w) in terms {
                    if w > best.1 {
                        best = (t, w, best.0, best.1);
                    } else if w > best.3 {
                        best.2 = t;
                        best.3 = w;
                    }
                }
                (best.0, best.2)
            };
            let keys: Vec<(u32, u32)> = docs.iter().map(|(_, t)| heaviest(t)).collect();
            order.sort_by_key(|&i| (keys[i as usize], i));
        }
        let total: usize = docs.iter().map(|(_, t)| t.len()).sum();
        let mut pairs: Vec<Vec<(u32, f32)>> = Vec::new();
        let mut index = Self {
            block_size,
            vocab_size,
            ids: Vec::with_capacity(docs.len()),
            origin: Vec::with_capacity(docs.len()),
            offsets: Vec::with_capacity(docs.len() + 1),
            terms: Vec::with_capacity(total),
            weights: Vec::with_capacity(total),
            block_max: Vec::new(),
        };
        index.offsets.push(0);
        for (pos, &i) in order.iter().enumerate() {
            let (id, terms) = docs[i as usize];
            let block = (pos / block_size) as u32;
            for &(t, w) in terms {
                let t = t as usize;
                if t >= pairs.len() {
                    pairs.resize_with(t + 1, Vec::new);
                }
                let list = &mut pairs[t];
                match list.last_mut() {
                    Some((b, m)) if *b == block => *m = m.max(w),
                    _ => list.push((block, w)),
                }
                index.terms.push(t as u32);
                index.weights.push(w);
            }
            index.ids.push(id.to_owned());
            index.origin.push(i);
            index.offsets.push(index.terms.len());
        }
        let blocks = docs.len().div_ceil(block_size);
        index.block_max = pairs
            .into_iter()
            .map(|list| {
                // Dense once it is smaller: a byte per block against eight
                // per pair.
                if list.len() * 8 <= blocks {
                    return TermBlocks::Sparse(list);
                }
                let scale = list.iter().fold(0f32, |m, (_, w)| m.max(*w));
                let mut max = vec![0u8; blocks];
                for (b, w) in list {
                    let q = (w / scale * 255.0).ceil().clamp(1.0, 255.0);
                    max[b as usize] = q as u8;
                }
                TermBlocks::Dense { scale, max }
            })
            .collect();
        Ok(index)
    }

    /// Documents held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Documents per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Bytes the index holds (forward index, block maxima, ids).
    pub fn heap_bytes(&self) -> usize {
        let ids: usize = self.ids.iter().map(|s| s.capacity() + 24).sum();
        let block_max: usize = self.block_max.iter().map(TermBlocks::heap_bytes).sum();
        ids + block_max
            + self.origin.capacity() * 4
            + self.offsets.capacity() * 8
            + self.terms.capacity() * 4
            + self.weights.capacity() * 4
    }

    /// The best `k` documents by dot product with `query`, pruned at
    /// `alpha` (1: exact; in (0, 1]).
    pub fn search(
        &self,
        query: &SparseVector,
        k: usize,
        alpha: f32,
    ) -> Result<Vec<Hit>, RetrieverError> {
        self.search_with_stats(query, k, alpha)
            .map(|(hits, _)| hits)
    }

    /// As [`BlockMaxIndex::search`], with what the search did.
    pub fn search_with_stats(
        &self,
        query: &SparseVector,
        k: usize,
        alpha: f32,
    ) -> Result<(Vec<Hit>, SearchStats), RetrieverError> {
        if !(alpha > 0.0 && alpha <= 1.0) {
            return Err(RetrieverError::InvalidParameter {
                name: "alpha",
                reason: format!("alpha is {alpha} (in (0, 1]; 1 is exact)"),
            });
        }
        let mut stats = SearchStats::default();
        if k == 0 || self.ids.is_empty() {
            return Ok((Vec::new(), stats));
        }
        // The query as a lookup table over the terms the corpus has.
        let mut q = vec![0f32; self.block_max.len()];
        let mut present = Vec::new();
        for &(t, w) in &query.terms {
            if t >= self.vocab_size {
                return Err(RetrieverError::InvalidParameter {
                    name: "query",
                    reason: format!("term {t} outside the vocabulary of {}", self.vocab_size),
                });
            }
            if w > 0.0 && w.is_finite() && (t as usize) < q.len() {
                q[t as usize] = w;
                present.push(t);
            }
        }
        let blocks = self.ids.len().div_ceil(self.block_size);
        let mut bound = vec![0f32; blocks];
        for &t in &present {
            let w = q[t as usize];
            match &self.block_max[t as usize] {
                TermBlocks::Sparse(list) => {
                    for &(b, m) in list {
                        bound[b as usize] += w * m;
                    }
                }
                TermBlocks::Dense { scale, max } => {
                    let f = w * scale / 255.0;
                    for (u, &m) in bound.iter_mut().zip(max) {
                        *u += f * f32::from(m);
                    }
                }
            }
        }
        let mut candidates: Vec<u32> = (0..blocks as u32)
            .filter(|&b| bound[b as usize] > 0.0)
            .collect();
        stats.candidate_blocks = candidates.len();
        let by_bound = |a: &u32, b: &u32| {
            bound[*b as usize]
                .total_cmp(&bound[*a as usize])
                .then(a.cmp(b))
        };
        let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(k + 1);
        // Blocks best bound first, a growing slice at a time: most queries
        // stop within the first few dozen.
        let mut start = 0;
        let mut chunk = 64;
        'blocks: while start < candidates.len() {
            let rest = &mut candidates[start..];
            let take = chunk.min(rest.len());
            if take < rest.len() {
                rest.select_nth_unstable_by(take - 1, by_bound);
            }
            rest[..take].sort_unstable_by(by_bound);
            for &b in &rest[..take] {
                if heap.len() == k {
                    let kth = heap.peek().map_or(0.0, |s| s.score);
                    if alpha * bound[b as usize] * (1.0 + BOUND_SLACK) < kth {
                        break 'blocks;
                    }
                }
                stats.visited_blocks += 1;
                let first = b as usize * self.block_size;
                let last = (first + self.block_size).min(self.ids.len());
                for doc in first..last {
                    let (lo, hi) = (self.offsets[doc], self.offsets[doc + 1]);
                    let mut score = 0f32;
                    for (t, d) in self.terms[lo..hi].iter().zip(&self.weights[lo..hi]) {
                        let w = q[*t as usize];
                        if w > 0.0 {
                            score += w * d;
                        }
                    }
                    stats.scored += 1;
                    if score <= 0.0 {
                        continue;
                    }
                    let entry = Scored {
                        score,
                        origin: self.origin[doc],
                        doc: doc as u32,
                    };
                    if heap.len() < k {
                        heap.push(entry);
                    } else if heap.peek().is_some_and(|worst| entry < *worst) {
                        heap.pop();
                        heap.push(entry);
                    }
                }
            }
            start += take;
            chunk *= 2;
        }
        let hits = heap
            .into_sorted_vec()
            .into_iter()
            .map(|s| Hit::new(self.ids[s.doc as usize].clone(), s.score))
            .collect();
        Ok((hits, stats))
    }
}
