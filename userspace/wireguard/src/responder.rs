//! The server's front door for handshakes: which initiations are worth a
//! Diffie-Hellman (docs/wireguard.md §5). Checked in cost order: the
//! message's mac1 (a keyed hash: anyone without our public key is dropped
//! here, silently), then under load its mac2 (no valid cookie for the
//! sender's address: a cookie reply instead of a handshake), and only
//! then the Curve25519 work.

use std::time::Instant;

use crate::{
    cookie::CookieChecker,
    handshake::{ConsumedInitiation, HandshakeError, Identity, consume_initiation},
    keys::PrivateKey,
    message::{COOKIE_REPLY_LEN, Initiation},
};

/// What to do with an initiation before any DH.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Worth consuming.
    Proceed,
    /// Under load without a valid cookie: send this cookie reply.
    CookieReply([u8; COOKIE_REPLY_LEN]),
    /// No valid mac1: not for us, or not from someone who knows our key.
    BadMac1,
}

pub struct Responder {
    identity: Identity,
    cookies: CookieChecker,
}

impl Responder {
    pub fn new(private: &PrivateKey) -> Self {
        let identity = Identity::new(private);
        let cookies = CookieChecker::new(identity.mac1_key, identity.cookie_key);
        Self { identity, cookies }
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Decides whether `msg`, from `source` (the sender's address and
    /// port, as bytes), gets a DH. `under_load` comes from the caller's
    /// measure of handshake work.
    pub fn admit(
        &mut self,
        msg: &Initiation<'_>,
        source: &[u8],
        under_load: bool,
        now: Instant,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> Admission {
        if !self.cookies.mac1_valid(msg.bytes) {
            return Admission::BadMac1;
        }
        if under_load
            && let Some(reply) = self
                .cookies
                .challenge(msg.bytes, msg.sender, source, now, random)
        {
            return Admission::CookieReply(reply);
        }
        Admission::Proceed
    }

    /// The Curve25519 part: who sent it, and the state to answer with.
    pub fn consume(&self, msg: &Initiation<'_>) -> Result<ConsumedInitiation, HandshakeError> {
        consume_initiation(&self.identity, msg)
    }
}
