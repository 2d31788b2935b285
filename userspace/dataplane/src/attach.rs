//! Attaching XDP programs with a fallback chain: native (driver) mode where
//! the NIC driver supports it, generic (skb) mode otherwise, and (for the
//! NAT programs, see `Dataplane::attach_uplink`) tc ingress when neither
//! XDP mode attaches. The mode that took is reported, because it decides
//! performance and operators need to see it in `ethergate status`.

use aya::programs::{Xdp, XdpMode, tc::SchedClassifierLinkId, xdp::XdpLinkId};

use crate::DataplaneError;

/// How an XDP program ended up attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpAttachMode {
    /// In the driver, before an skb exists: the fast path.
    Native,
    /// In the generic receive path, after skb allocation: works everywhere,
    /// costs roughly what the kernel stack's first layer costs.
    Generic,
    /// Neither XDP mode attached (another XDP program owns the interface,
    /// or the device refuses XDP): the tc ingress program `nat_ingress`
    /// does the same translation on the skb. The uplink's per-class
    /// `COUNTERS` are not kept in this mode; NAT events and drops are.
    Tc,
}

impl XdpAttachMode {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Native => "xdp-native",
            Self::Generic => "xdp-generic",
            Self::Tc => "tc",
        }
    }
}

impl std::fmt::Display for XdpAttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub(crate) struct UplinkAttachment {
    pub(crate) interface: String,
    pub(crate) mode: XdpAttachMode,
    // Owned so the attachment lives exactly as long as the Dataplane.
    #[allow(dead_code)]
    pub(crate) link: AttachmentLink,
}

// The program owns its links (dropping the Ebpf detaches them); the id is
// what a later detach or program swap on this interface would need.
#[allow(dead_code)]
pub(crate) enum AttachmentLink {
    Xdp(XdpLinkId),
    Tc(SchedClassifierLinkId),
}

pub(crate) fn attach_xdp_with_fallback(
    program: &mut Xdp,
    interface: &str,
) -> Result<UplinkAttachment, DataplaneError> {
    let native = match program.attach(interface, XdpMode::Driver) {
        Ok(link) => {
            return Ok(UplinkAttachment {
                interface: interface.to_owned(),
                mode: XdpAttachMode::Native,
                link: AttachmentLink::Xdp(link),
            });
        }
        Err(err) => err,
    };
    match program.attach(interface, XdpMode::Skb) {
        Ok(link) => Ok(UplinkAttachment {
            interface: interface.to_owned(),
            mode: XdpAttachMode::Generic,
            link: AttachmentLink::Xdp(link),
        }),
        Err(generic) => Err(DataplaneError::Attach {
            interface: interface.to_owned(),
            native: Box::new(native),
            generic: Box::new(generic),
        }),
    }
}
