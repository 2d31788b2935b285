//! One connection to the server: TCP, rustls driven sans-IO (as the
//! server's `connection.rs` does), the `ethergate-proto` client state
//! machine, and — once the session is up — frames between the tunnel and
//! the tap, with the DHCP client speaking into the tunnel directly.
//!
//! Two tasks share the state (`Rc<RefCell<..>>`, never borrowed across an
//! await): the reader turns socket bytes into protocol input, hands
//! received frames to DHCP or the tap, and wakes the writer; the writer
//! waits for tap frames, timers (protocol and DHCP), a wake-up or the stop
//! signal, and writes whatever the protocol queued. With UDP acceleration
//! granted, a third task reads the session's UDP socket, and the writer
//! sends tap frames by UDP while that path works (`udp_accel.rs`) and
//! keeps its keep-alives going. Invariant: the writer
//! flushes before it exits, so a DHCP RELEASE, a TLS close_notify or a
//! final keep-alive is never lost to a race; the session reports exactly
//! one [`SessionEnd`].

use std::{
    cell::RefCell,
    io::{Read, Write},
    net::SocketAddr,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use compio::{
    BufResult,
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use ethergate_hub::offload::Coalescer;
use ethergate_proto::{
    ClientConfig, ClientConnection, ClientEvent, CloseReason, Timestamp, data::Frames,
};
use futures_util::future::{Either, select};
use tracing::{debug, info};

use crate::{
    clock::{Clock, system_random},
    dhcp::{DhcpClient, DhcpEvent},
    nic::Nic,
    udp_accel::{self, UdpAccel},
};

/// Socket read size: several full TLS records, so one read yields many
/// frames (docs/design.md: small buffers cost CPU).
const READ_CHUNK: usize = 64 * 1024;
/// Tap bursts taken into one protocol batch, at most.
const MAX_BURSTS_PER_BATCH: usize = 8;
/// SoftEther's CONNECTING_TIMEOUT (spec §7.4): the TCP connect gets as long
/// as the real client gives it.
/// How long the loop sleeps when nothing is due: it only looks again.
const IDLE_RECHECK: Duration = Duration::from_secs(86_400);

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    /// The stop signal arrived; the lease was released and TLS closed.
    #[error("stopped")]
    Stopped,
    /// The protocol ended the connection (refusal, bad handshake, silence).
    #[error("{0}")]
    Protocol(CloseReason),
    /// TLS failed (certificate rejected, bad record, alert).
    #[error("TLS: {0}")]
    Tls(rustls::Error),
    /// The socket failed or the server closed it.
    #[error("{0}")]
    Io(String),
}

/// What a finished session hands back to the reconnect loop.
pub struct Outcome {
    pub end: SessionEnd,
    /// When the session came up, if it did.
    pub established_at: Option<Timestamp>,
    pub dhcp: Option<DhcpClient>,
}

struct Conn {
    tls: rustls::ClientConnection,
    proto: ClientConnection<fn(&mut [u8])>,
    dhcp: Option<DhcpClient>,
    nic: Rc<Nic>,
    clock: Clock,
    frames_in: Frames,
    plain_out: Vec<u8>,
    established_at: Option<Timestamp>,
    closing: bool,
    end: Option<SessionEnd>,
    /// UDP acceleration: offered at login; a path once granted.
    udp: Option<UdpAccel>,
    /// The server's address (where UDP datagrams go).
    server: SocketAddr,
    /// One sealed datagram at a time.
    udp_out: Vec<u8>,
}

impl Conn {
    fn finish(&mut self, end: SessionEnd) {
        if self.end.is_none() {
            self.end = Some(end);
        }
        self.closing = true;
    }

    fn handle_proto_events(&mut self) {
        while let Some(event) = self.proto.poll_event() {
            match event {
                ClientEvent::Hello(hello) => debug!(
                    server = hello.server_str,
                    version = hello.version,
                    build = hello.build,
                    "server hello"
                ),
                ClientEvent::Established { welcome } => {
                    let now = self.clock.now();
                    self.established_at = Some(now);
                    if let Some(w) = welcome {
                        info!(
                            session = w.session_name,
                            connection = w.connection_name,
                            timeout_ms = w.timeout_ms,
                            "session established"
                        );
                        if let Some(udp) = &mut self.udp {
                            udp.granted(w.udp_accel.as_deref(), self.server, now);
                        }
                    }
                    if let Some(dhcp) = &mut self.dhcp {
                        dhcp.start(now);
                    }
                }
                ClientEvent::Closed(reason) => self.finish(SessionEnd::Protocol(reason)),
            }
        }
    }

    /// DHCP's results and frames: events applied to the tap, frames sent
    /// into the tunnel as if they came from it.
    fn pump_dhcp(&mut self) {
        let Some(dhcp) = &mut self.dhcp else { return };
        let now = self.clock.now();
        dhcp.handle_timeout(now, &mut (system_random as fn(&mut [u8])));
        while let Some(event) = dhcp.poll_event() {
            match event {
                DhcpEvent::Bound(lease) => {
                    info!(
                        address = %lease.address,
                        prefix = lease.prefix_len,
                        server = %lease.server_id,
                        lease_secs = lease.lease_secs,
                        routes = lease.routes().len(),
                        "DHCP: lease acquired"
                    );
                    self.nic.apply_lease(&lease);
                }
                DhcpEvent::Renewed(lease) => {
                    debug!(address = %lease.address, lease_secs = lease.lease_secs, "DHCP: lease renewed");
                    self.nic.apply_lease(&lease);
                }
                DhcpEvent::Lost { address, reason } => self.nic.lease_lost(address, reason),
            }
        }
        if !self.proto.is_established() {
            return;
        }
        while let Some(frame) = dhcp.poll_transmit() {
            self.proto.send_frames(now, [frame.as_slice()]);
        }
    }

    fn stop(&mut self) {
        if let Some(dhcp) = &mut self.dhcp
            && dhcp.release(&mut (system_random as fn(&mut [u8])))
        {
            info!("DHCP: releasing the lease");
        }
        self.pump_dhcp();
        self.tls.send_close_notify();
        self.finish(SessionEnd::Stopped);
    }

    /// Tap frames into the tunnel: by UDP while that path works, else
    /// through TLS (before the welcome the protocol drops them).
    fn send_tap_frames(&mut self, now: Timestamp, frames: &Frames) {
        let Conn { udp, udp_out, .. } = self;
        if let Some(udp) = udp
            && udp.send_frames(now, frames.iter(), udp_out)
        {
            return;
        }
        self.proto.send_frames(now, frames.iter());
    }

    /// TLS-decrypts `bytes` into the protocol.
    fn on_bytes(&mut self, mut bytes: &[u8]) {
        let mut plain = [0u8; 16 * 1024];
        while !bytes.is_empty() && !self.closing {
            if let Err(e) = self.tls.read_tls(&mut bytes) {
                return self.finish(SessionEnd::Io(format!("TLS read: {e}")));
            }
            if let Err(e) = self.tls.process_new_packets() {
                // rustls has queued an alert; the writer sends it.
                return self.finish(SessionEnd::Tls(e));
            }
            loop {
                match self.tls.reader().read(&mut plain) {
                    Ok(0) => {
                        // The server's last words (an error PACK, say) can
                        // come in the same read as its close_notify; they,
                        // not the close, decide how the session ended.
                        self.handle_proto_events();
                        self.finish(SessionEnd::Io("the server closed TLS".into()));
                        break;
                    }
                    Ok(n) => {
                        let now = self.clock.now();
                        let Conn {
                            proto, frames_in, ..
                        } = self;
                        proto.handle_input(now, &plain[..n], frames_in);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        self.finish(SessionEnd::Io(format!("TLS: {e}")));
                        break;
                    }
                }
            }
            self.handle_proto_events();
        }
    }

    /// The protocol's queued plaintext through rustls into `out`.
    fn encrypt_pending(&mut self, out: &mut Vec<u8>) {
        self.plain_out.clear();
        self.proto.drain_transmit(&mut self.plain_out);
        // rustls buffers at most 64 KiB of plaintext: a larger batch goes
        // in pieces, each sealed into `out` before the next (`write_all`
        // silently dropped the rest; the server side had the same bug).
        let mut rest = &self.plain_out[..];
        loop {
            while self.tls.wants_write() {
                if self.tls.write_tls(out).is_err() {
                    break;
                }
            }
            if rest.is_empty() {
                break;
            }
            match self.tls.writer().write(rest) {
                Ok(0) | Err(_) => break,
                Ok(n) => rest = &rest[n..],
            }
        }
    }
}

/// Everything one session needs from the long-lived client.
pub struct SessionSetup {
    pub address: SocketAddr,
    pub tls: Arc<rustls::ClientConfig>,
    pub server_name: rustls::pki_types::ServerName<'static>,
    pub proto: ClientConfig,
    pub nic: Rc<Nic>,
    pub from_tap: async_channel::Receiver<Frames>,
    pub stop: async_channel::Receiver<()>,
    pub dhcp: Option<DhcpClient>,
    pub clock: Clock,
    /// Offer UDP acceleration at login.
    pub udp_acceleration: bool,
}

/// Runs one connection until it ends.
pub async fn run(setup: SessionSetup) -> Outcome {
    let SessionSetup {
        address,
        tls,
        server_name,
        mut proto,
        nic,
        from_tap,
        stop,
        dhcp,
        clock,
        udp_acceleration,
    } = setup;
    let fail = |end, dhcp| Outcome {
        end,
        established_at: None,
        dhcp,
    };
    let connect = compio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address));
    let stopped = stop.recv();
    futures_util::pin_mut!(connect, stopped);
    let tcp = match select(connect, stopped).await {
        Either::Left((Ok(Ok(tcp)), _)) => tcp,
        Either::Left((Ok(Err(e)), _)) => {
            return fail(
                SessionEnd::Io(format!("connecting to {address}: {e}")),
                dhcp,
            );
        }
        Either::Left((Err(_), _)) => {
            return fail(
                SessionEnd::Io(format!("connecting to {address}: timed out")),
                dhcp,
            );
        }
        Either::Right(_) => return fail(SessionEnd::Stopped, dhcp),
    };
    let _ = tcp.set_nodelay(true);
    let udp = match tcp.local_addr() {
        Ok(local) if udp_acceleration => match UdpAccel::bind(local) {
            Ok(udp) => Some(udp),
            Err(e) => {
                info!("no UDP socket ({e}): the session stays on TLS");
                None
            }
        },
        _ => None,
    };
    proto.udp_accel = udp.as_ref().map(|u| u.offer().clone());
    let udp_socket = udp.as_ref().and_then(|u| u.receiver().ok());
    let tls = match rustls::ClientConnection::new(tls, server_name) {
        Ok(t) => t,
        Err(e) => return fail(SessionEnd::Tls(e), dhcp),
    };
    debug!(%address, "TCP connected; TLS handshake");
    // Frames the tap produced while we were disconnected are stale.
    while from_tap.try_recv().is_ok() {}
    let now = clock.now();
    let conn = Rc::new(RefCell::new(Conn {
        tls,
        proto: ClientConnection::new(proto, system_random as fn(&mut [u8]), now),
        dhcp,
        nic: Rc::clone(&nic),
        clock,
        frames_in: Frames::new(),
        plain_out: Vec::with_capacity(READ_CHUNK),
        established_at: None,
        closing: false,
        end: None,
        udp,
        server: address,
        udp_out: Vec::with_capacity(udp_accel::DATAGRAM_MAX),
    }));
    let (read_half, write_half) = tcp.into_split();
    let (wake_tx, wake_rx) = async_channel::bounded::<()>(1);
    let udp_reader = udp_socket.map(|socket| {
        compio::runtime::spawn(udp_read_loop(
            socket,
            Rc::clone(&conn),
            wake_tx.clone(),
            Rc::clone(&nic),
        ))
    });
    let reader = compio::runtime::spawn(read_loop(read_half, Rc::clone(&conn), wake_tx, nic));
    write_loop(write_half, &conn, wake_rx, from_tap, stop).await;
    drop(reader);
    drop(udp_reader);
    let mut c = conn.borrow_mut();
    if let Some(udp) = &c.udp {
        udp.report();
    }
    Outcome {
        end: c
            .end
            .take()
            .unwrap_or_else(|| SessionEnd::Io("connection closed".into())),
        established_at: c.established_at,
        dhcp: c.dhcp.take(),
    }
}

async fn read_loop(
    mut socket: TcpStream,
    conn: Rc<RefCell<Conn>>,
    wake: async_channel::Sender<()>,
    nic: Rc<Nic>,
) {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let mut coalescer = Coalescer::new();
    loop {
        buf.clear();
        let BufResult(result, returned) = socket.read(buf).await;
        buf = returned;
        let n = match result {
            Ok(0) => {
                conn.borrow_mut()
                    .finish(SessionEnd::Io("the server closed the connection".into()));
                let _ = wake.try_send(());
                return;
            }
            Err(e) => {
                conn.borrow_mut()
                    .finish(SessionEnd::Io(format!("reading from the server: {e}")));
                let _ = wake.try_send(());
                return;
            }
            Ok(n) => n,
        };
        let frames = {
            let mut c = conn.borrow_mut();
            c.on_bytes(&buf[..n]);
            std::mem::take(&mut c.frames_in)
        };
        let _ = wake.try_send(());
        deliver(&conn, &frames, &nic, &mut coalescer, &wake);
        // Give the allocation back for the next read's frames.
        let mut frames = frames;
        frames.clear();
        {
            let mut c = conn.borrow_mut();
            if c.frames_in.is_empty() {
                c.frames_in = frames;
            }
        }
        if conn.borrow().closing {
            return;
        }
    }
}

/// Received frames to DHCP or the tap (whose writes never wait); wakes
/// the writer when DHCP has something to answer.
fn deliver(
    conn: &RefCell<Conn>,
    frames: &Frames,
    nic: &Nic,
    coalescer: &mut Coalescer,
    wake: &async_channel::Sender<()>,
) {
    let mut dhcp_took = false;
    {
        let mut c = conn.borrow_mut();
        let now = c.clock.now();
        let Conn { dhcp, .. } = &mut *c;
        let to_tap = frames.iter().filter(|frame| {
            let taken = dhcp.as_mut().is_some_and(|d| d.handle_frame(now, frame));
            dhcp_took |= taken;
            !taken
        });
        nic.write_frames(to_tap, coalescer);
    }
    if dhcp_took {
        let _ = wake.try_send(());
    }
}

/// Datagrams from the session's UDP socket: one waited for, then whatever
/// else is queued, their frames delivered as one batch.
async fn udp_read_loop(
    socket: std::net::UdpSocket,
    conn: Rc<RefCell<Conn>>,
    wake: async_channel::Sender<()>,
    nic: Rc<Nic>,
) {
    /// Datagrams taken without waiting after the first.
    const BURST: usize = 64;
    let Ok(nowait) = socket.try_clone() else {
        return;
    };
    let io = match compio::net::UdpSocket::from_std(socket) {
        Ok(io) => io,
        Err(e) => {
            debug!("UDP acceleration: cannot register the socket: {e}");
            return;
        }
    };
    let mut buf = Vec::with_capacity(udp_accel::DATAGRAM_MAX);
    let mut spare = vec![0u8; udp_accel::DATAGRAM_MAX];
    let mut frames = Frames::new();
    let mut coalescer = Coalescer::new();
    loop {
        buf.clear();
        let BufResult(result, returned) = io.recv_from(buf).await;
        buf = returned;
        let (n, from) = match result {
            Ok(read) => read,
            Err(e) => {
                // Not expected on an unconnected socket; never spin on it.
                debug!("UDP acceleration receive: {e}");
                compio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        frames.clear();
        {
            let mut c = conn.borrow_mut();
            let now = c.clock.now();
            let Conn { udp, udp_out, .. } = &mut *c;
            let Some(udp) = udp else { return };
            udp.receive(now, &mut buf[..n], from, &mut frames, udp_out);
            for _ in 1..BURST {
                match nowait.recv_from(&mut spare) {
                    Ok((n, from)) => {
                        udp.receive(now, &mut spare[..n], from, &mut frames, udp_out);
                    }
                    Err(_) => break,
                }
            }
        }
        if !frames.is_empty() {
            deliver(&conn, &frames, &nic, &mut coalescer, &wake);
        }
    }
}

async fn write_loop(
    mut socket: TcpStream,
    conn: &Rc<RefCell<Conn>>,
    wake: async_channel::Receiver<()>,
    from_tap: async_channel::Receiver<Frames>,
    stop: async_channel::Receiver<()>,
) {
    let mut out = Vec::with_capacity(READ_CHUNK);
    loop {
        {
            let mut c = conn.borrow_mut();
            c.pump_dhcp();
            // Checked every turn, not only when the timer wins the select:
            // a busy tunnel (the reader waking us all the time) must not
            // hold back the keep-alives that keep the UDP path alive.
            let now = c.clock.now();
            let Conn { udp, udp_out, .. } = &mut *c;
            if let Some(udp) = udp {
                udp.handle_timeout(now, udp_out);
            }
            c.encrypt_pending(&mut out);
        }
        if !out.is_empty() {
            let BufResult(result, returned) = socket.write_all(out).await;
            out = returned;
            out.clear();
            if let Err(e) = result {
                conn.borrow_mut()
                    .finish(SessionEnd::Io(format!("writing to the server: {e}")));
                return;
            }
            continue;
        }
        let (closing, deadline) = {
            let c = conn.borrow();
            let dhcp_at = c.dhcp.as_ref().and_then(DhcpClient::poll_timeout);
            let udp_at = c.udp.as_ref().and_then(UdpAccel::poll_timeout);
            let at = [c.proto.poll_timeout(), dhcp_at, udp_at]
                .into_iter()
                .flatten()
                .min();
            (
                c.closing || c.proto.is_closed(),
                at.map(|t| c.clock.instant(t)),
            )
        };
        if closing {
            let _ = socket.shutdown().await;
            return;
        }
        let due = deadline.unwrap_or_else(|| Instant::now() + IDLE_RECHECK);
        let timer = compio::time::sleep_until(due);
        let woken = wake.recv();
        let tap = from_tap.recv();
        let stopped = stop.recv();
        futures_util::pin_mut!(timer, woken, tap, stopped);
        match select(select(woken, stopped), select(tap, timer)).await {
            Either::Left((Either::Left(_), _)) => {}
            Either::Left((Either::Right(_), _)) => {
                info!("stopping");
                conn.borrow_mut().stop();
            }
            Either::Right((Either::Left((burst, _)), _)) => {
                let Ok(burst) = burst else {
                    // The tap reader is gone: nothing more to carry.
                    conn.borrow_mut()
                        .finish(SessionEnd::Io("the tap reader stopped".into()));
                    continue;
                };
                let mut c = conn.borrow_mut();
                let now = c.clock.now();
                c.send_tap_frames(now, &burst);
                for _ in 1..MAX_BURSTS_PER_BATCH {
                    match from_tap.try_recv() {
                        Ok(more) => c.send_tap_frames(now, &more),
                        Err(_) => break,
                    }
                }
            }
            Either::Right((Either::Right(((), _)), _)) => {
                let mut c = conn.borrow_mut();
                let now = c.clock.now();
                c.proto.handle_timeout(now);
                c.handle_proto_events();
            }
        }
    }
}
