//! `ptree record`: a flight recorder for a service, meant to run for hours
//! (a systemd unit: examples/ptree-record.service), so that after an
//! incident `who-killed --from` and `report` can say who killed what.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::analysis::title::TitleMatch;
use crate::cmd::OK;
use crate::duration::parse_duration;
use crate::error::Error;
use crate::event::Signal;
use crate::model::Pid;
use crate::record::recorder::{RecordOptions, Target, record};
use crate::record::writer::parse_size;

pub const EXAMPLES: &str = "Examples:
  ptree record --title egg-server --out /var/log/ptree/egg.jsonl --max-bytes 100M
  ptree record --pid 4711 --out /tmp/4711.jsonl --duration 1h
  ptree record --all --out /var/log/ptree/all.jsonl --max-bytes 1G
  ptree who-killed 4711 --from /var/log/ptree/egg.jsonl.1 /var/log/ptree/egg.jsonl
  ptree report /var/log/ptree/egg.jsonl.1 /var/log/ptree/egg.jsonl";

#[derive(Debug, Default, Args)]
pub struct RecordArgs {
    /// Record the Egg deployment with this title (prefix), including
    /// processes that start later with the title.
    #[arg(long, value_name = "T", conflicts_with_all = ["pids", "all"])]
    pub title: Option<String>,
    /// Match --title exactly.
    #[arg(long, requires = "title")]
    pub exact: bool,
    /// Record this process and its descendants (repeatable).
    #[arg(long = "pid", value_name = "PID", conflicts_with = "all")]
    pub pids: Vec<i32>,
    /// Record every process of the machine.
    #[arg(long)]
    pub all: bool,
    /// The recording (JSON lines, mode 0600). An existing FILE is kept as
    /// FILE.1.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Rotate at this size (20000, 512K, 100M, 1G), keeping the previous
    /// file as FILE.1.
    #[arg(long, value_parser = parse_size, value_name = "N")]
    pub max_bytes: Option<u64>,
    /// Stop after this long (30s, 5m, 12h); by default, run until SIGINT
    /// or SIGTERM.
    #[arg(long, value_parser = parse_duration, value_name = "DUR")]
    pub duration: Option<Duration>,
    /// Signals to record, comma-separated (default: those that end or stop
    /// a process; SIGCHLD is always recorded).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub signals: Vec<String>,
    /// Kernel ring buffer per CPU, in KiB: what absorbs a burst of forks
    /// while the recorder sleeps.
    #[arg(long, default_value_t = 4096, value_name = "KIB")]
    pub buffer_kb: u32,
}

impl RecordArgs {
    /// Validates the arguments into a request.
    pub fn options(&self) -> Result<RecordOptions, Error> {
        let target = if self.all {
            Target::All
        } else if let Some(t) = &self.title {
            Target::Title {
                title: t.clone(),
                how: if self.exact {
                    TitleMatch::Exact
                } else {
                    TitleMatch::Prefix
                },
            }
        } else if !self.pids.is_empty() {
            if let Some(bad) = self.pids.iter().find(|&&p| p <= 0) {
                return Err(Error::Usage(format!(
                    "--pid {bad}: a pid is a positive number"
                )));
            }
            Target::Pids(self.pids.iter().map(|&p| Pid(p)).collect())
        } else {
            return Err(Error::Usage(
                "say what to record: --title T, --pid PID… or --all".into(),
            ));
        };
        let signals = if self.signals.is_empty() {
            Signal::default_watch_set()
        } else {
            self.signals
                .iter()
                .map(|s| {
                    Signal::parse(s)
                        .ok_or_else(|| Error::Usage(format!("unknown signal '{s}' in --signals")))
                })
                .collect::<Result<_, _>>()?
        };
        if !(64..=1 << 20).contains(&self.buffer_kb) {
            return Err(Error::Usage(
                "--buffer-kb: between 64 and 1048576".to_string(),
            ));
        }
        Ok(RecordOptions {
            target,
            out: self.out.clone(),
            max_bytes: self.max_bytes,
            duration: self.duration,
            signals,
            buffer_size_kb: self.buffer_kb,
        })
    }
}

/// Runs `record`: exit 0 after a clean stop.
pub fn run(args: &RecordArgs) -> Result<u8, Error> {
    let opts = args.options()?;
    let out = opts.out.clone();
    let stats = record(opts)?;
    eprintln!(
        "ptree: stopped; wrote {} signals, {} forks, {} execs, {} exits, {} snapshots in {} file{} ({} bytes) to {}{}",
        stats.signals,
        stats.forks,
        stats.execs,
        stats.exits,
        stats.snapshots,
        stats.files,
        if stats.files == 1 { "" } else { "s" },
        stats.bytes,
        out.display(),
        if stats.lost > 0 {
            format!("; the kernel dropped {} events", stats.lost)
        } else {
            String::new()
        }
    );
    Ok(OK)
}
