//! Peer benchmark (`make bench-peers`): linkgraph against wget2 on the same
//! static web, in the same run.
//!
//! It writes a static multi-host web (`LINKGRAPH_PEERS_HOSTS` hosts x
//! `LINKGRAPH_PEERS_PAGES` pages, default 1,000 x 100, each page about 20 KB
//! with about 29 links: nav, content, footer, some nofollow, a few to other
//! hosts, a few to robots-disallowed paths), serves it with nginx on
//! loopback by Host header, and crawls it with:
//! 1. wget2, 64 threads, robots on (`wget2 -r -H --max-threads=64`), with
//!    the host names in a private /etc/hosts (`unshare -m` + a bind mount);
//! 2. linkgraph, broad (`--per-host-rps 1000 --concurrency 256`);
//! 3. linkgraph, polite (`--per-host-rps 5 --concurrency 512`);
//!
//! then one site of `LINKGRAPH_PEERS_SITE_PAGES` pages (default 20,000, the
//! same page shape, every link internal), as a site owner crawls their own:
//! 4. wget2, 16 threads, robots on, no host spanning;
//! 5. linkgraph `--per-host-concurrency 16`, and 6. the same with the
//!    default of 1, the in-run baseline of what the flag buys.
//!
//! Every crawler is measured the same way: the requests it made, counted in
//! nginx's access log, over the time from its first to its last request.
//! The polite crawl is also measured once each host is known: its requests
//! against the 1 + 5 x (seconds from the host's first request to its last)
//! that 5 requests/s allow each host while it is crawled, summed.
//!
//! A/B mode: with `LINKGRAPH_PEERS_AB=/path/to/older/linkgraph`, it runs
//! only wget2 and the broad crawl, alternating that binary and this build
//! `LINKGRAPH_PEERS_AB_RUNS` times each (default 3), and prints each pair's
//! ratio and their median: a change's effect, measured in one run. With
//! `LINKGRAPH_PEERS_AB_CRAWL=site` it alternates the one-site crawl instead
//! (after wget2 on that site), with `polite` the polite crawl, each run's
//! use of what 5 requests/s allow each host printed under it.
//! Needs root (for `unshare -m`), `nginx` and `wget2` (Debian `nginx-light`
//! and `wget2`; `make bench-peers` installs them).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "common/staticweb.rs"]
mod staticweb;
use staticweb::*;

/// The broad crawl's flags, in the full run and in A/B mode alike.
const BROAD: [&str; 4] = ["--per-host-rps", "1000", "--concurrency", "256"];
/// The polite crawl's flags: 5 requests/s per host.
const POLITE: [&str; 4] = ["--per-host-rps", "5", "--concurrency", "512"];
/// The flags of the one-site crawl, 16 requests at once to the site.
const OWN_SITE: [&str; 8] = [
    "--per-host-rps",
    "100000",
    "--per-host-concurrency",
    "16",
    "--concurrency",
    "64",
    "--max-urls-per-host",
    "1000000",
];

#[derive(Clone)]
struct Run {
    name: String,
    requests: usize,
    secs: f64,
    note: String,
}

impl Run {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

/// wget2 over `names`, with `threads` threads; `span` lets it follow
/// links to every host under `.test`.
fn run_wget2(
    dir: &Path,
    seed: &str,
    names: &[String],
    threads: usize,
    span: bool,
    log: &Path,
) -> Run {
    let hosts_file = dir.join("hosts");
    let mut f = std::fs::File::create(&hosts_file).unwrap();
    writeln!(f, "127.0.0.1 localhost").unwrap();
    for h in names {
        writeln!(f, "127.0.0.1 {h}").unwrap();
    }
    drop(f);
    settle_disk();
    let from = lines(log);
    let span_flags = if span { "-H -D test" } else { "" };
    let script = format!(
        "mount --bind {} /etc/hosts && exec wget2 -r -l inf {span_flags} --max-threads={threads} \
         --robots=on --delete-after -q -P {} {seed}",
        hosts_file.display(),
        dir.join("wget2").display()
    );
    let t0 = Instant::now();
    let st = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .status()
        .expect("unshare and wget2 are required (Debian util-linux, wget2)");
    let wall = t0.elapsed().as_secs_f64();
    // wget2 exits 8 when some request got an error status (the 404s).
    assert!(matches!(st.code(), Some(0 | 8)), "wget2 failed: {st}");
    let (requests, secs, statuses) = measure(log, from);
    Run {
        name: format!(
            "wget2 --max-threads={threads} --robots=on{}",
            if span { " -H" } else { "" }
        ),
        requests,
        secs,
        note: format!("{wall:.1} s wall, statuses {statuses:?}"),
    }
}

fn run_linkgraph(dir: &Path, seed: &str, port: u16, log: &Path, name: &str, flags: &[&str]) -> Run {
    run_binary(
        Path::new(env!("CARGO_BIN_EXE_linkgraph")),
        dir,
        seed,
        port,
        log,
        name,
        flags,
    )
}

fn run_binary(
    bin: &Path,
    dir: &Path,
    seed: &str,
    port: u16,
    log: &Path,
    name: &str,
    flags: &[&str],
) -> Run {
    let from = lines(log);
    let data = dir.join(format!("data-{}", name.replace(' ', "-")));
    settle_disk();
    let ticks = clock_ticks();
    let cpu0 = children_cpu_secs(ticks);
    let t0 = Instant::now();
    let out = Command::new(bin)
        .args(["crawl", "--seeds", seed, "--data"])
        .arg(&data)
        .args([
            "--resolve",
            &format!("*=127.0.0.1:{port}"),
            "--allow-private-networks",
        ])
        .args(["--per-ip-concurrency", "0", "--no-progress"])
        .args(flags)
        .env("LINKGRAPH_LOG", "warn")
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let wall = t0.elapsed().as_secs_f64();
    // The crawl was the only child waited for since `cpu0`.
    let cpu = children_cpu_secs(ticks) - cpu0;
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "linkgraph failed:\n{summary}");
    let (requests, secs, statuses) = measure(log, from);
    let rss = summary
        .lines()
        .find(|l| l.trim_start().starts_with("peak RSS"))
        .map_or("?".into(), |l| l.trim().to_owned());
    let edges = summary
        .lines()
        .find(|l| l.trim_start().starts_with("edges"))
        .map_or("?".into(), |l| l.trim().to_owned());
    let _ = std::fs::remove_dir_all(&data);
    Run {
        name: format!("linkgraph {name} ({})", flags.join(" ")),
        requests,
        secs,
        note: format!(
            "{wall:.1} s wall, {:.2} CPU s per 1,000 pages, {edges}, {rss}, statuses {statuses:?}",
            cpu * 1000.0 / requests.max(1) as f64
        ),
    }
}

fn main() {
    let hosts = env_usize("LINKGRAPH_PEERS_HOSTS", 1000);
    let pages = env_usize("LINKGRAPH_PEERS_PAGES", 100);
    let dir: PathBuf = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let t0 = Instant::now();
    let bytes = write_web(&dir.join("web"), hosts, pages, port);
    println!(
        "static web: {hosts} hosts x {pages} pages = {} pages, {:.0} MiB, written in {:.1} s to {}",
        hosts * pages,
        bytes as f64 / 1048576.0,
        t0.elapsed().as_secs_f64(),
        dir.display()
    );
    let nginx = start_nginx(&dir, port);
    let log = dir.join("access.log");
    let seed = format!("http://{}:{port}/", host(0));

    let names: Vec<String> = (0..hosts).map(host).collect();
    let wget2 = run_wget2(&dir, &seed, &names, 64, true, &log);
    if let Ok(older) = std::env::var("LINKGRAPH_PEERS_AB") {
        ab(&dir, &seed, port, &log, Path::new(&older), &wget2);
        stop_nginx(nginx);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let broad = run_linkgraph(&dir, &seed, port, &log, "broad", &BROAD);
    let polite_from = lines(&log);
    let polite = run_linkgraph(&dir, &seed, port, &log, "polite", &POLITE);
    let polite_hosts = politeness(&log, polite_from);
    // One site, crawled by its owner.
    let site_pages = env_usize("LINKGRAPH_PEERS_SITE_PAGES", 20_000);
    let t0 = Instant::now();
    let site_bytes = write_site(&dir.join("web"), site_pages, port);
    println!(
        "one site: {OWN}, {site_pages} pages, {:.0} MiB, written in {:.1} s",
        site_bytes as f64 / 1048576.0,
        t0.elapsed().as_secs_f64()
    );
    let site_seed = format!("http://{OWN}:{port}/");
    let wget2_site = run_wget2(&dir, &site_seed, &[OWN.to_owned()], 16, false, &log);
    let own = run_linkgraph(&dir, &site_seed, port, &log, "own site", &OWN_SITE);
    let own_one = run_linkgraph(
        &dir,
        &site_seed,
        port,
        &log,
        "own site, one at a time",
        &[
            "--per-host-rps",
            "100000",
            "--concurrency",
            "64",
            "--max-urls-per-host",
            "1000000",
        ],
    );
    stop_nginx(nginx);

    for r in [&wget2, &broad, &polite, &wget2_site, &own, &own_one] {
        println!(
            "{:<70} {:>7} requests in {:>6.1} s = {:>6.0} pages/s  [{}]",
            r.name,
            r.requests,
            r.secs,
            r.rate(),
            r.note
        );
    }
    print_ratio("linkgraph broad / wget2", broad.rate(), wget2.rate());
    let allowed = 5.0 * hosts as f64;
    println!(
        "linkgraph polite: {:.0} pages/s = {:.0}% of the {allowed:.0} pages/s that 5 requests/s per host allow (whole run, discovery of hosts included)",
        polite.rate(),
        100.0 * polite.rate() / allowed
    );
    println!("linkgraph polite, each host while it is crawled: {polite_hosts}");
    print_ratio(
        "linkgraph own site / wget2 16 threads",
        own.rate(),
        wget2_site.rate(),
    );
    print_ratio(
        "linkgraph own site, --per-host-concurrency 16 / 1",
        own.rate(),
        own_one.rate(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// How polite a crawl that logged from line `from` of `log` was, host by
/// host: politeness allows a host 1 + 5 x (seconds from its first request
/// to its last) requests while it is crawled; the share of that the crawl
/// used, once each host is known, and the gaps between a host's requests
/// (nginx logs to the millisecond).
fn politeness(log: &Path, from: usize) -> String {
    let times = host_times(log, from);
    let span = |t: &[f64]| {
        t.iter().copied().fold(f64::MIN, f64::max) - t.iter().copied().fold(f64::MAX, f64::min)
    };
    let used: usize = times.values().map(Vec::len).sum();
    let allowed: f64 = times.values().map(|t| 1.0 + 5.0 * span(t)).sum();
    let mut gaps: Vec<f64> = times
        .values()
        .flat_map(|t| t.windows(2).map(|w| (w[1] - w[0]) * 1e3))
        .collect();
    gaps.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        gaps.get((p * gaps.len() as f64) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    format!(
        "{:.0}% of what 5 requests/s allow ({used} requests against {allowed:.0}: 1 + 5 x each host's seconds from its first request to its last, summed over {} hosts); ms between a host's requests: p10 {:.0}, p50 {:.0}, p90 {:.0}, p99 {:.0}",
        100.0 * used as f64 / allowed,
        times.len(),
        pct(0.10),
        pct(0.50),
        pct(0.90),
        pct(0.99)
    )
}

/// Writes out what earlier runs left dirty in the page cache, so that no
/// run pays for the write-back of the one before (nginx logs every request
/// to disk): in this round's two full runs the polite crawl, which follows
/// the broad one, kept 92% and 93% of its allowance, and 95% after a sync.
fn settle_disk() {
    let _ = Command::new("sync").status();
}

/// A/B mode: the broad crawl (or, with `LINKGRAPH_PEERS_AB_CRAWL`, the
/// polite or the one-site crawl) by `older` and by this build, alternately.
fn ab(dir: &Path, seed: &str, port: u16, log: &Path, older: &Path, wget2: &Run) {
    let runs = env_usize("LINKGRAPH_PEERS_AB_RUNS", 3).max(1);
    let mut ratios = Vec::with_capacity(runs);
    let site_seed = format!("http://{OWN}:{port}/");
    let (seed, flags, wget2) = match std::env::var("LINKGRAPH_PEERS_AB_CRAWL").as_deref() {
        Ok("site") => {
            let pages = env_usize("LINKGRAPH_PEERS_SITE_PAGES", 20_000);
            write_site(&dir.join("web"), pages, port);
            let wget2 = run_wget2(dir, &site_seed, &[OWN.to_owned()], 16, false, log);
            (site_seed.as_str(), &OWN_SITE[..], wget2)
        }
        Ok("broad") | Err(_) => (seed, &BROAD[..], wget2.clone()),
        Ok("polite") => (seed, &POLITE[..], wget2.clone()),
        Ok(other) => panic!("LINKGRAPH_PEERS_AB_CRAWL is broad, polite or site, not {other:?}"),
    };
    println!("{}", wget2.name);
    // A polite run's politeness, from its own lines of the log.
    let polite = |from: usize| (flags == POLITE).then(|| politeness(log, from));
    for i in 0..runs {
        let from = lines(log);
        let a = run_binary(older, dir, seed, port, log, "older", flags);
        let a_polite = polite(from);
        let from = lines(log);
        let b = run_linkgraph(dir, seed, port, log, "this build", flags);
        for (r, polite) in [(&a, a_polite), (&b, polite(from))] {
            println!(
                "  run {i}: {:<60} {:>6.0} pages/s  [{}]",
                r.name,
                r.rate(),
                r.note
            );
            if let Some(p) = polite {
                println!("    each host while it is crawled: {p}");
            }
        }
        ratios.push(b.rate() / a.rate());
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "this build / older: median {:.3} over {runs} pairs ({ratios:.3?}); wget2 {:.0} pages/s",
        ratios[runs / 2],
        wget2.rate()
    );
}
