//! deploy/provision.sh for real: run in a debootstrap'd Debian 12 root
//! (chroot), then the installed files, the service user, the enabled unit
//! (Debian's own `systemd-analyze verify`) and `ethergate check` on the
//! default config and on the config cloud-init writes.
//!
//! The root comes from a cache under /var/cache/ethergate-test: the first
//! run downloads the packages from deb.debian.org with debootstrap (~40 s)
//! and builds the root (~50 s); later runs unpack the cached root (~10 s).
//! Needs root and debootstrap (cargo xtask setup installs it).

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
};

const BIN: &str = env!("CARGO_BIN_EXE_ethergate");
const CACHE: &str = "/var/cache/ethergate-test";
const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// minbase plus what an EC2 image has and the unit needs: systemd (for
/// systemctl enable and systemd-analyze) and procps (sysctl).
const INCLUDE: &str = "systemd,systemd-sysv,procps,iproute2,ca-certificates";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn run(argv: &[&str]) -> std::process::Output {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", argv.join(" ")));
    assert!(
        out.status.success(),
        "{} failed:\n{}{}",
        argv.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The cached Debian 12 root as a tarball, built once.
fn cached_root() -> PathBuf {
    let cache = Path::new(CACHE);
    let root_tgz = cache.join(format!("{SUITE}-root.tgz"));
    if root_tgz.exists() {
        return root_tgz;
    }
    assert!(
        Path::new("/usr/sbin/debootstrap").exists(),
        "debootstrap is missing: run `cargo xtask setup` (apt-get install debootstrap)"
    );
    std::fs::create_dir_all(cache).expect("cache dir");
    let debs = cache.join(format!("{SUITE}-minbase.tgz"));
    let work = cache.join(format!("build-{}", std::process::id()));
    let work_arg = work.display().to_string();
    let debs_arg = debs.display().to_string();
    if !debs.exists() {
        run(&[
            "debootstrap",
            "--variant=minbase",
            &format!("--include={INCLUDE}"),
            &format!("--make-tarball={debs_arg}"),
            SUITE,
            &work_arg,
            MIRROR,
        ]);
    }
    run(&[
        "debootstrap",
        "--variant=minbase",
        &format!("--include={INCLUDE}"),
        &format!("--unpack-tarball={debs_arg}"),
        SUITE,
        &work_arg,
    ]);
    let partial = root_tgz.with_extension("partial");
    run(&[
        "tar",
        "-C",
        &work_arg,
        "-czf",
        &partial.display().to_string(),
        ".",
    ]);
    std::fs::rename(&partial, &root_tgz).expect("publish cached root");
    let _ = std::fs::remove_dir_all(&work);
    root_tgz
}

/// A throwaway root, removed also when the test fails.
struct Chroot(PathBuf);

impl Chroot {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("eg-provision-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("root dir");
        let tgz = cached_root();
        run(&[
            "tar",
            "-C",
            &dir.display().to_string(),
            "-xzf",
            &tgz.display().to_string(),
        ]);
        Self(dir)
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.0.join(inside.trim_start_matches('/'))
    }

    /// `argv` inside the root, with /proc mounted in a private mount
    /// namespace (systemctl needs it to see it is in a chroot).
    fn exec(&self, argv: &[&str]) -> std::process::Output {
        let root = self.0.display().to_string();
        let script = format!("mount -t proc proc '{root}/proc' && exec chroot '{root}' \"$@\"");
        let mut full = vec![
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ];
        full.extend_from_slice(argv);
        Command::new(full[0])
            .args(&full[1..])
            .output()
            .unwrap_or_else(|e| panic!("chroot {}: {e}", argv.join(" ")))
    }

    fn exec_ok(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "chroot {} failed:\n{text}",
            argv.join(" ")
        );
        text
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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
    let root = Chroot::new();
    let src = root.path("/tmp/ethergate");
    std::fs::create_dir_all(&src).expect("src dir");
    for (from, to) in [
        (PathBuf::from(BIN), "ethergate"),
        (
            repo("deploy/systemd/ethergate.service"),
            "ethergate.service",
        ),
        (repo("deploy/ethergate.toml"), "ethergate.toml"),
        (repo("deploy/provision.sh"), "provision.sh"),
    ] {
        std::fs::copy(&from, src.join(to)).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }

    let first = root.exec_ok(&["/bin/sh", "/tmp/ethergate/provision.sh", "/tmp/ethergate"]);
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
        std::fs::read_to_string(root.path("/etc/sysctl.d/60-ethergate.conf")).expect("sysctl");
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
    let group = root.exec_ok(&["getent", "group", "ethergate"]);
    let gid: u32 = group
        .trim()
        .split(':')
        .nth(2)
        .and_then(|g| g.parse().ok())
        .expect("gid");
    let config_meta =
        std::fs::metadata(root.path("/etc/ethergate/ethergate.toml")).expect("config");
    assert_eq!((config_meta.uid(), config_meta.gid()), (0, gid));

    // Debian 12's own systemd checks the unit (and that ExecStart exists).
    let verify = root.exec(&[
        "systemd-analyze",
        "verify",
        "/usr/lib/systemd/system/ethergate.service",
    ]);
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );

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
    assert!(again.contains("kept the existing"), "{again}");
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
