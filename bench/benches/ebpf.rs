//! Each eBPF program through BPF_PROG_TEST_RUN (aya `TestRun`), time per
//! packet: `uplink` classifying and passing frames that are not ours (ARP,
//! TCP without a flow), `inside` SNAT-ing an established TCP flow, and
//! `uplink` restoring that flow's reply. Each iteration is one test-run
//! syscall on a fresh copy of the frame (a NAT rewrite in place rules out
//! `repeat`), so the time includes the syscall and two copies; the kernel's
//! own per-run figure is printed beside it.
//!
//! The NAT runs in a throwaway namespace topology (`private — nat(priv0 |
//! pub0) — internet`) because `bpf_fib_lookup` routes from the ingress
//! interface. Needs root; without it the bench says so and measures nothing.

use std::{hint::black_box, time::Duration};

use criterion::{Criterion, Throughput};
use ethergate_config::{Nat, NatMode, SnatTarget};
use ethergate_dataplane::{Dataplane, XdpProgram};
use ethergate_fixtures::{
    nat::{Ipv4Flow, L4},
    nat_config::snat_config,
};
use ethergate_netns::{Topology, recipe};

/// XDP action codes (linux/bpf.h).
const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

const PUBLIC: [u8; 4] = [203, 0, 113, 1];
const REMOTE: [u8; 4] = [203, 0, 113, 10];
const PRIVATE: [u8; 4] = [10, 0, 1, 26];

fn topology() -> Topology {
    recipe::two_armed(&[])
        .build()
        .expect("build topology (run as root)")
}

fn nat_config() -> Nat {
    let mut nat = snat_config("pub0", &["priv0"], SnatTarget::Masquerade);
    nat.mode = NatMode::Xdp;
    nat
}

fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Ipv4Flow {
    Ipv4Flow {
        src_mac: [0x02, 0, 0, 0, 0, 1],
        dst_mac: [0x02, 0, 0, 0, 0, 2],
        src,
        dst,
        ttl: 64,
        l4: L4::Tcp {
            src: sport,
            dst: dport,
            flags,
        },
    }
}

fn main() {
    if !ethergate_netns::is_root() {
        println!("ebpf bench skipped: BPF_PROG_TEST_RUN and namespaces need root");
        return;
    }
    let topo = topology();
    let mut dataplane = Dataplane::load().expect("load eBPF");
    topo.enter("nat", || dataplane.apply_nat(&nat_config()))
        .expect("enter nat")
        .expect("apply [nat]");
    // The NAT drops frames whose next hop is unresolved (decision 0003).
    topo.exec("nat", &["ping", "-c1", "-W2", "203.0.113.10"])
        .expect("ping internet");
    topo.exec("nat", &["ping", "-c1", "-W2", "10.0.1.26"])
        .expect("ping private");
    topo.enter("nat", move || run(dataplane))
        .expect("enter nat");
}

fn ifindex(name: &str) -> u32 {
    nix::net::if_::if_nametoindex(name).expect("interface index")
}

/// Runs inside the `nat` namespace.
fn run(mut dp: Dataplane) {
    let (priv0, pub0) = (ifindex("priv0"), ifindex("pub0"));
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    // The flow: a SYN through `inside` creates it and picks the public port.
    let syn = tcp(PRIVATE, REMOTE, 40_000, 80, 0x02).frame(&[]);
    let out = dp
        .test_run(XdpProgram::Inside, &syn, Some(priv0))
        .expect("syn");
    assert_eq!(out.action, XDP_REDIRECT, "the SYN was not translated");
    let public_port = u16::from_be_bytes([out.frame[34], out.frame[35]]);
    let data = tcp(PRIVATE, REMOTE, 40_000, 80, 0x10).frame(&[0u8; 1400]);
    let reply = tcp(REMOTE, PUBLIC, 80, public_port, 0x10).frame(&[0u8; 1400]);
    let arp = ethergate_fixtures::arp_request();
    let stray = tcp(REMOTE, PUBLIC, 443, 5555, 0x10).frame(&[]);

    let cases: [(&str, XdpProgram, &[u8], u32, u32); 4] = [
        ("uplink_pass_arp", XdpProgram::Uplink, &arp, pub0, XDP_PASS),
        (
            "uplink_pass_tcp_no_flow",
            XdpProgram::Uplink,
            &stray,
            pub0,
            XDP_PASS,
        ),
        (
            "inside_snat_tcp_1454",
            XdpProgram::Inside,
            &data,
            priv0,
            XDP_REDIRECT,
        ),
        (
            "uplink_reverse_nat_tcp_1454",
            XdpProgram::Uplink,
            &reply,
            pub0,
            XDP_REDIRECT,
        ),
    ];
    let mut g = c.benchmark_group("ebpf_test_run");
    g.throughput(Throughput::Elements(1));
    for (name, program, frame, ingress, expect) in cases {
        let once = dp
            .test_run(program, frame, Some(ingress))
            .expect("test run");
        assert_eq!(once.action, expect, "{name}: unexpected XDP action");
        let mut kernel = Duration::ZERO;
        let mut runs = 0u32;
        g.bench_function(name, |b| {
            b.iter(|| {
                let o = dp
                    .test_run(program, black_box(frame), Some(ingress))
                    .expect("test run");
                kernel += o.duration;
                runs += 1;
                black_box(o.action)
            })
        });
        if runs > 0 {
            println!(
                "{name}: kernel-measured {:.0} ns per run (mean of {runs} runs)",
                kernel.as_nanos() as f64 / f64::from(runs)
            );
        }
    }
    g.finish();
    c.final_summary();
}
