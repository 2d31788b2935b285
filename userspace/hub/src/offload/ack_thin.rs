//! Hub → tap: of consecutive pure ACKs of one TCP flow in one batch, only
//! the newest is written. A cumulative ACK says everything the older ones
//! said, and the older ones would reach the sender microseconds earlier at
//! best; each costs a tap write that runs the kernel's whole forwarding
//! path and the sender's ACK processing in the writing thread (in a
//! download, the client's ACKs were a third of the server's CPU: decision
//! 0011).
//!
//! Conservative, like the "conservative" ACK filter of the CAKE qdisc: an
//! ACK is only ever replaced by a newer one of the same flow that
//! acknowledges strictly more; ACKs that carry anything beyond the
//! acknowledgement are never dropped and never replace one: SACK or any
//! option other than timestamps, a payload, any flag but ACK (ECE, CWR,
//! PSH, FIN, SYN, RST, URG), IP options, a VLAN tag. Duplicate ACKs (the
//! same acknowledgement number, the sender's loss signal) are all kept.
//! A replacing ACK's checksums are verified first, so a corrupt ACK can
//! never stand in for a good one. And the sender never sees its
//! acknowledgement jump by more than [`MAX_THINNED_SPAN`] bytes at a time
//! through thinning: no more than a receiver with GRO acknowledges in one
//! ACK, so what the sender releases per ACK stays what it is used to.

use super::headers::{ETH_LEN, TCP_ACK, TcpFrame, parse_tcp};

/// TCP option kinds (RFC 9293 §3.2, RFC 7323 §3).
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_TIMESTAMPS: u8 = 8;
const TIMESTAMPS_LEN: usize = 10;

/// The most an ACK may acknowledge beyond the last ACK of its flow that
/// was written, for it to replace the held one: one GSO frame's worth.
pub(super) const MAX_THINNED_SPAN: u32 = 65_535;

/// A pure ACK held back until the next frame shows whether it is
/// superseded.
#[derive(Default)]
pub(super) struct HeldAck {
    frame: Vec<u8>,
    tcp: Option<TcpFrame>,
    /// The acknowledgement number the sender last saw from this flow (the
    /// ACK written before the held one), as far as known here.
    base: u32,
}

impl HeldAck {
    /// Whether `frame` (parsed as `tcp`) is a pure ACK this module may
    /// hold or let replace another.
    pub(super) fn is_candidate(frame: &[u8], tcp: &TcpFrame) -> bool {
        tcp.ip_at == ETH_LEN
            && tcp.payload_len() == 0
            && tcp.flags == TCP_ACK
            && (!tcp.is_v4() || tcp.tcp_at == ETH_LEN + 20)
            && only_timestamps(&frame[tcp.tcp_at + 20..tcp.payload_at()])
    }

    /// Holds `frame`, or replaces the held ACK with it when it supersedes
    /// that one: true when an ACK was replaced (thinned). When `frame`
    /// does not supersede the held ACK, the held one goes to `emit` first.
    pub(super) fn hold(
        &mut self,
        frame: &[u8],
        tcp: TcpFrame,
        emit: &mut dyn FnMut(&[u8]),
    ) -> bool {
        let (replaces, base) = match &self.tcp {
            Some(held) if same_flow(&self.frame, held, frame, &tcp) => {
                let within = tcp.ack.wrapping_sub(self.base) <= MAX_THINNED_SPAN;
                (newer(held.ack, tcp.ack) && within, held.ack)
            }
            _ => (false, tcp.ack),
        };
        // A replaced ACK is never written: the sender's base stays.
        if !replaces {
            self.release(emit);
            self.base = base;
        }
        self.frame.clear();
        self.frame.extend_from_slice(&frame[..tcp.end]);
        self.tcp = Some(tcp);
        replaces
    }

    /// Writes the held ACK, if any.
    pub(super) fn release(&mut self, emit: &mut dyn FnMut(&[u8])) {
        if self.tcp.take().is_some() {
            emit(&self.frame);
        }
    }
}

/// The options are only NOPs, at most one well-formed timestamps option
/// and end-of-list padding.
fn only_timestamps(mut options: &[u8]) -> bool {
    let mut timestamps = 0;
    while let Some(&kind) = options.first() {
        match kind {
            OPT_END => return options.iter().all(|&b| b == OPT_END),
            OPT_NOP => options = &options[1..],
            OPT_TIMESTAMPS
                if options.get(1) == Some(&(TIMESTAMPS_LEN as u8))
                    && options.len() >= TIMESTAMPS_LEN =>
            {
                timestamps += 1;
                options = &options[TIMESTAMPS_LEN..];
            }
            _ => return false,
        }
    }
    timestamps <= 1
}

/// Same Ethernet header, addresses, ports and option layout.
fn same_flow(held: &[u8], held_tcp: &TcpFrame, next: &[u8], tcp: &TcpFrame) -> bool {
    held_tcp.ip == tcp.ip
        && held_tcp.tcp_header_len == tcp.tcp_header_len
        && held.get(..ETH_LEN) == next.get(..ETH_LEN)
        && held.get(tcp.tcp_at..tcp.tcp_at + 4) == next.get(tcp.tcp_at..tcp.tcp_at + 4)
        && tcp.checksums_valid(next)
}

/// `next` acknowledges strictly more than `held` (sequence-number
/// arithmetic, RFC 9293 §3.4).
fn newer(held: u32, next: u32) -> bool {
    (next.wrapping_sub(held) as i32) > 0
}

/// Parses `frame` as a pure ACK this module may hold.
pub(super) fn parse_pure_ack(frame: &[u8]) -> Option<TcpFrame> {
    parse_tcp(frame).filter(|tcp| HeldAck::is_candidate(frame, tcp))
}
