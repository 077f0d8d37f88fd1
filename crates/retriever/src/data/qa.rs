//! QA: `corpus.jsonl` (`id`, `text`, optional `title`) and `qa.jsonl` (`id`,
//! `question`, `answers`, optional `gold_ids`); other fields are ignored.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use super::{
    Dataset, DatasetFormat, LoadReport, Split, dataset_name, id_list, id_string, insert_unique,
    read_corpus, read_jsonl, require,
};
use crate::{Query, RetrieverError};

#[derive(Deserialize)]
struct QaLine {
    #[serde(deserialize_with = "id_string")]
    id: String,
    question: String,
    answers: Vec<String>,
    #[serde(default, deserialize_with = "id_list")]
    gold_ids: Vec<String>,
}

pub(super) fn load(dir: &Path) -> Result<Dataset, RetrieverError> {
    let corpus_path = require(dir.join("corpus.jsonl"), "corpus.jsonl")?;
    let qa_path = require(dir.join("qa.jsonl"), "qa.jsonl")?;
    let (corpus, seen) = read_corpus(&corpus_path)?;
    let mut report = LoadReport::default();
    let mut queries = Vec::new();
    let mut seen_queries = HashSet::new();
    for (line, q) in read_jsonl::<QaLine>(&qa_path)? {
        insert_unique(&mut seen_queries, &qa_path, line, &q.id)?;
        for g in &q.gold_ids {
            if !seen.contains(g) {
                report.unknown_gold(g);
            }
        }
        queries.push(Query {
            id: q.id,
            text: q.question,
            answers: q.answers,
            qrels: q.gold_ids.into_iter().map(|g| (g, 1)).collect(),
        });
    }
    Ok(Dataset {
        name: dataset_name(dir),
        format: DatasetFormat::Qa,
        split: Split::All,
        corpus,
        queries,
        report,
    })
}
