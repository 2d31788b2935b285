//! Declaring, building and tearing down a topology of namespaces and veths.
//!
//! Build order matters: sysctls go first so `net.*.conf.default.*` values
//! apply to the links created after them; addresses before `up`; routes
//! last, once their next hops are reachable. Teardown is the reverse and
//! never stops at the first failure: every step is attempted.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

use nix::{
    sched::{CloneFlags, setns},
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use crate::{
    NAME_PREFIX, NetnsError, Process,
    command::{self, CommandOutput},
};

/// Distinguishes topologies built by one process (tests run in parallel).
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// Where iproute2 keeps named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// One end of a veth pair.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub namespace: String,
    pub interface: String,
    /// CIDR addresses, IPv4 or IPv6 (`"10.0.0.1/16"`, `"2001:db8::1/64"`).
    pub addresses: Vec<String>,
}

impl Endpoint {
    pub fn new(namespace: &str, interface: &str, addresses: &[&str]) -> Self {
        Self {
            namespace: namespace.to_owned(),
            interface: interface.to_owned(),
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
        }
    }
}

#[derive(Default)]
pub struct TopologyBuilder {
    namespaces: Vec<String>,
    sysctls: Vec<(String, String, String)>,
    veths: Vec<(Endpoint, Endpoint)>,
    routes: Vec<(String, String)>,
}

impl TopologyBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a namespace called `name` (its real name gets a unique prefix).
    pub fn namespace(mut self, name: &str) -> Self {
        self.namespaces.push(name.to_owned());
        self
    }

    /// Sets `key` (e.g. `net.ipv4.ip_forward`) to `value` inside `namespace`.
    pub fn sysctl(mut self, namespace: &str, key: &str, value: &str) -> Self {
        self.sysctls
            .push((namespace.to_owned(), key.to_owned(), value.to_owned()));
        self
    }

    /// Applies the same sysctl in every namespace declared so far.
    pub fn sysctl_everywhere(mut self, key: &str, value: &str) -> Self {
        for ns in self.namespaces.clone() {
            self = self.sysctl(&ns, key, value);
        }
        self
    }

    /// Connects two namespaces with a veth pair.
    pub fn veth(mut self, a: Endpoint, b: Endpoint) -> Self {
        self.veths.push((a, b));
        self
    }

    /// Adds a route in `namespace`, in `ip route add` syntax
    /// (`"default via 10.0.0.1"`, `"10.0.0.0/16 via 192.168.30.1"`).
    pub fn route(mut self, namespace: &str, route: &str) -> Self {
        self.routes.push((namespace.to_owned(), route.to_owned()));
        self
    }

    /// Creates everything. On failure, whatever was created is removed.
    pub fn build(self) -> Result<Topology, NetnsError> {
        remove_stale();
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{NAME_PREFIX}{}x{seq}", std::process::id());
        let log_dir = std::env::temp_dir().join(&prefix);
        fs::create_dir_all(&log_dir)?;
        let mut topology = Topology {
            prefix,
            namespaces: BTreeMap::new(),
            log_dir,
        };
        // If any step fails, `topology` drops here and removes what exists.
        for name in &self.namespaces {
            let full = format!("{}-{name}", topology.prefix);
            command::run_checked(&["ip", "netns", "add", &full])?;
            topology.namespaces.insert(name.clone(), full);
            topology.ip(name, &["link", "set", "lo", "up"])?;
            // No duplicate address detection, link-local addresses included:
            // addresses work the moment a link is up, so tests never race
            // a one-second DAD timer.
            for key in ["all", "default"] {
                topology.exec(
                    name,
                    &[
                        "sysctl",
                        "-qw",
                        &format!("net.ipv6.conf.{key}.accept_dad=0"),
                    ],
                )?;
            }
        }
        for (ns, key, value) in &self.sysctls {
            topology.exec(ns, &["sysctl", "-qw", &format!("{key}={value}")])?;
        }
        for (a, b) in &self.veths {
            let ns_a = topology.ns(&a.namespace)?.to_owned();
            let ns_b = topology.ns(&b.namespace)?.to_owned();
            // Created directly inside the two namespaces: the root namespace
            // never sees (or routes to) either end.
            command::run_checked(&[
                "ip",
                "link",
                "add",
                &a.interface,
                "netns",
                &ns_a,
                "type",
                "veth",
                "peer",
                "name",
                &b.interface,
                "netns",
                &ns_b,
            ])?;
            for end in [a, b] {
                for address in &end.addresses {
                    let mut args = vec!["addr", "add", address.as_str(), "dev", &end.interface];
                    if address.contains(':') {
                        // Skip duplicate address detection: the address is
                        // usable at once and tests don't wait on timers.
                        args.push("nodad");
                    }
                    topology.ip(&end.namespace, &args)?;
                }
                topology.ip(&end.namespace, &["link", "set", &end.interface, "up"])?;
            }
        }
        for (ns, route) in &self.routes {
            let mut args = vec!["route", "add"];
            args.extend(route.split_whitespace());
            topology.ip(ns, &args)?;
        }
        Ok(topology)
    }
}

/// A built topology. Dropping it removes everything it created.
pub struct Topology {
    prefix: String,
    /// Short name → real namespace name.
    namespaces: BTreeMap<String, String>,
    log_dir: PathBuf,
}

impl Topology {
    pub fn builder() -> TopologyBuilder {
        TopologyBuilder::new()
    }

    /// The unique prefix of this topology's names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Real name of the namespace declared as `name`.
    pub fn ns(&self, name: &str) -> Result<&str, NetnsError> {
        self.namespaces
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| NetnsError::UnknownNamespace(name.to_owned()))
    }

    /// Real names of all namespaces.
    pub fn namespace_names(&self) -> Vec<String> {
        self.namespaces.values().cloned().collect()
    }

    /// Runs `argv` inside `namespace` and fails unless it exits 0.
    pub fn exec(&self, namespace: &str, argv: &[&str]) -> Result<CommandOutput, NetnsError> {
        command::run_checked(&self.wrap(namespace, argv)?)
    }

    /// Runs `argv` inside `namespace`, whatever its exit status.
    pub fn run(&self, namespace: &str, argv: &[&str]) -> Result<CommandOutput, NetnsError> {
        command::run(&self.wrap(namespace, argv)?)
    }

    /// `ip <args>` inside `namespace`.
    pub fn ip(&self, namespace: &str, args: &[&str]) -> Result<CommandOutput, NetnsError> {
        let ns = self.ns(namespace)?;
        let mut argv = vec!["ip", "-n", ns];
        argv.extend_from_slice(args);
        command::run_checked(&argv)
    }

    /// Starts `argv` inside `namespace` in the background; its output goes
    /// to a log file. The returned [`Process`] stops it when dropped, and the
    /// topology's teardown kills anything still running in its namespaces.
    pub fn spawn(&self, namespace: &str, argv: &[&str]) -> Result<Process, NetnsError> {
        let wrapped = self.wrap(namespace, argv)?;
        let name = argv
            .first()
            .and_then(|p| Path::new(p).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let log = self.log_dir.join(format!("{namespace}-{name}-{seq}.log"));
        let out = fs::File::create(&log)?;
        let err = out.try_clone()?;
        let (program, args) = wrapped.split_first().ok_or_else(|| NetnsError::Spawn {
            command: String::new(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
        })?;
        // `ip netns exec` execs the program, so the child's PID is the
        // program's own and signals reach it directly.
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| NetnsError::Spawn {
                command: command::describe(argv),
                source,
            })?;
        Ok(Process::new(child, name, log))
    }

    /// Runs `f` on a thread that has joined `namespace`'s network namespace
    /// (sockets it opens, interfaces it looks up and eBPF attachments it makes
    /// all happen there). A panic in `f` propagates to the caller.
    pub fn enter<R: Send>(
        &self,
        namespace: &str,
        f: impl FnOnce() -> R + Send,
    ) -> Result<R, NetnsError> {
        let ns = self.ns(namespace)?.to_owned();
        let path = Path::new(NETNS_DIR).join(&ns);
        std::thread::scope(|scope| {
            let handle = scope.spawn(move || {
                let file = fs::File::open(&path).map_err(|e| NetnsError::Enter {
                    namespace: ns.clone(),
                    reason: e.to_string(),
                })?;
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Enter {
                    namespace: ns.clone(),
                    reason: e.to_string(),
                })?;
                Ok(f())
            });
            match handle.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    fn wrap<'a>(&'a self, namespace: &str, argv: &[&'a str]) -> Result<Vec<&'a str>, NetnsError> {
        let ns = self.ns(namespace)?;
        let mut wrapped = vec!["ip", "netns", "exec", ns];
        wrapped.extend_from_slice(argv);
        Ok(wrapped)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.namespaces.values() {
            kill_everything_in(ns);
            let _ = command::run(&["ip", "netns", "del", ns]);
        }
        if std::env::var_os("ETHERGATE_KEEP_LOGS").is_none() {
            let _ = fs::remove_dir_all(&self.log_dir);
        }
    }
}

/// SIGKILLs every process still inside namespace `ns` — all of them started
/// by this topology (directly or as their children) — and waits until the
/// namespace is empty, so deleting it really frees it.
fn kill_everything_in(ns: &str) {
    for _ in 0..50 {
        let Ok(out) = command::run(&["ip", "netns", "pids", ns]) else {
            return;
        };
        let pids: Vec<i32> = out
            .stdout
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Removes namespaces (and their processes) left by runs of this harness
/// whose process no longer exists — e.g. a test binary killed by SIGKILL.
pub fn remove_stale() {
    let Ok(entries) = fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = owner_pid(&name) else {
            continue;
        };
        if !Path::new(&format!("/proc/{owner}")).exists() {
            kill_everything_in(&name);
            let _ = command::run(&["ip", "netns", "del", &name]);
            if let Some((prefix, _)) = name.split_once('-') {
                // `prefix` is `eg<pid>x<seq>`, never empty: owner_pid parsed it.
                let _ = fs::remove_dir_all(std::env::temp_dir().join(prefix));
            }
        }
    }
}

/// `eg<pid>x<seq>-<name>` → pid.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let (pid, after) = rest.split_once('x')?;
    let (seq, _) = after.split_once('-')?;
    seq.parse::<u32>().ok()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::owner_pid;

    #[test]
    fn owner_pid_parses_only_our_names() {
        assert_eq!(owner_pid("eg1234x0-client"), Some(1234));
        assert_eq!(owner_pid("eg1234x17-nat-side"), Some(1234));
        assert_eq!(owner_pid("egypt"), None);
        assert_eq!(owner_pid("eg12x-client"), None);
        assert_eq!(owner_pid("client"), None);
    }
}
