//! Store ingest benchmark (`make bench-store`): writes `LINKGRAPH_BENCH_EDGES`
//! edges (default 10M) of realistic shape into a fresh embedded store through
//! [`LinkStore::write_page`], from `LINKGRAPH_BENCH_WRITERS` concurrent
//! writers (default 4, as the crawl's tasks call it), then recrawls a tenth
//! of the pages with 5% of their links changed.
//!
//! The shape: 1,000 pages per host, each host its own registrable domain,
//! ~29 links a page (about 80% internal),
//! anchors of a few words, a rel and placement mix, and URLs as long as a
//! real site's. Prints edges/s for each phase and the process's peak RSS.
//!
//! Baseline, in the same run: the same number of rows written as blind
//! batch inserts into one fjall keyspace (what the engine alone costs for
//! the bytes of the `backlinks` rows), so the ratio says how close the link
//! store comes to the engine's own write speed.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// The binary's allocator (src/main.rs), so the engines here run as they do there.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use linkgraph_core::{Link, LinkKind, Placement, Rel, registrable_domain, url_host};
use linkgraph_store::{FjallStore, LinkSetUpdate, LinkStore, PageWrite, Status};

const LINKS_PER_PAGE: u64 = 29;
const PAGES_PER_HOST: u64 = 1_000;
const WORDS: [&str; 16] = [
    "best", "guide", "review", "cheap", "coffee", "tools", "how", "to", "the", "garden", "news",
    "2026", "free", "shop", "learn", "home",
];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// splitmix64: a deterministic stream per page.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A page of host `host`. Each host is its own registrable domain, so the
/// fifth of links that leave their host are external: they take refdomain
/// counters, events and outlinks rows, and page writes of different hosts
/// run in parallel. (Hosts under one registrable domain, as in
/// `site1.example.com`, would make every link internal.)
fn page_url(host: u64, page: u64) -> String {
    if page == 0 {
        format!("http://www.site{host}.com/")
    } else {
        format!(
            "http://www.site{host}.com/articles/section-{}/page-{page}",
            page % 17
        )
    }
}

/// The page's links; `epoch` > 0 replaces 5% of them.
fn page(hosts: u64, host: u64, p: u64, epoch: u64, at: i64) -> PageWrite {
    let url = page_url(host, p);
    let mut rng = Rng(host << 20 ^ p);
    let mut links: Vec<Link> = Vec::with_capacity(LINKS_PER_PAGE as usize);
    let mut seen = std::collections::HashSet::new();
    for i in 0..LINKS_PER_PAGE {
        let mut r = rng.next();
        if epoch > 0 && i % 20 == 0 {
            r ^= epoch.wrapping_mul(0x5851_f42d_4c95_7f2d);
        }
        let mut lr = Rng(r);
        let target = if lr.below(5) == 0 {
            page_url(lr.below(hosts), lr.below(PAGES_PER_HOST))
        } else {
            page_url(host, lr.below(PAGES_PER_HOST))
        };
        if target == url || !seen.insert(target.clone()) {
            continue;
        }
        let words = 1 + lr.below(4) as usize;
        let anchor = (0..words)
            .map(|_| WORDS[lr.below(WORDS.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" ");
        let rel = match lr.below(10) {
            0 => Rel::NOFOLLOW,
            1 => Rel::UGC,
            _ => Rel::follow(),
        };
        links.push(Link {
            source_url: url.clone(),
            target_url: target,
            anchor,
            rel,
            placement: Placement::ALL[lr.below(6) as usize],
            kind: LinkKind::Link,
        });
    }
    PageWrite {
        url,
        status: 200,
        outcome: 0,
        fetched_at_ms: at,
        links,
        update: LinkSetUpdate::Replace,
        content_hash: rng.next() ^ epoch,
        noindex: false,
        remote_ip: None,
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Writes pages `0..pages` (every `stride`-th one) from `writers` tasks;
/// returns the edges written.
async fn ingest(
    store: &FjallStore,
    hosts: u64,
    pages: u64,
    stride: u64,
    epoch: u64,
    writers: u64,
) -> u64 {
    let mut set = tokio::task::JoinSet::new();
    for w in 0..writers {
        let store = store.clone();
        set.spawn(async move {
            let mut edges = 0u64;
            let mut n = w * stride;
            while n < pages {
                // Page-major across hosts, as a broad crawl proceeds.
                let (host, p) = (n % hosts, n / hosts);
                let write = page(hosts, host, p, epoch, 1_000_000 + epoch as i64 * 1_000);
                edges += write.links.len() as u64;
                store.write_page(write).await.unwrap();
                n += writers * stride;
            }
            edges
        });
    }
    let mut edges = 0;
    while let Some(e) = set.join_next().await {
        edges += e.unwrap();
    }
    edges
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let target_edges = env_u64("LINKGRAPH_BENCH_EDGES", 10_000_000);
    let writers = env_u64("LINKGRAPH_BENCH_WRITERS", 4).max(1);
    let pages = target_edges / LINKS_PER_PAGE + 1;
    let hosts = pages.div_ceil(PAGES_PER_HOST).max(1);
    println!(
        "store ingest: {pages} pages on {hosts} hosts (~{LINKS_PER_PAGE} links a page), {writers} writers"
    );

    let dir = tempfile::tempdir().unwrap();
    let store = FjallStore::open(&dir.path().join("store"), true).unwrap();
    let t0 = Instant::now();
    let edges = ingest(&store, hosts, pages, 1, 0, writers).await;
    store.flush().await.unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let rate = edges as f64 / secs;
    println!(
        "first crawl: {edges} edges in {secs:.1} s = {rate:.0} edges/s ({:.0} pages/s)",
        pages as f64 / secs
    );
    // The shape, checked (untimed): links that leave their host reach
    // another registrable domain and take its refdomain rows.
    let linking = store
        .refdomains(registrable_domain(url_host(&page_url(0, 0))), Status::All)
        .await
        .unwrap()
        .len();
    assert!(
        hosts < 2 || linking > 0,
        "no referring domains: every link was internal"
    );
    println!("  host 0's domain has {linking} referring domains (of {hosts} hosts)");

    let t0 = Instant::now();
    let re = ingest(&store, hosts, pages, 10, 1, writers).await;
    store.flush().await.unwrap();
    let re_secs = t0.elapsed().as_secs_f64();
    println!(
        "recrawl of every 10th page, 5% of links changed: {re} edges in {re_secs:.1} s = {:.0} edges/s",
        re as f64 / re_secs
    );
    let rss = peak_rss_mib();
    drop(store);

    // Baseline: the engine alone, blind batch inserts of backlink-sized rows.
    let t0 = Instant::now();
    let base_rows = tokio::task::spawn_blocking({
        let path = dir.path().join("raw");
        move || {
            let db = fjall::Database::builder(&path).open().unwrap();
            let ks = db
                .keyspace("rows", fjall::KeyspaceCreateOptions::default)
                .unwrap();
            let mut rows = 0u64;
            for n in 0..pages {
                let w = page(hosts, n % hosts, n / hosts, 0, 1_000_000);
                let mut batch = db.batch();
                for l in &w.links {
                    let mut k = Vec::with_capacity(l.target_url.len() + w.url.len() + 1);
                    k.extend_from_slice(l.target_url.as_bytes());
                    k.push(0);
                    k.extend_from_slice(w.url.as_bytes());
                    batch.insert(&ks, k, l.anchor.as_bytes());
                    rows += 1;
                }
                batch.commit().unwrap();
            }
            db.persist(fjall::PersistMode::SyncAll).unwrap();
            rows
        }
    })
    .await
    .unwrap();
    let base_secs = t0.elapsed().as_secs_f64();
    let base_rate = base_rows as f64 / base_secs;
    println!(
        "baseline (fjall blind batch inserts, one keyspace): {base_rows} rows in {base_secs:.1} s = {base_rate:.0} rows/s"
    );

    println!(
        "store / engine write speed: {:.2} ({rate:.0} edges/s vs {base_rate:.0} rows/s); peak RSS {:.0} MiB",
        rate / base_rate,
        rss
    );
}
