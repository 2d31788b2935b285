//! `[hub.wireguard]` and the users' WireGuard keys and addresses.

use super::*;

const KEY_A: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
const KEY_B: &str = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";

fn with_wireguard(users: &str) -> String {
    hub_with_dhcp(&format!(
        "range = \"192.168.30.10-192.168.30.200\"\n[hub.wireguard]\nlisten = \"0.0.0.0:51820\"\n{users}"
    ))
}

#[test]
fn a_wireguard_only_user_cannot_log_in_with_a_password() {
    let c = valid(&with_wireguard(&format!(
        "[[hub.user]]\nname = \"phone\"\nwireguard_public_key = \"{KEY_A}\"\n"
    )));
    let hub = &c.hubs[0];
    let wg = hub.wireguard.as_ref().expect("[hub.wireguard]");
    assert_eq!(wg.listen, "0.0.0.0:51820".parse().expect("addr"));
    let phone = hub.user("phone").expect("user");
    assert!(!phone.can_log_in(), "no password: no SoftEther login");
    assert!(hub.user("tsumura").expect("user").can_log_in());
    let peers = hub.wireguard_peers().expect("room");
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].public_key.to_base64(), KEY_A);
    let range = hub.dhcp.as_ref().expect("dhcp").range;
    assert!(range.contains(peers[0].address), "{}", peers[0].address);
}

#[test]
fn addresses_are_stable_and_distinct() {
    let two = with_wireguard(&format!(
        "[[hub.user]]\nname = \"phone\"\nwireguard_public_key = \"{KEY_A}\"\n\
         [[hub.user]]\nname = \"laptop\"\nwireguard_public_key = \"{KEY_B}\"\n\
         wireguard_address = \"192.168.30.250\"\n"
    ));
    let peers = valid(&two).hubs[0].wireguard_peers().expect("room");
    let phone = peers
        .iter()
        .find(|p| p.user == "phone")
        .expect("phone")
        .address;
    let laptop = peers
        .iter()
        .find(|p| p.user == "laptop")
        .expect("laptop")
        .address;
    assert_eq!(
        laptop,
        Ipv4Addr::new(192, 168, 30, 250),
        "fixed address kept"
    );
    assert_ne!(phone, laptop);
    // Removing the other user does not move the phone.
    let one = with_wireguard(&format!(
        "[[hub.user]]\nname = \"phone\"\nwireguard_public_key = \"{KEY_A}\"\n"
    ));
    assert_eq!(
        valid(&one).hubs[0]
            .wireguard_peer("PHONE")
            .expect("peer")
            .address,
        phone
    );
}

#[test]
fn wireguard_mistakes_are_errors_with_lines() {
    let text = with_wireguard(
        "[[hub.user]]\nname = \"a\"\nwireguard_public_key = \"short\"\n\
         [[hub.user]]\nname = \"c\"\nwireguard_address = \"192.168.30.5\"\n",
    );
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e.starts_with(
            "t.toml:14: hub \"mikalab\": user \"a\": wireguard_public_key is not base64"
        )),
        "{errs:#?}"
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    let tap_address = with_wireguard(&format!(
        "[[hub.user]]\nname = \"b\"\nwireguard_public_key = \"{KEY_A}\"\nwireguard_address = \"192.168.30.1\"\n"
    ));
    assert!(errors(&tap_address).iter().any(|e| {
        e.contains("user \"b\": wireguard_address 192.168.30.1 is the tap's own address")
    }),);
    assert!(
        errs.iter()
            .any(|e| e.contains("user \"c\": wireguard_address needs wireguard_public_key")),
        "{errs:#?}"
    );
    let same_key = with_wireguard(&format!(
        "[[hub.user]]\nname = \"a\"\nwireguard_public_key = \"{KEY_A}\"\n\
         [[hub.user]]\nname = \"b\"\nwireguard_public_key = \"{KEY_A}\"\n"
    ));
    assert!(
        errors(&same_key)
            .iter()
            .any(|e| e.contains("users \"a\" and \"b\" have the same wireguard_public_key")),
    );
    let bad_listen = hub_with_dhcp(
        "range = \"192.168.30.10-192.168.30.200\"\n[hub.wireguard]\nlisten = \"51820\"\n",
    );
    assert_eq!(
        errors(&bad_listen),
        vec![
            "t.toml:11: hub \"mikalab\": wireguard.listen \"51820\" is not an address with a port, \
             like \"0.0.0.0:443\" or \"[::]:443\""
        ]
    );
}

#[test]
fn a_key_without_an_endpoint_is_a_warning() {
    let text = format!("{HUB}[[hub.user]]\nname = \"phone\"\nwireguard_public_key = \"{KEY_A}\"\n");
    let c = valid(&text);
    assert!(
        warnings(&c)
            .iter()
            .any(|w| w.contains("has a WireGuard key but the hub has no [hub.wireguard]")),
        "{:?}",
        warnings(&c)
    );
}

#[test]
fn two_hubs_cannot_share_a_port() {
    let text = format!(
        "{}[[hub]]\nname = \"other\"\nbridge = \"tap_01\"\nbridge_address = \"192.168.31.1/24\"\n\
         [hub.wireguard]\nlisten = \"127.0.0.1:51820\"\n[[hub.user]]\nname = \"x\"\npassword_hash = \"CQQO0Aphs7bswwIudHwLQE8Mej4=\"\n",
        with_wireguard("")
    );
    assert!(
        errors(&text)
            .iter()
            .any(|e| e.contains("collides with hub \"mikalab\"'s 0.0.0.0:51820")),
    );
}

#[test]
fn a_preshared_key_file_is_read_or_generated_and_a_bad_one_refused() {
    let state = std::env::temp_dir().join(format!("eg-psk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let text = format!(
        "[server]\nstate_dir = \"{}\"\n{}",
        state.display(),
        with_wireguard(&format!(
            "[[hub.user]]\nname = \"phone\"\nwireguard_public_key = \"{KEY_A}\"\n\
             wireguard_preshared_key_file = \"phone.psk\"\n"
        ))
    );
    let peer = |c: &Config| c.hubs[0].wireguard_peer("phone").expect("peer");

    // check: the file does not exist yet; the peer's key is unread (the
    // endpoint leaves such a peer out).
    let mut checked = valid(&text);
    assert!(
        checked
            .resolve_secret_files(false)
            .expect("check")
            .is_empty()
    );
    assert_eq!(
        peer(&checked).preshared_key,
        PeerPresharedKey::Unread("phone.psk".into())
    );

    // serve: generated once, 0600, a key `wg` reads; then read back.
    let mut served = valid(&text);
    let generated = served.resolve_secret_files(true).expect("serve");
    let path = state.join("phone.psk");
    assert_eq!(generated.len(), 1);
    assert_eq!(generated[0].kind, SecretKind::PresharedKey);
    assert_eq!(generated[0].path, path);
    let written = std::fs::read_to_string(&path).expect("file");
    let key = PresharedKey::from_base64(&written).expect("a key");
    assert_eq!(written, format!("{}\n", key.to_base64()));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&path).expect("metadata").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        peer(&served).preshared_key,
        PeerPresharedKey::Key(key.clone())
    );
    let mut again = valid(&text);
    assert!(again.resolve_secret_files(true).expect("read").is_empty());
    assert_eq!(peer(&again).preshared_key, PeerPresharedKey::Key(key));
    assert_eq!(again, served, "the same key: a reload changes nothing");

    // A file that holds no key stops serve (and a reload) with its name.
    std::fs::write(&path, "not a key\n").expect("spoil it");
    let err = valid(&text)
        .resolve_secret_files(true)
        .expect_err("not a key")
        .to_string();
    assert!(
        err.contains("user \"phone\": wireguard_preshared_key_file")
            && err.contains("phone.psk: the key is not base64"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn a_preshared_key_file_needs_a_public_key_and_a_name() {
    let text = with_wireguard(&format!(
        "[[hub.user]]\nname = \"a\"\npassword_hash = \"CQQO0Aphs7bswwIudHwLQE8Mej4=\"\n\
         wireguard_preshared_key_file = \"a.psk\"\n\
         [[hub.user]]\nname = \"b\"\nwireguard_public_key = \"{KEY_A}\"\n\
         wireguard_preshared_key_file = \"\"\n"
    ));
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e
                .contains("user \"a\": wireguard_preshared_key_file needs wireguard_public_key")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("user \"b\": wireguard_preshared_key_file is empty")),
        "{errs:#?}"
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
}
