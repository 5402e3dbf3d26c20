//! The fetcher: turns a `CrawlRequest` into a `FetchResult`, politely and
//! within hard bounds.
//!
//! * robots.txt (RFC 9309, via texting_robots) is fetched once per origin and
//!   cached: 2xx is parsed, 4xx allows all, 5xx or unreachable disallows all
//!   for a shorter while.
//! * Every request to a host, robots.txt included, first waits on a governor
//!   rate limiter keyed by host, so a host never sees more than
//!   `per_host_rps` requests per second from this fetcher. Topics are keyed by
//!   host, so in distributed mode this is the only limiter a host meets.
//! * Connect, read and total timeouts, a minimum body throughput, a cap on
//!   the decompressed body (so compression bombs stop at the cap), binary
//!   bodies refused as HTML, and an SSRF guard on every address ([`resolve`]).
//! * Redirects are not followed here: a 3xx is reported with its canonical
//!   target, which the frontier schedules like any URL, so each hop is
//!   rate-limited, robots-checked and de-duplicated. The redirect limit is
//!   enforced on the hop count the request carries.
//!
//! # Layout
//! * this file: the [`Fetcher`], its settings and outcomes;
//! * `robots`: the robots.txt cache and RFC 9309 matching;
//! * [`resolve`]: `--resolve` rules and the SSRF guard;
//! * `tests`: against a real HTTP server on loopback.

pub mod resolve;
mod robots;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use linkgraph_core::{canonicalize, is_ip_host, now_ms};
use linkgraph_proto::{CrawlRequest, FetchOutcome, FetchResult};
use reqwest::header::{
    ACCEPT, CONTENT_TYPE, ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
    LOCATION,
};
use tracing::{debug, instrument};
use url::Url;

pub use resolve::{Blocked, GuardedResolver, ResolveRule, check_ip};
pub use robots::{
    ArchivedRobots, Fetched as RobotsFile, MAX_ROBOTS_BYTES, MAX_STALE, RobotsArchive, RobotsCache,
    RobotsVerdict,
};

/// Fetcher settings. Defaults are documented on each field.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// The User-Agent header. Default `linkgraph/<version> (+https://example.invalid/linkgraph)`.
    pub user_agent: String,
    /// Most requests per second any one host receives. Default 1.
    pub per_host_rps: f64,
    /// Time to establish a connection. Default 10 s.
    pub connect_timeout: Duration,
    /// Time for a whole request, body included. Default 30 s.
    pub total_timeout: Duration,
    /// Largest (decompressed) body kept; longer bodies are cut. Default 5 MiB.
    pub max_body_bytes: usize,
    /// Most redirect hops followed from one URL. Default 5.
    pub max_redirects: u32,
    /// `--resolve` overrides.
    pub resolve: Vec<ResolveRule>,
    /// Lift the SSRF guard (tests against loopback). Default false.
    pub allow_private_networks: bool,
    /// How long a fetched robots.txt is trusted. Default 24 h.
    pub robots_ttl: Duration,
    /// How long an unreachable or 5xx robots.txt blocks its host. Default 10 min.
    pub robots_error_ttl: Duration,
    /// Origins whose robots.txt is cached at once. Default 100,000.
    pub robots_cache_capacity: usize,
    /// Minimum body throughput: 1 KiB/s after a 5 s grace.
    pub throughput: Throughput,
    /// Longest wait for the next bytes of a response. Default 10 s.
    pub read_timeout: Duration,
    /// Largest robots.txt Crawl-delay honoured. Default 30 s.
    pub max_crawl_delay: Duration,
    /// Requests in flight at once to one IP address, across all the hosts
    /// it serves; 0 turns the cap off (e.g. a simulated web on loopback).
    /// Default 8.
    pub per_ip_concurrency: usize,
    /// Idle keep-alive connections kept open per host. Set it to the
    /// requests a host may have in flight at once (`--per-host-concurrency`):
    /// a connection beyond it is closed after its response and a new one
    /// opened for the next request. Default 2.
    pub keep_alive_per_host: usize,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        FetcherConfig {
            user_agent: default_user_agent(),
            per_host_rps: 1.0,
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
            max_body_bytes: 5 << 20,
            max_redirects: 5,
            resolve: Vec::new(),
            allow_private_networks: false,
            robots_ttl: Duration::from_secs(24 * 3600),
            robots_error_ttl: Duration::from_secs(600),
            robots_cache_capacity: 100_000,
            throughput: Throughput {
                min_bytes_per_sec: 1024,
                grace: Duration::from_secs(5),
            },
            read_timeout: Duration::from_secs(10),
            max_crawl_delay: Duration::from_secs(30),
            per_ip_concurrency: 8,
            keep_alive_per_host: 2,
        }
    }
}

/// The default User-Agent.
pub fn default_user_agent() -> String {
    format!(
        "linkgraph/{} (+https://example.invalid/linkgraph)",
        env!("CARGO_PKG_VERSION")
    )
}

/// The product token robots.txt groups are matched against: the User-Agent
/// up to its first `/` or space, e.g. `linkgraph`.
pub fn product_token(user_agent: &str) -> String {
    user_agent
        .split(['/', ' '])
        .next()
        .unwrap_or(user_agent)
        .to_ascii_lowercase()
}

/// Why a fetcher could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FetcherError {
    /// `per_host_rps` is not a positive, finite number.
    #[error("per-host rate must be a positive number of requests per second, got {0}")]
    BadRate(f64),
    /// The user agent is not a valid header value.
    #[error("invalid user agent {0:?}")]
    BadUserAgent(String),
    /// The HTTP client could not be built.
    #[error("cannot build http client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Fetches pages; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    limiter: DefaultKeyedRateLimiter<String>,
    robots: RobotsCache,
    resolver: GuardedResolver,
    cfg: FetcherConfig,
    token: String,
    /// Where last good robots.txt files outlive the process, if anywhere.
    archive: Option<Arc<dyn robots::RobotsArchive>>,
    /// One semaphore per IP address, when the per-IP cap is on.
    ip_slots:
        std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, Arc<tokio::sync::Semaphore>>>,
}

impl Fetcher {
    /// Builds a fetcher.
    pub fn new(cfg: FetcherConfig) -> Result<Self, FetcherError> {
        Fetcher::with_archive(cfg, None)
    }

    /// Builds a fetcher that keeps each origin's last good robots.txt in
    /// `archive`, and falls back to it when a fetch fails.
    pub fn with_archive(
        cfg: FetcherConfig,
        archive: Option<Arc<dyn robots::RobotsArchive>>,
    ) -> Result<Self, FetcherError> {
        if !(cfg.per_host_rps.is_finite() && cfg.per_host_rps > 0.0) {
            return Err(FetcherError::BadRate(cfg.per_host_rps));
        }
        if reqwest::header::HeaderValue::from_str(&cfg.user_agent).is_err() {
            return Err(FetcherError::BadUserAgent(cfg.user_agent.clone()));
        }
        // reqwest is built without a default TLS crypto provider: use ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let resolver = GuardedResolver::new(cfg.resolve.clone(), cfg.allow_private_networks);
        let client = reqwest::Client::builder()
            .user_agent(cfg.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.total_timeout)
            .read_timeout(cfg.read_timeout)
            .pool_max_idle_per_host(cfg.keep_alive_per_host.max(1))
            .pool_idle_timeout(Duration::from_secs(30))
            .no_proxy()
            .dns_resolver(resolver.clone())
            .build()?;
        let period = Duration::from_secs_f64(1.0 / cfg.per_host_rps);
        let quota = Quota::with_period(period)
            .ok_or(FetcherError::BadRate(cfg.per_host_rps))?
            .allow_burst(NonZeroU32::MIN);
        let token = product_token(&cfg.user_agent);
        let robots = RobotsCache::new(cfg.robots_cache_capacity);
        Ok(Fetcher {
            inner: Arc::new(Inner {
                client,
                limiter: RateLimiter::keyed(quota),
                robots,
                resolver,
                cfg,
                token,
                archive,
                ip_slots: std::sync::Mutex::new(std::collections::HashMap::new()),
            }),
        })
    }

    /// The robots.txt product token in use.
    pub fn product_token(&self) -> &str {
        &self.inner.token
    }

    /// Waits for a slot on the IP address `host` resolves to (per-IP cap).
    async fn ip_permit(&self, host: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let cap = self.inner.cfg.per_ip_concurrency;
        if cap == 0 {
            return None;
        }
        let ip = self.inner.resolver.first_ip(host).await?;
        let sem = {
            let mut slots = self.inner.ip_slots.lock().ok()?;
            if slots.len() > 10_000 {
                // Forget idle addresses.
                slots.retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() < cap);
            }
            Arc::clone(
                slots
                    .entry(ip)
                    .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(cap))),
            )
        };
        sem.acquire_owned().await.ok()
    }

    /// Waits until `host` may receive another request.
    async fn polite(&self, host: &str) {
        self.inner.limiter.until_key_ready(&host.to_owned()).await;
    }

    /// Fetches one request. Never fails: every problem is an outcome.
    #[instrument(skip_all, fields(url = %req.url, depth = req.depth))]
    pub async fn fetch(&self, req: CrawlRequest) -> FetchResult {
        let started = Instant::now();
        let mut res = self.fetch_inner(&req).await;
        res.duration_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
        if res.fetched_at_ms == 0 {
            res.fetched_at_ms = now_ms();
        }
        let outcome = res.outcome();
        metrics::counter!("linkgraph_fetcher_pages_total", "outcome" => outcome.label())
            .increment(1);
        metrics::histogram!("linkgraph_fetcher_fetch_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        if outcome == FetchOutcome::RobotsUnavailable {
            metrics::counter!("linkgraph_fetcher_robots_unavailable_total").increment(1);
        }
        if outcome == FetchOutcome::RobotsDenied {
            metrics::counter!("linkgraph_fetcher_robots_denied_total").increment(1);
        }
        debug!(outcome = outcome.label(), status = res.status, "fetched");
        res.request = Some(req);
        res
    }

    async fn fetch_inner(&self, req: &CrawlRequest) -> FetchResult {
        let fail = |outcome: FetchOutcome, error: String| {
            let mut r = FetchResult {
                error,
                ..FetchResult::default()
            };
            r.set_outcome(outcome);
            r
        };
        let url = match Url::parse(&req.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
            _ => {
                return fail(
                    FetchOutcome::NetworkError,
                    format!("not a fetchable url: {:?}", req.url),
                );
            }
        };
        let host = url.host_str().unwrap_or_default().to_owned();
        if req.redirect_hops > self.inner.cfg.max_redirects {
            return fail(
                FetchOutcome::RedirectLimit,
                format!("more than {} redirect hops", self.inner.cfg.max_redirects),
            );
        }
        if is_ip_host(&host) {
            let ip = host.trim_start_matches('[').trim_end_matches(']').parse();
            if let Ok(ip) = ip
                && let Err(b) = check_ip(&host, ip, self.inner.cfg.allow_private_networks)
            {
                return fail(FetchOutcome::Blocked, b.to_string());
            }
        }

        // robots.txt first (itself a polite request to the host).
        let (verdict, sitemaps, crawl_delay) = self.robots_verdict(&url, &host).await;
        match verdict {
            RobotsVerdict::Allowed => {}
            RobotsVerdict::Disallowed => {
                return fail(
                    FetchOutcome::RobotsDenied,
                    "disallowed by robots.txt".into(),
                );
            }
            RobotsVerdict::Unavailable(why) => {
                return fail(
                    FetchOutcome::RobotsUnavailable,
                    format!("robots.txt unavailable: {why}"),
                );
            }
            RobotsVerdict::Blocked(why) => return fail(FetchOutcome::Blocked, why),
        }

        let _ip_slot = self.ip_permit(&host).await;
        self.polite(&host).await;
        let mut res = self.get(&url, req).await;
        res.sitemaps = sitemaps;
        res.crawl_delay_ms = crawl_delay.map_or(0, |d| {
            let capped = Duration::from_secs_f32(d.max(0.0)).min(self.inner.cfg.max_crawl_delay);
            u64::try_from(capped.as_millis()).unwrap_or(u64::MAX)
        });
        res
    }

    async fn robots_verdict(
        &self,
        url: &Url,
        host: &str,
    ) -> (RobotsVerdict, Vec<String>, Option<f32>) {
        let origin = url.origin().ascii_serialization();
        let this = self.clone();
        let robots_url = format!("{origin}/robots.txt");
        let h = host.to_owned();
        let (entry, fresh) = self
            .inner
            .robots
            .get_or_fetch(&origin, move || async move {
                let fetched = this.fetch_robots(&robots_url, &h).await;
                this.archived(&robots_url, fetched)
            })
            .await;
        let sitemaps = if fresh { entry.sitemaps() } else { Vec::new() };
        (entry.verdict(url.as_str()), sitemaps, entry.crawl_delay())
    }

    /// Fetches robots.txt, following up to [`robots::MAX_ROBOTS_REDIRECTS`]
    /// redirects (RFC 9309), each hop waiting on its own host's limiter.
    async fn fetch_robots(&self, robots_url: &str, host: &str) -> robots::Fetched {
        let cfg = &self.inner.cfg;
        let mut url = match Url::parse(robots_url) {
            Ok(u) => u,
            Err(e) => return robots::Fetched::unreachable(e.to_string(), cfg.robots_error_ttl),
        };
        let mut hop_host = host.to_owned();
        for _ in 0..=robots::MAX_ROBOTS_REDIRECTS {
            self.polite(&hop_host).await;
            let sent = self
                .inner
                .client
                .get(url.as_str())
                .header(ACCEPT, "text/plain, */*;q=0.5")
                .send()
                .await;
            let mut resp = match sent {
                Ok(r) => r,
                Err(e) if classify(&e) == FetchOutcome::Blocked => {
                    return robots::Fetched::blocked(error_chain(&e), cfg.robots_error_ttl);
                }
                Err(e) => {
                    return robots::Fetched::unreachable(error_chain(&e), cfg.robots_error_ttl);
                }
            };
            let status = resp.status().as_u16();
            match status {
                200..=299 => {
                    return match read_capped(&mut resp, robots::MAX_ROBOTS_BYTES, cfg.throughput)
                        .await
                    {
                        Ok((bytes, _)) => {
                            self.archive_save(robots_url, Some(bytes.to_vec()));
                            robots::Fetched::parsed(&self.inner.token, &bytes, cfg.robots_ttl)
                        }
                        Err(BodyError::Network(e) | BodyError::TooSlow(e)) => {
                            robots::Fetched::unreachable(e, cfg.robots_error_ttl)
                        }
                    };
                }
                300..=399 => {
                    let loc = header_str(resp.headers(), LOCATION.as_str());
                    match url.join(&loc) {
                        Ok(next)
                            if !loc.is_empty() && matches!(next.scheme(), "http" | "https") =>
                        {
                            hop_host = next.host_str().unwrap_or_default().to_owned();
                            url = next;
                        }
                        // A redirect without a usable target: as if unavailable (4xx).
                        _ => {
                            self.archive_save(robots_url, None);
                            return robots::Fetched::allow_all(cfg.robots_ttl);
                        }
                    }
                }
                400..=499 => {
                    self.archive_save(robots_url, None);
                    return robots::Fetched::allow_all(cfg.robots_ttl);
                }
                _ => {
                    return robots::Fetched::unreachable(
                        format!("http status {status}"),
                        cfg.robots_error_ttl,
                    );
                }
            }
        }
        // Too many redirects: RFC 9309 treats this like an unavailable (4xx) file.
        self.archive_save(robots_url, None);
        robots::Fetched::allow_all(cfg.robots_ttl)
    }

    /// Keeps a good robots.txt of `robots_url` (`None`: a 4xx) in the archive.
    fn archive_save(&self, robots_url: &str, body: Option<Vec<u8>>) {
        if let Some(a) = &self.inner.archive {
            let copy = robots::ArchivedRobots {
                fetched_at_ms: linkgraph_core::now_ms(),
                body,
            };
            a.save(robots_url, &copy);
        }
    }

    /// A failed robots.txt fetch, answered by the archive's copy of an
    /// earlier run when it is recent enough ([`robots::MAX_STALE`]).
    fn archived(&self, robots_url: &str, fetched: robots::Fetched) -> robots::Fetched {
        let Some(archive) = self.inner.archive.as_ref().filter(|_| fetched.is_error()) else {
            return fetched;
        };
        let Some(copy) = archive.load(robots_url) else {
            return fetched;
        };
        let age_ms = linkgraph_core::now_ms().saturating_sub(copy.fetched_at_ms);
        let max_ms = i64::try_from(robots::MAX_STALE.as_millis()).unwrap_or(i64::MAX);
        if age_ms > max_ms {
            return fetched;
        }
        metrics::counter!("linkgraph_fetcher_robots_stale_used_total").increment(1);
        // Answers until the next retry of the fetch, as the error would have.
        let ttl = self.inner.cfg.robots_error_ttl;
        match copy.body {
            Some(body) => robots::Fetched::parsed(&self.inner.token, &body, ttl),
            None => robots::Fetched::allow_all(ttl),
        }
    }

    async fn get(&self, url: &Url, req: &CrawlRequest) -> FetchResult {
        let cfg = &self.inner.cfg;
        let mut out = FetchResult::default();
        let mut request = self
            .inner
            .client
            .get(url.as_str())
            .header(ACCEPT, "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5");
        // A recrawl is conditional when the last answer had validators.
        if !req.if_none_match.is_empty() {
            request = request.header(IF_NONE_MATCH, req.if_none_match.as_str());
        }
        if !req.if_modified_since.is_empty() {
            request = request.header(IF_MODIFIED_SINCE, req.if_modified_since.as_str());
        }
        let sent = request.send().await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                out.set_outcome(classify(&e));
                out.error = error_chain(&e);
                return out;
            }
        };
        out.fetched_at_ms = now_ms();
        if let Some(addr) = resp.remote_addr() {
            out.remote_ip = addr.ip().to_string();
        }
        let status = resp.status();
        out.status = u32::from(status.as_u16());
        let headers = resp.headers().clone();
        out.content_type = header_str(&headers, CONTENT_TYPE.as_str());
        out.x_robots_tag = headers
            .get_all("x-robots-tag")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");

        if status == reqwest::StatusCode::NOT_MODIFIED {
            out.set_outcome(FetchOutcome::NotModified);
            return out;
        }
        out.etag = header_str(&headers, ETAG.as_str());
        out.last_modified = header_str(&headers, LAST_MODIFIED.as_str());
        if status.is_redirection() {
            let loc = header_str(&headers, LOCATION.as_str());
            match canonicalize(&loc, Some(url)) {
                Ok(target) if !loc.is_empty() && target != *url => {
                    out.set_outcome(FetchOutcome::Redirect);
                    out.location = target.into();
                }
                Ok(_) => {
                    out.set_outcome(FetchOutcome::RedirectLimit);
                    out.error = format!("redirect to itself ({loc:?})");
                }
                Err(e) => {
                    out.set_outcome(FetchOutcome::RedirectLimit);
                    out.error = format!("unusable redirect location: {e}");
                }
            }
            return out;
        }
        if !status.is_success() {
            out.set_outcome(FetchOutcome::HttpError);
            out.error = format!("http status {}", status.as_u16());
            if matches!(status.as_u16(), 429 | 503) {
                let header = header_str(&headers, "retry-after");
                out.retry_after_ms =
                    retry_after_ms(&header, std::time::SystemTime::now()).unwrap_or(0);
            }
            return out;
        }
        if !req.sitemap && !is_html_type(&out.content_type) {
            out.set_outcome(FetchOutcome::NotHtml);
            return out;
        }
        match read_capped(&mut resp, cfg.max_body_bytes, cfg.throughput).await {
            Ok((body, truncated)) => {
                metrics::counter!("linkgraph_fetcher_downloaded_bytes_total")
                    .increment(body.len() as u64);
                if !req.sitemap && looks_binary(&body) {
                    out.set_outcome(FetchOutcome::NotHtml);
                    out.error = "binary body served as html".into();
                    return out;
                }
                out.body = body;
                if truncated {
                    out.set_outcome(FetchOutcome::TooLarge);
                    out.error = format!("body cut at {} bytes", cfg.max_body_bytes);
                } else {
                    out.set_outcome(FetchOutcome::Ok);
                }
            }
            Err(BodyError::Network(e)) => {
                out.set_outcome(FetchOutcome::NetworkError);
                out.error = e;
            }
            Err(BodyError::TooSlow(e)) => {
                out.set_outcome(FetchOutcome::Timeout);
                out.error = e;
            }
        }
        out
    }
}

fn header_str(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// True for HTML media types, and for a missing Content-Type (we sniff).
fn is_html_type(ct: &str) -> bool {
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime.is_empty() || mime == "text/html" || mime == "application/xhtml+xml"
}

/// Reads the body, keeping at most `cap` bytes; `true` when it was cut.
/// Why a body could not be read whole.
enum BodyError {
    /// The connection failed mid-body.
    Network(String),
    /// The body arrived slower than the minimum throughput.
    TooSlow(String),
}

/// Reads the body, keeping at most `cap` bytes (`true` when it was cut).
/// After `rule.grace`, a body arriving slower than `rule.min_bytes_per_sec`
/// is abandoned, so a server dripping bytes cannot hold a fetch slot.
async fn read_capped(
    resp: &mut reqwest::Response,
    cap: usize,
    rule: Throughput,
) -> Result<(Vec<u8>, bool), BodyError> {
    let started = Instant::now();
    let mut body = Vec::with_capacity(
        resp.content_length()
            .map_or(16 * 1024, |l| usize::try_from(l).unwrap_or(cap).min(cap)),
    );
    loop {
        let elapsed = started.elapsed();
        if elapsed > rule.grace
            && (body.len() as f64) < rule.min_bytes_per_sec as f64 * elapsed.as_secs_f64()
        {
            return Err(BodyError::TooSlow(format!(
                "body too slow: {} bytes in {:.1} s (minimum {} bytes/s)",
                body.len(),
                elapsed.as_secs_f64(),
                rule.min_bytes_per_sec
            )));
        }
        // Wake at least every second to apply the throughput rule.
        let next = match tokio::time::timeout(Duration::from_secs(1), resp.chunk()).await {
            Ok(n) => n,
            Err(_) => continue,
        };
        match next {
            Ok(Some(chunk)) => {
                let room = cap - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    return Ok((body, true));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok((body, false)),
            Err(e) => return Err(BodyError::Network(error_chain(&e))),
        }
    }
}

/// The minimum-throughput rule for bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throughput {
    /// Bytes per second a body must average once `grace` has passed.
    pub min_bytes_per_sec: u64,
    /// Time before the rule applies.
    pub grace: Duration,
}

/// Parses a Retry-After value (delay-seconds or an HTTP date) into a wait in
/// ms, capped at an hour.
pub fn retry_after_ms(value: &str, now: std::time::SystemTime) -> Option<u64> {
    const CAP_MS: u64 = 3_600_000;
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(secs) = v.parse::<u64>() {
        return Some(secs.saturating_mul(1000).min(CAP_MS));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let wait = at.duration_since(now).unwrap_or_default();
    Some(
        u64::try_from(wait.as_millis())
            .unwrap_or(u64::MAX)
            .min(CAP_MS),
    )
}

/// True when the start of a body looks binary (NUL bytes), whatever its
/// Content-Type says.
fn looks_binary(body: &[u8]) -> bool {
    body[..body.len().min(1024)].contains(&0)
}

fn classify(e: &reqwest::Error) -> FetchOutcome {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.downcast_ref::<Blocked>().is_some() {
            return FetchOutcome::Blocked;
        }
        src = s.source();
    }
    if e.is_timeout() {
        FetchOutcome::Timeout
    } else {
        FetchOutcome::NetworkError
    }
}

/// The error and its causes, joined: reqwest's top-level message alone
/// rarely says what went wrong.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod retry_after_tests {
    use super::retry_after_ms;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn parses_seconds_and_http_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(retry_after_ms("120", now), Some(120_000));
        assert_eq!(
            retry_after_ms("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(30_000)
        );
        assert_eq!(
            retry_after_ms("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(0),
            "a past date means now"
        );
        assert_eq!(
            retry_after_ms("99999999", now),
            Some(3_600_000),
            "capped at an hour"
        );
        assert_eq!(retry_after_ms("soon", now), None);
        assert_eq!(retry_after_ms("", now), None);
    }
}
