//! What one worker thread serves connections with, and the clock its
//! connections' protocol state machines use. Apart from the
//! worker loop (`worker.rs`) so connections and tap readers can depend on it
//! without depending on the loop that spawns them.

use std::{
    cell::RefCell,
    sync::{Arc, OnceLock},
    time::Instant,
};

use ethergate_proto::Timestamp;

use crate::{counters::Stats, directory::Directory, hub_plane::SwitchBuffers};

/// What one worker thread serves connections with.
pub struct Worker {
    /// Which worker this is: the tap queue it writes, and (modulo the
    /// worker count) the ones it reads.
    pub index: usize,
    pub workers: usize,
    /// Scratch for switching batches through hubs (one batch at a time on
    /// this thread, never borrowed across an await).
    pub switch_buffers: RefCell<SwitchBuffers>,
    pub directory: Arc<Directory>,
    pub tls: Arc<rustls::ServerConfig>,
    pub proto: ethergate_proto::ServerConfig,
    pub stats: Arc<Stats>,
    /// Whether connections move into kernel TLS, and how many did.
    pub offload: Arc<crate::ktls::Offload>,
    /// This worker's UDP acceleration socket on each listen address
    /// (empty when UDP acceleration is off).
    pub udp_accel: Vec<crate::udp_accel::WorkerSocket>,
    /// The keep-alives of the UDP acceleration sessions logged in here.
    pub keepalives: crate::udp_accel::keepalive::KeepaliveQueue,
}

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The instant all protocol timestamps count from.
pub fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

pub fn now() -> Timestamp {
    Timestamp::from_elapsed(epoch().elapsed())
}
