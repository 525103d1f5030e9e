//! Turning raw events from any source into who-killed's records: the live
//! process table, enrichment of senders and targets, and verdicts.

pub mod record;
pub mod table;
pub mod verdict;

use crate::event::{RawSignal, SigCode};
use crate::model::{Pid, Tid};
use record::{Ancestor, Relation, Sender, SignalRecord, Target};
use table::LiveTable;

/// How `sender` relates to `target` in the table's tree.
pub fn relation(table: &LiveTable, sender: Pid, target: Pid) -> Relation {
    if sender == target {
        return Relation::Itself;
    }
    if table.parent(target) == Some(sender) {
        return Relation::Parent;
    }
    if table.ancestors(target).contains(&sender) {
        return Relation::Ancestor;
    }
    if table.parent(sender) == Some(target) {
        return Relation::Child;
    }
    if table.ancestors(sender).contains(&target) {
        return Relation::Descendant;
    }
    if table.parent(sender).is_some() && table.parent(sender) == table.parent(target) {
        return Relation::Sibling;
    }
    Relation::Unrelated
}

/// Describes a raw signal with what the table knows at this instant: the
/// sender's command line and ancestry are captured now, while the sender
/// may be about to vanish.
pub fn enrich(raw: &RawSignal, table: &mut LiveTable) -> SignalRecord {
    let target_pid = table.pid_of(raw.target_tid);
    let sender_pid = raw
        .sender_pid
        .or_else(|| raw.sender_tid.map(|t| table.pid_of(t)))
        .filter(|p| p.0 > 0);
    let sender = sender_pid.map(|pid| {
        let info = table.info(pid);
        let ancestry = table
            .ancestors(pid)
            .into_iter()
            .map(|a| {
                let i = table.info(a);
                Ancestor {
                    pid: a,
                    comm: i.comm,
                    cmdline: i.cmdline,
                }
            })
            .collect();
        Sender {
            pid,
            tid: raw.sender_tid,
            comm: if info.comm.is_empty() {
                raw.sender_comm.clone().unwrap_or_default()
            } else {
                info.comm
            },
            cmdline: info.cmdline,
            role: info.role,
            ancestry,
        }
    });
    let t = table.info(target_pid);
    let relation = match sender_pid {
        None => Relation::Kernel,
        Some(_) if raw.code == SigCode::Kernel => Relation::Kernel,
        Some(s) => relation(table, s, target_pid),
    };
    SignalRecord {
        kind: "signal",
        time: raw.time,
        signal: raw.signal,
        signo: raw.signal.0,
        code: raw.code,
        result: raw.result,
        group: raw.group,
        sender,
        target: Target {
            pid: target_pid,
            tid: Tid(raw.target_tid.0),
            comm: if t.comm.is_empty() {
                raw.target_comm.clone()
            } else {
                t.comm
            },
            cmdline: t.cmdline,
            role: t.role,
        },
        relation,
        via: raw.via,
        value: raw.value,
    }
}
