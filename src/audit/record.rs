//! One line of the raw audit log → one record: type, stamp, `key=value`
//! fields. No I/O, no allocation until a field is decoded.
//!
//! ```text
//! [node=HOST ]type=SYSCALL msg=audit(1795249183.057:2534): arch=c000003e syscall=62 … comm="sh" …␝ARCH=x86_64 SYSCALL=kill AUID="unset" …
//! ```
//!
//! The `␝` (0x1d) and the upper-case fields after it exist only in
//! auditd's ENRICHED log format: auditd's own resolution of numbers into
//! names. Strings a process controls (`comm`, `exe`, `proctitle`, `key`)
//! are written quoted when harmless and in upper-case hex otherwise
//! (spaces, quotes, control bytes, non-ASCII), or `(null)`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::event::{
    Arch, AuditProcess, AuditTarget, Decoded, Proctitle, SignalSyscall, SyscallPart,
};
use crate::model::{Argv, Pid};

/// The record types ptree reads; every other type is skipped unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Syscall,
    ObjPid,
    Proctitle,
    /// End of event: written on netlink, not by auditd to disk.
    Eoe,
    Other,
}

impl RecordKind {
    /// From the `type=` word; auditd writes `UNKNOWN[1327]` for types it
    /// has no name for.
    pub fn from_type(word: &[u8]) -> RecordKind {
        match word {
            b"SYSCALL" | b"UNKNOWN[1300]" => RecordKind::Syscall,
            b"OBJ_PID" | b"UNKNOWN[1318]" => RecordKind::ObjPid,
            b"PROCTITLE" | b"UNKNOWN[1327]" => RecordKind::Proctitle,
            b"EOE" | b"UNKNOWN[1320]" => RecordKind::Eoe,
            _ => RecordKind::Other,
        }
    }
}

/// The parts every record line has, in both the raw and the interpreted
/// format; the stamp is left as text since the formats write it
/// differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub node: Option<&'a [u8]>,
    pub kind: RecordKind,
    /// Between `msg=audit(` and `)`.
    pub stamp: &'a [u8],
    /// The fields after `): ` (raw) or `) : ` (interpreted), up to the
    /// enriched part.
    pub body: &'a [u8],
    /// After the 0x1d byte of the ENRICHED format.
    pub enriched: Option<&'a [u8]>,
}

/// Splits `[node=HOST ]type=TYPE msg=audit(STAMP): BODY[\x1dENRICHED]`.
pub fn split_header(line: &[u8]) -> Option<Header<'_>> {
    let line = trim_end(line);
    let (node, rest) = match line.strip_prefix(b"node=") {
        Some(after) => {
            let end = find(after, b' ')?;
            (Some(&after[..end]), &after[end + 1..])
        }
        None => (None, line),
    };
    let rest = rest.strip_prefix(b"type=")?;
    let end = find(rest, b' ')?;
    let kind = RecordKind::from_type(&rest[..end]);
    let rest = rest[end + 1..].strip_prefix(b"msg=audit(")?;
    let close = find(rest, b')')?;
    let stamp = &rest[..close];
    let rest = trim_start(&rest[close + 1..]).strip_prefix(b":")?;
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    let (body, enriched) = match find(rest, 0x1d) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    Some(Header {
        node,
        kind,
        stamp,
        body,
        enriched,
    })
}

/// The `SECONDS.MILLIS:SERIAL` stamp of the raw format.
pub fn parse_stamp(stamp: &[u8]) -> Option<(DateTime<Utc>, u64)> {
    let dot = find(stamp, b'.')?;
    let colon = find(stamp, b':')?;
    let secs = dec_u64(stamp.get(..dot)?)?;
    let frac = stamp.get(dot + 1..colon)?;
    let serial = dec_u64(stamp.get(colon + 1..)?)?;
    let nanos = fraction_nanos(frac)?;
    let time = DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)?;
    Some((time, serial))
}

/// `057` → 57_000_000 ns; at most nine digits.
pub(crate) fn fraction_nanos(frac: &[u8]) -> Option<u32> {
    if frac.is_empty() || frac.len() > 9 {
        return None;
    }
    let n = dec_u64(frac)? as u32;
    Some(n * 10u32.pow(9 - frac.len() as u32))
}

/// The `key=value` pairs of a record body. A value starting with `"` (or
/// `'`, in user-space messages) runs to the matching quote and is returned
/// with its quotes, so that [`untrusted`] can tell quoted from hex.
pub fn fields(body: &[u8]) -> Fields<'_> {
    Fields { rest: body }
}

pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = trim_start(self.rest);
            if rest.is_empty() {
                self.rest = rest;
                return None;
            }
            // One pass over the key: it ends at `=`, or at a space for a
            // word that is not a field.
            let Some(eq) = rest.iter().position(|&b| b == b'=' || b == b' ') else {
                self.rest = &[];
                return None;
            };
            if rest[eq] == b' ' {
                self.rest = &rest[eq..];
                continue;
            }
            let key = &rest[..eq];
            let after = &rest[eq + 1..];
            let end = match after.first() {
                Some(&q @ (b'"' | b'\'')) => match find(&after[1..], q) {
                    Some(i) => i + 2,
                    None => find(after, b' ').unwrap_or(after.len()),
                },
                _ => find(after, b' ').unwrap_or(after.len()),
            };
            self.rest = &after[end..];
            return Some((key, &after[..end]));
        }
    }
}

/// A string a process controls: `"text"`, upper-case hex, or `(null)`
/// (`None`). A value that is neither quoted nor valid hex is taken as it
/// is rather than lost.
pub fn untrusted(value: &[u8]) -> Option<Vec<u8>> {
    if value == b"(null)" {
        return None;
    }
    if let Some(inner) = value.strip_prefix(b"\"") {
        return Some(inner.strip_suffix(b"\"").unwrap_or(inner).to_vec());
    }
    Some(unhex(value).unwrap_or_else(|| value.to_vec()))
}

/// Decodes hex digits (either case) into bytes.
pub fn unhex(value: &[u8]) -> Option<Vec<u8>> {
    if value.is_empty() || !value.len().is_multiple_of(2) {
        return None;
    }
    value
        .chunks_exact(2)
        .map(|pair| Some(hex_digit(pair[0])? << 4 | hex_digit(pair[1])?))
        .collect()
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Unsigned hex without prefix, as `arch=` and `a0=` are written.
pub fn hex_u64(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 16 {
        return None;
    }
    value
        .iter()
        .try_fold(0u64, |acc, &b| Some(acc << 4 | u64::from(hex_digit(b)?)))
}

pub fn dec_u64(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 20 {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

pub fn dec_i64(value: &[u8]) -> Option<i64> {
    match value.strip_prefix(b"-") {
        Some(digits) => i64::try_from(dec_u64(digits)?).ok().map(|n| -n),
        None => i64::try_from(dec_u64(value)?).ok(),
    }
}

/// A pid: positive decimal that fits in an `int`.
pub fn dec_pid(value: &[u8]) -> Option<Pid> {
    i32::try_from(dec_u64(value)?).ok().map(Pid)
}

/// A uid, auid or session id; `4294967295` and `-1` are the kernel's
/// "unset" (`None`). Unreadable values are `None` too.
pub fn id_or_unset(value: &[u8]) -> Option<u32> {
    match dec_i64(value)? {
        -1 | 4_294_967_295 => None,
        n => u32::try_from(n).ok(),
    }
}

/// A name from the enriched part (`UID="root"`); `unset` is no name.
fn enriched_name(value: &[u8]) -> Option<String> {
    let name = value.strip_prefix(b"\"").unwrap_or(value);
    let name = name.strip_suffix(b"\"").unwrap_or(name);
    (name != b"unset" && !name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned())
}

pub(crate) fn path_from(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes))
}

/// Several keys of one rule are written joined by 0x01.
pub(crate) fn key_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\u{1}', ",")
}

/// Decodes a SYSCALL record body; other syscalls are recognised from
/// `arch=` and `syscall=` (the first two fields) without reading the rest.
pub(crate) fn decode_syscall(body: &[u8], enriched: Option<&[u8]>) -> Decoded<SyscallPart> {
    let mut arch = None;
    let mut nr = None;
    let mut syscall = None;
    let mut success = None;
    let mut exit = None;
    let mut args = [None; 4];
    let mut sender = AuditProcess::default();
    let mut pid = None;
    let mut key = None;
    for (k, v) in fields(body) {
        match k {
            b"arch" => {
                arch = hex_u64(v)
                    .and_then(|a| u32::try_from(a).ok())
                    .map(Arch::from_audit)
            }
            b"syscall" => nr = dec_u64(v).and_then(|n| u32::try_from(n).ok()),
            b"success" => success = Some(v == b"yes"),
            b"exit" => exit = dec_i64(v),
            b"a0" => args[0] = hex_u64(v),
            b"a1" => args[1] = hex_u64(v),
            b"a2" => args[2] = hex_u64(v),
            b"a3" => args[3] = hex_u64(v),
            b"ppid" => sender.ppid = dec_pid(v),
            b"pid" => pid = dec_pid(v),
            b"auid" => sender.auid.id = id_or_unset(v),
            b"uid" => sender.uid.id = id_or_unset(v),
            b"ses" => sender.ses = id_or_unset(v),
            b"comm" => sender.comm = untrusted(v).unwrap_or_default(),
            b"exe" => sender.exe = untrusted(v).map(path_from),
            b"key" => key = untrusted(v).map(|k| key_text(&k)),
            _ => {}
        }
        if syscall.is_none()
            && let (Some(a), Some(n)) = (arch, nr)
        {
            match SignalSyscall::from_number(a, n) {
                Some(s) => syscall = Some(s),
                None => return Decoded::NotSignal,
            }
        }
    }
    if let Some(enriched) = enriched {
        for (k, v) in fields(enriched) {
            match k {
                b"UID" => sender.uid.name = enriched_name(v),
                b"AUID" => sender.auid.name = enriched_name(v),
                _ => {}
            }
        }
    }
    let (Some(arch), Some(syscall), Some(pid)) = (arch, syscall, pid) else {
        return Decoded::Garbage;
    };
    let Some(args) = required_args(syscall, args) else {
        return Decoded::Garbage;
    };
    sender.pid = pid;
    Decoded::Signal(SyscallPart {
        arch,
        syscall,
        // Records always carry `success=`; the exit code decides if not.
        success: success.unwrap_or(exit.is_some_and(|e| e >= 0)),
        exit,
        args,
        sender,
        key,
    })
}

/// The arguments, when those naming the target and the signal are there;
/// the others (pointers, flags) default to 0.
pub(crate) fn required_args(syscall: SignalSyscall, args: [Option<u64>; 4]) -> Option<[u64; 4]> {
    if args[..syscall.used_args()].iter().any(Option::is_none) {
        return None;
    }
    Some(args.map(|a| a.unwrap_or(0)))
}

/// What routing an event needs from its SYSCALL record: whether it is a
/// signal syscall, and the arguments that name the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub arch: Arch,
    pub syscall: SignalSyscall,
    pub args: [u64; 4],
}

/// Reads `arch`, `syscall` and the arguments, stopping there: they come
/// first, before the twenty-odd fields only a kept event needs.
pub(crate) fn decode_head(body: &[u8]) -> Decoded<Head> {
    let mut arch = None;
    let mut nr = None;
    let mut syscall = None;
    let mut args = [None; 4];
    for (k, v) in fields(body) {
        match k {
            b"arch" => {
                arch = hex_u64(v)
                    .and_then(|a| u32::try_from(a).ok())
                    .map(Arch::from_audit)
            }
            b"syscall" => nr = dec_u64(v).and_then(|n| u32::try_from(n).ok()),
            b"a0" => args[0] = hex_u64(v),
            b"a1" => args[1] = hex_u64(v),
            b"a2" => args[2] = hex_u64(v),
            b"a3" => args[3] = hex_u64(v),
            _ => {}
        }
        if syscall.is_none()
            && let (Some(a), Some(n)) = (arch, nr)
        {
            match SignalSyscall::from_number(a, n) {
                Some(s) => syscall = Some(s),
                None => return Decoded::NotSignal,
            }
        }
        if syscall.is_some() && args[3].is_some() {
            break;
        }
    }
    match (arch, syscall) {
        (Some(arch), Some(syscall)) => match required_args(syscall, args) {
            Some(args) => Decoded::Signal(Head {
                arch,
                syscall,
                args,
            }),
            None => Decoded::Garbage,
        },
        _ => Decoded::Garbage,
    }
}

/// The `opid=` of an OBJ_PID record, its first field.
pub(crate) fn decode_opid(body: &[u8]) -> Option<Pid> {
    fields(body)
        .find(|(k, _)| *k == b"opid")
        .and_then(|(_, v)| dec_pid(v))
}

/// Decodes an OBJ_PID record: one process the kernel signalled.
pub(crate) fn decode_obj_pid(body: &[u8], enriched: Option<&[u8]>) -> Option<AuditTarget> {
    let mut target = AuditTarget::default();
    let mut pid = None;
    for (k, v) in fields(body) {
        match k {
            b"opid" => pid = dec_pid(v),
            b"oauid" => target.auid.id = id_or_unset(v),
            b"ouid" => target.uid.id = id_or_unset(v),
            b"oses" => target.ses = id_or_unset(v),
            b"ocomm" => target.comm = untrusted(v).unwrap_or_default(),
            _ => {}
        }
    }
    for (k, v) in enriched.map(fields).into_iter().flatten() {
        match k {
            b"OUID" => target.uid.name = enriched_name(v),
            b"OAUID" => target.auid.name = enriched_name(v),
            _ => {}
        }
    }
    target.pid = pid?;
    Some(target)
}

/// Decodes a PROCTITLE record: argv with NUL separators.
pub(crate) fn decode_proctitle(body: &[u8]) -> Option<Proctitle> {
    let (_, v) = fields(body).find(|(k, _)| *k == b"proctitle")?;
    Some(match untrusted(v) {
        Some(raw) => Proctitle::Argv(Argv::from_cmdline(&raw)),
        None => Proctitle::Missing,
    })
}

/// The first `needle` in `haystack`, eight bytes at a time: lines are
/// scanned for newlines, spaces and the enriched separator, and this is
/// where a scan of a large log spends its time.
pub(crate) fn find(haystack: &[u8], needle: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(needle);
    let mut chunks = haystack.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        // Some byte of x is zero: the needle is in this chunk.
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            break;
        }
        offset += 8;
    }
    haystack[offset..]
        .iter()
        .position(|&b| b == needle)
        .map(|i| offset + i)
}

pub(crate) fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

pub(crate) fn trim_end(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .rev()
        .take_while(|&&b| matches!(b, b'\n' | b'\r' | b' '))
        .count();
    &s[..s.len() - n]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::{AuditUser, TargetArg};
    use crate::model::Pgid;

    const ENRICHED: &[u8] = b"type=SYSCALL msg=audit(1795249183.057:2534): arch=c000003e syscall=62 success=yes exit=0 a0=4440 a1=f a2=0 a3=7f14e4620ac0 items=0 ppid=17469 pid=17470 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=\"gen_cases.sh\" exe=\"/usr/bin/bash\" key=\"ptree_sig\"\x1dARCH=x86_64 SYSCALL=kill AUID=\"unset\" UID=\"root\" GID=\"root\"\n";

    fn syscall(line: &[u8]) -> Decoded<SyscallPart> {
        let h = split_header(line).expect("a record");
        decode_syscall(h.body, h.enriched)
    }

    fn signal(line: &[u8]) -> SyscallPart {
        match syscall(line) {
            Decoded::Signal(part) => part,
            other => panic!("not a signal syscall: {other:?}"),
        }
    }

    #[test]
    fn enriched_syscall() {
        let h = split_header(ENRICHED).expect("a record");
        assert_eq!(h.kind, RecordKind::Syscall);
        assert_eq!(h.node, None);
        let (time, serial) = parse_stamp(h.stamp).expect("a stamp");
        assert_eq!(serial, 2534);
        assert_eq!(time.timestamp(), 1_795_249_183);
        assert_eq!(time.timestamp_subsec_millis(), 57);
        assert!(h.enriched.is_some_and(|e| e.starts_with(b"ARCH=x86_64")));

        let part = signal(ENRICHED);
        assert_eq!(part.arch, Arch::X86_64);
        assert_eq!(part.syscall, SignalSyscall::Kill);
        assert!(part.success);
        assert_eq!(part.exit, Some(0));
        assert_eq!(part.args[..2], [0x4440, 0xf]);
        assert_eq!(part.sender.pid, Pid(17470));
        assert_eq!(part.sender.ppid, Some(Pid(17469)));
        assert_eq!(
            part.sender.uid,
            AuditUser {
                id: Some(0),
                name: Some("root".into())
            }
        );
        assert!(part.sender.auid.is_unset());
        assert_eq!(part.sender.ses, None);
        assert_eq!(part.sender.comm, b"gen_cases.sh");
        assert_eq!(part.sender.exe, Some(PathBuf::from("/usr/bin/bash")));
        assert_eq!(part.key.as_deref(), Some("ptree_sig"));
    }

    #[test]
    fn raw_line_with_node_and_selinux() {
        let line = b"node=web-1 type=SYSCALL msg=audit(1700000000.5:9): arch=c00000b7 syscall=129 success=yes exit=0 a0=ffffd033 a1=9 a2=0 a3=0 items=0 ppid=1 pid=1234 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm=\"bash\" exe=\"/usr/bin/bash\" subj=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 key=(null)";
        let h = split_header(line).expect("a record");
        assert_eq!(h.node, Some(&b"web-1"[..]));
        assert_eq!(h.enriched, None);
        let (time, serial) = parse_stamp(h.stamp).expect("a stamp");
        assert_eq!((time.timestamp_subsec_millis(), serial), (500, 9));
        let part = signal(line);
        // 129 is kill on aarch64.
        assert_eq!(part.arch, Arch::Aarch64);
        assert_eq!(part.syscall, SignalSyscall::Kill);
        assert_eq!(
            part.sender.auid,
            AuditUser {
                id: Some(1000),
                name: None
            }
        );
        assert_eq!(part.sender.ses, Some(3));
        assert_eq!(part.key, None);
        assert_eq!(
            TargetArg::decode(part.syscall, &part.args),
            TargetArg::ProcessGroup(Pgid(12237))
        );
    }

    #[test]
    fn hex_comm_with_spaces_and_null_exe() {
        // comm "my prog" and a key with two names.
        let line = b"type=SYSCALL msg=audit(1.000:1): arch=c000003e syscall=62 success=yes exit=0 a0=1 a1=f a2=0 a3=0 ppid=1 pid=2 auid=-1 uid=0 ses=-1 comm=6D792070726F67 exe=(null) key=6B3101B32";
        let part = signal(line);
        assert_eq!(part.sender.comm, b"my prog");
        assert_eq!(part.sender.exe, None);
        assert_eq!(part.sender.ses, None);
        // Odd hex length: kept as written rather than lost.
        assert_eq!(part.key.as_deref(), Some("6B3101B32"));
        assert_eq!(
            untrusted(b"6B3101").map(|k| key_text(&k)).as_deref(),
            Some("k1,")
        );
    }

    #[test]
    fn failed_kill() {
        let line = b"type=SYSCALL msg=audit(1795249187.741:2545): arch=c000003e syscall=62 success=no exit=-3 a0=3ffed0 a1=f a2=0 a3=7f14e4620ac0 items=0 ppid=17470 pid=17808 auid=4294967295 uid=0 comm=\"gen_cases.sh\"";
        let part = signal(line);
        assert!(!part.success);
        assert_eq!(part.exit, Some(-3));
        assert_eq!(part.args[0], 4_194_000);
    }

    #[test]
    fn other_syscalls_are_not_signals() {
        let execve = b"type=SYSCALL msg=audit(1.000:1): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 pid=5 comm=\"sh\"";
        assert_eq!(syscall(execve), Decoded::NotSignal);
        let missing_pid = b"type=SYSCALL msg=audit(1.000:1): arch=c000003e syscall=62 success=yes exit=0 a0=1 a1=2 a2=3 a3=4";
        assert_eq!(syscall(missing_pid), Decoded::Garbage);
    }

    #[test]
    fn obj_pid_and_proctitle() {
        let obj = b"type=OBJ_PID msg=audit(1795249183.057:2534): opid=17472 oauid=-1 ouid=0 oses=-1 ocomm=\"sleep\"\x1dOAUID=\"unset\" OUID=\"root\"";
        let h = split_header(obj).expect("a record");
        assert_eq!(h.kind, RecordKind::ObjPid);
        let t = decode_obj_pid(h.body, h.enriched).expect("a target");
        assert_eq!(t.pid, Pid(17472));
        assert!(t.auid.is_unset());
        assert_eq!(
            t.uid,
            AuditUser {
                id: Some(0),
                name: Some("root".into())
            }
        );
        assert_eq!(t.comm, b"sleep");

        let title = b"type=PROCTITLE msg=audit(1795249183.057:2534): proctitle=2F62696E2F62617368002E2F67656E5F63617365732E7368";
        let h = split_header(title).expect("a record");
        let p = decode_proctitle(h.body).expect("a proctitle");
        assert_eq!(
            p,
            Proctitle::Argv(Argv(vec![
                b"/bin/bash".to_vec(),
                b"./gen_cases.sh".to_vec()
            ]))
        );
        assert_eq!(p.display(), "/bin/bash ./gen_cases.sh");
        let quoted = decode_proctitle(b"proctitle=\"sleep\"").expect("a proctitle");
        assert_eq!(quoted, Proctitle::Argv(Argv(vec![b"sleep".to_vec()])));
        assert_eq!(
            decode_proctitle(b"proctitle=(null)"),
            Some(Proctitle::Missing)
        );
    }

    #[test]
    fn garbage() {
        for line in [
            &b""[..],
            b"hello world",
            b"type=SYSCALL",
            b"type=SYSCALL msg=audit(",
            b"type=SYSCALL msg=audit(1.2:3)",
            b"node= type=X msg=audit(1.2:3):",
            b"\xff\xfe\x1d\x00",
        ] {
            let header = split_header(line);
            if let Some(h) = header {
                assert!(
                    h.kind == RecordKind::Other || parse_stamp(h.stamp).is_none(),
                    "{line:?}"
                );
            }
        }
        assert_eq!(parse_stamp(b"1.2:3").map(|(_, s)| s), Some(3));
        assert_eq!(parse_stamp(b"99999999999999999999.000:1"), None);
        assert_eq!(parse_stamp(b"1.0000000000:1"), None);
        assert_eq!(parse_stamp(b"x.000:1"), None);
        assert_eq!(hex_u64(b"10000000000000000"), None);
        assert_eq!(dec_i64(b"-"), None);
        assert_eq!(id_or_unset(b"-1"), None);
        assert_eq!(id_or_unset(b"4294967295"), None);
        assert_eq!(id_or_unset(b"1000"), Some(1000));
        // An unterminated quote runs to the next space.
        let f: Vec<_> = fields(b"a=\"x b=1 c").collect();
        assert_eq!(f, vec![(&b"a"[..], &b"\"x"[..]), (&b"b"[..], &b"1"[..])]);
        let f: Vec<_> = fields(b"word a=1  b= c").collect();
        assert_eq!(f, vec![(&b"a"[..], &b"1"[..]), (&b"b"[..], &b""[..])]);
    }

    #[test]
    fn find_matches_position() {
        let text = b"type=SYSCALL msg=audit(1.000:1): a=1\x1dB=2\n";
        for start in 0..text.len() {
            let hay = &text[start..];
            for needle in [b' ', b'\n', 0x1d, b'=', b'z', 0x80, 0] {
                assert_eq!(
                    find(hay, needle),
                    hay.iter().position(|&b| b == needle),
                    "{start} {needle}"
                );
            }
        }
    }
}
