//! Verdicts: from the signals and exits seen, who really killed each
//! watched process, and why. Pure: events and the tree in, verdicts out.
//!
//! The sender of the last signal is rarely the cause: in the incident the
//! master's workers got SIGTERM from the master, which got it from `npx`,
//! which got it from the wrapper. A process that received a signal just
//! before sending one downstream is a *forwarder*; the chain is followed
//! back to the first sender that received nothing: the root cause.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use crate::analysis::roles::Role;
use crate::event::{SigCode, Signal};
use crate::model::Pid;
use crate::watch::record::{ExitRecord, SignalRecord, VerdictKind, VerdictRecord};
use crate::watch::table::LiveTable;

/// How long after receiving a signal a process may pass one on and still
/// count as forwarding it (a master's graceful shutdown takes a while).
const FORWARD_WINDOW_MS: i64 = 10_000;

/// Programs whose whole job is to send a signal: the real actor is whoever
/// ran them.
const KILL_COMMANDS: &[&str] = &[
    "kill",
    "pkill",
    "killall",
    "skill",
    "timeout",
    "egg-scripts",
];

/// Facts from outside the event stream.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// For each process, who read its stdout/stderr at the start (the other
    /// end of its pipe or socket).
    pub readers: HashMap<Pid, Vec<Pid>>,
    /// The kernel's OOM kill count rose while watching.
    pub oom_kills: u64,
    /// Processes that died of SIGKILL that the source could not attribute
    /// (ptrace never sees SIGKILL).
    pub invisible_kills: HashSet<Pid>,
}

fn fatal(sig: Signal) -> bool {
    !matches!(sig.0, 17 | 18 | 23 | 28 | 0) // CHLD CONT URG WINCH
}

/// The last signal to `pid` at or before `until` that could have ended it.
fn last_signal_to<'a>(
    signals: &'a [SignalRecord],
    pid: Pid,
    until: DateTime<Utc>,
    not_from: &HashSet<Pid>,
) -> Option<&'a SignalRecord> {
    signals
        .iter()
        .filter(|s| s.target.pid == pid && s.time <= until && fatal(s.signal))
        .filter(|s| {
            s.sender
                .as_ref()
                .is_none_or(|snd| !not_from.contains(&snd.pid))
        })
        .filter(|s| s.result != crate::event::Delivery::Ignored)
        .max_by_key(|s| s.time)
}

fn is_kill_command(table: &LiveTable, pid: Pid) -> bool {
    let Some(e) = table.get(pid) else {
        return false;
    };
    let comm = e.process.comm_lossy();
    if KILL_COMMANDS.contains(&comm.as_str()) && comm != "egg-scripts" {
        return true;
    }
    let args = e.process.argv.lossy();
    let first = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string());
    first.is_some_and(|f| KILL_COMMANDS.contains(&f.as_str()) && f != "egg-scripts")
        || args
            .windows(2)
            .any(|w| w[0] == "stop" && w.iter().any(|a| a.contains("egg-scripts")))
}

/// The verdict for every watched process that exited.
pub fn verdicts(
    signals: &[SignalRecord],
    exits: &[ExitRecord],
    victims: &[Pid],
    table: &mut LiveTable,
    ctx: &Context,
) -> Vec<VerdictRecord> {
    let mut out = Vec::new();
    for &victim in victims {
        let Some(exit) = exits.iter().find(|e| e.pid == victim) else {
            continue;
        };
        out.push(verdict_for(victim, exit, signals, table, ctx));
    }
    out
}

fn verdict_for(
    victim: Pid,
    exit: &ExitRecord,
    signals: &[SignalRecord],
    table: &mut LiveTable,
    ctx: &Context,
) -> VerdictRecord {
    let make =
        |kind, root: Option<Pid>, chain: Vec<Pid>, explanation: String, table: &mut LiveTable| {
            VerdictRecord {
                kind_tag: "verdict",
                pid: victim,
                kind,
                root_cause: root.map(|p| table.info(p)),
                chain,
                explanation,
            }
        };
    let slack = exit.time + Duration::milliseconds(50);
    let mut lineage = vec![victim];
    lineage.extend(table.ancestors(victim));
    let Some(last) = last_signal_to(signals, victim, slack, &HashSet::new()) else {
        if ctx.invisible_kills.contains(&victim) {
            return make(
                VerdictKind::Unknown,
                None,
                vec![victim],
                "killed by SIGKILL; sender invisible to ptrace, use --via tracefs or audit".into(),
                table,
            );
        }
        // Node ignores SIGPIPE: a write to a dead reader fails with EPIPE,
        // which becomes an uncaught exception and the process exits.
        let window = exit.time - Duration::milliseconds(FORWARD_WINDOW_MS);
        let epipe = signals.iter().any(|s| {
            s.target.pid == victim
                && s.signal == Signal::PIPE
                && s.time >= window
                && s.time <= slack
        });
        if epipe {
            return broken_pipe(victim, exit.time, &lineage, signals, table, ctx, true);
        }
        let how = match (exit.signal, exit.code, exit.how) {
            (Some(s), _, _) => format!(
                "died of {s} without a signal from another process being seen (a fault, or sent before watching began)"
            ),
            (None, Some(c), _) => format!("exited with status {c}; no signal was sent to it"),
            _ => "exited on its own; no signal was sent to it".to_string(),
        };
        return make(VerdictKind::Unknown, None, vec![victim], how, table);
    };

    // A process that re-raises a signal at itself after cleaning up (Node's
    // default SIGINT/SIGTERM behaviour, `raise()` in a handler) passes on
    // what it received: look at that one instead.
    let mut last = last;
    if last.signal != Signal::PIPE
        && last.sender.as_ref().is_some_and(|s| s.pid == victim)
        && let Some(earlier) = last_signal_to(signals, victim, last.time, &HashSet::from([victim]))
            .filter(|e| e.signal == last.signal)
            .filter(|e| e.time >= last.time - Duration::milliseconds(FORWARD_WINDOW_MS))
    {
        last = earlier;
    }

    // Walk back through forwarders.
    let mut chain = vec![victim];
    let mut cur = last;
    let mut seen: HashSet<Pid> = HashSet::from([victim]);
    let mut kernel = false;
    loop {
        let Some(sender) = cur.sender.as_ref().map(|s| s.pid) else {
            kernel = true;
            break;
        };
        if cur.code == SigCode::Kernel {
            kernel = true;
        }
        if seen.contains(&sender) {
            break; // sent to itself (SIGPIPE, abort) or a loop
        }
        seen.insert(sender);
        chain.insert(0, sender);
        let window_start = cur.time - Duration::milliseconds(FORWARD_WINDOW_MS);
        let received = last_signal_to(signals, sender, cur.time, &seen)
            .filter(|s| s.time >= window_start && s.signal == cur.signal);
        match received {
            Some(s) => cur = s,
            None => break,
        }
    }
    let mut root = chain
        .first()
        .copied()
        .filter(|_| !kernel || chain.len() > 1);

    // `kill`, `pkill`, `timeout`: the actor is whoever ran them.
    if let Some(r) = root
        && is_kill_command(table, r)
        && let Some(parent) = table.parent(r)
    {
        chain.insert(0, parent);
        root = Some(parent);
    }

    let sig = last.signal;
    let victim_info = table.info(victim);
    let victim_desc = format!("{} {}", victim, victim_info.comm);
    if sig == Signal::KILL && last.code == SigCode::Kernel && ctx.oom_kills > 0 {
        return make(
            VerdictKind::OomKill,
            None,
            vec![victim],
            format!(
                "{victim_desc} was killed by the kernel's OOM killer (SIGKILL, SI_KERNEL; oom_kill counter rose by {})",
                ctx.oom_kills
            ),
            table,
        );
    }
    if sig == Signal::HUP && last.code == SigCode::Kernel {
        return make(
            VerdictKind::TerminalHangup,
            None,
            vec![victim],
            format!(
                "{victim_desc} got SIGHUP from the kernel: its controlling terminal hung up (detach it: setsid, or start it as a daemon)"
            ),
            table,
        );
    }
    let self_sent = last.sender.as_ref().is_some_and(|s| s.pid == victim);
    if sig == Signal::PIPE && (self_sent || last.code == SigCode::Kernel) {
        return broken_pipe(victim, exit.time, &lineage, signals, table, ctx, false);
    }
    let Some(root) = root else {
        return make(
            VerdictKind::Unknown,
            None,
            chain,
            format!(
                "{victim_desc} got {sig} from the kernel ({})",
                last.code.name()
            ),
            table,
        );
    };
    let root_info = table.info(root);
    let root_desc = format!("{} {} ({})", root, root_info.cmdline, root_info.role);
    let chain_desc = chain
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(" → ");

    // Did the root cause read the output of the victim or an ancestor?
    let reads_output = lineage
        .iter()
        .any(|p| ctx.readers.get(p).is_some_and(|r| r.contains(&root)));
    let root_role = table.role(root);
    if reads_output && root_role != Role::Supervisor {
        return make(
            VerdictKind::ExecMaxbuffer,
            Some(root),
            chain,
            format!(
                "{root_desc} reads the output of the tree it started and sent {sig} ({chain_desc}): \
                 Node's child_process.exec killed its child after maxBuffer bytes of output; \
                 default 1 MiB since Node 12, 200 KiB before. Start the server with spawn() and \
                 inherited or file stdio, or as a daemon."
            ),
            table,
        );
    }
    if root_role == Role::Supervisor {
        return make(
            VerdictKind::Supervisor,
            Some(root),
            chain,
            format!(
                "the supervisor {root_desc} stopped it with {sig} ({chain_desc}): a restart, reload, stop or a failed health check"
            ),
            table,
        );
    }
    if lineage[1..].contains(&root) {
        return make(
            VerdictKind::ParentForward,
            Some(root),
            chain,
            format!(
                "its ancestor {root_desc} sent {sig} down the tree ({chain_desc}) without having received one"
            ),
            table,
        );
    }
    make(
        VerdictKind::ManualKill,
        Some(root),
        chain,
        format!("{root_desc}, outside the victim's ancestry, sent {sig} ({chain_desc})"),
        table,
    )
}

/// The victim wrote into a pipe or socket whose reader was gone. When that
/// reader is known and, just before, signalled one of the victim's
/// ancestors (dash's `sh -c` does not exec, so exec()'s SIGTERM kills only
/// the shell and orphans the tree), the cause is exec's maxBuffer.
fn broken_pipe(
    victim: Pid,
    died: DateTime<Utc>,
    lineage: &[Pid],
    signals: &[SignalRecord],
    table: &mut LiveTable,
    ctx: &Context,
    node_style: bool,
) -> VerdictRecord {
    let reader = lineage
        .iter()
        .find_map(|p| ctx.readers.get(p).and_then(|r| r.first().copied()));
    let how = if node_style {
        "its writes failed with EPIPE (Node ignores SIGPIPE and exits on the error)"
    } else {
        "the kernel raised SIGPIPE in its own context"
    };
    let window = died - Duration::milliseconds(FORWARD_WINDOW_MS * 3);
    let reader_kill = reader.and_then(|r| {
        signals
            .iter()
            .filter(|s| s.time >= window && s.time <= died && fatal(s.signal))
            .filter(|s| s.sender.as_ref().is_some_and(|snd| snd.pid == r))
            .find(|s| lineage.contains(&s.target.pid))
            .map(|s| (r, s.target.pid, s.signal))
    });
    let victim_comm = table.info(victim).comm;
    if let Some((r, killed, sig)) = reader_kill {
        let info = table.info(r);
        let mut chain = vec![r];
        let pos = lineage.iter().position(|p| *p == killed).unwrap_or(0);
        chain.extend(lineage[..=pos].iter().rev());
        chain.dedup();
        return VerdictRecord {
            kind_tag: "verdict",
            pid: victim,
            kind: VerdictKind::ExecMaxbuffer,
            root_cause: Some(info.clone()),
            chain,
            explanation: format!(
                "{r} {} ({}) read {victim} {victim_comm}'s output and sent {sig} to {killed}, \
                 then closed its end: {victim} lost its reader and {how}. This is Node's \
                 child_process.exec killing its child after maxBuffer bytes of output \
                 (default 1 MiB since Node 12, 200 KiB before)",
                info.cmdline, info.role
            ),
        };
    }
    let root = reader.unwrap_or(victim);
    let root_info = table.info(root);
    let who = match reader {
        Some(r) => format!("its output reader {r} {} went away", root_info.comm),
        None => "the reader of its output was gone".to_string(),
    };
    VerdictRecord {
        kind_tag: "verdict",
        pid: victim,
        kind: VerdictKind::BrokenPipe,
        root_cause: Some(root_info),
        chain: if root == victim {
            vec![victim]
        } else {
            vec![root, victim]
        },
        explanation: format!(
            "{victim} {victim_comm} wrote to a pipe or socket nobody reads: {who}, and {how}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixture::egg_snapshot;
    use crate::event::{RawEvent, RawSignal};
    use crate::model::Tid;
    use crate::trace::tracefs_parse::{ClockOffset, TraceClock, parse_event};
    use crate::watch::enrich;
    use crate::watch::record::ExitRecord;

    const TRACE: &str = include_str!("../../tests/fixtures/egg-exec-node14/trace.signals.txt");

    /// Replays the recorded incident: the wrapper's SIGTERM to npx, npx's
    /// to the master, the master's to the agent and workers.
    fn replay() -> (Vec<SignalRecord>, Vec<ExitRecord>, LiveTable) {
        let clock = ClockOffset::from_readings(TraceClock::Boot, 1_700_000_000_000_000_000, 0);
        let mut table = LiveTable::new(egg_snapshot());
        let mut signals = Vec::new();
        let mut exits = Vec::new();
        for line in TRACE.lines() {
            let Some(ev) = parse_event(line, &clock) else {
                continue;
            };
            match &ev {
                RawEvent::Signal(raw) => signals.push(enrich(raw, &mut table)),
                RawEvent::Exit {
                    time,
                    pid: Some(pid),
                    ..
                } if !exits.iter().any(|e: &ExitRecord| e.pid == *pid) => {
                    exits.push(ExitRecord::new(*time, *pid, None));
                }
                _ => {}
            }
            table.apply(&ev, &mut |_| None);
        }
        (signals, exits, table)
    }

    fn incident_context() -> Context {
        let mut readers = HashMap::new();
        for pid in [20517, 20537, 20553, 20567, 20568] {
            readers.insert(Pid(pid), vec![Pid(20501)]);
        }
        readers.insert(Pid(20501), vec![Pid(20490)]);
        Context {
            readers,
            ..Context::default()
        }
    }

    #[test]
    fn the_recorded_incident_names_the_wrapper() {
        let (signals, exits, mut table) = replay();
        assert!(signals.len() >= 5, "{signals:#?}");
        let victims = [Pid(20537), Pid(20553), Pid(20567), Pid(20568), Pid(20517)];
        let found = verdicts(&signals, &exits, &victims, &mut table, &incident_context());
        assert_eq!(found.len(), 5, "{found:#?}");
        for v in &found {
            assert_eq!(v.kind, VerdictKind::ExecMaxbuffer, "{v:#?}");
            assert_eq!(v.root_cause.as_ref().unwrap().pid, Pid(20501));
            assert_eq!(v.root_cause.as_ref().unwrap().role, Role::Wrapper);
        }
        let worker = found.iter().find(|v| v.pid == Pid(20567)).unwrap();
        assert_eq!(
            worker.chain,
            vec![Pid(20501), Pid(20517), Pid(20537), Pid(20567)]
        );
        assert!(worker.explanation.contains("maxBuffer"));
    }

    #[test]
    fn the_supervisor_teardown_is_a_supervisor_verdict() {
        // In the same recording PM2 later sends SIGINT to the wrapper.
        let (signals, _, mut table) = replay();
        let sigint = signals
            .iter()
            .find(|s| s.signal == Signal::INT && s.target.pid == Pid(20501))
            .expect("PM2's SIGINT");
        let exit = ExitRecord::new(sigint.time, Pid(20501), None);
        let found = verdicts(
            &signals,
            &[exit],
            &[Pid(20501)],
            &mut table,
            &incident_context(),
        );
        assert_eq!(found[0].kind, VerdictKind::Supervisor, "{:#?}", found[0]);
        assert_eq!(found[0].root_cause.as_ref().unwrap().pid, Pid(20490));
    }

    fn raw(signal: Signal, code: SigCode, sender: Option<i32>, target: i32, t: i64) -> RawSignal {
        RawSignal {
            time: DateTime::<Utc>::from_timestamp(1_700_000_000 + t, 0).unwrap(),
            signal,
            code,
            result: crate::event::Delivery::Delivered,
            group: true,
            sender_tid: sender.map(Tid),
            sender_pid: sender.map(Pid),
            sender_comm: None,
            target_tid: Tid(target),
            target_comm: "node".into(),
            value: None,
            via: crate::event::Via::Tracefs,
        }
    }

    /// One signal to the worker 20568, which then dies a second later.
    fn verdict_of(raw_signal: RawSignal, ctx: &Context) -> VerdictRecord {
        let mut table = LiveTable::new(egg_snapshot());
        let rec = enrich(&raw_signal, &mut table);
        let exit = ExitRecord::new(rec.time + Duration::seconds(1), Pid(20568), None);
        verdicts(&[rec], &[exit], &[Pid(20568)], &mut table, ctx)
            .pop()
            .expect("a verdict")
    }

    #[test]
    fn a_kernel_sigkill_during_an_oom_kill_is_oom_kill() {
        let ctx = Context {
            oom_kills: 1,
            ..Context::default()
        };
        let v = verdict_of(
            raw(Signal::KILL, SigCode::Kernel, Some(20553), 20568, 0),
            &ctx,
        );
        assert_eq!(v.kind, VerdictKind::OomKill, "{v:#?}");
        // Without the OOM counter rising it is not called an OOM kill.
        let v = verdict_of(
            raw(Signal::KILL, SigCode::Kernel, Some(20553), 20568, 0),
            &Context::default(),
        );
        assert_ne!(v.kind, VerdictKind::OomKill);
    }

    #[test]
    fn a_kernel_sighup_is_a_terminal_hangup() {
        let v = verdict_of(
            raw(Signal::HUP, SigCode::Kernel, None, 20568, 0),
            &Context::default(),
        );
        assert_eq!(v.kind, VerdictKind::TerminalHangup, "{v:#?}");
    }

    #[test]
    fn sigpipe_in_its_own_context_is_a_broken_pipe_naming_the_reader() {
        let v = verdict_of(
            raw(Signal::PIPE, SigCode::User, Some(20568), 20568, 0),
            &incident_context(),
        );
        assert_eq!(v.kind, VerdictKind::BrokenPipe, "{v:#?}");
        assert_eq!(v.root_cause.unwrap().pid, Pid(20501));
    }

    #[test]
    fn an_unrelated_sender_is_a_manual_kill_and_an_ancestor_a_parent_forward() {
        // PM2 is an ancestor but a supervisor: checked elsewhere. The
        // agent is a sibling of the worker: unrelated to its ancestry.
        let v = verdict_of(
            raw(Signal::TERM, SigCode::User, Some(20553), 20568, 0),
            &Context::default(),
        );
        assert_eq!(v.kind, VerdictKind::ManualKill, "{v:#?}");
        assert_eq!(v.chain, vec![Pid(20553), Pid(20568)]);
        // The master decides on its own to stop its worker.
        let v = verdict_of(
            raw(Signal::TERM, SigCode::User, Some(20537), 20568, 0),
            &Context::default(),
        );
        assert_eq!(v.kind, VerdictKind::ParentForward, "{v:#?}");
        assert_eq!(v.root_cause.unwrap().pid, Pid(20537));
    }
}
