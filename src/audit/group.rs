//! Raw log lines → events, streaming.
//!
//! The kernel writes one event as several records sharing one stamp
//! `audit(SECONDS.MILLIS:SERIAL)`: for a signal syscall, SYSCALL, one
//! OBJ_PID per process signalled, then PROCTITLE. auditd does not write the
//! EOE record that ends an event on netlink, and records of events from
//! different CPUs may interleave. So a few events are kept open at once,
//! keyed by stamp, and one is complete when
//!
//! - its PROCTITLE (or an EOE) arrives: the kernel writes it last;
//! - a record more than [`STALE_MS`] newer arrives: nothing of it is
//!   still in flight;
//! - more than [`WINDOW`] events are open: the oldest is given up on;
//! - the input ends ([`RawParser::finish`]).
//!
//! Events therefore come out in the order they complete, which is log
//! order unless records interleave; sort by `(time, serial)` when order
//! matters.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use super::Filter;
use super::event::{AuditSignal, Decoded, ParseStats, Pending, TargetArg};
use super::record::{
    Head, RecordKind, decode_head, decode_obj_pid, decode_opid, decode_proctitle, decode_syscall,
    parse_stamp, split_header,
};
use crate::model::Pid;

/// How many events may be open at once.
pub const WINDOW: usize = 32;

/// An open event older than the newest record by this much is complete.
pub const STALE_MS: i64 = 2_000;

/// Groups raw (or ENRICHED) audit log lines into signal events.
///
/// Records are decoded in two steps: what routing needs (the syscall, its
/// arguments, the OBJ_PID pids) as they arrive, everything else only for
/// events the filter keeps. A scan for one pid in a large log thus reads
/// most records once, briefly; the records of events it skips are not
/// checked further, and their garbage is not counted.
#[derive(Debug, Default)]
pub struct RawParser {
    filter: Filter,
    /// Open events, oldest first.
    open: VecDeque<RawPending>,
    /// The last stamp as written and as read: an event's records follow
    /// one another, so most lines reuse it.
    last_text: Vec<u8>,
    last: Option<(DateTime<Utc>, u64)>,
    /// Buffers of finished events, for the next ones.
    spare: Vec<Vec<u8>>,
    stats: ParseStats,
}

/// An open event of the raw log.
#[derive(Debug)]
struct RawPending {
    node: Option<String>,
    time: DateTime<Utc>,
    serial: u64,
    /// Another syscall, or a broken SYSCALL record: the event's other
    /// records are dropped unread.
    ignored: bool,
    head: Option<Head>,
    opids: Vec<Pid>,
    /// The event's SYSCALL, OBJ_PID and PROCTITLE records as read, each a
    /// kind byte, the body, `0x1d` and the enriched part if any, `\n`.
    records: Vec<u8>,
}

const SYSCALL: u8 = b'S';
const OBJ_PID: u8 = b'O';
const PROCTITLE: u8 = b'P';

impl RawPending {
    fn is(&self, node: Option<&[u8]>, time: DateTime<Utc>, serial: u64) -> bool {
        self.serial == serial
            && self.time == time
            && self.node.as_deref().map(str::as_bytes) == node
    }

    fn keep(&mut self, kind: u8, body: &[u8], enriched: Option<&[u8]>) {
        self.records.push(kind);
        self.records.extend_from_slice(body);
        if let Some(enriched) = enriched {
            self.records.push(0x1d);
            self.records.extend_from_slice(enriched);
        }
        self.records.push(b'\n');
    }

    fn ignore(&mut self) {
        self.ignored = true;
        self.head = None;
        self.opids.clear();
        self.records.clear();
    }

    /// The event, decoded in full if `filter` keeps it.
    fn finish(&self, filter: &Filter, stats: &mut ParseStats) -> Option<AuditSignal> {
        if self.ignored {
            return None;
        }
        let Some(head) = self.head else {
            stats.incomplete += 1;
            return None;
        };
        let target_arg = TargetArg::decode(head.syscall, &head.args);
        if !filter.keeps(self.time, target_arg, self.opids.iter().copied()) {
            stats.events += 1;
            return None;
        }
        let mut event = Pending::new(self.node.clone(), self.time, self.serial);
        for record in self.records.split(|&b| b == b'\n') {
            let Some((&kind, rest)) = record.split_first() else {
                continue;
            };
            let (body, enriched) = match rest.iter().position(|&b| b == 0x1d) {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            match kind {
                SYSCALL => event.add_syscall(decode_syscall(body, enriched), stats),
                OBJ_PID => event.targets.extend(decode_obj_pid(body, enriched)),
                _ => match decode_proctitle(body) {
                    Some(title) => event.proctitle = title,
                    None => stats.garbage += 1,
                },
            }
        }
        event.finish(filter, stats)
    }
}

impl RawParser {
    pub fn new() -> RawParser {
        RawParser::default()
    }

    /// Keeps only the events `filter` keeps, and decodes only those in
    /// full.
    pub fn with_filter(mut self, filter: Filter) -> RawParser {
        self.filter = filter;
        self
    }

    pub fn stats(&self) -> ParseStats {
        self.stats
    }

    /// Reads one line (with or without its newline); completed events are
    /// appended to `out`.
    pub fn push_line(&mut self, line: &[u8], out: &mut VecDeque<AuditSignal>) {
        self.stats.lines += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let Some(header) = split_header(line) else {
            self.stats.garbage += 1;
            return;
        };
        let stamp = match self.last {
            Some(last) if self.last_text == header.stamp => last,
            _ => {
                let Some(stamp) = parse_stamp(header.stamp) else {
                    self.stats.garbage += 1;
                    return;
                };
                self.last_text.clear();
                self.last_text.extend_from_slice(header.stamp);
                self.last = Some(stamp);
                self.expire(stamp.0, out);
                stamp
            }
        };
        let (time, serial) = stamp;
        self.stats.records += 1;
        let node = header.node;
        let found = self.open.iter().position(|p| p.is(node, time, serial));
        match header.kind {
            RecordKind::Syscall => {
                let i = self.open_event(found, node, time, serial, out);
                let event = &mut self.open[i];
                if event.ignored {
                    return;
                }
                match decode_head(header.body) {
                    Decoded::Signal(head) if event.head.is_none() => {
                        event.head = Some(head);
                        event.keep(SYSCALL, header.body, header.enriched);
                    }
                    Decoded::NotSignal => event.ignore(),
                    Decoded::Signal(_) | Decoded::Garbage => {
                        self.stats.garbage += 1;
                        event.ignore();
                    }
                }
            }
            RecordKind::ObjPid => {
                let i = self.open_event(found, node, time, serial, out);
                let event = &mut self.open[i];
                if event.ignored {
                    return;
                }
                match decode_opid(header.body) {
                    Some(pid) => {
                        event.opids.push(pid);
                        event.keep(OBJ_PID, header.body, header.enriched);
                    }
                    None => self.stats.garbage += 1,
                }
            }
            RecordKind::Proctitle => {
                // Without an open event this ends one ptree does not track.
                let Some(i) = found else { return };
                if !self.open[i].ignored {
                    self.open[i].keep(PROCTITLE, header.body, None);
                }
                self.complete(i, out);
            }
            RecordKind::Eoe => {
                if let Some(i) = found {
                    self.complete(i, out);
                }
            }
            // Single-record events and the records (CWD, PATH…) of other
            // syscalls.
            RecordKind::Other => {}
        }
    }

    /// Completes every open event: the input has ended.
    pub fn finish(&mut self, out: &mut VecDeque<AuditSignal>) {
        while !self.open.is_empty() {
            self.complete(0, out);
        }
        self.last = None;
    }

    fn open_event(
        &mut self,
        found: Option<usize>,
        node: Option<&[u8]>,
        time: DateTime<Utc>,
        serial: u64,
        out: &mut VecDeque<AuditSignal>,
    ) -> usize {
        if let Some(i) = found {
            return i;
        }
        if self.open.len() >= WINDOW {
            self.complete(0, out);
        }
        self.open.push_back(RawPending {
            node: node.map(|n| String::from_utf8_lossy(n).into_owned()),
            time,
            serial,
            ignored: false,
            head: None,
            opids: Vec::new(),
            records: self.spare.pop().unwrap_or_default(),
        });
        self.open.len() - 1
    }

    fn expire(&mut self, now: DateTime<Utc>, out: &mut VecDeque<AuditSignal>) {
        let mut i = 0;
        while i < self.open.len() {
            if (now - self.open[i].time).num_milliseconds() > STALE_MS {
                self.complete(i, out);
            } else {
                i += 1;
            }
        }
    }

    fn complete(&mut self, i: usize, out: &mut VecDeque<AuditSignal>) {
        let Some(mut pending) = self.open.remove(i) else {
            return;
        };
        if let Some(signal) = pending.finish(&self.filter, &mut self.stats) {
            out.push_back(signal);
        }
        pending.records.clear();
        if self.spare.len() < WINDOW {
            self.spare.push(pending.records);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::{SignalSyscall, TargetArg};
    use crate::model::{Pgid, Pid};

    fn parse(text: &str) -> (Vec<AuditSignal>, ParseStats) {
        let mut p = RawParser::new();
        let mut out = VecDeque::new();
        for line in text.lines() {
            p.push_line(line.as_bytes(), &mut out);
        }
        p.finish(&mut out);
        (out.into(), p.stats())
    }

    const GROUP_KILL: &str = "\
type=SYSCALL msg=audit(1795249183.585:2535): arch=c000003e syscall=62 success=yes exit=0 a0=ffffbba4 a1=f a2=0 a3=0 items=0 ppid=17469 pid=17470 auid=4294967295 uid=0 ses=4294967295 comm=\"gen_cases.sh\" exe=\"/usr/bin/bash\" key=\"ptree_sig\"
type=OBJ_PID msg=audit(1795249183.585:2535): opid=17502 oauid=-1 ouid=0 oses=-1 ocomm=\"sleep\"
type=OBJ_PID msg=audit(1795249183.585:2535): opid=17500 oauid=-1 ouid=0 oses=-1 ocomm=\"sh\"
type=PROCTITLE msg=audit(1795249183.585:2535): proctitle=2F62696E2F62617368002E2F67656E5F63617365732E7368
";

    #[test]
    fn groups_one_event() {
        let (events, stats) = parse(GROUP_KILL);
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.serial, 2535);
        assert_eq!(e.syscall, SignalSyscall::Kill);
        assert_eq!(e.target_arg, TargetArg::ProcessGroup(Pgid(17500)));
        let pids: Vec<Pid> = e.targets.iter().map(|t| t.pid).collect();
        assert_eq!(pids, vec![Pid(17502), Pid(17500)]);
        assert_eq!(e.sender.proctitle.display(), "/bin/bash ./gen_cases.sh");
        assert_eq!(
            stats,
            ParseStats {
                lines: 4,
                records: 4,
                events: 1,
                garbage: 0,
                incomplete: 0
            }
        );
    }

    #[test]
    fn interleaved_events_and_garbage() {
        let text = "\
type=SYSCALL msg=audit(10.000:1): arch=c000003e syscall=62 success=yes exit=0 a0=64 a1=f a2=0 a3=0 pid=5 comm=\"a\"
type=SYSCALL msg=audit(10.001:2): arch=c000003e syscall=62 success=no exit=-1 a0=65 a1=9 a2=0 a3=0 pid=6 comm=\"b\"
not an audit line at all
type=OBJ_PID msg=audit(10.000:1): opid=100 ocomm=\"x\"
type=SYSCALL msg=audit(10.002:3): arch=c000003e syscall=59 success=yes exit=0 a0=0 a1=0 a2=0 a3=0 pid=7 comm=\"sh\"
type=EXECVE msg=audit(10.002:3): argc=1 a0=\"sh\"
type=OBJ_PID msg=audit(10.002:3): opid=1 ocomm=\"init\"
type=PROCTITLE msg=audit(10.002:3): proctitle=\"sh\"
type=PROCTITLE msg=audit(10.000:1): proctitle=\"a\"
type=OBJ_PID msg=audit(10.000:1): opid=broken
";
        let (events, stats) = parse(text);
        // Event 1 completes at its PROCTITLE, event 2 at the end; the late
        // OBJ_PID of event 1 opens an event without SYSCALL.
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].serial, 1);
        assert_eq!(events[0].targets.len(), 1);
        assert_eq!(events[1].serial, 2);
        assert!(!events[1].success);
        assert!(events[1].targets.is_empty());
        assert_eq!(stats.garbage, 2);
        assert_eq!(stats.incomplete, 1);
        assert_eq!(stats.events, 2);
        assert_eq!(stats.lines, 10);
    }

    #[test]
    fn stale_events_complete_without_proctitle() {
        let mut p = RawParser::new();
        let mut out = VecDeque::new();
        p.push_line(
            b"type=SYSCALL msg=audit(10.000:1): arch=c000003e syscall=62 success=yes exit=0 a0=64 a1=f a2=0 a3=0 pid=5",
            &mut out,
        );
        p.push_line(b"type=LOGIN msg=audit(11.000:2): pid=1", &mut out);
        assert!(out.is_empty(), "still within the window");
        p.push_line(b"type=LOGIN msg=audit(12.001:3): pid=1", &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn window_is_bounded() {
        let mut p = RawParser::new();
        let mut out = VecDeque::new();
        for serial in 0..(WINDOW as u64 + 5) {
            let line = format!(
                "type=SYSCALL msg=audit(10.000:{serial}): arch=c000003e syscall=62 success=yes exit=0 a0=64 a1=f a2=0 a3=0 pid=5"
            );
            p.push_line(line.as_bytes(), &mut out);
        }
        assert_eq!(out.len(), 5);
        assert_eq!(out[0].serial, 0);
        p.finish(&mut out);
        assert_eq!(out.len(), WINDOW + 5);
    }

    #[test]
    fn filtered_events_are_counted_not_decoded() {
        let mut p = RawParser::new().with_filter(Filter {
            target: Some(Pid(17500)),
            ..Filter::default()
        });
        let mut out = VecDeque::new();
        let other = "\
type=SYSCALL msg=audit(10.000:1): arch=c000003e syscall=62 success=yes exit=0 a0=64 a1=f a2=0 a3=0 pid=BROKEN
type=OBJ_PID msg=audit(10.000:1): opid=100 ocomm=\"x\"
type=PROCTITLE msg=audit(10.000:1): proctitle=\"a\"
";
        for line in GROUP_KILL.lines().chain(other.lines()) {
            p.push_line(line.as_bytes(), &mut out);
        }
        p.finish(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].serial, 2535);
        assert_eq!(out[0].targets.len(), 2);
        // The other event was skipped before its `pid=` was read.
        assert_eq!(p.stats().events, 2);
        assert_eq!(p.stats().garbage, 0);
    }

    #[test]
    fn same_serial_on_two_nodes() {
        let text = "\
node=a type=SYSCALL msg=audit(10.000:1): arch=c000003e syscall=62 success=yes exit=0 a0=64 a1=f a2=0 a3=0 pid=5
node=b type=SYSCALL msg=audit(10.000:1): arch=c000003e syscall=62 success=yes exit=0 a0=64 a1=9 a2=0 a3=0 pid=6
node=b type=OBJ_PID msg=audit(10.000:1): opid=100
node=a type=OBJ_PID msg=audit(10.000:1): opid=200
";
        let (events, _) = parse(text);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].node.as_deref(), Some("a"));
        assert_eq!(events[0].targets[0].pid, Pid(200));
        assert_eq!(events[1].targets[0].pid, Pid(100));
    }
}
