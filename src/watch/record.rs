//! The JSON-lines records of `who-killed` (docs/who-killed.md): signals
//! with their sender captured at signal time, exits, and verdicts.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

use crate::analysis::roles::Role;
use crate::event::{Delivery, ExitStatus, SigCode, Signal, Via};
use crate::model::{Pid, Tid};
use crate::watch::table::ProcInfo;

fn rfc3339_micros<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// An ancestor in a sender's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ancestor {
    pub pid: Pid,
    pub comm: String,
    pub cmdline: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sender {
    pub pid: Pid,
    pub tid: Option<Tid>,
    pub comm: String,
    pub cmdline: String,
    pub role: Role,
    pub ancestry: Vec<Ancestor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub pid: Pid,
    pub tid: Tid,
    pub comm: String,
    pub cmdline: String,
    pub role: Role,
}

/// How the sender relates to the target in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Relation {
    #[serde(rename = "self")]
    Itself,
    Parent,
    Ancestor,
    Child,
    Descendant,
    Sibling,
    Unrelated,
    Kernel,
}

/// `{"type":"signal",…}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignalRecord {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(serialize_with = "rfc3339_micros")]
    pub time: DateTime<Utc>,
    pub signal: Signal,
    pub signo: i32,
    pub code: SigCode,
    pub result: Delivery,
    pub group: bool,
    /// `null` when the kernel raised it outside any task, or the sender is
    /// outside the target's pid namespace (ptrace sees si_pid 0).
    pub sender: Option<Sender>,
    pub target: Target,
    pub relation: Relation,
    pub via: Via,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
}

/// `{"type":"exit",…}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExitRecord {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(serialize_with = "rfc3339_micros")]
    pub time: DateTime<Utc>,
    pub pid: Pid,
    /// `signal`, `exit` or `unknown` (tracefs sees the exit, not its status).
    pub how: &'static str,
    pub signal: Option<Signal>,
    pub code: Option<i32>,
}

impl ExitRecord {
    pub fn new(time: DateTime<Utc>, pid: Pid, status: Option<ExitStatus>) -> ExitRecord {
        ExitRecord::with_how(time, pid, status, false)
    }

    /// Like [`ExitRecord::new`]; `exited_normally` says the process called
    /// exit (its parent's SIGCHLD said CLD_EXITED) when the status itself
    /// is unknown.
    pub fn with_how(
        time: DateTime<Utc>,
        pid: Pid,
        status: Option<ExitStatus>,
        exited_normally: bool,
    ) -> ExitRecord {
        let (how, signal, code) = match status {
            Some(ExitStatus::Signaled { signal }) => ("signal", Some(signal), None),
            Some(ExitStatus::Exited { code }) => ("exit", None, Some(code)),
            None if exited_normally => ("exit", None, None),
            None => ("unknown", None, None),
        };
        ExitRecord {
            kind: "exit",
            time,
            pid,
            how,
            signal,
            code,
        }
    }
}

/// What killed a watched process, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictKind {
    ExecMaxbuffer,
    OomKill,
    Supervisor,
    TerminalHangup,
    BrokenPipe,
    ParentForward,
    ManualKill,
    Unknown,
}

/// `{"type":"verdict",…}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerdictRecord {
    #[serde(rename = "type")]
    pub kind_tag: &'static str,
    pub pid: Pid,
    pub kind: VerdictKind,
    pub root_cause: Option<ProcInfo>,
    /// Pids from the root cause down to the victim.
    pub chain: Vec<Pid>,
    pub explanation: String,
}

/// Any record, for one JSON line each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Record {
    Signal(SignalRecord),
    Exit(ExitRecord),
    Verdict(VerdictRecord),
}

impl Record {
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}
