//! What the fuzz targets' seed writer and corpus replay share.

use ethergate_proto::password::hash_password;
use ethergate_proto::udp_accel::Offer;
use ethergate_proto::{ClientAuth, ClientConfig};

/// The client of fuzz/fuzz_targets/client_handshake.rs, which builds the
/// same one (the fuzz crate cannot use this file): alice on hub TEST with
/// a password, offering UDP acceleration, probing first when `probe`.
pub fn fuzz_client_config(probe: bool) -> ClientConfig {
    let mut cfg = ClientConfig::new(
        "10.77.0.1",
        "TEST",
        "alice",
        ClientAuth::Password {
            hash: hash_password("secret", "alice"),
        },
    );
    cfg.send_probe = probe;
    cfg.udp_accel = Some(Offer {
        max_version: 2,
        client_ip: None,
        client_port: 40_000,
        client_key: [9; 32],
        fast_detect: true,
    });
    cfg
}
