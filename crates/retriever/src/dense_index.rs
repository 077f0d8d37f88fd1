//! Dense vector search: exact (flat) inner-product search, and approximate
//! HNSW search through `instant-distance` (seeded, so builds are repeatable).

use std::collections::HashMap;

use instant_distance::{Builder, HnswMap, Point, Search};
use serde::{Deserialize, Serialize};

use crate::persist::{self, SavedIndex, invalid};
use crate::{Hit, RetrieverError};

/// The kind name of dense index files.
pub const INDEX_KIND: &str = "dense";
/// The payload version this build writes and reads.
pub const PAYLOAD_VERSION: u16 = 1;
/// The most dimensions a dense vector may have.
pub const MAX_DIM: usize = 1 << 16;

/// Inner product over the common length. Sixteen independent partial sums
/// let the compiler keep them in vector registers (a single running sum
/// must add in order, which forbids SIMD): two to three times faster over
/// a 20 k × 384 scan at opt-level 2 (a scan that large is then bound by
/// memory), and every HNSW distance goes through it. On x86_64 the loop is
/// compiled for the widest SIMD the CPU has (AVX-512, AVX2 or SSE), chosen
/// at run time by `pulp` as the encoder's kernels are; elsewhere as built
/// (wasm32 with SIMD128).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        struct Dot<'a>(&'a [f32], &'a [f32]);
        impl pulp::WithSimd for Dot<'_> {
            type Output = f32;
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, _simd: S) -> f32 {
                dot_lanes(self.0, self.1)
            }
        }
        // Detected once: a distance is a few dozen nanoseconds, and HNSW
        // computes millions of them.
        static ARCH: std::sync::LazyLock<pulp::Arch> = std::sync::LazyLock::new(pulp::Arch::new);
        ARCH.dispatch(Dot(a, b))
    }
    #[cfg(not(target_arch = "x86_64"))]
    dot_lanes(a, b)
}

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut sums = [0.0f32; LANES];
    let (a_blocks, b_blocks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_blocks
        .remainder()
        .iter()
        .zip(b_blocks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_blocks.zip(b_blocks) {
        for ((sum, x), y) in sums.iter_mut().zip(x).zip(y) {
            *sum += x * y;
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// Exact inner-product search over vectors of one dimension (cosine
/// similarity when the vectors are L2-normalised, as the dense encoder makes them).
#[derive(Debug, Clone, Default)]
pub struct FlatIndex {
    dim: usize,
    ids: Vec<String>,
    /// Row-major, `ids.len() × dim`.
    data: Vec<f32>,
    by_id: HashMap<String, usize>,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    dim: u32,
    ids: Vec<String>,
    data: Vec<f32>,
}

impl FlatIndex {
    /// An empty index of vectors with `dim` dimensions.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            ..Self::default()
        }
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether a document id is indexed.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// The documents at positions `range` (clamped to the index), with
    /// their vectors, ready for another index's `add`.
    pub fn rows(&self, range: std::ops::Range<usize>) -> Vec<(String, Vec<f32>)> {
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        self.ids[start..end]
            .iter()
            .zip(self.data[start * self.dim..end * self.dim].chunks_exact(self.dim.max(1)))
            .map(|(id, v)| (id.clone(), v.to_vec()))
            .collect()
    }

    /// The stored vector of a document.
    pub fn vector(&self, id: &str) -> Option<&[f32]> {
        self.by_id
            .get(id)
            .map(|&i| &self.data[i * self.dim..(i + 1) * self.dim])
    }

    /// Add documents with their vectors; all or nothing on a wrong dimension,
    /// a non-finite value or a duplicate id.
    pub fn add(&mut self, docs: &[(String, Vec<f32>)]) -> Result<(), RetrieverError> {
        if !(1..=MAX_DIM).contains(&self.dim) && !docs.is_empty() {
            return Err(RetrieverError::InvalidParameter {
                name: "dim",
                reason: format!("vectors of {} dimensions (1..={MAX_DIM})", self.dim),
            });
        }
        let mut batch = std::collections::HashSet::new();
        for (id, v) in docs {
            if self.by_id.contains_key(id) || !batch.insert(id.as_str()) {
                return Err(RetrieverError::DuplicateDocument { id: id.clone() });
            }
            if v.len() != self.dim || v.iter().any(|x| !x.is_finite()) {
                return Err(RetrieverError::InvalidParameter {
                    name: "vector",
                    reason: format!(
                        "document `{id}`: expected {} finite values, got {} values",
                        self.dim,
                        v.len()
                    ),
                });
            }
        }
        for (id, v) in docs {
            self.by_id.insert(id.clone(), self.ids.len());
            self.ids.push(id.clone());
            self.data.extend_from_slice(v);
        }
        Ok(())
    }

    /// Remove documents by id (order of the rest is kept); unknown ids are
    /// ignored. Returns how many went.
    pub fn remove<S: AsRef<str>>(&mut self, ids: &[S]) -> usize {
        let gone: std::collections::HashSet<usize> = ids
            .iter()
            .filter_map(|id| self.by_id.get(id.as_ref()).copied())
            .collect();
        if gone.is_empty() {
            return 0;
        }
        let (mut ids_out, mut data_out) = (Vec::new(), Vec::new());
        for (i, id) in std::mem::take(&mut self.ids).into_iter().enumerate() {
            if !gone.contains(&i) {
                ids_out.push(id);
                data_out.extend_from_slice(&self.data[i * self.dim..(i + 1) * self.dim]);
            }
        }
        self.ids = ids_out;
        self.data = data_out;
        self.by_id = self
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        gone.len()
    }

    fn check_query(&self, query: &[f32]) -> Result<(), RetrieverError> {
        if query.len() != self.dim {
            return Err(RetrieverError::InvalidParameter {
                name: "query",
                reason: format!("expected {} dimensions, got {}", self.dim, query.len()),
            });
        }
        Ok(())
    }

    /// The best `k` documents by inner product (ties: insertion order).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, RetrieverError> {
        self.check_query(query)?;
        if k == 0 || self.dim == 0 {
            return Ok(Vec::new());
        }
        let scores: Vec<f32> = self
            .data
            .chunks_exact(self.dim)
            .map(|row| dot(row, query))
            .collect();
        let mut order: Vec<usize> = (0..scores.len()).collect();
        let cmp = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
        if order.len() > k {
            order.select_nth_unstable_by(k - 1, cmp);
            order.truncate(k);
        }
        order.sort_unstable_by(cmp);
        Ok(order
            .into_iter()
            .map(|i| Hit::new(self.ids[i].clone(), scores[i]))
            .collect())
    }
}

impl SavedIndex for FlatIndex {
    /// Serialise to the versioned, checksummed index format.
    fn to_bytes(&self) -> Result<Vec<u8>, RetrieverError> {
        let snap = Snapshot {
            dim: self.dim as u32,
            ids: self.ids.clone(),
            data: self.data.clone(),
        };
        persist::encode_snapshot(INDEX_KIND, PAYLOAD_VERSION, &snap)
    }

    /// Read an index written by [`FlatIndex::to_bytes`].
    fn from_bytes(bytes: &[u8]) -> Result<Self, RetrieverError> {
        let snap: Snapshot = persist::decode_snapshot(bytes, INDEX_KIND, PAYLOAD_VERSION)?;
        let dim = snap.dim as usize;
        if !(1..=MAX_DIM).contains(&dim) {
            return Err(invalid(format!("dimension {dim} (1..={MAX_DIM})")));
        }
        // Checked: on wasm32 the product of two lengths can wrap.
        if snap.ids.len().checked_mul(dim) != Some(snap.data.len()) {
            return Err(invalid(format!(
                "{} ids but {} values for dimension {dim}",
                snap.ids.len(),
                snap.data.len()
            )));
        }
        let mut index = Self::new(dim);
        let docs: Vec<(String, Vec<f32>)> = snap
            .ids
            .into_iter()
            .zip(snap.data.chunks(dim).map(<[f32]>::to_vec))
            .collect();
        index.add(&docs).map_err(|e| invalid(e.to_string()))?;
        Ok(index)
    }
}

/// HNSW build and search settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Candidate list size while building.
    pub ef_construction: usize,
    /// Candidate list size while searching (fixed at build time by `instant-distance`).
    pub ef_search: usize,
    /// RNG seed of the layer assignment.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            ef_construction: 200,
            ef_search: 128,
            seed: 42,
        }
    }
}

#[derive(Clone)]
struct Vector(Vec<f32>);

impl Point for Vector {
    /// Cosine distance for normalised vectors.
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(&self.0, &other.0)
    }
}

/// Which dense index answers queries.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenseSearch {
    /// Exact inner product over every vector.
    #[default]
    Flat,
    /// HNSW (approximate), rebuilt after every change and never saved.
    Hnsw(HnswParams),
}

/// An HNSW graph over a [`FlatIndex`]'s vectors (a snapshot: rebuild after
/// the flat index changes).
pub struct HnswIndex {
    map: HnswMap<Vector, String>,
    dim: usize,
    params: HnswParams,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("dim", &self.dim)
            .field("params", &self.params)
            .finish()
    }
}

impl HnswIndex {
    /// Build over every vector of `flat`.
    pub fn build(flat: &FlatIndex, params: HnswParams) -> Self {
        let points = flat
            .data
            .chunks_exact(flat.dim.max(1))
            .map(|r| Vector(r.to_vec()))
            .collect();
        let map = Builder::default()
            .ef_construction(params.ef_construction)
            .ef_search(params.ef_search)
            .seed(params.seed)
            .build(points, flat.ids.clone());
        Self {
            map,
            dim: flat.dim,
            params,
        }
    }

    /// The settings it was built with.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Approximately the best `k` documents (at most `ef_search`).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, RetrieverError> {
        if query.len() != self.dim {
            return Err(RetrieverError::InvalidParameter {
                name: "query",
                reason: format!("expected {} dimensions, got {}", self.dim, query.len()),
            });
        }
        // One search state per thread, reused: a fresh one allocates and
        // zeroes a visited mark per vector on every query.
        thread_local! {
            static SEARCH: std::cell::RefCell<Search> = std::cell::RefCell::new(Search::default());
        }
        SEARCH.with(|search| {
            let mut search = search.borrow_mut();
            Ok(self
                .map
                .search(&Vector(query.to_vec()), &mut search)
                .take(k)
                .map(|item| Hit::new(item.value.clone(), 1.0 - item.distance))
                .collect())
        })
    }
}

/// Changes a [`LiveHnsw`] holds beside its graph before it rebuilds it.
pub const MERGE_AT: usize = 1024;

/// HNSW search over a corpus that changes: the graph is a snapshot, and
/// what changed since sits beside it. Vectors added since are searched
/// exactly in a small segment; ids removed or replaced since are
/// tombstones the graph's hits skip. A search merges both lists, so it
/// returns what a graph rebuilt over the live vectors would (exactly so
/// wherever the graph's search is exact). When the segment and the
/// tombstones outgrow their bounds ([`MERGE_AT`] changes; tombstones past
/// half of `ef_search`, which would crowd the graph's candidates) the
/// graph is rebuilt over the live vectors and both are emptied.
#[derive(Debug)]
pub struct LiveHnsw {
    graph: Option<HnswIndex>,
    /// Ids the graph holds (tombstoned or not).
    in_graph: std::collections::HashSet<String>,
    fresh: FlatIndex,
    tombstones: std::collections::HashSet<String>,
    params: HnswParams,
    merge_at: usize,
}

impl LiveHnsw {
    /// A graph over every vector of `live`, rebuilt after `merge_at`
    /// changes (at least 1).
    pub fn build(live: &FlatIndex, params: HnswParams, merge_at: usize) -> Self {
        let mut index = Self {
            graph: None,
            in_graph: std::collections::HashSet::new(),
            fresh: FlatIndex::new(live.dim),
            tombstones: std::collections::HashSet::new(),
            params,
            merge_at: merge_at.max(1),
        };
        index.merge(live);
        index
    }

    /// Rebuild the graph over `live` (every vector now searchable) and
    /// empty the segment and the tombstones.
    pub fn merge(&mut self, live: &FlatIndex) {
        self.graph = (!live.is_empty()).then(|| HnswIndex::build(live, self.params));
        self.in_graph = live.ids.iter().cloned().collect();
        self.fresh = FlatIndex::new(live.dim);
        self.tombstones.clear();
    }

    /// The settings of the graph.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Vectors added since the graph was built, and tombstones.
    pub fn pending(&self) -> (usize, usize) {
        (self.fresh.len(), self.tombstones.len())
    }

    /// Whether the changes outgrew their bounds (then [`LiveHnsw::merge`]).
    pub fn needs_merge(&self) -> bool {
        self.fresh.len() + self.tombstones.len() > self.merge_at
            || self.tombstones.len() > self.params.ef_search / 2
    }

    /// Add (or replace) documents' vectors: into the exact segment, the
    /// graph's old copies tombstoned. All or nothing, as [`FlatIndex::add`].
    pub fn add(&mut self, docs: &[(String, Vec<f32>)]) -> Result<(), RetrieverError> {
        // Checked on their own first (dimension, values, repeats), so that
        // the segment changes only when the whole batch goes in.
        FlatIndex::new(self.fresh.dim).add(docs)?;
        let replaced: Vec<&str> = docs
            .iter()
            .map(|(id, _)| id.as_str())
            .filter(|id| self.fresh.contains(id))
            .collect();
        self.fresh.remove(&replaced);
        self.fresh.add(docs)?;
        for (id, _) in docs {
            if self.in_graph.contains(id) {
                self.tombstones.insert(id.clone());
            }
        }
        Ok(())
    }

    /// Remove documents (unknown ids are ignored).
    pub fn remove<S: AsRef<str>>(&mut self, ids: &[S]) {
        self.fresh.remove(ids);
        for id in ids {
            if self.in_graph.contains(id.as_ref()) {
                self.tombstones.insert(id.as_ref().to_owned());
            }
        }
    }

    /// The best `k` live documents: the graph's (less tombstones) and the
    /// segment's exact hits, merged by score.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, RetrieverError> {
        let mut hits = match &self.graph {
            Some(g) => g.search(query, k + self.tombstones.len())?,
            None => Vec::new(),
        };
        hits.retain(|h| !self.tombstones.contains(&h.id));
        hits.truncate(k);
        hits.extend(self.fresh.search(query, k)?);
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
        Ok(hits)
    }
}

/// Mean recall@k of `approx` against exact results for the same queries.
pub fn recall_against_exact(exact: &[Vec<Hit>], approx: &[Vec<Hit>], k: usize) -> f64 {
    if exact.is_empty() {
        return 0.0;
    }
    let per_query = exact.iter().zip(approx).map(|(e, a)| {
        let truth: std::collections::HashSet<&str> =
            e.iter().take(k).map(|h| h.id.as_str()).collect();
        if truth.is_empty() {
            return 1.0;
        }
        let found = a
            .iter()
            .take(k)
            .filter(|h| truth.contains(h.id.as_str()))
            .count();
        found as f64 / truth.len() as f64
    });
    per_query.sum::<f64>() / exact.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dim: u32, ids: &[&str], values: usize) -> Vec<u8> {
        let snap = Snapshot {
            dim,
            ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            data: vec![0.5; values],
        };
        persist::encode_snapshot(INDEX_KIND, PAYLOAD_VERSION, &snap).expect("frames")
    }

    /// Dimension 0 dropped every id without a word; a product of lengths
    /// that wraps on wasm32 could pass the size check.
    #[test]
    fn bad_dimensions_are_refused() {
        for (dim, ids, values) in [
            (0, &["a", "b"][..], 0),
            (u32::MAX, &["a"][..], 0),
            (MAX_DIM as u32 + 1, &["a"][..], 0),
            (3, &["a", "b"][..], 5),
        ] {
            let err = FlatIndex::from_bytes(&file(dim, ids, values)).expect_err("refused");
            assert!(
                err.to_string().contains("dimension") || err.to_string().contains("values"),
                "{err}"
            );
        }
        let ok = FlatIndex::from_bytes(&file(2, &["a", "b"], 4)).expect("consistent");
        assert_eq!(ok.len(), 2);
        let mut empty = FlatIndex::new(0);
        assert!(empty.add(&[("a".into(), Vec::new())]).is_err());
        assert!(empty.add(&[]).is_ok());
    }

    /// The lane-wise sum equals an f64 reference at every length around
    /// the lane count (blocks, tail, both, neither).
    #[test]
    fn rows_are_the_documents_in_order_clamped() {
        let mut flat = FlatIndex::new(2);
        let docs: Vec<(String, Vec<f32>)> = (0..5)
            .map(|i| (format!("d{i}"), vec![i as f32, 1.0]))
            .collect();
        flat.add(&docs).unwrap();
        assert_eq!(flat.rows(1..3), docs[1..3].to_vec());
        assert_eq!(flat.rows(3..99), docs[3..].to_vec());
        assert!(flat.rows(7..9).is_empty());
    }

    #[test]
    fn dot_matches_a_wide_reference() {
        let mut rng = crate::rng::SplitMix64::new(7);
        for n in [0, 1, 15, 16, 17, 31, 32, 33, 384, 385] {
            let a: Vec<f32> = (0..n).map(|_| rng.next_f32() - 0.5).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.next_f32() - 0.5).collect();
            let reference: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            assert!(
                (f64::from(dot(&a, &b)) - reference).abs() < 1e-5,
                "length {n}"
            );
        }
        assert!((dot(&[1.0, 2.0, 3.0], &[4.0, 5.0]) - 14.0).abs() < f32::EPSILON);
    }
}
