//! Running a short-lived helper (vpncmd, udhcpc) with a deadline.
//!
//! vpncmd never gives up on its own: at a password prompt with stdin at EOF
//! it spins at 100% CPU forever (seen for 13 minutes with a wrong
//! `/PASSWORD:` and stdin from /dev/null). So every helper runs with stdin
//! from /dev/null, a deadline, and an optional "abort marker": as soon as its
//! output contains that text, it is killed — by its own PID, never by name.

use std::{
    io::Read,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use crate::{Result, SoftEtherError};

/// How often a running helper is checked for exit or for the abort marker.
const POLL: Duration = Duration::from_millis(20);

/// What a finished helper printed (stdout and stderr interleaved) and how
/// it ended.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    pub exit: Option<i32>,
    pub output: String,
}

pub(crate) enum Outcome {
    Finished(Finished),
    /// The output contained the abort marker; the helper was killed.
    Aborted(String),
}

/// Runs `argv` with stdin from /dev/null, killing it after `timeout` (an
/// error) or as soon as its output contains `abort_on`.
pub(crate) fn run_bounded(
    argv: &[String],
    timeout: Duration,
    abort_on: Option<&str>,
) -> Result<Outcome> {
    let command = argv.join(" ");
    let (program, args) = argv.split_first().ok_or_else(|| SoftEtherError::Parse {
        what: "command line",
        text: String::new(),
    })?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let output = Arc::new(Mutex::new(String::new()));
    let readers = [
        child.stdout.take().map(|s| pump(s, Arc::clone(&output))),
        child.stderr.take().map(|s| pump(s, Arc::clone(&output))),
    ];
    let deadline = Instant::now() + timeout;
    let result = loop {
        if let Some(status) = child.try_wait()? {
            break Ok(status.code());
        }
        if let Some(marker) = abort_on
            && snapshot(&output).contains(marker)
        {
            kill(&mut child);
            break Err(true);
        }
        if Instant::now() >= deadline {
            kill(&mut child);
            break Err(false);
        }
        thread::sleep(POLL);
    };
    for reader in readers.into_iter().flatten() {
        let _ = reader.join();
    }
    let output = snapshot(&output);
    match result {
        Ok(exit) => Ok(Outcome::Finished(Finished { exit, output })),
        Err(true) => Ok(Outcome::Aborted(output)),
        Err(false) => Err(SoftEtherError::Timeout {
            command,
            timeout,
            output,
        }),
    }
}

fn pump(
    mut stream: impl Read + Send + 'static,
    sink: Arc<Mutex<String>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = sink.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    })
}

fn snapshot(output: &Mutex<String>) -> String {
    output.lock().map(|s| s.clone()).unwrap_or_default()
}

/// Kills our own child by PID and reaps it. `ip netns exec` and `nsenter`
/// (without `--fork`) exec their program, so this PID is the helper itself.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
