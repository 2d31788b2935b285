//! `ethergate user wg-config` and `user add --wireguard`: what a phone or
//! laptop needs to join a hub with a stock WireGuard app — the device's
//! `[Interface]` (its tunnel address, the hub's DNS, and its private key
//! when we generated it) and the hub as its `[Peer]` (the hub's public key,
//! the preshared key when the user has one, where to reach the hub, and
//! AllowedIPs: the hub's subnet and the routes its DHCP server pushes, so
//! the tunnel is split exactly as for SoftEther clients) — as text or as a
//! QR code the app scans.

use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use anyhow::anyhow;
use ethergate_config::{Config, Hub, PasswordHash, PeerPresharedKey, SecretKind};
use ethergate_wireguard::{PresharedKey, PrivateKey, PublicKey};

use super::change::{self, UserTarget};
use crate::{Failure, check};

/// Keeps a phone's NAT mapping open so the hub can reach it.
const PERSISTENT_KEEPALIVE_SECS: u32 = 25;

#[derive(clap::Args)]
pub struct WgConfigArgs {
    #[command(flatten)]
    target: UserTarget,
    #[command(flatten)]
    output: OutputArgs,
    /// The device's private key (as `wg genkey` writes it), to include it
    /// as PrivateKey; it must belong to the user's configured public key.
    #[arg(long)]
    private_key_file: Option<PathBuf>,
}

/// Where the device reaches the hub, and how to show the config.
#[derive(clap::Args, Clone)]
pub struct OutputArgs {
    /// HOST:PORT the device reaches the hub at (default: the hub's
    /// wireguard.listen, which must then name an address).
    #[arg(long)]
    endpoint: Option<String>,
    /// Draw the config as a QR code for the WireGuard app to scan.
    #[arg(long)]
    qr: bool,
}

pub fn wg_config(args: &WgConfigArgs) -> Result<(), Failure> {
    let mut config = check::load(&args.target.config)?;
    config
        .resolve_secret_files(false)
        .map_err(|e| Failure::User(anyhow!("{e}")))?;
    let private = match &args.private_key_file {
        None => None,
        Some(path) => Some(crate::wireguard_key::load(path).map_err(Failure::User)?),
    };
    let text = render(&config, &args.target, private.as_ref(), &args.output)?;
    show(&text, args.output.qr);
    Ok(())
}

/// `user add --wireguard`: a key pair for the device, the user added with
/// its public key (and a password when a file is given) and, with
/// `preshared_key`, a new preshared key in a file of its own under
/// `state_dir`; the device's config is printed once: its private key is
/// not kept anywhere.
pub fn add(
    target: &UserTarget,
    password_file: Option<&Path>,
    preshared_key: bool,
    output: &OutputArgs,
) -> Result<(), Failure> {
    let hash = match password_file {
        Some(file) => {
            let password = super::password::new_password(Some(file), &target.name)?;
            Some(PasswordHash::from_password(&target.name, &password))
        }
        None => None,
    };
    let mut bytes = [0u8; 32];
    ethergate_server::system_random(&mut bytes);
    let private = PrivateKey::from_bytes(bytes);
    let public = private.public_key();
    // Refuse a duplicate or an unknown hub before writing a key file.
    change::dry_run(target, |e, _| {
        e.add_wireguard_user(&target.hub, &target.name, &public, None, None)
            .map(drop)
    })?;
    let psk_file = if preshared_key {
        Some(new_preshared_key_file(target)?)
    } else {
        None
    };
    let relative = psk_file.as_ref().map(|(name, _)| name.as_str());
    let edited = change::edit(&target.config, |e| {
        e.add_wireguard_user(&target.hub, &target.name, &public, hash.as_ref(), relative)
    });
    let (address, mut config) = match edited {
        Ok(done) => done,
        Err(e) => {
            if let Some((_, path)) = &psk_file {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    config
        .resolve_secret_files(false)
        .map_err(|e| Failure::Runtime(e.into()))?;
    println!(
        "{}: user {} added to hub {} with WireGuard address {address}",
        target.config.display(),
        target.name,
        target.hub
    );
    let text = render(&config, target, Some(&private), output)?;
    println!("the device's configuration (its private key is shown only now):\n");
    show(&text, output.qr);
    change::apply(&target.config, &config)
}

/// A new preshared key in a new file under the config's `state_dir`,
/// owned like that directory (serve runs as its owner) and readable by it
/// alone. Returns the name the config gives it (relative to `state_dir`)
/// and where it is. Never overwrites a file: a name in use (a removed
/// user's key, say) gets a number.
fn new_preshared_key_file(target: &UserTarget) -> Result<(String, PathBuf), Failure> {
    let config = check::load(&target.config)?;
    let state_dir = &config.server.state_dir;
    std::fs::create_dir_all(state_dir)
        .map_err(|e| Failure::Runtime(anyhow!("cannot create {}: {e}", state_dir.display())))?;
    let owner = {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(state_dir)
            .map_err(|e| Failure::Runtime(anyhow!("cannot stat {}: {e}", state_dir.display())))?;
        (meta.uid(), meta.gid())
    };
    let stem = format!(
        "wireguard-{}-{}",
        file_name_part(&target.hub),
        file_name_part(&target.name)
    );
    let key = ethergate_config::new_secret(SecretKind::PresharedKey)
        .map_err(|e| Failure::Runtime(anyhow!("cannot read /dev/urandom: {e}")))?;
    for n in 1..1000 {
        let name = match n {
            1 => format!("{stem}.psk"),
            n => format!("{stem}-{n}.psk"),
        };
        let path = state_dir.join(&name);
        // Created exclusively: an existing file is never touched.
        match ethergate_config::write_new_secret(&path, &key) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Failure::Runtime(anyhow!(
                    "cannot write {}: {e}",
                    path.display()
                )));
            }
        }
        if let Err(e) = std::os::unix::fs::chown(&path, Some(owner.0), Some(owner.1)) {
            let _ = std::fs::remove_file(&path);
            return Err(Failure::Runtime(anyhow!(
                "cannot give {} to {}'s owner: {e}",
                path.display(),
                state_dir.display()
            )));
        }
        return Ok((name, path));
    }
    Err(Failure::Runtime(anyhow!(
        "no free name for {stem}.psk in {}",
        state_dir.display()
    )))
}

/// A hub or user name as part of a file name: lower case, and anything but
/// letters, digits, `.`, `-` and `_` (SoftEther allows spaces, `#`, `&`,
/// …) as `_`.
fn file_name_part(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' | '-' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect()
}

fn show(text: &str, qr: bool) {
    if qr {
        match qr_code(text) {
            Ok(drawing) => print!("{drawing}"),
            Err(e) => eprintln!("cannot draw the QR code ({e}); the text follows"),
        }
    }
    print!("{text}");
}

fn render(
    config: &Config,
    target: &UserTarget,
    private: Option<&PrivateKey>,
    output: &OutputArgs,
) -> Result<String, Failure> {
    let hub = config
        .hub(&target.hub)
        .ok_or_else(|| Failure::User(anyhow!("no hub named {:?} in the config", target.hub)))?;
    let wg = hub.wireguard.as_ref().ok_or_else(|| {
        Failure::User(anyhow!(
            "hub {:?} has no [hub.wireguard]; add one (listen = \"0.0.0.0:51820\") first",
            hub.name
        ))
    })?;
    let peer = hub.wireguard_peer(&target.name).ok_or_else(|| {
        Failure::User(anyhow!(
            "user {:?} of hub {:?} has no wireguard_public_key",
            target.name,
            hub.name
        ))
    })?;
    if let Some(private) = private
        && private.public_key() != peer.public_key
    {
        return Err(Failure::User(anyhow!(
            "the private key does not belong to {:?}'s wireguard_public_key {}",
            peer.user,
            peer.public_key
        )));
    }
    let key_path = wg.key_path(&hub.name, &config.server.state_dir);
    let server_key = crate::wireguard_key::load_or_generate(&key_path).map_err(|e| {
        Failure::Runtime(
            e.context("the hub's WireGuard key (serve generates it at its first start)"),
        )
    })?;
    let endpoint = match &output.endpoint {
        Some(e) if e.contains(':') => e.clone(),
        Some(host) => format!("{host}:{}", wg.listen.port()),
        None if !wg.listen.ip().is_unspecified() => wg.listen.to_string(),
        None => {
            return Err(Failure::User(anyhow!(
                "give --endpoint HOST:PORT: the name or address devices reach this hub at (it \
                 listens on every address, port {})",
                wg.listen.port()
            )));
        }
    };
    let preshared_key = match &peer.preshared_key {
        PeerPresharedKey::None => None,
        PeerPresharedKey::Key(key) => Some(key),
        PeerPresharedKey::Unread(path) => {
            return Err(Failure::User(anyhow!(
                "user {:?}'s wireguard_preshared_key_file {} does not exist yet; serve writes \
                 it at its start or on `ethergate reload`",
                peer.user,
                ethergate_config::resolve_secret_path(&config.server.state_dir, path).display()
            )));
        }
    };
    Ok(device_config(
        hub,
        &peer.user,
        peer.address,
        private,
        &Server {
            public_key: server_key.public_key(),
            preshared_key,
            endpoint: &endpoint,
        },
    ))
}

/// The hub as the device's `[Peer]`.
struct Server<'a> {
    public_key: PublicKey,
    preshared_key: Option<&'a PresharedKey>,
    endpoint: &'a str,
}

/// The wg-quick format every WireGuard app imports.
fn device_config(
    hub: &Hub,
    user: &str,
    address: Ipv4Addr,
    private: Option<&PrivateKey>,
    server: &Server<'_>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# ethergate hub {}, user {user}", hub.name);
    let _ = writeln!(out, "[Interface]");
    if let Some(private) = private {
        let _ = writeln!(out, "PrivateKey = {}", private.to_base64());
    }
    let _ = writeln!(out, "Address = {address}/32");
    let dns = hub
        .dhcp
        .as_ref()
        .map(|d| d.dns.as_slice())
        .unwrap_or_default();
    if !dns.is_empty() {
        let list: Vec<String> = dns.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "DNS = {}", list.join(", "));
    }
    let _ = writeln!(out, "\n[Peer]");
    let _ = writeln!(out, "PublicKey = {}", server.public_key);
    if let Some(key) = server.preshared_key {
        let _ = writeln!(out, "PresharedKey = {}", key.to_base64());
    }
    let _ = writeln!(out, "Endpoint = {}", server.endpoint);
    let _ = writeln!(out, "AllowedIPs = {}", allowed_ips(hub).join(", "));
    let _ = writeln!(out, "PersistentKeepalive = {PERSISTENT_KEEPALIVE_SECS}");
    out
}

/// The hub's subnet and pushed routes; everything (0.0.0.0/0) when the
/// hub hands out a default gateway without classless routes, as a DHCP
/// client would route.
fn allowed_ips(hub: &Hub) -> Vec<String> {
    let mut out = vec![hub.subnet().to_string()];
    if let Some(dhcp) = &hub.dhcp {
        if dhcp.routes.is_empty() && dhcp.router.is_some() {
            out = vec!["0.0.0.0/0".to_owned()];
        }
        for route in &dhcp.routes {
            let net = route.destination.to_string();
            if !out.contains(&net) {
                out.push(net);
            }
        }
    }
    out
}

/// The QR code drawn with half blocks, two modules per character cell,
/// in explicit black and white (ANSI colours) with a quiet zone, so it
/// scans from dark and light terminals alike.
fn qr_code(text: &str) -> Result<String, qrcode::types::QrError> {
    let code = qrcode::QrCode::new(text.as_bytes())?;
    let width = code.width();
    let colors = code.to_colors();
    const QUIET: usize = 2;
    let size = width + 2 * QUIET;
    let dark = |x: usize, y: usize| -> bool {
        x >= QUIET
            && y >= QUIET
            && x < width + QUIET
            && y < width + QUIET
            && colors[(y - QUIET) * width + (x - QUIET)] == qrcode::Color::Dark
    };
    let mut out = String::new();
    for y in (0..size).step_by(2) {
        for x in 0..size {
            let fg = if dark(x, y) { 30 } else { 97 };
            let bg = if dark(x, y + 1) { 40 } else { 107 };
            let _ = write!(out, "\x1b[{fg};{bg}m\u{2580}");
        }
        out.push_str("\x1b[0m\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped config (the recipe) with the hub's WireGuard endpoint
    /// and a phone.
    fn hub() -> Config {
        let text = format!(
            r#"{}
[hub.wireguard]
listen = "0.0.0.0:51820"
[[hub.user]]
name = "phone"
wireguard_public_key = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
wireguard_address = "192.168.30.201"
"#,
            ethergate_config::DEFAULT_CONFIG
        );
        Config::from_str_with_origin(&text, "t.toml").expect("valid")
    }

    #[test]
    fn the_device_config_splits_the_tunnel_like_the_dhcp_routes() {
        let config = hub();
        let hub = &config.hubs[0];
        let server_key = PrivateKey::from_bytes([5; 32]).public_key();
        let psk = PresharedKey::from_bytes([8; 32]);
        let server = Server {
            public_key: server_key,
            preshared_key: Some(&psk),
            endpoint: "vpn.example:51820",
        };
        let private = PrivateKey::from_bytes([6; 32]);
        let text = device_config(
            hub,
            "phone",
            Ipv4Addr::new(192, 168, 30, 201),
            Some(&private),
            &server,
        );
        assert!(text.contains(&format!("PrivateKey = {}\n", private.to_base64())));
        assert!(text.contains(&format!(
            "PublicKey = {server_key}\nPresharedKey = {}\n",
            psk.to_base64()
        )));
        assert!(text.contains("Address = 192.168.30.201/32\n"));
        assert!(text.contains("DNS = 192.168.30.1\n"));

        assert!(text.contains("Endpoint = vpn.example:51820\n"));
        assert!(
            text.contains("AllowedIPs = 192.168.30.0/24, 10.0.0.0/16\n"),
            "{text}"
        );
        assert!(text.contains("PersistentKeepalive = 25\n"));
        let without = device_config(
            hub,
            "phone",
            Ipv4Addr::new(192, 168, 30, 201),
            None,
            &Server {
                preshared_key: None,
                ..server
            },
        );
        assert!(!without.contains("PrivateKey"));
        assert!(!without.contains("PresharedKey"));
    }

    #[test]
    fn names_become_file_names() {
        assert_eq!(file_name_part("MikaLab"), "mikalab");
        assert_eq!(file_name_part("Tom's phone #2"), "tom_s_phone__2");
        assert_eq!(file_name_part("a/../b"), "a_.._b");
    }

    #[test]
    fn a_qr_code_is_drawn_in_explicit_colours() {
        let drawing = qr_code("[Interface]\nAddress = 192.168.30.201/32\n").expect("fits");
        let rows = drawing.lines().count();
        assert!(rows > 10, "{rows} rows");
        assert!(drawing.contains("\x1b[30;40m"), "dark modules in black");
        assert!(drawing.lines().all(|l| l.ends_with("\x1b[0m")));
    }
}
