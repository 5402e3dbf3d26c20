//! The admin endpoints every service serves: `/metrics` (Prometheus text
//! format), `/healthz` (the process is up) and `/readyz` (it consumes).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Renders the metrics page.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    render: Render,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (render, ready) = (Arc::clone(&render), Arc::clone(&ready));
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let res = match req.uri().path() {
                    "/metrics" => respond(
                        StatusCode::OK,
                        "text/plain; version=0.0.4; charset=utf-8",
                        render(),
                    ),
                    "/healthz" => respond(StatusCode::OK, "text/plain", "ok\n".into()),
                    "/readyz" if ready.load(Ordering::Relaxed) => {
                        respond(StatusCode::OK, "text/plain", "ready\n".into())
                    }
                    "/readyz" => respond(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        "not ready\n".into(),
                    ),
                    _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
                };
                async move { Ok::<_, std::convert::Infallible>(res) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Why the admin endpoints could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The Prometheus recorder could not be installed.
    #[error("cannot install the metrics recorder: {0}")]
    Recorder(String),
    /// The admin address cannot be bound.
    #[error("cannot listen on admin address {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Latency histogram buckets, in seconds, of every `_seconds` metric.
const BUCKETS: [f64; 13] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the Prometheus recorder (once per process) and describes every
/// metric; returns what renders the metrics page.
pub fn install_recorder() -> Result<Render, AdminError> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&BUCKETS)
        .map_err(|e| AdminError::Recorder(e.to_string()))?
        .install_recorder()
        .map_err(|e| AdminError::Recorder(e.to_string()))?;
    crate::metrics_spec::describe();
    Ok(Arc::new(move || handle.render()))
}

/// Installs the Prometheus recorder, describes every metric, and serves the
/// admin endpoints on `addr`; they stop when the returned sender is dropped.
pub async fn start(
    addr: std::net::SocketAddr,
    ready: Arc<AtomicBool>,
) -> Result<tokio::sync::oneshot::Sender<()>, AdminError> {
    let render = install_recorder()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Listen { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(%local, "admin endpoints on /metrics, /healthz, /readyz");
    eprintln!("admin listening on http://{local}");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, render, ready, async {
        let _ = rx.await;
    }));
    Ok(tx)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn health_readiness_and_metrics() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ready = Arc::new(AtomicBool::new(false));
        let render: Render = Arc::new(|| "# TYPE x counter\nx 1\n".to_owned());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, render, Arc::clone(&ready), async {
            let _ = stopped.await;
        }));
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        ready.store(true, Ordering::Relaxed);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        let m = get(addr, "/metrics").await;
        assert!(
            m.starts_with("HTTP/1.1 200")
                && m.contains("text/plain; version=0.0.4")
                && m.ends_with("x 1\n")
        );
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        let _ = stop.send(());
    }
}
