//! `ethergate user profile`: a SoftEther connection settings file (`.vpn`)
//! for one user — what `vpncmd AccountImport` and the Windows/macOS
//! clients' "Import VPN Connection Setting" read — with the server's
//! address, hub, user name and the server's certificate, which the client
//! then requires (`CheckServerCert`): a man in the middle with another
//! certificate is refused instead of being asked about.
//!
//! The file's layout (docs/softether-protocol.md, "Connection settings
//! files"): a `root` folder with the account's flags and `ServerCert`
//! (DER), a `ClientAuth` folder (auth type 1 = password, the user name,
//! and the stored password form only when asked for) and a `ClientOption`
//! folder with the connection settings.

use std::path::PathBuf;

use anyhow::anyhow;
use ethergate_config::Config;

use crate::{
    Failure, check,
    softether_cfg::{self, Folder, Item, Value},
};

/// SoftEther's `CLIENT_AUTHTYPE_PASSWORD`: the client proves knowledge of
/// `SHA0(password ‖ UPPER(name))`, which is what it stores.
const AUTH_TYPE_PASSWORD: u32 = 1;

/// `NumRetry` meaning "retry forever".
const RETRY_FOREVER: u32 = u32::MAX;

#[derive(clap::Args)]
pub struct ProfileArgs {
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    hub: String,
    name: String,
    /// The address clients reach this server at, HOST[:PORT] (default port:
    /// the first `listen` port). Needed when `listen` is a wildcard.
    #[arg(long)]
    server: Option<String>,
    /// Include the stored password form (the same hash the config holds),
    /// so the client connects without asking. Treat the file as a password.
    #[arg(long)]
    with_password: bool,
    /// The client's virtual NIC the account uses (the Windows client's
    /// first NIC is "VPN").
    #[arg(long, default_value = "VPN")]
    nic: String,
}

pub fn run(args: &ProfileArgs) -> Result<(), Failure> {
    let mut config = check::load(&args.config)?;
    config
        .resolve_secret_files(false)
        .map_err(|e| Failure::User(anyhow!("{e}")))?;
    let hub = config
        .hub(&args.hub)
        .ok_or_else(|| Failure::User(anyhow!("no hub named {:?} in the config", args.hub)))?;
    let user = hub
        .users
        .iter()
        .find(|u| u.name.eq_ignore_ascii_case(&args.name))
        .ok_or_else(|| Failure::User(anyhow!("hub {:?} has no user {:?}", hub.name, args.name)))?;
    let (host, port) = server_address(&config, args.server.as_deref())?;
    let cert_path = match &config.server.tls {
        Some(files) => files.cert.clone(),
        None => ethergate_server::tls::generated_cert_path(&config.server.state_dir),
    };
    if !cert_path.exists() && config.server.tls.is_none() {
        return Err(Failure::User(anyhow!(
            "{} does not exist yet: serve generates the certificate at its first start; start \
             it once, then run this again",
            cert_path.display()
        )));
    }
    let cert = ethergate_server::tls::leaf_certificate(&cert_path)
        .map_err(|e| Failure::User(anyhow!("{e}")))?;
    if !is_rsa(&cert) {
        return Err(Failure::User(anyhow!(
            "{} is not an RSA certificate: SoftEther clients pin only RSA (1024 or 2048 bit) \
             server certificates and refuse to import another kind (error 77). Configure an \
             RSA certificate, or remove a generated tls-cert.pem and tls-key.pem from \
             state_dir and restart serve to get an RSA 2048 one (clients that pinned the old \
             one import the new profile)",
            cert_path.display()
        )));
    }
    let password = if args.with_password {
        if !user.can_log_in() {
            return Err(Failure::User(anyhow!(
                "user {:?} has no password yet (its password file is generated at serve's \
                 first start)",
                user.name
            )));
        }
        Some(user.password_hash.as_bytes().to_vec())
    } else {
        None
    };
    let account = Account {
        // No spaces: vpncmd users type it as one argument.
        name: format!("{}@{host}", hub.name),
        host,
        port,
        hub: hub.name.clone(),
        user: user.name.clone(),
        hashed_password: password,
        server_cert: cert.to_vec(),
        nic: args.nic.clone(),
    };
    print!("{}", account.render());
    Ok(())
}

/// The DER encoding of the rsaEncryption algorithm identifier's OID
/// (1.2.840.113549.1.1.1), which only an RSA key's SubjectPublicKeyInfo
/// holds (RSA signatures use other arcs of the same branch).
const RSA_ENCRYPTION_OID: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

fn is_rsa(cert_der: &[u8]) -> bool {
    cert_der
        .windows(RSA_ENCRYPTION_OID.len())
        .any(|w| w == RSA_ENCRYPTION_OID)
}

/// HOST and PORT from `--server`, else from the first listen address.
fn server_address(config: &Config, given: Option<&str>) -> Result<(String, u16), Failure> {
    let default_port = config.server.listen.first().map_or(443, |a| a.port());
    let Some(given) = given else {
        return match config.server.listen.first() {
            Some(addr) if !addr.ip().is_unspecified() => Ok((addr.ip().to_string(), addr.port())),
            _ => Err(Failure::User(anyhow!(
                "give --server HOST[:PORT]: the name or address your users reach this server at \
                 (the config listens on every address)"
            ))),
        };
    };
    parse_host_port(given, default_port)
        .ok_or_else(|| Failure::User(anyhow!("--server {given:?}: expected HOST or HOST:PORT")))
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
fn parse_host_port(text: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => default_port,
            _ => after.strip_prefix(':')?.parse().ok()?,
        };
        return (!host.is_empty()).then(|| (host.to_owned(), port));
    }
    match text.rsplit_once(':') {
        // More than one colon: a bare IPv6 address.
        Some((host, _)) if host.contains(':') => Some((text.to_owned(), default_port)),
        Some((host, port)) if !host.is_empty() => Some((host.to_owned(), port.parse().ok()?)),
        Some(_) => None,
        None if !text.is_empty() => Some((text.to_owned(), default_port)),
        None => None,
    }
}

/// One client account, as SoftEther's client stores it.
struct Account {
    name: String,
    host: String,
    port: u16,
    hub: String,
    user: String,
    hashed_password: Option<Vec<u8>>,
    server_cert: Vec<u8>,
    nic: String,
}

impl Account {
    fn render(&self) -> String {
        let item = |name: &str, value: Value| Item {
            name: name.to_owned(),
            value,
        };
        let text = |s: &str| Value::Str(s.to_owned());
        let mut auth = vec![
            item("AuthType", Value::Uint(AUTH_TYPE_PASSWORD)),
            item("Username", text(&self.user)),
        ];
        if let Some(hash) = &self.hashed_password {
            auth.push(item("HashedPassword", Value::Bytes(hash.clone())));
        }
        let option = vec![
            item("AccountName", text(&self.name)),
            item("Hostname", text(&self.host)),
            item("Port", Value::Uint(u32::from(self.port))),
            item("PortUDP", Value::Uint(0)),
            item("ProxyType", Value::Uint(0)),
            item("ProxyName", text("")),
            item("ProxyPort", Value::Uint(0)),
            item("ProxyUsername", text("")),
            item("CustomHttpHeader", text("")),
            item("NumRetry", Value::Uint(RETRY_FOREVER)),
            item("RetryInterval", Value::Uint(15)),
            item("HubName", text(&self.hub)),
            // SoftEther's default for a new account; raise it in the client
            // for bulk transfers (the hub's max_connections_per_session caps it).
            item("MaxConnection", Value::Uint(1)),
            item("UseEncrypt", Value::Bool(true)),
            item("UseCompress", Value::Bool(false)),
            item("HalfConnection", Value::Bool(false)),
            item("NoRoutingTracking", Value::Bool(false)),
            item("DeviceName", text(&self.nic)),
            item("AdditionalConnectionInterval", Value::Uint(1)),
            item("HideStatusWindow", Value::Bool(false)),
            item("HideNicInfoWindow", Value::Bool(false)),
            item("ConnectionDisconnectSpan", Value::Uint(0)),
            item("RequireMonitorMode", Value::Bool(false)),
            item("RequireBridgeRoutingMode", Value::Bool(false)),
            item("DisableQoS", Value::Bool(false)),
            // ethergate speaks TCP only: no UDP acceleration to try.
            item("NoUdpAcceleration", Value::Bool(true)),
        ];
        let root = Folder {
            name: "root".to_owned(),
            items: vec![
                item("StartupAccount", Value::Bool(false)),
                item("CheckServerCert", Value::Bool(true)),
                item("RetryOnServerCert", Value::Bool(false)),
                item("CreateDateTime", Value::Uint64(0)),
                item("UpdateDateTime", Value::Uint64(0)),
                item("LastConnectDateTime", Value::Uint64(0)),
                item("ServerCert", Value::Bytes(self.server_cert.clone())),
            ],
            folders: vec![
                Folder {
                    name: "ClientOption".to_owned(),
                    items: option,
                    folders: Vec::new(),
                },
                Folder {
                    name: "ClientAuth".to_owned(),
                    items: auth,
                    folders: Vec::new(),
                },
            ],
        };
        softether_cfg::render(
            &root,
            &[
                "VPN Client VPN Connection Setting File",
                "",
                "Written by ethergate user profile. Import it with the VPN Client Manager",
                "(Import VPN Connection Setting) or vpncmd AccountImport.",
                "",
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(password: Option<Vec<u8>>) -> Account {
        Account {
            name: "mikalab@vpn.example.com".into(),
            host: "vpn.example.com".into(),
            port: 443,
            hub: "mikalab".into(),
            user: "tsumura".into(),
            hashed_password: password,
            server_cert: vec![0x30, 0x82, 1, 2, 3],
            nic: "VPN".into(),
        }
    }

    #[test]
    fn the_profile_reads_back_with_every_setting() {
        let text = account(Some(vec![7; 20])).render();
        assert!(text.starts_with("\u{feff}# VPN Client VPN Connection Setting File\r\n"));
        let root = softether_cfg::parse(text.as_bytes()).expect("parses");
        assert_eq!(root.value("CheckServerCert"), Some(&Value::Bool(true)));
        assert_eq!(
            root.value("ServerCert"),
            Some(&Value::Bytes(vec![0x30, 0x82, 1, 2, 3]))
        );
        let option = root.folder("ClientOption").expect("ClientOption");
        assert_eq!(option.str("Hostname"), Some("vpn.example.com"));
        assert_eq!(option.str("HubName"), Some("mikalab"));
        assert_eq!(option.str("AccountName"), Some("mikalab@vpn.example.com"));
        assert_eq!(option.uint("Port"), Some(443));
        let auth = root.folder("ClientAuth").expect("ClientAuth");
        assert_eq!(auth.uint("AuthType"), Some(1));
        assert_eq!(auth.str("Username"), Some("tsumura"));
        assert_eq!(
            auth.value("HashedPassword"),
            Some(&Value::Bytes(vec![7; 20]))
        );
    }

    #[test]
    fn without_with_password_there_is_no_password() {
        let text = account(None).render();
        let root = softether_cfg::parse(text.as_bytes()).expect("parses");
        let auth = root.folder("ClientAuth").expect("ClientAuth");
        assert_eq!(auth.value("HashedPassword"), None);
    }

    #[test]
    fn server_addresses() {
        assert_eq!(
            parse_host_port("vpn.example.com", 443),
            Some(("vpn.example.com".into(), 443))
        );
        assert_eq!(
            parse_host_port("vpn.example.com:992", 443),
            Some(("vpn.example.com".into(), 992))
        );
        assert_eq!(
            parse_host_port("[2001:db8::1]:5555", 443),
            Some(("2001:db8::1".into(), 5555))
        );
        assert_eq!(
            parse_host_port("[2001:db8::1]", 443),
            Some(("2001:db8::1".into(), 443))
        );
        assert_eq!(
            parse_host_port("2001:db8::1", 443),
            Some(("2001:db8::1".into(), 443))
        );
        assert_eq!(parse_host_port("host:notaport", 443), None);
        assert_eq!(parse_host_port(":443", 443), None);
        assert_eq!(parse_host_port("", 443), None);
    }
}
