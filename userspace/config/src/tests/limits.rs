//! `[hub.limits]` and the per-user overrides on `[[hub.user]]`.

use super::*;

#[test]
fn defaults_apply_without_limits() {
    let config = valid(HUB);
    let hub = &config.hubs[0];
    assert_eq!(hub.limits, SessionLimits::default());
    assert_eq!(hub.users[0].limits, SessionLimits::default());
    let d = SessionLimits::default();
    assert_eq!(d.max_sessions_per_user, DEFAULT_MAX_SESSIONS_PER_USER);
    assert_eq!(d.max_connections_per_session, MAX_CONNECTIONS_PER_SESSION);
    assert_eq!(d.macs_per_session(), Some(DEFAULT_MAX_MACS_PER_SESSION));
    assert_eq!(d.leases_per_session(), Some(DEFAULT_MAX_LEASES_PER_SESSION));
}

#[test]
fn hub_limits_are_inherited_and_users_override_them() {
    let text = format!(
        r#"{HUB_HEAD}[hub.limits]
max_sessions_per_user = 2
max_connections_per_session = 8
max_macs_per_session = 0
{TSUMURA}[[hub.user]]
name = "bridge-office"
password_hash = "CQQO0Aphs7bswwIudHwLQE8Mej4="
max_macs_per_session = 256
max_leases_per_session = 0
max_sessions_per_user = 1
"#
    );
    let config = valid(&text);
    let hub = &config.hubs[0];
    let inherited = SessionLimits {
        max_sessions_per_user: 2,
        max_connections_per_session: 8,
        max_macs_per_session: 0,
        max_leases_per_session: DEFAULT_MAX_LEASES_PER_SESSION,
    };
    assert_eq!(hub.limits, inherited);
    assert_eq!(hub.user("tsumura").expect("user").limits, inherited);
    assert_eq!(inherited.macs_per_session(), None, "0 is no limit");
    let office = hub.user("BRIDGE-OFFICE").expect("user").limits;
    assert_eq!(
        office,
        SessionLimits {
            max_sessions_per_user: 1,
            max_connections_per_session: 8,
            max_macs_per_session: 256,
            max_leases_per_session: 0,
        }
    );
    assert_eq!(office.leases_per_session(), None);
    assert_eq!(office.sessions_per_user(), Some(1));
}

#[test]
fn out_of_range_limits_are_errors_with_their_lines() {
    let text = format!(
        r#"{HUB}max_macs_per_session = 2
max_connections_per_session = 33
[hub.limits]
max_sessions_per_user = -1
max_connections_per_session = 0
max_macs_per_session = 65537
max_leases_per_session = "4"
"#
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:8: hub \"mikalab\": user \"tsumura\": max_macs_per_session = 2 is out of \
             range; use 0 (no limit) or 3 to 65536 (default 16); a host needs a few, SoftEther \
             raises MaxMac below 3 to 3",
            "t.toml:9: hub \"mikalab\": user \"tsumura\": max_connections_per_session = 33 is \
             out of range; use 1 to 32 (SoftEther's MaxConnection ceiling, the default)",
            "t.toml:11: hub \"mikalab\": limits.max_sessions_per_user = -1 is out of range; use \
             0 (no limit) to 65536 (default 16)",
            "t.toml:12: hub \"mikalab\": limits.max_connections_per_session = 0 is out of \
             range; use 1 to 32 (SoftEther's MaxConnection ceiling, the default)",
            "t.toml:13: hub \"mikalab\": limits.max_macs_per_session = 65537 is out of range; \
             use 0 (no limit) or 3 to 65536 (default 16); a host needs a few, SoftEther raises \
             MaxMac below 3 to 3",
            "t.toml:14: hub \"mikalab\": limits.max_leases_per_session must be an integer, not \
             a string",
        ]
    );
}

#[test]
fn unknown_limit_keys_are_errors() {
    let text = format!("{HUB}max_mac = 4\n[hub.limits]\nmax_ip = 4\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "t.toml:8: hub \"mikalab\": user \"tsumura\": unknown key \"max_mac\"; known keys \
             are name, password_hash, password, password_file, wireguard_public_key, \
             wireguard_address, wireguard_preshared_key_file, max_sessions_per_user,"
        ),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].starts_with(
            "t.toml:10: hub \"mikalab\": unknown key \"max_ip\" in [hub.limits]; known keys are \
             max_sessions_per_user,"
        ),
        "{}",
        errs[1]
    );
}

#[test]
fn limits_must_be_a_table() {
    let text = format!("{HUB_HEAD}limits = 4\n{TSUMURA}");
    assert_eq!(
        errors(&text),
        vec!["t.toml:5: hub \"mikalab\": limits must be a table, not an integer"]
    );
}

#[test]
fn a_changed_limit_changes_the_users() {
    // Reload compares users to decide what to apply: a changed hub-wide
    // limit must show up in them.
    let before = valid(HUB);
    let after = valid(&format!("{HUB}[hub.limits]\nmax_macs_per_session = 64\n"));
    assert_ne!(before.hubs[0].users, after.hubs[0].users);
    assert_eq!(after.hubs[0].users[0].limits.max_macs_per_session, 64);
}
