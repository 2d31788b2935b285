//! What a reload would change, decided before anything is touched.
//!
//! A reload is all-or-nothing: [`plan`] compares the running config with
//! the new one and either returns the steps to apply or every reason the
//! new config cannot be applied without a restart. Sessions and NAT flows
//! are never dropped by a reload except the sessions of removed users and
//! removed hubs (access revoked is access revoked).

use ethergate_config::{Config, Hub};

/// The steps of an accepted reload, in the order they are applied: the
/// fallible ones (new taps, NAT maps) first, so a failure can still be
/// rolled back before anything visible to sessions changed.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub add_hubs: Vec<Hub>,
    /// New `[nat]` to write to the maps (rules and timeouts).
    pub nat: Option<ethergate_config::Nat>,
    pub users: Vec<Hub>,
    /// What changed about the users of `users`' hubs, one line each.
    pub user_changes: Vec<String>,
    pub dhcp: Vec<Hub>,
    pub remove_hubs: Vec<String>,
}

impl Plan {
    /// One line per change, for the operator.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for hub in &self.add_hubs {
            lines.push(format!("hub {}: added (bridge {})", hub.name, hub.bridge));
        }
        if self.nat.is_some() {
            lines.push("nat: rules and timeouts replaced (flows kept)".to_owned());
        }
        lines.extend(self.user_changes.iter().cloned());
        for hub in &self.dhcp {
            let what = if hub.dhcp.is_some() {
                "replaced"
            } else {
                "turned off"
            };
            lines.push(format!("hub {}: DHCP settings {what}", hub.name));
        }
        for name in &self.remove_hubs {
            lines.push(format!("hub {name}: removed (its sessions closed)"));
        }
        lines
    }
}

/// One line per added, removed or changed user of a hub.
fn describe_user_changes(old: &Hub, new: &Hub) -> Vec<String> {
    fn find<'h>(hub: &'h Hub, name: &str) -> Option<&'h ethergate_config::User> {
        hub.users.iter().find(|u| u.name.eq_ignore_ascii_case(name))
    }
    let mut lines = Vec::new();
    for user in &new.users {
        match find(old, &user.name) {
            None => lines.push(format!("hub {}: user {} added", new.name, user.name)),
            Some(before) if before.password_hash != user.password_hash => lines.push(format!(
                "hub {}: user {}: password changed (its sessions end)",
                new.name, user.name
            )),
            Some(before) if before.wireguard != user.wireguard => lines.push(format!(
                "hub {}: user {}: WireGuard key, preshared key or address changed (its WireGuard session ends)",
                new.name, user.name
            )),
            Some(before) if before != user => lines.push(format!(
                "hub {}: user {}: settings changed (for new sessions)",
                new.name, user.name
            )),
            Some(_) => {}
        }
    }
    for user in &old.users {
        if find(new, &user.name).is_none() {
            lines.push(format!(
                "hub {}: user {} removed (its sessions end)",
                new.name, user.name
            ));
        }
    }
    lines
}

/// Compares `old` (running) with `new`; `Err` lists every change that
/// needs a restart.
pub fn plan(old: &Config, new: &Config) -> Result<Plan, Vec<String>> {
    let mut refused = Vec::new();
    let restart = |what: &str| format!("{what} changed: takes effect only after a restart");
    if old.server != new.server {
        let (o, n) = (&old.server, &new.server);
        for (changed, what) in [
            (o.listen != n.listen, "[server] listen"),
            (o.state_dir != n.state_dir, "[server] state_dir"),
            (o.admin_socket != n.admin_socket, "[server] admin_socket"),
            (o.metrics != n.metrics, "[server] metrics"),
            (o.limits != n.limits, "[server.limits]"),
            (
                o.login_throttle != n.login_throttle,
                "[server.login_throttle]",
            ),
            (
                o.udp_acceleration != n.udp_acceleration,
                "[server] udp_acceleration",
            ),
        ] {
            if changed {
                refused.push(restart(what));
            }
        }
    }

    let mut plan = Plan::default();
    for new_hub in &new.hubs {
        let Some(old_hub) = old.hub(&new_hub.name) else {
            plan.add_hubs.push(new_hub.clone());
            continue;
        };
        if old_hub.bridge != new_hub.bridge || old_hub.bridge_address != new_hub.bridge_address {
            refused.push(restart(&format!(
                "hub {}: bridge or bridge_address",
                new_hub.name
            )));
        }
        if old_hub.wireguard != new_hub.wireguard {
            refused.push(restart(&format!("hub {}: [hub.wireguard]", new_hub.name)));
        }
        if old_hub.users != new_hub.users {
            plan.user_changes
                .extend(describe_user_changes(old_hub, new_hub));
            plan.users.push(new_hub.clone());
        }
        if old_hub.dhcp != new_hub.dhcp {
            plan.dhcp.push(new_hub.clone());
        }
    }
    for old_hub in &old.hubs {
        if new.hub(&old_hub.name).is_none() {
            plan.remove_hubs.push(old_hub.name.clone());
        }
    }
    // A new hub may reuse the bridge of one being removed only after it is
    // gone, which the apply order (add first) cannot promise.
    for added in &plan.add_hubs {
        if old
            .hubs
            .iter()
            .any(|h| h.bridge == added.bridge && new.hub(&h.name).is_none())
        {
            refused.push(restart(&format!(
                "hub {}: bridge {} moves from a removed hub",
                added.name, added.bridge
            )));
        }
    }

    match (&old.nat, &new.nat) {
        (None, None) => {}
        (Some(o), Some(n)) if o == n => {}
        (Some(o), Some(n)) => {
            if o.uplink != n.uplink || o.inside != n.inside {
                refused.push(restart("[nat] uplink or inside"));
            } else if o.mode != n.mode {
                refused.push(restart("[nat] mode (programs are attached once)"));
            } else if o.limits.max_flows != n.limits.max_flows {
                refused.push(restart("[nat.limits] max_flows (map sizes)"));
            } else {
                plan.nat = Some(n.clone());
            }
        }
        (None, Some(_)) => refused.push(restart("[nat] added")),
        (Some(_), None) => refused.push(restart("[nat] removed")),
    }

    if refused.is_empty() {
        Ok(plan)
    } else {
        Err(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        match Config::from_str_with_origin(text, "test.toml") {
            Ok(c) => c,
            Err(e) => panic!("test config invalid: {e}"),
        }
    }

    const BASE: &str = r#"
[server]
listen = ["0.0.0.0:443"]

[[hub]]
name = "mikalab"
bridge = "tap_00"
bridge_address = "192.168.30.1/24"

[hub.dhcp]
range = "192.168.30.10-192.168.30.200"

[[hub.user]]
name = "tsumura"
password = "one"

[nat]
uplink = "eth0"

[[nat.snat]]
source = "10.0.0.0/16"
to = "masquerade"
"#;

    /// A device's new key is a user change (its WireGuard session ends);
    /// a new `[hub.wireguard]` needs a restart.
    #[test]
    fn wireguard_keys_reload_and_endpoints_restart() {
        let with_endpoint = BASE.replace(
            "[[hub.user]]",
            "[hub.wireguard]\nlisten = \"0.0.0.0:51820\"\n\n[[hub.user]]\nname = \"phone\"\n\
             wireguard_public_key = \"xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\"\n\n[[hub.user]]",
        );
        let new_key = with_endpoint.replace(
            "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
            "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
        );
        let plan = plan(&config(&with_endpoint), &config(&new_key)).expect("reloadable");
        assert_eq!(
            plan.describe(),
            vec![
                "hub mikalab: user phone: WireGuard key, preshared key or address changed (its WireGuard session ends)"
            ]
        );
        let refused = plan_refusal(&config(BASE), &config(&with_endpoint));
        assert!(
            refused
                .iter()
                .any(|r| r.contains("hub mikalab: [hub.wireguard] changed")),
            "{refused:?}"
        );
    }

    fn plan_refusal(old: &Config, new: &Config) -> Vec<String> {
        match plan(old, new) {
            Ok(p) => panic!("expected a refusal, got {p:?}"),
            Err(reasons) => reasons,
        }
    }

    #[test]
    fn same_config_is_an_empty_plan() {
        let plan = plan(&config(BASE), &config(BASE)).expect("reloadable");
        assert_eq!(plan, Plan::default());
        assert!(plan.describe().is_empty());
    }

    #[test]
    fn users_dhcp_nat_rules_and_hubs_are_reloadable() {
        let new = BASE
            .replace("password = \"one\"", "password = \"two\"")
            .replace("192.168.30.200", "192.168.30.100")
            .replace("\"10.0.0.0/16\"", "\"10.1.0.0/16\"")
            + "\n[[hub]]\nname = \"second\"\nbridge = \"tap_01\"\nbridge_address = \"192.168.31.1/24\"\n";
        let plan = plan(&config(BASE), &config(&new)).expect("reloadable");
        assert_eq!(plan.users.len(), 1);
        assert_eq!(plan.dhcp.len(), 1);
        assert!(plan.nat.is_some());
        assert_eq!(plan.add_hubs.len(), 1);
        assert!(plan.remove_hubs.is_empty());
        assert_eq!(plan.describe().len(), 4);
        let back = plan_back(&new);
        assert_eq!(back.remove_hubs, vec!["second".to_owned()]);
    }

    #[test]
    fn user_changes_are_named_one_per_line() {
        let new = BASE.replace(
            "password = \"one\"",
            "password = \"two\"\n\n[[hub.user]]\nname = \"bob\"\npassword = \"three\"",
        );
        let plan = plan(&config(BASE), &config(&new)).expect("reloadable");
        assert_eq!(
            plan.describe(),
            [
                "hub mikalab: user tsumura: password changed (its sessions end)",
                "hub mikalab: user bob added",
            ]
        );
        let back = plan_back(&new);
        assert_eq!(
            back.describe(),
            [
                "hub mikalab: user tsumura: password changed (its sessions end)",
                "hub mikalab: user bob removed (its sessions end)",
            ]
        );
    }

    fn plan_back(from: &str) -> Plan {
        plan(&config(from), &config(BASE)).expect("reloadable")
    }

    #[test]
    fn restart_only_changes_are_all_named() {
        let new = BASE
            .replace(
                "0.0.0.0:443\"]",
                "0.0.0.0:8443\"]\nudp_acceleration = false",
            )
            .replace("tap_00", "tap_09")
            .replace("uplink = \"eth0\"", "uplink = \"eth1\"");
        let reasons = plan(&config(BASE), &config(&new)).expect_err("needs a restart");
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("listen")));
        assert!(reasons.iter().any(|r| r.contains("udp_acceleration")));
        assert!(reasons.iter().any(|r| r.contains("bridge")));
        assert!(reasons.iter().any(|r| r.contains("uplink")));
    }
}
