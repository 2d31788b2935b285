//! Interface configuration: MAC address, MTU, the tap's one IPv4 address,
//! and bringing the link up — declaratively and idempotently, without
//! starting `ip` or any other process.
//!
//! Why rtnetlink rather than the `SIOCSIF*` ioctls: the ioctls are simpler
//! but address only the primary IPv4 address of a label, cannot list or
//! remove other addresses, cannot carry a prefix in one step
//! (`SIOCSIFADDR` first installs a classful mask and its route, then
//! `SIOCSIFNETMASK` fixes it), have no IPv6, and fail with a bare errno.
//! rtnetlink does each step in one message, lets us make the address set
//! *exactly* the configured one, reports the kernel's reason for a refusal
//! (extended ack), and is what `ethergate client` needs anyway for routes
//! (RFC 3442 classless routes → `RTM_NEWROUTE`). The message builder is ~200
//! lines over `nix` sockets ([`crate::netlink`]); the `rtnetlink`/`neli`
//! crates would bring an async runtime or a large generic layer for four
//! message types.
//!
//! Invariant: after [`configure`] succeeds, the link has the configured MAC
//! and MTU, exactly the configured IPv4 address (when one is configured; no
//! other IPv4 addresses), and is up if asked — whatever state it was in
//! before, so calling it again changes nothing. Everything happens in the
//! calling thread's network namespace.

use std::fmt;
use std::net::Ipv4Addr;

use crate::error::LinkError;
use crate::netlink::{
    Attrs, NLM_F_CREATE, NLM_F_REPLACE, Netlink, NetlinkError, Request, ifaddrmsg, ifinfomsg,
};
use ethergate_net::{Ipv4Cidr, MacAddr};

/// Ethernet's MTU, and what a SoftEther hub assumes for bridged frames.
pub const DEFAULT_MTU: u32 = 1500;

/// `IFF_UP` as the `u32` that `ifinfomsg.ifi_flags` carries.
const IFF_UP: u32 = libc::IFF_UP as u32;
/// `RT_SCOPE_UNIVERSE`: a normal, globally usable address.
const RT_SCOPE_UNIVERSE: u8 = 0;

/// What the link should look like. `Default` is MTU 1500, up, and MAC and
/// addresses left as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// `None` keeps the random MAC the kernel gave the tap.
    pub mac: Option<MacAddr>,
    pub mtu: u32,
    /// `Some`: this becomes the link's only IPv4 address (others are
    /// removed — ethergate owns the tap). `None`: addresses are left alone.
    pub ipv4: Option<Ipv4Cidr>,
    /// Bring the link up (it is never taken down here).
    pub up: bool,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            mac: None,
            mtu: DEFAULT_MTU,
            ipv4: None,
            up: true,
        }
    }
}

/// The ifindex of `interface` in the calling thread's network namespace.
pub fn ifindex(interface: &str) -> Result<u32, LinkError> {
    nix::net::if_::if_nametoindex(interface).map_err(|errno| match errno {
        nix::errno::Errno::ENODEV => LinkError::NotFound {
            interface: interface.to_owned(),
        },
        errno => LinkError::Lookup {
            interface: interface.to_owned(),
            source: errno.into(),
        },
    })
}

/// Applies `config` to `interface` (looked up by name in the calling
/// thread's network namespace). See the module invariant.
pub fn configure(interface: &str, config: &LinkConfig) -> Result<(), LinkError> {
    configure_index(interface, ifindex(interface)?, config)
}

/// Like [`configure`], for a link whose ifindex is known; `interface` is
/// only used in error messages.
pub fn configure_index(interface: &str, index: u32, config: &LinkConfig) -> Result<(), LinkError> {
    let name = || interface.to_owned();
    let mut nl = Netlink::open().map_err(|source| LinkError::Netlink {
        interface: name(),
        source,
    })?;

    // MAC and MTU before the address and before up: the IPv6 link-local
    // address and the first ARP/ND packets are derived from the MAC at up
    // time, and nothing should ever leave with a MAC we then change.
    let mut link = Request::new(libc::RTM_NEWLINK, 0)
        .header(&ifinfomsg(index, 0, 0))
        .attr(libc::IFLA_MTU, &config.mtu.to_ne_bytes());
    if let Some(mac) = config.mac {
        link = link.attr(libc::IFLA_ADDRESS, &mac.0);
    }
    nl.request(link, |_, _| {})
        .map_err(|source| LinkError::SetLink {
            interface: name(),
            what: match config.mac {
                Some(mac) => format!("MTU {} and MAC {mac}", config.mtu),
                None => format!("MTU {}", config.mtu),
            },
            source,
        })?;

    if let Some(wanted) = config.ipv4 {
        set_only_address(&mut nl, interface, index, wanted)?;
    }

    if config.up {
        let up = Request::new(libc::RTM_NEWLINK, 0).header(&ifinfomsg(index, IFF_UP, IFF_UP));
        nl.request(up, |_, _| {}).map_err(|source| LinkError::Up {
            interface: name(),
            source,
        })?;
    }
    Ok(())
}

/// Makes `wanted` the only IPv4 address on the link.
fn set_only_address(
    nl: &mut Netlink,
    interface: &str,
    index: u32,
    wanted: Ipv4Cidr,
) -> Result<(), LinkError> {
    let name = || interface.to_owned();
    let present = ipv4_addresses(nl, index).map_err(|source| LinkError::ListAddresses {
        interface: name(),
        source,
    })?;
    // Remove the others first: deleting a primary address also deletes its
    // secondaries (unless promote_secondaries is set), so adding first could
    // see `wanted` vanish with an old primary of the same subnet.
    for old in present.into_iter().filter(|a| *a != wanted) {
        // IFA_ADDRESS makes the kernel match the prefix length too;
        // IFA_LOCAL alone deletes the first address with that local part,
        // which may be the very one we want (192.168.30.1/24 vs /16). On a
        // broadcast link IFA_ADDRESS equals IFA_LOCAL (it differs only on
        // point-to-point links, which a tap never is).
        let del = Request::new(libc::RTM_DELADDR, 0)
            .header(&ifaddrmsg(
                libc::AF_INET as u8,
                old.prefix_len(),
                RT_SCOPE_UNIVERSE,
                index,
            ))
            .attr(libc::IFA_LOCAL, &old.address().octets())
            .attr(libc::IFA_ADDRESS, &old.address().octets());
        match nl.request(del, |_, _| {}) {
            // Gone already (removed with its primary, or by someone else):
            // that is the state we want.
            Err(e) if e.errno == nix::errno::Errno::EADDRNOTAVAIL => {}
            result => result.map_err(|source| LinkError::RemoveAddress {
                interface: name(),
                address: old,
                source,
            })?,
        }
    }
    // CREATE|REPLACE: adds the address, or refreshes it in place if it is
    // there already — never a duplicate, never EEXIST.
    let mut add = Request::new(libc::RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE)
        .header(&ifaddrmsg(
            libc::AF_INET as u8,
            wanted.prefix_len(),
            RT_SCOPE_UNIVERSE,
            index,
        ))
        .attr(libc::IFA_LOCAL, &wanted.address().octets())
        .attr(libc::IFA_ADDRESS, &wanted.address().octets());
    // What `ip addr add … brd +` and ifconfig set; DHCP clients on the hub
    // send to it. /31 and /32 have no broadcast address (RFC 3021).
    if wanted.prefix_len() < 31 {
        add = add.attr(libc::IFA_BROADCAST, &wanted.broadcast().octets());
    }
    nl.request(add, |_, _| {})
        .map_err(|source| LinkError::AddAddress {
            interface: name(),
            address: wanted,
            source,
        })
}

/// The IPv4 addresses on link `index`.
fn ipv4_addresses(nl: &mut Netlink, index: u32) -> Result<Vec<Ipv4Cidr>, NetlinkError> {
    let mut found = Vec::new();
    let dump = Request::new(libc::RTM_GETADDR, 0).header(&ifaddrmsg(libc::AF_INET as u8, 0, 0, 0));
    nl.dump(dump, |kind, payload| {
        if kind != libc::RTM_NEWADDR || payload.len() < 8 {
            return;
        }
        let family = payload[0];
        let prefix = payload[1];
        let ifa_index = u32::from_ne_bytes([payload[4], payload[5], payload[6], payload[7]]);
        if family != libc::AF_INET as u8 || ifa_index != index {
            return;
        }
        // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer
        // on point-to-point links and equal to IFA_LOCAL otherwise.
        let local = Attrs::new(&payload[8..])
            .find(|(kind, value)| *kind == libc::IFA_LOCAL && value.len() == 4)
            .map(|(_, v)| Ipv4Addr::new(v[0], v[1], v[2], v[3]));
        if let Some(cidr) = local.and_then(|addr| Ipv4Cidr::new(addr, prefix)) {
            found.push(cidr);
        }
    })?;
    Ok(found)
}

/// What kind of device an existing link is, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkKind {
    /// A tun/tap device; `tap` false means a layer-3 tun.
    TunTap { tap: bool, multi_queue: bool },
    /// Another rtnetlink kind (`veth`, `bridge`, `dummy`, …).
    Other(String),
    /// No `IFLA_INFO_KIND`: a physical NIC or loopback.
    Physical,
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkKind::TunTap { tap: false, .. } => write!(f, "a tun (layer 3) device"),
            LinkKind::TunTap {
                tap: true,
                multi_queue: false,
            } => write!(f, "a single-queue tap"),
            LinkKind::TunTap {
                tap: true,
                multi_queue: true,
            } => write!(f, "a multi-queue tap"),
            LinkKind::Other(kind) => write!(f, "a {kind} device"),
            LinkKind::Physical => write!(f, "a device without a link kind (physical or loopback)"),
        }
    }
}

/// `IFLA_TUN_TYPE` and `IFLA_TUN_MULTI_QUEUE` from `enum ifla_tun` in
/// `uapi/linux/if_link.h` (not in `libc`).
const IFLA_TUN_TYPE: u16 = 3;
const IFLA_TUN_MULTI_QUEUE: u16 = 7;

/// The kind of the link named `interface`, or `None` if there is none.
pub(crate) fn link_kind(interface: &str) -> Result<Option<LinkKind>, NetlinkError> {
    let mut nl = Netlink::open()?;
    let mut name = interface.as_bytes().to_vec();
    name.push(0);
    let get = Request::new(libc::RTM_GETLINK, 0)
        .header(&ifinfomsg(0, 0, 0))
        .attr(libc::IFLA_IFNAME, &name);
    let mut kind = None;
    match nl.request(get, |msg, payload| {
        if msg == libc::RTM_NEWLINK && payload.len() >= 16 {
            kind = Some(parse_link_kind(&payload[16..]));
        }
    }) {
        Err(e) if e.errno == nix::errno::Errno::ENODEV => Ok(None),
        result => result.map(|()| kind),
    }
}

fn parse_link_kind(attrs: &[u8]) -> LinkKind {
    let Some((_, info)) = Attrs::new(attrs).find(|(kind, _)| *kind == libc::IFLA_LINKINFO) else {
        return LinkKind::Physical;
    };
    let mut kind = None;
    let mut tap = false;
    let mut multi_queue = false;
    for (attr, value) in Attrs::new(info) {
        if attr == libc::IFLA_INFO_KIND {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            kind = Some(String::from_utf8_lossy(text).into_owned());
        } else if attr == libc::IFLA_INFO_DATA {
            for (tun_attr, tun_value) in Attrs::new(value) {
                match (tun_attr, tun_value.first()) {
                    (IFLA_TUN_TYPE, Some(&t)) => tap = i32::from(t) == libc::IFF_TAP,
                    (IFLA_TUN_MULTI_QUEUE, Some(&m)) => multi_queue = m != 0,
                    _ => {}
                }
            }
        }
    }
    match kind.as_deref() {
        Some("tun") => LinkKind::TunTap { tap, multi_queue },
        Some(other) => LinkKind::Other(other.to_owned()),
        None => LinkKind::Physical,
    }
}
