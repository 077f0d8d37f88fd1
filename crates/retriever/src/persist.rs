//! The saved-index container shared by every index kind.
//!
//! Layout (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `RLRAGIDX` |
//! | 2 | container version (1) |
//! | 1 + n | kind name length and UTF-8 bytes (`bm25`, …) |
//! | 2 | payload version of that kind |
//! | 8 | payload length |
//! | len | payload ([postcard](https://docs.rs/postcard) encoding of the kind's snapshot) |
//! | 4 | CRC-32 of every byte before it |
//!
//! A file that is foreign, truncated, padded, corrupt or of a newer version is
//! refused whole with an [`IndexFileError`] that says which.

use std::path::Path;

use crate::failpoint;
use crate::inverted::Entry;
use crate::{IndexFileError, RetrieverError};

/// The first bytes of every rlrag index file.
pub const MAGIC: &[u8; 8] = b"RLRAGIDX";
/// The container version this build writes and reads.
pub const CONTAINER_VERSION: u16 = 1;

/// Frame a payload of `kind` at `payload_version`.
pub fn encode(kind: &str, payload_version: u16, payload: &[u8]) -> Result<Vec<u8>, IndexFileError> {
    let kind_len = u8::try_from(kind.len())
        .map_err(|_| IndexFileError::InvalidPayload(format!("kind name `{kind}` is too long")))?;
    let mut out = Vec::with_capacity(payload.len() + 32 + kind.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&CONTAINER_VERSION.to_le_bytes());
    out.push(kind_len);
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(&payload_version.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// A little reader that reports truncation in terms of the whole file.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], IndexFileError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(IndexFileError::Truncated {
                needed: (self.pos as u64).saturating_add(n as u64),
                have: self.bytes.len() as u64,
            }),
        }
    }

    fn u16(&mut self) -> Result<u16, IndexFileError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
}

/// Check the frame and return the payload of an index of `kind`, which must be
/// at `payload_version`.
pub fn decode<'a>(
    bytes: &'a [u8],
    kind: &str,
    payload_version: u16,
) -> Result<&'a [u8], IndexFileError> {
    let mut c = Cursor { bytes, pos: 0 };
    let magic = c.take(MAGIC.len()).map_err(|_| IndexFileError::BadMagic)?;
    if magic != MAGIC {
        return Err(IndexFileError::BadMagic);
    }
    let container = c.u16()?;
    if container != CONTAINER_VERSION {
        return Err(IndexFileError::UnsupportedVersion {
            what: "container",
            found: container,
            supported: CONTAINER_VERSION,
        });
    }
    let kind_len = usize::from(c.take(1)?[0]);
    let found_kind = String::from_utf8_lossy(c.take(kind_len)?).into_owned();
    let version = c.u16()?;
    let len_bytes = c.take(8)?;
    let mut len = [0u8; 8];
    len.copy_from_slice(len_bytes);
    let len = u64::from_le_bytes(len);
    let needed = (c.pos as u64).saturating_add(len).saturating_add(4);
    if needed > bytes.len() as u64 {
        return Err(IndexFileError::Truncated {
            needed,
            have: bytes.len() as u64,
        });
    }
    if needed < bytes.len() as u64 {
        return Err(IndexFileError::TrailingBytes {
            extra: bytes.len() as u64 - needed,
        });
    }
    // `needed` fits in the slice, so the payload length fits in usize.
    let payload = c.take(len as usize)?;
    let body_end = c.pos;
    let stored = c.take(4)?;
    let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
    let computed = crc32fast::hash(&bytes[..body_end]);
    if stored != computed {
        return Err(IndexFileError::Checksum { stored, computed });
    }
    if found_kind != kind {
        return Err(IndexFileError::WrongKind {
            expected: kind.to_string(),
            found: found_kind,
        });
    }
    if version != payload_version {
        return Err(IndexFileError::UnsupportedVersion {
            what: "payload",
            found: version,
            supported: payload_version,
        });
    }
    Ok(payload)
}

/// A payload that passed the checksum but is inconsistent.
pub(crate) fn invalid(reason: impl Into<String>) -> RetrieverError {
    RetrieverError::IndexFile(IndexFileError::InvalidPayload(reason.into()))
}

/// Check a stored document's term list: ids below `n_terms`, strictly
/// increasing, payloads accepted by `ok`.
pub(crate) fn validate_terms<P>(
    doc: &Entry<P>,
    n_terms: u32,
    ok: impl Fn(&P) -> bool,
) -> Result<(), RetrieverError> {
    let mut prev: Option<u32> = None;
    for (t, p) in &doc.terms {
        if *t >= n_terms || !ok(p) || prev.is_some_and(|q| q >= *t) {
            return Err(invalid(format!(
                "document `{}` has a bad term list",
                doc.id
            )));
        }
        prev = Some(*t);
    }
    Ok(())
}

/// Frame a serde snapshot of an index of `kind` (postcard payload).
pub(crate) fn encode_snapshot<T: serde::Serialize>(
    kind: &str,
    version: u16,
    snapshot: &T,
) -> Result<Vec<u8>, RetrieverError> {
    let payload = postcard::to_allocvec(snapshot)
        .map_err(|e| invalid(format!("cannot encode the {kind} index: {e}")))?;
    Ok(encode(kind, version, &payload)?)
}

/// Check the frame and decode the snapshot of an index of `kind`.
pub(crate) fn decode_snapshot<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    kind: &str,
    version: u16,
) -> Result<T, RetrieverError> {
    let payload = decode(bytes, kind, version)?;
    postcard::from_bytes(payload)
        .map_err(|e| invalid(format!("cannot decode the {kind} snapshot: {e}")))
}

/// An index with a saved form: bytes in the container format, and files.
pub trait SavedIndex: Sized {
    /// Serialise to the versioned, checksummed format.
    fn to_bytes(&self) -> Result<Vec<u8>, RetrieverError>;

    /// Read what [`SavedIndex::to_bytes`] wrote; anything foreign, damaged or
    /// inconsistent is refused whole.
    fn from_bytes(bytes: &[u8]) -> Result<Self, RetrieverError>;

    /// Save to a file.
    fn save(&self, path: &Path) -> Result<(), RetrieverError> {
        write_file(path, &self.to_bytes()?)
    }

    /// Load from a file.
    fn load(path: &Path) -> Result<Self, RetrieverError> {
        Self::from_bytes(&read_file(path)?)
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), RetrieverError> {
    write_atomic(path, bytes).map_err(|source| RetrieverError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Write `bytes` to `path` so that a crash or a concurrent save never
/// leaves a torn file: a temporary file of its own in the same directory
/// (process id and a counter in the name, so two saves never share one),
/// flushed to disk, renamed over `path`, then the directory flushed so the
/// rename itself survives a power cut. A failure removes the temporary file
/// and leaves what was at `path` untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let (dir, name) = parent_and_name(path)?;
    sweep_stale(dir, &name, None);
    let tmp = dir.join(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        failpoint::hit_io("persist.write")?;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        failpoint::hit_io("persist.fsync")?;
        f.sync_all()?;
        failpoint::hit_io("persist.rename")?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename is durable once the directory is; not every platform can
    // open a directory for that (it is best effort there).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Replace the directory `dir` with one holding `files` (plain names, in
/// order) and whatever else `dir` already held (carried over as hard links,
/// sub-directories recreated), so that a crash, a failure or a concurrent
/// save leaves `dir` either as it was or with every new file, never a mix:
/// the new directory is built beside it (`.NAME.PID-N.new`), each file and
/// the directory flushed to disk, then swapped in with one atomic exchange
/// (`renameat2(RENAME_EXCHANGE)` on Linux; a first save is one rename) and
/// the parent flushed; the old contents are removed after. Where the file
/// system cannot exchange (and off Linux) the old directory is renamed
/// aside first: a crash between the two renames leaves it beside `dir` as
/// `.NAME.PID-N.old`, whole. A failure before the swap removes the new
/// directory and leaves `dir` untouched.
pub fn write_dir_atomic(dir: &Path, files: &[(&str, &[u8])]) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    for (name, _) in files {
        let plain = Path::new(name).file_name() == Some(std::ffi::OsStr::new(name));
        if !plain {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{name}` is not a plain file name"),
            ));
        }
    }
    let (parent, name) = parent_and_name(dir)?;
    std::fs::create_dir_all(parent)?;
    sweep_stale(parent, &name, Some(dir));
    let exists = match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a directory", dir.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    let tag = format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let stage = parent.join(format!(".{name}.{tag}.new"));
    let built = (|| {
        failpoint::hit_io("persist.dir.create")?;
        std::fs::create_dir(&stage)?;
        for (file, bytes) in files {
            write_synced(&stage.join(file), bytes)?;
        }
        if exists {
            carry_over(dir, &stage, files)?;
        }
        failpoint::hit_io("persist.dir.fsync")?;
        sync_dir(&stage)?;
        Ok(())
    })();
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&stage);
        return Err(e);
    }
    let swapped = swap_in(
        &stage,
        dir,
        exists,
        &parent.join(format!(".{name}.{tag}.old")),
    );
    if let Err(e) = swapped {
        let _ = std::fs::remove_dir_all(&stage);
        return Err(e);
    }
    let _ = sync_dir(parent);
    Ok(())
}

/// The directory holding `path` (`.` for a bare name) and its last name.
fn parent_and_name(path: &Path) -> std::io::Result<(&Path, String)> {
    let parent = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{} names no file", path.display())))?
        .to_string_lossy()
        .into_owned();
    Ok((parent, name))
}

/// Whether the process `pid` is gone (Linux: no `/proc/PID`); elsewhere
/// never known, so nothing is swept.
fn process_gone(pid: u32) -> bool {
    cfg!(target_os = "linux")
        && pid != std::process::id()
        && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Clean up after saves of `name` in `parent` that a crash (SIGKILL, power
/// loss) cut short: their temporary files and new directories are removed;
/// an old directory renamed aside (the non-exchange path) goes back to
/// `dir` when `dir` is missing, so nothing saved is lost. Only entries of
/// processes that are gone are touched; errors are ignored (best effort).
fn sweep_stale(parent: &Path, name: &str, dir: Option<&Path>) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let Some((tag, suffix)) = rest.rsplit_once('.') else {
            continue;
        };
        let pid = tag.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if !pid.is_some_and(process_gone) {
            continue;
        }
        let path = entry.path();
        match (suffix, dir) {
            ("tmp", _) => {
                let _ = std::fs::remove_file(&path);
            }
            ("new", _) => {
                let _ = std::fs::remove_dir_all(&path);
            }
            ("old", Some(dir)) if !dir.exists() => {
                let _ = std::fs::rename(&path, dir);
            }
            ("old", _) => {
                let _ = std::fs::remove_dir_all(&path);
            }
            _ => {}
        }
    }
}

/// `bytes` into a new file at `path`, flushed to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    failpoint::hit_io("persist.dir.write")?;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    failpoint::hit_io("persist.dir.fsync")?;
    f.sync_all()
}

/// Flush a directory's entries to disk (best effort where a directory
/// cannot be opened).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::File::open(dir) {
        Ok(d) => d.sync_all(),
        Err(_) => Ok(()),
    }
}

/// Every entry of `from` not among `files` into `to`: files hard-linked
/// (copied where links are refused), directories recreated the same way.
fn carry_over(from: &Path, to: &Path, files: &[(&str, &[u8])]) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if files.iter().any(|(f, _)| std::ffi::OsStr::new(f) == name) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir(&dst)?;
            carry_over(&src, &dst, &[])?;
        } else if kind.is_symlink() {
            #[cfg(unix)]
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
            #[cfg(not(unix))]
            std::fs::copy(&src, &dst).map(|_| ())?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// Put the finished `stage` at `dir`: one rename for a first save, an
/// atomic exchange otherwise (then the old contents, now at `stage`, are
/// removed); where exchange is unsupported, `dir` is renamed to `aside`
/// first.
fn swap_in(stage: &Path, dir: &Path, exists: bool, aside: &Path) -> std::io::Result<()> {
    failpoint::hit_io("persist.dir.swap")?;
    if !exists {
        match std::fs::rename(stage, dir) {
            Ok(()) => return Ok(()),
            // Another save created it meanwhile: exchange with that one.
            Err(_) if dir.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, stage, CWD, dir, RenameFlags::EXCHANGE) {
            Ok(()) => {
                let _ = std::fs::remove_dir_all(stage);
                return Ok(());
            }
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {}
            Err(e) => return Err(e.into()),
        }
    }
    std::fs::rename(dir, aside)?;
    if let Err(e) = std::fs::rename(stage, dir) {
        // Put the old one back: the save failed, nothing is lost.
        let _ = std::fs::rename(aside, dir);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(aside);
    Ok(())
}

/// Read an index file, naming it in the error.
fn read_file(path: &Path) -> Result<Vec<u8>, RetrieverError> {
    std::fs::read(path).map_err(|source| RetrieverError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_refusal() {
        let file = encode("demo", 3, b"hello").expect("encodes");
        assert_eq!(decode(&file, "demo", 3), Ok(&b"hello"[..]));

        assert_eq!(
            decode(b"PK\x03\x04zipfile", "demo", 3),
            Err(IndexFileError::BadMagic)
        );
        assert_eq!(decode(b"RLR", "demo", 3), Err(IndexFileError::BadMagic));
        for cut in [10, 20, file.len() - 1] {
            assert!(
                matches!(
                    decode(&file[..cut], "demo", 3),
                    Err(IndexFileError::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }
        let mut padded = file.clone();
        padded.push(0);
        assert_eq!(
            decode(&padded, "demo", 3),
            Err(IndexFileError::TrailingBytes { extra: 1 })
        );
        let mut flipped = file.clone();
        let mid = flipped.len() - 6;
        flipped[mid] ^= 0x40;
        assert!(matches!(
            decode(&flipped, "demo", 3),
            Err(IndexFileError::Checksum { .. })
        ));
        assert!(matches!(
            decode(&file, "other", 3),
            Err(IndexFileError::WrongKind { .. })
        ));
        assert!(matches!(
            decode(&file, "demo", 2),
            Err(IndexFileError::UnsupportedVersion {
                what: "payload",
                found: 3,
                supported: 2
            })
        ));
        let mut future = file;
        future[8] = 9;
        assert!(matches!(
            decode(&future, "demo", 3),
            Err(IndexFileError::UnsupportedVersion {
                what: "container",
                ..
            })
        ));
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A save that fails at its write, its flush or its rename leaves the
    /// old file byte for byte and no temporary file behind.
    #[test]
    fn a_failed_save_keeps_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.idx");
        write_atomic(&path, b"old contents").expect("first save");
        for point in ["persist.write", "persist.fsync", "persist.rename"] {
            failpoint::arm(point);
            let err = write_atomic(&path, b"new contents").expect_err(point);
            failpoint::disarm();
            assert!(err.to_string().contains(point), "{err}");
            assert_eq!(
                std::fs::read(&path).expect("read"),
                b"old contents",
                "{point}"
            );
            assert_eq!(listing(dir.path()), ["index.idx"], "{point}");
        }
        write_atomic(&path, b"new contents").expect("then it saves");
        assert_eq!(std::fs::read(&path).expect("read"), b"new contents");
    }

    /// Saves of one path from several threads at once: each succeeds, the
    /// file is one of them whole, and no temporary file is left.
    #[test]
    fn concurrent_saves_of_one_path_never_tear() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.idx");
        let versions: Vec<Vec<u8>> = (0u8..8).map(|i| vec![i; 64 * 1024]).collect();
        std::thread::scope(|s| {
            for v in &versions {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomic(path, v).expect("saves");
                    }
                });
            }
        });
        let got = std::fs::read(&path).expect("read");
        assert!(versions.contains(&got), "a torn file");
        assert_eq!(listing(dir.path()), ["index.idx"]);
    }

    /// A directory's files as `(path relative to it, bytes)`, sorted.
    fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
            for e in std::fs::read_dir(dir).expect("list") {
                let path = e.expect("entry").path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    let rel = path
                        .strip_prefix(root)
                        .expect("inside")
                        .display()
                        .to_string();
                    out.push((rel, std::fs::read(&path).expect("read")));
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    fn model(version: u8) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("model.safetensors", vec![version; 4096]),
            (
                "config.json",
                format!("{{\"version\": {version}}}").into_bytes(),
            ),
            ("manifest.json", vec![version; 10]),
        ]
    }

    fn save(dir: &Path, files: &[(&'static str, Vec<u8>)]) -> std::io::Result<()> {
        let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        write_dir_atomic(dir, &borrowed)
    }

    /// A second save replaces the files it names, keeps what else the
    /// directory held (a training log, checkpoints) and leaves nothing
    /// beside it.
    #[test]
    fn a_directory_save_replaces_its_files_and_keeps_the_rest() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("model");
        save(&dir, &model(1)).expect("first save");
        std::fs::write(dir.join("train.jsonl"), b"log").expect("log");
        std::fs::create_dir_all(dir.join("checkpoints/step-1")).expect("checkpoint");
        std::fs::write(dir.join("checkpoints/step-1/config.json"), b"ckpt").expect("checkpoint");
        save(&dir, &model(2)).expect("second save");
        let mut want: Vec<(String, Vec<u8>)> = model(2)
            .into_iter()
            .map(|(n, b)| (n.to_owned(), b))
            .collect();
        want.push((
            "checkpoints/step-1/config.json".to_owned(),
            b"ckpt".to_vec(),
        ));
        want.push(("train.jsonl".to_owned(), b"log".to_vec()));
        want.sort();
        assert_eq!(tree(&dir), want);
        assert_eq!(listing(root.path()), ["model"]);
        assert!(save(&dir, &[("../escape", vec![1])]).is_err());
        assert!(
            save(&dir.join("config.json"), &model(3)).is_err(),
            "a file is not a directory"
        );
    }

    /// Fail the 0th, 1st, 2nd … step of a directory save (each write,
    /// flush, directory creation and the swap) until one completes: every
    /// failed save leaves the old directory byte for byte and nothing
    /// beside it.
    #[test]
    fn a_directory_save_failing_at_any_step_keeps_the_old_directory() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("model");
        save(&dir, &model(1)).expect("first save");
        std::fs::write(dir.join("train.jsonl"), b"log").expect("log");
        let old = tree(&dir);
        let mut failures = 0;
        for n in 0.. {
            failpoint::arm_nth(n);
            let result = save(&dir, &model(2));
            let reached = failpoint::nth_reached();
            failpoint::disarm();
            if !reached {
                result.expect("the save with no failure left succeeds");
                break;
            }
            let err = result.expect_err("the armed step fails the save");
            assert!(err.to_string().contains("failpoint"), "{err}");
            assert_eq!(tree(&dir), old, "after failing step {n}");
            assert_eq!(listing(root.path()), ["model"], "after failing step {n}");
            failures += 1;
        }
        assert!(failures >= 6, "only {failures} steps");
        assert_eq!(tree(&dir).len(), 4);
        assert_eq!(
            std::fs::read(dir.join("config.json")).expect("read"),
            br#"{"version": 2}"#
        );
    }

    /// Directory saves from several threads at once: each succeeds and the
    /// directory is one of them, whole.
    #[test]
    fn concurrent_directory_saves_never_mix() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("model");
        std::thread::scope(|s| {
            for v in 0u8..6 {
                let dir = &dir;
                s.spawn(move || {
                    for _ in 0..10 {
                        save(dir, &model(v)).expect("saves");
                    }
                });
            }
        });
        let got = tree(&dir);
        let whole = (0u8..6).any(|v| {
            let mut want: Vec<(String, Vec<u8>)> = model(v)
                .into_iter()
                .map(|(n, b)| (n.to_owned(), b))
                .collect();
            want.sort();
            want == got
        });
        assert!(
            whole,
            "a mixed directory: {:?}",
            got.iter().map(|(n, b)| (n, b[0])).collect::<Vec<_>>()
        );
        assert_eq!(listing(root.path()), ["model"]);
    }
}
