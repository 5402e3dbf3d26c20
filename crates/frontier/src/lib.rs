//! The frontier: which URL to fetch next, and when.
//!
//! * **De-duplication**: every admitted canonical URL is recorded in a
//!   persistent seen set, so no URL is queued twice, across runs too.
//! * **Per-host queues**: each host has its own FIFO queue; a ready-heap
//!   orders hosts by when they may next be contacted, so a slow host only
//!   delays itself.
//! * **Politeness**: a host has at most `per_host_concurrency` requests in
//!   flight (one by default; a request is in flight until its response is
//!   in, [`Frontier::fetched`], or else until its completion), and is
//!   handed out again no sooner than `host_interval` after its last
//!   dispatch. (The fetcher's rate limiter enforces the hard bound; this
//!   schedule keeps fetch slots from idling behind it.)
//! * **Budgets and traps**: `max_depth` link hops from a seed, a per-host URL
//!   budget that grows with the domains linking to the host (so an unlinked
//!   trap host cannot take the crawl), `max_redirects` chained redirect hops,
//!   and the trap rules of [`UrlPolicy`] (URL length, path depth, repeating
//!   segments; tracking and session parameters are stripped).
//! * **Durability**: the queue and seen set live in fjall in the data
//!   directory. A queued URL is removed only when its outcome is reported, so
//!   a crawl that stops (limit, signal, crash) resumes where it left off and
//!   re-fetches at most what was in flight. The directory carries its
//!   layout version ([`FORMAT`]); another version is refused.
//!
//! * **Recrawls**: every completed URL gets a next-fetch time. The revisit
//!   interval halves when the page changed (content or outlinks) and doubles
//!   when it did not, within `recrawl.min..=recrawl.max`; the next fetch comes
//!   sooner still for pages that many domains link to (the interval is divided
//!   by `1 + linking_domains / 5`, at most by 5). The frontier counts those
//!   domains itself, from the referrers of the links it is offered: each
//!   URL's seen-set entry holds fingerprints of up to [`MAX_URL_LINKERS`]
//!   other registrable domains seen linking to it, so the store's write path
//!   never reads a page's backlinks for it. Failed fetches keep their
//!   interval. [`Frontier::enqueue_due`] queues what is due.
//!
//! The frontier is synchronous and owns no tasks or sockets: the caller
//! drives it with [`Frontier::next_ready`] and [`Frontier::complete`] and a
//! clock, so it is tested without any I/O but its files.
//!
//! # Layout
//! * this file: the [`Frontier`], its settings and its fjall state;
//! * `tests`: unit and property tests.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use linkgraph_core::{
    TrapReason, UrlPolicy, canonicalize, now_ms, poll_until, registrable_domain, url_host,
};
use linkgraph_proto::{CrawlRequest, DiscoveredUrl, FetchOutcome, FrontierFeedback, Message};

/// Revisit interval bounds. Defaults are documented on each field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecrawlPolicy {
    /// Interval after the first fetch. Default 1 day.
    pub initial: Duration,
    /// Shortest interval. Default 1 hour.
    pub min: Duration,
    /// Longest interval. Default 30 days.
    pub max: Duration,
}

impl Default for RecrawlPolicy {
    fn default() -> Self {
        RecrawlPolicy {
            initial: Duration::from_secs(86_400),
            min: Duration::from_secs(3_600),
            max: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Frontier limits and politeness. Defaults are documented on each field.
#[derive(Debug, Clone)]
pub struct FrontierConfig {
    /// Most link hops from a seed; `None` for no limit. Default none.
    pub max_depth: Option<u32>,
    /// Most URLs admitted per host, ever: seed hosts get all of it, other
    /// hosts `host_budget_base` plus `host_budget_per_linking_domain` for every
    /// other registrable domain seen linking to them. Default 10,000.
    pub max_urls_per_host: u64,
    /// URL budget of a host no other domain links to. Default 100.
    pub host_budget_base: u64,
    /// Budget added per linking domain. Default 100.
    pub host_budget_per_linking_domain: u64,
    /// Trap rules: stripped parameters, URL length, path depth, repeats.
    pub url_policy: UrlPolicy,
    /// Least time between two dispatches to one host. Default 1 s.
    pub host_interval: Duration,
    /// Most requests in flight to one host at once (at least 1), still
    /// spaced by `host_interval`: for crawling one's own site. Default 1.
    pub per_host_concurrency: usize,
    /// Most chained redirect hops. Default 5.
    pub max_redirects: u32,
    /// Revisit interval bounds.
    pub recrawl: RecrawlPolicy,
    /// Longest back-off of a failing host. Default 10 min.
    pub max_backoff: Duration,
    /// Consecutive failures after which a host is parked. Default 8.
    pub park_after: u32,
    /// How long a parked host rests (continuous crawls). Default 1 h.
    pub park_for: Duration,
    /// Tries of a URL that fails temporarily. Default 3.
    pub max_attempts: u32,
}

impl Default for FrontierConfig {
    fn default() -> Self {
        FrontierConfig {
            max_depth: None,
            max_urls_per_host: 10_000,
            host_budget_base: 100,
            host_budget_per_linking_domain: 100,
            url_policy: UrlPolicy::default(),
            host_interval: Duration::from_secs(1),
            per_host_concurrency: 1,
            max_redirects: 5,
            recrawl: RecrawlPolicy::default(),
            max_backoff: Duration::from_secs(600),
            park_after: 8,
            park_for: Duration::from_secs(3600),
            max_attempts: 3,
        }
    }
}

/// Why the frontier failed.
#[derive(Debug, thiserror::Error)]
pub enum FrontierError {
    /// The state directory could not be opened.
    #[error("cannot open frontier state at {path:?}: {source}")]
    Open {
        /// The directory.
        path: std::path::PathBuf,
        /// The engine's error.
        source: fjall::Error,
    },
    /// The storage engine failed.
    #[error("frontier storage error: {0}")]
    Engine(#[from] fjall::Error),
    /// A seed is not a crawlable URL.
    #[error("invalid seed: {0}")]
    BadSeed(#[from] linkgraph_core::UrlError),
    /// The directory's layout is not one this build reads.
    #[error(
        "frontier state at {path:?} has layout version {found}, and this build reads version {supported}: run the linkgraph release that wrote it, or move the directory away to start the crawl queue afresh (the link store is kept)"
    )]
    Format {
        /// The directory.
        path: std::path::PathBuf,
        /// Its layout version.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
}

/// The frontier's layout version, in its `meta` keyspace under `format`. A
/// directory without it has this layout (the first builds wrote none); one
/// of another version is refused, so that a later change of its keys
/// cannot be misread.
pub const FORMAT: u32 = 1;

/// What happened to an offered URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Queued.
    Admitted,
    /// Already known.
    Seen,
    /// Beyond `max_depth`.
    TooDeep,
    /// Beyond `max_redirects`.
    TooManyRedirects,
    /// The host's budget is spent.
    OverBudget,
    /// Not a crawlable URL.
    Invalid,
    /// A likely spider trap ([`UrlPolicy::trap`]).
    Trap(TrapReason),
}

/// A host's URL budget: the maximum for seed hosts (`linkers` = None),
/// otherwise a base that grows with the domains linking to the host.
fn host_budget((max, base, per_domain): (u64, u64, u64), linkers: Option<usize>) -> u64 {
    match linkers {
        None => max,
        Some(n) => base
            .saturating_add(per_domain.saturating_mul(n as u64))
            .min(max),
    }
}

/// The registrable domain of `referrer` when it is not `host`'s own: a link
/// from another site. Same-host links, most of them, skip the suffix lookup.
fn linking_domain<'a>(host: &str, referrer: &'a str) -> Option<&'a str> {
    let from_host = url_host(referrer);
    if referrer.is_empty() || from_host == host {
        return None;
    }
    let from = registrable_domain(from_host);
    (from != registrable_domain(host)).then_some(from)
}

/// A stable 32-bit fingerprint (FNV-1a) of a domain, as stored in the seen
/// set: 20 domains share one with probability about 2^-24.
fn domain_fingerprint(domain: &[u8]) -> u32 {
    let h = domain.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h ^ (h >> 32)) as u32
}

fn key_pair(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

#[derive(Default)]
struct HostState {
    /// The first few queued requests (at most [`Frontier::window`] plus
    /// retries), each as its queue sequence number and the encoded request
    /// it has on disk; the rest stay on disk and are read back as the window
    /// drains. Encoded, a request costs a third of its decoded `CrawlRequest`
    /// (five `String`s); it is decoded once, when dispatched.
    pending: VecDeque<(u64, Box<[u8]>)>,
    /// Queued requests of this host, in memory or on disk (not in flight).
    queued: usize,
    /// The highest sequence number read into `pending`: on-disk entries
    /// above it are not in memory yet.
    loaded_upto: u64,
    /// The dispatched requests not completed yet; at most
    /// `per_host_concurrency` of them are still being fetched.
    in_flight: Vec<InFlight>,
    next_allowed: Option<Instant>,
    admitted: u64,
    /// When the host's entry on the ready-heap is due, if it has one. An
    /// entry due at another time is stale (the host was rescheduled
    /// earlier, [`HostState::give_back_turn`]), and dropped when it comes
    /// to the top ([`Frontier::next_ready`]).
    heap_at: Option<Instant>,
    /// Fingerprints ([`domain_fingerprint`]) of the other registrable
    /// domains seen linking here, up to [`MAX_LINKERS`] (the domains
    /// themselves are on disk), so that noting a linker reads nothing;
    /// `None` for a seed host, whose budget is the maximum.
    linkers: Option<Vec<u32>>,
    /// Consecutive temporary failures (5xx, 429, timeouts, resets).
    failures: u32,
    /// Parked after too many failures: off the schedule until `next_allowed`.
    parked: bool,
    /// robots.txt Crawl-delay, when longer than the host interval.
    crawl_delay: Option<Duration>,
}

/// A dispatched request, until its completion.
#[derive(Debug)]
struct InFlight {
    /// Its queue sequence number.
    seq: u64,
    url: String,
    /// When it was dispatched.
    since: Instant,
    /// Set once its fetch is over ([`Frontier::fetched`]): whether it is to
    /// be tried again. It no longer takes one of its host's slots.
    retry: Option<bool>,
    /// The host's `next_allowed` before this dispatch, and as this
    /// dispatch set it: a request that sent the host nothing gives its
    /// turn back ([`HostState::give_back_turn`]).
    allowed: (Option<Instant>, Instant),
}

impl HostState {
    /// Requests of this host still being fetched.
    fn fetching(&self) -> usize {
        self.in_flight.iter().filter(|f| f.retry.is_none()).count()
    }

    /// Puts the host's schedule back as it was before a dispatch (its
    /// [`InFlight::allowed`]) that sent the host nothing (robots.txt denied
    /// its URL, or the address guard refused it), unless a later dispatch
    /// has moved it since: without this, a host whose pages link to
    /// disallowed paths lost one `host_interval` per such link.
    fn give_back_turn(
        &mut self,
        (before, after): (Option<Instant>, Instant),
        outcome: FetchOutcome,
    ) {
        if matches!(outcome, FetchOutcome::RobotsDenied | FetchOutcome::Blocked)
            && self.next_allowed == Some(after)
        {
            self.next_allowed = before;
        }
    }
}

/// Host intervals shorter than this are scheduled from the previous slot,
/// catching up at most this much lateness (see [`Frontier::next_ready`]).
const CATCH_UP: Duration = Duration::from_millis(1);
/// Linking domains tracked per host; past this many the budget is at its maximum anyway.
const MAX_LINKERS: usize = 64;
/// Linking domains counted per URL, for the recrawl boost (which saturates
/// here): a URL's seen-set value is up to this many 4-byte fingerprints.
pub const MAX_URL_LINKERS: usize = 20;
/// Queued requests held in memory per host, at most; the rest wait on disk.
const WINDOW: usize = 8;
/// Queued requests held in memory over all hosts: with more hosts than
/// `WINDOW_ENTRIES / WINDOW`, each host's window shrinks (to one request at
/// least), so the windows stay within about 40 MiB however many hosts have
/// work, and a dispatch reads the disk at most once per window.
const WINDOW_ENTRIES: usize = 1 << 18;
/// Hosts kept in memory before idle ones are dropped (their state is on disk).
const MAX_HOSTS_IN_MEMORY: usize = 50_000;
/// The most the engine's memtables may hold before the frontier rotates
/// them itself ([`Frontier::bound_write_buffer`]): a little over 7
/// keyspaces of 8 MiB, which they seldom all fill at once. At 10M URLs,
/// 64 MiB against 128 lowered the highest RSS between two releases of free
/// memory from 49 to 35 bytes per URL (bench-frontier).
const WRITE_BUFFER_LIMIT: u64 = 64 << 20;
const SEED_MARK: &str = "\u{1}seed";

/// The frontier. See the module docs.
pub struct Frontier {
    db: Database,
    seen: Keyspace,
    queue: Keyspace,
    budgets: Keyspace,
    linkers: Keyspace,
    schedule: Keyspace,
    due: Keyspace,
    robots: Keyspace,
    hosts: HashMap<String, HostState>,
    ready: BinaryHeap<Reverse<(Instant, u64, String)>>,
    next_seq: u64,
    pending: usize,
    in_flight: usize,
    /// Host count above which idle hosts are dropped from memory.
    evict_at: usize,
    /// Queued requests held in memory over all hosts ([`WINDOW_ENTRIES`]).
    window_entries: usize,
    /// Memtable bytes past which the frontier rotates them ([`WRITE_BUFFER_LIMIT`]).
    write_buffer_limit: u64,
    /// URLs known to be in `seen`, recently offered: most discovered links
    /// repeat (navigation, footers), and this answers them without a read.
    recent: RecentSeen,
    /// (URL, linking domain) pairs recently recorded in the seen set
    /// ([`pair_fingerprint`]): repeated cross-site links (footers,
    /// blogrolls) cost no read.
    recent_pairs: RecentSeen,
    /// Seen-set values this frontier wrote or read lately, by URL
    /// fingerprint ([`RecentValues`]): a later note of a linking domain
    /// extends the newest value (in the batch being built, too, where the
    /// one on disk would drop the first note), and a completion counts a
    /// URL's linking domains, without a read.
    seen_values: RecentValues,
    /// Hosts whose `budgets` row the batch being built must write, when
    /// it commits ([`Frontier::commit`]): one row a host a batch, however
    /// many of its URLs it admits.
    budget_dirty: HashSet<String>,
    cfg: FrontierConfig,
}

/// Fingerprints per generation of [`RecentSeen`]: two generations hold at
/// most 2 x 2^18 fingerprints, about 5 MiB whatever the crawl's size.
const RECENT_SEEN: usize = 1 << 18;

/// Entries per generation of [`RecentValues`]: two generations of 2^16
/// values (4 to 80 bytes each) hold about 8 MiB whatever the crawl's size.
const RECENT_VALUES: usize = 1 << 16;

/// A bounded map keyed by 64-bit fingerprints, in two generations: when
/// the young one holds `CAP` keys, it becomes the old one and the previous
/// old one is dropped. A key's value in the young generation shadows an
/// older one in the old.
#[derive(Default)]
struct Generations<V, const CAP: usize> {
    young: HashMap<u64, V>,
    old: HashMap<u64, V>,
}

impl<V, const CAP: usize> Generations<V, CAP> {
    fn get(&self, fp: u64) -> Option<&V> {
        self.young.get(&fp).or_else(|| self.old.get(&fp))
    }

    fn contains(&self, fp: u64) -> bool {
        self.get(fp).is_some()
    }

    /// Holds `value` as the newest of `fp`.
    fn insert(&mut self, fp: u64, value: V) {
        if self.young.len() >= CAP && !self.young.contains_key(&fp) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(fp, value);
    }

    fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }
}

/// A bounded set of 64-bit fingerprints ([`url_fingerprint`]) of URLs in
/// the seen set. A URL whose fingerprint is here is treated as seen: two
/// URLs share a fingerprint with probability 2^-64 per pair, so over the
/// at most 2^19 URLs held here a new URL is wrongly skipped with
/// probability below 2^-45 (64-bit URL fingerprints are how Heritrix and
/// BUbiNG de-duplicate too). Entries are only ever added for URLs in the
/// seen set, and the set is cleared when URLs leave it.
type RecentSeen = Generations<(), RECENT_SEEN>;

/// The seen-set values (linking-domain fingerprints) of the URLs whose
/// values the frontier wrote or read lately, by URL fingerprint. The
/// frontier is its database's only writer, so a value held here is the
/// newest one: it is what a batch not yet committed wrote, or what the
/// disk holds. Cleared with [`RecentSeen`] when URLs leave the seen set.
type RecentValues = Generations<Vec<u8>, RECENT_VALUES>;

/// The 64-bit fingerprint of a URL in [`RecentSeen`] and [`RecentValues`].
fn url_fingerprint(url: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    url.hash(&mut h);
    h.finish()
}

/// The fingerprint of a (URL with fingerprint `fp`, linking domain) pair
/// in [`Frontier::recent_pairs`].
fn pair_fingerprint(fp: u64, from: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    fp.hash(&mut h);
    from.hash(&mut h);
    h.finish()
}

/// A URL's revisit state: 8-byte interval, 8-byte next fetch, 4-byte depth,
/// then the validators of its last 200 answer (2-byte length + bytes each;
/// absent in entries written before validators existed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ScheduleEntry {
    interval_ms: i64,
    next_ms: i64,
    depth: u32,
    etag: String,
    last_modified: String,
    sitemap: bool,
}

impl ScheduleEntry {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(24 + self.etag.len() + self.last_modified.len());
        b.extend_from_slice(&self.interval_ms.to_be_bytes());
        b.extend_from_slice(&self.next_ms.to_be_bytes());
        b.extend_from_slice(&self.depth.to_be_bytes());
        for v in [&self.etag, &self.last_modified] {
            let v = &v.as_bytes()[..v.len().min(1024)];
            b.extend_from_slice(&u16::try_from(v.len()).unwrap_or(0).to_be_bytes());
            b.extend_from_slice(v);
        }
        b.push(u8::from(self.sitemap));
        b
    }
    fn decode(b: &[u8]) -> Option<Self> {
        let mut e = ScheduleEntry {
            interval_ms: i64::from_be_bytes(b.get(..8)?.try_into().ok()?),
            next_ms: i64::from_be_bytes(b.get(8..16)?.try_into().ok()?),
            depth: u32::from_be_bytes(b.get(16..20)?.try_into().ok()?),
            ..ScheduleEntry::default()
        };
        let mut rest = b.get(20..).unwrap_or_default();
        for slot in [&mut e.etag, &mut e.last_modified] {
            let Some(len) = rest.get(..2).and_then(|l| <[u8; 2]>::try_from(l).ok()) else {
                break;
            };
            let len = usize::from(u16::from_be_bytes(len));
            let v = rest.get(2..2 + len)?;
            *slot = String::from_utf8_lossy(v).into_owned();
            rest = &rest[2 + len..];
        }
        e.sitemap = rest.first() == Some(&1);
        Some(e)
    }
}

/// Due index key: next fetch time (8 bytes BE, so keys sort by time), URL.
fn due_key(next_ms: i64, url: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + url.len());
    k.extend_from_slice(&u64::try_from(next_ms.max(0)).unwrap_or(0).to_be_bytes());
    k.extend_from_slice(url.as_bytes());
    k
}

fn queue_key(host: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(host.len() + 9);
    k.extend_from_slice(host.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// A small table in the frontier's database for what the crawl keeps per
/// host beside its queue (the last good robots.txt of each origin); cheap to
/// clone and safe to use from other threads.
#[derive(Clone)]
pub struct SideTable(Keyspace);

impl SideTable {
    /// The value at `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, FrontierError> {
        Ok(self.0.get(key)?.map(|v| v.to_vec()))
    }
    /// Sets `key` to `value`.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), FrontierError> {
        Ok(self.0.insert(key, value)?)
    }
}

/// Refuses a frontier directory of another layout than [`FORMAT`]; marks
/// one without a version (new, or written before versions) as this one.
/// The mark is flushed to a table at once: a keyspace whose only rows sit
/// in a memtable keeps fjall from deleting any journal file after it.
fn check_format(path: &Path, meta: &Keyspace) -> Result<(), FrontierError> {
    let found = match meta.get(b"format")? {
        Some(v) => <[u8; 4]>::try_from(v.as_ref()).map_or(0, u32::from_be_bytes),
        None => {
            meta.insert(b"format", FORMAT.to_be_bytes())?;
            meta.rotate_memtable_and_wait()?;
            FORMAT
        }
    };
    if found != FORMAT {
        return Err(FrontierError::Format {
            path: path.to_path_buf(),
            found,
            supported: FORMAT,
        });
    }
    Ok(())
}

/// Where a crawl's data directory keeps the frontier: `DATA/frontier`.
pub fn data_frontier_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("frontier")
}

impl Frontier {
    /// Opens (creating if needed) the frontier state in `path` and reloads
    /// every queued URL.
    pub fn open(path: &Path, cfg: FrontierConfig) -> Result<Self, FrontierError> {
        let db = Database::builder(path)
            .cache_size(16 << 20)
            .open()
            .map_err(|source| FrontierError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        // Bounded memtables: fjall's default is 64 MiB per keyspace. Filter
        // blocks are pinned at every level (fjall pins L0 only): admission
        // does a point read per discovered URL, mostly misses, and with
        // unpinned filters each miss re-read and re-checksummed a
        // multi-megabyte filter block once the URLs outgrew the block cache.
        // Pinned, they cost about 1.25 bytes of RAM per key.
        let ks = |name: &str| {
            db.keyspace(name, || {
                KeyspaceCreateOptions::default()
                    .max_memtable_size(8 << 20)
                    .filter_block_pinning_policy(fjall::config::PinningPolicy::all(true))
            })
        };
        check_format(path, &ks("meta")?)?;
        let mut f = Frontier {
            seen: ks("seen")?,
            queue: ks("queue")?,
            budgets: ks("budgets")?,
            linkers: ks("linkers")?,
            schedule: ks("schedule")?,
            due: ks("due")?,
            robots: ks("robots")?,
            db,
            hosts: HashMap::new(),
            ready: BinaryHeap::new(),
            next_seq: 0,
            pending: 0,
            in_flight: 0,
            evict_at: MAX_HOSTS_IN_MEMORY,
            window_entries: WINDOW_ENTRIES,
            write_buffer_limit: WRITE_BUFFER_LIMIT,
            recent: RecentSeen::default(),
            recent_pairs: RecentSeen::default(),
            seen_values: RecentValues::default(),
            budget_dirty: HashSet::new(),
            cfg,
        };
        f.reload()?;
        Ok(f)
    }

    /// The table of each origin's last good robots.txt.
    pub fn robots_table(&self) -> SideTable {
        SideTable(self.robots.clone())
    }

    fn reload(&mut self) -> Result<(), FrontierError> {
        let now = Instant::now();
        for kv in self.queue.iter() {
            let (k, v) = kv.into_inner()?;
            let Some(split) = k.iter().position(|b| *b == 0) else {
                continue;
            };
            let host = String::from_utf8_lossy(&k[..split]).into_owned();
            let seq = k
                .get(split + 1..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            self.next_seq = self.next_seq.max(seq + 1);
            let window = self.window();
            let h = self.host_mut(&host)?;
            if h.queued > h.pending.len() || h.pending.len() >= window {
                // Beyond the window: counted, read back later.
                h.queued += 1;
                self.pending += 1;
                continue;
            }
            h.pending.push_back((seq, Box::from(&*v)));
            h.loaded_upto = seq;
            h.queued += 1;
            self.pending += 1;
        }
        let hosts: Vec<String> = self.hosts.keys().cloned().collect();
        for h in hosts {
            self.schedule(&h, now);
        }
        Ok(())
    }

    fn host_mut(&mut self, host: &str) -> Result<&mut HostState, FrontierError> {
        if !self.hosts.contains_key(host) {
            let admitted = self
                .budgets
                .get(host.as_bytes())?
                .and_then(|v| <[u8; 8]>::try_from(&*v).ok())
                .map_or(0, u64::from_be_bytes);
            let prefix = key_pair(host, "");
            let mut linkers = Some(Vec::new());
            for kv in self.linkers.prefix(&prefix).take(MAX_LINKERS + 1) {
                let k = kv.key()?;
                let from = &k[prefix.len()..];
                if from == SEED_MARK.as_bytes() {
                    linkers = None;
                    break;
                }
                if let Some(fps) = &mut linkers {
                    fps.push(domain_fingerprint(from));
                }
            }
            self.hosts.insert(
                host.to_owned(),
                HostState {
                    admitted,
                    linkers,
                    ..HostState::default()
                },
            );
        }
        // Just inserted or already present: a lookup, no key allocated.
        Ok(self
            .hosts
            .get_mut(host)
            .expect("the host was inserted above"))
    }

    /// Drops the ready-heap's stale entries (of hosts gone or rescheduled
    /// since) from its top, so that the top is due when it says
    /// ([`Frontier::next_wakeup`]). Only [`Frontier::next_ready`] pops the
    /// heap, so it calls this before it looks and before it returns; a
    /// push never leaves a stale top (a host is only moved earlier).
    fn drop_stale_tops(&mut self) {
        while let Some(Reverse((at, _, host))) = self.ready.peek() {
            if self.hosts.get(host).is_some_and(|h| h.heap_at == Some(*at)) {
                return;
            }
            self.ready.pop();
        }
    }

    /// Puts `host` on the ready-heap if it has work and a free slot, or
    /// moves its entry earlier if it may be contacted sooner now.
    fn schedule(&mut self, host: &str, now: Instant) {
        let slots = self.cfg.per_host_concurrency.max(1);
        let Some(h) = self.hosts.get_mut(host) else {
            return;
        };
        let at = h.next_allowed.unwrap_or(now);
        if h.heap_at.is_some_and(|due| due <= at) || h.pending.is_empty() || h.fetching() >= slots {
            return;
        }
        h.heap_at = Some(at);
        let tie = h.pending.front().map_or(0, |(s, _)| *s);
        self.ready.push(Reverse((at, tie, host.to_owned())));
    }

    /// Adds a seed URL (depth 0). A seed's host gets the full URL budget.
    pub fn add_seed(&mut self, url: &str) -> Result<Admission, FrontierError> {
        let mut canon = canonicalize(url, None)?;
        self.cfg.url_policy.strip(&mut canon);
        let host = canon.host_str().unwrap_or_default().to_owned();
        if self.host_mut(&host)?.linkers.is_some() {
            self.linkers
                .insert(key_pair(&host, SEED_MARK), b"".as_slice())?;
            self.host_mut(&host)?.linkers = None;
        }
        self.offer(&DiscoveredUrl {
            url: canon.into(),
            host,
            ..DiscoveredUrl::default()
        })
    }

    /// Offers a discovered URL (expected canonical, as the parser emits).
    pub fn offer(&mut self, d: &DiscoveredUrl) -> Result<Admission, FrontierError> {
        let admissions = self.offer_all(std::slice::from_ref(d))?;
        Ok(admissions.first().copied().unwrap_or(Admission::Invalid))
    }

    /// Offers discovered URLs in order (a page's links, say), written as one
    /// atomic batch.
    pub fn offer_all(&mut self, urls: &[DiscoveredUrl]) -> Result<Vec<Admission>, FrontierError> {
        let mut batch = self.batch();
        let admissions = self.admit_all(urls, &mut batch)?;
        self.commit(batch)?;
        Ok(admissions)
    }

    /// A new batch of writes.
    fn batch(&mut self) -> fjall::OwnedWriteBatch {
        self.db.batch()
    }

    /// Commits a batch with the admission counts of the hosts it admitted
    /// URLs of, then keeps the memtables within their limit.
    fn commit(&mut self, mut batch: fjall::OwnedWriteBatch) -> Result<(), FrontierError> {
        for host in self.budget_dirty.drain() {
            if let Some(h) = self.hosts.get(&host) {
                batch.insert(&self.budgets, host.as_bytes(), h.admitted.to_be_bytes());
            }
        }
        batch.commit()?;
        self.bound_write_buffer()
    }

    /// [`Frontier::admit`] of each of `urls`, in order, into `batch`.
    fn admit_all(
        &mut self,
        urls: &[DiscoveredUrl],
        batch: &mut fjall::OwnedWriteBatch,
    ) -> Result<Vec<Admission>, FrontierError> {
        urls.iter().map(|d| self.admit(d, batch)).collect()
    }

    /// [`Frontier::offer`] into `batch`: what the admission writes is
    /// durable once the caller commits it. The in-memory queue already
    /// holds an admitted URL; a failed commit fails the frontier.
    fn admit(
        &mut self,
        d: &DiscoveredUrl,
        batch: &mut fjall::OwnedWriteBatch,
    ) -> Result<Admission, FrontierError> {
        if d.url.is_empty() || d.host.is_empty() {
            return Ok(Admission::Invalid);
        }
        if self.cfg.max_depth.is_some_and(|m| d.depth > m) {
            return Ok(Admission::TooDeep);
        }
        if d.redirect_hops > self.cfg.max_redirects {
            return Ok(Admission::TooManyRedirects);
        }
        let fp = url_fingerprint(&d.url);
        let from = linking_domain(&d.host, &d.referrer);
        if self.recent.contains(fp) {
            // Admitted before, so it passed the checks below.
            if let Some(from) = from {
                self.note_linker(&d.host, from, batch)?;
                self.note_url_linker(&d.url, fp, from, None, batch)?;
            }
            return Ok(Admission::Seen);
        }
        let Ok(url) = url::Url::parse(&d.url) else {
            return Ok(Admission::Invalid);
        };
        if let Some(reason) = self.cfg.url_policy.trap(&url) {
            metrics::counter!("linkgraph_frontier_rejected_urls_total", "reason" => reason.label())
                .increment(1);
            return Ok(Admission::Trap(reason));
        }
        if let Some(from) = from {
            self.note_linker(&d.host, from, batch)?;
        }
        if let Some(known) = self.seen.get(d.url.as_bytes())? {
            self.recent.insert(fp, ());
            if let Some(from) = from {
                self.note_url_linker(&d.url, fp, from, Some(known), batch)?;
            }
            return Ok(Admission::Seen);
        }
        let seq = self.next_seq;
        let cfg = (
            self.cfg.max_urls_per_host,
            self.cfg.host_budget_base,
            self.cfg.host_budget_per_linking_domain,
        );
        let h = self.host_mut(&d.host)?;
        let budget = host_budget(cfg, h.linkers.as_ref().map(Vec::len));
        if h.admitted >= budget {
            metrics::counter!("linkgraph_frontier_rejected_urls_total", "reason" => "host_budget")
                .increment(1);
            return Ok(Admission::OverBudget);
        }
        h.admitted += 1;
        if !self.budget_dirty.contains(&d.host) {
            self.budget_dirty.insert(d.host.clone());
        }
        let req = CrawlRequest {
            url: d.url.clone(),
            host: d.host.clone(),
            depth: d.depth,
            redirect_hops: d.redirect_hops,
            referrer: d.referrer.clone(),
            enqueued_at_ms: now_ms(),
            sitemap: d.sitemap,
            first_fetch: true,
            ..CrawlRequest::default()
        };
        let encoded: Box<[u8]> = req.encode_to_vec().into_boxed_slice();
        let linkers = from.map_or(Vec::new(), |d| {
            domain_fingerprint(d.as_bytes()).to_le_bytes().to_vec()
        });
        if let Some(from) = from {
            self.recent_pairs.insert(pair_fingerprint(fp, from), ());
        }
        batch.insert(&self.seen, d.url.as_bytes(), linkers.as_slice());
        self.seen_values.insert(fp, linkers);
        batch.insert(&self.queue, queue_key(&d.host, seq), &*encoded);
        self.next_seq += 1;
        self.recent.insert(fp, ());
        self.push_back(&d.host, seq, encoded)?;
        self.schedule(&d.host, Instant::now());
        Ok(Admission::Admitted)
    }

    /// Remembers that a page of `from`, another registrable domain, links
    /// to `host`: a write, no read (the host's linkers are in memory; two
    /// domains share a fingerprint with probability 2^-32, and then the
    /// second does not count).
    fn note_linker(
        &mut self,
        host: &str,
        from: &str,
        batch: &mut fjall::OwnedWriteBatch,
    ) -> Result<(), FrontierError> {
        let fp = domain_fingerprint(from.as_bytes());
        let Some(fps) = &mut self.host_mut(host)?.linkers else {
            return Ok(());
        };
        if fps.len() >= MAX_LINKERS || fps.contains(&fp) {
            return Ok(());
        }
        fps.push(fp);
        batch.insert(&self.linkers, key_pair(host, from), b"".as_slice());
        Ok(())
    }

    /// Adds `from` to the linking domains of `url` (fingerprint `fp`),
    /// whose seen-set value is `known` (read here when `None`; not in the
    /// seen set: nothing to count), unless it is there already or
    /// [`MAX_URL_LINKERS`] are. Pairs noted recently are answered from
    /// memory.
    fn note_url_linker(
        &mut self,
        url: &str,
        fp: u64,
        from: &str,
        known: Option<fjall::Slice>,
        batch: &mut fjall::OwnedWriteBatch,
    ) -> Result<(), FrontierError> {
        let pair = pair_fingerprint(fp, from);
        if self.recent_pairs.contains(pair) {
            return Ok(());
        }
        let (mut linkers, read) = match (self.seen_values.get(fp), known) {
            (Some(v), _) => (v.clone(), false),
            (None, Some(k)) => (k.to_vec(), true),
            (None, None) => match self.seen.get(url.as_bytes())? {
                Some(k) => (k.to_vec(), true),
                None => return Ok(()),
            },
        };
        self.recent_pairs.insert(pair, ());
        let dfp = domain_fingerprint(from.as_bytes()).to_le_bytes();
        if linkers.len() >= 4 * MAX_URL_LINKERS || linkers.chunks_exact(4).any(|c| c == dfp) {
            if read {
                // The newest value, as on disk: kept for the next note.
                self.seen_values.insert(fp, linkers);
            }
            return Ok(());
        }
        linkers.extend_from_slice(&dfp);
        batch.insert(&self.seen, url.as_bytes(), linkers.as_slice());
        self.seen_values.insert(fp, linkers);
        Ok(())
    }

    /// Other registrable domains seen linking to `url` (at most
    /// [`MAX_URL_LINKERS`]).
    pub fn linking_domains(&self, url: &str) -> Result<usize, FrontierError> {
        if let Some(v) = self.seen_values.get(url_fingerprint(url)) {
            return Ok(v.len() / 4);
        }
        Ok(self.seen.get(url.as_bytes())?.map_or(0, |v| v.len() / 4))
    }

    /// Queues a request at the back of its host's queue (already on disk):
    /// into the memory window when everything before it is there too.
    fn push_back(&mut self, host: &str, seq: u64, req: Box<[u8]>) -> Result<(), FrontierError> {
        let window = self.window();
        let h = self.host_mut(host)?;
        if h.queued == h.pending.len() && h.pending.len() < window {
            h.pending.push_back((seq, req));
            h.loaded_upto = seq;
        }
        h.queued += 1;
        self.pending += 1;
        Ok(())
    }

    /// Reads the next requests of `host` from disk when its window is empty.
    fn refill(&mut self, host: &str) -> Result<(), FrontierError> {
        let Some(h) = self.hosts.get(host) else {
            return Ok(());
        };
        if !h.pending.is_empty() || h.queued == 0 {
            return Ok(());
        }
        let start = queue_key(host, h.loaded_upto.saturating_add(1));
        let end = queue_key(host, u64::MAX);
        let window = self.window();
        let mut loaded = Vec::with_capacity(window);
        for kv in self.queue.range(start..=end).take(window) {
            let (k, v) = kv.into_inner()?;
            let seq = k
                .get(k.len().saturating_sub(8)..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            loaded.push((seq, Box::from(&*v)));
        }
        if let Some(h) = self.hosts.get_mut(host) {
            for (seq, req) in loaded {
                h.loaded_upto = seq;
                h.pending.push_back((seq, req));
            }
        }
        Ok(())
    }

    /// Queued requests kept in memory per host now: [`WINDOW`], shrinking
    /// as hosts multiply so that all windows hold about [`WINDOW_ENTRIES`].
    fn window(&self) -> usize {
        (self.window_entries / self.hosts.len().max(1)).clamp(1, WINDOW)
    }

    /// Drops idle hosts from memory once there are many; everything they
    /// need later (budget, linking domains, queue) is on disk.
    fn evict_idle_hosts(&mut self) {
        // Amortized: after a pass, wait until the map has doubled again, so a
        // crawl where every host has work does not rescan it on every URL.
        if self.hosts.len() <= self.evict_at {
            return;
        }
        self.hosts.retain(|_, h| {
            h.queued > 0 || !h.in_flight.is_empty() || h.heap_at.is_some() || h.parked
        });
        self.evict_at = MAX_HOSTS_IN_MEMORY.max(self.hosts.len().saturating_mul(2));
    }

    /// The next request whose host may be contacted at `now`, if any.
    pub fn next_ready(&mut self, now: Instant) -> Option<CrawlRequest> {
        loop {
            self.drop_stale_tops();
            let Reverse((at, _, _)) = self.ready.peek()?;
            if *at > now {
                return None;
            }
            let Reverse((at, _, host)) = self.ready.pop()?;
            let interval = self.cfg.host_interval;
            let Some(h) = self.hosts.get_mut(&host) else {
                continue;
            };
            h.heap_at = None;
            let Some((seq, bytes)) = h.pending.pop_front() else {
                continue;
            };
            let Ok(req) = CrawlRequest::decode(&*bytes) else {
                // An undecodable entry cannot be fetched; drop it, loudly.
                tracing::warn!(host, seq, "dropping undecodable frontier entry");
                h.queued = h.queued.saturating_sub(1);
                self.pending -= 1;
                if let Err(e) = self.queue.remove(queue_key(&host, seq)) {
                    tracing::warn!(host, error = %e, "cannot drop an undecodable frontier entry");
                }
                if let Err(e) = self.refill(&host) {
                    tracing::warn!(host, error = %e, "cannot read queued requests back from disk");
                }
                self.schedule(&host, now);
                continue;
            };
            h.queued = h.queued.saturating_sub(1);
            // The next slot follows this one's, not the wake-up's: a caller
            // woken late by its timer (about 1 ms) catches up on intervals
            // shorter than that, as a host crawled at thousands of requests
            // a second needs; longer intervals start from now.
            let from = if interval < CATCH_UP {
                at.max(now.checked_sub(CATCH_UP).unwrap_or(now))
            } else {
                now
            };
            let after = from + h.crawl_delay.map_or(interval, |d| d.max(interval));
            h.in_flight.push(InFlight {
                seq,
                url: req.url.clone(),
                since: now,
                retry: None,
                allowed: (h.next_allowed.replace(after), after),
            });
            self.pending -= 1;
            self.in_flight += 1;
            if let Err(e) = self.refill(&host) {
                tracing::warn!(host, error = %e, "cannot read queued requests back from disk");
            }
            // A free slot: the host's next request is due after the interval.
            self.schedule(&host, now);
            self.drop_stale_tops();
            return Some(req);
        }
    }

    /// Hands out again every request in flight for longer than `deadline`
    /// at `now`: its feedback was lost (a fetcher or parser died with it, or
    /// its partition went unconsumed), and a frontier that waited for it
    /// would wait forever. Re-dispatching is idempotent: the first feedback
    /// for the URL completes it, a later one answers nothing in flight.
    /// Returns how many were handed out again.
    pub fn redispatch_overdue(
        &mut self,
        now: Instant,
        deadline: Duration,
    ) -> Result<usize, FrontierError> {
        let overdue: Vec<(String, u64)> = self
            .hosts
            .iter()
            .flat_map(|(host, h)| {
                h.in_flight
                    .iter()
                    .filter(|f| now.saturating_duration_since(f.since) > deadline)
                    .map(|f| (host.clone(), f.seq))
            })
            .collect();
        let mut again = 0;
        for (host, seq) in overdue {
            let Some(bytes) = self.queue.get(queue_key(&host, seq))? else {
                continue;
            };
            let Some(h) = self.hosts.get_mut(&host) else {
                continue;
            };
            h.in_flight.retain(|f| f.seq != seq);
            h.pending.push_front((seq, Box::from(&*bytes)));
            h.queued += 1;
            self.pending += 1;
            self.in_flight = self.in_flight.saturating_sub(1);
            self.schedule(&host, now);
            again += 1;
        }
        if again > 0 {
            metrics::counter!("linkgraph_frontier_redispatched_requests_total")
                .increment(again as u64);
            tracing::warn!(
                requests = again,
                "requests in flight past their deadline dispatched again"
            );
        }
        Ok(again)
    }

    /// When the next host becomes ready, if any host has work.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.ready.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Frees the host slot of a request whose fetch is over, before its page
    /// is parsed and stored: politeness bounds the requests a host is
    /// sent, not the pages of it being written. What the response says
    /// about the host (Crawl-delay, Retry-After, back-off) applies now;
    /// [`Frontier::complete`] still records the outcome. `fb` needs only
    /// its request and what the fetch returned. A report for nothing being
    /// fetched (completed already, or reported twice) changes nothing;
    /// returns whether it freed a slot.
    pub fn fetched(&mut self, fb: &FrontierFeedback, now: Instant) -> bool {
        let Some(req) = &fb.request else {
            return false;
        };
        let Some(h) = self.hosts.get_mut(&req.host) else {
            return false;
        };
        let Some(at) = h
            .in_flight
            .iter()
            .position(|f| f.retry.is_none() && f.url == req.url)
        else {
            return false;
        };
        let allowed = h.in_flight[at].allowed;
        let retry = self.note_outcome(req, fb, allowed, now);
        if let Some(f) = self
            .hosts
            .get_mut(&req.host)
            .and_then(|h| h.in_flight.get_mut(at))
        {
            f.retry = Some(retry);
        }
        self.schedule(&req.host, now);
        true
    }

    /// Records the outcome of a dispatched request at `now_ms` (wall clock):
    /// admits what it discovered, schedules its next fetch, then drops it from
    /// the queue, all in one atomic write. Returns the admissions.
    pub fn complete(
        &mut self,
        fb: &FrontierFeedback,
        now_ms: i64,
    ) -> Result<Vec<Admission>, FrontierError> {
        let mut admissions = self.complete_all(std::slice::from_ref(fb), now_ms)?;
        Ok(admissions.pop().unwrap_or_default())
    }

    /// [`Frontier::complete`] of several outcomes, in order, as one atomic
    /// write: one commit for all the pages a crawl loop found finished.
    /// A feedback without a request only offers its discoveries (the
    /// frontier service writes a `linkgraph.discovered` batch so). Returns
    /// each one's admissions.
    pub fn complete_all<'a>(
        &mut self,
        feedback: impl IntoIterator<Item = &'a FrontierFeedback>,
        now_ms: i64,
    ) -> Result<Vec<Vec<Admission>>, FrontierError> {
        let mut batch = self.batch();
        let mut admissions = Vec::new();
        let mut settled = Vec::new();
        for fb in feedback {
            admissions.push(self.admit_all(&fb.discovered, &mut batch)?);
            settled.extend(self.settle(fb, now_ms, &mut batch)?);
        }
        self.commit(batch)?;
        let now = Instant::now();
        for host in &settled {
            self.schedule(host, now);
        }
        if !settled.is_empty() {
            self.evict_idle_hosts();
        }
        Ok(admissions)
    }

    /// The in-flight part of [`Frontier::complete`]: frees the request's
    /// slot, and either re-queues it or schedules its next fetch and drops
    /// it from the queue. Returns its host, or `None` when nothing was in
    /// flight for it.
    fn settle(
        &mut self,
        fb: &FrontierFeedback,
        now_ms: i64,
        batch: &mut fjall::OwnedWriteBatch,
    ) -> Result<Option<String>, FrontierError> {
        let Some(req) = &fb.request else {
            return Ok(None);
        };
        // Feedback is delivered at least once: a duplicate, or one for a
        // request dispatched before a restart, answers nothing in flight.
        let Some(h) = self.hosts.get_mut(&req.host) else {
            return Ok(None);
        };
        let Some(at) = h.in_flight.iter().position(|f| f.url == req.url) else {
            return Ok(None);
        };
        let InFlight {
            seq,
            retry,
            allowed,
            ..
        } = h.in_flight.swap_remove(at);
        let retry = match retry {
            Some(retry) => retry,
            None => self.note_outcome(req, fb, allowed, Instant::now()),
        };
        self.in_flight -= 1;
        if retry {
            // Try again later: the queue entry stays, with one more attempt
            // (a missing robots.txt is the host's failure, not the URL's).
            let unavailable = fb.outcome() == FetchOutcome::RobotsUnavailable;
            let again = CrawlRequest {
                attempt: req.attempt + u32::from(!unavailable),
                ..req.clone()
            };
            let again: Box<[u8]> = again.encode_to_vec().into_boxed_slice();
            batch.insert(&self.queue, queue_key(&req.host, seq), &*again);
            if let Some(h) = self.hosts.get_mut(&req.host) {
                h.pending.push_front((seq, again));
                h.queued += 1;
            }
            self.pending += 1;
        } else {
            self.schedule_next(req, fb, now_ms, batch)?;
            batch.remove(&self.queue, queue_key(&req.host, seq));
        }
        Ok(Some(req.host.clone()))
    }

    /// Applies what a fetch said about its host: a turn given back when
    /// nothing reached it (`allowed`: the request's [`InFlight::allowed`]),
    /// Crawl-delay, Retry-After, exponential back-off after temporary
    /// failures, parking. Returns true when the URL should be tried again.
    fn note_outcome(
        &mut self,
        req: &CrawlRequest,
        fb: &FrontierFeedback,
        allowed: (Option<Instant>, Instant),
        now: Instant,
    ) -> bool {
        let cfg = &self.cfg;
        let temporary = fb.outcome().is_temporary(fb.status);
        let Some(h) = self.hosts.get_mut(&req.host) else {
            return false;
        };
        h.give_back_turn(allowed, fb.outcome());
        if fb.crawl_delay_ms > 0 {
            // Learned with this response: it already applies to the next request.
            let delay = Duration::from_millis(fb.crawl_delay_ms);
            h.crawl_delay = Some(delay);
            h.next_allowed = Some(h.next_allowed.map_or(now + delay, |n| n.max(now + delay)));
        }
        if !temporary {
            h.failures = 0;
            h.parked = false;
            return false;
        }
        h.failures += 1;
        let base = cfg.host_interval.max(Duration::from_millis(100));
        let exp = base.saturating_mul(1 << h.failures.min(16));
        let wait = exp
            .max(Duration::from_millis(fb.retry_after_ms))
            .min(cfg.max_backoff);
        let wait = if h.failures >= cfg.park_after {
            if !h.parked {
                h.parked = true;
                metrics::counter!("linkgraph_frontier_parked_hosts_total").increment(1);
                tracing::warn!(host = %req.host, failures = h.failures, "host keeps failing; parked");
            }
            cfg.park_for.max(wait)
        } else {
            wait
        };
        h.next_allowed = Some(h.next_allowed.map_or(now + wait, |n| n.max(now + wait)));
        // Without robots.txt nothing was fetched: the URL is never given up
        // for that (the host is backed off, and parked if it keeps failing).
        fb.outcome() == FetchOutcome::RobotsUnavailable || req.attempt + 1 < cfg.max_attempts
    }

    /// Queued URLs on hosts that are not parked: the work a crawl that stops
    /// when idle still has to do.
    pub fn active_pending(&self) -> usize {
        let parked: usize = self
            .hosts
            .values()
            .filter(|h| h.parked)
            .map(|h| h.queued)
            .sum();
        self.pending - parked
    }

    /// Gives up every host for which `moved(host)` holds, because another
    /// frontier owns it now (its partition moved in a rebalance). Its queued
    /// URLs and its known URLs' recrawl schedule leave this frontier: they
    /// are removed from the queue, the schedule and the seen set, and
    /// returned as discoveries for the new owner to admit. A request in
    /// flight is forgotten; its feedback goes to the new owner. Scans the
    /// queue and the schedule once.
    pub fn hand_off(
        &mut self,
        moved: impl Fn(&str) -> bool,
    ) -> Result<Vec<DiscoveredUrl>, FrontierError> {
        // URLs leave the seen set.
        self.recent.clear();
        self.recent_pairs.clear();
        self.seen_values.clear();
        let mut out = Vec::new();
        let mut batch = self.db.batch();
        for kv in self.queue.iter() {
            let (k, v) = kv.into_inner()?;
            let Some(split) = k.iter().position(|b| *b == 0) else {
                continue;
            };
            let host = String::from_utf8_lossy(&k[..split]);
            if !moved(&host) {
                continue;
            }
            batch.remove(&self.queue, k.to_vec());
            if let Ok(req) = CrawlRequest::decode(&*v) {
                batch.remove(&self.seen, req.url.as_bytes());
                out.push(DiscoveredUrl {
                    url: req.url,
                    host: req.host,
                    depth: req.depth,
                    redirect_hops: req.redirect_hops,
                    referrer: req.referrer,
                    sitemap: req.sitemap,
                });
            }
        }
        for kv in self.schedule.iter() {
            let (k, v) = kv.into_inner()?;
            let url = String::from_utf8_lossy(&k).into_owned();
            let host = url_host(&url).to_owned();
            if !moved(&host) {
                continue;
            }
            let entry = ScheduleEntry::decode(&v).unwrap_or_default();
            batch.remove(&self.schedule, k.to_vec());
            batch.remove(&self.due, due_key(entry.next_ms, &url));
            batch.remove(&self.seen, url.as_bytes());
            out.push(DiscoveredUrl {
                url,
                host,
                depth: entry.depth,
                sitemap: entry.sitemap,
                ..DiscoveredUrl::default()
            });
        }
        batch.commit()?;
        let gone: Vec<String> = self.hosts.keys().filter(|h| moved(h)).cloned().collect();
        for h in gone {
            if let Some(state) = self.hosts.remove(&h) {
                self.pending = self.pending.saturating_sub(state.queued);
                self.in_flight = self.in_flight.saturating_sub(state.in_flight.len());
            }
        }
        Ok(out)
    }

    /// Hosts with queued work waiting for their politeness delay or ready
    /// now: the ready-heap's entries, among which a few stale ones (of a
    /// host rescheduled earlier) until they reach its top.
    pub fn ready_hosts(&self) -> usize {
        self.ready.len()
    }

    /// Hosts parked after repeated failures.
    pub fn parked_hosts(&self) -> usize {
        self.hosts.values().filter(|h| h.parked).count()
    }

    /// Hosts with queued work that are backing off after temporary
    /// failures, not parked (yet): one scan of the hosts.
    pub fn backing_off_hosts(&self) -> usize {
        self.hosts
            .values()
            .filter(|h| h.failures > 0 && !h.parked && h.queued > 0)
            .count()
    }

    fn schedule_next(
        &mut self,
        req: &CrawlRequest,
        fb: &FrontierFeedback,
        now_ms: i64,
        batch: &mut fjall::OwnedWriteBatch,
    ) -> Result<(), FrontierError> {
        let p = self.cfg.recrawl;
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let (min, max) = (ms(p.min), ms(p.max).max(ms(p.min)));
        // A URL admitted and never completed has no schedule: no read.
        let prev = if req.first_fetch {
            None
        } else {
            self.schedule
                .get(req.url.as_bytes())?
                .and_then(|v| ScheduleEntry::decode(&v))
        };
        let definite = fb.outcome().is_definite(fb.status);
        let base = match &prev {
            None => ms(p.initial),
            Some(e) if !definite => e.interval_ms,
            Some(e) if fb.changed => e.interval_ms / 2,
            Some(e) => e.interval_ms.saturating_mul(2),
        }
        .clamp(min, max);
        let linkers = self.linking_domains(&req.url)?.min(MAX_URL_LINKERS);
        let boost = 1.0 + linkers as f64 / 5.0;
        let wait = ((base as f64 / boost) as i64).max(min);
        // Keep the validators of the last 200; a 304 keeps the old ones.
        let (etag, last_modified) = match (&prev, fb.outcome == FetchOutcome::NotModified as i32) {
            (Some(p), true) => (p.etag.clone(), p.last_modified.clone()),
            _ => (fb.etag.clone(), fb.last_modified.clone()),
        };
        let entry = ScheduleEntry {
            interval_ms: base,
            next_ms: now_ms.saturating_add(wait),
            depth: req.depth,
            etag,
            last_modified,
            sitemap: req.sitemap,
        };
        if let Some(old) = &prev {
            batch.remove(&self.due, due_key(old.next_ms, &req.url));
        }
        batch.insert(
            &self.schedule,
            req.url.as_bytes(),
            entry.encode().as_slice(),
        );
        batch.insert(&self.due, due_key(entry.next_ms, &req.url), b"".as_slice());
        Ok(())
    }

    /// Queues every known URL whose next fetch is at or before `now_ms`
    /// (at most `limit`), bypassing de-duplication and budgets: they were
    /// admitted before. Returns how many were queued.
    pub fn enqueue_due(&mut self, now_ms: i64, limit: usize) -> Result<usize, FrontierError> {
        let end = due_key(now_ms.saturating_add(1), "");
        let mut due = Vec::new();
        for kv in self.due.range(..end).take(limit) {
            let k = kv.key()?;
            let url = String::from_utf8_lossy(k.get(8..).unwrap_or_default()).into_owned();
            due.push((k.to_vec(), url));
        }
        let now = Instant::now();
        for (key, url) in &due {
            let host = url::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned));
            let entry = self
                .schedule
                .get(url.as_bytes())?
                .and_then(|v| ScheduleEntry::decode(&v))
                .unwrap_or_default();
            let Some(host) = host else {
                self.due.remove(key.as_slice())?;
                continue;
            };
            let seq = self.next_seq;
            let req = CrawlRequest {
                url: url.clone(),
                host: host.clone(),
                depth: entry.depth,
                enqueued_at_ms: now_ms,
                if_none_match: entry.etag,
                if_modified_since: entry.last_modified,
                sitemap: entry.sitemap,
                ..CrawlRequest::default()
            };
            let encoded: Box<[u8]> = req.encode_to_vec().into_boxed_slice();
            let mut batch = self.db.batch();
            batch.remove(&self.due, key.as_slice());
            batch.insert(&self.queue, queue_key(&host, seq), &*encoded);
            batch.commit()?;
            self.next_seq += 1;
            self.push_back(&host, seq, encoded)?;
            self.schedule(&host, now);
        }
        Ok(due.len())
    }

    /// When the earliest known URL is next due (epoch ms), if any.
    pub fn next_due_ms(&self) -> Option<i64> {
        let k = self.due.first_key_value()?.key().ok()?;
        let b: [u8; 8] = k.get(..8)?.try_into().ok()?;
        i64::try_from(u64::from_be_bytes(b)).ok()
    }

    /// URLs queued and not dispatched.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Requests dispatched and not completed.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Bytes in the engine's memtables (active and sealed, all keyspaces).
    pub fn write_buffer_bytes(&self) -> u64 {
        self.db.write_buffer_size()
    }

    /// Keeps the engine's memtables under its limit ([`WRITE_BUFFER_LIMIT`]). fjall 3.1
    /// asks a worker to rotate a full memtable with a `try_send` on a
    /// bounded channel that its re-queued compaction requests keep full
    /// during a long compaction: the request is dropped, and the memtable
    /// grows without bound (the 10M-URL bench-frontier run reached 744 MiB
    /// of memtables at 8M URLs). Past the limit, each keyspace without a
    /// rotation already pending is rotated here (`rotate_memtable` is
    /// public in fjall, though left out of its docs).
    fn bound_write_buffer(&self) -> Result<(), FrontierError> {
        if self.db.write_buffer_size() <= self.write_buffer_limit {
            return Ok(());
        }
        for ks in self.keyspaces() {
            if ks.sealed_memtable_count() == 0 && ks.rotate_memtable()? {
                metrics::counter!("linkgraph_frontier_memtable_rotations_total").increment(1);
            }
        }
        Ok(())
    }

    /// Makes the frontier state durable.
    pub fn flush(&self) -> Result<(), FrontierError> {
        Ok(self.db.persist(PersistMode::SyncAll)?)
    }

    /// Every keyspace.
    fn keyspaces(&self) -> [&Keyspace; 7] {
        [
            &self.seen,
            &self.queue,
            &self.budgets,
            &self.linkers,
            &self.schedule,
            &self.due,
            &self.robots,
        ]
    }
}

/// The longest a closing frontier waits for its memtables to be flushed:
/// well inside the 30 s its Kubernetes pod is given to stop
/// (`k8s/frontier.yaml`); a flush cut short leaves its journal to be
/// replayed, and loses nothing.
const CLOSE_FLUSH_WAIT: Duration = Duration::from_secs(20);

/// A frontier closed normally writes its memtables to tables and waits
/// (up to [`CLOSE_FLUSH_WAIT`]) for it, so that fjall deletes the journals
/// they held: otherwise the next crawl's start reads them all back (134 MB
/// after a 100,000-page crawl). One killed replays them instead.
impl Drop for Frontier {
    fn drop(&mut self) {
        for ks in self.keyspaces() {
            if let Err(e) = ks.rotate_memtable() {
                tracing::warn!(error = %e, "closing the frontier: its journal is replayed when it opens");
                return;
            }
        }
        let flushed = || {
            self.keyspaces()
                .iter()
                .all(|k| k.sealed_memtable_count() == 0)
        };
        if !poll_until(CLOSE_FLUSH_WAIT, Duration::from_millis(5), flushed) {
            tracing::warn!(
                "closing the frontier: memtables still flushing after {}s; its journal is replayed when it opens",
                CLOSE_FLUSH_WAIT.as_secs()
            );
        }
    }
}

#[cfg(test)]
mod tests;
