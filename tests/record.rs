//! `ptree record` on real processes, and the replays of its files:
//! `who-killed --from` and `report`.
//!
//! Needs root (tracefs); without it every test prints a SKIPPED line and
//! passes. No test asserts on timing: waits are for files and exits, each
//! bounded.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
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
            eprintln!("SKIPPED: record tests need root (tracefs)");
            return;
        }
    };
}

const WAIT: Duration = Duration::from_secs(20);

/// A running `ptree record`, killed on drop if still running.
struct Recorder {
    child: Child,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Recorder {
    /// Starts `ptree record ARGS` through `sh -c` (so a test can set the
    /// umask), and waits until it records.
    fn start(prefix: &str, args: &[&str]) -> Recorder {
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        let script = format!(
            "{prefix} exec '{}' record {}",
            ptree_bin().display(),
            quoted.join(" ")
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ptree record");
        let (mut err, _) = await_stderr(&mut child, "recording");
        // Keep draining stderr so the recorder never blocks on it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            let _ = tx.send(rest);
        });
        Recorder { child, stderr: rx }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    /// Waits for it to end; returns the exit code and what it said.
    fn wait(mut self) -> (i32, String) {
        let status = self.child.wait().expect("wait recorder");
        let err = self
            .stderr
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default();
        (status.code().unwrap_or(-1), err)
    }

    /// SIGTERM, then wait: a clean stop.
    fn stop(self) -> (i32, String) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_kill(args: &[&str]) -> u32 {
    let mut c = Command::new("kill").args(args).spawn().expect("kill");
    let pid = c.id();
    c.wait().expect("wait kill");
    pid
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect()
}

fn of_type<'a>(lines: &'a [Value], t: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == t).collect()
}

/// Waits until the file holds `needle` (the recorder flushes at least
/// every second).
fn wait_for_text(path: &Path, needle: &str) {
    wait_for(&format!("{needle} in {}", path.display()), WAIT, || {
        std::fs::read_to_string(path)
            .ok()
            .filter(|t| t.contains(needle))
            .map(|_| ())
    });
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn first_line(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read recording");
    serde_json::from_str(text.lines().next().expect("a first line")).expect("JSON header")
}

fn instance_dir(pid: i32) -> PathBuf {
    PathBuf::from(format!("/sys/kernel/tracing/instances/ptree-{pid}"))
}

/// A live who-killed and the recorder watch the same kill; the replay
/// gives the live answer, and the report lists the death.
#[test]
fn a_recorded_kill_is_replayed_as_live_saw_it() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rec.jsonl");
    let f = file.to_str().unwrap();
    let mut tree = Tree::new();
    let target = tree.run("sleep", &["1000"]);
    let t = target.to_string();
    let recorder = Recorder::start("", &["--pid", &t, "--out", f]);
    let live = Command::new(ptree_bin())
        .args([
            "who-killed",
            &t,
            "--json",
            "--via",
            "tracefs",
            "--timeout",
            "30s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("live who-killed");
    // Wait until the live watch is watching (its first stderr line).
    let mut live = live;
    let mut live_err = BufReader::new(live.stderr.take().unwrap());
    let mut line = String::new();
    live_err.read_line(&mut line).unwrap();
    assert!(line.contains("watching"), "{line}");

    let killer = run_kill(&["-TERM", &t]);
    let _ = tree.child(target).wait();
    let live_out = live.wait_with_output().expect("live output");
    let live_lines = json_lines(&String::from_utf8_lossy(&live_out.stdout));
    wait_for_text(&file, "\"type\":\"exit\",\"time\"");
    let (code, err) = recorder.stop();
    assert_eq!(code, 0, "recorder: {err}");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(first_line(&file)["schema"], "ptree.recording/1");

    let (code, out, err) = ptree(&["who-killed", &t, "--from", f, "--json"]);
    assert_eq!(code, 0, "{err}");
    let lines = json_lines(&out);
    let sig = of_type(&lines, "signal");
    let s = sig
        .iter()
        .find(|s| s["target"]["pid"] == target)
        .expect("the signal");
    assert_eq!(s["signal"], "SIGTERM");
    assert_eq!(s["sender"]["pid"], killer, "{s}");
    assert_eq!(of_type(&lines, "exit")[0]["pid"], target);
    let v = of_type(&lines, "verdict");
    assert_eq!(v.len(), 1, "{lines:?}");
    // `kill` only carries the signal: the actor is this test process.
    assert_eq!(v[0]["root_cause"]["pid"], std::process::id(), "{}", v[0]);
    // The same verdict as the live watch gave.
    let lv = of_type(&live_lines, "verdict");
    assert_eq!(lv.len(), 1, "{live_lines:?}");
    for field in ["kind", "root_cause", "chain", "explanation"] {
        assert_eq!(
            v[0][field], lv[0][field],
            "{field}: replay {} live {}",
            v[0], lv[0]
        );
    }

    // The report, in both formats.
    let (code, md, err) = ptree(&["report", f]);
    assert_eq!(code, 0, "{err}");
    assert!(md.starts_with("# Postmortem timeline"), "{md}");
    assert!(md.contains("## Deaths (1)"), "{md}");
    let kind = v[0]["kind"].as_str().unwrap();
    let row = md
        .lines()
        .find(|l| l.starts_with('|') && l.contains(&format!("| {target} |")))
        .unwrap_or_else(|| panic!("no death row for {target}:\n{md}"));
    assert!(row.contains(kind), "{row}");
    assert!(row.contains("SIGTERM"), "{row}");
    let (code, js, err) = ptree(&["report", f, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&js).expect("report JSON");
    assert_eq!(doc["schema"], "ptree.report/1");
    let death = doc["deaths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["pid"] == target)
        .expect("the death");
    assert_eq!(death["signal"], "SIGTERM");
    assert_eq!(death["verdict"]["kind"], kind);
    assert_eq!(death["verdict"]["root_cause"]["pid"], std::process::id());
    assert!(
        doc["tree"]["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"] == target),
        "the tree holds the target"
    );
}

/// A shell forking as fast as it can fills a small file quickly: FILE and
/// FILE.1 each start with a header and can be read alone, and neither is
/// readable by others even under umask 000.
#[test]
fn rotation_keeps_two_private_readable_files() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rec.jsonl");
    let f = file.to_str().unwrap();
    let rotated = dir.path().join("rec.jsonl.1");
    let mut tree = Tree::new();
    let busy = tree.run("sh", &["-c", "while :; do /bin/true; done"]);
    let b = busy.to_string();
    let recorder = Recorder::start(
        "umask 000;",
        &["--pid", &b, "--out", f, "--max-bytes", "16K"],
    );
    wait_for("a rotation", WAIT, || rotated.exists().then_some(()));
    // Let the new file get a header and snapshot (written with the
    // rotation) and flushed.
    wait_for_text(&file, "\"type\":\"snapshot\"");
    let (code, err) = recorder.stop();
    assert_eq!(code, 0, "{err}");
    for path in [&file, &rotated] {
        assert_eq!(mode(path), 0o600, "{}", path.display());
        let h = first_line(path);
        assert_eq!(h["type"], "header", "{}", path.display());
        assert_eq!(h["schema"], "ptree.recording/1");
        let rec = ptree::record::read_recordings(std::slice::from_ref(path)).expect("readable");
        assert!(
            rec.first_snapshot().is_some(),
            "{} has a snapshot",
            path.display()
        );
        assert_eq!(rec.garbage(), 0);
        // A file exceeds the limit by at most its snapshot: far below 4×.
        let len = std::fs::metadata(path).unwrap().len();
        assert!(len < 4 * 16 * 1024, "{} is {len} bytes", path.display());
    }
    assert!(first_line(&rotated)["part"].as_u64() < first_line(&file)["part"].as_u64());
    // Both together, in either order.
    let rec = ptree::record::read_recordings(&[file.clone(), rotated.clone()]).unwrap();
    assert_eq!(rec.files[0].path, rotated);
    let (code, _, err) = ptree(&["report", f, rotated.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0, "{err}");
}

/// `--duration` ends a run cleanly, and a restarted recorder keeps the
/// previous run's file as FILE.1.
#[test]
fn a_restart_keeps_the_previous_file() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rec.jsonl");
    let f = file.to_str().unwrap();
    let mut tree = Tree::new();
    let target = tree.run("sleep", &["1000"]).to_string();
    for _ in 0..2 {
        let r = Recorder::start("", &["--pid", &target, "--out", f, "--duration", "500ms"]);
        let (code, err) = r.wait();
        assert_eq!(code, 0, "{err}");
    }
    let old = dir.path().join("rec.jsonl.1");
    let (a, b) = (first_line(&old), first_line(&file));
    assert_ne!(a["recorder_pid"], b["recorder_pid"]);
    assert_eq!(b["file_start"], "start");
    let text = std::fs::read_to_string(&old).unwrap();
    let end: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(end["type"], "end");
    assert_eq!(end["reason"], "duration");
}

/// A SIGKILLed recorder: its file is still readable (even with a cut last
/// line) and the next run removes the trace instance it left.
#[test]
fn a_killed_recorder_leaves_a_readable_file_and_no_instance() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rec.jsonl");
    let f = file.to_str().unwrap();
    let mut tree = Tree::new();
    let target = tree.run("sleep", &["1000"]);
    let t = target.to_string();
    let recorder = Recorder::start("", &["--pid", &t, "--out", f]);
    let recorder_pid = recorder.pid();
    run_kill(&["-TERM", &t]);
    let _ = tree.child(target).wait();
    wait_for_text(&file, "\"type\":\"exit\",\"time\"");
    recorder.signal(nix::sys::signal::Signal::SIGKILL);
    let (code, _) = recorder.wait();
    assert_eq!(code, -1, "killed by a signal");
    assert!(
        instance_dir(recorder_pid).exists(),
        "a SIGKILLed recorder cannot remove its instance"
    );
    // A recorder killed mid-line leaves half a line: simulate the worst.
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("{\"type\":\"signal\",\"time\":\"2026-");
    std::fs::write(&file, text).unwrap();

    let (code, out, err) = ptree(&["who-killed", &t, "--from", f, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("cut line"), "{err}");
    let lines = json_lines(&out);
    let v = of_type(&lines, "verdict");
    assert_eq!(v[0]["root_cause"]["pid"], std::process::id(), "{}", v[0]);
    let (code, md, _) = ptree(&["report", f]);
    assert_eq!(code, 0);
    assert!(md.contains("cut line"), "{md}");

    // The next run reaps the dead recorder's instance.
    let other = dir.path().join("next.jsonl");
    let sleeper = tree.run("sleep", &["1000"]).to_string();
    let next = Recorder::start(
        "",
        &[
            "--pid",
            &sleeper,
            "--out",
            other.to_str().unwrap(),
            "--duration",
            "200ms",
        ],
    );
    let (code, err) = next.wait();
    assert_eq!(code, 0, "{err}");
    assert!(
        !instance_dir(recorder_pid).exists(),
        "the stale instance of {recorder_pid} was left"
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    let (code, _, err) = ptree(&["record", "--out", "/tmp/x.jsonl"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--title"), "{err}");
    let (code, _, _) = ptree(&["record", "--all", "--pid", "1", "--out", "/tmp/x"]);
    assert_eq!(code, 2);
    let (code, _, err) = ptree(&["record", "--all", "--out", "/tmp/x", "--max-bytes", "1K"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = ptree(&["report", "/nonexistent/rec.jsonl"]);
    assert_eq!(code, 2, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.jsonl");
    std::fs::write(&junk, "hello\n").unwrap();
    let (code, _, err) = ptree(&["who-killed", "1", "--from", junk.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a ptree recording"), "{err}");
}
