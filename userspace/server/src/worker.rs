//! Thread-per-core workers, each with its own io_uring runtime (compio) and
//! its own SO_REUSEPORT listening socket per address, so the kernel spreads
//! new connections across cores and no accept lock is shared.
//!
//! Invariant: every listening socket is bound in the caller's thread before
//! any worker starts, so "address in use" and permission errors surface at
//! start-up as errors, not as a half-started server.

use std::{
    cell::RefCell,
    net::SocketAddr,
    rc::Rc,
    sync::{Arc, OnceLock, atomic::AtomicU64},
    thread::JoinHandle,
    time::Instant,
};

use compio::net::TcpListener;
use ethergate_proto::Timestamp;
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, error, info};

use crate::{
    connection,
    directory::Directory,
    hub_plane::{HubPlane, SwitchBuffers},
    login_throttle::ThrottleReason,
    tap_reader,
};

/// Backlog per listening socket; the kernel caps it at somaxconn.
const LISTEN_BACKLOG: i32 = 1024;

/// Counters shared by all workers.
#[derive(Debug)]
pub struct Stats {
    pub logins_ok: AtomicU64,
    /// Refused logins by SoftEther error code (index; the last slot
    /// collects codes past the table).
    logins_failed: [AtomicU64; FAILURE_CODES],
    /// Logins refused before their password was checked, by
    /// [`ThrottleReason`] (source, user).
    logins_throttled: [AtomicU64; 2],
    /// Connections closed because their peer stopped taking bytes.
    pub write_timeouts: AtomicU64,
}

const FAILURE_CODES: usize = 64;

impl Default for Stats {
    fn default() -> Self {
        Self {
            logins_ok: AtomicU64::new(0),
            logins_failed: std::array::from_fn(|_| AtomicU64::new(0)),
            logins_throttled: std::array::from_fn(|_| AtomicU64::new(0)),
            write_timeouts: AtomicU64::new(0),
        }
    }
}

impl Stats {
    pub fn login_failed(&self, code: ethergate_proto::ErrorCode) {
        let slot = (code.0 as usize).min(FAILURE_CODES - 1);
        self.logins_failed[slot].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn login_throttled(&self, reason: ThrottleReason) {
        self.logins_throttled[reason as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Logins refused without a verdict so far, by reason.
    pub fn logins_throttled(&self) -> [(ThrottleReason, u64); 2] {
        [ThrottleReason::Source, ThrottleReason::User].map(|r| {
            (
                r,
                self.logins_throttled[r as usize].load(std::sync::atomic::Ordering::Relaxed),
            )
        })
    }

    /// Refused logins so far, by error code (codes with a count only).
    pub fn logins_failed(&self) -> Vec<(ethergate_proto::ErrorCode, u64)> {
        self.logins_failed
            .iter()
            .enumerate()
            .filter_map(|(code, n)| {
                let n = n.load(std::sync::atomic::Ordering::Relaxed);
                (n > 0).then_some((ethergate_proto::ErrorCode(code as u32), n))
            })
            .collect()
    }
}

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
}

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The instant all protocol timestamps count from.
pub fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

pub fn now() -> Timestamp {
    Timestamp::from_elapsed(epoch().elapsed())
}

static RANDOM: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();

/// Session keys and server randoms come from the same CSPRNG as TLS.
pub fn system_random(buf: &mut [u8]) {
    let provider = RANDOM.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    // Without a working system RNG no TLS handshake can succeed either;
    // there is nothing sensible to continue with.
    provider
        .secure_random
        .fill(buf)
        .expect("the system random number generator failed");
}

/// A bound, listening, non-blocking socket for one worker.
pub fn bind_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // `[::]:443` next to `0.0.0.0:443` must not collide.
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Runs one worker thread until `stop` closes. Every hub sent on `hubs`
/// (all hubs, from the directory) gets its tap queues read here, those
/// whose index is this worker's modulo the worker count.
pub fn spawn(
    listeners: Vec<std::net::TcpListener>,
    worker: Worker,
    hubs: async_channel::Receiver<Arc<HubPlane>>,
    stop: async_channel::Receiver<()>,
) -> std::io::Result<JoinHandle<()>> {
    let index = worker.index;
    std::thread::Builder::new()
        .name(format!("ethergate-w{index}"))
        .spawn(move || {
            crate::privileges::drop_for_this_thread("worker");
            let runtime = match compio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    error!("worker {index}: cannot start io_uring runtime: {e}");
                    return;
                }
            };
            runtime.block_on(run(index, listeners, Rc::new(worker), hubs, stop));
        })
}

async fn run(
    index: usize,
    listeners: Vec<std::net::TcpListener>,
    worker: Rc<Worker>,
    hubs: async_channel::Receiver<Arc<HubPlane>>,
    stop: async_channel::Receiver<()>,
) {
    let mut accepting = Vec::new();
    for std_listener in listeners {
        let listener = match TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                error!("worker {index}: cannot register a listener: {e}");
                continue;
            }
        };
        accepting.push(compio::runtime::spawn(accept_loop(
            listener,
            Rc::clone(&worker),
        )));
    }
    debug!(index, listeners = accepting.len(), "worker running");
    loop {
        let stopping = stop.recv();
        let hub = hubs.recv();
        futures_util::pin_mut!(stopping, hub);
        match futures_util::future::select(stopping, hub).await {
            futures_util::future::Either::Right((Ok(plane), _)) => read_taps(&worker, &plane),
            futures_util::future::Either::Right((Err(_), stopping)) => {
                // No more hubs can come (the directory is gone).
                let _ = stopping.await;
                break;
            }
            futures_util::future::Either::Left(_) => break,
        }
    }
    drop(accepting);
    info!(index, "worker stopping");
}

/// Starts this worker's readers of `plane`'s tap queues.
fn read_taps(worker: &Rc<Worker>, plane: &Arc<HubPlane>) {
    for queue in plane.tap_queues() {
        if queue.index() % worker.workers != worker.index {
            continue;
        }
        match queue.try_clone() {
            Ok(queue) => {
                compio::runtime::spawn(tap_reader::run(Arc::clone(plane), queue, Rc::clone(worker)))
                    .detach()
            }
            Err(e) => error!(
                hub = plane.name,
                queue = queue.index(),
                "cannot read a tap queue: {e}"
            ),
        }
    }
}

async fn accept_loop(listener: TcpListener, worker: Rc<Worker>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                compio::runtime::spawn(connection::serve(stream, peer, Rc::clone(&worker)))
                    .detach();
            }
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                error!("accept: {e}");
                compio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
