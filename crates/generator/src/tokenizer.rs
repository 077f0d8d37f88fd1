//! The generator's tokenizer, built from a GGUF file's vocabulary:
//! byte-level BPE (`tokenizer.ggml.model` `gpt2`) from
//! `tokenizer.ggml.tokens` and `tokenizer.ggml.merges`, with the
//! pre-tokenizer its `tokenizer.ggml.pre` names, and the control tokens
//! (`<|im_start|>`) matched whole in the text, as llama.cpp does with
//! special tokens parsed. Token ids equal llama.cpp's
//! (`tests/golden/gguf/smollm2-tokens.json`).

use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    Model, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer, SplitDelimiterBehavior,
};

use crate::GeneratorError;
use crate::gguf::{Gguf, Value};

/// A byte-level BPE tokenizer from a GGUF file.
pub struct GgufTokenizer {
    bpe: tokenizers::models::bpe::BPE,
    digits: Option<Split>,
    bytes: ByteLevel,
    /// Control tokens, longest first (matched whole before BPE).
    special: Vec<(String, u32)>,
}

impl std::fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field("special", &self.special.len())
            .finish()
    }
}

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
        let mut special = Vec::new();
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
                special.push((token.to_owned(), id));
            }
        }
        special.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let merges: Vec<serde_json::Value> = get("tokenizer.ggml.merges")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no tokenizer.ggml.merges"))?
            .iter()
            .map(|m| {
                m.as_str()
                    .and_then(|m| m.split_once(' '))
                    .map(|(a, b)| serde_json::json!([a, b]))
                    .ok_or_else(|| bad(format!("merge {m:?} is not two tokens")))
            })
            .collect::<Result<_, _>>()?;
        // Through JSON text: BPE's deserialiser borrows its strings.
        let json = serde_json::json!({
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
        })
        .to_string();
        let bpe = serde_json::from_str(&json)
            .map_err(|e| bad(format!("the vocabulary and merges: {e}")))?;
        // llama.cpp's pre-tokenizers by name: SmolLM splits digits one by
        // one before the GPT-2 pattern; GPT-2 itself does not.
        let digits = match get("tokenizer.ggml.pre").and_then(Value::as_str) {
            Some("smollm") => Some(
                Split::new(
                    SplitPattern::Regex(r"\p{N}".into()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .map_err(|e| bad(e.to_string()))?,
            ),
            Some("gpt2") | None => None,
            Some(other) => return Err(bad(format!("pre-tokenizer `{other}` (smollm or gpt2)"))),
        };
        Ok(Self {
            bpe,
            digits,
            bytes: ByteLevel::new(false, false, true),
            special,
        })
    }

    /// Token ids of `text` (no BOS), control tokens matched whole.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, GeneratorError> {
        let mut ids = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            // The earliest control token in the rest (longest at a tie).
            let next = self
                .special
                .iter()
                .filter_map(|(s, id)| rest.find(s.as_str()).map(|at| (at, s.len(), *id)))
                .min_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            let (plain, after) = match next {
                Some((at, len, id)) => {
                    let plain = &rest[..at];
                    self.encode_plain(plain, &mut ids)?;
                    ids.push(id);
                    (None, &rest[at + len..])
                }
                None => (Some(rest), ""),
            };
            if let Some(plain) = plain {
                self.encode_plain(plain, &mut ids)?;
            }
            rest = after;
        }
        Ok(ids)
    }

    fn encode_plain(&self, text: &str, ids: &mut Vec<u32>) -> Result<(), GeneratorError> {
        if text.is_empty() {
            return Ok(());
        }
        let mut pre = PreTokenizedString::from(text);
        if let Some(digits) = &self.digits {
            digits
                .pre_tokenize(&mut pre)
                .map_err(|e| bad(e.to_string()))?;
        }
        self.bytes
            .pre_tokenize(&mut pre)
            .map_err(|e| bad(e.to_string()))?;
        for (piece, _, _) in pre.get_splits(OffsetReferential::Original, OffsetType::Byte) {
            for token in self.bpe.tokenize(piece).map_err(|e| bad(e.to_string()))? {
                ids.push(token.id);
            }
        }
        Ok(())
    }
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
