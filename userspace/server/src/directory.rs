//! What every worker thread needs to know about hubs and sessions, shared
//! across threads: the hubs with their users (for authentication) and data
//! planes, the workers to tell about new hubs (they read the hubs' tap
//! queues), and the session registry that lets an `additional_connect` find
//! the session it belongs to.
//!
//! Invariant: a session is in the registry while at least one of its TCP
//! connections is alive, and for up to its `timeout` after the last one
//! left (SoftEther keeps a session that long, and the client resumes it
//! with `additional_connect`); then the reaper removes it and detaches its
//! port, so a hub never forwards to a session nobody can resume.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use ethergate_proto::{Authenticator, ErrorCode, LoginRequest, SessionGrant, Welcome};

use crate::{
    admission::{Admission, AdmissionLimits},
    counters::SessionCounters,
    hub_handle::HubAccess,
    hub_plane::{HubPlane, PortId, SessionPolicy},
    login_throttle::{LoginThrottle, ThrottleConfig},
    outbox::Outbox,
};

/// A hub as the workers see it.
pub struct HubEntry {
    pub name: String,
    /// Lower-cased user name → stored SoftEther hash `H`. Replaced whole on
    /// reload; a login sees either the old set or the new one.
    users: RwLock<HashMap<String, [u8; 20]>>,
    /// Switching, the sessions' outboxes and the tap queues.
    pub plane: Arc<HubPlane>,
    sessions: AtomicUsize,
    /// Lower-cased user name → the limits its sessions get (`[hub.limits]`
    /// with the user's overrides); a user not listed gets the defaults.
    /// Replaced whole on reload; running sessions keep theirs.
    limits: RwLock<HashMap<String, ethergate_config::SessionLimits>>,
    /// Lower-cased user name → its sessions (reserved or open), for
    /// `max_sessions_per_user`.
    user_sessions: Mutex<HashMap<String, u32>>,
}

impl HubEntry {
    pub fn session_count(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    pub fn user_count(&self) -> usize {
        self.read_users().len()
    }

    #[cfg(test)]
    pub fn has_user(&self, name: &str) -> bool {
        self.read_users().contains_key(&name.to_ascii_lowercase())
    }

    /// Replaces the hub's users (reload). Sessions are not touched here.
    pub fn set_users(&self, users: impl IntoIterator<Item = (String, [u8; 20])>) {
        let users = lowercase_keys(users);
        *self
            .users
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = users;
    }

    /// Replaces the users' limits (start, reload): lower-cased or not.
    pub fn set_limits(
        &self,
        limits: impl IntoIterator<Item = (String, ethergate_config::SessionLimits)>,
    ) {
        let limits = limits
            .into_iter()
            .map(|(n, l)| (n.to_ascii_lowercase(), l))
            .collect();
        *self
            .limits
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = limits;
    }

    /// The limits `user`'s new sessions get.
    pub fn limits_of(&self, user: &str) -> ethergate_config::SessionLimits {
        self.limits
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&user.to_ascii_lowercase())
            .copied()
            .unwrap_or_default()
    }

    #[cfg(test)]
    /// Sessions `user` holds (reserved or open).
    pub fn user_session_count(&self, user: &str) -> u32 {
        self.lock_user_sessions()
            .get(&user.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    fn lock_user_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        // Single insert/remove calls: never half-updated.
        self.user_sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn stored_hash(&self, user: &str) -> Option<[u8; 20]> {
        self.read_users().get(&user.to_ascii_lowercase()).copied()
    }

    fn read_users(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, [u8; 20]>> {
        // Writers replace the map in one assignment: never half-updated.
        self.users
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn lowercase_keys(
    users: impl IntoIterator<Item = (String, [u8; 20])>,
) -> HashMap<String, [u8; 20]> {
    users
        .into_iter()
        .map(|(n, h)| (n.to_ascii_lowercase(), h))
        .collect()
}

/// Caps, each refused with the code SoftEther itself uses.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// TCP connections that have not finished the handshake, per source
    /// and in all (a flood and slow-loris guard; see [`crate::admission`]).
    pub admission: AdmissionLimits,
    /// Failed logins and their backoff (see [`crate::login_throttle`]).
    pub login_throttle: ThrottleConfig,
    /// A connection whose peer takes no bytes for this long is closed: a
    /// client that stops reading must not pin its connection (and the
    /// session's memory) forever. Also the kernel's TCP_USER_TIMEOUT.
    pub write_timeout: Duration,
    /// Sessions in the whole server → ERR_TOO_MANY_CONNECTION (15).
    pub max_sessions: usize,
    /// Sessions per hub → ERR_HUB_IS_BUSY (16), which SoftEther clients
    /// answer by retrying later rather than giving up.
    pub max_sessions_per_hub: usize,
    /// Hard bound on the bytes of frames queued from the hub to one
    /// session (all its connections' lanes). Latency is kept down by each
    /// lane's CoDel (5 ms target), not by this bound: at 1 MiB, tail drops
    /// in bursts dominated under `/MAXTCP:8` load (12,836 frames in 8 s);
    /// at 4 MiB the same run dropped none. Memory: a session only holds
    /// what its connections have not yet taken.
    pub session_queue_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            admission: AdmissionLimits::default(),
            login_throttle: ThrottleConfig::default(),
            // SoftEther's default session timeout: a peer silent this long
            // is dead by the protocol's own rule too.
            write_timeout: Duration::from_secs(20),
            max_sessions: 4096,
            max_sessions_per_hub: 4096,
            session_queue_bytes: 4 << 20,
        }
    }
}

/// The session registry: live sessions by key, and the deadlines of those
/// whose connections have all gone (still in `live`, resumable).
#[derive(Default)]
struct Sessions {
    live: HashMap<[u8; 20], Arc<SessionShared>>,
    orphaned: HashMap<[u8; 20], Instant>,
}

/// State of one session shared by its connections.
pub struct SessionShared {
    pub hub: Arc<HubEntry>,
    pub port: PortId,
    pub session_name: String,
    pub user: String,
    /// Where the login connection came from.
    pub client: SocketAddr,
    /// The worker thread the login connection ran on.
    pub worker: usize,
    pub established: Instant,
    pub counters: SessionCounters,
    /// Set when an operator or a reload ended the session: its connections
    /// close and it is not kept for resumption.
    closed: AtomicBool,
    /// Frames from the hub; every connection of the session takes from
    /// it, which spreads frames over the connections (§6: any connection
    /// may carry any frame).
    pub outbox: Arc<Outbox>,
    connections: AtomicU32,
    pub max_connections: u32,
    /// Negotiated at login; additional connections inherit them.
    pub timeout_ms: u32,
    pub use_compress: bool,
    /// Set for a WireGuard peer's session: its current endpoint and last
    /// handshake.
    pub wireguard: Option<Arc<crate::wireguard::peer_link::PeerLink>>,
    /// Set when the login was granted UDP acceleration.
    pub udp_accel: Option<Arc<crate::udp_accel::UdpPath>>,
}

impl SessionShared {
    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Frames the client sent, switched through the hub on `worker` (to
    /// its own tap queue) and counted; TCP SYNs are clamped first when the
    /// session may carry them by UDP acceleration.
    pub(crate) fn switch_from_client(
        &self,
        frames: &mut ethergate_proto::data::Frames,
        worker: &crate::worker_context::Worker,
    ) {
        if self.udp_accel.is_some() {
            crate::udp_accel::clamp_mss(frames);
        }
        self.counters.received.add_batch(frames);
        let mut buffers = worker.switch_buffers.borrow_mut();
        self.hub
            .plane
            .switch_from_session(self.port, frames, worker.index, &mut buffers);
    }

    /// A WireGuard session's sender ended (its one "connection"): a
    /// stopping server stops waiting for it.
    pub(crate) fn sender_ended(&self) {
        let _ = self
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

/// Why a session ended, for its log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// `session disconnect` or the admin socket.
    Disconnected,
    /// The user was removed by a reload.
    UserRemoved,
    /// The user's password was changed by a reload: whoever logged in
    /// with the old one is out.
    PasswordChanged,
    /// The hub was removed by a reload.
    HubRemoved,
    ServerStopping,
    /// Its connections were gone for longer than its timeout.
    NotResumed,
    /// A WireGuard peer made no handshake for so long that its keys were
    /// erased.
    KeysExpired,
    /// The user's WireGuard key or address was changed by a reload.
    WireguardKeyChanged,
}

impl EndReason {
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Disconnected => "disconnected_by_operator",
            EndReason::UserRemoved => "user_removed",
            EndReason::PasswordChanged => "password_changed",
            EndReason::HubRemoved => "hub_removed",
            EndReason::ServerStopping => "server_stopping",
            EndReason::NotResumed => "not_resumed_within_timeout",
            EndReason::KeysExpired => "wireguard_keys_expired",
            EndReason::WireguardKeyChanged => "wireguard_key_changed",
        }
    }
}

/// A session as status shows it.
pub struct SessionView {
    pub shared: Arc<SessionShared>,
    /// No connection right now; resumable until its timeout.
    pub orphaned: bool,
}

/// Who logged in, from where, and on which worker, for the session
/// registry.
pub struct LoginInfo<'a> {
    pub user: &'a str,
    pub client: SocketAddr,
    pub worker: usize,
    pub udp_accel: Option<Arc<crate::udp_accel::UdpPath>>,
}

pub struct Directory {
    hubs: RwLock<HashMap<String, Arc<HubEntry>>>,
    sessions: Mutex<Sessions>,
    pub limits: Limits,
    total_sessions: AtomicUsize,
    /// Connections still in their handshake.
    pub admission: Arc<Admission>,
    pub login_throttle: Mutex<LoginThrottle>,
    next_port: AtomicU64,
    next_connection: AtomicU64,
    /// One channel per worker thread; every hub (at registration, or
    /// when added) is sent to each, so each reads its share of the taps.
    workers: Mutex<Vec<async_channel::Sender<Arc<HubPlane>>>>,
    /// Sessions with UDP acceleration, for matching datagrams to them.
    pub udp_accel: crate::udp_accel::Registry,
}

impl Directory {
    pub fn new(limits: Limits) -> Self {
        Self {
            hubs: RwLock::new(HashMap::new()),
            sessions: Mutex::new(Sessions::default()),
            limits,
            total_sessions: AtomicUsize::new(0),
            admission: Arc::new(Admission::new(limits.admission)),
            login_throttle: Mutex::new(LoginThrottle::new(limits.login_throttle)),
            // Port 0 is the hub's local bridge.
            next_port: AtomicU64::new(1),
            next_connection: AtomicU64::new(1),
            workers: Mutex::default(),
            udp_accel: crate::udp_accel::Registry::default(),
        }
    }

    /// A worker thread joins: it receives every hub there is and every hub
    /// added later.
    pub fn register_worker(&self) -> async_channel::Receiver<Arc<HubPlane>> {
        let mut workers = self.lock_workers();
        let (tx, rx) = async_channel::unbounded();
        for hub in self.read_hubs().values() {
            let _ = tx.try_send(Arc::clone(&hub.plane));
        }
        workers.push(tx);
        rx
    }

    fn lock_workers(&self) -> std::sync::MutexGuard<'_, Vec<async_channel::Sender<Arc<HubPlane>>>> {
        // Pushes and sends only: never half-updated.
        self.workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Once a second (the reaper): each hub's MAC aging, gauges and lease
    /// file.
    pub fn hub_housekeeping(&self) {
        for hub in self.hubs() {
            hub.plane.housekeeping();
        }
    }

    /// Registers a hub with its users and their limits, and hands its
    /// data plane to every worker. Replaces a hub of that name.
    pub fn add_hub(&self, plane: &Arc<HubPlane>, access: HubAccess) {
        let entry = HubEntry {
            name: plane.name.clone(),
            users: RwLock::new(lowercase_keys(access.users)),
            plane: Arc::clone(plane),
            sessions: AtomicUsize::new(0),
            limits: RwLock::default(),
            user_sessions: Mutex::default(),
        };
        entry.set_limits(access.limits);
        // Under the workers' lock: a worker registering now sees either
        // the hub in the map or the hub on its channel, never neither.
        let workers = self.lock_workers();
        self.write_hubs()
            .insert(plane.name.to_ascii_lowercase(), Arc::new(entry));
        for worker in workers.iter() {
            let _ = worker.try_send(Arc::clone(plane));
        }
    }

    /// Removes a hub (reload) and closes its sessions; new logins to it get
    /// "hub not found".
    pub fn remove_hub(&self, name: &str) -> Option<Arc<HubEntry>> {
        let hub = self.write_hubs().remove(&name.to_ascii_lowercase())?;
        self.close_sessions_where(EndReason::HubRemoved, |s| Arc::ptr_eq(&s.hub, &hub));
        hub.plane.close();
        Some(hub)
    }

    pub fn hub(&self, name: &str) -> Option<Arc<HubEntry>> {
        self.read_hubs().get(&name.to_ascii_lowercase()).cloned()
    }

    /// Every hub, in name order.
    pub fn hubs(&self) -> Vec<Arc<HubEntry>> {
        let mut hubs: Vec<_> = self.read_hubs().values().cloned().collect();
        hubs.sort_by(|a, b| a.name.cmp(&b.name));
        hubs
    }

    /// Every session, oldest first.
    pub fn sessions(&self) -> Vec<SessionView> {
        let sessions = self.lock_sessions();
        let mut views: Vec<SessionView> = sessions
            .live
            .iter()
            .map(|(key, shared)| SessionView {
                shared: Arc::clone(shared),
                orphaned: sessions.orphaned.contains_key(key),
            })
            .collect();
        views.sort_by_key(|v| v.shared.established);
        views
    }

    /// Ends the session called `name` (case-insensitive, as SoftEther
    /// shows names upper-case); false if there is none.
    pub fn disconnect(&self, name: &str) -> bool {
        self.close_sessions_where(EndReason::Disconnected, |s| {
            s.session_name.eq_ignore_ascii_case(name)
        }) > 0
    }

    /// Ends the sessions of `user` on `hub`, or on every hub when `hub` is
    /// `None`; returns how many.
    pub fn disconnect_user(&self, hub: Option<&str>, user: &str, reason: EndReason) -> usize {
        self.close_sessions_where(reason, |s| {
            hub.is_none_or(|hub| s.hub.name.eq_ignore_ascii_case(hub))
                && s.user.eq_ignore_ascii_case(user)
        })
    }

    /// Ends the WireGuard sessions of `user` on `hub` (its key or address
    /// changed); returns how many.
    pub fn disconnect_wireguard(&self, hub: &str, user: &str, reason: EndReason) -> usize {
        self.close_sessions_where(reason, |s| {
            s.wireguard.is_some()
                && s.hub.name.eq_ignore_ascii_case(hub)
                && s.user.eq_ignore_ascii_case(user)
        })
    }

    /// Ends every session (the server is stopping) and returns them, so
    /// the caller can wait for their connections to close.
    pub fn end_all_sessions(&self) -> Vec<Arc<SessionShared>> {
        let sessions = self.lock_sessions();
        let all: Vec<Arc<SessionShared>> = sessions.live.values().cloned().collect();
        let keys: Vec<[u8; 20]> = sessions.live.keys().copied().collect();
        self.end_sessions(sessions, &keys, EndReason::ServerStopping);
        all
    }

    /// Ends every session `matches` picks (see [`Self::end_sessions`]).
    fn close_sessions_where(
        &self,
        why: EndReason,
        matches: impl Fn(&SessionShared) -> bool,
    ) -> usize {
        let sessions = self.lock_sessions();
        let keys: Vec<[u8; 20]> = sessions
            .live
            .iter()
            .filter(|(_, s)| matches(s))
            .map(|(key, _)| *key)
            .collect();
        self.end_sessions(sessions, &keys, why)
    }

    /// Removes `keys` from the registry (releasing the lock), then ends
    /// each session: its outbox closes, which ends its connections even
    /// when the hub itself is gone (a removed hub), its port is detached,
    /// and its slots are released. Returns how many ended.
    fn end_sessions(
        &self,
        mut sessions: std::sync::MutexGuard<'_, Sessions>,
        keys: &[[u8; 20]],
        why: EndReason,
    ) -> usize {
        let mut ended = Vec::with_capacity(keys.len());
        for key in keys {
            sessions.orphaned.remove(key);
            if let Some(shared) = sessions.live.remove(key) {
                shared.closed.store(true, Ordering::Release);
                ended.push(shared);
            }
        }
        drop(sessions);
        for shared in &ended {
            if shared.udp_accel.is_some() {
                self.udp_accel.remove(shared);
            }
            shared.outbox.close();
            shared.hub.plane.detach(shared.port);
            self.release_counts(&shared.hub, &shared.user);
            let (frames_in, bytes_in) = shared.counters.received.get();
            let (frames_out, bytes_out) = shared.counters.sent.get();
            tracing::info!(
                client = %shared.client.ip(),
                hub = shared.hub.name,
                user = shared.user,
                session = shared.session_name,
                reason = why.name(),
                duration_secs = shared.established.elapsed().as_secs(),
                bytes_in,
                bytes_out,
                frames_in,
                frames_out,
                "session ended"
            );
        }
        ended.len()
    }

    fn read_hubs(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<HubEntry>>> {
        self.hubs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_hubs(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<HubEntry>>> {
        self.hubs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    pub fn session_count(&self) -> usize {
        self.total_sessions.load(Ordering::Relaxed)
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Takes a session slot for an authenticated login of `user`, before
    /// the welcome is sent: past a cap the login is refused with the cap's
    /// code; past the user's `max_sessions_per_user` with
    /// ERR_TOO_MANY_USER_SESSION (20), as SoftEther's `MultiLogins` does.
    pub fn reserve_session(&self, hub: &HubEntry, user: &str) -> Result<(), ErrorCode> {
        if self.total_sessions.fetch_add(1, Ordering::AcqRel) >= self.limits.max_sessions {
            self.total_sessions.fetch_sub(1, Ordering::AcqRel);
            return Err(ErrorCode::TOO_MANY_CONNECTION);
        }
        if hub.sessions.fetch_add(1, Ordering::AcqRel) >= self.limits.max_sessions_per_hub {
            hub.sessions.fetch_sub(1, Ordering::AcqRel);
            self.total_sessions.fetch_sub(1, Ordering::AcqRel);
            return Err(ErrorCode::HUB_IS_BUSY);
        }
        let cap = hub.limits_of(user).sessions_per_user();
        let mut per_user = hub.lock_user_sessions();
        let held = per_user.entry(user.to_ascii_lowercase()).or_insert(0);
        if cap.is_some_and(|cap| *held >= cap) {
            if *held == 0 {
                per_user.remove(&user.to_ascii_lowercase());
            }
            drop(per_user);
            hub.sessions.fetch_sub(1, Ordering::AcqRel);
            self.total_sessions.fetch_sub(1, Ordering::AcqRel);
            return Err(ErrorCode::TOO_MANY_USER_SESSION);
        }
        *held += 1;
        Ok(())
    }

    /// Turns a reservation into a session once the welcome is queued: takes
    /// a port on the hub and registers the session key. On failure the
    /// reservation is released.
    pub fn open_reserved(
        &self,
        hub: &Arc<HubEntry>,
        welcome: &Welcome,
        login: &LoginInfo<'_>,
    ) -> Result<Arc<SessionShared>, ErrorCode> {
        let port = PortId(self.next_port.fetch_add(1, Ordering::Relaxed));
        let outbox = Arc::new(Outbox::new(self.limits.session_queue_bytes));
        let shared = Arc::new(SessionShared {
            hub: Arc::clone(hub),
            port,
            session_name: welcome.session_name.clone(),
            user: login.user.to_owned(),
            client: login.client,
            worker: login.worker,
            established: Instant::now(),
            counters: SessionCounters::default(),
            closed: AtomicBool::new(false),
            outbox: Arc::clone(&outbox),
            connections: AtomicU32::new(1),
            max_connections: welcome.max_connection.max(1),
            timeout_ms: welcome.timeout_ms,
            use_compress: welcome.use_compress,
            wireguard: None,
            udp_accel: login.udp_accel.clone(),
        });
        // The switch learns of the port before the session exists for any
        // connection to send frames on.
        let policy = SessionPolicy::new(login.user, hub.limits_of(login.user));
        if !hub.plane.attach(port, outbox, login.worker, &policy) {
            self.release_counts(hub, login.user);
            return Err(ErrorCode::HUB_STOPPING);
        }
        self.lock_sessions()
            .live
            .insert(welcome.session_key, Arc::clone(&shared));
        if shared.udp_accel.is_some() {
            self.udp_accel.add(&shared);
        }
        Ok(shared)
    }

    /// A WireGuard peer of `user` finished a handshake on `worker`: a
    /// session under the same caps as a SoftEther login (sessions per
    /// server, hub and user), with a port on the hub. Its frames go to the
    /// outbox the peer's sender task drains.
    pub fn open_wireguard(
        &self,
        hub: &Arc<HubEntry>,
        user: &str,
        link: Arc<crate::wireguard::peer_link::PeerLink>,
        worker: usize,
    ) -> Result<Arc<SessionShared>, ErrorCode> {
        self.reserve_session(hub, user)?;
        let port = PortId(self.next_port.fetch_add(1, Ordering::Relaxed));
        let outbox = Arc::new(Outbox::new(self.limits.session_queue_bytes));
        let mut key = [0u8; 20];
        crate::random::system_random(&mut key);
        let shared = Arc::new(SessionShared {
            hub: Arc::clone(hub),
            port,
            session_name: format!(
                "WG-{}-{}",
                user.to_ascii_uppercase(),
                self.next_connection_id()
            ),
            user: user.to_owned(),
            client: link.endpoint(),
            worker,
            established: Instant::now(),
            counters: SessionCounters::default(),
            closed: AtomicBool::new(false),
            outbox: Arc::clone(&outbox),
            connections: AtomicU32::new(1),
            max_connections: 1,
            timeout_ms: 0,
            use_compress: false,
            wireguard: Some(link),
            udp_accel: None,
        });
        let policy = SessionPolicy::new(user, hub.limits_of(user));
        if !hub.plane.attach(port, outbox, worker, &policy) {
            self.release_counts(hub, user);
            return Err(ErrorCode::HUB_STOPPING);
        }
        self.lock_sessions().live.insert(key, Arc::clone(&shared));
        Ok(shared)
    }

    /// Ends one session (a WireGuard peer whose keys expired).
    pub fn end_session(&self, shared: &SessionShared, why: EndReason) -> bool {
        self.close_sessions_where(why, |s| std::ptr::eq(s, shared)) > 0
    }

    /// An `additional_connect` with `session_key`: joins the session if it
    /// exists and has room. A full session gets ERR_TOO_MANY_CONNECTION,
    /// which the client takes as "stop adding" (§6). An unknown key gets
    /// ERR_SESSION_TIMEOUT, as from SoftEther's own `GetSessionFromKey`
    /// miss: it makes the client drop the dead session and log in afresh —
    /// exactly right after a server restart, where refusing with 15 would
    /// leave the client retrying additional connections forever.
    pub fn join_session(&self, session_key: &[u8; 20]) -> Result<Arc<SessionShared>, ErrorCode> {
        let mut sessions = self.lock_sessions();
        let shared = Arc::clone(
            sessions
                .live
                .get(session_key)
                .ok_or(ErrorCode::SESSION_TIMEOUT)?,
        );
        if sessions.orphaned.remove(session_key).is_some() {
            // Resuming a session whose connections all dropped.
            shared.connections.store(1, Ordering::Release);
            return Ok(shared);
        }
        let mut current = shared.connections.load(Ordering::Acquire);
        loop {
            if current == 0 || current >= shared.max_connections {
                return Err(ErrorCode::TOO_MANY_CONNECTION);
            }
            match shared.connections.compare_exchange(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(shared),
                Err(seen) => current = seen,
            }
        }
    }

    /// A connection of `shared` ended. After the last one the session is
    /// kept for its timeout, for the client to resume; returns true then.
    pub fn leave_session(&self, session_key: &[u8; 20], shared: &Arc<SessionShared>) -> bool {
        let mut sessions = self.lock_sessions();
        if shared.connections.fetch_sub(1, Ordering::AcqRel) != 1 || shared.is_closed() {
            return false;
        }
        let grace = Duration::from_millis(u64::from(shared.timeout_ms));
        sessions
            .orphaned
            .insert(*session_key, Instant::now() + grace);
        true
    }

    /// Removes sessions whose resume window has passed; returns how many.
    pub fn reap_orphans(&self, now: Instant) -> usize {
        let sessions = self.lock_sessions();
        let expired: Vec<[u8; 20]> = sessions
            .orphaned
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(key, _)| *key)
            .collect();
        self.end_sessions(sessions, &expired, EndReason::NotResumed)
    }

    fn release_counts(&self, hub: &HubEntry, user: &str) {
        hub.sessions.fetch_sub(1, Ordering::AcqRel);
        self.total_sessions.fetch_sub(1, Ordering::AcqRel);
        let mut per_user = hub.lock_user_sessions();
        let key = user.to_ascii_lowercase();
        if let Some(n) = per_user.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_user.remove(&key);
            }
        }
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        // A panic while holding this lock can't leave the map inconsistent
        // (single insert/remove calls), so a poisoned lock is still usable.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Checks a login against the hub's users; the grant's names follow
/// SoftEther's `SID-<USER>-<n>` / `CID-<n>` form.
pub struct LoginCheck<'a> {
    pub directory: &'a Directory,
    pub connection_id: u64,
    /// Set when the login succeeds: which hub it was for.
    pub hub: Option<Arc<HubEntry>>,
}

impl Authenticator for LoginCheck<'_> {
    fn authenticate(
        &mut self,
        req: &LoginRequest,
        server_random: &[u8; 20],
    ) -> Result<SessionGrant, ErrorCode> {
        let hub = self
            .directory
            .hub(&req.hubname)
            .ok_or(ErrorCode::HUB_NOT_FOUND)?;
        // Unknown user and wrong password look the same to the client (9),
        // as on the real server: no user enumeration.
        let stored = hub
            .stored_hash(&req.username)
            .ok_or(ErrorCode::AUTH_FAILED)?;
        if !req.verify_password(&stored, server_random) {
            return Err(ErrorCode::AUTH_FAILED);
        }
        let mut grant = SessionGrant::new(
            format!(
                "SID-{}-{}",
                req.username.to_ascii_uppercase(),
                self.connection_id
            ),
            format!("CID-{}", self.connection_id),
        );
        // The user's MaxConnection policy caps what the client asks for.
        grant.max_connection = hub.limits_of(&req.username).max_connections_per_session;
        self.hub = Some(hub);
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn welcome(key: u8) -> Welcome {
        Welcome {
            session_name: format!("SID-T-{key}"),
            connection_name: "CID-1".to_owned(),
            session_key: [key; 20],
            session_key_32: 0,
            max_connection: 2,
            use_encrypt: true,
            use_compress: false,
            half_connection: false,
            qos: false,
            timeout_ms: 20_000,
            policies: Vec::new(),
            message: None,
            udp_accel: None,
        }
    }

    fn plane() -> Arc<HubPlane> {
        let switch = crate::hub_switch::HubSwitch::new(
            ethergate_hub::Hub::new("Hub1", ethergate_hub::HubOptions::default(), None),
            None,
        );
        Arc::new(HubPlane::new("Hub1", switch, Vec::new(), Arc::default()).expect("no taps"))
    }

    fn access(users: Vec<(String, [u8; 20])>) -> HubAccess {
        HubAccess {
            users,
            limits: Vec::new(),
        }
    }

    fn directory() -> (Directory, Arc<HubEntry>) {
        let dir = Directory::new(Limits {
            max_sessions: 2,
            max_sessions_per_hub: 1,
            ..Limits::default()
        });
        dir.add_hub(&plane(), access(vec![("Alice".to_owned(), [0u8; 20])]));
        let hub = dir.hub("HUB1").expect("case-insensitive hub lookup");
        (dir, hub)
    }

    fn login() -> LoginInfo<'static> {
        LoginInfo {
            user: "alice",
            client: "192.0.2.1:40000".parse().expect("literal address"),
            worker: 0,
            udp_accel: None,
        }
    }

    #[test]
    fn disconnect_ends_a_session_for_good() {
        let (dir, hub) = directory();
        dir.reserve_session(&hub, "alice").expect("reserve");
        let w = welcome(9);
        let session = dir.open_reserved(&hub, &w, &login()).expect("open");
        assert!(hub.plane.has_port(session.port));
        assert_eq!(dir.sessions().len(), 1);
        assert!(!dir.disconnect("SID-T-8"), "no such session");
        assert!(dir.disconnect("sid-t-9"), "names match case-insensitively");
        assert!(!hub.plane.has_port(session.port));
        assert!(session.is_closed());
        assert_eq!(dir.session_count(), 0);
        // Its connection leaving afterwards neither orphans nor double-counts.
        assert!(!dir.leave_session(&w.session_key, &session));
        assert_eq!(
            dir.reap_orphans(Instant::now() + Duration::from_secs(60)),
            0
        );
        assert_eq!(
            dir.join_session(&w.session_key).err(),
            Some(ErrorCode::SESSION_TIMEOUT)
        );
        assert!(dir.sessions().is_empty());
    }

    #[test]
    fn removed_users_and_hubs_close_their_sessions() {
        let (dir, hub) = directory();
        dir.reserve_session(&hub, "alice").expect("reserve");
        let first = dir
            .open_reserved(&hub, &welcome(1), &login())
            .expect("open");
        hub.set_users([("Bob".to_owned(), [1u8; 20])]);
        assert!(!hub.has_user("alice") && hub.has_user("BOB"));
        assert_eq!(
            dir.disconnect_user(Some("hub1"), "ALICE", EndReason::UserRemoved),
            1
        );
        assert!(!hub.plane.has_port(first.port));
        dir.reserve_session(&hub, "alice").expect("slot released");
        let second = dir
            .open_reserved(&hub, &welcome(2), &login())
            .expect("open");
        assert!(hub.plane.has_port(second.port));
        assert!(dir.remove_hub("HUB1").is_some());
        assert!(dir.hub("hub1").is_none());
        assert_eq!(dir.session_count(), 0);
        assert!(!hub.plane.has_port(second.port));
        assert!(hub.plane.is_closed());
    }

    #[test]
    fn per_user_limits_cap_sessions_and_connections_and_reach_the_hub() {
        let dir = Directory::new(Limits::default());
        dir.add_hub(&plane(), access(Vec::new()));
        let hub = dir.hub("hub1").expect("hub");
        let alice = ethergate_config::SessionLimits {
            max_sessions_per_user: 2,
            max_connections_per_session: 4,
            max_macs_per_session: 0,
            ..ethergate_config::SessionLimits::default()
        };
        hub.set_limits([("ALICE".to_owned(), alice)]);
        assert_eq!(hub.limits_of("alice"), alice);
        assert_eq!(
            hub.limits_of("bob"),
            ethergate_config::SessionLimits::default()
        );
        dir.reserve_session(&hub, "alice").expect("first");
        let first = dir
            .open_reserved(&hub, &welcome(1), &login())
            .expect("open");
        let policy = hub.plane.port_policy(first.port).expect("attached");
        assert_eq!(policy.max_macs, alice.macs_per_session());
        assert_eq!(policy.max_leases, alice.leases_per_session());
        dir.reserve_session(&hub, "Alice").expect("second");
        // A third is refused with SoftEther's code, and takes no slot.
        assert_eq!(
            dir.reserve_session(&hub, "alice"),
            Err(ErrorCode::TOO_MANY_USER_SESSION)
        );
        assert_eq!(hub.user_session_count("alice"), 2);
        assert_eq!(hub.session_count(), 2);
        assert_eq!(dir.session_count(), 2);
        // Other users are not affected.
        dir.reserve_session(&hub, "bob").expect("bob");
        // Ending a session frees its user's slot.
        assert!(dir.disconnect(&first.session_name));
        assert_eq!(hub.user_session_count("alice"), 1);
        dir.reserve_session(&hub, "alice").expect("slot freed");
    }

    #[test]
    fn max_connections_policy_caps_the_grant() {
        let dir = Directory::new(Limits::default());
        let hash = ethergate_proto::password::hash_password("pw", "alice");
        dir.add_hub(&plane(), access(vec![("alice".to_owned(), hash)]));
        let hub = dir.hub("hub1").expect("hub");
        hub.set_limits([(
            "alice".to_owned(),
            ethergate_config::SessionLimits {
                max_connections_per_session: 3,
                ..ethergate_config::SessionLimits::default()
            },
        )]);
        let random = [7u8; 20];
        let req = LoginRequest {
            hubname: "Hub1".to_owned(),
            username: "alice".to_owned(),
            credentials: ethergate_proto::Credentials::PlainPassword {
                password: "pw".to_owned(),
            },
            client_str: String::new(),
            client_ver: 0,
            client_build: 0,
            max_connection: 32,
            use_encrypt: true,
            use_compress: false,
            half_connection: false,
            qos: false,
            require_bridge_routing_mode: false,
            require_monitor_mode: false,
            unique_id: None,
            udp_accel: None,
        };
        let mut check = LoginCheck {
            directory: &dir,
            connection_id: 1,
            hub: None,
        };
        let grant = check
            .authenticate(&req, &random)
            .expect("password is right");
        assert_eq!(grant.max_connection, 3);
    }

    #[test]
    fn caps_refuse_with_softether_codes() {
        let (dir, hub) = directory();
        dir.reserve_session(&hub, "alice").expect("first session");
        assert_eq!(
            dir.reserve_session(&hub, "alice"),
            Err(ErrorCode::HUB_IS_BUSY)
        );
    }

    #[test]
    fn a_session_outlives_its_connections_until_reaped() {
        let (dir, hub) = directory();
        dir.reserve_session(&hub, "alice").expect("reserve");
        let w = welcome(7);
        let session = dir.open_reserved(&hub, &w, &login()).expect("open");
        assert!(hub.plane.has_port(session.port));
        // Second connection joins; the cap (2) then refuses a third.
        let joined = dir.join_session(&w.session_key).expect("join");
        assert_eq!(
            dir.join_session(&w.session_key).err(),
            Some(ErrorCode::TOO_MANY_CONNECTION)
        );
        assert!(!dir.leave_session(&w.session_key, &joined));
        assert!(dir.leave_session(&w.session_key, &session), "last one out");
        // Still resumable: the port stays attached.
        assert!(hub.plane.has_port(session.port));
        let resumed = dir.join_session(&w.session_key).expect("resume");
        assert!(dir.leave_session(&w.session_key, &resumed));
        assert_eq!(dir.reap_orphans(Instant::now()), 0, "not yet expired");
        let later = Instant::now() + Duration::from_millis(20_001);
        assert_eq!(dir.reap_orphans(later), 1);
        assert!(!hub.plane.has_port(session.port));
        assert_eq!(
            dir.join_session(&w.session_key).err(),
            Some(ErrorCode::SESSION_TIMEOUT)
        );
        assert_eq!(dir.session_count(), 0);
        dir.reserve_session(&hub, "alice")
            .expect("slot released by the reaper");
    }
}
