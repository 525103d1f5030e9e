//! The recording file: JSON lines, mode 0600, flushed at least every
//! second, rotated at a size.
//!
//! A recording holds command lines, which may hold secrets: the file is
//! created with mode 0600 and `fchmod`ed to 0600 again, so neither a
//! permissive umask nor a file left by someone else widens it. A symlink
//! at the path is refused (`O_NOFOLLOW`).
//!
//! Rotation keeps one previous file: FILE becomes FILE.1 (replacing the
//! older FILE.1) and a new FILE starts with its own header and snapshot,
//! so either file can be read alone. A restarted recorder does the same
//! with the FILE it finds, so the previous run's file stays intact.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::record::format::Line;

/// Files are flushed to the kernel at least this often: what a SIGKILLed
/// recorder can lose.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// The smallest `--max-bytes` accepted: below it, a snapshot alone would
/// fill a file.
pub const MIN_MAX_BYTES: u64 = 16 * 1024;

const MODE: u32 = 0o600;

/// The previous file of a rotation: `FILE.1`.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// Creates (or truncates) `path` with mode 0600 whatever the umask.
fn create_private(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    // The mode given to open() only applies to a new file, and goes
    // through the umask: set it explicitly (fchmod).
    file.set_permissions(Permissions::from_mode(MODE))?;
    Ok(file)
}

/// Writes lines to FILE, rotating it at `max_bytes`.
pub struct RecordingWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// Bytes in the current file.
    bytes: u64,
    /// Bytes of the current file's header and first snapshot.
    preamble: u64,
    max_bytes: Option<u64>,
    last_flush: Instant,
    /// The line being written, reused.
    buf: Vec<u8>,
    total_bytes: u64,
}

impl RecordingWriter {
    /// Opens FILE for a new run. An existing non-empty FILE (a previous run
    /// of the recorder) is first renamed FILE.1. Returns whether it was.
    pub fn create(path: &Path, max_bytes: Option<u64>) -> Result<(RecordingWriter, bool), Error> {
        let moved = match std::fs::symlink_metadata(path) {
            Ok(m) if m.len() > 0 || m.file_type().is_symlink() => {
                std::fs::rename(path, rotated_path(path)).map_err(|e| Error::io(path, e))?;
                true
            }
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io(path, e)),
        };
        let file = create_private(path).map_err(|e| open_error(path, e))?;
        Ok((
            RecordingWriter {
                path: path.to_path_buf(),
                out: BufWriter::with_capacity(256 * 1024, file),
                bytes: 0,
                preamble: 0,
                max_bytes,
                last_flush: Instant::now(),
                buf: Vec::with_capacity(4096),
                total_bytes: 0,
            },
            moved,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the current file.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes written over every file of this run.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Serialises `line` into the pending buffer (see [`Self::fits`] and
    /// [`Self::commit`]).
    pub fn encode(&mut self, line: &Line) -> Result<(), Error> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, line)
            .map_err(|e| Error::io(&self.path, io::Error::new(io::ErrorKind::InvalidData, e)))?;
        self.buf.push(b'\n');
        Ok(())
    }

    /// Whether the pending line fits in the current file. A file always
    /// takes some events after its preamble before it rotates (at least
    /// half of `max_bytes`), so a snapshot larger than the limit cannot
    /// make every line rotate.
    pub fn fits(&self) -> bool {
        let Some(max) = self.max_bytes else {
            return true;
        };
        let body = self.bytes - self.preamble;
        self.bytes + self.buf.len() as u64 <= max || body < max / 2
    }

    /// Appends the pending line.
    pub fn commit(&mut self) -> Result<(), Error> {
        self.out
            .write_all(&self.buf)
            .map_err(|e| Error::io(&self.path, e))?;
        self.bytes += self.buf.len() as u64;
        self.total_bytes += self.buf.len() as u64;
        Ok(())
    }

    /// Encodes and appends, whatever the size (headers, snapshots).
    pub fn write(&mut self, line: &Line) -> Result<(), Error> {
        self.encode(line)?;
        self.commit()
    }

    /// Marks the end of the header and first snapshot of this file.
    pub fn end_preamble(&mut self) {
        self.preamble = self.bytes;
    }

    /// Flushes when the last flush is [`FLUSH_INTERVAL`] old.
    pub fn flush_if_due(&mut self) -> Result<(), Error> {
        if self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), Error> {
        self.last_flush = Instant::now();
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }

    /// Flushes and asks the disk to keep it (rotation, stop).
    pub fn sync(&mut self) -> Result<(), Error> {
        self.flush()?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(|e| Error::io(&self.path, e))
    }

    /// FILE → FILE.1, and a new empty FILE. The caller writes the new
    /// file's header and snapshot, then calls [`Self::end_preamble`].
    pub fn rotate(&mut self) -> Result<(), Error> {
        self.sync()?;
        std::fs::rename(&self.path, rotated_path(&self.path))
            .map_err(|e| Error::io(&self.path, e))?;
        let file = create_private(&self.path).map_err(|e| open_error(&self.path, e))?;
        self.out = BufWriter::with_capacity(256 * 1024, file);
        self.bytes = 0;
        self.preamble = 0;
        Ok(())
    }
}

fn open_error(path: &Path, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        return Error::Usage(format!(
            "{}: the directory does not exist (create it, or use systemd's LogsDirectory=)",
            path.display()
        ));
    }
    if e.raw_os_error() == Some(libc::ELOOP) {
        return Error::Usage(format!(
            "{}: is a symbolic link; refusing to write a recording through it",
            path.display()
        ));
    }
    Error::io(path, e)
}

/// Parses `--max-bytes`: `1048576`, `512K`, `100M`, `2G` (powers of 1024;
/// `KiB`, `MB`… accepted).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size '{s}': write it like 1048576, 512K, 100M or 2G"))?;
    let unit = unit.trim().to_ascii_uppercase();
    let mult: u64 = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("invalid size unit in '{s}': use K, M or G")),
    };
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size '{s}' is out of range"))?;
    if bytes < MIN_MAX_BYTES {
        return Err(format!(
            "--max-bytes {s} is too small: at least {} KiB, so a file holds more than its snapshot",
            MIN_MAX_BYTES / 1024
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::format::{LostLine, Time};
    use chrono::Utc;
    use std::os::unix::fs::MetadataExt;

    fn lost(n: u64) -> Line {
        Line::Lost(LostLine {
            time: Time(Utc::now()),
            count: n,
        })
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("20000"), Ok(20000));
        assert!(parse_size("10").is_err());
        assert!(parse_size("3X").is_err());
    }

    #[test]
    fn private_mode_and_restart_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        // A file left by an earlier run, world-readable.
        std::fs::write(&path, "old run\n").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        let (mut w, moved) = RecordingWriter::create(&path, None).unwrap();
        assert!(moved);
        w.write(&lost(1)).unwrap();
        w.flush().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(rotated_path(&path)).unwrap(),
            "old run\n"
        );
        assert!(std::fs::read_to_string(&path).unwrap().contains("\"lost\""));
    }

    #[test]
    fn rotation_only_after_some_body() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let (mut w, _) = RecordingWriter::create(&path, Some(MIN_MAX_BYTES)).unwrap();
        // A preamble larger than the limit.
        for _ in 0..400 {
            w.write(&lost(1)).unwrap();
        }
        w.end_preamble();
        w.encode(&lost(2)).unwrap();
        assert!(w.fits(), "no body yet: no rotation");
        let mut rotated = false;
        for _ in 0..400 {
            w.encode(&lost(3)).unwrap();
            if !w.fits() {
                w.rotate().unwrap();
                rotated = true;
                break;
            }
            w.commit().unwrap();
        }
        assert!(rotated);
        w.commit().unwrap();
        w.flush().unwrap();
        assert!(rotated_path(&path).exists());
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    }
}
