//! Who is on the other end of a process's stdout and stderr.
//!
//! A pipe's other end is any process holding the same pipe inode opened in
//! the opposite direction. A socket's other end is the peer inode that
//! sock_diag reports, and whoever holds it.
//!
//! Scanning every fd of every process is what makes `lsof` slow, so the
//! scan widens in steps and stops at the first step that finds the other
//! end: first the relatives of each writer (ancestors, siblings, children:
//! where a reader almost always is: the shell of a pipeline, the Node
//! parent of `exec()`), then the other shown processes, then the rest of
//! the machine — the last only for an end nobody near holds, such as a
//! broken pipe.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;

use crate::model::{AccessMode, FdTarget, Peer, Peers, Pid, Snapshot};
use crate::proc::parse::parse_fd_link;
use crate::proc::{fd_mode, in_parallel, sockdiag};

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
    let pids: Vec<Pid> = pids.into_iter().collect();
    let found = in_parallel(&pids, |chunk| {
        let mut found = Vec::new();
        for &pid in chunk {
            if !scan_one(pid, wanted, &mut found) {
                found.push((
                    0,
                    Holder {
                        pid,
                        fd: u32::MAX,
                        mode: None,
                    },
                ));
            }
        }
        found
    });
    for (inode, holder) in found {
        out.entry(inode).or_default().push(holder);
    }
}

/// Processes whose fds could not be read in a scan (recorded under inode
/// 0 by [`scan_holders`]).
fn blind(holders: &HashMap<u64, Vec<Holder>>) -> bool {
    holders.get(&0).is_some_and(|v| !v.is_empty())
}

/// Scans one process's fds; false when they exist but cannot be read.
fn scan_one(pid: Pid, wanted: &HashSet<u64>, found: &mut Vec<(u64, Holder)>) -> bool {
    let dir = format!("/proc/{}/fd", pid.0);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        // Exited meanwhile: nothing held, nothing hidden.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
        Err(_) => return false,
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
        if wanted.contains(&inode) {
            let mode = fd_mode(&path);
            found.push((inode, Holder { pid, fd, mode }));
        }
    }
    true
}

/// What one stdout/stderr needs resolved.
enum Want {
    /// Holders of this pipe inode, opposite to `mode`.
    Pipe {
        inode: u64,
        mode: Option<AccessMode>,
    },
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

    let unresolved = |holders: &HashMap<u64, Vec<Holder>>| -> HashSet<u64> {
        wants
            .iter()
            .filter_map(|((pid, _), w)| match w {
                Want::Pipe { inode, mode } => {
                    let found = holders.get(inode).is_some_and(|hs| {
                        hs.iter().any(|h| h.pid != *pid && opposite(*mode, h.mode))
                    });
                    (!found).then_some(*inode)
                }
                Want::Socket { inode } => {
                    let peer = socket_peer.get(inode)?;
                    (!holders.contains_key(peer)).then_some(*peer)
                }
            })
            .collect()
    };

    let mut holders: HashMap<u64, Vec<Holder>> = HashMap::new();
    let mut scanned: HashSet<Pid> = HashSet::new();
    let children = snapshot.children_map();
    let mut near: Vec<Pid> = Vec::new();
    for ((pid, _), _) in &wants {
        let mut add = |p: Pid| {
            if scanned.insert(p) {
                near.push(p);
            }
        };
        add(*pid);
        for a in snapshot.ancestors(*pid) {
            add(a.pid);
        }
        if let Some(parent) = snapshot.parent(*pid) {
            for &s in children.get(&parent.pid).into_iter().flatten() {
                add(s);
            }
        }
        for &c in children.get(pid).into_iter().flatten() {
            add(c);
        }
    }
    scan_holders(near, &wanted, &mut holders);

    let mut missing = unresolved(&holders);
    if !missing.is_empty() {
        let rest: Vec<Pid> = shown
            .iter()
            .copied()
            .filter(|p| snapshot.get(*p).is_some_and(|x| !x.is_kernel_thread()))
            .filter(|p| scanned.insert(*p))
            .collect();
        scan_holders(rest, &missing, &mut holders);
        missing = unresolved(&holders);
    }
    if !missing.is_empty() {
        // Kernel threads hold no fds.
        let rest: Vec<Pid> = snapshot
            .processes
            .iter()
            .filter(|p| !p.is_kernel_thread())
            .map(|p| p.pid)
            .filter(|p| scanned.insert(*p))
            .collect();
        scan_holders(rest, &missing, &mut holders);
    }

    let comm = |pid: Pid| {
        snapshot
            .get(pid)
            .map(|p| p.comm_lossy())
            .unwrap_or_default()
    };
    let mut peers = Peers::default();
    let blind = blind(&holders);
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
        if list.is_empty() && blind {
            peers.unknown.insert(key);
        }
        peers.by_fd.insert(key, list);
    }
    peers
}
