//! criterion bench of the local bridge's tap writes (ethergate-bridge):
//! frames per second written into one queue of a multi-queue tap in a
//! throwaway namespace, at 64 and 1514 bytes. Needs root.
//!
//! Two destinations bracket the cost: a frame for another host on the hub
//! (the kernel drops it right after the Ethernet layer: the bare cost of a
//! tap write, design.md's ~1.25 µs) and a UDP datagram for the appliance
//! itself (through IP and UDP to a closed port, as a VPN client's traffic
//! to the NAT goes up the stack).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ethergate_bridge::{LinkConfig, MacAddr, Tap};
use ethergate_netns::Topology;
use etherparse::PacketBuilder;

const FRAME_SIZES: [usize; 2] = [64, 1514];
/// Ethernet + IPv4 + UDP headers.
const HEADERS: usize = 14 + 20 + 8;
const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0x1e, 0, 0, 2];
const OTHER_MAC: [u8; 6] = [0x02, 0xc1, 0x1e, 0, 0, 3];

fn udp_frame(dst_mac: [u8; 6], dst_ip: [u8; 4], size: usize) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(CLIENT_MAC, dst_mac)
        .ipv4([192, 168, 30, 2], dst_ip, 64)
        .udp(40000, 9);
    let payload = vec![0xab; size - HEADERS];
    let mut frame = Vec::with_capacity(size);
    builder.write(&mut frame, &payload).expect("building frame");
    assert_eq!(frame.len(), size);
    frame
}

fn tap_write(c: &mut Criterion) {
    let topo = Topology::builder()
        .namespace("nat")
        .build()
        .expect("building the nat namespace (bench needs root)");
    let tap_mac = MacAddr::local_from_seed("mikalab".as_bytes());
    let tap = topo
        .enter("nat", || {
            let tap = Tap::create("tap_00", 2).expect("creating tap_00");
            tap.configure(&LinkConfig {
                mac: Some(tap_mac),
                ipv4: Some("192.168.30.1/24".parse().expect("cidr")),
                ..LinkConfig::default()
            })
            .expect("configuring tap_00");
            tap
        })
        .expect("entering nat");
    let queue = &tap.queues()[0];

    let mut group = c.benchmark_group("tap_write");
    group.measurement_time(Duration::from_secs(3));
    for size in FRAME_SIZES {
        group.throughput(Throughput::Elements(1));
        for (dest, frame) in [
            ("other_host", udp_frame(OTHER_MAC, [192, 168, 30, 3], size)),
            ("local_udp", udp_frame(tap_mac.0, [192, 168, 30, 1], size)),
        ] {
            group.bench_with_input(BenchmarkId::new(dest, size), &frame, |b, frame| {
                b.iter(|| queue.write(black_box(frame)).expect("tap write"));
            });
        }
    }
    group.finish();
    drop(tap);
    drop(topo);
}

criterion_group!(benches, tap_write);
criterion_main!(benches);
