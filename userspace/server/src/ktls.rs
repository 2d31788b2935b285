//! Kernel TLS availability, detected once at start.
//!
//! kTLS needs the `tls` upper-layer protocol, which is a module
//! (`CONFIG_TLS`) some kernels lack — this machine's among them. The probe
//! asks the kernel directly: it sets `TCP_ULP "tls"` on a connected loopback
//! socket, which is exactly what offloading a real session would do first.
//! Until the offload itself lands, sessions run rustls in userspace either
//! way; the detected mode is reported so operators know what they'd gain.

use std::{
    net::{Ipv4Addr, TcpListener, TcpStream},
    os::fd::AsRawFd,
};

/// What the kernel offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KtlsSupport {
    /// The `tls` ULP attached: the kernel can take over record encryption.
    Available,
    /// Why not (e.g. "TCP_ULP tls: No such file or directory (no CONFIG_TLS)").
    Unavailable(String),
}

impl KtlsSupport {
    /// The TLS mode sessions actually run in, for status and metrics.
    pub fn session_mode(&self) -> &'static str {
        // Offload is not wired up yet, so sessions always use rustls in
        // userspace; see the module comment.
        "rustls-userspace"
    }
}

/// Probes for the `tls` ULP on a throwaway loopback connection.
pub fn probe() -> KtlsSupport {
    match try_attach_ulp() {
        Ok(()) => KtlsSupport::Available,
        Err(reason) => KtlsSupport::Unavailable(reason),
    }
}

fn try_attach_ulp() -> Result<(), String> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("loopback bind: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("loopback addr: {e}"))?;
    // The ULP can only be set on an established socket.
    let client = TcpStream::connect(addr).map_err(|e| format!("loopback connect: {e}"))?;
    let (_server, _) = listener
        .accept()
        .map_err(|e| format!("loopback accept: {e}"))?;
    nix::sys::socket::setsockopt(
        &client,
        nix::sys::socket::sockopt::TcpUlp::default(),
        b"tls",
    )
    .map_err(|e| {
        let hint = if e == nix::errno::Errno::ENOENT {
            " (the kernel has no TLS module: CONFIG_TLS)"
        } else {
            ""
        };
        format!("TCP_ULP \"tls\" on fd {}: {e}{hint}", client.as_raw_fd())
    })
}
