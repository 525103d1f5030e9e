//! Compares `ptree` (default view and `--ps`) with `ps axjf` on a machine
//! carrying N extra sleeping processes, in the same run: median wall time
//! ratios and peak memory; and `ptree doctor --sample 0` with the default
//! view it builds on.
//!
//!     cargo build --release && cargo run --release --example bench_tree -- 1000 2000 10000
//!
//! Output goes to /dev/null for all three, so terminal speed is not
//! measured.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 15;

/// Sleepers started for one size; killed (their group) on drop.
struct Sleepers(Vec<Child>);

impl Drop for Sleepers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

fn start_sleepers(n: usize) -> Sleepers {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let c = Command::new("sleep")
            .arg("100000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn sleep");
        v.push(c);
    }
    Sleepers(v)
}

/// Runs a command to /dev/null; returns wall time and peak RSS (KiB).
fn measure(program: &str, args: &[&str]) -> (Duration, i64) {
    let start = Instant::now();
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn measured command");
    let mut status = 0;
    // SAFETY: wait4 on our own child with valid out-pointers. It reaps the
    // child; `std::mem::forget` keeps `Child` from touching it again.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    std::mem::forget(child);
    (start.elapsed(), usage.ru_maxrss)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 2000, 10000]
    } else {
        sizes
    };
    let bin = std::env::var_os("PTREE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/ptree"));
    let bin = bin.to_str().expect("utf-8 path").to_string();
    assert!(
        std::path::Path::new(&bin).exists(),
        "{bin} missing: run `cargo build --release` first"
    );
    println!(
        "| sleepers | processes | ps axjf | ptree | ptree --ps | ptree ÷ ps | --ps ÷ ps | peak RSS ps / ptree / --ps (KiB) | doctor --sample 0 | doctor ÷ ptree |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|");
    for n in sizes {
        let _sleepers = start_sleepers(n);
        std::thread::sleep(Duration::from_millis(500));
        let total = std::fs::read_dir("/proc")
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                })
                .count()
            })
            .unwrap_or(0);
        let (mut ps, mut pt, mut pp, mut dr) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut ps_rss, mut pt_rss, mut pp_rss) = (0, 0, 0);
        // Warm the caches once, then interleave so drift hits all alike.
        measure("ps", &["axjf"]);
        measure(&bin, &[]);
        for _ in 0..RUNS {
            let (t, r) = measure("ps", &["axjf"]);
            ps.push(t);
            ps_rss = ps_rss.max(r);
            let (t, r) = measure(&bin, &[]);
            pt.push(t);
            pt_rss = pt_rss.max(r);
            let (t, r) = measure(&bin, &["--ps"]);
            pp.push(t);
            pp_rss = pp_rss.max(r);
            let (t, _) = measure(&bin, &["doctor", "--sample", "0"]);
            dr.push(t);
        }
        let (ps, pt, pp, dr) = (median(ps), median(pt), median(pp), median(dr));
        println!(
            "| {n} | {total} | {:.1} ms | {:.1} ms | {:.1} ms | {:.2}× | {:.2}× | {ps_rss} / {pt_rss} / {pp_rss} | {:.1} ms | {:.2}× |",
            ps.as_secs_f64() * 1e3,
            pt.as_secs_f64() * 1e3,
            pp.as_secs_f64() * 1e3,
            pt.as_secs_f64() / ps.as_secs_f64(),
            pp.as_secs_f64() / ps.as_secs_f64(),
            dr.as_secs_f64() * 1e3,
            dr.as_secs_f64() / pt.as_secs_f64(),
        );
    }
}
