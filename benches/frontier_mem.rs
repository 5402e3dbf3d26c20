//! Frontier memory benchmark: RSS per known URL after admitting
//! `LINKGRAPH_BENCH_URLS` URLs (default 1,000,000) over
//! `LINKGRAPH_BENCH_HOSTS` hosts (default 10,000), then peak RSS while every
//! URL is dispatched and completed, as over a long crawl.
//!
//! Like every long-running linkgraph command, it hands free heap memory back
//! to the OS every `RELEASE_EVERY` (`linkgraph_pipeline::memory`), and it
//! prints the highest RSS seen just before one of those releases too.
//!
//! Run: `cargo bench --bench frontier_mem` (and with LINKGRAPH_BENCH_URLS=10000000).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// The binary's allocator (src/main.rs), so the engines here run as they do there.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

#[path = "common/disk.rs"]
mod disk;

use linkgraph_frontier::{Frontier, FrontierConfig};
use linkgraph_pipeline::embedded::status_bytes;
use linkgraph_pipeline::memory::{RELEASE_EVERY, release_free_memory};
use linkgraph_proto::{DiscoveredUrl, FetchOutcome, FrontierFeedback};

fn rss_bytes(field: &str) -> u64 {
    status_bytes(field).unwrap_or(0)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

/// Returns free memory to the OS when `RELEASE_EVERY` has passed since
/// `last`, as the service's periodic task does; keeps the highest RSS seen
/// just before a release in `peak_before`.
fn release_on_schedule(last: &mut Instant, peak_before: &mut u64) {
    if last.elapsed() >= RELEASE_EVERY {
        *peak_before = (*peak_before).max(rss_bytes("VmRSS:"));
        release_free_memory();
        *last = Instant::now();
    }
}

fn main() {
    let n = env_u64("LINKGRAPH_BENCH_URLS", 1_000_000);
    let hosts = env_u64("LINKGRAPH_BENCH_HOSTS", 10_000).max(1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = FrontierConfig {
        max_urls_per_host: u64::MAX,
        host_budget_base: u64::MAX,
        host_interval: std::time::Duration::ZERO,
        ..FrontierConfig::default()
    };
    let mut f = Frontier::open(&dir.path().join("frontier"), cfg).unwrap();
    let rss0 = rss_bytes("VmRSS:");
    let t0 = Instant::now();
    let mut released = Instant::now();
    let mut peak_before = 0;
    for i in 0..n {
        if i % 10_000 == 0 {
            release_on_schedule(&mut released, &mut peak_before);
        }
        let h = i % hosts;
        let host = format!("www.host{h}.example");
        let url = format!("http://{host}/section/{}/page-{i}.html", i % 97);
        let d = DiscoveredUrl {
            url,
            host,
            depth: 1,
            ..DiscoveredUrl::default()
        };
        f.offer(&d).unwrap();
        if (i + 1).is_multiple_of(1_000_000) {
            eprintln!(
                "  admitted {} in {:.1} s, RSS {:.1} MiB, memtables {:.1} MiB",
                i + 1,
                t0.elapsed().as_secs_f64(),
                mib(rss_bytes("VmRSS:")),
                mib(f.write_buffer_bytes())
            );
        }
    }
    let admit_secs = t0.elapsed().as_secs_f64();
    let rss1 = rss_bytes("VmRSS:");
    println!(
        "frontier: {n} URLs over {hosts} hosts admitted in {admit_secs:.1} s ({:.0} URLs/s)",
        n as f64 / admit_secs
    );
    println!(
        "  RSS {:.1} MiB -> {:.1} MiB: {:.1} bytes of RSS per known URL",
        mib(rss0),
        mib(rss1),
        (rss1.saturating_sub(rss0)) as f64 / n as f64
    );
    println!(
        "  highest RSS just before a release of free memory (every {} s): {:.1} MiB, {:.1} bytes per known URL",
        RELEASE_EVERY.as_secs(),
        mib(peak_before),
        (peak_before.saturating_sub(rss0)) as f64 / n as f64
    );

    let t1 = Instant::now();
    let mut peak = rss1;
    let mut done = 0u64;
    while let Some(req) = f.next_ready(Instant::now()) {
        let fb = FrontierFeedback {
            request: Some(req),
            outcome: FetchOutcome::Ok as i32,
            status: 200,
            ..FrontierFeedback::default()
        };
        f.complete(&fb, 0).unwrap();
        done += 1;
        if done.is_multiple_of(10_000) {
            release_on_schedule(&mut released, &mut peak_before);
        }
        if done.is_multiple_of(100_000) {
            peak = peak.max(rss_bytes("VmRSS:"));
        }
    }
    f.flush().unwrap();
    let (disk, _) = disk::disk_bytes(dir.path());
    println!(
        "  crawled all {done} in {:.1} s; peak RSS {:.1} MiB (process VmHWM {:.1} MiB); {:.1} bytes on disk per URL",
        t1.elapsed().as_secs_f64(),
        mib(peak.max(rss_bytes("VmRSS:"))),
        mib(rss_bytes("VmHWM:")),
        disk as f64 / n as f64
    );
    assert_eq!(done, n, "every admitted URL was dispatched once");
}
