//! What the router's integration tests share: a small corpus and an
//! engine over it on the real SPLADE-tiny model (`scripts/fetch-models.sh`).
#![allow(dead_code, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::sync::Arc;

use burn::tensor::Device;
use futures_lite::future::block_on;
use rlrag_encoder::Encoder;
use rlrag_encoder::models::pretrained;
use rlrag_retriever::Document;
use rlrag_retriever::engine::{Engine, EngineModels, EngineOptions};

/// Eight passages: a HotpotQA-style pair about Shirley Temple and others.
pub fn corpus() -> Vec<Document> {
    [
        ("kiss", "Kiss and Tell (1945 film)", "Kiss and Tell is a 1945 American comedy film starring then 17-year-old Shirley Temple as Corliss Archer."),
        ("temple", "Shirley Temple", "Shirley Temple Black was an American actress, singer, dancer and diplomat who served as Chief of Protocol of the United States and ambassador to Ghana."),
        ("arthur", "Arthur's Magazine", "Arthur's Magazine (1844-1846) was an American literary periodical published in Philadelphia in the 19th century."),
        ("women", "First for Women", "First for Women is a woman's magazine published by Bauer Media Group in the USA. The magazine was started in 1989."),
        ("paris", "Paris", "Paris is the capital and most populous city of France, on the river Seine."),
        ("seine", "Seine", "The Seine is a river in northern France that flows through Paris into the English Channel."),
        ("ghana", "Ghana", "Ghana is a country in West Africa; its capital is Accra."),
        ("comedy", "Comedy film", "A comedy film is a genre of film in which the main emphasis is on humor."),
    ]
    .into_iter()
    .map(|(id, t, x)| Document::new(id, t, x))
    .collect()
}

/// A BM25-ready engine over `docs`.
pub fn engine(docs: &[Document]) -> Engine {
    let encoder = Encoder::from_dir(&pretrained("splade-tiny"), &Device::flex())
        .expect("run scripts/fetch-models.sh");
    let mut engine = Engine::new(
        EngineModels {
            sparse: Arc::new(encoder),
            sparse_fingerprint: 1,
            dense: None,
        },
        EngineOptions {
            sparse_vectors: false,
            rerank_m: 0,
            ..EngineOptions::default()
        },
    )
    .expect("engine");
    block_on(engine.add_documents(docs, &mut |_| {})).expect("indexes");
    engine
}

/// Read one HTTP request from `stream`: its body (by Content-Length), or
/// `None` when the peer hung up first.
pub fn read_request(stream: &TcpStream) -> Option<Vec<u8>> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut len = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}
