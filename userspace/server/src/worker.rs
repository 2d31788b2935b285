//! Thread-per-core workers, each with its own io_uring runtime (compio) and
//! its own SO_REUSEPORT listening socket per address, so the kernel spreads
//! new connections across cores and no accept lock is shared.
//!
//! Invariant: every listening socket is bound in the caller's thread before
//! any worker starts, so "address in use" and permission errors surface at
//! start-up as errors, not as a half-started server.

use std::{net::SocketAddr, rc::Rc, sync::Arc, thread::JoinHandle};

use compio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, error, info};

use crate::{connection, hub_plane::HubPlane, tap_reader, worker_context::Worker};

/// Backlog per listening socket; the kernel caps it at somaxconn.
const LISTEN_BACKLOG: i32 = 1024;

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

/// Makes the kernel hand every connection from one client address to the
/// same worker: `listener` is the first of one address's SO_REUSEPORT
/// group (whose sockets were bound in worker order), and the group gets a
/// classic BPF program that picks socket `hash(source address) % workers`.
///
/// Why: a SoftEther session opens up to 32 TCP connections from one
/// address (`/MAXTCP`). The kernel's default spreads them over the workers
/// by their ports; each worker then writes its connections' frames to its
/// own tap queue, and the kernel forwards those queues on different CPUs,
/// reordering one inner flow's segments (the client may send one flow over
/// several connections). With every connection of a session on one worker,
/// its frames are switched in the order they arrive, as in SoftEther's
/// single session thread, and the tap steers replies back to the same
/// worker's queue, so a session's frames never cross threads. The cost:
/// clients behind one address share a core.
pub fn steer_by_source(
    listener: &impl std::os::fd::AsRawFd,
    ipv6: bool,
    workers: usize,
) -> std::io::Result<()> {
    // Classic BPF can address the network header at a negative offset.
    const SKF_NET_OFF: u32 = (-0x100000i32) as u32;
    let source_word = if ipv6 { 8 + 12 } else { 12 };
    let op = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let program = [
        // A = the source address's last 32 bits
        op(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            SKF_NET_OFF + source_word,
        ),
        // A = (A * STEER_MULTIPLIER) >> STEER_SHIFT
        op(
            libc::BPF_ALU | libc::BPF_MUL | libc::BPF_K,
            STEER_MULTIPLIER,
        ),
        op(libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K, STEER_SHIFT),
        op(
            libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K,
            workers.max(1) as u32,
        ),
        op(libc::BPF_RET | libc::BPF_A, 0),
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `program`, both alive for the call; the
    // kernel copies the program.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&raw const fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The source-address hash of [`steer_by_source`] (in classic BPF) and of
/// [`worker_for_source`] (here), one definition for both: 2^32/φ, so
/// neighbouring addresses spread over the workers, then the high bits.
const STEER_MULTIPLIER: u32 = 0x9e37_79b1;
const STEER_SHIFT: u32 = 16;

/// The worker [`steer_by_source`] gives connections from `address`.
pub fn worker_for_source(address: std::net::IpAddr, workers: usize) -> usize {
    let word = match address {
        std::net::IpAddr::V4(v4) => u32::from(v4),
        std::net::IpAddr::V6(v6) => {
            let o = v6.octets();
            u32::from_be_bytes([o[12], o[13], o[14], o[15]])
        }
    };
    (word.wrapping_mul(STEER_MULTIPLIER) >> STEER_SHIFT) as usize % workers.max(1)
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
    if !worker.udp_accel.is_empty() {
        accepting.push(compio::runtime::spawn(crate::udp_accel::keepalive::run(
            Rc::clone(&worker),
        )));
    }
    for udp in &worker.udp_accel {
        match udp.socket.try_clone() {
            Ok(socket) => accepting.push(compio::runtime::spawn(crate::udp_accel::receive::run(
                socket,
                Rc::clone(&worker),
            ))),
            Err(e) => error!(
                "worker {index}: cannot read UDP acceleration on {}: {e}",
                udp.bound
            ),
        }
    }
    debug!(index, listeners = accepting.len(), "worker running");
    loop {
        let stopping = stop.recv();
        let hub = hubs.recv();
        futures_util::pin_mut!(stopping, hub);
        match futures_util::future::select(stopping, hub).await {
            futures_util::future::Either::Right((Ok(plane), _)) => {
                read_taps(&worker, &plane);
                serve_wireguard(&worker, &plane);
            }
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

/// Starts this worker's receive loop for `plane`'s WireGuard socket.
fn serve_wireguard(worker: &Rc<Worker>, plane: &Arc<HubPlane>) {
    let Some(wg) = plane.wireguard() else {
        return;
    };
    match wg.take_socket(worker.index) {
        Some(socket) => compio::runtime::spawn(crate::wireguard::receive::run(
            Arc::clone(wg),
            Arc::clone(plane),
            socket,
            Rc::clone(worker),
        ))
        .detach(),
        None => error!(
            hub = plane.name,
            worker = worker.index,
            "no WireGuard socket for this worker"
        ),
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

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};

    use super::*;

    /// Real sockets on loopback: with the steering program attached, every
    /// connection from one source address lands on the listener
    /// [`worker_for_source`] names, whatever its source port.
    #[test]
    fn connections_from_one_address_reach_one_worker() {
        let workers = 3;
        let first = bind_listener("127.0.0.1:0".parse().expect("literal")).expect("bind");
        let addr = first.local_addr().expect("bound");
        let mut listeners = vec![first];
        for _ in 1..workers {
            listeners.push(bind_listener(addr).expect("same port, SO_REUSEPORT"));
        }
        steer_by_source(&listeners[0], false, workers).expect("attach the program");
        let mut seen = std::collections::BTreeSet::new();
        for host in 1..=24u8 {
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 1, host));
            let want = worker_for_source(source, workers);
            seen.insert(want);
            for _ in 0..3 {
                let socket =
                    socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                        .expect("socket");
                socket
                    .bind(&SocketAddr::new(source, 0).into())
                    .expect("bind a loopback source");
                socket.connect(&addr.into()).expect("connect");
                let stream: TcpStream = socket.into();
                let local = stream.local_addr().expect("local");
                let accepted = listeners
                    .iter()
                    .position(|l| l.accept().is_ok_and(|(_, peer)| peer == local));
                assert_eq!(accepted, Some(want), "connection from {local}");
            }
        }
        assert_eq!(seen.len(), workers, "24 addresses use every worker");
    }
}
