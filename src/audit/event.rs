//! Signal syscalls as the audit log records them: which syscall a number
//! is on which architecture, what each argument means, and how one audit
//! event becomes the [`RawSignal`]s the rest of ptree consumes.
//!
//! Nothing here knows a text format: `record.rs` (raw log lines) and
//! `interpreted.rs` (`ausearch -i` text) both decode into these types.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::Filter;
use crate::event::{Delivery, RawSignal, SigCode, Signal, Via};
use crate::model::{Argv, Pgid, Pid, Tid, escape_bytes};

/// The `arch=` field. Syscall numbers mean different things on each
/// architecture (129 is `rt_sigqueueinfo` on x86_64 but `kill` on
/// aarch64), so a number is never read without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    X86_64,
    /// 32-bit programs on an x86_64 kernel (`-F arch=b32` rules).
    I386,
    Aarch64,
    /// Any other `AUDIT_ARCH_*` value; 0 when only a name ptree does not
    /// know was given (`ausearch -i`).
    Other(u32),
}

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;

impl Arch {
    /// From the hex `arch=` of the raw log.
    pub fn from_audit(code: u32) -> Arch {
        match code {
            AUDIT_ARCH_X86_64 => Arch::X86_64,
            AUDIT_ARCH_I386 => Arch::I386,
            AUDIT_ARCH_AARCH64 => Arch::Aarch64,
            other => Arch::Other(other),
        }
    }

    /// From the name `ausearch -i` and the enriched format print.
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "x86_64" => Some(Arch::X86_64),
            "i386" => Some(Arch::I386),
            "aarch64" => Some(Arch::Aarch64),
            _ => None,
        }
    }

    /// `x86_64`, or the raw value in hex for architectures ptree does not
    /// name.
    pub fn name(self) -> String {
        match self {
            Arch::X86_64 => "x86_64".into(),
            Arch::I386 => "i386".into(),
            Arch::Aarch64 => "aarch64".into(),
            Arch::Other(code) => format!("{code:x}"),
        }
    }
}

/// The syscalls that send a signal on a process's behalf. The kernel's own
/// signals (SIGPIPE on write, SIGSEGV, the OOM killer) go through no
/// syscall and never reach the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalSyscall {
    /// `kill(pid, sig)`: a process, a process group, or every process.
    Kill,
    /// `tkill(tid, sig)`: one thread, by its id alone.
    Tkill,
    /// `tgkill(tgid, tid, sig)`: one thread of a given process.
    Tgkill,
    /// `rt_sigqueueinfo(pid, sig, info)`: `sigqueue(3)`.
    RtSigqueueinfo,
    /// `rt_tgsigqueueinfo(tgid, tid, sig, info)`.
    RtTgsigqueueinfo,
    /// `pidfd_send_signal(pidfd, sig, info, flags)`: the target is an open
    /// file descriptor, so only the OBJ_PID record names it.
    PidfdSendSignal,
}

/// Syscall numbers in [`SignalSyscall::ALL`] order, per architecture.
const NUMBERS: [(Arch, [u32; 6]); 3] = [
    (Arch::X86_64, [62, 200, 234, 129, 297, 424]),
    (Arch::I386, [37, 238, 270, 178, 335, 424]),
    (Arch::Aarch64, [129, 130, 131, 138, 240, 424]),
];

impl SignalSyscall {
    pub const ALL: [SignalSyscall; 6] = [
        SignalSyscall::Kill,
        SignalSyscall::Tkill,
        SignalSyscall::Tgkill,
        SignalSyscall::RtSigqueueinfo,
        SignalSyscall::RtTgsigqueueinfo,
        SignalSyscall::PidfdSendSignal,
    ];

    /// The signal syscall with number `nr` on `arch`, if it is one.
    pub fn from_number(arch: Arch, nr: u32) -> Option<SignalSyscall> {
        let (_, numbers) = NUMBERS.iter().find(|(a, _)| *a == arch)?;
        let i = numbers.iter().position(|&n| n == nr)?;
        Some(SignalSyscall::ALL[i])
    }

    /// The number of this syscall on `arch`, for writing audit rules.
    pub fn number(self, arch: Arch) -> Option<u32> {
        let (_, numbers) = NUMBERS.iter().find(|(a, _)| *a == arch)?;
        let i = SignalSyscall::ALL.iter().position(|&s| s == self)?;
        Some(numbers[i])
    }

    pub fn from_name(name: &str) -> Option<SignalSyscall> {
        SignalSyscall::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            SignalSyscall::Kill => "kill",
            SignalSyscall::Tkill => "tkill",
            SignalSyscall::Tgkill => "tgkill",
            SignalSyscall::RtSigqueueinfo => "rt_sigqueueinfo",
            SignalSyscall::RtTgsigqueueinfo => "rt_tgsigqueueinfo",
            SignalSyscall::PidfdSendSignal => "pidfd_send_signal",
        }
    }

    /// Which of `a0..a3` holds the signal number.
    pub fn signal_arg(self) -> usize {
        match self {
            SignalSyscall::Tgkill | SignalSyscall::RtTgsigqueueinfo => 2,
            _ => 1,
        }
    }

    /// How many of `a0..a3` say something ptree reads (target and signal);
    /// the rest are pointers and flags.
    pub fn used_args(self) -> usize {
        self.signal_arg() + 1
    }

    /// The `si_code` the target sees. For the sigqueue calls this is what
    /// glibc's `sigqueue` passes; a caller of the raw syscall may pass any
    /// negative code, which the audit record does not show.
    pub fn sig_code(self) -> SigCode {
        match self {
            SignalSyscall::Kill | SignalSyscall::PidfdSendSignal => SigCode::User,
            SignalSyscall::Tkill | SignalSyscall::Tgkill => SigCode::Tkill,
            SignalSyscall::RtSigqueueinfo | SignalSyscall::RtTgsigqueueinfo => SigCode::Queue,
        }
    }

    /// Whether the signal goes to a whole thread group rather than one
    /// thread.
    pub fn is_group(self) -> bool {
        matches!(
            self,
            SignalSyscall::Kill | SignalSyscall::PidfdSendSignal | SignalSyscall::RtSigqueueinfo
        )
    }
}

/// What the caller asked for, from the syscall's arguments: the intended
/// target, which may differ from the processes the kernel actually
/// signalled (see [`AuditSignal::targets`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetArg {
    /// One process.
    Pid(Pid),
    /// `kill(-pgid, sig)`: every process of a group.
    ProcessGroup(Pgid),
    /// `kill(0, sig)`: the caller's own process group.
    CallerGroup,
    /// `kill(-1, sig)`: every process the caller may signal.
    AllProcesses,
    /// One thread; `tgid` is `None` for `tkill`, which names only the
    /// thread.
    Thread { tgid: Option<Pid>, tid: Tid },
    /// `pidfd_send_signal`: a file descriptor of the caller, not a pid.
    PidFd(i32),
}

impl TargetArg {
    /// Whether the arguments alone name `pid`: as the pid, the thread, the
    /// thread group, or the leader of the process group.
    pub fn names(self, pid: Pid) -> bool {
        match self {
            TargetArg::Pid(p) => p == pid,
            TargetArg::ProcessGroup(g) => g.0 == pid.0,
            TargetArg::Thread { tgid, tid } => tgid == Some(pid) || tid.0 == pid.0,
            TargetArg::CallerGroup | TargetArg::AllProcesses | TargetArg::PidFd(_) => false,
        }
    }

    /// Reads the target from the raw arguments. Pids and fds are C `int`s:
    /// only the low 32 bits count (`a0=ffffd033` is process group 12237).
    pub fn decode(syscall: SignalSyscall, args: &[u64; 4]) -> TargetArg {
        let int = |i: usize| args[i] as u32 as i32;
        match syscall {
            SignalSyscall::Kill => match int(0) {
                0 => TargetArg::CallerGroup,
                -1 => TargetArg::AllProcesses,
                // i32::MIN has no positive group: the kernel answers ESRCH.
                n if n < -1 => n
                    .checked_neg()
                    .map_or(TargetArg::Pid(Pid(n)), |g| TargetArg::ProcessGroup(Pgid(g))),
                n => TargetArg::Pid(Pid(n)),
            },
            SignalSyscall::RtSigqueueinfo => TargetArg::Pid(Pid(int(0))),
            SignalSyscall::Tkill => TargetArg::Thread {
                tgid: None,
                tid: Tid(int(0)),
            },
            SignalSyscall::Tgkill | SignalSyscall::RtTgsigqueueinfo => TargetArg::Thread {
                tgid: Some(Pid(int(0))),
                tid: Tid(int(1)),
            },
            SignalSyscall::PidfdSendSignal => TargetArg::PidFd(int(0)),
        }
    }
}

/// A user as the log gives it: the number (raw fields), the name (the
/// enriched part, or `ausearch -i`), or both. Neither: unset, which is what
/// `auid=4294967295`, `oauid=-1` and `auid=unset` all say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AuditUser {
    pub id: Option<u32>,
    pub name: Option<String>,
}

impl AuditUser {
    pub fn is_unset(&self) -> bool {
        self.id.is_none() && self.name.is_none()
    }
}

/// The PROCTITLE record: the sender's command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Proctitle {
    /// No PROCTITLE record, or `proctitle=(null)`.
    #[default]
    Missing,
    /// From the raw log: the argument vector byte for byte, as far as the
    /// kernel logged it (it stops at 128 bytes, mid-argument if need be).
    Argv(Argv),
    /// From `ausearch -i`, which joins the arguments with spaces: where one
    /// argument ends is lost.
    Joined(Vec<u8>),
}

impl Proctitle {
    /// Arguments joined by spaces, non-printable bytes escaped: the same
    /// text for both sources.
    pub fn display(&self) -> String {
        match self {
            Proctitle::Missing => String::new(),
            Proctitle::Argv(argv) => argv.display(),
            Proctitle::Joined(bytes) => {
                let mut s = escape_bytes(bytes);
                s.truncate(s.trim_end_matches(' ').len());
                s
            }
        }
    }
}

/// The process that made the syscall (the SYSCALL and PROCTITLE records).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditProcess {
    /// The thread group id (audit logs no thread id).
    pub pid: Pid,
    pub ppid: Option<Pid>,
    pub uid: AuditUser,
    /// The login uid: who logged in, whatever `su`/`sudo` came after.
    pub auid: AuditUser,
    /// The audit session; `None` when unset.
    pub ses: Option<u32>,
    /// The kernel's task name, byte for byte.
    pub comm: Vec<u8>,
    pub exe: Option<PathBuf>,
    pub proctitle: Proctitle,
}

/// A process the kernel checked and signalled (one OBJ_PID record).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditTarget {
    /// The thread group id, even when one thread was targeted.
    pub pid: Pid,
    pub uid: AuditUser,
    pub auid: AuditUser,
    pub ses: Option<u32>,
    pub comm: Vec<u8>,
}

/// One signal syscall from the audit log, with what the kernel recorded
/// about its sender and the processes it reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSignal {
    /// The `node=` prefix of logs gathered from several machines.
    pub node: Option<String>,
    pub time: DateTime<Utc>,
    /// The event serial: unique per boot of one machine.
    pub serial: u64,
    pub arch: Arch,
    pub syscall: SignalSyscall,
    pub success: bool,
    /// The return value; negative errno on failure (`-3`: ESRCH).
    pub exit: Option<i64>,
    /// Signal 0 is allowed: `kill(pid, 0)` checks that `pid` exists and
    /// sends nothing (see [`AuditSignal::is_probe`]).
    pub signal: Signal,
    pub target_arg: TargetArg,
    /// `a0..a3` as logged, for what [`TargetArg`] does not keep.
    pub args: [u64; 4],
    pub sender: AuditProcess,
    /// One per process the kernel signalled, in log order: several for a
    /// group kill, none for a call that failed before reaching anyone.
    pub targets: Vec<AuditTarget>,
    /// The audit rule's key (`-k`); several keys are joined by `,`.
    pub key: Option<String>,
}

impl AuditSignal {
    /// `kill(pid, 0)` and friends: an existence check, nothing sent.
    pub fn is_probe(&self) -> bool {
        self.signal.0 == 0
    }

    /// Whether this event is about `pid`: the kernel named it in an
    /// OBJ_PID record, or the arguments name it directly (a pid, a thread
    /// or thread group, or a process group it leads). Arguments count so
    /// that a failed kill, which has no OBJ_PID, still shows up. Members of
    /// a group are found through OBJ_PID only, as is the target of a pidfd.
    pub fn concerns(&self, pid: Pid) -> bool {
        self.targets.iter().any(|t| t.pid == pid) || self.target_arg.names(pid)
    }

    /// The signals this event delivered, one per OBJ_PID target, for the
    /// sources-agnostic pipeline. Empty for probes and failed calls:
    /// nothing was sent. Audit sees the syscall, not the delivery, so the
    /// result is always [`Delivery::Unknown`].
    pub fn to_raw_signals(&self) -> Vec<RawSignal> {
        if self.is_probe() || !self.success {
            return Vec::new();
        }
        let sender_comm = escape_bytes(&self.sender.comm);
        self.targets
            .iter()
            .map(|t| {
                // OBJ_PID holds the thread group; the thread is in the
                // arguments of the thread-directed calls.
                let target_tid = match self.target_arg {
                    TargetArg::Thread { tid, .. } => tid,
                    _ => Tid(t.pid.0),
                };
                RawSignal {
                    time: self.time,
                    signal: self.signal,
                    code: self.syscall.sig_code(),
                    result: Delivery::Unknown,
                    group: self.syscall.is_group(),
                    sender_tid: None,
                    sender_pid: Some(self.sender.pid),
                    sender_comm: Some(sender_comm.clone()),
                    target_tid,
                    target_comm: escape_bytes(&t.comm),
                    value: None,
                    via: Via::Audit,
                }
            })
            .collect()
    }
}

/// What one SYSCALL record of a signal syscall says, before the other
/// records of its event are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyscallPart {
    pub arch: Arch,
    pub syscall: SignalSyscall,
    pub success: bool,
    pub exit: Option<i64>,
    pub args: [u64; 4],
    pub sender: AuditProcess,
    pub key: Option<String>,
}

/// How a record decoded: part of a signal event, part of some other event
/// (another syscall), or not decodable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decoded<T> {
    Signal(T),
    NotSignal,
    Garbage,
}

/// Counts for the user ("read 3 files, 120000 lines, 2 unreadable"):
/// garbage is skipped, never fatal, but should not go unnoticed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseStats {
    pub lines: u64,
    /// Lines that were audit records, of any type.
    pub records: u64,
    /// Signal events found, whether a filter kept them or not.
    pub events: u64,
    /// Lines or records that could not be read.
    pub garbage: u64,
    /// Events whose SYSCALL record never came: OBJ_PID records alone, cut
    /// from their SYSCALL by a log rotation or by the grouping window.
    pub incomplete: u64,
}

impl ParseStats {
    pub fn add(&mut self, other: &ParseStats) {
        self.lines += other.lines;
        self.records += other.records;
        self.events += other.events;
        self.garbage += other.garbage;
        self.incomplete += other.incomplete;
    }
}

/// The records of one event gathered so far.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub node: Option<String>,
    pub time: DateTime<Utc>,
    pub serial: u64,
    /// A SYSCALL of another syscall, or a broken one: the event's other
    /// records are dropped unread.
    pub ignored: bool,
    pub syscall: Option<SyscallPart>,
    pub targets: Vec<AuditTarget>,
    pub proctitle: Proctitle,
}

impl Pending {
    pub fn new(node: Option<String>, time: DateTime<Utc>, serial: u64) -> Pending {
        Pending {
            node,
            time,
            serial,
            ignored: false,
            syscall: None,
            targets: Vec::new(),
            proctitle: Proctitle::Missing,
        }
    }

    pub fn is(&self, node: Option<&[u8]>, time: DateTime<Utc>, serial: u64) -> bool {
        self.serial == serial
            && self.time == time
            && self.node.as_deref().map(str::as_bytes) == node
    }

    /// Takes in a decoded SYSCALL record. A second SYSCALL for the same
    /// stamp cannot happen in a sane log: the event is garbage then.
    pub fn add_syscall(&mut self, decoded: Decoded<SyscallPart>, stats: &mut ParseStats) {
        if self.ignored {
            return;
        }
        match decoded {
            Decoded::Signal(part) if self.syscall.is_none() => self.syscall = Some(part),
            Decoded::NotSignal => self.ignore(),
            Decoded::Signal(_) | Decoded::Garbage => {
                stats.garbage += 1;
                self.ignore();
            }
        }
    }

    fn ignore(&mut self) {
        self.ignored = true;
        self.targets = Vec::new();
        self.syscall = None;
    }

    /// The finished event, if it is a signal event that `filter` keeps;
    /// counts it either way.
    pub fn finish(self, filter: &Filter, stats: &mut ParseStats) -> Option<AuditSignal> {
        if self.ignored {
            return None;
        }
        let Some(part) = self.syscall else {
            stats.incomplete += 1;
            return None;
        };
        stats.events += 1;
        let target_arg = TargetArg::decode(part.syscall, &part.args);
        let pids = self.targets.iter().map(|t| t.pid);
        if !filter.keeps(self.time, target_arg, pids) {
            return None;
        }
        let signal = Signal(part.args[part.syscall.signal_arg()] as u32 as i32);
        let mut sender = part.sender;
        sender.proctitle = self.proctitle;
        Some(AuditSignal {
            node: self.node,
            time: self.time,
            serial: self.serial,
            arch: part.arch,
            syscall: part.syscall,
            success: part.success,
            exit: part.exit,
            signal,
            target_arg,
            args: part.args,
            sender,
            targets: self.targets,
            key: part.key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_depend_on_arch() {
        assert_eq!(
            SignalSyscall::from_number(Arch::X86_64, 129),
            Some(SignalSyscall::RtSigqueueinfo)
        );
        assert_eq!(
            SignalSyscall::from_number(Arch::Aarch64, 129),
            Some(SignalSyscall::Kill)
        );
        assert_eq!(SignalSyscall::from_number(Arch::X86_64, 59), None);
        assert_eq!(SignalSyscall::from_number(Arch::Other(0x28), 37), None);
        assert_eq!(Arch::from_audit(0xc000_003e), Arch::X86_64);
        assert_eq!(Arch::from_audit(0xc000_00b7), Arch::Aarch64);
        for s in SignalSyscall::ALL {
            assert_eq!(SignalSyscall::from_name(s.name()), Some(s));
            for arch in [Arch::X86_64, Arch::I386, Arch::Aarch64] {
                let nr = s.number(arch).expect("every syscall has a number");
                assert_eq!(SignalSyscall::from_number(arch, nr), Some(s));
            }
        }
    }

    #[test]
    fn target_arguments() {
        let kill = |a0| TargetArg::decode(SignalSyscall::Kill, &[a0, 15, 0, 0]);
        assert_eq!(kill(0x4440), TargetArg::Pid(Pid(17472)));
        assert_eq!(kill(0xffff_d033), TargetArg::ProcessGroup(Pgid(12237)));
        // The upper half of the register is not part of the int.
        assert_eq!(
            kill(0xffff_ffff_ffff_d033),
            TargetArg::ProcessGroup(Pgid(12237))
        );
        assert_eq!(kill(0xffff_ffff), TargetArg::AllProcesses);
        assert_eq!(kill(0), TargetArg::CallerGroup);
        assert_eq!(kill(0x8000_0000), TargetArg::Pid(Pid(i32::MIN)));
        assert_eq!(
            TargetArg::decode(SignalSyscall::Tgkill, &[0x44d0, 0x44d1, 10, 0]),
            TargetArg::Thread {
                tgid: Some(Pid(17616)),
                tid: Tid(17617)
            }
        );
        assert_eq!(
            TargetArg::decode(SignalSyscall::Tkill, &[0x44ff, 1, 0, 0]),
            TargetArg::Thread {
                tgid: None,
                tid: Tid(17663)
            }
        );
        assert_eq!(
            TargetArg::decode(SignalSyscall::PidfdSendSignal, &[3, 15, 0, 0]),
            TargetArg::PidFd(3)
        );
    }

    fn event(syscall: SignalSyscall, args: [u64; 4], targets: &[i32]) -> AuditSignal {
        let mut p = Pending::new(None, DateTime::UNIX_EPOCH, 1);
        let mut stats = ParseStats::default();
        p.add_syscall(
            Decoded::Signal(SyscallPart {
                arch: Arch::X86_64,
                syscall,
                success: true,
                exit: Some(0),
                args,
                sender: AuditProcess {
                    pid: Pid(100),
                    comm: b"my prog".to_vec(),
                    ..AuditProcess::default()
                },
                key: None,
            }),
            &mut stats,
        );
        p.targets = targets
            .iter()
            .map(|&pid| AuditTarget {
                pid: Pid(pid),
                comm: b"sleep".to_vec(),
                ..AuditTarget::default()
            })
            .collect();
        p.finish(&Filter::default(), &mut stats)
            .expect("a signal event")
    }

    #[test]
    fn raw_signals_per_target() {
        let group = event(
            SignalSyscall::Kill,
            [0xffff_d033, 15, 0, 0],
            &[12237, 12240],
        );
        let raw = group.to_raw_signals();
        assert_eq!(raw.len(), 2);
        assert!(raw.iter().all(|r| r.group && r.code == SigCode::User));
        assert_eq!(raw[1].target_tid, Tid(12240));
        assert_eq!(raw[0].sender_pid, Some(Pid(100)));
        assert_eq!(raw[0].sender_comm.as_deref(), Some("my prog"));
        assert_eq!(raw[0].result, Delivery::Unknown);
        assert_eq!(raw[0].via, Via::Audit);

        let thread = event(SignalSyscall::Tgkill, [0x10, 0x11, 10, 0], &[0x10]);
        let raw = thread.to_raw_signals();
        assert_eq!(raw[0].target_tid, Tid(0x11));
        assert_eq!(raw[0].code, SigCode::Tkill);
        assert!(!raw[0].group);
        assert_eq!(raw[0].signal, Signal(10));

        let queue = event(SignalSyscall::RtSigqueueinfo, [0x10, 12, 0, 0], &[0x10]);
        assert_eq!(queue.to_raw_signals()[0].code, SigCode::Queue);
        assert!(queue.to_raw_signals()[0].group);

        let probe = event(SignalSyscall::Kill, [0x10, 0, 0, 0], &[0x10]);
        assert!(probe.is_probe());
        assert!(probe.to_raw_signals().is_empty());
    }

    #[test]
    fn concerns_arguments_and_targets() {
        let group = event(
            SignalSyscall::Kill,
            [0xffff_d033, 15, 0, 0],
            &[12237, 12240],
        );
        assert!(group.concerns(Pid(12240)));
        assert!(group.concerns(Pid(12237)));
        assert!(!group.concerns(Pid(100)));
        let failed = event(SignalSyscall::Kill, [0x3f_fed0, 15, 0, 0], &[]);
        assert!(failed.concerns(Pid(4_194_000)));
        let pidfd = event(SignalSyscall::PidfdSendSignal, [3, 15, 0, 0], &[]);
        assert!(!pidfd.concerns(Pid(3)));
    }

    #[test]
    fn incomplete_and_ignored_events() {
        let mut stats = ParseStats::default();
        let orphan = Pending::new(None, DateTime::UNIX_EPOCH, 7);
        assert!(orphan.finish(&Filter::default(), &mut stats).is_none());
        assert_eq!(stats.incomplete, 1);
        let mut other = Pending::new(None, DateTime::UNIX_EPOCH, 8);
        other.add_syscall(Decoded::NotSignal, &mut stats);
        assert!(other.finish(&Filter::default(), &mut stats).is_none());
        assert_eq!(stats.incomplete, 1);
        assert_eq!(stats.events, 0);
    }
}
