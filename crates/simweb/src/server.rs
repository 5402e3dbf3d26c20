//! Serves a [`SimWeb`] over HTTP/1.1: every host on one listener, routed by
//! the Host header, with an optional log of every request received.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::hostile::{self, Body, full};
use crate::model::{Answer, SimWeb};

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// When it arrived.
    pub at: Instant,
    /// The Host header, without port.
    pub host: String,
    /// Path and query.
    pub path: String,
    /// The User-Agent header.
    pub user_agent: String,
}

/// Every request the server received, in arrival order.
#[derive(Debug, Default)]
pub struct RequestLog {
    entries: Mutex<Vec<LoggedRequest>>,
}

impl RequestLog {
    /// A copy of the entries so far.
    pub fn snapshot(&self) -> Vec<LoggedRequest> {
        self.entries.lock().map(|e| e.clone()).unwrap_or_default()
    }
    /// Number of requests so far.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
    /// True before the first request.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn push(&self, r: LoggedRequest) {
        if let Ok(mut e) = self.entries.lock() {
            e.push(r);
        }
    }
}

fn respond(web: &SimWeb, req: &Request<Incoming>) -> Response<Body> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("")
        .to_ascii_lowercase();
    let host = host.rsplit_once(':').map_or(host.as_str(), |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host.as_str()
        }
    });
    let path = req.uri().path();
    if hostile::is_hostile(host) {
        return hostile::respond(host, req.uri().path_and_query().map_or("/", |p| p.as_str()));
    }
    let builder = Response::builder().header(header::SERVER, "linkgraph-simweb");
    let resp = if path == "/__simweb/epoch" || path == "/__simweb/advance" {
        // Control: read the epoch, or move to the next one (never linked, so
        // a crawler never finds it).
        let e = if path == "/__simweb/advance" {
            web.advance()
        } else {
            web.epoch()
        };
        builder
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(full(Bytes::from(format!("{e}\n"))))
    } else if path == "/robots.txt" {
        match web.robots_txt(host) {
            Some(txt) => builder
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(full(Bytes::from(txt))),
            None => builder
                .status(StatusCode::NOT_FOUND)
                .body(full(Bytes::new())),
        }
    } else {
        match web.answer(host, path) {
            Answer::Page {
                body,
                content_type,
                x_robots_tag,
            } => {
                // An ETag of the body: a conditional request for an unchanged
                // page gets a 304.
                let etag = format!("\"{:016x}\"", linkgraph_core::body_hash(&body));
                let matches = req
                    .headers()
                    .get(header::IF_NONE_MATCH)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
                if matches {
                    builder
                        .status(StatusCode::NOT_MODIFIED)
                        .header(header::ETAG, etag)
                        .body(full(Bytes::new()))
                } else {
                    let mut b = builder
                        .status(StatusCode::OK)
                        .header(header::CONTENT_TYPE, content_type)
                        .header(header::ETAG, etag);
                    if let Some(x) = x_robots_tag {
                        b = b.header("x-robots-tag", x);
                    }
                    b.body(full(Bytes::from(body)))
                }
            }
            Answer::Redirect { status, location } => builder
                .status(StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND))
                .header(header::LOCATION, location)
                .body(full(Bytes::new())),
            Answer::Gone => builder
                .status(StatusCode::GONE)
                .header(header::CONTENT_TYPE, "text/html")
                .body(full(Bytes::from_static(b"<h1>Gone</h1>"))),
            Answer::NotFound => builder
                .status(StatusCode::NOT_FOUND)
                .header(header::CONTENT_TYPE, "text/html")
                .body(full(Bytes::from_static(b"<h1>Not found</h1>"))),
        }
    };
    resp.unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

/// Serves `web` on `listener` until `shutdown` resolves. Every request is
/// appended to `log` when one is given.
pub async fn serve(
    listener: TcpListener,
    web: Arc<SimWeb>,
    log: Option<Arc<RequestLog>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (web, log) = (Arc::clone(&web), log.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                if let Some(log) = &log {
                    log.push(LoggedRequest {
                        at: Instant::now(),
                        host: req
                            .headers()
                            .get(header::HOST)
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or("")
                            .split(':')
                            .next()
                            .unwrap_or("")
                            .to_ascii_lowercase(),
                        path: req
                            .uri()
                            .path_and_query()
                            .map_or("/", |p| p.as_str())
                            .to_owned(),
                        user_agent: req
                            .headers()
                            .get(header::USER_AGENT)
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or("")
                            .to_owned(),
                    });
                }
                let resp = respond(&web, &req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
