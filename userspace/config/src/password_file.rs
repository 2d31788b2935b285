//! `password_file`: a user's password kept outside the config, and
//! generated at the first start when the file does not exist yet — so the
//! shipped config carries no password anyone could read in our docs.
//!
//! A relative path is under `state_dir` (the service can write there and
//! nowhere else). A generated file is created exclusively with mode 0600:
//! an existing file is never overwritten, and only the service's user can
//! read it.

use std::{
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use crate::{Config, user::PasswordHash};

/// Characters of a generated password: no look-alikes (0/O, 1/l/I), so it
/// can be read out or typed from a screen.
const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// 20 characters from 57: about 116 bits.
const GENERATED_LEN: usize = 20;

/// A password written by [`Config::resolve_password_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedPassword {
    pub hub: String,
    pub user: String,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordFileError {
    #[error("hub {hub:?}: user {user:?}: cannot read password_file {path}: {source}")]
    Read {
        hub: String,
        user: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "hub {hub:?}: user {user:?}: password_file {path} is empty; write a password into it or delete it to have one generated"
    )]
    Empty {
        hub: String,
        user: String,
        path: PathBuf,
    },
    #[error("hub {hub:?}: user {user:?}: cannot write a generated password to {path}: {source}")]
    Write {
        hub: String,
        user: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where a `password_file` value points, given the state directory.
pub fn resolve_path(state_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        state_dir.join(path)
    }
}

impl Config {
    /// Reads every user's `password_file` (resolved against `state_dir`)
    /// and sets its hash. A missing file is generated when `generate` is
    /// set (serve, reload) and left unloaded otherwise (check): such a
    /// user cannot log in until it exists. Returns the files generated.
    pub fn resolve_password_files(
        &mut self,
        generate: bool,
    ) -> Result<Vec<GeneratedPassword>, PasswordFileError> {
        let state_dir = self.server.state_dir.clone();
        let mut generated = Vec::new();
        for hub in &mut self.hubs {
            for user in &mut hub.users {
                let Some(file) = &mut user.password_file else {
                    continue;
                };
                let path = resolve_path(&state_dir, &file.path);
                let who = |user: &str| (hub.name.clone(), user.to_owned(), path.clone());
                let text = match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && generate => {
                        let password = generate_password().and_then(|p| {
                            write_new(&path, &p)?;
                            Ok(p)
                        });
                        match password {
                            Ok(p) => {
                                generated.push(GeneratedPassword {
                                    hub: hub.name.clone(),
                                    user: user.name.clone(),
                                    path: path.clone(),
                                });
                                p
                            }
                            Err(source) => {
                                let (hub, user, path) = who(&user.name);
                                return Err(PasswordFileError::Write {
                                    hub,
                                    user,
                                    path,
                                    source,
                                });
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(source) => {
                        let (hub, user, path) = who(&user.name);
                        return Err(PasswordFileError::Read {
                            hub,
                            user,
                            path,
                            source,
                        });
                    }
                };
                let password = text.trim_end_matches(['\n', '\r']);
                if password.is_empty() {
                    let (hub, user, path) = who(&user.name);
                    return Err(PasswordFileError::Empty { hub, user, path });
                }
                user.password_hash = PasswordHash::from_password(&user.name, password);
                file.loaded = true;
            }
        }
        Ok(generated)
    }
}

fn generate_password() -> std::io::Result<String> {
    let mut random = [0u8; GENERATED_LEN * 2];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut random)?;
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
                std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut random)?;
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
fn write_new(path: &Path, password: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{password}\n").as_bytes())?;
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
        assert_eq!(
            checked.resolve_password_files(false).expect("check").len(),
            0
        );
        assert!(!checked.hubs[0].users[0].can_log_in(), "fail closed");

        let mut served = config(&state);
        let generated = served.resolve_password_files(true).expect("serve");
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
        assert!(again.resolve_password_files(true).expect("read").is_empty());
        assert_eq!(again.hubs[0].users[0].password_hash, user.password_hash);

        std::fs::write(&path, "\n").expect("empty it");
        assert!(matches!(
            config(&state).resolve_password_files(true),
            Err(PasswordFileError::Empty { .. })
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
