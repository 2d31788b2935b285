//! One SoftEther daemon (`vpnserver` or `vpnclient`) in `execsvc`
//! (foreground) mode inside a namespace of a [`Topology`], with its own
//! state, and vpncmd pointed at it.
//!
//! Invariants:
//! * The daemon never sees the host's `/var/lib`, `/var/log` or `/run`: it
//!   runs in a private mount namespace where those three are bind-mounted
//!   from a per-instance scratch directory (the Debian build keeps its
//!   config, logs and pid files under `<dir>/softether`). Whole directories
//!   are covered because `/var/lib/softether` etc. do not exist on the host
//!   and creating them would touch the host.
//! * vpncmd for this instance runs inside the daemon's own mount and network
//!   namespaces (`nsenter --target <daemon pid> --mount --net`), so any file
//!   it writes lands in the same scratch directory.
//! * Only processes we started are ever signalled, by PID: the daemon, and
//!   the worker child it forks (which outlives a SIGTERM to its parent).

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use ethergate_netns::{Process, Topology};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use crate::{
    Result, SoftEtherError,
    command::{Outcome, run_bounded},
    vpncmd::VpncmdOutput,
};

/// Where Debian installs the real binaries (`/usr/bin/*` are exec wrappers).
pub(crate) const LIBEXEC: &str = "/usr/libexec/softether";

/// How long one start of a daemon gets to listen for admin connections and
/// answer RPC; a deadline, not a speed assertion.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts tried before giving up. vpnclient sometimes listens on its admin
/// port yet answers every vpncmd with error 1 for as long as one waits
/// (seen ~half the time in one test on an idle machine; 60 s of waiting
/// did not help, a fresh start does). So a stuck start is stopped and
/// retried rather than waited on.
const START_ATTEMPTS: u32 = 3;

/// Deadline of one vpncmd call; the slowest seen (HubCreate) takes ~0.3 s.
const VPNCMD_TIMEOUT: Duration = Duration::from_secs(20);

/// Grace period after SIGTERM. The server saves vpn_server.config on the
/// way out (someone may read it after `stop`); the client's state is never
/// read back, and it sometimes ignores SIGTERM for seconds.
const SERVER_STOP_GRACE: Duration = Duration::from_secs(3);
const CLIENT_STOP_GRACE: Duration = Duration::from_millis(500);

/// vpncmd's line after a refused login; what follows is a password prompt
/// it would spin on forever.
const ACCESS_DENIED: &str = "Access has been denied.";

/// vpncmd's code when it cannot reach the daemon's RPC (Cedar.h).
const ERR_CONNECT_FAILED: u32 = 1;

/// Distinguishes scratch directories of instances in one process.
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// The state directories the Debian build uses, relative to `/`.
const STATE_DIRS: [&str; 3] = ["var/lib", "var/log", "run"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Server,
    Client,
}

impl Kind {
    fn binary(self) -> &'static str {
        match self {
            Kind::Server => "vpnserver",
            Kind::Client => "vpnclient",
        }
    }

    /// A read-only vpncmd command that needs no set-up, to probe readiness.
    fn probe_command(self) -> &'static str {
        match self {
            Kind::Server => "ServerInfoGet",
            Kind::Client => "VersionGet",
        }
    }

    /// The management port the daemon listens on inside its namespace.
    pub(crate) fn admin_port(self) -> u16 {
        match self {
            Kind::Server => 5555,
            // GC_CLIENT_CONFIG_PORT in 5.x (4.x used 9930).
            Kind::Client => 9931,
        }
    }
}

pub(crate) struct Daemon<'t> {
    topo: &'t Topology,
    namespace: String,
    kind: Kind,
    scratch: PathBuf,
    process: Option<Process>,
}

impl<'t> Daemon<'t> {
    /// Starts the daemon in `namespace` and waits until its management port
    /// accepts TCP connections.
    pub(crate) fn start(topo: &'t Topology, namespace: &str, kind: Kind) -> Result<Self> {
        for tool in [kind.binary(), "vpncmd"] {
            let path = format!("{LIBEXEC}/{tool}/{tool}");
            if !Path::new(&path).exists() {
                return Err(SoftEtherError::MissingBinary(path));
            }
        }
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let scratch = std::env::temp_dir().join(format!(
            "{}-softether-{}-{seq}",
            topo.prefix(),
            kind.binary()
        ));
        let mut mounts = Vec::new();
        for dir in STATE_DIRS {
            let source = scratch.join(dir);
            fs::create_dir_all(source.join("softether"))?;
            mounts.push(format!(
                "mount --bind {} /{dir}",
                shell_quote(&source.to_string_lossy())
            ));
        }
        let script = format!(
            "{} && exec {LIBEXEC}/{bin}/{bin} execsvc",
            mounts.join(" && "),
            bin = kind.binary()
        );
        let mut daemon = Daemon {
            topo,
            namespace: namespace.to_owned(),
            kind,
            scratch,
            process: None,
        };
        let mut attempt = 1;
        loop {
            let argv = ethergate_netns::with_private_mounts(&["sh", "-c", &script]);
            daemon.process = Some(topo.spawn(namespace, &argv)?);
            match daemon.wait_ready() {
                Ok(()) => return Ok(daemon),
                Err(SoftEtherError::Vpncmd {
                    error_code: Some(ERR_CONNECT_FAILED),
                    ..
                }) if attempt < START_ATTEMPTS => {
                    daemon.stop();
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until the management port accepts TCP, then until vpncmd gets
    /// an answer: the port opens before the RPC behind it works, and vpncmd
    /// then fails with error 1 (ERR_CONNECT_FAILED).
    fn wait_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        self.wait_listening(started)?;
        loop {
            match self.vpncmd(&["/PASSWORD:"], &[self.kind.probe_command()]) {
                Ok(_) => return Ok(()),
                Err(SoftEtherError::Vpncmd {
                    error_code: Some(ERR_CONNECT_FAILED),
                    ..
                }) if started.elapsed() < START_TIMEOUT => {
                    thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn wait_listening(&mut self, started: Instant) -> Result<()> {
        let port = self.kind.admin_port();
        loop {
            if !self.process.as_mut().is_some_and(Process::is_running) {
                return Err(SoftEtherError::DaemonExited {
                    daemon: self.kind.binary().to_owned(),
                    log: self.log(),
                });
            }
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let up = self.topo.enter(&self.namespace, || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            })?;
            if up {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(SoftEtherError::NotReady {
                    daemon: self.kind.binary().to_owned(),
                    port,
                    waited: started.elapsed(),
                    log: self.log(),
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the daemon printed on stdout/stderr (little: it logs to files).
    pub(crate) fn log(&self) -> String {
        self.process.as_ref().map(Process::log).unwrap_or_default()
    }

    /// The daemon's private `/var/lib/softether`, `/var/log/softether`, …
    /// as seen from the host.
    pub(crate) fn state_dir(&self, dir: &str) -> PathBuf {
        self.scratch.join(dir).join("softether")
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Runs `vpncmd <target> <mode_args…> /CMD <args…>` inside the daemon's
    /// namespaces. `target` is `localhost:5555 /SERVER` or `localhost
    /// /CLIENT`; `mode_args` carries `/PASSWORD:` (always given: without it
    /// vpncmd prompts and spins) and `/ADMINHUB:`.
    pub(crate) fn vpncmd(&self, mode_args: &[&str], args: &[&str]) -> Result<VpncmdOutput> {
        let pid = self
            .pid()
            .ok_or_else(|| SoftEtherError::DaemonExited {
                daemon: self.kind.binary().to_owned(),
                log: String::new(),
            })?
            .to_string();
        let mut argv: Vec<String> = [
            "nsenter",
            "--target",
            &pid,
            "--mount",
            "--net",
            &format!("{LIBEXEC}/vpncmd/vpncmd"),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        match self.kind {
            Kind::Server => argv.extend([
                format!("localhost:{}", self.kind.admin_port()),
                "/SERVER".into(),
            ]),
            Kind::Client => argv.extend(["localhost".into(), "/CLIENT".into()]),
        }
        argv.extend(mode_args.iter().map(|s| (*s).to_owned()));
        argv.push("/CMD".into());
        argv.extend(args.iter().map(|s| (*s).to_owned()));
        let command = argv[6..].join(" ");
        match run_bounded(&argv, VPNCMD_TIMEOUT, Some(ACCESS_DENIED))? {
            Outcome::Aborted(output) => Err(SoftEtherError::VpncmdAccessDenied { command, output }),
            Outcome::Finished(done) => {
                let out = VpncmdOutput::new(done.output);
                if done.exit == Some(0) && out.completed() {
                    Ok(out)
                } else {
                    Err(SoftEtherError::Vpncmd {
                        command,
                        exit: done.exit,
                        error_code: out.error_code(),
                        output: out.raw().to_owned(),
                    })
                }
            }
        }
    }

    /// Stops the daemon: SIGTERM to it and to the worker child it forked
    /// (found by parent PID) at once, SIGKILL for whichever lingers past
    /// the grace period. (Signalling only the parent left the worker
    /// running; signalling it first made the parent wait ~3 s.)
    pub(crate) fn stop(&mut self) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        let workers = children_of(process.pid());
        for &pid in &workers {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let _ = process.signal(Signal::SIGTERM);
        let grace = match self.kind {
            Kind::Server => SERVER_STOP_GRACE,
            Kind::Client => CLIENT_STOP_GRACE,
        };
        let deadline = Instant::now() + grace;
        while (process.is_running() || workers.iter().any(|&p| alive(p)))
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(20));
        }
        for &pid in &workers {
            if alive(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        if process.is_running() {
            let _ = process.signal(Signal::SIGKILL);
        }
        // Reaps the parent (it has exited or was just killed).
        process.stop();
    }
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("ETHERGATE_KEEP_LOGS").is_none() {
            let _ = fs::remove_dir_all(&self.scratch);
        }
    }
}

/// PIDs whose parent is `parent` (from `/proc/<pid>/stat`, field 4).
fn children_of(parent: u32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // The command name (field 2) may contain spaces: skip past ')'.
                    let rest = stat.rsplit_once(')')?.1;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned();
            Some(state != "Z")
        })
        .unwrap_or(false)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
