//! The lease file: one lease per line, `mac ip expires_unix client_id_hex`
//! (`-` when the client sent no option 61), `#` comments and blank lines
//! allowed.
//!
//! Invariant: `parse_leases(&format_leases(x)) == x`, and any line that is
//! not exactly four well-formed fields is rejected with its line number, so
//! a damaged file is noticed rather than half-read. Writing the file
//! crash-safely (temp file, fsync, rename) is the caller's job.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::pool::DhcpLease;
use crate::MacAddr;

/// Option 61 is one option of at most 255 bytes in practice; a longer id in
/// the file means the file is not ours.
const MAX_CLIENT_ID_LEN: usize = 255;

const HEADER: &str = "# ethergate DHCP leases: mac ip expires_unix client_id_hex|-\n";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseLineError {
    #[error("has {0} fields; expected 4: mac ip expires_unix client_id_hex|-")]
    FieldCount(usize),
    #[error("has a bad MAC address {0:?}")]
    Mac(String),
    #[error("has a bad IPv4 address {0:?}")]
    Ip(String),
    #[error("has a bad expiry {0:?} (seconds since the Unix epoch)")]
    Expiry(String),
    #[error("has a bad client id {0:?} (even-length hex up to 255 bytes, or -)")]
    ClientId(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lease file line {line} {reason}")]
pub struct LeaseFileError {
    pub line: usize,
    pub reason: LeaseLineError,
}

/// Formats leases in the lease file format, header included.
pub fn format_leases(leases: &[DhcpLease]) -> String {
    let mut out = String::from(HEADER);
    for l in leases {
        let _ = write!(out, "{} {} {} ", l.mac, l.ip, l.expires_unix);
        match &l.client_id {
            Some(id) => {
                for b in id {
                    let _ = write!(out, "{b:02x}");
                }
            }
            None => out.push('-'),
        }
        out.push('\n');
    }
    out
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) || s.len() / 2 > MAX_CLIENT_ID_LEN {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            let pair = s.get(i..i + 2)?;
            if !pair.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
}

fn parse_line(line: &str) -> Result<DhcpLease, LeaseLineError> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [mac, ip, expiry, id] = fields[..] else {
        return Err(LeaseLineError::FieldCount(fields.len()));
    };
    let mac: MacAddr = mac
        .parse()
        .map_err(|_| LeaseLineError::Mac(mac.to_owned()))?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| LeaseLineError::Ip(ip.to_owned()))?;
    let expires_unix = if expiry.bytes().all(|c| c.is_ascii_digit()) {
        expiry.parse::<u64>().ok()
    } else {
        None
    }
    .ok_or_else(|| LeaseLineError::Expiry(expiry.to_owned()))?;
    let client_id = match id {
        "-" => None,
        hex => Some(parse_hex(hex).ok_or_else(|| LeaseLineError::ClientId(hex.to_owned()))?),
    };
    Ok(DhcpLease {
        mac,
        ip,
        expires_unix,
        client_id,
    })
}

/// Parses a lease file; the first bad line fails the whole file.
pub fn parse_leases(text: &str) -> Result<Vec<DhcpLease>, LeaseFileError> {
    let mut leases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let lease = parse_line(line).map_err(|reason| LeaseFileError {
            line: i + 1,
            reason,
        })?;
        leases.push(lease);
    }
    Ok(leases)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leases() -> Vec<DhcpLease> {
        vec![
            DhcpLease {
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                ip: Ipv4Addr::new(192, 168, 30, 10),
                expires_unix: 1_700_007_200,
                client_id: None,
            },
            DhcpLease {
                mac: MacAddr([0x5e, 0, 0, 0, 0, 0xff]),
                ip: Ipv4Addr::new(192, 168, 30, 11),
                expires_unix: 0,
                client_id: Some(vec![1, 0x5e, 0, 0, 0, 0, 0xff]),
            },
        ]
    }

    #[test]
    fn round_trip() {
        let text = format_leases(&leases());
        assert!(
            text.contains("02:00:00:00:00:01 192.168.30.10 1700007200 -\n"),
            "{text}"
        );
        assert!(text.contains(" 015e00000000ff\n"), "{text}");
        assert_eq!(parse_leases(&text), Ok(leases()));
        assert_eq!(parse_leases(""), Ok(vec![]));
    }

    #[test]
    fn bad_lines_name_their_number() {
        let cases = [
            (
                "02:00:00:00:00:01 192.168.30.10 1",
                LeaseLineError::FieldCount(3),
            ),
            (
                "02:00:00:00:00 192.168.30.10 1 -",
                LeaseLineError::Mac("02:00:00:00:00".into()),
            ),
            (
                "02:00:00:00:00:01 192.168.30 1 -",
                LeaseLineError::Ip("192.168.30".into()),
            ),
            (
                "02:00:00:00:00:01 192.168.30.10 +1 -",
                LeaseLineError::Expiry("+1".into()),
            ),
            (
                "02:00:00:00:00:01 192.168.30.10 1 0",
                LeaseLineError::ClientId("0".into()),
            ),
            (
                "02:00:00:00:00:01 192.168.30.10 1 zz",
                LeaseLineError::ClientId("zz".into()),
            ),
        ];
        for (line, reason) in cases {
            let text = format!("# header\n\n{line}\n");
            assert_eq!(
                parse_leases(&text),
                Err(LeaseFileError { line: 3, reason }),
                "line {line:?}"
            );
        }
    }
}
