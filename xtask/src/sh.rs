//! Running commands with their output streamed to the terminal, and a step
//! banner so a long CI log shows where it is.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, bail};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

pub fn step(title: &str) {
    println!("\n==> {title}");
}

/// Runs `argv` in the workspace root with inherited stdio; fails on non-zero.
pub fn run(argv: &[&str]) -> Result<()> {
    run_env(argv, &[])
}

pub fn run_env(argv: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let (program, args) = argv.split_first().context("empty command")?;
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot start `{}`", argv.join(" ")))?;
    if !status.success() {
        bail!("`{}` failed ({status})", argv.join(" "));
    }
    println!(
        "    ({} in {:.1}s)",
        argv.join(" "),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs `argv` quietly and returns its stdout, or None if it could not run
/// or failed. For probes ("is X installed?").
pub fn probe(argv: &[&str]) -> Option<String> {
    let (program, args) = argv.split_first()?;
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}
