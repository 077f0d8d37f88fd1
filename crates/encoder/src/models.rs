//! The model directory's file names, and where the pretrained models live
//! on this machine.

use std::path::PathBuf;

/// The weights file of a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The configuration file of a model directory (BERT fields and the
/// `"rlrag"` head section).
pub const CONFIG_FILE: &str = "config.json";
/// The tokenizer file of a model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// The directory `scripts/fetch-models.sh` unpacks models into:
/// `$RLRAG_MODELS`, else `$RLRAG_CACHE/models`, else `~/.cache/rlrag/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RLRAG_MODELS") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("RLRAG_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache/rlrag")
        });
    cache.join("models")
}

/// The directory of a named pretrained model (`minilm`, `splade-tiny`).
pub fn pretrained(name: &str) -> PathBuf {
    models_dir().join(name)
}
