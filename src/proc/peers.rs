//! Who is on the other end of a process's stdout and stderr.
//!
//! A pipe's other end is any process holding the same pipe inode opened in
//! the opposite direction. A socket's other end is the peer inode that
//! sock_diag reports, and whoever holds it. Fds are scanned for the shown
//! processes first; the rest of the machine only for inodes still without
//! a holder (a reader that is not in the view, or none at all).

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;

use crate::model::{AccessMode, FdTarget, Peer, Peers, Pid, Snapshot};
use crate::proc::parse::parse_fd_link;
use crate::proc::{fd_mode, sockdiag};

/// A process holding an inode on one of its fds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub pid: Pid,
    pub fd: u32,
    pub mode: Option<AccessMode>,
}

/// Every holder of each wanted inode, among the given processes.
pub fn scan_holders(
    pids: impl IntoIterator<Item = Pid>,
    wanted: &HashSet<u64>,
    out: &mut HashMap<u64, Vec<Holder>>,
) {
    if wanted.is_empty() {
        return;
    }
    for pid in pids {
        let dir = format!("/proc/{}/fd", pid.0);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue; // exited, or not ours to read
        };
        for entry in entries.filter_map(Result::ok) {
            let Some(fd) = std::str::from_utf8(entry.file_name().as_bytes())
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let path = entry.path();
            let Ok(link) = std::fs::read_link(&path) else {
                continue;
            };
            let inode = match parse_fd_link(link.as_os_str().as_bytes()) {
                FdTarget::Pipe(i) | FdTarget::Socket(i) => i,
                _ => continue,
            };
            if !wanted.contains(&inode) {
                continue;
            }
            out.entry(inode).or_default().push(Holder {
                pid,
                fd,
                mode: fd_mode(&path),
            });
        }
    }
}

/// What one stdout/stderr needs resolved.
enum Want {
    /// Holders of this pipe inode, opposite to `mode`.
    Pipe { inode: u64, mode: Option<AccessMode> },
    /// Holders of the socket's peer inode.
    Socket { inode: u64 },
}

fn opposite(mine: Option<AccessMode>, theirs: Option<AccessMode>) -> bool {
    match (mine, theirs) {
        (Some(m), Some(t)) => (m.writes() && t.reads()) || (m.reads() && t.writes()),
        _ => true,
    }
}

/// Resolves the peers of fds 1 and 2 of `shown` (whose fds must have been
/// read by [`crate::proc::fill_details`]).
pub fn resolve(snapshot: &Snapshot, shown: &[Pid]) -> Peers {
    let mut wants: Vec<((Pid, u8), Want)> = Vec::new();
    for &pid in shown {
        let Some(fds) = snapshot.get(pid).and_then(|p| p.fds.as_ref()) else {
            continue;
        };
        for (n, fd) in [(1u8, &fds.stdout), (2u8, &fds.stderr)] {
            match fd.target {
                FdTarget::Pipe(inode) => wants.push((
                    (pid, n),
                    Want::Pipe {
                        inode,
                        mode: fd.mode,
                    },
                )),
                FdTarget::Socket(inode) => wants.push(((pid, n), Want::Socket { inode })),
                _ => {}
            }
        }
    }
    if wants.is_empty() {
        return Peers::default();
    }

    let socket_inodes: HashSet<u64> = wants
        .iter()
        .filter_map(|(_, w)| match w {
            Want::Socket { inode } => Some(*inode),
            _ => None,
        })
        .collect();
    // Without sock_diag (no netlink in a sandbox) sockets show no peers;
    // pipes still resolve.
    let socket_peer = sockdiag::unix_peers(&socket_inodes).unwrap_or_default();

    let wanted: HashSet<u64> = wants
        .iter()
        .filter_map(|(_, w)| match w {
            Want::Pipe { inode, .. } => Some(*inode),
            Want::Socket { inode } => socket_peer.get(inode).copied(),
        })
        .collect();

    let mut holders: HashMap<u64, Vec<Holder>> = HashMap::new();
    scan_holders(shown.iter().copied(), &wanted, &mut holders);

    // Inodes with no holder on the other side yet: look at the rest.
    let unresolved: HashSet<u64> = wants
        .iter()
        .filter_map(|((pid, _), w)| match w {
            Want::Pipe { inode, mode } => {
                let found = holders.get(inode).is_some_and(|hs| {
                    hs.iter()
                        .any(|h| h.pid != *pid && opposite(*mode, h.mode))
                });
                (!found).then_some(*inode)
            }
            Want::Socket { inode } => {
                let peer = socket_peer.get(inode)?;
                (!holders.contains_key(peer)).then_some(*peer)
            }
        })
        .collect();
    if !unresolved.is_empty() {
        let shown_set: HashSet<Pid> = shown.iter().copied().collect();
        let rest = snapshot
            .processes
            .iter()
            .map(|p| p.pid)
            .filter(|p| !shown_set.contains(p));
        scan_holders(rest, &unresolved, &mut holders);
    }

    let comm = |pid: Pid| {
        snapshot
            .get(pid)
            .map(|p| p.comm_lossy())
            .unwrap_or_default()
    };
    let mut peers = Peers::default();
    for (key, want) in wants {
        let mut list: Vec<Peer> = match want {
            Want::Pipe { inode, mode } => holders
                .get(&inode)
                .into_iter()
                .flatten()
                .filter(|h| opposite(mode, h.mode) && !(h.pid == key.0 && h.fd == u32::from(key.1)))
                .map(|h| Peer {
                    pid: h.pid,
                    comm: comm(h.pid),
                })
                .collect(),
            Want::Socket { inode } => socket_peer
                .get(&inode)
                .and_then(|peer| holders.get(peer))
                .into_iter()
                .flatten()
                .map(|h| Peer {
                    pid: h.pid,
                    comm: comm(h.pid),
                })
                .collect(),
        };
        list.sort_by_key(|p| p.pid);
        list.dedup_by_key(|p| p.pid);
        peers.by_fd.insert(key, list);
    }
    peers
}
