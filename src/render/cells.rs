//! Cell text shared by every renderer: the `ps j` fields and ptree's STDOUT.

use crate::model::{FdTarget, Peer, Process, StdFd};

/// STAT as procps composes it: state, then `<`/`N` (nice), `L` (locked
/// pages), `s` (session leader), `l` (multi-threaded), `+` (foreground).
pub fn stat(p: &Process) -> String {
    let mut s = String::with_capacity(6);
    s.push(p.state);
    if p.nice < 0 {
        s.push('<');
    } else if p.nice > 0 {
        s.push('N');
    }
    if p.vm_locked {
        s.push('L');
    }
    if p.sid.0 == p.pid.0 {
        s.push('s');
    }
    if p.threads > 1 {
        s.push('l');
    }
    if p.pgid.0 == p.tpgid {
        s.push('+');
    }
    s
}

/// TIME as `ps j` prints it (BSD style): cumulative CPU as `M:SS`.
pub fn cpu_time(p: &Process, ticks_per_second: u64) -> String {
    let secs = p.cpu_ticks / ticks_per_second.max(1);
    format!("{}:{:02}", secs / 60, secs % 60)
}

/// Where an fd goes, in a few words: `tty`, `null`, `file:/x.log`,
/// `pipe→4711 node`, `socket→4711 node`.
pub fn fd_cell(fd: Option<&StdFd>, peers: &[Peer], unknown: bool) -> String {
    let Some(fd) = fd else {
        return "-".to_string();
    };
    let peer_text = || match peers {
        [] if unknown => "?".to_string(),
        [] => "(none)".to_string(),
        [one] => format!("{} {}", one.pid, one.comm),
        [one, rest @ ..] => format!("{} {} +{}", one.pid, one.comm, rest.len()),
    };
    match &fd.target {
        FdTarget::Tty(_) => "tty".to_string(),
        FdTarget::Null => "null".to_string(),
        FdTarget::File(path) => format!("file:{}", path.display()),
        FdTarget::Pipe(_) => format!("pipe→{}", peer_text()),
        FdTarget::Socket(_) => format!("socket→{}", peer_text()),
        FdTarget::AnonInode(kind) => format!("anon:{kind}"),
        FdTarget::Closed => "closed".to_string(),
        FdTarget::Unreadable => "?".to_string(),
    }
}

/// JSON `kind` and `target` of an fd.
pub fn fd_kind_target(fd: Option<&StdFd>) -> (&'static str, String) {
    let Some(fd) = fd else {
        return ("closed", String::new());
    };
    match &fd.target {
        FdTarget::Tty(p) => ("tty", p.display().to_string()),
        FdTarget::Null => ("null", "/dev/null".to_string()),
        FdTarget::File(p) => ("file", p.display().to_string()),
        FdTarget::Pipe(i) => ("pipe", format!("pipe:[{i}]")),
        FdTarget::Socket(i) => ("socket", format!("socket:[{i}]")),
        FdTarget::AnonInode(k) => ("other", format!("anon_inode:[{k}]")),
        FdTarget::Closed => ("closed", String::new()),
        FdTarget::Unreadable => ("other", "unreadable".to_string()),
    }
}
