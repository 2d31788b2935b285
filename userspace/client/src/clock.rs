//! The driver's clock and randomness: protocol [`Timestamp`]s count
//! milliseconds from the client's start, and every random byte (hello
//! proofs, keep-alive padding, DHCP transaction ids, backoff jitter) comes
//! from the TLS provider's CSPRNG.

use std::{
    sync::{Arc, OnceLock},
    time::Instant,
};

use ethergate_proto::Timestamp;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            epoch: Instant::now(),
        }
    }
    pub fn now(&self) -> Timestamp {
        Timestamp::from_elapsed(self.epoch.elapsed())
    }
    pub fn instant(&self, at: Timestamp) -> Instant {
        self.epoch + at.as_duration()
    }
}

static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();

/// Fills `buf` from aws-lc's system RNG.
pub fn system_random(buf: &mut [u8]) {
    let provider = PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    // Without a working system RNG no TLS handshake can succeed either;
    // there is nothing sensible to continue with.
    #[allow(clippy::expect_used)]
    provider
        .secure_random
        .fill(buf)
        .expect("the system random number generator failed");
}
