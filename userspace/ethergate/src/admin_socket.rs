//! The admin socket: a Unix stream socket, one JSON request line per
//! connection (see `ethergate_admin::protocol`), served on its own thread.
//!
//! Root-only twice over: the file is mode 0600 in a 0700 directory we
//! create if missing, and every peer's credentials (SO_PEERCRED) must be
//! root or our own uid — a wrong mode left by hand does not open it up.

use std::{
    io::{Read, Write},
    os::unix::{
        fs::{DirBuilderExt, PermissionsExt},
        net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use ethergate_admin::{Request, Response, protocol::DecodeError};
use tracing::{debug, warn};

use crate::control::Control;

/// A client that does not finish its request line in this time is cut off.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

pub struct AdminSocket {
    path: PathBuf,
    thread: Option<JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl AdminSocket {
    /// Binds `path` (replacing a stale socket, refusing if another process
    /// answers on it) and starts serving `control`.
    pub fn start(path: &Path, control: Arc<Mutex<Control>>) -> Result<Self> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                bail!(
                    "another process answers on the admin socket {} (is ethergate already running?)",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing the stale admin socket {}", path.display()))?;
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("binding the admin socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("admin-socket".into())
                .spawn(move || {
                    ethergate_server::privileges::keep_control_capabilities("admin socket");
                    serve(&listener, &control, &stop)
                })
                .context("starting the admin socket thread")?
        };
        Ok(Self {
            path: path.to_owned(),
            thread: Some(thread),
            stop,
        })
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        // Wake the blocking accept so the thread sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(listener: &UnixListener, control: &Mutex<Control>, stop: &std::sync::atomic::AtomicBool) {
    // /proc/self belongs to our effective uid (no extra nix feature needed).
    let me = std::fs::metadata("/proc/self").map_or(0, |m| {
        use std::os::unix::fs::MetadataExt;
        m.uid()
    });
    for stream in listener.incoming() {
        if stop.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let Ok(stream) = stream else {
            continue;
        };
        match peer_uid(&stream) {
            Some(uid) if uid == 0 || uid == me => {}
            other => {
                warn!(uid = ?other, "admin socket: refused a peer that is neither root nor us");
                continue;
            }
        }
        if let Err(e) = answer(stream, control) {
            debug!("admin socket: {e}");
        }
    }
}

fn peer_uid(stream: &UnixStream) -> Option<u32> {
    nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .ok()
        .map(|c| c.uid())
}

fn answer(stream: UnixStream, control: &Mutex<Control>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let line = ethergate_admin::protocol::read_request_line(&stream)?;
    let response = match Request::decode(&line) {
        Ok(request) => handle(request, control),
        Err(DecodeError::Malformed(why)) => Response::Error {
            message: format!("malformed request: {why}"),
        },
        Err(e) => Response::Error {
            message: e.to_string(),
        },
    };
    (&stream).write_all(response.encode().as_bytes())
}

fn handle(request: Request, control: &Mutex<Control>) -> Response {
    let mut control = control
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match request {
        Request::Status => Response::Status(Box::new(control.status())),
        Request::Reload => {
            // systemd hears about it as for SIGHUP (Type=notify reload).
            let systemd = crate::notify::Notifier::from_env();
            systemd.reloading();
            let result = control.reload();
            systemd.ready();
            match result {
                Ok(changes) => Response::Reloaded { changes },
                Err(e) => Response::Error {
                    message: format!("reload refused, running config kept: {e:#}"),
                },
            }
        }
        Request::DisconnectUser { user, hub } => {
            let sessions = control.disconnect_user(hub.as_deref(), &user);
            Response::DisconnectedUser { user, sessions }
        }
        Request::Disconnect { session } => {
            if control.disconnect(&session) {
                Response::Disconnected { session }
            } else {
                Response::Error {
                    message: format!("no session named {session:?}"),
                }
            }
        }
    }
}

/// The CLI side: sends one request, returns the response.
pub fn call(path: &Path, request: &Request) -> Result<Response> {
    let stream = UnixStream::connect(path).with_context(|| {
        format!(
            "cannot reach the admin socket {} (is `ethergate serve` running, and are you root?)",
            path.display()
        )
    })?;
    exchange(stream, path, request)
}

/// Like [`call`], but `None` when no serve listens at `path` (no socket,
/// or one a stopped serve left behind).
pub fn call_if_running(path: &Path, request: &Request) -> Result<Option<Response>> {
    let stream = match UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "cannot reach the admin socket {} (are you root?)",
                path.display()
            )));
        }
    };
    exchange(stream, path, request).map(Some)
}

fn exchange(mut stream: UnixStream, path: &Path, request: &Request) -> Result<Response> {
    // A reload may create taps and attach programs: give it time.
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.write_all(request.encode().as_bytes())?;
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .with_context(|| format!("reading the answer from {}", path.display()))?;
    Response::decode(&reply).map_err(|e| anyhow::anyhow!("unreadable answer from serve: {e}"))
}
