//! Many parallel logins to a SoftEther-protocol server, each one
//! `ethergate_login::login` (blocking TCP + rustls + ethergate-proto),
//! timed from `connect()` to the welcome (session established). Used for the login rate and for holding idle sessions
//! while the server's memory is read.
//!
//! Source addresses rotate over several client addresses, so per-IP
//! connection caps (SoftEther's MaxConnectionsPerIP) are not what is
//! measured.

use std::{
    net::Ipv4Addr,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow};
use ethergate_login::{Session, login, login_offering_udp};
use hdrhistogram::Histogram;

/// Where to log in, and from which source addresses (in turn).
#[derive(Clone)]
pub struct Target {
    pub login: ethergate_login::Target,
    pub sources: Vec<Ipv4Addr>,
    /// Offer UDP acceleration at login, as the Debian client does.
    pub offer_udp: bool,
}

pub struct Logins {
    pub sessions: Vec<Session>,
    /// connect → welcome, µs.
    pub latency: Histogram<u64>,
    pub failures: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

/// `total` logins over `parallel` threads on the calling thread's network
/// namespace. With `keep`, every session stays open in the result;
/// otherwise each is closed (TLS close_notify, then FIN) once established.
pub fn run(target: &Target, total: usize, parallel: usize, keep: bool) -> Result<Logins> {
    let tls = ethergate_login::tls_config()?;
    let next = AtomicUsize::new(0);
    let results = Mutex::new((Vec::new(), Vec::new(), 0usize, None::<String>));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..parallel.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total || crate::sys::interrupted() {
                        return;
                    }
                    let source = target.sources[i % target.sources.len()];
                    let outcome = if target.offer_udp {
                        login_offering_udp(&target.login, source, &tls)
                    } else {
                        login(&target.login, source, &tls)
                    };
                    let mut r = results.lock().unwrap_or_else(|p| p.into_inner());
                    match outcome {
                        Ok((session, took)) => {
                            r.1.push(took);
                            if keep {
                                r.0.push(session);
                            } else {
                                drop(r);
                                session.close();
                            }
                        }
                        Err(e) => {
                            r.2 += 1;
                            r.3.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let (sessions, latencies, failures, first_error) =
        results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut latency = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
    for took in latencies {
        latency.record((took.as_micros() as u64).max(1))?;
    }
    if latency.is_empty() {
        return Err(anyhow!(
            "no login succeeded ({failures} failed): {}",
            first_error.unwrap_or_default()
        ));
    }
    Ok(Logins {
        sessions,
        latency,
        failures,
        first_error,
        elapsed,
    })
}
