//! A generator's model directory (`config.json`, `tokenizer.json`,
//! `model.safetensors`; input: the three files in that order, split at the
//! first two 0xff bytes, which JSON text never holds): whatever loads must
//! generate tokens inside its vocabulary, or refuse with an error.
#![no_main]

use burn::tensor::Device;
use libfuzzer_sys::fuzz_target;
use rlrag_generator::generate::{GenerateOptions, Generator};

#[global_allocator]
static ALLOC: rlrag_fuzz::Bounded = rlrag_fuzz::Bounded;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0xff);
    let (Some(config), Some(tokenizer), Some(weights)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let Ok(generator) =
        Generator::from_dir_files(config, weights.to_vec(), tokenizer, &Device::flex())
    else {
        return;
    };
    let options = GenerateOptions {
        max_tokens: 2,
        ..GenerateOptions::default()
    };
    let vocab = generator.model().config.vocab_size;
    for prompt in ["Paris is", "<|im_start|>user\nHi<|im_end|>\n", ""] {
        if let Ok(out) = generator.generate(prompt, &options, &mut |_| true) {
            assert!(
                out.tokens.iter().all(|&t| (t as usize) < vocab),
                "a token outside the vocabulary of {vocab}: {:?}",
                out.tokens
            );
        }
    }
});
