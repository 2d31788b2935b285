//! Under load, initiations per source address are limited (a token bucket
//! of 20 a second, bursts of 5, as the kernel's and wireguard-go's
//! WireGuard do): a host that proved its address with a valid cookie can
//! still make the server do Curve25519 work, and this bounds how much one
//! host, or one IPv6 /64, can make it do. Applies only while the endpoint is
//! under load, so devices behind one carrier NAT are not limited otherwise.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

/// Initiations a second one source may have answered under load.
pub const PER_SECOND: f64 = 20.0;
/// How many may come at once.
pub const BURST: f64 = 5.0;
/// Past this many sources, buckets idle for a second are forgotten (an
/// idle bucket is full anyway).
const MAX_SOURCES: usize = 65_536;

#[derive(Default)]
pub struct SourceLimiter {
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// The unit a limit applies to: the address, or an IPv6 address's /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

impl SourceLimiter {
    /// Whether one more initiation from `ip` may be handled now.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_SOURCES {
            buckets.retain(|_, (_, last)| {
                now.saturating_duration_since(*last) < Duration::from_secs(1)
            });
        }
        let (tokens, last) = buckets.entry(source_key(ip)).or_insert((BURST, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * PER_SECOND;
        *tokens = (*tokens + refill).min(BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_twenty_a_second_per_source() {
        let limiter = SourceLimiter::default();
        let a: IpAddr = "198.51.100.2".parse().expect("ip");
        let b: IpAddr = "198.51.100.3".parse().expect("ip");
        let t0 = Instant::now();
        let first: usize = (0..10).filter(|_| limiter.allow(a, t0)).count();
        assert_eq!(first, BURST as usize);
        assert!(limiter.allow(b, t0), "another source has its own bucket");
        let later = t0 + Duration::from_secs(1);
        let next: usize = (0..100).filter(|_| limiter.allow(a, later)).count();
        assert_eq!(next, BURST as usize, "refilled, up to the burst");
        // Over a second at a steady pace: about 20 get through.
        let mut admitted = 0;
        for i in 0..1000 {
            if limiter.allow(a, later + Duration::from_millis(i)) {
                admitted += 1;
            }
        }
        assert!((19..=21).contains(&admitted), "{admitted}");
    }

    #[test]
    fn an_ipv6_slash_64_is_one_source() {
        let limiter = SourceLimiter::default();
        let t0 = Instant::now();
        let admitted = (0..10)
            .filter(|i| limiter.allow(format!("2001:db8::{i}").parse().expect("ip"), t0))
            .count();
        assert_eq!(admitted, BURST as usize);
        assert!(limiter.allow("2001:db8:0:1::1".parse().expect("ip"), t0));
    }
}
