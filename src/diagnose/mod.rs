//! `doctor`'s findings: pure analysis of a snapshot (with fds, peers and
//! roles) plus measurements the caller took. Nothing here reads `/proc`.

pub mod hygiene;
pub mod maxbuffer;
pub mod workers;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::analysis::roles::Roles;
use crate::model::{Peers, Pid, Snapshot};

/// How bad a finding is; `--fail-on` compares against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

/// One thing that is wrong, with the evidence and the fix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub severity: Severity,
    pub pids: Vec<Pid>,
    pub message: String,
    pub evidence: Value,
    pub fix: String,
}

/// A write rate measured into one pipe or socket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub bytes: u64,
    pub seconds: f64,
}

/// What the caller measured or looked up for the analysis.
#[derive(Debug, Clone, Default)]
pub struct Measurements {
    /// `node --version` of readers, by pid.
    pub node_versions: HashMap<Pid, String>,
    /// Write rate into each pipe/socket inode; an entry with `Err` says why
    /// it could not be measured.
    pub rates: HashMap<u64, Result<Rate, String>>,
    /// CPU use (percent of one core) over the sample, by pid.
    pub cpu_percent: HashMap<Pid, f64>,
    /// Zombies seen at the start and still there after the sample.
    pub lasting_zombies: Vec<Pid>,
    /// Whether a sample window was taken (rates, CPU, zombies).
    pub sampled: bool,
}

/// Everything the analysis looks at.
pub struct Input<'a> {
    pub snapshot: &'a Snapshot,
    pub roles: &'a Roles,
    pub peers: &'a Peers,
    /// Processes the user asked about (with their subtrees).
    pub shown: &'a [Pid],
    pub now: DateTime<Utc>,
    pub measured: &'a Measurements,
}

impl Input<'_> {
    /// Seconds since the process started.
    pub fn age(&self, pid: Pid) -> f64 {
        self.snapshot.get(pid).map_or(0.0, |p| {
            (self.now - p.start_time).num_milliseconds() as f64 / 1000.0
        })
    }
}

/// All findings, most severe first.
pub fn diagnose(input: &Input<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(maxbuffer::exec_maxbuffer(input));
    out.extend(maxbuffer::broken_stdout(input));
    out.extend(hygiene::daemon_hygiene(input));
    out.extend(workers::missing_workers(input));
    out.extend(workers::orphan_workers(input));
    out.extend(workers::zombies(input));
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.pids.cmp(&b.pids)));
    out
}

/// The JSON document of `doctor --json`.
#[derive(Debug, Serialize)]
pub struct DoctorDoc<'a> {
    pub schema: &'static str,
    pub generated_at: String,
    pub findings: &'a [Finding],
}

pub const DOCTOR_SCHEMA: &str = "ptree.doctor/1";
