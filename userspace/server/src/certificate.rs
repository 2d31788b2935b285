//! What an operator needs to know about the server certificate — subject,
//! SHA-256 fingerprint (what a client pins), and when it expires — read
//! from its DER with a small reader of the few X.509 fields involved.
//!
//! Invariant: [`CertificateInfo::from_der`] never panics, whatever the
//! bytes; a field it cannot read is an error, not a guess.

/// The parts of a certificate `status`, metrics and the log show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The subject's common name, or `""` when it has none.
    pub subject: String,
    /// SHA-256 of the DER, upper-case hex pairs joined by `:`.
    pub sha256: String,
    /// `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a readable X.509 certificate: {0}")]
pub struct CertificateParseError(&'static str);

impl CertificateInfo {
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateParseError> {
        let err = CertificateParseError;
        let (cert, _) = element(der, SEQUENCE).ok_or(err("no certificate sequence"))?;
        let (tbs, _) = element(cert, SEQUENCE).ok_or(err("no tbsCertificate"))?;
        let mut rest = tbs;
        // [0] EXPLICIT version, absent for v1.
        if rest.first() == Some(&0xa0) {
            rest = element(rest, 0xa0).ok_or(err("bad version"))?.1;
        }
        rest = element(rest, INTEGER).ok_or(err("no serial number"))?.1;
        rest = element(rest, SEQUENCE)
            .ok_or(err("no signature algorithm"))?
            .1;
        rest = element(rest, SEQUENCE).ok_or(err("no issuer"))?.1;
        let (validity, after_validity) = element(rest, SEQUENCE).ok_or(err("no validity"))?;
        let (subject, _) = element(after_validity, SEQUENCE).ok_or(err("no subject"))?;
        let (_, after_not_before) = time(validity).ok_or(err("bad notBefore"))?;
        let (not_after, _) = time(after_not_before).ok_or(err("bad notAfter"))?;
        Ok(Self {
            subject: common_name(subject).unwrap_or_default(),
            sha256: fingerprint(der),
            not_after,
        })
    }

    /// Whole days from `now` (Unix seconds) until expiry; negative once
    /// expired.
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it): the "now"
/// that [`CertificateInfo::days_left`] is asked about.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// 2.5.4.3, id-at-commonName.
const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];

/// The contents of the DER element at the start of `bytes` if its tag is
/// `tag`, and what follows it.
fn element(bytes: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = bytes.split_first()?;
    if first != tag {
        return None;
    }
    let (&len0, rest) = rest.split_first()?;
    let (len, rest) = if len0 < 0x80 {
        (usize::from(len0), rest)
    } else {
        let count = usize::from(len0 & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Any element: its tag, contents and what follows.
fn any_element(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *bytes.first()?;
    let (contents, rest) = element(bytes, tag)?;
    Some((tag, contents, rest))
}

/// A UTCTime or GeneralizedTime in Zulu form, as Unix seconds.
fn time(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let (tag, text, rest) = any_element(bytes)?;
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let digits = |s: &str| -> Option<i64> {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let (year, rest_text) = match tag {
        // RFC 5280: two-digit years 50-99 are 19xx, 00-49 are 20xx.
        UTC_TIME if text.len() == 12 => {
            let yy = digits(text.get(..2)?)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        GENERALIZED_TIME if text.len() == 14 => (digits(text.get(..4)?)?, text.get(4..)?),
        _ => return None,
    };
    let field = |i: usize| digits(rest_text.get(i..i + 2)?);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    Some((seconds, rest))
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard
/// Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The first commonName attribute of a Name.
fn common_name(mut name: &[u8]) -> Option<String> {
    while !name.is_empty() {
        let (set, rest) = element(name, SET)?;
        name = rest;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (attribute, rest) = element(attributes, SEQUENCE)?;
            attributes = rest;
            let (oid, value) = element(attribute, OID)?;
            if oid == COMMON_NAME {
                let (_, text, _) = any_element(value)?;
                return Some(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    None
}

fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn generated(cn: &str, not_after: (i32, u8, u8)) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["ethergate".to_owned()]).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn reads_subject_expiry_and_fingerprint() {
        // rcgen writes UTCTime before 2050 and GeneralizedTime after.
        for (date, unix) in [((2031, 7, 9), 1_941_321_600), ((2051, 1, 1), 2_556_144_000)] {
            let der = generated("vpn.example.com", date);
            let info = CertificateInfo::from_der(&der).expect("readable");
            assert_eq!(info.subject, "vpn.example.com");
            assert_eq!(info.not_after, unix, "{date:?}");
            assert_eq!(info.sha256.len(), 32 * 3 - 1);
        }
    }

    #[test]
    fn days_left_counts_whole_days_and_goes_negative() {
        let info = CertificateInfo {
            subject: String::new(),
            sha256: String::new(),
            not_after: 10 * 86_400,
        };
        assert_eq!(info.days_left(0), 10);
        assert_eq!(info.days_left(86_400 + 1), 8);
        assert_eq!(info.days_left(11 * 86_400), -1);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 12, 3), 20_790);
    }

    proptest! {
        #[test]
        fn any_prefix_or_corruption_is_an_error_not_a_panic(cut in 0usize..600, flip in 0usize..600, bit in 0u8..8) {
            let der = generated("x", (2030, 1, 1));
            let _ = CertificateInfo::from_der(&der[..cut.min(der.len())]);
            let mut bad = der.clone();
            let i = flip % bad.len();
            bad[i] ^= 1 << bit;
            let _ = CertificateInfo::from_der(&bad);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = CertificateInfo::from_der(&bytes);
        }
    }
}
