//! The project's hashes, fixed so that what they key (dataset splits, the
//! local/network split, seeds, saved-index fingerprints, cache files,
//! shingles) never changes between builds, toolchains or platforms.

/// FNV-1a (64-bit) over the concatenation of `parts`.
pub fn fnv1a<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    parts
        .into_iter()
        .flatten()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// FNV-1a of a string's bytes.
pub fn fnv1a_str(s: &str) -> u64 {
    fnv1a([s.as_bytes()])
}

/// FNV-1a of 64-bit words (little-endian): seeds derived from seeds.
pub fn seed_from(parts: &[u64]) -> u64 {
    let bytes: Vec<[u8; 8]> = parts.iter().map(|p| p.to_le_bytes()).collect();
    fnv1a(bytes.iter().map(|b| &b[..]))
}

/// A stable 64-bit fingerprint of model files (XXH3 of each part, seeded
/// with its length, mixed): the same on every platform and build. XXH3 has
/// SIMD128 code in wasm, where CRC-32 has none: ~30 ms of a browser's model
/// load for SPLADE-tiny's 17 MB went to CRC-32.
pub fn fingerprint(parts: &[&[u8]]) -> u64 {
    parts.iter().fold(0xcbf2_9ce4_8422_2325u64, |acc, p| {
        let h = xxhash_rust::xxh3::xxh3_64_with_seed(p, p.len() as u64);
        (acc ^ h).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_pinned_and_sees_only_the_concatenation() {
        assert_eq!(fnv1a_str(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_str("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a([&b"ab"[..], b"c"]), fnv1a_str("abc"));
        assert_eq!(
            seed_from(&[1, 2]),
            fnv1a([&1u64.to_le_bytes()[..], &2u64.to_le_bytes()])
        );
    }

    #[test]
    fn fingerprints_see_every_byte_and_where_parts_end() {
        let weights: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let base = fingerprint(&[&weights, b"{}", b"tok"]);
        // Pinned: saved indexes carry it, so a change must bump SNAPSHOT_VERSION.
        assert_eq!(
            base, 0x73b8_69fe_853b_693f,
            "fingerprint changed: {base:#x}"
        );
        for at in [0, 1, 4095, 50_000, 99_999] {
            let mut changed = weights.clone();
            changed[at] ^= 1;
            assert_ne!(fingerprint(&[&changed, b"{}", b"tok"]), base, "byte {at}");
        }
        assert_ne!(fingerprint(&[&weights, b"{}t", b"ok"]), base);
        assert_ne!(fingerprint(&[b"{}", &weights, b"tok"]), base);
        assert_ne!(fingerprint(&[&weights, b"{}"]), base);
    }
}
