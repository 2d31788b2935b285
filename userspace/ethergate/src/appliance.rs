//! Turning a validated config into running parts: the TLS identity, one
//! local bridge (tap) and hub data plane per `[[hub]]`, the worker threads with
//! their listeners, and IPv4 forwarding so the kernel routes between the
//! taps and the private side.
//!
//! Invariant: start-up is all-or-nothing. Any failure returns an error that
//! names the hub, interface or address, and whatever was already started is
//! dropped (taps vanish, threads stop) before serve exits.

use std::{collections::BTreeMap, sync::Arc};

use anyhow::{Context, Result};
use ethergate_bridge::{LinkConfig, MacAddr, Tap, TapOptions};
use ethergate_config::Config;
use ethergate_hub::{DhcpServerConfig, Hub, HubOptions};
use ethergate_server::{
    Addressing, EndReason, HubAccess, HubHandle, HubSetup, KtlsSupport, Limits, PeerSetup,
    RunningServer, WireguardSetup,
    tls::{self, CertificateSource, CurrentCertificate},
};
use tracing::info;

pub struct Appliance {
    pub server: RunningServer,
    /// By lower-cased hub name.
    pub hubs: BTreeMap<String, RunningHub>,
    pub certificate: CertificateSource,
    /// What new handshakes present; replaced by a reload.
    pub current_certificate: Arc<CurrentCertificate>,
    workers: usize,
    state_dir: std::path::PathBuf,
}

/// One hub's data plane and the config it runs with.
pub struct RunningHub {
    pub handle: HubHandle,
    pub config: ethergate_config::Hub,
}

impl Appliance {
    pub fn start(config: &Config) -> Result<Self> {
        let (key, certificate) = load_certificate(&config.server)?;
        let current_certificate = CurrentCertificate::new(key);
        let tls_config = tls::server_config(Arc::clone(&current_certificate))?;
        if !config.hubs.is_empty() {
            enable_ipv4_forwarding()?;
        }
        let listeners = ethergate_server::ListenerSetup {
            listen: config.server.listen.clone(),
            workers: 0,
            tls: tls_config,
            proto: proto_config(),
            udp_acceleration: config.server.udp_acceleration,
        };
        let workers = listeners.workers();
        let mut hubs = BTreeMap::new();
        for hub in &config.hubs {
            let running = start_hub(hub, workers, &config.server.state_dir)?;
            hubs.insert(hub.name.to_ascii_lowercase(), running);
        }
        let server = RunningServer::start(
            listeners,
            server_limits(&config.server),
            hubs.values()
                .map(|h| (h.handle.clone(), access_of(&h.config))),
        )?;
        match server.ktls_support() {
            KtlsSupport::Available => info!("kTLS: the kernel offers the tls ULP"),
            KtlsSupport::Unavailable(why) => info!("kTLS unavailable ({why}); TLS in userspace"),
        }
        info!(
            listen = ?config.server.listen,
            workers,
            tls = server.tls_mode(),
            "VPN listeners up"
        );
        Ok(Self {
            server,
            hubs,
            certificate,
            current_certificate,
            workers,
            state_dir: config.server.state_dir.clone(),
        })
    }

    /// New handshakes present `key` (a reload); live sessions keep theirs.
    pub fn set_certificate(&mut self, key: tls::CertifiedKey, source: CertificateSource) {
        self.current_certificate.replace(key);
        self.certificate = source;
    }

    /// Starts a hub that a reload added: its tap, data plane and directory
    /// entry (the workers start reading its tap queues).
    pub fn add_hub(&mut self, hub: &ethergate_config::Hub) -> Result<()> {
        if !hub.users.is_empty() || hub.dhcp.is_some() {
            enable_ipv4_forwarding()?;
        }
        let running = start_hub(hub, self.workers, &self.state_dir)?;
        self.server
            .add_hub(&running.handle, access_of(&running.config));
        self.hubs.insert(hub.name.to_ascii_lowercase(), running);
        Ok(())
    }

    /// Stops a hub that a reload removed: its sessions close, the workers
    /// stop reading its tap, and the tap goes once their connections have
    /// let go of the hub (a reload never waits on a slow client).
    pub fn remove_hub(&mut self, name: &str) {
        self.server.remove_hub(name);
        self.hubs.remove(&name.to_ascii_lowercase());
    }

    /// Gives a running hub its new users; the sessions of users who are
    /// gone or whose password changed end. Returns how many ended.
    pub fn set_users(&mut self, hub: &ethergate_config::Hub) -> usize {
        let server = &self.server;
        if !server.set_access(&hub.name, access_of(hub)) {
            return 0;
        }
        let mut closed = 0;
        if let Some(running) = self.hubs.get_mut(&hub.name.to_ascii_lowercase()) {
            for old in &running.config.users {
                let reason = match hub
                    .users
                    .iter()
                    .find(|u| u.name.eq_ignore_ascii_case(&old.name))
                {
                    None => EndReason::UserRemoved,
                    Some(new) if !new.can_log_in() => EndReason::UserRemoved,
                    // Whoever logged in with the old password is out.
                    Some(new) if new.password_hash != old.password_hash => {
                        EndReason::PasswordChanged
                    }
                    Some(_) => continue,
                };
                closed += server.disconnect_user(Some(&hub.name), &old.name, reason);
            }
            for user in running.handle.set_wireguard_peers(peers_of(hub)) {
                let reason = match hub.user(&user) {
                    Some(_) => EndReason::WireguardKeyChanged,
                    None => EndReason::UserRemoved,
                };
                closed += server.disconnect_wireguard(&hub.name, &user, reason);
            }
            running.config.users = hub.users.clone();
        }
        closed
    }

    /// The hub exists, is open, and every one of its tap queues is being
    /// read by a worker.
    pub fn hub_is_running(&self, name: &str) -> bool {
        self.hubs
            .get(&name.to_ascii_lowercase())
            .is_some_and(|h| h.handle.is_running())
    }

    /// Hands a running hub its new DHCP settings (leases that still fit
    /// the range are kept).
    pub fn set_dhcp(&mut self, hub: &ethergate_config::Hub) -> Result<()> {
        let Some(running) = self.hubs.get_mut(&hub.name.to_ascii_lowercase()) else {
            return Ok(());
        };
        if running.handle.is_closed() {
            anyhow::bail!("hub {:?} is closed", hub.name);
        }
        running
            .handle
            .set_dhcp(DhcpServerConfig::for_hub(hub), addressing_of(hub));
        running.config.dhcp = hub.dhcp.clone();
        Ok(())
    }

    /// Stops listeners and sessions (which stops the tap readers), then
    /// closes the hubs; their taps go with the last reference.
    pub fn stop(self) {
        let Self { server, hubs, .. } = self;
        server.stop();
        for (_, hub) in hubs {
            hub.handle.close();
        }
    }
}

/// Days before expiry from which start and reload warn in the log.
pub const CERTIFICATE_WARNING_DAYS: i64 = 14;

/// Logs the certificate new handshakes present; a warning when it expires
/// within [`CERTIFICATE_WARNING_DAYS`], an error once it has.
pub fn log_certificate(current: &CurrentCertificate) {
    let Some(c) = current.info() else {
        tracing::warn!("the server certificate's fields could not be read");
        return;
    };
    let days_left = c.days_left(ethergate_server::certificate::unix_now());
    if days_left < 0 {
        tracing::error!(
            subject = c.subject,
            sha256 = c.sha256,
            "server certificate EXPIRED"
        );
    } else if days_left < CERTIFICATE_WARNING_DAYS {
        tracing::warn!(
            subject = c.subject,
            sha256 = c.sha256,
            days_left,
            "server certificate expires soon: renew it and `ethergate reload`"
        );
    } else {
        info!(
            subject = c.subject,
            sha256 = c.sha256,
            days_left,
            "server certificate"
        );
    }
}

/// The configured certificate and key, or the pair generated once into
/// `state_dir`.
pub fn load_certificate(
    server: &ethergate_config::Server,
) -> Result<(tls::CertifiedKey, CertificateSource)> {
    match &server.tls {
        Some(files) => Ok((
            tls::from_files(&files.cert, &files.key)?,
            CertificateSource::Configured(files.cert.clone()),
        )),
        None => {
            tls::self_signed(&server.state_dir).context("preparing the self-signed TLS certificate")
        }
    }
}

/// Who may log in with a password (stored hash), and each user's session
/// limits: `[hub.limits]` with the user's overrides.
fn access_of(hub: &ethergate_config::Hub) -> HubAccess {
    HubAccess {
        users: hub
            .users
            .iter()
            .filter(|u| u.can_log_in())
            .map(|u| (u.name.clone(), *u.password_hash.as_bytes()))
            .collect(),
        limits: hub
            .users
            .iter()
            .map(|u| (u.name.clone(), u.limits))
            .collect(),
    }
}

/// Sessions may use up to 32 TCP connections (`/MAXTCP:32`, SoftEther's own
/// ceiling); a default client asks for 1 and is granted 1.
fn proto_config() -> ethergate_proto::ServerConfig {
    let mut config = ethergate_proto::ServerConfig::default();
    config.negotiation.max_connection = MAX_CONNECTIONS_PER_SESSION;
    config
}

const MAX_CONNECTIONS_PER_SESSION: u32 = 32;

/// TCP segmentation/coalescing offload on the local bridge's tap (see
/// `ethergate_hub::offload`); on unless `ETHERGATE_TAP_OFFLOAD=off`, which
/// exists to measure the difference and as an escape hatch.
fn tap_offload_wanted() -> bool {
    !matches!(
        std::env::var("ETHERGATE_TAP_OFFLOAD").as_deref(),
        Ok("off" | "0" | "false")
    )
}

fn start_hub(
    hub: &ethergate_config::Hub,
    workers: usize,
    state_dir: &std::path::Path,
) -> Result<RunningHub> {
    let bridge = hub.bridge.as_str();
    let options = TapOptions {
        persistent: false,
        vnet_hdr: tap_offload_wanted(),
    };
    let tap = Tap::create_with(bridge, workers, options)
        .with_context(|| format!("hub {:?}: creating local bridge tap {bridge}", hub.name))?;
    let address = ethergate_bridge::Ipv4Cidr::new(
        hub.bridge_address.address(),
        hub.bridge_address.prefix_len(),
    )
    .with_context(|| format!("hub {:?}: bridge_address", hub.name))?;
    let mac = MacAddr::local_from_seed(hub.name.as_bytes());
    tap.configure(&LinkConfig {
        mac: Some(mac),
        ipv4: Some(address),
        ..LinkConfig::default()
    })
    .with_context(|| format!("hub {:?}: configuring {bridge}", hub.name))?;
    let switch = Hub::new(
        hub.name.clone(),
        HubOptions::default(),
        DhcpServerConfig::for_hub(hub),
    );
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating state_dir {}", state_dir.display()))?;
    let lease_file = hub
        .dhcp
        .as_ref()
        .map(|_| state_dir.join(format!("leases-{}.txt", hub.name.to_ascii_lowercase())));
    let wireguard = match &hub.wireguard {
        Some(wg) => {
            let key_path = wg.key_path(&hub.name, state_dir);
            let private_key =
                crate::wireguard_key::load_or_generate(&key_path).with_context(|| {
                    format!("hub {:?}: WireGuard key {}", hub.name, key_path.display())
                })?;
            Some(WireguardSetup {
                listen: wg.listen,
                private_key,
                peers: peers_of(hub),
                addressing: addressing_of(hub),
            })
        }
        None => None,
    };
    let setup = HubSetup {
        name: hub.name.clone(),
        switch,
        lease_file,
        bridge_mac: mac,
        tap_queues: tap.into_queues(),
        wireguard,
    };
    let handle = HubHandle::start(setup, workers).with_context(|| format!("hub {:?}", hub.name))?;
    if let (Some(wg), Some((public_key, peers))) = (&hub.wireguard, handle.wireguard_identity()) {
        info!(
            hub = hub.name,
            listen = %wg.listen,
            public_key,
            peers,
            "WireGuard endpoint up"
        );
    }
    info!(hub = hub.name, bridge, address = %hub.bridge_address, "hub up");
    Ok(RunningHub {
        handle,
        config: hub.clone(),
    })
}

/// The hub's WireGuard users with their tunnel addresses and preshared
/// keys. A user whose key file has not been read is left out (fail closed);
/// serve and reload read or generate every file before they get here.
fn peers_of(hub: &ethergate_config::Hub) -> Vec<PeerSetup> {
    use ethergate_config::PeerPresharedKey;
    // A hub whose addresses do not fit was refused by validation.
    hub.wireguard_peers()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let preshared_key = match p.preshared_key {
                PeerPresharedKey::None => None,
                PeerPresharedKey::Key(key) => Some(key),
                PeerPresharedKey::Unread(path) => {
                    tracing::warn!(
                        hub = hub.name,
                        user = p.user,
                        file = %path.display(),
                        "WireGuard preshared key not read; this device cannot connect"
                    );
                    return None;
                }
            };
            Some(PeerSetup {
                user: p.user,
                public_key: p.public_key,
                address: p.address,
                preshared_key,
            })
        })
        .collect()
}

/// The hub's subnet and what its DHCP server pushes: where a WireGuard
/// peer's packets go next.
fn addressing_of(hub: &ethergate_config::Hub) -> Addressing {
    Addressing {
        subnet: hub.subnet(),
        routes: hub
            .dhcp
            .as_ref()
            .map(|d| d.routes.clone())
            .unwrap_or_default(),
        router: hub.dhcp.as_ref().and_then(|d| d.router),
    }
}

/// VPN clients reach the private subnet through the kernel's routing until
/// the eBPF NAT carries them; the recipe set this in rc.local.
fn enable_ipv4_forwarding() -> Result<()> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
    let current = std::fs::read_to_string(PATH).context("reading net.ipv4.ip_forward")?;
    if current.trim() != "1" {
        std::fs::write(PATH, "1").context("setting net.ipv4.ip_forward=1")?;
        info!("net.ipv4.ip_forward set to 1");
    }
    Ok(())
}

/// The server crate's limits from `[server.limits]` and
/// `[server.login_throttle]`.
fn server_limits(server: &ethergate_config::Server) -> Limits {
    let l = &server.limits;
    let t = &server.login_throttle;
    let as_usize = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
    Limits {
        admission: ethergate_server::AdmissionLimits {
            max_pending: as_usize(l.max_pending_handshakes),
            max_pending_per_address: as_usize(l.max_pending_per_address),
            max_pending_per_prefix: as_usize(l.max_pending_per_prefix),
        },
        login_throttle: ethergate_server::ThrottleConfig {
            free_failures: t.free_failures,
            user_free_failures: t.user_free_failures,
            max_block: std::time::Duration::from_secs(u64::from(t.max_block_secs)),
            ..Default::default()
        },
        write_timeout: std::time::Duration::from_secs(u64::from(l.write_timeout_secs)),
        max_sessions: as_usize(l.max_sessions),
        max_sessions_per_hub: as_usize(l.max_sessions_per_hub),
        ..Limits::default()
    }
}
