//! safetensors headers: the canonical form (router weights, trained
//! models) and the in-place renaming every model load does.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: rlrag_fuzz::Bounded = rlrag_fuzz::Bounded;

fuzz_target!(|data: &[u8]| {
    if let Ok(canonical) = rlrag_encoder::canonical_safetensors(data) {
        let again = rlrag_encoder::canonical_safetensors(&canonical)
            .expect("the canonical form reads back");
        assert_eq!(again, canonical, "canonical form is a fixed point");
    }
    let _ = rlrag_encoder::fuzzing::rename_in_place(data.to_vec());
});
