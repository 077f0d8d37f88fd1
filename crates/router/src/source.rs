//! Where passages come from: the local index ([`LocalSource`]) and a network
//! search endpoint (the HTTP client natively, a JS callback in the browser),
//! behind one [`Source`] trait, and the network protocol both speak.
//!
//! Protocol: the request is `{"queries": [..], "k": K}`; the answer is
//! `{"hits": [[{"id", "title", "text", "score"}, ..], ..]}`, one list per
//! query, best first. [`parse_reply`] checks an answer against its request.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;

use rlrag_retriever::Augmentation;
use rlrag_retriever::engine::{Engine, MAX_QUERY_BYTES, SearchMode};
use serde::{Deserialize, Serialize};

use crate::SourceKind;
use crate::error::Fault;

/// A passage a source returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Document id (unique within the source's corpus).
    pub id: String,
    /// Title (may be empty).
    #[serde(default)]
    pub title: String,
    /// Passage text.
    pub text: String,
    /// The source's score (only comparable within one list).
    pub score: f32,
}

impl Hit {
    /// An engine's hit as a passage of its corpus (`None` for an id the
    /// engine does not hold; the explanation is not part of the protocol).
    pub fn from_engine(engine: &Engine, hit: rlrag_retriever::Hit) -> Option<Self> {
        let doc = engine.document(&hit.id)?;
        Some(Self {
            title: doc.title.clone(),
            text: doc.text.clone(),
            id: hit.id,
            score: hit.score,
        })
    }
}

/// The network request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRequest {
    /// Up to [`crate::MAX_SUB_QUERIES`] queries, answered together.
    pub queries: Vec<String>,
    /// Hits per query.
    pub k: usize,
}

/// The network answer body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResponse {
    /// One list per query, in request order.
    pub hits: Vec<Vec<Hit>>,
}

/// Longest passage text accepted from a source (a source that sends more lies).
pub const MAX_HIT_TEXT_BYTES: usize = 64 * 1024;

/// Check a decoded answer against its request: one list per query, every hit
/// with a non-empty id, a finite score and at most [`MAX_HIT_TEXT_BYTES`] of
/// text. Lists longer than `k` are cut to `k`; a hit repeated in one list
/// keeps its first place.
pub fn check_reply(
    mut reply: SearchResponse,
    queries: usize,
    k: usize,
) -> Result<Vec<Vec<Hit>>, Fault> {
    if reply.hits.len() != queries {
        return Err(Fault::Malformed {
            detail: format!("{} hit lists for {queries} queries", reply.hits.len()),
        });
    }
    for list in &mut reply.hits {
        let mut seen = std::collections::HashSet::new();
        list.retain(|h| seen.insert(h.id.clone()));
        list.truncate(k);
        for h in list.iter() {
            if h.id.is_empty() {
                return Err(Fault::Malformed {
                    detail: "a hit has an empty id".into(),
                });
            }
            if !h.score.is_finite() {
                return Err(Fault::Malformed {
                    detail: format!("hit `{}` has a non-finite score", h.id),
                });
            }
            if h.text.len() > MAX_HIT_TEXT_BYTES || h.title.len() > MAX_HIT_TEXT_BYTES {
                return Err(Fault::Malformed {
                    detail: format!("hit `{}` is longer than {MAX_HIT_TEXT_BYTES} bytes", h.id),
                });
            }
        }
    }
    Ok(reply.hits)
}

/// Decode and check a JSON answer (see [`check_reply`]).
pub fn parse_reply(body: &[u8], queries: usize, k: usize) -> Result<Vec<Vec<Hit>>, Fault> {
    let reply: SearchResponse = serde_json::from_slice(body).map_err(|e| Fault::Malformed {
        detail: format!("not the search protocol's JSON: {e}"),
    })?;
    check_reply(reply, queries, k)
}

/// What a source search returns: one hit list per query, or the fault.
pub type SourceFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Vec<Hit>>, Fault>> + 'a>>;

/// A place to search. Not `Send`: browser sources hold JS values.
pub trait Source {
    /// Local or network (what the policy's actions name, and what costs).
    fn kind(&self) -> SourceKind;
    /// The top `k` hits for each query, in query order.
    fn search<'a>(&'a self, queries: &'a [String], k: usize) -> SourceFuture<'a>;
}

/// What an augmenter returns: the hypothetical document for a query.
pub type AugmentFuture<'a> = Pin<Box<dyn Future<Output = Result<String, Fault>> + 'a>>;

/// Writes the hypothetical document a local search mixes into its query
/// (Reinforced-IR's query augmentation, HyDE): an LLM natively or in the
/// page.
pub trait Augmenter {
    /// A passage that would answer `query` (empty: no augmentation).
    fn document<'a>(&'a self, query: &'a str) -> AugmentFuture<'a>;
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut_to(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// An engine the local source owns (native) or borrows (the browser
/// binding, where the page's engine is shared).
enum EngineRef<'e> {
    Owned(Box<Engine>),
    Borrowed(&'e Engine),
}

/// The in-process index: an [`Engine`] searched in one mode, each query
/// optionally augmented with a hypothetical document.
pub struct LocalSource<'e> {
    engine: EngineRef<'e>,
    mode: SearchMode,
    augment: Option<(Box<dyn Augmenter + 'e>, f32)>,
    augment_failures: Cell<u32>,
}

fn check_mode(engine: &Engine, mode: SearchMode) -> Result<(), crate::RouterError> {
    if engine.modes().contains(&mode) {
        Ok(())
    } else {
        Err(crate::error::invalid(
            "local mode",
            format!("the local engine cannot search in `{}` mode", mode.name()),
        ))
    }
}

impl LocalSource<'static> {
    /// Search `engine` in `mode` (it must be one of the engine's modes).
    pub fn new(engine: Engine, mode: SearchMode) -> Result<Self, crate::RouterError> {
        check_mode(&engine, mode)?;
        Ok(Self {
            engine: EngineRef::Owned(Box::new(engine)),
            mode,
            augment: None,
            augment_failures: Cell::new(0),
        })
    }
}

impl<'e> LocalSource<'e> {
    /// Search a borrowed `engine` in `mode`.
    pub fn borrowed(engine: &'e Engine, mode: SearchMode) -> Result<Self, crate::RouterError> {
        check_mode(engine, mode)?;
        Ok(Self {
            engine: EngineRef::Borrowed(engine),
            mode,
            augment: None,
            augment_failures: Cell::new(0),
        })
    }

    /// Mix `augmenter`'s hypothetical document into every query at
    /// `weight` (from 0 to 1; Reinforced-IR uses 0.2). A failed augmenter
    /// costs the augmentation, not the search: that query is searched as
    /// it is, and counted ([`LocalSource::augment_failures`]).
    pub fn with_augmenter(
        mut self,
        augmenter: Box<dyn Augmenter + 'e>,
        weight: f32,
    ) -> Result<Self, crate::RouterError> {
        if !(0.0..=1.0).contains(&weight) {
            return Err(crate::error::invalid(
                "augment weight",
                format!("the weight is {weight} (from 0 to 1)"),
            ));
        }
        self.augment = Some((augmenter, weight));
        Ok(self)
    }

    /// Queries searched without their augmentation because the augmenter
    /// failed.
    pub fn augment_failures(&self) -> u32 {
        self.augment_failures.get()
    }

    /// The engine (for background sensing in BM25 mode, and its corpus).
    pub fn engine(&self) -> &Engine {
        match &self.engine {
            EngineRef::Owned(e) => e,
            EngineRef::Borrowed(e) => e,
        }
    }
}

impl Source for LocalSource<'_> {
    fn kind(&self) -> SourceKind {
        SourceKind::Local
    }

    fn search<'a>(&'a self, queries: &'a [String], k: usize) -> SourceFuture<'a> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(queries.len());
            let engine = self.engine();
            for q in queries {
                let document = match &self.augment {
                    Some((augmenter, weight)) => match augmenter.document(q).await {
                        // A longer document than a query may be keeps its
                        // start (encoders read only the start anyway).
                        Ok(d) => Some((cut_to(d, MAX_QUERY_BYTES), *weight)),
                        Err(_) => {
                            self.augment_failures.set(self.augment_failures.get() + 1);
                            None
                        }
                    },
                    None => None,
                };
                let augmentation = document.as_ref().map(|(d, weight)| Augmentation {
                    document: d,
                    weight: *weight,
                });
                let hits = engine
                    .search_augmented(q, augmentation, k, self.mode, false, 0)
                    .await
                    .map_err(|e| Fault::Transport {
                        detail: e.to_string(),
                    })?;
                out.push(
                    hits.into_iter()
                        .filter_map(|h| Hit::from_engine(engine, h))
                        .collect(),
                );
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, score: f32) -> Hit {
        Hit {
            id: id.into(),
            title: String::new(),
            text: "t".into(),
            score,
        }
    }

    #[test]
    fn replies_are_checked_against_the_request() {
        let ok = br#"{"hits": [[{"id": "a", "text": "x", "score": 1.5}], []]}"#;
        let lists = parse_reply(ok, 2, 10).expect("valid");
        assert_eq!(lists[0][0].id, "a");
        assert!(lists[1].is_empty());
        for (body, why) in [
            (&br#"{"hits": [[]]}"#[..], "1 hit lists for 2 queries"),
            (
                br#"{"hits": [[{"id": "", "text": "x", "score": 1}], []]}"#,
                "empty id",
            ),
            (
                br#"{"hits": [[{"id": "a", "score": 1}], []]}"#,
                "not the search protocol",
            ),
            (br#"<html>busy</html>"#, "not the search protocol"),
            (
                br#"{"hits": [[{"id": "a", "text": "x", "score": "high"}], []]}"#,
                "not the search protocol",
            ),
        ] {
            let err = parse_reply(body, 2, 10).expect_err(why);
            assert!(err.to_string().contains(why), "{err} lacks {why}");
        }
    }

    #[test]
    fn long_lists_are_cut_and_repeats_dropped() {
        let reply = SearchResponse {
            hits: vec![vec![
                hit("a", 3.0),
                hit("a", 2.0),
                hit("b", 1.0),
                hit("c", 0.5),
            ]],
        };
        let lists = check_reply(reply, 1, 2).expect("valid");
        let ids: Vec<_> = lists[0].iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        let nan = SearchResponse {
            hits: vec![vec![hit("a", f32::NAN)]],
        };
        assert!(matches!(
            check_reply(nan, 1, 2),
            Err(Fault::Malformed { .. })
        ));
    }
}
