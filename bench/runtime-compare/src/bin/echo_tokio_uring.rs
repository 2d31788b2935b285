//! Echo server on tokio-uring 0.5 (io_uring), one runtime per core.
use tokio_uring::net::{TcpListener, TcpStream};

fn main() {
    let (addr, threads) = runtime_compare::args();
    runtime_compare::per_core(threads, addr, |std_listener| {
        tokio_uring::start(async move {
            let listener = TcpListener::from_std(std_listener);
            loop {
                let (stream, _) = listener.accept().await.expect("accept");
                tokio_uring::spawn(echo(stream));
            }
        });
    });
}

async fn echo(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; runtime_compare::BUF];
    loop {
        let (res, b) = stream.read(buf).await;
        buf = b;
        let n = match res {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Echo exactly what was read, then restore the full buffer.
        let (res, slice) = stream.write_all(tokio_uring::buf::BoundedBuf::slice(buf, ..n)).await;
        buf = slice.into_inner();
        if res.is_err() {
            return;
        }
    }
}
