//! End-to-end crawl benchmark: the release `linkgraph crawl` against a
//! simulated web of `LINKGRAPH_BENCH_HOSTS` x `LINKGRAPH_BENCH_PAGES` pages
//! (default 1,000 x 100 = 100,000) on loopback.
//!
//! Baseline, measured in the same run against the same server: a plain
//! reqwest client GETting every HTML page at the same concurrency, with no
//! robots.txt, politeness, parsing or store. The ratio says how much of the
//! raw HTTP throughput of this machine the full crawler keeps.
//!
//! This machine's speed moves by a third between runs, so the bench makes
//! `LINKGRAPH_BENCH_RUNS` (default 3) baseline + crawl pairs, back to back,
//! and prints each pair's ratio and their median: compare medians, never
//! two single runs.
//!
//! Then the last run's data directory is recrawled two days later, when
//! every page is due (the simulated web answers 304 to a page's validators,
//! so nothing changed): its pages/s against that first crawl's, the
//! store's size before and after, and how long a `refdomains` query takes
//! on it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

#[path = "common/disk.rs"]
mod disk;

use linkgraph_simweb::{SimConfig, SimWeb};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let hosts = env_usize("LINKGRAPH_BENCH_HOSTS", 1000);
    let pages = env_usize("LINKGRAPH_BENCH_PAGES", 100);
    let concurrency = env_usize("LINKGRAPH_BENCH_CONCURRENCY", 128);
    let web = Arc::new(SimWeb::new(SimConfig {
        hosts,
        pages_per_host: pages,
        seed: 1,
        ..SimConfig::default()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(linkgraph_simweb::serve(
        listener,
        Arc::clone(&web),
        None,
        std::future::pending(),
    ));
    println!(
        "simulated web: {hosts} hosts x {pages} pages = {} pages, concurrency {concurrency}",
        hosts * pages
    );

    // The baseline GETs every HTML page with a plain client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(2);
    for h in web.hosts() {
        builder = builder.resolve(&h.name, addr);
    }
    let client = builder.build().unwrap();
    let urls: Vec<String> = web
        .hosts()
        .iter()
        .flat_map(|h| {
            (0..pages).map(move |p| {
                if p == 0 {
                    format!("http://{}/", h.name)
                } else {
                    format!("http://{}/articles/{p}", h.name)
                }
            })
        })
        .collect();
    let runs = env_usize("LINKGRAPH_BENCH_RUNS", 3).max(1);
    let mut ratios = Vec::with_capacity(runs);
    let mut last = None;
    for run in 1..=runs {
        println!("run {run} of {runs}");
        let base_rps = baseline(&client, &urls, concurrency).await;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let pps = crawl(&web, addr, concurrency, &data, None).await;
        last = Some((dir, data, pps));
        println!(
            "crawl / baseline throughput: {:.2} ({pps:.0} vs {base_rps:.0} requests/s)",
            pps / base_rps
        );
        ratios.push((pps / base_rps, pps, base_rps));
    }
    if runs > 1 {
        ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (ratio, pps, base_rps) = ratios[runs / 2];
        let all: Vec<String> = ratios.iter().map(|r| format!("{:.2}", r.0)).collect();
        println!(
            "median of {runs} runs: crawl / baseline {ratio:.2} (that run: {pps:.0} vs {base_rps:.0} requests/s; all: {})",
            all.join(", ")
        );
    }
    if let Some((_dir, data, first_pps)) = last {
        recrawl(&web, addr, concurrency, &data, first_pps).await;
    }
}

/// Recrawls `data` two days after its crawl (at `first_pps`), and times a
/// query on it.
async fn recrawl(
    web: &Arc<SimWeb>,
    addr: std::net::SocketAddr,
    concurrency: usize,
    data: &Path,
    first_pps: f64,
) {
    let store = data.join("store");
    let before = disk::disk_bytes(&store).0;
    let later = linkgraph_core::format_rfc3339_ms(linkgraph_core::now_ms() + 2 * 86_400_000);
    let pps = crawl(web, addr, concurrency, data, Some(&later)).await;
    println!(
        "recrawl / first crawl: {:.2} ({pps:.0} vs {first_pps:.0} pages/s); store {} MiB after the crawl, {} MiB after the recrawl",
        pps / first_pps,
        before >> 20,
        disk::disk_bytes(&store).0 >> 20
    );
    let domain = linkgraph_core::registrable_domain(&web.hosts()[0].name).to_owned();
    let t0 = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_linkgraph"))
        .args(["refdomains", &domain, "--data"])
        .arg(data)
        .env("LINKGRAPH_NOW", &later)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "query after the recrawl (linkgraph refdomains {domain}): {:.2} s",
        t0.elapsed().as_secs_f64()
    );
}

/// Raw GETs of every HTML page at `concurrency`; returns pages/s.
async fn baseline(client: &reqwest::Client, urls: &[String], concurrency: usize) -> f64 {
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    let t0 = Instant::now();
    for u in urls {
        let (c, u, permit) = (
            client.clone(),
            u.clone(),
            Arc::clone(&sem).acquire_owned().await.unwrap(),
        );
        set.spawn(async move {
            let _p = permit;
            let r = c.get(&u).send().await.unwrap();
            r.bytes().await.unwrap().len()
        });
    }
    let mut bytes = 0usize;
    while let Some(n) = set.join_next().await {
        bytes += n.unwrap();
    }
    let base_secs = t0.elapsed().as_secs_f64();
    let base_rps = urls.len() as f64 / base_secs;
    println!(
        "baseline (raw GET, no robots/politeness/parse/store): {} pages, {:.1} MiB in {base_secs:.1} s = {base_rps:.0} pages/s",
        urls.len(),
        bytes as f64 / 1048576.0
    );

    base_rps
}

/// One `linkgraph crawl` of the simulated web, as a separate release
/// process into `data` (at the time `now`, if given); returns its pages/s.
async fn crawl(
    web: &Arc<SimWeb>,
    addr: std::net::SocketAddr,
    concurrency: usize,
    data: &Path,
    now: Option<&str>,
) -> f64 {
    let seed = web.seed_url();
    let data = data.to_owned();
    let now = now.map(str::to_owned);
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_linkgraph"));
        if let Some(now) = now {
            cmd.env("LINKGRAPH_NOW", now);
        }
        cmd.args(["crawl", "--seeds", &seed, "--data"])
            .arg(data)
            .args([
                "--resolve",
                &format!("*={addr}"),
                "--allow-private-networks",
            ])
            .args([
                "--per-host-rps",
                "1000",
                "--concurrency",
                &concurrency.to_string(),
                "--no-progress",
            ])
            // Every simulated host is 127.0.0.1: no per-IP cap.
            .args(["--per-ip-concurrency", "0"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "crawl failed: {}\n{summary}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{summary}");
    summary
        .lines()
        .find(|l| l.trim_start().starts_with("time"))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0)
}
