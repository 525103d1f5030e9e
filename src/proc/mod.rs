//! Reading processes from `/proc`.
//!
//! Processes come and go while we read: one that vanishes between listing
//! and reading is dropped; one whose files are unreadable (another user's,
//! without privilege) is kept with what could be read.

pub mod parse;
pub mod peers;
pub mod sockdiag;
pub mod tty;
pub mod users;

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};

use crate::error::Error;
use crate::model::{AccessMode, Argv, FdTarget, Pid, Process, Snapshot, StdFd, StdFds};
use parse::{parse_fd_link, parse_stat, parse_status};

/// Reads files under `/proc` into one reused buffer.
struct Reader {
    path: String,
    buf: Vec<u8>,
}

impl Reader {
    fn new() -> Reader {
        Reader {
            path: String::with_capacity(64),
            buf: Vec::with_capacity(4096),
        }
    }

    /// Reads `/proc/<pid>/<file>` into the buffer.
    fn read(&mut self, pid: Pid, file: &str) -> io::Result<&[u8]> {
        use std::fmt::Write;
        self.path.clear();
        let _ = write!(self.path, "/proc/{}/{}", pid.0, file);
        self.buf.clear();
        File::open(&self.path)?.read_to_end(&mut self.buf)?;
        Ok(&self.buf)
    }
}

/// Pids of all processes, in `/proc` order.
pub fn list_pids() -> Result<Vec<Pid>, Error> {
    let dir = std::fs::read_dir("/proc").map_err(|e| Error::io("/proc", e))?;
    Ok(dir
        .filter_map(Result::ok)
        .filter_map(|e| std::str::from_utf8(e.file_name().as_bytes()).ok()?.parse().ok())
        .map(Pid)
        .collect())
}

/// Facts about the machine needed to interpret per-process numbers.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub ticks_per_second: u64,
    pub boot_time: DateTime<Utc>,
}

impl Clock {
    pub fn read() -> Result<Clock, Error> {
        let ticks_per_second = procfs::ticks_per_second();
        let boot_secs = procfs::boot_time_secs().map_err(|e| Error::Proc {
            what: "/proc/stat btime".into(),
            message: e.to_string(),
        })?;
        let boot_time = Utc
            .timestamp_opt(boot_secs as i64, 0)
            .single()
            .unwrap_or_default();
        Ok(Clock {
            ticks_per_second,
            boot_time,
        })
    }

    pub fn start_time(&self, start_ticks: u64) -> DateTime<Utc> {
        let ms = start_ticks.saturating_mul(1000) / self.ticks_per_second.max(1);
        self.boot_time + chrono::Duration::milliseconds(ms as i64)
    }
}

/// Reads one process's `stat`, `status` and `cmdline`. `Ok(None)` when it
/// exited meanwhile.
fn read_process(r: &mut Reader, pid: Pid, clock: &Clock) -> Option<Process> {
    let stat = parse_stat(r.read(pid, "stat").ok()?).ok()?;
    let status = r.read(pid, "status").ok().map(parse_status);
    let uid = status.as_ref().and_then(|s| s.uid).or_else(|| {
        std::fs::metadata(format!("/proc/{}", pid.0))
            .ok()
            .map(|m| m.uid())
    });
    let argv = r
        .read(pid, "cmdline")
        .map(Argv::from_cmdline)
        .unwrap_or_default();
    Some(Process {
        pid: stat.pid,
        ppid: stat.ppid,
        pgid: stat.pgid,
        sid: stat.sid,
        tty_nr: stat.tty_nr,
        tpgid: stat.tpgid,
        state: stat.state,
        flags: stat.flags,
        nice: stat.nice,
        threads: stat.threads,
        cpu_ticks: stat.utime + stat.stime,
        start_ticks: stat.start_ticks,
        start_time: clock.start_time(stat.start_ticks),
        comm: stat.comm,
        argv,
        uid,
        vm_locked: status.as_ref().is_some_and(|s| s.vm_locked_kb > 0),
        signals: status.and_then(|s| s.signals),
        exe: None,
        cwd: None,
        fds: None,
    })
}

/// Takes a snapshot of every process on the machine.
pub fn read_snapshot() -> Result<Snapshot, Error> {
    let clock = Clock::read()?;
    let pids = list_pids()?;
    let mut r = Reader::new();
    let processes: Vec<Process> = pids
        .into_iter()
        .filter_map(|pid| read_process(&mut r, pid, &clock))
        .collect();
    Ok(Snapshot::new(
        processes,
        Utc::now(),
        clock.ticks_per_second,
        Pid(std::process::id() as i32),
    ))
}

/// Reads one process alone (for a pid given on the command line).
pub fn read_one(pid: Pid) -> Option<Process> {
    let clock = Clock::read().ok()?;
    read_process(&mut Reader::new(), pid, &clock)
}

/// Fills `exe`, `cwd` and fds 0-2 for the given processes: the details
/// only shown processes need.
pub fn fill_details(snapshot: &mut Snapshot, pids: &[Pid]) {
    for &pid in pids {
        let Some(p) = snapshot.get_mut(pid) else {
            continue;
        };
        if p.is_kernel_thread() {
            continue;
        }
        let base = format!("/proc/{}", pid.0);
        p.exe = std::fs::read_link(format!("{base}/exe")).ok();
        p.cwd = std::fs::read_link(format!("{base}/cwd")).ok();
        p.fds = Some(StdFds {
            stdin: read_fd(pid, 0),
            stdout: read_fd(pid, 1),
            stderr: read_fd(pid, 2),
        });
    }
}

/// What `/proc/PID/fd/N` points to, with its access mode for pipes.
pub fn read_fd(pid: Pid, fd: u32) -> StdFd {
    let link = PathBuf::from(format!("/proc/{}/fd/{}", pid.0, fd));
    match std::fs::read_link(&link) {
        Ok(target) => {
            let target = parse_fd_link(target.as_os_str().as_bytes());
            let mode = match target {
                FdTarget::Pipe(_) => fd_mode(&link),
                _ => None,
            };
            StdFd::new(target, mode)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Either the fd is closed or the process is gone; the caller
            // cannot tell, and for a vanished process it does not matter.
            StdFd::new(FdTarget::Closed, None)
        }
        Err(_) => StdFd::new(FdTarget::Unreadable, None),
    }
}

/// The open mode of an fd: the kernel gives the `/proc/PID/fd/N` link the
/// permission bits r (opened for reading) and w (for writing).
pub fn fd_mode(link: &Path) -> Option<AccessMode> {
    let meta = std::fs::symlink_metadata(link).ok()?;
    let (r, w) = (meta.mode() & 0o400 != 0, meta.mode() & 0o200 != 0);
    match (r, w) {
        (true, true) => Some(AccessMode::ReadWrite),
        (true, false) => Some(AccessMode::Read),
        (false, true) => Some(AccessMode::Write),
        (false, false) => None,
    }
}
