//! One module per subcommand: each turns validated arguments into library
//! calls and returns the exit status (docs/exit-codes.md).

pub mod audit;
pub mod check;
pub mod doctor;
pub mod record;
pub mod report;
pub mod tree;
pub mod who_killed;
pub mod who_killed_audit;

use crate::cli::{Cli, Command};
use crate::error::Error;

/// Success: something was shown, found, or every check passed.
pub const OK: u8 = 0;
/// Nothing matched, nothing was found, a finding or a check failed, or a
/// wait timed out.
pub const FAILED: u8 = 1;
/// An error: bad arguments, an unknown pid, missing privileges.
pub const ERROR: u8 = 2;

/// Runs the command line.
pub fn run(cli: &Cli) -> Result<u8, Error> {
    match &cli.command {
        None => tree::run(&cli.tree),
        Some(Command::WhoKilled(args)) => who_killed::run(args),
        Some(Command::Doctor(args)) => doctor::run(args),
        Some(Command::Check(args)) => check::run(args),
        Some(Command::Record(args)) => record::run(args),
        Some(Command::Report(args)) => report::run(args),
        Some(Command::Audit(args)) => audit::run(args),
        Some(Command::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "ptree", &mut std::io::stdout());
            Ok(OK)
        }
        Some(Command::Man) => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| Error::io("stdout", e))?;
            write_stdout(&String::from_utf8_lossy(&out));
            Ok(OK)
        }
    }
}

/// Writes to stdout; a closed pipe (`ptree | head`) is not an error.
pub fn write_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}
