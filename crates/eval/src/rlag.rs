//! RLAG-style preference pairs: for one question, the generator's answer with
//! the retrieved passages (augmented) against its answer without them
//! (plain). The better one by the gold answers (token F1, exact match as the
//! tie-break) is `chosen`, both completions of the plain prompt, so that
//! preference training (DPO and kin) moves what retrieval supplied into the
//! generator. Pairs whose two answers score the same teach nothing and are
//! not made.

use rlrag_reward::answer::{exact_match_any, token_f1_max};
use serde::{Deserialize, Serialize};

use rlrag_router::llm::prompt;

/// Which generation won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Winner {
    /// The answer with the retrieved passages.
    Augmented,
    /// The answer without them.
    Plain,
}

/// One line of the preference JSONL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    /// The question.
    pub question: String,
    /// The prompt without passages (what the generator is trained on).
    pub prompt: String,
    /// The prompt the augmented answer came from.
    pub augmented_prompt: String,
    /// The better answer.
    pub chosen: String,
    /// The worse answer.
    pub rejected: String,
    /// Which generation `chosen` is.
    pub chosen_from: Winner,
    /// Token F1 of `chosen` against the gold answers.
    pub chosen_f1: f64,
    /// Token F1 of `rejected`.
    pub rejected_f1: f64,
    /// The gold answers.
    pub answers: Vec<String>,
    /// Ids of the passages in the augmented prompt.
    pub evidence_ids: Vec<String>,
}

/// A passage as the generator's prompts show it: `title: text`, or the
/// text alone when it has no title.
pub fn passage_text(title: &str, text: &str) -> String {
    if title.is_empty() {
        text.to_owned()
    } else {
        format!("{title}: {text}")
    }
}

/// The pair for one question, or `None` when there are no gold answers or
/// both answers score the same.
pub fn preference_pair(
    question: &str,
    answers: &[String],
    evidence: &[(&str, &str)],
    augmented: &str,
    plain: &str,
) -> Option<PreferencePair> {
    preference_from_samples(question, answers, evidence, &[augmented], &[plain])
}

/// The pair for one question from several sampled answers with the evidence
/// (`augmented`) and without (`plain`): the best-scoring answer of all is
/// `chosen` (an augmented one on a tie), the worst `rejected` (a plain one
/// on a tie); `None` when there are no gold answers or every answer scores
/// the same.
pub fn preference_from_samples(
    question: &str,
    answers: &[String],
    evidence: &[(&str, &str)],
    augmented: &[&str],
    plain: &[&str],
) -> Option<PreferencePair> {
    if answers.is_empty() {
        return None;
    }
    let score = |a: &str| {
        (
            token_f1_max(a, answers),
            f64::from(u8::from(exact_match_any(a, answers))),
        )
    };
    let scored: Vec<(Winner, &str, (f64, f64))> = augmented
        .iter()
        .map(|a| (Winner::Augmented, *a, score(a)))
        .chain(plain.iter().map(|p| (Winner::Plain, *p, score(p))))
        .collect();
    // The first of the best (augmented come first) and the last of the
    // worst (plain come last).
    let best = scored
        .iter()
        .fold(None::<&(Winner, &str, (f64, f64))>, |b, s| match b {
            Some(b) if b.2 >= s.2 => Some(b),
            _ => Some(s),
        })?;
    let worst = scored
        .iter()
        .fold(None::<&(Winner, &str, (f64, f64))>, |w, s| match w {
            Some(w) if w.2 < s.2 => Some(w),
            _ => Some(s),
        })?;
    if best.2 <= worst.2 {
        return None;
    }
    let texts: Vec<&str> = evidence.iter().map(|(_, t)| *t).collect();
    Some(PreferencePair {
        question: question.to_owned(),
        prompt: prompt(question, &[]),
        augmented_prompt: prompt(question, &texts),
        chosen: best.1.to_owned(),
        rejected: worst.1.to_owned(),
        chosen_from: best.0,
        chosen_f1: best.2.0,
        rejected_f1: worst.2.0,
        answers: answers.to_vec(),
        evidence_ids: evidence.iter().map(|(id, _)| (*id).to_owned()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_better_answer_is_chosen_and_ties_make_no_pair() {
        let answers = vec!["Chief of Protocol".to_owned()];
        let evidence = [("temple", "Shirley Temple served as Chief of Protocol.")];
        let q = "What position did Shirley Temple hold?";
        let p = preference_pair(q, &answers, &evidence, "Chief of Protocol", "an actress")
            .expect("a pair");
        assert_eq!(p.chosen_from, Winner::Augmented);
        assert_eq!(
            (p.chosen.as_str(), p.rejected.as_str()),
            ("Chief of Protocol", "an actress")
        );
        assert_eq!((p.chosen_f1, p.rejected_f1), (1.0, 0.0));
        assert!(!p.prompt.contains("Passage") && p.augmented_prompt.contains("Chief of Protocol."));
        assert_eq!(p.evidence_ids, ["temple"]);
        let p = preference_pair(
            q,
            &answers,
            &evidence,
            "ambassador",
            "the Chief of Protocol",
        )
        .expect("a pair");
        assert_eq!(p.chosen_from, Winner::Plain, "retrieval can also hurt");
        assert!(preference_pair(q, &answers, &evidence, "no idea", "unknown").is_none());
        assert!(preference_pair(q, &[], &evidence, "Chief of Protocol", "x").is_none());
    }

    #[test]
    fn among_samples_the_best_is_chosen_over_the_worst() {
        let answers = vec!["Chief of Protocol".to_owned()];
        let evidence = [("temple", "Shirley Temple served as Chief of Protocol.")];
        let q = "What position did Shirley Temple hold?";
        let p = preference_from_samples(
            q,
            &answers,
            &evidence,
            &["Protocol chief", "Chief of Protocol"],
            &["an actress", "the Chief"],
        )
        .expect("a pair");
        assert_eq!(
            (p.chosen.as_str(), p.rejected.as_str(), p.chosen_from),
            ("Chief of Protocol", "an actress", Winner::Augmented)
        );
        // A plain sample can win, and an augmented one lose.
        let p = preference_from_samples(
            q,
            &answers,
            &evidence,
            &["a singer"],
            &["Chief of Protocol", "Chief"],
        )
        .expect("a pair");
        assert_eq!(
            (p.chosen.as_str(), p.rejected.as_str(), p.chosen_from),
            ("Chief of Protocol", "a singer", Winner::Plain)
        );
        // Equal scores everywhere: nothing to learn.
        assert!(preference_from_samples(q, &answers, &evidence, &["x", "y"], &["z"]).is_none());
        assert!(preference_from_samples(q, &answers, &evidence, &[], &[]).is_none());
    }
}
