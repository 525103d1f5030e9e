//! The flight recorder: a tracefs instance (as who-killed uses) turned
//! into a JSON-lines file that a later `who-killed --from` or `report`
//! replays.
//!
//! What goes into the file, and why:
//!
//! - `signal_generate` filtered in the kernel on the thread ids of the
//!   recorded processes and of their ancestors up to the supervisor, as
//!   target (`pid`) or as sender (`common_pid`), and on the signal set;
//!   the filter is rewritten as they fork and exit (a rewrite costs tens
//!   of microseconds).
//! - fork, exec and exit of the recorded processes, their context
//!   ancestors and those ancestors' children. The sched tracepoints fire
//!   for the whole machine and the recorder reads them all to keep
//!   [`MachineTable`] current, but writes only these: every other process
//!   a line refers to (a signal's sender and its ancestry) is described
//!   once per file by a `process` line written just before it. That keeps
//!   the file's growth proportional to the service's activity, not the
//!   machine's.
//! - a snapshot of the recorded processes and all their ancestors at the
//!   start of each file, and when the tree changes shape (at most one a
//!   second, one a minute with `--all`): pid, ppid, pgid, sid, comm, argv,
//!   start time, role, threads, and the readers of stdout and stderr.
//! - `lost` lines when the kernel's ring buffer overran: never silent.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::analysis::roles::{Role, Roles, classify};
use crate::analysis::select::{Selection, matches};
use crate::analysis::title::{TitleMatch, matches_title};
use crate::error::Error;
use crate::event::{Delivery, RawEvent, RawSignal, Signal};
use crate::interrupt;
use crate::model::{Argv, Pid, Snapshot, Tid};
use crate::proc::{self, Details, peers};
use crate::record::format::{
    EndLine, EndReason, ExecLine, ExitLine, FileStart, ForkLine, HeaderLine, Line, LostLine,
    OomLine, ProcJson, ProcessLine, SCHEMA, SelectionLine, SignalLine, SnapshotLine,
    SnapshotReason, Time, fd_json,
};
use crate::record::machine::{KEEP_EXITED, MachineTable, is_thread_of};
use crate::record::writer::RecordingWriter;
use crate::trace::tracefs::{TraceInstance, TraceOptions};

/// What to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Pids(Vec<Pid>),
    Title { title: String, how: TitleMatch },
    All,
}

/// A validated recording request.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    pub target: Target,
    pub out: PathBuf,
    pub max_bytes: Option<u64>,
    pub duration: Option<Duration>,
    /// Signals recorded besides SIGCHLD.
    pub signals: Vec<Signal>,
    /// Ring buffer per CPU.
    pub buffer_size_kb: u32,
}

/// What a run wrote, for the closing line on stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub signals: u64,
    pub forks: u64,
    pub execs: u64,
    pub exits: u64,
    pub snapshots: u64,
    pub lost: u64,
    pub files: u32,
    pub bytes: u64,
}

/// How often the reader wakes when events keep coming: batching reads
/// costs less CPU than waking for each event, and the ring buffer holds
/// far more than this much.
const BATCH_INTERVAL: Duration = Duration::from_millis(100);

/// The longest filter expression written (the kernel takes one page).
const MAX_FILTER_LEN: usize = 4000;

/// Identical signals within this long of the last one written are
/// counted, not written (see `SignalLine::repeats`).
const COALESCE: chrono::Duration = chrono::Duration::seconds(1);

/// How long a stop may spend reading what the kernel still holds.
const FINAL_DRAIN: Duration = Duration::from_secs(1);

/// What makes two signals the same for coalescing: sender, target thread,
/// signal, si_code, result.
type SignalKey = (Option<i32>, i32, i32, i32, Delivery);

/// Identical signals seen since the last one written.
struct Pending {
    last_written: DateTime<Utc>,
    count: u64,
    since: Option<DateTime<Utc>>,
    last: Option<RawSignal>,
}

fn min_snapshot_interval(all: bool) -> Duration {
    if all {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(1)
    }
}

/// How often `--title` looks for newly started matching processes that no
/// event revealed (a process that retitled itself).
const RESCAN_INTERVAL: Duration = Duration::from_secs(5);

/// Where events come from: a tracefs instance, or a test's script.
pub trait EventSource {
    /// Waits up to `timeout` and returns what arrived (see
    /// [`TraceInstance::read_events`]).
    fn read_events(&mut self, timeout: Duration) -> Result<Vec<RawEvent>, Error>;
    /// Signals to record: to or from these thread ids, or with `all`, to
    /// anyone; only these signal numbers.
    fn set_signal_filter(
        &mut self,
        sorted_tids: &[i32],
        signals: &[Signal],
        all: bool,
    ) -> Result<(), Error>;
}

impl EventSource for TraceInstance {
    fn read_events(&mut self, timeout: Duration) -> Result<Vec<RawEvent>, Error> {
        TraceInstance::read_events(self, timeout)
    }

    fn set_signal_filter(
        &mut self,
        sorted_tids: &[i32],
        signals: &[Signal],
        all: bool,
    ) -> Result<(), Error> {
        if all {
            // The event is enabled through the instance (with a pid filter
            // replaced at once): every target, only these signals.
            TraceInstance::set_signal_filter(self, &[1], signals)?;
            return write_filter(self.dir(), &format!("({})", signal_terms(signals)));
        }
        // Targets only, with the instance's own fallback to filtering pids
        // in user space when there are too many for the kernel...
        TraceInstance::set_signal_filter(self, sorted_tids, signals)?;
        // ...then senders too, when the expression fits.
        if let Some(expr) = target_or_sender_filter(sorted_tids, signals) {
            write_filter(self.dir(), &expr)?;
        }
        Ok(())
    }
}

struct Recorder {
    opts: RecordOptions,
    all: bool,
    inst: Box<dyn EventSource>,
    writer: RecordingWriter,
    machine: MachineTable,
    started_at: DateTime<Utc>,
    part: u32,
    hostname: String,
    boot_id: String,
    ticks_per_second: u64,
    /// The kernel filter's signals: the asked ones and SIGCHLD.
    kernel_signals: Vec<Signal>,
    /// Recorded processes alive (unused with `--all`: everything is).
    recorded: HashSet<Pid>,
    /// Their ancestors up to the supervisor (never PID 1).
    context: HashSet<Pid>,
    /// Threads other than the main one, of recorded and context processes.
    threads: HashMap<Tid, Pid>,
    /// Processes whose fork, exec and exit are written.
    written: HashSet<Pid>,
    /// Processes the current file describes (in a snapshot, a `process`
    /// line, or created by a written fork).
    described: HashSet<Pid>,
    roles: Roles,
    filter_dirty: bool,
    snapshot_due: Option<SnapshotReason>,
    last_snapshot: Instant,
    last_rescan: Instant,
    last_oom_check: Instant,
    oom_kill: u64,
    repeats: HashMap<SignalKey, Pending>,
    /// Keys of `repeats` with a count to write.
    pending: HashSet<SignalKey>,
    /// Exited processes to drop from `described`, in exit order.
    forget: VecDeque<(DateTime<Utc>, Pid)>,
    stats: Stats,
}

/// Records until stopped (SIGINT, SIGTERM, SIGHUP) or `--duration`.
pub fn record(opts: RecordOptions) -> Result<Stats, Error> {
    interrupt::install();
    // The instance first, then the snapshot: a process that starts in
    // between is in both, never in neither.
    let inst = TraceInstance::create(&TraceOptions {
        buffer_size_kb: opts.buffer_size_kb,
        clock: None,
    })?;
    // The instance is dropped (and removed) inside, on every path.
    record_from(Box::new(inst), opts)
}

/// Records from any source; [`record`] with a tracefs instance. Stops on
/// the signals [`interrupt`] flags (when installed) or at `--duration`.
pub fn record_from(inst: Box<dyn EventSource>, opts: RecordOptions) -> Result<Stats, Error> {
    let snapshot = proc::read_snapshot()?;
    let recorded: HashSet<Pid> = match &opts.target {
        Target::All => HashSet::new(),
        Target::Pids(pids) => {
            let m = matches(&snapshot, &Selection::Pids(pids.clone()))?;
            descendants(&snapshot, &m)
        }
        Target::Title { title, how } => {
            let m = matches(
                &snapshot,
                &Selection::Title {
                    title: title.clone(),
                    how: *how,
                },
            )?;
            if m.is_empty() {
                eprintln!(
                    "ptree: no process matches --title {title} yet; recording starts when one appears"
                );
            }
            descendants(&snapshot, &m)
        }
    };
    let (writer, moved) = RecordingWriter::create(&opts.out, opts.max_bytes)?;
    if moved {
        eprintln!(
            "ptree: kept the previous recording as {}",
            crate::record::writer::rotated_path(&opts.out).display()
        );
    }
    let mut kernel_signals = opts.signals.clone();
    if !kernel_signals.contains(&Signal::CHLD) {
        kernel_signals.push(Signal::CHLD);
    }
    kernel_signals.sort();
    kernel_signals.dedup();
    let mut r = Recorder {
        all: opts.target == Target::All,
        opts,
        inst,
        writer,
        machine: MachineTable::from_snapshot(&snapshot),
        started_at: Utc::now(),
        part: 1,
        hostname: read_trimmed("/proc/sys/kernel/hostname"),
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
        ticks_per_second: snapshot.ticks_per_second,
        kernel_signals,
        recorded,
        context: HashSet::new(),
        threads: HashMap::new(),
        written: HashSet::new(),
        described: HashSet::new(),
        roles: Roles::default(),
        filter_dirty: true,
        snapshot_due: None,
        last_snapshot: Instant::now(),
        last_rescan: Instant::now(),
        last_oom_check: Instant::now(),
        oom_kill: crate::proc::oom_kills(),
        repeats: HashMap::new(),
        pending: HashSet::new(),
        forget: VecDeque::new(),
        stats: Stats {
            files: 1,
            ..Stats::default()
        },
    };
    r.write_header(FileStart::Start)?;
    r.write_snapshot(snapshot, SnapshotReason::Start, true)?;
    r.apply_filter()?;
    r.writer.flush()?;
    eprintln!(
        "ptree: recording {} to {} via tracefs{}; stop with Ctrl-C or SIGTERM",
        r.describe_target(),
        r.writer.path().display(),
        match r.opts.max_bytes {
            Some(n) => format!(" (rotating at {n} bytes, keeping one previous file)"),
            None => String::new(),
        }
    );
    let outcome = r.run();
    // Say how it ended in the file, even after an error (best effort).
    let (reason, signal, error) = match &outcome {
        Ok(Some(sig)) => (
            EndReason::Stopped,
            Some(Signal(*sig).name()),
            None::<String>,
        ),
        Ok(None) => (EndReason::Duration, None, None),
        Err(e) => (EndReason::Error, None, Some(e.to_string())),
    };
    let end = Line::End(EndLine {
        time: Time(Utc::now()),
        reason,
        signal,
        error,
    });
    let closed = r.writer.write(&end).and_then(|_| r.writer.sync());
    outcome?;
    closed?;
    r.stats.bytes = r.writer.total_bytes();
    Ok(r.stats)
    // `r.inst` drops here, on every path: tracing stops and a tracefs
    // instance is removed.
}

impl Recorder {
    /// The loop; `Some(signal)` when a signal stopped it, `None` at
    /// `--duration`.
    fn run(&mut self) -> Result<Option<i32>, Error> {
        let started = Instant::now();
        let stop = loop {
            if let Some(sig) = interrupt::received() {
                break Some(sig);
            }
            if self.opts.duration.is_some_and(|d| started.elapsed() >= d) {
                break None;
            }
            let iteration = Instant::now();
            let events = self.inst.read_events(Duration::from_millis(200))?;
            let busy = !events.is_empty();
            self.handle(events)?;
            self.housekeeping()?;
            if busy && interrupt::received().is_none() {
                let spent = iteration.elapsed();
                if spent < BATCH_INTERVAL {
                    std::thread::sleep(BATCH_INTERVAL - spent);
                }
            }
        };
        // What the kernel already holds happened before the stop: keep it,
        // within reason (a storm would keep the buffer full).
        let draining = Instant::now();
        while draining.elapsed() < FINAL_DRAIN {
            let events = self.inst.read_events(Duration::ZERO)?;
            if events.is_empty() {
                break;
            }
            self.handle(events)?;
        }
        self.flush_repeats(|_| true)?;
        Ok(stop)
    }

    fn handle(&mut self, events: Vec<RawEvent>) -> Result<(), Error> {
        let mut last_time = None;
        for ev in events {
            last_time = Some(event_time(&ev));
            self.on_event(ev)?;
        }
        if let Some(t) = last_time {
            self.machine.prune(t);
            while let Some(&(exited, pid)) = self.forget.front() {
                if t - exited < KEEP_EXITED {
                    break;
                }
                self.forget.pop_front();
                self.described.remove(&pid);
            }
        }
        Ok(())
    }

    fn housekeeping(&mut self) -> Result<(), Error> {
        let now = Utc::now();
        self.flush_repeats(|p| now - p.last_written >= COALESCE)?;
        self.repeats
            .retain(|_, p| p.count > 0 || now - p.last_written < COALESCE);
        if self.filter_dirty {
            self.apply_filter()?;
        }
        if self.last_oom_check.elapsed() >= Duration::from_secs(1) {
            self.last_oom_check = Instant::now();
            let now = crate::proc::oom_kills();
            if now > self.oom_kill {
                let delta = now - self.oom_kill;
                self.oom_kill = now;
                self.emit(
                    Line::Oom(OomLine {
                        time: Time(Utc::now()),
                        oom_kill: now,
                        delta,
                    }),
                    &[],
                    Utc::now(),
                )?;
            }
        }
        if matches!(self.opts.target, Target::Title { .. })
            && self.snapshot_due.is_none()
            && self.last_rescan.elapsed() >= RESCAN_INTERVAL
        {
            self.last_rescan = Instant::now();
            let snap = proc::read_snapshot()?;
            if self.new_title_matches(&snap).next().is_some() {
                self.snapshot_due = Some(SnapshotReason::Change);
            }
        }
        if let Some(reason) = self.snapshot_due
            && self.last_snapshot.elapsed() >= min_snapshot_interval(self.all)
        {
            let snap = proc::read_snapshot()?;
            self.write_snapshot(snap, reason, false)?;
            if self.filter_dirty {
                self.apply_filter()?;
            }
        }
        self.writer.flush_if_due()
    }

    fn describe_target(&self) -> String {
        let n = self.recorded.len();
        let what = match &self.opts.target {
            Target::All => return "every process".to_string(),
            Target::Pids(p) => format!(
                "pid {}",
                p.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Target::Title { title, .. } => format!("--title {title}"),
        };
        format!(
            "{what}: {n} process{} and {} ancestor{}",
            if n == 1 { "" } else { "es" },
            self.context.len(),
            if self.context.len() == 1 { "" } else { "s" }
        )
    }

    /// Recorded, or watched for context.
    fn tracked(&self, pid: Pid) -> bool {
        self.all || self.recorded.contains(&pid) || self.context.contains(&pid)
    }

    fn pid_of(&self, tid: Tid) -> Pid {
        self.threads.get(&tid).copied().unwrap_or(Pid(tid.0))
    }

    fn on_event(&mut self, ev: RawEvent) -> Result<(), Error> {
        match ev {
            RawEvent::Fork {
                time,
                parent_tid,
                parent_pid,
                child_tid,
                comm,
                ..
            } => {
                let parent = parent_pid.unwrap_or_else(|| self.pid_of(parent_tid));
                let tracked = self.tracked(parent);
                if !tracked && !self.written.contains(&parent) {
                    self.machine.fork(time, parent, Pid(child_tid.0), &comm);
                    return Ok(());
                }
                let thread = is_thread_of(parent, child_tid);
                let child = if thread { parent } else { Pid(child_tid.0) };
                if thread {
                    if !tracked {
                        return Ok(());
                    }
                    self.threads.insert(child_tid, parent);
                    self.filter_dirty |= !self.all;
                } else {
                    self.machine.fork(time, parent, child, &comm);
                    self.written.insert(child);
                    if self.all || self.recorded.contains(&parent) {
                        self.recorded.insert(child);
                        self.filter_dirty |= !self.all;
                        self.snapshot_due.get_or_insert(SnapshotReason::Change);
                    }
                }
                self.stats.forks += 1;
                let line = Line::Fork(ForkLine {
                    time: Time(time),
                    parent_pid: Some(parent.0),
                    parent_tid: parent_tid.0,
                    child_pid: Some(child.0),
                    child_tid: child_tid.0,
                    comm,
                });
                self.emit(line, &[parent], time)?;
                if !thread {
                    self.described.insert(child);
                }
            }
            RawEvent::Exec {
                time,
                pid,
                filename,
                ..
            } => {
                let argv =
                    read_argv(pid).unwrap_or_else(|| Argv(vec![filename.as_bytes().to_vec()]));
                if let Target::Title { title, how } = &self.opts.target
                    && !self.recorded.contains(&pid)
                    && matches_title(&argv, title, *how)
                {
                    self.join(pid);
                }
                let escaped = argv.escaped();
                self.machine.exec(pid, argv, &filename);
                if self.tracked(pid) || self.written.contains(&pid) {
                    self.stats.execs += 1;
                    let line = Line::Exec(ExecLine {
                        time: Time(time),
                        pid: pid.0,
                        filename,
                        argv: escaped,
                    });
                    self.emit(line, &[pid], time)?;
                }
            }
            RawEvent::Exit {
                time,
                tid,
                pid,
                comm,
                ..
            } => {
                let p = pid.unwrap_or_else(|| self.pid_of(tid));
                if Pid(tid.0) != p {
                    // A thread: only the filter cares.
                    if self.threads.remove(&tid).is_some() {
                        self.filter_dirty |= !self.all;
                    }
                    return Ok(());
                }
                self.machine.exit(p, time);
                // Signals to or from it come before its exit.
                if !self.pending.is_empty() {
                    let threads = &self.threads;
                    let mine: Vec<SignalKey> = self
                        .pending
                        .iter()
                        .filter(|k| {
                            k.0 == Some(p.0)
                                || threads.get(&Tid(k.1)).copied().unwrap_or(Pid(k.1)) == p
                        })
                        .copied()
                        .collect();
                    for k in mine {
                        self.flush_repeat(k)?;
                    }
                }
                let was_written = self.written.remove(&p);
                if was_written || self.tracked(p) {
                    self.stats.exits += 1;
                    let line = Line::Exit(ExitLine {
                        time: Time(time),
                        pid: p.0,
                        tid: tid.0,
                        comm,
                    });
                    self.emit(line, &[p], time)?;
                }
                // A later process with this pid is another one: describe it
                // afresh, once the lines that follow an exit (its SIGCHLD)
                // are past; and keep the set from growing for hours.
                self.forget.push_back((time, p));
                if self.recorded.remove(&p) || self.all {
                    self.filter_dirty |= !self.all;
                    self.snapshot_due.get_or_insert(SnapshotReason::Change);
                }
                if self.context.remove(&p) {
                    self.filter_dirty = true;
                }
            }
            RawEvent::Signal(raw) => self.on_signal(raw)?,
            RawEvent::Lost { time, count } => {
                self.stats.lost += count;
                eprintln!(
                    "ptree: warning: the kernel dropped {count} trace events; recorded as a `lost` line"
                );
                self.emit(
                    Line::Lost(LostLine {
                        time: Time(time),
                        count,
                    }),
                    &[],
                    time,
                )?;
                // The tree may have changed unseen: read it again.
                self.snapshot_due = Some(SnapshotReason::Resync);
            }
        }
        Ok(())
    }

    fn on_signal(&mut self, raw: RawSignal) -> Result<(), Error> {
        let target = self.pid_of(raw.target_tid);
        let sender = raw.sender_pid.filter(|p| p.0 > 0);
        if !self.tracked(target) && !sender.is_some_and(|s| self.tracked(s)) {
            return Ok(());
        }
        if !self.kernel_signals.contains(&raw.signal) {
            return Ok(());
        }
        self.stats.signals += 1;
        if raw.signal == Signal::CHLD {
            // Each child sends one: nothing to coalesce.
            return self.write_signal(&raw, 0, None);
        }
        let key: SignalKey = (
            sender.map(|s| s.0),
            raw.target_tid.0,
            raw.signal.0,
            crate::record::format::sig_code_raw(raw.code),
            raw.result,
        );
        if let Some(p) = self.repeats.get_mut(&key) {
            let within = raw.time - p.last_written < COALESCE;
            if within || p.count > 0 {
                self.pending.insert(key);
                p.count += 1;
                p.since.get_or_insert(raw.time);
                p.last = Some(raw);
                if !within {
                    // The storm goes on: this one closes the window.
                    self.flush_repeat(key)?;
                }
                return Ok(());
            }
        }
        self.write_signal(&raw, 0, None)?;
        self.repeats.insert(
            key,
            Pending {
                last_written: raw.time,
                count: 0,
                since: None,
                last: None,
            },
        );
        Ok(())
    }

    fn write_signal(
        &mut self,
        raw: &RawSignal,
        repeats: u64,
        since: Option<DateTime<Utc>>,
    ) -> Result<(), Error> {
        let target = self.pid_of(raw.target_tid);
        let mut refs = vec![target];
        if let Some(s) = raw.sender_pid.filter(|p| p.0 > 0) {
            if self.machine.get(s).is_none() {
                self.learn(s);
            }
            refs.insert(0, s);
        }
        let mut line = SignalLine::from_raw(raw);
        line.repeats = repeats;
        line.since = since.map(Time);
        self.emit(Line::Signal(line), &refs, raw.time)
    }

    /// Writes the counted repeats of one signal as one line.
    fn flush_repeat(&mut self, key: SignalKey) -> Result<(), Error> {
        self.pending.remove(&key);
        let Some(p) = self.repeats.get_mut(&key) else {
            return Ok(());
        };
        let (Some(last), count, since) = (p.last.take(), p.count, p.since.take()) else {
            return Ok(());
        };
        p.count = 0;
        p.last_written = last.time;
        self.write_signal(&last, count - 1, since.filter(|_| count > 1))
    }

    fn flush_repeats(&mut self, due: impl Fn(&Pending) -> bool) -> Result<(), Error> {
        let keys: Vec<SignalKey> = self
            .pending
            .iter()
            .filter(|k| self.repeats.get(k).is_some_and(|p| p.count > 0 && due(p)))
            .copied()
            .collect();
        for k in keys {
            self.flush_repeat(k)?;
        }
        Ok(())
    }

    /// Adds a process (and its unknown ancestors) read from `/proc`: one the
    /// events never showed (lost, or started before a resync).
    fn learn(&mut self, pid: Pid) {
        let mut cur = pid;
        for _ in 0..64 {
            if self.machine.get(cur).is_some() {
                break;
            }
            let Some(p) = proc::read_one(cur) else { break };
            let parent = p.ppid;
            self.machine.insert(p);
            if parent == Pid::NONE {
                break;
            }
            cur = parent;
        }
    }

    /// A process that matched the title joins the recording, with its
    /// ancestors as context.
    fn join(&mut self, pid: Pid) {
        self.recorded.insert(pid);
        for a in self.machine.lineage(pid).into_iter().skip(1) {
            if a == Pid::INIT || self.recorded.contains(&a) {
                break;
            }
            self.context.insert(a);
            if self.roles.of(a) == Role::Supervisor {
                break;
            }
        }
        self.filter_dirty = true;
        self.snapshot_due.get_or_insert(SnapshotReason::Change);
    }

    fn new_title_matches<'a>(&'a self, snap: &'a Snapshot) -> impl Iterator<Item = Pid> + 'a {
        let (title, how) = match &self.opts.target {
            Target::Title { title, how } => (title.as_str(), *how),
            _ => ("", TitleMatch::Exact),
        };
        snap.processes
            .iter()
            .filter(move |p| {
                !title.is_empty()
                    && p.pid != snap.reader_pid
                    && !self.recorded.contains(&p.pid)
                    && matches_title(&p.argv, title, how)
            })
            .map(|p| p.pid)
    }

    /// Writes `line`, rotating first when it does not fit, and describing
    /// first the processes it refers to that the file does not know yet.
    fn emit(&mut self, line: Line, refs: &[Pid], time: DateTime<Utc>) -> Result<(), Error> {
        self.writer.encode(&line)?;
        if !self.writer.fits() {
            self.rotate()?;
        }
        let mut described = 0;
        for &r in refs {
            described += self.ensure_described(r, time)?;
        }
        if described > 0 {
            self.writer.encode(&line)?;
        }
        self.writer.commit()
    }

    /// Writes `process` lines for `pid` and those of its ancestors the file
    /// does not describe yet, oldest first. Returns how many.
    fn ensure_described(&mut self, pid: Pid, time: DateTime<Utc>) -> Result<usize, Error> {
        if self.described.contains(&pid) || pid.0 <= 0 {
            return Ok(0);
        }
        if self.machine.get(pid).is_none() {
            self.learn(pid);
        }
        let todo: Vec<Pid> = self
            .machine
            .lineage(pid)
            .into_iter()
            .take_while(|p| !self.described.contains(p))
            .filter(|p| self.machine.get(*p).is_some())
            .collect();
        for &p in todo.iter().rev() {
            let Some(k) = self.machine.get(p) else {
                continue;
            };
            let mut process = ProcJson::from_process(&k.process);
            process.exited_at = k.exited_at.map(Time);
            let line = Line::Process(ProcessLine {
                time: Time(time),
                process,
            });
            self.writer.write(&line)?;
            self.described.insert(p);
        }
        Ok(todo.len())
    }

    fn write_header(&mut self, start: FileStart) -> Result<(), Error> {
        let selection = match &self.opts.target {
            Target::Pids(p) => SelectionLine::Pids {
                pids: p.iter().map(|p| p.0).collect(),
            },
            Target::Title { title, how } => SelectionLine::Title {
                title: title.clone(),
                exact: *how == TitleMatch::Exact,
            },
            Target::All => SelectionLine::All,
        };
        let header = Line::Header(HeaderLine {
            schema: SCHEMA.to_string(),
            ptree_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: Time(self.started_at),
            file_started_at: Time(Utc::now()),
            file_start: start,
            part: self.part,
            recorder_pid: std::process::id() as i32,
            hostname: self.hostname.clone(),
            boot_id: self.boot_id.clone(),
            selection,
            signals: self.kernel_signals.iter().map(|s| s.name()).collect(),
            via: "tracefs".to_string(),
            max_bytes: self.opts.max_bytes,
            oom_kill: self.oom_kill,
            ticks_per_second: self.ticks_per_second,
        });
        self.writer.write(&header)
    }

    /// FILE → FILE.1; the new FILE starts with a header and a snapshot.
    fn rotate(&mut self) -> Result<(), Error> {
        let end = Line::End(EndLine {
            time: Time(Utc::now()),
            reason: EndReason::Rotation,
            signal: None,
            error: None,
        });
        self.writer.write(&end)?;
        self.writer.rotate()?;
        self.part += 1;
        self.stats.files += 1;
        self.write_header(FileStart::Rotation)?;
        let snap = proc::read_snapshot()?;
        self.write_snapshot(snap, SnapshotReason::Rotation, true)
    }

    /// Refreshes the recorded set from `/proc` and writes a snapshot line.
    /// `new_file`: the snapshot opens a file, which describes nothing else.
    fn write_snapshot(
        &mut self,
        mut snap: Snapshot,
        reason: SnapshotReason,
        new_file: bool,
    ) -> Result<(), Error> {
        self.machine.resync(&snap);
        self.roles = classify(&snap);
        if !self.all {
            let mut start: Vec<Pid> = self
                .recorded
                .iter()
                .copied()
                .filter(|p| snap.get(*p).is_some())
                .collect();
            start.extend(self.new_title_matches(&snap).collect::<Vec<_>>());
            // Children whose fork was lost or not yet read.
            self.recorded = descendants(&snap, &start);
        }
        let recorded: Vec<Pid> = if self.all {
            snap.processes.iter().map(|p| p.pid).collect()
        } else {
            snap.processes
                .iter()
                .map(|p| p.pid)
                .filter(|p| self.recorded.contains(p))
                .collect()
        };
        self.context = context_ancestors(&snap, &recorded, &self.roles)
            .into_iter()
            .collect();
        let mut lineage: Vec<Pid> = recorded.clone();
        lineage.extend(self.context.iter().copied());
        let mut shown: HashSet<Pid> = recorded.iter().copied().collect();
        for &p in &recorded {
            shown.extend(snap.ancestors(p).iter().map(|a| a.pid));
        }
        shown.remove(&snap.reader_pid);
        proc::fill_details(
            &mut snap,
            &lineage,
            Details {
                stdout: true,
                stderr: true,
                ..Details::default()
            },
        );
        let fd_peers = peers::resolve(&snap, &lineage);
        let lineage_set: HashSet<Pid> = lineage.iter().copied().collect();
        self.threads.retain(|_, p| !lineage_set.contains(p));
        let mut processes = Vec::with_capacity(shown.len());
        for p in snap.processes.iter().filter(|p| shown.contains(&p.pid)) {
            let mut j = ProcJson::from_process(p);
            j.role = Some(self.roles.of(p.pid).as_str().to_string());
            if lineage_set.contains(&p.pid) {
                j.tids = tids_of(p.pid);
                for &t in &j.tids {
                    if t != p.pid.0 {
                        self.threads.insert(Tid(t), p.pid);
                    }
                }
                if let Some(fds) = &p.fds {
                    j.stdout = Some(fd_json(
                        &fds.stdout,
                        fd_peers.of(p.pid, 1),
                        fd_peers.is_unknown(p.pid, 1),
                    ));
                    j.stderr = Some(fd_json(
                        &fds.stderr,
                        fd_peers.of(p.pid, 2),
                        fd_peers.is_unknown(p.pid, 2),
                    ));
                }
            }
            processes.push(j);
        }
        let line = Line::Snapshot(SnapshotLine {
            time: Time(snap.taken_at),
            reason,
            recorded: recorded.iter().map(|p| p.0).collect(),
            processes,
        });
        self.writer.write(&line)?;
        if new_file {
            self.writer.end_preamble();
            self.described = shown;
            self.written.retain(|p| snap.get(*p).is_some());
        } else {
            self.described.extend(shown);
        }
        if !self.all {
            self.written.extend(lineage.iter().copied());
        }
        self.stats.snapshots += 1;
        self.snapshot_due = None;
        self.last_snapshot = Instant::now();
        self.filter_dirty = true;
        Ok(())
    }

    /// Points the kernel's signal filter at the recorded processes and
    /// their context, as targets and as senders.
    fn apply_filter(&mut self) -> Result<(), Error> {
        self.filter_dirty = false;
        if self.all {
            return self.inst.set_signal_filter(&[], &self.kernel_signals, true);
        }
        let mut tids: Vec<i32> = self
            .recorded
            .iter()
            .chain(self.context.iter())
            .map(|p| p.0)
            .collect();
        tids.extend(self.threads.keys().map(|t| t.0));
        tids.sort_unstable();
        tids.dedup();
        self.inst
            .set_signal_filter(&tids, &self.kernel_signals, false)
    }
}

fn event_time(ev: &RawEvent) -> DateTime<Utc> {
    match ev {
        RawEvent::Signal(s) => s.time,
        RawEvent::Fork { time, .. }
        | RawEvent::Exec { time, .. }
        | RawEvent::Exit { time, .. }
        | RawEvent::Lost { time, .. } => *time,
    }
}

/// `pids` and every descendant of them in `snap`.
pub fn descendants(snap: &Snapshot, pids: &[Pid]) -> HashSet<Pid> {
    let children = snap.children_map();
    let mut out: HashSet<Pid> = HashSet::new();
    let mut stack: Vec<Pid> = pids.to_vec();
    while let Some(p) = stack.pop() {
        if p == snap.reader_pid || !out.insert(p) {
            continue;
        }
        stack.extend(children.get(&p).into_iter().flatten());
    }
    out
}

/// Ancestors watched for context: up to the supervisor, never PID 1 (as
/// who-killed watches).
pub fn context_ancestors(snapshot: &Snapshot, targets: &[Pid], roles: &Roles) -> Vec<Pid> {
    let target_set: HashSet<Pid> = targets.iter().copied().collect();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for &t in targets {
        for a in snapshot.ancestors(t) {
            if a.pid == Pid::INIT {
                break;
            }
            if target_set.contains(&a.pid) {
                continue;
            }
            // An ancestor already walked: so were its own ancestors.
            if !seen.insert(a.pid) {
                break;
            }
            out.push(a.pid);
            if roles.of(a.pid) == Role::Supervisor {
                break;
            }
        }
    }
    out
}

/// Every thread id of a process.
fn tids_of(pid: Pid) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{}/task", pid.0))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    if v.is_empty() {
        v.push(pid.0);
    }
    v.sort_unstable();
    v
}

fn read_argv(pid: Pid) -> Option<Argv> {
    std::fs::read(format!("/proc/{}/cmdline", pid.0))
        .ok()
        .map(|b| Argv::from_cmdline(&b))
        .filter(|a| !a.is_empty())
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `field == 12 || (field >= 20 && field <= 29)`: runs of ids as ranges.
fn id_terms(field: &str, sorted: &[i32]) -> String {
    let mut ranges: Vec<(i32, i32)> = Vec::new();
    for &id in sorted {
        match ranges.last_mut() {
            Some(last) if id == last.1 + 1 => last.1 = id,
            _ => ranges.push((id, id)),
        }
    }
    ranges
        .iter()
        .map(|&(lo, hi)| match hi - lo {
            0 => format!("{field} == {lo}"),
            1 => format!("{field} == {lo} || {field} == {hi}"),
            _ => format!("({field} >= {lo} && {field} <= {hi})"),
        })
        .collect::<Vec<_>>()
        .join(" || ")
}

fn signal_terms(signals: &[Signal]) -> String {
    signals
        .iter()
        .map(|s| format!("sig == {}", s.0))
        .collect::<Vec<_>>()
        .join(" || ")
}

/// Signals to or from these threads (`pid` is the target of
/// `signal_generate`, `common_pid` the task generating it); `None` when
/// there are none or the expression would be too long.
pub fn target_or_sender_filter(sorted_tids: &[i32], signals: &[Signal]) -> Option<String> {
    if sorted_tids.is_empty() {
        return None;
    }
    let expr = format!(
        "(({}) || ({})) && ({})",
        id_terms("pid", sorted_tids),
        id_terms("common_pid", sorted_tids),
        signal_terms(signals)
    );
    (expr.len() <= MAX_FILTER_LEN).then_some(expr)
}

/// One `write(2)` of the whole expression: tracefs parses each write alone.
fn write_filter(instance: &Path, expr: &str) -> Result<(), Error> {
    let path = instance.join("events/signal/signal_generate/filter");
    let mut f = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let n = f.write(expr.as_bytes()).map_err(|e| Error::io(&path, e))?;
    if n != expr.len() {
        return Err(Error::Tracefs {
            what: path.display().to_string(),
            message: "short write of the filter".into(),
            hint: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Delivery, SigCode, Via};
    use crate::record::read::{Item, parse_file};
    use std::collections::VecDeque;

    /// Hands out prepared batches, then nothing.
    struct Script(VecDeque<Vec<RawEvent>>);

    impl EventSource for Script {
        fn read_events(&mut self, timeout: Duration) -> Result<Vec<RawEvent>, Error> {
            match self.0.pop_front() {
                Some(batch) => Ok(batch),
                None => {
                    std::thread::sleep(timeout.min(Duration::from_millis(20)));
                    Ok(Vec::new())
                }
            }
        }
        fn set_signal_filter(&mut self, _: &[i32], _: &[Signal], _: bool) -> Result<(), Error> {
            Ok(())
        }
    }

    /// A child to record, killed on drop.
    struct Sleeper(std::process::Child);

    impl Sleeper {
        fn start() -> Sleeper {
            Sleeper(
                std::process::Command::new("sleep")
                    .arg("30")
                    .spawn()
                    .expect("sleep"),
            )
        }
        fn pid(&self) -> i32 {
            self.0.id() as i32
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Records `target` (no root needed: the source is scripted) and
    /// returns the file's items.
    fn record_script(target: i32, batches: Vec<Vec<RawEvent>>) -> (Stats, Vec<Item>) {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("rec.jsonl");
        let opts = RecordOptions {
            target: Target::Pids(vec![Pid(target)]),
            out: out.clone(),
            max_bytes: None,
            duration: Some(Duration::from_millis(300)),
            signals: Signal::default_watch_set(),
            buffer_size_kb: 64,
        };
        let stats = record_from(Box::new(Script(batches.into())), opts).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let (summary, items) = parse_file(&out, &bytes).unwrap();
        assert_eq!(summary.garbage, 0);
        assert!(summary.closed, "an end line");
        (stats, items)
    }

    fn signal(time: DateTime<Utc>, from: i32, to: i32, sig: Signal) -> RawEvent {
        RawEvent::Signal(RawSignal {
            time,
            signal: sig,
            code: SigCode::User,
            result: Delivery::Ignored,
            group: false,
            sender_tid: Some(Tid(from)),
            sender_pid: Some(Pid(from)),
            sender_comm: Some("node".into()),
            target_tid: Tid(to),
            target_comm: "node".into(),
            value: None,
            via: Via::Tracefs,
        })
    }

    #[test]
    fn a_kernel_overrun_is_a_lost_line() {
        let t = Utc::now();
        let target = Sleeper::start();
        let (stats, items) = record_script(
            target.pid(),
            vec![vec![RawEvent::Lost { time: t, count: 7 }]],
        );
        assert_eq!(stats.lost, 7);
        assert!(matches!(items[0], Item::Header(_)));
        assert!(matches!(items[1], Item::Snapshot(_)));
        let lost: Vec<u64> = items
            .iter()
            .filter_map(|i| match i {
                Item::Event {
                    event: RawEvent::Lost { count, .. },
                    ..
                } => Some(*count),
                _ => None,
            })
            .collect();
        assert_eq!(lost, [7]);
    }

    #[test]
    fn a_childs_life_and_a_signal_storm() {
        let target = Sleeper::start();
        let me = target.pid();
        // A pid that does not exist: the child is gone before it is read.
        let child = 0x3fff_fff0;
        let t = Utc::now();
        let ms = |n: i64| t + chrono::Duration::milliseconds(n);
        let mut batch = vec![
            RawEvent::Fork {
                time: ms(0),
                parent_tid: Tid(me),
                parent_pid: Some(Pid(me)),
                child_tid: Tid(child),
                child_pid: None,
                comm: "test".into(),
            },
            RawEvent::Exec {
                time: ms(1),
                pid: Pid(child),
                filename: "/bin/true".into(),
                comm: None,
            },
        ];
        // 100 identical ignored SIGPIPEs within 100 ms.
        for n in 0..100 {
            batch.push(signal(ms(2 + n), child, child, Signal::PIPE));
        }
        batch.push(RawEvent::Exit {
            time: ms(200),
            tid: Tid(child),
            pid: Some(Pid(child)),
            comm: "true".into(),
            status: None,
        });
        let (stats, items) = record_script(me, vec![batch]);
        assert_eq!(stats.forks, 1);
        let lines: Vec<&RawEvent> = items
            .iter()
            .filter_map(|i| match i {
                Item::Event { event, .. } => Some(event),
                _ => None,
            })
            .collect();
        assert!(matches!(
            lines[0],
            RawEvent::Fork { child_pid: Some(p), .. } if p.0 == child
        ));
        let argv = items.iter().find_map(|i| match i {
            Item::Event {
                event: RawEvent::Exec { .. },
                argv,
                ..
            } => argv.clone(),
            _ => None,
        });
        assert_eq!(argv.unwrap().0, vec![b"/bin/true".to_vec()]);
        // The storm: the first signal, then one line standing for the
        // other 99, written before the exit.
        let repeats: Vec<u64> = items
            .iter()
            .filter_map(|i| match i {
                Item::Event {
                    event: RawEvent::Signal(_),
                    repeats,
                    ..
                } => Some(*repeats),
                _ => None,
            })
            .collect();
        assert_eq!(repeats, [0, 98]);
        assert!(matches!(lines.last(), Some(RawEvent::Exit { .. })));
    }

    #[test]
    fn filters_name_targets_and_senders() {
        let f =
            target_or_sender_filter(&[5, 7, 8, 10, 11, 12], &[Signal::TERM, Signal::CHLD]).unwrap();
        assert_eq!(
            f,
            "((pid == 5 || pid == 7 || pid == 8 || (pid >= 10 && pid <= 12)) || \
             (common_pid == 5 || common_pid == 7 || common_pid == 8 || \
             (common_pid >= 10 && common_pid <= 12))) && (sig == 15 || sig == 17)"
        );
        assert_eq!(target_or_sender_filter(&[], &[Signal::TERM]), None);
        let many: Vec<i32> = (0..1000).map(|i| 1000 + i * 2).collect();
        assert_eq!(target_or_sender_filter(&many, &[Signal::TERM]), None);
    }
}
