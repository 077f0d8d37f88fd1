//! A model's `config.json` and `tokenizer.json` (input: the config's length
//! as two little-endian bytes, the config, then the tokenizer): whatever
//! parses must tokenize any text to ids inside the model's vocabulary.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rlrag_encoder::Prepared;

#[global_allocator]
static ALLOC: rlrag_fuzz::Bounded = rlrag_fuzz::Bounded;

fuzz_target!(|data: &[u8]| {
    let Some((config, tokenizer)) = rlrag_fuzz::two_files(data) else {
        return;
    };
    let Ok(prepared) = Prepared::parse(config, tokenizer) else {
        return;
    };
    let vocab = prepared.config().bert.vocab_size;
    let odd = String::from_utf8_lossy(tokenizer.get(..256).unwrap_or(tokenizer)).into_owned();
    for text in [
        "Paris is the capital of France.",
        "[CLS] [SEP] [MASK] ##s",
        "",
        odd.as_str(),
    ] {
        if let Ok(ids) = prepared.input_ids(text) {
            assert!(
                ids.iter().all(|&id| (id as usize) < vocab),
                "an id outside the vocabulary of {vocab}: {ids:?}"
            );
        }
    }
});
