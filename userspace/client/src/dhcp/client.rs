//! The DHCP client state machine of RFC 2131 §4.4 (figure 5), sans-IO:
//! INIT → SELECTING (DISCOVER) → REQUESTING (REQUEST) → BOUND, RENEWING at
//! T1 (unicast REQUEST to the server), REBINDING at T2 (broadcast REQUEST),
//! back to INIT when the lease expires or a NAK arrives, and RELEASE on
//! exit. No INIT-REBOOT and no DECLINE (we do not ARP-probe the offered
//! address; the VPN hub's DHCP server is the only one on the segment).
//!
//! Invariants: every frame it emits carries the current transaction id and
//! our MAC; a reply is acted on only if it carries both back; there is at
//! most one timer ([`DhcpClient::poll_timeout`]) and it never lies in the
//! past of the last `handle_timeout` unless the state changed; a lease is
//! reported exactly once as [`DhcpEvent::Bound`] and its end exactly once
//! as [`DhcpEvent::Lost`].

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use ethergate_dhcp::{DhcpMessage, DhcpOptions, MessageType};
use ethergate_net::MacAddr;
use ethergate_net::{ClasslessRoute, Ipv4Cidr};
use ethergate_proto::{RandomSource, Timestamp};

use super::frame::{BROADCAST_MAC, MAX_MESSAGE, client_frame, client_message, server_reply};

/// RFC 2131 §4.1: the first retransmission after 4 s, doubling to 64 s,
/// each randomized by ±1 s.
const RETRANSMIT_BASE_MS: u64 = 4_000;
const RETRANSMIT_MAX_MS: u64 = 64_000;
const RETRANSMIT_JITTER_MS: u32 = 1_000;
/// REQUESTs sent for one OFFER before starting over with DISCOVER.
const MAX_REQUEST_ATTEMPTS: u32 = 4;
/// RFC 2131 §4.4.5: in RENEWING and REBINDING, wait half the time left to
/// T2 (or to expiry), but at least 60 s, before retransmitting.
const MIN_RENEW_RETRY_MS: u64 = 60_000;
/// After a NAK, pause before DISCOVER so a server that NAKs everything
/// cannot drive a tight loop.
const NAK_PAUSE_MS: u64 = 2_000;
/// Lease time assumed when an ACK carries none (option 51 is mandatory in
/// an ACK to a REQUEST, RFC 2131 table 3, but be lenient).
const DEFAULT_LEASE_SECS: u32 = 3_600;
/// Options we ask for (option 55): mask, router, DNS, domain, lease,
/// server id, T1, T2, classless routes (RFC 3442 and Microsoft's 249).
const PARAMETER_LIST: [u8; 10] = [1, 3, 6, 15, 51, 54, 58, 59, 121, 249];

/// What a server granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub server_id: Ipv4Addr,
    /// Option 3 (first router).
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub lease_secs: u32,
    /// T1 and T2, from options 58/59 or RFC 2131 §4.4.5's defaults.
    pub renewal_secs: u32,
    pub rebinding_secs: u32,
    /// Option 121, or option 249 when 121 is absent.
    pub classless_routes: Vec<ClasslessRoute>,
}

impl Lease {
    /// The routes to install: the classless routes if there are any — RFC
    /// 3442 §1: "If the DHCP server returns both a Classless Static Routes
    /// option and a Router option, the DHCP client MUST ignore the Router
    /// option" — otherwise a default route via option 3, if given.
    pub fn routes(&self) -> Vec<ClasslessRoute> {
        if !self.classless_routes.is_empty() {
            return self.classless_routes.clone();
        }
        self.router
            .and_then(|gateway| {
                Some(ClasslessRoute {
                    destination: Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0)?,
                    gateway,
                })
            })
            .into_iter()
            .collect()
    }

    fn from_ack(
        ack: &DhcpMessage,
        offered_server: Ipv4Addr,
        offered_lease: Option<u32>,
    ) -> Option<Lease> {
        let o = &ack.options;
        if ack.yiaddr.is_unspecified() {
            return None;
        }
        let lease_secs = o.lease_secs.or(offered_lease).unwrap_or(DEFAULT_LEASE_SECS);
        let default_t1 = lease_secs / 2;
        let default_t2 = (u64::from(lease_secs) * 7 / 8) as u32;
        let mut t1 = o.renewal_secs.unwrap_or(default_t1);
        let mut t2 = o.rebinding_secs.unwrap_or(default_t2);
        if !(t1 <= t2 && t2 <= lease_secs) {
            (t1, t2) = (default_t1, default_t2);
        }
        let prefix_len = match o.subnet_mask {
            Some(mask) => u32::from(mask).leading_ones() as u8,
            None => classful_prefix(ack.yiaddr),
        };
        Some(Lease {
            address: ack.yiaddr,
            prefix_len,
            server_id: o.server_id.unwrap_or(offered_server),
            router: o.routers.first().copied(),
            dns: o.dns.clone(),
            lease_secs,
            renewal_secs: t1,
            rebinding_secs: t2,
            classless_routes: if o.classless_routes.is_empty() {
                o.ms_classless_routes.clone()
            } else {
                o.classless_routes.clone()
            },
        })
    }
}

/// RFC 2132 §3.3 says a server should send the mask; without it, fall back
/// to the address class as pre-CIDR clients did.
fn classful_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// What the driver must apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpEvent {
    /// A new lease (or a new address on renewal): configure it.
    Bound(Lease),
    /// The same address again, with fresh times (and possibly new routes).
    Renewed(Lease),
    /// The address must no longer be used.
    Lost {
        address: Ipv4Addr,
        reason: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Offer {
    address: Ipv4Addr,
    server_id: Ipv4Addr,
    lease_secs: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Not started, or released.
    Stopped,
    /// DISCOVER goes out at `at`.
    Init {
        at: Timestamp,
    },
    Selecting {
        attempt: u32,
        retry_at: Timestamp,
    },
    Requesting {
        offer: Offer,
        attempt: u32,
        retry_at: Timestamp,
    },
    Bound,
    Renewing {
        retry_at: Timestamp,
    },
    Rebinding {
        retry_at: Timestamp,
    },
}

#[derive(Debug, Clone)]
struct Active {
    lease: Lease,
    /// When the ACK arrived: T1, T2 and expiry count from here.
    acquired: Timestamp,
    server_mac: [u8; 6],
}

impl Active {
    fn at_secs(&self, secs: u32) -> Timestamp {
        self.acquired.plus_ms(u64::from(secs) * 1000)
    }
    fn t1(&self) -> Timestamp {
        self.at_secs(self.lease.renewal_secs)
    }
    fn t2(&self) -> Timestamp {
        self.at_secs(self.lease.rebinding_secs)
    }
    fn expiry(&self) -> Timestamp {
        self.at_secs(self.lease.lease_secs)
    }
}

/// One interface's DHCP client.
#[derive(Debug)]
pub struct DhcpClient {
    mac: [u8; 6],
    state: State,
    xid: u32,
    /// Start of the current acquisition, for the `secs` field.
    began: Timestamp,
    active: Option<Active>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<DhcpEvent>,
}

impl DhcpClient {
    pub fn new(mac: [u8; 6]) -> Self {
        DhcpClient {
            mac,
            state: State::Stopped,
            xid: 0,
            began: Timestamp(0),
            active: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Begin acquiring a lease (no-op unless stopped).
    pub fn start(&mut self, now: Timestamp) {
        if self.state == State::Stopped {
            self.state = State::Init { at: now };
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.state == State::Stopped
    }

    /// The lease in force, if any.
    pub fn lease(&self) -> Option<&Lease> {
        self.active.as_ref().map(|a| &a.lease)
    }

    /// A state name for logs.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Stopped => "stopped",
            State::Init { .. } => "init",
            State::Selecting { .. } => "selecting",
            State::Requesting { .. } => "requesting",
            State::Bound => "bound",
            State::Renewing { .. } => "renewing",
            State::Rebinding { .. } => "rebinding",
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<DhcpEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let active = self.active.as_ref();
        match &self.state {
            State::Stopped => None,
            State::Init { at } => Some(*at),
            State::Selecting { retry_at, .. } | State::Requesting { retry_at, .. } => {
                Some(*retry_at)
            }
            State::Bound => active.map(Active::t1),
            State::Renewing { retry_at } => active.map(|a| (*retry_at).min(a.t2())),
            State::Rebinding { retry_at } => active.map(|a| (*retry_at).min(a.expiry())),
        }
    }

    pub fn handle_timeout(&mut self, now: Timestamp, rng: &mut dyn RandomSource) {
        // A long suspend can cross T1, T2 and expiry at once: step until
        // the timer lies in the future (a few steps at most).
        for _ in 0..4 {
            match self.poll_timeout() {
                Some(at) if at <= now => self.step(now, rng),
                _ => return,
            }
        }
    }

    fn step(&mut self, now: Timestamp, rng: &mut dyn RandomSource) {
        match self.state.clone() {
            State::Stopped => {}
            State::Init { .. } => {
                self.xid = rng.next_u32();
                self.began = now;
                self.send_discover(now);
                self.state = State::Selecting {
                    attempt: 0,
                    retry_at: now.plus_ms(retransmit_delay(0, rng)),
                };
            }
            State::Selecting { attempt, .. } => {
                self.send_discover(now);
                self.state = State::Selecting {
                    attempt: attempt + 1,
                    retry_at: now.plus_ms(retransmit_delay(attempt + 1, rng)),
                };
            }
            State::Requesting { offer, attempt, .. } => {
                if attempt + 1 >= MAX_REQUEST_ATTEMPTS {
                    self.state = State::Init { at: now };
                } else {
                    self.send_select_request(now, &offer);
                    self.state = State::Requesting {
                        offer,
                        attempt: attempt + 1,
                        retry_at: now.plus_ms(retransmit_delay(attempt + 1, rng)),
                    };
                }
            }
            State::Bound => {
                // T1: renew with the server that granted the lease.
                self.xid = rng.next_u32();
                self.began = now;
                self.send_renew(now, false);
                self.state = State::Renewing {
                    retry_at: self.renew_retry(now, |a| a.t2()),
                };
            }
            State::Renewing { .. } => {
                let past_t2 = self.active.as_ref().is_some_and(|a| now >= a.t2());
                self.send_renew(now, past_t2);
                self.state = if past_t2 {
                    State::Rebinding {
                        retry_at: self.renew_retry(now, |a| a.expiry()),
                    }
                } else {
                    State::Renewing {
                        retry_at: self.renew_retry(now, |a| a.t2()),
                    }
                };
            }
            State::Rebinding { .. } => {
                if self.active.as_ref().is_some_and(|a| now >= a.expiry()) {
                    self.lose("the lease expired");
                    self.state = State::Init { at: now };
                } else {
                    self.send_renew(now, true);
                    self.state = State::Rebinding {
                        retry_at: self.renew_retry(now, |a| a.expiry()),
                    };
                }
            }
        }
    }

    /// RFC 2131 §4.4.5: half the time to `until`, at least 60 s.
    fn renew_retry(&self, now: Timestamp, until: impl Fn(&Active) -> Timestamp) -> Timestamp {
        let left = self.active.as_ref().map_or(0, |a| until(a).since(now));
        now.plus_ms((left / 2).max(MIN_RENEW_RETRY_MS))
    }

    /// Offers a received frame; `true` if it was a DHCP reply for us (the
    /// driver then keeps it from the tap).
    pub fn handle_frame(&mut self, now: Timestamp, frame: &[u8]) -> bool {
        match server_reply(frame, self.mac) {
            Some((server_mac, message)) => self.handle_reply(now, server_mac, &message),
            None => false,
        }
    }

    /// Acts on a reply; `true` if it was addressed to us.
    pub fn handle_reply(
        &mut self,
        now: Timestamp,
        server_mac: [u8; 6],
        reply: &DhcpMessage,
    ) -> bool {
        if reply.xid != self.xid || reply.client_mac() != Some(MacAddr(self.mac)) {
            return false;
        }
        let Some(kind) = reply.options.message_type else {
            return true;
        };
        match (self.state.clone(), kind) {
            (State::Selecting { .. }, MessageType::Offer) => {
                let (Some(server_id), false) =
                    (reply.options.server_id, reply.yiaddr.is_unspecified())
                else {
                    return true;
                };
                let offer = Offer {
                    address: reply.yiaddr,
                    server_id,
                    lease_secs: reply.options.lease_secs,
                };
                self.send_select_request(now, &offer);
                self.state = State::Requesting {
                    offer,
                    attempt: 0,
                    // Deterministic first retry; later ones are jittered.
                    retry_at: now.plus_ms(RETRANSMIT_BASE_MS),
                };
            }
            (State::Requesting { offer, .. }, MessageType::Ack) => {
                match Lease::from_ack(reply, offer.server_id, offer.lease_secs) {
                    Some(lease) => self.bind(now, server_mac, lease),
                    None => self.state = State::Init { at: now },
                }
            }
            (State::Renewing { .. } | State::Rebinding { .. }, MessageType::Ack) => {
                let Some(old) = self.active.as_ref().map(|a| a.lease.clone()) else {
                    return true;
                };
                match Lease::from_ack(reply, old.server_id, Some(old.lease_secs)) {
                    Some(lease) => self.bind(now, server_mac, lease),
                    None => return true,
                }
            }
            (State::Requesting { .. }, MessageType::Nak) => {
                self.state = State::Init {
                    at: now.plus_ms(NAK_PAUSE_MS),
                };
            }
            (State::Renewing { .. } | State::Rebinding { .. }, MessageType::Nak) => {
                self.lose("the server refused the renewal (NAK)");
                self.state = State::Init {
                    at: now.plus_ms(NAK_PAUSE_MS),
                };
            }
            // Late duplicates (a second OFFER, an ACK to a retransmission).
            _ => {}
        }
        true
    }

    fn bind(&mut self, now: Timestamp, server_mac: [u8; 6], lease: Lease) {
        let event = match &self.active {
            Some(a) if a.lease.address == lease.address => DhcpEvent::Renewed(lease.clone()),
            _ => DhcpEvent::Bound(lease.clone()),
        };
        self.active = Some(Active {
            lease,
            acquired: now,
            server_mac,
        });
        self.state = State::Bound;
        self.events.push_back(event);
    }

    fn lose(&mut self, reason: &'static str) {
        if let Some(a) = self.active.take() {
            self.events.push_back(DhcpEvent::Lost {
                address: a.lease.address,
                reason,
            });
        }
    }

    /// Queues a RELEASE for the lease in force and stops; `true` if there
    /// was one. RFC 2131 §4.4.6: unicast to the server, ciaddr set.
    pub fn release(&mut self, rng: &mut dyn RandomSource) -> bool {
        self.state = State::Stopped;
        let Some(a) = self.active.take() else {
            return false;
        };
        self.xid = rng.next_u32();
        let mut m = client_message(
            self.xid,
            self.mac,
            DhcpOptions {
                message_type: Some(MessageType::Release),
                server_id: Some(a.lease.server_id),
                client_id: Some(self.client_id()),
                ..DhcpOptions::default()
            },
        );
        m.ciaddr = a.lease.address;
        self.out.push_back(client_frame(
            self.mac,
            a.server_mac,
            a.lease.address,
            a.lease.server_id,
            &m,
        ));
        true
    }

    fn client_id(&self) -> Vec<u8> {
        // RFC 2132 §9.14: hardware type 1 (Ethernet) and the MAC.
        let mut id = vec![1];
        id.extend_from_slice(&self.mac);
        id
    }

    fn base_options(&self, kind: MessageType) -> DhcpOptions {
        DhcpOptions {
            message_type: Some(kind),
            client_id: Some(self.client_id()),
            parameter_request_list: PARAMETER_LIST.to_vec(),
            max_message_size: Some(MAX_MESSAGE as u16 + 28),
            ..DhcpOptions::default()
        }
    }

    fn message(&self, now: Timestamp, options: DhcpOptions) -> DhcpMessage {
        let mut m = client_message(self.xid, self.mac, options);
        m.secs = u16::try_from(now.since(self.began) / 1000).unwrap_or(u16::MAX);
        m
    }

    fn broadcast(&mut self, src: Ipv4Addr, m: &DhcpMessage) {
        self.out.push_back(client_frame(
            self.mac,
            BROADCAST_MAC,
            src,
            Ipv4Addr::BROADCAST,
            m,
        ));
    }

    fn send_discover(&mut self, now: Timestamp) {
        let m = self.message(now, self.base_options(MessageType::Discover));
        self.broadcast(Ipv4Addr::UNSPECIFIED, &m);
    }

    /// REQUEST in SELECTING: broadcast, naming the chosen server (50, 54).
    fn send_select_request(&mut self, now: Timestamp, offer: &Offer) {
        let mut o = self.base_options(MessageType::Request);
        o.requested_ip = Some(offer.address);
        o.server_id = Some(offer.server_id);
        let m = self.message(now, o);
        self.broadcast(Ipv4Addr::UNSPECIFIED, &m);
    }

    /// REQUEST in RENEWING (unicast to the server) or REBINDING
    /// (broadcast): ciaddr set, no options 50/54 (RFC 2131 §4.3.2).
    fn send_renew(&mut self, now: Timestamp, broadcast: bool) {
        let Some((address, server_id, server_mac)) = self
            .active
            .as_ref()
            .map(|a| (a.lease.address, a.lease.server_id, a.server_mac))
        else {
            return;
        };
        let mut m = self.message(now, self.base_options(MessageType::Request));
        m.ciaddr = address;
        if broadcast {
            self.broadcast(address, &m);
        } else {
            self.out
                .push_back(client_frame(self.mac, server_mac, address, server_id, &m));
        }
    }
}

/// RFC 2131 §4.1 retransmission delay for the `attempt`-th retry.
fn retransmit_delay(attempt: u32, rng: &mut dyn RandomSource) -> u64 {
    let nominal = RETRANSMIT_BASE_MS
        .saturating_mul(1u64 << attempt.min(8))
        .min(RETRANSMIT_MAX_MS);
    let jitter = u64::from(rng.range_u32(0, 2 * RETRANSMIT_JITTER_MS + 1));
    (nominal + jitter).saturating_sub(u64::from(RETRANSMIT_JITTER_MS))
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
