//! Tests of the Scylla backend: the statements it builds are checked against
//! the schema it applies (every table, column, bind marker and value type),
//! the write plans against the embedded store's rules, and, when
//! `LINKGRAPH_SCYLLA_URI` names a live node, the shared conformance suite.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;

use linkgraph_core::Rel;
use scylla::value::CqlValue;

use super::plan::{self, Prior, Stmt, Write};
use super::*;
use crate::conformance;
use crate::{LinkSetUpdate, PageWrite};

const B: u32 = 8;

/// table -> column -> CQL type, parsed from schema.cql.
fn schema_columns() -> HashMap<String, HashMap<String, String>> {
    let mut out = HashMap::new();
    for stmt in plan::schema_statements(SCHEMA, "linkgraph", 3) {
        let Some(rest) = stmt.strip_prefix("CREATE TABLE IF NOT EXISTS ") else {
            continue;
        };
        let (name, body) = rest.split_once('(').unwrap();
        let mut cols = HashMap::new();
        for line in body.lines() {
            let line = line.trim().trim_end_matches(',');
            let mut words = line.split_whitespace();
            let (Some(col), Some(ty)) = (words.next(), words.next()) else {
                continue;
            };
            if col == "PRIMARY" || col.starts_with(')') {
                continue;
            }
            cols.insert(col.to_owned(), ty.trim_end_matches(',').to_owned());
        }
        out.insert(name.trim().to_owned(), cols);
    }
    out
}

fn table_of(cql: &str) -> &str {
    let words: Vec<&str> = cql.split_whitespace().collect();
    let after = |kw: &str| {
        words
            .iter()
            .position(|w| *w == kw)
            .and_then(|i| words.get(i + 1))
            .copied()
    };
    if cql.starts_with("UPDATE") {
        words[1]
    } else if cql.starts_with("INSERT") {
        after("INTO").unwrap()
    } else {
        after("FROM").unwrap()
    }
}

/// The column (or pseudo-column) each `?` binds, in order.
fn markers(cql: &str) -> Vec<String> {
    let tokens = super::model::tokens(cql);
    let mut out = Vec::new();
    // INSERT column lists bind positionally.
    if cql.starts_with("INSERT") {
        let open = tokens.iter().position(|t| t == "(").unwrap();
        let close = tokens.iter().position(|t| t == ")").unwrap();
        let cols: Vec<&String> = tokens[open + 1..close]
            .iter()
            .filter(|t| *t != ",")
            .collect();
        let n = tokens[close..].iter().filter(|t| *t == "?").count();
        let using_ts = cql.contains("USING TIMESTAMP ?");
        let positional = if using_ts { n - 1 } else { n };
        assert_eq!(cols.len(), positional, "{cql}");
        out.extend(cols.iter().map(|c| (*c).clone()));
        if using_ts {
            out.push("<timestamp>".into());
        }
        return out;
    }
    let mut tuple_cols: Vec<String> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t == "(" && tokens.get(i + 1).is_some_and(|n| n != "?") && tokens.get(i + 1).is_some() {
            // A column tuple: `(a , b) > (? , ?)`.
            let close = tokens[i..].iter().position(|t| t == ")").unwrap() + i;
            tuple_cols = tokens[i + 1..close]
                .iter()
                .filter(|t| *t != ",")
                .cloned()
                .collect();
        }
        if t != "?" {
            continue;
        }
        let prev = &tokens[i - 1];
        if prev == "TIMESTAMP" {
            out.push("<timestamp>".into());
        } else if prev == "LIMIT" {
            out.push("<limit>".into());
        } else if ["=", ">", ">=", "<", "<="].contains(&prev.as_str()) {
            out.push(tokens[i - 2].clone());
        } else {
            // Inside a tuple: the next column of the tuple.
            out.push(tuple_cols.remove(0));
        }
    }
    out
}

fn value_type(v: &CqlValue) -> &'static str {
    match v {
        CqlValue::Text(_) => "text",
        CqlValue::Int(_) => "int",
        CqlValue::BigInt(_) => "bigint",
        CqlValue::Blob(_) => "blob",
        CqlValue::Double(_) => "double",
        _ => "other",
    }
}

/// Checks a bound statement against the schema: right number of values,
/// each of its column's type.
fn check_binding(schema: &HashMap<String, HashMap<String, String>>, w: &Write) {
    let cql = w.stmt.cql();
    let table = table_of(cql);
    let cols = schema
        .get(table)
        .unwrap_or_else(|| panic!("{:?} uses unknown table {table}", w.stmt));
    let m = markers(cql);
    assert_eq!(m.len(), w.values.len(), "{:?}: markers vs values", w.stmt);
    for (col, v) in m.iter().zip(&w.values) {
        let want = match col.as_str() {
            "<timestamp>" => "bigint",
            "<limit>" => "int",
            c => cols
                .get(c)
                .unwrap_or_else(|| panic!("{:?}: no column {c} in {table}", w.stmt))
                .as_str(),
        };
        assert_eq!(value_type(v), want, "{:?}: column {col}", w.stmt);
    }
}

#[test]
fn every_statement_names_real_tables_and_columns() {
    let schema = schema_columns();
    assert_eq!(schema.len(), 13, "{:?}", schema.keys());
    for stmt in Stmt::ALL {
        let cql = stmt.cql();
        let table = table_of(cql);
        let cols = schema
            .get(table)
            .unwrap_or_else(|| panic!("{stmt:?}: unknown table {table}"));
        for col in markers(cql) {
            assert!(
                col.starts_with('<') || cols.contains_key(&col),
                "{stmt:?}: no column {col} in {table}"
            );
        }
        if stmt.is_write() {
            assert!(
                cql.contains("USING TIMESTAMP ?")
                    || matches!(stmt, Stmt::Event | Stmt::EventDay | Stmt::Domain),
                "{stmt:?}: a mutable cell without an observation timestamp"
            );
        } else {
            assert!(cql.starts_with("SELECT"), "{stmt:?}");
        }
    }
}

#[test]
fn added_columns_are_in_the_schema() {
    let schema = schema_columns();
    for (table, column, ty) in super::ADDED_COLUMNS {
        assert_eq!(
            schema[table].get(column).map(String::as_str),
            Some(ty),
            "{table}.{column}"
        );
    }
}

#[test]
fn schema_init_is_idempotent_and_names_the_keyspace() {
    let stmts = plan::schema_statements(SCHEMA, "crawl_eu", 5);
    assert!(stmts[0].starts_with("CREATE KEYSPACE IF NOT EXISTS crawl_eu"));
    assert!(stmts[0].contains("'replication_factor': 5"));
    assert!(stmts.iter().all(|s| s.contains("IF NOT EXISTS")));
    assert!(stmts.iter().all(|s| !s.contains("--")));
    assert_eq!(stmts.len(), 14);
}

#[test]
fn scylla_urls_parse_strictly() {
    let u = ScyllaUri::parse("scylla://a:9042,b/lg_1").unwrap();
    assert_eq!(u.nodes, vec!["a:9042", "b:9042"]);
    assert_eq!(u.keyspace, "lg_1");
    for bad in [
        "scylla://a:9042",
        "scylla:///ks",
        "scylla://a/1ks",
        "scylla://a/ks-x",
        "fjall:///x",
    ] {
        assert!(
            matches!(ScyllaUri::parse(bad), Err(StoreError::BadUrl { .. })),
            "{bad}"
        );
    }
}

fn page(url: &str, t: i64, targets: &[&str]) -> PageWrite {
    conformance::page(url, t, targets)
}

/// The outlink set a page's partition holds after `p` was written.
fn prior_after(p: &PageWrite) -> Prior {
    Prior {
        fetched_at_ms: Some(p.fetched_at_ms),
        content_hash: p.content_hash,
        known: true,
        outlinks: p
            .links
            .iter()
            .map(|l| plan::Outlink {
                target: l.target_url.clone(),
                rel: l.rel.bits(),
                anchor: l.anchor.clone(),
                placement: l.placement.code(),
                kind: u8::from(l.kind == linkgraph_core::LinkKind::Redirect),
            })
            .collect(),
    }
}

fn stmts(ws: &[Write]) -> Vec<Stmt> {
    ws.iter().map(|w| w.stmt).collect()
}

fn count(ws: &[Write], s: Stmt) -> usize {
    ws.iter().filter(|w| w.stmt == s).count()
}

fn all_bindings_valid(p: &plan::Plan) {
    let schema = schema_columns();
    for w in p.graph.iter().chain(&p.page) {
        check_binding(&schema, w);
    }
}

#[test]
fn a_new_page_writes_edges_events_and_refdomain_rows() {
    let p = page(
        "http://www.src.com/a",
        1_000,
        &["http://t.com/1", "http://t.com/2", "http://www.src.com/in"],
    );
    let plan = plan::plan(&p, &Prior::default(), B);
    all_bindings_valid(&plan);
    assert_eq!((plan.stats.edges, plan.stats.new_edges), (3, 3));
    assert!(!plan.stats.changed, "a first fetch is not a change");
    assert_eq!(count(&plan.graph, Stmt::BacklinkPut), 3);
    assert_eq!(count(&plan.graph, Stmt::BacklinkFirstSeen), 3);
    assert_eq!(count(&plan.graph, Stmt::Event), 3);
    // One refdomain row: the internal link does not count.
    assert_eq!(count(&plan.graph, Stmt::RefPagePut), 1);
    let put = plan
        .graph
        .iter()
        .find(|w| w.stmt == Stmt::RefPagePut)
        .unwrap();
    assert_eq!(&put.values[1..3], &[CqlValue::Int(2), CqlValue::Int(2)]);
    assert_eq!(
        plan.transitions,
        vec![plan::Transition {
            target_domain: "t.com".into(),
            source_domain: "src.com".into(),
            appeared: true,
            discovered: true,
            fetched_before: None,
        }]
    );
    let ev = plan::transition_events(&plan.transitions[0], false, None, 1_000, B);
    assert_eq!(
        ev[0].values[4],
        CqlValue::Int(EventKind::DiscoveredRefdomain as i32)
    );
    // The page partition: 3 outlinks and the state, none in the graph phase.
    assert_eq!(count(&plan.page, Stmt::OutlinkPut), 3);
    assert_eq!(count(&plan.page, Stmt::PageState), 1);
    assert!(
        plan.page
            .iter()
            .all(|w| w.partition == "pages\0http://www.src.com/a")
    );
    assert!(
        plan.graph
            .iter()
            .all(|w| !w.partition.starts_with("pages\0"))
    );
}

#[test]
fn a_replayed_page_rewrites_the_same_cells_and_no_events() {
    let p = page("http://src.com/", 1_000, &["http://t.com/1"]);
    let first = plan::plan(&p, &Prior::default(), B);
    let again = plan::plan(&p, &prior_after(&p), B);
    assert_eq!(again.stats.new_edges, 0);
    assert_eq!(count(&again.graph, Stmt::Event), 0);
    assert!(again.transitions.is_empty());
    // Every cell written again is byte-identical (same value, same timestamp).
    let cells = |pl: &plan::Plan| {
        pl.graph
            .iter()
            .filter(|w| w.stmt != Stmt::Event && w.stmt != Stmt::EventDay)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(cells(&first), cells(&again));
    assert_eq!(first.page, again.page);
}

#[test]
fn a_stale_observation_only_lowers_first_seen_of_current_links() {
    let newer = page("http://s1.com/", 5_000, &["http://st.com/new"]);
    let stale = page(
        "http://s1.com/",
        4_000,
        &["http://st.com/old", "http://st.com/new"],
    );
    let plan = plan::plan(&stale, &prior_after(&newer), B);
    all_bindings_valid(&plan);
    assert_eq!(
        stmts(&plan.graph),
        vec![
            Stmt::Domain,
            Stmt::BacklinkFirstSeen,
            Stmt::SourceLinkFirstSeen,
            Stmt::RefPageFirstSeen
        ]
    );
    assert!(plan.page.is_empty());
    assert_eq!(plan.stats, WriteStats::default());
    let fs = &plan.graph[1];
    assert_eq!(fs.values[0], CqlValue::BigInt(plan::first_seen_ts(4_000)));
    assert_eq!(fs.values[1], CqlValue::BigInt(4_000));
}

#[test]
fn earlier_observations_win_first_seen_and_later_ones_everything_else() {
    assert!(plan::first_seen_ts(3_000) > plan::first_seen_ts(5_000));
    assert!(plan::ts(5_000) > plan::ts(3_000));
    assert!(
        plan::first_seen_ts(4_102_444_800_000) > 0,
        "year 2100 stays positive"
    );
    assert!(plan::first_seen_ts(0) > plan::ts(4_102_444_800_000));
}

#[test]
fn a_domain_back_through_an_older_page_retracts_its_loss() {
    let tr = plan::Transition {
        target_domain: "t.com".into(),
        source_domain: "x.com".into(),
        appeared: true,
        discovered: false,
        fetched_before: Some(1_000),
    };
    // Lost at 2,000; this page was last fetched at 1,000: the loss goes.
    let ws = plan::transition_events(&tr, false, Some(2_000), 2_100, B);
    assert_eq!(stmts(&ws), [Stmt::EventDelete]);
    check_binding(&schema_columns(), &ws[0]);
    assert_eq!(ws[0].values[0], CqlValue::BigInt(plan::ts(2_000) + 1));
    assert_eq!(
        ws[0].values[5],
        CqlValue::Int(EventKind::LostRefdomain as i32)
    );
    // Fetched after the loss: a real return.
    let later = plan::Transition {
        fetched_before: Some(2_500),
        ..tr
    };
    let ws = plan::transition_events(&later, false, Some(2_000), 3_000, B);
    assert_eq!(stmts(&ws), [Stmt::Event, Stmt::EventDay]);
}

#[test]
fn a_lost_link_and_a_lost_domain() {
    let before = page(
        "http://l1.com/page",
        1_000,
        &["http://lt.com/a", "http://lt.com/b", "http://x.com/"],
    );
    let after = page("http://l1.com/page", 2_000, &["http://lt.com/a"]);
    let plan = plan::plan(&after, &prior_after(&before), B);
    all_bindings_valid(&plan);
    assert_eq!(
        (
            plan.stats.edges,
            plan.stats.new_edges,
            plan.stats.lost_edges
        ),
        (1, 0, 2)
    );
    assert!(plan.stats.changed);
    assert_eq!(count(&plan.graph, Stmt::BacklinkLost), 2);
    assert_eq!(count(&plan.page, Stmt::OutlinkDelete), 2);
    // lt.com keeps a link (counts rewritten); x.com is gone from the page.
    let lost = plan
        .graph
        .iter()
        .find(|w| w.stmt == Stmt::RefPageLost)
        .unwrap();
    assert_eq!(lost.values[2], CqlValue::Text("x.com".into()));
    assert_eq!(count(&plan.graph, Stmt::RefLiveDelete), 1);
    assert_eq!(
        plan.transitions,
        vec![plan::Transition {
            target_domain: "x.com".into(),
            source_domain: "l1.com".into(),
            appeared: false,
            discovered: false,
            fetched_before: Some(1_000),
        }]
    );
    let ev = plan::transition_events(&plan.transitions[0], false, None, 2_000, B);
    check_binding(&schema_columns(), &ev[0]);
    assert_eq!(
        ev[0].values[4],
        CqlValue::Int(EventKind::LostRefdomain as i32)
    );
    assert!(plan::transition_events(&plan.transitions[0], true, None, 2_000, B).is_empty());
}

#[test]
fn a_304_sees_every_link_again_and_a_failure_keeps_them() {
    let before = page(
        "http://g1.com/",
        100,
        &["http://gt.com/1", "http://gt.com/2"],
    );
    let mut same = page("http://g1.com/", 250, &[]);
    same.status = 304;
    same.update = LinkSetUpdate::Unchanged;
    let plan = plan::plan(&same, &prior_after(&before), B);
    all_bindings_valid(&plan);
    assert_eq!(count(&plan.graph, Stmt::BacklinkLastSeen), 2);
    assert_eq!(count(&plan.graph, Stmt::RefPageLastSeen), 1);
    assert_eq!(stmts(&plan.page), vec![Stmt::PageSeen]);
    assert_eq!(plan.stats, WriteStats::default());

    let mut failed = page("http://g1.com/", 200, &[]);
    failed.status = 503;
    failed.update = LinkSetUpdate::Keep;
    let plan = plan::plan(&failed, &prior_after(&before), B);
    assert_eq!(stmts(&plan.graph), vec![Stmt::Domain]);
    assert_eq!(stmts(&plan.page), vec![Stmt::PageState]);
}

#[test]
fn attribute_changes_rewrite_follow_counts() {
    let before = page("http://f1.com/", 100, &["http://ft.com/"]);
    let mut after = before.clone();
    after.fetched_at_ms = 200;
    after.links[0].rel = Rel::NOFOLLOW;
    let plan = plan::plan(&after, &prior_after(&before), B);
    let put = plan
        .graph
        .iter()
        .find(|w| w.stmt == Stmt::RefPagePut)
        .unwrap();
    assert_eq!(
        &put.values[..3],
        &[
            CqlValue::BigInt(plan::ts(200)),
            CqlValue::Int(1),
            CqlValue::Int(0)
        ]
    );
    assert!(plan.transitions.is_empty());
}

#[test]
fn batches_never_span_partitions() {
    let p = page(
        "http://src.com/",
        1_000,
        &(0..300)
            .map(|i| format!("http://t{}.com/{i}", i % 3))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let plan = plan::plan(&p, &Prior::default(), B);
    let n = plan.graph.len();
    let batches = plan::batches(plan.graph, 64);
    assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), n);
    for b in &batches {
        assert!(b.len() <= 64);
        assert!(b.iter().all(|w| w.partition == b[0].partition));
    }
    // Buckets follow the source: one page's links to a domain share one.
    let backlink_parts: std::collections::HashSet<&str> = batches
        .iter()
        .flatten()
        .filter(|w| w.stmt == Stmt::BacklinkPut)
        .map(|w| w.partition.as_str())
        .collect();
    assert_eq!(backlink_parts.len(), 3);
    let spread: std::collections::HashSet<i32> = (0..100)
        .map(|i| plan::bucket(&format!("http://src.com/{i}"), B))
        .collect();
    assert_eq!(
        spread.len(),
        B as usize,
        "a domain's pages use every bucket"
    );
}

#[test]
fn buckets_are_stable_and_in_range() {
    assert_eq!(
        plan::bucket("http://a.com/", 16),
        plan::bucket("http://a.com/", 16)
    );
    assert!((0..1000).all(|i| (0..16).contains(&plan::bucket(&format!("u{i}"), 16))));
    assert_eq!(plan::bucket("anything", 1), 0);
    assert_eq!(plan::day(86_400_000 - 1), 0);
    assert_eq!(plan::day(86_400_000), 1);
    assert_eq!(plan::day(i64::MIN), i32::MIN);
}

fn row(sd: &str, links: u64, follow: u64, first: i64, last: i64, lost: i64) -> RefPageRow {
    RefPageRow {
        source_domain: sd.into(),
        links,
        follow_links: follow,
        first_seen_ms: Some(first),
        last_seen_ms: Some(last),
        lost_at_ms: lost,
    }
}

#[test]
fn refdomains_sum_their_pages() {
    let rows = vec![
        row("r1.com", 2, 2, 100, 100, 0),
        row("r1.com", 1, 1, 200, 200, 0),
        row("r2.github.io", 2, 2, 150, 150, 0),
        row("gone.com", 0, 0, 50, 60, 70),
        row("gone.com", 0, 0, 40, 80, 90),
    ];
    let live = aggregate_refdomains(rows.clone().into_iter(), Status::Live);
    let got: Vec<_> = live
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
    let lost = aggregate_refdomains(rows.into_iter(), Status::Lost);
    assert_eq!(lost.len(), 1);
    assert_eq!(
        (
            lost[0].first_seen_ms,
            lost[0].last_seen_ms,
            lost[0].lost_at_ms
        ),
        (40, 80, Some(90))
    );
}

async fn all_outlinks_of(store: &ScyllaStore, domain: &str) -> Vec<crate::Backlink> {
    let q = crate::OutlinkQuery {
        domain: domain.into(),
        status: Status::All,
        limit: 100,
        after: None,
    };
    store.outlinks(q).await.unwrap().items
}

/// The last good robots.txt of an origin survives in the store; a later
/// fetch replaces it, an earlier one does not.
#[tokio::test]
async fn robots_copies_are_kept_in_the_store() {
    let store = ScyllaStore::with_executor(std::sync::Arc::new(super::model::CqlModel::new()), 4);
    let url = "http://r.test/robots.txt";
    assert_eq!(store.robots_load(url).await.unwrap(), None);
    store
        .robots_save(url, 2_000, Some(b"User-agent: *\nDisallow: /x\xff"))
        .await
        .unwrap();
    store.robots_save(url, 1_000, None).await.unwrap();
    assert_eq!(
        store.robots_load(url).await.unwrap(),
        Some((2_000, Some(b"User-agent: *\nDisallow: /x\xff".to_vec())))
    );
    store.robots_save(url, 3_000, None).await.unwrap();
    assert_eq!(store.robots_load(url).await.unwrap(), Some((3_000, None)));
}

/// A keyspace made before `source_links` gets its external edges indexed
/// by the backfill, live and lost, with their attributes.
#[tokio::test]
async fn the_backfill_indexes_edges_written_before_source_links() {
    let model = std::sync::Arc::new(super::model::CqlModel::new());
    let store = ScyllaStore::with_executor(model.clone(), 4);
    let src = "http://bf.com/a";
    let links = ["http://bft.com/1", "http://bft.org/2", "http://bf.com/in"];
    store
        .write_page(conformance::page(src, 1_000, &links))
        .await
        .unwrap();
    store
        .write_page(conformance::page(src, 2_000, &links[1..]))
        .await
        .unwrap();
    let before = all_outlinks_of(&store, "bf.com").await;
    assert_eq!(before.len(), 2, "{before:?}");
    model.truncate("source_links");
    assert!(all_outlinks_of(&store, "bf.com").await.is_empty());
    assert_eq!(store.backfill_source_links().await.unwrap(), 2);
    assert_eq!(all_outlinks_of(&store, "bf.com").await, before);
    // Idempotent.
    store.backfill_source_links().await.unwrap();
    assert_eq!(all_outlinks_of(&store, "bf.com").await, before);
}

/// The shared conformance suite, on the store's real logic over a model of
/// CQL's semantics (see `model.rs`), with one, a few and many buckets.
#[tokio::test]
async fn conformance_suite_on_the_cql_model() {
    for buckets in [1, 4, 16] {
        let store =
            ScyllaStore::with_executor(std::sync::Arc::new(super::model::CqlModel::new()), buckets);
        conformance::run_all(&store).await;
    }
}

/// The shared conformance suite against a live ScyllaDB node, in a fresh
/// keyspace that is dropped afterwards.
#[tokio::test]
#[ignore = "needs a live ScyllaDB node: set LINKGRAPH_SCYLLA_URI=scylla://HOST:9042/KEYSPACE_PREFIX (make test then runs it)"]
async fn conformance_suite_on_scylla() {
    let Ok(base) = std::env::var("LINKGRAPH_SCYLLA_URI") else {
        panic!(
            "set LINKGRAPH_SCYLLA_URI=scylla://HOST:9042/KEYSPACE_PREFIX to a live ScyllaDB node"
        );
    };
    let mut uri = ScyllaUri::parse(&base).unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    uri.keyspace = format!("{}_{}_{nanos}", uri.keyspace, std::process::id());
    assert_eq!(ScyllaStore::init(&uri, 1, 4).await.unwrap(), 4);
    // Idempotent, and the first bucket count stays.
    assert_eq!(ScyllaStore::init(&uri, 1, 64).await.unwrap(), 4);
    let store = ScyllaStore::connect(&uri).await.unwrap();
    conformance::run_all(&store).await;
    ScyllaStore::drop_keyspace(&uri).await.unwrap();
}
