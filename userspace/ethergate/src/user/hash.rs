//! `ethergate user hash`: SoftEther's stored password form, so operators can
//! put hashes (not passwords) in the config.

use anyhow::anyhow;
use ethergate_config::PasswordHash;

use crate::Failure;

pub fn hash(user: &str) -> Result<(), Failure> {
    if user.is_empty() {
        return Err(Failure::User(anyhow!("--user must not be empty")));
    }
    let password = super::password::stdin_line()?;
    println!(
        "{}",
        PasswordHash::from_password(user, &password).to_base64()
    );
    Ok(())
}
