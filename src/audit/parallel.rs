//! Reading a large log for one pid with several threads.
//!
//! The scan for one pid is bound by reading and searching the text (see
//! `prefilter.rs`), and by decoding the events around each hit when the
//! pid is signalled often. Both split cleanly by bytes: the log is cut
//! into parts at line starts, one thread per part. Each part *owns* the
//! events whose first record naming the pid lies within its bytes, and
//! reads [`MARGIN`] bytes more on each side, so that the records of an
//! event that straddles a cut (its SYSCALL before it, its OBJ_PIDs after
//! it) are read by the part that owns it. An event that names the pid on
//! both sides of a cut is found by both parts: the later part's copy is
//! dropped. Parts are joined in order, so the events come out as one
//! thread would have yielded them.
//!
//! Only raw logs are cut (`ausearch -i` text is read whole by one
//! thread), and only when each part gets at least [`MIN_PART`] bytes.

use std::collections::HashSet;
use std::io::BufRead;
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::{AuditLog, AuditSignal, span};
use crate::error::Error;
use crate::model::Pid;

/// Below this many bytes per thread, one thread reads it all.
const MIN_PART: u64 = 16 << 20;

/// Bytes read past each side of a part's own: the records of one event
/// are at most a few hundred lines apart, even for a group kill with a
/// thousand OBJ_PID records.
const MARGIN: u64 = 512 << 10;

/// At most this many threads: past the memory bandwidth, more only cost.
const MAX_THREADS: usize = 8;

/// The events of `paths` (read in order as one log) in the time window
/// that concern `target`, as [`AuditLog::events_for_target`] yields them.
pub fn events_for_target(
    paths: &[PathBuf],
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    target: Pid,
) -> Result<Vec<AuditSignal>, Error> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS));
    Split {
        threads,
        min_part: MIN_PART,
        margin: MARGIN,
    }
    .events(paths, since, until, target)
}

/// How a log is cut into parts.
#[derive(Debug, Clone, Copy)]
struct Split {
    threads: usize,
    min_part: u64,
    margin: u64,
}

/// One file's window, as [`span::window`] found it.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    range: Range<u64>,
    raw: bool,
}

impl Segment {
    fn of(
        path: &Path,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Segment, Error> {
        let (range, raw) = span::window(path, since, until)?;
        Ok(Segment {
            path: path.to_path_buf(),
            range,
            raw,
        })
    }
}

/// A cut: the line start at `offset` of segment `segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    segment: usize,
    offset: u64,
}

/// What one part reads of one file, and which of its offsets it owns
/// (relative to the start of what it reads).
#[derive(Debug, PartialEq, Eq)]
struct Piece {
    segment: usize,
    read: Range<u64>,
    owned: Range<u64>,
}

impl Split {
    fn events(
        &self,
        paths: &[PathBuf],
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        target: Pid,
    ) -> Result<Vec<AuditSignal>, Error> {
        let segments = paths
            .iter()
            .map(|path| Segment::of(path, since, until))
            .collect::<Result<Vec<_>, Error>>()?;
        let cuts = self.cuts(&segments)?;
        let parts = self.parts(&segments, &cuts)?;
        let scan = |pieces: &[Piece]| -> Result<Vec<AuditSignal>, Error> {
            let readers = pieces
                .iter()
                .map(|p| {
                    let path = &segments[p.segment].path;
                    let reader: Box<dyn BufRead> = span::open_range(path, p.read.clone())?;
                    Ok((path.clone(), reader, p.owned.clone()))
                })
                .collect::<Result<Vec<_>, Error>>()?;
            let mut log = AuditLog::from_parts(readers).events_for_target(target);
            if let Some(t) = since {
                log = log.since(t);
            }
            if let Some(t) = until {
                log = log.until(t);
            }
            log.collect()
        };
        let results: Vec<Result<Vec<AuditSignal>, Error>> = if parts.len() == 1 {
            vec![scan(&parts[0])]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = parts.iter().map(|p| s.spawn(|| scan(p))).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            })
        };
        join(results)
    }

    /// Where to cut: evenly by bytes, at line starts of raw segments.
    fn cuts(&self, segments: &[Segment]) -> Result<Vec<Cut>, Error> {
        let total: u64 = segments.iter().map(|s| s.range.end - s.range.start).sum();
        let parts = (self.threads as u64)
            .min(total / self.min_part.max(1))
            .max(1);
        let mut cuts: Vec<Cut> = Vec::new();
        for k in 1..parts {
            let mut at = total * k / parts;
            for (i, seg) in segments.iter().enumerate() {
                let len = seg.range.end - seg.range.start;
                if at >= len {
                    at -= len;
                    continue;
                }
                if seg.raw {
                    let offset = span::line_start(&seg.path, seg.range.start + at)?;
                    let cut = Cut { segment: i, offset };
                    if offset > seg.range.start
                        && offset < seg.range.end
                        && cuts.last() != Some(&cut)
                    {
                        cuts.push(cut);
                    }
                }
                break;
            }
        }
        Ok(cuts)
    }

    /// The pieces each part reads, between consecutive cuts.
    fn parts(&self, segments: &[Segment], cuts: &[Cut]) -> Result<Vec<Vec<Piece>>, Error> {
        let mut parts = Vec::new();
        let mut from: Option<Cut> = None;
        for to in cuts.iter().copied().map(Some).chain([None]) {
            let first = from.map_or(0, |c| c.segment);
            let last = to.map_or(segments.len().saturating_sub(1), |c| c.segment);
            let mut pieces = Vec::new();
            for (i, seg) in segments.iter().enumerate().take(last + 1).skip(first) {
                let mut read = seg.range.clone();
                let (mut own_from, mut own_to) = (None, None);
                if let Some(c) = from.filter(|c| c.segment == i) {
                    let start = c.offset.saturating_sub(self.margin).max(seg.range.start);
                    read.start = span::line_start(&seg.path, start)?.min(c.offset);
                    own_from = Some(c.offset);
                }
                if let Some(c) = to.filter(|c| c.segment == i) {
                    let end = (c.offset + self.margin).min(seg.range.end);
                    read.end = span::line_start(&seg.path, end)?.clamp(c.offset, seg.range.end);
                    own_to = Some(c.offset);
                }
                let owned = own_from.map_or(0, |o| o - read.start)
                    ..own_to.map_or(u64::MAX, |o| o - read.start);
                pieces.push(Piece {
                    segment: i,
                    read,
                    owned,
                });
            }
            parts.push(pieces);
            from = to;
        }
        Ok(parts)
    }
}

/// The parts' events in order, without the copies a later part found of
/// an event an earlier one owns; the first error, if any.
fn join(results: Vec<Result<Vec<AuditSignal>, Error>>) -> Result<Vec<AuditSignal>, Error> {
    let parts = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let mut parts = parts.into_iter();
    let mut out = parts.next().unwrap_or_default();
    let mut before = 0;
    for events in parts {
        let keys: HashSet<_> = out[before..].iter().map(key).collect();
        before = out.len();
        out.extend(events.into_iter().filter(|e| !keys.contains(&key(e))));
    }
    Ok(out)
}

/// An event's identity (as `Replay` dedups); `node` is rarely set.
fn key(e: &AuditSignal) -> (Option<String>, DateTime<Utc>, u64) {
    (e.node.clone(), e.time, e.serial)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{parse_stamp, split_header};

    const FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/audit/audit-samples.log");

    /// The fixture `copies` times over, each event under a fresh stamp.
    fn log(copies: usize, first_serial: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut serial = first_serial;
        let mut last = Vec::new();
        for _ in 0..copies {
            for line in FIXTURE.split_inclusive(|&b| b == b'\n') {
                let Some(h) = split_header(line) else {
                    out.extend_from_slice(line);
                    continue;
                };
                if parse_stamp(h.stamp).is_none() {
                    out.extend_from_slice(line);
                    continue;
                }
                if h.stamp != last.as_slice() {
                    last = h.stamp.to_vec();
                    serial += 1;
                }
                let text = String::from_utf8_lossy(line);
                let stamp = String::from_utf8_lossy(h.stamp);
                let secs = 1_795_000_000 + serial / 100;
                let fresh = format!("{secs}.{:03}:{serial}", (serial % 100) * 10);
                out.extend_from_slice(text.replacen(stamp.as_ref(), &fresh, 1).as_bytes());
            }
        }
        out
    }

    fn pids() -> Vec<Pid> {
        let mut pids: Vec<Pid> = String::from_utf8_lossy(FIXTURE)
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse::<i32>().ok())
            .filter(|&n| (1..4_194_304).contains(&n))
            .map(Pid)
            .collect();
        pids.sort();
        pids.dedup();
        pids
    }

    /// A log and its rotation, oldest first: 3 and 4 copies of the fixture.
    fn rotated_log(dir: &Path) -> Vec<PathBuf> {
        let older = dir.join("audit.log.1");
        let newer = dir.join("audit.log");
        std::fs::write(&older, log(3, 0)).expect("write");
        std::fs::write(&newer, log(4, 10_000)).expect("write");
        vec![older, newer]
    }

    fn one_thread(paths: &[PathBuf], pid: Pid) -> Vec<AuditSignal> {
        one_thread_in(paths, None, None, pid)
    }

    fn one_thread_in(
        paths: &[PathBuf],
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        pid: Pid,
    ) -> Vec<AuditSignal> {
        let readers = paths
            .iter()
            .map(|p| span::open_window(p, since, until).expect("open"));
        let mut log = AuditLog::from_readers(readers).events_for_target(pid);
        if let Some(t) = since {
            log = log.since(t);
        }
        if let Some(t) = until {
            log = log.until(t);
        }
        log.collect::<Result<_, _>>().expect("read")
    }

    #[test]
    fn same_events_as_one_thread_in_a_time_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = rotated_log(dir.path());
        let at = |ms: i64| DateTime::from_timestamp_millis(1_795_000_000_000 + ms).expect("a time");
        // From the middle of the older file to the middle of the newer.
        let (since, until) = (Some(at(300)), Some(at(100_500)));
        let mut found = 0;
        for threads in [2, 3] {
            let split = Split {
                threads,
                min_part: 1,
                margin: 4096,
            };
            for pid in pids() {
                let want = one_thread_in(&paths, since, until, pid);
                found += want.len();
                let got = split.events(&paths, since, until, pid).expect("split");
                assert_eq!(got, want, "pid {pid}, {threads} threads");
            }
        }
        let all: usize = pids()
            .into_iter()
            .map(|p| one_thread(&paths, p).len())
            .sum();
        assert!(
            found > 0 && found < 2 * all,
            "the window keeps some: {found} of {all}"
        );
    }

    #[test]
    fn same_events_as_one_thread_for_every_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = rotated_log(dir.path());
        let size: u64 = paths
            .iter()
            .map(|p| std::fs::metadata(p).expect("stat").len())
            .sum();
        let pids = pids();
        assert!(pids.len() > 50);
        for threads in [2, 3, 7] {
            // Margins from less than one event to several.
            for margin in [300, 4096, 64 << 10] {
                let split = Split {
                    threads,
                    min_part: 1,
                    margin,
                };
                let segments: Vec<Segment> = paths
                    .iter()
                    .map(|p| Segment::of(p, None, None).expect("window"))
                    .collect();
                let cuts = split.cuts(&segments).expect("cuts");
                assert_eq!(cuts.len(), threads - 1, "{size} bytes");
                for pid in &pids {
                    let want = one_thread(&paths, *pid);
                    let got = split.events(&paths, None, None, *pid).expect("split");
                    assert_eq!(got, want, "pid {pid}, {threads} threads, margin {margin}");
                }
            }
        }
    }

    #[test]
    fn pieces_own_the_bytes_between_cuts_and_read_a_margin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let text = log(2, 0);
        std::fs::write(&path, &text).expect("write");
        let segments = vec![Segment::of(&path, None, None).expect("window")];
        assert!(segments[0].raw);
        let split = Split {
            threads: 2,
            min_part: 1,
            margin: 1000,
        };
        let cuts = split.cuts(&segments).expect("cuts");
        let [cut] = cuts[..] else {
            panic!("one cut: {cuts:?}")
        };
        assert_eq!(text[cut.offset as usize - 1], b'\n');
        let parts = split.parts(&segments, &cuts).expect("parts");
        let (a, b) = (&parts[0][0], &parts[1][0]);
        assert_eq!((a.segment, b.segment), (0, 0));
        assert_eq!(a.read.start, 0);
        assert_eq!(a.owned, 0..cut.offset);
        // A margin of whole lines: from the first line start 1000 bytes away.
        assert!(a.read.end >= cut.offset + 1000 && a.read.end < cut.offset + 1000 + 4096);
        assert!(b.read.start >= cut.offset - 1000 && b.read.start < cut.offset);
        assert_eq!(text[a.read.end as usize - 1], b'\n');
        assert_eq!(text[b.read.start as usize - 1], b'\n');
        assert_eq!(b.owned.start, cut.offset - b.read.start);
        assert_eq!(b.owned.end, u64::MAX);
        assert_eq!(b.read.end, text.len() as u64);
    }

    #[test]
    fn small_logs_and_interpreted_text_are_one_part() {
        let dir = tempfile::tempdir().expect("tempdir");
        let raw = dir.path().join("raw.log");
        let text = dir.path().join("ausearch.txt");
        std::fs::write(&raw, log(1, 0)).expect("write");
        std::fs::write(
            &text,
            include_bytes!("../../tests/fixtures/audit/audit-samples-interpreted.txt"),
        )
        .expect("write");
        let segment = |p: &Path| Segment::of(p, None, None).expect("window");
        let big = Split {
            threads: 4,
            min_part: 1 << 30,
            margin: 1000,
        };
        assert!(big.cuts(&[segment(&raw)]).expect("cuts").is_empty());
        let small = Split {
            threads: 4,
            min_part: 1,
            margin: 1000,
        };
        assert!(small.cuts(&[segment(&text)]).expect("cuts").is_empty());
        assert_eq!(small.cuts(&[segment(&raw)]).expect("cuts").len(), 3);
    }
}
