//! Telling the XDP path's route cache that routing changed.
//!
//! Each flow half caches where its packets go (`CachedHop` in
//! ethergate-common), valid only under the current `ROUTE_GENERATION`.
//! This module subscribes to the kernel's routing notifications (rtnetlink:
//! links, IPv4 addresses, routes, rules, next-hop objects, neighbours) in
//! the namespace of the thread that starts it, and bumps the generation on
//! every change that can move a flow: then the next packet of each flow
//! looks its route up again. Neighbour notifications are filtered: the
//! kernel sends one for every state change (REACHABLE → STALE → DELAY …),
//! and only a changed or failed link-layer address matters to a cache of
//! MACs. The cache also expires on its own after about a second, which
//! covers a notification lost in between (and the kernel's ENOBUFS, which
//! says so, bumps at once).
//!
//! Invariant: the generation is never 0 once started (0 turns the cache
//! off), and it starts at a random value so that caches written under
//! another process's generation never look current.

use std::{
    collections::HashMap,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use aya::maps::{Array, MapData};

/// rtnetlink multicast groups (linux/rtnetlink.h, `RTMGRP_*` bits).
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_NEIGH: u32 = 0x4;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV4_RULE: u32 = 0x80;
/// `RTNLGRP_NEXTHOP`: beyond the 32-bit mask, joined by setsockopt.
const RTNLGRP_NEXTHOP: u32 = 32;
const RTM_NEWNEIGH: u16 = 28;
const RTM_DELNEIGH: u16 = 29;
const NLMSG_HEADER_LEN: usize = 16;
/// `struct ndmsg`: family, pads, ifindex, state, flags, type.
const NDMSG_LEN: usize = 12;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NUD_INCOMPLETE: u16 = 0x01;
const NUD_FAILED: u16 = 0x20;
/// How often the thread looks at its stop flag while nothing happens.
const POLL: Duration = Duration::from_millis(200);

/// The running watcher; stops when dropped.
pub(crate) struct RouteWatch {
    stop: Arc<AtomicBool>,
    changes: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RouteWatch {
    /// Subscribes in the calling thread's network namespace, writes a
    /// random first generation into `generation` (`ROUTE_GENERATION`) and
    /// starts the thread that bumps it.
    pub(crate) fn start(mut generation: Array<MapData, u32>) -> io::Result<Self> {
        let socket = subscribe()?;
        let mut current = first_generation()?;
        generation
            .set(0, current, 0)
            .map_err(|e| io::Error::other(format!("ROUTE_GENERATION: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let changes = Arc::new(AtomicU64::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let changes = Arc::clone(&changes);
            std::thread::Builder::new()
                .name("route-watch".into())
                .spawn(move || {
                    let mut neighbours = Neighbours::default();
                    let mut buf = vec![0u8; 64 * 1024];
                    while !stop.load(Ordering::Relaxed) {
                        let changed = match receive(&socket, &mut buf) {
                            Ok(0) => false,
                            Ok(n) => buf.get(..n).is_some_and(|b| neighbours.moves_flows(b)),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                            // ENOBUFS: notifications were lost; anything
                            // may have changed.
                            Err(_) => true,
                        };
                        if changed {
                            current = next_generation(current);
                            // A failed write leaves the old generation; the
                            // caches still expire with their epoch.
                            if generation.set(0, current, 0).is_ok() {
                                changes.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })?
        };
        Ok(Self {
            stop,
            changes,
            thread: Some(thread),
        })
    }

    /// Routing changes seen (generation bumps) since start.
    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }
}

impl Drop for RouteWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn next_generation(current: u32) -> u32 {
    match current.wrapping_add(1) {
        0 => 1,
        next => next,
    }
}

fn first_generation() -> io::Result<u32> {
    let mut bytes = [0u8; 4];
    // SAFETY: bytes is a writable 4-byte buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(io::Error::last_os_error());
    }
    Ok(u32::from_ne_bytes(bytes).max(1))
}

fn subscribe() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new socket we own.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero is a valid sockaddr_nl.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    addr.nl_groups =
        RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV4_RULE;
    // SAFETY: addr is a live sockaddr_nl of the given size.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // Next-hop objects (`ip nexthop`) have their own group; a kernel
    // without it refuses, and routes then carry their next hops anyway.
    let _ = set_option(
        &socket,
        libc::SOL_NETLINK,
        libc::NETLINK_ADD_MEMBERSHIP,
        RTNLGRP_NEXTHOP,
    );
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: POLL.as_micros() as libc::suseconds_t,
    };
    // SAFETY: timeout is a live timeval of the given size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

fn set_option(socket: &OwnedFd, level: i32, name: i32, value: u32) -> io::Result<()> {
    // SAFETY: value is a live u32 of the given size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            std::mem::size_of::<u32>() as u32,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn receive(socket: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is writable for its length.
    let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// What the watcher knows of IPv4 neighbours: (ifindex, address) → MAC.
#[derive(Default)]
struct Neighbours {
    known: HashMap<(i32, [u8; 4]), [u8; 6]>,
}

impl Neighbours {
    /// Whether any message in `batch` (one or more netlink messages) can
    /// move a cached flow.
    fn moves_flows(&mut self, mut batch: &[u8]) -> bool {
        let mut moves = false;
        while batch.len() >= NLMSG_HEADER_LEN {
            let len = u32::from_ne_bytes([batch[0], batch[1], batch[2], batch[3]]) as usize;
            let kind = u16::from_ne_bytes([batch[4], batch[5]]);
            if len < NLMSG_HEADER_LEN || len > batch.len() {
                // Malformed: we cannot tell what changed, so assume it did.
                return true;
            }
            let body = &batch[NLMSG_HEADER_LEN..len];
            moves |= match kind {
                RTM_NEWNEIGH | RTM_DELNEIGH => self.neighbour(kind, body),
                _ => true,
            };
            batch = batch.get(align4(len)..).unwrap_or_default();
        }
        moves
    }

    fn neighbour(&mut self, kind: u16, body: &[u8]) -> bool {
        let Some(header) = body.get(..NDMSG_LEN) else {
            return true;
        };
        if header[0] != libc::AF_INET as u8 {
            // IPv6 and bridge forwarding entries: not ours to cache.
            return false;
        }
        let ifindex = i32::from_ne_bytes([header[4], header[5], header[6], header[7]]);
        let state = u16::from_ne_bytes([header[8], header[9]]);
        let (mut dst, mut lladdr) = (None, None);
        let mut attrs = body.get(NDMSG_LEN..).unwrap_or_default();
        while attrs.len() >= 4 {
            let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
            let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
            let Some(value) = attrs.get(4..len) else {
                return true;
            };
            match kind {
                NDA_DST => dst = <[u8; 4]>::try_from(value).ok(),
                NDA_LLADDR => lladdr = <[u8; 6]>::try_from(value).ok(),
                _ => {}
            }
            attrs = attrs.get(align4(len)..).unwrap_or_default();
        }
        let Some(dst) = dst else {
            return true;
        };
        let key = (ifindex, dst);
        if kind == RTM_DELNEIGH || state & (NUD_FAILED | NUD_INCOMPLETE) != 0 {
            return self.known.remove(&key).is_some() || kind == RTM_DELNEIGH;
        }
        match lladdr {
            // A neighbour the watcher has not heard of yet cannot be in a
            // cache with another address: caches hold only resolved MACs,
            // and an address change would have been announced.
            Some(mac) => self.known.insert(key, mac).is_some_and(|old| old != mac),
            None => false,
        }
    }
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn neigh(kind: u16, state: u16, dst: [u8; 4], mac: Option<[u8; 6]>) -> Vec<u8> {
        let mut body = vec![libc::AF_INET as u8, 0, 0, 0];
        body.extend(7i32.to_ne_bytes());
        body.extend(state.to_ne_bytes());
        body.extend([0, 1]);
        body.extend(8u16.to_ne_bytes());
        body.extend(NDA_DST.to_ne_bytes());
        body.extend(dst);
        if let Some(mac) = mac {
            body.extend(10u16.to_ne_bytes());
            body.extend(NDA_LLADDR.to_ne_bytes());
            body.extend(mac);
            body.extend([0, 0]);
        }
        let mut msg = ((NLMSG_HEADER_LEN + body.len()) as u32)
            .to_ne_bytes()
            .to_vec();
        msg.extend(kind.to_ne_bytes());
        msg.extend([0u8; 10]);
        msg.extend(body);
        msg
    }

    const REACHABLE: u16 = 0x02;
    const STALE: u16 = 0x04;

    #[test]
    fn only_a_changed_or_lost_neighbour_moves_flows() {
        let mut n = Neighbours::default();
        let gw = [203, 0, 113, 10];
        let a = [2, 0, 0, 0, 0, 1];
        let b = [2, 0, 0, 0, 0, 2];
        assert!(
            !n.moves_flows(&neigh(RTM_NEWNEIGH, REACHABLE, gw, Some(a))),
            "first sight"
        );
        assert!(
            !n.moves_flows(&neigh(RTM_NEWNEIGH, STALE, gw, Some(a))),
            "state only"
        );
        assert!(
            !n.moves_flows(&neigh(RTM_NEWNEIGH, REACHABLE, gw, None)),
            "no address"
        );
        assert!(
            n.moves_flows(&neigh(RTM_NEWNEIGH, REACHABLE, gw, Some(b))),
            "new MAC"
        );
        assert!(
            n.moves_flows(&neigh(RTM_NEWNEIGH, NUD_FAILED, gw, None)),
            "failed"
        );
        assert!(
            !n.moves_flows(&neigh(RTM_NEWNEIGH, REACHABLE, gw, Some(a))),
            "back, fresh"
        );
        assert!(
            n.moves_flows(&neigh(RTM_DELNEIGH, STALE, gw, Some(a))),
            "deleted"
        );
    }

    #[test]
    fn everything_else_and_garbage_moves_flows() {
        let mut n = Neighbours::default();
        let mut route = (NLMSG_HEADER_LEN as u32 + 12).to_ne_bytes().to_vec();
        route.extend(24u16.to_ne_bytes()); // RTM_NEWROUTE
        route.extend([0u8; 10 + 12]);
        assert!(n.moves_flows(&route));
        assert!(n.moves_flows(&[0xff; 20]), "a length beyond the batch");
        let mut short = neigh(RTM_NEWNEIGH, REACHABLE, [1, 2, 3, 4], None);
        short.truncate(NLMSG_HEADER_LEN + 4);
        let len = (short.len() as u32).to_ne_bytes();
        short[0..4].copy_from_slice(&len);
        assert!(n.moves_flows(&short), "a cut ndmsg");
        assert!(!n.moves_flows(&[]));
    }

    #[test]
    fn generations_skip_zero() {
        assert_eq!(next_generation(u32::MAX), 1);
        assert_eq!(next_generation(5), 6);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever the socket hands over, the parser answers and never
        /// panics or loops (every step consumes at least 4 bytes).
        #[test]
        fn any_batch_is_answered(batch in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut n = Neighbours::default();
            let _ = n.moves_flows(&batch);
        }

        /// A neighbour's MAC moving always reports, whatever came before.
        #[test]
        fn a_moved_mac_always_moves_flows(
            a in any::<[u8; 6]>(),
            b in any::<[u8; 6]>(),
            dst in any::<[u8; 4]>(),
        ) {
            prop_assume!(a != b);
            let mut n = Neighbours::default();
            n.moves_flows(&tests::neigh(RTM_NEWNEIGH, 0x02, dst, Some(a)));
            prop_assert!(n.moves_flows(&tests::neigh(RTM_NEWNEIGH, 0x02, dst, Some(b))));
        }
    }
}
