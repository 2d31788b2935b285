//! The client's virtual NIC: one tap queue registered with the io_uring
//! runtime, its MAC, and applying what DHCP granted (address, routes) over
//! rtnetlink through `ethergate-bridge`.
//!
//! The tap is opened with a virtio-net header where the kernel allows it,
//! as the server's are (`ethergate_hub::offload`): the client's own TCP
//! hands over 64 KiB super-frames, cut here into the ordinary frames the
//! SoftEther protocol carries, and the frames from the server are merged
//! back into GSO frames for the tap, so neither direction costs a system
//! call per frame.
//!
//! Invariant: the tap outlives every session — reconnecting never takes
//! the interface (or its address and routes) down, so sockets bound to it
//! survive a server restart. The kernel removes the tap, with its address
//! and routes, when the client exits.

use std::{net::Ipv4Addr, rc::Rc};

use compio::{BufResult, io::AsyncRead, runtime::fd::AsyncFd};
use ethergate_bridge::{
    Ipv4Cidr, LinkConfig, MacAddr, RouteError, Tap, TapOptions, TapQueue, add_route,
};
use ethergate_hub::offload::{self, Coalescer, SegmentOut, VNET_HDR_LEN, VnetHdr};
use ethergate_proto::data::Frames;
use tracing::{debug, info, warn};

use crate::{dhcp::Lease, error::ClientError};

/// Largest frame read from the tap without offload: MTU 1500 + Ethernet +
/// a VLAN tag; SoftEther's ceiling is 1600 (spec §7.1).
const TAP_FRAME_MAX: usize = 1600;
/// Largest read with offload: the header, then up to a 64 KiB IP packet
/// behind Ethernet and a VLAN tag.
const TAP_OFFLOAD_READ_MAX: usize = VNET_HDR_LEN + 18 + 65535;
/// Reads taken as one burst: one waited for, the rest while queued.
const READ_BURST: usize = 16;
/// A burst stops growing past this many bytes of frames (about a
/// millisecond at several Gbit/s), so one batch stays a bounded amount of
/// memory in the queue to the session.
const BURST_BYTES: usize = 256 * 1024;

pub struct Nic {
    pub name: String,
    pub ifindex: u32,
    pub mac: MacAddr,
    queue: AsyncFd<TapQueue>,
}

impl Nic {
    /// Creates (or attaches to) the tap, sets its MAC, brings it up, and
    /// puts `address` on it if given. Must run on the runtime thread.
    pub fn create(
        name: &str,
        mac: MacAddr,
        address: Option<Ipv4Cidr>,
    ) -> Result<Rc<Nic>, ClientError> {
        let offload = TapOptions {
            vnet_hdr: true,
            ..TapOptions::default()
        };
        let tap = match Tap::create_with(name, 1, offload) {
            Ok(tap) => tap,
            Err(e) => {
                warn!(
                    tap = name,
                    "tap offload unavailable ({e}): one frame per read and write"
                );
                Tap::create(name, 1)?
            }
        };
        tap.configure(&LinkConfig {
            mac: Some(mac),
            ipv4: address,
            ..LinkConfig::default()
        })?;
        let ifindex = tap.ifindex();
        let queue = tap
            .into_queues()
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Options(format!("tap {name} came without a queue")))?;
        queue.set_blocking().map_err(ClientError::Runtime)?;
        let offload = queue.vnet_hdr();
        let queue = AsyncFd::new(queue).map_err(ClientError::Runtime)?;
        info!(tap = name, %mac, address = ?address.map(|a| a.to_string()), offload, "VPN interface up");
        Ok(Rc::new(Nic {
            name: name.to_owned(),
            ifindex,
            mac,
            queue,
        }))
    }

    /// Waits for the next burst of tap reads and appends its frames to
    /// `out` (TSO super-frames cut into ordinary frames, partial checksums
    /// completed). `Ok(0)` when the tap is gone. A read the offload code
    /// refuses costs that read only.
    pub async fn read_burst(
        &self,
        bufs: &mut TapReads,
        out: &mut Frames,
    ) -> std::io::Result<usize> {
        let queue: &TapQueue = &self.queue;
        let offload = queue.vnet_hdr();
        let read_max = if offload {
            TAP_OFFLOAD_READ_MAX
        } else {
            TAP_FRAME_MAX
        };
        let mut first = std::mem::take(&mut bufs.first);
        first.clear();
        first.reserve(read_max);
        let mut fd = &self.queue;
        let BufResult(result, returned) = fd.read(first).await;
        bufs.first = returned;
        let n = result?;
        if n == 0 {
            return Ok(0);
        }
        let mut reads = 1;
        add_frames(offload, &mut bufs.first, out, &mut bufs.refused);
        while reads < READ_BURST && out.byte_len() < BURST_BYTES {
            if bufs.more.len() < read_max {
                bufs.more.resize(read_max, 0);
            }
            match queue.read_nowait(&mut bufs.more) {
                Ok(n) if n > 0 => {
                    reads += 1;
                    add_frames(offload, &mut bufs.more[..n], out, &mut bufs.refused);
                }
                _ => break,
            }
        }
        Ok(reads)
    }

    /// Writes `frames` to the tap: with offload, consecutive segments of
    /// one TCP flow merged into GSO frames (and runs of pure ACKs of one
    /// flow thinned to the newest), as the server writes its own tap. A tap
    /// write never waits; a frame the kernel refuses is lost, as on a
    /// wire.
    pub fn write_frames<'f>(
        &self,
        frames: impl Iterator<Item = &'f [u8]>,
        coalescer: &mut Coalescer,
    ) {
        let queue: &TapQueue = &self.queue;
        let done = offload::write_batch(
            frames,
            queue.vnet_hdr().then_some(coalescer),
            &mut |header, frame| queue.write_frame(header, frame),
        );
        if let Some(e) = &done.last_error {
            debug!(failed = done.failed, "tap write: {e}");
        }
    }

    /// Puts the lease's address on the tap and installs its routes.
    pub fn apply_lease(&self, lease: &Lease) {
        let Some(address) = Ipv4Cidr::new(lease.address, lease.prefix_len) else {
            warn!(
                prefix = lease.prefix_len,
                "DHCP lease with an invalid prefix; ignored"
            );
            return;
        };
        let config = LinkConfig {
            mac: Some(self.mac),
            ipv4: Some(address),
            ..LinkConfig::default()
        };
        if let Err(e) = ethergate_bridge::configure_index(&self.name, self.ifindex, &config) {
            warn!("DHCP: cannot put {address} on {}: {e}", self.name);
            return;
        }
        info!(tap = self.name, %address, "DHCP: address configured");
        for route in lease.routes() {
            let Some(dest) =
                Ipv4Cidr::new(route.destination.network(), route.destination.prefix_len())
            else {
                continue;
            };
            match add_route(dest, route.gateway, self.ifindex) {
                Ok(()) => info!(%dest, gateway = %route.gateway, "DHCP: route installed"),
                Err(RouteError::Exists { .. }) if dest.prefix_len() == 0 => warn!(
                    gateway = %route.gateway,
                    "DHCP: a default route exists already; kept it (the server's gateway is not installed)"
                ),
                Err(RouteError::Exists { .. }) => {
                    debug!(%dest, "DHCP: route present already")
                }
                Err(e) => warn!("DHCP: {e}"),
            }
        }
    }

    /// The lease ended: the address stays until a new lease replaces it
    /// (the bridge crate has no address removal yet), which is harmless on
    /// a hub whose DHCP server hands the same address back.
    pub fn lease_lost(&self, address: Ipv4Addr, reason: &str) {
        warn!(tap = self.name, %address, "DHCP: lease lost: {reason}; acquiring a new one");
    }
}

/// Buffers for [`Nic::read_burst`], kept across bursts.
#[derive(Default)]
pub struct TapReads {
    first: Vec<u8>,
    more: Vec<u8>,
    /// Reads the offload code could not turn into frames, since the start.
    refused: u64,
}

/// The frames one tap read stands for, appended to `out`.
fn add_frames(offload: bool, read: &mut [u8], out: &mut Frames, refused: &mut u64) {
    if !offload {
        out.push(read);
        return;
    }
    let Some((hdr, frame)) = VnetHdr::parse_mut(read) else {
        *refused += 1;
        return;
    };
    if let Err(e) = offload::segment(hdr, frame, &mut Segments(out)) {
        if *refused == 0 {
            warn!("a tap read the offload code refuses ({e}); such reads are dropped");
        }
        *refused += 1;
        debug!(refused = *refused, "tap read refused: {e}");
    }
}

/// Segments cut from a super-frame, built straight into the batch.
struct Segments<'a>(&'a mut Frames);

impl SegmentOut for Segments<'_> {
    fn push_joined(&mut self, head: &[u8], body: &[u8]) -> &mut [u8] {
        self.0.push_joined(head, body)
    }
}
