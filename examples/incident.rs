//! The incident in one command: starts the Egg-shaped demo tree (a
//! PM2-like supervisor → a wrapper that uses `child_process.exec` → sh →
//! launcher → master → agent + 2 workers), shows what ptree sees, then
//! stops everything it started.
//!
//!     cargo run --release --example incident

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ptree::analysis::roles::Role;
use ptree::analysis::select::Selection;
use ptree::analysis::title::TitleMatch;
use ptree::proc::Details;
use ptree::render::text::{TextOptions, render};
use ptree::view::{Depth, View};

const TITLE: &str = "egg-server-incident-demo";

/// Kills the demo's process group when dropped, whatever happened.
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    use std::os::unix::process::CommandExt;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/egg-demo");
    let child = Command::new("node")
        .arg(dir.join("supervisor.js"))
        .arg(".".repeat(64))
        .current_dir(&dir)
        .env("DEMO_TITLE", TITLE)
        .env("DEMO_START", "exec")
        .env("DEMO_LOG_BYTES_PER_SEC", "20000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting node (is Node.js installed?): {e}"))?;
    let _demo = Demo(child);
    println!("Started the demo tree; waiting for its workers…\n");

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

    println!("$ ptree --title {TITLE}");
    print!(
        "{}",
        render(
            &view,
            TextOptions {
                ps_only: false,
                color: false
            }
        )
    );
    let wrapper = view
        .snapshot
        .processes
        .iter()
        .find(|p| view.roles.of(p.pid) == Role::Wrapper);
    if let Some(w) = wrapper {
        println!(
            "\nThe master and its workers write into a socket read by the wrapper {} ({}):\n\
             child_process.exec buffers that output and kills the launcher after maxBuffer bytes.",
            w.pid,
            w.argv.display()
        );
    }
    println!("\nStopping the demo.");
    Ok(())
}
