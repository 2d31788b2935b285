//! `cargo xtask test`: the whole suite, in the order that fails fastest.
//!
//! Tests that touch kernel state (load eBPF, create namespaces) run after the
//! pure ones, with `--test-threads=1` so no two of them race on the kernel.
//! Fuzz targets get a short smoke run; long campaigns are run by hand.

use std::path::Path;

use anyhow::{Result, bail};

use crate::{
    setup,
    sh::{probe, root, run, step},
};

/// Crates whose tests need root: they load eBPF programs or build
/// namespaces.
const PRIVILEGED: &[&str] = &[
    "ethergate-dataplane",
    "ethergate-bridge",
    "ethergate-netns",
    "ethergate-integration",
    "ethergate-softether",
    "ethergate",
];

/// cargo-fuzz crates (own workspaces, nightly): every target of each gets
/// a smoke run, and their sources the same fmt check as the workspace.
const FUZZ_CRATES: &[&str] = &[
    "userspace/proto/fuzz",
    "userspace/hub/fuzz",
    "userspace/admin/fuzz",
    "userspace/ethergate/fuzz",
    "userspace/wireguard/fuzz",
];

/// Seconds per fuzz target in the smoke run.
const FUZZ_SMOKE_SECS: &str = "15";

pub fn main() -> Result<()> {
    if !nix_is_root() {
        bail!("cargo xtask test needs root (eBPF, network namespaces); run it with sudo");
    }
    setup::main()?;
    report_disk_use();

    step("cargo fmt --check");
    run(&["cargo", "fmt", "--all", "--check"])?;
    for krate in FUZZ_CRATES {
        let manifest = format!("{krate}/Cargo.toml");
        run(&["cargo", "fmt", "--manifest-path", &manifest, "--check"])?;
    }

    step("cargo clippy (host crates) -D warnings");
    run(&[
        "cargo",
        "clippy",
        "--workspace",
        "--exclude",
        "ethergate-programs",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;

    step("cargo clippy (eBPF programs, bpfel-unknown-none) -D warnings");
    run(&[
        "cargo",
        "+nightly",
        "clippy",
        "-p",
        "ethergate-programs",
        "--target",
        "bpfel-unknown-none",
        "-Zbuild-std=core",
        "--release",
        "--",
        "-D",
        "warnings",
    ])?;

    step("unit and property tests");
    let mut unit = vec![
        "cargo",
        "test",
        "--workspace",
        "--exclude",
        "ethergate-programs",
    ];
    for krate in PRIVILEGED {
        unit.extend(["--exclude", krate]);
    }
    run(&unit)?;

    let script = root().join("xtask/fuzz-smoke.sh").display().to_string();
    for krate in FUZZ_CRATES {
        step(&format!("fuzz smoke run: {krate}"));
        let dir = root().join(krate).display().to_string();
        run(&[&script, &dir, FUZZ_SMOKE_SECS])?;
    }

    step("privileged tests (eBPF, namespaces), one at a time");
    // One cargo invocation: one feature resolution and one build for all
    // of them (separate `-p` runs re-resolve features and rebuild); test
    // binaries run one after another and --test-threads=1 serialises the
    // tests inside each.
    let mut privileged = vec!["cargo", "test"];
    for krate in PRIVILEGED {
        privileged.extend(["-p", krate]);
    }
    privileged.extend(["--", "--test-threads=1"]);
    run(&privileged)?;

    // serve keeps NAT state pinned across restarts on purpose; the tests'
    // namespaces are gone now, so is any reason to keep theirs.
    run(&[
        "cargo",
        "run",
        "-q",
        "-p",
        "ethergate",
        "--",
        "nat",
        "forget",
        "--stale",
    ])?;
    assert_nothing_left_behind()?;
    report_disk_use();
    println!("\nall tests passed");
    Ok(())
}

/// The suite once failed on CI only because the disk filled up; print what
/// the target dir holds and what is free so the next such failure is
/// obvious from the log, and growth is visible before it fails.
fn report_disk_use() {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    let target = target.display().to_string();
    let used = probe(&["du", "-sh", &target]).unwrap_or_default();
    let free =
        probe(&["df", "-h", "--output=avail", &root().display().to_string()]).unwrap_or_default();
    println!(
        "disk: target dir {} | free on the workspace's filesystem: {}",
        used.split_whitespace().next().unwrap_or("(empty)"),
        free.lines().nth(1).map(str::trim).unwrap_or("unknown"),
    );
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The harness promises to remove its namespaces; check it kept that promise
/// across the whole run (names start with `eg<pid>x`).
fn assert_nothing_left_behind() -> Result<()> {
    let Ok(entries) = std::fs::read_dir(Path::new("/run/netns")) else {
        return Ok(());
    };
    let leftovers: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("eg") && n.contains('x') && n.contains('-'))
        .collect();
    if !leftovers.is_empty() {
        bail!("tests left namespaces behind: {}", leftovers.join(", "));
    }
    Ok(())
}
