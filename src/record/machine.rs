//! Every process of the machine as the recorder knows it: a start
//! snapshot kept current by fork, exec and exit, so the sender of a signal
//! (often a `kill` that lived for a millisecond) can be described with its
//! command line and ancestry when its signal is read.
//!
//! Unlike [`crate::watch::table::LiveTable`], which lives for one
//! who-killed session, this table runs for hours under thousands of forks
//! a second: an exited process is forgotten [`KEEP_EXITED`] after its exit
//! (event time), and a periodic `/proc` snapshot corrects what lost events
//! left wrong.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};

use crate::model::{Argv, Pid, Process, Snapshot, Tid};

/// How long an exited process stays known: events are read a fraction of
/// a second after they happen, so a sender's exited parent is still there.
pub const KEEP_EXITED: Duration = Duration::seconds(10);

#[derive(Debug, Clone)]
pub struct Known {
    pub process: Process,
    pub exited_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
pub struct MachineTable {
    procs: HashMap<Pid, Known>,
    /// Exits in event order, for pruning.
    exits: VecDeque<(DateTime<Utc>, Pid)>,
}

impl MachineTable {
    pub fn from_snapshot(snapshot: &Snapshot) -> MachineTable {
        let mut t = MachineTable::default();
        t.resync(snapshot);
        t
    }

    pub fn get(&self, pid: Pid) -> Option<&Known> {
        self.procs.get(&pid)
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// Brings the table in line with a full `/proc` snapshot: processes
    /// read there are refreshed, processes missing there are marked
    /// exited (their exit event was lost).
    pub fn resync(&mut self, snapshot: &Snapshot) {
        for p in &snapshot.processes {
            self.procs.insert(
                p.pid,
                Known {
                    process: p.clone(),
                    exited_at: None,
                },
            );
        }
        let gone: Vec<Pid> = self
            .procs
            .iter()
            .filter(|(pid, k)| k.exited_at.is_none() && snapshot.get(**pid).is_none())
            .map(|(pid, _)| *pid)
            .collect();
        for pid in gone {
            self.exit(pid, snapshot.taken_at);
        }
    }

    /// Adds one process read from `/proc` (a sender the events missed).
    pub fn insert(&mut self, process: Process) {
        self.procs.insert(
            process.pid,
            Known {
                process,
                exited_at: None,
            },
        );
    }

    /// `parent` forked the process `child` (a thread the caller decided
    /// not to track is recorded the same way: it is harmless in an
    /// ancestry and forgotten when it exits).
    pub fn fork(&mut self, time: DateTime<Utc>, parent: Pid, child: Pid, comm: &str) {
        let mut process = match self.procs.get(&parent) {
            Some(k) => k.process.clone(),
            None => Process::unknown(parent),
        };
        process.pid = child;
        process.ppid = parent;
        process.comm = comm.as_bytes().to_vec();
        process.start_time = time;
        process.threads = 1;
        process.state = 'R';
        process.fds = None;
        self.procs.insert(
            child,
            Known {
                process,
                exited_at: None,
            },
        );
    }

    pub fn exec(&mut self, pid: Pid, argv: Argv, filename: &str) {
        let known = self.procs.entry(pid).or_insert_with(|| Known {
            process: Process::unknown(pid),
            exited_at: None,
        });
        known.process.argv = argv;
        if let Some(base) = filename.rsplit('/').next() {
            known.process.comm = base.bytes().take(15).collect();
        }
    }

    pub fn exit(&mut self, pid: Pid, time: DateTime<Utc>) {
        if let Some(k) = self.procs.get_mut(&pid)
            && k.exited_at.is_none()
        {
            k.exited_at = Some(time);
            self.exits.push_back((time, pid));
        }
    }

    /// Forgets processes that exited more than [`KEEP_EXITED`] before `now`
    /// (an event time).
    pub fn prune(&mut self, now: DateTime<Utc>) {
        while let Some(&(time, pid)) = self.exits.front() {
            if now - time < KEEP_EXITED {
                break;
            }
            self.exits.pop_front();
            // The pid may have been reused since: only forget that exit.
            if self
                .procs
                .get(&pid)
                .is_some_and(|k| k.exited_at == Some(time))
            {
                self.procs.remove(&pid);
            }
        }
    }

    /// The parent of `pid` as known.
    pub fn parent(&self, pid: Pid) -> Option<Pid> {
        let p = self.procs.get(&pid)?.process.ppid;
        (p != Pid::NONE && p != pid).then_some(p)
    }

    /// `pid` and its ancestors, nearest first.
    pub fn lineage(&self, pid: Pid) -> Vec<Pid> {
        let mut out = vec![pid];
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
}

/// Whether `tid` is a thread of `pid`: `tgkill(pid, tid, 0)` sends nothing
/// and fails with ESRCH unless `tid` is in `pid`'s thread group. One
/// syscall with no path lookup, cheap enough for every fork of a recorded
/// process (a stat of `/proc/PID/task/TID` costs several times more). A
/// child already gone reads as a process, which short-lived children are.
pub fn is_thread_of(pid: Pid, tid: Tid) -> bool {
    if pid.0 == tid.0 || pid.0 <= 0 || tid.0 <= 0 {
        return false;
    }
    // SAFETY: signal 0 performs only the existence and permission checks.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, pid.0, tid.0, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixture::egg_snapshot;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_short_lived_sender_is_known_then_forgotten() {
        let mut m = MachineTable::from_snapshot(&egg_snapshot());
        m.fork(t(1), Pid(20501), Pid(30000), "node");
        m.exec(
            Pid(30000),
            Argv(vec![b"kill".to_vec(), b"20517".to_vec()]),
            "/usr/bin/kill",
        );
        assert_eq!(
            m.lineage(Pid(30000))[..3],
            [Pid(30000), Pid(20501), Pid(20490)]
        );
        assert_eq!(m.get(Pid(30000)).unwrap().process.comm, b"kill");
        m.exit(Pid(30000), t(2));
        m.prune(t(5));
        assert!(m.get(Pid(30000)).is_some(), "kept a while after exit");
        m.prune(t(13));
        assert!(m.get(Pid(30000)).is_none());
    }

    #[test]
    fn threads_are_told_from_processes() {
        let me = Pid(std::process::id() as i32);
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tx.send(unsafe { libc::gettid() }).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200));
        });
        let tid = Tid(rx.recv().unwrap());
        assert!(is_thread_of(me, tid));
        assert!(!is_thread_of(me, Tid(me.0)));
        assert!(!is_thread_of(Pid(1), tid));
        let _ = t.join();
    }

    #[test]
    fn a_reused_pid_is_not_pruned() {
        let mut m = MachineTable::default();
        m.fork(t(1), Pid(1), Pid(500), "a");
        m.exit(Pid(500), t(2));
        m.fork(t(3), Pid(1), Pid(500), "b");
        m.prune(t(60));
        assert_eq!(m.get(Pid(500)).unwrap().process.comm, b"b");
    }
}
