//! A paced TCP stream across a topology, for tests that disturb the path
//! while data flows (a restart of the appliance, say) and want to know
//! whether the connection survived and how long it stalled.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{NetnsError, Topology};

/// What the receiving end saw.
#[derive(Debug)]
pub struct Received {
    /// Where the connection came from (after any NAT).
    pub peer: SocketAddr,
    pub bytes: usize,
    /// The longest pause between two reads.
    pub longest_gap: Duration,
}

/// A one-connection receiver bound to `addr` in namespace `ns`: reads
/// until the sender closes, and panics on a read error (a reset is a
/// broken connection) or 20 s of silence.
pub fn receive(topo: &Topology, ns: &str, addr: &str) -> Result<JoinHandle<Received>, NetnsError> {
    let listener = topo.enter(ns, || TcpListener::bind(addr))??;
    Ok(std::thread::spawn(move || {
        let (mut stream, peer) = listener.accept().expect("accept");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        let mut buf = [0u8; 65536];
        let (mut bytes, mut longest_gap, mut last) = (0usize, Duration::ZERO, Instant::now());
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    bytes += n;
                    longest_gap = longest_gap.max(last.elapsed());
                    last = Instant::now();
                }
                Err(e) => panic!("receive: {e} after {bytes} bytes"),
            }
        }
        Received {
            peer,
            bytes,
            longest_gap,
        }
    }))
}

/// Connects from namespace `ns` to `to` and sends 4 KiB every 2 ms for
/// `how_long` on its own thread, then closes; the thread returns the bytes
/// sent.
pub fn send_paced(
    topo: &Topology,
    ns: &str,
    to: &str,
    how_long: Duration,
) -> Result<JoinHandle<usize>, NetnsError> {
    let mut stream = topo.enter(ns, || TcpStream::connect(to))??;
    Ok(std::thread::spawn(move || {
        let chunk = [7u8; 4096];
        let mut sent = 0usize;
        let until = Instant::now() + how_long;
        while Instant::now() < until {
            stream.write_all(&chunk).expect("send");
            sent += chunk.len();
            std::thread::sleep(Duration::from_millis(2));
        }
        sent
    }))
}
