//! Text analysis for the lexical indexes: split into word tokens, lower-case,
//! drop stopwords, stem.
//!
//! The default reproduces `bm25s`' English pipeline: tokens are maximal runs of
//! word characters (letters, digits, `_`) of at least two characters (the
//! regex `\b\w\w+\b`), lower-cased, minus Lucene's 33 English stopwords, then
//! stemmed with Snowball English (Porter2, as PyStemmer).

use std::cell::RefCell;
use std::fmt;

use rust_stemmers::{Algorithm, Stemmer};
use serde::{Deserialize, Serialize};

use rlrag_encoder::fasthash::{FastMap, FastSet};

/// Lucene's English stopword set (also `bm25s`' `en` list).
pub const LUCENE_ENGLISH_STOPWORDS: [&str; 33] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// Which stopwords to drop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stopwords {
    /// Keep every token.
    None,
    /// [`LUCENE_ENGLISH_STOPWORDS`].
    English,
    /// A custom list (compared after lower-casing).
    Custom(Vec<String>),
}

/// Which stemmer to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StemmerKind {
    /// No stemming.
    None,
    /// Snowball English (Porter2).
    English,
}

/// Settings of an [`Analyzer`]; stored inside saved indexes so that queries are
/// always analysed the way the documents were.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyzerConfig {
    /// Lower-case before everything else.
    pub lowercase: bool,
    /// Shortest token kept, in characters.
    pub min_token_chars: usize,
    /// Stopwords dropped before stemming.
    pub stopwords: Stopwords,
    /// Stemmer applied last.
    pub stemmer: StemmerKind,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        Self {
            lowercase: true,
            min_token_chars: 2,
            stopwords: Stopwords::English,
            stemmer: StemmerKind::English,
        }
    }
}

/// Turns text into index terms.
pub struct Analyzer {
    config: AnalyzerConfig,
    stopwords: FastSet<String>,
    stemmer: Option<Stemmer>,
}

impl fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Analyzer")
            .field("config", &self.config)
            .finish()
    }
}

impl Clone for Analyzer {
    fn clone(&self) -> Self {
        Self::new(self.config.clone())
    }
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::new(AnalyzerConfig::default())
    }
}

/// Most words whose Snowball English stem a thread remembers (about 2 MB);
/// past it the memory starts over.
const STEM_CACHE_WORDS: usize = 1 << 16;

thread_local! {
    /// Word → Snowball English stem. Words repeat (Zipf), and stemming is
    /// most of the cost of analysing text: a hit skips it.
    static ENGLISH_STEMS: RefCell<FastMap<Box<str>, Box<str>>> = RefCell::new(FastMap::default());
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Analyzer {
    /// An analyzer with the given settings.
    pub fn new(config: AnalyzerConfig) -> Self {
        let stopwords = match &config.stopwords {
            Stopwords::None => FastSet::default(),
            Stopwords::English => LUCENE_ENGLISH_STOPWORDS
                .iter()
                .map(|s| (*s).to_string())
                .collect(),
            Stopwords::Custom(list) => list.iter().map(|s| s.to_lowercase()).collect(),
        };
        let stemmer = match config.stemmer {
            StemmerKind::None => None,
            StemmerKind::English => Some(Stemmer::create(Algorithm::English)),
        };
        Self {
            config,
            stopwords,
            stemmer,
        }
    }

    /// The settings.
    pub fn config(&self) -> &AnalyzerConfig {
        &self.config
    }

    /// Call `f` with each term of `text`, in order.
    pub fn for_each_term(&self, text: &str, mut f: impl FnMut(&str)) {
        let lowered;
        let text = if self.config.lowercase {
            lowered = text.to_lowercase();
            lowered.as_str()
        } else {
            text
        };
        for word in text.split(|c: char| !is_word_char(c)) {
            if word.is_empty()
                || word.chars().count() < self.config.min_token_chars
                || self.stopwords.contains(word)
            {
                continue;
            }
            match &self.stemmer {
                // English is the only stemmer: the cache is keyed by the word alone.
                // A callback that analyses text itself finds the cache in use
                // and stems without it.
                Some(stemmer) => ENGLISH_STEMS.with(|cache| {
                    let Ok(mut cache) = cache.try_borrow_mut() else {
                        f(&stemmer.stem(word));
                        return;
                    };
                    if let Some(stem) = cache.get(word) {
                        f(stem);
                        return;
                    }
                    let stem: Box<str> = stemmer.stem(word).into();
                    f(&stem);
                    if cache.len() >= STEM_CACHE_WORDS {
                        cache.clear();
                    }
                    cache.insert(word.into(), stem);
                }),
                None => f(word),
            }
        }
    }

    /// The terms of `text`, in order.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_term(text, |t| out.push(t.to_string()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pipeline_matches_bm25s_english() {
        // bm25s.tokenize(..., stopwords="en", stemmer=Stemmer("english")) on the
        // same text gives these tokens.
        let a = Analyzer::default();
        assert_eq!(
            a.terms("The Running dogs are in a 3-D world_wide, e.g. I x"),
            ["run", "dog", "world_wid"]
        );
        assert_eq!(
            a.terms("Généralités: über Häuser"),
            ["généralité", "über", "häuser"]
        );
        assert!(a.terms("").is_empty());
        assert!(a.terms("the a an ,,, !").is_empty());
    }

    #[test]
    fn the_stem_cache_gives_the_same_terms_even_when_analysis_nests() {
        let a = Analyzer::default();
        let text = "Running runners ran; the runner runs running races";
        let first = a.terms(text);
        assert_eq!(a.terms(text), first, "cached stems are the stems");
        // A callback that analyses again (the cache is busy): same answers.
        let mut nested = Vec::new();
        a.for_each_term(text, |t| {
            nested.push(t.to_owned());
            nested.extend(a.terms(t));
        });
        let expect: Vec<String> = first
            .iter()
            .flat_map(|t| [t.clone()].into_iter().chain(a.terms(t)))
            .collect();
        assert_eq!(nested, expect);
    }

    #[test]
    fn options_change_the_pipeline() {
        let plain = Analyzer::new(AnalyzerConfig {
            lowercase: false,
            min_token_chars: 1,
            stopwords: Stopwords::Custom(vec!["THE".into()]),
            stemmer: StemmerKind::None,
        });
        assert_eq!(plain.terms("The the Dogs x"), ["The", "Dogs", "x"]);
    }
}
