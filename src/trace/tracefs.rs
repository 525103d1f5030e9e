//! Signals and process lifecycle from the kernel's tracepoints, through a
//! private tracefs instance.
//!
//! ptree never touches the top-level trace buffer, which other tools (and
//! other people) use: it creates `instances/ptree-<pid>`, its own buffer
//! with its own events, options and clock, and removes it when done. An
//! instance left behind by a ptree that was killed is removed by the next
//! one ([`reap_stale`]).
//!
//! Dropping the [`TraceInstance`] is all the cleanup it takes: a caller
//! that catches SIGINT/SIGTERM only has to let it go out of scope (not
//! `std::process::exit`). The tracefs mount ptree may have made is left in
//! place, as systemd would have made it.
//!
//! Only `signal_generate` for the watched targets and signals is filtered
//! in the kernel; fork, exec and exit are recorded for everyone, because a
//! sender is often a short-lived process whose ancestry must be rebuilt
//! from those events after it is gone.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::Utc;

use crate::error::Error;
use crate::event::{RawEvent, Signal};
use crate::trace::tracefs_parse::{
    ClockOffset, Line, TraceClock, parse_cpu_stats_lost, parse_line,
};

/// Where tracefs lives, preferred first. The second is the pre-4.1 path
/// (and an automount point when debugfs is mounted).
const MOUNT_POINTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Instance directories are named `ptree-<owner pid>[-<n>]`.
const INSTANCE_PREFIX: &str = "ptree-";

const HINT_PERMISSION: &str =
    "tracefs needs CAP_SYS_ADMIN or CAP_PERFMON: run with sudo, or use --via ptrace";
const HINT_MISSING: &str =
    "the kernel has no tracefs or no signal tracepoints (CONFIG_FTRACE): use --via ptrace";

/// The filter file takes one page; stay well below it.
const MAX_FILTER_LEN: usize = 3000;

/// Per-call read cap, so one busy burst cannot stall the caller.
const MAX_READ_PER_CALL: usize = 4 << 20;

/// Overrun counters are re-read at most this often.
const STATS_INTERVAL: Duration = Duration::from_millis(250);

const SCHED_EVENTS: [&str; 3] = [
    "sched/sched_process_fork",
    "sched/sched_process_exec",
    "sched/sched_process_exit",
];
const SIGNAL_EVENT: &str = "signal/signal_generate";

/// Distinguishes several instances of one process (tests run in threads).
static INSTANCE_SEQ: AtomicU32 = AtomicU32::new(0);

/// How to set up an instance.
#[derive(Debug, Clone, Copy)]
pub struct TraceOptions {
    /// Ring buffer per CPU. Fork/exec/exit of the whole machine go through
    /// it, so it must absorb a burst while the reader sleeps.
    pub buffer_size_kb: u32,
    /// `None`: `boot` when the kernel has it, else `mono`.
    pub clock: Option<TraceClock>,
}

impl Default for TraceOptions {
    fn default() -> TraceOptions {
        TraceOptions {
            buffer_size_kb: 1024,
            clock: None,
        }
    }
}

/// A private tracefs instance recording signals and process lifecycle.
/// Dropping it stops tracing and removes the instance.
pub struct TraceInstance {
    dir: PathBuf,
    clock: ClockOffset,
    /// `None` only while dropping: the instance cannot be removed while a
    /// file in it is open.
    pipe: Option<File>,
    stats: Vec<File>,
    lost_total: u64,
    stats_checked: Instant,
    /// Bytes after the last newline of the previous read.
    partial: Vec<u8>,
    chunk: Vec<u8>,
    signal_enabled: bool,
    /// Target pids checked here when there were too many for the kernel
    /// filter.
    user_pid_filter: Option<HashSet<i32>>,
}

/// Finds tracefs, mounting it at `/sys/kernel/tracing` when it is not
/// mounted anywhere.
pub fn root() -> Result<PathBuf, Error> {
    for candidate in MOUNT_POINTS {
        let dir = Path::new(candidate);
        match fs::metadata(dir.join("instances")) {
            Ok(_) => return Ok(dir.to_path_buf()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(tracefs_error(dir.display().to_string(), &e)),
        }
    }
    let target = Path::new(MOUNT_POINTS[0]);
    if !target.is_dir() {
        return Err(Error::Tracefs {
            what: target.display().to_string(),
            message: "no tracefs mount point".into(),
            hint: Some(HINT_MISSING),
        });
    }
    mount_tracefs(target).map_err(|e| tracefs_error(format!("mount {}", target.display()), &e))?;
    match fs::metadata(target.join("instances")) {
        Ok(_) => Ok(target.to_path_buf()),
        Err(e) => Err(tracefs_error(
            format!("{} after mounting", target.display()),
            &e,
        )),
    }
}

/// Whether tracefs can be used here: mounted (or mountable), readable
/// (kernel lockdown refuses it), with the tracepoints ptree needs and a
/// writable `instances` directory. Does not create an instance: that
/// allocates a ring buffer per CPU.
pub fn probe() -> Result<(), Error> {
    let root = root()?;
    let clock = root.join("trace_clock");
    File::open(&clock).map_err(|e| tracefs_error(clock.display().to_string(), &e))?;
    for event in [SIGNAL_EVENT].iter().chain(SCHED_EVENTS.iter()) {
        let path = root.join("events").join(event).join("enable");
        if let Err(e) = fs::metadata(&path) {
            return Err(Error::Tracefs {
                what: path.display().to_string(),
                message: e.to_string(),
                hint: Some(HINT_MISSING),
            });
        }
    }
    let instances = root.join("instances");
    nix::unistd::access(&instances, nix::unistd::AccessFlags::W_OK).map_err(|e| {
        tracefs_error(
            instances.display().to_string(),
            &io::Error::from_raw_os_error(e as i32),
        )
    })?;
    Ok(())
}

/// Removes `instances/ptree-<pid>` directories whose owner is gone (a
/// ptree killed before it could clean up). Returns the removed paths.
///
/// An instance whose `trace_pipe` is open cannot be removed (`EBUSY`):
/// that protects a live ptree in another pid namespace, whose pid means
/// nothing here.
pub fn reap_stale() -> Result<Vec<PathBuf>, Error> {
    let instances = root()?.join("instances");
    let entries =
        fs::read_dir(&instances).map_err(|e| tracefs_error(instances.display().to_string(), &e))?;
    let me = std::process::id() as i32;
    let mut removed = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(instance_owner) else {
            continue;
        };
        if owner == me || pid_alive(owner) {
            continue;
        }
        // Only rmdir: writing to a busy instance would disturb its owner.
        if rmdir_instance(&entry.path(), 0).is_ok() {
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

/// Removes an instance directory; the kernel stops and frees everything
/// in it. Needs no [`TraceInstance`], takes no lock and touches no shared
/// state, so a cleanup path that runs after a signal (or a panic hook) can
/// call it with a path saved from [`TraceInstance::dir`]. It allocates, so
/// it is not for use inside a signal handler itself. The instance's files
/// must be closed first, or the kernel answers `EBUSY`. Already gone is
/// success.
pub fn remove_instance_dir(path: &Path) -> Result<(), Error> {
    rmdir_instance(path, 5)
}

/// `rmdir`, retrying `EBUSY` a few times: a reader of ours may be closing
/// its files concurrently.
fn rmdir_instance(path: &Path, busy_retries: u32) -> Result<(), Error> {
    let mut attempts = 0;
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempts < busy_retries => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(tracefs_error(format!("rmdir {}", path.display()), &e)),
        }
    }
}

impl TraceInstance {
    /// Creates and starts an instance recording fork, exec and exit.
    /// Signals are recorded once [`TraceInstance::set_signal_filter`]
    /// names targets.
    pub fn create(options: &TraceOptions) -> Result<TraceInstance, Error> {
        let root = root()?;
        let _ = reap_stale();
        let seq = INSTANCE_SEQ.fetch_add(1, Ordering::Relaxed);
        let name = match seq {
            0 => format!("{INSTANCE_PREFIX}{}", std::process::id()),
            n => format!("{INSTANCE_PREFIX}{}-{n}", std::process::id()),
        };
        let dir = root.join("instances").join(name);
        match fs::create_dir(&dir) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Left by an earlier process that had our pid (this name
                // is used once per process); busy if it is alive elsewhere.
                rmdir_instance(&dir, 0)?;
                fs::create_dir(&dir)
            }
            other => other,
        }
        .map_err(|e| tracefs_error(format!("mkdir {}", dir.display()), &e))?;

        // From here on, Drop removes the directory whatever fails next.
        let mut instance = TraceInstance {
            dir,
            clock: ClockOffset::from_readings(TraceClock::Boot, 0, 0),
            pipe: None,
            stats: Vec::new(),
            lost_total: 0,
            stats_checked: Instant::now(),
            partial: Vec::new(),
            chunk: vec![0; 64 * 1024],
            signal_enabled: false,
            user_pid_filter: None,
        };
        instance.configure(options)?;
        Ok(instance)
    }

    fn configure(&mut self, options: &TraceOptions) -> Result<(), Error> {
        // The sender's process: without it only the thread is known.
        self.write("options/record-tgid", "1")?;
        let clock = self.choose_clock(options.clock)?;
        self.write("buffer_size_kb", &options.buffer_size_kb.to_string())?;
        // Wake the reader on any data rather than when half full. Older
        // kernels lack the file; they wake on any data anyway.
        let _ = self.write("buffer_percent", "0");
        for event in SCHED_EVENTS {
            self.write(&format!("events/{event}/enable"), "1")?;
        }
        self.write("tracing_on", "1")?;
        self.clock = measure_offset(clock)?;

        let pipe_path = self.dir.join("trace_pipe");
        let pipe = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&pipe_path)
            .map_err(|e| tracefs_error(pipe_path.display().to_string(), &e))?;
        self.pipe = Some(pipe);
        self.stats = open_cpu_stats(&self.dir.join("per_cpu"));
        self.lost_total = self.read_lost();
        Ok(())
    }

    fn choose_clock(&self, wanted: Option<TraceClock>) -> Result<TraceClock, Error> {
        let choices = match wanted {
            Some(c) => vec![c],
            None => vec![TraceClock::Boot, TraceClock::Mono],
        };
        let mut last = None;
        for clock in choices {
            match self.write("trace_clock", clock.name()) {
                Ok(()) => return Ok(clock),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Usage("no trace clock".into())))
    }

    /// The instance directory, e.g. to hand to [`remove_instance_dir`]
    /// from a cleanup path.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How this instance's timestamps map to wall-clock time.
    pub fn clock(&self) -> ClockOffset {
        self.clock
    }

    /// Records only signals sent to these task ids (a process's pid for
    /// signals to the process, a thread's tid for signals to one thread)
    /// and with these numbers; an empty `signals` means all signals, an
    /// empty `pids` stops recording signals. Can be called while reading:
    /// the kernel swaps filters atomically.
    pub fn set_signal_filter(&mut self, pids: &[i32], signals: &[Signal]) -> Result<(), Error> {
        let enable = format!("events/{SIGNAL_EVENT}/enable");
        let Some(filter) = signal_filter(pids, signals) else {
            if self.signal_enabled {
                self.write(&enable, "0")?;
                self.signal_enabled = false;
            }
            return Ok(());
        };
        self.user_pid_filter = (!filter.in_kernel_pids).then(|| pids.iter().copied().collect());
        self.write(&format!("events/{SIGNAL_EVENT}/filter"), &filter.expr)?;
        if !self.signal_enabled {
            self.write(&enable, "1")?;
            self.signal_enabled = true;
        }
        Ok(())
    }

    /// Waits up to `timeout` for events and returns those read, possibly
    /// none. A signal interrupting the wait returns early with what was
    /// read, so a caller's Ctrl-C flag is seen promptly. Ring buffer
    /// overruns come back as [`RawEvent::Lost`].
    pub fn read_events(&mut self, timeout: Duration) -> Result<Vec<RawEvent>, Error> {
        let mut events = Vec::new();
        if !self.drain(&mut events)? && wait_readable(self.pipe_fd()?, timeout)? {
            self.drain(&mut events)?;
        }
        if self.stats_checked.elapsed() >= STATS_INTERVAL {
            self.stats_checked = Instant::now();
            let total = self.read_lost();
            if total > self.lost_total {
                // Overwritten events were older than anything read now.
                events.insert(
                    0,
                    RawEvent::Lost {
                        time: Utc::now(),
                        count: total - self.lost_total,
                    },
                );
                self.lost_total = total;
            }
        }
        Ok(events)
    }

    fn pipe_fd(&self) -> Result<i32, Error> {
        self.pipe
            .as_ref()
            .map(|f| f.as_raw_fd())
            .ok_or_else(|| Error::Usage("trace_pipe is closed".into()))
    }

    /// Reads what is available without blocking; whether anything was.
    fn drain(&mut self, events: &mut Vec<RawEvent>) -> Result<bool, Error> {
        let mut total = 0;
        while total < MAX_READ_PER_CALL {
            let Some(pipe) = self.pipe.as_mut() else {
                break;
            };
            match read_some(pipe, &mut self.chunk, &mut self.partial) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => {
                    let path = self.dir.join("trace_pipe");
                    return Err(tracefs_error(path.display().to_string(), &e));
                }
            }
        }
        self.take_lines(events);
        Ok(total > 0)
    }

    /// Parses complete lines, keeping a trailing partial one for later.
    fn take_lines(&mut self, events: &mut Vec<RawEvent>) {
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        for raw in self.partial[..end].split(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(raw);
            // `[LOST n EVENTS]` lines repeat what the overrun counters say;
            // the counters are the one source of Lost events.
            let Ok(Line::Event(ev)) = parse_line(&line) else {
                continue;
            };
            let Some(event) = ev.to_raw_event(&self.clock) else {
                continue;
            };
            if let (RawEvent::Signal(s), Some(pids)) = (&event, &self.user_pid_filter)
                && !pids.contains(&s.target_tid.0)
            {
                continue;
            }
            events.push(event);
        }
        self.partial.drain(..=end);
    }

    fn read_lost(&self) -> u64 {
        let mut buf = [0u8; 512];
        self.stats
            .iter()
            .filter_map(|f| {
                // The kernel regenerates stats on every read from offset 0.
                let n = f.read_at(&mut buf, 0).ok()?;
                parse_cpu_stats_lost(std::str::from_utf8(&buf[..n]).ok()?)
            })
            .sum()
    }

    fn write(&self, file: &str, value: &str) -> Result<(), Error> {
        let path = self.dir.join(file);
        write_value(&path, value)
            .map_err(|e| tracefs_error(format!("writing {value:?} to {}", path.display()), &e))
    }
}

impl Drop for TraceInstance {
    fn drop(&mut self) {
        // Stop recording before the files go, then close them: open files
        // keep the instance busy.
        let _ = write_value(&self.dir.join("tracing_on"), "0");
        let _ = write_value(&self.dir.join("events/enable"), "0");
        self.pipe = None;
        self.stats.clear();
        let _ = remove_instance_dir(&self.dir);
    }
}

/// A `signal_generate` filter expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalFilter {
    pub expr: String,
    /// False when the pid list was too long for the kernel and the
    /// expression filters only on signal numbers.
    pub in_kernel_pids: bool,
}

/// `(pid == 12 || pid >= 20 && pid <= 29) && (sig == 15 || sig == 9)`;
/// `None` for no pids. Runs of consecutive pids become ranges.
pub fn signal_filter(pids: &[i32], signals: &[Signal]) -> Option<SignalFilter> {
    let mut sorted: Vec<i32> = pids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let first = *sorted.first()?;

    let mut ranges: Vec<(i32, i32)> = vec![(first, first)];
    for &pid in &sorted[1..] {
        match ranges.last_mut() {
            Some(last) if pid == last.1 + 1 => last.1 = pid,
            _ => ranges.push((pid, pid)),
        }
    }
    let mut pid_terms = Vec::new();
    for (lo, hi) in ranges {
        match hi - lo {
            0 => pid_terms.push(format!("pid == {lo}")),
            1 => {
                pid_terms.push(format!("pid == {lo}"));
                pid_terms.push(format!("pid == {hi}"));
            }
            _ => pid_terms.push(format!("(pid >= {lo} && pid <= {hi})")),
        }
    }
    let mut sigs: Vec<i32> = signals.iter().map(|s| s.0).collect();
    sigs.sort_unstable();
    sigs.dedup();
    let sig_expr = sigs
        .iter()
        .map(|s| format!("sig == {s}"))
        .collect::<Vec<_>>()
        .join(" || ");
    let pid_expr = pid_terms.join(" || ");

    let expr = match (sig_expr.is_empty(), pid_expr.len() > MAX_FILTER_LEN) {
        (true, false) => format!("({pid_expr})"),
        (false, false) => format!("({pid_expr}) && ({sig_expr})"),
        // Too many pids: only signals in the kernel, pids checked here.
        (false, true) => format!("({sig_expr})"),
        // Neither: record every signal and check pids here.
        (true, true) => "sig > 0".to_string(),
    };
    Some(SignalFilter {
        expr,
        in_kernel_pids: pid_expr.len() <= MAX_FILTER_LEN,
    })
}

/// `ptree-1234` or `ptree-1234-2` → 1234.
fn instance_owner(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(INSTANCE_PREFIX)?;
    let pid = rest.split_once('-').map_or(rest, |(pid, _)| pid);
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().filter(|&p| p > 0)
}

fn pid_alive(pid: i32) -> bool {
    use nix::errno::Errno;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        // EPERM: it exists, it is just not ours.
        Err(_) => true,
    }
}

/// One `write(2)` of the whole value: tracefs parses each write on its own.
fn write_value(path: &Path, value: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    let n = file.write(value.as_bytes())?;
    if n != value.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
    }
    Ok(())
}

fn open_cpu_stats(per_cpu: &Path) -> Vec<File> {
    let Ok(dir) = fs::read_dir(per_cpu) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().as_bytes().starts_with(b"cpu"))
        .filter_map(|e| File::open(e.path().join("stats")).ok())
        .collect()
}

/// One non-blocking read of a `trace_pipe`, appended to `partial`: the
/// bytes read, 0 when there is nothing now (end, would block, interrupted).
pub(crate) fn read_some(
    pipe: &mut File,
    chunk: &mut [u8],
    partial: &mut Vec<u8>,
) -> io::Result<usize> {
    match pipe.read(chunk) {
        Ok(n) => {
            partial.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

fn tracefs_error(what: impl Into<String>, e: &io::Error) -> Error {
    hinted_error(what, e, HINT_PERMISSION, HINT_MISSING)
}

/// A tracefs I/O error with the hint its errno calls for: `permission`
/// when not allowed, `missing` when the kernel lacks the events (ENODEV).
pub(crate) fn hinted_error(
    what: impl Into<String>,
    e: &io::Error,
    permission: &'static str,
    missing: &'static str,
) -> Error {
    let hint = match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => Some(permission),
        Some(libc::ENODEV) => Some(missing),
        _ => None,
    };
    Error::Tracefs {
        what: what.into(),
        message: e.to_string(),
        hint,
    }
}

/// Relates the trace clock to wall-clock time. Both clocks are read
/// back to back a few times and the tightest pair kept, so the offset is
/// good to a few microseconds.
fn measure_offset(clock: TraceClock) -> Result<ClockOffset, Error> {
    let id = match clock {
        TraceClock::Boot => libc::CLOCK_BOOTTIME,
        TraceClock::Mono => libc::CLOCK_MONOTONIC,
    };
    let mut best: Option<(i128, ClockOffset)> = None;
    for _ in 0..5 {
        let before = clock_ns(id)?;
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let after = clock_ns(id)?;
        let spread = after - before;
        if best.as_ref().is_none_or(|(s, _)| spread < *s) {
            let offset = ClockOffset::from_readings(clock, real, (before + after) / 2);
            best = Some((spread, offset));
        }
    }
    best.map(|(_, o)| o)
        .ok_or_else(|| Error::Usage("clock not measured".into()))
}

fn clock_ns(id: libc::clockid_t) -> Result<i128, Error> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    // (nix::time needs nix's "time" feature, not enabled in this crate.)
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    if rc != 0 {
        return Err(tracefs_error("clock_gettime", &io::Error::last_os_error()));
    }
    Ok(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
}

/// Waits until `fd` is readable; `false` on timeout or when a signal
/// interrupted the wait.
fn wait_readable(fd: i32, timeout: Duration) -> Result<bool, Error> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd, count 1. (nix::poll needs nix's "poll"
    // feature, not enabled in this crate.)
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(tracefs_error("poll trace_pipe", &e));
    }
    Ok(rc > 0)
}

fn mount_tracefs(target: &Path) -> io::Result<()> {
    let source = c"tracefs";
    let target = CString::new(target.as_os_str().as_bytes())?;
    // SAFETY: NUL-terminated strings that outlive the call; no data.
    // (nix::mount needs nix's "mount" feature, not enabled in this crate.)
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            source.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_expressions() {
        assert_eq!(signal_filter(&[], &[Signal::TERM]), None);
        let f = signal_filter(&[13, 12], &[Signal::TERM, Signal::KILL]).unwrap();
        assert_eq!(
            f.expr,
            "(pid == 12 || pid == 13) && (sig == 9 || sig == 15)"
        );
        assert!(f.in_kernel_pids);
        let f = signal_filter(&[5, 20, 21, 22, 23, 5], &[]).unwrap();
        assert_eq!(f.expr, "(pid == 5 || (pid >= 20 && pid <= 23))");
    }

    #[test]
    fn too_many_pids_filter_in_userspace() {
        let pids: Vec<i32> = (0..2000).map(|i| 1000 + i * 2).collect();
        let f = signal_filter(&pids, &[Signal::TERM]).unwrap();
        assert_eq!(f.expr, "(sig == 15)");
        assert!(!f.in_kernel_pids);
        let f = signal_filter(&pids, &[]).unwrap();
        assert_eq!(f.expr, "sig > 0");
    }

    #[test]
    fn instance_names() {
        assert_eq!(instance_owner("ptree-1234"), Some(1234));
        assert_eq!(instance_owner("ptree-1234-3"), Some(1234));
        assert_eq!(instance_owner("ptree-"), None);
        assert_eq!(instance_owner("ptree-0"), None);
        assert_eq!(instance_owner("ptree-x1"), None);
        assert_eq!(instance_owner("ptree_probe"), None);
        assert_eq!(instance_owner("other-12"), None);
    }
}
