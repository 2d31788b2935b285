//! A WireGuard session's sender: drains the session's outbox on the worker
//! that opened it — ARP is answered on the hub, IPv4 frames for the peer
//! are encrypted into one buffer — and sends the datagrams with UDP
//! segmentation offload: a run of equal-sized datagrams to one endpoint is
//! one sendmsg(2) that the kernel cuts (the technique that took
//! wireguard-go past 10 Gbit/s). Also runs the peer's timers: keepalives,
//! neighbours that never answered, keys that expired.

use std::{
    cell::Cell,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use compio::BufResult;
use ethergate_proto::data::Frames;
use futures_util::future::{Either, select};
use tracing::{debug, info};

use super::{WgPeer, WireguardDrop, WireguardHub, counters::WireguardCounters};
use crate::{
    directory::{EndReason, SessionShared},
    hub_plane::HubPlane,
    udp::pktinfo::{self, PeerAddr},
    worker_context::Worker,
};

/// How often an idle sender looks at the peer's timers.
const TICK: Duration = Duration::from_secs(1);
/// A worker's socket for one hub, as the senders use it.
pub(crate) struct WgSocket {
    io: compio::net::UdpSocket,
    /// The same socket for sendmsg(2) without io_uring (non-blocking).
    raw: Option<std::net::UdpSocket>,
    /// Cleared when the kernel refuses segmentation (then one sendto per
    /// datagram).
    gso: Cell<bool>,
}

impl WgSocket {
    pub fn new(io: compio::net::UdpSocket, raw: Option<std::net::UdpSocket>) -> Self {
        Self {
            io,
            raw,
            gso: Cell::new(true),
        }
    }

    /// One datagram (handshake answers): a non-blocking sendmsg(2) first —
    /// under a flood of initiations every reply is one, and waiting for an
    /// io_uring completion per reply would let the socket's queue overflow
    /// with the flood — then io_uring when the socket buffer is full.
    pub async fn send_one(&self, bytes: &[u8], to: PeerAddr, counters: &WireguardCounters) {
        if let Some(raw) = &self.raw {
            match pktinfo::send(raw, to, bytes, None) {
                Ok(()) => return,
                Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {
                    debug!(to = %to.remote, "WireGuard send: {e}");
                    WireguardCounters::bump(&counters.send_errors);
                    return;
                }
                Err(_) => {}
            }
        }
        self.send_waiting(bytes, to, counters).await;
    }

    /// One datagram through io_uring (waits for room in the socket buffer).
    async fn send_waiting(&self, bytes: &[u8], to: PeerAddr, counters: &WireguardCounters) {
        let control = pktinfo::SendControl::new(None, to.local)
            .as_bytes()
            .to_vec();
        let BufResult(result, _) = self.io.send_msg(bytes.to_vec(), control, to.remote).await;
        if let Err(e) = result {
            debug!(to = %to.remote, "WireGuard send: {e}");
            WireguardCounters::bump(&counters.send_errors);
        }
    }

    /// Sends the datagrams laid end to end in `buf` (`sizes` each) to `to`.
    pub async fn send_batch(
        &self,
        to: PeerAddr,
        buf: &[u8],
        sizes: &[usize],
        counters: &WireguardCounters,
    ) {
        let mut at = 0;
        for (i, end, bytes) in crate::udp::gso::runs(sizes) {
            let chunk = &buf[at..at + bytes];
            let sent = match &self.raw {
                Some(raw) if self.gso.get() && end - i > 1 => {
                    crate::udp::gso::send_segmented(raw, to, chunk, sizes[i] as u16)
                }
                _ => Err(std::io::ErrorKind::Unsupported.into()),
            };
            match sent {
                Ok(()) => {}
                Err(e) if crate::udp::gso::refused(&e) => {
                    // No segmentation on this path: never again here.
                    self.gso.set(false);
                    self.send_each(to, chunk, &sizes[i..end], counters).await;
                }
                Err(_) => self.send_each(to, chunk, &sizes[i..end], counters).await,
            }
            WireguardCounters::bump_by(&counters.packets_sent, (end - i) as u64);
            at += bytes;
        }
    }

    async fn send_each(
        &self,
        to: PeerAddr,
        chunk: &[u8],
        sizes: &[usize],
        counters: &WireguardCounters,
    ) {
        let mut at = 0;
        for &size in sizes {
            let datagram = &chunk[at..at + size];
            at += size;
            self.send_one(datagram, to, counters).await;
        }
    }
}

/// Runs the sender of `session` (peer `peer`) until the session ends.
pub(crate) async fn run(
    wg: Arc<WireguardHub>,
    plane: Arc<HubPlane>,
    peer: Arc<WgPeer>,
    session: Arc<SessionShared>,
    socket: Rc<WgSocket>,
    worker: Rc<Worker>,
) {
    let outbox = Arc::clone(&session.outbox);
    let lane = outbox.join();
    let mut frames = Frames::new();
    let mut to_hub = Frames::new();
    let mut out: Vec<u8> = Vec::with_capacity(crate::udp::gso::MAX_BYTES);
    let mut sizes: Vec<usize> = Vec::new();
    let mut retired = Vec::new();
    let counters = &wg.counters;
    loop {
        let woke = {
            let wait = outbox.wait(lane);
            let tick = compio::time::sleep(TICK);
            futures_util::pin_mut!(wait, tick);
            match select(wait, tick).await {
                Either::Left((true, _)) => true,
                Either::Left((false, _)) => break,
                Either::Right(((), _)) => false,
            }
        };
        if woke {
            outbox.take(lane, &mut frames);
        } else {
            frames.clear();
        }
        let now = Instant::now();
        let (endpoint, keys_gone) = {
            let mut state = peer.lock();
            let state = &mut *state;
            let mut no_keys = 0u64;
            for frame in frames.iter() {
                if let Some(packet) = state.port.from_hub(now, frame, &mut |f| to_hub.push(f)) {
                    let before = out.len();
                    match state.peer.send(now, packet, &mut out) {
                        Ok(()) => sizes.push(out.len() - before),
                        Err(_) => no_keys += 1,
                    }
                }
            }
            counters.drop_n(WireguardDrop::NoKeys, no_keys);
            if state.peer.keepalive_due(now) {
                let before = out.len();
                if state.peer.send(now, &[], &mut out).is_ok() {
                    sizes.push(out.len() - before);
                    WireguardCounters::bump(&counters.keepalives_sent);
                }
            }
            let unanswered = state.port.expire_pending(now);
            counters.drop_n(WireguardDrop::UnresolvedNeighbour, unanswered as u64);
            (
                state
                    .endpoint
                    .unwrap_or_else(|| PeerAddr::routed(peer.link.endpoint())),
                state.peer.expire(now, &mut retired),
            )
        };
        wg.forget_indices(&retired);
        retired.clear();
        if !to_hub.is_empty() {
            let mut buffers = worker.switch_buffers.borrow_mut();
            plane.switch_from_session(session.port, &to_hub, worker.index, &mut buffers);
            drop(buffers);
            to_hub.clear();
        }
        if !sizes.is_empty() {
            session
                .counters
                .sent
                .add(sizes.len() as u64, out.len() as u64);
            socket.send_batch(endpoint, &out, &sizes, counters).await;
            out.clear();
            sizes.clear();
        }
        if keys_gone {
            info!(
                hub = wg.hub,
                user = peer.setup.user,
                "WireGuard keys expired (no handshake)"
            );
            worker
                .directory
                .end_session(&session, EndReason::KeysExpired);
            break;
        }
    }
    // Ended (operator, reload, expiry, hub closed): the peer must
    // handshake again before it gets another session.
    {
        let mut state = peer.lock();
        if state
            .session
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &session))
        {
            state.peer.clear(&mut retired);
            state.session = None;
        }
    }
    wg.forget_indices(&retired);
    outbox.leave(lane);
    session.sender_ended();
}
