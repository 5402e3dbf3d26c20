//! The link store: the [`LinkStore`] trait every backend implements, its
//! query types, the link-diff, and the fjall and ScyllaDB backends.
//!
//! Backends are chosen by URL (`fjall:///var/lib/linkgraph`,
//! `scylla://host:9042/keyspace`); see [`open`].
//! Every write is idempotent: writing the same page twice leaves the store as
//! writing it once (apart from `last_seen`), so at-least-once delivery never
//! duplicates an edge.
//!
//! # Layout
//! * this file: the [`LinkStore`] trait, its types, [`open`] and [`init`];
//! * [`diff`]: the link-change rules, as one pure function both backends persist;
//! * `fjall_store`: the embedded backend ([`FjallStore`]);
//! * `scylla` (feature `scylla`): the ScyllaDB backend, its write plans and a
//!   model of CQL for tests;
//! * [`lock`]: one process at a time per embedded store;
//! * `conformance` (tests, or feature `testsuite`): the behaviour every
//!   backend must show.

#[cfg(any(test, feature = "testsuite"))]
pub mod conformance;
pub mod diff;
mod fjall_store;
pub mod lock;
#[cfg(feature = "scylla")]
pub mod scylla;

use std::path::PathBuf;

use async_trait::async_trait;
use linkgraph_core::Link;

pub use fjall_store::FjallStore;
#[cfg(feature = "scylla")]
pub use scylla::{ScyllaStore, ScyllaUri};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL is malformed or names an unknown backend.
    #[error("invalid store url {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The data directory does not exist (read-only commands never create it).
    #[error("data directory {0:?} does not exist")]
    Missing(PathBuf),
    /// The engine could not open the data directory.
    #[error("cannot open store at {path:?}: {source}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// The engine's error.
        source: fjall::Error,
    },
    /// The storage engine failed.
    #[error("storage engine error: {0}")]
    Engine(#[from] fjall::Error),
    /// A stored value does not decode.
    #[error("corrupt {table} row {key:?}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row key (lossy UTF-8).
        key: String,
        /// The decoder's error.
        reason: String,
    },
    /// A ScyllaDB request failed (after the driver's retries).
    #[error("scylla {op} failed")]
    Scylla {
        /// What was being done.
        op: &'static str,
        /// The driver's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The keyspace has no linkgraph schema.
    #[error(
        "keyspace {0:?} is not initialized: run `linkgraph store init --store scylla://HOST:PORT/{0}`"
    )]
    NotInitialized(String),
    /// A blocking task panicked or was cancelled.
    #[error("store task failed: {0}")]
    Task(String),
    /// The engine could not commit a group of page writes: none of them
    /// is stored.
    #[error("committing a batch of {pages} page writes failed: {message}")]
    Commit {
        /// Pages in the batch.
        pages: usize,
        /// The engine's error.
        message: String,
    },
    /// Another process holds the embedded store.
    #[error("the link store {path:?} is busy: {reason}")]
    Busy {
        /// The store directory.
        path: PathBuf,
        /// Who holds it, and what to do.
        reason: String,
    },
    /// The data directory was written in a layout this build cannot read.
    #[error(
        "the link store {path:?} has format {found}, and this linkgraph reads at most format {supported}: use a newer linkgraph, or crawl into a new --data directory"
    )]
    Format {
        /// The store directory.
        path: PathBuf,
        /// The format it has.
        found: u32,
        /// The newest format this build knows.
        supported: u32,
    },
    /// The data directory was written by a build whose layout was
    /// withdrawn (format 4: four engine instances, reverted).
    #[error(
        "the link store {0:?} has format 4, written by a withdrawn development build (four engine instances) that no release reads: crawl into a new --data directory"
    )]
    WithdrawnFormat(PathBuf),
    /// A paging cursor that this store did not hand out.
    #[error("invalid cursor {0:?}")]
    BadCursor(String),
    /// The store's lock file cannot be used.
    #[error("cannot use the lock file {path:?}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What a page observation says about its outlinks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LinkSetUpdate {
    /// `links` is the page's complete outlink set now (a 200 page, a redirect,
    /// or a page that is gone with none): links not in it are lost.
    #[default]
    Replace,
    /// The fetch failed temporarily (5xx, timeout, robots unavailable): the
    /// page keeps the links it had.
    Keep,
    /// The server said the page is unchanged (304): it keeps its links, and
    /// they were seen again now.
    Unchanged,
}

/// The outcome of one fetched page, with the links found on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageWrite {
    /// Canonical URL of the page.
    pub url: String,
    /// HTTP status (0 when none).
    pub status: u32,
    /// The fetch outcome (`linkgraph_proto::FetchOutcome` as i32).
    pub outcome: i32,
    /// When it was fetched (ms since the Unix epoch).
    pub fetched_at_ms: i64,
    /// Its outlinks, unique by target URL.
    pub links: Vec<Link>,
    /// Whether `links` replaces the stored outlink set.
    pub update: LinkSetUpdate,
    /// Hash of the body (0 when none).
    pub content_hash: u64,
    /// The page says noindex: `links` is empty, and links it had are lost
    /// with [`LostReason::Noindex`].
    pub noindex: bool,
    /// The address the fetcher connected to for this page's host, when it
    /// connected (recorded per host, for the `shared_network` risk signal).
    pub remote_ip: Option<std::net::IpAddr>,
}

/// What a write changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Edges that did not exist before.
    pub new_edges: u64,
    /// Edges written (new or refreshed).
    pub edges: u64,
    /// Edges that were live and are now lost.
    pub lost_edges: u64,
    /// The page's content or outlink set differs from its previous fetch.
    pub changed: bool,
}

/// Which rows a query returns, by link status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Status {
    /// Rows that are live now.
    #[default]
    Live,
    /// Rows that were lost and have not come back.
    Lost,
    /// Both.
    All,
}

impl Status {
    /// True when a row lost at `lost_at_ms` (0 = live) passes the filter.
    pub fn admits(self, lost_at_ms: i64) -> bool {
        match self {
            Status::Live => lost_at_ms == 0,
            Status::Lost => lost_at_ms != 0,
            Status::All => true,
        }
    }
}

/// What happened to the link graph of a target domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// A link appeared on a page already fetched without it (or came back).
    NewLink = 1,
    /// A live link disappeared from its page, or its page is gone.
    LostLink = 2,
    /// A domain gained its first live link to the target domain.
    NewRefdomain = 3,
    /// A domain lost its last live link to the target domain.
    LostRefdomain = 4,
    /// A link found on the first successful fetch of its page: of unknown
    /// age, so discovered rather than new.
    DiscoveredLink = 5,
    /// A domain's first live link to the target domain was a discovered one.
    DiscoveredRefdomain = 6,
    /// A live link's anchor, rel or placement changed (not a loss).
    ChangedLink = 7,
}

impl EventKind {
    /// The kind stored as code `c`.
    pub fn from_code(c: u8) -> Option<EventKind> {
        [
            EventKind::NewLink,
            EventKind::LostLink,
            EventKind::NewRefdomain,
            EventKind::LostRefdomain,
            EventKind::DiscoveredLink,
            EventKind::DiscoveredRefdomain,
            EventKind::ChangedLink,
        ]
        .into_iter()
        .find(|k| *k as u8 == c)
    }
    /// The lower-case name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::NewLink => "new_link",
            EventKind::LostLink => "lost_link",
            EventKind::NewRefdomain => "new_refdomain",
            EventKind::LostRefdomain => "lost_refdomain",
            EventKind::DiscoveredLink => "discovered_link",
            EventKind::DiscoveredRefdomain => "discovered_refdomain",
            EventKind::ChangedLink => "changed_link",
        }
    }
}

/// Why a link was lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LostReason {
    /// The link is gone from a page that is still there.
    #[default]
    Removed = 1,
    /// The page answers 404 or 410.
    PageGone = 2,
    /// The page now redirects.
    PageRedirected = 3,
    /// The page now says noindex.
    Noindex = 4,
}

impl LostReason {
    /// The reason stored as code `c` (0: none).
    pub fn from_code(c: u32) -> Option<LostReason> {
        [
            LostReason::Removed,
            LostReason::PageGone,
            LostReason::PageRedirected,
            LostReason::Noindex,
        ]
        .into_iter()
        .find(|r| *r as u32 == c)
    }
    /// The lower-case name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            LostReason::Removed => "removed",
            LostReason::PageGone => "page_gone",
            LostReason::PageRedirected => "page_redirected",
            LostReason::Noindex => "noindex",
        }
    }
}

/// One link event of a target domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    /// When it happened (ms), by the clock of the crawl that saw it.
    pub at_ms: i64,
    /// What happened.
    pub kind: EventKind,
    /// The link (for refdomain events: source URL holds the referring
    /// domain, target URL is empty).
    pub link: Link,
    /// For a lost link, why.
    pub lost_reason: Option<LostReason>,
    /// For a changed link, its attributes before: anchor, rel, placement
    /// (`link` holds the new ones).
    pub before: Option<(String, linkgraph_core::Rel, linkgraph_core::Placement)>,
}

/// One referring domain of a target domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefDomain {
    /// The referring registrable domain.
    pub domain: String,
    /// Links from it to the target domain.
    pub links: u64,
    /// Of those, links without nofollow, sponsored or ugc.
    pub follow_links: u64,
    /// Earliest time any of those links was seen (ms).
    pub first_seen_ms: i64,
    /// Latest time any of those links was seen (ms).
    pub last_seen_ms: i64,
    /// When its last live link was lost (ms); `None` while it has live links.
    pub lost_at_ms: Option<i64>,
}

/// One stored backlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlink {
    /// The edge and its attributes.
    pub link: Link,
    /// Earliest time it was seen (ms).
    pub first_seen_ms: i64,
    /// Latest time it was seen (ms).
    pub last_seen_ms: i64,
    /// When it was found missing (ms); `None` while it is live.
    pub lost_at_ms: Option<i64>,
    /// Why it was lost; `None` while it is live.
    pub lost_reason: Option<LostReason>,
}

/// What backlinks to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every URL of a registrable domain.
    Domain(String),
    /// One canonical URL.
    Url(String),
}

/// A backlinks query with paging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacklinkQuery {
    /// The target.
    pub target: Target,
    /// Include links from the target's own registrable domain.
    pub include_internal: bool,
    /// Live, lost or all links.
    pub status: Status,
    /// Rows per page (at least 1).
    pub limit: usize,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

/// The cursor after `b` in a backlinks query: "target URL \0 source URL"
/// (the same for every backend, so a reader can resume after any row).
pub fn backlink_cursor(b: &Backlink) -> String {
    format!("{}\0{}", b.link.target_url, b.link.source_url)
}

/// The cursor after `b` in an outlinks query: "source URL \0 target URL".
pub fn outlink_cursor(b: &Backlink) -> String {
    format!("{}\0{}", b.link.source_url, b.link.target_url)
}

/// One page of backlinks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BacklinkPage {
    /// The rows, ordered by target URL then source URL.
    pub items: Vec<Backlink>,
    /// Cursor for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// The last fetch of a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageState {
    /// HTTP status (0 when no answer: robots.txt denied it, or the network
    /// failed).
    pub status: u32,
    /// The fetch outcome (`linkgraph_proto::FetchOutcome` as i32).
    pub outcome: i32,
    /// When (ms since the Unix epoch).
    pub fetched_at_ms: i64,
}

impl PageState {
    /// The HTTP status to report for this fetch: `None` when it was never
    /// answered (robots.txt denied it, the network failed); a 304 is the 200
    /// it confirmed.
    pub fn http_status(&self) -> Option<u32> {
        match self.status {
            0 => None,
            304 => Some(200),
            s => Some(s),
        }
    }
}

/// An outlinks query with paging: the external links on one registrable
/// domain's pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlinkQuery {
    /// The source registrable domain.
    pub domain: String,
    /// Live, lost or all links.
    pub status: Status,
    /// Rows per page (at least 1).
    pub limit: usize,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

/// A whole table, for bulk export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Every edge ever seen, live and lost.
    Backlinks,
    /// Every (target domain, referring domain) row.
    Refdomains,
    /// Every link event.
    Events,
    /// Every fetched URL with its last fetch.
    Pages,
}

/// One row of a table scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// A backlinks row.
    Backlink(Backlink),
    /// A referring domain of `target_domain`.
    Refdomain {
        /// The target registrable domain.
        target_domain: String,
        /// The row.
        row: RefDomain,
    },
    /// A link event of `target_domain`.
    Event {
        /// The target registrable domain.
        target_domain: String,
        /// The event.
        event: LinkEvent,
    },
    /// A fetched URL.
    Page {
        /// Its canonical URL.
        url: String,
        /// Its last fetch.
        state: PageState,
    },
}

/// One page of a table scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// The rows (key order in fjall, token order in ScyllaDB).
    pub rows: Vec<Row>,
    /// Cursor for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// One domain's ranks from a `rank` run (see `linkgraph-rank`).
#[derive(Debug, Clone, PartialEq)]
pub struct DomainRank {
    /// The registrable domain.
    pub domain: String,
    /// Authority, 0–100: the log scaling of `pagerank`.
    pub authority: f64,
    /// PageRank on the dofollow domain graph (sums to 1 over every domain).
    pub pagerank: f64,
    /// Harmonic centrality over incoming shortest paths.
    pub harmonic: f64,
    /// PageRank personalized to the trusted seeds; `None` without seeds.
    pub trust: Option<f64>,
    /// Live referring domains (any rel) when ranked.
    pub referring_domains: u64,
    /// When the run that computed it finished (ms since the Unix epoch).
    pub computed_at_ms: i64,
}

/// What one `rank` run computed, stored after all its [`DomainRank`] rows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RankRun {
    /// When it finished (ms since the Unix epoch).
    pub computed_at_ms: i64,
    /// Nodes of the domain graph.
    pub nodes: u64,
    /// Arcs of the dofollow domain graph.
    pub arcs: u64,
    /// How harmonic centrality was computed: `exact` or `hyperball(...)`.
    pub harmonic_method: String,
    /// Trusted seed domains found in the graph (0: no trust computed).
    pub trusted: u64,
}

/// The address a host was last fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddr {
    /// The host name.
    pub host: String,
    /// The address the fetcher connected to.
    pub ip: std::net::IpAddr,
    /// When (ms since the Unix epoch).
    pub seen_at_ms: i64,
}

/// A link-graph store backend.
#[async_trait]
pub trait LinkStore: Send + Sync {
    /// Records a fetched page and its outlinks; idempotent.
    async fn write_page(&self, page: PageWrite) -> Result<WriteStats, StoreError>;
    /// The referring domains of `domain` with this status, most links first.
    async fn refdomains(&self, domain: &str, status: Status) -> Result<Vec<RefDomain>, StoreError>;
    /// The link events of `domain` in `[from_ms, to_ms)`, ordered by time,
    /// then kind, then source and target.
    async fn events(
        &self,
        domain: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<LinkEvent>, StoreError>;
    /// One page of backlinks.
    async fn backlinks(&self, query: BacklinkQuery) -> Result<BacklinkPage, StoreError>;
    /// The last fetch of each of `urls` (`None`: never fetched), in order.
    async fn page_states(&self, urls: &[String]) -> Result<Vec<Option<PageState>>, StoreError>;
    /// One page of the external links on a domain's pages, ordered by
    /// source URL then target URL.
    async fn outlinks(&self, query: OutlinkQuery) -> Result<BacklinkPage, StoreError>;
    /// One page of a whole-table scan, for bulk export, after `after` (a
    /// [`ScanPage::next`] of the same table); rows in no documented order.
    async fn scan(
        &self,
        table: Table,
        after: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError>;
    /// True when the store has seen `domain` as a link target or a crawled site.
    async fn knows_domain(&self, domain: &str) -> Result<bool, StoreError>;
    /// Makes every acknowledged write durable.
    async fn flush(&self) -> Result<(), StoreError>;
    /// Stores domain ranks of a run (in chunks; a domain's row is replaced).
    async fn write_ranks(&self, ranks: Vec<DomainRank>) -> Result<(), StoreError>;
    /// Records a finished rank run, after all its rows are written.
    async fn write_rank_run(&self, run: RankRun) -> Result<(), StoreError>;
    /// The last finished rank run; `None` when `rank` never ran.
    async fn rank_run(&self) -> Result<Option<RankRun>, StoreError>;
    /// The stored ranks of `domains`, in order (`None`: not ranked).
    async fn domain_ranks(&self, domains: &[String])
    -> Result<Vec<Option<DomainRank>>, StoreError>;
    /// One page of every stored rank after the domain `after`, in no
    /// documented order, with the cursor of the next page.
    async fn scan_ranks(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<DomainRank>, Option<String>), StoreError>;
    /// The addresses the hosts of registrable domain `domain` were fetched from.
    async fn host_addrs(&self, domain: &str) -> Result<Vec<HostAddr>, StoreError>;
}

/// Records a page write's latency, edges and failure, per backend.
fn record_write(
    backend: &'static str,
    started: std::time::Instant,
    res: &Result<WriteStats, StoreError>,
) {
    metrics::histogram!("linkgraph_store_write_duration_seconds", "backend" => backend)
        .record(started.elapsed().as_secs_f64());
    match res {
        Ok(s) => {
            metrics::counter!("linkgraph_store_edges_written_total", "backend" => backend)
                .increment(s.edges);
        }
        Err(_) => {
            metrics::counter!("linkgraph_store_errors_total", "backend" => backend, "op" => "write")
                .increment(1);
        }
    }
}

/// Records a query's latency and failure, per backend and operation.
fn record_read<T>(
    backend: &'static str,
    op: &'static str,
    started: std::time::Instant,
    res: &Result<T, StoreError>,
) {
    metrics::histogram!("linkgraph_store_read_duration_seconds", "backend" => backend, "op" => op)
        .record(started.elapsed().as_secs_f64());
    if res.is_err() {
        metrics::counter!("linkgraph_store_errors_total", "backend" => backend, "op" => op)
            .increment(1);
    }
}

/// Partitions per target domain of a new Scylla keyspace unless told otherwise.
pub const DEFAULT_BUCKETS: u32 = 16;

/// What `init` prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Initialized {
    /// An embedded store's directory.
    Embedded,
    /// A Scylla keyspace and its tables.
    Scylla {
        /// The keyspace.
        keyspace: String,
        /// Its buckets per domain: those asked for, or those it already had.
        buckets: u32,
    },
}

/// Creates the schema of the store at `url` (idempotent): the keyspace and
/// tables of `deploy/scylla/schema.cql` (with `replication_factor` replicas
/// per datacenter and `buckets` partitions per domain, for a new keyspace)
/// for `scylla://`, the data directory for `fjall://`.
pub async fn init(
    url: &str,
    replication_factor: u32,
    buckets: u32,
) -> Result<Initialized, StoreError> {
    if url.starts_with("scylla://") {
        #[cfg(feature = "scylla")]
        {
            let uri = ScyllaUri::parse(url)?;
            let buckets = ScyllaStore::init(&uri, replication_factor, buckets).await?;
            return Ok(Initialized::Scylla {
                keyspace: uri.keyspace,
                buckets,
            });
        }
    }
    let _ = (replication_factor, buckets);
    open(url, true).await?;
    Ok(Initialized::Embedded)
}

/// Where a crawl's data directory keeps its embedded store: `DATA/store`.
pub fn data_store_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("store")
}

/// The URL of a crawl's embedded store ([`data_store_path`]), for [`open`].
pub fn data_store_url(data_dir: &std::path::Path) -> String {
    format!("fjall://{}", data_store_path(data_dir).display())
}

/// Opens a store by URL: `fjall:///path` (or a bare path) for the embedded
/// store, `scylla://HOST:PORT[,HOST:PORT]/KEYSPACE` for ScyllaDB (initialized
/// with `linkgraph store init`). `create` applies to the embedded store.
pub async fn open(url: &str, create: bool) -> Result<std::sync::Arc<dyn LinkStore>, StoreError> {
    let path = match url.split_once("://") {
        Some(("fjall", rest)) if !rest.is_empty() => PathBuf::from(rest),
        #[cfg(feature = "scylla")]
        Some(("scylla", _)) => {
            return Ok(std::sync::Arc::new(
                ScyllaStore::connect(&ScyllaUri::parse(url)?).await?,
            ));
        }
        #[cfg(not(feature = "scylla"))]
        Some(("scylla", _)) => {
            return Err(StoreError::BadUrl {
                url: url.into(),
                reason:
                    "this linkgraph was built without ScyllaDB (enable the `scylla` cargo feature)"
                        .into(),
            });
        }
        Some((scheme, _)) => {
            return Err(StoreError::BadUrl {
                url: url.into(),
                reason: format!("unknown backend {scheme:?} (expected fjall:// or scylla://)"),
            });
        }
        None if !url.is_empty() => PathBuf::from(url),
        None => {
            return Err(StoreError::BadUrl {
                url: url.into(),
                reason: "empty".into(),
            });
        }
    };
    let store = tokio::task::spawn_blocking(move || FjallStore::open(&path, create))
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
    Ok(std::sync::Arc::new(store))
}
