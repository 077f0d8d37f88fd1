//! HotpotQA in its original JSON: a list of `{_id, question, answer,
//! supporting_facts, context, type}`. The corpus is `corpus.json` beside the
//! question file (a `title → [sentences]` map) when present, else the union of
//! the context paragraphs. Gold passages are the supporting-fact titles.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Dataset, DatasetFormat, LoadReport, Split, dataset_name, read};
use crate::{Document, Query, RetrieverError};

#[derive(Deserialize)]
struct Question {
    #[serde(rename = "_id")]
    id: String,
    question: String,
    answer: String,
    supporting_facts: Vec<(String, i64)>,
    context: Vec<(String, Vec<String>)>,
}

/// The question file of a HotpotQA path: the path itself, or the one `.json`
/// file other than `corpus.json` in a directory.
pub(super) fn question_file(path: &Path) -> Result<PathBuf, RetrieverError> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|source| RetrieverError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|e| e == "json")
                && p.file_name().is_some_and(|n| n != "corpus.json")
        })
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(RetrieverError::MissingFile {
            path: path.to_path_buf(),
            what: "HotpotQA question file (*.json other than corpus.json)",
        }),
        n => Err(RetrieverError::UnknownFormat {
            path: path.to_path_buf(),
            reason: format!("{n} candidate HotpotQA .json files; pass the file itself"),
        }),
    }
}

/// Sentences as one passage (HotpotQA sentences carry their leading spaces).
fn paragraph(sentences: &[String]) -> String {
    sentences.concat().trim().to_string()
}

/// A serde_json error as a file:line error.
fn json_error(path: &Path, e: &serde_json::Error) -> RetrieverError {
    RetrieverError::Malformed {
        path: path.to_path_buf(),
        line: e.line(),
        reason: e.to_string(),
    }
}

pub(super) fn load(path: &Path) -> Result<Dataset, RetrieverError> {
    let qfile = question_file(path)?;
    let questions: Vec<Question> =
        serde_json::from_str(&read(&qfile)?).map_err(|e| json_error(&qfile, &e))?;
    let mut report = LoadReport::default();

    let corpus_file = qfile.with_file_name("corpus.json");
    let mut corpus = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    if corpus_file.is_file() {
        let map: BTreeMap<String, Vec<String>> =
            serde_json::from_str(&read(&corpus_file)?).map_err(|e| json_error(&corpus_file, &e))?;
        // File order is lost in a JSON object; titles sort, which is stable.
        for (title, sentences) in map {
            seen.insert(title.clone(), corpus.len());
            corpus.push(Document::new(title.clone(), title, paragraph(&sentences)));
        }
    } else {
        for q in &questions {
            for (title, sentences) in &q.context {
                let text = paragraph(sentences);
                match seen.get(title) {
                    Some(&i) => {
                        if corpus.get(i).is_some_and(|d: &Document| d.text != text) {
                            report.conflicting_paragraphs += 1;
                        }
                    }
                    None => {
                        seen.insert(title.clone(), corpus.len());
                        corpus.push(Document::new(title.clone(), title.clone(), text));
                    }
                }
            }
        }
    }

    let mut ids = HashSet::new();
    let mut queries = Vec::with_capacity(questions.len());
    for q in questions {
        if !ids.insert(q.id.clone()) {
            return Err(RetrieverError::DuplicateId {
                path: qfile,
                line: None,
                id: q.id,
            });
        }
        let mut qrels = rlrag_reward::retrieval::Qrels::new();
        for (title, _) in &q.supporting_facts {
            if qrels.insert(title.clone(), 1).is_none() && !seen.contains_key(title) {
                report.unknown_gold(title);
            }
        }
        queries.push(Query {
            id: q.id,
            text: q.question,
            answers: vec![q.answer],
            qrels,
        });
    }
    Ok(Dataset {
        name: dataset_name(&qfile),
        format: DatasetFormat::Hotpotqa,
        split: Split::All,
        corpus,
        queries,
        report,
    })
}
