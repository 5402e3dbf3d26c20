//! End to end: the link-intelligence reports (anchors, pages, broken,
//! outlinks, intersect) against the simulated web's ground truth, through
//! the CLI and through the HTTP API served by `crawl --listen` while it
//! crawls (paging under concurrent writes) and by `serve` (auth, slow
//! clients).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use common::*;
use linkgraph_core::{Link, registrable_domain, url_host};
use linkgraph_simweb::Truth;
use serde_json::Value;

/// Waits until something answers /healthz on `port`.
async fn wait_healthy(port: u16, what: &str) {
    for _ in 0..100 {
        if reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never served on port {port}");
}

fn external(truth: &Truth) -> Vec<&Link> {
    truth.edges.iter().filter(|l| !l.is_internal()).collect()
}

fn status_of(truth: &Truth, url: &str) -> Option<u64> {
    truth.statuses.get(url).map(|s| u64::from(*s))
}

/// (key, links, refdomains, follow) groups of `links` by `key`.
fn groups<'a>(
    links: impl Iterator<Item = &'a &'a Link>,
    key: impl Fn(&Link) -> String,
) -> BTreeMap<String, (u64, u64, u64)> {
    let mut m: BTreeMap<String, (u64, BTreeSet<String>, u64)> = BTreeMap::new();
    for l in links {
        let e = m.entry(key(l)).or_default();
        e.0 += 1;
        e.1.insert(l.source_domain().to_owned());
        e.2 += u64::from(l.rel.is_follow());
    }
    m.into_iter()
        .map(|(k, (n, d, f))| (k, (n, d.len() as u64, f)))
        .collect()
}

async fn get_json(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let code = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (code, serde_json::from_str(&text).unwrap_or_default())
}

/// Every row of a paged endpoint, following next_cursor.
async fn all_pages(base: &str, limit: usize) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor = String::new();
    loop {
        let (code, body) = get_json(&format!("{base}&limit={limit}{cursor}")).await;
        assert_eq!(code, 200, "{base}: {body}");
        rows.extend(body["links"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return rows,
        }
    }
}

fn key(v: &Value) -> (String, String) {
    (
        v["target_url"].as_str().unwrap().to_owned(),
        v["source_url"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_match_ground_truth_and_the_api_pages_under_writes() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let served = serve(24, 12, 7).await;
    let truth = served.web.truth();
    let popular = registrable_domain(served.web.hosts()[0].name.as_str()).to_owned();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let api = format!("http://127.0.0.1:{port}/v1");

    // Crawl slowly with the API on, and page through the popular domain's
    // backlinks while the crawl writes.
    let args = crawl_args(
        &served,
        &data,
        8.0,
        &["--listen", &format!("127.0.0.1:{port}"), "--no-progress"],
    );
    let crawl = spawn_linkgraph(&args);
    wait_healthy(port, "crawl --listen").await;
    let mut traversals = 0;
    while traversals < 3 {
        let (code, _) = get_json(&format!("{api}/refdomains?target={popular}")).await;
        if code == 404 {
            // Nothing links to it yet.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let base = format!("{api}/backlinks?target={popular}&status=all");
        let before: BTreeSet<(String, String)> =
            all_pages(&base, 10_000).await.iter().map(key).collect();
        let paged: Vec<(String, String)> = all_pages(&base, 7).await.iter().map(key).collect();
        // Keyset order: strictly increasing, so no row twice, and every row
        // that existed when paging began is there (rows are never deleted).
        assert!(
            paged.windows(2).all(|w| w[0] < w[1]),
            "rows out of order or repeated"
        );
        let got: BTreeSet<_> = paged.into_iter().collect();
        assert!(
            before.is_subset(&got),
            "paging lost {:?}",
            before.difference(&got).next()
        );
        traversals += 1;
    }
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("linkgraph_api_requests_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("linkgraph_fetcher_"),
        "the crawl's metrics are served too"
    );
    let out = tokio::task::spawn_blocking(move || crawl.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_graph_equals(&data, &truth.edges).await;

    let ext = external(&truth);
    let data_s = data.display().to_string();
    let cli = |args: &[&str]| {
        let mut a: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        a.extend(["--data".into(), data_s.clone()]);
        a
    };
    let domains: BTreeSet<String> = served
        .web
        .hosts()
        .iter()
        .map(|h| h.domain.clone())
        .collect();

    // Anchors and top pages of the popular domain, exactly, in order.
    let to_pop = || ext.iter().filter(|l| l.target_domain() == popular);
    let want = groups(to_pop(), |l| l.anchor.clone());
    let doc: Value =
        serde_json::from_str(&linkgraph_ok(cli(&["anchors", &popular, "--format", "json"])).await)
            .unwrap();
    assert_eq!(doc["target"], popular.as_str());
    let rows = doc["anchors"].as_array().unwrap();
    let got: BTreeMap<String, (u64, u64, u64)> = rows
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            (
                r["anchor"].as_str().unwrap().to_owned(),
                (n("links"), n("refdomains"), n("follow_links")),
            )
        })
        .collect();
    assert_eq!(got, want);
    let order: Vec<(u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["refdomains"].as_u64().unwrap(),
                r["links"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] >= w[1]), "{order:?}");
    assert!(
        want.keys().any(|a| a.starts_with("Banner for")),
        "image alt anchors"
    );

    let want = groups(to_pop(), |l| l.target_url.clone());
    let doc: Value =
        serde_json::from_str(&linkgraph_ok(cli(&["pages", &popular, "--format", "json"])).await)
            .unwrap();
    let rows = doc["pages"].as_array().unwrap();
    assert_eq!(rows.len(), want.len());
    for r in rows {
        let url = r["url"].as_str().unwrap();
        let n = |k: &str| r[k].as_u64().unwrap();
        assert_eq!(
            Some(&(n("links"), n("refdomains"), n("follow_links"))),
            want.get(url),
            "{url}"
        );
        assert_eq!(r["http_status"].as_u64(), status_of(&truth, url), "{url}");
    }

    // The API serves the CLI's JSON.
    let cli_doc: Value =
        serde_json::from_str(&linkgraph_ok(cli(&["anchors", &popular, "--format", "json"])).await)
            .unwrap();

    // The same data served by `serve` now that the crawl is done.
    let port2 = free_port();
    let server = spawn_linkgraph(&[
        "serve".into(),
        "--data".into(),
        data_s.clone(),
        "--listen".into(),
        format!("127.0.0.1:{port2}"),
        "--api-header-timeout".into(),
        "1s".into(),
    ]);
    let api2 = format!("http://127.0.0.1:{port2}/v1");
    wait_healthy(port2, "serve").await;

    // Broken links, both ways, and outlinks, for every domain of the web.
    let (mut inbound, mut outbound) = (0, 0);
    for d in &domains {
        let dead = |l: &&&Link| matches!(status_of(&truth, &l.target_url), Some(404 | 410));
        let mut want_in: Vec<(String, String, u64)> = ext
            .iter()
            .filter(|l| l.target_domain() == d)
            .filter(dead)
            .map(|l| {
                (
                    l.target_url.clone(),
                    l.source_url.clone(),
                    status_of(&truth, &l.target_url).unwrap(),
                )
            })
            .collect();
        want_in.sort();
        let got_in: Vec<(String, String, u64)> = all_pages(&format!("{api2}/broken?target={d}"), 3)
            .await
            .iter()
            .map(|v| {
                let (t, s) = key(v);
                (t, s, v["http_status"].as_u64().unwrap())
            })
            .collect();
        assert_eq!(got_in, want_in, "broken inbound of {d}");
        inbound += got_in.len();

        let from_d = || ext.iter().filter(|l| l.source_domain() == d);
        let mut want_out: Vec<(String, String)> = from_d()
            .filter(dead)
            .map(|l| (l.source_url.clone(), l.target_url.clone()))
            .collect();
        want_out.sort();
        let got_out: Vec<(String, String)> = all_pages(
            &format!("{api2}/broken?target={d}&direction=outbound"),
            1000,
        )
        .await
        .iter()
        .map(|v| {
            let (t, s) = key(v);
            (s, t)
        })
        .collect();
        assert_eq!(got_out, want_out, "broken outbound of {d}");
        outbound += got_out.len();

        let want = groups(from_d(), |l| {
            registrable_domain(url_host(&l.target_url)).to_owned()
        });
        let (code, doc) = get_json(&format!("{api2}/outlinks?target={d}&limit=10000")).await;
        assert_eq!(code, 200, "{doc}");
        assert_eq!(
            doc["linked_domains"].as_u64(),
            Some(want.len() as u64),
            "{d}"
        );
        let got: BTreeMap<String, (u64, u64)> = doc["domains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["domain"].as_str().unwrap().to_owned(),
                    (
                        r["links"].as_u64().unwrap(),
                        r["follow_links"].as_u64().unwrap(),
                    ),
                )
            })
            .collect();
        let want: BTreeMap<String, (u64, u64)> =
            want.into_iter().map(|(k, (n, _, f))| (k, (n, f))).collect();
        assert_eq!(got, want, "outlinks of {d}");
    }
    assert!(
        inbound > 3 && outbound > 3,
        "too few broken links to judge: {inbound} in, {outbound} out"
    );

    let (code, mut api_doc) = get_json(&format!("{api2}/anchors?target={popular}")).await;
    // The API pages the rows; the whole report fits one page.
    let next = api_doc
        .as_object_mut()
        .and_then(|o| o.remove("next_cursor"));
    assert_eq!(next, Some(Value::Null));
    assert_eq!((code, &api_doc), (200, &cli_doc));
    let (code, spec) = get_json(&format!("{api2}/openapi.json")).await;
    assert_eq!(code, 200);
    for e in [
        "refdomains",
        "backlinks",
        "velocity",
        "anchors",
        "pages",
        "broken",
        "outlinks",
        "intersect",
    ] {
        assert!(spec["paths"][format!("/v1/{e}")].is_object(), "{e}");
    }
    let (code, body) = get_json(&format!("{api2}/backlinks?target={popular}&colour=red")).await;
    assert_eq!(code, 400);
    assert!(body["error"].as_str().unwrap().contains("colour"), "{body}");
    // A client that never finishes its request head is cut off.
    let slow = tokio::net::TcpStream::connect(("127.0.0.1", port2))
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut slow = slow;
        slow.write_all(b"GET /v1/anchors?target=x HTTP/1.1\r\n")
            .await
            .unwrap();
        slow.read(&mut buf).await
    })
    .await;
    assert!(
        read.is_ok(),
        "a slow client held its connection past the header timeout"
    );
    sigterm(server).await;

    // Link intersect of the two most linked domains, excluding the least linked one.
    let rd = expected_refdomains(&truth.edges);
    let mut by_size: Vec<(&String, usize)> = rd.iter().map(|(d, r)| (d, r.len())).collect();
    by_size.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    // Exclude the least linked domain: its few referring domains drop out.
    let (t1, t2, ex) = (by_size[0].0, by_size[1].0, by_size[by_size.len() - 1].0);
    let links_from = |target: &str| -> HashMap<String, u64> {
        let mut m = HashMap::new();
        for l in ext.iter().filter(|l| l.target_domain() == target) {
            *m.entry(l.source_domain().to_owned()).or_default() += 1;
        }
        m
    };
    let (l1, l2, lx) = (links_from(t1), links_from(t2), links_from(ex));
    let want: BTreeMap<String, (u64, u64)> = l1
        .iter()
        .filter(|(d, _)| l2.contains_key(*d) && !lx.contains_key(*d))
        .filter(|(d, _)| *d != t1 && *d != t2 && *d != ex)
        .map(|(d, n)| (d.clone(), (*n, l2[d])))
        .collect();
    let doc: Value = serde_json::from_str(
        &linkgraph_ok(cli(&[
            "intersect",
            t1,
            t2,
            "--exclude",
            ex,
            "--format",
            "json",
        ]))
        .await,
    )
    .unwrap();
    let got: BTreeMap<String, (u64, u64)> = doc["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["targets_linked"], 2);
            (
                r["domain"].as_str().unwrap().to_owned(),
                (
                    r["links"][t1].as_u64().unwrap(),
                    r["links"][t2].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert!(!want.is_empty(), "an empty intersect proves little");

    // With --auth-token-file, a request needs the token (health checks do not).
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "t0ken-for-tests\n").unwrap();
    let port3 = free_port();
    let guarded = spawn_linkgraph(&[
        "serve".into(),
        "--data".into(),
        data_s.clone(),
        "--listen".into(),
        format!("127.0.0.1:{port3}"),
        "--auth-token-file".into(),
        token_file.display().to_string(),
    ]);
    wait_healthy(port3, "serve --auth-token-file").await;
    let url = format!("http://127.0.0.1:{port3}/v1/pages?target={popular}");
    let (code, body) = get_json(&url).await;
    assert_eq!(code, 401, "{body}");
    let client = reqwest::Client::new();
    let with = |token: &str| client.get(&url).bearer_auth(token).send();
    assert_eq!(with("wrong").await.unwrap().status().as_u16(), 401);
    assert_eq!(
        with("t0ken-for-tests").await.unwrap().status().as_u16(),
        200
    );
    let said = sigterm(guarded).await;
    assert!(!said.contains("t0ken"), "the token is never printed");

    // Outside loopback, serve refuses to start without an auth decision.
    let refused = linkgraph(vec![
        "serve".into(),
        "--data".into(),
        data_s.clone(),
        "--listen".into(),
        "0.0.0.0:0".into(),
    ])
    .await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--auth-token-file"));
}
