//! `ptree who-killed PID --audit-log [FILE…]`: the same answer as the live
//! watch, after the fact, from the signals the audit log recorded
//! (docs/audit.md).
//!
//! The log is read once for the signals to PID, skipping unparsed
//! everything that cannot concern it. Then, for the signals that led to
//! the last fatal one, only the minute before it is read (found by
//! bisection on time), once for each process in the chain: the signals
//! to the sender, to the sender's sender, and so on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use clap::Args;

use crate::audit::replay::{Replay, TargetState, context_window};
use crate::audit::{AuditSignal, DEFAULT_LOG_DIR, default_log_files, parallel};
use crate::cmd::who_killed::{Printer, WhoKilledArgs, output_readers, signal_set};
use crate::cmd::{FAILED, OK};
use crate::error::Error;
use crate::event::Signal;
use crate::model::{Pid, Snapshot};
use crate::proc;
use crate::timepoint::parse_time;
use crate::watch::record::Record;
use crate::watch::verdict::Context;

/// The audit-log options of `who-killed`.
#[derive(Debug, Default, Args)]
pub struct AuditLogArgs {
    /// Answer from the audit log instead of watching (ptree audit enable
    /// must have been on): FILE…, by default /var/log/audit/audit.log and
    /// its rotations. Put PID before it.
    #[arg(
        long = "audit-log",
        value_name = "FILE",
        num_args = 0..,
        conflicts_with_all = ["title", "exact", "via", "timeout", "from"]
    )]
    pub audit_log: Option<Vec<PathBuf>>,
    /// With --audit-log: only signals from this time on (RFC 3339,
    /// '2026-12-01 19:26', '10m ago').
    #[arg(long, value_parser = parse_time, requires = "audit_log", value_name = "TIME")]
    pub since: Option<DateTime<Utc>>,
    /// With --audit-log: only signals up to this time.
    #[arg(long, value_parser = parse_time, requires = "audit_log", value_name = "TIME")]
    pub until: Option<DateTime<Utc>>,
}

/// Runs `who-killed --audit-log`.
pub fn run(args: &WhoKilledArgs) -> Result<u8, Error> {
    let audit = &args.audit;
    let pid = match args.pids[..] {
        [p] if p > 0 => Pid(p),
        [p] => return Err(Error::Usage(format!("{p}: a pid is a positive number"))),
        [] => {
            return Err(Error::Usage(
                "name the process: ptree who-killed PID --audit-log [FILE…] (PID first: \
                 what follows --audit-log is read as files)"
                    .into(),
            ));
        }
        _ => {
            return Err(Error::Usage(
                "--audit-log answers for one PID at a time".into(),
            ));
        }
    };
    if let (Some(since), Some(until)) = (audit.since, audit.until)
        && since > until
    {
        return Err(Error::Usage(format!(
            "--since {} is after --until {}",
            since.to_rfc3339(),
            until.to_rfc3339()
        )));
    }
    let wanted = signal_set(args)?;
    let paths = log_files(audit.audit_log.as_deref().unwrap_or_default())?;
    eprintln!(
        "ptree: reading the audit log ({}) for signals to {pid}",
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut events = scan(&paths, audit.since, audit.until, pid)?;
    if let Some(last) = last_fatal(&events, pid, &wanted) {
        let context = upstream(&paths, &events, pid, context_window(last))?;
        events.extend(context);
    }
    let now = proc::read_snapshot()?;
    let mut replay = Replay::new(pid, events, &now, &wanted);
    let ctx = Context {
        readers: readers(&now, &replay.live_lineage()),
        ..Context::default()
    };
    let verdict = replay.verdict(&ctx);
    let report = replay.report(verdict.as_ref());
    let found = replay.target_signals().count();

    let mut printer = Printer::buffered(args.json);
    for signal in report {
        printer.line(&Record::Signal(signal), replay.table_mut());
    }
    if let Some(v) = verdict {
        printer.line(&Record::Verdict(v), replay.table_mut());
    }
    printer.flush();

    if found == 0 {
        eprintln!(
            "ptree: no signal to {pid} in the audit log{}",
            window_text(audit.since, audit.until)
        );
        eprintln!(
            "hint: the log holds only what audit saw: were ptree's rules loaded then (ptree audit \
             status)? A sender started before audit was first enabled, and a signal the kernel \
             raised itself (OOM killer, SIGPIPE), are never logged"
        );
        return Ok(FAILED);
    }
    match replay.state() {
        TargetState::Alive => eprintln!("ptree: {pid} is still running: no verdict"),
        TargetState::Gone if replay.last_fatal().is_none() => {
            eprintln!("ptree: no signal that ends a process was sent to {pid}: no verdict")
        }
        TargetState::Gone => {}
    }
    Ok(OK)
}

/// The files to read: those given, or the default log and its rotations.
fn log_files(given: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let dir = Path::new(DEFAULT_LOG_DIR);
    let files = default_log_files(dir);
    if files.len() == 1 && !files[0].exists() && dir.is_dir() {
        return Err(Error::Usage(format!(
            "no audit log at {}: audit was never on here (ptree audit status); or name the \
             files after --audit-log",
            files[0].display()
        )));
    }
    Ok(files)
}

/// The events of `paths` in the time window that concern `target`; a
/// large log is read by one thread per core.
fn scan(
    paths: &[PathBuf],
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    target: Pid,
) -> Result<Vec<AuditSignal>, Error> {
    parallel::events_for_target(paths, since, until, target)
}

/// The signals, in `window`, to the senders of the signals to `pid`, to
/// their senders, and so on: where forwarders are found.
fn upstream(
    paths: &[PathBuf],
    events: &[AuditSignal],
    pid: Pid,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<AuditSignal>, Error> {
    // A chain longer than this is a loop or a storm, not a story.
    const MAX_SENDERS: usize = 32;
    let in_window = |e: &&AuditSignal| e.time >= from && e.time <= to;
    let mut seen = vec![pid];
    let mut todo: Vec<Pid> = events
        .iter()
        .filter(in_window)
        .map(|e| e.sender.pid)
        .collect();
    let mut found = Vec::new();
    while let Some(sender) = todo.pop() {
        if seen.contains(&sender) || seen.len() > MAX_SENDERS {
            continue;
        }
        seen.push(sender);
        let reached = scan(paths, Some(from), Some(to), sender)?;
        todo.extend(
            reached
                .iter()
                .filter(|e| e.targets.iter().any(|t| t.pid == sender))
                .map(|e| e.sender.pid),
        );
        found.extend(reached);
    }
    Ok(found)
}

/// The time of the last signal to `pid` that could have ended it.
fn last_fatal(events: &[AuditSignal], pid: Pid, wanted: &[Signal]) -> Option<DateTime<Utc>> {
    events
        .iter()
        .filter(|e| e.success && !e.is_probe() && !matches!(e.signal.0, 17 | 18 | 23 | 28))
        .filter(|e| wanted.contains(&e.signal) && e.targets.iter().any(|t| t.pid == pid))
        .map(|e| e.time)
        .max()
}

/// Who reads the stdout and stderr of the processes still alive in the
/// victim's lineage, as the live watch records at its start.
fn readers(now: &Snapshot, lineage: &[Pid]) -> HashMap<Pid, Vec<Pid>> {
    if lineage.is_empty() {
        return HashMap::new();
    }
    output_readers(&mut now.clone(), lineage)
}

fn window_text(since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> String {
    let t = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match (since, until) {
        (Some(s), Some(u)) => format!(" from {} to {}", t(s), t(u)),
        (Some(s), None) => format!(" since {}", t(s)),
        (None, Some(u)) => format!(" until {}", t(u)),
        (None, None) => String::new(),
    }
}
