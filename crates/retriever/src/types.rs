use serde::{Deserialize, Serialize};

use rlrag_reward::retrieval::Qrels;

/// A passage of the corpus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Unique id within the corpus.
    pub id: String,
    /// Title (may be empty).
    pub title: String,
    /// Body text.
    pub text: String,
}

impl Document {
    /// A document from its id, title and text.
    pub fn new(id: impl Into<String>, title: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            text: text.into(),
        }
    }

    /// Title and text as one string, as the lexical indexes see it.
    pub fn full_text(&self) -> String {
        if self.title.is_empty() {
            self.text.clone()
        } else {
            format!("{} {}", self.title, self.text)
        }
    }
}

/// A question with whatever labels its dataset has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// Unique id within the dataset.
    pub id: String,
    /// The question text.
    pub text: String,
    /// Gold answers (empty for sets without answers).
    pub answers: Vec<String>,
    /// Graded relevance judgements: document id → grade (empty when the set
    /// has no passage labels).
    pub qrels: Qrels,
}

/// A learned-sparse term that a hit matched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TermWeight {
    /// The vocabulary token (a word or word piece).
    pub term: String,
    /// Query weight × document weight (1 for a bag of tokens).
    pub weight: f32,
}

/// A scored search result: what every index and the [`crate::Engine`]
/// return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Document id.
    pub id: String,
    /// Retrieval score (higher is better; scales differ between modes).
    pub score: f32,
    /// The learned-sparse terms the hit matched, heaviest first: filled by
    /// [`crate::Engine::search`] when asked to explain, empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terms: Vec<TermWeight>,
}

impl Hit {
    /// A hit without matched terms.
    pub fn new(id: impl Into<String>, score: f32) -> Self {
        Self {
            id: id.into(),
            score,
            terms: Vec::new(),
        }
    }
}
