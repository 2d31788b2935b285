//! The hub's switching decisions: learning, aging at the boundary, MAC
//! limits, flooding, hairpin, port removal and drop counters, and who may
//! take over a MAC from whom.

use std::time::Duration;

use ethergate_hub::{
    DEFAULT_MAC_AGING, Forward, FrameDrop, Hub, HubOptions, MIN_MAC_LIMIT, MacAddr, PortId,
    PortPolicy, WallTime,
};

const T0: WallTime = WallTime::from_unix_secs(1_700_000_000);

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, n])
}

fn frame(dst: MacAddr, src: MacAddr) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f
}

fn hub_with(ports: &[u64]) -> Hub {
    let mut hub = Hub::new("test", HubOptions::default(), None);
    for &p in ports {
        hub.add_port(PortId(p), PortPolicy::default())
            .expect("fresh port id");
    }
    hub
}

fn flood(hub: &mut Hub, ingress: u64, f: &[u8], now: WallTime) -> Vec<u64> {
    match hub.forward(PortId(ingress), f, now) {
        Forward::Flood(ports) => ports.map(|p| p.0).collect(),
        other => panic!("expected a flood from port {ingress}, got {other:?}"),
    }
}

fn unicast(hub: &mut Hub, ingress: u64, f: &[u8], now: WallTime) -> u64 {
    match hub.forward(PortId(ingress), f, now) {
        Forward::Unicast(p) => p.0,
        other => panic!("expected unicast from port {ingress}, got {other:?}"),
    }
}

fn dropped(hub: &mut Hub, ingress: u64, f: &[u8], now: WallTime) -> FrameDrop {
    match hub.forward(PortId(ingress), f, now) {
        Forward::Drop(r) => r,
        other => panic!("expected a drop on port {ingress}, got {other:?}"),
    }
}

#[test]
fn learns_then_unicasts() {
    let mut hub = hub_with(&[0, 1, 2, 3]);
    // Unknown destination floods to every other port, bridge included.
    assert_eq!(flood(&mut hub, 1, &frame(mac(2), mac(1)), T0), [0, 2, 3]);
    // mac(1) was learned on port 1.
    assert_eq!(unicast(&mut hub, 2, &frame(mac(1), mac(2)), T0), 1);
    assert_eq!(unicast(&mut hub, 1, &frame(mac(2), mac(1)), T0), 2);
    let c1 = hub.counters(PortId(1)).expect("port 1");
    assert_eq!((c1.frames_in, c1.frames_out), (2, 1));
    assert_eq!(c1.bytes_in, 120);
}

#[test]
fn broadcast_and_multicast_flood_excluding_ingress() {
    let mut hub = hub_with(&[0, 1, 2]);
    assert_eq!(
        flood(&mut hub, 2, &frame(MacAddr::BROADCAST, mac(1)), T0),
        [0, 1]
    );
    let ipv6_mcast = MacAddr([0x33, 0x33, 0, 0, 0, 1]);
    // Even a learned-looking multicast destination is flooded.
    assert_eq!(flood(&mut hub, 0, &frame(ipv6_mcast, mac(9)), T0), [1, 2]);
    assert_eq!(hub.counters(PortId(0)).expect("bridge").frames_out, 1);
}

#[test]
fn aging_boundary() {
    let mut hub = hub_with(&[1, 2]);
    let _ = hub.forward(PortId(1), &frame(MacAddr::BROADCAST, mac(1)), T0);
    let just_before = T0.saturating_add(DEFAULT_MAC_AGING - Duration::from_millis(1));
    assert_eq!(unicast(&mut hub, 2, &frame(mac(1), mac(2)), just_before), 1);
    // SoftEther drops an entry once updated + 600 s <= now.
    let at = T0.saturating_add(DEFAULT_MAC_AGING);
    assert_eq!(flood(&mut hub, 2, &frame(mac(1), mac(2)), at), [1]);
    assert_eq!(
        hub.expire(at),
        1,
        "mac(1) is swept, mac(2) was just refreshed"
    );
    assert_eq!(hub.mac_table().len(), 1);
}

#[test]
fn traffic_refreshes_entries() {
    let mut hub = hub_with(&[1, 2]);
    let half = DEFAULT_MAC_AGING / 2;
    let _ = hub.forward(PortId(1), &frame(MacAddr::BROADCAST, mac(1)), T0);
    let t1 = T0.saturating_add(half);
    let _ = hub.forward(PortId(1), &frame(MacAddr::BROADCAST, mac(1)), t1);
    let t2 = t1.saturating_add(half + Duration::from_secs(1));
    assert_eq!(hub.expire(t2), 0);
    assert_eq!(
        unicast(
            &mut hub,
            2,
            &frame(mac(1), mac(2)),
            T0.saturating_add(DEFAULT_MAC_AGING)
        ),
        1
    );
}

#[test]
fn mac_limit_drops_and_counts() {
    let mut hub = Hub::new("test", HubOptions::default(), None);
    hub.add_port(PortId(0), PortPolicy::default())
        .expect("bridge");
    hub.add_port(
        PortId(1),
        PortPolicy {
            max_macs: Some(MIN_MAC_LIMIT),
            ..PortPolicy::default()
        },
    )
    .expect("session");
    for n in 1..=MIN_MAC_LIMIT as u8 {
        let _ = flood(&mut hub, 1, &frame(MacAddr::BROADCAST, mac(n)), T0);
    }
    let extra = frame(MacAddr::BROADCAST, mac(100));
    assert_eq!(dropped(&mut hub, 1, &extra, T0), FrameDrop::MacLimit);
    // Known MACs still pass.
    let _ = flood(&mut hub, 1, &frame(MacAddr::BROADCAST, mac(1)), T0);
    let c = hub.counters(PortId(1)).expect("session");
    assert_eq!(c.dropped(FrameDrop::MacLimit), 1);
    assert_eq!(c.frames_in, u64::from(MIN_MAC_LIMIT) + 1);
    // Once the old MACs age out, a new one fits.
    let later = T0.saturating_add(DEFAULT_MAC_AGING);
    let _ = flood(&mut hub, 1, &extra, later);
}

#[test]
fn mac_limit_below_softether_minimum_is_raised() {
    let mut hub = Hub::new("test", HubOptions::default(), None);
    hub.add_port(
        PortId(1),
        PortPolicy {
            max_macs: Some(1),
            ..PortPolicy::default()
        },
    )
    .expect("port");
    hub.add_port(PortId(2), PortPolicy::default())
        .expect("port");
    for n in 1..=3 {
        let _ = flood(&mut hub, 1, &frame(MacAddr::BROADCAST, mac(n)), T0);
    }
    assert_eq!(
        dropped(&mut hub, 1, &frame(MacAddr::BROADCAST, mac(4)), T0),
        FrameDrop::MacLimit
    );
}

#[test]
fn table_cap_drops_new_macs() {
    let opts = HubOptions {
        max_mac_entries: 2,
        ..HubOptions::default()
    };
    let mut hub = Hub::new("test", opts, None);
    hub.add_port(PortId(0), PortPolicy::default())
        .expect("port");
    hub.add_port(PortId(1), PortPolicy::default())
        .expect("port");
    let _ = flood(&mut hub, 1, &frame(MacAddr::BROADCAST, mac(1)), T0);
    let _ = flood(&mut hub, 1, &frame(MacAddr::BROADCAST, mac(2)), T0);
    assert_eq!(
        dropped(&mut hub, 1, &frame(MacAddr::BROADCAST, mac(3)), T0),
        FrameDrop::MacTableFull
    );
}

/// A session port of hub user `owner` with the given MAC limit.
fn session(owner: u64, max_macs: Option<u32>) -> PortPolicy {
    PortPolicy {
        max_macs,
        owner: Some(owner),
        ..PortPolicy::default()
    }
}

/// Every entry of the table, sorted, for "nothing changed" checks.
fn table(hub: &Hub) -> Vec<(MacAddr, PortId, WallTime)> {
    let mut t: Vec<_> = hub.mac_table().iter().collect();
    t.sort();
    t
}

#[test]
fn station_moves_between_ports_of_the_same_user() {
    let mut hub = Hub::new("test", HubOptions::default(), None);
    for (port, owner) in [(1, 7), (2, 7), (3, 8)] {
        hub.add_port(PortId(port), session(owner, None))
            .expect("port");
    }
    let _ = hub.forward(PortId(1), &frame(MacAddr::BROADCAST, mac(1)), T0);
    // The user reconnected: its new port takes the MAC at once, although
    // the old session is still attached (kept for resumption).
    let _ = flood(&mut hub, 2, &frame(MacAddr::BROADCAST, mac(1)), T0);
    assert_eq!(unicast(&mut hub, 3, &frame(mac(1), mac(3)), T0), 2);
    assert_eq!(hub.mac_table().port_count(PortId(1)), 0);
}

#[test]
fn a_session_cannot_take_another_users_mac() {
    let mut hub = Hub::new("test", HubOptions::default(), None);
    hub.add_port(PortId::BRIDGE, PortPolicy::default())
        .expect("bridge");
    hub.add_port(PortId(1), session(1, Some(16))).expect("port");
    hub.add_port(PortId(2), session(2, Some(16))).expect("port");
    let _ = flood(&mut hub, 1, &frame(MacAddr::BROADCAST, mac(1)), T0);
    let before = table(&hub);
    let later = T0.saturating_add(Duration::from_secs(1));
    let stolen = frame(MacAddr::BROADCAST, mac(1));
    assert_eq!(dropped(&mut hub, 2, &stolen, later), FrameDrop::MacSpoof);
    // Not even refreshed: the table is exactly as it was.
    assert_eq!(table(&hub), before);
    assert_eq!(unicast(&mut hub, 0, &frame(mac(1), mac(9)), later), 1);
    let c = hub.counters(PortId(2)).expect("port 2");
    assert_eq!((c.dropped(FrameDrop::MacSpoof), c.frames_in), (1, 0));
    // Default policies (no owner) share with nobody either.
    let mut plain = hub_with(&[1, 2]);
    let _ = plain.forward(PortId(1), &frame(MacAddr::BROADCAST, mac(1)), T0);
    assert_eq!(dropped(&mut plain, 2, &stolen, T0), FrameDrop::MacSpoof);
}

#[test]
fn a_session_cannot_take_the_bridges_macs() {
    let mut hub = Hub::new("test", HubOptions::default(), None);
    hub.add_port(PortId::BRIDGE, PortPolicy::default())
        .expect("bridge");
    hub.add_port(PortId(1), session(1, Some(16))).expect("port");
    hub.add_port(PortId(2), session(2, Some(16))).expect("port");
    let tap = MacAddr::local_from_seed(b"test");
    hub.pin_mac(tap, PortId::BRIDGE, T0)
        .expect("bridge attached");
    // A LAN host behind the bridge, learned the usual way.
    let _ = flood(&mut hub, 0, &frame(MacAddr::BROADCAST, mac(50)), T0);
    let before = table(&hub);
    for victim in [tap, mac(50)] {
        let f = frame(MacAddr::BROADCAST, victim);
        assert_eq!(dropped(&mut hub, 1, &f, T0), FrameDrop::MacSpoof);
    }
    assert_eq!(table(&hub), before);
    assert_eq!(
        hub.counters(PortId(1))
            .expect("port 1")
            .dropped(FrameDrop::MacSpoof),
        2
    );
    // The tap's MAC never ages, even when the kernel stays silent.
    let much_later = T0.saturating_add(DEFAULT_MAC_AGING * 10);
    assert_eq!(hub.expire(much_later), 1, "only the LAN host ages out");
    assert_eq!(unicast(&mut hub, 2, &frame(tap, mac(2)), much_later), 0);
    assert_eq!(
        dropped(&mut hub, 1, &frame(MacAddr::BROADCAST, tap), much_later),
        FrameDrop::MacSpoof
    );
    // The aged LAN host's MAC is free again.
    let _ = flood(&mut hub, 1, &frame(MacAddr::BROADCAST, mac(50)), much_later);
    assert!(
        hub.pin_mac(tap, PortId(9), T0).is_err(),
        "port 9 is not attached"
    );
}

#[test]
fn the_bridge_takes_over_a_mac_a_session_used_first() {
    let mut hub = Hub::new("test", HubOptions::default(), None);
    hub.add_port(PortId::BRIDGE, PortPolicy::default())
        .expect("bridge");
    hub.add_port(PortId(1), session(1, Some(16))).expect("port");
    let _ = flood(&mut hub, 1, &frame(MacAddr::BROADCAST, mac(1)), T0);
    // The LAN host that really owns mac(1) speaks: the LAN wins.
    let _ = flood(&mut hub, 0, &frame(MacAddr::BROADCAST, mac(1)), T0);
    assert_eq!(hub.mac_table().lookup(&mac(1), T0), Some(PortId::BRIDGE));
    assert_eq!(
        dropped(&mut hub, 1, &frame(MacAddr::BROADCAST, mac(1)), T0),
        FrameDrop::MacSpoof
    );
}

#[test]
fn a_detached_or_silent_port_frees_its_macs() {
    let mut hub = Hub::new("test", HubOptions::default(), None);
    for (port, owner) in [(1, 1), (2, 2), (3, 3)] {
        hub.add_port(PortId(port), session(owner, Some(16)))
            .expect("port");
    }
    let _ = flood(&mut hub, 1, &frame(MacAddr::BROADCAST, mac(1)), T0);
    let _ = flood(&mut hub, 2, &frame(MacAddr::BROADCAST, mac(2)), T0);
    // Port 1's session was reaped: its MAC may be used by anyone.
    hub.remove_port(PortId(1)).expect("attached");
    let _ = flood(&mut hub, 3, &frame(MacAddr::BROADCAST, mac(1)), T0);
    assert_eq!(hub.mac_table().lookup(&mac(1), T0), Some(PortId(3)));
    // Port 2 went silent for the aging time: its entry is stale, and a
    // stale entry does not protect a MAC (swept or not).
    let aged = T0.saturating_add(DEFAULT_MAC_AGING);
    let _ = flood(&mut hub, 3, &frame(MacAddr::BROADCAST, mac(2)), aged);
    assert_eq!(hub.mac_table().lookup(&mac(2), aged), Some(PortId(3)));
    assert_eq!(hub.mac_table().port_count(PortId(2)), 0);
}

#[test]
fn a_session_sending_from_300_macs_gets_at_most_its_max_mac() {
    let mut hub = Hub::new("test", HubOptions::default(), None);
    hub.add_port(PortId::BRIDGE, PortPolicy::default())
        .expect("bridge");
    hub.add_port(PortId(1), session(1, Some(16))).expect("port");
    hub.add_port(PortId(2), session(2, Some(16))).expect("port");
    let mut flooded = 0;
    for n in 0..300u16 {
        let [hi, lo] = n.to_be_bytes();
        let src = MacAddr([0x02, 0x77, 0, 0, hi, lo]);
        if let Forward::Flood(_) = hub.forward(PortId(1), &frame(MacAddr::BROADCAST, src), T0) {
            flooded += 1;
        }
    }
    assert_eq!(flooded, 16);
    assert_eq!(hub.mac_table().port_count(PortId(1)), 16);
    assert_eq!(hub.mac_table().len(), 16);
    let c = hub.counters(PortId(1)).expect("port 1");
    assert_eq!(c.dropped(FrameDrop::MacLimit), 300 - 16);
    // Another session is not affected.
    let _ = flood(&mut hub, 2, &frame(MacAddr::BROADCAST, mac(2)), T0);
    assert_eq!(unicast(&mut hub, 0, &frame(mac(2), mac(90)), T0), 2);
}

#[test]
fn drop_reasons_index_their_counters() {
    for (i, reason) in FrameDrop::ALL.iter().enumerate() {
        assert_eq!(reason.index(), i, "{reason:?}");
    }
    let names: std::collections::HashSet<_> = FrameDrop::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), FrameDrop::ALL.len(), "names are unique");
}

#[test]
fn hairpin_is_dropped() {
    let mut hub = hub_with(&[1, 2]);
    let _ = hub.forward(PortId(1), &frame(MacAddr::BROADCAST, mac(1)), T0);
    assert_eq!(
        dropped(&mut hub, 1, &frame(mac(1), mac(5)), T0),
        FrameDrop::Hairpin
    );
}

#[test]
fn malformed_frames_are_dropped_with_reasons() {
    let mut hub = hub_with(&[1, 2]);
    assert_eq!(dropped(&mut hub, 1, &[0u8; 13], T0), FrameDrop::Runt);
    let mut big = frame(MacAddr::BROADCAST, mac(1));
    big.resize(ethergate_hub::MAX_FRAME_LEN + 1, 0);
    assert_eq!(dropped(&mut hub, 1, &big, T0), FrameDrop::Oversize);
    let mut max = frame(MacAddr::BROADCAST, mac(1));
    max.resize(ethergate_hub::MAX_FRAME_LEN, 0);
    let _ = flood(&mut hub, 1, &max, T0);
    assert_eq!(
        dropped(&mut hub, 1, &frame(mac(2), MacAddr::BROADCAST), T0),
        FrameDrop::BadSourceMac
    );
    assert_eq!(
        dropped(
            &mut hub,
            1,
            &frame(mac(2), MacAddr([1, 0, 0x5e, 0, 0, 1])),
            T0
        ),
        FrameDrop::BadSourceMac
    );
    assert_eq!(
        dropped(&mut hub, 9, &frame(mac(2), mac(1)), T0),
        FrameDrop::UnknownPort
    );
    let c = hub.counters(PortId(1)).expect("port 1");
    assert_eq!(c.dropped_total(), 4);
    assert_eq!(hub.unknown_port_drops(), 1);
}

#[test]
fn removing_a_port_forgets_its_macs() {
    let mut hub = hub_with(&[1, 2, 3]);
    let _ = hub.forward(PortId(1), &frame(MacAddr::BROADCAST, mac(1)), T0);
    let _ = hub.forward(PortId(2), &frame(MacAddr::BROADCAST, mac(2)), T0);
    let last = hub.remove_port(PortId(1)).expect("attached");
    assert_eq!(last.frames_in, 1);
    assert_eq!(hub.mac_table().len(), 1);
    // mac(1) is unknown again: flood, and port 1 is gone from the list.
    assert_eq!(flood(&mut hub, 3, &frame(mac(1), mac(3)), T0), [2]);
    assert!(hub.remove_port(PortId(1)).is_err());
    assert!(hub.add_port(PortId(2), PortPolicy::default()).is_err());
}

#[test]
fn hubs_are_isolated() {
    let mut a = hub_with(&[1, 2]);
    let mut b = hub_with(&[1, 2]);
    let _ = a.forward(PortId(1), &frame(MacAddr::BROADCAST, mac(1)), T0);
    assert_eq!(unicast(&mut a, 2, &frame(mac(1), mac(2)), T0), 1);
    // Hub b never saw mac(1).
    assert_eq!(flood(&mut b, 2, &frame(mac(1), mac(2)), T0), [1]);
}
