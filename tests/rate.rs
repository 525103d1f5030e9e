//! Write rates into one pipe or socket, measured against writers whose
//! rate is known.
//!
//! Needs root (tracefs); without it the measuring tests print a SKIP line
//! and pass. Measurements run one at a time, so each can check that its
//! tracefs instance is gone afterwards.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Tree, wait_for};
use ptree::Error;
use ptree::model::Pid;
use ptree::trace::rate::{RateSample, WriteTarget, measure_write_rate};

const WINDOW: Duration = Duration::from_secs(2);
const TOLERANCE: f64 = 0.15;

/// Writes `RATE` bytes per second of the byte `BYTE` to stdout, paced by
/// the clock (not by counting timer ticks, which drift), and, when
/// `LOG_FILE` is set, `LOG_RATE` bytes per second to that file in 4 KiB
/// writes. Exits by itself after 30 s in case nobody kills it.
const WRITER_JS: &str = r#"
const fs = require('fs');
const rate = Number(process.env.RATE);
const byte = Number(process.env.BYTE || 120);
const logRate = Number(process.env.LOG_RATE || 0);
const logFd = process.env.LOG_FILE ? fs.openSync(process.env.LOG_FILE, 'w') : -1;
const t0 = performance.now();
let sent = 0, logged = 0;
setInterval(() => {
  const secs = (performance.now() - t0) / 1000;
  const due = Math.floor(secs * rate);
  if (due > sent) { process.stdout.write(Buffer.alloc(due - sent, byte)); sent = due; }
  if (logFd >= 0) {
    const logDue = Math.floor(secs * logRate);
    while (logged < logDue) {
      const n = Math.min(4096, logDue - logged);
      fs.writeSync(logFd, Buffer.alloc(n, 108));
      logged += n;
    }
  }
}, 20);
setTimeout(() => process.exit(0), 30000);
"#;

/// Spawns `WRITER_JS` with stdio 'pipe' (a socketpair, in libuv), drains
/// it, and prints the child's pid once its first bytes arrived.
const PARENT_JS: &str = r#"
const { spawn } = require('child_process');
const c = spawn(process.execPath, ['-e', process.env.WRITER_JS],
                { stdio: ['ignore', 'pipe', 'inherit'] });
let first = true;
c.stdout.on('data', () => {
  if (first) { first = false; process.stdout.write(c.pid + '\n'); }
});
setTimeout(() => process.exit(0), 30000);
"#;

/// One measurement at a time: the instance check below looks at all of
/// this process's instances.
static MEASURING: Mutex<()> = Mutex::new(());

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("SKIP: write-rate tests need root (tracefs)");
    false
}

/// Bytes read from a pipe, by byte value, so a test can tell writers
/// apart and know when each has started.
struct Drained(Arc<Vec<AtomicU64>>);

impl Drained {
    fn start(mut reader: impl Read + Send + 'static) -> Drained {
        let counts: Arc<Vec<AtomicU64>> = Arc::new((0..256).map(|_| AtomicU64::new(0)).collect());
        let shared = Arc::clone(&counts);
        // Ends at EOF, when the tree's drop has killed every writer.
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    shared[usize::from(b)].fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Drained(counts)
    }

    fn wait_for_byte(&self, byte: u8) {
        wait_for(
            &format!("first bytes of writer {byte}"),
            Duration::from_secs(10),
            || (self.0[usize::from(byte)].load(Ordering::Relaxed) > 0).then_some(()),
        );
    }
}

fn writer(rate: u64, byte: u8) -> Command {
    let mut cmd = Command::new("node");
    cmd.args(["-e", WRITER_JS])
        .env("RATE", rate.to_string())
        .env("BYTE", byte.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Measures, checks the instance was removed, and prints the figures.
fn measure(targets: &[WriteTarget]) -> RateSample {
    let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let sample = measure_write_rate(targets, WINDOW).expect("measure write rate");
    let mine = format!("ptree-{}-rate", std::process::id());
    let left: Vec<String> = std::fs::read_dir("/sys/kernel/tracing/instances")
        .expect("instances dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&mine))
        .collect();
    assert!(left.is_empty(), "instances left behind: {left:?}");
    eprintln!(
        "{:.0} B/s: {} bytes in {} writes over {:.3} s, {} lost",
        sample.bytes_per_sec(),
        sample.bytes,
        sample.writes,
        sample.seconds,
        sample.lost_events
    );
    sample
}

fn assert_rate(sample: &RateSample, expected: f64) {
    let got = sample.bytes_per_sec();
    let error = (got - expected).abs() / expected;
    assert!(
        error <= TOLERANCE,
        "measured {got:.0} B/s, expected {expected:.0} B/s (off by {:.1} %): {sample:?}",
        error * 100.0
    );
    assert!(
        (sample.seconds - WINDOW.as_secs_f64()).abs() < 0.5,
        "window {sample:?}"
    );
    assert_eq!(sample.lost_events, 0, "{sample:?}");
}

fn fd_link(pid: u32, fd: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn writer_into_a_pipe() {
    if !is_root() {
        return;
    }
    let mut tree = Tree::new();
    let pid = tree.spawn(writer(100_000, b'x').stdout(Stdio::piped()));
    let out = tree.child(pid).stdout.take().expect("piped stdout");
    let drained = Drained::start(out);
    drained.wait_for_byte(b'x');
    assert!(fd_link(pid, 1).starts_with("pipe:"), "{}", fd_link(pid, 1));

    let sample = measure(&[WriteTarget {
        pid: Pid(pid as i32),
        fds: vec![1],
    }]);
    assert_rate(&sample, 100_000.0);
}

#[test]
fn writer_into_an_af_unix_socketpair_from_node_spawn() {
    if !is_root() {
        return;
    }
    let mut tree = Tree::new();
    let parent = tree.spawn(
        Command::new("node")
            .args(["-e", PARENT_JS])
            .env("WRITER_JS", WRITER_JS)
            .env("RATE", "64000")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let out = tree.child(parent).stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("child pid from the parent");
    let child: u32 = line.trim().parse().expect("a pid");
    assert!(
        fd_link(child, 1).starts_with("socket:"),
        "{}",
        fd_link(child, 1)
    );

    let sample = measure(&[WriteTarget {
        pid: Pid(child as i32),
        fds: vec![1],
    }]);
    assert_rate(&sample, 64_000.0);
}

#[test]
fn log_file_writes_are_not_counted() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("server.log");
    let mut tree = Tree::new();
    let pid = tree.spawn(
        writer(50_000, b'x')
            .env("LOG_FILE", &log)
            .env("LOG_RATE", "2000000")
            .stdout(Stdio::piped()),
    );
    let out = tree.child(pid).stdout.take().expect("piped stdout");
    let drained = Drained::start(out);
    drained.wait_for_byte(b'x');
    wait_for("log file writes", Duration::from_secs(10), || {
        let len = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        (len > 0).then_some(())
    });

    let sample = measure(&[WriteTarget {
        pid: Pid(pid as i32),
        fds: vec![1],
    }]);
    assert_rate(&sample, 50_000.0);
}

#[test]
fn writers_sharing_one_pipe() {
    if !is_root() {
        return;
    }
    let (reader, writer_end) = std::io::pipe().expect("pipe");
    let mut tree = Tree::new();
    let a = tree.spawn(writer(30_000, b'a').stdout(writer_end.try_clone().expect("dup")));
    let b = tree.spawn(writer(70_000, b'b').stdout(writer_end));
    let drained = Drained::start(reader);
    drained.wait_for_byte(b'a');
    drained.wait_for_byte(b'b');

    let sample = measure(&[
        WriteTarget {
            pid: Pid(a as i32),
            fds: vec![1],
        },
        WriteTarget {
            pid: Pid(b as i32),
            fds: vec![1],
        },
    ]);
    assert_rate(&sample, 100_000.0);
}

#[test]
fn missing_writer_is_an_error() {
    let gone = WriteTarget {
        pid: Pid(i32::MAX),
        fds: vec![1],
    };
    match measure_write_rate(&[gone], WINDOW) {
        Err(Error::NoSuchPid(Pid(i32::MAX))) => {}
        other => panic!("expected NoSuchPid, got {other:?}"),
    }
    assert!(matches!(
        measure_write_rate(&[], WINDOW),
        Err(Error::Usage(_))
    ));
}
