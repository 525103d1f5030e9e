//! Peers of AF_UNIX sockets through the kernel's sock_diag netlink
//! interface (UNIX_DIAG with UDIAG_SHOW_PEER), as `ss -xp` does.
//!
//! Node gives a child's stdio AF_UNIX socket pairs, not pipes: the inode in
//! `/proc/PID/fd/1` is one end, and only sock_diag tells which inode is the
//! other end.

use std::collections::{HashMap, HashSet};
use std::io;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::unix::{ShowFlags, StateFlags, UnixRequest};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

/// Above this many inodes one dump of every socket is cheaper than one
/// request per inode.
const EXACT_QUERY_LIMIT: usize = 16;

/// "Any cookie": lets an exact lookup name a socket by inode alone.
const NO_COOKIE: [u8; 8] = [0xff; 8];

/// Maps each of `inodes` to the inode of its peer, for connected AF_UNIX
/// sockets. Sockets that are not AF_UNIX, or have no peer any more, are
/// absent from the result.
pub fn unix_peers(inodes: &HashSet<u64>) -> io::Result<HashMap<u64, u64>> {
    let wanted: Vec<u32> = inodes
        .iter()
        .filter_map(|&i| u32::try_from(i).ok())
        .collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let mut sock = Socket::new(NETLINK_SOCK_DIAG)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    let mut out = HashMap::new();
    if wanted.len() <= EXACT_QUERY_LIMIT {
        for ino in wanted {
            // ENOENT: not an AF_UNIX socket (TCP, netlink…) or gone.
            match query(&sock, ino, false) {
                Ok(found) => out.extend(found),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
    } else {
        let all = query(&sock, 0, true)?;
        out.extend(all.into_iter().filter(|(ino, _)| inodes.contains(ino)));
    }
    Ok(out)
}

/// Sends one UNIX_DIAG request (exact inode or dump) and collects
/// (inode, peer inode) pairs.
fn query(sock: &Socket, inode: u32, dump: bool) -> io::Result<Vec<(u64, u64)>> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
    let request = UnixRequest {
        state_flags: StateFlags::all(),
        inode,
        show_flags: ShowFlags::PEER,
        cookie: NO_COOKIE,
    };
    let mut packet = NetlinkMessage::new(header, SockDiagMessage::UnixRequest(request).into());
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    sock.send(&buf, 0)?;

    let mut out = Vec::new();
    let mut recv = vec![0u8; 32 * 1024];
    loop {
        let size = sock.recv(&mut &mut recv[..], 0)?;
        if size == 0 {
            return Ok(out);
        }
        let mut offset = 0;
        while offset < size {
            let msg = NetlinkMessage::<SockDiagMessage>::deserialize(&recv[offset..size])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::UnixResponse(r)) => {
                    if let Some(peer) = r.peer() {
                        out.push((u64::from(r.header.inode), u64::from(peer)));
                    }
                    if !dump {
                        return Ok(out);
                    }
                }
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    let code = e.code.map_or(0, |c| -c.get());
                    if code == 0 {
                        return Ok(out);
                    }
                    return Err(io::Error::from_raw_os_error(code));
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            offset += len;
        }
    }
}
