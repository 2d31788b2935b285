//! `[nat]` rules → rule-map entries, and the atomic rule swap.
//!
//! Invariant: the programs read `NAT_CONFIG.rule_set` once per packet and
//! use that set's maps (`SNAT_RULES_<n>`, `DNAT_RULES_<n>`). A swap clears
//! and fills the *idle* set, then writes `NAT_CONFIG` once with the other
//! index, so a packet sees the old rules or the new ones, never a mix, and
//! the flow maps are never touched: established flows keep their
//! translation across a reload, new flows follow the new rules.

use crate::map_names;
use std::net::Ipv4Addr;

use aya::{
    Ebpf,
    maps::{Array, LpmTrie, MapData, lpm_trie::Key},
};
use ethergate_common::{
    DnatTarget, NatConfig, SnatAddresses,
    dnat::{DNAT_KEY_FIXED_BITS, dnat_rule_key},
    nat::MAX_SNAT_ADDRESSES,
    parse::{IPPROTO_TCP, IPPROTO_UDP},
};
use ethergate_config::{L4Protocol, Nat, SnatTarget};

use crate::{DataplaneError, map_error, map_mut, nat::interface_ipv4};

const SNAT_RULES_MAPS: [&str; 2] = map_names::SNAT_RULES;
const DNAT_RULES_MAPS: [&str; 2] = map_names::DNAT_RULES;

/// One `SNAT_RULES_<n>` entry: source prefix → public addresses.
pub(crate) type SnatEntry = (Key<[u8; 4]>, SnatAddresses);
/// One `DNAT_RULES_<n>` entry: (protocol, port, source prefix) → target.
pub(crate) type DnatEntry = (Key<[u8; 8]>, DnatTarget);

/// SNAT rules resolved to map entries (masquerade = the uplink's address
/// now).
pub(crate) fn snat_entries(nat: &Nat) -> Result<Vec<SnatEntry>, DataplaneError> {
    let mut entries = Vec::with_capacity(nat.snat.len());
    for rule in &nat.snat {
        let addrs: Vec<Ipv4Addr> = match &rule.to {
            SnatTarget::Masquerade => vec![interface_ipv4(nat.uplink.as_str())?],
            SnatTarget::Addresses(addrs) => addrs.clone(),
        };
        if addrs.is_empty() || addrs.len() > MAX_SNAT_ADDRESSES {
            return Err(DataplaneError::SnatAddresses {
                source_prefix: rule.source.to_string(),
                count: addrs.len(),
            });
        }
        let mut value = SnatAddresses {
            count: addrs.len() as u32,
            ..SnatAddresses::default()
        };
        for (slot, addr) in value.addrs.iter_mut().zip(&addrs) {
            *slot = u32::from(*addr);
        }
        let source = rule.source.trunc();
        entries.push((
            Key::new(u32::from(source.prefix_len()), source.network().octets()),
            value,
        ));
    }
    Ok(entries)
}

/// DNAT rules as trie entries. The trie matches (protocol, port, source
/// prefix); the destination condition is checked after the lookup, so two
/// rules that differ only in their destination cannot both be expressed
/// and are refused with a clear error.
pub(crate) fn dnat_entries(nat: &Nat) -> Result<Vec<DnatEntry>, DataplaneError> {
    let mut entries: Vec<DnatEntry> = Vec::with_capacity(nat.dnat.len());
    for rule in &nat.dnat {
        let protocol = match rule.protocol {
            L4Protocol::Tcp => IPPROTO_TCP,
            L4Protocol::Udp => IPPROTO_UDP,
        };
        let source = rule.source.trunc();
        let key = Key::new(
            DNAT_KEY_FIXED_BITS + u32::from(source.prefix_len()),
            dnat_rule_key(protocol, rule.port, u32::from(source.network())),
        );
        if entries
            .iter()
            .any(|(k, _)| k.prefix_len() == key.prefix_len() && k.data() == key.data())
        {
            return Err(DataplaneError::DnatOverlap {
                source_prefix: rule.source.to_string(),
                protocol: rule.protocol.to_string(),
                port: rule.port,
            });
        }
        let destination = rule.destination.trunc();
        let target = DnatTarget {
            dst_network: u32::from(destination.network()),
            dst_mask: destination.mask_bits(),
            to_addr: u32::from(*rule.to.ip()),
            to_port: rule.to.port(),
            pad: 0,
        };
        entries.push((key, target));
    }
    Ok(entries)
}

/// The live config, or the all-zero one (NAT off, set 0 live) before the
/// first write.
pub(crate) fn current_config(ebpf: &mut Ebpf) -> Result<NatConfig, DataplaneError> {
    let settings: Array<&mut MapData, NatConfig> = map_mut(ebpf, map_names::NAT_CONFIG)?;
    settings
        .get(&0, 0)
        .map_err(|e| map_error(map_names::NAT_CONFIG, e))
}

pub(crate) fn write_config(ebpf: &mut Ebpf, config: NatConfig) -> Result<(), DataplaneError> {
    let mut settings: Array<&mut MapData, NatConfig> = map_mut(ebpf, map_names::NAT_CONFIG)?;
    settings
        .set(0, config, 0)
        .map_err(|e| map_error(map_names::NAT_CONFIG, e))
}

/// Fills the idle rule set with `snat` and `dnat`, then makes it live
/// together with `next` (uplink, port range). Returns the live set's index.
pub(crate) fn swap(
    ebpf: &mut Ebpf,
    snat: &[SnatEntry],
    dnat: &[DnatEntry],
    mut next: NatConfig,
) -> Result<u32, DataplaneError> {
    let live = current_config(ebpf)?;
    // Before the first write nothing is live: fill set 0, no flip needed
    // to be consistent, but flipping keeps one code path.
    let idle = if live.uplink_ifindex == 0 {
        0
    } else {
        1 - (live.rule_set & 1)
    };
    fill(ebpf, SNAT_RULES_MAPS[idle as usize], snat)?;
    fill(ebpf, DNAT_RULES_MAPS[idle as usize], dnat)?;
    next.rule_set = idle;
    write_config(ebpf, next)?;
    Ok(idle)
}

/// Makes `map` hold exactly `entries` (it is idle: no program reads it).
fn fill<K: aya::Pod, V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    entries: &[(Key<K>, V)],
) -> Result<(), DataplaneError> {
    let mut trie: LpmTrie<&mut MapData, K, V> = map_mut(ebpf, name)?;
    let old: Vec<Key<K>> = trie.keys().filter_map(Result::ok).collect();
    for key in &old {
        trie.remove(key).map_err(|e| map_error(name, e))?;
    }
    for (key, value) in entries {
        trie.insert(key, value, 0).map_err(|e| map_error(name, e))?;
    }
    Ok(())
}
