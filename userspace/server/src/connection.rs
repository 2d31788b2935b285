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
    time::Instant,
};

use compio::{
    BufResult,
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use ethergate_proto::{
    Authenticator, CloseReason, Direction, ServerConnection, ServerEvent, Timestamp, data::Frames,
};
use futures_util::future::{Either, select};
use tracing::{debug, info, warn};

use crate::{
    directory::{HubEntry, LoginCheck, LoginInfo, SessionShared},
    hub_actor::HubInput,
    outbox::Outbox,
    read_sizer::ReadSizer,
    transport::{self, Received, Transport},
    worker::{Worker, now, system_random},
};

/// Output buffers kept by a connection between keep-alive ticks; larger
/// ones (bulk transfers) are given back when the session goes quiet.
const IDLE_BUFFER: usize = 4 * 1024;

struct Conn {
    transport: Transport,
    proto: ServerConnection<fn(&mut [u8])>,
    id: u64,
    peer: std::net::SocketAddr,
    session: Option<Arc<SessionShared>>,
    session_key: [u8; 20],
    /// The hub a login was accepted for, until its session opens.
    pending_hub: Option<Arc<HubEntry>>,
    /// Set once the handshake has ended one way or the other.
    handshake_done: bool,
    closing: bool,
    frames_in: Frames,
    /// The hub's frames being written; swapped with the outbox's buffer.
    from_hub: Frames,
    plain_out: Vec<u8>,
}

/// Serves one accepted connection until it closes.
pub async fn serve(mut tcp: TcpStream, peer: std::net::SocketAddr, worker: Rc<Worker>) {
    let directory = &worker.directory;
    let pending = directory.pending_handshakes.fetch_add(1, Ordering::AcqRel);
    if pending >= directory.limits.max_pending_handshakes {
        directory.pending_handshakes.fetch_sub(1, Ordering::AcqRel);
        warn!(%peer, "too many pending handshakes; closing the new connection");
        let _ = tcp.close().await;
        return;
    }
    let _ = tcp.set_nodelay(true);
    let tls = match rustls::ServerConnection::new(Arc::clone(&worker.tls)) {
        Ok(tls) => tls,
        Err(e) => {
            directory.pending_handshakes.fetch_sub(1, Ordering::AcqRel);
            warn!(%peer, "cannot start TLS: {e}");
            return;
        }
    };
    let id = directory.next_connection_id();
    let proto = ServerConnection::new(worker.proto.clone(), system_random as fn(&mut [u8]), now());
    let deadline = proto.poll_timeout().map(to_instant);
    let handover = match transport::establish(&mut tcp, tls, deadline, &worker.offload, id).await {
        Ok(handover) => handover,
        Err(why) => {
            directory.pending_handshakes.fetch_sub(1, Ordering::AcqRel);
            debug!(%peer, id, "TLS: {why}");
            let _ = tcp.close().await;
            return;
        }
    };
    let conn = Rc::new(RefCell::new(Conn {
        transport: handover.transport,
        proto,
        id,
        peer,
        session: None,
        session_key: [0; 20],
        pending_hub: None,
        handshake_done: false,
        closing: false,
        frames_in: Frames::new(),
        from_hub: Frames::new(),
        plain_out: Vec::new(),
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
    write_loop(write_half, &conn, wake_rx).await;
    // The writer has flushed everything; stop reading (cancels the read).
    drop(reader);

    let mut c = conn.borrow_mut();
    if !c.handshake_done {
        directory.pending_handshakes.fetch_sub(1, Ordering::AcqRel);
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
        let to_hub = {
            let mut c = conn.borrow_mut();
            on_bytes(&mut c, &buf[..n], &worker);
            match &c.session {
                Some(session) if !c.frames_in.is_empty() => Some((
                    session.hub.to_hub.clone(),
                    session.port,
                    std::mem::take(&mut c.frames_in),
                )),
                _ => {
                    c.frames_in.clear();
                    None
                }
            }
        };
        if let Some((to_hub, port, frames)) = to_hub {
            if let Some(session) = &conn.borrow().session {
                session.counters.received.add_batch(&frames);
            }
            // Full queue: drop the batch, as SoftEther drops rather than
            // stalls a session (§7.1); TCP inside the tunnel recovers.
            if to_hub.try_send(HubInput::Frames { port, frames }).is_err() {
                worker.stats.batches_dropped.fetch_add(1, Ordering::Relaxed);
            }
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
            ServerEvent::LoginRequested(request) => {
                let mut check = LoginCheck {
                    directory,
                    connection_id: c.id,
                    hub: None,
                };
                let random = *c.proto.server_random();
                let decision = check
                    .authenticate(&request, &random)
                    .and_then(|grant| match &check.hub {
                        Some(hub) => directory.reserve_session(hub).map(|()| grant),
                        None => Err(ethergate_proto::ErrorCode::INTERNAL_ERROR),
                    });
                match decision {
                    Ok(grant) => {
                        c.proto.accept_login(now(), grant);
                        c.pending_hub = check.hub;
                    }
                    Err(code) => {
                        info!(
                            id = c.id,
                            hub = request.hubname,
                            user = request.username,
                            code = code.0,
                            "login refused"
                        );
                        worker.stats.login_failed(code);
                        c.proto.reject_login(now(), code);
                    }
                }
            }
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
                        c.session = Some(session);
                    }
                    Err(code) => c.proto.reject_additional(now(), code),
                }
            }
            ServerEvent::Established(established) => {
                finish_handshake(c, directory);
                if let Some(welcome) = established.welcome {
                    let Some(hub) = c.pending_hub.take() else {
                        c.proto.close_local();
                        continue;
                    };
                    let login = LoginInfo {
                        user: &established.username,
                        client: c.peer,
                    };
                    match directory.open_reserved(&hub, &welcome, &login) {
                        Ok(session) => {
                            info!(
                                id = c.id,
                                hub = hub.name,
                                user = established.username,
                                session = welcome.session_name,
                                max_connection = welcome.max_connection,
                                "session established"
                            );
                            worker.stats.logins_ok.fetch_add(1, Ordering::Relaxed);
                            c.session_key = welcome.session_key;
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
                finish_handshake(c, directory);
                log_close(c.id, &reason);
                c.closing = true;
            }
        }
    }
}

fn finish_handshake(c: &mut Conn, directory: &crate::directory::Directory) {
    if !c.handshake_done {
        c.handshake_done = true;
        directory.pending_handshakes.fetch_sub(1, Ordering::AcqRel);
    }
}

fn log_close(id: u64, reason: &CloseReason) {
    debug!(id, ?reason, "protocol closed the connection");
}

async fn write_loop(
    mut socket: TcpStream,
    conn: &Rc<RefCell<Conn>>,
    wake: async_channel::Receiver<()>,
) {
    let mut out = Vec::new();
    loop {
        // Everything queued so far goes out before we wait again.
        {
            let mut c = conn.borrow_mut();
            encrypt_pending(&mut c, &mut out);
        }
        if !out.is_empty() {
            let BufResult(result, returned) = socket.write_all(out).await;
            out = returned;
            out.clear();
            if result.is_err() {
                conn.borrow_mut().closing = true;
                return;
            }
            continue;
        }
        let (closing, deadline, outbox) = {
            let c = conn.borrow();
            (
                c.closing || c.proto.is_closed(),
                c.proto.poll_timeout(),
                c.session.as_ref().map(|s| Arc::clone(&s.outbox)),
            )
        };
        if closing {
            // close_notify, then FIN: see `Transport::close_notify`.
            conn.borrow_mut().transport.close_notify(&mut out);
            if !out.is_empty() {
                let BufResult(_, _) = socket.write_all(out).await;
            }
            let _ = socket.shutdown().await;
            return;
        }
        let timer = async {
            match deadline {
                Some(at) => compio::time::sleep_until(to_instant(at)).await,
                None => std::future::pending().await,
            }
        };
        let hub = async {
            match &outbox {
                Some(outbox) => outbox.wait().await,
                None => std::future::pending().await,
            }
        };
        let woken = wake.recv();
        futures_util::pin_mut!(timer, hub, woken);
        match select(woken, select(hub, timer)).await {
            Either::Left((Ok(()), _)) => {}
            Either::Left((Err(_), _)) => {
                // The reader is gone: finish what is queued, then close.
                conn.borrow_mut().closing = true;
            }
            Either::Right((Either::Left((pending, _)), _)) => {
                let mut c = conn.borrow_mut();
                match (pending, &outbox) {
                    (true, Some(outbox)) => send_hub_frames(&mut c, outbox),
                    // The session ended (disconnected, reaped, hub stopping).
                    _ => c.proto.close_local(),
                }
            }
            Either::Right((Either::Right(((), _)), _)) => {
                let mut c = conn.borrow_mut();
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

/// Writes everything the hub has queued for the session as one protocol
/// batch: one TLS record train, one syscall. Another connection of the
/// session may have taken it first; then there is nothing to do.
fn send_hub_frames(c: &mut Conn, outbox: &Outbox) {
    let Conn {
        from_hub,
        proto,
        session,
        ..
    } = c;
    outbox.take(from_hub);
    if from_hub.is_empty() {
        return;
    }
    if let Some(session) = session {
        session.counters.sent.add_batch(from_hub);
    }
    proto.send_frames(now(), from_hub.iter());
}

/// Moves the protocol's queued plaintext through the transport into `out`.
fn encrypt_pending(c: &mut Conn, out: &mut Vec<u8>) {
    c.plain_out.clear();
    c.proto.drain_transmit(&mut c.plain_out);
    c.transport.send(&mut c.plain_out, out);
}

fn to_instant(at: Timestamp) -> Instant {
    crate::worker::epoch() + at.as_duration()
}
