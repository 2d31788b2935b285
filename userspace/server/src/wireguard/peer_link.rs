//! A WireGuard peer's endpoint and last handshake, shared with its hub
//! session (status and `session list` read them there). Apart from the
//! endpoint so the session directory can hold one without depending on it.

use std::{
    net::SocketAddr,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

/// A peer's endpoint and last handshake, shared with its session so
/// status shows where the peer is now.
pub struct PeerLink {
    endpoint: Mutex<Option<SocketAddr>>,
    last_handshake_unix: AtomicU64,
}

impl PeerLink {
    pub(super) fn new() -> Self {
        Self {
            endpoint: Mutex::new(None),
            last_handshake_unix: AtomicU64::new(0),
        }
    }

    /// Where the peer's last authenticated datagram came from.
    pub fn endpoint(&self) -> SocketAddr {
        self.endpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub(super) fn set_endpoint(&self, at: SocketAddr) {
        *self.endpoint.lock().unwrap_or_else(PoisonError::into_inner) = Some(at);
    }

    /// Unix seconds of the last confirmed handshake; 0 before the first.
    pub fn last_handshake_unix(&self) -> u64 {
        self.last_handshake_unix.load(Ordering::Relaxed)
    }

    /// A handshake was confirmed now.
    pub(super) fn confirmed_now(&self) {
        let unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_handshake_unix.store(unix, Ordering::Relaxed);
    }
}
