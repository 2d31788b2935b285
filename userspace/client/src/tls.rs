//! TLS client configuration: rustls with aws-lc-rs, TLS 1.3 and 1.2, and
//! the server-certificate policy.
//!
//! SoftEther's client does not check the server certificate unless the
//! account has `CheckServerCert` on (softether-protocol.md §1.1), and
//! SoftEther servers present self-signed certificates — so a CA check
//! alone would reject nearly every server. The policies:
//!
//! - [`ServerCertCheck::KnownServers`] (the default of `ethergate client`):
//!   trust on first use, like ssh's `known_hosts`. The first connection to
//!   a server (`host:port` as the user named it) records the SHA-256 of its
//!   leaf certificate in the known-servers file ([`crate::known_servers`]);
//!   later connections accept only a recorded fingerprint, and a changed
//!   one ends the client with an error naming the file and line. The
//!   fingerprint is recorded only after the handshake signature has proved
//!   that the server holds the certificate's key.
//! - [`ServerCertCheck::Pinned`] (`--ca-cert`) loads a PEM file: the server
//!   is accepted if its certificate is one of those in the file (pinning,
//!   what SoftEther's "registered certificate" does), or if it chains to
//!   one of them as a CA with the server's name matching.
//! - [`ServerCertCheck::Insecure`] (`--insecure`): any certificate, as
//!   SoftEther's client by default. Only on explicit request.
//!
//! Invariant: whatever the policy, the handshake signature is always
//! verified against the presented certificate, so "no verification" means
//! "any server identity", never "no proof of key possession".

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::{CryptoProvider, aws_lc_rs, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use tracing::info;

use crate::known_servers::{Fingerprint, KnownServers, KnownServersError, Lookup};

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCertCheck {
    /// Trust on first use with this known-servers file.
    KnownServers(PathBuf),
    /// Certificates (or CAs) from this PEM file.
    Pinned(PathBuf),
    /// Any certificate (SoftEther's default; `--insecure`).
    Insecure,
}

/// Loading the pinned certificates failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read server certificate file {path}: {reason}")]
    Pem { path: String, reason: String },
    #[error("{path} holds no CERTIFICATE block")]
    Empty { path: String },
    #[error("cannot set up TLS: {0}")]
    Config(#[from] Error),
    #[error(transparent)]
    KnownServers(#[from] KnownServersError),
}

/// The rustls configuration for connecting to `server` (the known-servers
/// key, [`crate::known_servers::server_key`]) under `check`. A garbled
/// known-servers file is refused here, before any connection.
pub fn client_config(
    check: &ServerCertCheck,
    server: &str,
) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let trust = match check {
        ServerCertCheck::Insecure => Trust::Any,
        ServerCertCheck::Pinned(path) => Trust::load_pinned(path, &provider)?,
        ServerCertCheck::KnownServers(file) => {
            KnownServers::load(file)?;
            Trust::KnownServers {
                file: file.clone(),
                server: server.to_owned(),
            }
        }
    };
    let verifier = Arc::new(Verifier {
        trust,
        provider: Arc::clone(&provider),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name rustls checks (CA mode) and sends as SNI: the host as the user
/// wrote it, or the address when it was one.
pub fn server_name(host: &str) -> ServerName<'static> {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(host.to_owned())
            .unwrap_or_else(|_| ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into())),
    }
}

/// Which server certificates are accepted. The handshake signature is
/// checked the same way under every policy (see the module invariant).
#[derive(Debug)]
enum Trust {
    /// Any certificate (SoftEther's default).
    Any,
    Pinned {
        pins: Vec<CertificateDer<'static>>,
        /// The same certificates as trust anchors, for servers with a
        /// CA-issued certificate. `None` if none of them can be an anchor.
        webpki: Option<Arc<WebPkiServerVerifier>>,
    },
    /// Trust on first use. The file is read at every handshake, so an edit
    /// (a deleted line) counts at the next connection.
    KnownServers { file: PathBuf, server: String },
}

/// A known-servers refusal as rustls carries it; [`known_servers_refusal`]
/// gets it back.
fn refusal(e: KnownServersError) -> Error {
    Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(e),
    )))
}

/// The known-servers refusal inside a TLS error, if that is what it is.
pub fn known_servers_refusal(e: &Error) -> Option<&KnownServersError> {
    match e {
        Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
            other.0.downcast_ref::<KnownServersError>()
        }
        _ => None,
    }
}

#[derive(Debug)]
struct Verifier {
    trust: Trust,
    provider: Arc<CryptoProvider>,
}

impl Trust {
    fn load_pinned(path: &Path, provider: &Arc<CryptoProvider>) -> Result<Self, TlsSetupError> {
        let shown = path.display().to_string();
        let pins = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TlsSetupError::Pem {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        if pins.is_empty() {
            return Err(TlsSetupError::Empty { path: shown });
        }
        let mut roots = RootCertStore::empty();
        let (_, _) = roots.add_parsable_certificates(pins.iter().cloned());
        let webpki = if roots.is_empty() {
            None
        } else {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
                .build()
                .ok()
        };
        Ok(Trust::Pinned { pins, webpki })
    }
}

impl Verifier {
    /// A handshake signature's verdict, followed (when it holds) by the
    /// known-servers check.
    fn after_signature(
        &self,
        cert: &CertificateDer<'_>,
        signature: Result<HandshakeSignatureValid, Error>,
    ) -> Result<HandshakeSignatureValid, Error> {
        let valid = signature?;
        self.check_known_server(cert)?;
        Ok(valid)
    }

    /// Trust on first use: the server proved it holds `cert`'s key, so a
    /// certificate still unknown for it is recorded now (one INFO line).
    /// The file is read again first: another client may have recorded the
    /// server meanwhile.
    fn check_known_server(&self, cert: &CertificateDer<'_>) -> Result<(), Error> {
        let Trust::KnownServers { file, server } = &self.trust else {
            return Ok(());
        };
        let presented = Fingerprint::of(cert);
        let mut known = KnownServers::load(file).map_err(refusal)?;
        match known.lookup(server, presented) {
            Lookup::Match => Ok(()),
            Lookup::Changed(recorded) => Err(refusal(known.changed(server, recorded, presented))),
            Lookup::Unknown => {
                let line = known.record(server, presented).map_err(refusal)?;
                info!(
                    server = server.as_str(),
                    fingerprint = %presented,
                    file = %format!("{}:{line}", file.display()),
                    "first connection to this server: its certificate fingerprint is now recorded; \
                     a different certificate will be refused"
                );
                Ok(())
            }
        }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let (pins, webpki) = match &self.trust {
            Trust::Any => return Ok(ServerCertVerified::assertion()),
            Trust::Pinned { pins, webpki } => (pins, webpki),
            Trust::KnownServers { file, server } => {
                let presented = Fingerprint::of(end_entity);
                let known = KnownServers::load(file).map_err(refusal)?;
                return match known.lookup(server, presented) {
                    // First use: recorded once the handshake signature has
                    // proved the key (`after_signature`).
                    Lookup::Match | Lookup::Unknown => Ok(ServerCertVerified::assertion()),
                    Lookup::Changed(recorded) => {
                        Err(refusal(known.changed(server, recorded, presented)))
                    }
                };
            }
        };
        if pins.iter().any(|p| p.as_ref() == end_entity.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        match webpki {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        self.after_signature(cert, verify_tls12_signature(message, cert, dss, algorithms))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        self.after_signature(cert, verify_tls13_signature(message, cert, dss, algorithms))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use rustls::{
        ClientConnection, ServerConfig, ServerConnection,
        pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
    };

    use super::*;

    /// A server with a fresh self-signed certificate, and that certificate.
    fn server(
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> (Arc<ServerConfig>, CertificateDer<'static>) {
        let certified =
            rcgen::generate_simple_self_signed(vec!["ethergate".to_owned()]).expect("cert");
        let der = certified.cert.der().clone();
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
        let config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .expect("server config");
        (Arc::new(config), der)
    }

    /// A whole handshake in memory; the client's verdict.
    fn handshake(client: Arc<ClientConfig>, server: &Arc<ServerConfig>) -> Result<(), Error> {
        let mut c = ClientConnection::new(client, server_name("198.51.100.1"))?;
        let mut s = ServerConnection::new(Arc::clone(server))?;
        for _ in 0..10 {
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).expect("client write");
            }
            let _ = s.read_tls(&mut &wire[..]);
            let _ = s.process_new_packets();
            wire.clear();
            while s.wants_write() {
                s.write_tls(&mut wire).expect("server write");
            }
            let _ = c.read_tls(&mut &wire[..]);
            c.process_new_packets()?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn trust_on_first_use_records_then_refuses_a_changed_certificate() {
        let dir = std::env::temp_dir().join(format!("eg-client-tofu-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = dir.join("ethergate").join("known_servers");
        let check = ServerCertCheck::KnownServers(file.clone());
        let server_key = "198.51.100.1:443";
        let (first, first_der) = server(rustls::DEFAULT_VERSIONS);
        let (second, second_der) = server(rustls::DEFAULT_VERSIONS);

        // First use: accepted and recorded.
        handshake(client_config(&check, server_key).expect("config"), &first).expect("first use");
        let known = KnownServers::load(&file).expect("recorded");
        assert_eq!(
            known.lookup(server_key, Fingerprint::of(&first_der)),
            Lookup::Match
        );
        // The same certificate again (a new client, as after a restart).
        handshake(client_config(&check, server_key).expect("config"), &first).expect("same cert");

        // Another certificate at the same address: refused, with the
        // recorded and presented fingerprints.
        let err = handshake(client_config(&check, server_key).expect("config"), &second)
            .expect_err("a changed certificate must be refused");
        let refusal = known_servers_refusal(&err).expect("a known-servers refusal");
        let KnownServersError::Changed {
            recorded,
            presented,
            ..
        } = refusal
        else {
            panic!("{refusal}");
        };
        assert_eq!(*presented, Fingerprint::of(&second_der));
        assert_eq!(recorded[0].fingerprint, Fingerprint::of(&first_der));
        // Nothing was recorded for the impostor.
        assert_eq!(KnownServers::load(&file).expect("load").entries().len(), 1);

        // Another port is another server; --insecure takes anything.
        handshake(
            client_config(&check, "198.51.100.1:992").expect("config"),
            &second,
        )
        .expect("other port, first use");
        handshake(
            client_config(&ServerCertCheck::Insecure, server_key).expect("config"),
            &second,
        )
        .expect("--insecure");

        // TLS 1.2 records after its signature check just the same.
        let (tls12, tls12_der) = server(&[&rustls::version::TLS12]);
        handshake(
            client_config(&check, "198.51.100.1:5555").expect("config"),
            &tls12,
        )
        .expect("TLS 1.2 first use");
        let known = KnownServers::load(&file).expect("load");
        assert_eq!(
            known.lookup("198.51.100.1:5555", Fingerprint::of(&tls12_der)),
            Lookup::Match
        );
        assert!(
            handshake(
                client_config(&check, "198.51.100.1:5555").expect("config"),
                &first
            )
            .is_err()
        );

        // A garbled file stops the client before it connects.
        std::fs::write(&file, "198.51.100.1:443 sha256:nothex\n").expect("garble");
        assert!(matches!(
            client_config(&check, server_key),
            Err(TlsSetupError::KnownServers(
                KnownServersError::Garbled { .. }
            ))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
