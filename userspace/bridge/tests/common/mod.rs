//! Shared pieces of the tap integration tests: a one-namespace topology,
//! the hub's link config, `ip` output helpers, and reading frames from all
//! queues of a tap with a deadline.
//!
//! The tests need root (namespaces, /dev/net/tun) and run with
//! `--test-threads=1`; each builds its own throwaway namespace, removed
//! (with the tap in it) when the topology drops, also on panic.

#![allow(dead_code)] // each test binary uses a different subset

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use ethergate_bridge::{LinkConfig, MacAddr, TapQueue};
use ethergate_netns::Topology;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

pub const TAP: &str = "tap_00";
pub const HUB: &str = "mikalab";

pub fn topology() -> Topology {
    Topology::builder()
        .namespace("nat")
        .build()
        .expect("building the nat namespace (tests need root)")
}

/// The recipe's tap: stable MAC from the hub name, 192.168.30.1/24, up.
pub fn hub_config() -> LinkConfig {
    LinkConfig {
        mac: Some(MacAddr::local_from_seed(HUB.as_bytes())),
        ipv4: Some("192.168.30.1/24".parse().expect("valid cidr")),
        ..LinkConfig::default()
    }
}

/// `ip -n <nat> <args>`'s stdout.
pub fn ip(topo: &Topology, args: &[&str]) -> String {
    topo.ip("nat", args)
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"))
        .stdout
}

/// The `inet …` lines of `ip addr show <dev>`.
pub fn ipv4_lines(show: &str) -> Vec<String> {
    show.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("inet "))
        .map(str::to_owned)
        .collect()
}

/// Reads frames from all `queues` (polling them together) until `want`
/// returns `Some`, or panics after `timeout`. Returns the answer and the
/// index of the queue the matching frame came out of. Frames `want` rejects
/// (IPv6 router solicitations, MLD, …) are dropped.
pub fn read_until<T>(
    queues: &[TapQueue],
    timeout: Duration,
    what: &str,
    mut want: impl FnMut(usize, &[u8]) -> Option<T>,
) -> (T, usize) {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    let mut seen = 0usize;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!("no {what} within {timeout:?} ({seen} other frames seen)");
        }
        let mut fds: Vec<PollFd<'_>> = queues
            .iter()
            .map(|q| PollFd::new(q.as_fd(), PollFlags::POLLIN))
            .collect();
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        poll(&mut fds, PollTimeout::from(ms)).expect("poll on tap queues");
        let ready: Vec<bool> = fds
            .iter()
            .map(|fd| fd.revents().is_some_and(|r| r.contains(PollFlags::POLLIN)))
            .collect();
        for (queue, ready) in queues.iter().zip(ready) {
            if !ready {
                continue;
            }
            loop {
                match queue.read(&mut buf) {
                    Ok(len) => {
                        seen += 1;
                        if let Some(found) = want(queue.index(), &buf[..len]) {
                            return (found, queue.index());
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("reading tap queue {}: {e}", queue.index()),
                }
            }
        }
    }
}
