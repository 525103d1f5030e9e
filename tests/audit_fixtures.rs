//! The audit log samples recorded on a real machine
//! (`tests/fixtures/audit/`): every case the recording script ran is
//! attributed as the script said it was, and `ausearch -i` text of the
//! same log gives the same events.
//!
//! The truth is read from `audit-samples-cases.txt` itself: which serials
//! belong to which case, and the pids the script printed. The only thing
//! written here by hand is which script output belongs to which case and
//! what each case name says (the syscall, the signal).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ptree::audit::{
    AuditLog, AuditSignal, Format, ParseStats, Proctitle, SignalSyscall, TargetArg, Timezone,
    default_log_files, parse_bytes,
};
use ptree::event::Signal;
use ptree::model::{Pgid, Pid, Tid};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audit")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture is readable")
}

fn raw_events() -> (Vec<AuditSignal>, ParseStats) {
    parse_bytes(&read("audit-samples.log"), Format::Auto, Timezone::utc())
}

/// What `audit-samples-cases.txt` says.
struct Cases {
    /// The recording script's pid.
    script: Pid,
    /// Case label → `(seconds.millis, serial)` of its events, in order.
    stamps: BTreeMap<String, Vec<(String, u64)>>,
    /// Case label → the note after its stamp, if any.
    notes: BTreeMap<String, String>,
    /// Script output: `CASE name` → the `key value` facts of its block.
    facts: BTreeMap<String, BTreeMap<String, String>>,
}

impl Cases {
    fn load() -> Cases {
        let text = String::from_utf8(read("audit-samples-cases.txt")).expect("UTF-8");
        let script = text
            .split("script pid ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|pid| pid.parse().ok())
            .map(Pid)
            .expect("the header names the script pid");
        let mut stamps: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
        let mut notes = BTreeMap::new();
        let mut facts: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            if let Some((label, rest)) = line.split_once(" audit(") {
                let (stamp, note) = rest.split_once(')').expect("a closing parenthesis");
                if !note.trim().is_empty() {
                    notes.insert(label.to_string(), note.trim().to_string());
                }
                let (time, serial) = stamp.split_once(':').expect("time:serial");
                stamps
                    .entry(label.to_string())
                    .or_default()
                    .push((time.to_string(), serial.parse().expect("a serial")));
                continue;
            }
            let words: Vec<&str> = if let Some(rest) = line.strip_prefix("CASE ") {
                let mut words = rest.split_whitespace();
                let name = words.next().expect("a case name").to_string();
                facts.entry(name.clone()).or_default();
                current = Some(name);
                words.collect()
            } else if line.starts_with("  ") {
                line.split_whitespace().collect()
            } else {
                current = None;
                continue;
            };
            let Some(case) = current.as_ref() else {
                continue;
            };
            let block = facts.entry(case.clone()).or_default();
            // `target=17472`, `target 17821`, `sender pid 17523`,
            // `sender/target pid 17757`, `child of 17470`, `pidfd 3`.
            let mut i = 0;
            while i < words.len() {
                let word = words[i];
                if let Some((k, v)) = word.split_once('=') {
                    block.insert(k.to_string(), v.trim_end_matches(',').to_string());
                } else if let Some(next) = words.get(i + 1) {
                    let key = match (word, *next) {
                        ("sender" | "sender/target", "pid") => {
                            i += 1;
                            word
                        }
                        ("of", _) => "parent",
                        _ => word,
                    };
                    if let Some(value) = words.get(i + 1).filter(|v| v.parse::<i64>().is_ok()) {
                        block.insert(key.to_string(), value.to_string());
                        i += 1;
                    }
                }
                i += 1;
            }
        }
        Cases {
            script,
            stamps,
            notes,
            facts,
        }
    }

    fn fact(&self, case: &str, key: &str) -> Option<i32> {
        self.facts.get(case)?.get(key)?.parse().ok()
    }

    fn pid(&self, case: &str, key: &str) -> Pid {
        Pid(self
            .fact(case, key)
            .unwrap_or_else(|| panic!("{case} has no {key}")))
    }
}

fn event_at<'a>(events: &'a [AuditSignal], time: &str, serial: u64) -> &'a AuditSignal {
    events
        .iter()
        .find(|e| {
            e.serial == serial
                && format!(
                    "{}.{:03}",
                    e.time.timestamp(),
                    e.time.timestamp_subsec_millis()
                ) == time
        })
        .unwrap_or_else(|| panic!("no event audit({time}:{serial})"))
}

fn target_pids(e: &AuditSignal) -> BTreeSet<Pid> {
    e.targets.iter().map(|t| t.pid).collect()
}

/// One case: the label of its serials, the name its script output has,
/// the syscall and the signal of each serial its name says (`None`: not
/// said).
struct Case {
    label: &'static str,
    output: &'static str,
    syscall: SignalSyscall,
    signals: &'static [Option<&'static str>],
}

const CASES: &[Case] = &[
    Case {
        label: "c_bash_term",
        output: "bash_kill_TERM",
        syscall: SignalSyscall::Kill,
        signals: &[Some("TERM")],
    },
    Case {
        label: "c_pgrp_term",
        output: "pgrp_kill_TERM",
        syscall: SignalSyscall::Kill,
        signals: &[Some("TERM")],
    },
    Case {
        label: "c_kill9",
        output: "binkill_KILL",
        syscall: SignalSyscall::Kill,
        signals: &[Some("KILL")],
    },
    Case {
        label: "c_py_oskill",
        output: "python_os_kill_TERM",
        syscall: SignalSyscall::Kill,
        signals: &[Some("TERM")],
    },
    Case {
        label: "c_py_pidfd",
        output: "python_pidfd_send_signal_TERM",
        syscall: SignalSyscall::PidfdSendSignal,
        signals: &[Some("TERM")],
    },
    Case {
        label: "c_py_tgkill",
        output: "ctypes_tgkill_USR1",
        syscall: SignalSyscall::Tgkill,
        signals: &[Some("USR1")],
    },
    Case {
        label: "c_py_tkill",
        output: "ctypes_tkill_HUP",
        syscall: SignalSyscall::Tkill,
        signals: &[Some("HUP")],
    },
    Case {
        label: "c_py_sigqueue",
        output: "ctypes_sigqueue_USR2",
        syscall: SignalSyscall::RtSigqueueinfo,
        signals: &[Some("USR2")],
    },
    Case {
        label: "c_py_self_pthread_kill",
        output: "python_pthread_kill_self_USR1",
        syscall: SignalSyscall::Tgkill,
        signals: &[Some("USR1")],
    },
    Case {
        label: "c_kill0",
        output: "bash_kill_0_probe",
        syscall: SignalSyscall::Kill,
        signals: &[Some("0"), Some("TERM")],
    },
    Case {
        label: "c_esrch",
        output: "bash_kill_nonexistent",
        syscall: SignalSyscall::Kill,
        signals: &[Some("TERM")],
    },
    Case {
        label: "c_ignored",
        output: "target_ignores_TERM",
        syscall: SignalSyscall::Kill,
        signals: &[Some("TERM"), None],
    },
    Case {
        label: "c_blocked",
        output: "target_blocks_USR1",
        syscall: SignalSyscall::Kill,
        signals: &[Some("USR1"), None],
    },
];

fn signal(name: &str) -> Signal {
    if name == "0" {
        return Signal(0);
    }
    Signal::parse(name).expect("a signal name")
}

#[test]
fn every_case_is_attributed_as_the_script_said() {
    let cases = Cases::load();
    let (events, stats) = raw_events();
    assert_eq!(stats.garbage, 0);
    assert_eq!(stats.incomplete, 0);

    for case in CASES {
        let stamps = &cases.stamps[case.label];
        assert_eq!(stamps.len(), case.signals.len(), "{}", case.label);
        let out = case.output;
        for ((time, serial), expected) in stamps.iter().zip(case.signals) {
            let e = event_at(&events, time, *serial);
            let what = format!("{} audit({time}:{serial})", case.label);
            assert_eq!(e.syscall, case.syscall, "{what}");
            if let Some(name) = expected {
                assert_eq!(e.signal, signal(name), "{what}");
            }

            // The sender: as printed, a child of the script, or the script.
            if let Some(sender) = cases
                .fact(out, "sender")
                .or_else(|| cases.fact(out, "sender/target"))
            {
                assert_eq!(e.sender.pid, Pid(sender), "{what}");
            } else if let Some(parent) = cases.fact(out, "parent") {
                assert_eq!(e.sender.ppid, Some(Pid(parent)), "{what}");
                assert_eq!(e.sender.comm, b"kill", "{what}: sent by /bin/kill");
            } else {
                assert!(
                    e.sender.pid == cases.script || e.sender.ppid == Some(cases.script),
                    "{what}: sent by the script or its subshell"
                );
            }

            // The target: the OBJ_PID records, and the arguments.
            if let Some(pgid) = cases.fact(out, "pgid") {
                let members: BTreeSet<Pid> = cases.facts[out]["members"]
                    .split(',')
                    .filter_map(|m| m.parse().ok())
                    .map(Pid)
                    .collect();
                assert_eq!(e.target_arg, TargetArg::ProcessGroup(Pgid(pgid)), "{what}");
                assert_eq!(target_pids(e), members, "{what}");
                assert!(members.iter().all(|&m| e.concerns(m)), "{what}");
                let raw = e.to_raw_signals();
                assert_eq!(raw.len(), members.len(), "{what}");
                assert!(
                    raw.iter()
                        .all(|r| r.group && r.sender_pid == Some(e.sender.pid))
                );
                continue;
            }
            let target = if cases.fact(out, "target").is_some() {
                cases.pid(out, "target")
            } else {
                cases.pid(out, "sender/target")
            };
            assert!(e.concerns(target), "{what}");
            let expected_arg = match case.syscall {
                SignalSyscall::Kill | SignalSyscall::RtSigqueueinfo => TargetArg::Pid(target),
                SignalSyscall::Tkill => TargetArg::Thread {
                    tgid: None,
                    tid: Tid(target.0),
                },
                SignalSyscall::Tgkill | SignalSyscall::RtTgsigqueueinfo => TargetArg::Thread {
                    tgid: Some(target),
                    tid: Tid(target.0),
                },
                SignalSyscall::PidfdSendSignal => {
                    TargetArg::PidFd(cases.fact(out, "pidfd").expect("pidfd"))
                }
            };
            assert_eq!(e.target_arg, expected_arg, "{what}");
            let raw = e.to_raw_signals();
            if case.label == "c_esrch" {
                // "No such process": nobody was signalled.
                assert!(!e.success, "{what}");
                assert_eq!(e.exit, Some(-i64::from(libc::ESRCH)), "{what}");
                assert!(e.targets.is_empty(), "{what}");
                assert!(raw.is_empty(), "{what}");
                continue;
            }
            assert!(e.success, "{what}");
            assert_eq!(target_pids(e), BTreeSet::from([target]), "{what}");
            if e.is_probe() {
                assert!(raw.is_empty(), "{what}: a probe sends nothing");
            } else {
                assert_eq!(raw.len(), 1, "{what}");
                assert_eq!(raw[0].target_tid, Tid(target.0), "{what}");
                assert_eq!(raw[0].sender_pid, Some(e.sender.pid), "{what}");
                assert_eq!(raw[0].signal, e.signal, "{what}");
                assert_eq!(raw[0].group, case.syscall.is_group(), "{what}");
            }
        }
    }
}

#[test]
fn a_group_of_21_is_one_event_with_21_targets() {
    let cases = Cases::load();
    let (events, _) = raw_events();
    let (time, serial) = &cases.stamps["pgrp_21_members"][0];
    let e = event_at(&events, time, *serial);
    // "(setsid sh + 20 sleeps, kill -TERM -- -19632 from bash pid 19058;
    // 21 OBJ_PID records in one event)"
    let note = &cases.notes["pgrp_21_members"];
    let number_after = |marker: &str| -> i32 {
        let rest = &note[note.find(marker).expect(marker) + marker.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().expect("a number")
    };
    let count: usize = note
        .split("; ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a record count");
    let signal_name = note
        .split("kill -")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("a signal");
    assert_eq!(e.signal, signal(signal_name));
    assert_eq!(e.sender.pid, Pid(number_after("bash pid ")));
    let pgid = number_after("-- -");
    assert_eq!(e.target_arg, TargetArg::ProcessGroup(Pgid(pgid)));
    assert_eq!(e.targets.len(), count);
    // The group's leader is the `sh` that setsid started.
    assert!(
        e.targets
            .iter()
            .any(|t| t.pid == Pid(pgid) && t.comm == b"sh")
    );
    assert_eq!(e.to_raw_signals().len(), count);
}

#[test]
fn every_event_belongs_to_a_case() {
    let cases = Cases::load();
    let (events, stats) = raw_events();
    let expected: BTreeSet<u64> = cases.stamps.values().flatten().map(|(_, s)| *s).collect();
    let seen: BTreeSet<u64> = events.iter().map(|e| e.serial).collect();
    assert_eq!(seen, expected);
    assert_eq!(events.len(), expected.len());
    assert_eq!(stats.events, events.len() as u64);
    assert_eq!(stats.lines, 72);
}

/// Target order is log order, which `ausearch -i` reverses, and its
/// proctitle has lost argument boundaries: compare those separately.
fn normalised(mut e: AuditSignal) -> (AuditSignal, String) {
    e.targets.sort_by_key(|t| t.pid);
    let title = e.sender.proctitle.display();
    e.sender.proctitle = Proctitle::Missing;
    (e, title)
}

#[test]
fn interpreted_text_gives_the_same_events() {
    let (raw, _) = raw_events();
    let (interpreted, stats) = parse_bytes(
        &read("audit-samples-interpreted.txt"),
        Format::Auto,
        Timezone::utc(),
    );
    assert_eq!(stats.garbage, 0);
    assert_eq!(raw.len(), interpreted.len());
    for (r, i) in raw.into_iter().zip(interpreted) {
        let what = format!("serial {}", r.serial);
        assert!(matches!(r.sender.proctitle, Proctitle::Argv(_)), "{what}");
        assert!(matches!(i.sender.proctitle, Proctitle::Joined(_)), "{what}");
        assert_eq!(normalised(r), normalised(i), "{what}");
    }
}

#[test]
fn rotated_files_read_as_one_log() {
    let log = read("audit-samples.log");
    let lines: Vec<&[u8]> = log.split_inclusive(|&b| b == b'\n').collect();
    let dir = tempfile::tempdir().expect("a temp dir");
    // Three files, the cuts inside events (the 21-member group included).
    let cuts = [0, 20, 50, lines.len()];
    for (n, pair) in cuts.windows(2).enumerate() {
        let name = match 2 - n {
            0 => "audit.log".to_string(),
            k => format!("audit.log.{k}"),
        };
        std::fs::write(dir.path().join(name), lines[pair[0]..pair[1]].concat()).expect("write");
    }
    let files = default_log_files(dir.path());
    assert_eq!(files.len(), 3);

    let read_all = |log: AuditLog| -> Vec<AuditSignal> {
        log.timezone(Timezone::utc())
            .collect::<Result<_, _>>()
            .expect("readable files")
    };
    let (whole, _) = raw_events();
    assert_eq!(read_all(AuditLog::open(&files)), whole);

    let probe_target = read_all(AuditLog::open(&files).events_for_target(Pid(17802)));
    assert_eq!(probe_target.len(), 2);
    assert!(probe_target[0].is_probe());

    let member = read_all(AuditLog::open(&files).events_for_target(Pid(17502)));
    assert_eq!(member.len(), 1);
    assert_eq!(member[0].serial, 2535);

    let t = |s| chrono::DateTime::from_timestamp(s, 0).expect("a time");
    let window = read_all(
        AuditLog::open(&files)
            .since(t(1_795_249_185))
            .until(t(1_795_249_187)),
    );
    let serials: Vec<u64> = window.iter().map(|e| e.serial).collect();
    assert_eq!(serials, [2538, 2539, 2540, 2541]);

    let mut log = AuditLog::open(&files).format(Format::Raw);
    assert_eq!(log.by_ref().count(), whole.len());
    assert_eq!(log.stats().lines, 72);
}

/// `who-killed --audit-log` on a pipe (`ausearch -i | ptree … --audit-log
/// /dev/stdin`): nothing to seek, read whole, the same answer as the file.
#[test]
fn who_killed_reads_a_log_from_a_pipe() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let run = |args: &[&str], stdin: Option<Vec<u8>>| -> (i32, String, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ptree"))
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ptree");
        if let Some(bytes) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            std::thread::spawn(move || pipe.write_all(&bytes));
        }
        let out = child.wait_with_output().expect("ptree output");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let raw = fixture("audit-samples.log");
    let from_file = run(
        &[
            "who-killed",
            "17502",
            "--audit-log",
            raw.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    assert_eq!(from_file.0, 0, "{}", from_file.2);
    assert!(
        from_file.1.contains("\"type\":\"signal\""),
        "{}",
        from_file.1
    );
    for name in ["audit-samples.log", "audit-samples-interpreted.txt"] {
        let piped = run(
            &["who-killed", "17502", "--audit-log", "/dev/stdin", "--json"],
            Some(read(name)),
        );
        assert_eq!(piped.0, 0, "{name}: {}", piped.2);
        let signals = |out: &str| -> Vec<String> {
            out.lines()
                .filter(|l| l.starts_with("{\"type\":\"signal\""))
                .map(str::to_string)
                .collect()
        };
        if name.ends_with(".log") {
            assert_eq!(piped.1, from_file.1, "{name}");
        } else {
            // Interpreted text names processes by their decoded fields;
            // the signals are the same.
            assert_eq!(
                signals(&piped.1).len(),
                signals(&from_file.1).len(),
                "{name}"
            );
        }
    }
}
