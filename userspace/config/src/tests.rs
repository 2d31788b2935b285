//! Whole-file tests: every validation rule, its message and its line.

use std::net::{Ipv4Addr, SocketAddr};

use super::*;

/// Every error of an invalid file, as `ethergate check` prints them.
fn errors(text: &str) -> Vec<String> {
    match Config::from_str_with_origin(text, "t.toml") {
        Ok(c) => panic!("expected errors, got a valid config: {c:#?}"),
        Err(e) => {
            assert!(!e.is_empty());
            e.into_iter().map(|d| d.to_string()).collect()
        }
    }
}

fn valid(text: &str) -> Config {
    Config::from_str_with_origin(text, "t.toml")
        .unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

fn warnings(config: &Config) -> Vec<String> {
    config.warnings.iter().map(|d| d.to_string()).collect()
}

/// A valid hub whose lines are: 1 [[hub]], 2 name, 3 bridge,
/// 4 bridge_address, 5 [[hub.user]], 6 name, 7 password_hash. Tests append
/// from line 8 on.
const HUB: &str = r#"[[hub]]
name = "mikalab"
bridge = "tap_00"
bridge_address = "192.168.30.1/24"
[[hub.user]]
name = "tsumura"
password_hash = "DngtrNt4kY1zAHmZ2oG8QIkG1FE="
"#;

/// HUB plus `[hub.dhcp]` on line 8 and the given lines from line 9 on.
fn hub_with_dhcp(dhcp: &str) -> String {
    format!("{HUB}[hub.dhcp]\n{dhcp}")
}

/// A valid `[nat]` on lines 1-2 and the given lines from line 3 on.
fn nat(rest: &str) -> String {
    format!("[nat]\nuplink = \"eth0\"\n{rest}")
}

// ----- the shipped default and the interface.md example -----

#[test]
fn embedded_default_parses_without_errors_or_warnings() {
    let config = Config::from_str_with_origin(DEFAULT_CONFIG, "ethergate.toml")
        .unwrap_or_else(|e| panic!("default config is invalid:\n{e}"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config, Config::embedded_default());
    let hub = config.hub("mikalab").expect("default has hub mikalab");
    assert_eq!(hub.bridge.as_str(), "tap_00");
    assert_eq!(hub.bridge_address.to_string(), "192.168.30.1/24");
    // The demo password documented in the file.
    let user = hub.user("tsumura").expect("default has user tsumura");
    assert_eq!(
        user.password_hash,
        PasswordHash::from_password("tsumura", "mikalab-demo")
    );
    let nat = config.nat.as_ref().expect("default has [nat]");
    assert_eq!(nat.snat[0].to, SnatTarget::Masquerade);
    assert_eq!(nat.dnat[0].to.to_string(), "10.0.1.26:80");
}

/// interface.md's example, verbatim but with the hash written out in full
/// (the document abbreviates it as "Dng…FE=").
const INTERFACE_EXAMPLE: &str = r#"[server]
listen = ["0.0.0.0:443", "0.0.0.0:992", "0.0.0.0:5555"]
# tls_cert / tls_key: PEM paths. Absent -> a self-signed certificate is generated once into state_dir and reused.
state_dir = "/var/lib/ethergate"          # runtime state (leases, generated keys); never the config itself
admin_socket = "/run/ethergate/admin.sock"
metrics = "127.0.0.1:9464"                # Prometheus /metrics, plus /healthz and /readyz

[[hub]]
name = "mikalab"
bridge = "tap_00"                         # local bridge: tap device, created if missing
bridge_address = "192.168.30.1/24"        # address of the kernel side of the tap

[hub.dhcp]                                # virtual DHCP server on the hub (omit the table to disable)
range = "192.168.30.10-192.168.30.200"
lease_secs = 7200
dns = ["192.168.30.1"]
router = "192.168.30.1"                   # optional: omit to push routes only (no default gateway)
routes = ["10.0.0.0/16 via 192.168.30.1"] # RFC 3442: sent as options 121 and 249

[[hub.user]]
name = "tsumura"
password_hash = "DngtrNt4kY1zAHmZ2oG8QIkG1FE="                 # base64 of SHA0(password || ASCII-uppercase(name)), SoftEther's own form
# password = "…"                          # accepted for quick starts; hashed on load, warned about

[nat]
uplink = "eth0"                           # interface toward the router / outside
# inside = ["eth1"]                       # two-armed: interfaces facing the private subnet; omit when
#                                         # one interface does both (one-armed, as on a cloud NAT instance).
#                                         # Hub taps are always inside.

[[nat.snat]]                              # private subnet egress (the NAT instance's job)
source = "10.0.0.0/16"
to = "masquerade"                         # the uplink's address, or an explicit address

[[nat.dnat]]                              # the seed's rule: VPN clients' HTTP -> private web server
source = "192.168.0.0/16"
protocol = "tcp"
port = 80
to = "10.0.1.26:80"
"#;

#[test]
fn interface_example_parses_to_the_documented_values() {
    let c = valid(INTERFACE_EXAMPLE);
    assert_eq!(c.server, Server::default());
    assert_eq!(c.hubs.len(), 1);
    let hub = &c.hubs[0];
    assert_eq!(hub.name, "mikalab");
    assert_eq!(hub.bridge.as_str(), "tap_00");
    assert_eq!(hub.bridge_ip(), Ipv4Addr::new(192, 168, 30, 1));
    assert_eq!(hub.subnet().to_string(), "192.168.30.0/24");
    let dhcp = hub.dhcp.as_ref().expect("example has [hub.dhcp]");
    assert_eq!(dhcp.range.first, Ipv4Addr::new(192, 168, 30, 10));
    assert_eq!(dhcp.range.last, Ipv4Addr::new(192, 168, 30, 200));
    assert_eq!(dhcp.lease_secs, 7200);
    assert_eq!(dhcp.dns, vec![Ipv4Addr::new(192, 168, 30, 1)]);
    assert_eq!(dhcp.router, Some(Ipv4Addr::new(192, 168, 30, 1)));
    assert_eq!(
        dhcp.routes,
        vec!["10.0.0.0/16 via 192.168.30.1".parse().expect("route")]
    );
    assert_eq!(hub.users.len(), 1);
    assert_eq!(hub.users[0].name, "tsumura");
    assert_eq!(
        hub.users[0].password_hash,
        PasswordHash::from_password("alice", "secret")
    );
    assert!(!hub.users[0].from_plaintext);
    let nat = c.nat.as_ref().expect("example has [nat]");
    assert_eq!(nat.uplink.as_str(), "eth0");
    assert!(nat.inside.is_empty());
    assert_eq!(
        nat.snat,
        vec![SnatRule {
            source: "10.0.0.0/16".parse().expect("cidr"),
            to: SnatTarget::Masquerade
        }]
    );
    assert_eq!(
        nat.dnat,
        vec![DnatRule {
            source: "192.168.0.0/16".parse().expect("cidr"),
            destination: "0.0.0.0/0".parse().expect("cidr"),
            protocol: L4Protocol::Tcp,
            port: 80,
            to: "10.0.1.26:80".parse().expect("addr"),
        }]
    );
    assert_eq!(nat.timeouts, NatTimeouts::default());
    assert_eq!(nat.limits.max_flows, DEFAULT_MAX_FLOWS);
    // router + routes: RFC 3442 clients ignore the router; say so.
    assert_eq!(
        warnings(&c),
        vec![
            "t.toml:18: hub \"mikalab\": dhcp.routes is set, so RFC 3442 clients ignore router \
             192.168.30.1; add \"0.0.0.0/0 via 192.168.30.1\" to routes if clients need a \
             default gateway"
        ]
    );
}

#[test]
fn interface_example_placeholder_hash_is_rejected_with_its_line() {
    let text = INTERFACE_EXAMPLE.replace("DngtrNt4kY1zAHmZ2oG8QIkG1FE=", "Dng…FE=");
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:22: hub \"mikalab\": user \"tsumura\": password_hash is not base64: \
             its length is not a multiple of 4"
        ]
    );
}

#[test]
fn empty_file_is_a_valid_server_with_defaults() {
    let c = valid("");
    assert_eq!(c.server.listen, DEFAULT_LISTEN.to_vec());
    assert_eq!(
        c.server.state_dir,
        std::path::PathBuf::from("/var/lib/ethergate")
    );
    assert_eq!(
        c.server.admin_socket,
        std::path::PathBuf::from("/run/ethergate/admin.sock")
    );
    assert_eq!(c.server.metrics, Some(DEFAULT_METRICS));
    assert!(c.hubs.is_empty() && c.nat.is_none() && c.warnings.is_empty());
}

// ----- syntax, types, unknown keys -----

#[test]
fn syntax_error_has_a_line() {
    let e = errors("[server]\nlisten = [\"0.0.0.0:443\"\nstate_dir = 1\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("t.toml:3: TOML syntax: "), "{e:?}");
}

#[test]
fn duplicate_toml_key_is_a_syntax_error() {
    let e = errors("[nat]\nuplink = \"eth0\"\nuplink = \"eth1\"\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("t.toml:3: TOML syntax: duplicate key"),
        "{e:?}"
    );
}

#[test]
fn every_unknown_key_is_reported_with_its_line() {
    let text = format!(
        r#"colour = "blue"
[server]
lisen = ["0.0.0.0:443"]
[[hub]]
name = "mikalab"
bridge = "tap_00"
bridge_address = "192.168.30.1/24"
mtu = 1400
[hub.dhcp]
range = "192.168.30.10-192.168.30.200"
gateway = "192.168.30.1"
[[hub.user]]
name = "tsumura"
password_hash = "DngtrNt4kY1zAHmZ2oG8QIkG1FE="
group = "staff"
{}"#,
        nat(r#"[[nat.snat]]
source = "10.0.0.0/16"
to = "masquerade"
via = "eth0"
[[nat.dnat]]
source = "192.168.0.0/16"
protocol = "tcp"
port = 80
to = "10.0.1.26:80"
dport = 80
[nat.timeouts]
tcp_secs = 10
[nat.limits]
max_sessions = 10
"#)
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:1: unknown key \"colour\" at the top level; known keys are server, hub, nat",
            "t.toml:3: unknown key \"lisen\" in [server]; known keys are listen, tls_cert, \
             tls_key, state_dir, admin_socket, metrics",
            "t.toml:8: hub \"mikalab\": unknown key \"mtu\" for hub \"mikalab\"; known keys \
             are name, bridge, bridge_address, dhcp, user",
            "t.toml:11: hub \"mikalab\": unknown key \"gateway\" in [dhcp]; known keys are \
             range, lease_secs, dns, router, routes",
            "t.toml:15: hub \"mikalab\": user[1]: unknown key \"group\" for hub \"mikalab\": \
             user[1]; known keys are name, password_hash, password",
            "t.toml:21: nat.snat[1]: unknown key \"via\" for nat.snat[1]; known keys are \
             source, to",
            "t.toml:27: nat.dnat[1]: unknown key \"dport\" for nat.dnat[1]; known keys are \
             source, destination, protocol, port, to",
            "t.toml:29: unknown key \"tcp_secs\" in [nat.timeouts]; known keys are \
             tcp_established_secs, tcp_transitory_secs, udp_secs, icmp_secs",
            "t.toml:31: unknown key \"max_sessions\" in [nat.limits]; known keys are max_flows",
        ]
    );
}

#[test]
fn every_wrong_type_is_reported() {
    let text = r#"[server]
listen = "0.0.0.0:443"
state_dir = 5
metrics = ["127.0.0.1:9464"]
hub = 3
"#;
    assert_eq!(
        errors(text),
        vec![
            "t.toml:2: server.listen must be an array of strings, not a string",
            "t.toml:3: server.state_dir must be a string, not an integer",
            "t.toml:4: server.metrics must be a string, not an array",
            "t.toml:5: unknown key \"hub\" in [server]; known keys are listen, tls_cert, \
             tls_key, state_dir, admin_socket, metrics",
        ]
    );
    assert_eq!(
        errors("hub = 3\nnat = \"eth0\"\nserver = { listen = [443] }\n"),
        vec![
            "t.toml:1: hub must be an array of tables, written [[hub]], not an integer",
            "t.toml:2: nat must be a table, not a string",
            "t.toml:3: server.listen must hold only strings, not an integer",
        ]
    );
}

// ----- [server] -----

#[test]
fn server_listen_rules() {
    let text = r#"[server]
listen = [
  "0.0.0.0:443",
  "10.0.0.1:443",
  "0.0.0.0:0",
  "localhost:443",
  "[::]:443",
]
"#;
    assert_eq!(
        errors(text),
        vec![
            "t.toml:4: server.listen 10.0.0.1:443 conflicts with 0.0.0.0:443 on the same port; \
             keep one of them",
            "t.toml:5: server.listen \"0.0.0.0:0\" needs a port other than 0",
            "t.toml:6: server.listen \"localhost:443\" is not an address with a port, like \
             \"0.0.0.0:443\" or \"[::]:443\"",
        ]
    );
    assert_eq!(
        errors("[server]\nlisten = []\n"),
        vec!["t.toml:2: server.listen is empty; give at least one address, e.g. [\"0.0.0.0:443\"]"]
    );
    let c = valid("[server]\nlisten = [\"[::]:443\", \"0.0.0.0:443\"]\n");
    assert_eq!(c.server.listen.len(), 2);
}

#[test]
fn server_tls_paths_and_metrics() {
    assert_eq!(
        errors("[server]\ntls_cert = \"/etc/ethergate/cert.pem\"\n"),
        vec![
            "t.toml:2: server.tls_cert is set but tls_key is not; set both, or neither to use \
             a generated self-signed certificate"
        ]
    );
    assert_eq!(
        errors("[server]\ntls_key = \"/etc/k.pem\"\nstate_dir = \"var/lib\"\n"),
        vec![
            "t.toml:2: server.tls_key is set but tls_cert is not; set both, or neither to use \
             a generated self-signed certificate",
            "t.toml:3: server.state_dir \"var/lib\" must be an absolute path (starting with /)",
        ]
    );
    let c = valid(
        "[server]\ntls_cert = \"/etc/c.pem\"\ntls_key = \"/etc/k.pem\"\nmetrics = \"off\"\n\
         admin_socket = \"/tmp/a.sock\"\n",
    );
    assert_eq!(
        c.server.tls,
        Some(TlsFiles {
            cert: "/etc/c.pem".into(),
            key: "/etc/k.pem".into()
        })
    );
    assert_eq!(c.server.metrics, None);
    assert_eq!(
        c.server.admin_socket,
        std::path::PathBuf::from("/tmp/a.sock")
    );
    assert_eq!(
        errors("[server]\nmetrics = \"0.0.0.0:5555\"\n"),
        vec![
            "t.toml:2: server.metrics 0.0.0.0:5555 conflicts with listen address 0.0.0.0:5555; \
             move metrics to another port"
        ]
    );
    assert_eq!(
        errors("[server]\nmetrics = \"9464\"\n"),
        vec![
            "t.toml:2: server.metrics \"9464\" is not an address with a port, like \
             \"0.0.0.0:443\" or \"[::]:443\""
        ]
    );
    let c = valid("[server]\nmetrics = \"[::1]:9464\"\n");
    assert_eq!(
        c.server.metrics,
        Some("[::1]:9464".parse::<SocketAddr>().expect("addr"))
    );
}

// ----- [[hub]] -----

#[test]
fn hub_missing_keys_point_at_the_header() {
    assert_eq!(
        errors("[[hub]]\n\n[[hub]]\nname = \"a\"\n"),
        vec![
            "t.toml:1: hub[1]: missing name; add e.g. name = \"mikalab\"",
            "t.toml:1: hub[1]: missing bridge; add e.g. bridge = \"tap_00\"",
            "t.toml:1: hub[1]: missing bridge_address; add e.g. bridge_address = \
             \"192.168.30.1/24\"",
            "t.toml:3: hub \"a\": missing bridge; add e.g. bridge = \"tap_00\"",
            "t.toml:3: hub \"a\": missing bridge_address; add e.g. bridge_address = \
             \"192.168.30.1/24\"",
        ]
    );
}

#[test]
fn hub_name_bridge_and_address_rules() {
    let text = r#"[[hub]]
name = "bad/name"
bridge = "tap_with_a_long_name"
bridge_address = "192.168.30.0/24"
[[hub]]
name = "b"
bridge = "eth0:1"
bridge_address = "192.168.31.1/31"
[[hub]]
name = "c"
bridge = "tap_02"
bridge_address = "192.168.32.1"
"#;
    assert_eq!(
        errors(text),
        vec![
            "t.toml:2: hub[1]: name \"bad/name\" contains '/'; hub names use printable ASCII \
             without \\ / : * ? \" < > |",
            "t.toml:3: hub[1]: bridge \"tap_with_a_long_name\" is 20 bytes long; Linux allows \
             at most 15",
            "t.toml:4: hub[1]: bridge_address \"192.168.30.0/24\" is the subnet's network or \
             broadcast address; give the tap's own address, e.g. 192.168.30.1/24",
            "t.toml:7: hub \"b\": bridge \"eth0:1\" contains ':'; Linux interface names cannot \
             contain '/', ':' or whitespace",
            "t.toml:8: hub \"b\": bridge_address \"192.168.31.1/31\" /31 leaves no addresses \
             for VPN clients; use a prefix of /30 or shorter",
            "t.toml:12: hub \"c\": bridge_address \"192.168.32.1\" missing \"/prefix\" (write \
             it like 10.0.0.0/16)",
        ]
    );
}

#[test]
fn duplicate_hubs_bridges_and_subnets() {
    let text = format!(
        r#"{HUB}[[hub]]
name = "MikaLab"
bridge = "tap_00"
bridge_address = "192.168.30.129/25"
[[hub.user]]
name = "x"
password_hash = "DngtrNt4kY1zAHmZ2oG8QIkG1FE="
"#
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:9: hub \"MikaLab\" is defined twice (hub names are case-insensitive; the \
             first is \"mikalab\"); rename or merge them",
            "t.toml:10: hub \"MikaLab\": bridge tap_00 is already the bridge of hub \
             \"mikalab\"; each hub needs its own tap",
            "t.toml:11: hub \"MikaLab\": bridge_address 192.168.30.129/25 overlaps hub \
             \"mikalab\"'s 192.168.30.1/24; give each hub its own subnet",
        ]
    );
}

#[test]
fn hub_lookup_is_case_insensitive() {
    let c = valid(HUB);
    assert!(c.hub("MIKALAB").is_some());
    assert!(c.hub("other").is_none());
    let hub = c.hub("mikalab").expect("hub");
    assert!(hub.user("TsUmUrA").is_some());
    assert!(hub.dhcp.is_none());
}

#[test]
fn hub_without_users_is_a_warning() {
    let c = valid("[[hub]]\nname = \"a\"\nbridge = \"tap_00\"\nbridge_address = \"10.9.0.1/24\"\n");
    assert_eq!(
        warnings(&c),
        vec!["t.toml:1: hub \"a\": has no [[hub.user]]; nobody can log in to it"]
    );
}

// ----- [[hub.user]] -----

#[test]
fn user_credential_rules() {
    let text = format!(
        r#"{HUB}[[hub.user]]
name = "both"
password_hash = "DngtrNt4kY1zAHmZ2oG8QIkG1FE="
password = "x"
[[hub.user]]
name = "neither"
[[hub.user]]
name = "short"
password_hash = "Zm9vYmFy"
[[hub.user]]
name = "garbage"
password_hash = "not base64!"
[[hub.user]]
name = "TSUMURA"
password = "secret"
[[hub.user]]
name = "SecureNAT"
password_hash = "DngtrNt4kY1zAHmZ2oG8QIkG1FE="
[[hub.user]]
password = "x"
"#
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:11: hub \"mikalab\": user \"both\": has both password_hash and password; \
             keep only password_hash",
            "t.toml:12: hub \"mikalab\": user \"neither\": has no credential; add \
             password_hash = \"…\" (from `ethergate user hash --user neither`)",
            "t.toml:16: hub \"mikalab\": user \"short\": password_hash decodes to 6 bytes; a \
             SoftEther password hash is 20 bytes (28 base64 characters)",
            "t.toml:19: hub \"mikalab\": user \"garbage\": password_hash is not base64: its \
             length is not a multiple of 4",
            "t.toml:21: hub \"mikalab\": user \"TSUMURA\" is defined twice (user names are \
             case-insensitive; the first is \"tsumura\"); remove or rename one",
            "t.toml:24: hub \"mikalab\": user name \"SecureNAT\" is reserved by SoftEther for \
             its internal sessions",
            "t.toml:26: hub \"mikalab\": user[8]: missing name; add e.g. name = \"tsumura\"",
        ]
    );
}

#[test]
fn plaintext_password_is_hashed_and_warned_about() {
    let text = format!("{HUB}[[hub.user]]\nname = \"alice\"\npassword = \"secret\"\n");
    let c = valid(&text);
    let alice = c.hubs[0].user("alice").expect("alice");
    assert!(alice.from_plaintext);
    assert_eq!(
        alice.password_hash.to_base64(),
        "DngtrNt4kY1zAHmZ2oG8QIkG1FE="
    );
    assert_eq!(
        warnings(&c),
        vec![
            "t.toml:10: hub \"mikalab\": user \"alice\": password is stored in plain text; \
             replace it with password_hash from `ethergate user hash --user alice`"
        ]
    );
}

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
            "t.toml:8: hub \"mikalab\": missing range in [dhcp]; add e.g. range = \
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

// ----- reporting -----

#[test]
fn problems_across_sections_are_all_reported_in_line_order() {
    let text = format!(
        "[server]\nlisten = [\"0.0.0.0:99999\"]\n{}{}",
        HUB.replace("tap_00", "tap:00"),
        "[nat]\nuplink = \"\"\n"
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:2: server.listen \"0.0.0.0:99999\" is not an address with a port, like \
             \"0.0.0.0:443\" or \"[::]:443\"",
            "t.toml:5: hub \"mikalab\": bridge \"tap:00\" contains ':'; Linux interface names \
             cannot contain '/', ':' or whitespace",
            "t.toml:11: nat.uplink \"\" is empty",
        ]
    );
}

#[test]
fn diagnostics_carry_columns_and_display_as_a_list() {
    let e = Config::from_str_with_origin("[nat]\nuplink =   \"a b\"\n", "/etc/ethergate.toml")
        .expect_err("bad uplink");
    let d = &e.diagnostics()[0];
    assert_eq!((d.line, d.column), (2, 12));
    assert_eq!(d.origin, "/etc/ethergate.toml");
    assert_eq!(
        e.to_string(),
        "/etc/ethergate.toml:2: nat.uplink \"a b\" contains ' '; Linux interface names cannot \
         contain '/', ':' or whitespace"
    );
}

#[test]
fn load_reads_a_file_and_reports_a_missing_one() {
    let dir = std::env::temp_dir().join(format!("ethergate-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let path = dir.join("ethergate.toml");
    std::fs::write(&path, "[nat]\nuplink = \"eth0/\"\n").expect("write config");
    match Config::load(&path) {
        Err(ConfigError::Invalid(e)) => assert_eq!(
            e.to_string(),
            format!(
                "{}:2: nat.uplink \"eth0/\" contains '/'; Linux interface names cannot \
                 contain '/', ':' or whitespace",
                path.display()
            )
        ),
        other => panic!("expected an invalid config, got {other:?}"),
    }
    std::fs::write(&path, DEFAULT_CONFIG).expect("write config");
    assert_eq!(
        Config::load(&path).expect("default config loads"),
        Config::embedded_default()
    );
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
    let missing = Config::load(&dir.join("nope.toml")).expect_err("missing file");
    assert!(matches!(missing, ConfigError::Read { .. }));
    assert!(
        missing.to_string().starts_with("cannot read config file "),
        "{missing}"
    );
}
