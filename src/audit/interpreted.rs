//! `ausearch -i` text → the same events as the raw log.
//!
//! ```text
//! ----
//! type=PROCTITLE msg=audit(11/21/26 08:19:43.057:2534) : proctitle=/bin/bash ./gen_cases.sh
//! type=OBJ_PID msg=audit(11/21/26 08:19:43.057:2534) : opid=17472 oauid=unset ouid=root oses=-1 ocomm=sleep
//! type=SYSCALL msg=audit(11/21/26 08:19:43.057:2534) : arch=x86_64 syscall=kill success=yes exit=0 a0=0x4440 a1=SIGTERM …
//! ```
//!
//! Events are separated by `----` lines and their records come in reverse
//! order. ausearch has already resolved numbers into names: `arch=x86_64`,
//! `syscall=kill`, the signal argument as `SIGTERM` (but not for every
//! syscall: `pidfd_send_signal` keeps `a1=0xf`), `exit=ESRCH(No such
//! process)`, users as names. Strings are printed decoded and unquoted, so
//! a value runs until the next word that looks like `key=`; control bytes
//! are escaped as `\ooo` octal. Times are the local time of the machine
//! that ran ausearch, to the millisecond, with a two-digit year.
//!
//! What ausearch threw away cannot be recovered: argument boundaries in
//! the proctitle ([`Proctitle::Joined`]) and the numbers behind user names
//! other than `root`.

use std::collections::VecDeque;

use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};

use super::Filter;
use super::event::{
    Arch, AuditProcess, AuditSignal, AuditTarget, AuditUser, Decoded, ParseStats, Pending,
    Proctitle, SignalSyscall, SyscallPart,
};
use super::record::{
    RecordKind, dec_i64, dec_pid, dec_u64, find, fraction_nanos, hex_u64, key_text, path_from,
    required_args, split_header,
};
use crate::event::Signal;

/// The time zone ausearch printed times in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Timezone {
    /// This machine's: right when the text was made here.
    #[default]
    Local,
    Fixed(FixedOffset),
}

impl Timezone {
    pub fn utc() -> Timezone {
        Timezone::Fixed(Utc.fix())
    }

    fn to_utc(self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        // In the hour a DST change repeats, the earlier reading wins.
        match self {
            Timezone::Local => Local
                .from_local_datetime(&local)
                .earliest()
                .map(|t| t.to_utc()),
            Timezone::Fixed(tz) => tz
                .from_local_datetime(&local)
                .earliest()
                .map(|t| t.to_utc()),
        }
    }
}

/// Parses `MM/DD/YY HH:MM:SS.mmm:SERIAL` (a four-digit year is accepted
/// too).
pub fn parse_stamp(stamp: &[u8], tz: Timezone) -> Option<(DateTime<Utc>, u64)> {
    let colon = stamp.iter().rposition(|&b| b == b':')?;
    let serial = dec_u64(&stamp[colon + 1..])?;
    let text = std::str::from_utf8(&stamp[..colon]).ok()?;
    let (date, time) = text.split_once(' ')?;
    let mut d = date.split('/');
    let month = d.next()?.parse().ok()?;
    let day = d.next()?.parse().ok()?;
    let year_text = d.next()?;
    let year: i32 = year_text.parse().ok()?;
    // strptime's `%y`: 69-99 are the 1900s.
    let year = match (year_text.len(), year) {
        (2, 69..) => 1900 + year,
        (2, _) => 2000 + year,
        _ => year,
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':');
    let hour = t.next()?.parse().ok()?;
    let min = t.next()?.parse().ok()?;
    let sec = t.next()?.parse().ok()?;
    if d.next().is_some() || t.next().is_some() {
        return None;
    }
    let nanos = fraction_nanos(frac.as_bytes())?;
    let local =
        NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(hour, min, sec, nanos)?;
    Some((tz.to_utc(local)?, serial))
}

/// The fields of an interpreted record. A value ends where a word that
/// looks like `key=` starts, since values such as `exit=ESRCH(No such
/// process)` or a `comm` contain spaces.
pub fn fields(body: &[u8]) -> InterpretedFields<'_> {
    InterpretedFields { rest: body }
}

pub struct InterpretedFields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for InterpretedFields<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let start = self.rest.iter().position(|&b| b != b' ')?;
            let rest = &self.rest[start..];
            let word_end = find(rest, b' ').unwrap_or(rest.len());
            let Some(eq) = find(&rest[..word_end], b'=') else {
                self.rest = &rest[word_end..];
                continue;
            };
            // The value runs to the space before the next `key=` word.
            let mut end = word_end;
            while end < rest.len() && !starts_field(&rest[end + 1..]) {
                end = find(&rest[end + 1..], b' ').map_or(rest.len(), |i| end + 1 + i);
            }
            self.rest = &rest[end..];
            return Some((&rest[..eq], &rest[eq + 1..end]));
        }
    }
}

/// Whether `s` begins with `key=`, a key being letters, digits, `_`, `-`.
fn starts_field(s: &[u8]) -> bool {
    let key = s
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-')
        .count();
    key > 0 && s.get(key) == Some(&b'=')
}

/// Undoes ausearch's `\ooo` escapes and the quotes some versions put
/// around strings.
pub fn unescape(value: &[u8]) -> Vec<u8> {
    let value = match value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
    {
        Some(inner) => inner,
        None => value,
    };
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let octal = value.get(i + 1..i + 4).filter(|d| {
            value[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)) && d[0] <= b'3'
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') << 6 | (d[1] - b'0') << 3 | (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(value[i]);
                i += 1;
            }
        }
    }
    out
}

/// `unset`, a number, `unknown(N)`, or a name (`root` is always 0).
fn user(value: &[u8]) -> AuditUser {
    if value == b"unset" || value == b"-1" || value == b"4294967295" {
        return AuditUser::default();
    }
    if let Some(n) = dec_u64(value).and_then(|n| u32::try_from(n).ok()) {
        return AuditUser {
            id: Some(n),
            name: None,
        };
    }
    if let Some(n) = value
        .strip_prefix(b"unknown(")
        .and_then(|v| v.strip_suffix(b")"))
        .and_then(dec_u64)
    {
        return AuditUser {
            id: u32::try_from(n).ok(),
            name: None,
        };
    }
    let name = String::from_utf8_lossy(&unescape(value)).into_owned();
    AuditUser {
        id: (name == "root").then_some(0),
        name: Some(name),
    }
}

fn session(value: &[u8]) -> Option<u32> {
    match value {
        b"unset" => None,
        v => match dec_i64(v)? {
            -1 | 4_294_967_295 => None,
            n => u32::try_from(n).ok(),
        },
    }
}

/// `0x4440`, bare hex, or a signal name (`SIGTERM`, `SIG0`, `SIG40`).
fn argument(value: &[u8]) -> Option<u64> {
    if let Some(hex) = value.strip_prefix(b"0x") {
        return hex_u64(hex);
    }
    if let Some(n) = value.strip_prefix(b"SIG").and_then(dec_u64) {
        return Some(n);
    }
    if value.starts_with(b"SIG") {
        let sig = Signal::parse(std::str::from_utf8(value).ok()?)?;
        return u64::try_from(sig.0).ok();
    }
    hex_u64(value)
}

/// `0`, `-3`, or `ESRCH(No such process)`: the errno names a signal
/// syscall can return.
fn exit_code(value: &[u8]) -> Option<i64> {
    if let Some(n) = dec_i64(value) {
        return Some(n);
    }
    let name = &value[..find(value, b'(').unwrap_or(value.len())];
    let errno = match name {
        b"EPERM" => libc::EPERM,
        b"ENOENT" => libc::ENOENT,
        b"ESRCH" => libc::ESRCH,
        b"EINTR" => libc::EINTR,
        b"EBADF" => libc::EBADF,
        b"EAGAIN" => libc::EAGAIN,
        b"ENOMEM" => libc::ENOMEM,
        b"EACCES" => libc::EACCES,
        b"EFAULT" => libc::EFAULT,
        b"EINVAL" => libc::EINVAL,
        b"ENOSYS" => libc::ENOSYS,
        _ => return None,
    };
    Some(-i64::from(errno))
}

fn arch(value: &[u8]) -> Option<Arch> {
    let name = std::str::from_utf8(value).ok()?;
    Arch::from_name(name).or_else(|| {
        hex_u64(value)
            .and_then(|c| u32::try_from(c).ok())
            .map(Arch::from_audit)
    })
}

pub(crate) fn decode_syscall(body: &[u8]) -> Decoded<SyscallPart> {
    let mut arch_field = None;
    let mut syscall_text = None;
    let mut success = None;
    let mut exit = None;
    let mut args = [None; 4];
    let mut sender = AuditProcess::default();
    let mut pid = None;
    let mut key = None;
    for (k, v) in fields(body) {
        match k {
            b"arch" => arch_field = Some(v),
            b"syscall" => syscall_text = Some(v),
            b"success" => success = Some(v == b"yes"),
            b"exit" => exit = exit_code(v),
            b"a0" => args[0] = argument(v),
            b"a1" => args[1] = argument(v),
            b"a2" => args[2] = argument(v),
            b"a3" => args[3] = argument(v),
            b"ppid" => sender.ppid = dec_pid(v),
            b"pid" => pid = dec_pid(v),
            b"auid" => sender.auid = user(v),
            b"uid" => sender.uid = user(v),
            b"ses" => sender.ses = session(v),
            b"comm" => sender.comm = unescape(v),
            b"exe" => sender.exe = Some(path_from(unescape(v))),
            b"key" if v != b"(null)" => key = Some(key_text(&unescape(v))),
            _ => {}
        }
    }
    let arch = arch_field.and_then(arch).unwrap_or(Arch::Other(0));
    let Some(text) = syscall_text else {
        return Decoded::Garbage;
    };
    let syscall = std::str::from_utf8(text)
        .ok()
        .and_then(SignalSyscall::from_name)
        .or_else(|| {
            let nr = u32::try_from(dec_u64(text)?).ok()?;
            SignalSyscall::from_number(arch, nr)
        });
    let Some(syscall) = syscall else {
        return Decoded::NotSignal;
    };
    let (Some(pid), Some(args)) = (pid, required_args(syscall, args)) else {
        return Decoded::Garbage;
    };
    sender.pid = pid;
    Decoded::Signal(SyscallPart {
        arch,
        syscall,
        success: success.unwrap_or(exit.is_some_and(|e| e >= 0)),
        exit,
        args,
        sender,
        key,
    })
}

pub(crate) fn decode_obj_pid(body: &[u8]) -> Option<AuditTarget> {
    let mut target = AuditTarget::default();
    let mut pid = None;
    for (k, v) in fields(body) {
        match k {
            b"opid" => pid = dec_pid(v),
            b"oauid" => target.auid = user(v),
            b"ouid" => target.uid = user(v),
            b"oses" => target.ses = session(v),
            b"ocomm" => target.comm = unescape(v),
            _ => {}
        }
    }
    target.pid = pid?;
    Some(target)
}

/// The whole rest of the record: a command line may contain anything,
/// `key=` words included.
pub(crate) fn decode_proctitle(body: &[u8]) -> Option<Proctitle> {
    let value = body.strip_prefix(b"proctitle=")?;
    Some(match value {
        b"(null)" => Proctitle::Missing,
        v => Proctitle::Joined(unescape(v)),
    })
}

/// Groups `ausearch -i` text into signal events.
#[derive(Debug, Default)]
pub struct InterpretedParser {
    tz: Timezone,
    filter: Filter,
    current: Option<Pending>,
    stats: ParseStats,
}

impl InterpretedParser {
    pub fn new(tz: Timezone) -> InterpretedParser {
        InterpretedParser {
            tz,
            ..InterpretedParser::default()
        }
    }

    /// Keeps only the events `filter` keeps.
    pub fn with_filter(mut self, filter: Filter) -> InterpretedParser {
        self.filter = filter;
        self
    }

    pub fn stats(&self) -> ParseStats {
        self.stats
    }

    /// Reads one line; completed events are appended to `out`.
    pub fn push_line(&mut self, line: &[u8], out: &mut VecDeque<AuditSignal>) {
        self.stats.lines += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if line.starts_with(b"----") {
            self.finish(out);
            return;
        }
        let header = split_header(line);
        let stamp = header.and_then(|h| parse_stamp(h.stamp, self.tz));
        let (Some(header), Some((time, serial))) = (header, stamp) else {
            self.stats.garbage += 1;
            return;
        };
        self.stats.records += 1;
        let node = header.node;
        if !self
            .current
            .as_ref()
            .is_some_and(|p| p.is(node, time, serial))
        {
            // Without a `----` between them: ausearch run with another
            // output option, or lines cut out by hand.
            self.finish(out);
            let node = node.map(|n| String::from_utf8_lossy(n).into_owned());
            self.current = Some(Pending::new(node, time, serial));
        }
        let Some(pending) = self.current.as_mut() else {
            return;
        };
        match header.kind {
            RecordKind::Syscall => {
                pending.add_syscall(decode_syscall(header.body), &mut self.stats)
            }
            RecordKind::ObjPid if !pending.ignored => match decode_obj_pid(header.body) {
                Some(target) => pending.targets.push(target),
                None => self.stats.garbage += 1,
            },
            RecordKind::Proctitle if !pending.ignored => match decode_proctitle(header.body) {
                Some(title) => pending.proctitle = title,
                None => self.stats.garbage += 1,
            },
            _ => {}
        }
    }

    /// Completes the event being read: the input has ended.
    pub fn finish(&mut self, out: &mut VecDeque<AuditSignal>) {
        if let Some(signal) = self
            .current
            .take()
            .and_then(|pending| pending.finish(&self.filter, &mut self.stats))
        {
            out.push_back(signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::TargetArg;
    use crate::model::{Pgid, Pid};

    fn parse(text: &str) -> (Vec<AuditSignal>, ParseStats) {
        let mut p = InterpretedParser::new(Timezone::utc());
        let mut out = VecDeque::new();
        for line in text.lines() {
            p.push_line(line.as_bytes(), &mut out);
        }
        p.finish(&mut out);
        (out.into(), p.stats())
    }

    #[test]
    fn stamps() {
        let (t, serial) = parse_stamp(b"11/21/26 08:19:43.057:2534", Timezone::utc()).expect("ok");
        assert_eq!(serial, 2534);
        assert_eq!(t.timestamp(), 1_795_249_183);
        assert_eq!(t.timestamp_subsec_millis(), 57);
        let plus2 = Timezone::Fixed(FixedOffset::east_opt(7200).expect("valid"));
        let (t2, _) = parse_stamp(b"11/21/2026 10:19:43.057:2534", plus2).expect("ok");
        assert_eq!(t2, t);
        assert_eq!(
            parse_stamp(b"13/21/26 08:19:43.057:1", Timezone::utc()),
            None
        );
        assert_eq!(parse_stamp(b"11/21/26:1", Timezone::utc()), None);
        assert_eq!(parse_stamp(b"1795249183.057:1", Timezone::utc()), None);
    }

    #[test]
    fn values_with_spaces() {
        let f: Vec<(&[u8], &[u8])> =
            fields(b"success=no exit=ESRCH(No such process) a0=0x3ffed0 comm=my prog exe=/x")
                .collect();
        assert_eq!(
            f,
            vec![
                (&b"success"[..], &b"no"[..]),
                (b"exit", b"ESRCH(No such process)"),
                (b"a0", b"0x3ffed0"),
                (b"comm", b"my prog"),
                (b"exe", b"/x"),
            ]
        );
        assert_eq!(exit_code(b"ESRCH(No such process)"), Some(-3));
        assert_eq!(exit_code(b"-1"), Some(-1));
        assert_eq!(exit_code(b"EWHAT(?)"), None);
        assert_eq!(argument(b"SIGTERM"), Some(15));
        assert_eq!(argument(b"SIG0"), Some(0));
        assert_eq!(argument(b"SIG40"), Some(40));
        assert_eq!(argument(b"0xf"), Some(15));
        assert_eq!(argument(b"SIGNOPE"), None);
        assert_eq!(unescape(b"a\\012b\\\\c\\9"), b"a\nb\\\\c\\9");
        assert_eq!(
            user(b"root"),
            AuditUser {
                id: Some(0),
                name: Some("root".into())
            }
        );
        assert_eq!(user(b"unknown(1234)").id, Some(1234));
        assert!(user(b"unset").is_unset());
    }

    #[test]
    fn one_group_kill() {
        let text = "\
----
type=PROCTITLE msg=audit(11/21/26 08:19:43.585:2535) : proctitle=/bin/bash ./gen_cases.sh 
type=OBJ_PID msg=audit(11/21/26 08:19:43.585:2535) : opid=17503 oauid=unset ouid=root oses=-1 ocomm=sleep 
type=OBJ_PID msg=audit(11/21/26 08:19:43.585:2535) : opid=17500 oauid=unset ouid=root oses=-1 ocomm=sh 
type=SYSCALL msg=audit(11/21/26 08:19:43.585:2535) : arch=x86_64 syscall=kill success=yes exit=0 a0=0xffffbba4 a1=SIGTERM a2=0x55d54af35fb0 a3=0x55d54af1af30 items=0 ppid=17469 pid=17470 auid=unset uid=root gid=root euid=root suid=root fsuid=root egid=root sgid=root fsgid=root tty=(none) ses=unset comm=gen_cases.sh exe=/usr/bin/bash key=ptree_sig 
----
type=PROCTITLE msg=audit(11/21/26 08:19:47.741:2545) : proctitle=/usr/bin/python3 -c \\012import os; x=1 
type=SYSCALL msg=audit(11/21/26 08:19:47.741:2545) : arch=x86_64 syscall=kill success=no exit=ESRCH(No such process) a0=0x3ffed0 a1=SIGTERM a2=0x0 a3=0x7f14e4620ac0 items=0 ppid=17470 pid=17808 auid=unset uid=alice ses=unset comm=my prog exe=/usr/bin/bash key=(null) 
garbage here
";
        let (events, stats) = parse(text);
        assert_eq!(events.len(), 2);
        let e = &events[0];
        assert_eq!(e.target_arg, TargetArg::ProcessGroup(Pgid(17500)));
        assert_eq!(e.signal, Signal::TERM);
        assert_eq!(e.sender.pid, Pid(17470));
        assert_eq!(e.sender.uid.id, Some(0));
        assert_eq!(e.targets.len(), 2);
        assert_eq!(e.key.as_deref(), Some("ptree_sig"));
        assert_eq!(e.sender.proctitle.display(), "/bin/bash ./gen_cases.sh");
        let failed = &events[1];
        assert!(!failed.success);
        assert_eq!(failed.exit, Some(-3));
        assert_eq!(failed.sender.comm, b"my prog");
        assert_eq!(
            failed.sender.uid,
            AuditUser {
                id: None,
                name: Some("alice".into())
            }
        );
        assert_eq!(failed.key, None);
        assert_eq!(
            failed.sender.proctitle,
            Proctitle::Joined(b"/usr/bin/python3 -c \nimport os; x=1".to_vec())
        );
        assert_eq!(stats.garbage, 1);
        assert_eq!(stats.events, 2);
    }
}
