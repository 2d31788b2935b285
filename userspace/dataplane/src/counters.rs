//! Reading the per-CPU counter maps into a plain snapshot.
//!
//! Invariant: a snapshot holds every slot of every CPU, so totals are exact
//! sums and nothing is lost to sampling; slots are indexed by the shared
//! enums of `ethergate-common`, never by bare numbers.

use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray},
};
use ethergate_common::{
    DropReason, NatEvent, PacketCounter, ParseIssue, ProtoClass, Verdict,
    counters::{COUNTER_SLOTS, counter_index},
};

use crate::{DataplaneError, map_names};

/// Counters of the uplink program at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// `per_cpu[cpu][counter_index(class, verdict)]`.
    pub per_cpu: Vec<Vec<PacketCounter>>,
    /// `parse_issues[cpu][issue as usize]`.
    pub parse_issues: Vec<Vec<u64>>,
    /// `nat_events[cpu][event as usize]`, from every program doing NAT.
    pub nat_events: Vec<Vec<u64>>,
    /// `nat_drops[cpu][reason as usize]`.
    pub nat_drops: Vec<Vec<u64>>,
}

impl CounterSnapshot {
    /// Frames and bytes of one (class, verdict) pair over all CPUs.
    pub fn total(&self, class: ProtoClass, verdict: Verdict) -> PacketCounter {
        let index = counter_index(class, verdict) as usize;
        self.per_cpu.iter().filter_map(|cpu| cpu.get(index)).fold(
            PacketCounter::default(),
            |acc, c| PacketCounter {
                packets: acc.packets + c.packets,
                bytes: acc.bytes + c.bytes,
            },
        )
    }

    /// Frames of one class over all verdicts and CPUs.
    pub fn class_packets(&self, class: ProtoClass) -> u64 {
        Verdict::ALL
            .iter()
            .map(|&v| self.total(class, v).packets)
            .sum()
    }

    /// Every frame the program saw.
    pub fn all_packets(&self) -> u64 {
        ProtoClass::ALL.iter().map(|&c| self.class_packets(c)).sum()
    }

    pub fn parse_issue(&self, issue: ParseIssue) -> u64 {
        self.parse_issues
            .iter()
            .filter_map(|cpu| cpu.get(issue as usize))
            .sum()
    }

    pub fn nat_event(&self, event: NatEvent) -> u64 {
        self.nat_events
            .iter()
            .filter_map(|cpu| cpu.get(event as usize))
            .sum()
    }

    pub fn nat_drop(&self, reason: DropReason) -> u64 {
        self.nat_drops
            .iter()
            .filter_map(|cpu| cpu.get(reason as usize))
            .sum()
    }

    /// Counter growth since `earlier` (saturating: counters only grow while
    /// the program stays loaded).
    pub fn since(&self, earlier: &CounterSnapshot) -> CounterSnapshot {
        CounterSnapshot {
            per_cpu: grid_delta(&self.per_cpu, &earlier.per_cpu, |now, before| {
                PacketCounter {
                    packets: now.packets.saturating_sub(before.packets),
                    bytes: now.bytes.saturating_sub(before.bytes),
                }
            }),
            parse_issues: grid_delta(&self.parse_issues, &earlier.parse_issues, |now, before| {
                now.saturating_sub(before)
            }),
            nat_events: grid_delta(&self.nat_events, &earlier.nat_events, u64::saturating_sub),
            nat_drops: grid_delta(&self.nat_drops, &earlier.nat_drops, u64::saturating_sub),
        }
    }
}

/// `now[cpu][slot] - before[cpu][slot]`, a missing `before` cell counting
/// as zero.
fn grid_delta<T: Copy + Default>(
    now: &[Vec<T>],
    before: &[Vec<T>],
    minus: impl Fn(T, T) -> T,
) -> Vec<Vec<T>> {
    now.iter()
        .enumerate()
        .map(|(cpu, slots)| {
            slots
                .iter()
                .enumerate()
                .map(|(i, &value)| {
                    let old = before
                        .get(cpu)
                        .and_then(|s| s.get(i))
                        .copied()
                        .unwrap_or_default();
                    minus(value, old)
                })
                .collect()
        })
        .collect()
}

pub(crate) fn read(ebpf: &Ebpf) -> Result<CounterSnapshot, DataplaneError> {
    let counters: PerCpuArray<&MapData, PacketCounter> = per_cpu_array(ebpf, map_names::COUNTERS)?;
    let issues: PerCpuArray<&MapData, u64> = per_cpu_array(ebpf, map_names::PARSE_ISSUES)?;
    let cpus = aya::util::nr_cpus().map_err(|(_, source)| DataplaneError::CpuCount(source))?;
    let mut per_cpu = vec![vec![PacketCounter::default(); COUNTER_SLOTS as usize]; cpus];
    for slot in 0..COUNTER_SLOTS {
        let values = counters
            .get(&slot, 0)
            .map_err(|source| DataplaneError::Map {
                map: map_names::COUNTERS,
                source: Box::new(source),
            })?;
        for (cpu, value) in values.iter().enumerate() {
            if let Some(cell) = per_cpu.get_mut(cpu).and_then(|c| c.get_mut(slot as usize)) {
                *cell = *value;
            }
        }
    }
    Ok(CounterSnapshot {
        per_cpu,
        parse_issues: u64_grid(&issues, map_names::PARSE_ISSUES, ParseIssue::COUNT, cpus)?,
        nat_events: u64_grid(
            &per_cpu_array(ebpf, map_names::NAT_EVENTS)?,
            map_names::NAT_EVENTS,
            NatEvent::COUNT,
            cpus,
        )?,
        nat_drops: u64_grid(
            &per_cpu_array(ebpf, map_names::NAT_DROPS)?,
            map_names::NAT_DROPS,
            DropReason::COUNT,
            cpus,
        )?,
    })
}

/// `grid[cpu][slot]` of a per-CPU `u64` array with `slots` entries.
fn u64_grid(
    map: &PerCpuArray<&MapData, u64>,
    name: &'static str,
    slots: u32,
    cpus: usize,
) -> Result<Vec<Vec<u64>>, DataplaneError> {
    let mut grid = vec![vec![0u64; slots as usize]; cpus];
    for slot in 0..slots {
        let values = map.get(&slot, 0).map_err(|source| DataplaneError::Map {
            map: name,
            source: Box::new(source),
        })?;
        for (cpu, value) in values.iter().enumerate() {
            if let Some(cell) = grid.get_mut(cpu).and_then(|c| c.get_mut(slot as usize)) {
                *cell = *value;
            }
        }
    }
    Ok(grid)
}

fn per_cpu_array<'a, V: aya::Pod>(
    ebpf: &'a Ebpf,
    name: &'static str,
) -> Result<PerCpuArray<&'a MapData, V>, DataplaneError> {
    let map = ebpf.map(name).ok_or(DataplaneError::MissingMap(name))?;
    PerCpuArray::try_from(map).map_err(|source| DataplaneError::Map {
        map: name,
        source: Box::new(source),
    })
}
