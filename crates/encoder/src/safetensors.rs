//! Safetensors files as the encoder reads and writes them: tensors renamed
//! between Hugging Face and burn names (in place when the header does not
//! grow, so loading copies no weights), and a canonical form (tensors in
//! name order) so equal weights always give equal bytes.

use crate::EncoderError;

fn bad_safetensors(what: &str) -> EncoderError {
    EncoderError::Weights(format!("not a safetensors file: {what}"))
}

/// The header of a safetensors file and where its data starts.
fn safetensors_header(
    bytes: &[u8],
) -> Result<(serde_json::Map<String, serde_json::Value>, usize), EncoderError> {
    let n = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| bad_safetensors("no header length"))?;
    let header_end = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_add(8))
        .ok_or_else(|| bad_safetensors("header length"))?;
    let header = serde_json::from_slice(
        bytes
            .get(8..header_end)
            .ok_or_else(|| bad_safetensors("short header"))?,
    )
    .map_err(|e| bad_safetensors(&e.to_string()))?;
    Ok((header, header_end))
}

/// A safetensors header with each tensor renamed by `rename` (in name
/// order, as serde_json's map keeps keys). Two tensors renamed alike are an
/// error.
fn renamed_header(
    header: serde_json::Map<String, serde_json::Value>,
    rename: fn(&str) -> String,
) -> Result<serde_json::Map<String, serde_json::Value>, EncoderError> {
    let mut renamed = serde_json::Map::new();
    for (name, meta) in header {
        let name = if name == "__metadata__" {
            name
        } else {
            rename(&name)
        };
        if renamed.contains_key(&name) {
            return Err(EncoderError::Weights(format!(
                "two tensors are named {name} once renamed"
            )));
        }
        renamed.insert(name, meta);
    }
    Ok(renamed)
}

/// A safetensors header as bytes, padded with spaces to at least `min_len`
/// and so that the data after it is 8-byte aligned, as writers do.
fn header_bytes(
    header: &serde_json::Map<String, serde_json::Value>,
    min_len: usize,
) -> Result<Vec<u8>, EncoderError> {
    let mut bytes = serde_json::to_vec(header).map_err(|e| bad_safetensors(&e.to_string()))?;
    if bytes.len() < min_len {
        bytes.resize(min_len, b' ');
    }
    while !(8 + bytes.len()).is_multiple_of(8) {
        bytes.push(b' ');
    }
    Ok(bytes)
}

/// `weights` with each tensor renamed by `rename`, in place: the data stays
/// where it is, and the new header is padded with spaces to the old one's
/// length when it is not longer (it is shorter for Hugging Face BERT names),
/// so nothing moves.
pub(crate) fn renamed_in_place(
    mut weights: Vec<u8>,
    rename: fn(&str) -> String,
) -> Result<Vec<u8>, EncoderError> {
    let (header, header_end) = safetensors_header(&weights)?;
    let old_len = header_end - 8;
    let header = header_bytes(&renamed_header(header, rename)?, old_len)?;
    if header.len() == old_len {
        weights[8..header_end].copy_from_slice(&header);
    } else {
        weights[..8].copy_from_slice(&(header.len() as u64).to_le_bytes());
        weights.splice(8..header_end, header);
    }
    Ok(weights)
}

/// The same safetensors file in canonical form: tensors in name order
/// (header keys and data) and metadata keys sorted, so equal tensors always
/// give equal bytes whatever order a writer used (burn's metadata map has
/// none).
pub fn canonical_safetensors(bytes: &[u8]) -> Result<Vec<u8>, EncoderError> {
    renamed_safetensors(bytes, str::to_owned)
}

/// The same safetensors file with each tensor renamed by `rename`, tensors
/// in name order (header keys and data), so equal weights always give equal
/// bytes.
pub(crate) fn renamed_safetensors(
    bytes: &[u8],
    rename: fn(&str) -> String,
) -> Result<Vec<u8>, EncoderError> {
    let (header, header_end) = safetensors_header(bytes)?;
    let data = &bytes[header_end..];
    let mut header = renamed_header(header, rename)?;
    // Each tensor's data, in name order, and its offsets in the new file.
    let mut ranges = Vec::with_capacity(header.len());
    let mut at = 0;
    for (name, meta) in header.iter_mut().filter(|(n, _)| *n != "__metadata__") {
        let (a, b) = meta["data_offsets"]
            .as_array()
            .and_then(|o| Some((o.first()?.as_u64()?, o.get(1)?.as_u64()?)))
            .and_then(|(a, b)| Some((usize::try_from(a).ok()?, usize::try_from(b).ok()?)))
            // Tensors may not share bytes: all of them together fit in
            // the data (else overlapping ranges could make the copy many
            // times the file).
            .filter(|(a, b)| a <= b && *b <= data.len() && at + (b - a) <= data.len())
            .ok_or_else(|| bad_safetensors(&format!("offsets of {name}")))?;
        meta["data_offsets"] = serde_json::json!([at, at + (b - a)]);
        at += b - a;
        ranges.push((a, b));
    }
    let header = header_bytes(&header, 0)?;
    let mut out = Vec::with_capacity(8 + header.len() + at);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for (a, b) in ranges {
        out.extend_from_slice(&data[a..b]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bert::hf_to_module_key;

    /// A safetensors file of two one-float tensors named `names`.
    fn safetensors(names: [&str; 2]) -> Vec<u8> {
        let meta = |at: usize| serde_json::json!({"dtype": "F32", "shape": [1], "data_offsets": [at, at + 4]});
        let header = serde_json::json!({names[0]: meta(0), names[1]: meta(4)});
        let mut header = serde_json::to_vec(&header).expect("json");
        while !(8 + header.len()).is_multiple_of(8) {
            header.push(b' ');
        }
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&header);
        out.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        out
    }

    fn names_and_data(bytes: &[u8]) -> (Vec<String>, Vec<u8>) {
        let (header, end) = safetensors_header(bytes).expect("a safetensors file");
        (header.keys().cloned().collect(), bytes[end..].to_vec())
    }

    #[test]
    fn tensors_sharing_bytes_are_refused() {
        // Two tensors over the same 8 bytes: copying each would double the
        // data (a thousand of them, a thousand times).
        let header = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(header);
        file.extend_from_slice(&[0; 8]);
        let err = canonical_safetensors(&file).expect_err("overlapping tensors");
        assert!(err.to_string().contains("offsets of b"), "{err}");
    }

    #[test]
    fn canonical_safetensors_do_not_depend_on_the_writers_order() {
        let file = |header: &str, data: [u8; 8]| {
            let mut out = (header.len() as u64).to_le_bytes().to_vec();
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(&data);
            out
        };
        let t = |at: usize| {
            format!(
                r#"{{"dtype":"F32","shape":[1],"data_offsets":[{at},{}]}}"#,
                at + 4
            )
        };
        let a = file(
            &format!(
                r#"{{"__metadata__":{{"b":"2","a":"1"}},"y":{},"x":{}}}"#,
                t(0),
                t(4)
            ),
            [5, 6, 7, 8, 1, 2, 3, 4],
        );
        let b = file(
            &format!(
                r#"{{"x":{},"__metadata__":{{"a":"1","b":"2"}},"y":{}}}"#,
                t(0),
                t(4)
            ),
            [1, 2, 3, 4, 5, 6, 7, 8],
        );
        assert_ne!(a, b);
        let canonical = canonical_safetensors(&a).expect("valid");
        assert_eq!(canonical, canonical_safetensors(&b).expect("valid"));
        let (names, data) = names_and_data(&canonical);
        assert_eq!(names, ["__metadata__", "x", "y"]);
        assert_eq!(data, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(canonical_safetensors(&a[..12]).is_err());
    }

    #[test]
    fn tensors_are_renamed_in_place_or_with_a_longer_header() {
        // Shorter names: same length, padded header, the data untouched.
        let long = [
            "bert.encoder.layer.0.output.dense.weight",
            "cls.predictions.bias",
        ];
        let file = safetensors(long);
        let renamed = renamed_in_place(file.clone(), hf_to_module_key).expect("renames");
        assert_eq!(renamed.len(), file.len());
        let (names, data) = names_and_data(&renamed);
        assert_eq!(names, ["bert.layers.0.out.weight", "head.bias"]);
        assert_eq!(data, [1, 2, 3, 4, 5, 6, 7, 8]);
        // Longer names: a longer, still 8-byte aligned header.
        let short = ["embeddings.a", "encoder.b"];
        let renamed = renamed_in_place(safetensors(short), hf_to_module_key).expect("renames");
        let (names, data) = names_and_data(&renamed);
        assert_eq!(names, ["bert.embeddings.a", "bert.encoder.b"]);
        assert_eq!(data, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!((renamed.len() - data.len()) % 8, 0);
        // The same tensors as the copying, reordering rename.
        let copied = renamed_safetensors(&safetensors(short), hf_to_module_key).expect("renames");
        assert_eq!(names_and_data(&copied), names_and_data(&renamed));
        // Two names that rename alike.
        let clash = safetensors(["embeddings.a", "bert.embeddings.a"]);
        let err = renamed_in_place(clash, hf_to_module_key)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.unwrap_or_default()
                .contains("two tensors are named bert.embeddings.a")
        );
        for broken in [
            &b""[..],
            &[200, 0, 0, 0, 0, 0, 0, 0, b'{'],
            &[2, 0, 0, 0, 0, 0, 0, 0, b'{', b'x'],
        ] {
            assert!(renamed_in_place(broken.to_vec(), hf_to_module_key).is_err());
        }
    }
}
