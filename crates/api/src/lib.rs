//! The HTTP API: every report of `linkgraph-query` as `GET /v1/<report>`,
//! with the same JSON as the CLI, plus `/v1/openapi.json`, `/healthz` and
//! `/metrics`. It is stateless over its [`Reader`], so with the Scylla store
//! it scales out behind a load balancer.
//!
//! Safe by default:
//! * [`check_bind`]: a non-loopback address needs a bearer token or an
//!   explicit `--insecure-no-auth`;
//! * with a token, every request but `/healthz` must carry
//!   `Authorization: Bearer <token>` (compared in constant time, never
//!   logged), else 401;
//! * a client gets [`Limits::header_timeout`] to send its request head and
//!   [`Limits::request_timeout`] for the whole exchange; at most
//!   [`Limits::max_concurrent`] requests run at once (then 503), and no
//!   response holds more than [`Limits::max_rows`] rows (a larger `limit`
//!   is a 400).
//!
//! # Layout
//! * this file: configuration, the accept loop, auth and limits;
//! * [`routes`]: the endpoints, their parameters and the OpenAPI document
//!   built from the same table;
//! * `table`: sorting and keyset paging of a report's rows by any column;
//! * `page`: the overview web page at `/` and `/domain/<domain>`, built
//!   on the API, with its embedded assets.

mod page;
pub mod routes;
mod table;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use linkgraph_query::Reader;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Renders the Prometheus metrics page.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Why the API cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A non-loopback address without authentication or an explicit opt-out.
    #[error(
        "refusing to serve the API on {0} without authentication: give --auth-token-file FILE, or --insecure-no-auth to serve it to anyone who can reach that address"
    )]
    Unauthenticated(SocketAddr),
    /// The token file cannot be read or is empty.
    #[error("cannot use the token file {path}: {reason}")]
    Token {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Bounds on what one client can make the server do.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time to receive a request's head.
    pub header_timeout: Duration,
    /// Time for one whole request, from its head to the last response byte.
    pub request_timeout: Duration,
    /// Requests handled at once; more get a 503.
    pub max_concurrent: usize,
    /// Open connections; more wait to be accepted.
    pub max_connections: usize,
    /// Rows in one response; a larger `limit` is a 400.
    pub max_rows: usize,
    /// Rows in one response when no `limit` is given.
    pub default_rows: usize,
    /// Rows a report may have to be sorted by another column than its own
    /// order (it is read whole to be sorted); more is a 400.
    pub max_sort_rows: usize,
    /// Rows in one CSV download (`format=csv`); more is a 400.
    pub max_csv_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_concurrent: 32,
            max_connections: 256,
            max_rows: 10_000,
            default_rows: 1_000,
            max_sort_rows: 200_000,
            max_csv_rows: 1_000_000,
        }
    }
}

/// What the server answers with.
pub struct Api {
    reader: Reader,
    token: Option<String>,
    limits: Limits,
    metrics: Option<Render>,
    busy: Semaphore,
}

impl Api {
    /// An API over `reader`; requests need `token` as a bearer token when
    /// given; `/metrics` renders `metrics` (404 without one).
    pub fn new(
        reader: Reader,
        token: Option<String>,
        limits: Limits,
        metrics: Option<Render>,
    ) -> Api {
        let busy = Semaphore::new(limits.max_concurrent.max(1));
        Api {
            reader,
            token,
            limits,
            metrics,
            busy,
        }
    }
}

/// Fails unless serving on `addr` is safe: a loopback address, a token,
/// or an explicit `insecure_no_auth`.
pub fn check_bind(
    addr: SocketAddr,
    has_token: bool,
    insecure_no_auth: bool,
) -> Result<(), ApiError> {
    if addr.ip().is_loopback() || has_token || insecure_no_auth {
        Ok(())
    } else {
        Err(ApiError::Unauthenticated(addr))
    }
}

/// Reads a bearer token from `path`: its content without surrounding
/// whitespace, which must not be empty.
pub fn read_token(path: &std::path::Path) -> Result<String, ApiError> {
    let bad = |reason: String| ApiError::Token {
        path: path.display().to_string(),
        reason,
    };
    let raw = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let token = raw.trim();
    if token.is_empty() {
        return Err(bad("it is empty".into()));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it holds whitespace inside the token".into()));
    }
    Ok(token.to_owned())
}

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ApiError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ApiError::Listen { addr, source })
}

/// Serves `api` on `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, api: Arc<Api>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let conns = Arc::new(Semaphore::new(api.limits.max_connections.max(1)));
    loop {
        let Ok(permit) = Arc::clone(&conns).acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                continue;
            }
        };
        let api = Arc::clone(&api);
        tokio::spawn(async move {
            let _permit = permit;
            let limits = api.limits.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let api = Arc::clone(&api);
                async move { Ok::<_, std::convert::Infallible>(api.handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), svc);
            // A connection lives at most as long as a few requests may take:
            // a client that reads its response too slowly is cut off.
            let lifetime = limits.request_timeout + limits.header_timeout;
            match tokio::time::timeout(lifetime, conn).await {
                Err(_) => tracing::debug!(%peer, "api connection timed out"),
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "api connection failed"),
                Ok(Ok(())) => {}
            }
        });
    }
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut bytes = serde_json::to_vec(body).unwrap_or_default();
    bytes.push(b'\n');
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// A JSON error: `{"error": message}`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message.into() }))
}

/// Compares two byte strings in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Api {
    fn authorized(&self, authorization: Option<&str>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        authorization
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| same(given.trim().as_bytes(), token.as_bytes()))
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let auth = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let (path, query) = (req.uri().path(), req.uri().query().unwrap_or(""));
        self.answer(req.method(), path, query, auth).await
    }

    /// Answers one request: `method path?query` with this Authorization
    /// header.
    pub async fn answer(
        &self,
        method: &hyper::Method,
        path: &str,
        query: &str,
        authorization: Option<&str>,
    ) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let endpoint = routes::endpoint_label(path);
        let res = if method != hyper::Method::GET {
            error(StatusCode::METHOD_NOT_ALLOWED, "only GET is served")
        } else if path == "/healthz" {
            json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
        } else if page::is_page(path) {
            page::serve(path).unwrap_or_else(|| error(StatusCode::NOT_FOUND, "no such asset"))
        } else if !self.authorized(authorization) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token: send Authorization: Bearer <token>",
            );
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer"),
            );
            r
        } else if path == "/metrics" {
            match &self.metrics {
                Some(render) => {
                    let mut r = Response::new(Full::new(Bytes::from(render())));
                    r.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(
                            "text/plain; version=0.0.4; charset=utf-8",
                        ),
                    );
                    r
                }
                None => error(StatusCode::NOT_FOUND, "no metrics here"),
            }
        } else {
            match self.busy.try_acquire() {
                Err(_) => {
                    let mut r = error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "too many requests at once (at most {}): retry shortly",
                            self.limits.max_concurrent
                        ),
                    );
                    r.headers_mut().insert(
                        hyper::header::RETRY_AFTER,
                        hyper::header::HeaderValue::from_static("1"),
                    );
                    r
                }
                Ok(_permit) => {
                    let work = routes::route(&self.reader, &self.limits, path, query);
                    match tokio::time::timeout(self.limits.request_timeout, work).await {
                        Ok(r) => r,
                        Err(_) => error(
                            StatusCode::GATEWAY_TIMEOUT,
                            format!(
                                "the report took longer than {}s: narrow it (a smaller limit, one URL)",
                                self.limits.request_timeout.as_secs()
                            ),
                        ),
                    }
                }
            }
        };
        let code = res.status().as_u16().to_string();
        metrics::counter!("linkgraph_api_requests_total", "endpoint" => endpoint, "code" => code)
            .increment(1);
        metrics::histogram!("linkgraph_api_request_duration_seconds", "endpoint" => endpoint)
            .record(started.elapsed().as_secs_f64());
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// An API over a store where a.com and b.org link to t.com.
    async fn api(token: Option<&str>, limits: Limits) -> (tempfile::TempDir, Api) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = linkgraph_store::data_store_url(dir.path());
        let store = linkgraph_store::open(&url, true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let targets = ["http://t.com/0", "http://t.com/1", "http://t.com/2"];
        for from in ["http://a.com/", "http://b.org/"] {
            let page = linkgraph_store::conformance::page(from, 1_000, &targets);
            store
                .write_page(page)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let reader = Reader::new(store, "test");
        (dir, Api::new(reader, token.map(String::from), limits, None))
    }

    async fn get(api: &Api, target: &str, auth: Option<&str>) -> (u16, serde_json::Value) {
        let (status, _, body) = text(api, target, auth).await;
        (status, serde_json::from_str(&body).unwrap_or_default())
    }

    #[tokio::test]
    async fn domains_and_authority_appear_once_ranked() {
        let (_dir, api) = api(None, Limits::default()).await;
        let (code, body) = get(&api, "/v1/domains", None).await;
        assert_eq!(code, 404, "{body}");
        assert!(body.to_string().contains("run `linkgraph rank`"), "{body}");
        let (_, body) = get(&api, "/v1/refdomains?target=t.com", None).await;
        assert!(body["domains"][0]["authority"].is_null(), "{body}");
        let rank = |d: &str, authority: f64, refdomains: u64| linkgraph_store::DomainRank {
            domain: d.into(),
            authority,
            pagerank: authority / 1000.0,
            harmonic: 1.0,
            trust: None,
            referring_domains: refdomains,
            computed_at_ms: 5_000,
        };
        let store = api.reader.store();
        let ranks = vec![
            rank("a.com", 12.34, 0),
            rank("b.org", 0.0, 0),
            rank("t.com", 100.0, 2),
        ];
        store
            .write_ranks(ranks)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let run = linkgraph_store::RankRun {
            computed_at_ms: 5_000,
            nodes: 3,
            arcs: 2,
            harmonic_method: "exact".into(),
            trusted: 0,
        };
        store
            .write_rank_run(run)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (code, body) = get(&api, "/v1/domains?limit=2", None).await;
        assert_eq!(code, 200, "{body}");
        let names = |b: &serde_json::Value| -> Vec<String> {
            b["domains"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| d["domain"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(names(&body), ["t.com", "a.com"]);
        assert_eq!(body["harmonic_method"], "exact");
        assert!(body["next_cursor"].is_string(), "{body}");
        let (_, body) = get(&api, "/v1/domains?sort=referring_domains&order=asc", None).await;
        assert_eq!(names(&body), ["a.com", "b.org", "t.com"]);
        let (_, body) = get(
            &api,
            "/v1/refdomains?target=t.com&sort=authority&order=desc",
            None,
        )
        .await;
        let got: Vec<(String, serde_json::Value)> = body["domains"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                (
                    d["domain"].as_str().unwrap_or_default().to_owned(),
                    d["authority"].clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a.com".to_owned(), serde_json::json!(12.3)),
                ("b.org".to_owned(), serde_json::json!(0.0))
            ]
        );
        let (csv, _, text) = text(&api, "/v1/domains?format=csv", None).await;
        assert_eq!(csv, 200);
        assert!(
            text.starts_with(
                "domain,authority,pagerank,harmonic,trust,referring_domains\nt.com,100,0.1,1,,2\n"
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_token_guards_everything_but_health() {
        let (_dir, api) = api(Some("s3cret"), Limits::default()).await;
        let q = "/v1/refdomains?target=t.com";
        assert_eq!(get(&api, q, None).await.0, 401);
        assert_eq!(get(&api, q, Some("Bearer wrong")).await.0, 401);
        assert_eq!(get(&api, "/v1/openapi.json", None).await.0, 401);
        let (code, body) = get(&api, q, Some("Bearer s3cret")).await;
        assert_eq!((code, body["referring_domains"].as_u64()), (200, Some(2)));
        assert_eq!(get(&api, "/healthz", None).await.0, 200);
    }

    #[tokio::test]
    async fn requests_beyond_the_caps_are_refused() {
        let limits = Limits {
            max_concurrent: 1,
            max_rows: 4,
            ..Limits::default()
        };
        let (_dir, api) = api(None, limits).await;
        let (code, body) = get(&api, "/v1/backlinks?target=t.com&limit=5", None).await;
        assert_eq!(code, 400, "{body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains("cap")),
            "{body}"
        );
        // Paging within the cap returns every row once.
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let q = format!("/v1/backlinks?target=t.com&limit=4{cursor}");
            let (code, body) = get(&api, &q, None).await;
            assert_eq!(code, 200, "{body}");
            for l in body["links"].as_array().into_iter().flatten() {
                seen.push(format!("{}>{}", l["source_url"], l["target_url"]));
            }
            match body["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        let unique: std::collections::BTreeSet<_> = seen.iter().collect();
        assert_eq!((seen.len(), unique.len()), (6, 6));
        // One request at a time: a second one gets a 503 at once.
        let held = api.busy.try_acquire().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(get(&api, "/v1/anchors?target=t.com", None).await.0, 503);
        drop(held);
        assert_eq!(get(&api, "/v1/anchors?target=t.com", None).await.0, 200);
        let (code, body) = get(&api, "/v1/backlinks?target=t.com&cursor=zz", None).await;
        assert_eq!(code, 400, "{body}");
        assert_eq!(get(&api, "/v1/pages?target=nowhere.com", None).await.0, 404);
        assert_eq!(get(&api, "/v1/nope", None).await.0, 404);
        let res = api
            .answer(&hyper::Method::POST, "/v1/pages", "", None)
            .await;
        assert_eq!(res.status().as_u16(), 405);
    }

    /// Status, content type and body of `GET target`.
    async fn text(api: &Api, target: &str, auth: Option<&str>) -> (u16, String, String) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let res = api.answer(&hyper::Method::GET, path, query, auth).await;
        let status = res.status().as_u16();
        let ct = res
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = res
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, ct, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn tables_sort_page_and_download_as_the_cli_prints_them() {
        let (_dir, api) = api(None, Limits::default()).await;
        // Pages of one row, sorted by domain descending, then by the
        // report's own order: every row once, in order.
        for (sort, want) in [
            ("&sort=domain&order=desc", ["b.org", "a.com"]),
            ("&sort=domain&order=asc", ["a.com", "b.org"]),
            ("", ["a.com", "b.org"]),
        ] {
            let mut got = Vec::new();
            let mut cursor = String::new();
            loop {
                let q = format!("/v1/refdomains?target=t.com&limit=1{sort}{cursor}");
                let (code, body) = get(&api, &q, None).await;
                assert_eq!(code, 200, "{body}");
                assert_eq!(body["referring_domains"], 2);
                for d in body["domains"].as_array().into_iter().flatten() {
                    got.push(d["domain"].as_str().unwrap_or_default().to_owned());
                }
                match body["next_cursor"].as_str() {
                    Some(c) => cursor = format!("&cursor={c}"),
                    None => break,
                }
            }
            assert_eq!(got, want, "{sort}");
        }
        // A cursor of one order is refused by another; unknown columns too.
        let (_, first) = get(
            &api,
            "/v1/refdomains?target=t.com&limit=1&sort=domain",
            None,
        )
        .await;
        let c = first["next_cursor"].as_str().unwrap_or_default();
        let q = format!("/v1/refdomains?target=t.com&limit=1&sort=links&cursor={c}");
        assert_eq!(get(&api, &q, None).await.0, 400);
        let (code, body) = get(&api, "/v1/anchors?target=t.com&sort=nope", None).await;
        assert_eq!(code, 400);
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("sortable")),
            "{body}"
        );
        // Backlinks sorted by source descending.
        let (_, body) = get(
            &api,
            "/v1/backlinks?target=t.com&sort=source_url&order=desc&limit=10",
            None,
        )
        .await;
        let sources: Vec<&str> = body["links"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["source_url"].as_str())
            .collect();
        assert_eq!(sources.len(), 6);
        assert!(sources.windows(2).all(|w| w[0] >= w[1]), "{sources:?}");
        // CSV is the CLI's rendering of the same report.
        let (code, ct, csv) = text(&api, "/v1/anchors?target=t.com&format=csv", None).await;
        assert_eq!((code, ct.as_str()), (200, "text/csv; charset=utf-8"));
        let report = api
            .reader
            .anchors(
                &linkgraph_store::Target::Domain("t.com".into()),
                linkgraph_store::Status::Live,
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut want = Vec::new();
        linkgraph_query::render::write_anchors(
            &mut want,
            &report,
            linkgraph_query::render::Format::Csv,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(csv.as_bytes(), want.as_slice());
        let (code, _, csv) = text(&api, "/v1/backlinks?target=t.com&format=csv", None).await;
        assert_eq!((code, csv.lines().count()), (200, 7), "{csv}");
        let (code, _, _) = text(
            &api,
            "/v1/backlinks?target=t.com&format=csv&sort=anchor",
            None,
        )
        .await;
        assert_eq!(code, 400);
        let (code, summary) = get(&api, "/v1/summary?target=t.com", None).await;
        assert_eq!(code, 200);
        assert_eq!(
            (
                summary["referring_domains"].as_u64(),
                summary["backlinks"].as_u64()
            ),
            (Some(2), Some(6))
        );
        // The page and its assets need no token, and hold no data.
        let (_dir, locked) = api_with_token().await;
        let (code, ct, html) = text(&locked, "/domain/t.com", None).await;
        assert_eq!((code, ct.as_str()), (200, "text/html; charset=utf-8"));
        assert!(html.contains("/assets/app.js") && !html.contains("t.com"));
        assert_eq!(get(&locked, "/v1/summary?target=t.com", None).await.0, 401);
    }

    async fn api_with_token() -> (tempfile::TempDir, Api) {
        api(Some("s3cret"), Limits::default()).await
    }

    #[test]
    fn binding_beyond_loopback_needs_a_decision() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap_or_else(|e| panic!("{e}"));
        let v6: SocketAddr = "[::1]:8080".parse().unwrap_or_else(|e| panic!("{e}"));
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(check_bind(lo, false, false).is_ok());
        assert!(check_bind(v6, false, false).is_ok());
        match check_bind(any, false, false) {
            Err(e) => assert!(e.to_string().contains("--auth-token-file"), "{e}"),
            Ok(()) => panic!("0.0.0.0 served without auth"),
        }
        assert!(check_bind(any, true, false).is_ok());
        assert!(check_bind(any, false, true).is_ok());
    }

    #[test]
    fn tokens_are_read_strictly() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = dir.path().join("t");
        std::fs::write(&f, "  s3cret\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_token(&f).ok().as_deref(), Some("s3cret"));
        std::fs::write(&f, "\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(read_token(&f).is_err());
        std::fs::write(&f, "a b").unwrap_or_else(|e| panic!("{e}"));
        assert!(read_token(&f).is_err());
        assert!(read_token(&dir.path().join("missing")).is_err());
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"ab", b"abc"));
    }
}
