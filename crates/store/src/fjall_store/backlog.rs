//! The embedded store's rows on their way into the engine, past its
//! memtables.
//!
//! A page write does not insert its `backlinks` rows (one per edge), its
//! `link_events` rows, its `source_links` keys, its referring-domain
//! counters (`refdomains`, rewritten by every page of the source domain
//! that links the target domain), its `host_addrs` row or its `domains`
//! key into fjall's memtables: inserting into a skiplist one row at a time,
//! under the journal lock every writer shares, was about half of a write's
//! CPU, and a counter's every version stayed in the skiplist until its
//! flush. The rows wait in memory instead, in the write shard of their
//! source page ([`Shard`]), where a key holds only its newest value, and
//! once [`INGEST_BYTES`] of them wait, each table's are sorted and ingested
//! as one run of tables ([`Backlog::ingest`]), which bypasses the memtable.
//! No write reads events, outlink keys, addresses or domains back;
//! backlinks rows are read back only for pages fetched before, and
//! counters ([`Shard::get`]) when the writer no longer holds them.
//!
//! They are durable before that: the write's atomic batch carries one
//! `backlog` row ([`StoredBacklog`]) naming the page, whose live backlinks
//! rows are its `page_links` row, and holding its other rows. A store that
//! closes ingests what waits; when a store opens, the backlog left by a
//! process that died is replayed in write order and ingested
//! ([`Backlog::replay`]). A backlog row is removed once its rows are in the
//! engine. Replaying twice, or after an ingestion
//! whose removal did not happen, writes the same values again.
//!
//! Reads see a row in the first place that has it: its shard, then the
//! rows being ingested ([`Backlog::get_frozen`]), then the engine. Every
//! row of these tables goes this way, so the first place holds the newest
//! value; rows leave the ingesting set only once the engine holds them.
//! Queries ingest what waits first, so they see every acknowledged write.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock, TryLockError};

use fjall::{Database, Keyspace};
use hashbrown::{DefaultHashBuilder, HashTable};
use linkgraph_core::{registrable_domain, url_host};
use linkgraph_proto::{
    StoredBacklink, StoredBacklog, StoredBacklogRow, StoredLoggedRow, StoredOutlinks,
};
use prost::Message;

use super::{WRITE_SHARDS, decode, key3, shard_of};
use crate::StoreError;

/// Bytes of buffered keys and values past which a write ingests them; a
/// write waits for a running ingestion past twice this. Shards and the
/// rows being ingested hold at most about four times this.
pub(super) const INGEST_BYTES: usize = 16 << 20;

/// The tables whose rows wait in memory, in [`Tables`] order.
pub(super) const BACKLINKS: usize = 0;
const EVENTS: usize = 1;
const SOURCE_LINKS: usize = 2;
pub(super) const REFDOMAINS: usize = 3;
const HOST_ADDRS: usize = 4;
const DOMAINS: usize = 5;
/// How many tables wait in memory.
const TABLES: usize = 6;

/// The engine's keyspaces of the buffered tables: backlinks, link_events,
/// source_links, refdomains, host_addrs, domains.
pub(super) type Tables<'a> = [&'a Keyspace; TABLES];

/// Where a row's key and value are in a [`Rows`] arena; `value` is `None`
/// for a removal.
#[derive(Debug, Clone, Copy)]
struct Span {
    at: usize,
    key: usize,
    value: Option<usize>,
}

impl Span {
    fn key(self, data: &[u8]) -> &[u8] {
        &data[self.at..self.at + self.key]
    }

    fn value(self, data: &[u8]) -> Option<&[u8]> {
        let from = self.at + self.key;
        self.value.map(|n| &data[from..from + n])
    }
}

/// One table's rows in one byte arena, the newest value of each key
/// indexed by the key's bytes: two growing buffers instead of two
/// allocations a row (which, freed by the ingesting thread, fragmented
/// glibc's per-thread arenas: twice the peak RSS).
#[derive(Default)]
struct Rows {
    data: Vec<u8>,
    index: HashTable<Span>,
    hasher: DefaultHashBuilder,
}

impl Rows {
    /// The row of `key` if held here: `Some(None)` for a removal.
    fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        let h = self.hasher.hash_one(key);
        let data = &self.data;
        self.index
            .find(h, |s| s.key(data) == key)
            .map(|s| s.value(data))
    }

    /// Puts `key` with `value` (`None`: its removal), replacing an older one.
    fn put(&mut self, key: &[u8], value: Option<&[u8]>) {
        let span = Span {
            at: self.data.len(),
            key: key.len(),
            value: value.map(<[u8]>::len),
        };
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value.unwrap_or_default());
        let h = self.hasher.hash_one(key);
        let (data, hasher) = (&self.data, &self.hasher);
        match self.index.find_mut(h, |s| s.key(data) == key) {
            Some(s) => *s = span,
            None => {
                self.index
                    .insert_unique(h, span, |s| hasher.hash_one(s.key(data)));
            }
        }
    }

    /// Forgets every row, keeping the buffers for the next.
    fn clear(&mut self) {
        self.data.clear();
        self.index.clear();
    }

    /// Every row, in no order.
    fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.index
            .iter()
            .map(|s| (s.key(&self.data), s.value(&self.data)))
    }
}

/// The rows one write shard's pages wrote since the last ingestion;
/// guarded by the shard's write lock.
#[derive(Default)]
pub(super) struct Shard {
    tables: [Rows; TABLES],
    /// The `backlog` rows (sequence numbers) of the writes they came from.
    entries: Vec<u64>,
}

impl Shard {
    /// The buffered row of `key` in `table`, if this shard holds one.
    pub(super) fn get(&self, table: usize, key: &[u8]) -> Option<&[u8]> {
        self.tables.get(table)?.get(key).flatten()
    }

    fn bytes(&self) -> usize {
        self.tables.iter().map(|t| t.data.len()).sum()
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every row, keeping the buffers for the next.
    fn clear(&mut self) {
        self.tables.iter_mut().for_each(Rows::clear);
        self.entries.clear();
    }

    /// Takes `newer`'s rows over this one's.
    fn merge(&mut self, newer: Shard) {
        for (mine, theirs) in self.tables.iter_mut().zip(&newer.tables) {
            for (k, v) in theirs.iter() {
                mine.put(k, v);
            }
        }
        self.entries.extend(newer.entries);
    }
}

/// The buffered rows of one page write, collected while it is diffed.
#[derive(Default)]
pub(super) struct PageRows {
    /// Keys and values of every table, appended.
    data: Vec<u8>,
    spans: Vec<(usize, Span)>,
    /// What the page's `page_links` row does not hold.
    logged: StoredBacklog,
}

impl PageRows {
    /// Starts a row: appends its key, after which its value goes.
    fn start(&mut self, key: &[u8]) -> usize {
        let at = self.data.len();
        self.data.extend_from_slice(key);
        at
    }

    /// Ends the row of `table` started at `at` with a `key`-byte key: its
    /// value is what was appended since, unless it is a removal.
    fn end(&mut self, table: usize, at: usize, key: usize, removal: bool) {
        let value = (!removal).then(|| self.data.len() - at - key);
        self.spans.push((table, Span { at, key, value }));
    }

    fn backlink(&mut self, key: &[u8], row: &StoredBacklink) {
        let at = self.start(key);
        row.encode_raw(&mut self.data);
        self.end(BACKLINKS, at, key.len(), false);
    }

    /// A live backlinks row: the write also puts it in the page's
    /// `page_links` row, which is what makes it durable.
    pub(super) fn live(&mut self, key: &[u8], row: &StoredBacklink) {
        self.backlink(key, row);
    }

    /// A backlinks row that is not live after the write (a lost link):
    /// logged in the backlog row.
    pub(super) fn other(&mut self, key: Vec<u8>, row: StoredBacklink) {
        self.backlink(&key, &row);
        self.logged.rows.push(StoredBacklogRow {
            key,
            row: Some(row),
        });
    }

    /// A row of `table` (`None`: its removal), returned as the backlog
    /// logs it.
    fn logged_row(
        &mut self,
        table: usize,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    ) -> StoredLoggedRow {
        let at = self.start(&key);
        self.data
            .extend_from_slice(value.as_deref().unwrap_or_default());
        self.end(table, at, key.len(), value.is_none());
        StoredLoggedRow {
            key,
            removed: value.is_none(),
            value: value.unwrap_or_default(),
        }
    }

    /// A `link_events` row.
    pub(super) fn event(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let row = self.logged_row(EVENTS, key, Some(value));
        self.logged.events.push(row);
    }

    /// The removal of a `link_events` row.
    pub(super) fn remove_event(&mut self, key: Vec<u8>) {
        let row = self.logged_row(EVENTS, key, None);
        self.logged.events.push(row);
    }

    /// A `refdomains` row (a whole counter: the newest one wins).
    pub(super) fn refdomain(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let row = self.logged_row(REFDOMAINS, key, Some(value));
        self.logged.refdomains.push(row);
    }

    /// A `host_addrs` row.
    pub(super) fn host_addr(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let row = self.logged_row(HOST_ADDRS, key, Some(value));
        self.logged.host_addrs.push(row);
    }

    /// A `source_links` key.
    pub(super) fn source_link(&mut self, key: Vec<u8>) {
        let at = self.start(&key);
        self.end(SOURCE_LINKS, at, key.len(), false);
        self.logged.source_links.push(key);
    }

    /// A `domains` key.
    pub(super) fn domain(&mut self, key: &[u8]) {
        let at = self.start(key);
        self.end(DOMAINS, at, key.len(), false);
        self.logged.domains.push(key.to_vec());
    }

    /// The `refdomains` rows of the write, in the order written.
    pub(super) fn refdomains(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans
            .iter()
            .filter(|(t, _)| *t == REFDOMAINS)
            .filter_map(|(_, s)| Some((s.key(&self.data), s.value(&self.data)?)))
    }
}

/// The buffered rows of a store and their durable backlog.
pub(super) struct Backlog {
    /// The `backlog` keyspace: sequence number (BE) -> [`StoredBacklog`].
    keyspace: Keyspace,
    /// Each shard's rows taken for an ingestion, readable until it is done.
    frozen: RwLock<Vec<Shard>>,
    /// One ingestion at a time.
    ingesting: Mutex<()>,
    /// Bytes buffered in all shards.
    buffered: AtomicUsize,
    next_entry: AtomicU64,
    /// [`INGEST_BYTES`], lower in tests.
    pub(super) limit: AtomicUsize,
    /// Whether closing the store ingests what waits (off in tests, to
    /// close it as a killed process would).
    pub(super) ingest_on_close: AtomicBool,
}

fn poisoned<T>(e: T) -> StoreError
where
    T: std::fmt::Display,
{
    StoreError::Task(format!("buffered rows lock poisoned: {e}"))
}

impl Backlog {
    /// The backlog of a store whose `backlog` keyspace is `keyspace`.
    pub(super) fn new(keyspace: Keyspace) -> Self {
        Backlog {
            keyspace,
            frozen: RwLock::new((0..WRITE_SHARDS).map(|_| Shard::default()).collect()),
            ingesting: Mutex::new(()),
            buffered: AtomicUsize::new(0),
            next_entry: AtomicU64::new(0),
            limit: AtomicUsize::new(INGEST_BYTES),
            ingest_on_close: AtomicBool::new(true),
        }
    }

    /// The `backlog` keyspace.
    pub(super) fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    /// Adds the `backlog` row of a write of `page` that buffers `rows` to
    /// its batch; `None` when the write buffered nothing. The caller holds
    /// the page's shard lock, so its writes are numbered in the order they
    /// commit.
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
        let mut logged = std::mem::take(&mut rows.logged);
        logged.page = page.to_owned();
        batch.insert(&self.keyspace, entry.to_be_bytes(), logged.encode_to_vec());
        Some(entry)
    }

    /// Moves a committed write's rows into its shard.
    pub(super) fn absorb(&self, shard: &mut Shard, rows: PageRows, entry: u64) {
        let before = shard.bytes();
        for (table, s) in rows.spans {
            shard.tables[table].put(s.key(&rows.data), s.value(&rows.data));
        }
        shard.entries.push(entry);
        self.buffered
            .fetch_add(shard.bytes() - before, Ordering::Relaxed);
    }

    /// The row of `key` in `table` among those of shard `slot` being
    /// ingested.
    pub(super) fn get_frozen(
        &self,
        slot: usize,
        table: usize,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let frozen = self.frozen.read().map_err(poisoned)?;
        Ok(frozen
            .get(slot)
            .and_then(|s| s.get(table, key))
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
        let limit = self.limit.load(Ordering::Relaxed);
        (b >= limit).then_some(b >= limit.saturating_mul(2))
    }

    /// Ingests every buffered row into its table as one sorted run and
    /// removes the backlog rows they came from. With `wait` false it
    /// returns at once when another ingestion runs. The rows stay readable
    /// (in the frozen set) until the engine holds them; a failed ingestion
    /// keeps them there for the next.
    pub(super) fn ingest(
        &self,
        db: &Database,
        tables: Tables<'_>,
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
        // in one place or the other. A shard and its frozen slot swap
        // buffers: both keep their capacity from one ingestion to the next
        // (allocating afresh each time fragmented glibc's arenas).
        for (slot, shard) in shards.iter().enumerate() {
            let mut s = shard.lock().map_err(poisoned)?;
            if s.is_empty() {
                continue;
            }
            self.buffered.fetch_sub(s.bytes(), Ordering::Relaxed);
            let mut f = self.frozen.write().map_err(poisoned)?;
            match f.get_mut(slot) {
                Some(held) if held.is_empty() => std::mem::swap(held, &mut *s),
                // Rows a failed ingestion left: the newer ones go over them.
                Some(held) => {
                    held.merge(std::mem::take(&mut *s));
                }
                None => f.push(std::mem::take(&mut *s)),
            }
        }
        let started = std::time::Instant::now();
        let (rows, entries) = {
            let f = self.frozen.read().map_err(poisoned)?;
            let entries: Vec<u64> = f.iter().flat_map(|s| s.entries.iter().copied()).collect();
            if entries.is_empty() {
                return Ok(());
            }
            let mut rows = 0;
            for (t, keyspace) in tables.into_iter().enumerate() {
                let mut sorted: Vec<(&[u8], Option<&[u8]>)> =
                    f.iter().flat_map(|s| s.tables[t].iter()).collect();
                if sorted.is_empty() {
                    continue;
                }
                sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut run = keyspace.start_ingestion()?;
                for (k, v) in &sorted {
                    match v {
                        Some(v) => run.write(*k, *v)?,
                        None => run.write_tombstone(*k)?,
                    }
                }
                run.finish()?;
                rows += sorted.len();
            }
            (rows, entries)
        };
        // The engine holds the rows: their backlog rows can go, then the
        // rows leave the frozen set. Dying in between replays them again.
        let mut batch = db.batch();
        for e in &entries {
            batch.remove(&self.keyspace, e.to_be_bytes());
        }
        batch.commit()?;
        self.frozen
            .write()
            .map_err(poisoned)?
            .iter_mut()
            .for_each(Shard::clear);
        metrics::counter!("linkgraph_store_row_ingests_total").increment(1);
        tracing::debug!(
            rows,
            writes = entries.len(),
            ms = started.elapsed().as_millis() as u64,
            "buffered rows ingested"
        );
        Ok(())
    }

    /// Replays the backlog a previous process left (its writes' rows never
    /// reached the engine) and ingests it; numbers new writes after it.
    /// Called when the store opens, before any write.
    pub(super) fn replay(
        &self,
        db: &Database,
        tables: Tables<'_>,
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
                let Some(shard) = f.get_mut(shard_of(registrable_domain(url_host(page)))) else {
                    continue;
                };
                let [
                    backlinks,
                    events,
                    source_links,
                    refdomains,
                    host_addrs,
                    domains,
                ] = &mut shard.tables;
                // The page's live rows as they are now: a later write of
                // the page, if any, is also in the backlog, after this one.
                if let Some(v) = page_links.get(page.as_bytes())? {
                    let live = decode::<StoredOutlinks>("page_links", page.as_bytes(), &v)?;
                    for o in live.links {
                        let key = key3(registrable_domain(url_host(&o.target)), &o.target, page);
                        let row = o.row.unwrap_or_default().encode_to_vec();
                        backlinks.put(&key, Some(&row));
                    }
                }
                for r in logged.rows {
                    backlinks.put(&r.key, Some(&r.row.unwrap_or_default().encode_to_vec()));
                }
                for e in &logged.events {
                    events.put(&e.key, (!e.removed).then_some(e.value.as_slice()));
                }
                for k in &logged.source_links {
                    source_links.put(k, Some(&[]));
                }
                for r in &logged.refdomains {
                    refdomains.put(&r.key, Some(&r.value));
                }
                for r in &logged.host_addrs {
                    host_addrs.put(&r.key, Some(&r.value));
                }
                for k in &logged.domains {
                    domains.put(k, Some(&[]));
                }
                shard.entries.push(entry);
                self.next_entry.fetch_max(entry + 1, Ordering::Relaxed);
                replayed += 1;
            }
        }
        if replayed > 0 {
            tracing::info!(
                writes = replayed,
                "link store: replaying the rows a process that did not close the store left in memory"
            );
            self.ingest(db, tables, shards, true)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(pairs: &[(&str, Option<&str>)]) -> Rows {
        let mut r = Rows::default();
        for (k, v) in pairs {
            r.put(k.as_bytes(), v.map(str::as_bytes));
        }
        r
    }

    fn sorted(r: &Rows) -> Vec<(String, Option<String>)> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut out: Vec<_> = r.iter().map(|(k, v)| (text(k), v.map(text))).collect();
        out.sort();
        out
    }

    #[test]
    fn a_key_holds_its_newest_value_or_removal() {
        let r = rows(&[
            ("a", Some("1")),
            ("b", Some("2")),
            ("a", Some("3")),
            ("b", None),
            ("c", Some("")),
        ]);
        assert_eq!(r.get(b"a"), Some(Some(b"3".as_slice())));
        assert_eq!(r.get(b"b"), Some(None));
        assert_eq!(r.get(b"c"), Some(Some(b"".as_slice())));
        assert_eq!(r.get(b"d"), None);
        assert_eq!(sorted(&r).len(), 3);
    }

    #[test]
    fn merging_takes_the_newer_rows_and_both_writes() {
        let mut older = Shard {
            entries: vec![1],
            ..Shard::default()
        };
        older.tables[BACKLINKS] = rows(&[("a", Some("1")), ("b", Some("2"))]);
        let mut newer = Shard {
            entries: vec![2],
            ..Shard::default()
        };
        newer.tables[BACKLINKS] = rows(&[("a", Some("3")), ("c", Some("4"))]);
        newer.tables[EVENTS] = rows(&[("e", None)]);
        older.merge(newer);
        let s = |k: &str, v: &str| (k.to_owned(), Some(v.to_owned()));
        assert_eq!(
            sorted(&older.tables[BACKLINKS]),
            [s("a", "3"), s("b", "2"), s("c", "4")]
        );
        assert_eq!(sorted(&older.tables[EVENTS]), [("e".to_owned(), None)]);
        assert_eq!(older.entries, [1, 2]);
        assert_eq!(older.get(BACKLINKS, b"a"), Some(b"3".as_slice()));
        older.clear();
        assert!(older.is_empty());
        assert_eq!(older.bytes(), 0);
        assert_eq!(older.get(BACKLINKS, b"a"), None);
    }
}
