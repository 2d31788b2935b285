//! Arbitrary bytes as a DHCP message: decoding never panics; whatever
//! decodes re-encodes to something that decodes to the same value; and the
//! server's RFC 2131 logic never panics on it.

#![no_main]

use std::net::Ipv4Addr;

use ethergate_hub::config::{AddressRange, DhcpConfig};
use ethergate_hub::dhcp::{DECLINE_HOLD, DhcpMessage, OFFER_HOLD};
use ethergate_hub::{DhcpServer, DhcpServerConfig, MacAddr, WallTime};
use libfuzzer_sys::fuzz_target;

fn server() -> DhcpServer {
    DhcpServer::new(DhcpServerConfig {
        server_ip: Ipv4Addr::new(192, 168, 30, 1),
        server_mac: MacAddr::local_from_seed(b"fuzz"),
        subnet: "192.168.30.1/24".parse().expect("cidr"),
        dhcp: DhcpConfig {
            range: AddressRange {
                first: Ipv4Addr::new(192, 168, 30, 10),
                last: Ipv4Addr::new(192, 168, 30, 12),
            },
            lease_secs: 7200,
            dns: vec![Ipv4Addr::new(192, 168, 30, 1)],
            router: Some(Ipv4Addr::new(192, 168, 30, 1)),
            routes: vec!["10.0.0.0/16 via 192.168.30.1".parse().expect("route")],
        },
        offer_hold: OFFER_HOLD,
        decline_hold: DECLINE_HOLD,
        reserved: Vec::new(),
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = DhcpMessage::decode(data) else {
        return;
    };
    let mut bytes = Vec::new();
    msg.encode(&mut bytes);
    let again = DhcpMessage::decode(&bytes).expect("re-encoded message decodes");
    assert_eq!(again, msg, "decode(encode(m)) != m");

    let mut server = server();
    let now = WallTime::from_unix_secs(1_700_000_000);
    let mac = msg.client_mac().unwrap_or(MacAddr([2, 0, 0, 0, 0, 1]));
    // Twice, so REQUEST-after-state paths run too.
    for _ in 0..2 {
        if let Ok(Some(reply)) = server.handle_message(mac, &msg, now) {
            let mut out = Vec::new();
            reply
                .message
                .encode_with(&mut out, &msg.options.parameter_request_list, 548);
            DhcpMessage::decode(&out).expect("our reply decodes");
        }
    }
});
