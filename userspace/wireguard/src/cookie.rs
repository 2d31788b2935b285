//! Denial-of-service defence (docs/wireguard.md §5). Every handshake
//! message carries mac1, keyed by the receiver's public key: without it
//! a message is dropped before any Curve25519 work, so scanners that do
//! not know the key get no answer at all. Under load, an initiation must
//! also carry mac2, keyed by a cookie the responder derives from the
//! sender's address and a secret that changes every two minutes; one
//! without gets a cookie reply instead of a handshake, so a flood from
//! spoofed addresses costs the responder a MAC and never a DH.

use std::time::{Duration, Instant};

use crate::{
    crypto::{Key, mac, mac_matches, xopen, xseal},
    message::{COOKIE_REPLY, COOKIE_REPLY_LEN, CookieReply, mac1_range, mac2_range},
};

/// How long one cookie secret lives.
pub const COOKIE_SECRET_LIFETIME: Duration = Duration::from_secs(120);

/// The responder's side: checks mac1 and mac2, writes cookie replies.
pub struct CookieChecker {
    mac1_key: Key,
    cookie_key: Key,
    secret: Key,
    born: Option<Instant>,
}

impl CookieChecker {
    /// For the responder whose keys are `mac1_key`/`cookie_key`
    /// ([`crate::Identity`]).
    pub fn new(mac1_key: Key, cookie_key: Key) -> Self {
        Self {
            mac1_key,
            cookie_key,
            secret: [0; 32],
            born: None,
        }
    }

    /// Whether `message` (a whole handshake message) carries a valid mac1.
    pub fn mac1_valid(&self, message: &[u8]) -> bool {
        message.len() >= 32
            && mac_matches(
                &self.mac1_key,
                &message[..mac1_range(message.len()).start],
                &message[mac1_range(message.len())],
            )
    }

    fn cookie(
        &mut self,
        source: &[u8],
        now: Instant,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> [u8; 16] {
        if self
            .born
            .is_none_or(|born| now.duration_since(born) >= COOKIE_SECRET_LIFETIME)
        {
            random(&mut self.secret);
            self.born = Some(now);
        }
        mac(&self.secret, &[source])
    }

    /// Whether `message` carries the mac2 the cookie for `source` (the
    /// sender's address and port, as bytes) gives. (The responder asks
    /// [`CookieChecker::challenge`], which answers too.)
    #[cfg(test)]
    fn mac2_valid(
        &mut self,
        message: &[u8],
        source: &[u8],
        now: Instant,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> bool {
        let cookie = self.cookie(source, now, random);
        carries_mac2(message, &cookie)
    }

    /// Under load: `None` when `message` carries the mac2 of `source`'s
    /// cookie, else the cookie reply to send it (`receiver`: its sender
    /// index). The cookie is derived once for both, since under a flood
    /// every forged initiation takes this path.
    pub fn challenge(
        &mut self,
        message: &[u8],
        receiver: u32,
        source: &[u8],
        now: Instant,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> Option<[u8; COOKIE_REPLY_LEN]> {
        let cookie = self.cookie(source, now, random);
        (!carries_mac2(message, &cookie))
            .then(|| self.reply_with(cookie, message, receiver, random))
    }

    fn reply_with(
        &self,
        mut cookie: [u8; 16],
        message: &[u8],
        receiver: u32,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> [u8; COOKIE_REPLY_LEN] {
        let mut nonce = [0u8; 24];
        random(&mut nonce);
        let mac1 = &message[mac1_range(message.len())];
        let tag = xseal(&self.cookie_key, &nonce, mac1, &mut cookie);
        let mut out = [0u8; COOKIE_REPLY_LEN];
        out[0] = COOKIE_REPLY;
        out[4..8].copy_from_slice(&receiver.to_le_bytes());
        out[8..32].copy_from_slice(&nonce);
        out[32..48].copy_from_slice(&cookie);
        out[48..64].copy_from_slice(&tag);
        out
    }
}

/// Whether `message` ends in MAC(cookie, everything before mac2).
fn carries_mac2(message: &[u8], cookie: &[u8; 16]) -> bool {
    message.len() >= 32
        && mac_matches(
            cookie,
            &message[..mac2_range(message.len()).start],
            &message[mac2_range(message.len())],
        )
}

/// The initiator's side: the cookie in a reply to the message whose mac1
/// was `mac1`, from the responder whose cookie key is `cookie_key`.
pub fn open_cookie_reply(
    cookie_key: &Key,
    mac1: &[u8; 16],
    reply: &CookieReply<'_>,
) -> Option<[u8; 16]> {
    let mut cookie = [0u8; 16];
    cookie.copy_from_slice(&reply.encrypted_cookie[..16]);
    xopen(
        cookie_key,
        reply.nonce,
        mac1,
        &mut cookie,
        &reply.encrypted_cookie[16..],
    )
    .ok()?;
    Some(cookie)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        handshake::{Identity, initiate},
        keys::PrivateKey,
        message::Message,
    };

    #[test]
    fn a_cookie_reply_lets_the_initiator_prove_its_address() {
        let server = Identity::new(&PrivateKey::from_bytes([2; 32]));
        let client = Identity::new(&PrivateKey::from_bytes([1; 32]));
        let mut checker = CookieChecker::new(server.mac1_key, server.cookie_key);
        let mut counter = 0u8;
        let mut random = |buf: &mut [u8]| {
            counter = counter.wrapping_add(1);
            buf.fill(counter);
        };
        let now = Instant::now();
        let source = b"\xc6\x33\x64\x02\x12\x34";
        let (init, pending) =
            initiate(&client, &server.public, &[0; 32], [3; 32], 7, [0; 12], None)
                .expect("initiate");
        assert!(checker.mac1_valid(&init));
        assert!(!checker.mac2_valid(&init, source, now, &mut random));
        let reply = checker
            .challenge(&init, 7, source, now, &mut random)
            .expect("no mac2 under load: a cookie reply");
        let Ok(Message::CookieReply(parsed)) = Message::parse(&reply) else {
            panic!("cookie reply parses");
        };
        let cookie = open_cookie_reply(
            &crate::handshake::cookie_key(&server.public),
            &pending.mac1,
            &parsed,
        )
        .expect("the initiator opens it");
        let (retry, _) = initiate(
            &client,
            &server.public,
            &[0; 32],
            [4; 32],
            8,
            [0; 12],
            Some(&cookie),
        )
        .expect("initiate");
        assert!(checker.mac2_valid(&retry, source, now, &mut random));
        assert!(
            checker
                .challenge(&retry, 8, source, now, &mut random)
                .is_none(),
            "a valid mac2 is admitted under load"
        );
        assert!(
            !checker.mac2_valid(&retry, b"\xc6\x33\x64\x03\x12\x34", now, &mut random),
            "the cookie is bound to the address"
        );
        let later = now + COOKIE_SECRET_LIFETIME;
        assert!(
            !checker.mac2_valid(&retry, source, later, &mut random),
            "secrets expire"
        );
    }

    #[test]
    fn mac1_is_bound_to_the_responder_key() {
        let server = Identity::new(&PrivateKey::from_bytes([2; 32]));
        let other = Identity::new(&PrivateKey::from_bytes([9; 32]));
        let client = Identity::new(&PrivateKey::from_bytes([1; 32]));
        let (init, _) = initiate(&client, &other.public, &[0; 32], [3; 32], 7, [0; 12], None)
            .expect("initiate");
        assert!(!CookieChecker::new(server.mac1_key, server.cookie_key).mac1_valid(&init));
        assert!(!CookieChecker::new(server.mac1_key, server.cookie_key).mac1_valid(&init[..10]));
    }
}
