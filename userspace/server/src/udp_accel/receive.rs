//! A worker's receive loop for one acceleration socket: one datagram
//! waited for on io_uring, whatever else is queued read without waiting
//! (coalesced by UDP_GRO where the kernel can), each datagram matched to
//! its session, opened, checked, and the frames switched through the hub
//! as one batch per session — on this worker, as frames from a TLS
//! connection are.

use std::{collections::HashMap, net::SocketAddr, rc::Rc, sync::Arc};

use ethergate_proto::udp_accel::Record;
use tracing::{debug, warn};

use super::{Registry, UdpAccelCounters, UdpAccelDrop};
use crate::{
    directory::SessionShared,
    udp::{batch::SessionBatch, burst::BurstReader},
    worker_context::Worker,
};

/// Reads handled as one burst.
const BURST: usize = 32;
/// Learned sources kept per worker; past it the cache starts again (a
/// flood of new sources costs lookups, never memory).
const CACHE_MAX: usize = 4096;
/// Trial decryptions per second and worker for datagrams from sources not
/// matched yet. A client needs one at the start and one per NAT rebinding;
/// a flood that forges a client's address needs one per datagram, and
/// past this budget costs a hash lookup each, not a Poly1305 pass.
const SEARCHES_PER_SEC: u32 = 10_000;

/// Serves this worker's `socket` until the server stops (the task is
/// dropped with the worker's runtime).
pub(crate) async fn run(socket: std::net::UdpSocket, worker: Rc<Worker>) {
    let local = socket.local_addr().ok();
    let mut reader = match BurstReader::new(socket, BURST) {
        Ok((reader, _)) => reader,
        Err(e) => {
            warn!(?local, "cannot use a UDP acceleration socket: {e}");
            return;
        }
    };
    let mut rx = Receiver {
        registry: &worker.directory.udp_accel,
        worker: &worker,
        known: HashMap::new(),
        candidates: Vec::new(),
        searches: (0, 0),
        scratch: Vec::with_capacity(2048),
        inflated: Vec::new(),
        batch: SessionBatch::default(),
    };
    loop {
        if let Err(e) = reader.read().await {
            debug!(?local, "UDP acceleration receive: {e}");
            continue;
        }
        let now = crate::worker_context::now();
        // Replies leave from the address the client's TLS connection
        // reached (the session's path knows it; the sockets carry no
        // packet info), so only the sender counts.
        reader.for_each(|datagram, from| rx.datagram(now, datagram, from.remote));
        rx.batch.flush(&worker);
    }
}

struct Receiver<'a> {
    registry: &'a Registry,
    worker: &'a Worker,
    /// Sources this worker has matched to a session.
    known: HashMap<SocketAddr, Arc<SessionShared>>,
    candidates: Vec<Arc<SessionShared>>,
    /// (second, trial decryptions in it) of this worker.
    searches: (u64, u32),
    /// A copy of a datagram, for trying more than one key.
    scratch: Vec<u8>,
    /// One inflated frame.
    inflated: Vec<u8>,
    batch: SessionBatch,
}

impl Receiver<'_> {
    fn counters(&self) -> &UdpAccelCounters {
        &self.registry.counters
    }

    fn datagram(&mut self, now: ethergate_proto::Timestamp, datagram: &mut [u8], from: SocketAddr) {
        UdpAccelCounters::bump(&self.counters().datagrams_received);
        let known = self.known.get(&from).filter(|s| !s.is_closed()).cloned();
        if let Some(session) = known
            && let Some(path) = &session.udp_accel
        {
            if let Some(plain) = path.open(datagram) {
                let plain: &[u8] = plain;
                self.deliver(now, &session, plain, from);
            } else {
                // Forged, or another session behind the same address and
                // port now (a NAT reused it): this one is lost (opening
                // overwrote it), the source's next one is matched afresh.
                self.known.remove(&from);
                self.counters().dropped(UdpAccelDrop::Undecryptable);
            }
            return;
        }
        self.known.remove(&from);
        self.registry.candidates(from.ip(), &mut self.candidates);
        if self.candidates.is_empty() {
            self.counters().dropped(UdpAccelDrop::UnknownSource);
            return;
        }
        let second = now.0 / 1000;
        if self.searches.0 != second {
            self.searches = (second, 0);
        }
        let trials = u32::try_from(self.candidates.len()).unwrap_or(u32::MAX);
        if self.searches.1.saturating_add(trials) > SEARCHES_PER_SEC {
            self.counters().dropped(UdpAccelDrop::SearchLimited);
            return;
        }
        self.searches.1 += trials;
        self.scratch.clear();
        self.scratch.extend_from_slice(datagram);
        let candidates = std::mem::take(&mut self.candidates);
        for session in &candidates {
            let Some(path) = &session.udp_accel else {
                continue;
            };
            datagram.copy_from_slice(&self.scratch);
            if let Some(plain) = path.open(datagram) {
                let plain: &[u8] = plain;
                if self.known.len() >= CACHE_MAX {
                    self.known.clear();
                }
                self.known.insert(from, Arc::clone(session));
                self.deliver(now, session, plain, from);
                self.candidates = candidates;
                return;
            }
        }
        self.candidates = candidates;
        self.counters().dropped(UdpAccelDrop::Undecryptable);
    }

    fn deliver(
        &mut self,
        now: ethergate_proto::Timestamp,
        session: &Arc<SessionShared>,
        plain: &[u8],
        from: SocketAddr,
    ) {
        let Some(path) = &session.udp_accel else {
            return;
        };
        let record = match Record::decode(plain) {
            Ok(r) => r,
            Err(_) => {
                self.counters().dropped(UdpAccelDrop::Malformed);
                return;
            }
        };
        if !path.receive(now, &record, from) || record.frame.is_empty() {
            return;
        }
        let frame: &[u8] = if record.compressed {
            match ethergate_proto::data::inflate_frame(record.frame, &mut self.inflated) {
                Some(len) => &self.inflated[..len],
                None => {
                    self.registry.counters.dropped(UdpAccelDrop::BadCompression);
                    return;
                }
            }
        } else {
            record.frame
        };
        UdpAccelCounters::bump(&self.registry.counters.frames_received);
        path.frames_in
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.batch.push(session, frame, self.worker);
    }
}
