//! Reading signal records from the Linux audit log.
//!
//! The audit log answers "who sent that signal" after the fact, for as
//! long as rules like these were loaded:
//!
//! ```text
//! auditctl -a always,exit -F arch=b64 -S kill,tkill,tgkill,rt_sigqueueinfo,rt_tgsigqueueinfo,pidfd_send_signal -k ptree_sig
//! auditctl -a always,exit -F arch=b32 -S kill,tkill,tgkill,rt_sigqueueinfo,rt_tgsigqueueinfo,pidfd_send_signal -k ptree_sig
//! ```
//!
//! It sees syscalls, so signals the kernel raises itself (SIGPIPE, SIGSEGV,
//! the OOM killer) never appear in it.
//!
//! Two inputs give the same [`AuditSignal`]s: the log itself
//! (`/var/log/audit/audit.log*`, RAW or ENRICHED format) and the text of
//! `ausearch -i`. The layers:
//!
//! - `record`: one raw line → type, stamp, fields (public, for tools and
//!   fuzzing);
//! - `group`: raw lines → events, streaming;
//! - `interpreted`: `ausearch -i` text → events;
//! - `event`: the event types, syscall numbers and argument meanings;
//! - `files`: rotated log files, filters.
//!
//! Parsing never fails: lines that cannot be read are counted in
//! [`ParseStats`] and skipped. Only I/O fails, with the file's path.

pub mod control;
mod event;
mod files;
mod group;
mod interpreted;
pub mod parallel;
mod prefilter;
pub mod record;
pub mod replay;
pub mod span;

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

pub use event::{
    Arch, AuditProcess, AuditSignal, AuditTarget, AuditUser, ParseStats, Proctitle, SignalSyscall,
    TargetArg,
};
pub use files::{AuditLog, DEFAULT_LOG_DIR, default_log_files};
pub use group::{RawParser, STALE_MS, WINDOW};
pub use interpreted::{InterpretedParser, Timezone};

use crate::model::Pid;

/// Which text an input holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// Decided per input from its first record.
    #[default]
    Auto,
    /// The log as auditd writes it, RAW or ENRICHED.
    Raw,
    /// `ausearch -i` output.
    Interpreted,
}

/// Tells the formats apart by their first record: `ausearch -i` starts
/// with `----` and writes dates with slashes.
fn detect(line: &[u8]) -> Option<Format> {
    if line.starts_with(b"----") {
        return Some(Format::Interpreted);
    }
    let header = record::split_header(line)?;
    Some(if header.stamp.contains(&b'/') {
        Format::Interpreted
    } else {
        Format::Raw
    })
}

/// Lines of either format → events: the parsing core, without I/O.
#[derive(Debug)]
pub struct Scanner {
    format: Format,
    /// The format lines currently go to: never `Auto`.
    active: Format,
    /// Whether `Auto` has decided for the current input.
    detected: bool,
    raw: RawParser,
    interpreted: InterpretedParser,
}

impl Scanner {
    /// `tz` is the time zone of `ausearch -i` text; the raw log is in UTC.
    pub fn new(format: Format, tz: Timezone) -> Scanner {
        Scanner {
            format,
            active: if format == Format::Interpreted {
                Format::Interpreted
            } else {
                Format::Raw
            },
            detected: format != Format::Auto,
            raw: RawParser::new(),
            interpreted: InterpretedParser::new(tz),
        }
    }

    /// Keeps only the events `filter` keeps: cheaper than filtering
    /// afterwards, since skipped events are not decoded in full.
    pub fn with_filter(mut self, filter: Filter) -> Scanner {
        self.raw = self.raw.with_filter(filter.clone());
        self.interpreted = self.interpreted.with_filter(filter);
        self
    }

    /// Reads one line; completed events are appended to `out`.
    pub fn push_line(&mut self, line: &[u8], out: &mut VecDeque<AuditSignal>) {
        if !self.detected
            && let Some(format) = detect(line)
        {
            self.detected_as(format, out);
        }
        match self.active {
            Format::Interpreted => self.interpreted.push_line(line, out),
            _ => self.raw.push_line(line, out),
        }
    }

    /// The current input's format, found by a reader that passes on only
    /// some of its lines (`prefilter.rs`): the line that tells may not be
    /// among them. As if that line had been read, in `Auto` mode.
    pub(crate) fn detected_as(&mut self, format: Format, out: &mut VecDeque<AuditSignal>) {
        if !self.detected {
            self.detected = true;
            if format != self.active {
                self.end_active(out);
                self.active = format;
            }
        }
    }

    /// A new input begins (the next file): `Auto` looks at its format
    /// again. Open raw events stay open, since rotation may cut an event.
    pub fn next_input(&mut self) {
        if self.format == Format::Auto {
            self.detected = false;
        }
    }

    /// Completes every open event: the input has ended.
    pub fn finish(&mut self, out: &mut VecDeque<AuditSignal>) {
        self.raw.finish(out);
        self.interpreted.finish(out);
    }

    fn end_active(&mut self, out: &mut VecDeque<AuditSignal>) {
        match self.active {
            Format::Interpreted => self.interpreted.finish(out),
            _ => self.raw.finish(out),
        }
    }

    pub fn stats(&self) -> ParseStats {
        let mut stats = self.raw.stats();
        stats.add(&self.interpreted.stats());
        stats
    }
}

/// Parses a whole text held in memory (tests, fuzzing, small inputs).
pub fn parse_bytes(text: &[u8], format: Format, tz: Timezone) -> (Vec<AuditSignal>, ParseStats) {
    let mut scanner = Scanner::new(format, tz);
    let mut out = VecDeque::new();
    for line in text.split_inclusive(|&b| b == b'\n') {
        scanner.push_line(line, &mut out);
    }
    scanner.finish(&mut out);
    (out.into(), scanner.stats())
}

/// Which events to keep. Every bound is optional and inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Keep events that concern this process; see [`AuditSignal::concerns`].
    pub target: Option<Pid>,
}

impl Filter {
    pub fn matches(&self, signal: &AuditSignal) -> bool {
        self.keeps(
            signal.time,
            signal.target_arg,
            signal.targets.iter().map(|t| t.pid),
        )
    }

    /// The same test on what is known before an event is fully decoded:
    /// its time, its arguments and the pids of its OBJ_PID records.
    pub(crate) fn keeps(
        &self,
        time: DateTime<Utc>,
        target_arg: TargetArg,
        mut targets: impl Iterator<Item = Pid>,
    ) -> bool {
        self.since.is_none_or(|t| time >= t)
            && self.until.is_none_or(|t| time <= t)
            && self
                .target
                .is_none_or(|pid| target_arg.names(pid) || targets.any(|t| t == pid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        assert_eq!(detect(b"----"), Some(Format::Interpreted));
        assert_eq!(
            detect(b"type=EOE msg=audit(11/21/26 08:19:43.057:2534) : "),
            Some(Format::Interpreted)
        );
        assert_eq!(
            detect(b"type=EOE msg=audit(1795249183.057:2534): "),
            Some(Format::Raw)
        );
        assert_eq!(detect(b"hello"), None);
    }

    #[test]
    fn auto_switches_per_input() {
        let raw = b"type=SYSCALL msg=audit(10.000:1): arch=c000003e syscall=62 success=yes exit=0 a0=64 a1=f a2=0 a3=0 pid=5\n";
        let interpreted = b"----\ntype=SYSCALL msg=audit(01/01/70 00:00:10.000:1) : arch=x86_64 syscall=kill success=yes exit=0 a0=0x64 a1=SIGTERM a2=0x0 a3=0x0 pid=5\n";
        let mut scanner = Scanner::new(Format::Auto, Timezone::utc());
        let mut out = VecDeque::new();
        for line in raw.split(|&b| b == b'\n') {
            scanner.push_line(line, &mut out);
        }
        scanner.next_input();
        for line in interpreted.split(|&b| b == b'\n') {
            scanner.push_line(line, &mut out);
        }
        scanner.finish(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], out[1]);
        assert_eq!(scanner.stats().events, 2);
    }

    #[test]
    fn filters() {
        let text = b"type=SYSCALL msg=audit(10.000:1): arch=c000003e syscall=62 success=yes exit=0 a0=64 a1=f a2=0 a3=0 pid=5\n";
        let (events, _) = parse_bytes(text, Format::Raw, Timezone::utc());
        let e = &events[0];
        let at = |s| DateTime::from_timestamp(s, 0);
        assert!(Filter::default().matches(e));
        let f = Filter {
            since: at(10),
            until: at(10),
            target: Some(Pid(100)),
        };
        assert!(f.matches(e));
        assert!(
            !Filter {
                since: at(11),
                ..Filter::default()
            }
            .matches(e)
        );
        assert!(
            !Filter {
                until: at(9),
                ..Filter::default()
            }
            .matches(e)
        );
        assert!(
            !Filter {
                target: Some(Pid(5)),
                ..Filter::default()
            }
            .matches(e)
        );
    }
}
