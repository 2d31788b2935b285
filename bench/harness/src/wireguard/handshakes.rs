//! The handshake row: how many WireGuard handshakes a server completes per
//! second while a flood of forged initiations (valid mac1, a key nobody
//! has) keeps it under load, so every real initiation must carry a valid
//! cookie (mac2) and its source stays within 20 initiations a second (the
//! per-address limit ethergate, the kernel and wireguard-go apply under
//! load). A driver in `client` plays both: the attacker sends forged
//! initiations from one address, and [`PEERS`] configured users handshake
//! from an address each ([`source`]), every 50 ms, getting their cookie
//! from the server's cookie reply and answering each response.
//! The driver's own Curve25519 work shares the machine's two cores with
//! the server, so the row is a floor, not the server's ceiling.

use std::{
    collections::HashMap,
    net::UdpSocket,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use ethergate_wireguard::{
    Message, PrivateKey, PublicKey,
    cookie::open_cookie_reply,
    handshake::{Identity, PendingInitiation, consume_response, cookie_key, initiate, tai64n},
};

use crate::{report::Sample, topo::LOGIN_SOURCES};

/// The flood's address.
fn flood_source() -> &'static str {
    LOGIN_SOURCES[0]
}

/// Users with WireGuard keys the driver handshakes for, each from its own
/// address, each every [`PEER_INTERVAL`]: 200 × 20/s = 4,000 offered
/// handshakes a second, what 200 sources may have under load.
pub const PEERS: usize = 200;
const PEER_INTERVAL: Duration = Duration::from_millis(50);

/// The address peer `i` sends from: 198.51.100.30 upward (the client's
/// link; `nat` reaches them by ARP).
pub fn source(i: usize) -> String {
    format!("198.51.100.{}", 30 + i)
}
/// The flood's rate, forged initiations a second. Fixed, so that a
/// server (or a driver) that gets faster faces the same flood and the
/// per-CPU-second figure compares builds.
pub const FORGED_PER_SECOND: f64 = 100_000.0;
/// At most this many forged initiations between two real ones (catching
/// up after a slow round stays a burst the socket takes).
const FORGED_BURST: u64 = 64;

/// The private key of bench peer `i`.
pub fn peer_key(i: usize) -> PrivateKey {
    // Not in byte 0 or 31: X25519 clamps their low and high bits.
    let mut bytes = [0x5a; 32];
    bytes[1..9].copy_from_slice(&(i as u64).to_le_bytes());
    PrivateKey::from_bytes(bytes)
}

/// The `[[hub.user]]` tables of the bench peers, with fixed addresses
/// 192.168.30.11 upward (skipping `skip`).
pub fn peer_users(skip: &str) -> String {
    let mut out = String::new();
    let mut host = 11u32;
    for i in 0..PEERS {
        if format!("192.168.30.{host}") == skip {
            host += 1;
        }
        out.push_str(&format!(
            "\n[[hub.user]]\nname = \"hs{i}\"\nwireguard_public_key = \"{}\"\nwireguard_address = \"192.168.30.{host}\"\n",
            peer_key(i).public_key()
        ));
        host += 1;
    }
    out
}

/// The same peers as `[Peer]` sections of a `wg setconf` file, with
/// addresses 10.9.1.1 upward: a server answers only peers it knows, so
/// wireguard-go needs them as ethergate needs [`peer_users`].
pub fn peer_sections() -> String {
    (0..PEERS)
        .map(|i| {
            format!(
                "\n[Peer]\nPublicKey = {}\nAllowedIPs = 10.9.1.{}/32\n",
                peer_key(i).public_key(),
                i + 1
            )
        })
        .collect()
}

/// Runs the flood and the handshakes against `server` for `duration`
/// (call inside the client namespace).
pub fn run(server: &str, server_key: &PublicKey, duration: Duration) -> Result<Sample> {
    // The attacker and the real peers from different addresses, as they
    // would be.
    let flood = UdpSocket::bind(format!("{}:0", flood_source()))?;
    flood.connect(server)?;
    flood.set_nonblocking(true)?;
    let mut real = Vec::with_capacity(PEERS);
    for i in 0..PEERS {
        let socket = UdpSocket::bind(format!("{}:0", source(i)))?;
        socket.connect(server)?;
        socket.set_nonblocking(true)?;
        real.push(socket);
    }
    let attacker = Identity::new(&PrivateKey::from_bytes([0x66; 32]));
    let forged: Vec<[u8; 148]> = (0..32u8)
        .map(|i| {
            initiate(
                &attacker,
                server_key,
                &[0; 32],
                [i; 32],
                u32::from(i),
                [0; 12],
                None,
            )
            .map(|(m, _)| m)
        })
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let peers: Vec<Identity> = (0..PEERS).map(|i| Identity::new(&peer_key(i))).collect();
    // By sender index (unique per initiation): the peer, what answers it,
    // and when it was sent.
    let mut pending: HashMap<u32, (usize, PendingInitiation, Instant)> = HashMap::new();
    let mut last_sent = vec![Instant::now() - Duration::from_secs(1); PEERS];
    // A cookie is bound to its source's address and port.
    let mut cookies: Vec<Option<[u8; 16]>> = vec![None; PEERS];
    let cookie_key = cookie_key(server_key);
    let (mut completed, mut cookie_replies, mut forged_sent, mut real_sent) =
        (0u64, 0u64, 0u64, 0u64);
    let mut next = 0usize;
    let mut buf = [0u8; 256];
    let start = Instant::now();
    let mut counter = 0u32;
    while start.elapsed() < duration {
        let due = (start.elapsed().as_secs_f64() * FORGED_PER_SECOND) as u64;
        for _ in 0..due.saturating_sub(forged_sent).min(FORGED_BURST) {
            if flood
                .send(&forged[forged_sent as usize % forged.len()])
                .is_ok()
            {
                forged_sent += 1;
            }
        }
        while flood.recv(&mut buf).is_ok() {}
        let now = Instant::now();
        let i = next;
        next = (next + 1) % PEERS;
        // Answers to this peer's earlier initiations first.
        while let Ok(n) = real[i].recv(&mut buf) {
            match Message::parse(&buf[..n]) {
                Ok(Message::Response(r)) => {
                    if let Some((peer, p, _)) = pending.remove(&r.receiver)
                        && consume_response(&peers[peer], &p, &r).is_ok()
                    {
                        completed += 1;
                    }
                }
                Ok(Message::CookieReply(r)) => {
                    cookie_replies += 1;
                    if let Some((_, p, _)) = pending.get(&r.receiver)
                        && let Some(fresh) = open_cookie_reply(&cookie_key, &p.mac1, &r)
                    {
                        cookies[i] = Some(fresh);
                    }
                }
                _ => {}
            }
        }
        if now.duration_since(last_sent[i]) >= PEER_INTERVAL {
            counter = counter.wrapping_add(1);
            let mut ephemeral = [0u8; 32];
            ephemeral[..4].copy_from_slice(&counter.to_le_bytes());
            ephemeral[4] = 0x77;
            let timestamp =
                tai64n(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?);
            let (init, p) = initiate(
                &peers[i],
                server_key,
                &[0; 32],
                ephemeral,
                counter,
                timestamp,
                cookies[i].as_ref(),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            if real[i].send(&init).is_ok() {
                real_sent += 1;
                last_sent[i] = now;
                pending.insert(counter, (i, p, now));
            }
            if counter.is_multiple_of(1024) {
                pending.retain(|_, (_, _, at)| now.duration_since(*at) < Duration::from_secs(2));
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if completed == 0 {
        bail!(
            "no handshake completed ({real_sent} sent, {cookie_replies} cookie replies, {forged_sent} forged)"
        );
    }
    Ok(Sample::new(completed as f64 / secs)
        .with("completed", completed as f64)
        .with("forged_per_s", forged_sent as f64 / secs)
        .with("initiations_per_s", real_sent as f64 / secs)
        .with("cookie_replies", cookie_replies as f64))
}
