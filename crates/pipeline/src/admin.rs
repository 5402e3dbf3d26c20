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
