//! The real SoftEther VPN Client (`vpnclient execsvc`) in a namespace:
//! virtual NICs, connection settings ("accounts"), and the outcome of a
//! connection attempt.
//!
//! Where errors show up: `AccountStatusGet` only ever says `Retrying` for a
//! failed attempt. The code is in the client log
//! (`/var/log/softether/client_log/client_YYYYMMDD.log`, private per
//! instance), one line per failed attempt:
//! `VPN Connection Setting "acc": The connection has been either
//! disconnected or it failed. Cause: User authentication failed. (code 9)`.

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use ethergate_netns::Topology;

use crate::{
    Result, SoftEtherError,
    daemon::{Daemon, Kind},
    server::read_logs,
    vpncmd::VpncmdOutput,
};

/// `AccountStatusGet`'s session status once the session is up.
pub const ESTABLISHED: &str = "Connection Completed (Session Established)";

/// Prefix SoftEther gives the tap of virtual NIC `name` (`vpn_<name>`).
pub const NIC_PREFIX: &str = "vpn_";

/// How often [`SoftEtherClient::wait_connected`] polls.
const POLL: Duration = Duration::from_millis(100);

/// Password authentication kinds of an account (`AccountPasswordSet /TYPE:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordKind {
    /// Hashed proof (login authtype 1).
    Standard,
    /// Plaintext password, for RADIUS/NT domain users (login authtype 2).
    Radius,
}

/// `AccountDetailSet` parameters. [`Default`] is a new account's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountDetail {
    /// Number of TCP connections (1–32).
    pub max_tcp: u8,
    /// Seconds between establishing additional connections.
    pub interval: u32,
    /// Lifetime of each connection in seconds; 0 = unlimited.
    pub ttl: u32,
    pub half_duplex: bool,
    pub bridge_mode: bool,
    pub monitor_mode: bool,
    pub no_routing_tracking: bool,
    pub no_qos: bool,
    pub disable_udp: bool,
}

impl AccountDetail {
    /// `n` TCP connections (`/MAXTCP:n`, as SoftEther users run it for
    /// speed), the rest as a new account has it.
    pub fn max_tcp(n: u8) -> Self {
        Self {
            max_tcp: n,
            ..Self::default()
        }
    }
}

impl Default for AccountDetail {
    fn default() -> Self {
        Self {
            max_tcp: 1,
            interval: 1,
            ttl: 0,
            half_duplex: false,
            bridge_mode: false,
            monitor_mode: false,
            no_routing_tracking: false,
            no_qos: false,
            disable_udp: false,
        }
    }
}

/// `AccountStatusGet` of one account.
#[derive(Clone, Debug)]
pub struct AccountStatus {
    /// `Session Status`, e.g. [`ESTABLISHED`], `Retrying`, `Connecting`.
    pub session_status: String,
    /// Every row of the table (`Number of TCP Connections`, `Encryption`, …).
    pub items: Vec<(String, String)>,
}

impl AccountStatus {
    pub fn is_established(&self) -> bool {
        self.session_status == ESTABLISHED
    }

    /// The value of row `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One failed attempt, as logged by the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectFailure {
    pub code: u32,
    pub cause: String,
}

/// A running `vpnclient`. Stopped (with its worker) when dropped.
pub struct SoftEtherClient<'t> {
    daemon: Daemon<'t>,
}

impl<'t> SoftEtherClient<'t> {
    /// Starts vpnclient in `namespace` with private state and waits until
    /// its management port (localhost:9931) accepts connections. It has no
    /// NICs and no accounts.
    pub fn start(topo: &'t Topology, namespace: &str) -> Result<Self> {
        Ok(Self {
            daemon: Daemon::start(topo, namespace, Kind::Client)?,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// Escape hatch: any client vpncmd command (no client password is set).
    pub fn vpncmd(&self, args: &[&str]) -> Result<VpncmdOutput> {
        self.daemon.vpncmd(&["/PASSWORD:"], args)
    }

    /// Creates virtual NIC `name`; returns its tap's name, `vpn_<name>`.
    pub fn nic_create(&self, name: &str) -> Result<String> {
        self.vpncmd(&["NicCreate", name])?;
        Ok(format!("{NIC_PREFIX}{name}"))
    }

    pub fn nic_delete(&self, name: &str) -> Result<()> {
        self.vpncmd(&["NicDelete", name]).map(drop)
    }

    /// Creates account `name` connecting to `server` (`"198.51.100.1:443"`;
    /// a `host/tcp:443` form skips the NAT-T race) on `hub` as `user`
    /// through NIC `nic` (its short name, not `vpn_…`). One NIC carries one
    /// connected account at a time.
    pub fn account_create(
        &self,
        name: &str,
        server: &str,
        hub: &str,
        user: &str,
        nic: &str,
    ) -> Result<()> {
        let server = format!("/SERVER:{server}");
        let hub = format!("/HUB:{hub}");
        let user = format!("/USERNAME:{user}");
        let nic = format!("/NICNAME:{nic}");
        self.vpncmd(&["AccountCreate", name, &server, &hub, &user, &nic])
            .map(drop)
    }

    /// `AccountImport` of a connection settings file (`.vpn`). vpncmd
    /// reads an argument starting with `/` as an option, and runs with the
    /// daemon's mount namespace's root as its working directory, so the
    /// path is given relative to `/`.
    pub fn account_import(&self, path: &Path) -> Result<VpncmdOutput> {
        let relative = path.strip_prefix("/").unwrap_or(path);
        self.vpncmd(&["AccountImport", &relative.display().to_string()])
    }

    pub fn account_delete(&self, name: &str) -> Result<()> {
        self.vpncmd(&["AccountDelete", name]).map(drop)
    }

    /// [`Self::account_create`] with a standard (hashed) password.
    pub fn account_create_with_password(
        &self,
        name: &str,
        server: &str,
        hub: &str,
        user: &str,
        password: &str,
        nic: &str,
    ) -> Result<()> {
        self.account_create(name, server, hub, user, nic)?;
        self.account_password_set(name, password, PasswordKind::Standard)
    }

    pub fn account_password_set(
        &self,
        name: &str,
        password: &str,
        kind: PasswordKind,
    ) -> Result<()> {
        let password = format!("/PASSWORD:{password}");
        let kind = match kind {
            PasswordKind::Standard => "/TYPE:standard",
            PasswordKind::Radius => "/TYPE:radius",
        };
        self.vpncmd(&["AccountPasswordSet", name, &password, kind])
            .map(drop)
    }

    pub fn account_detail_set(&self, name: &str, detail: &AccountDetail) -> Result<()> {
        let yn = |b: bool| if b { "yes" } else { "no" };
        let args = [
            format!("/MAXTCP:{}", detail.max_tcp),
            format!("/INTERVAL:{}", detail.interval),
            format!("/TTL:{}", detail.ttl),
            format!("/HALF:{}", yn(detail.half_duplex)),
            format!("/BRIDGE:{}", yn(detail.bridge_mode)),
            format!("/MONITOR:{}", yn(detail.monitor_mode)),
            format!("/NOTRACK:{}", yn(detail.no_routing_tracking)),
            format!("/NOQOS:{}", yn(detail.no_qos)),
            format!("/DISABLEUDP:{}", yn(detail.disable_udp)),
        ];
        let mut argv = vec!["AccountDetailSet", name];
        argv.extend(args.iter().map(String::as_str));
        self.vpncmd(&argv).map(drop)
    }

    pub fn account_compress(&self, name: &str, on: bool) -> Result<()> {
        let cmd = if on {
            "AccountCompressEnable"
        } else {
            "AccountCompressDisable"
        };
        self.vpncmd(&[cmd, name]).map(drop)
    }

    pub fn account_encrypt(&self, name: &str, on: bool) -> Result<()> {
        let cmd = if on {
            "AccountEncryptEnable"
        } else {
            "AccountEncryptDisable"
        };
        self.vpncmd(&[cmd, name]).map(drop)
    }

    /// How often a failed connection is retried (`AccountRetrySet`;
    /// `num` 999 = forever, SoftEther's default; `interval` ≥ 5 s).
    pub fn account_retry_set(&self, name: &str, num: u32, interval_secs: u32) -> Result<()> {
        let num = format!("/NUM:{num}");
        let interval = format!("/INTERVAL:{interval_secs}");
        self.vpncmd(&["AccountRetrySet", name, &num, &interval])
            .map(drop)
    }

    /// Starts connecting in the background; see [`Self::wait_connected`].
    pub fn account_connect(&self, name: &str) -> Result<()> {
        self.vpncmd(&["AccountConnect", name]).map(drop)
    }

    pub fn account_disconnect(&self, name: &str) -> Result<()> {
        self.vpncmd(&["AccountDisconnect", name]).map(drop)
    }

    /// `AccountStatusGet`. For an account that is not connecting at all
    /// vpncmd fails (error 37, ERR_ACCOUNT_INACTIVE).
    pub fn account_status(&self, name: &str) -> Result<AccountStatus> {
        let out = self.vpncmd(&["AccountStatusGet", name])?;
        Ok(AccountStatus {
            session_status: out.value("Session Status").unwrap_or_default(),
            items: out.items(),
        })
    }

    /// Polls until account `name` reports [`ESTABLISHED`]. Fails as soon as
    /// the client logs a failed attempt for it (wrong password, unknown
    /// hub, …) — with that attempt's code — or after `timeout`. Call it
    /// after [`Self::account_connect`]; failures logged before this call
    /// are not counted.
    pub fn wait_connected(&self, name: &str, timeout: Duration) -> Result<AccountStatus> {
        let seen = self.connect_failures(name).len();
        let started = Instant::now();
        loop {
            let last_status = match self.account_status(name) {
                Ok(status) if status.is_established() => return Ok(status),
                Ok(status) => status.session_status,
                Err(e) => e.to_string(),
            };
            let failures = self.connect_failures(name);
            if let Some(failure) = failures.get(seen..).and_then(<[_]>::last) {
                return Err(SoftEtherError::ConnectFailed {
                    account: name.to_owned(),
                    code: Some(failure.code),
                    cause: failure.cause.clone(),
                    status: last_status,
                    log: self.account_log(name),
                });
            }
            if started.elapsed() >= timeout {
                return Err(SoftEtherError::ConnectTimeout {
                    account: name.to_owned(),
                    waited: started.elapsed(),
                    status: last_status,
                    log: self.account_log(name),
                });
            }
            thread::sleep(POLL);
        }
    }

    /// The code of the latest failed attempt of account `name` in the
    /// client log (9 = ERR_AUTH_FAILED, 8 = ERR_HUB_NOT_FOUND, …).
    pub fn last_error_code(&self, name: &str) -> Option<u32> {
        self.connect_failures(name).last().map(|f| f.code)
    }

    /// Every failed attempt of account `name` logged so far, oldest first.
    pub fn connect_failures(&self, name: &str) -> Vec<ConnectFailure> {
        self.account_log(name)
            .iter()
            .filter_map(|line| parse_failure(line))
            .collect()
    }

    /// Client log lines that mention account `name`.
    pub fn account_log(&self, name: &str) -> Vec<String> {
        let tag = account_tag(name);
        self.log_lines()
            .into_iter()
            .filter(|l| l.contains(&tag))
            .collect()
    }

    /// All client log lines (`client_log/client_*.log`), oldest first.
    pub fn log_lines(&self) -> Vec<String> {
        read_logs(&self.daemon.state_dir("var/log").join("client_log"))
    }

    /// Stops the client now (dropping does the same).
    pub fn stop(mut self) {
        self.daemon.stop();
    }
}

/// How the client log names an account.
fn account_tag(name: &str) -> String {
    format!("VPN Connection Setting \"{name}\":")
}

/// `… failed. Cause: <text> (code N)` → failure.
fn parse_failure(line: &str) -> Option<ConnectFailure> {
    let (_, cause) = line.split_once("Cause: ")?;
    let (cause, code) = cause.trim_end().rsplit_once(" (code ")?;
    let code = code.strip_suffix(')')?.parse().ok()?;
    Some(ConnectFailure {
        code,
        cause: cause.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::{ConnectFailure, parse_failure};

    #[test]
    fn parses_a_logged_failure() {
        let line = "2026-11-28 12:00:25.903 VPN Connection Setting \"bad\": The connection has \
                    been either disconnected or it failed. Cause: User authentication failed. (code 9)";
        assert_eq!(
            parse_failure(line),
            Some(ConnectFailure {
                code: 9,
                cause: "User authentication failed.".to_owned()
            })
        );
        assert_eq!(
            parse_failure("VPN Connection Setting \"a\": Connection operation starting"),
            None
        );
    }
}
