//! Hub users (`[[hub.user]]`), their SoftEther password hashes and their
//! per-session limits.
//!
//! Invariant: every [`User`] has a valid SoftEther user name and a 20-byte
//! [`PasswordHash`], whether the file gave `password_hash` or a plaintext
//! `password` (hashed here, and warned about). Names are unique within a
//! hub, compared ASCII-case-insensitively as SoftEther's `StrCmpi` does.
//! [`User::limits`] are the hub's `[hub.limits]` with the user's own keys
//! (same names) applied over them.

use ethergate_proto::password::{Base64Error, base64_decode, base64_encode, hash_password};
use std::{fmt, path::PathBuf};

use toml::de::DeTable;

use crate::diagnostic::Report;
use crate::limits::{SessionLimits, read_limits};
use crate::reader::Section;
use crate::wireguard::{UserWireguard, read_user_wireguard};

/// SoftEther's `MAX_USERNAME_LEN`.
pub const MAX_USER_NAME_LEN: usize = 255;

/// Names SoftEther reserves for its internal sessions (`IsUserName` in
/// Cedar/Account.c): cascades, SecureNAT, local bridges, the administrator.
const RESERVED_USER_NAMES: [&str; 8] = [
    "link",
    "Cascade",
    "securenat",
    "SecureNAT",
    "localbridge",
    "Local Bridge",
    "administrator",
    "*",
];

/// `SHA0(password ‖ ASCII-uppercase(user name))`, what SoftEther stores and
/// what the login proof is computed from.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PasswordHash([u8; 20]);

/// Why a `password_hash` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordHashError {
    #[error("is not base64: {0}")]
    Base64(#[from] Base64Error),
    #[error("decodes to {0} bytes; a SoftEther password hash is 20 bytes (28 base64 characters)")]
    Length(usize),
}

impl PasswordHash {
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// The hash SoftEther derives from a password for this user.
    pub fn from_password(user_name: &str, password: &str) -> Self {
        Self(hash_password(password, user_name))
    }

    /// Parses the base64 form written in the config.
    pub fn from_base64(text: &str) -> Result<Self, PasswordHashError> {
        let bytes = base64_decode(text.trim())?;
        let array: [u8; 20] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| PasswordHashError::Length(bytes.len()))?;
        Ok(Self(array))
    }

    pub fn to_base64(&self) -> String {
        base64_encode(&self.0)
    }

    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    /// Redacted: the hash is password-equivalent for SoftEther logins.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(…)")
    }
}

/// Passwords published in our own docs and examples: a config that uses
/// one lets anyone in, so it is refused.
const PUBLISHED_PASSWORDS: [&str; 1] = ["mikalab-demo"];

/// `password_file`: the password lives in a file of its own, generated at
/// the first start when missing (see `Config::resolve_secret_files`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordFile {
    /// As written; a relative path is under `state_dir`.
    pub path: PathBuf,
    /// Set once the file was read and `password_hash` holds its hash.
    /// Until then the user cannot log in (fail closed).
    pub loaded: bool,
}

/// A hub user who logs in with a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// Meaningful only when [`User::has_password`].
    pub password_hash: PasswordHash,
    /// False for a user who connects only with WireGuard.
    pub has_password: bool,
    /// True when the file held a plaintext `password` (a warning was given).
    pub from_plaintext: bool,
    /// The password comes from this file instead of the config.
    pub password_file: Option<PasswordFile>,
    /// What this user's sessions may use: the hub's limits, overridden by
    /// the keys of the same names on this `[[hub.user]]`.
    pub limits: SessionLimits,
    /// The user's WireGuard device, if it has one.
    pub wireguard: Option<UserWireguard>,
}

/// Checks a user name against SoftEther's `IsUserName` rules.
pub fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.trim() != name {
        return Err("has leading or trailing spaces, which SoftEther strips".into());
    }
    if name.len() > MAX_USER_NAME_LEN {
        return Err(format!("is longer than {MAX_USER_NAME_LEN} bytes"));
    }
    // IsSafeChar plus '@' (accepted since SoftEther 4.x for e-mail-like names).
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || " ()-_#%&.@".contains(*c)))
    {
        return Err(format!(
            "contains {c:?}; SoftEther user names use letters, digits, spaces and ()-_#%&.@"
        ));
    }
    if RESERVED_USER_NAMES
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
        || name.starts_with("L3SW_")
    {
        return Err("is reserved by SoftEther for its internal sessions".into());
    }
    Ok(())
}

impl User {
    /// False while the password is still to be read from its file: such a
    /// user is not offered to the login check at all.
    pub fn can_log_in(&self) -> bool {
        self.has_password && self.password_file.as_ref().is_none_or(|f| f.loaded)
    }
}

/// Hashes printed in our documentation and examples (whatever user they
/// are given to): the interface example's and the old demo user's.
const PUBLISHED_HASHES: [&str; 2] = [
    "DngtrNt4kY1zAHmZ2oG8QIkG1FE=",
    "BxVdzhK24Mnb+MQaBW7pHY1CMKs=",
];

/// Why `hash` is public knowledge for `user`, if it is: it is the hash of
/// a password from our docs, or a hash printed in them.
pub fn published_password(user: &str, hash: &PasswordHash) -> Option<String> {
    if let Some(p) = PUBLISHED_PASSWORDS
        .into_iter()
        .find(|p| PasswordHash::from_password(user, p) == *hash)
    {
        return Some(format!(
            "the password is {p:?}, published in ethergate's documentation"
        ));
    }
    PUBLISHED_HASHES
        .iter()
        .any(|h| PasswordHash::from_base64(h).is_ok_and(|h| h == *hash))
        .then(|| "this password_hash is printed in ethergate's documentation".to_owned())
}

const USER_KEYS: &[&str] = &[
    "name",
    "password_hash",
    "password",
    "password_file",
    "wireguard_public_key",
    "wireguard_address",
    "wireguard_preshared_key_file",
    "max_sessions_per_user",
    "max_connections_per_session",
    "max_macs_per_session",
    "max_leases_per_session",
];

/// Reads a hub's `[[hub.user]]` tables. `hub` is the message context, e.g.
/// `hub "mikalab": `; `hub_limits` what users without overrides get.
pub(crate) fn read_users(
    report: &mut Report,
    hub: &str,
    tables: Vec<(&DeTable<'_>, usize)>,
    hub_limits: SessionLimits,
) -> Vec<User> {
    let mut users: Vec<(User, usize)> = Vec::new();
    for (index, (table, pos)) in tables.into_iter().enumerate() {
        let mut s = Section::new(
            table,
            pos,
            format!("{hub}user[{}]: ", index + 1),
            "hub.user",
            USER_KEYS,
        );
        let name = s.required_string(report, "name", "\"tsumura\"");
        let name = name.filter(|n| match check_user_name(n.value) {
            Ok(()) => true,
            Err(why) => {
                report.error(n.pos, format!("{hub}user name {:?} {why}", n.value));
                false
            }
        });
        // From here on messages name the user.
        if let Some(n) = name {
            s.set_context(format!("{hub}user {:?}: ", n.value));
        }
        let hash = s.string(report, "password_hash");
        let password = s.string(report, "password");
        let file = s.string(report, "password_file");
        let context_now = match name {
            Some(n) => format!("{hub}user {:?}: ", n.value),
            None => format!("{hub}user[{}]: ", index + 1),
        };
        let wireguard = read_user_wireguard(report, &mut s, &context_now);
        let limits = read_limits(report, &mut s, hub_limits);
        s.finish(report);
        let Some(name) = name else { continue };
        let context = format!("{hub}user {:?}: ", name.value);
        let given = [hash, password, file].iter().flatten().count();
        let credential = match (hash, password) {
            _ if given > 1 => {
                report.error(
                    name.pos,
                    format!(
                        "{context}give exactly one of password_hash, password_file and \
                         password"
                    ),
                );
                None
            }
            (None, None) if file.is_some() => {
                let file = file.map(|f| f.value).unwrap_or_default();
                if file.is_empty() {
                    report.error(name.pos, format!("{context}password_file is empty"));
                    None
                } else {
                    // A placeholder nobody can use: `can_log_in` is false
                    // until the file is read.
                    Some((PasswordHash::from_bytes([0; 20]), false))
                }
            }
            (Some(hash), None) => match PasswordHash::from_base64(hash.value) {
                Ok(h) => Some((h, false)),
                Err(why) => {
                    report.error(hash.pos, format!("{context}password_hash {why}"));
                    None
                }
            },
            (None, Some(password)) => {
                report.warn(
                    password.pos,
                    format!(
                        "{context}password is stored in plain text; replace it with \
                         password_hash from `ethergate user hash --user {}`",
                        name.value
                    ),
                );
                Some((
                    PasswordHash::from_password(name.value, password.value),
                    true,
                ))
            }
            (Some(_), Some(password)) => {
                report.error(
                    password.pos,
                    format!(
                        "{context}has both password_hash and password; keep only password_hash"
                    ),
                );
                None
            }
            (None, None) if !matches!(wireguard, Ok(None)) => {
                // WireGuard only (or a broken key, reported already): a
                // placeholder nobody can log in with.
                Some((PasswordHash::from_bytes([0; 20]), false))
            }
            (None, None) => {
                report.error(
                    pos,
                    format!(
                        "{context}has no credential; add password_hash = \"…\" \
                         (from `ethergate user hash --user {}`), password_file = \"PATH\" \
                         (generated at the first start when missing), or \
                         wireguard_public_key",
                        name.value
                    ),
                );
                None
            }
        };
        if let Some((first, _)) = users
            .iter()
            .find(|(u, _)| u.name.eq_ignore_ascii_case(name.value))
        {
            report.error(
                name.pos,
                format!(
                    "{hub}user {:?} is defined twice (user names are case-insensitive; \
                     the first is {:?}); remove or rename one",
                    name.value, first.name
                ),
            );
            continue;
        }
        let has_password = given > 0;
        let Ok(wireguard) = wireguard else { continue };
        let credential = credential.filter(|(hash, _)| {
            if file.is_some() || !has_password {
                return true;
            }
            match published_password(name.value, hash) {
                Some(published) => {
                    report.error(
                        name.pos,
                        format!(
                            "{context}{published}: anyone could log in; set your own with \
                             `ethergate user hash --user {}`, or use password_file",
                            name.value
                        ),
                    );
                    false
                }
                None => true,
            }
        });
        if let Some((password_hash, from_plaintext)) = credential {
            users.push((
                User {
                    name: name.value.to_owned(),
                    password_hash,
                    has_password,
                    from_plaintext,
                    password_file: file.map(|f| PasswordFile {
                        path: PathBuf::from(f.value),
                        loaded: false,
                    }),
                    limits,
                    wireguard,
                },
                name.pos,
            ));
        }
    }
    users.into_iter().map(|(u, _)| u).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_softether_vector() {
        // SHA0("secret" ‖ "ALICE"), the project's reference vector.
        let h = PasswordHash::from_password("alice", "secret");
        assert_eq!(h.to_base64(), "DngtrNt4kY1zAHmZ2oG8QIkG1FE=");
        assert_eq!(
            PasswordHash::from_base64("DngtrNt4kY1zAHmZ2oG8QIkG1FE=").expect("valid"),
            h
        );
        assert_eq!(format!("{h:?}"), "PasswordHash(…)");
    }

    #[test]
    fn hash_length_is_checked() {
        assert_eq!(
            PasswordHash::from_base64("Zm9vYmFy"),
            Err(PasswordHashError::Length(6))
        );
        assert!(matches!(
            PasswordHash::from_base64("Dng…FE="),
            Err(PasswordHashError::Base64(_))
        ));
    }

    #[test]
    fn user_names_follow_softether() {
        assert!(check_user_name("tsumura").is_ok());
        assert!(check_user_name("a.b@example.com").is_ok());
        assert!(check_user_name("").is_err());
        assert!(check_user_name(" x").is_err());
        assert!(check_user_name("a/b").is_err());
        assert!(check_user_name("SecureNat").is_err());
        assert!(check_user_name("L3SW_x").is_err());
        assert!(check_user_name("*").is_err());
    }
}
