//! `trainer serve`: any corpus as a network search source (axum on tokio),
//! speaking the router's protocol: POST `/search` with `{queries, k}` →
//! `{hits: [[{id, title, text, score}]]}` (BM25 over title + text). Used by
//! `eval-router` and `train-router` (in-process, on 127.0.0.1) and for
//! self-hosting a large corpus.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use rlrag_retriever::{Bm25Index, Bm25Params, Dataset, DatasetFormat, Document, Retriever};
use rlrag_router::source::{Hit, SearchRequest, SearchResponse};
use serde_json::json;

/// Most queries in one request.
const MAX_QUERIES: usize = 16;
/// Most hits per query.
const MAX_K: usize = 100;
/// Longest query, in bytes.
const MAX_QUERY_BYTES: usize = 4096;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The corpus: a BEIR or QA directory, or a HotpotQA file.
    #[arg(long)]
    data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[arg(long, value_parser = crate::parse_format)]
    format: Option<DatasetFormat>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Answer every request this much later (to test slow networks).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

/// The searchable corpus behind the endpoint.
pub struct Corpus {
    index: Bm25Index,
    docs: std::collections::HashMap<String, Document>,
    delay: Duration,
}

impl Corpus {
    /// BM25 over `docs`.
    pub fn new(docs: Vec<Document>, delay: Duration) -> anyhow::Result<Self> {
        let mut index = Bm25Index::new(Bm25Params::default(), Default::default())?;
        index.add_documents(&docs)?;
        let docs = docs.into_iter().map(|d| (d.id.clone(), d)).collect();
        Ok(Self { index, docs, delay })
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
    match corpus.search(&req) {
        Ok(resp) => match serde_json::to_value(resp) {
            Ok(v) => (StatusCode::OK, Json(v)),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": e.to_string()})),
            ),
        },
        Err(why) => (StatusCode::BAD_REQUEST, Json(json!({"error": why}))),
    }
}

/// The axum app over `corpus`.
pub fn app(corpus: Arc<Corpus>) -> Router {
    Router::new()
        .route("/search", post(search))
        .with_state(corpus)
}

/// A server running on its own thread (for `eval-router` and
/// `train-router` without `--network`); stops when dropped.
pub struct Background {
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// Serve `corpus` on 127.0.0.1 (a free port) in the background.
pub fn spawn(corpus: Corpus) -> anyhow::Result<Background> {
    let rt = runtime()?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .context("cannot listen on 127.0.0.1")?;
    let addr = listener.local_addr()?;
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
        .context("cannot start the server thread")?;
    Ok(Background {
        url: format!("http://{addr}/search"),
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

/// `trainer serve`: runs until interrupted.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let ds = Dataset::load(&args.data, args.format, None)?;
    let n = ds.corpus.len();
    let corpus = Corpus::new(ds.corpus, Duration::from_millis(args.delay_ms))?;
    let rt = runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        eprintln!(
            "serving {n} passages of {} at http://{}/search (POST {{\"queries\": [..], \"k\": 10}})",
            args.data.display(),
            listener.local_addr()?
        );
        axum::serve(listener, app(Arc::new(corpus)))
            .await
            .context("the server failed")
    })
}
