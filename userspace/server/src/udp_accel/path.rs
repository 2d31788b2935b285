//! One session's UDP path: its two keys, the liveness state that decides
//! when frames go by UDP, where the client is, and the sealing and
//! sending of its datagrams (docs/udp-acceleration.md §3–§5).
//!
//! Shared by the session's connections (which send frames here while the
//! path is usable), the worker's receive loop and the worker's keep-alive
//! queue, all normally on the session's worker: the lock is uncontended.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use ethergate_proto::{
    Timestamp,
    data::Frames,
    udp_accel::{Liveness, Received, Record, Session},
    udp_accel_cipher::{Opener, Sealer},
};

use super::{UdpAccelCounters, UdpAccelDrop};
use crate::udp::{
    gso,
    pktinfo::{self, PeerAddr},
};

pub use ethergate_proto::udp_accel_cipher::OVERHEAD;

struct State {
    liveness: Liveness,
    /// Where datagrams go: the TCP peer's address with the client's UDP
    /// port at first, then the source of the newest valid datagram.
    destination: SocketAddr,
    /// The client's own address and port (its LAN address behind a NAT),
    /// tried with keep-alives until the path works.
    alternative: Option<SocketAddr>,
}

/// What a session's connection does with frames: by UDP or by TLS.
pub struct UdpPath {
    /// The client's key: what it sends is opened with it.
    opener: Opener,
    /// The server's key: what we send is sealed with it.
    sealer: Sealer,
    /// The cookie the client expects in what we send.
    client_cookie: u32,
    state: Mutex<State>,
    /// This worker's socket on the address the client connected to.
    socket: Arc<std::net::UdpSocket>,
    /// That address, when the socket is bound to the wildcard: datagrams
    /// leave from it, not from whatever routing picks (see
    /// `udp::pktinfo`).
    source: Option<IpAddr>,
    /// Frames leave by UDP now (status; set by the liveness checks).
    sending: AtomicBool,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    counters: Arc<UdpAccelCounters>,
}

impl UdpPath {
    /// The path of a session whose login was granted UDP acceleration;
    /// `peer` is the login connection's TCP peer, `source` the address it
    /// connected to when `socket` is bound to the wildcard.
    pub fn new(
        session: &Session,
        peer: SocketAddr,
        socket: Arc<std::net::UdpSocket>,
        source: Option<IpAddr>,
        counters: Arc<UdpAccelCounters>,
    ) -> Self {
        let mut nonce_prefix = [0u8; 4];
        crate::random::system_random(&mut nonce_prefix);
        let destination = SocketAddr::new(peer.ip(), session.offer.client_port);
        let alternative = session
            .offer
            .client_ip
            .map(|ip| SocketAddr::new(ip, session.offer.client_port))
            .filter(|a| *a != destination);
        Self {
            opener: Opener::new(&session.offer.client_key),
            sealer: Sealer::new(&session.grant.server_key(), nonce_prefix),
            client_cookie: session.grant.client_cookie,
            state: Mutex::new(State {
                liveness: Liveness::new(session.timers(), session.grant.server_cookie),
                destination,
                alternative,
            }),
            socket,
            source,
            sending: AtomicBool::new(false),
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            counters,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each step leaves the state consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The delay before the next keep-alive (see
    /// [`Liveness::keepalive_delay_ms`]).
    pub fn keepalive_delay_ms(&self, now: Timestamp, r: u32) -> u64 {
        self.lock().liveness.keepalive_delay_ms(now, r)
    }

    /// Whether frames leave by UDP (as of the last check).
    pub fn sending_by_udp(&self) -> bool {
        self.sending.load(Ordering::Relaxed)
    }

    /// Where datagrams go now.
    pub fn destination(&self) -> SocketAddr {
        self.lock().destination
    }

    /// Opens a datagram in place; the record's plaintext on success.
    pub fn open<'d>(&self, datagram: &'d mut [u8]) -> Option<&'d mut [u8]> {
        self.opener.open(datagram)
    }

    /// Applies a record received at `now` from `from`; the frame (if any)
    /// is the caller's to deliver when this says so.
    pub fn receive(&self, now: Timestamp, record: &Record<'_>, from: SocketAddr) -> bool {
        let mut state = self.lock();
        match state.liveness.receive(now, record) {
            Received::Accepted { newest, answer } => {
                if newest {
                    // A roaming client or a NAT rebinding: follow it.
                    state.destination = from;
                }
                drop(state);
                if answer {
                    // The path is coming up or back: our echo now, not at
                    // the next (sparse) keep-alive.
                    self.send_keepalive(now);
                }
                true
            }
            Received::WrongCookie => {
                self.counters.dropped(UdpAccelDrop::WrongCookie);
                false
            }
            Received::Stale => {
                self.counters.dropped(UdpAccelDrop::Stale);
                false
            }
        }
    }

    fn seal(&self, record: &Record<'_>, out: &mut Vec<u8>) {
        self.sealer.seal(record, out);
    }

    /// A keep-alive to the client (and, until the path works, to its own
    /// address too).
    pub fn send_keepalive(&self, now: Timestamp) {
        let (echo, destination, alternative, usable) = {
            let mut state = self.lock();
            let usable = state.liveness.usable(now);
            (
                state.liveness.echo(),
                state.destination,
                state.alternative,
                usable,
            )
        };
        self.sending.store(usable, Ordering::Relaxed);
        let mut out = Vec::with_capacity(OVERHEAD);
        self.seal(
            &Record {
                cookie: self.client_cookie,
                sender_tick: Liveness::own_tick(now),
                echoed_tick: echo,
                compressed: false,
                frame: &[],
            },
            &mut out,
        );
        self.send_one(&out, destination);
        if !usable && let Some(alternative) = alternative {
            self.send_one(&out, alternative);
        }
        UdpAccelCounters::bump(&self.counters.keepalives_sent);
    }

    /// Sends `frames` by UDP if the path is usable at `now` (false: the
    /// caller sends them by TLS). `out` and `sizes` are scratch.
    pub fn send_frames(
        &self,
        now: Timestamp,
        frames: &Frames,
        out: &mut Vec<u8>,
        sizes: &mut Vec<usize>,
    ) -> bool {
        let (echo, destination) = {
            let mut state = self.lock();
            if !state.liveness.usable(now) {
                drop(state);
                self.sending.store(false, Ordering::Relaxed);
                return false;
            }
            (state.liveness.echo(), state.destination)
        };
        self.sending.store(true, Ordering::Relaxed);
        out.clear();
        sizes.clear();
        let tick = Liveness::own_tick(now);
        for frame in frames.iter() {
            let before = out.len();
            self.seal(
                &Record {
                    cookie: self.client_cookie,
                    sender_tick: tick,
                    echoed_tick: echo,
                    compressed: false,
                    frame,
                },
                out,
            );
            sizes.push(out.len() - before);
        }
        self.frames_out
            .fetch_add(frames.len() as u64, Ordering::Relaxed);
        self.counters
            .frames_sent
            .fetch_add(frames.len() as u64, Ordering::Relaxed);
        let mut at = 0;
        for (first, end, bytes) in gso::runs(sizes) {
            let chunk = &out[at..at + bytes];
            at += bytes;
            let segment = sizes[first];
            let sent = if end - first > 1 && segment <= gso::ETHERNET_SEGMENT_MAX {
                gso::send_segmented(&*self.socket, self.to(destination), chunk, segment as u16)
            } else {
                Err(std::io::ErrorKind::Unsupported.into())
            };
            match sent {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.counters
                        .drop_n(UdpAccelDrop::SocketFull, (end - first) as u64);
                }
                Err(_) => {
                    let mut offset = 0;
                    for &size in &sizes[first..end] {
                        self.send_one(&chunk[offset..offset + size], destination);
                        offset += size;
                    }
                }
            }
        }
        true
    }

    fn to(&self, remote: SocketAddr) -> PeerAddr {
        PeerAddr {
            remote,
            local: self.source,
        }
    }

    /// One non-blocking send; a full socket buffer drops (and counts) the
    /// datagram, as a UDP path must rather than stall the connection.
    fn send_one(&self, datagram: &[u8], to: SocketAddr) {
        match pktinfo::send(&*self.socket, self.to(to), datagram, None) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.counters.dropped(UdpAccelDrop::SocketFull);
            }
            Err(e) => {
                tracing::debug!(%to, "UDP acceleration send: {e}");
                UdpAccelCounters::bump(&self.counters.send_errors);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use ethergate_proto::{
        TestRng,
        udp_accel::{Grant, Offer, STABLE_MS},
    };

    use super::*;

    use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

    const CLIENT_KEY: [u8; 32] = [7; 32];

    /// aws-lc's AEAD used directly: the client's side as the protocol
    /// defines it, not through the code under test.
    fn key(bytes: &[u8; 32]) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, bytes).expect("key"))
    }

    /// A path on a loopback socket, and the "client" socket it sends to.
    fn path() -> (UdpPath, UdpSocket, Session) {
        let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .expect("timeout");
        let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
        server.set_nonblocking(true).expect("nonblocking");
        let at = client.local_addr().expect("addr");
        let session = Session {
            offer: Offer {
                max_version: 2,
                client_ip: None,
                client_port: at.port(),
                client_key: CLIENT_KEY,
                fast_detect: true,
            },
            grant: Grant::new(443, true, &mut TestRng::new(3)),
        };
        let path = UdpPath::new(
            &session,
            SocketAddr::new(at.ip(), 40_000),
            Arc::new(server),
            None,
            Arc::default(),
        );
        (path, client, session)
    }

    /// What the client sends: `record` sealed with its key.
    fn from_client(record: &Record<'_>) -> Vec<u8> {
        let mut out = vec![9u8; NONCE_LEN];
        record.encode(&mut out);
        let tag = key(&CLIENT_KEY)
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([9; NONCE_LEN]),
                Aad::empty(),
                &mut out[NONCE_LEN..],
            )
            .expect("seal");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// What the client receives, opened with the server's key.
    fn to_client(client: &UdpSocket, session: &Session) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let n = client.recv(&mut buf).expect("a datagram for the client");
        let (nonce, sealed) = buf[..n].split_at_mut(NONCE_LEN);
        key(&session.grant.server_key())
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).expect("nonce"),
                Aad::empty(),
                sealed,
            )
            .expect("opens with the server's key")
            .to_vec()
    }

    fn keepalive(session: &Session, sender_tick: u64, echoed_tick: u64) -> Vec<u8> {
        from_client(&Record {
            cookie: session.grant.server_cookie,
            sender_tick,
            echoed_tick,
            compressed: false,
            frame: &[],
        })
    }

    #[test]
    fn the_clients_datagrams_open_and_ours_carry_its_cookie_and_our_echo() {
        let (path, client, session) = path();
        let mut datagram = keepalive(&session, 1234, 0);
        let plain = path.open(&mut datagram).expect("opens").to_vec();
        let record = Record::decode(&plain).expect("a record");
        let from = client.local_addr().expect("addr");
        // The path is coming up: the answer goes out at once.
        assert!(path.receive(Timestamp(10), &record, from));
        let plain = to_client(&client, &session);
        let ours = Record::decode(&plain).expect("a record");
        assert_eq!(ours.cookie, session.grant.client_cookie);
        assert_eq!(ours.echoed_tick, 1234, "echoes the client's tick");
        assert_eq!(ours.sender_tick, Liveness::own_tick(Timestamp(10)));
        assert!(ours.frame.is_empty(), "a keep-alive");

        let mut forged = keepalive(&session, 1, 0);
        forged[NONCE_LEN] ^= 1;
        assert!(
            path.open(&mut forged).is_none(),
            "a changed byte fails the tag"
        );
    }

    #[test]
    fn frames_go_by_udp_only_after_ten_seconds_of_confirmed_reception() {
        let (path, client, session) = path();
        let from = client.local_addr().expect("addr");
        let mut frames = Frames::new();
        for i in 0..5u8 {
            frames.push(&[i; 1200]);
        }
        let (mut out, mut sizes) = (Vec::new(), Vec::new());
        assert!(!path.send_frames(Timestamp(0), &frames, &mut out, &mut sizes));
        // The client echoes our tick every half second for ten seconds.
        let mut now = 1_000;
        for tick in 1..=21u64 {
            let mut datagram = keepalive(&session, tick, Liveness::own_tick(Timestamp(now - 100)));
            let plain = path.open(&mut datagram).expect("opens").to_vec();
            let record = Record::decode(&plain).expect("record");
            assert!(path.receive(Timestamp(now), &record, from));
            if now - 1_000 < STABLE_MS {
                assert!(!path.send_frames(Timestamp(now), &frames, &mut out, &mut sizes));
            }
            now += 500;
        }
        // One answer, to the first keep-alive (it carried our echo, so the
        // path was good from then on and needed no more).
        let answer = to_client(&client, &session);
        assert!(Record::decode(&answer).expect("record").frame.is_empty());
        assert!(path.send_frames(Timestamp(now - 500), &frames, &mut out, &mut sizes));
        assert!(path.sending_by_udp());
        for i in 0..5u8 {
            let plain = to_client(&client, &session);
            let record = Record::decode(&plain).expect("record");
            assert_eq!(record.frame, &[i; 1200][..], "in order, whole");
        }
        assert_eq!(path.frames_out.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn a_newer_datagram_from_elsewhere_moves_the_destination_an_older_one_does_not() {
        let (path, client, session) = path();
        let roamed: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
        let old: SocketAddr = "127.0.0.1:50001".parse().expect("addr");
        for (tick, from) in [
            (10, client.local_addr().expect("addr")),
            (20, roamed),
            (15, old),
        ] {
            let mut d = keepalive(&session, tick, 0);
            let plain = path.open(&mut d).expect("opens").to_vec();
            path.receive(Timestamp(5), &Record::decode(&plain).expect("r"), from);
        }
        assert_eq!(path.destination(), roamed);
    }
}
