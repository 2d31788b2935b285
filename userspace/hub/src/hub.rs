//! `Hub`: one virtual hub's switching decision for each frame.
//!
//! Invariants: hubs share nothing (one `Hub` value per configured hub, each
//! with its own MAC table, ports and DHCP server), so isolation holds by
//! construction. `forward` allocates nothing in steady state: decisions are
//! an enum, flooding is an iterator over the hub's own port list, and DHCP
//! replies are written into one reusable buffer. Frames to UDP/67 never
//! reach the switch while the hub runs DHCP (see [`crate::dhcp`] for why
//! this includes the bridge port).
//!
//! Layer-2 policy, checked on every frame before anything is learned: a
//! session port cannot take over a MAC that the bridge or another live
//! session owns (the rule and its one exception, a reconnecting user, are
//! documented on [`crate::PortPolicy`]); it cannot own more MACs
//! than its `max_macs`, nor hold more DHCP leases than its `max_leases`.
//! Each refusal drops the frame, counts it under its own [`FrameDrop`]
//! and leaves the MAC table and the lease pool as they were.

use std::time::Duration;

use crate::dhcp::{
    DhcpFrameKind, DhcpOutcome, DhcpServer, DhcpServerConfig, IgnoreReason, LeaseHolder, classify,
};
use crate::mac_table::{DEFAULT_MAC_AGING, LearnError, MAX_MAC_ENTRIES, MacTable};
use crate::port::{FrameDrop, PortCounters, PortId, PortPolicy};
use crate::{MacAddr, WallTime};

/// Ethernet header: destination, source, EtherType.
pub const ETH_HEADER_LEN: usize = 14;
/// 1500-byte MTU + 14-byte header + one 802.1Q tag; no FCS on a tap or in
/// SoftEther's data blocks. Larger frames cannot be delivered to the tap.
pub const MAX_FRAME_LEN: usize = 1514 + 4;

/// Hub-wide tunables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubOptions {
    pub mac_aging: Duration,
    pub max_mac_entries: usize,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            mac_aging: DEFAULT_MAC_AGING,
            max_mac_entries: MAX_MAC_ENTRIES,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    #[error("port {0:?} is already attached")]
    DuplicatePort(PortId),
    #[error("port {0:?} is not attached")]
    UnknownPort(PortId),
}

/// What to do with one frame.
#[derive(Debug)]
pub enum Forward<'a> {
    /// Send the frame to this one port.
    Unicast(PortId),
    /// Send a copy to each of these ports (every port but the ingress).
    Flood(FloodPorts<'a>),
    /// The hub answered the frame itself (DHCP): send `frame` to `port`
    /// instead. The original frame goes nowhere.
    Reply {
        port: PortId,
        frame: &'a [u8],
    },
    /// The hub took the frame and has nothing to send (DHCP RELEASE, …).
    Consumed,
    Drop(FrameDrop),
}

/// `Forward` without borrows, so `decide` can mutate counters freely.
enum Decision {
    Unicast(PortId),
    Flood,
    Reply,
    Consumed,
}

#[derive(Debug, Clone)]
struct PortSlot {
    id: PortId,
    policy: PortPolicy,
    counters: PortCounters,
}

/// The ports a flooded frame goes to, in ascending id order.
#[derive(Debug, Clone)]
pub struct FloodPorts<'a> {
    ports: std::slice::Iter<'a, PortSlot>,
    except: PortId,
}

impl Iterator for FloodPorts<'_> {
    type Item = PortId;

    fn next(&mut self) -> Option<PortId> {
        let except = self.except;
        self.ports.by_ref().map(|p| p.id).find(|&id| id != except)
    }
}

pub struct Hub {
    name: String,
    table: MacTable,
    /// Sorted by id: binary search for the ingress port, stable flood order.
    ports: Vec<PortSlot>,
    dhcp: Option<DhcpServer>,
    /// The last DHCP reply frame; reused.
    reply: Vec<u8>,
    unknown_port_drops: u64,
}

impl Hub {
    pub fn new(
        name: impl Into<String>,
        options: HubOptions,
        dhcp: Option<DhcpServerConfig>,
    ) -> Self {
        Self {
            name: name.into(),
            table: MacTable::new(options.mac_aging, options.max_mac_entries),
            ports: Vec::new(),
            dhcp: dhcp.map(DhcpServer::new),
            reply: Vec::with_capacity(MAX_FRAME_LEN),
            unknown_port_drops: 0,
        }
    }

    /// A hub as configured, with its DHCP server when `[hub.dhcp]` is set.
    /// Ports, including the bridge, are added by the caller.
    pub fn from_config(hub: &ethergate_config::Hub, options: HubOptions) -> Self {
        Self::new(hub.name.clone(), options, DhcpServerConfig::for_hub(hub))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn mac_table(&self) -> &MacTable {
        &self.table
    }

    pub fn dhcp(&self) -> Option<&DhcpServer> {
        self.dhcp.as_ref()
    }

    pub fn dhcp_mut(&mut self) -> Option<&mut DhcpServer> {
        self.dhcp.as_mut()
    }

    /// Replaces the DHCP server (config reload). Bound leases move to the
    /// new server where they still fit its range; the report says how many
    /// did. `None` turns DHCP off.
    pub fn set_dhcp(
        &mut self,
        config: Option<DhcpServerConfig>,
        now: WallTime,
    ) -> Option<crate::dhcp::RestoreReport> {
        let leases = self.dhcp.as_ref().map(DhcpServer::snapshot);
        self.dhcp = config.map(DhcpServer::new);
        match (&mut self.dhcp, leases) {
            (Some(server), Some(leases)) => Some(server.restore(leases, now)),
            _ => None,
        }
    }

    /// Frames that named a port the hub does not have.
    pub fn unknown_port_drops(&self) -> u64 {
        self.unknown_port_drops
    }

    fn slot(&self, port: PortId) -> Result<usize, usize> {
        self.ports.binary_search_by_key(&port, |p| p.id)
    }

    pub fn add_port(&mut self, port: PortId, policy: PortPolicy) -> Result<(), HubError> {
        match self.slot(port) {
            Ok(_) => Err(HubError::DuplicatePort(port)),
            Err(at) => {
                self.ports.insert(
                    at,
                    PortSlot {
                        id: port,
                        policy,
                        counters: PortCounters::default(),
                    },
                );
                Ok(())
            }
        }
    }

    /// Pins `mac` to `port` (which must be attached): the address never
    /// ages out and no other port can take it over; frames from it on
    /// another port are dropped as [`FrameDrop::MacSpoof`]. For the
    /// bridge tap's own MAC, which the kernel may not send from for longer
    /// than the aging time.
    pub fn pin_mac(&mut self, mac: MacAddr, port: PortId, now: WallTime) -> Result<(), HubError> {
        self.slot(port).map_err(|_| HubError::UnknownPort(port))?;
        self.table.pin(mac, port, now);
        Ok(())
    }

    /// The policy `port` was added with.
    pub fn policy(&self, port: PortId) -> Option<&PortPolicy> {
        self.slot(port).ok().map(|i| &self.ports[i].policy)
    }

    /// Detaches a port and forgets its MACs; returns its final counters.
    pub fn remove_port(&mut self, port: PortId) -> Result<PortCounters, HubError> {
        let at = self.slot(port).map_err(|_| HubError::UnknownPort(port))?;
        self.table.remove_port(port);
        Ok(self.ports.remove(at).counters)
    }

    pub fn counters(&self, port: PortId) -> Option<&PortCounters> {
        self.slot(port).ok().map(|i| &self.ports[i].counters)
    }

    pub fn ports(&self) -> impl Iterator<Item = (PortId, &PortCounters)> {
        self.ports.iter().map(|p| (p.id, &p.counters))
    }

    /// Removes aged MAC entries; call every few seconds. Returns how many.
    pub fn expire(&mut self, now: WallTime) -> usize {
        self.table.expire(now)
    }

    /// Decides where `frame`, received on `ingress`, goes.
    pub fn forward(&mut self, ingress: PortId, frame: &[u8], now: WallTime) -> Forward<'_> {
        let Ok(at) = self.slot(ingress) else {
            self.unknown_port_drops += 1;
            return Forward::Drop(FrameDrop::UnknownPort);
        };
        match self.decide(at, ingress, frame, now) {
            Ok(Decision::Unicast(port)) => Forward::Unicast(port),
            Ok(Decision::Flood) => Forward::Flood(FloodPorts {
                ports: self.ports.iter(),
                except: ingress,
            }),
            Ok(Decision::Reply) => Forward::Reply {
                port: ingress,
                frame: &self.reply,
            },
            Ok(Decision::Consumed) => Forward::Consumed,
            Err(reason) => {
                self.ports[at].counters.count_drop(reason);
                Forward::Drop(reason)
            }
        }
    }

    /// Whether the session or bridge at `at` may take over a MAC that
    /// `holder` (another attached port) owns and has used recently: the
    /// bridge may (it stands for the LAN); a session only from a port of
    /// the same owner (a reconnecting user), never from the bridge. Pinned
    /// entries are refused by the table itself.
    fn may_take_over(&self, at: usize, holder: PortId) -> bool {
        let taker = &self.ports[at];
        if taker.id.is_bridge() {
            return true;
        }
        if holder.is_bridge() {
            return false;
        }
        match self.slot(holder) {
            Ok(i) => {
                taker.policy.owner.is_some() && self.ports[i].policy.owner == taker.policy.owner
            }
            // Not attached (cannot happen: the table forgets detached
            // ports): the address is free.
            Err(_) => true,
        }
    }

    fn decide(
        &mut self,
        at: usize,
        ingress: PortId,
        frame: &[u8],
        now: WallTime,
    ) -> Result<Decision, FrameDrop> {
        let len = frame.len();
        let (Some(dst), Some(src)) = (
            MacAddr::from_slice(frame),
            frame.get(6..ETH_HEADER_LEN).and_then(MacAddr::from_slice),
        ) else {
            return Err(FrameDrop::Runt);
        };
        if len > MAX_FRAME_LEN {
            return Err(FrameDrop::Oversize);
        }
        if src.is_multicast() || src.is_zero() {
            return Err(FrameDrop::BadSourceMac);
        }
        if let Some(holder) = self.table.lookup(&src, now)
            && holder != ingress
            && !self.may_take_over(at, holder)
        {
            return Err(FrameDrop::MacSpoof);
        }
        let policy = self.ports[at].policy;
        self.table
            .learn(src, ingress, policy.max_macs, now)
            .map_err(|e| match e {
                LearnError::PortLimit => FrameDrop::MacLimit,
                LearnError::TableFull => FrameDrop::MacTableFull,
                LearnError::Pinned => FrameDrop::MacSpoof,
            })?;

        if let Some(dhcp) = self.dhcp.as_mut() {
            match classify(frame) {
                DhcpFrameKind::ToServer => {
                    let holder = LeaseHolder {
                        port: ingress,
                        max_leases: policy.max_leases,
                    };
                    let outcome = dhcp.handle_frame_from(frame, Some(holder), now, &mut self.reply);
                    let slot = &mut self.ports[at];
                    return match outcome {
                        DhcpOutcome::Reply => {
                            slot.counters.count_in(len);
                            slot.counters.frames_local += 1;
                            slot.counters.count_out(self.reply.len());
                            Ok(Decision::Reply)
                        }
                        DhcpOutcome::Silent => {
                            slot.counters.count_in(len);
                            slot.counters.frames_local += 1;
                            Ok(Decision::Consumed)
                        }
                        DhcpOutcome::Ignored(IgnoreReason::LeaseLimit) => {
                            Err(FrameDrop::LeaseLimit)
                        }
                        DhcpOutcome::Ignored(_) => Err(FrameDrop::DhcpIgnored),
                        DhcpOutcome::Malformed => Err(FrameDrop::MalformedDhcp),
                    };
                }
                DhcpFrameKind::FromServer => return Err(FrameDrop::ForeignDhcpServer),
                DhcpFrameKind::Other => {}
            }
        }

        if !dst.is_multicast()
            && let Some(egress) = self.table.lookup(&dst, now)
        {
            if egress == ingress {
                return Err(FrameDrop::Hairpin);
            }
            // The table only holds ports that are attached: remove_port
            // forgets a port's MACs.
            if let Ok(out) = self.slot(egress) {
                self.ports[at].counters.count_in(len);
                self.ports[out].counters.count_out(len);
                return Ok(Decision::Unicast(egress));
            }
        }
        // Broadcast, multicast or unknown unicast: flood.
        self.ports[at].counters.count_in(len);
        for p in self.ports.iter_mut().filter(|p| p.id != ingress) {
            p.counters.count_out(len);
        }
        Ok(Decision::Flood)
    }
}
