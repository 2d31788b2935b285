//! Flow tuples and flow-pair creation, shared by the XDP and tc paths.
//!
//! Invariant: a pair is created reverse half first with `BPF_NOEXIST`, so
//! two flows can never share a reverse tuple, even when CPUs race; the
//! forward half is inserted only after its reverse half exists.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    cty::c_void,
    helpers::generated::{bpf_get_prandom_u32, bpf_loop},
    macros::map,
    maps::PerCpuArray,
};
use ethergate_common::{
    DnatTarget, DropReason, FlowKey, FragmentKey, FragmentRewrite, NatBinding, NatConfig, NatEvent,
    SnatAddresses,
    nat::{
        FRAGMENT_REWRITES_DESTINATION, FRAGMENTS_FORWARDED, MAX_PORT_PROBES, MAX_SNAT_ADDRESSES,
        TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN,
    },
    parse::{ETH_HEADER_LEN, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, PacketBytes},
};

use crate::{
    expiry, maps,
    maps::{DNAT_IN, DNAT_OUT, FRAGMENTS, FlowEntry, NAT_IN, NAT_OUT, count_active, event},
    route::Route,
    source_quota,
};

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_ECHO_REQUEST: u8 = 8;
pub const TCP_HEADER_LEN: usize = 20;
pub const UDP_HEADER_LEN: usize = 8;
pub const ICMP_HEADER_LEN: usize = 8;
pub const IP_MF: u16 = 0x2000;
pub const IP_DF: u16 = 0x4000;
/// What a preallocated hash map's insert returns when every entry is used.
const E2BIG: i32 = 7;

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
/// `entry` comes from a successful map lookup in this program run. Hash
/// map values stay valid for the run (RCU); racing writers only store
/// timestamps and flag unions, where a lost update is harmless.
#[inline(always)]
pub unsafe fn touch(entry: *mut FlowEntry, now: u64, tcp_flags: u8) -> (u32, u16) {
    let seen = tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK);
    // SAFETY: per the function's contract.
    unsafe {
        let binding = &raw mut (*entry).binding;
        // The coarse clock moves once a tick: most packets would write the
        // same value, and a store dirties the line other CPUs read.
        if (*binding).last_seen_ns != now {
            (*binding).last_seen_ns = now;
        }
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
    if !source_quota::has_room(config, tuple.src_addr) {
        return Err(DropReason::SourceQuota);
    }
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
    let Some(slot) = PROBE.get_ptr_mut(0) else {
        return Err(DropReason::PortsExhausted);
    };
    {
        // SAFETY: this CPU's slot, which nothing else uses while the
        // program runs (programs do not nest on one CPU). The borrow ends
        // before the callback writes the slot.
        let probe = unsafe { &mut *slot };
        probe.protocol = tuple.protocol;
        probe.remote_addr = tuple.dst_addr;
        probe.remote_port = tuple.dst_port;
        probe.count = count;
        probe.span = span;
        probe.port_min = u32::from(config.port_min);
        probe.addrs = rule.addrs;
        probe.reverse = FlowEntry::new(private);
        probe.outcome = PROBING;
    }
    // bpf_loop, not a `for`: the verifier checks the callback once instead
    // of every unrolled probe at every call site, which is what let the
    // probe count grow from 64 (where the `uplink` program was at the
    // verifier's 1M-instruction limit) to MAX_PORT_PROBES. The state is in
    // a per-CPU map, not on the stack: the callback's frame counts toward
    // the caller's 512-byte stack limit.
    // SAFETY: the callback is a static function of the signature bpf_loop
    // calls; it takes no context.
    unsafe {
        bpf_loop(
            MAX_PORT_PROBES,
            probe_port as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    // SAFETY: the slot as the callback left it; volatile, because the
    // compiler cannot see the callback write it.
    let (outcome, addr, port) = unsafe {
        (
            (&raw const (*slot).outcome).read_volatile(),
            (&raw const (*slot).addr).read_volatile(),
            (&raw const (*slot).port).read_volatile(),
        )
    };
    let (addr, port) = match outcome {
        FOUND => (addr, port),
        TABLE_FULL => return Err(DropReason::TableFull),
        _ => return Err(DropReason::PortsExhausted),
    };
    let in_key = FlowKey::new(tuple.protocol, tuple.dst_addr, tuple.dst_port, addr, port);
    let public = NatBinding {
        last_seen_ns: now,
        addr,
        port,
        tcp_flags: tuple.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK),
        pad: 0,
    };
    let inserted = NAT_OUT.insert(tuple.key(), FlowEntry::new(public), BPF_NOEXIST as u64);
    if inserted.is_ok() {
        source_quota::count(tuple.src_addr);
        count_active(1);
        expiry::arm_snat(tuple.key(), tuple.tcp_flags, config);
        event(NatEvent::FlowCreated);
        return Ok((addr, port));
    }
    let _ = NAT_IN.remove(in_key);
    if inserted == Err(-E2BIG) {
        return Err(DropReason::TableFull);
    }
    // Another CPU created this flow a moment ago: use its binding.
    match NAT_OUT.get_ptr(tuple.key()) {
        // SAFETY: pointer from a successful lookup.
        Some(existing) => unsafe { Ok(((*existing).binding.addr, (*existing).binding.port)) },
        None => Err(DropReason::FlowRace),
    }
}

const PROBING: u32 = 0;
const FOUND: u32 = 1;
const TABLE_FULL: u32 = 2;

/// The port search's state: [`allocate`] fills it in, [`probe_port`]
/// searches, one slot per CPU.
#[map]
static PROBE: PerCpuArray<Probe> = PerCpuArray::with_max_entries(1, 0);

#[repr(C)]
struct Probe {
    protocol: u8,
    /// The flow's remote end: the reply tuple's source.
    remote_addr: u32,
    remote_port: u16,
    /// Public addresses to pick from (at the front of `addrs`), ports
    /// `port_min .. port_min + span`.
    count: u32,
    span: u32,
    port_min: u32,
    addrs: [u32; MAX_SNAT_ADDRESSES],
    /// The reverse half's value: the private end.
    reverse: FlowEntry,
    outcome: u32,
    addr: u32,
    port: u16,
}

/// One probe: a random public (address, port); claims it by inserting the
/// reverse half with `BPF_NOEXIST`. Returns 1 (stop) once claimed or the
/// table is full, 0 to probe again.
extern "C" fn probe_port(_index: u64, _context: *mut c_void) -> i64 {
    let Some(probe) = PROBE.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's slot, filled in by `allocate` just before.
    let probe = unsafe { &mut *probe };
    // `(r * n) >> 32` maps a uniform u32 onto 0..n without a division:
    // a `%` by a map value would need a divide-by-zero panic path,
    // which the verifier rejects ("last insn is not an exit or jmp").
    // SAFETY: plain helper calls.
    let (r1, r2) = unsafe { (bpf_get_prandom_u32(), bpf_get_prandom_u32()) };
    let index = ((u64::from(r1) * u64::from(probe.count)) >> 32) as usize;
    let Some(&addr) = probe.addrs.get(index) else {
        return 0;
    };
    let port = (u64::from(probe.port_min) + ((u64::from(r2) * u64::from(probe.span)) >> 32)) as u16;
    // The reply's tuple: ICMP replies carry the identifier as dst_port.
    let in_key = FlowKey::new(
        probe.protocol,
        probe.remote_addr,
        probe.remote_port,
        addr,
        port,
    );
    match NAT_IN.insert(in_key, &probe.reverse, BPF_NOEXIST as u64) {
        Ok(()) => {
            probe.outcome = FOUND;
            probe.addr = addr;
            probe.port = port;
            1
        }
        Err(err) if err == -E2BIG => {
            probe.outcome = TABLE_FULL;
            1
        }
        Err(_) => {
            event(NatEvent::PortCollision);
            0
        }
    }
}

/// Installs a DNAT flow pair for `tuple` (client → original destination)
/// rewritten to `target`. Returns the translated (address, port).
#[inline(always)]
pub fn open_dnat(
    tuple: &Tuple,
    target: &DnatTarget,
    config: &NatConfig,
    now: u64,
) -> Result<(u32, u16), DropReason> {
    if !source_quota::has_room(config, tuple.src_addr) {
        return Err(DropReason::SourceQuota);
    }
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
    let inserted = DNAT_IN.insert(in_key, FlowEntry::new(original), BPF_NOEXIST as u64);
    if inserted == Err(-E2BIG) {
        return Err(DropReason::TableFull);
    }
    if inserted.is_err() {
        // The same flow whose forward half the LRU evicted is fine to
        // re-pair; a different original destination is not.
        let same = match DNAT_IN.get_ptr(in_key) {
            // SAFETY: pointer from a successful lookup.
            Some(existing) => unsafe {
                (*existing).binding.addr == tuple.dst_addr
                    && (*existing).binding.port == tuple.dst_port
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
    if let Err(err) = DNAT_OUT.insert(tuple.key(), FlowEntry::new(forward), BPF_NOEXIST as u64) {
        let _ = DNAT_IN.remove(in_key);
        return Err(if err == -E2BIG {
            DropReason::TableFull
        } else {
            DropReason::FlowRace
        });
    }
    source_quota::count(tuple.src_addr);
    count_active(1);
    expiry::arm_dnat(tuple.key(), tuple.tcp_flags, config);
    event(NatEvent::DnatCreated);
    Ok((target.to_addr, target.to_port))
}

/// Whether more fragments follow, for a header whose fragment offset is
/// zero (the classifier routes later fragments elsewhere).
#[inline(always)]
pub fn is_first_fragment(ip: &[u8; 20]) -> bool {
    u16::from_be_bytes([ip[6], ip[7]]) & IP_MF != 0
}

/// The key of the datagram `ip` belongs to, as its fragments carry it.
#[inline(always)]
pub fn fragment_key(scope: u8, ip: &[u8; 20]) -> FragmentKey {
    FragmentKey::new(
        scope,
        ip[9],
        u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]),
        u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]),
        u16::from_be_bytes([ip[4], ip[5]]),
    )
}

/// After a first fragment was translated: the later fragments of its
/// datagram get the same address rewrite (`side`: source or destination).
#[inline(always)]
pub fn remember_fragmented(scope: u8, ip: &[u8; 20], side: u8, new_addr: u32) {
    let rewrite = FragmentRewrite {
        new_addr,
        side,
        pad: [0; 3],
    };
    let _ = FRAGMENTS.insert(fragment_key(scope, ip), rewrite, 0);
}

/// The rewrite the first fragment of `ip`'s datagram got, if any.
#[inline(always)]
pub fn fragment_rewrite(scope: u8, ip: &[u8; 20]) -> Option<FragmentRewrite> {
    let found = FRAGMENTS.get_ptr(fragment_key(scope, ip))?;
    // SAFETY: pointer from a successful lookup; copied out at once.
    Some(unsafe { *found })
}

/// The frame's IPv4 header (the classifier placed it right after the
/// Ethernet header). When we `forward` it, `None` also when its TTL ends
/// here: the kernel sends the time-exceeded error (counted `TtlPassed`).
#[inline(always)]
pub fn ipv4_header<P: PacketBytes + ?Sized>(frame: &P, forward: bool) -> Option<[u8; 20]> {
    let ip = *frame.header::<20>(ETH_HEADER_LEN)?;
    if forward && ip[8] <= 1 {
        event(NatEvent::TtlPassed);
        return None;
    }
    Some(ip)
}

/// The address a later fragment's first fragment had rewritten.
pub struct AddressChange {
    /// The destination changes (a reply to SNAT, or DNAT), else the source.
    pub destination: bool,
    pub old: u32,
    pub new: u32,
}

/// What a later fragment being forwarded becomes, by its first fragment's
/// rewrite.
pub struct ForwardedFragment {
    pub src: u32,
    /// The destination to route it by: after the rewrite.
    pub route_dst: u32,
    /// `None`: its first fragment was not seen translated.
    pub change: Option<AddressChange>,
}

/// A later fragment whose first fragment was not seen translated: it
/// cannot be translated, so one that would leave the uplink from a source
/// we translate is dropped (it must not leak: `Err`); anything else is the
/// kernel's (`Ok`, counted `FragmentPassed`).
#[inline(always)]
pub fn untranslated_fragment(
    route: &Route,
    config: &NatConfig,
    src: u32,
) -> Result<(), DropReason> {
    if route.leaves_through(config.uplink_ifindex) && maps::snat_rule(config, src).is_some() {
        return Err(DropReason::FragmentUnknown);
    }
    event(NatEvent::FragmentPassed);
    Ok(())
}

#[inline(always)]
pub fn forwarded_fragment(ip: &[u8; 20]) -> ForwardedFragment {
    let src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    let dst = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    let change = fragment_rewrite(FRAGMENTS_FORWARDED, ip).map(|r| {
        let destination = r.side == FRAGMENT_REWRITES_DESTINATION;
        AddressChange {
            destination,
            old: if destination { dst } else { src },
            new: r.new_addr,
        }
    });
    let route_dst = match &change {
        Some(c) if c.destination => c.new,
        _ => dst,
    };
    ForwardedFragment {
        src,
        route_dst,
        change,
    }
}
