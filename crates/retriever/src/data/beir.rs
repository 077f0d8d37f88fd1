//! BEIR: `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl` (`_id`,
//! `text`), `qrels/<split>.tsv` (`query-id corpus-id score`, header optional).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use super::{
    Dataset, DatasetFormat, LoadReport, Split, dataset_name, id_string, insert_unique, read,
    read_corpus, read_jsonl, require,
};
use crate::{Query, RetrieverError};
use rlrag_reward::retrieval::Qrels;

#[derive(Deserialize)]
struct QueryLine {
    #[serde(rename = "_id", deserialize_with = "id_string")]
    id: String,
    text: String,
}

pub(super) fn load(dir: &Path, split: &Split) -> Result<Dataset, RetrieverError> {
    let qrels_dir = dir.join("qrels");
    let qrels_path = qrels_dir.join(format!("{split}.tsv"));
    if !qrels_path.is_file() {
        let mut available: Vec<String> = std::fs::read_dir(&qrels_dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.strip_suffix(".tsv").map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        available.sort();
        return Err(RetrieverError::UnknownSplit {
            path: dir.to_path_buf(),
            split: split.to_string(),
            available,
        });
    }
    let corpus_path = require(dir.join("corpus.jsonl"), "corpus.jsonl")?;
    let queries_path = require(dir.join("queries.jsonl"), "queries.jsonl")?;

    let (corpus, seen) = read_corpus(&corpus_path)?;

    let mut report = LoadReport::default();
    let judgements = read_qrels(&qrels_path, &mut report)?;

    let mut queries = Vec::new();
    let mut seen_queries = HashSet::new();
    for (line, q) in read_jsonl::<QueryLine>(&queries_path)? {
        insert_unique(&mut seen_queries, &queries_path, line, &q.id)?;
        if let Some(qrels) = judgements.get(&q.id) {
            queries.push(Query {
                id: q.id,
                text: q.text,
                answers: Vec::new(),
                qrels: qrels.clone(),
            });
        }
    }
    report.judged_queries_without_text = judgements
        .keys()
        .filter(|q| !seen_queries.contains(*q))
        .count();
    for q in &queries {
        for doc in q.qrels.keys() {
            if !seen.contains(doc) {
                report.unknown_gold(doc);
            }
        }
    }
    Ok(Dataset {
        name: dataset_name(dir),
        format: DatasetFormat::Beir,
        split: split.clone(),
        corpus,
        queries,
        report,
    })
}

/// Read a qrels TSV (tab- or space-separated) into query → judgements.
fn read_qrels(
    path: &Path,
    report: &mut LoadReport,
) -> Result<HashMap<String, Qrels>, RetrieverError> {
    let text = read(path)?;
    let mut out: HashMap<String, Qrels> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let malformed = |reason: String| RetrieverError::Malformed {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        if fields.len() != 3 {
            return Err(malformed(format!(
                "expected 3 fields (query-id, corpus-id, score), found {}",
                fields.len()
            )));
        }
        let score = match fields[2].parse::<i32>() {
            Ok(s) => s,
            // The first line may be the header `query-id corpus-id score`.
            Err(_) if i == 0 => continue,
            Err(_) => {
                return Err(malformed(format!(
                    "score `{}` is not an integer",
                    fields[2]
                )));
            }
        };
        let previous = out
            .entry(fields[0].to_string())
            .or_default()
            .insert(fields[1].to_string(), score);
        if previous.is_some() {
            report.duplicate_judgements += 1;
        }
    }
    Ok(out)
}
