//! Per-session limits (`[hub.limits]`, overridable per user on
//! `[[hub.user]]`): their defaults, ranges and reader. Their own module
//! because both the hub and the user readers use them.

use crate::diagnostic::Report;
use crate::reader::Section;

/// Default `max_sessions_per_user`: enough for one person's devices or a
/// small team sharing an account, and far from the server's 4096 sessions,
/// so one leaked password cannot take them all.
pub const DEFAULT_MAX_SESSIONS_PER_USER: u32 = 16;
/// Default and ceiling of `max_connections_per_session`: SoftEther's own
/// `MaxConnection` ceiling (the client's `/MAXTCP:32`).
pub const MAX_CONNECTIONS_PER_SESSION: u32 = 32;
/// Default `max_macs_per_session` (SoftEther's `MaxMac`): a host, its VMs
/// and containers; a client that bridges a whole LAN needs more.
pub const DEFAULT_MAX_MACS_PER_SESSION: u32 = 16;
/// SoftEther's `MAC_MIN_LIMIT_COUNT`: a `MaxMac` below 3 is too few for any
/// host (IPv6, VMs), so 1 and 2 are refused rather than raised silently.
pub const MIN_MAX_MACS_PER_SESSION: u32 = 3;
/// Default `max_leases_per_session`: a host and a few VMs or containers
/// behind it, each with an address of the hub's pool.
pub const DEFAULT_MAX_LEASES_PER_SESSION: u32 = 4;
/// Upper bound of the counted limits: the hub's MAC table and lease pool
/// hold at most this many entries (SoftEther's `MAX_MAC_TABLES`), so a
/// larger limit would mean nothing.
pub const MAX_SESSION_LIMIT: u32 = 65_536;

/// Per-session policies, SoftEther-style: hub-wide defaults in
/// `[hub.limits]`, overridden per user with the same keys on
/// `[[hub.user]]`. For the counted limits 0 means no limit, as in
/// SoftEther's policies. A reload applies new limits to sessions that log
/// in afterwards; running sessions keep the ones they started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Sessions one user name may hold at once (SoftEther's
    /// `MultiLogins`); a login past it is refused with
    /// ERR_TOO_MANY_USER_SESSION. A session counts until it ends — one
    /// whose connections dropped is kept for its timeout to be resumed.
    pub max_sessions_per_user: u32,
    /// TCP connections one session may use (SoftEther's `MaxConnection`,
    /// 1..=32): caps what the client asks for with `/MAXTCP`.
    pub max_connections_per_session: u32,
    /// Source MAC addresses one session may use (SoftEther's `MaxMac`);
    /// frames from more are dropped and counted as `mac_limit`.
    pub max_macs_per_session: u32,
    /// DHCP leases (and pending offers) clients behind one session may
    /// hold at once; further requests get no answer and are counted as
    /// `lease_limit`.
    pub max_leases_per_session: u32,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_sessions_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
            max_connections_per_session: MAX_CONNECTIONS_PER_SESSION,
            max_macs_per_session: DEFAULT_MAX_MACS_PER_SESSION,
            max_leases_per_session: DEFAULT_MAX_LEASES_PER_SESSION,
        }
    }
}

impl SessionLimits {
    /// `max_sessions_per_user`; `None` for no limit.
    pub const fn sessions_per_user(&self) -> Option<u32> {
        nonzero(self.max_sessions_per_user)
    }

    /// `max_macs_per_session`; `None` for no limit.
    pub const fn macs_per_session(&self) -> Option<u32> {
        nonzero(self.max_macs_per_session)
    }

    /// `max_leases_per_session`; `None` for no limit.
    pub const fn leases_per_session(&self) -> Option<u32> {
        nonzero(self.max_leases_per_session)
    }
}

const fn nonzero(n: u32) -> Option<u32> {
    if n == 0 { None } else { Some(n) }
}

/// The keys of `[hub.limits]`, also accepted on `[[hub.user]]`.
pub(crate) const LIMIT_KEYS: &[&str] = &[
    "max_sessions_per_user",
    "max_connections_per_session",
    "max_macs_per_session",
    "max_leases_per_session",
];

/// Reads the limit keys present in `s` over `base` (the built-in defaults
/// for `[hub.limits]`, the hub's limits for a user).
pub(crate) fn read_limits(
    report: &mut Report,
    s: &mut Section<'_, '_>,
    base: SessionLimits,
) -> SessionLimits {
    let mut limits = base;
    let mut field = |report: &mut Report,
                     key: &'static str,
                     ok: fn(u32) -> bool,
                     range: &str,
                     slot: &mut u32| {
        if let Some(v) = s.integer(report, key) {
            match u32::try_from(v.value) {
                Ok(n) if ok(n) => *slot = n,
                _ => report.error(
                    v.pos,
                    format!("{} = {} is out of range; {range}", s.name(key), v.value),
                ),
            }
        }
    };
    field(
        report,
        "max_sessions_per_user",
        |n| n <= MAX_SESSION_LIMIT,
        &format!(
            "use 0 (no limit) to {MAX_SESSION_LIMIT} (default {DEFAULT_MAX_SESSIONS_PER_USER})"
        ),
        &mut limits.max_sessions_per_user,
    );
    field(
        report,
        "max_connections_per_session",
        |n| (1..=MAX_CONNECTIONS_PER_SESSION).contains(&n),
        &format!(
            "use 1 to {MAX_CONNECTIONS_PER_SESSION} (SoftEther's MaxConnection ceiling, the \
             default)"
        ),
        &mut limits.max_connections_per_session,
    );
    field(
        report,
        "max_macs_per_session",
        |n| n == 0 || (MIN_MAX_MACS_PER_SESSION..=MAX_SESSION_LIMIT).contains(&n),
        &format!(
            "use 0 (no limit) or {MIN_MAX_MACS_PER_SESSION} to {MAX_SESSION_LIMIT} (default \
             {DEFAULT_MAX_MACS_PER_SESSION}); a host needs a few, SoftEther raises MaxMac \
             below {MIN_MAX_MACS_PER_SESSION} to {MIN_MAX_MACS_PER_SESSION}"
        ),
        &mut limits.max_macs_per_session,
    );
    field(
        report,
        "max_leases_per_session",
        |n| n <= MAX_SESSION_LIMIT,
        &format!(
            "use 0 (no limit) to {MAX_SESSION_LIMIT} (default {DEFAULT_MAX_LEASES_PER_SESSION})"
        ),
        &mut limits.max_leases_per_session,
    );
    limits
}
