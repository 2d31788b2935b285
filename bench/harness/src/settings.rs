//! Run settings: `--quick` (one run per point, short runs; about three
//! minutes) or the full run (median of three, longer runs, 1,000 sessions).

use std::path::PathBuf;

pub struct Settings {
    /// Runs per point; the row gets the median.
    pub reps: usize,
    /// Seconds per throughput/pps run.
    pub secs: u64,
    pub logins: usize,
    pub login_parallel: usize,
    /// Idle session counts for the RSS rows.
    pub idle_sessions: Vec<usize>,
    /// Flows of the "many flows" NAT pps rows.
    pub many_flows: u32,
    /// Flows of the large-table NAT pps rows.
    pub huge_flows: u32,
    pub ping_count: u32,
    pub ethergate_bin: PathBuf,
    /// Scratch directory (configs, nginx); removed at the end.
    pub work: PathBuf,
    /// Only run rows whose workload or system contains this.
    pub only: Option<String>,
    /// Only run the sections ("tunnel", "nat", "nat-live") this names.
    pub section: Option<String>,
    /// Profile chosen points with perf into `<out>/perf/`.
    pub perf: bool,
    pub out: PathBuf,
}

impl Settings {
    pub fn new(
        quick: bool,
        ethergate_bin: PathBuf,
        work: PathBuf,
        only: Option<String>,
        perf: bool,
        out: PathBuf,
    ) -> Self {
        // Quick: one repetition of short runs, for a look while working.
        let (reps, secs, logins, login_parallel, idle_sessions, ping_count) = if quick {
            (1, 3, 200, 16, vec![100], 200)
        } else {
            (3, 10, 1000, 32, vec![100, 1000], 1000)
        };
        Self {
            reps,
            secs,
            logins,
            login_parallel,
            idle_sessions,
            many_flows: 4096,
            huge_flows: 1_000_000,
            ping_count,
            ethergate_bin,
            work,
            only,
            section: None,
            perf,
            out,
        }
    }

    /// Whether `--section` selects `name` (exactly, or all without it).
    pub fn runs_section(&self, name: &str) -> bool {
        self.section.as_deref().is_none_or(|s| s == name)
    }

    pub fn wants(&self, system: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|o| system.to_lowercase().contains(&o.to_lowercase()))
    }
}
