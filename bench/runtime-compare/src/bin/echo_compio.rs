//! Echo server on compio 0.19.2 (io_uring), one runtime per core.
use compio::{
    BufResult,
    io::{AsyncRead, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

fn main() {
    let (addr, threads) = runtime_compare::args();
    runtime_compare::per_core(threads, addr, |std_listener| {
        let rt = compio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let listener = TcpListener::from_std(std_listener).expect("listener");
            loop {
                let (stream, _) = listener.accept().await.expect("accept");
                compio::runtime::spawn(echo(stream)).detach();
            }
        });
    });
}

async fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(runtime_compare::BUF);
    loop {
        let BufResult(res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let BufResult(res, b) = stream.write_all(buf).await;
        buf = b;
        buf.clear();
        if res.is_err() {
            return;
        }
    }
}
