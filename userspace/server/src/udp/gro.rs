//! UDP receive offload (`UDP_GRO`): the kernel hands over a run of
//! same-sized datagrams of one flow as one buffer, with their size in a
//! control message — one receive per run instead of one per datagram, the
//! receiving half of what GSO does for sends. Helpers for the socket option,
//! non-blocking `recvmmsg(2)` with ancillary data (many reads per system
//! call where GRO cannot merge), and the control message's parsing.

use std::{
    net::{IpAddr, SocketAddr},
    os::fd::AsRawFd,
};

use ethergate_udp::pktinfo::{self, PeerAddr};

/// Room for the UDP_GRO and packet-info control messages (and a few more).
pub(crate) const CONTROL_LEN: usize = 128;

/// Asks the kernel to coalesce; false when it cannot (then every read is
/// one datagram, which the parsing below handles the same way).
pub(crate) fn enable(socket: &impl AsRawFd) -> bool {
    let on: libc::c_int = 1;
    // SAFETY: a valid descriptor and a c_int value alive for the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_GRO,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// What a read's control messages say: the segment size of a coalesced
/// read (`None`: one datagram) and the local address it reached.
pub(crate) fn parse_control(control: &[u8]) -> (Option<usize>, Option<IpAddr>) {
    let (mut segment, mut local) = (None, None);
    if control.is_empty() {
        return (segment, local);
    }
    // SAFETY: the msghdr only describes `control` (read-only walk with the
    // libc macros, which stay within msg_controllen).
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_control = control.as_ptr().cast_mut().cast();
        msg.msg_controllen = control.len();
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == libc::UDP_GRO {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                segment = usize::try_from(size).ok().filter(|s| *s > 0);
            } else if let Some(ip) = pktinfo::local_address(cmsg) {
                local = Some(ip);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    (segment, local)
}

/// What else is queued after a burst's first read, in one recvmmsg(2):
/// appended to `reads` as (index into `more` + 1, bytes, sender, segment
/// size). `more` grows (buffers of `buf_len` bytes, up to `max`) only
/// while bursts fill it, so a quiet socket holds little memory.
pub(crate) fn read_burst(
    socket: &impl AsRawFd,
    more: &mut Vec<Vec<u8>>,
    buf_len: usize,
    max: usize,
    reads: &mut Vec<(usize, usize, PeerAddr, Option<usize>)>,
) {
    if more.is_empty() {
        more.push(vec![0u8; buf_len]);
    }
    let n = recv_many_nowait(socket, more, |slot, bytes, from, segment| {
        reads.push((slot + 1, bytes, from, segment));
    });
    if n == more.len() && more.len() < max {
        let grown = (more.len() * 2).min(max);
        more.resize_with(grown, || vec![0u8; buf_len]);
    }
}

/// Up to `bufs.len()` reads in one non-blocking recvmmsg(2): for each
/// read filled, `on_read(buffer index, bytes, sender, segment size)`, in
/// order (a read from a sender that is not IP is skipped). Returns how
/// many buffers the kernel filled; 0 when nothing is queued (or on an
/// error, which the next wait reports).
pub(crate) fn recv_many_nowait(
    socket: &impl AsRawFd,
    bufs: &mut [Vec<u8>],
    mut on_read: impl FnMut(usize, usize, PeerAddr, Option<usize>),
) -> usize {
    const MAX: usize = 64;
    let count = bufs.len().min(MAX);
    if count == 0 {
        return 0;
    }
    // SAFETY (zeroed): plain C structs for which all-zero is valid.
    let mut names: [libc::sockaddr_storage; MAX] = unsafe { std::mem::zeroed() };
    let mut controls = [[0u64; CONTROL_LEN / 8]; MAX];
    let mut iovs: [libc::iovec; MAX] = unsafe { std::mem::zeroed() };
    let mut msgs: [libc::mmsghdr; MAX] = unsafe { std::mem::zeroed() };
    for i in 0..count {
        iovs[i] = libc::iovec {
            iov_base: bufs[i].as_mut_ptr().cast(),
            iov_len: bufs[i].len(),
        };
        let hdr = &mut msgs[i].msg_hdr;
        hdr.msg_name = (&raw mut names[i]).cast();
        hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        hdr.msg_iov = &raw mut iovs[i];
        hdr.msg_iovlen = 1;
        hdr.msg_control = controls[i].as_mut_ptr().cast();
        hdr.msg_controllen = CONTROL_LEN;
    }
    // SAFETY: every msghdr points at buffers, names and controls alive
    // for the call, with their true lengths.
    let n = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            msgs.as_mut_ptr(),
            count as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    let Ok(n) = usize::try_from(n) else {
        return 0;
    };
    for i in 0..n {
        let hdr = &msgs[i].msg_hdr;
        let from = socket_addr(&names[i]);
        // SAFETY: the kernel wrote `msg_controllen` (≤ CONTROL_LEN) bytes.
        let control = unsafe {
            std::slice::from_raw_parts(
                controls[i].as_ptr().cast::<u8>(),
                hdr.msg_controllen.min(CONTROL_LEN),
            )
        };
        if let Some(remote) = from {
            let (segment, local) = parse_control(control);
            on_read(
                i,
                msgs[i].msg_len as usize,
                PeerAddr { remote, local },
                segment,
            );
        }
    }
    n
}

/// The sender's address the kernel wrote (IPv4 or IPv6).
fn socket_addr(name: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(name.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in,
            // which it is large and aligned enough for.
            let v4 =
                unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::from((
                u32::from_be(v4.sin_addr.s_addr).to_be_bytes(),
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 =
                unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                v6.sin6_addr.s6_addr.into(),
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real loopback sockets: same-sized datagrams sent as one GSO run come
    /// back as one coalesced read with their size, or one by one where the
    /// kernel does not coalesce; either way every byte arrives in order.
    #[test]
    fn coalesced_reads_split_back_into_datagrams() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let gro = enable(&rx);
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = rx.local_addr().expect("addr");
        let datagrams: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 1000]).collect();
        for d in &datagrams {
            tx.send_to(d, to).expect("send");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut got = Vec::new();
        let mut bufs = vec![vec![0u8; 65536]; 8];
        let mut reads = Vec::new();
        recv_many_nowait(&rx, &mut bufs, |i, n, from, segment| {
            reads.push((i, n, from, segment))
        });
        for (i, n, from, segment) in reads {
            assert_eq!(from, PeerAddr::routed(tx.local_addr().expect("addr")));
            let buf = &bufs[i][..n];
            match segment {
                Some(size) => got.extend(buf.chunks(size).map(<[u8]>::to_vec)),
                None => got.push(buf.to_vec()),
            }
        }
        assert_eq!(got, datagrams, "gro enabled: {gro}");
        assert_eq!(parse_control(&[]), (None, None));
    }

    /// Real loopback sockets: one recvmmsg takes every queued datagram,
    /// with its sender, in order; an empty queue gives none.
    #[test]
    fn many_reads_in_one_call() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = rx.local_addr().expect("addr");
        for i in 0..5u8 {
            tx.send_to(&vec![i; 100 + usize::from(i)], to)
                .expect("send");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut bufs = vec![vec![0u8; 2048]; 8];
        let mut reads = Vec::new();
        let filled = recv_many_nowait(&rx, &mut bufs, |i, n, from, _| reads.push((i, n, from)));
        assert_eq!(filled, 5);
        for (at, &(i, n, from)) in reads.iter().enumerate() {
            assert_eq!(i, at, "each read names its own buffer");
            assert_eq!(n, 100 + i);
            assert_eq!(from, PeerAddr::routed(tx.local_addr().expect("addr")));
            assert!(bufs[i][..n].iter().all(|b| usize::from(*b) == i));
        }
        assert_eq!(recv_many_nowait(&rx, &mut bufs, |_, _, _, _| {}), 0);
    }

    /// Real sockets on two loopback addresses: a wildcard-bound socket
    /// learns which one each datagram reached, and its reply leaves from
    /// that address — not from the one routing would pick (127.0.0.1).
    #[test]
    fn replies_leave_from_the_address_the_peer_wrote_to() {
        use std::net::IpAddr;
        let server = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
        let port = server.local_addr().expect("addr").port();
        assert!(pktinfo::enable(
            &server,
            SocketAddr::from(([0, 0, 0, 0], port))
        ));
        let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        client.send_to(b"ping", ("127.0.0.2", port)).expect("send");
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut bufs = vec![vec![0u8; 64]];
        let mut reads = Vec::new();
        recv_many_nowait(&server, &mut bufs, |_, n, from, _| reads.push((n, from)));
        let [(4, got)] = reads[..] else {
            panic!("one 4-byte read: {reads:?}");
        };
        assert_eq!(got.remote, client.local_addr().expect("addr"));
        assert_eq!(got.local, Some(IpAddr::from([127, 0, 0, 2])));
        pktinfo::send(&server, got, b"pong", None).expect("reply");
        let mut buf = [0u8; 16];
        let (n, from) = client.recv_from(&mut buf).expect("reply");
        assert_eq!(&buf[..n], b"pong");
        assert_eq!(from, SocketAddr::from(([127, 0, 0, 2], port)));
    }

    /// What a send says about its source reads back as the receive side
    /// parses it, for both families, beside a segment size.
    #[test]
    fn a_sends_source_reads_back() {
        for source in ["10.0.0.1", "2001:db8::1"] {
            let source: std::net::IpAddr = source.parse().expect("ip");
            let control = pktinfo::SendControl::new(Some(1400), Some(source));
            assert_eq!(
                parse_control(control.as_bytes()),
                (None, Some(source)),
                "UDP_SEGMENT is not UDP_GRO; the source reads back"
            );
        }
    }
}
