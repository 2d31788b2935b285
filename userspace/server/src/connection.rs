//! One TCP connection: a [`Transport`] (rustls driven sans-IO, so we choose
//! record sizes, or kernel TLS once the handshake is done) around the
//! SoftEther protocol state machine from `ethergate-proto`, wired to the
//! session's hub.
//!
//! Two tasks share the connection state (`Rc<RefCell<..>>`, never borrowed
//! across an await): the reader turns socket bytes into protocol input and
//! frames for the hub; the writer waits for hub frames, timers or a wake-up
//! from the reader, and writes whatever the protocol queued. Invariant: every
//! state change that may produce output is followed by a writer wake-up, and
//! the writer exits only after flushing, so a queued error PACK or
//! keep-alive is never lost to a race.

use std::{
    cell::RefCell,
    rc::Rc,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use compio::{
    BufResult,
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use ethergate_proto::{
    Authenticator, CloseReason, Direction, ErrorCode, Established, ServerConnection, ServerEvent,
    Timestamp, data::Frames,
};
use futures_util::future::{Either, select};
use tracing::{debug, info, warn};

use crate::{
    admission::Ticket,
    directory::{HubEntry, LoginCheck, LoginInfo, SessionShared},
    login_throttle::Admit,
    outbox::{LaneId, Outbox},
    random::system_random,
    read_sizer::ReadSizer,
    transport::{self, Received, Transport},
    worker_context::{Worker, now},
};

/// How long the loop sleeps when nothing is due: it only looks again.
const IDLE_RECHECK: Duration = Duration::from_secs(86_400);

/// Output buffers kept by a connection between keep-alive ticks; larger
/// ones (bulk transfers) are given back when the session goes quiet.
const IDLE_BUFFER: usize = 4 * 1024;
/// Frames of consecutive reads gathered into one batch before it is
/// switched (only while more bytes are already queued on the socket).
const SWITCH_BATCH_MAX: usize = 256 * 1024;

/// Bytes waiting in the socket's receive queue (FIONREAD); 0 on error.
fn queued_bytes(socket: &TcpStream) -> usize {
    use std::os::fd::AsRawFd as _;
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into `queued`.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::FIONREAD, &raw mut queued) };
    if rc < 0 {
        0
    } else {
        usize::try_from(queued).unwrap_or(0)
    }
}

struct Conn {
    transport: Transport,
    proto: ServerConnection<fn(&mut [u8])>,
    id: u64,
    peer: std::net::SocketAddr,
    /// The address the client connected to (for UDP acceleration's socket).
    local: Option<std::net::SocketAddr>,
    session: Option<Arc<SessionShared>>,
    session_key: [u8; 20],
    /// The hub a login was accepted for, until its session opens.
    pending_hub: Option<Arc<HubEntry>>,
    /// The connection's pending-handshake slot, until the handshake has
    /// ended one way or the other.
    ticket: Option<Ticket>,
    /// A failed login's verdict, held back until the instant (guessing
    /// costs time; see [`crate::login_throttle`]).
    deferred_refusal: Option<(Instant, ErrorCode)>,
    closing: bool,
    frames_in: Frames,
    /// The hub's frames being written; swapped with the outbox's buffer.
    from_hub: Frames,
    /// This connection's lane in the session's outbox (its flows' frames).
    lane: Option<LaneId>,
    plain_out: Vec<u8>,
    /// Datagrams of one UDP send, and their sizes.
    udp_out: Vec<u8>,
    udp_sizes: Vec<usize>,
}

/// Serves one accepted connection until it closes.
pub async fn serve(tcp: TcpStream, peer: std::net::SocketAddr, worker: Rc<Worker>) {
    let directory = &worker.directory;
    let ticket = match directory.admission.admit(peer.ip()) {
        Ok(ticket) => ticket,
        Err(_) => {
            // Counted, and summarised in the log by the reaper: the
            // attacker sets this rate, so no line per refusal.
            reset(tcp);
            return;
        }
    };
    configure_socket(&tcp, directory.limits.write_timeout);
    let local = tcp.local_addr().ok();
    let tls = match rustls::ServerConnection::new(Arc::clone(&worker.tls)) {
        Ok(tls) => tls,
        Err(e) => {
            warn!(%peer, "cannot start TLS: {e}");
            return;
        }
    };
    let id = directory.next_connection_id();
    let proto = ServerConnection::new(worker.proto.clone(), system_random as fn(&mut [u8]), now());
    let deadline = proto.poll_timeout().map(to_instant);
    let mut tcp = tcp;
    let established = {
        // On the heap: the handshake's state (~10 KiB of rustls and I/O
        // futures) would otherwise stay part of this task's size for the
        // connection's whole life, idle sessions included.
        let establish = Box::pin(transport::establish(
            &mut tcp,
            tls,
            deadline,
            &worker.offload,
            id,
        ));
        let evicted = ticket.evicted();
        futures_util::pin_mut!(evicted);
        match select(establish, evicted).await {
            Either::Left((result, _)) => Some(result),
            Either::Right(((), _)) => None,
        }
    };
    let handover = match established {
        Some(Ok(handover)) => handover,
        Some(Err(why)) => {
            debug!(%peer, id, "TLS: {why}");
            let _ = tcp.close().await;
            return;
        }
        None => {
            debug!(%peer, id, "pending handshake evicted for a less busy source");
            reset(tcp);
            return;
        }
    };
    let conn = Rc::new(RefCell::new(Conn {
        transport: handover.transport,
        proto,
        id,
        peer,
        local,
        session: None,
        session_key: [0; 20],
        pending_hub: None,
        ticket: Some(ticket),
        deferred_refusal: None,
        closing: false,
        frames_in: Frames::new(),
        from_hub: Frames::new(),
        lane: None,
        plain_out: Vec::new(),
        udp_out: Vec::new(),
        udp_sizes: Vec::new(),
    }));
    debug!(%peer, id, tls = conn.borrow().transport.mode(), "connection accepted");
    {
        // What crossed the switch into kernel TLS, in order.
        let mut c = conn.borrow_mut();
        if !handover.plaintext.is_empty() {
            let Conn {
                proto, frames_in, ..
            } = &mut *c;
            proto.handle_input(now(), &handover.plaintext, frames_in);
            handle_events(&mut c, &worker);
        }
        on_bytes(&mut c, &handover.unread, &worker);
    }
    let (read_half, write_half) = tcp.into_split();
    let (wake_tx, wake_rx) = async_channel::bounded::<()>(1);
    let reader = compio::runtime::spawn(read_loop(
        read_half,
        Rc::clone(&conn),
        wake_tx,
        Rc::clone(&worker),
    ));
    write_loop(write_half, &conn, wake_rx, &worker).await;
    // The writer has flushed everything; stop reading (cancels the read).
    drop(reader);

    let mut c = conn.borrow_mut();
    c.ticket = None;
    let lane = c.lane.take();
    if let (Some(session), Some(lane)) = (&c.session, lane) {
        session.outbox.leave(lane);
    }
    if let Some(session) = c.session.take()
        && directory.leave_session(&c.session_key, &session)
    {
        info!(
            session = session.session_name,
            hub = session.hub.name,
            "last connection closed; session kept for its timeout to be resumed"
        );
    }
    debug!(%peer, id, "connection closed");
}

async fn read_loop(
    mut socket: TcpStream,
    conn: Rc<RefCell<Conn>>,
    wake: async_channel::Sender<()>,
    worker: Rc<Worker>,
) {
    let mut sizer = ReadSizer::default();
    let mut buf = Vec::with_capacity(sizer.size());
    // The frames of one read, swapped with the connection's decode buffer.
    let mut batch = Frames::new();
    loop {
        buf.clear();
        if buf.capacity() != sizer.size() {
            buf = Vec::with_capacity(sizer.size());
        }
        let BufResult(result, returned) = socket.read(buf).await;
        buf = returned;
        let n = match result {
            Ok(0) | Err(_) => {
                let c = conn.borrow();
                match &result {
                    Err(e) => debug!(id = c.id, "{}", c.transport.explain_read_error(&socket, e)),
                    Ok(_) => debug!(id = c.id, "socket read ended"),
                }
                drop(c);
                conn.borrow_mut().closing = true;
                let _ = wake.try_send(());
                return;
            }
            Ok(n) => n,
        };
        sizer.observe(n);
        // More bytes already queued on the socket: read them before
        // switching, so the tap gets fewer, fuller merged writes (a client
        // that sends small records would otherwise cost one tap write per
        // read). The next read completes at once, so nothing waits.
        let session = {
            let mut c = conn.borrow_mut();
            on_bytes(&mut c, &buf[..n], &worker);
            // Asked only when there are frames to hold back.
            let gather = |c: &Conn| {
                !c.frames_in.is_empty()
                    && c.frames_in.byte_len() < SWITCH_BATCH_MAX
                    && queued_bytes(&socket) > 0
            };
            match &c.session {
                Some(_) if gather(&c) => None,
                Some(session) if !c.frames_in.is_empty() => {
                    let session = Arc::clone(session);
                    std::mem::swap(&mut c.frames_in, &mut batch);
                    Some(session)
                }
                _ => {
                    c.frames_in.clear();
                    None
                }
            }
        };
        if let Some(session) = session {
            // Switched here, on this worker: frames for the bridge go to
            // this worker's tap queue before the next read, so a client
            // that sends faster than the kernel takes its frames is slowed
            // by its own TCP connection, not by a queue that drops.
            session.switch_from_client(&mut batch, &worker);
            batch.clear();
        }
        let _ = wake.try_send(());
        if conn.borrow().closing {
            return;
        }
    }
}

/// Decrypts `bytes` (or not, with kernel TLS) and feeds the plaintext to
/// the protocol, then handles the protocol's events.
fn on_bytes(c: &mut Conn, mut bytes: &[u8], worker: &Worker) {
    while !bytes.is_empty() {
        let Conn {
            transport,
            proto,
            frames_in,
            ..
        } = c;
        match transport.receive(&mut bytes, |plain| {
            proto.handle_input(now(), plain, frames_in)
        }) {
            Received::Open => {}
            Received::PeerClosed => c.closing = true,
            Received::Failed(why) => {
                // rustls has queued an alert; the writer sends it, then closes.
                debug!(id = c.id, "{why}");
                c.closing = true;
                return;
            }
        }
        handle_events(c, worker);
    }
}

fn handle_events(c: &mut Conn, worker: &Worker) {
    let directory = &worker.directory;
    while let Some(event) = c.proto.poll_event() {
        match event {
            ServerEvent::LoginRequested(request) => on_login(c, worker, &request),
            ServerEvent::AdditionalConnectRequested(request) => {
                match directory.join_session(&request.session_key) {
                    Ok(session) => {
                        c.proto.accept_additional(
                            now(),
                            Direction::Both,
                            session.timeout_ms,
                            session.use_compress,
                        );
                        c.session_key = request.session_key;
                        debug!(
                            id = c.id,
                            session = session.session_name,
                            connections = session.connections(),
                            "additional connection joined"
                        );
                        c.lane = Some(session.outbox.join());
                        c.session = Some(session);
                    }
                    Err(code) => c.proto.reject_additional(now(), code),
                }
            }
            ServerEvent::Established(established) => {
                finish_handshake(c);
                // An additional connection was attached when it was accepted.
                if let Established::Login {
                    username,
                    welcome,
                    udp_accel,
                    ..
                } = established
                {
                    let Some(hub) = c.pending_hub.take() else {
                        c.proto.close_local();
                        continue;
                    };
                    let udp_path = udp_accel.as_ref().and_then(|granted| {
                        let local = c.local?;
                        let socket = crate::udp_accel::socket_for(&worker.udp_accel, local)?;
                        let source = socket.bound.ip().is_unspecified().then_some(local.ip());
                        Some(Arc::new(crate::udp_accel::UdpPath::new(
                            granted,
                            c.peer,
                            Arc::clone(&socket.socket),
                            source,
                            Arc::clone(&directory.udp_accel.counters),
                        )))
                    });
                    let login = LoginInfo {
                        user: &username,
                        client: c.peer,
                        worker: worker.index,
                        udp_accel: udp_path.clone(),
                    };
                    match directory.open_reserved(&hub, &welcome, &login) {
                        Ok(session) => {
                            info!(
                                client = %c.peer.ip(),
                                hub = hub.name,
                                user = username,
                                session = welcome.session_name,
                                max_connection = welcome.max_connection,
                                id = c.id,
                                "login succeeded; session established"
                            );
                            worker.stats.logins_ok.fetch_add(1, Ordering::Relaxed);
                            if udp_path.is_some() {
                                worker.keepalives.add(&session);
                            }
                            c.session_key = welcome.session_key;
                            c.lane = Some(session.outbox.join());
                            c.session = Some(session);
                        }
                        Err(code) => {
                            warn!(
                                id = c.id,
                                code = code.0,
                                "cannot attach the session to its hub"
                            );
                            c.proto.close_local();
                        }
                    }
                }
            }
            ServerEvent::Closed(reason) => {
                finish_handshake(c);
                log_close(c.id, &reason);
                c.closing = true;
            }
        }
    }
}

/// Frees the connection's pending-handshake slot.
fn finish_handshake(c: &mut Conn) {
    c.ticket = None;
}

/// Decides a login: throttled sources are refused before any password is
/// checked; a failed check's verdict is held back (see
/// [`crate::login_throttle`]). Every verdict is logged with the client's
/// address (the line deploy/fail2ban matches).
fn on_login(c: &mut Conn, worker: &Worker, request: &ethergate_proto::LoginRequest) {
    let directory = &worker.directory;
    let client = c.peer.ip();
    let admit =
        lock_throttle(directory).admit(Instant::now(), client, &request.hubname, &request.username);
    if let Admit::Refuse {
        retry_after,
        reason,
    } = admit
    {
        worker.stats.login_throttled(reason);
        debug!(
            %client,
            hub = request.hubname,
            user = request.username,
            reason = reason.name(),
            retry_after_secs = retry_after.as_secs(),
            "login refused without a password check"
        );
        c.proto.reject_login(now(), ErrorCode::ACCESS_DENIED);
        return;
    }
    let mut check = LoginCheck {
        directory,
        connection_id: c.id,
        hub: None,
    };
    let random = *c.proto.server_random();
    let decision = check
        .authenticate(request, &random)
        .and_then(|grant| match &check.hub {
            Some(hub) => directory
                .reserve_session(hub, &request.username)
                .map(|()| grant),
            None => Err(ErrorCode::INTERNAL_ERROR),
        });
    match decision {
        Ok(mut grant) => {
            grant.udp_accel_port = c
                .local
                .and_then(|local| crate::udp_accel::socket_for(&worker.udp_accel, local))
                .map(|s| s.bound.port());
            c.proto.accept_login(now(), grant);
            c.pending_hub = check.hub;
        }
        Err(code) => {
            warn!(
                %client,
                hub = request.hubname,
                user = request.username,
                reason = refusal_reason(code),
                "login failed"
            );
            worker.stats.login_failed(code);
            if code == ErrorCode::AUTH_FAILED || code == ErrorCode::HUB_NOT_FOUND {
                // A guess (of a password, or of a hub's name): it costs
                // the source, and its answer waits.
                let delay = lock_throttle(directory).failed(
                    Instant::now(),
                    client,
                    &request.hubname,
                    &request.username,
                );
                c.deferred_refusal = Some((Instant::now() + delay, code));
            } else {
                c.proto.reject_login(now(), code);
            }
        }
    }
}

fn lock_throttle(
    directory: &crate::directory::Directory,
) -> std::sync::MutexGuard<'_, crate::login_throttle::LoginThrottle> {
    // A few map updates per call, nothing that can panic half-way.
    directory
        .login_throttle
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `reason=` of a failed login's log line: stable words for log
/// filters, the SoftEther code's name otherwise.
fn refusal_reason(code: ErrorCode) -> String {
    match code {
        ErrorCode::AUTH_FAILED => "wrong_password_or_unknown_user".to_owned(),
        ErrorCode::HUB_NOT_FOUND => "unknown_hub".to_owned(),
        ErrorCode::TOO_MANY_CONNECTION => "server_session_limit".to_owned(),
        ErrorCode::HUB_IS_BUSY => "hub_session_limit".to_owned(),
        ErrorCode::TOO_MANY_USER_SESSION => "user_session_limit".to_owned(),
        other => other.name().map_or_else(
            || format!("code_{}", other.0),
            |name| name.trim_start_matches("ERR_").to_ascii_lowercase(),
        ),
    }
}

/// Closes a connection we will not serve with a reset: no TIME_WAIT left
/// on our side for each of a flood's connections.
fn reset(tcp: TcpStream) {
    let _ = socket2::SockRef::from(&tcp).set_linger(Some(std::time::Duration::ZERO));
    drop(tcp);
}

/// No Nagle (frames are batched already); keepalive and TCP_USER_TIMEOUT
/// so the kernel gives up on a peer that vanished or stopped taking data
/// within `timeout`, even while a write is blocked.
fn configure_socket(tcp: &TcpStream, timeout: std::time::Duration) {
    let socket = socket2::SockRef::from(tcp);
    let _ = socket.set_tcp_nodelay(true);
    let probe = (timeout / 4).max(std::time::Duration::from_secs(1));
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(probe)
        .with_interval(probe)
        .with_retries(3);
    let _ = socket.set_tcp_keepalive(&keepalive);
    let _ = socket.set_tcp_user_timeout(Some(timeout));
}

fn log_close(id: u64, reason: &CloseReason) {
    debug!(id, ?reason, "protocol closed the connection");
}

async fn write_loop(
    mut socket: TcpStream,
    conn: &Rc<RefCell<Conn>>,
    wake: async_channel::Receiver<()>,
    worker: &Worker,
) {
    let write_timeout = worker.directory.limits.write_timeout;
    let mut out = Vec::new();
    loop {
        // Everything queued so far goes out before we wait again.
        {
            let mut c = conn.borrow_mut();
            encrypt_pending(&mut c, &mut out);
        }
        if !out.is_empty() {
            // A peer that stops reading must not hold this task (and the
            // session's queue) forever: the protocol's own dead-peer timer
            // cannot run while the write is stuck.
            let (result, returned) = write_with_progress(&mut socket, out, write_timeout).await;
            out = returned;
            out.clear();
            match result {
                Ok(()) => {}
                Err(WriteFailure::Io) => {
                    conn.borrow_mut().closing = true;
                    return;
                }
                Err(WriteFailure::NoProgress) => {
                    worker.stats.write_timeouts.fetch_add(1, Ordering::Relaxed);
                    let c = conn.borrow();
                    info!(
                        client = %c.peer.ip(),
                        id = c.id,
                        session = c.session.as_ref().map(|s| s.session_name.as_str()),
                        timeout_secs = write_timeout.as_secs(),
                        "closing a connection whose peer stopped reading"
                    );
                    drop(c);
                    conn.borrow_mut().closing = true;
                    // The write is abandoned; a reset frees the socket's
                    // queued bytes at once.
                    reset(socket);
                    return;
                }
            }
            continue;
        }
        let (closing, deadline, outbox, evicted) = {
            let c = conn.borrow();
            let deadline = match (c.proto.poll_timeout().map(to_instant), c.deferred_refusal) {
                (Some(a), Some((b, _))) => Some(a.min(b)),
                (a, b) => a.or(b.map(|(at, _)| at)),
            };
            (
                c.closing || c.proto.is_closed(),
                deadline,
                c.session
                    .as_ref()
                    .zip(c.lane)
                    .map(|(s, lane)| (Arc::clone(&s.outbox), lane)),
                c.ticket.as_ref().map(Ticket::evicted),
            )
        };
        if closing {
            // close_notify, then FIN: see `Transport::close_notify`.
            conn.borrow_mut().transport.close_notify(&socket, &mut out);
            if !out.is_empty() {
                let _ = compio::time::timeout(write_timeout, socket.write_all(out)).await;
            }
            let _ = socket.shutdown().await;
            return;
        }
        let due = deadline.unwrap_or_else(|| Instant::now() + IDLE_RECHECK);
        let timer = compio::time::sleep_until(due);
        let hub = async {
            match &outbox {
                Some((outbox, lane)) => outbox.wait(*lane).await,
                None => std::future::pending().await,
            }
        };
        let evicted = async {
            match evicted {
                Some(evicted) => evicted.await,
                None => std::future::pending().await,
            }
        };
        let woken = wake.recv();
        futures_util::pin_mut!(timer, hub, woken, evicted);
        match select(select(woken, evicted), select(hub, timer)).await {
            Either::Left((Either::Left((Ok(()), _)), _)) => {}
            Either::Left((Either::Left((Err(_), _)), _)) => {
                // The reader is gone: finish what is queued, then close.
                conn.borrow_mut().closing = true;
            }
            Either::Left((Either::Right(((), _)), _)) => {
                // A less busy source needed this pending slot.
                let c = conn.borrow();
                debug!(client = %c.peer.ip(), id = c.id, "pending login evicted for a less busy source");
                drop(c);
                reset(socket);
                return;
            }
            Either::Right((Either::Left((pending, _)), _)) => {
                let mut c = conn.borrow_mut();
                match (pending, &outbox) {
                    (true, Some((outbox, lane))) => send_hub_frames(&mut c, outbox, *lane),
                    // The session ended (disconnected, reaped, hub stopping).
                    _ => c.proto.close_local(),
                }
            }
            Either::Right((Either::Right(((), _)), _)) => {
                let mut c = conn.borrow_mut();
                if let Some((at, code)) = c.deferred_refusal
                    && Instant::now() >= at
                {
                    c.deferred_refusal = None;
                    c.proto.reject_login(now(), code);
                }
                c.proto.handle_timeout(now());
                // A timer fired, so nothing was written for a while: give
                // back what a burst grew.
                out.shrink_to(IDLE_BUFFER);
                c.plain_out.shrink_to(IDLE_BUFFER);
                c.from_hub.shrink_to(IDLE_BUFFER);
                c.frames_in.shrink_to(IDLE_BUFFER);
            }
        }
    }
}

enum WriteFailure {
    Io,
    /// The peer took no byte for the whole deadline.
    NoProgress,
}

/// Writes all of `out`, failing when no byte is taken for `deadline`: a
/// slow link that keeps taking bytes is fine, a peer that stopped reading
/// is not.
async fn write_with_progress(
    socket: &mut TcpStream,
    out: Vec<u8>,
    deadline: std::time::Duration,
) -> (Result<(), WriteFailure>, Vec<u8>) {
    use compio::buf::{IntoInner, IoBuf};
    let mut out = out;
    let mut written = 0;
    while written < out.len() {
        match compio::time::timeout(deadline, socket.write(out.slice(written..))).await {
            Ok(BufResult(Ok(0) | Err(_), slice)) => {
                return (Err(WriteFailure::Io), slice.into_inner());
            }
            Ok(BufResult(Ok(n), slice)) => {
                written += n;
                out = slice.into_inner();
            }
            // The cancelled write's buffer is gone with it; the caller
            // closes the connection anyway.
            Err(_) => return (Err(WriteFailure::NoProgress), Vec::new()),
        }
    }
    (Ok(()), out)
}

/// Writes everything the hub has queued for the session as one protocol
/// batch: one TLS record train, one syscall. Another connection of the
/// session may have taken it first; then there is nothing to do.
fn send_hub_frames(c: &mut Conn, outbox: &Outbox, lane: LaneId) {
    let Conn {
        from_hub,
        proto,
        session,
        udp_out,
        udp_sizes,
        ..
    } = c;
    outbox.take(lane, from_hub);
    if from_hub.is_empty() {
        return;
    }
    let now = now();
    if let Some(session) = session {
        session.counters.sent.add_batch(from_hub);
        if let Some(path) = &session.udp_accel {
            crate::udp_accel::clamp_mss(from_hub);
            if path.send_frames(now, from_hub, udp_out, udp_sizes) {
                return;
            }
        }
    }
    proto.send_frames(now, from_hub.iter());
}

/// Moves the protocol's queued plaintext through the transport into `out`.
fn encrypt_pending(c: &mut Conn, out: &mut Vec<u8>) {
    c.plain_out.clear();
    c.proto.drain_transmit(&mut c.plain_out);
    c.transport.send(&mut c.plain_out, out);
}

fn to_instant(at: Timestamp) -> Instant {
    crate::worker_context::epoch() + at.as_duration()
}
