//! Dataset loaders: BEIR, original HotpotQA JSON, and a plain QA format.
//!
//! Every loader returns a [`Dataset`]: the corpus, the queries of one split
//! with their labels (graded judgements and/or answers), and a [`LoadReport`]
//! that counts everything that did not fit (judgements for unknown documents,
//! judged queries without text, …) — nothing is dropped silently.
//!
//! Splits: BEIR sets use their `qrels/<split>.tsv` files. Sets without split
//! files (`hotpotqa`, `qa`) have `all` (the default) and a fixed, seeded
//! partition into `train` (80 %) and `test` (20 %) by a hash of the query id,
//! so the same question always lands in the same split.

mod beir;
mod hotpotqa;
mod qa;
mod split;

pub use split::Split;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::{Document, Query, RetrieverError};

/// The on-disk layout of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetFormat {
    /// `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`.
    Beir,
    /// The original HotpotQA JSON (plus an optional `corpus.json` beside it).
    Hotpotqa,
    /// `corpus.jsonl` and `qa.jsonl` with answers and optional gold ids.
    Qa,
}

impl fmt::Display for DatasetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Beir => "beir",
            Self::Hotpotqa => "hotpotqa",
            Self::Qa => "qa",
        })
    }
}

impl FromStr for DatasetFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "beir" => Ok(Self::Beir),
            "hotpotqa" => Ok(Self::Hotpotqa),
            "qa" => Ok(Self::Qa),
            other => Err(format!(
                "unknown format `{other}` (expected beir, hotpotqa or qa)"
            )),
        }
    }
}

impl DatasetFormat {
    /// Recognise the format of a dataset path.
    pub fn detect(path: &Path) -> Result<Self, RetrieverError> {
        if path.is_file() {
            return if path.extension().is_some_and(|e| e == "json") {
                Ok(Self::Hotpotqa)
            } else {
                Err(RetrieverError::UnknownFormat {
                    path: path.to_path_buf(),
                    reason: "a file that is not HotpotQA `.json`".into(),
                })
            };
        }
        if !path.is_dir() {
            return Err(RetrieverError::MissingFile {
                path: path.to_path_buf(),
                what: "dataset (no such file or directory)",
            });
        }
        let has = |name: &str| path.join(name).is_file();
        if has("corpus.jsonl") && has("queries.jsonl") {
            Ok(Self::Beir)
        } else if has("corpus.jsonl") && has("qa.jsonl") {
            Ok(Self::Qa)
        } else if hotpotqa::question_file(path).is_ok() {
            Ok(Self::Hotpotqa)
        } else {
            Err(RetrieverError::UnknownFormat {
                path: path.to_path_buf(),
                reason: "no corpus.jsonl + queries.jsonl (beir), corpus.jsonl + qa.jsonl (qa) \
                         or HotpotQA .json file"
                    .into(),
            })
        }
    }

    /// The split used when none is given.
    pub fn default_split(self) -> Split {
        match self {
            Self::Beir => Split::Test,
            Self::Hotpotqa | Self::Qa => Split::All,
        }
    }
}

/// What loading found that did not fit; reported, never silently dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    /// Judgements or gold ids that name a document not in the corpus (kept:
    /// they count against recall, as in BEIR).
    pub unknown_gold_docs: usize,
    /// A few of those ids, for the message.
    pub unknown_gold_examples: Vec<String>,
    /// Judged query ids with no query text (these queries are skipped).
    pub judged_queries_without_text: usize,
    /// Judgement rows repeated for the same (query, document) pair (last wins).
    pub duplicate_judgements: usize,
    /// Paragraphs whose title repeats with different text (first kept).
    pub conflicting_paragraphs: usize,
    /// Questions with neither answers nor gold passages.
    pub unlabelled_queries: usize,
}

impl LoadReport {
    fn unknown_gold(&mut self, id: &str) {
        self.unknown_gold_docs += 1;
        if self.unknown_gold_examples.len() < 5 {
            self.unknown_gold_examples.push(id.to_string());
        }
    }

    /// One line per problem found; empty when the data was clean.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.unknown_gold_docs > 0 {
            w.push(format!(
                "{} gold/judged document ids are not in the corpus (e.g. {}); they stay in the \
                 labels and count as misses",
                self.unknown_gold_docs,
                self.unknown_gold_examples.join(", ")
            ));
        }
        if self.judged_queries_without_text > 0 {
            w.push(format!(
                "{} judged queries have no text in queries.jsonl and were skipped",
                self.judged_queries_without_text
            ));
        }
        if self.duplicate_judgements > 0 {
            w.push(format!(
                "{} repeated judgement rows (the last one was kept)",
                self.duplicate_judgements
            ));
        }
        if self.conflicting_paragraphs > 0 {
            w.push(format!(
                "{} paragraphs repeat a title with different text (the first was kept)",
                self.conflicting_paragraphs
            ));
        }
        if self.unlabelled_queries > 0 {
            w.push(format!(
                "{} questions have neither answers nor gold passages",
                self.unlabelled_queries
            ));
        }
        w
    }
}

/// A loaded dataset split.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Name (the directory or file stem).
    pub name: String,
    /// The format it was read as.
    pub format: DatasetFormat,
    /// The split.
    pub split: Split,
    /// The documents, in file order.
    pub corpus: Vec<Document>,
    /// The queries of the split, in file order.
    pub queries: Vec<Query>,
    /// What did not fit.
    pub report: LoadReport,
}

impl Dataset {
    /// Load `path`, detecting the format unless given, at `split` (the format's
    /// default when `None`).
    pub fn load(
        path: &Path,
        format: Option<DatasetFormat>,
        split: Option<&Split>,
    ) -> Result<Self, RetrieverError> {
        let format = match format {
            Some(f) => f,
            None => DatasetFormat::detect(path)?,
        };
        let split = split.cloned().unwrap_or(format.default_split());
        let mut ds = match format {
            DatasetFormat::Beir => beir::load(path, &split)?,
            DatasetFormat::Hotpotqa => hotpotqa::load(path)?,
            DatasetFormat::Qa => qa::load(path)?,
        };
        if format != DatasetFormat::Beir {
            ds.queries = hash_split(path, ds.queries, &split)?;
        }
        if ds.corpus.is_empty() {
            return Err(RetrieverError::EmptyCorpus {
                path: path.to_path_buf(),
            });
        }
        if ds.queries.is_empty() {
            return Err(RetrieverError::EmptyQueries {
                path: path.to_path_buf(),
                split: split.to_string(),
            });
        }
        ds.split = split;
        ds.report.unlabelled_queries = ds
            .queries
            .iter()
            .filter(|q| q.answers.is_empty() && q.qrels.is_empty())
            .count();
        Ok(ds)
    }

    /// Whether any query has gold answers.
    pub fn has_answers(&self) -> bool {
        self.queries.iter().any(|q| !q.answers.is_empty())
    }

    /// Whether any query has passage judgements.
    pub fn has_judgements(&self) -> bool {
        self.queries.iter().any(|q| !q.qrels.is_empty())
    }
}

/// The fold, in `0..folds`, that a query id falls in when a split's
/// queries are cut into `folds` parts by the same fixed hash as the
/// `train`/`test` split (fold 0 of 5 is `test`); `None` for zero folds.
pub fn fold_of(query_id: &str, folds: u64) -> Option<u64> {
    crate::hash::fnv1a_str(query_id).checked_rem(folds)
}

/// Whether a query id falls in the 20 % `test` part of the hash split.
pub fn in_test_split(query_id: &str) -> bool {
    fold_of(query_id, 5) == Some(0)
}

fn hash_split(
    path: &Path,
    queries: Vec<Query>,
    split: &Split,
) -> Result<Vec<Query>, RetrieverError> {
    match split {
        Split::All => Ok(queries),
        Split::Test => Ok(queries
            .into_iter()
            .filter(|q| in_test_split(&q.id))
            .collect()),
        Split::Train => Ok(queries
            .into_iter()
            .filter(|q| !in_test_split(&q.id))
            .collect()),
        Split::Named(other) => Err(RetrieverError::UnknownSplit {
            path: path.to_path_buf(),
            split: other.clone(),
            available: vec!["all".into(), "train".into(), "test".into()],
        }),
    }
}

/// Read a whole file, naming it in the error.
fn read(path: &Path) -> Result<String, RetrieverError> {
    std::fs::read_to_string(path).map_err(|source| RetrieverError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn require(path: PathBuf, what: &'static str) -> Result<PathBuf, RetrieverError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(RetrieverError::MissingFile { path, what })
    }
}

/// Parse each non-blank line of a JSONL file; a bad line is an error naming
/// the file and the 1-based line number.
fn read_jsonl<T: for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<Vec<(usize, T)>, RetrieverError> {
    let text = read(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(line).map_err(|e| RetrieverError::Malformed {
            path: path.to_path_buf(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        out.push((i + 1, value));
    }
    Ok(out)
}

/// An id written as a JSON string or integer.
fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        I(i64),
        U(u64),
    }
    Ok(match Id::deserialize(d)? {
        Id::S(s) => s,
        Id::I(i) => i.to_string(),
        Id::U(u) => u.to_string(),
    })
}

/// A list of ids written as JSON strings or integers.
fn id_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "id_string")] String);
    Ok(Vec::<Wrapped>::deserialize(d)?
        .into_iter()
        .map(|w| w.0)
        .collect())
}

/// The file or directory name, for reports.
fn dataset_name(path: &Path) -> String {
    let p = if path.is_file() {
        path.file_stem()
    } else {
        path.file_name()
    };
    p.map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Record `id` as seen, refusing a repeat with its file and line.
fn insert_unique(
    seen: &mut HashSet<String>,
    path: &Path,
    line: usize,
    id: &str,
) -> Result<(), RetrieverError> {
    if seen.insert(id.to_string()) {
        Ok(())
    } else {
        Err(RetrieverError::DuplicateId {
            path: path.to_path_buf(),
            line: Some(line),
            id: id.to_string(),
        })
    }
}

/// A corpus line of the `beir` (`_id`) and `qa` (`id`) formats.
#[derive(Deserialize)]
struct CorpusLine {
    #[serde(alias = "_id", deserialize_with = "id_string")]
    id: String,
    #[serde(default)]
    title: String,
    text: String,
}

/// Read a JSONL corpus; ids must be unique. Returns the documents in file
/// order and the set of their ids.
fn read_corpus(path: &Path) -> Result<(Vec<Document>, HashSet<String>), RetrieverError> {
    let mut corpus = Vec::new();
    let mut seen = HashSet::new();
    for (line, l) in read_jsonl::<CorpusLine>(path)? {
        let doc = Document::new(l.id, l.title, l.text);
        insert_unique(&mut seen, path, line, &doc.id)?;
        corpus.push(doc);
    }
    Ok((corpus, seen))
}

#[cfg(test)]
mod tests;
