//! The default command: the process tree.

use crate::cli::{Format, TreeArgs};
use crate::cmd::{FAILED, OK, write_stdout};
use crate::error::Error;
use crate::proc::Details;
use crate::render;
use crate::view::{Depth, View};

/// Runs the tree view and writes it to stdout.
pub fn run(cli: &TreeArgs) -> Result<u8, Error> {
    let selection = cli.select.selection()?;
    let depth = if cli.ps {
        Depth::Ps
    } else {
        // The text view shows only stdout; table and JSON show stderr too.
        Depth::Full(Details {
            stdout: true,
            stderr: cli.format != Format::Text,
            ..Details::default()
        })
    };
    let view = View::read(&selection, depth, cli.compact)?;
    let text = if cli.ps {
        render::text::render(
            &view,
            render::text::TextOptions {
                ps_only: true,
                color: false,
            },
        )
    } else {
        match cli.format {
            Format::Text => render::text::render(
                &view,
                render::text::TextOptions {
                    ps_only: false,
                    color: cli.color(),
                },
            ),
            Format::Table => render::table::render(&view),
            Format::Json => render::json::render(&view),
        }
    };
    write_stdout(&text);
    Ok(if view.matched.is_empty() { FAILED } else { OK })
}
