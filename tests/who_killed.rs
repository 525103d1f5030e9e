//! `ptree who-killed` against real signals, through both backends.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("SKIPPED: who-killed tests need root (tracefs, ptrace of any process)");
            return;
        }
    };
}

/// A running `ptree who-killed`, killed on drop if still running.
struct Watch {
    child: Child,
}

impl Watch {
    /// Starts the watch and waits until it says what it watches.
    fn start(args: &[&str]) -> Watch {
        let mut child = Command::new(ptree_bin())
            .arg("who-killed")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start who-killed");
        let (mut err, _) = await_stderr(&mut child, "watching");
        // Keep draining stderr so the watcher never blocks on it.
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            if !rest.is_empty() {
                eprintln!("who-killed stderr: {rest}");
            }
        });
        Watch { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the watch to end; returns its exit code and JSON lines.
    fn finish(mut self) -> (i32, Vec<Value>) {
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("read stdout");
        let status = self.child.wait().expect("wait");
        let lines = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
            .collect();
        (status.code().unwrap_or(-1), lines)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn of_type<'a>(lines: &'a [Value], t: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == t).collect()
}

fn run_kill(args: &[&str]) -> u32 {
    let mut c = Command::new("kill").args(args).spawn().expect("kill");
    let pid = c.id();
    c.wait().expect("wait kill");
    pid
}

const BACKENDS: [&str; 2] = ["tracefs", "ptrace"];

#[test]
fn a_kill_command_is_attributed_to_whoever_ran_it() {
    need_root!();
    for via in BACKENDS {
        let mut tree = Tree::new();
        let target = tree.run("sleep", &["1000"]);
        let t = target.to_string();
        let watch = Watch::start(&[&t, "--via", via, "--json", "--timeout", "30s"]);
        let killer = run_kill(&["-TERM", &t]);
        let (code, lines) = watch.finish();
        assert_eq!(code, 0, "{via}: {lines:?}");
        let sig = of_type(&lines, "signal");
        let s = sig
            .iter()
            .find(|s| s["target"]["pid"] == target)
            .expect("the signal");
        assert_eq!(s["signal"], "SIGTERM");
        assert_eq!(s["signo"], 15);
        assert_eq!(s["code"], "SI_USER");
        assert_eq!(s["sender"]["pid"], killer, "{via}: {s}");
        assert_eq!(s["via"], via);
        let exit = of_type(&lines, "exit");
        assert_eq!(exit[0]["pid"], target);
        let v = of_type(&lines, "verdict");
        assert_eq!(v.len(), 1, "{lines:?}");
        // `kill` only carries the signal: the actor is this test process.
        // ptrace names senders by pid alone, and `kill` may be gone before
        // ptree can read who started it.
        let root = &v[0]["root_cause"]["pid"];
        if via == "tracefs" {
            assert_eq!(*root, std::process::id(), "{via}: {}", v[0]);
        } else {
            assert!(*root == std::process::id() || *root == killer, "{}", v[0]);
        }
        assert_eq!(
            v[0]["chain"].as_array().unwrap().last().unwrap(),
            &Value::from(target)
        );
    }
}

#[test]
fn a_shell_that_kills_is_named() {
    need_root!();
    for via in BACKENDS {
        let mut tree = Tree::new();
        let target = tree.run("sleep", &["1000"]);
        let t = target.to_string();
        let watch = Watch::start(&[&t, "--via", via, "--json", "--timeout", "30s"]);
        let mut sh = Command::new("sh")
            .args(["-c", &format!("kill -TERM {t}; sleep 0.2")])
            .spawn()
            .expect("sh");
        let sh_pid = sh.id();
        sh.wait().unwrap();
        let (code, lines) = watch.finish();
        assert_eq!(code, 0);
        let v = &of_type(&lines, "verdict")[0];
        assert_eq!(v["root_cause"]["pid"], sh_pid, "{via}: {v}");
        assert_eq!(v["kind"], "manual-kill");
    }
}

#[test]
fn process_group_kill_reaches_every_member() {
    need_root!();
    let mut tree = Tree::new();
    let leader = tree.run("sh", &["-c", "sleep 1000 & sleep 1000 & wait"]);
    let members = wait_for("two members", Duration::from_secs(10), || {
        let mut roots = std::collections::HashSet::new();
        roots.insert(leader as i32);
        let d = descendants_of(&roots);
        (d.len() == 2).then_some(d)
    });
    let args: Vec<String> = members.iter().map(|p| p.to_string()).collect();
    let mut argv: Vec<&str> = args.iter().map(String::as_str).collect();
    argv.extend(["--via", "tracefs", "--json", "--timeout", "30s"]);
    let watch = Watch::start(&argv);
    run_kill(&["-TERM", "--", &format!("-{leader}")]);
    let (code, lines) = watch.finish();
    assert_eq!(code, 0, "{lines:?}");
    for m in &members {
        let s = of_type(&lines, "signal")
            .into_iter()
            .find(|s| s["target"]["pid"] == *m)
            .expect("signal to every member");
        assert_eq!(s["group"], true);
    }
    assert_eq!(of_type(&lines, "verdict").len(), 2);
}

#[test]
fn sigkill_sender_seen_by_tracefs_and_limit_said_by_ptrace() {
    need_root!();
    for via in BACKENDS {
        let mut tree = Tree::new();
        let target = tree.run("sleep", &["1000"]);
        let t = target.to_string();
        let watch = Watch::start(&[&t, "--via", via, "--json", "--timeout", "30s"]);
        let killer = run_kill(&["-KILL", &t]);
        let (code, lines) = watch.finish();
        assert_eq!(code, 0);
        let v = &of_type(&lines, "verdict")[0];
        if via == "tracefs" {
            let s = &of_type(&lines, "signal")[0];
            assert_eq!(s["signal"], "SIGKILL");
            assert_eq!(s["sender"]["pid"], killer);
            assert_eq!(v["root_cause"]["pid"], std::process::id());
        } else {
            assert!(of_type(&lines, "signal").is_empty());
            assert!(
                v["explanation"]
                    .as_str()
                    .unwrap()
                    .contains("invisible to ptrace"),
                "{v}"
            );
        }
    }
}

#[test]
fn an_ignored_signal_is_reported_as_ignored() {
    need_root!();
    let mut tree = Tree::new();
    // `trap '' TERM` makes the shell ignore SIGTERM.
    let target = tree.run("sh", &["-c", "trap '' TERM; while :; do sleep 1; done"]);
    let t = target.to_string();
    let watch = Watch::start(&[&t, "--via", "tracefs", "--json", "--timeout", "3s"]);
    run_kill(&["-TERM", &t]);
    let (code, lines) = watch.finish();
    assert_eq!(code, 1, "timed out: the target survived");
    let s = of_type(&lines, "signal")
        .into_iter()
        .find(|s| s["target"]["pid"] == target)
        .expect("the signal");
    assert_eq!(s["result"], "ignored");
    // Its `sleep` children come and go; the target itself gets no verdict.
    assert!(
        of_type(&lines, "verdict")
            .iter()
            .all(|v| v["pid"] != target)
    );
}

#[test]
fn thread_directed_and_queued_signals() {
    need_root!();
    for via in BACKENDS {
        let mut tree = Tree::new();
        // Node has several threads; SIGUSR2 gets a handler so it survives.
        let target = tree.run(
            "node",
            &["-e", "process.on('SIGUSR2', () => {}); process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1e9)"],
        );
        let tid = wait_for("a second thread", Duration::from_secs(10), || {
            std::fs::read_dir(format!("/proc/{target}/task"))
                .ok()?
                .flatten()
                .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
                .find(|&t| t != target as i32)
        });
        // Let Node install its handlers.
        std::thread::sleep(Duration::from_millis(500));
        let t = target.to_string();
        let watch = Watch::start(&[&t, "--via", via, "--json", "--timeout", "30s", "--all"]);
        // SAFETY: plain syscalls on a process this test started.
        unsafe {
            libc::syscall(libc::SYS_tgkill, target as i32, tid, libc::SIGUSR2);
        }
        let value = libc::sigval {
            sival_ptr: 42usize as *mut libc::c_void,
        };
        unsafe {
            libc::sigqueue(target as i32, libc::SIGUSR2, value);
        }
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, target as i32, 0) } as i32;
        assert!(pidfd >= 0);
        std::thread::sleep(Duration::from_millis(300));
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd,
                libc::SIGTERM,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
            libc::close(pidfd);
        }
        let (code, lines) = watch.finish();
        assert_eq!(code, 0, "{via}: {lines:?}");
        let sigs = of_type(&lines, "signal");
        let me = std::process::id();
        let tk = sigs
            .iter()
            .find(|s| s["code"] == "SI_TKILL")
            .unwrap_or_else(|| panic!("{via}: no tgkill in {sigs:?}"));
        assert_eq!(tk["target"]["tid"], tid);
        assert_eq!(tk["target"]["pid"], target);
        assert_eq!(tk["sender"]["pid"], me);
        assert_eq!(tk["group"], false);
        let q = sigs
            .iter()
            .find(|s| s["code"] == "SI_QUEUE")
            .unwrap_or_else(|| panic!("{via}: no sigqueue in {sigs:?}"));
        assert_eq!(q["sender"]["pid"], me);
        if via == "ptrace" {
            assert_eq!(q["value"], 42, "{q}");
        }
        let term = sigs
            .iter()
            .find(|s| s["signal"] == "SIGTERM")
            .expect("pidfd signal");
        assert_eq!(term["sender"]["pid"], me);
        assert_eq!(of_type(&lines, "verdict")[0]["root_cause"]["pid"], me);
    }
}

#[test]
fn a_forwarded_chain_leads_to_its_origin() {
    need_root!();
    let mut tree = Tree::new();
    // The demo's launcher forwards SIGTERM to the master, which sends it to
    // the agent and each worker: three levels.
    let sup = start_egg_demo(&mut tree, "egg-server-chain", "spawn", 0);
    let doc = wait_for("the workers", Duration::from_secs(30), || {
        let doc = ptree_json(&["--title", "egg-server-chain", "--format", "json"]);
        (nodes(&doc).iter().filter(|n| n["role"] == "worker").count() == 2).then_some(doc)
    });
    let all = nodes(&under(&doc, sup));
    let launcher = all.iter().find(|n| n["role"] == "launcher").unwrap()["pid"].clone();
    let master = all.iter().find(|n| n["role"] == "master").unwrap()["pid"].clone();
    let watch = Watch::start(&["--title", "egg-server-chain", "--json", "--timeout", "30s"]);
    run_kill(&["-TERM", &launcher.to_string()]);
    let (code, lines) = watch.finish();
    assert_eq!(code, 0, "{lines:?}");
    let verdicts = of_type(&lines, "verdict");
    let worker_verdict = verdicts
        .iter()
        .find(|v| {
            all.iter()
                .any(|n| n["pid"] == v["pid"] && n["role"] == "worker")
        })
        .expect("a worker's verdict");
    let chain = worker_verdict["chain"].as_array().unwrap();
    assert_eq!(worker_verdict["root_cause"]["pid"], std::process::id());
    assert!(
        chain.contains(&launcher) && chain.contains(&master),
        "{worker_verdict}"
    );
    let (l, m) = (
        chain.iter().position(|p| *p == launcher).unwrap(),
        chain.iter().position(|p| *p == master).unwrap(),
    );
    assert!(l < m, "the chain runs from the origin down: {chain:?}");
}

#[test]
fn title_follows_children_forked_after_the_start() {
    need_root!();
    let mut tree = Tree::new();
    // A titled parent that forks a child two seconds after starting.
    let parent = tree.run(
        "node",
        &[
            "-e",
            "setTimeout(() => require('child_process').spawn('sleep', ['1000'], {stdio: 'ignore'}), 2000); process.on('SIGTERM', () => {}); setInterval(() => {}, 1e9)",
            "--title=wk-follow-test",
        ],
    );
    let watch = Watch::start(&["--title", "wk-follow-test", "--json", "--timeout", "30s"]);
    let child = wait_for("the late child", Duration::from_secs(15), || {
        let mut roots = std::collections::HashSet::new();
        roots.insert(parent as i32);
        descendants_of(&roots).into_iter().next()
    });
    std::thread::sleep(Duration::from_millis(500));
    run_kill(&["-TERM", &child.to_string()]);
    run_kill(&["-KILL", &parent.to_string()]);
    let (code, lines) = watch.finish();
    assert_eq!(code, 0, "{lines:?}");
    assert!(
        of_type(&lines, "signal")
            .iter()
            .any(|s| s["target"]["pid"] == child),
        "{lines:?}"
    );
    assert!(of_type(&lines, "verdict").iter().any(|v| v["pid"] == child));
}

#[test]
fn a_sigkilled_watcher_leaves_the_target_running_and_is_cleaned_up_next_time() {
    need_root!();
    for via in BACKENDS {
        let mut tree = Tree::new();
        let target = tree.run("sleep", &["1000"]);
        let t = target.to_string();
        let watch = Watch::start(&[&t, "--via", via, "--timeout", "60s"]);
        let watcher = watch.pid();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(watcher as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let _ = watch.finish();
        std::thread::sleep(Duration::from_millis(200));
        let stat = std::fs::read_to_string(format!("/proc/{target}/stat")).unwrap();
        let state = stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap();
        assert!(
            state != 't' && state != 'T',
            "{via}: target left stopped: {stat}"
        );
        if via == "tracefs" {
            let leftover = format!("/sys/kernel/tracing/instances/ptree-{watcher}");
            // The next run reaps the instance of the dead watcher.
            let other = tree.run("sleep", &["1000"]);
            let o = other.to_string();
            let next = Watch::start(&[&o, "--via", "tracefs", "--timeout", "1s"]);
            assert!(
                !std::path::Path::new(&leftover).exists(),
                "instance of the killed watcher still there"
            );
            let (code, _) = next.finish();
            assert_eq!(code, 1);
        }
        // The target still answers signals.
        run_kill(&["-TERM", &t]);
        wait_for("the target to die", Duration::from_secs(10), || {
            let s = std::fs::read_to_string(format!("/proc/{target}/stat")).ok();
            s.is_none_or(|s| s.contains(") Z")).then_some(())
        });
    }
}

#[test]
fn unknown_pid_and_bad_arguments_are_errors() {
    let (code, _, err) = ptree(&["who-killed", "4194999"]);
    assert_eq!(code, 2);
    assert!(err.contains("no process with pid"), "{err}");
    let (code, _, err) = ptree(&["who-killed", "1", "--timeout", "5 parsecs"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = ptree(&["who-killed", "1", "--signals", "NOPE"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = ptree(&["who-killed"]);
    assert_eq!(code, 2);
}

#[test]
fn timeout_is_exit_1() {
    need_root!();
    let mut tree = Tree::new();
    let target = tree.run("sleep", &["1000"]);
    let (code, _, err) = ptree(&["who-killed", &target.to_string(), "--timeout", "500ms"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("timed out"), "{err}");
}

#[test]
fn sigterm_to_ptree_prints_what_it_has_and_exits_143() {
    need_root!();
    let mut tree = Tree::new();
    let target = tree.run("sleep", &["1000"]);
    let t = target.to_string();
    let watch = Watch::start(&[&t, "--json", "--signals", "USR1"]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watch.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let pid = watch.pid();
    let (code, _) = watch.finish();
    assert_eq!(code, 143);
    assert!(!std::path::Path::new(&format!("/sys/kernel/tracing/instances/ptree-{pid}")).exists());
}

#[test]
fn a_blocked_signal_is_reported_when_sent_and_kills_when_unblocked() {
    need_root!();
    for via in BACKENDS {
        let mut tree = Tree::new();
        // Blocks SIGTERM, says so on stdout, waits for a line on stdin, then
        // unblocks: the pending SIGTERM is delivered and kills it.
        let target = tree.spawn(
            Command::new("python3")
                .args([
                    "-c",
                    "import signal, sys\n\
                     signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n\
                     print('blocked', flush=True)\n\
                     sys.stdin.readline()\n\
                     signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})\n\
                     import time; time.sleep(30)",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        let mut line = String::new();
        BufReader::new(tree.child(target).stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "blocked");
        let t = target.to_string();
        let watch = Watch::start(&[&t, "--via", via, "--json", "--timeout", "30s"]);
        let killer = run_kill(&["-TERM", &t]);
        // Still alive: the signal waits, blocked.
        std::thread::sleep(Duration::from_millis(300));
        let stat = std::fs::read_to_string(format!("/proc/{target}/stat")).unwrap();
        assert!(!stat.contains(") Z"), "died while SIGTERM was blocked");
        {
            use std::io::Write;
            let stdin = tree.child(target).stdin.as_mut().unwrap();
            stdin.write_all(b"go\n").unwrap();
        }
        let (code, lines) = watch.finish();
        assert_eq!(code, 0, "{via}: {lines:?}");
        let s = of_type(&lines, "signal")
            .into_iter()
            .find(|s| s["target"]["pid"] == target)
            .expect("the signal");
        assert_eq!(s["signal"], "SIGTERM");
        assert_eq!(s["sender"]["pid"], killer, "{via}: {s}");
        let v = &of_type(&lines, "verdict")[0];
        assert_eq!(v["pid"], target);
        // This test started the target and ran `kill`: an ancestor that
        // sent the signal without having received one. ptrace knows the
        // `kill` by pid only once it is gone: someone outside the tree.
        if via == "tracefs" {
            assert_eq!(v["kind"], "parent-forward", "{v}");
            assert_eq!(v["root_cause"]["pid"], std::process::id(), "{v}");
        } else {
            assert!(
                v["kind"] == "parent-forward" || v["kind"] == "manual-kill",
                "{v}"
            );
        }
    }
}
