//! The link-intelligence reports: anchors, top linked pages, broken links,
//! linked domains (outlinks) and link intersect. Each is one function over a
//! [`Reader`], used by the CLI and the HTTP API alike, returning the
//! documented JSON shape as a serializable value.
//!
//! Shared rules: external links only (as `refdomains` counts them), filtered
//! by [`Status`]; rows in the stated order, cut at `limit`; times RFC 3339
//! UTC. A link is "follow" when it has none of nofollow, sponsored or ugc.

use std::collections::{BTreeMap, HashMap};

use linkgraph_core::{format_rfc3339_ms, registrable_domain, url_host};
use linkgraph_store::{
    Backlink, BacklinkQuery, OutlinkQuery, PageState, Status, Target, backlink_cursor,
    outlink_cursor,
};
use serde::Serialize;

use crate::overview::{AnchorKind, anchor_kind};
use crate::{QueryError, Reader};

/// Rows per store read while a report streams links.
const CHUNK: usize = 1000;

/// The HTTP status a report shows for a URL's last fetch (see
/// [`PageState::http_status`]); `None` when it was never fetched.
pub fn http_status(state: Option<&PageState>) -> Option<u32> {
    state?.http_status()
}

/// True for the statuses a broken-links report lists: 404 and 410.
pub fn is_broken(status: Option<u32>) -> bool {
    matches!(status, Some(404 | 410))
}

/// One anchor text of a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorRow {
    /// The normalized anchor (an image link's alt text; `""` when empty).
    pub anchor: String,
    /// Its class: branded, url, other or empty (see [`anchor_kind`]).
    pub kind: AnchorKind,
    /// External links with it.
    pub links: u64,
    /// Distinct referring domains using it.
    pub refdomains: u64,
    /// Of the links, follow ones.
    pub follow_links: u64,
    /// Earliest first_seen of those links.
    pub first_seen: String,
    /// Latest last_seen of those links.
    pub last_seen: String,
}

/// `anchors`: the anchor texts pointing at a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anchors {
    /// The target as understood: registrable domain or canonical URL.
    pub target: String,
    /// By refdomains desc, then links desc, then anchor asc.
    pub anchors: Vec<AnchorRow>,
}

/// One linked page of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageRow {
    /// The page's canonical URL.
    pub url: String,
    /// External links to it.
    pub links: u64,
    /// Distinct referring domains.
    pub refdomains: u64,
    /// Of the links, follow ones.
    pub follow_links: u64,
    /// The last HTTP status of the URL; `None` when never answered.
    pub http_status: Option<u32>,
}

/// `pages`: a domain's pages by the links they earn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pages {
    /// The registrable domain.
    pub target: String,
    /// By refdomains desc, then links desc, then url asc.
    pub pages: Vec<PageRow>,
}

/// One linked domain of a source domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkedDomain {
    /// The target registrable domain.
    pub domain: String,
    /// Links to it.
    pub links: u64,
    /// Of those, follow ones.
    pub follow_links: u64,
}

/// `outlinks`: the domains a domain links to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outlinks {
    /// The source registrable domain.
    pub source: String,
    /// How many domains it links to (before `limit`).
    pub linked_domains: usize,
    /// By links desc, then domain asc.
    pub domains: Vec<LinkedDomain>,
}

/// One referring domain of a link intersect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntersectRow {
    /// The referring registrable domain.
    pub domain: String,
    /// How many of the targets it links to.
    pub targets_linked: usize,
    /// Its links per target (0 where none).
    pub links: BTreeMap<String, u64>,
}

/// `intersect`: domains that link to several targets and none of the
/// excluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Intersect {
    /// The targets, as registrable domains.
    pub targets: Vec<String>,
    /// The excluded domains.
    pub exclude: Vec<String>,
    /// By targets_linked desc, then total links desc, then domain asc.
    pub domains: Vec<IntersectRow>,
}

/// Which links a broken-links report checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Direction {
    /// Backlinks of the domain whose target answers 404 or 410.
    #[default]
    Inbound,
    /// Links on the domain's pages to other domains' dead URLs.
    Outbound,
}

impl Direction {
    /// The lower-case name used in flags and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// One broken link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// The link and its history.
    pub backlink: Backlink,
    /// The status its target answered (404 or 410).
    pub http_status: u32,
}

/// One page of a broken-links report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokenPage {
    /// The rows, in store order (target then source URL inbound, source
    /// then target URL outbound).
    pub links: Vec<BrokenLink>,
    /// Cursor after the last row; `None` when there are no more.
    pub next: Option<String>,
}

/// Numbers the source domains of the links a report reads, by their
/// source host: one hash lookup per link instead of a Public Suffix List
/// walk and a string set insert per group.
#[derive(Default)]
pub(crate) struct DomainIds {
    by_host: HashMap<String, u32>,
    by_domain: HashMap<String, u32>,
}

impl DomainIds {
    /// The number of `source_url`'s registrable domain.
    pub(crate) fn of(&mut self, source_url: &str) -> u32 {
        let host = url_host(source_url);
        if let Some(id) = self.by_host.get(host) {
            return *id;
        }
        let domain = registrable_domain(host);
        let next = self.by_domain.len() as u32;
        let id = *self.by_domain.entry(domain.to_owned()).or_insert(next);
        self.by_host.insert(host.to_owned(), id);
        id
    }
}

/// Counts of one group of links: the shared aggregation of the reports.
#[derive(Default)]
struct Tally {
    links: u64,
    follow: u64,
    domains: std::collections::HashSet<u32>,
    first_ms: i64,
    last_ms: i64,
}

impl Tally {
    fn add(&mut self, b: &Backlink, domain: u32) {
        if self.links == 0 {
            (self.first_ms, self.last_ms) = (b.first_seen_ms, b.last_seen_ms);
        }
        self.links += 1;
        self.follow += u64::from(b.link.rel.is_follow());
        self.first_ms = self.first_ms.min(b.first_seen_ms);
        self.last_ms = self.last_ms.max(b.last_seen_ms);
        self.domains.insert(domain);
    }
}

/// Adds `b` to the tally of `key` without copying a key already there.
fn tally(groups: &mut HashMap<String, Tally>, key: &str, b: &Backlink, domain: u32) {
    match groups.get_mut(key) {
        Some(t) => t.add(b, domain),
        None => groups.entry(key.to_owned()).or_default().add(b, domain),
    }
}

/// The registrable domain a target belongs to.
pub fn target_domain(target: &Target) -> &str {
    match target {
        Target::Domain(d) => d,
        Target::Url(u) => registrable_domain(url_host(u)),
    }
}

/// A target as echoed in reports.
pub fn target_label(target: &Target) -> &str {
    match target {
        Target::Domain(d) | Target::Url(d) => d,
    }
}

impl Reader {
    /// Calls `f` on every external backlink of `target` with `status`, in
    /// store order.
    pub(crate) async fn each_backlink(
        &self,
        target: &Target,
        status: Status,
        mut f: impl FnMut(Backlink),
    ) -> Result<(), QueryError> {
        let mut after = None;
        loop {
            let page = self
                .store
                .backlinks(BacklinkQuery {
                    target: target.clone(),
                    include_internal: false,
                    status,
                    limit: CHUNK,
                    after,
                })
                .await?;
            page.items.into_iter().for_each(&mut f);
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// The anchor texts of `target`'s backlinks.
    pub async fn anchors(
        &self,
        target: &Target,
        status: Status,
        limit: Option<usize>,
    ) -> Result<Anchors, QueryError> {
        self.ensure_known(target_domain(target)).await?;
        let mut by_anchor: HashMap<String, Tally> = HashMap::new();
        let mut ids = DomainIds::default();
        self.each_backlink(target, status, |b| {
            let d = ids.of(&b.link.source_url);
            tally(&mut by_anchor, &b.link.anchor, &b, d);
        })
        .await?;
        let mut anchors: Vec<AnchorRow> = by_anchor
            .into_iter()
            .map(|(anchor, t)| AnchorRow {
                kind: anchor_kind(&anchor, target_domain(target)),
                anchor,
                links: t.links,
                refdomains: t.domains.len() as u64,
                follow_links: t.follow,
                first_seen: format_rfc3339_ms(t.first_ms),
                last_seen: format_rfc3339_ms(t.last_ms),
            })
            .collect();
        anchors.sort_by(|a, b| {
            (b.refdomains, b.links)
                .cmp(&(a.refdomains, a.links))
                .then_with(|| a.anchor.cmp(&b.anchor))
        });
        anchors.truncate(limit.unwrap_or(usize::MAX));
        Ok(Anchors {
            target: target_label(target).to_owned(),
            anchors,
        })
    }

    /// The pages of `domain` by the external links they earn, with each
    /// URL's last HTTP status.
    pub async fn pages(
        &self,
        domain: &str,
        status: Status,
        limit: Option<usize>,
    ) -> Result<Pages, QueryError> {
        self.ensure_known(domain).await?;
        let mut by_url: HashMap<String, Tally> = HashMap::new();
        let mut ids = DomainIds::default();
        let target = Target::Domain(domain.to_owned());
        self.each_backlink(&target, status, |b| {
            let d = ids.of(&b.link.source_url);
            tally(&mut by_url, &b.link.target_url, &b, d);
        })
        .await?;
        let mut pages: Vec<PageRow> = by_url
            .into_iter()
            .map(|(url, t)| PageRow {
                url,
                links: t.links,
                refdomains: t.domains.len() as u64,
                follow_links: t.follow,
                http_status: None,
            })
            .collect();
        pages.sort_by(|a, b| {
            (b.refdomains, b.links)
                .cmp(&(a.refdomains, a.links))
                .then_with(|| a.url.cmp(&b.url))
        });
        pages.truncate(limit.unwrap_or(usize::MAX));
        for chunk in pages.chunks_mut(CHUNK) {
            let urls: Vec<String> = chunk.iter().map(|p| p.url.clone()).collect();
            let states = self.store.page_states(&urls).await?;
            for (p, s) in chunk.iter_mut().zip(&states) {
                p.http_status = http_status(s.as_ref());
            }
        }
        Ok(Pages {
            target: domain.to_owned(),
            pages,
        })
    }

    /// The domains `domain`'s pages link to.
    pub async fn outlinks(
        &self,
        domain: &str,
        status: Status,
        limit: Option<usize>,
    ) -> Result<Outlinks, QueryError> {
        self.ensure_known(domain).await?;
        let mut by_domain: HashMap<String, (u64, u64)> = HashMap::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .outlinks(OutlinkQuery {
                    domain: domain.to_owned(),
                    status,
                    limit: CHUNK,
                    after,
                })
                .await?;
            for b in &page.items {
                let e = by_domain
                    .entry(b.link.target_domain().to_owned())
                    .or_default();
                e.0 += 1;
                e.1 += u64::from(b.link.rel.is_follow());
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let mut domains: Vec<LinkedDomain> = by_domain
            .into_iter()
            .map(|(domain, (links, follow_links))| LinkedDomain {
                domain,
                links,
                follow_links,
            })
            .collect();
        domains.sort_by(|a, b| b.links.cmp(&a.links).then_with(|| a.domain.cmp(&b.domain)));
        let linked_domains = domains.len();
        domains.truncate(limit.unwrap_or(usize::MAX));
        Ok(Outlinks {
            source: domain.to_owned(),
            linked_domains,
            domains,
        })
    }

    /// The referring domains that link to at least `min_targets` of
    /// `targets` (default: all) and to none of `exclude`.
    pub async fn intersect(
        &self,
        targets: &[String],
        exclude: &[String],
        min_targets: Option<usize>,
        status: Status,
        limit: Option<usize>,
    ) -> Result<Intersect, QueryError> {
        let mut targets_u: Vec<String> = Vec::new();
        for t in targets {
            if !targets_u.contains(t) {
                targets_u.push(t.clone());
            }
        }
        if targets_u.is_empty() {
            return Err(QueryError::BadArgument(
                "intersect needs at least one target domain".into(),
            ));
        }
        let min = min_targets.unwrap_or(targets_u.len());
        if min == 0 || min > targets_u.len() {
            return Err(QueryError::BadArgument(format!(
                "--min-targets must be between 1 and the number of targets ({})",
                targets_u.len()
            )));
        }
        for d in targets_u.iter().chain(exclude) {
            self.ensure_known(d).await?;
        }
        let mut banned: std::collections::HashSet<String> =
            targets_u.iter().chain(exclude).cloned().collect();
        for e in exclude {
            for rd in self.store.refdomains(e, status).await? {
                banned.insert(rd.domain);
            }
        }
        let mut rows: HashMap<String, BTreeMap<String, u64>> = HashMap::new();
        for t in &targets_u {
            for rd in self.store.refdomains(t, status).await? {
                if banned.contains(&rd.domain) {
                    continue;
                }
                rows.entry(rd.domain)
                    .or_insert_with(|| targets_u.iter().map(|t| (t.clone(), 0)).collect())
                    .insert(t.clone(), rd.links);
            }
        }
        let mut domains: Vec<IntersectRow> = rows
            .into_iter()
            .map(|(domain, links)| IntersectRow {
                domain,
                targets_linked: links.values().filter(|n| **n > 0).count(),
                links,
            })
            .filter(|r| r.targets_linked >= min)
            .collect();
        let total = |r: &IntersectRow| r.links.values().sum::<u64>();
        domains.sort_by(|a, b| {
            (b.targets_linked, total(b))
                .cmp(&(a.targets_linked, total(a)))
                .then_with(|| a.domain.cmp(&b.domain))
        });
        domains.truncate(limit.unwrap_or(usize::MAX));
        Ok(Intersect {
            targets: targets_u,
            exclude: exclude.to_vec(),
            domains,
        })
    }

    /// One page of `domain`'s broken links in `direction`, after `cursor`
    /// (a [`BrokenPage::next`]); at most `limit` rows. Cursors are keyset
    /// positions, so they stay valid while a crawl writes.
    pub async fn broken_page(
        &self,
        domain: &str,
        direction: Direction,
        status: Status,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<BrokenPage, QueryError> {
        let limit = limit.max(1);
        let mut out = BrokenPage::default();
        let mut after = cursor;
        let mut known: HashMap<String, Option<u32>> = HashMap::new();
        loop {
            let page = match direction {
                Direction::Inbound => {
                    self.store
                        .backlinks(BacklinkQuery {
                            target: Target::Domain(domain.to_owned()),
                            include_internal: false,
                            status,
                            limit: CHUNK,
                            after: after.clone(),
                        })
                        .await?
                }
                Direction::Outbound => {
                    self.store
                        .outlinks(OutlinkQuery {
                            domain: domain.to_owned(),
                            status,
                            limit: CHUNK,
                            after: after.clone(),
                        })
                        .await?
                }
            };
            let ask: Vec<String> = {
                let mut v: Vec<String> = page
                    .items
                    .iter()
                    .map(|b| b.link.target_url.clone())
                    .filter(|u| !known.contains_key(u))
                    .collect();
                v.sort();
                v.dedup();
                v
            };
            let states = self.store.page_states(&ask).await?;
            for (u, s) in ask.into_iter().zip(&states) {
                known.insert(u, http_status(s.as_ref()));
            }
            let cursor_of = match direction {
                Direction::Inbound => backlink_cursor,
                Direction::Outbound => outlink_cursor,
            };
            for b in page.items {
                let st = known.get(&b.link.target_url).copied().flatten();
                if !is_broken(st) {
                    continue;
                }
                if out.links.len() == limit {
                    out.next = out.links.last().map(|l| cursor_of(&l.backlink));
                    return Ok(out);
                }
                out.links.push(BrokenLink {
                    backlink: b,
                    http_status: st.unwrap_or(0),
                });
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
            if known.len() > 100_000 {
                known.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_show_what_was_answered() {
        let st = |status| PageState {
            status,
            outcome: 1,
            fetched_at_ms: 1,
        };
        assert_eq!(http_status(None), None);
        assert_eq!(http_status(Some(&st(0))), None);
        assert_eq!(http_status(Some(&st(304))), Some(200));
        assert_eq!(http_status(Some(&st(301))), Some(301));
        assert!(is_broken(Some(410)) && is_broken(Some(404)));
        assert!(!is_broken(Some(500)) && !is_broken(None));
    }
}

/// Which backlinks a filtered listing keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BacklinkFilter {
    /// `Some(Rel::follow())`: follow links only; else links with every flag given.
    pub rel: Option<linkgraph_core::Rel>,
    /// Links in this part of the page only.
    pub placement: Option<linkgraph_core::Placement>,
    /// Links first seen at or after this time (ms).
    pub since_ms: Option<i64>,
}

impl BacklinkFilter {
    /// True when `b` passes.
    pub fn admits(&self, b: &Backlink) -> bool {
        let rel_ok = match self.rel {
            None => true,
            Some(r) if r.is_follow() => b.link.rel.is_follow(),
            Some(r) => b.link.rel.contains(r),
        };
        rel_ok
            && self.placement.is_none_or(|p| b.link.placement == p)
            && self.since_ms.is_none_or(|t| b.first_seen_ms >= t)
    }
}

/// One page of filtered backlinks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilteredPage {
    /// The rows, by target URL then source URL.
    pub links: Vec<Backlink>,
    /// Cursor after the last row; `None` when there are no more.
    pub next: Option<String>,
}

impl Reader {
    /// One page of `target`'s backlinks that pass `filter`, after `cursor`
    /// (a [`FilteredPage::next`]); at most `limit` rows.
    pub async fn backlinks_page(
        &self,
        target: &Target,
        include_internal: bool,
        status: Status,
        filter: BacklinkFilter,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<FilteredPage, QueryError> {
        let limit = limit.max(1);
        let mut out = FilteredPage::default();
        let mut after = cursor;
        loop {
            let page = self
                .store
                .backlinks(BacklinkQuery {
                    target: target.clone(),
                    include_internal,
                    status,
                    limit: if filter == BacklinkFilter::default() {
                        limit + 1
                    } else {
                        CHUNK
                    },
                    after,
                })
                .await?;
            for b in page.items.into_iter().filter(|b| filter.admits(b)) {
                if out.links.len() == limit {
                    out.next = out.links.last().map(backlink_cursor);
                    return Ok(out);
                }
                out.links.push(b);
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }
}
