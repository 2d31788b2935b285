use proptest::prelude::*;

use super::*;

/// A real `vpn_server.config` from Debian's vpnserver 5.01 after HubCreate,
/// UserCreate/UserPasswordSet, a RADIUS user, SecureNatEnable, DhcpSet with
/// two pushed routes and two BridgeCreate (a physical interface and a tap).
/// BOM and CRLF as written; the private key is replaced by a placeholder.
pub(crate) const REAL: &[u8] = include_bytes!("../import_softether/testdata/vpn_server.config");

#[test]
fn parses_the_real_config() {
    let root = parse(REAL).expect("real config parses");
    assert_eq!(root.name, "root");
    let hub = root
        .folder("VirtualHUB")
        .and_then(|h| h.folder("mikalab"))
        .expect("hub MIKALAB, looked up case-insensitively");
    let user = hub
        .folder("SecurityAccountDatabase")
        .and_then(|d| d.folder("UserList"))
        .and_then(|l| l.folder("tsumura"))
        .expect("user");
    assert_eq!(user.uint("AuthType"), Some(1));
    assert_eq!(user.bytes("AuthPassword").map(<[u8]>::len), Some(20));
    let dhcp = hub
        .folder("SecureNAT")
        .and_then(|s| s.folder("VirtualDhcpServer"))
        .expect("dhcp");
    // `$20` in the file is the space SoftEther put after the comma.
    assert_eq!(
        dhcp.str("DhcpPushRoutes"),
        Some("10.0.0.0/255.255.0.0/192.168.30.1, 172.16.0.0/255.240.0.0/192.168.30.1")
    );
    assert_eq!(dhcp.str("DhcpDomainName"), Some(""));
    assert_eq!(dhcp.uint("DhcpExpireTimeSpan"), Some(7200));
    assert_eq!(dhcp.bool("DhcpEnabled"), Some(true));
    assert_eq!(hub.uint64("CreatedTime"), Some(1795841395531));
}

#[test]
fn unescape_reverses_cfg_escape() {
    assert_eq!(unescape("$").as_deref(), Ok(""));
    assert_eq!(unescape("a$20b").as_deref(), Ok("a b"));
    assert_eq!(unescape("$24$24").as_deref(), Ok("$$"));
    assert_eq!(unescape("日本").as_deref(), Ok("日本"));
    assert!(unescape("$2").is_err());
    assert!(unescape("$zz").is_err());
    assert!(unescape("$FF").is_err(), "a lone 0xFF byte is not UTF-8");
}

#[test]
fn errors_name_the_line() {
    let e = |text: &str| parse(text.as_bytes()).expect_err(text);
    assert_eq!(
        e("declare root\r\n{\r\n").kind,
        CfgErrorKind::Unclosed("root".into())
    );
    assert_eq!(e("declare root\n{\n}\n}\n").line, 4);
    assert_eq!(
        e("declare root\n{\n\tuint Port x\n}\n"),
        CfgError {
            line: 3,
            kind: CfgErrorKind::BadValue("x".into(), "uint (0 to 4294967295)")
        }
    );
    assert_eq!(
        e("declare root\n{\n\tfloat X 1\n}\n").kind,
        CfgErrorKind::UnknownType("float".into())
    );
    assert_eq!(e("declare other\n{\n}\n").kind, CfgErrorKind::NoRoot);
    assert_eq!(
        e("declare root\nuint X 1\n").kind,
        CfgErrorKind::NoOpenBrace("root".into())
    );
    assert_eq!(e("uint X 1\n").kind, CfgErrorKind::ItemOutsideFolder);
    assert_eq!(e("SEVPN DB\0\0\0").kind, CfgErrorKind::Binary);
    assert_eq!(e("declare root\n{\n\tbyte K ab!=\n}\n").line, 3);
    let deep = "declare a\n{\n".repeat(MAX_DEPTH + 1);
    assert_eq!(e(&deep).kind, CfgErrorKind::TooDeep);
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u32>().prop_map(Value::Uint),
        any::<u64>().prop_map(Value::Uint64),
        any::<bool>().prop_map(Value::Bool),
        any::<String>().prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
    ]
}

fn folder() -> impl Strategy<Value = Folder> {
    let leaf = (
        any::<String>(),
        proptest::collection::vec((any::<String>(), value()), 0..4),
    )
        .prop_map(|(name, items)| Folder {
            name,
            items: items
                .into_iter()
                .map(|(name, value)| Item { name, value })
                .collect(),
            folders: Vec::new(),
        });
    leaf.prop_recursive(4, 24, 4, |inner| {
        (
            any::<String>(),
            proptest::collection::vec((any::<String>(), value()), 0..4),
            proptest::collection::vec(inner, 0..4),
        )
            .prop_map(|(name, items, folders)| Folder {
                name,
                items: items
                    .into_iter()
                    .map(|(name, value)| Item { name, value })
                    .collect(),
                folders,
            })
    })
}

proptest! {
    #[test]
    fn escape_round_trips(s in any::<String>()) {
        let escaped = escape(&s);
        prop_assert!(!escaped.contains([' ', '\t', '\r', '\n']));
        prop_assert_eq!(unescape(&escaped), Ok(s));
    }

    /// parse(render(tree)) == tree, for any names and values.
    #[test]
    fn rendered_trees_parse_back(mut tree in folder()) {
        tree.name = "root".into();
        let text = render(&tree, &["Software Configuration File"]);
        prop_assert_eq!(parse(text.as_bytes()), Ok(tree));
    }

    /// Any prefix of the real file is an error or a tree, never a panic.
    #[test]
    fn truncation_never_panics(cut in 0..REAL.len()) {
        let _ = parse(&REAL[..cut]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&bytes);
    }

    /// Lines shuffled from the real file: structure errors, never panics.
    #[test]
    fn shuffled_lines_never_panic(seed in proptest::collection::vec(0usize..800, 0..200)) {
        let lines: Vec<&[u8]> = REAL.split(|b| *b == b'\n').collect();
        let mut text = Vec::new();
        for i in seed {
            text.extend_from_slice(lines[i % lines.len()]);
            text.push(b'\n');
        }
        let _ = parse(&text);
    }
}
