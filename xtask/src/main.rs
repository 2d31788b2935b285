//! Orchestration for humans and CI: `cargo xtask setup | test | demo | bench`.
//!
//! eBPF objects are built by `userspace/dataplane/build.rs`, not here; xtask
//! only installs what that build and the tests need, and runs things in the
//! right order (unprivileged checks first, then the tests that touch kernel
//! state, one at a time).

mod bench;
mod deb;
mod demo;
mod setup;
mod sh;
mod test;

use anyhow::{Result, bail};

const USAGE: &str = "usage: cargo xtask <setup | test | demo | bench | deb>
  setup   install apt packages, nightly rust-src, bpf-linker, cargo-fuzz (idempotent)
  test    setup, then fmt, clippy, unit tests, fuzz smoke, privileged integration tests
  demo    setup, build, run ethergate in a throwaway namespace topology with real traffic
  bench   [--quick] [--only SYSTEM]: ethergate beside SoftEther and kernel NAT, table + bench/results/
  deb     release build packaged as target/debian/ethergate_VERSION_ARCH.deb";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("setup") => setup::main(),
        Some("test") => test::main(),
        Some("demo") => demo::main(),
        Some("bench") => bench::main(&args[1..]),
        Some("deb") => deb::main(),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            bail!("unknown or missing command");
        }
    }
}
