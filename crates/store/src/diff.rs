//! The link-change rules, written once: what one page observation changes
//! in the link graph, given the page's previous outlink set. Pure, with no
//! I/O: every backend reads the prior state its own way, calls [`diff`], and
//! only persists the result.
//!
//! The rules:
//! * An observation older than the stored one is **stale**: it may only move
//!   `first_seen` earlier, of rows that exist; it never rolls state back.
//! * A temporary failure (**keep**) changes no link.
//! * A 304 (**unchanged**) sees every current outlink again.
//! * Otherwise the new set **replaces** the old: links not in the old set
//!   are new (or came back), links of the old set not in the new are lost.
//!   On the first definite observation of a page ([`Prior::known`] false)
//!   its links are of unknown age: they are *discovered*, not new, and so is
//!   a referring domain they bring.
//!   Each external target domain's live and follow link counts of this page
//!   before and after are reported; a referring domain appears or goes when
//!   the counts over all its pages cross zero ([`refdomain_event`]).
//! * A referring domain that went (its last linking page dropped the link)
//!   and comes back through a page last fetched before it went never went:
//!   that page may have linked all along, so the loss is retracted and no
//!   new domain is recorded ([`refdomain_change`]). The processing order of
//!   one recrawl's pages decides nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use linkgraph_core::{Link, LinkKind, Rel, registrable_domain, url_host};

use crate::{EventKind, LinkSetUpdate, LostReason, PageWrite, WriteStats};

/// One current outlink of a page, with the attributes last stored for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outlink {
    /// The target URL.
    pub target: String,
    /// Rel bits.
    pub rel: u8,
    /// Anchor text.
    pub anchor: String,
    /// Placement code.
    pub placement: u8,
    /// 1 for a redirect.
    pub kind: u8,
}

impl Outlink {
    /// The outlink a stored link becomes.
    pub fn of(link: &Link) -> Outlink {
        let a = Attrs::of(link);
        Outlink {
            target: link.target_url.clone(),
            rel: a.rel,
            anchor: link.anchor.clone(),
            placement: a.placement,
            kind: a.kind,
        }
    }

    /// Its attributes.
    pub fn attrs(&self) -> Attrs<'_> {
        Attrs {
            anchor: &self.anchor,
            rel: self.rel,
            placement: self.placement,
            kind: self.kind,
        }
    }

    /// The registrable domain of its target.
    pub fn target_domain(&self) -> &str {
        registrable_domain(url_host(&self.target))
    }

    fn is_follow(&self) -> bool {
        Rel::from_bits(self.rel).is_follow()
    }
}

/// What a page's store held before this observation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prior {
    /// Fetch time of the stored observation; `None` for a new page.
    pub fetched_at_ms: Option<i64>,
    /// Content hash of the stored observation.
    pub content_hash: u64,
    /// The last stored fetch was definite (a 200, a redirect, a 404 or 410,
    /// a 304: see [`is_definite`]). With live outlinks the page is known
    /// either way; without both, its next links are discovered.
    pub known: bool,
    /// The current (live) outlink set.
    pub outlinks: Vec<Outlink>,
}

/// A link's stored attributes, as events and rows carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attrs<'a> {
    /// Anchor text.
    pub anchor: &'a str,
    /// Rel bits.
    pub rel: u8,
    /// Placement code.
    pub placement: u8,
    /// 1 for a redirect.
    pub kind: u8,
}

impl<'a> Attrs<'a> {
    /// The attributes of a link.
    pub fn of(link: &'a Link) -> Attrs<'a> {
        Attrs {
            anchor: &link.anchor,
            rel: link.rel.bits(),
            placement: link.placement.code(),
            kind: u8::from(link.kind == LinkKind::Redirect),
        }
    }
}

/// A link event the observation makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// `NewLink`, `DiscoveredLink`, `ChangedLink` or `LostLink`.
    pub kind: EventKind,
    /// The registrable domain of the target.
    pub target_domain: &'a str,
    /// The page.
    pub source: &'a str,
    /// The target URL.
    pub target: &'a str,
    /// For a changed link, its attributes before.
    pub before: Option<Attrs<'a>>,
    /// For a lost link, why.
    pub lost_reason: Option<LostReason>,
    /// The link's attributes: the new ones for a new link, the last stored
    /// ones for a lost link.
    pub attrs: Attrs<'a>,
}

/// One link of the observation, to write with its new attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upsert<'a> {
    /// The link as observed.
    pub link: &'a Link,
    /// Its target's registrable domain.
    pub target_domain: &'a str,
    /// The link was not live before: it is new, or it came back.
    pub appeared: bool,
}

/// Live links of one page to one target domain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Live links.
    pub links: i64,
    /// Of those, links without nofollow, sponsored or ugc.
    pub follow: i64,
}

/// How one page's links to one external target domain changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRefdomain {
    /// The target domain.
    pub target_domain: String,
    /// The page's live links to it before.
    pub before: Counts,
    /// The page's live links to it now.
    pub after: Counts,
}

impl PageRefdomain {
    /// `Some(true)` when the page's first link to the domain appeared,
    /// `Some(false)` when its last one went, `None` otherwise.
    pub fn transition(&self) -> Option<bool> {
        match (self.before.links > 0, self.after.links > 0) {
            (false, true) => Some(true),
            (true, false) => Some(false),
            _ => None,
        }
    }

    /// The page links the domain now: the referring domain was seen.
    pub fn seen(&self) -> bool {
        self.after.links > 0
    }
}

/// What a replacing observation changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change<'a> {
    /// Every link of the observation, in its order.
    pub upserts: Vec<Upsert<'a>>,
    /// The outlinks that were live and are not in the observation.
    pub lost: Vec<&'a Outlink>,
    /// Per external target domain of the old or new set, ordered by domain.
    pub refdomains: Vec<PageRefdomain>,
    /// New-, discovered- or changed-link events (observation order), then
    /// lost-link events.
    pub events: Vec<Event<'a>>,
    /// The page's links were discovered (its first definite observation):
    /// a referring domain they make live is discovered too.
    pub discovered: bool,
    /// When the page was fetched before (`None`: never).
    pub fetched_before: Option<i64>,
    /// Why the lost links were lost (their events carry it too).
    pub lost_reason: LostReason,
    /// What the write changes (`referring_domains` is left to the backend).
    pub stats: WriteStats,
}

/// What one observation changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diff<'a> {
    /// Older than the stored observation: the observed links were live at
    /// its time, so existing rows of them may only move `first_seen` earlier.
    Stale {
        /// The observed links.
        links: &'a [Link],
    },
    /// A temporary failure: the page keeps its links.
    Keep,
    /// A 304: every current outlink was seen again now.
    Unchanged {
        /// The current outlinks.
        seen: &'a [Outlink],
        /// Their external target domains.
        target_domains: BTreeSet<&'a str>,
    },
    /// The observation is the page's complete outlink set now.
    Replace(Change<'a>),
}

/// What `page` changes, given what its store held before (`prior`).
pub fn diff<'a>(page: &'a PageWrite, prior: &'a Prior) -> Diff<'a> {
    if prior.fetched_at_ms.is_some_and(|f| f > page.fetched_at_ms) {
        return Diff::Stale { links: &page.links };
    }
    let source_domain = registrable_domain(url_host(&page.url));
    match page.update {
        LinkSetUpdate::Keep => Diff::Keep,
        LinkSetUpdate::Unchanged => Diff::Unchanged {
            seen: &prior.outlinks,
            target_domains: prior
                .outlinks
                .iter()
                .map(Outlink::target_domain)
                .filter(|d| *d != source_domain)
                .collect(),
        },
        LinkSetUpdate::Replace => Diff::Replace(replace(page, prior, source_domain)),
    }
}

fn replace<'a>(page: &'a PageWrite, prior: &'a Prior, source_domain: &str) -> Change<'a> {
    let source = page.url.as_str();
    let old: HashMap<&str, &Outlink> = prior
        .outlinks
        .iter()
        .map(|o| (o.target.as_str(), o))
        .collect();
    let new: HashSet<&str> = page.links.iter().map(|l| l.target_url.as_str()).collect();
    let known = prior.known || !prior.outlinks.is_empty();
    let mut c = Change {
        discovered: !known,
        fetched_before: prior.fetched_at_ms,
        lost_reason: if page.noindex {
            LostReason::Noindex
        } else {
            lost_reason(page.outcome, page.status)
        },
        // Sized once: growing them link by link was a visible share of a
        // page write's allocations.
        upserts: Vec::with_capacity(page.links.len()),
        events: Vec::with_capacity(page.links.len()),
        ..Change::default()
    };
    let appeared_kind = if known {
        EventKind::NewLink
    } else {
        EventKind::DiscoveredLink
    };
    let mut counts: BTreeMap<&str, (Counts, Counts)> = BTreeMap::new();
    for link in &page.links {
        let appeared = !old.contains_key(link.target_url.as_str());
        let target_domain = registrable_domain(url_host(&link.target_url));
        c.stats.edges += 1;
        if appeared {
            c.stats.new_edges += 1;
            c.events.push(Event {
                kind: appeared_kind,
                target_domain,
                source,
                target: &link.target_url,
                attrs: Attrs::of(link),
                before: None,
                lost_reason: None,
            });
        } else if let Some(o) = old.get(link.target_url.as_str()) {
            let (was, now) = (o.attrs(), Attrs::of(link));
            if (was.anchor, was.rel, was.placement) != (now.anchor, now.rel, now.placement) {
                c.events.push(Event {
                    kind: EventKind::ChangedLink,
                    target_domain,
                    source,
                    target: &link.target_url,
                    attrs: now,
                    before: Some(was),
                    lost_reason: None,
                });
            }
        }
        if target_domain != source_domain {
            let after = &mut counts.entry(target_domain).or_default().1;
            after.links += 1;
            after.follow += i64::from(link.rel.is_follow());
        }
        c.upserts.push(Upsert {
            link,
            target_domain,
            appeared,
        });
    }
    for o in &prior.outlinks {
        let target_domain = o.target_domain();
        if target_domain != source_domain {
            let before = &mut counts.entry(target_domain).or_default().0;
            before.links += 1;
            before.follow += i64::from(o.is_follow());
        }
        if new.contains(o.target.as_str()) {
            continue;
        }
        c.stats.lost_edges += 1;
        c.events.push(Event {
            kind: EventKind::LostLink,
            target_domain,
            source,
            target: &o.target,
            attrs: o.attrs(),
            before: None,
            lost_reason: Some(c.lost_reason),
        });
        c.lost.push(o);
    }
    c.refdomains = counts
        .into_iter()
        .map(|(d, (before, after))| PageRefdomain {
            target_domain: d.to_owned(),
            before,
            after,
        })
        .collect();
    c.stats.changed = prior.fetched_at_ms.is_some()
        && (prior.content_hash != page.content_hash
            || old.len() != new.len()
            || c.stats.new_edges > 0);
    c
}

/// Why an observation that replaces a page's links loses the ones missing
/// from it: the page is gone (404, 410), redirects, or dropped them.
pub fn lost_reason(outcome: i32, status: u32) -> LostReason {
    use linkgraph_proto::FetchOutcome;
    match FetchOutcome::try_from(outcome) {
        Ok(FetchOutcome::HttpError) if matches!(status, 404 | 410) => LostReason::PageGone,
        Ok(FetchOutcome::Redirect) => LostReason::PageRedirected,
        _ => LostReason::Removed,
    }
}

/// Whether a stored observation (fetch outcome and HTTP status) told the
/// page's outlink set: it makes the page [`Prior::known`].
pub fn is_definite(outcome: i32, status: u32) -> bool {
    linkgraph_proto::FetchOutcome::try_from(outcome).is_ok_and(|o| o.is_definite(status))
}

/// What a change in a referring domain's liveness records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefdomainChange {
    /// Nothing: the domain stays live, or stays lost.
    None,
    /// This event.
    Event(EventKind),
    /// The domain's loss, recorded at this time, was not one: delete that
    /// event, and record no new domain.
    Retract {
        /// When the loss was recorded (ms).
        lost_at_ms: i64,
    },
}

/// What a referring domain's change records: [`refdomain_event`], except
/// that a domain lost at `lost_at_ms` that comes back through a page fetched
/// before that (`fetched_before`, `None` for a first fetch) retracts the loss.
pub fn refdomain_change(
    live_before: bool,
    live_after: bool,
    discovered: bool,
    lost_at_ms: Option<i64>,
    fetched_before: Option<i64>,
) -> RefdomainChange {
    match refdomain_event(live_before, live_after, discovered) {
        Some(EventKind::NewRefdomain | EventKind::DiscoveredRefdomain)
            if lost_at_ms.is_some_and(|lost| fetched_before.is_none_or(|f| f < lost)) =>
        {
            RefdomainChange::Retract {
                lost_at_ms: lost_at_ms.unwrap_or_default(),
            }
        }
        Some(kind) => RefdomainChange::Event(kind),
        None => RefdomainChange::None,
    }
}

/// The referring-domain event of a change in a domain's liveness: whether
/// any page of the source domain linked the target domain before, whether
/// any does now, and whether the page that changed it was discovered.
pub fn refdomain_event(live_before: bool, live_after: bool, discovered: bool) -> Option<EventKind> {
    match (live_before, live_after) {
        (false, true) if discovered => Some(EventKind::DiscoveredRefdomain),
        (false, true) => Some(EventKind::NewRefdomain),
        (true, false) => Some(EventKind::LostRefdomain),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::link;
    use proptest::prelude::*;

    fn page(url: &str, t: i64, links: Vec<Link>) -> PageWrite {
        PageWrite {
            url: url.into(),
            status: 200,
            outcome: 1,
            fetched_at_ms: t,
            links,
            update: LinkSetUpdate::Replace,
            content_hash: 7,
            noindex: false,
            remote_ip: None,
        }
    }

    fn prior_of(p: &PageWrite) -> Prior {
        Prior {
            fetched_at_ms: Some(p.fetched_at_ms),
            content_hash: p.content_hash,
            known: true,
            outlinks: p.links.iter().map(Outlink::of).collect(),
        }
    }

    fn change<'a>(p: &'a PageWrite, prior: &'a Prior) -> Change<'a> {
        match diff(p, prior) {
            Diff::Replace(c) => c,
            other => panic!("expected a replace, got {other:?}"),
        }
    }

    const SRC: &str = "http://www.a.com/p";

    #[test]
    fn a_first_observation_is_all_new() {
        let p = page(
            SRC,
            10,
            vec![
                link(SRC, "http://b.com/1", Rel::follow()),
                link(SRC, "http://www.b.com/2", Rel::NOFOLLOW),
                link(SRC, "http://a.com/internal", Rel::follow()),
            ],
        );
        let prior = Prior::default();
        let c = change(&p, &prior);
        assert!(c.upserts.iter().all(|u| u.appeared));
        assert!(c.lost.is_empty());
        assert_eq!(c.events.len(), 3);
        // A page's first observation discovers its links: they are not new.
        assert!(c.discovered);
        assert!(c.events.iter().all(|e| e.kind == EventKind::DiscoveredLink));
        assert_eq!(
            c.refdomains,
            vec![PageRefdomain {
                target_domain: "b.com".into(),
                before: Counts::default(),
                after: Counts {
                    links: 2,
                    follow: 1
                },
            }]
        );
        assert_eq!(c.refdomains[0].transition(), Some(true));
        // A first observation is not a change of the page.
        assert!(!c.stats.changed);
        assert_eq!((c.stats.edges, c.stats.new_edges), (3, 3));
    }

    #[test]
    fn links_added_to_a_known_page_are_new() {
        let first = page(SRC, 10, vec![link(SRC, "http://b.com/1", Rel::follow())]);
        let prior = prior_of(&first);
        let second = page(
            SRC,
            20,
            vec![
                link(SRC, "http://b.com/1", Rel::follow()),
                link(SRC, "http://c.com/1", Rel::follow()),
            ],
        );
        let c = change(&second, &prior);
        assert!(!c.discovered);
        let kinds: Vec<_> = c.events.iter().map(|e| (e.kind, e.target)).collect();
        assert_eq!(kinds, [(EventKind::NewLink, "http://c.com/1")]);
        // A page whose fetches all failed is not known: its links are discovered.
        let unknown = Prior {
            fetched_at_ms: Some(10),
            ..Prior::default()
        };
        assert!(change(&second, &unknown).discovered);
    }

    #[test]
    fn a_replay_changes_nothing() {
        let p = page(SRC, 10, vec![link(SRC, "http://b.com/1", Rel::follow())]);
        let prior = prior_of(&p);
        let c = change(&p, &prior);
        assert!(c.events.is_empty() && c.lost.is_empty());
        assert_eq!(c.refdomains[0].transition(), None);
        assert!(!c.stats.changed);
        assert_eq!(c.stats.edges, 1);
    }

    #[test]
    fn lost_links_carry_their_last_attributes() {
        let first = page(
            SRC,
            10,
            vec![
                link(SRC, "http://b.com/1", Rel::follow()),
                link(SRC, "http://c.com/1", Rel::SPONSORED),
            ],
        );
        let prior = prior_of(&first);
        let second = page(SRC, 20, vec![link(SRC, "http://b.com/1", Rel::follow())]);
        let c = change(&second, &prior);
        assert_eq!(c.lost.len(), 1);
        assert_eq!(c.lost[0].target, "http://c.com/1");
        let lost = c.events.iter().find(|e| e.kind == EventKind::LostLink);
        assert_eq!(
            lost.map(|e| (e.target_domain, e.attrs.rel)),
            Some(("c.com", Rel::SPONSORED.bits()))
        );
        let c_dom = c.refdomains.iter().find(|r| r.target_domain == "c.com");
        assert_eq!(c_dom.and_then(PageRefdomain::transition), Some(false));
        assert!(c.stats.changed);
        assert_eq!(c.stats.lost_edges, 1);
    }

    #[test]
    fn a_rel_change_moves_the_follow_count_only() {
        let first = page(SRC, 10, vec![link(SRC, "http://b.com/1", Rel::follow())]);
        let prior = prior_of(&first);
        let second = page(SRC, 20, vec![link(SRC, "http://b.com/1", Rel::UGC)]);
        let c = change(&second, &prior);
        // A change, not a loss: one changed_link event with both rels.
        let ev: Vec<_> = c
            .events
            .iter()
            .map(|e| (e.kind, e.before.map(|b| b.rel), e.attrs.rel))
            .collect();
        assert_eq!(
            ev,
            [(
                EventKind::ChangedLink,
                Some(Rel::follow().bits()),
                Rel::UGC.bits()
            )]
        );
        assert!(c.lost.is_empty());
        let r = &c.refdomains[0];
        assert_eq!((r.before.follow, r.after.follow), (1, 0));
        assert_eq!(r.transition(), None);
    }

    #[test]
    fn stale_failed_and_unchanged_observations() {
        let first = page(SRC, 10, vec![link(SRC, "http://b.com/1", Rel::follow())]);
        let prior = prior_of(&first);
        let old = page(SRC, 5, vec![]);
        assert!(matches!(diff(&old, &prior), Diff::Stale { links } if links.is_empty()));
        let mut failed = page(SRC, 20, vec![]);
        failed.update = LinkSetUpdate::Keep;
        assert_eq!(diff(&failed, &prior), Diff::Keep);
        let mut seen = page(SRC, 20, vec![]);
        seen.update = LinkSetUpdate::Unchanged;
        match diff(&seen, &prior) {
            Diff::Unchanged {
                seen,
                target_domains,
            } => {
                assert_eq!(seen.len(), 1);
                assert_eq!(target_domains.into_iter().collect::<Vec<_>>(), ["b.com"]);
            }
            other => panic!("expected unchanged, got {other:?}"),
        }
    }

    #[test]
    fn lost_links_say_why() {
        use linkgraph_proto::FetchOutcome;
        let first = page(SRC, 10, vec![link(SRC, "http://b.com/1", Rel::follow())]);
        let prior = prior_of(&first);
        for (outcome, status, want) in [
            (FetchOutcome::Ok, 200, LostReason::Removed),
            (FetchOutcome::HttpError, 404, LostReason::PageGone),
            (FetchOutcome::HttpError, 410, LostReason::PageGone),
            (FetchOutcome::Redirect, 301, LostReason::PageRedirected),
        ] {
            let mut p = page(SRC, 20, vec![]);
            (p.outcome, p.status) = (outcome as i32, status);
            let c = change(&p, &prior);
            assert_eq!((c.lost.len(), c.lost_reason), (1, want), "{outcome:?}");
        }
    }

    #[test]
    fn refdomain_events_fire_on_crossing_zero() {
        assert_eq!(
            refdomain_event(false, true, false),
            Some(EventKind::NewRefdomain)
        );
        assert_eq!(
            refdomain_event(false, true, true),
            Some(EventKind::DiscoveredRefdomain)
        );
        for discovered in [false, true] {
            assert_eq!(
                refdomain_event(true, false, discovered),
                Some(EventKind::LostRefdomain)
            );
            assert_eq!(refdomain_event(true, true, discovered), None);
            assert_eq!(refdomain_event(false, false, discovered), None);
        }
    }

    #[test]
    fn a_domain_that_comes_back_through_an_older_page_never_went() {
        use RefdomainChange::{Event, Retract};
        // Lost at 100; a page last fetched at 50 (or never) brings it back.
        assert_eq!(
            refdomain_change(false, true, false, Some(100), Some(50)),
            Retract { lost_at_ms: 100 }
        );
        assert_eq!(
            refdomain_change(false, true, true, Some(100), None),
            Retract { lost_at_ms: 100 }
        );
        // A page fetched after the loss, without the link, then with it: new.
        assert_eq!(
            refdomain_change(false, true, false, Some(100), Some(150)),
            Event(EventKind::NewRefdomain)
        );
        assert_eq!(
            refdomain_change(false, true, false, None, Some(50)),
            Event(EventKind::NewRefdomain)
        );
        assert_eq!(
            refdomain_change(true, false, false, None, Some(50)),
            Event(EventKind::LostRefdomain)
        );
        assert_eq!(
            refdomain_change(true, true, false, None, Some(50)),
            RefdomainChange::None
        );
    }

    /// Targets on a few domains, one of them the page's own.
    fn arb_links() -> impl Strategy<Value = Vec<(u8, u8, bool)>> {
        proptest::collection::vec((0u8..4, 0u8..6, any::<bool>()), 0..12)
    }

    fn build(t: i64, spec: &[(u8, u8, bool)]) -> PageWrite {
        let domains = ["a.com", "b.com", "c.org", "d.co.uk"];
        let mut seen = HashSet::new();
        let links = spec
            .iter()
            .filter(|(d, p, _)| seen.insert((*d, *p)))
            .map(|(d, p, follow)| {
                let rel = if *follow {
                    Rel::follow()
                } else {
                    Rel::NOFOLLOW
                };
                link(
                    SRC,
                    &format!("http://{}/{p}", domains[usize::from(*d)]),
                    rel,
                )
            })
            .collect();
        page(SRC, t, links)
    }

    proptest! {
        /// Applying the diffs of a sequence of observations to a model keeps
        /// it equal to what the last observation says, and every count and
        /// event balances.
        #[test]
        fn diffs_compose_to_the_last_observation(seq in proptest::collection::vec(arb_links(), 1..6)) {
            let mut prior = Prior::default();
            let mut live: BTreeMap<String, Counts> = BTreeMap::new();
            let (mut new_events, mut lost_events) = (0i64, 0i64);
            for (i, spec) in seq.iter().enumerate() {
                let p = build(10 * (i as i64 + 1), spec);
                let c = change(&p, &prior);
                for r in &c.refdomains {
                    let e = live.entry(r.target_domain.clone()).or_default();
                    // `before` is exactly what the model held.
                    prop_assert_eq!(*e, r.before);
                    *e = r.after;
                }
                for e in &c.events {
                    match e.kind {
                        EventKind::NewLink | EventKind::DiscoveredLink => new_events += 1,
                        EventKind::ChangedLink => {}
                        EventKind::LostLink => lost_events += 1,
                        _ => prop_assert!(false, "no refdomain events from a page diff"),
                    }
                }
                prop_assert_eq!(c.upserts.len(), p.links.len());
                prop_assert_eq!(
                    c.stats.new_edges as usize,
                    c.upserts.iter().filter(|u| u.appeared).count()
                );
                for o in &c.lost {
                    prop_assert!(!p.links.iter().any(|l| l.target_url == o.target));
                }
                // Only the first observation discovers.
                prop_assert_eq!(c.discovered, i == 0);
                prior = Prior {
                    fetched_at_ms: Some(p.fetched_at_ms),
                    content_hash: p.content_hash,
                    known: true,
                    outlinks: p.links.iter().map(Outlink::of).collect(),
                };
                // The model's counts equal a recount of the current set.
                let mut recount: BTreeMap<String, Counts> = BTreeMap::new();
                for l in &p.links {
                    if !l.is_internal() {
                        let e = recount.entry(l.target_domain().to_owned()).or_default();
                        e.links += 1;
                        e.follow += i64::from(l.rel.is_follow());
                    }
                }
                live.retain(|_, c| c.links > 0);
                prop_assert_eq!(&live, &recount);
                // Links live now = new events - lost events.
                prop_assert_eq!(new_events - lost_events, p.links.len() as i64);
            }
        }
    }
}
