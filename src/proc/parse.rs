//! Parsers for `/proc` files, separated from I/O so every nasty case can be
//! tested on fixed strings.
//!
//! `stat` and `status` are parsed by hand rather than through the procfs
//! crate's `Stat`/`Status`: those build every field (status into a map of
//! ~60 strings) and decode `comm` lossily, while a tree of thousands of
//! processes needs a dozen numbers and the exact `comm` bytes.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::model::{FdTarget, Pgid, Pid, SignalMasks};

/// The fields of `/proc/PID/stat` that ptree uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatFields {
    pub pid: Pid,
    pub comm: Vec<u8>,
    pub state: char,
    pub ppid: Pid,
    pub pgid: Pgid,
    pub sid: Pid,
    pub tty_nr: u32,
    pub tpgid: i32,
    pub flags: u32,
    pub utime: u64,
    pub stime: u64,
    pub nice: i64,
    pub threads: i64,
    pub start_ticks: u64,
}

/// Why a `/proc` file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {file}: {what}")]
pub struct ParseError {
    pub file: &'static str,
    pub what: &'static str,
}

fn err(file: &'static str, what: &'static str) -> ParseError {
    ParseError { file, what }
}

/// Parses `/proc/PID/stat`.
///
/// `comm` sits between the first `(` and the *last* `)`: it may itself hold
/// spaces and parentheses (`prctl(PR_SET_NAME, "a) b (c")`).
pub fn parse_stat(buf: &[u8]) -> Result<StatFields, ParseError> {
    const F: &str = "stat";
    let open = buf
        .iter()
        .position(|&b| b == b'(')
        .ok_or(err(F, "no '('"))?;
    let close = buf
        .iter()
        .rposition(|&b| b == b')')
        .ok_or(err(F, "no ')'"))?;
    if close < open {
        return Err(err(F, "')' before '('"));
    }
    let pid = parse_num::<i32>(trim(&buf[..open])).ok_or(err(F, "bad pid"))?;
    let comm = buf[open + 1..close].to_vec();
    let rest = buf.get(close + 1..).ok_or(err(F, "truncated"))?;
    let mut fields = rest
        .split(|&b| b == b' ' || b == b'\n')
        .filter(|f| !f.is_empty());
    // Field numbers below follow proc(5), counting pid as 1 and comm as 2.
    let mut next = |what: &'static str| fields.next().ok_or(err(F, what));
    let state = *next("no state")?.first().ok_or(err(F, "empty state"))? as char;
    let ppid = num(next("no ppid")?, "bad ppid")?; // 4
    let pgid = num(next("no pgrp")?, "bad pgrp")?; // 5
    let sid = num(next("no session")?, "bad session")?; // 6
    let tty_nr = num::<i64>(next("no tty_nr")?, "bad tty_nr")? as u32; // 7
    let tpgid = num(next("no tpgid")?, "bad tpgid")?; // 8
    let flags = num(next("no flags")?, "bad flags")?; // 9
    for _ in 10..=13 {
        next("truncated before utime")?;
    }
    let utime = num(next("no utime")?, "bad utime")?; // 14
    let stime = num(next("no stime")?, "bad stime")?; // 15
    for _ in 16..=18 {
        next("truncated before nice")?;
    }
    let nice = num(next("no nice")?, "bad nice")?; // 19
    let threads = num(next("no num_threads")?, "bad num_threads")?; // 20
    next("no itrealvalue")?; // 21
    let start_ticks = num(next("no starttime")?, "bad starttime")?; // 22
    Ok(StatFields {
        pid: Pid(pid),
        comm,
        state,
        ppid: Pid(ppid),
        pgid: Pgid(pgid),
        sid: Pid(sid),
        tty_nr,
        tpgid,
        flags,
        utime,
        stime,
        nice,
        threads,
        start_ticks,
    })
}

/// The fields of `/proc/PID/status` that ptree uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusFields {
    /// Effective uid (second of the four `Uid:` values): `ps`'s UID column
    /// is the euid.
    pub uid: Option<u32>,
    pub vm_locked_kb: u64,
    pub signals: Option<SignalMasks>,
}

/// Parses `/proc/PID/status`, looking only at the lines it needs.
pub fn parse_status(buf: &[u8]) -> StatusFields {
    let mut out = StatusFields::default();
    let mut masks = SignalMasks::default();
    let mut seen_masks = 0;
    for line in buf.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (key, value) = (&line[..colon], trim(&line[colon + 1..]));
        match key {
            b"Uid" => {
                let euid = value
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|f| !f.is_empty())
                    .nth(1);
                out.uid = euid.and_then(parse_num);
            }
            b"VmLck" => {
                let first = value.split(|b| b.is_ascii_whitespace()).next();
                out.vm_locked_kb = first.and_then(parse_num).unwrap_or(0);
            }
            b"SigBlk" | b"SigIgn" | b"SigCgt" => {
                let Some(v) = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| u64::from_str_radix(s, 16).ok())
                else {
                    continue;
                };
                seen_masks += 1;
                match key {
                    b"SigBlk" => masks.blocked = v,
                    b"SigIgn" => masks.ignored = v,
                    _ => masks.caught = v,
                }
            }
            _ => {}
        }
    }
    if seen_masks == 3 {
        out.signals = Some(masks);
    }
    out
}

/// Classifies the target of a `/proc/PID/fd/N` link.
pub fn parse_fd_link(link: &[u8]) -> FdTarget {
    if let Some(inode) = bracketed(link, b"pipe:[") {
        return FdTarget::Pipe(inode);
    }
    if let Some(inode) = bracketed(link, b"socket:[") {
        return FdTarget::Socket(inode);
    }
    if let Some(kind) = link.strip_prefix(b"anon_inode:") {
        let kind = kind
            .strip_prefix(b"[")
            .and_then(|k| k.strip_suffix(b"]"))
            .unwrap_or(kind);
        return FdTarget::AnonInode(String::from_utf8_lossy(kind).into_owned());
    }
    if link == b"/dev/null" {
        return FdTarget::Null;
    }
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(link));
    if is_tty_path(link) {
        return FdTarget::Tty(path);
    }
    FdTarget::File(path)
}

/// `/dev/pts/N`, `/dev/ttyN`, `/dev/ttyS0`, `/dev/console`, `/dev/tty`.
fn is_tty_path(p: &[u8]) -> bool {
    p.starts_with(b"/dev/pts/") || p.starts_with(b"/dev/tty") || p == b"/dev/console"
}

fn bracketed(link: &[u8], prefix: &[u8]) -> Option<u64> {
    let rest = link.strip_prefix(prefix)?.strip_suffix(b"]")?;
    parse_num(rest)
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

fn parse_num<T: std::str::FromStr>(b: &[u8]) -> Option<T> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn num<T: std::str::FromStr>(b: &[u8], what: &'static str) -> Result<T, ParseError> {
    parse_num(b).ok_or(err("stat", what))
}

/// `oom_kill N` of /proc/vmstat (kernels since 4.13).
pub fn vmstat_oom_kills(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kill_count_from_vmstat() {
        let text = "pgfault 9120\noom_kill 3\noom_kill_extra 7\n";
        assert_eq!(vmstat_oom_kills(text), Some(3));
        assert_eq!(vmstat_oom_kills("pgfault 1\n"), None);
        assert_eq!(vmstat_oom_kills("oom_kill x\n"), None);
    }

    const NODE_STAT: &[u8] = b"20537 (node) S 20517 20501 20501 0 -1 4194560 9514 0 0 0 \
        57 12 0 0 20 0 11 0 1434271 640000000 12000 18446744073709551615 1 1 0 0 0 0 0 \
        4224 17922 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn stat_of_a_node_master() {
        let s = parse_stat(NODE_STAT).unwrap();
        assert_eq!(s.pid, Pid(20537));
        assert_eq!(s.comm, b"node");
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, Pid(20517));
        assert_eq!(s.pgid, Pgid(20501));
        assert_eq!(s.sid, Pid(20501));
        assert_eq!(s.tty_nr, 0);
        assert_eq!(s.tpgid, -1);
        assert_eq!((s.utime, s.stime), (57, 12));
        assert_eq!(s.nice, 0);
        assert_eq!(s.threads, 11);
        assert_eq!(s.start_ticks, 1434271);
    }

    #[test]
    fn comm_with_spaces_and_parentheses() {
        let line = b"42 (a) b (c)) R 1 42 42 34816 42 4194304 0 0 0 0 1 2 0 0 20 -5 1 0 99 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.comm, b"a) b (c)");
        assert_eq!(s.state, 'R');
        assert_eq!(s.nice, -5);
        assert_eq!(s.tty_nr, 34816);
        assert_eq!(s.start_ticks, 99);
    }

    #[test]
    fn pm2_title_comm() {
        let line = b"20490 (PM2 v5.4.3: God) S 1 20490 20490 0 -1 4194560 0 0 0 0 3 1 0 0 20 0 11 0 500 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.comm, b"PM2 v5.4.3: God");
        assert_eq!(s.ppid, Pid(1));
    }

    #[test]
    fn garbage_stat_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"12",
            b"12 (x",
            b"12 x) S",
            b") (",
            b"1 (x) S 1 2 3 4",
            b"abc (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
        ] {
            assert!(
                parse_stat(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn status_fields() {
        let st = b"Name:\tnode\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t0\t1000\t1000\t1000\n\
            VmLck:\t       4 kB\nSigQ:\t0/63413\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n\
            SigBlk:\t0000000000000000\nSigIgn:\t0000000000001000\nSigCgt:\t0000000188004a02\n";
        let s = parse_status(st);
        assert_eq!(s.uid, Some(1000));
        assert_eq!(s.vm_locked_kb, 4);
        let m = s.signals.unwrap();
        assert!(m.ignores(13));
        assert!(m.catches(2));
        assert!(m.catches(15));
        assert!(!m.catches(9));
    }

    #[test]
    fn status_without_masks() {
        let s = parse_status(b"Name:\tx\nUid:\tgarbage\n");
        assert_eq!(s.uid, None);
        assert_eq!(s.signals, None);
    }

    #[test]
    fn fd_links() {
        assert_eq!(parse_fd_link(b"pipe:[4711]"), FdTarget::Pipe(4711));
        assert_eq!(parse_fd_link(b"socket:[159135]"), FdTarget::Socket(159135));
        assert_eq!(parse_fd_link(b"/dev/null"), FdTarget::Null);
        assert_eq!(
            parse_fd_link(b"anon_inode:[eventfd]"),
            FdTarget::AnonInode("eventfd".into())
        );
        assert_eq!(
            parse_fd_link(b"anon_inode:inotify"),
            FdTarget::AnonInode("inotify".into())
        );
        assert_eq!(
            parse_fd_link(b"/dev/pts/3"),
            FdTarget::Tty(PathBuf::from("/dev/pts/3"))
        );
        assert_eq!(
            parse_fd_link(b"/srv/egg-demo/run/pm2home/pm2.log"),
            FdTarget::File(PathBuf::from("/srv/egg-demo/run/pm2home/pm2.log"))
        );
        assert!(matches!(parse_fd_link(b"pipe:[x]"), FdTarget::File(_)));
    }
}
