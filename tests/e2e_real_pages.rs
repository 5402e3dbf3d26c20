//! Real-web shapes end to end: the binary crawls the in-repo page corpus
//! (non-ASCII hrefs, noscript, legacy encodings, broken markup) served on
//! loopback, and the data directory is read while a crawl holds it and by
//! two readers at once.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Serves `pages` (path -> body) for every host; unknown paths get a small
/// page. `slow` delays every page but robots.txt by that long.
async fn serve_pages(pages: HashMap<String, Vec<u8>>, slow: Duration) -> SocketAddr {
    let route = move |_: &str, path: &str| {
        let (status, body) = match pages.get(path) {
            Some(b) => ("200 OK", b.clone()),
            None if path == "/robots.txt" => ("404 Not Found", Vec::new()),
            None => ("200 OK", format!("<p>page {path}</p>").into_bytes()),
        };
        let mut resp = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        resp.extend_from_slice(&body);
        resp
    };
    linkgraph_simweb::raw::serve_raw(route, slow)
        .await
        .unwrap()
        .0
}

/// The corpus pages, plus a home page linking to each of them.
fn corpus_site() -> HashMap<String, Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut pages = HashMap::new();
    let mut home = String::from("<meta charset=utf-8><h1>corpus</h1>");
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".html") {
            home.push_str(&format!("<a href=\"/{name}\">{name}</a>\n"));
            pages.insert(format!("/{name}"), std::fs::read(e.path()).unwrap());
        }
    }
    // The page that once ended every crawl, linked from the home page.
    home.push_str("<a href=\"/caf\u{e9}\">Caf\u{e9}</a><a href=\"/\u{441}\u{442}\u{430}\u{442}\u{44c}\u{44f}\">x</a>");
    pages.insert("/".into(), home.into_bytes());
    pages
}

fn crawl(addr: SocketAddr, data: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "crawl",
        "--seeds",
        "http://corpus.test/",
        "--data",
        &data.display().to_string(),
        "--resolve",
        &format!("*={addr}"),
        "--allow-private-networks",
        "--per-host-rps",
        "200",
        "--max-depth",
        "1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_crawls_to_the_end() {
    let addr = serve_pages(corpus_site(), Duration::ZERO).await;
    let data = tempfile::tempdir().unwrap();
    let summary = linkgraph_ok(crawl(addr, data.path(), &[])).await;
    let corpus_pages = corpus_site().len() as u64;
    assert!(
        summary_number(&summary, "pages") >= corpus_pages,
        "{summary}"
    );
    assert!(!summary.contains("internal_error"), "{summary}");
    let backlinks = |target: &str, internal: bool| {
        let mut a: Vec<String> = ["backlinks", target, "--format", "jsonl", "--data"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        a.push(data.path().display().to_string());
        if internal {
            a.push("--include-internal".into());
        }
        linkgraph_ok(a)
    };
    // The non-ASCII link is stored, percent-encoded, with its anchor.
    let out = backlinks("http://corpus.test/caf%C3%A9", true).await;
    assert!(out.contains("\"anchor\":\"Café\""), "{out}");
    // A comment link from a page whose <body> carries a comment flag, and a
    // link found only inside <noscript>.
    let out = backlinks("bakerbob.example", false).await;
    assert!(out.contains("\"placement\":\"comment\""), "{out}");
    let out = backlinks("browser.example", false).await;
    assert!(out.contains("get a browser"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_queue_for_each_other_and_fail_fast_behind_a_crawl() {
    let addr = serve_pages(corpus_site(), Duration::ZERO).await;
    let data = tempfile::tempdir().unwrap();
    linkgraph_ok(crawl(addr, data.path(), &[])).await;
    // Three readers at once: all succeed (some wait for the others).
    let children: Vec<_> = (0..3)
        .map(|_| {
            spawn_linkgraph(&[
                "backlinks".to_owned(),
                "corpus.test".to_owned(),
                "--include-internal".to_owned(),
                "--data".to_owned(),
                data.path().display().to_string(),
            ])
        })
        .collect();
    for c in children {
        let out = tokio::task::spawn_blocking(move || c.wait_with_output().unwrap())
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "a concurrent read failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A crawl that holds the store (slow pages keep it running).
    let slow = serve_pages(corpus_site(), Duration::from_millis(400)).await;
    let crawl_data = tempfile::tempdir().unwrap();
    let crawling = spawn_linkgraph(&crawl(slow, crawl_data.path(), &["--concurrency", "1"]));
    let lock = crawl_data.path().join("store.lock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&lock).map_or(true, |s| !s.contains("write")) {
        assert!(Instant::now() < deadline, "the crawl never took the store");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let out = linkgraph(vec![
        "refdomains".into(),
        "corpus.test".into(),
        "--data".into(),
        crawl_data.path().display().to_string(),
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a read got a store held by a crawl");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it did not fail fast"
    );
    assert!(
        err.contains("being written by pid") && err.contains("crawl") && err.contains("SIGTERM"),
        "{err}"
    );
    // Give the crawl time to install its signal handler, then stop it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    sigterm(crawling).await;
    // Once the crawl is stopped, the same read works.
    linkgraph_ok(vec![
        "refdomains".into(),
        "corpus.test".into(),
        "--data".into(),
        crawl_data.path().display().to_string(),
    ])
    .await;
}
