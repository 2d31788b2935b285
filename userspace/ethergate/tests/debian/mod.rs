//! A throwaway Debian 12 root for the deploy tests, from a cache under
//! /var/cache/ethergate-test: the first run downloads the packages from
//! deb.debian.org with debootstrap (~40 s) and builds the root (~50 s);
//! later runs unpack the cached root (~10 s). Needs root and debootstrap
//! (`cargo xtask setup` installs it).
#![allow(dead_code)] // each test binary uses its own subset

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

const CACHE: &str = "/var/cache/ethergate-test";
const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// minbase plus what an EC2 image has and the unit needs: systemd (PID 1
/// for the nspawn test, systemctl enable, systemd-analyze) and procps
/// (sysctl).
const INCLUDE: &str = "systemd,systemd-sysv,procps,iproute2,ca-certificates";

pub const BIN: &str = env!("CARGO_BIN_EXE_ethergate");

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

pub fn run(argv: &[&str]) -> Output {
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
    // debootstrap mounts /proc and /sys into the target and leaves them
    // mounted: a private mount namespace takes them away when it exits.
    let include = format!("--include={INCLUDE}");
    let debootstrap = |tarball: &str, more: &[&str]| {
        let mut argv = vec![
            "debootstrap",
            "--variant=minbase",
            &include,
            tarball,
            SUITE,
            &work_arg,
        ];
        argv.extend_from_slice(more);
        run(&ethergate_netns::with_private_mounts(&argv));
    };
    if !debs.exists() {
        debootstrap(&format!("--make-tarball={debs_arg}"), &[MIRROR]);
    }
    debootstrap(&format!("--unpack-tarball={debs_arg}"), &[]);
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

/// `deploy/package/build-deb.sh` with this build's binary; returns the
/// package's path.
pub fn build_deb(out: &Path) -> PathBuf {
    let out_arg = out.display().to_string();
    let script = repo("deploy/package/build-deb.sh").display().to_string();
    let built = run(&["sh", &script, BIN, &out_arg]);
    PathBuf::from(String::from_utf8_lossy(&built.stdout).trim())
}

/// A throwaway root, removed also when the test fails.
pub struct Chroot(pub PathBuf);

impl Chroot {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("eg-{tag}-{}", std::process::id()));
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

    pub fn path(&self, inside: &str) -> PathBuf {
        self.0.join(inside.trim_start_matches('/'))
    }

    /// `argv` inside the root, with /proc mounted in a private mount
    /// namespace (systemctl needs it to see it is in a chroot).
    pub fn exec(&self, argv: &[&str]) -> Output {
        let root = self.0.display().to_string();
        let script = format!("mount -t proc proc '{root}/proc' && exec chroot '{root}' \"$@\"");
        let mut shell = vec!["sh", "-c", &script, "sh"];
        shell.extend_from_slice(argv);
        let full = ethergate_netns::with_private_mounts(&shell);
        Command::new(full[0])
            .args(&full[1..])
            .output()
            .unwrap_or_else(|e| panic!("chroot {}: {e}", argv.join(" ")))
    }

    pub fn exec_ok(&self, argv: &[&str]) -> String {
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

    /// Debian 12's own `systemd-analyze verify` of the installed unit (it
    /// also checks that ExecStart exists) passes without a word.
    pub fn verify_unit(&self) {
        let verify = self.exec(&[
            "systemd-analyze",
            "verify",
            "/usr/lib/systemd/system/ethergate.service",
        ]);
        assert!(
            verify.status.success() && verify.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }

    /// The numeric id of group `name` inside the root.
    pub fn gid(&self, name: &str) -> u32 {
        self.exec_ok(&["getent", "group", name])
            .trim()
            .split(':')
            .nth(2)
            .and_then(|g| g.parse().ok())
            .expect("gid")
    }

    /// Copies what the Packer template uploads (the package built from
    /// this build's binary among it) and runs provision.sh.
    pub fn provision(&self) -> String {
        let src = self.path("/tmp/ethergate");
        std::fs::create_dir_all(&src).expect("src dir");
        build_deb(&src);
        for (from, to) in [
            (PathBuf::from(BIN), "ethergate"),
            (
                repo("deploy/systemd/ethergate.service"),
                "ethergate.service",
            ),
            (repo("deploy/ethergate.toml"), "ethergate.toml"),
            (repo("deploy/setup-system.sh"), "setup-system.sh"),
            (repo("deploy/provision.sh"), "provision.sh"),
        ] {
            std::fs::copy(&from, src.join(to))
                .unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        }
        self.exec_ok(&["/bin/sh", "/tmp/ethergate/provision.sh", "/tmp/ethergate"])
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
