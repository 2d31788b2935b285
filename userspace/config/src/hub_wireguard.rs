//! A hub's WireGuard users checked against the hub (`[hub.wireguard]`
//! with the hub's subnet, tap and DHCP): the addresses they get, that keys
//! and addresses are distinct and allowed, and that hubs' listen ports do
//! not collide. Apart from `wireguard.rs` (the tables themselves) so that
//! reading a table does not depend on the hub it belongs to.

use std::net::Ipv4Addr;

use crate::diagnostic::Report;
use crate::hub::Hub;
use crate::wireguard::{DEFAULT_WIREGUARD_PORT, PeerPresharedKey, UserWireguard, WireguardPeer};

/// FNV-1a: stable across Rust versions and platforms, unlike std's hasher,
/// because the CLI and the server must pick the same address.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Hub {
    /// Addresses nobody may get as a WireGuard address: the subnet's ends,
    /// the tap, and what DHCP announces.
    fn wireguard_forbidden(&self, ip: Ipv4Addr) -> Option<String> {
        let subnet = self.subnet();
        if !subnet.contains(ip) {
            return Some(format!("is outside the hub's subnet {subnet}"));
        }
        if !subnet.is_host_address(ip) {
            return Some(format!("is the network or broadcast address of {subnet}"));
        }
        if ip == self.bridge_ip() {
            return Some("is the tap's own address (bridge_address)".into());
        }
        if let Some(dhcp) = &self.dhcp
            && (dhcp.router == Some(ip)
                || dhcp.dns.contains(&ip)
                || dhcp.routes.iter().any(|r| r.gateway == ip))
        {
            return Some(
                "is announced by the hub's DHCP server (router, DNS or a route gateway)".into(),
            );
        }
        None
    }

    /// Every WireGuard user with its tunnel address: `wireguard_address`
    /// when given; otherwise an address of the DHCP range (or, without
    /// DHCP, of the subnet) chosen from a hash of the user's name, probing
    /// upwards past taken ones, so adding or removing another user does
    /// not move it. `Err` when the range has no room.
    pub fn wireguard_peers(&self) -> Result<Vec<WireguardPeer>, String> {
        let mut taken: Vec<Ipv4Addr> = self
            .users
            .iter()
            .filter_map(|u| u.wireguard.as_ref()?.address)
            .collect();
        let (first, last) = match &self.dhcp {
            Some(d) => (d.range.first.to_bits(), d.range.last.to_bits()),
            None => {
                let subnet = self.subnet();
                (
                    subnet.network().to_bits() + 1,
                    subnet.broadcast().to_bits() - 1,
                )
            }
        };
        let span = u64::from(last - first) + 1;
        let mut unpinned: Vec<&crate::User> = self
            .users
            .iter()
            .filter(|u| u.wireguard.as_ref().is_some_and(|w| w.address.is_none()))
            .collect();
        unpinned.sort_by_key(|u| u.name.to_ascii_lowercase());
        let mut peers = Vec::new();
        for user in &self.users {
            let Some(wg) = &user.wireguard else { continue };
            if let Some(address) = wg.address {
                peers.push(WireguardPeer {
                    user: user.name.clone(),
                    public_key: wg.public_key,
                    address,
                    preshared_key: PeerPresharedKey::of(wg),
                });
            }
        }
        for user in unpinned {
            let Some(wg) = &user.wireguard else { continue };
            let start = stable_hash(&user.name.to_ascii_lowercase()) % span;
            let address = (0..span)
                .map(|i| Ipv4Addr::from_bits(first + ((start + i) % span) as u32))
                .find(|ip| !taken.contains(ip) && self.wireguard_forbidden(*ip).is_none())
                .ok_or_else(|| {
                    format!(
                        "no free address left for WireGuard user {:?}; give it wireguard_address",
                        user.name
                    )
                })?;
            taken.push(address);
            peers.push(WireguardPeer {
                user: user.name.clone(),
                public_key: wg.public_key,
                address,
                preshared_key: PeerPresharedKey::of(wg),
            });
        }
        Ok(peers)
    }

    /// The peer for `user`, if it has a WireGuard key.
    pub fn wireguard_peer(&self, user: &str) -> Option<WireguardPeer> {
        self.wireguard_peers()
            .ok()?
            .into_iter()
            .find(|p| p.user.eq_ignore_ascii_case(user))
    }
}

/// Cross-user checks of one hub: distinct keys and addresses, addresses
/// allowed, room for every user.
pub(crate) fn check_hub_wireguard(
    report: &mut Report,
    hub: &Hub,
    pos: usize,
    context: &str,
) -> bool {
    let mut ok = true;
    let users: Vec<(&crate::User, &UserWireguard)> = hub
        .users
        .iter()
        .filter_map(|u| Some((u, u.wireguard.as_ref()?)))
        .collect();
    if hub.wireguard.is_none() && !users.is_empty() {
        report.warn(
            pos,
            format!(
                "{context}user {:?} has a WireGuard key but the hub has no [hub.wireguard]; \
                 add one (listen = \"0.0.0.0:{DEFAULT_WIREGUARD_PORT}\") for it to connect",
                users[0].0.name
            ),
        );
    }
    for (i, (user, wg)) in users.iter().enumerate() {
        if let Some((other, _)) = users[..i]
            .iter()
            .find(|(_, w)| w.public_key == wg.public_key)
        {
            report.error(
                pos,
                format!(
                    "{context}users {:?} and {:?} have the same wireguard_public_key; \
                     each device needs its own key pair",
                    other.name, user.name
                ),
            );
            ok = false;
        }
        if let Some(address) = wg.address {
            if let Some(why) = hub.wireguard_forbidden(address) {
                report.error(
                    pos,
                    format!(
                        "{context}user {:?}: wireguard_address {address} {why}",
                        user.name
                    ),
                );
                ok = false;
            }
            if let Some((other, _)) = users[..i].iter().find(|(_, w)| w.address == Some(address)) {
                report.error(
                    pos,
                    format!(
                        "{context}users {:?} and {:?} have the same wireguard_address {address}",
                        other.name, user.name
                    ),
                );
                ok = false;
            }
        }
    }
    if ok && let Err(why) = hub.wireguard_peers() {
        report.error(pos, format!("{context}{why}"));
        ok = false;
    }
    ok
}

/// Two hubs cannot share one UDP port.
pub(crate) fn check_listen_unique(report: &mut Report, hubs: &[(&Hub, usize)]) {
    for (i, (b, pos)) in hubs.iter().enumerate() {
        let Some(bw) = &b.wireguard else { continue };
        for (a, _) in &hubs[..i] {
            let Some(aw) = &a.wireguard else { continue };
            let clash = aw.listen.port() == bw.listen.port()
                && (aw.listen.ip() == bw.listen.ip()
                    || aw.listen.ip().is_unspecified()
                    || bw.listen.ip().is_unspecified());
            if clash {
                report.error(
                    *pos,
                    format!(
                        "hub {:?}: wireguard.listen {} collides with hub {:?}'s {}; \
                         give each hub its own UDP port",
                        b.name, bw.listen, a.name, aw.listen
                    ),
                );
            }
        }
    }
}
