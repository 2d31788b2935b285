//! NAT state that outlives the process: the flow maps and the program links
//! pinned under bpffs, so a restart or a binary upgrade keeps every
//! established flow.
//!
//! Layout: `<root>/<LAYOUT>/<MAP>` for the flow maps and
//! `<root>/<LAYOUT>/links/<interface>/<program>` for the uplink's and inside
//! interfaces' links. A process that exits (cleanly or not) leaves both in
//! place: the old programs keep translating with the old rules until the
//! next process adopts the maps (the loader reuses a pinned map by name)
//! and swaps its own programs into the pinned links with
//! `BPF_LINK_UPDATE`, which is atomic per hook. Hub taps die with the
//! process, so their links are not pinned; their DNAT flows are in the
//! pinned maps and live on.
//!
//! A new process adopts nothing it cannot use: maps of another layout
//! (`LAYOUT` is part of the path and changes whenever a key or value does)
//! or of another size (`[nat.limits] max_flows` changed) are removed and the
//! reason is reported; links that no longer attach anywhere (their device
//! is gone) are unpinned and attached afresh. [`forget`] removes it all,
//! which detaches the programs (`ethergate nat forget`).

use crate::map_names;
use std::{
    io,
    path::{Path, PathBuf},
};

use aya::{maps::MapData, programs::links::PinnedLink};

/// Under this, each network namespace's appliance keeps its NAT state in
/// `netns-<inode>-<cookie>` (see [`default_root`]).
pub const PIN_BASE: &str = "/run/ethergate-nat";
/// Changes whenever a pinned map's key, value or type changes, so that no
/// binary adopts maps laid out for another.
/// (bpffs refuses names with a dot.)
const LAYOUT: &str = "nat-v3";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// The maps that carry flow state across restarts, and whether their size
/// is `max_flows`.
pub(crate) const PINNED_MAPS: &[(&str, bool)] = &[
    (map_names::NAT_OUT, true),
    (map_names::NAT_IN, true),
    (map_names::DNAT_OUT, true),
    (map_names::DNAT_IN, true),
    (map_names::FRAGMENTS, false),
    (map_names::SOURCE_FLOWS, false),
    (map_names::ACTIVE_FLOWS, false),
];

/// What a starting process found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateOrigin {
    /// Flow maps of a previous process were adopted.
    Adopted,
    /// No previous state.
    Fresh,
    /// Previous state existed but could not be used, and was removed.
    Replaced { why: String },
}

impl std::fmt::Display for StateOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Adopted => f.write_str("adopted the flows of the previous process"),
            Self::Fresh => f.write_str("no previous NAT state"),
            Self::Replaced { why } => write!(f, "previous NAT state dropped: {why}"),
        }
    }
}

/// The pinned state of one appliance.
#[derive(Debug)]
pub(crate) struct Pins {
    dir: PathBuf,
    pub(crate) origin: StateOrigin,
}

impl Pins {
    /// Makes `root` usable (bpffs mounted, directories made, unusable
    /// state removed) for a data plane of `max_flows` flows.
    pub(crate) fn prepare(root: &Path, max_flows: u32) -> io::Result<Self> {
        ensure_bpffs(root)?;
        std::fs::create_dir_all(root)?;
        let mut why = Vec::new();
        for entry in std::fs::read_dir(root)? {
            let entry = entry?;
            if entry.file_name() != LAYOUT {
                why.push(format!(
                    "{} has another layout than {LAYOUT}",
                    entry.path().display()
                ));
                remove_tree(&entry.path())?;
            }
        }
        let dir = root.join(LAYOUT);
        std::fs::create_dir_all(dir.join("links"))?;
        let mut found = false;
        for (name, sized) in PINNED_MAPS {
            let path = dir.join(name);
            if !path.exists() {
                continue;
            }
            found = true;
            let expected = if *sized { Some(max_flows) } else { None };
            if let Some(problem) = incompatible(&path, expected) {
                why.push(format!("{name}: {problem}"));
            }
        }
        if !why.is_empty() && found {
            for (name, _) in PINNED_MAPS {
                let _ = std::fs::remove_file(dir.join(name));
            }
        }
        let origin = match (found, why.is_empty()) {
            (_, false) => StateOrigin::Replaced {
                why: why.join("; "),
            },
            (true, true) => StateOrigin::Adopted,
            (false, true) => StateOrigin::Fresh,
        };
        Ok(Self { dir, origin })
    }

    pub(crate) fn map(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn link(&self, interface: &str, program: &str) -> PathBuf {
        // bpffs refuses names with a dot, and interface names may have one
        // (eth0.100).
        let interface = interface.replace('%', "%25").replace('.', "%2e");
        let dir = self.dir.join("links").join(interface);
        let _ = std::fs::create_dir_all(&dir);
        dir.join(program)
    }

    /// Link pins that this process did not claim (an interface no longer
    /// in the config, an XDP link after a switch to tc): removed, which
    /// detaches them.
    pub(crate) fn remove_unclaimed_links(&self, claimed: &[PathBuf]) {
        let Ok(interfaces) = std::fs::read_dir(self.dir.join("links")) else {
            return;
        };
        for interface in interfaces.flatten() {
            let Ok(links) = std::fs::read_dir(interface.path()) else {
                continue;
            };
            for link in links.flatten() {
                if !claimed.contains(&link.path()) {
                    let _ = std::fs::remove_file(link.path());
                }
            }
            // Only succeeds once empty.
            let _ = std::fs::remove_dir(interface.path());
        }
    }
}

/// The link pinned at `path`, if there is one.
pub(crate) fn pinned_link(path: &Path) -> Option<aya::programs::links::FdLink> {
    PinnedLink::from_pin(path).ok().map(Into::into)
}

/// Why the map pinned at `path` cannot be adopted, if it cannot.
fn incompatible(path: &Path, max_entries: Option<u32>) -> Option<String> {
    let map = match MapData::from_pin(path) {
        Ok(map) => map,
        Err(e) => return Some(format!("unreadable ({e})")),
    };
    let info = match map.info() {
        Ok(info) => info,
        Err(e) => return Some(format!("no info ({e})")),
    };
    match max_entries {
        Some(n) if info.max_entries() != n => Some(format!(
            "sized for {} flows, the config asks for {n}",
            info.max_entries()
        )),
        _ => None,
    }
}

/// The pin root of the calling thread's network namespace:
/// `PIN_BASE/netns-<inode>-<cookie>`. Two appliances in two namespaces
/// never share state. The inode says which namespaces are alive (see
/// [`remove_stale_namespaces`]), but the kernel reuses the inode of a
/// namespace that is gone; the cookie (SO_NETNS_COOKIE) is never reused
/// while the machine runs, so a new namespace that got an old inode never
/// adopts the old one's state ([`remove_reused_inode_state`] frees it).
pub fn default_root() -> io::Result<PathBuf> {
    let (inode, cookie) = netns_identity()?;
    Ok(Path::new(PIN_BASE).join(format!("netns-{inode}-{cookie}")))
}

/// Removes the state left by an earlier namespace that had the calling
/// thread's namespace's inode: it can never be adopted (its cookie
/// differs) and only holds kernel memory and links to interfaces that are
/// gone. Best effort: state this process may not remove (left by a serve
/// that ran as root, when this one runs as the service user) is listed in
/// the error, and the caller carries on with its own root, which never
/// collides with it.
pub fn remove_reused_inode_state() -> Result<usize, String> {
    let (inode, cookie) = netns_identity().map_err(|e| format!("network namespace id: {e}"))?;
    let prefix = format!("netns-{inode}-");
    let own = format!("{prefix}{cookie}");
    let Ok(entries) = std::fs::read_dir(PIN_BASE) else {
        return Ok(0);
    };
    let mut removed = 0;
    let mut failed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name != own {
            match remove_tree(&entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => failed.push(format!("{}: {e}", entry.path().display())),
            }
        }
    }
    if failed.is_empty() {
        Ok(removed)
    } else {
        Err(failed.join("; "))
    }
}

/// The calling thread's network namespace's inode and cookie.
fn netns_identity() -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let inode = std::fs::metadata("/proc/thread-self/ns/net")?.ino();
    Ok((inode, netns_cookie()?))
}

/// The calling thread's network namespace's cookie (Linux ≥ 5.14).
fn netns_cookie() -> io::Result<u64> {
    // SAFETY: plain socket(2); closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: SO_NETNS_COOKIE writes one u64 into `cookie`, whose size we
    // pass.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    };
    let error = io::Error::last_os_error();
    // SAFETY: fd came from socket(2) above and is closed once.
    unsafe { libc::close(fd) };
    if rc < 0 {
        return Err(error);
    }
    Ok(cookie)
}

/// Removes the state of namespaces that no longer exist (a deleted
/// container or test namespace): their pinned maps hold memory and their
/// links attach nowhere. Returns how many were removed. Only as root: an
/// unprivileged service cannot read other users' processes' namespaces and
/// would take them for dead ones. (A namespace whose processes even root
/// cannot see — another PID namespace mounted with hidepid — would be
/// taken for dead too; its appliance keeps running, but its next restart
/// starts without flows.)
pub fn remove_stale_namespaces() -> io::Result<usize> {
    use std::os::unix::fs::MetadataExt as _;
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(0);
    }
    let Ok(entries) = std::fs::read_dir(PIN_BASE) else {
        return Ok(0);
    };
    let mut live = std::collections::BTreeSet::new();
    if let Ok(netns) = std::fs::read_dir("/run/netns") {
        live.extend(
            netns
                .flatten()
                .filter_map(|e| e.metadata().ok().map(|m| m.ino())),
        );
    }
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            if let Ok(m) = std::fs::metadata(p.path().join("ns/net")) {
                live.insert(m.ino());
            }
        }
    }
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(ino) = name
            .to_str()
            .and_then(|n| n.strip_prefix("netns-"))
            .and_then(|n| n.split('-').next())
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if !live.contains(&ino) {
            remove_tree(&entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes all pinned NAT state under `root`, detaching the programs whose
/// links were pinned there. Returns whether there was any.
pub fn forget(root: &Path) -> io::Result<bool> {
    if !root.exists() {
        return Ok(false);
    }
    remove_tree(root)?;
    Ok(true)
}

fn remove_tree(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            remove_tree(&entry?.path())?;
        }
        std::fs::remove_dir(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// Mounts a bpffs instance of its own at [`PIN_BASE`] when `root` lies
/// there and none is mounted yet. Its own rather than the system's
/// /sys/fs/bpf: that one is root's (mode 0700), where the service's user
/// cannot reach; the systemd unit mounts this one for it beforehand.
fn ensure_bpffs(root: &Path) -> io::Result<()> {
    let base = Path::new(PIN_BASE);
    let mut probe = root.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    if is_bpffs(&probe) {
        return Ok(());
    }
    if !root.starts_with(base) {
        return Err(io::Error::other(format!(
            "{} is not on a BPF filesystem (mount one: mount -t bpf bpf DIR)",
            root.display()
        )));
    }
    std::fs::create_dir_all(base)?;
    nix::mount::mount(
        Some("ethergate-nat"),
        base,
        Some("bpf"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        Some("mode=0700"),
    )
    .map_err(|e| io::Error::other(format!("mounting bpffs at {PIN_BASE}: {e}")))
}

fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
}
