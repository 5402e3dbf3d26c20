//! Hostile hosts: every way a server can try to hurt a crawler, served under
//! `*.hostile.example` (never linked from the regular simulated web).
//!
//! | path | behaviour |
//! |---|---|
//! | `/` | links to every mode below |
//! | `/slow` | drips one byte every 200 ms, forever (slowloris) |
//! | `/endless` | an endless HTML body |
//! | `/gzip-bomb`, `/brotli-bomb` | 64 MiB of HTML compressed to a few KiB |
//! | `/huge-headers` | 2 MiB of response headers |
//! | `/binary` | random bytes served as text/html |
//! | `/bad-encoding` | invalid UTF-8 mixed with windows-1252, declared UTF-8 |
//! | `/malformed` | broken markup with links inside |
//! | `/many-links` | 100,000 links |
//! | `/long-urls` | links 10,000 characters long |
//! | `/reset` | 10 KiB of body, then the connection is cut |
//! | `/loop/a`, `/loop/b` | a redirect loop |
//! | `/chain/N` | an endless redirect chain |
//! | `/calendar/Y/M` | a calendar trap: every month links the next and previous |
//! | `/session?sid=S` | a session-id trap: every page links itself with a new id |
//! | `/deep/...` | an ever-deeper path trap |
//! | `/no-type` | HTML without a Content-Type |
//!
//! Whole hosts that send politeness signals:
//!
//! | host | behaviour |
//! |---|---|
//! | `busy.hostile.example` | every page answers 429 with `Retry-After: 1` |
//! | `down.hostile.example` | every page answers 503 |
//! | `polite.hostile.example` | robots.txt says `Crawl-delay: 1` and names a sitemap listing `/p/orphan` (linked from nowhere); `/` links `/p/1`..`/p/4` |

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;

/// The body type the simulated web serves.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A complete body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// True for the hostile hosts.
pub fn is_hostile(host: &str) -> bool {
    host.ends_with(".hostile.example")
}

/// Every hostile path linked from the hostile home page.
pub const PATHS: &[&str] = &[
    "/slow",
    "/endless",
    "/gzip-bomb",
    "/brotli-bomb",
    "/huge-headers",
    "/binary",
    "/bad-encoding",
    "/malformed",
    "/many-links",
    "/long-urls",
    "/reset",
    "/loop/a",
    "/chain/0",
    "/calendar/2026/1",
    "/session?sid=0",
    "/deep/a/",
    "/no-type",
];

const BOMB_BYTES: usize = 64 << 20;

fn html() -> http::response::Builder {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
}

fn page(links: impl IntoIterator<Item = String>) -> String {
    let mut s = String::from("<!DOCTYPE html><html><body><main>");
    for l in links {
        s.push_str(&format!("<p><a href=\"{l}\">{l}</a></p>"));
    }
    s.push_str("</main></body></html>");
    s
}

fn bomb(encoding: &str) -> Bytes {
    static GZIP: OnceLock<Bytes> = OnceLock::new();
    static BROTLI: OnceLock<Bytes> = OnceLock::new();
    let zeros = || {
        let mut v = b"<html><body><p>".to_vec();
        v.resize(BOMB_BYTES, b' ');
        v
    };
    if encoding == "gzip" {
        GZIP.get_or_init(|| {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let _ = e.write_all(&zeros());
            Bytes::from(e.finish().unwrap_or_default())
        })
        .clone()
    } else {
        BROTLI
            .get_or_init(|| {
                let mut out = Vec::new();
                let params = brotli::enc::BrotliEncoderParams {
                    quality: 5,
                    ..Default::default()
                };
                let _ = brotli::BrotliCompress(&mut zeros().as_slice(), &mut out, &params);
                Bytes::from(out)
            })
            .clone()
    }
}

/// Whole hosts that send politeness signals, or `None` for other hosts.
fn signal_host(host: &str, path: &str) -> Option<Result<Response<Body>, http::Error>> {
    let r = match (host, path) {
        ("polite.hostile.example", "/robots.txt") => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(full(
                "User-agent: *\nCrawl-delay: 1\nSitemap: http://polite.hostile.example/sitemap.xml\n",
            )),
        ("polite.hostile.example", "/sitemap.xml") => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/xml")
            .body(full(
                "<urlset><url><loc>http://polite.hostile.example/p/orphan</loc></url></urlset>",
            )),
        ("busy.hostile.example" | "down.hostile.example", "/robots.txt") => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(full(Bytes::new())),
        ("busy.hostile.example", _) => Response::builder()
            .status(StatusCode::TOO_MANY_REQUESTS)
            .header(header::RETRY_AFTER, "1")
            .body(full(Bytes::new())),
        ("down.hostile.example", _) => Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(full(Bytes::new())),
        ("polite.hostile.example", "/") => {
            html().body(full(page((1..=4).map(|i| format!("/p/{i}")))))
        }
        ("polite.hostile.example", _) => html().body(full(page(["/".to_owned()]))),
        _ => return None,
    };
    Some(r)
}

/// The answer of the hostile host `host` for `path` (with query).
pub fn respond(host: &str, path_and_query: &str) -> Response<Body> {
    if let Some(r) = signal_host(host, path_and_query.split('?').next().unwrap_or("/")) {
        return r.unwrap_or_else(|_| Response::new(full(Bytes::new())));
    }
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let ok = |b: String| html().body(full(b));
    let resp = match path {
        "/" => ok(page(PATHS.iter().map(|p| (*p).to_owned()))),
        "/slow" => {
            let drip = futures_util::stream::unfold(0u64, |n| async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Some((Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"<"))), n + 1))
            });
            html().body(BodyExt::boxed(StreamBody::new(drip)))
        }
        "/endless" => {
            let chunk = Bytes::from("<p>endless</p>".repeat(4096));
            let s = futures_util::stream::repeat(chunk).map(|c| Ok::<_, std::io::Error>(Frame::data(c)));
            html().body(BodyExt::boxed(StreamBody::new(s)))
        }
        "/gzip-bomb" | "/brotli-bomb" => {
            let enc = if path == "/gzip-bomb" { "gzip" } else { "br" };
            html().header(header::CONTENT_ENCODING, enc).body(full(bomb(enc)))
        }
        "/huge-headers" => {
            let mut b = html();
            for i in 0..2048 {
                b = b.header(format!("x-filler-{i}"), "f".repeat(1024));
            }
            b.body(full(page(["/".to_owned()])))
        }
        "/binary" => {
            let mut x: u64 = 0x2545_F491_4F6C_DD1D;
            let bytes: Vec<u8> = (0..100_000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect();
            html().body(full(bytes))
        }
        "/bad-encoding" => {
            let mut b = b"<html><body><a href=\"/bad-encoding-target\">Caf\xe9 \xff\xfe broken \xc3\x28 utf-8</a>".to_vec();
            b.extend_from_slice(b"<a href=\"/\">home \xe2\x82</a></body></html>");
            html().body(full(b))
        }
        "/malformed" => ok("<html><body><div><a href=/malformed-1>one<a href='/malformed-2'>two</div></span><<>><a href=\"/malformed-3\" rel=nofollow>three<table><tr><td><a href=/malformed-4>four".to_owned()),
        "/many-links" => ok(page((0..100_000).map(|i| format!("/many/{i}")))),
        "/long-urls" => {
            let long: Vec<String> = (0..20).map(|i| format!("/long/{i}/{}", "x".repeat(10_000))).collect();
            ok(page(long.into_iter().chain(["/".to_owned()])))
        }
        "/reset" => {
            let first = Bytes::from("<p>".repeat(3500));
            let s = futures_util::stream::iter([
                Ok(Frame::data(first)),
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut")),
            ]);
            html().body(BodyExt::boxed(StreamBody::new(s)))
        }
        "/loop/a" => redirect("/loop/b"),
        "/loop/b" => redirect("/loop/a"),
        "/no-type" => Response::builder().status(StatusCode::OK).body(full(page(["/no-type-target".to_owned()]))),
        _ => {
            if let Some(n) = path.strip_prefix("/chain/").and_then(|n| n.parse::<u64>().ok()) {
                redirect(&format!("/chain/{}", n + 1))
            } else if let Some((y, m)) = path
                .strip_prefix("/calendar/")
                .and_then(|r| r.split_once('/'))
                .and_then(|(y, m)| Some((y.parse::<i64>().ok()?, m.parse::<i64>().ok()?)))
            {
                let next = if m == 12 { format!("/calendar/{}/1", y + 1) } else { format!("/calendar/{y}/{}", m + 1) };
                let prev = if m == 1 { format!("/calendar/{}/12", y - 1) } else { format!("/calendar/{y}/{}", m - 1) };
                ok(page([next, prev]))
            } else if path == "/session" {
                let sid: u64 = query.trim_start_matches("sid=").parse().unwrap_or(0);
                ok(page([format!("/session?sid={}", sid.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1))]))
            } else if path.starts_with("/deep/") {
                ok(page([format!("{path}a/")]))
            } else {
                Response::builder().status(StatusCode::NOT_FOUND).body(full(Bytes::new()))
            }
        }
    };
    resp.unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

fn redirect(to: &str) -> Result<Response<Body>, http::Error> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, to)
        .body(full(Bytes::new()))
}
