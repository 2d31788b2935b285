//! What the shared hub plane's lock costs: batches of 64 unicast frames
//! switched between sessions of one hub (`HubPlane::switch_from_session`: lock,
//! learn, look up, copy, unlock, hand to the outbox), by one thread alone
//! and by two threads at once, each with its own pair of sessions. If the
//! lock serialised the workers, two threads would take twice as long per
//! batch as one; decision 0009 reads this row.

use std::{
    sync::{Arc, Barrier},
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ethergate_config::SessionLimits;
use ethergate_hub::{Hub, HubOptions, MacAddr, PortId};
use ethergate_proto::data::Frames;
use ethergate_server::{
    hub_plane::{HubPlane, SessionPolicy, SwitchBuffers},
    hub_switch::HubSwitch,
    outbox::{LaneId, Outbox},
};

const BATCH: usize = 64;

fn mac(n: u64) -> MacAddr {
    MacAddr([0x02, 0x55, 0, 0, 0, n as u8])
}

fn frame(dst: MacAddr, src: MacAddr) -> Vec<u8> {
    let mut f = vec![0u8; 1400];
    f[..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

/// A hub with `pairs` pairs of sessions (ports 2i+1 → 2i+2), each
/// destination's outbox with one lane, and every MAC learned.
fn hub_with_pairs(pairs: u64) -> (Arc<HubPlane>, Vec<(Arc<Outbox>, LaneId)>) {
    let switch = HubSwitch::new(Hub::new("bench", HubOptions::default(), None), None);
    let plane = Arc::new(
        HubPlane::new("bench", switch, Vec::new(), Arc::default()).expect("a plane without taps"),
    );
    let mut outboxes = Vec::new();
    let mut learn = SwitchBuffers::default();
    for port in 1..=pairs * 2 {
        let outbox = Arc::new(Outbox::new(64 << 20));
        let lane = outbox.join();
        assert!(plane.attach(
            PortId(port),
            Arc::clone(&outbox),
            0,
            &SessionPolicy::new(&format!("user{port}"), SessionLimits::default()),
        ));
        let mut hello = Frames::new();
        hello.push(&frame(MacAddr::BROADCAST, mac(port)));
        plane.switch_from_session(PortId(port), &hello, 0, &mut learn);
        outboxes.push((outbox, lane));
    }
    // Drain the announcements.
    let mut sink = Frames::new();
    for (outbox, lane) in &outboxes {
        outbox.take(*lane, &mut sink);
        sink.clear();
    }
    (plane, outboxes)
}

/// `iters` batches from session `2*pair+1` to `2*pair+2`, draining the
/// destination as a connection would.
fn run(plane: &HubPlane, outbox: &(Arc<Outbox>, LaneId), pair: u64, iters: u64) {
    let from = pair * 2 + 1;
    let mut batch = Frames::new();
    for _ in 0..BATCH {
        batch.push(&frame(mac(from + 1), mac(from)));
    }
    let mut buffers = SwitchBuffers::default();
    let mut sink = Frames::new();
    for _ in 0..iters {
        plane.switch_from_session(PortId(from), &batch, pair as usize, &mut buffers);
        outbox.0.take(outbox.1, &mut sink);
        sink.clear();
    }
}

/// `iters` bursts of 64 frames read from the bridge for session
/// `2*pair+2`, draining it as its connection would.
fn run_bridge(plane: &HubPlane, outbox: &(Arc<Outbox>, LaneId), pair: u64, iters: u64) {
    let to = pair * 2 + 2;
    let mut reads: Vec<Vec<u8>> = (0..BATCH)
        .map(|_| frame(mac(to), MacAddr([0x02, 0xbb, 0, 0, 0, pair as u8])))
        .collect();
    let mut buffers = SwitchBuffers::default();
    let mut sink = Frames::new();
    for _ in 0..iters {
        plane.switch_from_bridge(
            reads.iter_mut().map(Vec::as_mut_slice),
            pair as usize,
            &mut buffers,
        );
        outbox.0.take(outbox.1, &mut sink);
        sink.clear();
    }
}

/// Two threads each running `each(pair, iters)`; the wall time of both.
fn two_at_once(iters: u64, each: impl Fn(u64, u64) + Send + Sync + 'static) -> Duration {
    let each = Arc::new(each);
    let barrier = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..2u64)
        .map(|pair| {
            let (each, barrier) = (Arc::clone(&each), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                each(pair, iters);
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for t in threads {
        t.join().expect("bench thread");
    }
    start.elapsed()
}

fn bench_plane(c: &mut Criterion) {
    let mut g = c.benchmark_group("hub_plane");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.measurement_time(Duration::from_secs(3));

    let (plane, outboxes) = hub_with_pairs(1);
    g.bench_function("64-frame batch, one worker", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            run(&plane, &outboxes[1], 0, iters);
            start.elapsed()
        });
    });

    // Two threads, each switching `iters` batches of its own session pair
    // through the same hub; the time is the wall time of both, per batch
    // of one thread: equal to the row above when they do not get in each
    // other's way, twice it when the lock serialises them.
    let shared = Arc::new(hub_with_pairs(2));
    g.bench_function("64-frame batch, two workers at once", |b| {
        b.iter_custom(|iters| {
            let shared = Arc::clone(&shared);
            two_at_once(iters, move |pair, iters| {
                let (plane, outboxes) = &*shared;
                run(plane, &outboxes[pair as usize * 2 + 1], pair, iters);
            })
        });
    });

    // The control: two threads, each with a hub of its own. Whatever the
    // machine itself loses running two threads at once (shared cores,
    // memory bandwidth) shows here too; the difference to the row above
    // is what sharing the hub costs.
    let hubs: Arc<Vec<_>> = Arc::new((0..2).map(|_| hub_with_pairs(1)).collect());
    g.bench_function("64-frame batch, two workers, a hub each", |b| {
        b.iter_custom(|iters| {
            let hubs = Arc::clone(&hubs);
            two_at_once(iters, move |i, iters| {
                let (plane, outboxes) = &hubs[i as usize];
                run(plane, &outboxes[1], 0, iters);
            })
        });
    });

    // Frames read from the tap (no offload) for sessions: one worker, then
    // two reading their own queues at once.
    let (plane, outboxes) = hub_with_pairs(1);
    g.bench_function("64 bridge frames, one worker", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            run_bridge(&plane, &outboxes[1], 0, iters);
            start.elapsed()
        });
    });
    let (plane, outboxes) = hub_with_pairs(2);
    let shared = Arc::new((plane, outboxes));
    g.bench_function("64 bridge frames, two workers at once", |b| {
        b.iter_custom(|iters| {
            let shared = Arc::clone(&shared);
            two_at_once(iters, move |pair, iters| {
                let (plane, outboxes) = &*shared;
                run_bridge(plane, &outboxes[pair as usize * 2 + 1], pair, iters);
            })
        });
    });
    g.finish();
}

criterion_group!(benches, bench_plane);
criterion_main!(benches);
