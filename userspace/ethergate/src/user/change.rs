//! `ethergate user add|passwd|del`: the config file is edited in place
//! (comments and layout kept, [`ethergate_config::UsersEdit`]), validated,
//! written atomically with its mode and owner, and then applied to the
//! serve running from it through its admin socket — the same reload as
//! `ethergate reload`, which ends the sessions of a removed user or of one
//! whose password changed.
//!
//! Two edits at once (two operators, a script) are serialised by a lock on
//! the config's directory, so neither loses the other's change.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use anyhow::anyhow;
use ethergate_admin::{Request, Response};
use ethergate_config::{Config, EditError, PasswordHash, PreviousCredential, UsersEdit};
use nix::fcntl::{Flock, FlockArg};

use crate::{
    Failure, admin_socket,
    replace_file::{self, FileMode},
};

/// Which user of which hub in which file.
#[derive(clap::Args, Clone)]
pub struct UserTarget {
    /// The config file to edit (the one serve runs from).
    #[arg(long)]
    pub config: PathBuf,
    /// The hub the user belongs to.
    #[arg(long)]
    pub hub: String,
    /// The user name (SoftEther compares names case-insensitively).
    pub name: String,
}

impl UserTarget {
    /// Tells the operator what changed in which file.
    fn say(&self, change: &str) {
        println!("{}: {change}", self.config.display());
    }
}

pub fn add(target: &UserTarget, password_file: Option<&Path>) -> Result<(), Failure> {
    // Refuse a duplicate or an unknown hub before asking for a password.
    dry_run(target, |e, h| e.add_user(&target.hub, &target.name, h))?;
    let password = super::password::new_password(password_file, &target.name)?;
    let hash = PasswordHash::from_password(&target.name, &password);
    let ((), config) = edit(&target.config, |e| {
        e.add_user(&target.hub, &target.name, &hash)
    })?;
    let (name, hub) = (&target.name, &target.hub);
    target.say(&format!("user {name} added to hub {hub}"));
    apply(&target.config, &config)
}

pub fn passwd(target: &UserTarget, password_file: Option<&Path>) -> Result<(), Failure> {
    dry_run(target, |e, h| {
        e.set_password(&target.hub, &target.name, h).map(drop)
    })?;
    let password = super::password::new_password(password_file, &target.name)?;
    let hash = PasswordHash::from_password(&target.name, &password);
    let (previous, config) = edit(&target.config, |e| {
        e.set_password(&target.hub, &target.name, &hash)
    })?;
    let (name, hub) = (&target.name, &target.hub);
    target.say(&format!("password of {name} on hub {hub} changed"));
    match previous {
        PreviousCredential::File(file) => println!(
            "note: the password file {file} is no longer read (the config now holds the hash); \
             remove it when convenient"
        ),
        PreviousCredential::Plaintext => {
            println!("note: the plaintext password in the config was replaced by its hash")
        }
        PreviousCredential::Hash | PreviousCredential::None => {}
    }
    apply(&target.config, &config)
}

pub fn del(target: &UserTarget) -> Result<(), Failure> {
    let secrets = secret_files(target);
    let ((), config) = edit(&target.config, |e| e.remove_user(&target.hub, &target.name))?;
    let (name, hub) = (&target.name, &target.hub);
    target.say(&format!("user {name} removed from hub {hub}"));
    for (key, path) in secrets.into_iter().filter(|(_, p)| p.exists()) {
        println!(
            "note: {} (the user's {key}) is no longer read; remove it when convenient",
            path.display()
        );
    }
    apply(&target.config, &config)
}

/// Where the user's `password_file` and `wireguard_preshared_key_file`
/// point (nothing when the config does not load or has no such user).
fn secret_files(target: &UserTarget) -> Vec<(&'static str, PathBuf)> {
    let Ok(config) = crate::check::load(&target.config) else {
        return Vec::new();
    };
    let state_dir = &config.server.state_dir;
    let Some(user) = config.hub(&target.hub).and_then(|h| h.user(&target.name)) else {
        return Vec::new();
    };
    let password = user
        .password_file
        .as_ref()
        .map(|f| ("password_file", &f.path));
    let psk = user
        .wireguard
        .as_ref()
        .and_then(|w| w.preshared_key_file.as_ref())
        .map(|f| ("wireguard_preshared_key_file", &f.path));
    password
        .into_iter()
        .chain(psk)
        .map(|(key, path)| (key, ethergate_config::resolve_secret_path(state_dir, path)))
        .collect()
}

/// Runs `change` on the file as it is now, without writing, with a
/// placeholder hash: the errors an operator can fix come before the prompt.
pub(super) fn dry_run(
    target: &UserTarget,
    change: impl FnOnce(&mut UsersEdit, &PasswordHash) -> Result<(), EditError>,
) -> Result<(), Failure> {
    let text = read(&target.config)?;
    let mut doc = UsersEdit::parse(&text, &target.config.display().to_string()).map_err(user)?;
    change(&mut doc, &PasswordHash::from_bytes([0; 20])).map_err(user)
}

/// Locks the directory, reads the file, applies `change`, validates and
/// writes the result; nothing is written when any step fails.
pub(super) fn edit<T>(
    path: &Path,
    change: impl FnOnce(&mut UsersEdit) -> Result<T, EditError>,
) -> Result<(T, Config), Failure> {
    // A symlinked config is edited where it lives; the link stays.
    let real = std::fs::canonicalize(path)
        .map_err(|e| Failure::User(anyhow!("cannot open {}: {e}", path.display())))?;
    let _lock = lock_directory(&real)?;
    let text = read(&real)?;
    let mut doc = UsersEdit::parse(&text, &path.display().to_string()).map_err(user)?;
    let outcome = change(&mut doc).map_err(user)?;
    let (new_text, config) = doc.finish().map_err(user)?;
    let mode = FileMode::of(&real)
        .map_err(|e| Failure::Runtime(anyhow!("cannot stat {}: {e}", real.display())))?;
    replace_file::replace(&real, new_text.as_bytes(), mode)
        .map_err(|e| Failure::Runtime(anyhow!("cannot write {}: {e}", real.display())))?;
    Ok((outcome, config))
}

/// An exclusive lock on the file's directory, held until dropped. The
/// file itself cannot carry it: the rename replaces its inode.
fn lock_directory(file: &Path) -> Result<Flock<File>, Failure> {
    let dir = file.parent().unwrap_or(Path::new("/"));
    let handle = File::open(dir)
        .map_err(|e| Failure::Runtime(anyhow!("cannot open {}: {e}", dir.display())))?;
    Flock::lock(handle, FlockArg::LockExclusive)
        .map_err(|(_, e)| Failure::Runtime(anyhow!("cannot lock {}: {e}", dir.display())))
}

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::User(anyhow!("cannot read {}: {e}", path.display())))
}

fn user(e: EditError) -> Failure {
    Failure::User(anyhow!("{e}; nothing changed"))
}

/// Tells the serve running from this config to reload it.
pub fn apply(path: &Path, config: &Config) -> Result<(), Failure> {
    let socket = &config.server.admin_socket;
    let answer = admin_socket::call_if_running(socket, &Request::Reload)
        .map_err(|e| Failure::Runtime(e.context(format!("{} was changed, but", path.display()))))?;
    match answer {
        None => {
            println!(
                "no serve answers at {}: the change takes effect when serve starts",
                socket.display()
            );
            Ok(())
        }
        Some(Response::Reloaded { changes }) => {
            println!("applied by the running serve:");
            for change in changes {
                println!("  {change}");
            }
            Ok(())
        }
        Some(Response::Error { message }) => Err(Failure::User(anyhow!(
            "{} was changed, but the running serve did not apply it: {message}",
            path.display()
        ))),
        Some(other) => Err(Failure::Runtime(anyhow!(
            "unexpected answer from serve: {other:?}"
        ))),
    }
}
