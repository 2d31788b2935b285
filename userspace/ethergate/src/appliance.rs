//! Turning a validated config into running parts: the TLS identity, one
//! local bridge (tap) and hub actor per `[[hub]]`, the worker threads with
//! their listeners, and IPv4 forwarding so the kernel routes between the
//! taps and the private side.
//!
//! Invariant: start-up is all-or-nothing. Any failure returns an error that
//! names the hub, interface or address, and whatever was already started is
//! dropped (taps vanish, threads stop) before serve exits.

use std::sync::Arc;

use anyhow::{Context, Result};
use ethergate_bridge::{LinkConfig, MacAddr, Tap};
use ethergate_config::Config;
use ethergate_hub::{DhcpServerConfig, Hub, HubOptions};
use ethergate_server::{
    Directory, Limits, RunningServer,
    hub_actor::{self, HubActor},
    ktls::{self, KtlsSupport},
    learning::LearningHub,
    tls::{self, CertificateSource},
};
use tracing::info;

/// Inputs queued per hub before senders see "full" and drop (a few
/// milliseconds of line rate; SoftEther drops rather than blocks, §7.1).
const HUB_QUEUE: usize = 4096;

pub struct Appliance {
    pub server: RunningServer,
    pub hubs: Vec<HubActor>,
    pub ktls: KtlsSupport,
    pub certificate: CertificateSource,
}

impl Appliance {
    pub fn start(config: &Config) -> Result<Self> {
        let (tls_config, certificate) = match &config.server.tls {
            Some(files) => (
                tls::from_files(&files.cert, &files.key)?,
                CertificateSource::Configured(files.cert.clone()),
            ),
            None => tls::self_signed(&config.server.state_dir)
                .context("preparing the self-signed TLS certificate")?,
        };
        let ktls = ktls::probe();
        match &ktls {
            KtlsSupport::Available => info!("kTLS: the kernel offers the tls ULP"),
            KtlsSupport::Unavailable(why) => info!("kTLS unavailable ({why}); TLS in userspace"),
        }
        if !config.hubs.is_empty() {
            enable_ipv4_forwarding()?;
        }
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut directory = Directory::new(Limits::default());
        let mut hubs = Vec::with_capacity(config.hubs.len());
        for hub in &config.hubs {
            let actor = start_hub(hub, workers, &config.server.state_dir)?;
            directory.add_hub(
                &hub.name,
                hub.users
                    .iter()
                    .map(|u| (u.name.clone(), *u.password_hash.as_bytes())),
                actor.input.clone(),
            );
            hubs.push(actor);
        }
        let server = RunningServer::start(
            ethergate_server::ListenerSetup {
                listen: config.server.listen.clone(),
                workers,
                tls: tls_config,
                proto: proto_config(),
            },
            Arc::new(directory),
        )?;
        info!(
            listen = ?config.server.listen,
            workers,
            tls = ktls.session_mode(),
            "VPN listeners up"
        );
        Ok(Self {
            server,
            hubs,
            ktls,
            certificate,
        })
    }

    /// Stops listeners and sessions, then the hubs (which closes the taps).
    pub fn stop(self) {
        let Self { server, hubs, .. } = self;
        server.stop();
        for hub in hubs {
            drop(hub.input);
            let _ = hub.thread.join();
        }
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

fn start_hub(
    hub: &ethergate_config::Hub,
    workers: usize,
    state_dir: &std::path::Path,
) -> Result<HubActor> {
    let bridge = hub.bridge.as_str();
    let tap = Tap::create(bridge, workers)
        .with_context(|| format!("hub {:?}: creating local bridge tap {bridge}", hub.name))?;
    let address = ethergate_bridge::Ipv4Cidr::new(
        hub.bridge_address.address(),
        hub.bridge_address.prefix_len(),
    )
    .with_context(|| format!("hub {:?}: bridge_address", hub.name))?;
    let mac = MacAddr::from_seed(&hub.name);
    tap.configure(&LinkConfig {
        mac: Some(mac),
        ipv4: Some(address),
        ..LinkConfig::default()
    })
    .with_context(|| format!("hub {:?}: configuring {bridge}", hub.name))?;
    // DHCP answers come from the tap's own MAC and address, so a client's
    // unicast RENEW to the server id reaches the hub like any other frame.
    let dhcp = DhcpServerConfig::for_hub(hub).map(|mut d| {
        d.server_mac = ethergate_hub::MacAddr(mac.0);
        d
    });
    let switch = Hub::new(hub.name.clone(), HubOptions::default(), dhcp);
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating state_dir {}", state_dir.display()))?;
    let lease_file = hub
        .dhcp
        .as_ref()
        .map(|_| state_dir.join(format!("leases-{}.txt", hub.name.to_ascii_lowercase())));
    let switch = LearningHub::new(switch, lease_file);
    let actor = hub_actor::spawn(&hub.name, Box::new(switch), tap.into_queues(), HUB_QUEUE)
        .with_context(|| format!("hub {:?}: starting its thread", hub.name))?;
    info!(hub = hub.name, bridge, address = %hub.bridge_address, "hub up");
    Ok(actor)
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
