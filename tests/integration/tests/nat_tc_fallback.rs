//! How `[nat] mode` picks the attach mode, and what it says about it:
//! auto runs tc on veths (and says why), `xdp` on an interface whose XDP
//! hook is taken is a clear error that leaves nothing attached, and the tc
//! path translates with the senders' checksum offloads on.
//!
//! ```text
//! private (10.0.1.26) — nat (priv0 10.0.0.1 | pub0 203.0.113.1) — internet (203.0.113.10)
//! ```

mod common;

use common::{assert_no_nat_drops, curl, http_peer_server, snat_config, two_armed_topology};
use ethergate_common::NatEvent;
use ethergate_config::{NatMode, SnatTarget};
use ethergate_dataplane::{AttachMode, Dataplane, DataplaneError};

#[test]
fn auto_mode_runs_tc_on_veths_and_says_why() {
    let topo = two_armed_topology();
    let mut dp = Dataplane::load().expect("load eBPF (run as root)");
    let nat = snat_config("pub0", &["priv0"], SnatTarget::Masquerade);
    assert_eq!(nat.mode, NatMode::Auto);
    topo.enter("nat", || dp.apply_nat(&nat))
        .expect("enter nat")
        .expect("apply [nat]");
    let uplink = dp.uplink_attachment().expect("uplink attached").clone();
    assert_eq!(uplink.mode, AttachMode::Tc);
    assert!(uplink.reason.contains("veth"), "{}", uplink.reason);
    let inside = dp.inside_attachments();
    assert_eq!(inside.len(), 1);
    assert_eq!(
        (inside[0].interface.as_str(), inside[0].mode),
        ("priv0", AttachMode::Tc)
    );
    assert_eq!(AttachMode::Tc.name(), "tc");

    let server = http_peer_server(&topo, "internet", "203.0.113.10:8080");
    // Checksum offloads stay on: tc rewrites through the kernel helpers.
    let seen = curl(&topo, "private", "http://203.0.113.10:8080/");
    server.join().expect("server");
    assert_eq!(seen.trim(), "203.0.113.1");
    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_event(NatEvent::FlowCreated), 1);
    assert!(c.nat_event(NatEvent::TranslatedOut) >= 3);
    assert!(c.nat_event(NatEvent::TranslatedIn) >= 3);
    assert_no_nat_drops(&c);
}

#[test]
fn forced_xdp_on_a_taken_interface_is_a_clear_error() {
    let topo = two_armed_topology();
    // Someone else's XDP program owns the uplink.
    let mut other = Dataplane::load().expect("load eBPF (run as root)");
    let mode = topo
        .enter("nat", || other.attach_redirect_peer("pub0"))
        .expect("enter")
        .expect("the other program");
    assert_eq!(mode, AttachMode::XdpNative);

    let mut dp = Dataplane::load().expect("load eBPF");
    let mut nat = snat_config("pub0", &["priv0"], SnatTarget::Masquerade);
    nat.mode = NatMode::Xdp;
    let err = topo
        .enter("nat", || dp.apply_nat(&nat))
        .expect("enter nat")
        .expect_err("native XDP is taken");
    assert!(
        matches!(&err, DataplaneError::NativeXdp { interface, .. } if interface == "pub0"),
        "{err}"
    );
    assert!(err.to_string().contains("mode = \"auto\""), "{err}");
    assert!(dp.uplink_attachment().is_none());
}
