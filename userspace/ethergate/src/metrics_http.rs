//! `[server] metrics`: Prometheus `/metrics`, `/healthz` (the process
//! answers) and `/readyz` (every configured part is up; 503 with the
//! reasons otherwise), on a small blocking HTTP/1.x server of its own.
//!
//! It serves one request per connection, one connection at a time, with a
//! short read deadline: scrapes and health checks are rare and tiny, and
//! a stuck client costs at most the deadline.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context, Result};
use ethergate_admin::http::{self, HeadError, Method, Route};
use tracing::debug;

use crate::control::Control;

const READ_TIMEOUT: Duration = Duration::from_secs(2);

pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    pub fn start(addr: SocketAddr, control: Arc<Mutex<Control>>) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("binding the metrics endpoint {addr}"))?;
        let addr = listener.local_addr().unwrap_or(addr);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                        if let Ok(stream) = stream
                            && let Err(e) = answer(stream, &control)
                        {
                            debug!("metrics: {e}");
                        }
                    }
                })
                .context("starting the metrics thread")?
        };
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(mut stream: TcpStream, control: &Mutex<Control>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let request = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
        match http::parse_head(&head) {
            Err(HeadError::Incomplete) => continue,
            other => break other,
        }
    };
    let (status, content_type, body, method) = match request {
        Err(e) => (e.status(), "text/plain", format!("{e}\n"), Method::Get),
        Ok(req) => {
            let (status, content_type, body) = route(req.route, control);
            (status, content_type, body, req.method)
        }
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method == Method::Get {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes())
}

fn route(route: Route, control: &Mutex<Control>) -> (&'static str, &'static str, String) {
    if route == Route::Healthz {
        return ("200 OK", "text/plain", "ok\n".to_owned());
    }
    let status = control
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .status();
    match route {
        Route::Metrics => (
            "200 OK",
            ethergate_admin::prometheus::CONTENT_TYPE,
            ethergate_admin::prometheus::render(&status),
        ),
        Route::Readyz if status.ready.is_ready() => ("200 OK", "text/plain", "ready\n".to_owned()),
        Route::Readyz | Route::Healthz => (
            "503 Service Unavailable",
            "text/plain",
            format!("not ready: {}\n", status.ready.problems.join("; ")),
        ),
    }
}
