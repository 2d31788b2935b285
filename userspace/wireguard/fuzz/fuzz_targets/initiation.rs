//! Initiations whose fields are the fuzzer's but whose mac1 is valid, so
//! every input reaches the Curve25519 and AEAD steps of the responder.
#![no_main]

use ethergate_wireguard::{
    Message, PrivateKey, Responder,
    handshake::{Identity, initiate, mac1},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let server = Responder::new(&PrivateKey::from_bytes([2; 32]));
    let client = Identity::new(&PrivateKey::from_bytes([1; 32]));
    let Ok((mut init, _)) = initiate(
        &client,
        &server.identity().public,
        &[0; 32],
        [3; 32],
        7,
        [0; 12],
        None,
    ) else {
        return;
    };
    // Overwrite the fields (sender, ephemeral, static, timestamp) with the
    // input, then make mac1 right again.
    for (slot, byte) in init[4..116].iter_mut().zip(data) {
        *slot = *byte;
    }
    let mac = mac1(&server.identity().public, &init[..116]);
    init[116..132].copy_from_slice(&mac);
    if let Ok(Message::Initiation(msg)) = Message::parse(&init) {
        let _ = server.consume(&msg);
    }
});
