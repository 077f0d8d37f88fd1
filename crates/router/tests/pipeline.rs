//! The routing pipeline end to end on the real SPLADE-tiny tokenizer/encoder
//! (`scripts/fetch-models.sh`) and a real HTTP endpoint on 127.0.0.1: every
//! mechanism changes what happens (memory, filter, confidence stop, sensing,
//! multi-query), and every network fault leaves the question answered from
//! the local index with the fault in the trace.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::future::block_on;
use rlrag_retriever::engine::SearchMode;
use rlrag_retriever::{Bm25Index, Bm25Params, Document};
use rlrag_router::error::Fault;
use rlrag_router::http::HttpSource;
use rlrag_router::memory::{Admission, Confidence};
use rlrag_router::pipeline::StopReason;
use rlrag_router::source::{Hit, SearchRequest, SearchResponse, Source};
use rlrag_router::writer::{MAX_SUB_QUERY_BYTES, QueryWriter, WriterFuture};
use rlrag_router::{
    Action, Decider, FixedPolicy, LocalSource, Outcome, PipelineConfig, Router, RouterError,
    SourceKind, SystemClock,
};

mod common;
use common::{corpus, engine, read_request};

/// How the fake endpoint answers.
#[derive(Clone, Copy)]
enum Behaviour {
    Serve,
    Slow(u64),
    Status(u16),
    Garbage,
    WrongCount,
}

/// A real HTTP server on 127.0.0.1 over `docs` (BM25), answering as told.
struct Endpoint {
    url: String,
    requests: Arc<Mutex<Vec<SearchRequest>>>,
}

fn endpoint(docs: Vec<Document>, behaviour: Behaviour) -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/search", listener.local_addr().expect("addr"));
    let mut index = Bm25Index::new(Bm25Params::default(), Default::default()).expect("bm25");
    index.add_documents(&docs).expect("index");
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some(body) = read_request(&stream) else {
                continue;
            };
            let req: SearchRequest =
                serde_json::from_slice(&body).expect("the router sends the protocol");
            log.lock().unwrap().push(req.clone());
            let answer = |req: &SearchRequest| SearchResponse {
                hits: req
                    .queries
                    .iter()
                    .map(|q| {
                        index
                            .search(q, req.k)
                            .unwrap()
                            .into_iter()
                            .map(|h| {
                                let d = docs.iter().find(|d| d.id == h.id).unwrap();
                                Hit {
                                    id: d.id.clone(),
                                    title: d.title.clone(),
                                    text: d.text.clone(),
                                    score: h.score,
                                }
                            })
                            .collect()
                    })
                    .collect(),
            };
            let (status, payload) = match behaviour {
                Behaviour::Serve => (200, serde_json::to_string(&answer(&req)).unwrap()),
                Behaviour::Slow(ms) => {
                    std::thread::sleep(Duration::from_millis(ms));
                    (200, serde_json::to_string(&answer(&req)).unwrap())
                }
                Behaviour::Status(s) => (s, "{\"error\": \"down\"}".to_owned()),
                Behaviour::Garbage => (200, "{\"hits\": [[{\"id\": 7}]".to_owned()),
                Behaviour::WrongCount => (200, "{\"hits\": []}".to_owned()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
                payload.len()
            );
        }
    });
    Endpoint { url, requests }
}

/// The last four passages local, all of them behind a real HTTP endpoint.
fn half_local_whole_network() -> (LocalSource<'static>, Endpoint, HttpSource) {
    let docs = corpus();
    let local = LocalSource::new(engine(&docs[4..]), SearchMode::Bm25).expect("local");
    let ep = endpoint(docs, Behaviour::Serve);
    let net = HttpSource::new(&ep.url, Duration::from_secs(5)).expect("url");
    (local, ep, net)
}

/// A decider that follows a script.
struct Script {
    sense: bool,
    actions: Vec<Action>,
    calls: usize,
}

impl Script {
    fn new(sense: bool, actions: &[Action]) -> Self {
        Self {
            sense,
            actions: actions.to_vec(),
            calls: 0,
        }
    }
}

impl Decider for Script {
    fn sense(&mut self, _f: &[f32]) -> Result<(bool, f32), RouterError> {
        Ok((self.sense, 1.0))
    }

    fn act(
        &mut self,
        _hop: u32,
        f: &[f32],
        _allowed: &[bool; 5],
    ) -> Result<(Action, f32), RouterError> {
        assert_eq!(f.len(), rlrag_router::features::FEATURES);
        let a = self
            .actions
            .get(self.calls)
            .copied()
            .unwrap_or(Action::Answer);
        self.calls += 1;
        Ok((a, 1.0))
    }
}

const NEVER: f32 = 2.0;

fn config(confidence_stop: f32) -> PipelineConfig {
    PipelineConfig {
        k: 3,
        confidence_stop,
        ..PipelineConfig::default()
    }
}

fn run(router: &Router<'_>, q: &str, d: &mut dyn Decider) -> Outcome {
    block_on(router.run(q, d, &SystemClock::default())).expect("runs")
}

const Q: &str = "What government position was held by the woman who portrayed Corliss Archer in the film Kiss and Tell?";

#[test]
fn every_network_fault_is_recorded_and_the_question_completes_locally() {
    let docs = corpus();
    let local = LocalSource::new(engine(&docs[..4]), SearchMode::Bm25).expect("local");
    for (behaviour, timeout_ms, expect) in [
        (Behaviour::Slow(1500), 300, "timeout"),
        (Behaviour::Status(503), 2000, "http"),
        (Behaviour::Garbage, 2000, "malformed"),
        (Behaviour::WrongCount, 2000, "malformed"),
    ] {
        let ep = endpoint(docs.clone(), behaviour);
        let net = HttpSource::new(&ep.url, Duration::from_millis(timeout_ms)).expect("url");
        let router =
            Router::new(&local, Some(&net), config(NEVER), Confidence::default()).expect("router");
        let out = run(&router, Q, &mut FixedPolicy::Network);
        let hop = &out.trace.decisions[0];
        assert_eq!(hop.action, Action::Network);
        assert_eq!(hop.faults.len(), 1, "{expect}: {:?}", hop.faults);
        let f = &hop.faults[0];
        assert_eq!(f.source, SourceKind::Network);
        assert!(f.fell_back_to_local, "{expect}");
        let kind = match &f.fault {
            Fault::Timeout { limit_ms } => {
                assert_eq!(*limit_ms, timeout_ms);
                "timeout"
            }
            Fault::Http { status } => {
                assert_eq!(*status, 503);
                "http"
            }
            Fault::Malformed { .. } => "malformed",
            Fault::Transport { .. } => "transport",
        };
        assert_eq!(kind, expect);
        assert!(!out.evidence.is_empty(), "{expect}: answered from local");
        assert!(
            out.evidence
                .iter()
                .all(|h| ["kiss", "temple", "arthur", "women"].contains(&h.id.as_str()))
        );
        assert_eq!((out.cost.network_calls, out.cost.local_calls), (1, 1));
    }
    // A slow network within the limit is no fault.
    let ep = endpoint(docs.clone(), Behaviour::Slow(200));
    let net = HttpSource::new(&ep.url, Duration::from_millis(3000)).expect("url");
    let router =
        Router::new(&local, Some(&net), config(NEVER), Confidence::default()).expect("router");
    let out = run(&router, Q, &mut FixedPolicy::Network);
    assert!(out.trace.decisions[0].faults.is_empty());
    assert!(out.trace.decisions[0].cost.latency_ms >= 200.0);
    // Nothing listening: a transport fault.
    let net =
        HttpSource::new("http://127.0.0.1:9/search", Duration::from_millis(500)).expect("url");
    let router =
        Router::new(&local, Some(&net), config(NEVER), Confidence::default()).expect("router");
    let out = run(&router, Q, &mut FixedPolicy::Network);
    let f = &out.trace.decisions[0].faults[0].fault;
    assert!(
        matches!(f, Fault::Transport { .. } | Fault::Timeout { .. }),
        "{f:?}"
    );
    assert!(!out.evidence.is_empty());
}

/// A search endpoint that redirects is a fault with its status: the peer it
/// names is never asked.
#[test]
fn a_redirect_is_a_fault_not_followed() {
    let target = endpoint(corpus(), Behaviour::Serve);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/search", listener.local_addr().expect("addr"));
    let to = target.url.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let reply = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    let net = HttpSource::new(&url, Duration::from_millis(2000)).expect("url");
    let got = block_on(net.search(&["capital of France".to_owned()], 3));
    assert!(matches!(got, Err(Fault::Http { status: 307 })), "{got:?}");
    assert!(
        target.requests.lock().unwrap().is_empty(),
        "the redirect was followed"
    );
}

#[test]
fn memory_suppresses_a_repeated_query() {
    let docs = corpus();
    let local = LocalSource::new(engine(&docs), SearchMode::Bm25).expect("local");
    let router = Router::new(&local, None, config(NEVER), Confidence::default()).expect("router");
    let out = run(
        &router,
        Q,
        &mut Script::new(false, &[Action::Local, Action::Local]),
    );
    let second = &out.trace.decisions[1];
    let repeat = second
        .queries
        .iter()
        .find(|r| r.text == Q)
        .expect("the question is offered again at hop 1");
    assert!(
        matches!(&repeat.admission, Admission::Suppressed { similar_to, .. } if similar_to == Q),
        "{repeat:?}"
    );
    assert!(out.trace.suppressed_queries >= 1);
    // Bridge queries (entities of hop 0's passages) were admitted instead.
    assert!(
        second
            .queries
            .iter()
            .any(|r| r.admission == Admission::Admitted)
    );
    assert!(
        second
            .queries
            .iter()
            .filter(|r| r.admission == Admission::Admitted)
            .count()
            <= 3
    );
}

#[test]
fn the_memory_still_lets_the_network_see_what_only_the_local_index_was_asked() {
    let (local, ep, net) = half_local_whole_network();
    let router =
        Router::new(&local, Some(&net), config(NEVER), Confidence::default()).expect("router");
    let out = run(
        &router,
        Q,
        &mut Script::new(false, &[Action::Local, Action::Network, Action::Network]),
    );
    let asked = |hop: usize| -> Vec<String> {
        out.trace.decisions[hop]
            .queries
            .iter()
            .filter(|r| r.admission == Admission::Admitted)
            .map(|r| r.text.clone())
            .collect()
    };
    assert!(asked(1).contains(&Q.to_owned()), "{:?}", asked(1));
    assert!(
        !asked(2).contains(&Q.to_owned()),
        "the network already has it"
    );
    let reqs = ep.requests.lock().unwrap().clone();
    assert!(reqs[0].queries.contains(&Q.to_owned()));
}

#[test]
fn filter_drops_passages_already_gathered() {
    let docs = corpus();
    let local = LocalSource::new(engine(&docs), SearchMode::Bm25).expect("local");
    let ep = endpoint(docs.clone(), Behaviour::Serve);
    let net = HttpSource::new(&ep.url, Duration::from_secs(5)).expect("url");
    let router =
        Router::new(&local, Some(&net), config(NEVER), Confidence::default()).expect("router");
    // Both sources hold the same passages: the second copy of each is dropped.
    let out = run(&router, Q, &mut FixedPolicy::Both);
    assert!(out.trace.dropped_seen >= 3, "{}", out.trace.dropped_seen);
    let mut ids: Vec<&str> = out.evidence.iter().map(|h| h.id.as_str()).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "evidence holds each passage once");
    // Scores are the fused ones: the top passage is first in both lists,
    // the local one weighing half the network's.
    assert!(
        (out.evidence[0].score - 1.5 / 61.0).abs() < 1e-6,
        "{:?}",
        out.evidence[0]
    );
    assert!(out.evidence.windows(2).all(|w| w[0].score >= w[1].score));
    // The request carried the question once, under the sub-query limit.
    let reqs = ep.requests.lock().unwrap();
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].queries.len() <= 3 && reqs[0].queries[0] == Q);
}

#[test]
fn network_lists_outweigh_local_ones_in_the_fusion() {
    let (local, _ep, net) = half_local_whole_network();
    let ids = |local_weight: f32, policy: FixedPolicy| -> Vec<String> {
        let cfg = PipelineConfig {
            local_weight,
            ..config(NEVER)
        };
        let router = Router::new(&local, Some(&net), cfg, Confidence::default()).expect("router");
        let mut p = policy;
        run(&router, "Which river flows through the capital of France, and what film starred Shirley Temple?", &mut p)
            .evidence
            .into_iter()
            .map(|h| h.id)
            .collect()
    };
    // "kiss" is not in the local half; the local list ranks "comedy" second.
    let network = ids(1.0, FixedPolicy::Network);
    assert!(network.iter().any(|id| id == "kiss"), "{network:?}");
    assert!(ids(1.0, FixedPolicy::Local).iter().any(|id| id == "comedy"));
    // Weighted equally, the local list's repeated votes crowd the passage
    // only the network found out of the top 3.
    let equal = ids(1.0, FixedPolicy::Both);
    assert!(
        !equal.iter().any(|id| id == "kiss") && equal.iter().any(|id| id == "comedy"),
        "{equal:?}"
    );
    // The default (half weight) keeps it; a tiny weight is the network's order.
    let default = PipelineConfig::default().local_weight;
    assert!(
        ids(default, FixedPolicy::Both)
            .iter()
            .any(|id| id == "kiss")
    );
    assert_eq!(ids(0.01, FixedPolicy::Both), network);
    for bad in [0.0, -1.0, 1.5, f32::NAN] {
        let cfg = PipelineConfig {
            local_weight: bad,
            ..config(NEVER)
        };
        let e = Router::new(&local, Some(&net), cfg, Confidence::default())
            .err()
            .expect("refused");
        assert!(e.to_string().contains("local_weight"), "{e}");
    }
}

#[test]
fn confidence_stops_early_on_an_easy_question_only() {
    let docs = corpus();
    let local = LocalSource::new(engine(&docs), SearchMode::Bm25).expect("local");
    let router = Router::new(&local, None, config(0.5), Confidence::default()).expect("router");
    // Every content word of this question is in one passage: stop after hop 0.
    let easy = run(
        &router,
        "Which river flows through Paris?",
        &mut FixedPolicy::Multihop,
    );
    assert_eq!(easy.trace.stop, StopReason::Confident);
    assert_eq!(easy.trace.decisions.len(), 1);
    assert!(easy.trace.decisions[0].confidence >= 0.5);
    // Nothing covers this one: both hops run.
    let hard = run(
        &router,
        "Which glacier feeds the Amazon delta wetlands?",
        &mut FixedPolicy::Multihop,
    );
    let actions: Vec<Action> = hard.trace.decisions.iter().map(|d| d.action).collect();
    assert_eq!(actions, [Action::Local, Action::Local, Action::Answer]);
    assert!(hard.trace.decisions[1].confidence < 0.5);
    assert_eq!(hard.trace.stop, StopReason::Answer);
}

#[test]
fn background_sensing_aligns_the_query() {
    let docs = corpus();
    let local = LocalSource::new(engine(&docs), SearchMode::Bm25).expect("local");
    let router = Router::new(&local, None, config(NEVER), Confidence::default()).expect("router");
    let q = "Which actress played Corliss Archer?";
    let out = run(&router, q, &mut Script::new(true, &[Action::Local]));
    let a = out.trace.sensing.alignment.as_ref().expect("sensing ran");
    assert!(
        a.titles.iter().any(|t| t.starts_with("Kiss and Tell")),
        "{a:?}"
    );
    // The first round sends the question, the aligned query, then bridges
    // from the sensing passages.
    let sent: Vec<&str> = out.trace.decisions[0]
        .queries
        .iter()
        .map(|r| r.text.as_str())
        .collect();
    assert_eq!(sent[..2], [q, a.query.as_str()], "{sent:?}");
    assert!(a.query.starts_with(q) && a.query.len() > q.len());
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(!sent[2].starts_with(q), "a bridge: {sent:?}");
    assert_eq!(out.cost.local_calls, 2, "sensing is a local call");
    let plain = run(&router, q, &mut Script::new(false, &[Action::Local]));
    assert!(plain.trace.sensing.alignment.is_none());
    assert_eq!(plain.trace.decisions[0].queries[0].text, q);
    // The first decision sees what sensing found (coverage, confidence and
    // the evidence features of the background passages); without it, nothing.
    let first = |o: &Outcome| o.trace.decisions[0].features.clone();
    let (sensed, blind) = (first(&out), first(&plain));
    let confidence = 5; // State::features: [bias, hop, words, sensed, coverage, confidence, ..]
    assert!(sensed[confidence] > 0.0 && sensed[4] > 0.0, "{sensed:?}");
    assert_eq!(
        (blind[3], blind[4], blind[confidence]),
        (0.0, 0.0, 0.0),
        "{blind:?}"
    );
    assert!(sensed[6..10].iter().any(|&f| f > 0.0) && blind[6..10].iter().all(|&f| f == 0.0));
}

#[test]
fn after_sensing_one_network_request_carries_the_question_its_alignment_and_a_bridge() {
    let (local, ep, net) = half_local_whole_network();
    let router =
        Router::new(&local, Some(&net), config(NEVER), Confidence::default()).expect("router");
    // Sensing over the local half finds "Paris"; its text names the Seine.
    let q = "Which river flows through the capital of France?";
    let out = run(&router, q, &mut Script::new(true, &[Action::Network]));
    let reqs = ep.requests.lock().expect("lock");
    assert_eq!(reqs.len(), 1, "one round, one request");
    let sent = &reqs[0].queries;
    let aligned = &out.trace.sensing.alignment.as_ref().expect("sensed").query;
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!((&sent[0], &sent[1]), (&q.to_owned(), aligned), "{sent:?}");
    assert_eq!(out.cost.network_calls, 1);
    // Without sensing the same action sends the question alone.
    drop(reqs);
    let plain = run(&router, q, &mut Script::new(false, &[Action::Network]));
    let sent: Vec<&str> = plain.trace.decisions[0]
        .queries
        .iter()
        .map(|r| r.text.as_str())
        .collect();
    assert_eq!(sent, [q]);
}

#[test]
fn sensing_passages_are_evidence_unless_weighted_zero() {
    let docs = corpus();
    let local = LocalSource::new(engine(&docs), SearchMode::Bm25).expect("local");
    let q = "Which actress played Corliss Archer?";
    let with = |sensing_weight: f32| {
        let cfg = PipelineConfig {
            sensing_weight,
            ..config(NEVER)
        };
        Router::new(&local, None, cfg, Confidence::default()).expect("router")
    };
    // Sense, then answer at once: the answer rests on the sensing passages.
    let sensed = run(&with(0.5), q, &mut Script::new(true, &[Action::Answer]));
    let ids: Vec<&str> = sensed.evidence.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids.first(), Some(&"kiss"), "{ids:?}");
    assert!(ids.len() <= PipelineConfig::default().sensing_k, "{ids:?}");
    assert_eq!((sensed.cost.local_calls, sensed.cost.network_calls), (1, 0));
    // Weight 0: sensing only aligns the query; there is no evidence yet.
    let aligned_only = run(&with(0.0), q, &mut Script::new(true, &[Action::Answer]));
    assert!(aligned_only.evidence.is_empty());
    assert!(aligned_only.trace.sensing.alignment.is_some());
    // A later local hop finds the sensing passages again: the filter drops
    // them as seen and the fusion adds the hop's votes to theirs.
    let hop = run(&with(0.5), q, &mut Script::new(true, &[Action::Local]));
    assert!(hop.trace.dropped_seen >= 1, "{:?}", hop.trace);
    assert_eq!(hop.evidence[0].id, "kiss");
    let no_sensing = run(&with(0.5), q, &mut Script::new(false, &[Action::Answer]));
    assert!(no_sensing.evidence.is_empty());
    for bad in [-0.1, 1.5, f32::NAN] {
        let cfg = PipelineConfig {
            sensing_weight: bad,
            ..config(NEVER)
        };
        let e = Router::new(&local, None, cfg, Confidence::default())
            .err()
            .expect("refused");
        assert!(e.to_string().contains("sensing_weight"), "{e}");
    }
}

#[test]
fn sub_queries_reach_the_network_together_and_bad_questions_are_refused() {
    let (local, ep, net) = half_local_whole_network();
    let router =
        Router::new(&local, Some(&net), config(NEVER), Confidence::default()).expect("router");
    let q = "Which magazine was started first, Arthur's Magazine or First for Women?";
    let out = run(&router, q, &mut FixedPolicy::Network);
    let reqs = ep.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 1, "one request per hop");
    assert_eq!(
        reqs[0].queries.len(),
        3,
        "the question and its two halves: {:?}",
        reqs[0].queries
    );
    let ids: Vec<&str> = out.evidence.iter().map(|h| h.id.as_str()).collect();
    assert!(ids.contains(&"arthur") && ids.contains(&"women"), "{ids:?}");
    for bad in ["", "   ", &"x".repeat(5000)] {
        let err = block_on(router.run(bad, &mut FixedPolicy::Local, &SystemClock::default()));
        assert!(matches!(err, Err(RouterError::InvalidQuestion { .. })));
    }
    assert_eq!(net.kind(), SourceKind::Network);
}

/// A sub-query writer that answers from a list (or fails) and records what it saw.
struct Writer {
    reply: Result<Vec<String>, Fault>,
    seen: Mutex<Vec<(String, usize)>>,
}

impl QueryWriter for Writer {
    fn write<'a>(&'a self, question: &'a str, evidence: &'a [Hit]) -> WriterFuture<'a> {
        self.seen
            .lock()
            .unwrap()
            .push((question.to_owned(), evidence.len()));
        let reply = self.reply.clone();
        Box::pin(async move { reply })
    }
}

#[test]
fn decompose_puts_written_sub_queries_first_and_survives_a_failed_writer() {
    let docs = corpus();
    let local = LocalSource::new(engine(&docs), SearchMode::Bm25).expect("local");
    let written = Writer {
        reply: Ok(vec![
            "  Shirley Temple diplomat  ".into(),
            String::new(),
            "x".repeat(MAX_SUB_QUERY_BYTES + 1),
            "Corliss Archer actress".into(),
        ]),
        seen: Mutex::new(Vec::new()),
    };
    let router = Router::new(&local, None, config(NEVER), Confidence::default())
        .expect("router")
        .with_writer(&written);
    let out = run(
        &router,
        Q,
        &mut Script::new(false, &[Action::Local, Action::Decompose]),
    );
    let d = &out.trace.decisions[1];
    assert_eq!(d.action, Action::Decompose);
    assert_eq!(d.writer_fault, None);
    let texts: Vec<&str> = d.queries.iter().map(|q| q.text.as_str()).collect();
    assert_eq!(
        &texts[..2],
        ["Shirley Temple diplomat", "Corliss Archer actress"],
        "written queries go first, empty and overlong ones dropped: {texts:?}"
    );
    let seen = written.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "only the decompose hop asks the writer");
    assert_eq!(seen[0].0, Q);
    assert_eq!(seen[0].1, 3, "the writer sees the evidence gathered so far");
    assert!(out.evidence.iter().any(|h| h.id == "temple"));

    let failing = Writer {
        reply: Err(Fault::Timeout { limit_ms: 5 }),
        seen: Mutex::new(Vec::new()),
    };
    let router = Router::new(&local, None, config(NEVER), Confidence::default())
        .expect("router")
        .with_writer(&failing);
    let out = run(&router, Q, &mut Script::new(false, &[Action::Decompose]));
    let d = &out.trace.decisions[0];
    assert_eq!(d.writer_fault, Some(Fault::Timeout { limit_ms: 5 }));
    assert!(
        !d.queries.is_empty() && d.new_passages > 0,
        "the heuristic sub-queries still ran"
    );
}

/// With a cross-encoder on the local engine, the reader reads the top
/// passages after every hop: its features reach the trace and the next
/// decision's state, and equal the probabilities of the evidence read
/// directly; without one they stay 0.
#[test]
fn the_reader_scores_the_evidence_into_the_state() {
    use rlrag_retriever::Reranker;
    let docs = corpus();
    let cfg = PipelineConfig {
        k: 5,
        confidence_stop: NEVER,
        ..PipelineConfig::default()
    };
    let plain = LocalSource::new(engine(&docs), SearchMode::Bm25).expect("local");
    let router = Router::new(&plain, None, cfg.clone(), Confidence::default()).expect("router");
    let out = run(&router, Q, &mut FixedPolicy::Local);
    assert!(out.trace.decisions.iter().all(|d| d.reader == [0.0; 4]));

    let cross = cross_encoder();
    let reranker = Reranker::new(cross.clone()).expect("reranker");
    let mut engine = engine(&docs);
    engine.set_reranker(Some(reranker.clone()));
    let local = LocalSource::new(engine, SearchMode::Bm25).expect("local");
    let router = Router::new(&local, None, cfg, Confidence::default()).expect("router");
    let out = run(&router, Q, &mut FixedPolicy::Local);
    let first = &out.trace.decisions[0];
    assert_eq!(first.action, Action::Local);
    let texts: Vec<String> = out
        .evidence
        .iter()
        .map(|h| format!("{} {}", h.title, h.text))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut p: Vec<f32> = cross
        .score_pairs(Q, &refs)
        .expect("scores")
        .into_iter()
        .map(|l| reranker.probability(l))
        .collect();
    p.sort_by(|a, b| b.total_cmp(a));
    let passing = p.iter().filter(|&&x| x >= 0.5).count() as f32 / p.len() as f32;
    let want = [1.0, p[0], p[0] - p[1], passing];
    for (a, b) in first.reader.iter().zip(want) {
        assert!((a - b).abs() < 1e-5, "{:?} vs {want:?}", first.reader);
    }
    // The next decision saw it: the state's last four entries.
    let next = &out.trace.decisions[1];
    let n = next.features.len();
    assert_eq!(&next.features[n - 4..], &first.reader[..]);
}

/// Writes a fixed passage for every query (what an LLM's hypothetical
/// document does to the search), or fails like a generator that is down.
struct Passage(Option<&'static str>);

impl rlrag_router::source::Augmenter for Passage {
    fn document<'a>(&'a self, _query: &'a str) -> rlrag_router::source::AugmentFuture<'a> {
        Box::pin(async move {
            self.0
                .map(str::to_string)
                .ok_or(Fault::Timeout { limit_ms: 1 })
        })
    }
}

/// The local source mixes the augmenter's hypothetical document into each
/// query (the passage it describes rises); a failed augmenter leaves the
/// plain search, counted; a bad weight is refused.
#[test]
fn the_local_source_augments_its_queries() {
    let docs = corpus();
    let q = vec!["which river flows through the capital".to_string()];
    let top = |source: &LocalSource<'_>| -> Vec<String> {
        block_on(source.search(&q, 3)).expect("searches")[0]
            .iter()
            .map(|h| h.id.clone())
            .collect()
    };
    let plain = LocalSource::new(engine(&docs), SearchMode::Bm25).expect("local");
    let plain_top = top(&plain);
    let ghana = Passage(Some(
        "Ghana is a country in West Africa; its capital is Accra.",
    ));
    let augmented = LocalSource::new(engine(&docs), SearchMode::Bm25)
        .expect("local")
        .with_augmenter(Box::new(ghana), 0.5)
        .expect("weight");
    let augmented_top = top(&augmented);
    assert_ne!(plain_top[0], "ghana");
    assert_eq!(augmented_top[0], "ghana", "{augmented_top:?}");
    assert_eq!(augmented.augment_failures(), 0);
    let down = Passage(None);
    let failing = LocalSource::new(engine(&docs), SearchMode::Bm25)
        .expect("local")
        .with_augmenter(Box::new(down), 0.2)
        .expect("weight");
    assert_eq!(top(&failing), plain_top);
    assert_eq!(failing.augment_failures(), 1);
    assert!(
        LocalSource::new(engine(&docs), SearchMode::Bm25)
            .expect("local")
            .with_augmenter(Box::new(Passage(None)), 1.5)
            .is_err()
    );
    // A document longer than a query may be is cut, not fatal; an empty
    // one is no augmentation.
    let long: &'static str = "Ghana Accra ".repeat(10_000).leak();
    let cut = LocalSource::new(engine(&docs), SearchMode::Bm25)
        .expect("local")
        .with_augmenter(Box::new(Passage(Some(long))), 0.5)
        .expect("weight");
    assert_eq!(top(&cut)[0], "ghana");
    let empty = LocalSource::new(engine(&docs), SearchMode::Bm25)
        .expect("local")
        .with_augmenter(Box::new(Passage(Some(""))), 0.5)
        .expect("weight");
    assert_eq!(top(&empty), plain_top);
    assert_eq!(empty.augment_failures(), 0);
}

/// An augmented search with a reranker: the first stage searches the
/// augmented query, the cross-encoder reads the question alone (its
/// scores are the logits of the plain question with each passage).
#[test]
fn the_reranker_reads_the_query_not_its_augmentation() {
    use rlrag_retriever::{Augmentation, Reranker};
    let docs = corpus();
    let cross = cross_encoder();
    let mut engine = engine(&docs);
    engine.set_reranker(Some(Reranker::new(cross.clone()).expect("reranker")));
    let augment = Augmentation::new("Ghana is a country in West Africa; its capital is Accra.");
    let hits = block_on(engine.search_augmented(Q, Some(augment), 4, SearchMode::Bm25, false, 4))
        .expect("searches");
    assert_eq!(hits.len(), 4);
    // The augmentation reached the first stage.
    assert!(hits.iter().any(|h| h.id == "ghana"), "{hits:?}");
    let texts: Vec<String> = hits
        .iter()
        .map(|h| {
            engine
                .document(&h.id)
                .expect("a hit's document")
                .full_text()
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let want = cross.score_pairs(Q, &refs).expect("scores");
    for (h, w) in hits.iter().zip(&want) {
        assert!((h.score - w).abs() < 1e-4, "{}: {} vs {w}", h.id, h.score);
    }
}

/// A one-layer cross-encoder from all-MiniLM-L6-v2's weights (seeded head).
fn cross_encoder() -> Arc<rlrag_encoder::Encoder> {
    use rlrag_encoder::{CrossEncoderInit, Encoder, ModelFiles};
    let dir = rlrag_encoder::models::pretrained("minilm");
    let read = |f: &str| std::fs::read(dir.join(f)).expect("run scripts/fetch-models.sh");
    let (w, c, t) = (
        read("model.safetensors"),
        read("config.json"),
        read("tokenizer.json"),
    );
    let files = ModelFiles {
        weights: &w,
        config: &c,
        tokenizer: &t,
    };
    let init = CrossEncoderInit {
        layers: Some(1),
        max_length: 128,
        max_question_tokens: 48,
        seed: 3,
    };
    Arc::new(Encoder::new_cross_encoder(files, init, &burn::tensor::Device::flex()).expect("cross"))
}
