//! `who-killed --from FILE…`: the live watch's answer, from a recording.
//!
//! The recording is replayed through the same machinery as the live
//! loop: [`LiveTable`] from the first snapshot, `table.apply` for fork,
//! exec and exit, [`enrich`] for each signal at its place in the stream,
//! and [`verdicts`] with the readers the recorder resolved. The printing
//! is the live command's own.
//!
//! Where live reads `/proc` (a sender's command line, whether a process is
//! dead), the replay uses what the recorder wrote: `process` lines, later
//! snapshots, and the SIGCHLD that follows an exit.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::analysis::roles::{Role, Roles};
use crate::analysis::title::{TitleMatch, matches_title};
use crate::cmd::who_killed::{Printer, WhoKilledArgs, inferred_status, signal_set};
use crate::cmd::{FAILED, OK};
use crate::error::Error;
use crate::event::{RawEvent, SigCode, Signal};
use crate::model::{Argv, Pid, Process};
use crate::record::read::{Item, RecordedSnapshot, Recording, read_recordings};
use crate::record::recorder::context_ancestors;
use crate::watch::enrich;
use crate::watch::record::{ExitRecord, Record, SignalRecord};
use crate::watch::table::LiveTable;
use crate::watch::verdict::{Context, verdicts};

/// How far after an exit to look for the SIGCHLD that says how it ended
/// (it is generated right after the exit tracepoint).
const CHLD_LOOKAHEAD_MS: i64 = 200;

/// How long after the last watched exit the replay goes on, as the live
/// loop finishes its batch (verdicts look 50 ms past an exit).
const TAIL_MS: i64 = 50;

/// Applies a snapshot line to the table: the first one creates it, later
/// ones add the processes the events did not show.
pub fn apply_snapshot(table: &mut Option<LiveTable>, snap: &RecordedSnapshot) {
    match table {
        None => *table = Some(LiveTable::new(snap.snapshot.clone())),
        Some(t) => {
            // Only what the table does not know: a later snapshot shows
            // orphans reparented to PID 1, and the verdicts need the tree
            // as it was when the signals flew (live never re-reads it
            // either).
            for p in &snap.snapshot.processes {
                if t.get(p.pid).is_none() {
                    t.insert(p.clone());
                }
            }
        }
    }
    if let Some(t) = table {
        for (pid, tids) in &snap.tids {
            for &tid in tids {
                if tid.0 != pid.0 {
                    t.map_thread(tid, *pid);
                }
            }
        }
    }
}

/// Applies a `process` line (a sender or an ancestor of one).
pub fn apply_process(
    table: &mut Option<LiveTable>,
    process: &Process,
    exited_at: Option<DateTime<Utc>>,
) {
    let Some(t) = table else {
        return;
    };
    if t.get(process.pid).is_some_and(|e| e.exited_at.is_some()) {
        return;
    }
    t.insert(process.clone());
    if let Some(at) = exited_at {
        t.mark_exited(process.pid, at);
    }
}

/// Applies a lifecycle event with the command line the recorder read.
pub fn apply_event(table: &mut LiveTable, event: &RawEvent, argv: &Option<Argv>) {
    table.apply(event, &mut |_| argv.clone());
}

/// The SIGCHLD code (1 exited, 2 killed, 3 dumped) of `pid`'s exit, from
/// the lines right after `items[from]`.
pub fn chld_code_after(
    items: &[Item],
    from: usize,
    pid: Pid,
    table: &LiveTable,
    exit_time: DateTime<Utc>,
) -> Option<i32> {
    let until = exit_time + Duration::milliseconds(CHLD_LOOKAHEAD_MS);
    for item in items.iter().skip(from + 1).take(10_000) {
        if item.time().is_some_and(|t| t > until) {
            break;
        }
        if let Item::Event {
            event: RawEvent::Signal(raw),
            ..
        } = item
            && raw.signal == Signal::CHLD
            && raw.sender_pid.or(raw.sender_tid.map(|t| table.pid_of(t))) == Some(pid)
            && let SigCode::Other(c) = raw.code
        {
            return Some(c);
        }
    }
    None
}

/// Says on stderr what was read and what was wrong with it.
pub fn describe_recording(rec: &Recording) {
    let span = rec
        .span()
        .map(|(a, b)| {
            format!(
                "{} to {}",
                a.to_rfc3339_opts(SecondsFormat::Secs, true),
                b.to_rfc3339_opts(SecondsFormat::Secs, true)
            )
        })
        .unwrap_or_default();
    let host = rec
        .headers()
        .next()
        .map(|h| format!(" on {}", h.hostname))
        .unwrap_or_default();
    eprintln!(
        "ptree: replaying {} file{} recorded{host} {span}",
        rec.files.len(),
        if rec.files.len() == 1 { "" } else { "s" }
    );
    for f in &rec.files {
        if f.truncated {
            eprintln!(
                "ptree: note: {} ends with a cut line (its recorder was killed); ignored",
                f.path.display()
            );
        }
        if f.garbage > 0 {
            eprintln!(
                "ptree: warning: {}: {} unreadable line{} skipped",
                f.path.display(),
                f.garbage,
                if f.garbage == 1 { "" } else { "s" }
            );
        }
    }
    for (time, count) in rec.losses() {
        eprintln!(
            "ptree: warning: the kernel dropped {count} trace events at {}; the replay may miss some",
            time.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
    }
}

/// What `who-killed --from` was asked about.
enum Wanted {
    Pids(Vec<Pid>),
    Title { title: String, how: TitleMatch },
}

/// The replay's state, mirroring the live loop's variables.
struct Replay {
    table: Option<LiveTable>,
    wanted: Wanted,
    wanted_signals: Vec<Signal>,
    /// Targets found so far.
    targets: Vec<Pid>,
    ancestors: usize,
    watched: HashSet<Pid>,
    victims: Vec<Pid>,
    exited: HashSet<Pid>,
    /// Victims a snapshot listed as recorded: a later snapshot without
    /// them means they are gone.
    listed: HashSet<Pid>,
    readers: HashMap<Pid, Vec<Pid>>,
    child_status: HashMap<Pid, i32>,
    signals: Vec<SignalRecord>,
    exits: Vec<ExitRecord>,
    oom_kills: u64,
    printer: Printer,
}

impl Replay {
    fn pending(&self) -> bool {
        match &self.wanted {
            Wanted::Pids(p) => p.iter().any(|p| !self.targets.contains(p)),
            Wanted::Title { .. } => self.targets.is_empty(),
        }
    }

    /// Starts watching `new` targets with their context ancestors, as the
    /// live command does when it starts.
    fn activate(&mut self, new: Vec<Pid>, lineage: Vec<Pid>) {
        self.ancestors += lineage.len();
        for &p in new.iter().chain(&lineage) {
            self.watched.insert(p);
        }
        for p in new {
            if !self.victims.contains(&p) {
                self.victims.push(p);
            }
            self.targets.push(p);
        }
    }

    fn on_snapshot(&mut self, snap: &RecordedSnapshot) {
        apply_snapshot(&mut self.table, snap);
        // Victims a previous snapshot listed and this one does not: gone,
        // as live's liveness check would find.
        let gone: Vec<Pid> = self
            .victims
            .iter()
            .copied()
            .filter(|v| {
                !self.exited.contains(v)
                    && self.listed.contains(v)
                    && snap.snapshot.get(*v).is_none()
            })
            .collect();
        for v in gone {
            self.exit(v, snap.time, None);
        }
        let new: Vec<Pid> = match &self.wanted {
            Wanted::Pids(pids) => pids
                .iter()
                .copied()
                .filter(|p| !self.targets.contains(p) && snap.snapshot.get(*p).is_some())
                .collect(),
            Wanted::Title { title, how } if self.targets.is_empty() => snap
                .snapshot
                .processes
                .iter()
                .filter(|p| matches_title(&p.argv, title, *how))
                .map(|p| p.pid)
                .collect(),
            Wanted::Title { .. } => Vec::new(),
        };
        if !new.is_empty() {
            let roles = Roles(snap.roles.clone());
            let lineage = context_ancestors(&snap.snapshot, &new, &roles);
            self.activate(new, lineage);
        }
        for &p in &snap.recorded {
            if self.victims.contains(&p) {
                self.listed.insert(p);
            }
        }
        for &p in &self.watched {
            if !self.readers.contains_key(&p)
                && let Some(r) = snap.readers(p)
            {
                self.readers.insert(p, r);
            }
        }
    }

    /// A target that appears through an event: its context from the
    /// table, up to the supervisor.
    fn activate_from_table(&mut self, new: Vec<Pid>) {
        let Some(table) = self.table.as_mut() else {
            return;
        };
        let mut lineage = Vec::new();
        for &t in &new {
            for a in table.ancestors(t) {
                if a == Pid::INIT {
                    break;
                }
                if new.contains(&a) || lineage.contains(&a) {
                    continue;
                }
                lineage.push(a);
                if table.role(a) == Role::Supervisor {
                    break;
                }
            }
        }
        self.activate(new, lineage);
    }

    fn exit(&mut self, pid: Pid, time: DateTime<Utc>, chld: Option<i32>) {
        let Some(table) = self.table.as_mut() else {
            return;
        };
        if let Some(c) = chld {
            self.child_status.insert(pid, c);
        }
        let st = inferred_status(pid, &self.child_status, &self.signals);
        let rec = ExitRecord::with_how(time, pid, st, self.child_status.get(&pid) == Some(&1));
        self.exited.insert(pid);
        table.mark_exited(pid, time);
        self.printer.line(&Record::Exit(rec.clone()), table);
        self.exits.push(rec);
    }

    fn on_event(
        &mut self,
        items: &[Item],
        i: usize,
        event: &RawEvent,
        argv: &Option<Argv>,
        repeats: (u64, Option<DateTime<Utc>>),
    ) {
        let Some(table) = self.table.as_mut() else {
            return;
        };
        match event {
            RawEvent::Fork {
                parent_tid,
                parent_pid,
                child_tid,
                child_pid,
                ..
            } => {
                let parent = parent_pid.unwrap_or_else(|| table.pid_of(*parent_tid));
                apply_event(table, event, argv);
                let child = child_pid.unwrap_or(Pid(child_tid.0));
                let new_thread = child == parent;
                if !new_thread && self.victims.contains(&parent) && !self.watched.contains(&child) {
                    self.watched.insert(child);
                    self.victims.push(child);
                }
                if !new_thread
                    && let Wanted::Pids(p) = &self.wanted
                    && p.contains(&child)
                    && !self.targets.contains(&child)
                {
                    self.activate_from_table(vec![child]);
                }
            }
            RawEvent::Exec { pid, .. } => {
                apply_event(table, event, argv);
                if let Wanted::Title { title, how } = &self.wanted
                    && self.targets.is_empty()
                    && argv.as_ref().is_some_and(|a| matches_title(a, title, *how))
                {
                    let pid = *pid;
                    self.activate_from_table(vec![pid]);
                }
            }
            RawEvent::Signal(raw) => {
                if raw.signal == Signal::CHLD && !self.wanted_signals.contains(&Signal::CHLD) {
                    if let Some(child) = raw.sender_pid.or(raw.sender_tid.map(|t| table.pid_of(t)))
                        && let SigCode::Other(c) = raw.code
                    {
                        self.child_status.insert(child, c);
                    }
                    return;
                }
                if !self.wanted_signals.contains(&raw.signal) {
                    return;
                }
                let rec = enrich(raw, table);
                if !self.watched.contains(&rec.target.pid) {
                    return;
                }
                // A coalesced storm goes through the printer signal by
                // signal, so it folds the run as live does: the first one
                // (at `since`), then a count ending at this line's time.
                let (count, since) = repeats;
                if count > 0 {
                    let mut first = rec.clone();
                    first.time = since.unwrap_or(rec.time);
                    let first = Record::Signal(first);
                    for _ in 0..count {
                        self.printer.line(&first, table);
                    }
                }
                self.printer.line(&Record::Signal(rec.clone()), table);
                self.signals.push(rec);
            }
            RawEvent::Exit { time, tid, pid, .. } => {
                let p = pid.unwrap_or_else(|| table.pid_of(*tid));
                apply_event(table, event, argv);
                if Pid(tid.0) == p && self.victims.contains(&p) && !self.exited.contains(&p) {
                    let chld = chld_code_after(items, i, p, table, *time);
                    self.exit(p, *time, chld);
                }
            }
            RawEvent::Lost { count, .. } => {
                eprintln!(
                    "ptree: warning: the kernel dropped {count} trace events; the report may miss some"
                );
            }
        }
    }
}

/// Runs `who-killed --from`.
pub fn who_killed_from(args: &WhoKilledArgs) -> Result<u8, Error> {
    let rec = read_recordings(&args.from)?;
    describe_recording(&rec);
    let wanted = if let Some(t) = &args.title {
        Wanted::Title {
            title: t.clone(),
            how: if args.exact {
                TitleMatch::Exact
            } else {
                TitleMatch::Prefix
            },
        }
    } else if args.pids.is_empty() {
        return Err(Error::Usage(
            "name the processes to look for: PID… or --title T".into(),
        ));
    } else {
        Wanted::Pids(args.pids.iter().map(|&p| Pid(p)).collect())
    };
    let wanted_signals = signal_set(args)?;
    if let Some(h) = rec.headers().next() {
        let missing: Vec<String> = wanted_signals
            .iter()
            .filter(|s| !h.signals.contains(s))
            .map(|s| s.name())
            .collect();
        if !missing.is_empty() && !args.all {
            eprintln!(
                "ptree: note: the recording does not hold {}",
                missing.join(", ")
            );
        }
    }
    let mut r = Replay {
        table: None,
        wanted,
        wanted_signals,
        targets: Vec::new(),
        ancestors: 0,
        watched: HashSet::new(),
        victims: Vec::new(),
        exited: HashSet::new(),
        listed: HashSet::new(),
        readers: HashMap::new(),
        child_status: HashMap::new(),
        signals: Vec::new(),
        exits: Vec::new(),
        oom_kills: 0,
        printer: Printer::buffered(args.json),
    };
    let mut stop_after: Option<DateTime<Utc>> = None;
    for (i, item) in rec.items.iter().enumerate() {
        if let (Some(stop), Some(t)) = (stop_after, item.time())
            && t > stop
        {
            break;
        }
        match item {
            Item::Header(_) | Item::End { .. } => {}
            Item::Snapshot(s) => r.on_snapshot(s),
            Item::Process {
                process, exited_at, ..
            } => apply_process(&mut r.table, process, *exited_at),
            Item::Event {
                event,
                argv,
                repeats,
                since,
            } => r.on_event(&rec.items, i, event, argv, (*repeats, *since)),
            Item::Oom { delta, .. } => {
                if !r.victims.is_empty() {
                    r.oom_kills += delta;
                }
            }
        }
        if stop_after.is_none()
            && !r.victims.is_empty()
            && !r.pending()
            && r.victims.iter().all(|v| r.exited.contains(v))
        {
            let last = r.exits.iter().map(|e| e.time).max();
            stop_after = last.map(|t| t + Duration::milliseconds(TAIL_MS));
        }
    }
    if let Wanted::Pids(pids) = &r.wanted {
        for p in pids.iter().filter(|p| !r.targets.contains(p)) {
            eprintln!("ptree: pid {p} does not appear in the recording");
        }
    }
    if r.targets.is_empty() {
        if let Wanted::Title { title, .. } = &r.wanted {
            eprintln!("ptree: no recorded process matches --title {title}");
        }
        return Ok(FAILED);
    }
    r.printer.flush();
    let Some(mut table) = r.table.take() else {
        return Ok(FAILED);
    };
    let ctx = Context {
        readers: r.readers.clone(),
        oom_kills: r.oom_kills,
        invisible_kills: HashSet::new(),
    };
    for v in verdicts(&r.signals, &r.exits, &r.victims, &mut table, &ctx) {
        r.printer.line(&Record::Verdict(v), &mut table);
    }
    r.printer.flush();
    let alive = r.victims.iter().filter(|v| !r.exited.contains(v)).count();
    eprintln!(
        "ptree: watched {} process{} and {} ancestor{} in the recording",
        r.targets.len(),
        if r.targets.len() == 1 { "" } else { "es" },
        r.ancestors,
        if r.ancestors == 1 { "" } else { "s" }
    );
    if alive > 0 {
        eprintln!(
            "ptree: the recording ends with {alive} of {} watched processes alive",
            r.victims.len()
        );
    }
    let found = r.signals.iter().any(|s| r.targets.contains(&s.target.pid))
        || r.exits.iter().any(|e| r.targets.contains(&e.pid));
    Ok(if found { OK } else { FAILED })
}
