//! End to end against hostile hosts: slow drips, endless bodies, compression
//! bombs, huge headers, binary bodies, broken encodings and markup, pages
//! with 100,000 links or 10,000-character URLs, connection resets, redirect
//! loops and chains, and spider traps. The crawl must end in bounded time
//! and memory, count every failure by class, and lose nothing of the
//! well-behaved web crawled alongside.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_hosts_cannot_hurt_the_crawl() {
    let served = serve(12, 6, 21).await;
    let truth = served.web.truth();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let budget = 300;
    let mut args = crawl_args(
        &served,
        &data,
        200.0,
        &[
            "--timeout",
            "4",
            "--read-timeout",
            "2",
            "--throughput-grace",
            "1",
            "--max-body-bytes",
            "1048576",
            "--max-urls-per-host",
            &budget.to_string(),
        ],
    );
    let i = args.iter().position(|a| a == "--seeds").unwrap();
    args.insert(i + 2, "http://www.hostile.example/".into());
    let started = Instant::now();
    let summary = tokio::time::timeout(Duration::from_secs(180), linkgraph_ok(args))
        .await
        .expect("the crawl ends in bounded time");
    let took = started.elapsed();
    assert!(summary.contains("frontier empty"), "{summary}");

    // Every failure is counted by class.
    let pages_line = summary
        .lines()
        .find(|l| l.trim_start().starts_with("pages"))
        .unwrap();
    let count = |class: &str| -> u64 {
        pages_line
            .split(['(', ',', ')'])
            .map(str::trim)
            .find_map(|p| p.strip_prefix(class).and_then(|n| n.trim().parse().ok()))
            .unwrap_or(0)
    };
    assert!(
        count("timeout") >= 1,
        "the slow drip times out: {pages_line}"
    );
    assert!(
        count("too_large") >= 3,
        "endless body and both bombs are cut: {pages_line}"
    );
    assert!(
        count("network_error") >= 2,
        "huge headers and the reset: {pages_line}"
    );
    assert!(count("not_html") >= 1, "the binary body: {pages_line}");

    // Memory stays bounded: bombs and endless bodies stop at the cap.
    let rss_mib: f64 = summary
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("peak RSS"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(rss_mib < 400.0, "peak RSS {rss_mib} MiB\n{summary}");
    assert!(took < Duration::from_secs(120), "took {took:?}");

    // Traps are bounded: session ids are stripped (one page), ever-deeper
    // paths stop at the first repeated segment, the rest by the host budget.
    let log = served.log.snapshot();
    let hostile: Vec<&str> = log
        .iter()
        .filter(|r| r.host == "www.hostile.example")
        .map(|r| r.path.as_str())
        .collect();
    // The budget counts URLs; the slow drip, the reset and the huge headers
    // fail temporarily and get two more tries each; plus robots.txt.
    assert!(
        hostile.len() <= budget + 1 + 3 * 2,
        "{} requests to the hostile host",
        hostile.len()
    );
    let session: Vec<&str> = hostile
        .iter()
        .filter(|p| p.starts_with("/session"))
        .copied()
        .collect();
    assert_eq!(
        session,
        vec!["/session"],
        "session ids are stripped: one page, however many ids"
    );
    let deep = hostile.iter().filter(|p| p.starts_with("/deep/")).count();
    assert!(
        deep <= 2,
        "at most /deep/a/ and /deep/a/a/: the third a is a repeat ({deep})"
    );
    let chain = hostile.iter().filter(|p| p.starts_with("/chain/")).count();
    assert!(
        chain <= 6,
        "redirect chains stop at the hop limit ({chain})"
    );

    // Nothing of the well-behaved web was lost.
    let domains: BTreeSet<String> = truth
        .edges
        .iter()
        .map(|l| l.target_domain().to_owned())
        .collect();
    let want: BTreeSet<Full> = truth.edges.iter().map(full).collect();
    assert_eq!(stored(&data, &domains, "live").await, want);
    // And the hostile pages that had usable links were still parsed.
    let hostile = stored(
        &data,
        &BTreeSet::from(["hostile.example".to_owned()]),
        "live",
    )
    .await;
    for target in ["/malformed-3", "/bad-encoding-target", "/no-type-target"] {
        assert!(
            hostile
                .iter()
                .any(|e| e.1 == format!("http://www.hostile.example{target}")),
            "no link to {target}"
        );
    }
    assert!(
        !hostile.iter().any(|e| e.1.len() > 2048),
        "10,000-character URLs are dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_that_say_slow_down_are_obeyed() {
    let served = serve(2, 2, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = crawl_args(
        &served,
        &data,
        100.0,
        &[
            "--park-after",
            "5",
            "--max-attempts",
            "3",
            "--max-backoff",
            "5",
        ],
    );
    let i = args.iter().position(|a| a == "--seeds").unwrap();
    args.splice(
        i + 1..i + 2,
        [
            "http://busy.hostile.example/p/1",
            "http://busy.hostile.example/p/2",
            "http://down.hostile.example/p/1",
            "http://down.hostile.example/p/2",
            "http://down.hostile.example/p/3",
            "http://polite.hostile.example/",
        ]
        .map(String::from),
    );
    let summary = tokio::time::timeout(Duration::from_secs(120), linkgraph_ok(args))
        .await
        .unwrap();
    assert!(summary.contains("frontier empty"), "{summary}");
    assert!(summary.contains("2 hosts parked"), "{summary}");
    assert!(
        summary_number(&summary, "queued") >= 1,
        "parked URLs stay queued for the next run\n{summary}"
    );

    let log = served.log.snapshot();
    let times = |host: &str| -> Vec<std::time::Instant> {
        log.iter()
            .filter(|r| r.host == host && r.path != "/robots.txt")
            .map(|r| r.at)
            .collect()
    };
    let gaps =
        |t: &[std::time::Instant]| -> Vec<Duration> { t.windows(2).map(|w| w[1] - w[0]).collect() };
    let jitter = Duration::from_millis(50);

    // 429 + Retry-After: 1 → one try per second at most, then parked after 5 failures.
    let busy = times("busy.hostile.example");
    assert_eq!(busy.len(), 5, "3 tries of /p/1, 2 of /p/2, then parked");
    assert!(
        gaps(&busy)
            .iter()
            .all(|g| *g + jitter >= Duration::from_secs(1)),
        "{:?}",
        gaps(&busy)
    );

    // 503 without Retry-After → exponential back-off, then parked.
    let down = times("down.hostile.example");
    assert_eq!(down.len(), 5, "parked after 5 failures");
    let g = gaps(&down);
    assert!(
        g.windows(2).all(|w| w[1] + jitter >= w[0] * 2 - jitter * 2),
        "back-off doubles: {g:?}"
    );

    // Crawl-delay: 1 → a second between requests.
    let polite = times("polite.hostile.example");
    assert_eq!(
        polite.len(),
        7,
        "/, /p/1..4, the sitemap robots.txt names, and the page only it lists"
    );
    assert!(
        log.iter()
            .any(|r| r.host == "polite.hostile.example" && r.path == "/p/orphan"),
        "a page linked from nowhere is found through the sitemap"
    );
    assert!(
        gaps(&polite)
            .iter()
            .all(|g| *g + jitter >= Duration::from_secs(1)),
        "{:?}",
        gaps(&polite)
    );
}

/// A crawl whose only host refuses connections waits out the host's
/// doubling back-off until it is parked; each wait of a second or more
/// says so on stderr, with the failure it waits for, instead of going
/// silent for minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crawl_waiting_on_a_host_that_refuses_connections_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let seed = format!("http://127.0.0.1:{}/", free_port());
    let data = dir.path().join("data");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        linkgraph(args(&[
            "crawl",
            "--seeds",
            &seed,
            "--data",
            &data.display().to_string(),
            "--allow-private-networks",
            "--per-host-rps",
            "10",
            "--park-after",
            "5",
        ])),
    )
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Back-offs of 0.2, 0.4, 0.8 and 1.6 s, then parked at the fifth failure.
    assert!(stdout.contains("robots_unavailable 5"), "{stdout}");
    assert!(stdout.contains("1 hosts parked"), "{stdout}");
    let notices: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("nothing to fetch until failing hosts' back-off ends"))
        .collect();
    assert_eq!(
        notices.len(),
        1,
        "only the 1.6 s wait is long enough\n{stderr}"
    );
    for needle in [seed.as_str(), "Connection refused", "\"hosts\":1"] {
        assert!(notices[0].contains(needle), "{needle}: {}", notices[0]);
    }
}
