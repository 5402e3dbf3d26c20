//! Frontier throughput benchmark (`make bench-frontier-rate`): the frontier
//! alone crawls the bench-peers web (`LINKGRAPH_PEERS_HOSTS` hosts x
//! `LINKGRAPH_PEERS_PAGES` pages, default 1,000 x 100, about 29 links a
//! page, a few to other hosts), with no network, parser or store: every
//! dispatched page completes at once with its links as discovered URLs, as
//! the embedded crawl's loop and the frontier service do.
//!
//! It prints pages/s over the time spent in the frontier's calls
//! (`next_ready` and `complete`: a dispatch, an outcome and about 29 offers
//! each), the ceiling the frontier puts on one crawl loop, and the process's
//! CPU seconds per 1,000 pages. The crawl runs `LINKGRAPH_BENCH_RUNS` times
//! (default 3) on fresh directories, and the median is reported. Pages under
//! `/private/` (robots-disallowed in bench-peers) complete without links.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// The binary's allocator (src/main.rs), so the engines here run as they do there.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use linkgraph_frontier::{Frontier, FrontierConfig};
use linkgraph_proto::{DiscoveredUrl, FetchOutcome, FrontierFeedback};

#[path = "common/staticweb.rs"]
mod staticweb;
use staticweb::*;

/// A port in the URLs only: nothing is fetched.
const PORT: u16 = 8080;

/// The page's links as the parser would emit them: absolute, canonical.
fn discovered(
    hosts: usize,
    pages: usize,
    h: usize,
    p: usize,
    referrer: &str,
) -> Vec<DiscoveredUrl> {
    page_links(hosts, pages, PORT, h, p)
        .into_iter()
        .map(|(href, _, _)| {
            let url = if href.starts_with("http") {
                href
            } else {
                format!("http://{}:{PORT}{href}", host(h))
            };
            let host = linkgraph_core::url_host(&url).to_owned();
            DiscoveredUrl {
                url,
                host,
                depth: 1,
                referrer: referrer.to_owned(),
                ..DiscoveredUrl::default()
            }
        })
        .collect()
}

/// Which (host, page) a URL of the web is.
fn locate(url: &str) -> (usize, usize) {
    let host = linkgraph_core::url_host(url);
    let h = host
        .trim_start_matches("site")
        .trim_end_matches(".test")
        .parse()
        .unwrap();
    let path = url.rsplit_once(&format!(":{PORT}")).unwrap().1;
    let p = path
        .strip_prefix("/p/")
        .and_then(|p| p.strip_suffix(".html"))
        .map_or(0, |p| p.parse().unwrap());
    (h, p)
}

/// One crawl of the web by the frontier alone: pages, seconds in the
/// frontier's calls, wall seconds, and the process's CPU seconds (the
/// engine's background threads and making up the feedback included).
fn crawl(hosts: usize, pages: usize) -> (u64, f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FrontierConfig {
        host_interval: Duration::ZERO,
        ..FrontierConfig::default()
    };
    let mut f = Frontier::open(dir.path(), cfg).unwrap();
    f.add_seed(&format!("http://{}:{PORT}/", host(0))).unwrap();
    // Fetches in flight, as the crawl's --concurrency.
    const IN_FLIGHT: usize = 256;
    let mut flight = std::collections::VecDeque::with_capacity(IN_FLIGHT);
    let ticks = clock_ticks();
    let cpu_secs = || stat_secs("/proc/self/stat", 14, 15, ticks);
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let mut done = 0u64;
    // Time in the frontier's calls only, not in making up the feedback.
    let mut busy = Duration::ZERO;
    loop {
        let t = Instant::now();
        while flight.len() < IN_FLIGHT {
            match f.next_ready(t) {
                Some(req) => flight.push_back(req),
                None => break,
            }
        }
        busy += t.elapsed();
        let Some(req) = flight.pop_front() else {
            break;
        };
        let mut fb = FrontierFeedback {
            outcome: FetchOutcome::Ok as i32,
            status: 200,
            ..FrontierFeedback::default()
        };
        if !req.url.contains("/private/") {
            let (h, p) = locate(&req.url);
            fb.discovered = discovered(hosts, pages, h, p, &req.url);
        }
        fb.request = Some(req);
        let t = Instant::now();
        f.complete(&fb, 0).unwrap();
        busy += t.elapsed();
        done += 1;
    }
    let wall = t0.elapsed().as_secs_f64();
    (done, busy.as_secs_f64(), wall, cpu_secs() - cpu0)
}

fn main() {
    let hosts = env_usize("LINKGRAPH_PEERS_HOSTS", 1000);
    let pages = env_usize("LINKGRAPH_PEERS_PAGES", 100);
    let runs = env_usize("LINKGRAPH_BENCH_RUNS", 3).max(1);
    let mut rates = Vec::with_capacity(runs);
    for run in 0..runs {
        let (done, secs, wall, cpu) = crawl(hosts, pages);
        let rate = done as f64 / secs;
        println!(
            "run {run}: {done} pages completed in {secs:.1} s of frontier calls = {rate:.0} pages/s \
             ({wall:.1} s wall; {:.3} CPU s per 1,000 pages, background threads and the bench's \
             own feedback included)",
            cpu * 1000.0 / done as f64
        );
        assert!(
            done >= (hosts * pages) as u64,
            "the frontier reached {done} of the web's {} pages",
            hosts * pages
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "frontier alone: median {:.0} pages/s over {runs} runs ({hosts} hosts x {pages} pages, ~29 links each)",
        rates[runs / 2]
    );
}
