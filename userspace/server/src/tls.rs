//! TLS server configuration: rustls with the aws-lc-rs provider, TLS 1.2
//! and 1.3 (rustls implements only AEAD suites — no CBC, no RC4 — so "AEAD
//! only" holds by construction), and the certificate either from the config
//! or generated once into `state_dir` and reused on every start.
//!
//! Invariant: a generated key is written with mode 0600 through a temp file,
//! fsync and rename, so a crash never leaves a half-written key that a later
//! start would trust. SoftEther clients don't verify the certificate by
//! default (softether-protocol.md §1.1), but a stable one lets users who do
//! pin it.

use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
};

use rustls::{
    ServerConfig,
    crypto::aws_lc_rs,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
};

/// A certificate chain with its signing key, as [`CurrentCertificate`]
/// holds it.
pub use rustls::sign::CertifiedKey;

use crate::certificate::CertificateInfo;

/// File names inside `state_dir` for the generated pair.
const GENERATED_CERT: &str = "tls-cert.pem";
const GENERATED_KEY: &str = "tls-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS certificate {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("cannot read TLS private key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the certificate and key don't form a usable TLS identity: {0}")]
    Config(#[source] rustls::Error),
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
}

/// Where the certificate came from, for logs and `ethergate status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertificateSource {
    Configured(PathBuf),
    Generated(PathBuf),
    Reused(PathBuf),
}

/// The certificate new handshakes present. A reload replaces it whole;
/// connections already up keep the one they were given. Its subject,
/// fingerprint and expiry are read once, when it is set.
#[derive(Debug)]
pub struct CurrentCertificate {
    current: RwLock<Current>,
}

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    info: Option<CertificateInfo>,
}

impl Current {
    fn new(key: CertifiedKey) -> Self {
        let info = key
            .end_entity_cert()
            .ok()
            .and_then(|der| CertificateInfo::from_der(der).ok());
        Self {
            key: Arc::new(key),
            info,
        }
    }
}

impl CurrentCertificate {
    pub fn new(key: CertifiedKey) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(Current::new(key)),
        })
    }

    pub fn replace(&self, key: CertifiedKey) {
        let next = Current::new(key);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
    }

    pub fn get(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.read().key)
    }

    /// Subject, fingerprint and expiry of the server's own certificate
    /// (`None` if its fields could not be read).
    pub fn info(&self) -> Option<CertificateInfo> {
        self.read().info.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        // Writers replace the value in one assignment: never half-updated.
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// Reads a configured certificate chain and key; the key must belong to
/// the chain's first certificate.
pub fn from_files(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    certified(read_chain(cert)?, read_key(key)?)
}

/// The rustls config every listener shares; the certificate comes from
/// `current` at each handshake.
pub fn server_config(current: Arc<CurrentCertificate>) -> Result<Arc<ServerConfig>, TlsError> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(current);
    Ok(Arc::new(config))
}

/// Where [`self_signed`] keeps the generated certificate.
pub fn generated_cert_path(state_dir: &Path) -> PathBuf {
    state_dir.join(GENERATED_CERT)
}

/// The first certificate of a PEM chain file (the server's own), DER.
pub fn leaf_certificate(path: &Path) -> Result<CertificateDer<'static>, TlsError> {
    let mut chain = read_chain(path)?;
    Ok(chain.swap_remove(0))
}

/// Reuses the pair in `state_dir`, generating it first if absent.
pub fn self_signed(state_dir: &Path) -> Result<(CertifiedKey, CertificateSource), TlsError> {
    let cert_path = state_dir.join(GENERATED_CERT);
    let key_path = state_dir.join(GENERATED_KEY);
    let source = if cert_path.exists() && key_path.exists() {
        CertificateSource::Reused(cert_path.clone())
    } else {
        generate(state_dir, &cert_path, &key_path)?;
        CertificateSource::Generated(cert_path.clone())
    };
    let key = certified(read_chain(&cert_path)?, read_key(&key_path)?)?;
    Ok((key, source))
}

fn generate(state_dir: &Path, cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    fs::create_dir_all(state_dir).map_err(|source| TlsError::Write {
        path: state_dir.to_owned(),
        source,
    })?;
    let host = hostname();
    let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
    // RSA 2048, as SoftEther's own servers use: the SoftEther client can
    // pin (CheckServerCert, `ethergate user profile`) only RSA 1024/2048
    // certificates and refuses an ECDSA one with error 77. It costs about
    // 0.3 ms of one core per full handshake.
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(generate)?;
    let cert = rcgen::CertificateParams::new(vec![host, "ethergate".to_owned()])
        .map_err(generate)?
        .self_signed(&key_pair)
        .map_err(generate)?;
    // Key first: a cert without its key is useless, and we check both.
    write_atomically(key_path, key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_atomically(cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

/// temp file → write → fsync → rename → fsync(dir): after a crash the file
/// is either the old one, absent, or complete.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let wrap = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(wrap)?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(wrap)?;
    file.write_all(contents).map_err(wrap)?;
    file.sync_all().map_err(wrap)?;
    fs::rename(&tmp, path).map_err(wrap)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(wrap)?;
    }
    Ok(())
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Certificate {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if chain.is_empty() {
        return Err(err("no CERTIFICATE block in the file".to_owned()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, TlsError> {
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch,
        other => TlsError::Config(other),
    })
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
