//! The whole per-page path: a fetched page (body and headers from the
//! input) through the parse stage (extraction, canonicalization, parameter
//! stripping), the store write (link diff, registrable domains, keys) and the
//! frontier feedback and trap checks. Nothing panics, and every stored link
//! is a bounded http(s) edge from the page.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use linkgraph_core::{MAX_ANCHOR_CHARS, UrlPolicy};
use linkgraph_frontier::{Frontier, FrontierConfig};
use linkgraph_parser::ParseLimits;
use linkgraph_pipeline::stages;
use linkgraph_proto::{CrawlRequest, FetchOutcome, FetchResult};
use linkgraph_store::{FjallStore, LinkStore, Status};

struct World {
    store: FjallStore,
    frontier: std::sync::Mutex<Frontier>,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        World {
            store: FjallStore::open(&dir.path().join("store"), true).expect("store"),
            frontier: std::sync::Mutex::new(
                Frontier::open(&dir.path().join("frontier"), FrontierConfig::default()).expect("frontier"),
            ),
            rt: tokio::runtime::Builder::new_current_thread().build().expect("runtime"),
            _dir: dir,
        }
    })
}

const CONTENT_TYPES: [&str; 5] = [
    "",
    "text/html",
    "text/html; charset=windows-1252",
    "text/html; charset=gbk",
    "text/html; charset=utf-16le",
];
const PAGES: [&str; 4] = [
    "http://www.example.com/dir/page.html",
    "https://bücher.example/straße?q=1",
    "http://a.co.uk/caf%C3%A9/",
    "http://[::1]:8080/x",
];

fuzz_target!(|data: &[u8]| {
    let (head, body) = data.split_at(data.len().min(2));
    let pick = |i: usize, n: usize| head.get(i).map_or(0, |b| usize::from(*b) % n);
    let url = PAGES[pick(0, PAGES.len())];
    let req = CrawlRequest {
        url: linkgraph_core::canonicalize(url, None).expect("page url").into(),
        host: "www.example.com".into(),
        depth: 1,
        ..CrawlRequest::default()
    };
    let mut res = FetchResult {
        request: Some(req),
        status: 200,
        fetched_at_ms: 1_700_000_000_000,
        content_type: CONTENT_TYPES[pick(1, CONTENT_TYPES.len())].into(),
        x_robots_tag: if pick(1, 2) == 0 { String::new() } else { "nofollow".into() },
        body: body.to_vec(),
        ..FetchResult::default()
    };
    res.set_outcome(FetchOutcome::Ok);
    let limits = ParseLimits { max_links: 500, ..ParseLimits::default() };
    let page = stages::parse_unguarded(res, "linkgraph", limits, &UrlPolicy::default());
    let write = stages::page_write(page.clone());
    for l in &write.links {
        assert!(l.target_url.starts_with("http://") || l.target_url.starts_with("https://"), "{l:?}");
        assert!(l.anchor.chars().count() <= MAX_ANCHOR_CHARS);
        assert_ne!(l.target_url, l.source_url);
    }
    let w = world();
    let stats = w.rt.block_on(w.store.write_page(write)).expect("store write");
    let mut feedback = stages::feedback(&page);
    feedback.changed = stats.changed;
    let mut frontier = w.frontier.lock().expect("frontier lock");
    frontier.complete(&feedback, 1_700_000_000_000).expect("frontier complete");
    for l in &page.links {
        let d = linkgraph_core::registrable_domain(linkgraph_core::url_host(&l.target_url));
        w.rt.block_on(w.store.refdomains(d, Status::Live)).expect("refdomains read");
    }
});
