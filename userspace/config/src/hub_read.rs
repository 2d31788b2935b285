//! Reading `[[hub]]` tables into [`Hub`]s, and the checks that need a whole
//! hub or all of them (WireGuard users against the hub; unique names, taps,
//! subnets and listen ports across hubs).

use std::net::Ipv4Addr;

use crate::dhcp::{DHCP_KEYS, read_dhcp};
use crate::diagnostic::Report;
use crate::hub::{Hub, check_hub_name};
use crate::hub_wireguard::{check_hub_wireguard, check_listen_unique};
use crate::ifname::InterfaceName;
use crate::limits::{LIMIT_KEYS, SessionLimits, read_limits};
use crate::reader::Section;
use crate::user::read_users;
use crate::wireguard::{WIREGUARD_KEYS, read_hub_wireguard};
use ethergate_net::Ipv4Cidr;

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
    check_listen_unique(report, &valid);
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
