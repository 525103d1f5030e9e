//! The npm side: each app's committed lockfile installed with `npm ci` into
//! target/e2e-cache, keyed by the manifest and lockfile contents, so a
//! second run reuses it and a changed lockfile gets a fresh install.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::cmd::run_bounded;

/// tests/e2e/NAME: an app's sources, manifest and lockfile.
pub fn app_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e")
        .join(name)
}

/// target/e2e-cache (next to Cargo's own tmp dir, so CARGO_TARGET_DIR is
/// honoured).
fn cache_root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("e2e-cache")
}

/// FNV-1a: a stable key across toolchains, unlike std's hasher.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// An exclusive flock(2) on a file next to a cache entry, so two test
/// processes sharing a target dir never install into it at once.
struct CacheLock {
    /// Held only to keep the descriptor (and so the lock) open.
    _file: std::fs::File,
}

impl CacheLock {
    fn take(path: &Path) -> CacheLock {
        use std::os::fd::AsRawFd;
        std::fs::create_dir_all(path.parent().expect("cache root")).expect("mkdir cache");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // SAFETY: flock on a descriptor this struct owns; released on close.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {}", path.display());
        CacheLock { _file: f }
    }
}

/// The node_modules of the app in tests/e2e/NAME, installed from its
/// lockfile (retried once). Panics with npm's own words when the registry
/// cannot be reached: the end-to-end test must fail, not pass vacuously.
pub fn node_modules(name: &str) -> PathBuf {
    let src = app_dir(name);
    let read = |f: &str| {
        std::fs::read(src.join(f)).unwrap_or_else(|e| panic!("{}/{f}: {e}", src.display()))
    };
    let (manifest, lock) = (read("package.json"), read("package-lock.json"));
    let dir = cache_root().join(format!("{name}-{:016x}", fnv1a(&[&manifest, &lock])));
    let _lock = CacheLock::take(&dir.with_extension("lock"));
    let done = dir.join(".installed");
    if done.exists() && dir.join("node_modules").is_dir() {
        return dir.join("node_modules");
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    std::fs::write(dir.join("package.json"), &manifest).expect("write package.json");
    std::fs::write(dir.join("package-lock.json"), &lock).expect("write package-lock.json");
    let mut failures = Vec::new();
    let started = std::time::Instant::now();
    for attempt in 1..=2 {
        let ran = run_bounded(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .env("npm_config_update_notifier", "false"),
            &dir.join("npm-ci.log"),
            Duration::from_secs(600),
        );
        if ran.ok() {
            std::fs::write(&done, "npm ci done\n").expect("write marker");
            eprintln!(
                "e2e: npm ci for tests/e2e/{name} took {:.1}s",
                started.elapsed().as_secs_f64()
            );
            return dir.join("node_modules");
        }
        let why = match ran.status {
            Some(s) => format!("{s}"),
            None => "killed after 10 minutes".to_string(),
        };
        eprintln!("e2e: npm ci for tests/e2e/{name}, attempt {attempt}, failed ({why})");
        failures.push(format!("attempt {attempt} ({why}):\n{}", ran.tail(15)));
    }
    panic!(
        "could not install tests/e2e/{name} from its lockfile with `npm ci` \
         (is the npm registry reachable?):\n{}",
        failures.join("\n")
    );
}
