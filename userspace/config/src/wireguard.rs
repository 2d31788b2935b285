//! WireGuard on a hub (`[hub.wireguard]`) and on its users
//! (`wireguard_public_key`, `wireguard_address`).
//!
//! Invariants of a validated hub: every WireGuard user has a distinct
//! public key and a distinct tunnel address on the hub's subnet that is
//! neither the subnet's network or broadcast address nor the tap's, nor an
//! address the DHCP server announces (router, DNS, route gateway); the
//! addresses are reserved in the DHCP pool, so no SoftEther client is ever
//! leased one. [`crate::Hub::wireguard_peers`] gives each user the same address on
//! every call and in every process (the CLI that prints a phone's config
//! and the server that routes to it agree without talking).

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
};

pub use ethergate_wireguard::PublicKey;

use crate::{diagnostic::Report, reader::Section, server::socket_addr};

/// The port WireGuard apps default to.
pub const DEFAULT_WIREGUARD_PORT: u16 = 51820;

/// `[hub.wireguard]`: the hub's UDP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubWireguard {
    pub listen: SocketAddr,
    /// `None`: generated once into `state_dir` (`wireguard-<hub>.key`).
    pub private_key_file: Option<PathBuf>,
}

impl HubWireguard {
    /// Where the hub's private key is: the configured file, or the one
    /// generated into `state_dir`.
    pub fn key_path(&self, hub_name: &str, state_dir: &std::path::Path) -> PathBuf {
        self.private_key_file.clone().unwrap_or_else(|| {
            state_dir.join(format!("wireguard-{}.key", hub_name.to_ascii_lowercase()))
        })
    }
}

/// A user's WireGuard device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserWireguard {
    pub public_key: PublicKey,
    /// Fixed tunnel address; `None`: one is picked from the pool.
    pub address: Option<Ipv4Addr>,
}

/// A WireGuard user with the tunnel address it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireguardPeer {
    pub user: String,
    pub public_key: PublicKey,
    pub address: Ipv4Addr,
}

pub(crate) const WIREGUARD_KEYS: &[&str] = &["listen", "private_key_file"];

pub(crate) fn read_hub_wireguard(
    report: &mut Report,
    mut s: Section<'_, '_>,
) -> Option<HubWireguard> {
    let listen_at = s.required_string(report, "listen", "\"0.0.0.0:51820\"");
    let key_at = s.string(report, "private_key_file");
    let (listen_name, key_name) = (s.name("listen"), s.name("private_key_file"));
    s.finish(report);
    let listen = listen_at.and_then(|l| socket_addr(report, &listen_name, l))?;
    let private_key_file = match key_at {
        None => None,
        Some(k) => {
            let path = PathBuf::from(k.value);
            if !path.is_absolute() {
                report.error(
                    k.pos,
                    format!("{key_name} {:?} is not an absolute path", k.value),
                );
                return None;
            }
            Some(path)
        }
    };
    Some(HubWireguard {
        listen,
        private_key_file,
    })
}

/// Reads a user's `wireguard_public_key` and `wireguard_address`.
pub(crate) fn read_user_wireguard(
    report: &mut Report,
    s: &mut Section<'_, '_>,
    context: &str,
) -> Result<Option<UserWireguard>, ()> {
    let key_at = s.string(report, "wireguard_public_key");
    let address_at = s.string(report, "wireguard_address");
    let Some(key_at) = key_at else {
        if let Some(a) = address_at {
            report.error(
                a.pos,
                format!("{context}wireguard_address needs wireguard_public_key"),
            );
            return Err(());
        }
        return Ok(None);
    };
    let public_key = PublicKey::from_base64(key_at.value).map_err(|why| {
        report.error(
            key_at.pos,
            format!(
                "{context}wireguard_public_key {why}; paste the device's public key (`wg pubkey`)"
            ),
        );
    })?;
    let address = match address_at {
        None => None,
        Some(a) => Some(a.value.parse::<Ipv4Addr>().map_err(|_| {
            report.error(
                a.pos,
                format!(
                    "{context}wireguard_address {:?} is not an IPv4 address",
                    a.value
                ),
            );
        })?),
    };
    Ok(Some(UserWireguard {
        public_key,
        address,
    }))
}
