//! `ptree who-killed PID --audit-log FILE` against `ausearch -if FILE -p
//! PID` on the same large log: the real commands, best of five runs each.
//!
//!     cargo build --release && cargo run --release --example bench_audit_log -- [MB] [--keep]
//!
//! The log (MB megabytes, default 200) repeats the recorded fixture events
//! with fresh serials, 10 ms apart, in time order as auditd writes them.
//! Two questions are timed:
//!
//! - a sparse pid: one `kill -TERM` to it, in the middle of the log (the
//!   usual case: one process died, which signal ended it);
//! - a dense pid: 17802, a target of two events of every repetition of
//!   the fixture, so 1 event in 20 concerns it and every one is printed.
//!
//! Wall time is what the user waits; CPU time (user + system, from
//! `getrusage`) is printed too, as it varies less on a busy machine.
//!
//! ausearch's `-p` matches the sender's `pid=`, not OBJ_PID's `opid=`:
//! it finds nothing for a target, but reads and parses the whole log to
//! say so, which is what is compared.

mod common;

use common::ptree_bin;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FIXTURE: &[u8] = include_bytes!("../tests/fixtures/audit/audit-samples.log");
const SPARSE: u32 = 4_000_001;
const DENSE: u32 = 17802;
const RUNS: usize = 5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let megabytes: u64 = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map_or(Ok(200), |a| a.parse())?;
    // `--keep` leaves the log in place for profiling (path printed below).
    let file = tempfile::NamedTempFile::new()?;
    let size = write_log(file.path(), megabytes * 1024 * 1024)?;
    let file = if args.iter().any(|a| a == "--keep") {
        Log::Kept(file.into_temp_path().keep()?)
    } else {
        Log::Temp(file)
    };
    println!(
        "log: {:.1} MB, {}",
        size as f64 / 1e6,
        file.path().display()
    );
    if Command::new("ausearch").arg("--version").output().is_err() {
        println!("ausearch: not installed (apt-get install auditd)");
        return Ok(());
    }
    println!(
        "{:<8} {:>10} {:>10} {:>6}   {:>10} {:>10} {:>6}",
        "pid", "ptree", "ausearch", "ratio", "ptree cpu", "ausearch", "ratio"
    );
    for pid in [SPARSE, DENSE] {
        let pid_text = pid.to_string();
        let path = file.path().to_str().ok_or("a UTF-8 temporary path")?;
        let ptree = best_of(|| {
            let status = Command::new(ptree_bin())
                .args(["who-killed", &pid_text, "--audit-log", path, "--json"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run ptree (cargo build --release first)");
            assert_eq!(status.code(), Some(0), "ptree found no signal to {pid}");
        });
        let ausearch = best_of(|| {
            Command::new("ausearch")
                .args(["-if", path, "-p", &pid_text])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run ausearch");
        });
        let ratio = |a: Duration, p: Duration| a.as_secs_f64() / p.as_secs_f64();
        println!(
            "{pid:<8} {:>9.3}s {:>9.3}s {:>5.1}x   {:>9.3}s {:>9.3}s {:>5.1}x",
            ptree.0.as_secs_f64(),
            ausearch.0.as_secs_f64(),
            ratio(ausearch.0, ptree.0),
            ptree.1.as_secs_f64(),
            ausearch.1.as_secs_f64(),
            ratio(ausearch.1, ptree.1),
        );
    }
    Ok(())
}

/// The benchmark's log: removed at the end unless asked to keep it.
enum Log {
    Temp(tempfile::NamedTempFile),
    Kept(PathBuf),
}

impl Log {
    fn path(&self) -> &Path {
        match self {
            Log::Temp(f) => f.path(),
            Log::Kept(p) => p,
        }
    }
}

/// The best wall time and the best CPU time of [`RUNS`] runs of `f`,
/// which runs one child process.
fn best_of(mut f: impl FnMut()) -> (Duration, Duration) {
    let mut wall = Duration::MAX;
    let mut cpu = Duration::MAX;
    for _ in 0..RUNS {
        let cpu_before = children_cpu();
        let started = Instant::now();
        f();
        wall = wall.min(started.elapsed());
        cpu = cpu.min(children_cpu().saturating_sub(cpu_before));
    }
    (wall, cpu)
}

/// User and system time of every child waited for so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Repeats the fixture's events until `target` bytes are written, each
/// event under a new stamp 10 ms after the previous one; halfway, one
/// `kill -TERM` to [`SPARSE`].
fn write_log(path: &Path, target: u64) -> std::io::Result<u64> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let mut written = 0u64;
    let mut serial = 1u64;
    let mut millis = 1_795_000_000_000u64;
    let mut last_stamp: &[u8] = b"";
    let mut sparse_done = false;
    while written < target {
        if !sparse_done && written >= target / 2 {
            sparse_done = true;
            serial += 1;
            millis += 10;
            let text = sparse_event(&format!("{}.{:03}:{serial}", millis / 1000, millis % 1000));
            out.write_all(text.as_bytes())?;
            written += text.len() as u64;
        }
        for line in FIXTURE.split_inclusive(|&b| b == b'\n') {
            let Some((before, stamp, after)) = split_stamp(line) else {
                continue;
            };
            if stamp != last_stamp {
                last_stamp = stamp;
                serial += 1;
                millis += 10;
            }
            let fresh = format!("{}.{:03}:{serial}", millis / 1000, millis % 1000);
            for part in [before, fresh.as_bytes(), after] {
                out.write_all(part)?;
                written += part.len() as u64;
            }
        }
    }
    out.flush()?;
    Ok(written)
}

/// `kill -TERM SPARSE` from pid 3999000, as auditd writes it (ENRICHED).
fn sparse_event(stamp: &str) -> String {
    let title: String = format!("kill\0-TERM\0{SPARSE}")
        .bytes()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!(
        "type=SYSCALL msg=audit({stamp}): arch=c000003e syscall=62 success=yes exit=0 a0={SPARSE:x} a1=f a2=0 a3=7f14e4620ac0 items=0 ppid=3998999 pid=3999000 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=\"kill\" exe=\"/usr/bin/kill\" key=\"ptree\"\x1dARCH=x86_64 SYSCALL=kill AUID=\"unset\" UID=\"root\" GID=\"root\" EUID=\"root\" SUID=\"root\" FSUID=\"root\" EGID=\"root\" SGID=\"root\" FSGID=\"root\"\n\
         type=OBJ_PID msg=audit({stamp}): opid={SPARSE} oauid=-1 ouid=0 oses=-1 ocomm=\"node\"\x1dOAUID=\"unset\" OUID=\"root\"\n\
         type=PROCTITLE msg=audit({stamp}): proctitle={title}\n"
    )
}

fn split_stamp(line: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let open = line.windows(10).position(|w| w == b"msg=audit(")? + 10;
    let close = open + line[open..].iter().position(|&b| b == b')')?;
    Some((&line[..open], &line[open..close], &line[close..]))
}
