//! Hub → tap: merges consecutive in-order TCP segments of one flow into a
//! GSO super-frame, with the rules of the kernel's own GRO
//! (`tcp_gro_receive`): same Ethernet and IP headers apart from length, ID
//! and checksum; same ports, ACK, window, urgent pointer and options; ACK
//! and at most PSH set, and PSH ends the run; the next sequence number;
//! every merged segment but the last exactly one MSS long. Every merged
//! segment's checksums are verified first, because the kernel trusts a
//! GSO frame's payload (it only fills in the checksum). Pure ACKs of a flow
//! in a row are thinned to the newest ([`super::ack_thin`]).

use super::{
    F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, VnetHdr,
    ack_thin::{HeldAck, parse_pure_ack},
    checksum,
    headers::{
        ETH_LEN, TCP_ACK, TCP_CWR, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG, TcpFrame, parse_tcp,
    },
};

/// The largest IP packet one GSO frame may carry (the IPv4 total length
/// and IPv6 payload length fields are 16 bits).
pub const MAX_COALESCED_LEN: usize = 65535;

/// Merges runs of frames; see the module docs. Frames go in with
/// [`Coalescer::push`] in the order they are to be delivered, and come out
/// (merged or not) through the `emit` callback, in the same order. Call
/// [`Coalescer::flush`] at the end of a batch.
#[derive(Default)]
pub struct Coalescer {
    /// The frame being built: the first segment's headers, then every
    /// merged payload.
    buf: Vec<u8>,
    run: Option<Run>,
    /// A pure ACK that a newer one of its flow may still replace
    /// ([`super::ack_thin`]). Never held together with a run.
    ack: HeldAck,
    /// Pure ACKs replaced by a newer one since the last
    /// [`Coalescer::take_thinned`].
    thinned: u64,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    first: TcpFrame,
    /// Payload length of the first segment: the GSO size.
    mss: usize,
    segments: usize,
    next_seq: u32,
    last_payload: usize,
    next_ip_id: u16,
    pushed: bool,
    /// Whether the first segment's checksums were checked (done lazily,
    /// when a second segment arrives, since a lone segment is passed on
    /// untouched).
    first_verified: bool,
}

impl Coalescer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, frame: &[u8], emit: &mut dyn FnMut(&VnetHdr, &[u8])) {
        if let Some(ack) = parse_pure_ack(frame) {
            self.flush_run(emit);
            if self.ack.hold(frame, ack, &mut |f| emit(&VnetHdr::NONE, f)) {
                self.thinned += 1;
            }
            return;
        }
        self.ack.release(&mut |f| emit(&VnetHdr::NONE, f));
        let Some(tcp) = parse_tcp(frame).filter(is_candidate) else {
            self.flush_run(emit);
            emit(&VnetHdr::NONE, frame);
            return;
        };
        if self.run.is_some() {
            match self.try_append(frame, &tcp) {
                Append::Merged => {
                    if tcp.flags & TCP_PSH != 0 {
                        self.flush_run(emit);
                    }
                    return;
                }
                Append::BadChecksum => {
                    // Passed on as it is: the receiver drops it, as it
                    // would have without us.
                    self.flush_run(emit);
                    emit(&VnetHdr::NONE, frame);
                    return;
                }
                Append::NoMatch => self.flush_run(emit),
            }
        }
        if tcp.flags & TCP_PSH != 0 {
            emit(&VnetHdr::NONE, frame);
            return;
        }
        self.start(frame, tcp);
    }

    /// Emits what is held back: the run being built or the last pure ACK.
    pub fn flush(&mut self, emit: &mut dyn FnMut(&VnetHdr, &[u8])) {
        self.flush_run(emit);
        self.ack.release(&mut |f| emit(&VnetHdr::NONE, f));
    }

    /// Pure ACKs dropped because a newer one of the same flow followed in
    /// the same batch, since the last call.
    pub fn take_thinned(&mut self) -> u64 {
        std::mem::take(&mut self.thinned)
    }

    /// Emits the run being built, if any.
    fn flush_run(&mut self, emit: &mut dyn FnMut(&VnetHdr, &[u8])) {
        let Some(run) = self.run.take() else {
            return;
        };
        if run.segments == 1 {
            emit(&VnetHdr::NONE, &self.buf);
            return;
        }
        let first = run.first;
        let tcp_len = self.buf.len() - first.tcp_at;
        if first.is_v4() {
            let total = (self.buf.len() - ETH_LEN) as u16;
            self.buf[ETH_LEN + 2..ETH_LEN + 4].copy_from_slice(&total.to_be_bytes());
            let ip_check = checksum::ipv4_header(&self.buf[ETH_LEN..first.tcp_at]);
            self.buf[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&ip_check.to_be_bytes());
        } else {
            let payload = (self.buf.len() - first.tcp_at) as u16;
            self.buf[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&payload.to_be_bytes());
        }
        let at = first.tcp_at;
        if run.pushed {
            self.buf[at + 13] |= TCP_PSH;
        }
        // NEEDS_CSUM: the field carries the pseudo-header sum, not
        // complemented; the kernel adds the segment itself.
        let pseudo = checksum::fold(first.ip.pseudo_sum(tcp_len));
        self.buf[at + 16..at + 18].copy_from_slice(&pseudo.to_be_bytes());
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: if first.is_v4() { GSO_TCPV4 } else { GSO_TCPV6 },
            hdr_len: first.payload_at() as u16,
            gso_size: run.mss as u16,
            csum_start: at as u16,
            csum_offset: 16,
        };
        emit(&hdr, &self.buf);
    }

    fn start(&mut self, frame: &[u8], tcp: TcpFrame) {
        self.buf.clear();
        self.buf.extend_from_slice(&frame[..tcp.end]);
        let id = tcp.ip_id(frame);
        self.run = Some(Run {
            first: tcp,
            mss: tcp.payload_len(),
            segments: 1,
            next_seq: tcp.seq.wrapping_add(tcp.payload_len() as u32),
            last_payload: tcp.payload_len(),
            next_ip_id: id.wrapping_add(1),
            pushed: false,
            first_verified: false,
        });
    }

    fn try_append(&mut self, frame: &[u8], tcp: &TcpFrame) -> Append {
        let Some(run) = self.run.as_mut() else {
            return Append::NoMatch;
        };
        let first = &run.first;
        let payload = tcp.payload_len();
        let fits = self.buf.len() - ETH_LEN + payload <= MAX_COALESCED_LEN;
        if !fits
            || tcp.tcp_at != first.tcp_at
            || tcp.tcp_header_len != first.tcp_header_len
            || tcp.seq != run.next_seq
            || tcp.ack != first.ack
            || run.last_payload != run.mss
            || payload > run.mss
            || !same_headers(&self.buf, frame, first)
            || (first.is_v4() && !dont_fragment(frame) && tcp.ip_id(frame) != run.next_ip_id)
        {
            return Append::NoMatch;
        }
        if !run.first_verified {
            if !first.checksums_valid(&self.buf) {
                return Append::NoMatch;
            }
            run.first_verified = true;
        }
        if !tcp.checksums_valid(frame) {
            return Append::BadChecksum;
        }
        self.buf
            .extend_from_slice(&frame[tcp.payload_at()..tcp.end]);
        run.segments += 1;
        run.next_seq = tcp.seq.wrapping_add(payload as u32);
        run.last_payload = payload;
        run.next_ip_id = tcp.ip_id(frame).wrapping_add(1);
        run.pushed |= tcp.flags & TCP_PSH != 0;
        Append::Merged
    }
}

enum Append {
    Merged,
    NoMatch,
    BadChecksum,
}

/// A data segment with only ACK (and maybe PSH, which ends a run) among
/// the flags that matter to merging; untagged; IPv4 without options.
fn is_candidate(tcp: &TcpFrame) -> bool {
    tcp.ip_at == ETH_LEN
        && tcp.payload_len() > 0
        && tcp.flags & TCP_ACK != 0
        && tcp.flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_URG | TCP_CWR) == 0
        && (!tcp.is_v4() || tcp.tcp_at == ETH_LEN + 20)
}

fn dont_fragment(frame: &[u8]) -> bool {
    frame[ETH_LEN + 6] & 0x40 != 0
}

/// Everything but the per-segment fields is equal: Ethernet header; IPv4
/// apart from length, ID, checksum (IPv6 apart from payload length); TCP
/// ports, data offset, flags apart from PSH, window, urgent pointer and
/// options.
fn same_headers(first: &[u8], next: &[u8], tcp: &TcpFrame) -> bool {
    let eq = |range: std::ops::Range<usize>| first.get(range.clone()) == next.get(range);
    let ip_same = if tcp.is_v4() {
        eq(0..ETH_LEN + 2) && eq(ETH_LEN + 6..ETH_LEN + 10) && eq(ETH_LEN + 12..tcp.tcp_at)
    } else {
        eq(0..ETH_LEN + 4) && eq(ETH_LEN + 6..tcp.tcp_at)
    };
    let at = tcp.tcp_at;
    let flags_same = (first[at + 13] ^ next[at + 13]) & !TCP_PSH == 0;
    ip_same
        && eq(at..at + 4)
        && first[at + 12] == next[at + 12]
        && flags_same
        && eq(at + 14..at + 16)
        && eq(at + 18..tcp.payload_at())
}
