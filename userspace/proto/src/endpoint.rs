//! What a client connection and a server connection do alike: hold the
//! bytes waiting to be sent and the events waiting to be read, enforce the
//! handshake deadline, run the tunnel once the handshake is done (frames
//! in and out, keep-alives, its timeout), and close exactly once. Each role
//! keeps only its handshake steps ([`Phase::Handshake`]) and the messages
//! it sends.
//!
//! Invariants: a closed endpoint ignores input and sends nothing more; a
//! `Closed` event is queued once, by [`Endpoint::close`]; bytes that
//! arrived behind the handshake are handed to the tunnel before any later
//! input.

use std::collections::VecDeque;

use crate::close::CloseReason;
use crate::data::FrameSink;
use crate::http::{self, HttpError};
use crate::rng::RandomSource;
use crate::time::Timestamp;
use crate::tunnel::{Tunnel, TunnelStats};

/// The public methods both roles' connection types have, each handing the
/// call to the shared [`Endpoint`] in their `core` field. `$event` is the
/// role's event type. Used inside an `impl` block.
macro_rules! endpoint_methods {
    ($event:ty) => {
        pub fn is_established(&self) -> bool {
            self.core.is_established()
        }

        pub fn is_closed(&self) -> bool {
            self.core.is_closed()
        }

        /// Receive counters of the data phase (`None` before or after it).
        pub fn tunnel_stats(&self) -> Option<crate::tunnel::TunnelStats> {
            self.core.tunnel_stats()
        }

        /// Bytes waiting to be written to the TLS stream.
        pub fn transmit(&self) -> &[u8] {
            self.core.transmit()
        }

        /// Mark the first `n` transmit bytes as written.
        pub fn consume_transmit(&mut self, n: usize) {
            self.core.consume_transmit(n);
        }

        /// Move all pending transmit bytes to the end of `dst`.
        pub fn drain_transmit(&mut self, dst: &mut Vec<u8>) {
            self.core.drain_transmit(dst);
        }

        pub fn poll_event(&mut self) -> Option<$event> {
            self.core.poll_event()
        }

        /// Next instant `handle_timeout` must run, if any.
        pub fn poll_timeout(&self) -> Option<crate::time::Timestamp> {
            self.core.poll_timeout()
        }

        pub fn handle_timeout(&mut self, now: crate::time::Timestamp) {
            self.core.handle_timeout(now);
        }

        /// Close locally (e.g. the socket hit EOF). Emits `Closed(Local)`
        /// once.
        pub fn close_local(&mut self) {
            self.core.close(crate::close::CloseReason::Local);
        }

        /// Feed bytes received from the peer. In the data phase, frames go
        /// to `frames`; before it, the role's handshake takes them and its
        /// progress shows up as events.
        pub fn handle_input<S: crate::data::FrameSink + ?Sized>(
            &mut self,
            now: crate::time::Timestamp,
            data: &[u8],
            frames: &mut S,
        ) {
            if !self.core.take_input(now, data, frames) {
                return;
            }
            self.process_handshake(now);
            if self.is_established() && !self.core.inbuf.is_empty() {
                // Bytes pipelined behind the handshake belong to the tunnel.
                self.handle_input(now, &[], frames);
            }
        }

        /// Queue `frames` as one batch (data phase only); returns how many
        /// were queued.
        pub fn send_frames<'a, I>(&mut self, now: crate::time::Timestamp, frames: I) -> u32
        where
            I: IntoIterator<Item = &'a [u8]>,
        {
            self.core.send_frames(now, frames)
        }
    };
}
pub(crate) use endpoint_methods;

/// Where a connection is: in its role's handshake step `H`, in the data
/// phase, or done.
#[derive(Debug)]
pub(crate) enum Phase<H> {
    Handshake(H),
    Tunnel(Tunnel),
    Closed,
}

/// An event type that can report the end of the connection.
pub(crate) trait ClosedEvent {
    fn closed(reason: CloseReason) -> Self;
}

pub(crate) struct Endpoint<R, H, E> {
    pub(crate) rng: R,
    pub(crate) phase: Phase<H>,
    started: Timestamp,
    handshake_timeout_ms: u64,
    /// Received bytes the handshake has not consumed yet.
    pub(crate) inbuf: Vec<u8>,
    /// Bytes to be written to the TLS stream.
    pub(crate) out: Vec<u8>,
    events: VecDeque<E>,
}

impl<R: RandomSource, H, E: ClosedEvent> Endpoint<R, H, E> {
    pub(crate) fn new(rng: R, first_step: H, now: Timestamp, handshake_timeout_ms: u64) -> Self {
        Self {
            rng,
            phase: Phase::Handshake(first_step),
            started: now,
            handshake_timeout_ms,
            inbuf: Vec::new(),
            out: Vec::new(),
            events: VecDeque::new(),
        }
    }

    pub(crate) fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Tunnel(_))
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The current handshake step; `None` in the tunnel or once closed.
    pub(crate) fn step(&self) -> Option<&H> {
        match &self.phase {
            Phase::Handshake(step) => Some(step),
            _ => None,
        }
    }

    pub(crate) fn set_step(&mut self, step: H) {
        if !self.is_closed() {
            self.phase = Phase::Handshake(step);
        }
    }

    /// Takes the next whole handshake message (a request or a response, as
    /// `parse` reads them) off the received bytes; `None` until one is
    /// complete.
    pub(crate) fn next_message(
        &mut self,
        parse: fn(&[u8], usize) -> http::Parsed,
        max_body: usize,
    ) -> Result<Option<http::Message>, HttpError> {
        let Some((message, used)) = parse(&self.inbuf, max_body)? else {
            return Ok(None);
        };
        self.inbuf.drain(..used);
        Ok(Some(message))
    }

    pub(crate) fn tunnel_stats(&self) -> Option<TunnelStats> {
        match &self.phase {
            Phase::Tunnel(t) => Some(t.stats()),
            _ => None,
        }
    }

    pub(crate) fn transmit(&self) -> &[u8] {
        &self.out
    }

    pub(crate) fn consume_transmit(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
    }

    pub(crate) fn drain_transmit(&mut self, dst: &mut Vec<u8>) {
        if dst.is_empty() {
            std::mem::swap(dst, &mut self.out);
        } else {
            dst.append(&mut self.out);
        }
    }

    pub(crate) fn push_event(&mut self, event: E) {
        self.events.push_back(event);
    }

    pub(crate) fn poll_event(&mut self) -> Option<E> {
        self.events.pop_front()
    }

    /// The tunnel's next keep-alive or timeout, or the handshake deadline.
    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        match &self.phase {
            Phase::Tunnel(t) => Some(t.poll_timeout()),
            Phase::Closed => None,
            Phase::Handshake(_) => Some(self.started.plus_ms(self.handshake_timeout_ms)),
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Timestamp) {
        match &mut self.phase {
            Phase::Closed => {}
            Phase::Tunnel(t) => {
                if let Err(e) = t.handle_timeout(now, &mut self.out, &mut self.rng) {
                    self.close(CloseReason::Tunnel(e));
                }
            }
            Phase::Handshake(_) => {
                if now >= self.started.plus_ms(self.handshake_timeout_ms) {
                    self.close(CloseReason::HandshakeTimeout);
                }
            }
        }
    }

    /// Ends the connection and queues the `Closed` event (once).
    pub(crate) fn close(&mut self, reason: CloseReason) {
        if !self.is_closed() {
            self.phase = Phase::Closed;
            self.inbuf = Vec::new();
            self.events.push_back(E::closed(reason));
        }
    }

    /// Starts the data phase and sends the first keep-alive at once: both
    /// sides' keep-alive clocks start at zero (§7.2).
    pub(crate) fn start_tunnel(&mut self, now: Timestamp, timeout_ms: u32, use_compress: bool) {
        let mut t = Tunnel::new(now, timeout_ms, use_compress);
        let _ = t.handle_timeout(now, &mut self.out, &mut self.rng);
        self.phase = Phase::Tunnel(t);
    }

    /// Queues `frames` as one batch in the data phase; how many were queued.
    pub(crate) fn send_frames<'a, I>(&mut self, now: Timestamp, frames: I) -> u32
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        match &mut self.phase {
            Phase::Tunnel(t) => t.send_frames(now, &mut self.out, frames, &mut self.rng),
            _ => 0,
        }
    }

    /// In the data phase, decodes `data` (after any bytes that arrived
    /// behind the handshake) into `frames` and returns true; false before
    /// it, when the role's handshake must look at the bytes.
    /// Takes bytes from the peer: in the data phase they go to the tunnel
    /// (frames to `frames`); before it they are kept for the handshake.
    /// True when the role's handshake has new bytes to look at.
    pub(crate) fn take_input<S: FrameSink + ?Sized>(
        &mut self,
        now: Timestamp,
        data: &[u8],
        frames: &mut S,
    ) -> bool {
        if self.feed_tunnel(now, data, frames) || self.is_closed() {
            return false;
        }
        self.inbuf.extend_from_slice(data);
        true
    }

    pub(crate) fn feed_tunnel<S: FrameSink + ?Sized>(
        &mut self,
        now: Timestamp,
        data: &[u8],
        frames: &mut S,
    ) -> bool {
        let Phase::Tunnel(t) = &mut self.phase else {
            return false;
        };
        let result = if self.inbuf.is_empty() {
            t.handle_input(now, data, frames)
        } else {
            let mut pending = std::mem::take(&mut self.inbuf);
            pending.extend_from_slice(data);
            t.handle_input(now, &pending, frames)
        };
        if let Err(e) = result {
            self.close(CloseReason::Tunnel(e));
        }
        true
    }
}
