//! Two sessions served by different worker threads exchange frames through
//! their hub both ways, and a flood from one reaches the other exactly
//! once: the hub's switch is shared by the workers, not owned by a thread.
//! `client (198.51.100.x) — nat (ethergate)`. Needs root; run with
//! `--test-threads=1`.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddrV4},
    time::Duration,
};

use ethergate_login::{Session, Target};

mod common;
use common::{recipe_appliance, status_json};

const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 443);
/// An ethertype nobody else on the hub speaks (IEEE local experimental),
/// so the tap's own traffic (IPv6 router solicitations…) is told apart.
const ETHERTYPE: [u8; 2] = [0x88, 0xb5];

fn frame(dst: [u8; 6], src: [u8; 6], seq: u32) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&ETHERTYPE);
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    f
}

/// The test's frames `session` receives within `window`, as (source MAC,
/// sequence number).
fn received(session: &mut Session, window: Duration) -> Vec<([u8; 6], u32)> {
    session
        .recv_frames(window)
        .expect("read from the session")
        .into_iter()
        .filter(|f| f.len() >= 18 && f[12..14] == ETHERTYPE)
        .map(|f| {
            let mut src = [0u8; 6];
            src.copy_from_slice(&f[6..12]);
            (src, u32::from_be_bytes([f[14], f[15], f[16], f[17]]))
        })
        .collect()
}

#[test]
fn sessions_on_different_workers_switch_both_ways_and_floods_reach_each_once() {
    let app = recipe_appliance(|_, _| Vec::new());
    let socket = app.state.join("admin.sock").display().to_string();
    let workers = status_json(&socket)["server"]["workers"]
        .as_u64()
        .unwrap_or(1) as usize;
    if workers < 2 {
        eprintln!("skipped: this machine gives the server one worker");
        return;
    }
    // Two client addresses the server steers to workers 0 and 1.
    let pick = |worker: usize| {
        (10..250u8)
            .map(|host| Ipv4Addr::new(198, 51, 100, host))
            .find(|a| ethergate_server::worker_for_source(IpAddr::V4(*a), workers) == worker)
            .expect("an address for each worker")
    };
    let sources = [pick(0), pick(1)];
    for source in sources {
        app.topo
            .ip(
                "client",
                &["addr", "add", &format!("{source}/24"), "dev", "eth0"],
            )
            .expect("client address");
    }
    let [mut a, mut b] = app
        .topo
        .enter("client", move || {
            let tls = ethergate_login::tls_config().expect("TLS config");
            let target = Target {
                server: SERVER,
                hub: "mikalab".into(),
                user: "tsumura".into(),
                password: "mikalab-pass".into(),
            };
            sources.map(|source| {
                ethergate_login::login(&target, source, &tls)
                    .unwrap_or_else(|e| panic!("login from {source}: {e}"))
                    .0
            })
        })
        .expect("enter the client namespace");

    // The server says which worker serves each session.
    let status = status_json(&socket);
    let mut on = std::collections::BTreeMap::new();
    for s in status["sessions"].as_array().expect("sessions") {
        let client: std::net::SocketAddr =
            s["client"].as_str().expect("client").parse().expect("addr");
        on.insert(client.ip(), s["worker"].as_u64().expect("worker"));
    }
    assert_eq!(on.get(&IpAddr::V4(sources[0])), Some(&0), "{status}");
    assert_eq!(on.get(&IpAddr::V4(sources[1])), Some(&1), "{status}");

    let (mac_a, mac_b) = ([0x02, 0xa0, 0, 0, 0, 1], [0x02, 0xb0, 0, 0, 0, 2]);
    const BROADCAST: [u8; 6] = [0xff; 6];
    // Each announces itself with a broadcast: the other gets it once.
    a.send_frames(&[frame(BROADCAST, mac_a, 0)]).expect("send");
    assert_eq!(
        received(&mut b, Duration::from_millis(500)),
        vec![(mac_a, 0)]
    );
    b.send_frames(&[frame(BROADCAST, mac_b, 0)]).expect("send");
    assert_eq!(
        received(&mut a, Duration::from_millis(500)),
        vec![(mac_b, 0)]
    );

    // Unicast both ways, across the workers, in order, once each.
    let batch = |dst, src| (1..=200).map(|n| frame(dst, src, n)).collect::<Vec<_>>();
    a.send_frames(&batch(mac_b, mac_a)).expect("send");
    b.send_frames(&batch(mac_a, mac_b)).expect("send");
    let want = |src| (1..=200).map(|n| (src, n)).collect::<Vec<_>>();
    assert_eq!(received(&mut b, Duration::from_secs(1)), want(mac_a));
    assert_eq!(received(&mut a, Duration::from_secs(1)), want(mac_b));

    // Unknown unicast floods: the other session gets it once.
    a.send_frames(&[frame([0x02, 0xee, 0, 0, 0, 9], mac_a, 999)])
        .expect("send");
    assert_eq!(
        received(&mut b, Duration::from_millis(500)),
        vec![(mac_a, 999)]
    );
    assert_eq!(received(&mut a, Duration::from_millis(200)), vec![]);

    let hub = &status_json(&socket)["hubs"][0];
    assert_eq!(hub["session_frames_dropped"].as_u64(), Some(0), "{hub}");
    a.close();
    b.close();
}
