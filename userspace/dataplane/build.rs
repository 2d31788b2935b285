//! Builds the eBPF programs (ebpf/programs) for bpfel-unknown-none with the
//! nightly toolchain and bpf-linker, and copies the object into OUT_DIR so the
//! loader can embed it with `include_bytes_aligned!`. `cargo xtask setup`
//! installs both.
//!
//! Why not aya-build: it builds into `OUT_DIR`, and OUT_DIR changes with every
//! feature set this crate is resolved with (clippy, the unit-test selection,
//! the privileged-test selection, …). Each of those rebuilt `core` and the
//! programs from scratch into its own ~285 MiB directory, which is what filled
//! the CI machine's disk. Here one target directory per cargo profile
//! (`target/<profile>/ebpf`) is shared by all of them, and the nested cargo's
//! own fingerprints decide what to rebuild.
use std::{
    env,
    ffi::OsString,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

const PACKAGE: &str = "ethergate-programs";
const TARGET: &str = "bpfel-unknown-none";

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=ETHERGATE_EBPF_TOOLCHAIN");
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR")?);
    let ebpf = manifest_dir.join("../../ebpf");
    let programs = ebpf
        .join("programs")
        .canonicalize()
        .with_context(|| format!("eBPF crate missing under {}", ebpf.display()))?;
    // The programs and the shared types crate they depend on.
    println!("cargo:rerun-if-changed={}", programs.display());
    println!("cargo:rerun-if-changed={}", ebpf.join("common").display());

    let target_dir = shared_target_dir(&out_dir);
    let toolchain = env::var("ETHERGATE_EBPF_TOOLCHAIN").unwrap_or_else(|_| "nightly".into());

    let mut cmd = Command::new("rustup");
    cmd.args(["run", &toolchain, "cargo", "build", "--package", PACKAGE])
        .args([
            "--bins",
            "--release",
            "--target",
            TARGET,
            "-Z",
            "build-std=core",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&programs)
        .env("CARGO_ENCODED_RUSTFLAGS", encoded_rustflags()?);
    // The outer cargo's compiler (and clippy's driver, under `cargo clippy`)
    // must not leak into the nightly build.
    for key in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(key);
    }
    // Anything the nested cargo prints on stdout would be read by the outer
    // cargo as `cargo:` directives; send it to stderr, which cargo shows when
    // the build fails.
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("dup stderr")?;
    cmd.stdout(Stdio::from(stderr));
    let status = cmd.status().with_context(|| {
        format!("running {cmd:?} (is rustup installed? run `cargo xtask setup`)")
    })?;
    if !status.success() {
        bail!("building the eBPF programs failed ({status}); command: {cmd:?}");
    }

    let object = target_dir.join(TARGET).join("release").join(PACKAGE);
    std::fs::copy(&object, out_dir.join(PACKAGE))
        .with_context(|| format!("copying {} into OUT_DIR", object.display()))?;
    Ok(())
}

/// `target/<profile>/ebpf`, found from OUT_DIR
/// (`target/<profile>/build/<pkg>-<hash>/out`); OUT_DIR itself if the layout
/// is not the one cargo documents.
fn shared_target_dir(out_dir: &Path) -> PathBuf {
    let mut ancestors = out_dir.ancestors();
    let build = ancestors.nth(2);
    match (build, ancestors.next()) {
        (Some(build), Some(profile)) if build.file_name() == Some("build".as_ref()) => {
            profile.join("ebpf")
        }
        _ => out_dir.join("ebpf"),
    }
}

/// RUSTFLAGS for the programs: the target arch cfg aya-ebpf reads, full debug
/// info and BTF (the loader needs BTF for maps and relocations).
fn encoded_rustflags() -> anyhow::Result<OsString> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").context("CARGO_CFG_TARGET_ARCH")?;
    let flags = [
        format!("--cfg=bpf_target_arch=\"{arch}\""),
        "-Cdebuginfo=2".to_owned(),
        "-Clink-arg=--btf".to_owned(),
    ];
    Ok(flags.join("\x1f").into())
}
