//! A DHCP lease through a VPN NIC, taken with `busybox udhcpc`.
//!
//! udhcpc hands what it learned to a script in environment variables; ours
//! prints them on one tagged line per event, so the lease (including the
//! classless static routes of options 121 and 249, which SecureNAT's
//! `/PUSHROUTE` fills) can be asserted on. On `bound` the script also puts
//! the address on the interface, and the routes if asked, so traffic flows.

use std::{
    fs,
    net::Ipv4Addr,
    os::unix::fs::PermissionsExt,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use ethergate_netns::Topology;

use crate::{
    Result, SoftEtherError,
    command::{Outcome, run_bounded},
};

/// Marks the script's lines in udhcpc's output.
const TAG: &str = "EGDHCP";

/// The variables udhcpc sets for its script (busybox `udhcpc` docs).
const VARS: [&str; 10] = [
    "interface",
    "ip",
    "subnet",
    "mask",
    "router",
    "dns",
    "domain",
    "lease",
    "staticroutes",
    "msstaticroutes",
];

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// One classless static route (RFC 3442).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticRoute {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
}

impl std::fmt::Display for StaticRoute {
    /// udhcpc's own spelling: `10.99.0.0/16 192.168.30.1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} {}", self.network, self.prefix_len, self.gateway)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    /// Lease time in seconds.
    pub lease_secs: Option<u32>,
    /// Option 121.
    pub staticroutes: Vec<StaticRoute>,
    /// Option 249 (Microsoft's copy of 121).
    pub msstaticroutes: Vec<StaticRoute>,
}

/// `busybox udhcpc` on one interface, once.
#[derive(Clone, Debug)]
pub struct Udhcpc {
    interface: String,
    static_routes: bool,
    default_route: bool,
    timeout: Duration,
}

impl Udhcpc {
    /// Takes a lease on `interface` and configures its address (not routes).
    pub fn new(interface: &str) -> Self {
        Self {
            interface: interface.to_owned(),
            static_routes: false,
            default_route: false,
            timeout: Duration::from_secs(20),
        }
    }

    /// Also installs the pushed static routes (option 121).
    pub fn static_routes(mut self, on: bool) -> Self {
        self.static_routes = on;
        self
    }

    /// Also installs a default route via the leased router.
    pub fn default_route(mut self, on: bool) -> Self {
        self.default_route = on;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs udhcpc in `namespace` (5 discovers, 2 s apart, then give up).
    pub fn run(&self, topo: &Topology, namespace: &str) -> Result<Lease> {
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let script = std::env::temp_dir().join(format!("{}-udhcpc-{seq}.sh", topo.prefix()));
        fs::write(&script, self.script())?;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o700))?;
        let argv: Vec<String> = [
            "ip",
            "netns",
            "exec",
            topo.ns(namespace)?,
            "busybox",
            "udhcpc",
            "-i",
            &self.interface,
            "-q",
            "-n",
            "-f",
            "-t",
            "5",
            "-T",
            "2",
            "-s",
            &script.to_string_lossy(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let outcome = run_bounded(&argv, self.timeout, None);
        let _ = fs::remove_file(&script);
        let done = match outcome? {
            Outcome::Finished(done) => done,
            Outcome::Aborted(output) => {
                return Err(self.error("udhcpc was aborted", output));
            }
        };
        if done.exit != Some(0) {
            return Err(self.error("no lease", done.output));
        }
        let bound = done
            .output
            .lines()
            .filter_map(|l| l.strip_prefix(TAG))
            .rfind(|l| l.starts_with(" bound ") || l.starts_with(" renew "))
            .ok_or_else(|| self.error("no bound event", done.output.clone()))?;
        parse_event(bound).ok_or_else(|| self.error("unparsable lease", done.output))
    }

    fn error(&self, reason: &str, output: String) -> SoftEtherError {
        SoftEtherError::Dhcp {
            interface: self.interface.clone(),
            reason: reason.to_owned(),
            output,
        }
    }

    fn script(&self) -> String {
        let fields: Vec<String> = VARS.iter().map(|v| format!("{v}=${{{v}}}")).collect();
        let mut s = format!(
            "#!/bin/sh\n\
             # udhcpc event script written by ethergate-softether\n\
             echo \"{TAG} $1 {}\"\n\
             case \"$1\" in\n\
             deconfig) ip -4 addr flush dev \"$interface\"; ip link set \"$interface\" up ;;\n\
             bound|renew)\n\
             \x20 ip -4 addr flush dev \"$interface\"\n\
             \x20 ip addr add \"$ip/$mask\" dev \"$interface\"\n\
             \x20 ip link set \"$interface\" up\n",
            fields.join("|")
        );
        if self.static_routes {
            s.push_str(
                "  set -- $staticroutes\n\
                 \x20 while [ $# -ge 2 ]; do ip route replace \"$1\" via \"$2\" dev \"$interface\"; shift 2; done\n",
            );
        }
        if self.default_route {
            s.push_str(
                "  [ -n \"$router\" ] && ip route replace default via \"${router%% *}\" dev \"$interface\"\n",
            );
        }
        s.push_str("  ;;\nesac\nexit 0\n");
        s
    }
}

/// `<event> interface=…|ip=…|…` (as printed by the script) → lease.
fn parse_event(line: &str) -> Option<Lease> {
    let (_, fields) = line.trim_start().split_once(' ')?;
    let get = |key: &str| {
        fields
            .split('|')
            .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let addrs = |key: &str| -> Vec<Ipv4Addr> {
        get(key)
            .map(|v| {
                v.split_whitespace()
                    .filter_map(|a| a.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    Some(Lease {
        ip: get("ip")?.parse().ok()?,
        prefix_len: get("mask")?.parse().ok()?,
        router: addrs("router").first().copied(),
        dns: addrs("dns"),
        domain: get("domain").map(str::to_owned),
        lease_secs: get("lease").and_then(|l| l.parse().ok()),
        staticroutes: parse_routes(get("staticroutes").unwrap_or(""))?,
        msstaticroutes: parse_routes(get("msstaticroutes").unwrap_or(""))?,
    })
}

/// `"10.99.0.0/16 192.168.30.1 172.16.0.0/12 192.168.30.1"` → routes.
fn parse_routes(text: &str) -> Option<Vec<StaticRoute>> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .chunks(2)
        .map(|pair| {
            let [net, gw] = pair else { return None };
            let (network, len) = net.split_once('/')?;
            Some(StaticRoute {
                network: network.parse().ok()?,
                prefix_len: len.parse().ok().filter(|l| *l <= 32)?,
                gateway: gw.parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::{parse_event, parse_routes};

    #[test]
    fn parses_a_bound_event() {
        let lease = parse_event(
            " bound interface=vpn_vpn0|ip=192.168.30.10|subnet=255.255.255.0|mask=24|\
             router=192.168.30.1|dns=192.168.30.1|domain=|lease=7200|\
             staticroutes=10.99.0.0/16 192.168.30.1|msstaticroutes=10.99.0.0/16 192.168.30.1",
        )
        .expect("a complete bound event parses");
        assert_eq!(lease.ip, Ipv4Addr::new(192, 168, 30, 10));
        assert_eq!(lease.prefix_len, 24);
        assert_eq!(lease.router, Some(Ipv4Addr::new(192, 168, 30, 1)));
        assert_eq!(lease.domain, None);
        assert_eq!(lease.lease_secs, Some(7200));
        assert_eq!(
            lease.staticroutes[0].to_string(),
            "10.99.0.0/16 192.168.30.1"
        );
        assert_eq!(lease.staticroutes, lease.msstaticroutes);
    }

    #[test]
    fn routes_come_in_pairs() {
        assert_eq!(parse_routes("").map(|r| r.len()), Some(0));
        assert_eq!(
            parse_routes("10.99.0.0/16 192.168.30.1 172.16.0.0/12 192.168.30.1").map(|r| r.len()),
            Some(2)
        );
        assert_eq!(parse_routes("10.99.0.0/16"), None);
        assert_eq!(parse_routes("10.99.0.0/33 1.2.3.4"), None);
    }
}
