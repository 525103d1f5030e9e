use std::process::ExitCode;

use clap::Parser;
use ptree::cli::Cli;
use ptree::cmd::{ERROR, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("ptree: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(ERROR)
        }
    }
}
