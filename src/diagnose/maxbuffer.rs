//! The exec-maxBuffer pitfall, and its aftermath: outputs nobody reads.
//!
//! `child_process.exec()` (and `execFile`) collect the child's stdout and
//! stderr in memory and kill the child (SIGTERM) once `maxBuffer` bytes
//! have arrived: 1 MiB by default since Node 12, 200 KiB before. A server
//! started that way, with its output inherited down the tree, dies after
//! its first megabyte of logs.

use std::collections::BTreeMap;

use serde_json::json;

use crate::analysis::roles::Role;
use crate::diagnose::{Finding, Input, Severity};
use crate::model::{FdTarget, Pid};

/// CPU use (percent of one core) over the sample above which a writer of a
/// dead output counts as spinning. An idle server uses ~0 %; a spinning
/// one takes a full core on a quiet machine and still a large share of a
/// busy one.
pub const SPIN_PERCENT: f64 = 25.0;

/// A process counts as long-lived past this age even without a server role.
const LONG_LIVED_SECS: f64 = 5.0;

/// maxBuffer's default for a Node major version.
pub fn default_max_buffer(version: Option<&str>) -> u64 {
    let major = version.and_then(|v| {
        v.trim()
            .trim_start_matches('v')
            .split('.')
            .next()?
            .parse::<u32>()
            .ok()
    });
    match major {
        Some(m) if m < 12 => 200 * 1024,
        _ => 1024 * 1024,
    }
}

/// One pipe or socket carrying stdout/stderr of shown processes.
#[derive(Debug, Default)]
struct Channel {
    kind: &'static str,
    /// The other end could not be looked for everywhere.
    unknown: bool,
    /// Writer pid → its fds (1, 2) on this channel.
    writers: BTreeMap<Pid, Vec<u8>>,
    readers: Vec<Pid>,
}

fn channels(input: &Input<'_>) -> BTreeMap<u64, Channel> {
    let mut out: BTreeMap<u64, Channel> = BTreeMap::new();
    for &pid in input.shown {
        let Some(p) = input.snapshot.get(pid) else {
            continue;
        };
        if p.is_zombie() || p.is_kernel_thread() {
            continue;
        }
        let Some(fds) = &p.fds else { continue };
        for (n, fd) in [(1u8, &fds.stdout), (2u8, &fds.stderr)] {
            let (inode, kind) = match fd.target {
                FdTarget::Pipe(i) => (i, "pipe"),
                FdTarget::Socket(i) => (i, "socket"),
                _ => continue,
            };
            let ch = out.entry(inode).or_default();
            ch.kind = kind;
            ch.writers.entry(pid).or_default().push(n);
            ch.unknown |= input.peers.is_unknown(pid, n);
            for peer in input.peers.of(pid, n) {
                if !ch.readers.contains(&peer.pid) && !ch.writers.contains_key(&peer.pid) {
                    ch.readers.push(peer.pid);
                }
            }
        }
    }
    // A process both writing and reading a channel is a reader (a wrapper
    // that kept its own end): drop it from the writers.
    for ch in out.values_mut() {
        let readers = ch.readers.clone();
        ch.writers.retain(|w, _| !readers.contains(w));
    }
    out
}

/// Whether a process runs Node: its comm (`node`, or a PM2 retitle like
/// `node /srv/stee`) or its executable says so.
pub fn is_node_process(p: &crate::model::Process) -> bool {
    let comm = p.comm_lossy();
    let exe_is_node = p
        .exe
        .as_ref()
        .and_then(|e| e.file_name())
        .is_some_and(|n| n.to_string_lossy().starts_with("node"));
    comm == "node" || comm.starts_with("node ") || exe_is_node
}

fn is_node(input: &Input<'_>, pid: Pid) -> bool {
    input.snapshot.get(pid).is_some_and(is_node_process)
}

fn describe(input: &Input<'_>, pid: Pid) -> String {
    input.snapshot.get(pid).map_or_else(
        || pid.to_string(),
        |p| format!("{} {}", pid, p.argv.display()),
    )
}

/// One channel a reader collects, with its measured rate.
struct Collected {
    inode: u64,
    kind: &'static str,
    writers: Vec<Pid>,
    long_lived: Vec<Pid>,
}

/// `exec-maxbuffer`: long-lived processes whose output a Node ancestor
/// collects, as `exec()` does. One finding per reader: exec's limit
/// applies to stdout and stderr separately, so the channel that fills
/// first sets the deadline.
pub fn exec_maxbuffer(input: &Input<'_>) -> Vec<Finding> {
    let mut by_reader: BTreeMap<Pid, Vec<Collected>> = BTreeMap::new();
    for (inode, ch) in channels(input) {
        let long_lived: Vec<Pid> = ch
            .writers
            .keys()
            .copied()
            .filter(|&w| input.roles.of(w).is_server() || input.age(w) >= LONG_LIVED_SECS)
            .collect();
        if long_lived.is_empty() {
            continue;
        }
        let reader = ch.readers.iter().copied().find(|&r| {
            input.roles.of(r) != Role::Supervisor
                && is_node(input, r)
                && long_lived
                    .iter()
                    .any(|&w| input.snapshot.ancestors(w).iter().any(|a| a.pid == r))
        });
        let Some(reader) = reader else { continue };
        by_reader.entry(reader).or_default().push(Collected {
            inode,
            kind: ch.kind,
            writers: ch.writers.keys().copied().collect(),
            long_lived,
        });
    }
    by_reader
        .into_iter()
        .map(|(reader, collected)| finding(input, reader, &collected))
        .collect()
}

fn finding(input: &Input<'_>, reader: Pid, collected: &[Collected]) -> Finding {
    let version = input.measured.node_versions.get(&reader).cloned();
    let limit = default_max_buffer(version.as_deref());
    let mut writers: Vec<Pid> = collected.iter().flat_map(|c| c.writers.clone()).collect();
    writers.sort();
    writers.dedup();
    let mut long_lived: Vec<Pid> = collected
        .iter()
        .flat_map(|c| c.long_lived.clone())
        .collect();
    long_lived.sort();
    long_lived.dedup();
    let through_shell = long_lived.iter().any(|&w| {
        input
            .snapshot
            .ancestors(w)
            .iter()
            .take_while(|a| a.pid != reader)
            .any(|a| input.roles.of(a.pid) == Role::Shell)
    });
    // The fastest-filling channel decides.
    let mut best: Option<(f64, u64, f64)> = None;
    let mut why_unknown: Option<String> = None;
    let mut channels = Vec::new();
    for c in collected {
        let rate = match input.measured.rates.get(&c.inode) {
            Some(Ok(r)) if r.seconds > 0.0 => {
                let bps = r.bytes as f64 / r.seconds;
                if best.is_none_or(|b| bps > b.0) {
                    best = Some((bps, r.bytes, r.seconds));
                }
                Some(bps.round())
            }
            Some(Err(why)) => {
                why_unknown.get_or_insert_with(|| format!("rate unknown: {why}"));
                None
            }
            _ => None,
        };
        channels.push(json!({
            "channel": format!("{}:[{}]", c.kind, c.inode),
            "writers": c.writers,
            "bytes_per_sec": rate,
        }));
    }
    let note = match (&best, &why_unknown) {
        (Some(_), _) => "eta is an upper bound: bytes buffered before the sample are unknown unless a recording covers them".to_string(),
        (None, Some(w)) => w.clone(),
        (None, None) if !input.measured.sampled => "rate not measured (--sample 0)".to_string(),
        (None, None) => "rate unknown".to_string(),
    };
    let eta = best.and_then(|(bps, _, _)| (bps > 0.0).then(|| (limit as f64 / bps).round()));
    let eta_text = match (best, eta) {
        (Some((bps, _, _)), Some(e)) => {
            format!("at {bps:.0} bytes/s it reaches maxBuffer ({limit} bytes) in at most {e:.0} s")
        }
        (Some(_), None) => {
            "nothing was written during the sample; the next burst of logs brings it closer"
                .to_string()
        }
        _ => format!("after {limit} bytes of output it will be killed ({note})"),
    };
    let kinds: Vec<&str> = collected.iter().map(|c| c.kind).collect();
    let mut pids = vec![reader];
    pids.extend(&writers);
    Finding {
        id: "exec-maxbuffer",
        severity: Severity::Error,
        pids,
        message: format!(
            "{} reads the output ({}) of {} long-lived process{} it started{}: Node's \
             child_process.exec kills its child after maxBuffer bytes; {eta_text}",
            describe(input, reader),
            kinds.join(", "),
            long_lived.len(),
            if long_lived.len() == 1 { "" } else { "es" },
            if through_shell { " through exec()'s shell" } else { "" },
        ),
        evidence: json!({
            "reader_pid": reader,
            "reader_node_version": version,
            "limit_bytes": limit,
            "writers": writers,
            "channels": channels,
            "through_shell": through_shell,
            "bytes_per_sec": best.map(|b| b.0.round()),
            "bytes_observed": best.map(|b| b.1),
            "sample_seconds": best.map(|b| b.2),
            "eta_seconds": eta,
            "note": note,
        }),
        fix: "start the server with spawn() and stdio 'inherit' or a log file (or as a daemon), never with exec()/execFile, or raise maxBuffer".into(),
    }
}

/// `broken-stdout`: outputs whose other end nobody holds any more.
pub fn broken_stdout(input: &Input<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (inode, ch) in channels(input) {
        if !ch.readers.is_empty() || ch.writers.is_empty() || ch.unknown {
            continue;
        }
        let writers: Vec<Pid> = ch.writers.keys().copied().collect();
        let cpu: BTreeMap<String, f64> = writers
            .iter()
            .filter_map(|w| {
                input
                    .measured
                    .cpu_percent
                    .get(w)
                    .map(|c| (w.to_string(), (c * 10.0).round() / 10.0))
            })
            .collect();
        let spinning: Vec<Pid> = writers
            .iter()
            .copied()
            .filter(|w| {
                input
                    .measured
                    .cpu_percent
                    .get(w)
                    .is_some_and(|&c| c >= SPIN_PERCENT)
            })
            .collect();
        let spin_text = if spinning.is_empty() {
            String::new()
        } else {
            format!(
                "; {} spinning at high CPU (Node ≥ 16 turns the unhandled EPIPE into an uncaughtException loop)",
                spinning
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        out.push(Finding {
            id: "broken-stdout",
            severity: Severity::Error,
            pids: writers.clone(),
            message: format!(
                "the {} {}:[{inode}] that {} write{} to has no reader any more: the next write fails with EPIPE/SIGPIPE{spin_text}",
                ch.kind,
                ch.kind,
                writers.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
                if writers.len() == 1 { "s" } else { "" },
            ),
            evidence: json!({
                "channel": format!("{}:[{inode}]", ch.kind),
                "writers": writers,
                "cpu_percent": cpu,
            }),
            fix: "restart the service with stdout and stderr going to a file, the journal or a supervisor that stays".into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixture::egg_snapshot;
    use crate::analysis::roles::classify;
    use crate::diagnose::{Measurements, Rate};
    use crate::model::{Peer, Peers};

    #[test]
    fn max_buffer_by_version() {
        assert_eq!(default_max_buffer(Some("v14.21.3")), 1_048_576);
        assert_eq!(default_max_buffer(Some("v10.24.1")), 204_800);
        assert_eq!(default_max_buffer(None), 1_048_576);
    }

    /// The recorded incident: every server writes into socket 159135 whose
    /// peer 159134 the wrapper 20501 holds (sockets.before.txt).
    fn incident_peers() -> Peers {
        let mut peers = Peers::default();
        for pid in [20517, 20537, 20553, 20567, 20568] {
            for fd in [1, 2] {
                peers.by_fd.insert(
                    (Pid(pid), fd),
                    vec![Peer {
                        pid: Pid(20501),
                        comm: "node /srv/stee".into(),
                    }],
                );
            }
        }
        for fd in [1, 2] {
            peers.by_fd.insert(
                (Pid(20501), fd),
                vec![Peer {
                    pid: Pid(20490),
                    comm: "PM2 v5.4.3: God".into(),
                }],
            );
        }
        peers
    }

    #[test]
    fn the_incident_is_flagged_with_the_wrapper_as_reader() {
        let snap = egg_snapshot();
        let roles = classify(&snap);
        let peers = incident_peers();
        let shown: Vec<Pid> = snap.processes.iter().map(|p| p.pid).collect();
        let mut measured = Measurements {
            sampled: true,
            ..Default::default()
        };
        measured.node_versions.insert(Pid(20501), "v14.21.3".into());
        measured.rates.insert(
            159135,
            Ok(Rate {
                bytes: 40_960,
                seconds: 2.0,
            }),
        );
        let input = Input {
            snapshot: &snap,
            roles: &roles,
            peers: &peers,
            shown: &shown,
            now: snap.taken_at,
            measured: &measured,
        };
        let found = exec_maxbuffer(&input);
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(f.evidence["reader_pid"], 20501);
        assert_eq!(f.evidence["limit_bytes"], 1_048_576);
        assert_eq!(f.evidence["bytes_per_sec"], 20480.0);
        assert_eq!(f.evidence["eta_seconds"], 51.0);
        assert_eq!(f.evidence["writers"].as_array().unwrap().len(), 5);
        // PM2 reads the wrapper's output by design: not a finding.
        assert!(found.iter().all(|f| f.evidence["reader_pid"] != 20490));
        assert!(broken_stdout(&input).is_empty());
    }

    #[test]
    fn no_reader_is_broken_stdout() {
        let snap = egg_snapshot();
        let roles = classify(&snap);
        let peers = Peers::default();
        let shown: Vec<Pid> = snap.processes.iter().map(|p| p.pid).collect();
        let mut measured = Measurements::default();
        measured.cpu_percent.insert(Pid(20537), 99.0);
        let input = Input {
            snapshot: &snap,
            roles: &roles,
            peers: &peers,
            shown: &shown,
            now: snap.taken_at,
            measured: &measured,
        };
        let found = broken_stdout(&input);
        assert!(
            found
                .iter()
                .any(|f| f.pids.contains(&Pid(20537)) && f.message.contains("spinning"))
        );
        assert!(exec_maxbuffer(&input).is_empty());
    }
}
