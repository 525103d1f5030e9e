//! The role each process plays in a Node deployment, from its command line
//! and its place in the tree.
//!
//! A role is what an on-call engineer names when reading `ps axjf`: the
//! supervisor (PM2, systemd), the wrapper script, the shell `exec()` adds,
//! the launcher (`egg-scripts start`, `npx`), the Egg master and its agent
//! and workers.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use crate::model::{Pid, Process, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Supervisor,
    Wrapper,
    Shell,
    Launcher,
    Master,
    Agent,
    Worker,
    Other,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Supervisor => "supervisor",
            Role::Wrapper => "wrapper",
            Role::Shell => "shell",
            Role::Launcher => "launcher",
            Role::Master => "master",
            Role::Agent => "agent",
            Role::Worker => "worker",
            Role::Other => "other",
        }
    }

    /// Processes that serve traffic and are expected to live long.
    pub fn is_server(self) -> bool {
        matches!(self, Role::Master | Role::Agent | Role::Worker)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Roles of every process in the snapshot.
#[derive(Debug, Clone, Default)]
pub struct Roles(pub HashMap<Pid, Role>);

impl Roles {
    pub fn of(&self, pid: Pid) -> Role {
        self.0.get(&pid).copied().unwrap_or(Role::Other)
    }
}

fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ash", "ksh", "mksh", "busybox"];

/// Whether this is a PM2 God Daemon (`PM2 v5.4.3: God Daemon (/root/.pm2)`).
pub fn is_pm2_daemon(args: &[String]) -> bool {
    args.first()
        .is_some_and(|a| a.starts_with("PM2 v") && a.contains("God Daemon"))
}

fn is_supervisor(p: &Process, args: &[String]) -> bool {
    let comm = String::from_utf8_lossy(&p.comm);
    if is_pm2_daemon(args) || comm == "systemd" || comm == "nodemon" {
        return true;
    }
    args.iter().take(3).any(|a| {
        let b = basename(a);
        b == "nodemon" || b == "supervisord" || a.ends_with("forever/bin/monitor")
    }) || (comm == "node" && args.iter().any(|a| a.contains("forever/bin/monitor")))
}

fn is_shell(args: &[String]) -> bool {
    let Some(first) = args.first() else {
        return false;
    };
    SHELLS.contains(&basename(first))
        && args
            .iter()
            .skip(1)
            .take_while(|a| a.starts_with('-'))
            .any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('c'))
}

/// The first arguments that name a program: the executable and, for an
/// interpreter, its script (options skipped).
fn program_words(args: &[String]) -> impl Iterator<Item = (usize, &str)> {
    args.iter()
        .enumerate()
        .filter(|(i, a)| *i == 0 || !a.starts_with('-'))
        .take(3)
        .map(|(i, a)| (i, a.as_str()))
}

fn is_launcher(args: &[String]) -> bool {
    if args
        .first()
        .is_some_and(|a| a.starts_with("npm exec ") || a.starts_with("npx "))
    {
        return true;
    }
    let next_is =
        |i: usize, words: &[&str]| args.get(i + 1).is_some_and(|n| words.contains(&n.as_str()));
    program_words(args).any(|(i, a)| {
        let b = basename(a);
        match b {
            "npx" | "npx-cli.js" => true,
            "npm" | "npm-cli.js" => next_is(i, &["exec", "x", "start", "run", "run-script"]),
            "egg-scripts" | "eggctl" | "beidou" => next_is(i, &["start"]),
            _ => a.contains("@eggjs/scripts/bin") && next_is(i, &["start"]),
        }
    })
}

fn script_ends(args: &[String], suffixes: &[&str]) -> bool {
    args.iter()
        .take(6)
        .any(|a| suffixes.iter().any(|s| a.ends_with(s)))
}

fn is_master(args: &[String]) -> bool {
    args.iter().take(6).any(|a| {
        let b = basename(a);
        let start_cluster = matches!(
            b,
            "start-cluster" | "start-cluster.js" | "start-cluster.cjs" | "start-cluster.mjs"
        );
        start_cluster && (a.contains("egg-scripts/") || a.contains("@eggjs/scripts/"))
    })
}

fn is_agent(args: &[String]) -> bool {
    script_ends(
        args,
        &[
            "egg-cluster/lib/agent_worker.js",
            "@eggjs/cluster/dist/commonjs/agent_worker.js",
            "@eggjs/cluster/dist/esm/agent_worker.js",
        ],
    )
}

fn is_app_worker(args: &[String]) -> bool {
    script_ends(
        args,
        &[
            "egg-cluster/lib/app_worker.js",
            "@eggjs/cluster/dist/commonjs/app_worker.js",
            "@eggjs/cluster/dist/esm/app_worker.js",
        ],
    ) || args.iter().take(4).any(|a| {
        let b = basename(a);
        b.starts_with("ProcessContainer") && a.contains("pm2")
    })
}

/// The role a command line claims on its own.
fn intrinsic(p: &Process) -> Role {
    if p.is_kernel_thread() {
        return Role::Other;
    }
    let args = p.argv.lossy();
    if is_supervisor(p, &args) {
        Role::Supervisor
    } else if is_agent(&args) {
        Role::Agent
    } else if is_app_worker(&args) {
        Role::Worker
    } else if is_master(&args) {
        Role::Master
    } else if is_shell(&args) {
        Role::Shell
    } else if is_launcher(&args) {
        Role::Launcher
    } else {
        Role::Other
    }
}

fn is_node(p: &Process) -> bool {
    let comm = String::from_utf8_lossy(&p.comm);
    comm == "node"
        || comm == "nodejs"
        || p.argv
            .0
            .first()
            .is_some_and(|a| matches!(basename(&String::from_utf8_lossy(a)), "node" | "nodejs"))
}

/// Classifies every process of the snapshot.
pub fn classify(snapshot: &Snapshot) -> Roles {
    let mut roles: HashMap<Pid, Role> = snapshot
        .processes
        .iter()
        .map(|p| (p.pid, intrinsic(p)))
        .collect();
    let children = snapshot.children_map();

    // A Node cluster: `cluster.fork()` runs the primary's own command line
    // again, so a Node child with its parent's exact argv is a worker.
    for p in &snapshot.processes {
        if roles[&p.pid] != Role::Other || !is_node(p) {
            continue;
        }
        let Some(parent) = snapshot.parent(p.pid) else {
            continue;
        };
        if parent.argv == p.argv && !p.argv.is_empty() && is_node(parent) {
            roles.insert(p.pid, Role::Worker);
            if roles[&parent.pid] == Role::Other {
                roles.insert(parent.pid, Role::Master);
            }
        }
    }

    // A wrapper starts a launcher or master, directly or through shells.
    let mut wrappers = Vec::new();
    for p in &snapshot.processes {
        // PID 1 adopts orphaned launchers; it does not wrap them.
        if roles[&p.pid] != Role::Other || p.is_kernel_thread() || p.pid == Pid::INIT {
            continue;
        }
        if starts_launcher(p.pid, &children, &roles) {
            wrappers.push(p.pid);
        }
    }
    for pid in wrappers {
        roles.insert(pid, Role::Wrapper);
    }

    // What PM2 runs in fork mode is the app itself (it retitles it to
    // `node <script>`): a worker, unless it is a wrapper.
    for p in &snapshot.processes {
        if roles[&p.pid] != Role::Other {
            continue;
        }
        let parent_is_pm2 = snapshot
            .parent(p.pid)
            .is_some_and(|pp| is_pm2_daemon(&pp.argv.lossy()));
        if parent_is_pm2 {
            roles.insert(p.pid, Role::Worker);
        }
    }
    Roles(roles)
}

fn starts_launcher(
    pid: Pid,
    children: &HashMap<Pid, Vec<Pid>>,
    roles: &HashMap<Pid, Role>,
) -> bool {
    let mut stack: Vec<Pid> = children.get(&pid).cloned().unwrap_or_default();
    let mut seen = 0;
    while let Some(c) = stack.pop() {
        seen += 1;
        if seen > 10_000 {
            return false;
        }
        match roles.get(&c) {
            Some(Role::Launcher | Role::Master) => return true,
            Some(Role::Shell) => stack.extend(children.get(&c).into_iter().flatten()),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixture::egg_snapshot;

    #[test]
    fn roles_of_the_incident_tree() {
        let snap = egg_snapshot();
        let roles = classify(&snap);
        let r = |pid| roles.of(Pid(pid));
        assert_eq!(r(20490), Role::Supervisor);
        assert_eq!(r(20501), Role::Wrapper);
        assert_eq!(r(20517), Role::Launcher);
        assert_eq!(r(20537), Role::Master);
        assert_eq!(r(20553), Role::Agent);
        assert_eq!(r(20567), Role::Worker);
        assert_eq!(r(20568), Role::Worker);
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn launchers() {
        assert!(is_launcher(&args(&["npm exec egg-scripts start --port=1"])));
        assert!(is_launcher(&args(&[
            "node",
            "/usr/lib/node_modules/npm/bin/npx-cli.js",
            "egg-scripts"
        ])));
        assert!(is_launcher(&args(&[
            "node",
            "/a/node_modules/.bin/egg-scripts",
            "start",
            "--daemon"
        ])));
        assert!(is_launcher(&args(&[
            "node",
            "/a/node_modules/@eggjs/scripts/bin/run.js",
            "start"
        ])));
        assert!(is_launcher(&args(&[
            "node",
            "/usr/bin/npm",
            "exec",
            "beidou"
        ])));
        assert!(!is_launcher(&args(&[
            "node",
            "/a/node_modules/.bin/egg-scripts",
            "stop"
        ])));
        assert!(!is_launcher(&args(&["node", "server.js"])));
    }

    #[test]
    fn shells_and_masters() {
        assert!(is_shell(&args(&["/bin/sh", "-c", "npx egg-scripts start"])));
        assert!(is_shell(&args(&["bash", "-ec", "x"])));
        assert!(!is_shell(&args(&["bash", "script.sh"])));
        assert!(is_master(&args(&[
            "node",
            "/x/node_modules/@eggjs/scripts/dist/commonjs/start-cluster.cjs",
            "{}"
        ])));
        assert!(is_agent(&args(&[
            "node",
            "/x/node_modules/@eggjs/cluster/dist/esm/agent_worker.js",
            "{}"
        ])));
        assert!(is_app_worker(&args(&[
            "node",
            "/x/node_modules/@eggjs/cluster/dist/commonjs/app_worker.js"
        ])));
    }
}
