//! systemd's readiness protocol (sd_notify(3), `Type=notify`) without
//! libsystemd: one datagram per state change to the unix socket named by
//! `$NOTIFY_SOCKET`, plus `WATCHDOG=1` pings at half of `$WATCHDOG_USEC`.
//!
//! Invariants: without `$NOTIFY_SOCKET` (not started by systemd) every call
//! is a no-op, so serve behaves the same under a shell, a test or systemd;
//! a send failure is logged, never fatal — systemd then reports the unit
//! itself (start timeout, watchdog) rather than ethergate dying of it.

use std::{
    env, io,
    os::unix::net::{SocketAddr, UnixDatagram},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use tracing::{debug, error, warn};

/// A connection to systemd's notification socket, or nothing.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`: an absolute path, or `@name` for the
    /// abstract namespace (what systemd uses inside containers and for
    /// `systemd-run --user`). Other forms (`vsock:`) are not ours to serve.
    pub fn from_env() -> Self {
        let Some(value) = env::var_os("NOTIFY_SOCKET") else {
            return Self::none();
        };
        let value = value.to_string_lossy().into_owned();
        match Self::connect(&value) {
            Ok(n) => n,
            Err(e) => {
                warn!(
                    NOTIFY_SOCKET = value,
                    "cannot use systemd's notify socket: {e}"
                );
                Self::none()
            }
        }
    }

    pub fn none() -> Self {
        Self { target: None }
    }

    fn connect(value: &str) -> io::Result<Self> {
        let addr = if let Some(name) = value.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())?
        } else if value.starts_with('/') {
            SocketAddr::from_pathname(value)?
        } else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "only absolute paths and @abstract names are supported",
            ));
        };
        let socket = UnixDatagram::unbound()?;
        Ok(Self {
            target: Some((socket, addr)),
        })
    }

    /// Listeners, bridges and programs are up: systemd's start job ends and
    /// units ordered after ethergate start.
    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=running");
    }

    /// A reload begins; follow with [`Self::ready`] when it has been
    /// applied or refused. (`Type=notify-reload` would also need
    /// MONOTONIC_USEC; the unit is `Type=notify` with `ExecReload=`, where
    /// systemd does not ask for it.)
    pub fn reloading(&self) {
        self.send("RELOADING=1");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    fn send(&self, message: &str) {
        let Some((socket, addr)) = &self.target else {
            return;
        };
        match socket.send_to_addr(message.as_bytes(), addr) {
            Ok(_) => debug!(message, "sd_notify"),
            Err(e) => warn!(message, "sd_notify failed: {e}"),
        }
    }
}

/// How often to ping: half of `$WATCHDOG_USEC` (sd_watchdog_enabled(3)'s
/// advice), if the watchdog is on and meant for this process
/// (`$WATCHDOG_PID`, when set, names the main PID).
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        env::var("WATCHDOG_USEC").ok().as_deref(),
        env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2))
}

/// Pings the watchdog every `interval` for as long as `alive()` says the
/// appliance is healthy. `alive` is the real check: if it blocks (a
/// deadlocked control plane) or returns false (a dead worker), pings stop
/// and systemd restarts the service after `WatchdogSec`.
pub struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn spawn(
        notifier: Notifier,
        interval: Duration,
        alive: impl Fn() -> bool + Send + 'static,
    ) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("sd-watchdog".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    if !alive() {
                        error!("health check failed: no more watchdog pings; systemd will restart");
                        return;
                    }
                    notifier.watchdog();
                    std::thread::park_timeout(interval);
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// Starts the watchdog when systemd asked for one (`WatchdogSec=`), with
/// `alive` as the health check (serve passes one that looks at the live
/// control object: every current hub open with all its tap queues read,
/// the control lock not wedged).
pub fn start_watchdog(alive: impl Fn() -> bool + Send + 'static) -> Option<Watchdog> {
    let interval = watchdog_interval()?;
    match Watchdog::spawn(Notifier::from_env(), interval, alive) {
        Ok(dog) => Some(dog),
        Err(e) => {
            warn!("cannot start the watchdog thread: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::linux::net::SocketAddrExt;
    use std::sync::atomic::AtomicU32;

    use super::*;

    fn recv(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn states_arrive_on_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("eg-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let systemd = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier::connect(&path.display().to_string()).expect("connect");
        n.ready();
        assert_eq!(recv(&systemd), "READY=1\nSTATUS=running");
        n.reloading();
        assert_eq!(recv(&systemd), "RELOADING=1");
        n.stopping();
        assert_eq!(recv(&systemd), "STOPPING=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn abstract_names_start_with_at() {
        let name = format!("eg-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let systemd = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        let n = Notifier::connect(&format!("@{name}")).expect("connect");
        n.watchdog();
        assert_eq!(recv(&systemd), "WATCHDOG=1");
    }

    #[test]
    fn unsupported_or_absent_sockets_are_no_ops() {
        assert!(Notifier::connect("vsock:2:1234").is_err());
        assert!(Notifier::connect("relative/path").is_err());
        let n = Notifier::none();
        assert!(n.target.is_none());
        n.ready(); // nothing to send to, nothing happens
    }

    #[test]
    fn watchdog_interval_is_half_and_for_us_only() {
        let half = Some(Duration::from_secs(15));
        assert_eq!(watchdog_interval_from(Some("30000000"), None, 7), half);
        assert_eq!(watchdog_interval_from(Some("30000000"), Some("7"), 7), half);
        assert_eq!(watchdog_interval_from(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval_from(None, None, 7), None);
    }

    #[test]
    fn watchdog_pings_while_alive_and_stops_when_not() {
        let name = format!("eg-watchdog-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let systemd = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        let checks = Arc::new(AtomicU32::new(0));
        let seen = Arc::clone(&checks);
        let dog = Watchdog::spawn(
            Notifier::connect(&format!("@{name}")).expect("connect"),
            Duration::from_millis(20),
            // Healthy for three checks, then sick.
            move || seen.fetch_add(1, Ordering::Relaxed) < 3,
        )
        .expect("spawn");
        for _ in 0..3 {
            assert_eq!(recv(&systemd), "WATCHDOG=1");
        }
        systemd
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        assert!(
            systemd.recv(&mut buf).is_err(),
            "no ping after a failed check"
        );
        drop(dog);
        assert_eq!(checks.load(Ordering::Relaxed), 4);
    }
}
