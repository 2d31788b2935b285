//! Whole-file tests: every validation rule, its message and its line.
//! One file per config section; helpers and whole-file behaviour here.

mod dhcp;
mod hub;
mod limits;
mod nat;
mod server;
mod wireguard;

use std::net::Ipv4Addr;

use super::*;

/// Every error of an invalid file, as `ethergate check` prints them.
pub(super) fn errors(text: &str) -> Vec<String> {
    match Config::from_str_with_origin(text, "t.toml") {
        Ok(c) => panic!("expected errors, got a valid config: {c:#?}"),
        Err(e) => {
            assert!(!e.is_empty());
            e.into_iter().map(|d| d.to_string()).collect()
        }
    }
}

pub(super) fn valid(text: &str) -> Config {
    Config::from_str_with_origin(text, "t.toml")
        .unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

pub(super) fn warnings(config: &Config) -> Vec<String> {
    config.warnings.iter().map(|d| d.to_string()).collect()
}

/// The recipe's `[[hub]]` table with no users yet: lines 1 [[hub]],
/// 2 name, 3 bridge, 4 bridge_address.
macro_rules! hub_head {
    () => {
        "[[hub]]\nname = \"mikalab\"\nbridge = \"tap_00\"\nbridge_address = \"192.168.30.1/24\"\n"
    };
}

/// The recipe's user, three lines: [[hub.user]], name, password_hash.
macro_rules! tsumura {
    () => {
        "[[hub.user]]\nname = \"tsumura\"\npassword_hash = \"CQQO0Aphs7bswwIudHwLQE8Mej4=\"\n"
    };
}

pub(crate) const HUB_HEAD: &str = hub_head!();
pub(crate) const TSUMURA: &str = tsumura!();

/// A valid hub whose lines are: 1 [[hub]], 2 name, 3 bridge,
/// 4 bridge_address, 5 [[hub.user]], 6 name, 7 password_hash. Tests append
/// from line 8 on.
pub(super) const HUB: &str = concat!(hub_head!(), tsumura!());

/// HUB plus `[hub.dhcp]` on line 8 and the given lines from line 9 on.
pub(super) fn hub_with_dhcp(dhcp: &str) -> String {
    format!("{HUB}[hub.dhcp]\n{dhcp}")
}

/// A valid `[nat]` on lines 1-2 and the given lines from line 3 on.
pub(super) fn nat(rest: &str) -> String {
    format!("[nat]\nuplink = \"eth0\"\n{rest}")
}

// ----- the shipped default and the example config users were given -----

#[test]
fn embedded_default_parses_without_errors_or_warnings() {
    let config = Config::from_str_with_origin(DEFAULT_CONFIG, "ethergate.toml")
        .unwrap_or_else(|e| panic!("default config is invalid:\n{e}"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config, Config::embedded_default());
    let hub = config.hub("mikalab").expect("default has hub mikalab");
    assert_eq!(hub.bridge.as_str(), "tap_00");
    assert_eq!(hub.bridge_address.to_string(), "192.168.30.1/24");
    // No password anywhere in the file: it is generated at the first
    // start, and until then nobody can log in.
    let user = hub.user("tsumura").expect("default has user tsumura");
    let file = user.password_file.as_ref().expect("a password_file user");
    assert_eq!(file.path, std::path::PathBuf::from("tsumura.password"));
    assert!(!user.can_log_in());
    let credentials = DEFAULT_CONFIG
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter(|l| l.starts_with("password_hash") || l.starts_with("password ="))
        .count();
    assert_eq!(credentials, 0, "a credential in the shipped config");
    let nat = config.nat.as_ref().expect("default has [nat]");
    assert_eq!(nat.snat[0].to, SnatTarget::Masquerade);
    assert_eq!(nat.dnat[0].to.to_string(), "10.0.1.26:80");
}

/// The example config of the original interface contract, verbatim but with the hash written out in full
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
    // The example's hash is printed in the docs, so it is refused as it
    // stands (anyone could log in); with any other hash it is valid.
    let refused = errors(INTERFACE_EXAMPLE);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("printed in ethergate's documentation"));
    let c = valid(&INTERFACE_EXAMPLE.replace(
        "DngtrNt4kY1zAHmZ2oG8QIkG1FE=",
        "CQQO0Aphs7bswwIudHwLQE8Mej4=",
    ));
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
        PasswordHash::from_password("tsumura", "test-only-pass")
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
             base64 length 9 is not a multiple of 4"
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
fn every_syntax_error_is_reported() {
    let e = errors("[server\nlisten = \"a\nstate_dir = 1\n[nat]\nuplink = = \"eth0\"\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0], "t.toml:1: TOML syntax: unclosed table, expected `]`");
    assert_eq!(e[1], "t.toml:5: TOML syntax: extra `=`, expected nothing");
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
password_hash = "CQQO0Aphs7bswwIudHwLQE8Mej4="
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
             tls_key, state_dir, admin_socket, metrics, limits, login_throttle, udp_acceleration",
            "t.toml:8: hub \"mikalab\": unknown key \"mtu\"; known keys are name, bridge, \
             bridge_address, dhcp, limits, user, wireguard",
            "t.toml:11: hub \"mikalab\": unknown key \"gateway\" in [hub.dhcp]; known keys are \
             range, lease_secs, dns, router, routes",
            "t.toml:15: hub \"mikalab\": user \"tsumura\": unknown key \"group\"; known keys \
             are name, password_hash, password, password_file, wireguard_public_key, \
             wireguard_address, wireguard_preshared_key_file, max_sessions_per_user, \
             max_connections_per_session, max_macs_per_session, max_leases_per_session",
            "t.toml:21: nat.snat[1]: unknown key \"via\"; known keys are source, to",
            "t.toml:27: nat.dnat[1]: unknown key \"dport\"; known keys are source, \
             destination, protocol, port, to",
            "t.toml:29: unknown key \"tcp_secs\" in [nat.timeouts]; known keys are \
             tcp_established_secs, tcp_transitory_secs, udp_secs, icmp_secs",
            "t.toml:31: unknown key \"max_sessions\" in [nat.limits]; known keys are max_flows, \
             max_flows_per_source",
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
             tls_key, state_dir, admin_socket, metrics, limits, login_throttle, udp_acceleration",
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
    let missing = Config::load(dir.join("nope.toml")).expect_err("missing file");
    assert!(matches!(missing, ConfigError::Read { .. }));
    assert!(
        missing.to_string().starts_with("cannot read config file "),
        "{missing}"
    );
}
