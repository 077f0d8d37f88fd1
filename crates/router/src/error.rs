//! The router's errors.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::SourceKind;

/// How a source failed. Recorded in the trace; the question goes on with the
/// other sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fault {
    /// No answer within the time limit.
    Timeout {
        /// The limit in milliseconds.
        limit_ms: u64,
    },
    /// The endpoint answered with an HTTP error status.
    Http {
        /// The status code.
        status: u16,
    },
    /// The answer was not the protocol's JSON (or broke its rules).
    Malformed {
        /// What was wrong.
        detail: String,
    },
    /// The connection failed (refused, reset, DNS, TLS) or a JS callback threw.
    Transport {
        /// The underlying message.
        detail: String,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Timeout { limit_ms } => write!(f, "no answer within {limit_ms} ms"),
            Fault::Http { status } => write!(f, "HTTP status {status}"),
            Fault::Malformed { detail } => write!(f, "malformed answer: {detail}"),
            Fault::Transport { detail } => write!(f, "transport error: {detail}"),
        }
    }
}

/// Errors of the router crate.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// A source failed.
    #[error("the {source_kind:?} source failed: {fault}")]
    Source {
        /// Which source.
        source_kind: SourceKind,
        /// How.
        fault: Fault,
    },
    /// A setting is out of range.
    #[error("invalid setting `{field}`: {reason}")]
    InvalidConfig {
        /// The setting.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// A question the pipeline cannot run (empty, too long).
    #[error("invalid question: {reason}")]
    InvalidQuestion {
        /// Why.
        reason: String,
    },
    /// Policy weights that do not fit the network (wrong shapes, unreadable).
    #[error("policy weights: {reason}")]
    Policy {
        /// What is wrong.
        reason: String,
    },
    /// The generator endpoint failed or answered something unusable (after retries).
    #[error("generator endpoint {url}: {reason}")]
    Endpoint {
        /// The URL called.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// An OpenSearch / Elasticsearch cluster failed or refused a request.
    #[error("cluster {url}, index `{index}`: {what} failed: {fault}{}", if reason.is_empty() { String::new() } else { format!(" ({reason})") })]
    Cluster {
        /// The cluster's URL.
        url: String,
        /// The index.
        index: String,
        /// What was being done.
        what: &'static str,
        /// How it failed.
        fault: Fault,
        /// The cluster's own words (`type: reason`), where it sent any.
        reason: String,
    },
    /// The local retriever failed.
    #[error(transparent)]
    Retriever(#[from] rlrag_retriever::RetrieverError),
    /// The reward configuration is invalid.
    #[error(transparent)]
    Reward(#[from] rlrag_reward::RewardError),
}

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> RouterError {
    RouterError::InvalidConfig {
        field,
        reason: reason.into(),
    }
}
