//! Every hostile mode of the simulated web, one by one, against the real
//! fetcher and parser: each ends in bounded time with a bounded body and the
//! expected outcome class.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use linkgraph_core::UrlPolicy;
use linkgraph_fetcher::{Fetcher, FetcherConfig, ResolveRule, Throughput};
use linkgraph_parser::ParseLimits;
use linkgraph_pipeline::stages;
use linkgraph_proto::{CrawlRequest, FetchOutcome};

const CAP: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hostile_mode_is_bounded_and_classified() {
    let served = serve(2, 2, 1).await;
    let fetcher = Fetcher::new(FetcherConfig {
        resolve: vec![ResolveRule {
            host: "*".into(),
            addr: served.addr,
        }],
        allow_private_networks: true,
        per_host_rps: 1000.0,
        max_body_bytes: CAP,
        total_timeout: Duration::from_secs(4),
        read_timeout: Duration::from_secs(2),
        throughput: Throughput {
            min_bytes_per_sec: 1024,
            grace: Duration::from_secs(1),
        },
        ..FetcherConfig::default()
    })
    .unwrap();
    // (path, expected outcome, least links parsed)
    let cases: &[(&str, FetchOutcome, usize)] = &[
        ("/slow", FetchOutcome::Timeout, 0),
        ("/endless", FetchOutcome::TooLarge, 0),
        ("/gzip-bomb", FetchOutcome::TooLarge, 0),
        ("/brotli-bomb", FetchOutcome::TooLarge, 0),
        ("/huge-headers", FetchOutcome::NetworkError, 0),
        ("/binary", FetchOutcome::NotHtml, 0),
        ("/bad-encoding", FetchOutcome::Ok, 2),
        ("/malformed", FetchOutcome::Ok, 4),
        // 3.5 MB of links: cut at the cap, and the part kept still yields the 10,000-link maximum.
        ("/many-links", FetchOutcome::TooLarge, 10_000),
        ("/long-urls", FetchOutcome::Ok, 1),
        ("/reset", FetchOutcome::NetworkError, 0),
        ("/loop/a", FetchOutcome::Redirect, 1),
        ("/chain/0", FetchOutcome::Redirect, 1),
        ("/calendar/2026/1", FetchOutcome::Ok, 2),
        ("/session?sid=7", FetchOutcome::Ok, 0),
        ("/deep/a/a/", FetchOutcome::Ok, 1),
        ("/no-type", FetchOutcome::Ok, 1),
    ];
    for (path, want, min_links) in cases {
        let url = format!("http://www.hostile.example{path}");
        let started = Instant::now();
        let res = fetcher
            .fetch(CrawlRequest {
                url: url.clone(),
                host: "www.hostile.example".into(),
                ..CrawlRequest::default()
            })
            .await;
        let took = started.elapsed();
        assert_eq!(res.outcome(), *want, "{path}: {}", res.error);
        assert!(took < Duration::from_secs(6), "{path} took {took:?}");
        assert!(
            res.body.len() <= CAP,
            "{path}: body of {} bytes",
            res.body.len()
        );
        let page = stages::parse(
            res,
            "linkgraph",
            ParseLimits::default(),
            &UrlPolicy::default(),
        );
        assert!(
            page.links.len() >= *min_links,
            "{path}: {} links",
            page.links.len()
        );
        assert!(
            page.links.len() <= ParseLimits::default().max_links,
            "{path}: links are capped"
        );
        assert!(
            page.links.iter().all(|l| l.target_url.len() <= 2048),
            "{path}: long URLs are dropped"
        );
        if *path == "/session?sid=7" {
            assert!(
                page.links.iter().all(|l| !l.target_url.contains("sid=")),
                "session ids are stripped"
            );
        }
    }
}
