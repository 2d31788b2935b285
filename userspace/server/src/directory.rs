//! What every worker thread needs to know about hubs and sessions, shared
//! across threads: the hubs with their users (for authentication), the
//! channel into each hub's actor, and the session registry that lets an
//! `additional_connect` find the session it belongs to.
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
    counters::{HubCounters, SessionCounters},
    hub_actor::{HubInput, PortId},
    outbox::Outbox,
};

/// A hub as the workers see it.
pub struct HubEntry {
    pub name: String,
    /// Lower-cased user name → stored SoftEther hash `H`. Replaced whole on
    /// reload; a login sees either the old set or the new one.
    users: RwLock<HashMap<String, [u8; 20]>>,
    pub to_hub: async_channel::Sender<HubInput>,
    sessions: AtomicUsize,
    pub counters: Arc<HubCounters>,
}

impl HubEntry {
    pub fn session_count(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    pub fn user_count(&self) -> usize {
        self.read_users().len()
    }

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
    /// TCP connections that have not finished the handshake (a slow-loris
    /// guard; SoftEther has no equivalent cap).
    pub max_pending_handshakes: usize,
    /// Sessions in the whole server → ERR_TOO_MANY_CONNECTION (15).
    pub max_sessions: usize,
    /// Sessions per hub → ERR_HUB_IS_BUSY (16), which SoftEther clients
    /// answer by retrying later rather than giving up.
    pub max_sessions_per_hub: usize,
    /// Bytes of frames queued from the hub to one session before new
    /// batches are dropped (SoftEther drops rather than blocks, §7.1):
    /// 1 MiB is ~8 ms at 1 Gbit/s, enough to ride out a writer's stall
    /// without building a latency queue.
    pub session_queue_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pending_handshakes: 1024,
            max_sessions: 4096,
            max_sessions_per_hub: 4096,
            session_queue_bytes: 1 << 20,
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
}

impl SessionShared {
    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// A session as status shows it.
pub struct SessionView {
    pub shared: Arc<SessionShared>,
    /// No connection right now; resumable until its timeout.
    pub orphaned: bool,
}

/// Who logged in and from where, for the session registry.
pub struct LoginInfo<'a> {
    pub user: &'a str,
    pub client: SocketAddr,
}

pub struct Directory {
    hubs: RwLock<HashMap<String, Arc<HubEntry>>>,
    sessions: Mutex<Sessions>,
    pub limits: Limits,
    total_sessions: AtomicUsize,
    pub pending_handshakes: AtomicUsize,
    next_port: AtomicU64,
    next_connection: AtomicU64,
}

impl Directory {
    pub fn new(limits: Limits) -> Self {
        Self {
            hubs: RwLock::new(HashMap::new()),
            sessions: Mutex::new(Sessions::default()),
            limits,
            total_sessions: AtomicUsize::new(0),
            pending_handshakes: AtomicUsize::new(0),
            // Port 0 is the hub's local bridge.
            next_port: AtomicU64::new(1),
            next_connection: AtomicU64::new(1),
        }
    }

    /// Registers a hub with its users (name, stored hash), actor channel
    /// and counters (shared with the actor). Replaces a hub of that name.
    pub fn add_hub(
        &self,
        name: &str,
        users: impl IntoIterator<Item = (String, [u8; 20])>,
        to_hub: async_channel::Sender<HubInput>,
        counters: Arc<HubCounters>,
    ) {
        let entry = HubEntry {
            name: name.to_owned(),
            users: RwLock::new(lowercase_keys(users)),
            to_hub,
            sessions: AtomicUsize::new(0),
            counters,
        };
        self.write_hubs()
            .insert(name.to_ascii_lowercase(), Arc::new(entry));
    }

    /// Removes a hub (reload) and closes its sessions; new logins to it get
    /// "hub not found".
    pub fn remove_hub(&self, name: &str) -> Option<Arc<HubEntry>> {
        let hub = self.write_hubs().remove(&name.to_ascii_lowercase())?;
        self.close_sessions_where(|s| Arc::ptr_eq(&s.hub, &hub));
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
        self.close_sessions_where(|s| s.session_name.eq_ignore_ascii_case(name)) > 0
    }

    /// Ends the sessions of `user` on `hub` (the user was removed).
    pub fn disconnect_user(&self, hub: &str, user: &str) -> usize {
        self.close_sessions_where(|s| {
            s.hub.name.eq_ignore_ascii_case(hub) && s.user.eq_ignore_ascii_case(user)
        })
    }

    /// Ends every session (the server is stopping) and returns them, so
    /// the caller can wait for their connections to close.
    pub fn end_all_sessions(&self) -> Vec<Arc<SessionShared>> {
        let sessions = self.lock_sessions();
        let all: Vec<Arc<SessionShared>> = sessions.live.values().cloned().collect();
        let keys: Vec<[u8; 20]> = sessions.live.keys().copied().collect();
        self.end_sessions(sessions, &keys);
        all
    }

    /// Ends every session `matches` picks (see [`Self::end_sessions`]).
    fn close_sessions_where(&self, matches: impl Fn(&SessionShared) -> bool) -> usize {
        let sessions = self.lock_sessions();
        let keys: Vec<[u8; 20]> = sessions
            .live
            .iter()
            .filter(|(_, s)| matches(s))
            .map(|(key, _)| *key)
            .collect();
        self.end_sessions(sessions, &keys)
    }

    /// Removes `keys` from the registry (releasing the lock), then ends
    /// each session: its outbox closes, which ends its connections even
    /// when the hub itself is gone (a removed hub), its port is detached,
    /// and its slots are released. Returns how many ended.
    fn end_sessions(
        &self,
        mut sessions: std::sync::MutexGuard<'_, Sessions>,
        keys: &[[u8; 20]],
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
            shared.outbox.close();
            // Best effort: if the actor is gone there is nothing to detach.
            let _ = shared
                .hub
                .to_hub
                .try_send(HubInput::Detach { port: shared.port });
            self.release_counts(&shared.hub);
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

    pub fn session_count(&self) -> usize {
        self.total_sessions.load(Ordering::Relaxed)
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Takes a session slot for an authenticated login, before the welcome
    /// is sent: past a cap the login is refused with the cap's code.
    pub fn reserve_session(&self, hub: &HubEntry) -> Result<(), ErrorCode> {
        if self.total_sessions.fetch_add(1, Ordering::AcqRel) >= self.limits.max_sessions {
            self.total_sessions.fetch_sub(1, Ordering::AcqRel);
            return Err(ErrorCode::TOO_MANY_CONNECTION);
        }
        if hub.sessions.fetch_add(1, Ordering::AcqRel) >= self.limits.max_sessions_per_hub {
            hub.sessions.fetch_sub(1, Ordering::AcqRel);
            self.total_sessions.fetch_sub(1, Ordering::AcqRel);
            return Err(ErrorCode::HUB_IS_BUSY);
        }
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
            established: Instant::now(),
            counters: SessionCounters::default(),
            closed: AtomicBool::new(false),
            outbox: Arc::clone(&outbox),
            connections: AtomicU32::new(1),
            max_connections: welcome.max_connection.max(1),
            timeout_ms: welcome.timeout_ms,
            use_compress: welcome.use_compress,
        });
        // The actor learns of the port before any frame from it can arrive:
        // both go through the same FIFO channel.
        if hub
            .to_hub
            .try_send(HubInput::Attach { port, outbox })
            .is_err()
        {
            self.release_counts(hub);
            return Err(ErrorCode::HUB_STOPPING);
        }
        self.lock_sessions()
            .live
            .insert(welcome.session_key, Arc::clone(&shared));
        Ok(shared)
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
        self.end_sessions(sessions, &expired)
    }

    fn release_counts(&self, hub: &HubEntry) {
        hub.sessions.fetch_sub(1, Ordering::AcqRel);
        self.total_sessions.fetch_sub(1, Ordering::AcqRel);
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
        self.hub = Some(hub);
        Ok(SessionGrant::new(
            format!(
                "SID-{}-{}",
                req.username.to_ascii_uppercase(),
                self.connection_id
            ),
            format!("CID-{}", self.connection_id),
        ))
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
        }
    }

    fn directory() -> (Directory, async_channel::Receiver<HubInput>, Arc<HubEntry>) {
        let (tx, rx) = async_channel::unbounded();
        let dir = Directory::new(Limits {
            max_sessions: 2,
            max_sessions_per_hub: 1,
            ..Limits::default()
        });
        dir.add_hub(
            "Hub1",
            [("Alice".to_owned(), [0u8; 20])],
            tx,
            Arc::default(),
        );
        let hub = dir.hub("HUB1").expect("case-insensitive hub lookup");
        (dir, rx, hub)
    }

    fn login() -> LoginInfo<'static> {
        LoginInfo {
            user: "alice",
            client: "192.0.2.1:40000".parse().expect("literal address"),
        }
    }

    #[test]
    fn disconnect_ends_a_session_for_good() {
        let (dir, rx, hub) = directory();
        dir.reserve_session(&hub).expect("reserve");
        let w = welcome(9);
        let session = dir.open_reserved(&hub, &w, &login()).expect("open");
        assert!(matches!(rx.try_recv(), Ok(HubInput::Attach { .. })));
        assert_eq!(dir.sessions().len(), 1);
        assert!(!dir.disconnect("SID-T-8"), "no such session");
        assert!(dir.disconnect("sid-t-9"), "names match case-insensitively");
        assert!(matches!(rx.try_recv(), Ok(HubInput::Detach { .. })));
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
        let (dir, rx, hub) = directory();
        dir.reserve_session(&hub).expect("reserve");
        dir.open_reserved(&hub, &welcome(1), &login())
            .expect("open");
        hub.set_users([("Bob".to_owned(), [1u8; 20])]);
        assert!(!hub.has_user("alice") && hub.has_user("BOB"));
        assert_eq!(dir.disconnect_user("hub1", "ALICE"), 1);
        dir.reserve_session(&hub).expect("slot released");
        dir.open_reserved(&hub, &welcome(2), &login())
            .expect("open");
        assert!(dir.remove_hub("HUB1").is_some());
        assert!(dir.hub("hub1").is_none());
        assert_eq!(dir.session_count(), 0);
        let detaches = std::iter::from_fn(|| rx.try_recv().ok())
            .filter(|m| matches!(m, HubInput::Detach { .. }))
            .count();
        assert_eq!(detaches, 2);
    }

    #[test]
    fn caps_refuse_with_softether_codes() {
        let (dir, _rx, hub) = directory();
        dir.reserve_session(&hub).expect("first session");
        assert_eq!(dir.reserve_session(&hub), Err(ErrorCode::HUB_IS_BUSY));
    }

    #[test]
    fn a_session_outlives_its_connections_until_reaped() {
        let (dir, rx, hub) = directory();
        dir.reserve_session(&hub).expect("reserve");
        let w = welcome(7);
        let session = dir.open_reserved(&hub, &w, &login()).expect("open");
        assert!(matches!(rx.try_recv(), Ok(HubInput::Attach { .. })));
        // Second connection joins; the cap (2) then refuses a third.
        let joined = dir.join_session(&w.session_key).expect("join");
        assert_eq!(
            dir.join_session(&w.session_key).err(),
            Some(ErrorCode::TOO_MANY_CONNECTION)
        );
        assert!(!dir.leave_session(&w.session_key, &joined));
        assert!(dir.leave_session(&w.session_key, &session), "last one out");
        // Still resumable: the port stays attached.
        assert!(rx.try_recv().is_err());
        let resumed = dir.join_session(&w.session_key).expect("resume");
        assert!(dir.leave_session(&w.session_key, &resumed));
        assert_eq!(dir.reap_orphans(Instant::now()), 0, "not yet expired");
        let later = Instant::now() + Duration::from_millis(20_001);
        assert_eq!(dir.reap_orphans(later), 1);
        assert!(matches!(rx.try_recv(), Ok(HubInput::Detach { .. })));
        assert_eq!(
            dir.join_session(&w.session_key).err(),
            Some(ErrorCode::SESSION_TIMEOUT)
        );
        assert_eq!(dir.session_count(), 0);
        dir.reserve_session(&hub)
            .expect("slot released by the reaper");
    }
}
