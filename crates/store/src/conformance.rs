//! The store conformance suite: behaviour every [`LinkStore`] backend must
//! show, written once and run against each backend (Quickwit's
//! `storage_test_suite` pattern). Each check panics with a description of the
//! first difference, so it is meant for tests.
//!
//! The suite expects an empty store.

#![allow(clippy::unwrap_used, clippy::panic)]

use linkgraph_core::{Link, LinkKind, Placement, Rel};

use crate::{
    BacklinkQuery, EventKind, LinkSetUpdate, LinkStore, LostReason, PageWrite, Status, Target,
};

/// A 200 page at `url`, fetched at `t`, linking to `targets` (follow, content).
pub fn page(url: &str, t: i64, targets: &[&str]) -> PageWrite {
    PageWrite {
        url: url.into(),
        status: 200,
        outcome: 1,
        fetched_at_ms: t,
        content_hash: 0,
        noindex: false,
        remote_ip: None,
        update: LinkSetUpdate::Replace,
        links: targets
            .iter()
            .map(|to| link(url, to, Rel::follow()))
            .collect(),
    }
}

/// A content link from `from` to `to` with `rel`, anchored "to TARGET".
pub fn link(from: &str, to: &str, rel: Rel) -> Link {
    Link {
        source_url: from.into(),
        target_url: to.into(),
        anchor: format!("to {to}"),
        rel,
        placement: Placement::Content,
        kind: LinkKind::Link,
    }
}

async fn all_backlinks(s: &dyn LinkStore, target: Target, internal: bool) -> Vec<crate::Backlink> {
    backlinks_with(s, target, internal, Status::Live).await
}

async fn backlinks_with(
    s: &dyn LinkStore,
    target: Target,
    internal: bool,
    status: Status,
) -> Vec<crate::Backlink> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let q = BacklinkQuery {
            target: target.clone(),
            include_internal: internal,
            status,
            limit: 2,
            after,
        };
        let page = s.backlinks(q).await.unwrap();
        out.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

/// Runs every check in order on one (initially empty) store.
pub async fn run_all(s: &dyn LinkStore) {
    edges_and_refdomains(s).await;
    duplicates_are_idempotent(s).await;
    first_and_last_seen_under_reordering(s).await;
    follow_counts_track_attribute_changes(s).await;
    paging_returns_every_row_once(s).await;
    unknown_targets_are_empty(s).await;
    lost_links_and_their_return(s).await;
    gone_pages_lose_everything_and_failures_lose_nothing(s).await;
    stale_observations_never_roll_back(s).await;
    discovered_is_not_new(s).await;
    a_domain_that_moves_its_link_stays(s).await;
    lost_links_say_why(s).await;
    attribute_changes_are_changes(s).await;
    outlinks_and_page_states(s).await;
    scans_return_every_row_once(s).await;
    ranks_are_stored_and_scanned(s).await;
    host_addresses_keep_the_latest(s).await;
    last_seen_is_the_last_observation_that_saw_the_link(s).await;
}

/// A link's last_seen, through every read (backlinks, outlinks, scan), is
/// the time of the last observation that saw it: a 200, a 304, or a 200
/// with the same links again, never a temporary failure; a lost link keeps
/// the last time it was seen.
async fn last_seen_is_the_last_observation_that_saw_the_link(s: &dyn LinkStore) {
    let src = "http://ls1.com/";
    let targets = ["http://lst.com/1", "http://lst.com/2", "http://ls1.com/in"];
    // (target, last_seen, lost_at) of every row of src, by each read.
    let read = |status: Status| async move {
        let mut by_backlinks = Vec::new();
        for d in ["lst.com", "ls1.com"] {
            let rows = backlinks_with(s, Target::Domain(d.into()), true, status).await;
            by_backlinks.extend(
                rows.into_iter()
                    .map(|b| (b.link.target_url, b.last_seen_ms, b.lost_at_ms)),
            );
        }
        by_backlinks.sort();
        let mut by_scan: Vec<_> = scan_all(s, crate::Table::Backlinks, 3)
            .await
            .into_iter()
            .filter_map(|r| match r {
                crate::Row::Backlink(b)
                    if b.link.source_url == src && status.admits(b.lost_at_ms.unwrap_or(0)) =>
                {
                    Some((b.link.target_url, b.last_seen_ms, b.lost_at_ms))
                }
                _ => None,
            })
            .collect();
        by_scan.sort();
        assert_eq!(by_scan, by_backlinks, "scan and backlinks agree");
        let mut by_outlinks = Vec::new();
        let mut after = None;
        loop {
            let q = crate::OutlinkQuery {
                domain: "ls1.com".into(),
                status,
                limit: 1,
                after,
            };
            let page = s.outlinks(q).await.unwrap();
            by_outlinks.extend(
                page.items
                    .into_iter()
                    .map(|b| (b.link.target_url, b.last_seen_ms, b.lost_at_ms)),
            );
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let external: Vec<_> = by_backlinks
            .iter()
            .filter(|(t, ..)| t.starts_with("http://lst.com/"))
            .cloned()
            .collect();
        assert_eq!(by_outlinks, external, "outlinks and backlinks agree");
        by_backlinks
    };
    let row = |t: &str, last: i64, lost: Option<i64>| (t.to_owned(), last, lost);
    let refdomain_last_seen =
        || async { s.refdomains("lst.com", Status::All).await.unwrap()[0].last_seen_ms };

    s.write_page(page(src, 100, &targets)).await.unwrap();
    // A 503 sees nothing.
    let mut failed = page(src, 200, &[]);
    failed.status = 503;
    failed.update = LinkSetUpdate::Keep;
    s.write_page(failed.clone()).await.unwrap();
    assert_eq!(
        read(Status::Live).await,
        vec![
            row(targets[2], 100, None),
            row(targets[0], 100, None),
            row(targets[1], 100, None),
        ]
    );
    // A 304 sees every link.
    let mut unchanged = page(src, 300, &[]);
    unchanged.status = 304;
    unchanged.update = LinkSetUpdate::Unchanged;
    s.write_page(unchanged).await.unwrap();
    assert!(read(Status::Live).await.iter().all(|r| r.1 == 300));
    assert_eq!(refdomain_last_seen().await, 300);
    // The same links again, in another order: seen, nothing new or lost.
    let again = page(src, 400, &[targets[2], targets[1], targets[0]]);
    let st = s.write_page(again).await.unwrap();
    assert_eq!((st.edges, st.new_edges, st.lost_edges), (3, 0, 0));
    assert!(read(Status::Live).await.iter().all(|r| r.1 == 400));
    assert_eq!(refdomain_last_seen().await, 400);
    assert!(s.events("lst.com", 101, i64::MAX).await.unwrap().is_empty());
    // /2 goes: it was last seen at 400.
    s.write_page(page(src, 500, &[targets[0], targets[2]]))
        .await
        .unwrap();
    assert_eq!(
        read(Status::All).await,
        vec![
            row(targets[2], 500, None),
            row(targets[0], 500, None),
            row(targets[1], 400, Some(500)),
        ]
    );
    // A 503, then a 410: the last sighting was at 500.
    failed.fetched_at_ms = 600;
    s.write_page(failed).await.unwrap();
    let mut gone = page(src, 700, &[]);
    gone.status = 410;
    s.write_page(gone).await.unwrap();
    assert_eq!(
        read(Status::All).await,
        vec![
            row(targets[2], 500, Some(700)),
            row(targets[0], 500, Some(700)),
            row(targets[1], 400, Some(500)),
        ]
    );
    assert_eq!(refdomain_last_seen().await, 500);
}

/// A rank run's rows read back by domain and by scan; the run reads back
/// only once it is written; a later run replaces a domain's row.
async fn ranks_are_stored_and_scanned(s: &dyn LinkStore) {
    use crate::{DomainRank, RankRun};
    assert_eq!(s.rank_run().await.unwrap(), None, "no run before rank");
    let rank = |d: &str, i: usize, trust: Option<f64>, at: i64| DomainRank {
        domain: d.into(),
        authority: i as f64,
        pagerank: 1.0 / (i as f64 + 3.0),
        harmonic: i as f64 * 0.5,
        trust,
        referring_domains: i as u64,
        computed_at_ms: at,
    };
    let domains: Vec<String> = (0..25).map(|i| format!("ranked{i}.example")).collect();
    let first: Vec<DomainRank> = domains
        .iter()
        .enumerate()
        .map(|(i, d)| rank(d, i, None, 1_000))
        .collect();
    s.write_ranks(first.clone()).await.unwrap();
    let run = RankRun {
        computed_at_ms: 1_000,
        nodes: 25,
        arcs: 40,
        harmonic_method: "exact".into(),
        trusted: 0,
    };
    s.write_rank_run(run.clone()).await.unwrap();
    assert_eq!(s.rank_run().await.unwrap(), Some(run));
    let asked = vec![domains[3].clone(), "unranked.example".into()];
    let got = s.domain_ranks(&asked).await.unwrap();
    assert_eq!(got, vec![Some(first[3].clone()), None]);
    // A second run, with trust, replaces the rows.
    let second: Vec<DomainRank> = domains
        .iter()
        .enumerate()
        .map(|(i, d)| rank(d, i + 1, Some(0.25), 2_000))
        .collect();
    s.write_ranks(second.clone()).await.unwrap();
    let (mut all, mut after) = (Vec::new(), None);
    loop {
        let (rows, next) = s.scan_ranks(after, 7).await.unwrap();
        all.extend(rows);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    all.sort_by(|a, b| a.domain.cmp(&b.domain));
    let mut want = second;
    want.sort_by(|a, b| a.domain.cmp(&b.domain));
    assert_eq!(all, want, "scan_ranks returns every row once, newest run");
}

/// The address a host answered from is kept per host, newest observation.
async fn host_addresses_keep_the_latest(s: &dyn LinkStore) {
    let ip = |a: &str| a.parse::<std::net::IpAddr>().unwrap();
    let mut p = page("http://www.net1.example/", 1_000, &[]);
    p.remote_ip = Some(ip("127.0.9.1"));
    s.write_page(p).await.unwrap();
    let mut p = page("http://www.net1.example/", 2_000, &[]);
    p.remote_ip = Some(ip("127.0.9.2"));
    s.write_page(p).await.unwrap();
    let mut p = page("http://blog.net1.example/a", 1_500, &[]);
    p.remote_ip = Some(ip("::1"));
    s.write_page(p).await.unwrap();
    // A page fetched without an address leaves the host's row alone.
    s.write_page(page("http://blog.net1.example/b", 3_000, &[]))
        .await
        .unwrap();
    let mut got: Vec<(String, std::net::IpAddr, i64)> = s
        .host_addrs("net1.example")
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.host, h.ip, h.seen_at_ms))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("blog.net1.example".into(), ip("::1"), 1_500),
            ("www.net1.example".into(), ip("127.0.9.2"), 2_000),
        ]
    );
    assert!(s.host_addrs("unknown.example").await.unwrap().is_empty());
}

/// Every row of `table`, scanning `limit` rows at a time.
async fn scan_all(s: &dyn LinkStore, table: crate::Table, limit: usize) -> Vec<crate::Row> {
    let (mut rows, mut after) = (Vec::new(), None);
    loop {
        let page = s.scan(table, after, limit).await.unwrap();
        rows.extend(page.rows);
        match page.next {
            Some(c) => after = Some(c),
            None => return rows,
        }
    }
}

/// A whole-table scan returns every row exactly once, whatever the page
/// size, and holds what was written.
async fn scans_return_every_row_once(s: &dyn LinkStore) {
    use crate::{Row, Table};
    for i in 0..4 {
        let src = format!("http://scan{i}.com/");
        let p = page(&src, 9_000, &["http://scant.com/a", "http://scant.com/b"]);
        s.write_page(p).await.unwrap();
    }
    let key = |r: &Row| -> String {
        match r {
            Row::Backlink(b) => format!("{}>{}", b.link.source_url, b.link.target_url),
            Row::Refdomain { target_domain, row } => format!("{target_domain}<{}", row.domain),
            Row::Event {
                target_domain,
                event,
            } => format!(
                "{target_domain} {} {:?} {} {}",
                event.at_ms, event.kind, event.link.source_url, event.link.target_url
            ),
            Row::Page { url, .. } => url.clone(),
        }
    };
    for table in [
        Table::Backlinks,
        Table::Refdomains,
        Table::Events,
        Table::Pages,
    ] {
        let small: Vec<String> = scan_all(s, table, 3).await.iter().map(key).collect();
        let big: Vec<String> = scan_all(s, table, 10_000).await.iter().map(key).collect();
        let unique: std::collections::BTreeSet<&String> = small.iter().collect();
        assert_eq!(unique.len(), small.len(), "{table:?}: a row twice");
        let mut a = small.clone();
        let mut b = big.clone();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{table:?}: page size changes the rows");
        let want = match table {
            Table::Backlinks => "http://scan2.com/>http://scant.com/b".to_owned(),
            Table::Refdomains => "scant.com<scan3.com".to_owned(),
            Table::Events => "scant.com 9000 DiscoveredRefdomain scan1.com ".to_owned(),
            Table::Pages => "http://scan0.com/".to_owned(),
        };
        assert!(small.contains(&want), "{table:?}: no {want:?} in {small:?}");
    }
}

async fn all_outlinks(s: &dyn LinkStore, domain: &str, status: Status) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let q = crate::OutlinkQuery {
            domain: domain.into(),
            status,
            limit: 2,
            after,
        };
        let page = s.outlinks(q).await.unwrap();
        out.extend(
            page.items
                .into_iter()
                .map(|b| (b.link.source_url, b.link.target_url)),
        );
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

/// A domain's outlinks are its pages' external links, ordered by source
/// then target, live or lost; every fetched URL's last status is readable.
async fn outlinks_and_page_states(s: &dyn LinkStore) {
    let (a, b) = ("http://www.olsrc.com/a", "http://blog.olsrc.com/b");
    let targets = ["http://olx.com/1", "http://oly.org/2", "http://olx.com/3"];
    s.write_page(page(
        a,
        1_000,
        &[targets[0], targets[1], "http://www.olsrc.com/in"],
    ))
    .await
    .unwrap();
    s.write_page(page(b, 1_000, &[targets[2], targets[0]]))
        .await
        .unwrap();
    let live = all_outlinks(s, "olsrc.com", Status::Live).await;
    let pair = |x: &str, y: &str| (x.to_owned(), y.to_owned());
    assert_eq!(
        live,
        vec![
            pair(b, targets[0]),
            pair(b, targets[2]),
            pair(a, targets[0]),
            pair(a, targets[1]),
        ]
    );
    // b drops a link: it is lost, not gone.
    s.write_page(page(b, 2_000, &[targets[2]])).await.unwrap();
    assert_eq!(
        all_outlinks(s, "olsrc.com", Status::Lost).await,
        vec![pair(b, targets[0])]
    );
    assert_eq!(all_outlinks(s, "olsrc.com", Status::All).await.len(), 4);
    assert!(all_outlinks(s, "olx.com", Status::All).await.is_empty());

    let mut gone = page("http://olx.com/1", 3_000, &[]);
    gone.status = 404;
    gone.outcome = 3;
    s.write_page(gone).await.unwrap();
    let urls = [a, "http://olx.com/1", "http://never.olx.com/"].map(String::from);
    let states = s.page_states(&urls).await.unwrap();
    let got: Vec<Option<(u32, i64)>> = states
        .iter()
        .map(|p| p.map(|p| (p.status, p.fetched_at_ms)))
        .collect();
    assert_eq!(got, vec![Some((200, 1_000)), Some((404, 3_000)), None]);
}

/// A link whose anchor, rel or placement changes is a `changed_link` event
/// with the attributes before and after, not a loss.
async fn attribute_changes_are_changes(s: &dyn LinkStore) {
    let (src, target) = ("http://chg1.com/", "http://chgt.com/");
    s.write_page(page(src, 1_000, &[target])).await.unwrap();
    let mut p = page(src, 2_000, &[target]);
    p.links[0].rel = Rel::SPONSORED;
    p.links[0].anchor = "buy now".into();
    let st = s.write_page(p).await.unwrap();
    assert_eq!((st.lost_edges, st.new_edges), (0, 0));
    let ev = s.events("chgt.com", 2_000, 2_001).await.unwrap();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].kind, EventKind::ChangedLink);
    assert_eq!(
        (ev[0].link.anchor.as_str(), ev[0].link.rel),
        ("buy now", Rel::SPONSORED)
    );
    assert_eq!(
        ev[0].before,
        Some((format!("to {target}"), Rel::follow(), Placement::Content))
    );
    // The same attributes again: nothing.
    let mut same = page(src, 3_000, &[target]);
    same.links[0].rel = Rel::SPONSORED;
    same.links[0].anchor = "buy now".into();
    s.write_page(same).await.unwrap();
    assert!(s.events("chgt.com", 3_000, 3_001).await.unwrap().is_empty());
    // Other events carry no before.
    let first = s.events("chgt.com", 1_000, 1_001).await.unwrap();
    assert!(first.iter().all(|e| e.before.is_none()), "{first:?}");
}

/// Every lost link says why: removed from its page, page gone, or page
/// redirected; a link that comes back is live again, with no reason.
async fn lost_links_say_why(s: &dyn LinkStore) {
    use linkgraph_proto::FetchOutcome;
    let target = "http://whyt.com/";
    for p in [
        "http://why1.com/",
        "http://why2.com/",
        "http://why3.com/",
        "http://why4.com/",
    ] {
        s.write_page(page(p, 1_000, &[target])).await.unwrap();
    }
    s.write_page(page("http://why1.com/", 2_000, &[]))
        .await
        .unwrap();
    let gone = PageWrite {
        status: 404,
        outcome: FetchOutcome::HttpError as i32,
        ..page("http://why2.com/", 2_000, &[])
    };
    s.write_page(gone).await.unwrap();
    let moved = PageWrite {
        status: 301,
        outcome: FetchOutcome::Redirect as i32,
        ..page("http://why3.com/", 2_000, &["http://why3.com/new"])
    };
    s.write_page(moved).await.unwrap();
    let hidden = PageWrite {
        noindex: true,
        ..page("http://why4.com/", 2_000, &[])
    };
    s.write_page(hidden).await.unwrap();
    let lost = backlinks_with(s, Target::Url(target.into()), false, Status::Lost).await;
    let why: Vec<(&str, Option<&str>)> = lost
        .iter()
        .map(|b| {
            (
                b.link.source_url.as_str(),
                b.lost_reason.map(LostReason::as_str),
            )
        })
        .collect();
    assert_eq!(
        why,
        vec![
            ("http://why1.com/", Some("removed")),
            ("http://why2.com/", Some("page_gone")),
            ("http://why3.com/", Some("page_redirected")),
            ("http://why4.com/", Some("noindex")),
        ]
    );
    let ev = s.events("whyt.com", 2_000, 2_001).await.unwrap();
    let mut reasons: Vec<Option<&str>> = ev
        .iter()
        .filter(|e| e.kind == EventKind::LostLink)
        .map(|e| e.lost_reason.map(LostReason::as_str))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            Some("noindex"),
            Some("page_gone"),
            Some("page_redirected"),
            Some("removed")
        ]
    );
    // Back again: live, no reason.
    s.write_page(page("http://why1.com/", 3_000, &[target]))
        .await
        .unwrap();
    let live = all_backlinks(s, Target::Url(target.into()), false).await;
    assert_eq!(live.len(), 1);
    assert_eq!((live[0].lost_at_ms, live[0].lost_reason), (None, None));
}

/// Refdomain events of `target`, as (time, kind, referring domain).
async fn refdomain_events(s: &dyn LinkStore, target: &str) -> Vec<(i64, &'static str, String)> {
    s.events(target, 0, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.link.target_url.is_empty())
        .map(|e| (e.at_ms, e.kind.as_str(), e.link.source_url))
        .collect()
}

/// A domain whose link to a target moves from one page to another in one
/// recrawl is neither lost nor new, whichever page is processed first; a
/// page fetched after the loss without the link, then with it, is a real
/// return.
async fn a_domain_that_moves_its_link_stays(s: &dyn LinkStore) {
    for (n, p1_first) in [(1, true), (2, false)] {
        let (t, x) = (format!("mv{n}t.com"), format!("mv{n}x.com"));
        let (p1, p2) = (format!("http://{x}/1"), format!("http://{x}/2"));
        let target = format!("http://{t}/");
        s.write_page(page(&p1, 1_000, &[&target])).await.unwrap();
        s.write_page(page(&p2, 1_000, &[])).await.unwrap();
        // The recrawl: the link moves from p1 to p2.
        let (drop, gain) = (page(&p1, 2_000, &[]), page(&p2, 2_100, &[&target]));
        if p1_first {
            s.write_page(drop).await.unwrap();
            s.write_page(gain).await.unwrap();
        } else {
            s.write_page(gain).await.unwrap();
            s.write_page(drop).await.unwrap();
        }
        assert_eq!(
            refdomain_events(s, &t).await,
            vec![(1_000, "discovered_refdomain", x.clone())],
            "p1 first: {p1_first}"
        );
        let rd = s.refdomains(&t, Status::Live).await.unwrap();
        assert_eq!(rd.len(), 1, "{rd:?}");
        assert_eq!((rd[0].links, rd[0].lost_at_ms), (1, None));
    }
    // A real loss and a real return: p2 was seen without the link after the loss.
    let (t, x) = ("mv3t.com", "mv3x.com");
    let (p1, p2, target) = ("http://mv3x.com/1", "http://mv3x.com/2", "http://mv3t.com/");
    s.write_page(page(p1, 1_000, &[target])).await.unwrap();
    s.write_page(page(p1, 2_000, &[])).await.unwrap();
    s.write_page(page(p2, 2_500, &[])).await.unwrap();
    s.write_page(page(p2, 3_000, &[target])).await.unwrap();
    assert_eq!(
        refdomain_events(s, t).await,
        vec![
            (1_000, "discovered_refdomain", x.to_owned()),
            (2_000, "lost_refdomain", x.to_owned()),
            (3_000, "new_refdomain", x.to_owned()),
        ]
    );
}

/// Links of a page's first definite observation are discovered; links that
/// appear on a page fetched before are new, a temporary failure in between
/// notwithstanding.
async fn discovered_is_not_new(s: &dyn LinkStore) {
    let failed = |url: &str, t: i64| PageWrite {
        status: 503,
        outcome: linkgraph_proto::FetchOutcome::HttpError as i32,
        update: LinkSetUpdate::Keep,
        ..page(url, t, &[])
    };
    // First fetch fails, second succeeds: the links are discovered.
    s.write_page(failed("http://dn1.com/", 1_000))
        .await
        .unwrap();
    s.write_page(page("http://dn1.com/", 2_000, &["http://dnt.com/a"]))
        .await
        .unwrap();
    // Fetched, then a failure, then a new link: new.
    s.write_page(page("http://dn2.com/", 1_000, &["http://dnt.com/b"]))
        .await
        .unwrap();
    s.write_page(failed("http://dn2.com/", 2_000))
        .await
        .unwrap();
    s.write_page(page(
        "http://dn2.com/",
        3_000,
        &["http://dnt.com/b", "http://dnt.com/c"],
    ))
    .await
    .unwrap();
    let ev = s.events("dnt.com", 0, 10_000).await.unwrap();
    let got: Vec<(i64, &str, String)> = ev
        .iter()
        .map(|e| (e.at_ms, e.kind.as_str(), e.link.target_url.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1_000, "discovered_link", "http://dnt.com/b".to_owned()),
            (1_000, "discovered_refdomain", String::new()),
            (2_000, "discovered_link", "http://dnt.com/a".to_owned()),
            (2_000, "discovered_refdomain", String::new()),
            (3_000, "new_link", "http://dnt.com/c".to_owned()),
        ]
    );
}

fn kinds(events: &[crate::LinkEvent]) -> Vec<(i64, &'static str, String)> {
    events
        .iter()
        .map(|e| (e.at_ms, e.kind.as_str(), e.link.source_url.clone()))
        .collect()
}

async fn lost_links_and_their_return(s: &dyn LinkStore) {
    let src = "http://l1.com/page";
    s.write_page(page(src, 1_000, &["http://lt.com/a", "http://lt.com/b"]))
        .await
        .unwrap();
    s.write_page(page("http://l2.com/", 1_000, &["http://lt.com/a"]))
        .await
        .unwrap();
    // Day 2: /b disappears from the page.
    let st = s
        .write_page(page(src, 2_000, &["http://lt.com/a"]))
        .await
        .unwrap();
    assert_eq!((st.new_edges, st.lost_edges, st.changed), (0, 1, true));
    let lost = backlinks_with(s, Target::Domain("lt.com".into()), false, Status::Lost).await;
    assert_eq!(lost.len(), 1);
    assert_eq!(
        (lost[0].link.target_url.as_str(), lost[0].lost_at_ms),
        ("http://lt.com/b", Some(2_000))
    );
    assert_eq!(
        backlinks_with(s, Target::Domain("lt.com".into()), false, Status::Live)
            .await
            .len(),
        2
    );
    assert_eq!(
        backlinks_with(s, Target::Domain("lt.com".into()), false, Status::All)
            .await
            .len(),
        3
    );
    // Day 3: l1.com drops its last link: the referring domain is lost.
    s.write_page(page(src, 3_000, &[])).await.unwrap();
    let rd_lost = s.refdomains("lt.com", Status::Lost).await.unwrap();
    assert_eq!(rd_lost.len(), 1);
    assert_eq!(
        (
            rd_lost[0].domain.as_str(),
            rd_lost[0].links,
            rd_lost[0].lost_at_ms
        ),
        ("l1.com", 0, Some(3_000))
    );
    let live: Vec<String> = s
        .refdomains("lt.com", Status::Live)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.domain)
        .collect();
    assert_eq!(live, vec!["l2.com"]);
    // Day 4: /b comes back: live again, first_seen kept, both events recorded.
    let st = s
        .write_page(page(src, 4_000, &["http://lt.com/b"]))
        .await
        .unwrap();
    assert_eq!(st.new_edges, 1);
    let b = backlinks_with(
        s,
        Target::Url("http://lt.com/b".into()),
        false,
        Status::Live,
    )
    .await;
    assert_eq!(
        (b[0].first_seen_ms, b[0].last_seen_ms, b[0].lost_at_ms),
        (1_000, 4_000, None)
    );
    let ev = s.events("lt.com", 0, 10_000).await.unwrap();
    assert_eq!(
        kinds(&ev),
        vec![
            // A page's first fetch discovers its links; they are not new.
            (1_000, "discovered_link", src.to_owned()),
            (1_000, "discovered_link", src.to_owned()),
            (1_000, "discovered_link", "http://l2.com/".to_owned()),
            (1_000, "discovered_refdomain", "l1.com".to_owned()),
            (1_000, "discovered_refdomain", "l2.com".to_owned()),
            (2_000, "lost_link", src.to_owned()),
            (3_000, "lost_link", src.to_owned()),
            (3_000, "lost_refdomain", "l1.com".to_owned()),
            (4_000, "new_link", src.to_owned()),
            (4_000, "new_refdomain", "l1.com".to_owned()),
        ]
    );
    assert_eq!(
        s.events("lt.com", 2_000, 3_000).await.unwrap().len(),
        1,
        "the range is half-open"
    );
    assert_eq!(
        ev.iter().filter(|e| e.kind == EventKind::NewLink).count(),
        1
    );
    assert_eq!(
        ev.iter()
            .filter(|e| e.kind == EventKind::DiscoveredLink)
            .count(),
        3
    );
}

async fn gone_pages_lose_everything_and_failures_lose_nothing(s: &dyn LinkStore) {
    let src = "http://g1.com/";
    s.write_page(page(src, 100, &["http://gt.com/1", "http://gt.com/2"]))
        .await
        .unwrap();
    // A 503: the page keeps its links.
    let mut failed = page(src, 200, &[]);
    failed.status = 503;
    failed.update = LinkSetUpdate::Keep;
    let st = s.write_page(failed).await.unwrap();
    assert_eq!(st.lost_edges, 0);
    assert_eq!(
        all_backlinks(s, Target::Domain("gt.com".into()), false)
            .await
            .len(),
        2
    );
    // A 304: nothing lost, every link seen again.
    let mut same = page(src, 250, &[]);
    same.status = 304;
    same.update = LinkSetUpdate::Unchanged;
    let st = s.write_page(same).await.unwrap();
    assert_eq!((st.lost_edges, st.new_edges, st.changed), (0, 0, false));
    let rows = all_backlinks(s, Target::Domain("gt.com".into()), false).await;
    assert!(
        rows.len() == 2 && rows.iter().all(|b| b.last_seen_ms == 250),
        "{rows:?}"
    );
    assert_eq!(
        s.refdomains("gt.com", Status::Live).await.unwrap()[0].last_seen_ms,
        250
    );
    // A 410: every link is lost.
    let mut gone = page(src, 300, &[]);
    gone.status = 410;
    let st = s.write_page(gone).await.unwrap();
    assert_eq!(st.lost_edges, 2);
    assert!(
        all_backlinks(s, Target::Domain("gt.com".into()), false)
            .await
            .is_empty()
    );
    assert!(
        s.refdomains("gt.com", Status::Live)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn stale_observations_never_roll_back(s: &dyn LinkStore) {
    let src = "http://s1.com/";
    s.write_page(page(src, 5_000, &["http://st.com/new"]))
        .await
        .unwrap();
    // An older fetch of the page, processed late, had another link.
    let st = s
        .write_page(page(
            src,
            4_000,
            &["http://st.com/old", "http://st.com/new"],
        ))
        .await
        .unwrap();
    assert_eq!((st.new_edges, st.lost_edges), (0, 0));
    let rows = backlinks_with(s, Target::Domain("st.com".into()), false, Status::All).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].first_seen_ms, rows[0].last_seen_ms),
        (4_000, 5_000)
    );
    let rd = s.refdomains("st.com", Status::Live).await.unwrap();
    assert_eq!((rd[0].first_seen_ms, rd[0].last_seen_ms), (4_000, 5_000));
}

async fn edges_and_refdomains(s: &dyn LinkStore) {
    s.write_page(page(
        "http://www.r1.com/a",
        100,
        &["http://t1.co.uk/x", "http://www.t1.co.uk/y"],
    ))
    .await
    .unwrap();
    s.write_page(page("http://blog.r1.com/b", 200, &["http://t1.co.uk/x"]))
        .await
        .unwrap();
    s.write_page(page(
        "http://r2.github.io/",
        150,
        &["http://t1.co.uk/x", "http://t1.co.uk/in"],
    ))
    .await
    .unwrap();
    s.write_page(page("http://t1.co.uk/x", 120, &["http://t1.co.uk/in"]))
        .await
        .unwrap();
    let rd = s.refdomains("t1.co.uk", Status::Live).await.unwrap();
    let got: Vec<(&str, u64, u64, i64, i64)> = rd
        .iter()
        .map(|r| {
            (
                r.domain.as_str(),
                r.links,
                r.follow_links,
                r.first_seen_ms,
                r.last_seen_ms,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![("r1.com", 3, 3, 100, 200), ("r2.github.io", 2, 2, 150, 150)]
    );
    let external = all_backlinks(s, Target::Domain("t1.co.uk".into()), false).await;
    assert_eq!(external.len(), 5, "internal links are excluded by default");
    let all = all_backlinks(s, Target::Domain("t1.co.uk".into()), true).await;
    assert_eq!(all.len(), 6);
    let one = all_backlinks(s, Target::Url("http://t1.co.uk/x".into()), false).await;
    assert_eq!(one.len(), 3);
    assert!(s.knows_domain("t1.co.uk").await.unwrap());
    assert!(
        s.knows_domain("r1.com").await.unwrap(),
        "a crawled site is known"
    );
}

async fn duplicates_are_idempotent(s: &dyn LinkStore) {
    let p = page(
        "http://d1.com/",
        1000,
        &["http://dt.com/1", "http://dt.com/2"],
    );
    let first = s.write_page(p.clone()).await.unwrap();
    let again = s.write_page(p).await.unwrap();
    assert_eq!((first.new_edges, again.new_edges), (2, 0));
    let rd = s.refdomains("dt.com", Status::Live).await.unwrap();
    assert_eq!((rd.len(), rd[0].links, rd[0].follow_links), (1, 2, 2));
}

async fn first_and_last_seen_under_reordering(s: &dyn LinkStore) {
    // The later observation arrives first.
    s.write_page(page("http://o1.com/", 5000, &["http://ot.com/"]))
        .await
        .unwrap();
    s.write_page(page("http://o1.com/", 3000, &["http://ot.com/"]))
        .await
        .unwrap();
    s.write_page(page("http://o1.com/", 4000, &["http://ot.com/"]))
        .await
        .unwrap();
    let bl = all_backlinks(s, Target::Domain("ot.com".into()), false).await;
    assert_eq!(
        (bl.len(), bl[0].first_seen_ms, bl[0].last_seen_ms),
        (1, 3000, 5000)
    );
    let rd = s.refdomains("ot.com", Status::Live).await.unwrap();
    assert_eq!(
        (rd[0].links, rd[0].first_seen_ms, rd[0].last_seen_ms),
        (1, 3000, 5000)
    );
}

async fn follow_counts_track_attribute_changes(s: &dyn LinkStore) {
    let mut p = page("http://f1.com/", 100, &["http://ft.com/"]);
    s.write_page(p.clone()).await.unwrap();
    p.fetched_at_ms = 200;
    p.links[0].rel = Rel::NOFOLLOW;
    s.write_page(p.clone()).await.unwrap();
    let rd = s.refdomains("ft.com", Status::Live).await.unwrap();
    assert_eq!(
        (rd[0].links, rd[0].follow_links),
        (1, 0),
        "the newer observation wins"
    );
    // An older observation must not roll the attributes back.
    p.fetched_at_ms = 150;
    p.links[0].rel = Rel::follow();
    s.write_page(p).await.unwrap();
    let rd = s.refdomains("ft.com", Status::Live).await.unwrap();
    assert_eq!((rd[0].links, rd[0].follow_links), (1, 0));
    let bl = all_backlinks(s, Target::Domain("ft.com".into()), false).await;
    assert_eq!(bl[0].link.rel, Rel::NOFOLLOW);
}

async fn paging_returns_every_row_once(s: &dyn LinkStore) {
    let targets: Vec<String> = (0..7).map(|i| format!("http://pt.com/{i}")).collect();
    let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
    s.write_page(page("http://p1.com/", 10, &refs))
        .await
        .unwrap();
    s.write_page(page("http://p2.com/", 10, &refs[..3]))
        .await
        .unwrap();
    let rows = all_backlinks(s, Target::Domain("pt.com".into()), false).await;
    let mut keys: Vec<(String, String)> = rows
        .iter()
        .map(|b| (b.link.target_url.clone(), b.link.source_url.clone()))
        .collect();
    let n = keys.len();
    keys.dedup();
    assert_eq!((n, keys.len()), (10, 10));
}

async fn unknown_targets_are_empty(s: &dyn LinkStore) {
    assert!(
        s.refdomains("never-seen.example", Status::Live)
            .await
            .unwrap()
            .is_empty()
    );
    let q = BacklinkQuery {
        target: Target::Domain("never-seen.example".into()),
        include_internal: true,
        status: Status::All,
        limit: 10,
        after: None,
    };
    assert!(s.backlinks(q).await.unwrap().items.is_empty());
    assert!(!s.knows_domain("never-seen.example").await.unwrap());
}
