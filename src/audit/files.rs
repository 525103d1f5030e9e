//! The audit log on disk: `audit.log` and its rotated siblings, read as a
//! stream of lines with one reused buffer, oldest file first.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::prefilter::Prefilter;
use super::record::find;
use super::{AuditSignal, Filter, Format, ParseStats, Scanner, Timezone};
use crate::error::Error;
use crate::model::Pid;

/// Where auditd writes by default (`log_file` in `auditd.conf`).
pub const DEFAULT_LOG_DIR: &str = "/var/log/audit";

/// The longest line read; the kernel caps a record near 9 KiB, so anything
/// longer is not a record (a binary file, a corrupted log) and is skipped
/// without being held in memory.
pub(super) const MAX_LINE: usize = 64 * 1024;

/// `audit.log` and its rotations `audit.log.1`, `audit.log.2`… in `dir`,
/// oldest first: the highest number first, `audit.log` last. Compressed
/// rotations (`.gz`, from logrotate) are not read.
///
/// When `dir` cannot be listed (not root), `dir/audit.log` alone is
/// returned, so that opening it reports the real error with its path.
pub fn default_log_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![dir.join("audit.log")];
    };
    let mut numbered: Vec<(u64, PathBuf)> = Vec::new();
    let mut current = None;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == "audit.log" {
            current = Some(entry.path());
        } else if let Some(n) = name
            .strip_prefix("audit.log.")
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
        {
            numbered.push((n, entry.path()));
        }
    }
    numbered.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    numbered
        .into_iter()
        .map(|(_, path)| path)
        .chain(current)
        .collect()
}

/// Every offset of an input.
const WHOLE: Range<u64> = 0..u64::MAX;

/// An input still to be read.
enum Source {
    Path(PathBuf),
    /// Standard input or any other stream, with a name for errors, and
    /// the offsets of it whose events are wanted (see
    /// [`AuditLog::from_parts`]).
    Reader(PathBuf, Box<dyn BufRead>, Range<u64>),
}

/// Signal events from several files (or streams) read in order as one
/// log, filtered. Files are opened one at a time as iteration reaches
/// them.
///
/// ```no_run
/// use std::path::Path;
/// use ptree::audit::{AuditLog, default_log_files};
/// use ptree::model::Pid;
///
/// for event in AuditLog::open(default_log_files(Path::new("/var/log/audit")))
///     .events_for_target(Pid(4242))
/// {
///     let event = event?;
///     println!("{} sent {} to 4242", event.sender.pid, event.signal);
/// }
/// # Ok::<(), ptree::Error>(())
/// ```
pub struct AuditLog {
    sources: VecDeque<Source>,
    current: Option<(PathBuf, Box<dyn BufRead>)>,
    /// Made when reading starts, from the settings below.
    scanner: Option<Scanner>,
    format: Format,
    tz: Timezone,
    filter: Filter,
    /// With a target pid: skips what cannot concern it before parsing.
    prefilter: Option<Prefilter>,
    line: Gathered,
    ready: VecDeque<AuditSignal>,
    done: bool,
}

impl AuditLog {
    /// Reads `paths` in the order given; see [`default_log_files`].
    pub fn open<I, P>(paths: I) -> AuditLog
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        AuditLog::from_sources(paths.into_iter().map(|p| Source::Path(p.into())).collect())
    }

    /// Reads a stream, such as `ausearch -i` piped into standard input;
    /// `name` stands for it in errors.
    pub fn from_reader(name: impl Into<PathBuf>, reader: impl BufRead + 'static) -> AuditLog {
        AuditLog::from_sources(VecDeque::from([Source::Reader(
            name.into(),
            Box::new(reader),
            WHOLE,
        )]))
    }

    /// Reads several streams in order as one log, such as rotated files
    /// opened on a time window (`span::open_window`); each name stands for
    /// its stream in errors.
    pub fn from_readers<I>(readers: I) -> AuditLog
    where
        I: IntoIterator<Item = (PathBuf, Box<dyn BufRead>)>,
    {
        AuditLog::from_sources(
            readers
                .into_iter()
                .map(|(name, reader)| Source::Reader(name, reader, WHOLE))
                .collect(),
        )
    }

    /// As [`AuditLog::from_readers`], for one part of a log read by
    /// several threads: with a target pid, only the events whose first
    /// record naming it lies in each stream's range of offsets are
    /// yielded, though the bytes around it are read for the rest of them.
    pub(crate) fn from_parts<I>(readers: I) -> AuditLog
    where
        I: IntoIterator<Item = (PathBuf, Box<dyn BufRead>, Range<u64>)>,
    {
        AuditLog::from_sources(
            readers
                .into_iter()
                .map(|(name, reader, owned)| Source::Reader(name, reader, owned))
                .collect(),
        )
    }

    fn from_sources(sources: VecDeque<Source>) -> AuditLog {
        let format = Format::Auto;
        let tz = Timezone::Local;
        AuditLog {
            sources,
            current: None,
            scanner: None,
            format,
            tz,
            filter: Filter::default(),
            prefilter: None,
            line: Gathered::default(),
            ready: VecDeque::new(),
            done: false,
        }
    }

    /// Forces a format instead of detecting it per file. Settings made
    /// after iteration started are ignored.
    pub fn format(mut self, format: Format) -> AuditLog {
        self.format = format;
        self
    }

    /// The time zone of `ausearch -i` text (default: this machine's).
    pub fn timezone(mut self, tz: Timezone) -> AuditLog {
        self.tz = tz;
        self
    }

    pub fn with_filter(mut self, filter: Filter) -> AuditLog {
        self.filter = filter;
        self
    }

    pub fn since(mut self, time: DateTime<Utc>) -> AuditLog {
        self.filter.since = Some(time);
        self
    }

    pub fn until(mut self, time: DateTime<Utc>) -> AuditLog {
        self.filter.until = Some(time);
        self
    }

    /// Keeps the events that concern `pid` (see [`AuditSignal::concerns`]).
    pub fn events_for_target(mut self, pid: Pid) -> AuditLog {
        self.filter.target = Some(pid);
        self
    }

    /// What was read so far, filtered out or not. With a target pid, the
    /// lines skipped unparsed (see `prefilter.rs`) are not counted.
    pub fn stats(&self) -> ParseStats {
        let mut stats = self
            .scanner
            .as_ref()
            .map_or_else(ParseStats::default, Scanner::stats);
        stats.lines += self.line.overlong;
        stats.garbage += self.line.overlong;
        stats
    }

    /// The scanner, made from the settings when reading starts.
    fn scanner(&mut self) -> &mut Scanner {
        let (format, tz, filter) = (self.format, self.tz, &self.filter);
        if self.scanner.is_none() {
            self.prefilter = filter.target.map(Prefilter::new);
        }
        self.scanner
            .get_or_insert_with(|| Scanner::new(format, tz).with_filter(filter.clone()))
    }

    /// Opens the next source; `Err` for one that cannot be opened.
    fn open_next(&mut self) -> Option<Result<(), Error>> {
        let (path, reader, owned): (PathBuf, Box<dyn BufRead>, _) =
            match self.sources.pop_front()? {
                Source::Path(path) => match File::open(&path) {
                    Ok(file) => (
                        path,
                        Box::new(BufReader::with_capacity(256 * 1024, file)),
                        WHOLE,
                    ),
                    Err(e) => return Some(Err(Error::io(path, e))),
                },
                Source::Reader(name, reader, owned) => (name, reader, owned),
            };
        self.scanner().next_input();
        if let Some(prefilter) = self.prefilter.as_mut() {
            prefilter.next_input(self.format, owned);
        }
        self.current = Some((path, reader));
        Some(Ok(()))
    }
}

impl Iterator for AuditLog {
    /// An unreadable file yields one error; iteration then goes on with
    /// the next file.
    type Item = Result<AuditSignal, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // The scanner filters.
            if let Some(signal) = self.ready.pop_front() {
                return Some(Ok(signal));
            }
            if self.done {
                return None;
            }
            let Some((path, reader)) = self.current.as_mut() else {
                match self.open_next() {
                    Some(Ok(())) => continue,
                    Some(Err(e)) => return Some(Err(e)),
                    None => {
                        if let Some(scanner) = self.scanner.as_mut() {
                            scanner.finish(&mut self.ready);
                        }
                        self.done = true;
                        continue;
                    }
                }
            };
            if let (Some(prefilter), Some(scanner)) =
                (self.prefilter.as_mut(), self.scanner.as_mut())
            {
                match prefilter.step(reader, scanner, &mut self.ready) {
                    Ok(true) => {}
                    Ok(false) => self.current = None,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let path = path.clone();
                        self.current = None;
                        return Some(Err(Error::io(path, e)));
                    }
                }
                continue;
            }
            let available = match reader.fill_buf() {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let path = path.clone();
                    self.current = None;
                    self.line.end(None, &mut self.ready);
                    return Some(Err(Error::io(path, e)));
                }
            };
            if available.is_empty() {
                // A last line without its newline still counts.
                self.line.end(self.scanner.as_mut(), &mut self.ready);
                self.current = None;
                continue;
            }
            let (used, complete) = match find(available, b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if complete && self.line.is_empty() {
                // The common case: parsed where it lies in the buffer.
                if used > MAX_LINE {
                    self.line.overlong += 1;
                } else if let Some(scanner) = self.scanner.as_mut() {
                    scanner.push_line(&available[..used], &mut self.ready);
                }
            } else {
                // A line across two reads of the buffer.
                self.line.extend(&available[..used]);
                if complete {
                    self.line.end(self.scanner.as_mut(), &mut self.ready);
                }
            }
            reader.consume(used);
        }
    }
}

/// A line that did not fit in the reader's buffer, gathered across reads.
#[derive(Debug, Default)]
struct Gathered {
    bytes: Vec<u8>,
    /// Already longer than [`MAX_LINE`]: the rest is skipped.
    too_long: bool,
    /// Lines skipped for their length, counted apart from the scanner's.
    overlong: u64,
}

impl Gathered {
    fn is_empty(&self) -> bool {
        self.bytes.is_empty() && !self.too_long
    }

    fn extend(&mut self, part: &[u8]) {
        if self.too_long {
            return;
        }
        if self.bytes.len() + part.len() > MAX_LINE {
            self.too_long = true;
            self.bytes = Vec::new();
        } else {
            self.bytes.extend_from_slice(part);
        }
    }

    /// The line has ended: parsed by `scanner`, or dropped without one.
    fn end(&mut self, scanner: Option<&mut Scanner>, out: &mut VecDeque<AuditSignal>) {
        if self.too_long {
            self.overlong += 1;
        } else if let Some(scanner) = scanner.filter(|_| !self.bytes.is_empty()) {
            scanner.push_line(&self.bytes, out);
        }
        self.bytes.clear();
        self.too_long = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_files_oldest_first() {
        let dir = tempfile::tempdir().expect("a temp dir");
        for name in [
            "audit.log",
            "audit.log.1",
            "audit.log.10",
            "audit.log.2",
            "audit.log.x",
            "audit.log.3.gz",
            "other",
        ] {
            std::fs::write(dir.path().join(name), b"").expect("write");
        }
        let names: Vec<String> = default_log_files(dir.path())
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        assert_eq!(
            names,
            ["audit.log.10", "audit.log.2", "audit.log.1", "audit.log"]
        );
        let missing = dir.path().join("nope");
        assert_eq!(default_log_files(&missing), vec![missing.join("audit.log")]);
    }

    #[test]
    fn lines_across_buffer_reads_and_overlong_lines() {
        let event = "type=SYSCALL msg=audit(10.000:1): arch=c000003e syscall=62 success=yes exit=0 a0=64 a1=f a2=0 a3=0 pid=5\n\
                     type=OBJ_PID msg=audit(10.000:1): opid=100 ocomm=\"x\"\n";
        let long = "x".repeat(MAX_LINE + 10);
        let text = format!(
            "{event}{long}\n{}\nno newline at the end",
            &long[..MAX_LINE - 1]
        );
        let (expected, _) =
            super::super::parse_bytes(text.as_bytes(), Format::Raw, Timezone::utc());
        assert_eq!(expected.len(), 1);
        for capacity in [8, 100, 1 << 20] {
            let reader =
                BufReader::with_capacity(capacity, io::Cursor::new(text.clone().into_bytes()));
            let mut log = AuditLog::from_reader("mem", reader);
            let events: Vec<_> = log.by_ref().collect::<Result<_, _>>().expect("memory");
            assert_eq!(events, expected, "capacity {capacity}");
            let stats = log.stats();
            assert_eq!(stats.lines, 5, "capacity {capacity}");
            // The over-long line, the one just under the limit, the last.
            assert_eq!(stats.garbage, 3, "capacity {capacity}");
        }
    }

    #[test]
    fn missing_file_is_an_error_with_its_path_then_goes_on() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let good = dir.path().join("audit.log");
        std::fs::write(
            &good,
            b"type=SYSCALL msg=audit(10.000:1): arch=c000003e syscall=62 success=yes exit=0 a0=64 a1=f a2=0 a3=0 pid=5\n",
        )
        .expect("write");
        let missing = dir.path().join("audit.log.1");
        let mut log = AuditLog::open([missing.clone(), good]);
        match log.next() {
            Some(Err(Error::Io { path, .. })) => assert_eq!(path, missing),
            other => panic!("expected an I/O error, got {other:?}"),
        }
        let rest: Vec<_> = log.collect();
        assert_eq!(rest.len(), 1);
        assert!(rest[0].is_ok());
    }
}
