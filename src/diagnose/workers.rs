//! Worker bookkeeping: fewer workers than the master was told to run,
//! workers whose master is gone, zombies nobody reaps.

use serde_json::json;

use crate::analysis::roles::Role;
use crate::diagnose::{Finding, Input, Severity};
use crate::model::Pid;

/// `"workers":N` in a master's JSON argument.
pub fn configured_workers(args: &[String]) -> Option<u64> {
    args.iter().find_map(|a| {
        let a = a.trim();
        if !a.starts_with('{') {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(a).ok()?;
        v.get("workers")?.as_u64()
    })
}

/// `missing-workers`.
pub fn missing_workers(input: &Input<'_>) -> Vec<Finding> {
    let children = input.snapshot.children_map();
    let mut out = Vec::new();
    for &pid in input.shown {
        if input.roles.of(pid) != Role::Master {
            continue;
        }
        let Some(p) = input.snapshot.get(pid) else {
            continue;
        };
        let Some(want) = configured_workers(&p.argv.lossy()) else {
            continue;
        };
        let workers: Vec<Pid> = children
            .get(&pid)
            .into_iter()
            .flatten()
            .copied()
            .filter(|c| input.roles.of(*c) == Role::Worker)
            .filter(|c| input.snapshot.get(*c).is_some_and(|w| !w.is_zombie()))
            .collect();
        if (workers.len() as u64) < want {
            out.push(Finding {
                id: "missing-workers",
                severity: Severity::Error,
                pids: vec![pid],
                message: format!(
                    "master {pid} was started with {want} workers and has {}",
                    workers.len()
                ),
                evidence: json!({"configured": want, "running": workers}),
                fix: "look at the master's log for workers that failed to start or keep dying"
                    .into(),
            });
        }
    }
    out
}

/// `orphan-worker`: agent and app workers whose master is gone.
pub fn orphan_workers(input: &Input<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for &pid in input.shown {
        let role = input.roles.of(pid);
        if !matches!(role, Role::Agent | Role::Worker) {
            continue;
        }
        let Some(p) = input.snapshot.get(pid) else {
            continue;
        };
        // PM2 fork-mode apps are "workers" of PM2 itself, not of a master.
        let parent_role = input.snapshot.parent(pid).map(|pp| input.roles.of(pp.pid));
        if parent_role == Some(Role::Master) || parent_role == Some(Role::Supervisor) {
            continue;
        }
        let args = p.argv.lossy();
        let egg_worker = args.iter().any(|a| a.ends_with("_worker.js"));
        if !egg_worker && parent_role.is_some() {
            continue;
        }
        out.push(Finding {
            id: "orphan-worker",
            severity: Severity::Error,
            pids: vec![pid],
            message: format!(
                "{role} {pid} has lost its master (its parent is now {})",
                p.ppid
            ),
            evidence: json!({"ppid": p.ppid, "role": role}),
            fix: format!(
                "stop it (kill {pid}) and restart the service: nothing will restart or stop it now"
            ),
        });
    }
    out
}

/// `zombie`: exited children their parent has not reaped for a while.
pub fn zombies(input: &Input<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for &pid in input.shown {
        let Some(p) = input.snapshot.get(pid) else {
            continue;
        };
        if !p.is_zombie() {
            continue;
        }
        let lasting = if input.measured.sampled {
            input.measured.lasting_zombies.contains(&pid)
        } else {
            true
        };
        if !lasting {
            continue;
        }
        let parent = input.snapshot.parent(pid);
        out.push(Finding {
            id: "zombie",
            severity: Severity::Warn,
            pids: vec![pid, p.ppid],
            message: format!(
                "{pid} [{}] has exited but its parent {} {} does not reap it",
                p.comm_lossy(),
                p.ppid,
                parent.map(|pp| pp.argv.display()).unwrap_or_default()
            ),
            evidence: json!({"parent": p.ppid}),
            fix: "the parent must wait() for its children (handle SIGCHLD); restarting the parent clears them".into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_from_the_master_argument() {
        let args: Vec<String> = vec![
            "node".into(),
            "/x/start-cluster".into(),
            r#"{"port":7001,"title":"t","workers":2}"#.into(),
        ];
        assert_eq!(configured_workers(&args), Some(2));
        assert_eq!(configured_workers(&["node".into()]), None);
    }
}
