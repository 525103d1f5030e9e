//! `--format table`: the same rows in a comfy-table grid, for reading in a
//! wide terminal or pasting into a ticket.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};

use crate::analysis::tree::rows;
use crate::render::cells::{cpu_time, fd_cell, stat};
use crate::view::View;

pub fn render(view: &View) -> String {
    let snap = &view.snapshot;
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec![
            "PPID", "PID", "PGID", "SID", "TTY", "STAT", "USER", "TIME", "ROLE", "STDOUT",
            "STDERR", "COMMAND",
        ]);
    for row in rows(&view.forest) {
        let Some(p) = snap.get(row.node.pid) else {
            continue;
        };
        let fds = p.fds.as_ref();
        let user = p
            .uid
            .map(|u| {
                view.user_names
                    .get(&u)
                    .cloned()
                    .unwrap_or_else(|| u.to_string())
            })
            .unwrap_or_else(|| "?".into());
        let mut command = row.prefix.clone();
        if row.node.count() > 1 {
            command.push_str(&format!("{}*[{}]", row.node.count(), p.command()));
        } else {
            command.push_str(&p.command());
        }
        let (out, err) = if p.is_kernel_thread() {
            (String::new(), String::new())
        } else {
            (
                fd_cell(
                    fds.map(|f| &f.stdout),
                    view.peers.of(p.pid, 1),
                    view.peers.is_unknown(p.pid, 1),
                ),
                fd_cell(
                    fds.map(|f| &f.stderr),
                    view.peers.of(p.pid, 2),
                    view.peers.is_unknown(p.pid, 2),
                ),
            )
        };
        table.add_row(vec![
            p.ppid.to_string(),
            p.pid.to_string(),
            p.pgid.to_string(),
            p.sid.to_string(),
            view.tty_name(p.tty_nr).to_string(),
            stat(p),
            user,
            cpu_time(p, snap.ticks_per_second),
            view.roles.of(p.pid).to_string(),
            out,
            err,
            command,
        ]);
    }
    format!("{table}\n")
}
