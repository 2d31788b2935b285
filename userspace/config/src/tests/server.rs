//! `[server]`: listeners, TLS files, paths, metrics.

use std::net::SocketAddr;

use super::*;

// ----- [server] -----

#[test]
fn server_listen_rules() {
    let text = r#"[server]
listen = [
  "0.0.0.0:443",
  "10.0.0.1:443",
  "0.0.0.0:0",
  "localhost:443",
  "[::]:443",
]
"#;
    assert_eq!(
        errors(text),
        vec![
            "t.toml:4: server.listen 10.0.0.1:443 conflicts with 0.0.0.0:443 on the same port; \
             keep one of them",
            "t.toml:5: server.listen \"0.0.0.0:0\" needs a port other than 0",
            "t.toml:6: server.listen \"localhost:443\" is not an address with a port, like \
             \"0.0.0.0:443\" or \"[::]:443\"",
        ]
    );
    assert_eq!(
        errors("[server]\nlisten = []\n"),
        vec!["t.toml:2: server.listen is empty; give at least one address, e.g. [\"0.0.0.0:443\"]"]
    );
    let c = valid("[server]\nlisten = [\"[::]:443\", \"0.0.0.0:443\"]\n");
    assert_eq!(c.server.listen.len(), 2);
}

#[test]
fn server_tls_paths_and_metrics() {
    assert_eq!(
        errors("[server]\ntls_cert = \"/etc/ethergate/cert.pem\"\n"),
        vec![
            "t.toml:2: server.tls_cert is set but tls_key is not; set both, or neither to use \
             a generated self-signed certificate"
        ]
    );
    assert_eq!(
        errors("[server]\ntls_key = \"/etc/k.pem\"\nstate_dir = \"var/lib\"\n"),
        vec![
            "t.toml:2: server.tls_key is set but tls_cert is not; set both, or neither to use \
             a generated self-signed certificate",
            "t.toml:3: server.state_dir \"var/lib\" must be an absolute path (starting with /)",
        ]
    );
    let c = valid(
        "[server]\ntls_cert = \"/etc/c.pem\"\ntls_key = \"/etc/k.pem\"\nmetrics = \"off\"\n\
         admin_socket = \"/tmp/a.sock\"\n",
    );
    assert_eq!(
        c.server.tls,
        Some(TlsFiles {
            cert: "/etc/c.pem".into(),
            key: "/etc/k.pem".into()
        })
    );
    assert_eq!(c.server.metrics, None);
    assert_eq!(
        c.server.admin_socket,
        std::path::PathBuf::from("/tmp/a.sock")
    );
    assert_eq!(
        errors("[server]\nmetrics = \"0.0.0.0:5555\"\n"),
        vec![
            "t.toml:2: server.metrics 0.0.0.0:5555 conflicts with listen address 0.0.0.0:5555; \
             move metrics to another port"
        ]
    );
    assert_eq!(
        errors("[server]\nmetrics = \"9464\"\n"),
        vec![
            "t.toml:2: server.metrics \"9464\" is not an address with a port, like \
             \"0.0.0.0:443\" or \"[::]:443\""
        ]
    );
    let c = valid("[server]\nmetrics = \"[::1]:9464\"\n");
    assert_eq!(
        c.server.metrics,
        Some("[::1]:9464".parse::<SocketAddr>().expect("addr"))
    );
}

#[test]
fn udp_acceleration_is_on_unless_turned_off() {
    assert!(valid("[server]\n").server.udp_acceleration);
    assert!(
        !valid("[server]\nudp_acceleration = false\n")
            .server
            .udp_acceleration
    );
    let wrong = errors("[server]\nudp_acceleration = \"no\"\n");
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    assert!(
        wrong[0].starts_with("t.toml:2: server.udp_acceleration")
            && wrong[0].contains("true or false"),
        "{wrong:?}"
    );
}
