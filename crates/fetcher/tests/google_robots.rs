//! Google's robots.txt test suite (google/robotstxt, `robots_test.cc`), run
//! end to end: every case is a real crawl of its URL, by the fetcher, as the
//! case's user agent, against a loopback HTTP server that serves the case's
//! robots.txt and logs every request. A case passes when the server saw the
//! page requested exactly when the case allows it.
//!
//! The cases live in `data/google_robots_cases.json`. `google` is what
//! Google's test expects; where RFC 9309 (or a documented choice) decides
//! otherwise, `ours` says what we do and `why` says why. Every such
//! difference is listed in the README's robots section.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use linkgraph_fetcher::{Fetcher, FetcherConfig, ResolveRule};
use linkgraph_proto::{CrawlRequest, FetchOutcome};
use linkgraph_simweb::raw::{RawLog, serve_raw};
use serde_json::Value;

struct Case {
    test: String,
    robots: String,
    agent: String,
    url: String,
    expect: bool,
    why: Option<String>,
}

fn cases() -> Vec<Case> {
    let text = include_str!("data/google_robots_cases.json");
    let doc: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("cases: {e}"));
    let s = |c: &Value, k: &str| c[k].as_str().map(str::to_owned);
    doc["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("cases: no array"))
        .iter()
        .map(|c| Case {
            test: s(c, "test").unwrap_or_default(),
            robots: s(c, "robots").unwrap_or_default(),
            agent: s(c, "agent").unwrap_or_default(),
            url: s(c, "url").unwrap_or_default(),
            expect: c["ours"]
                .as_bool()
                .or_else(|| c["google"].as_bool())
                .unwrap_or_else(|| panic!("case without an expectation: {c}")),
            why: s(c, "why"),
        })
        .collect()
}

/// Serves each case's robots.txt on its host, and a small page elsewhere.
async fn serve(sites: HashMap<String, String>) -> (SocketAddr, RawLog) {
    let route = move |host: &str, path: &str| {
        let (ctype, body) = if path == "/robots.txt" {
            ("text/plain", sites.get(host).cloned().unwrap_or_default())
        } else {
            ("text/html", "<html><body>ok</body></html>".to_owned())
        };
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    serve_raw(route, Duration::ZERO)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The case's URL on its own host, as the crawler would request it.
fn crawl_url(case: &Case, host: &str) -> String {
    let rest = case
        .url
        .split_once("://")
        .map_or(case.url.as_str(), |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    let url = format!("http://{host}{path}");
    linkgraph_core::canonicalize(&url, None)
        .unwrap_or_else(|e| panic!("{}: {url}: {e}", case.test))
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_robots_suite_end_to_end() {
    let cases = cases();
    assert!(cases.len() > 150, "{} cases", cases.len());
    let hosts: Vec<String> = (0..cases.len()).map(|i| format!("case{i}.test")).collect();
    let sites = hosts
        .iter()
        .zip(&cases)
        .map(|(h, c)| (h.clone(), c.robots.clone()))
        .collect();
    let (addr, log) = serve(sites).await;
    let mut fetchers: BTreeMap<String, Fetcher> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut differences = 0;
    for (case, host) in cases.iter().zip(&hosts) {
        let fetcher = fetchers.entry(case.agent.clone()).or_insert_with(|| {
            Fetcher::new(FetcherConfig {
                user_agent: format!("{}/1.0", case.agent),
                per_host_rps: 1000.0,
                resolve: vec![ResolveRule {
                    host: "*".into(),
                    addr,
                }],
                allow_private_networks: true,
                per_ip_concurrency: 0,
                total_timeout: Duration::from_secs(10),
                ..FetcherConfig::default()
            })
            .unwrap_or_else(|e| panic!("{e}"))
        });
        let url = crawl_url(case, host);
        let res = fetcher
            .fetch(CrawlRequest {
                url: url.clone(),
                host: host.clone(),
                ..CrawlRequest::default()
            })
            .await;
        let path = &url[format!("http://{host}").len()..];
        let requested = log
            .lock()
            .map(|l| l.iter().any(|(_, h, p)| h == host && p == path))
            .unwrap_or(false);
        let outcome = res.outcome();
        let consistent = match outcome {
            FetchOutcome::Ok => requested,
            FetchOutcome::RobotsDenied => !requested,
            _ => false,
        };
        if !consistent || requested != case.expect {
            failures.push(format!(
                "{} agent {:?} url {url}: expected {}, server saw the page {}, outcome {} ({})\nrobots.txt:\n{}",
                case.test,
                case.agent,
                if case.expect { "allowed" } else { "disallowed" },
                if requested { "requested" } else { "not requested" },
                outcome.label(),
                res.error,
                case.robots.chars().take(400).collect::<String>()
            ));
        }
        if case.why.is_some() {
            differences += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    // Every intended difference from Google is one of the documented ones.
    assert_eq!(differences, 11, "update the README's list of differences");
    println!(
        "{} cases, {differences} intended differences from Google",
        cases.len()
    );
}
