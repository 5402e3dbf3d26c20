//! The read side of linkgraph: every report over the link store, and its
//! rendering. It depends on the store and core crates only, so analytics
//! jobs and the API never pull in the crawler.
//!
//! # Layout
//! * this file: a [`Reader`] over one store, the reports it answers
//!   (referring domains, backlinks, velocity), and their inputs (a domain
//!   normalized to its registrable domain, a backlinks [`Target`]);
//! * [`reports`]: anchors, top pages, broken links, outlinks and link
//!   intersect;
//! * [`overview`]: one domain's profile at a glance (`summary`) and the
//!   anchor classes (branded, url, other, empty);
//! * [`ranks`]: the `domains` report and the authority column, from the
//!   ranks `linkgraph rank` stored;
//! * [`risk`]: the risk signals of a domain's referring domains, their
//!   scores, and the disavow file;
//! * [`velocity`]: new and lost links and referring domains per bucket,
//!   with spikes (the documented algorithm);
//! * [`render`]: every report as a table, JSON or CSV.

pub mod overview;
pub mod ranks;
pub mod render;
pub mod reports;
pub mod risk;
pub mod velocity;

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use linkgraph_core::{canonicalize, registrable_domain, url_host};
use linkgraph_store::{BacklinkQuery, LinkStore, RefDomain, Status, StoreError, Target};

use crate::render::{BacklinksFormat, Format};
use crate::velocity::{Bucket, Velocity};

/// Why a report could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The input is not a domain name.
    #[error("{0:?} is not a domain name (give e.g. example.co.uk)")]
    BadDomain(String),
    /// The input is not a URL.
    #[error("target {input:?}: {reason}")]
    BadUrl {
        /// The input.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store has never seen the domain.
    #[error(
        "unknown domain {domain:?}: no page of it was crawled and no link to it was found in {place}"
    )]
    UnknownDomain {
        /// The registrable domain asked for.
        domain: String,
        /// The store it was looked up in.
        place: String,
    },
    /// The data directory is missing or holds no store.
    #[error("{0}")]
    NoStore(String),
    /// The store cannot be opened.
    #[error("cannot {action} the link store {place}")]
    Open {
        /// "open" or "read".
        action: &'static str,
        /// The store URL, or "in DIR".
        place: String,
        /// Why.
        source: Box<StoreError>,
    },
    /// A report argument is out of range.
    #[error("{0}")]
    BadArgument(String),
    /// A time range ends before it starts.
    #[error("--from must be before --to")]
    BadRange,
    /// The store failed a query (boxed: store errors are large).
    #[error(transparent)]
    Store(Box<StoreError>),
    /// `rank` has not run on this store.
    #[error("{0}")]
    NoRanks(String),
    /// The output cannot be written.
    #[error("cannot write the report: {0}")]
    Io(#[from] io::Error),
}

impl From<StoreError> for QueryError {
    fn from(e: StoreError) -> Self {
        QueryError::Store(Box::new(e))
    }
}

/// Normalizes a user-given domain to its registrable domain (punycode,
/// lower-case): `WWW.Example.co.uk.` is `example.co.uk`.
pub fn normalize_domain(input: &str) -> Result<String, QueryError> {
    let bad = || QueryError::BadDomain(input.to_owned());
    let trimmed = input.trim().trim_end_matches('.');
    if trimmed.is_empty() || trimmed.contains(['/', ':', '?', '#', '@', ' ']) {
        return Err(bad());
    }
    let url = url::Url::parse(&format!("http://{trimmed}/")).map_err(|_| bad())?;
    let host = url.host_str().ok_or_else(bad)?;
    Ok(registrable_domain(host).to_owned())
}

/// A backlinks target: an absolute URL is that URL, anything else a
/// registrable domain.
pub fn parse_target(input: &str) -> Result<Target, QueryError> {
    if input.contains("://") {
        let u = canonicalize(input, None).map_err(|e| QueryError::BadUrl {
            input: input.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Target::Url(u.into()))
    } else {
        Ok(Target::Domain(normalize_domain(input)?))
    }
}

/// Reports over one link store, opened for reading.
pub struct Reader {
    store: Arc<dyn LinkStore>,
    place: String,
}

/// Rows per store read when streaming backlinks.
const BACKLINKS_PAGE: usize = 1000;

impl Reader {
    /// Reads `store`; `place` names it in messages (a URL or a directory).
    pub fn new(store: Arc<dyn LinkStore>, place: impl Into<String>) -> Reader {
        Reader {
            store,
            place: place.into(),
        }
    }

    /// Opens the store of a crawl's data directory (`DATA/store`), or the
    /// store at `url`, for reading. Exactly one of them is expected; `url`
    /// wins when both are given.
    pub async fn open(data: Option<&Path>, url: Option<&str>) -> Result<Reader, QueryError> {
        if let Some(url) = url {
            let store =
                linkgraph_store::open(url, false)
                    .await
                    .map_err(|source| QueryError::Open {
                        action: "open",
                        place: url.to_owned(),
                        source: Box::new(source),
                    })?;
            return Ok(Reader::new(store, url));
        }
        let Some(data) = data else {
            return Err(QueryError::NoStore("give --data DIR or --store URL".into()));
        };
        if !data.is_dir() {
            return Err(QueryError::NoStore(format!(
                "data directory {} does not exist or is not a directory",
                data.display()
            )));
        }
        let path = linkgraph_store::data_store_path(data);
        if !path.is_dir() {
            return Err(QueryError::NoStore(format!(
                "{} holds no link store (run `linkgraph crawl --data {}` first)",
                data.display(),
                data.display()
            )));
        }
        let store = linkgraph_store::open(&linkgraph_store::data_store_url(data), false)
            .await
            .map_err(|source| QueryError::Open {
                action: "read",
                place: format!("in {}", data.display()),
                source: Box::new(source),
            })?;
        Ok(Reader::new(store, data.display().to_string()))
    }

    /// The store read.
    pub fn store(&self) -> &dyn LinkStore {
        self.store.as_ref()
    }

    /// The store's name in messages (a URL or a directory).
    pub fn place(&self) -> &str {
        &self.place
    }

    /// Fails with [`QueryError::UnknownDomain`] when the store has never
    /// seen `domain`: an unknown domain is an error, not an empty report.
    pub async fn ensure_known(&self, domain: &str) -> Result<(), QueryError> {
        if self.store.knows_domain(domain).await? {
            return Ok(());
        }
        Err(QueryError::UnknownDomain {
            domain: domain.to_owned(),
            place: self.place.clone(),
        })
    }

    /// The referring domains of `domain` with this status, most links first.
    pub async fn refdomains(
        &self,
        domain: &str,
        status: Status,
    ) -> Result<Vec<RefDomain>, QueryError> {
        self.ensure_known(domain).await?;
        Ok(self.store.refdomains(domain, status).await?)
    }

    /// The link velocity of `domain` over `[from_ms, to_ms)` (unbounded
    /// ends span its events); see [`velocity::velocity`].
    pub async fn velocity(
        &self,
        domain: &str,
        bucket: Bucket,
        (from_ms, to_ms): (Option<i64>, Option<i64>),
        include_discovered: bool,
    ) -> Result<Velocity, QueryError> {
        if let (Some(f), Some(t)) = (from_ms, to_ms)
            && f >= t
        {
            return Err(QueryError::BadRange);
        }
        self.ensure_known(domain).await?;
        let events = self
            .store
            .events(domain, from_ms.unwrap_or(0), to_ms.unwrap_or(i64::MAX))
            .await?;
        Ok(velocity::velocity(
            domain,
            &events,
            bucket,
            from_ms,
            to_ms,
            include_discovered,
        ))
    }

    /// Writes every backlink of `target` to `out`, page by page, so memory
    /// stays bounded (a table is aligned over all rows, so it is read in
    /// one page). A reader that goes away (a closed pipe) ends it quietly.
    pub async fn write_backlinks(
        &self,
        out: &mut impl Write,
        target: &Target,
        include_internal: bool,
        status: Status,
        limit: Option<usize>,
        format: BacklinksFormat,
    ) -> Result<(), QueryError> {
        let domain = match target {
            Target::Domain(d) => d.as_str(),
            Target::Url(u) => registrable_domain(url_host(u)),
        };
        self.ensure_known(domain).await?;
        if !quiet_pipe(render::write_backlinks_header(out, format))? {
            return Ok(());
        }
        let table = format == BacklinksFormat::Table;
        write_paged(
            out,
            limit,
            table,
            async |n, after| {
                let page = self
                    .store
                    .backlinks(BacklinkQuery {
                        target: target.clone(),
                        include_internal,
                        status,
                        limit: n,
                        after,
                    })
                    .await?;
                Ok((page.items, page.next))
            },
            |out, rows| render::write_backlinks(out, rows, format),
        )
        .await
    }
}

impl Reader {
    /// Writes up to `limit` broken links of `domain` to `out`, page by page
    /// (a table in one page); a closed pipe ends it quietly.
    pub async fn write_broken(
        &self,
        out: &mut impl Write,
        domain: &str,
        direction: reports::Direction,
        status: Status,
        limit: Option<usize>,
        format: BacklinksFormat,
    ) -> Result<(), QueryError> {
        self.ensure_known(domain).await?;
        if !quiet_pipe(render::write_broken_header(out, direction, format))? {
            return Ok(());
        }
        let table = format == BacklinksFormat::Table;
        write_paged(
            out,
            limit,
            table,
            async |n, cursor| {
                let page = self
                    .broken_page(domain, direction, status, n, cursor)
                    .await?;
                Ok((page.links, page.next))
            },
            |out, rows| render::write_broken(out, rows, direction, format),
        )
        .await
    }
}

/// Writes up to `limit` rows, page by page from `fetch(rows, cursor)` (a
/// table in one page, so it aligns), with `write`; a closed pipe ends it
/// quietly.
async fn write_paged<W: Write, T>(
    out: &mut W,
    limit: Option<usize>,
    table: bool,
    mut fetch: impl AsyncFnMut(usize, Option<String>) -> Result<(Vec<T>, Option<String>), QueryError>,
    write: impl Fn(&mut W, &[T]) -> io::Result<()>,
) -> Result<(), QueryError> {
    let mut left = limit.unwrap_or(usize::MAX);
    let mut cursor = None;
    while left > 0 {
        let n = if table {
            left
        } else {
            left.min(BACKLINKS_PAGE)
        };
        let (rows, next) = fetch(n, cursor).await?;
        left = left.saturating_sub(rows.len());
        if !quiet_pipe(write(out, &rows))? {
            return Ok(());
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    quiet_pipe(out.flush()).map(|_| ())
}

/// Ok(false) when the reader of `out` went away (a closed pipe).
fn quiet_pipe(r: io::Result<()>) -> Result<bool, QueryError> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(QueryError::Io(e)),
        Ok(()) => Ok(true),
    }
}

/// Writes the first `limit` referring domains of `domain` (a registrable
/// domain, see [`normalize_domain`]) in `format`.
pub async fn refdomains_report(
    reader: &Reader,
    out: &mut impl Write,
    domain: &str,
    status: Status,
    limit: Option<usize>,
    format: Format,
) -> Result<(), QueryError> {
    let rows = reader.refdomains(domain, status).await?;
    let shown = &rows[..rows.len().min(limit.unwrap_or(usize::MAX))];
    let names: Vec<String> = shown.iter().map(|r| r.domain.clone()).collect();
    let authority = reader.authorities(&names).await?;
    render::write_refdomains(out, domain, shown, rows.len(), authority.as_ref(), format)?;
    out.flush()?;
    Ok(())
}

/// Writes the link velocity of `domain` (a registrable domain) in `format`.
pub async fn velocity_report(
    reader: &Reader,
    out: &mut impl Write,
    domain: &str,
    bucket: Bucket,
    range: (Option<i64>, Option<i64>),
    include_discovered: bool,
    format: Format,
) -> Result<(), QueryError> {
    let v = reader
        .velocity(domain, bucket, range, include_discovered)
        .await?;
    render::write_velocity(out, &v, format)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkgraph_core::{Link, LinkKind, Placement, Rel};
    use linkgraph_store::{LinkSetUpdate, PageWrite};

    #[test]
    fn domains_normalize_to_their_registrable_domain() {
        for (input, want) in [
            ("WWW.Example.co.uk.", "example.co.uk"),
            ("shop.example.com", "example.com"),
            ("bücher.de", "xn--bcher-kva.de"),
            ("a.github.io", "a.github.io"),
        ] {
            assert_eq!(
                normalize_domain(input).ok().as_deref(),
                Some(want),
                "{input}"
            );
        }
        for bad in ["", "http://a.com", "a.com/x", "a b.com", "user@a.com"] {
            assert!(
                matches!(normalize_domain(bad), Err(QueryError::BadDomain(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_target("http://WWW.A.com/x#frag"),
            Ok(Target::Url(u)) if u == "http://www.a.com/x"
        ));
    }

    async fn reader() -> (tempfile::TempDir, Reader) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = linkgraph_store::open(&linkgraph_store::data_store_url(dir.path()), true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let page = |from: &str, t: i64| PageWrite {
            url: from.into(),
            status: 200,
            outcome: 1,
            fetched_at_ms: t,
            update: LinkSetUpdate::Replace,
            content_hash: 0,
            noindex: false,
            remote_ip: None,
            links: (0..3)
                .map(|i| Link {
                    source_url: from.into(),
                    target_url: format!("http://t.com/{i}"),
                    anchor: format!("a{i}"),
                    rel: Rel::follow(),
                    placement: Placement::Content,
                    kind: LinkKind::Link,
                })
                .collect(),
        };
        for (i, from) in ["http://a.com/", "http://b.org/"].into_iter().enumerate() {
            store
                .write_page(page(from, 1_000 + i as i64))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        (dir, Reader::new(store, "test"))
    }

    #[tokio::test]
    async fn reports_read_the_store() {
        let (_dir, r) = reader().await;
        let rd = r
            .refdomains("t.com", Status::Live)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rd.len(), 2);
        assert!(matches!(
            r.refdomains("nowhere.com", Status::Live).await,
            Err(QueryError::UnknownDomain { .. })
        ));
        for format in [
            BacklinksFormat::Csv,
            BacklinksFormat::Jsonl,
            BacklinksFormat::Table,
        ] {
            let mut out = Vec::new();
            let target = Target::Domain("t.com".into());
            r.write_backlinks(&mut out, &target, false, Status::Live, None, format)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let text = String::from_utf8_lossy(&out);
            // 6 rows, plus a header for CSV and the table.
            let want = if format == BacklinksFormat::Jsonl {
                6
            } else {
                7
            };
            assert_eq!(text.lines().count(), want, "{format:?}:\n{text}");
            let mut out = Vec::new();
            r.write_backlinks(&mut out, &target, false, Status::Live, Some(4), format)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let limited = String::from_utf8_lossy(&out).lines().count();
            assert_eq!(limited, want - 2, "{format:?}: --limit 4");
        }
        let v = r
            .velocity("t.com", Bucket::Day, (None, None), false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Both referring domains were found on their pages' first fetch.
        let sum = |f: fn(&velocity::Point) -> u64| v.series.iter().map(f).sum::<u64>();
        assert_eq!(
            (sum(|p| p.new_refdomains), sum(|p| p.discovered_refdomains)),
            (0, 2)
        );
        assert!(matches!(
            r.velocity("t.com", Bucket::Day, (Some(5), Some(5)), false)
                .await,
            Err(QueryError::BadRange)
        ));
    }

    /// A writer whose reader went away.
    struct ClosedPipe;
    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[tokio::test]
    async fn a_closed_pipe_ends_backlinks_quietly() {
        let (_dir, r) = reader().await;
        let res = r
            .write_backlinks(
                &mut ClosedPipe,
                &Target::Domain("t.com".into()),
                false,
                Status::Live,
                None,
                BacklinksFormat::Csv,
            )
            .await;
        assert!(res.is_ok(), "{res:?}");
    }
}
