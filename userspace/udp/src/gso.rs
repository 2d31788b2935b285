//! UDP segmentation offload (`UDP_SEGMENT`): a run of equal-sized
//! datagrams to one destination handed to the kernel as one sendmsg(2),
//! which it cuts — one syscall and one trip down the stack per run.

use std::os::fd::AsRawFd;

use super::pktinfo::PeerAddr;

/// Most bytes in one segmented send (the kernel's limit is 64 KiB of UDP
/// payload) and most segments (UDP_MAX_SEGMENTS is 128).
pub const MAX_BYTES: usize = 65_000;
pub const MAX_SEGMENTS: usize = 64;
/// The largest segment that fits an Ethernet MTU with the IPv4 and UDP
/// headers: larger datagrams go one by one (fragmented by IP), since a
/// segmented send of them is refused.
pub const ETHERNET_SEGMENT_MAX: usize = 1500 - 20 - 8;

/// One non-blocking sendmsg(2) with UDP_SEGMENT: the kernel cuts `chunk`
/// into `segment`-byte datagrams (the last may be shorter), sent from
/// `to.local` when known. The segment plus the IP and UDP headers must fit
/// the route's MTU, or the kernel refuses with EINVAL.
pub fn send_segmented(
    socket: &impl AsRawFd,
    to: PeerAddr,
    chunk: &[u8],
    segment: u16,
) -> std::io::Result<()> {
    super::pktinfo::send(socket, to, chunk, Some(segment))
}

/// Whether a segmented send failed because this path cannot segment (the
/// device or route refuses `UDP_SEGMENT`): then send one datagram at a
/// time from now on. Any other error concerns that send only.
pub fn refused(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL))
}

/// Splits `sizes` (datagrams laid end to end) into runs one segmented send
/// can carry: equal sizes, the last one possibly shorter, within the
/// limits. Yields `(first, end, bytes)` for each, in order; allocates
/// nothing.
pub fn runs(sizes: &[usize]) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let &size = sizes.get(i)?;
        let first = i;
        let mut end = i + 1;
        let mut bytes = size;
        while end < sizes.len()
            && end - first < MAX_SEGMENTS
            && bytes + sizes[end] <= MAX_BYTES
            && sizes[end] <= size
        {
            bytes += sizes[end];
            end += 1;
            if sizes[end - 1] < size {
                break;
            }
        }
        i = end;
        Some((first, end, bytes))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_equal_sizes_ending_with_at_most_one_shorter() {
        let got: Vec<_> = runs(&[100, 100, 100, 40, 100, 200, 200]).collect();
        assert_eq!(got, vec![(0, 4, 340), (4, 5, 100), (5, 7, 400)]);
        let many = vec![1000; 100];
        let counts: Vec<_> = runs(&many).map(|(a, b, _)| b - a).collect();
        assert_eq!(counts, vec![MAX_SEGMENTS, 100 - MAX_SEGMENTS]);
        assert_eq!(runs(&[]).count(), 0);
    }

    /// Real loopback sockets: one segmented send arrives as separate
    /// datagrams of the segment size.
    #[test]
    fn a_segmented_send_arrives_as_datagrams() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let chunk: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let to = PeerAddr::routed(rx.local_addr().expect("addr"));
        send_segmented(&tx, to, &chunk, 1000).expect("send");
        let mut buf = [0u8; 2000];
        let sizes: Vec<usize> = (0..3).map(|_| rx.recv(&mut buf).expect("recv")).collect();
        assert_eq!(sizes, vec![1000, 1000, 500]);
    }
}
