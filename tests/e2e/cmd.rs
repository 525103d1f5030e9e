//! Helper commands (npm, pm2) run with a deadline, their output in a file:
//! a registry that hangs or a daemon that keeps a pipe open must not hang
//! the test.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid as NixPid;

/// How a bounded command ended.
pub struct Ran {
    /// None when it was killed at the deadline.
    pub status: Option<ExitStatus>,
    /// Its stdout and stderr, interleaved.
    pub output: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// The last lines of the output, for a failure message.
    pub fn tail(&self, lines: usize) -> String {
        let all: Vec<&str> = self.output.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Runs `cmd` in its own process group with stdio to `log`; at `timeout`
/// the whole group is SIGKILLed.
///
/// npm hands its settings to every child in lower-case `npm_*` variables:
/// when the tests themselves run under npm (`npm test`, `npm exec -c`), the
/// deployment's own `npx` would take this checkout as its project and the
/// outer command (`npm_config_call`) as its own. They are not passed on,
/// except those that say how to reach the registry.
pub fn run_bounded(cmd: &mut Command, log: &Path, timeout: Duration) -> Ran {
    const KEEP: &[&str] = &[
        "npm_config_registry",
        "npm_config_cafile",
        "npm_config_ca",
        "npm_config_proxy",
        "npm_config_https_proxy",
        "npm_config_noproxy",
        "npm_config_strict_ssl",
        "npm_config_cache",
        "npm_config_userconfig",
    ];
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if (name.starts_with("npm_") && !KEEP.contains(&name.as_ref())) || name == "INIT_CWD" {
            cmd.env_remove(&key);
        }
    }
    let out = File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
    let err = out.try_clone().expect("clone log fd");
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = killpg(NixPid::from_raw(child.id() as i32), Signal::SIGKILL);
                let _ = child.wait();
                break None;
            }
        }
    };
    Ran {
        status,
        output: std::fs::read_to_string(log).unwrap_or_default(),
    }
}
