//! `[hub.dhcp]`: pool, lease, DNS, router and classless routes.

use std::net::Ipv4Addr;

use super::*;

// ----- [hub.dhcp] -----

#[test]
fn dhcp_range_outside_subnet_names_both() {
    assert_eq!(
        errors(&hub_with_dhcp("range = \"192.168.31.10-192.168.31.200\"\n")),
        vec![
            "t.toml:9: hub \"mikalab\": dhcp.range 192.168.31.10-192.168.31.200 is outside \
             bridge_address 192.168.30.1/24"
        ]
    );
}

#[test]
fn dhcp_range_rules() {
    for (range, why) in [
        (
            "192.168.30.200-192.168.30.10",
            "192.168.30.200-192.168.30.10 starts after it ends; write the lower address first",
        ),
        (
            "192.168.30.1-192.168.30.100",
            "192.168.30.1-192.168.30.100 includes bridge_address 192.168.30.1, the tap's own \
             address; start the range above it or end it below it",
        ),
        (
            "192.168.30.100-192.168.30.255",
            "192.168.30.100-192.168.30.255 includes the network or broadcast address of \
             192.168.30.0/24",
        ),
        (
            "192.168.30.100",
            "\"192.168.30.100\" is not a range like \"192.168.30.10-192.168.30.200\"",
        ),
    ] {
        assert_eq!(
            errors(&hub_with_dhcp(&format!("range = \"{range}\"\n"))),
            vec![format!("t.toml:9: hub \"mikalab\": dhcp.range {why}")],
            "range {range}"
        );
    }
    assert_eq!(
        errors(&hub_with_dhcp("lease_secs = 60\n")),
        vec![
            "t.toml:8: hub \"mikalab\": missing range in [hub.dhcp]; add e.g. range = \
             \"192.168.30.10-192.168.30.200\""
        ]
    );
    let c = valid(&hub_with_dhcp(
        "range = \"192.168.30.2 - 192.168.30.254\"\n",
    ));
    let dhcp = c.hubs[0].dhcp.as_ref().expect("dhcp");
    assert_eq!(dhcp.range.len(), 253);
    assert_eq!(dhcp.lease_secs, DEFAULT_LEASE_SECS);
    assert!(dhcp.dns.is_empty() && dhcp.routes.is_empty() && dhcp.router.is_none());
}

#[test]
fn dhcp_lease_bounds() {
    for lease in ["0", "59", "2592001", "-5", "99999999999"] {
        assert_eq!(
            errors(&hub_with_dhcp(&format!(
                "range = \"192.168.30.10-192.168.30.20\"\nlease_secs = {lease}\n"
            ))),
            vec![format!(
                "t.toml:10: hub \"mikalab\": dhcp.lease_secs = {lease} is out of range; use 60 \
                 to 2592000 seconds (default 7200)"
            )]
        );
    }
    let c = valid(&hub_with_dhcp(
        "range = \"192.168.30.10-192.168.30.20\"\nlease_secs = 2592000\n",
    ));
    assert_eq!(c.hubs[0].dhcp.as_ref().expect("dhcp").lease_secs, 2_592_000);
}

#[test]
fn dhcp_dns_and_router_rules() {
    let text = hub_with_dhcp(
        r#"range = "192.168.30.10-192.168.30.200"
dns = ["192.168.30.1", "8.8.8.8", "dns.google", "192.168.30.50"]
router = "10.0.0.1"
"#,
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:10: hub \"mikalab\": dhcp.dns entry \"dns.google\" is not an IPv4 address",
            "t.toml:10: hub \"mikalab\": dhcp.dns 192.168.30.50 is inside dhcp.range \
             192.168.30.10-192.168.30.200, so it could be leased to a client; move it out of \
             the range",
            "t.toml:11: hub \"mikalab\": dhcp.router 10.0.0.1 is not a host on the hub's \
             subnet 192.168.30.0/24, so clients cannot reach it; use an address inside \
             bridge_address 192.168.30.1/24",
        ]
    );
    assert_eq!(
        errors(&hub_with_dhcp(
            "range = \"192.168.30.10-192.168.30.200\"\nrouter = \"192.168.30.100\"\n"
        )),
        vec![
            "t.toml:10: hub \"mikalab\": dhcp.router 192.168.30.100 is inside dhcp.range \
             192.168.30.10-192.168.30.200, so it could be leased to a client; move it out of \
             the range"
        ]
    );
    let many: Vec<String> = (0..64).map(|i| format!("\"8.8.{i}.8\"")).collect();
    assert_eq!(
        errors(&hub_with_dhcp(&format!(
            "range = \"192.168.30.10-192.168.30.20\"\ndns = [{}]\n",
            many.join(", ")
        ))),
        vec![
            "t.toml:10: hub \"mikalab\": dhcp.dns lists 64 servers; at most 63 fit in DHCP option 6"
        ]
    );
    let c = valid(&hub_with_dhcp(
        "range = \"192.168.30.10-192.168.30.20\"\nrouter = \"192.168.30.254\"\n",
    ));
    assert_eq!(
        c.hubs[0].dhcp.as_ref().expect("dhcp").router,
        Some(Ipv4Addr::new(192, 168, 30, 254))
    );
    assert!(c.warnings.is_empty());
}

#[test]
fn dhcp_route_rules() {
    let text = hub_with_dhcp(
        r#"range = "192.168.30.10-192.168.30.200"
routes = [
  "10.0.0.0/16 via 192.168.30.1",
  "10.0.0.1/16 via 192.168.30.1",
  "172.16.0.0/12 via 10.0.0.1",
  "10.0.0.0/16 via 192.168.30.254",
  "10.1.0.0/16 192.168.30.1",
  "10.2.0.0/16 via 192.168.30.20",
]
"#,
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:12: hub \"mikalab\": dhcp.routes entry \"10.0.0.1/16 via 192.168.30.1\" has \
             host bits set in 10.0.0.1/16; write the network, 10.0.0.0/16",
            "t.toml:13: hub \"mikalab\": dhcp.routes entry \"172.16.0.0/12 via 10.0.0.1\": \
             gateway 10.0.0.1 is not a host on the hub's subnet 192.168.30.0/24, so clients \
             cannot reach it; use an address inside bridge_address 192.168.30.1/24",
            "t.toml:14: hub \"mikalab\": dhcp.routes entry \"10.0.0.0/16 via 192.168.30.254\" \
             repeats destination 10.0.0.0/16; keep one route per destination",
            "t.toml:15: hub \"mikalab\": dhcp.routes entry \"10.1.0.0/16 192.168.30.1\" is not \
             written as \"NETWORK/LEN via GATEWAY\", e.g. \"10.0.0.0/16 via 192.168.30.1\"",
            "t.toml:16: hub \"mikalab\": dhcp.routes entry \"10.2.0.0/16 via 192.168.30.20\": \
             gateway 192.168.30.20 is inside dhcp.range 192.168.30.10-192.168.30.200, so it \
             could be leased to a client; move it out of the range",
        ]
    );
    let many: Vec<String> = (0..65)
        .map(|i| format!("\"10.{i}.0.0/16 via 192.168.30.1\""))
        .collect();
    assert_eq!(
        errors(&hub_with_dhcp(&format!(
            "range = \"192.168.30.10-192.168.30.20\"\nroutes = [{}]\n",
            many.join(", ")
        ))),
        vec![
            "t.toml:10: hub \"mikalab\": dhcp.routes lists 65 routes; SoftEther clients accept \
             at most 64"
        ]
    );
    let c = valid(&hub_with_dhcp(&format!(
        "range = \"192.168.30.10-192.168.30.20\"\nrouter = \"192.168.30.1\"\n\
         routes = [{}, \"0.0.0.0/0 via 192.168.30.1\"]\n",
        many[..63].join(", ")
    )));
    let dhcp = c.hubs[0].dhcp.as_ref().expect("dhcp");
    assert_eq!(dhcp.routes.len(), 64);
    // A default route among the routes: no RFC 3442 router warning.
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn dhcp_checks_skip_the_subnet_when_bridge_address_is_bad() {
    let text = HUB.replace("192.168.30.1/24", "192.168.30.1/99")
        + "[hub.dhcp]\nrange = \"192.168.30.10-192.168.30.200\"\n";
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:4: hub \"mikalab\": bridge_address \"192.168.30.1/99\" prefix length \"99\" \
             is not a number from 0 to 32"
        ]
    );
}
