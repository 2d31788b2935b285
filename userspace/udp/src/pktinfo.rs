//! Replies from the address the peer wrote to. A socket bound to the
//! wildcard address receives on every local address, but a plain send
//! leaves from whatever source the kernel's routing picks for the peer —
//! on a multi-homed host (a second address on the uplink, an address per
//! uplink) not always the one the peer sent to, and its NAT or stateful
//! firewall drops a reply from another address as unsolicited. The kernel
//! says which local address each datagram reached (`IP_PKTINFO`,
//! `IPV6_RECVPKTINFO`) and takes a source for each send in the same
//! control message, as WireGuard's kernel module and wireguard-go do.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::AsRawFd,
};

/// Where a UDP peer is, and which of our addresses it sent to (`None`: the
/// socket is bound to one address, or the kernel did not say).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    pub remote: SocketAddr,
    pub local: Option<IpAddr>,
}

impl PeerAddr {
    /// A peer to reach from wherever routing picks.
    pub fn routed(remote: SocketAddr) -> Self {
        Self {
            remote,
            local: None,
        }
    }
}

/// Asks the kernel to say which local address each datagram reached. Only
/// for a wildcard-bound socket: a socket bound to one address always sends
/// from it.
pub fn enable(socket: &impl AsRawFd, bound: SocketAddr) -> bool {
    if !bound.ip().is_unspecified() {
        return false;
    }
    let (level, option) = match bound {
        SocketAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_PKTINFO),
        SocketAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
    };
    let on: libc::c_int = 1;
    // SAFETY: a valid descriptor and a c_int value alive for the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            option,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// The local address a received datagram reached, from its control
/// messages.
///
/// # Safety
/// `cmsg` must point at a control message within a buffer the kernel
/// filled (as the CMSG_* walk yields).
pub unsafe fn local_address(cmsg: *const libc::cmsghdr) -> Option<IpAddr> {
    // SAFETY: the caller's promise; each branch reads only the struct the
    // level and type say the data holds, unaligned.
    unsafe {
        let data = libc::CMSG_DATA(cmsg);
        match ((*cmsg).cmsg_level, (*cmsg).cmsg_type) {
            (libc::IPPROTO_IP, libc::IP_PKTINFO)
                if (*cmsg).cmsg_len
                    >= libc::CMSG_LEN(std::mem::size_of::<libc::in_pktinfo>() as u32) as usize =>
            {
                let info = std::ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                // ipi_spec_dst: the local address the datagram is for (the
                // header's destination, unless that is a broadcast).
                let ip = Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr));
                (!ip.is_unspecified()).then_some(IpAddr::V4(ip))
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
                if (*cmsg).cmsg_len
                    >= libc::CMSG_LEN(std::mem::size_of::<libc::in6_pktinfo>() as u32) as usize =>
            {
                let info = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                let ip = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                (!ip.is_unspecified()).then_some(IpAddr::V6(ip))
            }
            _ => None,
        }
    }
}

/// Control messages for one send: a segment size for UDP_SEGMENT and the
/// source address, each optional. Room for both, aligned for cmsghdr.
pub struct SendControl {
    buf: [u64; 12],
    len: usize,
}

impl SendControl {
    pub fn new(segment: Option<u16>, source: Option<IpAddr>) -> Self {
        let mut control = Self {
            buf: [0; 12],
            len: 0,
        };
        if let Some(segment) = segment {
            control.push(libc::SOL_UDP, libc::UDP_SEGMENT, &segment.to_ne_bytes());
        }
        match source {
            Some(IpAddr::V4(ip)) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(ip).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                // SAFETY: in_pktinfo is plain data without padding.
                let bytes = unsafe { struct_bytes(&info) };
                control.push(libc::IPPROTO_IP, libc::IP_PKTINFO, bytes);
            }
            Some(IpAddr::V6(ip)) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: ip.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                // SAFETY: in6_pktinfo is plain data without padding.
                let bytes = unsafe { struct_bytes(&info) };
                control.push(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, bytes);
            }
            None => {}
        }
        control
    }

    fn push(&mut self, level: libc::c_int, kind: libc::c_int, data: &[u8]) {
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic; the header and
        // data are written inside `buf` (checked against its size), at an
        // offset that is a multiple of CMSG_ALIGN, so the header is aligned.
        unsafe {
            let space = libc::CMSG_SPACE(data.len() as u32) as usize;
            let bytes = std::mem::size_of_val(&self.buf);
            if self.len + space > bytes {
                return;
            }
            let at = self.buf.as_mut_ptr().cast::<u8>().add(self.len);
            let header = libc::cmsghdr {
                cmsg_len: libc::CMSG_LEN(data.len() as u32) as usize,
                cmsg_level: level,
                cmsg_type: kind,
            };
            std::ptr::write_unaligned(at.cast::<libc::cmsghdr>(), header);
            let payload = at.add(libc::CMSG_LEN(0) as usize);
            std::ptr::copy_nonoverlapping(data.as_ptr(), payload, data.len());
            self.len += space;
        }
    }

    /// The messages, for `msg_control` (empty: none).
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes of `buf` were written by `push`.
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast::<u8>(), self.len) }
    }
}

/// # Safety
/// `T` must be plain data without padding bytes.
unsafe fn struct_bytes<T>(value: &T) -> &[u8] {
    // SAFETY: the caller's promise; the slice lives as long as `value`.
    unsafe {
        std::slice::from_raw_parts((value as *const T).cast::<u8>(), std::mem::size_of::<T>())
    }
}

/// One non-blocking sendmsg(2) of `data` to `to.remote` from `to.local`,
/// cut into `segment`-byte datagrams when given (UDP_SEGMENT). A source
/// address the host no longer has (removed since the peer wrote to it) is
/// dropped and the send retried from wherever routing picks.
pub fn send(
    socket: &impl AsRawFd,
    to: PeerAddr,
    data: &[u8],
    segment: Option<u16>,
) -> std::io::Result<()> {
    match send_from(socket, to.remote, to.local, data, segment) {
        Err(e)
            if to.local.is_some()
                && matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::EADDRNOTAVAIL | libc::ENETUNREACH)
                ) =>
        {
            send_from(socket, to.remote, None, data, segment)
        }
        other => other,
    }
}

fn send_from(
    socket: &impl AsRawFd,
    remote: SocketAddr,
    local: Option<IpAddr>,
    data: &[u8],
    segment: Option<u16>,
) -> std::io::Result<()> {
    let addr = socket2::SockAddr::from(remote);
    let control = SendControl::new(segment, local);
    let control = control.as_bytes();
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below points at
    // locals alive for the sendmsg call, with their true lengths.
    let rc = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = addr.as_ptr().cast_mut().cast();
        msg.msg_namelen = addr.len();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        if !control.is_empty() {
            msg.msg_control = control.as_ptr().cast_mut().cast();
            msg.msg_controllen = control.len();
        }
        libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_DONTWAIT)
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real sockets on two loopback addresses: a wildcard-bound socket's
    /// send leaves from the source it is given — not from the one routing
    /// would pick (127.0.0.1) — and from the routed one when the given
    /// source is not the host's.
    #[test]
    fn a_send_leaves_from_the_source_it_names() {
        let server = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
        let port = server.local_addr().expect("addr").port();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let remote = client.local_addr().expect("addr");
        // 127.0.0.2 is local too (the whole of 127/8 is on lo).
        let to = PeerAddr {
            remote,
            local: Some(IpAddr::from([127, 0, 0, 2])),
        };
        send(&server, to, b"pong", None).expect("reply");
        let mut buf = [0u8; 16];
        let (n, from) = client.recv_from(&mut buf).expect("reply");
        assert_eq!(&buf[..n], b"pong");
        assert_eq!(from, SocketAddr::from(([127, 0, 0, 2], port)));

        let gone = PeerAddr {
            local: Some(IpAddr::from([192, 0, 2, 77])),
            ..to
        };
        send(&server, gone, b"again", None).expect("retried");
        let (n, from) = client.recv_from(&mut buf).expect("reply");
        assert_eq!(&buf[..n], b"again");
        assert_eq!(from.port(), port);
    }

    #[test]
    fn control_messages_are_empty_without_a_segment_size_or_a_source() {
        assert!(SendControl::new(None, None).as_bytes().is_empty());
        let one = SendControl::new(Some(1400), None).as_bytes().len();
        let both = SendControl::new(Some(1400), Some(IpAddr::from([10, 0, 0, 1])))
            .as_bytes()
            .len();
        assert!(one > 0 && both > one);
    }
}
