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

/// The pair for one question, or `None` when there are no gold answers or
/// both answers score the same.
pub fn preference_pair(
    question: &str,
    answers: &[String],
    evidence: &[(&str, &str)],
    augmented: &str,
    plain: &str,
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
    let (fa, ea) = score(augmented);
    let (fp, ep) = score(plain);
    let winner = if (fa, ea) > (fp, ep) {
        Winner::Augmented
    } else if (fp, ep) > (fa, ea) {
        Winner::Plain
    } else {
        return None;
    };
    let texts: Vec<&str> = evidence.iter().map(|(_, t)| *t).collect();
    let (chosen, rejected, chosen_f1, rejected_f1) = match winner {
        Winner::Augmented => (augmented, plain, fa, fp),
        Winner::Plain => (plain, augmented, fp, fa),
    };
    Some(PreferencePair {
        question: question.to_owned(),
        prompt: prompt(question, &[]),
        augmented_prompt: prompt(question, &texts),
        chosen: chosen.to_owned(),
        rejected: rejected.to_owned(),
        chosen_from: winner,
        chosen_f1,
        rejected_f1,
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
}
