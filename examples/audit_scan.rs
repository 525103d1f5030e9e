//! How fast ptree scans an audit log for one pid, against `ausearch`.
//!
//! Writes a synthetic log of about MB megabytes to a temporary file by
//! repeating the recorded fixture events with fresh serials and times,
//! then times `AuditLog::open(file).events_for_target(PID)` and, when it is
//! installed, `ausearch -if FILE -p PID` (best of three runs each). The
//! time to decode every event, unfiltered, is printed too.
//!
//!     cargo run --release --example audit_scan -- [MB] [PID]
//!
//! The two do not ask quite the same question: ausearch's `-p` matches
//! the event's `pid=` field (the sender, and OBJ_PID's `opid=`), ptree's
//! filter the targets. The default pid 17802 is a target of two events of
//! every repetition; the numbers of events found are printed to compare.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ptree::audit::AuditLog;
use ptree::model::Pid;

const FIXTURE: &[u8] = include_bytes!("../tests/fixtures/audit/audit-samples.log");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let megabytes: u64 = args.next().map_or(Ok(100), |a| a.parse())?;
    let pid: i32 = args.next().map_or(Ok(17802), |a| a.parse())?;

    let file = tempfile::NamedTempFile::new()?;
    let started = Instant::now();
    let size = write_log(file.path(), megabytes * 1024 * 1024)?;
    println!(
        "synthetic log: {:.1} MB in {:.1?}",
        size as f64 / 1e6,
        started.elapsed()
    );

    let (ptree_time, found) = best_of(3, || {
        let mut log = AuditLog::open([file.path()]).events_for_target(Pid(pid));
        let found = log.by_ref().filter(Result::is_ok).count();
        let stats = log.stats();
        (found, stats.lines)
    });
    println!(
        "ptree:    {:>8.3} s  {:>7.1} MB/s  {} events for pid {pid} ({} lines)",
        ptree_time.as_secs_f64(),
        size as f64 / 1e6 / ptree_time.as_secs_f64(),
        found.0,
        found.1
    );

    let (all_time, all) = best_of(3, || {
        AuditLog::open([file.path()]).filter(Result::is_ok).count()
    });
    println!(
        "ptree:    {:>8.3} s  {:>7.1} MB/s  {all} events, all decoded (no filter)",
        all_time.as_secs_f64(),
        size as f64 / 1e6 / all_time.as_secs_f64(),
    );

    if Command::new("ausearch").arg("--version").output().is_err() {
        println!("ausearch: not installed (apt-get install auditd)");
        return Ok(());
    }
    let (ausearch_time, matched) = best_of(3, || {
        let out = Command::new("ausearch")
            .arg("-if")
            .arg(file.path())
            .args(["-p", &pid.to_string()])
            .stderr(Stdio::null())
            .output();
        let events = out.map_or(0, |o| {
            o.stdout
                .split(|&b| b == b'\n')
                .filter(|l| l.starts_with(b"----"))
                .count()
        });
        (events, 0)
    });
    println!(
        "ausearch: {:>8.3} s  {:>7.1} MB/s  {} events",
        ausearch_time.as_secs_f64(),
        size as f64 / 1e6 / ausearch_time.as_secs_f64(),
        matched.0
    );
    println!(
        "ausearch / ptree time: {:.1}x",
        ausearch_time.as_secs_f64() / ptree_time.as_secs_f64()
    );
    Ok(())
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..runs {
        let started = Instant::now();
        let result = f();
        let took = started.elapsed();
        if best.as_ref().is_none_or(|(b, _)| took < *b) {
            best = Some((took, result));
        }
    }
    best.expect("at least one run")
}

/// Repeats the fixture's events until `target` bytes are written, each
/// event under a new stamp 10 ms after the previous one.
fn write_log(path: &Path, target: u64) -> std::io::Result<u64> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let mut written = 0u64;
    let mut serial = 1u64;
    let mut millis = 1_795_000_000_000u64;
    let mut last_stamp: &[u8] = b"";
    while written < target {
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

fn split_stamp(line: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let open = line.windows(10).position(|w| w == b"msg=audit(")? + 10;
    let close = open + line[open..].iter().position(|&b| b == b')')?;
    Some((&line[..open], &line[open..close], &line[close..]))
}
