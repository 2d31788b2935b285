//! `cargo xtask deb`: the release binary packaged as
//! `target/debian/ethergate_VERSION_ARCH.deb` by deploy/package/build-deb.sh
//! (which the deploy tests also run, on the debug binary).

use anyhow::Result;

use crate::sh::{root, run, step};

pub fn main() -> Result<()> {
    step("cargo build --release -p ethergate");
    run(&["cargo", "build", "--release", "-p", "ethergate"])?;
    let target = crate::bench::target_dir();
    let binary = target.join("release/ethergate").display().to_string();
    let out = target.join("debian").display().to_string();
    let script = root()
        .join("deploy/package/build-deb.sh")
        .display()
        .to_string();
    step("deploy/package/build-deb.sh");
    run(&["sh", &script, &binary, &out])
}
