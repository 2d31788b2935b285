//! Throwaway network-namespace topologies for tests, benches and the demo.
//!
//! Declare namespaces, veth pairs, addresses, routes and sysctls with
//! [`TopologyBuilder`], build them, run commands or spawn processes inside a
//! namespace, run Rust code on a thread that has entered one — and get
//! everything torn down when the [`Topology`] drops, also while a panic
//! unwinds: tracked processes first, then anything else still running in our
//! namespaces, then the namespaces themselves (which takes their links along).
//!
//! Invariants:
//! * Names are unique per run: every namespace is `eg<pid>x<seq>-<name>`, so
//!   concurrent runs never collide, and a later run can recognise and remove
//!   what a crashed run left behind ([`remove_stale`]).
//! * Nothing routes off the machine: links are only ever created *between*
//!   our namespaces, never into the root namespace, so no packet sent inside
//!   a topology can reach a real interface.

mod command;
mod error;
mod process;
pub mod recipe;
pub mod stream;
mod topology;

pub use command::CommandOutput;
pub use error::NetnsError;
pub use process::Process;
pub use topology::{Endpoint, Topology, TopologyBuilder, remove_stale};

/// Whether this process runs as root (namespaces, veths and eBPF need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// `argv` in a private mount namespace of its own (`unshare -m
/// --propagation private`): what it mounts goes away when it exits and
/// nobody else sees it (SoftEther daemons, debootstrap, bind mounts).
pub fn with_private_mounts<'a>(argv: &[&'a str]) -> Vec<&'a str> {
    let mut full = vec!["unshare", "-m", "--propagation", "private"];
    full.extend_from_slice(argv);
    full
}

/// Prefix of every namespace this crate creates.
pub const NAME_PREFIX: &str = "eg";
