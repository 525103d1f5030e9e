//! A harness that starts real process trees and ends them on drop, even
//! when a test fails: every tree runs in its own process group, and any
//! descendant that left the group is found through /proc and killed by pid.

#![allow(dead_code)]

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid as NixPid;

/// Processes started by one test.
#[derive(Default)]
pub struct Tree {
    children: Vec<Child>,
    /// Processes that left the tree (daemons) but are this test's to end.
    adopted: Vec<i32>,
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Starts `cmd` as the leader of a new process group; stdio defaults to
    /// /dev/null unless the command set it.
    pub fn spawn(&mut self, cmd: &mut Command) -> u32 {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let child = cmd.spawn().expect("spawn test process");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Starts a program with arguments, stdio to /dev/null.
    pub fn run<S: AsRef<OsStr>>(&mut self, program: &str, args: &[S]) -> u32 {
        self.spawn(
            Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
    }

    /// Ends `pid` with the tree, even though it left the process group.
    pub fn adopt(&mut self, pid: i32) {
        self.adopted.push(pid);
    }

    /// The mutable child, e.g. to read its piped stdout.
    pub fn child(&mut self, pid: u32) -> &mut Child {
        self.children
            .iter_mut()
            .find(|c| c.id() == pid)
            .expect("a child of this tree")
    }

    /// Pids of every live descendant of the processes started here.
    pub fn descendants(&self) -> Vec<i32> {
        let roots: HashSet<i32> = self.children.iter().map(|c| c.id() as i32).collect();
        descendants_of(&roots)
    }
}

/// Live descendants of `roots` (not including them), from /proc.
pub fn descendants_of(roots: &HashSet<i32>) -> Vec<i32> {
    let mut parent = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let ppid: i32 = after
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        parent.push((pid, ppid));
    }
    let mut found: HashSet<i32> = roots.clone();
    loop {
        let before = found.len();
        for &(pid, ppid) in &parent {
            if found.contains(&ppid) {
                found.insert(pid);
            }
        }
        if found.len() == before {
            break;
        }
    }
    found.difference(roots).copied().collect()
}

impl Drop for Tree {
    fn drop(&mut self) {
        let mut stray = self.descendants();
        let adopted: HashSet<i32> = self.adopted.iter().copied().collect();
        stray.extend(descendants_of(&adopted));
        stray.extend(&self.adopted);
        for c in &self.children {
            let _ = killpg(NixPid::from_raw(c.id() as i32), Signal::SIGKILL);
        }
        for pid in stray {
            let _ = kill(NixPid::from_raw(pid), Signal::SIGKILL);
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `f` until it returns `Some`, or panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads a child's stderr line by line until one contains `needle` (a
/// long-running command saying it is ready); panics with what it said if
/// stderr ends first. Returns the reader, for the caller to keep draining,
/// and the lines read so far.
pub fn await_stderr(
    child: &mut Child,
    needle: &str,
) -> (std::io::BufReader<std::process::ChildStderr>, String) {
    use std::io::BufRead;
    let mut err = std::io::BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = err.read_line(&mut line).expect("stderr line");
        seen.push_str(&line);
        if line.contains(needle) {
            return (err, seen);
        }
        assert!(n > 0, "ended before saying {needle:?}: {seen}");
    }
}

/// The built ptree binary.
pub fn ptree_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ptree"))
}

/// The Egg-shaped demo tree shipped in examples/egg-demo.
pub fn egg_demo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/egg-demo")
}

/// Starts the demo: supervisor → wrapper → sh → launcher → master → agent +
/// workers. Returns the supervisor's pid.
pub fn start_egg_demo(tree: &mut Tree, title: &str, start: &str, bytes_per_sec: u64) -> u32 {
    let dir = egg_demo_dir();
    tree.spawn(
        Command::new("node")
            .arg(dir.join("supervisor.js"))
            .arg(".".repeat(64))
            .current_dir(&dir)
            .env("DEMO_TITLE", title)
            .env("DEMO_START", start)
            .env("DEMO_WORKERS", "2")
            .env("DEMO_LOG_BYTES_PER_SEC", bytes_per_sec.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// Runs ptree with arguments; returns (status code, stdout, stderr).
pub fn ptree(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(ptree_bin())
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .expect("run ptree");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs ptree and parses its JSON stdout.
pub fn ptree_json(args: &[&str]) -> serde_json::Value {
    let (code, out, err) = ptree(args);
    assert!(
        code == 0 || code == 1,
        "ptree {args:?} failed ({code}): {err}"
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("invalid JSON from {args:?}: {e}\n{out}"))
}

/// Every node of a ptree.tree/1 document, depth first.
pub fn nodes(doc: &serde_json::Value) -> Vec<serde_json::Value> {
    fn walk(n: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
        out.push(n.clone());
        for c in n["children"].as_array().into_iter().flatten() {
            walk(c, out);
        }
    }
    let mut out = Vec::new();
    for r in doc["roots"].as_array().into_iter().flatten() {
        walk(r, &mut out);
    }
    out
}

/// The node for `pid` in a document.
pub fn node(doc: &serde_json::Value, pid: u32) -> Option<serde_json::Value> {
    nodes(doc).into_iter().find(|n| n["pid"] == pid)
}

/// The part of a tree document under `pid`, as a document of its own. The
/// full view also holds the test's own ancestors, and whatever runs the
/// tests may itself look like a wrapper or a supervisor: a test that
/// looks for roles looks only under the processes it started.
pub fn under(doc: &serde_json::Value, pid: u32) -> serde_json::Value {
    let root = node(doc, pid).unwrap_or_else(|| panic!("no process {pid} in {doc}"));
    serde_json::json!({ "roots": [root] })
}
