//! One question, hop by hop: optional background sensing, then at each hop
//! the policy picks an action; the hop's sub-queries (at most three, through
//! the query memory) go to the chosen sources concurrently; the filter drops
//! passages already gathered; the confidence may end the question early.
//! Every decision, with its probability, features, cost, latency and any
//! source fault, goes into the trace.

use std::collections::HashMap;

use futures_lite::future::zip;
use rlrag_retriever::Analyzer;
use rlrag_retriever::engine::SearchMode;
use rlrag_reward::cost::Cost;
use serde::{Deserialize, Serialize};

use crate::error::{RouterError, invalid};
use crate::features::{READER_FEATURES, State};
use crate::memory::{
    Admission, Confidence, EvidenceFilter, Filtered, QueryMemory, content_terms, evidence_features,
};
use crate::queries::{align, bridge_queries, is_polar, question_entities, split_compound};
use crate::source::{Hit, LocalSource, Source};
pub use crate::trace::{
    Decision, FaultRecord, Outcome, QueryRecord, SensingRecord, StopReason, Trace,
};
use crate::writer::{MAX_SUB_QUERY_BYTES, QueryWriter};
use crate::{Action, MAX_SUB_QUERIES, SourceKind};

/// Longest question accepted, in bytes.
pub const MAX_QUESTION_BYTES: usize = 4096;

/// Settings of the per-question pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Hits per sub-query and the evidence depth reported.
    pub k: usize,
    /// Most retrieval hops per question.
    pub max_hops: u32,
    /// Stop once the confidence reaches this (1.0 or more: never).
    pub confidence_stop: f32,
    /// Query memory: Jaccard similarity at which a query is a repeat.
    pub memory_threshold: f32,
    /// Filter: shingle Jaccard at which two passages are near-duplicates.
    pub near_duplicate: f32,
    /// Background sensing depth (BM25 over the local index).
    pub sensing_k: usize,
    /// Most titles and salient terms sensing adds to the question.
    pub sensing_titles: usize,
    /// See `sensing_titles`.
    pub sensing_terms: usize,
    /// Weight of a local list in the reciprocal-rank fusion, a network
    /// list's being 1: the network holds the whole corpus and ranks the
    /// local passages too, so a local list mostly repeats it with fewer
    /// candidates.
    pub local_weight: f32,
    /// Weight of the background-sensing list in that fusion; 0 keeps the
    /// sensing passages out of the evidence (they then only align the
    /// query and inform the first decision), the default: on HotpotQA-100
    /// 0.5 lowered the cross-validated containment (results/router.md). A saved
    /// configuration without it predates the option and reads as 0.
    #[serde(default)]
    pub sensing_weight: f32,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            k: 10,
            max_hops: 3,
            confidence_stop: 0.9,
            memory_threshold: 0.9,
            near_duplicate: 0.8,
            sensing_k: 3,
            sensing_titles: 2,
            sensing_terms: 3,
            local_weight: 0.5,
            sensing_weight: 0.0,
        }
    }
}

impl PipelineConfig {
    /// Check ranges.
    pub fn validate(&self) -> Result<(), RouterError> {
        if self.k == 0 || self.k > 100 {
            return Err(invalid("k", format!("{} is not in 1..=100", self.k)));
        }
        if self.max_hops == 0 || self.max_hops > 8 {
            return Err(invalid(
                "max_hops",
                format!("{} is not in 1..=8", self.max_hops),
            ));
        }
        for (field, v) in [
            ("memory_threshold", self.memory_threshold),
            ("near_duplicate", self.near_duplicate),
            ("local_weight", self.local_weight),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(invalid(field, format!("{v} is not in (0, 1]")));
            }
        }
        if !(0.0..=1.0).contains(&self.sensing_weight) {
            return Err(invalid(
                "sensing_weight",
                format!("{} is not in [0, 1]", self.sensing_weight),
            ));
        }
        if !self.confidence_stop.is_finite() || self.confidence_stop < 0.0 {
            return Err(invalid("confidence_stop", "must be finite and >= 0"));
        }
        if self.sensing_k == 0 || self.sensing_k > 20 {
            return Err(invalid(
                "sensing_k",
                format!("{} is not in 1..=20", self.sensing_k),
            ));
        }
        Ok(())
    }
}

/// Who decides: a fixed schedule or the learned policy (see [`crate::policy`]).
pub trait Decider {
    /// Whether to run background sensing before the first hop, and the
    /// probability of that choice.
    fn sense(&mut self, features: &[f32]) -> Result<(bool, f32), RouterError>;
    /// The action at `hop` (only `allowed` ones), and its probability.
    fn act(
        &mut self,
        hop: u32,
        features: &[f32],
        allowed: &[bool; 5],
    ) -> Result<(Action, f32), RouterError>;
}

/// A clock in milliseconds (`Instant` natively, `performance.now()` in browsers).
pub trait Clock {
    /// Milliseconds since some fixed start.
    fn now_ms(&self) -> f64;
}

/// The sources and settings questions run against.
pub struct Router<'a> {
    local: &'a LocalSource<'a>,
    network: Option<&'a dyn Source>,
    writer: Option<&'a dyn QueryWriter>,
    config: PipelineConfig,
    confidence: Confidence,
    analyzer: Analyzer,
}

/// The gathered passages of one question, fused by reciprocal rank.
struct Evidence {
    hits: Vec<Hit>,
    score: Vec<f32>,
    index: HashMap<String, usize>,
    filter: EvidenceFilter,
    lists: Vec<Vec<Hit>>,
}

/// Reciprocal-rank fusion constant (Cormack et al.).
const RRF_K: f32 = 60.0;

/// Passages of the evidence (best first) the reader reads at each hop.
pub const READ_DEPTH: usize = 5;

impl Evidence {
    fn new(near_duplicate: f32) -> Self {
        Self {
            hits: Vec::new(),
            score: Vec::new(),
            index: HashMap::new(),
            filter: EvidenceFilter::new(near_duplicate),
            lists: Vec::new(),
        }
    }

    /// Add one ranked list with its fusion weight; returns how many
    /// passages were new.
    fn add(&mut self, list: Vec<Hit>, weight: f32) -> usize {
        let mut new = 0;
        for (rank, h) in list.iter().enumerate() {
            let rrf = weight / (RRF_K + rank as f32 + 1.0);
            let target = match self.filter.admit(h) {
                Filtered::New => {
                    self.index.insert(h.id.clone(), self.hits.len());
                    self.hits.push(h.clone());
                    self.score.push(0.0);
                    new += 1;
                    Some(self.hits.len() - 1)
                }
                Filtered::Seen => self.index.get(&h.id).copied(),
                Filtered::NearDuplicate(of) => {
                    let at = self.index.get(&of).copied();
                    if let Some(i) = at {
                        self.index.insert(h.id.clone(), i);
                    }
                    at
                }
            };
            if let Some(i) = target {
                self.score[i] += rrf;
            }
        }
        self.lists.push(list);
        new
    }

    fn ranked(&self) -> Vec<&Hit> {
        self.ranked_scored().into_iter().map(|(h, _)| h).collect()
    }

    /// The passages best first, each with its fused score.
    fn ranked_scored(&self) -> Vec<(&Hit, f32)> {
        let mut order: Vec<usize> = (0..self.hits.len()).collect();
        order.sort_by(|&a, &b| self.score[b].total_cmp(&self.score[a]).then(a.cmp(&b)));
        order
            .into_iter()
            .map(|i| (&self.hits[i], self.score[i]))
            .collect()
    }
}

impl<'a> Router<'a> {
    /// A router over `local` and an optional `network` source.
    pub fn new(
        local: &'a LocalSource<'a>,
        network: Option<&'a dyn Source>,
        config: PipelineConfig,
        confidence: Confidence,
    ) -> Result<Self, RouterError> {
        config.validate()?;
        if let Some(n) = network
            && n.kind() != SourceKind::Network
        {
            return Err(invalid(
                "network",
                "the network source is not of kind network",
            ));
        }
        Ok(Self {
            local,
            network,
            writer: None,
            config,
            confidence,
            analyzer: Analyzer::default(),
        })
    }

    /// Let `writer` (an LLM) propose the sub-queries of `decompose` hops.
    #[must_use]
    pub fn with_writer(mut self, writer: &'a dyn QueryWriter) -> Self {
        self.writer = Some(writer);
        self
    }

    /// The settings.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// The evidence confidence in use.
    pub fn confidence(&self) -> &Confidence {
        &self.confidence
    }

    /// The reader's features of `ranked` (best first) for `question`
    /// ([`State::reader`]): all 0 when the local engine has no reranker or
    /// there is nothing to read.
    async fn read(
        &self,
        question: &str,
        ranked: &[&Hit],
    ) -> Result<[f32; READER_FEATURES], RouterError> {
        let Some(reader) = self.local.engine().reranker() else {
            return Ok([0.0; READER_FEATURES]);
        };
        let texts: Vec<String> = ranked
            .iter()
            .take(READ_DEPTH)
            .map(|h| {
                if h.title.is_empty() {
                    h.text.clone()
                } else {
                    format!("{} {}", h.title, h.text)
                }
            })
            .collect();
        if texts.is_empty() {
            return Ok([1.0, 0.0, 0.0, 0.0]);
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let logits = reader.logits(question, &refs).await?;
        let mut p: Vec<f32> = logits.iter().map(|&l| reader.probability(l)).collect();
        p.sort_by(|a, b| b.total_cmp(a));
        let margin = p[0] - p.get(1).copied().unwrap_or(0.0);
        let passing = p.iter().filter(|&&x| x >= 0.5).count() as f32 / p.len() as f32;
        Ok([1.0, p[0], margin, passing])
    }

    /// Run one question.
    pub async fn run(
        &self,
        question: &str,
        decider: &mut dyn Decider,
        clock: &dyn Clock,
    ) -> Result<Outcome, RouterError> {
        let question = question.trim();
        if question.is_empty() {
            return Err(RouterError::InvalidQuestion {
                reason: "the question is empty".into(),
            });
        }
        if question.len() > MAX_QUESTION_BYTES {
            return Err(RouterError::InvalidQuestion {
                reason: format!(
                    "{} bytes, the limit is {MAX_QUESTION_BYTES}",
                    question.len()
                ),
            });
        }
        let start = clock.now_ms();
        let cfg = &self.config;
        let question_terms = content_terms(&self.analyzer, question);
        let entities = question_entities(question, &self.analyzer);
        let compound = split_compound(question);
        let mut memory = QueryMemory::new(cfg.memory_threshold);
        let mut evidence = Evidence::new(cfg.near_duplicate);
        let mut state = State {
            hop: 0,
            max_hops: cfg.max_hops,
            question_words: question.split_whitespace().count(),
            k: cfg.k,
            compound: !compound.is_empty(),
            polar: is_polar(question),
            ..State::default()
        };

        // Background sensing (RDRA): BM25 top-few over the local index.
        let sense_features = state.features().to_vec();
        let (sense, sense_p) = decider.sense(&sense_features)?;
        let mut sensing = SensingRecord {
            ran: sense,
            probability: sense_p,
            features: sense_features,
            alignment: None,
        };
        let mut background: Vec<Hit> = Vec::new();
        if sense {
            let engine = self.local.engine();
            let hits = engine
                .search_with(question, cfg.sensing_k, SearchMode::Bm25, false)
                .await?;
            background = hits
                .into_iter()
                .filter_map(|h| Hit::from_engine(engine, h))
                .collect();
            // What the local index holds for the question, before any round:
            // the first decision sees it (KunLunBaizeRAG's sensing-informed
            // routing: local when it already covers the question).
            let refs: Vec<&Hit> = background.iter().collect();
            let f = evidence_features(
                &question_terms,
                &entities,
                &self.analyzer,
                &refs,
                std::slice::from_ref(&background),
            );
            // The sensing passages are evidence already paid for: answering
            // right after sensing answers from them, and later hops fuse
            // with them.
            if cfg.sensing_weight > 0.0 {
                evidence.add(background.clone(), cfg.sensing_weight);
            }
            state.sensed = true;
            state.sensing_coverage = f[0];
            state.evidence = f;
            state.confidence = self.confidence.score(&f);
            state.reader = self.read(question, &refs).await?;
            state.local_calls += 1;
            let a = align(
                question,
                &background,
                &self.analyzer,
                cfg.sensing_titles,
                cfg.sensing_terms,
            );
            sensing.alignment = Some(a);
        }
        let main_query = sensing
            .alignment
            .as_ref()
            .map_or_else(|| question.to_owned(), |a| a.query.clone());
        state.bridges_available = !background.is_empty();

        let mut decisions = Vec::new();
        let mut stop = StopReason::MaxHops;
        for hop in 0..cfg.max_hops {
            state.hop = hop;
            let features = state.features();
            let allowed = [
                true,
                true,
                self.network.is_some(),
                self.network.is_some(),
                true,
            ];
            let (action, probability) = decider.act(hop, &features, &allowed)?;
            if !allowed[action.index()] {
                return Err(RouterError::Policy {
                    reason: format!("the policy chose `{action:?}`, which is not allowed here"),
                });
            }
            if action == Action::Answer {
                decisions.push(Decision {
                    hop,
                    action,
                    probability,
                    features: features.to_vec(),
                    allowed,
                    queries: Vec::new(),
                    new_passages: 0,
                    faults: Vec::new(),
                    writer_fault: None,
                    confidence: state.confidence,
                    evidence_features: state.evidence,
                    reader: state.reader,
                    cost: Cost::default(),
                });
                stop = StopReason::Answer;
                break;
            }
            let hop_start = clock.now_ms();
            // The hop's candidate sub-queries, best first.
            let previous: Vec<&Hit> = if evidence.hits.is_empty() {
                background.iter().collect()
            } else {
                evidence.ranked()
            };
            let bridges = || bridge_queries(question, &previous, &self.analyzer, MAX_SUB_QUERIES);
            let mut candidates: Vec<String> = Vec::new();
            let mut writer_fault = None;
            match (action, hop) {
                (Action::Decompose, _) => {
                    if let Some(w) = self.writer {
                        let context: Vec<Hit> =
                            previous.iter().take(5).map(|&h| h.clone()).collect();
                        match w.write(question, &context).await {
                            Ok(written) => candidates.extend(
                                written
                                    .into_iter()
                                    .map(|q| q.trim().to_owned())
                                    .filter(|q| !q.is_empty() && q.len() <= MAX_SUB_QUERY_BYTES)
                                    .take(MAX_SUB_QUERIES),
                            ),
                            Err(fault) => writer_fault = Some(fault),
                        }
                    }
                    candidates.extend(compound.iter().cloned());
                    candidates.extend(bridges());
                    candidates.push(main_query.clone());
                }
                (_, 0) if !background.is_empty() => {
                    // After sensing (RAG-R1 multi-query): the question as
                    // asked, the aligned query, then bridges from the
                    // sensing passages: one round reaches the passage the
                    // question names and the one it leads to (HotpotQA-100,
                    // sensing then one network call: containment@10 0.750
                    // with the aligned query alone, 0.780 with all three).
                    candidates.push(question.to_owned());
                    if main_query != question {
                        candidates.push(main_query.clone());
                    }
                    candidates.extend(bridges());
                    candidates.extend(compound.iter().cloned());
                }
                (_, 0) => {
                    candidates.push(main_query.clone());
                    candidates.extend(compound.iter().cloned());
                }
                _ => {
                    // The question again (the memory suppresses it when it
                    // was issued already), then bridges from the evidence.
                    candidates.push(main_query.clone());
                    candidates.extend(bridges());
                }
            }
            let mut records = Vec::new();
            let mut queries = Vec::new();
            for c in candidates {
                if queries.len() == MAX_SUB_QUERIES {
                    break;
                }
                let admission = memory.admit(&c, action.sources());
                if admission == Admission::Admitted {
                    queries.push(c.clone());
                }
                records.push(QueryRecord { text: c, admission });
            }
            let mut cost = Cost {
                rounds: 1,
                ..Cost::default()
            };
            let mut faults = Vec::new();
            // Each ranked list with its fusion weight.
            let mut lists: Vec<(Vec<Hit>, f32)> = Vec::new();
            let local_weight = cfg.local_weight;
            let from_local = |l: Vec<Vec<Hit>>| l.into_iter().map(move |h| (h, local_weight));
            if !queries.is_empty() {
                let use_local = action.sources().contains(&SourceKind::Local);
                let network = self
                    .network
                    .filter(|_| action.sources().contains(&SourceKind::Network));
                let k = cfg.k;
                let local_fut = async {
                    if use_local {
                        Some(self.local.search(&queries, k).await)
                    } else {
                        None
                    }
                };
                let network_fut = async {
                    match network {
                        Some(n) => Some(n.search(&queries, k).await),
                        None => None,
                    }
                };
                let (local_result, network_result) = zip(local_fut, network_fut).await;
                if use_local {
                    cost.local_calls += 1;
                }
                match local_result {
                    Some(Ok(l)) => lists.extend(from_local(l)),
                    Some(Err(fault)) => faults.push(FaultRecord {
                        source: SourceKind::Local,
                        fault,
                        fell_back_to_local: false,
                    }),
                    None => {}
                }
                if let Some(r) = network_result {
                    cost.network_calls += 1;
                    match r {
                        Ok(l) => lists.extend(l.into_iter().map(|h| (h, 1.0))),
                        Err(fault) => {
                            // The question goes on from the local index.
                            let fallback = !use_local;
                            if fallback {
                                cost.local_calls += 1;
                                if let Ok(l) = self.local.search(&queries, k).await {
                                    lists.extend(from_local(l));
                                }
                            }
                            faults.push(FaultRecord {
                                source: SourceKind::Network,
                                fault,
                                fell_back_to_local: fallback,
                            });
                        }
                    }
                }
            }
            let mut new_passages = 0;
            for (l, weight) in lists {
                new_passages += evidence.add(l, weight);
            }
            let ranked = evidence.ranked();
            let ef = evidence_features(
                &question_terms,
                &entities,
                &self.analyzer,
                &ranked,
                &evidence.lists,
            );
            state.evidence = ef;
            state.reader = self.read(question, &ranked).await?;
            state.confidence = if evidence.hits.is_empty() {
                0.0
            } else {
                self.confidence.score(&ef)
            };
            state.new_passages = new_passages;
            state.local_calls += cost.local_calls;
            state.network_calls += cost.network_calls;
            state.suppressed = memory.suppressed();
            state.network_fault = faults.iter().any(|f| f.source == SourceKind::Network);
            state.bridges_available = !ranked.is_empty();
            cost.latency_ms = (clock.now_ms() - hop_start).max(0.0);
            decisions.push(Decision {
                hop,
                action,
                probability,
                features: features.to_vec(),
                allowed,
                queries: records,
                new_passages,
                faults,
                writer_fault,
                confidence: state.confidence,
                evidence_features: ef,
                reader: state.reader,
                cost,
            });
            if state.confidence >= cfg.confidence_stop {
                stop = StopReason::Confident;
                break;
            }
        }
        let trace = Trace {
            question: question.to_owned(),
            sensing,
            decisions,
            stop,
            suppressed_queries: memory.suppressed(),
            dropped_seen: evidence.filter.dropped_seen(),
            collapsed: evidence.filter.collapsed(),
        };
        let mut cost = trace.total_cost();
        cost.latency_ms = (clock.now_ms() - start).max(0.0);
        let ranked: Vec<Hit> = evidence
            .ranked_scored()
            .into_iter()
            .take(cfg.k)
            .map(|(h, score)| Hit { score, ..h.clone() })
            .collect();
        Ok(Outcome {
            evidence: ranked,
            trace,
            cost,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::PipelineConfig;

    #[test]
    fn a_saved_config_without_sensing_weight_keeps_sensing_out_of_the_evidence() {
        let old = r#"{"k": 10, "max_hops": 3, "confidence_stop": 0.9, "memory_threshold": 0.9,
            "near_duplicate": 0.8, "sensing_k": 3, "sensing_titles": 2, "sensing_terms": 3,
            "local_weight": 0.5}"#;
        let read: PipelineConfig = serde_json::from_str(old).expect("reads");
        assert_eq!(read.sensing_weight, 0.0);
        assert!(read.validate().is_ok());
        let current = PipelineConfig {
            sensing_weight: 0.5,
            ..PipelineConfig::default()
        };
        let round: PipelineConfig =
            serde_json::from_str(&serde_json::to_string(&current).expect("writes")).expect("reads");
        assert_eq!(round, current);
    }
}
