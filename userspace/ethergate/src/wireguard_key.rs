//! A hub's WireGuard private key: the configured file, or one generated
//! once into `state_dir` and reused, as the TLS key is. The file holds the
//! key in base64 on one line (what `wg genkey` writes), mode 0600.

use std::path::Path;

use anyhow::{Context, Result};
use ethergate_wireguard::PrivateKey;

/// Reads the key at `path`.
pub fn load(path: &Path) -> Result<PrivateKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    PrivateKey::from_base64(text.trim())
        .map_err(|why| anyhow::anyhow!("{}: the WireGuard private key {why}", path.display()))
}

/// Reads the key at `path`, generating it first when the file is absent.
pub fn load_or_generate(path: &Path) -> Result<PrivateKey> {
    if path.exists() {
        return load(path);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut bytes = [0u8; 32];
    ethergate_server::system_random(&mut bytes);
    let key = PrivateKey::from_bytes(bytes);
    ethergate_server::tls::write_atomically(
        path,
        format!("{}\n", key.to_base64()).as_bytes(),
        0o600,
    )
    .with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), public_key = %key.public_key(), "WireGuard key generated");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = std::env::temp_dir().join(format!("eg-wgkey-{}", std::process::id()));
        let path = dir.join("wireguard-hub.key");
        let first = load_or_generate(&path).expect("generate");
        let second = load_or_generate(&path).expect("reuse");
        assert_eq!(first.public_key(), second.public_key());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "not a key\n").expect("write");
        assert!(load(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
