//! Parsing of tracefs `trace_pipe` text into [`RawEvent`]s, without I/O.
//!
//! A line looks like
//!
//! ```text
//!        my task-9-21201   (  21201) [001] d..1.   537.908343: signal_generate: sig=15 errno=0 code=0 comm=sleep pid=21200 grp=1 res=0
//! ```
//!
//! that is `TASK-TID (TGID) [CPU] FLAGS TIMESTAMP: EVENT: FIELDS`, where
//! the `(TGID)` column exists only with `options/record-tgid` and reads
//! `(-------)` when the kernel no longer knows the thread's group. The
//! task comm may contain spaces and dashes, so the header is found from the
//! `[CPU]` column and the TID is what follows the *last* dash before it.
//!
//! The header's TASK is printed from the kernel's comm cache at read time,
//! not recorded with the event: it may be `<...>` (evicted) or stale (a
//! comm changed by exec). Field values (`comm=` and friends) are recorded
//! with the event and are authoritative.
//!
//! Timestamps are in the instance's trace clock; [`ClockOffset`] turns them
//! into wall-clock time.

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};

use crate::event::{Delivery, RawEvent, RawSignal, SigCode, Signal, Via};
use crate::model::{Pid, Tid};

/// A timestamp of the trace clock, in nanoseconds since that clock's zero
/// (boot, for both `boot` and `mono`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TraceTime(pub u64);

impl TraceTime {
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

/// The trace clocks whose values can be related to wall-clock time: both
/// are clocks userspace can read with `clock_gettime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceClock {
    /// `CLOCK_BOOTTIME`: keeps counting through suspend, so its distance to
    /// `CLOCK_REALTIME` stays fixed after a resume. Preferred.
    Boot,
    /// `CLOCK_MONOTONIC`: stops during suspend; the offset measured at
    /// start drifts by the time spent suspended. Fallback for kernels
    /// without the `boot` trace clock (before 4.10).
    Mono,
}

impl TraceClock {
    /// The name written to `trace_clock`.
    pub fn name(self) -> &'static str {
        match self {
            TraceClock::Boot => "boot",
            TraceClock::Mono => "mono",
        }
    }
}

/// Converts trace-clock timestamps to UTC: `realtime - traceclock`,
/// measured once when tracing starts.
///
/// A later `settimeofday` or NTP step moves wall-clock time but not the
/// trace clock, so events after a step are off by the step; watching
/// sessions are short enough for this not to matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockOffset {
    pub clock: TraceClock,
    /// Nanoseconds to add to a trace timestamp to get nanoseconds since the
    /// Unix epoch.
    pub offset_ns: i128,
}

impl ClockOffset {
    /// From simultaneous readings of the wall clock (ns since the epoch) and
    /// the trace clock.
    pub fn from_readings(clock: TraceClock, realtime_ns: i128, trace_ns: i128) -> ClockOffset {
        ClockOffset {
            clock,
            offset_ns: realtime_ns - trace_ns,
        }
    }

    pub fn to_utc(&self, t: TraceTime) -> DateTime<Utc> {
        let ns = i128::from(t.0) + self.offset_ns;
        let clamped = ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        Utc.timestamp_nanos(clamped)
    }
}

/// The task that was current when the event fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// `None` for `<...>`: the comm cache no longer had it.
    pub comm: Option<String>,
    pub tid: Tid,
    /// From the `(TGID)` column; `None` without record-tgid or `(-------)`.
    pub tgid: Option<Pid>,
}

/// Whether the event fired in task context or while an interrupt borrowed
/// whatever task was running (the third FLAGS character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Task,
    /// Hard or soft IRQ or NMI: the prefix task did not cause the event.
    Interrupt,
}

/// One parsed event line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine {
    pub task: Task,
    pub cpu: u32,
    pub context: Context,
    pub time: TraceTime,
    pub record: Record,
}

/// The events ptree enables, with their fields as the kernel formats them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The prefix task is the sender thread; `target_*` the receiver.
    SignalGenerate {
        signal: Signal,
        errno: i32,
        code: i32,
        target_comm: String,
        target_tid: Tid,
        group: bool,
        res: i32,
    },
    /// The prefix task is the thread taking the signal.
    SignalDeliver {
        signal: Signal,
        errno: i32,
        code: i32,
        sa_handler: u64,
        sa_flags: u64,
    },
    /// Fired in the parent; ids are thread ids.
    Fork {
        parent_comm: String,
        parent_tid: Tid,
        child_comm: String,
        child_tid: Tid,
    },
    /// `tid` is the thread after exec (the group leader), `old_tid` the one
    /// that called execve (differs when a non-leader thread execs).
    Exec {
        filename: String,
        tid: Tid,
        old_tid: Tid,
    },
    Exit {
        comm: String,
        tid: Tid,
        prio: i32,
        /// Last thread of its group (kernels from 6.9 print it).
        group_dead: Option<bool>,
    },
}

/// A line of `trace_pipe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Event(TraceLine),
    /// `CPU:1 [LOST 42 EVENTS]`: printed by the kernel when the reader fell
    /// behind and the ring buffer was overwritten.
    Lost {
        cpu: u32,
        count: u64,
    },
}

/// Why a line did not parse; never fatal for a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Empty, or a `#` comment (the `trace` file header).
    Blank,
    /// No `TASK-TID [CPU] FLAGS TS: EVENT:` header.
    NoHeader,
    /// An event ptree does not know.
    UnknownEvent(String),
    /// A known event whose fields are not in the expected format.
    BadFields { event: &'static str },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Blank => f.write_str("blank or comment line"),
            ParseError::NoHeader => f.write_str("no trace header"),
            ParseError::UnknownEvent(e) => write!(f, "unknown event {e}"),
            ParseError::BadFields { event } => write!(f, "unexpected {event} fields"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses one line (with or without its newline).
pub fn parse_line(line: &str) -> Result<Line, ParseError> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.trim().is_empty() || line.trim_start().starts_with('#') {
        return Err(ParseError::Blank);
    }
    if let Some(lost) = parse_lost(line) {
        return Ok(lost);
    }
    let (header, event, fields) = split_header(line).ok_or(ParseError::NoHeader)?;
    let record = parse_record(event, fields)?;
    Ok(Line::Event(TraceLine {
        task: header.task,
        cpu: header.cpu,
        context: header.context,
        time: header.time,
        record,
    }))
}

/// Parses one line straight to the event model; `None` for lines that are
/// not one of the model's events (deliveries, garbage, lost markers).
pub fn parse_event(line: &str, clock: &ClockOffset) -> Option<RawEvent> {
    match parse_line(line) {
        Ok(Line::Event(ev)) => ev.to_raw_event(clock),
        _ => None,
    }
}

/// Events a CPU's ring buffer lost, from its `per_cpu/cpuN/stats`:
/// `overrun:` (overwritten before being read) plus `dropped events:`
/// (refused when full, in non-overwrite mode).
pub fn parse_cpu_stats_lost(stats: &str) -> Option<u64> {
    let mut found = false;
    let mut lost = 0u64;
    for line in stats.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key == "overrun" || key == "dropped events" {
            lost = lost.saturating_add(value.trim().parse().ok()?);
            found = true;
        }
    }
    found.then_some(lost)
}

impl TraceLine {
    /// The model event for this line; `None` for `signal_deliver`, which the
    /// model does not carry (generation already says what happened).
    pub fn to_raw_event(&self, clock: &ClockOffset) -> Option<RawEvent> {
        let time = clock.to_utc(self.time);
        // Prefix tgid belongs to the prefix task only.
        let tgid_of = |tid: Tid| self.task.tgid.filter(|_| self.task.tid == tid);
        match &self.record {
            Record::SignalGenerate {
                signal,
                code,
                target_comm,
                target_tid,
                group,
                res,
                ..
            } => {
                // In interrupt context, or from the idle task, the current
                // task is a bystander: the kernel raised the signal.
                let from_task = self.context == Context::Task && self.task.tid.0 != 0;
                Some(RawEvent::Signal(RawSignal {
                    time,
                    signal: *signal,
                    code: SigCode::from_raw(*code),
                    result: Delivery::from_tracefs_res(*res),
                    group: *group,
                    sender_tid: from_task.then_some(self.task.tid),
                    sender_pid: self.task.tgid.filter(|_| from_task),
                    sender_comm: self.task.comm.clone().filter(|_| from_task),
                    target_tid: *target_tid,
                    target_comm: target_comm.clone(),
                    value: None,
                    via: Via::Tracefs,
                }))
            }
            Record::SignalDeliver { .. } => None,
            Record::Fork {
                parent_tid,
                child_comm,
                child_tid,
                ..
            } => Some(RawEvent::Fork {
                time,
                parent_tid: *parent_tid,
                parent_pid: tgid_of(*parent_tid),
                child_tid: *child_tid,
                // Thread or process: the event does not say.
                child_pid: None,
                comm: child_comm.clone(),
            }),
            Record::Exec { filename, tid, .. } => Some(RawEvent::Exec {
                time,
                pid: Pid(tid.0),
                filename: filename.clone(),
                // The prefix comm comes from a cache and may be the old one.
                comm: None,
            }),
            Record::Exit { comm, tid, .. } => Some(RawEvent::Exit {
                time,
                tid: *tid,
                pid: tgid_of(*tid),
                comm: comm.clone(),
                status: None,
            }),
        }
    }
}

struct Header {
    task: Task,
    cpu: u32,
    context: Context,
    time: TraceTime,
}

/// `CPU:1 [LOST 42 EVENTS]`
fn parse_lost(line: &str) -> Option<Line> {
    let rest = line.trim().strip_prefix("CPU:")?;
    let (cpu, rest) = rest.split_once(' ')?;
    let count = rest.strip_prefix("[LOST ")?.strip_suffix(" EVENTS]")?;
    Some(Line::Lost {
        cpu: cpu.parse().ok()?,
        count: count.parse().ok()?,
    })
}

/// Splits off the header, returning it, the event name and the fields.
/// Tries each ` [` in turn: a comm may itself contain one.
fn split_header(line: &str) -> Option<(Header, &str, &str)> {
    let mut from = 0;
    while let Some(pos) = line[from..].find(" [").map(|p| p + from) {
        from = pos + 2;
        if let Some(found) = header_at(line, pos) {
            return Some(found);
        }
    }
    None
}

fn header_at(line: &str, bracket: usize) -> Option<(Header, &str, &str)> {
    // After: `[CPU] FLAGS TS: EVENT: FIELDS`
    let after = &line[bracket + 2..];
    let (cpu, after) = after.split_once("] ")?;
    let cpu = parse_digits::<u32>(cpu)?;
    let after = after.trim_start();
    // FLAGS is absent with `options/irq-info` off.
    let (flags, after) = match after.split_once(": ") {
        Some((ts, _)) if parse_timestamp(ts).is_some() => ("", after),
        _ => after.split_once(' ')?,
    };
    let (ts, after) = after.trim_start().split_once(": ")?;
    let time = parse_timestamp(ts)?;
    let (event, fields) = match after.split_once(": ") {
        Some((e, f)) => (e, f),
        None => (after.strip_suffix(':')?, ""),
    };
    if event.is_empty()
        || !event
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return None;
    }

    // Before: `TASK-TID` or `TASK-TID (TGID)`, right-aligned.
    let mut before = line[..bracket].trim_end();
    let mut tgid = None;
    if let Some(inner) = before.strip_suffix(')') {
        let open = inner.rfind('(')?;
        let value = inner[open + 1..].trim();
        if !value.bytes().all(|b| b == b'-') {
            tgid = Some(Pid(parse_digits(value)?));
        }
        before = inner[..open].trim_end();
    }
    let dash = before.rfind('-')?;
    let tid = Tid(parse_digits(&before[dash + 1..])?);
    let comm = before[..dash].trim_start();
    let comm = (comm != "<...>").then(|| comm.to_string());

    let context = match flags.as_bytes().get(2) {
        Some(b'h' | b'H' | b's' | b'z' | b'Z') => Context::Interrupt,
        _ => Context::Task,
    };
    let header = Header {
        task: Task { comm, tid, tgid },
        cpu,
        context,
        time,
    };
    Some((header, event, fields))
}

/// `1674.080366` (seconds and a fraction of up to 9 digits).
fn parse_timestamp(ts: &str) -> Option<TraceTime> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    let secs: u64 = parse_digits(secs)?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..9 {
        nanos *= 10;
    }
    secs.checked_mul(1_000_000_000)?
        .checked_add(nanos)
        .map(TraceTime)
}

/// Only ASCII digits: `str::parse` would also take a sign.
fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_record(event: &str, fields: &str) -> Result<Record, ParseError> {
    match event {
        "signal_generate" => signal_generate(fields).ok_or(ParseError::BadFields {
            event: "signal_generate",
        }),
        "signal_deliver" => signal_deliver(fields).ok_or(ParseError::BadFields {
            event: "signal_deliver",
        }),
        "sched_process_fork" => fork(fields).ok_or(ParseError::BadFields {
            event: "sched_process_fork",
        }),
        "sched_process_exec" => exec(fields).ok_or(ParseError::BadFields {
            event: "sched_process_exec",
        }),
        "sched_process_exit" => exit(fields).ok_or(ParseError::BadFields {
            event: "sched_process_exit",
        }),
        other => Err(ParseError::UnknownEvent(other.to_string())),
    }
}

/// Splits `k1=v1 k2=v2 …` for exactly these keys in this order. Values
/// may contain spaces (comms, file names), so each key is searched from
/// the right: everything after a key up to the next key is its value.
fn fields<'a, const N: usize>(body: &'a str, keys: [&str; N]) -> Option<[&'a str; N]> {
    let mut values = [""; N];
    let mut rest = body;
    for i in (0..N).rev() {
        let key = keys[i];
        if i == 0 {
            values[0] = rest.strip_prefix(key)?.strip_prefix('=')?;
        } else {
            let needle_at = rfind_key(rest, key)?;
            values[i] = &rest[needle_at + 1 + key.len() + 1..];
            rest = &rest[..needle_at];
        }
    }
    Some(values)
}

/// Position of ` key=` in `s`, searching from the right.
fn rfind_key(s: &str, key: &str) -> Option<usize> {
    let mut end = s.len();
    while let Some(pos) = s[..end].rfind(key) {
        let eq = pos + key.len();
        if pos > 0 && s.as_bytes()[pos - 1] == b' ' && s.as_bytes().get(eq) == Some(&b'=') {
            return Some(pos - 1);
        }
        end = pos;
    }
    None
}

fn int(s: &str) -> Option<i32> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    parse_digits::<i64>(digits)?;
    s.parse().ok()
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

fn signal_generate(body: &str) -> Option<Record> {
    let [sig, errno, code, comm, pid, grp, res] =
        fields(body, ["sig", "errno", "code", "comm", "pid", "grp", "res"])?;
    Some(Record::SignalGenerate {
        signal: Signal(int(sig)?),
        errno: int(errno)?,
        code: int(code)?,
        target_comm: comm.to_string(),
        target_tid: Tid(int(pid)?),
        group: int(grp)? != 0,
        res: int(res)?,
    })
}

fn signal_deliver(body: &str) -> Option<Record> {
    let [sig, errno, code, handler, flags] =
        fields(body, ["sig", "errno", "code", "sa_handler", "sa_flags"])?;
    Some(Record::SignalDeliver {
        signal: Signal(int(sig)?),
        errno: int(errno)?,
        code: int(code)?,
        sa_handler: hex(handler)?,
        sa_flags: hex(flags)?,
    })
}

fn fork(body: &str) -> Option<Record> {
    // The print format says comm=/pid=; the fields are named parent_comm/
    // parent_pid, and a future format may print those names.
    let [pcomm, ppid, ccomm, cpid] = fields(body, ["comm", "pid", "child_comm", "child_pid"])
        .or_else(|| {
            fields(
                body,
                ["parent_comm", "parent_pid", "child_comm", "child_pid"],
            )
        })?;
    Some(Record::Fork {
        parent_comm: pcomm.to_string(),
        parent_tid: Tid(int(ppid)?),
        child_comm: ccomm.to_string(),
        child_tid: Tid(int(cpid)?),
    })
}

fn exec(body: &str) -> Option<Record> {
    let [filename, pid, old_pid] = fields(body, ["filename", "pid", "old_pid"])?;
    Some(Record::Exec {
        filename: filename.to_string(),
        tid: Tid(int(pid)?),
        old_tid: Tid(int(old_pid)?),
    })
}

fn exit(body: &str) -> Option<Record> {
    let (comm, pid, prio, group_dead) = match fields(body, ["comm", "pid", "prio", "group_dead"]) {
        Some([c, p, pr, g]) => {
            let dead = match g {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return None,
            };
            (c, p, pr, Some(dead))
        }
        None => {
            let [c, p, pr] = fields(body, ["comm", "pid", "prio"])?;
            (c, p, pr, None)
        }
    };
    Some(Record::Exit {
        comm: comm.to_string(),
        tid: Tid(int(pid)?),
        prio: int(prio)?,
        group_dead,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: &str = include_str!("../../tests/fixtures/tracefs/tracefs-samples.txt");

    /// Epoch-zero offset: UTC times equal trace times.
    const ZERO: ClockOffset = ClockOffset {
        clock: TraceClock::Boot,
        offset_ns: 0,
    };

    fn event(line: &str) -> TraceLine {
        match parse_line(line) {
            Ok(Line::Event(e)) => e,
            other => panic!("{line:?} -> {other:?}"),
        }
    }

    fn raw(line: &str) -> RawEvent {
        parse_event(line, &ZERO).unwrap_or_else(|| panic!("no event from {line:?}"))
    }

    fn signal(line: &str) -> RawSignal {
        match raw(line) {
            RawEvent::Signal(s) => s,
            other => panic!("not a signal: {other:?}"),
        }
    }

    #[test]
    fn every_fixture_event_line_parses() {
        let mut counts = std::collections::BTreeMap::new();
        for line in SAMPLES.lines() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let ev = event(line);
            let kind = match ev.record {
                Record::SignalGenerate { .. } => "generate",
                Record::SignalDeliver { .. } => "deliver",
                Record::Fork { .. } => "fork",
                Record::Exec { .. } => "exec",
                Record::Exit { .. } => "exit",
            };
            *counts.entry(kind).or_insert(0) += 1;
            let converted = ev.to_raw_event(&ZERO);
            assert_eq!(converted.is_none(), kind == "deliver", "{line}");
        }
        assert_eq!(counts.len(), 5, "{counts:?}");
        assert!(counts.values().all(|&n| n > 10), "{counts:?}");
    }

    #[test]
    fn generate_without_tgid() {
        let line = "    gen_cases.sh-16641   [001] d..1.  1674.389259: signal_generate: sig=15 errno=0 code=0 comm=sleep pid=16642 grp=1 res=0";
        let ev = event(line);
        assert_eq!(ev.cpu, 1);
        assert_eq!(ev.time, TraceTime(1_674_389_259_000));
        assert_eq!(ev.task.tgid, None);
        let s = signal(line);
        assert_eq!(s.signal, Signal::TERM);
        assert_eq!(s.code, SigCode::User);
        assert_eq!(s.result, Delivery::Delivered);
        assert!(s.group);
        assert_eq!(s.sender_tid, Some(Tid(16641)));
        assert_eq!(s.sender_pid, None);
        assert_eq!(s.sender_comm.as_deref(), Some("gen_cases.sh"));
        assert_eq!(s.target_tid, Tid(16642));
        assert_eq!(s.target_comm, "sleep");
        assert_eq!(s.via, Via::Tracefs);
        assert_eq!(
            s.time,
            Utc.timestamp_opt(1674, 389_259_000).single().unwrap()
        );
    }

    #[test]
    fn generate_with_tgid_from_a_non_leader_thread() {
        let s = signal(
            "      python3.11-18971   (  18936) [001] d..1.  1696.354923: signal_generate: sig=15 errno=0 code=0 comm=sleep pid=18935 grp=1 res=0",
        );
        assert_eq!(s.sender_tid, Some(Tid(18971)));
        assert_eq!(s.sender_pid, Some(Pid(18936)));
        assert_eq!(s.target_tid, Tid(18935));
    }

    #[test]
    fn generate_codes_and_results() {
        let ignored = signal(
            "    gen_cases.sh-18716   (  18716) [001] d..1.  1695.648015: signal_generate: sig=15 errno=0 code=0 comm=sleep pid=18822 grp=1 res=1",
        );
        assert_eq!(ignored.result, Delivery::Ignored);
        let pending = signal(
            "              ps-16650   [000] dN.2.  1674.911506: signal_generate: sig=17 errno=0 code=1 comm=gen_cases.sh pid=16649 grp=1 res=2",
        );
        assert_eq!(pending.result, Delivery::Pending);
        assert_eq!(pending.code, SigCode::Other(1));
        let tkill = signal(
            "         python3-16670   [000] d..1.  1676.716161: signal_generate: sig=10 errno=0 code=-6 comm=sleep pid=16668 grp=0 res=0",
        );
        assert_eq!(tkill.code, SigCode::Tkill);
        assert!(!tkill.group);
        let queue = signal(
            "         python3-16678   [000] d..1.  1677.641876: signal_generate: sig=12 errno=0 code=-1 comm=sleep pid=16676 grp=1 res=0",
        );
        assert_eq!(queue.code, SigCode::Queue);
        let hup = signal(
            "      python3.11-16909   [000] d..2.  1682.240509: signal_generate: sig=1 errno=0 code=128 comm=sleep pid=16910 grp=1 res=0",
        );
        assert_eq!(hup.code, SigCode::Kernel);
        assert_eq!(hup.signal, Signal::HUP);
    }

    #[test]
    fn interrupt_context_has_no_sender() {
        let line = "          <idle>-0       [000] dNh2.  1681.876380: signal_generate: sig=14 errno=0 code=128 comm=python3.11 pid=16700 grp=1 res=0";
        let ev = event(line);
        assert_eq!(ev.task.comm.as_deref(), Some("<idle>"));
        assert_eq!(ev.task.tid, Tid(0));
        assert_eq!(ev.context, Context::Interrupt);
        let s = signal(line);
        assert_eq!(s.sender_tid, None);
        assert_eq!(s.sender_comm, None);
        assert_eq!(s.target_tid, Tid(16700));
        // A timer firing while some task runs: that task is not the sender.
        let s = signal(
            "            node-16293   (  16293) [001] d.h2.  1681.190040: signal_generate: sig=14 errno=0 code=128 comm=python3.11 pid=16700 grp=1 res=0",
        );
        assert_eq!((s.sender_tid, s.sender_pid), (None, None));
    }

    #[test]
    fn unknown_comm_and_unknown_tgid() {
        let s = signal(
            "           <...>-16293   [000] d..1.  1674.080188: signal_generate: sig=13 errno=0 code=0 comm=node pid=16293 grp=0 res=1",
        );
        assert_eq!(s.sender_comm, None);
        assert_eq!(s.sender_tid, Some(Tid(16293)));
        let ev = event(
            "           <...>-18757   (-------) [000] .....  1694.978601: sched_process_exec: filename=/usr/bin/sleep pid=18757 old_pid=18757",
        );
        assert_eq!(ev.task.tgid, None);
        assert_eq!(ev.task.comm, None);
        assert_eq!(ev.task.tid, Tid(18757));
    }

    #[test]
    fn comm_with_spaces_and_dashes() {
        // Recorded on this kernel after `printf "my task-9" > /proc/$$/comm`.
        let s = signal(
            "       my task-9-21201   (  21201) [001] d..1.   537.908343: signal_generate: sig=15 errno=0 code=0 comm=sleep pid=21200 grp=1 res=0",
        );
        assert_eq!(s.sender_comm.as_deref(), Some("my task-9"));
        assert_eq!(s.sender_tid, Some(Tid(21201)));
        assert_eq!(s.sender_pid, Some(Pid(21201)));
        let s = signal(
            "              sh-21202   (  21202) [000] dN.2.   537.908297: signal_generate: sig=17 errno=0 code=1 comm=my task-9 pid=21201 grp=1 res=0",
        );
        assert_eq!(s.target_comm, "my task-9");
        assert_eq!(s.target_tid, Tid(21201));
        // Field values that look like keys, and a comm with brackets.
        let s = signal(
            "  a [1] pid=3-77 [000] d..1.  10.5: signal_generate: sig=9 errno=0 code=0 comm=x pid=1 y pid=42 grp=1 res=0",
        );
        assert_eq!(s.sender_comm.as_deref(), Some("a [1] pid=3"));
        assert_eq!(s.sender_tid, Some(Tid(77)));
        assert_eq!(s.target_comm, "x pid=1 y");
        assert_eq!(s.target_tid, Tid(42));
        assert_eq!(s.time, Utc.timestamp_opt(10, 500_000_000).single().unwrap());
    }

    #[test]
    fn fork_both_formats() {
        let line = "       my task-9-21201   (  21201) [001] .....   537.906365: sched_process_fork: comm=my task-9 pid=21201 child_comm=my task-9 child_pid=21202";
        let ev = event(line);
        assert_eq!(
            ev.record,
            Record::Fork {
                parent_comm: "my task-9".into(),
                parent_tid: Tid(21201),
                child_comm: "my task-9".into(),
                child_tid: Tid(21202),
            }
        );
        match raw(line) {
            RawEvent::Fork {
                parent_tid,
                parent_pid,
                child_tid,
                child_pid,
                comm,
                ..
            } => {
                assert_eq!(parent_tid, Tid(21201));
                assert_eq!(parent_pid, Some(Pid(21201)));
                assert_eq!(child_tid, Tid(21202));
                assert_eq!(child_pid, None);
                assert_eq!(comm, "my task-9");
            }
            other => panic!("{other:?}"),
        }
        let renamed = event(
            "  node-10 (10) [000] ..... 1.000001: sched_process_fork: parent_comm=node parent_pid=10 child_comm=node child_pid=11",
        );
        assert!(matches!(
            renamed.record,
            Record::Fork {
                parent_tid: Tid(10),
                child_tid: Tid(11),
                ..
            }
        ));
    }

    #[test]
    fn exec_and_exit() {
        match raw(
            "  tracefs_run.sh-16639   [001] .....  1674.081313: sched_process_exec: filename=/usr/bin/cat pid=16639 old_pid=16639",
        ) {
            RawEvent::Exec {
                pid,
                filename,
                comm,
                ..
            } => {
                assert_eq!(pid, Pid(16639));
                assert_eq!(filename, "/usr/bin/cat");
                assert_eq!(comm, None);
            }
            other => panic!("{other:?}"),
        }
        let spaced = event(
            "  sh-5 [000] ..... 1.0: sched_process_exec: filename=/opt/my app/run pid=6 old_pid=5",
        );
        assert_eq!(
            spaced.record,
            Record::Exec {
                filename: "/opt/my app/run".into(),
                tid: Tid(6),
                old_tid: Tid(5)
            }
        );

        // A non-leader thread exits: its tgid is the prefix's.
        match raw(
            "      python3.11-18971   (  18936) [001] .....  1696.354995: sched_process_exit: comm=python3.11 pid=18971 prio=120 group_dead=false",
        ) {
            RawEvent::Exit { tid, pid, comm, .. } => {
                assert_eq!(tid, Tid(18971));
                assert_eq!(pid, Some(Pid(18936)));
                assert_eq!(comm, "python3.11");
            }
            other => panic!("{other:?}"),
        }
        let old = event("  sleep-7 [000] ..... 2.0: sched_process_exit: comm=sleep pid=7 prio=120");
        assert!(matches!(
            old.record,
            Record::Exit {
                group_dead: None,
                prio: 120,
                ..
            }
        ));
    }

    #[test]
    fn deliver_is_parsed_but_not_a_model_event() {
        let line = "  tracefs_run.sh-16638   [001] d..1.  1674.284321: signal_deliver: sig=17 errno=0 code=1 sa_handler=55eee3d85e40 sa_flags=14000000";
        assert_eq!(
            event(line).record,
            Record::SignalDeliver {
                signal: Signal::CHLD,
                errno: 0,
                code: 1,
                sa_handler: 0x55ee_e3d8_5e40,
                sa_flags: 0x1400_0000,
            }
        );
        assert_eq!(parse_event(line, &ZERO), None);
    }

    #[test]
    fn without_irq_info_flags() {
        let ev = event(
            "           sleep-7     [001]  2.000001: sched_process_exit: comm=sleep pid=7 prio=120 group_dead=true",
        );
        assert_eq!(ev.context, Context::Task);
        assert_eq!(ev.time, TraceTime(2_000_001_000));
    }

    #[test]
    fn cpu_stats() {
        let stats = "entries: 0\noverrun: 12\ncommit overrun: 3\nbytes: 0\n\
                     oldest event ts:     0.000000\nnow ts:   450.470974\n\
                     dropped events: 2\nread events: 0\n";
        assert_eq!(parse_cpu_stats_lost(stats), Some(14));
        assert_eq!(parse_cpu_stats_lost("entries: 1\n"), None);
        assert_eq!(parse_cpu_stats_lost("overrun: x\n"), None);
    }

    #[test]
    fn lost_events_marker() {
        assert_eq!(
            parse_line("CPU:1 [LOST 42 EVENTS]\n"),
            Ok(Line::Lost { cpu: 1, count: 42 })
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(parse_line(""), Err(ParseError::Blank));
        assert_eq!(parse_line("# tracer: nop"), Err(ParseError::Blank));
        assert_eq!(parse_line("hello world"), Err(ParseError::NoHeader));
        assert_eq!(
            parse_line("  bash-1 [000] ..... 1.0: sched_switch: prev_comm=bash"),
            Err(ParseError::UnknownEvent("sched_switch".into()))
        );
        assert_eq!(
            parse_line("  bash-1 [000] ..... 1.0: signal_generate: sig=x"),
            Err(ParseError::BadFields {
                event: "signal_generate"
            })
        );
        let nasty = [
            " [",
            "-1 [0] x 1: e: ",
            "a-b [0] . 1.0: signal_generate: ",
            "a-1 (x) [0] . 1.0: signal_generate: sig=1",
            "a-1 [0] . 1.1234567890: sched_process_exit: comm=a pid=1 prio=1",
            "a-1 [0] . 99999999999999999999.0: sched_process_exit: comm=a pid=1 prio=1",
            "a-1 [0] . 1.0: sched_process_exit: comm=a pid=+1 prio=1",
            "a-1 [0] . 1.0: signal_generate: sig=1 errno=0 code=0 comm=é pid=1 grp=1 res=99999999999",
            "é-1 [é] é é: é: é=é",
            "CPU:x [LOST 1 EVENTS]",
        ];
        for line in nasty {
            assert!(parse_line(line).is_err(), "{line:?}");
        }
        // Every prefix and suffix of a real line: no panics on cut lines.
        let line = "       my task-9-21201   (  21201) [001] d..1.   537.908343: signal_generate: sig=15 errno=0 code=0 comm=sleep pid=21200 grp=1 res=0";
        for i in 0..line.len() {
            let _ = parse_line(&line[..i]);
            let _ = parse_line(&line[i..]);
        }
    }

    #[test]
    fn clock_offset_converts_to_utc() {
        let clock = ClockOffset::from_readings(
            TraceClock::Boot,
            1_700_000_000_000_000_000,
            100_000_000_000,
        );
        assert_eq!(
            clock.to_utc(TraceTime(101_500_000_000)),
            Utc.timestamp_opt(1_700_000_001, 500_000_000)
                .single()
                .unwrap()
        );
        assert_eq!(TraceClock::Mono.name(), "mono");
    }
}
