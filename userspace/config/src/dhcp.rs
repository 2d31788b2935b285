//! A hub's virtual DHCP server settings (`[hub.dhcp]`).
//!
//! Invariant of a validated [`DhcpConfig`]: the pool lies inside the hub's
//! subnet, excludes the network, broadcast and tap addresses, and holds no
//! address that is also announced as router, DNS server or route gateway;
//! every classless route (RFC 3442) names a network without host bits and a
//! gateway on the hub's subnet, so a client can actually reach it.

use std::net::Ipv4Addr;

use crate::diagnostic::Report;
use crate::reader::Section;
use ethergate_net::{ClasslessRoute, Ipv4Cidr};

/// SoftEther's `MAX_DHCP_CLASSLESS_ROUTE_ENTRIES`; its client and server
/// agree on this cap, so more routes would be cut off on the wire.
pub const MAX_CLASSLESS_ROUTES: usize = 64;

/// SoftEther's and most DHCP servers' default lease.
pub const DEFAULT_LEASE_SECS: u32 = 7200;
/// Shorter leases make clients renew every few seconds for no gain.
pub const MIN_LEASE_SECS: u32 = 60;
/// 30 days. Leases persist in state_dir; longer ones pin pool addresses to
/// laptops that never come back.
pub const MAX_LEASE_SECS: u32 = 30 * 24 * 3600;

/// Option 6 carries 4 bytes per server in one option of at most 255 bytes
/// (RFC 2132 §3.8); we do not split options (RFC 3396) for DNS.
pub const MAX_DNS_SERVERS: usize = 255 / 4;

/// An inclusive range of addresses handed out by the DHCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl AddressRange {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.first <= ip && ip <= self.last
    }

    /// Number of addresses in the range.
    pub fn len(&self) -> u64 {
        u64::from(self.last.to_bits()).saturating_sub(u64::from(self.first.to_bits())) + 1
    }

    /// Never true: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The virtual DHCP server of one hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    pub range: AddressRange,
    pub lease_secs: u32,
    /// Option 6, in order of preference. May be empty.
    pub dns: Vec<Ipv4Addr>,
    /// Option 3. `None` pushes no default gateway, so clients keep their own.
    pub router: Option<Ipv4Addr>,
    /// Options 121 and 249 (same bytes in both). May be empty.
    pub routes: Vec<ClasslessRoute>,
}

pub(crate) const DHCP_KEYS: &[&str] = &["range", "lease_secs", "dns", "router", "routes"];

fn parse_range(text: &str) -> Option<AddressRange> {
    let (first, last) = text.split_once('-')?;
    Some(AddressRange {
        first: first.trim().parse().ok()?,
        last: last.trim().parse().ok()?,
    })
}

/// Reads `[hub.dhcp]`. `subnet` is the hub's bridge_address when it was
/// valid; without it the checks that need the subnet are skipped (its own
/// error has been reported already).
pub(crate) fn read_dhcp(
    report: &mut Report,
    mut s: Section<'_, '_>,
    subnet: Option<Ipv4Cidr>,
) -> Option<DhcpConfig> {
    let range_at = s.required_string(report, "range", "\"192.168.30.10-192.168.30.200\"");
    let lease = s.integer(report, "lease_secs");
    let dns_at = s.string_list(report, "dns");
    let router_at = s.string(report, "router");
    let routes_at = s.string_list(report, "routes");
    let mut ok = true;

    let range = range_at.and_then(|r| {
        let Some(range) = parse_range(r.value) else {
            report.error(
                r.pos,
                format!(
                    "{} {:?} is not a range like \"192.168.30.10-192.168.30.200\"",
                    s.name("range"),
                    r.value
                ),
            );
            return None;
        };
        let problem = if range.first > range.last {
            Some("starts after it ends; write the lower address first".to_owned())
        } else if let Some(subnet) = subnet {
            if !subnet.contains(range.first) || !subnet.contains(range.last) {
                Some(format!("is outside bridge_address {subnet}"))
            } else if !subnet.is_host_address(range.first) || !subnet.is_host_address(range.last) {
                Some(format!(
                    "includes the network or broadcast address of {}",
                    subnet.trunc()
                ))
            } else if range.contains(subnet.address()) {
                Some(format!(
                    "includes bridge_address {}, the tap's own address; \
                     start the range above it or end it below it",
                    subnet.address()
                ))
            } else {
                None
            }
        } else {
            None
        };
        match problem {
            Some(why) => {
                report.error(
                    r.pos,
                    format!("{} {}-{} {why}", s.name("range"), range.first, range.last),
                );
                None
            }
            None => Some(range),
        }
    });
    ok &= range.is_some();

    let lease_secs = match lease {
        None => DEFAULT_LEASE_SECS,
        Some(l) => match u32::try_from(l.value) {
            Ok(v) if (MIN_LEASE_SECS..=MAX_LEASE_SECS).contains(&v) => v,
            _ => {
                report.error(
                    l.pos,
                    format!(
                        "{} = {} is out of range; use {MIN_LEASE_SECS} to {MAX_LEASE_SECS} \
                         seconds (default {DEFAULT_LEASE_SECS})",
                        s.name("lease_secs"),
                        l.value
                    ),
                );
                ok = false;
                DEFAULT_LEASE_SECS
            }
        },
    };

    // Addresses announced to clients must not also be leased to one.
    let announced = |report: &mut Report, what: &str, ip: Ipv4Addr, pos: usize| -> bool {
        if let Some(range) = range
            && range.contains(ip)
        {
            report.error(
                pos,
                format!(
                    "{what} {ip} is inside dhcp.range {}-{}, so it could be leased to a client; \
                     move it out of the range",
                    range.first, range.last
                ),
            );
            return false;
        }
        true
    };

    let mut dns = Vec::new();
    if let Some(list) = dns_at {
        if list.value.len() > MAX_DNS_SERVERS {
            report.error(
                list.pos,
                format!(
                    "{} lists {} servers; at most {MAX_DNS_SERVERS} fit in DHCP option 6",
                    s.name("dns"),
                    list.value.len()
                ),
            );
            ok = false;
        }
        for item in &list.value {
            match item.value.parse::<Ipv4Addr>() {
                Ok(ip) => {
                    ok &= announced(report, &s.name("dns"), ip, item.pos);
                    dns.push(ip);
                }
                Err(_) => {
                    report.error(
                        item.pos,
                        format!(
                            "{} entry {:?} is not an IPv4 address",
                            s.name("dns"),
                            item.value
                        ),
                    );
                    ok = false;
                }
            }
        }
    }

    // A gateway is only usable if clients can ARP for it on the hub.
    let on_link = |report: &mut Report, what: &str, ip: Ipv4Addr, pos: usize| -> bool {
        match subnet {
            Some(subnet) if !subnet.is_host_address(ip) => {
                report.error(
                    pos,
                    format!(
                        "{what} {ip} is not a host on the hub's subnet {}, so clients cannot \
                         reach it; use an address inside bridge_address {subnet}",
                        subnet.trunc()
                    ),
                );
                false
            }
            _ => true,
        }
    };

    let mut router = None;
    if let Some(r) = router_at {
        match r.value.parse::<Ipv4Addr>() {
            Ok(ip) => {
                let reachable = on_link(report, &s.name("router"), ip, r.pos);
                ok &= reachable && announced(report, &s.name("router"), ip, r.pos);
                router = Some(ip);
            }
            Err(_) => {
                report.error(
                    r.pos,
                    format!(
                        "{} {:?} is not an IPv4 address; omit router to push no default gateway",
                        s.name("router"),
                        r.value
                    ),
                );
                ok = false;
            }
        }
    }

    let mut routes: Vec<ClasslessRoute> = Vec::new();
    if let Some(list) = &routes_at {
        if list.value.len() > MAX_CLASSLESS_ROUTES {
            report.error(
                list.pos,
                format!(
                    "{} lists {} routes; SoftEther clients accept at most {MAX_CLASSLESS_ROUTES}",
                    s.name("routes"),
                    list.value.len()
                ),
            );
            ok = false;
        }
        for item in &list.value {
            let what = format!("{} entry {:?}", s.name("routes"), item.value);
            match item.value.parse::<ClasslessRoute>() {
                Ok(route) => {
                    let reachable =
                        on_link(report, &format!("{what}: gateway"), route.gateway, item.pos);
                    ok &= reachable
                        && announced(report, &format!("{what}: gateway"), route.gateway, item.pos);
                    if routes.iter().any(|r| r.destination == route.destination) {
                        report.error(
                            item.pos,
                            format!(
                                "{what} repeats destination {}; keep one route per destination",
                                route.destination
                            ),
                        );
                        ok = false;
                    }
                    routes.push(route);
                }
                Err(why) => {
                    report.error(item.pos, format!("{what} {why}"));
                    ok = false;
                }
            }
        }
    }

    // RFC 3442 §1: a client that receives option 121 MUST ignore option 3.
    if let (Some(router_ip), Some(list)) = (router, &routes_at)
        && !routes.is_empty()
        && !routes.iter().any(|r| r.destination.prefix_len() == 0)
    {
        report.warn(
            list.pos,
            format!(
                "{} is set, so RFC 3442 clients ignore router {router_ip}; add \
                 \"0.0.0.0/0 via {router_ip}\" to routes if clients need a default gateway",
                s.name("routes")
            ),
        );
    }

    s.finish(report);
    let range = range?;
    ok.then_some(DhcpConfig {
        range,
        lease_secs,
        dns,
        router,
        routes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_arithmetic() {
        let r = parse_range("192.168.30.10 - 192.168.30.200").expect("valid range");
        assert_eq!(r.len(), 191);
        assert!(r.contains(Ipv4Addr::new(192, 168, 30, 10)));
        assert!(!r.contains(Ipv4Addr::new(192, 168, 30, 201)));
        assert!(parse_range("192.168.30.10").is_none());
    }
}
