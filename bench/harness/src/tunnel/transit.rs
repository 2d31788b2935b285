//! The server's own share of a tunnel's latency, measured the same way for
//! every system: packet sockets in the server's namespace timestamp (in the
//! kernel, `SO_TIMESTAMPNS`) each ping as it crosses the server.
//!
//! ```text
//!   request: tunnel packet in on eth0  ──server──▶  echo request in on the device
//!   reply:   echo reply out on the device  ──server──▶  tunnel packet out on eth0
//! ```
//!
//! The transit of one ping is the two intervals added: decrypting, switching
//! and writing one way, reading, encrypting and sending the other, plus the
//! wake-ups between them. The kernel's own echo reply (between the two) and
//! everything on the client's side are left out, so the figure compares
//! servers even though all systems share one client machine.
//!
//! Matching: pings go one at a time (5 ms apart, answered in well under
//! that), so a request's tunnel packet is the last one that arrived with a
//! payload before it reached the device, and a reply's is the first one that
//! left with a payload after it. A keepalive that happens to fall in the
//! window can pair with the wrong ping; the median is what is reported.

use std::{
    mem,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use anyhow::{Context, Result, anyhow, bail};
use ethergate_netns::Topology;
use hdrhistogram::Histogram;

/// How a system's tunnel packets look on the uplink.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Transport {
    Tcp(u16),
    Udp(u16),
}

/// Where the server under test meets the kernel: its uplink, the device it
/// writes the inner packets to (a tap or a tun) and its tunnel's transport.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerPath<'a> {
    pub uplink: &'a str,
    pub device: &'a str,
    pub transport: Transport,
}

/// Per-ping transit times through the server, in microseconds.
pub(crate) struct Transit {
    pub total: Histogram<u64>,
    pub request: Histogram<u64>,
    pub reply: Histogram<u64>,
    /// Tunnel packets seen, and how many of them over UDP acceleration.
    pub tunnel_packets: u64,
    pub accelerated_packets: u64,
}

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;
const ETH_HEADER: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
/// Beyond half the ping interval a packet belongs to another ping.
const MATCH_WINDOW_NS: u64 = 2_500_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A tunnel packet; `accelerated` when it went over SoftEther's UDP
    /// acceleration rather than the TCP connection.
    TunnelIn {
        accelerated: bool,
    },
    TunnelOut {
        accelerated: bool,
    },
    EchoRequest(u16),
    EchoReply(u16),
}

/// Runs `during` (the pings) while both interfaces are captured, and pairs
/// what was seen into per-ping transit times.
///
/// Nothing reads the sockets while the pings run: a capturing thread woken
/// for every packet would compete for the cores with the server it
/// measures. The kernel stamps each packet as it queues it, so reading the
/// queues afterwards loses nothing — provided they held the whole run,
/// which is checked.
pub(crate) fn measure(
    topo: &Topology,
    namespace: &str,
    path: ServerPath<'_>,
    during: impl FnOnce() -> Result<()>,
) -> Result<Transit> {
    let (uplink, device) = topo
        .enter(namespace, || -> Result<(OwnedFd, OwnedFd)> {
            Ok((open(path.uplink)?, open(path.device)?))
        })
        .map_err(|e| anyhow!("{e}"))??;
    during()?;
    let mut events = Vec::new();
    let mut buf = [0u8; 256];
    for (fd, tunnel_side) in [(&uplink, true), (&device, false)] {
        while let Some((at, outgoing, l3, frame)) = receive(fd.as_raw_fd(), &mut buf) {
            let seen = if tunnel_side {
                classify_tunnel(frame, l3, outgoing, path.transport)
            } else {
                classify_echo(frame, l3, outgoing)
            };
            if let Some(seen) = seen {
                events.push((at, seen));
            }
        }
        let dropped = drops(fd)?;
        if dropped > 0 {
            bail!("the capture queue overflowed: {dropped} packets lost");
        }
    }
    events.sort_by_key(|&(at, _)| at);
    pair(&events)
}

/// Packets the kernel could not queue on `fd` (a full receive buffer).
fn drops(fd: &OwnedFd) -> Result<u32> {
    // SAFETY: plain data, zero-initialised.
    let mut stats: libc::tpacket_stats = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `stats` has the length given.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&raw mut stats).cast(),
            &raw mut len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("PACKET_STATISTICS");
    }
    Ok(stats.tp_drops)
}

/// A packet socket on `interface` that timestamps what it receives.
fn open(interface: &str) -> Result<OwnedFd> {
    let name = std::ffi::CString::new(interface)?;
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        bail!("no interface {interface} in the server's namespace");
    }
    let all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(all)) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("AF_PACKET socket");
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; zero is a valid start.
    let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = all;
    addr.sll_ifindex = index as i32;
    // SAFETY: `addr` is a sockaddr_ll of the length given.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if bound != 0 {
        return Err(std::io::Error::last_os_error()).context("binding the packet socket");
    }
    set_int(&fd, libc::SO_TIMESTAMPNS, 1)?;
    // The whole run stays queued until it is read (root may pass rmem_max).
    set_int(&fd, libc::SO_RCVBUFFORCE, 64 << 20)?;
    Ok(fd)
}

fn set_int(fd: &OwnedFd, option: i32, value: i32) -> Result<()> {
    // SAFETY: an int option of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw const value).cast(),
            mem::size_of::<i32>() as u32,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("setsockopt on the packet socket");
    }
    Ok(())
}

/// One packet without waiting: its kernel timestamp (ns), whether it was
/// leaving the interface, whether it starts at the IP header (a tun), and
/// its first bytes.
fn receive(fd: i32, buf: &mut [u8]) -> Option<(u64, bool, bool, &[u8])> {
    // SAFETY: plain data, zero-initialised.
    let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&raw mut from).cast();
    msg.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as u32;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control);
    // SAFETY: every pointer in `msg` is valid for the lengths given.
    let n = unsafe { libc::recvmsg(fd, &raw mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return None;
    }
    let mut at = None;
    // SAFETY: the kernel filled `msg_controllen` bytes of `control`; the
    // CMSG macros walk within them.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                at = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    let len = (n as usize).min(buf.len());
    let outgoing = from.sll_pkttype == libc::PACKET_OUTGOING;
    let l3 = from.sll_hatype != libc::ARPHRD_ETHER;
    // A packet without a timestamp cannot be placed: skipped.
    Some((at.unwrap_or(0), outgoing, l3, &buf[..len])).filter(|p| p.0 != 0)
}

/// The IPv4 header of a frame (`l3`: the packet starts with it): protocol,
/// header length, total length.
fn ipv4(frame: &[u8], l3: bool) -> Option<(&[u8], u8, usize, usize)> {
    let ip = if l3 {
        frame
    } else {
        let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
        if ethertype != ETHERTYPE_IPV4 {
            return None;
        }
        frame.get(ETH_HEADER..)?
    };
    let first = *ip.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let header = usize::from(first & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    Some((ip, *ip.get(9)?, header, total))
}

/// A tunnel packet with a payload, to (in) or from (out) the server's port.
fn classify_tunnel(frame: &[u8], l3: bool, outgoing: bool, transport: Transport) -> Option<Seen> {
    let (ip, protocol, header, total) = ipv4(frame, l3)?;
    let l4 = ip.get(header..)?;
    let port = |at: usize| Some(u16::from_be_bytes([*l4.get(at)?, *l4.get(at + 1)?]));
    let (src, dst) = (port(0)?, port(2)?);
    let (server, payload) = match (transport, protocol) {
        (Transport::Tcp(server), IPPROTO_TCP) => {
            let offset = usize::from(*l4.get(12)? >> 4) * 4;
            (Some(server), total.saturating_sub(header + offset))
        }
        (Transport::Udp(server), IPPROTO_UDP) => {
            (Some(server), usize::from(port(4)?).saturating_sub(8))
        }
        // SoftEther's UDP acceleration: the client moves data over UDP, on
        // a port the server names at login, when the server offers it
        // (Debian's does; ethergate does not). Only the tunnel sends
        // datagrams on the uplink while the pings run.
        (Transport::Tcp(_), IPPROTO_UDP) => (None, usize::from(port(4)?).saturating_sub(8)),
        _ => return None,
    };
    let accelerated = server.is_none();
    let ours = |p: u16| server.is_none_or(|server| server == p);
    match (payload > 0, outgoing) {
        (true, false) if ours(dst) => Some(Seen::TunnelIn { accelerated }),
        (true, true) if ours(src) => Some(Seen::TunnelOut { accelerated }),
        _ => None,
    }
}

/// An echo request the server delivered, or an echo reply it is to carry.
fn classify_echo(frame: &[u8], l3: bool, outgoing: bool) -> Option<Seen> {
    let (ip, protocol, header, _) = ipv4(frame, l3)?;
    if protocol != IPPROTO_ICMP {
        return None;
    }
    let icmp = ip.get(header..)?;
    let sequence = u16::from_be_bytes([*icmp.get(6)?, *icmp.get(7)?]);
    match (*icmp.first()?, outgoing) {
        (ICMP_ECHO_REQUEST, false) => Some(Seen::EchoRequest(sequence)),
        (ICMP_ECHO_REPLY, true) => Some(Seen::EchoReply(sequence)),
        _ => None,
    }
}

/// Pairs each echo with its tunnel packet (see the module comment).
fn pair(events: &[(u64, Seen)]) -> Result<Transit> {
    let histogram = || Histogram::<u64>::new(3).context("histogram");
    let mut transit = Transit {
        total: histogram()?,
        request: histogram()?,
        reply: histogram()?,
        tunnel_packets: 0,
        accelerated_packets: 0,
    };
    let mut requests = std::collections::HashMap::new();
    for (i, &(at, seen)) in events.iter().enumerate() {
        match seen {
            Seen::EchoRequest(sequence) => {
                let tunnel = events[..i]
                    .iter()
                    .rev()
                    .take_while(|(t, _)| at - t <= MATCH_WINDOW_NS)
                    .find(|(_, s)| matches!(s, Seen::TunnelIn { .. }));
                if let Some(&(t, _)) = tunnel {
                    requests.insert(sequence, at - t);
                }
            }
            Seen::EchoReply(sequence) => {
                let tunnel = events[i + 1..]
                    .iter()
                    .take_while(|(t, _)| t - at <= MATCH_WINDOW_NS)
                    .find(|(_, s)| matches!(s, Seen::TunnelOut { .. }));
                if let (Some(&(t, _)), Some(request)) = (tunnel, requests.get(&sequence)) {
                    let reply = t - at;
                    transit.request.record((request / 1000).max(1))?;
                    transit.reply.record((reply / 1000).max(1))?;
                    transit.total.record(((request + reply) / 1000).max(1))?;
                }
            }
            Seen::TunnelIn { accelerated } | Seen::TunnelOut { accelerated } => {
                transit.tunnel_packets += 1;
                transit.accelerated_packets += u64::from(accelerated);
            }
        }
    }
    if transit.total.is_empty() {
        bail!(
            "no ping could be paired with its tunnel packets ({} packets seen, {} of them tunnel packets)",
            events.len(),
            transit.tunnel_packets
        );
    }
    Ok(transit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_echo_pairs_with_the_nearest_tunnel_packet_on_its_side() {
        const IN: Seen = Seen::TunnelIn { accelerated: false };
        const OUT: Seen = Seen::TunnelOut { accelerated: true };
        let events = [
            (1_000, IN),
            (10_000, IN),
            (40_000, Seen::EchoRequest(1)),
            (60_000, Seen::EchoReply(1)),
            (100_000, OUT),
            (120_000, OUT),
            // Another ping, with its reply's packet out of the window.
            (5_000_000, IN),
            (5_020_000, Seen::EchoRequest(2)),
            (5_040_000, Seen::EchoReply(2)),
            (9_000_000, OUT),
        ];
        let transit = pair(&events).unwrap();
        assert_eq!(transit.total.len(), 1);
        assert_eq!(transit.request.max(), 30);
        assert_eq!(transit.reply.max(), 40);
        assert_eq!(transit.total.max(), 70);
        assert_eq!(
            (transit.tunnel_packets, transit.accelerated_packets),
            (6, 3)
        );
    }

    #[test]
    fn tunnel_packets_are_told_by_port_direction_and_payload() {
        // Ethernet + IPv4 (20) + TCP (20) + 5 bytes of payload, to port 443.
        let mut frame = vec![0u8; 14 + 20 + 20 + 5];
        frame[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&45u16.to_be_bytes());
        frame[23] = IPPROTO_TCP;
        frame[34..36].copy_from_slice(&40000u16.to_be_bytes());
        frame[36..38].copy_from_slice(&443u16.to_be_bytes());
        frame[46] = 5 << 4;
        let tcp = Transport::Tcp(443);
        assert_eq!(
            classify_tunnel(&frame, false, false, tcp),
            Some(Seen::TunnelIn { accelerated: false })
        );
        assert_eq!(classify_tunnel(&frame, false, true, tcp), None);
        assert_eq!(
            classify_tunnel(&frame, false, false, Transport::Tcp(80)),
            None
        );
        // A pure ACK (no payload) is not a tunnel packet.
        frame[16..18].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(classify_tunnel(&frame, false, false, tcp), None);
    }
}
