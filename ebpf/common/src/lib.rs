//! Types shared by ethergate's eBPF programs and its userspace loader.
//!
//! Everything a map key or value is made of lives here, once, `#[repr(C)]`
//! with compile-time size checks, so the kernel side and the userspace side
//! can never disagree about a layout (the bug katran's hand-copied structs
//! invite). The packet classifier lives here too: it is generic over
//! [`parse::PacketBytes`], so the same code runs inside XDP and in host unit
//! tests against `etherparse`.
#![no_std]
#![deny(unsafe_code)]

pub mod checksum;
mod counter_enum;
pub mod counters;
pub mod dnat;
pub mod nat;
pub mod parse;

pub use counters::{PacketCounter, ParseIssue, ProtoClass, Verdict};
pub use dnat::DnatTarget;
pub use nat::{
    CachedHop, DropReason, FlowEntry, FlowKey, FragmentKey, FragmentRewrite, NatBinding, NatConfig,
    NatEvent, ROUTE_EPOCH_SHIFT, SnatAddresses,
};
