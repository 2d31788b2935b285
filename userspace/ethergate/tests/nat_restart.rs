//! `ethergate serve` stopped and started again — by a new binary, as an
//! upgrade does — while a TCP transfer runs from the private subnet to the
//! outside through SNAT: the connection survives, no byte is lost, and the
//! new process says it adopted the flows. Needs root; run with
//! `--test-threads=1`.
//!
//! ```text
//! client/"internet" (198.51.100.2) — nat (serve: eth0 198.51.100.1 | eth1 10.0.0.1) — private (10.0.1.26)
//! ```

use std::time::Duration;

use ethergate_netns::stream;

mod common;
use common::{mount_pin_base, recipe_config_with_nat, recipe_topology, wait_for};

#[test]
fn an_snat_transfer_survives_a_restart_onto_a_new_binary() {
    let topo = recipe_topology();
    let (state, config) = recipe_config_with_nat(&topo, "");
    let config_arg = config.display().to_string();
    mount_pin_base();

    let start = |bin: &str| {
        let mut serve = topo
            .spawn("nat", &[bin, "serve", "--config", &config_arg])
            .expect("ethergate serve");
        wait_for(&mut serve, "VPN listeners up", Duration::from_secs(30));
        serve
    };
    let mut first = start(common::BIN);
    assert!(
        first.log().contains("NAT state: no previous NAT state"),
        "{}",
        first.log()
    );

    // 4 KiB every 2 ms for 8 s, from the private host to the outside.
    let receiver = stream::receive(&topo, "client", "198.51.100.2:7200").expect("receiver");
    let sender = stream::send_paced(
        &topo,
        "private",
        "198.51.100.2:7200",
        Duration::from_secs(8),
    )
    .expect("sender");

    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(first.stop(), Some(0), "{}", first.log());
    assert!(first.log().contains("stay attached"), "{}", first.log());
    // The upgrade: another binary file takes over.
    let upgraded = state.join("ethergate-upgraded");
    std::fs::copy(common::BIN, &upgraded).expect("copy the binary");
    let upgraded = upgraded.display().to_string();
    std::thread::sleep(Duration::from_millis(500));
    let mut second = start(&upgraded);
    assert!(
        second
            .log()
            .contains("NAT state: adopted the flows of the previous process"),
        "{}",
        second.log()
    );

    let sent = sender.join().expect("sender");
    let received = receiver.join().expect("receiver");
    assert_eq!(
        received.peer.ip().to_string(),
        "198.51.100.1",
        "translated source"
    );
    assert_eq!(
        received.bytes, sent,
        "every byte arrived, in one connection"
    );
    eprintln!(
        "serve restart onto a new binary: longest gap between reads {:?} over {} bytes",
        received.longest_gap, received.bytes
    );

    assert_eq!(second.stop(), Some(0), "{}", second.log());
    let forget = topo
        .run("nat", &[&upgraded, "nat", "forget"])
        .expect("nat forget");
    assert_eq!(forget.code, Some(0), "{}", forget.stderr);
    let _ = std::fs::remove_dir_all(&state);
}
