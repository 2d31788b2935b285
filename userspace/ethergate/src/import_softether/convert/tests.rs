use ethergate_config::Config;
use proptest::prelude::*;

use super::*;
use crate::softether_cfg::{self as cfg, Folder};

fn real() -> Folder {
    cfg::parse(include_bytes!("../testdata/vpn_server.config")).expect("fixture parses")
}

/// The import's notes as one text, after checking each of `expected`
/// is in it.
fn notes_containing(notes: &[String], expected: &[&str]) -> String {
    let notes = notes.join("\n");
    for expected in expected {
        assert!(
            notes.contains(expected),
            "missing {expected:?} in:\n{notes}"
        );
    }
    notes
}

fn tls() -> TlsPaths {
    TlsPaths {
        cert: "/etc/ethergate/ethergate.cert.pem".into(),
        key: "/etc/ethergate/ethergate.key.pem".into(),
    }
}

#[test]
fn real_config_converts_to_a_valid_ethergate_config() {
    let imported = convert(&real(), "vpn_server.config", Some(&tls()));
    let config = Config::from_str_with_origin(&imported.toml, "imported.toml")
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.toml));
    assert_eq!(config.hubs.len(), 1, "DEFAULT (untouched) is skipped");
    let hub = &config.hubs[0];
    assert_eq!(hub.name, "MIKALAB");
    assert_eq!(hub.bridge.as_str(), "tap_00", "the tap-mode local bridge");
    assert_eq!(hub.bridge_address.to_string(), "192.168.30.1/24");
    // vpncmd UserPasswordSet tsumura /PASSWORD:old-secret on the server.
    let user = hub.user("tsumura").expect("password user");
    assert_eq!(
        user.password_hash,
        PasswordHash::from_password("tsumura", "old-secret")
    );
    assert_eq!(hub.users.len(), 1, "the RADIUS user is not imported");
    let dhcp = hub.dhcp.as_ref().expect("SecureNAT DHCP");
    assert_eq!(dhcp.range.first, Ipv4Addr::new(192, 168, 30, 10));
    assert_eq!(dhcp.range.last, Ipv4Addr::new(192, 168, 30, 200));
    assert_eq!(dhcp.lease_secs, 7200);
    assert_eq!(dhcp.dns, vec![Ipv4Addr::new(192, 168, 30, 1)]);
    assert_eq!(dhcp.router, None, "/GW:none is stored as 0.0.0.0");
    let routes: Vec<String> = dhcp.routes.iter().map(ToString::to_string).collect();
    assert_eq!(
        routes,
        [
            "10.0.0.0/16 via 192.168.30.1",
            "172.16.0.0/12 via 192.168.30.1"
        ]
    );
    let listen: Vec<String> = config
        .server
        .listen
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        listen,
        ["0.0.0.0:443", "0.0.0.0:992", "0.0.0.0:1194", "0.0.0.0:5555"]
    );
    let tls = config.server.tls.expect("certificate carried over");
    assert_eq!(tls.cert.to_str(), Some("/etc/ethergate/ethergate.cert.pem"));
    let identity = imported.identity.expect("identity");
    assert_eq!(identity.cert_der[0], 0x30, "DER certificate");

    notes_containing(
        &imported.notes,
        &[
            "user certuser uses RADIUS authentication",
            "local bridge to the existing interface veth1",
            "hub DEFAULT: no password users",
            "SecureNAT's user-mode NAT",
            "OpenVPN: enabled",
            "administrator password",
        ],
    );
}

#[test]
fn without_an_output_file_the_certificate_is_reported_not_written() {
    let imported = convert(&real(), "vpn_server.config", None);
    let config = Config::from_str_with_origin(&imported.toml, "x").expect("valid");
    assert!(config.server.tls.is_none());
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.starts_with("server certificate: not written"))
    );
}

/// A hand-written config exercising what the real one does not: groups,
/// policies, expiry, certificate users, a generated tap name, a gateway,
/// a second DNS server and a domain.
const EDGES: &str = "declare root\r\n{\r\n\
\tdeclare VirtualHUB\r\n\t{\r\n\
\t\tdeclare Sales$20Team\r\n\t\t{\r\n\
\t\t\tbool Online false\r\n\
\t\t\tdeclare SecureNAT\r\n\t\t\t{\r\n\
\t\t\t\tbool Disabled false\r\n\
\t\t\t\tdeclare VirtualDhcpServer\r\n\t\t\t\t{\r\n\
\t\t\t\t\tstring DhcpDnsServerAddress 10.9.0.1\r\n\
\t\t\t\t\tstring DhcpDnsServerAddress2 10.9.0.2\r\n\
\t\t\t\t\tstring DhcpDomainName corp.example\r\n\
\t\t\t\t\tbool DhcpEnabled true\r\n\
\t\t\t\t\tuint DhcpExpireTimeSpan 10\r\n\
\t\t\t\t\tstring DhcpGatewayAddress 10.9.0.1\r\n\
\t\t\t\t\tstring DhcpLeaseIPEnd 10.9.0.99\r\n\
\t\t\t\t\tstring DhcpLeaseIPStart 10.9.0.10\r\n\
\t\t\t\t\tstring DhcpPushRoutes 10.1.2.3/16/10.9.0.1,bogus\r\n\
\t\t\t\t\tstring DhcpSubnetMask 255.255.255.0\r\n\
\t\t\t\t}\r\n\
\t\t\t\tdeclare VirtualHost\r\n\t\t\t\t{\r\n\
\t\t\t\t\tstring VirtualHostIp 10.9.0.1\r\n\
\t\t\t\t\tstring VirtualHostIpSubnetMask 255.255.255.0\r\n\
\t\t\t\t}\r\n\
\t\t\t}\r\n\
\t\t\tdeclare SecurityAccountDatabase\r\n\t\t\t{\r\n\
\t\t\t\tdeclare GroupList\r\n\t\t\t\t{\r\n\
\t\t\t\t\tdeclare staff\r\n\t\t\t\t\t{\r\n\t\t\t\t\t}\r\n\
\t\t\t\t}\r\n\
\t\t\t\tdeclare UserList\r\n\t\t\t\t{\r\n\
\t\t\t\t\tdeclare bob\r\n\t\t\t\t\t{\r\n\
\t\t\t\t\t\tbyte AuthPassword CQQO0Aphs7bswwIudHwLQE8Mej4=\r\n\
\t\t\t\t\t\tuint AuthType 1\r\n\
\t\t\t\t\t\tstring GroupName staff\r\n\
\t\t\t\t\t\tuint64 ExpireTime 1900000000000\r\n\
\t\t\t\t\t\tdeclare Policy\r\n\t\t\t\t\t\t{\r\n\t\t\t\t\t\t\tbool Access true\r\n\t\t\t\t\t\t\tuint TimeOut 60\r\n\t\t\t\t\t\t}\r\n\
\t\t\t\t\t}\r\n\
\t\t\t\t\tdeclare carol\r\n\t\t\t\t\t{\r\n\
\t\t\t\t\t\tuint AuthType 2\r\n\
\t\t\t\t\t}\r\n\
\t\t\t\t\tdeclare dave\r\n\t\t\t\t\t{\r\n\
\t\t\t\t\t\tbyte AuthPassword AAAA\r\n\
\t\t\t\t\t\tuint AuthType 1\r\n\
\t\t\t\t\t}\r\n\
\t\t\t\t}\r\n\
\t\t\t}\r\n\
\t\t}\r\n\
\t}\r\n\
}\r\n";

#[test]
fn edge_cases_are_converted_or_reported() {
    let root = cfg::parse(EDGES.as_bytes()).expect("parses");
    let imported = convert(&root, "edges", None);
    let config = Config::from_str_with_origin(&imported.toml, "x")
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.toml));
    let hub = config
        .hub("sales team")
        .expect("hub with a space in its name");
    assert_eq!(hub.bridge.as_str(), "tap_salesteam");
    assert_eq!(hub.users.len(), 1);
    assert_eq!(
        hub.users[0].password_hash,
        PasswordHash::from_password("tsumura", "test-only-pass"),
        "bob's stored hash is carried over byte for byte"
    );
    let dhcp = hub.dhcp.as_ref().expect("dhcp");
    assert_eq!(dhcp.router, Some(Ipv4Addr::new(10, 9, 0, 1)));
    assert_eq!(dhcp.dns.len(), 2);
    assert_eq!(dhcp.lease_secs, MIN_LEASE_SECS, "10 s clamped");
    assert_eq!(dhcp.routes[0].to_string(), "10.1.0.0/16 via 10.9.0.1");
    notes_containing(
        &imported.notes,
        &[
            "was offline",
            "group membership (staff)",
            "policy settings not carried over: TimeOut 60",
            "expiry date",
            "user carol uses client certificate",
            "user dave has no 20-byte AuthPassword",
            "groups (their policies' limits",
            "domain name",
            "host bits",
            "\"bogus\" is not NET/MASK/GATEWAY",
            "lease of 10 s",
        ],
    );
}

#[test]
fn masks_and_prefixes() {
    assert_eq!(mask_to_prefix(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
    assert_eq!(mask_to_prefix(Ipv4Addr::new(255, 240, 0, 0)), Some(12));
    assert_eq!(mask_to_prefix(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
    assert_eq!(mask_to_prefix(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
    assert_eq!(mask_to_prefix(Ipv4Addr::new(255, 0, 255, 0)), None);
    assert_eq!(prefix_mask(0), 0);
    assert_eq!(prefix_mask(32), u32::MAX);
}

#[test]
fn generated_tap_names_fit_and_do_not_collide() {
    let long = generated_tap("AVeryLongHubNameIndeed", &[]);
    assert_eq!(long, "tap_averylonghu", "IFNAMSIZ - 1 = 15 bytes");
    let second = generated_tap("AVeryLongHubNameIndeed", std::slice::from_ref(&long));
    assert_eq!(second, "tap_averylongh1");
    assert_eq!(generated_tap("!!!", &[]), "tap_hub");
}

proptest! {
    /// Whatever pushed-route text SoftEther held, each output route parses
    /// in ethergate's config and at most 64 come out.
    #[test]
    fn push_routes_output_is_always_valid(
        routes in proptest::collection::vec(
            (any::<u32>(), 0u8..=32, any::<u32>(), any::<bool>()), 0..80)
    ) {
        let text: Vec<String> = routes
            .iter()
            .map(|(net, len, gw, as_mask)| {
                let middle = if *as_mask {
                    Ipv4Addr::from_bits(prefix_mask(*len)).to_string()
                } else {
                    len.to_string()
                };
                format!("{}/{middle}/{}", Ipv4Addr::from_bits(*net), Ipv4Addr::from_bits(*gw))
            })
            .collect();
        let mut notes = Vec::new();
        let out = push_routes("h", &text.join(", "), &mut notes);
        prop_assert!(out.len() <= MAX_CLASSLESS_ROUTES);
        prop_assert_eq!(out.len(), routes.len().min(MAX_CLASSLESS_ROUTES));
        for r in out {
            prop_assert!(r.parse::<ethergate_config::ClasslessRoute>().is_ok(), "{}", r);
        }
    }

    /// A quoted string reads back as itself through ethergate's own TOML
    /// loader (the ethergate crate has no direct toml dependency): used as
    /// a plaintext password, it must hash like the original.
    #[test]
    fn quote_is_a_toml_string(s in any::<String>()) {
        let config = format!(
            "[[hub]]\nname = \"h\"\nbridge = \"tap_0\"\nbridge_address = \"10.0.0.1/24\"\n\
             [[hub.user]]\nname = \"u\"\npassword = {}\n",
            quote(&s)
        );
        let parsed = Config::from_str_with_origin(&config, "q")
            .map_err(|e| TestCaseError::fail(format!("{e}\n{config}")))?;
        prop_assert_eq!(
            parsed.hubs[0].users[0].password_hash,
            PasswordHash::from_password("u", &s)
        );
    }
}

fn policies() -> Folder {
    cfg::parse(include_bytes!("../testdata/vpn_server_policies.config")).expect("fixture parses")
}

/// SoftEther's per-user and per-group policies become per-user limits:
/// the user's own policy, else its group's; 0 (no limit) and SoftEther's
/// defaults leave ethergate's defaults; a user whose policy denies access
/// is not carried over; what has no counterpart is reported.
#[test]
fn policies_become_per_user_limits() {
    let imported = convert(&policies(), "vpn_server_policies.config", None);
    let config = Config::from_str_with_origin(&imported.toml, "imported.toml")
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.toml));
    let hub = config.hub("LAB").expect("hub LAB");
    let defaults = ethergate_config::SessionLimits::default();
    assert_eq!(hub.limits, defaults, "no [hub.limits] is written");
    let names: Vec<&str> = hub.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        ["alice", "bob", "dave", "erin"],
        "carol was denied access"
    );
    let limits = |name: &str| hub.user(name).expect("user").limits;
    assert_eq!(
        limits("alice"),
        ethergate_config::SessionLimits {
            max_sessions_per_user: 2,
            max_connections_per_session: 8,
            max_macs_per_session: 64,
            max_leases_per_session: 10,
        }
    );
    // bob has no policy: group staff's applies (MaxMac 1 raised to 3).
    assert_eq!(
        limits("bob"),
        ethergate_config::SessionLimits {
            max_sessions_per_user: 1,
            max_macs_per_session: 3,
            ..defaults
        }
    );
    assert_eq!(limits("dave"), defaults, "a policy at SoftEther's defaults");
    // erin's own policy wins over her group's.
    assert_eq!(
        limits("erin"),
        ethergate_config::SessionLimits {
            max_connections_per_session: 2,
            ..defaults
        }
    );
    assert!(
        imported
            .toml
            .contains("# From group staff's SoftEther policy:\nmax_sessions_per_user = 1\n"),
        "{}",
        imported.toml
    );
    let notes = notes_containing(
        &imported.notes,
        &[
            "hub LAB: user alice: policy settings not carried over: MaxUpload 1000000, NoBridge, \
         TimeOut 60",
            "hub LAB: user alice: MaxIP 10 becomes max_leases_per_session",
            "hub LAB: user carol: not carried over: SoftEther's policy for this user denies access",
            "hub LAB: user bob: MaxMac 1 is below SoftEther's own minimum; carried over as 3",
            "hub LAB: user bob: group membership (staff) is not carried over",
        ],
    );
    assert!(
        !notes.contains("user dave"),
        "nothing to say about dave:\n{notes}"
    );
    assert!(
        !notes.contains("CheckMac"),
        "ethergate always checks MACs:\n{notes}"
    );
}

proptest! {
    /// Whatever numbers a SoftEther policy holds, the converted config is
    /// valid (every limit lands in ethergate's range).
    #[test]
    fn any_policy_converts_to_a_valid_config(
        max_connection in any::<u32>(),
        max_mac in any::<u32>(),
        max_ip in any::<u32>(),
        multi_logins in any::<u32>(),
        time_out in any::<u32>(),
        access in any::<bool>(),
    ) {
        let text = format!(
            "declare root\r\n{{\r\n\tdeclare VirtualHUB\r\n\t{{\r\n\t\tdeclare H\r\n\t\t{{\r\n\
             \t\t\tdeclare SecurityAccountDatabase\r\n\t\t\t{{\r\n\
             \t\t\t\tdeclare UserList\r\n\t\t\t\t{{\r\n\
             \t\t\t\t\tdeclare u\r\n\t\t\t\t\t{{\r\n\
             \t\t\t\t\t\tbyte AuthPassword CQQO0Aphs7bswwIudHwLQE8Mej4=\r\n\
             \t\t\t\t\t\tuint AuthType 1\r\n\
             \t\t\t\t\t\tdeclare Policy\r\n\t\t\t\t\t\t{{\r\n\
             \t\t\t\t\t\t\tbool Access {access}\r\n\
             \t\t\t\t\t\t\tuint MaxConnection {max_connection}\r\n\
             \t\t\t\t\t\t\tuint MaxIP {max_ip}\r\n\
             \t\t\t\t\t\t\tuint MaxMac {max_mac}\r\n\
             \t\t\t\t\t\t\tuint MultiLogins {multi_logins}\r\n\
             \t\t\t\t\t\t\tuint TimeOut {time_out}\r\n\
             \t\t\t\t\t\t}}\r\n\t\t\t\t\t}}\r\n\t\t\t\t}}\r\n\t\t\t}}\r\n\t\t}}\r\n\t}}\r\n}}\r\n"
        );
        let root = cfg::parse(text.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let imported = convert(&root, "p", None);
        let config = Config::from_str_with_origin(&imported.toml, "p.toml")
            .map_err(|e| TestCaseError::fail(format!("{e}\n{}", imported.toml)))?;
        // Without its only user (access denied) the hub is empty and skipped.
        let users = config.hub("H").map_or(&[][..], |h| h.users.as_slice());
        prop_assert_eq!(users.len(), usize::from(access));
        if let Some(u) = users.first() {
            let l = u.limits;
            prop_assert!(l.max_connections_per_session <= 32);
            prop_assert!((1..=32).contains(&l.max_connections_per_session));
            if max_mac > 0 {
                prop_assert_eq!(l.max_macs_per_session, max_mac.clamp(3, 65_536));
            }
        }
    }
}
