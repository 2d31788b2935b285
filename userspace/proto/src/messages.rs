//! Typed handshake messages carried in PACKs (spec §3–§6, §8): hello,
//! login, welcome, error, `additional_connect` and its answer, and the
//! welcome negotiation rules. Invariant: every `from_pack` applies the same
//! presence, type and length checks the real peer applies, so a message that
//! parses here is one SoftEther would have accepted, and every `to_pack`
//! produces exactly the fields the spec requires (never empty arrays).

use crate::error_code::ErrorCode;
use crate::http::HttpError;
use crate::pack::{Pack, PackError};
use crate::password::{ct_eq, hash_password, secure_password};
use crate::rng::RandomSource;

/// `HTTP_PACK_RAND_SIZE_MAX`: `pencore` padding is 0..1000 random bytes.
pub const PENCORE_MAX: u32 = 1000;
/// Welcome `timeout` bounds the real server clamps to (`TIMEOUT_MIN`/`TIMEOUT_MAX`).
pub const TIMEOUT_MIN_MS: u32 = 5_000;
pub const TIMEOUT_MAX_MS: u32 = 60_000;
/// Default policy `TimeOut` of 20 s (§5).
pub const DEFAULT_TIMEOUT_MS: u32 = 20_000;
/// SoftEther's hard cap on TCP connections per session (`MAX_TCP_CONNECTION`).
pub const MAX_CONNECTION_CAP: u32 = 32;

/// Errors of the handshake layer (both roles).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error("peer reported {0}")]
    Remote(ErrorCode),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    #[error("welcome timeout {0} ms is below 2")]
    BadTimeout(u32),
}

impl HandshakeError {
    /// The SoftEther code a client would report for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            HandshakeError::Remote(c) => *c,
            HandshakeError::Http(_) => ErrorCode::SERVER_IS_NOT_VPN,
            _ => ErrorCode::PROTOCOL_ERROR,
        }
    }
}

/// Append the `pencore` padding element both sides add (§1.4).
pub fn add_pencore(pack: &mut Pack, rng: &mut dyn RandomSource) {
    let n = rng.range_u32(0, PENCORE_MAX) as usize;
    let mut pad = vec![0u8; n];
    rng.fill_bytes(&mut pad);
    pack.set("pencore", crate::pack::Values::Data(vec![pad]));
}

/// `{error, no_save_password}` (`PackError` + `PackAddBool`, §8).
pub fn error_reply(code: ErrorCode, no_save_password: bool) -> Pack {
    let mut p = Pack::new();
    p.set_int("error", code.0)
        .set_bool("no_save_password", no_save_password);
    p
}

/// The `error` INT of a PACK (0 when absent, as `PackGetInt` reads it).
pub fn error_code_of(p: &Pack) -> ErrorCode {
    ErrorCode(p.int_or_zero("error"))
}

fn check_no_error(p: &Pack) -> Result<(), HandshakeError> {
    match error_code_of(p) {
        ErrorCode::NO_ERROR => Ok(()),
        c => Err(HandshakeError::Remote(c)),
    }
}

/// Server hello (§3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Product string shown by the client (`hello`).
    pub server_str: String,
    pub version: u32,
    pub build: u32,
    /// Per-connection challenge used by the password proof.
    pub random: [u8; 20],
}

impl Hello {
    pub fn to_pack(&self) -> Pack {
        let mut p = Pack::new();
        p.set_str("hello", &self.server_str)
            .set_int("version", self.version)
            .set_int("build", self.build)
            .set_data("random", &self.random);
        p
    }

    /// `GetHello`: `hello` STR and a 20-byte `random` are required; a
    /// non-zero `error` is the server refusing us.
    pub fn from_pack(p: &Pack) -> Result<Hello, HandshakeError> {
        check_no_error(p)?;
        Ok(Hello {
            server_str: String::from_utf8_lossy(p.str_bytes("hello")?).into_owned(),
            version: p.int_or_zero("version"),
            build: p.int_or_zero("build"),
            random: p.data_array("random")?,
        })
    }
}

/// `authtype` values (Cedar/Cedar.h `CLIENT_AUTHTYPE_*`).
pub mod authtype {
    pub const ANONYMOUS: u32 = 0;
    pub const PASSWORD: u32 = 1;
    pub const PLAIN_PASSWORD: u32 = 2;
    pub const CERT: u32 = 3;
    pub const TICKET: u32 = 99;
}

/// The secret part of a login.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    /// authtype 1: `SHA0(H ‖ random)`.
    Password {
        secure_password: [u8; 20],
    },
    /// authtype 2: clear text inside TLS (RADIUS/NT users, or local check).
    PlainPassword {
        password: String,
    },
    /// Certificate (3), ticket (99) or anything else: the hub should answer
    /// `ERR_AUTHTYPE_NOT_SUPPORTED`.
    Unsupported {
        authtype: u32,
    },
}

impl std::fmt::Debug for Credentials {
    // Never print secrets into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Password { .. } => f.write_str("Password{..}"),
            Credentials::PlainPassword { .. } => f.write_str("PlainPassword{..}"),
            Credentials::Unsupported { authtype } => write!(f, "Unsupported({authtype})"),
        }
    }
}

/// A `method=login` PACK (§4), reduced to what a server decides with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    pub hubname: String,
    /// As typed by the user; the real server lower-cases it for the session
    /// name, but hashing uses `ASCII_UPPER(username)`.
    pub username: String,
    pub credentials: Credentials,
    pub client_str: String,
    pub client_ver: u32,
    pub client_build: u32,
    pub max_connection: u32,
    pub use_encrypt: bool,
    pub use_compress: bool,
    pub half_connection: bool,
    pub qos: bool,
    pub require_bridge_routing_mode: bool,
    pub require_monitor_mode: bool,
    pub unique_id: Option<[u8; 20]>,
    /// The client's UDP acceleration offer, when it made one
    /// (docs/udp-acceleration.md §1.1).
    pub udp_accel: Option<crate::udp_accel::Offer>,
}

impl LoginRequest {
    /// Server-side password check (`SamAuthUserByPassword`, §9): for
    /// authtype 1 compare `SHA0(stored ‖ random)` with the proof; for
    /// authtype 2 derive `H` from the clear text first. Constant time in
    /// the secret. Other auth types never verify here.
    pub fn verify_password(&self, stored_hash: &[u8; 20], server_random: &[u8; 20]) -> bool {
        let expected = secure_password(stored_hash, server_random);
        match &self.credentials {
            Credentials::Password {
                secure_password: got,
            } => ct_eq(&expected, got),
            Credentials::PlainPassword { password } => {
                let h = hash_password(password, &self.username);
                ct_eq(&h, stored_hash)
            }
            _ => false,
        }
    }

    /// Parse a login PACK whose `method` is `login`. Required: `hubname`,
    /// `username`, `authtype` and the matching secret; everything else
    /// reads as 0 when absent, like the real server.
    pub fn from_pack(p: &Pack) -> Result<LoginRequest, HandshakeError> {
        let authtype = p.int("authtype")?;
        let credentials = match authtype {
            authtype::ANONYMOUS => Credentials::Anonymous,
            authtype::PASSWORD => Credentials::Password {
                secure_password: p.data_array("secure_password")?,
            },
            authtype::PLAIN_PASSWORD => Credentials::PlainPassword {
                password: p.str("plain_password")?.to_owned(),
            },
            other => Credentials::Unsupported { authtype: other },
        };
        Ok(LoginRequest {
            hubname: p.str("hubname")?.to_owned(),
            username: p.str("username")?.to_owned(),
            credentials,
            client_str: p
                .str_bytes("client_str")
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
            client_ver: p.int_or_zero("client_ver"),
            client_build: p.int_or_zero("client_build"),
            max_connection: p.int_or_zero("max_connection"),
            use_encrypt: p.bool_or_false("use_encrypt"),
            use_compress: p.bool_or_false("use_compress"),
            half_connection: p.bool_or_false("half_connection"),
            qos: p.bool_or_false("qos"),
            require_bridge_routing_mode: p.bool_or_false("require_bridge_routing_mode"),
            require_monitor_mode: p.bool_or_false("require_monitor_mode"),
            unique_id: p.data_array("unique_id").ok(),
            udp_accel: crate::udp_accel::Offer::from_login(p),
        })
    }

    /// The login PACK as our client sends it: the auth part (§4.1), version
    /// info and session wishes (§4.3), and the UDP acceleration offer when
    /// there is one.
    pub fn to_pack(&self) -> Pack {
        let mut p = Pack::new();
        p.set_str("method", "login")
            .set_str("hubname", &self.hubname)
            .set_str("username", &self.username);
        match &self.credentials {
            Credentials::Anonymous => {
                p.set_int("authtype", authtype::ANONYMOUS);
            }
            Credentials::Password { secure_password } => {
                p.set_int("authtype", authtype::PASSWORD)
                    .set_data("secure_password", secure_password);
            }
            Credentials::PlainPassword { password } => {
                p.set_int("authtype", authtype::PLAIN_PASSWORD)
                    .set_str("plain_password", password);
            }
            Credentials::Unsupported { authtype } => {
                p.set_int("authtype", *authtype);
            }
        }
        p.set_str("client_str", &self.client_str)
            .set_int("client_ver", self.client_ver)
            .set_int("client_build", self.client_build)
            .set_str("hello", &self.client_str)
            .set_int("version", self.client_ver)
            .set_int("build", self.client_build)
            .set_int("client_id", 0)
            .set_int("protocol", 0)
            .set_int("max_connection", self.max_connection)
            .set_bool("use_encrypt", self.use_encrypt)
            .set_bool("use_compress", self.use_compress)
            .set_bool("half_connection", self.half_connection)
            .set_bool(
                "require_bridge_routing_mode",
                self.require_bridge_routing_mode,
            )
            .set_bool("require_monitor_mode", self.require_monitor_mode)
            .set_bool("qos", self.qos);
        if let Some(u) = &self.unique_id {
            p.set_data("unique_id", u);
        }
        if let Some(offer) = &self.udp_accel {
            offer.add_to_login(&mut p);
        }
        p
    }
}

/// The `method` of a client's PACK after the hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Login,
    AdditionalConnect,
    Admin,
    Other(String),
}

impl Method {
    pub fn from_pack(p: &Pack) -> Result<Method, PackError> {
        let m = p.str_bytes("method")?;
        Ok(if m.eq_ignore_ascii_case(b"login") {
            Method::Login
        } else if m.eq_ignore_ascii_case(b"additional_connect") {
            Method::AdditionalConnect
        } else if m.eq_ignore_ascii_case(b"admin") {
            Method::Admin
        } else {
            Method::Other(String::from_utf8_lossy(m).into_owned())
        })
    }
}

/// `{method:"additional_connect", session_key, client_str, …}` (§6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdditionalConnect {
    pub session_key: [u8; 20],
    pub client_str: String,
    pub client_ver: u32,
    pub client_build: u32,
}

impl AdditionalConnect {
    pub fn from_pack(p: &Pack) -> Result<AdditionalConnect, HandshakeError> {
        Ok(AdditionalConnect {
            session_key: p.data_array("session_key")?,
            client_str: p
                .str_bytes("client_str")
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
            client_ver: p.int_or_zero("client_ver"),
            client_build: p.int_or_zero("client_build"),
        })
    }

    pub fn to_pack(&self) -> Pack {
        let mut p = Pack::new();
        p.set_str("method", "additional_connect")
            .set_data("session_key", &self.session_key)
            .set_str("client_str", &self.client_str)
            .set_int("client_ver", self.client_ver)
            .set_int("client_build", self.client_build);
        p
    }
}

/// TCP direction of an additional connection (`TCP_BOTH` etc., §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Both = 0,
    ServerToClient = 1,
    ClientToServer = 2,
}

/// The server's answer to `additional_connect`: `{error, direction}`.
pub fn additional_connect_reply(direction: Direction) -> Pack {
    let mut p = Pack::new();
    p.set_int("error", 0).set_int("direction", direction as u32);
    p
}

/// Welcome values (§5). `policies` are extra `policy:<Name>` INTs beyond
/// the `Access`/`Ver3` pair that is always sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub session_name: String,
    pub connection_name: String,
    pub session_key: [u8; 20],
    pub session_key_32: u32,
    pub max_connection: u32,
    pub use_encrypt: bool,
    pub use_compress: bool,
    pub half_connection: bool,
    pub qos: bool,
    pub timeout_ms: u32,
    pub policies: Vec<(String, u32)>,
    /// Hub message (`Msg`, DATA holding UTF-8).
    pub message: Option<String>,
    /// UDP acceleration granted (docs/udp-acceleration.md §1.4).
    pub udp_accel: Option<Box<crate::udp_accel::Grant>>,
}

impl Welcome {
    /// The minimal welcome verified against the real client (§5), plus
    /// optional policies, message and UDP acceleration grant. Never sends
    /// `enable_udp_recovery` or `Redirect`.
    pub fn to_pack(&self) -> Pack {
        let mut p = Pack::new();
        p.set_str("session_name", &self.session_name)
            .set_str("connection_name", &self.connection_name)
            .set_int("max_connection", self.max_connection)
            .set_bool("use_encrypt", self.use_encrypt)
            .set_bool("use_compress", self.use_compress)
            .set_bool("half_connection", self.half_connection)
            .set_int("timeout", self.timeout_ms)
            .set_bool("qos", self.qos)
            .set_data("session_key", &self.session_key)
            .set_int("session_key_32", self.session_key_32)
            .set_int("policy:Access", 1)
            .set_int("policy:Ver3", 1);
        for (name, v) in &self.policies {
            p.set_int(&format!("policy:{name}"), *v);
        }
        if let Some(m) = &self.message {
            p.set_data("Msg", m.as_bytes());
        }
        if let Some(udp) = &self.udp_accel {
            udp.add_to_welcome(&mut p);
        }
        p
    }

    /// The client's checks (`ClientConnect`, §5): error first, then
    /// `session_name`, `connection_name`, a 20-byte `session_key` and
    /// `timeout ≥ 2` are required; a redirect is unsupported.
    pub fn from_pack(p: &Pack) -> Result<Welcome, HandshakeError> {
        check_no_error(p)?;
        if p.bool_or_false("Redirect") {
            return Err(HandshakeError::Protocol(
                "cluster redirect is not supported",
            ));
        }
        let timeout_ms = p.int("timeout")?;
        if timeout_ms < 2 {
            return Err(HandshakeError::BadTimeout(timeout_ms));
        }
        let mut policies = Vec::new();
        for e in p.elements() {
            if let (Some(name), crate::pack::Values::Int(v)) =
                (e.name().strip_prefix("policy:"), e.values())
                && let Some(&x) = v.first()
                && name != "Access"
                && name != "Ver3"
            {
                policies.push((name.to_owned(), x));
            }
        }
        Ok(Welcome {
            session_name: p.str("session_name")?.to_owned(),
            connection_name: p.str("connection_name")?.to_owned(),
            session_key: p.data_array("session_key")?,
            session_key_32: p.int_or_zero("session_key_32"),
            max_connection: p.int_or_zero("max_connection").clamp(1, MAX_CONNECTION_CAP),
            use_encrypt: p.bool_or_false("use_encrypt"),
            use_compress: p.bool_or_false("use_compress"),
            half_connection: p.bool_or_false("half_connection"),
            qos: p.bool_or_false("qos"),
            timeout_ms,
            policies,
            message: p
                .data("Msg")
                .ok()
                .filter(|m| !m.is_empty())
                .map(|m| String::from_utf8_lossy(m).into_owned()),
            udp_accel: crate::udp_accel::Grant::from_welcome(p).map(Box::new),
        })
    }
}

/// What the hub grants a successful login (the server fills in the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionGrant {
    /// e.g. `SID-ALICE-2`.
    pub session_name: String,
    /// e.g. `CID-14`.
    pub connection_name: String,
    /// Policy `TimeOut` in ms; clamped to 5000..=60000 like the real server.
    pub timeout_ms: u32,
    /// Policy `MaxConnection`; 0 means "no policy limit".
    pub max_connection: u32,
    /// Extra `policy:*` INTs to show the client.
    pub policies: Vec<(String, u32)>,
    /// Hub message shown by the client.
    pub message: Option<String>,
    /// The server's UDP port, when it grants UDP acceleration to a client
    /// that offers it; `None` keeps every session on TCP.
    pub udp_accel_port: Option<u16>,
}

impl SessionGrant {
    /// A grant with the default policy (20 s timeout, no extra limits).
    pub fn new(session_name: impl Into<String>, connection_name: impl Into<String>) -> Self {
        SessionGrant {
            session_name: session_name.into(),
            connection_name: connection_name.into(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_connection: 0,
            policies: Vec::new(),
            message: None,
            udp_accel_port: None,
        }
    }
}

/// Server-side knobs for the welcome negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegotiationLimits {
    /// Highest `max_connection` we grant. 1 (the default) means the client
    /// never opens additional connections (§6 "clean approach").
    pub max_connection: u32,
    /// Echo a client's `use_compress` request (per-frame zlib, §7.5).
    pub allow_compress: bool,
    /// Echo `qos`; off by default, as the spec recommends (§7.6).
    pub allow_qos: bool,
    /// Echo `half_connection`; off by default (§7.6).
    pub allow_half_connection: bool,
}

impl Default for NegotiationLimits {
    fn default() -> Self {
        NegotiationLimits {
            max_connection: 1,
            allow_compress: true,
            allow_qos: false,
            allow_half_connection: false,
        }
    }
}

/// Compute the welcome as `ServerAccept` does (§5 "How the real server
/// computes the values"), bounded by our own [`NegotiationLimits`].
/// `use_encrypt` is always 1: plaintext-after-welcome is not supported
/// (§7.3 recommendation), and the client follows the server's value.
pub fn negotiate_welcome(
    login: &LoginRequest,
    grant: &SessionGrant,
    limits: &NegotiationLimits,
    session_key: [u8; 20],
    session_key_32: u32,
) -> Welcome {
    let timeout_ms = grant.timeout_ms.clamp(TIMEOUT_MIN_MS, TIMEOUT_MAX_MS);
    let policy_max = if grant.max_connection == 0 {
        MAX_CONNECTION_CAP
    } else {
        grant.max_connection
    };
    let half = login.half_connection && limits.allow_half_connection;
    let qos = login.qos && limits.allow_qos;
    // Clamped into 1..=32 first: a configured 0 must not make clamp panic.
    let upper = policy_max
        .min(limits.max_connection)
        .clamp(1, MAX_CONNECTION_CAP);
    let mut max = login.max_connection.clamp(1, upper);
    if half {
        max = max.max(2);
    }
    if qos {
        max = max.max(if half { 4 } else { 2 });
    }
    Welcome {
        session_name: grant.session_name.clone(),
        connection_name: grant.connection_name.clone(),
        session_key,
        session_key_32,
        max_connection: max,
        use_encrypt: true,
        use_compress: login.use_compress && limits.allow_compress,
        half_connection: half,
        qos,
        timeout_ms,
        policies: grant.policies.clone(),
        message: grant.message.clone(),
        // Needs fresh keys: the connection adds it (`accept_login`).
        udp_accel: None,
    }
}
