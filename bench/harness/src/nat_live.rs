//! NAT rows with a packet source that costs the sender almost nothing:
//! the `loadgen` program run by BPF_PROG_TEST_RUN in live-frames mode on
//! `private`'s interface (what xdp-trafficgen does), and the `sink`
//! program (XDP_DROP, counting) on `client`'s. The sendmmsg generator of
//! `nat.rs` spends most of a core in its own network stack; this one does
//! not, so what is measured is the NAT box.
//!
//! Systems, one at a time: ethergate with `[nat] mode = "xdp"` (the
//! reference), ethergate with `mode = "tc"`, a minimal XDP router (the
//! ceiling), the same router after one flow-table lookup (the floor of any
//! design that keeps per-flow state), plain routing, nftables and
//! iptables (nft) masquerade. Rows: 64-byte pps at 1 flow and at 2^20
//! flows, new flows per second (one pass over 2^20 flows from an empty
//! table), the loss between them, and for ethergate the kernel-measured
//! ns per packet of each of its programs (`kernel.bpf_stats_enabled`).
//!
//! Topology settings this needs and sets: GRO on `nat`'s inside interface
//! (a veth takes XDP_TX'ed frames from its peer only with GRO on or an XDP
//! program attached; ethergate's XDP mode has the latter anyway).

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use ethergate_dataplane::loadgen::LoadGen;
use ethergate_netns::Topology;

use crate::{
    nat::{self, IPTABLES_NFT, NFTABLES, ROUTING},
    report::{Better, Group, Report, Sample},
    settings::Settings,
    sys,
    topo::INTERNET_IP,
    tunnel,
};

pub const ETHERGATE_XDP: &str = tunnel::ETHERGATE;
pub const ETHERGATE_TC: &str = "ethergate, tc mode";
/// A minimal XDP router on the inside interface (no translation, no flow
/// state): what any XDP NAT could reach on this topology.
const XDP_ROUTING: &str = "XDP routing, no NAT (ceiling)";
/// The same router after one lookup of the packet's flow in a hash map of
/// the NAT's key and value sizes, as large as ethergate's: what keeping
/// per-flow state costs at the least.
const XDP_ROUTING_LOOKUP: &str = "XDP routing + one flow lookup, no NAT (floor)";
const ROWS: Group = Group("nat-live");
/// The far side's counting program; its cost under bpf_stats is mostly
/// the stats' own clock reads, the reference the NAT programs' costs are
/// read against.
const SINK: &str = "sink";
const HUGE: u32 = 1 << 20;
/// Frames per BPF_PROG_TEST_RUN call: long enough to amortise the
/// syscall, short enough to stop on time.
const CALL: u32 = 1 << 18;
/// Frames per call when pacing. Each call costs ~25 ms of set-up and
/// tear-down in the kernel (its page pool), so calls of one NAPI budget
/// (64) took minutes per pass; 2^14 frames per call, with the generator
/// pinned to one CPU (the flow counter is per CPU), cover every flow.
const PACED_CALL: u32 = 1 << 14;
/// Base source address of the generated flows (flow i adds i / 32768 to
/// the last byte); inside the SNAT rule's 10.0.0.0/16.
const SOURCE_BASE: [u8; 4] = [10, 0, 128, 0];
const PAYLOAD: usize = 18;

pub fn run(topo: &Topology, report: &mut Report, settings: &Settings) -> Result<()> {
    pin_to_current_cpu();
    let mut loadgen =
        LoadGen::load(nat::ETHERGATE_MAX_FLOWS).context("loading the live-frames generator")?;
    topo.enter("client", || loadgen.attach_sink("eth0"))??;
    let template = template(topo)?;
    let ifindex: u32 = topo
        .exec("private", &["cat", "/sys/class/net/eth0/ifindex"])?
        .stdout
        .trim()
        .parse()?;
    topo.exec("nat", &["ethtool", "-K", "eth1", "gro", "on"])?;
    let result = systems(topo, report, settings, &mut loadgen, &template, ifindex);
    let _ = topo.exec("nat", &["ethtool", "-K", "eth1", "gro", "off"]);
    result
}

fn systems(
    topo: &Topology,
    report: &mut Report,
    settings: &Settings,
    loadgen: &mut LoadGen,
    template: &[u8],
    ifindex: u32,
) -> Result<()> {
    for system in [
        ETHERGATE_XDP,
        ETHERGATE_TC,
        XDP_ROUTING,
        XDP_ROUTING_LOOKUP,
        ROUTING,
        NFTABLES,
        IPTABLES_NFT,
    ] {
        if !settings.wants(system) || sys::interrupted() {
            continue;
        }
        report.progress(&format!("nat-live: setting up {system}"));
        let mode = match system {
            ETHERGATE_XDP => Some("xdp"),
            ETHERGATE_TC => Some("tc"),
            _ => None,
        };
        // The XDP routers need the routes plain routing sets up.
        let xdp_router = system == XDP_ROUTING || system == XDP_ROUTING_LOOKUP;
        let kernel_system = if xdp_router { ROUTING } else { system };
        let setup = nat::setup_system(topo, settings, kernel_system, mode);
        let setup = match setup {
            Ok(s) => s,
            Err(e) => {
                report.progress(&format!("nat-live: {system} did not start: {e:#}"));
                continue;
            }
        };
        let attached = if xdp_router {
            let lookup = system == XDP_ROUTING_LOOKUP;
            match topo.enter("nat", || loadgen.attach_forwarder("eth1", lookup)) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        } else {
            Ok(())
        };
        if let Err(e) = attached {
            report.progress(&format!("nat-live: {system} did not start: {e}"));
            nat::teardown_system(topo, settings, setup);
            continue;
        }
        // Neighbours resolved and the path proven before anything is
        // timed: one echo through the NAT (the sink passes it).
        if let Err(e) = topo.run("private", &["ping", "-c1", "-W2", INTERNET_IP]) {
            report.progress(&format!("nat-live: no echo through {system}: {e:#}"));
        }
        let mut send = |flows: u32, budget: Budget| -> Result<(u64, Duration)> {
            loadgen.set_flows(flows)?;
            let before = loadgen.received()?;
            let started = Instant::now();
            topo.enter("private", || -> Result<()> {
                match budget {
                    Budget::Frames(n) => {
                        loadgen.send(template, ifindex, n)?;
                    }
                    Budget::Time(t) => {
                        while started.elapsed() < t {
                            loadgen.send(template, ifindex, CALL)?;
                        }
                    }
                    Budget::Paced(n) => {
                        for _ in 0..2 * n.div_ceil(PACED_CALL) {
                            loadgen.send(template, ifindex, PACED_CALL)?;
                        }
                    }
                }
                Ok(())
            })??;
            // Let the last frames drain through the NAT.
            std::thread::sleep(Duration::from_millis(100));
            Ok((loadgen.received()? - before, started.elapsed()))
        };
        rows(report, settings, system, &mut send);
        if let Err(e) = loadgen.detach_forwarder() {
            report.progress(&format!("nat-live: detaching the XDP router: {e:#}"));
        }
        nat::teardown_system(topo, settings, setup);
    }
    Ok(())
}

enum Budget {
    /// This many frames, as fast as the generator goes.
    Frames(u32),
    /// As many as fit in this time, as fast as the generator goes.
    Time(Duration),
    /// This many frames in calls of [`PACED_CALL`], twice over: the
    /// warm-up that creates every flow (a flow whose first frame was lost
    /// to a full queue gets another chance).
    Paced(u32),
}

fn rows(
    report: &mut Report,
    settings: &Settings,
    system: &str,
    send: &mut dyn FnMut(u32, Budget) -> Result<(u64, Duration)>,
) {
    let dur = Duration::from_secs(settings.secs);
    let method = format!(
        "live-frames generator (BPF_PROG_TEST_RUN) in private, 64-byte UDP frames, {} s; XDP_DROP sink on client eth0 counts",
        settings.secs
    );
    let pps = |(n, t): (u64, Duration)| n as f64 / t.as_secs_f64();
    let one = report.measure(
        ROWS.point(
            "64-byte pps, 1 flow",
            system,
            "pps",
            Better::Higher,
            &method,
        ),
        settings.reps,
        || send(1, Budget::Time(dur)).map(|r| Sample::new(pps(r))),
    );
    if system == ETHERGATE_XDP || system == ETHERGATE_TC {
        // A pass of its own with bpf_stats on: the stats' clock reads cost
        // every program run (~60 ns here), which would slow the rows of the
        // systems that run more programs per packet.
        let stats = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1");
        let programs_before = program_stats();
        let timed = send(1, Budget::Time(dur));
        let costs = program_costs(&programs_before, &program_stats());
        if stats.is_ok() {
            let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "0");
        }
        if let Err(e) = timed {
            report.progress(&format!("nat-live: cost pass of {system} failed: {e:#}"));
        }
        let sink = costs
            .iter()
            .find(|(name, _, _)| name == SINK)
            .map(|(_, ns, _)| *ns);
        for (name, ns, runs) in &costs {
            if name == SINK {
                report.derived(
                    ROWS.point(
                        "ns per packet, program sink (the clock's own cost)",
                        system,
                        "ns",
                        Better::Lower,
                        &format!(
                            "kernel.bpf_stats_enabled over the same pass ({runs} runs): the far side's classify-count-drop program, so mostly the two clock reads bpf_stats adds to every run"
                        ),
                    ),
                    Ok(*ns),
                );
                continue;
            }
            report.derived(
                ROWS.point(
                    &format!("ns per packet, program {name} (1 flow)"),
                    system,
                    "ns",
                    Better::Lower,
                    &format!(
                        "kernel.bpf_stats_enabled: run time ÷ runs over a 1-flow pass of its own ({runs} runs)"
                    ),
                ),
                Ok(*ns),
            );
            if let Some(sink) = sink {
                report.derived(
                    ROWS.point(
                        &format!("ns per packet, program {name} − sink (1 flow)"),
                        system,
                        "ns",
                        Better::Lower,
                        "the row above minus the sink's: what the program costs beyond the stats clock and a classify",
                    ),
                    Ok(ns - sink),
                );
            }
        }
    }
    let method_new = format!(
        "one pass over {HUGE} new flows, as fast as the generator sends; frames received ÷ time"
    );
    report.measure(
        ROWS.point(
            "new flows/s (first packet of 2^20 flows)",
            system,
            "flows/s",
            Better::Higher,
            &method_new,
        ),
        1,
        || send(HUGE, Budget::Frames(HUGE)).map(|r| Sample::new(pps(r))),
    );
    // The timed pass above loses frames to the NAT's full input queue
    // (the generator is faster), and a flow whose first frame was lost
    // does not exist yet: without this, the row below would time flow
    // creation, not established flows (the profile showed it: port
    // probing and timer set-up in a third of the samples). The same for
    // every system, conntrack included.
    if let Err(e) = send(HUGE, Budget::Paced(HUGE)) {
        report.progress(&format!("nat-live: warm-up of {system} failed: {e:#}"));
    }
    let method_many = format!("{method}; every flow created first by a paced pass");
    let many = report.measure(
        ROWS.point(
            "64-byte pps, 2^20 flows",
            system,
            "pps",
            Better::Higher,
            &method_many,
        ),
        settings.reps,
        || send(HUGE, Budget::Time(dur)).map(|r| Sample::new(pps(r))),
    );
    let loss = match (one, many) {
        (Some(a), Some(b)) if a > 0.0 => Ok((a - b) / a * 100.0),
        _ => Err(anyhow!("a pps row above failed")),
    };
    report.derived(
        ROWS.point(
            "pps loss, 1 → 2^20 flows",
            system,
            "% loss",
            Better::Lower,
            "(pps at 1 flow − pps at 2^20 flows) ÷ pps at 1 flow",
        ),
        loss,
    );
}

/// Run time and runs of ethergate's NAT programs now loaded, by name.
fn program_stats() -> Vec<(String, Duration, u64)> {
    const OURS: [&str; 5] = ["inside", "uplink", "nat_ingress", "uplink_egress", SINK];
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter_map(|p| {
            let name = p.name_as_str()?.to_owned();
            OURS.contains(&name.as_str())
                .then(|| (name, p.run_time(), p.run_count()))
        })
        .collect()
}

/// ns per run and runs of each program between two snapshots, for the
/// programs that carried the traffic (a program that saw only a few ARP
/// frames would report noise).
fn program_costs(
    before: &[(String, Duration, u64)],
    after: &[(String, Duration, u64)],
) -> Vec<(String, f64, u64)> {
    const ENOUGH_RUNS: u64 = 10_000;
    let mut out: Vec<(String, f64, u64)> = Vec::new();
    for (name, time, runs) in after {
        let (t0, r0) = before
            .iter()
            .filter(|(n, _, _)| n == name)
            .fold((Duration::ZERO, 0), |acc, (_, t, r)| {
                (acc.0 + *t, acc.1 + r)
            });
        let (dt, dr) = (time.saturating_sub(t0), runs.saturating_sub(r0));
        if dr >= ENOUGH_RUNS {
            out.push((name.clone(), dt.as_nanos() as f64 / dr as f64, dr));
        }
    }
    out
}

/// The 64-byte frame `private` sends: its MAC to `nat`'s inside MAC,
/// SOURCE_BASE:1024 → INTERNET_IP:1024, UDP without checksum (the
/// generator varies the source address and both ports per flow).
fn template(topo: &Topology) -> Result<Vec<u8>> {
    let mac = |ns: &str, dev: &str| -> Result<Vec<u8>> {
        let text = topo
            .exec(ns, &["cat", &format!("/sys/class/net/{dev}/address")])?
            .stdout;
        text.trim()
            .split(':')
            .map(|h| u8::from_str_radix(h, 16).map_err(Into::into))
            .collect()
    };
    let dst: std::net::Ipv4Addr = INTERNET_IP.parse()?;
    let mut frame = Vec::with_capacity(60);
    frame.extend(mac("nat", "eth1")?);
    frame.extend(mac("private", "eth0")?);
    frame.extend([0x08, 0x00]);
    let total = (20 + 8 + PAYLOAD) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&SOURCE_BASE);
    ip[16..20].copy_from_slice(&dst.octets());
    let mut sum = 0u32;
    for pair in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    frame.extend(ip);
    frame.extend(1024u16.to_be_bytes());
    frame.extend(1024u16.to_be_bytes());
    frame.extend(((8 + PAYLOAD) as u16).to_be_bytes());
    frame.extend([0, 0]);
    frame.extend([0u8; PAYLOAD]);
    Ok(frame)
}

/// Keeps the calling thread (the generator) on the CPU it runs on now: the
/// generator's flow counter is per CPU, so a thread that moved mid-pass
/// would repeat some flows and skip others.
fn pin_to_current_cpu() {
    // SAFETY: sched_getcpu has no preconditions; cpu_set_t is plain data,
    // zeroed is the empty set, and the set is live for the call.
    unsafe {
        let cpu = libc::sched_getcpu();
        if cpu < 0 {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
