//! Builds the eBPF programs (ebpf/programs) for bpfel-unknown-none with the
//! nightly toolchain and bpf-linker, into OUT_DIR, so the loader can embed
//! them with `include_bytes_aligned!`. `cargo xtask setup` installs both.
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let programs = std::path::Path::new(&manifest_dir).join("../../ebpf/programs");
    let programs = programs
        .canonicalize()
        .with_context(|| format!("eBPF crate missing at {}", programs.display()))?;
    let root = programs
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", programs.display()))?;
    // The shared types crate is a path dependency of the programs; a change
    // there must rebuild them too.
    println!("cargo:rerun-if-changed={manifest_dir}/../../ebpf/common");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "ethergate-programs",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
