//! Hypothetical documents (HyDE; Reinforced-IR's query augmentation): a
//! generator writes a passage that would answer a query, cached as JSONL so
//! a second run asks nothing. Self-boost samples several per query for its
//! RLRF preference pairs; `eval --augment` and the router mix one into
//! each query ([`rlrag_retriever::Augmentation`]).

use std::path::{Path, PathBuf};

use rlrag_retriever::engine::AUGMENT_WEIGHT;
use rlrag_retriever::hash::{fnv1a_str, seed_from};
use rlrag_router::Fault;
use rlrag_router::llm::LlmClient;
use rlrag_router::source::{AugmentFuture, Augmenter};
use serde::{Deserialize, Serialize};

use crate::EvalError;
use crate::cache::JsonlCache;
use crate::error::{io, setting};

/// Query augmentation at search time (Reinforced-IR's RLRF, HyDE): each
/// query searched as `(1 − w)·e(query) + w·e(document)` with a hypothetical
/// document a generator wrote for it (greedy, so runs repeat). The
/// generator is the command's own setting.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct AugmentSettings {
    /// Mix a hypothetical document into every query (needs --generator, or
    /// every query's document in --augment-cache).
    #[cfg_attr(feature = "clap", arg(long))]
    pub augment: bool,
    /// The hypothetical document's share w of the query (0 to 1).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = AUGMENT_WEIGHT))]
    pub augment_weight: f32,
    /// The longest hypothetical document, in tokens.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 128))]
    pub augment_tokens: u32,
    /// The JSONL cache of hypothetical documents (default:
    /// `hyde-<dataset>-<generator model>.jsonl` in --cache, else in
    /// target/eval-cache).
    #[cfg_attr(feature = "clap", arg(long))]
    pub augment_cache: Option<PathBuf>,
}

impl Default for AugmentSettings {
    fn default() -> Self {
        Self {
            augment: false,
            augment_weight: AUGMENT_WEIGHT,
            augment_tokens: 128,
            augment_cache: None,
        }
    }
}

impl AugmentSettings {
    /// The cache file for `dataset`'s documents written by
    /// `generator_model`; `index_cache` is --cache.
    pub fn cache_path(
        &self,
        dataset: &str,
        generator_model: &str,
        index_cache: Option<&Path>,
    ) -> PathBuf {
        self.augment_cache.clone().unwrap_or_else(|| {
            let name: String = format!("hyde-{dataset}-{generator_model}.jsonl")
                .chars()
                .map(|c| {
                    if c.is_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            index_cache
                .unwrap_or(Path::new("target/eval-cache"))
                .join(name)
        })
    }

    /// Refuses a weight outside [0, 1] and augmentation settings without
    /// --augment; `generator` is whether a generator is given.
    pub fn validate(&self, generator: bool) -> Result<(), EvalError> {
        if !(0.0..=1.0).contains(&self.augment_weight) {
            return Err(setting(
                "--augment-weight",
                format!("--augment-weight is {} (from 0 to 1)", self.augment_weight),
            ));
        }
        if self.augment_tokens == 0 {
            return Err(setting(
                "--augment-tokens",
                "--augment-tokens must be at least 1",
            ));
        }
        if !self.augment && self.augment_cache.is_some() {
            return Err(setting(
                "--augment",
                "--augment-cache augments queries only with --augment",
            ));
        }
        if self.augment && !generator && self.augment_cache.is_none() {
            return Err(setting(
                "--augment",
                "--augment needs --generator <url> (or every document cached in --augment-cache)",
            ));
        }
        Ok(())
    }
}

/// How hypothetical documents are sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Sampling temperature (0: greedy).
    pub temperature: f32,
    /// Nucleus sampling's probability mass.
    pub top_p: f32,
    /// The longest document, in tokens.
    pub max_tokens: u32,
    /// With the query and the sample's number, the generator's seed.
    pub seed: u64,
}

impl Sampling {
    /// One document per query at search time: greedy, so an evaluation
    /// is repeatable.
    pub fn search(max_tokens: u32) -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            max_tokens,
            seed: 0,
        }
    }
}

impl Sampling {
    /// The settings a document depends on, as a cache record stores them
    /// (the seed is derived per query and sample).
    fn tag(&self) -> String {
        format!(
            "temperature {} top_p {} max_tokens {} seed {}",
            self.temperature, self.top_p, self.max_tokens, self.seed
        )
    }
}

/// A cached hypothetical document (a line of the cache file), with the
/// sampling it came from: records of other settings are not served.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Hypothetical {
    query: String,
    sample: usize,
    #[serde(default)]
    sampling: String,
    text: String,
}

/// Hypothetical documents by query and sample number: from the cache
/// file, else from the generator (then appended to the cache).
pub struct Hypotheticals {
    client: Option<LlmClient>,
    cache: JsonlCache<(String, usize, String), String>,
    sampling: Sampling,
}

impl Hypotheticals {
    /// The documents cached in `path` (created when missing) that were
    /// sampled with `sampling`; misses are asked of `client`. Without a
    /// client only cached documents can be had.
    pub fn open(
        path: PathBuf,
        client: Option<LlmClient>,
        sampling: Sampling,
    ) -> Result<Self, EvalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        }
        Ok(Self {
            client,
            cache: JsonlCache::open(path, |h: Hypothetical| {
                ((h.query, h.sample, h.sampling), h.text)
            })?,
            sampling,
        })
    }

    /// The `sample`-th hypothetical document for `query` (empty when the
    /// generator wrote nothing).
    pub fn get(&mut self, query: &str, sample: usize) -> Result<String, EvalError> {
        let key = (query.to_string(), sample, self.sampling.tag());
        if let Some(text) = self.cache.get(&key) {
            return Ok(text);
        }
        let Some(client) = &self.client else {
            return Err(setting(
                "--augment",
                format!(
                    "no hypothetical document is cached for the query {query:?}, and no generator is given"
                ),
            ));
        };
        let s = self.sampling;
        let seed = seed_from(&[s.seed, fnv1a_str(query), sample as u64]);
        let text =
            client.hypothetical_document(query, s.temperature, s.top_p, s.max_tokens, seed)?;
        let record = Hypothetical {
            query: query.to_string(),
            sample,
            sampling: key.2.clone(),
            text: text.clone(),
        };
        self.cache.insert(key, text.clone(), &record)?;
        Ok(text)
    }

    /// Documents the generator wrote since the cache was opened.
    pub fn made(&self) -> usize {
        self.cache.made
    }
}

/// [`Hypotheticals`] as the router's augmenter: each query's first
/// document. Blocking (the native router runs on one thread).
pub struct CachedAugmenter(std::cell::RefCell<Hypotheticals>);

impl CachedAugmenter {
    /// Serve `hypotheticals`.
    pub fn new(hypotheticals: Hypotheticals) -> Self {
        Self(std::cell::RefCell::new(hypotheticals))
    }
}

impl Augmenter for CachedAugmenter {
    fn document<'a>(&'a self, query: &'a str) -> AugmentFuture<'a> {
        Box::pin(async move {
            let mut h = self.0.try_borrow_mut().map_err(|_| Fault::Transport {
                detail: "the augmenter is busy".into(),
            })?;
            h.get(query, 0).map_err(|e| Fault::Transport {
                detail: e.to_string(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cached documents are served without a generator; a miss without
    /// one is a clear error; a cache line cut short is skipped.
    #[test]
    fn cached_documents_need_no_generator() {
        let dir = std::env::temp_dir().join(format!("rlrag-hyde-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("hyde.jsonl");
        let tag = Sampling::search(64).tag();
        std::fs::write(
            &path,
            format!(
                "{{\"query\":\"q one\",\"sample\":0,\"sampling\":\"{tag}\",\"text\":\"a passage\"}}\n\
                 {{\"query\":\"q three\",\"sample\":0,\"sampling\":\"temperature 0.9 top_p 0.9 max_tokens 64 seed 0\",\"text\":\"hot\"}}\n\
                 {{\"query\":\"q two\",\"sam"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut h =
            Hypotheticals::open(path, None, Sampling::search(64)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            h.get("q one", 0).unwrap_or_else(|e| panic!("{e}")),
            "a passage"
        );
        // A line cut short, and a document sampled otherwise, are misses.
        for query in ["q two", "q three"] {
            let miss = h.get(query, 0).err().map(|e| e.to_string());
            assert!(
                miss.as_deref().is_some_and(|m| m.contains("no generator")),
                "{miss:?}"
            );
        }
        assert_eq!(h.made(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
