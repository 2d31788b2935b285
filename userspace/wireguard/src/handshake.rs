//! Noise_IKpsk2 as WireGuard uses it (docs/wireguard.md §4): the initiator
//! knows the responder's static key in advance, sends its own encrypted,
//! and both sides end with a pair of transport keys. Both roles are here;
//! the server only ever responds (it cannot know where a phone is until the
//! phone speaks), and the initiator serves tests, fuzzing and benchmarks.

use crate::{
    crypto::{self, Key, Secret, TAG_LEN, hash, kdf, mac, open, seal},
    keys::{PrivateKey, PublicKey},
    message::{INITIATION, INITIATION_LEN, Initiation, RESPONSE, RESPONSE_LEN, Response},
};

const CONSTRUCTION: &[u8] = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
const IDENTIFIER: &[u8] = b"WireGuard v1 zx2c4 Jason@zx2c4.com";
const LABEL_MAC1: &[u8] = b"mac1----";
pub(crate) const LABEL_COOKIE: &[u8] = b"cookie--";

/// Why a handshake message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("does not decrypt (wrong keys or tampered)")]
    Decrypt,
    #[error("carries a low-order public key")]
    LowOrderKey,
    #[error("answers no initiation we sent")]
    UnknownReceiver,
}

/// The chaining key and hash every handshake starts from.
fn initial_state() -> (Key, Key) {
    let chaining = hash(&[CONSTRUCTION]);
    let h = hash(&[&chaining, IDENTIFIER]);
    (chaining, h)
}

/// The key mac1 of messages *to* `public` is computed with.
pub fn mac1_key(public: &PublicKey) -> Key {
    hash(&[LABEL_MAC1, &public.0])
}

/// mac1 of a handshake message (its bytes before mac1) addressed to
/// `receiver`.
pub fn mac1(receiver: &PublicKey, prefix: &[u8]) -> [u8; 16] {
    mac(&mac1_key(receiver), &[prefix])
}

/// The key cookie replies *from* `public` are encrypted with.
pub fn cookie_key(public: &PublicKey) -> Key {
    hash(&[LABEL_COOKIE, &public.0])
}

/// One side's static key pair, with what is derived from it once.
pub struct Identity {
    secret: Secret,
    pub public: PublicKey,
    /// MAC key for messages addressed to us.
    pub mac1_key: Key,
    /// XAEAD key for cookie replies we send.
    pub cookie_key: Key,
}

impl Identity {
    /// DH(our static key, `peer`'s static key): constant for a peer, so a
    /// responder computes it once per configured peer.
    pub fn static_shared(&self, peer: &PublicKey) -> Result<Key, HandshakeError> {
        self.secret.dh(&peer.0).ok_or(HandshakeError::LowOrderKey)
    }

    pub fn new(private: &PrivateKey) -> Self {
        let public = private.public_key();
        Self {
            secret: private.secret(),
            public,
            mac1_key: mac1_key(&public),
            cookie_key: cookie_key(&public),
        }
    }
}

/// The two keys a finished handshake yields, and the indices that name the
/// session on each side.
pub struct SessionKeys {
    pub send: Key,
    pub receive: Key,
    pub local_index: u32,
    pub remote_index: u32,
}

/// What a valid initiation told the responder, before it answers.
pub struct ConsumedInitiation {
    pub peer: PublicKey,
    pub sender: u32,
    /// TAI64N: must be later than the last one accepted from this peer.
    pub timestamp: [u8; 12],
    chaining: Key,
    h: Key,
    ephemeral: PublicKey,
}

/// Decrypts an initiation addressed to `identity` (mac1 already checked).
pub fn consume_initiation(
    identity: &Identity,
    msg: &Initiation<'_>,
) -> Result<ConsumedInitiation, HandshakeError> {
    consume_initiation_with(identity, msg, &|_| None)
}

/// [`consume_initiation`] with the static-static DH of known peers
/// precomputed (`static_shared(peer)`, from [`Identity::static_shared`]):
/// one X25519 fewer of the responder's four, since it never changes.
pub fn consume_initiation_with(
    identity: &Identity,
    msg: &Initiation<'_>,
    static_shared: &dyn Fn(&PublicKey) -> Option<Key>,
) -> Result<ConsumedInitiation, HandshakeError> {
    let (chaining, h) = initial_state();
    let h = hash(&[&h, &identity.public.0]);
    let [chaining] = kdf::<1>(&chaining, msg.ephemeral);
    let h = hash(&[&h, msg.ephemeral]);
    let ephemeral = PublicKey(*msg.ephemeral);
    let shared = identity
        .secret
        .dh(&ephemeral.0)
        .ok_or(HandshakeError::LowOrderKey)?;
    let [chaining, key] = kdf::<2>(&chaining, &shared);
    let mut peer = [0u8; 32];
    peer.copy_from_slice(&msg.encrypted_static[..32]);
    open(&key, 0, &h, &mut peer, &msg.encrypted_static[32..])
        .map_err(|_| HandshakeError::Decrypt)?;
    let h = hash(&[&h, msg.encrypted_static]);
    let peer = PublicKey(peer);
    let shared = match static_shared(&peer) {
        Some(shared) => shared,
        None => identity.static_shared(&peer)?,
    };
    let [chaining, key] = kdf::<2>(&chaining, &shared);
    let mut timestamp = [0u8; 12];
    timestamp.copy_from_slice(&msg.encrypted_timestamp[..12]);
    open(&key, 0, &h, &mut timestamp, &msg.encrypted_timestamp[12..])
        .map_err(|_| HandshakeError::Decrypt)?;
    let h = hash(&[&h, msg.encrypted_timestamp]);
    Ok(ConsumedInitiation {
        peer,
        sender: msg.sender,
        timestamp,
        chaining,
        h,
        ephemeral,
    })
}

/// The response to `init`, and the responder's session keys.
/// `ephemeral` is 32 fresh random bytes; `local_index` names the session
/// here; `psk` is the peer's preshared key (zeros when none).
pub fn respond(
    init: ConsumedInitiation,
    psk: &Key,
    ephemeral: [u8; 32],
    local_index: u32,
) -> Result<([u8; RESPONSE_LEN], SessionKeys), HandshakeError> {
    let secret = Secret::new(&ephemeral);
    let ephemeral_public = PublicKey(secret.public());
    let [chaining] = kdf::<1>(&init.chaining, &ephemeral_public.0);
    let h = hash(&[&init.h, &ephemeral_public.0]);
    let ee = secret
        .dh(&init.ephemeral.0)
        .ok_or(HandshakeError::LowOrderKey)?;
    let [chaining] = kdf::<1>(&chaining, &ee);
    let es = secret.dh(&init.peer.0).ok_or(HandshakeError::LowOrderKey)?;
    let [chaining] = kdf::<1>(&chaining, &es);
    let [chaining, tau, key] = kdf::<3>(&chaining, psk);
    let h = hash(&[&h, &tau]);
    let tag = seal(&key, 0, &h, &mut []);

    let mut msg = [0u8; RESPONSE_LEN];
    msg[0] = RESPONSE;
    msg[4..8].copy_from_slice(&local_index.to_le_bytes());
    msg[8..12].copy_from_slice(&init.sender.to_le_bytes());
    msg[12..44].copy_from_slice(&ephemeral_public.0);
    msg[44..60].copy_from_slice(&tag);
    let mac1 = mac(&mac1_key(&init.peer), &[&msg[..60]]);
    msg[60..76].copy_from_slice(&mac1);
    // mac2 stays zero: the responder never holds a cookie from the
    // initiator (only a responder under load hands them out).
    let [receive, send] = kdf::<2>(&chaining, &[]);
    Ok((
        msg,
        SessionKeys {
            send,
            receive,
            local_index,
            remote_index: init.sender,
        },
    ))
}

/// An initiation in flight, kept until its response arrives.
pub struct PendingInitiation {
    pub local_index: u32,
    peer: PublicKey,
    psk: Key,
    ephemeral: Secret,
    chaining: Key,
    h: Key,
    /// mac1 of the initiation, for decrypting a cookie reply to it.
    pub mac1: [u8; 16],
}

/// Builds an initiation from `identity` to `peer`. `timestamp` is TAI64N
/// ([`tai64n`]), `cookie` the last cookie the responder gave (mac2).
pub fn initiate(
    identity: &Identity,
    peer: &PublicKey,
    psk: &Key,
    ephemeral: [u8; 32],
    local_index: u32,
    timestamp: [u8; 12],
    cookie: Option<&[u8; 16]>,
) -> Result<([u8; INITIATION_LEN], PendingInitiation), HandshakeError> {
    let (chaining, h) = initial_state();
    let h = hash(&[&h, &peer.0]);
    let secret = Secret::new(&ephemeral);
    let ephemeral_public = PublicKey(secret.public());
    let [chaining] = kdf::<1>(&chaining, &ephemeral_public.0);
    let h = hash(&[&h, &ephemeral_public.0]);
    let es = secret.dh(&peer.0).ok_or(HandshakeError::LowOrderKey)?;
    let [chaining, key] = kdf::<2>(&chaining, &es);
    let mut msg = [0u8; INITIATION_LEN];
    msg[0] = INITIATION;
    msg[4..8].copy_from_slice(&local_index.to_le_bytes());
    msg[8..40].copy_from_slice(&ephemeral_public.0);
    msg[40..72].copy_from_slice(&identity.public.0);
    let tag = seal(&key, 0, &h, &mut msg[40..72]);
    msg[72..88].copy_from_slice(&tag);
    let h = hash(&[&h, &msg[40..88]]);
    let ss = identity
        .secret
        .dh(&peer.0)
        .ok_or(HandshakeError::LowOrderKey)?;
    let [chaining, key] = kdf::<2>(&chaining, &ss);
    msg[88..100].copy_from_slice(&timestamp);
    let tag = seal(&key, 0, &h, &mut msg[88..100]);
    msg[100..116].copy_from_slice(&tag);
    let h = hash(&[&h, &msg[88..116]]);
    let mac1 = mac(&mac1_key(peer), &[&msg[..116]]);
    msg[116..132].copy_from_slice(&mac1);
    if let Some(cookie) = cookie {
        let mac2 = mac(cookie, &[&msg[..132]]);
        msg[132..148].copy_from_slice(&mac2);
    }
    Ok((
        msg,
        PendingInitiation {
            local_index,
            peer: *peer,
            psk: *psk,
            ephemeral: secret,
            chaining,
            h,
            mac1,
        },
    ))
}

/// Finishes the initiator's side with the responder's answer.
pub fn consume_response(
    identity: &Identity,
    pending: &PendingInitiation,
    msg: &Response<'_>,
) -> Result<SessionKeys, HandshakeError> {
    if msg.receiver != pending.local_index {
        return Err(HandshakeError::UnknownReceiver);
    }
    if !crypto::mac_matches(&identity.mac1_key, &msg.bytes[..60], &msg.bytes[60..76]) {
        return Err(HandshakeError::Decrypt);
    }
    let responder_ephemeral = PublicKey(*msg.ephemeral);
    let [chaining] = kdf::<1>(&pending.chaining, msg.ephemeral);
    let h = hash(&[&pending.h, msg.ephemeral]);
    let ee = pending
        .ephemeral
        .dh(&responder_ephemeral.0)
        .ok_or(HandshakeError::LowOrderKey)?;
    let [chaining] = kdf::<1>(&chaining, &ee);
    let se = identity
        .secret
        .dh(&responder_ephemeral.0)
        .ok_or(HandshakeError::LowOrderKey)?;
    let [chaining] = kdf::<1>(&chaining, &se);
    let [chaining, tau, key] = kdf::<3>(&chaining, &pending.psk);
    let h = hash(&[&h, &tau]);
    let mut nothing: [u8; 0] = [];
    open(&key, 0, &h, &mut nothing, &msg.encrypted_nothing[..TAG_LEN])
        .map_err(|_| HandshakeError::Decrypt)?;
    let _ = pending.peer;
    let [send, receive] = kdf::<2>(&chaining, &[]);
    Ok(SessionKeys {
        send,
        receive,
        local_index: pending.local_index,
        remote_index: msg.sender,
    })
}

/// TAI64N for `since_epoch` (time since the Unix epoch): seconds with the
/// 2^62 offset, then nanoseconds, both big-endian.
pub fn tai64n(since_epoch: std::time::Duration) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&(0x4000_0000_0000_000a_u64 + since_epoch.as_secs()).to_be_bytes());
    out[8..].copy_from_slice(&since_epoch.subsec_nanos().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn identity(seed: u8) -> Identity {
        Identity::new(&PrivateKey::from_bytes([seed; 32]))
    }

    /// The construction's first two hashes, as every WireGuard
    /// implementation precomputes them.
    #[test]
    fn initial_chaining_key_is_the_protocols() {
        let (chaining, _) = initial_state();
        assert_eq!(
            chaining,
            [
                96, 226, 109, 174, 243, 39, 239, 192, 46, 195, 53, 226, 160, 37, 210, 208, 22, 235,
                66, 6, 248, 114, 119, 245, 45, 56, 209, 152, 139, 120, 205, 54,
            ],
        );
    }

    #[test]
    fn both_roles_agree_on_keys() {
        let client = identity(1);
        let server = identity(2);
        let psk = [0u8; 32];
        let (init, pending) = initiate(
            &client,
            &server.public,
            &psk,
            [3; 32],
            11,
            tai64n(std::time::Duration::from_secs(1_700_000_000)),
            None,
        )
        .expect("initiate");
        let Ok(Message::Initiation(parsed)) = Message::parse(&init) else {
            panic!("initiation parses");
        };
        assert!(crypto::mac_matches(
            &server.mac1_key,
            &init[..116],
            &init[116..132]
        ));
        let consumed = consume_initiation(&server, &parsed).expect("consume");
        assert_eq!(consumed.peer, client.public);
        assert_eq!(consumed.sender, 11);
        let (response, server_keys) = respond(consumed, &psk, [4; 32], 22).expect("respond");
        let Ok(Message::Response(parsed)) = Message::parse(&response) else {
            panic!("response parses");
        };
        let client_keys = consume_response(&client, &pending, &parsed).expect("consume response");
        assert_eq!(client_keys.send, server_keys.receive);
        assert_eq!(client_keys.receive, server_keys.send);
        assert_eq!(client_keys.remote_index, 22);
        assert_eq!(server_keys.remote_index, 11);
    }

    #[test]
    fn an_initiation_for_another_server_does_not_decrypt() {
        let client = identity(1);
        let (init, _) = initiate(
            &client,
            &identity(2).public,
            &[0; 32],
            [3; 32],
            1,
            [0; 12],
            None,
        )
        .expect("initiate");
        let Ok(Message::Initiation(parsed)) = Message::parse(&init) else {
            panic!("parses");
        };
        assert!(matches!(
            consume_initiation(&identity(5), &parsed),
            Err(HandshakeError::Decrypt)
        ));
    }

    #[test]
    fn a_wrong_preshared_key_fails_the_response() {
        let client = identity(1);
        let server = identity(2);
        let (init, pending) =
            initiate(&client, &server.public, &[1; 32], [3; 32], 1, [0; 12], None)
                .expect("initiate");
        let Ok(Message::Initiation(parsed)) = Message::parse(&init) else {
            panic!("parses");
        };
        let consumed = consume_initiation(&server, &parsed).expect("consume");
        let (response, _) = respond(consumed, &[2; 32], [4; 32], 2).expect("respond");
        let Ok(Message::Response(parsed)) = Message::parse(&response) else {
            panic!("parses");
        };
        assert!(matches!(
            consume_response(&client, &pending, &parsed),
            Err(HandshakeError::Decrypt)
        ));
    }
}
