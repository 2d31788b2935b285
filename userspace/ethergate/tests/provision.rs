//! deploy/provision.sh and the .deb for real: run in a debootstrap'd Debian
//! 12 root (chroot), then the installed files, the service user, the
//! enabled unit (Debian's own `systemd-analyze verify`) and `ethergate
//! check` on the default config and on the config cloud-init writes; the
//! package alone installs, and purging it leaves the root as it was.
//!
//! The root comes from a cache (tests/debian): the first run downloads and
//! builds it (~1.5 min), later runs unpack it (~10 s). Needs root,
//! debootstrap and packer (cargo xtask setup installs both).

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    process::Command,
};

mod debian;
use debian::{BIN, Chroot, build_deb, repo};

/// The config cloud-init writes: the `content: |` block of the user-data.
fn cloud_init_config() -> String {
    let yaml =
        std::fs::read_to_string(repo("deploy/cloud-init/user-data.yaml")).expect("user-data");
    let mut lines = yaml
        .lines()
        .skip_while(|l| l.trim() != "content: |")
        .skip(1);
    let first = lines.next().expect("content block");
    let indent = first.len() - first.trim_start().len();
    std::iter::once(first)
        .chain(
            lines.take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent),
        )
        .map(|l| l.get(indent..).unwrap_or("").to_owned() + "\n")
        .collect()
}

#[test]
fn provision_sh_installs_a_working_service_in_debian_12() {
    let root = Chroot::new("provision");
    let first = root.provision();
    assert!(
        first.contains("ok (1 hub(s), 1 user(s), nat on)"),
        "{first}"
    );

    // Files, modes, owners.
    let mode = |p: &str| {
        std::fs::metadata(root.path(p))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("/usr/bin/ethergate"), 0o755);
    assert_eq!(
        std::fs::read(root.path("/usr/lib/systemd/system/ethergate.service")).expect("unit"),
        std::fs::read(repo("deploy/systemd/ethergate.service")).expect("unit")
    );
    assert_eq!(mode("/etc/ethergate"), 0o750);
    assert_eq!(mode("/etc/ethergate/ethergate.toml"), 0o640);
    let sysctl =
        std::fs::read_to_string(root.path("/usr/lib/sysctl.d/60-ethergate.conf")).expect("sysctl");
    assert!(sysctl.contains("net.ipv4.ip_forward = 1"));
    let wants = root.path("/etc/systemd/system/multi-user.target.wants/ethergate.service");
    assert!(
        std::fs::symlink_metadata(&wants).is_ok(),
        "service not enabled: no {}",
        wants.display()
    );

    // The service user: a system account without a login shell, owning
    // the config's group.
    let passwd = root.exec_ok(&["getent", "passwd", "ethergate"]);
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    let uid: u32 = fields[2].parse().expect("uid");
    assert!(uid < 1000, "not a system account: {passwd}");
    assert!(fields[6].ends_with("nologin"), "{passwd}");
    let gid = root.gid("ethergate");
    let config_meta =
        std::fs::metadata(root.path("/etc/ethergate/ethergate.toml")).expect("config");
    assert_eq!((config_meta.uid(), config_meta.gid()), (0, gid));

    root.verify_unit();

    // The config cloud-init writes is valid once its placeholder hash is
    // replaced, and rejected (so its runcmd check fails loudly) before.
    let cloud = cloud_init_config();
    assert!(
        cloud.contains("[nat]") && cloud.contains("REPLACE-WITH"),
        "{cloud}"
    );
    let target = root.path("/etc/ethergate/ethergate.toml");
    std::fs::write(&target, &cloud).expect("write cloud config");
    let rejected = root.exec(&[
        "/usr/bin/ethergate",
        "check",
        "--config",
        "/etc/ethergate/ethergate.toml",
    ]);
    assert_eq!(
        rejected.status.code(),
        Some(1),
        "the placeholder must not pass"
    );
    let hash = ethergate_config::PasswordHash::from_password("tsumura", "pw").to_base64();
    std::fs::write(
        &target,
        cloud.replace("REPLACE-WITH-ethergate-user-hash-OUTPUT", &hash),
    )
    .expect("write cloud config");
    root.exec_ok(&[
        "/usr/bin/ethergate",
        "check",
        "--config",
        "/etc/ethergate/ethergate.toml",
    ]);

    // Idempotent, and an operator's config survives a re-provision.
    let again = root.exec_ok(&["/bin/sh", "/tmp/ethergate/provision.sh", "/tmp/ethergate"]);
    assert!(again.contains("installed the package"), "{again}");
    assert!(
        std::fs::read_to_string(&target)
            .expect("config")
            .contains(&hash),
        "re-provisioning replaced the operator's config"
    );
}

/// `packer validate` with Debian's Packer (1.6): the template parses, every
/// source and provisioner is well-formed and every uploaded file exists.
/// (The plugins block lives in plugins.pkr.hcl, which 1.6 does not know.)
#[test]
fn packer_template_validates() {
    let dist = std::env::temp_dir().join(format!("eg-packer-{}", std::process::id()));
    for arch in ["x86_64", "aarch64"] {
        std::fs::create_dir_all(dist.join(arch)).expect("dist dir");
        std::fs::copy(BIN, dist.join(arch).join("ethergate")).expect("binary");
    }
    let out = Command::new("packer")
        .arg("validate")
        .arg(format!("-var=dist_dir={}", dist.display()))
        .arg(format!("-var=deploy_dir={}", repo("deploy").display()))
        .arg(format!("-var=docs_dir={}", repo("docs").display()))
        .arg(repo("deploy/packer/ethergate.pkr.hcl"))
        // No version check against checkpoint.hashicorp.com: tests stay
        // on this machine.
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .expect("packer (cargo xtask setup installs it)");
    let _ = std::fs::remove_dir_all(&dist);
    assert!(
        out.status.success(),
        "packer validate:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every path under `root` except what dpkg, apt and the system's user
/// database keep for themselves (the service user stays after a purge, as
/// Debian does) and systemd's runtime files (`systemd-analyze` writes one;
/// /run is a tmpfs on a booted system).
fn tree(root: &std::path::Path) -> std::collections::BTreeSet<String> {
    const OWN: [&str; 13] = [
        "proc/",
        "tmp/",
        "var/lib/dpkg/",
        "var/log/",
        "var/cache/",
        "var/lib/apt/",
        "etc/passwd",
        "etc/group",
        "etc/shadow",
        "etc/gshadow",
        "etc/subuid",
        "etc/subgid",
        "run/systemd/",
    ];
    let mut paths = std::collections::BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let key = if is_dir { format!("{rel}/") } else { rel };
            if OWN.iter().any(|own| key.starts_with(own)) {
                continue;
            }
            if is_dir {
                stack.push(path);
            }
            paths.insert(key);
        }
    }
    paths
}

#[test]
fn the_deb_installs_verifies_and_purges_clean() {
    let root = Chroot::new("deb");
    let before = tree(&root.0);
    let deb = build_deb(&root.path("/tmp"));
    let inside = format!("/tmp/{}", deb.file_name().expect("name").to_string_lossy());
    root.exec_ok(&["dpkg", "-i", &inside]);

    let conffiles = root.exec_ok(&["dpkg-query", "-W", "-f=${Conffiles}", "ethergate"]);
    assert!(
        conffiles.contains("/etc/ethergate/ethergate.toml"),
        "{conffiles}"
    );
    for file in [
        "/usr/bin/ethergate",
        "/usr/share/man/man1/ethergate.1.gz",
        "/usr/share/man/man1/ethergate-user-add.1.gz",
        "/usr/share/bash-completion/completions/ethergate",
        "/usr/share/zsh/vendor-completions/_ethergate",
        "/usr/share/fish/vendor_completions.d/ethergate.fish",
        "/usr/lib/sysctl.d/60-ethergate.conf",
        "/usr/share/doc/ethergate/operator.md",
        "/etc/systemd/system/multi-user.target.wants/ethergate.service",
    ] {
        assert!(
            std::fs::symlink_metadata(root.path(file)).is_ok(),
            "{file} missing"
        );
    }
    let meta = std::fs::metadata(root.path("/etc/ethergate/ethergate.toml")).expect("config");
    let gid = root.gid("ethergate");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.permissions().mode() & 0o7777),
        (0, gid, 0o640)
    );
    root.verify_unit();
    let checked = root.exec_ok(&[
        "ethergate",
        "check",
        "--config",
        "/etc/ethergate/ethergate.toml",
    ]);
    assert!(
        checked.contains("ok (1 hub(s), 1 user(s), nat on)"),
        "{checked}"
    );
    let man = root.exec_ok(&[
        "sh",
        "-c",
        "zcat /usr/share/man/man1/ethergate-user-add.1.gz",
    ]);
    assert!(man.contains("password"), "{man}");

    // What serve would have made, then purge: nothing of ethergate stays.
    std::fs::create_dir_all(root.path("/var/lib/ethergate")).expect("state dir");
    std::fs::write(root.path("/var/lib/ethergate/leases-mikalab.json"), "{}").expect("state");
    root.exec_ok(&["dpkg", "--purge", "ethergate"]);
    let after = tree(&root.0);
    let left: Vec<&String> = after.difference(&before).collect();
    let lost: Vec<&String> = before.difference(&after).collect();
    assert!(
        left.is_empty() && lost.is_empty(),
        "left behind {left:?}, removed {lost:?}"
    );
}
