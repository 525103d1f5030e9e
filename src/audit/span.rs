//! Reading only the part of a log file that covers a time window.
//!
//! auditd appends records in time order (records of concurrent events
//! interleave by milliseconds), so the byte offset of a time is found by
//! bisection, reading a few kilobytes per step, instead of parsing the
//! file from its start. A window of a minute in a log of gigabytes costs a
//! few dozen small reads.
//!
//! Only the raw format is bisected; `ausearch -i` text, or a file whose
//! first record cannot be read, is read whole (the time filter still
//! applies to every event).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};

use super::record::{parse_stamp, split_header};
use super::{Format, detect};
use crate::error::Error;

/// Out-of-order slack: records this much older than one before them are
/// still found. Interleaving is milliseconds; a clock step can be more.
const MARGIN_MS: i64 = 5_000;

/// Bisection stops when the range is this small; the rest is read.
const PROBE: usize = 16 * 1024;

/// Opens `path` positioned on the part that may hold records from
/// `since` to `until` (both optional), ready for
/// [`super::AuditLog::from_readers`].
pub fn open_window(
    path: &Path,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<(PathBuf, Box<dyn BufRead>), Error> {
    let (range, _) = window(path, since, until)?;
    Ok((path.to_path_buf(), open_range(path, range)?))
}

/// What [`open_window`] would read of `path`: its byte range, and whether
/// the file is a raw log (which alone may be cut into parts at any line).
///
/// A pipe (`ausearch -i | ptree … --audit-log /dev/stdin`) cannot seek,
/// and what is read from it to look is gone: it is read whole, from where
/// it is, and never cut.
pub(crate) fn window(
    path: &Path,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<(Range<u64>, bool), Error> {
    let io_err = |e| Error::io(path, e);
    let mut file = File::open(path).map_err(io_err)?;
    if !file.metadata().map_err(io_err)?.is_file() {
        return Ok((0..u64::MAX, false));
    }
    let range = byte_range(&mut file, since, until).map_err(io_err)?;
    let raw = matches!(first_record(&mut file, 0), Ok(Some((_, _, Format::Raw))));
    Ok((range, raw))
}

/// A reader of `range` of `path`.
pub(crate) fn open_range(path: &Path, range: Range<u64>) -> Result<Box<dyn BufRead>, Error> {
    let io_err = |e| Error::io(path, e);
    let mut file = File::open(path).map_err(io_err)?;
    if range.start > 0 {
        file.seek(SeekFrom::Start(range.start)).map_err(io_err)?;
    }
    Ok(Box::new(BufReader::with_capacity(
        256 * 1024,
        file.take(range.end.saturating_sub(range.start)),
    )))
}

/// The first line start at or after `offset` in `path`.
pub(crate) fn line_start(path: &Path, offset: u64) -> Result<u64, Error> {
    let io_err = |e| Error::io(path, e);
    let mut file = File::open(path).map_err(io_err)?;
    let size = file.seek(SeekFrom::End(0)).map_err(io_err)?;
    boundary(&mut file, size, offset).map_err(io_err)
}

/// The byte range of a seekable log that holds the records stamped from
/// `since` to `until`, give or take [`MARGIN_MS`]: it starts and ends on
/// line boundaries.
pub fn byte_range<F: Read + Seek>(
    file: &mut F,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> io::Result<Range<u64>> {
    let size = file.seek(SeekFrom::End(0))?;
    let whole = 0..size;
    if since.is_none() && until.is_none() {
        return Ok(whole);
    }
    match first_record(file, 0)? {
        Some((_, _, Format::Raw)) => {}
        _ => return Ok(whole),
    }
    let margin = Duration::milliseconds(MARGIN_MS);
    let start = match since {
        Some(t) => first_from(file, size, t - margin)?,
        None => 0,
    };
    let end = match until {
        Some(t) => first_from(file, size, t + margin)?,
        None => size,
    };
    Ok(start..end.max(start))
}

/// The offset of the first record stamped `time` or later (the end when
/// there is none), if the log is in time order.
fn first_from<F: Read + Seek>(file: &mut F, size: u64, time: DateTime<Utc>) -> io::Result<u64> {
    // Bisection keeps: the first record starting after `lo` is older than
    // `time` (or `lo` is 0), and every record starting after `hi` is not
    // (or `hi` is the end).
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > PROBE as u64 {
        let mid = lo + (hi - lo) / 2;
        match first_record(file, mid)? {
            Some((_, t, _)) if t < time => lo = mid,
            Some((at, _, _)) if at < hi => hi = at,
            _ => hi = mid,
        }
    }
    // Then line by line from `lo` to the line holding `hi`.
    let mut at = boundary(file, size, lo)?;
    let end = boundary(file, size, hi)?;
    file.seek(SeekFrom::Start(at))?;
    let mut lines = BufReader::new(file.by_ref().take(end - at));
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = lines.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(end);
        }
        if let Some((t, _)) = split_header(&line).and_then(|h| parse_stamp(h.stamp))
            && t >= time
        {
            return Ok(at);
        }
        at += n as u64;
    }
}

/// The first line start at or after `offset`.
fn boundary<F: Read + Seek>(file: &mut F, size: u64, offset: u64) -> io::Result<u64> {
    if offset == 0 || offset >= size {
        return Ok(offset.min(size));
    }
    file.seek(SeekFrom::Start(offset - 1))?;
    let mut buf = Vec::with_capacity(PROBE);
    file.by_ref().take(PROBE as u64).read_to_end(&mut buf)?;
    Ok(match buf.iter().position(|&b| b == b'\n') {
        Some(i) => offset + i as u64,
        // A line longer than any record: nothing of the window is in it.
        None => (offset - 1 + buf.len() as u64).min(size),
    })
}

/// The first record that starts after `offset` (at it, for 0): its
/// offset, its time, and its format. Lines that are not raw records are
/// passed over; `None` when none is found in the next few kilobytes.
fn first_record<F: Read + Seek>(
    file: &mut F,
    offset: u64,
) -> io::Result<Option<(u64, DateTime<Utc>, Format)>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(PROBE);
    file.by_ref().take(PROBE as u64).read_to_end(&mut buf)?;
    let mut at = 0;
    if offset > 0 {
        // Whether `offset` starts a line is unknown: skip to the next one.
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => at = i + 1,
            None => return Ok(None),
        }
    }
    while at < buf.len() {
        let rest = &buf[at..];
        let Some(len) = rest.iter().position(|&b| b == b'\n') else {
            // A line cut by the probe's end.
            return Ok(None);
        };
        let line = &rest[..len];
        match detect(line) {
            Some(Format::Raw) => {
                if let Some((time, _)) = split_header(line).and_then(|h| parse_stamp(h.stamp)) {
                    return Ok(Some((offset + at as u64, time, Format::Raw)));
                }
            }
            Some(format) => return Ok(Some((offset + at as u64, DateTime::UNIX_EPOCH, format))),
            None => {}
        }
        at += len + 1;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// One record per 100 ms from t=1000 s, `count` of them.
    fn log(count: u64) -> Vec<u8> {
        let mut text = Vec::new();
        for i in 0..count {
            let ms = 1_000_000 + i * 100;
            text.extend_from_slice(
                format!(
                    "type=SYSCALL msg=audit({}.{:03}:{i}): arch=c000003e syscall=62 success=yes exit=0 a0=64 a1=f a2=0 a3=0 pid=5 comm=\"padding-padding-padding\"\n",
                    ms / 1000,
                    ms % 1000
                )
                .as_bytes(),
            );
        }
        text
    }

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).expect("a time")
    }

    /// The times of the records in `text[range]`.
    fn times(text: &[u8], range: Range<u64>) -> Vec<i64> {
        let part = &text[range.start as usize..range.end as usize];
        assert!(range.start == 0 || text[range.start as usize - 1] == b'\n');
        assert!(part.is_empty() || part.ends_with(b"\n"));
        part.split(|&b| b == b'\n')
            .filter_map(|l| split_header(l).and_then(|h| parse_stamp(h.stamp)))
            .map(|(t, _)| t.timestamp_millis())
            .collect()
    }

    #[test]
    fn window_covers_the_times_asked_with_margin() {
        let text = log(20_000); // ~3 MB, 2000 s
        let mut file = Cursor::new(text.clone());
        let range = byte_range(&mut file, Some(at(1_500_000)), Some(at(1_560_000))).expect("io");
        let found = times(&text, range.clone());
        let first = found[0];
        let last = found[found.len() - 1];
        assert!(first <= 1_500_000 - MARGIN_MS, "{first}");
        assert!(
            first >= 1_500_000 - MARGIN_MS - 1000,
            "{first}: read too much"
        );
        // Records come every 100 ms: the last before the margin's end.
        assert!(last >= 1_560_000 + MARGIN_MS - 100, "{last}");
        assert!(
            last <= 1_560_000 + MARGIN_MS + 1000,
            "{last}: read too much"
        );
        assert!(range.end - range.start < text.len() as u64 / 20);
    }

    #[test]
    fn open_ends_and_windows_outside_the_log() {
        let text = log(5_000);
        let size = text.len() as u64;
        let mut file = Cursor::new(text.clone());
        assert_eq!(byte_range(&mut file, None, None).expect("io"), 0..size);
        let r = byte_range(&mut file, Some(at(1_200_000)), None).expect("io");
        assert_eq!(r.end, size);
        assert!(times(&text, r)[0] <= 1_195_000);
        let r = byte_range(&mut file, None, Some(at(1_100_000))).expect("io");
        assert_eq!(r.start, 0);
        assert!(*times(&text, r).last().expect("records") >= 1_104_900);
        // Before the log and after it.
        let r = byte_range(&mut file, Some(at(0)), Some(at(10))).expect("io");
        assert!(times(&text, r).is_empty());
        let r = byte_range(&mut file, Some(at(9_000_000)), None).expect("io");
        assert!(times(&text, r).is_empty());
        let r = byte_range(&mut file, Some(at(0)), None).expect("io");
        assert_eq!(r, 0..size);
    }

    #[test]
    fn interpreted_text_and_garbage_are_read_whole() {
        let interpreted = b"----\ntype=EOE msg=audit(11/21/26 08:19:43.057:2534) : \n".to_vec();
        let size = interpreted.len() as u64;
        let mut file = Cursor::new(interpreted);
        assert_eq!(
            byte_range(&mut file, Some(at(1_500_000)), None).expect("io"),
            0..size
        );
        let mut empty = Cursor::new(Vec::new());
        assert_eq!(byte_range(&mut empty, Some(at(0)), None).expect("io"), 0..0);
    }
}
