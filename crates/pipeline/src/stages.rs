//! The stage functions, over the wire-contract messages. The embedded crawl
//! calls them in-process; the distributed services call the same functions
//! between topics.
//!
//! fetcher: `CrawlRequest -> FetchResult` (in `linkgraph-fetcher`)
//! parser:  `FetchResult -> ParsedPage` ([`parse`])
//! store:   `ParsedPage -> PageWrite` ([`page_write`]), then
//!          `ParsedPage -> FrontierFeedback` ([`feedback`]) once it is stored.

use linkgraph_core::{Link, UrlPolicy, url_host};
use linkgraph_parser::{
    MAX_SITEMAP_URLS, PageMeta, ParseLimits, extract_links, extract_sitemap, redirect_link,
};
use linkgraph_proto::{
    self as proto, DiscoveredUrl, FetchOutcome, FetchResult, FrontierFeedback, ParsedPage,
};
use linkgraph_store::{LinkSetUpdate, PageWrite};
use url::Url;

/// Parses a fetch result into the page's edges. Never fails: a page that
/// cannot be parsed yields no links and says why in `error`, and a page whose
/// processing panics (a bug) is caught, logged and counted, and comes back as
/// [`FetchOutcome::InternalError`] with no links, so the crawl goes on and the
/// URL is completed as failed.
pub fn parse(
    res: FetchResult,
    product_token: &str,
    limits: ParseLimits,
    policy: &UrlPolicy,
) -> ParsedPage {
    let req = res.request.clone().unwrap_or_default();
    let (status, fetched_at_ms) = (res.status, res.fetched_at_ms);
    guard_page(req, status, fetched_at_ms, || {
        parse_unguarded(res, product_token, limits, policy)
    })
}

/// Runs `f`, the processing of one page; a panic in it is caught, counted
/// and logged with the URL, and becomes an [`internal_error`] page.
pub fn guard_page(
    req: proto::CrawlRequest,
    status: u32,
    fetched_at_ms: i64,
    f: impl FnOnce() -> ParsedPage,
) -> ParsedPage {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = report_panic(&req.url, panic.as_ref());
        internal_error(req, status, fetched_at_ms, &message)
    })
}

/// Counts and logs a panic caught while processing `url`; returns its text.
pub fn report_panic(url: &str, panic: &(dyn std::any::Any + Send)) -> String {
    let message = panic_message(panic);
    metrics::counter!("linkgraph_parser_panics_total").increment(1);
    tracing::error!(url, panic = %message, "page processing panicked; completing the url as failed");
    message
}

/// The page a caught panic leaves: failed, with no links.
pub fn internal_error(
    req: proto::CrawlRequest,
    status: u32,
    fetched_at_ms: i64,
    message: &str,
) -> ParsedPage {
    let mut page = ParsedPage {
        status,
        fetched_at_ms,
        error: format!("page processing panicked: {message}"),
        request: Some(req),
        ..ParsedPage::default()
    };
    page.set_outcome(FetchOutcome::InternalError);
    page
}

/// The text of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// [`parse`] without the panic guard: for the fuzzer, which must see a
/// panic to report it.
pub fn parse_unguarded(
    res: FetchResult,
    product_token: &str,
    limits: ParseLimits,
    policy: &UrlPolicy,
) -> ParsedPage {
    let outcome = res.outcome();
    let req = res.request.clone().unwrap_or_default();
    let mut page = ParsedPage {
        outcome: outcome as i32,
        status: res.status,
        fetched_at_ms: res.fetched_at_ms,
        error: res.error.clone(),
        content_hash: content_hash(&res.body),
        retry_after_ms: res.retry_after_ms,
        crawl_delay_ms: res.crawl_delay_ms,
        etag: res.etag.clone(),
        last_modified: res.last_modified.clone(),
        robots_sitemaps: res.sitemaps.clone(),
        remote_ip: res.remote_ip.clone(),
        ..ParsedPage::default()
    };
    let url = Url::parse(&req.url);
    match (outcome, url) {
        // A sitemap lists URLs to discover; it has no links of its own.
        (FetchOutcome::Ok | FetchOutcome::TooLarge, Ok(url)) if req.sitemap => {
            let map = extract_sitemap(&res.body, &url, MAX_SITEMAP_URLS);
            page.sitemap_index = map.is_index;
            page.links_dropped = map.skipped;
            page.sitemap_urls = map.urls;
        }
        (FetchOutcome::Ok | FetchOutcome::TooLarge, Ok(url)) => {
            let meta = PageMeta {
                url: &url,
                content_type: Some(res.content_type.as_str()).filter(|c| !c.is_empty()),
                x_robots_tag: Some(res.x_robots_tag.as_str()).filter(|x| !x.is_empty()),
                product_token,
            };
            match extract_links(meta, &res.body, limits) {
                Ok(x) => {
                    page.nofollow_page = x.nofollow_page;
                    page.noindex_page = x.noindex_page;
                    page.links_dropped = x.dropped;
                    if let Some(why) = x.truncated_by {
                        page.error = format!("parsing stopped early: {why}");
                    }
                    page.links = strip_targets(x.links, policy)
                        .into_iter()
                        .map(proto::Link::from)
                        .collect();
                }
                Err(e) => page.error = e.to_string(),
            }
        }
        (FetchOutcome::Redirect, Ok(url)) => {
            if let Ok(target) = Url::parse(&res.location) {
                page.links
                    .push(proto::Link::from(&redirect_link(&url, &target)));
            }
        }
        (_, Err(e)) => page.error = format!("unparseable request url {:?}: {e}", req.url),
        _ => {}
    }
    page.request = Some(req);
    page
}

/// Strips tracking and session parameters from link targets; links that
/// then point to the same URL collapse to the first (document order), and a
/// link that now points to its own page is dropped.
fn strip_targets(mut links: Vec<Link>, policy: &UrlPolicy) -> Vec<Link> {
    for l in &mut links {
        // Only a query or a path parameter can be stripped: most targets
        // have neither, and skip the parse.
        if l.target_url.contains(['?', ';'])
            && let Ok(mut u) = Url::parse(&l.target_url)
            && policy.strip(&mut u)
        {
            l.target_url = u.into();
        }
    }
    let keep: Vec<bool> = {
        let mut seen = std::collections::HashSet::with_capacity(links.len());
        links
            .iter()
            .map(|l| l.target_url != l.source_url && seen.insert(l.target_url.as_str()))
            .collect()
    };
    links
        .into_iter()
        .zip(keep)
        .filter_map(|(l, keep)| keep.then_some(l))
        .collect()
}

/// XXH3-64 of the body ([`linkgraph_core::body_hash`]): stable across
/// builds, so "changed" survives upgrades; 0 for an empty body.
pub fn content_hash(body: &[u8]) -> u64 {
    if body.is_empty() {
        return 0;
    }
    linkgraph_core::body_hash(body)
}

/// Whether an outcome says what the page links to now. A 200 page, a
/// redirect, a page that is no longer HTML, and a 404 or 410 replace the
/// stored outlink set (the last three with none but the redirect); a
/// temporary failure (5xx, other 4xx, timeout, robots unavailable) keeps it.
pub fn link_set_update(outcome: FetchOutcome, status: u32) -> LinkSetUpdate {
    if outcome == FetchOutcome::NotModified {
        LinkSetUpdate::Unchanged
    } else if outcome.is_definite(status) {
        LinkSetUpdate::Replace
    } else {
        LinkSetUpdate::Keep
    }
}

/// What the store records for a parsed page, its links moved into it (take
/// the page's [`feedback`] first).
pub fn page_write(page: ParsedPage) -> PageWrite {
    let sitemap = page.request.as_ref().is_some_and(|r| r.sitemap);
    PageWrite {
        // A sitemap is recorded as fetched, with no links of its own.
        update: if sitemap {
            LinkSetUpdate::Keep
        } else {
            link_set_update(page.outcome(), page.status)
        },
        content_hash: page.content_hash,
        status: page.status,
        outcome: page.outcome,
        fetched_at_ms: page.fetched_at_ms,
        // A noindex page is out of the index: its links are not backlinks
        // (they are lost, with reason noindex, if it had any), though the
        // frontier still follows them.
        links: if page.noindex_page {
            Vec::new()
        } else {
            page.links.into_iter().map(Link::from).collect()
        },
        noindex: page.noindex_page,
        remote_ip: page.remote_ip.parse().ok(),
        url: page.request.map(|r| r.url).unwrap_or_default(),
    }
}

/// The frontier's feedback for a parsed page: its outcome and every link
/// target as a discovered URL (redirect targets keep the depth and count a
/// redirect hop). Whether the page changed is the store's answer: `changed`
/// is false until the caller sets it from its write.
pub fn feedback(page: &ParsedPage) -> FrontierFeedback {
    let req = page.request.clone().unwrap_or_default();
    // Sized once: growing it a URL at a time reallocated and copied it.
    let mut discovered =
        Vec::with_capacity(page.links.len() + page.sitemap_urls.len() + page.robots_sitemaps.len());
    discovered.extend(page.links.iter().filter_map(|l| {
        // Targets are canonical URLs: their host is a slice, no parse.
        let host = url_host(&l.target_url);
        if host.is_empty() {
            return None;
        }
        let redirect = l.kind == proto::LinkKind::Redirect as i32;
        Some(DiscoveredUrl {
            url: l.target_url.clone(),
            host: host.to_owned(),
            depth: if redirect { req.depth } else { req.depth + 1 },
            redirect_hops: if redirect { req.redirect_hops + 1 } else { 0 },
            referrer: req.url.clone(),
            sitemap: false,
        })
    }));
    discovered.extend(page.sitemap_urls.iter().filter_map(|u| {
        Some(DiscoveredUrl {
            url: u.clone(),
            host: Url::parse(u).ok()?.host_str()?.to_owned(),
            depth: req.depth + 1,
            referrer: req.url.clone(),
            sitemap: page.sitemap_index,
            ..DiscoveredUrl::default()
        })
    }));
    discovered.extend(page.robots_sitemaps.iter().filter_map(|u| {
        let url = linkgraph_core::canonicalize(u, None).ok()?;
        Some(DiscoveredUrl {
            host: url.host_str()?.to_owned(),
            url: url.into(),
            depth: req.depth,
            sitemap: true,
            ..DiscoveredUrl::default()
        })
    }));
    FrontierFeedback {
        request: Some(req),
        outcome: page.outcome,
        status: page.status,
        fetched_at_ms: page.fetched_at_ms,
        discovered,
        retry_after_ms: page.retry_after_ms,
        crawl_delay_ms: page.crawl_delay_ms,
        etag: page.etag.clone(),
        last_modified: page.last_modified.clone(),
        changed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkgraph_proto::CrawlRequest;

    fn fetched(url: &str, outcome: FetchOutcome) -> FetchResult {
        let mut r = FetchResult {
            request: Some(CrawlRequest {
                url: url.into(),
                host: "a.com".into(),
                depth: 2,
                ..Default::default()
            }),
            status: 200,
            fetched_at_ms: 42,
            ..Default::default()
        };
        r.set_outcome(outcome);
        r
    }

    #[test]
    fn pages_become_edges_and_discoveries_one_hop_deeper() {
        let mut r = fetched("http://a.com/p", FetchOutcome::Ok);
        r.body = b"<a href='/q'>q</a><a href='http://b.com/' rel=nofollow>b</a>".to_vec();
        let page = parse(
            r,
            "linkgraph",
            ParseLimits::default(),
            &UrlPolicy::default(),
        );
        assert_eq!(page.links.len(), 2);
        let w = page_write(page.clone());
        assert_eq!(
            (w.url.as_str(), w.fetched_at_ms, w.links.len()),
            ("http://a.com/p", 42, 2)
        );
        let fb = feedback(&page);
        let d: Vec<(&str, u32)> = fb
            .discovered
            .iter()
            .map(|d| (d.url.as_str(), d.depth))
            .collect();
        assert_eq!(d, vec![("http://a.com/q", 3), ("http://b.com/", 3)]);
    }

    #[test]
    fn discovered_hosts_are_the_hosts_a_url_parser_reads() {
        // Real-web shapes: a port, IPv4 and IPv6 literals, punycode, path
        // parameters, a query, a trailing dot.
        let mut r = fetched("http://a.com/p", FetchOutcome::Ok);
        r.body = "<a href='http://b.com:8080/x'>1</a><a href='http://127.0.0.1/'>2</a>\
            <a href='http://[::1]:81/v'>3</a><a href='http://bücher.de/ä'>4</a>\
            <a href='/c;v=1?q=2'>5</a><a href='http://d.com./'>6</a>\
            <a href='HTTPS://E.COM'>7</a>"
            .as_bytes()
            .to_vec();
        let page = parse(
            r,
            "linkgraph",
            ParseLimits::default(),
            &UrlPolicy::default(),
        );
        let fb = feedback(&page);
        assert_eq!(fb.discovered.len(), 7);
        for d in &fb.discovered {
            let parsed = Url::parse(&d.url).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(Some(d.host.as_str()), parsed.host_str(), "{}", d.url);
        }
    }

    #[test]
    fn tracking_parameters_are_stripped_from_targets() {
        let mut r = fetched("http://a.com/p", FetchOutcome::Ok);
        r.body = b"<a href='/q?utm_source=x'>one</a><a href='/q?sid=2'>two</a><a href='/p?fbclid=1'>self</a>".to_vec();
        let page = parse(
            r,
            "linkgraph",
            ParseLimits::default(),
            &UrlPolicy::default(),
        );
        let targets: Vec<(&str, &str)> = page
            .links
            .iter()
            .map(|l| (l.target_url.as_str(), l.anchor.as_str()))
            .collect();
        assert_eq!(targets, vec![("http://a.com/q", "one")]);
    }

    #[test]
    fn redirects_become_edges_and_count_a_hop() {
        let mut r = fetched("http://a.com/old", FetchOutcome::Redirect);
        r.location = "http://a.com/new".into();
        let page = parse(
            r,
            "linkgraph",
            ParseLimits::default(),
            &UrlPolicy::default(),
        );
        let l = Link::from(page.links[0].clone());
        assert_eq!(l.kind, linkgraph_core::LinkKind::Redirect);
        let fb = feedback(&page);
        assert_eq!(
            (fb.discovered[0].depth, fb.discovered[0].redirect_hops),
            (2, 1)
        );
    }

    #[test]
    fn only_definite_answers_replace_the_outlink_set() {
        assert_eq!(
            link_set_update(FetchOutcome::Ok, 200),
            LinkSetUpdate::Replace
        );
        assert_eq!(
            link_set_update(FetchOutcome::Redirect, 301),
            LinkSetUpdate::Replace
        );
        assert_eq!(
            link_set_update(FetchOutcome::HttpError, 410),
            LinkSetUpdate::Replace
        );
        assert_eq!(
            link_set_update(FetchOutcome::HttpError, 503),
            LinkSetUpdate::Keep
        );
        assert_eq!(
            link_set_update(FetchOutcome::Timeout, 0),
            LinkSetUpdate::Keep
        );
        assert_eq!(
            link_set_update(FetchOutcome::RobotsDenied, 0),
            LinkSetUpdate::Keep
        );
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
        assert_eq!(content_hash(b""), 0);
    }

    #[test]
    fn a_panic_while_processing_a_page_becomes_a_failed_page() {
        let req = CrawlRequest {
            url: "http://a.com/boom".into(),
            ..Default::default()
        };
        let page = guard_page(req, 200, 7, || {
            panic!("end byte index 5 is not a char boundary")
        });
        assert_eq!(page.outcome(), FetchOutcome::InternalError);
        assert!(page.links.is_empty());
        assert!(page.error.contains("not a char boundary"), "{}", page.error);
        assert_eq!(
            page_write(page.clone()).update,
            LinkSetUpdate::Keep,
            "a bug loses no links"
        );
        let fb = feedback(&page);
        assert_eq!(
            (fb.request.map(|r| r.url), fb.outcome),
            (
                Some("http://a.com/boom".into()),
                FetchOutcome::InternalError as i32
            )
        );
        assert!(FetchOutcome::InternalError.is_error());
        let owned = guard_page(CrawlRequest::default(), 0, 0, || {
            panic!("{}", String::from("owned"))
        });
        assert!(owned.error.ends_with("owned"));
    }

    proptest::proptest! {
        /// The per-page path on generated pages in the shapes real ones take
        /// (non-ASCII hrefs, references, noscript, nesting, comment flags):
        /// never a panic, and every edge is a bounded http(s) link.
        #[test]
        fn generated_pages_never_panic(
            parts in proptest::collection::vec((
                "[/a-zé日ß%?&=#.:-]{0,12}",
                "[a-zA-Zé &;#0-9]{0,10}",
                0usize..8,
            ), 0..30),
            ct in 0usize..3,
        ) {
            let wrappers = [
                ("", ""), ("<nav>", "</nav>"), ("<noscript>", "</noscript>"),
                ("<div class='comment-body'>", "</div>"), ("<a href='/outer'>", ""),
                ("<script>", "</script>"), ("<template>", "</template>"), ("<p", ""),
            ];
            let body: String = parts
                .iter()
                .map(|(href, text, w)| {
                    let (open, close) = wrappers[*w];
                    format!("{open}<a href=\"{href}\">{text}</a>{close}")
                })
                .collect();
            let mut r = fetched("http://www.example.com/dir/página", FetchOutcome::Ok);
            r.content_type = ["", "text/html; charset=utf-8", "text/html; charset=windows-1252"][ct].into();
            r.body = format!("<body class='f_comment_nofollow_on'>{body}").into_bytes();
            let page = parse_unguarded(r, "linkgraph", ParseLimits::default(), &UrlPolicy::default());
            let w = page_write(page.clone());
            for l in &w.links {
                proptest::prop_assert!(l.target_url.starts_with("http://") || l.target_url.starts_with("https://"));
                proptest::prop_assert!(l.anchor.chars().count() <= linkgraph_core::MAX_ANCHOR_CHARS);
                proptest::prop_assert_ne!(&l.target_url, &l.source_url);
            }
            let _ = feedback(&page);
        }
    }

    #[test]
    fn failures_have_no_edges() {
        let page = parse(
            fetched("http://a.com/x", FetchOutcome::HttpError),
            "linkgraph",
            ParseLimits::default(),
            &UrlPolicy::default(),
        );
        assert!(page.links.is_empty());
        assert!(feedback(&page).discovered.is_empty());
    }
}
