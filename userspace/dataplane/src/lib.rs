//! ethergate's kernel data plane, seen from userspace: the eBPF object is
//! built by `build.rs` (nightly cargo, bpf-linker) and embedded in the binary; this crate
//! loads it, attaches the programs, turns `[nat]` into map entries, sweeps
//! idle NAT flows, and reads counters and flows.
//!
//! Programs: `nat_ingress` (tc ingress on the uplink and every inside
//! interface: all of NAT in tc mode, what XDP hands over in XDP mode),
//! `uplink` (XDP on the uplink in XDP mode: counts every frame, restores
//! return traffic of SNAT flows, and in one-armed mode also SNATs the
//! private subnet's egress), `inside` (XDP on each inside interface in XDP
//! mode: SNATs egress and redirects it to the uplink), `uplink_egress` (tc
//! egress on the uplink: drops anything leaving with an untranslated
//! private source), `tap_ingress`/`tap_egress` (hub taps: DNAT and
//! VPN-client SNAT), `redirect_peer` (XDP_PASS; only for the far end of
//! veth links in tests — see `attach_redirect_peer`). `attach.rs` says how
//! the mode is chosen per interface.
//!
//! Invariant: attachments live exactly as long as the [`Dataplane`] value —
//! they are bpf_links owned by it, so dropping it (or the process dying)
//! detaches everything and leaves no program behind on an interface.

mod attach;
mod counters;
mod error;
#[cfg(feature = "test-hooks")]
pub mod loadgen;
mod map_names;
mod nat;
mod neighbour;
mod pin;
mod route_watch;
mod rules;
mod tap;
#[cfg(feature = "test-hooks")]
mod test_hooks;

pub use attach::{AttachMode, NatAttachment};
pub use counters::CounterSnapshot;
pub use error::DataplaneError;
#[cfg(feature = "test-hooks")]
pub use nat::SweepStats;
pub use nat::{DnatFlow, NatFlow, SNAT_PORT_MAX, SNAT_PORT_MIN, interface_ipv4};
pub use neighbour::uplink_gateways;
pub use pin::{
    PIN_BASE, StateOrigin, default_root as default_pin_root, forget as forget_pinned_state,
    remove_reused_inode_state, remove_stale_namespaces,
};
pub use tap::TcProgram;
#[cfg(feature = "test-hooks")]
pub use test_hooks::TestRunOutcome;

use std::{path::PathBuf, sync::Mutex};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData},
    programs::{
        SchedClassifier, Xdp,
        links::FdLink,
        tc::{SchedClassifierLink, TcAttachType},
        xdp::XdpLink,
    },
};
use ethergate_common::NatConfig;
use ethergate_config::NatMode;

/// The compiled eBPF object, embedded at build time.
pub(crate) static PROGRAMS_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ethergate-programs"));

/// Program names as they appear in the object (the Rust item names in
/// ebpf/programs); map names are in [`map_names`].
pub(crate) const UPLINK_PROGRAM: &str = "uplink";
pub(crate) const INSIDE_PROGRAM: &str = "inside";
pub(crate) const REDIRECT_PEER_PROGRAM: &str = "redirect_peer";
pub use ethergate_common::nat::DEFAULT_MAX_FLOWS;

/// The XDP programs in the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpProgram {
    Uplink,
    Inside,
}

impl XdpProgram {
    #[cfg(feature = "test-hooks")]
    const fn name(self) -> &'static str {
        match self {
            Self::Uplink => UPLINK_PROGRAM,
            Self::Inside => INSIDE_PROGRAM,
        }
    }
}

/// Loaded (verified) eBPF programs and their maps.
pub struct Dataplane {
    flows: Mutex<nat::FlowMaps>,
    /// Live flow pairs, counted by the programs (+1 created, −1 expired).
    active: aya::maps::PerCpuArray<MapData, i64>,
    uplink: Option<attach::Attached>,
    /// The uplink's egress guard (`uplink_egress`).
    guard: Option<attach::AttachmentLink>,
    /// Where flow maps and links are pinned (None: they die with us).
    pins: Option<pin::Pins>,
    /// Link pins this process attached or adopted.
    claimed: Vec<PathBuf>,
    inside: Vec<attach::Attached>,
    /// `redirect_peer` attachments (tests: far ends of veth links).
    #[cfg(feature = "test-hooks")]
    peers: Vec<aya::programs::xdp::XdpLinkId>,
    taps: Vec<tap::TapAttachment>,
    gateways: Result<Vec<std::net::Ipv4Addr>, String>,
    /// Bumps the XDP route cache's generation on routing changes; started
    /// with the NAT, in its namespace.
    route_watch: Option<route_watch::RouteWatch>,
    ebpf: Ebpf,
}

/// How to load the data plane.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Flow-table size (`[nat.limits] max_flows`).
    pub max_flows: u32,
    /// Pin flow maps and links here so that they outlive the process
    /// (`ethergate serve`: [`default_pin_root`]); `None`: everything is
    /// detached and freed when the [`Dataplane`] is dropped.
    pub pin_root: Option<PathBuf>,
}

impl Dataplane {
    /// Loads the embedded object with the default flow-table size and runs
    /// every program through the verifier. Needs CAP_BPF (or root).
    pub fn load() -> Result<Self, DataplaneError> {
        Self::load_with_max_flows(DEFAULT_MAX_FLOWS)
    }

    /// Like [`Dataplane::load`], with `NAT_OUT` and `NAT_IN` sized for
    /// `max_flows` flows (`[nat.limits].max_flows`).
    pub fn load_with_max_flows(max_flows: u32) -> Result<Self, DataplaneError> {
        Self::load_with(&LoadOptions {
            max_flows,
            pin_root: None,
        })
    }

    /// Loads with `options`. With a pin root, the flow maps of a previous
    /// process there are adopted when they fit (see `pin.rs`), and every
    /// link the NAT attaches is pinned so that it outlives this process.
    pub fn load_with(options: &LoadOptions) -> Result<Self, DataplaneError> {
        let max_flows = options.max_flows;
        let pins =
            match &options.pin_root {
                Some(root) => Some(pin::Pins::prepare(root, max_flows).map_err(|source| {
                    DataplaneError::Pin {
                        path: root.clone(),
                        source,
                    }
                })?),
                None => None,
            };
        let mut loader = EbpfLoader::new();
        for name in map_names::FLOW_TABLES {
            loader.map_max_entries(name, max_flows);
        }
        if let Some(pins) = &pins {
            for (name, _) in pin::PINNED_MAPS {
                loader.map_pin_path(name, pins.map(name));
            }
        }
        let mut ebpf = loader
            .load(PROGRAMS_OBJECT)
            .map_err(|e| DataplaneError::Load(Box::new(e)))?;
        for name in [UPLINK_PROGRAM, INSIDE_PROGRAM, REDIRECT_PEER_PROGRAM] {
            let program: &mut Xdp = program_mut(&mut ebpf, name)?;
            program.load().map_err(|source| DataplaneError::Verify {
                program: name,
                source: Box::new(source),
            })?;
        }
        for program in [
            TcProgram::TapIngress,
            TcProgram::TapEgress,
            TcProgram::NatIngress,
            TcProgram::UplinkEgress,
        ] {
            let name = program.name();
            let classifier: &mut SchedClassifier = program_mut(&mut ebpf, name)?;
            classifier.load().map_err(|source| DataplaneError::Verify {
                program: name,
                source: Box::new(source),
            })?;
        }
        let flows = nat::FlowMaps {
            out: take_hash_map(&mut ebpf, map_names::NAT_OUT)?,
            inbound: take_hash_map(&mut ebpf, map_names::NAT_IN)?,
            dnat_out: take_hash_map(&mut ebpf, map_names::DNAT_OUT)?,
            dnat_in: take_hash_map(&mut ebpf, map_names::DNAT_IN)?,
            #[cfg(feature = "test-hooks")]
            sources: {
                let map = ebpf
                    .take_map(map_names::SOURCE_FLOWS)
                    .ok_or(DataplaneError::MissingMap(map_names::SOURCE_FLOWS))?;
                HashMap::try_from(map).map_err(|e| map_error(map_names::SOURCE_FLOWS, e))?
            },
        };
        let active = ebpf
            .take_map(map_names::ACTIVE_FLOWS)
            .ok_or(DataplaneError::MissingMap(map_names::ACTIVE_FLOWS))?;
        let active = aya::maps::PerCpuArray::try_from(active)
            .map_err(|e| map_error(map_names::ACTIVE_FLOWS, e))?;
        Ok(Self {
            flows: Mutex::new(flows),
            active,
            uplink: None,
            guard: None,
            pins,
            claimed: Vec::new(),
            inside: Vec::new(),
            #[cfg(feature = "test-hooks")]
            peers: Vec::new(),
            taps: Vec::new(),
            gateways: Ok(Vec::new()),
            route_watch: None,
            ebpf,
        })
    }

    /// Applies `[nat]` in the calling thread's network namespace: writes the
    /// SNAT rules (masquerade = the uplink's current IPv4 address) and the
    /// uplink's ifindex, attaches the egress guard and the NAT programs to
    /// the uplink (once) and to every inside interface not yet attached, in
    /// the mode `[nat] mode` asks for, and (re)starts the idle flow sweeper
    /// with the configured timeouts. Calling it again with a changed config
    /// replaces the rules and keeps every existing flow.
    pub fn apply_nat(&mut self, config: &ethergate_config::Nat) -> Result<(), DataplaneError> {
        self.configure_nat(config)?;
        if self.route_watch.is_none() {
            let map = self
                .ebpf
                .take_map(map_names::ROUTE_GENERATION)
                .ok_or(DataplaneError::MissingMap(map_names::ROUTE_GENERATION))?;
            let generation =
                Array::try_from(map).map_err(|e| map_error(map_names::ROUTE_GENERATION, e))?;
            self.route_watch = Some(
                route_watch::RouteWatch::start(generation).map_err(DataplaneError::RouteWatch)?,
            );
        }
        let uplink = config.uplink.as_str();
        if self.guard.is_none() {
            self.guard =
                Some(self.attach_tc_link(TcProgram::UplinkEgress, uplink, TcAttachType::Egress)?);
        }
        if self.uplink.is_none() {
            self.attach_uplink(uplink, config.mode)?;
        }
        for interface in &config.inside {
            if !self
                .inside
                .iter()
                .any(|a| a.status.interface == interface.as_str())
            {
                let attached = self.attach_nat(INSIDE_PROGRAM, interface.as_str(), config.mode)?;
                self.inside.push(attached);
            }
        }
        if let Some(pins) = &self.pins {
            pins.remove_unclaimed_links(&self.claimed);
        }
        self.gateways = self.manage_gateway_neighbours(config.uplink.as_str());
        Ok(())
    }

    /// Gives the uplink's gateways managed neighbour entries (see
    /// `neighbour.rs`). A failure (kernel before 5.16) is kept for status,
    /// not fatal: SNAT then drops a new flow's first packets as
    /// `no_neighbour` until the kernel resolves the gateway by itself.
    fn manage_gateway_neighbours(&self, uplink: &str) -> Result<Vec<std::net::Ipv4Addr>, String> {
        let gateways = neighbour::uplink_gateways(uplink).map_err(|e| e.to_string())?;
        let ifindex = nat::ifindex(uplink).map_err(|e| e.to_string())?;
        neighbour::manage(ifindex, &gateways)
            .map_err(|e| format!("managed neighbour entries on {uplink}: {e}"))?;
        Ok(gateways)
    }

    /// The uplink gateways kept resolved by the kernel (managed neighbour
    /// entries), or why that failed.
    pub fn gateway_neighbours(&self) -> Result<&[std::net::Ipv4Addr], &str> {
        self.gateways.as_deref().map_err(String::as_str)
    }

    /// Attaches the DNAT/SNAT tc programs to a hub's tap: `tap_ingress`
    /// (frames VPN clients send) and `tap_egress` (frames going to them).
    /// The tap must exist (it does once the hub runs). Needs `[nat]` to be
    /// configured to translate anything; before that both pass every frame.
    pub fn attach_hub_tap(&mut self, interface: &str) -> Result<(), DataplaneError> {
        if self.taps.iter().any(|t| t.interface == interface) {
            return Ok(());
        }
        let attachment = tap::attach(&mut self.ebpf, interface)?;
        self.taps.push(attachment);
        Ok(())
    }

    /// Taps running the tc programs.
    pub fn hub_taps(&self) -> Vec<&str> {
        self.taps.iter().map(|t| t.interface.as_str()).collect()
    }

    /// Every DNAT (port-forward) flow, with idle times.
    pub fn dnat_flows(&self) -> Vec<DnatFlow> {
        match self.flows.lock() {
            Ok(maps) => nat::dnat_flows(&maps, nat::monotonic_ns()),
            Err(_) => Vec::new(),
        }
    }

    /// Replaces every SNAT and DNAT rule at once (a reload): the idle rule
    /// set is filled, then made live with one map write. Flows are not
    /// touched, so established flows keep their translation; new flows
    /// follow the new rules. Returns the now-live set (0 or 1).
    pub fn replace_nat_rules(
        &mut self,
        config: &ethergate_config::Nat,
    ) -> Result<u32, DataplaneError> {
        self.configure_nat(config)?;
        Ok(rules::current_config(&mut self.ebpf)?.rule_set)
    }

    /// Writes the NAT maps for `config` without attaching anything (what
    /// BPF_PROG_TEST_RUN fixtures need). Interfaces are resolved in the
    /// calling thread's network namespace.
    pub fn configure_nat(&mut self, config: &ethergate_config::Nat) -> Result<(), DataplaneError> {
        let uplink_ifindex = nat::ifindex(config.uplink.as_str())?;
        let snat = rules::snat_entries(config)?;
        let dnat = rules::dnat_entries(config)?;
        let live = rules::current_config(&mut self.ebpf)?;
        // A narrowed port range (tests) survives a rule swap.
        let (port_min, port_max) = if live.port_min == 0 {
            (SNAT_PORT_MIN, SNAT_PORT_MAX)
        } else {
            (live.port_min, live.port_max)
        };
        rules::swap(
            &mut self.ebpf,
            &snat,
            &dnat,
            NatConfig {
                uplink_ifindex,
                port_min,
                port_max,
                rule_set: live.rule_set,
                max_flows_per_source: config.limits.max_flows_per_source,
                tcp_established_secs: config.timeouts.tcp_established_secs,
                tcp_transitory_secs: config.timeouts.tcp_transitory_secs,
                udp_secs: config.timeouts.udp_secs,
                icmp_secs: config.timeouts.icmp_secs,
            },
        )?;
        Ok(())
    }

    /// Flow pairs (SNAT and DNAT) their timers expired since load (the
    /// `flow_expired` event).
    pub fn expired_flows(&self) -> u64 {
        self.counters()
            .map(|c| c.nat_event(ethergate_common::NatEvent::FlowExpired))
            .unwrap_or(0)
    }

    /// Live flow pairs (SNAT and DNAT), as the programs count them — O(1),
    /// for status and metrics, where walking a million-entry map on every
    /// scrape would stall the control plane. Pinned with the flows, so it
    /// stays right across restarts.
    pub fn active_flows(&self) -> u64 {
        self.active
            .get(&0, 0)
            .map(|per_cpu| per_cpu.iter().sum::<i64>().max(0) as u64)
            .unwrap_or(0)
    }

    /// Every translated flow, with idle times.
    pub fn nat_flows(&self) -> Vec<NatFlow> {
        match self.flows.lock() {
            Ok(maps) => nat::flows(&maps, nat::monotonic_ns()),
            Err(_) => Vec::new(),
        }
    }

    /// Inside interfaces running NAT, with their modes and why.
    pub fn inside_attachments(&self) -> Vec<&NatAttachment> {
        self.inside.iter().map(|a| &a.status).collect()
    }

    /// Attaches the XDP program `name` (uplink or inside) to `interface`
    /// in the calling thread's network namespace, per `mode` (see
    /// `attach.rs`): `nat_ingress` in tc always, XDP in front of it where
    /// chosen. An interface left to tc is entered in `TC_INTERFACES`.
    fn attach_nat(
        &mut self,
        name: &'static str,
        interface: &str,
        mode: NatMode,
    ) -> Result<attach::Attached, DataplaneError> {
        let ifindex = nat::ifindex(interface)?;
        let device = attach::device(interface);
        let (xdp, mut reason) = attach::wants_xdp(mode, &device);
        // The map first: an XDP program adopted into a pinned link must
        // find it right from its first packet.
        self.set_tc_interface(ifindex, !xdp)?;
        let tc = self.attach_tc_link(TcProgram::NatIngress, interface, TcAttachType::Ingress)?;
        let mut links = vec![tc];
        let mut attach_mode = AttachMode::Tc;
        if xdp {
            match self.attach_xdp_link(name, interface) {
                Ok(link) => {
                    links.push(link);
                    attach_mode = AttachMode::XdpNative;
                }
                Err(refused) if mode == NatMode::Xdp => {
                    for link in links {
                        self.release(TcProgram::NatIngress, interface, link);
                    }
                    return Err(DataplaneError::NativeXdp {
                        interface: interface.to_owned(),
                        reason: refused,
                    });
                }
                Err(refused) => {
                    self.set_tc_interface(ifindex, true)?;
                    reason = format!(
                        "auto: driver {} refused native XDP ({refused}); tc instead",
                        device.driver
                    );
                }
            }
        }
        Ok(attach::Attached {
            status: NatAttachment {
                interface: interface.to_owned(),
                mode: attach_mode,
                reason,
            },
            links,
        })
    }

    /// Attaches tc `program` to `interface`; with pinning, adopts the link
    /// a previous process pinned there (swapping its program for ours in
    /// one `BPF_LINK_UPDATE`) or pins the new one.
    fn attach_tc_link(
        &mut self,
        program: TcProgram,
        interface: &str,
        at: TcAttachType,
    ) -> Result<attach::AttachmentLink, DataplaneError> {
        let Some(path) = self
            .pins
            .as_ref()
            .map(|p| p.link(interface, program.name()))
        else {
            let id = tap::attach_one(&mut self.ebpf, interface, program, at)?;
            return Ok(attach::AttachmentLink::Tc(id));
        };
        self.claimed.push(path.clone());
        let attach_error = |source| DataplaneError::TcAttach {
            interface: interface.to_owned(),
            program: program.name(),
            source: Box::new(source),
        };
        if let Some(old) = pin::pinned_link(&path) {
            let classifier: &mut SchedClassifier = program_mut(&mut self.ebpf, program.name())?;
            if let Ok(link) = SchedClassifierLink::try_from(old)
                && let Ok(id) = classifier.attach_to_link(link)
            {
                return Ok(attach::AttachmentLink::Tc(id));
            }
            // Its device is gone (or it is not a tc link): start afresh.
            let _ = std::fs::remove_file(&path);
        }
        let id = tap::attach_one(&mut self.ebpf, interface, program, at)?;
        let classifier: &mut SchedClassifier = program_mut(&mut self.ebpf, program.name())?;
        let link = classifier.take_link(id).map_err(attach_error)?;
        let link = FdLink::try_from(link).map_err(|e| DataplaneError::PinLink {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let pinned = link.pin(&path).map_err(|e| DataplaneError::PinLink {
            path: path.clone(),
            reason: error_chain(&e),
        })?;
        Ok(attach::AttachmentLink::Pinned(pinned))
    }

    /// Native XDP for `program` on `interface`, adopting or pinning the
    /// link as [`Dataplane::attach_tc_link`] does.
    fn attach_xdp_link(
        &mut self,
        name: &'static str,
        interface: &str,
    ) -> Result<attach::AttachmentLink, String> {
        let path = self.pins.as_ref().map(|p| p.link(interface, name));
        let program: &mut Xdp = program_mut(&mut self.ebpf, name).map_err(|e| e.to_string())?;
        let Some(path) = path else {
            return attach::attach_native(program, interface)
                .map(attach::AttachmentLink::Xdp)
                .map_err(|e| e.to_string());
        };
        if let Some(old) = pin::pinned_link(&path) {
            if let Ok(link) = XdpLink::try_from(old)
                && let Ok(id) = program.attach_to_link(link)
            {
                self.claimed.push(path);
                return Ok(attach::AttachmentLink::Xdp(id));
            }
            let _ = std::fs::remove_file(&path);
        }
        let id = attach::attach_native(program, interface).map_err(|e| e.to_string())?;
        let link = program.take_link(id).map_err(|e| e.to_string())?;
        let pinned = FdLink::try_from(link)
            .map_err(|e| e.to_string())?
            .pin(&path)
            .map_err(|e| format!("pinning at {}: {}", path.display(), error_chain(&e)))?;
        self.claimed.push(path);
        Ok(attach::AttachmentLink::Pinned(pinned))
    }

    /// Undoes one link of a half-made attachment.
    fn release(&mut self, program: TcProgram, interface: &str, link: attach::AttachmentLink) {
        if let Some(pins) = &self.pins {
            let path = pins.link(interface, program.name());
            let _ = std::fs::remove_file(&path);
            self.claimed.retain(|p| *p != path);
        }
        if let attach::AttachmentLink::Tc(id) = link {
            tap::detach_one(&mut self.ebpf, program, id);
        }
    }

    /// Where the NAT state came from (`None` without pinning).
    pub fn state_origin(&self) -> Option<&StateOrigin> {
        self.pins.as_ref().map(|p| &p.origin)
    }

    /// Marks `ifindex` as running in tc mode (or not) in `TC_INTERFACES`:
    /// XDP hands frames bound for an interface in tc mode to tc instead of
    /// redirecting them. The map covers ifindexes below its size; XDP
    /// treats any higher one as tc mode, so there is nothing to write.
    fn set_tc_interface(&mut self, ifindex: u32, tc: bool) -> Result<(), DataplaneError> {
        let mut map: aya::maps::Array<&mut MapData, u8> =
            map_mut(&mut self.ebpf, map_names::TC_INTERFACES)?;
        if ifindex >= map.len() {
            return Ok(());
        }
        map.set(ifindex, u8::from(tc), 0)
            .map_err(|e| map_error(map_names::TC_INTERFACES, e))
    }

    /// Attaches the uplink's NAT programs (what [`Dataplane::apply_nat`]
    /// does first; alone, the uplink program classifies and counts every
    /// frame). Returns the mode that took.
    pub fn attach_uplink(
        &mut self,
        interface: &str,
        mode: NatMode,
    ) -> Result<AttachMode, DataplaneError> {
        let attached = self.attach_nat(UPLINK_PROGRAM, interface, mode)?;
        let mode = attached.status.mode;
        self.uplink = Some(attached);
        Ok(mode)
    }

    /// Routing changes the XDP route cache was told of since the NAT
    /// started (each makes every flow look its route up again).
    pub fn route_changes(&self) -> u64 {
        self.route_watch.as_ref().map_or(0, |w| w.changes())
    }

    /// How NAT runs on the uplink, if it is attached.
    pub fn uplink_attachment(&self) -> Option<&NatAttachment> {
        self.uplink.as_ref().map(|a| &a.status)
    }

    /// Reads the per-CPU counters of every program.
    pub fn counters(&self) -> Result<CounterSnapshot, DataplaneError> {
        counters::read(&self.ebpf)
    }
}

pub(crate) fn map_error(map: &'static str, source: aya::maps::MapError) -> DataplaneError {
    DataplaneError::Map {
        map,
        source: Box::new(source),
    }
}

pub(crate) fn map_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, DataplaneError>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map_mut(name).ok_or(DataplaneError::MissingMap(name))?;
    T::try_from(map).map_err(|e| map_error(name, e))
}

fn take_hash_map(ebpf: &mut Ebpf, name: &'static str) -> Result<nat::FlowMap, DataplaneError> {
    let map = ebpf
        .take_map(name)
        .ok_or(DataplaneError::MissingMap(name))?;
    HashMap::try_from(map).map_err(|e| map_error(name, e))
}

pub(crate) fn program_mut<'a, T>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut T, DataplaneError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .ok_or(DataplaneError::MissingProgram(name))?;
    program
        .try_into()
        .map_err(|source| DataplaneError::WrongProgramType {
            program: name,
            source: Box::new(source),
        })
}

/// An error and its sources, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
