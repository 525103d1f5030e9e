//! `ptree check`: assertions for CI smoke checks after a deploy. Every
//! expectation given is checked; exit 0 when all hold, 1 with the list of
//! what failed.

use chrono::SecondsFormat;
use clap::Args;
use serde::Serialize;

use crate::analysis::roles::Role;
use crate::analysis::select::Selection;
use crate::cmd::doctor::shown;
use crate::cmd::{FAILED, OK, write_stdout};
use crate::error::Error;
use crate::model::{FdTarget, Pid};
use crate::proc::Details;
use crate::view::{Depth, View};

pub const EXAMPLES: &str = "Examples:
  ptree check --title egg-server --workers 4 --agent --no-pipe-stdout --detached
  ptree check --pid 4711 --max-restarts 0 --json";

/// A worker started this long after its master replaced an earlier one.
const RESTART_AFTER_SECS: i64 = 10;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The Egg deployment with this title (prefix).
    #[arg(long, value_name = "T")]
    pub title: Option<String>,
    /// Match --title exactly.
    #[arg(long, requires = "title")]
    pub exact: bool,
    /// This process with its ancestors and subtree (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<i32>,
    /// Every master runs exactly N app workers.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Every master runs an agent.
    #[arg(long)]
    pub agent: bool,
    /// No server process writes into a pipe or socket read by anything but a
    /// supervisor (the exec-maxBuffer pitfall).
    #[arg(long)]
    pub no_pipe_stdout: bool,
    /// The master has no controlling terminal and is not in its launcher's
    /// session.
    #[arg(long)]
    pub detached: bool,
    /// At most N workers (or agents) were restarted: started more than 10 s
    /// after their master.
    #[arg(long, value_name = "N")]
    pub max_restarts: Option<usize>,
    /// One JSON document (schema ptree.check/1).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
struct CheckDoc<'a> {
    schema: &'static str,
    generated_at: String,
    ok: bool,
    checks: &'a [CheckResult],
}

fn result(name: &str, ok: bool, detail: String) -> CheckResult {
    CheckResult {
        name: name.to_string(),
        ok,
        detail,
    }
}

/// Evaluates the expectations on a view.
pub fn evaluate(args: &CheckArgs, view: &View) -> Vec<CheckResult> {
    let pids = shown(view);
    let snap = &view.snapshot;
    let role = |p: Pid| view.roles.of(p);
    let masters: Vec<Pid> = pids
        .iter()
        .copied()
        .filter(|&p| role(p) == Role::Master)
        .collect();
    let children = snap.children_map();
    let kids = |m: Pid, r: Role| -> Vec<Pid> {
        children
            .get(&m)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&c| role(c) == r && snap.get(c).is_some_and(|p| !p.is_zombie()))
            .collect()
    };
    let mut out = vec![result(
        "running",
        !view.matched.is_empty(),
        format!(
            "{} matching process(es), {} master(s)",
            view.matched.len(),
            masters.len()
        ),
    )];
    if let Some(n) = args.workers {
        let counts: Vec<String> = masters
            .iter()
            .map(|&m| format!("{m}: {}", kids(m, Role::Worker).len()))
            .collect();
        let ok = !masters.is_empty() && masters.iter().all(|&m| kids(m, Role::Worker).len() == n);
        out.push(result(
            "workers",
            ok,
            format!(
                "want {n} per master; have {}",
                if counts.is_empty() {
                    "no master".into()
                } else {
                    counts.join(", ")
                }
            ),
        ));
    }
    if args.agent {
        let missing: Vec<String> = masters
            .iter()
            .filter(|&&m| kids(m, Role::Agent).is_empty())
            .map(|m| m.to_string())
            .collect();
        let ok = !masters.is_empty() && missing.is_empty();
        out.push(result(
            "agent",
            ok,
            if masters.is_empty() {
                "no master".into()
            } else if missing.is_empty() {
                "every master has an agent".into()
            } else {
                format!("no agent under master {}", missing.join(", "))
            },
        ));
    }
    if args.no_pipe_stdout {
        let mut bad = Vec::new();
        for &p in pids.iter().filter(|&&p| role(p).is_server()) {
            let Some(fds) = snap.get(p).and_then(|x| x.fds.as_ref()) else {
                continue;
            };
            for (n, fd) in [(1u8, &fds.stdout), (2u8, &fds.stderr)] {
                if !matches!(fd.target, FdTarget::Pipe(_) | FdTarget::Socket(_)) {
                    continue;
                }
                let readers = view.peers.of(p, n);
                if readers.is_empty() {
                    bad.push(format!("{p} fd {n}: nobody reads it"));
                } else if let Some(r) = readers.iter().find(|r| role(r.pid) != Role::Supervisor) {
                    bad.push(format!(
                        "{p} fd {n} → {} {} ({})",
                        r.pid,
                        r.comm,
                        role(r.pid)
                    ));
                }
            }
        }
        out.push(result(
            "no-pipe-stdout",
            bad.is_empty(),
            if bad.is_empty() {
                "no server output goes to a non-supervisor reader".into()
            } else {
                bad.join("; ")
            },
        ));
    }
    if args.detached {
        let mut bad = Vec::new();
        for &m in &masters {
            let Some(p) = snap.get(m) else { continue };
            if p.tty_nr != 0 {
                bad.push(format!(
                    "master {m} has a controlling terminal ({})",
                    view.tty_name(p.tty_nr)
                ));
            }
            if let Some(l) = snap
                .ancestors(m)
                .into_iter()
                .find(|a| role(a.pid) == Role::Launcher)
                && l.sid == p.sid
            {
                bad.push(format!(
                    "master {m} is in its launcher {}'s session {}",
                    l.pid, p.sid
                ));
            }
        }
        out.push(result(
            "detached",
            !masters.is_empty() && bad.is_empty(),
            if masters.is_empty() {
                "no master".into()
            } else if bad.is_empty() {
                "every master is detached".into()
            } else {
                bad.join("; ")
            },
        ));
    }
    if let Some(max) = args.max_restarts {
        let mut restarted = Vec::new();
        for &m in &masters {
            let Some(master) = snap.get(m) else { continue };
            for c in kids(m, Role::Worker)
                .into_iter()
                .chain(kids(m, Role::Agent))
            {
                if let Some(w) = snap.get(c)
                    && (w.start_time - master.start_time).num_seconds() > RESTART_AFTER_SECS
                {
                    restarted.push(c.to_string());
                }
            }
        }
        out.push(result(
            "max-restarts",
            restarted.len() <= max,
            format!(
                "{} restarted (at most {max}): {}",
                restarted.len(),
                restarted.join(" ")
            ),
        ));
    }
    out
}

pub fn run(args: &CheckArgs) -> Result<u8, Error> {
    if args.title.is_none() && args.pids.is_empty() {
        return Err(Error::Usage(
            "name what to check: --title T or --pid P".into(),
        ));
    }
    let sel = Selection::from_parts(None, &args.pids, args.title.as_deref(), args.exact)?;
    let view = View::read(
        &sel,
        Depth::Full(Details {
            stdout: true,
            stderr: true,
            ..Details::default()
        }),
        false,
    )?;
    let checks = evaluate(args, &view);
    let ok = checks.iter().all(|c| c.ok);
    if args.json {
        let doc = CheckDoc {
            schema: "ptree.check/1",
            generated_at: view
                .snapshot
                .taken_at
                .to_rfc3339_opts(SecondsFormat::Micros, true),
            ok,
            checks: &checks,
        };
        let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::Usage(e.to_string()))?;
        write_stdout(&format!("{text}\n"));
    } else {
        let mut s = String::new();
        for c in &checks {
            s.push_str(&format!(
                "{} {:<15} {}\n",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            ));
        }
        write_stdout(&s);
    }
    Ok(if ok { OK } else { FAILED })
}
