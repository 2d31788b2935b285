//! `ethergate status`, `ethergate reload` and `ethergate session …`: thin
//! clients of the admin socket of a running `ethergate serve`.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::{Args, Subcommand, ValueEnum};
use ethergate_admin::{Request, Response};

use crate::{Failure, admin_socket, check};

/// Which admin socket to talk to.
#[derive(Args, Clone)]
pub struct SocketArgs {
    /// The admin socket (default: `[server] admin_socket` of --config, else
    /// /run/ethergate/admin.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Read the socket path from this config file.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum SessionCommand {
    /// List sessions (name, hub, user, client, connections, traffic).
    List {
        #[command(flatten)]
        socket: SocketArgs,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// End a session, or every session of a user (their connections close;
    /// the client may log in again).
    Disconnect {
        /// Session name as `ethergate session list` shows it.
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        name: Option<String>,
        /// Instead of a session name: every session of this user.
        #[arg(long)]
        user: Option<String>,
        /// With --user: only its sessions on this hub.
        #[arg(long, requires = "user")]
        hub: Option<String>,
        #[command(flatten)]
        socket: SocketArgs,
    },
}

pub fn status(socket: &SocketArgs, output: Output) -> Result<(), Failure> {
    let status = fetch_status(socket)?;
    match output {
        Output::Json => println!("{}", to_json(&status)?),
        Output::Text => print!("{}", ethergate_admin::render::status(&status)),
    }
    Ok(())
}

pub fn reload(socket: &SocketArgs) -> Result<(), Failure> {
    match call(socket, &Request::Reload)? {
        Response::Reloaded { changes } if changes.is_empty() => {
            println!("reloaded: no changes");
            Ok(())
        }
        Response::Reloaded { changes } => {
            println!("reloaded:");
            for change in changes {
                println!("  {change}");
            }
            Ok(())
        }
        // A config that cannot be applied is the user's to fix (exit 1).
        Response::Error { message } => Err(Failure::User(anyhow!("{message}"))),
        other => Err(unexpected(&other)),
    }
}

pub fn session(command: SessionCommand) -> Result<(), Failure> {
    match command {
        SessionCommand::List { socket, output } => {
            let status = fetch_status(&socket)?;
            match output {
                Output::Json => println!("{}", to_json(&status.sessions)?),
                Output::Text => {
                    for s in &status.sessions {
                        println!(
                            "{}\thub={}\tuser={}\tclient={}\tconnections={}/{}\trx={}B\ttx={}B{}",
                            s.name,
                            s.hub,
                            s.user,
                            s.client,
                            s.connections,
                            s.max_connections,
                            s.received.bytes,
                            s.sent.bytes,
                            if s.orphaned {
                                "\t(idle, resumable)"
                            } else {
                                ""
                            }
                        );
                    }
                }
            }
            Ok(())
        }
        SessionCommand::Disconnect {
            name,
            user,
            hub,
            socket,
        } => {
            let request = match (name, user) {
                (_, Some(user)) => Request::DisconnectUser { user, hub },
                (Some(session), None) => Request::Disconnect { session },
                (None, None) => {
                    return Err(Failure::User(anyhow!("give a session name or --user")));
                }
            };
            match call(&socket, &request)? {
                Response::Disconnected { session } => {
                    println!("disconnected {session}");
                    Ok(())
                }
                Response::DisconnectedUser { user, sessions } => {
                    println!("disconnected {sessions} session(s) of {user}");
                    Ok(())
                }
                Response::Error { message } => Err(Failure::User(anyhow!("{message}"))),
                other => Err(unexpected(&other)),
            }
        }
    }
}

fn fetch_status(socket: &SocketArgs) -> Result<ethergate_admin::Status, Failure> {
    match call(socket, &Request::Status)? {
        Response::Status(status) => Ok(*status),
        Response::Error { message } => Err(Failure::Runtime(anyhow!("{message}"))),
        other => Err(unexpected(&other)),
    }
}

pub fn call(socket: &SocketArgs, request: &Request) -> Result<Response, Failure> {
    let path = socket_path(socket)?;
    admin_socket::call(&path, request).map_err(Failure::Runtime)
}

pub fn socket_path(socket: &SocketArgs) -> Result<PathBuf, Failure> {
    if let Some(path) = &socket.socket {
        return Ok(path.clone());
    }
    match &socket.config {
        Some(config) => Ok(check::load(config)?.server.admin_socket),
        None => Ok(Path::new(ethergate_config::DEFAULT_ADMIN_SOCKET).to_owned()),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Failure> {
    serde_json::to_string_pretty(value).map_err(|e| Failure::Runtime(anyhow!("{e}")))
}

fn unexpected(response: &Response) -> Failure {
    Failure::Runtime(anyhow!("unexpected answer from serve: {response:?}"))
}
