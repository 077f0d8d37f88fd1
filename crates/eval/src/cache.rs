//! An append-only JSONL cache of slow results (a generator's judgements,
//! queries, hypothetical documents): read at start, appended to and flushed
//! as each result arrives, so a stopped run resumes without asking again.

use std::collections::HashMap;
use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;

use serde::Serialize;

use crate::EvalError;
use crate::error::io;

/// An append-only JSONL cache: every line a record, read at start, appended
/// as records arrive, so a stopped run resumes where it was. A line cut
/// short by a killed run is skipped (made again).
pub struct JsonlCache<K, V> {
    map: HashMap<K, V>,
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    /// Records made (inserted) since the cache was opened.
    pub made: usize,
}

impl<K: std::hash::Hash + Eq, V: Clone> JsonlCache<K, V> {
    /// The cache in `path` (created when missing); `key` maps a record to
    /// its entry.
    pub fn open<R: serde::de::DeserializeOwned>(
        path: PathBuf,
        key: impl Fn(R) -> (K, V),
    ) -> Result<Self, EvalError> {
        let mut map = HashMap::new();
        if path.exists() {
            let file = std::fs::File::open(&path).map_err(io("read", &path))?;
            for line in std::io::BufReader::new(file).lines() {
                let line = line.map_err(io("read", &path))?;
                if let Ok(record) = serde_json::from_str::<R>(&line) {
                    let (k, v) = key(record);
                    map.insert(k, v);
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io("write", &path))?;
        Ok(Self {
            map,
            file: std::io::BufWriter::new(file),
            path,
            made: 0,
        })
    }

    /// A cached value.
    pub fn get(&self, key: &K) -> Option<V> {
        self.map.get(key).cloned()
    }

    /// Remember `value` under `key`, appending `record` to the file.
    pub fn insert(&mut self, key: K, value: V, record: &impl Serialize) -> Result<(), EvalError> {
        let line = serde_json::to_string(record)?;
        writeln!(self.file, "{line}")
            .and_then(|()| self.file.flush())
            .map_err(io("write", &self.path))?;
        self.map.insert(key, value);
        self.made += 1;
        Ok(())
    }
}
