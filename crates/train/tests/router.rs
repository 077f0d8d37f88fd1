//! The router's policy update: rewarded decisions become more probable,
//! punished ones less, sensing included; advantages are group-relative.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use burn::tensor::Device;
use rlrag_reward::cost::Cost;
use rlrag_router::Action;
use rlrag_router::features::FEATURES;
use rlrag_router::memory::CONFIDENCE_FEATURES;
use rlrag_router::pipeline::{Decision, SensingRecord, StopReason, Trace};
use rlrag_train::router::group_advantages;
use rlrag_train::{Rollout, RouterTrainConfig, RouterTrainer};

fn features(x: f32) -> Vec<f32> {
    let mut f = vec![0.0; FEATURES];
    f[0] = 1.0;
    f[4] = x;
    f
}

fn rollout(action: Action, sensed: bool, reward: f64) -> Rollout {
    Rollout {
        trace: Trace {
            question: "q".into(),
            sensing: SensingRecord {
                ran: sensed,
                probability: 0.5,
                features: features(0.0),
                alignment: None,
            },
            decisions: vec![Decision {
                hop: 0,
                action,
                probability: 0.2,
                features: features(0.5),
                allowed: [true; 5],
                queries: Vec::new(),
                new_passages: 0,
                faults: Vec::new(),
                writer_fault: None,
                confidence: 0.0,
                evidence_features: [0.0; CONFIDENCE_FEATURES],
                reader: [0.0; rlrag_router::features::READER_FEATURES],
                cost: Cost::default(),
            }],
            stop: StopReason::Answer,
            suppressed_queries: 0,
            dropped_seen: 0,
            collapsed: 0,
        },
        reward,
    }
}

#[test]
fn advantages_are_relative_to_the_group_mean() {
    let groups = vec![
        vec![
            rollout(Action::Local, false, 1.0),
            rollout(Action::Answer, false, 0.0),
        ],
        vec![rollout(Action::Local, false, 0.5)],
    ];
    let a = group_advantages(&groups);
    assert_eq!(a[0], [Some(0.5), Some(-0.5)]);
    assert_eq!(a[1], [None], "a lone rollout uses the learned baseline");
}

#[test]
fn rewarded_choices_become_more_probable() {
    let config = RouterTrainConfig {
        learning_rate: 0.01,
        ..RouterTrainConfig::default()
    };
    let mut trainer = RouterTrainer::new(config, &Device::flex().autodiff()).expect("trainer");
    let before = trainer
        .policy()
        .scores(&features(0.5), &[true; 5])
        .expect("scores");
    let group = vec![
        rollout(Action::Network, true, 1.0),
        rollout(Action::Local, false, 0.0),
        rollout(Action::Answer, false, -0.1),
    ];
    for _ in 0..30 {
        let log = trainer
            .update(std::slice::from_ref(&group))
            .expect("update");
        assert_eq!(log.decisions, 3);
        assert!(log.entropy.is_finite() && log.value_loss.is_finite());
    }
    let after = trainer
        .policy()
        .scores(&features(0.5), &[true; 5])
        .expect("scores");
    assert!(
        after.actions[2] > before.actions[2] + 0.2,
        "network: {before:?} → {after:?}"
    );
    assert!(
        after.actions[0] < before.actions[0],
        "answer: {before:?} → {after:?}"
    );
    let sense = trainer
        .policy()
        .scores(&features(0.0), &[true; 5])
        .expect("scores");
    assert!(sense.sense > 0.6, "sensing came with the reward: {sense:?}");
    // Masked actions get no probability.
    let masked = trainer
        .policy()
        .scores(&features(0.5), &[true, true, false, false, true])
        .expect("scores");
    assert_eq!(masked.actions[2], 0.0);
    assert!((masked.actions.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    assert!(
        RouterTrainer::new(RouterTrainConfig::default(), &Device::flex()).is_err(),
        "needs autodiff"
    );
}

/// Data-parallel updates on CPU workers make the update one device makes on
/// the same rollouts (issue 24): the same losses, update after update, and
/// the same policy, to float summation order; with more workers than
/// decisions, some shards are empty.
#[test]
fn several_devices_make_the_update_of_one_on_the_same_rollouts() {
    let device = Device::flex().autodiff();
    let groups = vec![
        vec![
            rollout(Action::Network, true, 1.0),
            rollout(Action::Local, false, 0.0),
            rollout(Action::Answer, false, -0.1),
        ],
        vec![rollout(Action::Local, true, 0.4)],
    ];
    let config = RouterTrainConfig {
        learning_rate: 0.01,
        ..RouterTrainConfig::default()
    };
    let mut one = RouterTrainer::new(config.clone(), &device).expect("trainer");
    for workers in [2, 6] {
        let mut many = RouterTrainer::new(config.clone(), &device).expect("trainer");
        many.set_devices(vec![device.clone(); workers])
            .expect("workers");
        let mut fresh = RouterTrainer::new(config.clone(), &device).expect("trainer");
        for update in 0..5 {
            let (a, b) = (
                fresh.update(&groups).expect("update"),
                many.update(&groups).expect("update"),
            );
            assert_eq!(a.decisions, b.decisions);
            for (x, y) in [
                (a.policy_loss, b.policy_loss),
                (a.value_loss, b.value_loss),
                (a.entropy, b.entropy),
            ] {
                assert!(
                    (x - y).abs() < 1e-5 * x.abs().max(1.0),
                    "{workers} workers, update {update}: {a:?} vs {b:?}"
                );
            }
        }
        let (pa, pb) = (
            fresh
                .policy()
                .scores(&features(0.5), &[true; 5])
                .expect("scores"),
            many.policy()
                .scores(&features(0.5), &[true; 5])
                .expect("scores"),
        );
        for (x, y) in pa.actions.iter().zip(&pb.actions) {
            assert!((x - y).abs() < 1e-5, "{pa:?} vs {pb:?}");
        }
        assert!((pa.sense - pb.sense).abs() < 1e-5, "{pa:?} vs {pb:?}");
    }
    // The first device must be the policy's, and every device autodiff.
    assert!(one.set_devices(Vec::new()).is_err());
    assert!(one.set_devices(vec![Device::flex()]).is_err());
    assert!(
        one.set_devices(vec![device.clone(), Device::flex()])
            .is_err()
    );
    one.set_devices(vec![device])
        .expect("one device is the plain path");
}
