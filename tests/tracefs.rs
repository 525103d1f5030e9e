//! The tracefs source against real processes: who sent what to whom.
//!
//! Needs root (tracefs); without it every test prints a SKIP line and
//! passes. Each test owns its tracefs instance, so they run in parallel.

use std::collections::VecDeque;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use ptree::event::{Delivery, RawEvent, RawSignal, SigCode, Signal, Via};
use ptree::model::{Pid, Tid};
use ptree::trace::tracefs::{self, TraceInstance, TraceOptions};

/// Children killed and reaped on drop, so a failed assertion leaves no
/// `sleep 1000` behind. Each child leads its own process group, and the
/// whole group is killed: that takes grandchildren too.
#[derive(Default)]
struct Procs(Vec<Child>);

impl Procs {
    fn spawn(&mut self, program: &str, args: &[&str]) -> i32 {
        let child = Command::new(program)
            .args(args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {program}: {e}"));
        let pid = child.id() as i32;
        self.0.push(child);
        pid
    }

    fn sh(&mut self, script: &str) -> i32 {
        self.spawn("sh", &["-c", script])
    }

    /// Waits for a child that is expected to end by itself.
    fn wait(&mut self, pid: i32) {
        if let Some(child) = self.0.iter_mut().find(|c| c.id() as i32 == pid) {
            let _ = child.wait();
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("SKIP: tracefs tests need root");
    false
}

/// An instance and the events read from it but not yet looked at.
struct Trace {
    inst: TraceInstance,
    backlog: VecDeque<RawEvent>,
}

fn trace(pids: &[i32], signals: &[Signal]) -> Trace {
    let mut inst = TraceInstance::create(&TraceOptions::default()).expect("create instance");
    inst.set_signal_filter(pids, signals).expect("set filter");
    Trace {
        inst,
        backlog: VecDeque::new(),
    }
}

impl Trace {
    /// Reads until `found` picks an event or five seconds pass; returns it
    /// with the events passed over. Later events stay for the next call.
    fn until<T>(
        &mut self,
        mut found: impl FnMut(&RawEvent) -> Option<T>,
    ) -> (Option<T>, Vec<RawEvent>) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        loop {
            while let Some(ev) = self.backlog.pop_front() {
                if let Some(t) = found(&ev) {
                    return (Some(t), seen);
                }
                seen.push(ev);
            }
            if Instant::now() >= deadline {
                return (None, seen);
            }
            let batch = self
                .inst
                .read_events(Duration::from_millis(100))
                .expect("read");
            self.backlog.extend(batch);
        }
    }

    fn signal_to(&mut self, target: i32, sig: Signal) -> RawSignal {
        let (found, seen) = self.until(|ev| match ev {
            RawEvent::Signal(s) if s.target_tid == Tid(target) && s.signal == sig => {
                Some(s.clone())
            }
            _ => None,
        });
        found.unwrap_or_else(|| panic!("no {sig} to {target}; saw {seen:#?}"))
    }
}

/// Whether `pid` has `sig` in SigIgn: the shell's `trap ""` took effect.
fn ignores(pid: i32, sig: Signal) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (sig.0 - 1)) != 0)
}

#[test]
fn probe_succeeds() {
    if !is_root() {
        return;
    }
    tracefs::probe().expect("probe");
}

#[test]
fn kill_term_names_sender_and_target() {
    if !is_root() {
        return;
    }
    let mut procs = Procs::default();
    let target = procs.spawn("sleep", &["1000"]);
    let mut t = trace(&[target], &[Signal::TERM, Signal::KILL]);
    let sender = procs.sh(&format!("kill -TERM {target}"));

    let s = t.signal_to(target, Signal::TERM);
    assert_eq!(s.sender_tid, Some(Tid(sender)));
    assert_eq!(s.sender_pid, Some(Pid(sender)));
    assert_eq!(s.code, SigCode::User);
    assert_eq!(s.result, Delivery::Delivered);
    assert!(s.group);
    assert_eq!(s.target_comm, "sleep");
    assert_eq!(s.via, Via::Tracefs);
    // The clock offset puts the event at wall-clock now.
    let age = Utc::now() - s.time;
    assert!(
        age >= chrono::Duration::zero() && age < chrono::Duration::seconds(5),
        "event time {} vs now {}",
        s.time,
        Utc::now()
    );

    // The target's death is seen too, with its process id.
    let (exit, seen) = t.until(|ev| match ev {
        RawEvent::Exit { tid, pid, .. } if *tid == Tid(target) => Some(*pid),
        _ => None,
    });
    assert_eq!(exit, Some(Some(Pid(target))), "saw {seen:#?}");
}

#[test]
fn ignored_term_is_reported_ignored() {
    if !is_root() {
        return;
    }
    let mut procs = Procs::default();
    // SIG_IGN survives exec: the sleep itself ignores TERM.
    let target = procs.sh("trap '' TERM; exec sleep 1000");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ignores(target, Signal::TERM) {
        assert!(Instant::now() < deadline, "target never ignored TERM");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut t = trace(&[target], &[Signal::TERM]);
    let sender = procs.sh(&format!("kill -TERM {target}"));

    let s = t.signal_to(target, Signal::TERM);
    assert_eq!(s.result, Delivery::Ignored);
    assert_eq!(s.sender_pid, Some(Pid(sender)));
    assert!(
        std::path::Path::new(&format!("/proc/{target}")).exists(),
        "target should have survived"
    );
}

#[test]
fn sigkill_is_seen_with_its_sender() {
    if !is_root() {
        return;
    }
    let mut procs = Procs::default();
    let target = procs.spawn("sleep", &["1000"]);
    let mut t = trace(&[target], &[Signal::KILL]);
    let sender = procs.spawn("kill", &["-KILL", &target.to_string()]);

    let s = t.signal_to(target, Signal::KILL);
    assert_eq!(s.sender_tid, Some(Tid(sender)));
    assert_eq!(s.sender_pid, Some(Pid(sender)));
    assert_eq!(s.code, SigCode::User);
    assert_eq!(s.result, Delivery::Delivered);
}

#[test]
fn filter_keeps_only_watched_targets_and_signals() {
    if !is_root() {
        return;
    }
    let mut procs = Procs::default();
    let watched = procs.sh("trap '' USR1; exec sleep 1000");
    let other = procs.spawn("sleep", &["1000"]);
    let mut t = trace(&[], &[Signal::TERM]);

    // No pids yet: nothing recorded, even for the watched target.
    procs.sh(&format!("kill -TERM {other}"));
    std::thread::sleep(Duration::from_millis(200));
    let early = t
        .inst
        .read_events(Duration::from_millis(200))
        .expect("read");
    assert!(
        !early.iter().any(|e| matches!(e, RawEvent::Signal(_))),
        "{early:#?}"
    );

    // Updated while running; USR1 is not in the set.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ignores(watched, Signal(10)) {
        assert!(Instant::now() < deadline, "target never ignored USR1");
        std::thread::sleep(Duration::from_millis(10));
    }
    t.inst
        .set_signal_filter(&[watched], &[Signal::TERM])
        .expect("update filter");
    let usr1 = procs.sh(&format!("kill -USR1 {watched}"));
    procs.wait(usr1);
    procs.sh(&format!("kill -TERM {watched}"));
    let (term, seen) = t.until(|ev| match ev {
        RawEvent::Signal(s) if s.target_tid == Tid(watched) && s.signal == Signal::TERM => Some(()),
        _ => None,
    });
    assert!(term.is_some(), "no TERM; saw {seen:#?}");
    assert!(
        !seen.iter().any(|e| matches!(e, RawEvent::Signal(_))),
        "unwatched signals recorded: {seen:#?}"
    );
}

#[test]
fn fork_and_exec_of_watched_target_are_seen() {
    if !is_root() {
        return;
    }
    let mut procs = Procs::default();
    let mut t = trace(&[], &[]);
    let target = procs.sh("sleep 1000 & wait");

    // Our own fork of the target: a test thread (a tid) of this process.
    let (ours, seen) = t.until(|ev| match ev {
        RawEvent::Fork {
            child_tid,
            parent_pid,
            ..
        } if *child_tid == Tid(target) => Some(*parent_pid),
        _ => None,
    });
    assert_eq!(
        ours,
        Some(Some(Pid(std::process::id() as i32))),
        "saw {seen:#?}"
    );

    let (child, seen) = t.until(|ev| match ev {
        RawEvent::Fork {
            parent_tid,
            parent_pid,
            child_tid,
            ..
        } if *parent_tid == Tid(target) => Some((*parent_pid, *child_tid)),
        _ => None,
    });
    let (parent_pid, child) = child.unwrap_or_else(|| panic!("no fork by {target}: {seen:#?}"));
    assert_eq!(parent_pid, Some(Pid(target)));

    let (exec, seen) = t.until(|ev| match ev {
        RawEvent::Exec { pid, filename, .. } if *pid == Pid(child.0) => Some(filename.clone()),
        _ => None,
    });
    let filename = exec.unwrap_or_else(|| panic!("no exec by {child}: {seen:#?}"));
    assert!(filename.ends_with("/sleep"), "{filename}");
}

#[test]
fn drop_removes_the_instance() {
    if !is_root() {
        return;
    }
    let t = trace(&[std::process::id() as i32], &[Signal::TERM]);
    let dir = t.inst.dir().to_path_buf();
    assert!(dir.join("trace_pipe").exists(), "{}", dir.display());
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("ptree-{}", std::process::id())),
        "{name}"
    );
    drop(t);
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn stale_instance_of_a_dead_pid_is_reaped() {
    if !is_root() {
        return;
    }
    let mut done = Command::new("true").spawn().expect("spawn true");
    let dead = done.id();
    done.wait().expect("wait true");
    let dir = tracefs::root()
        .expect("tracefs")
        .join("instances")
        .join(format!("ptree-{dead}"));
    std::fs::create_dir(&dir).expect("mkdir stale instance");
    // A leftover must not survive even if the assertion below fails.
    struct Rmdir(std::path::PathBuf);
    impl Drop for Rmdir {
        fn drop(&mut self) {
            let _ = tracefs::remove_instance_dir(&self.0);
        }
    }
    let _guard = Rmdir(dir.clone());

    let removed = tracefs::reap_stale().expect("reap");
    assert!(removed.contains(&dir), "{removed:?}");
    assert!(!dir.exists());
}
