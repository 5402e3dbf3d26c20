//! The embedded store's `backlinks` rows on their way into the engine.
//!
//! A page write does not insert its backlinks rows (one per edge, most of
//! what a page writes) into fjall's memtable: inserting into its skiplist
//! one row at a time, under the journal lock every writer shares, was most
//! of a write's cost. The rows wait in memory instead, in the write shard of
//! their source page ([`Shard`]), and once [`INGEST_BYTES`] of them wait,
//! they are sorted and ingested as one run of tables
//! ([`Backlog::ingest`]), which bypasses the memtable.
//!
//! They are durable before that: the write's atomic batch carries one
//! `backlog` row ([`StoredBacklog`]) naming the page, whose live rows are
//! its `page_links` row, and holding its other rows (lost links). When the
//! store opens, the backlog left by a process that died is replayed in
//! write order and ingested ([`Backlog::replay`]); a backlog row is removed
//! once its rows are in the engine. Replaying twice, or after an ingestion
//! whose removal did not happen, writes the same values again.
//!
//! Reads see a row in the first place that has it: its shard, then the
//! rows being ingested ([`Backlog::get_frozen`]), then the engine. Every
//! backlinks row goes this way, so the first place holds the newest value;
//! rows leave the ingesting set only once the engine holds them. Queries
//! ingest what waits first, so they see every acknowledged write.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock, TryLockError};

use fjall::{Database, Keyspace};
use hashbrown::{DefaultHashBuilder, HashTable};
use linkgraph_core::{registrable_domain, url_host};
use linkgraph_proto::{StoredBacklink, StoredBacklog, StoredBacklogRow, StoredOutlinks};
use prost::Message;

use super::{WRITE_SHARDS, decode, key3, shard_of};
use crate::StoreError;

/// Bytes of buffered backlinks keys and values past which a write ingests
/// them; a write waits for a running ingestion past twice this.
pub(super) const INGEST_BYTES: usize = 16 << 20;

/// Where a row's key and value are in a [`Rows`] arena.
#[derive(Debug, Clone, Copy)]
struct Span {
    at: usize,
    key: usize,
    value: usize,
}

/// Backlinks rows in one byte arena, the newest value of each key indexed
/// by the key's bytes: two growing buffers instead of two allocations a
/// row (which, freed by the ingesting thread, fragmented glibc's
/// per-thread arenas: twice the peak RSS).
#[derive(Default)]
pub(super) struct Rows {
    data: Vec<u8>,
    index: HashTable<Span>,
    hasher: DefaultHashBuilder,
    /// The `backlog` rows (sequence numbers) of the writes these came from.
    entries: Vec<u64>,
}

impl Rows {
    fn key(data: &[u8], s: Span) -> &[u8] {
        &data[s.at..s.at + s.key]
    }

    fn value(data: &[u8], s: Span) -> &[u8] {
        &data[s.at + s.key..s.at + s.key + s.value]
    }

    /// The row of `key`, if held here.
    pub(super) fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let h = self.hasher.hash_one(key);
        let data = &self.data;
        self.index
            .find(h, |s| Self::key(data, *s) == key)
            .map(|s| Self::value(data, *s))
    }

    /// Puts `key` with `value`, replacing an older value.
    fn put(&mut self, key: &[u8], value: &[u8]) {
        let span = Span {
            at: self.data.len(),
            key: key.len(),
            value: value.len(),
        };
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value);
        let h = self.hasher.hash_one(key);
        let (data, hasher) = (&self.data, &self.hasher);
        match self.index.find_mut(h, |s| Self::key(data, *s) == key) {
            Some(s) => *s = span,
            None => {
                self.index
                    .insert_unique(h, span, |s| hasher.hash_one(Self::key(data, *s)));
            }
        }
    }

    /// Every row, in no order.
    fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.index
            .iter()
            .map(|s| (Self::key(&self.data, *s), Self::value(&self.data, *s)))
    }

    /// Takes `newer`'s rows over this one's.
    fn merge(&mut self, newer: Rows) {
        for (k, v) in newer.iter() {
            self.put(k, v);
        }
        self.entries.extend(newer.entries);
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The backlinks rows one write shard's pages wrote since the last
/// ingestion; guarded by the shard's write lock.
pub(super) type Shard = Rows;

/// The backlinks rows of one page write, collected while it is diffed.
#[derive(Default)]
pub(super) struct PageRows {
    /// Keys and encoded rows, appended.
    data: Vec<u8>,
    spans: Vec<Span>,
    /// The rows that are not in the page's `page_links` row after the write.
    others: Vec<StoredBacklogRow>,
}

impl PageRows {
    fn push(&mut self, key: &[u8], row: &StoredBacklink) {
        let at = self.data.len();
        self.data.extend_from_slice(key);
        row.encode_raw(&mut self.data);
        self.spans.push(Span {
            at,
            key: key.len(),
            value: self.data.len() - at - key.len(),
        });
    }

    /// A live row: the write also puts it in the page's `page_links` row.
    pub(super) fn live(&mut self, key: &[u8], row: &StoredBacklink) {
        self.push(key, row);
    }

    /// A row that is not live after the write (a lost link).
    pub(super) fn other(&mut self, key: Vec<u8>, row: StoredBacklink) {
        self.push(&key, &row);
        self.others.push(StoredBacklogRow {
            key,
            row: Some(row),
        });
    }
}

/// The buffered backlinks rows of a store and their durable backlog.
pub(super) struct Backlog {
    /// The `backlog` keyspace: sequence number (BE) -> [`StoredBacklog`].
    keyspace: Keyspace,
    /// Each shard's rows taken for an ingestion, readable until it is done.
    frozen: RwLock<Vec<Rows>>,
    /// One ingestion at a time.
    ingesting: Mutex<()>,
    /// Bytes buffered in all shards.
    buffered: AtomicUsize,
    next_entry: AtomicU64,
    /// [`INGEST_BYTES`], lower in tests.
    pub(super) limit: usize,
}

fn poisoned<T>(e: T) -> StoreError
where
    T: std::fmt::Display,
{
    StoreError::Task(format!("backlinks buffer lock poisoned: {e}"))
}

impl Backlog {
    /// The backlog of a store whose `backlog` keyspace is `keyspace`.
    pub(super) fn new(keyspace: Keyspace) -> Self {
        Backlog {
            keyspace,
            frozen: RwLock::new((0..WRITE_SHARDS).map(|_| Rows::default()).collect()),
            ingesting: Mutex::new(()),
            buffered: AtomicUsize::new(0),
            next_entry: AtomicU64::new(0),
            limit: INGEST_BYTES,
        }
    }

    /// Adds the `backlog` row of a write of `page` that buffers `rows` to
    /// its batch; `None` when the write changed no backlinks row. The
    /// caller holds the page's shard lock, so its writes are numbered in
    /// the order they commit.
    pub(super) fn log(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        page: &str,
        rows: &mut PageRows,
    ) -> Option<u64> {
        if rows.spans.is_empty() {
            return None;
        }
        let entry = self.next_entry.fetch_add(1, Ordering::Relaxed);
        let row = StoredBacklog {
            page: page.to_owned(),
            rows: std::mem::take(&mut rows.others),
        };
        batch.insert(&self.keyspace, entry.to_be_bytes(), row.encode_to_vec());
        Some(entry)
    }

    /// Moves a committed write's rows into its shard.
    pub(super) fn absorb(&self, shard: &mut Shard, rows: PageRows, entry: u64) {
        let before = shard.data.len();
        for s in rows.spans {
            shard.put(Rows::key(&rows.data, s), Rows::value(&rows.data, s));
        }
        shard.entries.push(entry);
        self.buffered
            .fetch_add(shard.data.len() - before, Ordering::Relaxed);
    }

    /// The row of `key` among those of shard `slot` being ingested.
    pub(super) fn get_frozen(
        &self,
        slot: usize,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let frozen = self.frozen.read().map_err(poisoned)?;
        Ok(frozen
            .get(slot)
            .and_then(|r| r.get(key))
            .map(<[u8]>::to_vec))
    }

    /// Bytes of rows buffered in the shards.
    #[cfg(test)]
    pub(super) fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Whether enough waits that the write that just finished should ingest
    /// it, and whether it must wait for an ingestion already running.
    pub(super) fn due(&self) -> Option<bool> {
        let b = self.buffered.load(Ordering::Relaxed);
        (b >= self.limit).then_some(b >= self.limit.saturating_mul(2))
    }

    /// Ingests every buffered row into `backlinks` as one sorted run and
    /// removes the backlog rows they came from. With `wait` false it
    /// returns at once when another ingestion runs. The rows stay readable
    /// (in the frozen set) until the engine holds them; a failed ingestion
    /// keeps them there for the next.
    pub(super) fn ingest(
        &self,
        db: &Database,
        backlinks: &Keyspace,
        shards: &[Mutex<Shard>],
        wait: bool,
    ) -> Result<(), StoreError> {
        let _one = match self.ingesting.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) if wait => self.ingesting.lock().map_err(poisoned)?,
            Err(TryLockError::WouldBlock) => return Ok(()),
            Err(TryLockError::Poisoned(e)) => return Err(poisoned(e)),
        };
        // Each shard's rows move under its lock, so its writer finds them
        // in one place or the other.
        for (slot, shard) in shards.iter().enumerate() {
            let mut s = shard.lock().map_err(poisoned)?;
            if s.is_empty() {
                continue;
            }
            let taken = std::mem::take(&mut *s);
            self.buffered.fetch_sub(taken.data.len(), Ordering::Relaxed);
            let mut f = self.frozen.write().map_err(poisoned)?;
            match f.get_mut(slot) {
                Some(held) if held.is_empty() => *held = taken,
                Some(held) => held.merge(taken),
                None => f.push(taken),
            }
        }
        let started = std::time::Instant::now();
        let (rows, entries) = {
            let f = self.frozen.read().map_err(poisoned)?;
            let entries: Vec<u64> = f.iter().flat_map(|r| r.entries.iter().copied()).collect();
            if entries.is_empty() {
                return Ok(());
            }
            let mut sorted: Vec<(&[u8], &[u8])> = f.iter().flat_map(Rows::iter).collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let mut run = backlinks.start_ingestion()?;
            for (k, v) in &sorted {
                run.write(*k, *v)?;
            }
            run.finish()?;
            (sorted.len(), entries)
        };
        // The engine holds the rows: their backlog rows can go, then the
        // rows leave the frozen set. Dying in between replays them again.
        let mut batch = db.batch();
        for e in &entries {
            batch.remove(&self.keyspace, e.to_be_bytes());
        }
        batch.commit()?;
        for r in self.frozen.write().map_err(poisoned)?.iter_mut() {
            *r = Rows::default();
        }
        metrics::counter!("linkgraph_store_backlink_ingests_total").increment(1);
        tracing::debug!(
            rows,
            writes = entries.len(),
            ms = started.elapsed().as_millis() as u64,
            "backlinks rows ingested"
        );
        Ok(())
    }

    /// Replays the backlog a previous process left (its writes' rows never
    /// reached the engine) and ingests it; numbers new writes after it.
    /// Called when the store opens, before any write.
    pub(super) fn replay(
        &self,
        db: &Database,
        backlinks: &Keyspace,
        page_links: &Keyspace,
        shards: &[Mutex<Shard>],
    ) -> Result<(), StoreError> {
        let mut replayed = 0u64;
        {
            let mut f = self.frozen.write().map_err(poisoned)?;
            for kv in self.keyspace.iter() {
                let (k, v) = kv.into_inner()?;
                let entry = <[u8; 8]>::try_from(k.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        table: "backlog",
                        key: String::from_utf8_lossy(&k).into_owned(),
                        reason: "expected an 8-byte sequence number".into(),
                    })?;
                let logged = decode::<StoredBacklog>("backlog", &k, &v)?;
                let page = logged.page.as_str();
                let Some(rows) = f.get_mut(shard_of(registrable_domain(url_host(page)))) else {
                    continue;
                };
                // The page's live rows as they are now: a later write of
                // the page, if any, is also in the backlog, after this one.
                if let Some(v) = page_links.get(page.as_bytes())? {
                    let live = decode::<StoredOutlinks>("page_links", page.as_bytes(), &v)?;
                    for o in live.links {
                        let key = key3(registrable_domain(url_host(&o.target)), &o.target, page);
                        rows.put(&key, &o.row.unwrap_or_default().encode_to_vec());
                    }
                }
                for r in logged.rows {
                    rows.put(&r.key, &r.row.unwrap_or_default().encode_to_vec());
                }
                rows.entries.push(entry);
                self.next_entry.fetch_max(entry + 1, Ordering::Relaxed);
                replayed += 1;
            }
        }
        if replayed > 0 {
            tracing::info!(
                writes = replayed,
                "link store: replaying the backlinks rows of writes a previous process left in memory"
            );
            self.ingest(db, backlinks, shards, true)?;
        }
        Ok(())
    }
}
