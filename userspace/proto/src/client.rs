//! Client side of one SoftEther TCP connection, sans-IO: optional `GET /`
//! probe, `VPNCONNECT` signature, hello, login (anonymous, password proof or
//! plain password) or `additional_connect`, welcome, then the tunnel
//! (spec §1–§7, `ClientConnect` in Cedar/Protocol.c). Same driving contract
//! as the server: feed bytes and `now`, send [`ClientConnection::transmit`],
//! honour [`ClientConnection::poll_timeout`].
//!
//! Invariants: the client sends its first request on construction and
//! exactly one request per server answer; every server answer is checked as
//! the real client checks it (status, Content-Type, PACK, required fields,
//! `error`); a non-zero `error` ends the connection with
//! [`CloseReason::Refused`] carrying the server's code.

use crate::close::CloseReason;
use crate::endpoint::{ClosedEvent, Endpoint};
use crate::http::{self, HttpError, MAX_PACK_BODY, MAX_PROBE_RESPONSE_BODY};
use crate::messages::{
    self, AdditionalConnect, Credentials, HandshakeError, Hello, LoginRequest, Welcome,
};
use crate::pack::{Pack, PackLimits};
use crate::password::secure_password;
use crate::rng::RandomSource;
use crate::server::DEFAULT_HANDSHAKE_TIMEOUT_MS;
use crate::time::Timestamp;

/// How the client proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    Anonymous,
    /// authtype 1 from the stored hash `H` (what vpn_client.config keeps).
    Password {
        hash: [u8; 20],
    },
    /// authtype 2: the clear text goes to the server inside TLS.
    PlainPassword {
        password: String,
    },
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientAuth::Anonymous => "Anonymous",
            ClientAuth::Password { .. } => "Password{..}",
            ClientAuth::PlainPassword { .. } => "PlainPassword{..}",
        })
    }
}

/// What this connection is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMode {
    /// A new session.
    Login(ClientAuth),
    /// One more TCP connection of an existing session (§6), carrying that
    /// session's `session_key`, `timeout` and `use_compress` from its welcome.
    AdditionalConnect {
        session_key: [u8; 20],
        timeout_ms: u32,
        use_compress: bool,
    },
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Sent as `Host:`; the real client puts the server IP there.
    pub host: String,
    pub hubname: String,
    pub username: String,
    pub mode: ClientMode,
    /// Send the `GET /` probe first, as the real client does on its first
    /// connection (§1.2).
    pub send_probe: bool,
    pub client_str: String,
    pub client_ver: u32,
    pub client_build: u32,
    /// Session wishes (§4.3); the server has the last word.
    pub max_connection: u32,
    pub use_compress: bool,
    pub qos: bool,
    pub unique_id: Option<[u8; 20]>,
    pub handshake_timeout_ms: u64,
    /// Unix seconds at `Timestamp(0)` for the `Date` header; `None` omits it.
    pub unix_time_at_epoch: Option<u64>,
    /// A UDP acceleration offer for the login (the Debian client makes
    /// one by default); `None` keeps the session on TCP.
    pub udp_accel: Option<crate::udp_accel::Offer>,
}

impl ClientConfig {
    /// Defaults that match a new Debian vpnclient account, minus QoS and
    /// UDP acceleration (§13): one connection, no compression.
    pub fn new(
        host: impl Into<String>,
        hubname: impl Into<String>,
        username: impl Into<String>,
        auth: ClientAuth,
    ) -> Self {
        ClientConfig {
            host: host.into(),
            hubname: hubname.into(),
            username: username.into(),
            mode: ClientMode::Login(auth),
            send_probe: false,
            client_str: "ethergate VPN Client (SoftEther VPN compatible)".to_owned(),
            client_ver: 501,
            client_build: 9674,
            max_connection: 1,
            use_compress: false,
            qos: false,
            unique_id: None,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
            unix_time_at_epoch: None,
            udp_accel: None,
        }
    }
}

/// Things the driver must react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server's hello arrived (informational).
    Hello(Hello),
    /// The session is up. `welcome` is `None` for an additional connection.
    Established { welcome: Option<Welcome> },
    /// Flush the transmit buffer, then close the socket.
    Closed(CloseReason),
}

impl ClosedEvent for ClientEvent {
    fn closed(reason: CloseReason) -> Self {
        ClientEvent::Closed(reason)
    }
}

/// The client's handshake steps.
#[derive(Debug)]
enum Step {
    Probe,
    Signature,
    AwaitWelcome,
}

/// One client-side TCP connection.
pub struct ClientConnection<R: RandomSource> {
    config: ClientConfig,
    core: Endpoint<R, Step, ClientEvent>,
}

impl<R: RandomSource> std::fmt::Debug for ClientConnection<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConnection")
            .field("phase", &self.core.phase)
            .finish_non_exhaustive()
    }
}

impl<R: RandomSource> ClientConnection<R> {
    /// Start a connection; the first request is queued at once.
    pub fn new(config: ClientConfig, rng: R, now: Timestamp) -> Self {
        let (first, timeout) = (
            if config.send_probe {
                Step::Probe
            } else {
                Step::Signature
            },
            config.handshake_timeout_ms,
        );
        let mut c = ClientConnection {
            core: Endpoint::new(rng, first, now, timeout),
            config,
        };
        if c.config.send_probe {
            http::write_probe_request(&mut c.core.out, &c.config.host);
        } else {
            http::write_signature_request(&mut c.core.out, &c.config.host);
        }
        c
    }

    crate::endpoint::endpoint_methods!(ClientEvent);

    fn fail(&mut self, e: HandshakeError) {
        match e {
            HandshakeError::Remote(code) => self.core.close(CloseReason::Refused(code)),
            e => self.core.close(CloseReason::Handshake(e)),
        }
    }

    /// Takes the handshake's responses off the received bytes.
    fn process_handshake(&mut self, now: Timestamp) {
        while !self.is_closed() && !self.is_established() {
            let max_body = match self.core.step() {
                Some(Step::Probe) => MAX_PROBE_RESPONSE_BODY,
                _ => MAX_PACK_BODY,
            };
            let resp = match self.core.next_message(http::parse_response, max_body) {
                Ok(Some(resp)) => resp,
                Ok(None) => break,
                Err(e) => return self.fail(e.into()),
            };
            self.on_response(now, &resp);
        }
    }

    fn on_response(&mut self, now: Timestamp, resp: &http::Message) {
        match self.core.step() {
            Some(Step::Probe) => {
                // Status is ignored; the body decides (§1.2).
                if http::is_softether_probe_answer(resp) {
                    http::write_signature_request(&mut self.core.out, &self.config.host);
                    self.core.set_step(Step::Signature);
                } else {
                    self.fail(HttpError::NotSoftEther.into());
                }
            }
            Some(Step::Signature) => match response_pack(resp).and_then(|p| Hello::from_pack(&p)) {
                Ok(hello) => self.on_hello(now, hello),
                Err(e) => self.fail(e),
            },
            Some(Step::AwaitWelcome) => match response_pack(resp) {
                Ok(p) => self.on_welcome(now, &p),
                Err(e) => self.fail(e),
            },
            None => {}
        }
    }

    fn on_hello(&mut self, now: Timestamp, hello: Hello) {
        let c = &self.config;
        let pack = match &c.mode {
            ClientMode::Login(auth) => {
                let credentials = match auth {
                    ClientAuth::Anonymous => Credentials::Anonymous,
                    ClientAuth::Password { hash } => Credentials::Password {
                        secure_password: secure_password(hash, &hello.random),
                    },
                    ClientAuth::PlainPassword { password } => Credentials::PlainPassword {
                        password: password.clone(),
                    },
                };
                LoginRequest {
                    hubname: c.hubname.clone(),
                    username: c.username.clone(),
                    credentials,
                    client_str: c.client_str.clone(),
                    client_ver: c.client_ver,
                    client_build: c.client_build,
                    max_connection: c.max_connection,
                    use_encrypt: true,
                    use_compress: c.use_compress,
                    half_connection: false,
                    qos: c.qos,
                    require_bridge_routing_mode: false,
                    require_monitor_mode: false,
                    unique_id: c.unique_id,
                    udp_accel: c.udp_accel.clone(),
                }
                .to_pack()
            }
            ClientMode::AdditionalConnect { session_key, .. } => AdditionalConnect {
                session_key: *session_key,
                client_str: c.client_str.clone(),
                client_ver: c.client_ver,
                client_build: c.client_build,
            }
            .to_pack(),
        };
        self.core.push_event(ClientEvent::Hello(hello));
        if self.send_pack(now, pack) {
            self.core.set_step(Step::AwaitWelcome);
        }
    }

    fn on_welcome(&mut self, now: Timestamp, p: &Pack) {
        let (welcome, timeout_ms, use_compress) = match &self.config.mode {
            ClientMode::Login(_) => match Welcome::from_pack(p) {
                Ok(w) => {
                    if !w.use_encrypt {
                        // The real client would drop TLS here (§7.3); a
                        // driver over rustls cannot, so refuse cleanly.
                        return self.fail(HandshakeError::Protocol(
                            "server wants a plaintext data phase (use_encrypt=0)",
                        ));
                    }
                    let (t, c) = (w.timeout_ms, w.use_compress);
                    (Some(w), t, c)
                }
                Err(e) => return self.fail(e),
            },
            ClientMode::AdditionalConnect {
                timeout_ms,
                use_compress,
                ..
            } => match messages::error_code_of(p) {
                crate::ErrorCode::NO_ERROR => (None, *timeout_ms, *use_compress),
                code => return self.fail(HandshakeError::Remote(code)),
            },
        };
        self.core.start_tunnel(now, timeout_ms, use_compress);
        self.core.push_event(ClientEvent::Established { welcome });
    }

    fn send_pack(&mut self, now: Timestamp, mut pack: Pack) -> bool {
        messages::add_pencore(&mut pack, &mut self.core.rng);
        let mut body = Vec::with_capacity(pack.encoded_len());
        if let Err(e) = pack.encode(&mut body) {
            self.fail(e.into());
            return false;
        }
        let date = self
            .config
            .unix_time_at_epoch
            .map(|t| http::http_date(t.saturating_add(now.0 / 1000)));
        http::write_pack_request(
            &mut self.core.out,
            &self.config.host,
            &body,
            date.as_deref(),
        );
        true
    }
}

/// A PACK response checked like `HttpClientRecv` (§1.4).
fn response_pack(resp: &http::Message) -> Result<Pack, HandshakeError> {
    http::check_pack_response(resp)?;
    Ok(Pack::decode(&resp.body, &PackLimits::HANDSHAKE)?)
}
