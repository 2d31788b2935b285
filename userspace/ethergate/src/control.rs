//! The running appliance as one object the operator surfaces share: the
//! admin socket, the metrics endpoint and the signal loop each lock it to
//! read a status, reload the config or end a session.

use std::{path::PathBuf, time::Instant};

use anyhow::{Context, Result};
use ethergate_admin::model::{
    Attachment, ClassCounter, ConfigStatus, HubStatus, NatStatus, Readiness, ServerStatus,
    SessionStatus, Status, Traffic,
};
use ethergate_common::{DropReason, NatEvent, ProtoClass, Verdict};
use ethergate_config::Config;
use ethergate_dataplane::Dataplane;
use ethergate_server::{EndReason, HubSnapshot, KtlsSupport};
use tracing::{info, warn};

use crate::{appliance::Appliance, reload};

pub struct Control {
    pub config_path: Option<PathBuf>,
    pub config: Config,
    pub appliance: Appliance,
    pub dataplane: Dataplane,
    started: Instant,
    reloads: u64,
    reload_failures: u64,
    last_reload_error: Option<String>,
}

impl Control {
    pub fn new(
        config_path: Option<PathBuf>,
        config: Config,
        appliance: Appliance,
        dataplane: Dataplane,
    ) -> Self {
        Self {
            config_path,
            config,
            appliance,
            dataplane,
            started: Instant::now(),
            reloads: 0,
            reload_failures: 0,
            last_reload_error: None,
        }
    }

    /// Re-reads the config file and applies it, or changes nothing and
    /// says why. Returns the list of changes applied.
    pub fn reload(&mut self) -> Result<Vec<String>> {
        let result = self.try_reload();
        match &result {
            Ok(changes) => {
                self.reloads += 1;
                self.last_reload_error = None;
                info!(?changes, "config reloaded");
            }
            Err(e) => {
                self.reload_failures += 1;
                self.last_reload_error = Some(format!("{e:#}"));
                warn!("reload refused, running config kept: {e:#}");
            }
        }
        result
    }

    fn try_reload(&mut self) -> Result<Vec<String>> {
        let Some(path) = &self.config_path else {
            anyhow::bail!("serve runs the embedded default config; there is no file to re-read");
        };
        let mut new = Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        // Command-line overrides stay in force across reloads.
        new.server.state_dir = self.config.server.state_dir.clone();
        announce_generated_secrets(&new.resolve_secret_files(true)?);
        let plan = reload::plan(&self.config, &new)
            .map_err(|reasons| anyhow::anyhow!("nothing applied: {}", reasons.join("; ")))?;
        let mut changes = plan.describe();
        // Re-read every time: a renewal replaces the files at the same paths.
        let (key, source) = crate::appliance::load_certificate(&new.server)
            .context("TLS certificate: nothing applied")?;
        let before = self.appliance.current_certificate.info();
        self.apply(plan)?;
        self.appliance.set_certificate(key, source);
        let after = self.appliance.current_certificate.info();
        if let Some(after) = after.filter(|a| before.as_ref().is_none_or(|b| b.sha256 != a.sha256))
        {
            crate::appliance::log_certificate(&self.appliance.current_certificate);
            changes.push(format!(
                "tls: new certificate for new connections ({}, SHA-256 {}, {} days left)",
                after.subject,
                after.sha256,
                after.days_left(ethergate_server::certificate::unix_now())
            ));
        }
        self.config = new;
        Ok(changes)
    }

    /// Applies `plan` all-or-nothing: first what can fail (every hub it
    /// changes must be running; new hubs' taps and programs; NAT rules),
    /// undone on failure; then what cannot (users, DHCP, removals).
    fn apply(&mut self, plan: reload::Plan) -> Result<()> {
        for hub in plan.users.iter().chain(&plan.dhcp) {
            if !self.appliance.hub_is_running(&hub.name) {
                anyhow::bail!(
                    "hub {:?} is not running (its thread ended); nothing applied",
                    hub.name
                );
            }
        }
        let mut added: Vec<String> = Vec::new();
        for hub in &plan.add_hubs {
            let started = self.appliance.add_hub(hub).and_then(|()| {
                // A new hub's tap gets the DNAT / VPN-client SNAT programs
                // like the ones that existed at start.
                if self.config.nat.is_some() {
                    self.dataplane.attach_hub_tap(hub.bridge.as_str())?;
                }
                Ok(())
            });
            if let Err(e) = started {
                for name in &added {
                    self.appliance.remove_hub(name);
                }
                return Err(e.context(format!("hub {:?}: nothing applied", hub.name)));
            }
            added.push(hub.name.clone());
        }
        if let Some(nat) = &plan.nat
            && let Err(e) = self.dataplane.apply_nat(nat)
        {
            for name in &added {
                self.appliance.remove_hub(name);
            }
            if let Some(old) = &self.config.nat {
                // Put the old rules back; flows were never touched.
                let _ = self.dataplane.apply_nat(old);
            }
            return Err(anyhow::Error::new(e).context("writing NAT rules: nothing applied"));
        }
        for hub in &plan.users {
            let closed = self.appliance.set_users(hub);
            if closed > 0 {
                info!(hub = hub.name, closed, "sessions of removed users closed");
            }
        }
        for hub in &plan.dhcp {
            // Checked above; the hub could only have been closed since,
            // and then the watchdog restarts the whole service.
            if let Err(e) = self.appliance.set_dhcp(hub) {
                warn!(hub = hub.name, "DHCP settings not applied: {e:#}");
            }
        }
        for name in &plan.remove_hubs {
            self.appliance.remove_hub(name);
        }
        Ok(())
    }

    /// Every hub of the running config is open and has its tap read.
    pub fn hubs_running(&self) -> bool {
        self.appliance.hubs.values().all(|h| h.handle.is_running())
    }

    pub fn disconnect(&self, session: &str) -> bool {
        self.appliance.server.disconnect(session)
    }

    /// Ends every session of `user` (on `hub`, or on any hub).
    pub fn disconnect_user(&self, hub: Option<&str>, user: &str) -> usize {
        self.appliance
            .server
            .disconnect_user(hub, user, EndReason::Disconnected)
    }

    pub fn status(&self) -> Status {
        let server = self.appliance.server.snapshot();
        let hubs: Vec<HubStatus> = self
            .appliance
            .hubs
            .values()
            .map(|running| {
                let config = &running.config;
                let snapshot = server
                    .hubs
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(&config.name));
                hub_status(config, snapshot)
            })
            .collect();
        let now = Instant::now();
        let sessions = server
            .sessions
            .iter()
            .map(|s| SessionStatus {
                name: s.name.clone(),
                hub: s.hub.clone(),
                user: s.user.clone(),
                client: s.client.to_string(),
                protocol: s.protocol.name().to_owned(),
                last_handshake_unix: s.last_handshake_unix,
                connections: s.connections,
                max_connections: s.max_connections,
                age_secs: now.saturating_duration_since(s.established).as_secs(),
                orphaned: s.orphaned,
                worker: s.worker,
                received: traffic(s.received),
                sent: traffic(s.sent),
                udp_acceleration: s.udp_acceleration.as_ref().map(|u| {
                    ethergate_admin::model::SessionUdpStatus {
                        sending_by_udp: u.sending_by_udp,
                        endpoint: u.endpoint.to_string(),
                        frames_received: u.frames_received,
                        frames_sent: u.frames_sent,
                    }
                }),
            })
            .collect();
        let udp_acceleration = server.udp_acceleration.as_ref().map(|u| {
            let granted: Vec<_> = server
                .sessions
                .iter()
                .filter_map(|s| s.udp_acceleration.as_ref())
                .collect();
            ethergate_admin::model::UdpAccelerationStatus {
                sessions: granted.len() as u64,
                sessions_sending_by_udp: granted.iter().filter(|g| g.sending_by_udp).count() as u64,
                datagrams_received: u.datagrams_received,
                frames_received: u.frames_received,
                frames_sent: u.frames_sent,
                keepalives_sent: u.keepalives_sent,
                send_errors: u.send_errors,
                drops: u
                    .drops
                    .iter()
                    .map(|&(why, n)| (why.to_owned(), n))
                    .collect(),
            }
        });
        let logins_failed = server
            .logins_failed
            .iter()
            .map(|&(code, n)| (failure_reason(code), n))
            .chain(
                server
                    .logins_throttled
                    .iter()
                    .map(|&(why, n)| (why.to_owned(), n)),
            )
            .collect();
        let nat = self.nat_status();
        let ready = self.readiness(&server.hubs, &hubs);
        Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            config: ConfigStatus {
                path: self.config_path.as_ref().map(|p| p.display().to_string()),
                reloads: self.reloads,
                reload_failures: self.reload_failures,
                last_reload_error: self.last_reload_error.clone(),
            },
            server: ServerStatus {
                listen: self
                    .config
                    .server
                    .listen
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                workers: server.workers,
                tls_mode: server.tls_mode.to_owned(),
                tls_connections: named(&server.tls_connections),
                ktls: match &server.ktls {
                    KtlsSupport::Available => "the kernel offers the tls ULP".to_owned(),
                    KtlsSupport::Unavailable(why) => format!("kTLS unavailable: {why}"),
                },
                certificate: format!("{:?}", self.appliance.certificate),
                tls_certificate: self.appliance.current_certificate.info().map(|c| {
                    ethergate_admin::model::CertificateStatus {
                        days_left: c.days_left(ethergate_server::certificate::unix_now()),
                        subject: c.subject,
                        sha256: c.sha256,
                        not_after: c.not_after,
                    }
                }),
                pending_handshakes: server.pending_handshakes,
                connections_refused: named(&server.connections_refused),
                write_timeouts: server.write_timeouts,
                logins_ok: server.logins_ok,
                logins_failed,
                udp_acceleration,
            },
            hubs,
            sessions,
            nat,
            ready,
        }
    }

    fn nat_status(&self) -> Option<NatStatus> {
        let nat = self.config.nat.as_ref()?;
        let mut attachments = Vec::new();
        let nat_attachment = |role: &str, a: &ethergate_dataplane::NatAttachment| Attachment {
            interface: a.interface.clone(),
            role: role.to_owned(),
            mode: a.mode.name().to_owned(),
            reason: a.reason.clone(),
        };
        if let Some(uplink) = self.dataplane.uplink_attachment() {
            attachments.push(nat_attachment("uplink", uplink));
        }
        for inside in self.dataplane.inside_attachments() {
            attachments.push(nat_attachment("inside", inside));
        }
        for tap in self.dataplane.hub_taps() {
            attachments.push(Attachment {
                interface: tap.to_owned(),
                role: "hub tap (DNAT, VPN-client SNAT)".to_owned(),
                mode: "tc".to_owned(),
                reason: "taps always run tc".to_owned(),
            });
        }
        let mut status = NatStatus {
            uplink: nat.uplink.as_str().to_owned(),
            attachments,
            active_flows: self.dataplane.active_flows(),
            max_flows: u64::from(nat.limits.max_flows),
            idle_timeouts: self.dataplane.expired_flows(),
            uplink_interface: crate::netdev::counters(nat.uplink.as_str()),
            ..NatStatus::default()
        };
        match self.dataplane.counters() {
            Ok(snapshot) => {
                for class in ProtoClass::ALL {
                    for verdict in Verdict::ALL {
                        let c = snapshot.total(class, verdict);
                        if c.packets > 0 {
                            status.uplink_packets.push(ClassCounter {
                                class: class.name().to_owned(),
                                verdict: verdict.name().to_owned(),
                                packets: c.packets,
                                bytes: c.bytes,
                            });
                        }
                    }
                }
                for event in NatEvent::ALL {
                    status
                        .events
                        .insert(event.name().to_owned(), snapshot.nat_event(event));
                }
                for reason in DropReason::ALL {
                    status
                        .drops
                        .insert(reason.name().to_owned(), snapshot.nat_drop(reason));
                }
            }
            Err(e) => warn!("cannot read data-plane counters: {e}"),
        }
        Some(status)
    }

    /// What keeps the appliance from doing its job: `running` is what the
    /// server reports of its hubs, `hubs` what status shows of them.
    fn readiness(&self, running: &[HubSnapshot], hubs: &[HubStatus]) -> Readiness {
        let mut problems = Vec::new();
        for name in self.appliance.hubs.keys() {
            match running.iter().find(|h| h.name.eq_ignore_ascii_case(name)) {
                None => problems.push(format!("hub {name}: not registered with the server")),
                Some(hub) if hub.closed => problems.push(format!("hub {name}: closed")),
                Some(hub) if hub.tap_queues_read < hub.tap_queues => problems.push(format!(
                    "hub {name}: {} of its {} tap queues are being read",
                    hub.tap_queues_read, hub.tap_queues
                )),
                Some(_) => {}
            }
        }
        for hub in hubs {
            if !interface_is_up(&hub.bridge) {
                problems.push(format!("bridge {} is not up", hub.bridge));
            }
        }
        if let Some(nat) = &self.config.nat
            && self.dataplane.uplink_attachment().is_none()
        {
            problems.push(format!("no program attached to uplink {}", nat.uplink));
        }
        Readiness { problems }
    }
}

fn traffic((frames, bytes): (u64, u64)) -> Traffic {
    Traffic { frames, bytes }
}

/// Prometheus-friendly reason for a SoftEther error code.
fn failure_reason(code: ethergate_proto::ErrorCode) -> String {
    code.name().map_or_else(
        || format!("code_{}", code.0),
        |name| name.trim_start_matches("ERR_").to_ascii_lowercase(),
    )
}

/// IFF_UP from sysfs; the tap lives in our network namespace.
fn interface_is_up(name: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{name}/flags"))
        .ok()
        .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|flags| flags & 1 != 0)
}

/// One line per password generated for a `password_file`, saying where it
/// is: the operator hands it to the user (or replaces it).
pub fn announce_generated_secrets(generated: &[ethergate_config::GeneratedSecret]) {
    use ethergate_config::SecretKind;
    for g in generated {
        match g.kind {
            SecretKind::Password => warn!(
                hub = g.hub,
                user = g.user,
                file = %g.path.display(),
                "generated a password for this user (password_file did not exist); give it to \
                 the user, or write your own into the file and reload"
            ),
            SecretKind::PresharedKey => warn!(
                hub = g.hub,
                user = g.user,
                file = %g.path.display(),
                "generated a WireGuard preshared key for this user \
                 (wireguard_preshared_key_file did not exist); `ethergate user wg-config` \
                 prints it in the device's config"
            ),
        }
    }
}

/// One hub as status shows it: its config, and what the server reports
/// of it (nothing when the server no longer has it).
fn hub_status(config: &ethergate_config::Hub, snapshot: Option<&HubSnapshot>) -> HubStatus {
    let c = snapshot.map(|h| h.counts.clone()).unwrap_or_default();
    HubStatus {
        name: config.name.clone(),
        bridge: config.bridge.as_str().to_owned(),
        bridge_address: config.bridge_address.to_string(),
        users: snapshot.map_or(0, |h| h.users),
        sessions: snapshot.map_or(0, |h| h.sessions),
        mac_entries: c.mac_entries,
        dhcp_leases: c.dhcp_leases,
        dhcp_pool_size: config.dhcp.as_ref().map(|d| d.range.len()),
        from_sessions: traffic(c.from_sessions),
        to_sessions: traffic(c.to_sessions),
        from_bridge: traffic(c.from_bridge),
        to_bridge: traffic(c.to_bridge),
        session_frames_dropped: c.session_frames_dropped,
        to_sessions_other_worker: c.to_sessions_other_worker,
        tap_offload: c.tap_offload,
        bridge_reads: c.bridge_reads,
        bridge_writes: c.bridge_writes,
        tcp_acks_thinned: c.tcp_acks_thinned,
        frames_dropped: named(&c.frames_dropped),
        wireguard: snapshot.and_then(|h| h.wireguard.clone()),
    }
}

fn named(counts: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    counts
        .iter()
        .map(|&(name, n)| (name.to_owned(), n))
        .collect()
}
