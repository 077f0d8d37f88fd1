//! `trainer serve`: a corpus as a network search source until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rlrag_eval::datasets;
use rlrag_eval::server::{Corpus, Limits, serve};
use rlrag_retriever::DatasetFormat;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The corpus: a BEIR or QA directory, or a HotpotQA file.
    #[arg(long)]
    data: PathBuf,
    /// Dataset format; detected from the path when omitted.
    #[arg(long)]
    format: Option<DatasetFormat>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Answer every request this much later (to test slow networks).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Seconds a client may take to send a request's headers (and an idle
    /// connection stays open) [default: 10].
    #[arg(long)]
    header_timeout_s: Option<f64>,
    /// Seconds one request may take, its body read included, before it is
    /// answered 408 [default: 30].
    #[arg(long)]
    request_timeout_s: Option<f64>,
    /// Most connections open at once [default: 4096].
    #[arg(long)]
    max_connections: Option<usize>,
}

fn seconds(what: &str, s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| anyhow::anyhow!("--{what} must be a positive number of seconds, got {s}"))
}

pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let ds = datasets::load(&args.data, args.format, None)?;
    let n = ds.corpus.len();
    let defaults = Limits::default();
    let limits = Limits {
        header_timeout: match args.header_timeout_s {
            Some(s) => seconds("header-timeout-s", s)?,
            None => defaults.header_timeout,
        },
        request_timeout: match args.request_timeout_s {
            Some(s) => seconds("request-timeout-s", s)?,
            None => defaults.request_timeout,
        },
        max_connections: match args.max_connections {
            Some(0) => anyhow::bail!("--max-connections must be at least 1"),
            Some(n) => n,
            None => defaults.max_connections,
        },
    };
    let corpus = Corpus::new(ds.corpus, Duration::from_millis(args.delay_ms))?;
    serve(corpus, args.listen, limits, |addr| {
        eprintln!(
            "serving {n} passages of {} at http://{addr}/search (POST {{\"queries\": [..], \"k\": 10}})",
            args.data.display()
        );
    })?;
    Ok(())
}
