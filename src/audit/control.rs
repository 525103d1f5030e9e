//! ptree's audit rules and the state of the audit system, through
//! `auditctl` (the kernel's netlink protocol for rules is auditctl's job;
//! ptree only runs it and reads what it prints).
//!
//! The rule set is one rule per architecture, tagged with the key
//! [`KEY`] so that it can be told from any other rule and removed alone:
//!
//! ```text
//! auditctl -a always,exit -F arch=b64 -S kill -S tkill -S tgkill -S rt_sigqueueinfo -S rt_tgsigqueueinfo -S pidfd_send_signal -k ptree
//! auditctl -a always,exit -F arch=b32 … -k ptree
//! ```
//!
//! Parsing (`auditctl -l`, `auditctl -s`, `auditd.conf`, the kernel
//! command line) is separate from running anything, and unit-tested on
//! the texts auditctl 3.0 prints.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::model::Pid;

/// The key of ptree's rules (`-k ptree`, listed as `-F key=ptree`).
pub const KEY: &str = "ptree";

/// Every syscall that sends a signal on a process's behalf.
pub const SYSCALLS: [&str; 6] = [
    "kill",
    "tkill",
    "tgkill",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "pidfd_send_signal",
];

/// The architecture a rule applies to: native 64-bit programs, or 32-bit
/// ones on a 64-bit kernel (which use other syscall numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleArch {
    B64,
    B32,
}

impl RuleArch {
    pub const ALL: [RuleArch; 2] = [RuleArch::B64, RuleArch::B32];

    pub fn name(self) -> &'static str {
        match self {
            RuleArch::B64 => "b64",
            RuleArch::B32 => "b32",
        }
    }
}

/// The arguments of `auditctl` that add ptree's rule for `arch`.
pub fn add_rule_args(arch: RuleArch) -> Vec<String> {
    let mut args = vec![
        "-a".to_string(),
        "always,exit".to_string(),
        "-F".to_string(),
        format!("arch={}", arch.name()),
    ];
    for syscall in SYSCALLS {
        args.push("-S".to_string());
        args.push(syscall.to_string());
    }
    args.push("-k".to_string());
    args.push(KEY.to_string());
    args
}

/// The same rule as a line of `/etc/audit/rules.d/*.rules`.
pub fn rule_line(arch: RuleArch) -> String {
    add_rule_args(arch).join(" ")
}

/// One rule as `auditctl -l` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The line as listed.
    pub text: String,
    /// `always,exit`.
    pub action: String,
    /// `b64`, `b32`, or none for a rule on every architecture.
    pub arch: Option<String>,
    pub syscalls: BTreeSet<String>,
    pub keys: Vec<String>,
}

impl Rule {
    pub fn is_ptree(&self) -> bool {
        self.keys.iter().any(|k| k == KEY)
    }

    /// ptree's own rule for `arch`: every signal syscall, on exit.
    pub fn is_complete_for(&self, arch: RuleArch) -> bool {
        self.is_ptree()
            && self.action == "always,exit"
            && self.arch.as_deref() == Some(arch.name())
            && SYSCALLS.iter().all(|s| self.syscalls.contains(*s))
    }
}

/// Parses `auditctl -l`: `No rules`, or one rule per line such as
/// `-a always,exit -F arch=b64 -S kill,tkill -F key=ptree`.
pub fn parse_rules(listing: &str) -> Vec<Rule> {
    let mut rules = Vec::new();
    for line in listing.lines().map(str::trim) {
        if !line.starts_with("-a ") && !line.starts_with("-A ") {
            continue;
        }
        let mut rule = Rule {
            text: line.to_string(),
            action: String::new(),
            arch: None,
            syscalls: BTreeSet::new(),
            keys: Vec::new(),
        };
        let mut words = line.split_whitespace();
        while let Some(word) = words.next() {
            let Some(value) = words.clone().next() else {
                break;
            };
            match word {
                "-a" | "-A" => rule.action = value.to_string(),
                "-S" => rule.syscalls.extend(value.split(',').map(str::to_string)),
                "-k" => rule.keys.push(value.to_string()),
                "-F" => match value.split_once('=') {
                    Some(("arch", a)) => rule.arch = Some(a.to_string()),
                    Some(("key", k)) => rule.keys.push(k.trim_matches('"').to_string()),
                    _ => {}
                },
                _ => continue,
            }
            words.next();
        }
        rules.push(rule);
    }
    rules
}

/// Which of ptree's rules are loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleState {
    pub b64: bool,
    pub b32: bool,
    /// Rules with ptree's key that are not exactly ptree's (an older or
    /// hand-edited set): replaced by `enable`, removed by `disable`.
    pub other: Vec<Rule>,
}

impl RuleState {
    pub fn from_rules(rules: &[Rule]) -> RuleState {
        let mut state = RuleState::default();
        for rule in rules.iter().filter(|r| r.is_ptree()) {
            if rule.is_complete_for(RuleArch::B64) {
                state.b64 = true;
            } else if rule.is_complete_for(RuleArch::B32) {
                state.b32 = true;
            } else {
                state.other.push(rule.clone());
            }
        }
        state
    }

    pub fn has(&self, arch: RuleArch) -> bool {
        match arch {
            RuleArch::B64 => self.b64,
            RuleArch::B32 => self.b32,
        }
    }

    /// Whether any rule with ptree's key is loaded.
    pub fn any(&self) -> bool {
        self.b64 || self.b32 || !self.other.is_empty()
    }
}

/// What `auditctl -s` says about the kernel's audit state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStatus {
    /// 0 off, 1 on, 2 on and locked (no rule may change until reboot).
    pub enabled: Option<u32>,
    /// The audit daemon registered with the kernel; 0 when none.
    pub pid: Option<i32>,
    /// Records the kernel dropped (backlog full, or no daemon and rate
    /// limits).
    pub lost: Option<u64>,
    pub backlog_limit: Option<u64>,
}

/// Parses `auditctl -s`: `enabled 1`, `pid 812`, `lost 0`… one per line.
pub fn parse_status(text: &str) -> KernelStatus {
    let mut status = KernelStatus::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        match name {
            "enabled" => status.enabled = value.parse().ok(),
            "pid" => status.pid = value.parse().ok(),
            "lost" => status.lost = value.parse().ok(),
            "backlog_limit" => status.backlog_limit = value.parse().ok(),
            _ => {}
        }
    }
    status
}

/// `log_file` in `auditd.conf`, if set.
pub fn parse_log_file(conf: &str) -> Option<PathBuf> {
    conf.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "log_file")
        .map(|(_, v)| PathBuf::from(v.trim()))
}

/// `audit=1` or `audit=0` on the kernel command line (the last one
/// counts); `None` when absent.
pub fn boot_audit(cmdline: &str) -> Option<bool> {
    cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("audit="))
        .next_back()
        .map(|v| matches!(v, "1" | "on"))
}

/// Why auditctl could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// No `auditctl` on this machine.
    Missing,
    /// Not root, or without CAP_AUDIT_CONTROL.
    NotPermitted(String),
    /// The kernel was built without audit, or audit is disabled by
    /// `audit=0` in a way that refuses netlink.
    NoKernelSupport(String),
    /// `enabled 2`: rules cannot change until reboot.
    Locked,
    Failed {
        command: String,
        message: String,
    },
}

impl ControlError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            ControlError::Missing => Some(
                "install auditd, which provides auditctl and the daemon that writes \
                 /var/log/audit/audit.log: apt-get install auditd (Debian, Ubuntu), \
                 dnf install audit (Fedora, RHEL)"
                    .into(),
            ),
            ControlError::NotPermitted(_) => Some("needs CAP_AUDIT_CONTROL: run with sudo".into()),
            ControlError::NoKernelSupport(_) => Some(
                "this kernel cannot audit (CONFIG_AUDIT and CONFIG_AUDITSYSCALL): use the live \
                 watch, ptree who-killed PID"
                    .into(),
            ),
            ControlError::Locked => Some(format!(
                "the rules were locked with auditctl -e 2 and stay as they are until reboot: \
                 put these lines in /etc/audit/rules.d/ptree.rules (before the -e 2 line) and \
                 reboot:\n  {}\n  {}",
                rule_line(RuleArch::B64),
                rule_line(RuleArch::B32)
            )),
            ControlError::Failed { .. } => None,
        }
    }
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::Missing => f.write_str("auditctl is not installed"),
            ControlError::NotPermitted(m) => write!(f, "auditctl: {m}"),
            ControlError::NoKernelSupport(m) => write!(f, "the kernel has no audit support: {m}"),
            ControlError::Locked => f.write_str("the audit rules are locked (enabled 2)"),
            ControlError::Failed { command, message } => write!(f, "{command}: {message}"),
        }
    }
}

/// Sorts auditctl's complaints into the errors above.
pub fn classify_failure(command: &str, output: &str) -> ControlError {
    let message = output.trim().lines().last().unwrap_or("failed").to_string();
    let lower = output.to_ascii_lowercase();
    if lower.contains("must be root") || lower.contains("operation not permitted") {
        ControlError::NotPermitted(message)
    } else if lower.contains("immutable") {
        ControlError::Locked
    } else if lower.contains("protocol not supported")
        || lower.contains("not in kernel")
        || lower.contains("cannot open netlink audit socket")
    {
        ControlError::NoKernelSupport(message)
    } else {
        ControlError::Failed {
            command: command.to_string(),
            message,
        }
    }
}

/// The `auditctl` program.
#[derive(Debug, Clone)]
pub struct Auditctl {
    path: PathBuf,
}

impl Auditctl {
    /// Looks in `PATH`, then in the sbin directories a user's `PATH` often
    /// lacks.
    pub fn find() -> Result<Auditctl, ControlError> {
        let path_dirs = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        path_dirs
            .into_iter()
            .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
            .map(|d| d.join("auditctl"))
            .find(|p| p.is_file())
            .map(|path| Auditctl { path })
            .ok_or(ControlError::Missing)
    }

    /// Runs `auditctl ARGS`; its standard output on success.
    pub fn run(&self, args: &[String]) -> Result<String, ControlError> {
        let command = format!("auditctl {}", args.join(" "));
        let out =
            Command::new(&self.path)
                .args(args)
                .output()
                .map_err(|e| ControlError::Failed {
                    command: command.clone(),
                    message: e.to_string(),
                })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // auditctl prints some errors on stdout and may exit 0 after
        // "Error sending add rule data request".
        if !out.status.success() || stderr.contains("Error") {
            let text = if stderr.trim().is_empty() {
                stdout
            } else {
                stderr
            };
            return Err(classify_failure(&command, &text));
        }
        Ok(stdout)
    }

    pub fn status(&self) -> Result<KernelStatus, ControlError> {
        self.run(&["-s".into()]).map(|s| parse_status(&s))
    }

    pub fn rules(&self) -> Result<Vec<Rule>, ControlError> {
        self.run(&["-l".into()]).map(|s| parse_rules(&s))
    }

    pub fn add(&self, arch: RuleArch) -> Result<(), ControlError> {
        self.run(&add_rule_args(arch)).map(drop)
    }

    /// Deletes every rule with ptree's key, and no other.
    pub fn delete_ptree_rules(&self) -> Result<(), ControlError> {
        self.run(&["-D".into(), "-k".into(), KEY.into()]).map(drop)
    }

    pub fn set_enabled(&self, on: bool) -> Result<(), ControlError> {
        self.run(&["-e".into(), if on { "1" } else { "0" }.into()])
            .map(drop)
    }
}

/// The audit daemon's pid, found by its name in `/proc` (no privileges
/// needed, unlike `auditctl -s`).
pub fn find_auditd() -> Option<Pid> {
    find_by_comm(Path::new("/proc"), "auditd")
}

fn find_by_comm(proc_dir: &Path, name: &str) -> Option<Pid> {
    let mut found: Vec<i32> = std::fs::read_dir(proc_dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(proc_dir.join(pid.to_string()).join("comm"))
                .is_ok_and(|c| c.trim_end_matches('\n') == name)
        })
        .collect();
    found.sort();
    found.first().map(|&p| Pid(p))
}

/// Whether this kernel has audit at all: `/proc/self/loginuid` exists
/// only with CONFIG_AUDIT.
pub fn kernel_has_audit() -> bool {
    Path::new("/proc/self/loginuid").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "\
-a always,exit -F arch=b64 -S kill,rt_sigqueueinfo,tkill,tgkill,rt_tgsigqueueinfo,pidfd_send_signal -F key=ptree
-a always,exit -F arch=b32 -S kill,rt_sigqueueinfo,tkill,tgkill,rt_tgsigqueueinfo,pidfd_send_signal -F key=ptree
-a always,exit -F arch=b64 -S kill -F key=ptree
-w /etc/passwd -p wa -k identity
-a always,exit -F arch=b64 -S execve -F key=exec
";

    #[test]
    fn rule_arguments() {
        assert_eq!(
            rule_line(RuleArch::B64),
            "-a always,exit -F arch=b64 -S kill -S tkill -S tgkill -S rt_sigqueueinfo \
             -S rt_tgsigqueueinfo -S pidfd_send_signal -k ptree"
        );
        assert!(rule_line(RuleArch::B32).contains("arch=b32"));
    }

    #[test]
    fn listed_rules() {
        let rules = parse_rules(LISTING);
        assert_eq!(rules.len(), 4, "the watch (-w) is not a syscall rule");
        assert_eq!(rules[0].arch.as_deref(), Some("b64"));
        assert_eq!(rules[0].syscalls.len(), 6);
        assert_eq!(rules[0].keys, ["ptree"]);
        assert!(rules[0].is_complete_for(RuleArch::B64));
        assert!(!rules[0].is_complete_for(RuleArch::B32));
        assert!(rules[1].is_complete_for(RuleArch::B32));
        assert!(!rules[2].is_complete_for(RuleArch::B64));
        assert!(!rules[3].is_ptree());

        let state = RuleState::from_rules(&rules);
        assert!(state.b64 && state.b32 && state.any());
        assert_eq!(state.other.len(), 1);
        assert_eq!(
            RuleState::from_rules(&parse_rules("No rules\n")),
            RuleState::default()
        );
        assert!(!RuleState::default().any());
        // As typed, with -k.
        let typed = parse_rules(&rule_line(RuleArch::B64));
        assert!(typed[0].is_complete_for(RuleArch::B64));
    }

    #[test]
    fn kernel_status() {
        let text = "enabled 1\nfailure 1\npid 812\nrate_limit 0\nbacklog_limit 8192\nlost 3\nbacklog 0\nbacklog_wait_time 60000\nloginuid_immutable 0 unlocked\n";
        assert_eq!(
            parse_status(text),
            KernelStatus {
                enabled: Some(1),
                pid: Some(812),
                lost: Some(3),
                backlog_limit: Some(8192),
            }
        );
        assert_eq!(parse_status(""), KernelStatus::default());
    }

    #[test]
    fn config_and_command_line() {
        let conf = "# log_file = /nope\nlocal_events = yes\nlog_file = /var/log/audit/audit.log\n";
        assert_eq!(
            parse_log_file(conf),
            Some(PathBuf::from("/var/log/audit/audit.log"))
        );
        assert_eq!(parse_log_file("write_logs = no\n"), None);
        assert_eq!(boot_audit("quiet audit=1 splash"), Some(true));
        assert_eq!(boot_audit("audit=1 audit=0"), Some(false));
        assert_eq!(boot_audit("quiet audit_backlog_limit=8192"), None);
    }

    #[test]
    fn failures_and_their_hints() {
        let root = classify_failure("auditctl -s", "You must be root to run this program.\n");
        assert!(matches!(root, ControlError::NotPermitted(_)));
        assert_eq!(
            root.hint().as_deref(),
            Some("needs CAP_AUDIT_CONTROL: run with sudo")
        );
        assert_eq!(
            classify_failure(
                "auditctl -a …",
                "The audit system is in immutable mode, no rule changes allowed\n"
            ),
            ControlError::Locked
        );
        assert!(matches!(
            classify_failure(
                "auditctl -s",
                "Error - audit support not in kernel\nCannot open netlink audit socket\n"
            ),
            ControlError::NoKernelSupport(_)
        ));
        let other = classify_failure(
            "auditctl -a x",
            "Error sending add rule data request (Invalid argument)\n",
        );
        assert_eq!(
            other.to_string(),
            "auditctl -a x: Error sending add rule data request (Invalid argument)"
        );
        assert!(
            ControlError::Missing
                .hint()
                .is_some_and(|h| h.contains("apt-get install auditd"))
        );
    }

    #[test]
    fn finds_a_process_by_name() {
        let dir = tempfile::tempdir().expect("a temp dir");
        for (pid, comm) in [(40, "auditd\n"), (7, "bash\n"), (12, "auditd\n")] {
            let d = dir.path().join(pid.to_string());
            std::fs::create_dir(&d).expect("mkdir");
            std::fs::write(d.join("comm"), comm).expect("write");
        }
        std::fs::create_dir(dir.path().join("self")).expect("mkdir");
        assert_eq!(find_by_comm(dir.path(), "auditd"), Some(Pid(12)));
        assert_eq!(find_by_comm(dir.path(), "sshd"), None);
    }
}
