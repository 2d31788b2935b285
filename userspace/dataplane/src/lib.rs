//! ethergate's kernel data plane, seen from userspace: the eBPF object is
//! built by `build.rs` (aya-build) and embedded in the binary; this crate
//! loads it, attaches the programs, and reads their counters.
//!
//! Invariant: attachments live exactly as long as the [`Dataplane`] value —
//! they are bpf_links owned by it, so dropping it (or the process dying)
//! detaches everything and leaves no program behind on an interface.

mod attach;
mod counters;
mod error;

pub use attach::XdpAttachMode;
pub use counters::CounterSnapshot;
pub use error::DataplaneError;

use aya::{
    Ebpf,
    programs::{TestRun, TestRunOptions, Xdp},
};

/// The compiled eBPF object, embedded at build time.
static PROGRAMS_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ethergate-programs"));

/// Program and map names as they appear in the object (the Rust item names in
/// ebpf/programs).
pub(crate) const UPLINK_PROGRAM: &str = "uplink";
pub(crate) const COUNTERS_MAP: &str = "COUNTERS";
pub(crate) const PARSE_ISSUES_MAP: &str = "PARSE_ISSUES";

/// Loaded (verified) eBPF programs and their maps.
pub struct Dataplane {
    ebpf: Ebpf,
    uplink: Option<attach::UplinkAttachment>,
}

/// Outcome of one BPF_PROG_TEST_RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRunOutcome {
    /// The program's return value (an XDP action code).
    pub action: u32,
    /// The frame as the program left it.
    pub frame: Vec<u8>,
}

impl Dataplane {
    /// Loads the embedded object and runs every program through the
    /// verifier. Needs CAP_BPF (or root).
    pub fn load() -> Result<Self, DataplaneError> {
        let mut ebpf =
            Ebpf::load(PROGRAMS_OBJECT).map_err(|e| DataplaneError::Load(Box::new(e)))?;
        let uplink: &mut Xdp = program_mut(&mut ebpf, UPLINK_PROGRAM)?;
        uplink.load().map_err(|source| DataplaneError::Verify {
            program: UPLINK_PROGRAM,
            source: Box::new(source),
        })?;
        Ok(Self { ebpf, uplink: None })
    }

    /// Attaches the uplink program to `interface` in the calling thread's
    /// network namespace: native (driver) XDP first, generic XDP if the
    /// driver refuses. Returns the mode that took.
    pub fn attach_uplink(&mut self, interface: &str) -> Result<XdpAttachMode, DataplaneError> {
        let program: &mut Xdp = program_mut(&mut self.ebpf, UPLINK_PROGRAM)?;
        let attachment = attach::attach_xdp_with_fallback(program, interface)?;
        let mode = attachment.mode;
        self.uplink = Some(attachment);
        Ok(mode)
    }

    /// Where and how the uplink program is attached, if it is.
    pub fn uplink_attachment(&self) -> Option<(&str, XdpAttachMode)> {
        self.uplink.as_ref().map(|a| (a.interface.as_str(), a.mode))
    }

    /// Reads the per-CPU counters of every program.
    pub fn counters(&self) -> Result<CounterSnapshot, DataplaneError> {
        counters::read(&self.ebpf)
    }

    /// Runs the uplink program once on `frame` with BPF_PROG_TEST_RUN.
    /// Counters move exactly as they would for a received frame.
    pub fn test_run_uplink(&mut self, frame: &[u8]) -> Result<TestRunOutcome, DataplaneError> {
        let program: &mut Xdp = program_mut(&mut self.ebpf, UPLINK_PROGRAM)?;
        // XDP may grow the frame by up to its tailroom; 4 KiB covers any
        // frame plus what a NAT rewrite could add (encapsulation headers).
        let mut out = vec![0u8; frame.len() + 4096];
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..TestRunOptions::default()
            })
            .map_err(|source| DataplaneError::TestRun {
                program: UPLINK_PROGRAM,
                source: Box::new(source),
            })?;
        out.truncate(result.data_size_out as usize);
        Ok(TestRunOutcome {
            action: result.return_value,
            frame: out,
        })
    }
}

fn program_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, DataplaneError>
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
