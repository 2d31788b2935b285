//! Shared pieces: the SO_REUSEPORT listener every server binds once per
//! worker thread, and the command line they all take.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Echo buffer per connection, the same for every runtime.
pub const BUF: usize = 64 * 1024;

pub fn reuseport_listener(addr: SocketAddr) -> std::net::TcpListener {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .expect("socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.set_reuse_port(true).expect("SO_REUSEPORT");
    socket.bind(&addr.into()).expect("bind");
    socket.listen(1024).expect("listen");
    socket.set_nonblocking(true).expect("nonblocking");
    socket.into()
}

/// `<server> <addr> <threads>`; threads 0 = one per core.
pub fn args() -> (SocketAddr, usize) {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:7878".into())
        .parse()
        .expect("address");
    let threads = args.next().map_or(0, |t| t.parse().expect("threads"));
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    (addr, threads)
}

/// Starts `threads` workers, each with its own listener, and waits forever.
pub fn per_core(threads: usize, addr: SocketAddr, run: fn(std::net::TcpListener)) {
    let listeners: Vec<_> = (0..threads).map(|_| reuseport_listener(addr)).collect();
    let handles: Vec<_> = listeners
        .into_iter()
        .map(|l| std::thread::spawn(move || run(l)))
        .collect();
    for h in handles {
        let _ = h.join();
    }
}
