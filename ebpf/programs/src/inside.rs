//! XDP programs for the private side.
//!
//! `inside` runs on each interface facing the private subnet (two-armed
//! mode): the private hosts' egress is SNATed and redirected to the uplink
//! here, because XDP only sees *received* frames — the uplink's own program
//! never sees what the kernel would transmit. It also restores return
//! traffic that arrives here (unusual, but the same lookup). Non-NAT frames
//! go to the kernel untouched and are not counted in `COUNTERS` (that map is
//! the uplink's); the NAT path counts its own events and drops.
//!
//! `redirect_peer` is a do-nothing XDP_PASS. A veth only delivers frames
//! that another XDP program redirected into it if its *peer* runs an XDP
//! program (or has GRO on): tests attach this on the far end of veth links.
//! Real NICs need nothing of the kind.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use ethergate_common::parse::classify;

use crate::{nat, packet::XdpFrame, xdp_out::Nat};

#[xdp]
pub fn inside(ctx: XdpContext) -> u32 {
    let mut frame = XdpFrame::new(&ctx);
    let seen = classify(&frame);
    match nat::process(&ctx, &mut frame, &seen, nat::ArrivedOn::Inside) {
        Nat::NotOurs | Nat::Passed => xdp_action::XDP_PASS,
        Nat::Dropped => xdp_action::XDP_DROP,
        Nat::Forwarded(action) => action,
    }
}

#[xdp]
pub fn redirect_peer(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}
