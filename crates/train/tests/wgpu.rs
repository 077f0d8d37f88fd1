//! The same R3 code on the wgpu backend (Vulkan; lavapipe on CPU-only
//! machines, installed by `scripts/setup-vulkan.sh`): the loss, the step and
//! the sparse vectors agree with the CPU (flex) backend.
//!
//! Without a Vulkan adapter the test prints why and passes, unless
//! `RLRAG_REQUIRE_WGPU=1` (the test command sets it) makes that a failure.
#![cfg(feature = "wgpu")]
#![allow(missing_docs, clippy::expect_used, clippy::panic)]

mod common;

use burn::tensor::Device;
use common::{config, fixed_batch, hotpot, sparse_encoder, sparse_encoder_on};
use rlrag_train::{R3Trainer, wgpu_device};

fn gpu() -> Option<Device> {
    match wgpu_device() {
        Ok(device) => Some(device),
        Err(e) if std::env::var_os("RLRAG_REQUIRE_WGPU").is_some() => {
            panic!("RLRAG_REQUIRE_WGPU is set but {e}")
        }
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

#[test]
fn a_training_step_on_wgpu_matches_the_cpu_backend() {
    let Some(gpu) = gpu() else { return };
    let ds = hotpot();
    let (queries, passages, roles) = fixed_batch(&ds);
    let q: Vec<&str> = queries.iter().map(String::as_str).collect();
    let p: Vec<&str> = passages.iter().map(String::as_str).collect();

    let mut cpu = R3Trainer::new(sparse_encoder(), &ds.corpus[..50], config()).expect("cpu");
    let mut wgpu = R3Trainer::new(
        sparse_encoder_on(&gpu.autodiff()),
        &ds.corpus[..50],
        config(),
    )
    .expect("wgpu");

    // Inference: the same sparse vectors (terms and weights).
    let a = cpu
        .inference_encoder()
        .encode_sparse(&q)
        .expect("cpu encodes");
    let b = wgpu
        .inference_encoder()
        .encode_sparse(&q)
        .expect("wgpu encodes");
    for (x, y) in a.iter().zip(&b) {
        let top = |v: &rlrag_encoder::SparseVector| v.top(20);
        for ((tx, wx), (ty, wy)) in top(x).iter().zip(top(y).iter()) {
            assert_eq!(tx, ty, "same top terms");
            assert!((wx - wy).abs() < 1e-4, "weights {wx} vs {wy}");
        }
    }

    // Training: the same loss before, the same step, the same loss after.
    let before_cpu = cpu.loss_of(&q, &p, &roles).expect("loss").expect("pos");
    let before_gpu = wgpu.loss_of(&q, &p, &roles).expect("loss").expect("pos");
    assert!(
        (before_cpu - before_gpu).abs() < 1e-3,
        "loss {before_cpu} (cpu) vs {before_gpu} (wgpu)"
    );
    cpu.update(&q, &p, &roles).expect("cpu step").expect("pos");
    wgpu.update(&q, &p, &roles)
        .expect("wgpu step")
        .expect("pos");
    let after_cpu = cpu.loss_of(&q, &p, &roles).expect("loss").expect("pos");
    let after_gpu = wgpu.loss_of(&q, &p, &roles).expect("loss").expect("pos");
    assert!(
        after_gpu < before_gpu,
        "wgpu loss {before_gpu} -> {after_gpu}"
    );
    assert!(
        (after_cpu - after_gpu).abs() < 1e-2 * after_cpu.abs().max(1.0),
        "after one step: {after_cpu} (cpu) vs {after_gpu} (wgpu)"
    );
}
