//! TLS client configuration: rustls with aws-lc-rs, TLS 1.3 and 1.2, and
//! the server-certificate policy.
//!
//! SoftEther's client does not check the server certificate unless the
//! account has `CheckServerCert` on (softether-protocol.md §1.1), and
//! SoftEther servers present self-signed certificates. For compatibility
//! the default here is the same — [`ServerCertCheck::None`] — and the
//! driver warns loudly about it. [`ServerCertCheck::Pinned`] loads a PEM
//! file: the server is accepted if its certificate is one of those in the
//! file (pinning, what SoftEther's "registered certificate" does, and the
//! only option for a self-signed server), or if it chains to one of them as
//! a CA with the server's name matching.
//!
//! Invariant: whatever the policy, the handshake signature is always
//! verified against the presented certificate, so "no verification" means
//! "any server identity", never "no proof of key possession".

use std::{path::Path, sync::Arc};

use rustls::{
    ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::{CryptoProvider, aws_lc_rs, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCertCheck {
    /// Any certificate (SoftEther's default). `acknowledged` is set by
    /// `--insecure`: the user asked for it, so the warning is one line.
    None { acknowledged: bool },
    /// Certificates (or CAs) from this PEM file.
    Pinned(std::path::PathBuf),
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
}

pub fn client_config(check: &ServerCertCheck) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let trust = match check {
        ServerCertCheck::None { .. } => Trust::Any,
        ServerCertCheck::Pinned(path) => Trust::load_pinned(path, &provider)?,
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

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Trust::Pinned { pins, webpki } = &self.trust else {
            return Ok(ServerCertVerified::assertion());
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
