//! Signals as events: SIGINT/SIGTERM (stop) and SIGHUP (reload) are blocked
//! and read from a signalfd, so the main loop handles them synchronously —
//! no async-signal-safety rules, no flags polled from handlers.

use std::{os::fd::AsFd, time::Duration};

use nix::{
    poll::{PollFd, PollFlags, PollTimeout, poll},
    sys::{
        signal::{SigSet, SigmaskHow, Signal, pthread_sigmask},
        signalfd::{SfdFlags, SignalFd},
    },
};

pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks the signals in the calling thread (call before spawning
    /// threads, so they inherit the mask) and opens the signalfd.
    pub fn install() -> nix::Result<Self> {
        let mut set = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(signal);
        }
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Ok(Self { fd })
    }

    /// Waits up to `timeout` (forever if None) for one of our signals.
    pub fn wait(&mut self, timeout: Option<Duration>) -> nix::Result<Option<Signal>> {
        let timeout = match timeout {
            None => PollTimeout::NONE,
            Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
        };
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, timeout)? == 0 {
            return Ok(None);
        }
        Ok(self
            .fd
            .read_signal()?
            .and_then(|info| Signal::try_from(info.ssi_signo as i32).ok()))
    }
}
