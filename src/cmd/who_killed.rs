//! `ptree who-killed`: watch processes, report every signal sent to them
//! and to their ancestors with the sender captured at signal time, and
//! say in plain words who really killed each one.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use chrono::{Local, Utc};
use clap::{Args, ValueEnum};

use crate::analysis::roles::Role;
use crate::analysis::select::{Selection, matches};
use crate::analysis::title::TitleMatch;
use crate::cmd::{ERROR, FAILED, OK};
use crate::duration::parse_duration;
use crate::error::Error;
use crate::event::{ExitStatus, RawEvent, SigCode, Signal};
use crate::interrupt;
use crate::model::{Argv, Pid, Snapshot, Tid};
use crate::proc::{self, Details, peers};
use crate::trace::ptrace::{PtraceWatcher, killed_invisibly};
use crate::trace::tracefs::{self, TraceInstance, TraceOptions};
use crate::watch::enrich;
use crate::watch::record::{ExitRecord, Record, SignalRecord, VerdictRecord};
use crate::watch::table::LiveTable;
use crate::watch::verdict::{Context, verdicts};

pub const EXAMPLES: &str = "Examples:
  ptree who-killed 4711                      wait for 4711 to die and say who killed it
  ptree who-killed --title egg-server --json every signal to an Egg deployment, as JSON lines
  ptree who-killed 4711 --via ptrace --timeout 10m
  ptree who-killed 4711 --signals TERM,KILL  only these signals
  ptree who-killed 4711 --from /var/log/ptree/record.jsonl*   the same, from a recording
  ptree who-killed 4711 --audit-log --since '2h ago'         after the fact, from the audit log";

/// Which mechanism observes signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ViaChoice {
    /// tracefs when usable, else ptrace.
    #[default]
    Auto,
    Tracefs,
    Ptrace,
}

#[derive(Debug, Default, Args)]
pub struct WhoKilledArgs {
    /// Processes to watch.
    pub pids: Vec<i32>,
    /// Watch every process of the Egg deployment with this title (prefix).
    #[arg(long, value_name = "T")]
    pub title: Option<String>,
    /// Match --title exactly.
    #[arg(long, requires = "title")]
    pub exact: bool,
    /// Observation mechanism.
    #[arg(long, value_enum, default_value_t = ViaChoice::Auto)]
    pub via: ViaChoice,
    /// Give up after this long (500ms, 20s, 5m); exit status 1.
    #[arg(long, value_parser = parse_duration, value_name = "DUR")]
    pub timeout: Option<Duration>,
    /// JSON lines on stdout (docs/who-killed.md).
    #[arg(long)]
    pub json: bool,
    /// Signals to report, comma-separated (TERM,KILL,USR1 or numbers).
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "all",
        value_name = "LIST"
    )]
    pub signals: Vec<String>,
    /// Report every signal.
    #[arg(long)]
    pub all: bool,
    /// Replay a recording (`ptree record`) instead of watching live:
    /// FILE and FILE.1, in any order.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub from: Vec<std::path::PathBuf>,
    #[command(flatten)]
    pub audit: crate::cmd::who_killed_audit::AuditLogArgs,
}

/// One of the two live sources.
enum Backend {
    Tracefs(TraceInstance),
    Ptrace(PtraceWatcher),
}

impl Backend {
    fn poll(&mut self, timeout: Duration) -> Result<Vec<RawEvent>, Error> {
        match self {
            Backend::Tracefs(t) => t.read_events(timeout),
            Backend::Ptrace(p) => p.poll(timeout),
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Backend::Tracefs(_) => "tracefs",
            Backend::Ptrace(_) => "ptrace",
        }
    }
}

/// Every thread id of a process, for the kernel filter.
fn tids_of(pid: Pid) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{}/task", pid.0))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect();
    if v.is_empty() {
        v.push(pid.0);
    }
    v
}

/// A process is gone when /proc no longer has it or it is a zombie.
fn is_dead(pid: Pid) -> bool {
    match proc::read_one(pid) {
        None => true,
        Some(p) => p.state == 'Z' || p.state == 'X',
    }
}

pub(crate) fn signal_set(args: &WhoKilledArgs) -> Result<Vec<Signal>, Error> {
    if args.all {
        return Ok((1..=64).map(Signal).collect());
    }
    if args.signals.is_empty() {
        return Ok(Signal::default_watch_set());
    }
    args.signals
        .iter()
        .map(|s| {
            Signal::parse(s)
                .ok_or_else(|| Error::Usage(format!("unknown signal '{s}' in --signals")))
        })
        .collect()
}

/// Ancestors watched for context: up to the supervisor, never PID 1.
fn context_ancestors(
    snapshot: &Snapshot,
    targets: &[Pid],
    roles: &crate::analysis::roles::Roles,
) -> Vec<Pid> {
    let target_set: HashSet<Pid> = targets.iter().copied().collect();
    let mut out = Vec::new();
    for &t in targets {
        for a in snapshot.ancestors(t) {
            if a.pid == Pid::INIT || target_set.contains(&a.pid) || out.contains(&a.pid) {
                if a.pid == Pid::INIT {
                    break;
                }
                continue;
            }
            out.push(a.pid);
            if roles.of(a.pid) == Role::Supervisor {
                break;
            }
        }
    }
    out
}

/// What makes two signal records "the same": who sent which signal how to
/// which thread, with which result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SignalKey {
    sender: Option<Pid>,
    target: Pid,
    target_tid: Tid,
    signal: Signal,
    code: SigCode,
    result: crate::event::Delivery,
}

impl SignalKey {
    fn of(s: &SignalRecord) -> SignalKey {
        SignalKey {
            sender: s.sender.as_ref().map(|x| x.pid),
            target: s.target.pid,
            target_tid: s.target.tid,
            signal: s.signal,
            code: s.code,
            result: s.result,
        }
    }
}

/// Writes records. A run of identical signals (a Node process raising
/// SIGPIPE at itself on every failed write: 100 000 a second) is written
/// at most once a second, the rest counted: a human line "the same signal
/// N more times", or a JSON `{"type":"repeat",…}` record, when the run
/// ends or the second is over.
pub(crate) struct Printer {
    json: bool,
    /// The last signal written, how many identical ones followed it
    /// unwritten, when it was written, and when the last of those was seen.
    repeat: Option<(SignalKey, u64, chrono::DateTime<Utc>, chrono::DateTime<Utc>)>,
    /// Lines not yet written, when the whole answer is known at once.
    out: Option<String>,
}

impl Printer {
    /// Writes each line as it comes: a live watch.
    pub(crate) fn new(json: bool) -> Printer {
        Printer {
            json,
            repeat: None,
            out: None,
        }
    }

    /// Writes at [`Printer::flush`]: an answer from a log or a recording,
    /// thousands of lines long, written at once rather than a line per
    /// write.
    pub(crate) fn buffered(json: bool) -> Printer {
        Printer {
            out: Some(String::new()),
            ..Printer::new(json)
        }
    }

    fn emit(&mut self, text: &str) {
        match &mut self.out {
            Some(out) => {
                out.push_str(text);
                out.push('\n');
            }
            None => crate::cmd::write_stdout(&format!("{text}\n")),
        }
    }

    pub(crate) fn line(&mut self, record: &Record, table: &mut LiveTable) {
        if let Record::Signal(s) = record {
            let key = SignalKey::of(s);
            if let Some((last, count, written, at)) = &mut self.repeat
                && *last == key
                && s.time - *written < chrono::Duration::seconds(1)
            {
                *count += 1;
                *at = s.time;
                return;
            }
            self.end_repeat();
            self.repeat = Some((key, 0, s.time, s.time));
        } else {
            self.end_repeat();
        }
        let text = if self.json {
            record.to_json_line()
        } else {
            human(record, table)
        };
        self.emit(&text);
    }

    /// Writes the count of a pending run of repeats, and what is buffered.
    pub(crate) fn flush(&mut self) {
        self.end_repeat();
        if let Some(out) = &mut self.out
            && !out.is_empty()
        {
            crate::cmd::write_stdout(out);
            out.clear();
        }
    }

    /// Writes the count of a pending run of repeats.
    fn end_repeat(&mut self) {
        let Some((key, count, _, at)) = self.repeat.take() else {
            return;
        };
        if count == 0 {
            return;
        }
        let text = if self.json {
            serde_json::json!({
                "type": "repeat",
                "time": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "count": count,
                "signal": key.signal,
                "code": key.code,
                "sender_pid": key.sender,
                "target_pid": key.target,
                "target_tid": key.target_tid,
                "result": key.result,
            })
            .to_string()
        } else {
            format!(
                "{:>15} … the same signal {count} more time{}",
                "",
                if count == 1 { "" } else { "s" }
            )
        };
        self.emit(&text);
    }
}

/// Who reads the stdout and stderr of each of `lineage`, for the
/// exec-maxbuffer verdict; fills those fds into `snapshot`.
pub(crate) fn output_readers(snapshot: &mut Snapshot, lineage: &[Pid]) -> HashMap<Pid, Vec<Pid>> {
    proc::fill_details(
        snapshot,
        lineage,
        Details {
            stdout: true,
            stderr: true,
            ..Details::default()
        },
    );
    let fd_peers = peers::resolve(snapshot, lineage);
    lineage
        .iter()
        .map(|&p| {
            let mut r: Vec<Pid> = fd_peers
                .of(p, 1)
                .iter()
                .chain(fd_peers.of(p, 2))
                .map(|x| x.pid)
                .collect();
            r.sort();
            r.dedup();
            (p, r)
        })
        .collect()
}

fn clock(t: chrono::DateTime<Utc>) -> String {
    t.with_timezone(&Local).format("%H:%M:%S%.6f").to_string()
}

fn human(record: &Record, table: &mut LiveTable) -> String {
    match record {
        Record::Signal(s) => {
            let from = match &s.sender {
                Some(snd) => format!("{} {} [{}]", snd.pid, snd.comm, snd.role),
                None => "kernel".to_string(),
            };
            format!(
                "{} {:<8} {} → {} {} [{}]  ({}, {}, {})",
                clock(s.time),
                s.signal.name(),
                from,
                s.target.pid,
                s.target.comm,
                s.target.role,
                s.code.name(),
                serde_json::to_value(s.result)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                serde_json::to_value(s.relation)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
            )
        }
        Record::Exit(e) => {
            let info = table.info(e.pid);
            let how = match (e.how, e.signal, e.code) {
                ("signal", Some(s), _) => format!("killed by {s}"),
                ("signal", None, _) => "killed by a signal".to_string(),
                ("exit", _, Some(c)) => format!("exited with status {c}"),
                ("exit", _, None) => "exited".to_string(),
                _ => "exited".to_string(),
            };
            format!(
                "{} {:<8} {} {} [{}]: {how}",
                clock(e.time),
                "exit",
                e.pid,
                info.comm,
                info.role
            )
        }
        Record::Verdict(v) => {
            let info = table.info(v.pid);
            let kind = serde_json::to_value(v.kind)
                .ok()
                .and_then(|k| k.as_str().map(String::from))
                .unwrap_or_default();
            let mut s = format!(
                "\nverdict for {} {} [{}]: {kind}\n",
                v.pid, info.comm, info.role
            );
            if let Some(r) = &v.root_cause {
                s.push_str(&format!(
                    "  root cause: {} {} [{}]\n",
                    r.pid, r.cmdline, r.role
                ));
            }
            let chain: Vec<String> = v.chain.iter().map(|p| p.to_string()).collect();
            s.push_str(&format!("  chain:      {}\n", chain.join(" → ")));
            s.push_str(&format!("  why:        {}", v.explanation));
            s
        }
    }
}

fn choose_backend(
    via: ViaChoice,
    filter_pids: &[i32],
    kernel_signals: &[Signal],
    attach: &[Pid],
) -> Result<(Backend, String), Error> {
    let tracefs = || -> Result<Backend, Error> {
        let mut t = TraceInstance::create(&TraceOptions::default())?;
        t.set_signal_filter(filter_pids, kernel_signals)?;
        Ok(Backend::Tracefs(t))
    };
    match via {
        ViaChoice::Tracefs => Ok((tracefs()?, "as asked".into())),
        ViaChoice::Ptrace => Ok((
            Backend::Ptrace(PtraceWatcher::attach(attach)?),
            "as asked".into(),
        )),
        ViaChoice::Auto => match tracefs::probe().and_then(|_| tracefs()) {
            Ok(b) => Ok((b, "preferred: sees every sender, even of SIGKILL".into())),
            Err(e) => {
                let why = format!("tracefs unusable ({e}); ptrace cannot see SIGKILL's sender");
                match PtraceWatcher::attach(attach) {
                    Ok(p) => Ok((Backend::Ptrace(p), why)),
                    Err(pe) => Err(Error::Usage(format!(
                        "neither backend is usable here: {e}; {pe}. tracefs needs CAP_SYS_ADMIN or \
                         CAP_PERFMON, ptrace the same uid or CAP_SYS_PTRACE; after the fact, use \
                         the audit log (ptree audit enable)"
                    ))),
                }
            }
        },
    }
}

/// Runs `who-killed`.
pub fn run(args: &WhoKilledArgs) -> Result<u8, Error> {
    if args.audit.audit_log.is_some() {
        return crate::cmd::who_killed_audit::run(args);
    }
    if !args.from.is_empty() {
        return crate::record::replay::who_killed_from(args);
    }
    interrupt::install();
    let wanted_signals = signal_set(args)?;
    let mut snapshot = proc::read_snapshot()?;
    let targets: Vec<Pid> = if let Some(t) = &args.title {
        let how = if args.exact {
            TitleMatch::Exact
        } else {
            TitleMatch::Prefix
        };
        let m = matches(
            &snapshot,
            &Selection::Title {
                title: t.clone(),
                how,
            },
        )?;
        if m.is_empty() {
            return Err(Error::Usage(format!("no process matches --title {t}")));
        }
        m
    } else if args.pids.is_empty() {
        return Err(Error::Usage(
            "name the processes to watch: PID… or --title T".into(),
        ));
    } else {
        let pids: Vec<Pid> = args.pids.iter().map(|&p| Pid(p)).collect();
        matches(&snapshot, &Selection::Pids(pids))?
    };

    let roles = crate::analysis::roles::classify(&snapshot);
    let ancestors = context_ancestors(&snapshot, &targets, &roles);
    let mut lineage: Vec<Pid> = targets.clone();
    lineage.extend(&ancestors);
    let readers = output_readers(&mut snapshot, &lineage);

    let mut table = LiveTable::new(snapshot.clone());
    for &p in &lineage {
        for tid in tids_of(p) {
            table.map_thread(Tid(tid), p);
        }
    }
    let mut watched: HashSet<Pid> = lineage.iter().copied().collect();
    let mut victims: Vec<Pid> = targets.clone();
    let mut filter_tids: Vec<i32> = lineage.iter().flat_map(|&p| tids_of(p)).collect();
    // SIGCHLD tells how a child ended; it is kept out of the report unless
    // asked for.
    let mut kernel_signals = wanted_signals.clone();
    if !kernel_signals.contains(&Signal::CHLD) {
        kernel_signals.push(Signal::CHLD);
    }
    // ptrace follows every fork of what it seizes: seize the targets and
    // only those ancestors that belong to the service (wrapper, shell,
    // launcher, master), never a supervisor, a shell session or PID 1.
    let mut attach: Vec<Pid> = targets.clone();
    for &t in &targets {
        for a in snapshot.ancestors(t) {
            let service = matches!(
                roles.of(a.pid),
                Role::Wrapper
                    | Role::Shell
                    | Role::Launcher
                    | Role::Master
                    | Role::Agent
                    | Role::Worker
            );
            if !service {
                break;
            }
            if !attach.contains(&a.pid) {
                attach.push(a.pid);
            }
        }
    }
    let (mut backend, why) = choose_backend(args.via, &filter_tids, &kernel_signals, &attach)?;
    let oom_before = proc::oom_kills();
    eprintln!(
        "ptree: watching {} process{} ({}) and {} ancestor{} via {} ({why})",
        victims.len(),
        if victims.len() == 1 { "" } else { "es" },
        victims
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        ancestors.len(),
        if ancestors.len() == 1 { "" } else { "s" },
        backend.name()
    );

    let mut printer = Printer::new(args.json);
    let status_line = std::io::stderr().is_terminal() && !args.json;
    let started = Instant::now();
    let mut signals: Vec<SignalRecord> = Vec::new();
    let mut exits: Vec<ExitRecord> = Vec::new();
    let mut exited: HashSet<Pid> = HashSet::new();
    let mut child_status: HashMap<Pid, i32> = HashMap::new();
    let mut invisible: HashSet<Pid> = HashSet::new();
    let mut last_liveness = Instant::now();

    let status = loop {
        if let Some(sig) = interrupt::received() {
            break interrupt::exit_status(sig);
        }
        if args.timeout.is_some_and(|t| started.elapsed() >= t) {
            break FAILED;
        }
        let events = match backend.poll(Duration::from_millis(200)) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("ptree: {e}");
                break ERROR;
            }
        };
        let mut filter_changed = false;
        for ev in events {
            let ev = with_child_tgid(ev);
            match &ev {
                RawEvent::Fork {
                    parent_tid,
                    parent_pid,
                    child_tid,
                    child_pid,
                    ..
                } => {
                    let parent = parent_pid.unwrap_or_else(|| table.pid_of(*parent_tid));
                    table.apply(&ev, &mut |_| None);
                    let child = child_pid.unwrap_or(Pid(child_tid.0));
                    let new_thread = child == parent;
                    // Threads of anything watched, and children of the
                    // processes asked about (not of their ancestors).
                    if (new_thread && watched.contains(&parent))
                        || (!new_thread && victims.contains(&parent) && !watched.contains(&child))
                    {
                        filter_tids.push(child_tid.0);
                        filter_changed = true;
                        if !new_thread {
                            watched.insert(child);
                            victims.push(child);
                        }
                    }
                }
                RawEvent::Exec { .. } => {
                    table.apply(&ev, &mut |pid| {
                        std::fs::read(format!("/proc/{}/cmdline", pid.0))
                            .ok()
                            .map(|b| Argv::from_cmdline(&b))
                            .filter(|a| !a.is_empty())
                    });
                }
                RawEvent::Signal(raw) => {
                    if raw.signal == Signal::CHLD && !wanted_signals.contains(&Signal::CHLD) {
                        // Sent in the exiting child's context: its code says
                        // CLD_EXITED (1), CLD_KILLED (2) or CLD_DUMPED (3).
                        if let Some(child) =
                            raw.sender_pid.or(raw.sender_tid.map(|t| table.pid_of(t)))
                            && let SigCode::Other(c) = raw.code
                        {
                            child_status.insert(child, c);
                        }
                        continue;
                    }
                    if !wanted_signals.contains(&raw.signal) {
                        continue;
                    }
                    if let Some(sender) = raw.sender_pid.filter(|p| p.0 > 0) {
                        learn(&mut table, sender);
                    }
                    map_unknown_thread(&mut table, raw.target_tid);
                    let rec = enrich(raw, &mut table);
                    if !watched.contains(&rec.target.pid) {
                        continue;
                    }
                    printer.line(&Record::Signal(rec.clone()), &mut table);
                    signals.push(rec);
                }
                RawEvent::Exit {
                    time,
                    tid,
                    pid,
                    status,
                    ..
                } => {
                    let p = pid.unwrap_or_else(|| table.pid_of(*tid));
                    table.apply(&ev, &mut |_| None);
                    if killed_invisibly(&ev) {
                        invisible.insert(p);
                    }
                    if victims.contains(&p)
                        && !exited.contains(&p)
                        && (status.is_some() || is_dead(p))
                    {
                        let st = status.or_else(|| inferred_status(p, &child_status, &signals));
                        let rec =
                            ExitRecord::with_how(*time, p, st, child_status.get(&p) == Some(&1));
                        exited.insert(p);
                        table.mark_exited(p, *time);
                        printer.line(&Record::Exit(rec.clone()), &mut table);
                        exits.push(rec);
                    }
                }
                RawEvent::Lost { count, .. } => {
                    eprintln!(
                        "ptree: warning: the kernel dropped {count} trace events; the report may miss some"
                    );
                }
            }
        }
        if filter_changed && let Backend::Tracefs(t) = &mut backend {
            filter_tids.sort();
            filter_tids.dedup();
            if let Err(e) = t.set_signal_filter(&filter_tids, &kernel_signals) {
                eprintln!("ptree: warning: could not widen the kernel filter: {e}");
            }
        }
        // Exits the source did not report (lost events, ptrace detached).
        if last_liveness.elapsed() > Duration::from_millis(500) {
            last_liveness = Instant::now();
            for &v in &victims {
                if !exited.contains(&v) && is_dead(v) {
                    let st = inferred_status(v, &child_status, &signals);
                    let rec =
                        ExitRecord::with_how(Utc::now(), v, st, child_status.get(&v) == Some(&1));
                    exited.insert(v);
                    table.mark_exited(v, rec.time);
                    printer.line(&Record::Exit(rec.clone()), &mut table);
                    exits.push(rec);
                }
            }
        }
        if victims.iter().all(|v| exited.contains(v)) {
            break OK;
        }
        if status_line {
            eprint!(
                "\r\x1b[2Kwatching {} of {} processes via {}: {} signals, {}s",
                victims.len() - exited.len(),
                victims.len(),
                backend.name(),
                signals.len(),
                started.elapsed().as_secs()
            );
        }
    };
    if status_line {
        eprint!("\r\x1b[2K");
    }
    drop(backend); // detach / remove the trace instance before anything else

    let ctx = Context {
        readers,
        oom_kills: proc::oom_kills().saturating_sub(oom_before),
        invisible_kills: invisible,
    };
    let found: Vec<VerdictRecord> = verdicts(&signals, &exits, &victims, &mut table, &ctx);
    printer.flush();
    for v in found {
        printer.line(&Record::Verdict(v), &mut table);
    }
    if status == FAILED {
        eprintln!(
            "ptree: timed out with {} of {} watched processes still alive",
            victims.len() - exited.len(),
            victims.len()
        );
    }
    Ok(status)
}

/// How a process ended, from its SIGCHLD code and the signals it got.
pub(crate) fn inferred_status(
    pid: Pid,
    child_status: &HashMap<Pid, i32>,
    signals: &[SignalRecord],
) -> Option<ExitStatus> {
    let last_fatal = || {
        signals
            .iter()
            .filter(|s| s.target.pid == pid && !matches!(s.signal.0, 17 | 18 | 23 | 28))
            .filter(|s| s.result != crate::event::Delivery::Ignored)
            .max_by_key(|s| s.time)
            .map(|s| s.signal)
    };
    match child_status.get(&pid) {
        Some(2 | 3) => last_fatal().map(|signal| ExitStatus::Signaled { signal }),
        _ => None,
    }
}

/// Adds a sender the table has not seen (ptrace reports senders by pid
/// only) with its ancestors, while it still exists.
fn learn(table: &mut LiveTable, pid: Pid) {
    if table.get(pid).is_some() {
        return;
    }
    let mut cur = pid;
    for _ in 0..64 {
        if table.get(cur).is_some() {
            break;
        }
        let Some(p) = proc::read_one(cur) else { break };
        let parent = p.ppid;
        table.insert(p);
        if parent == Pid::NONE {
            break;
        }
        cur = parent;
    }
}

/// Maps a thread the table has not seen to its process through
/// `/proc/TID/status` (threads started before the watch began).
fn map_unknown_thread(table: &mut LiveTable, tid: Tid) {
    if table.get(Pid(tid.0)).is_some() || table.pid_of(tid) != Pid(tid.0) {
        return;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", tid.0)) else {
        return;
    };
    if let Some(tgid) = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
    {
        table.map_thread(tid, Pid(tgid));
    }
}

/// tracefs's fork event does not say whether the child is a thread or a
/// process: ask `/proc/CHILD/status` (threads are reachable there too)
/// while the child still exists; a child already gone is taken as a
/// process, which is what short-lived children are.
fn with_child_tgid(ev: RawEvent) -> RawEvent {
    match ev {
        RawEvent::Fork {
            time,
            parent_tid,
            parent_pid,
            child_tid,
            child_pid: None,
            comm,
        } => {
            let tgid = std::fs::read_to_string(format!("/proc/{}/status", child_tid.0))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Tgid:"))
                        .and_then(|v| v.trim().parse::<i32>().ok())
                })
                .map(Pid);
            RawEvent::Fork {
                time,
                parent_tid,
                parent_pid,
                child_tid,
                child_pid: tgid.or(Some(Pid(child_tid.0))),
                comm,
            }
        }
        other => other,
    }
}
