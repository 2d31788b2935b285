//! `DhcpServer`: RFC 2131 §4.3 server behaviour over a [`LeasePool`].
//!
//! Invariant: the server only ever answers a BOOTREQUEST whose hardware
//! address is the frame's Ethernet source, and every reply it builds fits
//! the size the client said it accepts (option 57, never below RFC 2131's
//! 576) and one 1500-byte MTU: options that do not fit are left out,
//! lowest priority first.

use std::net::Ipv4Addr;
use std::time::Duration;

use ethergate_config::{ClasslessRoute, DhcpConfig, Ipv4Cidr};

use super::pool::{ClientKey, DhcpLease, LeasePool, RestoreReport};
use crate::{MacAddr, PortId, WallTime};
use ethergate_dhcp::*;

/// How long an offered address is held for the client's REQUEST. SoftEther
/// holds 5 s (`NewDhcpLease(5000, …)` for the pending list in
/// Cedar/Virtual.c); we hold longer because a client behind a slow TLS
/// session or one retransmitting its REQUEST (RFC 2131 §4.1: 4 s, then
/// 8 s, …) should still find its address.
pub const OFFER_HOLD: Duration = Duration::from_secs(30);
/// How long a declined address stays out of the pool. RFC 2131 §3.1.5 only
/// says "not available"; 10 minutes lets whatever squats on it go away
/// without shrinking a small pool for good.
pub const DECLINE_HOLD: Duration = Duration::from_secs(600);
/// RFC 2131 §2 / RFC 2132 §9.10: every client accepts a 576-byte datagram,
/// and option 57 may not be smaller. Read, as ISC dhcpd and busybox udhcpc
/// do, as the IP datagram size.
pub const MIN_MESSAGE_SIZE: usize = 576;
/// IPv4 (no options) plus UDP header.
const IP_UDP_HEADERS: usize = 28;
/// Replies never exceed one Ethernet MTU.
const MAX_DATAGRAM: usize = 1500;
/// RFC 951 / RFC 1542 §2.1: BOOTP messages are at least 300 bytes; some
/// old clients drop shorter ones.
const BOOTP_MIN_LEN: usize = 300;
/// Option 56 text in a NAK (RFC 2131 table 3 allows it).
const NAK_MESSAGE: &[u8] = b"requested address is not available";

/// Everything the server needs to know; built from the hub config by
/// [`DhcpServerConfig::for_hub`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpServerConfig {
    /// Option 54 and the IP source of replies: the bridge address (see the
    /// module docs of `dhcp` for why).
    pub server_ip: Ipv4Addr,
    /// Ethernet source of replies.
    pub server_mac: MacAddr,
    /// The hub's subnet; option 1 is its mask.
    pub subnet: Ipv4Cidr,
    pub dhcp: DhcpConfig,
    pub offer_hold: Duration,
    pub decline_hold: Duration,
    /// Addresses never leased: the hub's WireGuard users' tunnel addresses.
    pub reserved: Vec<Ipv4Addr>,
}

impl DhcpServerConfig {
    /// The server for a configured hub, or `None` when the hub has no
    /// `[hub.dhcp]`. The MAC is the one the hub's tap gets: derived from
    /// the hub's name as configured.
    pub fn for_hub(hub: &ethergate_config::Hub) -> Option<Self> {
        let dhcp = hub.dhcp.clone()?;
        Some(Self {
            server_ip: hub.bridge_ip(),
            server_mac: MacAddr::local_from_seed(hub.name.as_bytes()),
            subnet: hub.subnet(),
            dhcp,
            offer_hold: OFFER_HOLD,
            decline_hold: DECLINE_HOLD,
            // A hub whose WireGuard addresses do not fit was refused by
            // the config's validation already.
            reserved: hub
                .wireguard_peers()
                .map(|peers| peers.into_iter().map(|p| p.address).collect())
                .unwrap_or_default(),
        })
    }
}

/// Message counters of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DhcpCounters {
    pub discovers: u64,
    pub offers: u64,
    pub requests: u64,
    pub acks: u64,
    pub naks: u64,
    pub releases: u64,
    pub declines: u64,
    pub informs: u64,
    /// DISCOVERs left unanswered because no address was free.
    pub exhausted: u64,
    /// DISCOVERs and REQUESTs left unanswered because the port already
    /// holds its `max_leases` (see [`LeaseHolder`]).
    pub lease_limit: u64,
    /// Well-formed messages left unanswered for another reason.
    pub ignored: u64,
    /// Frames to UDP/67 that did not decode.
    pub malformed: u64,
}

/// Why a well-formed message got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// `op` is not BOOTREQUEST.
    NotRequest,
    /// No option 53, or a server-to-client type.
    UnexpectedType,
    /// Not Ethernet (`htype`/`hlen`), or `chaddr` differs from the frame's
    /// source MAC.
    HardwareAddress,
    /// `giaddr` is set: relays are not supported on a hub.
    Relayed,
    /// The pool has no address for this client.
    Exhausted,
    /// A REQUEST or INFORM without the addresses its state needs.
    Incomplete,
    /// INIT-REBOOT from a client we have no record of (RFC 2131 §4.3.2:
    /// remain silent).
    UnknownClient,
    /// The port the message came through already holds its limit of live
    /// leases ([`LeaseHolder::max_leases`]).
    LeaseLimit,
}

/// The hub port a message came through, and how many live leases (offers
/// included: they hold an address too) clients behind it may hold at once.
/// A client whose lease another port holds (it reconnected) moves to this
/// port and counts here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseHolder {
    pub port: PortId,
    /// `None`: no limit beyond the pool's.
    pub max_leases: Option<u32>,
}

/// What happened to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpOutcome {
    /// A reply frame was written to the output buffer.
    Reply,
    /// Handled, nothing to send (RELEASE, DECLINE, another server chosen).
    Silent,
    Ignored(IgnoreReason),
    /// The frame or message did not decode.
    Malformed,
}

/// A reply and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpReply {
    pub message: DhcpMessage,
    pub to: ReplyTo,
}

/// What happened to a lease, for the operator's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEventKind {
    /// A client got an address it did not hold (new, or after expiry).
    Given,
    /// A client extended the lease it holds.
    Renewed,
    Released,
}

impl LeaseEventKind {
    pub fn name(self) -> &'static str {
        match self {
            LeaseEventKind::Given => "given",
            LeaseEventKind::Renewed => "renewed",
            LeaseEventKind::Released => "released",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseEvent {
    pub kind: LeaseEventKind,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    /// The lease granted (`Given`, `Renewed`).
    pub lease_secs: Option<u32>,
}

/// Events kept until taken; more are counted, not kept, so a client that
/// renews in a loop cannot grow this.
const MAX_PENDING_EVENTS: usize = 16;

pub struct DhcpServer {
    cfg: DhcpServerConfig,
    pool: LeasePool,
    /// Lease changes not yet taken by [`Self::take_events`].
    events: Vec<LeaseEvent>,
    events_dropped: u64,
    /// Options 121/249 as sent: the configured routes, plus a default route
    /// via `router` when there are routes (RFC 3442 §1: a client that gets
    /// 121 ignores option 3, and would lose its gateway otherwise).
    routes: Vec<ClasslessRoute>,
    counters: DhcpCounters,
    /// Reused encoding buffer for the DHCP payload of replies.
    scratch: Vec<u8>,
}

impl DhcpServer {
    pub fn new(cfg: DhcpServerConfig) -> Self {
        let mut routes = cfg.dhcp.routes.clone();
        if let Some(router) = cfg.dhcp.router
            && !routes.is_empty()
            && !routes.iter().any(|r| r.destination.prefix_len() == 0)
            && let Some(default) = Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0)
        {
            routes.insert(
                0,
                ClasslessRoute {
                    destination: default,
                    gateway: router,
                },
            );
        }
        Self {
            pool: LeasePool::with_reserved(cfg.dhcp.range, cfg.reserved.iter().copied()),
            events: Vec::new(),
            events_dropped: 0,
            cfg,
            routes,
            counters: DhcpCounters::default(),
            scratch: Vec::with_capacity(MAX_DATAGRAM),
        }
    }

    pub fn config(&self) -> &DhcpServerConfig {
        &self.cfg
    }

    pub fn counters(&self) -> DhcpCounters {
        self.counters
    }

    /// Lease changes since the last call, oldest first, and how many more
    /// happened than were kept.
    pub fn take_events(&mut self) -> (Vec<LeaseEvent>, u64) {
        let dropped = std::mem::take(&mut self.events_dropped);
        (std::mem::take(&mut self.events), dropped)
    }

    fn note(&mut self, event: LeaseEvent) {
        if self.events.len() < MAX_PENDING_EVENTS {
            self.events.push(event);
        } else {
            self.events_dropped += 1;
        }
    }

    pub fn pool(&self) -> &LeasePool {
        &self.pool
    }

    /// Bound leases for persisting (see [`super::format_leases`]).
    pub fn snapshot(&self) -> Vec<DhcpLease> {
        self.pool.snapshot()
    }

    /// Takes persisted leases back, e.g. after a restart.
    pub fn restore(
        &mut self,
        leases: impl IntoIterator<Item = DhcpLease>,
        now: WallTime,
    ) -> RestoreReport {
        self.pool.restore(leases, now)
    }

    /// Handles one frame addressed to UDP/67; a reply frame, if any, is
    /// written to `out` (its previous contents are discarded).
    pub fn handle_frame(&mut self, frame: &[u8], now: WallTime, out: &mut Vec<u8>) -> DhcpOutcome {
        self.handle_frame_from(frame, None, now, out)
    }

    /// [`Self::handle_frame`] for a frame that came through `holder`'s
    /// port, within its lease limit.
    pub fn handle_frame_from(
        &mut self,
        frame: &[u8],
        holder: Option<LeaseHolder>,
        now: WallTime,
        out: &mut Vec<u8>,
    ) -> DhcpOutcome {
        let Ok(parts) = parse_frame(frame) else {
            self.counters.malformed += 1;
            return DhcpOutcome::Malformed;
        };
        let Ok(msg) = DhcpMessage::decode(parts.payload) else {
            self.counters.malformed += 1;
            return DhcpOutcome::Malformed;
        };
        let reply = match self.handle_message_from(parts.src_mac, &msg, holder, now) {
            Ok(Some(reply)) => reply,
            Ok(None) => return DhcpOutcome::Silent,
            Err(why) => {
                match why {
                    IgnoreReason::Exhausted => self.counters.exhausted += 1,
                    IgnoreReason::LeaseLimit => self.counters.lease_limit += 1,
                    _ => self.counters.ignored += 1,
                }
                return DhcpOutcome::Ignored(why);
            }
        };
        let max_len = msg
            .options
            .max_message_size
            .map_or(MIN_MESSAGE_SIZE, usize::from)
            .clamp(MIN_MESSAGE_SIZE, MAX_DATAGRAM)
            - IP_UDP_HEADERS;
        // Lease and mask matter more than anything a client may list
        // before them; then the client's own order (RFC 2131 §4.3.1
        // leaves order to the server, clients display options in it).
        let mut order = [0u8; 4 + 255];
        let head = [
            OPT_LEASE_TIME,
            OPT_SUBNET_MASK,
            OPT_RENEWAL_TIME,
            OPT_REBINDING_TIME,
        ];
        order[..4].copy_from_slice(&head);
        let prl = &msg.options.parameter_request_list;
        let n = prl.len().min(255);
        order[4..4 + n].copy_from_slice(&prl[..n]);
        self.scratch.clear();
        reply
            .message
            .encode_with(&mut self.scratch, &order[..4 + n], max_len);
        if self.scratch.len() < BOOTP_MIN_LEN {
            self.scratch.resize(BOOTP_MIN_LEN, 0);
        }
        match build_frame(
            out,
            self.cfg.server_mac,
            self.cfg.server_ip,
            reply.to,
            &self.scratch,
        ) {
            Ok(()) => DhcpOutcome::Reply,
            // Cannot happen for a ≤1472-byte payload; count it anyway.
            Err(_) => {
                self.counters.ignored += 1;
                DhcpOutcome::Ignored(IgnoreReason::Incomplete)
            }
        }
    }

    /// RFC 2131 §4.3 for one decoded message from `src_mac`. `Ok(None)`:
    /// handled, nothing to send.
    pub fn handle_message(
        &mut self,
        src_mac: MacAddr,
        msg: &DhcpMessage,
        now: WallTime,
    ) -> Result<Option<DhcpReply>, IgnoreReason> {
        self.handle_message_from(src_mac, msg, None, now)
    }

    /// [`Self::handle_message`] for a message that came through `holder`'s
    /// port: an offer or lease that would take the port past its limit is
    /// refused ([`IgnoreReason::LeaseLimit`]), and what is given is
    /// recorded as held through the port.
    pub fn handle_message_from(
        &mut self,
        src_mac: MacAddr,
        msg: &DhcpMessage,
        holder: Option<LeaseHolder>,
        now: WallTime,
    ) -> Result<Option<DhcpReply>, IgnoreReason> {
        if msg.op != BOOTREQUEST {
            return Err(IgnoreReason::NotRequest);
        }
        if msg.client_mac() != Some(src_mac) {
            return Err(IgnoreReason::HardwareAddress);
        }
        if !msg.giaddr.is_unspecified() {
            return Err(IgnoreReason::Relayed);
        }
        let key = ClientKey::new(msg.options.client_id.as_deref(), src_mac);
        let lease = Duration::from_secs(u64::from(self.cfg.dhcp.lease_secs));
        let ours = |sid: Option<Ipv4Addr>| sid.is_none_or(|s| s == self.cfg.server_ip);
        match msg.options.message_type {
            Some(MessageType::Discover) => {
                self.counters.discovers += 1;
                self.check_limit(&key, src_mac, holder, now)?;
                let hold = self.cfg.offer_hold;
                let ip = self
                    .pool
                    .offer(&key, src_mac, msg.options.requested_ip, now, hold)
                    .ok_or(IgnoreReason::Exhausted)?;
                self.note_holder(&key, holder);
                self.counters.offers += 1;
                Ok(Some(self.reply(msg, src_mac, MessageType::Offer, ip)))
            }
            Some(MessageType::Request) => {
                self.counters.requests += 1;
                self.on_request(msg, &key, src_mac, holder, now, lease)
            }
            Some(MessageType::Release) => {
                self.counters.releases += 1;
                if ours(msg.options.server_id) && self.pool.release(&key, msg.ciaddr, now) {
                    self.note(LeaseEvent {
                        kind: LeaseEventKind::Released,
                        mac: src_mac,
                        ip: msg.ciaddr,
                        lease_secs: None,
                    });
                }
                Ok(None)
            }
            Some(MessageType::Decline) => {
                self.counters.declines += 1;
                if ours(msg.options.server_id)
                    && let Some(ip) = msg.options.requested_ip
                {
                    let until = now.saturating_add(self.cfg.decline_hold);
                    self.pool.decline(&key, ip, until);
                }
                Ok(None)
            }
            Some(MessageType::Inform) => {
                self.counters.informs += 1;
                if msg.ciaddr.is_unspecified() {
                    return Err(IgnoreReason::Incomplete);
                }
                self.counters.acks += 1;
                Ok(Some(self.reply(
                    msg,
                    src_mac,
                    MessageType::Ack,
                    Ipv4Addr::UNSPECIFIED,
                )))
            }
            _ => Err(IgnoreReason::UnexpectedType),
        }
    }

    /// `Err(LeaseLimit)` when giving `key` an address would take
    /// `holder`'s port past its limit.
    fn check_limit(
        &self,
        key: &ClientKey,
        mac: MacAddr,
        holder: Option<LeaseHolder>,
        now: WallTime,
    ) -> Result<(), IgnoreReason> {
        match holder {
            Some(LeaseHolder {
                port,
                max_leases: Some(max),
            }) if !self.pool.within_limit(key, mac, port, max, now) => {
                Err(IgnoreReason::LeaseLimit)
            }
            _ => Ok(()),
        }
    }

    fn note_holder(&mut self, key: &ClientKey, holder: Option<LeaseHolder>) {
        if let Some(h) = holder {
            self.pool.set_holder(key, h.port);
        }
    }

    fn on_request(
        &mut self,
        msg: &DhcpMessage,
        key: &ClientKey,
        mac: MacAddr,
        holder: Option<LeaseHolder>,
        now: WallTime,
        lease: Duration,
    ) -> Result<Option<DhcpReply>, IgnoreReason> {
        let o = &msg.options;
        let (ip, selecting) = match (o.server_id, o.requested_ip) {
            // SELECTING, but the client chose another server's offer.
            (Some(sid), _) if sid != self.cfg.server_ip => {
                self.pool.cancel_offer(key);
                return Ok(None);
            }
            // SELECTING: the address must be the one we offered.
            (Some(_), Some(ip)) => (ip, true),
            (Some(_), None) => return Err(IgnoreReason::Incomplete),
            // INIT-REBOOT: the client asks to keep an address.
            (None, Some(ip)) => {
                if !self.cfg.subnet.contains(ip) {
                    return Ok(Some(self.nak(msg)));
                }
                let known = self.pool.address_of(key).is_some();
                let taken = !self.pool.available_for(ip, key, now);
                if !known && !taken {
                    // RFC 2131 §4.3.2: no record of the client, stay silent.
                    return Err(IgnoreReason::UnknownClient);
                }
                (ip, false)
            }
            // RENEWING (unicast) / REBINDING (broadcast): ciaddr is set.
            (None, None) if !msg.ciaddr.is_unspecified() => (msg.ciaddr, false),
            (None, None) => return Err(IgnoreReason::Incomplete),
        };
        let offered = self.pool.address_of(key).map(|(a, ..)| a);
        if selecting && offered != Some(ip) {
            return Ok(Some(self.nak(msg)));
        }
        self.check_limit(key, mac, holder, now)?;
        let renewing = self
            .pool
            .address_of(key)
            .is_some_and(|(a, state, expires)| {
                a == ip && state == crate::dhcp::BindingState::Bound && expires > now
            });
        match self.pool.bind(key, mac, ip, now, lease) {
            Some(ip) => {
                self.note_holder(key, holder);
                self.counters.acks += 1;
                self.note(LeaseEvent {
                    kind: if renewing {
                        LeaseEventKind::Renewed
                    } else {
                        LeaseEventKind::Given
                    },
                    mac,
                    ip,
                    lease_secs: u32::try_from(lease.as_secs()).ok(),
                });
                Ok(Some(self.reply(msg, mac, MessageType::Ack, ip)))
            }
            None => Ok(Some(self.nak(msg))),
        }
    }

    fn base_reply(&self, req: &DhcpMessage) -> DhcpMessage {
        DhcpMessage {
            op: BOOTREPLY,
            htype: req.htype,
            hlen: req.hlen,
            hops: 0,
            xid: req.xid,
            secs: 0,
            flags: req.flags,
            giaddr: req.giaddr,
            chaddr: req.chaddr,
            ..DhcpMessage::default()
        }
    }

    fn nak(&mut self, req: &DhcpMessage) -> DhcpReply {
        self.counters.naks += 1;
        let mut m = self.base_reply(req);
        m.options = DhcpOptions {
            message_type: Some(MessageType::Nak),
            server_id: Some(self.cfg.server_ip),
            message: Some(NAK_MESSAGE.to_vec()),
            ..DhcpOptions::default()
        };
        // RFC 2131 §4.1: without a relay, NAKs are broadcast.
        DhcpReply {
            message: m,
            to: ReplyTo::BROADCAST,
        }
    }

    /// OFFER or ACK for `yiaddr`; an ACK with `yiaddr` 0.0.0.0 answers an
    /// INFORM and carries no lease times (RFC 2131 §4.3.5).
    fn reply(
        &self,
        req: &DhcpMessage,
        src_mac: MacAddr,
        kind: MessageType,
        yiaddr: Ipv4Addr,
    ) -> DhcpReply {
        let inform = yiaddr.is_unspecified();
        let d = &self.cfg.dhcp;
        let mut m = self.base_reply(req);
        m.yiaddr = yiaddr;
        if kind == MessageType::Ack {
            m.ciaddr = req.ciaddr;
        }
        let lease = (!inform).then_some(d.lease_secs);
        m.options = DhcpOptions {
            message_type: Some(kind),
            server_id: Some(self.cfg.server_ip),
            subnet_mask: Some(self.cfg.subnet.netmask()),
            routers: d.router.into_iter().collect(),
            dns: d.dns.clone(),
            lease_secs: lease,
            // RFC 2131 §4.4.5 defaults: T1 = 0.5, T2 = 0.875 of the lease.
            renewal_secs: lease.map(|l| l / 2),
            rebinding_secs: lease.map(|l| (u64::from(l) * 7 / 8) as u32),
            classless_routes: self.routes.clone(),
            ms_classless_routes: self.routes.clone(),
            ..DhcpOptions::default()
        };
        // RFC 2131 §4.1, with giaddr always 0 here.
        let to = if !req.ciaddr.is_unspecified() {
            ReplyTo {
                mac: src_mac,
                ip: req.ciaddr,
            }
        } else if req.broadcast_flag() {
            ReplyTo::BROADCAST
        } else {
            ReplyTo {
                mac: src_mac,
                ip: yiaddr,
            }
        };
        DhcpReply { message: m, to }
    }
}
