//! who-killed's cost, per backend:
//! 1. signal-to-printed-line latency (median, p99) over 200 signals;
//! 2. the slowdown of a signal-free syscall loop (dd with 1-byte blocks)
//!    in a watched target, against the same loop unwatched, same run.
//!
//!     cargo build --release && cargo run --release --example bench_who_killed
//!
//! Needs root (tracefs, ptrace of a process it did not start as child).

mod common;

use common::{Kill, ptree_bin};

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SIGNALS: usize = 200;
const DD_BLOCKS: &str = "2000000";

/// Starts `who-killed` on `pid` and waits until it watches.
fn watch(pid: u32, via: &str, extra: &[&str]) -> (Kill, mpsc::Receiver<Instant>) {
    let mut child = Command::new(ptree_bin())
        .args(["who-killed", &pid.to_string(), "--via", via, "--json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ptree");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("watching"), "{line}");
    // Keep draining stderr: a closed pipe would make ptree's warnings fail.
    std::thread::spawn(move || {
        for l in err.lines().map_while(Result::ok) {
            eprintln!("ptree: {l}");
        }
    });
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in out.lines() {
            let Ok(l) = l else { break };
            if l.contains("\"type\":\"signal\"") {
                let _ = tx.send(Instant::now());
            }
        }
    });
    (Kill(child), rx)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn latency(via: &str) -> (Duration, Duration) {
    let target = Kill(
        Command::new("node")
            .args([
                "-e",
                "process.on('SIGUSR2', () => {}); process.on('SIGHUP', () => {}); setInterval(() => {}, 1e9)",
            ])
            .spawn()
            .expect("node"),
    );
    // Node needs a moment before its handlers are in place.
    std::thread::sleep(Duration::from_millis(1500));
    let (_watch, rx) = watch(target.0.id(), via, &["--signals", "USR2,HUP"]);
    let mut lat = Vec::with_capacity(SIGNALS);
    for i in 0..SIGNALS {
        // Alternate two signals: identical signals within a second are
        // written once and counted, which would hide the latency.
        let sig = if i % 2 == 0 {
            libc::SIGUSR2
        } else {
            libc::SIGHUP
        };
        let sent = Instant::now();
        // SAFETY: signalling a child this program started.
        unsafe { libc::kill(target.0.id() as i32, sig) };
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(t) => lat.push(t - sent),
            Err(_) => panic!("{via}: signal {i} was not reported"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    lat.sort();
    (percentile(&lat, 0.5), percentile(&lat, 0.99))
}

/// Runs dd (1-byte blocks: two syscalls a block) in a shell that waits
/// for a line on stdin, optionally watched; returns dd's wall time.
fn syscall_loop(via: Option<&str>) -> Duration {
    let mut sh = Kill(
        Command::new("sh")
            .args([
                "-c",
                &format!(
                    "read go; exec dd if=/dev/zero of=/dev/null bs=1 count={DD_BLOCKS} status=none"
                ),
            ])
            .stdin(Stdio::piped())
            .spawn()
            .expect("sh"),
    );
    let _watch = via.map(|v| watch(sh.0.id(), v, &[]));
    let start = Instant::now();
    sh.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    sh.0.wait().unwrap();
    start.elapsed()
}

fn main() {
    assert!(ptree_bin().exists(), "run `cargo build --release` first");
    println!("| backend | latency median | latency p99 | dd unwatched | dd watched | slowdown |");
    println!("|---|---:|---:|---:|---:|---:|");
    for via in ["tracefs", "ptrace"] {
        let (median, p99) = latency(via);
        // Interleave to share drift; best of three each.
        let mut plain = Vec::new();
        let mut watched = Vec::new();
        for _ in 0..3 {
            plain.push(syscall_loop(None));
            watched.push(syscall_loop(Some(via)));
        }
        let (p, w) = (*plain.iter().min().unwrap(), *watched.iter().min().unwrap());
        println!(
            "| {via} | {:.2} ms | {:.2} ms | {:.0} ms | {:.0} ms | {:+.1} % |",
            median.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            p.as_secs_f64() * 1e3,
            w.as_secs_f64() * 1e3,
            (w.as_secs_f64() / p.as_secs_f64() - 1.0) * 100.0
        );
    }
}
