//! `ethergate user list`: the users a config file defines, how each one's
//! password is kept, and how many live sessions each holds on the serve
//! running from that file (unknown when none runs).

use std::path::Path;

use anyhow::anyhow;
use ethergate_admin::{Request, Response, model::SessionStatus};
use ethergate_config::User;
use serde::Serialize;

use crate::{Failure, admin_cli::Output, admin_socket, check};

#[derive(Serialize)]
struct UserRow {
    hub: String,
    user: String,
    /// `password_hash`, `password_file` or `password` (plaintext); `none`
    /// for a WireGuard-only user.
    credential: &'static str,
    /// The WireGuard tunnel address, for a user with a WireGuard key.
    wireguard_address: Option<String>,
    /// `None` when no serve answered.
    sessions: Option<usize>,
}

pub fn run(config_path: &Path, hub: Option<&str>, output: Output) -> Result<(), Failure> {
    let config = check::load(config_path)?;
    if let Some(hub) = hub
        && config.hub(hub).is_none()
    {
        return Err(Failure::User(anyhow!("no hub named {hub:?} in the config")));
    }
    let live = live_sessions(&config.server.admin_socket)?;
    let rows: Vec<UserRow> = config
        .hubs
        .iter()
        .filter(|h| hub.is_none_or(|name| h.name.eq_ignore_ascii_case(name)))
        .flat_map(|h| {
            let live = live.as_ref();
            let peers = h.wireguard_peers().unwrap_or_default();
            h.users.iter().map(move |u| UserRow {
                hub: h.name.clone(),
                user: u.name.clone(),
                credential: credential(u),
                wireguard_address: peers
                    .iter()
                    .find(|p| p.user.eq_ignore_ascii_case(&u.name))
                    .map(|p| p.address.to_string()),
                sessions: live.map(|sessions| {
                    sessions
                        .iter()
                        .filter(|s| {
                            s.hub.eq_ignore_ascii_case(&h.name)
                                && s.user.eq_ignore_ascii_case(&u.name)
                        })
                        .count()
                }),
            })
        })
        .collect();
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| Failure::Runtime(anyhow!("{e}")))?
        ),
        Output::Text => {
            println!("HUB\tUSER\tCREDENTIAL\tWIREGUARD\tSESSIONS");
            for row in &rows {
                let sessions = row
                    .sessions
                    .map_or_else(|| "?".to_owned(), |n| n.to_string());
                let wireguard = row.wireguard_address.as_deref().unwrap_or("-");
                println!(
                    "{}\t{}\t{}\t{wireguard}\t{sessions}",
                    row.hub, row.user, row.credential
                );
            }
            if live.is_none() {
                println!(
                    "(sessions unknown: no serve answers at {})",
                    config.server.admin_socket.display()
                );
            }
        }
    }
    Ok(())
}

fn credential(user: &User) -> &'static str {
    if !user.has_password {
        "none"
    } else if user.password_file.is_some() {
        "password_file"
    } else if user.from_plaintext {
        "password"
    } else {
        "password_hash"
    }
}

fn live_sessions(socket: &Path) -> Result<Option<Vec<SessionStatus>>, Failure> {
    match admin_socket::call_if_running(socket, &Request::Status).map_err(Failure::Runtime)? {
        None => Ok(None),
        Some(Response::Status(status)) => Ok(Some(status.sessions)),
        Some(Response::Error { message }) => Err(Failure::Runtime(anyhow!("{message}"))),
        Some(other) => Err(Failure::Runtime(anyhow!(
            "unexpected answer from serve: {other:?}"
        ))),
    }
}
