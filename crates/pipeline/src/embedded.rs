//! The embedded crawl: frontier, fetcher, parser and store in one process,
//! the stages passing the wire-contract messages in memory.
//!
//! One task owns the frontier and dispatches ready requests; each request
//! runs as its own task (fetch, parse on the blocking pool, store), and its
//! feedback returns to the frontier only after the store acknowledged the
//! write. So a crawl stopped at any point has stored everything the
//! frontier believes done, and re-fetches at most what was in flight. A
//! task also tells the frontier as soon as its fetch is over, which frees
//! the host's slot while the page is parsed and stored
//! ([`Frontier::fetched`]): the host waits for its responses, not for our
//! writes.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use linkgraph_core::now_ms;
use linkgraph_fetcher::{ArchivedRobots, Fetcher, FetcherConfig, FetcherError, RobotsArchive};
use linkgraph_frontier::{Frontier, FrontierConfig, FrontierError};
use linkgraph_parser::ParseLimits;
use linkgraph_proto::{CrawlRequest, FetchOutcome, FrontierFeedback};
use linkgraph_store::{FjallStore, LinkStore, StoreError};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::record::Recorder;
use crate::{sleep_until, stages};

/// Due URLs queued per look at the schedule.
const DUE_BATCH: usize = 100_000;

/// Everything a crawl needs.
#[derive(Debug, Clone)]
pub struct CrawlOptions {
    /// Seed URLs (already read from files).
    pub seeds: Vec<String>,
    /// The data directory (created if missing).
    pub data_dir: PathBuf,
    /// The link store URL; `None` for the embedded store in `data_dir/store`.
    pub store_url: Option<String>,
    /// Stop after dispatching this many URLs in this run.
    pub max_pages: Option<u64>,
    /// Requests in flight at once, across hosts.
    pub concurrency: usize,
    /// Frontier limits.
    pub frontier: FrontierConfig,
    /// Fetcher settings.
    pub fetcher: FetcherConfig,
    /// Parser bounds.
    pub parse_limits: ParseLimits,
    /// Show live progress on stderr when it is a terminal.
    pub progress: bool,
    /// Keep crawling and recrawling until stopped, instead of stopping when
    /// nothing is queued or due.
    pub continuous: bool,
}

/// Why a crawl could not run or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    /// The data directory cannot be created.
    #[error("cannot create data directory {path:?}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The link store failed; the crawl stops so nothing is lost.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The frontier failed.
    #[error(transparent)]
    Frontier(#[from] FrontierError),
    /// The fetcher could not be built.
    #[error(transparent)]
    Fetcher(#[from] FetcherError),
    /// No seeds were given and nothing is queued from an earlier run.
    #[error("nothing to crawl: no seeds given and no queued URLs in {0:?}")]
    NothingToDo(PathBuf),
    /// A page could not be parsed and stored.
    #[error(transparent)]
    Record(#[from] crate::record::RecordError),
    /// A crawl task panicked (a bug); its URL stays queued for the next run.
    #[error("a crawl task failed: {0}")]
    Task(String),
}

/// Why the crawl ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Every queued and due URL was crawled.
    FrontierEmpty,
    /// `max_pages` URLs were dispatched.
    MaxPages,
    /// Stopped by a signal; queued URLs remain for the next run.
    Interrupted,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::FrontierEmpty => "frontier empty",
            StopReason::MaxPages => "page limit reached",
            StopReason::Interrupted => "interrupted",
        })
    }
}

/// What a crawl did.
#[derive(Debug, Clone)]
pub struct CrawlSummary {
    /// URLs crawled (every outcome).
    pub pages: u64,
    /// URLs by outcome label.
    pub by_outcome: BTreeMap<&'static str, u64>,
    /// Edges written (new or refreshed).
    pub edges: u64,
    /// Edges not stored before (or live again).
    pub new_edges: u64,
    /// Live edges found lost.
    pub lost_edges: u64,
    /// Known URLs queued again because their next fetch was due.
    pub recrawls: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Why it ended.
    pub stop: StopReason,
    /// URLs still queued.
    pub queued_left: usize,
    /// Hosts parked after repeated failures (their URLs stay queued).
    pub parked_hosts: usize,
    /// Peak resident memory of the process, when known.
    pub peak_rss_bytes: Option<u64>,
}

impl CrawlSummary {
    /// Pages per second.
    pub fn pages_per_sec(&self) -> f64 {
        self.pages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// Edges written per second.
    pub fn edges_per_sec(&self) -> f64 {
        self.edges as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for CrawlSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcomes: Vec<String> = self
            .by_outcome
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(f, "crawl finished: {}", self.stop)?;
        writeln!(f, "  pages     {} ({})", self.pages, outcomes.join(", "))?;
        writeln!(
            f,
            "  edges     {} written, {} new, {} lost",
            self.edges, self.new_edges, self.lost_edges
        )?;
        writeln!(f, "  recrawls  {} due URLs queued", self.recrawls)?;
        writeln!(
            f,
            "  time      {:.1} s, {:.1} pages/s, {:.1} edges/s",
            self.elapsed.as_secs_f64(),
            self.pages_per_sec(),
            self.edges_per_sec()
        )?;
        if let Some(rss) = self.peak_rss_bytes {
            writeln!(f, "  peak RSS  {:.1} MiB", rss as f64 / (1024.0 * 1024.0))?;
        }
        write!(
            f,
            "  queued    {} URLs left, {} hosts parked",
            self.queued_left, self.parked_hosts
        )
    }
}

/// Peak resident set size of this process (Linux `VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    status_bytes("VmHWM:")
}

/// A size field of `/proc/self/status` (e.g. `VmRSS:`), in bytes.
pub fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

struct Done {
    feedback: FrontierFeedback,
    outcome: FetchOutcome,
    /// A temporary failure's URL and error, which its host backs off for.
    failure: Option<(String, String)>,
    edges: u64,
    new_edges: u64,
    lost_edges: u64,
}

#[derive(Default)]
struct Live {
    pages: AtomicU64,
    errors: AtomicU64,
    queued: AtomicU64,
}

/// Crawls until the frontier is empty, `max_pages` is reached, or
/// `shutdown` resolves; then flushes everything and reports.
pub async fn crawl(
    opts: CrawlOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<CrawlSummary, CrawlError> {
    let store = open_store(&opts).await?;
    crawl_into(opts, store, shutdown).await
}

/// Creates the crawl's data directory and opens its link store for
/// writing: `--store`, or the embedded store in the data directory. Share
/// it (e.g. with the API) and pass it to [`crawl_into`].
pub async fn open_store(opts: &CrawlOptions) -> Result<Arc<dyn LinkStore>, CrawlError> {
    std::fs::create_dir_all(&opts.data_dir).map_err(|source| CrawlError::DataDir {
        path: opts.data_dir.clone(),
        source,
    })?;
    Ok(match &opts.store_url {
        Some(url) => linkgraph_store::open(url, true).await?,
        None => Arc::new(FjallStore::open(
            &linkgraph_store::data_store_path(&opts.data_dir),
            true,
        )?),
    })
}

/// [`crawl`] into an open store (see [`open_store`]).
pub async fn crawl_into(
    opts: CrawlOptions,
    store: Arc<dyn LinkStore>,
    shutdown: impl Future<Output = ()>,
) -> Result<CrawlSummary, CrawlError> {
    let started = Instant::now();
    let mut frontier = Frontier::open(
        &linkgraph_frontier::data_frontier_path(&opts.data_dir),
        opts.frontier.clone(),
    )?;
    for s in &opts.seeds {
        if let Err(e) = frontier.add_seed(s) {
            warn!(seed = %s, error = %e, "skipping seed");
        }
    }
    let mut recrawls = frontier.enqueue_due(now_ms(), DUE_BATCH)? as u64;
    if frontier.pending() == 0 && opts.seeds.is_empty() && frontier.next_due_ms().is_none() {
        return Err(CrawlError::NothingToDo(opts.data_dir.clone()));
    }
    // The last good robots.txt of each origin outlives the run, in the
    // frontier's database.
    let archive: Arc<dyn RobotsArchive> = Arc::new(RobotsTable(frontier.robots_table()));
    let fetcher = Fetcher::with_archive(fetcher_config(&opts), Some(archive))?;
    let recorder = Recorder::new(
        Arc::clone(&store),
        fetcher.product_token(),
        opts.parse_limits,
        opts.frontier.url_policy.clone(),
    );
    let concurrency = opts.concurrency.max(1);
    info!(
        seeds = opts.seeds.len(),
        queued = frontier.pending(),
        concurrency,
        "crawl starting"
    );

    let live = Arc::new(Live::default());
    let progress = (opts.progress && std::io::stderr().is_terminal())
        .then(|| tokio::spawn(report_progress(Arc::clone(&live), started)));

    let mut summary = CrawlSummary {
        pages: 0,
        by_outcome: BTreeMap::new(),
        edges: 0,
        new_edges: 0,
        lost_edges: 0,
        recrawls: 0,
        elapsed: Duration::ZERO,
        stop: StopReason::FrontierEmpty,
        queued_left: 0,
        parked_hosts: 0,
        peak_rss_bytes: None,
    };
    let mut tasks: JoinSet<Result<Done, CrawlError>> = JoinSet::new();
    // Each task says here when its fetch is over, so that its host's slot
    // frees while the page is parsed and stored.
    let (fetched_tx, mut fetched_rx) = mpsc::unbounded_channel::<FrontierFeedback>();
    let mut dispatched: u64 = 0;
    let mut stop: Option<StopReason> = None;
    let mut failure: Option<CrawlError> = None;
    // The last temporary failure, and the wake-up an idle wait was last
    // announced for (see `announce_backoff`).
    let mut last_failure: Option<(String, String)> = None;
    let mut announced: Option<Instant> = None;
    tokio::pin!(shutdown);

    loop {
        while stop.is_none() && tasks.len() < concurrency {
            if opts.max_pages.is_some_and(|m| dispatched >= m) {
                stop = Some(StopReason::MaxPages);
                break;
            }
            let Some(req) = frontier.next_ready(Instant::now()) else {
                break;
            };
            dispatched += 1;
            tasks.spawn(guard_task(
                req.clone(),
                process(req, fetcher.clone(), recorder.clone(), fetched_tx.clone()),
            ));
        }
        live.queued
            .store(frontier.pending() as u64, Ordering::Relaxed);
        metrics::gauge!("linkgraph_frontier_queued_urls").set(frontier.pending() as f64);
        metrics::gauge!("linkgraph_frontier_inflight_requests").set(tasks.len() as f64);
        if tasks.is_empty() && frontier.active_pending() == 0 && stop.is_none() {
            // Idle: queue what has come due; stop, or wait for the next due URL.
            let queued = frontier.enqueue_due(now_ms(), DUE_BATCH)? as u64;
            recrawls += queued;
            if queued > 0 {
                continue;
            }
            if !opts.continuous {
                break;
            }
        }
        if tasks.is_empty() && stop.is_some() {
            break;
        }
        let mut wake = frontier
            .next_wakeup()
            .filter(|_| stop.is_none() && tasks.len() < concurrency);
        if opts.continuous && stop.is_none() && frontier.active_pending() == 0 {
            // Look for due URLs at most a minute apart.
            let until_due = frontier
                .next_due_ms()
                .map_or(60_000, |d| (d - now_ms()).clamp(0, 60_000));
            let at = Instant::now()
                + Duration::from_millis(u64::try_from(until_due).unwrap_or(0).max(200));
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        if let Some(w) = wake
            && tasks.is_empty()
            && stop.is_none()
            && announced != wake
        {
            announce_backoff(&frontier, w, last_failure.as_ref());
            announced = wake;
        }
        tokio::select! {
            Some(fb) = fetched_rx.recv() => {
                let now = Instant::now();
                frontier.fetched(&fb, now);
                while let Ok(fb) = fetched_rx.try_recv() {
                    frontier.fetched(&fb, now);
                }
            }
            Some(joined) = tasks.join_next() => {
                // A task sends its fetch's end before it finishes: taken
                // first, it cannot outlive its request's completion (and
                // free the slot of the URL's next try).
                let now = Instant::now();
                while let Ok(fb) = fetched_rx.try_recv() {
                    frontier.fetched(&fb, now);
                }
                // Every task finished by now completes in one frontier write.
                let mut feedback = Vec::new();
                let mut next = Some(joined);
                while let Some(joined) = next {
                    let (failed, failure, stop) = (&mut last_failure, &mut failure, &mut stop);
                    feedback.extend(account(joined, &mut summary, &live, failed, failure, stop));
                    next = tasks.try_join_next();
                }
                frontier.complete_all(&feedback, now_ms())?;
            }
            () = sleep_until(wake), if wake.is_some() => {}
            () = &mut shutdown, if stop.is_none() => {
                info!(in_flight = tasks.len(), "stop requested; finishing in-flight requests");
                stop = Some(StopReason::Interrupted);
            }
        }
    }

    frontier.flush()?;
    store.flush().await?;
    if let Some(p) = progress {
        p.abort();
        eprint!("\r\x1b[2K");
    }
    if let Some(e) = failure {
        return Err(e);
    }
    summary.stop = stop.unwrap_or(StopReason::FrontierEmpty);
    summary.recrawls = recrawls;
    summary.queued_left = frontier.pending();
    summary.parked_hosts = frontier.parked_hosts();
    summary.elapsed = started.elapsed();
    summary.peak_rss_bytes = peak_rss_bytes();
    Ok(summary)
}

/// Says why a crawl with nothing in flight waits at least [`IDLE_NOTICE`]
/// for `wake`, when it is for hosts backing off after failures: otherwise a
/// crawl whose only host refuses connections waits minutes (each back-off
/// doubles, up to `--park-after` failures) without a word.
fn announce_backoff(frontier: &Frontier, wake: Instant, last_failure: Option<&(String, String)>) {
    let wait = wake.saturating_duration_since(Instant::now());
    if wait < IDLE_NOTICE {
        // Short waits (a polite crawl's tail) need no word, nor a scan of
        // the hosts.
        return;
    }
    let hosts = frontier.backing_off_hosts();
    if hosts == 0 {
        return;
    }
    let (url, error) = last_failure.map_or(("", ""), |(u, e)| (u.as_str(), e.as_str()));
    warn!(
        hosts,
        next_try_in_s = (wait.as_secs_f64() * 10.0).round() / 10.0,
        last_failed_url = url,
        last_error = error,
        "nothing to fetch until failing hosts' back-off ends \
         (a host is parked after --park-after failures in a row)"
    );
}

/// The shortest idle wait for failing hosts that [`announce_backoff`] tells.
const IDLE_NOTICE: Duration = Duration::from_secs(1);

/// The fetcher's settings for a crawl of `opts`: a host's own concurrency
/// (`--per-host-concurrency`) is cut neither by its address's cap (with the
/// default cap of 8, 16 at once sent 8) nor by the connections kept open for
/// it (with 2 kept, 14 of 16 responses closed theirs, and the next requests
/// opened new ones).
fn fetcher_config(opts: &CrawlOptions) -> FetcherConfig {
    let per_host = opts.frontier.per_host_concurrency;
    let mut cfg = opts.fetcher.clone();
    if cfg.per_ip_concurrency > 0 {
        cfg.per_ip_concurrency = cfg.per_ip_concurrency.max(per_host);
    }
    cfg.keep_alive_per_host = cfg.keep_alive_per_host.max(per_host);
    cfg
}

/// Counts one finished task in `summary` and `live`, and returns its
/// feedback; a failed task (the store failed, or a task could not run)
/// records the failure and stops the crawl instead.
fn account(
    joined: Result<Result<Done, CrawlError>, tokio::task::JoinError>,
    summary: &mut CrawlSummary,
    live: &Live,
    last_failure: &mut Option<(String, String)>,
    failure: &mut Option<CrawlError>,
    stop: &mut Option<StopReason>,
) -> Option<FrontierFeedback> {
    let e = match joined {
        Ok(Ok(done)) => {
            summary.pages += 1;
            summary.lost_edges += done.lost_edges;
            *summary.by_outcome.entry(done.outcome.label()).or_default() += 1;
            summary.edges += done.edges;
            summary.new_edges += done.new_edges;
            live.pages.fetch_add(1, Ordering::Relaxed);
            if done.outcome.is_error() {
                live.errors.fetch_add(1, Ordering::Relaxed);
            }
            if done.failure.is_some() {
                *last_failure = done.failure;
            }
            return Some(done.feedback);
        }
        // The store failed: stop dispatching, drain, report.
        Ok(Err(e)) => e,
        Err(e) => CrawlError::Task(e.to_string()),
    };
    warn!(error = %e, "stopping crawl");
    failure.get_or_insert(e);
    stop.get_or_insert(StopReason::Interrupted);
    None
}

/// Runs one request's task. A panic in it (a bug) is caught, counted and
/// logged with the URL, and the URL completes as failed
/// ([`FetchOutcome::InternalError`]) instead of ending the crawl.
async fn guard_task(
    req: CrawlRequest,
    task: impl Future<Output = Result<Done, CrawlError>>,
) -> Result<Done, CrawlError> {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(task).catch_unwind().await {
        Ok(done) => done,
        Err(panic) => {
            let message = stages::report_panic(&req.url, panic.as_ref());
            let page = stages::internal_error(req, 0, now_ms(), &message);
            Ok(Done {
                feedback: stages::feedback(&page),
                outcome: FetchOutcome::InternalError,
                failure: None,
                edges: 0,
                new_edges: 0,
                lost_edges: 0,
            })
        }
    }
}

/// The robots.txt archive on a frontier side table.
struct RobotsTable(linkgraph_frontier::SideTable);

impl RobotsArchive for RobotsTable {
    fn load(&self, origin: &str) -> Option<ArchivedRobots> {
        match self.0.get(origin.as_bytes()) {
            Ok(v) => v.and_then(|v| ArchivedRobots::decode(&v)),
            Err(e) => {
                warn!(error = %e, "cannot read the robots.txt archive");
                None
            }
        }
    }
    fn save(&self, origin: &str, copy: &ArchivedRobots) {
        if let Err(e) = self.0.put(origin.as_bytes(), &copy.encode()) {
            warn!(error = %e, "cannot write the robots.txt archive");
        }
    }
}

async fn process(
    req: CrawlRequest,
    fetcher: Fetcher,
    recorder: Recorder,
    fetch_over: mpsc::UnboundedSender<FrontierFeedback>,
) -> Result<Done, CrawlError> {
    let fetched = fetcher.fetch(req).await;
    let outcome = fetched.outcome();
    let failure = outcome.is_temporary(fetched.status).then(|| {
        let url = fetched.request.as_ref().map(|r| r.url.clone());
        (url.unwrap_or_default(), fetched.error.clone())
    });
    // The crawl loop may have stopped listening (a failure); the
    // completion still frees the slot.
    let _ = fetch_over.send(FrontierFeedback {
        request: fetched.request.clone(),
        outcome: fetched.outcome,
        status: fetched.status,
        retry_after_ms: fetched.retry_after_ms,
        crawl_delay_ms: fetched.crawl_delay_ms,
        ..FrontierFeedback::default()
    });
    let (feedback, stats) = recorder.record(fetched).await?;
    Ok(Done {
        feedback,
        outcome,
        failure,
        edges: stats.edges,
        new_edges: stats.new_edges,
        lost_edges: stats.lost_edges,
    })
}

async fn report_progress(live: Arc<Live>, started: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let pages = live.pages.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2Kpages {pages}  {:.1} pages/s  errors {}  queued {}",
            pages as f64 / secs,
            live.errors.load(Ordering::Relaxed),
            live.queued.load(Ordering::Relaxed)
        );
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hosts_own_concurrency_sets_its_address_cap_and_kept_connections() {
        let opts = |per_host: usize, per_ip: usize| CrawlOptions {
            seeds: Vec::new(),
            data_dir: PathBuf::new(),
            store_url: None,
            max_pages: None,
            concurrency: 64,
            frontier: FrontierConfig {
                per_host_concurrency: per_host,
                ..FrontierConfig::default()
            },
            fetcher: FetcherConfig {
                per_ip_concurrency: per_ip,
                ..FetcherConfig::default()
            },
            parse_limits: ParseLimits::default(),
            progress: false,
            continuous: false,
        };
        let cfg = fetcher_config(&opts(16, 8));
        assert_eq!((cfg.per_ip_concurrency, cfg.keep_alive_per_host), (16, 16));
        // No address cap stays none.
        let cfg = fetcher_config(&opts(16, 0));
        assert_eq!((cfg.per_ip_concurrency, cfg.keep_alive_per_host), (0, 16));
        // One at a time (the default): the fetcher's own defaults hold.
        let cfg = fetcher_config(&opts(1, 8));
        assert_eq!((cfg.per_ip_concurrency, cfg.keep_alive_per_host), (8, 2));
    }

    #[tokio::test]
    async fn a_panicking_task_completes_its_url_as_failed() {
        let req = CrawlRequest {
            url: "http://a.com/café".into(),
            host: "a.com".into(),
            ..Default::default()
        };
        let task = async { panic!("byte index 5 is not a char boundary") };
        let done = guard_task(req, task)
            .await
            .unwrap_or_else(|e| panic!("a caught panic is not an error: {e}"));
        assert_eq!(done.outcome, FetchOutcome::InternalError);
        assert_eq!(done.feedback.outcome, FetchOutcome::InternalError as i32);
        assert_eq!(
            done.feedback.request.map(|r| r.url).as_deref(),
            Some("http://a.com/café")
        );
        assert!(done.feedback.discovered.is_empty());
    }
}
