//! Attaching XDP programs with a fallback chain: native (driver) mode where
//! the NIC driver supports it, generic (skb) mode otherwise. The mode that
//! took is reported, because it decides performance and operators need to
//! see it in `ethergate status`.

use aya::programs::{Xdp, XdpMode, xdp::XdpLinkId};

use crate::DataplaneError;

/// How an XDP program ended up attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpAttachMode {
    /// In the driver, before an skb exists: the fast path.
    Native,
    /// In the generic receive path, after skb allocation: works everywhere,
    /// costs roughly what the kernel stack's first layer costs.
    Generic,
}

impl XdpAttachMode {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Native => "xdp-native",
            Self::Generic => "xdp-generic",
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
    // Kept so a later reload can swap the program atomically on this link.
    #[allow(dead_code)]
    pub(crate) link: XdpLinkId,
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
                link,
            });
        }
        Err(err) => err,
    };
    match program.attach(interface, XdpMode::Skb) {
        Ok(link) => Ok(UplinkAttachment {
            interface: interface.to_owned(),
            mode: XdpAttachMode::Generic,
            link,
        }),
        Err(generic) => Err(DataplaneError::Attach {
            interface: interface.to_owned(),
            native: Box::new(native),
            generic: Box::new(generic),
        }),
    }
}
