//! Plain data read from the kernel: what every other module consumes.
//!
//! Readers in `proc/` produce these types; analysis and renderers only
//! consume them, so they can be built by hand in unit tests.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub i32);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_newtype!(
    /// A process (thread group) id.
    Pid
);
id_newtype!(
    /// A thread id; equal to the [`Pid`] only for a process's main thread.
    Tid
);
id_newtype!(
    /// A process group id: the pid of the group's leader.
    Pgid
);

impl Pid {
    /// The "no parent" value the kernel reports for PID 1 and kthreadd.
    pub const NONE: Pid = Pid(0);
    pub const INIT: Pid = Pid(1);
}

/// Kernel task flag: the task is a kernel thread (`PF_KTHREAD`).
pub const PF_KTHREAD: u32 = 0x0020_0000;

/// An argument vector kept byte for byte: Linux allows any bytes but NUL,
/// and a diagnostic tool must not lose the ones that are not UTF-8.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Argv(pub Vec<Vec<u8>>);

impl Argv {
    /// Splits the raw contents of `/proc/PID/cmdline`.
    ///
    /// Arguments are NUL-terminated; empty arguments are kept. A process
    /// that rewrote its title (as PM2 and Egg do) may leave one long
    /// argument padded with NULs or spaces; trailing empty padding is
    /// dropped so the title reads as one argument.
    pub fn from_cmdline(raw: &[u8]) -> Argv {
        if raw.is_empty() {
            return Argv(Vec::new());
        }
        let body = raw.strip_suffix(b"\0").unwrap_or(raw);
        let mut args: Vec<Vec<u8>> = body.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
        // A retitled process (`process.title = …`) zero-fills the rest of
        // its argument area: a run of NULs that is padding, not arguments.
        // One trailing empty argument is taken as real unless the first
        // argument reads like a title (it contains a space).
        let trailing = args.iter().rev().take_while(|a| a.is_empty()).count();
        let retitled = args.first().is_some_and(|a| a.contains(&b' '));
        if trailing >= 2 || (trailing >= 1 && retitled) {
            args.truncate((args.len() - trailing).max(1));
        }
        Argv(args)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The arguments as lossy strings, for matching (never for display).
    pub fn lossy(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    /// Arguments joined by spaces with non-printable and non-UTF-8 bytes
    /// escaped as `\xNN`: what ptree shows.
    pub fn display(&self) -> String {
        let mut out = String::new();
        for (i, arg) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            escape_bytes_into(arg, &mut out);
        }
        // Titles set by the program are often padded with spaces.
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out
    }

    /// Each argument escaped like [`Argv::display`], for JSON arrays.
    pub fn escaped(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|a| {
                let mut s = String::new();
                escape_bytes_into(a, &mut s);
                s
            })
            .collect()
    }

    /// Whether any argument contains `needle` (byte-wise, like `pgrep -f`
    /// on the NUL-to-space joined command line).
    pub fn joined_contains(&self, needle: &[u8]) -> bool {
        if needle.is_empty() {
            return true;
        }
        let joined = self.0.join(&b' ');
        joined.windows(needle.len()).any(|w| w == needle)
    }
}

/// Escapes control characters, backslashes and invalid UTF-8 as `\xNN`
/// (the convention of `strace -x` and `ls -b`), keeping valid UTF-8 text.
pub fn escape_bytes_into(bytes: &[u8], out: &mut String) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                if c == '\\' {
                    out.push_str("\\\\");
                } else {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
}

/// Escapes `bytes` into a new string; see [`escape_bytes_into`].
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut s = String::new();
    escape_bytes_into(bytes, &mut s);
    s
}

/// Whether a file descriptor was opened for reading, writing or both.
/// Decides which end of a pipe a process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    Read,
    Write,
    ReadWrite,
}

impl AccessMode {
    pub fn reads(self) -> bool {
        matches!(self, AccessMode::Read | AccessMode::ReadWrite)
    }
    pub fn writes(self) -> bool {
        matches!(self, AccessMode::Write | AccessMode::ReadWrite)
    }
}

/// What one file descriptor refers to, from the `/proc/PID/fd/N` link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdTarget {
    /// A terminal (`/dev/pts/N`, `/dev/ttyN`, `/dev/console`).
    Tty(PathBuf),
    /// `/dev/null`: output is discarded.
    Null,
    /// A path in the file system (regular file, fifo by path, device).
    File(PathBuf),
    /// An anonymous pipe, by inode.
    Pipe(u64),
    /// A socket, by inode. Node's child stdio are AF_UNIX socket pairs.
    Socket(u64),
    /// `anon_inode:[eventfd]` and friends.
    AnonInode(String),
    /// The descriptor is not open.
    Closed,
    /// The process exists but its fds cannot be read (permissions).
    Unreadable,
}

/// One of fds 0, 1, 2 with the mode it was opened with (when readable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdFd {
    pub target: FdTarget,
    pub mode: Option<AccessMode>,
}

impl StdFd {
    pub fn new(target: FdTarget, mode: Option<AccessMode>) -> StdFd {
        StdFd { target, mode }
    }
}

/// Fds 0, 1 and 2 of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdFds {
    pub stdin: StdFd,
    pub stdout: StdFd,
    pub stderr: StdFd,
}

/// Signal masks from `/proc/PID/status`, bit `n-1` for signal `n`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SignalMasks {
    /// Signals with a handler installed (SigCgt).
    pub caught: u64,
    /// Ignored signals (SigIgn).
    pub ignored: u64,
    /// Blocked signals of the main thread (SigBlk).
    pub blocked: u64,
}

impl SignalMasks {
    pub fn catches(&self, signo: u32) -> bool {
        (1..=64).contains(&signo) && self.caught & (1u64 << (signo - 1)) != 0
    }
    pub fn ignores(&self, signo: u32) -> bool {
        (1..=64).contains(&signo) && self.ignored & (1u64 << (signo - 1)) != 0
    }
}

/// One process as read from `/proc`.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: Pid,
    pub ppid: Pid,
    pub pgid: Pgid,
    pub sid: Pid,
    /// Controlling terminal as the kernel's encoded device number; 0: none.
    pub tty_nr: u32,
    /// Foreground process group of the controlling terminal, -1 if none.
    pub tpgid: i32,
    /// State letter (R, S, D, Z, T, t, I, X).
    pub state: char,
    /// Kernel task flags (`PF_*`).
    pub flags: u32,
    pub nice: i64,
    pub threads: i64,
    /// utime + stime in clock ticks.
    pub cpu_ticks: u64,
    /// Start time in clock ticks since boot: the ordering key of `ps f`.
    pub start_ticks: u64,
    pub start_time: DateTime<Utc>,
    /// The kernel's 15-byte task name; may contain spaces and `)`.
    pub comm: Vec<u8>,
    pub argv: Argv,
    /// Effective uid from status, or the owner of `/proc/PID` when status
    /// is unreadable.
    pub uid: Option<u32>,
    /// Pages locked in memory (`VmLck` > 0): the `L` of STAT.
    pub vm_locked: bool,
    pub signals: Option<SignalMasks>,
    pub exe: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    /// Device of the file system holding the cwd, and of the process's
    /// root: different means the cwd pins another mount.
    pub cwd_dev: Option<u64>,
    pub root_dev: Option<u64>,
    /// Fds 0-2, read only for the processes that are shown.
    pub fds: Option<StdFds>,
}

impl Process {
    /// A process known only by its pid: seen in an event before any
    /// snapshot or `/proc` read described it.
    pub fn unknown(pid: Pid) -> Process {
        Process {
            pid,
            ppid: Pid::NONE,
            pgid: Pgid(0),
            sid: Pid(0),
            tty_nr: 0,
            tpgid: -1,
            state: '?',
            flags: 0,
            nice: 0,
            threads: 1,
            cpu_ticks: 0,
            start_ticks: 0,
            start_time: DateTime::<Utc>::UNIX_EPOCH,
            comm: Vec::new(),
            argv: Argv::default(),
            uid: None,
            vm_locked: false,
            signals: None,
            exe: None,
            cwd: None,
            cwd_dev: None,
            root_dev: None,
            fds: None,
        }
    }

    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
    pub fn comm_lossy(&self) -> String {
        escape_bytes(&self.comm)
    }
    /// The command as `ps` shows it: argv, or `[comm]` when there is none
    /// (kernel threads, zombies, unreadable), with ` <defunct>` for zombies.
    pub fn command(&self) -> String {
        let mut s = if self.argv.is_empty() {
            format!("[{}]", self.comm_lossy())
        } else {
            self.argv.display()
        };
        if self.is_zombie() {
            s.push_str(" <defunct>");
        }
        s
    }
}

/// Every process of the machine at (nearly) one instant.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub taken_at: DateTime<Utc>,
    /// Ordered as `ps f` orders: by start time, then pid.
    pub processes: Vec<Process>,
    pub index: HashMap<Pid, usize>,
    /// Clock ticks per second, to turn tick counts into time.
    pub ticks_per_second: u64,
    /// The pid of the process that took the snapshot (hidden from matches).
    pub reader_pid: Pid,
}

impl Snapshot {
    /// Builds the index and the `ps f` ordering.
    pub fn new(
        mut processes: Vec<Process>,
        taken_at: DateTime<Utc>,
        ticks_per_second: u64,
        reader_pid: Pid,
    ) -> Snapshot {
        processes.sort_by_key(|p| p.pid);
        // Stable: equal start times keep pid order, as procps does.
        processes.sort_by_key(|p| p.start_ticks);
        let index = processes
            .iter()
            .enumerate()
            .map(|(i, p)| (p.pid, i))
            .collect();
        Snapshot {
            taken_at,
            processes,
            index,
            ticks_per_second,
            reader_pid,
        }
    }

    pub fn get(&self, pid: Pid) -> Option<&Process> {
        self.index.get(&pid).map(|&i| &self.processes[i])
    }

    pub fn get_mut(&mut self, pid: Pid) -> Option<&mut Process> {
        self.index.get(&pid).map(|&i| &mut self.processes[i])
    }

    /// The parent of `pid`, when it is in the snapshot.
    pub fn parent(&self, pid: Pid) -> Option<&Process> {
        let p = self.get(pid)?;
        if p.ppid == Pid::NONE || p.ppid == p.pid {
            return None;
        }
        self.get(p.ppid)
    }

    /// Ancestors of `pid`, nearest first, up to a root.
    pub fn ancestors(&self, pid: Pid) -> Vec<&Process> {
        let mut out = Vec::new();
        let mut cur = pid;
        while let Some(parent) = self.parent(cur) {
            if out.iter().any(|p: &&Process| p.pid == parent.pid) {
                break; // defensive: a cycle cannot happen, but never loop
            }
            out.push(parent);
            cur = parent.pid;
        }
        out
    }

    /// Children of every process, in `ps f` order.
    pub fn children_map(&self) -> HashMap<Pid, Vec<Pid>> {
        let mut map: HashMap<Pid, Vec<Pid>> = HashMap::new();
        for p in &self.processes {
            if p.ppid != Pid::NONE && p.ppid != p.pid {
                map.entry(p.ppid).or_default().push(p.pid);
            }
        }
        map
    }
}

/// A process on the other end of a pipe or socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Peer {
    pub pid: Pid,
    pub comm: String,
}

/// Who holds the other end of each shown process's stdout and stderr.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    /// Keyed by (pid, fd number 1 or 2).
    pub by_fd: HashMap<(Pid, u8), Vec<Peer>>,
    /// Fds whose other end was not found while some processes' fds could
    /// not be read: "no reader" would be a guess.
    pub unknown: std::collections::HashSet<(Pid, u8)>,
}

impl Peers {
    /// Whether the absence of peers for this fd is certain.
    pub fn is_unknown(&self, pid: Pid, fd: u8) -> bool {
        self.unknown.contains(&(pid, fd))
    }

    pub fn of(&self, pid: Pid, fd: u8) -> &[Peer] {
        self.by_fd.get(&(pid, fd)).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_keeps_empty_arguments_and_bytes() {
        let a = Argv::from_cmdline(b"prog\0\0x\xff\0");
        assert_eq!(a.0, vec![b"prog".to_vec(), b"".to_vec(), b"x\xff".to_vec()]);
        assert_eq!(a.display(), "prog  x\\xff");
    }

    #[test]
    fn argv_drops_title_padding() {
        let a = Argv::from_cmdline(b"PM2 v5.4.3: God Daemon (/x)  \0\0\0\0");
        assert_eq!(Argv::from_cmdline(b"egg-server\0\0\0\0").0.len(), 1);
        assert_eq!(Argv::from_cmdline(b"a\0\0").0, vec![b"a".to_vec(), vec![]]);
        assert_eq!(a.0.len(), 1);
        assert_eq!(a.display(), "PM2 v5.4.3: God Daemon (/x)");
    }

    #[test]
    fn escapes_control_characters() {
        assert_eq!(escape_bytes(b"a\nb\\"), "a\\x0ab\\\\");
        assert_eq!(escape_bytes("héllo".as_bytes()), "héllo");
    }

    #[test]
    fn signal_masks() {
        let m = SignalMasks {
            caught: 1 << 14,
            ignored: 1 << 12,
            blocked: 0,
        };
        assert!(m.catches(15));
        assert!(m.ignores(13));
        assert!(!m.catches(0));
        assert!(!m.catches(65));
    }
}
