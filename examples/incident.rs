//! The incident in one command, on a self-contained Egg-shaped tree (plain
//! Node, no npm install):
//!
//!     supervisor (PM2-like) → wrapper using child_process.exec → launcher
//!       → master → agent + 2 workers that log
//!
//! It shows `ptree --title …` (who started whom, where stdout goes),
//! `ptree doctor` (the exec-maxBuffer pitfall and how long is left), then
//! `ptree who-killed` catching the wrapper's SIGTERM when the logs pass
//! 1 MiB, and stops everything it started.
//!
//!     cargo run --release --example incident
//!
//! As root the kill is watched through tracefs (or ptrace); as another
//! user, ptrace of your own processes works where the kernel allows it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ptree::analysis::roles::Role;
use ptree::analysis::select::Selection;
use ptree::analysis::title::TitleMatch;
use ptree::cli::SelectArgs;
use ptree::cmd::doctor::DoctorArgs;
use ptree::cmd::who_killed::{ViaChoice, WhoKilledArgs};
use ptree::diagnose::Severity;
use ptree::proc::Details;
use ptree::render::text::{TextOptions, render};
use ptree::view::{Depth, View};

const TITLE: &str = "egg-server-incident-demo";
/// Each of the two workers logs this many bytes a second: 1 MiB of output
/// reaches the wrapper about 13 s after the start.
const BYTES_PER_SEC: &str = "40000";

/// Kills the demo's process group when dropped, whatever happened; and any
/// process of the demo that left it (orphans of the kill).
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

fn selection() -> Selection {
    Selection::Title {
        title: TITLE.into(),
        how: TitleMatch::Exact,
    }
}

fn banner(text: &str) {
    println!("\n\x1b[1m$ {text}\x1b[0m");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    use std::os::unix::process::CommandExt;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/egg-demo");
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("supervisor.js"))
        .arg(".".repeat(64))
        .current_dir(&dir)
        .env("DEMO_TITLE", TITLE)
        .env("DEMO_START", "exec")
        .env("DEMO_LOG_BYTES_PER_SEC", BYTES_PER_SEC)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    // bash execs `sh -c`'s last command, so the SIGTERM travels down the
    // whole tree as it did in production; dash would orphan it instead.
    if Path::new("/bin/bash").exists() {
        cmd.env("DEMO_SHELL", "/bin/bash");
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting node (is Node.js installed?): {e}"))?;
    let _demo = Demo(child);
    println!("Started an Egg-shaped tree whose workers log {BYTES_PER_SEC} bytes/s each.");

    let start = Instant::now();
    let view = loop {
        let view = View::read(&selection(), Depth::Full(Details::ALL), false)?;
        let workers = view
            .snapshot
            .processes
            .iter()
            .filter(|p| view.roles.of(p.pid) == Role::Worker)
            .count();
        if workers >= 2 {
            break view;
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err("the demo's workers did not start within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    };

    banner(&format!("ptree --title {TITLE} --compact"));
    let folded = View::from_snapshot(
        view.snapshot.clone(),
        &selection(),
        Depth::Full(Details::ALL),
        true,
    )?;
    print!(
        "{}",
        render(
            &folded,
            TextOptions {
                ps_only: false,
                color: false
            }
        )
    );

    banner(&format!("ptree doctor --title {TITLE} --exact"));
    let doctor = DoctorArgs {
        select: SelectArgs {
            title: Some(TITLE.into()),
            exact: true,
            ..SelectArgs::default()
        },
        sample: Duration::from_secs(2),
        json: false,
        fail_on: Severity::Warn,
    };
    ptree::cmd::doctor::run(&doctor)?;

    banner(&format!(
        "ptree who-killed --title {TITLE} --exact --timeout 60s   # waits for the kill"
    ));
    let watch = WhoKilledArgs {
        title: Some(TITLE.into()),
        exact: true,
        via: ViaChoice::Auto,
        timeout: Some(Duration::from_secs(60)),
        ..WhoKilledArgs::default()
    };
    let status = ptree::cmd::who_killed::run(&watch)?;
    if status != 0 {
        println!("(who-killed ended with status {status})");
    }
    println!("\nStopping the demo.");
    Ok(())
}
