//! Stops everything one deployment started, on every path (a failed
//! assertion included): `pm2 kill` with the deployment's own PM2_HOME, then
//! SIGKILL to every pid recorded on the way and to every process still
//! carrying the deployment's token in its environment — the egg tree that
//! dash orphans under PID 1, a `--daemon` master. A pid is killed only if
//! its start time is the one recorded, so a reused pid is left alone.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid as NixPid;

use super::cmd::run_bounded;

/// The environment variable whose value marks a deployment's processes.
pub const TOKEN_VAR: &str = "PTREE_E2E_RUN";

/// Field 22 of /proc/PID/stat (start time in clock ticks) and the state.
fn stat_of(pid: i32) -> Option<(u64, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let mut fields = after.split(' ');
    let state = fields.next()?.chars().next()?;
    // `after` starts at field 3 (state): start time is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

fn alive(pid: i32, start: u64) -> bool {
    stat_of(pid).is_some_and(|(s, state)| s == start && state != 'Z' && state != 'X')
}

/// Live processes whose environment holds `TOKEN_VAR=token`.
fn carrying(token: &str) -> Vec<i32> {
    let needle = format!("{TOKEN_VAR}={token}");
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

/// How to ask this deployment's PM2 to stop.
pub struct Pm2 {
    pub node: PathBuf,
    pub script: PathBuf,
    pub home: PathBuf,
}

pub struct Guard {
    pm2: Pm2,
    token: String,
    pids: RefCell<BTreeMap<i32, u64>>,
    stopped: Cell<bool>,
}

impl Guard {
    pub fn new(pm2: Pm2, token: String) -> Guard {
        Guard {
            pm2,
            token,
            pids: RefCell::default(),
            stopped: Cell::new(false),
        }
    }

    /// Ends `pid` with the deployment (never PID 1 nor this test).
    pub fn record(&self, pid: i32) {
        if pid <= 1 || pid == std::process::id() as i32 {
            return;
        }
        if let Some((start, _)) = stat_of(pid) {
            self.pids.borrow_mut().entry(pid).or_insert(start);
        }
    }

    fn sweep(&self) {
        for pid in carrying(&self.token) {
            self.record(pid);
        }
    }

    /// Live recorded processes.
    pub fn live(&self) -> Vec<i32> {
        self.pids
            .borrow()
            .iter()
            .filter(|&(&p, &s)| alive(p, s))
            .map(|(&p, _)| p)
            .collect()
    }

    /// Recorded or token-carrying processes still alive.
    pub fn leftovers(&self) -> Vec<i32> {
        self.sweep();
        self.live()
    }

    /// Stops the deployment; returns the pids that outlived `pm2 kill` and
    /// had to be SIGKILLed. Idempotent.
    pub fn stop(&self) -> Vec<i32> {
        if self.stopped.replace(true) {
            return Vec::new();
        }
        self.sweep();
        let log = self.pm2.home.join("e2e-pm2-kill.log");
        let ran = run_bounded(
            Command::new(&self.pm2.node)
                .arg(&self.pm2.script)
                .arg("kill")
                .env("PM2_HOME", &self.pm2.home),
            &log,
            Duration::from_secs(30),
        );
        if !ran.ok() {
            eprintln!("e2e: pm2 kill did not succeed:\n{}", ran.tail(10));
        }
        let mut killed = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            self.sweep();
            let live = self.live();
            if live.is_empty() {
                break;
            }
            for &pid in &live {
                if !killed.contains(&pid) {
                    killed.push(pid);
                }
                let _ = kill(NixPid::from_raw(pid), Signal::SIGKILL);
            }
            if Instant::now() > deadline {
                eprintln!("e2e: still alive after SIGKILL: {live:?}");
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        killed.sort_unstable();
        killed
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}
