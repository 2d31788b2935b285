//! Virtual hubs (`[[hub]]`): name, local bridge, DHCP, per-session limits
//! (`[hub.limits]`) and users.
//!
//! Invariant of the validated list: hub names are unique ASCII-case-
//! insensitively (SoftEther looks hubs up with `StrCmpi`), each bridge tap
//! belongs to one hub, and hub subnets do not overlap, so the kernel has one
//! route per subnet and each address belongs to exactly one hub. Every
//! [`SessionLimits`] value lies within its documented range.

use std::net::Ipv4Addr;

use crate::dhcp::DhcpConfig;
use crate::ifname::InterfaceName;
use crate::limits::SessionLimits;
use crate::user::User;
use crate::wireguard::HubWireguard;
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
