//! End to end: crawl the simulated web with the real binary and check the
//! stored graph, politeness and idempotence against the web's ground truth
//! and its own request log.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::*;
use linkgraph_core::registrable_domain;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_matches_ground_truth_politely_and_idempotently() {
    let served = serve(24, 12, 7).await;
    let truth = served.web.truth();
    assert!(truth.edges.len() > 1000 && !truth.disallowed.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rps = 10.0;

    // 1. A partial crawl stops at the page limit with work left queued.
    let first = linkgraph_ok(crawl_args(&served, &data, rps, &["--max-pages", "60"])).await;
    assert!(first.contains("page limit reached"), "{first}");
    assert_eq!(summary_number(&first, "pages"), 60);
    assert!(summary_number(&first, "queued") > 0);
    let run1_requests = served.log.len();

    // 2. The same command resumes and finishes the crawl.
    let second = linkgraph_ok(crawl_args(&served, &data, rps, &[])).await;
    assert!(second.contains("frontier empty"), "{second}");
    assert_eq!(summary_number(&second, "queued"), 0);
    let new_edges = summary_edges(&first, "new") + summary_edges(&second, "new");
    assert_eq!(
        new_edges as usize,
        truth.edges.len(),
        "every edge stored exactly once"
    );

    // Every stored edge, with every attribute, and every referring-domain
    // count equals the ground truth.
    assert_graph_equals(&data, &truth.edges).await;

    // robots.txt: no disallowed path was ever requested (server's own log).
    let log = assert_no_disallowed(&served);
    for e in &log {
        assert!(
            e.user_agent.starts_with("linkgraph/"),
            "user agent {:?}",
            e.user_agent
        );
    }
    assert!(log.iter().any(|e| e.path == "/robots.txt"));

    // Politeness: no host ever got requests faster than --per-host-rps.
    let checked = assert_rate(&log[..run1_requests], rps) + assert_rate(&log[run1_requests..], rps);
    assert!(
        checked > 100,
        "too few same-host request pairs to judge: {checked}"
    );

    // 3. Another crawl on the same data dir has nothing left to do.
    let third = linkgraph_ok(crawl_args(&served, &data, rps, &[])).await;
    assert_eq!(summary_number(&third, "pages"), 0, "{third}");

    // 4. Re-crawling everything into the same store adds no duplicates.
    std::fs::remove_dir_all(data.join("frontier")).unwrap();
    let fourth = linkgraph_ok(crawl_args(&served, &data, 50.0, &[])).await;
    assert_eq!(summary_edges(&fourth, "new"), 0, "{fourth}");
    assert_eq!(summary_number(&fourth, "edges") as usize, truth.edges.len());
    assert_graph_equals(&data, &truth.edges).await;
    // The popular domain really is popular.
    let popular = registrable_domain(served.web.hosts()[0].name.as_str());
    assert!(
        expected_refdomains(&truth.edges)
            .get(popular)
            .is_some_and(|r| r.len() >= 5)
    );

    // 5. A report whose reader goes away (`| head`) ends quietly.
    for report in ["refdomains", "anchors", "backlinks", "velocity"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_linkgraph"))
            .args([report, popular, "--data"])
            .arg(&data)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{report}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_and_host_budgets_bound_the_crawl() {
    let served = serve(10, 30, 11).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = linkgraph_ok(crawl_args(
        &served,
        &data,
        100.0,
        &["--max-depth", "1", "--max-urls-per-host", "5"],
    ))
    .await;
    assert!(out.contains("frontier empty"), "{out}");
    let log = served.log.snapshot();
    let mut pages_per_host: HashMap<&str, usize> = HashMap::new();
    for e in log.iter().filter(|e| e.path != "/robots.txt") {
        *pages_per_host.entry(e.host.as_str()).or_default() += 1;
    }
    assert!(
        pages_per_host.values().all(|n| *n <= 5),
        "{pages_per_host:?}"
    );
    // Depth 1 from the seed: the seed page and what it links to, nothing more.
    let seed_host = served.web.hosts()[0].name.clone();
    assert!(
        pages_per_host
            .get(seed_host.as_str())
            .is_some_and(|n| *n >= 2)
    );
    let total: usize = pages_per_host.values().sum();
    assert!(total < 60, "a depth-1 crawl fetched {total} pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "refdomains",
                "example.com",
                "--data",
                missing.to_str().unwrap(),
            ],
            "does not exist",
        ),
        (
            vec![
                "backlinks",
                "http://example.com/",
                "--data",
                missing.to_str().unwrap(),
            ],
            "does not exist",
        ),
        (
            vec!["refdomains", "not a domain", "--data", "."],
            "not a domain name",
        ),
        (
            vec![
                "crawl",
                "--seeds",
                "/no/such/file",
                "--data",
                missing.to_str().unwrap(),
            ],
            "neither a URL nor a readable file",
        ),
        (
            vec![
                "crawl",
                "--seeds",
                "http://a.com/",
                "--data",
                missing.to_str().unwrap(),
                "--per-host-rps",
                "0",
            ],
            "positive",
        ),
        (
            vec![
                "crawl",
                "--seeds",
                "http://a.com/",
                "--data",
                missing.to_str().unwrap(),
                "--resolve",
                "a.com",
            ],
            "HOST=ADDR:PORT",
        ),
        (
            vec![
                "crawl",
                "--seeds",
                "ftp://a.com/",
                "--data",
                missing.to_str().unwrap(),
            ],
            "unsupported scheme",
        ),
    ];
    for (args, want) in cases {
        let out = linkgraph(args.iter().map(|s| (*s).to_owned()).collect()).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: expected {want:?} in {err}");
    }
    assert!(!missing.exists(), "no command created the missing data dir");

    // An unknown domain in an existing crawl is an error, not an empty report.
    let served = serve(3, 3, 1).await;
    let data = dir.path().join("data");
    linkgraph_ok(crawl_args(&served, &data, 100.0, &[])).await;
    let out = linkgraph(vec![
        "refdomains".into(),
        "never-linked.example".into(),
        "--data".into(),
        data.display().to_string(),
    ])
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown domain"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_allow_private_networks_the_guard_refuses_loopback() {
    let served = serve(3, 3, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = crawl_args(&served, &dir.path().join("data"), 100.0, &[]);
    args.retain(|a| a != "--allow-private-networks");
    let out = linkgraph_ok(args).await;
    assert_eq!(
        served.log.len(),
        0,
        "no request reached the loopback server"
    );
    assert!(out.contains("blocked 1"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_the_next_crawl_resumes_without_loss_or_duplicates() {
    let served = serve(16, 8, 17).await;
    let truth = served.web.truth();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Slow enough to be stopped halfway.
    let args = crawl_args(&served, &data, 4.0, &["--no-progress"]);
    let child = spawn_linkgraph(&args);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let first = sigterm(child).await;
    assert!(first.contains("interrupted"), "{first}");
    assert!(
        summary_number(&first, "queued") > 0,
        "stopped halfway\n{first}"
    );

    let second = linkgraph_ok(crawl_args(&served, &data, 50.0, &[])).await;
    assert!(second.contains("frontier empty"), "{second}");
    let new_edges = summary_edges(&first, "new") + summary_edges(&second, "new");
    assert_eq!(
        new_edges as usize,
        truth.edges.len(),
        "no edge stored twice"
    );
    // In-flight requests were finished before exiting: no URL fetched twice.
    let log = served.log.snapshot();
    let pages: Vec<String> = log
        .iter()
        .filter(|r| r.path != "/robots.txt")
        .map(|r| format!("{}{}", r.host, r.path))
        .collect();
    let unique: BTreeSet<&String> = pages.iter().collect();
    assert_eq!(pages.len(), unique.len(), "a URL was fetched twice");
    let domains: BTreeSet<String> = truth
        .edges
        .iter()
        .map(|l| l.target_domain().to_owned())
        .collect();
    let want: BTreeSet<Full> = truth.edges.iter().map(full).collect();
    assert_eq!(stored(&data, &domains, "live").await, want, "no URL lost");
}

/// `velocity DOMAIN` summed over its whole series: new + discovered links,
/// lost links, new + discovered refdomains, lost refdomains.
async fn velocity_totals(data: &std::path::Path, domain: &str) -> [u64; 4] {
    let v: serde_json::Value = serde_json::from_str(
        &linkgraph_ok(args(&[
            "velocity",
            domain,
            "--data",
            &data.display().to_string(),
            "--include-discovered",
            "--format",
            "json",
        ]))
        .await,
    )
    .unwrap();
    let mut t = [0u64; 4];
    for p in v["series"].as_array().unwrap() {
        let n = |k: &str| p[k].as_u64().unwrap_or(0);
        t[0] += n("new_links") + n("discovered_links");
        t[1] += n("lost_links");
        t[2] += n("new_refdomains") + n("discovered_refdomains");
        t[3] += n("lost_refdomains");
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_crawl_loses_and_duplicates_nothing() {
    let served = serve(16, 8, 23).await;
    let truth = served.web.truth();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Killed twice while writing, then run to the end.
    for wait_ms in [1200, 700] {
        let mut child = spawn_linkgraph(&crawl_args(&served, &data, 4.0, &["--no-progress"]));
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
    }
    let last = linkgraph_ok(crawl_args(&served, &data, 50.0, &[])).await;
    assert!(last.contains("frontier empty"), "{last}");
    assert!(
        summary_number(&last, "pages") > 0,
        "the kills left work: {last}"
    );
    assert_graph_equals(&data, &truth.edges).await;

    // The same web crawled without interruption records the same events:
    // a page written before a kill and fetched again adds none.
    let clean = dir.path().join("clean");
    linkgraph_ok(crawl_args(&served, &clean, 200.0, &[])).await;
    let domains: BTreeSet<String> = truth
        .edges
        .iter()
        .map(|l| l.target_domain().to_owned())
        .collect();
    for d in &domains {
        let (killed, want) = (
            velocity_totals(&data, d).await,
            velocity_totals(&clean, d).await,
        );
        assert_eq!(killed, want, "events of {d}");
        assert_eq!((killed[1], killed[3]), (0, 0), "nothing lost: {d}");
    }
}

/// A one-host site of `pages` pages that all link each other, answering
/// every request after `delay` and counting how many it serves at once.
async fn slow_site(
    pages: usize,
    delay: Duration,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, m) = (Arc::clone(&now), Arc::clone(&most));
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (n, m) = (Arc::clone(&n), Arc::clone(&m));
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 2048];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16_384 {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let at = n.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(at, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                n.fetch_sub(1, Ordering::SeqCst);
                let (status, body) = if path == "/robots.txt" {
                    ("404 Not Found", String::new())
                } else {
                    let links: String = (0..pages)
                        .map(|i| format!("<a href=\"/p/{i}\">page {i}</a> "))
                        .collect();
                    ("200 OK", format!("<html><body>{links}</body></html>"))
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (addr, now, most)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_host_concurrency_is_what_the_flag_says() {
    use std::sync::atomic::Ordering;
    for (flag, want) in [(None, 1), (Some("4"), 4)] {
        let (addr, _, most) = slow_site(24, Duration::from_millis(150)).await;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut a = args(&[
            "crawl",
            "--seeds",
            "http://own.test/",
            "--data",
            &data.display().to_string(),
            "--resolve",
            &format!("own.test={addr}"),
            "--allow-private-networks",
            "--per-host-rps",
            "100",
            "--per-ip-concurrency",
            "0",
            "--concurrency",
            "32",
        ]);
        if let Some(n) = flag {
            a.extend(args(&["--per-host-concurrency", n]));
        }
        let out = linkgraph_ok(a).await;
        // robots.txt, the home page and 24 pages.
        assert_eq!(summary_number(&out, "pages"), 25, "{out}");
        assert_eq!(
            most.load(Ordering::SeqCst),
            want,
            "requests at once to one host with {flag:?}"
        );
    }
}
