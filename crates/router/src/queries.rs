//! The queries a hop sends: RDRA background sensing (align the question with
//! the salient terms and titles of a cheap background retrieval) and RAG-R1
//! sub-queries (bridge queries built from the entities of the previous
//! round's passages, a split of a compound question).

use std::collections::{BTreeMap, BTreeSet};

use rlrag_retriever::Analyzer;
use serde::{Deserialize, Serialize};

use crate::memory::{QUESTION_WORDS, content_terms};
use crate::source::Hit;

/// What background sensing found and the query it produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alignment {
    /// Titles of the background passages that the question does not name.
    pub titles: Vec<String>,
    /// Salient terms: words several background passages share that the
    /// question lacks.
    pub terms: Vec<String>,
    /// The question expanded with both.
    pub query: String,
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
}

fn names(question: &str, analyzer: &Analyzer, candidate: &str) -> bool {
    let q = content_terms(analyzer, question);
    let c = content_terms(analyzer, candidate);
    !c.is_empty() && c.is_subset(&q)
}

/// Align `question` with the top background passages (BM25 top 3):
/// at most `max_titles` titles and `max_terms` salient terms are appended.
pub fn align(
    question: &str,
    background: &[Hit],
    analyzer: &Analyzer,
    max_titles: usize,
    max_terms: usize,
) -> Alignment {
    let mut titles = Vec::new();
    for h in background {
        let t = h.title.trim();
        if !t.is_empty()
            && titles.len() < max_titles
            && !titles.iter().any(|x: &String| x == t)
            && !names(question, analyzer, t)
        {
            titles.push(t.to_owned());
        }
    }
    let question_terms = content_terms(analyzer, question);
    let mut stopped = BTreeSet::new();
    // Document frequency across the background passages, then count.
    let mut df: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for h in background {
        let mut in_this = BTreeSet::new();
        for w in words(&h.text) {
            if QUESTION_WORDS.contains(&w.as_str()) || not_a_name(&w) || stopped.contains(&w) {
                continue;
            }
            let stems = content_terms(analyzer, &w);
            if stems.is_empty() {
                stopped.insert(w);
                continue;
            }
            if stems.is_subset(&question_terms) {
                continue;
            }
            df.entry(w.clone()).or_default().1 += 1;
            in_this.insert(w);
        }
        for w in in_this {
            df.entry(w).or_default().0 += 1;
        }
    }
    let mut ranked: Vec<(String, (usize, usize))> =
        df.into_iter().filter(|(_, (d, _))| *d >= 2).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let in_titles: BTreeSet<String> = titles.iter().flat_map(|t| words(t)).collect();
    let terms: Vec<String> = ranked
        .into_iter()
        .map(|(w, _)| w)
        .filter(|w| !in_titles.contains(w))
        .take(max_terms)
        .collect();
    let mut query = question.trim().to_owned();
    for extra in titles.iter().chain(&terms) {
        query.push(' ');
        query.push_str(extra);
    }
    Alignment {
        titles,
        terms,
        query,
    }
}

/// Lower-case words that may sit inside a name ("Kiss and Tell", "Bank of
/// America", "First for Women").
const CONNECTORS: [&str; 8] = ["and", "of", "for", "the", "de", "von", "van", "in"];

/// Words capitalised without being names, lower-case: the function words a
/// sentence or question opens with ("He was …", "If Gallu is …", "In 1994
/// …") and calendar words ("November"; not "March" or "May", which are also
/// names). Never entities, nor salient terms of background sensing.
const NOT_NAMES: [&str; 92] = [
    "a",
    "about",
    "according",
    "after",
    "although",
    "an",
    "and",
    "another",
    "april",
    "are",
    "as",
    "at",
    "august",
    "because",
    "before",
    "both",
    "but",
    "by",
    "can",
    "could",
    "december",
    "did",
    "do",
    "does",
    "during",
    "each",
    "either",
    "february",
    "for",
    "friday",
    "from",
    "had",
    "has",
    "have",
    "he",
    "her",
    "here",
    "his",
    "how",
    "however",
    "i",
    "if",
    "in",
    "is",
    "it",
    "its",
    "january",
    "july",
    "june",
    "monday",
    "neither",
    "not",
    "november",
    "october",
    "of",
    "on",
    "or",
    "our",
    "saturday",
    "september",
    "she",
    "since",
    "so",
    "sunday",
    "that",
    "their",
    "there",
    "these",
    "they",
    "this",
    "those",
    "though",
    "thursday",
    "to",
    "tuesday",
    "until",
    "was",
    "we",
    "wednesday",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "would",
];

fn not_a_name(word: &str) -> bool {
    // No allocation: this runs on every word of every passage of a hop.
    NOT_NAMES.iter().any(|n| n.eq_ignore_ascii_case(word))
}

/// Capitalised word runs ("Shirley Temple", "Kiss and Tell"; at most six
/// words): entity candidates. A run ends at another lower-case word and at
/// punctuation; words that open it without being names ([`NOT_NAMES`]: "He",
/// "If", "November") are dropped from its start.
fn capitalised_runs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    let mut pending: Option<&str> = None;
    let flush = |run: &mut Vec<&str>, out: &mut Vec<String>| {
        let start = run
            .iter()
            .take_while(|w| not_a_name(w) || CONNECTORS.contains(w))
            .count();
        if start < run.len() {
            out.push(run[start..].join(" "));
        }
        run.clear();
    };
    for raw in text.split_whitespace() {
        let w = raw.trim_matches(|c: char| !c.is_alphanumeric());
        let capital = w.chars().next().is_some_and(char::is_uppercase) && w.chars().count() > 1;
        if capital && run.len() < 6 {
            if let Some(c) = pending.take() {
                run.push(c);
            }
            run.push(w);
        } else if !run.is_empty() && pending.is_none() && CONNECTORS.contains(&w) && w == raw {
            pending = Some(w);
            continue;
        } else {
            flush(&mut run, &mut out);
            if capital {
                run.push(w);
            }
        }
        pending = None;
        if raw.ends_with(['.', '!', '?', ',', ';', ':', ')']) || raw.starts_with('(') {
            flush(&mut run, &mut out);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The entities a question names (capitalised runs), each as its content
/// terms; runs without content ("What", "The") are left out, repeats once.
pub fn question_entities(question: &str, analyzer: &Analyzer) -> Vec<BTreeSet<String>> {
    let mut out: Vec<BTreeSet<String>> = Vec::new();
    for run in capitalised_runs(question) {
        let terms = content_terms(analyzer, &run);
        if !terms.is_empty() && !out.contains(&terms) {
            out.push(terms);
        }
    }
    out
}

/// Whether the question already names `candidate`: at least half of the
/// candidate's content terms are in it.
fn mostly_named(question_terms: &BTreeSet<String>, analyzer: &Analyzer, candidate: &str) -> bool {
    let c = content_terms(analyzer, candidate);
    c.is_empty() || 2 * c.intersection(question_terms).count() >= c.len()
}

/// Bridge queries (RAG-R1): entities of the previous round's top passages
/// that the question does not name — their titles first, then capitalised
/// names, those of several words before single words ("Shirley Temple"
/// before "Oscar": a lone capitalised word is more often a nationality or a
/// common noun), each group by how often they recur — each joined to the part of the question its passage
/// did not answer (the question's words that passage lacks): "Shirley
/// Temple government position held woman portrayed".
pub fn bridge_queries(
    question: &str,
    previous: &[&Hit],
    analyzer: &Analyzer,
    max: usize,
) -> Vec<String> {
    let question_terms = content_terms(analyzer, question);
    // (entity, the passage it came from)
    let mut entities: Vec<(String, usize)> = Vec::new();
    let push = |e: &str, from: usize, entities: &mut Vec<(String, usize)>| {
        let e = e.trim();
        let lower = e.to_lowercase();
        if !entities
            .iter()
            .any(|(x, _)| x.to_lowercase().contains(&lower))
            && !mostly_named(&question_terms, analyzer, e)
        {
            entities.push((e.to_owned(), from));
        }
    };
    for (i, h) in previous.iter().enumerate().take(3) {
        push(&h.title, i, &mut entities);
    }
    let mut counts: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut order = 0;
    for (i, h) in previous.iter().enumerate().take(5) {
        for run in capitalised_runs(&h.text) {
            let e = counts.entry(run).or_insert((0, order, i));
            e.0 += 1;
            order += 1;
        }
    }
    let mut runs: Vec<(String, (usize, usize, usize))> = counts.into_iter().collect();
    // Names of several words first, then by recurrence, then by position.
    let multi = |r: &str| r.contains(' ');
    runs.sort_by(|a, b| {
        multi(&b.0)
            .cmp(&multi(&a.0))
            .then(b.1.0.cmp(&a.1.0))
            .then(a.1.1.cmp(&b.1.1))
    });
    for (run, (_, _, from)) in runs {
        push(&run, from, &mut entities);
    }
    let keywords: Vec<(&str, BTreeSet<String>)> = question
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .map(|w| (w, content_terms(analyzer, w)))
        .filter(|(w, t)| !w.is_empty() && !t.is_empty())
        .collect();
    entities
        .into_iter()
        .take(max)
        .map(|(e, from)| {
            let h = previous[from];
            let covered = content_terms(analyzer, &format!("{} {}", h.title, h.text));
            let open: Vec<&str> = keywords
                .iter()
                .filter(|(_, t)| !t.is_subset(&covered))
                .map(|(w, _)| *w)
                .collect();
            let rest = if open.is_empty() {
                keywords.iter().map(|(w, _)| *w).collect()
            } else {
                open
            };
            format!("{e} {}", rest.join(" "))
        })
        .collect()
}

/// Whether a question asks for yes or no ("Are X and Y both directors?",
/// "Did …?"): it opens with an auxiliary verb. Its answer is a verdict the
/// gathered passages support, not a span they contain.
pub fn is_polar(question: &str) -> bool {
    const AUXILIARIES: [&str; 16] = [
        "is", "are", "was", "were", "do", "does", "did", "has", "have", "had", "can", "could",
        "will", "would", "should", "shall",
    ];
    question
        .split_whitespace()
        .next()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .is_some_and(|w| AUXILIARIES.contains(&w.as_str()))
}

/// Split a compound question at its top-level conjunction ("Who was born
/// first, X or Y?" → the X part and the Y part); empty when it has none.
pub fn split_compound(question: &str) -> Vec<String> {
    let q = question.trim().trim_end_matches('?');
    let tail = q.rsplit_once(',').map_or(q, |(_, t)| t);
    for sep in [" or ", " and "] {
        if let Some((a, b)) = tail.split_once(sep) {
            let (a, b) = (a.trim(), b.trim());
            if a.split_whitespace().count() >= 1 && b.split_whitespace().count() >= 1 && tail != q {
                let head = q.rsplit_once(',').map_or("", |(h, _)| h);
                return vec![format!("{head} {a}"), format!("{head} {b}")];
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, title: &str, text: &str) -> Hit {
        Hit {
            id: id.into(),
            title: title.into(),
            text: text.into(),
            score: 1.0,
        }
    }

    #[test]
    fn alignment_adds_titles_and_shared_terms() {
        let bg = [
            hit(
                "1",
                "Kiss and Tell (1945 film)",
                "Kiss and Tell is a comedy film starring Shirley Temple as Corliss Archer.",
            ),
            hit(
                "2",
                "Corliss Archer",
                "Corliss Archer is a fictional character played by Shirley Temple in a comedy.",
            ),
            hit(
                "3",
                "Meet Corliss Archer",
                "A radio comedy about the teenager Corliss Archer.",
            ),
        ];
        let a = align(
            "What government position was held by the woman who portrayed Corliss Archer?",
            &bg,
            &Analyzer::default(),
            2,
            3,
        );
        assert_eq!(
            a.titles,
            ["Kiss and Tell (1945 film)", "Meet Corliss Archer"]
        );
        assert!(a.terms.contains(&"comedy".to_owned()), "{:?}", a.terms);
        assert!(a.terms.contains(&"shirley".to_owned()), "{:?}", a.terms);
        assert!(
            !a.terms.contains(&"corliss".to_owned()),
            "the question has it"
        );
        assert!(a.query.starts_with("What government position"));
        assert!(a.query.contains("Kiss and Tell"));
    }

    #[test]
    fn bridge_queries_name_entities_the_question_lacks() {
        let prev = [
            hit(
                "1",
                "Kiss and Tell (1945 film)",
                "Kiss and Tell is a 1945 comedy starring Shirley Temple. Shirley Temple played Corliss Archer.",
            ),
            hit(
                "2",
                "Corliss Archer",
                "Corliss Archer was played by Shirley Temple.",
            ),
        ];
        let refs: Vec<&Hit> = prev.iter().collect();
        let q = "What government position was held by the woman who portrayed Corliss Archer?";
        let b = bridge_queries(q, &refs, &Analyzer::default(), 3);
        // Corliss Archer is named by the question; "Kiss and Tell" is part of a title already.
        assert_eq!(
            b,
            [
                "Kiss and Tell (1945 film) government position held woman portrayed",
                "Shirley Temple government position held woman portrayed"
            ]
        );
    }

    #[test]
    fn words_that_open_a_sentence_are_not_names() {
        assert_eq!(
            capitalised_runs(
                "He was born in Pune. In November she met Theresa May. If Gallu is a demon, what is Lilu?"
            ),
            ["Pune", "Theresa May", "Gallu", "Lilu"]
        );
    }

    #[test]
    fn function_words_are_never_salient() {
        // "she" and "from" are in every passage, but they are not Lucene
        // stopwords, so only the router's own list keeps them out.
        let bg = [
            hit(
                "1",
                "Julia Gillard",
                "She came from Wales; she led the Labor Party.",
            ),
            hit(
                "2",
                "Kate Ramsay",
                "She moved from Sydney; she joined the Labor Party.",
            ),
        ];
        let a = align("Who led the party?", &bg, &Analyzer::default(), 0, 3);
        assert_eq!(a.terms, ["labor"], "{a:?}");
    }

    #[test]
    fn bridges_prefer_names_of_several_words() {
        let prev = [hit(
            "1",
            "Kiss and Tell (1945 film)",
            "The film won an Oscar. American critics praised the Oscar nominee Shirley Temple.",
        )];
        let refs: Vec<&Hit> = prev.iter().collect();
        let b = bridge_queries(
            "Who starred in Kiss and Tell?",
            &refs,
            &Analyzer::default(),
            2,
        );
        assert_eq!(b, ["Shirley Temple starred", "Oscar starred"]);
    }

    #[test]
    fn names_keep_their_connectors() {
        assert_eq!(
            capitalised_runs(
                "Kiss and Tell starred Shirley Temple. First for Women and then Bank of America."
            ),
            [
                "Kiss and Tell",
                "Shirley Temple",
                "First for Women",
                "Bank of America"
            ]
        );
    }

    #[test]
    fn polar_questions_open_with_an_auxiliary_verb() {
        for q in [
            "Are Christopher Nolan and Sathish Kalathil both film directors?",
            "did the Beatles ever play in Kyiv",
            "  Was Sourdough invented before 1900?",
        ] {
            assert!(is_polar(q), "{q}");
        }
        for q in [
            "Who directed the film shot in Leland, North Carolina?",
            "Isaac Newton was born in which county?",
            "Which band was formed first, The Exies or Circus Diablo?",
            "",
        ] {
            assert!(!is_polar(q), "{q}");
        }
    }

    #[test]
    fn compound_questions_split_at_the_conjunction() {
        let s = split_compound(
            "Which magazine was started first, Arthur's Magazine or First for Women?",
        );
        assert_eq!(
            s,
            [
                "Which magazine was started first Arthur's Magazine",
                "Which magazine was started first First for Women"
            ]
        );
        assert!(split_compound("Who wrote Hamlet?").is_empty());
    }
}
