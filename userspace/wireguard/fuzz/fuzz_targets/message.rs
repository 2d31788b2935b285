//! Any datagram a WireGuard port receives: parsed, and handshake messages
//! taken as far as the responder takes them (mac1, cookies, decryption).
#![no_main]

use std::time::{Duration, Instant};

use ethergate_wireguard::{
    Message, PrivateKey, Responder, cookie::open_cookie_reply, handshake::cookie_key,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::parse(data) else {
        return;
    };
    let mut responder = Responder::new(&PrivateKey::from_bytes([2; 32]));
    let mut counter = 0u8;
    let mut random = |buf: &mut [u8]| {
        counter = counter.wrapping_add(1);
        buf.fill(counter);
    };
    let now = Instant::now() + Duration::from_secs(1);
    match message {
        Message::Initiation(init) => {
            let _ = responder.admit(&init, b"\x01\x02\x03\x04\x05\x06", true, now, &mut random);
            let _ = responder.admit(&init, b"\x01\x02\x03\x04\x05\x06", false, now, &mut random);
            let _ = responder.consume(&init);
        }
        Message::CookieReply(reply) => {
            let key = cookie_key(&responder.identity().public);
            let _ = open_cookie_reply(&key, &[0; 16], &reply);
        }
        Message::Response(_) | Message::Transport(_) => {}
    }
});
