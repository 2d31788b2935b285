//! The uplink's egress guard (tc egress on `[nat].uplink`): no packet with
//! a source in an SNAT'd subnet leaves untranslated, whatever the NAT paths
//! decided to hand to the kernel (fragments whose first part was lost,
//! VLAN-tagged or oversized frames, packets of flows that expired or never
//! fit in the table, replies of inbound connections).
//!
//! Allowed through: sources that are an SNAT rule's own translated-to
//! addresses (in one-armed mode behind a cloud router, masquerade's address
//! lies inside the private subnet), the appliance's own addresses (its own
//! traffic, ICMP errors it generates), and packets of DNAT flows (one-armed
//! mode: a VPN client's port-forwarded connection leaves the uplink toward
//! its target with the client's source, which is correct there).
//! Everything else from an SNAT'd source is dropped and counted as
//! `untranslated_egress`.
//!
//! Frames XDP redirects out of the uplink never pass tc egress; they are
//! translated by construction.

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    macros::classifier,
    programs::TcContext,
};
use ethergate_common::{
    DropReason, FlowKey, ProtoClass,
    parse::{PacketBytes, classify},
};

use crate::{
    flow::read_tuple,
    maps::{self, DNAT_IN, count_drop},
    route::{self, Route},
    tc_frame::TcFrame,
};

#[classifier]
pub fn uplink_egress(ctx: TcContext) -> i32 {
    if untranslated_private_source(&ctx) {
        count_drop(DropReason::UntranslatedEgress);
        return TC_ACT_SHOT;
    }
    TC_ACT_OK
}

#[inline(always)]
fn untranslated_private_source(ctx: &TcContext) -> bool {
    let Some(config) = maps::config() else {
        return false;
    };
    let frame = TcFrame::new(ctx);
    let seen = classify(&frame);
    if !matches!(
        seen.class,
        ProtoClass::Tcp4
            | ProtoClass::Udp4
            | ProtoClass::Icmp4
            | ProtoClass::Ipv4Other
            | ProtoClass::Ipv4Fragment
    ) {
        return false;
    }
    let Some(ip) = frame.header::<20>(seen.l3_offset) else {
        return false;
    };
    let ip = *ip;
    let src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    let Some(rule) = maps::snat_rule(config, src) else {
        return false;
    };
    let mut translated = false;
    for addr in rule.addrs {
        translated |= addr == src;
    }
    if translated {
        return false;
    }
    if matches!(seen.class, ProtoClass::Tcp4 | ProtoClass::Udp4)
        && let Some(tuple) = read_tuple(&frame, &ip, seen.l4_offset)
    {
        let reply = FlowKey::new(
            tuple.protocol,
            tuple.dst_addr,
            tuple.dst_port,
            tuple.src_addr,
            tuple.src_port,
        );
        if DNAT_IN.get_ptr(reply).is_some() {
            return false;
        }
    }
    // The appliance's own address: the FIB calls a route to it local
    // ("not forwarded").
    // SAFETY: skb is this run's __sk_buff; ctx.skb.skb is the context.
    let own = unsafe {
        let ifindex = (*ctx.skb.skb).ifindex;
        route::lookup(ctx.skb.skb.cast(), ifindex, &ip, 0, src, src)
    };
    !matches!(own, Route::Elsewhere)
}
