//! The endpoints: one table of reports and their parameters, from which
//! both the request validation and `/v1/openapi.json` are built, so the
//! document never drifts from what is served.

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use linkgraph_core::{Placement, Rel, format_rfc3339_ms, parse_time};
use linkgraph_query::reports::{BacklinkFilter, Direction, target_domain, target_label};
use linkgraph_query::velocity::Bucket;
use linkgraph_query::{QueryError, Reader, normalize_domain, parse_target, render};
use linkgraph_store::{Status, StoreError, Target};
use serde_json::{Value, json};

use crate::{Limits, error, json};

/// One query parameter.
struct Param {
    name: &'static str,
    doc: &'static str,
    /// JSON schema of one value.
    schema: fn() -> Value,
    required: bool,
    repeated: bool,
}

/// One report endpoint: `GET /v1/<name>`.
struct Endpoint {
    name: &'static str,
    summary: &'static str,
    params: &'static [Param],
    /// Whether it returns `{"links", "next_cursor"}` pages.
    paged: bool,
}

fn string() -> Value {
    json!({"type": "string"})
}
fn integer() -> Value {
    json!({"type": "integer", "minimum": 0})
}
fn boolean() -> Value {
    json!({"type": "boolean"})
}
fn status() -> Value {
    json!({"type": "string", "enum": ["live", "lost", "all"], "default": "live"})
}
fn time() -> Value {
    json!({"type": "string", "description": "YYYY-MM-DD or RFC 3339"})
}

const TARGET_DOMAIN: Param = Param {
    name: "target",
    doc: "The registrable domain (any host of it is accepted).",
    schema: string,
    required: true,
    repeated: false,
};
const TARGET_ANY: Param = Param {
    name: "target",
    doc: "A registrable domain, or one absolute URL.",
    schema: string,
    required: true,
    repeated: false,
};
const STATUS: Param = Param {
    name: "status",
    doc: "Count live links, lost links, or both.",
    schema: status,
    required: false,
    repeated: false,
};
const LIMIT: Param = Param {
    name: "limit",
    doc: "At most this many rows (default 1000, at most the server's row cap).",
    schema: integer,
    required: false,
    repeated: false,
};
const CURSOR: Param = Param {
    name: "cursor",
    doc: "The next_cursor of the previous page.",
    schema: string,
    required: false,
    repeated: false,
};

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        name: "refdomains",
        summary: "The referring domains of a domain, most links first.",
        params: &[TARGET_DOMAIN, STATUS, LIMIT],
        paged: false,
    },
    Endpoint {
        name: "backlinks",
        summary: "Backlinks of a domain or URL, by target then source URL, paged.",
        params: &[
            TARGET_ANY,
            STATUS,
            LIMIT,
            CURSOR,
            Param {
                name: "internal",
                doc: "Include links from the target's own domain.",
                schema: boolean,
                required: false,
                repeated: false,
            },
            Param {
                name: "rel",
                doc: "follow (none of nofollow, sponsored, ugc), or links with this flag.",
                schema: || json!({"type": "string", "enum": ["follow", "nofollow", "sponsored", "ugc"]}),
                required: false,
                repeated: false,
            },
            Param {
                name: "placement",
                doc: "Links in this part of the page.",
                schema: || json!({"type": "string", "enum": ["content", "nav", "header", "footer", "aside", "comment"]}),
                required: false,
                repeated: false,
            },
            Param {
                name: "since",
                doc: "Links first seen at or after this time.",
                schema: time,
                required: false,
                repeated: false,
            },
        ],
        paged: true,
    },
    Endpoint {
        name: "velocity",
        summary: "New, lost, discovered and changed links and referring domains per bucket, with spikes.",
        params: &[
            TARGET_DOMAIN,
            Param {
                name: "bucket",
                doc: "Bucket width.",
                schema: || json!({"type": "string", "enum": ["day", "week"], "default": "day"}),
                required: false,
                repeated: false,
            },
            Param {
                name: "from",
                doc: "First day included.",
                schema: time,
                required: false,
                repeated: false,
            },
            Param {
                name: "to",
                doc: "Day after the last one included.",
                schema: time,
                required: false,
                repeated: false,
            },
            Param {
                name: "include_discovered",
                doc: "Count discovered links and domains as new too.",
                schema: boolean,
                required: false,
                repeated: false,
            },
        ],
        paged: false,
    },
    Endpoint {
        name: "anchors",
        summary: "Anchor texts of a domain's or URL's backlinks, by referring domains.",
        params: &[TARGET_ANY, STATUS, LIMIT],
        paged: false,
    },
    Endpoint {
        name: "pages",
        summary: "A domain's pages by the backlinks they earn, with their last HTTP status.",
        params: &[TARGET_DOMAIN, STATUS, LIMIT],
        paged: false,
    },
    Endpoint {
        name: "broken",
        summary: "Links to pages that answer 404 or 410, paged.",
        params: &[
            TARGET_DOMAIN,
            STATUS,
            LIMIT,
            CURSOR,
            Param {
                name: "direction",
                doc: "inbound: the domain's backlinks to its dead pages; outbound: its links to others' dead pages.",
                schema: || json!({"type": "string", "enum": ["inbound", "outbound"], "default": "inbound"}),
                required: false,
                repeated: false,
            },
        ],
        paged: true,
    },
    Endpoint {
        name: "outlinks",
        summary: "The domains a domain links to, most links first.",
        params: &[TARGET_DOMAIN, STATUS, LIMIT],
        paged: false,
    },
    Endpoint {
        name: "intersect",
        summary: "Link gap: referring domains that link to several targets and none of the excluded.",
        params: &[
            Param {
                name: "target",
                doc: "A target domain; repeat for each.",
                schema: string,
                required: true,
                repeated: true,
            },
            Param {
                name: "exclude",
                doc: "Leave out referring domains that link to this domain; repeatable.",
                schema: string,
                required: false,
                repeated: true,
            },
            Param {
                name: "min_targets",
                doc: "Rows link to at least this many targets (default: all).",
                schema: integer,
                required: false,
                repeated: false,
            },
            STATUS,
            LIMIT,
        ],
        paged: false,
    },
];

/// The endpoint label of a path, for metrics (a fixed set, never the path).
pub fn endpoint_label(path: &str) -> &'static str {
    match path {
        "/healthz" => "healthz",
        "/metrics" => "metrics",
        "/v1/openapi.json" => "openapi",
        _ => path
            .strip_prefix("/v1/")
            .and_then(|n| ENDPOINTS.iter().find(|e| e.name == n))
            .map_or("other", |e| e.name),
    }
}

/// A request's validated parameters.
struct Params(BTreeMap<String, Vec<String>>);

/// A 400 with its reason.
struct BadRequest(String);

impl Params {
    fn parse(endpoint: &Endpoint, query: &str) -> Result<Params, BadRequest> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let Some(p) = endpoint.params.iter().find(|p| p.name == k) else {
                let known: Vec<&str> = endpoint.params.iter().map(|p| p.name).collect();
                return Err(BadRequest(format!(
                    "unknown parameter {k:?} for /v1/{} (known: {})",
                    endpoint.name,
                    known.join(", ")
                )));
            };
            let values = map.entry(p.name.to_owned()).or_default();
            if !p.repeated && !values.is_empty() {
                return Err(BadRequest(format!("parameter {k:?} given twice")));
            }
            values.push(v.into_owned());
        }
        for p in endpoint.params.iter().filter(|p| p.required) {
            if !map.contains_key(p.name) {
                return Err(BadRequest(format!("missing parameter {:?}", p.name)));
            }
        }
        Ok(Params(map))
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.first()).map(String::as_str)
    }

    fn all(&self, name: &str) -> &[String] {
        self.0.get(name).map_or(&[], Vec::as_slice)
    }

    fn parsed<T>(
        &self,
        name: &str,
        f: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, BadRequest> {
        match self.one(name) {
            None => Ok(None),
            Some(v) => f(v)
                .map(Some)
                .ok_or_else(|| BadRequest(format!("invalid {name} {v:?}"))),
        }
    }

    fn status(&self) -> Result<Status, BadRequest> {
        Ok(self
            .parsed("status", |v| match v {
                "live" => Some(Status::Live),
                "lost" => Some(Status::Lost),
                "all" => Some(Status::All),
                _ => None,
            })?
            .unwrap_or_default())
    }

    fn flag(&self, name: &str) -> Result<bool, BadRequest> {
        Ok(self
            .parsed(name, |v| match v {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            })?
            .unwrap_or(false))
    }

    fn limit(&self, limits: &Limits) -> Result<usize, BadRequest> {
        let n = self
            .parsed("limit", |v| v.parse::<usize>().ok())?
            .unwrap_or(limits.default_rows.min(limits.max_rows));
        if n > limits.max_rows {
            return Err(BadRequest(format!(
                "limit {n} is above this server's cap of {} rows per response: page with the cursor, or use `linkgraph export`",
                limits.max_rows
            )));
        }
        Ok(n)
    }

    fn cursor(&self) -> Result<Option<String>, BadRequest> {
        self.parsed("cursor", unhex)
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The status and message of a failed report.
fn query_error(e: &QueryError) -> Response<Full<Bytes>> {
    let status = match e {
        QueryError::BadDomain(_)
        | QueryError::BadUrl { .. }
        | QueryError::BadArgument(_)
        | QueryError::BadRange => StatusCode::BAD_REQUEST,
        QueryError::Store(s) if matches!(**s, StoreError::BadCursor(_)) => StatusCode::BAD_REQUEST,
        QueryError::UnknownDomain { .. } => StatusCode::NOT_FOUND,
        _ => {
            tracing::warn!(error = %e, "api report failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error(status, e.to_string())
}

/// Answers `GET path?query`.
pub async fn route(
    reader: &Reader,
    limits: &Limits,
    path: &str,
    query: &str,
) -> Response<Full<Bytes>> {
    if path == "/v1/openapi.json" {
        return json(StatusCode::OK, &openapi());
    }
    let Some(endpoint) = path
        .strip_prefix("/v1/")
        .and_then(|n| ENDPOINTS.iter().find(|e| e.name == n))
    else {
        let names: Vec<String> = ENDPOINTS
            .iter()
            .map(|e| format!("/v1/{}", e.name))
            .collect();
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no such endpoint {path:?} (see /v1/openapi.json: {})",
                names.join(", ")
            ),
        );
    };
    let params = match Params::parse(endpoint, query) {
        Ok(p) => p,
        Err(BadRequest(m)) => return error(StatusCode::BAD_REQUEST, m),
    };
    match report(reader, limits, endpoint, &params).await {
        Ok(Ok(v)) => json(StatusCode::OK, &v),
        Ok(Err(e)) => query_error(&e),
        Err(BadRequest(m)) => error(StatusCode::BAD_REQUEST, m),
    }
}

/// Runs one report: a bad parameter is the outer error, a failed report the
/// inner one.
async fn report(
    reader: &Reader,
    limits: &Limits,
    endpoint: &Endpoint,
    p: &Params,
) -> Result<Result<Value, QueryError>, BadRequest> {
    let status = p.status()?;
    let lim = || p.limit(limits);
    // The `target` parameter as a registrable domain.
    let domain = |p: &Params| normalize_domain(p.one("target").unwrap_or_default());
    macro_rules! tryq {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            }
        };
    }
    let to_value = |v: Result<Value, serde_json::Error>| v.unwrap_or_default();
    let v = match endpoint.name {
        "refdomains" => {
            let limit = lim()?;
            let d = tryq!(domain(p));
            let rows = tryq!(reader.refdomains(&d, status).await);
            render::refdomains_json(&d, &rows[..rows.len().min(limit)], rows.len())
        }
        "anchors" => {
            let limit = lim()?;
            let target = tryq!(parse_target(p.one("target").unwrap_or_default()));
            to_value(serde_json::to_value(tryq!(
                reader.anchors(&target, status, Some(limit)).await
            )))
        }
        "pages" => {
            let limit = lim()?;
            let d = tryq!(domain(p));
            to_value(serde_json::to_value(tryq!(
                reader.pages(&d, status, Some(limit)).await
            )))
        }
        "outlinks" => {
            let limit = lim()?;
            let d = tryq!(domain(p));
            to_value(serde_json::to_value(tryq!(
                reader.outlinks(&d, status, Some(limit)).await
            )))
        }
        "intersect" => {
            let limit = lim()?;
            let min = p.parsed("min_targets", |v| v.parse::<usize>().ok())?;
            let mut targets = Vec::new();
            for t in p.all("target") {
                targets.push(tryq!(normalize_domain(t)));
            }
            let mut exclude = Vec::new();
            for t in p.all("exclude") {
                exclude.push(tryq!(normalize_domain(t)));
            }
            to_value(serde_json::to_value(tryq!(
                reader
                    .intersect(&targets, &exclude, min, status, Some(limit))
                    .await
            )))
        }
        "velocity" => {
            let bucket = p
                .parsed("bucket", |v| match v {
                    "day" => Some(Bucket::Day),
                    "week" => Some(Bucket::Week),
                    _ => None,
                })?
                .unwrap_or(Bucket::Day);
            let from = p.parsed("from", parse_time)?;
            let to = p.parsed("to", parse_time)?;
            let all = p.flag("include_discovered")?;
            let d = tryq!(domain(p));
            let v = tryq!(reader.velocity(&d, bucket, (from, to), all).await);
            render::velocity_json(&v)
        }
        "backlinks" => {
            let (limit, cursor) = (lim()?, p.cursor()?);
            let internal = p.flag("internal")?;
            let filter = BacklinkFilter {
                rel: p.parsed("rel", |v| match v {
                    "follow" => Some(Rel::follow()),
                    other => Rel::from_name(other),
                })?,
                placement: p.parsed("placement", |v| {
                    Placement::ALL.into_iter().find(|pl| pl.as_str() == v)
                })?,
                since_ms: p.parsed("since", parse_time)?,
            };
            let target = tryq!(parse_target(p.one("target").unwrap_or_default()));
            tryq!(reader.ensure_known(target_domain(&target)).await);
            let page = tryq!(
                reader
                    .backlinks_page(&target, internal, status, filter, limit, cursor)
                    .await
            );
            let links: Vec<Value> = page.links.iter().map(render::backlink_json).collect();
            paged(&target, links, page.next.as_deref())
        }
        "broken" => {
            let (limit, cursor) = (lim()?, p.cursor()?);
            let direction = p
                .parsed("direction", |v| match v {
                    "inbound" => Some(Direction::Inbound),
                    "outbound" => Some(Direction::Outbound),
                    _ => None,
                })?
                .unwrap_or_default();
            let d = tryq!(domain(p));
            tryq!(reader.ensure_known(&d).await);
            let page = tryq!(
                reader
                    .broken_page(&d, direction, status, limit, cursor)
                    .await
            );
            let links: Vec<Value> = page
                .links
                .iter()
                .map(|b| render::broken_json(b, direction))
                .collect();
            let mut v = paged(&Target::Domain(d), links, page.next.as_deref());
            v["direction"] = json!(direction.as_str());
            v
        }
        other => {
            return Err(BadRequest(format!("no such report {other:?}")));
        }
    };
    Ok(Ok(v))
}

fn paged(target: &Target, links: Vec<Value>, next: Option<&str>) -> Value {
    json!({
        "target": target_label(target),
        "links": links,
        "next_cursor": next.map(hex),
    })
}

/// The OpenAPI 3.1 document of every endpoint.
pub fn openapi() -> Value {
    let mut paths = serde_json::Map::new();
    for e in ENDPOINTS {
        let params: Vec<Value> = e
            .params
            .iter()
            .map(|p| {
                let schema = if p.repeated {
                    json!({"type": "array", "items": (p.schema)()})
                } else {
                    (p.schema)()
                };
                json!({
                    "name": p.name,
                    "in": "query",
                    "required": p.required,
                    "description": p.doc,
                    "schema": schema,
                    "explode": true,
                })
            })
            .collect();
        let ok = if e.paged {
            "A page of rows: {\"target\", \"links\": [...], \"next_cursor\"}; next_cursor is null on the last page."
        } else {
            "The report, as `linkgraph <report> --format json` prints it."
        };
        paths.insert(
            format!("/v1/{}", e.name),
            json!({"get": {
                "operationId": e.name,
                "summary": e.summary,
                "parameters": params,
                "responses": {
                    "200": {"description": ok, "content": {"application/json": {"schema": {"type": "object"}}}},
                    "400": {"$ref": "#/components/responses/Error"},
                    "401": {"$ref": "#/components/responses/Error"},
                    "404": {"$ref": "#/components/responses/Error"},
                    "503": {"$ref": "#/components/responses/Error"},
                },
            }}),
        );
    }
    for (path, summary) in [
        (
            "/healthz",
            "Liveness: 200 while the process serves (no token needed).",
        ),
        ("/metrics", "Prometheus metrics, text format."),
        ("/v1/openapi.json", "This document."),
    ] {
        paths.insert(
            path.to_owned(),
            json!({"get": {"summary": summary, "responses": {"200": {"description": "OK"}}}}),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "linkgraph API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Every report of the linkgraph CLI as JSON. Times are RFC 3339 UTC ({}). External links only; status=live|lost|all.",
                format_rfc3339_ms(0)
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {
                "description": "An error: {\"error\": message}.",
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}},
                    "required": ["error"],
                }}},
            }},
        },
        "security": [{"bearer": []}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_endpoint() {
        let doc = openapi();
        for e in ENDPOINTS {
            assert!(
                doc["paths"][format!("/v1/{}", e.name)]["get"].is_object(),
                "{}",
                e.name
            );
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }

    #[test]
    fn parameters_are_checked() {
        let Some(bl) = ENDPOINTS.iter().find(|e| e.name == "backlinks") else {
            panic!("no backlinks endpoint");
        };
        assert!(Params::parse(bl, "target=a.com&limit=5").is_ok());
        for bad in [
            "limit=5",
            "target=a.com&bogus=1",
            "target=a.com&target=b.com",
        ] {
            assert!(Params::parse(bl, bad).is_err(), "{bad}");
        }
        assert_eq!(unhex(&hex("a\0b")).as_deref(), Some("a\0b"));
        assert_eq!(unhex("zz"), None);
        assert_eq!(endpoint_label("/v1/anchors"), "anchors");
        assert_eq!(endpoint_label("/v1/http://evil"), "other");
    }
}
