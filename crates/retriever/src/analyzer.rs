//! Text analysis for the lexical indexes: split into word tokens, lower-case,
//! drop stopwords, stem.
//!
//! The default reproduces `bm25s`' English pipeline: tokens are maximal runs of
//! word characters (letters, digits, `_`) of at least two characters (the
//! regex `\b\w\w+\b`), lower-cased, minus Lucene's 33 English stopwords, then
//! stemmed with Snowball English (Porter2, as PyStemmer).

use std::collections::HashSet;
use std::fmt;

use rust_stemmers::{Algorithm, Stemmer};
use serde::{Deserialize, Serialize};

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
    stopwords: HashSet<String>,
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

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Analyzer {
    /// An analyzer with the given settings.
    pub fn new(config: AnalyzerConfig) -> Self {
        let stopwords = match &config.stopwords {
            Stopwords::None => HashSet::new(),
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
                Some(stemmer) => f(&stemmer.stem(word)),
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
