//! `[server]`: listeners, TLS files, state and control paths, metrics.
//!
//! Every key has a default, so `[server]` may be omitted. Invariants of a
//! validated [`Server`]: at least one listener, no two listeners (or the
//! metrics endpoint) that would fight over one port, TLS certificate and key
//! given together, and absolute paths — the daemon's working directory is
//! not something a config file should depend on.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::diagnostic::Report;
use crate::reader::{At, Section};

/// 443 for HTTPS look-alike traffic, 992 and 5555 as SoftEther listens by
/// default; the SoftEther client tries these.
pub const DEFAULT_LISTEN: [SocketAddr; 3] = [
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 443),
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 992),
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5555),
];
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ethergate";
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/ethergate/admin.sock";
/// Loopback only by default: metrics reveal user names and traffic.
pub const DEFAULT_METRICS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9464);

/// PEM files for the TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub listen: Vec<SocketAddr>,
    /// `None`: generate a self-signed pair once into `state_dir` and reuse it.
    pub tls: Option<TlsFiles>,
    /// Runtime state (leases, generated keys); never the config itself.
    pub state_dir: PathBuf,
    pub admin_socket: PathBuf,
    /// Prometheus `/metrics`, `/healthz`, `/readyz`. `None` when the file
    /// says `metrics = "off"`.
    pub metrics: Option<SocketAddr>,
    /// `[server.limits]`: what one client, or all of them, may hold.
    pub limits: ServerLimits,
    /// `[server.login_throttle]`: what failed logins cost.
    pub login_throttle: LoginThrottle,
    /// Offer SoftEther's UDP acceleration on the UDP port of every listen
    /// address (default true, as SoftEther's own server does).
    pub udp_acceleration: bool,
}

/// `[server.limits]`. Defaults suit an internet-facing server; see
/// deploy/ethergate.toml for the reasoning behind each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_sessions: u32,
    pub max_sessions_per_hub: u32,
    /// Connections that have not finished TLS and login, in all.
    pub max_pending_handshakes: u32,
    /// ... from one address (IPv6: one /64).
    pub max_pending_per_address: u32,
    /// ... from one IPv4 /24 or IPv6 /48.
    pub max_pending_per_prefix: u32,
    /// A peer that takes no bytes for this long is disconnected.
    pub write_timeout_secs: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_sessions: 4096,
            max_sessions_per_hub: 4096,
            max_pending_handshakes: 1024,
            max_pending_per_address: 16,
            max_pending_per_prefix: 64,
            write_timeout_secs: 20,
        }
    }
}

/// `[server.login_throttle]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    /// Failed logins from one address before it is blocked.
    pub free_failures: u32,
    /// Failed logins on one user name, from anywhere, before addresses
    /// that have failed before are refused for that name.
    pub user_free_failures: u32,
    /// The longest block (the first is 2 s, doubling).
    pub max_block_secs: u32,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            free_failures: 5,
            user_free_failures: 10,
            max_block_secs: 300,
        }
    }
}

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_vec(),
            tls: None,
            state_dir: DEFAULT_STATE_DIR.into(),
            admin_socket: DEFAULT_ADMIN_SOCKET.into(),
            metrics: Some(DEFAULT_METRICS),
            limits: ServerLimits::default(),
            login_throttle: LoginThrottle::default(),
            udp_acceleration: true,
        }
    }
}

pub(crate) const SERVER_KEYS: &[&str] = &[
    "listen",
    "tls_cert",
    "tls_key",
    "state_dir",
    "admin_socket",
    "metrics",
    "limits",
    "login_throttle",
    "udp_acceleration",
];

const LIMIT_KEYS: &[&str] = &[
    "max_sessions",
    "max_sessions_per_hub",
    "max_pending_handshakes",
    "max_pending_per_address",
    "max_pending_per_prefix",
    "write_timeout_secs",
];

const THROTTLE_KEYS: &[&str] = &["free_failures", "user_free_failures", "max_block_secs"];

/// Reads `key` into `slot` when present, within `range`.
fn bounded(
    report: &mut Report,
    s: &mut Section<'_, '_>,
    key: &'static str,
    range: std::ops::RangeInclusive<u32>,
    slot: &mut u32,
) {
    let Some(v) = s.integer(report, key) else {
        return;
    };
    match u32::try_from(v.value) {
        Ok(n) if range.contains(&n) => *slot = n,
        _ => report.error(
            v.pos,
            format!(
                "{} = {} is out of range; use {} to {} (default {})",
                s.name(key),
                v.value,
                range.start(),
                range.end(),
                slot
            ),
        ),
    }
}

fn read_limits(report: &mut Report, section: Option<Section<'_, '_>>) -> ServerLimits {
    let mut l = ServerLimits::default();
    let Some(mut s) = section else { return l };
    bounded(
        report,
        &mut s,
        "max_sessions",
        1..=1_000_000,
        &mut l.max_sessions,
    );
    bounded(
        report,
        &mut s,
        "max_sessions_per_hub",
        1..=1_000_000,
        &mut l.max_sessions_per_hub,
    );
    bounded(
        report,
        &mut s,
        "max_pending_handshakes",
        1..=1_000_000,
        &mut l.max_pending_handshakes,
    );
    bounded(
        report,
        &mut s,
        "max_pending_per_address",
        1..=1_000_000,
        &mut l.max_pending_per_address,
    );
    bounded(
        report,
        &mut s,
        "max_pending_per_prefix",
        1..=1_000_000,
        &mut l.max_pending_per_prefix,
    );
    bounded(
        report,
        &mut s,
        "write_timeout_secs",
        1..=3600,
        &mut l.write_timeout_secs,
    );
    if l.max_pending_per_address > l.max_pending_per_prefix
        || l.max_pending_per_prefix > l.max_pending_handshakes
    {
        report.error(
            s.pos(),
            format!(
                "[server.limits]: max_pending_per_address ({}) <= max_pending_per_prefix ({}) \
                 <= max_pending_handshakes ({}) must hold; a smaller group cannot be allowed \
                 more than the larger one it belongs to",
                l.max_pending_per_address, l.max_pending_per_prefix, l.max_pending_handshakes
            ),
        );
    }
    s.finish(report);
    l
}

fn read_throttle(report: &mut Report, section: Option<Section<'_, '_>>) -> LoginThrottle {
    let mut t = LoginThrottle::default();
    let Some(mut s) = section else { return t };
    bounded(
        report,
        &mut s,
        "free_failures",
        1..=1000,
        &mut t.free_failures,
    );
    bounded(
        report,
        &mut s,
        "user_free_failures",
        1..=100_000,
        &mut t.user_free_failures,
    );
    bounded(
        report,
        &mut s,
        "max_block_secs",
        2..=86_400,
        &mut t.max_block_secs,
    );
    s.finish(report);
    t
}

/// True when binding both addresses would fail with EADDRINUSE: same port,
/// and the same IP or a wildcard of the same family.
fn collide(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

pub(crate) fn socket_addr(report: &mut Report, what: &str, at: At<&str>) -> Option<SocketAddr> {
    match at.value.parse::<SocketAddr>() {
        Ok(a) if a.port() == 0 => {
            report.error(
                at.pos,
                format!("{what} {:?} needs a port other than 0", at.value),
            );
            None
        }
        Ok(a) => Some(a),
        Err(_) => {
            report.error(
                at.pos,
                format!(
                    "{what} {:?} is not an address with a port, like \"0.0.0.0:443\" or \"[::]:443\"",
                    at.value
                ),
            );
            None
        }
    }
}

fn absolute_path(report: &mut Report, what: &str, at: At<&str>) -> Option<PathBuf> {
    let path = PathBuf::from(at.value);
    if path.is_absolute() {
        Some(path)
    } else {
        report.error(
            at.pos,
            format!(
                "{what} {:?} must be an absolute path (starting with /)",
                at.value
            ),
        );
        None
    }
}

pub(crate) fn read_server(report: &mut Report, section: Option<Section<'_, '_>>) -> Server {
    let mut server = Server::default();
    let Some(mut s) = section else {
        return server;
    };

    let mut listen: Vec<(SocketAddr, usize)> = Vec::new();
    if let Some(list) = s.string_list(report, "listen") {
        if list.value.is_empty() {
            report.error(
                list.pos,
                format!(
                    "{} is empty; give at least one address, e.g. [\"0.0.0.0:443\"]",
                    s.name("listen")
                ),
            );
        }
        for item in list.value {
            let Some(addr) = socket_addr(report, &s.name("listen"), item) else {
                continue;
            };
            if let Some((other, _)) = listen.iter().find(|(other, _)| collide(*other, addr)) {
                report.error(
                    item.pos,
                    format!(
                        "{} {addr} conflicts with {other} on the same port; keep one of them",
                        s.name("listen")
                    ),
                );
                continue;
            }
            listen.push((addr, item.pos));
        }
        server.listen = listen.iter().map(|(a, _)| *a).collect();
    } else {
        listen = DEFAULT_LISTEN.iter().map(|a| (*a, s.pos())).collect();
    }

    let cert = s.string(report, "tls_cert");
    let key = s.string(report, "tls_key");
    let cert_path = cert.and_then(|c| absolute_path(report, &s.name("tls_cert"), c));
    let key_path = key.and_then(|k| absolute_path(report, &s.name("tls_key"), k));
    match (cert, key) {
        (Some(_), Some(_)) => {
            if let (Some(cert), Some(key)) = (cert_path, key_path) {
                server.tls = Some(TlsFiles { cert, key });
            }
        }
        (Some(only), None) | (None, Some(only)) => {
            let (set, unset) = if cert.is_some() {
                ("tls_cert", "tls_key")
            } else {
                ("tls_key", "tls_cert")
            };
            report.error(
                only.pos,
                format!(
                    "{} is set but {unset} is not; set both, or neither to use a generated \
                     self-signed certificate",
                    s.name(set)
                ),
            );
        }
        (None, None) => {}
    }

    if let Some(dir) = s.string(report, "state_dir")
        && let Some(p) = absolute_path(report, &s.name("state_dir"), dir)
    {
        server.state_dir = p;
    }
    if let Some(sock) = s.string(report, "admin_socket")
        && let Some(p) = absolute_path(report, &s.name("admin_socket"), sock)
    {
        server.admin_socket = p;
    }

    let mut metrics_pos = s.pos();
    if let Some(m) = s.string(report, "metrics") {
        metrics_pos = m.pos;
        server.metrics = if m.value == "off" {
            None
        } else {
            socket_addr(report, &s.name("metrics"), m)
        };
    }
    if let Some(metrics) = server.metrics
        && let Some((other, _)) = listen.iter().find(|(l, _)| collide(*l, metrics))
    {
        report.error(
            metrics_pos,
            format!(
                "{} {metrics} conflicts with listen address {other}; move metrics to another port",
                s.name("metrics")
            ),
        );
    }

    if let Some(udp) = s.boolean(report, "udp_acceleration") {
        server.udp_acceleration = udp.value;
    }

    let limits = s.table(report, "limits", LIMIT_KEYS);
    server.limits = read_limits(report, limits);
    let throttle = s.table(report, "login_throttle", THROTTLE_KEYS);
    server.login_throttle = read_throttle(report, throttle);

    s.finish(report);
    server
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn wildcard_collides_with_specific_address() {
        assert!(collide(addr("0.0.0.0:443"), addr("10.0.0.1:443")));
        assert!(collide(addr("10.0.0.1:443"), addr("10.0.0.1:443")));
        assert!(!collide(addr("10.0.0.1:443"), addr("10.0.0.2:443")));
        assert!(!collide(addr("0.0.0.0:443"), addr("0.0.0.0:992")));
        assert!(!collide(addr("0.0.0.0:443"), addr("[::1]:443")));
    }
}
