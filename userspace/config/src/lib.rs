//! ethergate's configuration: the one TOML file that describes the whole
//! appliance (`[server]`, `[[hub]]`, `[nat]`), parsed into typed values.
//!
//! Invariant: a [`Config`] only exists if the file passed every check.
//! Parsing never stops at the first semantic problem; it returns every
//! error with `file:line` ([`ConfigErrors`]), so `ethergate check` can list
//! them all and a reload can reject a bad file while the live config stays
//! in force. Only a TOML syntax error ends parsing early, because nothing
//! after it can be trusted.
#![forbid(unsafe_code)]

mod dhcp;
mod diagnostic;
mod edit;
mod hub;
mod hub_read;
mod hub_wireguard;
mod ifname;
mod limits;
mod nat;
mod reader;
mod secret_files;
mod server;
mod user;
mod wireguard;

use std::path::Path;

use toml::de::DeTable;

pub use dhcp::{
    AddressRange, DEFAULT_LEASE_SECS, DhcpConfig, MAX_CLASSLESS_ROUTES, MAX_DNS_SERVERS,
    MAX_LEASE_SECS, MIN_LEASE_SECS,
};
pub use diagnostic::{ConfigError, ConfigErrors, Diagnostic};
pub use edit::{EditError, PreviousCredential, UsersEdit};
pub use ethergate_net::{CidrError, ClasslessRoute, Ipv4Cidr, RouteError};
pub use hub::{Hub, MAX_HUB_NAME_LEN, check_hub_name};
pub use ifname::{InterfaceName, InterfaceNameError, MAX_INTERFACE_NAME_LEN};
pub use limits::{
    DEFAULT_MAX_LEASES_PER_SESSION, DEFAULT_MAX_MACS_PER_SESSION, DEFAULT_MAX_SESSIONS_PER_USER,
    MAX_CONNECTIONS_PER_SESSION, MAX_SESSION_LIMIT, MIN_MAX_MACS_PER_SESSION, SessionLimits,
};
pub use nat::{
    DEFAULT_ICMP_SECS, DEFAULT_MAX_FLOWS, DEFAULT_TCP_ESTABLISHED_SECS,
    DEFAULT_TCP_TRANSITORY_SECS, DEFAULT_UDP_SECS, DnatRule, L4Protocol, MAX_MAX_FLOWS,
    MAX_TIMEOUT_SECS, MIN_MAX_FLOWS, Nat, NatLimits, NatMode, NatTimeouts, SnatRule, SnatTarget,
    default_max_flows_per_source,
};
pub use secret_files::{
    GeneratedSecret, SecretFile, SecretFileError, SecretKind, new_secret,
    resolve_path as resolve_secret_path, write_new as write_new_secret,
};
pub use server::{
    DEFAULT_ADMIN_SOCKET, DEFAULT_LISTEN, DEFAULT_METRICS, DEFAULT_STATE_DIR, LoginThrottle,
    Server, ServerLimits, TlsFiles,
};
pub use user::{
    MAX_USER_NAME_LEN, PasswordFile, PasswordHash, PasswordHashError, User, check_user_name,
    published_password,
};
pub use wireguard::{
    DEFAULT_WIREGUARD_PORT, HubWireguard, PeerPresharedKey, PresharedKey, PresharedKeyFile,
    PublicKey, UserWireguard, WireguardPeer,
};

use diagnostic::Report;
use reader::Section;

/// The shipped config (`deploy/ethergate.toml`): the recipe's setup on the
/// test topology, with comments explaining every key.
pub const DEFAULT_CONFIG: &str = include_str!("../../../deploy/ethergate.toml");

/// The name diagnostics use for [`DEFAULT_CONFIG`].
pub const DEFAULT_CONFIG_ORIGIN: &str = "deploy/ethergate.toml (embedded)";

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub server: Server,
    /// In file order; names unique case-insensitively. May be empty (a NAT
    /// instance without VPN).
    pub hubs: Vec<Hub>,
    /// `None` when `[nat]` is absent: no translation at all.
    pub nat: Option<Nat>,
    /// Things that work but deserve attention (plaintext passwords, a hub
    /// nobody can log in to, ...), in line order. Print them on check, load
    /// and reload.
    pub warnings: Vec<Diagnostic>,
}

const TOP_KEYS: &[&str] = &["server", "hub", "nat"];

impl Config {
    /// Parses and validates `text`. `origin` names the file in messages
    /// (`ethergate.toml:14: ...`); it is not opened.
    pub fn from_str_with_origin(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
        let mut report = Report::new(text, origin);
        // Recovering parse: syntax errors on several lines are all reported,
        // but nothing is validated past them, since a recovered tree would
        // only add noise. Only the first error of each line is kept: after
        // one mistake the parser's recovery cascades (an unclosed array
        // yields four more complaints about the same line).
        let (root, syntax_errors) = DeTable::parse_recoverable(text);
        if !syntax_errors.is_empty() {
            let mut lines_seen = Vec::new();
            for e in syntax_errors {
                let pos = e.span().map_or(0, |s| s.start);
                if report.report_once_per_line(pos, &mut lines_seen) {
                    report.error(pos, format!("TOML syntax: {}", e.message().trim_end()));
                }
            }
            return Err(report
                .finish()
                .expect_err("syntax errors were just reported"));
        }
        let mut top = Section::new(root.get_ref(), 0, "", "", TOP_KEYS);

        let server_section = top.table(&mut report, "server", server::SERVER_KEYS);
        let server = server::read_server(&mut report, server_section);

        let mut read_hubs = Vec::new();
        for (i, (table, pos)) in top.tables(&mut report, "hub").into_iter().enumerate() {
            let section = Section::new(
                table,
                pos,
                format!("hub[{}]: ", i + 1),
                "hub",
                hub_read::HUB_KEYS,
            );
            read_hubs.push(hub_read::read_hub(&mut report, section, i + 1));
        }
        hub_read::check_hubs(&mut report, &read_hubs);

        let nat_section = top.table(&mut report, "nat", nat::NAT_KEYS);
        let nat = nat_section.map(|s| nat::read_nat(&mut report, s));
        if let Some(nat) = &nat {
            check_nat_against_hubs(&mut report, nat, &read_hubs);
        }
        top.finish(&mut report);

        let hubs: Vec<Hub> = read_hubs.into_iter().filter_map(|h| h.hub).collect();
        let warnings = report.finish()?;
        Ok(Config {
            server,
            hubs,
            nat: nat.and_then(|n| n.nat),
            warnings,
        })
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_str_with_origin(&text, &path.display().to_string()).map_err(ConfigError::Invalid)
    }

    /// [`DEFAULT_CONFIG`], parsed.
    pub fn embedded_default() -> Config {
        Self::from_str_with_origin(DEFAULT_CONFIG, DEFAULT_CONFIG_ORIGIN)
            .expect("the embedded default config is valid (checked by a unit test)")
    }

    /// Looks a hub up the way SoftEther does: ASCII-case-insensitively.
    pub fn hub(&self, name: &str) -> Option<&Hub> {
        self.hubs.iter().find(|h| h.name.eq_ignore_ascii_case(name))
    }
}

/// The uplink must not be a hub's tap; listing a tap as inside is redundant.
fn check_nat_against_hubs(report: &mut Report, nat: &nat::NatRead, hubs: &[hub_read::ReadHub]) {
    for hub in hubs.iter().filter_map(|h| h.hub.as_ref()) {
        if let Some((uplink, pos)) = &nat.uplink
            && hub.bridge == *uplink
        {
            report.error(
                *pos,
                format!(
                    "nat.uplink {uplink} is hub {:?}'s bridge; the uplink must be the interface \
                     toward the router",
                    hub.name
                ),
            );
        }
        for (name, pos) in &nat.inside {
            if *name == hub.bridge {
                report.warn(
                    *pos,
                    format!(
                        "nat.inside lists {name}, hub {:?}'s bridge; hub taps are always \
                         inside, so remove it",
                        hub.name
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
