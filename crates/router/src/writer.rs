//! LLM-written sub-queries (RAG-R1): on `decompose`, a writer (natively the
//! generator adapter, in the browser a JS callback) proposes up to three search
//! queries for the question; the pipeline puts them before its own heuristic
//! ones and still passes them through the query memory. A writer that fails
//! is recorded in the trace and the heuristic queries are used alone.

use std::future::Future;
use std::pin::Pin;

use crate::MAX_SUB_QUERIES;
use crate::error::Fault;
use crate::source::Hit;

/// Longest sub-query kept, in bytes (longer lines are the model rambling).
pub const MAX_SUB_QUERY_BYTES: usize = 256;

/// What a writer returns: the sub-queries, or how it failed.
pub type WriterFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<String>, Fault>> + 'a>>;

/// Writes search queries for a question.
pub trait QueryWriter {
    /// Up to [`MAX_SUB_QUERIES`] queries for `question`, given the passages
    /// gathered so far (best first; may be empty).
    fn write<'a>(&'a self, question: &'a str, evidence: &'a [Hit]) -> WriterFuture<'a>;
}

/// The sub-queries in a model's reply: one per line, with list markers,
/// `Query:`-style labels and quotes removed; empty, overlong, repeated and
/// preamble (ending in `:`) lines dropped; at most [`MAX_SUB_QUERIES`].
pub fn parse_sub_queries(reply: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in reply.lines() {
        let mut s = line.trim();
        // "1.", "2)", "-", "*", "•"
        let digits = s.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && s[digits..].starts_with(['.', ')', ':']) {
            s = s[digits + 1..].trim_start();
        }
        s = s.trim_start_matches(['-', '*', '•']).trim_start();
        if let Some((label, rest)) = s.split_once(':')
            && label.split_whitespace().count() <= 2
            && label.to_ascii_lowercase().contains("quer")
        {
            s = rest.trim();
        }
        let s = s.trim_matches(['"', '\'', '`', '“', '”']).trim();
        // Empty, a preamble ("Here are the queries:"), or rambling.
        if s.is_empty() || s.ends_with(':') || s.len() > MAX_SUB_QUERY_BYTES {
            continue;
        }
        if out.iter().any(|q| q.eq_ignore_ascii_case(s)) {
            continue;
        }
        out.push(s.to_owned());
        if out.len() == MAX_SUB_QUERIES {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_become_clean_queries() {
        let reply = "Here are the queries:\n1. Who directed Jaws?\n2) \"Steven Spielberg birthplace\"\n- Query: Jaws release year\n* Jaws release year\n\n4. one too many";
        assert_eq!(
            parse_sub_queries(reply),
            [
                "Who directed Jaws?",
                "Steven Spielberg birthplace",
                "Jaws release year"
            ]
        );
        let reply = "Sub-query 1: capital of France\n• population of Paris";
        assert_eq!(
            parse_sub_queries(reply),
            ["capital of France", "population of Paris"]
        );
        let long = "x".repeat(MAX_SUB_QUERY_BYTES + 1);
        assert!(parse_sub_queries(&format!("{long}\n\n  \n")).is_empty());
    }
}
