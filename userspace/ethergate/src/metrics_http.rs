//! `[server] metrics`: Prometheus `/metrics`, `/healthz` (the process
//! answers) and `/readyz` (every configured part is up; 503 with the
//! reasons otherwise), on a small blocking HTTP/1.x server of its own.
//!
//! It serves one request per connection, each connection on a thread of
//! its own, at most [`MAX_CONNECTIONS`] at once. Every connection has two
//! whole deadlines, not per-read ones: [`HEAD_DEADLINE`] from accept to
//! deliver the complete request head, and [`WRITE_DEADLINE`] to take the
//! answer. A slow client (slowloris: a byte every few hundred ms, never
//! finishing) therefore holds one slot for at most [`HEAD_DEADLINE`] and
//! never delays anyone else; see [`Slots::admit`] for what happens when
//! all slots are taken.
//!
//! `/healthz` never asks the [`StatusSource`] (for the daemon: never takes
//! the `Control` lock), so a long reload or status does not fail a load
//! balancer's health checks.
//!
//! Refusals, evictions and timeouts are counted and logged at debug level
//! only: their volume is whatever a client chooses, so a line per event at
//! WARN would let anyone flood the log. A debug summary is written when the
//! endpoint stops.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use ethergate_admin::{
    Status,
    http::{self, HeadError, Method, Route},
};
use tracing::debug;

use crate::control::Control;

/// Connections served at once. Scrapes and health checks are rare, tiny
/// and over in milliseconds; 32 leaves room for several Prometheus servers
/// and load balancers probing together, and bounds the threads a flood
/// can make us start.
pub const MAX_CONNECTIONS: usize = 32;

/// From accept to the end of the request head, in total: a well-behaved
/// client sends its head in one segment right after connecting.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(2);

/// For the whole answer to be taken by the client, in total.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(2);

/// Sent to a connection refused because every slot is busy answering.
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Content-Length: 5\r\nConnection: close\r\nRetry-After: 1\r\n\r\nbusy\n";

/// What the endpoint reports. The daemon's is `Mutex<Control>`; tests use
/// a stub. `/healthz` never calls it.
pub trait StatusSource: Send + Sync + 'static {
    fn status(&self) -> Status;
}

impl StatusSource for Mutex<Control> {
    fn status(&self) -> Status {
        self.lock().unwrap_or_else(PoisonError::into_inner).status()
    }
}

pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    #[cfg(test)]
    slots: Arc<Slots>,
}

impl MetricsServer {
    pub fn start<S: StatusSource>(addr: SocketAddr, source: Arc<S>) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("binding the metrics endpoint {addr}"))?;
        let addr = listener.local_addr().unwrap_or(addr);
        let stop = Arc::new(AtomicBool::new(false));
        let slots = Arc::new(Slots::default());
        let thread = {
            let stop = Arc::clone(&stop);
            let slots = Arc::clone(&slots);
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || {
                    // Status reads maps (CAP_BPF); nothing here needs more,
                    // and the connection threads inherit this.
                    ethergate_server::privileges::keep_control_capabilities("metrics");
                    accept_loop(&listener, &slots, &stop, &source)
                })
                .context("starting the metrics thread")?
        };
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
            #[cfg(test)]
            slots,
        })
    }

    #[cfg(test)]
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    #[cfg(test)]
    fn counters(&self) -> &Counters {
        &self.slots.counters
    }

    #[cfg(test)]
    fn live_connections(&self) -> usize {
        self.slots.lock().live.len()
    }
}

/// Stops accepting, cuts every open connection and waits for their
/// threads, so nothing holds the status source after the drop.
impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop<S: StatusSource>(
    listener: &TcpListener,
    slots: &Arc<Slots>,
    stop: &AtomicBool,
    source: &Arc<S>,
) {
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
    for stream in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                // Out of descriptors or memory: do not spin on it.
                debug!("metrics: accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        handlers.retain(|h| !h.is_finished());
        let Some(slot) = slots.admit(&stream) else {
            slots.counters.refused.fetch_add(1, Ordering::Relaxed);
            refuse(&stream);
            continue;
        };
        let source = Arc::clone(source);
        // If the spawn fails the closure is dropped unrun: the slot guard
        // frees the slot and the stream is closed.
        let spawned = std::thread::Builder::new()
            .name("metrics-conn".into())
            .spawn(move || serve(stream, &slot, &*source));
        match spawned {
            Ok(handle) => handlers.push(handle),
            Err(e) => debug!("metrics: cannot start a connection thread: {e}"),
        }
    }
    slots.shutdown_all();
    for handler in handlers {
        let _ = handler.join();
    }
    let c = &slots.counters;
    debug!(
        served = c.served.load(Ordering::Relaxed),
        refused = c.refused.load(Ordering::Relaxed),
        evicted = c.evicted.load(Ordering::Relaxed),
        timed_out = c.timed_out.load(Ordering::Relaxed),
        "metrics endpoint stopped"
    );
}

/// Events whose volume a client controls: counted, never logged above
/// debug.
#[derive(Default)]
struct Counters {
    /// Requests answered (any status, including 4xx for bad heads).
    served: AtomicU64,
    /// Connections answered 503 at accept: every slot was busy answering.
    refused: AtomicU64,
    /// Connections cut to make room: the oldest still sending its head.
    evicted: AtomicU64,
    /// Connections that missed their head or write deadline.
    timed_out: AtomicU64,
}

#[derive(Default)]
struct Slots {
    inner: Mutex<SlotTable>,
    counters: Counters,
}

#[derive(Default)]
struct SlotTable {
    next_id: u64,
    live: Vec<Conn>,
}

struct Conn {
    id: u64,
    accepted: Instant,
    /// A clone of the connection's socket, to cut it from outside.
    stream: TcpStream,
    phase: Phase,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Still sending its request head: can be evicted.
    Head,
    /// Being answered: bounded by [`WRITE_DEADLINE`], never evicted.
    Answering,
    /// Cut by [`Slots::admit`]; its thread is on its way out.
    Evicted,
}

/// A connection's place in [`Slots`]; freed when dropped.
struct Slot {
    slots: Arc<Slots>,
    id: u64,
    accepted: Instant,
}

impl Slots {
    fn lock(&self) -> MutexGuard<'_, SlotTable> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot for a new connection, or `None`: refuse it.
    ///
    /// When all [`MAX_CONNECTIONS`] slots are taken, the oldest connection
    /// still sending its request head is cut to make room, and only if
    /// every slot is busy answering is the newest connection refused (503).
    /// Refusing the newest instead would let anyone holding 32 slow
    /// connections (reopening each as it times out) turn every health
    /// check into a 503, i.e. take the node out of its load balancer. A
    /// well-behaved client sends its head right after connecting and is
    /// answered within milliseconds, so it is almost never the oldest one
    /// still sending; the connections that are have already shown they
    /// are slow. An answering connection holds its slot while its status
    /// is gathered (under the `Control` lock) and then for at most the
    /// write deadline, so 503s mean 32 answers in progress at once: a
    /// scrape storm, or a control lock held so long that "unhealthy" is
    /// the truth.
    ///
    /// Cut connections leave the table when their thread ends (at once:
    /// their socket is shut down), so threads stay bounded too: at most
    /// twice [`MAX_CONNECTIONS`] even if cut ones were slow to go.
    fn admit(self: &Arc<Self>, stream: &TcpStream) -> Option<Slot> {
        let clone = stream.try_clone().ok()?;
        let mut table = self.lock();
        let active = table
            .live
            .iter()
            .filter(|c| c.phase != Phase::Evicted)
            .count();
        if active >= MAX_CONNECTIONS {
            let victim = table
                .live
                .iter_mut()
                .filter(|c| c.phase == Phase::Head)
                .min_by_key(|c| c.accepted)?;
            let peer = victim.stream.peer_addr().ok();
            let _ = victim.stream.shutdown(Shutdown::Both);
            victim.phase = Phase::Evicted;
            self.counters.evicted.fetch_add(1, Ordering::Relaxed);
            debug!(
                ?peer,
                "metrics: all slots taken; cut the oldest connection still sending its request"
            );
        }
        if table.live.len() >= 2 * MAX_CONNECTIONS {
            return None;
        }
        let id = table.next_id;
        table.next_id += 1;
        let accepted = Instant::now();
        table.live.push(Conn {
            id,
            accepted,
            stream: clone,
            phase: Phase::Head,
        });
        Some(Slot {
            slots: Arc::clone(self),
            id,
            accepted,
        })
    }

    /// Shuts every live connection down (the endpoint is stopping).
    fn shutdown_all(&self) {
        for conn in &mut self.lock().live {
            let _ = conn.stream.shutdown(Shutdown::Both);
            conn.phase = Phase::Evicted;
        }
    }
}

impl Slot {
    /// The head is in: from now on the connection is not evictable.
    /// `false` if it was cut meanwhile.
    fn begin_answer(&self) -> bool {
        let mut table = self.slots.lock();
        match table.live.iter_mut().find(|c| c.id == self.id) {
            Some(conn) if conn.phase == Phase::Head => {
                conn.phase = Phase::Answering;
                true
            }
            _ => false,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().live.retain(|c| c.id != self.id);
    }
}

/// Best effort, never blocking the accept loop: a 503 and close.
fn refuse(stream: &TcpStream) {
    let peer = stream.peer_addr().ok();
    debug!(
        ?peer,
        "metrics: every slot is busy answering; refused a connection"
    );
    let _ = stream.set_nonblocking(true);
    // Read what already arrived of the request so the close is a FIN after
    // the answer, not a reset that may discard it at the client.
    let _ = (&*stream).read(&mut [0u8; 4096]);
    let _ = (&*stream).write(BUSY_RESPONSE);
}

fn serve(mut stream: TcpStream, slot: &Slot, source: &dyn StatusSource) {
    let counters = &slot.slots.counters;
    let peer = stream.peer_addr().ok();
    let head = match read_head(&mut stream, slot.accepted + HEAD_DEADLINE) {
        Ok(Some(head)) => head,
        // Closed before sending a head, or cut by `admit` / the stop.
        Ok(None) => return,
        Err(e) => {
            if is_timeout(&e) {
                counters.timed_out.fetch_add(1, Ordering::Relaxed);
                debug!(
                    ?peer,
                    "metrics: no complete request head within {HEAD_DEADLINE:?}"
                );
            } else {
                debug!(?peer, "metrics: reading the request: {e}");
            }
            return;
        }
    };
    if !slot.begin_answer() {
        return;
    }
    let response = respond(head, source);
    match write_by(&mut stream, &response, Instant::now() + WRITE_DEADLINE) {
        Ok(()) => {
            counters.served.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) if is_timeout(&e) => {
            counters.timed_out.fetch_add(1, Ordering::Relaxed);
            debug!(?peer, "metrics: answer not taken within {WRITE_DEADLINE:?}");
        }
        Err(e) => debug!(?peer, "metrics: writing the answer: {e}"),
    }
}

/// Reads until the head parses (or is refused), EOF, or `deadline`: the
/// deadline bounds the whole head, however the client spreads its bytes.
/// `Ok(None)`: the client closed without a complete head.
fn read_head(
    stream: &mut TcpStream,
    deadline: Instant,
) -> io::Result<Option<Result<http::Request, HeadError>>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        head.extend_from_slice(&chunk[..n]);
        match http::parse_head(&head) {
            Err(HeadError::Incomplete) => {}
            other => return Ok(Some(other)),
        }
    }
}

/// Writes all of `buf` by `deadline`, however slowly the client reads.
fn write_by(stream: &mut TcpStream, mut buf: &[u8], deadline: Instant) -> io::Result<()> {
    while !buf.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A socket timeout shows as `WouldBlock` (EAGAIN) on Unix.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

fn respond(head: Result<http::Request, HeadError>, source: &dyn StatusSource) -> Vec<u8> {
    let (status, content_type, body, method) = match head {
        Err(e) => (e.status(), "text/plain", format!("{e}\n"), Method::Get),
        Ok(req) => {
            let (status, content_type, body) = route(req.route, source);
            (status, content_type, body, req.method)
        }
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method == Method::Get {
        response.push_str(&body);
    }
    response.into_bytes()
}

fn route(route: Route, source: &dyn StatusSource) -> (&'static str, &'static str, String) {
    // Before any status: a health check must not wait for the Control lock.
    if route == Route::Healthz {
        return ("200 OK", "text/plain", "ok\n".to_owned());
    }
    let status = source.status();
    match route {
        Route::Metrics => (
            "200 OK",
            ethergate_admin::prometheus::CONTENT_TYPE,
            ethergate_admin::prometheus::render(&status),
        ),
        Route::Readyz if status.ready.is_ready() => ("200 OK", "text/plain", "ready\n".to_owned()),
        Route::Readyz | Route::Healthz => (
            "503 Service Unavailable",
            "text/plain",
            format!("not ready: {}\n", status.ready.problems.join("; ")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Condvar;

    use super::*;

    /// A status source that counts its calls and, when gated, blocks until
    /// released (as `Mutex<Control>` does while a reload holds the lock).
    #[derive(Default)]
    struct Stub {
        calls: AtomicU64,
        gated: bool,
        open: Mutex<bool>,
        opened: Condvar,
    }

    impl Stub {
        fn gated() -> Self {
            Self {
                gated: true,
                ..Self::default()
            }
        }

        fn release(&self) {
            *self.open.lock().unwrap_or_else(PoisonError::into_inner) = true;
            self.opened.notify_all();
        }
    }

    /// Opens a gated [`Stub`] when dropped.
    struct Release(Arc<Stub>);

    impl Drop for Release {
        fn drop(&mut self) {
            self.0.release();
        }
    }

    impl StatusSource for Stub {
        fn status(&self) -> Status {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            while self.gated && !*open {
                open = self
                    .opened
                    .wait(open)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            Status {
                version: "test".into(),
                ..Status::default()
            }
        }
    }

    fn start(stub: &Arc<Stub>) -> MetricsServer {
        MetricsServer::start("127.0.0.1:0".parse().expect("address"), Arc::clone(stub))
            .expect("metrics endpoint starts")
    }

    /// One request on a fresh connection: (status line and rest, time taken).
    fn get(addr: SocketAddr, request: &str) -> (String, Duration) {
        let t0 = Instant::now();
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream.write_all(request.as_bytes()).expect("send request");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        (String::from_utf8_lossy(&answer).into_owned(), t0.elapsed())
    }

    fn healthz(addr: SocketAddr) -> (String, Duration) {
        get(addr, "GET /healthz HTTP/1.1\r\nHost: lb\r\n\r\n")
    }

    /// Has the server closed `stream` (EOF or reset)? Waits up to `wait`.
    fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
        stream.set_read_timeout(Some(wait)).expect("timeout");
        match stream.read(&mut [0u8; 256]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !is_timeout(&e),
        }
    }

    /// A head that never ends: a request line, then one header byte at a time.
    const SLOW_HEAD: &[u8] = b"GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    /// Slowloris: `n` connections, each sending one byte of [`SLOW_HEAD`]
    /// every `period` and never finishing, reopened when the server closes
    /// them (as an attacker would). Returns the reopen count when stopped.
    fn slowloris(
        addr: SocketAddr,
        n: usize,
        period: Duration,
        stop: Arc<AtomicBool>,
    ) -> JoinHandle<u64> {
        std::thread::spawn(move || {
            let open = || {
                let s = TcpStream::connect(addr).expect("slowloris connect");
                s.set_nonblocking(true).expect("nonblocking");
                (s, 0usize)
            };
            let mut conns: Vec<(TcpStream, usize)> = (0..n).map(|_| open()).collect();
            let mut reopened = 0;
            while !stop.load(Ordering::Acquire) {
                for conn in &mut conns {
                    let gone = matches!(conn.0.read(&mut [0u8; 64]), Ok(0))
                        || conn
                            .0
                            .write(&SLOW_HEAD[conn.1 % SLOW_HEAD.len()..][..1])
                            .is_err();
                    if gone {
                        *conn = open();
                        reopened += 1;
                    } else {
                        conn.1 += 1;
                    }
                }
                std::thread::sleep(period);
            }
            reopened
        })
    }

    /// Issue 12: `/healthz` answers within 1 s while 10 slowloris clients
    /// hold connections to the metrics port.
    #[test]
    fn healthz_answers_within_1s_under_10_slowloris_clients() {
        let stub = Arc::new(Stub::default());
        let server = start(&stub);
        let stop = Arc::new(AtomicBool::new(false));
        let attacker = slowloris(
            server.addr(),
            10,
            Duration::from_millis(500),
            Arc::clone(&stop),
        );
        // Past the first drips, then across the server's cut at 2 s and
        // the attacker's reopening.
        std::thread::sleep(Duration::from_millis(700));
        let mut worst = Duration::ZERO;
        let mut held = 0;
        for _ in 0..16 {
            held = held.max(server.live_connections());
            let (answer, took) = healthz(server.addr());
            assert!(
                answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("\r\n\r\nok\n"),
                "{answer:?}"
            );
            assert!(took < Duration::from_secs(1), "/healthz took {took:?}");
            worst = worst.max(took);
            std::thread::sleep(Duration::from_millis(200));
        }
        stop.store(true, Ordering::Release);
        let reopened = attacker.join().expect("attacker");
        eprintln!(
            "/healthz under 10 slowloris clients: worst {worst:?} of 16; \
             {held} connections held; {reopened} reopened after the server cut them"
        );
        assert!(held >= 10, "the slowloris connections were held ({held})");
        assert!(reopened >= 10, "the server cut every slowloris connection");
        assert_eq!(
            stub.calls.load(Ordering::SeqCst),
            0,
            "/healthz asks no status"
        );
        assert!(server.counters().timed_out.load(Ordering::Relaxed) >= 10);
        assert_eq!(server.counters().served.load(Ordering::Relaxed), 16);
    }

    /// The head deadline is for the whole head: a client that keeps
    /// sending a byte every 500 ms is still cut at [`HEAD_DEADLINE`].
    #[test]
    fn slowloris_is_cut_at_its_head_deadline() {
        let stub = Arc::new(Stub::default());
        let server = start(&stub);
        let t0 = Instant::now();
        let mut stream = TcpStream::connect(server.addr()).expect("connect");
        let mut sent = 0;
        let cut = loop {
            assert!(t0.elapsed() < Duration::from_secs(10), "never cut");
            if stream
                .write_all(&SLOW_HEAD[sent % SLOW_HEAD.len()..][..1])
                .is_err()
            {
                break t0.elapsed();
            }
            sent += 1;
            if closed_within(&mut stream, Duration::from_millis(500)) {
                break t0.elapsed();
            }
        };
        eprintln!("slowloris connection cut after {cut:?}, having sent {sent} bytes");
        assert!(sent >= 4, "it kept sending ({sent} bytes)");
        assert!(
            cut >= HEAD_DEADLINE - Duration::from_millis(50)
                && cut <= HEAD_DEADLINE + Duration::from_millis(600),
            "cut after {cut:?}"
        );
        assert_eq!(server.counters().timed_out.load(Ordering::Relaxed), 1);
    }

    /// All slots taken by connections still sending: the oldest ones are
    /// cut to make room, and the health check is answered.
    #[test]
    fn the_oldest_slow_connections_make_room() {
        let stub = Arc::new(Stub::default());
        let server = start(&stub);
        let extra = 8;
        let mut slow: Vec<TcpStream> = (0..MAX_CONNECTIONS + extra)
            .map(|_| {
                let mut s = TcpStream::connect(server.addr()).expect("connect");
                s.write_all(b"GET /").expect("partial head");
                s
            })
            .collect();
        let (answer, took) = healthz(server.addr());
        eprintln!(
            "/healthz with {} slow connections open: {took:?}",
            slow.len()
        );
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer:?}");
        assert!(took < Duration::from_secs(1), "/healthz took {took:?}");
        // The health check's own connection evicted one more.
        assert_eq!(
            server.counters().evicted.load(Ordering::Relaxed),
            extra as u64 + 1
        );
        for (i, s) in slow.iter_mut().enumerate() {
            let expect_cut = i <= extra;
            assert_eq!(
                closed_within(s, Duration::from_millis(if expect_cut { 500 } else { 1 })),
                expect_cut,
                "connection {i}"
            );
        }
        assert_eq!(server.counters().refused.load(Ordering::Relaxed), 0);
    }

    /// Every slot busy answering (the status source is stuck): the newest
    /// connection is refused with 503 at once, and the others are answered
    /// when the source comes back.
    #[test]
    fn when_every_slot_is_answering_the_newest_gets_503() {
        let stub = Arc::new(Stub::gated());
        let server = start(&stub);
        let addr = server.addr();
        // Declared after the server, so dropped first: a failed assertion
        // still lets the stuck handlers go and the server stop.
        let _release = Release(Arc::clone(&stub));
        let waiting: Vec<JoinHandle<(String, Duration)>> = (0..MAX_CONNECTIONS)
            .map(|_| std::thread::spawn(move || get(addr, "GET /metrics HTTP/1.1\r\n\r\n")))
            .collect();
        let t0 = Instant::now();
        while stub.calls.load(Ordering::SeqCst) < MAX_CONNECTIONS as u64 {
            assert!(t0.elapsed() < Duration::from_secs(5), "requests stuck");
            std::thread::sleep(Duration::from_millis(5));
        }
        let (answer, took) = get(addr, "GET /readyz HTTP/1.1\r\n\r\n");
        assert!(
            answer.starts_with("HTTP/1.1 503 Service Unavailable") && answer.ends_with("busy\n"),
            "{answer:?}"
        );
        assert!(took < Duration::from_secs(1), "refusal took {took:?}");
        assert_eq!(server.counters().refused.load(Ordering::Relaxed), 1);
        stub.release();
        for w in waiting {
            let (answer, _) = w.join().expect("client");
            assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer:?}");
            assert!(answer.contains("ethergate_"), "{answer:?}");
        }
    }

    #[test]
    fn routes_answer_as_before() {
        let stub = Arc::new(Stub::default());
        let server = start(&stub);
        let addr = server.addr();
        let (metrics, _) = get(addr, "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics:?}");
        assert!(
            metrics.contains(&format!(
                "Content-Type: {}",
                ethergate_admin::prometheus::CONTENT_TYPE
            )),
            "{metrics:?}"
        );
        let (ready, _) = get(addr, "GET /readyz HTTP/1.1\r\n\r\n");
        assert!(ready.starts_with("HTTP/1.1 200 OK"), "{ready:?}");
        let (head, _) = get(addr, "HEAD /healthz HTTP/1.1\r\n\r\n");
        assert!(
            head.starts_with("HTTP/1.1 200 OK") && head.ends_with("\r\n\r\n"),
            "{head:?}"
        );
        assert!(head.contains("Content-Length: 3\r\n"), "{head:?}");
        let (missing, _) = get(addr, "GET /nope HTTP/1.1\r\n\r\n");
        assert!(missing.starts_with("HTTP/1.1 404 Not Found"), "{missing:?}");
        let (post, _) = get(addr, "POST /metrics HTTP/1.1\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405"), "{post:?}");
        let (huge, _) = get(addr, &"x".repeat(http::MAX_HEAD_BYTES + 10));
        assert!(huge.starts_with("HTTP/1.1 431"), "{huge:?}");
    }

    /// Drop stops accepting, cuts open connections without waiting for
    /// their deadlines, and leaves no thread holding the status source.
    #[test]
    fn drop_stops_the_server_and_cuts_its_connections() {
        let stub = Arc::new(Stub::default());
        let server = start(&stub);
        let addr = server.addr();
        let mut slow: Vec<TcpStream> = (0..5)
            .map(|_| {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.write_all(b"GET /healthz HTTP/1.1\r\n")
                    .expect("partial head");
                s
            })
            .collect();
        let t0 = Instant::now();
        while server.live_connections() < 5 {
            assert!(
                t0.elapsed() < Duration::from_secs(2),
                "connections not accepted"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let t0 = Instant::now();
        drop(server);
        let took = t0.elapsed();
        assert!(took < Duration::from_millis(500), "drop took {took:?}");
        assert_eq!(Arc::strong_count(&stub), 1, "no thread holds the source");
        for s in &mut slow {
            assert!(closed_within(s, Duration::from_millis(100)));
        }
        assert!(TcpStream::connect(addr).is_err(), "still listening");
    }

    /// The write deadline is for the whole answer: a client that never
    /// reads holds the connection no longer than that.
    #[test]
    fn a_client_that_does_not_read_is_cut_at_the_write_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (mut server_side, _) = listener.accept().expect("accept");
        // Far more than loopback's socket buffers can hold.
        let answer = vec![b'x'; 64 << 20];
        let deadline = Duration::from_millis(300);
        let t0 = Instant::now();
        let result = write_by(&mut server_side, &answer, t0 + deadline);
        let took = t0.elapsed();
        assert!(matches!(&result, Err(e) if is_timeout(e)), "{result:?}");
        assert!(
            took >= deadline && took < deadline + Duration::from_millis(500),
            "took {took:?}"
        );
        drop(client);
    }
}
