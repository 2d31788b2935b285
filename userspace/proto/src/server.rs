//! Server side of one SoftEther TCP connection, sans-IO (spec §0–§8).
//! The driver feeds received bytes and `now`, sends what
//! [`ServerConnection::transmit`] holds, honours [`ServerConnection::poll_timeout`],
//! and answers the two questions the protocol cannot decide alone: a login
//! ([`ServerEvent::LoginRequested`] → `accept_login`/`reject_login`, or the
//! [`Authenticator`] shortcut) and an additional connection
//! ([`ServerEvent::AdditionalConnectRequested`] → `accept_additional`/
//! `reject_additional`). Both answers may come later, from an async task.
//!
//! Invariants: at most [`MAX_REQUESTS_PER_CONNECTION`] HTTP requests and
//! [`MAX_PREAUTH_BUFFER`] buffered bytes before the tunnel; every refusal is
//! an error PACK with a real SoftEther code, after which the connection is
//! closed; the handshake as a whole must finish within
//! `handshake_timeout_ms`; once closed, input is ignored.

use crate::close::CloseReason;
use crate::endpoint::{ClosedEvent, Endpoint, Phase};
use crate::error_code::ErrorCode;
use crate::http::{self, HttpError, MAX_HEAD, MAX_PACK_BODY, MAX_REQUESTS_PER_CONNECTION};
use crate::messages::{
    self, AdditionalConnect, Direction, HandshakeError, Hello, LoginRequest, Method,
    NegotiationLimits, SessionGrant, Welcome,
};
use crate::pack::{Pack, PackLimits};
use crate::rng::RandomSource;
use crate::time::Timestamp;

/// Bytes we hold before authentication: one maximal head plus one maximal
/// PACK body. A real client never pipelines beyond one request.
pub const MAX_PREAUTH_BUFFER: usize = MAX_HEAD + MAX_PACK_BODY;
/// The client's own pre-tunnel socket timeout (`CONNECTING_TIMEOUT`, §7.4).
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 15_000;

/// Static server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Hello `hello` product string.
    pub server_str: String,
    /// Hello `version` (e.g. 501 = 5.01) and `build`.
    pub version: u32,
    pub build: u32,
    pub negotiation: NegotiationLimits,
    pub handshake_timeout_ms: u64,
    /// Unix seconds at `Timestamp(0)`, to fill the `Date` header; `None`
    /// omits it (the client does not check it).
    pub unix_time_at_epoch: Option<u64>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            server_str: "ethergate VPN Server (SoftEther VPN compatible)".to_owned(),
            version: 501,
            build: 9674,
            negotiation: NegotiationLimits::default(),
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
            unix_time_at_epoch: None,
        }
    }
}

/// The hub's side of authentication: the protocol crate knows no users.
/// Use [`crate::LoginRequest::verify_password`] with the stored hash `H`.
pub trait Authenticator {
    /// Decide a login. Return `ERR_HUB_NOT_FOUND` (8) for an unknown hub,
    /// `ERR_AUTH_FAILED` (9) for bad credentials,
    /// `ERR_AUTHTYPE_NOT_SUPPORTED` (7) for certificates, and so on.
    fn authenticate(
        &mut self,
        req: &LoginRequest,
        server_random: &[u8; 20],
    ) -> Result<SessionGrant, ErrorCode>;
}

/// A session is up on this connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Established {
    /// A login opened a new session; the welcome's `session_key` names it
    /// for later additional connections.
    Login {
        hubname: String,
        username: String,
        welcome: Welcome,
        /// The UDP path's parameters when UDP acceleration was granted.
        udp_accel: Option<Box<crate::udp_accel::Session>>,
    },
    /// An additional connection joined the session `session_key` names.
    Additional { session_key: [u8; 20] },
}

/// Things the driver must react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Answer with `accept_login` or `reject_login`.
    LoginRequested(LoginRequest),
    /// Answer with `accept_additional` or `reject_additional`.
    AdditionalConnectRequested(AdditionalConnect),
    /// The welcome (or `additional_connect` answer) is queued; the tunnel
    /// is running.
    Established(Established),
    /// Flush the transmit buffer, then close the socket.
    Closed(CloseReason),
}

impl ClosedEvent for ServerEvent {
    fn closed(reason: CloseReason) -> Self {
        ServerEvent::Closed(reason)
    }
}

/// The server's handshake steps.
#[derive(Debug)]
enum Step {
    /// HTTP loop until a valid signature POST (§1.2, §1.3).
    Signature,
    /// Hello sent; waiting for the method PACK (§4, §6).
    AwaitMethod,
    LoginPending(Box<LoginRequest>),
    AdditionalPending([u8; 20]),
}

/// One server-side TCP connection.
pub struct ServerConnection<R: RandomSource> {
    config: ServerConfig,
    core: Endpoint<R, Step, ServerEvent>,
    random: [u8; 20],
    requests: u32,
}

impl<R: RandomSource> std::fmt::Debug for ServerConnection<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConnection")
            .field("phase", &self.core.phase)
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

impl<R: RandomSource> ServerConnection<R> {
    /// A fresh connection (TLS already established by the driver).
    pub fn new(config: ServerConfig, mut rng: R, now: Timestamp) -> Self {
        let mut random = [0u8; 20];
        rng.fill_bytes(&mut random);
        let timeout = config.handshake_timeout_ms;
        ServerConnection {
            config,
            core: Endpoint::new(rng, Step::Signature, now, timeout),
            random,
            requests: 0,
        }
    }

    /// The hello challenge of this connection (`c->Random`).
    pub fn server_random(&self) -> &[u8; 20] {
        &self.random
    }

    crate::endpoint::endpoint_methods!(ServerEvent);

    /// Takes the handshake's requests off the received bytes; what waits
    /// behind them (for the hub's answer) is bounded.
    fn process_handshake(&mut self, now: Timestamp) {
        self.take_requests(now);
        if !self.is_closed() && self.core.inbuf.len() > MAX_PREAUTH_BUFFER {
            self.fail(HandshakeError::Protocol(
                "too much data before authentication",
            ));
        }
    }

    fn take_requests(&mut self, now: Timestamp) {
        loop {
            let max_body = match self.core.step() {
                Some(Step::Signature) => http::MAX_SIGNATURE_BODY,
                Some(Step::AwaitMethod) => MAX_PACK_BODY,
                // Waiting for the hub, tunnel, or closed: leave bytes queued.
                _ => return,
            };
            let req = match self.core.next_message(http::parse_request, max_body) {
                Ok(Some(req)) => req,
                Ok(None) => return,
                Err(e) => return self.fail(e.into()),
            };
            self.requests += 1;
            if self.requests > MAX_REQUESTS_PER_CONNECTION {
                return self.fail(
                    HttpError::TooManyRequests {
                        max: MAX_REQUESTS_PER_CONNECTION,
                    }
                    .into(),
                );
            }
            match self.core.step() {
                Some(Step::Signature) => self.on_signature_phase_request(now, &req),
                Some(Step::AwaitMethod) => self.on_method_request(now, &req),
                _ => return,
            }
            if self.is_closed() {
                return;
            }
        }
    }

    fn on_signature_phase_request(&mut self, now: Timestamp, req: &http::Message) {
        if http::is_signature_request(req) && http::is_valid_signature(&req.body) {
            let hello = Hello {
                server_str: self.config.server_str.clone(),
                version: self.config.version,
                build: self.config.build,
                random: self.random,
            };
            if self.send_pack(now, hello.to_pack()) {
                self.core.set_step(Step::AwaitMethod);
            }
        } else {
            // The probe, a bad watermark, or anything else: the 403 page
            // the client's probe check recognises, and keep looping.
            http::write_forbidden(&mut self.core.out, req.target());
        }
    }

    fn on_method_request(&mut self, now: Timestamp, req: &http::Message) {
        if let Err(e) = http::check_pack_request(req) {
            return self.fail(e.into());
        }
        let pack = match Pack::decode(&req.body, &PackLimits::HANDSHAKE) {
            Ok(p) => p,
            Err(e) => return self.fail(e.into()),
        };
        // NOOP (§1.4): noop=1 → reply {error:0,noop:1}; noop=2 → ignore.
        match pack.int_or_zero("noop") {
            0 => {}
            2 => return,
            _ => {
                let mut reply = Pack::new();
                reply.set_int("error", 0).set_int("noop", 1);
                self.send_pack(now, reply);
                return;
            }
        }
        let method = match Method::from_pack(&pack) {
            Ok(m) => m,
            Err(_) => return self.refuse(now, ErrorCode::PROTOCOL_ERROR),
        };
        match method {
            Method::Login => match LoginRequest::from_pack(&pack) {
                Ok(login) => {
                    self.core
                        .push_event(ServerEvent::LoginRequested(login.clone()));
                    self.core.set_step(Step::LoginPending(Box::new(login)));
                }
                Err(_) => self.refuse(now, ErrorCode::PROTOCOL_ERROR),
            },
            Method::AdditionalConnect => match AdditionalConnect::from_pack(&pack) {
                Ok(ac) => {
                    self.core.set_step(Step::AdditionalPending(ac.session_key));
                    self.core
                        .push_event(ServerEvent::AdditionalConnectRequested(ac));
                }
                Err(_) => self.refuse(now, ErrorCode::PROTOCOL_ERROR),
            },
            // Admin RPC is not offered by a VPN-only server (§10).
            Method::Admin => self.refuse(now, ErrorCode::NOT_SUPPORTED),
            Method::Other(_) => self.refuse(now, ErrorCode::PROTOCOL_ERROR),
        }
    }

    /// The login awaiting an answer, if any.
    pub fn pending_login(&self) -> Option<&LoginRequest> {
        match self.core.step() {
            Some(Step::LoginPending(l)) => Some(l),
            _ => None,
        }
    }

    /// Answer the pending login through an [`Authenticator`]. Does nothing
    /// if no login is pending.
    pub fn authenticate_with<A: Authenticator + ?Sized>(&mut self, now: Timestamp, auth: &mut A) {
        let Some(login) = self.pending_login() else {
            return;
        };
        match auth.authenticate(login, &self.random) {
            Ok(grant) => self.accept_login(now, grant),
            Err(code) => self.reject_login(now, code),
        }
    }

    /// Accept the pending login: negotiate and send the welcome (§5),
    /// start the tunnel, and emit `Established`. Bytes that arrived while
    /// the answer was pending are decoded by the next `handle_input` call
    /// (an empty slice will do); a real client sends none.
    pub fn accept_login(&mut self, now: Timestamp, grant: SessionGrant) {
        if !matches!(self.core.step(), Some(Step::LoginPending(_))) {
            return;
        }
        let Phase::Handshake(Step::LoginPending(login)) =
            std::mem::replace(&mut self.core.phase, Phase::Handshake(Step::AwaitMethod))
        else {
            return;
        };
        let mut key = [0u8; 20];
        self.core.rng.fill_bytes(&mut key);
        let key32 = self.core.rng.next_u32();
        let mut welcome =
            messages::negotiate_welcome(&login, &grant, &self.config.negotiation, key, key32);
        let udp_accel = match (&login.udp_accel, grant.udp_accel_port) {
            (Some(offer), Some(port)) if offer.acceptable() => {
                let grant =
                    crate::udp_accel::Grant::new(port, offer.fast_detect, &mut self.core.rng);
                welcome.udp_accel = Some(Box::new(grant.clone()));
                Some(Box::new(crate::udp_accel::Session {
                    offer: offer.clone(),
                    grant,
                }))
            }
            _ => None,
        };
        if !self.send_pack(now, welcome.to_pack()) {
            return;
        }
        self.core
            .start_tunnel(now, welcome.timeout_ms, welcome.use_compress);
        self.core
            .push_event(ServerEvent::Established(Established::Login {
                hubname: login.hubname,
                username: login.username,
                welcome,
                udp_accel,
            }));
    }

    /// Refuse the pending login with `code` (8 unknown hub, 9 bad password …).
    pub fn reject_login(&mut self, now: Timestamp, code: ErrorCode) {
        if matches!(self.core.step(), Some(Step::LoginPending(_))) {
            self.refuse(now, code);
        }
    }

    /// Attach this connection to the existing session (found by the
    /// driver via `session_key`) with that session's `timeout_ms` and
    /// `use_compress`.
    pub fn accept_additional(
        &mut self,
        now: Timestamp,
        direction: Direction,
        timeout_ms: u32,
        use_compress: bool,
    ) {
        let Some(&Step::AdditionalPending(session_key)) = self.core.step() else {
            return;
        };
        if !self.send_pack(now, messages::additional_connect_reply(direction)) {
            return;
        }
        self.core.start_tunnel(now, timeout_ms, use_compress);
        self.core
            .push_event(ServerEvent::Established(Established::Additional {
                session_key,
            }));
    }

    /// Refuse the additional connection. Use `ERR_TOO_MANY_CONNECTION` (15),
    /// not 13/14, which make the client drop the whole session (§6).
    pub fn reject_additional(&mut self, now: Timestamp, code: ErrorCode) {
        if matches!(self.core.step(), Some(Step::AdditionalPending(_))) {
            self.refuse(now, code);
        }
    }

    /// Queue `pack` as an HTTP 200 response. False (and closed) if it does
    /// not encode, e.g. a hub-supplied policy name longer than 63 bytes.
    fn send_pack(&mut self, now: Timestamp, mut pack: Pack) -> bool {
        messages::add_pencore(&mut pack, &mut self.core.rng);
        let mut body = Vec::with_capacity(pack.encoded_len());
        if pack.encode(&mut body).is_err() {
            self.core
                .close(CloseReason::Refused(ErrorCode::INTERNAL_ERROR));
            return false;
        }
        let date = self
            .config
            .unix_time_at_epoch
            .map(|t| http::http_date(t.saturating_add(now.0 / 1000)));
        http::write_pack_response(&mut self.core.out, &body, date.as_deref());
        true
    }

    /// Send `{error, no_save_password}` and close (§8).
    fn refuse(&mut self, now: Timestamp, code: ErrorCode) {
        // Ignoring the result: on failure `send_pack` already closed.
        let _ = self.send_pack(now, messages::error_reply(code, false));
        self.core.close(CloseReason::Refused(code));
    }

    fn fail(&mut self, e: HandshakeError) {
        self.core.close(CloseReason::Handshake(e));
    }
}
