//! How far a cheap local-first gate can go, read off `eval-router
//! --traces`: for each evidence feature after the single-shot local round
//! (and the fitted confidence), the best threshold that sends at most a
//! given share of questions to the network ("network if below, else
//! local"), against the oracle gate that sends exactly the questions only
//! the network answers.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use rlrag_reward::ranking::roc_auc;
use rlrag_router::features::READER_FEATURES;
use rlrag_router::memory::{CONFIDENCE_FEATURE_NAMES, CONFIDENCE_FEATURES};
use serde::Deserialize;

use crate::EvalError;
use crate::error::io;

/// The part of a trace line the frontier reads.
#[derive(Deserialize)]
struct Line {
    policy: String,
    question_id: String,
    score: LineScore,
    trace: LineTrace,
}

#[derive(Deserialize)]
struct LineScore {
    containment: Option<bool>,
}

#[derive(Deserialize)]
struct LineTrace {
    decisions: Vec<LineDecision>,
}

#[derive(Deserialize)]
struct LineDecision {
    evidence_features: [f64; CONFIDENCE_FEATURES],
    confidence: f64,
    /// Absent in traces from before the reader (or without one): zeros.
    #[serde(default)]
    reader: [f64; READER_FEATURES],
}

/// The reader's signals, after the evidence features and the confidence
/// (the first reader entry, "it read", is left out: constant in a file).
const READER_SIGNALS: [&str; 3] = ["reader_top", "reader_margin", "reader_pass"];
/// Every signal: the evidence features, the confidence, the reader's.
const SIGNALS: usize = CONFIDENCE_FEATURES + 1 + READER_SIGNALS.len();

/// A question as the gate sees it: the local round's signals and which
/// policy contained an answer.
struct Row {
    signals: [f64; SIGNALS],
    local: bool,
    network: bool,
}

/// The best threshold on one signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// The signal: an evidence feature's name or `confidence`.
    pub signal: &'static str,
    /// Containment of "network below the threshold, else local".
    pub containment: f64,
    /// Network calls per question.
    pub share: f64,
    /// The threshold (infinite: every question goes to the network).
    pub threshold: f64,
    /// How well the signal alone tells the questions the local round
    /// answers (ROC AUC against local containment; `None` with one class).
    pub auc: Option<f64>,
}

/// The frontier of a traces file.
#[derive(Debug, Clone, PartialEq)]
pub struct Frontier {
    /// Questions with both policies' containment and a local decision.
    pub questions: usize,
    /// Containment of the `local` policy.
    pub local: f64,
    /// Containment of the `network` policy.
    pub network: f64,
    /// Containment of either.
    pub either: f64,
    /// Share of questions only the network answers (the oracle's calls).
    pub only_network: f64,
    /// The share of network calls the gates may spend.
    pub max_share: f64,
    /// The best gate per signal (signals with no admissible threshold left out).
    pub gates: Vec<Gate>,
}

/// The frontier of the traces in `path` (JSONL from `eval-router --traces`
/// with the `local` and `network` policies), at most `max_share` network
/// calls per question.
pub fn gate_frontier(path: &Path, max_share: f64) -> Result<Frontier, EvalError> {
    let text = std::fs::read_to_string(path).map_err(io("read", path))?;
    let bad = |reason: String| EvalError::Format {
        path: path.to_path_buf(),
        reason,
    };
    if !(0.0..=1.0).contains(&max_share) {
        return Err(crate::error::setting(
            "--max-share",
            format!("--max-share is a share of questions in [0, 1], got {max_share}"),
        ));
    }
    // Per policy: question ids in first-seen order, the last line of each.
    let mut by: HashMap<String, (Vec<String>, HashMap<String, Line>)> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(raw)
            .map_err(|e| bad(format!("line {}: not a trace line ({e})", i + 1)))?;
        let (order, lines) = by.entry(line.policy.clone()).or_default();
        if !lines.contains_key(&line.question_id) {
            order.push(line.question_id.clone());
        }
        lines.insert(line.question_id.clone(), line);
    }
    let (Some((order, local)), Some((_, network))) = (by.get("local"), by.get("network")) else {
        return Err(bad("the traces need the local and network policies".into()));
    };
    let mut rows = Vec::new();
    for qid in order {
        let Some(l) = local.get(qid) else { continue };
        let (Some(lc), Some(nc), Some(d)) = (
            l.score.containment,
            network.get(qid).and_then(|n| n.score.containment),
            l.trace.decisions.first(),
        ) else {
            continue;
        };
        let mut signals = [0.0; SIGNALS];
        signals[..CONFIDENCE_FEATURES].copy_from_slice(&d.evidence_features);
        signals[CONFIDENCE_FEATURES] = d.confidence;
        signals[CONFIDENCE_FEATURES + 1..].copy_from_slice(&d.reader[1..]);
        rows.push(Row {
            signals,
            local: lc,
            network: nc,
        });
    }
    if rows.is_empty() {
        return Err(bad(
            "no question has a local decision and both policies' containment".into(),
        ));
    }
    let n = rows.len() as f64;
    let share_of = |f: &dyn Fn(&Row) -> bool| rows.iter().filter(|r| f(r)).count() as f64 / n;
    let names = CONFIDENCE_FEATURE_NAMES
        .iter()
        .copied()
        .chain(["confidence"])
        .chain(READER_SIGNALS);
    let read = rows.iter().any(|r| {
        r.signals[CONFIDENCE_FEATURES + 1..]
            .iter()
            .any(|&x| x != 0.0)
    });
    let mut gates = Vec::new();
    for (i, signal) in names.enumerate() {
        if i > CONFIDENCE_FEATURES && !read {
            continue;
        }
        let scored: Vec<(f64, bool)> = rows.iter().map(|r| (r.signals[i], r.local)).collect();
        let auc = roc_auc(&scored);
        let mut thresholds: Vec<f64> = rows.iter().map(|r| r.signals[i]).collect();
        thresholds.push(f64::INFINITY);
        thresholds.sort_by(f64::total_cmp);
        thresholds.dedup();
        let mut best: Option<Gate> = None;
        for t in thresholds {
            let share = share_of(&|r| r.signals[i] < t);
            if share > max_share {
                continue;
            }
            let containment = share_of(&|r| if r.signals[i] < t { r.network } else { r.local });
            if best.as_ref().is_none_or(|b| containment > b.containment) {
                best = Some(Gate {
                    signal,
                    containment,
                    share,
                    threshold: t,
                    auc,
                });
            }
        }
        gates.extend(best);
    }
    Ok(Frontier {
        questions: rows.len(),
        local: share_of(&|r| r.local),
        network: share_of(&|r| r.network),
        either: share_of(&|r| r.local || r.network),
        only_network: share_of(&|r| r.network && !r.local),
        max_share,
        gates,
    })
}

impl Frontier {
    /// The report, as `scripts/router-frontier.py` printed it.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} questions: local {:.3}, network {:.3}, either {:.3}",
            self.questions, self.local, self.network, self.either
        );
        let _ = writeln!(
            out,
            "oracle gate: {:.2} network calls/q for containment {:.3}",
            self.only_network,
            self.local + self.only_network
        );
        let _ = writeln!(
            out,
            "best gate per feature with at most {:.2} network calls/q:",
            self.max_share
        );
        for g in &self.gates {
            let _ = writeln!(
                out,
                "  {:>14}: containment {:.3} at {:.2} calls/q (threshold {:.3}); AUC for local {}",
                g.signal,
                g.containment,
                g.share,
                g.threshold,
                g.auc
                    .map_or_else(|| "n/a".to_owned(), |a| format!("{a:.3}"))
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(
        policy: &str,
        id: &str,
        contained: Option<bool>,
        features: [f64; 7],
        conf: f64,
    ) -> String {
        serde_json::json!({
            "policy": policy, "question_id": id, "answers": [], "prediction": null,
            "score": {"containment": contained}, "evidence_ids": [],
            "trace": {"decisions": [{"evidence_features": features, "confidence": conf}]},
        })
        .to_string()
    }

    fn write(lines: &[String]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), lines.join("\n")).expect("writes");
        f
    }

    #[test]
    fn gates_are_chosen_as_the_script_chose_them() {
        // q1: only the network answers, and its `union` is lowest; q2 both;
        // q3 only local; q4 neither; q5 has no labels (left out).
        let f = |u: f64| [0.5, u, 0.0, 0.0, 0.0, 0.0, 0.0];
        let lines = [
            line("local", "q1", Some(false), f(0.1), 0.2),
            line("local", "q2", Some(true), f(0.6), 0.9),
            line("local", "q3", Some(true), f(0.8), 0.4),
            line("local", "q4", Some(false), f(0.3), 0.1),
            line("local", "q5", None, f(0.0), 0.0),
            line("network", "q1", Some(true), f(0.0), 0.0),
            line("network", "q2", Some(true), f(0.0), 0.0),
            line("network", "q3", Some(false), f(0.0), 0.0),
            line("network", "q4", Some(false), f(0.0), 0.0),
            line("network", "q5", None, f(0.0), 0.0),
        ];
        let file = write(&lines);
        let fr = gate_frontier(file.path(), 0.5).expect("frontier");
        assert_eq!(fr.questions, 4);
        assert_eq!((fr.local, fr.network, fr.either), (0.5, 0.5, 0.75));
        assert_eq!(fr.only_network, 0.25);
        let union = fr
            .gates
            .iter()
            .find(|g| g.signal == "union")
            .expect("union gate");
        // Below 0.3 only q1 goes out: the oracle's containment.
        assert_eq!(
            (union.containment, union.share, union.threshold),
            (0.75, 0.25, 0.3)
        );
        // A constant signal's only admissible threshold sends nobody.
        let best_single = &fr.gates[0];
        assert_eq!((best_single.share, best_single.containment), (0.0, 0.5));
        let conf = fr.gates.last().expect("confidence gate");
        assert_eq!(conf.signal, "confidence");
        assert_eq!((conf.containment, conf.threshold), (0.75, 0.4));
        assert_eq!(
            fr.table().lines().next(),
            Some("4 questions: local 0.500, network 0.500, either 0.750")
        );
        assert!(
            fr.table().contains(
                "           union: containment 0.750 at 0.25 calls/q (threshold 0.300); AUC for local 1.000"
            ),
            "{}",
            fr.table()
        );
        // No reader in these traces: no reader gates.
        assert!(fr.gates.iter().all(|g| !g.signal.starts_with("reader")));
    }

    #[test]
    fn the_readers_signals_are_gates_with_their_auc() {
        let with_reader = |policy: &str, id: &str, contained: bool, top: f64| {
            let mut v: serde_json::Value =
                serde_json::from_str(&line(policy, id, Some(contained), [0.0; 7], 0.0))
                    .expect("json");
            v["trace"]["decisions"][0]["reader"] = serde_json::json!([1.0, top, top / 2.0, 0.0]);
            v.to_string()
        };
        // The reader ranks the locally answered questions first: AUC 1.
        let lines = [
            with_reader("local", "q1", false, 0.1),
            with_reader("local", "q2", true, 0.9),
            with_reader("local", "q3", true, 0.7),
            with_reader("local", "q4", false, 0.2),
            with_reader("network", "q1", true, 0.0),
            with_reader("network", "q2", true, 0.0),
            with_reader("network", "q3", false, 0.0),
            with_reader("network", "q4", true, 0.0),
        ];
        let file = write(&lines);
        let fr = gate_frontier(file.path(), 0.5).expect("frontier");
        let top = fr
            .gates
            .iter()
            .find(|g| g.signal == "reader_top")
            .expect("reader gate");
        assert_eq!(top.auc, Some(1.0));
        // Network below 0.7: q1 and q4 go out, every question is answered.
        assert_eq!((top.containment, top.share), (1.0, 0.5));
        let pass = fr
            .gates
            .iter()
            .find(|g| g.signal == "reader_pass")
            .expect("pass");
        assert_eq!(pass.auc, Some(0.5), "a constant signal separates nothing");
    }

    #[test]
    fn bad_traces_are_refused_with_the_reason() {
        let only_local = write(&[line("local", "q1", Some(true), [0.0; 7], 0.0)]);
        let err = gate_frontier(only_local.path(), 0.5).expect_err("one policy");
        assert!(err.to_string().contains("local and network"), "{err}");
        let garbage = write(&["{\"policy\": 3}".into()]);
        let err = gate_frontier(garbage.path(), 0.5).expect_err("garbage");
        assert!(err.to_string().contains("line 1"), "{err}");
        let unlabelled = write(&[
            line("local", "q1", None, [0.0; 7], 0.0),
            line("network", "q1", None, [0.0; 7], 0.0),
        ]);
        assert!(gate_frontier(unlabelled.path(), 0.5).is_err());
        assert!(gate_frontier(unlabelled.path(), 1.5).is_err());
    }
}
