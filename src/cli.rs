//! Command-line arguments (raw user input); `run` turns them into a
//! validated request for the library.

use std::io::IsTerminal;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::analysis::select::Selection;
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

const TREE_EXAMPLES: &str = "Examples:
  ptree                          the whole machine, like ps axjf, plus ROLE and STDOUT
  ptree --title egg-server       an Egg deployment: supervisor, wrapper, launcher, master, workers
  ptree --pid 4711 --compact     one process with its ancestors and subtree, identical workers folded
  ptree node --format json       every command line containing \"node\", as JSON
  ptree --ps                     exactly ps axjf's rows";

/// What is running, who started whom, and who killed whom.
#[derive(Debug, Parser)]
#[command(
    name = "ptree",
    version,
    about,
    after_help = TREE_EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub tree: TreeArgs,
}

/// The subcommands; without one, ptree shows the tree.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch processes and report who sends them signals, with a verdict.
    #[command(after_help = crate::cmd::who_killed::EXAMPLES)]
    WhoKilled(crate::cmd::who_killed::WhoKilledArgs),
    /// Findings: the exec-maxBuffer pitfall, broken stdout, daemon hygiene,
    /// missing or orphaned workers, zombies.
    #[command(after_help = crate::cmd::doctor::EXAMPLES)]
    Doctor(crate::cmd::doctor::DoctorArgs),
    /// Assertions for CI smoke checks after a deploy.
    #[command(after_help = crate::cmd::check::EXAMPLES)]
    Check(crate::cmd::check::CheckArgs),
    /// Flight recorder: signals, forks and exits of a service into a
    /// rotating JSON-lines file, for who-killed --from and report.
    #[command(after_help = crate::cmd::record::EXAMPLES)]
    Record(crate::cmd::record::RecordArgs),
    /// Postmortem timeline from a recording: the tree, each death with its
    /// verdict, restarts and restart loops (Markdown or JSON).
    #[command(after_help = crate::cmd::report::EXAMPLES)]
    Report(crate::cmd::report::ReportArgs),
    /// ptree's audit rules, for who-killed --audit-log after the fact.
    #[command(after_help = crate::cmd::audit::EXAMPLES)]
    Audit(crate::cmd::audit::AuditArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Example:\n  ptree completions bash > /etc/bash_completion.d/ptree")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout.
    #[command(after_help = "Example:\n  ptree man > /usr/local/share/man/man1/ptree.1")]
    Man,
}

/// Which processes to look at: the tree view's and doctor's selection.
#[derive(Debug, Default, Args)]
pub struct SelectArgs {
    /// Processes whose command line contains this text (like pgrep -f).
    pub pattern: Option<String>,
    /// This process, its ancestors and its descendants (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<i32>,
    /// The Egg deployment with this title (prefix match).
    #[arg(long, value_name = "T")]
    pub title: Option<String>,
    /// Match --title exactly, as `egg-scripts stop` does.
    #[arg(long, requires = "title")]
    pub exact: bool,
}

impl SelectArgs {
    pub fn selection(&self) -> Result<Selection, Error> {
        Selection::from_parts(
            self.pattern.as_deref(),
            &self.pids,
            self.title.as_deref(),
            self.exact,
        )
    }
}

/// Arguments of the tree view.
#[derive(Debug, Args)]
pub struct TreeArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Print exactly ps axjf's columns and nothing else.
    #[arg(long, conflicts_with = "format")]
    pub ps: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Fold identical sibling subtrees into one line (2*[...]).
    #[arg(long)]
    pub compact: bool,
    /// Colour: only on a terminal by default, never with NO_COLOR set.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

impl TreeArgs {
    pub fn color(&self) -> bool {
        match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
            }
        }
    }
}
