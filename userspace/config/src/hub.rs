//! Virtual hubs (`[[hub]]`): name, local bridge, DHCP, per-session limits
//! (`[hub.limits]`) and users.
//!
//! Invariant of the validated list: hub names are unique ASCII-case-
//! insensitively (SoftEther looks hubs up with `StrCmpi`), each bridge tap
//! belongs to one hub, and hub subnets do not overlap, so the kernel has one
//! route per subnet and each address belongs to exactly one hub. Every
//! [`SessionLimits`] value lies within its documented range.

use std::net::Ipv4Addr;

use crate::dhcp::{DHCP_KEYS, DhcpConfig, read_dhcp};
use crate::diagnostic::Report;
use crate::ifname::InterfaceName;
use crate::limits::{LIMIT_KEYS, SessionLimits, read_limits};
use crate::reader::Section;
use crate::user::{User, read_users};
use crate::wireguard::{HubWireguard, WIREGUARD_KEYS, check_hub_wireguard, read_hub_wireguard};
use ethergate_net::Ipv4Cidr;

/// SoftEther's `MAX_HUBNAME_LEN`.
pub const MAX_HUB_NAME_LEN: usize = 255;

/// One virtual hub and its local bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hub {
    pub name: String,
    /// The tap device the hub is bridged to; created if missing.
    pub bridge: InterfaceName,
    /// The tap's own address, with the subnet's prefix length
    /// (`192.168.30.1/24`). Always a host address with prefix ≤ 30.
    pub bridge_address: Ipv4Cidr,
    /// `None` when `[hub.dhcp]` is absent: no virtual DHCP server.
    pub dhcp: Option<DhcpConfig>,
    /// `[hub.limits]` over the built-in defaults: what a user without
    /// overrides gets. Each user's own limits are in [`User::limits`].
    pub limits: SessionLimits,
    pub users: Vec<User>,
    /// `None` when `[hub.wireguard]` is absent: no WireGuard endpoint.
    pub wireguard: Option<HubWireguard>,
}

impl Hub {
    /// The hub's subnet (`192.168.30.0/24`).
    pub fn subnet(&self) -> Ipv4Cidr {
        self.bridge_address.trunc()
    }

    /// The tap's address (`192.168.30.1`).
    pub fn bridge_ip(&self) -> Ipv4Addr {
        self.bridge_address.address()
    }

    /// Looks a user up the way SoftEther does: ASCII-case-insensitively.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.name.eq_ignore_ascii_case(name))
    }
}

/// Checks a hub name: what SoftEther's `IsSafeStr` accepts, limited to
/// printable ASCII so that case-insensitive comparison is well defined.
pub fn check_hub_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > MAX_HUB_NAME_LEN {
        return Err(format!("is longer than {MAX_HUB_NAME_LEN} bytes"));
    }
    if name.trim() != name {
        return Err("has leading or trailing spaces".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !c.is_ascii_graphic() && *c != ' ' || "\\/:*?\"<>|".contains(*c))
    {
        return Err(format!(
            "contains {c:?}; hub names use printable ASCII without \\ / : * ? \" < > |"
        ));
    }
    Ok(())
}

pub(crate) const HUB_KEYS: &[&str] = &[
    "name",
    "bridge",
    "bridge_address",
    "dhcp",
    "limits",
    "user",
    "wireguard",
];

/// A hub as read, with the positions that cross-hub checks point at.
pub(crate) struct ReadHub {
    pub hub: Option<Hub>,
    pub name_pos: usize,
    pub bridge_pos: usize,
    pub address_pos: usize,
}

pub(crate) fn read_hub(report: &mut Report, mut s: Section<'_, '_>, index: usize) -> ReadHub {
    let name = s.required_string(report, "name", "\"mikalab\"");
    let valid_name = name.filter(|n| match check_hub_name(n.value) {
        Ok(()) => true,
        Err(why) => {
            report.error(n.pos, format!("hub[{index}]: name {:?} {why}", n.value));
            false
        }
    });
    // From here on messages name the hub, as its author knows it.
    let context = match valid_name {
        Some(n) => format!("hub {:?}: ", n.value),
        None => format!("hub[{index}]: "),
    };
    s.set_context(context.clone());

    let bridge_at = s.required_string(report, "bridge", "\"tap_00\"");
    let bridge = bridge_at.and_then(|b| match InterfaceName::new(b.value) {
        Ok(n) => Some(n),
        Err(why) => {
            report.error(b.pos, format!("{context}bridge {:?} {why}", b.value));
            None
        }
    });

    let address_at = s.required_string(report, "bridge_address", "\"192.168.30.1/24\"");
    let bridge_address = address_at.and_then(|a| {
        let problem = match a.value.parse::<Ipv4Cidr>() {
            Err(why) => Err(why.to_string()),
            Ok(c) if c.prefix_len() > 30 => Err(format!(
                "/{} leaves no addresses for VPN clients; use a prefix of /30 or shorter",
                c.prefix_len()
            )),
            Ok(c) if !c.is_host_address(c.address()) => Err(format!(
                "is the subnet's network or broadcast address; give the tap's own address, \
                 e.g. {}/{}",
                Ipv4Addr::from_bits(c.network().to_bits() + 1),
                c.prefix_len()
            )),
            Ok(c) => Ok(c),
        };
        problem
            .map_err(|why| {
                report.error(
                    a.pos,
                    format!("{context}bridge_address {:?} {why}", a.value),
                );
            })
            .ok()
    });

    let dhcp_section = s.table(report, "dhcp", DHCP_KEYS);
    let dhcp_present = dhcp_section.is_some();
    let dhcp = dhcp_section.and_then(|d| read_dhcp(report, d, bridge_address));

    let limits = match s.table(report, "limits", LIMIT_KEYS) {
        Some(mut l) => {
            let limits = read_limits(report, &mut l, SessionLimits::default());
            l.finish(report);
            limits
        }
        None => SessionLimits::default(),
    };

    let wireguard_section = s.table(report, "wireguard", WIREGUARD_KEYS);
    let wireguard_present = wireguard_section.is_some();
    let wireguard = wireguard_section.and_then(|w| read_hub_wireguard(report, w));

    let user_tables = s.tables(report, "user");
    let user_count = user_tables.len();
    let users = read_users(report, &context, user_tables, limits);
    let hub_pos = s.pos();
    s.finish(report);

    if user_count == 0 {
        report.warn(
            hub_pos,
            format!("{context}has no [[hub.user]]; nobody can log in to it"),
        );
    }

    let broken_table = dhcp_present && dhcp.is_none() || wireguard_present && wireguard.is_none();
    let complete = !broken_table && users.len() == user_count;
    let hub = match (valid_name, bridge, bridge_address) {
        (Some(name), Some(bridge), Some(bridge_address)) if complete => Some(Hub {
            name: name.value.to_owned(),
            bridge,
            bridge_address,
            dhcp,
            limits,
            users,
            wireguard,
        }),
        _ => None,
    };
    let hub = hub.filter(|h| check_hub_wireguard(report, h, hub_pos, &context));
    ReadHub {
        hub,
        name_pos: name.map_or(hub_pos, |n| n.pos),
        bridge_pos: bridge_at.map_or(hub_pos, |b| b.pos),
        address_pos: address_at.map_or(hub_pos, |a| a.pos),
    }
}

/// Checks that hold across hubs: unique names, taps, subnets and
/// WireGuard ports.
pub(crate) fn check_hubs(report: &mut Report, hubs: &[ReadHub]) {
    let valid: Vec<(&Hub, usize)> = hubs
        .iter()
        .filter_map(|h| Some((h.hub.as_ref()?, h.name_pos)))
        .collect();
    crate::wireguard::check_listen_unique(report, &valid);
    for (i, later) in hubs.iter().enumerate() {
        let Some(b) = &later.hub else { continue };
        for earlier in hubs[..i].iter() {
            let Some(a) = &earlier.hub else { continue };
            if a.name.eq_ignore_ascii_case(&b.name) {
                report.error(
                    later.name_pos,
                    format!(
                        "hub {:?} is defined twice (hub names are case-insensitive; the first \
                         is {:?}); rename or merge them",
                        b.name, a.name
                    ),
                );
            }
            if a.bridge == b.bridge {
                report.error(
                    later.bridge_pos,
                    format!(
                        "hub {:?}: bridge {} is already the bridge of hub {:?}; \
                         each hub needs its own tap",
                        b.name, b.bridge, a.name
                    ),
                );
            }
            if a.subnet().overlaps(&b.subnet()) {
                report.error(
                    later.address_pos,
                    format!(
                        "hub {:?}: bridge_address {} overlaps hub {:?}'s {}; give each hub its \
                         own subnet",
                        b.name, b.bridge_address, a.name, a.bridge_address
                    ),
                );
            }
        }
    }
}
