//! Echo server on tokio (epoll) as a reference, one current-thread runtime
//! per core (the same thread-per-core shape as the io_uring servers).
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() {
    let (addr, threads) = runtime_compare::args();
    runtime_compare::per_core(threads, addr, |std_listener| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            loop {
                let (stream, _) = listener.accept().await.expect("accept");
                tokio::task::spawn_local(echo(stream));
            }
        });
    });
}

async fn echo(mut stream: tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; runtime_compare::BUF];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
