//! Bulk export of the link graph as Apache Parquet, for analytics jobs:
//! `OUT/backlinks/`, `OUT/refdomains/`, `OUT/pages/`, `OUT/link_events/` and
//! `OUT/domain_ranks/` (the last `linkgraph rank`; empty before),
//! each a directory of `part-NNNNN.parquet` files (zstd, at most
//! [`ROWS_PER_FILE`] rows each) that DuckDB, Spark or pandas read as one
//! table. The columns are documented in the README ("Bulk export").
//!
//! A file is written as `*.parquet.partial` and renamed when complete, so a
//! reader never sees half a file, and an export never writes into a
//! directory that already holds one.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use linkgraph_core::{Rel, registrable_domain, url_host};
use linkgraph_proto::FetchOutcome;
use linkgraph_store::{
    Backlink, DomainRank, LinkEvent, LinkStore, PageState, RefDomain, Row, Table,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// Rows per Parquet file; a table with more is split into several parts.
pub const ROWS_PER_FILE: usize = 1_000_000;
/// Rows per store read and per record batch.
const BATCH: usize = 8192;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The output directory is not empty.
    #[error("{0} is not empty: export into a new or empty directory")]
    NotEmpty(PathBuf),
    /// A file or directory cannot be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The Parquet writer failed.
    #[error("cannot write parquet file {path}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The writer's error.
        source: parquet::errors::ParquetError,
    },
    /// A record batch does not fit its schema (a bug).
    #[error("cannot build a {table} batch: {source}")]
    Arrow {
        /// The table.
        table: &'static str,
        /// Arrow's error.
        source: arrow_schema::ArrowError,
    },
    /// The store failed, or cannot be scanned.
    #[error(transparent)]
    Store(#[from] linkgraph_store::StoreError),
}

/// Rows written per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Backlinks rows (live and lost, internal and external).
    pub backlinks: u64,
    /// Referring-domain rows.
    pub refdomains: u64,
    /// Fetched URLs.
    pub pages: u64,
    /// Link events.
    pub link_events: u64,
    /// Ranked domains.
    pub domain_ranks: u64,
}

impl std::fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exported {} backlinks, {} refdomains, {} pages, {} link events, {} domain ranks",
            self.backlinks, self.refdomains, self.pages, self.link_events, self.domain_ranks
        )
    }
}

fn ts(nullable: bool, name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        nullable,
    )
}

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn flag(name: &str) -> Field {
    Field::new(name, DataType::Boolean, false)
}

/// The schema of each exported table (documented in the README).
pub fn schema(table: Table) -> Schema {
    let rel = || {
        [
            flag("nofollow"),
            flag("sponsored"),
            flag("ugc"),
            flag("follow"),
        ]
    };
    let mut f: Vec<Field> = match table {
        Table::Backlinks => vec![
            text("target_domain", false),
            text("target_url", false),
            text("source_domain", false),
            text("source_url", false),
            text("anchor", false),
        ],
        Table::Refdomains => vec![
            text("target_domain", false),
            text("domain", false),
            Field::new("links", DataType::Int64, false),
            Field::new("follow_links", DataType::Int64, false),
            ts(false, "first_seen"),
            ts(false, "last_seen"),
            ts(true, "lost_at"),
        ],
        Table::Pages => vec![
            text("url", false),
            text("domain", false),
            Field::new("http_status", DataType::Int32, true),
            text("outcome", false),
            ts(false, "fetched_at"),
        ],
        Table::Events => vec![
            text("target_domain", false),
            ts(false, "at"),
            text("kind", false),
            text("source", false),
            text("target_url", true),
            text("anchor", false),
        ],
    };
    match table {
        Table::Backlinks => {
            f.extend(rel());
            f.extend([
                text("placement", false),
                text("kind", false),
                ts(false, "first_seen"),
                ts(false, "last_seen"),
                ts(true, "lost_at"),
                text("lost_reason", true),
            ]);
        }
        Table::Events => {
            f.extend(rel());
            f.extend([
                text("placement", false),
                text("lost_reason", true),
                text("old_anchor", true),
                text("old_rel", true),
                text("old_placement", true),
            ]);
        }
        Table::Refdomains | Table::Pages => {}
    }
    Schema::new(f)
}

/// The directory name of a table.
pub fn table_dir(table: Table) -> &'static str {
    match table {
        Table::Backlinks => "backlinks",
        Table::Refdomains => "refdomains",
        Table::Pages => "pages",
        Table::Events => "link_events",
    }
}

fn strings<'a>(v: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

fn opt_strings<'a>(v: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(v.collect::<StringArray>())
}

fn times(v: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter_values(v).with_timezone("UTC"))
}

fn opt_times(v: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(
        v.collect::<TimestampMillisecondArray>()
            .with_timezone("UTC"),
    )
}

fn rel_columns(rels: &[Rel]) -> [ArrayRef; 4] {
    let col = |f: fn(Rel) -> bool| -> ArrayRef {
        Arc::new(rels.iter().map(|r| Some(f(*r))).collect::<BooleanArray>())
    };
    [
        col(|r| r.contains(Rel::NOFOLLOW)),
        col(|r| r.contains(Rel::SPONSORED)),
        col(|r| r.contains(Rel::UGC)),
        col(Rel::is_follow),
    ]
}

fn backlinks_batch(rows: &[Backlink]) -> Vec<ArrayRef> {
    let l = || rows.iter().map(|b| &b.link);
    let mut cols = vec![
        strings(l().map(|l| l.target_domain())),
        strings(l().map(|l| l.target_url.as_str())),
        strings(l().map(|l| l.source_domain())),
        strings(l().map(|l| l.source_url.as_str())),
        strings(l().map(|l| l.anchor.as_str())),
    ];
    cols.extend(rel_columns(&l().map(|l| l.rel).collect::<Vec<_>>()));
    cols.extend([
        strings(l().map(|l| l.placement.as_str())),
        strings(l().map(|l| l.kind.as_str())),
        times(rows.iter().map(|b| b.first_seen_ms)),
        times(rows.iter().map(|b| b.last_seen_ms)),
        opt_times(rows.iter().map(|b| b.lost_at_ms)),
        opt_strings(rows.iter().map(|b| b.lost_reason.map(|r| r.as_str()))),
    ]);
    cols
}

fn refdomains_batch(rows: &[(String, RefDomain)]) -> Vec<ArrayRef> {
    let n = |f: fn(&RefDomain) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            rows.iter()
                .map(|(_, r)| i64::try_from(f(r)).unwrap_or(i64::MAX)),
        ))
    };
    vec![
        strings(rows.iter().map(|(t, _)| t.as_str())),
        strings(rows.iter().map(|(_, r)| r.domain.as_str())),
        n(|r| r.links),
        n(|r| r.follow_links),
        times(rows.iter().map(|(_, r)| r.first_seen_ms)),
        times(rows.iter().map(|(_, r)| r.last_seen_ms)),
        opt_times(rows.iter().map(|(_, r)| r.lost_at_ms)),
    ]
}

fn pages_batch(rows: &[(String, PageState)]) -> Vec<ArrayRef> {
    let status: Int32Array = rows
        .iter()
        .map(|(_, s)| {
            s.http_status()
                .map(|c| i32::try_from(c).unwrap_or(i32::MAX))
        })
        .collect();
    vec![
        strings(rows.iter().map(|(u, _)| u.as_str())),
        strings(rows.iter().map(|(u, _)| registrable_domain(url_host(u)))),
        Arc::new(status),
        strings(rows.iter().map(|(_, s)| {
            FetchOutcome::try_from(s.outcome).map_or("unspecified", FetchOutcome::label)
        })),
        times(rows.iter().map(|(_, s)| s.fetched_at_ms)),
    ]
}

fn events_batch(rows: &[(String, LinkEvent)]) -> Vec<ArrayRef> {
    let e = || rows.iter().map(|(_, e)| e);
    let mut cols = vec![
        strings(rows.iter().map(|(t, _)| t.as_str())),
        times(e().map(|e| e.at_ms)),
        strings(e().map(|e| e.kind.as_str())),
        strings(e().map(|e| e.link.source_url.as_str())),
        opt_strings(e().map(|e| Some(e.link.target_url.as_str()).filter(|t| !t.is_empty()))),
        strings(e().map(|e| e.link.anchor.as_str())),
    ];
    cols.extend(rel_columns(&e().map(|e| e.link.rel).collect::<Vec<_>>()));
    let old_rel: Vec<Option<String>> = e()
        .map(|e| e.before.as_ref().map(|b| b.1.names().join(" ")))
        .collect();
    cols.extend([
        strings(e().map(|e| e.link.placement.as_str())),
        opt_strings(e().map(|e| e.lost_reason.map(|r| r.as_str()))),
        opt_strings(e().map(|e| e.before.as_ref().map(|b| b.0.as_str()))),
        opt_strings(old_rel.iter().map(|r| r.as_deref())),
        opt_strings(e().map(|e| e.before.as_ref().map(|b| b.2.as_str()))),
    ]);
    cols
}

/// The part files of one table, rotated every [`ROWS_PER_FILE`] rows.
struct Parts {
    dir: PathBuf,
    schema: Arc<Schema>,
    current: Option<(ArrowWriter<File>, PathBuf, usize)>,
    next_part: usize,
}

impl Parts {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
        move |source| ExportError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), ExportError> {
        if self.current.is_none() {
            let path = self
                .dir
                .join(format!("part-{:05}.parquet.partial", self.next_part));
            self.next_part += 1;
            let file = File::create(&path).map_err(Self::io(&path))?;
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .set_max_row_group_size(64 * 1024)
                .build();
            let w = ArrowWriter::try_new(file, Arc::clone(&self.schema), Some(props)).map_err(
                |source| ExportError::Parquet {
                    path: path.clone(),
                    source,
                },
            )?;
            self.current = Some((w, path, 0));
        }
        if let Some((w, path, rows)) = &mut self.current {
            w.write(batch).map_err(|source| ExportError::Parquet {
                path: path.clone(),
                source,
            })?;
            *rows += batch.num_rows();
            if *rows >= ROWS_PER_FILE {
                self.finish()?;
            }
        }
        Ok(())
    }

    /// Closes the current file and gives it its final name.
    fn finish(&mut self) -> Result<(), ExportError> {
        if let Some((w, path, _)) = self.current.take() {
            w.close().map_err(|source| ExportError::Parquet {
                path: path.clone(),
                source,
            })?;
            let done = path.with_extension("");
            std::fs::rename(&path, &done).map_err(Self::io(&done))?;
        }
        Ok(())
    }
}

/// Writes every table of `store` under `out` (created if missing; it must
/// be empty).
pub async fn export(store: &dyn LinkStore, out: &Path) -> Result<ExportSummary, ExportError> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(Parts::io(out))?;
        if entries.next().is_some() {
            return Err(ExportError::NotEmpty(out.to_path_buf()));
        }
    }
    let mut summary = ExportSummary::default();
    for table in [
        Table::Backlinks,
        Table::Refdomains,
        Table::Pages,
        Table::Events,
    ] {
        let dir = out.join(table_dir(table));
        std::fs::create_dir_all(&dir).map_err(Parts::io(&dir))?;
        let mut parts = Parts {
            dir,
            schema: Arc::new(schema(table)),
            current: None,
            next_part: 0,
        };
        let mut after = None;
        let mut n = 0u64;
        loop {
            let page = store.scan(table, after, BATCH).await?;
            if page.rows.is_empty() && n == 0 && page.next.is_none() {
                // An empty table is still a readable (empty) file.
                let empty = RecordBatch::new_empty(Arc::clone(&parts.schema));
                parts.write(&empty)?;
            }
            let columns = columns(table, page.rows);
            let batch =
                RecordBatch::try_new(Arc::clone(&parts.schema), columns.1).map_err(|source| {
                    ExportError::Arrow {
                        table: table_dir(table),
                        source,
                    }
                })?;
            n += columns.0;
            if batch.num_rows() > 0 {
                parts.write(&batch)?;
            }
            match page.next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        parts.finish()?;
        tracing::info!(table = table_dir(table), rows = n, "exported");
        match table {
            Table::Backlinks => summary.backlinks = n,
            Table::Refdomains => summary.refdomains = n,
            Table::Pages => summary.pages = n,
            Table::Events => summary.link_events = n,
        }
    }
    summary.domain_ranks = export_ranks(store, out).await?;
    Ok(summary)
}

/// The schema of `domain_ranks/`.
pub fn ranks_schema() -> Schema {
    let num = |name: &str, nullable: bool| Field::new(name, DataType::Float64, nullable);
    Schema::new(vec![
        text("domain", false),
        num("authority", false),
        num("pagerank", false),
        num("harmonic", false),
        num("trust", true),
        Field::new("referring_domains", DataType::Int64, false),
        ts(false, "computed_at"),
    ])
}

fn ranks_batch(rows: &[DomainRank]) -> Vec<ArrayRef> {
    let f = |g: fn(&DomainRank) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(g)))
    };
    vec![
        strings(rows.iter().map(|r| r.domain.as_str())),
        f(|r| r.authority),
        f(|r| r.pagerank),
        f(|r| r.harmonic),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.trust))),
        Arc::new(Int64Array::from_iter_values(
            rows.iter()
                .map(|r| i64::try_from(r.referring_domains).unwrap_or(i64::MAX)),
        )),
        times(rows.iter().map(|r| r.computed_at_ms)),
    ]
}

/// Writes every stored domain rank under `out/domain_ranks/`.
async fn export_ranks(store: &dyn LinkStore, out: &Path) -> Result<u64, ExportError> {
    let dir = out.join("domain_ranks");
    std::fs::create_dir_all(&dir).map_err(Parts::io(&dir))?;
    let mut parts = Parts {
        dir,
        schema: Arc::new(ranks_schema()),
        current: None,
        next_part: 0,
    };
    let (mut after, mut n) = (None, 0u64);
    loop {
        let (rows, next) = store.scan_ranks(after, BATCH).await?;
        if rows.is_empty() && n == 0 && next.is_none() {
            parts.write(&RecordBatch::new_empty(Arc::clone(&parts.schema)))?;
        }
        n += rows.len() as u64;
        if !rows.is_empty() {
            let batch = RecordBatch::try_new(Arc::clone(&parts.schema), ranks_batch(&rows))
                .map_err(|source| ExportError::Arrow {
                    table: "domain_ranks",
                    source,
                })?;
            parts.write(&batch)?;
        }
        match next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    parts.finish()?;
    tracing::info!(table = "domain_ranks", rows = n, "exported");
    Ok(n)
}

/// The rows of one scan page as the table's columns, with their count.
fn columns(table: Table, rows: Vec<Row>) -> (u64, Vec<ArrayRef>) {
    let n = rows.len() as u64;
    let cols = match table {
        Table::Backlinks => backlinks_batch(
            &rows
                .into_iter()
                .filter_map(|r| match r {
                    Row::Backlink(b) => Some(b),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        Table::Refdomains => refdomains_batch(
            &rows
                .into_iter()
                .filter_map(|r| match r {
                    Row::Refdomain { target_domain, row } => Some((target_domain, row)),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        Table::Pages => pages_batch(
            &rows
                .into_iter()
                .filter_map(|r| match r {
                    Row::Page { url, state } => Some((url, state)),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        Table::Events => events_batch(
            &rows
                .into_iter()
                .filter_map(|r| match r {
                    Row::Event {
                        target_domain,
                        event,
                    } => Some((target_domain, event)),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
    };
    (n, cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[tokio::test]
    async fn every_table_becomes_readable_parquet() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = linkgraph_store::data_store_url(&dir.path().join("data"));
        let store = linkgraph_store::open(&url, true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..3 {
            let p = linkgraph_store::conformance::page(
                &format!("http://s{i}.com/"),
                1000,
                &["http://t.com/a", "http://s0.com/in"],
            );
            store.write_page(p).await.unwrap_or_else(|e| panic!("{e}"));
        }
        let out = dir.path().join("out");
        let s = export(store.as_ref(), &out)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.backlinks, s.pages), (6, 3), "{s}");
        for (table, want) in [("backlinks", 6), ("pages", 3), ("refdomains", s.refdomains)] {
            let file = out.join(table).join("part-00000.parquet");
            let f = File::open(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let r = SerializedFileReader::new(f).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                r.metadata().file_metadata().num_rows(),
                want as i64,
                "{table}"
            );
        }
        assert!(matches!(
            export(store.as_ref(), &out).await,
            Err(ExportError::NotEmpty(_))
        ));
    }
}
