//! What the hub has for one session: a coalescing mailbox between the
//! workers that switch frames for it (producers) and the session's
//! connections (consumers, on the session's worker).
//!
//! Why not a channel of batches: the hub produces many small batches (one
//! per tap read), and a bounded channel of them overflows by count long
//! before the bytes matter, dropping frames while the writer is only a few
//! microseconds behind. Here every push lands in pending [`Frames`], so a
//! writer that wakes late takes everything at once and writes it as one
//! protocol batch. The bound is in bytes, which is what a queue really costs
//! (memory and latency), and an idle session holds no preallocated ring.
//!
//! **One lane per connection.** A session may have up to 32 TCP
//! connections (`/MAXTCP`); if any of them took any frame, one inner TCP
//! flow's segments would travel over several connections and arrive out of
//! order, which the inner TCP takes for loss. So each connection
//! [`Outbox::join`]s with a lane of its own, and every frame goes to the
//! lane its flow hashes to ([`flow_hash`]): one flow, one connection, in
//! order. A session with one connection keeps the zero-copy path (the
//! hub's batch is swapped in whole).
//!
//! Invariant: a frame is appended to exactly one lane or counted as
//! dropped; once closed, pushes are refused and waiters return as soon as
//! their pending frames are taken. Frames pushed while no connection is
//! joined (a session being resumed) wait in the first lane to join.

use std::{
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use ethergate_proto::data::Frames;

pub struct Outbox {
    state: Mutex<State>,
    limit_bytes: usize,
}

/// A connection's place in the outbox, from [`Outbox::join`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneId(u64);

struct Lane {
    id: LaneId,
    frames: Frames,
    /// Capacity 1: "something is pending" needs no more than one token.
    wake_tx: async_channel::Sender<()>,
    wake_rx: async_channel::Receiver<()>,
    /// When the oldest pending frame was queued (the lane was last empty).
    oldest: Option<Instant>,
    codel: Codel,
}

impl Lane {
    fn new(id: LaneId, frames: Frames) -> Self {
        let (wake_tx, wake_rx) = async_channel::bounded(1);
        let oldest = (!frames.is_empty()).then(Instant::now);
        if oldest.is_some() {
            let _ = wake_tx.try_send(());
        }
        Self {
            id,
            frames,
            wake_tx,
            wake_rx,
            oldest,
            codel: Codel::default(),
        }
    }

    /// Queues `frame` unless the lane's delay says to drop it (true).
    fn offer(&mut self, frame: &[u8], now: Instant) -> bool {
        let sojourn = self.oldest.map_or(Duration::ZERO, |t| now - t);
        if self.codel.should_drop(sojourn, now) {
            return true;
        }
        self.oldest.get_or_insert(now);
        self.frames.push(frame);
        false
    }
}

/// How long the oldest frame of a lane may wait before the lane starts
/// dropping, and over what interval (CoDel's defaults, RFC 8289): a lane
/// whose writer cannot keep up drops one frame, then a few more at a
/// growing rate, instead of everything past a byte limit — one loss is
/// all the inner TCP needs to slow down, and a burst of losses costs it
/// far more than the queue saved.
const TARGET: Duration = Duration::from_millis(5);
const INTERVAL: Duration = Duration::from_millis(100);

/// CoDel's control law, applied as frames arrive (the lane's sojourn is
/// the age of its oldest pending frame).
#[derive(Default)]
struct Codel {
    /// When the delay has been above target for a whole interval.
    first_above: Option<Instant>,
    dropping: bool,
    drop_next: Option<Instant>,
    count: u32,
}

impl Codel {
    fn should_drop(&mut self, sojourn: Duration, now: Instant) -> bool {
        if sojourn < TARGET {
            self.first_above = None;
            self.dropping = false;
            return false;
        }
        let Some(first_above) = self.first_above else {
            self.first_above = Some(now + INTERVAL);
            return false;
        };
        if !self.dropping {
            if now < first_above {
                return false;
            }
            self.dropping = true;
            // Resume near the last rate if dropping stopped only recently.
            self.count = if self.count > 2 { self.count - 2 } else { 1 };
            self.drop_next = Some(now + control_law(self.count));
            return true;
        }
        match self.drop_next {
            Some(next) if now >= next => {
                self.count = self.count.saturating_add(1);
                self.drop_next = Some(next + control_law(self.count));
                true
            }
            _ => false,
        }
    }
}

fn control_law(count: u32) -> Duration {
    INTERVAL.div_f64(f64::from(count.max(1)).sqrt())
}

#[derive(Default)]
struct State {
    lanes: Vec<Lane>,
    /// Frames pushed while no connection was joined.
    parked: Frames,
    closed: bool,
    next_lane: u64,
    /// Frames dropped because their lane was full.
    dropped_frames: u64,
}

impl State {
    fn lane(&self, id: LaneId) -> Option<&Lane> {
        self.lanes.iter().find(|l| l.id == id)
    }

    fn lane_mut(&mut self, id: LaneId) -> Option<&mut Lane> {
        self.lanes.iter_mut().find(|l| l.id == id)
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// Over the byte limit: every frame of the batch was dropped, as
    /// SoftEther drops rather than stalls (§7.1).
    Full,
    /// The session is gone.
    Closed,
}

impl Outbox {
    pub fn new(limit_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            limit_bytes,
        }
    }

    /// A connection of the session starts taking frames. Flows are spread
    /// over the lanes again (a flow may move once, as connections come and
    /// go); frames pushed while no lane existed go to this one.
    pub fn join(&self) -> LaneId {
        let mut state = self.lock();
        let id = LaneId(state.next_lane);
        state.next_lane += 1;
        let frames = std::mem::take(&mut state.parked);
        let lane = Lane::new(id, frames);
        if state.closed {
            lane.wake_tx.close();
        }
        state.lanes.push(lane);
        id
    }

    /// A connection ended: what it had not taken yet goes to the lane that
    /// now carries the most flows of its kind (the first), or is parked
    /// for the next connection to join.
    pub fn leave(&self, lane: LaneId) {
        let mut state = self.lock();
        let Some(at) = state.lanes.iter().position(|l| l.id == lane) else {
            return;
        };
        let gone = state.lanes.remove(at);
        gone.wake_tx.close();
        if gone.frames.is_empty() {
            return;
        }
        match state.lanes.first_mut() {
            Some(heir) => {
                heir.frames.append(&gone.frames);
                heir.oldest = match (heir.oldest, gone.oldest) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let _ = heir.wake_tx.try_send(());
            }
            None => state.parked.append(&gone.frames),
        }
    }

    /// Hub side: queues `batch`, each frame on its flow's lane (taking the
    /// batch's buffers whole when there is one lane and nothing pending, so
    /// the common case copies nothing), and wakes those lanes' writers.
    /// Returns how many frames were dropped for want of room; `Err(Full)`
    /// when that was all of them.
    pub fn push(&self, batch: &mut Frames) -> Result<usize, PushError> {
        let mut state = self.lock();
        if state.closed {
            return Err(PushError::Closed);
        }
        let total = batch.len();
        let dropped = match state.lanes.len() {
            0 => {
                let parked = &mut state.parked;
                if parked.byte_len() + batch.byte_len() > self.limit_bytes {
                    total
                } else {
                    parked.append(batch);
                    0
                }
            }
            1 if state.lanes[0].frames.is_empty() => {
                // The common case: one connection, caught up. Take the
                // batch's buffers whole.
                let lane = &mut state.lanes[0];
                std::mem::swap(&mut lane.frames, batch);
                lane.oldest = Some(Instant::now());
                lane.codel.should_drop(Duration::ZERO, Instant::now());
                let _ = lane.wake_tx.try_send(());
                0
            }
            n => {
                // The lanes share the session's byte budget (a hard bound
                // on memory); within it, each lane's delay decides.
                let now = Instant::now();
                let mut queued: usize = state.lanes.iter().map(|l| l.frames.byte_len()).sum();
                let mut touched = 0u64;
                let mut dropped = 0;
                for frame in batch.iter() {
                    let at = (flow_hash(frame) % n as u64) as usize;
                    if queued + frame.len() > self.limit_bytes || state.lanes[at].offer(frame, now)
                    {
                        dropped += 1;
                        continue;
                    }
                    queued += frame.len();
                    touched |= 1 << (at % 64);
                }
                for (at, lane) in state.lanes.iter().enumerate() {
                    if touched & (1 << (at % 64)) != 0 {
                        let _ = lane.wake_tx.try_send(());
                    }
                }
                dropped
            }
        };
        state.dropped_frames += dropped as u64;
        drop(state);
        batch.clear();
        if dropped == total && total > 0 {
            Err(PushError::Full)
        } else {
            Ok(dropped)
        }
    }

    /// Connection side: waits until frames are pending on `lane` or the
    /// outbox is closed. Returns false once closed and drained (or when
    /// the lane is gone).
    pub async fn wait(&self, lane: LaneId) -> bool {
        loop {
            let wake = {
                let state = self.lock();
                let Some(l) = state.lane(lane) else {
                    return false;
                };
                if !l.frames.is_empty() {
                    return true;
                }
                if state.closed {
                    return false;
                }
                l.wake_rx.clone()
            };
            if wake.recv().await.is_err() {
                // Closed: one last look for frames pushed before the close.
                let state = self.lock();
                return state.lane(lane).is_some_and(|l| !l.frames.is_empty());
            }
        }
    }

    /// Moves everything pending on `lane` into `into` (cleared first),
    /// leaving `into`'s old buffers behind for the next push to reuse.
    pub fn take(&self, lane: LaneId, into: &mut Frames) {
        into.clear();
        if let Some(l) = self.lock().lane_mut(lane) {
            std::mem::swap(&mut l.frames, into);
            l.oldest = None;
        }
    }

    /// The session ended: refuse pushes and release every waiter.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        for lane in &state.lanes {
            lane.wake_tx.close();
        }
    }

    #[cfg(test)]
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    #[cfg(test)]
    /// Frames dropped so far because their lane was full.
    pub fn dropped_frames(&self) -> u64 {
        self.lock().dropped_frames
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section is a swap/append that cannot leave the
        // frames half-written, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A hash of the frame's flow: IPv4/IPv6 addresses, protocol and (TCP,
/// UDP, SCTP) ports, after at most one VLAN tag; for anything else, the
/// destination MAC. Frames of one flow always hash alike; the hash only
/// needs to spread flows, not resist anyone (a client can only steer its
/// own session's frames).
pub fn flow_hash(frame: &[u8]) -> u64 {
    let mut h = Fnv::default();
    let mut at = 12;
    let mut ethertype = be16(frame, at);
    if ethertype == Some(0x8100) || ethertype == Some(0x88a8) {
        at += 4;
        ethertype = be16(frame, at);
    }
    let l3 = at + 2;
    match ethertype {
        Some(0x0800) => {
            let Some(&vihl) = frame.get(l3) else {
                return h.finish();
            };
            let ihl = usize::from(vihl & 0x0f) * 4;
            let proto = frame.get(l3 + 9).copied().unwrap_or(0);
            h.write(frame.get(l3 + 12..l3 + 20).unwrap_or(&[]));
            h.write(&[proto]);
            // Later fragments carry no ports: hash them without, and
            // the first fragment too, so a datagram stays on one lane.
            let fragmented = be16(frame, l3 + 6).is_some_and(|f| f & 0x3fff != 0);
            if !fragmented && has_ports(proto) {
                h.write(frame.get(l3 + ihl..l3 + ihl + 4).unwrap_or(&[]));
            }
        }
        Some(0x86dd) => {
            let proto = frame.get(l3 + 6).copied().unwrap_or(0);
            h.write(frame.get(l3 + 8..l3 + 40).unwrap_or(&[]));
            h.write(&[proto]);
            if has_ports(proto) {
                h.write(frame.get(l3 + 40..l3 + 44).unwrap_or(&[]));
            }
        }
        _ => h.write(frame.get(..6).unwrap_or(frame)),
    }
    h.finish()
}

fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 132)
}

fn be16(frame: &[u8], at: usize) -> Option<u16> {
    frame
        .get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
}

/// FNV-1a, 64-bit: a few bytes per frame, no dependency.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        // Fold the high bits in: the lane is the hash modulo a small n.
        self.0 ^ (self.0 >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(frames: &[&[u8]]) -> Frames {
        let mut b = Frames::new();
        for f in frames {
            b.push(f);
        }
        b
    }

    /// An Ethernet + IPv4 + TCP header for the flow `sport → dport`.
    fn tcp_frame(sport: u16, dport: u16, seq: u32) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[14 + 9] = 6;
        f[14 + 12..14 + 16].copy_from_slice(&[10, 0, 1, 26]);
        f[14 + 16..14 + 20].copy_from_slice(&[192, 168, 30, 10]);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f[38..42].copy_from_slice(&seq.to_be_bytes());
        f
    }

    #[test]
    fn pushes_coalesce_until_taken() {
        let outbox = Outbox::new(1000);
        let lane = outbox.join();
        outbox.push(&mut batch(&[b"one"])).expect("push");
        outbox.push(&mut batch(&[b"two", b"three"])).expect("push");
        let mut got = Frames::new();
        outbox.take(lane, &mut got);
        let frames: Vec<&[u8]> = got.iter().collect();
        assert_eq!(frames, vec![&b"one"[..], b"two", b"three"]);
        outbox.take(lane, &mut got);
        assert!(got.is_empty());
    }

    #[test]
    fn frames_past_the_byte_limit_are_dropped_and_counted() {
        let outbox = Outbox::new(10);
        let lane = outbox.join();
        outbox.push(&mut batch(&[b"12345678"])).expect("first fits");
        assert_eq!(outbox.push(&mut batch(&[b"ab", b"cd"])), Ok(1), "one fits");
        assert_eq!(outbox.push(&mut batch(&[b"ef"])), Err(PushError::Full));
        assert_eq!(outbox.dropped_frames(), 2);
        let mut got = Frames::new();
        outbox.take(lane, &mut got);
        assert_eq!(got.len(), 2);
        // Once drained there is room again.
        outbox
            .push(&mut batch(&[b"ab", b"cd"]))
            .expect("fits after the take");
    }

    #[test]
    fn a_lane_that_stays_behind_drops_a_little_not_everything() {
        // CoDel: nothing is dropped until the oldest frame has waited more
        // than 5 ms for a whole 100 ms; then one frame, then a few more at
        // a slowly growing rate.
        let mut codel = Codel::default();
        let start = Instant::now();
        let behind = Duration::from_millis(20);
        let mut drops = 0;
        for ms in 0..1000u64 {
            if codel.should_drop(behind, start + Duration::from_millis(ms)) {
                drops += 1;
            }
        }
        assert!((5..=30).contains(&drops), "{drops} drops in a second");
        // Caught up: dropping stops at once.
        assert!(!codel.should_drop(Duration::ZERO, start + Duration::from_secs(1)));
        assert!(!codel.should_drop(behind, start + Duration::from_millis(1001)));
    }

    #[test]
    fn each_flow_stays_on_one_lane_in_order() {
        let outbox = Outbox::new(1 << 20);
        let lanes: Vec<LaneId> = (0..8).map(|_| outbox.join()).collect();
        for round in 0..50u32 {
            let frames: Vec<Vec<u8>> = (0..16u16)
                .map(|f| tcp_frame(40_000 + f, 80, round))
                .collect();
            let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            assert_eq!(outbox.push(&mut batch(&refs)), Ok(0));
        }
        let mut lane_of_flow = std::collections::HashMap::new();
        let mut used = std::collections::HashSet::new();
        for (i, lane) in lanes.iter().enumerate() {
            let mut got = Frames::new();
            outbox.take(*lane, &mut got);
            let mut last_seq = std::collections::HashMap::new();
            for frame in got.iter() {
                let sport = u16::from_be_bytes([frame[34], frame[35]]);
                let seq = u32::from_be_bytes([frame[38], frame[39], frame[40], frame[41]]);
                assert_eq!(
                    *lane_of_flow.entry(sport).or_insert(i),
                    i,
                    "one lane per flow"
                );
                let prev = last_seq.insert(sport, seq);
                assert!(prev.is_none_or(|p| p < seq), "in order within the flow");
                used.insert(i);
            }
        }
        assert_eq!(lane_of_flow.len(), 16);
        assert!(used.len() >= 4, "16 flows spread over the lanes: {used:?}");
    }

    #[test]
    fn frames_without_a_connection_wait_for_the_next_one() {
        let outbox = Outbox::new(1000);
        let first = outbox.join();
        let second = outbox.join();
        let frames: Vec<Vec<u8>> = (0..8u16).map(|f| tcp_frame(1000 + f, 80, 1)).collect();
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        outbox.push(&mut batch(&refs)).expect("push");
        outbox.leave(first);
        outbox.leave(second);
        // A resumed session's new connection gets them all.
        let third = outbox.join();
        let mut got = Frames::new();
        outbox.take(third, &mut got);
        assert_eq!(got.len(), 8);
    }

    #[test]
    fn hashes_ignore_everything_but_the_flow() {
        let a = tcp_frame(1234, 80, 1);
        let mut b = tcp_frame(1234, 80, 99);
        b[14 + 8] = 17; // TTL differs too
        assert_eq!(flow_hash(&a), flow_hash(&b));
        assert_ne!(flow_hash(&a), flow_hash(&tcp_frame(1235, 80, 1)));
        // Truncated and odd frames hash without panicking.
        for len in 0..a.len() {
            let _ = flow_hash(&a[..len]);
        }
    }

    #[test]
    fn close_releases_waiters_after_the_last_frames() {
        let outbox = Outbox::new(100);
        let lane = outbox.join();
        outbox.push(&mut batch(&[b"last"])).expect("push");
        outbox.close();
        assert_eq!(outbox.push(&mut batch(&[b"late"])), Err(PushError::Closed));
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            assert!(
                outbox.wait(lane).await,
                "pending frames are still delivered"
            );
            let mut got = Frames::new();
            outbox.take(lane, &mut got);
            assert_eq!(got.len(), 1);
            assert!(!outbox.wait(lane).await, "closed and drained");
        });
    }

    #[test]
    fn a_waiter_wakes_for_a_push_from_another_thread() {
        let outbox = std::sync::Arc::new(Outbox::new(100));
        let lane = outbox.join();
        let producer = {
            let outbox = std::sync::Arc::clone(&outbox);
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                outbox.push(&mut batch(&[b"hello"])).expect("push");
            })
        };
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            assert!(outbox.wait(lane).await);
        });
        producer.join().expect("producer");
    }

    proptest::proptest! {
        /// Any mix of flows and lane counts: every frame is delivered once
        /// or counted as dropped, and each flow's frames keep their order.
        #[test]
        fn frames_are_delivered_once_in_flow_order(
            lanes in 1usize..6,
            flows in proptest::collection::vec(0u16..12, 1..400),
        ) {
            let outbox = Outbox::new(64 * 1024);
            let ids: Vec<LaneId> = (0..lanes).map(|_| outbox.join()).collect();
            let frames: Vec<Vec<u8>> = flows
                .iter()
                .enumerate()
                .map(|(seq, f)| tcp_frame(2000 + f, 80, seq as u32))
                .collect();
            let mut pushed = 0;
            for chunk in frames.chunks(7) {
                let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
                match outbox.push(&mut batch(&refs)) {
                    Ok(_) | Err(PushError::Full) => pushed += chunk.len(),
                    Err(PushError::Closed) => unreachable!(),
                }
            }
            let mut delivered = 0;
            for id in ids {
                let mut got = Frames::new();
                outbox.take(id, &mut got);
                let mut last = std::collections::HashMap::new();
                for frame in got.iter() {
                    let sport = u16::from_be_bytes([frame[34], frame[35]]);
                    let seq = u32::from_be_bytes([frame[38], frame[39], frame[40], frame[41]]);
                    let prev = last.insert(sport, seq);
                    proptest::prop_assert!(prev.is_none_or(|p| p < seq));
                    delivered += 1;
                }
            }
            proptest::prop_assert_eq!(delivered as u64 + outbox.dropped_frames(), pushed as u64);
        }
    }
}
