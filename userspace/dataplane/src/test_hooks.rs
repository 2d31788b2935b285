//! What tests and benchmarks drive the data plane with, behind the
//! `test-hooks` feature so that the binary's API stays narrow: single runs
//! of each program through BPF_PROG_TEST_RUN, a userspace sweep that can
//! pretend time passed, the do-nothing XDP program veth peers need when
//! XDP is forced onto veths, and a narrow SNAT port range.

use std::time::Duration;

use aya::programs::{SchedClassifier, TestRun, TestRunOptions, TestRunResult, Xdp};

use crate::{
    Dataplane, DataplaneError, REDIRECT_PEER_PROGRAM, XdpProgram, attach, attach::AttachMode, nat,
    nat::SweepStats, program_mut, rules, tap::TcProgram,
};

/// Outcome of one BPF_PROG_TEST_RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRunOutcome {
    /// The program's return value (an XDP action code).
    pub action: u32,
    /// The frame as the program left it.
    pub frame: Vec<u8>,
    /// Run time as the kernel measured it (average over repeats).
    pub duration: Duration,
}

/// struct __sk_buff up to and including `ifindex` (offset 40): the fields
/// BPF_PROG_TEST_RUN lets a caller set that we need.
const SKB_CTX_LEN: usize = 44;
const SKB_IFINDEX_AT: usize = 40;

impl Dataplane {
    /// One userspace sweep now, as if `now` were `extra` later than it is
    /// (tests expire flows without waiting; the programs' timers do the
    /// real expiry).
    pub fn sweep_nat_flows(
        &self,
        timeouts: &ethergate_config::NatTimeouts,
        extra: Duration,
    ) -> SweepStats {
        match self.flows.lock() {
            Ok(mut maps) => nat::sweep(
                &mut maps,
                nat::monotonic_ns() + extra.as_nanos() as u64,
                timeouts,
            ),
            Err(_) => SweepStats::default(),
        }
    }

    /// Attaches the do-nothing `redirect_peer` program to `interface`.
    ///
    /// A veth delivers frames that XDP_REDIRECT pushed into it only when its
    /// *peer* runs an XDP program (or has GRO on); otherwise they vanish
    /// without a counter. Tests that force `[nat] mode = "xdp"` on veths
    /// attach this to the far ends. The attachment lives as long as `self`.
    pub fn attach_redirect_peer(&mut self, interface: &str) -> Result<AttachMode, DataplaneError> {
        let program: &mut Xdp = program_mut(&mut self.ebpf, REDIRECT_PEER_PROGRAM)?;
        let (mode, link) = attach::attach_xdp_with_fallback(program, interface)?;
        self.peers.push(link);
        Ok(mode)
    }

    /// Narrows the SNAT port range (tests: fill a destination tuple fast).
    pub fn set_snat_port_range(&mut self, min: u16, max: u16) -> Result<(), DataplaneError> {
        let mut current = rules::current_config(&mut self.ebpf)?;
        current.port_min = min;
        current.port_max = max.max(min);
        rules::write_config(&mut self.ebpf, current)
    }

    /// Runs the uplink program once on `frame` with BPF_PROG_TEST_RUN.
    /// Counters move exactly as they would for a received frame.
    pub fn test_run_uplink(&mut self, frame: &[u8]) -> Result<TestRunOutcome, DataplaneError> {
        self.test_run(XdpProgram::Uplink, frame, None)
    }

    /// Runs `program` once on `frame` with BPF_PROG_TEST_RUN, as if received
    /// on `ingress_ifindex` (an interface of the calling thread's network
    /// namespace; `None`: loopback). The ingress interface matters to NAT:
    /// `bpf_fib_lookup` routes from it.
    pub fn test_run(
        &mut self,
        program: XdpProgram,
        frame: &[u8],
        ingress_ifindex: Option<u32>,
    ) -> Result<TestRunOutcome, DataplaneError> {
        let name = program.name();
        let xdp: &mut Xdp = program_mut(&mut self.ebpf, name)?;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex (all u32). The kernel wants
        // data = 0 and data_end = the frame's length.
        let ctx: Vec<u8> = [0, frame.len() as u32, 0, ingress_ifindex.unwrap_or(0), 0, 0]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        run_once(xdp, name, frame, ingress_ifindex.map(|_| ctx.as_slice()))
    }
    /// Runs a tc `program` once on `frame` with BPF_PROG_TEST_RUN, with the
    /// skb's device = `ifindex` (an interface of the calling thread's
    /// network namespace; it is where `bpf_fib_lookup` routes from). The
    /// action is a `TC_ACT_*` code; redirects are decided, not performed.
    pub fn test_run_tc(
        &mut self,
        program: TcProgram,
        frame: &[u8],
        ifindex: u32,
    ) -> Result<TestRunOutcome, DataplaneError> {
        let name = program.name();
        let classifier: &mut SchedClassifier = program_mut(&mut self.ebpf, name)?;
        let mut ctx = [0u8; SKB_CTX_LEN];
        ctx[SKB_IFINDEX_AT..SKB_IFINDEX_AT + 4].copy_from_slice(&ifindex.to_ne_bytes());
        run_once(classifier, name, frame, Some(&ctx))
    }
}

/// One BPF_PROG_TEST_RUN of `program` on `frame` with context `ctx`. The
/// output buffer has 4 KiB more than the frame: a program may grow it by
/// up to its tailroom (encapsulation headers).
fn run_once(
    program: &mut impl for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
    name: &'static str,
    frame: &[u8],
    ctx: Option<&[u8]>,
) -> Result<TestRunOutcome, DataplaneError> {
    let mut out = vec![0u8; frame.len() + 4096];
    let result = program
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: ctx,
            ..TestRunOptions::default()
        })
        .map_err(|source| DataplaneError::TestRun {
            program: name,
            source: Box::new(source),
        })?;
    out.truncate(result.data_size_out as usize);
    Ok(TestRunOutcome {
        action: result.return_value,
        frame: out,
        duration: result.duration,
    })
}
