//! The `ps axjf` layout, alone (`--ps`) or with ROLE and STDOUT before
//! COMMAND (the default view). COMMAND stays last, as in `ps`, because it
//! is the only column of unbounded width.

use crate::analysis::roles::Role;
use crate::analysis::tree::rows;
use crate::render::cells::{cpu_time, fd_cell, stat};
use crate::render::layout::{Align, Column, header, line_styled};
use crate::view::View;

const PS_COLUMNS: [Column; 10] = [
    Column::new("PPID", 5, Align::Right),
    Column::new("PID", 5, Align::Right),
    Column::new("PGID", 5, Align::Right),
    Column::new("SID", 5, Align::Right),
    Column::new("TTY", 8, Align::Left),
    Column::new("TPGID", 5, Align::Right),
    Column::new("STAT", 4, Align::Left),
    Column::new("UID", 5, Align::Right),
    Column::new("TIME", 6, Align::Right),
    Column::new("COMMAND", 0, Align::Left),
];

/// Options for the text renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextOptions {
    /// Only `ps axjf`'s columns.
    pub ps_only: bool,
    /// ANSI colours for roles and broken outputs.
    pub color: bool,
}

fn role_style(role: Role) -> &'static str {
    match role {
        Role::Supervisor => "\x1b[34m",
        Role::Wrapper => "\x1b[33m",
        Role::Shell => "\x1b[2m",
        Role::Launcher => "\x1b[36m",
        Role::Master => "\x1b[1;32m",
        Role::Agent => "\x1b[35m",
        Role::Worker => "\x1b[32m",
        Role::Other => "",
    }
}

/// Renders the view as text.
pub fn render(view: &View, opts: TextOptions) -> String {
    let snap = &view.snapshot;
    let rows = rows(&view.forest);
    let mut out = String::with_capacity(rows.len() * 120 + 128);

    // (role, stdout) per row, computed once to size the columns.
    let extra: Vec<(String, String)> = if opts.ps_only {
        Vec::new()
    } else {
        rows.iter()
            .map(|r| {
                let pid = r.node.pid;
                let p = snap.get(pid);
                let role = view.roles.of(pid);
                let role = if role == Role::Other {
                    "-".to_string()
                } else {
                    role.to_string()
                };
                let fd = match p {
                    Some(p) if p.is_kernel_thread() => String::new(),
                    Some(p) => fd_cell(
                        p.fds.as_ref().map(|f| &f.stdout),
                        view.peers.of(pid, 1),
                        view.peers.is_unknown(pid, 1),
                    ),
                    None => String::new(),
                };
                (role, fd)
            })
            .collect()
    };
    let mut columns: Vec<Column> = PS_COLUMNS.to_vec();
    if !opts.ps_only {
        let role_w = extra
            .iter()
            .map(|e| e.0.chars().count())
            .max()
            .unwrap_or(0)
            .max(4);
        let out_w = extra
            .iter()
            .map(|e| e.1.chars().count())
            .max()
            .unwrap_or(0)
            .clamp(6, 40);
        columns.insert(9, Column::new("ROLE", role_w, Align::Left));
        columns.insert(10, Column::new("STDOUT", out_w, Align::Left));
    }
    header(&columns, &mut out);

    for (i, row) in rows.iter().enumerate() {
        let Some(p) = snap.get(row.node.pid) else {
            continue;
        };
        let ppid = p.ppid.to_string();
        let pid = p.pid.to_string();
        let pgid = p.pgid.to_string();
        let sid = p.sid.to_string();
        let tty = view.tty_name(p.tty_nr);
        let tpgid = p.tpgid.to_string();
        let stat = stat(p);
        let uid = p.uid.map_or_else(|| "?".to_string(), |u| u.to_string());
        let time = cpu_time(p, snap.ticks_per_second);
        let mut command = row.prefix.clone();
        if row.node.count() > 1 {
            command.push_str(&format!("{}*[{}]", row.node.count(), p.command()));
        } else {
            command.push_str(&p.command());
        }
        let mut cells: Vec<&str> = vec![&ppid, &pid, &pgid, &sid, tty, &tpgid, &stat, &uid, &time];
        let mut styles: Vec<&str> = Vec::new();
        if !opts.ps_only {
            let (role, fd) = &extra[i];
            cells.push(role);
            cells.push(fd);
            if opts.color {
                styles = vec![""; 9];
                styles.push(role_style(view.roles.of(p.pid)));
                styles.push(if fd.contains("(none)") {
                    "\x1b[31m"
                } else {
                    ""
                });
            }
        }
        cells.push(&command);
        line_styled(&columns, &cells, &styles, &mut out);
    }
    out
}
