//! Errors of the SoftEther harness. Each carries what the daemon or vpncmd
//! printed, so a failing interop test explains itself without a rerun.

use std::time::Duration;

use ethergate_netns::NetnsError;

#[derive(Debug, thiserror::Error)]
pub enum SoftEtherError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("SoftEther binary {0} is missing (install softether-vpnserver/-vpnclient/-vpncmd)")]
    MissingBinary(String),
    #[error("{daemon} exited during startup; its output:\n{log}")]
    DaemonExited { daemon: String, log: String },
    #[error(
        "{daemon} did not accept connections on localhost:{port} within {waited:?}; its output:\n{log}"
    )]
    NotReady {
        daemon: String,
        port: u16,
        waited: Duration,
        log: String,
    },
    #[error("`{command}` failed (exit {exit:?}, SoftEther error {error_code:?}):\n{output}")]
    Vpncmd {
        command: String,
        exit: Option<i32>,
        /// The `Error code: N` vpncmd printed, if any.
        error_code: Option<u32>,
        output: String,
    },
    #[error(
        "`{command}` was refused by the daemon (wrong /PASSWORD: ?) and stopped at a password prompt:\n{output}"
    )]
    VpncmdAccessDenied { command: String, output: String },
    #[error("`{command}` did not finish within {timeout:?}; it printed:\n{output}")]
    Timeout {
        command: String,
        timeout: Duration,
        output: String,
    },
    #[error("account {account:?} failed to connect: {cause} (code {code:?}); status {status:?}; client log:\n{}", log.join("\n"))]
    ConnectFailed {
        account: String,
        /// SoftEther `ERR_*` code from the client log (9 = auth failed, 8 = no such hub).
        code: Option<u32>,
        cause: String,
        status: String,
        log: Vec<String>,
    },
    #[error("account {account:?} not connected after {waited:?}; status {status:?}; client log:\n{}", log.join("\n"))]
    ConnectTimeout {
        account: String,
        waited: Duration,
        status: String,
        log: Vec<String>,
    },
    #[error("DHCP on {interface}: {reason}; udhcpc printed:\n{output}")]
    Dhcp {
        interface: String,
        reason: String,
        output: String,
    },
    #[error("cannot parse {what}: {text:?}")]
    Parse { what: &'static str, text: String },
}

pub type Result<T, E = SoftEtherError> = std::result::Result<T, E>;
