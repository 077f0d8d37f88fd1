//! `Engine::import` (the browser's saved engines, `.idx` exports): whatever
//! imports must search (BM25: the modes that run the encoder cost ~0.6 s a
//! query under coverage instrumentation, and the sparse index's search is
//! fuzzed by `index_file`), export, and import again to the same bytes.
#![no_main]

use futures_lite::future::block_on;
use libfuzzer_sys::fuzz_target;
use rlrag_retriever::{Engine, SearchMode};

#[global_allocator]
static ALLOC: rlrag_fuzz::Bounded = rlrag_fuzz::Bounded;

fuzz_target!(|data: &[u8]| {
    let Some((_, bytes)) = rlrag_fuzz::split(data) else {
        return;
    };
    let Ok(engine) = Engine::import(rlrag_fuzz::engine_models(), &bytes) else {
        return;
    };
    if engine.modes().contains(&SearchMode::Bm25) {
        let _ = block_on(engine.search_with("capital of france", 5, SearchMode::Bm25, false));
    }
    let exported = engine.export().expect("an imported engine exports");
    let back = Engine::import(rlrag_fuzz::engine_models(), &exported).expect("its export imports");
    assert_eq!(back.export().expect("exports again"), exported);
});
