//! Property tests of the hub's layer-2 policy: whatever frames arrive, in
//! whatever order, with ports coming and going and time passing,
//! * no session port ever owns more MACs than its limit,
//! * a session never takes a MAC from the bridge or from a live port of
//!   another user — such a frame is a `MacSpoof` drop and leaves the whole
//!   table untouched,
//! * the bridge's pinned MAC stays on the bridge,
//! * the table's per-port counts match its entries.

use std::collections::HashMap;
use std::time::Duration;

use ethergate_hub::{
    Forward, FrameDrop, Hub, HubOptions, MIN_MAC_LIMIT, MacAddr, PortId, PortPolicy, WallTime,
};
use proptest::prelude::*;

const T0: WallTime = WallTime::from_unix_secs(1_700_000_000);

/// Session ports 1..=4; ports 1 and 2 belong to the same user.
const OWNERS: [u64; 4] = [10, 10, 20, 30];

fn tap() -> MacAddr {
    MacAddr::local_from_seed(b"props")
}

/// Index 0 is the tap's pinned MAC; the rest a small pool so that ports
/// collide on addresses often.
fn mac(n: u8) -> MacAddr {
    if n == 0 {
        tap()
    } else {
        MacAddr([0x02, 0x55, 0, 0, 0, n])
    }
}

#[derive(Debug, Clone)]
enum Op {
    Frame {
        port: u64,
        src: u8,
        dst: u8,
    },
    /// Detach the session port, then attach a fresh one with the same id
    /// (as if a new session got that slot; ids are never reused in the
    /// server, but the hub must not care).
    Reattach(u64),
    Wait(u64),
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u64..=4, 0u8..24, 0u8..24).prop_map(|(port, src, dst)| Op::Frame { port, src, dst }),
        1 => (1u64..=4).prop_map(Op::Reattach),
        1 => (0u64..700).prop_map(Op::Wait),
        1 => Just(Op::Expire),
    ]
}

fn frame(dst: MacAddr, src: MacAddr) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f
}

fn policy(port: u64, limits: &[Option<u32>; 4]) -> PortPolicy {
    let i = (port - 1) as usize;
    PortPolicy {
        max_macs: limits[i],
        owner: Some(OWNERS[i]),
        ..PortPolicy::default()
    }
}

fn snapshot(hub: &Hub) -> Vec<(MacAddr, PortId, WallTime)> {
    let mut t: Vec<_> = hub.mac_table().iter().collect();
    t.sort();
    t
}

fn check_table(hub: &Hub, limits: &[Option<u32>; 4], now: WallTime) -> Result<(), TestCaseError> {
    let mut counted: HashMap<PortId, u32> = HashMap::new();
    for (_, port, _) in hub.mac_table().iter() {
        *counted.entry(port).or_default() += 1;
    }
    for port in 0..=4u64 {
        let p = PortId(port);
        let n = counted.get(&p).copied().unwrap_or(0);
        prop_assert_eq!(hub.mac_table().port_count(p), n, "count of {:?}", p);
        if port > 0
            && let Some(limit) = limits[(port - 1) as usize]
        {
            prop_assert!(
                n <= limit.max(MIN_MAC_LIMIT),
                "port {} owns {} MACs, limit {}",
                port,
                n,
                limit
            );
        }
    }
    prop_assert_eq!(hub.mac_table().lookup(&tap(), now), Some(PortId::BRIDGE));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn layer2_policy_holds_for_any_frame_sequence(
        limits in proptest::array::uniform4(proptest::option::of(0u32..8)),
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let mut hub = Hub::new("props", HubOptions::default(), None);
        hub.add_port(PortId::BRIDGE, PortPolicy::default()).expect("bridge");
        for port in 1..=4 {
            hub.add_port(PortId(port), policy(port, &limits)).expect("session");
        }
        hub.pin_mac(tap(), PortId::BRIDGE, T0).expect("bridge attached");
        let mut now = T0;
        for op in ops {
            match op {
                Op::Frame { port, src, dst } => {
                    let (src, dst) = (mac(src), mac(dst));
                    let before = snapshot(&hub);
                    let holder = hub.mac_table().lookup(&src, now);
                    let protected = port != 0
                        && holder.is_some_and(|h| {
                            h != PortId(port)
                                && (h.is_bridge()
                                    || OWNERS[(h.0 - 1) as usize] != OWNERS[(port - 1) as usize])
                        });
                    let result = match hub.forward(PortId(port), &frame(dst, src), now) {
                        Forward::Drop(reason) => Some(reason),
                        _ => None,
                    };
                    if protected {
                        prop_assert_eq!(result, Some(FrameDrop::MacSpoof));
                        prop_assert_eq!(snapshot(&hub), before);
                    }
                    if result == Some(FrameDrop::MacSpoof) {
                        prop_assert!(protected, "MacSpoof only for a protected MAC");
                    }
                    if result.is_none() {
                        prop_assert_eq!(hub.mac_table().lookup(&src, now), Some(PortId(port)));
                    }
                }
                Op::Reattach(port) => {
                    hub.remove_port(PortId(port)).expect("attached");
                    prop_assert_eq!(hub.mac_table().port_count(PortId(port)), 0);
                    hub.add_port(PortId(port), policy(port, &limits)).expect("detached");
                }
                Op::Wait(secs) => now = now.saturating_add(Duration::from_secs(secs)),
                Op::Expire => {
                    hub.expire(now);
                }
            }
            check_table(&hub, &limits, now)?;
        }
    }
}
