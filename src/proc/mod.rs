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
        read_all(File::open(&self.path)?, &mut self.buf)?;
        Ok(&self.buf)
    }
}

/// Reads a whole `/proc` file into `buf` with plain `read` calls.
///
/// `read_to_end` first asks for the file's size (statx + lseek) to size
/// its buffer, and reads until a read returns 0. `/proc` files report size
/// 0, and `stat`, `status` and `cmdline` hand out everything they have in
/// one read when the buffer is large enough, so a short read is the end:
/// this halves the syscalls of a snapshot.
fn read_all(mut file: File, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        let len = buf.len();
        let cap = buf.capacity();
        buf.resize(cap, 0);
        match file.read(&mut buf[len..]) {
            Ok(0) => {
                buf.truncate(len);
                return Ok(());
            }
            Ok(n) => {
                let short = len + n < buf.len();
                buf.truncate(len + n);
                if short {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(len),
            Err(e) => {
                buf.truncate(len);
                return Err(e);
            }
        }
    }
}

/// Pids of all processes, in `/proc` order.
pub fn list_pids() -> Result<Vec<Pid>, Error> {
    let dir = std::fs::read_dir("/proc").map_err(|e| Error::io("/proc", e))?;
    Ok(dir
        .filter_map(Result::ok)
        .filter_map(|e| {
            std::str::from_utf8(e.file_name().as_bytes())
                .ok()?
                .parse()
                .ok()
        })
        .map(Pid)
        .collect())
}

/// Runs `f` over chunks of `items` on up to four threads and concatenates
/// the results in order. Reading `/proc` is syscall-bound and scales with
/// cores; a handful of processes is not worth a thread.
pub fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    const MIN_PER_THREAD: usize = 256;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(4).min(items.len() / MIN_PER_THREAD).max(1);
    if threads == 1 {
        return f(items);
    }
    let size = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(size).map(|c| s.spawn(|| f(c))).collect();
        let mut out = Vec::with_capacity(items.len());
        for (h, chunk) in handles.into_iter().zip(items.chunks(size)) {
            // A panicking reader thread is a bug; fall back to this thread
            // rather than lose the chunk.
            out.extend(h.join().unwrap_or_else(|_| f(chunk)));
        }
        out
    })
}

/// Facts about the machine needed to interpret per-process numbers.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub ticks_per_second: u64,
    pub boot_time: DateTime<Utc>,
}

impl Clock {
    /// The machine's clock facts, read from `/proc/stat` once per run: they
    /// do not change while ptree runs, and per-process reads (`read_one`
    /// in watch loops) would otherwise re-read them every time.
    pub fn read() -> Result<Clock, Error> {
        static CLOCK: std::sync::OnceLock<Clock> = std::sync::OnceLock::new();
        if let Some(c) = CLOCK.get() {
            return Ok(*c);
        }
        let ticks_per_second = procfs::ticks_per_second();
        let boot_secs = procfs::boot_time_secs().map_err(|e| Error::Proc {
            what: "/proc/stat btime".into(),
            message: e.to_string(),
        })?;
        let boot_time = Utc
            .timestamp_opt(boot_secs as i64, 0)
            .single()
            .unwrap_or_default();
        Ok(*CLOCK.get_or_init(|| Clock {
            ticks_per_second,
            boot_time,
        }))
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
        cwd_dev: None,
        root_dev: None,
        fds: None,
    })
}

/// Takes a snapshot of every process on the machine.
pub fn read_snapshot() -> Result<Snapshot, Error> {
    let clock = Clock::read()?;
    let pids = list_pids()?;
    let processes = in_parallel(&pids, |chunk| {
        let mut r = Reader::new();
        chunk
            .iter()
            .filter_map(|&pid| read_process(&mut r, pid, &clock))
            .collect()
    });
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

/// Which per-process details to read beyond `stat`/`status`/`cmdline`.
/// Each costs a syscall or two per shown process, so a view asks only for
/// what it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Details {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub exe_cwd: bool,
}

impl Details {
    /// Everything: for analyses that look at stdin, exe and cwd.
    pub const ALL: Details = Details {
        stdin: true,
        stdout: true,
        stderr: true,
        exe_cwd: true,
    };
}

/// Fills the requested details for the given processes. Fds not asked for
/// are left [`FdTarget::Closed`] with no mode.
pub fn fill_details(snapshot: &mut Snapshot, pids: &[Pid], what: Details) {
    let skipped = || StdFd::new(FdTarget::Closed, None);
    for &pid in pids {
        let Some(p) = snapshot.get_mut(pid) else {
            continue;
        };
        if p.is_kernel_thread() {
            continue;
        }
        if what.exe_cwd {
            let base = format!("/proc/{}", pid.0);
            p.exe = std::fs::read_link(format!("{base}/exe")).ok();
            p.cwd = std::fs::read_link(format!("{base}/cwd")).ok();
            p.cwd_dev = std::fs::metadata(format!("{base}/cwd"))
                .ok()
                .map(|m| m.dev());
            p.root_dev = std::fs::metadata(format!("{base}/root"))
                .ok()
                .map(|m| m.dev());
        }
        p.fds = Some(StdFds {
            stdin: if what.stdin {
                read_fd(pid, 0)
            } else {
                skipped()
            },
            stdout: if what.stdout {
                read_fd(pid, 1)
            } else {
                skipped()
            },
            stderr: if what.stderr {
                read_fd(pid, 2)
            } else {
                skipped()
            },
        });
    }
}

/// The kernel's count of OOM kills since boot (`oom_kill` in
/// /proc/vmstat); 0 where it cannot be read.
pub fn oom_kills() -> u64 {
    std::fs::read_to_string("/proc/vmstat")
        .map_or(0, |text| parse::vmstat_oom_kills(&text).unwrap_or(0))
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
