//! The known-servers file: trust on first use for the server certificate,
//! like ssh's `known_hosts`.
//!
//! One server per line, `HOST:PORT sha256:HEX` — the server as the user
//! named it (`[v6]:PORT` for IPv6) and the SHA-256 of its leaf
//! certificate (DER), 64 hex digits. Blank lines and lines starting with
//! `#` are comments; a `#` after the two fields starts a comment too. A
//! server may have several lines (a planned certificate change: add the
//! new fingerprint before the server switches); any of them matches.
//!
//! Invariants:
//! - Parsing is strict: a line that is not exactly that is an error naming
//!   `FILE:LINE`, and the whole file is refused. A typo therefore stops the
//!   client instead of silently making a server "unknown" and trusting
//!   whatever it presents next.
//! - A fingerprint is recorded only for a server with no line at all, and
//!   by one `O_APPEND` write of whole lines, so concurrent clients never
//!   interleave half lines and an existing line is never rewritten.
//! - The directory is created 0700 and the file 0600.

use std::{
    ffi::OsString,
    fmt,
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

/// Written at the top of a file this module creates.
const HEADER: &str = "\
# ethergate client: known servers (trust on first use, like ssh's known_hosts).
# One `HOST:PORT sha256:HEX` per line: the SHA-256 of the server's TLS
# certificate (DER). Delete a server's line to accept a new certificate.
";

/// The SHA-256 of a certificate in DER form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of `der`, one certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Fingerprint(out)
    }

    /// `sha256:` and 64 hex digits (either case).
    pub fn parse(text: &str) -> Result<Fingerprint, String> {
        let hex = text
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("fingerprint {text:?} does not start with \"sha256:\""))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "fingerprint {text:?} is not \"sha256:\" and 64 hex digits"
            ));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|e| format!("fingerprint {text:?}: {e}"))?;
        }
        Ok(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The key a server is recorded under: `host:port` as the user gave the
/// host (ASCII-lowercased, since DNS names are case-insensitive), `[v6]:port`
/// for an IPv6 address, the port always written out.
pub fn server_key(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Checks a key read from the file and returns it in [`server_key`]'s form.
fn parse_key(text: &str) -> Result<String, String> {
    let bad =
        |why: &str| format!("server {text:?} {why} (expected HOST:PORT, like vpn.example.com:443)");
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad("lacks its ']'"))?;
        let port = after.strip_prefix(':').ok_or_else(|| bad("has no :PORT"))?;
        if host.is_empty() || !host.contains(':') {
            return Err(bad("has no IPv6 address in brackets"));
        }
        (host, port)
    } else {
        let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("has no :PORT"))?;
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        if host.contains(':') {
            return Err(bad("is an IPv6 address without [brackets]"));
        }
        (host, port)
    };
    if host.contains(['[', ']', '#']) {
        return Err(bad("has a stray character"));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0 && !port.starts_with(['0', '+']))
        .ok_or_else(|| bad("has no valid port"))?;
    Ok(server_key(host, port))
}

/// One recorded server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// In [`server_key`]'s form.
    pub server: String,
    pub fingerprint: Fingerprint,
    /// 1-based line in the file.
    pub line: usize,
}

/// What the file says about a server's certificate.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// One of the server's lines has this fingerprint.
    Match,
    /// The server has no line: first use.
    Unknown,
    /// The server has lines, none with this fingerprint.
    Changed(Vec<Entry>),
}

/// Why the known-servers file refused a server, or could not be used.
/// Every one of them ends the client with exit code 1: retrying cannot help
/// until the user acts.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KnownServersError {
    /// The server presented a certificate other than the recorded one(s).
    #[error("{}", changed_text(server, file, recorded, *presented))]
    Changed {
        server: String,
        file: PathBuf,
        recorded: Vec<Entry>,
        presented: Fingerprint,
    },
    /// Lines that are not `HOST:PORT sha256:HEX` (each `FILE:LINE: why`).
    #[error(
        "{}; fix or delete these lines of the known-servers file",
        problems.join("; ")
    )]
    Garbled { problems: Vec<String> },
    #[error("cannot read the known-servers file {}: {reason}", file.display())]
    Read { file: PathBuf, reason: String },
    #[error(
        "cannot record the server's certificate in {}: {reason}; choose another file with --known-servers FILE",
        file.display()
    )]
    Write { file: PathBuf, reason: String },
}

fn changed_text(server: &str, file: &Path, recorded: &[Entry], presented: Fingerprint) -> String {
    let file = file.display();
    let records = recorded
        .iter()
        .map(|e| format!("{} ({file}:{})", e.fingerprint, e.line))
        .collect::<Vec<_>>()
        .join(", ");
    let lines = recorded
        .iter()
        .map(|e| e.line.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let line_word = if recorded.len() == 1 { "line" } else { "lines" };
    format!(
        "the TLS certificate of {server} has CHANGED: recorded {records}, presented {presented}. \
         Someone may be intercepting the connection (man in the middle), so the client does not \
         log in. If the server's certificate was legitimately replaced, delete {line_word} \
         {lines} of {file} (the {server} entry) and connect again to record the new one"
    )
}

/// The parsed file.
#[derive(Debug, Clone)]
pub struct KnownServers {
    path: PathBuf,
    entries: Vec<Entry>,
    /// Bytes in the file when read, and whether they end with a newline
    /// (an appended line must start on a line of its own).
    len: usize,
    ends_with_newline: bool,
}

impl KnownServers {
    /// Reads `path`; a missing file is an empty one (created on the first
    /// record).
    pub fn load(path: &Path) -> Result<KnownServers, KnownServersError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| KnownServersError::Read {
                    file: path.to_owned(),
                    reason: "not UTF-8 text".into(),
                })?;
                KnownServers::parse(path, &text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(KnownServers::parse(path, "").expect("empty text parses"))
            }
            Err(e) => Err(KnownServersError::Read {
                file: path.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// Parses `text` (the content of `path`, which only names it in
    /// errors). Every garbled line is reported.
    pub fn parse(path: &Path, text: &str) -> Result<KnownServers, KnownServersError> {
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            match parse_line(trimmed) {
                Ok((server, fingerprint)) => entries.push(Entry {
                    server,
                    fingerprint,
                    line,
                }),
                Err(why) => problems.push(format!("{}:{line}: {why}", path.display())),
            }
        }
        if !problems.is_empty() {
            return Err(KnownServersError::Garbled { problems });
        }
        Ok(KnownServers {
            path: path.to_owned(),
            entries,
            len: text.len(),
            ends_with_newline: text.ends_with('\n'),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// What the file says about `server` (in [`server_key`]'s form)
    /// presenting `fingerprint`.
    pub fn lookup(&self, server: &str, fingerprint: Fingerprint) -> Lookup {
        let recorded: Vec<Entry> = self
            .entries
            .iter()
            .filter(|e| e.server == server)
            .cloned()
            .collect();
        if recorded.is_empty() {
            Lookup::Unknown
        } else if recorded.iter().any(|e| e.fingerprint == fingerprint) {
            Lookup::Match
        } else {
            Lookup::Changed(recorded)
        }
    }

    /// The error for `server` presenting `fingerprint` against `recorded`.
    pub fn changed(
        &self,
        server: &str,
        recorded: Vec<Entry>,
        presented: Fingerprint,
    ) -> KnownServersError {
        KnownServersError::Changed {
            server: server.to_owned(),
            file: self.path.clone(),
            recorded,
            presented,
        }
    }

    /// Appends `server fingerprint` (creating the directory 0700 and the
    /// file 0600 with a header comment if needed) and returns its line.
    /// The caller has checked that `server` has no line.
    pub fn record(
        &mut self,
        server: &str,
        fingerprint: Fingerprint,
    ) -> Result<usize, KnownServersError> {
        let file_path = self.path.clone();
        let write_error = |reason: String| KnownServersError::Write {
            file: file_path.clone(),
            reason,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| write_error(format!("creating {}: {e}", dir.display())))?;
        }
        let mut text = String::new();
        if self.len == 0 {
            text.push_str(HEADER);
        } else if !self.ends_with_newline {
            text.push('\n');
        }
        text.push_str(&format!("{server} {fingerprint}\n"));
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| write_error(e.to_string()))?;
        // One write(2) of whole lines under O_APPEND: never interleaved
        // with another client's record.
        file.write_all(text.as_bytes())
            .map_err(|e| write_error(e.to_string()))?;
        // Re-read rather than guess: the file may have grown under us.
        let reread = KnownServers::load(&self.path)?;
        *self = reread;
        self.entries
            .iter()
            .rev()
            .find(|e| e.server == server && e.fingerprint == fingerprint)
            .map(|e| e.line)
            .ok_or_else(|| write_error("the recorded line is not in the file".into()))
    }
}

/// `HOST:PORT sha256:HEX [# comment]`.
fn parse_line(line: &str) -> Result<(String, Fingerprint), String> {
    let mut fields = line.split_whitespace();
    let server = fields.next().unwrap_or_default();
    let Some(fingerprint) = fields.next() else {
        return Err(format!(
            "{server:?} has no fingerprint (expected HOST:PORT sha256:HEX)"
        ));
    };
    if let Some(extra) = fields.next()
        && !extra.starts_with('#')
    {
        return Err(format!(
            "unexpected {extra:?} after the fingerprint (expected HOST:PORT sha256:HEX)"
        ));
    }
    Ok((parse_key(server)?, Fingerprint::parse(fingerprint)?))
}

/// The default file: `$XDG_CONFIG_HOME/ethergate/known_servers`, else
/// `$HOME/.config/ethergate/known_servers`; `None` without either (an
/// empty or relative `XDG_CONFIG_HOME` is ignored, as the XDG spec says).
pub fn default_path_from(
    xdg_config_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let xdg = xdg_config_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let config = xdg.or_else(|| {
        home.filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".config"))
    })?;
    Some(config.join("ethergate").join("known_servers"))
}

/// [`default_path_from`] with this process's environment.
pub fn default_path() -> Option<PathBuf> {
    default_path_from(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const A: &str = "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const B: &str = "sha256:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    fn fp(text: &str) -> Fingerprint {
        Fingerprint::parse(text).expect(text)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("eg-known-servers-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn fingerprint_is_sha256_of_the_der_and_round_trips() {
        // SHA-256 of the empty string.
        assert_eq!(
            Fingerprint::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(fp(A).to_string(), A);
        assert_eq!(fp(&A.to_uppercase().replace("SHA256", "sha256")), fp(A));
        for bad in [
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            "sha1:0011223344556677889900112233445566778899",
            "sha256:0011",
            "sha256:g0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            "sha256:+0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        ] {
            assert!(Fingerprint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_keys() {
        assert_eq!(server_key("VPN.Example.com", 443), "vpn.example.com:443");
        assert_eq!(server_key("2001:db8::1", 992), "[2001:db8::1]:992");
        assert_eq!(
            parse_key("VPN.example.com:443"),
            Ok("vpn.example.com:443".into())
        );
        assert_eq!(
            parse_key("[2001:DB8::1]:992"),
            Ok("[2001:db8::1]:992".into())
        );
        for bad in [
            "vpn.example.com",
            ":443",
            "host:0",
            "host:x",
            "host:0443",
            "host:+443",
            "host:70000",
            "2001:db8::1:443",
            "[2001:db8::1]",
            "[2001:db8::1:443",
            "[host]:443",
        ] {
            assert!(parse_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_entries_comments_and_blank_lines() {
        let text = format!(
            "# a comment\n\n  198.51.100.1:443 {A}\nvpn.example.com:992\t{B}   # the office\n[2001:db8::1]:443 {A}\n"
        );
        let known = KnownServers::parse(Path::new("ks"), &text).expect("parses");
        let got: Vec<(&str, usize)> = known
            .entries()
            .iter()
            .map(|e| (e.server.as_str(), e.line))
            .collect();
        assert_eq!(
            got,
            [
                ("198.51.100.1:443", 3),
                ("vpn.example.com:992", 4),
                ("[2001:db8::1]:443", 5)
            ]
        );
        assert_eq!(known.entries()[1].fingerprint, fp(B));
    }

    #[test]
    fn lookup_matches_unknown_and_changed() {
        let text = format!("198.51.100.1:443 {A}\nrotating:443 {A}\nrotating:443 {B}\n");
        let known = KnownServers::parse(Path::new("ks"), &text).expect("parses");
        assert_eq!(known.lookup("198.51.100.1:443", fp(A)), Lookup::Match);
        // Another port of the same host is another server.
        assert_eq!(known.lookup("198.51.100.1:992", fp(B)), Lookup::Unknown);
        // Both of a server's lines are accepted (a planned change).
        assert_eq!(known.lookup("rotating:443", fp(A)), Lookup::Match);
        assert_eq!(known.lookup("rotating:443", fp(B)), Lookup::Match);
        let Lookup::Changed(recorded) = known.lookup("198.51.100.1:443", fp(B)) else {
            panic!("a different certificate must not match");
        };
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].line, 1);
    }

    #[test]
    fn a_changed_certificate_names_server_file_line_and_both_fingerprints() {
        let path = Path::new("/home/u/.config/ethergate/known_servers");
        let text = format!("# header\n198.51.100.1:443 {A}\n");
        let known = KnownServers::parse(path, &text).expect("parses");
        let Lookup::Changed(recorded) = known.lookup("198.51.100.1:443", fp(B)) else {
            panic!("changed");
        };
        let e = known.changed("198.51.100.1:443", recorded, fp(B));
        let text = e.to_string();
        for needle in [
            "198.51.100.1:443",
            A,
            B,
            "/home/u/.config/ethergate/known_servers:2",
            "delete line 2 of /home/u/.config/ethergate/known_servers",
            "man in the middle",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from: {text}");
        }
    }

    #[test]
    fn garbled_lines_are_refused_with_file_and_line() {
        let text = format!(
            "# ok\n198.51.100.1:443 {A}\n198.51.100.2:443\n198.51.100.3 {A}\n198.51.100.4:443 sha256:abcd\n198.51.100.5:443 {A} trailing\n198.51.100.6:443 {}\n",
            A.trim_start_matches("sha256:")
        );
        let Err(KnownServersError::Garbled { problems }) =
            KnownServers::parse(Path::new("/x/ks"), &text)
        else {
            panic!("garbled lines must be refused");
        };
        let lines: Vec<&str> = problems
            .iter()
            .map(|p| p.split(": ").next().unwrap_or_default())
            .collect();
        assert_eq!(
            lines,
            ["/x/ks:3", "/x/ks:4", "/x/ks:5", "/x/ks:6", "/x/ks:7"],
            "{problems:#?}"
        );
        let e = KnownServersError::Garbled { problems }.to_string();
        assert!(e.contains("fix or delete"), "{e}");
        // Not UTF-8: refused too.
        let dir = temp_dir("binary");
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("known_servers");
        std::fs::write(&path, b"\xff\xfe").expect("write");
        assert!(matches!(
            KnownServers::load(&path),
            Err(KnownServersError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn record_creates_private_dir_and_file_and_appends_whole_lines() {
        let dir = temp_dir("record");
        let path = dir.join("ethergate").join("known_servers");
        let mut known = KnownServers::load(&path).expect("a missing file is empty");
        assert!(known.entries().is_empty());
        let line = known.record("198.51.100.1:443", fp(A)).expect("record");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("ethergate")), 0o700);
        assert_eq!(mode(&path), 0o600);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with('#'), "{text}");
        assert_eq!(
            text.lines().nth(line - 1),
            Some(format!("198.51.100.1:443 {A}").as_str())
        );

        // A file edited by hand without a final newline: the next record
        // still gets a line of its own.
        std::fs::write(&path, format!("{text}vpn.example.com:443 {B}")).expect("edit");
        let mut known = KnownServers::load(&path).expect("reload");
        let line = known.record("[2001:db8::1]:443", fp(B)).expect("record");
        let known = KnownServers::load(&path).expect("reload");
        assert_eq!(known.lookup("198.51.100.1:443", fp(A)), Lookup::Match);
        assert_eq!(known.lookup("vpn.example.com:443", fp(B)), Lookup::Match);
        assert_eq!(known.lookup("[2001:db8::1]:443", fp(B)), Lookup::Match);
        assert_eq!(known.entries().last().map(|e| e.line), Some(line));
        assert_eq!(mode(&path), 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn default_path_follows_xdg_then_home() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            default_path_from(os("/xdg"), os("/home/u")),
            Some(PathBuf::from("/xdg/ethergate/known_servers"))
        );
        assert_eq!(
            default_path_from(None, os("/home/u")),
            Some(PathBuf::from("/home/u/.config/ethergate/known_servers"))
        );
        // Empty or relative XDG_CONFIG_HOME is ignored (XDG spec).
        assert_eq!(
            default_path_from(os(""), os("/home/u")),
            Some(PathBuf::from("/home/u/.config/ethergate/known_servers"))
        );
        assert_eq!(
            default_path_from(os("rel"), os("/home/u")),
            Some(PathBuf::from("/home/u/.config/ethergate/known_servers"))
        );
        assert_eq!(default_path_from(None, None), None);
        assert_eq!(default_path_from(os("rel"), os("")), None);
    }
}
