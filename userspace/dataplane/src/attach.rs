//! How the NAT programs attach to the uplink and inside interfaces.
//!
//! Every NAT interface gets the tc ingress program `nat_ingress`: it is the
//! path that always works (skbs, so partial checksums and GSO are handled
//! by the kernel's helpers, and `bpf_redirect_neigh` resolves next hops).
//! Where native XDP is chosen, the XDP program sits in front of it as the
//! fast path and hands over (`XDP_PASS`, counted as `handed_to_tc`) what
//! it cannot finish: a next hop not resolved yet, or an egress interface
//! that runs the tc path. An interface in tc mode is written to the
//! `TC_INTERFACES` map, and XDP never redirects into it: XDP_REDIRECT into
//! a veth whose peer runs no XDP program is lost without a counter.
//!
//! `[nat] mode = "auto"` picks per interface: native XDP on devices with a
//! driver and a bus of their own (ENA, virtio-net, mlx5…), tc on virtual
//! devices (veth, tun, bridges…) and wherever the driver refuses native
//! XDP. Generic XDP is never chosen: it costs what tc costs and has the
//! veth traps besides. The mode and the reason are kept for status.

use aya::programs::{Xdp, XdpMode, tc::SchedClassifierLinkId, xdp::XdpLinkId};
use ethergate_config::NatMode;

#[cfg(feature = "test-hooks")]
use crate::DataplaneError;

/// How the NAT programs run on one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// XDP in the driver, before an skb exists (tc ingress behind it).
    XdpNative,
    /// XDP in the generic receive path. Only the test helper
    /// `redirect_peer` ends up here; NAT interfaces never do.
    XdpGeneric,
    /// tc ingress only.
    Tc,
}

impl AttachMode {
    pub const fn name(self) -> &'static str {
        match self {
            Self::XdpNative => "xdp-native",
            Self::XdpGeneric => "xdp-generic",
            Self::Tc => "tc",
        }
    }
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One interface's NAT attachment, as status shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatAttachment {
    pub interface: String,
    pub mode: AttachMode,
    /// Why this mode: the config, or what auto mode saw.
    pub reason: String,
}

pub(crate) struct Attached {
    pub(crate) status: NatAttachment,
    // Owned so the attachment lives exactly as long as the Dataplane (the
    // programs own their links; dropping the Ebpf detaches them).
    #[allow(dead_code)]
    pub(crate) links: Vec<AttachmentLink>,
}

#[allow(dead_code)]
pub(crate) enum AttachmentLink {
    /// Owned by the program (unpinned, or adopted from a pin).
    Xdp(XdpLinkId),
    Tc(SchedClassifierLinkId),
    /// Attached by us and pinned: stays attached after we exit.
    Pinned(aya::programs::links::PinnedLink),
}

/// What ethtool says the device is.
#[derive(Clone, Debug, Default)]
pub(crate) struct Device {
    pub(crate) driver: String,
    pub(crate) bus: String,
}

impl Device {
    /// A device of its own (a NIC on a bus) rather than a software one.
    fn is_hardware(&self) -> bool {
        const SOFTWARE: &[&str] = &[
            "veth",
            "tun",
            "bridge",
            "dummy",
            "macvlan",
            "ipvlan",
            "vxlan",
            "geneve",
            "802.1Q VLAN",
        ];
        !self.bus.is_empty() && self.bus != "tap" && !SOFTWARE.contains(&self.driver.as_str())
    }
}

/// The XDP decision for one interface: `Ok(true)` = try native XDP.
pub(crate) fn wants_xdp(mode: NatMode, device: &Device) -> (bool, String) {
    match mode {
        NatMode::Tc => (false, "[nat] mode = \"tc\"".to_owned()),
        NatMode::Xdp => (true, "[nat] mode = \"xdp\"".to_owned()),
        NatMode::Auto if device.is_hardware() => (
            true,
            format!("auto: driver {} runs native XDP", device.driver),
        ),
        NatMode::Auto => (
            false,
            format!(
                "auto: {} is a virtual device; XDP cannot redirect into it reliably and \
                 same-host senders' partial checksums need the skb path",
                if device.driver.is_empty() {
                    "this"
                } else {
                    device.driver.as_str()
                }
            ),
        ),
    }
}

pub(crate) fn attach_native(
    program: &mut Xdp,
    interface: &str,
) -> Result<XdpLinkId, aya::programs::ProgramError> {
    program.attach(interface, XdpMode::Driver)
}

#[cfg(feature = "test-hooks")]
/// Native XDP, else generic: only for the `redirect_peer` test helper.
pub(crate) fn attach_xdp_with_fallback(
    program: &mut Xdp,
    interface: &str,
) -> Result<(AttachMode, XdpLinkId), DataplaneError> {
    let native = match program.attach(interface, XdpMode::Driver) {
        Ok(link) => return Ok((AttachMode::XdpNative, link)),
        Err(err) => err,
    };
    match program.attach(interface, XdpMode::Skb) {
        Ok(link) => Ok((AttachMode::XdpGeneric, link)),
        Err(generic) => Err(DataplaneError::Attach {
            interface: interface.to_owned(),
            native: Box::new(native),
            generic: Box::new(generic),
        }),
    }
}

/// Driver and bus of `interface` (ETHTOOL_GDRVINFO), in the calling
/// thread's network namespace. Unknown on error: treated as virtual.
pub(crate) fn device(interface: &str) -> Device {
    ethtool_drvinfo(interface).unwrap_or_default()
}

fn ethtool_drvinfo(interface: &str) -> Option<Device> {
    const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        version: [u8; 32],
        fw_version: [u8; 32],
        bus_info: [u8; 32],
        erom_version: [u8; 32],
        reserved2: [u8; 12],
        n_priv_flags: u32,
        n_stats: u32,
        testinfo_len: u32,
        eedump_len: u32,
        regdump_len: u32,
    }
    let name = interface.as_bytes();
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        version: [0; 32],
        fw_version: [0; 32],
        bus_info: [0; 32],
        erom_version: [0; 32],
        reserved2: [0; 12],
        n_priv_flags: 0,
        n_stats: 0,
        testinfo_len: 0,
        eedump_len: 0,
        regdump_len: 0,
    };
    // SAFETY: an all-zero ifreq is valid (name and a union of plain data).
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(name) {
        *slot = *byte as libc::c_char;
    }
    request.ifr_ifru.ifru_data = (&raw mut info).cast();
    // SAFETY: plain socket(2); the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: SIOCETHTOOL with a valid ifreq whose data points at a live,
    // correctly sized ethtool_drvinfo the kernel fills.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCETHTOOL, &raw mut request) };
    // SAFETY: fd came from socket(2) above and is closed once.
    unsafe { libc::close(fd) };
    if rc < 0 {
        return None;
    }
    let text = |bytes: &[u8]| {
        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    };
    Some(Device {
        driver: text(&info.driver),
        bus: text(&info.bus_info),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(driver: &str, bus: &str) -> Device {
        Device {
            driver: driver.to_owned(),
            bus: bus.to_owned(),
        }
    }

    #[test]
    fn auto_runs_xdp_on_nics_and_tc_on_virtual_devices() {
        assert!(wants_xdp(NatMode::Auto, &dev("ena", "0000:00:05.0")).0);
        assert!(wants_xdp(NatMode::Auto, &dev("virtio_net", "0000:00:03.0")).0);
        assert!(!wants_xdp(NatMode::Auto, &dev("veth", "")).0);
        assert!(!wants_xdp(NatMode::Auto, &dev("tun", "tap")).0);
        assert!(!wants_xdp(NatMode::Auto, &Device::default()).0);
        assert!(wants_xdp(NatMode::Xdp, &dev("veth", "")).0);
        assert!(!wants_xdp(NatMode::Tc, &dev("ena", "0000:00:05.0")).0);
        let (_, why) = wants_xdp(NatMode::Auto, &dev("veth", ""));
        assert!(why.contains("veth is a virtual device"), "{why}");
    }
}
