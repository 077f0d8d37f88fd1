//! The evaluation harness of rlrag, shared by the `trainer` command line,
//! the training runs (`rlrag-train`) and tests:
//!
//! - [`datasets`]: a dataset split with its path in every error, K-fold
//!   parts, the seeded local share of a corpus;
//! - [`models`]: model directories (read, fingerprint, load with head
//!   overrides, atomic writes);
//! - [`retrievers`]: any retriever built from its settings, with a cache of
//!   encoded indexes under a stable key;
//! - [`retrieval`]: a retriever's metrics over a query set (the `eval`
//!   report) and [`retrieval::score_queries`], which training runs reuse;
//! - [`router_setup`]: the router's experiment (sources, reward, generator);
//! - [`router_eval`]: its evaluation against the fixed baselines, traces,
//!   RLAG pairs ([`rlag`]); [`gate_frontier`]: how far a local-first gate
//!   can go, read off the traces;
//! - [`server`]: a corpus as a network search source;
//! - [`device`]: where encoders and training run (CPU, wgpu, CUDA);
//! - [`chart`]: the SVG line chart of training curves;
//! - [`bench`], [`bench_encoder`], [`bench_generator`]: the browser
//!   engine's work, the encoder's and the generator's throughput, timed
//!   natively (the benchmark scripts compare them with a browser, ONNX
//!   Runtime and llama.cpp);
//! - [`progress`]: how long runs report to whoever drives them.
//!
//! Native only. Errors are [`EvalError`]; nothing here prints.

pub mod augment;
pub mod bench;
pub mod bench_encoder;
pub mod bench_generator;
pub mod cache;
pub mod chart;
pub mod datasets;
pub mod dense_scale;
pub mod device;
mod error;
pub mod gate_frontier;
pub mod models;
pub mod opensearch;
pub mod progress;
pub mod retrieval;
pub mod retrievers;
pub mod rlag;
pub mod router_eval;
pub mod router_setup;
pub mod scale;
pub mod server;
pub mod teacher;

pub use error::EvalError;
