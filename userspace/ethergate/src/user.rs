//! `ethergate user hash`: SoftEther's stored password form, so operators can
//! put hashes (not passwords) in the config.

use std::io::BufRead;

use anyhow::anyhow;
use ethergate_config::PasswordHash;

use crate::Failure;

pub fn hash(user: &str) -> Result<(), Failure> {
    if user.is_empty() {
        return Err(Failure::User(anyhow!("--user must not be empty")));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::Runtime(anyhow!("cannot read the password from stdin: {e}")))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    println!(
        "{}",
        PasswordHash::from_password(user, password).to_base64()
    );
    Ok(())
}
