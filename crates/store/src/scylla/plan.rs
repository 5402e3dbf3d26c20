//! The Scylla write path as pure functions: the CQL of every statement, and
//! the statements one page observation turns into, given what the page's
//! partition held before (the rules themselves are [`crate::diff`]'s). No I/O here, so the plan is unit-tested without a
//! server; `super` executes it.

use std::collections::{BTreeMap, BTreeSet};

use linkgraph_core::{Placement, fnv1a64, registrable_domain, url_host};
use scylla::value::CqlValue;

use crate::diff::{
    Attrs, Change, Diff, Event as DiffEvent, RefdomainChange, diff, refdomain_change,
};
pub use crate::diff::{Outlink, Prior};
use crate::{EventKind, LostReason, PageWrite, WriteStats};

/// first_seen cells are written at `INVERTED_BASE - t(us)`: the earliest
/// observation gets the highest write timestamp, so last-write-wins keeps
/// the earliest time, whatever order the writes arrive in and however often
/// they repeat. The alternatives cost more: write-once cells need an LWT
/// (`IF first_seen = null`, a Paxos round per edge), and a read-before-write
/// races with concurrent writers. The price: these cells can only be
/// overwritten by a timestamp above 2^62, so rows are never deleted (lost
/// links keep `lost_at` as history) and a purge uses TTL or TRUNCATE.
pub const INVERTED_BASE: i64 = 1 << 62;

/// Write timestamp (us) of an observation at `t_ms`.
pub fn ts(t_ms: i64) -> i64 {
    t_ms.saturating_mul(1000)
}

/// Write timestamp (us) of a first_seen cell observed at `t_ms`.
pub fn first_seen_ts(t_ms: i64) -> i64 {
    INVERTED_BASE - ts(t_ms.max(0))
}

/// Days since the Unix epoch of `t_ms` (the link_events partition).
pub fn day(t_ms: i64) -> i32 {
    let d = t_ms
        .div_euclid(86_400_000)
        .clamp(i64::from(i32::MIN), i64::from(i32::MAX));
    i32::try_from(d).unwrap_or(0)
}

/// The bucket of a row keyed by `source` (a URL or, for refdomain rows, a
/// domain). Stable across builds and machines: FNV-1a.
pub fn bucket(source: &str, buckets: u32) -> i32 {
    i32::try_from(fnv1a64(source.as_bytes()) % u64::from(buckets.max(1))).unwrap_or(0)
}

/// Every statement the store prepares. Each is idempotent: timestamps and
/// values come from the observation, never from the clock of the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stmt {
    /// Page fetch state (static columns) of a 200/4xx/5xx observation.
    PageState,
    /// Page fetch state of a 304: hash and link count are kept.
    PageSeen,
    /// One current outlink of a page.
    OutlinkPut,
    /// An outlink that is gone from the page.
    OutlinkDelete,
    /// A live edge with its latest attributes.
    BacklinkPut,
    /// first_seen of an edge (inverted timestamp).
    BacklinkFirstSeen,
    /// last_seen of an edge seen again unchanged (304).
    BacklinkLastSeen,
    /// An edge found missing from its page.
    BacklinkLost,
    /// [`Stmt::BacklinkPut`] of an external edge, in `source_links`.
    SourceLinkPut,
    /// [`Stmt::BacklinkFirstSeen`] of an external edge, in `source_links`.
    SourceLinkFirstSeen,
    /// [`Stmt::BacklinkLastSeen`] of an external edge, in `source_links`.
    SourceLinkLastSeen,
    /// [`Stmt::BacklinkLost`] of an external edge, in `source_links`.
    SourceLinkLost,
    /// A page's live link counts to a target domain.
    RefPagePut,
    /// first_seen of a page's links to a target domain (inverted timestamp).
    RefPageFirstSeen,
    /// last_seen of a page's links to a target domain (304).
    RefPageLastSeen,
    /// A page that no longer links a target domain.
    RefPageLost,
    /// The page links the target domain now.
    RefLivePut,
    /// The page no longer links the target domain.
    RefLiveDelete,
    /// A link or refdomain event.
    Event,
    /// A refdomain loss that was retracted.
    EventDelete,
    /// A day with events for a target domain.
    EventDay,
    /// A known registrable domain.
    Domain,
    /// Reads a page's partition: state and current outlinks.
    ReadPage,
    /// Reads whether a source domain has live pages linking a target domain.
    ReadRefLive,
    /// Reads a source domain's pages' rows for a target domain (when lost).
    ReadRefPagesLost,
    /// Reads a backlinks partition from a (target URL, source URL) cursor.
    ReadBacklinksDomain,
    /// Reads one target URL's backlinks in a bucket from a source URL cursor.
    ReadBacklinksUrl,
    /// Reads the referring pages of a target domain in a bucket.
    ReadRefdomains,
    /// Reads the days with events of a target domain.
    ReadEventDays,
    /// Reads one events partition in a time range.
    ReadEvents,
    /// Reads whether a domain is known.
    ReadDomain,
    /// Reads a source domain's external links in a bucket from a
    /// (source URL, target URL) cursor.
    ReadSourceLinks,
    /// Reads a page's last fetch (static columns only).
    ReadPageState,
    /// Reads the first known domains, in token order.
    ScanDomainsFirst,
    /// Reads the known domains after one, in token order.
    ScanDomains,
    /// Reads the first pages' fetch state, in token order.
    ScanPagesFirst,
    /// Reads the pages' fetch state after one page, in token order.
    ScanPages,
    /// An origin's last good robots.txt.
    RobotsPut,
    /// Reads an origin's last good robots.txt.
    ReadRobots,
    /// One domain's ranks from a rank run.
    RankPut,
    /// The last finished rank run.
    RankRunPut,
    /// Reads one domain's ranks.
    ReadRank,
    /// Reads the last finished rank run.
    ReadRankRun,
    /// Reads the first ranked domains, in token order.
    ScanRanksFirst,
    /// Reads the ranked domains after one, in token order.
    ScanRanks,
    /// The address a host answered from.
    HostAddrPut,
    /// Reads the addresses of a registrable domain's hosts.
    ReadHostAddrs,
}

impl Stmt {
    /// Every statement, for preparing them all at open.
    pub const ALL: [Stmt; 47] = [
        Stmt::PageState,
        Stmt::PageSeen,
        Stmt::OutlinkPut,
        Stmt::OutlinkDelete,
        Stmt::BacklinkPut,
        Stmt::BacklinkFirstSeen,
        Stmt::BacklinkLastSeen,
        Stmt::BacklinkLost,
        Stmt::SourceLinkPut,
        Stmt::SourceLinkFirstSeen,
        Stmt::SourceLinkLastSeen,
        Stmt::SourceLinkLost,
        Stmt::RefPagePut,
        Stmt::RefPageFirstSeen,
        Stmt::RefPageLastSeen,
        Stmt::RefPageLost,
        Stmt::RefLivePut,
        Stmt::RefLiveDelete,
        Stmt::Event,
        Stmt::EventDelete,
        Stmt::EventDay,
        Stmt::Domain,
        Stmt::ReadPage,
        Stmt::ReadRefLive,
        Stmt::ReadRefPagesLost,
        Stmt::ReadBacklinksDomain,
        Stmt::ReadBacklinksUrl,
        Stmt::ReadRefdomains,
        Stmt::ReadEventDays,
        Stmt::ReadEvents,
        Stmt::ReadDomain,
        Stmt::ReadSourceLinks,
        Stmt::ReadPageState,
        Stmt::ScanDomainsFirst,
        Stmt::ScanDomains,
        Stmt::ScanPagesFirst,
        Stmt::ScanPages,
        Stmt::RobotsPut,
        Stmt::ReadRobots,
        Stmt::RankPut,
        Stmt::RankRunPut,
        Stmt::ReadRank,
        Stmt::ReadRankRun,
        Stmt::ScanRanksFirst,
        Stmt::ScanRanks,
        Stmt::HostAddrPut,
        Stmt::ReadHostAddrs,
    ];

    /// The CQL text. Bind order is the order of the `?` markers.
    pub fn cql(self) -> &'static str {
        match self {
            Stmt::PageState => {
                "UPDATE pages USING TIMESTAMP ? SET status = ?, outcome = ?, fetched_at = ?, \
                 links = ?, content_hash = ? WHERE url = ?"
            }
            Stmt::PageSeen => {
                "UPDATE pages USING TIMESTAMP ? SET status = ?, outcome = ?, fetched_at = ? \
                 WHERE url = ?"
            }
            Stmt::OutlinkPut => {
                "UPDATE pages USING TIMESTAMP ? SET rel = ?, anchor = ?, placement = ?, kind = ? \
                 WHERE url = ? AND target_url = ?"
            }
            Stmt::OutlinkDelete => {
                "DELETE FROM pages USING TIMESTAMP ? WHERE url = ? AND target_url = ?"
            }
            Stmt::BacklinkPut => {
                "UPDATE backlinks USING TIMESTAMP ? SET anchor = ?, rel = ?, placement = ?, \
                 kind = ?, last_seen = ?, lost_at = 0, lost_reason = 0 \
                 WHERE target_domain = ? AND bucket = ? AND target_url = ? AND source_url = ?"
            }
            Stmt::BacklinkFirstSeen => {
                "UPDATE backlinks USING TIMESTAMP ? SET first_seen = ? \
                 WHERE target_domain = ? AND bucket = ? AND target_url = ? AND source_url = ?"
            }
            Stmt::BacklinkLastSeen => {
                "UPDATE backlinks USING TIMESTAMP ? SET last_seen = ? \
                 WHERE target_domain = ? AND bucket = ? AND target_url = ? AND source_url = ?"
            }
            Stmt::BacklinkLost => {
                "UPDATE backlinks USING TIMESTAMP ? SET lost_at = ?, lost_reason = ? \
                 WHERE target_domain = ? AND bucket = ? AND target_url = ? AND source_url = ?"
            }
            Stmt::SourceLinkPut => {
                "UPDATE source_links USING TIMESTAMP ? SET anchor = ?, rel = ?, placement = ?, \
                 kind = ?, last_seen = ?, lost_at = 0, lost_reason = 0 \
                 WHERE source_domain = ? AND bucket = ? AND source_url = ? AND target_url = ?"
            }
            Stmt::SourceLinkFirstSeen => {
                "UPDATE source_links USING TIMESTAMP ? SET first_seen = ? \
                 WHERE source_domain = ? AND bucket = ? AND source_url = ? AND target_url = ?"
            }
            Stmt::SourceLinkLastSeen => {
                "UPDATE source_links USING TIMESTAMP ? SET last_seen = ? \
                 WHERE source_domain = ? AND bucket = ? AND source_url = ? AND target_url = ?"
            }
            Stmt::SourceLinkLost => {
                "UPDATE source_links USING TIMESTAMP ? SET lost_at = ?, lost_reason = ? \
                 WHERE source_domain = ? AND bucket = ? AND source_url = ? AND target_url = ?"
            }
            Stmt::RefPagePut => {
                "UPDATE refdomain_pages USING TIMESTAMP ? SET links = ?, follow_links = ?, \
                 last_seen = ?, lost_at = 0 \
                 WHERE target_domain = ? AND bucket = ? AND source_domain = ? AND source_url = ?"
            }
            Stmt::RefPageFirstSeen => {
                "UPDATE refdomain_pages USING TIMESTAMP ? SET first_seen = ? \
                 WHERE target_domain = ? AND bucket = ? AND source_domain = ? AND source_url = ?"
            }
            Stmt::RefPageLastSeen => {
                "UPDATE refdomain_pages USING TIMESTAMP ? SET last_seen = ? \
                 WHERE target_domain = ? AND bucket = ? AND source_domain = ? AND source_url = ?"
            }
            Stmt::RefPageLost => {
                "UPDATE refdomain_pages USING TIMESTAMP ? SET links = 0, follow_links = 0, \
                 lost_at = ? \
                 WHERE target_domain = ? AND bucket = ? AND source_domain = ? AND source_url = ?"
            }
            Stmt::RefLivePut => {
                "INSERT INTO refdomain_live (target_domain, bucket, source_domain, source_url) \
                 VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
            }
            Stmt::RefLiveDelete => {
                "DELETE FROM refdomain_live USING TIMESTAMP ? \
                 WHERE target_domain = ? AND bucket = ? AND source_domain = ? AND source_url = ?"
            }
            Stmt::Event => {
                "INSERT INTO link_events (target_domain, day, bucket, at, kind, source_url, \
                 target_url, anchor, rel, placement, link_kind, lost_reason, old_anchor, \
                 old_rel, old_placement) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            }
            Stmt::EventDelete => {
                "DELETE FROM link_events USING TIMESTAMP ? WHERE target_domain = ? AND day = ? \
                 AND bucket = ? AND at = ? AND kind = ? AND source_url = ? AND target_url = ?"
            }
            Stmt::EventDay => "INSERT INTO event_days (target_domain, day) VALUES (?, ?)",
            Stmt::Domain => "INSERT INTO domains (domain) VALUES (?)",
            Stmt::ReadPage => {
                "SELECT fetched_at, content_hash, status, outcome, target_url, rel, anchor, \
                 placement, kind FROM pages WHERE url = ?"
            }
            Stmt::ReadRefPagesLost => {
                "SELECT links, lost_at FROM refdomain_pages \
                 WHERE target_domain = ? AND bucket = ? AND source_domain = ?"
            }
            Stmt::ReadRefLive => {
                "SELECT source_url FROM refdomain_live \
                 WHERE target_domain = ? AND bucket = ? AND source_domain = ? LIMIT 2"
            }
            Stmt::ReadBacklinksDomain => {
                "SELECT target_url, source_url, anchor, rel, placement, kind, first_seen, \
                 last_seen, lost_at, lost_reason FROM backlinks \
                 WHERE target_domain = ? AND bucket = ? AND (target_url, source_url) > (?, ?) \
                 LIMIT ?"
            }
            Stmt::ReadBacklinksUrl => {
                "SELECT target_url, source_url, anchor, rel, placement, kind, first_seen, \
                 last_seen, lost_at, lost_reason FROM backlinks \
                 WHERE target_domain = ? AND bucket = ? AND target_url = ? AND source_url > ? \
                 LIMIT ?"
            }
            Stmt::ReadRefdomains => {
                "SELECT source_domain, links, follow_links, first_seen, last_seen, lost_at \
                 FROM refdomain_pages WHERE target_domain = ? AND bucket = ?"
            }
            Stmt::ReadEventDays => {
                "SELECT day FROM event_days WHERE target_domain = ? AND day >= ? AND day <= ?"
            }
            Stmt::ReadEvents => {
                "SELECT at, kind, source_url, target_url, anchor, rel, placement, link_kind, \
                 lost_reason, old_anchor, old_rel, old_placement FROM link_events \
                 WHERE target_domain = ? AND day = ? AND bucket = ? AND at >= ? AND at < ?"
            }
            Stmt::ReadDomain => "SELECT domain FROM domains WHERE domain = ?",
            Stmt::ReadSourceLinks => {
                "SELECT target_url, source_url, anchor, rel, placement, kind, first_seen, \
                 last_seen, lost_at, lost_reason FROM source_links \
                 WHERE source_domain = ? AND bucket = ? AND (source_url, target_url) > (?, ?) \
                 LIMIT ?"
            }
            Stmt::ReadPageState => {
                "SELECT status, outcome, fetched_at FROM pages WHERE url = ? LIMIT 1"
            }
            Stmt::RobotsPut => {
                "INSERT INTO robots (origin, fetched_at, has_body, body) VALUES (?, ?, ?, ?) \
                 USING TIMESTAMP ?"
            }
            Stmt::ReadRobots => "SELECT fetched_at, has_body, body FROM robots WHERE origin = ?",
            Stmt::RankPut => {
                "INSERT INTO domain_ranks (domain, authority, pagerank, harmonic, trust, \
                 referring_domains, computed_at) VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            }
            Stmt::RankRunPut => {
                "INSERT INTO rank_runs (name, computed_at, nodes, arcs, harmonic_method, \
                 trusted) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            }
            Stmt::ReadRank => {
                "SELECT domain, authority, pagerank, harmonic, trust, referring_domains, \
                 computed_at FROM domain_ranks WHERE domain = ?"
            }
            Stmt::ReadRankRun => {
                "SELECT computed_at, nodes, arcs, harmonic_method, trusted FROM rank_runs \
                 WHERE name = ?"
            }
            Stmt::ScanRanksFirst => {
                "SELECT domain, authority, pagerank, harmonic, trust, referring_domains, \
                 computed_at FROM domain_ranks LIMIT ?"
            }
            Stmt::ScanRanks => {
                "SELECT domain, authority, pagerank, harmonic, trust, referring_domains, \
                 computed_at FROM domain_ranks WHERE token(domain) > token(?) LIMIT ?"
            }
            Stmt::HostAddrPut => {
                "INSERT INTO host_addrs (domain, host, ip, seen_at) VALUES (?, ?, ?, ?) \
                 USING TIMESTAMP ?"
            }
            Stmt::ReadHostAddrs => "SELECT host, ip, seen_at FROM host_addrs WHERE domain = ?",
            Stmt::ScanDomainsFirst => "SELECT domain FROM domains LIMIT ?",
            Stmt::ScanDomains => {
                "SELECT domain FROM domains WHERE token(domain) > token(?) LIMIT ?"
            }
            Stmt::ScanPagesFirst => {
                "SELECT DISTINCT url, status, outcome, fetched_at FROM pages LIMIT ?"
            }
            Stmt::ScanPages => {
                "SELECT DISTINCT url, status, outcome, fetched_at FROM pages \
                 WHERE token(url) > token(?) LIMIT ?"
            }
        }
    }

    /// Whether the statement writes.
    pub fn is_write(self) -> bool {
        !matches!(
            self,
            Stmt::ReadPage
                | Stmt::ReadRefLive
                | Stmt::ReadRefPagesLost
                | Stmt::ReadBacklinksDomain
                | Stmt::ReadBacklinksUrl
                | Stmt::ReadRefdomains
                | Stmt::ReadEventDays
                | Stmt::ReadEvents
                | Stmt::ReadDomain
                | Stmt::ReadSourceLinks
                | Stmt::ReadPageState
                | Stmt::ScanDomainsFirst
                | Stmt::ScanDomains
                | Stmt::ScanPagesFirst
                | Stmt::ScanPages
                | Stmt::ReadRobots
                | Stmt::ReadRank
                | Stmt::ReadRankRun
                | Stmt::ScanRanksFirst
                | Stmt::ScanRanks
                | Stmt::ReadHostAddrs
        )
    }
}

/// One bound statement, with the partition it touches (for batching:
/// unlogged batches only ever group statements of one partition).
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// The statement.
    pub stmt: Stmt,
    /// Its bound values, in marker order.
    pub values: Vec<CqlValue>,
    /// Table and partition key, joined with NUL.
    pub partition: String,
}

/// A page's first link to a target domain appeared, or its last one went:
/// whether the referring domain itself appeared or went depends on the
/// domain's other pages, which only a read can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The target domain.
    pub target_domain: String,
    /// The referring (source) domain.
    pub source_domain: String,
    /// True when the page's links to the domain appeared, false when lost.
    pub appeared: bool,
    /// The page's links were discovered (its first definite observation).
    pub discovered: bool,
    /// When the page was fetched before (`None`: never).
    pub fetched_before: Option<i64>,
}

impl Transition {
    /// The bound (target domain, bucket, source domain) of the source
    /// domain's rows for the target domain.
    pub fn source_key(&self, buckets: u32) -> Vec<CqlValue> {
        vec![
            text(&self.target_domain),
            CqlValue::Int(bucket(&self.source_domain, buckets)),
            text(&self.source_domain),
        ]
    }
}

/// The statements of one observation, in two phases: `graph` (edges,
/// refdomain rows, events, domains) is executed first, `page` (the page's
/// partition: state and outlink set) only after every graph write was
/// acknowledged. A crash in between replays identically, because the replay
/// diffs against the same, not yet updated, outlink set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Graph writes.
    pub graph: Vec<Write>,
    /// Page partition writes.
    pub page: Vec<Write>,
    /// Refdomain transitions to resolve with a read.
    pub transitions: Vec<Transition>,
    /// What the write changes.
    pub stats: WriteStats,
}

fn text(s: &str) -> CqlValue {
    CqlValue::Text(s.to_owned())
}

fn int(v: impl Into<i64>) -> CqlValue {
    CqlValue::Int(i32::try_from(v.into()).unwrap_or(i32::MAX))
}

fn big(v: i64) -> CqlValue {
    CqlValue::BigInt(v)
}

/// The `source_links` writes that mirror a stored backlinks row (none for
/// an internal edge): for a keyspace made before that table, whose edges
/// must be indexed once. They carry the row's own observation timestamps,
/// so they never override a newer write.
pub fn source_link_backfill(b: &crate::Backlink, buckets: u32) -> Vec<Write> {
    let l = &b.link;
    let a = Attrs::of(l);
    let (t, s) = (l.target_url.as_str(), l.source_url.as_str());
    let last = b.last_seen_ms;
    let put = vec![
        big(ts(last)),
        text(a.anchor),
        int(a.rel),
        int(a.placement),
        int(a.kind),
        big(last),
    ];
    let first = vec![big(first_seen_ts(b.first_seen_ms)), big(b.first_seen_ms)];
    let mut out: Vec<Write> = edge_key(Stmt::BacklinkPut, t, s, buckets, put)
        .chain(edge_key(Stmt::BacklinkFirstSeen, t, s, buckets, first))
        .collect();
    if let Some(lost) = b.lost_at_ms {
        let reason = b.lost_reason.map_or(0, |r| r as u8);
        let v = vec![big(ts(lost)), big(lost), int(reason)];
        out.extend(edge_key(Stmt::BacklinkLost, t, s, buckets, v));
    }
    out.retain(|w| {
        matches!(
            w.stmt,
            Stmt::SourceLinkPut | Stmt::SourceLinkFirstSeen | Stmt::SourceLinkLost
        )
    });
    out
}

/// The writes of one edge statement: its backlinks row and, for an
/// external edge, the same cells of its `source_links` row.
fn edge_key(
    stmt: Stmt,
    target: &str,
    source: &str,
    buckets: u32,
    lead: Vec<CqlValue>,
) -> impl Iterator<Item = Write> {
    let td = registrable_domain(url_host(target));
    let sd = registrable_domain(url_host(source));
    let mirror = match stmt {
        Stmt::BacklinkPut => Some(Stmt::SourceLinkPut),
        Stmt::BacklinkFirstSeen => Some(Stmt::SourceLinkFirstSeen),
        Stmt::BacklinkLastSeen => Some(Stmt::SourceLinkLastSeen),
        Stmt::BacklinkLost => Some(Stmt::SourceLinkLost),
        _ => None,
    }
    .filter(|_| td != sd)
    .map(|stmt| {
        let b = bucket(target, buckets);
        let mut values = lead.clone();
        values.extend([text(sd), CqlValue::Int(b), text(source), text(target)]);
        Write {
            stmt,
            values,
            partition: format!("source_links\0{sd}\0{b}"),
        }
    });
    let b = bucket(source, buckets);
    let mut values = lead;
    values.extend([text(td), CqlValue::Int(b), text(target), text(source)]);
    std::iter::once(Write {
        stmt,
        values,
        partition: format!("backlinks\0{td}\0{b}"),
    })
    .chain(mirror)
}

fn refpage_key(
    stmt: Stmt,
    td: &str,
    sd: &str,
    page: &str,
    buckets: u32,
    lead: Vec<CqlValue>,
) -> Write {
    let b = bucket(sd, buckets);
    let table = if matches!(stmt, Stmt::RefLivePut | Stmt::RefLiveDelete) {
        "refdomain_live"
    } else {
        "refdomain_pages"
    };
    let mut values = lead;
    values.extend([text(td), CqlValue::Int(b), text(sd), text(page)]);
    Write {
        stmt,
        values,
        partition: format!("{table}\0{td}\0{b}"),
    }
}

fn ref_live_put(td: &str, sd: &str, page: &str, t: i64, buckets: u32) -> Write {
    let b = bucket(sd, buckets);
    Write {
        stmt: Stmt::RefLivePut,
        values: vec![text(td), CqlValue::Int(b), text(sd), text(page), big(ts(t))],
        partition: format!("refdomain_live\0{td}\0{b}"),
    }
}

/// What some events carry besides the link.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventExtra<'a> {
    /// For a lost link, why.
    pub lost_reason: Option<LostReason>,
    /// For a changed link, its attributes before.
    pub before: Option<Attrs<'a>>,
}

/// The event rows (and their day index entry) of one event of the link
/// `(source, target)`.
pub fn event(
    target_domain: &str,
    t: i64,
    kind: EventKind,
    (source, target): (&str, &str),
    attrs: (&str, u8, u8, u8),
    extra: EventExtra<'_>,
    buckets: u32,
) -> [Write; 2] {
    let (anchor, rel, placement, link_kind) = attrs;
    let old = extra.before;
    let d = day(t);
    let b = bucket(source, buckets);
    [
        Write {
            stmt: Stmt::Event,
            values: vec![
                text(target_domain),
                CqlValue::Int(d),
                CqlValue::Int(b),
                big(t),
                int(kind as u8),
                text(source),
                text(target),
                text(anchor),
                int(rel),
                int(placement),
                int(link_kind),
                int(extra.lost_reason.map_or(0, |r| r as u8)),
                // old_rel is rel + 1, so 0 says "no before".
                text(old.map_or("", |b| b.anchor)),
                int(old.map_or(0, |b| u16::from(b.rel) + 1)),
                int(old.map_or(0, |b| b.placement)),
                big(ts(t)),
            ],
            partition: format!("link_events\0{target_domain}\0{d}\0{b}"),
        },
        Write {
            stmt: Stmt::EventDay,
            values: vec![text(target_domain), CqlValue::Int(d)],
            partition: format!("event_days\0{target_domain}"),
        },
    ]
}

/// The address `host` (of registrable domain `d`) answered from at `t`;
/// the latest observation wins.
fn host_addr_write(d: &str, host: &str, ip: std::net::IpAddr, t: i64) -> Write {
    Write {
        stmt: Stmt::HostAddrPut,
        values: vec![
            text(d),
            text(host),
            text(&ip.to_string()),
            big(t),
            big(ts(t)),
        ],
        partition: format!("host_addrs\0{d}"),
    }
}

/// One domain's ranks. A run without trust stores NaN there: CQL binds
/// here carry no nulls, and no rank is ever NaN.
pub fn rank_write(r: &crate::DomainRank) -> Write {
    Write {
        stmt: Stmt::RankPut,
        values: vec![
            text(&r.domain),
            CqlValue::Double(r.authority),
            CqlValue::Double(r.pagerank),
            CqlValue::Double(r.harmonic),
            CqlValue::Double(r.trust.unwrap_or(f64::NAN)),
            big(i64::try_from(r.referring_domains).unwrap_or(i64::MAX)),
            big(r.computed_at_ms),
            big(ts(r.computed_at_ms)),
        ],
        partition: format!("domain_ranks\0{}", r.domain),
    }
}

/// The last finished rank run (one row, name `last`).
pub fn rank_run_write(r: &crate::RankRun) -> Write {
    let n = |v: u64| big(i64::try_from(v).unwrap_or(i64::MAX));
    Write {
        stmt: Stmt::RankRunPut,
        values: vec![
            text("last"),
            big(r.computed_at_ms),
            n(r.nodes),
            n(r.arcs),
            text(&r.harmonic_method),
            n(r.trusted),
            big(ts(r.computed_at_ms)),
        ],
        partition: "rank_runs\0last".into(),
    }
}

fn domain_write(d: &str) -> Write {
    Write {
        stmt: Stmt::Domain,
        values: vec![text(d)],
        partition: format!("domains\0{d}"),
    }
}

/// The statements one page observation turns into, given its partition's
/// prior state: the link-change rules of [`crate::diff`], as CQL. A stale
/// observation only lowers first_seen of the page's current links (a cell
/// written to a row that does not exist would create it).
pub fn plan(page: &PageWrite, prior: &Prior, buckets: u32) -> Plan {
    let t = page.fetched_at_ms;
    let source = page.url.as_str();
    let sd = registrable_domain(url_host(source));
    let mut p = Plan::default();
    p.graph.push(domain_write(sd));
    if let Some(ip) = page.remote_ip {
        p.graph.push(host_addr_write(sd, url_host(source), ip, t));
    }
    match diff(page, prior) {
        Diff::Stale { links } => {
            let current: BTreeSet<&str> =
                prior.outlinks.iter().map(|o| o.target.as_str()).collect();
            let mut domains = BTreeSet::new();
            for l in links
                .iter()
                .filter(|l| current.contains(l.target_url.as_str()))
            {
                p.graph.extend(edge_key(
                    Stmt::BacklinkFirstSeen,
                    &l.target_url,
                    source,
                    buckets,
                    vec![big(first_seen_ts(t)), big(t)],
                ));
                if !l.is_internal() {
                    domains.insert(l.target_domain());
                }
            }
            for td in domains {
                p.graph.push(refpage_key(
                    Stmt::RefPageFirstSeen,
                    td,
                    sd,
                    source,
                    buckets,
                    vec![big(first_seen_ts(t)), big(t)],
                ));
            }
        }
        Diff::Keep => p.page.push(page_state(page)),
        Diff::Unchanged {
            seen,
            target_domains,
        } => {
            for o in seen {
                p.graph.extend(edge_key(
                    Stmt::BacklinkLastSeen,
                    &o.target,
                    source,
                    buckets,
                    vec![big(ts(t)), big(t)],
                ));
            }
            for td in target_domains {
                p.graph.push(refpage_key(
                    Stmt::RefPageLastSeen,
                    td,
                    sd,
                    source,
                    buckets,
                    vec![big(ts(t)), big(t)],
                ));
            }
            if prior.fetched_at_ms.is_some() {
                p.page.push(Write {
                    stmt: Stmt::PageSeen,
                    values: vec![
                        big(ts(t)),
                        int(page.status),
                        int(page.outcome),
                        big(t),
                        text(source),
                    ],
                    partition: format!("pages\0{source}"),
                });
            }
        }
        Diff::Replace(c) => replace(page, &c, buckets, &mut p),
    }
    p
}

fn page_state(page: &PageWrite) -> Write {
    let t = page.fetched_at_ms;
    Write {
        stmt: Stmt::PageState,
        values: vec![
            big(ts(t)),
            int(page.status),
            int(page.outcome),
            big(t),
            int(i64::try_from(page.links.len()).unwrap_or(i64::MAX)),
            // The hash's bits, as CQL has no unsigned bigint.
            big(i64::from_ne_bytes(page.content_hash.to_ne_bytes())),
            text(&page.url),
        ],
        partition: format!("pages\0{}", page.url),
    }
}

fn event_writes(e: &DiffEvent<'_>, t: i64, buckets: u32) -> [Write; 2] {
    let a = e.attrs;
    let extra = EventExtra {
        lost_reason: e.lost_reason,
        before: e.before,
    };
    event(
        e.target_domain,
        t,
        e.kind,
        (e.source, e.target),
        (a.anchor, a.rel, a.placement, a.kind),
        extra,
        buckets,
    )
}

fn replace(page: &PageWrite, c: &Change<'_>, buckets: u32, p: &mut Plan) {
    let t = page.fetched_at_ms;
    let source = page.url.as_str();
    let sd = registrable_domain(url_host(source));
    let mut targets = BTreeSet::new();
    for u in &c.upserts {
        let l = u.link;
        targets.insert(l.target_domain());
        let a = Attrs::of(l);
        p.graph.extend(edge_key(
            Stmt::BacklinkPut,
            &l.target_url,
            source,
            buckets,
            vec![
                big(ts(t)),
                text(a.anchor),
                int(a.rel),
                int(a.placement),
                int(a.kind),
                big(t),
            ],
        ));
        p.graph.extend(edge_key(
            Stmt::BacklinkFirstSeen,
            &l.target_url,
            source,
            buckets,
            vec![big(first_seen_ts(t)), big(t)],
        ));
        p.page.push(Write {
            stmt: Stmt::OutlinkPut,
            values: vec![
                big(ts(t)),
                int(a.rel),
                text(a.anchor),
                int(a.placement),
                int(a.kind),
                text(source),
                text(&l.target_url),
            ],
            partition: format!("pages\0{source}"),
        });
    }
    for o in &c.lost {
        p.graph.extend(edge_key(
            Stmt::BacklinkLost,
            &o.target,
            source,
            buckets,
            vec![big(ts(t)), big(t), int(c.lost_reason as u8)],
        ));
        p.page.push(Write {
            stmt: Stmt::OutlinkDelete,
            values: vec![big(ts(t)), text(source), text(&o.target)],
            partition: format!("pages\0{source}"),
        });
    }
    for e in &c.events {
        p.graph.extend(event_writes(e, t, buckets));
    }
    for td in targets {
        p.graph.push(domain_write(td));
    }
    // Per-page refdomain rows: fully determined by the old and new sets.
    for r in &c.refdomains {
        let td = r.target_domain.as_str();
        if r.seen() {
            p.graph.push(refpage_key(
                Stmt::RefPagePut,
                td,
                sd,
                source,
                buckets,
                vec![big(ts(t)), int(r.after.links), int(r.after.follow), big(t)],
            ));
            p.graph.push(refpage_key(
                Stmt::RefPageFirstSeen,
                td,
                sd,
                source,
                buckets,
                vec![big(first_seen_ts(t)), big(t)],
            ));
            p.graph.push(ref_live_put(td, sd, source, t, buckets));
        } else {
            p.graph.push(refpage_key(
                Stmt::RefPageLost,
                td,
                sd,
                source,
                buckets,
                vec![big(ts(t)), big(t)],
            ));
            p.graph.push(refpage_key(
                Stmt::RefLiveDelete,
                td,
                sd,
                source,
                buckets,
                vec![big(ts(t))],
            ));
        }
        if let Some(appeared) = r.transition() {
            p.transitions.push(Transition {
                target_domain: td.to_owned(),
                source_domain: sd.to_owned(),
                appeared,
                discovered: c.discovered,
                fetched_before: c.fetched_before,
            });
        }
    }
    p.stats = c.stats;
    p.page.push(page_state(page));
}

/// The writes a transition makes, given the source domain's other live
/// pages (read from refdomain_live, this page excluded) and, for a domain
/// that comes back, when it was lost (read from refdomain_pages): a domain
/// appears when this page is its only live one and goes when none is left,
/// and a loss that was not one is retracted ([`crate::diff::refdomain_change`]).
pub fn transition_events(
    tr: &Transition,
    others_live: bool,
    lost_at_ms: Option<i64>,
    t: i64,
    buckets: u32,
) -> Vec<Write> {
    let change = refdomain_change(
        others_live || !tr.appeared,
        others_live || tr.appeared,
        tr.discovered,
        lost_at_ms,
        tr.fetched_before,
    );
    match change {
        RefdomainChange::None => Vec::new(),
        RefdomainChange::Event(kind) => event(
            &tr.target_domain,
            t,
            kind,
            (&tr.source_domain, ""),
            ("", 0, Placement::Content.code(), 0),
            EventExtra::default(),
            buckets,
        )
        .into(),
        RefdomainChange::Retract { lost_at_ms } => {
            let (d, b) = (day(lost_at_ms), bucket(&tr.source_domain, buckets));
            vec![Write {
                stmt: Stmt::EventDelete,
                // Above the loss event's own timestamp, so a replay of it
                // stays deleted.
                values: vec![
                    big(ts(lost_at_ms) + 1),
                    text(&tr.target_domain),
                    CqlValue::Int(d),
                    CqlValue::Int(b),
                    big(lost_at_ms),
                    int(EventKind::LostRefdomain as u8),
                    text(&tr.source_domain),
                    text(""),
                ],
                partition: format!("link_events\0{}\0{d}\0{b}", tr.target_domain),
            }]
        }
    }
}

/// Splits statements into unlogged batches: one partition per batch, at most
/// `max` statements each, in first-appearance order of the partitions.
pub fn batches(writes: Vec<Write>, max: usize) -> Vec<Vec<Write>> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<Write>> = BTreeMap::new();
    for w in writes {
        if !groups.contains_key(&w.partition) {
            order.push(w.partition.clone());
        }
        groups.entry(w.partition.clone()).or_default().push(w);
    }
    let mut out = Vec::new();
    for key in order {
        let Some(group) = groups.remove(&key) else {
            continue;
        };
        let mut chunk = Vec::new();
        for w in group {
            chunk.push(w);
            if chunk.len() == max.max(1) {
                out.push(std::mem::take(&mut chunk));
            }
        }
        if !chunk.is_empty() {
            out.push(chunk);
        }
    }
    out
}

/// The CQL statements of `schema` (deploy/scylla/schema.cql), comments
/// removed, for keyspace `keyspace` at `replication_factor`.
pub fn schema_statements(schema: &str, keyspace: &str, replication_factor: u32) -> Vec<String> {
    let body: String = schema
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    body.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.starts_with("CREATE KEYSPACE") {
                s.replacen(
                    "IF NOT EXISTS linkgraph",
                    &format!("IF NOT EXISTS {keyspace}"),
                    1,
                )
                .replacen(
                    "'replication_factor': 3",
                    &format!("'replication_factor': {replication_factor}"),
                    1,
                )
            } else {
                s.to_owned()
            }
        })
        .collect()
}
