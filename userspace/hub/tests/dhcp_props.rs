//! Property tests of the DHCP codec: it never panics on arbitrary bytes,
//! every truncation of a valid message is an error, and typed messages
//! survive encode → decode.

use std::net::Ipv4Addr;

use ethergate_hub::config::ClasslessRoute;
use ethergate_hub::dhcp::{DhcpMessage, DhcpOptions, MessageType, classify};
use proptest::prelude::*;

fn addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from_bits)
}

fn route() -> impl Strategy<Value = ClasslessRoute> {
    (any::<u32>(), 0u8..=32, addr()).prop_map(|(net, len, gw)| {
        let cidr = format!("{}/{len}", Ipv4Addr::from_bits(net))
            .parse::<ethergate_hub::config::Ipv4Cidr>()
            .expect("valid cidr")
            .trunc();
        ClasslessRoute {
            destination: cidr,
            gateway: gw,
        }
    })
}

fn message_type() -> impl Strategy<Value = MessageType> {
    (1u8..=8).prop_map(|c| MessageType::from_code(c).expect("1..=8 are types"))
}

prop_compose! {
    fn options()(
        message_type in proptest::option::of(message_type()),
        subnet_mask in proptest::option::of(addr()),
        routers in proptest::collection::vec(addr(), 0..4),
        dns in proptest::collection::vec(addr(), 0..4),
        requested_ip in proptest::option::of(addr()),
        lease_secs in proptest::option::of(any::<u32>()),
        server_id in proptest::option::of(addr()),
        parameter_request_list in proptest::collection::vec(1u8..=254, 0..20),
        max_message_size in proptest::option::of(any::<u16>()),
        client_id in proptest::option::of(proptest::collection::vec(any::<u8>(), 2..40)),
        routes in proptest::collection::vec(route(), 0..70),
        // Codes the typed struct does not claim (and not pad/end).
        other in proptest::collection::vec(
            (prop_oneof![Just(60u8), Just(81u8), Just(125u8), Just(200u8)],
             proptest::collection::vec(any::<u8>(), 0..300)),
            0..3),
    ) -> DhcpOptions {
        let mut other = other;
        // One instance per code: repeats would concatenate on decode.
        other.sort_by_key(|(c, _)| *c);
        other.dedup_by_key(|(c, _)| *c);
        DhcpOptions {
            message_type, subnet_mask, routers, dns, requested_ip, lease_secs, server_id,
            parameter_request_list, max_message_size, client_id,
            classless_routes: routes.clone(), ms_classless_routes: routes, other,
            ..DhcpOptions::default()
        }
    }
}

prop_compose! {
    fn message()(
        op in 1u8..=2, xid in any::<u32>(), secs in any::<u16>(), flags in any::<u16>(),
        ciaddr in addr(), yiaddr in addr(), chaddr in any::<[u8; 16]>(),
        options in options(),
    ) -> DhcpMessage {
        DhcpMessage { op, xid, secs, flags, ciaddr, yiaddr, chaddr, options, ..DhcpMessage::default() }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let _ = DhcpMessage::decode(&bytes);
        let _ = classify(&bytes);
    }

    #[test]
    fn decode_never_panics_on_garbage_options(
        tail in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = Vec::new();
        DhcpMessage::default().encode(&mut bytes);
        bytes.pop();
        bytes.extend_from_slice(&tail);
        let _ = DhcpMessage::decode(&bytes);
    }

    #[test]
    fn round_trip(msg in message()) {
        let mut bytes = Vec::new();
        msg.encode(&mut bytes);
        prop_assert_eq!(DhcpMessage::decode(&bytes), Ok(msg));
    }

    #[test]
    fn every_truncation_is_an_error(msg in message()) {
        let mut bytes = Vec::new();
        msg.encode(&mut bytes);
        for cut in 0..bytes.len() {
            prop_assert!(
                DhcpMessage::decode(&bytes[..cut]).is_err(),
                "a cut at {} of {} bytes decoded", cut, bytes.len()
            );
        }
    }

    #[test]
    fn budget_is_respected(msg in message(), budget in 300usize..1472) {
        let mut bytes = Vec::new();
        msg.encode_with(&mut bytes, &msg.options.parameter_request_list, budget);
        // Only the mandatory 53 and 54 (≤ 9 bytes) may go past the budget.
        prop_assert!(bytes.len() <= budget.max(240 + 9 + 1));
        prop_assert!(DhcpMessage::decode(&bytes).is_ok());
    }
}
