//! One pair of transport keys (docs/wireguard.md §6): the sending counter,
//! the replay window, and the data messages' encryption. ChaCha20-Poly1305
//! here is aws-lc's assembly, the same rustls runs for TLS.

use std::time::Instant;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce};

use crate::{
    crypto::{TAG_LEN, chacha20_poly1305_key, counter_nonce},
    handshake::SessionKeys,
    message::{TRANSPORT, TRANSPORT_HEADER_LEN},
    replay::ReplayWindow,
};

/// After this many messages a key is never used again (the protocol's
/// REJECT_AFTER_MESSAGES: 2^64 − 2^13 − 1).
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);

/// Plaintext is padded to a multiple of this, so lengths leak less.
const PADDING: usize = 16;

/// Why a transport message was not accepted or not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("does not authenticate")]
    Decrypt,
    #[error("counter was seen already or is older than the window")]
    Replay,
    #[error("the key has carried its last message")]
    Exhausted,
}

pub struct Session {
    pub local_index: u32,
    pub remote_index: u32,
    pub created: Instant,
    send_key: LessSafeKey,
    receive_key: LessSafeKey,
    next_counter: u64,
    replay: ReplayWindow,
}

impl Session {
    pub fn new(keys: &SessionKeys, now: Instant) -> Self {
        Self {
            local_index: keys.local_index,
            remote_index: keys.remote_index,
            created: now,
            send_key: chacha20_poly1305_key(&keys.send),
            receive_key: chacha20_poly1305_key(&keys.receive),
            next_counter: 0,
            replay: ReplayWindow::default(),
        }
    }

    /// Messages sent with this key so far.
    pub fn sent(&self) -> u64 {
        self.next_counter
    }

    /// Appends the data message carrying `packet` (empty: a keepalive) to
    /// `out`.
    pub fn seal(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), TransportError> {
        let counter = self.next_counter;
        if counter >= REJECT_AFTER_MESSAGES {
            return Err(TransportError::Exhausted);
        }
        self.next_counter += 1;
        let start = out.len();
        let padded = packet.len().next_multiple_of(PADDING);
        out.reserve(TRANSPORT_HEADER_LEN + padded + TAG_LEN);
        out.extend_from_slice(&[TRANSPORT, 0, 0, 0]);
        out.extend_from_slice(&self.remote_index.to_le_bytes());
        out.extend_from_slice(&counter.to_le_bytes());
        out.extend_from_slice(packet);
        out.resize(start + TRANSPORT_HEADER_LEN + padded, 0);
        let tag = self
            .send_key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(counter_nonce(counter)),
                Aad::empty(),
                &mut out[start + TRANSPORT_HEADER_LEN..],
            )
            .map_err(|_| TransportError::Exhausted)?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Decrypts `sealed` (ciphertext and tag) in place; the plaintext,
    /// padding included, is the returned prefix.
    pub fn open<'b>(
        &mut self,
        counter: u64,
        sealed: &'b mut [u8],
    ) -> Result<&'b mut [u8], TransportError> {
        if counter >= REJECT_AFTER_MESSAGES {
            return Err(TransportError::Replay);
        }
        let plain = self
            .receive_key
            .open_in_place(
                Nonce::assume_unique_for_key(counter_nonce(counter)),
                Aad::empty(),
                sealed,
            )
            .map_err(|_| TransportError::Decrypt)?;
        if !self.replay.accept(counter) {
            return Err(TransportError::Replay);
        }
        Ok(plain)
    }
}
