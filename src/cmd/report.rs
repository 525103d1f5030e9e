//! `ptree report`: a postmortem timeline from a recording — the tree as it
//! was, each death with its verdict, restarts and restart loops, signals
//! from supervisors — in Markdown for an incident document, or JSON
//! (schema `ptree.report/1`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::cmd::{FAILED, OK, write_stdout};
use crate::error::Error;
use crate::model::Pid;
use crate::record::read_recordings;
use crate::record::render::markdown;
use crate::record::replay::describe_recording;
use crate::record::timeline::{ReportOptions, RestartLoopRule, build_report, parse_restart_loop};

pub const EXAMPLES: &str = "Examples:
  ptree report /var/log/ptree/egg.jsonl.1 /var/log/ptree/egg.jsonl > postmortem.md
  ptree report rec.jsonl --pid 4711                 one process and its descendants
  ptree report rec.jsonl --format json | jq '.deaths[] | {pid, verdict: .verdict.kind}'
  ptree report rec.jsonl --restart-loop 3/30s       flag 4 restarts within 30 s";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ReportFormat {
    #[default]
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Recording files (FILE and FILE.1, in any order).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Only this process and its descendants (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<i32>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
    pub format: ReportFormat,
    /// More than N restarts of one role under one parent within DUR is a
    /// restart loop.
    #[arg(long, value_parser = parse_restart_loop, default_value = "5/60s", value_name = "N/DUR")]
    pub restart_loop: RestartLoopRule,
}

/// Runs `report`: 0 when a report was written, 1 when `--pid` is not in
/// the recording.
pub fn run(args: &ReportArgs) -> Result<u8, Error> {
    let rec = read_recordings(&args.files)?;
    describe_recording(&rec);
    let pids: Vec<Pid> = args.pids.iter().map(|&p| Pid(p)).collect();
    let opts = ReportOptions {
        pids: pids.clone(),
        restart_loop: args.restart_loop,
    };
    let report = build_report(&rec, &opts);
    let text = match args.format {
        ReportFormat::Markdown => markdown(&report),
        ReportFormat::Json => {
            let mut s = serde_json::to_string_pretty(&report)
                .map_err(|e| Error::Usage(format!("cannot serialise the report: {e}")))?;
            s.push('\n');
            s
        }
    };
    write_stdout(&text);
    let seen = pids.is_empty() || report.tree.is_some() || !report.deaths.is_empty();
    if !seen {
        eprintln!("ptree: no recorded process matches --pid");
        return Ok(FAILED);
    }
    Ok(OK)
}
