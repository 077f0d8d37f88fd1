//! Model directories on disk: `model.safetensors`, `config.json` (BERT
//! fields and the `"rlrag"` head section), `tokenizer.json`, and the
//! `manifest.json` of a trained model (how it was made, and each file's
//! size and SHA-256). One reader and one writer for every command: a save
//! replaces the directory's files all at once
//! ([`rlrag_retriever::persist::write_dir_atomic`]), so a crash leaves the
//! old model or the new one, never new weights beside an old config; a
//! reader checks the files against the manifest's hashes where it has them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;
use rlrag_encoder::{Encoder, Head, ModelConfig, ModelFiles, SparseActivation};
use rlrag_retriever::hash::fingerprint;

use crate::EvalError;
use crate::error::{io, setting};

pub use rlrag_encoder::models::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};

/// How a trained model (or router) was made.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The three files an encoder loads, as bytes.
#[derive(Debug, Clone)]
pub struct ModelDir {
    /// Where they were read.
    pub dir: PathBuf,
    /// `model.safetensors`.
    pub weights: Vec<u8>,
    /// `config.json`.
    pub config: Vec<u8>,
    /// `tokenizer.json`.
    pub tokenizer: Vec<u8>,
}

/// Read one file of `dir`; the error names the file.
pub fn read_file(dir: &Path, name: &str) -> Result<Vec<u8>, EvalError> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(io("read", &path))
}

impl ModelDir {
    /// Read a model directory.
    pub fn read(dir: &Path) -> Result<Self, EvalError> {
        let read = |name: &str| {
            read_file(dir, name).map_err(|e| match e {
                EvalError::Io {
                    action,
                    path,
                    source,
                } if source.kind() == std::io::ErrorKind::NotFound => EvalError::Io {
                    action,
                    path,
                    source: std::io::Error::new(
                        source.kind(),
                        format!(
                            "{source} (fetch the pretrained models with scripts/fetch-models.sh)"
                        ),
                    ),
                },
                other => other,
            })
        };
        let files = Self {
            dir: dir.to_path_buf(),
            weights: read(WEIGHTS_FILE)?,
            config: read(CONFIG_FILE)?,
            tokenizer: read(TOKENIZER_FILE)?,
        };
        verify_files(
            dir,
            &[
                (WEIGHTS_FILE, &files.weights),
                (CONFIG_FILE, &files.config),
                (TOKENIZER_FILE, &files.tokenizer),
            ],
        )?;
        Ok(files)
    }

    /// A fingerprint of everything that shapes the model's vectors (stable
    /// across builds and toolchains: it keys saved indexes and caches).
    pub fn fingerprint(&self) -> u64 {
        fingerprint(&[&self.weights, &self.config, &self.tokenizer])
    }

    /// The files as the encoder takes them.
    pub fn files(&self) -> ModelFiles<'_> {
        ModelFiles {
            weights: &self.weights,
            config: &self.config,
            tokenizer: &self.tokenizer,
        }
    }

    /// Load the encoder on `device`.
    pub fn load(&self, device: &Device) -> Result<Encoder, EvalError> {
        Encoder::load(self.files(), device).map_err(|e| EvalError::Model {
            dir: self.dir.clone(),
            source: Box::new(e.into()),
        })
    }
}

/// Overrides of a sparse model's head at load time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SparseOverrides {
    /// Replace the activation.
    pub activation: Option<SparseActivation>,
    /// Keep this many terms per vector.
    pub top_k: Option<usize>,
}

/// An encoder loaded from a directory, with the fingerprint of the
/// effective files (overrides applied) and the tokenizer's bytes (exports
/// copy them).
#[derive(Clone)]
pub struct LoadedEncoder {
    /// The encoder.
    pub encoder: Arc<Encoder>,
    /// Fingerprint of weights, effective config and tokenizer.
    pub fingerprint: u64,
    /// `tokenizer.json` as read.
    pub tokenizer: Vec<u8>,
}

/// Load the model in `dir` on `device`; with `sparse`, the overrides apply
/// to its sparse head (a dense model ignores them).
pub fn load_encoder(
    dir: &Path,
    overrides: SparseOverrides,
    sparse: bool,
    device: &Device,
) -> Result<LoadedEncoder, EvalError> {
    let mut files = ModelDir::read(dir)?;
    let in_dir = |e: rlrag_encoder::EncoderError| EvalError::Model {
        dir: dir.to_path_buf(),
        source: Box::new(e.into()),
    };
    let mut cfg = ModelConfig::from_json(&files.config).map_err(in_dir)?;
    if sparse && let Head::Sparse { activation, top_k } = &mut cfg.rlrag.head {
        if let Some(a) = overrides.activation {
            *activation = a;
        }
        if let Some(k) = overrides.top_k {
            *top_k = Some(k);
        }
        if *activation == SparseActivation::Elu1p && top_k.is_none() {
            return Err(setting(
                "--top-k",
                "elu1p weights every vocabulary term: pass --top-k (SiDR uses 768)",
            ));
        }
    }
    cfg.validate()?;
    files.config = cfg.to_json()?;
    let encoder = files.load(device)?;
    Ok(LoadedEncoder {
        encoder: Arc::new(encoder),
        fingerprint: files.fingerprint(),
        tokenizer: files.tokenizer,
    })
}

/// Write `bytes` to `path` atomically and durably
/// ([`rlrag_retriever::persist::write_atomic`]), naming the file in the error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EvalError> {
    rlrag_retriever::persist::write_atomic(path, bytes).map_err(io("write", path))
}

/// Each file's size and SHA-256 (lowercase hex), as the manifest's
/// `files` map holds them.
fn file_hashes(files: &[(&str, &[u8])]) -> serde_json::Value {
    use sha2::Digest as _;
    files
        .iter()
        .map(|(name, bytes)| {
            let digest = sha2::Sha256::digest(bytes);
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            (
                (*name).to_owned(),
                serde_json::json!({"bytes": bytes.len(), "sha256": hex}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Write a model or router directory: `files` and `manifest` with their
/// sizes and hashes added (`"files"`), all replacing the old ones at once
/// ([`rlrag_retriever::persist::write_dir_atomic`]); other entries of the
/// directory (a training log, checkpoints) stay.
pub fn write_dir(
    dir: &Path,
    files: &[(&str, &[u8])],
    manifest: &serde_json::Value,
) -> Result<(), EvalError> {
    let mut manifest = manifest.clone();
    if let Some(m) = manifest.as_object_mut() {
        m.insert("files".to_owned(), file_hashes(files));
    }
    let manifest = serde_json::to_vec_pretty(&manifest)?;
    let mut all = files.to_vec();
    all.push((MANIFEST_FILE, &manifest));
    rlrag_retriever::persist::write_dir_atomic(dir, &all).map_err(io("write", dir))
}

/// Check files read from `dir` against the sizes and hashes in its
/// `manifest.json`, where it has them (pretrained models have no
/// manifest; older ones no hashes): a file that differs means the
/// directory mixes two saves, or was damaged.
pub fn verify_files(dir: &Path, files: &[(&str, &[u8])]) -> Result<(), EvalError> {
    let path = dir.join(MANIFEST_FILE);
    let manifest = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("read", &path)(e)),
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest).map_err(|e| EvalError::Format {
            path: path.clone(),
            reason: format!("not JSON: {e}"),
        })?;
    let Some(listed) = manifest.get("files") else {
        return Ok(());
    };
    let hashes = file_hashes(files);
    for (name, _) in files {
        let (Some(want), Some(have)) = (listed.get(*name), hashes.get(*name)) else {
            continue;
        };
        if want != have {
            return Err(EvalError::Format {
                path: dir.join(name),
                reason: format!(
                    "does not match {MANIFEST_FILE} (it lists {want}, the file is {have}): \
                     the directory mixes files of two saves, or the file was damaged"
                ),
            });
        }
    }
    Ok(())
}

/// Write a model directory: weights, config, tokenizer and the manifest.
pub fn save_model(
    dir: &Path,
    encoder: &Encoder,
    tokenizer: &[u8],
    manifest: &serde_json::Value,
) -> Result<(), EvalError> {
    write_dir(
        dir,
        &[
            (WEIGHTS_FILE, &encoder.weights_safetensors()?),
            (CONFIG_FILE, &encoder.config().to_json()?),
            (TOKENIZER_FILE, tokenizer),
        ],
        manifest,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_temporaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        write_atomic(&path, b"first").expect("write");
        write_atomic(&path, b"second").expect("rewrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("config.json")]);
    }

    /// The manifest lists every file's size and hash; a directory whose
    /// file differs from it (a hand-copied config, a damaged download) is
    /// refused with the file named, while one without hashes still loads.
    #[test]
    fn a_directory_mixing_two_saves_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("model");
        let files: [(&str, &[u8]); 3] = [
            (WEIGHTS_FILE, b"weights v1"),
            (CONFIG_FILE, b"{}"),
            (TOKENIZER_FILE, b"tok"),
        ];
        write_dir(&dir, &files, &serde_json::json!({"steps": 1})).expect("saved");
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(MANIFEST_FILE)).expect("manifest"))
                .expect("json");
        assert_eq!(manifest["steps"], 1);
        assert_eq!(manifest["files"][CONFIG_FILE]["bytes"], 2);
        assert_eq!(
            manifest["files"][CONFIG_FILE]["sha256"],
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        ModelDir::read(&dir).expect("a whole directory reads");
        std::fs::write(dir.join(WEIGHTS_FILE), b"weights v2").expect("tamper");
        let err = ModelDir::read(&dir).expect_err("mixed").to_string();
        assert!(err.contains(WEIGHTS_FILE) && err.contains("mixes"), "{err}");
        std::fs::write(dir.join(MANIFEST_FILE), b"{\"steps\": 1}").expect("no hashes");
        ModelDir::read(&dir).expect("a manifest without hashes reads");
    }

    #[test]
    fn a_missing_model_file_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = ModelDir::read(dir.path()).expect_err("empty directory");
        let mut msg = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            msg += &format!(": {s}");
            source = s.source();
        }
        assert!(msg.contains("model.safetensors"), "{msg}");
        assert!(msg.contains("scripts/fetch-models.sh"), "{msg}");
    }
}
