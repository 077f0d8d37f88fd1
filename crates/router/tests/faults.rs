//! Fault injection against the router's peers on 127.0.0.1: a raw TCP peer
//! that drips its body a byte per 100 ms, stalls after its headers, lies
//! about its Content-Length, sends one byte over the cap, resets, redirects
//! or nests JSON 10^5 deep. The network source and the LLM client end each
//! within their timeout and a small margin with the fault named (and in the
//! router's trace), never follow the redirect, never retry a 4xx, and leave
//! no request thread behind after 1,000 faults; an abandoned search's
//! thread ends within the source's timeout.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_lite::future::block_on;
use rlrag_retriever::engine::SearchMode;
use rlrag_router::error::Fault;
use rlrag_router::http::HttpSource;
use rlrag_router::memory::Confidence;
use rlrag_router::source::Source;
use rlrag_router::{
    FixedPolicy, LlmClient, LlmConfig, LocalSource, PipelineConfig, Router, SourceKind, SystemClock,
};

mod common;
use common::{corpus, engine, read_request};

/// The network source's reply cap (`http.rs`).
const SOURCE_CAP: usize = 16 * 1024 * 1024;

/// What the peer does after reading a request.
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// Headers for 100,000 bytes, then one byte per 100 ms.
    Drip,
    /// Headers, then nothing.
    Stall,
    /// Says 1,000 bytes, sends 10 and closes.
    LyingLength,
    /// A well-formed body one byte over `SOURCE_CAP`.
    OverCap,
    /// Closes the connection without a word.
    Reset,
    /// 302 to another peer.
    Redirect,
    /// 200 with JSON nested 100,000 deep.
    DeepJson,
    /// The given status with a JSON error.
    Status(u16),
}

/// A peer on 127.0.0.1 misbehaving on every request, a thread per
/// connection; counts the requests it read.
struct Peer {
    url: String,
    requests: Arc<AtomicUsize>,
}

fn misbehave(mut s: TcpStream, how: Misbehaviour, redirect_to: &str) {
    let head = |len: usize| {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
        )
    };
    let _ = match how {
        Misbehaviour::Drip => s.write_all(head(100_000).as_bytes()).and_then(|()| {
            for _ in 0..600 {
                std::thread::sleep(Duration::from_millis(100));
                s.write_all(b" ")?;
            }
            Ok(())
        }),
        Misbehaviour::Stall => s.write_all(head(100).as_bytes()).map(|()| {
            std::thread::sleep(Duration::from_secs(30));
        }),
        Misbehaviour::LyingLength => s.write_all(format!("{}{{\"hits\":[", head(1000)).as_bytes()),
        Misbehaviour::OverCap => {
            let mut body = b"{\"hits\": [[]], \"pad\": \"".to_vec();
            body.resize(SOURCE_CAP - 1, b'x');
            body.extend_from_slice(b"\"}");
            s.write_all(head(body.len()).as_bytes())
                .and_then(|()| s.write_all(&body))
        }
        Misbehaviour::Reset => Ok(()),
        Misbehaviour::Redirect => s.write_all(
            format!("HTTP/1.1 302 Found\r\nlocation: {redirect_to}\r\ncontent-length: 0\r\n\r\n")
                .as_bytes(),
        ),
        Misbehaviour::DeepJson => {
            let body = "[".repeat(100_000);
            s.write_all(format!("{}{body}", head(body.len())).as_bytes())
        }
        Misbehaviour::Status(code) => {
            let body = "{\"error\": \"no\"}";
            s.write_all(
                format!("HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len())
                    .as_bytes(),
            )
        }
    };
}

fn peer(how: Misbehaviour, redirect_to: &str) -> Peer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/search", listener.local_addr().expect("addr"));
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    let redirect_to = redirect_to.to_owned();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (counted, redirect_to) = (Arc::clone(&counted), redirect_to.clone());
            std::thread::spawn(move || {
                if !matches!(how, Misbehaviour::Reset) {
                    let _ = read_request(&stream);
                }
                counted.fetch_add(1, Ordering::SeqCst);
                misbehave(stream, how, &redirect_to);
            });
        }
    });
    Peer { url, requests }
}

/// Serialises the tests that count request threads (they share the
/// process).
static THREADS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The process's request threads (`rlrag-network`) alive now.
fn request_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.trim() == "rlrag-network")
                .count()
        })
        .unwrap_or(0)
}

fn wait_for_no_request_threads() -> usize {
    let started = Instant::now();
    while request_threads() > 0 && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    request_threads()
}

const ALL: [Misbehaviour; 8] = [
    Misbehaviour::Drip,
    Misbehaviour::Stall,
    Misbehaviour::LyingLength,
    Misbehaviour::OverCap,
    Misbehaviour::Reset,
    Misbehaviour::Redirect,
    Misbehaviour::DeepJson,
    Misbehaviour::Status(503),
];

/// Every misbehaviour ends the network search within its 800 ms timeout
/// plus a margin, as the fault it is, recorded in the router's trace, and
/// the question is answered from the local index.
#[test]
fn every_peer_fault_ends_in_time_with_the_fault_in_the_trace() {
    let _alone = THREADS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let docs = corpus();
    let local = LocalSource::new(engine(&docs[..4]), SearchMode::Bm25).expect("local");
    let bait = peer(Misbehaviour::Status(200), "");
    let limit = Duration::from_millis(800);
    for how in ALL {
        let p = peer(how, &bait.url);
        let net = HttpSource::new(&p.url, limit).expect("url");
        let started = Instant::now();
        let got = block_on(net.search(&["capital of France".to_owned()], 3));
        let took = started.elapsed();
        assert!(
            took < limit + Duration::from_millis(700),
            "{how:?} took {took:?}"
        );
        let fault = got.expect_err("a fault");
        let ok = match how {
            Misbehaviour::Drip | Misbehaviour::Stall => {
                matches!(fault, Fault::Timeout { limit_ms: 800 })
            }
            Misbehaviour::Redirect => matches!(fault, Fault::Http { status: 302 }),
            Misbehaviour::Status(s) => matches!(fault, Fault::Http { status } if status == s),
            Misbehaviour::DeepJson => matches!(fault, Fault::Malformed { .. }),
            Misbehaviour::LyingLength | Misbehaviour::OverCap | Misbehaviour::Reset => {
                matches!(fault, Fault::Transport { .. } | Fault::Malformed { .. })
            }
        };
        assert!(ok, "{how:?} gave {fault:?}");
        if matches!(how, Misbehaviour::OverCap) {
            assert!(
                fault.to_string().contains("limit") || fault.to_string().contains("large"),
                "{fault}"
            );
        }
        // The same fault through the router: in the trace, answered locally.
        let config = PipelineConfig {
            k: 3,
            confidence_stop: 2.0,
            ..PipelineConfig::default()
        };
        let router =
            Router::new(&local, Some(&net), config, Confidence::default()).expect("router");
        let question = "Who starred in Kiss and Tell?";
        let out =
            block_on(router.run(question, &mut FixedPolicy::Network, &SystemClock::default()))
                .expect("routes");
        let faults = &out.trace.decisions[0].faults;
        assert_eq!(faults.len(), 1, "{how:?}: {faults:?}");
        assert_eq!(faults[0].source, SourceKind::Network);
        assert_eq!(
            std::mem::discriminant(&faults[0].fault),
            std::mem::discriminant(&fault),
            "{how:?}"
        );
        assert!(!out.evidence.is_empty(), "{how:?}: answered from local");
    }
    assert_eq!(
        bait.requests.load(Ordering::SeqCst),
        0,
        "a redirect was followed"
    );
    assert_eq!(
        wait_for_no_request_threads(),
        0,
        "request threads left behind"
    );
}

/// 1,000 faults in a row (resets, lies, garbage, redirects, refusals, and
/// timeouts among them): no request thread outlives its request.
#[test]
fn a_thousand_faults_leave_no_thread_behind() {
    let _alone = THREADS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    assert_eq!(request_threads(), 0);
    let quick = [
        Misbehaviour::Reset,
        Misbehaviour::LyingLength,
        Misbehaviour::DeepJson,
        Misbehaviour::Redirect,
        Misbehaviour::Status(404),
    ];
    let peers: Vec<(Misbehaviour, Peer)> = quick
        .iter()
        .map(|&h| (h, peer(h, "http://127.0.0.1:9/")))
        .collect();
    let stall = peer(Misbehaviour::Stall, "");
    let mut faults = 0;
    for round in 0..200 {
        for (how, p) in &peers {
            let net = HttpSource::new(&p.url, Duration::from_millis(2000)).expect("url");
            let got = block_on(net.search(&["q".to_owned()], 3));
            assert!(got.is_err(), "{how:?}");
            faults += 1;
        }
        if round % 50 == 0 {
            let net = HttpSource::new(&stall.url, Duration::from_millis(100)).expect("url");
            assert!(matches!(
                block_on(net.search(&["q".to_owned()], 3)),
                Err(Fault::Timeout { .. })
            ));
        }
    }
    assert_eq!(faults, 1000);
    assert_eq!(
        wait_for_no_request_threads(),
        0,
        "request threads left behind"
    );
}

/// A search abandoned by its caller (the future dropped while the peer
/// stalls) leaves its request thread for at most the source's timeout.
#[test]
fn an_abandoned_search_frees_its_thread_within_the_timeout() {
    let _alone = THREADS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let stall = peer(Misbehaviour::Stall, "");
    let net = HttpSource::new(&stall.url, Duration::from_millis(300)).expect("url");
    let queries = ["q".to_owned()];
    let started = Instant::now();
    for _ in 0..20 {
        drop(net.search(&queries, 3));
    }
    assert_eq!(
        wait_for_no_request_threads(),
        0,
        "request threads left behind"
    );
    assert!(
        started.elapsed() < Duration::from_millis(300 + 1500),
        "{:?}",
        started.elapsed()
    );
}

fn llm(url: &str, timeout_ms: u64, retries: u32) -> LlmClient {
    LlmClient::new(LlmConfig {
        base_url: url.trim_end_matches("/search").to_owned(),
        timeout_ms,
        retries,
        ..LlmConfig::default()
    })
    .expect("client")
}

/// The LLM client: each misbehaviour is an error within (retries + 1)
/// timeouts plus backoff and a margin; a 4xx is asked once, a 5xx again
/// after a backoff; a redirect is not followed.
#[test]
fn the_llm_client_survives_every_peer_fault_and_never_retries_a_4xx() {
    let bait = peer(Misbehaviour::Status(200), "");
    for how in ALL
        .into_iter()
        .chain([Misbehaviour::Status(400), Misbehaviour::Status(429)])
    {
        let p = peer(how, &bait.url);
        let client = llm(&p.url, 600, 1);
        let started = Instant::now();
        let got = client.answer(
            "What is the capital of France?",
            "Paris is the capital of France.",
        );
        let took = started.elapsed();
        let err = got.expect_err("an error").to_string();
        assert!(
            err.contains("127.0.0.1"),
            "{how:?}: the peer is named: {err}"
        );
        assert!(
            took < Duration::from_millis(2 * 600 + 100 + 1000),
            "{how:?} took {took:?}"
        );
        let asked = p.requests.load(Ordering::SeqCst);
        match how {
            Misbehaviour::Status(s) if (400..500).contains(&s) => {
                assert_eq!(asked, 1, "{how:?} was retried");
                assert!(err.contains("not retried"), "{err}");
            }
            _ => assert_eq!(asked, 2, "{how:?}: one retry"),
        }
    }
    assert_eq!(
        bait.requests.load(Ordering::SeqCst),
        0,
        "a redirect was followed"
    );
}
