//! ethergate's VPN server runtime: io_uring (compio) workers, one per core,
//! serving SoftEther-protocol sessions over TLS. Each worker switches the
//! frames it decrypts through the session's hub and writes them to its own
//! queue of the hub's tap, and reads its own tap queues and hands what it
//! reads to the sessions' connections: no thread between a socket and a tap
//! (see [`hub_plane`]).
//!
//! The protocol itself lives in `ethergate-proto` (sans-IO); this crate only
//! moves bytes: sockets ↔ rustls ↔ protocol state machine ↔ hub channels.
//! See docs/decisions/0002-vpn-server-runtime.md for the threading model.

mod admission;
pub mod certificate;
mod connection;
mod counters;
mod directory;
mod hub_handle;
mod login_throttle;
pub mod privileges;
mod random;
mod read_sizer;
mod snapshot;
mod tap_reader;
pub mod tls;
mod udp;
mod udp_accel;
mod worker;
mod worker_context;

// The data path's parts, public only for the benchmarks and the kTLS
// tests (feature `internals`); the appliance uses the API below.
#[cfg(feature = "internals")]
pub mod hub_plane;
#[cfg(not(feature = "internals"))]
mod hub_plane;
#[cfg(feature = "internals")]
pub mod hub_switch;
#[cfg(not(feature = "internals"))]
mod hub_switch;
#[cfg(feature = "internals")]
pub mod ktls;
#[cfg(not(feature = "internals"))]
mod ktls;
#[cfg(feature = "internals")]
pub mod outbox;
#[cfg(not(feature = "internals"))]
mod outbox;
#[cfg(feature = "internals")]
pub mod transport;
#[cfg(not(feature = "internals"))]
mod transport;
mod wireguard;

use std::{
    net::SocketAddr,
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

pub use admission::AdmissionLimits;
pub use counters::HubCounts;
pub use directory::{EndReason, Limits};
pub use hub_handle::{HubAccess, HubError, HubHandle, HubSetup};
pub use ktls::{KtlsSupport, OffloadPolicy};
pub use login_throttle::ThrottleConfig;
pub use random::system_random;
pub use snapshot::{
    HubSnapshot, ServerSnapshot, SessionProtocol, SessionSnapshot, SessionUdpSnapshot,
    UdpAccelSnapshot,
};
pub use wireguard::{Addressing, PeerSetup, WireguardSetup};
pub use worker::worker_for_source;

use counters::Stats;
use directory::Directory;

/// How long [`RunningServer::stop`] waits for the connections of the
/// sessions it ends to close (each sends close_notify and FIN).
const STOP_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot bind UDP {addr} for UDP acceleration (set `udp_acceleration = false` under [server] to serve TCP only): {source}"
    )]
    UdpAcceleration {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start worker thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// What the listeners need.
pub struct ListenerSetup {
    pub listen: Vec<SocketAddr>,
    /// Worker threads; 0 means one per available core.
    pub workers: usize,
    pub tls: Arc<rustls::ServerConfig>,
    pub proto: ethergate_proto::ServerConfig,
    /// Offer SoftEther's UDP acceleration to clients that ask for it, on
    /// the UDP port of each listen address (docs/udp-acceleration.md).
    pub udp_acceleration: bool,
}

impl ListenerSetup {
    /// The worker threads this setup starts.
    pub fn workers(&self) -> usize {
        if self.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.workers
        }
    }
}

/// Running listeners; dropping it (or [`RunningServer::stop`]) stops them.
pub struct RunningServer {
    stop: Option<async_channel::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    reaper: Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>,
    stats: Arc<Stats>,
    directory: Arc<Directory>,
    workers: usize,
    udp_acceleration: bool,
    /// TLS mode (kernel or userspace) and per-connection outcome counters.
    tls_offload: Arc<ktls::Offload>,
}

impl RunningServer {
    /// Registers `hubs`, binds every address once per worker
    /// (SO_REUSEPORT), then starts the workers. Bind errors are returned
    /// before anything runs. Sessions run TLS in userspace (rustls) unless
    /// `ETHERGATE_KTLS` says `auto` (kernel TLS where the kernel offers it)
    /// or `always` (tried on every connection, falling back per
    /// connection): kernel TLS has not carried a session end to end on a
    /// kernel we test on (and ends a connection at a TLS 1.3 KeyUpdate), so
    /// it is opt-in until proven (decision 0002, docs/operator.md).
    pub fn start(
        setup: ListenerSetup,
        limits: Limits,
        hubs: impl IntoIterator<Item = (HubHandle, HubAccess)>,
    ) -> Result<Self, ServerError> {
        let policy = match std::env::var("ETHERGATE_KTLS").as_deref() {
            Ok("auto") => OffloadPolicy::Auto,
            Ok("always") => OffloadPolicy::Always,
            _ => OffloadPolicy::Never,
        };
        let directory = Directory::new(limits);
        for (hub, access) in hubs {
            directory.add_hub(&hub.plane, access);
        }
        let offload = Arc::new(ktls::Offload::new(policy, ktls::probe()));
        let tls = offload.server_config(Arc::clone(&setup.tls));
        let workers = setup.workers();
        let mut per_worker = Vec::with_capacity(workers);
        for _ in 0..workers {
            let mut listeners = Vec::with_capacity(setup.listen.len());
            for &addr in &setup.listen {
                let listener = worker::bind_listener(addr)
                    .map_err(|source| ServerError::Listen { addr, source })?;
                listeners.push(listener);
            }
            per_worker.push(listeners);
        }
        if workers > 1 {
            for (at, addr) in setup.listen.iter().enumerate() {
                if let Some(first) = per_worker.first().and_then(|l| l.get(at)) {
                    // Without it connections still work, spread by port.
                    if let Err(e) = worker::steer_by_source(first, addr.is_ipv6(), workers) {
                        tracing::warn!(%addr, "cannot keep a client's connections on one worker: {e}");
                    }
                }
            }
        }
        let mut udp_per_worker: Vec<Vec<udp_accel::WorkerSocket>> =
            (0..workers).map(|_| Vec::new()).collect();
        if setup.udp_acceleration {
            for &addr in &setup.listen {
                let sockets = udp::bind_sockets(addr, workers, udp::ReplySource::Known)
                    .map_err(|source| ServerError::UdpAcceleration { addr, source })?;
                for (worker, socket) in sockets.into_iter().enumerate() {
                    let bound = socket.local_addr().unwrap_or(addr);
                    if let Some(list) = udp_per_worker.get_mut(worker) {
                        list.push(udp_accel::WorkerSocket {
                            bound,
                            socket: Arc::new(socket),
                        });
                    }
                }
            }
        }
        let directory = Arc::new(directory);
        let stats = Arc::new(Stats::default());
        let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
        let mut threads = Vec::with_capacity(workers);
        for (index, (listeners, udp_accel)) in
            per_worker.into_iter().zip(udp_per_worker).enumerate()
        {
            let worker = worker_context::Worker {
                index,
                workers,
                switch_buffers: std::cell::RefCell::default(),
                directory: Arc::clone(&directory),
                tls: Arc::clone(&tls),
                proto: setup.proto.clone(),
                stats: Arc::clone(&stats),
                offload: Arc::clone(&offload),
                udp_accel,
                keepalives: Default::default(),
            };
            let hubs = directory.register_worker();
            let thread = worker::spawn(listeners, worker, hubs, stop_rx.clone())
                .map_err(ServerError::Thread)?;
            threads.push(thread);
        }
        let reaper = spawn_reaper(Arc::clone(&directory)).map_err(ServerError::Thread)?;
        Ok(Self {
            stop: Some(stop_tx),
            threads,
            reaper: Some(reaper),
            stats,
            directory,
            workers,
            udp_acceleration: setup.udp_acceleration,
            tls_offload: offload,
        })
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Whether the kernel offers TLS offload (probed at start).
    pub fn ktls_support(&self) -> &KtlsSupport {
        &self.tls_offload.support
    }

    /// The TLS mode new sessions run in: "kernel" or "userspace".
    pub fn tls_mode(&self) -> &'static str {
        self.tls_offload.mode()
    }

    /// Registers a hub a reload added with its users, and hands it to
    /// every worker (they start reading its tap queues). Replaces a hub of
    /// that name.
    pub fn add_hub(&self, hub: &HubHandle, access: HubAccess) {
        self.directory.add_hub(&hub.plane, access);
    }

    /// Removes a hub (a reload): its sessions close, new logins to it get
    /// "hub not found", the workers stop reading its tap.
    pub fn remove_hub(&self, name: &str) {
        self.directory.remove_hub(name);
    }

    /// Replaces a hub's users and their limits (a reload). Sessions are not
    /// touched here: end the ones whose user went or changed password with
    /// [`Self::disconnect_user`]. False when there is no such hub.
    pub fn set_access(&self, hub: &str, access: HubAccess) -> bool {
        let Some(entry) = self.directory.hub(hub) else {
            return false;
        };
        entry.set_users(access.users);
        entry.set_limits(access.limits);
        true
    }

    /// Ends the session called `name` (case-insensitive, as SoftEther
    /// shows names upper-case); false if there is none.
    pub fn disconnect(&self, session: &str) -> bool {
        self.directory.disconnect(session)
    }

    /// Ends the sessions of `user` on `hub`, or on every hub when `hub` is
    /// `None`; returns how many.
    pub fn disconnect_user(&self, hub: Option<&str>, user: &str, reason: EndReason) -> usize {
        self.directory.disconnect_user(hub, user, reason)
    }

    /// Ends the WireGuard sessions of `user` on `hub` (its key or address
    /// changed); returns how many.
    pub fn disconnect_wireguard(&self, hub: &str, user: &str, reason: EndReason) -> usize {
        self.directory.disconnect_wireguard(hub, user, reason)
    }

    /// Everything status shows, at this instant.
    pub fn snapshot(&self) -> ServerSnapshot {
        let t = self.tls_offload.counters.snapshot();
        let stats = &self.stats;
        let directory = &self.directory;
        ServerSnapshot {
            workers: self.workers,
            tls_mode: self.tls_offload.mode(),
            ktls: self.tls_offload.support.clone(),
            tls_connections: [
                ("kernel", t.kernel),
                ("userspace", t.userspace),
                ("fell_back", t.fell_back),
                ("failed", t.failed),
            ],
            pending_handshakes: directory.admission.pending() as u64,
            connections_refused: directory
                .admission
                .refusals()
                .into_iter()
                .map(|(why, n)| (why.name(), n))
                .collect(),
            write_timeouts: stats.write_timeouts(),
            logins_ok: stats.logins_ok(),
            logins_failed: stats.logins_failed(),
            logins_throttled: stats
                .logins_throttled()
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(why, n)| (why.name(), n))
                .collect(),
            hubs: directory
                .hubs()
                .iter()
                .map(|entry| snapshot::hub(directory, &entry.plane))
                .collect(),
            sessions: directory.sessions().iter().map(snapshot::session).collect(),
            udp_acceleration: self
                .udp_acceleration
                .then(|| snapshot::udp_acceleration(&directory.udp_accel.counters)),
        }
    }

    /// Stops accepting and drops every connection; returns when all worker
    /// threads have ended.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.stop.is_some() {
            // End the sessions while the workers still run, so that every
            // connection closes with a TLS close_notify before its FIN
            // (`Transport::close_notify`); dropping the workers' runtimes
            // would cut them with a bare FIN, which the SoftEther client
            // never recovers from without a manual reconnect.
            let ended = self.directory.end_all_sessions();
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline && ended.iter().any(|s| s.connections() > 0) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Closing the channel wakes every worker's `stop.recv()`.
        drop(self.stop.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        if let Some((stop, thread)) = self.reaper.take() {
            drop(stop);
            let _ = thread.join();
        }
        for hub in self.directory.hubs() {
            hub.plane.persist_leases();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How often refusals an attacker can provoke at will are summarised in
/// the log (one line per kind per interval, instead of one per refusal).
const REFUSAL_SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Every second, removes sessions whose resume window has passed and does
/// the hubs' housekeeping (MAC aging, gauges, lease file); every
/// [`REFUSAL_SUMMARY_EVERY`], logs what the front door refused. Ends when
/// its sender is dropped.
fn spawn_reaper(
    directory: Arc<Directory>,
) -> std::io::Result<(std::sync::mpsc::Sender<()>, JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("session-reaper".to_owned())
        .spawn(move || {
            privileges::drop_for_this_thread("session reaper");
            let mut last_summary = Instant::now();
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(std::time::Duration::from_secs(1))
            {
                let reaped = directory.reap_orphans(std::time::Instant::now());
                if reaped > 0 {
                    tracing::info!(reaped, "sessions closed (not resumed within their timeout)");
                }
                directory.hub_housekeeping();
                if last_summary.elapsed() >= REFUSAL_SUMMARY_EVERY {
                    last_summary = Instant::now();
                    log_refusal_summaries(&directory);
                }
            }
            log_refusal_summaries(&directory);
        })?;
    Ok((tx, thread))
}

fn log_refusal_summaries(directory: &Directory) {
    if let Some(line) = directory.admission.summary() {
        tracing::warn!("{line}");
    }
    let throttled = directory
        .login_throttle
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .summary();
    if let Some(line) = throttled {
        tracing::warn!("{line}");
    }
}
