//! WireGuard on a hub (`[hub.wireguard]`) and on its users
//! (`wireguard_public_key`, `wireguard_address`,
//! `wireguard_preshared_key_file`).
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

pub use ethergate_wireguard::{PresharedKey, PublicKey};

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
    /// The device's preshared key, kept in a file of its own.
    pub preshared_key_file: Option<PresharedKeyFile>,
}

/// `wireguard_preshared_key_file`: the key shared with one device, in a
/// file (generated at the first start when missing, like `password_file`:
/// see [`crate::Config::resolve_secret_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresharedKeyFile {
    /// As written; a relative path is under `state_dir`.
    pub path: PathBuf,
    /// Set once the file was read. Until then the device cannot connect:
    /// the endpoint is not offered a peer whose key it does not know (it
    /// would otherwise use none, and a device that has one would fail).
    pub key: Option<PresharedKey>,
}

/// A WireGuard user with the tunnel address it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireguardPeer {
    pub user: String,
    pub public_key: PublicKey,
    pub address: Ipv4Addr,
    pub preshared_key: PeerPresharedKey,
}

/// What a peer's handshake mixes in as its preshared key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerPresharedKey {
    /// No `wireguard_preshared_key_file`: the protocol's all-zero key.
    None,
    Key(PresharedKey),
    /// The file has not been read (it does not exist yet).
    Unread(PathBuf),
}

impl PeerPresharedKey {
    pub(crate) fn of(wireguard: &UserWireguard) -> Self {
        match &wireguard.preshared_key_file {
            None => Self::None,
            Some(PresharedKeyFile { key: Some(k), .. }) => Self::Key(k.clone()),
            Some(PresharedKeyFile { path, key: None }) => Self::Unread(path.clone()),
        }
    }
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

/// Reads a user's `wireguard_public_key`, `wireguard_address` and
/// `wireguard_preshared_key_file`.
pub(crate) fn read_user_wireguard(
    report: &mut Report,
    s: &mut Section<'_, '_>,
    context: &str,
) -> Result<Option<UserWireguard>, ()> {
    let key_at = s.string(report, "wireguard_public_key");
    let address_at = s.string(report, "wireguard_address");
    let psk_at = s.string(report, "wireguard_preshared_key_file");
    let Some(key_at) = key_at else {
        let orphans = [
            ("wireguard_address", address_at),
            ("wireguard_preshared_key_file", psk_at),
        ];
        let mut refused = false;
        for (name, at) in orphans {
            if let Some(a) = at {
                report.error(a.pos, format!("{context}{name} needs wireguard_public_key"));
                refused = true;
            }
        }
        return if refused { Err(()) } else { Ok(None) };
    };
    let preshared_key_file = match psk_at {
        None => None,
        Some(p) if p.value.trim().is_empty() => {
            report.error(
                p.pos,
                format!("{context}wireguard_preshared_key_file is empty"),
            );
            return Err(());
        }
        Some(p) => Some(PresharedKeyFile {
            path: PathBuf::from(p.value),
            key: None,
        }),
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
        preshared_key_file,
    }))
}
