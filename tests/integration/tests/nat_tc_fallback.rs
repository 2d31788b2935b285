//! The attach fallback chain's last step: when neither native nor generic
//! XDP attaches (here: another XDP program already owns both interfaces),
//! `apply_nat` attaches the tc program `nat_ingress` instead, reports mode
//! `tc`, and SNAT works both ways with real traffic.
//!
//! ```text
//! private (10.0.1.26) — nat (priv0 10.0.0.1 | pub0 203.0.113.1) — internet (203.0.113.10)
//! ```

use std::{
    io::{Read, Write},
    net::TcpListener,
    str::FromStr,
};

use ethergate_common::{DropReason, NatEvent};
use ethergate_config::{
    InterfaceName, Ipv4Cidr, Nat, NatLimits, NatTimeouts, SnatRule, SnatTarget,
};
use ethergate_dataplane::{Dataplane, XdpAttachMode};
use ethergate_netns::{Endpoint, Topology};

#[test]
fn snat_falls_back_to_tc_when_xdp_is_taken() {
    let topo = Topology::builder()
        .namespace("private")
        .namespace("nat")
        .namespace("internet")
        .sysctl_everywhere("net.ipv6.conf.default.disable_ipv6", "1")
        .sysctl("nat", "net.ipv4.ip_forward", "1")
        .veth(
            Endpoint::new("private", "eth0", &["10.0.1.26/16"]),
            Endpoint::new("nat", "priv0", &["10.0.0.1/16"]),
        )
        .veth(
            Endpoint::new("nat", "pub0", &["203.0.113.1/24"]),
            Endpoint::new("internet", "eth0", &["203.0.113.10/24"]),
        )
        .route("private", "default via 10.0.0.1")
        .build()
        .expect("build topology (run as root)");
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
    let nat = Nat {
        uplink: InterfaceName::new("pub0").expect("name"),
        inside: vec![InterfaceName::new("priv0").expect("name")],
        snat: vec![SnatRule {
            source: Ipv4Cidr::from_str("10.0.0.0/16").expect("cidr"),
            to: SnatTarget::Masquerade,
        }],
        dnat: Vec::new(),
        timeouts: NatTimeouts::default(),
        limits: NatLimits::default(),
    };
    topo.enter("nat", || dp.apply_nat(&nat))
        .expect("enter nat")
        .expect("apply [nat] with the tc fallback");
    assert_eq!(dp.uplink_attachment(), Some(("pub0", XdpAttachMode::Tc)));
    assert_eq!(dp.inside_attachments(), [("priv0", XdpAttachMode::Tc)]);
    assert_eq!(XdpAttachMode::Tc.name(), "tc");

    let listener = topo
        .enter("internet", || {
            TcpListener::bind("203.0.113.10:8080").expect("bind")
        })
        .expect("enter internet");
    let server = std::thread::spawn(move || {
        let (mut stream, peer) = listener.accept().expect("accept");
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request).expect("read");
        let body = format!("{}\n", peer.ip());
        let response = format!(
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).expect("respond");
    });
    // Checksum offloads stay on: tc rewrites through the kernel helpers.
    let seen = topo
        .exec(
            "private",
            &[
                "curl",
                "-sS",
                "--max-time",
                "5",
                "http://203.0.113.10:8080/",
            ],
        )
        .expect("curl through tc SNAT");
    server.join().expect("server");
    assert_eq!(seen.stdout.trim(), "203.0.113.1");
    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_event(NatEvent::FlowCreated), 1);
    assert!(c.nat_event(NatEvent::TranslatedOut) >= 3);
    assert!(c.nat_event(NatEvent::TranslatedIn) >= 3);
    for reason in DropReason::ALL {
        assert_eq!(c.nat_drop(reason), 0, "{reason:?}");
    }
}
