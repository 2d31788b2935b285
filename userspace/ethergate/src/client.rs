//! `ethergate client`: the Linux VPN client (library `ethergate-client`)
//! behind the command line. The password comes from `--password-file` or
//! stdin, never from an argument. SIGINT/SIGTERM stop it cleanly (DHCP
//! RELEASE, TLS close); a refused login or a rejected certificate exits 1,
//! a local failure (tap, runtime) exits 2, network trouble is retried.
//!
//! The server's certificate: `--ca-cert` pins it (or a CA); otherwise trust
//! on first use with the known-servers file (`--known-servers`, default
//! `$XDG_CONFIG_HOME/ethergate/known_servers` or
//! `~/.config/ethergate/known_servers`); `--insecure` accepts any.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::anyhow;
use ethergate_bridge::Ipv4Cidr;
use ethergate_client::{ClientError, ClientOptions, ServerCertCheck, known_servers};
use nix::sys::signal::Signal;
use tracing::{info, warn};

use crate::{Failure, signals::Signals};

/// How long a stopping client may take to release its lease and close.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(clap::Args)]
pub struct ClientArgs {
    /// Server as HOST:PORT (port 443 if omitted).
    #[arg(long)]
    server: String,
    /// Virtual hub to join.
    #[arg(long)]
    hub: String,
    /// Hub user name.
    #[arg(long)]
    user: String,
    /// File whose first line is the password; without it, read from stdin.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Tap interface to create.
    #[arg(long, default_value = ethergate_client::DEFAULT_TAP)]
    tap: String,
    /// Get an address and routes by DHCP through the tunnel.
    #[arg(long, conflicts_with = "address")]
    dhcp: bool,
    /// A static address for the tap instead of DHCP, e.g. 192.168.30.5/24.
    #[arg(long)]
    address: Option<Ipv4Cidr>,
    /// Accept the server only with this certificate (pinned), or one
    /// issued by a CA in this PEM file. Takes precedence over the
    /// known-servers file.
    #[arg(long, value_name = "PEM", conflicts_with = "insecure")]
    ca_cert: Option<PathBuf>,
    /// Trust on first use, like ssh's known_hosts: the first connection to
    /// a server records its certificate's SHA-256 in FILE, a later
    /// different certificate is refused. Default:
    /// $XDG_CONFIG_HOME/ethergate/known_servers, else
    /// $HOME/.config/ethergate/known_servers.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    known_servers: Option<PathBuf>,
    /// Accept any server certificate (no verification; anyone who can
    /// intercept the connection can impersonate the server).
    #[arg(long)]
    insecure: bool,
    /// Keep every frame inside the TLS connection: do not offer UDP
    /// acceleration (which carries frames by UDP once that path works, as
    /// SoftEther's own client does by default).
    #[arg(long)]
    no_udp_acceleration: bool,
}

/// The certificate policy the options ask for: `--ca-cert`, else
/// `--insecure`, else the known-servers file (given or default).
fn cert_check(args: &ClientArgs) -> Result<ServerCertCheck, ClientError> {
    if let Some(pem) = &args.ca_cert {
        if let Some(file) = &args.known_servers {
            info!(
                file = %file.display(),
                "--known-servers is not used: --ca-cert takes precedence"
            );
        }
        return Ok(ServerCertCheck::Pinned(pem.clone()));
    }
    if args.insecure {
        return Ok(ServerCertCheck::Insecure);
    }
    let file = match &args.known_servers {
        Some(file) => file.clone(),
        None => known_servers::default_path().ok_or_else(|| {
            ClientError::Options(
                "neither XDG_CONFIG_HOME nor HOME is set, so there is no default \
                 known-servers file to check the server's certificate against: pass \
                 --known-servers FILE, --ca-cert PEM or --insecure"
                    .to_owned(),
            )
        })?,
    };
    Ok(ServerCertCheck::KnownServers(file))
}

pub fn run(args: ClientArgs) -> Result<(), Failure> {
    let user_error = |e: ClientError| Failure::User(e.into());
    let (host, port) = ethergate_client::parse_server(&args.server).map_err(user_error)?;
    let cert_check = cert_check(&args).map_err(user_error)?;
    let password = ethergate_client::read_password(args.password_file.as_deref(), &args.user)
        .map_err(user_error)?;
    let options = ClientOptions {
        host,
        port,
        hub: args.hub,
        user: args.user,
        password,
        tap: args.tap,
        mac: None,
        dhcp: args.dhcp,
        address: args.address,
        udp_acceleration: !args.no_udp_acceleration,
        cert_check,
    };
    // Block the signals before the client thread starts, so it inherits
    // the mask and only this thread sees them.
    let mut signals = Signals::install()
        .map_err(|e| Failure::Runtime(anyhow!("cannot set up signal handling: {e}")))?;
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let client = std::thread::Builder::new()
        .name("ethergate-client".into())
        .spawn(move || ethergate_client::run(options, stop_rx))
        .map_err(|e| Failure::Runtime(anyhow!("cannot start the client thread: {e}")))?;
    let mut stopping_since: Option<Instant> = None;
    while !client.is_finished() {
        if stopping_since.is_some_and(|t| t.elapsed() > STOP_GRACE) {
            warn!("the client did not stop within {STOP_GRACE:?}; exiting anyway");
            return Ok(());
        }
        match signals.wait(Some(Duration::from_millis(200))) {
            Ok(Some(Signal::SIGHUP)) => info!("SIGHUP ignored by the client"),
            Ok(Some(signal)) => {
                info!(%signal, "stopping");
                let _ = stop_tx.try_send(());
                stopping_since.get_or_insert_with(Instant::now);
            }
            Ok(None) => {}
            Err(e) => return Err(Failure::Runtime(anyhow!("waiting for signals: {e}"))),
        }
    }
    match client.join() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.is_user_error() => Err(Failure::User(e.into())),
        Ok(Err(e)) => Err(Failure::Runtime(e.into())),
        Err(_) => Err(Failure::Runtime(anyhow!("the client thread panicked"))),
    }
}
