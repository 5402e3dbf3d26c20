//! The overview web page in a real browser: headless Chromium (Debian's
//! `chromium` and `chromium-driver`) driven over WebDriver against
//! `linkgraph serve` on a crawled simulated web. The headline figures, the
//! weekly chart, the paged and sorted tables and the CSV downloads are
//! checked against the CLI's own output; a crawled page whose anchor is
//! `<script>alert(1)</script>` must render as text; a domain with 100,000
//! backlinks must open without loading them all.
//!
//! `make test` installs Chromium and its driver when missing; without them
//! these tests fail and say so (they never skip).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use linkgraph_core::parse_time;
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;

/// Finds a program on PATH, or panics with how to install it.
fn program(names: &[&str], package: &str) -> PathBuf {
    for name in names {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{names:?} not found: install Debian's {package} (make test does)");
}

/// A headless Chromium session. The driver leads its own process group, and
/// the whole group (the driver and the Chromium it started) is killed on
/// drop: killing only the driver left Chromium running after the suite.
struct Browser {
    client: Client,
    driver: Child,
    downloads: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let killed = Command::new("kill")
            .args(["-KILL", "--", &group])
            .status()
            .is_ok_and(|s| s.success());
        if !killed {
            let _ = self.driver.kill();
        }
        let _ = self.driver.wait();
    }
}

async fn browser() -> Browser {
    let driver_bin = program(&["chromedriver"], "chromium-driver");
    let chromium = program(&["chromium", "chromium-browser"], "chromium");
    let port = free_port();
    let downloads = tempfile::tempdir().unwrap();
    let driver = Command::new(driver_bin)
        .arg(format!("--port={port}"))
        // Chromium's own temporary directories (its singleton socket) go
        // with the session's directory: killed, it leaves them behind.
        .env("TMPDIR", downloads.path())
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(format!("{url}/status")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = downloads.path().join("profile");
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1366,900", "--no-first-run", "--disable-extensions",
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {
                "download.default_directory": downloads.path().display().to_string(),
                "download.prompt_for_download": false,
            },
        }
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot start headless chromium through chromedriver: {e}"));
    Browser {
        client,
        driver,
        downloads,
    }
}

/// Waits until `script` (a JS expression) is true in the page.
async fn wait_for(c: &Client, script: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = c
            .execute(&format!("return !!({script});"), vec![])
            .await
            .unwrap_or(Value::Bool(false));
        if v == Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Evaluates a JS expression in the page.
async fn js(c: &Client, expr: &str) -> Value {
    c.execute(&format!("return {expr};"), vec![]).await.unwrap()
}

/// The text of every cell of a table's body, row by row.
async fn table_rows(c: &Client, table: &str) -> Vec<Vec<String>> {
    let v = js(
        c,
        &format!(
            "[...document.querySelectorAll('[data-table=\"{table}\"] tbody tr')].map(tr => [...tr.cells].map(td => td.textContent))"
        ),
    )
    .await;
    serde_json::from_value(v).unwrap()
}

/// Whether a table has finished loading its page.
fn loaded(table: &str) -> String {
    format!(
        "document.querySelector('[data-table=\"{table}\"]') && !document.querySelector('[data-table=\"{table}\"]').hasAttribute('aria-busy') && document.querySelectorAll('[data-table=\"{table}\"] tbody tr').length > 0"
    )
}

/// Opens the overview of `domain` and waits for its first screen.
async fn open_overview(c: &Client, base: &str, domain: &str) {
    c.goto(&format!("{base}/domain/{domain}")).await.unwrap();
    wait_for(
        c,
        &format!("document.body.dataset.loaded === '{domain}'"),
        "the overview",
    )
    .await;
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Waits for a file named `name` to be fully downloaded into `dir`.
async fn downloaded(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    for _ in 0..400 {
        let partial = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".crdownload"));
        if path.is_file() && !partial {
            return std::fs::read_to_string(&path).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} was never downloaded into {}", dir.display());
}

/// `linkgraph serve` on a free port; killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve_data(data: &Path, now_ms: i64, extra: &[&str]) -> Server {
    // reqwest is built without a default TLS provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_linkgraph"))
        .args(["serve", "--data", &data.display().to_string()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("LINKGRAPH_LOG", "warn")
        .envs(env_at(now_ms))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if reqwest::get(format!("{}/healthz", server.base))
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("linkgraph serve never answered on {}", server.base);
}

/// A site of one page whose links carry hostile anchors, pointing at
/// `target`.
async fn hostile_site(target: String) -> SocketAddr {
    let route = move |host: &str, path: &str| {
        let body = match (host, path) {
            ("xss.test", "/") => format!(
                "<html><body><p><a href=\"{target}\">&lt;script&gt;alert(1)&lt;/script&gt;</a> \
                 <a href=\"{target}#x\"><img alt='\"&gt;&lt;img src=x onerror=alert(2)&gt;'></a></p></body></html>"
            ),
            _ => String::new(),
        };
        let status = if body.is_empty() {
            "404 Not Found"
        } else {
            "200 OK"
        };
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    linkgraph_simweb::raw::serve_raw(route, Duration::ZERO)
        .await
        .unwrap()
        .0
}

fn cli_json(out: &str) -> Value {
    serde_json::from_str(out).unwrap()
}

fn number(text: &str) -> u64 {
    text.replace(',', "")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_what_the_cli_says_and_keeps_anchors_inert() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let served = serve_config(linkgraph_simweb::SimConfig {
        hosts: 60,
        pages_per_host: 4,
        seed: 23,
        burst: Some(linkgraph_simweb::Burst {
            epoch: 1,
            target: 59,
        }),
        risk_patterns: false,
    })
    .await;
    // The domain shown: the burst's target, so its chart has discovered,
    // new and lost referring domains.
    let popular = served.web.hosts()[59].domain.clone();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.display().to_string();
    let base = parse_time("2026-03-02T12:00:00Z").unwrap();

    // Two crawls 40 days apart (the first discovers; in the second every
    // home page starts linking to the popular domain, a burst of new
    // referring domains), with a page of hostile anchors to the popular
    // domain's home page on a host of its own.
    let home = format!("http://{popular}/");
    let hostile = hostile_site(home.clone()).await;
    let crawl = |seeds: bool| {
        let mut a = args(&[
            "crawl",
            "--data",
            &data_s,
            "--resolve",
            &format!("xss.test={hostile}"),
            "--resolve",
            &format!("*={}", served.addr),
            "--allow-private-networks",
            "--per-host-rps",
            "200",
            "--concurrency",
            "32",
        ]);
        if seeds {
            a.extend(args(&[
                "--seeds",
                &served.web.seed_url(),
                "--seeds",
                "http://xss.test/",
            ]));
        }
        a
    };
    linkgraph_ok_env(crawl(true), env_at(base)).await;
    served.web.advance();
    linkgraph_ok_env(crawl(false), env_at(base + 40 * DAY)).await;
    let now = base + 42 * DAY;

    let cli = |a: &[&str]| {
        let mut v = args(a);
        v.extend(["--data".to_owned(), data_s.clone()]);
        linkgraph_ok_env(v, env_at(now))
    };
    let summary = cli_json(&cli(&["summary", &popular, "--format", "json"]).await);
    let refdomains = cli_json(&cli(&["refdomains", &popular, "--format", "json"]).await);
    let velocity =
        cli_json(&cli(&["velocity", &popular, "--bucket", "week", "--format", "json"]).await);
    let backlinks_csv = cli(&["backlinks", &popular, "--format", "csv"]).await;
    let anchors_csv = cli(&["anchors", &popular, "--format", "csv"]).await;
    let backlinks_jsonl = cli(&["backlinks", &popular, "--format", "jsonl"]).await;
    let backlinks: Vec<Value> = backlinks_jsonl.lines().map(cli_json).collect();
    let risk = cli_json(&cli(&["risk", &popular, "--format", "json"]).await);
    let disavow = cli(&["disavow", &popular]).await;
    // An allowed domain is never disavowed; --out writes the file.
    let first = risk["domains"][0]["domain"].as_str().unwrap().to_owned();
    let allow = dir.path().join("allow.txt");
    std::fs::write(&allow, format!("# partners\n{first}  # ours\n")).unwrap();
    let out = dir.path().join("disavow.txt");
    let (allow_s, out_s) = (allow.display().to_string(), out.display().to_string());
    cli(&["disavow", &popular, "--allow", &allow_s, "--out", &out_s]).await;
    let kept = std::fs::read_to_string(&out).unwrap();
    assert!(!kept.contains(&format!("domain:{first}\n")), "{kept}");
    assert_eq!(
        kept.lines().filter(|l| l.starts_with("domain:")).count() + 1,
        disavow.lines().filter(|l| l.starts_with("domain:")).count()
    );
    assert_eq!(
        summary["referring_domains"],
        refdomains["referring_domains"]
    );
    assert_eq!(summary["backlinks"].as_u64(), Some(backlinks.len() as u64));
    assert!(
        backlinks.len() > 60,
        "too few backlinks to page: {}",
        backlinks.len()
    );
    assert!(
        summary["new_refdomains"].as_u64() > Some(5),
        "the burst should bring new referring domains: {summary}"
    );

    let server = serve_data(&data, now, &[]).await;
    let b = browser().await;
    let c = &b.client;
    open_overview(c, &server.base, &popular).await;
    for t in [
        "refdomains",
        "backlinks",
        "anchors",
        "pages",
        "broken",
        "risk",
    ] {
        wait_for(c, &loaded(t), t).await;
    }
    wait_for(
        c,
        &format!("document.body.dataset.reclaimed === '{popular}'"),
        "the broken pages to reclaim",
    )
    .await;
    let reclaim = js(c, "document.getElementById('reclaim').textContent").await;
    assert!(
        reclaim
            .as_str()
            .is_some_and(|r| r.contains("answers 404") || r.contains("answers 410")),
        "{reclaim}"
    );
    let status = js(c, "document.getElementById('status').textContent").await;
    assert_eq!(status, "", "the page reported a failure");

    // Headline figures: the CLI's numbers.
    let fig = |name: &str| {
        let name = name.to_owned();
        async move {
            js(
                c,
                &format!("document.querySelector('[data-figure=\"{name}\"]').textContent"),
            )
            .await
            .as_str()
            .unwrap()
            .to_owned()
        }
    };
    for name in [
        "referring_domains",
        "backlinks",
        "new_refdomains",
        "lost_refdomains",
    ] {
        assert_eq!(
            Some(number(&fig(name).await)),
            summary[name].as_u64(),
            "{name}"
        );
    }
    let share = summary["follow_share"].as_f64().unwrap() * 100.0;
    let shown: f64 = fig("follow_share")
        .await
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(
        (shown - share).abs() <= 0.051,
        "follow share {shown}% for {share}"
    );
    assert_eq!(fig("authority").await, "not computed yet");

    // The chart: one bar per week in each series, as the CLI's weekly
    // velocity; the first crawl's week is discovery, not growth.
    let weeks = velocity["series"].as_array().unwrap();
    assert!(weeks.len() >= 6, "{} weeks", weeks.len());
    for series in ["a", "b", "c"] {
        let bars = js(
            c,
            &format!("document.querySelectorAll('#chart .ct-series-{series} .ct-bar').length"),
        )
        .await;
        assert_eq!(bars.as_u64(), Some(weeks.len() as u64), "series {series}");
    }
    let spikes = js(
        c,
        "document.querySelectorAll('#chart .ct-bar.lg-spike').length",
    )
    .await;
    let want_spikes = velocity["spikes"].as_array().unwrap().len();
    assert!(want_spikes > 0, "the burst is a spike: {velocity}");
    assert_eq!(spikes.as_u64(), Some(want_spikes as u64));
    assert_eq!(weeks[0]["new_refdomains"], 0);
    assert!(weeks[0]["discovered_refdomains"].as_u64() > Some(0));
    let week_rows: Vec<Vec<String>> = serde_json::from_value(
        js(c, "[...document.querySelectorAll('#weeks tbody tr')].map(tr => [...tr.cells].map(td => td.textContent))").await,
    )
    .unwrap();
    for (row, p) in week_rows.iter().zip(weeks) {
        assert_eq!(row[0], p["start"].as_str().unwrap()[..10]);
        assert_eq!(number(&row[1]), p["new_refdomains"].as_u64().unwrap());
        assert_eq!(
            number(&row[2]),
            p["discovered_refdomains"].as_u64().unwrap()
        );
        assert_eq!(number(&row[3]), p["lost_refdomains"].as_u64().unwrap());
    }

    // Paging reaches the last row: every backlink once, in the CLI's order.
    let mut seen = Vec::new();
    loop {
        for r in table_rows(c, "backlinks").await {
            seen.push((r[0].clone(), r[1].clone()));
        }
        let done = js(
            c,
            "document.querySelector('[data-table=\"backlinks\"] [data-action=next]').disabled",
        )
        .await;
        if done == Value::Bool(true) {
            break;
        }
        let before = js(
            c,
            "document.querySelector('[data-table=\"backlinks\"] .count').textContent",
        )
        .await;
        click(c, "[data-table=\"backlinks\"] [data-action=next]").await;
        wait_for(
            c,
            &format!(
                "document.querySelector('[data-table=\"backlinks\"] .count').textContent !== {before}"
            ),
            "the next page",
        )
        .await;
    }
    let want: Vec<(String, String)> = backlinks
        .iter()
        .map(|l| {
            (
                l["source_url"].as_str().unwrap().to_owned(),
                l["target_url"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(seen, want);

    // Each anchor's share of the referring domains.
    let total = summary["referring_domains"].as_f64().unwrap();
    for r in table_rows(c, "anchors").await {
        let share = 100.0 * number(&r[2]) as f64 / total;
        let shown: f64 = r[3].trim_end_matches('%').parse().unwrap();
        assert!((shown - share).abs() <= 0.051, "{r:?}: {share}");
    }

    // Sorting by a column, both ways.
    click(
        c,
        "[data-table=\"anchors\"] th[data-field=refdomains] button",
    )
    .await;
    wait_for(c, "document.querySelector('[data-table=\"anchors\"] th[data-field=refdomains]').getAttribute('aria-sort') === 'ascending'", "sort").await;
    wait_for(c, &loaded("anchors"), "sorted anchors").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asc: Vec<u64> = table_rows(c, "anchors")
        .await
        .iter()
        .map(|r| number(&r[2]))
        .collect();
    assert!(asc.windows(2).all(|w| w[0] <= w[1]), "{asc:?}");
    click(
        c,
        "[data-table=\"anchors\"] th[data-field=refdomains] button",
    )
    .await;
    wait_for(c, "document.querySelector('[data-table=\"anchors\"] th[data-field=refdomains]').getAttribute('aria-sort') === 'descending'", "sort").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let desc: Vec<u64> = table_rows(c, "anchors")
        .await
        .iter()
        .map(|r| number(&r[2]))
        .collect();
    assert!(desc.windows(2).all(|w| w[0] >= w[1]), "{desc:?}");
    assert!(desc.first() > asc.first(), "{asc:?} {desc:?}");

    // The hostile anchors are text in the table, and nothing ran.
    assert!(
        anchors_csv.contains("<script>alert(1)</script>"),
        "{anchors_csv}"
    );
    click(c, "[data-table=\"anchors\"] th[data-field=anchor] button").await;
    wait_for(c, "document.querySelector('[data-table=\"anchors\"] th[data-field=anchor]').getAttribute('aria-sort') === 'ascending'", "sort by anchor").await;
    wait_for(
        c,
        "[...document.querySelectorAll('[data-table=\"anchors\"] tbody td')].some(td => td.textContent === '<script>alert(1)</script>')",
        "the hostile anchor rendered as text",
    )
    .await;
    let scripts = js(c, "document.scripts.length").await;
    assert_eq!(scripts.as_u64(), Some(2), "only the page's own scripts");
    let injected = js(
        c,
        "document.querySelectorAll('main img, main script').length",
    )
    .await;
    assert_eq!(injected.as_u64(), Some(0));
    assert!(
        c.get_alert_text().await.is_err(),
        "an alert is open: a hostile anchor ran"
    );

    // CSV downloads are the CLI's CSV, byte for byte.
    click(c, "[data-table=\"backlinks\"] [data-action=csv]").await;
    let got = downloaded(b.downloads.path(), &format!("backlinks-{popular}.csv")).await;
    assert_eq!(got, backlinks_csv);
    click(c, "[data-table=\"anchors\"] [data-action=csv]").await;
    let got = downloaded(b.downloads.path(), &format!("anchors-{popular}.csv")).await;
    assert_eq!(got, anchors_csv);

    // Risk: the CLI's flagged domains and scores, in order, and the
    // disavow file it writes (but for the time it was made).
    let flagged = risk["domains"].as_array().unwrap();
    assert!(
        flagged.iter().any(|d| d["signals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "velocity_spike")),
        "the burst's domains arrived in a spike: {risk}"
    );
    let rows = table_rows(c, "risk").await;
    let want: Vec<(String, String)> = flagged
        .iter()
        .take(50)
        .map(|d| {
            (
                d["domain"].as_str().unwrap().to_owned(),
                d["score"].to_string(),
            )
        })
        .collect();
    let got: Vec<(String, String)> = rows.iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(got, want);
    assert!(
        rows[0][2].contains(": "),
        "signals with their evidence: {:?}",
        rows[0]
    );
    // ...and the CLI's notes of what the signals could not see.
    let notes = js(
        c,
        "[...document.querySelectorAll('[data-table=\"risk\"] .notes li')].map(li => li.textContent)",
    )
    .await;
    assert_eq!(notes, risk["notes"], "{risk}");
    assert!(!risk["notes"].as_array().unwrap().is_empty());
    click(c, "#disavow").await;
    let got = downloaded(b.downloads.path(), &format!("disavow-{popular}.txt")).await;
    let want = disavow.clone();
    let body = |t: &str| t.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(body(&got), body(&want));
    assert_eq!(
        want.lines().filter(|l| l.starts_with("domain:")).count(),
        flagged.len()
    );

    // The screenshot, kept as a test artifact, once everything is in.
    open_overview(c, &server.base, &popular).await;
    wait_for(
        c,
        &format!("document.body.dataset.reclaimed === '{popular}'"),
        "the whole page",
    )
    .await;
    let height = js(c, "document.documentElement.scrollHeight").await;
    c.set_window_size(1366, height.as_u64().unwrap_or(900).min(8000) as u32)
        .await
        .unwrap();
    let png = c.screenshot().await.unwrap();
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("overview.png");
    std::fs::write(&shot, png).unwrap();
    eprintln!("screenshot of the overview: {}", shot.display());

    // Usable by keyboard: type a domain and press Enter.
    let other = served
        .web
        .hosts()
        .iter()
        .map(|h| linkgraph_core::registrable_domain(&h.name).to_owned())
        .find(|d| *d != popular)
        .unwrap();
    let input = c.find(Locator::Id("domain-input")).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(&format!("{other}\n")).await.unwrap();
    wait_for(
        c,
        &format!("document.body.dataset.loaded === '{other}'"),
        "the typed domain",
    )
    .await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        format!("/domain/{other}")
    );

    // Behind a token, the page asks for it once and then shows the data.
    drop(server);
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let token_arg = token_file.display().to_string();
    let server = serve_data(&data, now, &["--auth-token-file", &token_arg]).await;
    c.goto(&format!("{}/domain/{popular}", server.base))
        .await
        .unwrap();
    wait_for(
        c,
        "!document.getElementById('auth').hidden",
        "the token form",
    )
    .await;
    let input = c.find(Locator::Id("token-input")).await.unwrap();
    input.send_keys("s3cret-token\n").await.unwrap();
    wait_for(
        c,
        &format!("document.body.dataset.loaded === '{popular}' && document.getElementById('status').textContent === ''"),
        "the overview behind a token",
    )
    .await;
    let shown = js(
        c,
        "document.querySelector('[data-figure=\"referring_domains\"]').textContent",
    )
    .await;
    assert_eq!(
        Some(number(shown.as_str().unwrap())),
        summary["referring_domains"].as_u64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_with_100k_backlinks_opens_without_loading_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let now = parse_time("2026-03-02T12:00:00Z").unwrap();
    {
        let url = linkgraph_store::data_store_url(&data);
        let store = linkgraph_store::open(&url, true).await.unwrap();
        // 2,000 pages on 400 domains, 50 links each to big.test: 100,000
        // backlinks.
        let targets: Vec<String> = (0..50).map(|i| format!("http://big.test/p/{i}")).collect();
        let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
        let mut writes = Vec::new();
        for p in 0..2_000 {
            let source = format!("http://s{}.test/{p}", p % 400);
            let page = linkgraph_store::PageWrite {
                url: source.clone(),
                status: 200,
                outcome: 1,
                fetched_at_ms: now,
                content_hash: 0,
                noindex: false,
                remote_ip: None,
                update: linkgraph_store::LinkSetUpdate::Replace,
                links: targets
                    .iter()
                    .enumerate()
                    .map(|(i, t)| linkgraph_core::Link {
                        source_url: source.clone(),
                        target_url: (*t).to_owned(),
                        anchor: format!("anchor {}", i % 7),
                        rel: linkgraph_core::Rel::follow(),
                        placement: linkgraph_core::Placement::Content,
                        kind: linkgraph_core::LinkKind::Link,
                    })
                    .collect(),
            };
            writes.push(store.write_page(page));
            if writes.len() == 16 {
                for w in writes.drain(..) {
                    w.await.unwrap();
                }
            }
        }
        for w in writes {
            w.await.unwrap();
        }
    }
    let server = serve_data(&data, now + DAY, &[]).await;
    let b = browser().await;
    let c = &b.client;
    let started = Instant::now();
    c.goto(&format!("{}/domain/big.test", server.base))
        .await
        .unwrap();
    wait_for(
        c,
        "document.body.dataset.loaded === 'big.test'",
        "the overview",
    )
    .await;
    wait_for(c, &loaded("backlinks"), "backlinks").await;
    let took = started.elapsed();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    eprintln!("a domain with 100,000 backlinks opened in {took:?} ({profile} build)");
    let backlinks = js(
        c,
        "document.querySelector('[data-figure=backlinks]').textContent",
    )
    .await;
    assert_eq!(backlinks, "100,000");
    let refdomains = js(
        c,
        "document.querySelector('[data-figure=referring_domains]').textContent",
    )
    .await;
    assert_eq!(refdomains, "400");
    // The tables further down follow; one page of each is in the page,
    // never every row.
    wait_for(
        c,
        "document.body.dataset.reclaimed === 'big.test'",
        "the whole page",
    )
    .await;
    assert_eq!(table_rows(c, "anchors").await.len(), 7);
    assert_eq!(table_rows(c, "pages").await.len(), 50);
    let rows = js(c, "document.querySelectorAll('tbody tr').length").await;
    assert!(rows.as_u64().unwrap() < 500, "{rows} rows in the page");
    assert_eq!(table_rows(c, "backlinks").await.len(), 50);
}
