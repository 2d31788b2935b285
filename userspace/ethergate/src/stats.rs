//! Human-readable rendering of data-plane counters.

use std::fmt::Write as _;

use ethergate_common::{ParseIssue, ProtoClass, Verdict};
use ethergate_dataplane::CounterSnapshot;

/// A table of non-zero (class, verdict) counters, then non-zero parse
/// issues. Zero rows are left out: the interesting part is what moved.
pub fn render(snapshot: &CounterSnapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<9} {:>12} {:>14}",
        "class", "verdict", "packets", "bytes"
    );
    let mut any = false;
    for class in ProtoClass::ALL {
        for verdict in Verdict::ALL {
            let c = snapshot.total(class, verdict);
            if c.packets == 0 {
                continue;
            }
            any = true;
            let _ = writeln!(
                out,
                "{:<16} {:<9} {:>12} {:>14}",
                class.name(),
                verdict.name(),
                c.packets,
                c.bytes
            );
        }
    }
    if !any {
        let _ = writeln!(out, "(no packets yet)");
    }
    for issue in ParseIssue::ALL {
        let n = snapshot.parse_issue(issue);
        if n > 0 {
            let _ = writeln!(out, "parse issue {:<28} {n:>12}", issue.name());
        }
    }
    out
}
