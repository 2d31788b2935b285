//! One configured peer as the responder keeps it (docs/wireguard.md §7):
//! up to three sessions — the one just handshaken and not yet confirmed
//! (`next`), the one in use (`current`) and the one before it
//! (`previous`, for packets still in flight) — the last initiation's
//! timestamp, and the timers the protocol asks of a responder.
//!
//! Invariants: a session is used to send only once the initiator has
//! sent on it (key confirmation); no key is used past REJECT_AFTER_TIME;
//! every index a session gives up is reported to the caller, which owns
//! the index → peer map.

use std::time::{Duration, Instant};

use crate::{
    crypto::Key,
    handshake::{ConsumedInitiation, HandshakeError, respond},
    keys::PublicKey,
    message::RESPONSE_LEN,
    session::{Session, TransportError},
};

/// A key older than this is not used in either direction.
pub const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);
/// All keys are erased after this long without a new handshake.
pub const KEYS_ERASED_AFTER: Duration = Duration::from_secs(3 * 180);
/// A peer that sent data and heard nothing back for this long gets an
/// empty message, so it knows the path still works.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Initiations from one peer closer together than this are ignored:
/// replaying captured initiations cannot make the responder burn CPU.
pub const INITIATION_MIN_INTERVAL: Duration = Duration::from_millis(20);

/// Why a peer refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("initiation timestamp is not newer than the last one (replayed)")]
    StaleTimestamp,
    #[error("initiations arrive faster than one per {INITIATION_MIN_INTERVAL:?}")]
    TooSoon,
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    #[error("no session with that index")]
    UnknownIndex,
    #[error("the session's keys are too old")]
    Expired,
    #[error("no confirmed session to send with")]
    NoSession,
}

pub struct Peer {
    pub public: PublicKey,
    psk: Key,
    last_timestamp: [u8; 12],
    last_initiation: Option<Instant>,
    next: Option<Session>,
    current: Option<Session>,
    previous: Option<Session>,
    last_sent: Option<Instant>,
    last_data_received: Option<Instant>,
    last_handshake: Option<Instant>,
}

/// What a transport message carried.
pub struct Received<'b> {
    /// The plaintext (padding included); empty for a keepalive.
    pub packet: &'b [u8],
    /// This message confirmed a new session (the first on new keys).
    pub confirmed: bool,
}

impl Peer {
    pub fn new(public: PublicKey, psk: Key) -> Self {
        Self {
            public,
            psk,
            last_timestamp: [0; 12],
            last_initiation: None,
            next: None,
            current: None,
            previous: None,
            last_sent: None,
            last_data_received: None,
            last_handshake: None,
        }
    }

    /// Answers a consumed initiation: the response to send, with a new
    /// unconfirmed session under `local_index`. An index the peer gives up
    /// (an older unconfirmed session) goes to `retired`.
    pub fn accept_initiation(
        &mut self,
        init: ConsumedInitiation,
        now: Instant,
        ephemeral: [u8; 32],
        local_index: u32,
        retired: &mut Vec<u32>,
    ) -> Result<[u8; RESPONSE_LEN], PeerError> {
        if init.timestamp <= self.last_timestamp {
            return Err(PeerError::StaleTimestamp);
        }
        if self
            .last_initiation
            .is_some_and(|t| now.duration_since(t) < INITIATION_MIN_INTERVAL)
        {
            return Err(PeerError::TooSoon);
        }
        let timestamp = init.timestamp;
        let (response, keys) = respond(init, &self.psk, ephemeral, local_index)?;
        self.last_timestamp = timestamp;
        self.last_initiation = Some(now);
        if let Some(old) = self.next.replace(Session::new(&keys, now)) {
            retired.push(old.local_index);
        }
        Ok(response)
    }

    /// Opens a transport message for session `receiver`. The first one on
    /// an unconfirmed session makes it current.
    pub fn receive<'b>(
        &mut self,
        now: Instant,
        receiver: u32,
        counter: u64,
        sealed: &'b mut [u8],
        retired: &mut Vec<u32>,
    ) -> Result<Received<'b>, PeerError> {
        let slot = [&mut self.next, &mut self.current, &mut self.previous]
            .into_iter()
            .position(|s| s.as_ref().is_some_and(|s| s.local_index == receiver))
            .ok_or(PeerError::UnknownIndex)?;
        let session = match slot {
            0 => self.next.as_mut(),
            1 => self.current.as_mut(),
            _ => self.previous.as_mut(),
        }
        .ok_or(PeerError::UnknownIndex)?;
        if now.duration_since(session.created) >= REJECT_AFTER_TIME {
            return Err(PeerError::Expired);
        }
        let packet = session.open(counter, sealed)?;
        let confirmed = slot == 0;
        if confirmed {
            if let Some(old) = self.previous.take() {
                retired.push(old.local_index);
            }
            self.previous = self.current.take();
            self.current = self.next.take();
            self.last_handshake = Some(now);
        }
        if !packet.is_empty() {
            self.last_data_received = Some(now);
        }
        Ok(Received { packet, confirmed })
    }

    /// Appends the data message for `packet` (empty: keepalive) to `out`.
    pub fn send(
        &mut self,
        now: Instant,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), PeerError> {
        let session = self.current.as_mut().ok_or(PeerError::NoSession)?;
        if now.duration_since(session.created) >= REJECT_AFTER_TIME {
            return Err(PeerError::Expired);
        }
        session.seal(packet, out)?;
        self.last_sent = Some(now);
        Ok(())
    }

    /// Whether the peer is owed a keepalive: it sent data, and nothing went
    /// back for [`KEEPALIVE_TIMEOUT`].
    pub fn keepalive_due(&self, now: Instant) -> bool {
        let Some(received) = self.last_data_received else {
            return false;
        };
        let answered = self.last_sent.is_some_and(|sent| sent >= received);
        !answered && now.duration_since(received) >= KEEPALIVE_TIMEOUT && self.can_send(now)
    }

    /// Whether a confirmed, unexpired session exists.
    pub fn can_send(&self, now: Instant) -> bool {
        self.current
            .as_ref()
            .is_some_and(|s| now.duration_since(s.created) < REJECT_AFTER_TIME)
    }

    /// Erases sessions nobody may use any more; their indices go to
    /// `retired`. True when the peer has no session left at all.
    pub fn expire(&mut self, now: Instant, retired: &mut Vec<u32>) -> bool {
        for slot in [&mut self.next, &mut self.current, &mut self.previous] {
            if slot
                .as_ref()
                .is_some_and(|s| now.duration_since(s.created) >= KEYS_ERASED_AFTER)
                && let Some(old) = slot.take()
            {
                retired.push(old.local_index);
            }
        }
        self.next.is_none() && self.current.is_none() && self.previous.is_none()
    }

    /// Drops every session (an operator's disconnect): the peer must
    /// handshake again. Its indices go to `retired`.
    pub fn clear(&mut self, retired: &mut Vec<u32>) {
        for slot in [&mut self.next, &mut self.current, &mut self.previous] {
            if let Some(old) = slot.take() {
                retired.push(old.local_index);
            }
        }
        self.last_data_received = None;
    }

    /// When the last handshake was confirmed.
    pub fn last_handshake(&self) -> Option<Instant> {
        self.last_handshake
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        handshake::{Identity, consume_initiation, consume_response, initiate, tai64n},
        keys::PrivateKey,
        message::Message,
        session::Session,
    };

    struct Pair {
        server: Identity,
        client: Identity,
        peer: Peer,
        seconds: u64,
    }

    impl Pair {
        fn new() -> Self {
            let server = Identity::new(&PrivateKey::from_bytes([2; 32]));
            let client = Identity::new(&PrivateKey::from_bytes([1; 32]));
            let peer = Peer::new(client.public, [0; 32]);
            Self {
                server,
                client,
                peer,
                seconds: 1_700_000_000,
            }
        }

        /// A whole handshake at `now`; the client's session.
        fn handshake(
            &mut self,
            now: Instant,
            index: u32,
            retired: &mut Vec<u32>,
        ) -> Result<Session, PeerError> {
            self.seconds += 1;
            let (init, pending) = initiate(
                &self.client,
                &self.server.public,
                &[0; 32],
                [index as u8; 32],
                index + 1000,
                tai64n(Duration::from_secs(self.seconds)),
                None,
            )?;
            let Ok(Message::Initiation(parsed)) = Message::parse(&init) else {
                panic!("parses");
            };
            let consumed = consume_initiation(&self.server, &parsed)?;
            let response = self.peer.accept_initiation(
                consumed,
                now,
                [index as u8 + 1; 32],
                index,
                retired,
            )?;
            let Ok(Message::Response(parsed)) = Message::parse(&response) else {
                panic!("parses");
            };
            let keys = consume_response(&self.client, &pending, &parsed)?;
            Ok(Session::new(&keys, now))
        }
    }

    fn deliver(
        peer: &mut Peer,
        now: Instant,
        datagram: &mut [u8],
        retired: &mut Vec<u32>,
    ) -> Result<Vec<u8>, PeerError> {
        let Ok(Message::Transport(t)) = Message::parse(datagram) else {
            panic!("transport parses");
        };
        let (receiver, counter) = (t.receiver, t.counter);
        let received = peer.receive(now, receiver, counter, &mut datagram[16..], retired)?;
        Ok(received.packet.to_vec())
    }

    #[test]
    fn the_responder_sends_only_after_key_confirmation() {
        let mut pair = Pair::new();
        let now = Instant::now();
        let mut retired = Vec::new();
        let mut client = pair.handshake(now, 1, &mut retired).expect("handshake");
        let mut out = Vec::new();
        assert_eq!(
            pair.peer.send(now, b"early", &mut out),
            Err(PeerError::NoSession)
        );
        client.seal(b"hello", &mut out).expect("seal");
        let got = deliver(&mut pair.peer, now, &mut out, &mut retired).expect("open");
        assert_eq!(&got[..5], b"hello");
        assert_eq!(got.len(), 16, "padded to 16");
        let mut back = Vec::new();
        pair.peer
            .send(now, b"world", &mut back)
            .expect("confirmed now");
        let Ok(Message::Transport(t)) = Message::parse(&back) else {
            panic!("parses");
        };
        let counter = t.counter;
        let mut sealed = back[16..].to_vec();
        let plain = client.open(counter, &mut sealed).expect("client opens");
        assert_eq!(&plain[..5], b"world");
        // The same datagram again is a replay.
        assert!(matches!(
            deliver(&mut pair.peer, now, &mut out.clone(), &mut retired),
            Err(PeerError::Transport(_))
        ));
    }

    #[test]
    fn replayed_initiations_and_floods_are_refused() {
        let mut pair = Pair::new();
        let now = Instant::now();
        let mut retired = Vec::new();
        pair.handshake(now, 1, &mut retired).expect("first");
        assert_eq!(
            pair.handshake(now + Duration::from_millis(5), 2, &mut retired)
                .err(),
            Some(PeerError::TooSoon)
        );
        pair.seconds -= 5;
        assert_eq!(
            pair.handshake(now + Duration::from_secs(1), 3, &mut retired)
                .err(),
            Some(PeerError::StaleTimestamp)
        );
    }

    #[test]
    fn rekeying_keeps_the_old_session_for_packets_in_flight() {
        let mut pair = Pair::new();
        let t0 = Instant::now();
        let mut retired = Vec::new();
        let mut first = pair.handshake(t0, 1, &mut retired).expect("first");
        let mut out = Vec::new();
        first.seal(b"a", &mut out).expect("seal");
        deliver(&mut pair.peer, t0, &mut out, &mut retired).expect("confirm first");
        let t1 = t0 + Duration::from_secs(120);
        let mut second = pair.handshake(t1, 2, &mut retired).expect("rekey");
        // A packet sealed with the old keys, arriving after the rekey.
        let mut late = Vec::new();
        first.seal(b"late", &mut late).expect("seal");
        let mut new = Vec::new();
        second.seal(b"new", &mut new).expect("seal");
        deliver(&mut pair.peer, t1, &mut new, &mut retired).expect("confirms second");
        let got =
            deliver(&mut pair.peer, t1, &mut late, &mut retired).expect("previous still open");
        assert_eq!(&got[..4], b"late");
        // Past REJECT_AFTER_TIME the old keys are refused.
        let mut later = Vec::new();
        first.seal(b"x", &mut later).expect("seal");
        assert_eq!(
            deliver(
                &mut pair.peer,
                t0 + REJECT_AFTER_TIME,
                &mut later,
                &mut retired
            )
            .err(),
            Some(PeerError::Expired)
        );
        assert!(!pair.peer.expire(t1 + Duration::from_secs(1), &mut retired));
        assert!(pair.peer.expire(t1 + KEYS_ERASED_AFTER, &mut retired));
        assert!(retired.contains(&1) && retired.contains(&2));
    }

    #[test]
    fn a_keepalive_is_owed_after_silence() {
        let mut pair = Pair::new();
        let t0 = Instant::now();
        let mut retired = Vec::new();
        let mut client = pair.handshake(t0, 1, &mut retired).expect("handshake");
        let mut out = Vec::new();
        client.seal(b"data", &mut out).expect("seal");
        deliver(&mut pair.peer, t0, &mut out, &mut retired).expect("open");
        assert!(!pair.peer.keepalive_due(t0 + Duration::from_secs(9)));
        assert!(pair.peer.keepalive_due(t0 + KEEPALIVE_TIMEOUT));
        let mut ka = Vec::new();
        pair.peer
            .send(t0 + KEEPALIVE_TIMEOUT, &[], &mut ka)
            .expect("keepalive");
        assert_eq!(ka.len(), 32);
        assert!(!pair.peer.keepalive_due(t0 + Duration::from_secs(30)));
    }
}
