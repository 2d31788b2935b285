//! Bench support (`cargo xtask bench`'s live-frames NAT rows): the
//! `loadgen`, `sink` and `forward` programs of
//! `ebpf/programs/src/loadgen.rs`, loaded apart from the data plane.
//! `loadgen` sends through BPF_PROG_TEST_RUN in live-frames mode, so the
//! sender's cost is a program run per packet, not a socket and a trip
//! through the stack; `sink` counts what arrives; `forward` is a minimal
//! XDP router, the ceiling any XDP NAT is measured against, and
//! `forward_lookup` the same router after one flow-table lookup, the floor
//! of what keeping per-flow state costs.

use crate::map_names;
use std::time::{Duration, Instant};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, PerCpuArray},
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode, xdp::XdpLinkId},
};

use crate::{DataplaneError, PROGRAMS_OBJECT, map_error, program_mut};

const LOADGEN: &str = "loadgen";
const SINK: &str = "sink";
const FORWARD: &str = "forward";
const FORWARD_LOOKUP: &str = "forward_lookup";
/// Frames the kernel builds and sends per batch.
const BATCH: u32 = 64;
/// Ethernet + IPv4 + UDP headers the program rewrites in every frame.
const HEADERS: usize = 42;

pub struct LoadGen {
    ebpf: Ebpf,
    sinks: Vec<XdpLinkId>,
    forwarder: Option<(&'static str, String, XdpLinkId)>,
}

impl LoadGen {
    /// Loads (and verifies) only the bench programs, with room for
    /// `flow_table` flows in `forward_lookup`'s table (sized as the NAT's
    /// is). The object's other maps are created too (the loader makes
    /// every map); the NAT's flow maps at their smallest, since nothing
    /// here uses them and they preallocate.
    pub fn load(flow_table: u32) -> Result<Self, DataplaneError> {
        let mut loader = EbpfLoader::new();
        for name in map_names::FLOW_TABLES {
            loader.map_max_entries(name, 1);
        }
        loader.map_max_entries(map_names::FLOOR_FLOWS, flow_table);
        let mut ebpf = loader
            .load(PROGRAMS_OBJECT)
            .map_err(|e| DataplaneError::Load(Box::new(e)))?;
        for name in [LOADGEN, SINK, FORWARD, FORWARD_LOOKUP] {
            let program: &mut Xdp = program_mut(&mut ebpf, name)?;
            program.load().map_err(|source| DataplaneError::Verify {
                program: name,
                source: Box::new(source),
            })?;
        }
        Ok(Self {
            ebpf,
            sinks: Vec::new(),
            forwarder: None,
        })
    }

    /// Counts and drops everything `interface` receives (native XDP), in
    /// the calling thread's network namespace, until `self` is dropped.
    pub fn attach_sink(&mut self, interface: &str) -> Result<(), DataplaneError> {
        let link = self.attach(SINK, interface)?;
        self.sinks.push(link);
        Ok(())
    }

    /// Routes what `interface` receives with the minimal XDP router (native
    /// XDP), after a flow-table lookup when `flow_lookup`, in the calling
    /// thread's network namespace, until [`LoadGen::detach_forwarder`] or
    /// until `self` is dropped.
    pub fn attach_forwarder(
        &mut self,
        interface: &str,
        flow_lookup: bool,
    ) -> Result<(), DataplaneError> {
        let program = if flow_lookup { FORWARD_LOOKUP } else { FORWARD };
        let link = self.attach(program, interface)?;
        self.forwarder = Some((program, interface.to_owned(), link));
        Ok(())
    }

    /// `program` on `interface` in native XDP mode.
    fn attach(
        &mut self,
        program: &'static str,
        interface: &str,
    ) -> Result<XdpLinkId, DataplaneError> {
        let program: &mut Xdp = program_mut(&mut self.ebpf, program)?;
        program
            .attach(interface, XdpMode::Driver)
            .map_err(|e| DataplaneError::NativeXdp {
                interface: interface.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Takes the forwarder off its interface (a no-op when none is on).
    pub fn detach_forwarder(&mut self) -> Result<(), DataplaneError> {
        let Some((program, interface, link)) = self.forwarder.take() else {
            return Ok(());
        };
        let program: &mut Xdp = program_mut(&mut self.ebpf, program)?;
        program.detach(link).map_err(|e| DataplaneError::NativeXdp {
            interface,
            reason: e.to_string(),
        })
    }

    /// Frames the sinks have counted since load.
    pub fn received(&self) -> Result<u64, DataplaneError> {
        let map = self
            .ebpf
            .map(map_names::SINK_COUNT)
            .ok_or(DataplaneError::MissingMap(map_names::SINK_COUNT))?;
        let counts: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|e| map_error(map_names::SINK_COUNT, e))?;
        let per_cpu = counts
            .get(&0, 0)
            .map_err(|e| map_error(map_names::SINK_COUNT, e))?;
        Ok(per_cpu.iter().sum())
    }

    /// Cycles through `flows` flows (rounded up to a power of two) from
    /// the next frame on.
    pub fn set_flows(&mut self, flows: u32) -> Result<(), DataplaneError> {
        let mut map: Array<_, u32> = crate::map_mut(&mut self.ebpf, map_names::LOADGEN_FLOWS)?;
        let mask = flows.max(1).next_power_of_two() - 1;
        map.set(0, mask, 0)
            .map_err(|e| map_error(map_names::LOADGEN_FLOWS, e))
    }

    /// Sends `count` frames made from `template` out of `ifindex` (an
    /// interface of the calling thread's network namespace). `template` is
    /// an untagged IPv4 UDP frame without IP options or UDP checksum, whose
    /// source address ends in .0. Returns how long the kernel took.
    pub fn send(
        &mut self,
        template: &[u8],
        ifindex: u32,
        count: u32,
    ) -> Result<Duration, DataplaneError> {
        let headers: [u8; HEADERS] = template
            .get(..HEADERS)
            .and_then(|h| h.try_into().ok())
            .ok_or(DataplaneError::MissingMap("a 42-byte frame template"))?;
        let mut map: Array<_, [u8; HEADERS]> =
            crate::map_mut(&mut self.ebpf, map_names::LOADGEN_HEADERS)?;
        map.set(0, headers, 0)
            .map_err(|e| map_error(map_names::LOADGEN_HEADERS, e))?;
        let program: &mut Xdp = program_mut(&mut self.ebpf, LOADGEN)?;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex.
        let ctx: Vec<u8> = [0, template.len() as u32, 0, ifindex, 0, 0]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        let started = Instant::now();
        program
            .test_run(TestRunOptions {
                data_in: Some(template),
                ctx_in: Some(&ctx),
                repeat: count,
                attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
                ..TestRunOptions::default()
            })
            .map_err(|source| DataplaneError::TestRun {
                program: LOADGEN,
                source: Box::new(source),
            })?;
        Ok(started.elapsed())
    }
}
