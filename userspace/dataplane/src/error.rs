//! Errors of the data-plane loader, one variant per thing that can go wrong,
//! each naming the program, map or interface involved. aya's errors are
//! large (verifier logs inline), so they are boxed to keep `Result`s small.

use aya::{EbpfError, maps::MapError, programs::ProgramError};

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("cannot load the embedded eBPF object (are we root / CAP_BPF?): {0}")]
    Load(#[source] Box<EbpfError>),
    #[error("the eBPF object has no program named {0:?}; the build is inconsistent")]
    MissingProgram(&'static str),
    #[error("eBPF program {program:?} has an unexpected type: {source}")]
    WrongProgramType {
        program: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("the kernel verifier rejected eBPF program {program:?}: {source}")]
    Verify {
        program: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error(
        "cannot attach XDP to interface {interface:?}: native mode failed ({native}); generic mode failed ({generic})"
    )]
    Attach {
        interface: String,
        native: Box<ProgramError>,
        generic: Box<ProgramError>,
    },
    #[error(
        "[nat] mode = \"xdp\", but interface {interface:?} refused native XDP ({reason}); \
         use mode = \"auto\" or \"tc\" for this device"
    )]
    NativeXdp { interface: String, reason: String },
    #[error("cannot attach tc program {program:?} to interface {interface:?}: {source}")]
    TcAttach {
        interface: String,
        program: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error(
        "nat.dnat rules for {source_prefix} {protocol} port {port} differ only in destination; \
         the data plane keeps one rule per source, protocol and port"
    )]
    DnatOverlap {
        source_prefix: String,
        protocol: String,
        port: u16,
    },
    #[error("pinned NAT state under {path}: {source}")]
    Pin {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot pin link at {path}: {reason}")]
    PinLink {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("the eBPF object has no map named {0:?}; the build is inconsistent")]
    MissingMap(&'static str),
    #[error("eBPF map {map:?}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: Box<MapError>,
    },
    #[error("cannot count the possible CPUs (per-CPU maps need it): {0}")]
    CpuCount(#[source] std::io::Error),
    #[error("BPF_PROG_TEST_RUN of {program:?} failed: {source}")]
    TestRun {
        program: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("interface {interface:?}: {source}")]
    Interface {
        interface: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch routing changes (rtnetlink) for the route cache: {0}")]
    RouteWatch(#[source] std::io::Error),
    #[error("interface {0:?} has no IPv4 address to masquerade to")]
    NoIpv4Address(String),
    #[error(
        "SNAT rule for {source_prefix}: {count} public addresses; between 1 and 8 are supported"
    )]
    SnatAddresses { source_prefix: String, count: usize },
}
