//! The maps userspace opens, by the names the eBPF programs give them (the
//! Rust statics in ebpf/programs). One list, checked against the built
//! object by the test below: a renamed static fails the build's tests, not
//! a start on some machine.

pub const COUNTERS: &str = "COUNTERS";
pub const PARSE_ISSUES: &str = "PARSE_ISSUES";
pub const NAT_EVENTS: &str = "NAT_EVENTS";
pub const NAT_DROPS: &str = "NAT_DROPS";
pub const NAT_CONFIG: &str = "NAT_CONFIG";
pub const NAT_OUT: &str = "NAT_OUT";
pub const NAT_IN: &str = "NAT_IN";
pub const DNAT_OUT: &str = "DNAT_OUT";
pub const DNAT_IN: &str = "DNAT_IN";
pub const FRAGMENTS: &str = "FRAGMENTS";
pub const SOURCE_FLOWS: &str = "SOURCE_FLOWS";
pub const ACTIVE_FLOWS: &str = "ACTIVE_FLOWS";
pub const ROUTE_GENERATION: &str = "ROUTE_GENERATION";
pub const TC_INTERFACES: &str = "TC_INTERFACES";
/// The benchmark's generator and sink (`loadgen`, behind `test-hooks`).
#[cfg(feature = "test-hooks")]
pub const SINK_COUNT: &str = "SINK_COUNT";
#[cfg(feature = "test-hooks")]
pub const LOADGEN_FLOWS: &str = "LOADGEN_FLOWS";
#[cfg(feature = "test-hooks")]
pub const LOADGEN_HEADERS: &str = "LOADGEN_HEADERS";
#[cfg(feature = "test-hooks")]
pub const FLOOR_FLOWS: &str = "FLOOR_FLOWS";

/// The two rule sets (the programs read one while userspace fills the
/// other, rules.rs).
pub const SNAT_RULES: [&str; 2] = ["SNAT_RULES_0", "SNAT_RULES_1"];
pub const DNAT_RULES: [&str; 2] = ["DNAT_RULES_0", "DNAT_RULES_1"];

/// The flow maps, each `max_flows` entries.
pub const FLOW_TABLES: [&str; 4] = [NAT_OUT, NAT_IN, DNAT_OUT, DNAT_IN];

#[cfg(test)]
pub const ALL: [&str; 22] = [
    SNAT_RULES[0],
    SNAT_RULES[1],
    DNAT_RULES[0],
    DNAT_RULES[1],
    COUNTERS,
    PARSE_ISSUES,
    NAT_EVENTS,
    NAT_DROPS,
    NAT_CONFIG,
    NAT_OUT,
    NAT_IN,
    DNAT_OUT,
    DNAT_IN,
    FRAGMENTS,
    SOURCE_FLOWS,
    ACTIVE_FLOWS,
    ROUTE_GENERATION,
    TC_INTERFACES,
    SINK_COUNT,
    LOADGEN_FLOWS,
    LOADGEN_HEADERS,
    FLOOR_FLOWS,
];

#[cfg(test)]
mod tests {
    #[test]
    fn every_name_is_a_map_of_the_built_object() {
        let object = aya_obj::Object::parse(crate::PROGRAMS_OBJECT).expect("the object parses");
        for name in super::ALL {
            assert!(
                object.maps.contains_key(name),
                "{name} is not a map of ebpf/programs (maps: {:?})",
                object.maps.keys().collect::<Vec<_>>()
            );
        }
    }
}
