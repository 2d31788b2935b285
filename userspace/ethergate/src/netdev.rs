//! An interface's kernel counters from `/proc/net/dev`, which shows the
//! network namespace of the process that reads it — serve's own.

use ethergate_admin::model::InterfaceCounters;

/// The counters of `interface`, `None` if it is not listed.
pub fn counters(interface: &str) -> Option<InterfaceCounters> {
    parse(&std::fs::read_to_string("/proc/net/dev").ok()?, interface)
}

/// One line per interface after two header lines:
/// `name: rx_bytes rx_packets rx_errs rx_drop rx_fifo rx_frame rx_compressed
/// rx_multicast tx_bytes tx_packets tx_errs tx_drop …`.
fn parse(text: &str, interface: &str) -> Option<InterfaceCounters> {
    text.lines().skip(2).find_map(|line| {
        let (name, fields) = line.split_once(':')?;
        if name.trim() != interface {
            return None;
        }
        let n: Vec<u64> = fields
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        Some(InterfaceCounters {
            rx_bytes: *n.first()?,
            rx_packets: *n.get(1)?,
            rx_dropped: *n.get(3)?,
            tx_bytes: *n.get(8)?,
            tx_packets: *n.get(9)?,
            tx_dropped: *n.get(11)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0: 123456789  98765    1    7    0     0          0         3 987654321   54321    0    2    0     0       0          0
";

    #[test]
    fn reads_the_named_interface() {
        let c = parse(SAMPLE, "eth0").expect("eth0");
        assert_eq!(
            c,
            InterfaceCounters {
                rx_bytes: 123_456_789,
                rx_packets: 98_765,
                rx_dropped: 7,
                tx_bytes: 987_654_321,
                tx_packets: 54_321,
                tx_dropped: 2,
            }
        );
        assert_eq!(parse(SAMPLE, "eth1"), None);
        assert_eq!(parse(SAMPLE, "eth"), None);
    }
}
