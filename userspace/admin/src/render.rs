//! `ethergate status` for people: short sections, aligned columns, the
//! modes first (they answer "is it using the fast path?"), zero rows left
//! out of the counter tables.

use std::fmt::Write as _;

use crate::model::{HubStatus, NatStatus, SessionStatus, Status, Traffic};

pub fn status(s: &Status) -> String {
    let mut out = String::new();
    let ready = if s.ready.is_ready() {
        "ready".to_owned()
    } else {
        format!("NOT READY: {}", s.ready.problems.join("; "))
    };
    let _ = writeln!(
        out,
        "ethergate {} (pid {}), up {}, {ready}",
        s.version,
        s.pid,
        duration(s.uptime_secs)
    );
    let config = s.config.path.as_deref().unwrap_or("(embedded default)");
    let _ = writeln!(
        out,
        "config      {config}; {} reload(s), {} refused",
        s.config.reloads, s.config.reload_failures
    );
    if let Some(error) = &s.config.last_reload_error {
        let _ = writeln!(out, "            last reload refused: {error}");
    }
    let _ = writeln!(
        out,
        "listen      {} ({} worker(s))",
        s.server.listen.join(", "),
        s.server.workers
    );
    let _ = writeln!(out, "tls         {} — {}", s.server.tls_mode, s.server.ktls);
    if let Some(c) = &s.server.tls_certificate {
        let _ = writeln!(
            out,
            "certificate {} ({}), expires in {} days{}\n            SHA-256 {}",
            c.subject,
            s.server.certificate,
            c.days_left,
            if c.days_left < 14 {
                " — RENEW IT"
            } else {
                ""
            },
            c.sha256
        );
    }
    if !s.server.tls_connections.is_empty() {
        let modes: Vec<String> = s
            .server
            .tls_connections
            .iter()
            .map(|(mode, n)| format!("{mode} {n}"))
            .collect();
        let _ = writeln!(out, "            connections: {}", modes.join(", "));
    }
    if let Some(u) = &s.server.udp_acceleration {
        let dropped: Vec<String> = u
            .drops
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(why, n)| format!("{why} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "udp accel   {} of {} session(s) on UDP; {} datagram(s) in ({} frame(s)), {} frame(s) \
             out, {} keep-alive(s); dropped: {}",
            u.sessions_sending_by_udp,
            u.sessions,
            u.datagrams_received,
            u.frames_received,
            u.frames_sent,
            u.keepalives_sent,
            if dropped.is_empty() {
                "none".to_owned()
            } else {
                dropped.join(", ")
            }
        );
    } else {
        let _ = writeln!(out, "udp accel   off (every SoftEther session on TLS)");
    }
    let failed: u64 = s.server.logins_failed.values().sum();
    let _ = write!(
        out,
        "logins      {} ok, {failed} refused",
        s.server.logins_ok
    );
    if failed > 0 {
        let reasons: Vec<String> = s
            .server
            .logins_failed
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        let _ = write!(out, " ({})", reasons.join(", "));
    }
    let _ = writeln!(out);
    let refused: Vec<String> = s
        .server
        .connections_refused
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(why, n)| format!("{why} {n}"))
        .collect();
    if !refused.is_empty() || s.server.write_timeouts > 0 {
        let _ = writeln!(
            out,
            "front door  refused before the handshake: {}; peers that stopped reading: {}",
            if refused.is_empty() {
                "none".to_owned()
            } else {
                refused.join(", ")
            },
            s.server.write_timeouts
        );
    }
    if let Some(nat) = &s.nat {
        let modes: Vec<String> = nat
            .attachments
            .iter()
            .map(|a| format!("{} {} ({})", a.role, a.interface, a.mode))
            .collect();
        let _ = writeln!(out, "data path   {}", modes.join(", "));
        for a in nat.attachments.iter().filter(|a| !a.reason.is_empty()) {
            let _ = writeln!(out, "            {} {}: {}", a.role, a.interface, a.reason);
        }
    } else {
        let _ = writeln!(out, "data path   no [nat] section: kernel routing only");
    }

    let _ = writeln!(out, "\nhubs");
    for hub in &s.hubs {
        hub_line(&mut out, hub);
    }
    let _ = writeln!(out, "\nsessions ({})", s.sessions.len());
    if !s.sessions.is_empty() {
        let _ = writeln!(
            out,
            "  {:<24} {:<10} {:<12} {:<21} {:>5} {:>8} {:>12} {:>12}",
            "name", "hub", "user", "client", "conns", "age", "rx bytes", "tx bytes"
        );
        for session in &s.sessions {
            session_line(&mut out, session);
        }
    }
    if let Some(nat) = &s.nat {
        nat_section(&mut out, nat);
    }
    out
}

fn hub_line(out: &mut String, hub: &HubStatus) {
    let leases = hub
        .dhcp_leases
        .map_or_else(|| "no DHCP".to_owned(), |n| format!("{n} lease(s)"));
    let _ = writeln!(
        out,
        "  {} on {} ({}): {} session(s), {} user(s), {} MAC(s), {leases}",
        hub.name, hub.bridge, hub.bridge_address, hub.sessions, hub.users, hub.mac_entries
    );
    let _ = writeln!(
        out,
        "    from sessions {}  to sessions {}  from bridge {}  to bridge {}  dropped frames {}  \
         handed to another worker {}",
        traffic(hub.from_sessions),
        traffic(hub.to_sessions),
        traffic(hub.from_bridge),
        traffic(hub.to_bridge),
        hub.session_frames_dropped,
        hub.to_sessions_other_worker
    );
    let dropped: Vec<String> = hub
        .frames_dropped
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(why, n)| format!("{why} {n}"))
        .collect();
    if !dropped.is_empty() {
        let _ = writeln!(out, "    switch dropped: {}", dropped.join(", "));
    }
    let offload = if hub.tap_offload { "on" } else { "off" };
    let _ = writeln!(
        out,
        "    tap offload {offload}: {} read(s), {} write(s), {} TCP ACK(s) thinned",
        hub.bridge_reads, hub.bridge_writes, hub.tcp_acks_thinned
    );
    if let Some(wg) = &hub.wireguard {
        let _ = writeln!(
            out,
            "    wireguard on {} (key {}): {} peer(s), {} handshake(s), {} cookie repl(ies), \
             packets {} in / {} out",
            wg.listen,
            wg.public_key,
            wg.peers,
            wg.handshakes,
            wg.cookie_replies,
            wg.packets_received,
            wg.packets_sent
        );
        let dropped: Vec<String> = wg
            .drops
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(why, n)| format!("{why} {n}"))
            .collect();
        if !dropped.is_empty() {
            let _ = writeln!(out, "    wireguard dropped: {}", dropped.join(", "));
        }
    }
}

fn session_line(out: &mut String, s: &SessionStatus) {
    let mut conns = if s.orphaned {
        "idle".to_owned()
    } else {
        format!("{}/{}", s.connections, s.max_connections)
    };
    if s.udp_acceleration
        .as_ref()
        .is_some_and(|u| u.sending_by_udp)
    {
        // Its frames leave by UDP acceleration now.
        conns.push_str("+u");
    }
    let _ = writeln!(
        out,
        "  {:<24} {:<10} {:<12} {:<21} {:>5} {:>8} {:>12} {:>12}",
        s.name,
        s.hub,
        s.user,
        s.client,
        conns,
        duration(s.age_secs),
        s.received.bytes,
        s.sent.bytes
    );
}

fn nat_section(out: &mut String, nat: &NatStatus) {
    let _ = writeln!(
        out,
        "\nnat (uplink {}): {} active flow(s) of {}, {} idle timeout(s)",
        nat.uplink, nat.active_flows, nat.max_flows, nat.idle_timeouts
    );
    for (name, n) in nat.events.iter().filter(|(_, n)| **n > 0) {
        let _ = writeln!(out, "  {name:<28} {n:>14}");
    }
    for (name, n) in nat.drops.iter().filter(|(_, n)| **n > 0) {
        let _ = writeln!(out, "  drop {name:<23} {n:>14}");
    }
    let moved: Vec<_> = nat
        .uplink_packets
        .iter()
        .filter(|c| c.packets > 0)
        .collect();
    if !moved.is_empty() {
        let _ = writeln!(
            out,
            "  {:<16} {:<9} {:>12} {:>14}",
            "class", "verdict", "packets", "bytes"
        );
        for c in moved {
            let _ = writeln!(
                out,
                "  {:<16} {:<9} {:>12} {:>14}",
                c.class, c.verdict, c.packets, c.bytes
            );
        }
    }
}

fn traffic(t: Traffic) -> String {
    format!("{}f/{}B", t.frames, t.bytes)
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attachment, Readiness, ServerStatus};

    #[test]
    fn shows_modes_sessions_and_readiness() {
        let s = Status {
            version: "0.1.0".into(),
            pid: 42,
            uptime_secs: 3725,
            server: ServerStatus {
                listen: vec!["0.0.0.0:443".into()],
                workers: 2,
                tls_mode: "userspace (rustls)".into(),
                ktls: "kernel has no tls ULP".into(),
                logins_ok: 3,
                logins_failed: [("auth_failed".to_owned(), 2)].into(),
                connections_refused: [("address_pending_cap".to_owned(), 7)].into(),
                udp_acceleration: Some(crate::model::UdpAccelerationStatus {
                    sessions: 1,
                    sessions_sending_by_udp: 1,
                    drops: [("stale".to_owned(), 2), ("malformed".to_owned(), 0)].into(),
                    ..Default::default()
                }),
                ..ServerStatus::default()
            },
            hubs: vec![crate::model::HubStatus {
                name: "mikalab".into(),
                frames_dropped: [("mac_limit".to_owned(), 284), ("runt".to_owned(), 0)].into(),
                ..crate::model::HubStatus::default()
            }],
            sessions: vec![SessionStatus {
                name: "SID-TSUMURA-1".into(),
                hub: "mikalab".into(),
                user: "tsumura".into(),
                client: "192.0.2.7:50000".into(),
                connections: 8,
                max_connections: 8,
                age_secs: 61,
                udp_acceleration: Some(crate::model::SessionUdpStatus {
                    sending_by_udp: true,
                    ..Default::default()
                }),
                ..SessionStatus::default()
            }],
            nat: Some(NatStatus {
                uplink: "eth0".into(),
                attachments: vec![Attachment {
                    interface: "eth0".into(),
                    role: "uplink".into(),
                    mode: "xdp native".into(),
                    reason: String::new(),
                }],
                ..NatStatus::default()
            }),
            ready: Readiness {
                problems: vec!["bridge tap_00 is down".into()],
            },
            ..Status::default()
        };
        let text = status(&s);
        assert!(text.contains("up 1h02m"), "{text}");
        assert!(text.contains("NOT READY: bridge tap_00 is down"), "{text}");
        assert!(text.contains("userspace (rustls)"), "{text}");
        assert!(text.contains("uplink eth0 (xdp native)"), "{text}");
        assert!(text.contains("3 ok, 2 refused (auth_failed 2)"), "{text}");
        assert!(text.contains("SID-TSUMURA-1"), "{text}");
        assert!(text.contains("8/8+u"), "{text}");
        assert!(
            text.contains("udp accel   1 of 1 session(s) on UDP")
                && text.contains("dropped: stale 2\n"),
            "{text}"
        );
        assert!(
            text.contains("refused before the handshake: address_pending_cap 7"),
            "{text}"
        );
        assert!(text.contains("switch dropped: mac_limit 284\n"), "{text}");
    }
}
