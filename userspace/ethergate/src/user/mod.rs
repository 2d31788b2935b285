//! `ethergate user …`: the hub users of a config file — add, change the
//! password, remove, list — and what a user needs to connect (a SoftEther
//! connection settings file), without editing TOML by hand.

mod change;
mod hash;
mod list;
mod password;
mod profile;
mod wireguard;

use std::path::PathBuf;

use clap::Subcommand;

use crate::{Failure, admin_cli::Output};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Read a password on stdin and print the `password_hash` for the config.
    Hash {
        #[arg(long)]
        user: String,
    },
    /// Add a user to a hub: the config is edited in place (comments kept)
    /// and a running serve applies it at once. The password is prompted
    /// for (no echo), read from --password-file, or from one line of stdin.
    ///
    /// With --wireguard: a key pair is generated for the user's device, its
    /// public key and tunnel address are written to the config with a new
    /// preshared key (a file in state_dir), and the device's WireGuard
    /// config is printed once (--qr draws it as a QR code); a password is
    /// then set only when --password-file is given.
    Add {
        #[command(flatten)]
        target: change::UserTarget,
        /// Read the password from this file (its first line) instead of
        /// asking for it.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Generate a WireGuard key pair for the user's device and print
        /// the device's config.
        #[arg(long)]
        wireguard: bool,
        /// With --wireguard: no preshared key (for a device that cannot
        /// take one).
        #[arg(long, requires = "wireguard")]
        no_preshared_key: bool,
        #[command(flatten)]
        device: wireguard::OutputArgs,
    },
    /// Change a user's password; its live sessions end.
    Passwd {
        #[command(flatten)]
        target: change::UserTarget,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Remove a user; its live sessions end.
    Del {
        #[command(flatten)]
        target: change::UserTarget,
    },
    /// List the users of the config and their live sessions.
    List {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        hub: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Print a SoftEther connection settings file (.vpn) for a user: server,
    /// hub, user name and the server certificate the client will require.
    Profile(profile::ProfileArgs),
    /// Print a user's WireGuard device config: [Interface] Address, DNS
    /// (and PrivateKey with --private-key-file), [Peer] the hub's public
    /// key, Endpoint, AllowedIPs = the hub's subnet and pushed routes.
    WgConfig(wireguard::WgConfigArgs),
}

pub fn run(command: UserCommand) -> Result<(), Failure> {
    match command {
        UserCommand::Hash { user } => hash::hash(&user),
        UserCommand::Add {
            target,
            password_file,
            wireguard: true,
            no_preshared_key,
            device,
        } => wireguard::add(
            &target,
            password_file.as_deref(),
            !no_preshared_key,
            &device,
        ),
        UserCommand::Add {
            target,
            password_file,
            ..
        } => change::add(&target, password_file.as_deref()),
        UserCommand::Passwd {
            target,
            password_file,
        } => change::passwd(&target, password_file.as_deref()),
        UserCommand::Del { target } => change::del(&target),
        UserCommand::List {
            config,
            hub,
            output,
        } => list::run(&config, hub.as_deref(), output),
        UserCommand::Profile(args) => profile::run(&args),
        UserCommand::WgConfig(args) => wireguard::wg_config(&args),
    }
}
