//! The dataset loaders (a user's corpus and questions): BEIR
//! (`corpus.jsonl`, `queries.jsonl`, `qrels/test.tsv`), QA (`corpus.jsonl`,
//! `qa.jsonl`) and HotpotQA (`questions.json` and an optional
//! `corpus.json`). Input: a format byte, then the files separated by 0xFF
//! bytes, written to a scratch directory of this process.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rlrag_retriever::{Dataset, DatasetFormat, Split};

#[global_allocator]
static ALLOC: rlrag_fuzz::Bounded = rlrag_fuzz::Bounded;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        std::env::temp_dir().join(format!("rlrag-fuzz-datasets-{}", std::process::id()))
    })
}

fn write(name: &str, bytes: &[u8]) {
    let path = scratch().join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("scratch directory");
    }
    std::fs::write(path, bytes).expect("scratch file");
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut files = rest.splitn(3, |&b| b == 0xff);
    let mut next = || files.next().unwrap_or_default();
    let (a, b, c) = (next(), next(), next());
    let _ = std::fs::remove_dir_all(scratch());
    let loaded = match sel % 3 {
        0 => {
            write("corpus.jsonl", a);
            write("queries.jsonl", b);
            write("qrels/test.tsv", c);
            Dataset::load(scratch(), Some(DatasetFormat::Beir), Some(&Split::Test))
        }
        1 => {
            write("corpus.jsonl", a);
            write("qa.jsonl", b);
            Dataset::load(scratch(), Some(DatasetFormat::Qa), None)
        }
        _ => {
            write("questions.json", a);
            if !b.is_empty() {
                write("corpus.json", b);
            }
            Dataset::load(
                &scratch().join("questions.json"),
                Some(DatasetFormat::Hotpotqa),
                None,
            )
        }
    };
    if let Ok(ds) = loaded {
        assert!(!ds.corpus.is_empty() && !ds.queries.is_empty());
        let _ = ds.report.warnings();
    }
});
