//! `[[hub]]` and `[[hub.user]]`: names, bridges, subnets, credentials.

use super::*;

// ----- [[hub]] -----

#[test]
fn hub_missing_keys_point_at_the_header() {
    assert_eq!(
        errors("[[hub]]\n\n[[hub]]\nname = \"a\"\n"),
        vec![
            "t.toml:1: hub[1]: missing name; add e.g. name = \"mikalab\"",
            "t.toml:1: hub[1]: missing bridge; add e.g. bridge = \"tap_00\"",
            "t.toml:1: hub[1]: missing bridge_address; add e.g. bridge_address = \
             \"192.168.30.1/24\"",
            "t.toml:3: hub \"a\": missing bridge; add e.g. bridge = \"tap_00\"",
            "t.toml:3: hub \"a\": missing bridge_address; add e.g. bridge_address = \
             \"192.168.30.1/24\"",
        ]
    );
}

#[test]
fn hub_name_bridge_and_address_rules() {
    let text = r#"[[hub]]
name = "bad/name"
bridge = "tap_with_a_long_name"
bridge_address = "192.168.30.0/24"
[[hub]]
name = "b"
bridge = "eth0:1"
bridge_address = "192.168.31.1/31"
[[hub]]
name = "c"
bridge = "tap_02"
bridge_address = "192.168.32.1"
"#;
    assert_eq!(
        errors(text),
        vec![
            "t.toml:2: hub[1]: name \"bad/name\" contains '/'; hub names use printable ASCII \
             without \\ / : * ? \" < > |",
            "t.toml:3: hub[1]: bridge \"tap_with_a_long_name\" is 20 bytes long; Linux allows \
             at most 15",
            "t.toml:4: hub[1]: bridge_address \"192.168.30.0/24\" is the subnet's network or \
             broadcast address; give the tap's own address, e.g. 192.168.30.1/24",
            "t.toml:7: hub \"b\": bridge \"eth0:1\" contains ':'; Linux interface names cannot \
             contain '/', ':' or whitespace",
            "t.toml:8: hub \"b\": bridge_address \"192.168.31.1/31\" /31 leaves no addresses \
             for VPN clients; use a prefix of /30 or shorter",
            "t.toml:12: hub \"c\": bridge_address \"192.168.32.1\" missing \"/prefix\" (write \
             it like 10.0.0.0/16)",
        ]
    );
}

#[test]
fn duplicate_hubs_bridges_and_subnets() {
    let text = format!(
        r#"{HUB}[[hub]]
name = "MikaLab"
bridge = "tap_00"
bridge_address = "192.168.30.129/25"
[[hub.user]]
name = "x"
password_hash = "CQQO0Aphs7bswwIudHwLQE8Mej4="
"#
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:9: hub \"MikaLab\" is defined twice (hub names are case-insensitive; the \
             first is \"mikalab\"); rename or merge them",
            "t.toml:10: hub \"MikaLab\": bridge tap_00 is already the bridge of hub \
             \"mikalab\"; each hub needs its own tap",
            "t.toml:11: hub \"MikaLab\": bridge_address 192.168.30.129/25 overlaps hub \
             \"mikalab\"'s 192.168.30.1/24; give each hub its own subnet",
        ]
    );
}

#[test]
fn hub_lookup_is_case_insensitive() {
    let c = valid(HUB);
    assert!(c.hub("MIKALAB").is_some());
    assert!(c.hub("other").is_none());
    let hub = c.hub("mikalab").expect("hub");
    assert!(hub.user("TsUmUrA").is_some());
    assert!(hub.dhcp.is_none());
}

#[test]
fn hub_without_users_is_a_warning() {
    let c = valid("[[hub]]\nname = \"a\"\nbridge = \"tap_00\"\nbridge_address = \"10.9.0.1/24\"\n");
    assert_eq!(
        warnings(&c),
        vec!["t.toml:1: hub \"a\": has no [[hub.user]]; nobody can log in to it"]
    );
}

// ----- [[hub.user]] -----

#[test]
fn user_credential_rules() {
    let text = format!(
        r#"{HUB}[[hub.user]]
name = "both"
password_hash = "CQQO0Aphs7bswwIudHwLQE8Mej4="
password = "x"
[[hub.user]]
name = "neither"
[[hub.user]]
name = "short"
password_hash = "Zm9vYmFy"
[[hub.user]]
name = "garbage"
password_hash = "not base64!"
[[hub.user]]
name = "TSUMURA"
password = "another"
[[hub.user]]
name = "SecureNAT"
password_hash = "CQQO0Aphs7bswwIudHwLQE8Mej4="
[[hub.user]]
password = "x"
"#
    );
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:9: hub \"mikalab\": user \"both\": give exactly one of password_hash, \
             password_file and password",
            "t.toml:12: hub \"mikalab\": user \"neither\": has no credential; add \
             password_hash = \"…\" (from `ethergate user hash --user neither`), \
             password_file = \"PATH\" (generated at the first start when missing), or \
             wireguard_public_key",
            "t.toml:16: hub \"mikalab\": user \"short\": password_hash decodes to 6 bytes; a \
             SoftEther password hash is 20 bytes (28 base64 characters)",
            "t.toml:19: hub \"mikalab\": user \"garbage\": password_hash is not base64: \
             base64 length 11 is not a multiple of 4",
            "t.toml:21: hub \"mikalab\": user \"TSUMURA\" is defined twice (user names are \
             case-insensitive; the first is \"tsumura\"); remove or rename one",
            "t.toml:24: hub \"mikalab\": user name \"SecureNAT\" is reserved by SoftEther for \
             its internal sessions",
            "t.toml:26: hub \"mikalab\": user[8]: missing name; add e.g. name = \"tsumura\"",
        ]
    );
}

#[test]
fn plaintext_password_is_hashed_and_warned_about() {
    let text = format!("{HUB}[[hub.user]]\nname = \"alice\"\npassword = \"open sesame\"\n");
    let c = valid(&text);
    let alice = c.hubs[0].user("alice").expect("alice");
    assert!(alice.from_plaintext);
    assert_eq!(
        alice.password_hash,
        crate::PasswordHash::from_password("alice", "open sesame")
    );
    assert_eq!(
        warnings(&c),
        vec![
            "t.toml:10: hub \"mikalab\": user \"alice\": password is stored in plain text; \
             replace it with password_hash from `ethergate user hash --user alice`"
        ]
    );
}

#[test]
fn published_credentials_are_refused() {
    for credential in [
        // The old demo user's password and hash, and the docs' example hash.
        "password = \"mikalab-demo\"",
        "password_hash = \"BxVdzhK24Mnb+MQaBW7pHY1CMKs=\"",
        "password_hash = \"DngtrNt4kY1zAHmZ2oG8QIkG1FE=\"",
    ] {
        let text = format!("{HUB}[[hub.user]]\nname = \"bob\"\n{credential}\n");
        let errors = errors(&text);
        assert_eq!(errors.len(), 1, "{credential}: {errors:?}");
        assert!(
            errors[0].contains("anyone could log in"),
            "{credential}: {errors:?}"
        );
    }
    let text =
        format!("{HUB}[[hub.user]]\nname = \"bob\"\npassword_file = \"t.pw\"\npassword = \"x\"\n");
    assert_eq!(
        errors(&text),
        vec![
            "t.toml:9: hub \"mikalab\": user \"bob\": give exactly one of password_hash, \
             password_file and password"
        ]
    );
}
