//! Flow tuples and flow-pair creation, shared by the XDP and tc paths.
//!
//! Invariant: a pair is created reverse half first with `BPF_NOEXIST`, so
//! two flows can never share a reverse tuple, even when CPUs race; the
//! forward half is inserted only after its reverse half exists.

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::generated::bpf_get_prandom_u32};
use ethergate_common::{
    DnatTarget, DropReason, FlowKey, NatBinding, NatConfig, NatEvent, SnatAddresses,
    nat::{MAX_PORT_PROBES, MAX_SNAT_ADDRESSES, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
    parse::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, PacketBytes},
};

use crate::maps::{DNAT_IN, DNAT_OUT, NAT_IN, NAT_OUT, event};

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_ECHO_REQUEST: u8 = 8;
pub const TCP_HEADER_LEN: usize = 20;
pub const UDP_HEADER_LEN: usize = 8;
pub const ICMP_HEADER_LEN: usize = 8;
/// IPv4 flags/fragment-offset word: MF flag and the 13-bit offset.
pub const IP_MF_OR_OFFSET: u16 = 0x3fff;
pub const IP_DF: u16 = 0x4000;

/// The L4 fields NAT looks at and rewrites.
#[derive(Clone, Copy)]
pub struct Tuple {
    pub protocol: u8,
    pub src_addr: u32,
    pub dst_addr: u32,
    pub src_port: u16,
    pub dst_port: u16,
    pub tcp_flags: u8,
    /// ICMP echo reply: may only match a reverse map, never start a flow.
    pub echo_reply: bool,
}

impl Tuple {
    #[inline(always)]
    pub fn key(&self) -> FlowKey {
        FlowKey::new(
            self.protocol,
            self.src_addr,
            self.src_port,
            self.dst_addr,
            self.dst_port,
        )
    }

    /// A TCP segment that may open a flow: SYN without ACK. Anything else
    /// without a flow is a reply of an inbound connection or a stray; like
    /// iptables NAT (which only sees NEW connections) it is the kernel's.
    #[inline(always)]
    pub fn may_open(&self) -> bool {
        if self.echo_reply {
            return false;
        }
        self.protocol != IPPROTO_TCP || self.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
    }
}

/// TCP/UDP ports or the ICMP echo identifier; `None` for anything NAT does
/// not translate as a flow (ICMP errors are handled separately).
#[inline(always)]
pub fn read_tuple<P: PacketBytes + ?Sized>(frame: &P, ip: &[u8; 20], l4: usize) -> Option<Tuple> {
    let protocol = ip[9];
    let src_addr = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    let dst_addr = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    let mut echo_reply = false;
    let (src_port, dst_port, tcp_flags) = match protocol {
        IPPROTO_TCP => {
            let tcp = frame.header::<TCP_HEADER_LEN>(l4)?;
            (
                u16::from_be_bytes([tcp[0], tcp[1]]),
                u16::from_be_bytes([tcp[2], tcp[3]]),
                tcp[13],
            )
        }
        IPPROTO_UDP => {
            let udp = frame.header::<UDP_HEADER_LEN>(l4)?;
            (
                u16::from_be_bytes([udp[0], udp[1]]),
                u16::from_be_bytes([udp[2], udp[3]]),
                0,
            )
        }
        IPPROTO_ICMP => {
            let icmp = frame.header::<ICMP_HEADER_LEN>(l4)?;
            let id = u16::from_be_bytes([icmp[4], icmp[5]]);
            match icmp[0] {
                ICMP_ECHO_REQUEST if icmp[1] == 0 => (id, 0, 0),
                ICMP_ECHO_REPLY if icmp[1] == 0 => {
                    echo_reply = true;
                    (0, id, 0)
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(Tuple {
        protocol,
        src_addr,
        dst_addr,
        src_port,
        dst_port,
        tcp_flags,
        echo_reply,
    })
}

/// Refreshes a binding's timestamp and TCP flag union; returns its
/// (address, port).
///
/// # Safety
/// `binding` comes from a successful map lookup in this program run. LRU
/// values stay valid for the run (RCU); racing writers only store
/// timestamps and flag unions, where a lost update is harmless.
#[inline(always)]
pub unsafe fn touch(binding: *mut NatBinding, now: u64, tcp_flags: u8) -> (u32, u16) {
    let seen = tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK);
    // SAFETY: per the function's contract.
    unsafe {
        (*binding).last_seen_ns = now;
        if (*binding).tcp_flags & seen != seen {
            (*binding).tcp_flags |= seen;
        }
        ((*binding).addr, (*binding).port)
    }
}

/// Picks a free public (address, port) by random probing and installs the
/// SNAT flow pair.
#[inline(always)]
pub fn allocate(
    tuple: &Tuple,
    rule: &SnatAddresses,
    config: &NatConfig,
    now: u64,
) -> Result<(u32, u16), DropReason> {
    let span = u32::from(config.port_max).saturating_sub(u32::from(config.port_min)) + 1;
    let count = if rule.count == 0 || rule.count as usize > MAX_SNAT_ADDRESSES {
        1
    } else {
        rule.count
    };
    let private = NatBinding {
        last_seen_ns: now,
        addr: tuple.src_addr,
        port: tuple.src_port,
        tcp_flags: 0,
        pad: 0,
    };
    for _ in 0..MAX_PORT_PROBES {
        // `(r * n) >> 32` maps a uniform u32 onto 0..n without a division:
        // a `%` by a map value would need a divide-by-zero panic path,
        // which the verifier rejects ("last insn is not an exit or jmp").
        // SAFETY: plain helper calls.
        let (r1, r2) = unsafe { (bpf_get_prandom_u32(), bpf_get_prandom_u32()) };
        let index = ((u64::from(r1) * u64::from(count)) >> 32) as usize;
        let Some(&addr) = rule.addrs.get(index) else {
            continue;
        };
        let port = (u64::from(config.port_min) + ((u64::from(r2) * u64::from(span)) >> 32)) as u16;
        // The reply's tuple: ICMP replies carry the identifier as dst_port.
        let in_key = FlowKey::new(tuple.protocol, tuple.dst_addr, tuple.dst_port, addr, port);
        if NAT_IN.insert(in_key, private, BPF_NOEXIST as u64).is_err() {
            event(NatEvent::PortCollision);
            continue;
        }
        let public = NatBinding {
            last_seen_ns: now,
            addr,
            port,
            tcp_flags: tuple.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK),
            pad: 0,
        };
        if NAT_OUT
            .insert(tuple.key(), public, BPF_NOEXIST as u64)
            .is_ok()
        {
            event(NatEvent::FlowCreated);
            return Ok((addr, port));
        }
        // Another CPU created this flow a moment ago: use its binding.
        let _ = NAT_IN.remove(in_key);
        return match NAT_OUT.get_ptr(tuple.key()) {
            // SAFETY: pointer from a successful lookup.
            Some(existing) => unsafe { Ok(((*existing).addr, (*existing).port)) },
            None => Err(DropReason::FlowRace),
        };
    }
    Err(DropReason::PortsExhausted)
}

/// Installs a DNAT flow pair for `tuple` (client → original destination)
/// rewritten to `target`. Returns the translated (address, port).
#[inline(always)]
pub fn open_dnat(tuple: &Tuple, target: &DnatTarget, now: u64) -> Result<(u32, u16), DropReason> {
    // The server answers from the target to the client.
    let in_key = FlowKey::new(
        tuple.protocol,
        target.to_addr,
        target.to_port,
        tuple.src_addr,
        tuple.src_port,
    );
    let original = NatBinding {
        last_seen_ns: now,
        addr: tuple.dst_addr,
        port: tuple.dst_port,
        tcp_flags: 0,
        pad: 0,
    };
    // Two original destinations forwarded to one server from the same
    // client port would share a reply tuple; the second cannot be told
    // apart on the way back, so it is dropped (as a port collision is).
    if DNAT_IN
        .insert(in_key, original, BPF_NOEXIST as u64)
        .is_err()
    {
        // The same flow whose forward half the LRU evicted is fine to
        // re-pair; a different original destination is not.
        let same = match DNAT_IN.get_ptr(in_key) {
            // SAFETY: pointer from a successful lookup.
            Some(existing) => unsafe {
                (*existing).addr == tuple.dst_addr && (*existing).port == tuple.dst_port
            },
            None => false,
        };
        if !same {
            return Err(DropReason::FlowRace);
        }
    }
    let forward = NatBinding {
        last_seen_ns: now,
        addr: target.to_addr,
        port: target.to_port,
        tcp_flags: tuple.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK),
        pad: 0,
    };
    if DNAT_OUT
        .insert(tuple.key(), forward, BPF_NOEXIST as u64)
        .is_err()
    {
        let _ = DNAT_IN.remove(in_key);
        return Err(DropReason::FlowRace);
    }
    event(NatEvent::DnatCreated);
    Ok((target.to_addr, target.to_port))
}
