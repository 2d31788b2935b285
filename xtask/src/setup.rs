//! `cargo xtask setup`: everything the build and the tests need on a fresh
//! Debian 12 machine, installed idempotently. Each piece is probed first and
//! skipped when present, so a second run does nothing and takes seconds.

use anyhow::Result;

use crate::sh::{probe, run, run_env, step};

/// Debian packages: LLVM 22 for bpf-linker; iproute2/ethtool/iputils for the
/// namespace harness; the real peers and baselines the tests talk to.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "iproute2",
    "ethtool",
    "iputils-ping",
    "procps",
    "curl",
    "busybox",
    // socket peers with hashing in tests (upload integrity).
    "python3",
    "iperf3",
    "wrk",
    "nginx-light",
    "iptables",
    "nftables",
    "softether-vpnclient",
    "softether-vpncmd",
    "softether-vpnserver",
    // deploy tests: a Debian 12 root for provision.sh, booted with
    // systemd-nspawn for the unit; the template check; certificate
    // fingerprints in the import test.
    "debootstrap",
    "systemd-container",
    "packer",
    "openssl",
    // cargo xtask bench --perf: name the bottleneck of a missed goal.
    "linux-perf",
    // cargo xtask bench: the OpenVPN 2.6 rows.
    "openvpn",
    // WireGuard users: the reference client (userspace, no kernel module).
    "wireguard-go",
    "wireguard-tools",
    // fail2ban-regex checks deploy/fail2ban's filter against real log
    // lines (the daemon itself is not used).
    "fail2ban",
    // promtool checks /metrics in the admin test (the server is not used).
    "prometheus",
];

/// docs/design.md: newer bpf-linker needs a newer LLVM/rustc than this machine has.
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const CARGO_FUZZ_VERSION: &str = "0.13.2";

pub fn main() -> Result<()> {
    apt_packages()?;
    nightly_rust_src()?;
    bpf_linker()?;
    cargo_fuzz()?;
    println!("setup: everything is in place");
    Ok(())
}

fn apt_packages() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|pkg| {
            probe(&["dpkg-query", "-W", "-f=${Status}", pkg])
                .is_none_or(|status| !status.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        println!("setup: apt packages present");
        return Ok(());
    }
    step(&format!("apt-get install {}", missing.join(" ")));
    let lock = "DPkg::Lock::Timeout=300";
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    run_env(&["apt-get", "-o", lock, "update", "-q"], &env)?;
    let mut install = vec![
        "apt-get",
        "-o",
        lock,
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
    ];
    install.extend(missing.iter().copied());
    run_env(&install, &env)?;
    // The Debian packages enable and start their daemons; tests run their
    // own instances in private namespaces, so stop the system-wide ones.
    for unit in [
        "softether-vpnserver",
        "softether-vpnclient",
        "nginx",
        "openvpn",
        // WireGuard users: the reference client (userspace, no kernel module).
        "wireguard-go",
        "wireguard-tools",
        "fail2ban",
        "prometheus",
        "prometheus-node-exporter",
    ] {
        let _ = probe(&["systemctl", "disable", "--now", unit]);
    }
    Ok(())
}

fn nightly_rust_src() -> Result<()> {
    let toolchains = probe(&["rustup", "toolchain", "list"]).unwrap_or_default();
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        step("rustup toolchain install nightly");
        run(&[
            "rustup",
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ])?;
        return Ok(());
    }
    let components = probe(&[
        "rustup",
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ])
    .unwrap_or_default();
    if components.lines().any(|l| l.starts_with("rust-src")) {
        println!("setup: nightly rust-src present");
        return Ok(());
    }
    step("rustup component add rust-src --toolchain nightly");
    run(&[
        "rustup",
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ])
}

fn bpf_linker() -> Result<()> {
    let version = probe(&["bpf-linker", "--version"]).unwrap_or_default();
    if version.contains(BPF_LINKER_VERSION) {
        println!("setup: bpf-linker {BPF_LINKER_VERSION} present");
        return Ok(());
    }
    step(&format!(
        "cargo install bpf-linker@{BPF_LINKER_VERSION} (LLVM 22)"
    ));
    let spec = format!("bpf-linker@{BPF_LINKER_VERSION}");
    // Without LLVM_PREFIX, llvm-sys finds Debian's default LLVM 14 and fails.
    run_env(
        &[
            "cargo",
            "install",
            &spec,
            "--locked",
            "--no-default-features",
            "--features",
            "llvm-22",
        ],
        &[("LLVM_PREFIX", LLVM_PREFIX)],
    )
}

fn cargo_fuzz() -> Result<()> {
    if probe(&["cargo", "fuzz", "--version"]).is_some() {
        println!("setup: cargo-fuzz present");
        return Ok(());
    }
    step("cargo install cargo-fuzz");
    let spec = format!("cargo-fuzz@{CARGO_FUZZ_VERSION}");
    run(&["cargo", "install", &spec, "--locked"])
}
