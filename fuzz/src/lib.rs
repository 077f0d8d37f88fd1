//! What rlrag's fuzz targets share: an allocator that turns allocation
//! bombs into crashes, a frame fixer that lets mutated index files past the
//! length and checksum checks (structure-aware: the decoders behind them get
//! fuzzed, not just the CRC), and the model the engine target imports with.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use rlrag_encoder::Encoder;
use rlrag_retriever::EngineModels;

/// The largest single allocation a decoder may make on fuzz input.
pub const MAX_ALLOCATION: usize = 256 << 20;
/// The most bytes live at once (model included).
pub const MAX_LIVE: usize = 2 << 30;

/// The system allocator, aborting (a crash libFuzzer records with its
/// input) on an allocation over [`MAX_ALLOCATION`] or live bytes over
/// [`MAX_LIVE`]: an input that makes a decoder ask for gigabytes is a bug
/// even where the machine could lend them.
pub struct Bounded;

static LIVE: AtomicUsize = AtomicUsize::new(0);

fn admit(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed).saturating_add(size);
    if size > MAX_ALLOCATION || live > MAX_LIVE {
        // No allocation here: write a fixed message and abort.
        let _ = std::io::stderr()
            .write_all(b"\n==rlrag-fuzz== allocation bomb: over the fuzz allocation limits\n");
        std::process::abort();
    }
}

fn release(size: usize) {
    LIVE.fetch_sub(size, Ordering::Relaxed);
}

// SAFETY: every call forwards to `System` with the same arguments; the
// bookkeeping only reads sizes.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        admit(layout.size());
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        admit(layout.size());
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        release(layout.size());
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        release(layout.size());
        admit(new_size);
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// `data` as an rlrag container (magic, version, kind, payload version,
/// length, payload, CRC) with the length and CRC recomputed: the length
/// field is set to what follows it less the old CRC's 4 bytes, and a
/// fresh CRC appended. Inputs too short for a header come back as they are.
pub fn reframe(data: &[u8]) -> Vec<u8> {
    let Some(&kind_len) = data.get(10) else {
        return data.to_vec();
    };
    let head = 11 + usize::from(kind_len) + 2;
    if data.len() < head + 8 {
        return data.to_vec();
    }
    let end = data.len().saturating_sub(4).max(head + 8);
    let payload = &data[head + 8..end];
    let mut out = Vec::with_capacity(data.len() + 4);
    out.extend_from_slice(&data[..head]);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The first byte chooses: its top bit set keeps the rest as raw bytes (the
/// frame checks themselves get fuzzed), clear reframes it; the low bits
/// pick a variant. `None` for an empty input.
pub fn split(data: &[u8]) -> Option<(u8, Vec<u8>)> {
    let (&sel, rest) = data.split_first()?;
    let bytes = if sel & 0x80 != 0 {
        rest.to_vec()
    } else {
        reframe(rest)
    };
    Some((sel & 0x7f, bytes))
}

/// Two files in one input: the first one's length as two little-endian
/// bytes (capped to what follows), the first file, then the second.
pub fn two_files(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    Some(rest.split_at(len))
}

/// The fingerprint the seed engines were exported with.
pub const SEED_FINGERPRINT: u64 = 7;

/// SPLADE-tiny from the model cache (`scripts/fetch-models.sh`), loaded
/// once, as the engine's models.
pub fn engine_models() -> EngineModels {
    static MODEL: OnceLock<Arc<Encoder>> = OnceLock::new();
    let sparse = MODEL.get_or_init(|| {
        let dir = rlrag_encoder::models::pretrained("splade-tiny");
        match Encoder::from_dir(&dir, &burn::tensor::Device::flex()) {
            Ok(e) => Arc::new(e),
            Err(e) => {
                eprintln!("{e}: run scripts/fetch-models.sh first");
                std::process::exit(2);
            }
        }
    });
    EngineModels {
        sparse: Arc::clone(sparse),
        sparse_fingerprint: SEED_FINGERPRINT,
        dense: None,
    }
}
