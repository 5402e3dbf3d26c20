//! End to end, over time: crawl the simulated web through several epochs of
//! change with `LINKGRAPH_NOW`, and check new and lost links, referring
//! domains and velocity against the web's ground truth of each epoch.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use linkgraph_core::{Link, format_rfc3339_ms, parse_time};
use linkgraph_simweb::{Burst, SimConfig};
use serde_json::Value;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

type Pair = (String, String);

/// Per domain per day: [new_links, lost_links, new_refdomains,
/// lost_refdomains, discovered_links, discovered_refdomains, undecided], where
/// a link is discovered when its page was fetched for the first time, and a
/// referring domain is "undecided" when it gained the target through both a
/// new and a discovered link in one recrawl (which comes first decides).
type Expected = BTreeMap<String, BTreeMap<String, [u64; 7]>>;

fn refdomain_sets(live: &BTreeMap<Pair, Link>) -> BTreeMap<String, BTreeSet<String>> {
    let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in live.values().filter(|l| !l.is_internal()) {
        m.entry(l.target_domain().to_owned())
            .or_default()
            .insert(l.source_domain().to_owned());
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_and_lost_links_and_velocity_match_every_epoch() {
    let served = serve(20, 10, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let base = parse_time("2026-03-02T12:00:00Z").unwrap();
    let mut known = BTreeSet::new();
    let mut prev: BTreeMap<Pair, Link> = BTreeMap::new();
    let mut ever: BTreeSet<Pair> = BTreeSet::new();
    let mut domains: BTreeSet<String> = BTreeSet::new();
    let mut expected: Expected = BTreeMap::new();

    for epoch in 0..4u32 {
        served.web.set_epoch(epoch);
        // 40 days apart: past every page's next fetch (the longest interval is 30 days).
        let now = base + i64::from(epoch) * 40 * DAY;
        let truth = served.web.truth_at(epoch, &known);
        let mut args = crawl_args(&served, &data, 50.0, &[]);
        if epoch > 0 {
            // A plain crawl over the data dir: no seeds, it recrawls what is due.
            let i = args.iter().position(|a| a == "--seeds").unwrap();
            args.drain(i..i + 2);
        }
        let summary = linkgraph_ok_env(args, env_at(now)).await;
        assert!(summary.contains("frontier empty"), "{summary}");
        if epoch > 0 {
            assert_eq!(
                summary_number(&summary, "recrawls") as usize,
                known.len(),
                "every known URL recrawled once\n{summary}"
            );
        }
        let known_before = std::mem::replace(&mut known, truth.known.clone());

        let live: BTreeMap<Pair, Link> = truth
            .truth
            .edges
            .iter()
            .map(|l| ((l.source_url.clone(), l.target_url.clone()), l.clone()))
            .collect();
        let new: Vec<&Link> = live
            .iter()
            .filter(|(k, _)| !prev.contains_key(*k))
            .map(|(_, l)| l)
            .collect();
        let lost: Vec<&Link> = prev
            .iter()
            .filter(|(k, _)| !live.contains_key(*k))
            .map(|(_, l)| l)
            .collect();
        assert_eq!(
            summary_edges(&summary, "new") as usize,
            new.len(),
            "epoch {epoch}\n{summary}"
        );
        assert_eq!(
            summary_edges(&summary, "lost") as usize,
            lost.len(),
            "epoch {epoch}\n{summary}"
        );
        if epoch > 0 {
            assert!(
                !new.is_empty() && !lost.is_empty(),
                "epoch {epoch} changes something"
            );
            assert!(
                summary.contains("not_modified"),
                "unchanged pages answer 304 to conditional recrawls\n{summary}"
            );
            // Every live link was seen again in this epoch, 304s included.
            let day = format_rfc3339_ms(now)[..10].to_owned();
            for d in &domains {
                let args = vec![
                    "backlinks".into(),
                    d.clone(),
                    "--data".into(),
                    data.display().to_string(),
                    "--include-internal".into(),
                    "--format".into(),
                    "jsonl".into(),
                ];
                for line in linkgraph_ok(args).await.lines() {
                    let v: Value = serde_json::from_str(line).unwrap();
                    assert!(
                        v["last_seen"].as_str().unwrap().starts_with(&day),
                        "epoch {epoch}: {line}"
                    );
                }
            }
        }

        // Expected velocity of this epoch's day.
        let day = format_rfc3339_ms(now - now.rem_euclid(DAY));
        let discovered = |l: &Link| !known_before.contains(&l.source_url);
        for l in new.iter().filter(|l| !l.is_internal()) {
            expected
                .entry(l.target_domain().into())
                .or_default()
                .entry(day.clone())
                .or_default()[if discovered(l) { 4 } else { 0 }] += 1;
        }
        for l in lost.iter().filter(|l| !l.is_internal()) {
            expected
                .entry(l.target_domain().into())
                .or_default()
                .entry(day.clone())
                .or_default()[1] += 1;
        }
        let (before, after) = (refdomain_sets(&prev), refdomain_sets(&live));
        let targets: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        let empty = BTreeSet::new();
        for t in targets {
            let (b, a) = (
                before.get(t).unwrap_or(&empty),
                after.get(t).unwrap_or(&empty),
            );
            let e = expected
                .entry(t.clone())
                .or_default()
                .entry(day.clone())
                .or_default();
            for gained in a.difference(b) {
                // How the domain's links to the target appeared: all on pages
                // fetched before (new), all on first fetches, or both.
                let how: BTreeSet<bool> = new
                    .iter()
                    .filter(|l| l.target_domain() == t.as_str())
                    .filter(|l| l.source_domain() == gained.as_str())
                    .map(|l| discovered(l))
                    .collect();
                let slot = match (how.contains(&false), how.contains(&true)) {
                    (true, false) => 2,
                    (false, true) => 5,
                    _ => 6,
                };
                e[slot] += 1;
            }
            e[3] += b.difference(a).count() as u64;
        }

        // The stored live and lost links equal the truth, attribute for attribute.
        domains.extend(live.values().map(|l| l.target_domain().to_owned()));
        ever.extend(live.keys().cloned());
        let want_live: BTreeSet<Full> = live.values().map(full).collect();
        let got_live = stored(&data, &domains, "live").await;
        let missing: Vec<_> = want_live.difference(&got_live).take(3).collect();
        let extra: Vec<_> = got_live.difference(&want_live).take(3).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "epoch {epoch}: missing {missing:#?} extra {extra:#?}"
        );
        let want_lost: BTreeSet<Pair> = ever
            .iter()
            .filter(|p| !live.contains_key(*p))
            .cloned()
            .collect();
        let got_lost: BTreeSet<Pair> = stored(&data, &domains, "lost")
            .await
            .into_iter()
            .map(|f| (f.0, f.1))
            .collect();
        assert_eq!(got_lost, want_lost, "epoch {epoch}: lost links");
        let live_list: Vec<Link> = live.values().cloned().collect();
        for (domain, rows) in expected_refdomains(&live_list) {
            assert_eq!(
                refdomains_json(&data, &domain).await,
                rows,
                "epoch {epoch}: refdomains of {domain}"
            );
        }
        prev = live;
    }

    // Velocity per day equals the truth's changes, for every target domain.
    for (domain, days) in &expected {
        let args = vec![
            "velocity".into(),
            domain.clone(),
            "--data".into(),
            data.display().to_string(),
            "--format".into(),
            "json".into(),
        ];
        let v: Value = serde_json::from_str(&linkgraph_ok(args).await).unwrap();
        assert_eq!(v["target"], domain.as_str());
        assert_eq!(v["bucket"], "day");
        let mut got: BTreeMap<String, [u64; 7]> = BTreeMap::new();
        for p in v["series"].as_array().unwrap() {
            let c = [
                "new_links",
                "lost_links",
                "new_refdomains",
                "lost_refdomains",
                "discovered_links",
                "discovered_refdomains",
            ]
            .map(|k| p[k].as_u64().unwrap());
            if c != [0; 6] {
                let [a, b, c, d, e, f] = c;
                got.insert(
                    p["start"].as_str().unwrap().to_owned(),
                    [a, b, c, d, e, f, 0],
                );
            }
        }
        // An undecided domain counts as new or as discovered, never both.
        for (day, want) in days.iter().filter(|(_, c)| **c != [0; 7]) {
            let g = got
                .get_mut(day)
                .unwrap_or_else(|| panic!("{domain}: no events on {day}"));
            assert!(
                g[2] >= want[2]
                    && g[5] >= want[5]
                    && (g[2] - want[2]) + (g[5] - want[5]) == want[6],
                "{domain} on {day}: new and discovered domains {g:?}, want {want:?}"
            );
            (g[2], g[5], g[6]) = (want[2], want[5], want[6]);
        }
        let want: BTreeMap<String, [u64; 7]> = days
            .iter()
            .filter(|(_, c)| **c != [0; 7])
            .map(|(d, c)| (d.clone(), *c))
            .collect();
        assert_eq!(got, want, "velocity of {domain}");
    }
    // The first crawl only discovers; later recrawls find new links too.
    let first = "2026-03-02T00:00:00.000Z";
    let sum = |i: usize, first_day: bool| -> u64 {
        expected
            .values()
            .flat_map(|d| d.iter())
            .filter(|(day, _)| (day.as_str() == first) == first_day)
            .map(|(_, c)| c[i])
            .sum()
    };
    assert_eq!(
        (sum(0, true), sum(2, true)),
        (0, 0),
        "nothing new on day one"
    );
    assert!(sum(4, true) > 0 && sum(5, true) > 0, "day one discovers");
    assert!(sum(0, false) > 0, "recrawls find new links");
    // The first epoch's events fall on the day LINKGRAPH_NOW names.
    assert!(
        expected
            .values()
            .any(|d| d.contains_key("2026-03-02T00:00:00.000Z"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_new_referring_domains_is_exactly_one_spike() {
    // 100 hosts (about 50 domains), so the least-linked host starts with few
    // referring domains and the burst stands out.
    let target = 99;
    let burst_epoch = 6;
    let served = serve_config(SimConfig {
        hosts: 100,
        pages_per_host: 3,
        seed: 5,
        burst: Some(Burst {
            epoch: burst_epoch,
            target,
        }),
        risk_patterns: false,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let base = parse_time("2026-03-02T12:00:00Z").unwrap();
    // Daily recrawls: a day and an hour apart, so every page is due each time.
    let at = |d: u32| base + i64::from(d) * (DAY + HOUR);
    for d in 0..10u32 {
        served.web.set_epoch(d);
        let args = crawl_args(
            &served,
            &data,
            50.0,
            &["--recrawl-initial", "1d", "--recrawl-max", "1d"],
        );
        linkgraph_ok_env(args, env_at(at(d))).await;
    }
    let domain = linkgraph_core::registrable_domain(&served.web.hosts()[target].name).to_owned();
    // From the day after the first crawl: that day discovers everything at once.
    let from = format_rfc3339_ms(at(1) - at(1).rem_euclid(DAY));
    let args = vec![
        "velocity".into(),
        domain.clone(),
        "--data".into(),
        data.display().to_string(),
        "--from".into(),
        from[..10].to_owned(),
        "--format".into(),
        "json".into(),
    ];
    let v: Value = serde_json::from_str(&linkgraph_ok(args).await).unwrap();
    let spikes = v["spikes"].as_array().unwrap();
    let burst_day = format_rfc3339_ms(at(burst_epoch) - at(burst_epoch).rem_euclid(DAY));
    assert_eq!(spikes.len(), 1, "{v:#}");
    assert_eq!(spikes[0]["start"], burst_day.as_str(), "{v:#}");
    assert!(spikes[0]["new_refdomains"].as_u64().unwrap() >= 20, "{v:#}");
    assert_eq!(v["series"].as_array().unwrap().len(), 9, "days 1..=9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_mode_keeps_recrawling_until_sigterm() {
    let served = serve(8, 5, 9).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = crawl_args(
        &served,
        &data,
        100.0,
        &[
            "--continuous",
            "--recrawl-initial",
            "2s",
            "--recrawl-min",
            "1s",
            "--recrawl-max",
            "2s",
            "--no-progress",
        ],
    );
    let child = spawn_linkgraph(&args);
    let truth0 = served.web.truth_at(0, &BTreeSet::new());
    // Let the first crawl finish, then change the web under the running crawler.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    served.web.set_epoch(1);
    let truth1 = served.web.truth_at(1, &truth0.known);
    let requests_at_switch = served.log.len();
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert!(
        served.log.len() > requests_at_switch,
        "it kept crawling after the frontier emptied"
    );
    let summary = sigterm(child).await;
    assert!(summary.contains("interrupted"), "{summary}");
    assert!(summary_number(&summary, "recrawls") > 0, "{summary}");

    // What it stored is the second epoch's truth, reached by recrawls alone.
    let pairs = |t: &linkgraph_simweb::Truth| -> BTreeSet<Pair> {
        t.edges
            .iter()
            .map(|l| (l.source_url.clone(), l.target_url.clone()))
            .collect()
    };
    let (p0, p1) = (pairs(&truth0.truth), pairs(&truth1.truth));
    assert_eq!(
        summary_edges(&summary, "lost") as usize,
        p0.difference(&p1).count(),
        "{summary}"
    );
    assert_eq!(
        summary_edges(&summary, "new") as usize,
        p0.len() + p1.difference(&p0).count(),
        "{summary}"
    );
    let domains: BTreeSet<String> = truth1
        .truth
        .edges
        .iter()
        .map(|l| l.target_domain().to_owned())
        .collect();
    let want: BTreeSet<Full> = truth1.truth.edges.iter().map(full).collect();
    assert_eq!(stored(&data, &domains, "live").await, want);
}
