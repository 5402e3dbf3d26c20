//! The distributed services: frontier, fetcher and parser loops over a
//! [`Bus`], calling the same stage functions as the embedded crawl.
//!
//! ```text
//! seed ──► linkgraph.seeds ──┐
//!                            ▼
//!   FRONTIER ──linkgraph.fetch──► FETCHER ──linkgraph.pages──► PARSER ──► store
//!      ▲  ▲                                                      │
//!      │  └──────────── linkgraph.discovered (key: URL host) ◄───┤
//!      └─────────────── linkgraph.feedback (key: request host) ◄─┘
//! ```
//!
//! At-least-once with idempotent effects: a service acks a message once its
//! effects are durable (a produced message acknowledged by the bus, a store
//! write acknowledged by the store), and commits offsets once a second,
//! after flushing its local state. A killed service re-reads from its last
//! commit: a page may be fetched or parsed twice, but an edge is stored once.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use linkgraph_bus::{Bus, BusError, Message, Rebalanced, Subscription, partition_for, topics};
use linkgraph_core::now_ms;
use linkgraph_fetcher::Fetcher;
use linkgraph_frontier::{Frontier, FrontierConfig, FrontierError};
use linkgraph_proto::{
    CrawlRequest, DiscoveredBatch, DiscoveredUrl, FetchResult, FrontierFeedback,
};
use linkgraph_store::StoreError;
use prost::Message as _;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::record::Recorder;
use crate::sleep_until;
use futures_util::FutureExt as _;

/// How often offsets are committed (after local state is flushed).
const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// Due URLs queued per look at the recrawl schedule.
const DUE_BATCH: usize = 10_000;
/// Buffered messages the frontier applies after each one it waited for,
/// before it dispatches again.
const DRAIN_MAX: usize = 1_000;

/// Why a service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The link store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The frontier failed.
    #[error(transparent)]
    Frontier(#[from] FrontierError),
    /// A page could not be parsed and stored.
    #[error(transparent)]
    Record(#[from] crate::record::RecordError),
    /// A worker task panicked (a bug).
    #[error("a worker task failed: {0}")]
    Task(String),
}

/// What every service shares.
#[derive(Clone)]
pub struct ServiceOptions {
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// Consumer group prefix (`<prefix>-frontier`, ...).
    pub group: String,
    /// Send undecodable messages to the dead-letter topic too.
    pub dead_letter: bool,
    /// How long a stop waits for in-flight work before abandoning it (it is
    /// then redelivered to whoever consumes the partition next).
    pub grace: Duration,
    /// Set once the service consumes (for `/readyz`).
    pub ready: Arc<AtomicBool>,
}

/// Logs, counts and (optionally) dead-letters a message that does not
/// decode, and acks it: a broken message never blocks its partition.
async fn malformed(opts: &ServiceOptions, sub: &mut dyn Subscription, m: &Message, err: &str) {
    warn!(topic = %m.topic, partition = m.partition, offset = m.offset, error = err, "skipping malformed message");
    metrics::counter!("linkgraph_bus_malformed_messages_total", "topic" => m.topic.clone())
        .increment(1);
    if opts.dead_letter
        && let Err(e) = opts
            .bus
            .publish(topics::DEAD_LETTER, &m.key, m.payload.clone())
            .await
    {
        warn!(error = %e, "cannot dead-letter a malformed message");
    }
    sub.ack(m);
}

/// A failed receive (a broker restarting, a transport error) is logged,
/// counted and retried after a pause: the client reconnects by itself.
/// Only a closed bus ends the service.
async fn consume_error(e: &BusError) -> Result<(), ServiceError> {
    if matches!(e, BusError::Closed) {
        return Err(BusError::Closed.into());
    }
    warn!(error = %e, "consume failed; retrying");
    metrics::counter!("linkgraph_bus_consume_errors_total").increment(1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

async fn commit(sub: &mut dyn Subscription) {
    if let Err(e) = sub.commit().await {
        // Not fatal: the next commit covers it, and a restart re-reads it.
        warn!(error = %e, "offset commit failed");
    }
}

type Work = std::pin::Pin<Box<dyn Future<Output = Result<(), ServiceError>> + Send>>;

/// At most one item in progress per key; the others wait their turn, in
/// order. A host's (or a domain's) messages are then handled one at a time,
/// the way a single-threaded consumer of its partition would.
#[derive(Debug)]
struct KeyedQueue<T> {
    busy: HashSet<String>,
    waiting: HashMap<String, VecDeque<T>>,
    queued: usize,
}

impl<T> Default for KeyedQueue<T> {
    fn default() -> Self {
        KeyedQueue {
            busy: HashSet::new(),
            waiting: HashMap::new(),
            queued: 0,
        }
    }
}

impl<T> KeyedQueue<T> {
    /// Returns `item` to start now, or keeps it until `key` is free.
    fn offer(&mut self, key: &str, item: T) -> Option<T> {
        if self.busy.insert(key.to_owned()) {
            return Some(item);
        }
        self.waiting
            .entry(key.to_owned())
            .or_default()
            .push_back(item);
        self.queued += 1;
        None
    }

    /// `key`'s item finished: returns its next one to start, if any.
    fn done(&mut self, key: &str) -> Option<T> {
        let next = self.waiting.get_mut(key).and_then(VecDeque::pop_front);
        match next {
            Some(item) => {
                self.queued -= 1;
                if self.waiting.get(key).is_some_and(VecDeque::is_empty) {
                    self.waiting.remove(key);
                }
                Some(item)
            }
            None => {
                self.busy.remove(key);
                None
            }
        }
    }
}

fn spawn_work(tasks: &mut JoinSet<(Message, Result<(), ServiceError>)>, m: Message, work: Work) {
    tasks.spawn(async move {
        let res = work.await;
        (m, res)
    });
}

/// A consumer loop for a stateless worker service: `start` turns a payload
/// into its work (or says why it is malformed); at most `max` run at once,
/// and at most one per message key (the rest of a key's messages wait);
/// `flush` makes acked effects durable before each commit. On shutdown it
/// stops consuming, waits up to the grace period for in-flight work,
/// commits what finished and returns.
async fn worker_loop<F, Fut>(
    opts: &ServiceOptions,
    group: &str,
    topic: &str,
    max: usize,
    start: impl Fn(&[u8]) -> Result<Work, String>,
    flush: F,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServiceError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), ServiceError>>,
{
    let mut sub = opts.bus.subscribe(group, &[topic]).await?;
    opts.ready.store(true, Ordering::Relaxed);
    info!(group, topic, max, "consuming");
    let mut tasks: JoinSet<(Message, Result<(), ServiceError>)> = JoinSet::new();
    let mut keyed: KeyedQueue<(Message, Work)> = KeyedQueue::default();
    let mut tick = tokio::time::interval(COMMIT_EVERY);
    let mut deadline: Option<Instant> = None;
    let mut failure: Option<ServiceError> = None;
    tokio::pin!(shutdown);
    loop {
        if deadline.is_some() && tasks.is_empty() {
            break;
        }
        let take = deadline.is_none() && tasks.len() + keyed.queued < max.max(1);
        tokio::select! {
            r = sub.recv(), if take => match r {
                Err(e) => consume_error(&e).await?,
                Ok(None) => deadline = Some(Instant::now() + opts.grace),
                Ok(Some(m)) => match start(&m.payload) {
                    Ok(work) => {
                        let key = m.key.clone();
                        if let Some((m, work)) = keyed.offer(&key, (m, work)) {
                            spawn_work(&mut tasks, m, work);
                        }
                    }
                    Err(e) => malformed(opts, sub.as_mut(), &m, &e).await,
                },
            },
            Some(joined) = tasks.join_next() => match joined {
                Ok((m, Ok(()))) => {
                    sub.ack(&m);
                    // Waiting messages of a stopping service are not started:
                    // unacked, they are redelivered to the next consumer.
                    if let Some((next, work)) = keyed.done(&m.key)
                        && deadline.is_none()
                    {
                        spawn_work(&mut tasks, next, work);
                    }
                }
                Ok((m, Err(e))) => {
                    warn!(topic, offset = m.offset, error = %e, "stopping: work failed");
                    failure.get_or_insert(e);
                    deadline.get_or_insert(Instant::now() + opts.grace);
                }
                Err(e) => {
                    failure.get_or_insert(ServiceError::Task(e.to_string()));
                    deadline.get_or_insert(Instant::now() + opts.grace);
                }
            },
            _ = tick.tick() => {
                flush().await?;
                commit(sub.as_mut()).await;
            }
            () = &mut shutdown, if deadline.is_none() => {
                info!(in_flight = tasks.len(), "stop requested; draining");
                deadline = Some(Instant::now() + opts.grace);
            }
            () = sleep_until(deadline) => {
                warn!(abandoned = tasks.len(), "grace period over; abandoning in-flight work");
                tasks.abort_all();
                break;
            }
        }
    }
    opts.ready.store(false, Ordering::Relaxed);
    flush().await?;
    commit(sub.as_mut()).await;
    failure.map_or(Ok(()), Err)
}

/// The fetcher service: `CrawlRequest`s in, `FetchResult`s out.
pub async fn run_fetcher(
    opts: ServiceOptions,
    fetcher: Fetcher,
    concurrency: usize,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServiceError> {
    let group = format!("{}-fetcher", opts.group);
    let bus = Arc::clone(&opts.bus);
    let start = |payload: &[u8]| -> Result<Work, String> {
        let req = CrawlRequest::decode(payload).map_err(|e| e.to_string())?;
        if req.url.is_empty() || req.host.is_empty() {
            return Err("crawl request without url or host".into());
        }
        let (f, bus) = (fetcher.clone(), Arc::clone(&bus));
        Ok(Box::pin(async move {
            // Pages are keyed by registrable domain: one parser partition,
            // one page at a time, per domain, so a domain's referring-domain
            // transitions are decided in order.
            let domain = linkgraph_core::registrable_domain(&req.host).to_owned();
            let res = f.fetch(req).await;
            bus.publish(topics::PAGES, &domain, res.encode_to_vec())
                .await?;
            Ok(())
        }))
    };
    worker_loop(
        &opts,
        &group,
        topics::FETCH,
        concurrency,
        start,
        || async { Ok(()) },
        shutdown,
    )
    .await
}

/// The parser service: `FetchResult`s in; edges to the store, then
/// discovered URLs and feedback to the frontier.
pub async fn run_parser(
    opts: ServiceOptions,
    recorder: Recorder,
    concurrency: usize,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServiceError> {
    let group = format!("{}-parser", opts.group);
    let bus = Arc::clone(&opts.bus);
    let start = |payload: &[u8]| -> Result<Work, String> {
        let res = FetchResult::decode(payload).map_err(|e| e.to_string())?;
        if res.request.as_ref().is_none_or(|r| r.url.is_empty()) {
            return Err("fetch result without a request url".into());
        }
        let (recorder, bus) = (recorder.clone(), Arc::clone(&bus));
        Ok(Box::pin(async move {
            let (mut fb, _) = recorder.record(res).await?;
            let host = fb
                .request
                .as_ref()
                .map(|r| r.host.clone())
                .unwrap_or_default();
            // Discoveries on the page's own host, most of them, ride in its
            // feedback: the frontier owning the host admits them with the
            // completion, in one write. The others go to the frontier
            // partition owning their host, before the feedback that
            // completes the request. Sent concurrently: the producer
            // batches them.
            let (own, others) = std::mem::take(&mut fb.discovered)
                .into_iter()
                .partition(|d| d.host == host);
            fb.discovered = own;
            let batches = by_host(others);
            futures_util::future::try_join_all(
                batches
                    .iter()
                    .map(|(host, b)| bus.publish(topics::DISCOVERED, host, b.encode_to_vec())),
            )
            .await?;
            bus.publish(topics::FEEDBACK, &host, fb.encode_to_vec())
                .await?;
            Ok(())
        }))
    };
    let flush_store = Arc::clone(recorder.store());
    worker_loop(
        &opts,
        &group,
        topics::PAGES,
        concurrency,
        start,
        || {
            let s = Arc::clone(&flush_store);
            async move { Ok(s.flush().await?) }
        },
        shutdown,
    )
    .await
}

/// A page's discoveries as one batch per host, in the order of each host's
/// first URL: one message per host instead of one per link (most of a
/// page's links stay on its own host).
fn by_host(discovered: Vec<DiscoveredUrl>) -> Vec<(String, DiscoveredBatch)> {
    let mut batches: Vec<(String, DiscoveredBatch)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for d in discovered {
        let at = *index.entry(d.host.clone()).or_insert_with(|| {
            batches.push((d.host.clone(), DiscoveredBatch::default()));
            batches.len() - 1
        });
        batches[at].1.urls.push(d);
    }
    batches
}

/// Frontier service settings.
pub struct FrontierServiceOptions {
    /// Where the frontier keeps its state (`DIR/frontier`).
    pub data_dir: std::path::PathBuf,
    /// Frontier limits and politeness.
    pub config: FrontierConfig,
    /// Seeds to add at start (besides those arriving on the seeds topic).
    pub seeds: Vec<String>,
    /// Exit once nothing has been queued or in flight for this long.
    pub exit_when_idle: Option<Duration>,
    /// Dispatch again a request in flight for longer than this (its
    /// feedback was lost with a fetcher, a parser or an unconsumed partition).
    pub inflight_deadline: Duration,
}

/// How a frontier service run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontierRun {
    /// Requests handed to fetchers.
    pub dispatched: u64,
    /// Feedback messages applied.
    pub completed: u64,
    /// True when it stopped because it was idle.
    pub idle: bool,
}

/// Publishes seed URLs to the seeds topic, keyed by host so that the
/// frontier owning the host admits them; a seed that is not a URL is logged
/// and skipped. Returns how many were published.
pub async fn publish_seeds(bus: &dyn Bus, seeds: &[String]) -> Result<usize, BusError> {
    let mut published = 0;
    for s in seeds {
        match linkgraph_core::canonicalize(s, None) {
            Ok(u) => {
                let d = DiscoveredUrl {
                    host: u.host_str().unwrap_or_default().to_owned(),
                    url: u.into(),
                    ..DiscoveredUrl::default()
                };
                bus.publish(topics::SEEDS, &d.host, d.encode_to_vec())
                    .await?;
                published += 1;
            }
            Err(e) => warn!(seed = %s, error = %e, "skipping seed"),
        }
    }
    Ok(published)
}

fn open_frontier(dir: &Path, cfg: FrontierConfig) -> Result<Frontier, ServiceError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        ServiceError::Task(format!(
            "cannot create data directory {}: {e}",
            dir.display()
        ))
    })?;
    Ok(Frontier::open(
        &linkgraph_frontier::data_frontier_path(dir),
        cfg,
    )?)
}

/// The frontier service: seeds, discovered URLs and feedback in;
/// `CrawlRequest`s out, each host's only when its politeness delay passed.
/// Its state (seen set, queues, schedule) persists in its data directory;
/// back-off and Crawl-delay are rebuilt from feedback after a restart.
pub async fn run_frontier(
    opts: ServiceOptions,
    f_opts: FrontierServiceOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<FrontierRun, ServiceError> {
    let mut frontier = open_frontier(&f_opts.data_dir, f_opts.config)?;
    // Seeds go through the bus, to the frontier that owns their host.
    publish_seeds(opts.bus.as_ref(), &f_opts.seeds).await?;
    let group = format!("{}-frontier", opts.group);
    let mut sub = opts
        .bus
        .subscribe(
            &group,
            &[topics::SEEDS, topics::DISCOVERED, topics::FEEDBACK],
        )
        .await?;
    let partitions = sub.partition_count(topics::DISCOVERED).await?;
    let mut ownership = Ownership::default();
    opts.ready.store(true, Ordering::Relaxed);
    info!(queued = frontier.pending(), "frontier consuming");
    let mut run = FrontierRun {
        dispatched: 0,
        completed: 0,
        idle: false,
    };
    let mut tick = tokio::time::interval(COMMIT_EVERY);
    let mut idle_since: Option<Instant> = None;
    let mut ticks: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        if let Some(lost) = ownership.observe(sub.rebalances(), topics::DISCOVERED, partitions) {
            hand_off(&opts, &mut frontier, &lost, partitions).await?;
        }
        let mut ready = Vec::new();
        while let Some(req) = frontier.next_ready(Instant::now()) {
            ready.push(req);
        }
        // Sent concurrently (the producer batches them), acknowledged before
        // anything else happens.
        futures_util::future::try_join_all(
            ready
                .iter()
                .map(|r| opts.bus.publish(topics::FETCH, &r.host, r.encode_to_vec())),
        )
        .await?;
        run.dispatched += ready.len() as u64;
        metrics::counter!("linkgraph_frontier_dispatched_requests_total")
            .increment(ready.len() as u64);
        metrics::gauge!("linkgraph_frontier_queued_urls").set(frontier.pending() as f64);
        metrics::gauge!("linkgraph_frontier_inflight_requests").set(frontier.in_flight() as f64);
        metrics::gauge!("linkgraph_frontier_ready_hosts").set(frontier.ready_hosts() as f64);
        metrics::gauge!("linkgraph_frontier_memtable_bytes")
            .set(frontier.write_buffer_bytes() as f64);
        if frontier.pending() == 0 && frontier.in_flight() == 0 {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if f_opts
                .exit_when_idle
                .is_some_and(|limit| since.elapsed() >= limit)
            {
                run.idle = true;
                break;
            }
        } else {
            idle_since = None;
        }
        let wake = frontier.next_wakeup();
        tokio::select! {
            r = sub.recv() => match r {
                Err(e) => consume_error(&e).await?,
                Ok(None) => break,
                Ok(Some(m)) => {
                    // Then what is already buffered, before the next dispatch
                    // waits for the broker: a page brings a few messages
                    // (its discoveries and its feedback), and taking one per
                    // dispatch round trip left the frontier waiting on
                    // acknowledgements most of the time. They are applied
                    // together, in one write.
                    let mut received = vec![m];
                    let mut failed = None;
                    while received.len() < DRAIN_MAX {
                        match sub.recv().now_or_never() {
                            Some(Ok(Some(m))) => received.push(m),
                            Some(Err(e)) => {
                                failed = Some(e);
                                break;
                            }
                            // Closed: the next receive says so.
                            Some(Ok(None)) | None => break,
                        }
                    }
                    apply_all(&opts, &mut frontier, sub.as_mut(), received, partitions, &mut run)
                        .await?;
                    if let Some(e) = failed {
                        consume_error(&e).await?;
                    }
                }
            },
            () = sleep_until(wake) => {}
            _ = tick.tick() => {
                ticks += 1;
                if ticks.is_multiple_of(10) {
                    info!(
                        queued = frontier.pending(),
                        in_flight = frontier.in_flight(),
                        dispatched = run.dispatched,
                        completed = run.completed,
                        "frontier progress"
                    );
                }
                if frontier.active_pending() == 0 && frontier.in_flight() == 0 {
                    frontier.enqueue_due(now_ms(), DUE_BATCH)?;
                }
                // A request whose feedback is lost must not hold its host forever.
                frontier.redispatch_overdue(Instant::now(), f_opts.inflight_deadline)?;
                frontier.flush()?;
                commit(sub.as_mut()).await;
            }
            () = &mut shutdown => {
                info!(in_flight = frontier.in_flight(), "stop requested");
                break;
            }
        }
    }
    opts.ready.store(false, Ordering::Relaxed);
    frontier.flush()?;
    commit(sub.as_mut()).await;
    Ok(run)
}

/// Which partitions of one topic a consumer owns, through rebalances.
#[derive(Debug, Default)]
struct Ownership {
    /// At the last stable assignment; `None` before the first.
    owned: Option<BTreeSet<i32>>,
    current: BTreeSet<i32>,
    stable: bool,
}

impl Ownership {
    /// Applies assignment changes; once the assignment is stable again,
    /// returns the partitions lost since the previous stable one, if any.
    /// (An eager rebalance revokes everything, then assigns the new set, so
    /// only the difference between stable sets has moved.) Before the first
    /// assignment every partition counts as held: state persisted by an
    /// earlier run for partitions now owned elsewhere is handed over too.
    fn observe(
        &mut self,
        events: Vec<Rebalanced>,
        topic: &str,
        partitions: i32,
    ) -> Option<BTreeSet<i32>> {
        if events.is_empty() {
            return None;
        }
        for e in events {
            match e {
                Rebalanced::Assigned(ps) => {
                    self.current
                        .extend(ps.into_iter().filter(|(t, _)| t == topic).map(|(_, p)| p));
                    self.stable = true;
                }
                Rebalanced::Revoked(ps) => {
                    for (_, p) in ps.into_iter().filter(|(t, _)| t == topic) {
                        self.current.remove(&p);
                    }
                    self.stable = false;
                }
            }
        }
        if !self.stable {
            return None;
        }
        let before = self
            .owned
            .take()
            .unwrap_or_else(|| (0..partitions).collect());
        let lost: BTreeSet<i32> = before.difference(&self.current).copied().collect();
        self.owned = Some(self.current.clone());
        (!lost.is_empty()).then_some(lost)
    }
}

/// Hands the hosts of partitions this frontier lost to their new owner:
/// their queued and known URLs leave this frontier's state and are
/// published as discoveries, which land in the new owner's partitions.
async fn hand_off(
    opts: &ServiceOptions,
    frontier: &mut Frontier,
    lost: &BTreeSet<i32>,
    partitions: i32,
) -> Result<(), ServiceError> {
    let moved = frontier.hand_off(|h| lost.contains(&partition_for(h, partitions)))?;
    futures_util::future::try_join_all(moved.iter().map(|d| {
        opts.bus
            .publish(topics::DISCOVERED, &d.host, d.encode_to_vec())
    }))
    .await?;
    frontier.flush()?;
    metrics::counter!("linkgraph_frontier_handed_off_urls_total").increment(moved.len() as u64);
    info!(partitions = ?lost, urls = moved.len(), "handed hosts of lost partitions to their new owner");
    Ok(())
}

/// The URLs of a `linkgraph.discovered` message: a `DiscoveredBatch`, or a
/// single `DiscoveredUrl` (hand-offs, and parsers older than batches). A
/// single URL decodes as an empty batch (the batch's field is one that
/// `DiscoveredUrl` reserves).
fn discovered(payload: &[u8]) -> Result<Vec<DiscoveredUrl>, String> {
    let batch = DiscoveredBatch::decode(payload).map_err(|e| e.to_string())?;
    if !batch.urls.is_empty() {
        return Ok(batch.urls);
    }
    let one = DiscoveredUrl::decode(payload).map_err(|e| e.to_string())?;
    if one.url.is_empty() {
        return Err("discovered message without a url".into());
    }
    Ok(vec![one])
}

/// Applies frontier messages received together, in order: a seed on its
/// own, and each run of discoveries and feedback between two seeds as one
/// atomic write ([`Frontier::complete_all`]; a discovery batch is a
/// feedback without a request). Malformed messages are skipped, engine
/// errors are fatal; a message is acknowledged once its write is done.
async fn apply_all(
    opts: &ServiceOptions,
    frontier: &mut Frontier,
    sub: &mut dyn Subscription,
    received: Vec<Message>,
    partitions: i32,
    run: &mut FrontierRun,
) -> Result<(), ServiceError> {
    // Decoded and waiting for the run's write, each with its message.
    let mut pending: Vec<(FrontierFeedback, Message)> = Vec::new();
    for m in received {
        if m.partition != partition_for(&m.key, partitions) {
            // Hand-offs find a host's partition by this hash.
            warn!(topic = %m.topic, partition = m.partition, "message in an unexpected partition for its key");
            metrics::counter!("linkgraph_bus_partition_mismatches_total").increment(1);
        }
        let bad = match m.topic.as_str() {
            t if t == topics::SEEDS => {
                write_updates(frontier, sub, &mut pending, run)?;
                match DiscoveredUrl::decode(m.payload.as_slice()) {
                    Ok(d) => match frontier.add_seed(&d.url) {
                        Ok(_) => None,
                        Err(FrontierError::BadSeed(e)) => {
                            Some(format!("bad seed {:?}: {e}", d.url))
                        }
                        Err(e) => return Err(e.into()),
                    },
                    Err(e) => Some(e.to_string()),
                }
            }
            t if t == topics::DISCOVERED => match discovered(&m.payload) {
                Ok(urls) => {
                    let fb = FrontierFeedback {
                        discovered: urls,
                        ..FrontierFeedback::default()
                    };
                    pending.push((fb, m));
                    continue;
                }
                Err(e) => Some(e),
            },
            _ => match FrontierFeedback::decode(m.payload.as_slice()) {
                Ok(fb) if fb.request.is_some() => {
                    pending.push((fb, m));
                    continue;
                }
                Ok(_) => Some("feedback without a request".into()),
                Err(e) => Some(e.to_string()),
            },
        };
        match bad {
            Some(e) => malformed(opts, sub, &m, &e).await,
            None => sub.ack(&m),
        }
    }
    write_updates(frontier, sub, &mut pending, run)
}

/// Writes the decoded discoveries and feedback as one batch, then
/// acknowledges their messages.
fn write_updates(
    frontier: &mut Frontier,
    sub: &mut dyn Subscription,
    pending: &mut Vec<(FrontierFeedback, Message)>,
    run: &mut FrontierRun,
) -> Result<(), ServiceError> {
    if pending.is_empty() {
        return Ok(());
    }
    frontier.complete_all(pending.iter().map(|(fb, _)| fb), now_ms())?;
    for (fb, m) in pending.drain(..) {
        run.completed += u64::from(fb.request.is_some());
        sub.ack(&m);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(topic: &str, ps: &[i32]) -> Vec<(String, i32)> {
        ps.iter().map(|p| (topic.to_owned(), *p)).collect()
    }

    fn url(u: &str, host: &str) -> DiscoveredUrl {
        DiscoveredUrl {
            url: u.into(),
            host: host.into(),
            ..DiscoveredUrl::default()
        }
    }

    #[test]
    fn discoveries_travel_one_batch_per_host_and_single_urls_still_decode() {
        let found = vec![
            url("http://a.com/1", "a.com"),
            url("http://b.org/", "b.org"),
            url("http://a.com/2", "a.com"),
        ];
        let batches = by_host(found.clone());
        let hosts: Vec<&str> = batches.iter().map(|(h, _)| h.as_str()).collect();
        assert_eq!(hosts, ["a.com", "b.org"]);
        let decoded: Vec<DiscoveredUrl> = batches
            .iter()
            .flat_map(|(_, b)| discovered(&b.encode_to_vec()).unwrap_or_default())
            .collect();
        assert_eq!(
            decoded,
            vec![found[0].clone(), found[2].clone(), found[1].clone()]
        );
        // A single DiscoveredUrl (a hand-off, an older parser) is one URL.
        let one = found[1].encode_to_vec();
        assert_eq!(discovered(&one), Ok(vec![found[1].clone()]));
        // Neither: malformed, with a reason.
        assert!(discovered(&DiscoveredBatch::default().encode_to_vec()).is_err());
        assert!(discovered(b"\xff\xff\xff").is_err());
    }

    #[test]
    fn one_item_per_key_at_a_time_in_order() {
        let mut q = KeyedQueue::default();
        assert_eq!(q.offer("a", 1), Some(1));
        assert_eq!(q.offer("a", 2), None);
        assert_eq!(q.offer("b", 3), Some(3));
        assert_eq!(q.offer("a", 4), None);
        assert_eq!(q.queued, 2);
        assert_eq!(q.done("a"), Some(2));
        assert_eq!(q.done("b"), None);
        assert_eq!(q.offer("b", 5), Some(5), "b is free again");
        assert_eq!(q.done("a"), Some(4));
        assert_eq!(q.done("a"), None);
        assert_eq!(q.offer("a", 6), Some(6));
        assert_eq!(q.queued, 0);
    }

    #[test]
    fn ownership_reports_only_partitions_that_moved() {
        let t = "linkgraph.discovered";
        let mut o = Ownership::default();
        // First assignment: what an earlier run may hold elsewhere is lost.
        let first = vec![Rebalanced::Assigned(parts(t, &[0, 1, 2, 3]))];
        assert_eq!(o.observe(first, t, 6), Some(BTreeSet::from([4, 5])));
        // Eager rebalance: revoke all, then a smaller set; other topics ignored.
        let revoke = vec![Rebalanced::Revoked(parts(t, &[0, 1, 2, 3]))];
        assert_eq!(o.observe(revoke, t, 6), None);
        let again = vec![
            Rebalanced::Assigned(parts(t, &[0, 2])),
            Rebalanced::Assigned(parts("other", &[1, 3])),
        ];
        assert_eq!(o.observe(again, t, 6), Some(BTreeSet::from([1, 3])));
        // Revoked and given back the same: nothing moved.
        let same = vec![
            Rebalanced::Revoked(parts(t, &[0, 2])),
            Rebalanced::Assigned(parts(t, &[0, 2])),
        ];
        assert_eq!(o.observe(same, t, 6), None);
        assert_eq!(o.observe(Vec::new(), t, 6), None);
        // A sole frontier owns everything from the start: nothing to hand over.
        let mut sole = Ownership::default();
        let all = vec![Rebalanced::Assigned(parts(t, &[0, 1, 2]))];
        assert_eq!(sole.observe(all, t, 3), None);
    }
}
