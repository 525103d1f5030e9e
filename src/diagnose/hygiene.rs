//! Daemon hygiene: the classic recipe (fork and exit, setsid, fork again,
//! chdir, umask, close fds, handle SIGTERM) checked on processes that are
//! meant to be daemons.

use serde_json::json;

use crate::analysis::roles::Role;
use crate::analysis::roles::Roles;
use crate::diagnose::{Finding, Input, Severity};
use crate::model::{FdTarget, Pid, Process, Snapshot};

/// Whether `p` is meant to run detached: it says `--daemon`, it was
/// adopted by PID 1 or sits right under a supervisor, or it is an Egg
/// master whose launcher is gone.
pub fn meant_as_daemon(snapshot: &Snapshot, roles: &Roles, p: &Process) -> bool {
    if p.is_kernel_thread() || p.is_zombie() || p.pid == Pid::INIT {
        return false;
    }
    let says_daemon = p.argv.lossy().iter().any(|a| a == "--daemon");
    let adopted = p.ppid == Pid::INIT;
    let supervised = snapshot
        .parent(p.pid)
        .is_some_and(|pp| roles.of(pp.pid) == Role::Supervisor);
    let role = roles.of(p.pid);
    says_daemon
        || ((adopted || supervised) && role != Role::Other)
        || (role == Role::Master && adopted)
}

fn on_tty(fd: &FdTarget) -> bool {
    matches!(fd, FdTarget::Tty(_))
}

/// One finding per problem per daemon.
pub fn daemon_hygiene(input: &Input<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for &pid in input.shown {
        let Some(p) = input.snapshot.get(pid) else {
            continue;
        };
        if !meant_as_daemon(input.snapshot, input.roles, p) {
            continue;
        }
        let name = format!("{} {}", pid, p.argv.display());
        if p.tty_nr != 0 {
            out.push(Finding {
                id: "daemon-has-tty",
                severity: Severity::Warn,
                pids: vec![pid],
                message: format!("{name} still has a controlling terminal: it gets SIGHUP when that terminal closes"),
                evidence: json!({"tty_nr": p.tty_nr, "sid": p.sid, "pgid": p.pgid}),
                fix: "detach it: setsid (or nohup/systemd/PM2), or start it with --daemon".into(),
            });
        }
        if p.sid == pid && p.tty_nr == 0 {
            out.push(Finding {
                id: "daemon-session-leader",
                severity: Severity::Info,
                pids: vec![pid],
                message: format!("{name} is a session leader: opening a terminal would make it its controlling terminal"),
                evidence: json!({"sid": p.sid}),
                fix: "fork once more after setsid (double fork), or open terminals with O_NOCTTY".into(),
            });
        }
        if let Some(fds) = &p.fds {
            let ttys: Vec<u8> = [(0u8, &fds.stdin), (1, &fds.stdout), (2, &fds.stderr)]
                .iter()
                .filter(|(_, f)| on_tty(&f.target))
                .map(|(n, _)| *n)
                .collect();
            if !ttys.is_empty() {
                out.push(Finding {
                    id: "daemon-stdio-on-tty",
                    severity: Severity::Warn,
                    pids: vec![pid],
                    message: format!("{name} has fds {ttys:?} on a terminal: writes fail or block once the terminal is gone"),
                    evidence: json!({"fds": ttys}),
                    fix: "redirect stdin from /dev/null and stdout/stderr to a log file".into(),
                });
            }
        }
        if let (Some(cwd), Some(dev), Some(root_dev)) = (&p.cwd, p.cwd_dev, p.root_dev)
            && dev != root_dev
        {
            out.push(Finding {
                id: "daemon-cwd-mount",
                severity: Severity::Info,
                pids: vec![pid],
                message: format!("{name} runs in {} on another file system than /: that file system cannot be unmounted while it runs", cwd.display()),
                evidence: json!({"cwd": cwd.display().to_string()}),
                fix: "chdir(\"/\") after daemonizing (or set WorkingDirectory= deliberately)".into(),
            });
        }
        if input.roles.of(pid) == Role::Master
            && let Some(sig) = p.signals
            && !sig.catches(15)
        {
            out.push(Finding {
                id: "master-no-sigterm-handler",
                severity: Severity::Warn,
                pids: vec![pid],
                message: format!("{name} has no SIGTERM handler: a stop kills it at once and leaves its workers orphaned"),
                evidence: json!({"sigcgt": format!("{:016x}", sig.caught)}),
                fix: "handle SIGTERM in the master: stop accepting, signal the workers, wait, exit".into(),
            });
        }
    }
    out
}
