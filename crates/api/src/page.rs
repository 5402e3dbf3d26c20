//! The overview web page: its HTML, script, style and the vendored chart
//! library (Chartist, MIT), embedded in the binary. The page holds no data
//! of its own: it calls the `/v1/` API like any other client, so it is
//! served without a token, and with a Content-Security-Policy that lets it
//! load nothing from anywhere but this server.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};

const INDEX: &str = include_str!("../assets/index.html");

/// Every embedded file under `/assets/`: path, content type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/assets/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "/assets/app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
    (
        "/assets/vendor/chartist.umd.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/vendor/chartist.umd.js"),
    ),
    (
        "/assets/vendor/chartist.css",
        "text/css; charset=utf-8",
        include_str!("../assets/vendor/chartist.css"),
    ),
    (
        "/assets/vendor/chartist.LICENSE-MIT",
        "text/plain; charset=utf-8",
        include_str!("../assets/vendor/chartist.LICENSE-MIT"),
    ),
];

/// Scripts and styles from this server only (Chartist sizes its SVG with
/// style attributes, hence inline styles), data from the API only, no
/// framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// True for the paths the page answers: `/`, `/domain/<domain>` and the
/// assets.
pub fn is_page(path: &str) -> bool {
    path == "/"
        || path == "/index.html"
        || path.starts_with("/domain/")
        || path.starts_with("/assets/")
}

/// The page or asset at `path`, or `None` (a 404).
pub fn serve(path: &str) -> Option<Response<Full<Bytes>>> {
    let (content_type, body, cache) = if path.starts_with("/assets/") {
        let (_, ct, body) = ASSETS.iter().find(|(p, _, _)| *p == path)?;
        (*ct, *body, "public, max-age=300")
    } else {
        ("text/html; charset=utf-8", INDEX, "no-cache")
    };
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CSP),
    );
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_assets_are_served_with_a_strict_policy() {
        for path in [
            "/",
            "/domain/example.com",
            "/assets/app.js",
            "/assets/vendor/chartist.umd.js",
        ] {
            assert!(is_page(path), "{path}");
            let r = serve(path).unwrap_or_else(|| panic!("{path} not served"));
            let csp = r
                .headers()
                .get("content-security-policy")
                .and_then(|v| v.to_str().ok());
            assert!(
                csp.is_some_and(|c| c.contains("script-src 'self'")),
                "{path}"
            );
        }
        assert!(serve("/assets/nope.js").is_none());
        assert!(!is_page("/v1/summary"));
        // Every asset the page names is embedded.
        for src in INDEX
            .split(['"', '\''])
            .filter(|s| s.starts_with("/assets/"))
        {
            assert!(
                serve(src).is_some(),
                "{src} is named by the page but not embedded"
            );
        }
    }
}
