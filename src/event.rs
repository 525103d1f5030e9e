//! Signals and process lifecycle events, whatever saw them: tracefs,
//! ptrace, the audit log or a recording. Every source produces these raw
//! events; `crate::watch` enriches them with command lines and ancestry.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{Pid, Tid};

/// A signal number with its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(pub i32);

const NAMES: [&str; 32] = [
    "",
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

impl Signal {
    pub const HUP: Signal = Signal(1);
    pub const INT: Signal = Signal(2);
    pub const KILL: Signal = Signal(9);
    pub const PIPE: Signal = Signal(13);
    pub const TERM: Signal = Signal(15);
    pub const CHLD: Signal = Signal(17);

    /// `SIGTERM`, `SIGRTMIN+3`, or `SIG<n>` for numbers outside 1..=64.
    pub fn name(self) -> String {
        match self.0 {
            1..=31 => NAMES[self.0 as usize].to_string(),
            32..=64 => {
                let rtmin = 34; // glibc reserves 32 and 33
                if self.0 < rtmin {
                    format!("SIG{}", self.0)
                } else if self.0 == rtmin {
                    "SIGRTMIN".to_string()
                } else if self.0 == 64 {
                    "SIGRTMAX".to_string()
                } else {
                    format!("SIGRTMIN+{}", self.0 - rtmin)
                }
            }
            n => format!("SIG{n}"),
        }
    }

    /// Parses `TERM`, `SIGTERM`, `sigterm` or `15`.
    pub fn parse(s: &str) -> Option<Signal> {
        let t = s.trim();
        if let Ok(n) = t.parse::<i32>() {
            return (1..=64).contains(&n).then_some(Signal(n));
        }
        let upper = t.to_ascii_uppercase();
        let name = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        (1..=64).map(Signal).find(|s| s.name() == name)
    }

    /// Signals that end or stop a process by default: what who-killed
    /// reports unless told otherwise.
    pub fn default_watch_set() -> Vec<Signal> {
        [1, 2, 3, 4, 6, 9, 11, 13, 14, 15, 10, 12, 19, 20, 21, 22]
            .into_iter()
            .map(Signal)
            .collect()
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl Serialize for Signal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// `si_code`: how the signal was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigCode {
    /// kill(2), or raise.
    User,
    /// Raised by the kernel (SIGPIPE on write, OOM kill, hangup…).
    Kernel,
    /// sigqueue(3) / rt_sigqueueinfo.
    Queue,
    Timer,
    Mesgq,
    AsyncIo,
    SigIo,
    /// tkill / tgkill.
    Tkill,
    /// Any other value (signal-specific codes like CLD_EXITED).
    Other(i32),
}

impl SigCode {
    pub fn from_raw(code: i32) -> SigCode {
        match code {
            0 => SigCode::User,
            0x80 => SigCode::Kernel,
            -1 => SigCode::Queue,
            -2 => SigCode::Timer,
            -3 => SigCode::Mesgq,
            -4 => SigCode::AsyncIo,
            -5 => SigCode::SigIo,
            -6 => SigCode::Tkill,
            n => SigCode::Other(n),
        }
    }

    pub fn name(self) -> String {
        match self {
            SigCode::User => "SI_USER".into(),
            SigCode::Kernel => "SI_KERNEL".into(),
            SigCode::Queue => "SI_QUEUE".into(),
            SigCode::Timer => "SI_TIMER".into(),
            SigCode::Mesgq => "SI_MESGQ".into(),
            SigCode::AsyncIo => "SI_ASYNCIO".into(),
            SigCode::SigIo => "SI_SIGIO".into(),
            SigCode::Tkill => "SI_TKILL".into(),
            SigCode::Other(n) => format!("{n}"),
        }
    }

    /// Whether a process (rather than the kernel) sent it.
    pub fn from_process(self) -> bool {
        matches!(self, SigCode::User | SigCode::Queue | SigCode::Tkill)
    }
}

impl Serialize for SigCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// What happened to the signal at generation time (tracefs `res`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Queued for delivery.
    Delivered,
    /// Ignored: SIG_IGN, default-ignore, or the target was already dying.
    Ignored,
    /// A standard signal already pending: coalesced.
    Pending,
    /// The real-time queue was full.
    Overflow,
    /// Queued without its siginfo.
    Lostinfo,
    /// The source does not say (ptrace sees only delivered signals; audit
    /// only the syscall).
    Unknown,
}

impl Delivery {
    pub fn from_tracefs_res(res: i32) -> Delivery {
        match res {
            0 => Delivery::Delivered,
            1 => Delivery::Ignored,
            2 => Delivery::Pending,
            3 => Delivery::Overflow,
            4 => Delivery::Lostinfo,
            _ => Delivery::Unknown,
        }
    }
}

/// Which mechanism observed an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Tracefs,
    Ptrace,
    Audit,
    Recording,
}

/// A signal as observed, before enrichment: ids and the kernel's comm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSignal {
    pub time: DateTime<Utc>,
    pub signal: Signal,
    pub code: SigCode,
    pub result: Delivery,
    /// Sent to the whole thread group (kill) rather than one thread.
    pub group: bool,
    /// The sending thread; `None` when the kernel raised it from no task
    /// context, or the source cannot tell.
    pub sender_tid: Option<Tid>,
    /// The sender's process, when the source knows it (record-tgid,
    /// si_pid, audit `pid=`).
    pub sender_pid: Option<Pid>,
    pub sender_comm: Option<String>,
    /// The target thread (or process, for group signals).
    pub target_tid: Tid,
    pub target_comm: String,
    /// `si_value` of a queued signal, when seen.
    pub value: Option<i64>,
    pub via: Via,
}

/// Lifecycle of processes and threads, to keep a live model of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawEvent {
    Signal(RawSignal),
    /// `parent_tid` forked or cloned `child_tid`.
    Fork {
        time: DateTime<Utc>,
        parent_tid: Tid,
        parent_pid: Option<Pid>,
        child_tid: Tid,
        /// The child's thread group when known; a new thread shares its
        /// parent's, a new process is its own.
        child_pid: Option<Pid>,
        comm: String,
    },
    Exec {
        time: DateTime<Utc>,
        pid: Pid,
        filename: String,
        comm: Option<String>,
    },
    /// A thread exited; when it is the last, the process did.
    Exit {
        time: DateTime<Utc>,
        tid: Tid,
        pid: Option<Pid>,
        comm: String,
        /// Wait status when the source knows it (ptrace).
        status: Option<ExitStatus>,
    },
    /// The kernel dropped events (ring buffer overrun).
    Lost {
        time: DateTime<Utc>,
        count: u64,
    },
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "how", rename_all = "lowercase")]
pub enum ExitStatus {
    Exited { code: i32 },
    Signaled { signal: Signal },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(Signal::TERM.name(), "SIGTERM");
        assert_eq!(Signal(34).name(), "SIGRTMIN");
        assert_eq!(Signal(36).name(), "SIGRTMIN+2");
        assert_eq!(Signal(99).name(), "SIG99");
        assert_eq!(Signal::parse("term"), Some(Signal::TERM));
        assert_eq!(Signal::parse("SIGKILL"), Some(Signal::KILL));
        assert_eq!(Signal::parse("9"), Some(Signal::KILL));
        assert_eq!(Signal::parse("0"), None);
        assert_eq!(Signal::parse("NOPE"), None);
    }

    #[test]
    fn codes() {
        assert_eq!(SigCode::from_raw(128), SigCode::Kernel);
        assert_eq!(SigCode::from_raw(-6).name(), "SI_TKILL");
        assert!(SigCode::from_raw(-1).from_process());
        assert!(!SigCode::Kernel.from_process());
    }
}
