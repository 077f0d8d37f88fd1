//! A fast, non-cryptographic hasher for term maps (the lexical indexes, the
//! encoder's bag-of-tokens cache): the multiply–rotate word hash of rustc's
//! `FxHasher`. The standard SipHash resists hash flooding, which an index of
//! the user's own documents does not need, and it costs several times more
//! per short key (a visible share of indexing time in browsers).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// The hasher (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// A `HashSet` with [`FastHasher`].
pub type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::*;

    #[test]
    fn equal_keys_hash_equally_and_short_keys_spread() {
        let b = BuildHasherDefault::<FastHasher>::default();
        assert_eq!(b.hash_one("running"), b.hash_one(String::from("running")));
        let words = ["a", "b", "ab", "ba", "run", "runs", "running", "runner"];
        let mut hashes: Vec<u64> = words.iter().map(|w| b.hash_one(w)).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), words.len(), "no collisions among close words");
        let mut m: FastMap<String, u32> = FastMap::default();
        for (i, w) in words.iter().enumerate() {
            m.insert((*w).to_owned(), i as u32);
        }
        assert_eq!(m.get("runner"), Some(&7));
    }
}
