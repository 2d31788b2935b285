//! SoftEther's UDP acceleration, the parts that need no socket or cipher
//! (docs/udp-acceleration.md): what the login offers and the welcome
//! grants, the record inside each datagram, and the liveness rules that
//! decide when a side may send its frames by UDP.
//!
//! The datagram's encryption (version 2: ChaCha20-Poly1305 around the
//! record) is the driver's, so this crate stays free of ciphers; the
//! driver opens a datagram, hands the plaintext to [`Record::decode`], and
//! the record to [`Liveness::receive`].
//!
//! Invariants: a record that decodes is within its buffer and carries at
//! most [`MAX_FRAME`] bytes of frame; [`Liveness`] never reports "usable"
//! before [`STABLE_MS`] of continuous good reception that the peer
//! confirmed by echoing one of our own ticks.

use std::net::{IpAddr, Ipv4Addr};

use crate::pack::Pack;
use crate::time::Timestamp;

/// The only version ethergate speaks (ChaCha20-Poly1305). Version 1 (RC4
/// with a 20-byte-zero check and no real authentication) is never granted.
pub const VERSION: u32 = 2;
/// Bytes of the sender's key the cipher uses (of the 128 sent).
pub const KEY_LEN: usize = 32;
/// Sizes of the key elements in the PACKs; any other size reads as zeros.
pub const KEY_V1_WIRE: usize = 20;
pub const KEY_V2_WIRE: usize = 128;
/// cookie 4 + sender tick 8 + echoed tick 8 + size 2 + flag 1.
pub const RECORD_HEADER: usize = 23;
/// The largest frame a record may carry (the TCP data phase's limit).
pub const MAX_FRAME: usize = crate::data::MAX_PACKET_SIZE;
/// A received sender tick this far behind the newest one is a replay.
pub const STALE_MS: u64 = 30_000;
/// Good reception needed, without a gap, before frames go by UDP.
pub const STABLE_MS: u64 = 10_000;

/// What a login offers (the client's UDP port and send key), present only
/// when the client asked for UDP acceleration in a form we can grant.
#[derive(Clone, PartialEq, Eq)]
pub struct Offer {
    /// Highest version the client speaks (1 when the element is missing).
    pub max_version: u32,
    /// The client's local address (its private address behind a NAT);
    /// `None` when it sent zero or a loopback address.
    pub client_ip: Option<IpAddr>,
    pub client_port: u16,
    /// The client's version-2 send key (what the server opens with).
    pub client_key: [u8; KEY_LEN],
    /// The client can run the fast (2.1 s) dead-path timers.
    pub fast_detect: bool,
}

impl std::fmt::Debug for Offer {
    // Never print keys into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offer")
            .field("max_version", &self.max_version)
            .field("client_ip", &self.client_ip)
            .field("client_port", &self.client_port)
            .field("fast_detect", &self.fast_detect)
            .finish_non_exhaustive()
    }
}

impl Offer {
    /// Reads the offer as SoftEther's server does (§1.3): it needs
    /// `use_udp_acceleration` = 1, the client IP element and a non-zero
    /// port. A key element of the wrong size reads as zeros there; here it
    /// makes no offer (a zero key would let anyone forge datagrams).
    pub fn from_login(p: &Pack) -> Option<Offer> {
        if !p.bool_or_false("use_udp_acceleration") {
            return None;
        }
        let ip = p.ip("udp_acceleration_client_ip").ok()?;
        let port = u16::try_from(p.int_or_zero("udp_acceleration_client_port")).ok()?;
        if port == 0 {
            return None;
        }
        let key = p.data("udp_acceleration_client_key_v2").ok()?;
        if key.len() != KEY_V2_WIRE {
            return None;
        }
        let mut client_key = [0u8; KEY_LEN];
        client_key.copy_from_slice(&key[..KEY_LEN]);
        let max_version = match p.int_or_zero("udp_acceleration_max_version") {
            0 => 1,
            v => v,
        };
        Some(Offer {
            max_version,
            client_ip: Some(ip).filter(|ip| !ip.is_unspecified() && !ip.is_loopback()),
            client_port: port,
            client_key,
            fast_detect: p.bool_or_false("support_udp_accel_fast_disconnect_detect"),
        })
    }

    /// The login elements of §1.1, as the Debian client writes them. The
    /// version-1 key is sent as zeros: this side never speaks version 1,
    /// and ignores a grant of it (see [`Grant::from_welcome`]).
    pub fn add_to_login(&self, p: &mut Pack) {
        p.set_bool("use_udp_acceleration", true)
            .set_int("udp_acceleration_version", 1)
            .set_int("udp_acceleration_max_version", self.max_version)
            .set_ip(
                "udp_acceleration_client_ip",
                self.client_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            )
            .set_int("udp_acceleration_client_port", u32::from(self.client_port))
            .set_data("udp_acceleration_client_key", &[0; KEY_V1_WIRE]);
        let mut key = [0u8; KEY_V2_WIRE];
        key[..KEY_LEN].copy_from_slice(&self.client_key);
        p.set_data("udp_acceleration_client_key_v2", &key)
            .set_bool("support_hmac_on_udp_acceleration", true)
            .set_bool("support_udp_accel_fast_disconnect_detect", self.fast_detect);
    }

    /// Whether ethergate grants this offer: version 2 only.
    pub fn acceptable(&self) -> bool {
        self.max_version >= VERSION
    }
}

/// What the server answers in the welcome (§1.4) when it grants an offer.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    /// The server's UDP port for this session.
    pub server_port: u16,
    /// The server's version-2 send key as sent (only the first
    /// [`KEY_LEN`] bytes are used).
    pub server_key_v2: [u8; KEY_V2_WIRE],
    /// Sent because the client reads it whatever the version; never used.
    pub server_key_v1: [u8; KEY_V1_WIRE],
    /// The cookie the server expects in what it receives.
    pub server_cookie: u32,
    /// The cookie the client expects (the server writes it in what it sends).
    pub client_cookie: u32,
    pub fast_detect: bool,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("server_port", &self.server_port)
            .field("fast_detect", &self.fast_detect)
            .finish_non_exhaustive()
    }
}

impl Grant {
    /// Fresh random keys and two distinct non-zero cookies.
    pub fn new(
        server_port: u16,
        fast_detect: bool,
        rng: &mut dyn crate::rng::RandomSource,
    ) -> Grant {
        let mut server_key_v2 = [0u8; KEY_V2_WIRE];
        rng.fill_bytes(&mut server_key_v2);
        let mut server_key_v1 = [0u8; KEY_V1_WIRE];
        rng.fill_bytes(&mut server_key_v1);
        let server_cookie = nonzero(rng, 0);
        let client_cookie = nonzero(rng, server_cookie);
        Grant {
            server_port,
            server_key_v2,
            server_key_v1,
            server_cookie,
            client_cookie,
            fast_detect,
        }
    }

    /// The server's send key.
    pub fn server_key(&self) -> [u8; KEY_LEN] {
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&self.server_key_v2[..KEY_LEN]);
        key
    }

    /// The eleven welcome elements (§1.4, §6). The address is zero, so the
    /// client sends to the address its TCP connection reached (the only
    /// one certain to work behind a NAT or a load balancer); encryption is
    /// written explicitly because the client reads a missing element as
    /// "plain text".
    pub fn add_to_welcome(&self, p: &mut Pack) {
        p.set_bool("use_udp_acceleration", true)
            .set_int("udp_acceleration_version", VERSION)
            .set_ip(
                "udp_acceleration_server_ip",
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            )
            .set_int("udp_acceleration_server_port", u32::from(self.server_port))
            .set_data("udp_acceleration_server_key", &self.server_key_v1)
            .set_data("udp_acceleration_server_key_v2", &self.server_key_v2)
            .set_int("udp_acceleration_server_cookie", self.server_cookie)
            .set_int("udp_acceleration_client_cookie", self.client_cookie)
            .set_bool("udp_acceleration_use_encryption", true)
            .set_bool("use_hmac_on_udp_acceleration", false)
            .set_bool("udp_accel_fast_disconnect_detect", self.fast_detect);
    }

    /// Reads a grant from a welcome as the client does (§1.7): version 2
    /// with encryption, a port and two non-zero cookies; anything else
    /// means the session stays on TCP.
    pub fn from_welcome(p: &Pack) -> Option<Grant> {
        if !p.bool_or_false("use_udp_acceleration")
            || p.int_or_zero("udp_acceleration_version") != VERSION
            || !p.bool_or_false("udp_acceleration_use_encryption")
        {
            return None;
        }
        let server_port = u16::try_from(p.int_or_zero("udp_acceleration_server_port")).ok()?;
        let server_cookie = p.int_or_zero("udp_acceleration_server_cookie");
        let client_cookie = p.int_or_zero("udp_acceleration_client_cookie");
        if server_port == 0 || server_cookie == 0 || client_cookie == 0 {
            return None;
        }
        Some(Grant {
            server_port,
            server_key_v2: p.data_array("udp_acceleration_server_key_v2").ok()?,
            server_key_v1: p
                .data_array("udp_acceleration_server_key")
                .unwrap_or([0; KEY_V1_WIRE]),
            server_cookie,
            client_cookie,
            fast_detect: p.bool_or_false("udp_accel_fast_disconnect_detect"),
        })
    }
}

fn nonzero(rng: &mut dyn crate::rng::RandomSource, not: u32) -> u32 {
    loop {
        let v = rng.next_u32();
        if v != 0 && v != not {
            return v;
        }
    }
}

/// Everything a server's session needs to run its UDP path: the client's
/// offer and the server's grant, together.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Session {
    pub offer: Offer,
    pub grant: Grant,
}

impl Session {
    /// The liveness timers both sides agreed on.
    pub fn timers(&self) -> Timers {
        Timers::new(self.grant.fast_detect)
    }
}

/// Why a record did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record shorter than its header")]
    Short,
    #[error("frame size beyond the record or the limit")]
    BadSize,
}

/// The plaintext inside one datagram (§3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The cookie the receiver expects.
    pub cookie: u32,
    /// The sender's tick (never 0).
    pub sender_tick: u64,
    /// The highest sender tick the sender has received from us (0: none).
    pub echoed_tick: u64,
    /// The frame is zlib-compressed (the session's `use_compress`).
    pub compressed: bool,
    /// One Ethernet frame; empty for a keep-alive.
    pub frame: &'a [u8],
}

impl<'a> Record<'a> {
    /// Decodes a record; bytes after the frame (padding) are ignored, as
    /// the version-2 receiver does.
    pub fn decode(bytes: &'a [u8]) -> Result<Record<'a>, RecordError> {
        let header: &[u8; RECORD_HEADER] = bytes
            .get(..RECORD_HEADER)
            .and_then(|h| h.try_into().ok())
            .ok_or(RecordError::Short)?;
        let [
            c0,
            c1,
            c2,
            c3,
            s0,
            s1,
            s2,
            s3,
            s4,
            s5,
            s6,
            s7,
            e0,
            e1,
            e2,
            e3,
            e4,
            e5,
            e6,
            e7,
            z0,
            z1,
            flag,
        ] = *header;
        let size = usize::from(u16::from_be_bytes([z0, z1]));
        if size > MAX_FRAME {
            return Err(RecordError::BadSize);
        }
        let frame = bytes
            .get(RECORD_HEADER..RECORD_HEADER + size)
            .ok_or(RecordError::BadSize)?;
        Ok(Record {
            cookie: u32::from_be_bytes([c0, c1, c2, c3]),
            sender_tick: u64::from_be_bytes([s0, s1, s2, s3, s4, s5, s6, s7]),
            echoed_tick: u64::from_be_bytes([e0, e1, e2, e3, e4, e5, e6, e7]),
            compressed: flag != 0,
            frame,
        })
    }

    /// Appends the record's bytes to `out` (no padding).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.cookie.to_be_bytes());
        out.extend_from_slice(&self.sender_tick.max(1).to_be_bytes());
        out.extend_from_slice(&self.echoed_tick.to_be_bytes());
        let size = u16::try_from(self.frame.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&size.to_be_bytes());
        out.push(u8::from(self.compressed));
        out.extend_from_slice(&self.frame[..usize::from(size)]);
    }
}

/// The timers of §4, normal or fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Keep-alive interval: uniform in `[min, min + spread)`.
    pub keepalive_min_ms: u64,
    pub keepalive_spread_ms: u64,
    /// Nothing good received for this long: the path is dead.
    pub dead_ms: u64,
}

impl Timers {
    pub fn new(fast: bool) -> Timers {
        if fast {
            Timers {
                keepalive_min_ms: 500,
                keepalive_spread_ms: 500,
                dead_ms: 2_100,
            }
        } else {
            Timers {
                keepalive_min_ms: 1_000,
                keepalive_spread_ms: 2_000,
                dead_ms: 9_000,
            }
        }
    }

    /// The next keep-alive's delay for a random `r`.
    pub fn keepalive_delay_ms(&self, r: u32) -> u64 {
        self.keepalive_min_ms + u64::from(r) % self.keepalive_spread_ms
    }

    /// How old the newest echo of our own tick may be for a datagram to
    /// count as proof that the path works both ways. SoftEther allows
    /// 30 s, which keeps it sending into a path broken towards the client
    /// for that long; twice the dead time still tolerates a peer whose
    /// keep-alives are late, and stops sooner.
    pub fn echo_fresh_ms(&self) -> u64 {
        (2 * self.dead_ms).min(STALE_MS)
    }
}

/// What [`Liveness::receive`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Deliver the frame (if any). `newest`: its sender tick is the
    /// highest so far, so its source becomes the address to send to.
    /// `answer`: the newest datagram arrived while our side had no good
    /// reception within the dead time (a path coming up or coming back):
    /// send a keep-alive at once, so the peer gets our echo of its tick
    /// now instead of at our next keep-alive, which while the path is lost
    /// is more than the dead time away. Never for a replay (not newest).
    Accepted { newest: bool, answer: bool },
    /// The cookie is not ours.
    WrongCookie,
    /// Its sender tick is [`STALE_MS`] behind the newest: a replay.
    Stale,
}

/// One side's view of the UDP path (§3.6, §4). Ticks are milliseconds of
/// the owner's clock; our own tick for `now` is [`Liveness::own_tick`].
#[derive(Debug, Clone)]
pub struct Liveness {
    timers: Timers,
    /// The cookie we expect.
    cookie: u32,
    /// Highest sender tick received (what we echo).
    peer_tick: u64,
    /// Highest of our ticks the peer echoed.
    echoed: u64,
    last_good: Option<Timestamp>,
    stable_since: Option<Timestamp>,
}

impl Liveness {
    pub fn new(timers: Timers, cookie: u32) -> Liveness {
        Liveness {
            timers,
            cookie,
            peer_tick: 0,
            echoed: 0,
            last_good: None,
            stable_since: None,
        }
    }

    /// Our tick at `now`: never 0 (0 means "none" in an echo).
    pub fn own_tick(now: Timestamp) -> u64 {
        now.0.saturating_add(1)
    }

    /// The tick to echo in what we send.
    pub fn echo(&self) -> u64 {
        self.peer_tick
    }

    /// Applies a decoded record received at `now` (§3.6).
    pub fn receive(&mut self, now: Timestamp, record: &Record<'_>) -> Received {
        if record.cookie != self.cookie {
            return Received::WrongCookie;
        }
        if record.sender_tick.saturating_add(STALE_MS) <= self.peer_tick {
            return Received::Stale;
        }
        let newest = record.sender_tick > self.peer_tick;
        let quiet = self
            .last_good
            .is_none_or(|at| now.since(at) > self.timers.dead_ms);
        self.peer_tick = self.peer_tick.max(record.sender_tick);
        // Our own ticks only: an echo from the future is a forgery or
        // another session's, and must not keep the path "fresh".
        if record.echoed_tick <= Self::own_tick(now) {
            self.echoed = self.echoed.max(record.echoed_tick);
        }
        if self.echoed != 0
            && Self::own_tick(now).saturating_sub(self.echoed) <= self.timers.echo_fresh_ms()
        {
            self.last_good = Some(now);
            self.stable_since.get_or_insert(now);
        }
        Received::Accepted {
            newest,
            answer: newest && quiet,
        }
    }

    /// Whether frames may be sent by UDP at `now` (§4): good reception
    /// within the dead time, without a gap for at least [`STABLE_MS`].
    /// A check that finds the path dead ends the stable period.
    pub fn usable(&mut self, now: Timestamp) -> bool {
        match self.last_good {
            Some(at) if now.since(at) <= self.timers.dead_ms => {}
            _ => {
                self.stable_since = None;
                return false;
            }
        }
        self.stable_since
            .is_some_and(|since| now.since(since) >= STABLE_MS)
    }

    /// The path worked and has gone quiet for longer than the dead time.
    pub fn lost(&self, now: Timestamp) -> bool {
        self.last_good
            .is_some_and(|at| now.since(at) > self.timers.dead_ms)
    }

    /// The delay before our next keep-alive, for a random `r`. While the
    /// path is lost, keep-alives go out less often than the dead time:
    /// the peer's own check counts any datagram from us as reception for
    /// 30 s after our last echo of its tick, so a steady stream would keep
    /// it sending into a path that is broken towards us; sparse ones let
    /// it fall back to TCP at its dead time, and still carry our echo so
    /// the path can come back.
    pub fn keepalive_delay_ms(&self, now: Timestamp, r: u32) -> u64 {
        if self.lost(now) {
            self.timers.dead_ms + self.timers.keepalive_delay_ms(r)
        } else {
            self.timers.keepalive_delay_ms(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::TestRng;
    use proptest::prelude::*;

    fn record(cookie: u32, sender_tick: u64, echoed_tick: u64, frame: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Record {
            cookie,
            sender_tick,
            echoed_tick,
            compressed: false,
            frame,
        }
        .encode(&mut out);
        out
    }

    #[test]
    fn keepalive_is_23_bytes_and_round_trips() {
        let bytes = record(7, 1234, 99, &[]);
        assert_eq!(bytes.len(), RECORD_HEADER);
        let r = Record::decode(&bytes).expect("decodes");
        assert_eq!((r.cookie, r.sender_tick, r.echoed_tick), (7, 1234, 99));
        assert!(r.frame.is_empty());
    }

    #[test]
    fn padding_after_the_frame_is_ignored_and_a_short_frame_refused() {
        let mut bytes = record(1, 2, 3, &[0xaa; 60]);
        bytes.extend_from_slice(&[0; 31]);
        assert_eq!(Record::decode(&bytes).expect("padded").frame, &[0xaa; 60]);
        let truncated = &bytes[..RECORD_HEADER + 59];
        assert_eq!(Record::decode(truncated), Err(RecordError::BadSize));
        assert_eq!(Record::decode(&bytes[..22]), Err(RecordError::Short));
    }

    #[test]
    fn compressed_frames_inflate_within_the_limit() {
        use std::io::Write as _;
        let zlib = |bytes: &[u8]| {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(bytes).expect("deflate");
            z.finish().expect("finish")
        };
        let mut out = Vec::new();
        let frame = [0x42u8; 1514];
        let n = crate::data::inflate_frame(&zlib(&frame), &mut out).expect("inflates");
        assert_eq!(&out[..n], &frame[..]);
        assert_eq!(
            crate::data::inflate_frame(&zlib(&[0; 1601]), &mut out),
            None,
            "too large"
        );
        assert_eq!(crate::data::inflate_frame(b"not zlib", &mut out), None);
        assert_eq!(
            crate::data::inflate_frame(&zlib(&[]), &mut out),
            None,
            "empty"
        );
    }

    #[test]
    fn zero_tick_is_sent_as_one() {
        let r = record(1, 0, 0, &[]);
        assert_eq!(Record::decode(&r).expect("decodes").sender_tick, 1);
    }

    fn login_offer() -> Pack {
        let mut p = Pack::new();
        p.set_bool("use_udp_acceleration", true)
            .set_int("udp_acceleration_version", 1)
            .set_int("udp_acceleration_max_version", 2)
            .set_ip(
                "udp_acceleration_client_ip",
                "10.9.0.2".parse().expect("ip"),
            )
            .set_int("udp_acceleration_client_port", 51_000)
            .set_data("udp_acceleration_client_key", &[1; 20])
            .set_data("udp_acceleration_client_key_v2", &[2; 128])
            .set_bool("support_hmac_on_udp_acceleration", true)
            .set_bool("support_udp_accel_fast_disconnect_detect", true);
        p
    }

    #[test]
    fn offer_reads_what_the_debian_client_sends() {
        let offer = Offer::from_login(&login_offer()).expect("offered");
        assert_eq!(offer.client_port, 51_000);
        assert_eq!(offer.client_key, [2; 32]);
        assert_eq!(offer.client_ip, Some("10.9.0.2".parse().expect("ip")));
        assert!(offer.fast_detect && offer.acceptable());
    }

    #[test]
    fn an_offer_round_trips_through_the_login() {
        let offer = Offer::from_login(&login_offer()).expect("offered");
        let mut p = Pack::new();
        offer.add_to_login(&mut p);
        assert_eq!(Offer::from_login(&p), Some(offer));
    }

    #[test]
    fn no_offer_without_port_key_or_flag_and_old_clients_are_refused() {
        for (field, change) in [
            ("use_udp_acceleration", 0u32),
            ("udp_acceleration_client_port", 0),
        ] {
            let mut p = login_offer();
            p.set_int(field, change);
            assert!(Offer::from_login(&p).is_none(), "{field}");
        }
        let mut p = login_offer();
        p.set_data("udp_acceleration_client_key_v2", &[2; 127]);
        assert!(Offer::from_login(&p).is_none(), "short key");
        let mut p = login_offer();
        p.remove("udp_acceleration_max_version");
        let old = Offer::from_login(&p).expect("a version-1 offer reads");
        assert!(!old.acceptable());
    }

    #[test]
    fn grant_round_trips_through_the_welcome() {
        let grant = Grant::new(443, true, &mut TestRng::new(5));
        assert_ne!(grant.server_cookie, 0);
        assert_ne!(grant.client_cookie, grant.server_cookie);
        let mut p = Pack::new();
        grant.add_to_welcome(&mut p);
        assert_eq!(Grant::from_welcome(&p).as_ref(), Some(&grant));
        let mut plain = p.clone();
        plain.set_bool("udp_acceleration_use_encryption", false);
        assert_eq!(Grant::from_welcome(&plain), None, "never plain text");
    }

    fn at(ms: u64) -> Timestamp {
        Timestamp(ms)
    }

    #[test]
    fn usable_after_ten_seconds_of_confirmed_reception_and_dead_after_nine_silent() {
        let mut l = Liveness::new(Timers::new(false), 42);
        let mut now = 1_000;
        // Heard, but the peer echoes nothing of ours yet: not proof.
        assert_eq!(
            l.receive(at(now), &Record::decode(&record(42, 5, 0, &[])).expect("r")),
            Received::Accepted {
                newest: true,
                answer: true
            }
        );
        assert!(!l.usable(at(now)));
        for step in 1..=11u64 {
            now += 1_000;
            let echo = Liveness::own_tick(at(now - 400));
            let bytes = record(42, 5 + step, echo, &[]);
            l.receive(at(now), &Record::decode(&bytes).expect("r"));
        }
        assert!(l.usable(at(now)), "11 s of good reception");
        assert!(l.usable(at(now + 9_000)));
        assert!(!l.usable(at(now + 9_001)), "dead after 9 s of silence");
        // Back: another ten seconds before frames return to UDP.
        let back = now + 20_000;
        let bytes = record(42, 100, Liveness::own_tick(at(back - 100)), &[]);
        l.receive(at(back), &Record::decode(&bytes).expect("r"));
        assert!(!l.usable(at(back + 1)));
    }

    /// A side answers at once only while it has no good reception, and
    /// only the newest datagram: a path coming up or back converges in a
    /// round trip, a working path gets no extra traffic, replays none.
    #[test]
    fn a_quiet_side_answers_the_newest_datagram_at_once() {
        let mut l = Liveness::new(Timers::new(true), 7);
        let answer = |l: &mut Liveness, now: u64, tick: u64, echo: u64| {
            let bytes = record(7, tick, echo, &[]);
            match l.receive(at(now), &Record::decode(&bytes).expect("r")) {
                Received::Accepted { answer, .. } => answer,
                other => panic!("{other:?}"),
            }
        };
        assert!(answer(&mut l, 1_000, 10, 0), "never heard: answer");
        assert!(
            answer(&mut l, 1_100, 11, 0),
            "heard, but no echo of ours yet"
        );
        assert!(
            answer(&mut l, 1_200, 12, Liveness::own_tick(at(1_150))),
            "the reply that proves the path: still answered (we were quiet)"
        );
        assert!(
            !answer(&mut l, 1_300, 13, Liveness::own_tick(at(1_250))),
            "working: no extra keep-alive"
        );
        assert!(!answer(&mut l, 1_400, 12, 0), "a replay: never");
        assert!(
            answer(&mut l, 9_000, 14, Liveness::own_tick(at(8_900))),
            "lost for longer than the dead time, then heard: answer"
        );
    }

    #[test]
    fn keepalives_thin_out_once_the_path_is_lost() {
        let mut l = Liveness::new(Timers::new(true), 1);
        assert!(
            l.keepalive_delay_ms(at(0), 0) < 1_000,
            "never worked: normal pace"
        );
        let bytes = record(1, 10, Liveness::own_tick(at(5_000)), &[]);
        l.receive(at(5_000), &Record::decode(&bytes).expect("r"));
        assert!(!l.lost(at(7_100)));
        assert!(l.keepalive_delay_ms(at(7_100), 0) < 1_000);
        assert!(l.lost(at(7_101)));
        assert!(
            l.keepalive_delay_ms(at(7_101), 0) > 2_100,
            "sparser than the dead time"
        );
    }

    #[test]
    fn wrong_cookie_replays_and_future_echoes_do_not_count() {
        let r = |l: &Liveness, c, s, e| {
            let bytes = record(c, s, e, &[]);
            let mut next = l.clone();
            let got = next.receive(at(50_000), &Record::decode(&bytes).expect("r"));
            (got, next)
        };
        let fresh = Liveness::new(Timers::new(true), 42);
        assert_eq!(r(&fresh, 41, 10, 0).0, Received::WrongCookie);
        let (_, l) = r(&fresh, 42, 40_000, 0);
        assert_eq!(r(&l, 42, 10_000, 0).0, Received::Stale, "30 s older");
        assert_eq!(
            r(&l, 42, 10_001, 0).0,
            Received::Accepted {
                newest: false,
                answer: false
            }
        );
        let (_, forged) = r(&l, 42, 40_001, u64::MAX);
        assert!(forged.last_good.is_none(), "an echo from the future");
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_stays_in_bounds(bytes in proptest::collection::vec(any::<u8>(), 0..2_000)) {
            if let Ok(r) = Record::decode(&bytes) {
                prop_assert!(r.frame.len() <= MAX_FRAME);
                prop_assert!(RECORD_HEADER + r.frame.len() <= bytes.len());
            }
        }

        #[test]
        fn encode_decode_round_trip(cookie: u32, s in 1u64.., e: u64, frame in proptest::collection::vec(any::<u8>(), 0..=MAX_FRAME), pad in 0usize..32) {
            let mut bytes = record(cookie, s, e, &frame);
            bytes.resize(bytes.len() + pad, 0);
            let r = Record::decode(&bytes).expect("decodes");
            prop_assert_eq!((r.cookie, r.sender_tick, r.echoed_tick, r.frame), (cookie, s, e, &frame[..]));
        }
    }
}
