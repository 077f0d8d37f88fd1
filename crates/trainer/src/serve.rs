//! `trainer serve`: a corpus as a network search source until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rlrag_eval::datasets;
use rlrag_eval::server::{Corpus, serve};
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
}

pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let ds = datasets::load(&args.data, args.format, None)?;
    let n = ds.corpus.len();
    let corpus = Corpus::new(ds.corpus, Duration::from_millis(args.delay_ms))?;
    serve(corpus, args.listen, |addr| {
        eprintln!(
            "serving {n} passages of {} at http://{addr}/search (POST {{\"queries\": [..], \"k\": 10}})",
            args.data.display()
        );
    })?;
    Ok(())
}
