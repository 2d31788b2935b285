//! UDP acceleration, the client's side (docs/udp-acceleration.md): the
//! login offers a UDP port and a key, a server that grants it answers with
//! its port, key and cookies, and once datagrams have gone both ways for
//! ten seconds frames leave by UDP instead of inside the TLS connection —
//! no TCP-over-TCP, so a lost packet costs the inner flow one
//! retransmission instead of stalling every flow behind the outer TCP's.
//! Keep-alives run all along; when the path stops working frames go back
//! to TLS, and to UDP again when it heals. The liveness rules and the
//! datagram's format are the protocol crate's, shared with the server.

use std::net::{IpAddr, SocketAddr};

use ethergate_proto::{
    Timestamp,
    data::Frames,
    udp_accel::{Grant, Liveness, Offer, Received, Record, Session, VERSION},
    udp_accel_cipher::{Opener, Sealer},
};
use ethergate_udp::{PeerAddr, gso};
use tracing::{debug, info};

use crate::clock::system_random;

/// Largest datagram read (a frame of the protocol's largest size, sealed).
pub const DATAGRAM_MAX: usize = 2048;
/// Socket buffers for bursts at gigabit rates: the kernel's 208 KiB
/// default holds about 140 full datagrams, which a server's segmented send
/// overruns whenever this client is off its core for a moment (measured:
/// tens of thousands of inner-TCP retransmits in a 3-second download).
/// The FORCE options pass `net.core.rmem_max` (the client runs as root
/// for its tap); without them the plain ones apply, capped.
const SOCKET_BUFFER: usize = 4 << 20;

/// The session's UDP socket and offer, before the server answers.
pub struct UdpAccel {
    socket: std::net::UdpSocket,
    offer: Offer,
    path: Option<Path>,
}

/// A granted path.
struct Path {
    sealer: Sealer,
    opener: Opener,
    /// The cookie the server expects in what we send.
    server_cookie: u32,
    liveness: Liveness,
    /// The server's address with its UDP port; the source of its newest
    /// valid datagram once one arrived.
    destination: SocketAddr,
    next_keepalive: Timestamp,
    /// Frames leave by UDP (as of the last send); logged when it changes.
    sending: bool,
    frames_sent: u64,
    frames_received: u64,
    dropped: u64,
    /// Each sealed datagram's size in the send buffer.
    sizes: Vec<usize>,
    /// Cleared when the kernel refuses segmentation.
    gso: bool,
}

impl UdpAccel {
    /// A socket for the session on the address family of `local` (the TCP
    /// connection's own address), and the offer for the login.
    pub fn bind(local: SocketAddr) -> std::io::Result<Self> {
        let any: SocketAddr = match local.ip() {
            IpAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = std::net::UdpSocket::bind(any)?;
        socket.set_nonblocking(true)?;
        size_buffers(&socket);
        let mut client_key = [0u8; 32];
        system_random(&mut client_key);
        let offer = Offer {
            max_version: VERSION,
            client_ip: Some(local.ip()),
            client_port: socket.local_addr()?.port(),
            client_key,
            fast_detect: true,
        };
        Ok(Self {
            socket,
            offer,
            path: None,
        })
    }

    pub fn offer(&self) -> &Offer {
        &self.offer
    }

    /// A second handle on the socket, for the receive task.
    pub fn receiver(&self) -> std::io::Result<std::net::UdpSocket> {
        self.socket.try_clone()
    }

    /// The server's answer: `grant` (or none: the session stays on TLS);
    /// `server` is the TLS connection's peer, whose address the datagrams
    /// go to.
    pub fn granted(&mut self, grant: Option<&Grant>, server: SocketAddr, now: Timestamp) {
        let Some(grant) = grant else {
            debug!("UDP acceleration not granted: frames stay on TLS");
            return;
        };
        let session = Session {
            offer: self.offer.clone(),
            grant: grant.clone(),
        };
        let mut nonce_prefix = [0u8; 4];
        system_random(&mut nonce_prefix);
        let destination = SocketAddr::new(server.ip(), grant.server_port);
        info!(server = %destination, "UDP acceleration granted");
        self.path = Some(Path {
            sealer: Sealer::new(&self.offer.client_key, nonce_prefix),
            opener: Opener::new(&grant.server_key()),
            server_cookie: grant.server_cookie,
            liveness: Liveness::new(session.timers(), grant.client_cookie),
            destination,
            next_keepalive: now,
            sending: false,
            frames_sent: 0,
            frames_received: 0,
            dropped: 0,
            sizes: Vec::new(),
            gso: true,
        });
    }

    /// Sends `frames` by UDP when the path is usable at `now`; false: the
    /// caller sends them through TLS. `out` is scratch. Runs of equal-sized
    /// datagrams (a bulk TCP flow's) leave as one segmented send, which
    /// the server's socket takes as one coalesced read.
    pub fn send_frames<'f>(
        &mut self,
        now: Timestamp,
        frames: impl Iterator<Item = &'f [u8]>,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(path) = &mut self.path else {
            return false;
        };
        let usable = path.liveness.usable(now);
        if usable != path.sending {
            path.sending = usable;
            if usable {
                info!(server = %path.destination, "UDP acceleration: frames go by UDP");
            } else {
                info!("UDP acceleration: the UDP path stopped working; frames go by TLS");
            }
        }
        if !usable {
            return false;
        }
        let tick = Liveness::own_tick(now);
        let echo = path.liveness.echo();
        out.clear();
        path.sizes.clear();
        for frame in frames {
            let before = out.len();
            path.sealer.seal(
                &Record {
                    cookie: path.server_cookie,
                    sender_tick: tick,
                    echoed_tick: echo,
                    compressed: false,
                    frame,
                },
                out,
            );
            path.sizes.push(out.len() - before);
        }
        let to = PeerAddr::routed(path.destination);
        let mut at = 0;
        for (first, end, bytes) in gso::runs(&path.sizes) {
            let chunk = &out[at..at + bytes];
            at += bytes;
            let segment = path.sizes[first];
            let count = (end - first) as u64;
            let segmented = path.gso && end - first > 1 && segment <= gso::ETHERNET_SEGMENT_MAX;
            let sent = if segmented {
                gso::send_segmented(&self.socket, to, chunk, segment as u16)
            } else {
                Err(std::io::ErrorKind::Unsupported.into())
            };
            match sent {
                Ok(()) => path.frames_sent += count,
                Err(e) => {
                    if segmented && gso::refused(&e) {
                        // No segmentation on this path: one send each from now on.
                        path.gso = false;
                    }
                    let mut offset = 0;
                    for &size in &path.sizes[first..end] {
                        match self
                            .socket
                            .send_to(&chunk[offset..offset + size], path.destination)
                        {
                            Ok(_) => path.frames_sent += 1,
                            // A full socket buffer drops the frame, as a UDP
                            // path must rather than stall; the inner flow
                            // retransmits.
                            Err(e) => {
                                path.dropped += 1;
                                debug!("UDP acceleration send: {e}");
                            }
                        }
                        offset += size;
                    }
                }
            }
        }
        true
    }

    /// When the next keep-alive is due (`None`: no path).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.path.as_ref().map(|p| p.next_keepalive)
    }

    /// Sends a keep-alive if one is due at `now`, and schedules the next.
    pub fn handle_timeout(&mut self, now: Timestamp, out: &mut Vec<u8>) {
        if self.path.as_ref().is_some_and(|p| now >= p.next_keepalive) {
            self.send_keepalive(now, out);
        }
    }

    /// A keep-alive now (carrying our echo of the server's tick), and the
    /// next one scheduled from here.
    fn send_keepalive(&mut self, now: Timestamp, out: &mut Vec<u8>) {
        let Some(path) = &mut self.path else { return };
        out.clear();
        path.sealer.seal(
            &Record {
                cookie: path.server_cookie,
                sender_tick: Liveness::own_tick(now),
                echoed_tick: path.liveness.echo(),
                compressed: false,
                frame: &[],
            },
            out,
        );
        match self.socket.send_to(out, path.destination) {
            Ok(_) => debug!(
                to = %path.destination,
                echo = path.liveness.echo(),
                "UDP acceleration keep-alive"
            ),
            Err(e) => debug!("UDP acceleration keep-alive: {e}"),
        }
        let mut r = [0u8; 4];
        system_random(&mut r);
        let delay = path.liveness.keepalive_delay_ms(now, u32::from_ne_bytes(r));
        path.next_keepalive = Timestamp(now.0.saturating_add(delay));
    }

    /// A datagram from `from`: its frame (if any, and if it is the server's
    /// and current) appended to `frames`. `out` is scratch for an answer.
    pub fn receive(
        &mut self,
        now: Timestamp,
        datagram: &mut [u8],
        from: SocketAddr,
        frames: &mut Frames,
        out: &mut Vec<u8>,
    ) {
        let Some(path) = &mut self.path else { return };
        let Some(plain) = path.opener.open(datagram) else {
            path.dropped += 1;
            debug!(%from, "UDP acceleration: a datagram that does not open");
            return;
        };
        let Ok(record) = Record::decode(plain) else {
            path.dropped += 1;
            debug!(%from, "UDP acceleration: a malformed record");
            return;
        };
        match path.liveness.receive(now, &record) {
            Received::Accepted { newest, answer } => {
                if newest && from != path.destination {
                    debug!(%from, "UDP acceleration: the server now sends from here");
                    path.destination = from;
                }
                // This client asks for no compression; a compressed frame
                // is not one it can use.
                if !record.frame.is_empty() && !record.compressed {
                    frames.push(record.frame);
                    path.frames_received += 1;
                }
                if answer {
                    // The path is coming up or back: our echo now, not at
                    // the next (sparse) keep-alive.
                    self.send_keepalive(now, out);
                }
            }
            why @ (Received::WrongCookie | Received::Stale) => {
                path.dropped += 1;
                debug!(%from, ?why, "UDP acceleration: a record dropped");
            }
        }
    }

    /// Logs what the path carried (at the session's end).
    pub fn report(&self) {
        if let Some(p) = &self.path {
            info!(
                frames_sent = p.frames_sent,
                frames_received = p.frames_received,
                dropped = p.dropped,
                "UDP acceleration: totals of this session"
            );
        }
    }
}

fn size_buffers(socket: &std::net::UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
    if setsockopt(socket, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
        let _ = setsockopt(socket, sockopt::RcvBuf, &SOCKET_BUFFER);
    }
    if setsockopt(socket, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
        let _ = setsockopt(socket, sockopt::SndBuf, &SOCKET_BUFFER);
    }
}

#[cfg(test)]
mod tests {
    use ethergate_proto::{TestRng, udp_accel::STABLE_MS};

    use super::*;

    /// The server's side of one path, built from the same protocol pieces
    /// the server uses: what it seals, this side opens; what this side
    /// seals, the server opens; frames go by UDP only once the path has
    /// worked both ways for the stable period.
    #[test]
    fn frames_go_by_udp_once_the_path_works_both_ways() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .expect("timeout");
        let mut client = UdpAccel::bind("127.0.0.1:1".parse().expect("addr")).expect("bind");
        let grant = Grant::new(
            server.local_addr().expect("addr").port(),
            true,
            &mut TestRng::new(9),
        );
        let server_sealer = Sealer::new(&grant.server_key(), [5; 4]);
        let server_opener = Opener::new(&client.offer().client_key);
        let mut server_liveness = Liveness::new(
            Session {
                offer: client.offer().clone(),
                grant: grant.clone(),
            }
            .timers(),
            grant.server_cookie,
        );
        let mut out = Vec::new();
        let t0 = Timestamp(1_000);
        client.granted(Some(&grant), server.local_addr().expect("addr"), t0);
        assert!(!client.send_frames(t0, [&b"early"[..]].into_iter(), &mut out));

        // The client's keep-alive reaches the server and opens there.
        client.handle_timeout(t0, &mut out);
        let mut buf = [0u8; DATAGRAM_MAX];
        let (n, _) = server.recv_from(&mut buf).expect("keep-alive");
        let server_at = server.local_addr().expect("addr");
        let plain = server_opener.open(&mut buf[..n]).expect("opens");
        let record = Record::decode(plain).expect("record");
        assert_eq!(record.cookie, grant.server_cookie);
        assert!(record.frame.is_empty());
        assert!(matches!(
            server_liveness.receive(Timestamp(5), &record),
            Received::Accepted { newest: true, .. }
        ));

        // The server answers with a frame and the echo of the client's
        // tick, for longer than the stable period.
        let mut frames = Frames::new();
        let mut sealed = Vec::new();
        let mut now = t0;
        for i in 0..3u64 {
            now = Timestamp(t0.0 + i * STABLE_MS / 2);
            sealed.clear();
            server_sealer.seal(
                &Record {
                    cookie: grant.client_cookie,
                    sender_tick: 10 + i,
                    echoed_tick: Liveness::own_tick(now),
                    compressed: false,
                    frame: b"from the server",
                },
                &mut sealed,
            );
            client.receive(now, &mut sealed.clone(), server_at, &mut frames, &mut out);
        }
        assert_eq!(frames.len(), 3);
        assert!(frames.iter().all(|f| f == b"from the server"));
        // A forged datagram and a foreign cookie are dropped.
        client.receive(now, &mut [0u8; 80], server_at, &mut frames, &mut out);
        sealed.clear();
        server_sealer.seal(
            &Record {
                cookie: grant.client_cookie ^ 1,
                sender_tick: 20,
                echoed_tick: 0,
                compressed: false,
                frame: b"x",
            },
            &mut sealed,
        );
        client.receive(now, &mut sealed, server_at, &mut frames, &mut out);
        assert_eq!(frames.len(), 3);

        // Each of them found this side quiet (they came 5 s apart, beyond
        // the 2.1-s dead time) and got a keep-alive at once, echoing its
        // tick; then, stable, the frame leaves by UDP, sealed for the
        // server.
        assert!(client.send_frames(now, [&b"to the server"[..]].into_iter(), &mut out));
        let mut echoes = Vec::new();
        let frame = loop {
            let (n, _) = server.recv_from(&mut buf).expect("a datagram");
            let plain = server_opener.open(&mut buf[..n]).expect("opens");
            let record = Record::decode(plain).expect("record");
            if !record.frame.is_empty() {
                break record.frame.to_vec();
            }
            echoes.push(record.echoed_tick);
        };
        assert_eq!(echoes, [10, 11, 12]);
        assert_eq!(frame, b"to the server");

        // Silence from the server beyond the dead time: back to TLS.
        let later = Timestamp(now.0 + 60_000);
        assert!(!client.send_frames(later, [&b"late"[..]].into_iter(), &mut out));
    }
}
