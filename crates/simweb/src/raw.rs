//! A raw loopback HTTP server for tests that need exact bytes on the wire:
//! `route(host, path)` returns the whole response, and every request is
//! logged with its arrival time, host (port stripped) and path.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Every request served: (arrival, host, path).
pub type RawLog = Arc<Mutex<Vec<(Instant, String, String)>>>;

/// Serves `route` on a fresh 127.0.0.1 port until the runtime stops; each
/// answer other than `/robots.txt` waits `delay` first (a slow site).
pub async fn serve_raw<F>(route: F, delay: Duration) -> std::io::Result<(SocketAddr, RawLog)>
where
    F: Fn(&str, &str) -> Vec<u8> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let log: RawLog = Arc::default();
    let (route, log2) = (Arc::new(route), Arc::clone(&log));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (route, log) = (Arc::clone(&route), Arc::clone(&log2));
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if buf.len() > 64 * 1024 {
                        return;
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let host = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("host").then(|| v.trim())
                    })
                    .and_then(|h| h.split(':').next())
                    .unwrap_or_default()
                    .to_owned();
                if let Ok(mut l) = log.lock() {
                    l.push((Instant::now(), host.clone(), path.clone()));
                }
                let answer = route(&host, &path);
                if path != "/robots.txt" {
                    tokio::time::sleep(delay).await;
                }
                let _ = sock.write_all(&answer).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok((addr, log))
}
