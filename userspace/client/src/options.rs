//! What the user asks for: server, hub, user, password, interface, DHCP or
//! a static address, and the certificate policy.
//!
//! The password never comes from the command line (it would show in `ps`):
//! it is read from `--password-file` or stdin and only its SoftEther hash
//! (`SHA0(password ‖ UPPER(user))`, what vpn_client.config stores) is kept.

use std::{io::BufRead, path::Path};

use ethergate_bridge::{Ipv4Cidr, MacAddr};

use crate::{error::ClientError, tls::ServerCertCheck};

/// The tap's name when `--tap` is absent: `vpn_` like SoftEther's own
/// client NICs, `eg0` for ours.
pub const DEFAULT_TAP: &str = "vpn_eg0";
/// SoftEther's main port.
pub const DEFAULT_PORT: u16 = 443;

/// A password hash that does not print itself.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub [u8; 20]);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Host name or address.
    pub host: String,
    pub port: u16,
    pub hub: String,
    pub user: String,
    pub password: PasswordHash,
    pub tap: String,
    /// The tap's MAC; `None` derives a stable one from host, hub and user,
    /// so a DHCP server hands out the same lease after a restart.
    pub mac: Option<MacAddr>,
    pub dhcp: bool,
    /// A static address for the tap (when not using DHCP).
    pub address: Option<Ipv4Cidr>,
    /// Offer UDP acceleration at login (as SoftEther's own client does by
    /// default): frames then leave by UDP once that path works.
    pub udp_acceleration: bool,
    pub cert_check: ServerCertCheck,
}

impl ClientOptions {
    pub fn mac(&self) -> MacAddr {
        self.mac.unwrap_or_else(|| {
            MacAddr::local_from_seed(
                format!("ethergate-client/{}/{}/{}", self.host, self.hub, self.user).as_bytes(),
            )
        })
    }
}

/// Splits `HOST:PORT` (`[v6]:PORT` for IPv6); a missing port means 443.
pub fn parse_server(text: &str) -> Result<(String, u16), ClientError> {
    let bad = || {
        ClientError::Options(format!(
            "--server {text:?} is not HOST:PORT (like vpn.example.com:443)"
        ))
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(bad()),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            // A bare IPv6 address without brackets has no port.
            Some(_) => (text, None),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        None => DEFAULT_PORT,
    };
    Ok((host.to_owned(), port))
}

/// Reads the password (first line of `file`, or of stdin) and hashes it for
/// `user`. Only the line ending is stripped: spaces are part of a password.
pub fn read_password(file: Option<&Path>, user: &str) -> Result<PasswordHash, ClientError> {
    let mut line = String::new();
    match file {
        Some(path) => {
            let f = std::fs::File::open(path).map_err(|e| {
                ClientError::Options(format!(
                    "cannot read --password-file {}: {e}",
                    path.display()
                ))
            })?;
            std::io::BufReader::new(f)
                .read_line(&mut line)
                .map_err(|e| {
                    ClientError::Options(format!(
                        "cannot read --password-file {}: {e}",
                        path.display()
                    ))
                })?;
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprint!("Password for {user} (input is echoed; use --password-file to avoid): ");
            }
            std::io::stdin().lock().read_line(&mut line).map_err(|e| {
                ClientError::Options(format!("cannot read the password on stdin: {e}"))
            })?;
        }
    }
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    Ok(PasswordHash(ethergate_proto::password::hash_password(
        password, user,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_forms() {
        let ok = |s: &str| parse_server(s).expect(s);
        assert_eq!(ok("10.77.0.1:5555"), ("10.77.0.1".into(), 5555));
        assert_eq!(ok("vpn.example.com"), ("vpn.example.com".into(), 443));
        assert_eq!(ok("[2001:db8::1]:992"), ("2001:db8::1".into(), 992));
        assert_eq!(ok("2001:db8::1"), ("2001:db8::1".into(), 443));
        for bad in ["", ":443", "host:0", "host:x", "[::1", "[::1]x"] {
            assert!(parse_server(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn password_file_first_line_without_its_ending() {
        let path = std::env::temp_dir().join(format!("eg-client-pw-{}", std::process::id()));
        std::fs::write(&path, "secret\r\nignored\n").expect("write");
        let hash = read_password(Some(&path), "alice").expect("read");
        // softether-protocol.md §4.2 test vector.
        assert_eq!(
            hash.0,
            ethergate_proto::password::hash_password("secret", "alice")
        );
        assert_eq!(format!("{hash:?}"), "PasswordHash(..)");
        let _ = std::fs::remove_file(&path);
        let missing = read_password(Some(Path::new("/nonexistent/pw")), "alice");
        assert!(matches!(missing, Err(ClientError::Options(m)) if m.contains("/nonexistent/pw")));
    }
}
