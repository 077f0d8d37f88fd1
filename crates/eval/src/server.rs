//! Any corpus as a network search source (axum on tokio), speaking the
//! router's protocol: POST `/search` with `{queries, k}` →
//! `{hits: [[{id, title, text, score}]]}` (BM25 over title + text). The
//! router's runs serve their corpus in-process on 127.0.0.1 ([`spawn`]);
//! `trainer serve` self-hosts one ([`serve`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rlrag_retriever::{Bm25Index, Bm25Params, Document};
use rlrag_router::source::{Hit, SearchRequest, SearchResponse};
use serde_json::json;

use crate::EvalError;

/// Most queries in one request.
const MAX_QUERIES: usize = 16;
/// Most hits per query.
const MAX_K: usize = 100;
/// Longest query, in bytes.
const MAX_QUERY_BYTES: usize = 4096;
/// Requests served at once; one more is answered 503 at once instead of
/// queueing behind them.
pub const MAX_IN_FLIGHT: usize = 32;
/// Largest request body, in bytes (16 queries of 4 KiB and the JSON around
/// them); a larger one is answered 413.
pub const MAX_BODY_BYTES: usize = 96 * 1024;

/// What the server tolerates from its clients before it hangs up on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest a client may take to send a request's headers; also how long
    /// an idle kept-alive connection stays open. Slow-header clients
    /// (slow-loris) are disconnected after it.
    pub header_timeout: Duration,
    /// Longest one request may take from its headers to the reply, reading
    /// its body included; past it the answer is 408.
    pub request_timeout: Duration,
    /// Most connections open at once; one more is closed as it is accepted.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

/// The searchable corpus behind the endpoint.
pub struct Corpus {
    index: Bm25Index,
    docs: std::collections::HashMap<String, Document>,
    delay: Duration,
    in_flight: tokio::sync::Semaphore,
}

impl Corpus {
    /// BM25 over `docs`.
    pub fn new(docs: Vec<Document>, delay: Duration) -> Result<Self, EvalError> {
        let mut index = Bm25Index::new(Bm25Params::default(), Default::default())?;
        index.add_documents(&docs)?;
        let docs = docs.into_iter().map(|d| (d.id.clone(), d)).collect();
        Ok(Self {
            index,
            docs,
            delay,
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
        })
    }

    fn search(&self, req: &SearchRequest) -> Result<SearchResponse, String> {
        if req.queries.is_empty() || req.queries.len() > MAX_QUERIES {
            return Err(format!(
                "1 to {MAX_QUERIES} queries, got {}",
                req.queries.len()
            ));
        }
        if req.k == 0 || req.k > MAX_K {
            return Err(format!("k must be 1 to {MAX_K}, got {}", req.k));
        }
        if let Some(q) = req.queries.iter().find(|q| q.len() > MAX_QUERY_BYTES) {
            return Err(format!(
                "a query of {} bytes (the limit is {MAX_QUERY_BYTES})",
                q.len()
            ));
        }
        let mut hits = Vec::with_capacity(req.queries.len());
        for q in &req.queries {
            let found = self.index.search(q, req.k).map_err(|e| e.to_string())?;
            hits.push(
                found
                    .into_iter()
                    .filter_map(|h| {
                        self.docs.get(&h.id).map(|d| Hit {
                            id: d.id.clone(),
                            title: d.title.clone(),
                            text: d.text.clone(),
                            score: h.score,
                        })
                    })
                    .collect(),
            );
        }
        Ok(SearchResponse { hits })
    }
}

async fn search(
    State(corpus): State<Arc<Corpus>>,
    body: Result<Json<SearchRequest>, axum::extract::rejection::JsonRejection>,
) -> (StatusCode, Json<serde_json::Value>) {
    let Ok(_permit) = corpus.in_flight.try_acquire() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": format!("busy: {MAX_IN_FLIGHT} requests in flight")})),
        );
    };
    if !corpus.delay.is_zero() {
        tokio::time::sleep(corpus.delay).await;
    }
    let Json(req) = match body {
        Ok(b) => b,
        // 400 for malformed JSON, 413 for a body over the limit, 415 for
        // a missing JSON content type.
        Err(e) => return (e.status(), Json(json!({"error": e.body_text()}))),
    };
    // BM25 runs off the async workers, so a heavy query never stalls the
    // connections they serve.
    let searcher = Arc::clone(&corpus);
    match tokio::task::spawn_blocking(move || searcher.search(&req)).await {
        Ok(Ok(resp)) => match serde_json::to_value(resp) {
            Ok(v) => (StatusCode::OK, Json(v)),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": e.to_string()})),
            ),
        },
        Ok(Err(why)) => (StatusCode::BAD_REQUEST, Json(json!({"error": why}))),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": format!("the search stopped: {e}")})),
        ),
    }
}

/// The axum app over `corpus`: `/search`, with the body limit and the
/// request deadline of `limits`.
pub fn app(corpus: Arc<Corpus>, limits: Limits) -> Router {
    Router::new()
        .route("/search", post(search))
        .with_state(corpus)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            limits.request_timeout,
            deadline,
        ))
}

/// Answers 408 when a request (its body read included) outlasts `limit`.
async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            Json(json!({
                "error": format!("the request took longer than {} ms", limit.as_millis())
            })),
        )
            .into_response(),
    }
}

/// Accepts connections on `listener` and serves `app` on each (HTTP/1.1),
/// within `limits`, until `shutdown` resolves; then closes the listener,
/// asks open connections to finish and waits for them a short while.
async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait instead of spinning.
                    eprintln!("rlrag serve: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = closing.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(2), connections.acquire_many(all)).await;
}

/// A server running on its own thread (for the router's runs without a
/// network endpoint of their own); stops when dropped.
pub struct Background {
    /// Its search URL (`http://127.0.0.1:PORT/search`).
    pub url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn server_error(what: &str) -> impl FnOnce(std::io::Error) -> EvalError {
    let what = what.to_owned();
    move |e| EvalError::Server {
        reason: format!("{what}: {e}"),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, EvalError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(server_error("cannot start the tokio runtime"))
}

/// Serve `corpus` on 127.0.0.1 (a free port) in the background.
pub fn spawn(corpus: Corpus, limits: Limits) -> Result<Background, EvalError> {
    let rt = runtime()?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(server_error("cannot listen on 127.0.0.1"))?;
    let addr = listener
        .local_addr()
        .map_err(server_error("no local address"))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = app(Arc::new(corpus), limits);
    let thread = std::thread::Builder::new()
        .name("rlrag-serve".into())
        .spawn(move || {
            rt.block_on(run(listener, app, limits, async {
                let _ = rx.await;
            }));
        })
        .map_err(server_error("cannot start the server thread"))?;
    Ok(Background {
        url: format!("http://{addr}/search"),
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

/// Serve `corpus` on `listen` until the process ends; `ready` is called
/// with the bound address once it accepts requests.
pub fn serve(
    corpus: Corpus,
    listen: SocketAddr,
    limits: Limits,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), EvalError> {
    let rt = runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(server_error(&format!("cannot listen on {listen}")))?;
        ready(
            listener
                .local_addr()
                .map_err(server_error("no local address"))?,
        );
        run(
            listener,
            app(Arc::new(corpus), limits),
            limits,
            std::future::pending(),
        )
        .await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use futures_lite::future::block_on;
    use rlrag_router::error::Fault;
    use rlrag_router::http::HttpSource;
    use rlrag_router::source::Source;

    use super::*;

    /// More requests at once than the server serves: the extra ones are
    /// answered 503 at once, the rest normally, and none hangs.
    #[test]
    fn requests_past_the_limit_are_refused_not_queued() {
        let docs = vec![Document::new(
            "a",
            "Paris",
            "Paris is the capital of France.",
        )];
        let corpus = Corpus::new(docs, Duration::from_millis(400)).expect("corpus");
        let bg = spawn(corpus, Limits::default()).expect("serves");
        let n = MAX_IN_FLIGHT + 8;
        let barrier = std::sync::Barrier::new(n);
        let results: Vec<Result<usize, Fault>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let (url, barrier) = (&bg.url, &barrier);
                    s.spawn(move || {
                        let source = HttpSource::new(url, Duration::from_secs(10)).expect("url");
                        barrier.wait();
                        block_on(source.search(&["capital of France".to_owned()], 3))
                            .map(|hits| hits[0].len())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(Fault::Http { status: 503 })))
            .count();
        let served = results.iter().filter(|r| matches!(r, Ok(1))).count();
        assert_eq!(busy + served, n, "{results:?}");
        assert!(busy >= 1 && served >= 1, "busy {busy}, served {served}");
        assert!(served <= MAX_IN_FLIGHT, "served {served}");
    }

    fn paris() -> Corpus {
        let docs = vec![Document::new(
            "a",
            "Paris",
            "Paris is the capital of France.",
        )];
        Corpus::new(docs, Duration::ZERO).expect("corpus")
    }

    fn addr(bg: &Background) -> SocketAddr {
        bg.url
            .trim_start_matches("http://")
            .trim_end_matches("/search")
            .parse()
            .expect("address")
    }

    /// Sends `head` and `body` on a new connection; the whole reply (up to
    /// the server closing, or `wait`) and how long it took.
    fn exchange(addr: SocketAddr, head: &str, body: &[u8], wait: Duration) -> (String, Duration) {
        use std::io::{Read, Write};
        let started = std::time::Instant::now();
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(wait)).expect("timeout");
        s.write_all(head.as_bytes()).expect("head");
        let _ = s.write_all(body);
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        (
            String::from_utf8_lossy(&reply).into_owned(),
            started.elapsed(),
        )
    }

    fn post(body: &[u8]) -> String {
        format!(
            "POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
    }

    /// Malformed, over-limit and out-of-range requests get 400, 413 or 422
    /// with a reason, not a hang or a dropped connection.
    #[test]
    fn bad_requests_get_400_413_or_422() {
        let bg = spawn(paris(), Limits::default()).expect("serves");
        let wait = Duration::from_secs(5);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"{not json".to_vec(), "400"),
            (br#"{"queries": [], "k": 3}"#.to_vec(), "400"),
            (br#"{"queries": ["paris"], "k": 100000}"#.to_vec(), "400"),
            (
                format!(r#"{{"queries": ["{}"], "k": 3}}"#, "a".repeat(5000)).into_bytes(),
                "400",
            ),
            (vec![b' '; MAX_BODY_BYTES + 1], "413"),
            // Nested past serde_json's recursion limit: refused, not a stack overflow.
            ("[".repeat(90_000).into_bytes(), "422"),
        ];
        for (body, status) in cases {
            let (reply, _) = exchange(addr(&bg), &post(&body), &body, wait);
            assert!(
                reply.starts_with(&format!("HTTP/1.1 {status}")) && reply.contains("error"),
                "{status} expected for a body of {} bytes: {reply:.200}",
                body.len()
            );
        }
        let ok = br#"{"queries": ["capital of France"], "k": 3}"#;
        let (reply, _) = exchange(addr(&bg), &post(ok), ok, wait);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }

    /// A client that stops halfway through its headers is disconnected
    /// after the header timeout; one that sends headers and then drips its
    /// body gets 408 after the request timeout.
    #[test]
    fn slow_clients_are_cut_off_at_their_timeouts() {
        let limits = Limits {
            header_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let bg = spawn(paris(), limits).expect("serves");
        let wait = Duration::from_secs(10);
        let (reply, took) = exchange(addr(&bg), "POST /search HTTP/1.1\r\nHost: x\r\n", b"", wait);
        assert!(
            took < Duration::from_secs(3),
            "headers stalled for {took:?}: {reply}"
        );
        assert!(!reply.starts_with("HTTP/1.1 200"), "{reply}");
        let head = "POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                    Content-Length: 100\r\n\r\n";
        let (reply, took) = exchange(addr(&bg), head, b"{\"queries\"", wait);
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
        assert!(
            took < Duration::from_secs(3),
            "the body stalled for {took:?}"
        );
    }

    /// Past the connection limit, a new connection is closed at once.
    #[test]
    fn connections_past_the_limit_are_closed() {
        let limits = Limits {
            max_connections: 4,
            ..Limits::default()
        };
        let bg = spawn(paris(), limits).expect("serves");
        let held: Vec<_> = (0..4)
            .map(|_| std::net::TcpStream::connect(addr(&bg)).expect("connect"))
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let ok = br#"{"queries": ["paris"], "k": 1}"#;
        let (reply, took) = exchange(addr(&bg), &post(ok), ok, Duration::from_secs(5));
        assert!(reply.is_empty(), "{reply}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        drop(held);
        std::thread::sleep(Duration::from_millis(200));
        let (reply, _) = exchange(addr(&bg), &post(ok), ok, Duration::from_secs(5));
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }

    /// Slow-loris: 2,000 connections each holding half a request open do
    /// not stop a real request from being answered within a second.
    #[test]
    fn a_real_request_is_answered_beside_2000_slow_header_sockets() {
        use std::io::Write;
        let bg = spawn(paris(), Limits::default()).expect("serves");
        let mut slow = Vec::with_capacity(2000);
        for i in 0..2000 {
            let mut s = std::net::TcpStream::connect(addr(&bg)).unwrap_or_else(|e| {
                panic!(
                    "slow socket {i}: {e} (this test needs about 4,100 file \
                     descriptors: `ulimit -n 8192`; scripts/test.sh raises it)"
                )
            });
            s.write_all(b"POST /search HTTP/1.1\r\nHost: x\r\n")
                .expect("half a request");
            slow.push(s);
        }
        std::thread::sleep(Duration::from_millis(300));
        let source = HttpSource::new(&bg.url, Duration::from_secs(1)).expect("url");
        let hits = block_on(source.search(&["capital of France".to_owned()], 3))
            .expect("answered within a second");
        assert_eq!(hits[0].len(), 1);
        drop(slow);
    }
}
