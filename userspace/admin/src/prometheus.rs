//! Prometheus text exposition (format 0.0.4) of a [`Status`].
//!
//! Names follow Prometheus conventions (`_total` counters, base units,
//! `ethergate_` prefix). The NAT family covers the AWS NAT gateway's
//! CloudWatch set: active connections (`ethergate_nat_active_flows`),
//! connection attempts (`ethergate_nat_flows_created_total`), packets
//! in/out (`ethergate_nat_packets_total{event="translated_in"|
//! "translated_out"}`; bytes and packets of the uplink by direction in
//! `ethergate_uplink_interface_*_total`), packets dropped
//! (`ethergate_nat_packets_dropped_total`), port-allocation errors
//! (`ethergate_nat_port_allocation_errors_total`) and idle timeouts
//! (`ethergate_nat_flows_expired_total`). Each name counts one kind of
//! thing: flows, packets, bytes or probes, never a mix.

use std::fmt::Write as _;

use crate::model::{Status, Traffic};

/// The content type Prometheus expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn render(s: &Status) -> String {
    let mut m = Exposition::default();
    m.family("ethergate_build_info", "gauge", "Build information.");
    m.sample("ethergate_build_info", &[("version", &s.version)], 1);
    m.single(
        "ethergate_uptime_seconds",
        "gauge",
        "Seconds since start.",
        s.uptime_secs,
    );
    m.single(
        "ethergate_ready",
        "gauge",
        "1 when every configured part is up (what /readyz answers).",
        u64::from(s.ready.is_ready()),
    );

    m.family(
        "ethergate_config_reloads_total",
        "counter",
        "Config reloads by result.",
    );
    m.sample(
        "ethergate_config_reloads_total",
        &[("result", "ok")],
        s.config.reloads,
    );
    m.sample(
        "ethergate_config_reloads_total",
        &[("result", "refused")],
        s.config.reload_failures,
    );

    m.family(
        "ethergate_tls_mode",
        "gauge",
        "TLS record layer in use (1 for the active mode).",
    );
    m.sample("ethergate_tls_mode", &[("mode", &s.server.tls_mode)], 1);
    if let Some(c) = &s.server.tls_certificate {
        m.family(
            "ethergate_tls_certificate_expiry_timestamp_seconds",
            "gauge",
            "When the server certificate new handshakes present expires (Unix time).",
        );
        m.sample(
            "ethergate_tls_certificate_expiry_timestamp_seconds",
            &[("subject", &c.subject), ("sha256", &c.sha256)],
            u64::try_from(c.not_after).unwrap_or(0),
        );
    }
    m.family(
        "ethergate_tls_connections_total",
        "counter",
        "Connections by the TLS mode they ran in (kernel, userspace, fell_back, failed).",
    );
    for (mode, n) in &s.server.tls_connections {
        m.sample("ethergate_tls_connections_total", &[("mode", mode)], *n);
    }
    m.single(
        "ethergate_pending_handshakes",
        "gauge",
        "TCP connections that have not finished the VPN handshake.",
        s.server.pending_handshakes,
    );
    m.family(
        "ethergate_connections_refused_total",
        "counter",
        "Connections closed before their handshake, by reason.",
    );
    for (reason, n) in &s.server.connections_refused {
        m.sample(
            "ethergate_connections_refused_total",
            &[("reason", reason)],
            *n,
        );
    }
    m.single(
        "ethergate_write_timeouts_total",
        "counter",
        "Connections closed because the peer stopped reading.",
        s.server.write_timeouts,
    );
    m.single(
        "ethergate_logins_total",
        "counter",
        "Sessions established by a successful login.",
        s.server.logins_ok,
    );
    m.family(
        "ethergate_login_failures_total",
        "counter",
        "Refused logins by reason.",
    );
    for (reason, n) in &s.server.logins_failed {
        m.sample("ethergate_login_failures_total", &[("reason", reason)], *n);
    }

    hubs(&mut m, s);
    nat(&mut m, s);
    m.out
}

fn hubs(m: &mut Exposition, s: &Status) {
    m.family(
        "ethergate_sessions",
        "gauge",
        "Sessions per hub (connected or resumable).",
    );
    for hub in &s.hubs {
        m.sample(
            "ethergate_sessions",
            &[("hub", &hub.name)],
            hub.sessions as u64,
        );
    }
    m.family(
        "ethergate_hub_mac_entries",
        "gauge",
        "Learned MAC addresses per hub.",
    );
    for hub in &s.hubs {
        m.sample(
            "ethergate_hub_mac_entries",
            &[("hub", &hub.name)],
            hub.mac_entries,
        );
    }
    m.family(
        "ethergate_dhcp_leases",
        "gauge",
        "Bound DHCP leases per hub.",
    );
    for hub in &s.hubs {
        if let Some(n) = hub.dhcp_leases {
            m.sample("ethergate_dhcp_leases", &[("hub", &hub.name)], n);
        }
    }
    m.family(
        "ethergate_dhcp_pool_addresses",
        "gauge",
        "Addresses in each hub's DHCP range.",
    );
    for hub in &s.hubs {
        if let Some(n) = hub.dhcp_pool_size {
            m.sample("ethergate_dhcp_pool_addresses", &[("hub", &hub.name)], n);
        }
    }
    let directions = |hub: &crate::model::HubStatus| -> [(&'static str, Traffic); 4] {
        [
            ("from_sessions", hub.from_sessions),
            ("to_sessions", hub.to_sessions),
            ("from_bridge", hub.from_bridge),
            ("to_bridge", hub.to_bridge),
        ]
    };
    m.family(
        "ethergate_hub_frames_total",
        "counter",
        "Frames through each hub by direction.",
    );
    for hub in &s.hubs {
        for (direction, t) in directions(hub) {
            let labels = [("hub", hub.name.as_str()), ("direction", direction)];
            m.sample("ethergate_hub_frames_total", &labels, t.frames);
        }
    }
    m.family(
        "ethergate_hub_bytes_total",
        "counter",
        "Bytes through each hub by direction.",
    );
    for hub in &s.hubs {
        for (direction, t) in directions(hub) {
            let labels = [("hub", hub.name.as_str()), ("direction", direction)];
            m.sample("ethergate_hub_bytes_total", &labels, t.bytes);
        }
    }
    m.family(
        "ethergate_hub_session_frames_dropped_total",
        "counter",
        "Frames for a session dropped because its queue was full (its connection could not keep up).",
    );
    for hub in &s.hubs {
        m.sample(
            "ethergate_hub_session_frames_dropped_total",
            &[("hub", &hub.name)],
            hub.session_frames_dropped,
        );
    }
    m.family(
        "ethergate_hub_frames_to_other_worker_total",
        "counter",
        "Frames read from the bridge's tap by one worker for a session another worker serves (a cross-thread hand-off).",
    );
    for hub in &s.hubs {
        m.sample(
            "ethergate_hub_frames_to_other_worker_total",
            &[("hub", &hub.name)],
            hub.to_sessions_other_worker,
        );
    }
    m.family(
        "ethergate_hub_frames_dropped_total",
        "counter",
        "Frames a hub's switch dropped, by reason (mac_limit, mac_spoof, lease_limit, …).",
    );
    for hub in &s.hubs {
        for (reason, n) in &hub.frames_dropped {
            let labels = [("hub", hub.name.as_str()), ("reason", reason.as_str())];
            m.sample("ethergate_hub_frames_dropped_total", &labels, *n);
        }
    }
    m.family(
        "ethergate_hub_bridge_syscalls_total",
        "counter",
        "read(2)/write(2) calls on each hub's bridge tap (fewer than frames with offload).",
    );
    for hub in &s.hubs {
        for (op, n) in [("read", hub.bridge_reads), ("write", hub.bridge_writes)] {
            let labels = [("hub", hub.name.as_str()), ("op", op)];
            m.sample("ethergate_hub_bridge_syscalls_total", &labels, n);
        }
    }
    m.family(
        "ethergate_hub_tcp_acks_thinned_total",
        "counter",
        "Pure TCP ACKs not written to a hub's tap: a newer ACK of the same flow followed in the same batch.",
    );
    for hub in &s.hubs {
        let labels = [("hub", hub.name.as_str())];
        m.sample(
            "ethergate_hub_tcp_acks_thinned_total",
            &labels,
            hub.tcp_acks_thinned,
        );
    }
    wireguard_metrics(m, s);
    udp_acceleration_metrics(m, s);
    m.family(
        "ethergate_hub_tap_offload",
        "gauge",
        "1 when the bridge tap uses TCP segmentation/coalescing offload.",
    );
    for hub in &s.hubs {
        m.sample(
            "ethergate_hub_tap_offload",
            &[("hub", &hub.name)],
            u64::from(hub.tap_offload),
        );
    }
}

/// SoftEther UDP acceleration: events, drops by reason, sessions by state.
fn udp_acceleration_metrics(m: &mut Exposition, s: &Status) {
    let Some(u) = &s.server.udp_acceleration else {
        return;
    };
    m.family(
        "ethergate_udp_acceleration_events_total",
        "counter",
        "SoftEther UDP acceleration: datagrams received, frames each way by UDP, keep-alives sent, send errors.",
    );
    for (event, n) in [
        ("datagram_received", u.datagrams_received),
        ("frame_received", u.frames_received),
        ("frame_sent", u.frames_sent),
        ("keepalive_sent", u.keepalives_sent),
        ("send_error", u.send_errors),
    ] {
        m.sample(
            "ethergate_udp_acceleration_events_total",
            &[("event", event)],
            n,
        );
    }
    m.family(
        "ethergate_udp_acceleration_dropped_total",
        "counter",
        "Datagrams sent to the UDP acceleration port and not delivered (and frames not sent), by reason.",
    );
    for (reason, n) in &u.drops {
        m.sample(
            "ethergate_udp_acceleration_dropped_total",
            &[("reason", reason.as_str())],
            *n,
        );
    }
    m.family(
        "ethergate_udp_acceleration_sessions",
        "gauge",
        "Sessions granted UDP acceleration, by whether their frames leave by UDP now or by TLS.",
    );
    for (state, n) in [
        ("udp", u.sessions_sending_by_udp),
        ("tls", u.sessions - u.sessions_sending_by_udp),
    ] {
        m.sample(
            "ethergate_udp_acceleration_sessions",
            &[("state", state)],
            n,
        );
    }
}

/// Each hub's WireGuard endpoint: its events and its drops by reason.
fn wireguard_metrics(m: &mut Exposition, s: &Status) {
    let endpoints: Vec<(&str, &crate::model::WireguardStatus)> = s
        .hubs
        .iter()
        .filter_map(|h| Some((h.name.as_str(), h.wireguard.as_ref()?)))
        .collect();
    if endpoints.is_empty() {
        return;
    }
    m.family(
        "ethergate_wireguard_events_total",
        "counter",
        "A hub's WireGuard endpoint: handshakes answered, cookie replies sent under load, keepalives, packets each way, send errors.",
    );
    for (hub, wg) in &endpoints {
        for (event, n) in [
            ("handshake", wg.handshakes),
            ("cookie_reply", wg.cookie_replies),
            ("keepalive_sent", wg.keepalives_sent),
            ("packet_received", wg.packets_received),
            ("packet_sent", wg.packets_sent),
            ("send_error", wg.send_errors),
        ] {
            m.sample(
                "ethergate_wireguard_events_total",
                &[("hub", hub), ("event", event)],
                n,
            );
        }
    }
    m.family(
        "ethergate_wireguard_dropped_total",
        "counter",
        "Datagrams or packets a hub's WireGuard endpoint dropped, by reason (bad_mac1, unknown_key, unknown_index, rejected, spoofed_source, …).",
    );
    for (hub, wg) in &endpoints {
        for (reason, n) in &wg.drops {
            m.sample(
                "ethergate_wireguard_dropped_total",
                &[("hub", hub), ("reason", reason.as_str())],
                *n,
            );
        }
    }
    m.family(
        "ethergate_wireguard_peers",
        "gauge",
        "Users of a hub with a WireGuard key.",
    );
    for (hub, wg) in &endpoints {
        m.sample(
            "ethergate_wireguard_peers",
            &[("hub", hub)],
            wg.peers as u64,
        );
    }
}

/// `NatEvent` names that count flows or probes, not packets.
const FLOW_CREATED: &str = "flow_created";
const DNAT_CREATED: &str = "dnat_created";
const PORT_COLLISION: &str = "port_collision";
const FLOW_EXPIRED: &str = "flow_expired";
const NOT_PACKET_EVENTS: [&str; 4] = [FLOW_CREATED, DNAT_CREATED, PORT_COLLISION, FLOW_EXPIRED];

fn nat(m: &mut Exposition, s: &Status) {
    let Some(nat) = &s.nat else {
        return;
    };
    m.family(
        "ethergate_datapath_mode",
        "gauge",
        "How each eBPF program is attached (1 per attachment).",
    );
    for a in &nat.attachments {
        m.sample(
            "ethergate_datapath_mode",
            &[
                ("interface", &a.interface),
                ("role", &a.role),
                ("mode", &a.mode),
            ],
            1,
        );
    }
    m.single(
        "ethergate_nat_active_flows",
        "gauge",
        "NAT flows in the flow table.",
        nat.active_flows,
    );
    m.single(
        "ethergate_nat_max_flows",
        "gauge",
        "NAT flow table capacity.",
        nat.max_flows,
    );
    // One concept per name: flows, packets and port probes apart.
    let event = |name: &str| nat.events.get(name).copied().unwrap_or(0);
    m.family(
        "ethergate_nat_flows_created_total",
        "counter",
        "NAT flow pairs created, by kind (snat: a public port allocated; dnat: a [[nat.dnat]] rule matched).",
    );
    m.sample(
        "ethergate_nat_flows_created_total",
        &[("kind", "snat")],
        event(FLOW_CREATED),
    );
    m.sample(
        "ethergate_nat_flows_created_total",
        &[("kind", "dnat")],
        event(DNAT_CREATED),
    );
    m.single(
        "ethergate_nat_flows_expired_total",
        "counter",
        "NAT flow pairs removed after their idle timeout (the NAT gateway's IdleTimeoutCount).",
        nat.idle_timeouts,
    );
    m.single(
        "ethergate_nat_port_collisions_total",
        "counter",
        "Port probes that hit a port in use while allocating (probes per flow = 1 + collisions / created).",
        event(PORT_COLLISION),
    );
    m.family(
        "ethergate_nat_packets_total",
        "counter",
        "Packets the NAT programs translated or handed to the kernel, by what happened to them.",
    );
    for (name, n) in nat
        .events
        .iter()
        .filter(|(name, _)| !NOT_PACKET_EVENTS.contains(&name.as_str()))
    {
        m.sample("ethergate_nat_packets_total", &[("event", name)], *n);
    }
    m.single(
        "ethergate_nat_port_allocation_errors_total",
        "counter",
        "New flows dropped because no source port was free.",
        nat.drops.get("ports_exhausted").copied().unwrap_or(0),
    );
    m.family(
        "ethergate_nat_packets_dropped_total",
        "counter",
        "NAT drops by reason.",
    );
    for (reason, n) in &nat.drops {
        m.sample(
            "ethergate_nat_packets_dropped_total",
            &[("reason", reason)],
            *n,
        );
    }
    m.family(
        "ethergate_uplink_packets_total",
        "counter",
        "Frames arriving on the uplink, by protocol class and the NAT program's verdict (XDP or tc; a GRO/GSO skb counts as the frames it stands for).",
    );
    for c in &nat.uplink_packets {
        let labels = [("class", c.class.as_str()), ("verdict", c.verdict.as_str())];
        m.sample("ethergate_uplink_packets_total", &labels, c.packets);
    }
    m.family(
        "ethergate_uplink_bytes_total",
        "counter",
        "Bytes arriving on the uplink as on the wire, by protocol class and the NAT program's verdict (XDP or tc).",
    );
    for c in &nat.uplink_packets {
        let labels = [("class", c.class.as_str()), ("verdict", c.verdict.as_str())];
        m.sample("ethergate_uplink_bytes_total", &labels, c.bytes);
    }
    if let Some(i) = &nat.uplink_interface {
        let interface = nat.uplink.as_str();
        for (name, help, rx, tx) in [
            (
                "ethergate_uplink_interface_bytes_total",
                "The kernel's byte counters of the uplink interface, by direction.",
                i.rx_bytes,
                i.tx_bytes,
            ),
            (
                "ethergate_uplink_interface_packets_total",
                "The kernel's packet counters of the uplink interface, by direction.",
                i.rx_packets,
                i.tx_packets,
            ),
            (
                "ethergate_uplink_interface_dropped_total",
                "Packets the kernel dropped on the uplink interface, by direction.",
                i.rx_dropped,
                i.tx_dropped,
            ),
        ] {
            m.family(name, "counter", help);
            m.sample(name, &[("interface", interface), ("direction", "rx")], rx);
            m.sample(name, &[("interface", interface), ("direction", "tx")], tx);
        }
    }
}

#[derive(Default)]
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(key);
                self.out.push_str("=\"");
                escape_label(&mut self.out, value);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Label values escape `\`, `"` and newline (exposition format spec).
fn escape_label(out: &mut String, value: &str) {
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HubStatus, NatStatus};

    fn sample_status() -> Status {
        Status {
            version: "0.1.0".into(),
            hubs: vec![HubStatus {
                name: "mi\"ka\\lab\n".into(),
                sessions: 2,
                dhcp_leases: Some(1),
                from_sessions: Traffic {
                    frames: 10,
                    bytes: 1000,
                },
                frames_dropped: [("mac_spoof".to_owned(), 3)].into(),
                wireguard: Some(crate::model::WireguardStatus {
                    peers: 2,
                    handshakes: 5,
                    drops: [("spoofed_source".to_owned(), 4)].into(),
                    ..Default::default()
                }),
                ..HubStatus::default()
            }],
            nat: Some(NatStatus {
                drops: [("ports_exhausted".to_owned(), 7)].into(),
                ..NatStatus::default()
            }),
            server: crate::model::ServerStatus {
                udp_acceleration: Some(crate::model::UdpAccelerationStatus {
                    sessions: 3,
                    sessions_sending_by_udp: 2,
                    frames_sent: 9,
                    drops: [("undecryptable".to_owned(), 5)].into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Status::default()
        }
    }

    #[test]
    fn udp_acceleration_has_its_families() {
        let text = render(&sample_status());
        for needle in [
            r#"ethergate_udp_acceleration_events_total{event="frame_sent"} 9"#,
            r#"ethergate_udp_acceleration_dropped_total{reason="undecryptable"} 5"#,
            r#"ethergate_udp_acceleration_sessions{state="udp"} 2"#,
            r#"ethergate_udp_acceleration_sessions{state="tls"} 1"#,
        ] {
            assert!(text.contains(needle), "{needle} missing:\n{text}");
        }
        let off = render(&Status::default());
        assert!(
            !off.contains("ethergate_udp_acceleration"),
            "off: no families"
        );
    }

    #[test]
    fn wireguard_endpoints_have_their_families() {
        let text = render(&sample_status());
        assert!(text.contains(
            r#"ethergate_wireguard_dropped_total{hub="mi\"ka\\lab\n",reason="spoofed_source"} 4"#
        ), "{text}");
        assert!(text.contains(r#"event="handshake"} 5"#), "{text}");
        assert!(
            text.contains(r#"ethergate_wireguard_peers{hub="mi\"ka\\lab\n"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn every_sample_line_parses_and_has_a_declared_family() {
        let text = render(&sample_status());
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                let name = parts.next().unwrap_or_default();
                assert!(matches!(parts.next(), Some("gauge" | "counter")), "{line}");
                assert!(
                    declared.insert(name.to_owned()),
                    "family declared twice: {name}"
                );
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..name_end];
            assert!(declared.contains(name), "sample before its family: {line}");
            let value = line.rsplit(' ').next().unwrap_or_default();
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn labels_are_escaped_and_aws_set_is_present() {
        let text = render(&sample_status());
        assert!(
            text.contains(r#"ethergate_sessions{hub="mi\"ka\\lab\n"} 2"#),
            "{text}"
        );
        assert!(
            text.contains("ethergate_nat_port_allocation_errors_total 7"),
            "{text}"
        );
        assert!(
            text.contains(r#"direction="from_sessions"} 1000"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"ethergate_hub_frames_dropped_total{hub="mi\"ka\\lab\n",reason="mac_spoof"} 3"#
            ),
            "{text}"
        );
        for name in [
            "ethergate_nat_active_flows",
            "ethergate_nat_flows_created_total",
            "ethergate_nat_flows_expired_total",
            "ethergate_nat_packets_total",
            "ethergate_nat_packets_dropped_total",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
        }
    }
}
