//! A long-running process started inside a namespace, with its output in a
//! log file, stopped by PID (SIGTERM, then SIGKILL after a grace period).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Child,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// How long a process gets to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);

pub struct Process {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Process {
    pub(crate) fn new(child: Child, name: String, log: PathBuf) -> Self {
        Self { child, name, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` (e.g. SIGHUP for a reload) without waiting.
    pub fn signal(&self, signal: Signal) -> nix::Result<()> {
        kill(pid_of(&self.child), signal)
    }

    /// Waits up to `timeout` for the process to exit on its own; returns its
    /// exit code (None if it was killed by a signal or is still running).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status.code()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => return None,
            }
        }
    }

    /// SIGTERM, a grace period, then SIGKILL; always reaps the child.
    pub fn stop(&mut self) -> Option<i32> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status.code();
        }
        let _ = kill(pid_of(&self.child), Signal::SIGTERM);
        if let Some(code) = self.wait_timeout(TERM_GRACE) {
            return code;
        }
        let _ = self.child.kill();
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pid_of(child: &Child) -> Pid {
    Pid::from_raw(child.id() as i32)
}
