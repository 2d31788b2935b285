//! The real SoftEther VPN Server (`vpnserver execsvc`) in a namespace,
//! configured through vpncmd with a known administrator password.

use std::{fs, net::Ipv4Addr, path::PathBuf};

use ethergate_netns::Topology;

use crate::{
    Result,
    daemon::{Daemon, Kind},
    vpncmd::VpncmdOutput,
};

/// The administrator password [`SoftEtherServer::start`] sets.
pub const DEFAULT_ADMIN_PASSWORD: &str = "ethergate-admin";

/// Virtual DHCP server settings of SecureNAT (vpncmd `DhcpSet`). Every field
/// is passed explicitly: vpncmd prompts for a missing one, and a prompt
/// with stdin at EOF never returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpSettings {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
    pub mask: Ipv4Addr,
    /// Lease time in seconds.
    pub lease: u32,
    /// `None` hands out no router option.
    pub gateway: Option<Ipv4Addr>,
    pub dns: Option<Ipv4Addr>,
    pub dns2: Option<Ipv4Addr>,
    pub domain: Option<String>,
    pub log: bool,
    /// Classless static routes (options 121 and 249): (network, prefix
    /// length, gateway).
    pub push_routes: Vec<(Ipv4Addr, u8, Ipv4Addr)>,
}

impl Default for DhcpSettings {
    /// SoftEther's defaults (`NiSetDefaultVhOption`, protocol notes §11).
    fn default() -> Self {
        let host = Ipv4Addr::new(192, 168, 30, 1);
        Self {
            start: Ipv4Addr::new(192, 168, 30, 10),
            end: Ipv4Addr::new(192, 168, 30, 200),
            mask: Ipv4Addr::new(255, 255, 255, 0),
            lease: 7200,
            gateway: Some(host),
            dns: Some(host),
            dns2: None,
            domain: None,
            log: true,
            push_routes: Vec::new(),
        }
    }
}

impl DhcpSettings {
    fn vpncmd_args(&self) -> Vec<String> {
        let opt = |a: Option<Ipv4Addr>| a.map_or_else(|| "none".to_owned(), |a| a.to_string());
        let routes: Vec<String> = self
            .push_routes
            .iter()
            .map(|(net, len, gw)| format!("{net}/{len}/{gw}"))
            .collect();
        vec![
            format!("/START:{}", self.start),
            format!("/END:{}", self.end),
            format!("/MASK:{}", self.mask),
            format!("/EXPIRE:{}", self.lease),
            format!("/GW:{}", opt(self.gateway)),
            format!("/DNS:{}", opt(self.dns)),
            format!("/DNS2:{}", opt(self.dns2)),
            format!("/DOMAIN:{}", self.domain.as_deref().unwrap_or("none")),
            format!("/LOG:{}", if self.log { "yes" } else { "no" }),
            format!(
                "/PUSHROUTE:{}",
                if routes.is_empty() {
                    "none".to_owned()
                } else {
                    routes.join(",")
                }
            ),
        ]
    }
}

/// A running `vpnserver`. Stopped (with its worker) when dropped; the
/// borrow of the [`Topology`] makes it drop before the namespaces go.
pub struct SoftEtherServer<'t> {
    daemon: Daemon<'t>,
    password: String,
}

impl<'t> SoftEtherServer<'t> {
    /// Starts vpnserver in `namespace` with private state, waits until it
    /// accepts admin connections on localhost:5555, and sets the
    /// administrator password to [`DEFAULT_ADMIN_PASSWORD`]. A fresh server
    /// has hub `DEFAULT` and listeners on 443, 992, 1194 and 5555.
    pub fn start(topo: &'t Topology, namespace: &str) -> Result<Self> {
        let daemon = Daemon::start(topo, namespace, Kind::Server)?;
        // A fresh server has no password: log in with an empty one.
        daemon.vpncmd(
            &["/PASSWORD:"],
            &["ServerPasswordSet", DEFAULT_ADMIN_PASSWORD],
        )?;
        Ok(Self {
            daemon,
            password: DEFAULT_ADMIN_PASSWORD.to_owned(),
        })
    }

    pub fn admin_password(&self) -> &str {
        &self.password
    }

    /// PID of the vpnserver process (the watchdog parent of its worker).
    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// Escape hatch: any server-wide vpncmd command, as server admin.
    pub fn vpncmd(&self, args: &[&str]) -> Result<VpncmdOutput> {
        let password = format!("/PASSWORD:{}", self.password);
        self.daemon.vpncmd(&[&password], args)
    }

    /// A server-wide vpncmd command logging in with `password` instead of
    /// the one set: a refused login fails with
    /// [`crate::SoftEtherError::VpncmdAccessDenied`] at once.
    pub fn vpncmd_with_password(&self, password: &str, args: &[&str]) -> Result<VpncmdOutput> {
        let password = format!("/PASSWORD:{password}");
        self.daemon.vpncmd(&[&password], args)
    }

    /// Any vpncmd command on `hub`, as server admin (`/ADMINHUB:`; `/HUB:`
    /// would log in as hub admin with the hub's password).
    pub fn hub_vpncmd(&self, hub: &str, args: &[&str]) -> Result<VpncmdOutput> {
        let password = format!("/PASSWORD:{}", self.password);
        let hub = format!("/ADMINHUB:{hub}");
        self.daemon.vpncmd(&[&password, &hub], args)
    }

    /// Creates virtual hub `name`. Its hub-admin password is the server's.
    pub fn hub_create(&self, name: &str) -> Result<()> {
        let password = format!("/PASSWORD:{}", self.password);
        self.vpncmd(&["HubCreate", name, &password]).map(drop)
    }

    pub fn hub_delete(&self, name: &str) -> Result<()> {
        self.vpncmd(&["HubDelete", name]).map(drop)
    }

    /// Creates `user` on `hub` with password authentication.
    pub fn user_create(&self, hub: &str, user: &str, password: &str) -> Result<()> {
        self.hub_vpncmd(
            hub,
            &[
                "UserCreate",
                user,
                "/GROUP:none",
                "/REALNAME:none",
                "/NOTE:none",
            ],
        )?;
        let password = format!("/PASSWORD:{password}");
        self.hub_vpncmd(hub, &["UserPasswordSet", user, &password])
            .map(drop)
    }

    /// Turns on SecureNAT (virtual NAT + DHCP, host 192.168.30.1/24 unless
    /// changed with [`Self::secure_nat_host_set`]).
    pub fn secure_nat_enable(&self, hub: &str) -> Result<()> {
        self.hub_vpncmd(hub, &["SecureNatEnable"]).map(drop)
    }

    pub fn secure_nat_disable(&self, hub: &str) -> Result<()> {
        self.hub_vpncmd(hub, &["SecureNatDisable"]).map(drop)
    }

    /// Sets SecureNAT's virtual host address (`SecureNatHostSet`), keeping
    /// its MAC: vpncmd insists on a `/MAC:`, so the current one (from
    /// `SecureNatHostGet`) is passed back.
    pub fn secure_nat_host_set(&self, hub: &str, ip: Ipv4Addr, mask: Ipv4Addr) -> Result<()> {
        let current = self.hub_vpncmd(hub, &["SecureNatHostGet"])?;
        let mac = current
            .items()
            .into_iter()
            .find(|(k, _)| k.contains("MAC"))
            .map(|(_, v)| v)
            .ok_or_else(|| crate::SoftEtherError::Parse {
                what: "SecureNatHostGet MAC address",
                text: current.body().to_owned(),
            })?;
        let mac = format!("/MAC:{mac}");
        let ip = format!("/IP:{ip}");
        let mask = format!("/MASK:{mask}");
        self.hub_vpncmd(hub, &["SecureNatHostSet", &mac, &ip, &mask])
            .map(drop)
    }

    /// Configures SecureNAT's DHCP server (`DhcpSet`).
    pub fn dhcp_set(&self, hub: &str, settings: &DhcpSettings) -> Result<()> {
        let args = settings.vpncmd_args();
        let mut argv = vec!["DhcpSet"];
        argv.extend(args.iter().map(String::as_str));
        self.hub_vpncmd(hub, &argv).map(drop)
    }

    /// `DhcpGet`, as the table vpncmd prints.
    pub fn dhcp_get(&self, hub: &str) -> Result<Vec<(String, String)>> {
        Ok(self.hub_vpncmd(hub, &["DhcpGet"])?.items())
    }

    /// Bridges `hub` to the existing interface `device` in the server's
    /// namespace (`BridgeCreate … /TAP:no`).
    pub fn bridge_create(&self, hub: &str, device: &str) -> Result<()> {
        let device = format!("/DEVICE:{device}");
        self.vpncmd(&["BridgeCreate", hub, &device, "/TAP:no"])
            .map(drop)
    }

    pub fn listener_create(&self, port: u16) -> Result<()> {
        self.vpncmd(&["ListenerCreate", &port.to_string()])
            .map(drop)
    }

    pub fn listener_delete(&self, port: u16) -> Result<()> {
        self.vpncmd(&["ListenerDelete", &port.to_string()])
            .map(drop)
    }

    /// TCP listener ports and their status text (`Listening`, `Error`, …).
    pub fn listeners(&self) -> Result<Vec<(u16, String)>> {
        Ok(self
            .vpncmd(&["ListenerList"])?
            .rows()
            .into_iter()
            .filter_map(|row| match row.as_slice() {
                [port, status] => {
                    let port = port.trim_start_matches("TCP ").parse().ok()?;
                    Some((port, status.clone()))
                }
                _ => None,
            })
            .collect())
    }

    /// The current configuration, as vpnserver would write it to
    /// `vpn_server.config` (vpncmd `ConfigGet`, so it includes changes not
    /// yet flushed to disk).
    pub fn config_text(&self) -> Result<String> {
        let out = self.vpncmd(&["ConfigGet"])?;
        let body = out.body();
        // The config starts at its byte-order mark or first comment and
        // ends before vpncmd's closing line.
        let start = body
            .find("# Software Configuration File")
            .or_else(|| body.find("declare root"))
            .unwrap_or(0);
        let end = body
            .rfind("The command completed successfully.")
            .unwrap_or(body.len());
        Ok(body[start..end].trim_end().to_owned() + "\n")
    }

    /// `vpn_server.config` as last written to disk by the server.
    pub fn config_path(&self) -> PathBuf {
        self.daemon.state_dir("var/lib").join("vpn_server.config")
    }

    /// Server log lines (`server_log/vpn_*.log`), oldest first.
    pub fn log_lines(&self) -> Vec<String> {
        read_logs(&self.daemon.state_dir("var/log").join("server_log"))
    }

    /// Stops the server now (dropping does the same).
    pub fn stop(mut self) {
        self.daemon.stop();
    }
}

/// All lines of the `*.log` files in `dir`, files in name (= date) order.
pub(crate) fn read_logs(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|f| fs::read(f).ok())
        .flat_map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}
