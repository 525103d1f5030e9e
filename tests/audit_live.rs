//! The audit source on the real kernel: `ptree audit enable` loads the
//! rules, a `sleep` is killed by a `kill` command, and `ptree who-killed
//! PID --audit-log` reads the answer back from /var/log/audit/audit.log,
//! as on-call would the next morning.
//!
//! Needs root. Installs auditd when it is missing (apt-get), starts the
//! daemon when it is not running and stops only a daemon it started; skips
//! (with a message) only where the kernel has no audit support, or without
//! root. The rules, the kernel's `enabled` flag and the daemon are
//! machine-wide, so everything runs in one test, and a guard puts them
//! back as they were on every path, a failed assertion included.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use ptree::audit::control::{self, Auditctl, RuleState};
use serde_json::Value;

use common::{Tree, ptree, wait_for};

/// The audit system as the test found it, restored on drop.
struct AuditWorld {
    auditctl: Auditctl,
    /// ptree's rules were loaded before the test (then they are loaded
    /// again at the end).
    had_rules: bool,
    /// The kernel's `enabled` flag before the test.
    enabled: Option<u32>,
    /// The daemon this test started, to stop.
    started_daemon: Option<i32>,
}

impl AuditWorld {
    /// Installs and starts what is missing; `None` when the test cannot
    /// run here (and says why).
    fn prepare() -> Option<AuditWorld> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: audit tests need root (CAP_AUDIT_CONTROL)");
            return None;
        }
        if !control::kernel_has_audit() {
            eprintln!("SKIP: this kernel has no audit support (no /proc/self/loginuid)");
            return None;
        }
        let auditctl = match Auditctl::find() {
            Ok(a) => a,
            Err(_) => {
                install_auditd();
                Auditctl::find().expect("auditctl after installing auditd")
            }
        };
        let status = match auditctl.status() {
            Ok(s) => s,
            Err(e @ control::ControlError::NoKernelSupport(_)) => {
                eprintln!("SKIP: {e}");
                return None;
            }
            Err(e) => panic!("auditctl -s: {e}"),
        };
        let had_rules = RuleState::from_rules(&auditctl.rules().expect("auditctl -l")).b64;
        let mut world = AuditWorld {
            auditctl,
            had_rules,
            enabled: status.enabled,
            started_daemon: None,
        };
        if control::find_auditd().is_none() {
            let ok = Command::new(auditd_path())
                .stdin(Stdio::null())
                .status()
                .expect("run auditd")
                .success();
            assert!(ok, "auditd did not start");
            let pid = wait_for(
                "auditd to run",
                Duration::from_secs(10),
                control::find_auditd,
            );
            world.started_daemon = Some(pid.0);
        }
        Some(world)
    }
}

impl Drop for AuditWorld {
    fn drop(&mut self) {
        // Rules first, with auditctl itself: ptree may be what failed.
        let _ = self.auditctl.delete_ptree_rules();
        if self.had_rules {
            for arch in control::RuleArch::ALL {
                let _ = self.auditctl.add(arch);
            }
        }
        if let Some(pid) = self.started_daemon {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            for _ in 0..100 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if self.enabled == Some(0) {
            let _ = self.auditctl.set_enabled(false);
        }
    }
}

fn install_auditd() {
    eprintln!("auditctl missing: installing auditd");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-qq", "auditd"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        let ok = Command::new("apt-get")
            .args(["install", "-y", "-qq", "auditd"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "apt-get install auditd failed (.ci/run installs it)");
    }
}

fn auditd_path() -> &'static str {
    ["/usr/sbin/auditd", "/sbin/auditd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("auditd")
}

/// The JSON lines of `who-killed`, parsed.
fn lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect()
}

#[test]
fn the_audit_log_names_who_killed_a_process() {
    let Some(world) = AuditWorld::prepare() else {
        return;
    };

    let (code, out, err) = ptree(&["audit", "enable"]);
    assert_eq!(code, 0, "audit enable: {out}{err}");
    assert!(out.contains("ptree rules:  loaded"), "{out}");
    let (code, out, err) = ptree(&["audit", "enable"]);
    assert_eq!(code, 0, "enable is idempotent: {out}{err}");
    assert!(out.contains("(already)"), "{out}");
    let (code, out, err) = ptree(&["audit", "status"]);
    assert_eq!(code, 0, "audit status: {out}{err}");
    assert!(out.contains("ptree rules:  loaded"), "{out}");
    assert!(out.contains("auditd:       running"), "{out}");
    assert!(err.contains("never appear in the audit log"), "{err}");

    // A sleep killed by a kill command run by this test.
    let mut tree = Tree::new();
    let victim = tree.run("sleep", &["1000"]);
    let bystander = tree.run("sleep", &["1000"]);
    let before_kill = Utc::now() - chrono::Duration::seconds(1);
    std::thread::sleep(Duration::from_millis(1100));
    let mut kill = Command::new("kill")
        .args(["-TERM", &victim.to_string()])
        .spawn()
        .expect("run kill");
    let killer = kill.id();
    assert!(kill.wait().expect("kill ends").success());
    let died = tree.child(victim).wait().expect("the victim is reaped");
    assert!(!died.success());

    let pid = victim.to_string();
    let (code, out, err) = wait_for(
        "the kill to reach audit.log",
        Duration::from_secs(15),
        || {
            let run = ptree(&["who-killed", &pid, "--audit-log", "--json"]);
            (run.0 != 1).then_some(run)
        },
    );
    assert_eq!(code, 0, "{out}{err}");
    let records = lines(&out);
    let signal = &records[0];
    assert_eq!(signal["type"], "signal", "{out}");
    assert_eq!(signal["signal"], "SIGTERM");
    assert_eq!(signal["via"], "audit");
    assert_eq!(signal["target"]["pid"], victim);
    assert_eq!(signal["target"]["comm"], "sleep");
    let sender = &signal["sender"];
    assert_eq!(sender["pid"], killer, "{out}");
    assert_eq!(sender["comm"], "kill");
    assert!(
        sender["cmdline"]
            .as_str()
            .is_some_and(|c| c.ends_with(&format!("-TERM {victim}"))),
        "{out}"
    );
    // Its parent: this test, described from /proc since it is alive.
    assert_eq!(sender["ancestry"][0]["pid"], std::process::id(), "{out}");
    let verdict = records.last().expect("records");
    assert_eq!(verdict["type"], "verdict", "{out}");
    assert_eq!(verdict["pid"], victim);
    assert_eq!(verdict["root_cause"]["pid"], std::process::id(), "{out}");
    assert_eq!(
        verdict["chain"],
        serde_json::json!([std::process::id(), killer, victim])
    );

    // The human view says the same.
    let (code, human, _) = ptree(&["who-killed", &pid, "--audit-log"]);
    assert_eq!(code, 0);
    assert!(
        human.contains(&format!("SIGTERM  {killer} kill")),
        "{human}"
    );
    assert!(
        human.contains(&format!("verdict for {victim} sleep")),
        "{human}"
    );

    // Never signalled: 1. Unreadable: 2.
    let (code, out, err) = ptree(&["who-killed", &bystander.to_string(), "--audit-log"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("no signal to"), "{err}");
    let (code, _, err) = ptree(&["who-killed", &pid, "--audit-log", "/nonexistent/audit.log"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/audit.log"), "{err}");
    let (code, _, err) = ptree(&["who-killed", &pid, "--audit-log", "/var/log/audit"]);
    assert_eq!(code, 2, "a directory: {err}");
    let (code, _, err) = ptree(&[
        "who-killed",
        &pid,
        "--audit-log",
        "--since",
        "yesterday-ish",
    ]);
    assert_eq!(code, 2, "{err}");

    // Time windows.
    let (code, out, err) = ptree(&["who-killed", &pid, "--audit-log", "--since", "1m ago"]);
    assert_eq!(code, 0, "{out}{err}");
    let before = before_kill.to_rfc3339_opts(SecondsFormat::Millis, true);
    let (code, out, err) = ptree(&["who-killed", &pid, "--audit-log", "--until", &before]);
    assert_eq!(code, 1, "--until {before}: {out}{err}");
    let (code, _, err) = ptree(&[
        "who-killed",
        &pid,
        "--audit-log",
        "--since",
        &before,
        "--until",
        "now",
    ]);
    assert_eq!(code, 0, "{err}");

    // ausearch -i text of the same log gives the same answer.
    if let Ok(search) = Command::new("ausearch")
        .args(["-i", "-k", control::KEY, "-if", "/var/log/audit/audit.log"])
        .output()
    {
        let dir = tempfile::tempdir().expect("a temp dir");
        let text = dir.path().join("ausearch-i.txt");
        std::fs::write(&text, &search.stdout).expect("write");
        let (code, interpreted, err) = ptree(&[
            "who-killed",
            &pid,
            "--audit-log",
            text.to_str().expect("UTF-8 path"),
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        let (_, raw, _) = ptree(&["who-killed", &pid, "--audit-log", "--json"]);
        assert_eq!(lines(&interpreted), lines(&raw));
    }

    // A forwarded signal: the test's kill reaches a shell, whose trap
    // passes it to its sleep. The chain goes back through the shell.
    let shell = tree.run(
        "bash",
        &[
            "-c",
            "sleep 1000 & c=$!; trap 'kill -TERM $c' TERM; wait; wait",
        ],
    );
    let sleep = wait_for("the shell's sleep", Duration::from_secs(5), || {
        common::descendants_of(&[shell as i32].into())
            .first()
            .copied()
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut kill = Command::new("kill")
        .args(["-TERM", &shell.to_string()])
        .spawn()
        .expect("run kill");
    let killer = kill.id();
    assert!(kill.wait().expect("kill ends").success());
    let _ = tree.child(shell).wait();
    let sleep_text = sleep.to_string();
    let (code, out, err) = wait_for(
        "the forward to reach audit.log",
        Duration::from_secs(15),
        || {
            let run = ptree(&["who-killed", &sleep_text, "--audit-log", "--json"]);
            (run.0 != 1).then_some(run)
        },
    );
    assert_eq!(code, 0, "{out}{err}");
    let records = lines(&out);
    let verdict = records.last().expect("records");
    assert_eq!(
        verdict["chain"],
        serde_json::json!([std::process::id(), killer, shell, sleep]),
        "{out}"
    );
    // The kill that reached the shell is reported with the shell's.
    assert!(
        records
            .iter()
            .any(|r| r["target"]["pid"] == shell && r["sender"]["pid"] == killer),
        "{out}"
    );

    // disable removes the rules, and status says so.
    let (code, out, err) = ptree(&["audit", "disable"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("removed"), "{out}");
    assert!(!RuleState::from_rules(&world.auditctl.rules().expect("auditctl -l")).any());
    let (code, out, _) = ptree(&["audit", "status"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ptree rules:  not loaded"), "{out}");
    let (code, out, _) = ptree(&["audit", "disable"]);
    assert_eq!(code, 0);
    assert!(out.contains("already absent"), "{out}");
    drop(tree);
    drop(world);
}

#[test]
fn audit_log_arguments_are_checked() {
    // No privileges needed: these fail before reading anything.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/audit/audit-samples.log"
    );
    for (args, why) in [
        (vec!["who-killed", "--audit-log", fixture], "no pid"),
        (
            vec!["who-killed", "1", "2", "--audit-log", fixture],
            "two pids",
        ),
        (
            vec!["who-killed", "1", "--audit-log", fixture, "--via", "ptrace"],
            "--via",
        ),
        (
            vec!["who-killed", "1", "--since", "1m ago"],
            "--since alone",
        ),
        (
            vec![
                "who-killed",
                "1",
                "--audit-log",
                fixture,
                "--since",
                "now",
                "--until",
                "1h ago",
            ],
            "--since after --until",
        ),
    ] {
        let (code, _, err) = ptree(&args);
        assert_eq!(code, 2, "{why}: {err}");
    }
    // The recorded fixture: 17514 was killed by `/bin/kill -9`.
    let (code, out, err) = ptree(&["who-killed", "17514", "--audit-log", fixture, "--json"]);
    assert_eq!(code, 0, "{err}");
    let records = lines(&out);
    assert_eq!(records[0]["sender"]["comm"], "kill");
    assert_eq!(records[0]["sender"]["ancestry"][0]["pid"], 17470);
    assert_eq!(records[1]["kind"], "manual-kill");
}
