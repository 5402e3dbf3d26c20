//! The three services wired in one process over the in-process bus, against
//! the simulated web: the same service code as on Kafka, no broker needed.
//! Malformed messages on two topics are skipped and dead-lettered, and the
//! stored graph equals the ground truth exactly.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use linkgraph_bus::{Bus, BusError, MemoryBus, Subscription, TopicSpec, topics};
use linkgraph_core::Link;
use linkgraph_fetcher::{Fetcher, FetcherConfig};
use linkgraph_frontier::FrontierConfig;
use linkgraph_pipeline::services::{
    FrontierServiceOptions, ServiceOptions, run_fetcher, run_frontier, run_parser,
};
use linkgraph_proto::{DiscoveredBatch, FrontierFeedback, Message as _};
use linkgraph_simweb::{SimConfig, SimWeb};
use linkgraph_store::{BacklinkQuery, FjallStore, LinkStore, Status, Target};

type Edge = (String, String, String, u8, u8, String);

fn edge(l: &Link) -> Edge {
    (
        l.source_url.clone(),
        l.target_url.clone(),
        l.anchor.clone(),
        l.rel.bits(),
        l.placement.code(),
        l.kind.as_str().to_owned(),
    )
}

async fn stored(store: &dyn LinkStore, domains: &BTreeSet<String>) -> BTreeSet<Edge> {
    let mut out = BTreeSet::new();
    for d in domains {
        let mut after = None;
        loop {
            let page = store
                .backlinks(BacklinkQuery {
                    target: Target::Domain(d.clone()),
                    include_internal: true,
                    status: Status::Live,
                    limit: 500,
                    after,
                })
                .await
                .unwrap();
            for b in &page.items {
                assert!(out.insert(edge(&b.link)), "duplicate {:?}", b.link);
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    out
}

/// A memory bus that keeps a copy of what the parser sends the frontier.
#[derive(Default)]
struct Tap {
    bus: MemoryBus,
    published: Mutex<Vec<(String, Vec<u8>)>>,
}

#[async_trait::async_trait]
impl Bus for Tap {
    async fn publish(&self, topic: &str, key: &str, payload: Vec<u8>) -> Result<(), BusError> {
        if topic == topics::FEEDBACK || topic == topics::DISCOVERED {
            self.published
                .lock()
                .unwrap()
                .push((topic.to_owned(), payload.clone()));
        }
        self.bus.publish(topic, key, payload).await
    }
    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Subscription>, BusError> {
        self.bus.subscribe(group, topics).await
    }
    async fn create_topics(&self, specs: &[TopicSpec]) -> Result<(), BusError> {
        self.bus.create_topics(specs).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_over_the_memory_bus_match_ground_truth() {
    crawl_over_the_memory_bus(0).await;
}

/// Fetch requests taken by a fetcher that dies with them (acknowledged,
/// never answered) are dispatched again after the in-flight deadline: the
/// crawl completes, and the graph is still exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_lost_with_a_dead_fetcher_are_dispatched_again() {
    crawl_over_the_memory_bus(4).await;
}

/// Crawls the simulated web with the three services over one memory bus;
/// `lost` fetch requests (the first one is garbage) are swallowed first.
async fn crawl_over_the_memory_bus(lost: usize) {
    let web = Arc::new(SimWeb::new(SimConfig {
        hosts: 12,
        pages_per_host: 10,
        seed: 5,
        ..SimConfig::default()
    }));
    let truth = web.truth();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_web, web_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(linkgraph_simweb::serve(
        listener,
        Arc::clone(&web),
        None,
        async {
            let _ = web_stopped.await;
        },
    ));

    let tap = Arc::new(Tap::default());
    let bus: Arc<dyn Bus> = Arc::clone(&tap) as Arc<dyn Bus>;
    // Garbage first: it must be skipped, counted and dead-lettered.
    bus.publish(
        topics::FETCH,
        "x.example",
        b"\xff\xfe not a request".to_vec(),
    )
    .await
    .unwrap();
    bus.publish(topics::PAGES, "x.example", vec![0x0a, 0xff, 0x01])
        .await
        .unwrap();
    // Frontier garbage, read with the seed in one drain: skipped, the seed
    // and everything after it still applied.
    bus.publish(topics::DISCOVERED, "x.example", vec![0x0a, 0xff])
        .await
        .unwrap();
    bus.publish(topics::FEEDBACK, "x.example", b"\x12".to_vec())
        .await
        .unwrap();
    let opts = ServiceOptions {
        bus: Arc::clone(&bus),
        group: "test".into(),
        dead_letter: true,
        grace: Duration::from_secs(5),
        ready: Arc::new(AtomicBool::new(false)),
    };
    let fetcher = Fetcher::new(FetcherConfig {
        resolve: vec![format!("*={addr}").parse().unwrap()],
        allow_private_networks: true,
        per_host_rps: 100.0,
        per_ip_concurrency: 0,
        ..FetcherConfig::default()
    })
    .unwrap();
    let token = fetcher.product_token().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn LinkStore> =
        Arc::new(FjallStore::open(&dir.path().join("store"), true).unwrap());
    let frontier_cfg = FrontierConfig {
        host_interval: Duration::from_millis(10),
        ..FrontierConfig::default()
    };

    let (stop_fetch, fetch_stopped) = tokio::sync::oneshot::channel::<()>();
    let (stop_parse, parse_stopped) = tokio::sync::oneshot::channel::<()>();
    let (fetch_opts, dead_bus) = (opts.clone(), Arc::clone(&bus));
    let fetch_task = tokio::spawn(async move {
        // First a fetcher that takes `lost` requests and dies without
        // answering; then the real one, in the same consumer group.
        if lost > 0 {
            let mut dead = dead_bus
                .subscribe("test-fetcher", &[topics::FETCH])
                .await
                .unwrap();
            for _ in 0..lost {
                let m = dead.recv().await.unwrap().unwrap();
                dead.ack(&m);
            }
            dead.commit().await.unwrap();
        }
        run_fetcher(fetch_opts, fetcher, 16, async {
            let _ = fetch_stopped.await;
        })
        .await
    });
    let parse_task = tokio::spawn(run_parser(
        opts.clone(),
        linkgraph_pipeline::record::Recorder::new(
            Arc::clone(&store),
            &token,
            Default::default(),
            frontier_cfg.url_policy.clone(),
        ),
        16,
        async {
            let _ = parse_stopped.await;
        },
    ));
    let run = tokio::time::timeout(
        Duration::from_secs(120),
        run_frontier(
            opts.clone(),
            FrontierServiceOptions {
                data_dir: dir.path().to_path_buf(),
                config: frontier_cfg,
                seeds: vec![web.seed_url()],
                exit_when_idle: Some(Duration::from_secs(1)),
                inflight_deadline: Duration::from_secs(2),
            },
            std::future::pending(),
        ),
    )
    .await
    .expect("the crawl finishes")
    .unwrap();
    assert!(run.idle && run.dispatched > 100, "{run:?}");
    // Each lost request (but the garbage message) was dispatched once more.
    assert_eq!(
        run.dispatched,
        run.completed + lost.saturating_sub(1) as u64,
        "{run:?}"
    );

    let _ = stop_fetch.send(());
    let _ = stop_parse.send(());
    fetch_task.await.unwrap().unwrap();
    parse_task.await.unwrap().unwrap();

    let domains: BTreeSet<String> = truth
        .edges
        .iter()
        .map(|l| l.target_domain().to_owned())
        .collect();
    let want: BTreeSet<Edge> = truth.edges.iter().map(edge).collect();
    let got = stored(store.as_ref(), &domains).await;
    let missing: Vec<_> = want.difference(&got).take(3).collect();
    let extra: Vec<_> = got.difference(&want).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );

    // A page's discoveries on its own host rode in its feedback; only
    // other hosts' went to `linkgraph.discovered`.
    let (mut own, mut others) = (0, 0);
    for (topic, payload) in tap.published.lock().unwrap().iter() {
        let urls = if topic == topics::FEEDBACK {
            FrontierFeedback::decode(payload.as_slice()).map(|fb| fb.discovered)
        } else {
            DiscoveredBatch::decode(payload.as_slice()).map(|b| b.urls)
        };
        for d in urls.unwrap_or_default() {
            // (A robots.txt's sitemaps have no referring page.)
            let Ok(from) = url::Url::parse(&d.referrer) else {
                continue;
            };
            let same = from.host_str() == Some(d.host.as_str());
            assert_eq!(same, topic == topics::FEEDBACK, "{topic}: {d:?}");
            *(if same { &mut own } else { &mut others }) += 1;
        }
    }
    assert!(
        own > 100 && others > 10,
        "own host {own}, other hosts {others}"
    );

    // The four malformed messages reached the dead-letter topic, keys
    // intact (but the one the dead fetcher took with it).
    let mut dl = bus.subscribe("ops", &[topics::DEAD_LETTER]).await.unwrap();
    for _ in 0..if lost > 0 { 3 } else { 4 } {
        let m = tokio::time::timeout(Duration::from_secs(5), dl.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(m.key, "x.example");
    }
    let _ = stop_web.send(());
}
