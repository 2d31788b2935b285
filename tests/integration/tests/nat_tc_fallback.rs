//! The attach fallback chain's last step: when neither native nor generic
//! XDP attaches (here: another XDP program already owns both interfaces),
//! `apply_nat` attaches the tc program `nat_ingress` instead, reports mode
//! `tc`, and SNAT works both ways with real traffic.
//!
//! ```text
//! private (10.0.1.26) — nat (priv0 10.0.0.1 | pub0 203.0.113.1) — internet (203.0.113.10)
//! ```

mod common;

use common::{assert_no_nat_drops, curl, http_peer_server, snat_config, two_armed_topology};
use ethergate_common::NatEvent;
use ethergate_config::SnatTarget;
use ethergate_dataplane::{Dataplane, XdpAttachMode};

#[test]
fn snat_falls_back_to_tc_when_xdp_is_taken() {
    let topo = two_armed_topology();
    // Someone else's XDP program on both interfaces: native is taken, and
    // generic cannot coexist with native.
    let mut other = Dataplane::load().expect("load eBPF (run as root)");
    for interface in ["priv0", "pub0"] {
        let mode = topo
            .enter("nat", || other.attach_redirect_peer(interface))
            .expect("enter")
            .expect("the other program");
        assert_eq!(mode, XdpAttachMode::Native);
    }

    let mut dp = Dataplane::load().expect("load eBPF");
    let nat = snat_config("pub0", &["priv0"], SnatTarget::Masquerade);
    topo.enter("nat", || dp.apply_nat(&nat))
        .expect("enter nat")
        .expect("apply [nat] with the tc fallback");
    assert_eq!(dp.uplink_attachment(), Some(("pub0", XdpAttachMode::Tc)));
    assert_eq!(dp.inside_attachments(), [("priv0", XdpAttachMode::Tc)]);
    assert_eq!(XdpAttachMode::Tc.name(), "tc");

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
