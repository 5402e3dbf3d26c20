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
//!
//! A target domain's backlinks and referring domains are each one contiguous
//! key range, so both queries are prefix scans. Canonical URLs and domains
//! never contain NUL, which makes it a safe separator.
//!
//! Writes read the rows they update (refdomain counters depend on whether an
//! edge is new), so they are serialized by a mutex and applied as one atomic
//! batch per page.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use linkgraph_core::{Link, LinkKind, Placement, Rel, registrable_domain};
use linkgraph_proto::{StoredBacklink, StoredPage, StoredRefdomain};
use prost::Message;

use crate::{
    Backlink, BacklinkPage, BacklinkQuery, LinkStore, PageWrite, RefDomain, StoreError, Target,
    WriteStats,
};

const SEP: u8 = 0;
/// Memtable size per keyspace: bounds write-buffer RAM at 4 x 16 MiB
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
    write_lock: Mutex<()>,
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
    /// Opens (and with `create`, creates) the store in `path`.
    pub fn open(path: &Path, create: bool) -> Result<Self, StoreError> {
        if !create && !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
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
        let inner = Inner {
            backlinks: ks("backlinks")?,
            refdomains: ks("refdomains")?,
            pages: ks("pages")?,
            domains: ks("domains")?,
            db,
            write_lock: Mutex::new(()),
        };
        Ok(FjallStore {
            inner: Arc::new(inner),
        })
    }

    fn write_page_sync(&self, page: &PageWrite) -> Result<WriteStats, StoreError> {
        let i = &self.inner;
        let _guard = i
            .write_lock
            .lock()
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let t = page.fetched_at_ms;
        let mut batch = i.db.batch();
        let mut stats = WriteStats::default();

        let page_key = page.url.as_bytes();
        let stored_page = StoredPage {
            status: page.status,
            outcome: page.outcome,
            fetched_at_ms: t,
            links: u32::try_from(page.links.len()).unwrap_or(u32::MAX),
        };
        // Out-of-order delivery must not overwrite a newer page record.
        let newer_exists = match i.pages.get(page_key)? {
            Some(v) => decode::<StoredPage>("pages", page_key, &v)?.fetched_at_ms > t,
            None => false,
        };
        if !newer_exists {
            batch.insert(&i.pages, page_key, stored_page.encode_to_vec());
        }
        if let Some(host) = page
            .url
            .split("://")
            .nth(1)
            .and_then(|r| r.split(['/', ':']).next())
        {
            batch.insert(
                &i.domains,
                registrable_domain(host).as_bytes(),
                b"".as_slice(),
            );
        }

        // Refdomain deltas of this page, applied after the edge loop.
        let mut deltas: Vec<(Vec<u8>, i64, i64)> = Vec::new();
        for link in &page.links {
            let target_domain = link.target_domain();
            let key = key3(target_domain, &link.target_url, &link.source_url);
            let existing = match i.backlinks.get(&key)? {
                Some(v) => Some(decode::<StoredBacklink>("backlinks", &key, &v)?),
                None => None,
            };
            let row = match &existing {
                None => stored_from(link, t, t),
                Some(old) => {
                    let mut row = if t >= old.last_seen_ms {
                        stored_from(link, old.first_seen_ms.min(t), t)
                    } else {
                        // An older observation: keep the newer attributes.
                        StoredBacklink {
                            first_seen_ms: old.first_seen_ms.min(t),
                            ..old.clone()
                        }
                    };
                    row.last_seen_ms = row.last_seen_ms.max(old.last_seen_ms);
                    row
                }
            };
            let was_follow = existing
                .as_ref()
                .map(|o| Rel::from_bits(rel_bits(o.rel)).is_follow());
            let follow_after = Rel::from_bits(rel_bits(row.rel)).is_follow();
            batch.insert(&i.backlinks, key, row.encode_to_vec());
            stats.edges += 1;
            if existing.is_none() {
                stats.new_edges += 1;
            }
            if !link.is_internal() {
                let rd_key = key2(target_domain, link.source_domain());
                let added = existing.is_none();
                // follow delta: +1 new follow edge; ±1 when an edge changed kind.
                let follow_delta = match (was_follow, follow_after) {
                    (None, true) => 1,
                    (Some(false), true) => 1,
                    (Some(true), false) => -1,
                    _ => 0,
                };
                deltas.push((rd_key, i64::from(added), follow_delta));
            }
        }
        // Merge deltas per referring domain (a page has many links to one).
        deltas.sort_by(|a, b| a.0.cmp(&b.0));
        let mut idx = 0;
        while idx < deltas.len() {
            let key = deltas[idx].0.clone();
            let (mut add, mut fdelta) = (0i64, 0i64);
            while idx < deltas.len() && deltas[idx].0 == key {
                add += deltas[idx].1;
                fdelta += deltas[idx].2;
                idx += 1;
            }
            let mut rd = match i.refdomains.get(&key)? {
                Some(v) => decode::<StoredRefdomain>("refdomains", &key, &v)?,
                None => StoredRefdomain {
                    first_seen_ms: t,
                    last_seen_ms: t,
                    ..Default::default()
                },
            };
            rd.links = rd.links.saturating_add_signed(add);
            rd.follow_links = rd.follow_links.saturating_add_signed(fdelta);
            rd.first_seen_ms = rd.first_seen_ms.min(t);
            rd.last_seen_ms = rd.last_seen_ms.max(t);
            batch.insert(&i.refdomains, key, rd.encode_to_vec());
        }
        batch.commit()?;
        Ok(stats)
    }

    fn refdomains_sync(&self, domain: &str) -> Result<Vec<RefDomain>, StoreError> {
        let prefix = key2(domain, "");
        let mut out = Vec::new();
        for kv in self.inner.refdomains.prefix(&prefix) {
            let (k, v) = kv.into_inner()?;
            let parts = split_key("refdomains", &k)?;
            let rd = decode::<StoredRefdomain>("refdomains", &k, &v)?;
            if rd.links == 0 {
                continue;
            }
            out.push(RefDomain {
                domain: parts.get(1).cloned().unwrap_or_default(),
                links: rd.links,
                follow_links: rd.follow_links,
                first_seen_ms: rd.first_seen_ms,
                last_seen_ms: rd.last_seen_ms,
            });
        }
        out.sort_by(|a, b| b.links.cmp(&a.links).then_with(|| a.domain.cmp(&b.domain)));
        Ok(out)
    }

    fn backlinks_sync(&self, q: &BacklinkQuery) -> Result<BacklinkPage, StoreError> {
        let (domain, prefix) = match &q.target {
            Target::Domain(d) => (d.as_str(), key2(d, "")),
            Target::Url(u) => {
                let host = u
                    .split("://")
                    .nth(1)
                    .and_then(|r| r.split(['/', ':', '?']).next());
                let d = registrable_domain(host.unwrap_or(""));
                (d, key3(d, u, ""))
            }
        };
        let start = match &q.after {
            Some(c) => {
                let mut k = c.as_bytes().to_vec();
                k.push(SEP); // strictly after the cursor row
                k
            }
            None => prefix.clone(),
        };
        let limit = q.limit.max(1);
        let mut page = BacklinkPage::default();
        for kv in self.inner.backlinks.range(start..) {
            let (k, v) = kv.into_inner()?;
            if !k.starts_with(&prefix) {
                break;
            }
            let parts = split_key("backlinks", &k)?;
            let [_, target, source] = parts.as_slice() else {
                return Err(StoreError::Corrupt {
                    table: "backlinks",
                    key: String::from_utf8_lossy(&k).into_owned(),
                    reason: "expected three key parts".into(),
                });
            };
            let row = decode::<StoredBacklink>("backlinks", &k, &v)?;
            let link = Link {
                source_url: source.clone(),
                target_url: target.clone(),
                anchor: row.anchor,
                rel: Rel::from_bits(rel_bits(row.rel)),
                placement: Placement::from_code(u8::try_from(row.placement).unwrap_or(0)),
                kind: if row.kind == 1 {
                    LinkKind::Redirect
                } else {
                    LinkKind::Link
                },
            };
            if !q.include_internal && link.source_domain() == domain {
                continue;
            }
            if page.items.len() == limit {
                page.next = page.items.last().map(|b| {
                    String::from_utf8_lossy(&key3(domain, &b.link.target_url, &b.link.source_url))
                        .into_owned()
                });
                break;
            }
            page.items.push(Backlink {
                link,
                first_seen_ms: row.first_seen_ms,
                last_seen_ms: row.last_seen_ms,
            });
        }
        Ok(page)
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
        metrics::histogram!("linkgraph_store_write_duration_seconds", "backend" => "fjall")
            .record(started.elapsed().as_secs_f64());
        match &res {
            Ok(s) => {
                metrics::counter!("linkgraph_store_edges_written_total", "backend" => "fjall")
                    .increment(s.edges);
            }
            Err(_) => {
                metrics::counter!("linkgraph_store_errors_total", "backend" => "fjall", "op" => "write")
                    .increment(1);
            }
        }
        res
    }

    async fn refdomains(&self, domain: &str) -> Result<Vec<RefDomain>, StoreError> {
        let (this, d) = (self.clone(), domain.to_owned());
        blocking(move || this.refdomains_sync(&d)).await
    }

    async fn backlinks(&self, query: BacklinkQuery) -> Result<BacklinkPage, StoreError> {
        let this = self.clone();
        blocking(move || this.backlinks_sync(&query)).await
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
            .refdomains("b.com")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rd.len(), 1);
        assert_eq!(rd[0].domain, "a.com");
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

    #[test]
    fn store_urls_pick_the_backend() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("fjall://{}", dir.path().display());
        assert!(crate::open(&url, true).is_ok());
        assert!(matches!(
            crate::open("mongo://x", true),
            Err(StoreError::BadUrl { .. })
        ));
    }
}
