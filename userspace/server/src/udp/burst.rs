//! A worker's reads from one UDP socket, a burst at a time: one datagram
//! (or GRO run) waited for on io_uring, then whatever else is queued taken
//! in one recvmmsg(2) without waiting. Shared by the WireGuard endpoint
//! and UDP acceleration, whose loops only differ in what a datagram means.

use compio::BufResult;

use super::{gro, pktinfo::PeerAddr};

/// Largest read: a 64 KiB UDP payload (a coalesced GRO run).
const READ_MAX: usize = 65536;

pub(crate) struct BurstReader {
    io: compio::net::UdpSocket,
    /// The same socket for the non-blocking reads.
    nowait: std::net::UdpSocket,
    first: Vec<u8>,
    control: Vec<u8>,
    /// Buffers of the reads after the first; grown while bursts fill them.
    more: Vec<Vec<u8>>,
    /// (buffer index, bytes, sender, segment size) of each read of the
    /// burst; buffer 0 is `first`, i > 0 is `more[i - 1]`.
    reads: Vec<(usize, usize, PeerAddr, Option<usize>)>,
    burst: usize,
}

impl BurstReader {
    /// Reads `socket` in bursts of up to `burst` reads, with UDP_GRO where
    /// the kernel offers it (`gro()` says whether).
    pub fn new(socket: std::net::UdpSocket, burst: usize) -> std::io::Result<(Self, bool)> {
        let nowait = socket.try_clone()?;
        let io = compio::net::UdpSocket::from_std(socket)?;
        let gro = gro::enable(&nowait);
        Ok((
            Self {
                io,
                nowait,
                first: Vec::with_capacity(READ_MAX),
                control: Vec::with_capacity(gro::CONTROL_LEN),
                more: Vec::new(),
                reads: Vec::with_capacity(burst),
                burst: burst.max(1),
            },
            gro,
        ))
    }

    /// Waits for the next burst. An error leaves an empty burst.
    pub async fn read(&mut self) -> std::io::Result<()> {
        self.reads.clear();
        let mut first = std::mem::take(&mut self.first);
        let mut control = std::mem::take(&mut self.control);
        first.clear();
        control.clear();
        let BufResult(result, (returned, returned_control)) =
            self.io.recv_msg(first, control).await;
        self.first = returned;
        self.control = returned_control;
        let (n, control_len, remote, _) = result?;
        if self.control.len() < control_len && control_len <= self.control.capacity() {
            // SAFETY: the kernel wrote `control_len` bytes of ancillary
            // data into the buffer (its msg_controllen after recvmsg).
            unsafe { self.control.set_len(control_len) };
        }
        let (segment, local) =
            gro::parse_control(&self.control[..control_len.min(self.control.len())]);
        let from = PeerAddr { remote, local };
        self.reads.push((0, n.min(self.first.len()), from, segment));
        gro::read_burst(
            &self.nowait,
            &mut self.more,
            READ_MAX,
            self.burst - 1,
            &mut self.reads,
        );
        Ok(())
    }

    /// Reads in this burst (a GRO run counts once).
    pub fn len(&self) -> usize {
        self.reads.len()
    }

    /// Read `i` of the burst: its bytes, its sender, and the size its
    /// datagrams are cut at (the whole read when it is one datagram).
    pub fn get_mut(&mut self, i: usize) -> Option<(&mut [u8], PeerAddr, usize)> {
        let &(at, n, from, segment) = self.reads.get(i)?;
        let buf = if at == 0 {
            self.first.get_mut(..n)?
        } else {
            self.more.get_mut(at - 1)?.get_mut(..n)?
        };
        Some((buf, from, segment.unwrap_or(n).max(1)))
    }

    /// Every datagram of the burst, in order.
    pub fn for_each(&mut self, mut f: impl FnMut(&mut [u8], PeerAddr)) {
        for i in 0..self.len() {
            if let Some((buf, from, size)) = self.get_mut(i) {
                for datagram in buf.chunks_mut(size) {
                    f(datagram, from);
                }
            }
        }
    }
}
