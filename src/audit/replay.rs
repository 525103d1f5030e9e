//! Audit events → the records of `who-killed` (docs/who-killed.md), after
//! the fact.
//!
//! The live watch builds its process table from a snapshot and the fork,
//! exec and exit events it sees. Here the table is built from what the
//! audit log recorded about each sender (pid, ppid, comm, exe, proctitle)
//! and each target (pid, comm), completed by the processes still alive
//! now; then the same [`enrich`] and [`verdicts`] run on it, so that the
//! answer has the same records and meanings as the live one.
//!
//! What the log cannot say, and what is done instead:
//!
//! - How the target ended: audit records the signal syscall, not the
//!   death. No `exit` record is made up; the verdict is about the last
//!   signal to it that could have ended it, and is given only if the
//!   target is gone now.
//! - The target's parent, unless the target is still in `/proc` (alive or
//!   a zombie) or sent a signal itself: OBJ_PID has no ppid. Without it a
//!   signal from the parent cannot be told from one from a stranger, and a
//!   `manual-kill` verdict says so.
//! - Who read the target's output: `exec-maxbuffer` is found only when
//!   that reader and the victim's lineage are still alive to be looked at
//!   (the caller passes their peers in [`Context::readers`]).
//!
//! Pure: events and the processes alive now in, records out.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use super::{AuditProcess, AuditSignal, AuditTarget, Proctitle};
use crate::event::Signal;
use crate::model::{Argv, Pid, Process, Snapshot};
use crate::watch::enrich;
use crate::watch::record::{ExitRecord, SignalRecord, VerdictKind, VerdictRecord};
use crate::watch::table::LiveTable;
use crate::watch::verdict::{Context, verdicts};

/// How long before the last fatal signal the log is read again for the
/// signals that led to it: verdicts follow a forwarder back up to 10 s per
/// step, so this covers a chain of six.
pub const CONTEXT_BEFORE: Duration = Duration::seconds(60);

/// A process seen alive now is the one the log names if it started before
/// the event, give or take this much: start times come from boot time in
/// whole seconds plus clock ticks.
const START_SLACK: Duration = Duration::seconds(2);

/// Whether the target is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// Still running: the signals seen did not end it.
    Alive,
    /// A zombie, gone from `/proc`, or its pid now names a newer process.
    Gone,
}

/// The log's signals to one process, described as live who-killed would.
#[derive(Debug)]
pub struct Replay {
    target: Pid,
    table: LiveTable,
    /// Every signal of the events given, enriched, in time order.
    signals: Vec<SignalRecord>,
    state: TargetState,
    /// Processes of the table described by `/proc` now.
    live: HashSet<Pid>,
}

impl Replay {
    /// `events` are the signals concerning `target` and any context (they
    /// may overlap: duplicates are dropped); `now` the processes alive
    /// now; `wanted` the signals to report, as live who-killed's
    /// `--signals`.
    pub fn new(
        target: Pid,
        mut events: Vec<AuditSignal>,
        now: &Snapshot,
        wanted: &[Signal],
    ) -> Replay {
        events.sort_by_key(|a| (a.time, a.serial));
        events.dedup_by(|a, b| (a.time, a.serial, &a.node) == (b.time, b.serial, &b.node));
        let events = involving(target, events);
        let (mut table, live) = build_table(&events, now);
        let mut signals = Vec::new();
        for event in &events {
            // One raw signal per OBJ_PID target, in the same order.
            for (raw, t) in event.to_raw_signals().iter().zip(&event.targets) {
                if !wanted.contains(&raw.signal) {
                    continue;
                }
                if raw.target_tid.0 != t.pid.0 {
                    table.map_thread(raw.target_tid, t.pid);
                }
                signals.push(enrich(raw, &mut table));
            }
        }
        let last = signals
            .iter()
            .filter(|s| s.target.pid == target)
            .map(|s| s.time)
            .max();
        let state = match (now.get(target), last) {
            (Some(p), Some(t)) if same_process(p, t) && !p.is_zombie() => TargetState::Alive,
            (Some(p), None) if !p.is_zombie() => TargetState::Alive,
            _ => TargetState::Gone,
        };
        Replay {
            target,
            table,
            signals,
            state,
            live,
        }
    }

    pub fn target(&self) -> Pid {
        self.target
    }

    pub fn state(&self) -> TargetState {
        self.state
    }

    /// The table, for printing records.
    pub fn table_mut(&mut self) -> &mut LiveTable {
        &mut self.table
    }

    /// The signals sent to the target, in time order.
    pub fn target_signals(&self) -> impl Iterator<Item = &SignalRecord> {
        self.signals.iter().filter(|s| s.target.pid == self.target)
    }

    /// The last signal to the target that could have ended it.
    pub fn last_fatal(&self) -> Option<&SignalRecord> {
        self.target_signals().filter(|s| fatal(s.signal)).last()
    }

    /// The target and its known ancestors that are alive now and are the
    /// processes the log names: whose output readers can still be looked
    /// up in `/proc`.
    pub fn live_lineage(&self) -> Vec<Pid> {
        let mut lineage = vec![self.target];
        lineage.extend(self.table.ancestors(self.target));
        lineage.retain(|p| self.live.contains(p));
        lineage
    }

    /// Who killed the target, by the rules of live who-killed, if it is
    /// gone and a signal that could have ended it was seen.
    pub fn verdict(&mut self, ctx: &Context) -> Option<VerdictRecord> {
        if self.state == TargetState::Alive {
            return None;
        }
        // Not reported: the log does not say how it ended.
        let died = ExitRecord::new(self.last_fatal()?.time, self.target, None);
        let mut verdict =
            verdicts(&self.signals, &[died], &[self.target], &mut self.table, ctx).pop()?;
        if verdict.kind == VerdictKind::ManualKill && self.table.parent(self.target).is_none() {
            verdict.explanation.push_str(&format!(
                "; the audit log does not say who {}'s parent was (it is gone and sent no signal): \
                 if that was the sender, its parent forwarded the signal",
                self.target
            ));
        }
        Some(verdict)
    }

    /// What to print: the signals to the target and, when a verdict names
    /// a chain, the signals between the processes of that chain, in time
    /// order.
    pub fn report(&self, verdict: Option<&VerdictRecord>) -> Vec<SignalRecord> {
        let chain: HashSet<Pid> = verdict
            .map(|v| v.chain.iter().copied().collect())
            .unwrap_or_default();
        self.signals
            .iter()
            .filter(|s| {
                s.target.pid == self.target
                    || (chain.contains(&s.target.pid)
                        && s.sender.as_ref().is_some_and(|x| chain.contains(&x.pid)))
            })
            .cloned()
            .collect()
    }
}

/// The window to read again around the last fatal signal at `time`.
pub fn context_window(time: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (time - CONTEXT_BEFORE, time + Duration::milliseconds(100))
}

/// The events that can matter to `target`'s story: those that reached
/// it, those that reached a process that signalled one of these (a
/// forwarder, followed back as far as the events go), and the other
/// signals sent by such processes and by their ancestors (what the log
/// says of them). A minute of context on a busy machine is thousands of
/// unrelated events.
fn involving(target: Pid, events: Vec<AuditSignal>) -> Vec<AuditSignal> {
    let mut keep = vec![false; events.len()];
    // Senders, and receivers of what they sent.
    let mut involved: HashSet<Pid> = HashSet::from([target]);
    grow(&events, &mut keep, &mut involved, false, |e, set| {
        set.contains(&e.sender.pid) || e.targets.iter().any(|t| set.contains(&t.pid))
    });
    // Their ancestors, as far as the log names them.
    let mut ancestors: HashSet<Pid> = events
        .iter()
        .zip(&keep)
        .filter(|(_, kept)| **kept)
        .filter_map(|(e, _)| e.sender.ppid)
        .collect();
    grow(&events, &mut keep, &mut ancestors, true, |e, set| {
        set.contains(&e.sender.pid)
    });
    events
        .into_iter()
        .zip(keep)
        .filter_map(|(event, keep)| keep.then_some(event))
        .collect()
}

/// Keeps every event `takes` for `set`, adding the sender of each kept
/// event (and its parent, `with_parent`) to `set`, until nothing changes.
fn grow(
    events: &[AuditSignal],
    keep: &mut [bool],
    set: &mut HashSet<Pid>,
    with_parent: bool,
    takes: impl Fn(&AuditSignal, &HashSet<Pid>) -> bool,
) {
    loop {
        let known = set.len();
        for (event, kept) in events.iter().zip(keep.iter_mut()) {
            if !*kept && takes(event, set) {
                *kept = true;
                set.insert(event.sender.pid);
                if with_parent && let Some(ppid) = event.sender.ppid {
                    set.insert(ppid);
                }
            }
        }
        if set.len() == known {
            break;
        }
    }
}

/// As the verdicts count them: anything but SIGCHLD, SIGCONT, SIGURG,
/// SIGWINCH and the existence probe.
fn fatal(signal: Signal) -> bool {
    !matches!(signal.0, 0 | 17 | 18 | 23 | 28)
}

/// Whether `live` (from `/proc` now) is the process the log saw at `time`.
fn same_process(live: &Process, time: DateTime<Utc>) -> bool {
    live.start_time <= time + START_SLACK
}

/// The processes alive now, with those the log describes better (gone,
/// or their pid reused since) replaced by what the log says; and the pids
/// still described by `/proc`.
fn build_table(events: &[AuditSignal], now: &Snapshot) -> (LiveTable, HashSet<Pid>) {
    let mut logged: HashMap<Pid, Process> = HashMap::new();
    let mut matched: HashSet<Pid> = HashSet::new();
    for event in events {
        let sightings = std::iter::once(Sighting::Sender(&event.sender))
            .chain(event.sender.ppid.map(Sighting::Parent))
            .chain(event.targets.iter().map(Sighting::Target));
        for sighting in sightings {
            let pid = sighting.pid();
            let live = now.get(pid);
            if live.is_some_and(|p| same_process(p, event.time)) {
                matched.insert(pid);
                continue;
            }
            if matches!(sighting, Sighting::Parent(_)) && live.is_none() {
                // Nothing to say of it but its pid, which the sender's
                // ppid already says.
                continue;
            }
            sighting.describe(
                logged
                    .entry(pid)
                    .or_insert_with(|| unknown(pid, event.time)),
            );
        }
    }
    // A pid seen both before and after its reuse: the live process wins,
    // since the latest signals were about it.
    logged.retain(|pid, _| !matched.contains(pid));
    let mut processes: Vec<Process> = now
        .processes
        .iter()
        .filter(|p| !logged.contains_key(&p.pid))
        .cloned()
        .collect();
    let live: HashSet<Pid> = processes.iter().map(|p| p.pid).collect();
    processes.extend(logged.into_values());
    let snapshot = Snapshot::new(
        processes,
        now.taken_at,
        now.ticks_per_second,
        now.reader_pid,
    );
    (LiveTable::new(snapshot), live)
}

/// A process as one event shows it.
enum Sighting<'a> {
    Sender(&'a AuditProcess),
    /// The sender's parent: alive then, known by its pid alone.
    Parent(Pid),
    Target(&'a AuditTarget),
}

impl Sighting<'_> {
    fn pid(&self) -> Pid {
        match self {
            Sighting::Sender(s) => s.pid,
            Sighting::Parent(pid) => *pid,
            Sighting::Target(t) => t.pid,
        }
    }

    /// Updates what is known of the process; later sightings win.
    fn describe(&self, p: &mut Process) {
        match self {
            Sighting::Sender(s) => {
                if let Some(ppid) = s.ppid {
                    p.ppid = ppid;
                }
                p.comm = s.comm.clone();
                p.argv = match &s.proctitle {
                    Proctitle::Argv(argv) => argv.clone(),
                    // ausearch -i joined the arguments: split them back
                    // as well as can be, for the program name.
                    Proctitle::Joined(text) => Argv(
                        text.split(|&b| b == b' ')
                            .filter(|a| !a.is_empty())
                            .map(<[u8]>::to_vec)
                            .collect(),
                    ),
                    Proctitle::Missing => p.argv.clone(),
                };
                p.exe = s.exe.clone().or(p.exe.take());
                p.uid = s.uid.id.or(p.uid);
            }
            // Only its pid: what other events said of it stands.
            Sighting::Parent(_) => {}
            Sighting::Target(t) => {
                if p.comm != t.comm {
                    // Another program now (an exec, or the pid was
                    // reused): what was known no longer describes it.
                    *p = unknown(t.pid, p.start_time);
                    p.comm = t.comm.clone();
                }
                p.uid = t.uid.id.or(p.uid);
            }
        }
    }
}

/// A process known only from the log: no parent, no command line yet.
fn unknown(pid: Pid, seen: DateTime<Utc>) -> Process {
    Process {
        // Not running now, as far as ptree knows.
        state: 'X',
        start_time: seen,
        ..Process::unknown(pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixture::egg_snapshot;
    use crate::analysis::roles::Role;
    use crate::audit::{Format, Timezone, parse_bytes};
    use crate::watch::record::Relation;

    const FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/audit/audit-samples.log");

    fn events(text: &[u8]) -> Vec<AuditSignal> {
        parse_bytes(text, Format::Raw, Timezone::utc()).0
    }

    fn empty_now() -> Snapshot {
        Snapshot::new(Vec::new(), Utc::now(), 100, Pid(1))
    }

    fn all_signals() -> Vec<Signal> {
        (1..=64).map(Signal).collect()
    }

    #[test]
    fn a_kill_command_names_its_parent() {
        // CASE binkill_KILL: `/bin/kill -9 17514` run by the script 17470,
        // itself run by `timeout` 17469; the sleep is long gone.
        let mut replay = Replay::new(Pid(17514), events(FIXTURE), &empty_now(), &all_signals());
        let signals: Vec<_> = replay.target_signals().cloned().collect();
        assert_eq!(signals.len(), 1);
        let s = &signals[0];
        assert_eq!(s.signal, Signal::KILL);
        let sender = s.sender.as_ref().expect("a sender");
        assert_eq!((sender.pid, sender.comm.as_str()), (Pid(17516), "kill"));
        assert_eq!(sender.cmdline, "/bin/kill -9 17514");
        // The script is known from its own kills: its comm and parent.
        assert_eq!(sender.ancestry[0].pid, Pid(17470));
        assert_eq!(sender.ancestry[0].comm, "gen_cases.sh");
        assert_eq!(sender.ancestry[1].pid, Pid(17469));
        assert_eq!(s.target.comm, "sleep");
        assert_eq!(s.relation, Relation::Unrelated);
        assert_eq!(replay.state(), TargetState::Gone);

        let verdict = replay.verdict(&Context::default()).expect("a verdict");
        assert_eq!(verdict.kind, VerdictKind::ManualKill);
        assert_eq!(verdict.chain, [Pid(17470), Pid(17516), Pid(17514)]);
        assert_eq!(verdict.root_cause.expect("a root cause").pid, Pid(17470));
        assert!(
            verdict
                .explanation
                .contains("does not say who 17514's parent")
        );
    }

    #[test]
    fn group_kills_thread_kills_and_probes() {
        let all = events(FIXTURE);
        // A member of the process group 17500.
        let replay = Replay::new(Pid(17503), all.clone(), &empty_now(), &all_signals());
        let s: Vec<_> = replay.target_signals().collect();
        assert_eq!(s.len(), 1);
        assert!(s[0].group);
        // tgkill of USR1 to 17616: the thread maps to its process.
        let replay = Replay::new(Pid(17616), all.clone(), &empty_now(), &all_signals());
        let s: Vec<_> = replay.target_signals().collect();
        assert_eq!((s.len(), s[0].signal), (1, Signal(10)));
        // 17802 got a probe (not a signal) then SIGTERM.
        let replay = Replay::new(Pid(17802), all.clone(), &empty_now(), &all_signals());
        let s: Vec<_> = replay.target_signals().collect();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].signal, Signal::TERM);
        // Only the signals asked for.
        let replay = Replay::new(Pid(17802), all, &empty_now(), &[Signal::KILL]);
        assert_eq!(replay.target_signals().count(), 0);
    }

    /// The incident of the egg fixture as audit would have logged it: PM2
    /// sends SIGTERM to the wrapper, which passes it to npx, which passes
    /// it to the master, which ends the worker. The worker is a zombie.
    fn incident(first_sender: &str) -> (Vec<AuditSignal>, Snapshot) {
        let mut now = egg_snapshot();
        for p in &mut now.processes {
            if p.pid == Pid(20567) {
                p.state = 'Z';
            }
        }
        let mut text = String::new();
        let steps = [
            (first_sender, 20501, 0),
            ("20501 20490 node", 20517, 1),
            ("20517 20501 node", 20537, 2),
            ("20537 20517 node", 20567, 3),
        ];
        for (i, (sender, target, second)) in steps.iter().enumerate() {
            let mut words = sender.split(' ');
            let (pid, ppid, comm) = (
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
            );
            let stamp = format!("{}.000:{}", 1_700_000_200 + second, 100 + i);
            text.push_str(&format!(
                "type=SYSCALL msg=audit({stamp}): arch=c000003e syscall=62 success=yes exit=0 a0={target:x} a1=f a2=0 a3=0 items=0 ppid={ppid} pid={pid} auid=4294967295 uid=0 comm=\"{comm}\" exe=\"/usr/bin/{comm}\"\n\
                 type=OBJ_PID msg=audit({stamp}): opid={target} oauid=-1 ouid=0 oses=-1 ocomm=\"node\"\n\
                 type=PROCTITLE msg=audit({stamp}): proctitle=\"{comm}\"\n"
            ));
        }
        (events(text.as_bytes()), now)
    }

    #[test]
    fn a_supervisor_stop_forwarded_down_the_tree() {
        let (events, now) = incident("20490 1 PM2");
        let mut replay = Replay::new(Pid(20567), events, &now, &all_signals());
        assert_eq!(replay.state(), TargetState::Gone);
        // The live master is described by /proc, not by the log.
        let to_worker = replay.target_signals().next().expect("a signal").clone();
        let master = to_worker.sender.as_ref().expect("a sender");
        assert_eq!(master.role, Role::Master);
        assert!(
            master.cmdline.contains("start-cluster"),
            "{}",
            master.cmdline
        );
        assert_eq!(to_worker.relation, Relation::Parent);
        assert_eq!(replay.live_lineage()[0], Pid(20567));

        let verdict = replay.verdict(&Context::default()).expect("a verdict");
        assert_eq!(verdict.kind, VerdictKind::Supervisor, "{verdict:#?}");
        assert_eq!(
            verdict.chain,
            [Pid(20490), Pid(20501), Pid(20517), Pid(20537), Pid(20567)]
        );
        // The chain's signals are reported with the target's.
        let report = replay.report(Some(&verdict));
        assert_eq!(report.len(), 4);
        assert!(report.windows(2).all(|w| w[0].time <= w[1].time));
    }

    #[test]
    fn unrelated_context_is_left_out() {
        let (mut events, now) = incident("20490 1 PM2");
        // The fixture's events: other processes entirely.
        events.extend(super::super::parse_bytes(FIXTURE, Format::Raw, Timezone::utc()).0);
        let kept = involving(Pid(20567), events);
        assert_eq!(kept.len(), 4);
        let replay = Replay::new(Pid(20567), kept, &now, &all_signals());
        assert_eq!(replay.signals.len(), 4);
    }

    #[test]
    fn a_parent_that_received_nothing_forwards() {
        // The wrapper starts the stop itself: PM2 sent nothing.
        let (mut events, now) = incident("20490 1 PM2");
        events.remove(0);
        let mut replay = Replay::new(Pid(20567), events, &now, &all_signals());
        let verdict = replay.verdict(&Context::default()).expect("a verdict");
        assert_eq!(verdict.kind, VerdictKind::ParentForward, "{verdict:#?}");
        assert_eq!(verdict.root_cause.expect("a root").pid, Pid(20501));
        // With the wrapper reading the launcher's output, as exec() does.
        let (mut events, now) = incident("20490 1 PM2");
        events.remove(0);
        let mut replay = Replay::new(Pid(20567), events, &now, &all_signals());
        let ctx = Context {
            readers: HashMap::from([(Pid(20517), vec![Pid(20501)])]),
            ..Context::default()
        };
        let verdict = replay.verdict(&ctx).expect("a verdict");
        assert_eq!(verdict.kind, VerdictKind::ExecMaxbuffer, "{verdict:#?}");
    }

    #[test]
    fn a_live_target_gets_no_verdict_and_reused_pids_are_the_logs() {
        let (events, mut now) = incident("20490 1 PM2");
        for p in &mut now.processes {
            p.state = 'S';
        }
        let mut replay = Replay::new(Pid(20567), events.clone(), &now, &all_signals());
        assert_eq!(replay.state(), TargetState::Alive);
        assert!(replay.verdict(&Context::default()).is_none());
        assert_eq!(replay.target_signals().count(), 1);

        // The same pids, now other processes started after the signals.
        for p in &mut now.processes {
            p.start_time = Utc::now();
        }
        let replay = Replay::new(Pid(20567), events, &now, &all_signals());
        assert_eq!(replay.state(), TargetState::Gone);
        let s = replay.target_signals().next().expect("a signal");
        let sender = s.sender.as_ref().expect("a sender");
        // What the log says: comm and proctitle "node", parent 20517,
        // whose own parent 20501 the live process of that pid is not.
        assert_eq!(sender.cmdline, "node");
        assert_eq!(sender.ancestry[0].pid, Pid(20517));
        assert_eq!(sender.ancestry[1].pid, Pid(20501));
        assert_eq!(sender.ancestry[1].comm, "node");
        assert_eq!(sender.ancestry[2].pid, Pid(20490));
        assert_eq!(sender.ancestry[2].comm, "PM2");
        assert!(replay.live_lineage().is_empty());
    }
}
