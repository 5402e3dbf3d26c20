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
//! | outlinks   | source URL \0 target URL                   | (empty)          |
//! | link_events| target domain \0 time (BE) kind source \0 target | StoredEvent |
//! | source_links | source domain \0 source URL \0 target URL (external links) | (empty) |
//! | meta       | `format`                                   | u32 (BE)         |
//!
//! `outlinks` is each page's current outlink set. A new observation is
//! diffed against it by [`crate::diff`], which owns the link-change rules;
//! this module reads the prior state and persists the diff: lost links keep
//! their row with `lost_at`, refdomain rows hold live counters, and a
//! referring domain is lost when its counter reaches zero.
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
//! Opening a directory of format 1 (before `source_links`) builds the index
//! once from `backlinks`; a newer format than this build knows is refused.
//!
//! Writes read the rows they update (refdomain counters depend on whether an
//! edge is new), so they are serialized by a mutex and applied as one atomic
//! batch per page.

use std::path::Path;

use crate::lock::{self, Access, StoreLock};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use linkgraph_core::{Link, LinkKind, Placement, Rel, registrable_domain, url_host};
use linkgraph_proto::{StoredBacklink, StoredEvent, StoredPage, StoredRefdomain};
use prost::Message;
use std::collections::{BTreeMap, HashSet};

use crate::diff::{self, Attrs, Diff, Outlink, Prior, RefdomainChange};
use crate::{
    Backlink, BacklinkPage, BacklinkQuery, EventKind, LinkEvent, LinkStore, LostReason,
    OutlinkQuery, PageState, PageWrite, RefDomain, Row, ScanPage, Status, StoreError, Table,
    Target, WriteStats,
};

const SEP: u8 = 0;
/// The layout version this build writes (see the module doc).
pub const FORMAT: u32 = 2;
/// Memtable size per keyspace: bounds write-buffer RAM at 6 x 16 MiB
/// (fjall's default is 64 MiB per keyspace).
const MEMTABLE_BYTES: u64 = 16 << 20;
/// Block cache for reads.
const CACHE_BYTES: u64 = 32 << 20;

struct Inner {
    db: Database,
    backlinks: Keyspace,
    refdomains: Keyspace,
    pages: Keyspace,
    domains: Keyspace,
    outlinks: Keyspace,
    events: Keyspace,
    source_links: Keyspace,
    write_lock: Mutex<()>,
    /// Held for as long as the engine is open (dropped last).
    _lock: StoreLock,
}

/// The embedded link store.
#[derive(Clone)]
pub struct FjallStore {
    inner: Arc<Inner>,
}

fn key2(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(SEP);
    k.extend_from_slice(b.as_bytes());
    k
}

fn key3(a: &str, b: &str, c: &str) -> Vec<u8> {
    let mut k = key2(a, b);
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
            .open()
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        // Bounded memtables: fjall's default is 64 MiB per keyspace.
        let ks = |name: &str| {
            db.keyspace(name, || {
                KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES)
            })
        };
        let meta = ks("meta")?;
        let inner = Inner {
            backlinks: ks("backlinks")?,
            refdomains: ks("refdomains")?,
            pages: ks("pages")?,
            domains: ks("domains")?,
            outlinks: ks("outlinks")?,
            events: ks("link_events")?,
            source_links: ks("source_links")?,
            db,
            write_lock: Mutex::new(()),
            _lock: lock,
        };
        let store = FjallStore {
            inner: Arc::new(inner),
        };
        match meta.get(b"format")? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        table: "meta",
                        key: "format".into(),
                        reason: format!("{} bytes, expected 4", v.len()),
                    })?;
                if found > FORMAT {
                    return Err(StoreError::Format {
                        path: path.to_path_buf(),
                        found,
                        supported: FORMAT,
                    });
                }
            }
            None => {
                store.migrate_to_2()?;
                meta.insert(b"format", FORMAT.to_be_bytes())?;
                store.inner.db.persist(PersistMode::SyncAll)?;
            }
        }
        Ok(store)
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

    /// Applies a page under the write lock, then counts the page's referring
    /// domains (a read, outside the lock).
    fn write_page_sync(&self, page: &PageWrite) -> Result<WriteStats, StoreError> {
        let mut stats = self.write_locked(page)?;
        stats.referring_domains = self.page_refdomains(&page.url)?;
        Ok(stats)
    }

    /// What the store holds of the page before this observation.
    fn read_prior(&self, source: &str) -> Result<Before, StoreError> {
        let i = &self.inner;
        let page_key = source.as_bytes();
        let prev = match i.pages.get(page_key)? {
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
        let mut rows = BTreeMap::new();
        let mut stray = Vec::new();
        let out_prefix = key2(source, "");
        for kv in i.outlinks.prefix(&out_prefix) {
            let k = kv.key()?;
            let target = String::from_utf8_lossy(&k[out_prefix.len()..]).into_owned();
            let key = key3(registrable_domain(url_host(&target)), &target, source);
            match i.backlinks.get(&key)? {
                Some(v) => {
                    let row = decode::<StoredBacklink>("backlinks", &key, &v)?;
                    if row.lost_at_ms != 0 {
                        stray.push(target);
                        continue;
                    }
                    prior.outlinks.push(Outlink {
                        target: target.clone(),
                        rel: rel_bits(row.rel),
                        anchor: row.anchor.clone(),
                        placement: u8::try_from(row.placement).unwrap_or(0),
                        kind: u8::try_from(row.kind).unwrap_or(0),
                    });
                    rows.insert(target, row);
                }
                None => stray.push(target),
            }
        }
        Ok(Before {
            page: prev,
            prior,
            rows,
            stray,
        })
    }

    fn write_locked(&self, page: &PageWrite) -> Result<WriteStats, StoreError> {
        let i = &self.inner;
        let _guard = i
            .write_lock
            .lock()
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let t = page.fetched_at_ms;
        let source = page.url.as_str();
        let source_domain = registrable_domain(url_host(source));
        let mut batch = i.db.batch();
        let Before {
            page: prev,
            prior,
            mut rows,
            stray,
        } = self.read_prior(source)?;
        let page_key = source.as_bytes();
        let diff = diff::diff(page, &prior);
        if !matches!(diff, Diff::Stale { .. }) {
            let row = StoredPage {
                status: page.status,
                outcome: page.outcome,
                fetched_at_ms: t,
                links: u32::try_from(page.links.len()).unwrap_or(u32::MAX),
                content_hash: page.content_hash,
            };
            batch.insert(&i.pages, page_key, row.encode_to_vec());
        }
        batch.insert(&i.domains, source_domain.as_bytes(), b"".as_slice());
        let change = match diff {
            Diff::Stale { links } => {
                // Any stored row of an observed link, live or lost, existed
                // at `t`: only its first_seen may move earlier.
                for link in links {
                    let key = key3(link.target_domain(), &link.target_url, source);
                    if let Some(v) = i.backlinks.get(&key)? {
                        let mut row = decode::<StoredBacklink>("backlinks", &key, &v)?;
                        if t < row.first_seen_ms {
                            row.first_seen_ms = t;
                            batch.insert(&i.backlinks, key, row.encode_to_vec());
                        }
                    }
                    if link.is_internal() {
                        continue;
                    }
                    self.update_refdomain(&mut batch, link.target_domain(), source_domain, |rd| {
                        let earlier = t < rd.first_seen_ms;
                        rd.first_seen_ms = rd.first_seen_ms.min(t);
                        earlier
                    })?;
                }
                batch.commit()?;
                return Ok(WriteStats::default());
            }
            Diff::Keep => {
                batch.commit()?;
                return Ok(WriteStats::default());
            }
            Diff::Unchanged {
                seen,
                target_domains,
            } => {
                for o in seen {
                    let Some(mut row) = rows.remove(&o.target) else {
                        continue;
                    };
                    if row.last_seen_ms < t {
                        row.last_seen_ms = t;
                        let key = key3(o.target_domain(), &o.target, source);
                        batch.insert(&i.backlinks, key, row.encode_to_vec());
                    }
                }
                for td in target_domains {
                    self.update_refdomain(&mut batch, td, source_domain, |rd| {
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
                        ..*p
                    };
                    batch.insert(&i.pages, page_key, row.encode_to_vec());
                }
                batch.commit()?;
                return Ok(WriteStats::default());
            }
            Diff::Replace(change) => change,
        };

        for u in &change.upserts {
            let link = u.link;
            let key = key3(link.target_domain(), &link.target_url, source);
            let existing = match rows.remove(&link.target_url) {
                Some(row) => Some(row),
                // A link that came back keeps its first_seen.
                None => match i.backlinks.get(&key)? {
                    Some(v) => Some(decode::<StoredBacklink>("backlinks", &key, &v)?),
                    None => None,
                },
            };
            let row = match existing {
                None => stored_from(link, t, t),
                Some(o) => stored_from(link, o.first_seen_ms.min(t), t.max(o.last_seen_ms)),
            };
            batch.insert(&i.backlinks, key, row.encode_to_vec());
            if u.appeared {
                batch.insert(&i.outlinks, key2(source, &link.target_url), b"".as_slice());
                if !link.is_internal() {
                    let k = key3(source_domain, source, &link.target_url);
                    batch.insert(&i.source_links, k, b"".as_slice());
                }
            }
        }
        for o in &change.lost {
            batch.remove(&i.outlinks, key2(source, &o.target));
            let Some(mut row) = rows.remove(&o.target) else {
                continue;
            };
            row.lost_at_ms = t;
            row.lost_reason = change.lost_reason as u32;
            let key = key3(o.target_domain(), &o.target, source);
            batch.insert(&i.backlinks, key, row.encode_to_vec());
        }
        let observed: HashSet<&str> = page.links.iter().map(|l| l.target_url.as_str()).collect();
        for gone in stray.iter().filter(|s| !observed.contains(s.as_str())) {
            batch.remove(&i.outlinks, key2(source, gone));
        }
        let blank = Attrs {
            anchor: "",
            rel: 0,
            placement: 0,
            kind: 0,
        };
        let mut events: Vec<(Vec<u8>, StoredEvent)> = change
            .events
            .iter()
            .map(|e| {
                let mut row = event(
                    e.target_domain,
                    t,
                    e.kind,
                    e.source,
                    e.target,
                    e.attrs,
                    e.lost_reason,
                );
                if let Some(b) = e.before {
                    row.1.old_anchor = Some(b.anchor.to_owned());
                    row.1.old_rel = u32::from(b.rel);
                    row.1.old_placement = u32::from(b.placement);
                }
                row
            })
            .collect();
        for r in &change.refdomains {
            let key = key2(&r.target_domain, source_domain);
            let mut row = match i.refdomains.get(&key)? {
                Some(v) => decode::<StoredRefdomain>("refdomains", &key, &v)?,
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
                    events.push(event(
                        &r.target_domain,
                        t,
                        kind,
                        source_domain,
                        "",
                        blank,
                        None,
                    ));
                }
                RefdomainChange::Retract { lost_at_ms } => {
                    row.lost_at_ms = 0;
                    let kind = EventKind::LostRefdomain;
                    let (gone, _) = event(
                        &r.target_domain,
                        lost_at_ms,
                        kind,
                        source_domain,
                        "",
                        blank,
                        None,
                    );
                    batch.remove(&i.events, gone);
                }
                RefdomainChange::None => {}
            }
            batch.insert(&i.refdomains, key, row.encode_to_vec());
        }
        for (k, v) in events {
            batch.insert(&i.events, k, v.encode_to_vec());
        }
        batch.commit()?;
        Ok(change.stats)
    }

    /// Rewrites the refdomain row of (`target`, `source`) when it exists
    /// and `update` changed it.
    fn update_refdomain(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        target: &str,
        source: &str,
        update: impl FnOnce(&mut StoredRefdomain) -> bool,
    ) -> Result<(), StoreError> {
        let key = key2(target, source);
        if let Some(v) = self.inner.refdomains.get(&key)? {
            let mut rd = decode::<StoredRefdomain>("refdomains", &key, &v)?;
            if update(&mut rd) {
                batch.insert(&self.inner.refdomains, key, rd.encode_to_vec());
            }
        }
        Ok(())
    }

    /// Registrable domains with a live link to `url` (other than its own),
    /// counted over at most 10,000 backlinks.
    fn page_refdomains(&self, url: &str) -> Result<u32, StoreError> {
        let own = registrable_domain(url_host(url));
        let prefix = key3(own, url, "");
        let mut domains: HashSet<String> = HashSet::new();
        for kv in self.inner.backlinks.prefix(&prefix).take(10_000) {
            let (k, v) = kv.into_inner()?;
            let row = decode::<StoredBacklink>("backlinks", &k, &v)?;
            let src = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let d = registrable_domain(url_host(&src));
            if row.lost_at_ms == 0 && d != own {
                domains.insert(d.to_owned());
            }
        }
        Ok(u32::try_from(domains.len()).unwrap_or(u32::MAX))
    }

    fn refdomains_sync(&self, domain: &str, status: Status) -> Result<Vec<RefDomain>, StoreError> {
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
        let prefix = key2(domain, "");
        let mut start = prefix.clone();
        start.extend_from_slice(&time_be(from_ms));
        let mut end = prefix.clone();
        end.extend_from_slice(&time_be(to_ms));
        let mut out = Vec::new();
        for kv in self.inner.events.range(start..end) {
            let (k, v) = kv.into_inner()?;
            out.push(event_of(prefix.len(), &k, &v)?);
        }
        Ok(out)
    }

    fn backlinks_sync(&self, q: &BacklinkQuery) -> Result<BacklinkPage, StoreError> {
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
            page.items.push(backlink_of(link, &row));
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
        let prefix = key2(&q.domain, "");
        let start = match &q.after {
            Some(c) => after_cursor(&q.domain, c)?,
            None => prefix.clone(),
        };
        let limit = q.limit.max(1);
        let mut page = BacklinkPage::default();
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
            page.items.push(backlink_of(link, &row));
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
                    Row::Backlink(backlink_of(link, &row))
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
                    Row::Event {
                        target_domain: String::from_utf8_lossy(&k[..at]).into_owned(),
                        event: event_of(at + 1, &k, &v)?,
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

fn backlink_of(link: Link, row: &StoredBacklink) -> Backlink {
    Backlink {
        link,
        first_seen_ms: row.first_seen_ms,
        last_seen_ms: row.last_seen_ms,
        lost_at_ms: (row.lost_at_ms != 0).then_some(row.lost_at_ms),
        lost_reason: LostReason::from_code(row.lost_reason).filter(|_| row.lost_at_ms != 0),
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
fn event_of(at: usize, k: &[u8], v: &[u8]) -> Result<LinkEvent, StoreError> {
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
    let (kind, rest) = rest.split_first().ok_or_else(|| corrupt("no kind"))?;
    let kind = EventKind::from_code(*kind).ok_or_else(|| corrupt("unknown kind"))?;
    let text = String::from_utf8_lossy(rest);
    let (src, dst) = text
        .split_once('\0')
        .ok_or_else(|| corrupt("no separator"))?;
    let row = decode::<StoredEvent>("link_events", k, v)?;
    Ok(LinkEvent {
        at_ms,
        kind,
        link: stored_link(src, dst, row.anchor, row.rel, row.placement, row.kind),
        lost_reason: LostReason::from_code(row.lost_reason),
        before: row.old_anchor.map(|a| {
            (
                a,
                Rel::from_bits(rel_bits(row.old_rel)),
                Placement::from_code(u8::try_from(row.old_placement).unwrap_or(0)),
            )
        }),
    })
}

/// A page's stored state before an observation.
struct Before {
    /// Its row.
    page: Option<StoredPage>,
    /// Its current outlinks, with the attributes of their live backlink rows.
    prior: Prior,
    /// Those live backlink rows, by target URL.
    rows: BTreeMap<String, StoredBacklink>,
    /// Outlinks without a live backlink row (none are written so): dropped
    /// unless seen again.
    stray: Vec<String>,
}

fn time_be(ms: i64) -> [u8; 8] {
    u64::try_from(ms.max(0)).unwrap_or(0).to_be_bytes()
}

/// An event row: target domain \0 time (8 bytes BE) kind (1 byte) source \0 target.
fn event(
    target_domain: &str,
    t: i64,
    kind: EventKind,
    source: &str,
    target: &str,
    attrs: Attrs<'_>,
    lost_reason: Option<LostReason>,
) -> (Vec<u8>, StoredEvent) {
    let mut k = Vec::with_capacity(target_domain.len() + source.len() + target.len() + 12);
    k.extend_from_slice(target_domain.as_bytes());
    k.push(SEP);
    k.extend_from_slice(&time_be(t));
    k.push(kind as u8);
    k.extend_from_slice(source.as_bytes());
    k.push(SEP);
    k.extend_from_slice(target.as_bytes());
    let v = StoredEvent {
        anchor: attrs.anchor.to_owned(),
        rel: u32::from(attrs.rel),
        placement: u32::from(attrs.placement),
        kind: u32::from(attrs.kind),
        lost_reason: lost_reason.map_or(0, |r| r as u32),
        ..StoredEvent::default()
    };
    (k, v)
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
        let this = self.clone();
        let started = Instant::now();
        let res = blocking(move || this.write_page_sync(&page)).await;
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
            Ok(this.inner.domains.contains_key(d.as_bytes())?
                || this.inner.backlinks.prefix(key2(&d, "")).next().is_some())
        })
        .await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let this = self.clone();
        blocking(move || Ok(this.inner.db.persist(PersistMode::SyncAll)?)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    fn store() -> (tempfile::TempDir, FjallStore) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = FjallStore::open(dir.path(), true).unwrap_or_else(|e| panic!("{e}"));
        (dir, s)
    }

    #[tokio::test]
    async fn conformance_suite() {
        let (_dir, s) = store();
        conformance::run_all(&s).await;
    }

    #[tokio::test]
    async fn writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let s = FjallStore::open(dir.path(), true).unwrap_or_else(|e| panic!("{e}"));
            s.write_page(conformance::page(
                "http://www.a.com/",
                1000,
                &["http://b.com/x"],
            ))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            s.flush().await.unwrap_or_else(|e| panic!("{e}"));
        }
        let s = FjallStore::open(dir.path(), false).unwrap_or_else(|e| panic!("{e}"));
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
        {
            let s = FjallStore::open(dir.path(), true).unwrap_or_else(|e| panic!("{e}"));
            let p = conformance::page("http://a.com/", 1000, &["http://b.com/x", "http://a.com/y"]);
            s.write_page(p).await.unwrap_or_else(|e| panic!("{e}"));
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
            s.flush().await.unwrap_or_else(|e| panic!("{e}"));
        }
        {
            let s = FjallStore::open(dir.path(), false).unwrap_or_else(|e| panic!("{e}"));
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
        match FjallStore::open(dir.path(), false) {
            Err(e @ StoreError::Format { found: 99, .. }) => {
                assert!(e.to_string().contains("use a newer linkgraph"), "{e}");
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a newer format opened"),
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
        let url = format!("fjall://{}", dir.path().display());
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
