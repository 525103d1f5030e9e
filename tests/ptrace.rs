//! The ptrace source against real processes: a signal is seen with its
//! sender and still does what it would have done without ptree watching.
//!
//! Every wait polls with a generous deadline; nothing asserts on speed.
//! Without root, where ptrace is refused, each test prints a SKIP line.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use ptree::Error;
use ptree::event::{Delivery, ExitStatus, RawEvent, RawSignal, SigCode, Signal, Via};
use ptree::model::{Pid, Tid};
use ptree::proc::parse::parse_stat;
use ptree::trace::ptrace::{PtraceWatcher, killed_invisibly};

/// Longest wait for anything: far beyond what a loaded machine needs.
const PATIENCE: Duration = Duration::from_secs(60);

/// Processes a test started, killed and reaped on drop so a failing test
/// leaves nothing behind.
#[derive(Default)]
struct Kids {
    children: Vec<Child>,
    /// Processes started by our children (not ours to wait for).
    strays: Vec<Pid>,
}

/// A started process and the pipes the test asked for.
struct Kid {
    pid: Pid,
    lines: Option<Lines>,
    stdin: Option<ChildStdin>,
}

impl Kids {
    fn spawn(&mut self, cmd: &mut Command) -> Kid {
        let mut child = cmd.spawn().expect("spawn");
        let pid = Pid(child.id() as i32);
        let lines = child.stdout.take().map(Lines::new);
        let stdin = child.stdin.take();
        self.children.push(child);
        Kid { pid, lines, stdin }
    }

    fn wait(&mut self, pid: Pid) -> std::process::ExitStatus {
        let child = self.children.iter_mut().find(|c| c.id() as i32 == pid.0);
        child.expect("our child").wait().expect("wait")
    }
}

impl Drop for Kids {
    fn drop(&mut self) {
        for &pid in &self.strays {
            if state(pid).is_some() {
                signal(pid, libc::SIGKILL);
            }
        }
        for child in &mut self.children {
            // Err: the watcher reaped it (it was a tracee); nothing to kill.
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                // Bounded: a tracee left stopped by a bug must fail the
                // test, not hang it.
                let deadline = Instant::now() + PATIENCE;
                while let Ok(None) = child.try_wait() {
                    if Instant::now() > deadline {
                        say(&format!("child {} never exited", child.id()));
                        break;
                    }
                    thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// A child's stdout, line by line, without blocking the test.
struct Lines(Receiver<String>);

impl Lines {
    fn new(out: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(rx)
    }

    fn try_next(&self) -> Option<String> {
        self.0.try_recv().ok()
    }

    /// The next line, waiting without a watcher to pump.
    fn next(&self) -> String {
        self.0
            .recv_timeout(PATIENCE)
            .expect("a line from the child")
    }
}

/// A watcher and every event it reported so far.
struct Watch {
    watcher: PtraceWatcher,
    log: Vec<RawEvent>,
}

impl Watch {
    /// Attaches, or prints a SKIP line when ptrace is not permitted here.
    fn attach(pids: &[Pid]) -> Option<Watch> {
        match PtraceWatcher::attach(pids) {
            Ok(watcher) => Some(Watch {
                watcher,
                log: Vec::new(),
            }),
            Err(e @ Error::Ptrace { .. }) if !nix::unistd::geteuid().is_root() => {
                skip(&e.to_string());
                None
            }
            Err(e) => panic!("attach {pids:?}: {e} (hint: {:?})", e.hint()),
        }
    }

    /// Polls (which also resumes stopped tracees) until `found` gives a
    /// value.
    fn until<T>(&mut self, what: &str, mut found: impl FnMut(&Watch) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(t) = found(self) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}; events so far: {:#?}",
                self.log
            );
            let events = self.watcher.poll(Duration::from_millis(50)).expect("poll");
            self.log.extend(events);
        }
    }

    fn signals(&self, to: Pid, sig: i32) -> Vec<RawSignal> {
        self.log
            .iter()
            .filter_map(|e| match e {
                RawEvent::Signal(s) if s.signal == Signal(sig) && belongs(s, to) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    fn signal(&mut self, to: Pid, sig: i32) -> RawSignal {
        let what = format!("signal {sig} to {to}");
        self.until(&what, |w| w.signals(to, sig).into_iter().next())
    }

    fn exit(&mut self, tid: i32) -> RawEvent {
        self.until(&format!("exit of {tid}"), |w| {
            w.log
                .iter()
                .find(|e| matches!(e, RawEvent::Exit { tid: t, .. } if t.0 == tid))
                .cloned()
        })
    }

    fn exit_status(&mut self, tid: i32) -> ExitStatus {
        match self.exit(tid) {
            RawEvent::Exit {
                status: Some(s), ..
            } => s,
            other => panic!("exit without status: {other:?}"),
        }
    }

    fn line(&mut self, lines: &Lines) -> String {
        self.until("a line from the target", |_| lines.try_next())
    }

    fn state_becomes(&mut self, pid: Pid, what: &str, ok: impl Fn(char) -> bool) -> char {
        self.until(&format!("{pid} {what}"), |_| state(pid).filter(|&s| ok(s)))
    }
}

fn belongs(s: &RawSignal, to: Pid) -> bool {
    s.target_tid.0 == to.0 || (s.group && s.target_tid == Tid(to.0))
}

fn skip(why: &str) {
    say(&format!("SKIP ptrace test: {why}"));
}

/// Straight to stderr: libtest would swallow `eprintln!` of a passing test.
fn say(what: &str) {
    let _ = writeln!(std::io::stderr(), "{what}");
}

fn signal(pid: Pid, sig: i32) {
    // SAFETY: kill(2) on a pid this test started.
    let r = unsafe { libc::kill(pid.0, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig})");
}

fn me() -> Pid {
    Pid(std::process::id() as i32)
}

fn state(pid: Pid) -> Option<char> {
    let stat = std::fs::read(format!("/proc/{}/stat", pid.0)).ok()?;
    parse_stat(&stat).ok().map(|s| s.state)
}

fn tracer(pid: Pid) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.0)).ok()?;
    let line = status.lines().find(|l| l.starts_with("TracerPid:"))?;
    line["TracerPid:".len()..].trim().parse().ok()
}

fn is_stopped(s: char) -> bool {
    matches!(s, 't' | 'T')
}

fn sleeper() -> Command {
    let mut cmd = Command::new("sleep");
    cmd.arg("1000");
    cmd
}

fn python(script: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.args(["-u", "-c", script]).stdout(Stdio::piped());
    cmd
}

fn assert_left_alone(watch: &mut Watch, pid: Pid) {
    watch.watcher.detach_all();
    assert!(watch.watcher.is_empty(), "{:?}", watch.watcher.tracees());
    assert_eq!(tracer(pid), Some(0), "{pid} still traced");
    let s = state(pid).expect("target alive");
    assert!(!is_stopped(s), "{pid} left in state {s}");
}

#[test]
fn kill_term_names_its_sender_and_still_kills() {
    let mut kids = Kids::default();
    let target = kids.spawn(&mut sleeper()).pid;
    let Some(mut watch) = Watch::attach(&[target]) else {
        return;
    };
    let sender = kids
        .spawn(Command::new("kill").args(["-TERM", &target.to_string()]))
        .pid;

    let sig = watch.signal(target, libc::SIGTERM);
    assert_eq!(sig.sender_pid, Some(sender));
    assert_eq!(sig.code, SigCode::User);
    assert!(sig.group);
    assert_eq!(sig.target_tid, Tid(target.0));
    assert_eq!(sig.target_comm, "sleep");
    assert_eq!((sig.via, sig.result), (Via::Ptrace, Delivery::Delivered));

    let status = watch.exit_status(target.0);
    assert_eq!(
        status,
        ExitStatus::Signaled {
            signal: Signal::TERM
        }
    );
    assert!(!killed_invisibly(&watch.exit(target.0)));
    assert_eq!(kids.wait(sender).code(), Some(0));
    assert_eq!(watch.watcher.syscall_stops(), 0);
}

const COUNTER: &str = r#"
import signal, sys, time
n = 0
def usr1(s, f):
    global n
    n += 1
    print("got", n, flush=True)
def term(s, f):
    print("total", n, flush=True)
    sys.exit(0)
signal.signal(signal.SIGUSR1, usr1)
signal.signal(signal.SIGTERM, term)
print("ready", flush=True)
while True:
    time.sleep(1)
"#;

#[test]
fn every_signal_reaches_the_handler_exactly_once() {
    const N: usize = 20;
    let mut kids = Kids::default();
    let target = kids.spawn(&mut python(COUNTER));
    let lines = target.lines.expect("stdout");
    assert_eq!(lines.next(), "ready");
    let Some(mut watch) = Watch::attach(&[target.pid]) else {
        return;
    };

    // One at a time: standard signals sent while one is pending merge,
    // with or without a tracer, and Python merges them once more.
    for i in 1..=N {
        signal(target.pid, libc::SIGUSR1);
        watch.until("SIGUSR1 seen", |w| {
            (w.signals(target.pid, libc::SIGUSR1).len() >= i).then_some(())
        });
        assert_eq!(watch.line(&lines), format!("got {i}"));
    }
    signal(target.pid, libc::SIGTERM);
    assert_eq!(watch.line(&lines), format!("total {N}"));
    let status = watch.exit_status(target.pid.0);
    assert_eq!(status, ExitStatus::Exited { code: 0 });

    let usr1 = watch.signals(target.pid, libc::SIGUSR1);
    assert_eq!(usr1.len(), N);
    assert!(usr1.iter().all(|s| s.sender_pid == Some(me())));
    assert_eq!(watch.signals(target.pid, libc::SIGTERM).len(), 1);
    assert_eq!(watch.watcher.syscall_stops(), 0);
}

#[test]
fn a_signal_held_at_detach_is_passed_on() {
    held_signal_passed_on(false);
}

#[test]
fn a_held_signal_whose_stop_report_was_taken_elsewhere_is_passed_on() {
    held_signal_passed_on(true);
}

/// `steal`: collect the stop report behind the watcher's back, as a
/// caller's own `waitpid(-1)` would.
fn held_signal_passed_on(steal: bool) {
    let mut kids = Kids::default();
    let target = kids.spawn(&mut python(COUNTER));
    let lines = target.lines.expect("stdout");
    assert_eq!(lines.next(), "ready");
    let Some(mut watch) = Watch::attach(&[target.pid]) else {
        return;
    };
    // Not polling: the target stays in its signal-delivery-stop.
    signal(target.pid, libc::SIGUSR1);
    let deadline = Instant::now() + PATIENCE;
    while state(target.pid) != Some('t') {
        assert!(Instant::now() < deadline, "no signal-delivery-stop");
        thread::sleep(Duration::from_millis(20));
    }
    if steal {
        // SAFETY: a zeroed siginfo_t is valid; waitid on our tracee.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WSTOPPED | libc::__WALL;
        let r = unsafe { libc::waitid(libc::P_PID, target.pid.0 as u32, &mut info, flags) };
        assert_eq!(r, 0);
        assert_eq!(info.si_code, libc::CLD_TRAPPED);
    }
    watch.watcher.detach_all();
    assert_eq!(tracer(target.pid), Some(0));
    assert_eq!(lines.next(), "got 1");
    // The signal seen while detaching is still reported.
    let events = watch.watcher.poll(Duration::ZERO).expect("poll");
    watch.log.extend(events);
    assert_eq!(watch.signals(target.pid, libc::SIGUSR1).len(), 1);
    signal(target.pid, libc::SIGTERM);
    assert_eq!(lines.next(), "total 1");
}

#[test]
fn sigqueue_shows_si_queue_and_its_value() {
    let mut kids = Kids::default();
    let target = kids.spawn(&mut sleeper()).pid;
    let Some(mut watch) = Watch::attach(&[target]) else {
        return;
    };
    let value = libc::sigval {
        sival_ptr: 42usize as *mut libc::c_void,
    };
    // SAFETY: sigqueue(3) on a pid this test started.
    let r = unsafe { libc::sigqueue(target.0, libc::SIGUSR2, value) };
    assert_eq!(r, 0);

    let sig = watch.signal(target, libc::SIGUSR2);
    assert_eq!(sig.code, SigCode::Queue);
    assert_eq!(sig.value, Some(42));
    assert_eq!(sig.sender_pid, Some(me()));
    assert!(sig.group);
    let status = watch.exit_status(target.0);
    assert_eq!(status, ExitStatus::Signaled { signal: Signal(12) });
    assert_eq!(watch.watcher.syscall_stops(), 0);
}

const THREADED: &str = r#"
import signal, threading, time
signal.signal(signal.SIGUSR1, lambda s, f: print("usr1", flush=True))
def worker():
    print("tid", threading.get_native_id(), flush=True)
    while True:
        time.sleep(1)
threading.Thread(target=worker, daemon=True).start()
while True:
    time.sleep(1)
"#;

#[test]
fn tgkill_to_a_thread_is_si_tkill_for_that_thread() {
    let mut kids = Kids::default();
    let target = kids.spawn(&mut python(THREADED));
    let lines = target.lines.expect("stdout");
    let worker: i32 = lines
        .next()
        .strip_prefix("tid ")
        .and_then(|t| t.parse().ok())
        .expect("tid line");
    assert_ne!(worker, target.pid.0);
    let Some(mut watch) = Watch::attach(&[target.pid]) else {
        return;
    };
    assert!(watch.watcher.tracees().contains(&Tid(worker)));

    // SAFETY: tgkill(2) on a thread of a process this test started.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, target.pid.0, worker, libc::SIGUSR1) };
    assert_eq!(r, 0);

    let sig = watch.signal(Pid(worker), libc::SIGUSR1);
    assert_eq!(sig.code, SigCode::Tkill);
    assert!(!sig.group);
    assert_eq!(sig.target_tid, Tid(worker));
    assert_eq!(sig.sender_pid, Some(me()));
    assert_eq!(watch.line(&lines), "usr1");
    assert_eq!(watch.watcher.syscall_stops(), 0);
    assert_left_alone(&mut watch, target.pid);
}

#[test]
fn stop_and_cont_behave_as_without_a_tracer() {
    let mut kids = Kids::default();
    let target = kids.spawn(&mut sleeper()).pid;
    let Some(mut watch) = Watch::attach(&[target]) else {
        return;
    };

    signal(target, libc::SIGSTOP);
    watch.signal(target, libc::SIGSTOP);
    watch.state_becomes(target, "stopped", is_stopped);
    signal(target, libc::SIGCONT);
    watch.signal(target, libc::SIGCONT);
    watch.state_becomes(target, "running again", |s| !is_stopped(s));

    // Stopped while traced, then detached: it stays stopped, as a job
    // control stop would, until SIGCONT.
    signal(target, libc::SIGSTOP);
    assert_eq!(watch.signals(target, libc::SIGSTOP).len(), 1);
    watch.until("second SIGSTOP", |w| {
        (w.signals(target, libc::SIGSTOP).len() == 2).then_some(())
    });
    watch.state_becomes(target, "stopped", is_stopped);
    watch.watcher.detach_all();
    assert!(watch.watcher.is_empty());
    assert_eq!(tracer(target), Some(0));
    watch.state_becomes(target, "stopped untraced", |s| s == 'T');
    signal(target, libc::SIGCONT);
    watch.state_becomes(target, "running untraced", |s| !is_stopped(s));
    assert_eq!(watch.watcher.syscall_stops(), 0);
}

#[test]
fn sigkill_is_seen_only_as_an_exit_without_sender() {
    let mut kids = Kids::default();
    let target = kids.spawn(&mut sleeper()).pid;
    let Some(mut watch) = Watch::attach(&[target]) else {
        return;
    };
    signal(target, libc::SIGKILL);
    let exit = watch.exit(target.0);
    assert!(killed_invisibly(&exit), "{exit:?}");
    assert!(watch.signals(target, libc::SIGKILL).is_empty());
    assert_eq!(watch.watcher.syscall_stops(), 0);
}

#[test]
fn a_child_forked_after_attach_is_followed() {
    let mut kids = Kids::default();
    let mut shell = Command::new("sh");
    shell
        .args(["-c", "read go; sleep 1000 & echo $!; wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let target = kids.spawn(&mut shell);
    let lines = target.lines.expect("stdout");
    let Some(mut watch) = Watch::attach(&[target.pid]) else {
        return;
    };
    writeln!(target.stdin.expect("stdin"), "go").expect("write");
    let child = Pid(watch.line(&lines).parse().expect("child pid"));
    kids.strays.push(child);

    let fork = watch.until("fork", |w| {
        w.log.iter().find_map(|e| match e {
            RawEvent::Fork {
                parent_pid,
                child_tid,
                child_pid,
                ..
            } if child_tid.0 == child.0 => Some((*parent_pid, *child_pid)),
            _ => None,
        })
    });
    assert_eq!(fork, (Some(target.pid), Some(child)));
    let exe = watch.until("exec", |w| {
        w.log.iter().find_map(|e| match e {
            RawEvent::Exec { pid, filename, .. } if *pid == child => Some(filename.clone()),
            _ => None,
        })
    });
    assert!(exe.ends_with("/sleep"), "{exe}");

    signal(child, libc::SIGTERM);
    let sig = watch.signal(child, libc::SIGTERM);
    assert_eq!(sig.sender_pid, Some(me()));
    let status = watch.exit_status(child.0);
    assert_eq!(
        status,
        ExitStatus::Signaled {
            signal: Signal::TERM
        }
    );
    assert_eq!(watch.watcher.syscall_stops(), 0);
    assert_left_alone(&mut watch, target.pid);
}

#[test]
fn detaching_leaves_targets_running() {
    let mut kids = Kids::default();
    let a = kids.spawn(&mut sleeper()).pid;
    let b = kids.spawn(&mut python(THREADED));
    let lines = b.lines.expect("stdout");
    lines.next();
    let Some(mut watch) = Watch::attach(&[a, b.pid]) else {
        return;
    };
    watch
        .watcher
        .poll(Duration::from_millis(100))
        .expect("poll");
    assert_left_alone(&mut watch, a);
    assert_left_alone(&mut watch, b.pid);
    // Dropping after an explicit detach is harmless.
    drop(watch);
    assert!(!is_stopped(state(a).expect("alive")));
}

/// Set in the helper process of the next test: the pid to trace.
const HELPER_TARGET: &str = "PTREE_PTRACE_HELPER_TARGET";
const HELPER_NAME: &str = "tracer_helper_for_the_sigkill_test";

/// Not a test on its own: does nothing unless started by
/// `target_runs_on_when_the_tracer_is_sigkilled`.
#[test]
fn tracer_helper_for_the_sigkill_test() {
    let Ok(target) = std::env::var(HELPER_TARGET) else {
        return;
    };
    let target = Pid(target.parse().expect("pid"));
    match PtraceWatcher::attach(&[target]) {
        Ok(mut watcher) => {
            println!("PTREE_HELPER attached {}", nix::unistd::gettid());
            // Bounded, in case the parent test died before killing us.
            let deadline = Instant::now() + PATIENCE;
            while Instant::now() < deadline && !watcher.is_empty() {
                let _ = watcher.poll(Duration::from_millis(100));
            }
        }
        Err(e) => println!("PTREE_HELPER failed {e}"),
    }
}

#[test]
fn target_runs_on_when_the_tracer_is_sigkilled() {
    let mut kids = Kids::default();
    let target = kids.spawn(&mut sleeper()).pid;
    let exe = std::env::current_exe().expect("test binary");
    let mut helper = Command::new(exe);
    helper
        .args([HELPER_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(HELPER_TARGET, target.to_string())
        .stdout(Stdio::piped());
    let helper = kids.spawn(&mut helper);
    let lines = helper.lines.expect("stdout");
    let report = loop {
        let line = lines.next();
        // libtest prints "test NAME ... " before the helper's own output.
        if let Some(at) = line.find("PTREE_HELPER ") {
            break line[at + "PTREE_HELPER ".len()..].to_string();
        }
    };
    let Some(tracer_tid) = report.strip_prefix("attached ") else {
        if !nix::unistd::geteuid().is_root() {
            return skip(&report);
        }
        panic!("helper could not attach: {report}");
    };
    assert_eq!(
        tracer(target).map(|t| t.to_string()),
        Some(tracer_tid.into())
    );

    signal(helper.pid, libc::SIGKILL);
    kids.wait(helper.pid);

    // The kernel detaches a dead tracer's tracees.
    let deadline = Instant::now() + PATIENCE;
    while tracer(target) != Some(0) {
        assert!(Instant::now() < deadline, "{target} still traced");
        thread::sleep(Duration::from_millis(20));
    }
    let s = state(target).expect("target alive");
    assert!(!is_stopped(s), "target left in state {s}");

    // And it still answers signals: SIGTERM kills it.
    signal(target, libc::SIGTERM);
    let status = kids.wait(target);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}

#[test]
fn refusals_say_why() {
    let refusal = |pid: Pid| match PtraceWatcher::attach(&[pid]) {
        Ok(_) => panic!("attached to {pid}"),
        Err(e) => e,
    };
    let missing = refusal(Pid(i32::MAX));
    assert!(matches!(missing, Error::NoSuchPid(_)), "{missing}");
    let myself = refusal(me());
    assert!(myself.to_string().contains("itself"), "{myself}");

    if nix::unistd::geteuid().is_root() {
        // Root may trace anything but kernel threads; kthreadd is one.
        if std::fs::read_to_string("/proc/2/comm").is_ok_and(|c| c.trim() == "kthreadd") {
            let kthread = refusal(Pid(2));
            assert!(kthread.to_string().contains("kernel thread"), "{kthread}");
        }
    } else {
        let init = refusal(Pid::INIT);
        assert!(matches!(init, Error::Ptrace { .. }), "{init}");
        assert_eq!(init.hint(), Some(ptree::trace::ptrace::PERMISSION_HINT));
    }
}
