//! `ethergate check`: validate a config file, print every problem with its
//! line, exit 1 if there is any. Warnings are printed but don't fail.

use std::path::Path;

use anyhow::anyhow;
use ethergate_config::{Config, ConfigError};

use crate::Failure;

pub fn run(path: &Path) -> Result<(), Failure> {
    let config = load(path)?;
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    println!(
        "{}: ok ({} hub(s), {} user(s), nat {})",
        path.display(),
        config.hubs.len(),
        config.hubs.iter().map(|h| h.users.len()).sum::<usize>(),
        if config.nat.is_some() { "on" } else { "off" }
    );
    Ok(())
}

/// Loads a config, mapping problems to exit codes: an unreadable or invalid
/// file is the user's to fix (exit 1).
pub fn load(path: &Path) -> Result<Config, Failure> {
    Config::load(path).map_err(|e| match e {
        ConfigError::Read { .. } => Failure::User(anyhow!("{e}")),
        ConfigError::Invalid(errors) => Failure::User(anyhow!(
            "{} has {} problem(s):\n{errors}",
            path.display(),
            errors.len()
        )),
    })
}
