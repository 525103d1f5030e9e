//! `ptree audit status|enable|disable`: ptree's audit rules, so that
//! `who-killed --audit-log` can answer after the fact (docs/audit.md).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::audit::control::{
    self, Auditctl, ControlError, KernelStatus, RuleArch, RuleState, SYSCALLS,
};
use crate::cmd::{ERROR, FAILED, OK};
use crate::error::Error;
use crate::model::Pid;

pub const EXAMPLES: &str = "Examples:
  sudo ptree audit enable        log every signal syscall (key ptree)
  ptree audit status             is auditd running, are the rules loaded, what audit cannot see
  sudo ptree who-killed 4711 --audit-log --since '1h ago'
  sudo ptree audit disable       remove ptree's rules, and only them";

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: AuditAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum AuditAction {
    /// Whether auditd runs, whether ptree's rules are loaded, and what the
    /// audit log can never show. Exit status 1 when signals are not being
    /// logged.
    Status,
    /// Load the rules that log every signal syscall (idempotent).
    Enable,
    /// Remove ptree's rules, and no other (idempotent).
    Disable,
}

/// Runs `ptree audit …`.
pub fn run(args: &AuditArgs) -> Result<u8, Error> {
    let result = match args.action {
        AuditAction::Status => status(),
        AuditAction::Enable => enable(),
        AuditAction::Disable => disable(),
    };
    Ok(result.unwrap_or_else(|e| {
        eprintln!("ptree: {e}");
        if let Some(hint) = e.hint() {
            eprintln!("hint: {hint}");
        }
        ERROR
    }))
}

fn say(line: &str) {
    crate::cmd::write_stdout(&format!("{line}\n"));
}

fn status() -> Result<u8, ControlError> {
    let auditd = control::find_auditd();
    let log_file = configured_log_file();
    match auditd {
        Some(pid) => say(&format!(
            "auditd:       running (pid {pid}), writing {}",
            log_file.display()
        )),
        None => say("auditd:       not running: records go to the kernel log (dmesg), if anywhere"),
    }
    let auditctl = match Auditctl::find() {
        Ok(a) => a,
        Err(e) => {
            say("kernel audit: unknown (no auditctl)");
            say("ptree rules:  unknown (no auditctl)");
            warn_limits();
            eprintln!("ptree: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            return Ok(FAILED);
        }
    };
    let kernel = auditctl.status()?;
    say(&format!("kernel audit: {}", describe_kernel(&kernel)));
    let rules = RuleState::from_rules(&auditctl.rules()?);
    say(&format!("ptree rules:  {}", describe_rules(&rules)));
    warn_limits();
    let logging = rules.b64 && kernel.enabled.is_some_and(|e| e > 0) && auditd.is_some();
    if !logging {
        eprintln!(
            "ptree: signals are not being logged to {}",
            log_file.display()
        );
        eprintln!("hint: {}", not_logging_hint(&rules, &kernel, auditd));
    }
    Ok(if logging { OK } else { FAILED })
}

fn enable() -> Result<u8, ControlError> {
    let auditctl = Auditctl::find()?;
    let kernel = auditctl.status()?;
    if kernel.enabled == Some(2) {
        return Err(ControlError::Locked);
    }
    let before = RuleState::from_rules(&auditctl.rules()?);
    if !before.other.is_empty() {
        // An older or edited set under ptree's key: start again.
        auditctl.delete_ptree_rules()?;
    }
    let state = if before.other.is_empty() {
        before.clone()
    } else {
        RuleState::default()
    };
    let mut added = Vec::new();
    let mut refused = None;
    for arch in RuleArch::ALL {
        if state.has(arch) {
            continue;
        }
        match (arch, auditctl.add(arch)) {
            (_, Ok(())) => added.push(arch.name()),
            // Kernels without 32-bit emulation refuse b32 rules; they run
            // no 32-bit program either.
            (RuleArch::B32, Err(ControlError::Failed { message, .. })) => refused = Some(message),
            (_, Err(e)) => return Err(e),
        }
    }
    if kernel.enabled == Some(0) {
        auditctl.set_enabled(true)?;
        say("kernel audit: turned on (auditctl -e 1)");
    }
    let after = RuleState::from_rules(&auditctl.rules()?);
    if !after.b64 {
        return Err(ControlError::Failed {
            command: "auditctl -l".into(),
            message: "ptree's rule is not listed after being added".into(),
        });
    }
    let already = if added.is_empty() && before.other.is_empty() {
        " (already)"
    } else {
        ""
    };
    say(&format!(
        "ptree rules:  {}{already}",
        describe_rules(&after)
    ));
    if let Some(message) = refused {
        say(&format!(
            "note: 32-bit programs are not audited: the kernel refused the arch=b32 rule ({message})"
        ));
    }
    if control::find_auditd().is_none() {
        eprintln!(
            "ptree: warning: auditd is not running: the kernel sends the records to its own log \
             (dmesg) and none reach {}",
            configured_log_file().display()
        );
        eprintln!("hint: start it: systemctl start auditd, service auditd start, or auditd");
    }
    warn_limits();
    Ok(OK)
}

fn disable() -> Result<u8, ControlError> {
    let auditctl = Auditctl::find()?;
    let before = RuleState::from_rules(&auditctl.rules()?);
    if !before.any() {
        say("ptree rules:  already absent");
        return Ok(OK);
    }
    auditctl.delete_ptree_rules()?;
    let after = RuleState::from_rules(&auditctl.rules()?);
    if after.any() {
        return Err(ControlError::Failed {
            command: format!("auditctl -D -k {}", control::KEY),
            message: "ptree's rules are still listed".into(),
        });
    }
    say("ptree rules:  removed (other rules untouched)");
    Ok(OK)
}

/// Where auditd writes, from its configuration.
fn configured_log_file() -> PathBuf {
    std::fs::read_to_string("/etc/audit/auditd.conf")
        .ok()
        .and_then(|c| control::parse_log_file(&c))
        .unwrap_or_else(|| PathBuf::from(crate::audit::DEFAULT_LOG_DIR).join("audit.log"))
}

fn describe_kernel(k: &KernelStatus) -> String {
    let state = match k.enabled {
        Some(0) => "off (enabled 0): nothing is recorded",
        Some(1) => "on (enabled 1)",
        Some(2) => "on and locked (enabled 2): rules cannot change until reboot",
        _ => "unknown",
    };
    let mut s = state.to_string();
    if let Some(lost) = k.lost.filter(|&l| l > 0) {
        s.push_str(&format!(
            "; {lost} records lost since boot (backlog limit {})",
            k.backlog_limit.map_or("?".into(), |b| b.to_string())
        ));
    }
    s
}

fn describe_rules(r: &RuleState) -> String {
    if !r.any() {
        return "not loaded".into();
    }
    let mut archs = Vec::new();
    if r.b64 {
        archs.push("b64");
    }
    if r.b32 {
        archs.push("b32");
    }
    let mut s = if r.b64 {
        format!(
            "loaded: {} ({}), key {}",
            SYSCALLS.join(" "),
            archs.join(", "),
            control::KEY
        )
    } else {
        format!("incomplete: no arch=b64 rule with key {}", control::KEY)
    };
    if !r.other.is_empty() {
        s.push_str(&format!(
            "; {} other rule(s) with key {} (ptree audit enable replaces them)",
            r.other.len(),
            control::KEY
        ));
    }
    s
}

fn not_logging_hint(rules: &RuleState, kernel: &KernelStatus, auditd: Option<Pid>) -> String {
    let mut todo = Vec::new();
    if !rules.b64 || kernel.enabled == Some(0) {
        todo.push("sudo ptree audit enable");
    }
    if auditd.is_none() {
        todo.push("start auditd (systemctl start auditd, or auditd)");
    }
    todo.join(", then ")
}

/// What no rule can change.
fn warn_limits() {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if control::boot_audit(&cmdline) != Some(true) {
        eprintln!(
            "warning: processes started before audit was first enabled are never audited, \
             whatever the rules: their signals are missing from the log. Boot with audit=1 on \
             the kernel command line to cover every process"
        );
    }
    eprintln!(
        "warning: signals the kernel raises itself (the OOM killer's SIGKILL, SIGPIPE, SIGSEGV, \
         a terminal's SIGHUP) go through no syscall and never appear in the audit log"
    );
}
