//! The store conformance suite: behaviour every [`LinkStore`] backend must
//! show, written once and run against each backend (Quickwit's
//! `storage_test_suite` pattern). Each check panics with a description of the
//! first difference, so it is meant for tests.
//!
//! The suite expects an empty store.

#![allow(clippy::unwrap_used, clippy::panic)]

use linkgraph_core::{Link, LinkKind, Placement, Rel};

use crate::{BacklinkQuery, LinkStore, PageWrite, Target};

/// A 200 page at `url`, fetched at `t`, linking to `targets` (follow, content).
pub fn page(url: &str, t: i64, targets: &[&str]) -> PageWrite {
    PageWrite {
        url: url.into(),
        status: 200,
        outcome: 1,
        fetched_at_ms: t,
        links: targets
            .iter()
            .map(|to| link(url, to, Rel::follow()))
            .collect(),
    }
}

fn link(from: &str, to: &str, rel: Rel) -> Link {
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
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let q = BacklinkQuery {
            target: target.clone(),
            include_internal: internal,
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
    let rd = s.refdomains("t1.co.uk").await.unwrap();
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
    let rd = s.refdomains("dt.com").await.unwrap();
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
    let rd = s.refdomains("ot.com").await.unwrap();
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
    let rd = s.refdomains("ft.com").await.unwrap();
    assert_eq!(
        (rd[0].links, rd[0].follow_links),
        (1, 0),
        "the newer observation wins"
    );
    // An older observation must not roll the attributes back.
    p.fetched_at_ms = 150;
    p.links[0].rel = Rel::follow();
    s.write_page(p).await.unwrap();
    let rd = s.refdomains("ft.com").await.unwrap();
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
    assert!(s.refdomains("never-seen.example").await.unwrap().is_empty());
    let q = BacklinkQuery {
        target: Target::Domain("never-seen.example".into()),
        include_internal: true,
        limit: 10,
        after: None,
    };
    assert!(s.backlinks(q).await.unwrap().items.is_empty());
    assert!(!s.knows_domain("never-seen.example").await.unwrap());
}
