//! `cargo xtask bench [--quick] [--only SYSTEM]`: release-builds ethergate
//! and the harness (bench/harness), then runs the side-by-side benchmark
//! as root. The harness builds and tears down its own namespaces and
//! writes bench/results/<timestamp>.json, latest.json and an SVG chart.

use anyhow::{Result, bail};

use std::path::PathBuf;

use crate::sh::{root, run, step};

pub fn main(args: &[String]) -> Result<()> {
    if !ethergate_netns::is_root() {
        bail!("cargo xtask bench needs root (network namespaces, eBPF); run it with sudo");
    }
    crate::setup::main()?;
    step("cargo build --release -p ethergate -p ethergate-bench-harness");
    run(&[
        "cargo",
        "build",
        "--release",
        "-p",
        "ethergate",
        "-p",
        "ethergate-bench-harness",
    ])?;
    let release = target_dir().join("release");
    let harness = release.join("ethergate-bench").display().to_string();
    let ethergate = release.join("ethergate").display().to_string();
    let out = root().join("bench/results").display().to_string();
    let mut argv = vec![harness.as_str(), "--ethergate", &ethergate, "--out", &out];
    argv.extend(args.iter().map(String::as_str));
    step("ethergate-bench");
    run(&argv)
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}
