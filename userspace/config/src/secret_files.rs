//! Secrets kept outside the config: a user's `password_file` and a
//! WireGuard user's `wireguard_preshared_key_file`. A missing file is
//! generated at the first start — so the shipped config carries no secret
//! anyone could read in our docs, and an operator never has to invent one.
//!
//! A relative path is under `state_dir` (the service can write there and
//! nowhere else). A generated file is created exclusively with mode 0600:
//! an existing file is never overwritten, and only the service's user can
//! read it. Until its file has been read, a secret counts as absent and
//! its user cannot connect that way (fail closed).

use std::{
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use ethergate_wireguard::PresharedKey;

use crate::{Config, user::PasswordHash};

/// Characters of a generated password: no look-alikes (0/O, 1/l/I), so it
/// can be read out or typed from a screen.
const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// 20 characters from 57: about 116 bits.
const GENERATED_LEN: usize = 20;

/// Which kind of secret a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// `password_file`: a password, one line.
    Password,
    /// `wireguard_preshared_key_file`: a key in base64, as `wg genpsk` writes it.
    PresharedKey,
}

impl SecretKind {
    /// The config key that names such a file.
    pub fn key(self) -> &'static str {
        match self {
            Self::Password => "password_file",
            Self::PresharedKey => "wireguard_preshared_key_file",
        }
    }
}

/// A secret written by [`Config::resolve_secret_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedSecret {
    pub kind: SecretKind,
    pub hub: String,
    pub user: String,
    pub path: PathBuf,
}

/// Which file of which user a [`SecretFileError`] is about.
#[derive(Debug)]
pub struct SecretFile {
    pub kind: SecretKind,
    pub hub: String,
    pub user: String,
    pub path: PathBuf,
}

impl std::fmt::Display for SecretFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "hub {:?}: user {:?}: {} {}",
            self.hub,
            self.user,
            self.kind.key(),
            self.path.display()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("{file}: cannot read it: {source}")]
    Read {
        file: SecretFile,
        source: std::io::Error,
    },
    #[error("{file} is empty; write a password into it or delete it to have one generated")]
    Empty { file: SecretFile },
    #[error(
        "{file}: the key {why}; write one key from `wg genpsk` into it or delete it to have one generated"
    )]
    NotAKey {
        file: SecretFile,
        why: ethergate_wireguard::KeyError,
    },
    #[error("{file}: cannot write a generated secret to it: {source}")]
    Write {
        file: SecretFile,
        source: std::io::Error,
    },
}

/// Where a `password_file` or `wireguard_preshared_key_file` value points,
/// given the state directory.
pub fn resolve_path(state_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        state_dir.join(path)
    }
}

impl Config {
    /// Reads every user's `password_file` and `wireguard_preshared_key_file`
    /// (resolved against `state_dir`) and sets the password's hash and the
    /// key. A missing file is generated when `generate` is set (serve,
    /// reload) and left unloaded otherwise (check, the CLI's readers): its
    /// user cannot connect that way until it exists. Returns the files
    /// generated.
    pub fn resolve_secret_files(
        &mut self,
        generate: bool,
    ) -> Result<Vec<GeneratedSecret>, SecretFileError> {
        let state_dir = self.server.state_dir.clone();
        let mut generated = Vec::new();
        for hub in &mut self.hubs {
            for user in &mut hub.users {
                let file = |kind, path: &Path| SecretFile {
                    kind,
                    hub: hub.name.clone(),
                    user: user.name.clone(),
                    path: path.to_owned(),
                };
                if let Some(password_file) = &mut user.password_file {
                    let path = resolve_path(&state_dir, &password_file.path);
                    let which = file(SecretKind::Password, &path);
                    if let Some(text) = read_or_generate(which, generate, &mut generated)? {
                        let password = text.trim_end_matches(['\n', '\r']);
                        if password.is_empty() {
                            return Err(SecretFileError::Empty {
                                file: file(SecretKind::Password, &path),
                            });
                        }
                        user.password_hash = PasswordHash::from_password(&user.name, password);
                        password_file.loaded = true;
                    }
                }
                let psk_file = user
                    .wireguard
                    .as_mut()
                    .and_then(|w| w.preshared_key_file.as_mut());
                if let Some(psk_file) = psk_file {
                    let path = resolve_path(&state_dir, &psk_file.path);
                    let which = file(SecretKind::PresharedKey, &path);
                    if let Some(text) = read_or_generate(which, generate, &mut generated)? {
                        let key = PresharedKey::from_base64(&text).map_err(|why| {
                            SecretFileError::NotAKey {
                                file: file(SecretKind::PresharedKey, &path),
                                why,
                            }
                        })?;
                        psk_file.key = Some(key);
                    }
                }
            }
        }
        Ok(generated)
    }
}

/// The file's text; when it does not exist, a new secret written into it
/// (with `generate`) or `None`.
fn read_or_generate(
    file: SecretFile,
    generate: bool,
    generated: &mut Vec<GeneratedSecret>,
) -> Result<Option<String>, SecretFileError> {
    match std::fs::read_to_string(&file.path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && generate => {
            let secret = new_secret(file.kind).and_then(|s| {
                write_new(&file.path, &s)?;
                Ok(s)
            });
            match secret {
                Ok(secret) => {
                    generated.push(GeneratedSecret {
                        kind: file.kind,
                        hub: file.hub,
                        user: file.user,
                        path: file.path,
                    });
                    Ok(Some(secret))
                }
                Err(source) => Err(SecretFileError::Write { file, source }),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SecretFileError::Read { file, source }),
    }
}

/// A fresh secret of `kind`, in the file's text form.
pub fn new_secret(kind: SecretKind) -> std::io::Result<String> {
    match kind {
        SecretKind::Password => generate_password(),
        SecretKind::PresharedKey => {
            let mut key = [0u8; 32];
            random_bytes(&mut key)?;
            Ok(PresharedKey::from_bytes(key).to_base64())
        }
    }
}

fn random_bytes(out: &mut [u8]) -> std::io::Result<()> {
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, out)
}

fn generate_password() -> std::io::Result<String> {
    let mut random = [0u8; GENERATED_LEN * 2];
    random_bytes(&mut random)?;
    // Rejection sampling: only bytes below the largest multiple of the
    // alphabet's size, so every character is equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    let mut out = String::with_capacity(GENERATED_LEN);
    let mut source = random.into_iter();
    while out.len() < GENERATED_LEN {
        let byte = match source.next() {
            Some(b) => b,
            None => {
                random = [0u8; GENERATED_LEN * 2];
                random_bytes(&mut random)?;
                source = random.into_iter();
                continue;
            }
        };
        if usize::from(byte) < limit {
            out.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
        }
    }
    Ok(out)
}

/// Creates `path` (and its directory) exclusively, mode 0600.
pub fn write_new(path: &Path, secret: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{secret}\n").as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(state: &Path) -> Config {
        let state = state.display();
        let hub = crate::tests::HUB_HEAD;
        let text = format!(
            "[server]\nstate_dir = \"{state}\"\n{hub}[[hub.user]]\nname = \"alice\"\npassword_file = \"alice.password\"\n"
        );
        Config::from_str_with_origin(&text, "t.toml").expect("valid")
    }

    #[test]
    fn a_missing_file_is_generated_once_and_then_read() {
        let state = std::env::temp_dir().join(format!("eg-pwfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        let mut checked = config(&state);
        assert_eq!(checked.resolve_secret_files(false).expect("check").len(), 0);
        assert!(!checked.hubs[0].users[0].can_log_in(), "fail closed");

        let mut served = config(&state);
        let generated = served.resolve_secret_files(true).expect("serve");
        assert_eq!(generated.len(), 1);
        let path = state.join("alice.password");
        assert_eq!(generated[0].path, path);
        let password = std::fs::read_to_string(&path).expect("file");
        let password = password.trim_end();
        assert_eq!(password.len(), GENERATED_LEN);
        assert!(password.bytes().all(|b| ALPHABET.contains(&b)));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("metadata").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let user = &served.hubs[0].users[0];
        assert!(user.can_log_in());
        assert_eq!(
            user.password_hash,
            PasswordHash::from_password("alice", password)
        );

        // Next start: read, not regenerated.
        let mut again = config(&state);
        assert!(again.resolve_secret_files(true).expect("read").is_empty());
        assert_eq!(again.hubs[0].users[0].password_hash, user.password_hash);

        std::fs::write(&path, "\n").expect("empty it");
        assert!(matches!(
            config(&state).resolve_secret_files(true),
            Err(SecretFileError::Empty { .. })
        ));
        let _ = std::fs::remove_dir_all(&state);
    }

    #[test]
    fn generated_passwords_differ() {
        let a = generate_password().expect("random");
        let b = generate_password().expect("random");
        assert_ne!(a, b);
    }
}
