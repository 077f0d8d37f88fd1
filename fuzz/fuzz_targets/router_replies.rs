//! What the router reads from peers: a network source's search reply, an
//! OpenSearch / Elasticsearch cluster's search, mapping and error answers, a
//! generator's sub-queries, verdicts, chat answers, log-probabilities and
//! P(yes) judgements.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rlrag_router::MAX_SUB_QUERIES;
use rlrag_router::llm::{
    parse_answer_logprob, parse_chat_answer, parse_verdict, parse_yes_probability,
};
use rlrag_router::opensearch::{cluster_reason, parse_search, parse_state};
use rlrag_router::source::parse_reply;
use rlrag_router::writer::{MAX_SUB_QUERY_BYTES, parse_sub_queries};

#[global_allocator]
static ALLOC: rlrag_fuzz::Bounded = rlrag_fuzz::Bounded;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let (queries, k) = (1 + usize::from(sel & 3), 1 + usize::from(sel >> 2));
    if let Ok(hits) = parse_reply(body, queries, k) {
        assert_eq!(hits.len(), queries);
        assert!(hits.iter().all(|h| h.len() <= k));
    }
    if let Ok(hits) = parse_search(body, k) {
        assert!(hits.len() <= k);
        assert!(hits.iter().all(|h| !h.id.is_empty() && h.score.is_finite()));
    }
    let _ = cluster_reason(body);
    let text = String::from_utf8_lossy(body);
    let subs = parse_sub_queries(&text);
    assert!(subs.len() <= MAX_SUB_QUERIES);
    assert!(
        subs.iter()
            .all(|q| !q.is_empty() && q.len() <= MAX_SUB_QUERY_BYTES)
    );
    let _ = parse_verdict(&text);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let _ = parse_state(&value);
        let _ = parse_chat_answer(&value);
        if let Some(p) = parse_yes_probability(&value) {
            assert!((0.0..=1.0).contains(&p), "P(yes) {p}");
        }
        let end = usize::from(sel) * 4;
        let _ = parse_answer_logprob(&value, end / 2..end);
    }
});
