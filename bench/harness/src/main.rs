//! `ethergate-bench`: the end-to-end side-by-side harness behind
//! `cargo xtask bench [--quick]`. Builds the recipe topology in throwaway
//! namespaces, runs the same workloads against ethergate, the Debian
//! SoftEther VPN Server and the kernel's NATs, prints one table with
//! absolute numbers and ratios to ethergate, and writes
//! `bench/results/<timestamp>.json`, `latest.json` and an SVG chart.
//!
//! Invariants: nothing leaves the machine (ethergate-netns topologies have
//! no route out); everything is torn down on return, on panic (drop) and on
//! Ctrl-C (a flag checked between points, then the same drops); a failing
//! point records its error in its row and the run goes on.

mod login;
mod nat;
mod nat_live;
mod openvpn;
mod profile;
mod report;
mod settings;
mod sys;
mod tools;
mod topo;
mod tunnel;
mod udpgen;
mod wireguard;

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::{Context, Result, bail};

use crate::{report::Report, settings::Settings};

const USAGE: &str = "usage: ethergate-bench --ethergate <path to release ethergate> [--quick] [--out DIR] [--only SYSTEM]
  --quick     one run per point, 3 s runs, 100 idle sessions (about 3 minutes)
  --out DIR   where results go (default bench/results)
  --only S    only systems whose name contains S (e.g. softether, iptables)
  --section S only section S: tunnel, nat (sendmmsg
              generator), nat-live (live-frames generator)
  --perf      perf record the server during TCP 1-stream runs and the whole machine
              during the large-flow-table pps run; reports in <out>/perf/";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut quick = false;
    let mut bin = None;
    let mut out = None;
    let mut only = None;
    let mut section = None;
    let mut perf = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--ethergate" => bin = args.next().map(PathBuf::from),
            "--out" => out = args.next().map(PathBuf::from),
            "--only" => only = args.next(),
            "--section" => section = args.next(),
            "--perf" => perf = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let bin = bin.context(USAGE)?;
    if !bin.exists() {
        bail!(
            "{} does not exist (cargo build --release -p ethergate)",
            bin.display()
        );
    }
    let out = out.unwrap_or_else(|| PathBuf::from("bench/results"));
    std::fs::create_dir_all(&out)?;
    let started_utc = sys::timestamp();
    let work = std::env::temp_dir().join(format!("ethergate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let mut settings = Settings::new(quick, bin, work.clone(), only, perf, out.clone());
    settings.section = section;
    sys::install_interrupt_flag();

    let mut report = Report::new();
    report.progress(&format!(
        "ethergate bench ({}), {} run(s) per point, {} s per run; load average {:?}",
        if quick { "quick" } else { "full" },
        settings.reps,
        settings.secs,
        sys::loadavg()
    ));
    let result = run(&mut report, &settings);
    let _ = std::fs::remove_dir_all(&work);
    if let Err(e) = &result {
        report.progress(&format!("run stopped early: {e:#}"));
    }

    report.compute_ratios();
    println!("\n{}", report.table());
    let mut host = BTreeMap::new();
    host.insert(
        "kernel".into(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
    );
    host.insert(
        "cpus".into(),
        std::thread::available_parallelism()
            .map(|n| n.get().to_string())
            .unwrap_or_default(),
    );
    host.insert(
        "ethergate".into(),
        settings.ethergate_bin.display().to_string(),
    );
    let doc = report::Document {
        started_utc: &started_utc,
        mode: if quick { "quick" } else { "full" },
        reps: settings.reps,
        host,
        rows: &report.rows,
    };
    let json = out.join(format!("{started_utc}.json"));
    report::write_json(&json, &doc)?;
    // A run of one section keeps its own "latest": it must not replace the
    // whole run's.
    let latest = match &settings.section {
        Some(section) => format!("latest-{section}"),
        None => "latest".to_owned(),
    };
    report::write_json(&out.join(format!("{latest}.json")), &doc)?;
    let title = format!(
        "ethergate vs SoftEther, OpenVPN and kernel NAT ({} run {started_utc}, 2 shared cores)",
        doc.mode
    );
    let svg = out.join(format!("{started_utc}.svg"));
    report::write_svg(&svg, &report.rows, &title)?;
    report::write_svg(&out.join(format!("{latest}.svg")), &report.rows, &title)?;
    println!(
        "wrote {}, {} and {latest}.json/{latest}.svg",
        json.display(),
        svg.display()
    );
    if sys::interrupted() {
        bail!("interrupted (results so far were written)");
    }
    Ok(())
}

fn run(report: &mut Report, settings: &Settings) -> Result<()> {
    let topo = topo::build()?;
    report.progress(&format!(
        "topology up: {}",
        topo.namespace_names().join(", ")
    ));
    if settings.runs_section("tunnel") {
        match tunnel::run(&topo, report, settings) {
            // OpenVPN's rows sit beside the SoftEther-protocol ones.
            Ok(()) => {
                openvpn::run(&topo, report, settings);
                wireguard::run(&topo, report, settings);
            }
            Err(e) => report.progress(&format!("tunnel rows stopped: {e:#}")),
        }
    }
    if !sys::interrupted()
        && settings.runs_section("nat")
        && let Err(e) = nat::run(&topo, report, settings)
    {
        report.progress(&format!("nat rows stopped: {e:#}"));
    }
    if !sys::interrupted()
        && settings.runs_section("nat-live")
        && let Err(e) = nat_live::run(&topo, report, settings)
    {
        report.progress(&format!("nat-live rows stopped: {e:#}"));
    }
    report.progress("tearing down the topology");
    drop(topo);
    Ok(())
}
