//! Reading recordings back: files in any order, each line on its own.
//!
//! A recorder killed with SIGKILL leaves a last line cut in the middle; a
//! log shipper or a disk hiccup may leave a garbled one. Neither stops the
//! reader: a cut last line is reported as truncated, other unreadable
//! lines are counted, and everything else is used.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::analysis::roles::Role;
use crate::error::Error;
use crate::event::{RawEvent, Signal};
use crate::model::{Argv, Peers, Pid, Process, Snapshot, Tid};
use crate::record::format::{
    EndReason, FileStart, HeaderLine, Line, SCHEMA, SelectionLine, SnapshotReason,
};

/// The header of one file, parsed.
#[derive(Debug, Clone)]
pub struct Header {
    pub started_at: DateTime<Utc>,
    pub file_started_at: DateTime<Utc>,
    pub file_start: FileStart,
    pub part: u32,
    pub recorder_pid: i32,
    pub hostname: String,
    pub boot_id: String,
    pub selection: SelectionLine,
    pub signals: Vec<Signal>,
    pub via: String,
    pub oom_kill: u64,
}

impl Header {
    fn from_line(h: HeaderLine) -> Header {
        Header {
            started_at: h.started_at.0,
            file_started_at: h.file_started_at.0,
            file_start: h.file_start,
            part: h.part,
            recorder_pid: h.recorder_pid,
            hostname: h.hostname,
            boot_id: h.boot_id,
            selection: h.selection,
            signals: h.signals.iter().filter_map(|s| Signal::parse(s)).collect(),
            via: h.via,
            oom_kill: h.oom_kill,
        }
    }
}

/// A snapshot line rebuilt into model types.
#[derive(Debug, Clone)]
pub struct RecordedSnapshot {
    pub time: DateTime<Utc>,
    pub reason: SnapshotReason,
    /// The recorded processes; the others in `snapshot` are ancestors.
    pub recorded: Vec<Pid>,
    pub snapshot: Snapshot,
    /// Roles as the recorder computed them on the whole machine.
    pub roles: HashMap<Pid, Role>,
    /// Readers of stdout and stderr.
    pub peers: Peers,
    /// Thread ids of the recorded processes and their close ancestors.
    pub tids: HashMap<Pid, Vec<Tid>>,
}

impl RecordedSnapshot {
    /// Who reads `pid`'s stdout and stderr (for verdicts'
    /// `Context::readers`).
    pub fn readers(&self, pid: Pid) -> Option<Vec<Pid>> {
        if !self.peers.by_fd.contains_key(&(pid, 1)) && !self.peers.by_fd.contains_key(&(pid, 2)) {
            return None;
        }
        let mut r: Vec<Pid> = self
            .peers
            .of(pid, 1)
            .iter()
            .chain(self.peers.of(pid, 2))
            .map(|p| p.pid)
            .collect();
        r.sort();
        r.dedup();
        Some(r)
    }
}

/// One usable line, in file order.
#[derive(Debug, Clone)]
pub enum Item {
    Header(Box<Header>),
    Snapshot(Box<RecordedSnapshot>),
    /// A process outside the snapshots that later lines refer to.
    Process {
        time: DateTime<Utc>,
        process: Box<Process>,
        exited_at: Option<DateTime<Utc>>,
    },
    /// A signal, fork, exec, exit or lost line; `argv` for an exec;
    /// `repeats`: identical signals this one also stands for, the first
    /// at `since`.
    Event {
        event: RawEvent,
        argv: Option<Argv>,
        repeats: u64,
        since: Option<DateTime<Utc>>,
    },
    Oom {
        time: DateTime<Utc>,
        delta: u64,
    },
    End {
        time: DateTime<Utc>,
        reason: EndReason,
        /// The signal that stopped the recorder.
        signal: Option<String>,
    },
}

impl Item {
    /// When it happened, for lines that say.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        match self {
            Item::Header(h) => Some(h.file_started_at),
            Item::Snapshot(s) => Some(s.time),
            Item::Process { time, .. } | Item::Oom { time, .. } | Item::End { time, .. } => {
                Some(*time)
            }
            Item::Event { event, .. } => Some(match event {
                RawEvent::Signal(s) => s.time,
                RawEvent::Fork { time, .. }
                | RawEvent::Exec { time, .. }
                | RawEvent::Exit { time, .. }
                | RawEvent::Lost { time, .. } => *time,
            }),
        }
    }
}

/// What one file held.
#[derive(Debug, Clone, Default)]
pub struct FileSummary {
    pub path: PathBuf,
    pub lines: usize,
    /// Lines that are not JSON, or not a recording line.
    pub garbage: usize,
    /// Lines of a type this version does not know.
    pub unknown: usize,
    /// The last line was cut short (no newline, and not valid JSON).
    pub truncated: bool,
    pub headers: usize,
    /// The file ends with an `end` line: its recorder closed it.
    pub closed: bool,
}

/// One or more files of a recording, merged in time order.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub files: Vec<FileSummary>,
    pub items: Vec<Item>,
}

impl Recording {
    pub fn garbage(&self) -> usize {
        self.files.iter().map(|f| f.garbage).sum()
    }

    pub fn truncated(&self) -> usize {
        self.files.iter().filter(|f| f.truncated).count()
    }

    /// The raw events in order: signals, forks, execs, exits, losses.
    pub fn events(&self) -> impl Iterator<Item = &RawEvent> {
        self.items.iter().filter_map(|i| match i {
            Item::Event { event, .. } => Some(event),
            _ => None,
        })
    }

    pub fn headers(&self) -> impl Iterator<Item = &Header> {
        self.items.iter().filter_map(|i| match i {
            Item::Header(h) => Some(h.as_ref()),
            _ => None,
        })
    }

    pub fn snapshots(&self) -> impl Iterator<Item = &RecordedSnapshot> {
        self.items.iter().filter_map(|i| match i {
            Item::Snapshot(s) => Some(s.as_ref()),
            _ => None,
        })
    }

    pub fn first_snapshot(&self) -> Option<&RecordedSnapshot> {
        self.snapshots().next()
    }

    /// First and last times seen.
    pub fn span(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let mut times = self.items.iter().filter_map(Item::time);
        let first = times.next()?;
        let (lo, hi) = times.fold((first, first), |(lo, hi), t| (lo.min(t), hi.max(t)));
        Some((lo, hi))
    }

    /// Lost event counts with their times.
    pub fn losses(&self) -> Vec<(DateTime<Utc>, u64)> {
        self.events()
            .filter_map(|e| match e {
                RawEvent::Lost { time, count } => Some((*time, *count)),
                _ => None,
            })
            .collect()
    }
}

/// Reads recording files (FILE.1 and FILE, in any order: they are put in
/// the order they were written).
pub fn read_recordings(files: &[PathBuf]) -> Result<Recording, Error> {
    /// A parsed file with its sort key (first time) and position given.
    type Parsed = (Option<DateTime<Utc>>, usize, FileSummary, Vec<Item>);
    let mut parsed: Vec<Parsed> = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (summary, items) = parse_file(path, &bytes)?;
        let key = items.iter().find_map(|i| match i {
            Item::Header(h) => Some(h.file_started_at),
            _ => None,
        });
        parsed.push((
            key.or_else(|| items.iter().find_map(Item::time)),
            i,
            summary,
            items,
        ));
    }
    // Files without any time go where they were given.
    parsed.sort_by_key(|(key, i, _, _)| (*key, *i));
    let mut rec = Recording::default();
    for (_, _, summary, items) in parsed {
        rec.files.push(summary);
        rec.items.extend(items);
    }
    if rec.headers().next().is_none() {
        let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::Usage(format!(
            "{}: not a ptree recording (no {SCHEMA} header line)",
            names.join(", ")
        )));
    }
    Ok(rec)
}

/// Parses one file's bytes.
pub fn parse_file(path: &Path, bytes: &[u8]) -> Result<(FileSummary, Vec<Item>), Error> {
    let mut summary = FileSummary {
        path: path.to_path_buf(),
        ..FileSummary::default()
    };
    let mut items = Vec::new();
    let ends_with_newline = bytes.last() == Some(&b'\n');
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.is_empty() {
        return Ok((summary, items));
    }
    let count = body.split(|&b| b == b'\n').count();
    for (n, raw) in body.split(|&b| b == b'\n').enumerate() {
        let last = n + 1 == count;
        summary.lines += 1;
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line = match std::str::from_utf8(raw)
            .ok()
            .and_then(|s| serde_json::from_str::<Line>(s).ok())
        {
            Some(l) => l,
            None if last && !ends_with_newline => {
                summary.truncated = true;
                continue;
            }
            None => {
                summary.garbage += 1;
                continue;
            }
        };
        summary.closed = matches!(line, Line::End(_));
        match line {
            Line::Header(h) => {
                if h.schema != SCHEMA {
                    return Err(Error::Usage(format!(
                        "{}: line {}: schema {} is not supported by this ptree (it reads {SCHEMA})",
                        path.display(),
                        n + 1,
                        h.schema
                    )));
                }
                summary.headers += 1;
                items.push(Item::Header(Box::new(Header::from_line(h))));
            }
            Line::Snapshot(s) => {
                let mut peers = Peers::default();
                let mut tids = HashMap::new();
                for p in &s.processes {
                    p.peers_into(&mut peers);
                    if !p.tids.is_empty() {
                        tids.insert(Pid(p.pid), p.tids.iter().map(|&t| Tid(t)).collect());
                    }
                }
                let roles = crate::record::format::roles_of(&s);
                let processes: Vec<Process> = s.processes.iter().map(|p| p.to_process()).collect();
                let snapshot = Snapshot::new(processes, s.time.0, 100, Pid(0));
                items.push(Item::Snapshot(Box::new(RecordedSnapshot {
                    time: s.time.0,
                    reason: s.reason,
                    recorded: s.recorded.iter().map(|&p| Pid(p)).collect(),
                    snapshot,
                    roles,
                    peers,
                    tids,
                })));
            }
            Line::Process(p) => items.push(Item::Process {
                time: p.time.0,
                exited_at: p.process.exited_at.map(|t| t.0),
                process: Box::new(p.process.to_process()),
            }),
            Line::Signal(s) => items.push(Item::Event {
                event: RawEvent::Signal(s.to_raw()),
                argv: None,
                repeats: s.repeats,
                since: s.since.map(|t| t.0),
            }),
            Line::Fork(f) => items.push(Item::Event {
                event: f.to_raw(),
                argv: None,
                repeats: 0,
                since: None,
            }),
            Line::Exec(e) => {
                let (event, argv) = e.to_raw();
                items.push(Item::Event {
                    event,
                    argv: Some(argv),
                    repeats: 0,
                    since: None,
                });
            }
            Line::Exit(e) => items.push(Item::Event {
                event: e.to_raw(),
                argv: None,
                repeats: 0,
                since: None,
            }),
            Line::Lost(l) => items.push(Item::Event {
                event: RawEvent::Lost {
                    time: l.time.0,
                    count: l.count,
                },
                argv: None,
                repeats: 0,
                since: None,
            }),
            Line::Oom(o) => items.push(Item::Oom {
                time: o.time.0,
                delta: o.delta,
            }),
            Line::End(e) => items.push(Item::End {
                time: e.time.0,
                reason: e.reason,
                signal: e.signal,
            }),
            Line::Unknown => summary.unknown += 1,
        }
    }
    Ok((summary, items))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"type":"header","schema":"ptree.recording/1","ptree_version":"0.1.0","started_at":"2026-01-01T00:00:00.000000Z","file_started_at":"2026-01-01T00:00:00.000000Z","file_start":"start","part":1,"recorder_pid":10,"hostname":"h","boot_id":"b","selection":{"kind":"pids","pids":[20]},"signals":["SIGTERM","SIGCHLD"],"via":"tracefs","oom_kill":0,"ticks_per_second":100}"#;
    const SNAPSHOT: &str = r#"{"type":"snapshot","time":"2026-01-01T00:00:00.100000Z","reason":"start","recorded":[20],"processes":[{"pid":1,"ppid":0,"pgid":1,"sid":1,"comm":"init","argv":["/sbin/init"],"start_time":"2025-12-31T00:00:00.000000Z","start_ticks":1,"state":"S","uid":0,"threads":1,"role":"other"},{"pid":20,"ppid":1,"pgid":20,"sid":20,"comm":"sleep","argv":["sleep","1000","a\\x0ab"],"start_time":"2025-12-31T00:00:01.000000Z","start_ticks":100,"state":"S","uid":0,"threads":1,"role":"other","tids":[20],"stdout":{"kind":"pipe","target":"pipe:[77]","peers":[{"pid":1,"comm":"init"}],"peers_unknown":false}}]}"#;
    const SIGNAL: &str = r#"{"type":"signal","time":"2026-01-01T00:00:01.000000Z","signal":"SIGTERM","signo":15,"si_code":0,"result":"delivered","group":true,"sender_pid":30,"sender_tid":30,"sender_comm":"kill","target_tid":20,"target_comm":"sleep","via":"tracefs"}"#;

    fn parse(text: &str) -> (FileSummary, Vec<Item>) {
        parse_file(Path::new("t.jsonl"), text.as_bytes()).unwrap()
    }

    #[test]
    fn rebuilds_the_snapshot_and_events() {
        let text = format!("{HEADER}\n{SNAPSHOT}\n{SIGNAL}\n");
        let (summary, items) = parse(&text);
        assert_eq!(summary.garbage, 0);
        assert!(!summary.truncated);
        let Item::Snapshot(s) = &items[1] else {
            panic!("{:?}", items[1]);
        };
        let sleep = s.snapshot.get(Pid(20)).unwrap();
        assert_eq!(sleep.ppid, Pid(1));
        assert_eq!(sleep.argv.0[2], b"a\nb");
        assert_eq!(s.readers(Pid(20)), Some(vec![Pid(1)]));
        assert_eq!(s.readers(Pid(1)), None);
        let Item::Event {
            event: RawEvent::Signal(sig),
            ..
        } = &items[2]
        else {
            panic!();
        };
        assert_eq!(sig.signal, Signal::TERM);
        assert_eq!(sig.sender_pid, Some(Pid(30)));
    }

    #[test]
    fn a_cut_last_line_and_garbage_are_not_fatal() {
        let cut = &SIGNAL[..SIGNAL.len() / 2];
        let text = format!("{HEADER}\nnot json\n{{\"type\":\"nope\"}}\n{SNAPSHOT}\n{cut}");
        let (summary, items) = parse(&text);
        assert!(summary.truncated);
        assert_eq!(summary.garbage, 1);
        assert_eq!(summary.unknown, 1);
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn another_schema_is_refused() {
        let text = HEADER.replace("ptree.recording/1", "ptree.recording/2");
        assert!(parse_file(Path::new("x"), text.as_bytes()).is_err());
    }

    #[test]
    fn files_are_put_in_write_order() {
        let dir = tempfile::tempdir().unwrap();
        let older = dir.path().join("r.jsonl.1");
        let newer = dir.path().join("r.jsonl");
        std::fs::write(&older, format!("{HEADER}\n{SNAPSHOT}\n")).unwrap();
        let h2 = HEADER.replace("\"part\":1", "\"part\":2").replace(
            "00:00:00.000000Z\",\"file_start\"",
            "00:00:05.000000Z\",\"file_start\"",
        );
        std::fs::write(&newer, format!("{h2}\n{SIGNAL}\n")).unwrap();
        let rec = read_recordings(&[newer.clone(), older.clone()]).unwrap();
        assert_eq!(rec.files[0].path, older);
        assert_eq!(rec.headers().map(|h| h.part).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(rec.events().count(), 1);
    }
}
