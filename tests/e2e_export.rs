//! End to end: `linkgraph export` writes Parquet files that DuckDB (the
//! Python package, installed by `make test`) reads back with the same
//! counts as the CLI's reports.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::*;
use linkgraph_core::registrable_domain;

/// Runs a DuckDB query in Python and returns its single integer.
fn duckdb(sql: &str) -> i64 {
    duckdb_text(sql).parse().unwrap()
}

/// Runs a DuckDB query in Python and returns its single value as text.
fn duckdb_text(sql: &str) -> String {
    let script = format!(
        "import duckdb, sys\nprint(duckdb.connect().execute(sys.argv[1]).fetchone()[0])\n# {}",
        "linkgraph export test"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script, sql])
        .output()
        .unwrap_or_else(|e| panic!("python3 is required for this test: {e}"));
    assert!(
        out.status.success(),
        "duckdb failed (install it with `python3 -m pip install duckdb`, as make test does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_reads_the_export_with_the_cli_counts() {
    let served = serve(16, 8, 3).await;
    let truth = served.web.truth();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    linkgraph_ok(crawl_args(&served, &data, 50.0, &["--no-progress"])).await;
    let out = dir.path().join("out");
    let d = data.display().to_string();
    let o = out.display().to_string();
    linkgraph_ok(vec!["rank".into(), "--data".into(), d.clone()]).await;
    let ranked = cli_json(&["domains", "--data", &d, "--format", "json"]).await;
    let said = linkgraph_ok(vec![
        "export".into(),
        "--data".into(),
        d.clone(),
        "--out".into(),
        o.clone(),
    ])
    .await;
    assert!(said.contains("exported"), "{said}");

    let q = |table: &str, cond: &str| {
        duckdb(&format!(
            "select count(*) from read_parquet('{o}/{table}/*.parquet') where {cond}"
        ))
    };
    assert_eq!(q("backlinks", "true") as usize, truth.edges.len());
    // Every URL the crawl requested, with its status.
    let fetched = truth.statuses.len() as i64;
    let answered = q(
        "pages",
        "outcome <> 'robots_denied' and url not like '%/sitemap.xml'",
    );
    assert_eq!(
        answered,
        fetched,
        "{}",
        duckdb_text(&format!(
            "select string_agg(distinct outcome, ',') from read_parquet('{o}/pages/*.parquet')"
        ))
    );
    // URLs robots.txt denied are there too, without a status.
    assert_eq!(
        q("pages", "outcome = 'robots_denied' and http_status is null") as usize,
        truth.disallowed.len()
    );
    let gone = truth.statuses.values().filter(|s| **s == 410).count() as i64;
    assert_eq!(q("pages", "http_status = 410"), gone);

    let domains: BTreeSet<&str> = served
        .web
        .hosts()
        .iter()
        .map(|h| registrable_domain(&h.name))
        .collect();
    for dom in domains.iter().take(5) {
        let rd = cli_json(&["refdomains", dom, "--data", &d, "--format", "json"]).await;
        let cli_rd = rd["referring_domains"].as_i64().unwrap();
        assert_eq!(
            q(
                "refdomains",
                &format!("target_domain = '{dom}' and lost_at is null")
            ),
            cli_rd,
            "{dom}"
        );
        let bl = linkgraph_ok(vec![
            "backlinks".into(),
            (*dom).into(),
            "--data".into(),
            d.clone(),
            "--format".into(),
            "jsonl".into(),
        ])
        .await;
        assert_eq!(
            q(
                "backlinks",
                &format!(
                    "target_domain = '{dom}' and source_domain <> '{dom}' and lost_at is null"
                )
            ),
            bl.lines().count() as i64,
            "{dom}"
        );
        let follow = rd["domains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["follow_links"].as_i64().unwrap())
            .sum::<i64>();
        assert_eq!(
            q(
                "backlinks",
                &format!(
                    "target_domain = '{dom}' and source_domain <> '{dom}' and lost_at is null and follow"
                )
            ),
            follow,
            "{dom}"
        );
    }
    // Every ranked domain, with its ranks as `domains` prints them.
    assert_eq!(q("domain_ranks", "true"), ranked["nodes"].as_i64().unwrap());
    let top = &ranked["domains"][0];
    let top_name = top["domain"].as_str().unwrap();
    assert_eq!(
        q(
            "domain_ranks",
            &format!(
                "domain = '{top_name}' and authority = 100 and abs(pagerank - {}) < 1e-15 and trust is null",
                top["pagerank"].as_f64().unwrap()
            )
        ),
        1
    );
    // A first crawl only discovers.
    assert_eq!(q("link_events", "kind = 'new_link'"), 0);
    assert!(q("link_events", "kind = 'discovered_link'") > 0);

    // The same directory again is refused, and nothing is overwritten.
    let again = linkgraph(vec!["export".into(), "--data".into(), d, "--out".into(), o]).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}
