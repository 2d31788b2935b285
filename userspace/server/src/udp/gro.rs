//! UDP receive offload (`UDP_GRO`): the kernel hands over a run of
//! same-sized datagrams of one flow as one buffer, with their size in a
//! control message — one receive per run instead of one per datagram, the
//! receiving half of what GSO does for sends. Helpers for the socket option,
//! a non-blocking `recvmsg(2)` with ancillary data, and the control
//! message's parsing.

use std::{net::SocketAddr, os::fd::AsRawFd};

/// Room for the UDP_GRO control message (and a few more).
pub(crate) const CONTROL_LEN: usize = 64;

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

/// The segment size of a coalesced read, from its control messages;
/// `None` when the read is one datagram.
pub(crate) fn segment_size(control: &[u8]) -> Option<usize> {
    if control.is_empty() {
        return None;
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
                return usize::try_from(size).ok().filter(|s| *s > 0);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    None
}

/// One non-blocking `recvmsg(2)` into `buf`: (bytes, sender, segment
/// size). `WouldBlock` when nothing is queued.
pub(crate) fn recv_nowait(
    socket: &impl AsRawFd,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr, Option<usize>)> {
    let mut control = [0u64; CONTROL_LEN / 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `try_init` hands a sockaddr storage and its length for
    // recvmsg to fill; every other pointer in the msghdr points at locals
    // alive for the call.
    let ((n, control_len), addr) = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_name = storage.cast();
            msg.msg_namelen = *len;
            msg.msg_iov = &raw mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = CONTROL_LEN;
            let n = libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT);
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            *len = msg.msg_namelen;
            Ok((n as usize, msg.msg_controllen))
        })?
    };
    let from = addr
        .as_socket()
        .ok_or_else(|| std::io::Error::other("recvmsg: not an IP sender"))?;
    // SAFETY: the kernel wrote `control_len` (≤ CONTROL_LEN) bytes.
    let control_bytes = unsafe {
        std::slice::from_raw_parts(control.as_ptr().cast::<u8>(), control_len.min(CONTROL_LEN))
    };
    Ok((n, from, segment_size(control_bytes)))
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
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from, segment)) = recv_nowait(&rx, &mut buf) {
            assert_eq!(from, tx.local_addr().expect("addr"));
            match segment {
                Some(size) => got.extend(buf[..n].chunks(size).map(<[u8]>::to_vec)),
                None => got.push(buf[..n].to_vec()),
            }
        }
        assert_eq!(got, datagrams, "gro enabled: {gro}");
        assert!(segment_size(&[]).is_none());
    }
}
