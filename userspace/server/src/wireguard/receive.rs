//! A worker's receive loop for one hub's WireGuard socket: one datagram
//! waited for on io_uring, then whatever else is queued read without
//! waiting, and the burst handled in order — handshakes answered,
//! transport messages decrypted in place, and each peer's packets framed
//! and switched through the hub as one batch.

use std::{net::SocketAddr, rc::Rc, sync::Arc, time::Instant};

use crate::udp::pktinfo::PeerAddr;

use ethergate_proto::data::Frames;
use ethergate_wireguard::{Admission, Message, PeerError, handshake::consume_initiation_with};
use futures_util::future::{Either, select};
use tracing::{debug, info, warn};

use super::{WgPeer, WireguardDrop, WireguardHub, counters::WireguardCounters, send};
use crate::{
    directory::SessionShared,
    hub_plane::HubPlane,
    udp::{batch::SessionBatch, burst::BurstReader},
    worker_context::Worker,
};

/// Datagrams handled as one burst.
const BURST: usize = 32;

/// Serves `socket` (this worker's share of `wg`'s address) until the hub
/// closes.
pub(crate) async fn run(
    wg: Arc<WireguardHub>,
    plane: Arc<HubPlane>,
    socket: std::net::UdpSocket,
    worker: Rc<Worker>,
) {
    let sender = match send_socket(&socket) {
        Ok(sender) => Rc::new(sender),
        Err(e) => {
            warn!(hub = wg.hub, "cannot use a WireGuard socket: {e}");
            return;
        }
    };
    let mut reader = match BurstReader::new(socket, BURST) {
        Ok((reader, gro)) => {
            if !gro {
                debug!(hub = wg.hub, "UDP_GRO unavailable: one datagram per read");
            }
            reader
        }
        Err(e) => {
            warn!(hub = wg.hub, "cannot register a WireGuard socket: {e}");
            return;
        }
    };
    let closed = plane.closed();
    futures_util::pin_mut!(closed);
    let mut burst = Burst::default();
    let rx = Receiver {
        wg: &wg,
        plane: &plane,
        worker: &worker,
        sender: &sender,
    };
    loop {
        let result = {
            let read = reader.read();
            futures_util::pin_mut!(read);
            match select(read, closed.as_mut()).await {
                Either::Left((done, _)) => done,
                Either::Right(((), _)) => break,
            }
        };
        if let Err(e) = result {
            debug!(hub = wg.hub, "WireGuard receive: {e}");
            continue;
        }
        let now = Instant::now();
        // A full burst that is mostly initiations: handshakes arrive faster
        // than this worker answers them. (A full burst of data does not
        // count: a busy tunnel must not make new peers wait for cookies.)
        let mut datagrams = 0;
        let mut initiations = 0;
        reader.for_each(|datagram, _| {
            datagrams += 1;
            initiations +=
                usize::from(datagram.first() == Some(&ethergate_wireguard::message::INITIATION));
        });
        if datagrams >= BURST && initiations >= datagrams / 2 {
            wg.note_backlog(now);
        }
        for i in 0..reader.len() {
            let Some((buf, from, size)) = reader.get_mut(i) else {
                continue;
            };
            for datagram in buf.chunks_mut(size) {
                handle(rx, now, datagram, from, &mut burst).await;
            }
        }
        burst.batch.flush(&worker);
    }
    debug!(
        hub = wg.hub,
        worker = worker.index,
        "WireGuard receiver stopped"
    );
}

/// The sender's view of this worker's socket: a second compio handle for
/// io_uring sends and a plain one for non-blocking sendmsg(2).
fn send_socket(socket: &std::net::UdpSocket) -> std::io::Result<send::WgSocket> {
    let io = compio::net::UdpSocket::from_std(socket.try_clone()?)?;
    Ok(send::WgSocket::new(io, socket.try_clone().ok()))
}

/// Packets decrypted in this burst, waiting to be switched as one batch
/// per peer.
#[derive(Default)]
struct Burst {
    batch: SessionBatch,
    /// One packet's frames, reused (no allocation per packet).
    scratch: Frames,
}

/// The sender's address as the cookie binds it: address bytes, then port
/// (18 bytes at most; no allocation per initiation under a flood).
fn source_bytes(from: SocketAddr) -> ([u8; 18], usize) {
    let mut bytes = [0u8; 18];
    let len = match from.ip() {
        std::net::IpAddr::V4(v4) => {
            bytes[..4].copy_from_slice(&v4.octets());
            4
        }
        std::net::IpAddr::V6(v6) => {
            bytes[..16].copy_from_slice(&v6.octets());
            16
        }
    };
    bytes[len..len + 2].copy_from_slice(&from.port().to_be_bytes());
    (bytes, len + 2)
}

/// What one worker's receive loop handles every datagram with.
#[derive(Clone, Copy)]
struct Receiver<'a> {
    wg: &'a Arc<WireguardHub>,
    plane: &'a Arc<HubPlane>,
    worker: &'a Rc<Worker>,
    sender: &'a Rc<send::WgSocket>,
}

async fn handle(
    rx: Receiver<'_>,
    now: Instant,
    datagram: &mut [u8],
    from: PeerAddr,
    burst: &mut Burst,
) {
    let Receiver { wg, sender, .. } = rx;
    let counters = &wg.counters;
    match Message::parse(datagram) {
        Ok(Message::Initiation(_)) => {}
        Ok(Message::Transport(t)) => {
            let (receiver, counter) = (t.receiver, t.counter);
            transport(rx, now, datagram, receiver, counter, from, burst);
            return;
        }
        Ok(Message::Response(_) | Message::CookieReply(_)) => {
            counters.drop(WireguardDrop::Unexpected);
            return;
        }
        Err(_) => {
            counters.drop(WireguardDrop::Malformed);
            return;
        }
    }
    let Ok(Message::Initiation(msg)) = Message::parse(datagram) else {
        return;
    };
    let under_load = wg.under_load(now);
    let (source, source_len) = source_bytes(from.remote);
    let admission = wg
        .responder
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .admit(
            &msg,
            source.get(..source_len).unwrap_or_default(),
            under_load,
            now,
            &mut crate::random::system_random,
        );
    match admission {
        Admission::BadMac1 => {
            counters.drop(WireguardDrop::BadMac1);
            return;
        }
        Admission::CookieReply(reply) => {
            WireguardCounters::bump(&counters.cookie_replies);
            sender.send_one(&reply, from, counters).await;
            return;
        }
        Admission::Proceed => {}
    }
    if under_load && !wg.limiter.allow(from.remote.ip(), now) {
        counters.drop(WireguardDrop::RateLimited);
        return;
    }
    let consumed = match consume_initiation_with(&wg.identity, &msg, &|key| wg.static_shared(key)) {
        Ok(c) => c,
        Err(_) => {
            counters.drop(WireguardDrop::HandshakeDecrypt);
            return;
        }
    };
    let Some(peer) = wg.peer_by_key(&consumed.peer) else {
        counters.drop(WireguardDrop::UnknownKey);
        return;
    };
    let index = wg.new_index(&peer);
    let mut ephemeral = [0u8; 32];
    crate::random::system_random(&mut ephemeral);
    let mut retired = Vec::new();
    let result = {
        let mut state = peer.lock();
        let result = state
            .peer
            .accept_initiation(consumed, now, ephemeral, index, &mut retired);
        if result.is_ok() {
            state.heard_from(from, &peer.link);
        }
        result
    };
    match result {
        Ok(response) => {
            wg.forget_indices(&retired);
            WireguardCounters::bump(&counters.handshakes);
            sender.send_one(&response, from, counters).await;
        }
        Err(e) => {
            wg.forget_indices(&[index]);
            counters.drop(match e {
                PeerError::StaleTimestamp | PeerError::TooSoon => WireguardDrop::ReplayedInitiation,
                _ => WireguardDrop::HandshakeDecrypt,
            });
        }
    }
}

fn transport(
    rx: Receiver<'_>,
    now: Instant,
    datagram: &mut [u8],
    receiver: u32,
    counter: u64,
    from: PeerAddr,
    burst: &mut Burst,
) {
    let Receiver { wg, worker, .. } = rx;
    let counters = &wg.counters;
    let Some(peer) = wg.peer_by_index(receiver) else {
        counters.drop(WireguardDrop::UnknownIndex);
        return;
    };
    let mut retired = Vec::new();
    let mut frames = std::mem::take(&mut burst.scratch);
    frames.clear();
    let session = {
        let mut state = peer.lock();
        let state = &mut *state;
        let received = match state.peer.receive(
            now,
            receiver,
            counter,
            &mut datagram[ethergate_wireguard::message::TRANSPORT_HEADER_LEN..],
            &mut retired,
        ) {
            Ok(r) => r,
            Err(_) => {
                counters.drop(WireguardDrop::Rejected);
                return;
            }
        };
        state.heard_from(from, &peer.link);
        if received.confirmed {
            peer.link.confirmed_now();
        }
        if !received.packet.is_empty() {
            WireguardCounters::bump(&counters.packets_received);
            if let Err(why) = state
                .port
                .from_client(now, received.packet, &mut |frame| frames.push(frame))
            {
                counters.drop(why.into());
            }
        }
        if state.session.as_ref().is_some_and(|s| s.is_closed()) {
            // Ended (operator, reload, limits) since this packet's keys were
            // made: they die with it, and the peer must handshake again.
            state.peer.clear(&mut retired);
            state.session = None;
        } else if state.session.is_none() && received.confirmed {
            state.session = open_session(rx, &peer);
        }
        state.session.clone()
    };
    wg.forget_indices(&retired);
    match session {
        Some(session) => {
            if !frames.is_empty() {
                burst.batch.append(&session, &frames, worker);
            }
        }
        None => counters.drop_n(WireguardDrop::NoSession, frames.len() as u64),
    }
    burst.scratch = frames;
}

/// The peer's first confirmed keys: a session on the hub, and its sender
/// task on this worker.
fn open_session(rx: Receiver<'_>, peer: &Arc<WgPeer>) -> Option<Arc<SessionShared>> {
    let Receiver {
        wg,
        plane,
        worker,
        sender,
    } = rx;
    let hub = worker.directory.hub(&wg.hub)?;
    match worker.directory.open_wireguard(
        &hub,
        &peer.setup.user,
        Arc::clone(&peer.link),
        worker.index,
    ) {
        Ok(session) => {
            info!(
                client = %peer.link.endpoint(),
                hub = wg.hub,
                user = peer.setup.user,
                session = session.session_name,
                address = %peer.setup.address,
                worker = worker.index,
                "WireGuard session established"
            );
            compio::runtime::spawn(send::run(
                Arc::clone(wg),
                Arc::clone(plane),
                Arc::clone(peer),
                Arc::clone(&session),
                Rc::clone(sender),
                Rc::clone(worker),
            ))
            .detach();
            Some(session)
        }
        Err(code) => {
            warn!(
                hub = wg.hub,
                user = peer.setup.user,
                code = code.0,
                "WireGuard peer refused a session (limits)"
            );
            None
        }
    }
}
