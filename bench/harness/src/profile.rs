//! `--perf`: a `perf record -g` (Debian's linux-perf) running beside a
//! workload, of the server process tree or of the whole machine (kernel
//! data paths: XDP, conntrack), summarised with `perf report --stdio` into
//! `<out>/perf/<name>.txt` so a missed goal names its bottleneck.
//!
//! Only our own `perf` child is signalled, by PID.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use anyhow::{Context, Result};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

pub struct Profile {
    child: Child,
    data: PathBuf,
    txt: PathBuf,
}

/// Starts sampling `pid` (or every CPU when `None`) at 999 Hz with call
/// graphs.
pub fn start(pid: Option<u32>, work: &Path, out: &Path, name: &str) -> Result<Profile> {
    let data = work.join(format!("{name}.perf.data"));
    let dir = out.join("perf");
    std::fs::create_dir_all(&dir)?;
    let txt = dir.join(format!("{name}.txt"));
    let mut cmd = Command::new("perf");
    cmd.args(["record", "-F", "999", "-g", "-q", "-o"])
        .arg(&data);
    match pid {
        // The whole tree: SoftEther's server works in a forked child.
        Some(p) => cmd.args([
            "-p",
            &crate::sys::process_tree(p)
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ]),
        None => cmd.arg("-a"),
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting perf record (apt-get install linux-perf)")?;
    Ok(Profile { child, data, txt })
}

impl Profile {
    /// Stops sampling and writes the report; returns its path.
    pub fn finish(mut self) -> Result<PathBuf> {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
        self.child.wait()?;
        // Per thread first (where the time goes), then per symbol, then
        // per symbol with its callees (which part of the program the
        // kernel's and libc's time belongs to).
        let mut text = Vec::new();
        for (sort, children, limit) in [
            ("comm", "--no-children", "0.5"),
            ("comm,dso,symbol", "--no-children", "0.5"),
            ("symbol", "--children", "3"),
        ] {
            let report = Command::new("perf")
                .args(["report", "--stdio", children, "--percent-limit", limit])
                .args(["-g", "none", "--sort", sort, "-i"])
                .arg(&self.data)
                .stdin(Stdio::null())
                .output()
                .context("perf report")?;
            text.extend_from_slice(&report.stdout);
        }
        std::fs::write(&self.txt, text)?;
        let _ = std::fs::remove_file(&self.data);
        Ok(self.txt)
    }
}
