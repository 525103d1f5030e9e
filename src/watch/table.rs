//! A live model of the process tree, kept from a start snapshot plus fork,
//! exec and exit events, so a sender that lived for microseconds (`kill`,
//! `sh -c 'kill …'`) is still known with its command line and ancestry
//! when its signal is reported.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::analysis::roles::{Role, classify};
use crate::event::RawEvent;
use crate::model::{Argv, Pid, Process, Snapshot, Tid};

/// One process as the table knows it, alive or exited.
#[derive(Debug, Clone)]
pub struct Entry {
    pub process: Process,
    pub exited_at: Option<DateTime<Utc>>,
}

/// A process described for a report: what the user needs to recognise it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcInfo {
    pub pid: Pid,
    pub comm: String,
    pub cmdline: String,
    pub role: Role,
}

/// The live table.
#[derive(Debug, Clone)]
pub struct LiveTable {
    entries: HashMap<Pid, Entry>,
    /// Thread id → its process.
    threads: HashMap<Tid, Pid>,
    /// Roles computed over the table; refreshed when the tree changes.
    roles: HashMap<Pid, Role>,
    roles_stale: bool,
    template: Snapshot,
}

impl LiveTable {
    /// Starts from a snapshot (its processes' threads are mapped lazily:
    /// a tid not seen in a fork is taken as a process of its own, or
    /// resolved through `/proc/TID/status` by the caller via
    /// [`LiveTable::map_thread`]).
    pub fn new(snapshot: Snapshot) -> LiveTable {
        let entries = snapshot
            .processes
            .iter()
            .map(|p| {
                (
                    p.pid,
                    Entry {
                        process: p.clone(),
                        exited_at: None,
                    },
                )
            })
            .collect();
        let mut template = snapshot;
        template.processes.clear();
        template.index.clear();
        let mut t = LiveTable {
            entries,
            threads: HashMap::new(),
            roles: HashMap::new(),
            roles_stale: true,
            template,
        };
        t.refresh_roles();
        t
    }

    /// Records that `tid` is a thread of `pid`.
    pub fn map_thread(&mut self, tid: Tid, pid: Pid) {
        self.threads.insert(tid, pid);
    }

    /// The process a thread belongs to (a tid of a main thread is its pid).
    pub fn pid_of(&self, tid: Tid) -> Pid {
        self.threads.get(&tid).copied().unwrap_or(Pid(tid.0))
    }

    pub fn get(&self, pid: Pid) -> Option<&Entry> {
        self.entries.get(&pid)
    }

    pub fn is_alive(&self, pid: Pid) -> bool {
        self.entries
            .get(&pid)
            .is_some_and(|e| e.exited_at.is_none())
    }

    /// Applies a lifecycle event. `argv_of` is asked for a new program's
    /// command line right after an exec (it reads `/proc` when the process
    /// is still there; a test passes a closure).
    pub fn apply(&mut self, event: &RawEvent, argv_of: &mut dyn FnMut(Pid) -> Option<Argv>) {
        match event {
            RawEvent::Fork {
                time,
                parent_tid,
                parent_pid,
                child_tid,
                child_pid,
                comm,
            } => {
                let parent = parent_pid.unwrap_or_else(|| self.pid_of(*parent_tid));
                let child = child_pid.unwrap_or(Pid(child_tid.0));
                if child != Pid(child_tid.0) || child == parent {
                    // A new thread of an existing process.
                    self.threads.insert(*child_tid, child);
                    return;
                }
                let mut process = match self.entries.get(&parent) {
                    Some(e) => e.process.clone(),
                    None => Process::unknown(parent),
                };
                process.pid = child;
                process.ppid = parent;
                process.comm = comm.as_bytes().to_vec();
                process.start_time = *time;
                process.threads = 1;
                process.fds = None;
                self.entries.insert(
                    child,
                    Entry {
                        process,
                        exited_at: None,
                    },
                );
                self.roles_stale = true;
            }
            RawEvent::Exec {
                pid,
                filename,
                comm,
                ..
            } => {
                let argv =
                    argv_of(*pid).unwrap_or_else(|| Argv(vec![filename.as_bytes().to_vec()]));
                let entry = self.entries.entry(*pid).or_insert_with(|| Entry {
                    process: Process::unknown(*pid),
                    exited_at: None,
                });
                entry.process.argv = argv;
                if let Some(c) = comm {
                    entry.process.comm = c.as_bytes().to_vec();
                } else if let Some(base) = filename.rsplit('/').next() {
                    entry.process.comm = base.bytes().take(15).collect();
                }
                self.roles_stale = true;
            }
            RawEvent::Exit { time, tid, pid, .. } => {
                let pid = pid.unwrap_or_else(|| self.pid_of(*tid));
                // Only the thread-group leader's exit (or the last thread's,
                // which sources report with the group's pid) ends a process.
                if (Pid(tid.0) == pid || !self.threads.contains_key(tid))
                    && let Some(e) = self.entries.get_mut(&pid)
                {
                    e.exited_at.get_or_insert(*time);
                }
            }
            RawEvent::Signal(_) | RawEvent::Lost { .. } => {}
        }
    }

    /// Adds a process read from `/proc` after the start (a sender the
    /// source reported by pid only).
    pub fn insert(&mut self, process: Process) {
        self.entries.insert(
            process.pid,
            Entry {
                process,
                exited_at: None,
            },
        );
        self.roles_stale = true;
    }

    /// Marks a process exited (sources that report whole-process exits).
    pub fn mark_exited(&mut self, pid: Pid, time: DateTime<Utc>) {
        if let Some(e) = self.entries.get_mut(&pid) {
            e.exited_at.get_or_insert(time);
        }
    }

    fn refresh_roles(&mut self) {
        let mut snap = self.template.clone();
        let processes: Vec<Process> = self.entries.values().map(|e| e.process.clone()).collect();
        snap = Snapshot::new(
            processes,
            snap.taken_at,
            snap.ticks_per_second,
            snap.reader_pid,
        );
        self.roles = classify(&snap).0;
        self.roles_stale = false;
    }

    pub fn role(&mut self, pid: Pid) -> Role {
        if self.roles_stale {
            self.refresh_roles();
        }
        self.roles.get(&pid).copied().unwrap_or(Role::Other)
    }

    /// A process described for reports; an unknown pid is described by
    /// number alone.
    pub fn info(&mut self, pid: Pid) -> ProcInfo {
        let role = self.role(pid);
        match self.entries.get(&pid) {
            Some(e) => ProcInfo {
                pid,
                comm: e.process.comm_lossy(),
                cmdline: e.process.command(),
                role,
            },
            None => ProcInfo {
                pid,
                comm: String::new(),
                cmdline: String::new(),
                role,
            },
        }
    }

    /// The parent of `pid` as the table knows it.
    pub fn parent(&self, pid: Pid) -> Option<Pid> {
        let p = self.entries.get(&pid)?.process.ppid;
        (p != Pid::NONE && p != pid).then_some(p)
    }

    /// Ancestors of `pid`, nearest first, up to PID 1.
    pub fn ancestors(&self, pid: Pid) -> Vec<Pid> {
        let mut out = Vec::new();
        let mut cur = pid;
        while let Some(p) = self.parent(cur) {
            if out.contains(&p) || out.len() > 4096 {
                break;
            }
            out.push(p);
            cur = p;
        }
        out
    }

    /// Every process (alive or not) whose parent is `pid`.
    pub fn children(&self, pid: Pid) -> Vec<Pid> {
        let mut v: Vec<Pid> = self
            .entries
            .values()
            .filter(|e| e.process.ppid == pid && e.process.pid != pid)
            .map(|e| e.process.pid)
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixture::egg_snapshot;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_short_lived_sender_keeps_its_ancestry() {
        let mut table = LiveTable::new(egg_snapshot());
        let mut no_proc = |_| None;
        // The wrapper forks a shell that execs kill, which exits at once.
        table.apply(
            &RawEvent::Fork {
                time: t(1),
                parent_tid: Tid(20501),
                parent_pid: Some(Pid(20501)),
                child_tid: Tid(30000),
                child_pid: Some(Pid(30000)),
                comm: "node".into(),
            },
            &mut no_proc,
        );
        table.apply(
            &RawEvent::Exec {
                time: t(1),
                pid: Pid(30000),
                filename: "/usr/bin/kill".into(),
                comm: None,
            },
            &mut no_proc,
        );
        table.apply(
            &RawEvent::Exit {
                time: t(2),
                tid: Tid(30000),
                pid: Some(Pid(30000)),
                comm: "kill".into(),
                status: None,
            },
            &mut no_proc,
        );
        assert!(!table.is_alive(Pid(30000)));
        let info = table.info(Pid(30000));
        assert_eq!(info.comm, "kill");
        assert_eq!(info.cmdline, "/usr/bin/kill");
        assert_eq!(table.ancestors(Pid(30000))[..2], [Pid(20501), Pid(20490)]);
        assert_eq!(table.info(Pid(20501)).role, Role::Wrapper);
    }

    #[test]
    fn threads_map_to_their_process() {
        let mut table = LiveTable::new(egg_snapshot());
        table.apply(
            &RawEvent::Fork {
                time: t(1),
                parent_tid: Tid(20537),
                parent_pid: Some(Pid(20537)),
                child_tid: Tid(20544),
                child_pid: Some(Pid(20537)),
                comm: "node".into(),
            },
            &mut |_| None,
        );
        assert_eq!(table.pid_of(Tid(20544)), Pid(20537));
        assert!(table.get(Pid(20544)).is_none());
    }
}
