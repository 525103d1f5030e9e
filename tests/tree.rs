//! The tree view against real processes and the real `ps`.

mod common;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::*;

/// Tests that compare whole-machine output must not see each other's
/// processes come and go.
static MACHINE: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    MACHINE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Rows of `ps`-style output keyed by PID (second column).
fn rows_for(output: &str, pids: &HashSet<u32>) -> Vec<String> {
    output
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|p| pids.contains(&p))
        })
        .map(str::to_string)
        .collect()
}

fn ps(args: &[&str]) -> String {
    let out = Command::new("ps").args(args).output().expect("run ps");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A shell with two sleeping children and a zombie grandchild.
fn sleepers(tree: &mut Tree) -> HashSet<u32> {
    let sh = tree.run(
        "sh",
        &["-c", "sleep 1000 & sh -c 'true & exec sleep 1001' & wait"],
    );
    let all = wait_for("the sleepers", Duration::from_secs(10), || {
        let mut roots = HashSet::new();
        roots.insert(sh as i32);
        let d = descendants_of(&roots);
        (d.len() >= 3).then_some(d)
    });
    // Let the zombie die and everyone settle into S.
    std::thread::sleep(Duration::from_millis(300));
    let mut pids: HashSet<u32> = all.into_iter().map(|p| p as u32).collect();
    pids.insert(sh);
    pids
}

#[test]
fn ps_rows_equal_ps_axjf_rows() {
    let _g = lock();
    let mut tree = Tree::new();
    let pids = sleepers(&mut tree);
    let (code, ours, err) = ptree(&["--ps"]);
    assert_eq!(code, 0, "{err}");
    let theirs = ps(&["axjf"]);
    assert_eq!(ours.lines().next(), theirs.lines().next(), "header");
    let a = rows_for(&ours, &pids);
    let b = rows_for(&theirs, &pids);
    assert_eq!(a.len(), pids.len(), "every spawned pid shown:\n{ours}");
    assert_eq!(a, b);
    assert!(
        a.iter().any(|r| r.contains("<defunct>")),
        "zombie shown: {a:?}"
    );
}

#[test]
fn ps_rows_for_a_selection_equal_ps_with_the_same_pids() {
    let mut tree = Tree::new();
    let pids = sleepers(&mut tree);
    let leader = *pids.iter().min().expect("pids");
    let (code, ours, err) = ptree(&["--ps", "--pid", &leader.to_string()]);
    assert_eq!(code, 0, "{err}");
    let shown: Vec<String> = ours
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    let theirs = ps(&["jf", "-p", &shown.join(",")]);
    assert_eq!(rows_for(&ours, &pids), rows_for(&theirs, &pids));
    // The selection carries its ancestors up to PID 1.
    assert!(shown.contains(&"1".to_string()), "{ours}");
}

#[test]
fn kernel_threads_look_like_ps() {
    let (code, ours, _) = ptree(&["--ps", "--pid", "2"]);
    assert_eq!(code, 0);
    let row = ours.lines().nth(1).expect("a row for kthreadd");
    assert!(row.ends_with("[kthreadd]"), "{row}");
    let theirs = ps(&["jf", "-p", "2"]);
    assert_eq!(ours.lines().nth(1), theirs.lines().nth(1));
    let doc = ptree_json(&["--pid", "2", "--format", "json"]);
    let k = node(&doc, 2).expect("kthreadd");
    assert_eq!(k["cmdline"], "[kthreadd]");
    assert_eq!(k["stdout"]["kind"], "closed");
}

#[test]
fn roles_titles_and_socket_peers_of_an_egg_tree() {
    let mut tree = Tree::new();
    let sup = start_egg_demo(&mut tree, "egg-server-tree-test", "exec", 0);
    let doc = wait_for("two workers", Duration::from_secs(30), || {
        let doc = ptree_json(&["--title", "egg-server-tree-test", "--format", "json"]);
        let workers = nodes(&doc).iter().filter(|n| n["role"] == "worker").count();
        (workers == 2).then_some(doc)
    });
    let ours = nodes(&under(&doc, sup));
    let by_role = |r: &str| -> Vec<serde_json::Value> {
        let found: Vec<_> = ours.iter().filter(|n| n["role"] == r).cloned().collect();
        assert!(!found.is_empty(), "no {r} under {sup}: {doc}");
        found
    };
    let supervisor = &by_role("supervisor")[0];
    assert_eq!(supervisor["pid"], sup);
    let wrapper = &by_role("wrapper")[0];
    assert_eq!(wrapper["ppid"], sup, "{doc}");
    let shell = &by_role("shell")[0];
    assert_eq!(shell["ppid"], wrapper["pid"], "{doc}");
    let launcher = &by_role("launcher")[0];
    assert_eq!(launcher["ppid"], shell["pid"], "{doc}");
    let master = &by_role("master")[0];
    assert_eq!(master["ppid"], launcher["pid"], "{doc}");
    assert_eq!(master["title"], "egg-server-tree-test");
    let agent = &by_role("agent")[0];
    assert_eq!(agent["ppid"], master["pid"], "{doc}");
    for w in by_role("worker") {
        assert_eq!(w["ppid"], master["pid"], "{doc}");
        assert_eq!(w["title"], "egg-server-tree-test");
    }
    // Exactly one of each under the supervisor, and nothing unclassified.
    for (role, count) in [("wrapper", 1), ("shell", 1), ("launcher", 1), ("master", 1)] {
        assert_eq!(by_role(role).len(), count, "{role}: {doc}");
    }
    assert_eq!(ours.len(), 8, "{doc}");
    // Node gives exec()'s child a socket pair: the master writes into it,
    // the wrapper reads it.
    for n in [master, agent, launcher] {
        assert_eq!(n["stdout"]["kind"], "socket", "{n}");
        let peers = n["stdout"]["peers"].as_array().expect("peers");
        assert_eq!(peers.len(), 1, "{n}");
        assert_eq!(peers[0]["pid"], wrapper["pid"]);
        assert_eq!(peers[0]["comm"], "node");
    }
    // The wrapper's own output goes to the supervisor.
    assert_eq!(wrapper["stdout"]["peers"][0]["pid"], sup);

    // The text view says the same in its columns.
    let (_, text, _) = ptree(&["--title", "egg-server-tree-test"]);
    let master_row = text
        .lines()
        .find(|l| l.contains("start-cluster"))
        .expect("master row");
    assert!(master_row.contains(" master "), "{master_row}");
    assert!(
        master_row.contains(&format!("socket→{} node", wrapper["pid"])),
        "{master_row}"
    );

    // --compact folds the two identical workers.
    let (_, compact, _) = ptree(&["--title", "egg-server-tree-test", "--compact"]);
    assert!(compact.contains("2*["), "{compact}");
    assert_eq!(
        compact
            .lines()
            .filter(|l| l.contains("app_worker.js"))
            .count(),
        1
    );
}

#[test]
fn pipe_peer_is_the_reading_parent() {
    let mut tree = Tree::new();
    let pid = tree.spawn(
        Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let doc = ptree_json(&["--pid", &pid.to_string(), "--format", "json"]);
    let n = node(&doc, pid).expect("the sleeper");
    assert_eq!(n["stdout"]["kind"], "pipe");
    assert!(
        n["stdout"]["target"]
            .as_str()
            .unwrap()
            .starts_with("pipe:[")
    );
    let peers = n["stdout"]["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 1, "{n}");
    assert_eq!(peers[0]["pid"], std::process::id());
    assert_eq!(n["stderr"]["kind"], "null");
    let (_, text, _) = ptree(&["--pid", &pid.to_string()]);
    assert!(
        text.contains(&format!("pipe→{} ", std::process::id())),
        "{text}"
    );
}

#[test]
fn a_pipe_whose_reader_is_gone_has_no_peer() {
    let mut tree = Tree::new();
    // The shell's stdout pipe is read by `true`, which exits at once.
    let sh = tree.run("sh", &["-c", "sleep 1000 | true; sleep 1000"]);
    let sleeper = wait_for("the writer", Duration::from_secs(10), || {
        let mut roots = HashSet::new();
        roots.insert(sh as i32);
        let d = descendants_of(&roots);
        let doc = ptree_json(&["--pid", &sh.to_string(), "--format", "json"]);
        d.iter()
            .filter_map(|&p| node(&doc, p as u32))
            .find(|n| n["stdout"]["kind"] == "pipe")
    });
    assert_eq!(sleeper["stdout"]["peers"].as_array().unwrap().len(), 0);
    let (_, text, _) = ptree(&["--pid", &sleeper["pid"].to_string()]);
    assert!(text.contains("pipe→(none)"), "{text}");
}

#[test]
fn json_document_matches_the_schema() {
    let mut tree = Tree::new();
    let pids = sleepers(&mut tree);
    let leader = *pids.iter().min().unwrap();
    let doc = ptree_json(&["--pid", &leader.to_string(), "--format", "json"]);
    assert_eq!(doc["schema"], "ptree.tree/1");
    let t = doc["generated_at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{t}");
    let all = nodes(&doc);
    assert!(all.len() >= pids.len());
    for n in &all {
        for key in ["pid", "ppid", "pgid", "sid", "tpgid", "threads"] {
            assert!(n[key].is_i64(), "{key} in {n}");
        }
        for key in [
            "tty",
            "stat",
            "time",
            "start_time",
            "comm",
            "cmdline",
            "role",
        ] {
            assert!(n[key].is_string(), "{key} in {n}");
        }
        assert!(n["uid"].is_u64() || n["uid"].is_null());
        assert!(n["user"].is_string() || n["user"].is_null());
        assert!(n["title"].is_string() || n["title"].is_null());
        assert!(n["argv"].is_array());
        assert!(n["children"].is_array());
        assert!(chrono::DateTime::parse_from_rfc3339(n["start_time"].as_str().unwrap()).is_ok());
        for fd in ["stdout", "stderr"] {
            let kind = n[fd]["kind"].as_str().unwrap();
            assert!(
                ["tty", "file", "pipe", "socket", "null", "closed", "other"].contains(&kind),
                "{kind}"
            );
            assert!(n[fd]["target"].is_string());
            for p in n[fd]["peers"].as_array().unwrap() {
                assert!(p["pid"].is_i64() && p["comm"].is_string());
            }
        }
    }
}

#[test]
fn comm_with_spaces_and_parentheses() {
    let mut tree = Tree::new();
    let pid = tree.run(
        "node",
        &[
            "-e",
            "require('fs').writeFileSync('/proc/self/comm', 'a) b (c'); setInterval(() => {}, 1e9)",
        ],
    );
    let doc = wait_for("the renamed process", Duration::from_secs(10), || {
        let doc = ptree_json(&["--pid", &pid.to_string(), "--format", "json"]);
        (node(&doc, pid)?["comm"] == "a) b (c").then_some(doc)
    });
    let n = node(&doc, pid).unwrap();
    assert_eq!(n["ppid"], std::process::id());
    assert_eq!(n["stat"].as_str().unwrap().chars().next(), Some('S'));
}

#[test]
fn non_utf8_and_empty_arguments_are_kept() {
    let mut tree = Tree::new();
    let weird = OsStr::from_bytes(b"na\xffme");
    let pid = tree.spawn(
        Command::new("sh")
            .args([
                OsStr::new("-c"),
                OsStr::new("sleep 1000; :"),
                weird,
                OsStr::new(""),
            ])
            .stdout(Stdio::null()),
    );
    let doc = ptree_json(&["--pid", &pid.to_string(), "--format", "json"]);
    let n = node(&doc, pid).expect("the shell");
    let argv: Vec<&str> = n["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(argv, vec!["sh", "-c", "sleep 1000; :", "na\\xffme", ""]);
    assert_eq!(n["cmdline"], "sh -c sleep 1000; : na\\xffme");
    let (code, text, _) = ptree(&["--pid", &pid.to_string()]);
    assert_eq!(code, 0);
    assert!(text.contains("na\\xffme"), "{text}");
}

#[test]
fn unknown_pid_is_a_clear_error() {
    // Pids above pid_max never exist.
    let (code, out, err) = ptree(&["--pid", "4194999"]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("no process with pid 4194999"), "{err}");
    let (code, _, err) = ptree(&["--pid", "-3"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn pattern_selects_like_pgrep_f_and_nothing_matched_is_exit_1() {
    let mut tree = Tree::new();
    let pid = tree.run("sleep", &["1007.5"]);
    let doc = ptree_json(&["sleep 1007.5", "--format", "json"]);
    assert!(node(&doc, pid).is_some());
    // ptree's own command line contains the pattern: it must not match.
    assert!(
        nodes(&doc)
            .iter()
            .all(|n| !n["cmdline"].as_str().unwrap().contains("ptree")),
        "{doc}"
    );
    let (code, _, _) = ptree(&["no-such-command-line-anywhere-42"]);
    assert_eq!(code, 1);
}

#[test]
fn color_only_when_asked_or_on_a_terminal() {
    let mut tree = Tree::new();
    let _sup = start_egg_demo(&mut tree, "egg-server-color", "exec", 0);
    wait_for("the master", Duration::from_secs(30), || {
        let doc = ptree_json(&["--title", "egg-server-color", "--format", "json"]);
        nodes(&doc)
            .iter()
            .any(|n| n["role"] == "master")
            .then_some(())
    });
    let (_, plain, _) = ptree(&["--title", "egg-server-color"]);
    assert!(!plain.contains('\x1b'));
    let (_, colored, _) = ptree(&["--title", "egg-server-color", "--color", "always"]);
    assert!(colored.contains("\x1b["));
}

#[test]
fn churn_never_breaks_a_snapshot() {
    let mut tree = Tree::new();
    // 200 processes forking and exiting continuously.
    tree.run(
        "sh",
        &["-c", "while :; do i=0; while [ $i -lt 200 ]; do (sleep 0.01 &) ; i=$((i+1)); done; wait; done"],
    );
    for round in 0..15 {
        for args in [
            &["--format", "json"][..],
            &["--ps"][..],
            &[][..],
            &["--compact"][..],
            &["sleep"][..],
        ] {
            let (code, out, err) = ptree(args);
            assert!(
                code == 0 || code == 1,
                "round {round} {args:?}: {code} {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
            if args.first() == Some(&"--format") {
                serde_json::from_str::<serde_json::Value>(&out).expect("valid JSON under churn");
            }
        }
    }
}
