use std::process::ExitCode;

use clap::Parser;
use ptree::cli::{Cli, run_tree};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run_tree(&cli) {
        Ok(outcome) => ExitCode::from(outcome as u8),
        Err(e) => {
            eprintln!("ptree: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(2)
        }
    }
}
