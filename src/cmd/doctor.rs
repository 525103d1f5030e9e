//! `ptree doctor`: findings about the shown processes — the exec-maxBuffer
//! pitfall before it kills, outputs nobody reads, daemon hygiene, missing
//! and orphaned workers, zombies.

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::SecondsFormat;
use clap::Args;

use crate::analysis::select::Selection;
use crate::analysis::tree::rows;
use crate::cli::SelectArgs;
use crate::cmd::{FAILED, OK, write_stdout};
use crate::diagnose::hygiene::meant_as_daemon;
use crate::diagnose::maxbuffer::is_node_process;
use crate::diagnose::{
    DOCTOR_SCHEMA, DoctorDoc, Finding, Input, Measurements, Rate, Severity, diagnose,
};
use crate::duration::parse_duration;
use crate::error::Error;
use crate::model::{FdTarget, Pid};
use crate::proc::{self, Details};
use crate::trace::rate::{WriteTarget, measure_write_rate};
use crate::view::{Depth, View};

pub const EXAMPLES: &str = "Examples:
  ptree doctor                         the whole machine
  ptree doctor --title egg-server      one Egg deployment, sampling its log rate for 2 s
  ptree doctor --pid 4711 --json       findings as JSON (schema ptree.doctor/1)
  ptree doctor --sample 0 --fail-on error";

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// How long to measure log rates and CPU (0 to skip).
    #[arg(long, value_parser = parse_duration, default_value = "2s", value_name = "DUR")]
    pub sample: Duration,
    /// One JSON document (schema ptree.doctor/1).
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when a finding is at least this severe.
    #[arg(long, value_enum, default_value_t = Severity::Warn, value_name = "SEVERITY")]
    pub fail_on: Severity,
}

/// The shown pids of a view, in display order.
pub fn shown(view: &View) -> Vec<Pid> {
    rows(&view.forest).iter().map(|r| r.node.pid).collect()
}

/// The processes findings are about: the matches and their subtrees (the
/// ancestors shown for context are not examined).
pub fn examined(view: &View) -> Vec<Pid> {
    let children = view.snapshot.children_map();
    let mut set: HashSet<Pid> = HashSet::new();
    let mut stack: Vec<Pid> = view.matched.clone();
    while let Some(p) = stack.pop() {
        if set.insert(p) {
            stack.extend(children.get(&p).into_iter().flatten());
        }
    }
    shown(view)
        .into_iter()
        .filter(|p| set.contains(p))
        .collect()
}

/// `node --version` of the binary a process runs, by executing that very
/// binary through `/proc/PID/exe` (no PATH lookup, no guessing).
fn node_version(pid: Pid) -> Option<String> {
    let mut child = Command::new(format!("/proc/{}/exe", pid.0))
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env("NODE_OPTIONS", "")
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    v.starts_with('v').then_some(v)
}

/// The fds of `pid` among 1 and 2 that point at `inode`.
fn fds_on(view: &View, pid: Pid, inode: u64) -> Vec<u32> {
    let Some(fds) = view.snapshot.get(pid).and_then(|p| p.fds.as_ref()) else {
        return Vec::new();
    };
    [(1u32, &fds.stdout), (2, &fds.stderr)]
        .iter()
        .filter(|(_, f)| matches!(f.target, FdTarget::Pipe(i) | FdTarget::Socket(i) if i == inode))
        .map(|(n, _)| *n)
        .collect()
}

/// Runs the analysis, sampling rates and CPU when asked.
pub fn findings(view: &View, sample: Duration) -> Vec<Finding> {
    let shown = examined(view);
    let mut measured = Measurements::default();
    // Versions of every Node reader of a shown output.
    let mut readers: HashSet<Pid> = HashSet::new();
    for &p in &shown {
        for fd in [1, 2] {
            readers.extend(view.peers.of(p, fd).iter().map(|x| x.pid));
        }
    }
    // Only Node readers matter, and running a binary costs a fork and an
    // exec: skip every reader that is not Node.
    for r in readers {
        let looks_node = view.snapshot.get(r).is_some_and(is_node_process);
        if looks_node && let Some(v) = node_version(r) {
            measured.node_versions.insert(r, v);
        }
    }
    let analyse = |measured: &Measurements| {
        diagnose(&Input {
            snapshot: &view.snapshot,
            roles: &view.roles,
            peers: &view.peers,
            shown: &shown,
            now: view.snapshot.taken_at,
            measured,
        })
    };
    let first = analyse(&measured);
    if sample.is_zero() {
        return first;
    }

    // Channels of exec-maxbuffer findings get their rate measured.
    let mut channels: Vec<(u64, Vec<WriteTarget>)> = Vec::new();
    for f in first.iter().filter(|f| f.id == "exec-maxbuffer") {
        for ch in f.evidence["channels"].as_array().into_iter().flatten() {
            let Some(inode) = ch["channel"]
                .as_str()
                .and_then(|c| c.split_once("[")?.1.strip_suffix(']')?.parse::<u64>().ok())
            else {
                continue;
            };
            let targets = ch["writers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w.as_i64())
                .map(|w| Pid(w as i32))
                .map(|pid| WriteTarget {
                    pid,
                    fds: fds_on(view, pid, inode),
                })
                .collect();
            channels.push((inode, targets));
        }
    }
    let cpu_before: HashMap<Pid, u64> = shown
        .iter()
        .filter_map(|&p| view.snapshot.get(p).map(|x| (p, x.cpu_ticks)))
        .collect();
    let zombies_before: Vec<Pid> = shown
        .iter()
        .copied()
        .filter(|&p| view.snapshot.get(p).is_some_and(|x| x.is_zombie()))
        .collect();
    let started = Instant::now();
    let rates: Vec<(u64, Result<Rate, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = channels
            .iter()
            .map(|(inode, targets)| {
                s.spawn(move || {
                    let r = measure_write_rate(targets, sample)
                        .map(|r| Rate {
                            bytes: r.bytes,
                            seconds: r.seconds,
                        })
                        .map_err(|e| e.to_string());
                    (*inode, r)
                })
            })
            .collect();
        let elapsed = started.elapsed();
        if elapsed < sample {
            std::thread::sleep(sample - elapsed);
        }
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let secs = started.elapsed().as_secs_f64().max(0.001);
    measured.sampled = true;
    measured.rates = rates.into_iter().collect();
    let tps = view.snapshot.ticks_per_second.max(1) as f64;
    for (&pid, &before) in &cpu_before {
        if let Some(now) = proc::read_one(pid) {
            let pct = now.cpu_ticks.saturating_sub(before) as f64 / tps / secs * 100.0;
            measured.cpu_percent.insert(pid, pct);
            if now.is_zombie() && zombies_before.contains(&pid) {
                measured.lasting_zombies.push(pid);
            }
        }
    }
    analyse(&measured)
}

fn human(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "no findings\n".to_string();
    }
    let mut s = String::new();
    for f in findings {
        s.push_str(&format!(
            "{:<5} {}  {}\n",
            f.severity.as_str(),
            f.id,
            f.message
        ));
        let pids: Vec<String> = f.pids.iter().map(|p| p.to_string()).collect();
        s.push_str(&format!("      pids:     {}\n", pids.join(" ")));
        if let Some(obj) = f.evidence.as_object() {
            let ev: Vec<String> = obj
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s.push_str(&format!("      evidence: {}\n", ev.join(" ")));
        }
        s.push_str(&format!("      fix:      {}\n", f.fix));
    }
    s
}

pub fn run(args: &DoctorArgs) -> Result<u8, Error> {
    let sel = args.select.selection()?;
    // Read what the tree view reads (stdout, stderr and their peers), then
    // stdin, exe and cwd only where a finding looks at them: daemons and
    // the readers of outputs. On a whole machine this keeps doctor at the
    // cost of the tree view.
    let mut view = View::read(
        &sel,
        Depth::Full(Details {
            stdout: true,
            stderr: true,
            ..Details::default()
        }),
        false,
    )?;
    let mut more: Vec<Pid> = Vec::new();
    for p in &view.snapshot.processes {
        if meant_as_daemon(&view.snapshot, &view.roles, p) {
            more.push(p.pid);
        }
    }
    for ((_, _), peers) in &view.peers.by_fd {
        more.extend(peers.iter().map(|x| x.pid));
    }
    more.sort();
    more.dedup();
    proc::fill_details(&mut view.snapshot, &more, Details::ALL);
    if view.matched.is_empty() && sel != Selection::All {
        return Err(Error::Usage("no process matches the selection".into()));
    }
    let found = findings(&view, args.sample);
    if args.json {
        let doc = DoctorDoc {
            schema: DOCTOR_SCHEMA,
            generated_at: view
                .snapshot
                .taken_at
                .to_rfc3339_opts(SecondsFormat::Micros, true),
            findings: &found,
        };
        let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::Usage(e.to_string()))?;
        write_stdout(&format!("{text}\n"));
    } else {
        write_stdout(&human(&found));
    }
    Ok(if found.iter().any(|f| f.severity >= args.fail_on) {
        FAILED
    } else {
        OK
    })
}
