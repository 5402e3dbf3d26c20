//! End to end, history that can be trusted: a site whose link to a target
//! moves from one page to another in a recrawl keeps the target as a
//! referring domain (no lost-then-new flap), a first crawl discovers rather
//! than adds, and a robots.txt that cannot be fetched completes nothing and
//! loses nothing (its last good copy answering for up to 30 days).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use linkgraph_core::parse_time;
use serde_json::Value;

const DAY: i64 = 86_400_000;

/// An HTTP/1.1 answer with an HTML body.
fn respond(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A 200 with `body`, or a 404 without one.
fn page_or_404(body: Option<String>) -> (&'static str, String) {
    match body {
        Some(b) => ("200 OK", b),
        None => ("404 Not Found", String::new()),
    }
}

/// Serves `route` (host, path) -> (status, body) on loopback.
async fn serve(
    route: impl Fn(&str, &str) -> (&'static str, String) + Send + Sync + 'static,
) -> std::net::SocketAddr {
    let answer = move |host: &str, path: &str| {
        let (status, body) = route(host, path);
        respond(status, &body)
    };
    linkgraph_simweb::raw::serve_raw(answer, Duration::ZERO)
        .await
        .unwrap()
        .0
}

/// `crawl` into `data` against the site at `addr`, from `seed` when given.
fn site_crawl_args(
    addr: std::net::SocketAddr,
    data: &std::path::Path,
    seed: Option<&str>,
    extra: &[&str],
) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "crawl".into(),
        "--data".into(),
        data.display().to_string(),
        "--resolve".into(),
        format!("*={addr}"),
        "--allow-private-networks".into(),
        "--per-host-rps".into(),
        "100".into(),
    ];
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    if let Some(seed) = seed {
        a.extend(["--seeds".to_owned(), seed.to_owned()]);
    }
    a
}

/// A two-page site, x.test: in epoch 0 page /1 links t.test, in epoch 1
/// page /2 does instead. The home page links /1 before /2, so the recrawl
/// drops the old link before it finds the new one.
async fn moving_site(epoch: Arc<AtomicU32>) -> std::net::SocketAddr {
    serve(move |host: &str, path: &str| {
        let e = epoch.load(Ordering::SeqCst);
        let to_t = "<a href=\"http://t.test/\">our friends at t</a>";
        let body = match (host, path) {
            (_, "/robots.txt") => None,
            ("x.test", "/") => Some("<a href=\"/1\">one</a> <a href=\"/2\">two</a>".to_owned()),
            ("x.test", "/1") => Some(format!("<p>one</p>{}", if e == 0 { to_t } else { "" })),
            ("x.test", "/2") => Some(format!("<p>two</p>{}", if e == 0 { "" } else { to_t })),
            ("t.test", "/") => Some("<p>t</p>".to_owned()),
            _ => None,
        };
        page_or_404(body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_moves_between_pages_keeps_its_referring_domain() {
    let epoch = Arc::new(AtomicU32::new(0));
    let addr = moving_site(Arc::clone(&epoch)).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.display().to_string();
    let crawl = |seeds: bool| site_crawl_args(addr, &data, seeds.then_some("http://x.test/"), &[]);
    let base = parse_time("2026-03-02T12:00:00Z").unwrap();
    linkgraph_ok_env(crawl(true), env_at(base)).await;
    epoch.store(1, Ordering::SeqCst);
    // 40 days on, every page is due: a plain crawl recrawls them.
    let summary = linkgraph_ok_env(crawl(false), env_at(base + 40 * DAY)).await;
    assert_eq!(summary_edges(&summary, "lost"), 1, "{summary}");

    // The link moved: one lost link, one new one, and the domain stayed.
    let v: Value = serde_json::from_str(
        &linkgraph_ok(
            ["velocity", "t.test", "--data", &data_s, "--format", "json"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        )
        .await,
    )
    .unwrap();
    let sum = |k: &str| -> u64 {
        v["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[k].as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        [
            sum("new_links"),
            sum("lost_links"),
            sum("discovered_links"),
            sum("new_refdomains"),
            sum("lost_refdomains"),
            sum("discovered_refdomains"),
        ],
        [1, 1, 1, 0, 0, 1],
        "{v:#}"
    );
    let rd = refdomains_json(&data, "t.test").await;
    assert_eq!(rd, vec![("x.test".to_owned(), 1, 1)]);
    let lost = linkgraph_ok(
        [
            "refdomains",
            "t.test",
            "--data",
            &data_s,
            "--status",
            "lost",
            "--format",
            "csv",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect(),
    )
    .await;
    assert_eq!(lost.lines().count(), 1, "no lost referring domain:\n{lost}");
}

/// A site whose robots.txt answers 503 while `down` is set.
async fn site_with_flaky_robots(down: Arc<AtomicU32>) -> std::net::SocketAddr {
    serve(move |host: &str, path: &str| match (host, path) {
        (_, "/robots.txt") if down.load(Ordering::SeqCst) == 1 => {
            ("503 Service Unavailable", String::new())
        }
        (_, "/robots.txt") => ("200 OK", "User-agent: *\nDisallow: /private/\n".to_owned()),
        ("r.test", "/") => (
            "200 OK",
            "<a href=\"/a\">a</a> <a href=\"/b\">b</a> <a href=\"http://t.test/\">t</a> \
             <a href=\"/private/p\">p</a>"
                .to_owned(),
        ),
        ("r.test", "/a" | "/b") => ("200 OK", "<a href=\"http://t.test/x\">x</a>".to_owned()),
        ("t.test", _) => ("200 OK", "<p>t</p>".to_owned()),
        _ => ("404 Not Found", String::new()),
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_robots_txt_completes_nothing_and_loses_nothing() {
    let down = Arc::new(AtomicU32::new(0));
    let addr = site_with_flaky_robots(Arc::clone(&down)).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let extra = ["--park-after", "3", "--max-backoff", "0.05"];
    let crawl =
        |seeds: bool| site_crawl_args(addr, &data, seeds.then_some("http://r.test/"), &extra);
    let base = parse_time("2026-03-02T12:00:00Z").unwrap();
    let first = linkgraph_ok_env(crawl(true), env_at(base)).await;
    let pages = summary_number(&first, "pages");
    let links = refdomains_json(&data, "t.test").await;
    assert_eq!(links, vec![("r.test".to_owned(), 3, 3)], "{first}");
    assert!(pages >= 5, "{first}");

    assert!(first.contains("robots_denied 1"), "{first}");

    // Ten days on, robots.txt fails: the copy the first run kept answers, so
    // every page is recrawled and /private/ is still denied.
    down.store(1, Ordering::SeqCst);
    let copy = linkgraph_ok_env(crawl(false), env_at(base + 10 * DAY)).await;
    assert!(!copy.contains("robots_unavailable"), "{copy}");
    assert!(copy.contains("robots_denied 1"), "{copy}");
    assert_eq!(summary_number(&copy, "pages"), pages, "{copy}");
    assert_eq!(summary_number(&copy, "queued"), 0, "{copy}");

    // Forty days on the copy is too old (30 days at most): nothing is
    // fetched, nothing is completed (and so nothing denied), nothing is lost.
    let second = linkgraph_ok_env(crawl(false), env_at(base + 40 * DAY)).await;
    assert!(second.contains("robots_unavailable"), "{second}");
    assert!(!second.contains("robots_denied"), "{second}");
    assert_eq!(summary_edges(&second, "lost"), 0, "{second}");
    assert!(
        summary_number(&second, "queued") > 0,
        "URLs stay queued:\n{second}"
    );
    assert_eq!(refdomains_json(&data, "t.test").await, links);

    // robots.txt is back: every page is recrawled, still nothing lost.
    down.store(0, Ordering::SeqCst);
    let third = linkgraph_ok_env(crawl(false), env_at(base + 40 * DAY + 3_600_000)).await;
    assert!(third.contains("frontier empty"), "{third}");
    assert_eq!(summary_number(&third, "queued"), 0, "{third}");
    assert!(
        summary_number(&third, "pages") >= pages - 1,
        "{first}\n{third}"
    );
    assert_eq!(summary_edges(&third, "lost"), 0, "{third}");
    assert_eq!(refdomains_json(&data, "t.test").await, links);
}

/// A page that starts saying noindex loses its links with reason
/// `noindex`, and the crawl still follows them to discover pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_gone_noindex_loses_its_links_with_that_reason() {
    let epoch = Arc::new(AtomicU32::new(0));
    let e = Arc::clone(&epoch);
    let addr = serve(move |host: &str, path: &str| {
        let hidden = e.load(Ordering::SeqCst) == 1;
        let meta = if hidden {
            "<meta name=\"robots\" content=\"noindex, follow\">"
        } else {
            ""
        };
        let body = match (host, path) {
            (_, "/robots.txt") => None,
            ("n.test", "/") => Some(format!(
                "{meta}<a href=\"http://t.test/\">t</a> <a href=\"http://t.test/new\">new</a>"
            )),
            ("t.test", "/") | ("t.test", "/new") => Some("<p>t</p>".to_owned()),
            _ => None,
        };
        page_or_404(body)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.display().to_string();
    let base = parse_time("2026-03-02T12:00:00Z").unwrap();
    let first = site_crawl_args(addr, &data, Some("http://n.test/"), &[]);
    linkgraph_ok_env(first, env_at(base)).await;
    epoch.store(1, Ordering::SeqCst);
    let again = site_crawl_args(addr, &data, None, &[]);
    let summary = linkgraph_ok_env(again, env_at(base + 40 * DAY)).await;
    assert_eq!(summary_edges(&summary, "lost"), 2, "{summary}");
    let lost = linkgraph_ok(args(&[
        "backlinks",
        "t.test",
        "--data",
        &data_s,
        "--status",
        "lost",
        "--format",
        "jsonl",
    ]))
    .await;
    let reasons: Vec<String> = lost
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["lost_reason"].to_string())
        .collect();
    assert_eq!(reasons, vec!["\"noindex\"", "\"noindex\""], "{lost}");
    let live = linkgraph_ok(args(&[
        "backlinks",
        "t.test",
        "--data",
        &data_s,
        "--format",
        "jsonl",
    ]))
    .await;
    assert_eq!(live.lines().count(), 0, "{live}");
}
