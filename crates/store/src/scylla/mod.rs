//! The ScyllaDB backend: the web-scale link store, through the `scylla`
//! driver. The schema and its reasoning live in `deploy/scylla/schema.cql`;
//! the write path is planned by pure functions in [`plan`] and executed
//! here.
//!
//! * Every statement is prepared (token-aware routing follows from the bound
//!   partition key) and marked idempotent, so the driver retries it safely:
//!   its timestamps and values come from the observation, not the writer.
//! * Unlogged batches only ever group statements of one partition.
//! * In-flight statements are bounded by a semaphore per store.
//! * Reads and writes use the driver's default consistency, LOCAL_QUORUM.

pub mod plan;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt, stream};
use linkgraph_core::{registrable_domain, url_host};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlValue;
use tokio::sync::Semaphore;

use crate::fjall_store::stored_link;
use crate::{
    Backlink, BacklinkPage, BacklinkQuery, DomainRank, EventKind, HostAddr, LinkEvent, LinkStore,
    LostReason, OutlinkQuery, PageState, PageWrite, RankRun, RefDomain, ScanPage, Status,
    StoreError, Table, Target, WriteStats,
};
use plan::{Outlink, Prior, Stmt, Write};

/// The schema, applied by [`ScyllaStore::init`].
pub const SCHEMA: &str = include_str!("../../../../deploy/scylla/schema.cql");
/// Columns added to tables after their first release, as (table, column,
/// type): `store init` adds each one an existing keyspace lacks.
pub const ADDED_COLUMNS: [(&str, &str, &str); 5] = [
    ("backlinks", "lost_reason", "int"),
    ("link_events", "lost_reason", "int"),
    ("link_events", "old_anchor", "text"),
    ("link_events", "old_rel", "int"),
    ("link_events", "old_placement", "int"),
];
/// Statements in flight per store, across all pages.
const MAX_IN_FLIGHT: usize = 256;
/// Batches of one page write in flight at once.
const PAGE_PARALLELISM: usize = 32;
/// Statements per unlogged batch.
const MAX_BATCH: usize = 64;
pub use crate::DEFAULT_BUCKETS;

/// Where a Scylla store lives: `scylla://HOST:PORT[,HOST:PORT...]/KEYSPACE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScyllaUri {
    /// Contact points.
    pub nodes: Vec<String>,
    /// The keyspace.
    pub keyspace: String,
}

impl ScyllaUri {
    /// Parses a `scylla://` URL.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: url.into(),
            reason: reason.into(),
        };
        let rest = url
            .strip_prefix("scylla://")
            .ok_or_else(|| bad("expected scylla://HOST:PORT/KEYSPACE"))?;
        let (hosts, keyspace) = rest
            .split_once('/')
            .ok_or_else(|| bad("no keyspace (scylla://HOST:PORT/KEYSPACE)"))?;
        let nodes: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| {
                if h.rsplit_once(':')
                    .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                {
                    h.to_owned()
                } else {
                    format!("{h}:9042")
                }
            })
            .collect();
        if nodes.is_empty() {
            return Err(bad("no host"));
        }
        let valid = !keyspace.is_empty()
            && keyspace.len() <= 48
            && keyspace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !keyspace.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(bad(
                "keyspace must be 1-48 letters, digits or underscores, not starting with a digit",
            ));
        }
        Ok(ScyllaUri {
            nodes,
            keyspace: keyspace.to_owned(),
        })
    }
}

fn cql_err<E: std::error::Error + Send + Sync + 'static>(
    op: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Scylla {
        op,
        source: Box::new(e),
    }
}

async fn session(uri: &ScyllaUri) -> Result<Session, StoreError> {
    SessionBuilder::new()
        .known_nodes(&uri.nodes)
        .connection_timeout(Duration::from_secs(5))
        .build()
        .await
        .map_err(cql_err("connect"))
}

/// A row as read: one optional value per selected column.
pub type CqlRow = Vec<Option<CqlValue>>;

/// Executes planned statements: the seam between the store's logic and the
/// driver. [`SessionExecutor`] is the real one.
#[async_trait]
pub trait CqlExecutor: Send + Sync {
    /// Executes one group of writes to a single partition (one statement,
    /// or an unlogged batch).
    async fn write(&self, group: Vec<Write>) -> Result<(), StoreError>;
    /// Runs a SELECT to completion (paged underneath).
    async fn read(&self, stmt: Stmt, values: Vec<CqlValue>) -> Result<Vec<CqlRow>, StoreError>;
}

/// Executes statements on a ScyllaDB session, every statement prepared.
pub struct SessionExecutor {
    session: Session,
    stmts: HashMap<Stmt, PreparedStatement>,
}

impl SessionExecutor {
    fn prepared(&self, stmt: Stmt) -> Result<&PreparedStatement, StoreError> {
        self.stmts
            .get(&stmt)
            .ok_or_else(|| StoreError::Task(format!("statement {stmt:?} not prepared")))
    }
}

#[async_trait]
impl CqlExecutor for SessionExecutor {
    async fn write(&self, group: Vec<Write>) -> Result<(), StoreError> {
        if let [one] = group.as_slice() {
            self.session
                .execute_unpaged(self.prepared(one.stmt)?, &one.values)
                .await
                .map_err(cql_err("write"))?;
            return Ok(());
        }
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        let mut values: Vec<Vec<CqlValue>> = Vec::with_capacity(group.len());
        for w in group {
            batch.append_statement(self.prepared(w.stmt)?.clone());
            values.push(w.values);
        }
        self.session
            .batch(&batch, values)
            .await
            .map_err(cql_err("batch"))?;
        Ok(())
    }

    async fn read(&self, stmt: Stmt, values: Vec<CqlValue>) -> Result<Vec<CqlRow>, StoreError> {
        let pager = self
            .session
            .execute_iter(self.prepared(stmt)?.clone(), values)
            .await
            .map_err(cql_err("read"))?;
        let rows: Vec<scylla::value::Row> = pager
            .rows_stream::<scylla::value::Row>()
            .map_err(cql_err("read"))?
            .try_collect()
            .await
            .map_err(cql_err("read"))?;
        Ok(rows.into_iter().map(|r| r.columns).collect())
    }
}

/// A column value converted from CQL.
pub trait FromCql: Sized {
    /// Converts one column (`None` = null).
    fn from_cql(v: Option<CqlValue>) -> Result<Self, String>;
}

impl FromCql for String {
    fn from_cql(v: Option<CqlValue>) -> Result<Self, String> {
        match v {
            Some(CqlValue::Text(s) | CqlValue::Ascii(s)) => Ok(s),
            other => Err(format!("expected text, got {other:?}")),
        }
    }
}

impl FromCql for i32 {
    fn from_cql(v: Option<CqlValue>) -> Result<Self, String> {
        match v {
            Some(CqlValue::Int(i)) => Ok(i),
            other => Err(format!("expected int, got {other:?}")),
        }
    }
}

impl FromCql for Vec<u8> {
    fn from_cql(v: Option<CqlValue>) -> Result<Self, String> {
        match v {
            Some(CqlValue::Blob(b)) => Ok(b),
            None => Ok(Vec::new()),
            other => Err(format!("expected blob, got {other:?}")),
        }
    }
}

impl FromCql for i64 {
    fn from_cql(v: Option<CqlValue>) -> Result<Self, String> {
        match v {
            Some(CqlValue::BigInt(i)) => Ok(i),
            other => Err(format!("expected bigint, got {other:?}")),
        }
    }
}

impl FromCql for f64 {
    fn from_cql(v: Option<CqlValue>) -> Result<Self, String> {
        match v {
            Some(CqlValue::Double(f)) => Ok(f),
            other => Err(format!("expected double, got {other:?}")),
        }
    }
}

impl<T: FromCql> FromCql for Option<T> {
    fn from_cql(v: Option<CqlValue>) -> Result<Self, String> {
        v.map(|x| T::from_cql(Some(x))).transpose()
    }
}

/// A typed row converted from CQL.
pub trait FromCqlRow: Sized {
    /// Converts one row.
    fn from_row(r: CqlRow) -> Result<Self, String>;
}

macro_rules! tuple_row {
    ($($t:ident),+) => {
        impl<$($t: FromCql),+> FromCqlRow for ($($t,)+) {
            fn from_row(r: CqlRow) -> Result<Self, String> {
                let mut it = r.into_iter();
                Ok(($($t::from_cql(it.next().flatten())?,)+))
            }
        }
    };
}
tuple_row!(A);
tuple_row!(A, B);
tuple_row!(A, B, C);
tuple_row!(A, B, C, D);
tuple_row!(A, B, C, D, E);
tuple_row!(A, B, C, D, E, F);
tuple_row!(A, B, C, D, E, F, G);
tuple_row!(A, B, C, D, E, F, G, H);
tuple_row!(A, B, C, D, E, F, G, H, I);
tuple_row!(A, B, C, D, E, F, G, H, I, J);
tuple_row!(A, B, C, D, E, F, G, H, I, J, K, L);

/// The ScyllaDB link store.
#[derive(Clone)]
pub struct ScyllaStore {
    cql: Arc<dyn CqlExecutor>,
    buckets: u32,
    in_flight: Arc<Semaphore>,
}

/// A domain_ranks row as read.
type RankRow = (
    String,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<i64>,
    Option<i64>,
);

/// A backlinks row as read.
type BacklinkRow = (
    String,
    String,
    Option<String>,
    Option<i32>,
    Option<i32>,
    Option<i32>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i32>,
);

impl ScyllaStore {
    /// Creates the keyspace and tables (idempotent) and fixes the bucket
    /// count on first init. Returns the bucket count in effect, which is the
    /// first init's if the store existed.
    pub async fn init(
        uri: &ScyllaUri,
        replication_factor: u32,
        buckets: u32,
    ) -> Result<u32, StoreError> {
        let s = session(uri).await?;
        // A keyspace made before `source_links` needs its edges indexed.
        let has_table = |table: &'static str| {
            let s = &s;
            async move {
                let res = s
                    .query_unpaged(
                        "SELECT table_name FROM system_schema.tables \
                         WHERE keyspace_name = ? AND table_name = ?",
                        (uri.keyspace.as_str(), table),
                    )
                    .await
                    .map_err(cql_err("read the schema"))?;
                let rows = res.into_rows_result().map_err(cql_err("read the schema"))?;
                Ok::<bool, StoreError>(
                    rows.maybe_first_row::<(String,)>()
                        .map_err(cql_err("read the schema"))?
                        .is_some(),
                )
            }
        };
        let backfill = has_table("backlinks").await? && !has_table("source_links").await?;
        let statements = plan::schema_statements(SCHEMA, &uri.keyspace, replication_factor);
        let (keyspace, tables) = statements
            .split_first()
            .ok_or_else(|| StoreError::Task("schema.cql holds no statements".into()))?;
        s.query_unpaged(keyspace.as_str(), &[])
            .await
            .map_err(cql_err("create keyspace"))?;
        s.use_keyspace(&uri.keyspace, false)
            .await
            .map_err(cql_err("use keyspace"))?;
        for stmt in tables {
            s.query_unpaged(stmt.as_str(), &[])
                .await
                .map_err(cql_err("create table"))?;
        }
        // A keyspace made by an older release lacks the columns added since.
        for (table, column, ty) in ADDED_COLUMNS {
            let res = s
                .query_unpaged(
                    "SELECT column_name FROM system_schema.columns \
                     WHERE keyspace_name = ? AND table_name = ? AND column_name = ?",
                    (uri.keyspace.as_str(), table, column),
                )
                .await
                .map_err(cql_err("read the schema"))?;
            let rows = res.into_rows_result().map_err(cql_err("read the schema"))?;
            let present = rows
                .maybe_first_row::<(String,)>()
                .map_err(cql_err("read the schema"))?
                .is_some();
            if !present {
                s.query_unpaged(format!("ALTER TABLE {table} ADD {column} {ty}"), &[])
                    .await
                    .map_err(cql_err("add a column"))?;
            }
        }
        s.await_schema_agreement()
            .await
            .map_err(cql_err("schema agreement"))?;
        s.query_unpaged(
            "INSERT INTO store_meta (name, value) VALUES ('buckets', ?) IF NOT EXISTS",
            (i64::from(buckets.max(1)),),
        )
        .await
        .map_err(cql_err("write store_meta"))?;
        let buckets = read_buckets(&s, &uri.keyspace).await?;
        if backfill {
            let n = ScyllaStore::connect(uri)
                .await?
                .backfill_source_links()
                .await?;
            tracing::info!(
                edges = n,
                "indexed the stored external edges in source_links"
            );
        }
        Ok(buckets)
    }

    /// Connects to an initialized keyspace and prepares every statement.
    pub async fn connect(uri: &ScyllaUri) -> Result<Self, StoreError> {
        let s = session(uri).await?;
        s.use_keyspace(&uri.keyspace, false)
            .await
            .map_err(|_| StoreError::NotInitialized(uri.keyspace.clone()))?;
        let buckets = read_buckets(&s, &uri.keyspace).await?;
        let mut stmts = HashMap::new();
        for stmt in Stmt::ALL {
            let mut p = s.prepare(stmt.cql()).await.map_err(cql_err("prepare"))?;
            p.set_is_idempotent(true);
            stmts.insert(stmt, p);
        }
        Ok(Self::with_executor(
            Arc::new(SessionExecutor { session: s, stmts }),
            buckets,
        ))
    }

    /// A store over any executor (tests run the store's logic on a model of
    /// CQL's semantics with this).
    pub fn with_executor(cql: Arc<dyn CqlExecutor>, buckets: u32) -> Self {
        ScyllaStore {
            cql,
            buckets: buckets.max(1),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Drops the keyspace (tests use a fresh one each run).
    pub async fn drop_keyspace(uri: &ScyllaUri) -> Result<(), StoreError> {
        let s = session(uri).await?;
        s.query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", uri.keyspace), &[])
            .await
            .map_err(cql_err("drop keyspace"))?;
        Ok(())
    }

    /// Executes one single-partition group of writes.
    async fn run(&self, group: Vec<Write>) -> Result<(), StoreError> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        self.cql.write(group).await
    }

    async fn run_all(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        stream::iter(plan::batches(writes, MAX_BATCH))
            .map(|g| self.run(g))
            .buffer_unordered(PAGE_PARALLELISM)
            .try_collect::<()>()
            .await
    }

    async fn rows<R: FromCqlRow>(
        &self,
        stmt: Stmt,
        values: Vec<CqlValue>,
    ) -> Result<Vec<R>, StoreError> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        self.cql
            .read(stmt, values)
            .await?
            .into_iter()
            .map(|r| {
                R::from_row(r).map_err(|reason| StoreError::Corrupt {
                    table: "scylla",
                    key: format!("{stmt:?}"),
                    reason,
                })
            })
            .collect()
    }

    /// Runs `stmt` once per bucket, concurrently (bounded), with the values
    /// `values(bucket)`; results in no particular order.
    async fn every_bucket<R: FromCqlRow>(
        &self,
        stmt: Stmt,
        values: impl Fn(i32) -> Vec<CqlValue>,
    ) -> Result<Vec<Vec<R>>, StoreError> {
        stream::iter(0..self.buckets)
            .map(|b| self.rows(stmt, values(i32::try_from(b).unwrap_or(0))))
            .buffer_unordered(PAGE_PARALLELISM)
            .try_collect()
            .await
    }

    async fn read_prior(&self, url: &str) -> Result<Prior, StoreError> {
        type Row = (
            Option<i64>,
            Option<i64>,
            Option<i32>,
            Option<i32>,
            Option<String>,
            Option<i32>,
            Option<String>,
            Option<i32>,
            Option<i32>,
        );
        let rows: Vec<Row> = self
            .rows(Stmt::ReadPage, vec![CqlValue::Text(url.to_owned())])
            .await?;
        let mut prior = Prior::default();
        for (fetched_at, hash, status, outcome, target, rel, anchor, placement, kind) in rows {
            prior.fetched_at_ms = prior.fetched_at_ms.or(fetched_at);
            if let (Some(status), Some(outcome)) = (status, outcome) {
                let status = u32::try_from(status).unwrap_or(0);
                prior.known |= crate::diff::is_definite(outcome, status);
            }
            if let Some(h) = hash {
                prior.content_hash = u64::from_ne_bytes(h.to_ne_bytes());
            }
            if let Some(target) = target {
                prior.outlinks.push(Outlink {
                    target,
                    rel: small(rel),
                    anchor: anchor.unwrap_or_default(),
                    placement: small(placement),
                    kind: small(kind),
                });
            }
        }
        Ok(prior)
    }

    /// What a transition needs to know: whether a page of the source domain
    /// other than `page` links the target now (one bounded read), and, for
    /// a domain that comes back with none, when it was lost (the latest loss
    /// of its pages' rows).
    async fn decide(
        &self,
        tr: &plan::Transition,
        page: &str,
    ) -> Result<(bool, Option<i64>), StoreError> {
        let live: Vec<(String,)> = self
            .rows(Stmt::ReadRefLive, tr.source_key(self.buckets))
            .await?;
        let others = live.iter().any(|(u,)| u != page);
        if others || !tr.appeared {
            return Ok((others, None));
        }
        let rows: Vec<(Option<i32>, Option<i64>)> = self
            .rows(Stmt::ReadRefPagesLost, tr.source_key(self.buckets))
            .await?;
        let lost_at = rows
            .iter()
            .filter_map(|(_, lost)| *lost)
            .filter(|l| *l > 0)
            .max();
        Ok((false, lost_at))
    }

    async fn write_inner(&self, page: &PageWrite) -> Result<WriteStats, StoreError> {
        let prior = self.read_prior(&page.url).await?;
        let mut p = plan::plan(page, &prior, self.buckets);
        // Few per page (one per target domain gained or lost); the
        // store-wide semaphore bounds them with everything else.
        let decided = futures_util::future::try_join_all(
            p.transitions.iter().map(|tr| self.decide(tr, &page.url)),
        )
        .await?;
        for (tr, (others, lost_at)) in p.transitions.iter().zip(decided) {
            p.graph.extend(plan::transition_events(
                tr,
                others,
                lost_at,
                page.fetched_at_ms,
                self.buckets,
            ));
        }
        // The page's partition goes last: see `plan::Plan`.
        self.run_all(p.graph).await?;
        self.run_all(p.page).await?;
        Ok(p.stats)
    }

    async fn refdomains_inner(
        &self,
        domain: &str,
        status: Status,
    ) -> Result<Vec<RefDomain>, StoreError> {
        type Row = (
            String,
            Option<i32>,
            Option<i32>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let per_bucket: Vec<Vec<Row>> = self
            .every_bucket(Stmt::ReadRefdomains, |b| {
                vec![CqlValue::Text(domain.to_owned()), CqlValue::Int(b)]
            })
            .await?;
        Ok(aggregate_refdomains(
            per_bucket.into_iter().flatten().map(|r| RefPageRow {
                source_domain: r.0,
                links: u64::try_from(r.1.unwrap_or(0)).unwrap_or(0),
                follow_links: u64::try_from(r.2.unwrap_or(0)).unwrap_or(0),
                first_seen_ms: r.3,
                last_seen_ms: r.4,
                lost_at_ms: r.5.unwrap_or(0),
            }),
            status,
        ))
    }

    async fn events_inner(
        &self,
        domain: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<LinkEvent>, StoreError> {
        if to_ms <= from_ms {
            return Ok(Vec::new());
        }
        let days: Vec<(i32,)> = self
            .rows(
                Stmt::ReadEventDays,
                vec![
                    CqlValue::Text(domain.to_owned()),
                    CqlValue::Int(plan::day(from_ms)),
                    CqlValue::Int(plan::day(to_ms - 1)),
                ],
            )
            .await?;
        type Row = (
            i64,
            i32,
            String,
            String,
            Option<String>,
            Option<i32>,
            Option<i32>,
            Option<i32>,
            Option<i32>,
            Option<String>,
            Option<i32>,
            Option<i32>,
        );
        let parts = days
            .into_iter()
            .flat_map(|(d,)| (0..self.buckets).map(move |b| (d, i32::try_from(b).unwrap_or(0))));
        let per_part: Vec<Vec<Row>> = stream::iter(parts)
            .map(|(d, b)| {
                self.rows(
                    Stmt::ReadEvents,
                    vec![
                        CqlValue::Text(domain.to_owned()),
                        CqlValue::Int(d),
                        CqlValue::Int(b),
                        CqlValue::BigInt(from_ms),
                        CqlValue::BigInt(to_ms),
                    ],
                )
            })
            .buffer_unordered(PAGE_PARALLELISM)
            .try_collect()
            .await?;
        let mut out = Vec::new();
        for (at, kind, src, dst, anchor, rel, placement, kind_code, reason, old_a, old_r, old_p) in
            per_part.into_iter().flatten()
        {
            let kind = u8::try_from(kind)
                .ok()
                .and_then(EventKind::from_code)
                .ok_or_else(|| StoreError::Corrupt {
                    table: "link_events",
                    key: format!("{domain} {at} {src}"),
                    reason: format!("unknown event kind {kind}"),
                })?;
            out.push(LinkEvent {
                at_ms: at,
                kind,
                link: stored_link(
                    &src,
                    &dst,
                    anchor.unwrap_or_default(),
                    u32::from(small(rel)),
                    u32::from(small(placement)),
                    u32::from(small(kind_code)),
                ),
                lost_reason: reason_of(reason),
                before: old_r.filter(|r| *r > 0).map(|r| {
                    (
                        old_a.unwrap_or_default(),
                        linkgraph_core::Rel::from_bits(u8::try_from(r - 1).unwrap_or(0)),
                        linkgraph_core::Placement::from_code(small(old_p)),
                    )
                }),
            });
        }
        out.sort_by(|a, b| {
            (a.at_ms, a.kind, &a.link.source_url, &a.link.target_url).cmp(&(
                b.at_ms,
                b.kind,
                &b.link.source_url,
                &b.link.target_url,
            ))
        });
        Ok(out)
    }

    async fn fetch_chunk(
        &self,
        scan: &Scan<'_>,
        c: &mut BucketCursor,
        chunk: i32,
    ) -> Result<(), StoreError> {
        let text = |s: &str| CqlValue::Text(s.to_owned());
        let (stmt, mut values) = match scan {
            Scan::Domain(d) => (
                Stmt::ReadBacklinksDomain,
                vec![
                    text(d),
                    CqlValue::Int(c.bucket),
                    text(&c.after.0),
                    text(&c.after.1),
                ],
            ),
            Scan::Url(d, u) => (
                Stmt::ReadBacklinksUrl,
                vec![text(d), CqlValue::Int(c.bucket), text(u), text(&c.after.1)],
            ),
            Scan::Source(d) => (
                Stmt::ReadSourceLinks,
                vec![
                    text(d),
                    CqlValue::Int(c.bucket),
                    text(&c.after.0),
                    text(&c.after.1),
                ],
            ),
        };
        values.push(CqlValue::Int(chunk));
        let rows: Vec<BacklinkRow> = self.rows(stmt, values).await?;
        c.done = rows.len() < usize::try_from(chunk).unwrap_or(0);
        c.buf.extend(rows.into_iter().map(backlink_of));
        if let Some(last) = c.buf.back() {
            let (a, b) = scan.key(last);
            c.after = (a.to_owned(), b.to_owned());
        }
        Ok(())
    }

    /// One page of `scan`, merged over every bucket in the scan's key order,
    /// from the cursor `after` ("first key part \0 second key part").
    async fn merged(
        &self,
        scan: Scan<'_>,
        keep: impl Fn(&Backlink) -> bool,
        limit: usize,
        after: Option<&str>,
    ) -> Result<BacklinkPage, StoreError> {
        let after = match after {
            None => Default::default(),
            Some(c) => c
                .split_once('\0')
                .map(|(t, s)| (t.to_owned(), s.to_owned()))
                .ok_or_else(|| StoreError::BadCursor(c.chars().take(64).collect()))?,
        };
        let limit = limit.max(1);
        let chunk = i32::try_from((limit + 1).clamp(16, 1000)).unwrap_or(1000);
        let mut cursors: Vec<BucketCursor> = (0..self.buckets)
            .map(|b| BucketCursor {
                bucket: i32::try_from(b).unwrap_or(0),
                buf: VecDeque::new(),
                after: after.clone(),
                done: false,
            })
            .collect();
        let mut page = BacklinkPage::default();
        loop {
            for c in cursors.iter_mut().filter(|c| c.buf.is_empty() && !c.done) {
                self.fetch_chunk(&scan, c, chunk).await?;
            }
            // The smallest head across buckets, in the scan's key order.
            let Some(next) = cursors
                .iter_mut()
                .filter(|c| !c.buf.is_empty())
                .min_by(|a, b| head(&scan, a).cmp(&head(&scan, b)))
            else {
                return Ok(page);
            };
            let Some(row) = next.buf.pop_front() else {
                return Ok(page);
            };
            if !keep(&row) {
                continue;
            }
            if page.items.len() == limit {
                page.next = page.items.last().map(|b| match scan {
                    Scan::Source(_) => crate::outlink_cursor(b),
                    _ => crate::backlink_cursor(b),
                });
                return Ok(page);
            }
            page.items.push(row);
        }
    }

    async fn backlinks_inner(&self, q: &BacklinkQuery) -> Result<BacklinkPage, StoreError> {
        let (scan, domain) = match &q.target {
            Target::Domain(d) => (Scan::Domain(d), d.as_str()),
            Target::Url(u) => {
                let d = registrable_domain(url_host(u));
                (Scan::Url(d, u), d)
            }
        };
        let keep = |row: &Backlink| {
            (q.include_internal || row.link.source_domain() != domain)
                && q.status.admits(row.lost_at_ms.unwrap_or(0))
        };
        self.merged(scan, keep, q.limit, q.after.as_deref()).await
    }

    async fn outlinks_inner(&self, q: &OutlinkQuery) -> Result<BacklinkPage, StoreError> {
        let keep = |row: &Backlink| q.status.admits(row.lost_at_ms.unwrap_or(0));
        self.merged(Scan::Source(&q.domain), keep, q.limit, q.after.as_deref())
            .await
    }

    async fn page_states_inner(
        &self,
        urls: &[String],
    ) -> Result<Vec<Option<PageState>>, StoreError> {
        type StateRow = (Option<i32>, Option<i32>, Option<i64>);
        stream::iter(urls.iter().cloned())
            .map(|u| async move {
                let rows: Vec<StateRow> = self
                    .rows(Stmt::ReadPageState, vec![CqlValue::Text(u)])
                    .await?;
                Ok(rows.into_iter().next().and_then(|(status, outcome, at)| {
                    Some(PageState {
                        status: u32::try_from(status?).unwrap_or(0),
                        outcome: outcome.unwrap_or(0),
                        fetched_at_ms: at?,
                    })
                }))
            })
            .buffered(PAGE_PARALLELISM)
            .try_collect()
            .await
    }
}

impl ScyllaStore {
    /// Keeps `body` (`None`: a 4xx, allow all) as the last good robots.txt
    /// at `robots_url`, fetched at `fetched_at_ms`; a later fetch wins.
    pub async fn robots_save(
        &self,
        robots_url: &str,
        fetched_at_ms: i64,
        body: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let w = Write {
            stmt: Stmt::RobotsPut,
            values: vec![
                CqlValue::Text(robots_url.to_owned()),
                CqlValue::BigInt(fetched_at_ms),
                CqlValue::Int(i32::from(body.is_some())),
                CqlValue::Blob(body.unwrap_or_default().to_vec()),
                CqlValue::BigInt(plan::ts(fetched_at_ms)),
            ],
            partition: format!("robots\0{robots_url}"),
        };
        self.run(vec![w]).await
    }

    /// The last good robots.txt kept at `robots_url`: when it was fetched,
    /// and its body (`None`: allow all).
    pub async fn robots_load(
        &self,
        robots_url: &str,
    ) -> Result<Option<(i64, Option<Vec<u8>>)>, StoreError> {
        let rows: Vec<(Option<i64>, Option<i32>, Vec<u8>)> = self
            .rows(
                Stmt::ReadRobots,
                vec![CqlValue::Text(robots_url.to_owned())],
            )
            .await?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|(at, has, body)| Some((at?, (has.unwrap_or(0) != 0).then_some(body)))))
    }

    /// Indexes every stored external edge in `source_links` (for a keyspace
    /// made before that table: `store init` runs it once); idempotent.
    /// Returns the edges indexed.
    pub async fn backfill_source_links(&self) -> Result<u64, StoreError> {
        let (mut after, mut n) = (None, 0u64);
        loop {
            let page = self.scan_inner(Table::Backlinks, after, 1000).await?;
            let mut writes = Vec::new();
            for row in &page.rows {
                if let crate::Row::Backlink(b) = row {
                    let w = plan::source_link_backfill(b, self.buckets);
                    n += u64::from(!w.is_empty());
                    writes.extend(w);
                }
            }
            self.run_all(writes).await?;
            match page.next {
                Some(c) => after = Some(c),
                None => return Ok(n),
            }
        }
    }

    /// Converts a rank row as read.
    fn rank_of(r: RankRow) -> DomainRank {
        let (domain, authority, pagerank, harmonic, trust, refdomains, at) = r;
        DomainRank {
            domain,
            authority: authority.unwrap_or(0.0),
            pagerank: pagerank.unwrap_or(0.0),
            harmonic: harmonic.unwrap_or(0.0),
            trust: trust.filter(|t: &f64| !t.is_nan()),
            referring_domains: u64::try_from(refdomains.unwrap_or(0)).unwrap_or(0),
            computed_at_ms: at.unwrap_or(0),
        }
    }

    /// The known domain after `after` (the first without), in token order.
    async fn next_domain(&self, after: Option<&str>) -> Result<Option<String>, StoreError> {
        let rows: Vec<(String,)> = match after {
            None => {
                self.rows(Stmt::ScanDomainsFirst, vec![CqlValue::Int(1)])
                    .await?
            }
            Some(d) => {
                let values = vec![CqlValue::Text(d.to_owned()), CqlValue::Int(1)];
                self.rows(Stmt::ScanDomains, values).await?
            }
        };
        Ok(rows.into_iter().next().map(|r| r.0))
    }

    /// A whole-table scan. Pages are read in token order; the other tables
    /// domain by domain (in the token order of `domains`), each through the
    /// domain's own merged reads. Cursors: the last page URL; or
    /// "domain \0 backlinks cursor" (backlinks), "domain" (the others,
    /// whose pages end with a domain).
    async fn scan_inner(
        &self,
        table: Table,
        after: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let limit = limit.max(1);
        let n = CqlValue::Int(i32::try_from(limit).unwrap_or(i32::MAX));
        let mut out = ScanPage::default();
        if table == Table::Pages {
            type Row = (String, Option<i32>, Option<i32>, Option<i64>);
            let rows: Vec<Row> = match after {
                None => self.rows(Stmt::ScanPagesFirst, vec![n]).await?,
                Some(u) => {
                    self.rows(Stmt::ScanPages, vec![CqlValue::Text(u), n])
                        .await?
                }
            };
            if rows.len() == limit {
                out.next = rows.last().map(|r| r.0.clone());
            }
            out.rows = rows
                .into_iter()
                .filter_map(|(url, status, outcome, at)| {
                    Some(crate::Row::Page {
                        url,
                        state: PageState {
                            status: u32::try_from(status.unwrap_or(0)).unwrap_or(0),
                            outcome: outcome.unwrap_or(0),
                            fetched_at_ms: at?,
                        },
                    })
                })
                .collect();
            return Ok(out);
        }
        let (mut domain, mut inner) = match after.as_deref() {
            None => (self.next_domain(None).await?, None),
            Some(c) => match (table, c.split_once('\0')) {
                (Table::Backlinks, Some((d, rest))) => (Some(d.to_owned()), Some(rest.to_owned())),
                (Table::Backlinks, None) => {
                    return Err(StoreError::BadCursor(c.chars().take(64).collect()));
                }
                _ => (self.next_domain(Some(c)).await?, None),
            },
        };
        while let Some(d) = domain.take() {
            match table {
                Table::Backlinks => {
                    let q = BacklinkQuery {
                        target: Target::Domain(d.clone()),
                        include_internal: true,
                        status: Status::All,
                        limit: limit - out.rows.len(),
                        after: inner.take(),
                    };
                    let page = self.backlinks_inner(&q).await?;
                    out.rows
                        .extend(page.items.into_iter().map(crate::Row::Backlink));
                    if let Some(next) = page.next {
                        out.next = Some(format!("{d}\0{next}"));
                        return Ok(out);
                    }
                }
                Table::Refdomains => {
                    let rows = self.refdomains_inner(&d, Status::All).await?;
                    out.rows
                        .extend(rows.into_iter().map(|row| crate::Row::Refdomain {
                            target_domain: d.clone(),
                            row,
                        }));
                }
                Table::Events => {
                    let rows = self.events_inner(&d, 0, i64::MAX).await?;
                    out.rows
                        .extend(rows.into_iter().map(|event| crate::Row::Event {
                            target_domain: d.clone(),
                            event,
                        }));
                }
                Table::Pages => {}
            }
            domain = self.next_domain(Some(&d)).await?;
            if out.rows.len() >= limit {
                // Resume after this domain (backlinks: at its next one's start).
                out.next = match (table, &domain) {
                    (_, None) => None,
                    (Table::Backlinks, Some(_)) => Some(format!("{d}\0\u{10ffff}\0")),
                    _ => Some(d),
                };
                return Ok(out);
            }
        }
        Ok(out)
    }
}

/// A merged multi-bucket read: a target domain's backlinks, one target
/// URL's, or a source domain's external links.
enum Scan<'a> {
    Domain(&'a str),
    Url(&'a str, &'a str),
    Source(&'a str),
}

/// The key of a bucket's next row in the scan's order.
fn head<'a>(scan: &Scan<'_>, c: &'a BucketCursor) -> Option<(&'a str, &'a str)> {
    c.buf.front().map(|b| scan.key(b))
}

impl Scan<'_> {
    /// A row's key in this scan's order: (target, source) for backlinks,
    /// (source, target) for a source domain's links.
    fn key<'b>(&self, b: &'b Backlink) -> (&'b str, &'b str) {
        let (t, s) = (b.link.target_url.as_str(), b.link.source_url.as_str());
        match self {
            Scan::Source(_) => (s, t),
            _ => (t, s),
        }
    }
}

struct BucketCursor {
    bucket: i32,
    buf: VecDeque<Backlink>,
    after: (String, String),
    done: bool,
}

fn reason_of(v: Option<i32>) -> Option<LostReason> {
    LostReason::from_code(u32::try_from(v.unwrap_or(0)).unwrap_or(0))
}

fn small(v: Option<i32>) -> u8 {
    v.and_then(|v| u8::try_from(v).ok()).unwrap_or(0)
}

fn backlink_of(r: BacklinkRow) -> Backlink {
    let (target, source, anchor, rel, placement, kind, first, last, lost, reason) = r;
    let lost_at_ms = lost.filter(|l| *l != 0);
    Backlink {
        link: stored_link(
            &source,
            &target,
            anchor.unwrap_or_default(),
            u32::from(small(rel)),
            u32::from(small(placement)),
            u32::from(small(kind)),
        ),
        first_seen_ms: first.or(last).unwrap_or(0),
        last_seen_ms: last.unwrap_or(0),
        lost_reason: lost_at_ms.and_then(|_| reason_of(reason)),
        lost_at_ms,
    }
}

/// One refdomain_pages row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefPageRow {
    /// The referring domain.
    pub source_domain: String,
    /// Live links from the page.
    pub links: u64,
    /// Of those, follow links.
    pub follow_links: u64,
    /// Earliest time the page linked the target domain.
    pub first_seen_ms: Option<i64>,
    /// Latest time it did.
    pub last_seen_ms: Option<i64>,
    /// When its last link went (0 while live).
    pub lost_at_ms: i64,
}

/// Sums per-page rows into referring domains, as the embedded store keeps
/// them: counts add up, first seen is the earliest, last seen the latest, and
/// a domain with no live links is lost at its latest loss. Most links first.
pub fn aggregate_refdomains(
    rows: impl Iterator<Item = RefPageRow>,
    status: Status,
) -> Vec<RefDomain> {
    let mut by: BTreeMap<String, RefDomain> = BTreeMap::new();
    for r in rows {
        let e = by
            .entry(r.source_domain.clone())
            .or_insert_with(|| RefDomain {
                domain: r.source_domain.clone(),
                links: 0,
                follow_links: 0,
                first_seen_ms: i64::MAX,
                last_seen_ms: i64::MIN,
                lost_at_ms: Some(0),
            });
        e.links += r.links;
        e.follow_links += r.follow_links;
        if let Some(f) = r.first_seen_ms.or(r.last_seen_ms) {
            e.first_seen_ms = e.first_seen_ms.min(f);
        }
        if let Some(l) = r.last_seen_ms {
            e.last_seen_ms = e.last_seen_ms.max(l);
        }
        e.lost_at_ms = e.lost_at_ms.map(|l| l.max(r.lost_at_ms));
    }
    let mut out: Vec<RefDomain> = by
        .into_values()
        .filter_map(|mut d| {
            if d.first_seen_ms == i64::MAX {
                d.first_seen_ms = 0;
            }
            if d.last_seen_ms == i64::MIN {
                d.last_seen_ms = d.first_seen_ms;
            }
            let lost_at = if d.links == 0 {
                d.lost_at_ms.unwrap_or(0).max(1)
            } else {
                0
            };
            d.lost_at_ms = (lost_at != 0).then_some(lost_at);
            status.admits(lost_at).then_some(d)
        })
        .collect();
    out.sort_by(|a, b| b.links.cmp(&a.links).then_with(|| a.domain.cmp(&b.domain)));
    out
}

async fn read_buckets(s: &Session, keyspace: &str) -> Result<u32, StoreError> {
    let res = s
        .query_unpaged("SELECT value FROM store_meta WHERE name = 'buckets'", &[])
        .await
        .map_err(|_| StoreError::NotInitialized(keyspace.to_owned()))?;
    let rows = res.into_rows_result().map_err(cql_err("read store_meta"))?;
    let (v,): (i64,) = rows
        .maybe_first_row::<(i64,)>()
        .map_err(cql_err("read store_meta"))?
        .ok_or_else(|| StoreError::NotInitialized(keyspace.to_owned()))?;
    u32::try_from(v)
        .ok()
        .filter(|b| *b > 0)
        .ok_or_else(|| StoreError::Corrupt {
            table: "store_meta",
            key: "buckets".into(),
            reason: format!("bucket count {v} is not a positive 32-bit number"),
        })
}

#[async_trait]
impl LinkStore for ScyllaStore {
    async fn write_page(&self, page: PageWrite) -> Result<WriteStats, StoreError> {
        let started = Instant::now();
        let res = self.write_inner(&page).await;
        if let Err(e) = &res {
            tracing::warn!(url = %page.url, error = %e, "scylla write failed");
        }
        crate::record_write("scylla", started, &res);
        res
    }

    async fn refdomains(&self, domain: &str, status: Status) -> Result<Vec<RefDomain>, StoreError> {
        let started = Instant::now();
        let res = self.refdomains_inner(domain, status).await;
        crate::record_read("scylla", "refdomains", started, &res);
        res
    }

    async fn events(
        &self,
        domain: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<LinkEvent>, StoreError> {
        let started = Instant::now();
        let res = self.events_inner(domain, from_ms, to_ms).await;
        crate::record_read("scylla", "events", started, &res);
        res
    }

    async fn backlinks(&self, query: BacklinkQuery) -> Result<BacklinkPage, StoreError> {
        let started = Instant::now();
        let res = self.backlinks_inner(&query).await;
        crate::record_read("scylla", "backlinks", started, &res);
        res
    }

    async fn page_states(&self, urls: &[String]) -> Result<Vec<Option<PageState>>, StoreError> {
        let started = Instant::now();
        let res = self.page_states_inner(urls).await;
        crate::record_read("scylla", "page_states", started, &res);
        res
    }

    async fn outlinks(&self, query: OutlinkQuery) -> Result<BacklinkPage, StoreError> {
        let started = Instant::now();
        let res = self.outlinks_inner(&query).await;
        crate::record_read("scylla", "outlinks", started, &res);
        res
    }

    async fn scan(
        &self,
        table: Table,
        after: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let started = Instant::now();
        let res = self.scan_inner(table, after, limit).await;
        crate::record_read("scylla", "scan", started, &res);
        res
    }

    async fn knows_domain(&self, domain: &str) -> Result<bool, StoreError> {
        let started = Instant::now();
        let res = self
            .rows::<(String,)>(Stmt::ReadDomain, vec![CqlValue::Text(domain.to_owned())])
            .await
            .map(|r| !r.is_empty());
        crate::record_read("scylla", "knows_domain", started, &res);
        res
    }

    async fn write_ranks(&self, ranks: Vec<DomainRank>) -> Result<(), StoreError> {
        self.run_all(ranks.iter().map(plan::rank_write).collect())
            .await
    }

    async fn write_rank_run(&self, run: RankRun) -> Result<(), StoreError> {
        self.run(vec![plan::rank_run_write(&run)]).await
    }

    async fn rank_run(&self) -> Result<Option<RankRun>, StoreError> {
        type R = (
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<i64>,
        );
        let rows: Vec<R> = self
            .rows(Stmt::ReadRankRun, vec![CqlValue::Text("last".into())])
            .await?;
        let n = |v: Option<i64>| u64::try_from(v.unwrap_or(0)).unwrap_or(0);
        Ok(rows
            .into_iter()
            .next()
            .map(|(at, nodes, arcs, method, trusted)| RankRun {
                computed_at_ms: at.unwrap_or(0),
                nodes: n(nodes),
                arcs: n(arcs),
                harmonic_method: method.unwrap_or_default(),
                trusted: n(trusted),
            }))
    }

    async fn domain_ranks(
        &self,
        domains: &[String],
    ) -> Result<Vec<Option<DomainRank>>, StoreError> {
        stream::iter(domains.iter().cloned())
            .map(|d| async move {
                let rows: Vec<RankRow> = self.rows(Stmt::ReadRank, vec![CqlValue::Text(d)]).await?;
                Ok::<_, StoreError>(rows.into_iter().next().map(Self::rank_of))
            })
            .buffered(PAGE_PARALLELISM)
            .try_collect()
            .await
    }

    async fn scan_ranks(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<DomainRank>, Option<String>), StoreError> {
        let limit = limit.max(1);
        let n = CqlValue::Int(i32::try_from(limit).unwrap_or(i32::MAX));
        let rows: Vec<RankRow> = match after {
            None => self.rows(Stmt::ScanRanksFirst, vec![n]).await?,
            Some(d) => {
                self.rows(Stmt::ScanRanks, vec![CqlValue::Text(d), n])
                    .await?
            }
        };
        let next = (rows.len() == limit)
            .then(|| rows.last().map(|r| r.0.clone()))
            .flatten();
        Ok((rows.into_iter().map(Self::rank_of).collect(), next))
    }

    async fn host_addrs(&self, domain: &str) -> Result<Vec<HostAddr>, StoreError> {
        let rows: Vec<(String, Option<String>, Option<i64>)> = self
            .rows(Stmt::ReadHostAddrs, vec![CqlValue::Text(domain.to_owned())])
            .await?;
        rows.into_iter()
            .map(|(host, ip, at)| {
                let ip = ip.unwrap_or_default();
                let parsed = ip.parse().map_err(|_| StoreError::Corrupt {
                    table: "host_addrs",
                    key: format!("{domain}\0{host}"),
                    reason: format!("not an IP address: {ip:?}"),
                })?;
                Ok(HostAddr {
                    host,
                    ip: parsed,
                    seen_at_ms: at.unwrap_or(0),
                })
            })
            .collect()
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every write returned only once acknowledged at LOCAL_QUORUM, which
        // is durable in the replicas' commit logs.
        Ok(())
    }
}

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;
