//! Answer-level metrics with the SQuAD evaluation script's normalisation.
//!
//! `normalize_answer` follows the official SQuAD v1.1 script exactly: lower-case,
//! drop ASCII punctuation (Python's `string.punctuation`), drop the articles
//! `a`, `an`, `the` as whole words, and collapse whitespace.

use std::collections::HashMap;

/// Python's `string.punctuation`.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// SQuAD answer normalisation: lower-case, remove punctuation, remove the
/// articles `a`/`an`/`the`, collapse whitespace to single spaces.
pub fn normalize_answer(text: &str) -> String {
    let lowered: String = text
        .chars()
        .flat_map(char::to_lowercase)
        .filter(|c| !PUNCTUATION.contains(*c))
        .collect();
    // Remove articles where they form a whole word (regex `\b(a|an|the)\b`).
    let mut without_articles = String::with_capacity(lowered.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if matches!(word.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in lowered.chars() {
        if is_word_char(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut without_articles);
            without_articles.push(c);
        }
    }
    flush(&mut word, &mut without_articles);
    without_articles
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Exact match after normalisation.
pub fn exact_match(prediction: &str, gold: &str) -> bool {
    normalize_answer(prediction) == normalize_answer(gold)
}

/// Exact match against the best of several gold answers (false for none).
pub fn exact_match_any<S: AsRef<str>>(prediction: &str, golds: &[S]) -> bool {
    let p = normalize_answer(prediction);
    golds.iter().any(|g| normalize_answer(g.as_ref()) == p)
}

/// SQuAD token F1 between a prediction and one gold answer.
///
/// Both sides are normalised and split on whitespace; the overlap is the
/// multiset intersection. Zero when either side is empty.
pub fn token_f1(prediction: &str, gold: &str) -> f64 {
    let p = normalize_answer(prediction);
    let g = normalize_answer(gold);
    let p_tokens: Vec<&str> = p.split_whitespace().collect();
    let g_tokens: Vec<&str> = g.split_whitespace().collect();
    if p_tokens.is_empty() || g_tokens.is_empty() {
        return 0.0;
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &g_tokens {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0usize;
    for t in &p_tokens {
        if let Some(c) = counts.get_mut(t)
            && *c > 0
        {
            *c -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / p_tokens.len() as f64;
    let recall = same as f64 / g_tokens.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// Token F1 against the best of several gold answers (0 for none).
pub fn token_f1_max<S: AsRef<str>>(prediction: &str, golds: &[S]) -> f64 {
    golds
        .iter()
        .map(|g| token_f1(prediction, g.as_ref()))
        .fold(0.0, f64::max)
}

/// A text normalised once, to test many answers against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedText {
    /// The normalised text framed by single spaces, so that a containment
    /// check is a whole-word substring test.
    framed: String,
}

impl NormalizedText {
    /// Normalise `text` with [`normalize_answer`].
    pub fn new(text: &str) -> Self {
        Self {
            framed: format!(" {} ", normalize_answer(text)),
        }
    }

    /// Whether the normalised `answer` occurs in this text as a whole-word
    /// token sequence. An answer that normalises to nothing never occurs.
    pub fn contains(&self, answer: &str) -> bool {
        let a = normalize_answer(answer);
        !a.is_empty() && self.framed.contains(&format!(" {a} "))
    }

    /// Whether any of the answers occurs (see [`NormalizedText::contains`]).
    pub fn contains_any<S: AsRef<str>>(&self, answers: &[S]) -> bool {
        answers.iter().any(|a| self.contains(a.as_ref()))
    }
}

/// Answer containment: the normalised answer occurs in the normalised text as
/// a whole-word token sequence ("paris" is in "Paris, France" but "art" is
/// not in "start"). This is R3's binary per-passage reward without an LLM and
/// Search-R1's retrieval-correct check, with word boundaries respected.
pub fn contains_answer(text: &str, answer: &str) -> bool {
    NormalizedText::new(text).contains(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_matches_the_squad_script() {
        // Values computed with the official SQuAD v1.1 `normalize_answer`.
        assert_eq!(normalize_answer("The  Cat's hat!"), "cats hat");
        assert_eq!(normalize_answer("An apple, a day"), "apple day");
        assert_eq!(normalize_answer("theatre"), "theatre");
        assert_eq!(normalize_answer("  U.S.A.  "), "usa");
        assert_eq!(normalize_answer("the"), "");
        assert_eq!(normalize_answer("Ünïcode ÉCOLE"), "ünïcode école");
        assert_eq!(normalize_answer("a-the-an"), "athean");
        assert_eq!(normalize_answer(""), "");
    }

    #[test]
    fn exact_match_ignores_case_punctuation_and_articles() {
        assert!(exact_match("The Beatles", "beatles"));
        assert!(!exact_match("Beatles band", "beatles"));
        assert!(exact_match_any("1889", &["in 1889", "1889"]));
        assert!(!exact_match_any::<&str>("1889", &[]));
    }

    #[test]
    fn token_f1_hand_computed() {
        // pred tokens: [barack, obama, jr]; gold: [barack, obama]
        // overlap 2, p = 2/3, r = 1, f1 = 2*(2/3)/(5/3) = 0.8
        assert!((token_f1("Barack Obama Jr.", "Barack Obama") - 0.8).abs() < 1e-12);
        // multiset: pred [new, new, york], gold [new, york] -> overlap 2, p=2/3, r=1
        assert!((token_f1("new new york", "New York") - 0.8).abs() < 1e-12);
        assert_eq!(token_f1("", "x"), 0.0);
        assert_eq!(token_f1("the", "a"), 0.0);
        assert_eq!(token_f1("cat", "dog"), 0.0);
        assert!((token_f1_max("new york", &["york", "new york city"]) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn containment_respects_word_boundaries() {
        assert!(contains_answer("He was born in Paris, France.", "paris"));
        assert!(contains_answer("the New York Times", "New York"));
        assert!(!contains_answer("a fresh start", "art"));
        assert!(!contains_answer("anything", "the"));
        assert!(contains_answer("Population: 1,000", "1000"));
        let text = NormalizedText::new("Key House Mirror is a 1986 film");
        assert!(text.contains_any(&["Count Cohn", "key house mirror"]));
        assert!(!text.contains_any::<&str>(&[]));
    }
}
