//! The recorded incident tree as a [`Snapshot`], for unit tests of the
//! analysis and renderers.

use std::path::PathBuf;

use chrono::{TimeZone, Utc};

use crate::model::{Argv, FdTarget, Pgid, Pid, Process, Snapshot, StdFd, StdFds};
use crate::proc::parse::parse_fd_link;

const PROCS: &str = include_str!("../../tests/fixtures/egg-exec-node14/procs.before.txt");

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = if line.starts_with(key) {
        key.len()
    } else {
        line.find(&format!(" {key}"))
            .map_or(line.len(), |i| i + 1 + key.len())
    };
    let rest = &line[start..];
    // comm may contain spaces: it runs up to " state=".
    let end = if key == "comm=" {
        rest.find(" state=")
    } else {
        rest.find(' ')
    };
    &rest[..end.unwrap_or(rest.len())]
}

fn fd(line: &str) -> StdFd {
    let target = line
        .split("-> ")
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("");
    let t = parse_fd_link(target.as_bytes());
    let flags = line
        .split("flags=")
        .nth(1)
        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok());
    let mode = flags.map(|f| match f & 3 {
        0 => crate::model::AccessMode::Read,
        1 => crate::model::AccessMode::Write,
        _ => crate::model::AccessMode::ReadWrite,
    });
    StdFd::new(t, mode)
}

/// PM2 → wrapper → npx → master → agent + 2 workers, as recorded.
pub fn egg_snapshot() -> Snapshot {
    let mut procs = Vec::new();
    let mut lines = PROCS.lines().peekable();
    let mut n = 0u64;
    while let Some(head) = lines.next() {
        if !head.starts_with("pid=") {
            continue;
        }
        let cmd = lines
            .next()
            .unwrap_or("")
            .trim_start()
            .trim_start_matches("cmdline: ");
        let cmd = cmd.trim_end();
        let argv = if cmd.starts_with("PM2 v") {
            Argv(vec![cmd.as_bytes().to_vec()])
        } else {
            Argv(cmd.split(' ').map(|a| a.as_bytes().to_vec()).collect())
        };
        let out = fd(lines.next().unwrap_or(""));
        let err = fd(lines.next().unwrap_or(""));
        n += 1;
        let pid: i32 = field(head, "pid=").parse().unwrap();
        procs.push(Process {
            pid: Pid(pid),
            ppid: Pid(field(head, "ppid=").parse().unwrap()),
            pgid: Pgid(field(head, "pgrp=").parse().unwrap()),
            sid: Pid(field(head, "session=").parse().unwrap()),
            tty_nr: 0,
            tpgid: -1,
            state: 'S',
            flags: 0x40_0100,
            nice: 0,
            threads: 11,
            cpu_ticks: 0,
            start_ticks: 1000 + n,
            start_time: Utc.timestamp_opt(1_700_000_000 + n as i64, 0).unwrap(),
            comm: field(head, "comm=").as_bytes().to_vec(),
            argv,
            uid: Some(0),
            vm_locked: false,
            signals: None,
            exe: Some(PathBuf::from("/usr/bin/node")),
            cwd: Some(PathBuf::from("/srv/egg-demo")),
            cwd_dev: None,
            root_dev: None,
            fds: Some(StdFds {
                stdin: StdFd::new(FdTarget::Null, None),
                stdout: out,
                stderr: err,
            }),
        });
    }
    Snapshot::new(
        procs,
        Utc.timestamp_opt(1_700_000_100, 0).unwrap(),
        100,
        Pid(1),
    )
}
