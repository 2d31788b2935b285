//! The one load generator for every server: blocking std sockets, one OS
//! thread per connection (two for bulk), so the client side costs the same
//! whichever runtime serves. Bounded in time; loopback only.
//!
//!   loadgen <addr> bulk <connections> <seconds>  — 64 KiB writes, echoed back
//!   loadgen <addr> rr   <connections> <seconds>  — 64 B request, 64 B reply
use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = args[1].parse().expect("address");
    let mode = args[2].as_str();
    let conns: usize = args[3].parse().expect("connections");
    let secs: u64 = args[4].parse().expect("seconds");
    let run = Duration::from_secs(secs);
    match mode {
        "bulk" => bulk(addr, conns, run),
        "rr" => rr(addr, conns, run),
        _ => panic!("mode is bulk or rr"),
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

fn bulk(addr: SocketAddr, conns: usize, run: Duration) {
    let start = Instant::now();
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..conns {
        let stream = connect(addr);
        let mut rd = stream.try_clone().expect("clone");
        let mut wr = stream;
        writers.push(std::thread::spawn(move || {
            let chunk = vec![0x5au8; 64 * 1024];
            let mut sent = 0u64;
            while start.elapsed() < run {
                wr.write_all(&chunk).expect("write");
                sent += chunk.len() as u64;
            }
            wr.shutdown(Shutdown::Write).expect("shutdown");
            sent
        }));
        readers.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            let mut got = 0u64;
            loop {
                match rd.read(&mut buf) {
                    Ok(0) | Err(_) => return got,
                    Ok(n) => got += n as u64,
                }
            }
        }));
    }
    let sent: u64 = writers.into_iter().map(|h| h.join().expect("writer")).sum();
    let got: u64 = readers.into_iter().map(|h| h.join().expect("reader")).sum();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(sent, got, "every byte echoed");
    println!(
        "bulk conns={conns} secs={secs:.2} echoed_MiB={:.0} Gbit/s={:.2}",
        got as f64 / (1 << 20) as f64,
        got as f64 * 8.0 / secs / 1e9
    );
}

fn rr(addr: SocketAddr, conns: usize, run: Duration) {
    let start = Instant::now();
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            let mut s = connect(addr);
            std::thread::spawn(move || {
                let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3)
                    .expect("histogram");
                let req = [0x42u8; 64];
                let mut resp = [0u8; 64];
                while start.elapsed() < run {
                    let t = Instant::now();
                    s.write_all(&req).expect("write");
                    s.read_exact(&mut resp).expect("read");
                    hist.record(t.elapsed().as_nanos() as u64).expect("record");
                }
                hist
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("histogram");
    for h in handles {
        all.add(h.join().expect("rr thread")).expect("merge");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "rr conns={conns} secs={secs:.2} req/s={:.0} p50_us={:.1} p99_us={:.1} p999_us={:.1}",
        all.len() as f64 / secs,
        all.value_at_quantile(0.50) as f64 / 1e3,
        all.value_at_quantile(0.99) as f64 / 1e3,
        all.value_at_quantile(0.999) as f64 / 1e3,
    );
}
