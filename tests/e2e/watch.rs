//! A running `ptree who-killed --json`, read as it goes. A master spinning
//! on EPIPE raises SIGPIPE hundreds of thousands of times (hundreds of MB of
//! JSON lines): those records are counted, not kept.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{await_stderr, ptree_bin};

pub struct WhoKilled {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    sigpipes: Arc<AtomicU64>,
    reader: Option<JoinHandle<()>>,
    stderr: Arc<Mutex<String>>,
}

/// What a finished watch printed.
pub struct Report {
    pub code: i32,
    pub lines: Vec<Value>,
    /// SIGPIPE signal records seen (not kept in `lines`).
    pub sigpipes: u64,
    pub stderr: String,
}

impl Report {
    pub fn of_type(&self, t: &str) -> Vec<&Value> {
        self.lines.iter().filter(|l| l["type"] == t).collect()
    }
}

fn is_sigpipe_record(line: &str) -> bool {
    line.starts_with(r#"{"type":"signal""#) && line.contains(r#""signal":"SIGPIPE""#)
}

impl WhoKilled {
    /// Starts `ptree who-killed ARGS` and waits until it says what it watches.
    pub fn start(args: &[&str]) -> WhoKilled {
        let mut child = Command::new(ptree_bin())
            .arg("who-killed")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start who-killed");
        let (mut err, seen) = await_stderr(&mut child, "watching");
        let stderr = Arc::new(Mutex::new(seen));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            sink.lock().unwrap().push_str(&rest);
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sigpipes = Arc::new(AtomicU64::new(0));
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let (keep, count) = (Arc::clone(&lines), Arc::clone(&sigpipes));
        let reader = std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                if is_sigpipe_record(&line) {
                    count.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("bad JSON line from who-killed: {e}: {line}"));
                keep.lock().unwrap().push(v);
            }
        });
        WhoKilled {
            child,
            lines,
            sigpipes,
            reader: Some(reader),
            stderr,
        }
    }

    /// Waits until `pred` holds on the lines so far; false at `timeout`.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&[Value]) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if pred(&self.lines.lock().unwrap()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Waits up to `timeout` for the watch to end by itself (every watched
    /// process gone, or its own --timeout), then SIGTERMs it: it prints its
    /// verdicts either way.
    pub fn finish(mut self, timeout: Duration) -> Report {
        let start = Instant::now();
        let status = loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                break s;
            }
            if start.elapsed() > timeout {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.child.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
                break self.child.wait().expect("wait who-killed");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if let Some(r) = self.reader.take() {
            r.join().expect("who-killed reader");
        }
        // The stderr thread ends with the process.
        std::thread::sleep(Duration::from_millis(100));
        Report {
            code: status.code().unwrap_or(-1),
            lines: std::mem::take(&mut *self.lines.lock().unwrap()),
            sigpipes: self.sigpipes.load(Ordering::Relaxed),
            stderr: self.stderr.lock().unwrap().clone(),
        }
    }
}

impl Drop for WhoKilled {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
