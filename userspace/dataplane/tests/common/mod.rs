//! The NAT fixture bench shared by the BPF_PROG_TEST_RUN test files: a
//! namespace `nat` with real interfaces (priv0 10.0.0.1/16, pub0
//! 203.0.113.1/24, tap0 192.168.30.1/24 standing in for a hub tap) and
//! permanent neighbour entries, because the programs route with
//! `bpf_fib_lookup`.
#![allow(dead_code)] // each test binary uses its own subset

use ethergate_config::{Nat, SnatTarget};
use ethergate_dataplane::{Dataplane, TcProgram, XdpProgram};
use ethergate_fixtures::{
    nat::{Ipv4Flow, L4},
    nat_config::snat_config,
};
use ethergate_netns::{Endpoint, Topology};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;
pub const TC_ACT_OK: u32 = 0;
pub const TC_ACT_SHOT: u32 = 2;
pub const TC_ACT_REDIRECT: u32 = 7;

pub const PRIVATE_HOST: [u8; 4] = [10, 0, 1, 26];
pub const PUBLIC: [u8; 4] = [203, 0, 113, 1];
pub const REMOTE: [u8; 4] = [203, 0, 113, 10];
pub const PRIVATE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x26];
pub const REMOTE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x10];

pub struct Bench {
    pub topo: Topology,
    pub priv0: (u32, [u8; 6]),
    pub pub0: (u32, [u8; 6]),
    pub tap0: (u32, [u8; 6]),
}

impl Bench {
    pub fn new() -> Self {
        let topo = Topology::builder()
            .namespace("lan")
            .namespace("nat")
            .namespace("wan")
            .sysctl("nat", "net.ipv4.ip_forward", "1")
            .veth(
                Endpoint::new("nat", "priv0", &["10.0.0.1/16"]),
                Endpoint::new("lan", "eth0", &[]),
            )
            .veth(
                Endpoint::new("nat", "pub0", &["203.0.113.1/24"]),
                Endpoint::new("wan", "eth0", &[]),
            )
            .namespace("vpn")
            .veth(
                Endpoint::new("nat", "tap0", &["192.168.30.1/24"]),
                Endpoint::new("vpn", "eth0", &[]),
            )
            .route("nat", "default via 203.0.113.10")
            .build()
            .expect("build topology (run as root)");
        topo.ip(
            "nat",
            &[
                "neigh",
                "replace",
                "10.0.1.26",
                "lladdr",
                "02:00:00:00:01:26",
                "dev",
                "priv0",
                "nud",
                "permanent",
            ],
        )
        .expect("neighbour");
        topo.ip(
            "nat",
            &[
                "neigh",
                "replace",
                "203.0.113.10",
                "lladdr",
                "02:00:00:00:02:10",
                "dev",
                "pub0",
                "nud",
                "permanent",
            ],
        )
        .expect("neighbour");
        let link = |name: &str| {
            let read = |what: &str| {
                topo.exec("nat", &["cat", &format!("/sys/class/net/{name}/{what}")])
                    .expect("sysfs")
                    .stdout
                    .trim()
                    .to_owned()
            };
            let mac: Vec<u8> = read("address")
                .split(':')
                .map(|h| u8::from_str_radix(h, 16).expect("mac"))
                .collect();
            (
                read("ifindex").parse().expect("ifindex"),
                mac.try_into().expect("6-byte mac"),
            )
        };
        let priv0 = link("priv0");
        let pub0 = link("pub0");
        let tap0 = link("tap0");
        Self {
            topo,
            priv0,
            pub0,
            tap0,
        }
    }

    /// A dataplane with `[nat]` written to its maps (nothing attached).
    pub fn dataplane(&self) -> Dataplane {
        self.topo
            .enter("nat", || {
                let mut dataplane = Dataplane::load().expect("load eBPF");
                dataplane.configure_nat(&config()).expect("configure nat");
                dataplane
            })
            .expect("enter nat")
    }

    /// Runs `program` on `frame` as received on `ifindex`, inside `nat`.
    pub fn run(
        &self,
        dp: &mut Dataplane,
        program: XdpProgram,
        frame: &[u8],
        ifindex: u32,
    ) -> (u32, Vec<u8>) {
        let outcome = self
            .topo
            .enter("nat", || dp.test_run(program, frame, Some(ifindex)))
            .expect("enter nat")
            .expect("test run");
        (outcome.action, outcome.frame)
    }

    /// Runs both XDP programs on `frame`, each as received on its own
    /// interface, and asserts that each passes it unchanged; `name` names
    /// the case in the failure message.
    pub fn assert_xdp_passes_unchanged(&self, dp: &mut Dataplane, name: &str, frame: &[u8]) {
        for program in [XdpProgram::Inside, XdpProgram::Uplink] {
            let ifindex = match program {
                XdpProgram::Inside => self.priv0.0,
                XdpProgram::Uplink => self.pub0.0,
            };
            let (action, out) = self.run(dp, program, frame, ifindex);
            assert_eq!(action, XDP_PASS, "{name} via {program:?}");
            assert_eq!(out, frame, "{name} via {program:?} changed");
        }
    }

    pub fn out(&self, dp: &mut Dataplane, frame: &[u8]) -> (u32, Vec<u8>) {
        self.run(dp, XdpProgram::Inside, frame, self.priv0.0)
    }

    pub fn back(&self, dp: &mut Dataplane, frame: &[u8]) -> (u32, Vec<u8>) {
        self.run(dp, XdpProgram::Uplink, frame, self.pub0.0)
    }

    /// What the tc path (`nat_ingress`, tc mode and XDP's hand-over) makes
    /// of `frame` received on pub0.
    pub fn back_tc(&self, dp: &mut Dataplane, frame: &[u8]) -> (u32, Vec<u8>) {
        let outcome = self
            .topo
            .enter("nat", || {
                dp.test_run_tc(TcProgram::NatIngress, frame, self.pub0.0)
            })
            .expect("enter nat")
            .expect("tc test run");
        (outcome.action, outcome.frame)
    }

    /// Runs a tap tc program on `frame` with the skb on tap0, inside `nat`.
    pub fn tap(&self, dp: &mut Dataplane, program: TcProgram, frame: &[u8]) -> (u32, Vec<u8>) {
        let outcome = self
            .topo
            .enter("nat", || dp.test_run_tc(program, frame, self.tap0.0))
            .expect("enter nat")
            .expect("tc test run");
        (outcome.action, outcome.frame)
    }

    /// A permanent neighbour entry in `nat`.
    pub fn neighbour(&self, addr: &str, mac: &str, dev: &str) {
        self.topo
            .ip(
                "nat",
                &[
                    "neigh",
                    "replace",
                    addr,
                    "lladdr",
                    mac,
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                ],
            )
            .expect("neighbour");
    }

    /// A frame private → remote as the private host sends it.
    pub fn sent_by_private(&self, l4: L4) -> Ipv4Flow {
        Ipv4Flow {
            src_mac: PRIVATE_MAC,
            dst_mac: self.priv0.1,
            src: PRIVATE_HOST,
            dst: REMOTE,
            ttl: 64,
            l4,
        }
    }

    /// A frame remote → public as the remote host sends it.
    pub fn sent_by_remote(&self, l4: L4) -> Ipv4Flow {
        Ipv4Flow {
            src_mac: REMOTE_MAC,
            dst_mac: self.pub0.1,
            src: REMOTE,
            dst: PUBLIC,
            ttl: 64,
            l4,
        }
    }

    /// What leaves pub0 after SNAT.
    pub fn translated_out(&self, l4: L4) -> Ipv4Flow {
        Ipv4Flow {
            src_mac: self.pub0.1,
            dst_mac: REMOTE_MAC,
            src: PUBLIC,
            dst: REMOTE,
            ttl: 63,
            l4,
        }
    }

    /// What leaves priv0 after reverse translation.
    pub fn translated_in(&self, l4: L4) -> Ipv4Flow {
        Ipv4Flow {
            src_mac: self.priv0.1,
            dst_mac: PRIVATE_MAC,
            src: REMOTE,
            dst: PRIVATE_HOST,
            ttl: 63,
            l4,
        }
    }
}

/// The two-armed appliance's `[nat]`: masquerade of the private subnet
/// out of `pub0`.
pub fn config() -> Nat {
    snat_config("pub0", &["priv0"], SnatTarget::Masquerade)
}

/// The source port (or ICMP identifier) SNAT chose, read from the output.
pub fn public_port(frame: &[u8], icmp: bool) -> u16 {
    let at = if icmp { 14 + 20 + 4 } else { 14 + 20 };
    u16::from_be_bytes([frame[at], frame[at + 1]])
}
