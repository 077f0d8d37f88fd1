//! K-fold cross-validation of the learned router: every question is scored
//! by a policy that never trained on it. Fold I of K trains on the other
//! folds' questions (`train-router --fold I/K`), is evaluated on its own
//! (`eval-router --fold I/K`, and again at each network bar asked for), and
//! the folds' reports are pooled, weighting each by its questions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rlrag_eval::datasets::Fold;
use rlrag_eval::models::CONFIG_FILE;
use rlrag_eval::progress::{Bar, Progress, Silent};
use rlrag_eval::router_eval::{RouterEvalConfig, RouterEvalReport, evaluate};
use serde::Serialize;
use serde_json::Value;

use crate::TrainError;
use crate::router_run::{self, RouterRunConfig};

/// The pooled metrics, in the order the table shows the first four.
pub const POOLED_METRICS: [&str; 6] = [
    "containment@10",
    "all_gold@10",
    "network_share",
    "rounds",
    "suppressed_per_question",
    "reward",
];

/// A cross-validation run.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct CvConfig {
    /// The training run of every fold (`--out` is the cross-validation
    /// directory: fold I of K trains into `fold-IofK/` under it).
    #[cfg_attr(feature = "clap", command(flatten))]
    pub run: RouterRunConfig,
    /// Folds (at least 2).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 5))]
    pub folds: u64,
    /// Folds trained at once.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub jobs: usize,
    /// Network bars to score every fold's policy at as well (e.g.
    /// 0,0.6,0.8): the held-out frontier of containment against calls.
    #[cfg_attr(feature = "clap", arg(long, value_delimiter = ',', value_parser = parse_bar))]
    pub bars: Vec<f32>,
    /// Keep fold policies already in --out (trained by an earlier run with
    /// the same options) instead of training them again.
    #[cfg_attr(feature = "clap", arg(long))]
    pub reuse: bool,
}

/// A network bar: a number in [0, 1].
pub fn parse_bar(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(b) if (0.0..=1.0).contains(&b) => Ok(b),
        _ => Err(format!("{s:?} is not a network bar in [0, 1]")),
    }
}

/// The learned policy of one fold on its held-out part.
#[derive(Debug, Clone, Serialize)]
pub struct FoldSummary {
    /// The fold.
    pub fold: u64,
    /// Its held-out questions.
    pub questions: usize,
    /// Containment@10 there.
    #[serde(rename = "containment@10")]
    pub containment: Option<f64>,
    /// Network calls per question there.
    pub network_share: Option<f64>,
    /// Rounds per question there.
    pub rounds: Option<f64>,
}

/// The learned policies pooled at one network bar.
#[derive(Debug, Clone, Serialize)]
pub struct AtBar {
    /// The bar.
    pub network_bar: f32,
    /// The pooled metrics of `learned`.
    #[serde(flatten)]
    pub metrics: BTreeMap<String, f64>,
}

/// The pooled result (`cv.json`).
#[derive(Debug, Clone, Serialize)]
pub struct CvReport {
    /// The dataset's name.
    pub dataset: String,
    /// Folds.
    pub folds: u64,
    /// Questions scored, each once.
    pub questions: usize,
    /// Every policy's metrics pooled over the folds.
    pub policies: PooledPolicies,
    /// The learned policy per fold.
    pub learned_per_fold: Vec<FoldSummary>,
    /// The learned policies at each bar asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub learned_at_bars: Vec<AtBar>,
}

/// Metrics by name, per policy by name.
pub type PooledPolicies = BTreeMap<String, BTreeMap<String, f64>>;

/// Pool reports, weighting each by its questions: a metric is pooled for a
/// policy when every report has it. Returns the questions and the pool.
pub fn pool(reports: &[RouterEvalReport]) -> Result<(usize, PooledPolicies), TrainError> {
    let total: usize = reports.iter().map(|r| r.questions).sum();
    let mut pooled = BTreeMap::new();
    let Some(first) = reports.first() else {
        return Ok((0, pooled));
    };
    for name in first.policies.keys() {
        let values: Vec<(Value, usize)> = reports
            .iter()
            .map(|r| {
                let v = r
                    .policies
                    .get(name)
                    .map(serde_json::to_value)
                    .transpose()?
                    .unwrap_or(Value::Null);
                Ok((v, r.questions))
            })
            .collect::<Result<_, serde_json::Error>>()?;
        let mut row = BTreeMap::new();
        for m in POOLED_METRICS {
            let vals: Option<Vec<(f64, usize)>> = values
                .iter()
                .map(|(v, n)| v.get(m).and_then(Value::as_f64).map(|x| (x, *n)))
                .collect();
            if let Some(vals) = vals {
                let sum = vals.iter().fold(0.0, |acc, (x, n)| acc + x * *n as f64);
                row.insert(m.to_owned(), sum / total as f64);
            }
        }
        pooled.insert(name.clone(), row);
    }
    Ok((total, pooled))
}

/// A fold's progress: its notes go to its log file, its bars nowhere.
struct FoldLog {
    file: Mutex<std::fs::File>,
}

impl Progress for FoldLog {
    fn bar(&self, len: u64, label: &'static str) -> Box<dyn Bar> {
        Silent.bar(len, label)
    }

    fn note(&self, message: &str) {
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "{message}");
        }
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), TrainError> {
    let bytes = serde_json::to_vec_pretty(value)?;
    rlrag_eval::models::write_atomic(path, &[bytes, b"\n".to_vec()].concat())?;
    Ok(())
}

/// One fold: trained (unless reused), evaluated, and evaluated at each bar.
fn one_fold(
    config: &CvConfig,
    index: u64,
) -> Result<(RouterEvalReport, Vec<RouterEvalReport>), TrainError> {
    let out = &config.run.out;
    let tag = format!("{index}of{}", config.folds);
    let fold = Fold {
        index,
        count: config.folds,
    };
    let weights = out.join(format!("fold-{tag}"));
    let log_path = out.join(format!("fold-{tag}.log"));
    let log = FoldLog {
        file: Mutex::new(
            std::fs::File::create(&log_path).map_err(|source| TrainError::Io {
                path: log_path.clone(),
                source,
            })?,
        ),
    };
    let mut run = config.run.clone();
    run.setup.fold = Some(fold);
    // A reader per fold: `{fold}` in the path is the fold's index (one
    // trained by `train-reranker --fold I/K`, never on this fold's questions).
    run.setup.reranker = run
        .setup
        .reranker
        .map(|p| PathBuf::from(p.to_string_lossy().replace("{fold}", &index.to_string())));
    run.out = weights.clone();
    if !(config.reuse && weights.join(CONFIG_FILE).is_file()) {
        router_run::run(&run, &log)?;
    }
    let mut eval = RouterEvalConfig::baselines(run.setup);
    eval.weights = Some(weights);
    let report = evaluate(&eval, &log)?;
    write_json(&out.join(format!("fold-{tag}.json")), &report)?;
    let mut at_bars = Vec::with_capacity(config.bars.len());
    for &bar in &config.bars {
        eval.network_bar = Some(bar);
        let r = evaluate(&eval, &log)?;
        write_json(&out.join(format!("fold-{tag}.bar-{bar}.json")), &r)?;
        at_bars.push(r);
    }
    Ok((report, at_bars))
}

/// Run every fold (`jobs` at once), pool them, write `cv.json` under `--out`.
pub fn run(config: &CvConfig, progress: &dyn Progress) -> Result<CvReport, TrainError> {
    if config.folds < 2 {
        return Err(TrainError::Config {
            name: "folds",
            reason: "--folds must be at least 2".into(),
        });
    }
    if config.run.setup.fold.is_some() {
        return Err(TrainError::Config {
            name: "fold",
            reason: "--fold is set per fold by cv-router".into(),
        });
    }
    let out = &config.run.out;
    std::fs::create_dir_all(out).map_err(|source| TrainError::Io {
        path: out.clone(),
        source,
    })?;
    let jobs = config.jobs.clamp(1, config.folds as usize);
    // Each worker takes the next fold until none is left; a fold's notes go
    // to its own log file.
    let next = AtomicU64::new(0);
    let results: Mutex<Vec<Option<Result<_, TrainError>>>> =
        Mutex::new((0..config.folds).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= config.folds {
                        return;
                    }
                    let result = one_fold(config, index);
                    if let Ok(mut r) = results.lock() {
                        r[index as usize] = Some(result);
                    }
                }
            });
        }
    });
    progress.note(&format!("{} folds done", config.folds));
    let mut reports = Vec::new();
    let mut at_bars: Vec<Vec<RouterEvalReport>> = vec![Vec::new(); config.bars.len()];
    let results = results.into_inner().unwrap_or_default();
    for (i, r) in results.into_iter().enumerate() {
        let (report, bars) = r.ok_or_else(|| TrainError::Config {
            name: "jobs",
            reason: format!("fold {i} did not run"),
        })??;
        reports.push(report);
        for (j, b) in bars.into_iter().enumerate() {
            at_bars[j].push(b);
        }
    }
    let (questions, policies) = pool(&reports)?;
    let mut learned_at_bars = Vec::new();
    for (bar, reports) in config.bars.iter().zip(&at_bars) {
        let (_, pooled) = pool(reports)?;
        learned_at_bars.push(AtBar {
            network_bar: *bar,
            metrics: pooled.get("learned").cloned().unwrap_or_default(),
        });
    }
    let learned_per_fold = reports
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let l = r.policies.get("learned");
            FoldSummary {
                fold: i as u64,
                questions: r.questions,
                containment: l.and_then(|p| p.containment),
                network_share: l.map(|p| p.network_share),
                rounds: l.map(|p| p.rounds),
            }
        })
        .collect();
    let report = CvReport {
        dataset: reports
            .first()
            .map(|r| r.dataset.clone())
            .unwrap_or_default(),
        folds: config.folds,
        questions,
        policies,
        learned_per_fold,
        learned_at_bars,
    };
    write_json(&out.join("cv.json"), &report)?;
    Ok(report)
}

impl CvReport {
    /// The pooled table, the learned policy per fold and at each bar.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {}-fold cross-validation, {} questions, each scored by a policy that never trained on it",
            self.dataset, self.folds, self.questions
        );
        let _ = writeln!(out, "| policy | {} |", POOLED_METRICS[..4].join(" | "));
        let _ = writeln!(out, "{}|", "|---".repeat(5));
        for (name, row) in &self.policies {
            let cells: Vec<String> = POOLED_METRICS[..4]
                .iter()
                .map(|m| row.get(*m).map_or("–".to_owned(), |v| format!("{v:.3}")))
                .collect();
            let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
        }
        let f = |v: Option<f64>, d: usize| v.map_or("–".to_owned(), |x| format!("{x:.d$}"));
        let per_fold: Vec<String> = self
            .learned_per_fold
            .iter()
            .map(|l| {
                format!(
                    "{} ({}: {} @ {})",
                    l.fold,
                    l.questions,
                    f(l.containment, 3),
                    f(l.network_share, 2)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "learned per fold (questions: containment@10 at network calls/q): {}",
            per_fold.join(", ")
        );
        if !self.learned_at_bars.is_empty() {
            let bars: Vec<String> = self
                .learned_at_bars
                .iter()
                .map(|b| {
                    format!(
                        "{}: {} @ {}",
                        b.network_bar,
                        f(b.metrics.get("containment@10").copied(), 3),
                        f(b.metrics.get("network_share").copied(), 3)
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "learned at each network bar (held out): {}",
                bars.join(", ")
            );
        }
        out
    }

    /// Where `cv.json` was written for a run with `out`.
    pub fn path(out: &Path) -> PathBuf {
        out.join("cv.json")
    }
}
