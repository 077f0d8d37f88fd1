//! Saved indexes (BM25, learned-sparse, dense): whatever decodes must
//! search, save and read back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rlrag_encoder::SparseVector;
use rlrag_retriever::{Bm25Index, FlatIndex, SavedIndex, SparseIndex};

#[global_allocator]
static ALLOC: rlrag_fuzz::Bounded = rlrag_fuzz::Bounded;

fn round_trip<T: SavedIndex>(index: &T) {
    let bytes = index.to_bytes().expect("a decoded index encodes");
    let back = T::from_bytes(&bytes).expect("what it wrote reads back");
    assert_eq!(back.to_bytes().expect("encodes again"), bytes);
}

fuzz_target!(|data: &[u8]| {
    let Some((sel, bytes)) = rlrag_fuzz::split(data) else {
        return;
    };
    match sel % 3 {
        0 => {
            if let Ok(index) = Bm25Index::from_bytes(&bytes) {
                let _ = index.search("the capital of france paris paris", 10);
                round_trip(&index);
            }
        }
        1 => {
            if let Ok(index) = SparseIndex::from_bytes(&bytes) {
                let last = index.vocab_size().saturating_sub(1);
                let query = SparseVector {
                    terms: vec![(0, 1.0), (last / 2, 0.5), (last, 0.25)],
                };
                let _ = index.search(&query, 10);
                round_trip(&index);
            }
        }
        _ => {
            if let Ok(index) = FlatIndex::from_bytes(&bytes) {
                if index.dim() <= 4096 {
                    let _ = index.search(&vec![0.5; index.dim()], 10);
                }
                round_trip(&index);
            }
        }
    }
});
