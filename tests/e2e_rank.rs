//! Domain ranks and the network footprint, end to end: crawl a simulated
//! web with the real binary, `rank` it, and check every domain's PageRank,
//! harmonic centrality and trust against networkx (an independent
//! implementation) on the web's ground-truth dofollow domain graph; then
//! place some hosts on their own loopback /24 through `--resolve` and check
//! that `risk` flags exactly their domains as a shared network.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::{args, cli_json, crawl_args, linkgraph_ok, serve};

use linkgraph_core::{registrable_domain, url_host};
use serde_json::{Value, json};

/// Runs networkx on `graph` ({"nodes", "arcs", "seed"}) and returns, per
/// node, [pagerank, harmonic, trust].
fn networkx(graph: &Value) -> BTreeMap<String, [f64; 3]> {
    let script = r#"
import json, sys
import networkx as nx
g = json.load(sys.stdin)
G = nx.DiGraph()
G.add_nodes_from(g["nodes"])
G.add_edges_from(g["arcs"])
pr = nx.pagerank(G, alpha=0.85, tol=1e-15, max_iter=10000)
h = nx.harmonic_centrality(G)
seed = {n: (1.0 if n == g["seed"] else 0.0) for n in g["nodes"]}
tr = nx.pagerank(G, alpha=0.85, personalization=seed, dangling=seed, tol=1e-15, max_iter=10000)
json.dump({n: [pr[n], h[n], tr[n]] for n in g["nodes"]}, sys.stdout)
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with networkx is required (make test installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(graph.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "networkx failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Serves the same web on `ip` too (a loopback address), until the
/// returned sender is dropped.
async fn serve_also_on(
    served: &common::Served,
    ip: &str,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(linkgraph_simweb::serve(
        listener,
        Arc::clone(&served.web),
        None,
        async {
            let _ = rx.await;
        },
    ));
    (addr, tx)
}

/// Runs `linkgraph` and parses what it prints as JSON.
/// Every risk signal kind `risk` reports, as the issue defines them.
const SIGNAL_KINDS: [&str; 7] = [
    "reciprocal",
    "link_farm",
    "sitewide",
    "exact_match_anchor",
    "velocity_spike",
    "shared_network",
    "low_authority",
];

fn domain_of(url: &str) -> String {
    registrable_domain(url_host(url)).to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn ranks_match_networkx_on_the_ground_truth_domain_graph() {
    let served = serve(40, 8, 11).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.display().to_string();
    linkgraph_ok(crawl_args(
        &served,
        &data,
        200.0,
        &["--per-ip-concurrency", "0"],
    ))
    .await;

    // Before rank: no authority, and `domains` says to run rank.
    let popular = served.web.popular_domain().to_owned();
    let rd = |v: &Value| v["domains"].as_array().unwrap().clone();
    let before: Value = cli_json(&["refdomains", &popular, "--data", &d, "--format", "json"]).await;
    assert!(rd(&before).iter().all(|r| r["authority"].is_null()));
    let out = common::linkgraph(args(&["domains", "--data", &d])).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("run `linkgraph rank`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The ground truth's dofollow domain graph.
    let truth = served.web.truth();
    let mut nodes: BTreeSet<String> = BTreeSet::new();
    let mut arcs: BTreeSet<(String, String)> = BTreeSet::new();
    for url in truth.statuses.keys().chain(truth.disallowed.iter()) {
        nodes.insert(domain_of(url));
    }
    for e in &truth.edges {
        let (s, t) = (domain_of(&e.source_url), domain_of(&e.target_url));
        nodes.insert(s.clone());
        nodes.insert(t.clone());
        if s != t && e.rel.is_follow() {
            arcs.insert((s, t));
        }
    }
    let seed = popular.clone();
    let trusted = dir.path().join("trusted.txt");
    std::fs::write(&trusted, format!("# our seed\n{seed}\n")).unwrap();
    linkgraph_ok(args(&[
        "rank",
        "--data",
        &d,
        "--trusted",
        &trusted.display().to_string(),
    ]))
    .await;
    let doc: Value = cli_json(&["domains", "--data", &d, "--format", "json"]).await;
    assert_eq!(doc["harmonic_method"], "exact");
    assert_eq!(doc["arcs"].as_u64().unwrap() as usize, arcs.len());
    let rows = doc["domains"].as_array().unwrap();
    let got: BTreeSet<String> = rows
        .iter()
        .map(|r| r["domain"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, nodes, "one node per domain of the graph");
    // Sorted by authority, descending.
    let auth: Vec<f64> = rows
        .iter()
        .map(|r| r["authority"].as_f64().unwrap())
        .collect();
    assert!(auth.windows(2).all(|w| w[0] >= w[1]), "{auth:?}");
    assert_eq!(auth[0], 100.0);

    let graph = json!({
        "nodes": nodes.iter().collect::<Vec<_>>(),
        "arcs": arcs.iter().map(|(s, t)| [s, t]).collect::<Vec<_>>(),
        "seed": seed,
    });
    let want = networkx(&graph);
    for r in rows {
        let name = r["domain"].as_str().unwrap();
        let [pr, h, tr] = want[name];
        for (what, g, w) in [
            ("pagerank", r["pagerank"].as_f64().unwrap(), pr),
            ("harmonic", r["harmonic"].as_f64().unwrap(), h),
            ("trust", r["trust"].as_f64().unwrap(), tr),
        ] {
            assert!(
                (g - w).abs() < 1e-6,
                "{name} {what}: linkgraph {g}, networkx {w}"
            );
        }
    }

    // refdomains now carries each domain's authority, as `domains` has it.
    let by_name: BTreeMap<&str, f64> = rows
        .iter()
        .map(|r| {
            (
                r["domain"].as_str().unwrap(),
                r["authority"].as_f64().unwrap(),
            )
        })
        .collect();
    let after: Value = cli_json(&["refdomains", &popular, "--data", &d, "--format", "json"]).await;
    assert!(!rd(&after).is_empty());
    for r in rd(&after) {
        let a = r["authority"].as_f64().unwrap();
        let want = by_name[r["domain"].as_str().unwrap()];
        assert!((a - (want * 10.0).round() / 10.0).abs() < 1e-9, "{r}");
    }
    // ...and live referring domains equal the refdomains report's count.
    let popular_row = rows
        .iter()
        .find(|r| r["domain"] == popular.as_str())
        .unwrap();
    assert_eq!(
        popular_row["referring_domains"].as_u64().unwrap() as usize,
        rd(&after).len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_on_one_loopback_slash_24_are_a_shared_network() {
    let served = serve(30, 4, 5).await;
    let popular = served.web.popular_domain().to_owned();
    // Three referring domains of the popular domain, each served on its own
    // address of 127.0.77.0/24 (the same web, another listener).
    let truth = served.web.truth();
    let referring: BTreeSet<String> = truth
        .edges
        .iter()
        .filter(|e| domain_of(&e.target_url) == popular && domain_of(&e.source_url) != popular)
        .map(|e| url_host(&e.source_url).to_owned())
        .collect();
    let network: Vec<String> = referring.iter().take(3).cloned().collect();
    assert_eq!(network.len(), 3, "the web has enough referring hosts");
    let mut extra = Vec::new();
    let mut stops = Vec::new();
    for (i, host) in network.iter().enumerate() {
        let (addr, stop) = serve_also_on(&served, &format!("127.0.77.{}", i + 1)).await;
        stops.push(stop);
        extra.push("--resolve".to_owned());
        extra.push(format!("{host}={addr}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.display().to_string();
    let mut a = crawl_args(&served, &data, 200.0, &["--per-ip-concurrency", "0"]);
    // Host rules before the catch-all.
    let star = a.iter().position(|x| x.starts_with("*=")).unwrap();
    for (k, v) in extra.into_iter().enumerate() {
        a.insert(star - 1 + k, v);
    }
    linkgraph_ok(a).await;
    let risk: Value = cli_json(&["risk", &popular, "--data", &d, "--format", "json"]).await;
    let flagged: BTreeSet<String> = risk["domains"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["signals"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["kind"] == "shared_network")
        })
        .map(|r| r["domain"].as_str().unwrap().to_owned())
        .collect();
    let want: BTreeSet<String> = network
        .iter()
        .map(|h| registrable_domain(h).to_owned())
        .collect();
    assert_eq!(flagged, want, "{risk:#}");
    let detail = risk.to_string();
    assert!(
        detail.contains("in 127.0.77.0/24 with 2 other referring domains"),
        "{detail}"
    );
    // Everyone else answered from 127.0.0.1: shared hosting, said in a note.
    let notes = risk["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("127.0.0.0/24 hosts ")),
        "{notes:?}"
    );
    drop(stops);
}

const DAY: i64 = 86_400_000;
/// `--low-authority` for the planted test: high enough that some referring
/// domains of a small web fall below it.
const LOW_AUTHORITY: f64 = 60.0;

/// The signals each referring domain of `target` must carry, computed from
/// the ground truth by the definitions (default thresholds, and
/// [`LOW_AUTHORITY`]), independently
/// of `risk`'s code.
fn expected_signals(
    target: &str,
    before: &linkgraph_simweb::Truth,
    now: &linkgraph_simweb::Truth,
    network: &BTreeSet<String>,
    authority: &BTreeMap<String, f64>,
) -> BTreeMap<String, BTreeSet<&'static str>> {
    use linkgraph_query::overview::{AnchorKind, anchor_kind};
    let refdomains = |t: &linkgraph_simweb::Truth| -> BTreeSet<String> {
        t.edges
            .iter()
            .filter(|e| domain_of(&e.target_url) == target && domain_of(&e.source_url) != target)
            .map(|e| domain_of(&e.source_url))
            .collect()
    };
    let r = refdomains(now);
    let new = &r - &refdomains(before);
    let mut out: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    let mut flag = |d: &str, k: &'static str| {
        out.entry(d.to_owned()).or_default().insert(k);
    };
    // Pages of each referring domain that link the target, and their anchors.
    let mut linking: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    let mut users: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for e in &now.edges {
        let s = domain_of(&e.source_url);
        if domain_of(&e.target_url) == target && s != target {
            linking.entry(s.clone()).or_default().insert(&e.source_url);
            if anchor_kind(&e.anchor, target) == AnchorKind::Other {
                users.entry(&e.anchor).or_default().insert(s);
            }
        }
    }
    for d in &r {
        // reciprocal
        if now
            .edges
            .iter()
            .any(|e| domain_of(&e.source_url) == target && domain_of(&e.target_url) == *d)
        {
            flag(d, "reciprocal");
        }
        // link_farm: a linking page with >= 100 distinct external target URLs
        for page in &linking[d] {
            let external: BTreeSet<&str> = now
                .edges
                .iter()
                .filter(|e| e.source_url == *page && domain_of(&e.target_url) != *d)
                .map(|e| e.target_url.as_str())
                .collect();
            if external.len() >= 100 {
                flag(d, "link_farm");
            }
        }
        // sitewide: >= 5 linking pages, >= 50% of its pages answered 200
        let l = linking[d].len();
        let crawled = now
            .statuses
            .iter()
            .filter(|(u, s)| **s == 200 && domain_of(u) == *d)
            .count();
        if l >= 5 && l as f64 / crawled.max(l) as f64 >= 0.5 {
            flag(d, "sitewide");
        }
        if network.contains(d) {
            flag(d, "shared_network");
        }
        if new.contains(d) {
            flag(d, "velocity_spike");
        }
        if authority.get(d).is_some_and(|a| *a < LOW_AUTHORITY) {
            flag(d, "low_authority");
        }
    }
    // exact_match_anchor: an "other" anchor used by >= 3 and >= 20% of them
    for us in users.values() {
        if us.len() >= 3 && us.len() as f64 / r.len() as f64 >= 0.2 {
            for d in us {
                flag(d, "exact_match_anchor");
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn planted_patterns_carry_their_signals_and_no_domain_more() {
    let served = common::serve_config(linkgraph_simweb::SimConfig {
        hosts: 60,
        pages_per_host: 6,
        seed: 31,
        burst: Some(linkgraph_simweb::Burst {
            epoch: 1,
            target: 59,
        }),
        risk_patterns: true,
    })
    .await;
    let planted = served.web.planted().unwrap().clone();
    let target = planted.target.clone();
    // The network's hosts answer from 127.0.77.1-3 (the same web, another
    // listener each); every other host from 127.0.0.1.
    let mut resolve = Vec::new();
    let mut stops = Vec::new();
    for (i, d) in planted.network.iter().enumerate() {
        let (addr, stop) = serve_also_on(&served, &format!("127.0.77.{}", i + 1)).await;
        stops.push(stop);
        for host in served.web.hosts_of(d) {
            resolve.push(format!("{host}={addr}"));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.display().to_string();
    let crawl = |seeds: bool| {
        let mut a = args(&["crawl", "--data", &d]);
        for r in &resolve {
            a.extend(args(&["--resolve", r]));
        }
        a.extend(args(&[
            "--resolve",
            &format!("*={}", served.addr),
            "--allow-private-networks",
            "--per-host-rps",
            "200",
            "--per-ip-concurrency",
            "0",
            "--concurrency",
            "32",
        ]));
        if seeds {
            a.extend(args(&["--seeds", &served.web.seed_url()]));
        }
        a
    };
    // Two crawls 40 days apart: the second sees the burst (every home page
    // starts linking the target), a spike of new referring domains.
    let base = linkgraph_core::parse_time("2026-05-04T12:00:00Z").unwrap();
    let t0 = served.web.truth_at(0, &BTreeSet::new());
    common::linkgraph_ok_env(crawl(true), common::env_at(base)).await;
    served.web.advance();
    let t1 = served.web.truth_at(1, &t0.known);
    common::linkgraph_ok_env(crawl(false), common::env_at(base + 40 * DAY)).await;
    let now = common::env_at(base + 41 * DAY);
    common::linkgraph_ok_env(args(&["rank", "--data", &d]), now.clone()).await;
    let domains: Value = cli_json(&["domains", "--data", &d, "--format", "json"]).await;
    let authority: BTreeMap<String, f64> = domains["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["domain"].as_str().unwrap().to_owned(),
                r["authority"].as_f64().unwrap(),
            )
        })
        .collect();
    let risk: Value = serde_json::from_str(
        &common::linkgraph_ok_env(
            args(&[
                "risk",
                &target,
                "--data",
                &d,
                "--format",
                "json",
                "--low-authority",
                &LOW_AUTHORITY.to_string(),
            ]),
            now.clone(),
        )
        .await,
    )
    .unwrap();
    let mut got: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    let weight = |k: &str| match k {
        "reciprocal" | "velocity_spike" => 15,
        "link_farm" => 35,
        "sitewide" => 20,
        "exact_match_anchor" => 25,
        "shared_network" => 30,
        "low_authority" => 10,
        other => panic!("unknown signal {other}"),
    };
    for r in risk["domains"].as_array().unwrap() {
        let kinds: BTreeSet<&'static str> = r["signals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let k = s["kind"].as_str().unwrap();
                assert!(!s["detail"].as_str().unwrap().is_empty(), "{s}");
                SIGNAL_KINDS.into_iter().find(|x| *x == k).unwrap()
            })
            .collect();
        let score: u64 = kinds.iter().map(|k| weight(k)).sum::<u64>().min(100);
        assert_eq!(r["score"].as_u64(), Some(score), "{r}");
        got.insert(r["domain"].as_str().unwrap().to_owned(), kinds);
    }
    let network: BTreeSet<String> = planted.network.iter().cloned().collect();
    let want = expected_signals(&target, &t0.truth, &t1.truth, &network, &authority);
    // Every planted domain carries its signal...
    let has = |d: &str, k: &str| got.get(d).is_some_and(|s| s.contains(k));
    for d in &planted.reciprocal {
        assert!(has(d, "reciprocal"), "{d}: {:?}", got.get(d));
    }
    assert!(
        has(&planted.link_farm, "link_farm"),
        "{:?}",
        got.get(&planted.link_farm)
    );
    assert!(
        has(&planted.sitewide, "sitewide"),
        "{:?}",
        got.get(&planted.sitewide)
    );
    for d in &planted.anchor_campaign {
        assert!(has(d, "exact_match_anchor"), "{d}: {:?}", got.get(d));
    }
    for d in &planted.network {
        assert!(has(d, "shared_network"), "{d}: {:?}", got.get(d));
    }
    assert!(
        got.values().any(|s| s.contains("velocity_spike")),
        "the burst is a spike: {risk:#}"
    );
    // ...and every domain carries exactly the signals whose definitions it
    // meets in the ground truth.
    assert_eq!(got, want, "{risk:#}");
    for k in SIGNAL_KINDS {
        let n = want.values().filter(|s| s.contains(k)).count();
        eprintln!("{k}: {n} domains");
        assert!(n > 0, "no domain meets {k}: the check would be empty");
    }
    drop(stops);
}
