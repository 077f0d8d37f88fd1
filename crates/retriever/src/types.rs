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

/// A scored search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Document id.
    pub id: String,
    /// Retrieval score (higher is better; scales differ between retrievers).
    pub score: f32,
}

/// Anything that ranks documents for a text query.
pub trait Retriever {
    /// Short name for reports, such as `bm25`.
    fn name(&self) -> &str;

    /// Number of live documents.
    fn len(&self) -> usize;

    /// Whether the index holds no documents.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The best `k` documents for `query`, best first; ties keep insertion order.
    fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, crate::RetrieverError>;

    /// For a retriever answering from an approximate vector index, access to
    /// that index and the exact one it approximates (to measure recall and
    /// speed); `None` for exact retrievers.
    fn ann(&self) -> Option<&dyn AnnProbe> {
        None
    }
}

/// Vector-level access to an approximate index and its exact counterpart.
pub trait AnnProbe {
    /// The query vector the retriever would search with.
    fn embed(&self, query: &str) -> Result<Vec<f32>, crate::RetrieverError>;

    /// Top-k from the approximate index.
    fn search_approximate(
        &self,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<Hit>, crate::RetrieverError>;

    /// Top-k by exhaustive search.
    fn search_exact(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, crate::RetrieverError>;
}
