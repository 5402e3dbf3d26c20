//! The endpoints: one table of reports and their parameters, from which
//! both the request validation and `/v1/openapi.json` are built, so the
//! document never drifts from what is served.

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use linkgraph_core::{Placement, Rel, format_rfc3339_ms, parse_time};
use linkgraph_query::render::{BacklinksFormat, Format};
use linkgraph_query::reports::{BacklinkFilter, Direction, target_domain, target_label};
use linkgraph_query::risk::Thresholds;
use linkgraph_query::velocity::Bucket;
use linkgraph_query::{
    QueryError, Reader, normalize_domain, parse_target, ranks::DomainSort, refdomains_report,
    render, velocity_report,
};
use linkgraph_store::{Status, StoreError, Target};
use serde_json::{Value, json};

use crate::table::{Order, Table};
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
    /// How its rows sort and page (`sort`, `order`, `cursor`).
    table: Option<&'static Table>,
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

const SORT: Param = Param {
    name: "sort",
    doc: "Sort the rows by this column (see x-sortable); default: the report's own order.",
    schema: string,
    required: false,
    repeated: false,
};
const ORDER: Param = Param {
    name: "order",
    doc: "Direction of `sort`.",
    schema: || json!({"type": "string", "enum": ["asc", "desc"], "default": "asc"}),
    required: false,
    repeated: false,
};
const FORMAT: Param = Param {
    name: "format",
    doc: "json, or csv: the whole report as `linkgraph <report> --format csv` prints it (at most the server's CSV row cap; `limit` applies, `sort` and `cursor` do not).",
    schema: || json!({"type": "string", "enum": ["json", "csv"], "default": "json"}),
    required: false,
    repeated: false,
};

const REFDOMAINS: Table = Table {
    rows: "domains",
    unique: &["domain"],
    default: &[("links", true), ("domain", false)],
    columns: render::REFDOMAIN_COLUMNS,
};
const DOMAINS: Table = Table {
    rows: "domains",
    unique: &["domain"],
    default: &[("authority", true), ("pagerank", true), ("domain", false)],
    columns: render::DOMAIN_RANK_COLUMNS,
};
const ANCHORS: Table = Table {
    rows: "anchors",
    unique: &["anchor"],
    default: &[("refdomains", true), ("links", true), ("anchor", false)],
    columns: render::ANCHOR_COLUMNS,
};
const PAGES: Table = Table {
    rows: "pages",
    unique: &["url"],
    default: &[("refdomains", true), ("links", true), ("url", false)],
    columns: render::PAGE_COLUMNS,
};
const OUTLINKS: Table = Table {
    rows: "domains",
    unique: &["domain"],
    default: &[("links", true), ("domain", false)],
    columns: render::OUTLINK_COLUMNS,
};
const RISK: Table = Table {
    rows: "domains",
    unique: &["domain"],
    default: &[("score", true), ("domain", false)],
    columns: &["domain", "score"],
};
const BACKLINKS: Table = Table {
    rows: "links",
    unique: &["target_url", "source_url"],
    default: &[],
    columns: render::BACKLINK_COLUMNS,
};
const BROKEN: Table = Table {
    rows: "links",
    unique: &["target_url", "source_url"],
    default: &[],
    columns: &[
        "source_url",
        "target_url",
        "http_status",
        "anchor",
        "rel",
        "placement",
        "kind",
        "first_seen",
        "last_seen",
        "lost_at",
        "lost_reason",
    ],
};

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        name: "domains",
        summary: "Every domain of the dofollow domain graph with its authority (0-100), PageRank, harmonic centrality, trust and live referring domains, from the last `linkgraph rank`; strongest first, paged.",
        params: &[LIMIT, CURSOR, SORT, ORDER, FORMAT],
        paged: false,
        table: Some(&DOMAINS),
    },
    Endpoint {
        name: "risk",
        summary: "Referring domains with risk signals (reciprocal, link_farm, sitewide, exact_match_anchor, velocity_spike, shared_network, low_authority), each with its evidence and a score; default thresholds, paged.",
        params: &[TARGET_DOMAIN, LIMIT, CURSOR, SORT, ORDER, FORMAT],
        paged: false,
        table: Some(&RISK),
    },
    Endpoint {
        name: "disavow",
        summary: "A disavow file (Google's format, text/plain) of the referring domains with risk signals.",
        params: &[
            TARGET_DOMAIN,
            Param {
                name: "min_score",
                doc: "List domains whose risk score is at least this (default 0: every domain with a signal).",
                schema: integer,
                required: false,
                repeated: false,
            },
            Param {
                name: "allow",
                doc: "Never list this domain; repeatable.",
                schema: string,
                required: false,
                repeated: true,
            },
        ],
        paged: false,
        table: None,
    },
    Endpoint {
        name: "summary",
        summary: "A domain's link profile at a glance: live referring domains and backlinks, follow share, referring domains gained and lost in the last 30 days, rel, placement and anchor mix.",
        params: &[TARGET_DOMAIN, FORMAT],
        paged: false,
        table: None,
    },
    Endpoint {
        name: "refdomains",
        summary: "The referring domains of a domain, most links first, paged.",
        params: &[TARGET_DOMAIN, STATUS, LIMIT, CURSOR, SORT, ORDER, FORMAT],
        paged: false,
        table: Some(&REFDOMAINS),
    },
    Endpoint {
        name: "backlinks",
        summary: "Backlinks of a domain or URL, by target then source URL, paged.",
        params: &[
            TARGET_ANY,
            STATUS,
            LIMIT,
            CURSOR,
            SORT,
            ORDER,
            FORMAT,
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
        table: Some(&BACKLINKS),
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
            FORMAT,
        ],
        paged: false,
        table: None,
    },
    Endpoint {
        name: "anchors",
        summary: "Anchor texts of a domain's or URL's backlinks, by referring domains, paged.",
        params: &[TARGET_ANY, STATUS, LIMIT, CURSOR, SORT, ORDER, FORMAT],
        paged: false,
        table: Some(&ANCHORS),
    },
    Endpoint {
        name: "pages",
        summary: "A domain's pages by the backlinks they earn, with their last HTTP status, paged.",
        params: &[TARGET_DOMAIN, STATUS, LIMIT, CURSOR, SORT, ORDER, FORMAT],
        paged: false,
        table: Some(&PAGES),
    },
    Endpoint {
        name: "broken",
        summary: "Links to pages that answer 404 or 410, paged.",
        params: &[
            TARGET_DOMAIN,
            STATUS,
            LIMIT,
            CURSOR,
            SORT,
            ORDER,
            FORMAT,
            Param {
                name: "direction",
                doc: "inbound: the domain's backlinks to its dead pages; outbound: its links to others' dead pages.",
                schema: || json!({"type": "string", "enum": ["inbound", "outbound"], "default": "inbound"}),
                required: false,
                repeated: false,
            },
        ],
        paged: true,
        table: Some(&BROKEN),
    },
    Endpoint {
        name: "outlinks",
        summary: "The domains a domain links to, most links first, paged.",
        params: &[TARGET_DOMAIN, STATUS, LIMIT, CURSOR, SORT, ORDER, FORMAT],
        paged: false,
        table: Some(&OUTLINKS),
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
            FORMAT,
        ],
        paged: false,
        table: None,
    },
];

/// The endpoint label of a path, for metrics (a fixed set, never the path).
pub fn endpoint_label(path: &str) -> &'static str {
    match path {
        "/healthz" => "healthz",
        "/metrics" => "metrics",
        "/v1/openapi.json" => "openapi",
        _ if crate::page::is_page(path) => "page",
        _ => path
            .strip_prefix("/v1/")
            .and_then(|n| ENDPOINTS.iter().find(|e| e.name == n))
            .map_or("other", |e| e.name),
    }
}

/// Returns a failed report as the inner error of `Ok(Err(e))`.
macro_rules! tryq {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
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

    /// True for `format=csv`.
    fn csv(&self) -> Result<bool, BadRequest> {
        Ok(self
            .parsed("format", |v| match v {
                "json" => Some(false),
                "csv" => Some(true),
                _ => None,
            })?
            .unwrap_or(false))
    }

    /// The order of `table`'s rows this request asks for.
    fn order(&self, table: &Table) -> Result<Order, BadRequest> {
        let desc = self
            .parsed("order", |v| match v {
                "asc" => Some(false),
                "desc" => Some(true),
                _ => None,
            })?
            .unwrap_or(false);
        Order::new(table, self.one("sort"), desc).map_err(BadRequest)
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
        QueryError::UnknownDomain { .. } | QueryError::NoRanks(_) => StatusCode::NOT_FOUND,
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
    if endpoint.name == "disavow" {
        return match disavow(reader, &params).await {
            Ok(Ok(text)) => attachment(
                "text/plain; charset=utf-8",
                "disavow",
                params.one("target"),
                "txt",
                text,
            ),
            Ok(Err(e)) => query_error(&e),
            Err(BadRequest(m)) => error(StatusCode::BAD_REQUEST, m),
        };
    }
    let answer = match params.csv() {
        Ok(false) => report(reader, limits, endpoint, &params)
            .await
            .map(|r| r.map(Body::Json)),
        Ok(true) => csv_report(reader, limits, endpoint, &params)
            .await
            .map(|r| r.map(Body::Csv)),
        Err(e) => Err(e),
    };
    match answer {
        Ok(Ok(Body::Json(v))) => json(StatusCode::OK, &v),
        Ok(Ok(Body::Csv(bytes))) => attachment(
            "text/csv; charset=utf-8",
            endpoint.name,
            params.one("target"),
            "csv",
            bytes,
        ),
        Ok(Err(e)) => query_error(&e),
        Err(BadRequest(m)) => error(StatusCode::BAD_REQUEST, m),
    }
}

/// A report's answer.
enum Body {
    Json(Value),
    Csv(Vec<u8>),
}

/// A download named after the report and its target.
fn attachment(
    content_type: &'static str,
    report: &str,
    target: Option<&str>,
    ext: &str,
    bytes: Vec<u8>,
) -> Response<Full<Bytes>> {
    let safe: String = target
        .unwrap_or("report")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    let headers = r.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!(
        "attachment; filename=\"{report}-{safe}.{ext}\""
    )) {
        headers.insert(hyper::header::CONTENT_DISPOSITION, v);
    }
    r
}

/// The disavow file of `target`, as `linkgraph disavow` writes it.
async fn disavow(reader: &Reader, p: &Params) -> Result<Result<Vec<u8>, QueryError>, BadRequest> {
    let min = p
        .parsed("min_score", |v| v.parse::<u32>().ok())?
        .unwrap_or(0);
    let d = tryq!(normalize_domain(p.one("target").unwrap_or_default()));
    let mut allow = std::collections::BTreeSet::new();
    for a in p.all("allow") {
        allow.insert(tryq!(normalize_domain(a)));
    }
    let (text, _) = tryq!(reader.disavow(&d, Thresholds::default(), min, &allow).await);
    Ok(Ok(text))
}

/// Counts the lines written through it (a CSV row is one line: anchors
/// and URLs hold no line breaks).
struct Lines(Vec<u8>);

impl Lines {
    fn rows(&self) -> usize {
        self.0
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            .saturating_sub(1)
    }
}

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs one report as the CLI's CSV: a bad parameter is the outer error, a
/// failed report the inner one.
async fn csv_report(
    reader: &Reader,
    limits: &Limits,
    endpoint: &Endpoint,
    p: &Params,
) -> Result<Result<Vec<u8>, QueryError>, BadRequest> {
    for name in ["sort", "order", "cursor", "rel", "placement", "since"] {
        if p.one(name).is_some() {
            return Err(BadRequest(format!(
                "{name} does not apply to format=csv: the CSV is the whole report, as the CLI prints it"
            )));
        }
    }
    let status = p.status()?;
    let cap = limits.max_csv_rows;
    let limit = p.parsed("limit", |v| v.parse::<usize>().ok())?;
    // One row past the cap tells a report that does not fit from one that does.
    let lim = Some(limit.unwrap_or(usize::MAX).min(cap.saturating_add(1)));
    let domain = || normalize_domain(p.one("target").unwrap_or_default());
    let target = || parse_target(p.one("target").unwrap_or_default());
    let mut out = Lines(Vec::new());
    let csv = Format::Csv;
    let io = |r: std::io::Result<()>| r.map_err(QueryError::from);
    match endpoint.name {
        "summary" => {
            let r = tryq!(reader.summary(&tryq!(domain())).await);
            tryq!(io(render::write_summary(&mut out, &r, csv)));
        }
        "risk" => {
            let r = tryq!(reader.risk(&tryq!(domain()), Thresholds::default()).await);
            tryq!(io(render::write_risk(&mut out, &r, csv)));
        }
        "domains" => {
            let r = tryq!(reader.domains(DomainSort::Authority, lim).await);
            tryq!(io(render::write_domains(&mut out, &r, csv)));
        }
        "refdomains" => {
            let d = tryq!(domain());
            tryq!(refdomains_report(reader, &mut out, &d, status, lim, csv).await);
        }
        "velocity" => {
            let (bucket, range, all) = velocity_params(p)?;
            let d = tryq!(domain());
            tryq!(velocity_report(reader, &mut out, &d, bucket, range, all, csv).await);
        }
        "anchors" => {
            let r = tryq!(reader.anchors(&tryq!(target()), status, lim).await);
            tryq!(io(render::write_anchors(&mut out, &r, csv)));
        }
        "pages" => {
            let r = tryq!(reader.pages(&tryq!(domain()), status, lim).await);
            tryq!(io(render::write_pages(&mut out, &r, csv)));
        }
        "outlinks" => {
            let r = tryq!(reader.outlinks(&tryq!(domain()), status, lim).await);
            tryq!(io(render::write_outlinks(&mut out, &r, csv)));
        }
        "intersect" => {
            let (targets, exclude, min) = tryq!(intersect_params(p)?);
            let r = tryq!(reader.intersect(&targets, &exclude, min, status, lim).await);
            tryq!(io(render::write_intersect(&mut out, &r, csv)));
        }
        "backlinks" => {
            let t = tryq!(target());
            tryq!(reader.ensure_known(target_domain(&t)).await);
            let source = Source::Backlinks {
                target: &t,
                internal: p.flag("internal")?,
                filter: BacklinkFilter::default(),
            };
            tryq!(source.csv(reader, &mut out, status, lim).await);
        }
        "broken" => {
            let d = tryq!(domain());
            tryq!(reader.ensure_known(&d).await);
            let direction = direction(p)?;
            let source = Source::Broken {
                domain: &d,
                direction,
            };
            tryq!(source.csv(reader, &mut out, status, lim).await);
        }
        other => return Err(BadRequest(format!("no CSV of {other:?}"))),
    }
    if out.rows() > cap && limit.is_none_or(|l| l > cap) {
        return Err(BadRequest(format!(
            "the report has more than this server's CSV cap of {cap} rows: give a limit, page the JSON, or use `linkgraph export`"
        )));
    }
    Ok(Ok(out.0))
}

/// A velocity request: bucket, `[from, to)` and include_discovered.
type VelocityArgs = (Bucket, (Option<i64>, Option<i64>), bool);

fn velocity_params(p: &Params) -> Result<VelocityArgs, BadRequest> {
    let bucket = p
        .parsed("bucket", |v| match v {
            "day" => Some(Bucket::Day),
            "week" => Some(Bucket::Week),
            _ => None,
        })?
        .unwrap_or(Bucket::Day);
    let from = p.parsed("from", parse_time)?;
    let to = p.parsed("to", parse_time)?;
    Ok((bucket, (from, to), p.flag("include_discovered")?))
}

fn direction(p: &Params) -> Result<Direction, BadRequest> {
    Ok(p.parsed("direction", |v| match v {
        "inbound" => Some(Direction::Inbound),
        "outbound" => Some(Direction::Outbound),
        _ => None,
    })?
    .unwrap_or_default())
}

type IntersectArgs = (Vec<String>, Vec<String>, Option<usize>);

fn intersect_params(p: &Params) -> Result<Result<IntersectArgs, QueryError>, BadRequest> {
    let min = p.parsed("min_targets", |v| v.parse::<usize>().ok())?;
    let mut targets = Vec::new();
    for t in p.all("target") {
        targets.push(tryq!(normalize_domain(t)));
    }
    let mut exclude = Vec::new();
    for t in p.all("exclude") {
        exclude.push(tryq!(normalize_domain(t)));
    }
    Ok(Ok((targets, exclude, min)))
}

/// Sorts and pages the `table.rows` array of a whole report `doc`.
fn page_doc(mut doc: Value, table: &Table, p: &Params, limit: usize) -> Result<Value, BadRequest> {
    let order = p.order(table)?;
    let rows = match doc.get_mut(table.rows).map(Value::take) {
        Some(Value::Array(rows)) => rows,
        _ => Vec::new(),
    };
    let page = order
        .page(rows, p.cursor()?.as_deref(), limit)
        .map_err(BadRequest)?;
    doc[table.rows] = Value::Array(page.rows);
    doc["next_cursor"] = json!(page.next.as_deref().map(hex));
    Ok(doc)
}

/// A store-paged report: its rows come a page at a time, in key order.
enum Source<'a> {
    Backlinks {
        target: &'a Target,
        internal: bool,
        filter: BacklinkFilter,
    },
    Broken {
        domain: &'a str,
        direction: Direction,
    },
}

impl Source<'_> {
    /// One page of rows after `cursor`, and the cursor after it.
    async fn rows(
        &self,
        reader: &Reader,
        status: Status,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<(Vec<Value>, Option<String>), QueryError> {
        match self {
            Source::Backlinks {
                target,
                internal,
                filter,
            } => {
                let page = reader
                    .backlinks_page(target, *internal, status, *filter, limit, cursor)
                    .await?;
                let rows = page.links.iter().map(render::backlink_json).collect();
                Ok((rows, page.next))
            }
            Source::Broken { domain, direction } => {
                let page = reader
                    .broken_page(domain, *direction, status, limit, cursor)
                    .await?;
                let rows = page
                    .links
                    .iter()
                    .map(|b| render::broken_json(b, *direction))
                    .collect();
                Ok((rows, page.next))
            }
        }
    }

    /// Writes up to `limit` rows as the CLI's CSV, page by page.
    async fn csv(
        &self,
        reader: &Reader,
        out: &mut Lines,
        status: Status,
        limit: Option<usize>,
    ) -> Result<(), QueryError> {
        let f = BacklinksFormat::Csv;
        match self {
            Source::Backlinks { .. } => render::write_backlinks_header(out, f)?,
            Source::Broken { direction, .. } => render::write_broken_header(out, *direction, f)?,
        }
        let mut left = limit.unwrap_or(usize::MAX);
        let mut cursor = None;
        while left > 0 {
            let n = left.min(SORT_CHUNK);
            let next = match self {
                Source::Backlinks {
                    target,
                    internal,
                    filter,
                } => {
                    let page = reader
                        .backlinks_page(target, *internal, status, *filter, n, cursor)
                        .await?;
                    render::write_backlinks(out, &page.links, f)?;
                    left = left.saturating_sub(page.links.len());
                    page.next
                }
                Source::Broken { domain, direction } => {
                    let page = reader
                        .broken_page(domain, *direction, status, n, cursor)
                        .await?;
                    render::write_broken(out, &page.links, *direction, f)?;
                    left = left.saturating_sub(page.links.len());
                    page.next
                }
            };
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(())
    }

    /// Every row, read into memory to be sorted, up to the server's sort
    /// cap.
    async fn all(
        &self,
        reader: &Reader,
        limits: &Limits,
        status: Status,
    ) -> Result<Result<Vec<Value>, QueryError>, BadRequest> {
        let mut rows = Vec::new();
        let mut cursor = None;
        loop {
            let (page, after) = tryq!(self.rows(reader, status, SORT_CHUNK, cursor).await);
            rows.extend(page);
            if rows.len() > limits.max_sort_rows {
                return Err(BadRequest(format!(
                    "sorting is served for at most {} rows and this report has more: page it in its own order, or use `linkgraph export`",
                    limits.max_sort_rows
                )));
            }
            match after {
                Some(a) => cursor = Some(a),
                None => return Ok(Ok(rows)),
            }
        }
    }

    /// A page of the report: in key order, or sorted by `sort`.
    async fn page(
        &self,
        reader: &Reader,
        limits: &Limits,
        (p, status, limit): (&Params, Status, usize),
        (target, table): (&Target, &Table),
    ) -> Result<Result<Value, QueryError>, BadRequest> {
        if p.one("sort").is_some() {
            let rows = tryq!(self.all(reader, limits, status).await?);
            let doc = json!({"target": target_label(target), "links": rows});
            Ok(Ok(page_doc(doc, table, p, limit)?))
        } else {
            let (rows, next) = tryq!(self.rows(reader, status, limit, p.cursor()?).await);
            Ok(Ok(paged(target, rows, next.as_deref())))
        }
    }
}

/// Rows per store read when a paged report is read whole to be sorted.
const SORT_CHUNK: usize = 5_000;

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
    let to_value = |v: Result<Value, serde_json::Error>| v.unwrap_or_default();
    let v = match endpoint.name {
        "summary" => {
            let d = tryq!(domain(p));
            to_value(serde_json::to_value(tryq!(reader.summary(&d).await)))
        }
        "domains" => {
            let limit = lim()?;
            let r = tryq!(reader.domains(DomainSort::Authority, None).await);
            page_doc(render::domains_json(&r), &DOMAINS, p, limit)?
        }
        "risk" => {
            let limit = lim()?;
            let d = tryq!(domain(p));
            let r = tryq!(reader.risk(&d, Thresholds::default()).await);
            page_doc(to_value(serde_json::to_value(r)), &RISK, p, limit)?
        }
        "refdomains" => {
            let limit = lim()?;
            let d = tryq!(domain(p));
            let rows = tryq!(reader.refdomains(&d, status).await);
            let names: Vec<String> = rows.iter().map(|r| r.domain.clone()).collect();
            let authority = tryq!(reader.authorities(&names).await);
            let doc = render::refdomains_json(&d, &rows, rows.len(), authority.as_ref());
            page_doc(doc, &REFDOMAINS, p, limit)?
        }
        "anchors" => {
            let limit = lim()?;
            let target = tryq!(parse_target(p.one("target").unwrap_or_default()));
            let doc = to_value(serde_json::to_value(tryq!(
                reader.anchors(&target, status, None).await
            )));
            page_doc(doc, &ANCHORS, p, limit)?
        }
        "pages" => {
            let limit = lim()?;
            let d = tryq!(domain(p));
            // The report's order needs no status, so only the page shown is
            // looked up, unless the rows are sorted by another column.
            let whole = p.one("sort").is_some() || p.one("cursor").is_some();
            let n = if whole {
                None
            } else {
                Some(limit.saturating_add(1))
            };
            let doc = to_value(serde_json::to_value(tryq!(
                reader.pages(&d, status, n).await
            )));
            page_doc(doc, &PAGES, p, limit)?
        }
        "outlinks" => {
            let limit = lim()?;
            let d = tryq!(domain(p));
            let doc = to_value(serde_json::to_value(tryq!(
                reader.outlinks(&d, status, None).await
            )));
            page_doc(doc, &OUTLINKS, p, limit)?
        }
        "intersect" => {
            let limit = lim()?;
            let (targets, exclude, min) = tryq!(intersect_params(p)?);
            to_value(serde_json::to_value(tryq!(
                reader
                    .intersect(&targets, &exclude, min, status, Some(limit))
                    .await
            )))
        }
        "velocity" => {
            let (bucket, range, all) = velocity_params(p)?;
            let d = tryq!(domain(p));
            let v = tryq!(reader.velocity(&d, bucket, range, all).await);
            render::velocity_json(&v)
        }
        "backlinks" => {
            let limit = lim()?;
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
            let source = Source::Backlinks {
                target: &target,
                internal,
                filter,
            };
            let ctx = (p, status, limit);
            tryq!(
                source
                    .page(reader, limits, ctx, (&target, &BACKLINKS))
                    .await?
            )
        }
        "broken" => {
            let limit = lim()?;
            let direction = direction(p)?;
            let d = tryq!(domain(p));
            tryq!(reader.ensure_known(&d).await);
            let target = Target::Domain(d.clone());
            let source = Source::Broken {
                domain: &d,
                direction,
            };
            let ctx = (p, status, limit);
            let mut v = tryq!(source.page(reader, limits, ctx, (&target, &BROKEN)).await?);
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
        let sortable = e.table.map(|t| t.columns.to_vec()).unwrap_or_default();
        paths.insert(
            format!("/v1/{}", e.name),
            json!({"get": {
                "operationId": e.name,
                "summary": e.summary,
                "x-sortable": sortable,
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
