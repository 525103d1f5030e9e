//! The flight recorder under a fork storm: `ptree record --pid` on a small
//! tree whose processes spawn and reap `/bin/true` as fast as they can (up to
//! a target rate) for a while. Reports the rate achieved with and without
//! the recorder, the events the kernel dropped (goal: none), what share of
//! the forks made it into the file, the file's growth, and the recorder's
//! CPU from /proc/PID/stat (goal: under 10 % of one core).
//!
//!     cargo build --release && cargo run --release --example bench_record
//!     cargo run --release --example bench_record -- --rate 10000 --seconds 10 --procs 2
//!     cargo run --release --example bench_record -- --fork-only    # fork + _exit, no exec
//!
//! Needs root (tracefs). The load is this program re-run as a child, so the
//! recorded tree is: bench → load → generator × procs → child × N.

mod common;

use common::{Kill, ptree_bin};

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LOAD_ENV: &str = "PTREE_BENCH_RECORD_LOAD";

struct Options {
    rate: u64,
    seconds: u64,
    procs: u64,
    /// fork() and _exit() in the child, without exec: three times cheaper,
    /// so the machine gets closer to the target rate.
    fork_only: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let mut o = Options {
        rate: 10_000,
        seconds: 10,
        procs: 2,
        fork_only: args.iter().any(|a| a == "--fork-only"),
    };
    for w in args.windows(2) {
        let n = || w[1].parse::<u64>().expect("a number");
        match w[0].as_str() {
            "--rate" => o.rate = n(),
            "--seconds" => o.seconds = n(),
            "--procs" => o.procs = n().max(1),
            _ => {}
        }
    }
    o
}

/// The load: waits for a line on stdin, then forks `procs` generator
/// processes that spawn and reap short-lived children, paced to `rate` a
/// second in total, for `seconds`; prints how many they ran.
///
/// Generators are processes, not threads: `fork()` from a multi-threaded
/// process serialises on its address space, which capped a threaded load
/// at about 7,600 forks a second on two cores.
fn load(rate: u64, seconds: u64, procs: u64, fork_only: bool) {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let per_proc = (rate / procs).max(1);
    let (rd, wr) = nix::unistd::pipe().expect("pipe");
    let mut generators = Vec::new();
    for _ in 0..procs {
        // SAFETY: this process has a single thread here; the child runs the
        // paced loop and leaves with _exit.
        match unsafe { libc::fork() } {
            0 => {
                drop(rd);
                let mut n: u64 = 0;
                while Instant::now() < end {
                    // Pace: the n-th spawn of this generator is due at n/rate.
                    let due = start + Duration::from_secs_f64(n as f64 / per_proc as f64);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    if spawn_one(fork_only) {
                        n += 1;
                    }
                }
                // One write per count: the pipe keeps it whole.
                let _ = std::fs::File::from(wr).write_all(format!("{n}\n").as_bytes());
                // SAFETY: leaving the forked generator without running the
                // parent's exit handlers.
                unsafe { libc::_exit(0) }
            }
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            pid => generators.push(pid),
        }
    }
    drop(wr);
    let mut counts = String::new();
    let _ = std::fs::File::from(rd).read_to_string(&mut counts);
    for pid in generators {
        let mut status = 0;
        // SAFETY: reaping a child this process forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    let done: u64 = counts
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .sum();
    println!("{done} {}", start.elapsed().as_secs_f64());
}

/// One short-lived child, waited for.
fn spawn_one(fork_only: bool) -> bool {
    if !fork_only {
        return Command::new("/bin/true")
            .spawn()
            .and_then(|mut c| c.wait())
            .is_ok();
    }
    // SAFETY: the child only calls _exit, which is async-signal-safe; the
    // parent reaps it.
    unsafe {
        match libc::fork() {
            0 => libc::_exit(0),
            -1 => false,
            pid => {
                let mut status = 0;
                libc::waitpid(pid, &mut status, 0) == pid
            }
        }
    }
}

fn start_load(o: &Options) -> Kill {
    Kill(
        Command::new(std::env::current_exe().expect("own path"))
            .env(
                LOAD_ENV,
                format!(
                    "{} {} {} {}",
                    o.rate,
                    o.seconds,
                    o.procs,
                    u8::from(o.fork_only)
                ),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start load"),
    )
}

/// Starts the load and returns (processes spawned, seconds).
fn run_load(load: &mut Kill) -> (u64, f64) {
    load.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut out = String::new();
    load.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = load.0.wait();
    let mut it = out.split_whitespace();
    let n = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let secs = it.next().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    (n, secs)
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let (u, s) = cpu_split(pid);
    u + s
}

/// (utime, stime) of a process, in seconds.
fn cpu_split(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rfind(')').map_or("", |i| &stat[i + 2..]);
    let f: Vec<&str> = after.split(' ').collect();
    let field = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (field(11) as f64 / hz, field(12) as f64 / hz)
}

fn main() {
    if let Ok(spec) = std::env::var(LOAD_ENV) {
        let v: Vec<u64> = spec.split(' ').filter_map(|s| s.parse().ok()).collect();
        load(v[0], v[1], v[2], v.get(3) == Some(&1));
        return;
    }
    assert!(ptree_bin().exists(), "run `cargo build --release` first");
    let o = options();
    println!(
        "target: {} {}/s for {} s from {} processes",
        o.rate,
        if o.fork_only {
            "fork+_exit"
        } else {
            "spawns of /bin/true"
        },
        o.seconds,
        o.procs
    );

    // Without the recorder: what the machine can do.
    let mut plain = start_load(&o);
    let (n0, s0) = run_load(&mut plain);

    // With it.
    let dir = std::env::temp_dir().join(format!("ptree-bench-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rec.jsonl");
    let mut load = start_load(&o);
    let mut rec = Kill(
        Command::new(ptree_bin())
            .args(["record", "--pid", &load.0.id().to_string(), "--out"])
            .arg(&file)
            .args(["--max-bytes", "1G"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ptree record"),
    );
    let mut err = BufReader::new(rec.0.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("recording"), "{line}");
    let rec_pid = rec.0.id();
    let cpu0 = cpu_seconds(rec_pid);
    let split0 = cpu_split(rec_pid);
    let wall = Instant::now();
    let (n1, s1) = run_load(&mut load);
    // Let the recorder read what is left, then stop it.
    std::thread::sleep(Duration::from_millis(1500));
    let cpu = cpu_seconds(rec_pid) - cpu0;
    let split1 = cpu_split(rec_pid);
    let (user, system) = (split1.0 - split0.0, split1.1 - split0.1);
    let elapsed = wall.elapsed().as_secs_f64();
    // SAFETY: signalling a child this program started.
    unsafe { libc::kill(rec_pid as i32, libc::SIGTERM) };
    let mut rest = String::new();
    let _ = err.read_to_string(&mut rest);
    let _ = rec.0.wait();

    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let count = |t: &str| text.matches(&format!("{{\"type\":\"{t}\"")).count();
    let lost: u64 = text
        .lines()
        .filter(|l| l.starts_with("{\"type\":\"lost\""))
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["count"].as_u64()
        })
        .sum();
    let forks = count("fork");
    let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);

    println!("| | spawns | rate |");
    println!("|---|---:|---:|");
    println!("| without recorder | {n0} | {:.0}/s |", n0 as f64 / s0);
    println!("| with recorder | {n1} | {:.0}/s |", n1 as f64 / s1);
    println!();
    println!("| recorder | value |");
    println!("|---|---:|");
    println!("| lost events (kernel) | {lost} |");
    println!(
        "| fork lines / spawns | {forks} / {n1} ({:.1} %) |",
        100.0 * forks as f64 / n1.max(1) as f64
    );
    println!(
        "| exec / exit / signal lines | {} / {} / {} |",
        count("exec"),
        count("exit"),
        count("signal")
    );
    println!("| snapshots | {} |", count("snapshot"));
    println!(
        "| file growth | {:.1} MB/s ({} bytes) |",
        bytes as f64 / s1 / 1e6,
        bytes
    );
    println!(
        "| CPU | {:.2} s over {:.1} s = {:.1} % of one core (user {:.2} s, system {:.2} s) |",
        cpu,
        elapsed,
        100.0 * cpu / elapsed,
        user,
        system
    );
    if !rest.trim().is_empty() {
        println!("\nrecorder said: {}", rest.trim());
    }
}
