//! One TCP connection in the data phase (spec §7): the block decoder and
//! encoder plus the keep-alive and silence timers of §7.2/§7.4.
//! Invariants: the first keep-alive is due the moment the tunnel starts;
//! after any send (data or keep-alive) the next one is due a uniform random
//! time in `[timeout/5, timeout/2)` later; receiving nothing at all for
//! `timeout` ms makes the tunnel dead ([`TunnelError::Timeout`]).

use crate::data::{DataDecoder, DataEncoder, DataError, DecodeReport, FrameSink};
use crate::rng::RandomSource;
use crate::time::Timestamp;

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    #[error(transparent)]
    Data(#[from] DataError),
    /// Nothing received for `timeout` ms (ERR_SESSION_TIMEOUT semantics).
    #[error("peer silent for {0} ms")]
    Timeout(u64),
}

/// `GenNextKeepAliveSpan`: uniform in `[timeout/5, timeout/2)` ms.
pub fn next_keepalive_span(timeout_ms: u32, rng: &mut dyn RandomSource) -> u64 {
    let lo = timeout_ms / 5;
    let hi = timeout_ms / 2;
    u64::from(rng.range_u32(lo, hi.max(lo + 1)))
}

/// Keep-alive schedule and liveness for one connection.
#[derive(Debug, Clone)]
pub struct KeepAliveTimer {
    timeout_ms: u32,
    next_send: Timestamp,
    last_rx: Timestamp,
}

impl KeepAliveTimer {
    pub fn new(now: Timestamp, timeout_ms: u32) -> Self {
        KeepAliveTimer {
            timeout_ms,
            // NextKeepAliveTime starts at 0: the first one goes out at once.
            next_send: now,
            last_rx: now,
        }
    }
    pub fn timeout_ms(&self) -> u32 {
        self.timeout_ms
    }
    pub fn on_receive(&mut self, now: Timestamp) {
        self.last_rx = self.last_rx.max(now);
    }
    /// Any send postpones the next keep-alive (§7.2).
    pub fn on_send(&mut self, now: Timestamp, rng: &mut dyn RandomSource) {
        self.next_send = now.plus_ms(next_keepalive_span(self.timeout_ms, rng));
    }
    pub fn keepalive_due(&self, now: Timestamp) -> bool {
        now >= self.next_send
    }
    pub fn dead_at(&self) -> Timestamp {
        self.last_rx.plus_ms(u64::from(self.timeout_ms))
    }
    pub fn is_dead(&self, now: Timestamp) -> bool {
        now >= self.dead_at()
    }
    /// Earliest instant something must happen.
    pub fn deadline(&self) -> Timestamp {
        self.next_send.min(self.dead_at())
    }
}

/// Cumulative receive counters of one tunnel, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunnelStats {
    pub frames_received: u64,
    /// Frames over 1600 bytes or failing decompression (§7.1, §7.5).
    pub frames_dropped: u64,
    pub keepalives_received: u64,
    pub bytes_received: u64,
}

/// Data-phase state for one TCP connection, used by both roles.
#[derive(Debug)]
pub struct Tunnel {
    decoder: DataDecoder,
    encoder: DataEncoder,
    timer: KeepAliveTimer,
    stats: TunnelStats,
}

impl Tunnel {
    pub fn new(now: Timestamp, timeout_ms: u32, use_compress: bool) -> Self {
        Tunnel {
            decoder: DataDecoder::new(use_compress),
            encoder: DataEncoder::new(use_compress),
            timer: KeepAliveTimer::new(now, timeout_ms),
            stats: TunnelStats::default(),
        }
    }

    pub fn timer(&self) -> &KeepAliveTimer {
        &self.timer
    }

    pub fn stats(&self) -> TunnelStats {
        self.stats
    }

    /// Feed received stream bytes; any byte counts as life (§7.4).
    pub fn handle_input<S: FrameSink + ?Sized>(
        &mut self,
        now: Timestamp,
        input: &[u8],
        sink: &mut S,
    ) -> Result<DecodeReport, TunnelError> {
        if !input.is_empty() {
            self.timer.on_receive(now);
        }
        self.stats.bytes_received += input.len() as u64;
        let rep = self.decoder.decode(input, sink)?;
        self.stats.frames_received += u64::from(rep.frames);
        self.stats.frames_dropped += u64::from(rep.dropped);
        self.stats.keepalives_received += u64::from(rep.keepalives);
        Ok(rep)
    }

    /// Encode `frames` as one batch into `out`; postpones the keep-alive
    /// when anything was written.
    pub fn send_frames<'a, I>(
        &mut self,
        now: Timestamp,
        out: &mut Vec<u8>,
        frames: I,
        rng: &mut dyn RandomSource,
    ) -> u32
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let n = self.encoder.encode_batch(out, frames);
        if n > 0 {
            self.timer.on_send(now, rng);
        }
        n
    }

    /// Send a keep-alive if one is due and check liveness.
    pub fn handle_timeout(
        &mut self,
        now: Timestamp,
        out: &mut Vec<u8>,
        rng: &mut dyn RandomSource,
    ) -> Result<(), TunnelError> {
        if self.timer.is_dead(now) {
            return Err(TunnelError::Timeout(now.since(self.timer.last_rx)));
        }
        if self.timer.keepalive_due(now) {
            self.encoder.encode_keepalive(out, rng);
            self.timer.on_send(now, rng);
        }
        Ok(())
    }

    /// When [`Tunnel::handle_timeout`] next needs calling.
    pub fn poll_timeout(&self) -> Timestamp {
        self.timer.deadline()
    }
}
