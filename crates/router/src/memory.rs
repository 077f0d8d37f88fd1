//! STIE's memory-filter-confidence across hops: a memory of issued queries
//! per source (a new query too similar to one already sent to every source it
//! is meant for is suppressed; the local index's miss is no reason not to ask
//! the network the same thing), a filter over
//! gathered passages (seen ids dropped, near-duplicate texts collapsed), and
//! a calibrated confidence in the evidence (stop when it is high).

use std::collections::{BTreeSet, HashMap, HashSet};

use rlrag_retriever::Analyzer;
use rlrag_retriever::hash::fnv1a;
use serde::{Deserialize, Serialize};

use crate::SourceKind;
use crate::source::Hit;

/// Words that ask rather than say: never salient, never what makes two
/// queries differ.
pub(crate) const QUESTION_WORDS: [&str; 24] = [
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "did", "does", "do",
    "was", "were", "is", "are", "has", "have", "had", "can", "could", "would", "many", "much",
];

/// The content terms of a text: analysed (lower-cased, stemmed, stopwords
/// out) and without question words.
pub(crate) fn content_terms(analyzer: &Analyzer, text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    analyzer.for_each_term(text, |t| {
        if !QUESTION_WORDS.contains(&t) {
            out.insert(t.to_owned());
        }
    });
    out
}

fn jaccard<T: Ord>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> f32 {
    let inter = a.intersection(b).count();
    let union = a.len() + b.len() - inter;
    if union == 0 {
        1.0
    } else {
        inter as f32 / union as f32
    }
}

/// What the memory said of a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Admission {
    /// New enough: issue it.
    Admitted,
    /// Too close to an earlier query (or empty of content): not issued.
    Suppressed {
        /// The earlier query it repeats (empty for a query without content).
        similar_to: String,
        /// Jaccard similarity of their content terms.
        similarity: f32,
    },
}

/// The queries a question has issued so far, and where to.
#[derive(Debug, Clone)]
pub struct QueryMemory {
    analyzer: Analyzer,
    threshold: f32,
    issued: Vec<(String, BTreeSet<String>, SourceKind)>,
    suppressed: u32,
}

impl QueryMemory {
    /// A memory that suppresses a query whose content terms overlap an
    /// earlier query's by at least `threshold` (Jaccard, in `(0, 1]`).
    pub fn new(threshold: f32) -> Self {
        Self {
            analyzer: Analyzer::default(),
            threshold,
            issued: Vec::new(),
            suppressed: 0,
        }
    }

    /// Decide on `query` for `sources`: suppressed when every one of them
    /// was sent a similar query already (or the query has no content); an
    /// admitted query is remembered as issued to each of `sources`.
    pub fn admit(&mut self, query: &str, sources: &[SourceKind]) -> Admission {
        let terms = content_terms(&self.analyzer, query);
        if terms.is_empty() {
            self.suppressed += 1;
            return Admission::Suppressed {
                similar_to: String::new(),
                similarity: 1.0,
            };
        }
        let closest = |source: SourceKind| {
            self.issued
                .iter()
                .filter(|(_, _, s)| *s == source)
                .map(|(q, t, _)| (q, jaccard(&terms, t)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .filter(|(_, similarity)| *similarity >= self.threshold)
        };
        let repeats: Vec<_> = sources.iter().map(|&s| closest(s)).collect();
        if !sources.is_empty()
            && let Some(Some((q, similarity))) = repeats.iter().all(Option::is_some).then(|| {
                repeats
                    .iter()
                    .flatten()
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .copied()
            })
        {
            let similar_to = q.clone();
            self.suppressed += 1;
            return Admission::Suppressed {
                similar_to,
                similarity,
            };
        }
        for &s in sources {
            self.issued.push((query.to_owned(), terms.clone(), s));
        }
        Admission::Admitted
    }

    /// Distinct queries issued (to any source).
    pub fn issued(&self) -> usize {
        let distinct: BTreeSet<&str> = self.issued.iter().map(|(q, _, _)| q.as_str()).collect();
        distinct.len()
    }

    /// Queries suppressed.
    pub fn suppressed(&self) -> u32 {
        self.suppressed
    }
}

/// What the filter did with a hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filtered {
    /// A passage not seen before: keep it.
    New,
    /// This id was gathered before.
    Seen,
    /// Its text nearly repeats a passage gathered before (that passage's id).
    NearDuplicate(String),
}

/// Word 3-gram shingles, hashed (FNV-1a: the same on every platform).
fn shingles(text: &str) -> HashSet<u64> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let hash = |parts: &[String]| fnv1a(parts.iter().flat_map(|p| [p.as_bytes(), b" "]));
    if words.len() < 3 {
        return std::iter::once(hash(&words)).collect();
    }
    words.windows(3).map(hash).collect()
}

/// The passages a question has gathered: drops repeats and near-duplicates.
#[derive(Debug, Clone)]
pub struct EvidenceFilter {
    near_duplicate: f32,
    seen: HashSet<String>,
    kept: Vec<(String, HashSet<u64>)>,
    dropped_seen: u32,
    collapsed: u32,
}

impl EvidenceFilter {
    /// A filter that collapses texts whose 3-gram shingles overlap by at
    /// least `near_duplicate` (Jaccard).
    pub fn new(near_duplicate: f32) -> Self {
        Self {
            near_duplicate,
            seen: HashSet::new(),
            kept: Vec::new(),
            dropped_seen: 0,
            collapsed: 0,
        }
    }

    /// Classify `hit`; a new one is remembered.
    pub fn admit(&mut self, hit: &Hit) -> Filtered {
        if self.seen.contains(&hit.id) {
            self.dropped_seen += 1;
            return Filtered::Seen;
        }
        let sh = shingles(&format!("{} {}", hit.title, hit.text));
        for (id, other) in &self.kept {
            let inter = sh.intersection(other).count();
            let union = sh.len() + other.len() - inter;
            if union > 0 && inter as f32 / union as f32 >= self.near_duplicate {
                self.collapsed += 1;
                self.seen.insert(hit.id.clone());
                return Filtered::NearDuplicate(id.clone());
            }
        }
        self.seen.insert(hit.id.clone());
        self.kept.push((hit.id.clone(), sh));
        Filtered::New
    }

    /// Passages dropped because their id was seen.
    pub fn dropped_seen(&self) -> u32 {
        self.dropped_seen
    }

    /// Passages collapsed into a near-duplicate.
    pub fn collapsed(&self) -> u32 {
        self.collapsed
    }
}

/// The evidence features the confidence reads.
pub const CONFIDENCE_FEATURES: usize = 7;

/// The evidence features' names, in the order [`evidence_features`] gives them.
pub const CONFIDENCE_FEATURE_NAMES: [&str; CONFIDENCE_FEATURES] = [
    "best_single",
    "union",
    "agree",
    "lists",
    "margin",
    "entity_titles",
    "chained",
];

/// Evidence features: how much of the question the best passage covers, how
/// much the top five cover together, whether the lists agree on their best
/// passage, how many lists there are, the margin of the best list, the
/// share of the question's entities ([`crate::queries::question_entities`])
/// that a top passage is titled after, and whether the top five hold a
/// bridge ([`chained`]).
pub fn evidence_features(
    question_terms: &BTreeSet<String>,
    entities: &[BTreeSet<String>],
    analyzer: &Analyzer,
    ranked: &[&Hit],
    lists: &[Vec<Hit>],
) -> [f32; CONFIDENCE_FEATURES] {
    let total = question_terms.len().max(1) as f32;
    let covered = |hits: &[&Hit]| {
        let mut seen = BTreeSet::new();
        for h in hits {
            analyzer.for_each_term(&format!("{} {}", h.title, h.text), |t| {
                if question_terms.contains(t) {
                    seen.insert(t.to_owned());
                }
            });
        }
        seen.len() as f32 / total
    };
    let best_single = ranked
        .iter()
        .take(3)
        .map(|h| covered(&[h]))
        .fold(0.0_f32, f32::max);
    let union = covered(&ranked.iter().take(5).copied().collect::<Vec<_>>());
    let top = ranked.first().map(|h| h.id.as_str());
    let nonempty: Vec<&Vec<Hit>> = lists.iter().filter(|l| !l.is_empty()).collect();
    let agree = if nonempty.is_empty() {
        0.0
    } else {
        nonempty
            .iter()
            .filter(|l| Some(l[0].id.as_str()) == top)
            .count() as f32
            / nonempty.len() as f32
    };
    let margin = nonempty
        .iter()
        .map(|l| match l.as_slice() {
            [a, b, ..] if a.score.abs() > 0.0 => {
                ((a.score - b.score) / a.score.abs()).clamp(0.0, 1.0)
            }
            [_] => 1.0,
            _ => 0.0,
        })
        .fold(0.0_f32, f32::max);
    [
        best_single,
        union,
        agree,
        (nonempty.len() as f32 / 6.0).min(1.0),
        margin,
        entity_titles(entities, analyzer, ranked),
        chained(question_terms, analyzer, ranked),
    ]
}

/// 1 when one of the top five passages is titled after a name that the
/// question does not hold but another top-five passage's text does: the
/// evidence links what the question names to a further article, as a
/// bridge question's second passage is reached (HotpotQA-100, local half,
/// single-shot BM25: 16 of the 20 questions where it fires are answered
/// there, against 48 of 100 overall). 0 otherwise.
pub fn chained(question_terms: &BTreeSet<String>, analyzer: &Analyzer, ranked: &[&Hit]) -> f32 {
    let top = &ranked[..ranked.len().min(5)];
    let texts: Vec<String> = top.iter().map(|h| h.text.to_lowercase()).collect();
    let linked = top.iter().any(|h| {
        let name = title_name(&h.title);
        let terms = content_terms(analyzer, &name);
        !terms.is_empty()
            && !terms.is_subset(question_terms)
            && top
                .iter()
                .zip(&texts)
                .any(|(other, t)| other.id != h.id && contains_phrase(t, &name))
    });
    f32::from(u8::from(linked))
}

/// A title as the name other passages use: lowercased, without a trailing
/// disambiguation in parentheses ("Leland (film)" → "leland").
fn title_name(title: &str) -> String {
    let t = title.trim();
    let t = match (t.rfind(" ("), t.ends_with(')')) {
        (Some(at), true) => &t[..at],
        _ => t,
    };
    t.trim().to_lowercase()
}

/// `phrase` occurs in `text` between word boundaries (both lowercased).
fn contains_phrase(text: &str, phrase: &str) -> bool {
    if phrase.is_empty() {
        return false;
    }
    let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
    text.match_indices(phrase).any(|(at, _)| {
        boundary(text[..at].chars().next_back())
            && boundary(text[at + phrase.len()..].chars().next())
    })
}

/// Share of the question's entities that some top-10 passage is titled
/// after (half of the entity's terms in the title and half of the title's in
/// the entity): whether the articles the question names were found at all.
/// 1 when the question names none.
fn entity_titles(entities: &[BTreeSet<String>], analyzer: &Analyzer, ranked: &[&Hit]) -> f32 {
    if entities.is_empty() {
        return 1.0;
    }
    let titles: Vec<BTreeSet<String>> = ranked
        .iter()
        .take(10)
        .map(|h| content_terms(analyzer, &h.title))
        .filter(|t| !t.is_empty())
        .collect();
    let found = entities
        .iter()
        .filter(|e| {
            titles.iter().any(|t| {
                let common = e.intersection(t).count();
                2 * common >= e.len() && 2 * common >= t.len()
            })
        })
        .count();
    found as f32 / entities.len() as f32
}

/// A calibrated confidence: logistic regression over [`evidence_features`],
/// fitted on rollouts (label: the evidence contained the answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confidence {
    /// One weight per feature.
    pub weights: [f32; CONFIDENCE_FEATURES],
    /// The intercept.
    pub bias: f32,
}

impl Default for Confidence {
    /// Before fitting: coverage of the question drives it (fit replaces this).
    fn default() -> Self {
        Self {
            weights: [3.0, 3.0, 1.0, 0.0, 0.5, 1.0, 1.0],
            bias: -5.0,
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Confidence {
    /// The probability that the evidence holds the answer.
    pub fn score(&self, features: &[f32; CONFIDENCE_FEATURES]) -> f32 {
        let z = self
            .weights
            .iter()
            .zip(features)
            .map(|(w, f)| w * f)
            .sum::<f32>()
            + self.bias;
        sigmoid(z)
    }

    /// Fit by full-batch gradient descent on the log loss (deterministic),
    /// with a little L2 on the weights. Needs both labels present.
    pub fn fit(samples: &[([f32; CONFIDENCE_FEATURES], bool)], epochs: usize) -> Option<Self> {
        let positives = samples.iter().filter(|s| s.1).count();
        if positives == 0 || positives == samples.len() {
            return None;
        }
        let mut c = Confidence {
            weights: [0.0; CONFIDENCE_FEATURES],
            bias: 0.0,
        };
        let n = samples.len() as f32;
        let lr = 0.5;
        for _ in 0..epochs {
            let mut gw = [0.0_f32; CONFIDENCE_FEATURES];
            let mut gb = 0.0;
            for (f, y) in samples {
                let err = c.score(f) - f32::from(u8::from(*y));
                for (g, x) in gw.iter_mut().zip(f) {
                    *g += err * x;
                }
                gb += err;
            }
            for (w, g) in c.weights.iter_mut().zip(gw) {
                *w -= lr * (g / n + 1e-3 * *w);
            }
            c.bias -= lr * gb / n;
        }
        Some(c)
    }

    /// Expected calibration error over 10 equal-width bins.
    pub fn calibration_error(&self, samples: &[([f32; CONFIDENCE_FEATURES], bool)]) -> f32 {
        let mut bins: HashMap<usize, (f32, f32)> = HashMap::new();
        for (f, y) in samples {
            let p = self.score(f);
            let b = ((p * 10.0) as usize).min(9);
            let e = bins.entry(b).or_default();
            e.0 += p;
            e.1 += f32::from(u8::from(*y));
        }
        let n = samples.len().max(1) as f32;
        // Σ_bins (count/n)·|mean p − mean y| = Σ_bins |Σp − Σy| / n
        bins.values().map(|(p, y)| (p - y).abs() / n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, text: &str) -> Hit {
        Hit {
            id: id.into(),
            title: String::new(),
            text: text.into(),
            score: 1.0,
        }
    }

    #[test]
    fn memory_suppresses_a_repeated_query_and_admits_a_new_one() {
        const L: &[SourceKind] = &[SourceKind::Local];
        const N: &[SourceKind] = &[SourceKind::Network];
        const BOTH: &[SourceKind] = &[SourceKind::Local, SourceKind::Network];
        let mut m = QueryMemory::new(0.8);
        assert_eq!(
            m.admit("Who directed the film Kiss and Tell?", L),
            Admission::Admitted
        );
        // The same content in other words, to the same source: suppressed.
        let again = m.admit("which film director directed Kiss and Tell", L);
        assert!(
            matches!(again, Admission::Suppressed { similarity, .. } if similarity >= 0.8),
            "{again:?}"
        );
        // The network has not been asked: admitted there (and for both).
        assert_eq!(
            m.admit("which film director directed Kiss and Tell", BOTH),
            Admission::Admitted
        );
        assert!(matches!(
            m.admit("Who directed the film Kiss and Tell?", N),
            Admission::Suppressed { .. }
        ));
        assert_eq!(
            m.admit("Shirley Temple government position", N),
            Admission::Admitted
        );
        assert!(matches!(
            m.admit("what is the?", BOTH),
            Admission::Suppressed { .. }
        ));
        assert_eq!((m.issued(), m.suppressed()), (3, 3));
    }

    #[test]
    fn filter_drops_seen_ids_and_collapses_near_duplicates() {
        let mut f = EvidenceFilter::new(0.7);
        let text =
            "Shirley Temple was an American actress and diplomat who served as ambassador to Ghana";
        assert_eq!(f.admit(&hit("a", text)), Filtered::New);
        assert_eq!(f.admit(&hit("a", text)), Filtered::Seen);
        let copy = format!("{text}.");
        assert_eq!(
            f.admit(&hit("a-mirror", &copy)),
            Filtered::NearDuplicate("a".into())
        );
        assert_eq!(
            f.admit(&hit("b", "Kiss and Tell is a 1945 American comedy film")),
            Filtered::New
        );
        assert_eq!((f.dropped_seen(), f.collapsed()), (1, 1));
    }

    #[test]
    fn entity_titles_say_whether_the_named_articles_were_found() {
        let analyzer = Analyzer::default();
        let q = "Which magazine was started first, Arthur's Magazine or First for Women?";
        let entities = crate::queries::question_entities(q, &analyzer);
        assert_eq!(entities.len(), 2, "{entities:?}");
        let titled = |id: &str, title: &str| Hit {
            id: id.into(),
            title: title.into(),
            text: "x".into(),
            score: 1.0,
        };
        let (a, w, other) = (
            titled("a", "Arthur's Magazine"),
            titled("w", "First for Women"),
            titled("o", "Women's Health (magazine)"),
        );
        let terms = content_terms(&analyzer, q);
        let f = |hits: &[&Hit]| evidence_features(&terms, &entities, &analyzer, hits, &[])[5];
        assert_eq!(f(&[&a, &w]), 1.0);
        assert_eq!(f(&[&other, &a]), 0.5);
        assert_eq!(f(&[&other]), 0.0);
        assert_eq!(
            evidence_features(&terms, &[], &analyzer, &[&other], &[])[5],
            1.0,
            "nothing named, nothing missing"
        );
    }

    #[test]
    fn chained_finds_a_passage_that_another_one_names() {
        let analyzer = Analyzer::default();
        let q = "Who directed the film that was shot in or around Leland, North Carolina in 1986?";
        let terms = content_terms(&analyzer, q);
        let passage = |id: &str, title: &str, text: &str| Hit {
            id: id.into(),
            title: title.into(),
            text: text.into(),
            score: 1.0,
        };
        let film = passage(
            "f",
            "Maximum Overdrive",
            "Maximum Overdrive is a 1986 film shot in and around Leland, North Carolina, \
             written and directed by Stephen King.",
        );
        let king = passage(
            "k",
            "Stephen King (author)",
            "Stephen King is an American author.",
        );
        let leland = passage(
            "l",
            "Leland, North Carolina",
            "Leland is a town. Maximum Overdrive was shot there.",
        );
        let kingdom = passage(
            "x",
            "King",
            "A king is a monarch; Stephen Kingsley was not one.",
        );
        let f = |hits: &[&Hit]| chained(&terms, &analyzer, hits);
        assert_eq!(
            f(&[&film, &king]),
            1.0,
            "the film names the director's article"
        );
        assert_eq!(f(&[&king, &film]), 1.0, "in either order");
        assert_eq!(f(&[&film]), 0.0, "one passage links nothing");
        // Leland is named by the question: the film passage naming it is no
        // bridge; the Leland passage naming the film is.
        assert_eq!(
            f(&[&film, &passage("l2", "Leland, North Carolina", "A town.")]),
            0.0
        );
        assert_eq!(f(&[&leland, &film]), 1.0);
        assert_eq!(
            f(&[&kingdom, &passage("s", "Stephen King", "x")]),
            0.0,
            "whole words only"
        );
        let beyond: Vec<&Hit> = [&film, &leland, &leland, &leland, &leland, &king]
            .into_iter()
            .collect();
        assert_eq!(f(&beyond[..5]), 1.0);
        let others: Vec<Hit> = (0..4)
            .map(|i| passage(&format!("o{i}"), &format!("Other {i}"), "Unrelated."))
            .collect();
        let mut late = vec![&film];
        late.extend(&others);
        late.push(&king);
        assert_eq!(f(&late), 0.0, "the top five only");
        assert_eq!(
            f(&[&film, &film]),
            0.0,
            "a passage naming itself is no link"
        );
        assert_eq!(
            evidence_features(&terms, &[], &analyzer, &[&film, &king], &[])[6],
            1.0
        );
    }

    #[test]
    fn confidence_fit_separates_and_is_calibrated() {
        // Label = the first feature is high; the fit must find it.
        let samples: Vec<_> = (0..200)
            .map(|i| {
                let x = (i % 20) as f32 / 19.0;
                ([x, 0.5, 0.0, 0.3, 0.1, 1.0, 0.0], x > 0.5)
            })
            .collect();
        let c = Confidence::fit(&samples, 2000).expect("both labels");
        assert!(c.score(&[1.0, 0.5, 0.0, 0.3, 0.1, 1.0, 0.0]) > 0.8);
        assert!(c.score(&[0.0, 0.5, 0.0, 0.3, 0.1, 1.0, 0.0]) < 0.2);
        assert!(c.calibration_error(&samples) < 0.15);
        assert!(
            Confidence::fit(&samples[..1], 10).is_none(),
            "one label only"
        );
    }
}
