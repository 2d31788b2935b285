//! A UDP endpoint's sockets: one per worker on the same address
//! (SO_REUSEPORT), with the source-address steering of the TLS listeners,
//! so all datagrams of one peer reach one worker.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Socket buffers sized for bursts of full-size datagrams at multi-gigabit
/// rates; the kernel caps them at `net.core.[rw]mem_max` unless run as
/// root, where the FORCE variants apply.
const BUFFER_BYTES: usize = 4 << 20;

/// Which local address replies leave from, on a wildcard `addr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplySource {
    /// Learned from each datagram (`IP_PKTINFO` on receive): WireGuard,
    /// whose peers are known only by what they send.
    PerDatagram,
    /// Known by the caller some other way (UDP acceleration: the address
    /// the session's TLS connection reached), so reads carry no packet
    /// info.
    Known,
}

/// Binds `workers` sockets on `addr`; errors surface here, at start.
pub fn bind_sockets(
    addr: SocketAddr,
    workers: usize,
    reply_source: ReplySource,
) -> std::io::Result<Vec<std::net::UdpSocket>> {
    let mut sockets = Vec::with_capacity(workers);
    for _ in 0..workers.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_port(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        force_buffer(&socket, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF);
        force_buffer(&socket, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF);
        socket.bind(&addr.into())?;
        socket.set_nonblocking(true)?;
        // Which of our addresses each datagram reached, to reply from it.
        if reply_source == ReplySource::PerDatagram
            && addr.ip().is_unspecified()
            && !super::pktinfo::enable(&socket, addr)
        {
            tracing::warn!(%addr, "no packet info: replies leave from the routed address");
        }
        sockets.push(socket.into());
    }
    if workers > 1
        && let Some(first) = sockets.first()
        && let Err(e) = crate::worker::steer_by_source(first, addr.is_ipv6(), workers)
    {
        tracing::warn!(%addr, "cannot keep a UDP peer on one worker: {e}");
    }
    Ok(sockets)
}

fn force_buffer(socket: &Socket, force: libc::c_int, plain: libc::c_int) {
    use std::os::fd::AsRawFd as _;
    let bytes = BUFFER_BYTES as libc::c_int;
    for option in [force, plain] {
        // SAFETY: a valid descriptor and a c_int option value of the
        // right size, alive for the call.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&raw const bytes).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}
