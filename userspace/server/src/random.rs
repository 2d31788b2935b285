//! The randomness of session keys, server randoms and WireGuard keys: the
//! same CSPRNG as TLS.

use std::sync::{Arc, OnceLock};

static RANDOM: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();

pub fn system_random(buf: &mut [u8]) {
    let provider = RANDOM.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    // Without a working system RNG no TLS handshake can succeed either;
    // there is nothing sensible to continue with.
    provider
        .secure_random
        .fill(buf)
        .expect("the system random number generator failed");
}
