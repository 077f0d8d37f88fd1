//! The `llm` reward environment against a real OpenAI-compatible server
//! (skipped, with the reason printed, when none is running: start one with
//! `scripts/llm-server.sh`), and against endpoints that time out or lie: those
//! judgements score 0 and are counted, and training goes on.
#![allow(missing_docs, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rlrag_retriever::{Document, Query};
use rlrag_router::llm::{LlmClient, LlmConfig};
use rlrag_train::{LlmEnv, LlmScoring, RewardEnv};

fn question() -> (Query, Vec<Document>) {
    let q = Query {
        id: "q".into(),
        text: "What is the capital of France?".into(),
        answers: vec!["Paris".into()],
        qrels: Default::default(),
    };
    let docs = vec![
        Document {
            id: "a".into(),
            title: "Paris".into(),
            text: "Paris is the capital and largest city of France.".into(),
        },
        Document {
            id: "b".into(),
            title: "Bananas".into(),
            text: "Bananas are long curved fruits.".into(),
        },
    ];
    (q, docs)
}

fn client(url: &str, timeout_ms: u64) -> LlmClient {
    LlmClient::new(LlmConfig {
        base_url: url.into(),
        timeout_ms,
        retries: 1,
        ..LlmConfig::default()
    })
    .expect("client")
}

/// A server on 127.0.0.1 answering every connection with `reply` (or
/// nothing, holding the connection open).
fn fake_server(reply: Option<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s: TcpStream = stream;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            match reply {
                Some(r) => {
                    let _ = s.write_all(r.as_bytes());
                }
                None => std::thread::sleep(Duration::from_secs(5)),
            }
        }
    });
    format!("http://{addr}/v1")
}

/// A server on 127.0.0.1 answering every connection with `reply`, and how
/// many connections it took.
fn counting_server(reply: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s: TcpStream = stream;
            count.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(reply.as_bytes());
        }
    });
    (format!("http://{addr}/v1"), seen)
}

/// A request the server refuses (4xx) is not sent again; a server error is,
/// after a pause; a redirect is not followed to the peer it names.
#[test]
fn refusals_are_not_retried_and_redirects_not_followed() {
    let answer = |url: &str| client(url, 2000).answer("q?", "a passage");
    let (url, seen) =
        counting_server("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".into());
    let err = answer(&url).expect_err("refused");
    assert!(err.to_string().contains("400"), "{err}");
    assert_eq!(seen.load(Ordering::SeqCst), 1, "a 4xx is not retried");
    let (url, seen) =
        counting_server("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".into());
    let started = Instant::now();
    assert!(answer(&url).is_err());
    assert_eq!(seen.load(Ordering::SeqCst), 2, "a 5xx is retried once");
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "after a pause"
    );
    let (elsewhere, asked) = counting_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".into(),
    );
    let (url, _) = counting_server(format!(
        "HTTP/1.1 302 Found\r\nLocation: {elsewhere}/chat/completions\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(answer(&url).is_err());
    assert_eq!(asked.load(Ordering::SeqCst), 0, "the redirect was followed");
}

#[test]
fn endpoints_that_time_out_or_lie_score_zero_and_are_counted() {
    let (q, docs) = question();
    let refs: Vec<&Document> = docs.iter().collect();
    let cases = [
        None,
        Some("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!"),
        Some(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"choices\":1}",
        ),
        Some("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"),
    ];
    for reply in cases {
        let url = fake_server(reply);
        let mut env = LlmEnv::new(client(&url, 300), LlmScoring::Answer);
        let started = Instant::now();
        let r = env
            .rewards(&q, &refs)
            .expect("a broken endpoint is not fatal");
        assert_eq!(r, vec![0.0, 0.0], "{reply:?}");
        assert_eq!(env.stats().failures, 2, "{reply:?}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "timeouts are honoured"
        );
    }
}

/// The URL of a running generator (`RLRAG_LLM_URL`, default 127.0.0.1:8080),
/// or `None` with the reason printed.
fn real_generator() -> Option<String> {
    let url = std::env::var("RLRAG_LLM_URL").unwrap_or_else(|_| "http://127.0.0.1:8080/v1".into());
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    if TcpStream::connect(&host).is_err() {
        println!("skipped: no generator at {url} (start one with scripts/llm-server.sh)");
        return None;
    }
    Some(url)
}

#[test]
fn a_real_generator_judges_passages() {
    let Some(url) = real_generator() else {
        return;
    };
    let (q, docs) = question();
    let refs: Vec<&Document> = docs.iter().collect();
    for scoring in [
        LlmScoring::Answer,
        LlmScoring::GoldProbability { threshold: 0.65 },
    ] {
        let mut env = LlmEnv::new(client(&url, 60_000), scoring);
        let r = env.rewards(&q, &refs).expect("judged");
        println!("{scoring:?}: {r:?}");
        assert_eq!(env.stats().failures, 0, "{scoring:?}");
        assert_eq!(r.len(), 2);
        assert_eq!(r[1], 0.0, "the banana passage does not answer the question");
    }
}

/// R3's one-pass reward reads the prompt's echoed log-probabilities: the
/// gold answer must be likely after the passage that states it and unlikely
/// after one that does not. A server that scores each prompt token with the
/// distribution after it (llama-cpp-python 0.3.36 unpatched, see
/// `scripts/patch_llama_logprobs.py`) fails this: " Paris" then scores as
/// the token following itself.
#[test]
fn a_real_generator_gives_the_gold_answer_its_probability_after_the_passage() {
    let Some(url) = real_generator() else {
        return;
    };
    let c = client(&url, 60_000);
    let (q, docs) = question();
    let p = |doc: &Document| {
        c.gold_probability(&q.text, &doc.text, "Paris")
            .expect("scored")
            .expect("the server echoes log-probabilities")
    };
    let (stated, unrelated) = (p(&docs[0]), p(&docs[1]));
    println!("p(Paris | Paris passage) = {stated}, p(Paris | banana passage) = {unrelated}");
    assert!(stated > 0.1, "{stated}");
    assert!(stated > 50.0 * unrelated, "{stated} vs {unrelated}");
}

#[test]
fn a_real_generator_answers_judges_and_writes_sub_queries() {
    let Some(url) = real_generator() else {
        return;
    };
    let c = client(&url, 60_000);
    let (q, docs) = question();
    let answer = c
        .answer_from(&q.text, &[&docs[1].text, &docs[0].text])
        .expect("answers");
    println!("augmented: {answer:?}");
    assert!(answer.to_lowercase().contains("paris"), "{answer:?}");
    let plain = c
        .answer_from(&q.text, &[])
        .expect("answers without passages");
    println!("plain: {plain:?}");
    assert!(!plain.is_empty());
    let yes = c.judge(&q.text, &q.answers, "Paris").expect("a verdict");
    let no = c.judge(&q.text, &q.answers, "Bananas").expect("a verdict");
    println!("judge(Paris): {yes}, judge(Bananas): {no}");
    let subs = c
        .sub_queries(
            "Which magazine was started first, Arthur's Magazine or First for Women?",
            &[],
        )
        .expect("sub-queries");
    println!("sub-queries: {subs:?}");
    assert!(!subs.is_empty() && subs.len() <= 3, "{subs:?}");
    assert!(subs.iter().all(|s| !s.is_empty() && s.len() <= 256));
}

#[test]
fn a_judge_that_says_neither_yes_nor_no_is_an_error_and_garbled_sub_queries_are_cleaned() {
    let (q, _) = question();
    let maybe = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 37\r\n\r\n{\"choices\":[{\"text\":\" Maybe, hard\"}]}";
    let c = client(&fake_server(Some(maybe)), 2000);
    let err = c
        .judge(&q.text, &q.answers, "Paris")
        .expect_err("no verdict");
    assert!(err.to_string().contains("not yes or no"), "{err}");
    let chat = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 58\r\n\r\n{\"choices\":[{\"message\":{\"content\":\"Maybe, hard to say\"}}]}";
    let c = client(&fake_server(Some(chat)), 2000);
    let err = c
        .judge(&q.text, &q.answers, "Paris")
        .expect_err("a chat reply is not a completion");
    assert!(err.to_string().contains("no choices[0].text"), "{err}");
    // The same reply read as sub-queries: one line, kept as it is.
    assert_eq!(
        c.sub_queries(&q.text, &[]).expect("a reply"),
        ["Maybe, hard to say"]
    );
}
