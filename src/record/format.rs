//! The lines of a recording, schema `ptree.recording/1`
//! (docs/recording.md): one JSON object per line, tagged by `type`.
//!
//! These types are the file format and nothing else: the recorder fills
//! them from model types, the reader turns them back into model types.
//! Keeping them apart from the model lets the model change without
//! silently changing the format.

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::analysis::roles::Role;
use crate::event::{Delivery, RawEvent, RawSignal, SigCode, Signal, Via};
use crate::model::{
    AccessMode, Argv, FdTarget, Peer, Peers, Pgid, Pid, Process, StdFd, StdFds, Tid, escape_bytes,
};
use crate::render::cells::fd_kind_target;

/// The schema of the header line; a reader refuses other major versions.
pub const SCHEMA: &str = "ptree.recording/1";

/// A wall-clock time written as RFC 3339 with microseconds, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub DateTime<Utc>);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| Time(t.with_timezone(&Utc)))
            .map_err(serde::de::Error::custom)
    }
}

/// One line of a recording.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    Header(HeaderLine),
    Snapshot(SnapshotLine),
    Process(ProcessLine),
    Signal(SignalLine),
    Fork(ForkLine),
    Exec(ExecLine),
    Exit(ExitLine),
    Lost(LostLine),
    Oom(OomLine),
    End(EndLine),
    /// A type this version does not know (a newer minor version): skipped.
    #[serde(other)]
    Unknown,
}

/// What the recorder was asked to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SelectionLine {
    Pids { pids: Vec<i32> },
    Title { title: String, exact: bool },
    All,
}

/// Why a file exists: the first of a run, a rotation of the previous file
/// of the same run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStart {
    /// A recorder started; an older FILE, if any, became FILE.1.
    Start,
    /// The previous file of this run reached --max-bytes.
    Rotation,
}

/// `{"type":"header","schema":"ptree.recording/1",…}`: first line of every
/// file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeaderLine {
    pub schema: String,
    pub ptree_version: String,
    /// When this recorder run started.
    pub started_at: Time,
    /// When this file was opened.
    pub file_started_at: Time,
    pub file_start: FileStart,
    /// 1 for a run's first file, then +1 per rotation.
    pub part: u32,
    pub recorder_pid: i32,
    pub hostname: String,
    /// `/proc/sys/kernel/random/boot_id`: pids mean nothing across boots.
    pub boot_id: String,
    pub selection: SelectionLine,
    /// Signals the kernel filter lets through (SIGCHLD included: it says
    /// how a child ended).
    pub signals: Vec<String>,
    /// The mechanism that observed the events: `tracefs`.
    pub via: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// The kernel's OOM kill counter when the file started.
    pub oom_kill: u64,
    pub ticks_per_second: u64,
}

/// Why a snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotReason {
    /// The recorder started.
    Start,
    /// A recorded process forked or exited (at most one a second).
    Change,
    /// A new file after rotation: each file stands on its own.
    Rotation,
    /// After lost events, to resynchronise the tree.
    Resync,
}

/// `{"type":"snapshot",…}`: the recorded processes and all their
/// ancestors as read from `/proc`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotLine {
    pub time: Time,
    pub reason: SnapshotReason,
    /// The recorded processes (the selection and its descendants) alive
    /// at that time; the other processes listed are their ancestors.
    pub recorded: Vec<i32>,
    pub processes: Vec<ProcJson>,
}

/// A process in a snapshot or a `process` line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcJson {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// Escaped like the tree JSON's `comm`.
    pub comm: String,
    /// Each argument escaped like the tree JSON's `argv`.
    pub argv: Vec<String>,
    pub start_time: Option<Time>,
    #[serde(default)]
    pub start_ticks: u64,
    #[serde(default = "unknown_state")]
    pub state: String,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default = "one")]
    pub threads: i64,
    /// `supervisor`, `wrapper`, … as in the tree JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Thread ids, for the recorded processes and their close ancestors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tids: Vec<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<FdJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<FdJson>,
    /// Set in a `process` line when the process had already exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exited_at: Option<Time>,
}

fn unknown_state() -> String {
    "?".into()
}

fn one() -> i64 {
    1
}

/// fd 1 or 2: what it is and who reads it (the tree JSON's shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FdJson {
    pub kind: String,
    pub target: String,
    pub peers: Vec<PeerJson>,
    #[serde(default)]
    pub peers_unknown: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerJson {
    pub pid: i32,
    pub comm: String,
}

/// `{"type":"process",…}`: a process outside the snapshots that an event
/// refers to (a signal's sender and its ancestors), described once per
/// file, before the first line that needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessLine {
    pub time: Time,
    pub process: ProcJson,
}

/// `{"type":"signal",…}`: `signal_generate` as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalLine {
    pub time: Time,
    pub signal: String,
    pub signo: i32,
    /// The raw `si_code` (0 SI_USER, 128 SI_KERNEL, -6 SI_TKILL…).
    pub si_code: i32,
    /// `delivered`, `ignored`, `pending`, `overflow`, `lostinfo`, `unknown`.
    pub result: String,
    pub group: bool,
    pub sender_pid: Option<i32>,
    pub sender_tid: Option<i32>,
    pub sender_comm: Option<String>,
    pub target_tid: i32,
    pub target_comm: String,
    /// The mechanism that observed it, kept so a replay says what live
    /// said.
    pub via: String,
    /// Identical signals (same sender, target, signal, code and result)
    /// this line also stands for, sent from `since` up to `time`: a storm
    /// (a Node process hitting EPIPE in a loop raises SIGPIPE thousands of
    /// times a second) is written about twice a second, not each time.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeats: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForkLine {
    pub time: Time,
    pub parent_pid: Option<i32>,
    pub parent_tid: i32,
    /// The child's process: its own tid for a new process, the parent's
    /// pid for a new thread.
    pub child_pid: Option<i32>,
    pub child_tid: i32,
    pub comm: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecLine {
    pub time: Time,
    pub pid: i32,
    pub filename: String,
    /// Read from `/proc/PID/cmdline` right after the exec; `[filename]`
    /// when the process was already gone. Escaped.
    pub argv: Vec<String>,
}

/// A process ended (its main thread exited).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitLine {
    pub time: Time,
    pub pid: i32,
    pub tid: i32,
    pub comm: String,
}

/// The kernel dropped events: the recording has a hole here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LostLine {
    pub time: Time,
    pub count: u64,
}

/// The kernel's OOM kill counter rose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OomLine {
    pub time: Time,
    pub oom_kill: u64,
    pub delta: u64,
}

/// Why a file ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// SIGINT, SIGTERM or SIGHUP.
    Stopped,
    /// `--duration` elapsed.
    Duration,
    /// Continued in a new file.
    Rotation,
    /// The recorder failed (the error is in `error`).
    Error,
}

/// Last line of a file closed cleanly; a file without it was cut short
/// (the recorder was killed, or is still writing it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndLine {
    pub time: Time,
    pub reason: EndReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

// ---------------------------------------------------------------------------
// Model → lines

impl SignalLine {
    pub fn from_raw(s: &RawSignal) -> SignalLine {
        SignalLine {
            time: Time(s.time),
            signal: s.signal.name(),
            signo: s.signal.0,
            si_code: sig_code_raw(s.code),
            result: delivery_name(s.result).to_string(),
            group: s.group,
            sender_pid: s.sender_pid.map(|p| p.0),
            sender_tid: s.sender_tid.map(|t| t.0),
            sender_comm: s.sender_comm.clone(),
            target_tid: s.target_tid.0,
            target_comm: s.target_comm.clone(),
            via: via_name(s.via).to_string(),
            repeats: 0,
            since: None,
        }
    }

    pub fn to_raw(&self) -> RawSignal {
        RawSignal {
            time: self.time.0,
            signal: Signal(self.signo),
            code: SigCode::from_raw(self.si_code),
            result: parse_delivery(&self.result),
            group: self.group,
            sender_tid: self.sender_tid.map(Tid),
            sender_pid: self.sender_pid.map(Pid),
            sender_comm: self.sender_comm.clone(),
            target_tid: Tid(self.target_tid),
            target_comm: self.target_comm.clone(),
            value: None,
            via: parse_via(&self.via),
        }
    }
}

pub fn delivery_name(d: Delivery) -> &'static str {
    match d {
        Delivery::Delivered => "delivered",
        Delivery::Ignored => "ignored",
        Delivery::Pending => "pending",
        Delivery::Overflow => "overflow",
        Delivery::Lostinfo => "lostinfo",
        Delivery::Unknown => "unknown",
    }
}

pub fn parse_delivery(s: &str) -> Delivery {
    match s {
        "delivered" => Delivery::Delivered,
        "ignored" => Delivery::Ignored,
        "pending" => Delivery::Pending,
        "overflow" => Delivery::Overflow,
        "lostinfo" => Delivery::Lostinfo,
        _ => Delivery::Unknown,
    }
}

pub fn via_name(v: Via) -> &'static str {
    match v {
        Via::Tracefs => "tracefs",
        Via::Ptrace => "ptrace",
        Via::Audit => "audit",
        Via::Recording => "recording",
    }
}

/// An unknown mechanism reads as [`Via::Recording`]: what is certain is
/// that it came from one.
pub fn parse_via(s: &str) -> Via {
    match s {
        "tracefs" => Via::Tracefs,
        "ptrace" => Via::Ptrace,
        "audit" => Via::Audit,
        _ => Via::Recording,
    }
}

pub fn parse_role(s: &str) -> Role {
    match s {
        "supervisor" => Role::Supervisor,
        "wrapper" => Role::Wrapper,
        "shell" => Role::Shell,
        "launcher" => Role::Launcher,
        "master" => Role::Master,
        "agent" => Role::Agent,
        "worker" => Role::Worker,
        _ => Role::Other,
    }
}

/// The inverse of [`SigCode::from_raw`].
pub fn sig_code_raw(code: SigCode) -> i32 {
    match code {
        SigCode::User => 0,
        SigCode::Kernel => 0x80,
        SigCode::Queue => -1,
        SigCode::Timer => -2,
        SigCode::Mesgq => -3,
        SigCode::AsyncIo => -4,
        SigCode::SigIo => -5,
        SigCode::Tkill => -6,
        SigCode::Other(n) => n,
    }
}

/// Serialisable form of an fd with its readers.
pub fn fd_json(fd: &StdFd, peers: &[Peer], unknown: bool) -> FdJson {
    let (kind, target) = fd_kind_target(Some(fd));
    FdJson {
        kind: kind.to_string(),
        target,
        peers: peers
            .iter()
            .map(|p| PeerJson {
                pid: p.pid.0,
                comm: p.comm.clone(),
            })
            .collect(),
        peers_unknown: unknown,
    }
}

impl ProcJson {
    /// A process with what the recording keeps of it.
    pub fn from_process(p: &Process) -> ProcJson {
        ProcJson {
            pid: p.pid.0,
            ppid: p.ppid.0,
            pgid: p.pgid.0,
            sid: p.sid.0,
            comm: escape_bytes(&p.comm),
            argv: p.argv.escaped(),
            start_time: Some(Time(p.start_time)),
            start_ticks: p.start_ticks,
            state: p.state.to_string(),
            uid: p.uid,
            threads: p.threads,
            ..ProcJson::default()
        }
    }

    /// The model process. Fields a recording does not keep (tty, flags,
    /// CPU time, exe, cwd) are left empty.
    pub fn to_process(&self) -> Process {
        let fd = |f: &Option<FdJson>| f.as_ref().map(parse_fd);
        let fds = match (fd(&self.stdout), fd(&self.stderr)) {
            (None, None) => None,
            (out, err) => {
                let closed = || StdFd::new(FdTarget::Closed, None);
                Some(StdFds {
                    stdin: closed(),
                    stdout: out.unwrap_or_else(closed),
                    stderr: err.unwrap_or_else(closed),
                })
            }
        };
        Process {
            pid: Pid(self.pid),
            ppid: Pid(self.ppid),
            pgid: Pgid(self.pgid),
            sid: Pid(self.sid),
            tty_nr: 0,
            tpgid: -1,
            state: self.state.chars().next().unwrap_or('?'),
            flags: 0,
            nice: 0,
            threads: self.threads,
            cpu_ticks: 0,
            start_ticks: self.start_ticks,
            start_time: self.start_time.map_or(DateTime::<Utc>::UNIX_EPOCH, |t| t.0),
            comm: unescape(&self.comm),
            argv: Argv(self.argv.iter().map(|a| unescape(a)).collect()),
            uid: self.uid,
            vm_locked: false,
            signals: None,
            exe: None,
            cwd: None,
            cwd_dev: None,
            root_dev: None,
            fds,
        }
    }

    /// Readers of fds 1 and 2 as [`Peers`] entries.
    pub fn peers_into(&self, peers: &mut Peers) {
        for (n, fd) in [(1u8, &self.stdout), (2u8, &self.stderr)] {
            let Some(fd) = fd else { continue };
            let list = fd
                .peers
                .iter()
                .map(|p| Peer {
                    pid: Pid(p.pid),
                    comm: p.comm.clone(),
                })
                .collect();
            peers.by_fd.insert((Pid(self.pid), n), list);
            if fd.peers_unknown {
                peers.unknown.insert((Pid(self.pid), n));
            }
        }
    }
}

/// Rebuilds an fd from its `kind` and `target` (the strings of
/// [`fd_kind_target`]).
fn parse_fd(fd: &FdJson) -> StdFd {
    let inode = |prefix: &str| {
        fd.target
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|n| n.parse::<u64>().ok())
    };
    let target = match fd.kind.as_str() {
        "tty" => FdTarget::Tty(PathBuf::from(&fd.target)),
        "null" => FdTarget::Null,
        "file" => FdTarget::File(PathBuf::from(&fd.target)),
        "pipe" => inode("pipe:[").map_or(FdTarget::Unreadable, FdTarget::Pipe),
        "socket" => inode("socket:[").map_or(FdTarget::Unreadable, FdTarget::Socket),
        "closed" => FdTarget::Closed,
        _ => match fd
            .target
            .strip_prefix("anon_inode:[")
            .and_then(|r| r.strip_suffix(']'))
        {
            Some(k) => FdTarget::AnonInode(k.to_string()),
            None => FdTarget::Unreadable,
        },
    };
    // The write end is what stdout and stderr hold.
    let mode = matches!(target, FdTarget::Pipe(_)).then_some(AccessMode::Write);
    StdFd::new(target, mode)
}

/// The inverse of [`crate::model::escape_bytes`]: `\\` is a backslash,
/// `\xNN` a byte, anything else itself.
pub fn unescape(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
            if bytes.get(i + 1) == Some(&b'x')
                && let Some(hex) = s.get(i + 2..i + 4)
                && let Ok(b) = u8::from_str_radix(hex, 16)
            {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Lifecycle lines back to model events (signals go through
/// [`SignalLine::to_raw`]).
impl ForkLine {
    pub fn to_raw(&self) -> RawEvent {
        RawEvent::Fork {
            time: self.time.0,
            parent_tid: Tid(self.parent_tid),
            parent_pid: self.parent_pid.map(Pid),
            child_tid: Tid(self.child_tid),
            child_pid: self.child_pid.map(Pid),
            comm: self.comm.clone(),
        }
    }
}

impl ExecLine {
    pub fn to_raw(&self) -> (RawEvent, Argv) {
        let comm = self
            .filename
            .rsplit('/')
            .next()
            .map(|b| String::from_utf8_lossy(&b.as_bytes()[..b.len().min(15)]).into_owned());
        (
            RawEvent::Exec {
                time: self.time.0,
                pid: Pid(self.pid),
                filename: self.filename.clone(),
                comm,
            },
            Argv(self.argv.iter().map(|a| unescape(a)).collect()),
        )
    }
}

impl ExitLine {
    pub fn to_raw(&self) -> RawEvent {
        RawEvent::Exit {
            time: self.time.0,
            tid: Tid(self.tid),
            pid: Some(Pid(self.pid)),
            comm: self.comm.clone(),
            status: None,
        }
    }
}

/// Roles by pid of a snapshot line's processes, as the recorder saw them.
pub fn roles_of(line: &SnapshotLine) -> HashMap<Pid, Role> {
    line.processes
        .iter()
        .filter_map(|p| Some((Pid(p.pid), parse_role(p.role.as_deref()?))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_inverts_escape() {
        for raw in [
            &b"plain"[..],
            b"a\nb\\c",
            b"\xff\xfe x",
            "héllo".as_bytes(),
            b"\\x41",
            b"",
        ] {
            assert_eq!(unescape(&escape_bytes(raw)), raw, "{raw:?}");
        }
        // Malformed escapes are kept as text.
        assert_eq!(unescape("\\xZZ\\"), b"\\xZZ\\");
    }

    #[test]
    fn sig_codes_round_trip() {
        for raw in [0, 0x80, -1, -2, -3, -4, -5, -6, 1, 2, 3] {
            assert_eq!(sig_code_raw(SigCode::from_raw(raw)), raw);
        }
    }

    #[test]
    fn lines_are_tagged_and_unknown_types_tolerated() {
        let l = Line::Lost(LostLine {
            time: Time(DateTime::<Utc>::from_timestamp(1_700_000_000, 5_000).unwrap()),
            count: 3,
        });
        let s = serde_json::to_string(&l).unwrap();
        assert_eq!(
            s,
            r#"{"type":"lost","time":"2023-11-14T22:13:20.000005Z","count":3}"#
        );
        assert!(matches!(
            serde_json::from_str::<Line>(&s).unwrap(),
            Line::Lost(LostLine { count: 3, .. })
        ));
        assert!(matches!(
            serde_json::from_str::<Line>(r#"{"type":"future","x":1}"#).unwrap(),
            Line::Unknown
        ));
    }

    #[test]
    fn fds_round_trip() {
        for fd in [
            StdFd::new(FdTarget::Pipe(42), Some(AccessMode::Write)),
            StdFd::new(FdTarget::Socket(7), None),
            StdFd::new(FdTarget::Null, None),
            StdFd::new(FdTarget::File("/var/log/x.log".into()), None),
            StdFd::new(FdTarget::AnonInode("eventfd".into()), None),
        ] {
            let j = fd_json(&fd, &[], false);
            assert_eq!(parse_fd(&j).target, fd.target);
        }
    }
}
