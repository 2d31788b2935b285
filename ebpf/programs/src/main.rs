//! ethergate's kernel programs. Entry points stay thin: each one calls a
//! `try_*` function and turns its result into an action plus counters, so
//! every frame is counted exactly once under the verdict it got.
#![no_std]
#![no_main]

mod expiry;
mod flow;
mod guard;
mod icmp_error;
mod icmp_quote;
mod inside;
mod loadgen;
mod maps;
mod nat;
mod packet;
mod route;
mod source_quota;
mod tap;
mod tap_icmp;
mod tc_frame;
mod tc_icmp_error;
mod tc_out;
mod uplink;
mod xdp_out;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach this; it exists only
    // because `no_std` binaries must name a panic handler.
    loop {}
}

// Some helpers we will use (bpf_fib_lookup, bpf_redirect_neigh) are GPL-only.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
