//! Crash consistency of saves: a process saving a file
//! ([`persist::write_atomic`]) or a model directory
//! ([`persist::write_dir_atomic`]) over and over is killed with SIGKILL at
//! a random moment; what is on disk must be one whole version, byte for
//! byte, that loads. Two processes saving the same directory at once leave
//! one of their versions, whole. The runs re-execute this test binary as
//! the saving child. `RLRAG_CRASH_RUNS` sets the number of kills per case
//! (the test command: 60; scripts/crash.sh: 1,000).

#![allow(missing_docs, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use rlrag_retriever::persist;
use rlrag_retriever::rng::SplitMix64;

const CHILD_ENV: &str = "RLRAG_CRASH_CHILD";

/// The payload of version `k`: its number, then 16–208 KiB of bytes
/// derived from it (so a torn write cannot look whole).
fn payload(k: u64) -> Vec<u8> {
    let len = 16 * 1024 + (k % 13) as usize * 16 * 1024;
    let mut out = k.to_le_bytes().to_vec();
    out.extend((0..len).map(|i| (i as u64).wrapping_mul(k | 1).to_le_bytes()[i % 8]));
    out
}

fn framed(k: u64) -> Vec<u8> {
    persist::encode("crash", 1, &payload(k)).unwrap_or_else(|e| panic!("{e}"))
}

fn dir_files(k: u64) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("model.safetensors", payload(k)),
        ("config.json", format!("{{\"version\": {k}}}").into_bytes()),
        ("manifest.json", framed(k)),
    ]
}

/// The version `path` holds, when it holds exactly one version, whole.
fn file_version(path: &Path) -> Result<u64, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("unreadable: {e}"))?;
    let body = persist::decode(&bytes, "crash", 1).map_err(|e| format!("does not load: {e}"))?;
    let k = u64::from_le_bytes(
        body.get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or("short")?,
    );
    if body == payload(k) {
        Ok(k)
    } else {
        Err(format!("version {k} with other bytes"))
    }
}

fn dir_version(dir: &Path) -> Result<u64, String> {
    let k = file_version(&dir.join("manifest.json"))?;
    for (name, want) in dir_files(k) {
        let have = std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
        if have != want {
            return Err(format!("{name} is not version {k}: a mixed directory"));
        }
    }
    Ok(k)
}

/// The child: save versions `start`, `start + step`, … to its target until
/// killed (or `count` saves, then exit).
#[test]
fn child() {
    let Some(target) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (start, step, count) = (
        var("RLRAG_CRASH_START", 1),
        var("RLRAG_CRASH_STEP", 1),
        var("RLRAG_CRASH_COUNT", u64::MAX),
    );
    let as_dir = std::env::var_os("RLRAG_CRASH_DIR").is_some();
    let mut k = start;
    for _ in 0..count {
        if as_dir {
            let files = dir_files(k);
            let borrowed: Vec<(&str, &[u8])> =
                files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
            persist::write_dir_atomic(&target, &borrowed).unwrap_or_else(|e| panic!("{e}"));
        } else {
            persist::write_atomic(&target, &framed(k)).unwrap_or_else(|e| panic!("{e}"));
        }
        k += step;
    }
}

fn spawn(target: &Path, as_dir: bool, start: u64, step: u64, count: Option<u64>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap_or_else(|e| panic!("{e}")));
    cmd.args(["--exact", "child", "--test-threads=1", "--quiet"])
        .env(CHILD_ENV, target)
        .env("RLRAG_CRASH_START", start.to_string())
        .env("RLRAG_CRASH_STEP", step.to_string())
        .stdout(std::process::Stdio::null());
    if as_dir {
        cmd.env("RLRAG_CRASH_DIR", "1");
    }
    if let Some(n) = count {
        cmd.env("RLRAG_CRASH_COUNT", n.to_string());
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot start the child: {e}"))
}

fn runs() -> usize {
    std::env::var("RLRAG_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// Kill a saving child `runs()` times at random moments (seeded); after
/// each kill the target holds one whole version, never older than the
/// last one seen.
fn kill_loop(as_dir: bool) {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let target = root.path().join(if as_dir { "model" } else { "index.idx" });
    let mut rng = SplitMix64::new(if as_dir { 21 } else { 12 });
    let (mut last, mut next) = (0u64, 1u64);
    let (mut seen_new, mut interrupted) = (0, 0);
    for run in 0..runs() {
        let mut child = spawn(&target, as_dir, next, 1, None);
        std::thread::sleep(Duration::from_micros(2_000 + rng.next_u64() % 60_000));
        child.kill().unwrap_or_else(|e| panic!("{e}"));
        let _ = child.wait();
        // Something beside the target: the kill cut a save short.
        let entries = std::fs::read_dir(root.path()).map_or(0, Iterator::count);
        if entries > usize::from(target.exists()) {
            interrupted += 1;
        }
        if !target.exists() && last == 0 {
            continue; // killed before its first save finished
        }
        let k = if as_dir {
            dir_version(&target)
        } else {
            file_version(&target)
        }
        .unwrap_or_else(|why| panic!("run {run}: {} {why}", target.display()));
        assert!(k >= last, "run {run}: version {k} after {last}");
        if k > last {
            seen_new += 1;
        }
        last = k;
        next = k + 1_000;
    }
    // The kills landed at different moments: most runs saved something,
    // and some were cut off inside a save.
    eprintln!(
        "{}: {} kills, {seen_new} new versions found whole, {interrupted} saves cut short, none torn",
        if as_dir { "directory" } else { "file" },
        runs()
    );
    assert!(
        seen_new > runs() / 2,
        "only {seen_new} of {} runs saved",
        runs()
    );
    assert!(interrupted > 0, "no kill landed inside a save");
    // A later save sweeps what the killed ones left beside the target.
    let child = spawn(&target, as_dir, next, 1, Some(1)).wait_with_output();
    assert!(child.is_ok_and(|o| o.status.success()));
    let names: Vec<String> = std::fs::read_dir(root.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| {
            e.map(|e| e.file_name().to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(names.len(), 1, "left beside it: {names:?}");
}

#[test]
fn a_file_save_killed_at_any_moment_leaves_one_whole_version() {
    kill_loop(false);
}

#[test]
fn a_directory_save_killed_at_any_moment_leaves_one_whole_version() {
    kill_loop(true);
}

/// Two processes saving the same directory at once, 40 saves each: both
/// succeed and the directory is one of their versions, whole.
#[test]
fn two_processes_saving_one_directory_leave_one_whole_version() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let target = root.path().join("model");
    let a = spawn(&target, true, 2, 2, Some(40));
    let b = spawn(&target, true, 1, 2, Some(40));
    for child in [a, b] {
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let k = dir_version(&target).unwrap_or_else(|why| panic!("{why}"));
    assert!(k == 80 || k == 79, "the last save of either: {k}");
    let names: Vec<_> = std::fs::read_dir(root.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .collect();
    assert_eq!(names.len(), 1);
}
