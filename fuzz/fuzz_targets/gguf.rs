//! GGUF model files (the generator's weights): the header, metadata and
//! tensor table, then every tensor dequantised.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: rlrag_fuzz::Bounded = rlrag_fuzz::Bounded;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = rlrag_generator::gguf::Gguf::parse(data) {
        for t in &file.tensors {
            let values = file
                .tensor(data, &t.name)
                .expect("a tensor the table accepted dequantises");
            assert_eq!(values.len() as u64, t.elements());
        }
    }
});
