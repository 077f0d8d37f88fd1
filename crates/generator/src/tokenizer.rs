//! The generator's tokenizer, built from a GGUF file's vocabulary:
//! byte-level BPE (`tokenizer.ggml.model` `gpt2`) from
//! `tokenizer.ggml.tokens` and `tokenizer.ggml.merges`, with the
//! pre-tokenizer its `tokenizer.ggml.pre` names, and the control tokens
//! (`<|im_start|>`) matched whole in the text, as llama.cpp does with
//! special tokens parsed. Token ids equal llama.cpp's
//! (`tests/golden/gguf/smollm2-tokens.json`). It is a `tokenizers`
//! tokenizer underneath, so a model directory keeps it as
//! `tokenizer.json` and reads it back unchanged.

use std::str::FromStr;

use serde_json::json;

use crate::GeneratorError;
use crate::gguf::{Gguf, Value};

/// A byte-level BPE tokenizer: a `tokenizers` tokenizer (what
/// `tokenizer.json` holds) and each token's bytes.
#[derive(Clone)]
pub struct GgufTokenizer {
    inner: tokenizers::Tokenizer,
    /// Each token's bytes (control tokens: their text).
    pieces: Vec<Vec<u8>>,
    /// Each token's name in the vocabulary.
    names: Vec<String>,
    /// Which tokens are control tokens.
    control: Vec<bool>,
}

impl std::fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field("vocab", &self.pieces.len())
            .finish()
    }
}

/// Qwen2's pre-tokenizer pattern.
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn bad(reason: impl Into<String>) -> GeneratorError {
    GeneratorError::Model {
        reason: reason.into(),
    }
}

impl GgufTokenizer {
    /// The tokenizer a GGUF file describes.
    pub fn from_gguf(file: &Gguf) -> Result<Self, GeneratorError> {
        let get = |k: &str| file.metadata.get(k);
        match get("tokenizer.ggml.model").and_then(Value::as_str) {
            Some("gpt2") => {}
            other => return Err(bad(format!("tokenizer model {other:?} (gpt2 is read)"))),
        }
        let tokens = get("tokenizer.ggml.tokens")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no tokenizer.ggml.tokens"))?;
        let types = get("tokenizer.ggml.token_type").and_then(Value::as_array);
        let mut vocab = serde_json::Map::new();
        let mut added = Vec::new();
        for (id, token) in tokens.iter().enumerate() {
            let token = token
                .as_str()
                .ok_or_else(|| bad(format!("token {id} is not a string")))?;
            let id = u32::try_from(id).map_err(|_| bad("too many tokens"))?;
            vocab.insert(token.to_owned(), id.into());
            let control = types
                .and_then(|t| t.get(id as usize))
                .and_then(Value::as_u64)
                == Some(3);
            if control && !token.is_empty() {
                added.push(json!({
                    "id": id, "content": token, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true,
                }));
            }
        }
        let merges: Vec<serde_json::Value> = get("tokenizer.ggml.merges")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no tokenizer.ggml.merges"))?
            .iter()
            .map(|m| {
                m.as_str()
                    .and_then(|m| m.split_once(' '))
                    .map(|(a, b)| json!([a, b]))
                    .ok_or_else(|| bad(format!("merge {m:?} is not two tokens")))
            })
            .collect::<Result<_, _>>()?;
        let byte_level = json!({
            "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true,
        });
        // llama.cpp's pre-tokenizers by name: SmolLM splits digits one by
        // one before the GPT-2 pattern; GPT-2 itself does not.
        let pre_tokenizer = match get("tokenizer.ggml.pre").and_then(Value::as_str) {
            Some("smollm") => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Isolated", "invert": false},
                byte_level,
            ]}),
            // Qwen2's pattern (llama.cpp's `qwen2`, Hugging Face's Split):
            // single digits, letters with one leading non-letter, and the
            // byte-level step without GPT-2's pattern.
            Some("qwen2") => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
            ]}),
            Some("gpt2") | None => byte_level.clone(),
            Some(other) => {
                return Err(bad(format!(
                    "pre-tokenizer `{other}` (smollm, qwen2 or gpt2)"
                )));
            }
        };
        let json = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": null,
            "decoder": byte_level,
            "model": {
                "type": "BPE",
                "dropout": null,
                "unk_token": null,
                "continuing_subword_prefix": null,
                "end_of_word_suffix": null,
                "fuse_unk": false,
                "byte_fallback": false,
                "ignore_merges": false,
                "vocab": vocab,
                "merges": merges,
            },
        });
        Self::from_json(&json.to_string())
    }

    /// The tokenizer `tokenizer.json` holds (as [`GgufTokenizer::to_json`]
    /// writes it: a byte-level BPE, control tokens as special added
    /// tokens).
    pub fn from_json(json: &str) -> Result<Self, GeneratorError> {
        let inner = tokenizers::Tokenizer::from_str(json)
            .map_err(|e| bad(format!("tokenizer.json: {e}")))?;
        let size = inner.get_vocab_size(true);
        let mut names = vec![String::new(); size];
        for (name, id) in inner.get_vocab(true) {
            match names.get_mut(id as usize) {
                Some(slot) => *slot = name,
                None => return Err(bad(format!("tokenizer.json: token id {id} past {size}"))),
            }
        }
        let mut control = vec![false; size];
        for (id, token) in inner.get_added_tokens_decoder() {
            if let (true, Some(c)) = (token.special, control.get_mut(id as usize)) {
                *c = true;
            }
        }
        let unicode_byte = byte_of_char();
        let pieces = names
            .iter()
            .zip(&control)
            .map(|(name, &c)| {
                if c {
                    name.as_bytes().to_vec()
                } else {
                    token_bytes(name, &unicode_byte)
                }
            })
            .collect();
        Ok(Self {
            inner,
            pieces,
            names,
            control,
        })
    }

    /// `tokenizer.json` (the `tokenizers` format, Hugging Face's).
    pub fn to_json(&self) -> Result<String, GeneratorError> {
        self.inner
            .to_string(false)
            .map_err(|e| bad(format!("tokenizer.json: {e}")))
    }

    /// Token ids of `text` (no BOS), control tokens matched whole.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, GeneratorError> {
        Ok(self
            .inner
            .encode_fast(text, false)
            .map_err(|e| bad(e.to_string()))?
            .get_ids()
            .to_vec())
    }

    /// How many tokens the vocabulary has.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The bytes token `id` stands for (a control token: its text); `None`
    /// past the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.pieces.get(id as usize).map(Vec::as_slice)
    }

    /// The id of the token named `name` in the vocabulary (`<|im_end|>`).
    pub fn token_id(&self, name: &str) -> Option<u32> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// Whether `id` is a control token (`<|im_start|>`, `<|endoftext|>`).
    pub fn is_control(&self, id: u32) -> bool {
        self.control.get(id as usize).copied().unwrap_or(false)
    }

    /// The text of `ids` (bytes that are not UTF-8 replaced by U+FFFD; ids
    /// past the vocabulary skipped).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .filter_map(|&id| self.token_bytes(id))
            .flatten()
            .copied()
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// GPT-2's byte-level alphabet reversed: the byte each of its 256
/// characters stands for (printable Latin-1 bytes are themselves; the
/// others are U+0100 onwards, in byte order).
fn byte_of_char() -> std::collections::HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 256u32;
    (0..=255u8)
        .map(|b| {
            let c = if printable(b) {
                char::from(b)
            } else {
                let c = char::from_u32(next).unwrap_or(char::REPLACEMENT_CHARACTER);
                next += 1;
                c
            };
            (c, b)
        })
        .collect()
}

/// A token's bytes from its byte-level spelling (a character outside the
/// alphabet, which no GPT-2 vocabulary holds, stands for its own UTF-8).
fn token_bytes(token: &str, byte_of: &std::collections::HashMap<char, u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(token.len());
    for c in token.chars() {
        match byte_of.get(&c) {
            Some(&b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// A file without a byte-level BPE vocabulary is refused by name; so is
    /// a pre-tokenizer this reader does not know.
    #[test]
    fn files_without_a_known_vocabulary_are_refused() {
        let mut file = Gguf::parse(&crate::gguf::tests::tiny_file()).unwrap();
        let refused = |file: &Gguf, says: &str| {
            let e = GgufTokenizer::from_gguf(file).unwrap_err();
            assert!(e.to_string().contains(says), "{e} (wanted `{says}`)");
        };
        let set = |file: &mut Gguf, k: &str, v: Value| file.metadata.insert(k.into(), v);
        let text = |s: &str| Value::String(s.into());
        refused(&file, "tokenizer model");
        set(&mut file, "tokenizer.ggml.model", text("gpt2"));
        refused(&file, "tokenizer.ggml.tokens");
        let tokens = ["a", "b", "ab"].map(text).to_vec();
        set(&mut file, "tokenizer.ggml.tokens", Value::Array(tokens));
        set(
            &mut file,
            "tokenizer.ggml.merges",
            Value::Array(vec![text("a b")]),
        );
        let ok = GgufTokenizer::from_gguf(&file).unwrap();
        assert_eq!(ok.encode("ab").unwrap(), vec![2]);
        let again = GgufTokenizer::from_json(&ok.to_json().unwrap()).unwrap();
        assert_eq!(again.encode("abba").unwrap(), ok.encode("abba").unwrap());
        assert_eq!(again.token_bytes(2), Some(&b"ab"[..]));
        let e = GgufTokenizer::from_json("{\"model\": 3}").unwrap_err();
        assert!(e.to_string().contains("tokenizer.json"), "{e}");
        set(&mut file, "tokenizer.ggml.pre", text("qwen9"));
        refused(&file, "qwen9");
        set(
            &mut file,
            "tokenizer.ggml.merges",
            Value::Array(vec![text("ab")]),
        );
        set(&mut file, "tokenizer.ggml.pre", text("gpt2"));
        refused(&file, "two tokens");
    }
}
