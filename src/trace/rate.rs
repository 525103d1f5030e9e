//! How many bytes some processes write into one pipe or socket per second,
//! counted by the kernel's syscall tracepoints.
//!
//! `ptree doctor` uses this for the `child_process.exec` maxBuffer
//! pitfall: a server whose stdout is a pipe (or an AF_UNIX socket) read
//! by a Node wrapper that kills it after 1 MiB. What matters is the bytes
//! that went into *that* pipe, not what the server writes elsewhere:
//! `/proc/PID/io` `wchar` counts log files too, and the bytes of reaped
//! children, so it cannot tell.
//!
//! # Method
//!
//! A private tracefs instance (`instances/ptree-<pid>-rate-<n>`, a name
//! [`tracefs::reap_stale`] recognises) enables, for `write`, `writev`,
//! `sendto`, `sendmsg`, `splice`, `vmsplice` and `sendfile64`:
//!
//! - `sys_enter_*` filtered in the kernel on the writers' thread ids
//!   (`common_pid`) *and* on the target fds: the call was aimed at the
//!   pipe;
//! - `sys_exit_*` filtered on the thread ids only (an exit event has no
//!   fd): its `ret` is what the call actually wrote, which is less than
//!   asked on a partial write to a non-blocking pipe, and negative for
//!   `EAGAIN`.
//!
//! A thread runs one syscall at a time, so an exit belongs to the last
//! enter seen for that thread; exits without a target enter (the log file
//! writes) are ignored.
//!
//! Alternatives measured on Linux 6.18 and rejected: `sock/sock_send_length`
//! fires for `write()`/`writev()` on AF_UNIX stream sockets (family 1, with
//! the length sent) but carries no fd, only a hashed socket address, so
//! it cannot tell the stdout socket from the cluster IPC channel an Egg
//! worker also writes to, and it never fires for pipes. Histogram
//! triggers or synthetic events could join enter and exit in the kernel,
//! but synthetic events are global, not per instance.
//!
//! # Window
//!
//! Writes are attributed to the moment they return. Tracing starts a short
//! pre-roll before the window, so a write already in progress when the
//! window opens (blocked on a full pipe) is still matched to its enter;
//! one blocked for longer than the pre-roll is missed. The window is
//! delimited by two `trace_marker` lines in the instance's own buffer, on
//! its `mono` clock, so `seconds` is measured by the same clock as the
//! events and nothing is converted to wall time.
//!
//! # Accuracy and cost (measured on a 2-vCPU VM, Linux 6.18)
//!
//! - Node writers at a known rate into a pipe, an AF_UNIX socketpair, and
//!   two writers sharing a pipe: within 0.7 % of the true rate; a writer
//!   also logging 2 MB/s to a file: its log bytes are not counted.
//! - Paced 100-byte writes: exact (to 0.1 %) up to 200 000 writes/s.
//!   Beyond what the reader can format and parse (about 400 000 target
//!   writes/s here) the ring buffer overruns: [`RateSample::lost_events`]
//!   is then non-zero and `bytes` a lower bound, still far above any
//!   maxBuffer threshold.
//! - ptree itself: about 0.3 s of CPU per 2 s window at 100 000 target
//!   writes/s, nothing measurable at 1 000.
//! - Everyone else: enabling a syscall tracepoint sends every syscall on
//!   the machine through the tracepoint path while the window lasts
//!   (filtered events are discarded in the kernel): tens of nanoseconds
//!   per syscall, 10-30 % on a syscall-bound `dd bs=1`.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::model::{Pid, Tid};
use crate::trace::tracefs;
use crate::trace::tracefs_parse::parse_cpu_stats_lost;

/// What [`RateSample::method`] says for this module's counting.
pub const METHOD: &str = "tracefs syscalls (fd-filtered enter, ret of exit)";

/// A write already blocked when the window opens is matched if it began
/// less than this before.
const PRE_ROLL: Duration = Duration::from_millis(100);

/// Threads started during the window are added this often.
const TASK_REFRESH: Duration = Duration::from_millis(250);

/// After a read that found data, wait this long before the next one, so a
/// busy writer costs a few reads a second rather than one wake-up per
/// event.
const READ_BATCH: Duration = Duration::from_millis(10);

/// The filter file takes one page; stay well below it.
const MAX_FILTER_LEN: usize = 3000;

/// Ring buffer per CPU: absorbs the writers' events between two reads.
const BUFFER_SIZE_KB: u32 = 1024;

/// Text read per [`RateInstance::drain`] call, so a writer faster than
/// the reader cannot hold the window open past its end.
const MAX_READ_PER_CALL: usize = 4 << 20;

const MARK_BEGIN: &str = "ptree-rate-begin";
const MARK_END: &str = "ptree-rate-end";

/// Instance names: `ptree-<pid>-rate-<n>`, whose owner pid
/// [`tracefs::reap_stale`] reads from the second dash-separated part.
static INSTANCE_SEQ: AtomicU32 = AtomicU32::new(0);

const HINT_PERMISSION: &str =
    "measuring a write rate needs tracefs, which needs root (CAP_SYS_ADMIN): run with sudo";
const HINT_MISSING: &str = "the kernel has no syscall tracepoints (CONFIG_FTRACE_SYSCALLS): the write rate cannot be measured";

/// One writer: a process and those of its fds that point at the pipe or
/// socket being measured (as read from `/proc/PID/fd`; usually 1 and/or 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteTarget {
    pub pid: Pid,
    pub fds: Vec<u32>,
}

/// Bytes the targets wrote into their pipe or socket during a window.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSample {
    /// Bytes the write calls returned (not what they asked to write).
    pub bytes: u64,
    /// Length of the window, on the trace clock.
    pub seconds: f64,
    /// Calls that wrote at least one byte.
    pub writes: u64,
    /// Events the ring buffer lost: when not 0, `bytes` is a lower bound.
    pub lost_events: u64,
    /// How the bytes were counted, for reports.
    pub method: &'static str,
}

impl RateSample {
    /// 0 for an empty window.
    pub fn bytes_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// The write-like syscalls: bytes go into the fd named by `fd_field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Syscall {
    Write,
    Writev,
    Sendto,
    Sendmsg,
    Splice,
    Vmsplice,
    Sendfile64,
}

impl Syscall {
    const ALL: [Syscall; 7] = [
        Syscall::Write,
        Syscall::Writev,
        Syscall::Sendto,
        Syscall::Sendmsg,
        Syscall::Splice,
        Syscall::Vmsplice,
        Syscall::Sendfile64,
    ];

    /// As in `sys_enter_<name>` and the `sys_<name>(` of trace output.
    fn name(self) -> &'static str {
        match self {
            Syscall::Write => "write",
            Syscall::Writev => "writev",
            Syscall::Sendto => "sendto",
            Syscall::Sendmsg => "sendmsg",
            Syscall::Splice => "splice",
            Syscall::Vmsplice => "vmsplice",
            Syscall::Sendfile64 => "sendfile64",
        }
    }

    fn from_name(name: &str) -> Option<Syscall> {
        Syscall::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The enter event's field holding the fd written to.
    fn fd_field(self) -> &'static str {
        match self {
            Syscall::Splice => "fd_out",
            Syscall::Sendfile64 => "out_fd",
            _ => "fd",
        }
    }

    /// What Node and most servers use for stdout; the others are optional
    /// (an architecture may name them differently).
    fn required(self) -> bool {
        matches!(self, Syscall::Write | Syscall::Writev)
    }
}

/// Measures the bytes `targets` write into their fds over `window`.
///
/// Blocks for the window plus about 0.2 s (a 0.1 s pre-roll, setup and
/// the final read). A Ctrl-C (see [`crate::interrupt`]) ends the window
/// early; the sample then covers the shorter window.
pub fn measure_write_rate(targets: &[WriteTarget], window: Duration) -> Result<RateSample, Error> {
    if window.is_zero() {
        return Err(Error::Usage(
            "the sample window must be longer than 0".into(),
        ));
    }
    let mut writers = Writers::new(targets)?;
    let root = tracefs::root()?;
    let _ = tracefs::reap_stale();
    let mut instance = RateInstance::create(&root)?;
    let syscalls = instance.configure()?;
    instance.set_filters(&syscalls, &writers)?;
    instance.enable(&syscalls)?;
    instance.open_pipe()?;
    instance.write("tracing_on", "1")?;

    let mut tally = Tally::default();
    writers.feed(&mut tally);
    let start = Instant::now();
    let begin_at = start + PRE_ROLL;
    let mut end_at: Option<Instant> = None;
    let mut refreshed = start;
    loop {
        let now = Instant::now();
        match end_at {
            None if now >= begin_at => {
                instance.mark(MARK_BEGIN)?;
                end_at = Some(now + window);
            }
            Some(end) if now >= end || crate::interrupt::received().is_some() => break,
            _ => {}
        }
        if now.duration_since(refreshed) >= TASK_REFRESH {
            refreshed = now;
            if writers.refresh() {
                writers.feed(&mut tally);
                instance.set_filters(&syscalls, &writers)?;
            }
        }
        let deadline = end_at.unwrap_or(begin_at);
        if instance.drain(&mut tally)? {
            std::thread::sleep(READ_BATCH.min(deadline.saturating_duration_since(now)));
        } else {
            instance.wait_readable(deadline.saturating_duration_since(now))?;
        }
    }
    instance.mark(MARK_END)?;
    instance.write("tracing_on", "0")?;
    // Stopped: what is left in the buffer is all there will be.
    while instance.drain(&mut tally)? {}
    let lost = instance.lost_events().max(tally.lost);

    let Some((bytes, writes, seconds)) = tally.window_total() else {
        return Err(Error::Tracefs {
            what: instance.dir.join("trace_marker").display().to_string(),
            message: format!("the window's markers were not read back ({lost} events lost)"),
            hint: None,
        });
    };
    Ok(RateSample {
        bytes,
        seconds,
        writes,
        lost_events: lost,
        method: METHOD,
    })
}

/// The target processes, their threads and the fds each may write to.
struct Writers {
    /// Target fds by pid (one pid given twice has its fds merged).
    fds: Vec<(Pid, Vec<u32>)>,
    /// Known threads of each target, same order.
    tids: Vec<Vec<i32>>,
}

impl Writers {
    fn new(targets: &[WriteTarget]) -> Result<Writers, Error> {
        if targets.is_empty() {
            return Err(Error::Usage("no writer to measure".into()));
        }
        let mut fds: Vec<(Pid, Vec<u32>)> = Vec::new();
        for t in targets {
            if t.fds.is_empty() {
                return Err(Error::Usage(format!("no fd to measure for pid {}", t.pid)));
            }
            match fds.iter_mut().find(|(p, _)| *p == t.pid) {
                Some((_, f)) => f.extend(&t.fds),
                None => fds.push((t.pid, t.fds.clone())),
            }
        }
        let mut tids = Vec::new();
        for (pid, f) in &mut fds {
            f.sort_unstable();
            f.dedup();
            let found = task_ids(*pid).ok_or(Error::NoSuchPid(*pid))?;
            tids.push(found);
        }
        Ok(Writers { fds, tids })
    }

    /// Adds threads started since the last look; whether there were any.
    /// Gone threads stay: their ids are not reused within a window.
    fn refresh(&mut self) -> bool {
        let mut changed = false;
        for ((pid, _), known) in self.fds.iter().zip(&mut self.tids) {
            for tid in task_ids(*pid).unwrap_or_default() {
                if !known.contains(&tid) {
                    known.push(tid);
                    changed = true;
                }
            }
        }
        changed
    }

    fn feed(&self, tally: &mut Tally) {
        for ((_, fds), tids) in self.fds.iter().zip(&self.tids) {
            for &tid in tids {
                tally.watch(Tid(tid), fds);
            }
        }
    }

    fn groups(&self) -> Vec<(&[i32], &[u32])> {
        self.tids
            .iter()
            .zip(&self.fds)
            .map(|(t, (_, f))| (t.as_slice(), f.as_slice()))
            .collect()
    }
}

/// Thread ids of a process, sorted; `None` when it is gone.
fn task_ids(pid: Pid) -> Option<Vec<i32>> {
    let dir = fs::read_dir(format!("/proc/{}/task", pid.0)).ok()?;
    let mut tids: Vec<i32> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Some(tids)
}

/// Kernel filters for one syscall: the enter event on (threads and fds)
/// of each writer, the exit event on all their threads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Filters {
    enter: String,
    /// `None`: record every exit (too many threads for one filter; the
    /// thread ids are checked here instead).
    exit: Option<String>,
}

/// Builds the filters; `groups` pairs each writer's thread ids with its
/// fds. Past [`MAX_FILTER_LEN`] the threads are dropped from the kernel
/// filter, leaving only the fds, and checked in [`Tally`].
fn build_filters(groups: &[(&[i32], &[u32])], fd_field: &str) -> Filters {
    let fd_expr = |fds: &[u32]| -> String {
        fds.iter()
            .map(|fd| format!("{fd_field} == {fd}"))
            .collect::<Vec<_>>()
            .join(" || ")
    };
    let enter = groups
        .iter()
        .map(|(tids, fds)| format!("(({}) && ({}))", tid_expr(tids), fd_expr(fds)))
        .collect::<Vec<_>>()
        .join(" || ");
    let all_tids: Vec<i32> = groups.iter().flat_map(|(t, _)| t.iter().copied()).collect();
    let exit = tid_expr(&all_tids);
    if enter.len() <= MAX_FILTER_LEN && exit.len() <= MAX_FILTER_LEN {
        return Filters {
            enter,
            exit: Some(exit),
        };
    }
    let mut fds: Vec<u32> = groups.iter().flat_map(|(_, f)| f.iter().copied()).collect();
    fds.sort_unstable();
    fds.dedup();
    Filters {
        enter: fd_expr(&fds),
        exit: None,
    }
}

/// `common_pid == 5 || (common_pid >= 7 && common_pid <= 9)`: a Node
/// process's threads have mostly consecutive ids.
fn tid_expr(tids: &[i32]) -> String {
    let mut sorted = tids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut ranges: Vec<(i32, i32)> = Vec::new();
    for t in sorted {
        match ranges.last_mut() {
            Some((_, hi)) if *hi + 1 == t => *hi = t,
            _ => ranges.push((t, t)),
        }
    }
    ranges
        .iter()
        .map(|&(lo, hi)| match hi - lo {
            0 => format!("common_pid == {lo}"),
            1 => format!("common_pid == {lo} || common_pid == {hi}"),
            _ => format!("(common_pid >= {lo} && common_pid <= {hi})"),
        })
        .collect::<Vec<_>>()
        .join(" || ")
}

/// A parsed `trace_pipe` line of this module's instance.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RateLine<'a> {
    Enter {
        tid: Tid,
        time_ns: u64,
        syscall: Syscall,
        fd: u64,
    },
    Exit {
        tid: Tid,
        time_ns: u64,
        syscall: Syscall,
        ret: i64,
    },
    Marker {
        time_ns: u64,
        text: &'a str,
    },
    /// `CPU:1 [LOST 42 EVENTS]`
    Lost(u64),
}

/// Parses one line; `None` for anything that is not one of ours.
///
/// ```text
///  python3-28164   (  28164) [001] .....  1183.581331: sys_write(fd: 0x12c, buf: 0x55bf, count: 0x11170)
///  python3-28164   [001] .....  1183.581345: sys_write -> 0xf170
///  ptree-2001      [000] ...1.  1183.600000: tracing_mark_write: ptree-rate-begin
/// ```
///
/// Syscall arguments print in decimal below 10 and in hex (`0x…`) above;
/// a negative return prints as its two's complement in hex. The comm may
/// contain spaces, dashes and brackets, so the header is found by trying
/// each ` [` until a `[CPU] FLAGS TIMESTAMP: ` follows.
fn parse_rate_line(line: &str) -> Option<RateLine<'_>> {
    let line = line.trim_end_matches(['\n', '\r']);
    if let Some(lost) = parse_lost(line) {
        return Some(RateLine::Lost(lost));
    }
    let (tid, time_ns, body) = split_header(line)?;
    if let Some(text) = body.strip_prefix("tracing_mark_write: ") {
        return Some(RateLine::Marker { time_ns, text });
    }
    let call = body.strip_prefix("sys_")?;
    if let Some((name, ret)) = call.split_once(" -> ") {
        return Some(RateLine::Exit {
            tid,
            time_ns,
            syscall: Syscall::from_name(name)?,
            ret: parse_number(ret)? as i64,
        });
    }
    let (name, args) = call.split_once('(')?;
    let syscall = Syscall::from_name(name)?;
    let args = args.strip_suffix(')')?;
    let fd = args.split(", ").find_map(|arg| {
        let (key, value) = arg.split_once(": ")?;
        (key == syscall.fd_field()).then_some(value)
    })?;
    Some(RateLine::Enter {
        tid,
        time_ns,
        syscall,
        fd: parse_number(fd)?,
    })
}

/// `TASK-TID [(TGID)] [CPU] FLAGS SECS.FRAC: BODY` → (tid, ns, body).
fn split_header(line: &str) -> Option<(Tid, u64, &str)> {
    let mut from = 0;
    while let Some(i) = line[from..].find(" [").map(|i| i + from) {
        from = i + 2;
        if let Some(found) = try_header(&line[..i], &line[i + 2..]) {
            return Some(found);
        }
    }
    None
}

fn try_header<'a>(task: &str, after: &'a str) -> Option<(Tid, u64, &'a str)> {
    // After ` [`: `001] .....  1183.581331: body`.
    let (cpu, rest) = after.split_once("] ")?;
    if cpu.is_empty() || !cpu.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rest = rest.trim_start();
    let (_flags, rest) = rest.split_once(' ')?;
    let (stamp, body) = rest.trim_start().split_once(": ")?;
    let time_ns = parse_timestamp(stamp)?;
    // Before: `python3-28164   (  28164)` or `python3-28164  `.
    let mut task = task.trim_end();
    if task.ends_with(')') {
        task = task[..task.rfind('(')?].trim_end();
    }
    let (_, tid) = task.rsplit_once('-')?;
    Some((Tid(tid.parse().ok()?), time_ns, body))
}

/// `1183.581331` → nanoseconds.
fn parse_timestamp(s: &str) -> Option<u64> {
    let (secs, frac) = s.split_once('.')?;
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let frac_ns: u64 = frac.parse::<u64>().ok()? * 10u64.pow(9 - frac.len() as u32);
    secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

/// `0x1f` or `7`.
fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// `CPU:1 [LOST 42 EVENTS]` → 42.
fn parse_lost(line: &str) -> Option<u64> {
    let rest = line.trim().strip_prefix("CPU:")?;
    let (_, rest) = rest.split_once("[LOST ")?;
    rest.strip_suffix(" EVENTS]")?.parse().ok()
}

/// Matches exits to enters and keeps the completed target writes.
#[derive(Debug, Default)]
struct Tally {
    /// The fds each watched thread may write to.
    fds_by_tid: HashMap<Tid, HashSet<u64>>,
    /// A thread's syscall on a target fd, until its exit.
    pending: HashMap<Tid, Syscall>,
    /// (exit time, bytes) of every target write that wrote something.
    done: Vec<(u64, u64)>,
    begin: Option<u64>,
    end: Option<u64>,
    lost: u64,
}

impl Tally {
    fn watch(&mut self, tid: Tid, fds: &[u32]) {
        self.fds_by_tid
            .entry(tid)
            .or_default()
            .extend(fds.iter().map(|&f| u64::from(f)));
    }

    fn feed(&mut self, line: &str) {
        let Some(parsed) = parse_rate_line(line) else {
            return;
        };
        match parsed {
            RateLine::Enter {
                tid, syscall, fd, ..
            } => {
                if self.fds_by_tid.get(&tid).is_some_and(|f| f.contains(&fd)) {
                    self.pending.insert(tid, syscall);
                } else {
                    // Seen only when the kernel filter is fds-only.
                    self.pending.remove(&tid);
                }
            }
            RateLine::Exit {
                tid,
                time_ns,
                syscall,
                ret,
            } => {
                if self.pending.remove(&tid) == Some(syscall) && ret > 0 {
                    self.done.push((time_ns, ret as u64));
                }
            }
            RateLine::Marker { time_ns, text } => match text.trim_end() {
                MARK_BEGIN => self.begin = Some(time_ns),
                MARK_END => self.end = Some(time_ns),
                _ => {}
            },
            RateLine::Lost(n) => self.lost += n,
        }
    }

    /// (bytes, writes, seconds) of the writes that returned between the
    /// markers; `None` until both were read.
    fn window_total(&self) -> Option<(u64, u64, f64)> {
        let (begin, end) = (self.begin?, self.end?);
        let inside = self.done.iter().filter(|(t, _)| (begin..=end).contains(t));
        let (bytes, writes) = inside.fold((0, 0), |(b, n), (_, len)| (b + len, n + 1));
        Some((bytes, writes, end.saturating_sub(begin) as f64 / 1e9))
    }
}

/// The instance directory and its open `trace_pipe`; dropping it removes
/// the instance.
struct RateInstance {
    dir: PathBuf,
    pipe: Option<File>,
    partial: Vec<u8>,
    chunk: Vec<u8>,
}

impl RateInstance {
    fn create(root: &Path) -> Result<RateInstance, Error> {
        let seq = INSTANCE_SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("ptree-{}-rate-{seq}", std::process::id());
        let dir = root.join("instances").join(name);
        match fs::create_dir(&dir) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Left by an earlier process that had our pid.
                tracefs::remove_instance_dir(&dir)?;
                fs::create_dir(&dir)
            }
            other => other,
        }
        .map_err(|e| tracefs_error(format!("mkdir {}", dir.display()), &e))?;
        Ok(RateInstance {
            dir,
            pipe: None,
            partial: Vec::new(),
            chunk: vec![0; 64 * 1024],
        })
    }

    /// Stops recording while the filters go in; returns the syscalls this
    /// kernel can trace.
    fn configure(&mut self) -> Result<Vec<Syscall>, Error> {
        self.write("tracing_on", "0")?;
        // One clock for all CPUs: events and markers are compared.
        if self.write("trace_clock", "mono").is_err() {
            self.write("trace_clock", "global")?;
        }
        self.write("buffer_size_kb", &BUFFER_SIZE_KB.to_string())?;
        let _ = self.write("buffer_percent", "0");
        let mut found = Vec::new();
        for syscall in Syscall::ALL {
            let enter = self.event_dir(syscall, "enter");
            let exit = self.event_dir(syscall, "exit");
            if enter.join("filter").exists() && exit.join("filter").exists() {
                found.push(syscall);
            } else if syscall.required() {
                return Err(Error::Tracefs {
                    what: enter.display().to_string(),
                    message: "no such event".into(),
                    hint: Some(HINT_MISSING),
                });
            }
        }
        Ok(found)
    }

    fn event_dir(&self, syscall: Syscall, side: &str) -> PathBuf {
        self.dir
            .join("events/syscalls")
            .join(format!("sys_{side}_{}", syscall.name()))
    }

    /// Can be called while recording: the kernel swaps filters atomically.
    fn set_filters(&self, syscalls: &[Syscall], writers: &Writers) -> Result<(), Error> {
        let groups = writers.groups();
        for &syscall in syscalls {
            let filters = build_filters(&groups, syscall.fd_field());
            self.write_path(
                &self.event_dir(syscall, "enter").join("filter"),
                &filters.enter,
            )?;
            let exit = filters.exit.as_deref().unwrap_or("0");
            self.write_path(&self.event_dir(syscall, "exit").join("filter"), exit)?;
        }
        Ok(())
    }

    fn enable(&self, syscalls: &[Syscall]) -> Result<(), Error> {
        for &syscall in syscalls {
            for side in ["enter", "exit"] {
                self.write_path(&self.event_dir(syscall, side).join("enable"), "1")?;
            }
        }
        Ok(())
    }

    fn open_pipe(&mut self) -> Result<(), Error> {
        let path = self.dir.join("trace_pipe");
        let pipe = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| tracefs_error(path.display().to_string(), &e))?;
        self.pipe = Some(pipe);
        Ok(())
    }

    fn mark(&self, text: &str) -> Result<(), Error> {
        self.write("trace_marker", text)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), Error> {
        self.write_path(&self.dir.join(file), value)
    }

    /// One `write(2)` of the whole value: tracefs parses each on its own.
    fn write_path(&self, path: &Path, value: &str) -> Result<(), Error> {
        let result = OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write(value.as_bytes()));
        match result {
            Ok(n) if n == value.len() => Ok(()),
            Ok(_) => Err(Error::Tracefs {
                what: path.display().to_string(),
                message: "short write".into(),
                hint: None,
            }),
            Err(e) => Err(tracefs_error(format!("{} ({value})", path.display()), &e)),
        }
    }

    /// Feeds what can be read without blocking; whether anything was.
    fn drain(&mut self, tally: &mut Tally) -> Result<bool, Error> {
        let Some(pipe) = self.pipe.as_mut() else {
            return Ok(false);
        };
        let mut total = 0;
        while total < MAX_READ_PER_CALL {
            match tracefs::read_some(pipe, &mut self.chunk, &mut self.partial) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => {
                    let path = self.dir.join("trace_pipe");
                    return Err(tracefs_error(path.display().to_string(), &e));
                }
            }
            // Parse as we go, so a busy window does not pile up text.
            take_lines(&mut self.partial, tally);
        }
        Ok(total > 0)
    }

    /// Waits until `trace_pipe` has data or `timeout` passes.
    fn wait_readable(&self, timeout: Duration) -> Result<(), Error> {
        let Some(pipe) = self.pipe.as_ref() else {
            return Ok(());
        };
        let mut pfd = libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, count 1. (nix's "poll" feature is not
        // enabled in this crate.)
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(tracefs_error("poll trace_pipe", &e));
            }
        }
        Ok(())
    }

    /// Overwritten or dropped events, summed over CPUs.
    fn lost_events(&self) -> u64 {
        let Ok(cpus) = fs::read_dir(self.dir.join("per_cpu")) else {
            return 0;
        };
        cpus.filter_map(Result::ok)
            .filter_map(|e| fs::read_to_string(e.path().join("stats")).ok())
            .filter_map(|s| parse_cpu_stats_lost(&s))
            .sum()
    }
}

impl Drop for RateInstance {
    fn drop(&mut self) {
        // The directory cannot be removed while trace_pipe is open.
        self.pipe = None;
        let _ = tracefs::remove_instance_dir(&self.dir);
    }
}

/// Feeds the complete lines of `partial`, keeping a trailing partial one.
fn take_lines(partial: &mut Vec<u8>, tally: &mut Tally) {
    let Some(end) = partial.iter().rposition(|&b| b == b'\n') else {
        return;
    };
    for line in partial[..end].split(|&b| b == b'\n') {
        tally.feed(&String::from_utf8_lossy(line));
    }
    partial.drain(..=end);
}

fn tracefs_error(what: impl Into<String>, e: &io::Error) -> Error {
    tracefs::hinted_error(what, e, HINT_PERMISSION, HINT_MISSING)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_enter_exit_and_marker_lines() {
        let enter = "         python3-28164   (  28164) [001] .....  1183.581331: sys_write(fd: 0x12c, buf: 0x55bfa5afffb0, count: 0x11170)";
        assert_eq!(
            parse_rate_line(enter),
            Some(RateLine::Enter {
                tid: Tid(28164),
                time_ns: 1_183_581_331_000,
                syscall: Syscall::Write,
                fd: 300,
            })
        );
        let exit = "         python3-28164   [001] .....  1183.581345: sys_write -> 0xf170\n";
        assert_eq!(
            parse_rate_line(exit),
            Some(RateLine::Exit {
                tid: Tid(28164),
                time_ns: 1_183_581_345_000,
                syscall: Syscall::Write,
                ret: 0xf170,
            })
        );
        let eagain = "  node-7 [000] ..... 5.000001: sys_writev -> 0xfffffffffffffff5";
        assert!(matches!(
            parse_rate_line(eagain),
            Some(RateLine::Exit {
                ret: -11,
                syscall: Syscall::Writev,
                ..
            })
        ));
        let mark =
            "  ptree-2001      [000] ...1.  1183.600000: tracing_mark_write: ptree-rate-begin";
        assert_eq!(
            parse_rate_line(mark),
            Some(RateLine::Marker {
                time_ns: 1_183_600_000_000,
                text: "ptree-rate-begin",
            })
        );
        assert_eq!(
            parse_rate_line("CPU:1 [LOST 42 EVENTS]"),
            Some(RateLine::Lost(42))
        );
    }

    #[test]
    fn fd_field_by_syscall_and_small_decimal_values() {
        let splice = "cat-9 [000] ..... 1.000000: sys_splice(fd_in: 3, off_in: 0, fd_out: 1, off_out: 0, len: 0x10000, flags: 0)";
        assert!(matches!(
            parse_rate_line(splice),
            Some(RateLine::Enter {
                syscall: Syscall::Splice,
                fd: 1,
                ..
            })
        ));
        let sendfile = "cat-9 [000] ..... 1.000000: sys_sendfile64(out_fd: 0xb, in_fd: 3, offset: 0, count: 0x1000)";
        assert!(matches!(
            parse_rate_line(sendfile),
            Some(RateLine::Enter {
                syscall: Syscall::Sendfile64,
                fd: 11,
                ..
            })
        ));
        let sendto = "n-3 [001] ..... 2.5: sys_sendto(fd: 3, buff: 0x7f, len: 7, flags: 0, addr: 0, addr_len: 0)";
        assert!(matches!(
            parse_rate_line(sendto),
            Some(RateLine::Enter {
                syscall: Syscall::Sendto,
                fd: 3,
                time_ns: 2_500_000_000,
                ..
            })
        ));
    }

    #[test]
    fn awkward_comms_and_foreign_lines() {
        // A comm with spaces, a dash and a bracketed number.
        let line = "  my [7] srv-x-41 (     41) [003] d..1.    9.000001: sys_write(fd: 1, buf: 0x1, count: 5)";
        assert!(matches!(
            parse_rate_line(line),
            Some(RateLine::Enter {
                tid: Tid(41),
                fd: 1,
                ..
            })
        ));
        let unknown_tgid = "  <...>-41 (-------) [003] .....  9.000002: sys_write -> 5";
        assert!(matches!(
            parse_rate_line(unknown_tgid),
            Some(RateLine::Exit {
                tid: Tid(41),
                ret: 5,
                ..
            })
        ));
        assert_eq!(parse_rate_line(""), None);
        assert_eq!(parse_rate_line("# tracer: nop"), None);
        assert_eq!(
            parse_rate_line("  x-1 [000] ..... 1.0: sys_read(fd: 0, buf: 0x1, count: 5)"),
            None
        );
        assert_eq!(
            parse_rate_line("  x-1 [000] ..... 1.0: signal_generate: sig=15"),
            None
        );
    }

    fn feed(tally: &mut Tally, lines: &str) {
        for line in lines.lines() {
            tally.feed(line);
        }
    }

    #[test]
    fn counts_returned_bytes_of_target_writes_inside_the_window() {
        let mut tally = Tally::default();
        tally.watch(Tid(10), &[1]);
        tally.watch(Tid(11), &[1]);
        tally.watch(Tid(20), &[1, 2]);
        feed(
            &mut tally,
            "\
 node-10 [000] ..... 1.000000: sys_write(fd: 1, buf: 0x1, count: 0x64)
 node-10 [000] ..... 1.000001: sys_write -> 0x64
 ptree-99 [001] ..... 1.100000: tracing_mark_write: ptree-rate-begin
 node-10 [000] ..... 1.200000: sys_write -> 0x40
 node-10 [000] ..... 1.300000: sys_writev(fd: 1, vec: 0x1, vlen: 2)
 node-11 [001] ..... 1.300001: sys_write(fd: 1, buf: 0x1, count: 0x1000)
 node-10 [000] ..... 1.300002: sys_writev -> 0x1000
 node-11 [001] ..... 1.300003: sys_write -> 0x800
 node-20 [001] ..... 1.400000: sys_write(fd: 2, buf: 0x1, count: 0x10)
 node-20 [001] ..... 1.400001: sys_write -> 0xfffffffffffffff5
 node-20 [001] ..... 1.500000: sys_write(fd: 1, buf: 0x1, count: 0x10)
 node-20 [001] ..... 1.500001: sys_write -> 0x10
 node-20 [001] ..... 2.000000: sys_write(fd: 1, buf: 0x1, count: 0x10)
 ptree-99 [001] ..... 2.100000: tracing_mark_write: ptree-rate-end
 node-20 [001] ..... 2.200000: sys_write -> 0x10
",
        );
        // Before the window: not counted. 0x40: a log write whose enter the
        // kernel filtered out. EAGAIN: nothing. After the end: not counted.
        let (bytes, writes, seconds) = tally.window_total().unwrap();
        assert_eq!(bytes, 0x1000 + 0x800 + 0x10);
        assert_eq!(writes, 3);
        assert!((seconds - 1.0).abs() < 1e-9);
    }

    #[test]
    fn exit_of_a_different_syscall_or_thread_is_not_matched() {
        let mut tally = Tally::default();
        tally.watch(Tid(10), &[1]);
        feed(
            &mut tally,
            "\
 x-1 [000] ..... 1.0: tracing_mark_write: ptree-rate-begin
 node-10 [000] ..... 1.1: sys_write(fd: 1, buf: 0x1, count: 5)
 node-10 [000] ..... 1.2: sys_sendmsg -> 5
 node-10 [000] ..... 1.3: sys_write(fd: 1, buf: 0x1, count: 5)
 node-12 [000] ..... 1.4: sys_write -> 5
 node-10 [000] ..... 1.5: sys_write(fd: 3, buf: 0x1, count: 5)
 node-10 [000] ..... 1.6: sys_write -> 5
 node-99 [000] ..... 1.7: sys_write(fd: 1, buf: 0x1, count: 5)
 node-99 [000] ..... 1.8: sys_write -> 5
 x-1 [000] ..... 2.0: tracing_mark_write: ptree-rate-end
",
        );
        // fd 3 is not a target (enter seen with an fds-only kernel filter);
        // thread 99 is not a writer.
        assert_eq!(tally.window_total(), Some((0, 0, 1.0)));
    }

    #[test]
    fn no_total_without_both_markers() {
        let mut tally = Tally::default();
        feed(
            &mut tally,
            " x-1 [000] ..... 1.0: tracing_mark_write: ptree-rate-begin",
        );
        assert_eq!(tally.window_total(), None);
    }

    #[test]
    fn filters_group_threads_and_fds() {
        let a: &[i32] = &[100, 101, 102, 103, 110];
        let b: &[i32] = &[200, 201];
        let f = build_filters(&[(a, &[1, 2]), (b, &[1])], "fd");
        assert_eq!(
            f.enter,
            "(((common_pid >= 100 && common_pid <= 103) || common_pid == 110) && (fd == 1 || fd == 2)) \
             || ((common_pid == 200 || common_pid == 201) && (fd == 1))"
        );
        assert_eq!(
            f.exit.as_deref(),
            Some(
                "(common_pid >= 100 && common_pid <= 103) || common_pid == 110 \
                 || common_pid == 200 || common_pid == 201"
            )
        );
        let f = build_filters(&[(&[7], &[1])], "fd_out");
        assert_eq!(f.enter, "((common_pid == 7) && (fd_out == 1))");
    }

    #[test]
    fn too_many_threads_leave_only_fds_in_the_kernel() {
        let tids: Vec<i32> = (0..1000).map(|i| 1000 + 3 * i).collect();
        let f = build_filters(&[(&tids, &[2, 1]), (&[5], &[1])], "fd");
        assert_eq!(f.enter, "fd == 1 || fd == 2");
        assert_eq!(f.exit, None);
    }

    #[test]
    fn timestamps_and_numbers() {
        assert_eq!(parse_timestamp("1183.581331"), Some(1_183_581_331_000));
        assert_eq!(parse_timestamp("0.000000001"), Some(1));
        assert_eq!(parse_timestamp("12"), None);
        assert_eq!(parse_timestamp("1.x"), None);
        assert_eq!(parse_number("0x12c"), Some(300));
        assert_eq!(parse_number("9"), Some(9));
        assert_eq!(parse_number("zz"), None);
    }

    #[test]
    fn rate_of_an_empty_window_is_zero() {
        let s = RateSample {
            bytes: 10,
            seconds: 0.0,
            writes: 1,
            lost_events: 0,
            method: METHOD,
        };
        assert_eq!(s.bytes_per_sec(), 0.0);
        let s = RateSample { seconds: 2.0, ..s };
        assert_eq!(s.bytes_per_sec(), 5.0);
    }
}
