//! SoftEther server settings → an ethergate config: hubs, password users
//! (their stored hashes, so passwords keep working), SecureNAT's virtual
//! DHCP server with its pushed routes, local bridges, listeners and the
//! server certificate.
//!
//! Invariant: nothing is dropped silently. Every setting that was in use on
//! the SoftEther server and has no ethergate counterpart (RADIUS or
//! certificate users, groups, policy settings other than the limits below,
//! access lists, cascades, L2TP and OpenVPN, …) becomes a
//! [`Imported::notes`] line naming the hub or user.
//!
//! Facts used (SoftEther 4.x/5.x, Cedar/Server.c `SiWriteHubDb`,
//! `SiWriteUserList`, `SiWriteSecureNAT`, `SiWriteLocalBridges`):
//! * `UserList/<name>/AuthPassword` (AuthType 1) is
//!   SHA0(password ‖ UPPER(name)) — the same 20 bytes ethergate's
//!   `password_hash` holds; `AuthNtLmSecureHash` (MD4, for MS-CHAPv2) is
//!   not needed.
//! * A local bridge with `TapMode true` and `DeviceName 00` is the Linux
//!   tap `tap_00`; `TapMode false` bridges an existing interface.
//! * `DhcpPushRoutes` is "NET/MASK/GW" entries separated by commas (and
//!   spaces); a gateway of 0.0.0.0 means "no router".
//! * A user's security policy is `UserList/<name>/Policy`; without one,
//!   its group's (`GroupList/<group>/Policy`) applies; without either,
//!   the default policy (`GetDefaultPolicy`: `Access` true, `MaxConnection`
//!   32, `TimeOut` 20, everything else off or 0, where 0 means no limit).
//!   `SiWritePolicyCfg` writes every item. Carried over as the user's own
//!   limits: `MultiLogins` → `max_sessions_per_user`, `MaxConnection` →
//!   `max_connections_per_session`, `MaxMac` → `max_macs_per_session`
//!   (below 3 raised to 3, as `MAC_MIN_LIMIT_COUNT` does), `MaxIP` →
//!   `max_leases_per_session` (ethergate counts DHCP leases, not every
//!   address a client uses). `Access` false means the user could not log
//!   in: such a user is not carried over. `CheckMac` is what ethergate
//!   always does.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ethergate_config::{
    DEFAULT_MAX_LEASES_PER_SESSION, DEFAULT_MAX_MACS_PER_SESSION, DEFAULT_MAX_SESSIONS_PER_USER,
    InterfaceName, MAX_CLASSLESS_ROUTES, MAX_CONNECTIONS_PER_SESSION, MAX_INTERFACE_NAME_LEN,
    MAX_LEASE_SECS, MAX_SESSION_LIMIT, MIN_LEASE_SECS, MIN_MAX_MACS_PER_SESSION, PasswordHash,
    check_hub_name, check_user_name,
};

use crate::softether_cfg::{Folder, Value};

/// The SoftEther auth types (Cedar/Account.h `AUTHTYPE_*`) ethergate has no
/// counterpart for, as operators know them from the server manager.
fn auth_type_name(auth_type: u32) -> &'static str {
    match auth_type {
        0 => "anonymous",
        2 => "client certificate",
        3 => "signed client certificate (root CA)",
        4 => "RADIUS",
        5 => "NT domain",
        _ => "unknown",
    }
}

/// SecureNAT's default virtual host (`NiSetDefaultVhOption`), used when a
/// hub has no SecureNAT settings at all.
const DEFAULT_HOST: (Ipv4Addr, u8) = (Ipv4Addr::new(192, 168, 30, 1), 24);

/// DER of the server certificate and private key (`ServerCert`,
/// `ServerKey`), to be written as PEM next to the config.
pub struct ServerIdentity {
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

/// Where the converted config will find the certificate files; `None`
/// when the identity is not being written (output to stdout).
pub struct TlsPaths {
    pub cert: String,
    pub key: String,
}

pub struct Imported {
    /// The ethergate config (TOML), with a header comment.
    pub toml: String,
    /// One line per setting that was not carried over.
    pub notes: Vec<String>,
    pub identity: Option<ServerIdentity>,
}

pub fn convert(root: &Folder, source: &str, tls: Option<&TlsPaths>) -> Imported {
    let mut notes = Vec::new();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Imported from {source} by `ethergate import-softether`.\n\
         # Users keep their SoftEther passwords (password_hash is SoftEther's own\n\
         # stored hash). Settings that could not be carried over were listed on\n\
         # stderr. Check with: ethergate check --config <this file>\n"
    );

    let identity = server_identity(root);
    write_server(&mut out, root, identity.is_some().then_some(tls).flatten());
    match (&identity, tls) {
        (Some(_), None) => notes.push(
            "server certificate: not written (output went to stdout); use -o FILE to carry \
             it over, or clients that pin it must accept a new one"
                .to_owned(),
        ),
        (None, _) => notes.push(
            "server certificate: none found; ethergate generates a self-signed one".to_owned(),
        ),
        (Some(_), Some(_)) => {}
    }
    server_notes(root, &mut notes);

    let bridges = local_bridges(root, &mut notes);
    let mut taps_used: Vec<String> = Vec::new();
    let hubs = root
        .folder("VirtualHUB")
        .map(|h| h.folders.as_slice())
        .unwrap_or_default();
    let mut imported_hubs = 0;
    for hub in hubs {
        if write_hub(&mut out, hub, &bridges, &mut taps_used, &mut notes) {
            imported_hubs += 1;
        }
    }
    for bridge in &bridges {
        if !hubs
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(&bridge.hub))
        {
            notes.push(format!(
                "local bridge {}: its hub {:?} does not exist; not carried over",
                bridge.device, bridge.hub
            ));
        }
    }
    if imported_hubs == 0 {
        notes.push("no hub had users or a local bridge; the config has no [[hub]]".to_owned());
    }
    Imported {
        toml: out,
        notes,
        identity,
    }
}

fn server_identity(root: &Folder) -> Option<ServerIdentity> {
    let sc = root.folder("ServerConfiguration")?;
    let cert = sc.bytes("ServerCert").filter(|b| !b.is_empty())?;
    let key = sc.bytes("ServerKey").filter(|b| !b.is_empty())?;
    Some(ServerIdentity {
        cert_der: cert.to_vec(),
        key_der: key.to_vec(),
    })
}

fn write_server(out: &mut String, root: &Folder, tls: Option<&TlsPaths>) {
    let listen_ip = root
        .folder("ServerConfiguration")
        .and_then(|s| s.str("ListenIP"))
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let ports: Vec<u32> = root
        .folder("ListenerList")
        .map(|l| l.folders.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|l| l.bool("Enabled").unwrap_or(false))
        .filter_map(|l| l.uint("Port"))
        .filter(|p| (1..=u32::from(u16::MAX)).contains(p))
        .collect();
    out.push_str("[server]\n");
    if !ports.is_empty() {
        let listen: Vec<String> = ports
            .iter()
            .map(|p| quote(&format!("{listen_ip}:{p}")))
            .collect();
        let _ = writeln!(out, "listen = [{}]", listen.join(", "));
    }
    if let Some(tls) = tls {
        out.push_str("# The SoftEther server's own certificate, so pinned clients keep working.\n");
        let _ = writeln!(out, "tls_cert = {}", quote(&tls.cert));
        let _ = writeln!(out, "tls_key = {}", quote(&tls.key));
    }
    out.push('\n');
}

/// Server-wide features in use that ethergate does not have.
fn server_notes(root: &Folder, notes: &mut Vec<String>) {
    if let Some(ipsec) = root.folder("IPsec") {
        for (key, what) in [
            ("L2TP_IPsec", "L2TP over IPsec"),
            ("L2TP_Raw", "raw L2TP"),
            ("EtherIP_IPsec", "EtherIP over IPsec"),
        ] {
            if ipsec.bool(key) == Some(true) {
                notes.push(format!(
                    "{what}: enabled in SoftEther; ethergate speaks the SoftEther protocol only"
                ));
            }
        }
    }
    if let Some(proto) = root
        .folder("ServerConfiguration")
        .and_then(|s| s.folder("Proto"))
    {
        for p in &proto.folders {
            if p.bool("Enabled") == Some(true) {
                notes.push(format!(
                    "{}: enabled in SoftEther; ethergate speaks the SoftEther protocol only",
                    p.name
                ));
            }
        }
    }
    if let Some(sc) = root.folder("ServerConfiguration") {
        for (key, what) in [
            ("EnableVpnAzure", "VPN Azure"),
            ("EnableVpnOverDns", "VPN over DNS"),
            ("EnableVpnOverIcmp", "VPN over ICMP"),
        ] {
            if sc.bool(key) == Some(true) {
                notes.push(format!("{what}: enabled in SoftEther; not carried over"));
            }
        }
        if sc.bool("DisableIPv6Listener") == Some(false) {
            notes.push(
                "IPv6: SoftEther also listened on [::]; add \"[::]:443\" etc. to listen if \
                 clients connect over IPv6"
                    .to_owned(),
            );
        }
        if sc
            .folder("SyslogSettings")
            .and_then(|s| s.str("HostName"))
            .is_some_and(|h| !h.is_empty())
        {
            notes.push("syslog server: not carried over; ethergate logs to journald".to_owned());
        }
    }
    if root.folder("DDnsClient").and_then(|d| d.bool("Disabled")) == Some(false) {
        notes.push("dynamic DNS (softether.net): not carried over".to_owned());
    }
    if root
        .folder("VirtualLayer3SwitchList")
        .is_some_and(|l| !l.folders.is_empty())
    {
        notes.push(
            "virtual layer 3 switches: not carried over; route between hub taps in the kernel"
                .to_owned(),
        );
    }
    notes.push(
        "server administrator password: not carried over; ethergate's admin socket is root-only"
            .to_owned(),
    );
}

/// One `LocalBridgeList` entry.
struct LocalBridge {
    hub: String,
    /// What the operator named (`00`, `eth1`).
    device: String,
    tap_mode: bool,
}

fn local_bridges(root: &Folder, notes: &mut Vec<String>) -> Vec<LocalBridge> {
    let Some(list) = root.folder("LocalBridgeList") else {
        return Vec::new();
    };
    let mut bridges = Vec::new();
    for b in &list.folders {
        let (Some(hub), Some(device)) = (b.str("HubName"), b.str("DeviceName")) else {
            notes.push(format!(
                "local bridge {}: no hub or device name; skipped",
                b.name
            ));
            continue;
        };
        if b.bool("MonitorMode") == Some(true) {
            notes.push(format!(
                "local bridge {device} (hub {hub}): monitor mode is not carried over"
            ));
        }
        bridges.push(LocalBridge {
            hub: hub.to_owned(),
            device: device.to_owned(),
            tap_mode: b.bool("TapMode").unwrap_or(false),
        });
    }
    bridges
}

/// Writes one `[[hub]]`; false when the hub is skipped (nothing in it).
fn write_hub(
    out: &mut String,
    hub: &Folder,
    bridges: &[LocalBridge],
    taps_used: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> bool {
    let name = hub.name.as_str();
    if let Err(why) = check_hub_name(name) {
        notes.push(format!("hub {name:?}: name {why}; skipped"));
        return false;
    }
    let mine: Vec<&LocalBridge> = bridges
        .iter()
        .filter(|b| b.hub.eq_ignore_ascii_case(name))
        .collect();
    let secure_nat = hub.folder("SecureNAT");
    let nat_on = secure_nat.is_some_and(|s| s.bool("Disabled") == Some(false));
    let mut user_notes = Vec::new();
    let users = users(hub, &mut user_notes);
    if users.is_empty() && mine.is_empty() && !nat_on {
        // SoftEther creates DEFAULT on install; an untouched one is noise.
        notes.extend(user_notes);
        notes.push(format!(
            "hub {name}: no password users, local bridge or SecureNAT; skipped"
        ));
        return false;
    }

    let tap = choose_tap(name, &mine, taps_used, notes);
    taps_used.push(tap.clone());
    let (host, prefix) = virtual_host(hub, notes);
    let _ = writeln!(out, "[[hub]]\nname = {}", quote(name));
    let _ = writeln!(out, "bridge = {}", quote(&tap));
    let _ = writeln!(
        out,
        "bridge_address = {}",
        quote(&format!("{host}/{prefix}"))
    );
    if !nat_on {
        notes.push(format!(
            "hub {name}: SecureNAT was off, so no [hub.dhcp]; bridge_address is SecureNAT's \
             (unused) virtual host address: set it to the address {tap} had on the old server"
        ));
    }
    out.push('\n');

    if nat_on && let Some(dhcp) = secure_nat.and_then(|s| s.folder("VirtualDhcpServer")) {
        write_dhcp(out, name, dhcp, prefix, notes);
    }
    if nat_on
        && secure_nat
            .and_then(|s| s.folder("VirtualRouter"))
            .and_then(|r| r.bool("NatEnabled"))
            == Some(true)
    {
        notes.push(format!(
            "hub {name}: SecureNAT's user-mode NAT is replaced by the kernel: VPN clients reach \
             what {tap}'s host routes to; add [nat] with uplink and a [[nat.snat]] for \
             {subnet}/{prefix} if they should reach the internet through this box",
            subnet = Ipv4Addr::from_bits(host.to_bits() & prefix_mask(prefix))
        ));
    }
    if !users.is_empty() {
        let _ = writeln!(
            out,
            "# Session limits: ethergate's defaults apply unless set below \
             ({DEFAULT_MAX_SESSIONS_PER_USER} sessions\n\
             # per user; {MAX_CONNECTIONS_PER_SESSION} TCP connections, \
             {DEFAULT_MAX_MACS_PER_SESSION} MAC addresses and \
             {DEFAULT_MAX_LEASES_PER_SESSION} DHCP leases per\n\
             # session), where SoftEther had no limit unless a policy set one. A user\n\
             # that bridges a LAN needs a higher max_macs_per_session. See [hub.limits]\n\
             # in docs/operator.md.\n"
        );
    }
    for user in &users {
        let _ = writeln!(
            out,
            "[[hub.user]]\nname = {}\npassword_hash = {}",
            quote(&user.name),
            quote(&user.hash.to_base64())
        );
        if !user.limits.is_empty() {
            let _ = writeln!(out, "# From {}:", user.policy_source);
            for (key, value) in &user.limits {
                let _ = writeln!(out, "{key} = {value}");
            }
        }
        out.push('\n');
    }
    notes.extend(user_notes);
    hub_notes(hub, notes);
    true
}

/// The tap for a hub: its tap-mode local bridge (`tap_<device>`, as
/// SoftEther names it on Linux) or a new one named after the hub.
fn choose_tap(
    hub: &str,
    bridges: &[&LocalBridge],
    taps_used: &[String],
    notes: &mut Vec<String>,
) -> String {
    let mut chosen = None;
    for b in bridges {
        if !b.tap_mode {
            notes.push(format!(
                "hub {hub}: local bridge to the existing interface {} is not carried over; \
                 ethergate bridges a hub to a tap it creates — route between the tap and {} \
                 in the kernel, or add both to a Linux bridge",
                b.device, b.device
            ));
            continue;
        }
        let tap = format!("tap_{}", b.device);
        let usable = InterfaceName::new(&tap).is_ok() && !taps_used.contains(&tap);
        match (&chosen, usable) {
            (None, true) => chosen = Some(tap),
            _ => notes.push(format!(
                "hub {hub}: local bridge {tap} is not carried over (a hub has one tap in \
                 ethergate)"
            )),
        }
    }
    chosen.unwrap_or_else(|| generated_tap(hub, taps_used))
}

/// `tap_<hub>` from the hub name's letters and digits, shortened to fit
/// IFNAMSIZ and numbered when taken.
fn generated_tap(hub: &str, taps_used: &[String]) -> String {
    let stem: String = hub
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let stem = if stem.is_empty() { "hub".into() } else { stem };
    for n in 0u32.. {
        let suffix = if n == 0 { String::new() } else { n.to_string() };
        let room = MAX_INTERFACE_NAME_LEN - "tap_".len() - suffix.len();
        let candidate = format!("tap_{}{suffix}", &stem[..stem.len().min(room)]);
        if !taps_used.contains(&candidate) && InterfaceName::new(&candidate).is_ok() {
            return candidate;
        }
    }
    unreachable!("some numbered tap name is free")
}

/// SecureNAT's virtual host address and prefix: the role the hub's tap
/// plays in ethergate (DHCP server identity, gateway of pushed routes).
fn virtual_host(hub: &Folder, notes: &mut Vec<String>) -> (Ipv4Addr, u8) {
    let host = hub
        .folder("SecureNAT")
        .and_then(|s| s.folder("VirtualHost"));
    let ip = host
        .and_then(|h| h.str("VirtualHostIp"))
        .and_then(|s| s.parse().ok());
    let prefix = host
        .and_then(|h| h.str("VirtualHostIpSubnetMask"))
        .and_then(|s| s.parse().ok())
        .and_then(mask_to_prefix);
    match (ip, prefix) {
        (Some(ip), Some(prefix)) => (ip, prefix),
        _ => {
            notes.push(format!(
                "hub {}: no valid SecureNAT virtual host address; using SoftEther's default \
                 {}/{} — check bridge_address",
                hub.name, DEFAULT_HOST.0, DEFAULT_HOST.1
            ));
            DEFAULT_HOST
        }
    }
}

fn write_dhcp(out: &mut String, hub: &str, d: &Folder, prefix: u8, notes: &mut Vec<String>) {
    if d.bool("DhcpEnabled") != Some(true) {
        return;
    }
    let ip = |key| {
        d.str(key)
            .and_then(|s| s.parse::<Ipv4Addr>().ok())
            .filter(|a| !a.is_unspecified())
    };
    let (Some(start), Some(end)) = (ip("DhcpLeaseIPStart"), ip("DhcpLeaseIPEnd")) else {
        notes.push(format!(
            "hub {hub}: the DHCP pool is not a valid address range; [hub.dhcp] not carried over"
        ));
        return;
    };
    if let Some(mask_prefix) = d
        .str("DhcpSubnetMask")
        .and_then(|s| s.parse().ok())
        .and_then(mask_to_prefix)
        && mask_prefix != prefix
    {
        notes.push(format!(
            "hub {hub}: DHCP handed out /{mask_prefix} but the virtual host is on /{prefix}; \
             ethergate uses the hub's subnet (/{prefix})"
        ));
    }
    let lease = d.uint("DhcpExpireTimeSpan").unwrap_or(7200);
    let clamped = lease.clamp(MIN_LEASE_SECS, MAX_LEASE_SECS);
    if clamped != lease {
        notes.push(format!(
            "hub {hub}: DHCP lease of {lease} s is outside ethergate's \
             {MIN_LEASE_SECS}..={MAX_LEASE_SECS}; using {clamped} s"
        ));
    }
    let _ = writeln!(
        out,
        "[hub.dhcp]\nrange = {}\nlease_secs = {clamped}",
        quote(&format!("{start}-{end}"))
    );
    let dns: Vec<String> = ["DhcpDnsServerAddress", "DhcpDnsServerAddress2"]
        .into_iter()
        .filter_map(ip)
        .map(|a| quote(&a.to_string()))
        .collect();
    if !dns.is_empty() {
        let _ = writeln!(out, "dns = [{}]", dns.join(", "));
    }
    if let Some(router) = ip("DhcpGatewayAddress") {
        let _ = writeln!(out, "router = {}", quote(&router.to_string()));
    }
    let routes = push_routes(hub, d.str("DhcpPushRoutes").unwrap_or(""), notes);
    if !routes.is_empty() {
        let quoted: Vec<String> = routes.iter().map(|r| quote(r)).collect();
        let _ = writeln!(out, "routes = [{}]", quoted.join(", "));
    }
    if d.str("DhcpDomainName").is_some_and(|s| !s.is_empty()) {
        notes.push(format!(
            "hub {hub}: DHCP domain name (option 15) is not carried over"
        ));
    }
    out.push('\n');
}

/// `DhcpPushRoutes` → `"NET/LEN via GW"` strings. SoftEther accepts a mask
/// or a prefix length in the middle field.
pub fn push_routes(hub: &str, text: &str, notes: &mut Vec<String>) -> Vec<String> {
    let mut routes = Vec::new();
    for entry in text.split([',', ' ', '\t']).filter(|e| !e.is_empty()) {
        let parts: Vec<&str> = entry.split('/').collect();
        let parsed = match parts[..] {
            [net, mask, gw] => {
                let net = net.parse::<Ipv4Addr>().ok();
                let prefix = mask
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= 32)
                    .or_else(|| mask.parse().ok().and_then(mask_to_prefix));
                let gw = gw.parse::<Ipv4Addr>().ok();
                net.zip(prefix).zip(gw)
            }
            _ => None,
        };
        let Some(((net, prefix), gw)) = parsed else {
            notes.push(format!(
                "hub {hub}: pushed route {entry:?} is not NET/MASK/GATEWAY; skipped"
            ));
            continue;
        };
        let network = Ipv4Addr::from_bits(net.to_bits() & prefix_mask(prefix));
        if network != net {
            notes.push(format!(
                "hub {hub}: pushed route {entry:?} has host bits set; carried over as \
                 {network}/{prefix}"
            ));
        }
        if routes.len() == MAX_CLASSLESS_ROUTES {
            notes.push(format!(
                "hub {hub}: more than {MAX_CLASSLESS_ROUTES} pushed routes; the rest are dropped"
            ));
            break;
        }
        routes.push(format!("{network}/{prefix} via {gw}"));
    }
    routes
}

/// A password user as carried over.
struct ImportedUser {
    name: String,
    hash: PasswordHash,
    /// `max_*` keys from its SoftEther policy, in config order.
    limits: Vec<(&'static str, u32)>,
    /// Where the limits came from, for a comment: "SoftEther's policy for
    /// this user" or "group staff's SoftEther policy".
    policy_source: String,
}

/// The SoftEther policy items ethergate carries over (or, for `CheckMac`,
/// always enforces), and `TimeOut` at its default.
const HANDLED_POLICY_ITEMS: [&str; 6] = [
    "Access",
    "CheckMac",
    "MaxConnection",
    "MaxIP",
    "MaxMac",
    "MultiLogins",
];

/// The limits a SoftEther `Policy` folder sets, as config keys; notes for
/// the settings that are not carried over. SoftEther's 0 is "no limit",
/// which leaves ethergate's default in place.
fn policy_limits(
    policy: &Folder,
    whose: &str,
    notes: &mut Vec<String>,
) -> Vec<(&'static str, u32)> {
    let uint = |key| policy.uint(key).unwrap_or(0);
    let mut limits = Vec::new();
    if let n @ 1.. = uint("MultiLogins") {
        limits.push(("max_sessions_per_user", n.min(MAX_SESSION_LIMIT)));
    }
    if let n @ 1.. = uint("MaxConnection")
        && n < MAX_CONNECTIONS_PER_SESSION
    {
        limits.push(("max_connections_per_session", n));
    }
    if let n @ 1.. = uint("MaxMac") {
        if n < MIN_MAX_MACS_PER_SESSION {
            notes.push(format!(
                "{whose}: MaxMac {n} is below SoftEther's own minimum; carried over as \
                 {MIN_MAX_MACS_PER_SESSION}, as SoftEther applied it"
            ));
        }
        let n = n.clamp(MIN_MAX_MACS_PER_SESSION, MAX_SESSION_LIMIT);
        limits.push(("max_macs_per_session", n));
    }
    if let n @ 1.. = uint("MaxIP") {
        limits.push(("max_leases_per_session", n.min(MAX_SESSION_LIMIT)));
        notes.push(format!(
            "{whose}: MaxIP {n} becomes max_leases_per_session: ethergate limits the DHCP \
             leases of a session, not addresses a client configures itself"
        ));
    }
    let mut dropped = Vec::new();
    for item in &policy.items {
        let name = item.name.as_str();
        if HANDLED_POLICY_ITEMS
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
        {
            continue;
        }
        // The default TimeOut (20 s) is also ethergate's session timeout.
        let default_timeout =
            name.eq_ignore_ascii_case("TimeOut") && matches!(item.value, Value::Uint(0 | 20));
        match item.value {
            _ if default_timeout => {}
            Value::Bool(true) => dropped.push(name.to_owned()),
            Value::Uint(n @ 1..) => dropped.push(format!("{name} {n}")),
            _ => {}
        }
    }
    if !dropped.is_empty() {
        notes.push(format!(
            "{whose}: policy settings not carried over: {}",
            dropped.join(", ")
        ));
    }
    limits
}

/// Password users, and a note for every user that cannot be carried over
/// or loses something on the way.
fn users(hub: &Folder, notes: &mut Vec<String>) -> Vec<ImportedUser> {
    let hub_name = &hub.name;
    let db = hub.folder("SecurityAccountDatabase");
    let list = db
        .and_then(|db| db.folder("UserList"))
        .map(|l| l.folders.as_slice())
        .unwrap_or_default();
    let group_policy = |group: &str| {
        db.and_then(|db| db.folder("GroupList"))
            .and_then(|g| g.folder(group))
            .and_then(|g| g.folder("Policy"))
    };
    let mut users = Vec::new();
    for user in list {
        let name = &user.name;
        if let Err(why) = check_user_name(name) {
            notes.push(format!(
                "hub {hub_name}: user {name:?} is not carried over: its name {why}"
            ));
            continue;
        }
        let auth_type = user.uint("AuthType").unwrap_or(u32::MAX);
        if auth_type != 1 {
            notes.push(format!(
                "hub {hub_name}: user {name} uses {} authentication; not carried over \
                 (ethergate has password users only)",
                auth_type_name(auth_type)
            ));
            continue;
        }
        let Some(hash) = user
            .bytes("AuthPassword")
            .and_then(|b| <[u8; 20]>::try_from(b).ok())
        else {
            notes.push(format!(
                "hub {hub_name}: user {name} has no 20-byte AuthPassword hash; not carried over"
            ));
            continue;
        };
        let group = user.str("GroupName").filter(|g| !g.is_empty());
        if let Some(group) = group {
            notes.push(format!(
                "hub {hub_name}: user {name}: group membership ({group}) is not carried over"
            ));
        }
        // SoftEther applies the user's own policy, else its group's.
        let whose = format!("hub {hub_name}: user {name}");
        let (policy, policy_source) = match (user.folder("Policy"), group) {
            (Some(p), _) => (Some(p), "SoftEther's policy for this user".to_owned()),
            (None, Some(g)) => (group_policy(g), format!("group {g}'s SoftEther policy")),
            (None, None) => (None, String::new()),
        };
        if policy.is_some_and(|p| p.bool("Access") == Some(false)) {
            notes.push(format!(
                "{whose}: not carried over: {policy_source} denies access (Access false)"
            ));
            continue;
        }
        let limits = policy.map_or_else(Vec::new, |p| policy_limits(p, &whose, notes));
        if user.uint64("ExpireTime").is_some_and(|t| t != 0) {
            notes.push(format!(
                "hub {hub_name}: user {name}: expiry date is not carried over; the account \
                 does not expire"
            ));
        }
        users.push(ImportedUser {
            name: name.clone(),
            hash: PasswordHash::from_bytes(hash),
            limits,
            policy_source,
        });
    }
    users
}

/// Hub-wide features in use that ethergate does not have.
fn hub_notes(hub: &Folder, notes: &mut Vec<String>) {
    let name = &hub.name;
    if hub.bool("Online") == Some(false) {
        notes.push(format!(
            "hub {name}: was offline in SoftEther; it is online in ethergate"
        ));
    }
    if hub.str("RadiusServerName").is_some_and(|s| !s.is_empty()) {
        notes.push(format!("hub {name}: RADIUS server is not carried over"));
    }
    let db = hub.folder("SecurityAccountDatabase");
    for (folder, what) in [
        (
            "GroupList",
            "groups (their policies' limits are carried over to members without a policy of \
             their own)",
        ),
        ("CertList", "trusted CA certificates"),
        ("CrlList", "certificate revocation entries"),
        ("IPAccessControlList", "source IP access control"),
    ] {
        if db
            .and_then(|d| d.folder(folder))
            .is_some_and(|f| !f.folders.is_empty() || !f.items.is_empty())
        {
            notes.push(format!("hub {name}: {what} are not carried over"));
        }
    }
    for (folder, what) in [
        ("AccessList", "access lists (packet filters)"),
        ("CascadeList", "cascade connections"),
    ] {
        if hub
            .folder(folder)
            .is_some_and(|f| !f.folders.is_empty() || !f.items.is_empty())
        {
            notes.push(format!("hub {name}: {what} are not carried over"));
        }
    }
}

fn mask_to_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = mask.to_bits();
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

fn prefix_mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// A TOML basic string.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
