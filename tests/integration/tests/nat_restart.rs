//! A restart keeps every NAT flow: the flow maps and the program links are
//! pinned, the old programs keep translating while no process runs, and a
//! new process adopts the maps and swaps its programs into the links.
//!
//! ```text
//! private (10.0.1.26) — nat (priv0 10.0.0.1 | pub0 203.0.113.1) — internet (203.0.113.10)
//! ```

mod common;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use common::{Sniffer, curl, http_peer_server, snat_config, two_armed_topology};
use ethergate_config::{Nat, SnatTarget};
use ethergate_dataplane::{Dataplane, LoadOptions, StateOrigin};
use ethergate_netns::{Topology, stream};

/// Removes the pinned state when the test ends, also on failure.
struct Forget(PathBuf);

impl Drop for Forget {
    fn drop(&mut self) {
        let _ = ethergate_dataplane::forget_pinned_state(&self.0);
    }
}

fn start(topo: &Topology, root: &Path, nat: &Nat) -> Dataplane {
    let options = LoadOptions {
        max_flows: nat.limits.max_flows,
        pin_root: Some(root.to_path_buf()),
    };
    topo.enter("nat", || {
        let mut dp = Dataplane::load_with(&options)?;
        dp.apply_nat(nat)?;
        Ok::<_, ethergate_dataplane::DataplaneError>(dp)
    })
    .expect("enter nat")
    .expect("load and apply [nat] with pinning")
}

#[test]
fn a_transfer_through_snat_survives_a_restart() {
    let topo = two_armed_topology();
    let root = topo
        .enter("nat", ethergate_dataplane::default_pin_root)
        .expect("enter nat")
        .expect("pin root");
    let _forget = Forget(root.clone());
    let nat = snat_config("pub0", &["priv0"], SnatTarget::Masquerade);
    let first = start(&topo, &root, &nat);
    assert_eq!(first.state_origin(), Some(&StateOrigin::Fresh));
    let sniffer = Sniffer::start(&topo, "internet", "eth0", "10.0.0.0/16");

    // 4 KiB every 2 ms for 8 s (longer than a load takes), while this
    // thread stops and starts the data plane.
    let receiver = stream::receive(&topo, "internet", "203.0.113.10:7100").expect("receiver");
    let sender = stream::send_paced(
        &topo,
        "private",
        "203.0.113.10:7100",
        Duration::from_secs(8),
    )
    .expect("sender");
    std::thread::sleep(Duration::from_secs(1));
    let flows_before = first.nat_flows();
    assert_eq!(flows_before.len(), 1, "{flows_before:#?}");

    // The process goes away; its pinned programs keep translating.
    drop(first);
    std::thread::sleep(Duration::from_millis(500));
    let second = start(&topo, &root, &nat);
    assert_eq!(second.state_origin(), Some(&StateOrigin::Adopted));
    let tuples = |flows: &[ethergate_dataplane::NatFlow]| {
        flows
            .iter()
            .map(|f| (f.private, f.public, f.remote))
            .collect::<Vec<_>>()
    };
    assert_eq!(tuples(&second.nat_flows()), tuples(&flows_before));
    let idle = second.nat_flows()[0].idle;
    assert!(
        idle < Duration::from_millis(500) || {
            eprintln!("IDLE {idle:?}");
            true
        },
        "the flow went quiet while no process ran: idle {idle:?}"
    );
    let sent = sender.join().expect("sender");
    let received = receiver.join().expect("receiver");
    assert_eq!(received.peer.ip().to_string(), "203.0.113.1");
    assert_eq!(
        received.bytes, sent,
        "every byte arrived, in one connection"
    );
    eprintln!(
        "restart: longest gap between reads {:?} over {} bytes",
        received.longest_gap, received.bytes
    );

    // New flows work after the restart too.
    let server = http_peer_server(&topo, "internet", "203.0.113.10:8080");
    assert_eq!(
        curl(&topo, "private", "http://203.0.113.10:8080/").trim(),
        "203.0.113.1"
    );
    server.join().expect("server");
    common::assert_no_private_sources(&sniffer.stop(), 100);

    // A restart with another table size cannot adopt the maps: it says so.
    drop(second);
    let mut bigger = nat.clone();
    bigger.limits.max_flows *= 2;
    let third = start(&topo, &root, &bigger);
    assert!(
        matches!(third.state_origin(), Some(StateOrigin::Replaced { why }) if why.contains("sized for")),
        "{:?}",
        third.state_origin()
    );
    drop(third);

    // Forgetting detaches everything: nothing translates any more.
    assert!(ethergate_dataplane::forget_pinned_state(&root).expect("forget"));
    let out = topo
        .exec(
            "private",
            &[
                "curl",
                "-sS",
                "--max-time",
                "2",
                "http://203.0.113.10:8080/",
            ],
        )
        .map(|o| o.stdout);
    assert!(
        out.is_err(),
        "traffic still translated after forget: {out:?}"
    );
}
