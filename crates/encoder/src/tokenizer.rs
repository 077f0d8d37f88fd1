//! BERT's tokenizer, assembled from the `tokenizers` crate's own parts.
//!
//! A `tokenizer.json` of a BERT model names a [`BertNormalizer`], a
//! [`BertPreTokenizer`], a [`WordPiece`] model and a post-processor that
//! wraps a text in `[CLS] … [SEP]`. [`BertTokenizer`] reads those parts
//! straight into their concrete types and runs them in the order
//! `tokenizers::Tokenizer` does (added tokens split out, then normalise,
//! pre-tokenize, WordPiece, special tokens, truncation), so the token ids are
//! the same, which the tests check against `tokenizers::Tokenizer` itself.
//!
//! Why not `tokenizers::Tokenizer`: its loader accepts every normaliser,
//! pre-tokenizer, model and post-processor the crate knows, so the browser
//! build carried all of them — with regular-expression engines — for a
//! model that only ever uses BERT's (about a fifth of the wasm), and its
//! generic model type buffers the 30,522-entry vocabulary through an
//! untagged enum while loading (~90 ms in Chromium). Other tokenizer kinds
//! are refused with an error that names what was found.

use serde::Deserialize;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{
    Model, NormalizedString, Normalizer, OffsetType, PreTokenizedString, PreTokenizer,
};

use crate::EncoderError;

/// What `tokenizer.json` holds that BERT tokenization reads; other fields
/// (padding, truncation, decoder) are ignored: the encoder pads and
/// truncates itself.
#[derive(Deserialize)]
struct TokenizerFile {
    #[serde(default)]
    added_tokens: Vec<AddedTokenFile>,
    #[serde(default)]
    normalizer: Option<serde_json::Value>,
    #[serde(default)]
    pre_tokenizer: Option<serde_json::Value>,
    #[serde(default)]
    post_processor: Option<serde_json::Value>,
    model: WordPiece,
}

/// The longest word WordPiece may split (`max_input_chars_per_word`).
const MAX_CHARS_PER_WORD: usize = 512;

/// One entry of `added_tokens`.
#[derive(Deserialize)]
struct AddedTokenFile {
    id: u32,
    content: String,
    #[serde(default)]
    single_word: bool,
    #[serde(default)]
    lstrip: bool,
    #[serde(default)]
    rstrip: bool,
    #[serde(default)]
    normalized: bool,
}

/// A BERT WordPiece tokenizer (see the module docs).
#[derive(Clone)]
pub(crate) struct BertTokenizer {
    normalizer: Option<BertNormalizer>,
    model: WordPiece,
    /// Added tokens, matched in the raw text before normalisation:
    /// (content, id), longest first.
    added: Vec<(String, u32)>,
    /// Bytes an added token starts with.
    first_bytes: [bool; 256],
    /// Whether texts may be cut at spaces for the bag cache: no added token
    /// holds a space.
    chunkable: bool,
    /// Whether [`BertTokenizer::plain_word_ids`] applies: every added token
    /// is longer than one character and holds one other than ASCII letters
    /// and digits, so none is or fits in a plain word.
    plain_words: bool,
    /// The special tokens before and after a single text.
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    /// Most ids of one model input, special tokens included.
    max_length: usize,
}

/// A part of a text: an added token, or text between added tokens.
enum Segment<'t> {
    Added { id: u32, end: usize },
    Text { start: usize, text: &'t str },
}

fn unsupported(what: impl std::fmt::Display) -> EncoderError {
    EncoderError::Tokenizer(format!(
        "{what}; rlrag reads BERT WordPiece tokenizers (BertNormalizer, BertPreTokenizer, \
         WordPiece, [CLS] … [SEP])"
    ))
}

/// The `type` of a component, for messages.
fn kind(value: &serde_json::Value) -> &str {
    value
        .get("type")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("untyped")
}

impl BertTokenizer {
    /// Read `tokenizer.json`; inputs are cut to `max_length` ids.
    pub(crate) fn from_json(bytes: &[u8], max_length: usize) -> Result<Self, EncoderError> {
        let file: TokenizerFile = serde_json::from_slice(bytes)
            .map_err(|e| unsupported(format!("tokenizer.json: {e}")))?;
        let normalizer = match file.normalizer {
            None | Some(serde_json::Value::Null) => None,
            Some(value) if kind(&value) == "BertNormalizer" => Some(
                serde_json::from_value::<BertNormalizer>(value)
                    .map_err(|e| unsupported(format!("normalizer: {e}")))?,
            ),
            Some(value) => return Err(unsupported(format!("normalizer {}", kind(&value)))),
        };
        match &file.pre_tokenizer {
            Some(value) if kind(value) == "BertPreTokenizer" => {}
            Some(value) => return Err(unsupported(format!("pre-tokenizer {}", kind(value)))),
            None => return Err(unsupported("no pre-tokenizer")),
        }
        // WordPiece's work per word grows with the cube of its length up to
        // this limit (longer words are one [UNK]); BERT's is 100.
        if file.model.max_input_chars_per_word > MAX_CHARS_PER_WORD {
            return Err(unsupported(format!(
                "max_input_chars_per_word {} (at most {MAX_CHARS_PER_WORD})",
                file.model.max_input_chars_per_word
            )));
        }
        let mut added = Vec::with_capacity(file.added_tokens.len());
        for token in file.added_tokens {
            if token.single_word || token.lstrip || token.rstrip || token.normalized {
                return Err(unsupported(format!(
                    "added token {:?} is single-word, stripping or normalised",
                    token.content
                )));
            }
            if token.content.is_empty() {
                return Err(unsupported("an empty added token"));
            }
            added.push((token.content, token.id));
        }
        added.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        let mut first_bytes = [false; 256];
        for (content, _) in &added {
            first_bytes[usize::from(content.as_bytes()[0])] = true;
        }
        let chunkable = !added.iter().any(|(content, _)| content.contains(' '));
        let plain_words = added
            .iter()
            .all(|(t, _)| t.chars().count() > 1 && t.chars().any(|c| !c.is_ascii_alphanumeric()));
        let mut tokenizer = Self {
            normalizer,
            model: file.model,
            added,
            first_bytes,
            chunkable,
            plain_words,
            prefix: Vec::new(),
            suffix: Vec::new(),
            max_length,
        };
        (tokenizer.prefix, tokenizer.suffix) = match file.post_processor {
            None | Some(serde_json::Value::Null) => (Vec::new(), Vec::new()),
            Some(value) => tokenizer.specials(&value)?,
        };
        if tokenizer.prefix.len() + tokenizer.suffix.len() >= max_length {
            return Err(EncoderError::Config(format!(
                "max_length {max_length} leaves no room beside the {} special tokens",
                tokenizer.prefix.len() + tokenizer.suffix.len()
            )));
        }
        Ok(tokenizer)
    }

    /// The special-token ids before and after a single text, from the
    /// post-processor.
    fn specials(&self, value: &serde_json::Value) -> Result<(Vec<u32>, Vec<u32>), EncoderError> {
        let id = |name: &serde_json::Value| -> Result<u32, EncoderError> {
            let name = name
                .as_str()
                .ok_or_else(|| unsupported("post-processor: a special token is not a string"))?;
            self.token_to_id(name).ok_or_else(|| {
                unsupported(format!(
                    "post-processor: special token {name:?} is not in the vocabulary"
                ))
            })
        };
        match kind(value) {
            "BertProcessing" => {
                let cls = value
                    .pointer("/cls/0")
                    .ok_or_else(|| unsupported("BertProcessing without cls"))?;
                let sep = value
                    .pointer("/sep/0")
                    .ok_or_else(|| unsupported("BertProcessing without sep"))?;
                Ok((vec![id(cls)?], vec![id(sep)?]))
            }
            "TemplateProcessing" => {
                let pieces = value
                    .get("single")
                    .and_then(serde_json::Value::as_array)
                    .ok_or_else(|| unsupported("TemplateProcessing without a single template"))?;
                let (mut prefix, mut suffix) = (Vec::new(), Vec::new());
                let mut seen_text = false;
                for piece in pieces {
                    if piece.get("Sequence").is_some() {
                        if seen_text {
                            return Err(unsupported("a single template with two sequences"));
                        }
                        seen_text = true;
                        continue;
                    }
                    let name = piece
                        .pointer("/SpecialToken/id")
                        .ok_or_else(|| unsupported(format!("template piece {piece}")))?;
                    // The template names the token; `special_tokens` maps it
                    // to ids, usually the vocabulary's.
                    let ids: Vec<u32> = match name.as_str().and_then(|n| {
                        value.pointer(&format!(
                            "/special_tokens/{}/ids",
                            n.replace('~', "~0").replace('/', "~1")
                        ))
                    }) {
                        Some(ids) => serde_json::from_value(ids.clone())
                            .map_err(|e| unsupported(format!("special token ids: {e}")))?,
                        None => vec![id(name)?],
                    };
                    if seen_text { &mut suffix } else { &mut prefix }.extend(ids);
                }
                if !seen_text {
                    return Err(unsupported("a single template without the sequence"));
                }
                Ok((prefix, suffix))
            }
            other => Err(unsupported(format!("post-processor {other}"))),
        }
    }

    /// The id of a token (added tokens first, as `tokenizers` does).
    pub(crate) fn token_to_id(&self, token: &str) -> Option<u32> {
        self.added
            .iter()
            .find(|(content, _)| content == token)
            .map(|&(_, id)| id)
            .or_else(|| self.model.token_to_id(token))
    }

    /// The text of a token id.
    pub(crate) fn id_to_token(&self, id: u32) -> Option<String> {
        self.added
            .iter()
            .find(|&&(_, added)| added == id)
            .map(|(content, _)| content.clone())
            .or_else(|| self.model.id_to_token(id))
    }

    /// Ids the tokenizer can produce: the vocabulary and added tokens
    /// outside it.
    pub(crate) fn vocab_size(&self) -> usize {
        let model = self.model.get_vocab_size();
        model
            + self
                .added
                .iter()
                .filter(|(content, _)| self.model.token_to_id(content).is_none())
                .count()
    }

    /// The largest id the tokenizer can produce: of the vocabulary, the
    /// added tokens and the special tokens around a text.
    pub(crate) fn max_id(&self) -> Option<u32> {
        let vocab = self.model.get_vocab().into_values();
        let added = self.added.iter().map(|&(_, id)| id);
        let specials = self.prefix.iter().chain(&self.suffix).copied();
        vocab.chain(added).chain(specials).max()
    }

    /// The normaliser's `lowercase`, when there is a normaliser.
    pub(crate) fn lowercase(&self) -> Option<bool> {
        self.normalizer.as_ref().map(|n| n.lowercase)
    }

    /// A shortcut for chunks of plain ASCII letters and digits (or one ASCII
    /// punctuation mark), most chunks of most text: BERT's normaliser only
    /// lowercases them (nothing to clean, accent-strip or space), its
    /// pre-tokenizer leaves them whole, and no added token fits in them, so
    /// WordPiece tokenizes them directly, without building the normalised
    /// string, its alignments and an encoding. `None` where it does not
    /// apply; `tests/bags.rs` checks it against the full pipeline.
    pub(crate) fn plain_word_ids(&self, chunk: &str) -> Option<Result<Vec<u32>, EncoderError>> {
        let covered = match chunk.as_bytes() {
            [] => false,
            [b] if b.is_ascii_punctuation() => true,
            bytes => bytes.iter().all(u8::is_ascii_alphanumeric),
        };
        if !self.plain_words || !covered {
            return None;
        }
        let word = if self.lowercase().unwrap_or(false) {
            std::borrow::Cow::Owned(chunk.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(chunk)
        };
        Some(
            self.model
                .tokenize(&word)
                .map(|tokens| tokens.iter().map(|t| t.id).collect())
                .map_err(tokenizer_error),
        )
    }

    /// Whether `text` may hold an added token (it holds a byte one starts
    /// with).
    pub(crate) fn may_hold_added(&self, text: &str) -> bool {
        text.bytes().any(|b| self.first_bytes[usize::from(b)])
    }

    /// Whether texts may be cut at spaces (no added token holds one).
    pub(crate) fn chunkable(&self) -> bool {
        self.chunkable
    }

    /// How many special tokens wrap a single text.
    pub(crate) fn special_count(&self) -> usize {
        self.prefix.len() + self.suffix.len()
    }

    /// The model input of `text`: special tokens around its ids, which are
    /// cut to fit `max_length`.
    pub(crate) fn encode(&self, text: &str) -> Result<Vec<u32>, EncoderError> {
        let mut ids = self.prefix.clone();
        ids.extend(self.ids(text)?);
        ids.truncate(self.max_length - self.suffix.len());
        ids.extend_from_slice(&self.suffix);
        Ok(ids)
    }

    /// The model input of a text pair as BERT's pair template builds it
    /// (`[CLS] first [SEP] second [SEP]`: the prefix, the first text cut to
    /// `max_first` ids, the suffix, the second text cut to fill
    /// `max_length`, the suffix), and how many of its ids belong to the
    /// first segment (token type 0; the rest are type 1).
    pub(crate) fn encode_pair(
        &self,
        first: &str,
        second: &str,
        max_first: usize,
    ) -> Result<(Vec<u32>, usize), EncoderError> {
        let mut ids = self.prefix.clone();
        let mut a = self.ids(first)?;
        a.truncate(max_first);
        ids.extend(a);
        ids.extend_from_slice(&self.suffix);
        let first_len = ids.len();
        let room = self
            .max_length
            .saturating_sub(first_len + self.suffix.len());
        let mut b = self.ids(second)?;
        b.truncate(room);
        ids.extend(b);
        ids.extend_from_slice(&self.suffix);
        Ok((ids, first_len))
    }

    /// Every token id of `text`, in order: no special tokens, no truncation.
    pub(crate) fn ids(&self, text: &str) -> Result<Vec<u32>, EncoderError> {
        let mut ids = Vec::new();
        for segment in self.segments(text) {
            match segment {
                Segment::Added { id, .. } => ids.push(id),
                Segment::Text { text, .. } => {
                    let encoding = self
                        .pipeline(text)?
                        .into_encoding(None, 0, OffsetType::None);
                    ids.extend_from_slice(encoding.map_err(tokenizer_error)?.get_ids());
                }
            }
        }
        Ok(ids)
    }

    /// Every token id of `text` with the byte offset in `text` where each
    /// token ends.
    pub(crate) fn ids_with_ends(&self, text: &str) -> Result<Vec<(u32, usize)>, EncoderError> {
        let mut out = Vec::new();
        for segment in self.segments(text) {
            match segment {
                Segment::Added { id, end } => out.push((id, end)),
                Segment::Text { start, text } => {
                    let encoding = self
                        .pipeline(text)?
                        .into_encoding(None, 0, OffsetType::Byte)
                        .map_err(tokenizer_error)?;
                    out.extend(
                        encoding
                            .get_ids()
                            .iter()
                            .zip(encoding.get_offsets())
                            .map(|(&id, &(_, end))| (id, start + end)),
                    );
                }
            }
        }
        Ok(out)
    }

    /// Normalise, pre-tokenize and WordPiece-tokenize a text holding no
    /// added token.
    fn pipeline(&self, text: &str) -> Result<PreTokenizedString, EncoderError> {
        let mut normalized = NormalizedString::from(text);
        if let Some(normalizer) = &self.normalizer {
            normalizer
                .normalize(&mut normalized)
                .map_err(tokenizer_error)?;
        }
        let mut pieces = PreTokenizedString::from(normalized);
        BertPreTokenizer
            .pre_tokenize(&mut pieces)
            .map_err(tokenizer_error)?;
        pieces
            .tokenize(|word| self.model.tokenize(word.get()))
            .map_err(tokenizer_error)?;
        Ok(pieces)
    }

    /// `text` cut at its added tokens, leftmost first, the longest where
    /// several start at one place (as `tokenizers` matches them).
    fn segments<'t>(&'t self, text: &'t str) -> impl Iterator<Item = Segment<'t>> + 't {
        let mut pos = 0;
        let mut text_start = 0;
        let mut queued: Option<Segment<'t>> = None;
        std::iter::from_fn(move || {
            if let Some(segment) = queued.take() {
                return Some(segment);
            }
            while pos < text.len() {
                let rest = &text[pos..];
                let hit = if self.first_bytes[usize::from(rest.as_bytes()[0])] {
                    self.added
                        .iter()
                        .find(|(content, _)| rest.starts_with(content.as_str()))
                } else {
                    None
                };
                let Some((content, id)) = hit else {
                    pos += rest.chars().next().map_or(1, char::len_utf8);
                    continue;
                };
                let (start, before) = (text_start, &text[text_start..pos]);
                pos += content.len();
                text_start = pos;
                let added = Segment::Added { id: *id, end: pos };
                if before.is_empty() {
                    return Some(added);
                }
                queued = Some(added);
                return Some(Segment::Text {
                    start,
                    text: before,
                });
            }
            if text_start < text.len() {
                let start = text_start;
                text_start = text.len();
                return Some(Segment::Text {
                    start,
                    text: &text[start..],
                });
            }
            None
        })
    }
}

fn tokenizer_error(e: impl std::fmt::Display) -> EncoderError {
    EncoderError::Tokenizer(e.to_string())
}

/// A BERT `tokenizer.json` over `vocab` (ids in order) with `added` as
/// special tokens, for tests.
#[cfg(test)]
pub(crate) fn tokenizer_json(
    vocab: &[&str],
    added: &[(&str, u32)],
    lowercase: bool,
    post_processor: serde_json::Value,
    max_input_chars_per_word: usize,
) -> String {
    let added: Vec<serde_json::Value> = added
        .iter()
        .map(|(t, id)| {
            serde_json::json!({"id": id, "content": t, "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let vocab: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i.into()))
        .collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true,
            "handle_chinese_chars": true, "strip_accents": null, "lowercase": lowercase},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": post_processor,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": max_input_chars_per_word, "vocab": vocab},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::{Tokenizer, TruncationParams};

    const VOCAB: [&str; 24] = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "play", "##ing", "##ed", "the", "a", "!",
        "[", "]", ".", "1", "##9", "##90", "x", "##x", "cafe", "日", "本", "ü", "##e",
    ];

    fn json(lowercase: bool, post_processor: serde_json::Value, added: &[(&str, u32)]) -> String {
        tokenizer_json(&VOCAB, added, lowercase, post_processor, 10)
    }

    fn template() -> serde_json::Value {
        serde_json::json!({"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                               "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}})
    }

    const ADDED: [(&str, u32); 6] = [
        ("[PAD]", 0),
        ("[UNK]", 1),
        ("[CLS]", 2),
        ("[SEP]", 3),
        ("[MASK]", 4),
        ("[MASK]!", 24),
    ];

    const TEXTS: [&str; 16] = [
        "",
        "playing the x",
        "PLAYED!!! The Café ÜBER naïve",
        "a[MASK]b [MASK]! [MASK] ! [SEP][CLS]x",
        "日本語 mixed日本words",
        "tab\tnew\nline\r\nno\u{a0}break\u{3000}ideographic",
        "control\u{0}char\u{b}vt\u{200b}zw\u{85}nel",
        "xxxxxxxxxx xxxxxxxxxxx 1990 19 199",
        "e\u{301} a\u{300}. x.\u{301}y",
        "[ ] [mask] ]x[ [MAS [MASK",
        "   ",
        "playing playing playing playing playing playing playing playing",
        "İstanbul ﬁ ß ǅ",
        "\u{fffd}\u{feff}x",
        "🙂 emoji 🙂play",
        "[MASK]",
    ];

    fn oracle(json: &str, truncate: Option<usize>) -> Tokenizer {
        let mut tokenizer = Tokenizer::from_bytes(json).expect("tokenizers reads it");
        tokenizer
            .with_truncation(truncate.map(|max_length| TruncationParams {
                max_length,
                ..TruncationParams::default()
            }))
            .expect("truncation");
        tokenizer
    }

    #[test]
    fn ids_offsets_and_model_inputs_equal_the_tokenizers_crate() {
        for lowercase in [true, false] {
            for post in [
                serde_json::Value::Null,
                template(),
                serde_json::json!({
                "type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]}),
            ] {
                let json = json(lowercase, post.clone(), &ADDED);
                let specials = if post.is_null() { 0 } else { 2 };
                for max_length in [4, 7, 512] {
                    let ours =
                        BertTokenizer::from_json(json.as_bytes(), max_length).expect("reads");
                    assert_eq!(ours.special_count(), specials);
                    let whole = oracle(&json, None);
                    let cut = oracle(&json, Some(max_length));
                    for text in TEXTS {
                        let what = format!("{text:?} lowercase {lowercase} {post} {max_length}");
                        let expected = whole.encode(text, false).expect("encodes");
                        assert_eq!(ours.ids(text).expect("ids"), expected.get_ids(), "{what}");
                        let ends: Vec<(u32, usize)> = expected
                            .get_ids()
                            .iter()
                            .zip(expected.get_offsets())
                            .map(|(&id, &(_, end))| (id, end))
                            .collect();
                        assert_eq!(ours.ids_with_ends(text).expect("ends"), ends, "{what}");
                        let input = cut.encode(text, true).expect("encodes");
                        assert_eq!(ours.encode(text).expect("input"), input.get_ids(), "{what}");
                    }
                }
            }
        }
    }

    #[test]
    fn tokens_ids_and_vocabulary_size_equal_the_tokenizers_crate() {
        let json = json(true, template(), &ADDED);
        let ours = BertTokenizer::from_json(json.as_bytes(), 16).expect("reads");
        let theirs = oracle(&json, None);
        assert_eq!(ours.vocab_size(), theirs.get_vocab_size(true));
        assert_eq!(ours.vocab_size(), VOCAB.len() + 1);
        for id in 0..30 {
            assert_eq!(ours.id_to_token(id), theirs.id_to_token(id), "{id}");
        }
        for token in ["[PAD]", "[MASK]!", "##ing", "play", "absent"] {
            assert_eq!(
                ours.token_to_id(token),
                theirs.token_to_id(token),
                "{token}"
            );
        }
        assert_eq!(ours.lowercase(), Some(true));
    }

    /// A BERT tokenizer.json over a small vocabulary, with `added` as special
    /// tokens (ids after the vocabulary's where they are not in it).
    fn bert_json(lowercase: bool, added: &[&str]) -> String {
        let vocab = [
            "[UNK]", "[CLS]", "[SEP]", "[MASK]", "play", "##ing", "##ed", "the", "The", "a", "!",
            "[", ".", "1", "##9", "##90", "x", "##x",
        ];
        let added: Vec<(&str, u32)> = added
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let id = vocab.iter().position(|v| v == t).unwrap_or(vocab.len() + i);
                (*t, id as u32)
            })
            .collect();
        tokenizer_json(&vocab, &added, lowercase, serde_json::Value::Null, 12)
    }

    fn bert_tokenizer(lowercase: bool, added: &[&str]) -> BertTokenizer {
        BertTokenizer::from_json(bert_json(lowercase, added).as_bytes(), 512).expect("tokenizer")
    }

    fn full(lowercase: bool, added: &[&str], chunk: &str) -> Vec<u32> {
        let tokenizer = Tokenizer::from_bytes(bert_json(lowercase, added)).expect("tokenizer json");
        let encoding = tokenizer.encode_fast(chunk, false).expect("encodes");
        encoding.get_ids().to_vec()
    }

    #[test]
    fn plain_words_tokenize_as_the_whole_pipeline() {
        let added = ["[CLS]", "[SEP]", "[MASK]"];
        for lowercase in [true, false] {
            let tokenizer = bert_tokenizer(lowercase, &added);
            let chunks = [
                "playing",
                "PLAYED",
                "The",
                "the",
                "1990",
                "19",
                "a",
                "!",
                "[",
                ".",
                "zzz",
                "xxxxxxxxxxxxx",
                "xxxxxxxxxxxx",
                "Played1990",
            ];
            for chunk in chunks {
                let ids = tokenizer
                    .plain_word_ids(chunk)
                    .expect("covered")
                    .expect("ok");
                assert_eq!(
                    ids,
                    full(lowercase, &added, chunk),
                    "{chunk:?} (lowercase {lowercase})"
                );
            }
            for chunk in ["", "play ing", "café", "a.b", "!!", "[MASK]", "日本"] {
                assert!(tokenizer.plain_word_ids(chunk).is_none(), "{chunk:?}");
            }
        }
    }

    #[test]
    fn plain_words_need_no_word_like_added_tokens() {
        assert!(
            bert_tokenizer(true, &["[CLS]"])
                .plain_word_ids("play")
                .is_some()
        );
        // An added token a plain chunk could be, or could hold.
        assert!(
            bert_tokenizer(true, &["play"])
                .plain_word_ids("play")
                .is_none()
        );
        assert!(
            bert_tokenizer(true, &["!"])
                .plain_word_ids("play")
                .is_none()
        );
    }

    #[test]
    fn other_tokenizers_are_refused_with_what_was_found() {
        let good: serde_json::Value =
            serde_json::from_str(&json(true, template(), &ADDED)).expect("json");
        let with = |pointer: &str, value: serde_json::Value| {
            let mut file = good.clone();
            *file.pointer_mut(pointer).expect("field") = value;
            BertTokenizer::from_json(file.to_string().as_bytes(), 512)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let cases = [
            (
                "/normalizer",
                serde_json::json!({"type": "NFKC"}),
                "normalizer NFKC",
            ),
            (
                "/pre_tokenizer",
                serde_json::json!({"type": "Whitespace"}),
                "pre-tokenizer Whitespace",
            ),
            (
                "/pre_tokenizer",
                serde_json::Value::Null,
                "no pre-tokenizer",
            ),
            ("/model/type", serde_json::json!("BPE"), "BPE"),
            (
                "/post_processor",
                serde_json::json!({"type": "ByteLevel"}),
                "post-processor ByteLevel",
            ),
            (
                "/added_tokens/4/lstrip",
                serde_json::json!(true),
                "\"[MASK]\" is single-word",
            ),
            (
                "/added_tokens/0/content",
                serde_json::json!(""),
                "empty added token",
            ),
            (
                "/post_processor/special_tokens/[CLS]/ids",
                serde_json::json!("x"),
                "special token ids",
            ),
        ];
        for (pointer, value, expected) in cases {
            let message = with(pointer, value);
            assert!(message.contains(expected), "{pointer}: {message}");
            assert!(
                message.contains("rlrag reads BERT WordPiece tokenizers"),
                "{message}"
            );
        }
        for bytes in [&b""[..], b"{", b"[]", b"{\"model\": 3}"] {
            assert!(BertTokenizer::from_json(bytes, 512).is_err());
        }
        let json = json(true, template(), &ADDED);
        let err = BertTokenizer::from_json(json.as_bytes(), 2)
            .err()
            .map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("no room"));
    }
}
