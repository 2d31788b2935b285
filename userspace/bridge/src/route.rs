//! IPv4 routes through a link (`RTM_NEWROUTE`), for `ethergate client`: the
//! RFC 3442 classless static routes and the default gateway a DHCP lease
//! carries, installed on the client's tap.
//!
//! Invariant: [`add_route`] never replaces a route that is already there
//! (`NLM_F_EXCL`): a VPN must not silently take over the host's default
//! route, or any other route someone else installed. The caller learns
//! about the clash as [`RouteError::Exists`] and decides. Routes are tagged
//! `proto dhcp` so `ip route` shows where they came from, and go away with
//! the link they point through.

use std::net::Ipv4Addr;

use crate::netlink::{NLM_F_CREATE, Netlink, NetlinkError, Request};
use ethergate_net::Ipv4Cidr;

/// `NLM_F_EXCL` (`uapi/linux/netlink.h`): fail with `EEXIST` instead of
/// replacing.
const NLM_F_EXCL: u16 = libc::NLM_F_EXCL as u16;
/// `RTPROT_DHCP` (`uapi/linux/rtnetlink.h`): "route installed by DHCP
/// client", what `ip route` prints as `proto dhcp`.
const RTPROT_DHCP: u8 = 16;
/// `RT_SCOPE_UNIVERSE` for routes via a gateway; `RT_SCOPE_LINK` for
/// on-link routes (RFC 3442 router 0.0.0.0).
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;

/// Installing a route failed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// A route to the same destination with the same metric exists already
    /// (possibly one we installed earlier); it was left as it is.
    #[error("route to {dest} exists already; left as it is")]
    Exists { dest: Ipv4Cidr },

    #[error("adding route {dest} via {gateway} (ifindex {ifindex}): {source}")]
    Add {
        dest: Ipv4Cidr,
        gateway: Ipv4Addr,
        ifindex: u32,
        source: NetlinkError,
    },
}

/// `struct rtmsg` (`uapi/linux/rtnetlink.h`) for an IPv4 unicast route in
/// the main table.
fn rtmsg(dst_len: u8, scope: u8) -> [u8; 12] {
    let mut m = [0u8; 12];
    m[0] = libc::AF_INET as u8;
    m[1] = dst_len;
    // m[2] src_len, m[3] tos: 0
    m[4] = libc::RT_TABLE_MAIN;
    m[5] = RTPROT_DHCP;
    m[6] = scope;
    m[7] = libc::RTN_UNICAST;
    // m[8..12] rtm_flags: 0
    m
}

/// The network address of `dest` (host bits cleared): the kernel refuses
/// `10.0.0.1/16` as a route destination ("Invalid prefix for given prefix
/// length"), and RFC 3442 only carries the significant octets anyway.
fn network(dest: Ipv4Cidr) -> Ipv4Addr {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(dest.prefix_len()))
        .unwrap_or(0);
    Ipv4Addr::from(u32::from(dest.address()) & mask)
}

/// Adds the route `dest via gateway dev <ifindex>` to the main table of the
/// calling thread's network namespace. `gateway` 0.0.0.0 means on-link (RFC
/// 3442 §2: a router address of 0 marks a directly reachable subnet). The
/// gateway must be reachable through the link already (its address
/// configured first), or the kernel refuses with `ENETUNREACH`.
pub fn add_route(dest: Ipv4Cidr, gateway: Ipv4Addr, ifindex: u32) -> Result<(), RouteError> {
    let dest = Ipv4Cidr::new(network(dest), dest.prefix_len()).unwrap_or(dest);
    let fail = |source| RouteError::Add {
        dest,
        gateway,
        ifindex,
        source,
    };
    let mut nl = Netlink::open().map_err(fail)?;
    let on_link = gateway.is_unspecified();
    let scope = if on_link {
        RT_SCOPE_LINK
    } else {
        RT_SCOPE_UNIVERSE
    };
    let mut request = Request::new(libc::RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL)
        .header(&rtmsg(dest.prefix_len(), scope))
        .attr(libc::RTA_OIF, &ifindex.to_ne_bytes());
    if dest.prefix_len() > 0 {
        request = request.attr(libc::RTA_DST, &dest.address().octets());
    }
    if !on_link {
        request = request.attr(libc::RTA_GATEWAY, &gateway.octets());
    }
    match nl.request(request, |_, _| {}) {
        Err(e) if e.errno == nix::errno::Errno::EEXIST => Err(RouteError::Exists { dest }),
        result => result.map_err(fail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_is_reduced_to_its_network() {
        let c = |s: &str| s.parse::<Ipv4Cidr>().expect("valid");
        assert_eq!(network(c("10.0.1.26/16")), Ipv4Addr::new(10, 0, 0, 0));
        assert_eq!(network(c("172.16.5.4/12")), Ipv4Addr::new(172, 16, 0, 0));
        assert_eq!(network(c("1.2.3.4/0")), Ipv4Addr::UNSPECIFIED);
        assert_eq!(network(c("1.2.3.4/32")), Ipv4Addr::new(1, 2, 3, 4));
    }

    #[test]
    fn rtmsg_layout() {
        let m = rtmsg(16, RT_SCOPE_UNIVERSE);
        assert_eq!(m[0], libc::AF_INET as u8);
        assert_eq!(m[1], 16);
        assert_eq!(m[4], libc::RT_TABLE_MAIN);
        assert_eq!(m[5], RTPROT_DHCP);
        assert_eq!(m[7], libc::RTN_UNICAST);
    }
}
