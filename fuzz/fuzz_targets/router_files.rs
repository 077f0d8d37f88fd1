//! A router directory's `config.json` and `policy.safetensors` (input: the
//! config's length as two little-endian bytes, the config, then the
//! weights): whatever loads must score a state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rlrag_router::features::FEATURES;
use rlrag_router::{LearnedPolicy, RouterConfig};

#[global_allocator]
static ALLOC: rlrag_fuzz::Bounded = rlrag_fuzz::Bounded;

fuzz_target!(|data: &[u8]| {
    let Some((config, weights)) = rlrag_fuzz::two_files(data) else {
        return;
    };
    let Ok(config) = RouterConfig::from_json(config) else {
        return;
    };
    let Ok(policy) = LearnedPolicy::load(&config, weights, &burn::tensor::Device::flex()) else {
        return;
    };
    let _ = policy.scores(&[0.5; FEATURES], &[true; 5]);
    let saved = policy.weights_safetensors().expect("a loaded policy saves");
    LearnedPolicy::load(&config, &saved, &burn::tensor::Device::flex())
        .expect("what it saved loads");
});
