//! The embedded backend: fjall, a pure-Rust LSM engine, in a data directory.
//!
//! Tables are keyspaces whose keys are shaped for the queries:
//!
//! | keyspace   | key                                        | value            |
//! |------------|--------------------------------------------|------------------|
//! | backlinks  | target domain \0 target URL \0 source URL  | StoredBacklink   |
//! | refdomains | target domain \0 source domain             | StoredRefdomain  |
//! | pages      | URL                                        | StoredPage       |
//! | domains    | registrable domain of a crawled page       | (empty)          |
//! | page_links | source URL                                 | StoredOutlinks   |
//! | link_events| target domain \0 time (BE) kind source     | StoredEvents     |
//! | source_links | source domain \0 source URL \0 target URL (external links) | (empty) |
//! | domain_ranks | registrable domain                       | StoredRank       |
//! | host_addrs | registrable domain \0 host                 | StoredHostAddr   |
//! | backlog    | write sequence number (u64 BE)             | StoredBacklog    |
//! | meta       | `format`; `rank_run`                       | u32 (BE); StoredRankRun |
//!
//! `page_links` is each page's current outlink set, with the backlink row
//! of each link. A new observation is diffed against it by [`crate::diff`],
//! which owns the link-change rules; this module reads the prior state and
//! persists the diff: lost links keep their row with `lost_at`, refdomain
//! rows hold live counters, and a referring domain is lost when its counter
//! reaches zero.
//!
//! A live link's `last_seen` is the later of its row's and its page's
//! `seen_at_ms` (when an observation last saw the page's links), applied
//! as rows are read. So a recrawl that finds a page's links unchanged (a
//! 304, or the same links with the same attributes) writes its `pages` row
//! and its refdomain rows' `last_seen`, and no backlink or `page_links`
//! row; a link that is lost takes its page's `seen_at_ms` into its row.
//!
//! A target domain's backlinks and referring domains are each one contiguous
//! key range, so both queries are prefix scans. Canonical URLs and domains
//! never contain NUL, which makes it a safe separator.
//!
//! `source_links` indexes every external edge ever seen by its source
//! domain (written when the edge first appears, never removed), so a
//! domain's outlinks are one prefix scan plus a backlinks read per row.
//!
//! The data directory carries its layout version ([`FORMAT`]) in `meta`.
//! Opening an older directory migrates it (format 1 had no `source_links`;
//! formats 1 and 2 kept one `outlinks` key per live edge and one event row
//! per link; format 3 had no `backlog`; format 5 rewrote every live backlink
//! row when its page was seen again; format 6 wrote refdomains, host_addrs
//! and domains rows through the memtable); a newer format than this build knows
//! is refused, and so is format 4, the layout of a development build that
//! was withdrawn.
//!
//! # The write path
//! A page costs two point reads (its `pages` and `page_links` rows, the
//! second only for a page fetched before), one read per external target
//! domain whose counter changes and that no page of the source domain
//! wrote lately (its writer keeps the counters it wrote, [`Written`]), and
//! one read per link that appears on a page fetched before (a link that
//! comes back keeps its first_seen). No other edge is read. Its page,
//! outlinks and `backlog` entry go to the engine as one atomic batch. Its
//! `backlinks` rows (one per edge), `link_events` rows (one per target
//! domain and kind), `source_links` keys, refdomain counters, `host_addrs`
//! row and `domains` key wait in memory and reach the engine as sorted
//! runs of many pages' rows, bypassing the memtable; the batch's `backlog`
//! entry makes them durable until then ([`backlog`]).
//!
//! Pages are written by a few writer threads ([`writer`]), each owning a
//! share of the [`WRITE_SHARDS`] shards of source domains: everything a
//! write reads back is keyed by the page or its source domain, so writers
//! never share a row, and each shard's lock only guards its buffered rows
//! against an ingestion. A writer diffs every page waiting for it into one
//! batch, a group commit ([`Inner::write_group`]): pages of one source
//! domain read the referring-domain counters the batch or the writer's
//! earlier groups wrote before the engine's, and a page fetched twice in
//! one group commits the batch first. fjall flushes the batch's journal
//! entry to the OS before any of its writes is acknowledged, so a process
//! killed with `kill -9` keeps them.

mod backlog;
mod writer;

use std::path::Path;

use crate::lock::{self, Access, StoreLock};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use linkgraph_core::{Link, LinkKind, Placement, Rel, poll_until, registrable_domain, url_host};
use linkgraph_proto::{
    StoredBacklink, StoredEvent, StoredEvents, StoredHostAddr, StoredOutlink, StoredOutlinks,
    StoredPage, StoredRank, StoredRankRun, StoredRefdomain,
};
use prost::Message;
use std::collections::{BTreeMap, HashMap};

use crate::diff::{self, Attrs, Diff, Outlink, Prior, RefdomainChange};
use crate::{
    Backlink, BacklinkPage, BacklinkQuery, DomainRank, EventKind, HostAddr, LinkEvent, LinkStore,
    LostReason, OutlinkQuery, PageState, PageWrite, RankRun, RefDomain, Row, ScanPage, Status,
    StoreError, Table, Target, WriteStats,
};

const SEP: u8 = 0;
/// The layout version this build writes (see the module doc).
pub const FORMAT: u32 = 7;
/// The layout of a withdrawn development build (commit `e5b62b6`, reverted
/// by the next one): refused, never migrated.
const WITHDRAWN_FORMAT: u32 = 4;
/// Memtable size per keyspace: bounds write-buffer RAM at 6 x 16 MiB
/// (fjall's default is 64 MiB per keyspace).
const MEMTABLE_BYTES: u64 = 16 << 20;
/// The most the engine's memtables may hold (10 keyspaces of 16 MiB, and
/// sealed ones waiting for their flush) before a write rotates them itself
/// ([`Inner::bound_write_buffer`]).
const WRITE_BUFFER_LIMIT: u64 = 256 << 20;
/// Block cache for reads.
const CACHE_BYTES: u64 = 32 << 20;
/// Journal files kept before fjall flushes the memtables that hold the
/// oldest (its default is 512 MiB). A keyspace whose memtable never fills
/// during a crawl (`pages` holds about 10 MB for 100,000 pages) keeps
/// every journal file written after its first row: a process killed late
/// in a crawl left up to that much for the next open to replay.
const JOURNAL_BYTES: u64 = 128 << 20;
/// Write locks: pages of different source domains are diffed in parallel.
const WRITE_SHARDS: usize = 64;
/// L0 tables that trigger a compaction into L1, for the keyspaces that take
/// a row per edge or per linked domain and are rarely read while writing
/// (fjall's default is 4). Fewer, larger L0 -> L1 merges rewrite each byte
/// fewer times.
const WRITE_HEAVY_L0: u8 = 16;
/// The same for the keyspaces a page write reads back (its page, its live
/// outlinks, its refdomain counters): a point read checks every L0 table
/// whose filter admits the key, so they keep fewer.
const READ_BACK_L0: u8 = 8;

/// The write shard of a source domain: every row a page write reads back
/// (its page, its live outlinks, its domain's refdomain counters) is keyed
/// by the page or by its source domain, so one lock per shard suffices.
fn shard_of(source_domain: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    source_domain.hash(&mut h);
    (h.finish() % WRITE_SHARDS as u64) as usize
}

struct Inner {
    db: Database,
    backlinks: Keyspace,
    refdomains: Keyspace,
    pages: Keyspace,
    domains: Keyspace,
    page_links: Keyspace,
    events: Keyspace,
    source_links: Keyspace,
    ranks: Keyspace,
    host_addrs: Keyspace,
    meta: Keyspace,
    /// One write lock per shard of source domains ([`shard_of`]), over
    /// the buffered rows its pages wrote since the last ingestion.
    writers: Vec<Mutex<backlog::Shard>>,
    /// Buffered rows (backlinks, link_events, source_links, refdomains,
    /// host_addrs, domains): their ingestion and their durable log.
    backlog: backlog::Backlog,
    /// Held for as long as the engine is open (dropped last).
    _lock: StoreLock,
    /// Memtable bytes past which a write rotates them ([`WRITE_BUFFER_LIMIT`]).
    write_buffer_limit: u64,
    /// Batches committed for page writes (each one a group of pages),
    /// counted once the engine has each, so a [`SeenAt`] cache read at one
    /// count holds no older row than the engine then had.
    commits: std::sync::atomic::AtomicU64,
    /// The `seen_at_ms` of pages that queries read, and the
    /// [`Inner::commits`] count they were read at: reused while no page
    /// write commits (a scan's pages, one query after another).
    seen_cache: Mutex<(u64, HashMap<String, i64>)>,
}

impl Inner {
    /// The keyspaces whose rows wait in memory ([`backlog`]).
    fn buffered_tables(&self) -> backlog::Tables<'_> {
        [
            &self.backlinks,
            &self.events,
            &self.source_links,
            &self.refdomains,
            &self.host_addrs,
            &self.domains,
        ]
    }

    /// Ingests the rows waiting in memory ([`backlog::Backlog::ingest`]).
    fn ingest(&self, wait: bool) -> Result<(), StoreError> {
        self.backlog
            .ingest(&self.db, self.buffered_tables(), &self.writers, wait)
    }

    /// Every keyspace.
    fn keyspaces(&self) -> [&Keyspace; 11] {
        [
            &self.backlinks,
            &self.refdomains,
            &self.pages,
            &self.domains,
            &self.page_links,
            &self.events,
            &self.source_links,
            &self.ranks,
            &self.host_addrs,
            &self.meta,
            self.backlog.keyspace(),
        ]
    }

    /// Writes every memtable to tables and waits (up to [`CLOSE_FLUSH_WAIT`])
    /// for it, so that fjall can delete the journals they held: otherwise
    /// every later open, a query's too, reads them all back (a 100,000-page
    /// crawl left 400 MB of journal, 2 to 3 s to open).
    fn flush_memtables(&self) -> Result<(), StoreError> {
        for ks in self.keyspaces() {
            ks.rotate_memtable()?;
        }
        let flushed = || {
            self.keyspaces()
                .iter()
                .all(|k| k.sealed_memtable_count() == 0)
        };
        if !poll_until(CLOSE_FLUSH_WAIT, FLUSH_POLL, flushed) {
            tracing::warn!(
                "closing the link store: memtables still flushing after {}s; its journal is replayed when it opens",
                CLOSE_FLUSH_WAIT.as_secs()
            );
        }
        Ok(())
    }
}

/// The longest a writer's close waits for its memtables to be flushed:
/// well inside the 30 s a Kubernetes pod is given to stop (`k8s/`); a
/// flush cut short leaves its journal to be replayed, and loses nothing.
const CLOSE_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
/// How often that wait looks.
const FLUSH_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// A store closed normally ingests what waits in memory and flushes its
/// memtables, so the next open has no backlog and little journal to replay;
/// one killed replays them instead.
impl Drop for Inner {
    fn drop(&mut self) {
        if !self
            .backlog
            .ingest_on_close
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        if let Err(e) = self.ingest(true) {
            tracing::warn!(error = %e, "closing the link store: buffered rows stay in its backlog, replayed when it opens");
            return;
        }
        if let Err(e) = self.flush_memtables() {
            tracing::warn!(error = %e, "closing the link store: its journal is replayed when it opens");
        }
    }
}

/// The embedded link store.
#[derive(Clone)]
pub struct FjallStore {
    inner: Arc<Inner>,
    /// The threads that write pages ([`writer`]); dropped with the last
    /// handle, after which `inner` is.
    writers: Arc<writer::Lazy>,
}

fn key2(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(SEP);
    k.extend_from_slice(b.as_bytes());
    k
}

fn key3(a: &str, b: &str, c: &str) -> Vec<u8> {
    // Sized once: growing key2's exact-size buffer reallocated every
    // backlink key (visible in the crawl's profile).
    let mut k = Vec::with_capacity(a.len() + b.len() + c.len() + 2);
    k.extend_from_slice(a.as_bytes());
    k.push(SEP);
    k.extend_from_slice(b.as_bytes());
    k.push(SEP);
    k.extend_from_slice(c.as_bytes());
    k
}

fn decode<M: Message + Default>(
    table: &'static str,
    key: &[u8],
    v: &[u8],
) -> Result<M, StoreError> {
    M::decode(v).map_err(|e| StoreError::Corrupt {
        table,
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

/// The three NUL-separated parts of a key.
fn split3(table: &'static str, key: &[u8]) -> Result<[String; 3], StoreError> {
    <[String; 3]>::try_from(split_key(table, key)?).map_err(|_| StoreError::Corrupt {
        table,
        key: String::from_utf8_lossy(key).into_owned(),
        reason: "expected three key parts".into(),
    })
}

fn split_key(table: &'static str, key: &[u8]) -> Result<Vec<String>, StoreError> {
    key.split(|b| *b == SEP)
        .map(|p| {
            String::from_utf8(p.to_vec()).map_err(|e| StoreError::Corrupt {
                table,
                key: String::from_utf8_lossy(key).into_owned(),
                reason: e.to_string(),
            })
        })
        .collect()
}

impl FjallStore {
    /// Opens (and with `create`, creates) the store in `path`: with
    /// `create` for writing, else for reading. The engine admits one process
    /// at a time, so this takes the store's lock ([`crate::lock`]): behind
    /// another reader it waits up to [`crate::lock::READ_WAIT`] and says so
    /// on the log (stderr), behind a writer it fails at once, naming it.
    pub fn open(path: &Path, create: bool) -> Result<Self, StoreError> {
        if !create && !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        let access = if create { Access::Write } else { Access::Read };
        let lock = lock::acquire(path, access, lock::READ_WAIT, |h| {
            tracing::warn!(
                pid = h.pid,
                command = %h.command,
                "waiting for another process reading the link store {} to finish (at most {}s)",
                path.display(),
                lock::READ_WAIT.as_secs()
            );
        })?;
        let db = Database::builder(path)
            .cache_size(CACHE_BYTES)
            .max_journaling_size(JOURNAL_BYTES)
            .open()
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        // Bounded memtables: fjall's default is 64 MiB per keyspace. fjall
        // keeps a keyspace's options from its creation: an older directory
        // keeps the L0 thresholds it was created with.
        let tuned = |name: &str, l0: u8| {
            db.keyspace(name, || {
                let leveled = fjall::compaction::Leveled::default().with_l0_threshold(l0);
                KeyspaceCreateOptions::default()
                    .max_memtable_size(MEMTABLE_BYTES)
                    .compaction_strategy(Arc::new(leveled))
            })
        };
        let ks = |name: &str| tuned(name, READ_BACK_L0);
        let meta = ks("meta")?;
        let inner = Inner {
            backlinks: tuned("backlinks", WRITE_HEAVY_L0)?,
            refdomains: ks("refdomains")?,
            pages: ks("pages")?,
            domains: ks("domains")?,
            page_links: ks("page_links")?,
            events: tuned("link_events", WRITE_HEAVY_L0)?,
            source_links: tuned("source_links", WRITE_HEAVY_L0)?,
            ranks: ks("domain_ranks")?,
            host_addrs: ks("host_addrs")?,
            meta: meta.clone(),
            backlog: backlog::Backlog::new(ks("backlog")?),
            db,
            writers: (0..WRITE_SHARDS)
                .map(|_| Mutex::new(backlog::Shard::default()))
                .collect(),
            _lock: lock,
            write_buffer_limit: WRITE_BUFFER_LIMIT,
            commits: std::sync::atomic::AtomicU64::new(0),
            seen_cache: Mutex::default(),
        };
        let store = FjallStore {
            inner: Arc::new(inner),
            writers: Arc::default(),
        };
        let found = match meta.get(b"format")? {
            Some(v) => <[u8; 4]>::try_from(v.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    table: "meta",
                    key: "format".into(),
                    reason: format!("{} bytes, expected 4", v.len()),
                })?,
            // Format 1 had no meta row (and a new directory has none yet).
            None => 1,
        };
        if found == WITHDRAWN_FORMAT {
            return Err(StoreError::WithdrawnFormat(path.to_path_buf()));
        }
        if found > FORMAT {
            return Err(StoreError::Format {
                path: path.to_path_buf(),
                found,
                supported: FORMAT,
            });
        }
        if found < FORMAT {
            if found < 2 {
                store.migrate_to_2()?;
            }
            if found < 3 {
                store.migrate_to_3()?;
            }
            // Format 5 added the `backlog` keyspace, created above. Format
            // 6 derives live links' last_seen from their page's
            // `seen_at_ms`, which is 0 in older rows: they read as written.
            // Format 7 logs refdomains, host_addrs and domains rows in the
            // backlog, which an older backlog does not: its replay is the
            // same.
            meta.insert(b"format", FORMAT.to_be_bytes())?;
            store.inner.db.persist(PersistMode::SyncAll)?;
        }
        let i = &store.inner;
        i.backlog
            .replay(&i.db, i.buffered_tables(), &i.page_links, &i.writers)?;
        Ok(store)
    }

    /// Format 2 to 3: each page's live outlinks move from one `outlinks`
    /// key per edge (source URL \0 target URL) to one `page_links` row per
    /// page that carries their backlink rows, and `outlinks` is dropped;
    /// link events move from one row per link to one row per observation
    /// and kind ([`event_key`]).
    fn migrate_to_3(&self) -> Result<(), StoreError> {
        self.group_events()?;
        let i = &self.inner;
        if !i.db.keyspace_exists("outlinks") {
            return Ok(());
        }
        let outlinks = i.db.keyspace("outlinks", KeyspaceCreateOptions::default)?;
        let (mut pages, mut edges) = (0u64, 0u64);
        let mut batch = i.db.batch();
        let mut current: Option<(String, StoredOutlinks)> = None;
        let put = |batch: &mut fjall::OwnedWriteBatch, page: Option<(String, StoredOutlinks)>| {
            let Some((source, live)) = page else {
                return 0;
            };
            batch.insert(&i.page_links, source.as_bytes(), live.encode_to_vec());
            1
        };
        for kv in outlinks.iter() {
            let k = kv.key()?;
            let Some(at) = k.iter().position(|b| *b == SEP) else {
                continue;
            };
            let source = String::from_utf8_lossy(&k[..at]).into_owned();
            let target = String::from_utf8_lossy(&k[at + 1..]).into_owned();
            let key = key3(registrable_domain(url_host(&target)), &target, &source);
            let Some(v) = i.backlinks.get(&key)? else {
                continue;
            };
            let row = decode::<StoredBacklink>("backlinks", &key, &v)?;
            if row.lost_at_ms != 0 {
                continue;
            }
            if current.as_ref().is_none_or(|(s, _)| *s != source) {
                pages += put(&mut batch, current.take());
                current = Some((source, StoredOutlinks::default()));
                if batch.len() >= 10_000 {
                    std::mem::replace(&mut batch, i.db.batch()).commit()?;
                }
            }
            if let Some((_, live)) = current.as_mut() {
                live.links.push(StoredOutlink {
                    target,
                    row: Some(row),
                });
                edges += 1;
            }
        }
        pages += put(&mut batch, current.take());
        batch.commit()?;
        i.db.delete_keyspace(outlinks)?;
        if edges > 0 {
            tracing::info!(
                pages,
                edges,
                "link store migrated to format 3 (one outlink row per page)"
            );
        }
        Ok(())
    }

    /// Rewrites format-2 event rows (key ending in source \0 target, value
    /// one StoredEvent) as format-3 rows, one per key without the target.
    /// Rows already in format 3 (no separator after the source) are kept,
    /// so an interrupted migration resumes.
    fn group_events(&self) -> Result<(), StoreError> {
        let i = &self.inner;
        let mut batch = i.db.batch();
        let (mut rows, mut events) = (0u64, 0u64);
        let mut current: Option<(Vec<u8>, StoredEvents)> = None;
        for kv in i.events.iter() {
            let (k, v) = kv.into_inner()?;
            // target domain \0, then 8 bytes of time and 1 of kind.
            let Some(body) = k.iter().position(|b| *b == SEP).map(|at| at + 10) else {
                continue;
            };
            let Some(sep) = k.get(body..).and_then(|r| r.iter().position(|b| *b == SEP)) else {
                continue;
            };
            let key = k[..body + sep].to_vec();
            let mut e = decode::<StoredEvent>("link_events", &k, &v)?;
            e.target = String::from_utf8_lossy(&k[body + sep + 1..]).into_owned();
            // A batch commits whole groups: their old rows go with the new.
            if current.as_ref().is_none_or(|(c, _)| *c != key) {
                if let Some((ck, cv)) = current.take() {
                    batch.insert(&i.events, ck, cv.encode_to_vec());
                    rows += 1;
                }
                // A row an interrupted migration already wrote keeps its events.
                let done = match i.events.get(&key)? {
                    Some(v) => decode::<StoredEvents>("link_events", &key, &v)?,
                    None => StoredEvents::default(),
                };
                current = Some((key, done));
                if batch.len() >= 10_000 {
                    std::mem::replace(&mut batch, i.db.batch()).commit()?;
                }
            }
            batch.remove(&i.events, k.to_vec());
            if let Some((_, cv)) = current.as_mut() {
                cv.events.push(e);
                events += 1;
            }
        }
        if let Some((ck, cv)) = current.take() {
            batch.insert(&i.events, ck, cv.encode_to_vec());
            rows += 1;
        }
        batch.commit()?;
        if events > 0 {
            tracing::info!(
                events,
                rows,
                "link events migrated to format 3 (one row per observation)"
            );
        }
        Ok(())
    }

    /// Format 1 to 2: indexes every external edge by its source domain.
    fn migrate_to_2(&self) -> Result<(), StoreError> {
        let i = &self.inner;
        let mut batch = i.db.batch();
        let mut n = 0u64;
        for kv in i.backlinks.iter() {
            let k = kv.key()?;
            let [td, target, source] = &split3("backlinks", &k)?;
            let sd = registrable_domain(url_host(source));
            if sd != td {
                batch.insert(&i.source_links, key3(sd, source, target), b"".as_slice());
                n += 1;
                if n.is_multiple_of(10_000) {
                    std::mem::replace(&mut batch, i.db.batch()).commit()?;
                }
            }
        }
        batch.commit()?;
        if n > 0 {
            tracing::info!(
                edges = n,
                "link store migrated to format 2 (outlinks index)"
            );
        }
        Ok(())
    }
}

/// The write path: runs on the store's writer threads ([`writer`]).
impl Inner {
    /// Writes a group of pages ([`writer`]): diffs each under its shard's
    /// lock into one batch, commits the batch once, then moves each page's
    /// buffered rows into its shard. Pages of one source domain share the
    /// batch (a site crawled many pages at once is written in groups too):
    /// the only rows two pages of a domain both read are its referring-
    /// domain counters, which a page reads from `written` before the
    /// engine. `written` is the calling writer's ([`Written`]): it holds
    /// what this batch and the writer's committed groups wrote, and a
    /// failed commit empties it. A page already in the batch, fetched
    /// again, reads all its rows back, so the batch is committed before it
    /// is diffed. `nudge_ingester` asks for the buffered rows to be
    /// ingested. Returns each page's answer, in order.
    fn write_group(
        &self,
        pages: &[&PageWrite],
        written: &mut Written,
        nudge_ingester: impl Fn(),
    ) -> Vec<Result<WriteStats, StoreError>> {
        let mut out: Vec<Option<Result<WriteStats, StoreError>>> =
            pages.iter().map(|_| None).collect();
        let mut batch = self.db.batch();
        let mut diffed: Vec<Diffed> = Vec::with_capacity(pages.len());
        for (at, page) in pages.iter().enumerate() {
            if diffed.iter().any(|d| pages[d.at].url == page.url) {
                let full = std::mem::replace(&mut batch, self.db.batch());
                self.commit_group(full, &mut diffed, &mut out, written);
            }
            let source_domain = registrable_domain(url_host(&page.url));
            let slot = shard_of(source_domain);
            let mut ops = PageOps::default();
            let res = self.writers[slot]
                .lock()
                .map_err(|e| StoreError::Task(e.to_string()))
                .and_then(|shard| {
                    let shard = (slot, &*shard);
                    self.apply(shard, page, source_domain, written, &mut ops)
                });
            match res {
                Ok((stats, mut rows)) => {
                    ops.into_batch(&mut batch);
                    for (k, v) in rows.refdomains() {
                        written.refdomains.insert(k.into(), v.into());
                    }
                    let entry = self.backlog.log(&mut batch, &page.url, &mut rows);
                    diffed.push(Diffed {
                        at,
                        slot,
                        stats,
                        rows,
                        entry,
                    });
                }
                Err(e) => out[at] = Some(Err(e)),
            }
        }
        self.commit_group(batch, &mut diffed, &mut out, written);
        // Outside the shards' locks: a rotation may wait for fjall's
        // workers, and an ingestion takes every shard's lock in turn.
        let after = self
            .bound_write_buffer()
            .and_then(|()| match self.backlog.due() {
                // Past twice the limit the writer ingests itself (its writes
                // wait), and fails them if it cannot, rather than grow; they
                // are committed and logged, so a retry changes nothing.
                Some(true) => self.ingest(true),
                Some(false) => {
                    nudge_ingester();
                    Ok(())
                }
                None => Ok(()),
            });
        out.into_iter()
            .map(|r| {
                let r = r.unwrap_or_else(|| Err(StoreError::Task("page write not applied".into())));
                match (&after, r) {
                    (Err(e), Ok(_)) => Err(StoreError::Task(format!(
                        "page committed, but the store is over its write buffer: {e}"
                    ))),
                    (_, r) => r,
                }
            })
            .collect()
    }

    /// Commits the batch of the pages in `diffed`, then moves each one's
    /// buffered rows into its shard; records each page's answer in `out`.
    /// A failed commit empties `written`, which held what it wrote.
    fn commit_group(
        &self,
        batch: fjall::OwnedWriteBatch,
        diffed: &mut Vec<Diffed>,
        out: &mut [Option<Result<WriteStats, StoreError>>],
        written: &mut Written,
    ) {
        if diffed.is_empty() {
            return;
        }
        metrics::counter!("linkgraph_store_commits_total").increment(1);
        let result = batch.commit();
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        if let Err(e) = result {
            written.clear();
            let message = e.to_string();
            let pages = diffed.len();
            for d in diffed.drain(..) {
                out[d.at] = Some(Err(StoreError::Commit {
                    pages,
                    message: message.clone(),
                }));
            }
            return;
        }
        written.committed();
        for d in diffed.drain(..) {
            let absorbed = match d.entry {
                None => Ok(()),
                Some(entry) => self.writers[d.slot]
                    .lock()
                    .map(|mut shard| self.backlog.absorb(&mut shard, d.rows, entry))
                    .map_err(|e| StoreError::Task(e.to_string())),
            };
            out[d.at] = Some(absorbed.map(|()| d.stats));
        }
    }

    /// The backlinks row of `key`, written by a page of `shard`: from the
    /// shard's buffer, the rows being ingested, or the engine, the first
    /// that has it (see [`backlog`]).
    fn backlink_row(
        &self,
        (slot, shard): (usize, &backlog::Shard),
        key: &[u8],
    ) -> Result<Option<StoredBacklink>, StoreError> {
        if let Some(v) = shard.get(backlog::BACKLINKS, key) {
            return decode("backlinks", key, v).map(Some);
        }
        if let Some(v) = self.backlog.get_frozen(slot, backlog::BACKLINKS, key)? {
            return decode("backlinks", key, &v).map(Some);
        }
        let stored = self.backlinks.get(key)?;
        stored.map(|v| decode("backlinks", key, &v)).transpose()
    }

    /// Keeps the engine's memtables under their limit
    /// ([`WRITE_BUFFER_LIMIT`]). fjall 3.1 asks a worker to rotate a full
    /// memtable with a `try_send` on a bounded channel that its re-queued
    /// compaction requests keep full during a long compaction: the request
    /// is dropped, and the memtable grows without bound (seen in
    /// bench-frontier: 744 MiB of memtables). Past the limit, each keyspace
    /// without a rotation already pending is rotated here (`rotate_memtable`
    /// is public in fjall, though left out of its docs); a concurrent
    /// writer's rotation of the same memtable is a no-op.
    fn bound_write_buffer(&self) -> Result<(), StoreError> {
        if self.db.write_buffer_size() <= self.write_buffer_limit {
            return Ok(());
        }
        for ks in self.keyspaces() {
            if ks.sealed_memtable_count() == 0 && ks.rotate_memtable()? {
                metrics::counter!("linkgraph_store_memtable_rotations_total").increment(1);
            }
        }
        Ok(())
    }

    /// What the store holds of the page before this observation: two point
    /// reads, its `pages` row and (for a page fetched before) its
    /// `page_links` row.
    fn read_prior(&self, source: &str) -> Result<Before, StoreError> {
        let page_key = source.as_bytes();
        let prev = match self.pages.get(page_key)? {
            Some(v) => Some(decode::<StoredPage>("pages", page_key, &v)?),
            None => None,
        };
        let mut prior = Prior {
            fetched_at_ms: prev.as_ref().map(|p| p.fetched_at_ms),
            content_hash: prev.as_ref().map_or(0, |p| p.content_hash),
            known: prev
                .as_ref()
                .is_some_and(|p| diff::is_definite(p.outcome, p.status)),
            outlinks: Vec::new(),
        };
        let mut rows = HashMap::new();
        // page_links is written in the same batch as pages: a page without
        // a pages row has no outlinks.
        let stored = match prev {
            Some(_) => self.page_links.get(page_key)?,
            None => None,
        };
        if let Some(v) = stored {
            for o in decode::<StoredOutlinks>("page_links", page_key, &v)?.links {
                let row = o.row.unwrap_or_default();
                prior.outlinks.push(Outlink {
                    target: o.target.clone(),
                    rel: rel_bits(row.rel),
                    anchor: row.anchor.clone(),
                    placement: u8::try_from(row.placement).unwrap_or(0),
                    kind: u8::try_from(row.kind).unwrap_or(0),
                });
                rows.insert(o.target, row);
            }
        }
        Ok(Before {
            page: prev,
            prior,
            rows,
        })
    }

    /// Diffs one observation against what the store holds, putting the
    /// engine rows it writes in `batch` and returning its buffered rows.
    /// The caller holds the lock of `source_domain`'s shard: every row
    /// this reads back is keyed by the page or its domain, so pages of
    /// other domains are diffed in parallel.
    fn apply<'a>(
        &'a self,
        (slot, shard): (usize, &backlog::Shard),
        page: &PageWrite,
        source_domain: &str,
        written: &Written,
        batch: &mut PageOps<'a>,
    ) -> Result<(WriteStats, backlog::PageRows), StoreError> {
        let t = page.fetched_at_ms;
        let source = page.url.as_str();
        // Backlinks, event and outlink-key rows go to the shard's buffer,
        // logged in the batch ([`backlog`]).
        let mut buffered = backlog::PageRows::default();
        let Before {
            page: prev,
            prior,
            mut rows,
        } = self.read_prior(source)?;
        let page_key = source.as_bytes();
        let diff = diff::diff(page, &prior);
        // When the page's live links were last seen: now, unless this
        // observation kept them without seeing them.
        let prev_seen_at = prev.as_ref().map_or(0, |p| p.seen_at_ms);
        let seen_at_ms = if matches!(diff, Diff::Keep) {
            prev_seen_at
        } else {
            t
        };
        if !matches!(diff, Diff::Stale { .. }) {
            let row = StoredPage {
                status: page.status,
                outcome: page.outcome,
                fetched_at_ms: t,
                links: u32::try_from(page.links.len()).unwrap_or(u32::MAX),
                content_hash: page.content_hash,
                seen_at_ms,
            };
            batch.insert(&self.pages, page_key, row.encode_to_vec());
            if let Some(ip) = page.remote_ip {
                let addr = StoredHostAddr {
                    ip: ip.to_string(),
                    seen_at_ms: t,
                };
                let key = key2(source_domain, url_host(source));
                buffered.host_addr(key, addr.encode_to_vec());
            }
        }
        if prev.is_none() {
            // The domain's first page (or another page of a known domain).
            buffered.domain(source_domain.as_bytes());
        }
        let change = match diff {
            Diff::Stale { links } => {
                // Any stored row of an observed link, live or lost, existed
                // at `t`: only its first_seen may move earlier.
                let mut live_changed = false;
                for link in links {
                    let key = key3(link.target_domain(), &link.target_url, source);
                    if let Some(row) = rows.get_mut(&link.target_url) {
                        if t < row.first_seen_ms {
                            row.first_seen_ms = t;
                            buffered.live(&key, row);
                            live_changed = true;
                        }
                    } else if let Some(mut row) = self.backlink_row((slot, shard), &key)? {
                        // A lost row: not part of the live set.
                        if t < row.first_seen_ms {
                            row.first_seen_ms = t;
                            buffered.other(key, row);
                        }
                    }
                    if link.is_internal() {
                        continue;
                    }
                    self.update_refdomain(
                        (&mut buffered, written, (slot, shard)),
                        link.target_domain(),
                        source_domain,
                        |rd| {
                            let earlier = t < rd.first_seen_ms;
                            rd.first_seen_ms = rd.first_seen_ms.min(t);
                            earlier
                        },
                    )?;
                }
                if live_changed {
                    self.put_outlinks(batch, source, &prior.outlinks, &rows);
                }
                return Ok((WriteStats::default(), buffered));
            }
            Diff::Keep => return Ok((WriteStats::default(), buffered)),
            Diff::Unchanged { target_domains, .. } => {
                // Its live links were seen now: the page row says so
                // (`seen_at_ms`), and their rows stay as they are.
                for td in target_domains {
                    let at = (&mut buffered, written, (slot, shard));
                    self.update_refdomain(at, td, source_domain, |rd| {
                        let later = rd.links > 0 && rd.last_seen_ms < t;
                        if later {
                            rd.last_seen_ms = t;
                        }
                        later
                    })?;
                }
                if let Some(p) = &prev {
                    // The stored page keeps its hash and link count.
                    let row = StoredPage {
                        fetched_at_ms: t,
                        status: page.status,
                        outcome: page.outcome,
                        seen_at_ms: t,
                        ..*p
                    };
                    batch.insert(&self.pages, page_key, row.encode_to_vec());
                }
                return Ok((WriteStats::default(), buffered));
            }
            Diff::Replace(change) => change,
        };

        // The same links with the same attributes as before: like a 304,
        // only the page row changes (with the refdomain rows' last_seen).
        let same = prev.is_some()
            && change.lost.is_empty()
            && change.events.is_empty()
            && change.upserts.iter().all(|u| {
                rows.get(&u.link.target_url)
                    .is_some_and(|r| same_attrs(r, u.link))
            });
        let mut live = StoredOutlinks {
            links: Vec::with_capacity(change.upserts.len()),
        };
        for u in change.upserts.iter().filter(|_| !same) {
            let link = u.link;
            let key = key3(u.target_domain, &link.target_url, source);
            let existing = match rows.remove(&link.target_url) {
                Some(row) => Some(row),
                // A link that came back keeps its first_seen: only a page
                // fetched before can have a lost row.
                None if prev.is_some() => self.backlink_row((slot, shard), &key)?,
                None => None,
            };
            let row = match existing {
                None => stored_from(link, t, t),
                Some(o) => stored_from(link, o.first_seen_ms.min(t), t.max(o.last_seen_ms)),
            };
            buffered.live(&key, &row);
            if u.appeared && u.target_domain != source_domain {
                let k = key3(source_domain, source, &link.target_url);
                buffered.source_link(k);
            }
            live.links.push(StoredOutlink {
                target: link.target_url.clone(),
                row: Some(row),
            });
        }
        if same {
            // page_links and its rows stay.
        } else if live.links.is_empty() {
            if !prior.outlinks.is_empty() {
                batch.remove(&self.page_links, page_key);
            }
        } else {
            batch.insert(&self.page_links, page_key, live.encode_to_vec());
        }
        for o in &change.lost {
            let Some(mut row) = rows.remove(&o.target) else {
                continue;
            };
            // Last seen by the observation before this one.
            row.last_seen_ms = row.last_seen_ms.max(prev_seen_at);
            row.lost_at_ms = t;
            row.lost_reason = change.lost_reason as u32;
            buffered.other(key3(o.target_domain(), &o.target, source), row);
        }
        let blank = Attrs {
            anchor: "",
            rel: 0,
            placement: 0,
            kind: 0,
        };
        let mut events = EventRows::default();
        for e in &change.events {
            let mut row = stored_event(e.target, e.attrs, e.lost_reason);
            if let Some(b) = e.before {
                row.old_anchor = Some(b.anchor.to_owned());
                row.old_rel = u32::from(b.rel);
                row.old_placement = u32::from(b.placement);
            }
            events.push(e.target_domain, t, e.kind, e.source, row);
        }
        for r in &change.refdomains {
            let key = key2(&r.target_domain, source_domain);
            let mut row = match self.refdomain_row(&key, written, (slot, shard))? {
                Some(row) => row,
                None => StoredRefdomain {
                    first_seen_ms: t,
                    last_seen_ms: t,
                    ..Default::default()
                },
            };
            let was_live = row.links > 0;
            row.links = row
                .links
                .saturating_add_signed(r.after.links - r.before.links);
            row.follow_links = row
                .follow_links
                .saturating_add_signed(r.after.follow - r.before.follow)
                .min(row.links);
            if r.seen() {
                row.first_seen_ms = row.first_seen_ms.min(t);
                row.last_seen_ms = row.last_seen_ms.max(t);
            }
            let lost_at = (!was_live && row.lost_at_ms > 0).then_some(row.lost_at_ms);
            match diff::refdomain_change(
                was_live,
                row.links > 0,
                change.discovered,
                lost_at,
                change.fetched_before,
            ) {
                RefdomainChange::Event(kind) => {
                    row.lost_at_ms = if kind == EventKind::LostRefdomain {
                        t
                    } else {
                        0
                    };
                    let row = stored_event("", blank, None);
                    events.push(&r.target_domain, t, kind, source_domain, row);
                }
                RefdomainChange::Retract { lost_at_ms } => {
                    row.lost_at_ms = 0;
                    let kind = EventKind::LostRefdomain;
                    let gone = event_key(&r.target_domain, lost_at_ms, kind, source_domain);
                    buffered.remove_event(gone);
                }
                RefdomainChange::None => {}
            }
            buffered.refdomain(key, row.encode_to_vec());
        }
        for (k, mut v) in events.0 {
            v.events.sort_by(|a, b| a.target.cmp(&b.target));
            buffered.event(k, v.encode_to_vec());
        }
        Ok((change.stats, buffered))
    }

    /// Writes the page's live outlink set (`outlinks`, with the rows in
    /// `rows`) as its `page_links` row.
    fn put_outlinks<'a>(
        &'a self,
        batch: &mut PageOps<'a>,
        source: &str,
        outlinks: &[Outlink],
        rows: &HashMap<String, StoredBacklink>,
    ) {
        let live = StoredOutlinks {
            links: outlinks
                .iter()
                .filter_map(|o| {
                    rows.get(&o.target).map(|row| StoredOutlink {
                        target: o.target.clone(),
                        row: Some(row.clone()),
                    })
                })
                .collect(),
        };
        batch.insert(&self.page_links, source.as_bytes(), live.encode_to_vec());
    }

    /// Rewrites the refdomain row of (`target`, `source`) when it exists
    /// and `update` changed it.
    fn update_refdomain(
        &self,
        (buffered, written, shard): (&mut backlog::PageRows, &Written, (usize, &backlog::Shard)),
        target: &str,
        source: &str,
        update: impl FnOnce(&mut StoredRefdomain) -> bool,
    ) -> Result<(), StoreError> {
        let key = key2(target, source);
        if let Some(mut rd) = self.refdomain_row(&key, written, shard)?
            && update(&mut rd)
        {
            buffered.refdomain(key, rd.encode_to_vec());
        }
        Ok(())
    }

    /// The refdomain row of `key`, from the first place that has it: the
    /// writer's counters (this group's and its earlier groups'), the
    /// shard's buffered rows, the rows being ingested, the engine.
    fn refdomain_row(
        &self,
        key: &[u8],
        written: &Written,
        (slot, shard): (usize, &backlog::Shard),
    ) -> Result<Option<StoredRefdomain>, StoreError> {
        if let Some(v) = written.refdomains.get(key) {
            return decode("refdomains", key, v).map(Some);
        }
        if let Some(v) = shard.get(backlog::REFDOMAINS, key) {
            return decode("refdomains", key, v).map(Some);
        }
        if let Some(v) = self.backlog.get_frozen(slot, backlog::REFDOMAINS, key)? {
            return decode("refdomains", key, &v).map(Some);
        }
        match self.refdomains.get(key)? {
            Some(v) => decode("refdomains", key, &v).map(Some),
            None => Ok(None),
        }
    }
}

impl FjallStore {
    /// Ingests the buffered rows, so that the engine's `backlinks`,
    /// `link_events`, `source_links`, `refdomains`, `host_addrs` and
    /// `domains` hold every acknowledged write: queries of those call it
    /// first.
    fn sync_buffered(&self) -> Result<(), StoreError> {
        self.inner.ingest(true)
    }

    fn refdomains_sync(&self, domain: &str, status: Status) -> Result<Vec<RefDomain>, StoreError> {
        self.sync_buffered()?;
        let prefix = key2(domain, "");
        let mut out = Vec::new();
        for kv in self.inner.refdomains.prefix(&prefix) {
            let (k, v) = kv.into_inner()?;
            let parts = split_key("refdomains", &k)?;
            let rd = decode::<StoredRefdomain>("refdomains", &k, &v)?;
            let row = refdomain_of(parts.get(1).cloned().unwrap_or_default(), &rd);
            if status.admits(row.lost_at_ms.unwrap_or(0)) {
                out.push(row);
            }
        }
        out.sort_by(|a, b| b.links.cmp(&a.links).then_with(|| a.domain.cmp(&b.domain)));
        Ok(out)
    }

    fn events_sync(
        &self,
        domain: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<LinkEvent>, StoreError> {
        self.sync_buffered()?;
        let prefix = key2(domain, "");
        let mut start = prefix.clone();
        start.extend_from_slice(&time_be(from_ms));
        let mut end = prefix.clone();
        end.extend_from_slice(&time_be(to_ms));
        let mut out = Vec::new();
        for kv in self.inner.events.range(start..end) {
            let (k, v) = kv.into_inner()?;
            out.extend(events_of(prefix.len(), &k, &v)?);
        }
        Ok(out)
    }

    fn backlinks_sync(&self, q: &BacklinkQuery) -> Result<BacklinkPage, StoreError> {
        self.sync_buffered()?;
        let (domain, prefix) = match &q.target {
            Target::Domain(d) => (d.as_str(), key2(d, "")),
            Target::Url(u) => {
                let d = registrable_domain(url_host(u));
                (d, key3(d, u, ""))
            }
        };
        let start = match &q.after {
            // Strictly after the cursor row.
            Some(c) => after_cursor(domain, c)?,
            None => prefix.clone(),
        };
        let limit = q.limit.max(1);
        let mut page = BacklinkPage::default();
        let mut seen = SeenAt::new(&self.inner);
        for kv in self.inner.backlinks.range(start..) {
            let (k, v) = kv.into_inner()?;
            if !k.starts_with(&prefix) {
                break;
            }
            let [_, target, source] = &split3("backlinks", &k)?;
            let row = decode::<StoredBacklink>("backlinks", &k, &v)?;
            let link = stored_link(
                source,
                target,
                row.anchor.clone(),
                row.rel,
                row.placement,
                row.kind,
            );
            if (!q.include_internal && link.source_domain() == domain)
                || !q.status.admits(row.lost_at_ms)
            {
                continue;
            }
            if page.items.len() == limit {
                page.next = page.items.last().map(crate::backlink_cursor);
                break;
            }
            let seen_at = seen.of(source, &row)?;
            page.items.push(backlink_of(link, &row, seen_at));
        }
        Ok(page)
    }

    fn page_states_sync(&self, urls: &[String]) -> Result<Vec<Option<PageState>>, StoreError> {
        urls.iter()
            .map(|u| match self.inner.pages.get(u.as_bytes())? {
                Some(v) => Ok(Some(page_state_of(&decode::<StoredPage>(
                    "pages",
                    u.as_bytes(),
                    &v,
                )?))),
                None => Ok(None),
            })
            .collect()
    }

    fn outlinks_sync(&self, q: &OutlinkQuery) -> Result<BacklinkPage, StoreError> {
        self.sync_buffered()?;
        let prefix = key2(&q.domain, "");
        let start = match &q.after {
            Some(c) => after_cursor(&q.domain, c)?,
            None => prefix.clone(),
        };
        let limit = q.limit.max(1);
        let mut page = BacklinkPage::default();
        let mut seen = SeenAt::new(&self.inner);
        for kv in self.inner.source_links.range(start..) {
            let k = kv.key()?;
            if !k.starts_with(&prefix) {
                break;
            }
            let [_, source, target] = &split3("source_links", &k)?;
            let key = key3(registrable_domain(url_host(target)), target, source);
            let Some(v) = self.inner.backlinks.get(&key)? else {
                continue;
            };
            let row = decode::<StoredBacklink>("backlinks", &key, &v)?;
            if !q.status.admits(row.lost_at_ms) {
                continue;
            }
            if page.items.len() == limit {
                page.next = page.items.last().map(crate::outlink_cursor);
                break;
            }
            let link = stored_link(
                source,
                target,
                row.anchor.clone(),
                row.rel,
                row.placement,
                row.kind,
            );
            let seen_at = seen.of(source, &row)?;
            page.items.push(backlink_of(link, &row, seen_at));
        }
        Ok(page)
    }

    fn scan_sync(
        &self,
        table: Table,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let i = &self.inner;
        if !matches!(table, Table::Pages) {
            self.sync_buffered()?;
        }
        let ks = match table {
            Table::Backlinks => &i.backlinks,
            Table::Refdomains => &i.refdomains,
            Table::Events => &i.events,
            Table::Pages => &i.pages,
        };
        let start = after.map(unhex).transpose()?.map(|mut k| {
            k.push(SEP);
            k
        });
        let iter = match start {
            Some(s) => ks.range(s..),
            None => ks.range::<&[u8], _>(..),
        };
        let mut out = ScanPage::default();
        let mut last = Vec::new();
        let mut seen = SeenAt::new(i);
        for kv in iter {
            let (k, v) = kv.into_inner()?;
            if out.rows.len() == limit.max(1) {
                out.next = Some(hex(&last));
                break;
            }
            let row = match table {
                Table::Backlinks => {
                    let [_, target, source] = &split3("backlinks", &k)?;
                    let row = decode::<StoredBacklink>("backlinks", &k, &v)?;
                    let link = stored_link(
                        source,
                        target,
                        row.anchor.clone(),
                        row.rel,
                        row.placement,
                        row.kind,
                    );
                    let seen_at = seen.of(source, &row)?;
                    Row::Backlink(backlink_of(link, &row, seen_at))
                }
                Table::Refdomains => {
                    let mut parts = split_key("refdomains", &k)?.into_iter();
                    let (Some(target_domain), Some(domain)) = (parts.next(), parts.next()) else {
                        continue;
                    };
                    let rd = decode::<StoredRefdomain>("refdomains", &k, &v)?;
                    Row::Refdomain {
                        target_domain,
                        row: refdomain_of(domain, &rd),
                    }
                }
                Table::Events => {
                    let Some(at) = k.iter().position(|b| *b == SEP) else {
                        continue;
                    };
                    let target_domain = String::from_utf8_lossy(&k[..at]).into_owned();
                    // A row holds one observation's events: all of them go
                    // in this page (it may exceed `limit` by that many).
                    let mut evs = events_of(at + 1, &k, &v)?.into_iter();
                    let Some(last_event) = evs.next_back() else {
                        continue;
                    };
                    out.rows.extend(evs.map(|event| Row::Event {
                        target_domain: target_domain.clone(),
                        event,
                    }));
                    Row::Event {
                        target_domain,
                        event: last_event,
                    }
                }
                Table::Pages => Row::Page {
                    url: String::from_utf8_lossy(&k).into_owned(),
                    state: page_state_of(&decode::<StoredPage>("pages", &k, &v)?),
                },
            };
            last = k.to_vec();
            out.rows.push(row);
        }
        Ok(out)
    }
}

/// The key just after the row of cursor `c` ("first \0 second" key part)
/// in the partition of `domain`.
fn after_cursor(domain: &str, c: &str) -> Result<Vec<u8>, StoreError> {
    let (a, b) = c
        .split_once('\0')
        .ok_or_else(|| StoreError::BadCursor(c.chars().take(64).collect()))?;
    let mut k = key3(domain, a, b);
    k.push(SEP);
    Ok(k)
}

/// Lower-case hex of a key, as a scan cursor.
fn hex(k: &[u8]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>, StoreError> {
    let bad = || StoreError::BadCursor(s.chars().take(64).collect());
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

fn page_state_of(p: &StoredPage) -> PageState {
    PageState {
        status: p.status,
        outcome: p.outcome,
        fetched_at_ms: p.fetched_at_ms,
    }
}

/// A backlinks row as answered: a live link was last seen when its page's
/// links last were (`seen_at_ms`, [`SeenAt`]), if that is later than its row.
fn backlink_of(link: Link, row: &StoredBacklink, seen_at_ms: i64) -> Backlink {
    let last_seen_ms = if row.lost_at_ms == 0 {
        row.last_seen_ms.max(seen_at_ms)
    } else {
        row.last_seen_ms
    };
    Backlink {
        link,
        first_seen_ms: row.first_seen_ms,
        last_seen_ms,
        lost_at_ms: (row.lost_at_ms != 0).then_some(row.lost_at_ms),
        lost_reason: LostReason::from_code(row.lost_reason).filter(|_| row.lost_at_ms != 0),
    }
}

/// When source pages' links were last seen ([`StoredPage::seen_at_ms`]), read
/// once per page while no page write commits ([`Inner::seen_cache`]).
struct SeenAt<'a> {
    inner: &'a Inner,
    /// The [`Inner::commits`] count before anything was read.
    at: u64,
    cache: HashMap<String, i64>,
}

impl<'a> SeenAt<'a> {
    /// Pages held at most; past it the cache starts over (about 100 bytes
    /// each).
    const MAX_PAGES: usize = 1 << 18;

    fn new(inner: &'a Inner) -> Self {
        let at = inner.commits.load(std::sync::atomic::Ordering::Acquire);
        let mut shared = inner
            .seen_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cache = if shared.0 == at {
            std::mem::take(&mut shared.1)
        } else {
            HashMap::new()
        };
        SeenAt { inner, at, cache }
    }

    /// For a live row of `source` (0 for a lost row: its last_seen is final).
    fn of(&mut self, source: &str, row: &StoredBacklink) -> Result<i64, StoreError> {
        if row.lost_at_ms != 0 {
            return Ok(0);
        }
        if let Some(t) = self.cache.get(source) {
            return Ok(*t);
        }
        let t = match self.inner.pages.get(source.as_bytes())? {
            Some(v) => decode::<StoredPage>("pages", source.as_bytes(), &v)?.seen_at_ms,
            None => 0,
        };
        if self.cache.len() >= Self::MAX_PAGES {
            self.cache.clear();
        }
        self.cache.insert(source.to_owned(), t);
        Ok(t)
    }
}

/// Hands the pages read to the next query, unless a page write committed
/// meanwhile (one of them may be older than the engine's row now).
impl Drop for SeenAt<'_> {
    fn drop(&mut self) {
        let now = self
            .inner
            .commits
            .load(std::sync::atomic::Ordering::Acquire);
        if now == self.at {
            let mut shared = self
                .inner
                .seen_cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *shared = (now, std::mem::take(&mut self.cache));
        }
    }
}

/// A refdomain row: lost (with its time, at least 1) once it has no links.
fn refdomain_of(domain: String, rd: &StoredRefdomain) -> RefDomain {
    RefDomain {
        domain,
        links: rd.links,
        follow_links: rd.follow_links,
        first_seen_ms: rd.first_seen_ms,
        last_seen_ms: rd.last_seen_ms,
        lost_at_ms: (rd.links == 0).then_some(rd.lost_at_ms.max(1)),
    }
}

/// An event row whose key's time starts at byte `at`.
fn events_of(at: usize, k: &[u8], v: &[u8]) -> Result<Vec<LinkEvent>, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        table: "link_events",
        key: String::from_utf8_lossy(k).into_owned(),
        reason: reason.into(),
    };
    let rest = k.get(at..).ok_or_else(|| corrupt("short key"))?;
    let (ts, rest) = rest
        .split_at_checked(8)
        .ok_or_else(|| corrupt("short key"))?;
    let at_ms = i64::try_from(u64::from_be_bytes(
        ts.try_into().map_err(|_| corrupt("time"))?,
    ))
    .map_err(|_| corrupt("time"))?;
    let (kind, source) = rest.split_first().ok_or_else(|| corrupt("no kind"))?;
    let kind = EventKind::from_code(*kind).ok_or_else(|| corrupt("unknown kind"))?;
    let source = String::from_utf8_lossy(source);
    let rows = decode::<StoredEvents>("link_events", k, v)?;
    Ok(rows
        .events
        .into_iter()
        .map(|row| LinkEvent {
            at_ms,
            kind,
            link: stored_link(
                &source,
                &row.target,
                row.anchor,
                row.rel,
                row.placement,
                row.kind,
            ),
            lost_reason: LostReason::from_code(row.lost_reason),
            before: row.old_anchor.map(|a| {
                (
                    a,
                    Rel::from_bits(rel_bits(row.old_rel)),
                    Placement::from_code(u8::try_from(row.old_placement).unwrap_or(0)),
                )
            }),
        })
        .collect())
}

/// The engine rows of one page write, collected while it is diffed and
/// added to its group's batch only once the whole diff succeeded: a page
/// that fails leaves nothing in a batch that other pages commit.
#[derive(Default)]
struct PageOps<'a>(Vec<(&'a Keyspace, fjall::UserKey, Option<fjall::UserValue>)>);

impl<'a> PageOps<'a> {
    fn insert(
        &mut self,
        keyspace: &'a Keyspace,
        key: impl Into<fjall::UserKey>,
        value: impl Into<fjall::UserValue>,
    ) {
        self.0.push((keyspace, key.into(), Some(value.into())));
    }

    fn remove(&mut self, keyspace: &'a Keyspace, key: impl Into<fjall::UserKey>) {
        self.0.push((keyspace, key.into(), None));
    }

    /// Adds the rows to `batch`.
    fn into_batch(self, batch: &mut fjall::OwnedWriteBatch) {
        for (keyspace, key, value) in self.0 {
            match value {
                Some(v) => batch.insert(keyspace, key, v),
                None => batch.remove(keyspace, key),
            }
        }
    }
}

/// The referring-domain counters (by key) that a writer's pages wrote, in
/// the batch being built or in the groups it committed: what a later page
/// of the same source domain reads back. Nothing else a page reads is
/// keyed by anything but its own URL. Only the writer that owns a source
/// domain's shard writes its counters, so these are their newest values.
/// Reading them from the engine was about a sixth of a page write's time
/// in `make bench-store`, where a site's pages link to the same domains
/// again and again.
#[derive(Default)]
pub(super) struct Written {
    refdomains: HashMap<fjall::UserKey, fjall::UserValue>,
}

impl Written {
    /// Counters held, at most; past it, the next commit forgets them all
    /// (about 100 bytes each: 26 MB a writer). At 65,536 a recrawl of the
    /// 100,000-page simulated web (179,239 counters over two writers) forgot
    /// them before a source domain's next page came, and read each again:
    /// this cut its CPU by 7% (4 alternating pairs).
    const MAX_ROWS: usize = 1 << 18;

    /// Forgets every counter: after a failed commit (some of them may not
    /// be in the engine) or a panic mid-group.
    pub(super) fn clear(&mut self) {
        self.refdomains.clear();
    }

    /// The group's batch is in the engine: every counter held is too.
    fn committed(&mut self) {
        if self.refdomains.len() > Self::MAX_ROWS {
            self.refdomains.clear();
        }
    }
}

/// A page of a group, diffed into the group's batch and waiting for its
/// commit.
struct Diffed {
    /// Its place in the group.
    at: usize,
    /// Its write shard.
    slot: usize,
    stats: WriteStats,
    /// Its buffered rows, moved into the shard once committed.
    rows: backlog::PageRows,
    /// Its `backlog` row, if it buffered any.
    entry: Option<u64>,
}

/// The link_events rows of one observation, by key.
#[derive(Default)]
struct EventRows(BTreeMap<Vec<u8>, StoredEvents>);

impl EventRows {
    fn push(&mut self, target_domain: &str, t: i64, kind: EventKind, source: &str, e: StoredEvent) {
        let key = event_key(target_domain, t, kind, source);
        self.0.entry(key).or_default().events.push(e);
    }
}

/// A page's stored state before an observation.
struct Before {
    /// Its row.
    page: Option<StoredPage>,
    /// Its current outlinks, with the attributes of their live backlink rows.
    prior: Prior,
    /// Those live backlink rows, by target URL.
    rows: HashMap<String, StoredBacklink>,
}

fn time_be(ms: i64) -> [u8; 8] {
    u64::try_from(ms.max(0)).unwrap_or(0).to_be_bytes()
}

/// A link_events key: target domain \0 time (8 bytes BE) kind (1 byte)
/// source (a page URL, or the referring domain of a refdomain event).
fn event_key(target_domain: &str, t: i64, kind: EventKind, source: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(target_domain.len() + source.len() + 10);
    k.extend_from_slice(target_domain.as_bytes());
    k.push(SEP);
    k.extend_from_slice(&time_be(t));
    k.push(kind as u8);
    k.extend_from_slice(source.as_bytes());
    k
}

/// One event of a link_events row.
fn stored_event(target: &str, attrs: Attrs<'_>, lost_reason: Option<LostReason>) -> StoredEvent {
    StoredEvent {
        target: target.to_owned(),
        anchor: attrs.anchor.to_owned(),
        rel: u32::from(attrs.rel),
        placement: u32::from(attrs.placement),
        kind: u32::from(attrs.kind),
        lost_reason: lost_reason.map_or(0, |r| r as u32),
        ..StoredEvent::default()
    }
}

/// A link rebuilt from its key parts and stored columns.
pub(crate) fn stored_link(
    source: &str,
    target: &str,
    anchor: String,
    rel: u32,
    placement: u32,
    kind: u32,
) -> Link {
    Link {
        source_url: source.to_owned(),
        target_url: target.to_owned(),
        anchor,
        rel: Rel::from_bits(rel_bits(rel)),
        placement: Placement::from_code(u8::try_from(placement).unwrap_or(0)),
        kind: if kind == 1 {
            LinkKind::Redirect
        } else {
            LinkKind::Link
        },
    }
}

fn rel_bits(v: u32) -> u8 {
    u8::try_from(v & 0xff).unwrap_or(0)
}

/// `row` holds `link`'s attributes.
fn same_attrs(row: &StoredBacklink, link: &Link) -> bool {
    let new = stored_from(link, row.first_seen_ms, row.last_seen_ms);
    (&row.anchor, row.rel, row.placement, row.kind)
        == (&new.anchor, new.rel, new.placement, new.kind)
}

fn stored_from(link: &Link, first: i64, last: i64) -> StoredBacklink {
    StoredBacklink {
        anchor: link.anchor.clone(),
        rel: u32::from(link.rel.bits()),
        placement: u32::from(link.placement.code()),
        kind: u32::from(link.kind == LinkKind::Redirect),
        first_seen_ms: first,
        last_seen_ms: last,
        lost_at_ms: 0,
        lost_reason: 0,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

#[async_trait]
impl LinkStore for FjallStore {
    async fn write_page(&self, page: PageWrite) -> Result<WriteStats, StoreError> {
        let started = Instant::now();
        let res = self.writers.write(&self.inner, page).await;
        crate::record_write("fjall", started, &res);
        res
    }

    async fn refdomains(&self, domain: &str, status: Status) -> Result<Vec<RefDomain>, StoreError> {
        let (this, d, started) = (self.clone(), domain.to_owned(), Instant::now());
        let res = blocking(move || this.refdomains_sync(&d, status)).await;
        crate::record_read("fjall", "refdomains", started, &res);
        res
    }

    async fn events(
        &self,
        domain: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<LinkEvent>, StoreError> {
        let (this, d, started) = (self.clone(), domain.to_owned(), Instant::now());
        let res = blocking(move || this.events_sync(&d, from_ms, to_ms)).await;
        crate::record_read("fjall", "events", started, &res);
        res
    }

    async fn backlinks(&self, query: BacklinkQuery) -> Result<BacklinkPage, StoreError> {
        let (this, started) = (self.clone(), Instant::now());
        let res = blocking(move || this.backlinks_sync(&query)).await;
        crate::record_read("fjall", "backlinks", started, &res);
        res
    }

    async fn page_states(&self, urls: &[String]) -> Result<Vec<Option<PageState>>, StoreError> {
        let (this, urls, started) = (self.clone(), urls.to_vec(), Instant::now());
        let res = blocking(move || this.page_states_sync(&urls)).await;
        crate::record_read("fjall", "page_states", started, &res);
        res
    }

    async fn outlinks(&self, query: OutlinkQuery) -> Result<BacklinkPage, StoreError> {
        let (this, started) = (self.clone(), Instant::now());
        let res = blocking(move || this.outlinks_sync(&query)).await;
        crate::record_read("fjall", "outlinks", started, &res);
        res
    }

    async fn scan(
        &self,
        table: Table,
        after: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let (this, started) = (self.clone(), Instant::now());
        let res = blocking(move || this.scan_sync(table, after.as_deref(), limit)).await;
        crate::record_read("fjall", "scan", started, &res);
        res
    }

    async fn knows_domain(&self, domain: &str) -> Result<bool, StoreError> {
        let (this, d) = (self.clone(), domain.to_owned());
        blocking(move || {
            this.sync_buffered()?;
            if this.inner.domains.contains_key(d.as_bytes())? {
                return Ok(true);
            }
            Ok(this.inner.backlinks.prefix(key2(&d, "")).next().is_some())
        })
        .await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let this = self.clone();
        // Buffered rows are durable through the backlog: no ingestion.
        blocking(move || Ok(this.inner.db.persist(PersistMode::SyncAll)?)).await
    }

    async fn write_ranks(&self, ranks: Vec<DomainRank>) -> Result<(), StoreError> {
        let this = self.clone();
        blocking(move || {
            let i = &this.inner;
            let mut batch = i.db.batch();
            for r in &ranks {
                batch.insert(
                    &i.ranks,
                    r.domain.as_bytes(),
                    stored_rank(r).encode_to_vec(),
                );
            }
            Ok(batch.commit()?)
        })
        .await
    }

    async fn write_rank_run(&self, run: RankRun) -> Result<(), StoreError> {
        let this = self.clone();
        blocking(move || {
            let row = StoredRankRun {
                computed_at_ms: run.computed_at_ms,
                nodes: run.nodes,
                arcs: run.arcs,
                harmonic_method: run.harmonic_method,
                trusted: run.trusted,
            };
            this.inner.meta.insert(b"rank_run", row.encode_to_vec())?;
            Ok(this.inner.db.persist(PersistMode::SyncAll)?)
        })
        .await
    }

    async fn rank_run(&self) -> Result<Option<RankRun>, StoreError> {
        let this = self.clone();
        blocking(move || {
            let Some(v) = this.inner.meta.get(b"rank_run")? else {
                return Ok(None);
            };
            let r = decode::<StoredRankRun>("meta", b"rank_run", &v)?;
            Ok(Some(RankRun {
                computed_at_ms: r.computed_at_ms,
                nodes: r.nodes,
                arcs: r.arcs,
                harmonic_method: r.harmonic_method,
                trusted: r.trusted,
            }))
        })
        .await
    }

    async fn domain_ranks(
        &self,
        domains: &[String],
    ) -> Result<Vec<Option<DomainRank>>, StoreError> {
        let (this, domains) = (self.clone(), domains.to_vec());
        blocking(move || {
            domains
                .into_iter()
                .map(|d| match this.inner.ranks.get(d.as_bytes())? {
                    Some(v) => Ok(Some(domain_rank_of(
                        d.clone(),
                        &decode("domain_ranks", d.as_bytes(), &v)?,
                    ))),
                    None => Ok(None),
                })
                .collect()
        })
        .await
    }

    async fn scan_ranks(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<DomainRank>, Option<String>), StoreError> {
        let this = self.clone();
        blocking(move || {
            let ks = &this.inner.ranks;
            let iter = match &after {
                // The smallest key after `a`: `a` followed by NUL.
                Some(a) => ks.range(key2(a, "")..),
                None => ks.range::<&[u8], _>(..),
            };
            let mut rows = Vec::new();
            for kv in iter {
                let (k, v) = kv.into_inner()?;
                if rows.len() == limit.max(1) {
                    let next = rows.last().map(|r: &DomainRank| r.domain.clone());
                    return Ok((rows, next));
                }
                let domain = String::from_utf8_lossy(&k).into_owned();
                rows.push(domain_rank_of(domain, &decode("domain_ranks", &k, &v)?));
            }
            Ok((rows, None))
        })
        .await
    }

    async fn host_addrs(&self, domain: &str) -> Result<Vec<HostAddr>, StoreError> {
        let (this, d) = (self.clone(), domain.to_owned());
        blocking(move || {
            this.sync_buffered()?;
            let mut out = Vec::new();
            for kv in this.inner.host_addrs.prefix(key2(&d, "")) {
                let (k, v) = kv.into_inner()?;
                let row = decode::<StoredHostAddr>("host_addrs", &k, &v)?;
                let Ok(ip) = row.ip.parse() else {
                    return Err(StoreError::Corrupt {
                        table: "host_addrs",
                        key: String::from_utf8_lossy(&k).into_owned(),
                        reason: format!("not an IP address: {:?}", row.ip),
                    });
                };
                out.push(HostAddr {
                    host: String::from_utf8_lossy(&k[d.len() + 1..]).into_owned(),
                    ip,
                    seen_at_ms: row.seen_at_ms,
                });
            }
            Ok(out)
        })
        .await
    }
}

/// The stored form of a domain's ranks.
pub(crate) fn stored_rank(r: &DomainRank) -> StoredRank {
    StoredRank {
        authority: r.authority,
        pagerank: r.pagerank,
        harmonic: r.harmonic,
        trust: r.trust,
        referring_domains: r.referring_domains,
        computed_at_ms: r.computed_at_ms,
    }
}

/// A domain's ranks from their stored form.
pub(crate) fn domain_rank_of(domain: String, r: &StoredRank) -> DomainRank {
    DomainRank {
        domain,
        authority: r.authority,
        pagerank: r.pagerank,
        harmonic: r.harmonic,
        trust: r.trust,
        referring_domains: r.referring_domains,
        computed_at_ms: r.computed_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;
    use std::sync::atomic::Ordering::Relaxed;

    fn store() -> (tempfile::TempDir, FjallStore) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = FjallStore::open(&dir.path().join("store"), true).unwrap_or_else(|e| panic!("{e}"));
        (dir, s)
    }

    #[tokio::test]
    async fn conformance_suite() {
        let (_dir, s) = store();
        conformance::run_all(&s).await;
    }

    /// The suite again, with every write ingesting its backlinks rows at
    /// once: reads of rows the engine holds, not only buffered ones.
    #[tokio::test]
    async fn conformance_suite_ingesting_every_write() {
        let (_dir, s) = store();
        s.inner.backlog.limit.store(1, Relaxed);
        conformance::run_all(&s).await;
        assert!(s.inner.backlinks.table_count() > 0, "nothing ingested");
    }

    /// A referring domain's counter, read back from its writer's memory
    /// ([`Written`]) across many groups, matches the pages that link, and
    /// the engine holds the same once the store is reopened.
    #[tokio::test]
    async fn refdomain_counters_kept_by_the_writer_match_the_engine() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let links = |s: &FjallStore| {
            let s = s.clone();
            async move {
                let r = s.refdomains("b.com", Status::All).await;
                let r = r.unwrap_or_else(|e| panic!("{e}"));
                r.iter()
                    .map(|d| (d.domain.clone(), d.links, d.lost_at_ms.is_some()))
                    .collect::<Vec<_>>()
            }
        };
        let s = FjallStore::open(&dir.path().join("store"), true).unwrap_or_else(|e| panic!("{e}"));
        // Page i of a.com links b.com on its first fetch when i is even,
        // on its second when i is odd, and on its third not at all: each
        // write awaited, a group of its own.
        let linked = |round: i64, i: i64| round < 2 && (i % 2 == 0) == (round == 0);
        let mut live = 0i64;
        for round in 0..3 {
            for i in 0..20 {
                let url = format!("http://a.com/{i}");
                let targets: &[&str] = if linked(round, i) {
                    &["http://b.com/"]
                } else {
                    &[]
                };
                let t = 1000 * (1 + round) + i;
                let w = s.write_page(conformance::page(&url, t, targets)).await;
                w.unwrap_or_else(|e| panic!("{e}"));
                live += i64::from(linked(round, i)) - i64::from(round > 0 && linked(round - 1, i));
                let want = vec![("a.com".to_owned(), live.unsigned_abs(), live == 0)];
                assert_eq!(links(&s).await, want, "after round {round}, page {i}");
            }
        }
        assert_eq!(live, 0);
        let before = links(&s).await;
        drop(s);
        let s = FjallStore::open(&dir.path().join("store"), true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(links(&s).await, before);
        let known = s.knows_domain("a.com").await;
        assert!(known.unwrap_or_else(|e| panic!("{e}")));
    }

    /// What a store answers about b.com's and a.com's links, live and
    /// lost, their events and their referring domains (live, lost, all),
    /// and whether it knows each source domain and its hosts' addresses.
    async fn link_answers(
        s: &FjallStore,
    ) -> (
        Vec<BacklinkPage>,
        Vec<Vec<LinkEvent>>,
        Vec<Vec<RefDomain>>,
        Vec<(bool, Vec<HostAddr>)>,
    ) {
        let mut sources = Vec::new();
        for d in ["a.com", "c.com", "d.com", "e.com"] {
            let known = s.knows_domain(d).await.unwrap_or_else(|e| panic!("{e}"));
            let addrs = s.host_addrs(d).await.unwrap_or_else(|e| panic!("{e}"));
            sources.push((known, addrs));
        }
        let ok = |r: Result<BacklinkPage, StoreError>| r.unwrap_or_else(|e| panic!("{e}"));
        let mut events = Vec::new();
        let mut refdomains = Vec::new();
        for target in ["b.com", "a.com"] {
            let e = s.events(target, 0, i64::MAX).await;
            events.push(e.unwrap_or_else(|e| panic!("{e}")));
            for status in [Status::Live, Status::Lost, Status::All] {
                let r = s.refdomains(target, status).await;
                refdomains.push(r.unwrap_or_else(|e| panic!("{e}")));
            }
        }
        let mut out = Vec::new();
        for target in ["b.com", "a.com"] {
            let q = BacklinkQuery {
                target: Target::Domain(target.into()),
                include_internal: true,
                status: Status::All,
                limit: 100,
                after: None,
            };
            out.push(ok(s.backlinks(q).await));
        }
        let q = OutlinkQuery {
            domain: "a.com".into(),
            status: Status::All,
            limit: 100,
            after: None,
        };
        out.push(ok(s.outlinks(q).await));
        (out, events, refdomains, sources)
    }

    /// A process killed with buffered rows still in memory loses none:
    /// the store it left answers, once reopened, exactly as one whose rows
    /// were ingested before it closed. The writes cover new, lost and
    /// returning links, a stale observation, a retracted loss of a
    /// referring domain, hosts' addresses that change, and rows of each
    /// kind on each side of an ingestion.
    #[tokio::test]
    async fn buffered_rows_survive_a_killed_process() {
        let mut writes = [
            conformance::page(
                "http://a.com/",
                1000,
                &["http://b.com/x", "http://b.com/y", "http://a.com/z"],
            ),
            conformance::page("http://c.com/", 1500, &["http://b.com/y"]),
            // y and z are lost.
            conformance::page("http://a.com/", 2000, &["http://b.com/x"]),
            // y comes back (first seen at 1000); w is new.
            conformance::page(
                "http://a.com/",
                3000,
                &["http://b.com/x", "http://b.com/y", "http://b.com/w"],
            ),
            // Stale: moves the lost z's first_seen earlier.
            conformance::page("http://a.com/", 500, &["http://a.com/z"]),
            conformance::page("http://a.com/", 4000, &["http://b.com/w"]),
            // d.com links b.com, drops it (b.com loses d.com at 3000), and
            // a page of d.com fetched for the first time links it again:
            // the loss is retracted (its event row removed).
            conformance::page("http://d.com/1", 1000, &["http://b.com/x"]),
            conformance::page("http://d.com/1", 3000, &[]),
            conformance::page("http://d.com/2", 4000, &["http://b.com/x"]),
        ];
        // a.com moves to another address; d.com's hosts keep theirs.
        for (n, w) in writes.iter_mut().enumerate() {
            let last = if w.url.contains("a.com") && n > 2 {
                2
            } else {
                1
            };
            w.remote_ip = Some(std::net::IpAddr::from([127, 0, 0, last]));
        }
        let expected = {
            let (_dir, s) = store();
            for w in writes.clone() {
                s.write_page(w).await.unwrap_or_else(|e| panic!("{e}"));
            }
            link_answers(&s).await
        };
        let lost = expected.0[0]
            .items
            .iter()
            .filter(|b| b.lost_at_ms.is_some())
            .count();
        assert!(lost >= 2, "the writes lose links: {:?}", expected.0[0]);
        let events = &expected.1[0];
        assert!(events.iter().any(|e| e.kind == EventKind::LostLink));
        assert!(
            !events
                .iter()
                .any(|e| e.kind == EventKind::LostRefdomain && e.link.source_url == "d.com"),
            "the loss of d.com is retracted: {events:?}"
        );
        // b.com's live referring domains, their counters moved by every write.
        let live: Vec<(&str, u64)> = expected.2[0]
            .iter()
            .map(|r| (r.domain.as_str(), r.links))
            .collect();
        assert_eq!(live, [("a.com", 1), ("c.com", 1), ("d.com", 1)]);
        let known: Vec<(bool, usize)> = expected.3.iter().map(|(k, a)| (*k, a.len())).collect();
        assert_eq!(known, [(true, 1), (true, 1), (true, 1), (false, 0)]);
        assert_eq!(expected.3[0].1[0].ip.to_string(), "127.0.0.2");
        assert!(
            expected.2[0]
                .iter()
                .any(|r| r.domain == "a.com" && r.first_seen_ms == 1000),
            "{:?}",
            expected.2[0]
        );
        for ingested_before in 0..writes.len() {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            {
                let s = FjallStore::open(&dir.path().join("store"), true)
                    .unwrap_or_else(|e| panic!("{e}"));
                // Closed as a killed process leaves it.
                s.inner.backlog.ingest_on_close.store(false, Relaxed);
                for (n, w) in writes.iter().cloned().enumerate() {
                    // The first writes ingest their rows at once; the rest stay in memory.
                    let limit = if n < ingested_before { 1 } else { usize::MAX };
                    s.inner.backlog.limit.store(limit, Relaxed);
                    s.write_page(w).await.unwrap_or_else(|e| panic!("{e}"));
                }
                assert!(
                    s.inner.backlog.buffered() > 0,
                    "no rows left in memory when the process dies"
                );
                // Dropped as if killed: the buffered rows are gone with it.
            }
            let s = FjallStore::open(&dir.path().join("store"), false)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                link_answers(&s).await,
                expected,
                "ingested before write {ingested_before}"
            );
            let logged = s.inner.db.keyspace("backlog", Default::default);
            let logged = logged.unwrap_or_else(|e| panic!("{e}"));
            assert!(
                logged.is_empty().unwrap_or(false),
                "backlog kept after replay"
            );
        }
    }

    /// Pages written at once go to the engine in groups, one batch each,
    /// pages of one source domain together: every answer is the one
    /// writing them one at a time gives. Two rounds of 300 pages of two
    /// sites linking to shared targets, the second losing and moving links
    /// (referring domains lost, counters moved by many pages of a batch).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_written_at_once_answer_as_written_one_at_a_time() {
        let round = |t: i64| -> Vec<PageWrite> {
            (0..300)
                .map(|p| {
                    let site = ["c.com", "e.com", "a.com", "a.com", "a.com"][p % 5];
                    let mut targets = vec![format!("http://{site}/p{}", p + 1)];
                    // e.com drops b.com in the second round: b.com loses it.
                    if t == 1000 || (p % 2 == 0 && site != "e.com") {
                        targets.push(format!("http://b.com/x{}", p % 7));
                    }
                    if t == 1000 || p % 3 != 0 {
                        targets.push(format!("http://d.com/{}", p % 3));
                    }
                    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
                    conformance::page(&format!("http://{site}/p{p}"), t, &targets)
                })
                .collect()
        };
        let (_one_dir, one) = store();
        let (_many_dir, many) = store();
        for t in [1000, 2000] {
            for w in round(t) {
                one.write_page(w).await.unwrap_or_else(|e| panic!("{e}"));
            }
            let mut tasks = tokio::task::JoinSet::new();
            for w in round(t) {
                let s = many.clone();
                tasks.spawn(async move { s.write_page(w).await });
            }
            while let Some(r) = tasks.join_next().await {
                r.unwrap_or_else(|e| panic!("{e}"))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        let commits = many.inner.commits.load(Relaxed);
        assert!(commits < 400, "600 pages in {commits} batches: no groups");
        for target in ["b.com", "d.com"] {
            for status in [Status::Live, Status::Lost, Status::All] {
                let a = one.refdomains(target, status).await;
                let b = many.refdomains(target, status).await;
                let (a, b) = (
                    a.unwrap_or_else(|e| panic!("{e}")),
                    b.unwrap_or_else(|e| panic!("{e}")),
                );
                assert_eq!(a, b, "{target} {status:?}");
            }
            let e = |s: &FjallStore| {
                let s = s.clone();
                async move {
                    s.events(target, 0, i64::MAX)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"))
                }
            };
            assert_eq!(e(&one).await, e(&many).await, "events of {target}");
            let q = BacklinkQuery {
                target: Target::Domain(target.into()),
                include_internal: true,
                status: Status::All,
                limit: 1000,
                after: None,
            };
            let a = one
                .backlinks(q.clone())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let b = many.backlinks(q).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(a, b, "backlinks of {target}");
        }
        let lost = one.refdomains("b.com", Status::Lost).await;
        let lost: Vec<String> = lost
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|r| r.domain)
            .collect();
        let live = one.refdomains("b.com", Status::Live).await;
        let live: Vec<(String, u64)> = live
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|r| (r.domain, r.links))
            .collect();
        assert_eq!(lost, ["e.com"]);
        assert_eq!(live, [("a.com".to_owned(), 90), ("c.com".to_owned(), 30)]);
    }

    /// Past its write-buffer limit a write rotates the memtables itself
    /// (fjall may drop its own rotation request): here, about 3 MiB of
    /// pages under a 1 MiB limit, well inside one 16 MiB memtable, end up
    /// in tables, and every edge is still there.
    #[tokio::test]
    async fn memtables_past_the_write_buffer_limit_are_rotated() {
        let (_dir, mut s) = store();
        let inner = Arc::get_mut(&mut s.inner).unwrap_or_else(|| panic!("one handle"));
        inner.write_buffer_limit = 1 << 20;
        let long = "x".repeat(100);
        let targets: Vec<String> = (0..20)
            .map(|t| format!("http://b.com/{long}/{t}"))
            .collect();
        let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
        for p in 0..300 {
            let page = conformance::page(&format!("http://a.com/{long}/{p}"), 1000, &targets);
            s.write_page(page).await.unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(
            s.inner.page_links.table_count() > 0,
            "page_links never flushed"
        );
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while s.inner.db.write_buffer_size() > 2 << 20 && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(s.inner.db.write_buffer_size() <= 2 << 20);
        let rd = s
            .refdomains("b.com", Status::Live)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rd.len(), 1);
        assert_eq!(rd[0].links, 300 * 20);
    }

    /// A writer closed normally flushes its memtables, so the next open
    /// (a query's too) rebuilds none from the journal.
    #[tokio::test]
    async fn a_store_closed_normally_reopens_with_nothing_to_replay() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("store");
        {
            let s = FjallStore::open(&path, true).unwrap_or_else(|e| panic!("{e}"));
            for i in 0..200 {
                let url = format!("http://www.a{i}.com/");
                let p = conformance::page(&url, 1000, &["http://b.com/x", "http://c.com/y"]);
                s.write_page(p).await.unwrap_or_else(|e| panic!("{e}"));
            }
            assert!(s.inner.db.write_buffer_size() > 0, "written to memtables");
        }
        let s = FjallStore::open(&path, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.inner.db.write_buffer_size(), 0, "nothing replayed");
        let rd = s
            .refdomains("b.com", crate::Status::Live)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rd.len(), 200, "and nothing lost");
    }

    #[tokio::test]
    async fn writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let s =
                FjallStore::open(&dir.path().join("store"), true).unwrap_or_else(|e| panic!("{e}"));
            s.write_page(conformance::page(
                "http://www.a.com/",
                1000,
                &["http://b.com/x"],
            ))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            s.flush().await.unwrap_or_else(|e| panic!("{e}"));
        }
        let s =
            FjallStore::open(&dir.path().join("store"), false).unwrap_or_else(|e| panic!("{e}"));
        let rd = s
            .refdomains("b.com", crate::Status::Live)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rd.len(), 1);
        assert_eq!(rd[0].domain, "a.com");
    }

    /// A format-1 directory (no `meta`, no `source_links`) gains its
    /// outlinks index on open; a newer format is refused with what to do.
    #[tokio::test]
    async fn old_layouts_migrate_and_newer_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ok = |r: Result<(), fjall::Error>| r.unwrap_or_else(|e| panic!("{e}"));
        let mut events = Vec::new();
        {
            let s =
                FjallStore::open(&dir.path().join("store"), true).unwrap_or_else(|e| panic!("{e}"));
            let p = conformance::page("http://a.com/", 1000, &["http://b.com/x", "http://a.com/y"]);
            s.write_page(p).await.unwrap_or_else(|e| panic!("{e}"));
            for d in ["a.com", "b.com"] {
                events.push(
                    s.events(d, 0, i64::MAX)
                        .await
                        .unwrap_or_else(|e| panic!("{e}")),
                );
            }
            // Back to format 1.
            let i = &s.inner;
            ok(i.db
                .keyspace("meta", Default::default)
                .and_then(|m| m.remove(b"format")));
            let keys: Vec<_> = i
                .source_links
                .iter()
                .filter_map(|kv| kv.key().ok())
                .collect();
            for k in keys {
                ok(i.source_links.remove(k));
            }
            assert!(i.source_links.is_empty().unwrap_or(false));
            // Formats 1 and 2 kept one event row per link.
            let rows: Vec<_> = i
                .events
                .iter()
                .filter_map(|kv| kv.into_inner().ok())
                .collect();
            for (k, v) in rows {
                ok(i.events.remove(k.to_vec()));
                let group = StoredEvents::decode(v.as_ref()).unwrap_or_else(|e| panic!("{e}"));
                for mut e in group.events {
                    let mut old = k.to_vec();
                    old.push(SEP);
                    old.extend_from_slice(std::mem::take(&mut e.target).as_bytes());
                    ok(i.events.insert(old, e.encode_to_vec()));
                }
            }
            // Formats 1 and 2 kept live outlinks as one key per edge.
            ok(i.page_links.remove("http://a.com/"));
            let outlinks =
                i.db.keyspace("outlinks", Default::default)
                    .unwrap_or_else(|e| panic!("{e}"));
            for target in ["http://b.com/x", "http://a.com/y"] {
                ok(outlinks.insert(key2("http://a.com/", target), b""));
            }
            s.flush().await.unwrap_or_else(|e| panic!("{e}"));
        }
        {
            // The outlinks moved to page_links: a recrawl that drops a link
            // loses exactly that one, and the old keyspace is gone.
            let s =
                FjallStore::open(&dir.path().join("store"), true).unwrap_or_else(|e| panic!("{e}"));
            assert!(!s.inner.db.keyspace_exists("outlinks"));
            for (d, before) in ["a.com", "b.com"].into_iter().zip(&events) {
                let now = s
                    .events(d, 0, i64::MAX)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(&now, before, "{d}");
                assert!(!now.is_empty(), "{d}");
            }
            let p = conformance::page("http://a.com/", 2000, &["http://b.com/x"]);
            let stats = s.write_page(p).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((stats.edges, stats.new_edges, stats.lost_edges), (1, 0, 1));
            s.flush().await.unwrap_or_else(|e| panic!("{e}"));
        }
        {
            let s = FjallStore::open(&dir.path().join("store"), false)
                .unwrap_or_else(|e| panic!("{e}"));
            let page = s
                .outlinks(OutlinkQuery {
                    domain: "a.com".into(),
                    status: Status::All,
                    limit: 10,
                    after: None,
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let targets: Vec<_> = page
                .items
                .iter()
                .map(|b| b.link.target_url.as_str())
                .collect();
            assert_eq!(targets, ["http://b.com/x"]);
            let meta = s.inner.db.keyspace("meta", Default::default);
            ok(meta.and_then(|m| m.insert(b"format", 99u32.to_be_bytes())));
            s.flush().await.unwrap_or_else(|e| panic!("{e}"));
        }
        match FjallStore::open(&dir.path().join("store"), false) {
            Err(e @ StoreError::Format { found: 99, .. }) => {
                assert!(e.to_string().contains("use a newer linkgraph"), "{e}");
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a newer format opened"),
        }
        // Format 4 was a withdrawn build's layout: refused, not migrated.
        {
            let db = fjall::Database::builder(dir.path().join("store")).open();
            let meta = db.and_then(|db| db.keyspace("meta", Default::default));
            ok(meta.and_then(|m| m.insert(b"format", 4u32.to_be_bytes())));
        }
        match FjallStore::open(&dir.path().join("store"), false) {
            Err(e @ StoreError::WithdrawnFormat(_)) => {
                assert!(e.to_string().contains("new --data directory"), "{e}");
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("format 4 opened"),
        }
    }

    /// A scan pages through a whole table exactly once, by hex cursors.
    #[tokio::test]
    async fn scans_return_every_row_once() {
        let (_dir, s) = store();
        for i in 0..5 {
            let p = conformance::page(
                &format!("http://s{i}.com/"),
                1000,
                &["http://t.com/", "http://u.com/"],
            );
            s.write_page(p).await.unwrap_or_else(|e| panic!("{e}"));
        }
        for (table, want) in [
            (Table::Backlinks, 10),
            (Table::Refdomains, 10),
            (Table::Pages, 5),
            (Table::Events, 20),
        ] {
            let (mut n, mut after) = (0, None);
            loop {
                let page = s
                    .scan(table, after, 3)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                n += page.rows.len();
                match page.next {
                    Some(c) => after = Some(c),
                    None => break,
                }
            }
            assert_eq!(n, want, "{table:?}");
        }
        assert!(matches!(
            s.scan(Table::Pages, Some("zz".into()), 3).await,
            Err(StoreError::BadCursor(_))
        ));
    }

    #[test]
    fn a_missing_directory_is_not_created_for_reads() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let missing = dir.path().join("nope");
        assert!(matches!(
            FjallStore::open(&missing, false),
            Err(StoreError::Missing(_))
        ));
        assert!(!missing.exists());
    }

    #[tokio::test]
    async fn store_urls_pick_the_backend() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("fjall://{}", dir.path().join("store").display());
        assert!(crate::open(&url, true).await.is_ok());
        assert!(matches!(
            crate::open("mongo://x", true).await,
            Err(StoreError::BadUrl { .. })
        ));
        assert!(matches!(
            crate::open("scylla://127.0.0.1:9042/bad-name", true).await,
            Err(StoreError::BadUrl { .. })
        ));
    }
}
