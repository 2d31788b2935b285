//! PEM armour (RFC 7468) for the DER certificate and key SoftEther stores,
//! so ethergate's TLS loader reads them as it reads any PEM file.

use ethergate_proto::password::base64_encode;

/// RFC 7468 §2: lines of exactly 64 base64 characters, the last shorter.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// SoftEther writes the key as OpenSSL's `i2d_PrivateKey` does: PKCS#1 for
/// RSA, SEC1 for EC, and newer builds may write PKCS#8. The PEM label must
/// say which, so look at the DER: all three start with a SEQUENCE and an
/// INTEGER version; PKCS#8 then has an AlgorithmIdentifier SEQUENCE, PKCS#1
/// (version 0) an INTEGER modulus, SEC1 (version 1) an OCTET STRING.
pub fn private_key(der: &[u8]) -> String {
    encode(key_label(der), der)
}

fn key_label(der: &[u8]) -> &'static str {
    let body = match der {
        [0x30, 0x82, _, _, rest @ ..] => rest,
        [0x30, 0x81, _, rest @ ..] => rest,
        [0x30, len, rest @ ..] if *len < 0x80 => rest,
        _ => return "PRIVATE KEY",
    };
    match body {
        [0x02, 0x01, 0x00, 0x30, ..] => "PRIVATE KEY",
        [0x02, 0x01, 0x00, 0x02, ..] => "RSA PRIVATE KEY",
        [0x02, 0x01, 0x01, 0x04, ..] => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_64_columns() {
        let pem = encode("CERTIFICATE", &[0xAB; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        // 100 bytes are 136 base64 characters: 64 + 64 + 8.
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2].len(), 64);
        assert_eq!(lines[3].len(), 8);
        assert_eq!(lines[4], "-----END CERTIFICATE-----");
    }

    #[test]
    fn labels_follow_the_key_structure() {
        // The start of SoftEther's RSA key (PKCS#1): SEQUENCE, INTEGER 0,
        // INTEGER modulus.
        assert_eq!(
            key_label(&[0x30, 0x82, 0x04, 0xA3, 0x02, 0x01, 0x00, 0x02, 0x82]),
            "RSA PRIVATE KEY"
        );
        assert_eq!(
            key_label(&[0x30, 0x82, 0x04, 0xBE, 0x02, 0x01, 0x00, 0x30, 0x0D]),
            "PRIVATE KEY"
        );
        assert_eq!(
            key_label(&[0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20]),
            "EC PRIVATE KEY"
        );
        assert_eq!(key_label(&[]), "PRIVATE KEY");
    }
}
