//! Shared harness of the end-to-end tests: a simulated web served in-process
//! on loopback, and the real `linkgraph` binary run against it.

#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use std::collections::BTreeSet;

use linkgraph_core::{Link, format_rfc3339_ms};
use linkgraph_simweb::{RequestLog, SimConfig, SimWeb};
use serde_json::Value;

/// A simulated web running on a loopback port.
pub struct Served {
    pub web: Arc<SimWeb>,
    pub addr: SocketAddr,
    pub log: Arc<RequestLog>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Serves a simulated web of this shape on 127.0.0.1.
pub async fn serve(hosts: usize, pages_per_host: usize, seed: u64) -> Served {
    serve_config(SimConfig {
        hosts,
        pages_per_host,
        seed,
        ..SimConfig::default()
    })
    .await
}

/// Serves a simulated web of this configuration on 127.0.0.1.
pub async fn serve_config(cfg: SimConfig) -> Served {
    let web = Arc::new(SimWeb::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(RequestLog::default());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(linkgraph_simweb::serve(
        listener,
        Arc::clone(&web),
        Some(Arc::clone(&log)),
        async {
            let _ = rx.await;
        },
    ));
    Served {
        web,
        addr,
        log,
        stop: Some(tx),
    }
}

/// Runs the `linkgraph` binary with `args` (off the async runtime).
pub async fn linkgraph(args: Vec<String>) -> Output {
    linkgraph_env(args, Vec::new()).await
}

/// Runs the `linkgraph` binary with `args` and extra environment variables.
pub async fn linkgraph_env(args: Vec<String>, env: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_linkgraph"))
            .args(&args)
            .env("LINKGRAPH_LOG", "warn")
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Owned command-line arguments.
pub fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// Runs `linkgraph` with `a`, which must succeed, and parses its JSON output.
pub async fn cli_json(a: &[&str]) -> Value {
    serde_json::from_str(&linkgraph_ok(args(a)).await).unwrap()
}

/// Runs `linkgraph` and panics with its output unless it succeeds.
pub async fn linkgraph_ok(args: Vec<String>) -> String {
    linkgraph_ok_env(args, Vec::new()).await
}

/// Runs `linkgraph` with extra environment and panics unless it succeeds.
pub async fn linkgraph_ok_env(args: Vec<String>, env: Vec<(String, String)>) -> String {
    let out = linkgraph_env(args.clone(), env).await;
    assert!(
        out.status.success(),
        "linkgraph {args:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `crawl` arguments against `served`, writing into `data`.
pub fn crawl_args(served: &Served, data: &Path, rps: f64, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "crawl".into(),
        "--seeds".into(),
        served.web.seed_url(),
        "--data".into(),
        data.display().to_string(),
        "--resolve".into(),
        format!("*={}", served.addr),
        "--allow-private-networks".into(),
        "--per-host-rps".into(),
        rps.to_string(),
        "--concurrency".into(),
        "32".into(),
    ];
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a
}

/// A number after `label` in a crawl summary, e.g. `summary_number(s, "edges")`.
pub fn summary_number(summary: &str, label: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in summary:\n{summary}"))
}

/// The number before `label` on the edges line, e.g. "12 lost".
pub fn summary_edges(summary: &str, label: &str) -> u64 {
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with("edges"))
        .unwrap_or_else(|| panic!("no edges line in summary:\n{summary}"));
    let words: Vec<String> = line
        .split_whitespace()
        .map(|w| w.trim_matches(',').to_owned())
        .collect();
    let i = words
        .iter()
        .position(|w| w == label)
        .unwrap_or_else(|| panic!("no {label:?} in {line:?}"));
    words[i - 1].parse().unwrap()
}

/// (domain, links, follow_links) per target domain, as a set of live edges implies.
pub fn expected_refdomains(
    live: &[linkgraph_core::Link],
) -> std::collections::BTreeMap<String, Vec<(String, u64, u64)>> {
    use std::collections::{BTreeMap, HashMap};
    let mut acc: BTreeMap<String, HashMap<String, (u64, u64)>> = BTreeMap::new();
    for l in live {
        let (s, t) = (l.source_domain().to_owned(), l.target_domain().to_owned());
        if s == t {
            continue;
        }
        let e = acc.entry(t).or_default().entry(s).or_default();
        e.0 += 1;
        e.1 += u64::from(l.rel.is_follow());
    }
    acc.into_iter()
        .map(|(t, m)| {
            let mut v: Vec<(String, u64, u64)> =
                m.into_iter().map(|(d, (n, f))| (d, n, f)).collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            (t, v)
        })
        .collect()
}

/// An edge with every attribute the store keeps.
pub type Full = (String, String, String, Vec<String>, String, String);

pub fn full(l: &Link) -> Full {
    (
        l.source_url.clone(),
        l.target_url.clone(),
        l.anchor.clone(),
        l.rel.names().iter().map(|s| (*s).to_owned()).collect(),
        l.placement.as_str().to_owned(),
        l.kind.as_str().to_owned(),
    )
}

pub fn full_json(v: &Value) -> Full {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let rel = v["rel"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    (
        s("source_url"),
        s("target_url"),
        s("anchor"),
        rel,
        s("placement"),
        s("kind"),
    )
}

pub fn env_at(ms: i64) -> Vec<(String, String)> {
    vec![("LINKGRAPH_NOW".into(), format_rfc3339_ms(ms))]
}

pub async fn stored(
    data: &std::path::Path,
    domains: &BTreeSet<String>,
    status: &str,
) -> BTreeSet<Full> {
    let mut out = BTreeSet::new();
    for d in domains {
        let args = vec![
            "backlinks".into(),
            d.clone(),
            "--data".into(),
            data.display().to_string(),
            "--include-internal".into(),
            "--status".into(),
            status.into(),
            "--format".into(),
            "jsonl".into(),
        ];
        let out_text = linkgraph(args).await;
        if !out_text.status.success() {
            continue; // a domain the store never saw
        }
        for line in String::from_utf8_lossy(&out_text.stdout).lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if status == "lost" {
                assert!(v["lost_at"].is_string(), "{line}");
                let why = v["lost_reason"].as_str().unwrap_or_default();
                assert!(
                    ["removed", "page_gone", "page_redirected"].contains(&why),
                    "{line}"
                );
            } else if status == "live" {
                assert!(
                    v["lost_at"].is_null() && v["lost_reason"].is_null(),
                    "{line}"
                );
            }
            assert!(out.insert(full_json(&v)), "duplicate {line}");
        }
    }
    out
}

/// `linkgraph refdomains DOMAIN --format json` as (domain, links, follow_links) rows.
pub async fn refdomains_json(data: &Path, domain: &str) -> Vec<(String, u64, u64)> {
    let d = data.display().to_string();
    let v = cli_json(&["refdomains", domain, "--data", &d, "--format", "json"]).await;
    assert_eq!(v["target"], domain);
    let rows: Vec<(String, u64, u64)> = v["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert!(d["first_seen"].as_str().unwrap().ends_with('Z'));
            (
                d["domain"].as_str().unwrap().into(),
                d["links"].as_u64().unwrap(),
                d["follow_links"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        v["referring_domains"].as_u64().unwrap() as usize,
        rows.len()
    );
    rows
}

/// Starts `linkgraph` with `args` in the background, output captured.
pub fn spawn_linkgraph(args: &[String]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_linkgraph"))
        .args(args)
        .env("LINKGRAPH_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends SIGTERM to `child`, waits, and returns its stdout; panics unless it exits 0.
pub async fn sigterm(child: std::process::Child) -> String {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Checks that no host saw two requests closer than 1/rps in `entries` (the
/// server's own arrival stamps, with a little loopback jitter allowed);
/// returns how many same-host pairs were checked.
pub fn assert_rate(entries: &[linkgraph_simweb::LoggedRequest], rps: f64) -> usize {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};
    let mut by_host: HashMap<&str, Vec<Instant>> = HashMap::new();
    for e in entries {
        by_host.entry(e.host.as_str()).or_default().push(e.at);
    }
    let min_gap = Duration::from_secs_f64(1.0 / rps);
    // The fetcher's limiter spaces request *starts*; the server stamps
    // arrivals. A request that opens a new connection (robots.txt, the
    // first page of a host) arrives later after its start than one that
    // reuses it, by the connect time, which reaches ~16 ms when two
    // distributed crawls share these 2 cores.
    let jitter = Duration::from_millis(25);
    let mut checked = 0;
    for (host, times) in &by_host {
        for w in times.windows(2) {
            let gap = w[1].duration_since(w[0]);
            assert!(
                gap + jitter >= min_gap,
                "{host} got two requests {gap:?} apart (limit {min_gap:?})"
            );
            checked += 1;
        }
    }
    checked
}

/// Checks that the live graph stored in `data` equals `edges`, every
/// attribute included, and that every referring-domain count does too.
pub async fn assert_graph_equals(data: &Path, edges: &[Link]) {
    let domains: BTreeSet<String> = edges.iter().map(|l| l.target_domain().to_owned()).collect();
    let want: BTreeSet<Full> = edges.iter().map(full).collect();
    let got = stored(data, &domains, "live").await;
    let missing: Vec<_> = want.difference(&got).take(5).collect();
    let extra: Vec<_> = got.difference(&want).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} missing (e.g. {missing:#?})\nextra {extra:#?}",
        want.difference(&got).count()
    );
    for (domain, rows) in &expected_refdomains(edges) {
        assert_eq!(
            &refdomains_json(data, domain).await,
            rows,
            "refdomains of {domain}"
        );
    }
}

/// Checks the server's own log: no robots.txt-disallowed path was requested.
pub fn assert_no_disallowed(served: &Served) -> Vec<linkgraph_simweb::LoggedRequest> {
    let log = served.log.snapshot();
    for e in &log {
        assert!(
            !served.web.disallowed(&e.host, &e.path),
            "requested disallowed {}{}",
            e.host,
            e.path
        );
    }
    log
}
