//! Any corpus as a network search source (axum on tokio), speaking the
//! router's protocol: POST `/search` with `{queries, k}` →
//! `{hits: [[{id, title, text, score}]]}` (BM25 over title + text). The
//! router's runs serve their corpus in-process on 127.0.0.1 ([`spawn`]);
//! `trainer serve` self-hosts one ([`serve`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
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
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": e.body_text()})),
            );
        }
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

/// The axum app over `corpus`.
pub fn app(corpus: Arc<Corpus>) -> Router {
    Router::new()
        .route("/search", post(search))
        .with_state(corpus)
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
pub fn spawn(corpus: Corpus) -> Result<Background, EvalError> {
    let rt = runtime()?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(server_error("cannot listen on 127.0.0.1"))?;
    let addr = listener
        .local_addr()
        .map_err(server_error("no local address"))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = app(Arc::new(corpus));
    let thread = std::thread::Builder::new()
        .name("rlrag-serve".into())
        .spawn(move || {
            let served = rt.block_on(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
            });
            if let Err(e) = served {
                eprintln!("the network source stopped: {e}");
            }
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
        axum::serve(listener, app(Arc::new(corpus)))
            .await
            .map_err(server_error("the server failed"))
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
        let bg = spawn(corpus).expect("serves");
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
}
