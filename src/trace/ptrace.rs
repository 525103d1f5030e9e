//! The ptrace signal source: seize running processes and report every
//! signal as it is delivered, with the sender's pid from its `siginfo`.
//!
//! A diagnostic must never harm what it looks at, so this tracer
//! - seizes (`PTRACE_SEIZE`): attaching sends no SIGSTOP and stops nothing;
//! - never traces syscalls: a tracee stops only when a signal is delivered
//!   or it forks, execs or exits, and is resumed at once with `PTRACE_CONT`;
//! - re-injects every signal exactly as it arrived, never adding one;
//! - resumes job-control stops with `PTRACE_LISTEN`, so a stopped target
//!   stays stopped until SIGCONT, as it would without a tracer;
//! - never sets `PTRACE_O_EXITKILL`: if ptree dies, even by SIGKILL, the
//!   kernel detaches and the targets run on.
//!
//! What ptrace cannot see, and why tracefs is the better source when
//! available: SIGKILL (it never stops the target; only the death by it is
//! seen, see [`killed_invisibly`]); which of several identical standard
//! signals were merged while pending (one delivery is seen); and when a
//! blocked signal was sent (it is seen when unblocked and delivered).
//! Signals the target ignores are still seen, and reported as delivered:
//! the kernel queues them for a tracer and drops them only after
//! re-injection.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::marker::PhantomData;
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nix::errno::Errno;
use nix::sys::ptrace::{self, Options};

use crate::error::Error;
use crate::event::{Delivery, ExitStatus, RawEvent, RawSignal, SigCode, Signal, Via};
use crate::model::{PF_KTHREAD, Pid, Tid};
use crate::proc::parse::parse_stat;

/// Why attaching was refused, and the two ways out.
pub const PERMISSION_HINT: &str = "ptrace needs the same uid or CAP_SYS_PTRACE (and kernel.yama.ptrace_scope allowing it): run with sudo, or use --via tracefs";

/// What to tell the user about an exit for which [`killed_invisibly`] holds.
pub const INVISIBLE_KILL: &str =
    "killed by SIGKILL; sender invisible to ptrace, use --via tracefs or audit";

const OTHER_TRACER_HINT: &str =
    "a process has one tracer at a time: stop the other one (strace, gdb), or use --via tracefs";

/// Between two empty rounds of `waitid`: tracees wait in their stop while
/// we sleep, so this stays short.
const POLL_SLEEP: Duration = Duration::from_millis(5);

/// How long [`PtraceWatcher::detach_all`] waits for tracees to stop so it
/// can detach them.
const DETACH_WAIT: Duration = Duration::from_secs(5);

/// `PTRACE_EVENT_STOP`: not in libc for glibc targets.
const PTRACE_EVENT_STOP: i32 = 128;

/// Whether a process's exit, as reported by this source, hides its killer:
/// it died of SIGKILL, which never produces a signal-delivery-stop, so
/// ptrace cannot name the sender. Say [`INVISIBLE_KILL`] to the user.
pub fn killed_invisibly(event: &RawEvent) -> bool {
    matches!(
        event,
        RawEvent::Exit {
            status: Some(ExitStatus::Signaled {
                signal: Signal::KILL
            }),
            ..
        }
    )
}

/// A thread we trace.
#[derive(Debug)]
struct Tracee {
    /// Its thread group, for the `pid` fields of events.
    tgid: Pid,
    /// Its last known name: the one to report once it is gone.
    comm: String,
    /// `PTRACE_EVENT_EXIT` already produced its Exit event; the final
    /// wait status then only removes it.
    exit_seen: bool,
}

/// Watches processes through ptrace, following their new threads and
/// children, until dropped.
///
/// The kernel accepts ptrace requests only from the thread that attached,
/// so the watcher is neither `Send` nor `Sync`: create, poll and drop it on
/// one thread, and keep to one watcher per thread (two would take each
/// other's reports). Tracees stay stopped from a signal's delivery until
/// the next [`poll`](Self::poll) resumes them, so keep polling while
/// attached.
///
/// Waiting is done per tracee plus `waitid(P_ALL, WSTOPPED)`, never
/// `waitpid(-1)` for exits: a watcher must not reap the calling thread's
/// own, untraced children. It does reap tracees, even ones that are also
/// the caller's children (their exit comes back as a [`RawEvent::Exit`]),
/// and it consumes stop reports of the caller's untraced stopped children.
#[derive(Debug)]
pub struct PtraceWatcher {
    tracees: HashMap<Tid, Tracee>,
    /// Events seen while detaching, handed out by the next poll.
    pending: Vec<RawEvent>,
    syscall_stops: u64,
    _one_thread: PhantomData<*const ()>,
}

impl PtraceWatcher {
    /// Seizes every thread of each process in `pids`.
    ///
    /// Threads created during the attach are caught by rescanning
    /// `/proc/PID/task` until a pass finds nothing new; afterwards new
    /// threads and children are attached by the kernel. On error, whatever
    /// was attached is detached again.
    pub fn attach(pids: &[Pid]) -> Result<PtraceWatcher, Error> {
        let mut watcher = PtraceWatcher {
            tracees: HashMap::new(),
            pending: Vec::new(),
            syscall_stops: 0,
            _one_thread: PhantomData,
        };
        for &pid in pids {
            watcher.attach_process(pid)?;
        }
        Ok(watcher)
    }

    /// Collects events for up to `timeout`, returning as soon as there are
    /// some (or no tracee is left). Each stopped tracee is resumed before
    /// this returns.
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<RawEvent>, Error> {
        let deadline = Instant::now() + timeout;
        let mut out = std::mem::take(&mut self.pending);
        loop {
            self.drain(&mut out, false)?;
            let now = Instant::now();
            if !out.is_empty() || self.tracees.is_empty() || now >= deadline {
                return Ok(out);
            }
            thread::sleep(POLL_SLEEP.min(deadline - now));
        }
    }

    /// Detaches from every tracee, leaving each as it would be without a
    /// tracer: running, or stopped if its process is in a job-control stop,
    /// with a signal caught mid-delivery passed on (never lost, never
    /// added). Events seen meanwhile are returned by the next poll.
    ///
    /// A running tracee must be stopped (`PTRACE_INTERRUPT`) to be
    /// detached. One that stays in the kernel longer than a few seconds (a
    /// vfork parent whose child neither execs nor exits), or an exited one
    /// whose exit cannot be collected yet (a thread group leader outliving
    /// its threads), is left to the kernel, which detaches it when ptree
    /// exits; [`tracees`](Self::tracees) lists them.
    pub fn detach_all(&mut self) {
        let deadline = Instant::now() + DETACH_WAIT;
        let mut interrupted = HashSet::new();
        let mut out = Vec::new();
        while self.tracees.values().any(|t| !t.exit_seen) && Instant::now() < deadline {
            for &tid in self.tracees.keys() {
                if interrupted.insert(tid) {
                    // ESRCH: it is dying; its exit is collected below.
                    let _ = ptrace::interrupt(nix_pid(tid.0));
                }
            }
            // Errors here are from waitid itself; nothing better to do
            // than try again until the deadline.
            let _ = self.drain(&mut out, true);
            self.detach_unreported_stops(&mut out);
            thread::sleep(POLL_SLEEP);
        }
        let _ = self.drain(&mut out, true);
        self.detach_unreported_stops(&mut out);
        self.pending.extend(out);
    }

    /// Threads still traced, in order.
    pub fn tracees(&self) -> Vec<Tid> {
        let mut tids: Vec<Tid> = self.tracees.keys().copied().collect();
        tids.sort();
        tids
    }

    /// Whether nothing is traced any more (every target exited or was
    /// detached).
    pub fn is_empty(&self) -> bool {
        self.tracees.is_empty()
    }

    /// Syscall-stops seen. The watcher never asks for any, so anything but
    /// zero is a bug: each one delays the target.
    pub fn syscall_stops(&self) -> u64 {
        self.syscall_stops
    }

    fn attach_process(&mut self, pid: Pid) -> Result<(), Error> {
        let tgid = read_status_field(Tid(pid.0), "Tgid").map_or(pid, Pid);
        if tgid.0 == nix::unistd::getpid().as_raw() {
            return Err(ptrace_error(pid, "refusing to trace ptree itself", None));
        }
        let mut attached = 0;
        loop {
            let tids = list_tasks(tgid);
            if tids.is_empty() && attached == 0 {
                return Err(Error::NoSuchPid(pid));
            }
            let mut seized = false;
            for tid in tids {
                if self.tracees.contains_key(&tid) {
                    continue;
                }
                match seize(tid) {
                    Ok(()) => seized = true,
                    Err(Errno::ESRCH) => continue,
                    Err(errno) => match diagnose(tid, errno) {
                        // Cloned by a thread seized earlier in this loop.
                        Refusal::AlreadyOurs => {}
                        Refusal::Gone => continue,
                        Refusal::Fatal(message, hint) => {
                            return Err(ptrace_error(pid, &message, hint));
                        }
                    },
                }
                attached += 1;
                let comm = read_comm(tgid, tid).unwrap_or_default();
                self.tracees.insert(
                    tid,
                    Tracee {
                        tgid,
                        comm,
                        exit_seen: false,
                    },
                );
            }
            if !seized {
                break;
            }
        }
        if attached == 0 {
            return Err(ptrace_error(pid, "has exited: nothing left to trace", None));
        }
        Ok(())
    }

    /// Handles every report waiting now: all stops, then the exits of the
    /// tracees we know. While `detaching`, stopped tracees are detached
    /// instead of resumed.
    fn drain(&mut self, out: &mut Vec<RawEvent>, detaching: bool) -> Result<(), Error> {
        // Stops first, from any tracee: a child attached by the kernel may
        // report before its parent's fork event names it. WSTOPPED alone
        // never reaps, so the caller's own children are left alone.
        while let Waited::Report(tid, report) = wait(libc::P_ALL, 0, libc::WSTOPPED)? {
            self.on_report(tid, report, out, detaching);
        }
        // Then exits, tracee by tracee. The kernel reports a ptrace-stop
        // whatever the flags, so one that came meanwhile can show up here.
        let tids: Vec<Tid> = self.tracees.keys().copied().collect();
        for tid in tids {
            match wait(libc::P_PID, tid.0 as libc::id_t, libc::WEXITED)? {
                Waited::Report(tid, report) => self.on_report(tid, report, out, detaching),
                Waited::NotOurs => {
                    self.tracees.remove(&tid);
                }
                Waited::Nothing => {}
            }
        }
        Ok(())
    }

    fn on_report(&mut self, tid: Tid, report: Report, out: &mut Vec<RawEvent>, detaching: bool) {
        match report {
            Report::Exited(_) | Report::Signaled(_) => self.on_exit(tid, report, out),
            Report::Other => {}
            _ => self.on_stop(tid, report, out, detaching),
        }
    }

    /// Detaches tracees sitting in a ptrace-stop whose wait report never
    /// reached us (collected by someone else's `waitpid(-1)`). The stop is
    /// read back from the tracee's siginfo, so a signal it holds is still
    /// passed on.
    fn detach_unreported_stops(&mut self, out: &mut Vec<RawEvent>) {
        let tids: Vec<Tid> = self.tracees.keys().copied().collect();
        for tid in tids {
            // Fails unless the tracee is in a ptrace-stop right now.
            if let Ok(info) = ptrace::getsiginfo(nix_pid(tid.0)) {
                let report = Report::from_siginfo(info.si_signo, info.si_code);
                self.on_stop(tid, report, out, true);
            }
        }
    }

    /// Handles a ptrace-stop: records what it shows, then resumes the
    /// tracee (or detaches it).
    fn on_stop(&mut self, tid: Tid, report: Report, out: &mut Vec<RawEvent>, detaching: bool) {
        let time = Utc::now();
        let tgid = self.tracee(tid).tgid;
        let mut pass_on = 0;
        let mut listen = false;
        match report {
            Report::SignalStop(sig) => {
                pass_on = sig;
                // ESRCH: killed meanwhile; its exit follows.
                if let Ok(info) = ptrace::getsiginfo(nix_pid(tid.0)) {
                    let info = SigInfo::read(&info);
                    // A process-wide signal is named after the process,
                    // whichever thread took it.
                    let comm = if thread_directed(info.signo, info.code) {
                        self.fresh_comm(tid)
                    } else {
                        read_comm(tgid, Tid(tgid.0)).unwrap_or_else(|| self.fresh_comm(tid))
                    };
                    let signal = signal_event(info, tid, tgid, comm, time);
                    out.push(RawEvent::Signal(signal));
                }
            }
            Report::GroupStop(_) => listen = true,
            Report::Syscall => self.syscall_stops += 1,
            Report::Event(event) => self.on_event(tid, tgid, event, time, out),
            Report::Trap | Report::Exited(_) | Report::Signaled(_) | Report::Other => {}
        }
        let target = nix_pid(tid.0);
        if detaching {
            // The kernel puts a tracee detached during a job-control stop
            // back into that stop. ESRCH: killed meanwhile; keep it until
            // its exit is collected.
            if resume(libc::PTRACE_DETACH, target, pass_on).is_ok() {
                self.tracees.remove(&tid);
            }
        } else if listen {
            let _ = resume(libc::PTRACE_LISTEN, target, 0);
        } else {
            let _ = resume(libc::PTRACE_CONT, target, pass_on);
        }
    }

    fn on_event(
        &mut self,
        tid: Tid,
        tgid: Pid,
        event: i32,
        time: DateTime<Utc>,
        out: &mut Vec<RawEvent>,
    ) {
        let Ok(msg) = ptrace::getevent(nix_pid(tid.0)) else {
            return;
        };
        match event {
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                let child_tid = Tid(msg as i32);
                // A clone may make a thread or a process; a fork makes a
                // process.
                let child_pid = if event == libc::PTRACE_EVENT_CLONE {
                    read_status_field(child_tid, "Tgid").map(Pid)
                } else {
                    Some(Pid(child_tid.0))
                };
                let comm = self.fresh_comm(tid);
                // Already known when it reported its first stop first.
                self.tracees.entry(child_tid).or_insert_with(|| Tracee {
                    tgid: child_pid.unwrap_or(Pid(child_tid.0)),
                    comm: comm.clone(),
                    exit_seen: false,
                });
                out.push(RawEvent::Fork {
                    time,
                    parent_tid: tid,
                    parent_pid: Some(tgid),
                    child_tid,
                    child_pid,
                    comm,
                });
            }
            libc::PTRACE_EVENT_EXEC => {
                // A non-leader thread that execs takes the leader's tid;
                // its old tid vanishes without an exit report.
                let former = Tid(msg as i32);
                if former != tid {
                    self.tracees.remove(&former);
                }
                let filename = fs::read_link(format!("/proc/{}/exe", tid.0))
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let comm = self.fresh_comm(tid);
                self.tracee(tid).exit_seen = false;
                out.push(RawEvent::Exec {
                    time,
                    pid: tgid,
                    filename,
                    comm: Some(comm),
                });
            }
            libc::PTRACE_EVENT_EXIT => {
                let comm = self.fresh_comm(tid);
                self.tracee(tid).exit_seen = true;
                out.push(RawEvent::Exit {
                    time,
                    tid,
                    pid: Some(tgid),
                    comm,
                    status: Some(exit_status(msg as i32)),
                });
            }
            _ => {}
        }
    }

    fn on_exit(&mut self, tid: Tid, report: Report, out: &mut Vec<RawEvent>) {
        let status = match report {
            Report::Exited(code) => ExitStatus::Exited { code },
            Report::Signaled(sig) => ExitStatus::Signaled {
                signal: Signal(sig),
            },
            _ => return,
        };
        let Some(tracee) = self.tracees.remove(&tid) else {
            return;
        };
        if !tracee.exit_seen {
            out.push(RawEvent::Exit {
                time: Utc::now(),
                tid,
                pid: Some(tracee.tgid),
                comm: tracee.comm,
                status: Some(status),
            });
        }
    }

    /// The tracee `tid`, adopting it if unknown: a child attached by the
    /// kernel whose parent died before reporting the fork.
    fn tracee(&mut self, tid: Tid) -> &mut Tracee {
        self.tracees.entry(tid).or_insert_with(|| {
            let tgid = read_status_field(tid, "Tgid").map_or(Pid(tid.0), Pid);
            Tracee {
                tgid,
                comm: read_comm(tgid, tid).unwrap_or_default(),
                exit_seen: false,
            }
        })
    }

    /// Re-reads the name of a live tracee (it may have changed it), or
    /// falls back to the last one known.
    fn fresh_comm(&mut self, tid: Tid) -> String {
        let tracee = self.tracee(tid);
        if let Some(comm) = read_comm(tracee.tgid, tid) {
            tracee.comm = comm;
        }
        tracee.comm.clone()
    }
}

impl Drop for PtraceWatcher {
    fn drop(&mut self) {
        self.detach_all();
    }
}

fn nix_pid(id: i32) -> nix::unistd::Pid {
    nix::unistd::Pid::from_raw(id)
}

fn seize(tid: Tid) -> Result<(), Errno> {
    // TRACESYSGOOD only changes how a syscall-stop would look, so that one
    // (which must never happen) cannot pass for a SIGTRAP. No EXITKILL.
    let options = Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACEEXIT
        | Options::PTRACE_O_TRACEEXEC
        | Options::PTRACE_O_TRACESYSGOOD;
    ptrace::seize(nix_pid(tid.0), options)
}

/// `PTRACE_CONT`, `PTRACE_LISTEN` or `PTRACE_DETACH` with a raw signal
/// number: nix's `Signal` has no real-time signals, which must be passed on
/// too.
fn resume(request: libc::c_uint, tid: nix::unistd::Pid, sig: i32) -> Result<(), Errno> {
    // SAFETY: these requests take no pointer; `data` is a signal number.
    let r = unsafe {
        libc::ptrace(
            request,
            tid.as_raw(),
            std::ptr::null_mut::<libc::c_void>(),
            sig as libc::c_long,
        )
    };
    Errno::result(r).map(drop)
}

enum Waited {
    Nothing,
    /// The id is not (or no longer) a child or tracee of this thread.
    NotOurs,
    Report(Tid, Report),
}

/// One non-blocking `waitid` over this thread's children and tracees only
/// (`__WNOTHREAD`: other threads of ptree may trace too).
fn wait(idtype: libc::idtype_t, id: libc::id_t, what: i32) -> Result<Waited, Error> {
    // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = what | libc::WNOHANG | libc::__WALL | libc::__WNOTHREAD;
    loop {
        // SAFETY: `info` is a valid, writable siginfo_t.
        let r = unsafe { libc::waitid(idtype, id, &mut info, flags) };
        if r == 0 {
            break;
        }
        match Errno::last() {
            Errno::EINTR => continue,
            Errno::ECHILD => return Ok(Waited::NotOurs),
            errno => {
                return Err(Error::Proc {
                    what: "waitid for tracees".into(),
                    message: errno.desc().into(),
                });
            }
        }
    }
    // SAFETY: waitid fills the SIGCHLD layout, or leaves zeroes (WNOHANG).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(Waited::Nothing);
    }
    Ok(Waited::Report(
        Tid(pid),
        Report::decode(info.si_code, status),
    ))
}

/// One wait report, decoded from `waitid`'s `si_code` and `si_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    /// Signal-delivery-stop: this signal is about to be delivered.
    SignalStop(i32),
    /// Job-control stop of a seized tracee (`PTRACE_EVENT_STOP` with a stop
    /// signal).
    GroupStop(i32),
    /// `PTRACE_EVENT_STOP` with SIGTRAP: after `PTRACE_INTERRUPT`, a new
    /// tracee's first stop, or SIGCONT ending a job-control stop.
    Trap,
    /// `PTRACE_EVENT_FORK`, `_CLONE`, `_EXEC`, `_EXIT`…
    Event(i32),
    Syscall,
    Exited(i32),
    Signaled(i32),
    /// Not from ptrace: a job-control stop or continue of an untraced child.
    Other,
}

impl Report {
    fn decode(si_code: i32, si_status: i32) -> Report {
        match si_code {
            libc::CLD_EXITED => Report::Exited(si_status),
            libc::CLD_KILLED | libc::CLD_DUMPED => Report::Signaled(si_status),
            // For a ptrace-stop the status is the tracee's whole exit_code:
            // the signal, and the event in the next byte.
            libc::CLD_TRAPPED => {
                let (sig, event) = (si_status & 0xff, (si_status >> 8) & 0xff);
                match event {
                    0 if sig == libc::SIGTRAP | 0x80 => Report::Syscall,
                    0 => Report::SignalStop(sig),
                    PTRACE_EVENT_STOP if is_stop_signal(sig) => Report::GroupStop(sig),
                    PTRACE_EVENT_STOP => Report::Trap,
                    event => Report::Event(event),
                }
            }
            _ => Report::Other,
        }
    }

    /// The stop a tracee is in, read back from its siginfo. For a
    /// ptrace-event stop the kernel puts in `si_code` the same
    /// `sig | event << 8` it reports to wait.
    fn from_siginfo(signo: i32, code: i32) -> Report {
        let syscall = signo == libc::SIGTRAP && code == libc::SIGTRAP | 0x80;
        if syscall || (code > 0xff && code & 0xff == signo) {
            Report::decode(libc::CLD_TRAPPED, code)
        } else {
            Report::SignalStop(signo)
        }
    }
}

fn is_stop_signal(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
    )
}

/// A `wait(2)` status word, as `PTRACE_GETEVENTMSG` gives at
/// `PTRACE_EVENT_EXIT`.
fn exit_status(status: i32) -> ExitStatus {
    match status & 0x7f {
        0 => ExitStatus::Exited {
            code: (status >> 8) & 0xff,
        },
        sig => ExitStatus::Signaled {
            signal: Signal(sig),
        },
    }
}

/// The meaningful parts of a `siginfo_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SigInfo {
    signo: i32,
    code: i32,
    /// `si_pid`, 0 when the layout has none.
    pid: i32,
    /// `si_value`, for codes that carry one.
    value: Option<i64>,
}

impl SigInfo {
    fn read(info: &libc::siginfo_t) -> SigInfo {
        let (signo, code) = (info.si_signo, info.si_code);
        let (has_pid, has_value) = siginfo_layout(signo, code);
        // SAFETY: the union is plain data copied out by the kernel; the
        // layout decides which member means something.
        let pid = if has_pid { unsafe { info.si_pid() } } else { 0 };
        let value = has_value.then(|| unsafe { info.si_value() }.sival_ptr as i64);
        SigInfo {
            signo,
            code,
            pid,
            value,
        }
    }
}

/// Whether a siginfo holds `si_pid`, and `si_value`: the union member the
/// kernel fills depends on signal and code (`siginfo_layout()` in
/// kernel/signal.c).
fn siginfo_layout(signo: i32, code: i32) -> (bool, bool) {
    const SI_USER: i32 = 0;
    const SI_KERNEL: i32 = 0x80;
    const SI_TIMER: i32 = -2;
    const SI_SIGIO: i32 = -5;
    const SI_TKILL: i32 = -6;
    match code {
        // Signal-specific codes: only SIGCHLD's name a process (the child).
        c if c > SI_USER && c < SI_KERNEL => (signo == libc::SIGCHLD, false),
        SI_TIMER | SI_SIGIO => (false, false),
        // tkill carries no value; the other negative codes (sigqueue, mq,
        // AIO) do.
        SI_TKILL => (true, false),
        c if c < 0 => (true, true),
        _ => (true, false),
    }
}

/// Whether a delivered signal was aimed at one thread rather than the
/// whole process: tkill/tgkill, and hardware faults, which the kernel
/// sends to the faulting thread.
fn thread_directed(signo: i32, code: i32) -> bool {
    let fault = matches!(
        signo,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
    ) && code > 0
        && code < 0x80;
    SigCode::from_raw(code) == SigCode::Tkill || fault
}

/// The event for a signal-delivery-stop of `tid`.
///
/// `sender_pid` is `si_pid`: the sending *process* (never the thread), as
/// numbered in the target's pid namespace. It is `None` when `si_pid` is 0:
/// the kernel raised the signal (SI_KERNEL, faults), or the sender lives
/// outside the target's pid namespace. The sender's name is left to
/// enrichment: a short-lived `kill` is usually gone by now.
fn signal_event(
    info: SigInfo,
    tid: Tid,
    tgid: Pid,
    comm: String,
    time: DateTime<Utc>,
) -> RawSignal {
    let group = !thread_directed(info.signo, info.code);
    RawSignal {
        time,
        signal: Signal(info.signo),
        code: SigCode::from_raw(info.code),
        result: Delivery::Delivered,
        group,
        sender_tid: None,
        sender_pid: (info.pid > 0).then_some(Pid(info.pid)),
        sender_comm: None,
        target_tid: if group { Tid(tgid.0) } else { tid },
        target_comm: comm,
        value: info.value,
        via: Via::Ptrace,
    }
}

/// Why `PTRACE_SEIZE` failed for a thread.
enum Refusal {
    /// We trace it already: the kernel attached it when a thread we had
    /// seized created it.
    AlreadyOurs,
    /// It exited meanwhile (zombie or gone).
    Gone,
    Fatal(String, Option<&'static str>),
}

fn diagnose(tid: Tid, errno: Errno) -> Refusal {
    let Ok(stat) = fs::read(format!("/proc/{}/stat", tid.0)) else {
        return Refusal::Gone;
    };
    let Ok(stat) = parse_stat(&stat) else {
        return Refusal::Gone;
    };
    if matches!(stat.state, 'Z' | 'X') {
        return Refusal::Gone;
    }
    if stat.flags & PF_KTHREAD != 0 {
        return Refusal::Fatal(
            "is a kernel thread: it gets no signals to watch".into(),
            None,
        );
    }
    match read_status_field(tid, "TracerPid") {
        Some(t) if t == nix::unistd::gettid().as_raw() => return Refusal::AlreadyOurs,
        Some(t) if t != 0 => {
            let who = read_comm(Pid(t), Tid(t)).unwrap_or_else(|| "?".into());
            return Refusal::Fatal(
                format!("thread {tid} is already traced by pid {t} ({who})"),
                Some(OTHER_TRACER_HINT),
            );
        }
        _ => {}
    }
    match errno {
        Errno::EPERM | Errno::EACCES => Refusal::Fatal(
            format!("cannot attach to thread {tid}: permission denied"),
            Some(PERMISSION_HINT),
        ),
        e => Refusal::Fatal(format!("cannot attach to thread {tid}: {}", e.desc()), None),
    }
}

fn ptrace_error(pid: Pid, message: &str, hint: Option<&'static str>) -> Error {
    Error::Ptrace {
        pid,
        message: message.to_string(),
        hint,
    }
}

/// Threads of a process, from `/proc/PID/task`; empty when it is gone.
fn list_tasks(tgid: Pid) -> Vec<Tid> {
    let Ok(dir) = fs::read_dir(format!("/proc/{}/task", tgid.0)) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok().map(Tid))
        .collect()
}

fn read_comm(tgid: Pid, tid: Tid) -> Option<String> {
    let raw = fs::read(format!("/proc/{}/task/{}/comm", tgid.0, tid.0)).ok()?;
    let raw = raw.strip_suffix(b"\n").unwrap_or(&raw);
    Some(String::from_utf8_lossy(raw).into_owned())
}

fn read_status_field(tid: Tid, key: &str) -> Option<i32> {
    let status = fs::read(format!("/proc/{}/status", tid.0)).ok()?;
    status_field(&status, key)
}

/// A numeric field of `/proc/PID/status` (`Tgid`, `TracerPid`).
fn status_field(status: &[u8], key: &str) -> Option<i32> {
    status.split(|&b| b == b'\n').find_map(|line| {
        let rest = line.strip_prefix(key.as_bytes())?.strip_prefix(b":")?;
        std::str::from_utf8(rest).ok()?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(signo: i32, code: i32, pid: i32, raw_value: i64) -> SigInfo {
        let (has_pid, has_value) = siginfo_layout(signo, code);
        SigInfo {
            signo,
            code,
            pid: if has_pid { pid } else { 0 },
            value: has_value.then_some(raw_value),
        }
    }

    fn event(info: SigInfo) -> RawSignal {
        signal_event(info, Tid(23196), Pid(23194), "python3".into(), Utc::now())
    }

    #[test]
    fn stops_decode_like_the_fixtures() {
        // tests/fixtures/ptrace/ptrace-seize-samples.txt, STOP/CONT case.
        let trapped = |status| Report::decode(libc::CLD_TRAPPED, status);
        assert_eq!(trapped(15), Report::SignalStop(15));
        assert_eq!(trapped(34), Report::SignalStop(34));
        assert_eq!(trapped(19 | 128 << 8), Report::GroupStop(19));
        assert_eq!(trapped(5 | 128 << 8), Report::Trap);
        assert_eq!(trapped(5 | 6 << 8), Report::Event(libc::PTRACE_EVENT_EXIT));
        assert_eq!(trapped(5 | 1 << 8), Report::Event(libc::PTRACE_EVENT_FORK));
        assert_eq!(trapped(5 | 0x80), Report::Syscall);
        assert_eq!(Report::decode(libc::CLD_KILLED, 9), Report::Signaled(9));
        assert_eq!(Report::decode(libc::CLD_DUMPED, 11), Report::Signaled(11));
        assert_eq!(Report::decode(libc::CLD_EXITED, 3), Report::Exited(3));
        assert_eq!(Report::decode(libc::CLD_STOPPED, 19), Report::Other);
    }

    #[test]
    fn stops_read_back_from_siginfo() {
        assert_eq!(Report::from_siginfo(15, 0), Report::SignalStop(15));
        assert_eq!(Report::from_siginfo(12, -1), Report::SignalStop(12));
        assert_eq!(Report::from_siginfo(1, 0x80), Report::SignalStop(1));
        // SIGTRAP with TRAP_UNK (5) is a signal, not an event.
        assert_eq!(Report::from_siginfo(5, 5), Report::SignalStop(5));
        assert_eq!(
            Report::from_siginfo(19, 19 | 128 << 8),
            Report::GroupStop(19)
        );
        assert_eq!(Report::from_siginfo(5, 5 | 128 << 8), Report::Trap);
        let exit = Report::Event(libc::PTRACE_EVENT_EXIT);
        assert_eq!(Report::from_siginfo(5, 5 | 6 << 8), exit);
        assert_eq!(Report::from_siginfo(5, 5 | 0x80), Report::Syscall);
    }

    #[test]
    fn exit_messages() {
        // PTRACE_EVENT_EXIT wait_status=0xf and 0x9 in the fixtures.
        let term = ExitStatus::Signaled {
            signal: Signal::TERM,
        };
        assert_eq!(exit_status(0xf), term);
        assert_eq!(
            exit_status(0x8b),
            ExitStatus::Signaled { signal: Signal(11) }
        );
        assert_eq!(exit_status(0x300), ExitStatus::Exited { code: 3 });
        let killed = |status| RawEvent::Exit {
            time: Utc::now(),
            tid: Tid(23597),
            pid: Some(Pid(23597)),
            comm: "sleep".into(),
            status: Some(exit_status(status)),
        };
        assert!(killed_invisibly(&killed(0x9)));
        assert!(!killed_invisibly(&killed(0xf)));
    }

    #[test]
    fn kill_names_the_sender_process() {
        // kill -TERM: si_code=0 si_pid=23591.
        let e = event(info(15, 0, 23591, 0));
        assert_eq!(e.signal, Signal::TERM);
        assert_eq!(e.code, SigCode::User);
        assert_eq!(e.sender_pid, Some(Pid(23591)));
        assert!(e.group);
        assert_eq!(e.target_tid, Tid(23194));
        assert_eq!(e.value, None);
        assert_eq!((e.via, e.result), (Via::Ptrace, Delivery::Delivered));
    }

    #[test]
    fn sigqueue_carries_its_value() {
        let e = event(info(12, -1, 12141, 42));
        assert_eq!(e.code, SigCode::Queue);
        assert_eq!(e.value, Some(42));
        assert_eq!(e.sender_pid, Some(Pid(12141)));
    }

    #[test]
    fn tgkill_targets_one_thread() {
        let e = event(info(15, -6, 23207, 7));
        assert_eq!(e.code, SigCode::Tkill);
        assert!(!e.group);
        assert_eq!(e.target_tid, Tid(23196));
        assert_eq!(e.value, None);
    }

    #[test]
    fn kernel_signals_have_no_sender() {
        // SIGHUP from a pty hangup: SI_KERNEL, si_pid 0.
        assert_eq!(event(info(1, 0x80, 0, 0)).sender_pid, None);
        // SIGSEGV: the union holds si_addr, not a pid.
        let segv = event(info(11, 1, 0x1000, 0));
        assert_eq!(segv.sender_pid, None);
        assert!(!segv.group);
        // SIGCHLD names the child.
        assert_eq!(event(info(17, 1, 23116, 0)).sender_pid, Some(Pid(23116)));
        // A POSIX timer: si_tid is no pid.
        assert_eq!(event(info(14, -2, 3, 0)).sender_pid, None);
    }

    #[test]
    fn status_fields() {
        let status = b"Name:\tsleep\nTgid:\t23194\nNgid:\t0\nPid:\t23196\nTracerPid:\t0\n";
        assert_eq!(status_field(status, "Tgid"), Some(23194));
        assert_eq!(status_field(status, "Pid"), Some(23196));
        assert_eq!(status_field(status, "TracerPid"), Some(0));
        assert_eq!(status_field(status, "PPid"), None);
    }
}
