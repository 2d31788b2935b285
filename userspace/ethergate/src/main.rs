//! The `ethergate` command: one binary for the appliance and its tools.
//!
//! Exit codes follow docs/interface.md: 0 success, 1 user error (bad config, bad
//! arguments), 2 runtime failure. Errors are one sentence on stderr.

mod admin_cli;
mod admin_socket;
mod appliance;
mod check;
mod client;
mod control;
mod import_softether;
mod metrics_http;
mod netdev;
mod notify;
mod reload;
mod replace_file;
mod serve;
mod signals;
mod softether_cfg;
mod stats;
mod user;
mod wireguard_key;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ethergate",
    version,
    about = "SoftEther-compatible VPN server and eBPF NAT"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance in the foreground.
    Serve {
        /// Config file; without it the embedded default config is used.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print data-plane counters every N seconds (0: only at exit).
        #[arg(long, default_value_t = 0)]
        stats_interval: u64,
        /// Override `[server] state_dir` (leases, generated TLS key).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Validate a config file: exit 0, or print every problem and exit 1.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Linux VPN client: tap + SoftEther-protocol session (+ DHCP).
    Client(client::ClientArgs),
    /// Sessions, hubs, NAT counters, TLS and data-path modes of a running serve.
    Status {
        #[command(flatten)]
        socket: admin_cli::SocketArgs,
        #[arg(short = 'o', long, value_enum, default_value_t = admin_cli::Output::Text)]
        output: admin_cli::Output,
    },
    /// Make a running serve re-read its config (atomic; sessions and flows stay).
    Reload {
        #[command(flatten)]
        socket: admin_cli::SocketArgs,
    },
    /// List or end sessions of a running serve.
    Session {
        #[command(subcommand)]
        command: admin_cli::SessionCommand,
    },
    /// Convert a SoftEther server's vpn_server.config (users keep passwords).
    ImportSoftether(import_softether::ImportArgs),
    /// Hub users: add, passwd, del, list, profile, hash.
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// The NAT state that outlives serve (pinned flows and programs).
    Nat {
        #[command(subcommand)]
        command: NatCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (roff) into DIR, as the package installs them.
    #[command(hide = true)]
    Manpages { dir: PathBuf },
}

#[derive(Subcommand)]
enum NatCommand {
    /// Detach the NAT programs a stopped serve left running in this network
    /// namespace and drop its flows (every translated connection ends).
    Forget {
        /// Instead: only the state of network namespaces that no longer
        /// exist.
        #[arg(long)]
        stale: bool,
    },
}

/// An error with the exit code it maps to.
pub enum Failure {
    /// Bad config or arguments: exit 1.
    User(anyhow::Error),
    /// Anything else: exit 2.
    Runtime(anyhow::Error),
}

fn nat_forget(stale: bool) -> Result<(), Failure> {
    if stale {
        let removed = ethergate_dataplane::remove_stale_namespaces()
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("removing stale NAT state: {e}")))?;
        println!("removed the NAT state of {removed} network namespaces that are gone");
        return Ok(());
    }
    let root = ethergate_dataplane::default_pin_root()
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("network namespace id: {e}")))?;
    match ethergate_dataplane::forget_pinned_state(&root) {
        Ok(true) => println!(
            "NAT programs detached and flows dropped ({})",
            root.display()
        ),
        Ok(false) => println!("no NAT state at {}", root.display()),
        Err(e) => {
            return Err(Failure::Runtime(anyhow::anyhow!(
                "removing {}: {e}",
                root.display()
            )));
        }
    }
    Ok(())
}

/// Writes `ethergate.1` and one page per subcommand (`ethergate-user-add.1`,
/// as git does) into `dir`, from the CLI definition.
fn man_pages(dir: &std::path::Path) -> Result<(), Failure> {
    fn write_pages(command: &clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
        let name = command.get_name().to_owned();
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone()).render(&mut page)?;
        std::fs::write(dir.join(format!("{name}.1")), page)?;
        for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
            let sub = sub.clone().name(format!("{name}-{}", sub.get_name()));
            write_pages(&sub, dir)?;
        }
        Ok(())
    }
    let command = <Cli as clap::CommandFactory>::command();
    std::fs::create_dir_all(dir)
        .and_then(|()| write_pages(&command, dir))
        .map_err(|e| {
            Failure::Runtime(anyhow::anyhow!(
                "writing man pages to {}: {e}",
                dir.display()
            ))
        })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve {
            config,
            stats_interval,
            state_dir,
        } => serve::run(config.as_deref(), stats_interval, state_dir),
        Command::Check { config } => check::run(&config),
        Command::Client(args) => client::run(args),
        Command::Status { socket, output } => admin_cli::status(&socket, output),
        Command::Reload { socket } => admin_cli::reload(&socket),
        Command::Session { command } => admin_cli::session(command),
        Command::ImportSoftether(args) => import_softether::run(args),
        Command::User { command } => user::run(command),
        Command::Nat {
            command: NatCommand::Forget { stale },
        } => nat_forget(stale),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "ethergate",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Manpages { dir } => man_pages(&dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::User(e)) => {
            eprintln!("ethergate: {e:#}");
            ExitCode::from(1)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("ethergate: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ETHERGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: under systemd or in a log file, escape
    // codes are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
