//! Data-parallel training across devices: a batch's rows are split into one
//! contiguous shard per device, each device computes its shard's loss
//! (scaled by the shard's share of the batch) and gradients on a replica of
//! the model in a thread of its own, and the gradients are summed on the
//! first device, where the optimizer steps — so the step is the one a single
//! device takes on the whole batch, up to float summation order.
//!
//! burn 0.22's collective all-reduce (`DistributedContext`) runs only on
//! CUDA with NCCL; on burn-flex and wgpu it panics. The gather used here
//! (`MultiGradientsParams`, `ModuleOptimizer::step_multi`) works on every
//! backend with one code path, at the cost of moving each replica's
//! gradients to the first device.

use std::ops::Range;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, MultiGradientsParams};
use burn::tensor::{Device, Tensor};

use rlrag_eval::device::DeviceList;

use crate::TrainError;

/// `n` rows in `k` contiguous shards, sizes differing by at most one (the
/// first ones larger); empty shards when `k > n`.
pub fn shard_ranges(n: usize, k: usize) -> Vec<Range<usize>> {
    let k = k.max(1);
    let (base, extra) = (n / k, n % k);
    let mut start = 0;
    (0..k)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

/// A shard's result: its (scaled) loss value and gradients, or `None` when
/// the shard had nothing to learn.
pub type ShardGradients = Option<(f32, GradientsParams)>;

/// Runs `work(shard, replica)` for every replica in a thread of its own and
/// gathers the gradients onto `primary`: the summed loss and the gradients
/// for [`burn::optim::ModuleOptimizer::step_multi`], `None` when no shard
/// had anything to learn. A worker that fails or panics fails the step.
pub fn gather_gradients<R, F>(
    primary: &Device,
    replicas: Vec<R>,
    work: F,
) -> Result<Option<(f32, MultiGradientsParams)>, TrainError>
where
    R: Send,
    F: Fn(usize, R) -> Result<ShardGradients, TrainError> + Sync,
{
    let results: Vec<Result<ShardGradients, TrainError>> = std::thread::scope(|s| {
        let handles: Vec<_> = replicas
            .into_iter()
            .enumerate()
            .map(|(i, replica)| {
                let work = &work;
                s.spawn(move || work(i, replica))
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                h.join().unwrap_or_else(|_| {
                    Err(TrainError::Config {
                        name: "devices",
                        reason: format!("the worker of device {i} panicked"),
                    })
                })
            })
            .collect()
    });
    let mut total = 0.0;
    let mut grads = Vec::new();
    for r in results {
        if let Some((value, g)) = r? {
            total += value;
            grads.push((g, primary.clone()));
        }
    }
    if grads.is_empty() {
        return Ok(None);
    }
    Ok(Some((total, MultiGradientsParams { grads })))
}

/// Draws every lazily initialised parameter of `module` now. burn
/// initialises a fresh module's parameters on first use, from the device's
/// RNG at that moment: a replica forked before then would draw weights of
/// its own, and a module seeded under a lock would draw after the lock.
pub fn materialize<M: Module>(module: &M) {
    struct Draw;
    impl ModuleVisitor for Draw {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Draw);
}

/// The autodiff training devices of a run: `list` when given, else
/// `single` alone; never empty.
pub fn training_devices(
    list: Option<&DeviceList>,
    single: Device,
) -> Result<Vec<Device>, TrainError> {
    let devices: Vec<Device> = match list {
        Some(list) => list.devices()?,
        None => vec![single],
    };
    let devices: Vec<Device> = devices.into_iter().map(|d| d.autodiff()).collect();
    check_devices(&devices)?;
    Ok(devices)
}

/// Checks a device list for training: at least one, all autodiff.
pub fn check_devices(devices: &[Device]) -> Result<(), TrainError> {
    if devices.is_empty() {
        return Err(TrainError::Config {
            name: "devices",
            reason: "name at least one device".into(),
        });
    }
    if devices.iter().any(|d| !d.is_autodiff()) {
        return Err(TrainError::Config {
            name: "devices",
            reason: "training needs autodiff devices (Device::flex().autodiff())".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::shard_ranges;

    #[test]
    fn shards_cover_the_rows_in_order_and_differ_by_at_most_one() {
        for n in 0..20 {
            for k in 1..6 {
                let shards = shard_ranges(n, k);
                assert_eq!(shards.len(), k);
                assert_eq!(shards.first().map(|r| r.start), Some(0));
                assert_eq!(shards.last().map(|r| r.end), Some(n));
                assert!(shards.windows(2).all(|w| w[0].end == w[1].start));
                let lens: Vec<usize> = shards.iter().map(|r| r.len()).collect();
                let (lo, hi) = (lens.iter().min(), lens.iter().max());
                assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "{n} {k}");
            }
        }
        assert_eq!(shard_ranges(5, 0), vec![0..5]);
    }
}
