//! `ethergate client`: a Linux VPN client for SoftEther-protocol servers —
//! ethergate itself or a real SoftEther VPN Server.
//!
//! It creates a tap (`vpn_eg0` by default), connects over TCP + TLS, speaks
//! the SoftEther handshake through `ethergate-proto` (GET probe, `VPNCONNECT`
//! signature, hello, password login, welcome), and then carries Ethernet
//! frames between the tap and the tunnel, with the protocol's keep-alives.
//! With DHCP on, a small client ([`dhcp`]) talks to the hub's DHCP server
//! through the tunnel with the tap's MAC and puts the address and the RFC
//! 3442 classless routes on the tap over rtnetlink. When the connection
//! drops it reconnects with exponential backoff ([`backoff`]); a refused
//! login or a rejected server certificate ends it with an error instead.
//! The stop signal releases the DHCP lease and closes TLS cleanly.
//!
//! The server's certificate is checked by trust on first use against a
//! known-servers file ([`known_servers`], like ssh's `known_hosts`), or
//! against a pinned certificate or CA, or — only when asked — not at all
//! (see `tls.rs`).
//!
//! ```no_run
//! use ethergate_client::{ClientOptions, PasswordHash, ServerCertCheck, known_servers};
//!
//! let options = ClientOptions {
//!     host: "198.51.100.1".into(),
//!     port: 443,
//!     hub: "mikalab".into(),
//!     user: "tsumura".into(),
//!     password: PasswordHash(ethergate_proto::password::hash_password("secret", "tsumura")),
//!     tap: ethergate_client::DEFAULT_TAP.into(),
//!     mac: None,
//!     dhcp: true,
//!     address: None,
//!     udp_acceleration: true,
//!     cert_check: ServerCertCheck::KnownServers(
//!         known_servers::default_path().expect("HOME or XDG_CONFIG_HOME is set"),
//!     ),
//! };
//! let (stop_tx, stop_rx) = async_channel::bounded(1);
//! // From a signal handler thread: `stop_tx.try_send(())`.
//! # drop(stop_tx);
//! ethergate_client::run(options, stop_rx)?;
//! # Ok::<(), ethergate_client::ClientError>(())
//! ```

pub mod backoff;
mod clock;
pub mod dhcp;
mod error;
pub mod known_servers;
mod nic;
mod options;
mod session;
mod tls;
mod udp_accel;

use std::{net::ToSocketAddrs, rc::Rc};

use ethergate_proto::{ClientAuth, ClientConfig, CloseReason, data::Frames};
use futures_util::future::{Either, select};
use tracing::{debug, info, warn};

pub use error::ClientError;
pub use options::{
    ClientOptions, DEFAULT_PORT, DEFAULT_TAP, PasswordHash, parse_server, read_password,
};
pub use tls::{ServerCertCheck, TlsSetupError};

use crate::{
    backoff::Backoff,
    clock::{Clock, system_random},
    dhcp::DhcpClient,
    nic::{Nic, TapReads},
    session::{SessionEnd, SessionSetup},
};

/// Bursts of tap frames queued while the writer is busy (each at most
/// 256 KiB of frames); beyond this a burst is dropped, as SoftEther drops
/// rather than stalls (spec §7.1).
const TAP_QUEUE: usize = 32;

/// Runs the client until `stop` receives (or its sender is dropped) or a
/// fatal error. Creates its own single-threaded io_uring runtime; call it
/// from a thread in the network namespace the tap should live in.
pub fn run(options: ClientOptions, stop: async_channel::Receiver<()>) -> Result<(), ClientError> {
    let runtime = compio::runtime::Runtime::new().map_err(ClientError::Runtime)?;
    runtime.block_on(client_loop(options, stop))
}

async fn client_loop(
    options: ClientOptions,
    stop: async_channel::Receiver<()>,
) -> Result<(), ClientError> {
    let server_key = known_servers::server_key(&options.host, options.port);
    let tls_config = tls::client_config(&options.cert_check, &server_key)?;
    match &options.cert_check {
        ServerCertCheck::Insecure => warn!(
            "the server's TLS certificate is not verified (--insecure): anyone able to \
             intercept the connection can impersonate the server"
        ),
        ServerCertCheck::Pinned(path) => {
            info!(file = %path.display(), "server certificate must match --ca-cert")
        }
        ServerCertCheck::KnownServers(path) => debug!(
            file = %path.display(),
            server = server_key,
            "server certificate checked against the known-servers file"
        ),
    }
    let mac = options.mac();
    let nic = Nic::create(&options.tap, mac, options.address)?;
    let (tap_tx, tap_rx) = async_channel::bounded(TAP_QUEUE);
    let tap_reader = compio::runtime::spawn(tap_reader(Rc::clone(&nic), tap_tx));
    let clock = Clock::new();
    let mut backoff = Backoff::new();
    let mut dhcp = options.dhcp.then(|| DhcpClient::new(mac.0));
    let result = loop {
        let end = match resolve(&options.host, options.port) {
            Ok(address) => {
                info!(server = %address, hub = options.hub, user = options.user, "connecting");
                let mut proto = ClientConfig::new(
                    address.ip().to_string(),
                    options.hub.clone(),
                    options.user.clone(),
                    ClientAuth::Password {
                        hash: options.password.0,
                    },
                );
                // The real client's first connection probes with GET /
                // (spec §1.2); doing the same checks both servers' probe
                // handling.
                proto.send_probe = true;
                proto.unix_time_at_epoch = unix_time_at(clock);
                let outcome = session::run(SessionSetup {
                    address,
                    tls: tls_config.clone(),
                    server_name: tls::server_name(&options.host),
                    proto,
                    nic: Rc::clone(&nic),
                    from_tap: tap_rx.clone(),
                    stop: stop.clone(),
                    dhcp: dhcp.take(),
                    clock,
                    udp_acceleration: options.udp_acceleration,
                })
                .await;
                dhcp = outcome.dhcp;
                if let Some(at) = outcome.established_at {
                    backoff.on_established(at);
                }
                outcome.end
            }
            Err(e) => SessionEnd::Io(e),
        };
        if let SessionEnd::Tls(e) = &end
            && let Some(refusal) = tls::known_servers_refusal(e)
        {
            break Err(ClientError::KnownServers(refusal.clone()));
        }
        match end {
            SessionEnd::Stopped => break Ok(()),
            SessionEnd::Protocol(CloseReason::Refused(code)) if error::is_fatal_refusal(code) => {
                break Err(ClientError::Refused {
                    code,
                    hub: options.hub.clone(),
                    user: options.user.clone(),
                });
            }
            SessionEnd::Tls(rustls::Error::InvalidCertificate(e))
                if matches!(options.cert_check, ServerCertCheck::Pinned(_)) =>
            {
                break Err(ClientError::Certificate(format!("{e:?}")));
            }
            end => {
                let at = backoff.on_disconnect(clock.now(), &mut (system_random as fn(&mut [u8])));
                let delay = at.since(clock.now());
                warn!(
                    "connection ended: {end}; reconnecting in {:.1} s",
                    delay as f64 / 1000.0
                );
                let sleep = compio::time::sleep_until(clock.instant(at));
                let stopped = stop.recv();
                futures_util::pin_mut!(sleep, stopped);
                if let Either::Right(_) = select(sleep, stopped).await {
                    break Ok(());
                }
            }
        }
    };
    drop(tap_reader);
    info!("client stopped");
    result
}

/// The first address of `host` (blocking resolver; this thread does
/// nothing else meanwhile).
fn resolve(host: &str, port: u16) -> Result<std::net::SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))
}

/// Unix seconds at the clock's epoch, for the HTTP `Date` header.
fn unix_time_at(clock: Clock) -> Option<u64> {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(unix.saturating_sub(clock.now().0 / 1000))
}

/// Reads the tap for as long as the client runs, a burst at a time; a
/// full queue drops the burst (said once, then counted in debug lines).
async fn tap_reader(nic: Rc<Nic>, to_session: async_channel::Sender<Frames>) {
    let mut bufs = TapReads::default();
    let mut dropped = 0u64;
    loop {
        let mut frames = Frames::new();
        match nic.read_burst(&mut bufs, &mut frames).await {
            Ok(0) => return,
            Ok(_) => {
                if frames.is_empty() {
                    continue;
                }
                if let Err(e) = to_session.try_send(frames) {
                    if dropped == 0 {
                        warn!(
                            "the tunnel is slower than the tap: frames dropped (counted in debug lines)"
                        );
                    }
                    dropped += e.into_inner().len() as u64;
                    debug!(dropped, "tap queue full; burst dropped");
                }
            }
            Err(e) => {
                warn!("tap read: {e}");
                compio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
