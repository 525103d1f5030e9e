//! The analysis behind `ptree report`: a recording replayed into a
//! postmortem timeline — the tree as it was, every death with its
//! verdict, restarts and restart loops, and what supervisors sent.
//!
//! Pure over a [`Recording`]: it never reads `/proc`, so it is tested on
//! hand-written recordings.

use std::collections::{HashMap, HashSet};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;

use crate::analysis::roles::Role;
use crate::analysis::tree::{build, rows};
use crate::cmd::who_killed::inferred_status;
use crate::event::{RawEvent, SigCode, Signal};
use crate::model::Pid;
use crate::record::format::SelectionLine;
use crate::record::read::{Item, RecordedSnapshot, Recording};
use crate::record::replay::{apply_event, apply_process, apply_snapshot, chld_code_after};
use crate::render::cells::fd_cell;
use crate::watch::enrich;
use crate::watch::record::{ExitRecord, SignalRecord, VerdictKind, VerdictRecord};
use crate::watch::table::{LiveTable, ProcInfo};
use crate::watch::verdict::{Context, verdicts};

pub const REPORT_SCHEMA: &str = "ptree.report/1";

/// How many timeline entries a report lists; the rest are counted.
const MAX_TIMELINE: usize = 500;

/// A replacement counts as a restart when it starts this long before the
/// death at most (a graceful reload starts the new worker first)...
const RESTART_BEFORE_S: i64 = 10;
/// ...or this long after it at most.
const RESTART_AFTER_S: i64 = 120;

/// `N/DUR`: more than N restarts within DUR is a restart loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartLoopRule {
    pub restarts: usize,
    pub window: StdDuration,
}

impl Default for RestartLoopRule {
    fn default() -> RestartLoopRule {
        RestartLoopRule {
            restarts: 5,
            window: StdDuration::from_secs(60),
        }
    }
}

impl std::fmt::Display for RestartLoopRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}s", self.restarts, self.window.as_secs_f64())
    }
}

/// Parses `5/60s`, `3/5m`.
pub fn parse_restart_loop(s: &str) -> Result<RestartLoopRule, String> {
    let (n, d) = s
        .split_once('/')
        .ok_or_else(|| format!("invalid restart-loop rule '{s}': write it like 5/60s"))?;
    let restarts = n
        .trim()
        .parse()
        .map_err(|_| format!("invalid count '{n}' in '{s}': write it like 5/60s"))?;
    let window = crate::duration::parse_duration(d)?;
    if window.is_zero() {
        return Err(format!("the window of '{s}' must not be zero"));
    }
    Ok(RestartLoopRule { restarts, window })
}

/// What the report covers.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// Only these processes and their descendants (empty: everything).
    pub pids: Vec<Pid>,
    pub restart_loop: RestartLoopRule,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    pub path: String,
    pub lines: usize,
    pub garbage: usize,
    /// The last line was cut: the recorder was killed while writing.
    pub truncated: bool,
    /// The recorder closed the file (an `end` line).
    pub closed: bool,
}

/// One run of the recorder (a restart starts another).
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub started_at: String,
    pub recorder_pid: i32,
    /// Time between the previous run's last line and this run's start:
    /// nothing was recorded then.
    pub gap_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LostInfo {
    pub time: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordingInfo {
    pub hostname: String,
    pub boot_id: String,
    /// What was recorded, as a command-line option.
    pub selection: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub files: Vec<FileInfo>,
    pub runs: Vec<RunInfo>,
    pub lost: Vec<LostInfo>,
    pub lost_total: u64,
    pub signals: Vec<String>,
}

/// A line of the tree as it was.
#[derive(Debug, Clone, Serialize)]
pub struct TreeLine {
    /// `ps f` glyphs (` \_ `) before the command.
    pub prefix: String,
    pub depth: usize,
    pub pid: Pid,
    pub ppid: Pid,
    pub comm: String,
    pub cmdline: String,
    pub role: Role,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TreeInfo {
    pub time: String,
    pub processes: Vec<TreeLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerdictInfo {
    pub kind: VerdictKind,
    pub root_cause: Option<ProcInfo>,
    pub chain: Vec<Pid>,
    pub explanation: String,
}

impl From<VerdictRecord> for VerdictInfo {
    fn from(v: VerdictRecord) -> VerdictInfo {
        VerdictInfo {
            kind: v.kind,
            root_cause: v.root_cause,
            chain: v.chain,
            explanation: v.explanation,
        }
    }
}

/// A recorded process that died.
#[derive(Debug, Clone, Serialize)]
pub struct Death {
    pub time: String,
    pub pid: Pid,
    pub ppid: Option<Pid>,
    pub comm: String,
    pub cmdline: String,
    pub role: Role,
    /// `signal`, `exit` or `unknown`, as who-killed's exit records.
    pub how: &'static str,
    pub signal: Option<Signal>,
    pub code: Option<i32>,
    /// Seconds between its start and its death, when both are known.
    pub lived_seconds: Option<f64>,
    pub verdict: Option<VerdictInfo>,
}

/// Short-lived processes that exited on their own, counted by name.
#[derive(Debug, Clone, Serialize)]
pub struct QuietExits {
    pub comm: String,
    pub count: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcRef {
    pub pid: Pid,
    pub comm: String,
    pub role: Role,
}

/// A process replaced by a new one with the same role under the same
/// parent.
#[derive(Debug, Clone, Serialize)]
pub struct Restart {
    /// When the replacement started.
    pub time: String,
    pub role: Role,
    pub parent: ProcRef,
    pub old_pid: Pid,
    pub new_pid: Pid,
    pub old_died_at: String,
    /// Replacement start minus death (negative: started before).
    pub after_seconds: f64,
}

/// More restarts in a window than the rule allows: a refork storm.
#[derive(Debug, Clone, Serialize)]
pub struct RestartLoop {
    pub parent: ProcRef,
    pub role: Role,
    /// The most restarts found within one window.
    pub restarts_in_window: usize,
    pub window_seconds: f64,
    pub rule: String,
    pub total_restarts: usize,
    pub first: String,
    pub last: String,
}

/// One line of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub time: String,
    /// `signal`, `death`, `restart`, `lost`, `recorder`.
    pub kind: &'static str,
    pub text: String,
}

/// The whole report, schema `ptree.report/1`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub recording: RecordingInfo,
    pub tree: Option<TreeInfo>,
    pub deaths: Vec<Death>,
    pub quiet_exits: Vec<QuietExits>,
    pub restarts: Vec<Restart>,
    pub restart_loops: Vec<RestartLoop>,
    pub supervisor_signals: Vec<SignalRecord>,
    pub timeline: Vec<TimelineEntry>,
    /// Timeline entries left out beyond the first 500.
    pub timeline_omitted: usize,
}

/// Everything the replay collects before the report is assembled.
#[derive(Default)]
struct Collected {
    table: Option<LiveTable>,
    signals: Vec<SignalRecord>,
    /// Identical signals each of `signals` stands for (coalesced storms).
    repeats: Vec<u64>,
    exits: Vec<ExitRecord>,
    exited: HashSet<Pid>,
    child_status: HashMap<Pid, i32>,
    readers: HashMap<Pid, Vec<Pid>>,
    /// Processes a snapshot listed (alive for a while).
    listed: HashSet<Pid>,
    /// Processes listed as recorded: a later snapshot without them means
    /// their exit was lost.
    recorded: HashSet<Pid>,
    /// Processes forked during the recording: (time, child, parent).
    births: Vec<(DateTime<Utc>, Pid, Pid)>,
    oom_kills: u64,
    /// (time, text) of recorder starts and stops, for the timeline.
    recorder_marks: Vec<(DateTime<Utc>, String)>,
}

impl Collected {
    fn on_snapshot(&mut self, snap: &RecordedSnapshot) {
        apply_snapshot(&mut self.table, snap);
        let lost: Vec<Pid> = self
            .recorded
            .iter()
            .copied()
            .filter(|p| !self.exited.contains(p) && snap.snapshot.get(*p).is_none())
            .collect();
        for p in lost {
            self.exit(p, snap.time, None);
        }
        for p in &snap.snapshot.processes {
            self.listed.insert(p.pid);
            if !self.readers.contains_key(&p.pid)
                && let Some(r) = snap.readers(p.pid)
            {
                self.readers.insert(p.pid, r);
            }
        }
        self.recorded.extend(snap.recorded.iter().copied());
    }

    fn exit(&mut self, pid: Pid, time: DateTime<Utc>, chld: Option<i32>) {
        let Some(table) = self.table.as_mut() else {
            return;
        };
        if let Some(c) = chld {
            self.child_status.insert(pid, c);
        }
        // SIGKILL cannot be caught: delivered just before the exit, it is
        // how the process ended even when no SIGCHLD said so (the parent
        // died first and PID 1 got it).
        let st = inferred_status(pid, &self.child_status, &self.signals).or_else(|| {
            let last = self
                .signals
                .iter()
                .filter(|s| s.target.pid == pid && s.result == crate::event::Delivery::Delivered)
                .filter(|s| s.time <= time && time - s.time < Duration::seconds(5))
                .max_by_key(|s| s.time)?;
            (last.signal == Signal::KILL && !self.child_status.contains_key(&pid)).then_some(
                crate::event::ExitStatus::Signaled {
                    signal: Signal::KILL,
                },
            )
        });
        self.exits.push(ExitRecord::with_how(
            time,
            pid,
            st,
            self.child_status.get(&pid) == Some(&1),
        ));
        self.exited.insert(pid);
        table.mark_exited(pid, time);
    }

    fn on_event(
        &mut self,
        items: &[Item],
        i: usize,
        event: &RawEvent,
        argv: &Option<crate::model::Argv>,
        repeats: u64,
    ) {
        let Some(table) = self.table.as_mut() else {
            return;
        };
        match event {
            RawEvent::Fork {
                time,
                parent_tid,
                parent_pid,
                child_tid,
                child_pid,
                ..
            } => {
                let parent = parent_pid.unwrap_or_else(|| table.pid_of(*parent_tid));
                apply_event(table, event, argv);
                let child = child_pid.unwrap_or(Pid(child_tid.0));
                if child != parent {
                    self.births.push((*time, child, parent));
                }
            }
            RawEvent::Exec { .. } => apply_event(table, event, argv),
            RawEvent::Signal(raw) => {
                if raw.signal == Signal::CHLD {
                    if let Some(child) = raw.sender_pid.or(raw.sender_tid.map(|t| table.pid_of(t)))
                        && let SigCode::Other(c) = raw.code
                    {
                        self.child_status.insert(child, c);
                    }
                    return;
                }
                let rec = enrich(raw, table);
                self.signals.push(rec);
                self.repeats.push(repeats);
            }
            RawEvent::Exit { time, tid, pid, .. } => {
                let p = pid.unwrap_or_else(|| table.pid_of(*tid));
                apply_event(table, event, argv);
                if Pid(tid.0) == p && !self.exited.contains(&p) {
                    let chld = chld_code_after(items, i, p, table, *time);
                    self.exit(p, *time, chld);
                }
            }
            RawEvent::Lost { .. } => {}
        }
    }
}

fn selection_text(s: &SelectionLine) -> String {
    match s {
        SelectionLine::Pids { pids } => pids
            .iter()
            .map(|p| format!("--pid {p}"))
            .collect::<Vec<_>>()
            .join(" "),
        SelectionLine::Title { title, exact } => {
            format!("--title {title}{}", if *exact { " --exact" } else { "" })
        }
        SelectionLine::All => "--all".to_string(),
    }
}

fn recording_info(rec: &Recording) -> RecordingInfo {
    let first = rec.headers().next();
    let mut runs: Vec<RunInfo> = Vec::new();
    let mut last_time: Option<DateTime<Utc>> = None;
    for item in &rec.items {
        if let Item::Header(h) = item
            && h.file_start == crate::record::format::FileStart::Start
        {
            runs.push(RunInfo {
                started_at: ts(h.started_at),
                recorder_pid: h.recorder_pid,
                gap_seconds: last_time
                    .map(|t| (h.started_at - t).num_milliseconds() as f64 / 1000.0)
                    .filter(|_| !runs.is_empty()),
            });
        }
        if let Some(t) = item.time() {
            last_time = Some(last_time.map_or(t, |l| l.max(t)));
        }
    }
    let lost: Vec<LostInfo> = rec
        .losses()
        .into_iter()
        .map(|(t, c)| LostInfo {
            time: ts(t),
            count: c,
        })
        .collect();
    let span = rec.span();
    RecordingInfo {
        hostname: first.map(|h| h.hostname.clone()).unwrap_or_default(),
        boot_id: first.map(|h| h.boot_id.clone()).unwrap_or_default(),
        selection: first
            .map(|h| selection_text(&h.selection))
            .unwrap_or_default(),
        from: span.map(|s| ts(s.0)),
        to: span.map(|s| ts(s.1)),
        files: rec
            .files
            .iter()
            .map(|f| FileInfo {
                path: f.path.display().to_string(),
                lines: f.lines,
                garbage: f.garbage,
                truncated: f.truncated,
                closed: f.closed,
            })
            .collect(),
        runs,
        lost_total: lost.iter().map(|l| l.count).sum(),
        lost,
        signals: first
            .map(|h| h.signals.iter().map(|s| s.name()).collect())
            .unwrap_or_default(),
    }
}

/// The tree of the first snapshot (holding the asked pids, with
/// `--pid`): the asked processes, their ancestors and descendants.
fn tree_info(rec: &Recording, pids: &[Pid]) -> Option<TreeInfo> {
    let snap = rec
        .snapshots()
        .find(|s| pids.is_empty() || pids.iter().any(|p| s.snapshot.get(*p).is_some()))?;
    let shown: HashSet<Pid> = if pids.is_empty() {
        snap.snapshot.processes.iter().map(|p| p.pid).collect()
    } else {
        let present: Vec<Pid> = pids
            .iter()
            .copied()
            .filter(|p| snap.snapshot.get(*p).is_some())
            .collect();
        crate::analysis::select::expand(&snap.snapshot, &present)
    };
    let forest = build(&snap.snapshot, &shown);
    let processes = rows(&forest)
        .into_iter()
        .filter_map(|row| {
            let p = snap.snapshot.get(row.node.pid)?;
            let fd = |n: u8| {
                let f = p
                    .fds
                    .as_ref()
                    .map(|f| if n == 1 { &f.stdout } else { &f.stderr });
                if f.is_none() {
                    return String::new();
                }
                fd_cell(f, snap.peers.of(p.pid, n), snap.peers.is_unknown(p.pid, n))
            };
            Some(TreeLine {
                prefix: row.prefix.clone(),
                depth: row.depth,
                pid: p.pid,
                ppid: p.ppid,
                comm: p.comm_lossy(),
                cmdline: p.command(),
                role: snap.roles.get(&p.pid).copied().unwrap_or(Role::Other),
                stdout: fd(1),
                stderr: fd(2),
            })
        })
        .collect();
    Some(TreeInfo {
        time: ts(snap.time),
        processes,
    })
}

fn proc_ref(table: &mut LiveTable, pid: Pid) -> ProcRef {
    let i = table.info(pid);
    ProcRef {
        pid,
        comm: i.comm,
        role: i.role,
    }
}

/// Builds the report.
pub fn build_report(rec: &Recording, opts: &ReportOptions) -> Report {
    let mut c = Collected::default();
    for (i, item) in rec.items.iter().enumerate() {
        match item {
            Item::Header(h) => {
                if h.file_start == crate::record::format::FileStart::Start {
                    c.recorder_marks
                        .push((h.started_at, format!("recorder {} started", h.recorder_pid)));
                }
            }
            Item::End {
                time,
                reason,
                signal,
            } => {
                use crate::record::format::EndReason;
                let text = match reason {
                    EndReason::Rotation => None,
                    EndReason::Stopped => Some(format!(
                        "recorder stopped by {}",
                        signal.as_deref().unwrap_or("a signal")
                    )),
                    EndReason::Duration => Some("recorder stopped at --duration".to_string()),
                    EndReason::Error => Some("recorder failed".to_string()),
                };
                if let Some(text) = text {
                    c.recorder_marks.push((*time, text));
                }
            }
            Item::Snapshot(s) => c.on_snapshot(s),
            Item::Process {
                process, exited_at, ..
            } => apply_process(&mut c.table, process, *exited_at),
            Item::Event {
                event,
                argv,
                repeats,
                ..
            } => c.on_event(&rec.items, i, event, argv, *repeats),
            Item::Oom { delta, .. } => c.oom_kills += delta,
        }
    }
    let recording = recording_info(rec);
    let tree = tree_info(rec, &opts.pids);
    let Some(mut table) = c.table.take() else {
        return Report {
            schema: REPORT_SCHEMA,
            recording,
            tree,
            deaths: Vec::new(),
            quiet_exits: Vec::new(),
            restarts: Vec::new(),
            restart_loops: Vec::new(),
            supervisor_signals: Vec::new(),
            timeline: Vec::new(),
            timeline_omitted: 0,
        };
    };

    let in_scope = |table: &LiveTable, pid: Pid| {
        opts.pids.is_empty()
            || opts.pids.contains(&pid)
            || table.ancestors(pid).iter().any(|a| opts.pids.contains(a))
    };
    // Deaths worth a verdict: processes with a role, processes that lived
    // long enough to be in a snapshot, and processes a signal was sent to.
    let signalled: HashSet<Pid> = c
        .signals
        .iter()
        .filter(|s| s.result != crate::event::Delivery::Ignored)
        .map(|s| s.target.pid)
        .collect();
    let mut notable: Vec<Pid> = Vec::new();
    let mut quiet: HashMap<String, usize> = HashMap::new();
    for e in &c.exits {
        if !in_scope(&table, e.pid) {
            continue;
        }
        let role = table.role(e.pid);
        if role != Role::Other || c.listed.contains(&e.pid) || signalled.contains(&e.pid) {
            notable.push(e.pid);
        } else {
            let comm = table.info(e.pid).comm;
            *quiet.entry(comm).or_default() += 1;
        }
    }
    let ctx = Context {
        readers: c.readers.clone(),
        oom_kills: c.oom_kills,
        invisible_kills: HashSet::new(),
    };
    let mut found: HashMap<Pid, VerdictRecord> =
        verdicts(&c.signals, &c.exits, &notable, &mut table, &ctx)
            .into_iter()
            .map(|v| (v.pid, v))
            .collect();
    let exit_of: HashMap<Pid, &ExitRecord> = c.exits.iter().map(|e| (e.pid, e)).collect();
    let mut deaths = Vec::new();
    for &pid in &notable {
        let Some(e) = exit_of.get(&pid) else { continue };
        let info = table.info(pid);
        let started = table
            .get(pid)
            .map(|en| en.process.start_time)
            .filter(|t| *t > DateTime::<Utc>::UNIX_EPOCH);
        deaths.push(Death {
            time: ts(e.time),
            pid,
            ppid: table.parent(pid),
            comm: info.comm,
            cmdline: info.cmdline,
            role: info.role,
            how: e.how,
            signal: e.signal,
            code: e.code,
            lived_seconds: started.map(|s| (e.time - s).num_milliseconds() as f64 / 1000.0),
            verdict: found.remove(&pid).map(VerdictInfo::from),
        });
    }
    let mut quiet_exits: Vec<QuietExits> = quiet
        .into_iter()
        .map(|(comm, count)| QuietExits { comm, count })
        .collect();
    quiet_exits.sort_by(|a, b| b.count.cmp(&a.count).then(a.comm.cmp(&b.comm)));

    let (restarts, restart_loops) = restarts(&c, &mut table, opts, &in_scope);

    let supervisor_signals: Vec<SignalRecord> = c
        .signals
        .iter()
        .filter(|s| {
            s.sender
                .as_ref()
                .is_some_and(|x| x.role == Role::Supervisor)
        })
        .filter(|s| in_scope(&table, s.target.pid))
        .cloned()
        .collect();

    let mut timeline: Vec<(DateTime<Utc>, TimelineEntry)> = Vec::new();
    let mut push = |t: DateTime<Utc>, kind: &'static str, text: String| {
        timeline.push((
            t,
            TimelineEntry {
                time: ts(t),
                kind,
                text,
            },
        ));
    };
    for (t, text) in &c.recorder_marks {
        push(*t, "recorder", text.clone());
    }
    for (t, count) in rec.losses() {
        push(
            t,
            "lost",
            format!("the kernel dropped {count} events: the timeline has a hole here"),
        );
    }
    for (s, &repeats) in c.signals.iter().zip(&c.repeats) {
        if !in_scope(&table, s.target.pid) {
            continue;
        }
        let times = if repeats > 0 {
            format!(" (×{})", repeats + 1)
        } else {
            String::new()
        };
        let from = match &s.sender {
            Some(x) => format!("{} {} ({})", x.pid, x.comm, x.role),
            None => "the kernel".to_string(),
        };
        push(
            s.time,
            "signal",
            format!(
                "{}{times} from {from} to {} {} ({}), {}",
                s.signal,
                s.target.pid,
                s.target.comm,
                s.target.role,
                crate::record::format::delivery_name(s.result)
            ),
        );
    }
    for d in &deaths {
        let t = exit_time(&exit_of, d.pid);
        let how = death_how(d);
        let verdict = d
            .verdict
            .as_ref()
            .map(|v| format!(": {}", kind_name(v.kind)))
            .unwrap_or_default();
        push(
            t,
            "death",
            format!("{} {} ({}) {how}{verdict}", d.pid, d.comm, d.role),
        );
    }
    for r in &restarts {
        if let Ok(t) = DateTime::parse_from_rfc3339(&r.time) {
            push(
                t.with_timezone(&Utc),
                "restart",
                format!(
                    "{} {} replaced by {} under {} {}",
                    r.role, r.old_pid, r.new_pid, r.parent.pid, r.parent.comm
                ),
            );
        }
    }
    timeline.sort_by_key(|(t, _)| *t);
    let timeline_omitted = timeline.len().saturating_sub(MAX_TIMELINE);
    timeline.truncate(MAX_TIMELINE);

    Report {
        schema: REPORT_SCHEMA,
        recording,
        tree,
        deaths,
        quiet_exits,
        restarts,
        restart_loops,
        supervisor_signals,
        timeline: timeline.into_iter().map(|(_, e)| e).collect(),
        timeline_omitted,
    }
}

fn exit_time(exits: &HashMap<Pid, &ExitRecord>, pid: Pid) -> DateTime<Utc> {
    exits
        .get(&pid)
        .map_or(DateTime::<Utc>::UNIX_EPOCH, |e| e.time)
}

/// `killed by SIGTERM`, `exited with status 1`, `exited`.
pub fn death_how(d: &Death) -> String {
    match (d.how, d.signal, d.code) {
        ("signal", Some(s), _) => format!("killed by {s}"),
        ("signal", None, _) => "killed by a signal".to_string(),
        ("exit", _, Some(c)) => format!("exited with status {c}"),
        _ => "exited".to_string(),
    }
}

pub fn kind_name(k: VerdictKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// A process forked during the recording: when, and its pid.
type Birth = (DateTime<Utc>, Pid);

/// Pairs each death of a process with a role with the next process of the
/// same role forked by the same parent, and finds windows with too many.
fn restarts(
    c: &Collected,
    table: &mut LiveTable,
    opts: &ReportOptions,
    in_scope: &dyn Fn(&LiveTable, Pid) -> bool,
) -> (Vec<Restart>, Vec<RestartLoop>) {
    let counts = |role: Role| !matches!(role, Role::Other | Role::Shell);
    // (parent, role) → births in time order.
    let mut births: HashMap<(Pid, Role), Vec<Birth>> = HashMap::new();
    for &(t, child, parent) in &c.births {
        let role = table.role(child);
        if counts(role) {
            births.entry((parent, role)).or_default().push((t, child));
        }
    }
    let mut deaths: Vec<&ExitRecord> = c.exits.iter().collect();
    deaths.sort_by_key(|e| e.time);
    let mut used: HashSet<Pid> = HashSet::new();
    let mut found: Vec<(Pid, Role, DateTime<Utc>, Restart)> = Vec::new();
    for e in deaths {
        let role = table.role(e.pid);
        if !counts(role) || !in_scope(table, e.pid) {
            continue;
        }
        let Some(parent) = table.parent(e.pid) else {
            continue;
        };
        let born = table.get(e.pid).map(|en| en.process.start_time);
        let Some(candidates) = births.get(&(parent, role)) else {
            continue;
        };
        let lo = e.time - Duration::seconds(RESTART_BEFORE_S);
        let hi = e.time + Duration::seconds(RESTART_AFTER_S);
        let Some(&(t, new)) = candidates.iter().find(|(t, p)| {
            *p != e.pid && !used.contains(p) && *t >= lo && *t <= hi && born.is_none_or(|b| *t > b)
        }) else {
            continue;
        };
        used.insert(new);
        let restart = Restart {
            time: ts(t),
            role,
            parent: proc_ref(table, parent),
            old_pid: e.pid,
            new_pid: new,
            old_died_at: ts(e.time),
            after_seconds: (t - e.time).num_milliseconds() as f64 / 1000.0,
        };
        found.push((parent, role, t, restart));
    }
    found.sort_by_key(|(_, _, t, _)| *t);

    let window = Duration::milliseconds(opts.restart_loop.window.as_millis() as i64);
    let mut groups: HashMap<(Pid, Role), Vec<DateTime<Utc>>> = HashMap::new();
    for (parent, role, t, _) in &found {
        groups.entry((*parent, *role)).or_default().push(*t);
    }
    let mut loops = Vec::new();
    let mut keys: Vec<&(Pid, Role)> = groups.keys().collect();
    keys.sort();
    for key in keys {
        let times = &groups[key];
        let mut best = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end] - times[start] > window {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        if best > opts.restart_loop.restarts {
            loops.push(RestartLoop {
                parent: proc_ref(table, key.0),
                role: key.1,
                restarts_in_window: best,
                window_seconds: opts.restart_loop.window.as_secs_f64(),
                rule: opts.restart_loop.to_string(),
                total_restarts: times.len(),
                first: ts(times[0]),
                last: ts(times[times.len() - 1]),
            });
        }
    }
    (found.into_iter().map(|(_, _, _, r)| r).collect(), loops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::read::parse_file;
    use std::path::Path;

    #[test]
    fn restart_loop_rules() {
        assert_eq!(
            parse_restart_loop("5/60s"),
            Ok(RestartLoopRule {
                restarts: 5,
                window: StdDuration::from_secs(60)
            })
        );
        assert_eq!(parse_restart_loop("3/5m").unwrap().window.as_secs(), 300);
        assert!(parse_restart_loop("5").is_err());
        assert!(parse_restart_loop("x/60s").is_err());
        assert!(parse_restart_loop("5/0s").is_err());
    }

    /// A master (pid 100, `node … start-cluster`) whose app workers crash
    /// at start and are forked again, eight times in four seconds.
    fn refork_storm() -> Recording {
        let mut lines = vec![
            r#"{"type":"header","schema":"ptree.recording/1","ptree_version":"0.1.0","started_at":"2026-01-01T00:00:00.000000Z","file_started_at":"2026-01-01T00:00:00.000000Z","file_start":"start","part":1,"recorder_pid":9,"hostname":"h","boot_id":"b","selection":{"kind":"title","title":"egg","exact":false},"signals":["SIGTERM","SIGCHLD"],"via":"tracefs","oom_kill":0,"ticks_per_second":100}"#.to_string(),
            r#"{"type":"snapshot","time":"2026-01-01T00:00:00.000000Z","reason":"start","recorded":[100,101],"processes":[{"pid":1,"ppid":0,"pgid":1,"sid":1,"comm":"init","argv":["/sbin/init"],"start_time":"2025-12-31T00:00:00.000000Z","start_ticks":1,"role":"other"},{"pid":100,"ppid":1,"pgid":100,"sid":100,"comm":"node","argv":["node","/srv/node_modules/egg-scripts/lib/start-cluster","--title=egg"],"start_time":"2025-12-31T00:00:01.000000Z","start_ticks":2,"role":"master"},{"pid":101,"ppid":100,"pgid":100,"sid":100,"comm":"node","argv":["node","/srv/node_modules/egg-cluster/lib/app_worker.js"],"start_time":"2025-12-31T00:00:02.000000Z","start_ticks":3,"role":"worker"}]}"#.to_string(),
        ];
        let mut pid = 101;
        for i in 0..8 {
            let t = |ms: i64| {
                let base = DateTime::parse_from_rfc3339("2026-01-01T00:00:01Z").unwrap();
                ts((base + Duration::milliseconds(i * 500 + ms)).with_timezone(&Utc))
            };
            lines.push(format!(
                r#"{{"type":"exit","time":"{}","pid":{pid},"tid":{pid},"comm":"node"}}"#,
                t(0)
            ));
            lines.push(format!(
                r#"{{"type":"signal","time":"{}","signal":"SIGCHLD","signo":17,"si_code":1,"result":"delivered","group":true,"sender_pid":{pid},"sender_tid":{pid},"sender_comm":"node","target_tid":100,"target_comm":"node","via":"tracefs"}}"#,
                t(1)
            ));
            let new = pid + 1;
            lines.push(format!(
                r#"{{"type":"fork","time":"{}","parent_pid":100,"parent_tid":100,"child_pid":{new},"child_tid":{new},"comm":"node"}}"#,
                t(100)
            ));
            lines.push(format!(
                r#"{{"type":"exec","time":"{}","pid":{new},"filename":"/usr/bin/node","argv":["node","/srv/node_modules/egg-cluster/lib/app_worker.js"]}}"#,
                t(101)
            ));
            pid = new;
        }
        let text = lines.join("\n") + "\n";
        let (summary, items) = parse_file(Path::new("storm.jsonl"), text.as_bytes()).unwrap();
        assert_eq!(summary.garbage, 0);
        Recording {
            files: vec![summary],
            items,
        }
    }

    #[test]
    fn a_refork_storm_is_a_restart_loop() {
        let rec = refork_storm();
        let report = build_report(&rec, &ReportOptions::default());
        assert_eq!(report.restarts.len(), 8, "{:#?}", report.restarts);
        assert!(report.restarts.iter().all(|r| r.role == Role::Worker));
        assert_eq!(report.restarts[0].old_pid, Pid(101));
        assert_eq!(report.restarts[0].new_pid, Pid(102));
        assert_eq!(report.restart_loops.len(), 1);
        let l = &report.restart_loops[0];
        assert_eq!(l.parent.pid, Pid(100));
        assert_eq!(l.restarts_in_window, 8);
        // Each worker exited on its own with status unknown but "exit".
        let d = report.deaths.iter().find(|d| d.pid == Pid(101)).unwrap();
        assert_eq!(d.how, "exit");
        assert_eq!(d.verdict.as_ref().unwrap().kind, VerdictKind::Unknown);
        let tree = report.tree.unwrap();
        assert_eq!(tree.processes.len(), 3);
        assert_eq!(tree.processes[1].role, Role::Master);
    }

    #[test]
    fn a_gentler_rule_is_not_a_loop() {
        let rec = refork_storm();
        let opts = ReportOptions {
            restart_loop: parse_restart_loop("10/60s").unwrap(),
            ..ReportOptions::default()
        };
        assert!(build_report(&rec, &opts).restart_loops.is_empty());
        let opts = ReportOptions {
            restart_loop: parse_restart_loop("2/1s").unwrap(),
            ..ReportOptions::default()
        };
        assert_eq!(
            build_report(&rec, &opts).restart_loops[0].restarts_in_window,
            3
        );
    }
}
