//! The socket buffers current wireguard-go gives itself, for Debian's
//! older build.
//!
//! Since 2023 wireguard-go asks for 7 MiB receive and send buffers on its
//! UDP socket (with `SO_RCVBUFFORCE`, past `net.core.rmem_max`); the build
//! Debian ships (0.0.20220316) asks for nothing and gets the kernel's
//! default, 208 KiB — about 90 full-size datagrams. Behind that, a 3-s
//! download through ethergate's endpoint lost 54,064 datagrams in the
//! client's socket (`UdpRcvbufErrors`), so the rows measured the old
//! client's overflow, not the servers. While a wireguard-go starts, the
//! defaults are raised to what the current release sets (a socket takes
//! them when it is created), and put back at once.
//!
//! The sysctls are machine-wide (this kernel has no per-namespace copy),
//! hence the short window and the restore on drop, also on error.

use std::fs;

use anyhow::{Context, Result};

const SIZE: u64 = 7 << 20;
const KNOBS: [&str; 2] = [
    "/proc/sys/net/core/rmem_default",
    "/proc/sys/net/core/wmem_default",
];

/// Raised defaults; dropping it restores the values it found.
pub struct ModernSocketBuffers {
    saved: Vec<(&'static str, String)>,
}

impl ModernSocketBuffers {
    pub fn raise() -> Result<Self> {
        let mut guard = Self { saved: Vec::new() };
        for knob in KNOBS {
            let old = fs::read_to_string(knob).with_context(|| format!("reading {knob}"))?;
            fs::write(knob, SIZE.to_string()).with_context(|| format!("writing {knob}"))?;
            guard.saved.push((knob, old.trim().to_owned()));
        }
        Ok(guard)
    }
}

impl Drop for ModernSocketBuffers {
    fn drop(&mut self) {
        for (knob, old) in &self.saved {
            let _ = fs::write(knob, old);
        }
    }
}
