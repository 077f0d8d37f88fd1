//! OpenSearch (and Elasticsearch) as a search source: a [`Cluster`] client
//! that creates rlrag's index, bulk-loads passages with their learned-sparse
//! vectors and searches it, and the [`OpenSearchSource`] the router and the
//! evaluation search through.
//!
//! The index holds `title` and `text` (copied into one `content` field that
//! the engine scores by BM25 with rlrag's analysis: lower-case, Lucene's
//! English stopwords, Snowball English) and the document's sparse vector in
//! a `sparse` field: `rank_features` on OpenSearch (queried by `rank_feature`
//! clauses with a linear function, boosted by the query's own weights, so a
//! hit's score is the dot product), `sparse_vector` on Elasticsearch (the
//! `sparse_vector` query). Feature names are the vocabulary ids in decimal
//! (token strings hold dots, which these fields refuse). The index's
//! `_meta.rlrag` records the sparse model's fingerprint, so queries are only
//! ever encoded by the model that encoded the documents.
//!
//! Every request has the time limit; timeouts, refused connections and the
//! statuses a busy cluster answers (429, 502, 503, 504) are asked again with
//! back-off; redirects are answered as their status, never followed.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use rlrag_encoder::{Encoder, SparseVector};
use rlrag_retriever::engine::HYBRID_DEPTH;
use rlrag_retriever::fusion::fuse;
use rlrag_retriever::{Bm25Params, Fusion, SearchMode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::SourceKind;
use crate::error::{Fault, RouterError, invalid};
use crate::http::on_thread;
use crate::source::{Hit, SearchResponse, Source, SourceFuture, check_reply};

/// The field BM25 scores (title and text copied in).
pub const CONTENT_FIELD: &str = "content";
/// The learned-sparse field.
pub const SPARSE_FIELD: &str = "sparse";
/// Version of the index layout recorded in `_meta.rlrag`.
pub const INDEX_FORMAT: u32 = 1;
/// Most terms of a sparse query (Lucene's default `max_clause_count`);
/// heavier terms are kept.
pub const MAX_QUERY_TERMS: usize = 1024;
/// Most documents one bulk request or one existence check carries.
pub const MAX_BATCH: usize = 5000;
/// Largest answer read from the cluster.
const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// Which engine the cluster runs: the sparse field and query differ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Flavour {
    /// OpenSearch 2.x / 3.x: `rank_features` and `rank_feature` queries.
    #[default]
    #[cfg_attr(feature = "clap", value(name = "opensearch"))]
    OpenSearch,
    /// Elasticsearch 8.x: a `sparse_vector` field and query.
    Elasticsearch,
}

/// Where the index lives and how it is asked.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The cluster's base URL (`http://host:9200`).
    pub url: String,
    /// The index name.
    pub index: String,
    /// OpenSearch or Elasticsearch.
    pub flavour: Flavour,
    /// Time limit of each request.
    pub timeout: Duration,
    /// Further tries after a timeout, a failed connection or a busy status.
    pub retries: u32,
    /// The `Authorization` header sent with every request (`Basic …`,
    /// `ApiKey …`), if the cluster needs one.
    pub authorization: Option<String>,
}

impl ClusterConfig {
    /// `index` on the cluster at `url`, OpenSearch, 10 s per request, two
    /// retries, no authorization.
    pub fn new(url: &str, index: &str) -> Self {
        Self {
            url: url.to_owned(),
            index: index.to_owned(),
            flavour: Flavour::OpenSearch,
            timeout: Duration::from_secs(10),
            retries: 2,
            authorization: None,
        }
    }
}

/// What rlrag records in the index's `_meta.rlrag`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    /// [`INDEX_FORMAT`] of the writer.
    pub format: u32,
    /// The sparse model's fingerprint (hex), `None` for a BM25-only index.
    pub sparse_model: Option<String>,
    /// BM25's parameters the index was created with.
    pub bm25: Bm25Params,
}

impl IndexMeta {
    /// The record for an index of `sparse_fingerprint`'s vectors (none:
    /// BM25 only).
    pub fn new(sparse_fingerprint: Option<u64>, bm25: Bm25Params) -> Self {
        Self {
            format: INDEX_FORMAT,
            sparse_model: sparse_fingerprint.map(|f| format!("{f:016x}")),
            bm25,
        }
    }
}

/// What the cluster holds under the index's name.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexState {
    /// No such index.
    Missing,
    /// An index rlrag did not create (no `_meta.rlrag`).
    Foreign,
    /// rlrag's index, with its record.
    Rlrag(IndexMeta),
}

/// A passage to index.
#[derive(Debug, Clone, Copy)]
pub struct IndexDoc<'a> {
    /// Its id (the index's `_id`).
    pub id: &'a str,
    /// Title (may be empty).
    pub title: &'a str,
    /// Text.
    pub text: &'a str,
    /// Its learned-sparse vector (none in a BM25-only index).
    pub sparse: Option<&'a SparseVector>,
}

/// An HTTP answer.
struct Reply {
    status: u16,
    body: Vec<u8>,
}

/// The cluster's own words about a refusal: `error.type: error.reason`
/// (the body's start when it is not the cluster's error JSON).
pub fn cluster_reason(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    match error {
        Some(Value::Object(e)) => {
            let kind = e.get("type").and_then(Value::as_str).unwrap_or("error");
            let reason = e.get("reason").and_then(Value::as_str).unwrap_or("");
            format!("{kind}: {reason}")
        }
        Some(Value::String(s)) => s.clone(),
        _ => {
            let text = String::from_utf8_lossy(body);
            text.chars().take(200).collect()
        }
    }
}

/// Index names OpenSearch and Elasticsearch accept (and that cannot step
/// out of the request path).
fn check_index_name(name: &str) -> Result<(), RouterError> {
    let bad = name.is_empty()
        || name.len() > 255
        || name == "."
        || name == ".."
        || name.starts_with(['-', '_', '+'])
        || name.chars().any(|c| {
            c.is_ascii_uppercase()
                || c.is_whitespace()
                || c.is_control()
                || matches!(
                    c,
                    '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':'
                )
        });
    if bad {
        return Err(invalid(
            "index",
            format!(
                "`{name}` is not an index name (lower-case, no spaces or \\/*?\"<>|,#:, \
                 not starting with -, _ or +, at most 255 bytes)"
            ),
        ));
    }
    Ok(())
}

/// A blocking client for one index of a cluster.
#[derive(Clone)]
pub struct Cluster {
    config: ClusterConfig,
    base: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the authorization header.
        f.debug_struct("Cluster")
            .field("url", &self.base)
            .field("index", &self.config.index)
            .field("flavour", &self.config.flavour)
            .finish()
    }
}

#[derive(Clone, Copy)]
enum Method {
    Get,
    Put,
    Post,
    Delete,
}

impl Cluster {
    /// A client for `config` (no request is made yet).
    pub fn new(config: ClusterConfig) -> Result<Self, RouterError> {
        if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
            return Err(invalid(
                "cluster url",
                format!("`{}` is not an http(s) URL", config.url),
            ));
        }
        check_index_name(&config.index)?;
        if config.timeout.is_zero() {
            return Err(invalid("cluster timeout", "must be more than 0 ms"));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Ok(Self {
            base: config.url.trim_end_matches('/').to_owned(),
            config,
            agent,
        })
    }

    /// The settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    fn limit_ms(&self) -> u64 {
        u64::try_from(self.config.timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// One request, asked again (with back-off) after a timeout, a failed
    /// connection or a busy status.
    fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<Reply, Fault> {
        let url = format!("{}/{path}", self.base);
        let mut last = Fault::Transport {
            detail: "no request was made".into(),
        };
        for attempt in 0..=self.config.retries {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100 << (attempt - 1).min(6)));
            }
            match self.once(method, &url, body) {
                Ok(reply) if matches!(reply.status, 429 | 502 | 503 | 504) => {
                    last = Fault::Http {
                        status: reply.status,
                    };
                }
                Ok(reply) => return Ok(reply),
                Err(fault) => last = fault,
            }
        }
        Err(last)
    }

    fn once(&self, method: Method, url: &str, body: Option<(&str, &[u8])>) -> Result<Reply, Fault> {
        let limit_ms = self.limit_ms();
        let failed = |e: ureq::Error| match e {
            ureq::Error::Timeout(_) => Fault::Timeout { limit_ms },
            other => Fault::Transport {
                detail: other.to_string(),
            },
        };
        let mut response = match (method, body) {
            (Method::Get, None) => self.authorized(self.agent.get(url)).call(),
            (Method::Delete, None) => self.authorized(self.agent.delete(url)).call(),
            (m, body) => {
                let r = match m {
                    Method::Put => self.agent.put(url),
                    _ => self.agent.post(url),
                };
                let (kind, bytes) = body.unwrap_or(("application/json", b"{}"));
                self.authorized(r).header("Content-Type", kind).send(bytes)
            }
        }
        .map_err(failed)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(failed)?;
        Ok(Reply { status, body })
    }

    /// `request` with the configured `Authorization` header, if any.
    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.config.authorization {
            Some(a) => request.header("Authorization", a),
            None => request,
        }
    }

    /// A request whose answer must be a success with a JSON body.
    fn json(
        &self,
        what: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, RouterError> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let reply = self
            .call(
                method,
                path,
                bytes.as_deref().map(|b| ("application/json", b)),
            )
            .map_err(|fault| self.error(what, fault, String::new()))?;
        self.success(what, reply)
    }

    fn success(&self, what: &'static str, reply: Reply) -> Result<Value, RouterError> {
        if !(200..300).contains(&reply.status) {
            let reason = cluster_reason(&reply.body);
            return Err(self.error(
                what,
                Fault::Http {
                    status: reply.status,
                },
                reason,
            ));
        }
        serde_json::from_slice(&reply.body).map_err(|e| {
            self.error(
                what,
                Fault::Malformed {
                    detail: format!("not JSON: {e}"),
                },
                String::new(),
            )
        })
    }

    fn error(&self, what: &'static str, fault: Fault, reason: String) -> RouterError {
        RouterError::Cluster {
            url: self.base.clone(),
            index: self.config.index.clone(),
            what,
            fault,
            reason,
        }
    }

    /// What the cluster holds under the index's name.
    pub fn state(&self) -> Result<IndexState, RouterError> {
        let what = "reading the index's mapping";
        let reply = self
            .call(
                Method::Get,
                &format!("{}/_mapping", self.config.index),
                None,
            )
            .map_err(|fault| self.error(what, fault, String::new()))?;
        if reply.status == 404 {
            return Ok(IndexState::Missing);
        }
        let mapping = self.success(what, reply)?;
        parse_state(&mapping).map_err(|fault| self.error(what, fault, String::new()))
    }

    /// The body that creates rlrag's index for `meta`.
    pub fn create_body(&self, meta: &IndexMeta) -> Value {
        let sparse_type = match self.config.flavour {
            Flavour::OpenSearch => "rank_features",
            Flavour::Elasticsearch => "sparse_vector",
        };
        let stored = json!({"type": "text", "index": false, "copy_to": CONTENT_FIELD});
        let mut properties = json!({
            "title": stored,
            "text": stored,
            CONTENT_FIELD: {"type": "text", "analyzer": "rlrag"},
        });
        let mut excludes = Vec::new();
        if meta.sparse_model.is_some() {
            properties[SPARSE_FIELD] = json!({ "type": sparse_type });
            excludes.push(SPARSE_FIELD);
        }
        json!({
            "settings": {
                "index": {
                    "similarity": {
                        "default": {"type": "BM25", "k1": meta.bm25.k1, "b": meta.bm25.b}
                    }
                },
                "analysis": {
                    "analyzer": {
                        "rlrag": {
                            "type": "custom",
                            "tokenizer": "standard",
                            "filter": ["lowercase", "rlrag_stop", "rlrag_stem"]
                        }
                    },
                    "filter": {
                        "rlrag_stop": {"type": "stop", "stopwords": "_english_"},
                        "rlrag_stem": {"type": "snowball", "language": "English"}
                    }
                }
            },
            "mappings": {
                "_meta": {"rlrag": meta},
                "_source": {"excludes": excludes},
                "properties": properties
            }
        })
    }

    /// Create the index for `meta`.
    pub fn create(&self, meta: &IndexMeta) -> Result<(), RouterError> {
        self.json(
            "creating the index",
            Method::Put,
            &self.config.index,
            Some(&self.create_body(meta)),
        )
        .map(drop)
    }

    /// Delete the index (a missing one is not an error).
    pub fn delete(&self) -> Result<(), RouterError> {
        let what = "deleting the index";
        let reply = self
            .call(Method::Delete, &self.config.index, None)
            .map_err(|fault| self.error(what, fault, String::new()))?;
        if reply.status == 404 {
            return Ok(());
        }
        self.success(what, reply).map(drop)
    }

    /// Which of `ids` the index holds.
    pub fn existing(&self, ids: &[&str]) -> Result<HashSet<String>, RouterError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        if ids.len() > MAX_BATCH {
            return Err(invalid(
                "batch",
                format!("{} ids in one check (at most {MAX_BATCH})", ids.len()),
            ));
        }
        let body = json!({"size": ids.len(), "_source": false, "query": {"ids": {"values": ids}}});
        let path = format!("{}/_search", self.config.index);
        let found = self.json(
            "checking which documents exist",
            Method::Post,
            &path,
            Some(&body),
        )?;
        let hits = found
            .pointer("/hits/hits")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                self.error(
                    "checking which documents exist",
                    Fault::Malformed {
                        detail: "no hits.hits in the answer".into(),
                    },
                    String::new(),
                )
            })?;
        Ok(hits
            .iter()
            .filter_map(|h| h.get("_id").and_then(Value::as_str))
            .map(str::to_owned)
            .collect())
    }

    /// The `_bulk` body that indexes `docs` (ids as `_id`: indexing again
    /// replaces, never duplicates).
    pub fn bulk_body(&self, docs: &[IndexDoc<'_>]) -> String {
        let mut out = String::new();
        for d in docs {
            let action = json!({"index": {"_index": self.config.index, "_id": d.id}});
            let mut source = json!({"title": d.title, "text": d.text});
            if let Some(v) = d.sparse {
                source[SPARSE_FIELD] = features(v);
            }
            let _ = writeln!(out, "{action}\n{source}");
        }
        out
    }

    /// Index `docs` in one `_bulk` request; any refused document fails the
    /// call with the cluster's reason (the batch can be sent again).
    pub fn bulk(&self, docs: &[IndexDoc<'_>]) -> Result<(), RouterError> {
        if docs.is_empty() {
            return Ok(());
        }
        if docs.len() > MAX_BATCH {
            return Err(invalid(
                "batch",
                format!(
                    "{} documents in one bulk request (at most {MAX_BATCH})",
                    docs.len()
                ),
            ));
        }
        let what = "bulk indexing";
        let body = self.bulk_body(docs);
        let reply = self
            .call(
                Method::Post,
                "_bulk",
                Some(("application/x-ndjson", body.as_bytes())),
            )
            .map_err(|fault| self.error(what, fault, String::new()))?;
        let answer = self.success(what, reply)?;
        let items = answer
            .get("items")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if answer.get("errors").and_then(Value::as_bool) == Some(true) {
            let refused = answer
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| i.get("index"))
                .find(|i| i.get("error").is_some());
            let reason = match refused {
                Some(i) => format!(
                    "document `{}`: {}",
                    i.get("_id").and_then(Value::as_str).unwrap_or("?"),
                    cluster_reason(&json!({"error": i["error"]}).to_string().into_bytes())
                ),
                None => "the cluster reported errors without naming a document".into(),
            };
            return Err(self.error(
                what,
                Fault::Malformed {
                    detail: "documents were refused".into(),
                },
                reason,
            ));
        }
        if items != docs.len() {
            return Err(self.error(
                what,
                Fault::Malformed {
                    detail: format!("{items} results for {} documents", docs.len()),
                },
                String::new(),
            ));
        }
        Ok(())
    }

    /// Make everything indexed so far searchable.
    pub fn refresh(&self) -> Result<(), RouterError> {
        let path = format!("{}/_refresh", self.config.index);
        self.json("refreshing the index", Method::Post, &path, None)
            .map(drop)
    }

    /// Documents in the index.
    pub fn count(&self) -> Result<u64, RouterError> {
        let path = format!("{}/_count", self.config.index);
        let answer = self.json("counting documents", Method::Get, &path, None)?;
        answer.get("count").and_then(Value::as_u64).ok_or_else(|| {
            self.error(
                "counting documents",
                Fault::Malformed {
                    detail: "no count in the answer".into(),
                },
                String::new(),
            )
        })
    }

    /// The search body of a BM25 query.
    pub fn bm25_body(query: &str, k: usize) -> Value {
        json!({
            "size": k,
            "_source": ["title", "text"],
            "query": {"match": {CONTENT_FIELD: {"query": query}}}
        })
    }

    /// The search body of a learned-sparse query (its heaviest
    /// [`MAX_QUERY_TERMS`] terms), `None` for an empty vector.
    pub fn sparse_body(&self, query: &SparseVector, k: usize) -> Option<Value> {
        let mut terms: Vec<(u32, f32)> = query
            .terms
            .iter()
            .copied()
            .filter(|(_, w)| w.is_finite() && *w > 0.0)
            .collect();
        if terms.is_empty() {
            return None;
        }
        terms.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        terms.truncate(MAX_QUERY_TERMS);
        let query = match self.config.flavour {
            Flavour::OpenSearch => {
                let should: Vec<Value> = terms
                    .iter()
                    .map(|(id, w)| {
                        json!({"rank_feature": {
                            "field": format!("{SPARSE_FIELD}.{id}"),
                            "linear": {},
                            "boost": w
                        }})
                    })
                    .collect();
                json!({"bool": {"should": should}})
            }
            Flavour::Elasticsearch => {
                let vector: serde_json::Map<String, Value> = terms
                    .iter()
                    .map(|(id, w)| (id.to_string(), json!(w)))
                    .collect();
                json!({"sparse_vector": {"field": SPARSE_FIELD, "query_vector": vector}})
            }
        };
        Some(json!({"size": k, "_source": ["title", "text"], "query": query}))
    }

    /// Run a search body; the hits, checked like any source's answer.
    fn search_body(&self, body: &Value, k: usize) -> Result<Vec<Hit>, Fault> {
        let path = format!("{}/_search", self.config.index);
        let bytes = body.to_string().into_bytes();
        let reply = self.call(Method::Post, &path, Some(("application/json", &bytes)))?;
        if !(200..300).contains(&reply.status) {
            return Err(Fault::Http {
                status: reply.status,
            });
        }
        parse_search(&reply.body, k)
    }

    /// The top `k` passages for `query` by the engine's BM25.
    pub fn search_bm25(&self, query: &str, k: usize) -> Result<Vec<Hit>, Fault> {
        if k == 0 {
            return Ok(Vec::new());
        }
        self.search_body(&Self::bm25_body(query, k), k)
    }

    /// The top `k` passages for a learned-sparse query vector.
    pub fn search_sparse(&self, query: &SparseVector, k: usize) -> Result<Vec<Hit>, Fault> {
        match self.sparse_body(query, k) {
            Some(body) if k > 0 => self.search_body(&body, k),
            _ => Ok(Vec::new()),
        }
    }
}

/// What a `GET <index>/_mapping` answer says the index is (never
/// [`IndexState::Missing`]: that is the 404).
pub fn parse_state(mapping: &Value) -> Result<IndexState, Fault> {
    // Keyed by the concrete index (the name may be an alias).
    let meta = mapping
        .as_object()
        .and_then(|m| m.values().next())
        .and_then(|i| i.pointer("/mappings/_meta/rlrag"));
    match meta {
        None => Ok(IndexState::Foreign),
        Some(m) => serde_json::from_value(m.clone())
            .map(IndexState::Rlrag)
            .map_err(|e| Fault::Malformed {
                detail: format!("_meta.rlrag is not rlrag's record: {e}"),
            }),
    }
}

/// The hits of a `_search` answer, checked like any source's answer
/// ([`check_reply`]: non-empty ids, finite scores, bounded text, at most
/// `k`, no repeats).
pub fn parse_search(body: &[u8], k: usize) -> Result<Vec<Hit>, Fault> {
    let answer: SearchAnswer = serde_json::from_slice(body).map_err(|e| Fault::Malformed {
        detail: format!("not a search answer: {e}"),
    })?;
    let hits = answer
        .hits
        .hits
        .into_iter()
        .map(|h| {
            let score = h.score.ok_or_else(|| Fault::Malformed {
                detail: format!("hit `{}` has no score", h.id),
            })?;
            let source = h.source.unwrap_or_default();
            Ok(Hit {
                id: h.id,
                title: source.title,
                text: source.text,
                score,
            })
        })
        .collect::<Result<Vec<_>, Fault>>()?;
    let mut lists = check_reply(SearchResponse { hits: vec![hits] }, 1, k)?;
    Ok(lists.pop().unwrap_or_default())
}

/// A sparse vector as feature name (vocabulary id) → weight.
fn features(v: &SparseVector) -> Value {
    let map: serde_json::Map<String, Value> = v
        .terms
        .iter()
        .filter(|(_, w)| w.is_finite() && *w > 0.0)
        .map(|(id, w)| (id.to_string(), json!(w)))
        .collect();
    Value::Object(map)
}

#[derive(Deserialize)]
struct SearchAnswer {
    hits: SearchHits,
}

#[derive(Deserialize)]
struct SearchHits {
    hits: Vec<RawHit>,
}

#[derive(Deserialize)]
struct RawHit {
    #[serde(rename = "_id")]
    id: String,
    #[serde(rename = "_score")]
    score: Option<f32>,
    #[serde(rename = "_source")]
    source: Option<RawSource>,
}

#[derive(Deserialize, Default)]
struct RawSource {
    #[serde(default)]
    title: String,
    #[serde(default)]
    text: String,
}

/// An rlrag index on a cluster, searched in one mode: BM25 by the engine,
/// learned-sparse from the query's own vector, or both fused as the local
/// hybrid fuses them.
pub struct OpenSearchSource {
    cluster: Cluster,
    mode: SearchMode,
    encoder: Option<Arc<Encoder>>,
    fusion: Fusion,
}

impl std::fmt::Debug for OpenSearchSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSearchSource")
            .field("cluster", &self.cluster)
            .field("mode", &self.mode)
            .finish()
    }
}

impl OpenSearchSource {
    /// Search `cluster`'s rlrag index in `mode` (`bm25`, `sparse` or
    /// `hybrid`); sparse and hybrid encode queries with `encoder`, which
    /// must be the model that encoded the documents (its fingerprint is
    /// checked against the index's record). Asks the cluster once.
    pub fn connect(
        cluster: Cluster,
        mode: SearchMode,
        encoder: Option<(Arc<Encoder>, u64)>,
        fusion: Fusion,
    ) -> Result<Self, RouterError> {
        let needs_sparse = match mode {
            SearchMode::Bm25 => false,
            SearchMode::Sparse | SearchMode::Hybrid => true,
            other => {
                return Err(invalid(
                    "cluster mode",
                    format!("a cluster is searched by bm25, sparse or hybrid, not `{other}`"),
                ));
            }
        };
        let meta = match cluster.state()? {
            IndexState::Rlrag(meta) => meta,
            IndexState::Missing => {
                return Err(invalid(
                    "index",
                    format!(
                        "the cluster has no index `{}` (create it with `trainer index-opensearch`)",
                        cluster.config.index
                    ),
                ));
            }
            IndexState::Foreign => {
                return Err(invalid(
                    "index",
                    format!(
                        "`{}` was not created by rlrag (its mapping has no _meta.rlrag)",
                        cluster.config.index
                    ),
                ));
            }
        };
        if meta.format != INDEX_FORMAT {
            return Err(invalid(
                "index",
                format!(
                    "`{}` has layout {} (this build reads {INDEX_FORMAT})",
                    cluster.config.index, meta.format
                ),
            ));
        }
        let encoder = if needs_sparse {
            let Some(indexed) = &meta.sparse_model else {
                return Err(invalid(
                    "cluster mode",
                    format!(
                        "`{}` holds no sparse vectors (indexed for BM25 only)",
                        cluster.config.index
                    ),
                ));
            };
            let Some((encoder, fingerprint)) = encoder else {
                return Err(invalid(
                    "cluster mode",
                    format!("searching in `{mode}` mode encodes queries: give the sparse model"),
                ));
            };
            let ours = format!("{fingerprint:016x}");
            if &ours != indexed {
                return Err(invalid(
                    "sparse model",
                    format!(
                        "`{}` was indexed with sparse model {indexed}, the queries would be \
                         encoded by {ours}: use the model that indexed it",
                        cluster.config.index
                    ),
                ));
            }
            Some(encoder)
        } else {
            None
        };
        Ok(Self {
            cluster,
            mode,
            encoder,
            fusion,
        })
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The mode.
    pub fn mode(&self) -> SearchMode {
        self.mode
    }

    /// One query's top `k` (its sparse vector already encoded where the
    /// mode reads one).
    fn search_one(&self, query: &str, vector: &SparseVector, k: usize) -> Result<Vec<Hit>, Fault> {
        match self.mode {
            SearchMode::Bm25 => self.cluster.search_bm25(query, k),
            SearchMode::Sparse => self.cluster.search_sparse(vector, k),
            _ => {
                let depth = k.max(HYBRID_DEPTH);
                let bm25 = self.cluster.search_bm25(query, depth)?;
                let sparse = self.cluster.search_sparse(vector, depth)?;
                let as_ranked = |list: &[Hit]| -> Vec<rlrag_retriever::Hit> {
                    list.iter()
                        .map(|h| rlrag_retriever::Hit::new(h.id.clone(), h.score))
                        .collect()
                };
                let fused = fuse(
                    &[as_ranked(&bm25), as_ranked(&sparse)],
                    &[1.0, 1.0],
                    self.fusion,
                    k,
                );
                let mut passages: HashMap<String, Hit> = sparse
                    .into_iter()
                    .chain(bm25)
                    .map(|h| (h.id.clone(), h))
                    .collect();
                Ok(fused
                    .into_iter()
                    .filter_map(|f| {
                        passages.remove(&f.id).map(|h| Hit {
                            score: f.score,
                            ..h
                        })
                    })
                    .collect())
            }
        }
    }
}

impl Source for OpenSearchSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Network
    }

    fn search<'a>(&'a self, queries: &'a [String], k: usize) -> SourceFuture<'a> {
        Box::pin(async move {
            let vectors = match &self.encoder {
                Some(encoder) => {
                    let texts: Vec<&str> = queries.iter().map(String::as_str).collect();
                    encoder
                        .encode_sparse_async(&texts)
                        .await
                        .map_err(|e| Fault::Transport {
                            detail: format!("encoding the query: {e}"),
                        })?
                }
                None => vec![SparseVector::default(); queries.len()],
            };
            let this = Self {
                cluster: self.cluster.clone(),
                mode: self.mode,
                encoder: None,
                fusion: self.fusion,
            };
            let queries = queries.to_vec();
            let joined = on_thread(move || {
                queries
                    .iter()
                    .zip(&vectors)
                    .map(|(q, v)| this.search_one(q, v, k))
                    .collect::<Result<Vec<_>, Fault>>()
            });
            joined.await.unwrap_or_else(|| {
                Err(Fault::Transport {
                    detail: "the request thread stopped".into(),
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(flavour: Flavour) -> Cluster {
        Cluster::new(ClusterConfig {
            flavour,
            ..ClusterConfig::new("http://127.0.0.1:9/", "docs")
        })
        .expect("valid")
    }

    #[test]
    fn index_names_and_urls_are_checked() {
        for bad in [
            "", "Docs", "a b", "../x", "a/b", "_x", "-x", "a?b", ".", "a:b",
        ] {
            let err = Cluster::new(ClusterConfig::new("http://h:9200", bad)).expect_err(bad);
            assert!(err.to_string().contains("not an index name"), "{err}");
        }
        assert!(Cluster::new(ClusterConfig::new("ftp://h", "docs")).is_err());
        let c = Cluster::new(ClusterConfig::new("http://h:9200/", "docs-1.v2")).expect("valid");
        assert_eq!(c.base, "http://h:9200");
    }

    #[test]
    fn sparse_queries_are_dot_products_in_each_flavour() {
        let v = SparseVector {
            terms: vec![(7, 0.5), (1012, 2.0), (3, f32::NAN)],
        };
        let os = cluster(Flavour::OpenSearch)
            .sparse_body(&v, 5)
            .expect("terms");
        let should = os["query"]["bool"]["should"].as_array().expect("should");
        assert_eq!(should.len(), 2, "non-finite weights are dropped");
        assert_eq!(should[0]["rank_feature"]["field"], "sparse.1012");
        assert_eq!(should[0]["rank_feature"]["boost"], 2.0);
        assert!(should[0]["rank_feature"]["linear"].is_object());
        assert_eq!(os["size"], 5);
        let es = cluster(Flavour::Elasticsearch)
            .sparse_body(&v, 5)
            .expect("terms");
        assert_eq!(es["query"]["sparse_vector"]["field"], "sparse");
        assert_eq!(es["query"]["sparse_vector"]["query_vector"]["7"], 0.5);
        assert!(
            cluster(Flavour::OpenSearch)
                .sparse_body(&SparseVector::default(), 5)
                .is_none()
        );
        let many = SparseVector {
            terms: (0..3000).map(|i| (i, 1.0 + i as f32)).collect(),
        };
        let body = cluster(Flavour::OpenSearch)
            .sparse_body(&many, 5)
            .expect("terms");
        let should = body["query"]["bool"]["should"].as_array().expect("should");
        assert_eq!(should.len(), MAX_QUERY_TERMS);
        assert_eq!(
            should[0]["rank_feature"]["field"], "sparse.2999",
            "heaviest kept"
        );
    }

    #[test]
    fn the_index_layout_names_its_model_and_flavour() {
        let meta = IndexMeta::new(Some(0xabc), Bm25Params { k1: 1.2, b: 0.5 });
        assert_eq!(meta.sparse_model.as_deref(), Some("0000000000000abc"));
        let os = cluster(Flavour::OpenSearch).create_body(&meta);
        assert_eq!(
            os["mappings"]["properties"]["sparse"]["type"],
            "rank_features"
        );
        assert_eq!(os["mappings"]["_meta"]["rlrag"]["format"], INDEX_FORMAT);
        assert_eq!(
            os["settings"]["index"]["similarity"]["default"]["k1"],
            1.2f32
        );
        let es = cluster(Flavour::Elasticsearch).create_body(&meta);
        assert_eq!(
            es["mappings"]["properties"]["sparse"]["type"],
            "sparse_vector"
        );
        let bm25_only =
            cluster(Flavour::OpenSearch).create_body(&IndexMeta::new(None, Bm25Params::default()));
        assert!(bm25_only["mappings"]["properties"].get("sparse").is_none());
        let back: IndexMeta =
            serde_json::from_value(os["mappings"]["_meta"]["rlrag"].clone()).expect("round trip");
        assert_eq!(back, meta);
    }

    #[test]
    fn bulk_bodies_are_one_action_and_one_source_per_line_pair() {
        let v = SparseVector {
            terms: vec![(5, 1.5), (9, 0.0)],
        };
        let docs = [
            IndexDoc {
                id: "a\"1",
                title: "T",
                text: "line\nbreak",
                sparse: Some(&v),
            },
            IndexDoc {
                id: "b",
                title: "",
                text: "x",
                sparse: None,
            },
        ];
        let body = cluster(Flavour::OpenSearch).bulk_body(&docs);
        let lines: Vec<Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON value per line"))
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["index"]["_id"], "a\"1");
        assert_eq!(lines[1]["text"], "line\nbreak");
        assert_eq!(
            lines[1]["sparse"],
            json!({"5": 1.5}),
            "zero weights are not features"
        );
        assert!(lines[3].get("sparse").is_none());
    }

    #[test]
    fn cluster_answers_are_checked() {
        let ok = br#"{"hits": {"hits": [{"_id": "a", "_score": 2.5, "_source": {"title": "T", "text": "x"}},
            {"_id": "a", "_score": 1.0, "_source": {"text": "again"}}, {"_id": "b", "_score": 0.5}]}}"#;
        let hits = parse_search(ok, 10).expect("valid");
        let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"], "repeats dropped");
        assert_eq!((hits[0].title.as_str(), hits[1].text.as_str()), ("T", ""));
        assert_eq!(parse_search(ok, 1).expect("valid").len(), 1);
        for (bad, why) in [
            (
                &br#"{"hits": {"hits": [{"_id": "a", "_score": null}]}}"#[..],
                "no score",
            ),
            (
                br#"{"hits": {"hits": [{"_id": "", "_score": 1}]}}"#,
                "empty id",
            ),
            (br#"{"took": 1}"#, "not a search answer"),
            (b"<html>", "not a search answer"),
        ] {
            let err = parse_search(bad, 10).expect_err(why);
            assert!(err.to_string().contains(why), "{err}");
        }
        let mapping = json!({"docs-v1": {"mappings": {"_meta": {"rlrag": {
            "format": 1, "sparse_model": null, "bm25": {"k1": 1.5, "b": 0.75}}}}}});
        assert!(
            matches!(parse_state(&mapping), Ok(IndexState::Rlrag(m)) if m.sparse_model.is_none())
        );
        assert_eq!(
            parse_state(&json!({"x": {"mappings": {}}})),
            Ok(IndexState::Foreign)
        );
        let lying = json!({"x": {"mappings": {"_meta": {"rlrag": {"format": "one"}}}}});
        assert!(parse_state(&lying).is_err());
    }

    #[test]
    fn refusals_carry_the_clusters_reason() {
        let body = br#"{"error":{"type":"resource_already_exists_exception","reason":"index [x] already exists"},"status":400}"#;
        assert_eq!(
            cluster_reason(body),
            "resource_already_exists_exception: index [x] already exists"
        );
        assert_eq!(
            cluster_reason(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }
}
