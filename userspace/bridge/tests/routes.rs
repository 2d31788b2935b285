//! Routes through a tap as `ethergate client` installs them from a DHCP
//! lease: via a gateway, on-link, the default route, and a clash with an
//! existing route reported rather than replaced.

mod common;

use common::{TAP, ip, topology};
use ethergate_bridge::{LinkConfig, RouteError, Tap, add_route};

#[test]
fn routes_via_gateway_on_link_and_default() {
    let topo = topology();
    let tap = topo
        .enter("nat", || {
            let tap = Tap::create(TAP, 1).expect("creating the tap");
            tap.configure(&LinkConfig {
                ipv4: Some("192.168.30.10/24".parse().expect("valid cidr")),
                ..LinkConfig::default()
            })
            .expect("configuring the tap");
            let index = tap.ifindex();
            let gw = "192.168.30.1".parse().expect("valid address");
            // Host bits in the destination are cleared, as RFC 3442 sends
            // only the significant octets.
            add_route("10.0.1.26/16".parse().expect("valid"), gw, index)
                .expect("10.0.0.0/16 via the gateway");
            add_route(
                "172.16.0.0/12".parse().expect("valid"),
                std::net::Ipv4Addr::UNSPECIFIED,
                index,
            )
            .expect("an on-link route");
            add_route("0.0.0.0/0".parse().expect("valid"), gw, index).expect("default route");
            let again = add_route("10.0.0.0/16".parse().expect("valid"), gw, index);
            assert!(
                matches!(again, Err(RouteError::Exists { .. })),
                "a second add must report the clash: {again:?}"
            );
            let unreachable = add_route(
                "10.99.0.0/16".parse().expect("valid"),
                "203.0.113.1".parse().expect("valid"),
                index,
            );
            let err = unreachable.expect_err("a gateway off the link is refused");
            assert!(err.to_string().contains("203.0.113.1"), "{err}");
            tap
        })
        .expect("entering nat");
    let routes = ip(&topo, &["-4", "route", "show"]);
    for want in [
        format!("default via 192.168.30.1 dev {TAP} proto dhcp"),
        format!("10.0.0.0/16 via 192.168.30.1 dev {TAP} proto dhcp"),
        format!("172.16.0.0/12 dev {TAP} proto dhcp scope link"),
    ] {
        assert!(
            routes.lines().any(|l| l.trim().starts_with(&want)),
            "missing {want:?} in:\n{routes}"
        );
    }
    drop(tap);
    // The routes leave with the link.
    let routes = ip(&topo, &["-4", "route", "show"]);
    assert!(!routes.contains(TAP), "{routes}");
}
