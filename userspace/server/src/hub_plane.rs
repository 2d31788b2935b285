//! One virtual hub's data plane, shared by every worker thread: its switch
//! ([`HubSwitch`]: MAC table, DHCP server, port policies), the outboxes
//! of its sessions, and its local bridge's tap queues.
//!
//! There is no hub thread. A worker that decrypts a session's frames
//! switches them here and writes those for the bridge to *its own* tap
//! queue; a worker that reads a frame from its tap queue switches it here
//! and hands it to the destination session's outbox, whose connection
//! (usually on the same worker: the tap steers a flow's replies to the
//! queue that wrote its requests) encrypts and sends it. The switch is
//! behind one lock, taken once per batch and never across I/O: only the
//! forwarding decisions are made under it; segmentation comes before it,
//! copies, tap writes and outbox pushes after it. docs/decisions/0009 has
//! the measurements of what sharing it between workers costs.
//!
//! Invariants: a port is in the switch exactly while its session's outbox
//! is in `sessions` (both change under the lock), so a frame is never
//! delivered to a port that was detached; every frame is written, queued
//! for a session, or counted as dropped with a reason.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use ethergate_bridge::TapQueue;
use ethergate_hub::offload::{self, Coalescer, VnetHdr};
use ethergate_proto::data::Frames;
use tracing::{debug, warn};

use crate::{
    counters::{HubCounters, SwitchGauges},
    hub_switch::{Delivery, HubSwitch, MAC_AGING_EVERY},
    outbox::{Outbox, PushError},
};

/// A hub port: a session (ids from 1) or the local bridge (0).
pub use ethergate_hub::PortId;

pub use crate::hub_switch::SessionPolicy;

/// Tries before a worker waiting for a hub's lock sleeps: a few
/// microseconds of spinning, about as long as a 64-frame batch holds it.
const LOCK_SPINS: u32 = 2_000;

pub struct HubPlane {
    pub name: String,
    core: Mutex<Core>,
    /// The local bridge's queues; worker `i` writes to queue `i % len` and
    /// reads the queues `q` with `q % workers == i`. Empty: a hub without a
    /// local bridge only switches between sessions.
    taps: Vec<TapQueue>,
    pub counters: Arc<HubCounters>,
    /// Closed by [`HubPlane::close`]: the hub is closed, and the workers'
    /// tap readers wake and stop (and drop their descriptors).
    closing: (async_channel::Sender<()>, async_channel::Receiver<()>),
    /// Tap queues a worker is reading right now (readiness: all of them).
    tap_readers: AtomicUsize,
    /// The hub's WireGuard endpoint, when it has one: each worker serves
    /// its socket.
    wireguard: Option<Arc<crate::wireguard::WireguardHub>>,
}

struct Core {
    switch: HubSwitch,
    sessions: HashMap<PortId, SessionPort>,
    last_aging: Instant,
    /// What the counters show now: they are written only when the gauges
    /// change, so workers switching frames do not keep writing the same
    /// shared cache lines.
    published: SwitchGauges,
}

impl Core {
    /// Where each input frame (index, bytes) from `ingress` goes, decided
    /// under the lock. Input frames for the bridge or for sessions are
    /// recorded by index and written or copied after the lock; frames the
    /// switch made itself (DHCP answers) are copied now.
    fn decide<'f>(
        &mut self,
        ingress: PortId,
        input: impl Iterator<Item = (usize, &'f [u8])>,
        bridge_input: &mut Vec<usize>,
        to_bridge: &mut Frames,
        ports: &mut PortBatches,
    ) {
        let Core {
            switch, sessions, ..
        } = self;
        for (index, frame) in input {
            switch.forward(ingress, frame, &mut |delivery| match delivery {
                Delivery::Bridge(bytes) if std::ptr::eq(bytes, frame) => bridge_input.push(index),
                Delivery::Bridge(bytes) => to_bridge.push(bytes),
                Delivery::Port(to, bytes) => {
                    let Some(session) = sessions.get(&to) else {
                        return;
                    };
                    if std::ptr::eq(bytes, frame) {
                        ports.push_later(to, session, index);
                    } else {
                        ports.push(to, session, bytes);
                    }
                }
            });
        }
    }

    fn publish(&mut self, counters: &HubCounters) {
        let gauges = self.switch.gauges();
        if gauges != self.published {
            counters.publish(gauges);
            self.published = gauges;
        }
    }
}

/// A session as the plane knows it: where its frames go, and the worker
/// that serves it.
struct SessionPort {
    outbox: Arc<Outbox>,
    worker: usize,
}

/// A worker's scratch for switching batches: reused across batches and
/// hubs, so the frame path allocates nothing in steady state.
#[derive(Default)]
pub struct SwitchBuffers {
    /// Frames for sessions from the batch being switched.
    ports: PortBatches,
    /// Input frames (by index) that go to the bridge unchanged.
    bridge_input: Vec<usize>,
    /// Frames for the bridge that are not input frames (DHCP answers to
    /// the bridge side).
    to_bridge: Frames,
    coalescer: Coalescer,
    /// The frames of one burst of tap reads (segments, with offload).
    from_bridge: Frames,
}

/// Segments cut from the tap's super-frames, built straight into the
/// batch being switched.
struct SegmentsInto<'a>(&'a mut Frames);

impl offload::SegmentOut for SegmentsInto<'_> {
    fn push_joined(&mut self, head: &[u8], body: &[u8]) -> &mut [u8] {
        self.0.push_joined(head, body)
    }
}

/// One batch's frames per destination session.
#[derive(Default)]
struct PortBatches {
    outgoing: Vec<Pending>,
    /// Index into `outgoing` by port.
    by_port: HashMap<PortId, usize>,
    /// Emptied frame containers, for the next batch.
    spare: Vec<Frames>,
    /// Input frames for sessions, as (index into `outgoing`, index into the
    /// input batch): decided under the lock, copied after it.
    deferred: Vec<(usize, usize)>,
}

struct Pending {
    outbox: Arc<Outbox>,
    worker: usize,
    frames: Frames,
}

impl PortBatches {
    fn push(&mut self, port: PortId, session: &SessionPort, frame: &[u8]) {
        let at = self.slot(port, session);
        self.outgoing[at].frames.push(frame);
    }

    /// Input frame `index` goes to `port`: copied by [`Self::copy_deferred`].
    fn push_later(&mut self, port: PortId, session: &SessionPort, index: usize) {
        let at = self.slot(port, session);
        self.deferred.push((at, index));
    }

    /// Whether every frame of an input batch of `count` went, in order, to
    /// one session that has nothing else from this batch: then
    /// [`Self::take_whole`] hands it the batch instead of a copy of each
    /// frame (a download to one client is all such batches).
    fn all_to_one(&self, count: usize) -> bool {
        let Some(&(first, _)) = self.deferred.first() else {
            return false;
        };
        self.deferred.len() == count
            && self
                .deferred
                .iter()
                .enumerate()
                .all(|(i, &(at, index))| at == first && index == i)
            && self
                .outgoing
                .get(first)
                .is_some_and(|p| p.frames.is_empty())
    }

    /// Gives the one session of an [`Self::all_to_one`] batch the input
    /// buffer itself; `input` gets an empty one back.
    fn take_whole(&mut self, input: &mut Frames) {
        if let Some(&(at, _)) = self.deferred.first()
            && let Some(pending) = self.outgoing.get_mut(at)
        {
            std::mem::swap(&mut pending.frames, input);
        }
        self.deferred.clear();
    }

    /// Copies the deferred input frames; `input(i)` is input frame `i`.
    fn copy_deferred<'a>(&mut self, input: impl Fn(usize) -> Option<&'a [u8]>) {
        for (at, index) in self.deferred.drain(..) {
            if let (Some(pending), Some(frame)) = (self.outgoing.get_mut(at), input(index)) {
                pending.frames.push(frame);
            }
        }
    }

    fn slot(&mut self, port: PortId, session: &SessionPort) -> usize {
        *self.by_port.entry(port).or_insert_with(|| {
            let frames = self.spare.pop().unwrap_or_default();
            self.outgoing.push(Pending {
                outbox: Arc::clone(&session.outbox),
                worker: session.worker,
                frames,
            });
            self.outgoing.len() - 1
        })
    }
}

impl HubPlane {
    /// A hub with `switch` (its bridge MAC pinned already) and the local
    /// bridge's tap queues, set blocking for io_uring reads.
    pub fn new(
        name: &str,
        switch: HubSwitch,
        taps: Vec<TapQueue>,
        counters: Arc<HubCounters>,
    ) -> std::io::Result<Self> {
        for tap in &taps {
            tap.set_blocking()?;
        }
        if let Some(tap) = taps.first() {
            counters
                .tap_offload
                .store(tap.vnet_hdr(), Ordering::Relaxed);
        }
        let published = switch.gauges();
        counters.publish(published);
        Ok(Self {
            name: name.to_owned(),
            core: Mutex::new(Core {
                switch,
                sessions: HashMap::new(),
                last_aging: Instant::now(),
                published,
            }),
            taps,
            counters,
            closing: async_channel::bounded(1),
            tap_readers: AtomicUsize::new(0),
            wireguard: None,
        })
    }

    /// The hub with a WireGuard endpoint (before it is shared).
    pub fn with_wireguard(mut self, wireguard: Arc<crate::wireguard::WireguardHub>) -> Self {
        self.wireguard = Some(wireguard);
        self
    }

    pub fn wireguard(&self) -> Option<&Arc<crate::wireguard::WireguardHub>> {
        self.wireguard.as_ref()
    }

    /// The switch, for one batch. The lock is held for microseconds and
    /// never across I/O, so a worker that finds it taken spins briefly
    /// before it sleeps: waking a parked thread (a futex wait and wake, two
    /// context switches) costs more than the wait. Measured with two
    /// workers switching through one hub at once (`cargo bench --bench
    /// hub_plane`): 35.6 µs per 64-frame batch with a plain mutex, 23.9 µs
    /// spinning first, 14 µs alone.
    fn lock(&self) -> MutexGuard<'_, Core> {
        for _ in 0..LOCK_SPINS {
            match self.core.try_lock() {
                Ok(core) => return core,
                Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => std::hint::spin_loop(),
            }
        }
        // The switch's state stays consistent frame by frame; a panic in a
        // worker must not take every other worker's hub down with it.
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A session served by `worker` joined; frames for it go to `outbox`.
    /// False when the hub is closed: checked under the lock [`Self::close`]
    /// takes after marking the hub closed, so a session either is refused
    /// here or has its outbox closed there, never neither.
    #[must_use]
    pub fn attach(
        &self,
        port: PortId,
        outbox: Arc<Outbox>,
        worker: usize,
        policy: &SessionPolicy,
    ) -> bool {
        let mut core = self.lock();
        if self.is_closed() {
            return false;
        }
        core.sessions.insert(port, SessionPort { outbox, worker });
        core.switch.port_added(port, policy);
        core.publish(&self.counters);
        debug!(hub = self.name, port = port.0, "port attached");
        true
    }

    /// The session ended: its outbox closes and the switch forgets its MACs.
    pub fn detach(&self, port: PortId) {
        let mut core = self.lock();
        if let Some(session) = core.sessions.remove(&port) {
            session.outbox.close();
        }
        core.switch.port_removed(port);
        core.publish(&self.counters);
        debug!(hub = self.name, port = port.0, "port detached");
    }

    #[cfg(test)]
    /// Whether `port` is attached (tests, status).
    pub fn has_port(&self, port: PortId) -> bool {
        self.lock().sessions.contains_key(&port)
    }

    #[cfg(test)]
    /// The switch's policy for an attached port.
    pub fn port_policy(&self, port: PortId) -> Option<ethergate_hub::PortPolicy> {
        self.lock().switch.hub().policy(port).copied()
    }

    /// New DHCP settings (reload); `None` turns DHCP off.
    pub fn set_dhcp(&self, config: Option<ethergate_hub::DhcpServerConfig>) {
        {
            let mut core = self.lock();
            core.switch.set_dhcp(config);
            core.publish(&self.counters);
        }
        self.persist_leases();
    }

    /// Every second: ages MAC entries (every [`MAC_AGING_EVERY`]), publishes
    /// the gauges, and writes the lease file when leases changed.
    pub fn housekeeping(&self) {
        {
            let mut core = self.lock();
            if core.last_aging.elapsed() >= MAC_AGING_EVERY {
                core.last_aging = Instant::now();
                core.switch.tick();
            }
            core.publish(&self.counters);
        }
        self.persist_leases();
    }

    /// Writes the lease file if the leases changed, outside the lock.
    pub fn persist_leases(&self) {
        let Some(write) = self.lock().switch.leases_to_persist() else {
            return;
        };
        match write.write() {
            Ok(()) => self.lock().switch.persisted(write),
            Err(e) => warn!(hub = self.name, "cannot persist DHCP leases: {e}"),
        }
    }

    /// The hub was removed or the server stops: every session's
    /// connections end, and workers stop reading its taps.
    pub fn close(&self) {
        self.closing.0.close();
        let core = self.lock();
        for session in core.sessions.values() {
            session.outbox.close();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closing.0.is_closed()
    }

    pub fn tap_queues(&self) -> &[TapQueue] {
        &self.taps
    }

    /// Resolves once the hub is closed.
    pub(crate) fn closed(&self) -> impl std::future::Future<Output = ()> + 'static {
        let closing = self.closing.1.clone();
        async move {
            let _ = closing.recv().await;
        }
    }

    /// Tap queues being read now, and how many the hub has.
    pub fn tap_readers(&self) -> (usize, usize) {
        (self.tap_readers.load(Ordering::Relaxed), self.taps.len())
    }

    pub(crate) fn tap_reader_started(&self) {
        self.tap_readers.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn tap_reader_stopped(&self) {
        self.tap_readers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Frames a session sent into the hub, switched on the calling worker:
    /// frames for the bridge are written to tap queue `queue` (the
    /// worker's own), frames for sessions are queued in their outboxes.
    pub fn switch_from_session(
        &self,
        port: PortId,
        frames: &Frames,
        queue: usize,
        buf: &mut SwitchBuffers,
    ) {
        self.counters.from_sessions.add_batch(frames);
        {
            let mut core = self.lock();
            core.decide(
                port,
                frames.iter().enumerate(),
                &mut buf.bridge_input,
                &mut buf.to_bridge,
                &mut buf.ports,
            );
            core.publish(&self.counters);
        }
        buf.ports.copy_deferred(|i| frames.get(i));
        if let Some(tap) = self.tap_for(queue) {
            let all = buf.bridge_input.len() == frames.len();
            let input = buf.bridge_input.iter().filter_map(|&i| frames.get(i));
            if all {
                write_to_tap(tap, frames.iter(), &mut buf.coalescer, &self.counters);
            } else if !buf.bridge_input.is_empty() {
                write_to_tap(tap, input, &mut buf.coalescer, &self.counters);
            }
            if !buf.to_bridge.is_empty() {
                write_to_tap(
                    tap,
                    buf.to_bridge.iter(),
                    &mut buf.coalescer,
                    &self.counters,
                );
            }
        }
        buf.bridge_input.clear();
        buf.to_bridge.clear();
        self.flush_sessions(buf);
    }

    /// Reads the tap made, switched on the calling worker: each read is a
    /// frame, or (offload on) a virtio-net header and a frame that may
    /// stand for many segments. `reads` are the filled buffers.
    pub fn switch_from_bridge<'r>(
        &self,
        reads: impl Iterator<Item = &'r mut [u8]>,
        queue: usize,
        buf: &mut SwitchBuffers,
    ) {
        let offload = self.taps.first().is_some_and(TapQueue::vnet_hdr);
        // The frames, before the lock: each read as it is, or (offload)
        // TSO super-frames cut into segments. The kernel built them; a
        // header we cannot honour costs that read only.
        let from_bridge = &mut buf.from_bridge;
        from_bridge.clear();
        let mut plain: Vec<&[u8]> = Vec::new();
        let mut reads_seen = 0u64;
        for read in reads {
            reads_seen += 1;
            if !offload {
                plain.push(read);
            } else if let Some((hdr, frame)) = VnetHdr::parse_mut(read)
                && let Err(e) = offload::segment(hdr, frame, &mut SegmentsInto(from_bridge))
            {
                debug!("tap read: {e}; frame dropped");
            }
        }
        self.counters
            .bridge_reads
            .fetch_add(reads_seen, Ordering::Relaxed);
        let frame_at = |i: usize| -> Option<&[u8]> {
            if offload {
                buf.from_bridge.get(i)
            } else {
                plain.get(i).copied()
            }
        };
        let count = if offload {
            buf.from_bridge.len()
        } else {
            plain.len()
        };
        let bytes: usize = (0..count).filter_map(frame_at).map(<[u8]>::len).sum();
        self.counters.from_bridge.add(count as u64, bytes as u64);
        {
            let mut core = self.lock();
            core.decide(
                PortId::BRIDGE,
                (0..count).filter_map(|i| frame_at(i).map(|f| (i, f))),
                &mut buf.bridge_input,
                &mut buf.to_bridge,
                &mut buf.ports,
            );
            core.publish(&self.counters);
        }
        if offload && buf.ports.all_to_one(count) {
            buf.ports.take_whole(&mut buf.from_bridge);
        } else {
            buf.ports.copy_deferred(frame_at);
        }
        let other_worker: usize = buf
            .ports
            .outgoing
            .iter()
            .filter(|p| p.worker != queue)
            .map(|p| p.frames.len())
            .sum();
        if other_worker > 0 {
            self.counters
                .to_sessions_other_worker
                .fetch_add(other_worker as u64, Ordering::Relaxed);
        }
        // DHCP answers to the bridge side are rare but possible.
        if !buf.to_bridge.is_empty() {
            if let Some(tap) = self.tap_for(queue) {
                write_to_tap(
                    tap,
                    buf.to_bridge.iter(),
                    &mut buf.coalescer,
                    &self.counters,
                );
            }
            buf.to_bridge.clear();
        }
        self.flush_sessions(buf);
    }

    fn tap_for(&self, queue: usize) -> Option<&TapQueue> {
        match self.taps.len() {
            0 => None,
            n => self.taps.get(queue % n),
        }
    }

    /// Hands each session its frames from this batch; a full outbox drops
    /// them (counted).
    fn flush_sessions(&self, buf: &mut SwitchBuffers) {
        let ports = &mut buf.ports;
        for Pending {
            outbox, mut frames, ..
        } in ports.outgoing.drain(..)
        {
            let (count, bytes) = (frames.len() as u64, frames.byte_len() as u64);
            match outbox.push(&mut frames) {
                Ok(0) => self.counters.to_sessions.add(count, bytes),
                Ok(dropped) => {
                    // Some lanes were full: count what went and what not.
                    self.counters.to_sessions.add(count - dropped as u64, 0);
                    self.counters
                        .session_frames_dropped
                        .fetch_add(dropped as u64, Ordering::Relaxed);
                }
                Err(PushError::Full) => {
                    self.counters
                        .session_frames_dropped
                        .fetch_add(count, Ordering::Relaxed);
                }
                Err(PushError::Closed) => {}
            }
            frames.clear();
            ports.spare.push(frames);
        }
        ports.by_port.clear();
    }
}

/// Writes `frames` to the tap with a plain write(2) per frame (or per
/// merged TCP run, with offload on), straight from the caller's buffers. A
/// tap write never waits (the kernel takes the frame or drops it), so
/// io_uring would only add a submission, a completion and a copy per
/// frame. The kernel's receive path for the frame runs inside the write,
/// on the calling worker: merging TCP runs into GSO frames is what keeps
/// that cheap. Counts the frames and the write(2) calls.
fn write_to_tap<'f>(
    tap: &TapQueue,
    frames: impl Iterator<Item = &'f [u8]>,
    coalescer: &mut Coalescer,
    counters: &HubCounters,
) {
    let done = offload::write_batch(
        frames,
        tap.vnet_hdr().then_some(coalescer),
        &mut |header, frame| tap.write_frame(header, frame),
    );
    if let Some(e) = &done.last_error {
        debug!(failed = done.failed, "tap write: {e}");
    }
    counters
        .tcp_acks_thinned
        .fetch_add(done.acks_thinned, Ordering::Relaxed);
    counters.to_bridge.add(done.frames, done.bytes);
    counters
        .bridge_writes
        .fetch_add(done.writes, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ethergate_config::SessionLimits;
    use ethergate_hub::{FrameDrop, Hub, HubOptions, MacAddr};

    use super::*;
    use crate::hub_switch::broadcast_frame;

    fn plane() -> HubPlane {
        let tap = MacAddr::local_from_seed(b"mikalab");
        let mut switch = HubSwitch::new(Hub::new("mikalab", HubOptions::default(), None), None);
        switch.pin_bridge_mac(tap);
        HubPlane::new("mikalab", switch, Vec::new(), Arc::default()).expect("no taps")
    }

    fn dropped(counters: &HubCounters, reason: FrameDrop) -> u64 {
        counters.frames_dropped[reason.index()].load(Ordering::Relaxed)
    }

    fn batch(frames: &[Vec<u8>]) -> Frames {
        let mut batch = Frames::new();
        for f in frames {
            batch.push(f);
        }
        batch
    }

    /// Issue 12's layer-2 test through the plane: a session that sends
    /// from 300 MACs gets 16 (its MaxMac); another session's frames from
    /// the first one's MAC and from the bridge's MAC are dropped, and the
    /// counters say why.
    #[test]
    fn the_plane_applies_each_sessions_policy() {
        let plane = plane();
        let tap = MacAddr::local_from_seed(b"mikalab");
        let limits = SessionLimits {
            max_macs_per_session: 16,
            ..SessionLimits::default()
        };
        let outboxes: Vec<Arc<Outbox>> = (0..2).map(|_| Arc::new(Outbox::new(1 << 20))).collect();
        let bob_lane = outboxes[1].join();
        for (i, user) in ["alice", "bob"].into_iter().enumerate() {
            assert!(plane.attach(
                PortId(i as u64 + 1),
                Arc::clone(&outboxes[i]),
                i,
                &SessionPolicy::new(user, limits),
            ));
        }
        let mut buffers = SwitchBuffers::default();
        let flood: Vec<Vec<u8>> = (0..300u16)
            .map(|n| {
                let [hi, lo] = n.to_be_bytes();
                broadcast_frame(MacAddr([0x02, 0x33, 0, 0, hi, lo]))
            })
            .collect();
        plane.switch_from_session(PortId(1), &batch(&flood), 0, &mut buffers);
        let spoof = [
            broadcast_frame(MacAddr([0x02, 0x33, 0, 0, 0, 0])),
            broadcast_frame(tap),
        ];
        plane.switch_from_session(PortId(2), &batch(&spoof), 1, &mut buffers);
        let counters = &plane.counters;
        assert_eq!(dropped(counters, FrameDrop::MacLimit), 300 - 16);
        assert_eq!(dropped(counters, FrameDrop::MacSpoof), 2);
        assert_eq!(
            counters.mac_entries.load(Ordering::Relaxed),
            1 + 16,
            "tap + 16"
        );
        let by_name: std::collections::HashMap<_, _> =
            counters.frames_dropped().into_iter().collect();
        assert_eq!(by_name["mac_limit"], 284);
        assert_eq!(by_name["lease_limit"], 0);
        // bob's session saw the 16 frames that were let through, nothing else.
        let mut got = Frames::new();
        outboxes[1].take(bob_lane, &mut got);
        assert_eq!(got.len(), 16);
        // A detached port gets nothing more, and its frames are refused.
        plane.detach(PortId(2));
        assert!(outboxes[1].is_closed());
        plane.switch_from_session(PortId(1), &batch(&flood[..1]), 0, &mut buffers);
        assert_eq!(plane.counters.to_sessions.get().0, 16);
    }

    /// A hub closed (removed by a reload) refuses new sessions, so none can
    /// attach after `close` closed the outboxes it knew of.
    #[test]
    fn a_closed_plane_refuses_new_ports() {
        let plane = plane();
        let policy = SessionPolicy::new("alice", SessionLimits::default());
        let before = Arc::new(Outbox::new(1 << 20));
        assert!(plane.attach(PortId(1), Arc::clone(&before), 0, &policy));
        plane.close();
        assert!(before.is_closed());
        let after = Arc::new(Outbox::new(1 << 20));
        assert!(!plane.attach(PortId(2), Arc::clone(&after), 0, &policy));
        assert!(!plane.has_port(PortId(2)));
    }

    /// A frame from `from` to `to`, numbered `seq` in its payload.
    fn unicast(from: MacAddr, to: MacAddr, seq: u32) -> Vec<u8> {
        let mut f = broadcast_frame(from);
        f[..6].copy_from_slice(&to.0);
        f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental
        f[14..18].copy_from_slice(&seq.to_be_bytes());
        f
    }

    fn session_mac(port: u64) -> MacAddr {
        MacAddr([0x02, 0x77, 0, 0, 0, port as u8])
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Worker threads switch their sessions' batches through one hub
        /// at once (learning, lookups, broadcasts) while a housekeeping
        /// thread ages and publishes: every unicast frame reaches its
        /// destination exactly once and in its sender's order, every
        /// broadcast reaches every other session exactly once, nothing
        /// comes back to its sender, and the counters add up.
        #[test]
        fn concurrent_workers_switch_every_frame_once_in_order(
            workers in 2usize..5,
            sessions_per_worker in 1usize..4,
            plan in proptest::collection::vec((0usize..64, 1usize..24, proptest::bool::ANY), 4..40),
        ) {
            let plane = Arc::new(plane());
            let sessions = workers * sessions_per_worker;
            let outboxes: Vec<(Arc<Outbox>, crate::outbox::LaneId)> = (0..sessions)
                .map(|_| {
                    let outbox = Arc::new(Outbox::new(64 << 20));
                    let lane = outbox.join();
                    (outbox, lane)
                })
                .collect();
            for (i, (outbox, _)) in outboxes.iter().enumerate() {
                assert!(plane.attach(
                    PortId(i as u64 + 1),
                    Arc::clone(outbox),
                    i % workers,
                    &SessionPolicy::new(&format!("user{i}"), SessionLimits::default()),
                ));
            }
            // Every session announces its MAC first (learned before any
            // unicast is addressed to it).
            let mut buffers = SwitchBuffers::default();
            for i in 0..sessions {
                let port = i as u64 + 1;
                plane.switch_from_session(PortId(port), &batch(&[broadcast_frame(session_mac(port))]), 0, &mut buffers);
            }
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let keeper = {
                let (plane, stop) = (Arc::clone(&plane), Arc::clone(&stop));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        plane.housekeeping();
                        std::thread::yield_now();
                    }
                })
            };
            let plan = Arc::new(plan);
            let threads: Vec<_> = (0..workers)
                .map(|w| {
                    let (plane, plan) = (Arc::clone(&plane), Arc::clone(&plan));
                    std::thread::spawn(move || {
                        let mut buffers = SwitchBuffers::default();
                        // (sender port, destination port or None for broadcast, seq)
                        let mut sent = Vec::new();
                        let mut seq = 0u32;
                        for (step, &(pick, len, broadcast)) in plan.iter().enumerate() {
                            let local = w * sessions_per_worker + (step + pick) % sessions_per_worker;
                            let from = local as u64 + 1;
                            let mut frames = Vec::with_capacity(len);
                            for k in 0..len {
                                seq += 1;
                                let to = ((pick + k) % (sessions - 1) + local + 1) % sessions;
                                let to_port = to as u64 + 1;
                                if broadcast && k == 0 {
                                    let mut f = unicast(session_mac(from), MacAddr([0xff; 6]), seq);
                                    f[..6].copy_from_slice(&[0xff; 6]);
                                    frames.push(f);
                                    sent.push((from, None, seq));
                                } else {
                                    frames.push(unicast(session_mac(from), session_mac(to_port), seq));
                                    sent.push((from, Some(to_port), seq));
                                }
                            }
                            plane.switch_from_session(PortId(from), &batch(&frames), w, &mut buffers);
                        }
                        sent
                    })
                })
                .collect();
            let mut sent = Vec::new();
            for t in threads {
                sent.extend(t.join().expect("worker thread"));
            }
            stop.store(true, Ordering::Relaxed);
            keeper.join().expect("housekeeping thread");

            // What each session should have got, by (sender, seq).
            let mut expected: BTreeMap<u64, Vec<(u64, u32)>> = BTreeMap::new();
            for &(from, to, seq) in &sent {
                match to {
                    Some(to) => expected.entry(to).or_default().push((from, seq)),
                    None => {
                        for port in 1..=sessions as u64 {
                            if port != from {
                                expected.entry(port).or_default().push((from, seq));
                            }
                        }
                    }
                }
            }
            for (i, (outbox, lane)) in outboxes.iter().enumerate() {
                let port = i as u64 + 1;
                let mut got = Frames::new();
                outbox.take(*lane, &mut got);
                // Skip the other sessions' MAC announcements (broadcasts
                // with no sequence number).
                let mut received: Vec<(u64, u32)> = got
                    .iter()
                    .filter(|f| f[12..14] == [0x88, 0xb5])
                    .map(|f| {
                        let src = u64::from(f[11]);
                        proptest::prop_assert_ne!(src, port, "hairpin");
                        let seq = u32::from_be_bytes([f[14], f[15], f[16], f[17]]);
                        Ok((src, seq))
                    })
                    .collect::<Result<_, _>>()?;
                // Each sender's frames arrive in the order it sent them.
                let mut last: BTreeMap<u64, u32> = BTreeMap::new();
                for &(src, seq) in &received {
                    let prev = last.insert(src, seq);
                    proptest::prop_assert!(prev.is_none_or(|p| p < seq), "reordered");
                }
                received.sort_unstable();
                let mut want = expected.remove(&port).unwrap_or_default();
                want.sort_unstable();
                proptest::prop_assert_eq!(received, want, "port {}", port);
            }
            let (in_frames, _) = plane.counters.from_sessions.get();
            proptest::prop_assert_eq!(in_frames, (sent.len() + sessions) as u64);
            proptest::prop_assert_eq!(plane.counters.session_frames_dropped.load(Ordering::Relaxed), 0);
            proptest::prop_assert_eq!(
                plane.counters.frames_dropped().iter().map(|(_, n)| n).sum::<u64>(),
                0
            );
        }
    }
}
