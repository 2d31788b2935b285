//! `[nat]`: interfaces, SNAT, DNAT, timeouts and limits.

use std::net::Ipv4Addr;

use super::*;

// ----- [nat] -----

#[test]
fn nat_interfaces() {
    assert_eq!(
        errors("[nat]\ninside = [\"eth1\", \"eth1\", \"bad name\"]\n"),
        vec![
            "t.toml:1: missing uplink in [nat]; add e.g. uplink = \"eth0\"",
            "t.toml:2: nat.inside lists eth1 twice",
            "t.toml:2: nat.inside \"bad name\" contains ' '; Linux interface names cannot \
             contain '/', ':' or whitespace",
        ]
    );
    assert_eq!(
        errors(&nat(
            "inside = [\"eth0\"]\n[[nat.snat]]\nsource = \"10.0.0.0/8\"\nto = \"masquerade\"\n"
        )),
        vec!["t.toml:3: nat.inside lists the uplink eth0; omit inside for one-armed mode instead"]
    );
    let text = format!(
        "{HUB}[nat]\nuplink = \"tap_00\"\ninside = [\"tap_00\"]\n[[nat.snat]]\n\
         source = \"10.0.0.0/8\"\nto = \"masquerade\"\n"
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:9: nat.uplink tap_00 is hub \"mikalab\"'s bridge; the uplink must be the \
             interface toward the router",
            "t.toml:10: nat.inside lists the uplink tap_00; omit inside for one-armed mode \
             instead",
        ]
    );
    let text = format!(
        "{HUB}[nat]\nuplink = \"eth0\"\ninside = [\"eth1\", \"tap_00\"]\n[[nat.snat]]\n\
         source = \"10.0.0.0/8\"\nto = \"masquerade\"\n"
    );
    let c = valid(&text);
    assert_eq!(
        warnings(&c),
        vec![
            "t.toml:10: nat.inside lists tap_00, hub \"mikalab\"'s bridge; hub taps are always \
             inside, so remove it"
        ]
    );
    assert_eq!(c.nat.as_ref().expect("nat").inside.len(), 2);
}

#[test]
fn nat_without_rules_is_a_warning() {
    let c = valid("[nat]\nuplink = \"eth0\"\n");
    assert_eq!(
        warnings(&c),
        vec!["t.toml:1: [nat] has no [[nat.snat]] or [[nat.dnat]] rules, so it translates nothing"]
    );
}

#[test]
fn snat_rules() {
    let text = nat(r#"[[nat.snat]]
source = "10.0.0.5/16"
to = "masquerade"
[[nat.snat]]
source = "10.1.0.0/16"
to = ["198.51.100.1", "masquerade", "198.51.100.1", "224.0.0.1", "x"]
[[nat.snat]]
source = "10.2.0.0/16"
to = []
[[nat.snat]]
source = "10.3.0.0/16"
[[nat.snat]]
source = "10.4.0.0/16"
to = "198.51.100.300"
[[nat.snat]]
source = "10.4.0.0/16"
to = "198.51.100.1"
"#);
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:4: nat.snat[1]: source 10.0.0.5/16 has host bits set; write the network, \
             10.0.0.0/16",
            "t.toml:8: nat.snat[2]: to mixes \"masquerade\" with addresses; write to = \
             \"masquerade\" alone",
            "t.toml:8: nat.snat[2]: to lists 198.51.100.1 twice",
            "t.toml:8: nat.snat[2]: to 224.0.0.1 is not a unicast address",
            "t.toml:8: nat.snat[2]: to \"x\" is neither \"masquerade\" nor an IPv4 address",
            "t.toml:11: nat.snat[3]: to is an empty list; give one or more addresses, or \
             \"masquerade\"",
            "t.toml:12: nat.snat[4]: missing to; add e.g. to = \"masquerade\"",
            "t.toml:16: nat.snat[5]: to \"198.51.100.300\" is neither \"masquerade\" nor an \
             IPv4 address",
            "t.toml:18: nat.snat[6]: source 10.4.0.0/16 is already handled by nat.snat[5]; \
             merge the two rules",
        ]
    );
}

#[test]
fn snat_to_several_addresses() {
    let c = valid(&nat(
        "[[nat.snat]]\nsource = \"10.0.0.0/16\"\nto = [\"198.51.100.1\", \"198.51.100.2\"]\n\
         [[nat.snat]]\nsource = \"10.0.1.0/24\"\nto = \"198.51.100.3\"\n",
    ));
    let snat = &c.nat.as_ref().expect("nat").snat;
    assert_eq!(
        snat[0].to,
        SnatTarget::Addresses(vec![
            Ipv4Addr::new(198, 51, 100, 1),
            Ipv4Addr::new(198, 51, 100, 2)
        ])
    );
    assert_eq!(
        snat[1].to,
        SnatTarget::Addresses(vec![Ipv4Addr::new(198, 51, 100, 3)])
    );
}

#[test]
fn dnat_rules() {
    let text = nat(r#"[[nat.dnat]]
source = "192.168.0.0/16"
protocol = "icmp"
port = 0
to = "10.0.1.26"
[[nat.dnat]]
source = "192.168.0.0/16"
destination = "198.51.100.1/24"
protocol = "udp"
port = 65536
to = "10.0.1.26:0"
[[nat.dnat]]
source = "192.168.0.0/16"
protocol = "tcp"
port = 80
to = "10.0.1.26:80"
[[nat.dnat]]
source = "192.168.0.0/16"
protocol = "tcp"
port = 80
to = "10.0.1.27:8080"
[[nat.dnat]]
"#);
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:5: nat.dnat[1]: protocol \"icmp\" is not \"tcp\" or \"udp\"",
            "t.toml:6: nat.dnat[1]: port = 0 is not a port from 1 to 65535",
            "t.toml:7: nat.dnat[1]: to \"10.0.1.26\" is not an IPv4 address with a port, like \
             \"10.0.1.26:80\"",
            "t.toml:10: nat.dnat[2]: destination 198.51.100.1/24 has host bits set; write the \
             network, 198.51.100.0/24",
            "t.toml:12: nat.dnat[2]: port = 65536 is not a port from 1 to 65535",
            "t.toml:13: nat.dnat[2]: to 10.0.1.26:0 needs a unicast address and a port other \
             than 0",
            "t.toml:20: nat.dnat[4]: matches the same tcp port 80 traffic as nat.dnat[3]; keep \
             one",
            "t.toml:24: nat.dnat[5]: missing source; add e.g. source = \"192.168.0.0/16\"",
            "t.toml:24: nat.dnat[5]: missing protocol; add e.g. protocol = \"tcp\"",
            "t.toml:24: nat.dnat[5]: missing port; add e.g. port = 80",
            "t.toml:24: nat.dnat[5]: missing to; add e.g. to = \"10.0.1.26:80\"",
        ]
    );
}

#[test]
fn dnat_destination_narrows_the_match() {
    let c = valid(&nat(
        "[[nat.dnat]]\nsource = \"192.168.0.0/16\"\ndestination = \"198.51.100.1/32\"\n\
         protocol = \"udp\"\nport = 53\nto = \"10.0.0.2:53\"\n\
         [[nat.dnat]]\nsource = \"192.168.0.0/16\"\nprotocol = \"udp\"\nport = 53\n\
         to = \"10.0.0.3:53\"\n",
    ));
    let dnat = &c.nat.as_ref().expect("nat").dnat;
    assert_eq!(dnat[0].destination.to_string(), "198.51.100.1/32");
    assert_eq!(dnat[0].protocol, L4Protocol::Udp);
    assert_eq!(dnat[1].destination.prefix_len(), 0);
}

#[test]
fn nat_timeouts_and_limits() {
    let text = nat(r#"[nat.timeouts]
tcp_established_secs = 350
tcp_transitory_secs = 400
udp_secs = 0
icmp_secs = 604801
[nat.limits]
max_flows = 100
"#);
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:5: nat.timeouts.tcp_transitory_secs (400) is longer than \
             tcp_established_secs (350); a closing flow would outlive an open one",
            "t.toml:6: nat.timeouts.udp_secs = 0 is out of range; use 1 to 604800 seconds",
            "t.toml:7: nat.timeouts.icmp_secs = 604801 is out of range; use 1 to 604800 seconds",
            "t.toml:9: nat.limits.max_flows = 100 is out of range; use 1024 to 16777216 \
             (default 262144)",
        ]
    );
    let c = valid(&nat(
        "[[nat.snat]]\nsource = \"10.0.0.0/16\"\nto = \"masquerade\"\n[nat.timeouts]\n\
         tcp_established_secs = 350\n[nat.limits]\nmax_flows = 1048576\n",
    ));
    let n = c.nat.as_ref().expect("nat");
    assert_eq!(
        n.timeouts,
        NatTimeouts {
            tcp_established_secs: 350,
            ..NatTimeouts::default()
        }
    );
    assert_eq!(n.limits.max_flows, 1 << 20);
}

#[test]
fn nat_mode_and_per_source_quota() {
    let rules = "[[nat.snat]]\nsource = \"10.0.0.0/16\"\nto = \"masquerade\"\n";
    let c = valid(&nat(rules));
    let n = c.nat.as_ref().expect("nat");
    assert_eq!(n.mode, NatMode::Auto);
    assert_eq!(n.limits.max_flows_per_source, DEFAULT_MAX_FLOWS / 4);

    let c = valid(&nat(&format!(
        "{rules}[nat.limits]\nmax_flows = 4096\nmax_flows_per_source = 0\n"
    )));
    assert_eq!(c.nat.as_ref().expect("nat").limits.max_flows_per_source, 0);
    let c = valid(&nat(&format!("{rules}[nat.limits]\nmax_flows = 4096\n")));
    assert_eq!(
        c.nat.as_ref().expect("nat").limits.max_flows_per_source,
        1024,
        "a quarter of the configured table"
    );

    for (mode, expected) in [("xdp", NatMode::Xdp), ("tc", NatMode::Tc)] {
        let text = nat(rules).replace("[nat]\n", &format!("[nat]\nmode = \"{mode}\"\n"));
        assert_eq!(valid(&text).nat.expect("nat").mode, expected);
    }
    let text = nat(&format!(
        "{rules}[nat.limits]\nmax_flows = 4096\nmax_flows_per_source = 5000\n"
    ))
    .replace("[nat]\n", "[nat]\nmode = \"fast\"\n");
    let problems = errors(&text);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains("nat.mode = \"fast\": use \"auto\""),
        "{problems:?}"
    );
    assert!(
        problems[1].contains(
            "max_flows_per_source = 5000 is out of range; use 0 (no limit) to max_flows (4096)"
        ),
        "{problems:?}"
    );
}
