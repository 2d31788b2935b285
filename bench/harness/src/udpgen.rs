//! A small 64-byte UDP packet generator (trafgen is not in the image): one
//! socket, `sendmmsg` batches, each message to a different destination
//! port/address so the packets form `flows` distinct 5-tuples.
//!
//! 64 bytes is the Ethernet frame on the wire with its FCS: 14 + 20 + 8 +
//! 18 payload + 4. Flow `i` goes to `base + i / PORTS_PER_ADDRESS`, port
//! `FIRST_PORT + i % PORTS_PER_ADDRESS`.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

/// UDP payload making a 64-byte Ethernet frame (FCS included).
pub const PAYLOAD: usize = 18;
const FIRST_PORT: u32 = 1024;
const PORTS_PER_ADDRESS: u32 = 60_000;
/// Messages per sendmmsg call.
const BATCH: usize = 256;

pub struct UdpGen {
    pub base: Ipv4Addr,
    pub flows: u32,
}

pub struct Sent {
    pub packets: u64,
    pub elapsed: Duration,
}

impl UdpGen {
    fn addresses(&self) -> Vec<libc::sockaddr_in> {
        let base = u32::from(self.base);
        (0..self.flows.max(1))
            .map(|i| libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: ((FIRST_PORT + i % PORTS_PER_ADDRESS) as u16).to_be(),
                sin_addr: libc::in_addr {
                    s_addr: (base + i / PORTS_PER_ADDRESS).to_be(),
                },
                sin_zero: [0; 8],
            })
            .collect()
    }

    /// Sends until `duration` passes, or (with `once`) until every flow got
    /// exactly one packet. Runs on the calling thread, in its namespace.
    pub fn run(&self, duration: Duration, once: bool) -> Result<Sent> {
        let addrs = self.addresses();
        // SAFETY: plain socket(2); the fd is closed below on every path.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            bail!("socket: {}", std::io::Error::last_os_error());
        }
        let result = self.send_loop(fd, &addrs, duration, once);
        // SAFETY: fd is ours and still open.
        unsafe { libc::close(fd) };
        result
    }

    fn send_loop(
        &self,
        fd: libc::c_int,
        addrs: &[libc::sockaddr_in],
        duration: Duration,
        once: bool,
    ) -> Result<Sent> {
        let mut payload = [0u8; PAYLOAD];
        payload[..8].copy_from_slice(b"egbench!");
        let mut iov = libc::iovec {
            iov_base: payload.as_mut_ptr().cast(),
            iov_len: PAYLOAD,
        };
        // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
        let mut msgs: Vec<libc::mmsghdr> =
            (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
        let started = Instant::now();
        let mut next = 0usize;
        let mut sent: u64 = 0;
        let total = addrs.len();
        loop {
            let n = if once {
                BATCH.min(total - next.min(total))
            } else {
                BATCH
            };
            if n == 0 || (!once && started.elapsed() >= duration) || crate::sys::interrupted() {
                break;
            }
            for (j, m) in msgs.iter_mut().take(n).enumerate() {
                let addr = &addrs[(next + j) % total];
                m.msg_hdr.msg_name = (addr as *const libc::sockaddr_in).cast_mut().cast();
                m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                m.msg_hdr.msg_iov = &mut iov;
                m.msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: msgs[..n] point at live sockaddrs and the payload iov.
            let r = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as u32, 0) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    // Transient: a full queue or a neighbour still resolving.
                    Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR) => continue,
                    Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH) => {
                        next += 1;
                        continue;
                    }
                    _ => bail!("sendmmsg: {e}"),
                }
            }
            sent += r as u64;
            next = if once {
                next + r as usize
            } else {
                (next + r as usize) % total
            };
        }
        Ok(Sent {
            packets: sent,
            elapsed: started.elapsed(),
        })
    }
}
