//! Keeping the uplink's gateways resolved, so the first packet of a new
//! SNAT flow never meets an unresolved next hop.
//!
//! XDP cannot queue a frame while the kernel resolves a neighbour, and
//! handing the untranslated frame to the kernel would send it out with its
//! private source. So the gateways of every route through the uplink get a
//! *managed* neighbour entry (`NTF_EXT_MANAGED`, Linux 5.16; what
//! `ip neigh replace GW dev UPLINK managed nud none` does): the kernel
//! resolves it at once and keeps re-probing it, so it stays REACHABLE
//! whether or not the kernel itself sends anything there.
//!
//! Invariant: only gateway entries are touched; nothing is ever deleted.

use std::{io, net::Ipv4Addr};

use crate::DataplaneError;

/// `RTF_GATEWAY` in `/proc/net/route`'s flags column.
const RTF_GATEWAY: u32 = 0x2;
const NDA_DST: u16 = 1;
/// `NDA_FLAGS_EXT` and its `NTF_EXT_MANAGED` bit (linux/neighbour.h).
const NDA_FLAGS_EXT: u16 = 15;
const NTF_EXT_MANAGED: u32 = 1;
const NLMSG_ERROR: u16 = 2;

/// The IPv4 gateways of routes leaving through `interface`, in the
/// calling thread's network namespace.
pub fn uplink_gateways(interface: &str) -> Result<Vec<Ipv4Addr>, DataplaneError> {
    // thread-self: /proc/self/net shows the *main* thread's namespace.
    let table = std::fs::read_to_string("/proc/thread-self/net/route").map_err(|source| {
        DataplaneError::Interface {
            interface: interface.to_owned(),
            source,
        }
    })?;
    let mut gateways = Vec::new();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(&iface), Some(gateway), Some(flags)) =
            (fields.first(), fields.get(2), fields.get(3))
        else {
            continue;
        };
        let (Ok(gateway), Ok(flags)) = (
            u32::from_str_radix(gateway, 16),
            u32::from_str_radix(flags, 16),
        ) else {
            continue;
        };
        // The column is the address's bytes as a host-order number.
        let gateway = Ipv4Addr::from(gateway.to_ne_bytes());
        if iface == interface && flags & RTF_GATEWAY != 0 && !gateways.contains(&gateway) {
            gateways.push(gateway);
        }
    }
    Ok(gateways)
}

/// Makes each of `gateways` a managed neighbour on `ifindex`.
pub fn manage(ifindex: u32, gateways: &[Ipv4Addr]) -> io::Result<()> {
    if gateways.is_empty() {
        return Ok(());
    }
    // SAFETY: plain socket(2) call; the fd is owned right below.
    #[allow(unsafe_code)]
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    #[allow(unsafe_code)]
    let socket = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    for (seq, gateway) in gateways.iter().enumerate() {
        let request = new_managed_neighbour(seq as u32 + 1, ifindex, *gateway);
        send_and_ack(&socket, &request)?;
    }
    Ok(())
}

/// RTM_NEWNEIGH (create or replace): family AF_INET, `ifindex`, state
/// NUD_NONE (the kernel resolves it), `NDA_DST`, `NDA_FLAGS_EXT` managed.
fn new_managed_neighbour(seq: u32, ifindex: u32, gateway: Ipv4Addr) -> Vec<u8> {
    let flags =
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_REPLACE) as u16;
    let mut msg = Vec::with_capacity(44);
    msg.extend_from_slice(&44u32.to_ne_bytes());
    msg.extend_from_slice(&libc::RTM_NEWNEIGH.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    // struct ndmsg: family, pad, pad, ifindex, state, flags, type.
    msg.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0]);
    msg.extend_from_slice(&ifindex.to_ne_bytes());
    msg.extend_from_slice(&0u16.to_ne_bytes());
    msg.extend_from_slice(&[0, 0]);
    msg.extend_from_slice(&8u16.to_ne_bytes());
    msg.extend_from_slice(&NDA_DST.to_ne_bytes());
    msg.extend_from_slice(&gateway.octets());
    msg.extend_from_slice(&8u16.to_ne_bytes());
    msg.extend_from_slice(&NDA_FLAGS_EXT.to_ne_bytes());
    msg.extend_from_slice(&NTF_EXT_MANAGED.to_ne_bytes());
    msg
}

fn send_and_ack(socket: &std::os::fd::OwnedFd, request: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: request is a live buffer of the given length.
    #[allow(unsafe_code)]
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut reply = [0u8; 1024];
    // SAFETY: reply is a live, writable buffer of the given length.
    #[allow(unsafe_code)]
    let n = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            reply.as_mut_ptr().cast(),
            reply.len(),
            0,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // nlmsghdr (16 bytes) of type NLMSG_ERROR, then the errno (0 = ACK).
    let kind = reply.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let errno = reply
        .get(16..20)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    match (kind, errno) {
        (Some(NLMSG_ERROR), Some(0)) => Ok(()),
        (Some(NLMSG_ERROR), Some(e)) => Err(io::Error::from_raw_os_error(-e)),
        _ => Err(io::Error::other("unexpected netlink reply to RTM_NEWNEIGH")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_matches_iproute2() {
        // Bytes iproute2 sends for `ip neigh replace 10.99.0.2 dev <2>
        // managed nud none` (strace), with seq 1.
        let msg = new_managed_neighbour(1, 2, Ipv4Addr::new(10, 99, 0, 2));
        assert_eq!(msg.len(), 44);
        assert_eq!(
            &msg[16..],
            b"\x02\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x08\x00\x01\x00\x0a\x63\x00\x02\x08\x00\x0f\x00\x01\x00\x00\x00"
        );
        assert_eq!(u16::from_ne_bytes([msg[6], msg[7]]), 0x0505);
    }
}
