//! The teacher table (issue 22): how well a generator's P("yes") for "does
//! this passage answer the question?" separates the passages that do from
//! those that do not, before it teaches the reranker.
//!
//! For each question (a seeded sample of the set), the BM25 top `k` of the
//! corpus (what the router's local source returns) is judged passage by
//! passage, one forward pass each ([`LlmClient::passage_verdict`]). A
//! passage is positive when it is a gold passage (sets with passage labels:
//! HotpotQA's supporting paragraphs against its distractors) or else when
//! it contains a gold answer (2Wiki). A question is positive when its top
//! `k` hold the answer (containment, the router's metric; all gold passages
//! for a set without answers), and scores the best P(yes) among them.

use std::time::Instant;

use rlrag_retriever::rng::SplitMix64;
use rlrag_retriever::{Bm25Index, Bm25Params, Dataset};
use rlrag_reward::answer::contains_answer;
use rlrag_reward::ranking::roc_auc;
use rlrag_router::LlmClient;
use serde::Serialize;

use crate::EvalError;
use crate::progress::Progress;

/// What the table covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeacherSettings {
    /// Questions judged (a seeded sample; all when the set is smaller).
    pub questions: usize,
    /// Passages judged per question (the BM25 top `k`).
    pub k: usize,
    /// Seed of the sample.
    pub seed: u64,
}

/// One judged passage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    /// The question's id.
    pub question: String,
    /// The passage's id.
    pub passage: String,
    /// Gold passage or answer-bearing.
    pub positive: bool,
    /// The teacher's P("yes"); `None` when neither yes nor no was among
    /// its likeliest first tokens.
    pub p_yes: Option<f64>,
}

/// The table's row for one teacher on one set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeacherReport {
    /// The set's name.
    pub dataset: String,
    /// The generator's model name, as configured.
    pub model: String,
    /// Questions judged.
    pub questions: usize,
    /// Passages judged.
    pub passages: usize,
    /// Share of positive passages.
    pub positive_share: f64,
    /// AUC of P(yes) per passage (`None` when one class is missing).
    pub passage_auc: Option<f64>,
    /// Questions whose top `k` hold the answer.
    pub answered_share: f64,
    /// AUC of the best P(yes) per question for "the top `k` hold the answer".
    pub question_auc: Option<f64>,
    /// Judgements with neither yes nor no among the first token's top
    /// log-probabilities (left out of the AUCs).
    pub unreadable: usize,
    /// Wall-clock seconds per judgement.
    pub seconds_per_judgement: f64,
    /// Every judgement.
    pub judgements: Vec<Judgement>,
}

/// Judge the BM25 top `k` of a seeded sample of `ds`'s questions with
/// `teacher` and score how well its P(yes) separates the positives.
pub fn teacher_table(
    ds: &Dataset,
    teacher: &LlmClient,
    settings: TeacherSettings,
    progress: &dyn Progress,
) -> Result<TeacherReport, EvalError> {
    let mut index = Bm25Index::new(Bm25Params::default(), Default::default())?;
    index.add_documents(&ds.corpus)?;
    let by_id: std::collections::HashMap<&str, &rlrag_retriever::Document> =
        ds.corpus.iter().map(|d| (d.id.as_str(), d)).collect();
    let mut order: Vec<usize> = (0..ds.queries.len()).collect();
    SplitMix64::new(settings.seed).shuffle(&mut order);
    order.truncate(settings.questions);
    let mut bar = progress.bar((order.len() * settings.k) as u64, "judging");
    let started = Instant::now();
    let (mut judgements, mut per_question) = (Vec::new(), Vec::new());
    for &qi in &order {
        let q = &ds.queries[qi];
        let hits = index.search(&q.text, settings.k)?;
        let mut best: Option<f64> = None;
        let mut answered = false;
        for h in &hits {
            let Some(doc) = by_id.get(h.id.as_str()) else {
                continue;
            };
            let text = format!("{}: {}", doc.title, doc.text);
            let holds_answer = q.answers.iter().any(|a| contains_answer(&text, a));
            answered |= holds_answer;
            let positive = if q.qrels.is_empty() {
                holds_answer
            } else {
                q.qrels.get(&h.id).is_some_and(|&g| g > 0)
            };
            let p_yes = teacher.passage_verdict(&q.text, &text)?;
            if let Some(p) = p_yes {
                best = Some(best.map_or(p, |b: f64| b.max(p)));
            }
            judgements.push(Judgement {
                question: q.id.clone(),
                passage: h.id.clone(),
                positive,
                p_yes,
            });
            bar.inc(1);
        }
        if q.answers.is_empty() {
            let found = hits
                .iter()
                .filter(|h| q.qrels.get(&h.id).is_some_and(|&g| g > 0))
                .count();
            answered = found > 0 && found == q.qrels.values().filter(|&&g| g > 0).count();
        }
        per_question.push((best.unwrap_or(0.0), answered));
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    let scored: Vec<(f64, bool)> = judgements
        .iter()
        .filter_map(|j| j.p_yes.map(|p| (p, j.positive)))
        .collect();
    let share = |n: usize, of: usize| if of == 0 { 0.0 } else { n as f64 / of as f64 };
    Ok(TeacherReport {
        dataset: ds.name.clone(),
        model: teacher.config().model.clone(),
        questions: per_question.len(),
        passages: judgements.len(),
        positive_share: share(
            judgements.iter().filter(|j| j.positive).count(),
            judgements.len(),
        ),
        passage_auc: roc_auc(&scored),
        answered_share: share(
            per_question.iter().filter(|(_, a)| *a).count(),
            per_question.len(),
        ),
        question_auc: roc_auc(&per_question),
        unreadable: judgements.iter().filter(|j| j.p_yes.is_none()).count(),
        seconds_per_judgement: seconds / judgements.len().max(1) as f64,
        judgements,
    })
}

impl TeacherReport {
    /// The report as a Markdown table row with its header.
    pub fn table(&self) -> String {
        let auc = |a: Option<f64>| a.map_or_else(|| "–".to_owned(), |a| format!("{a:.3}"));
        format!(
            "| set | teacher | questions | passages | positive | passage AUC | answered | question AUC | unreadable | s/judgement |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n\
             | {} | {} | {} | {} | {:.3} | {} | {:.3} | {} | {} | {:.2} |\n",
            self.dataset,
            self.model,
            self.questions,
            self.passages,
            self.positive_share,
            auc(self.passage_auc),
            self.answered_share,
            auc(self.question_auc),
            self.unreadable,
            self.seconds_per_judgement
        )
    }
}

#[cfg(test)]
mod tests {
    use rlrag_router::LlmConfig;

    use super::*;
    use crate::progress::Silent;

    /// A generator on 127.0.0.1 that answers "yes" when asked about France's
    /// capital over a passage naming Paris, else "no", and nothing readable
    /// for Lyon: the table's wiring, not a model.
    fn judge_server() -> String {
        let reply = |req: serde_json::Value| {
            let prompt = req["prompt"].as_str().unwrap_or_default();
            let (question, passage) = prompt.split_once("Passage: ").unwrap_or_default();
            let top = if passage.contains("Lyon") {
                serde_json::json!({"The": -0.1})
            } else if question.contains("capital of France") && passage.contains("Paris") {
                serde_json::json!({"Yes": -0.2, " yes": -2.5, "No": -3.0})
            } else {
                serde_json::json!({"No": -0.2, "Yes": -1.6})
            };
            serde_json::json!({"choices": [{"text": "x", "logprobs": {"top_logprobs": [top]}}]})
        };
        let app = axum::Router::new().route(
            "/v1/completions",
            axum::routing::post(
                move |axum::Json(req): axum::Json<serde_json::Value>| async move {
                    axum::Json(reply(req))
                },
            ),
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
        std::thread::spawn(move || rt.block_on(async { axum::serve(listener, app).await }));
        url
    }

    #[test]
    fn the_table_scores_a_judge_that_separates_answers_perfectly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let docs = [
            ("0", "Paris", "Paris is the capital of France."),
            ("1", "Berlin", "Berlin is the capital of Germany."),
            ("2", "Lyon", "Lyon is a city in France."),
            ("3", "Rome", "Rome is the capital of Italy."),
        ];
        let corpus: String = docs
            .iter()
            .map(|(id, t, x)| {
                format!(
                    "{}\n",
                    serde_json::json!({"_id": id, "title": t, "text": x})
                )
            })
            .collect();
        std::fs::write(dir.path().join("corpus.jsonl"), corpus).expect("corpus");
        let qa = [
            serde_json::json!({"id": 0, "question": "What is the capital of France?", "answers": ["Paris"]}),
            serde_json::json!({"id": 1, "question": "What is the capital of Italy?", "answers": ["Madrid"]}),
        ];
        let qa: String = qa.iter().map(|q| format!("{q}\n")).collect();
        std::fs::write(dir.path().join("qa.jsonl"), qa).expect("qa");
        let ds = crate::datasets::load(dir.path(), None, None).expect("dataset");
        let teacher = LlmClient::new(LlmConfig {
            base_url: judge_server(),
            model: "judge".into(),
            timeout_ms: 5000,
            retries: 0,
            ..LlmConfig::default()
        })
        .expect("client");
        let settings = TeacherSettings {
            questions: 10,
            k: 4,
            seed: 1,
        };
        let report = teacher_table(&ds, &teacher, settings, &Silent).expect("table");
        // BM25 finds 4 passages for France and 3 for Italy (Lyon matches
        // neither "capital" nor "Italy").
        assert_eq!((report.questions, report.passages), (2, 7));
        // Lyon's reply holds neither yes nor no: left out, counted.
        assert_eq!(report.unreadable, 1);
        // The only positive passage is Paris for the France question.
        assert_eq!(report.judgements.iter().filter(|j| j.positive).count(), 1);
        assert_eq!(report.passage_auc, Some(1.0));
        // One question is answered by its top 4 (Paris), one is not (Madrid).
        assert!((report.answered_share - 0.5).abs() < 1e-12);
        // The answered question's best P(yes) is above the other's.
        assert_eq!(report.question_auc, Some(1.0));
        let paris = report
            .judgements
            .iter()
            .find(|j| j.positive)
            .and_then(|j| j.p_yes);
        let want = ((-0.2f64).exp() + (-2.5f64).exp())
            / ((-0.2f64).exp() + (-2.5f64).exp() + (-3.0f64).exp());
        assert!((paris.expect("read") - want).abs() < 1e-9);
        assert!(report.table().contains("| 1.000 |"));
    }
}
