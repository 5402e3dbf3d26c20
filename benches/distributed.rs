//! Distributed throughput benchmark (`make bench-distributed`): the same
//! static web as `make bench-peers` (`LINKGRAPH_DIST_HOSTS` x
//! `LINKGRAPH_DIST_PAGES`, default 1,000 x 100), served by nginx on
//! loopback, crawled in the same run by
//! 1. the embedded crawl (`linkgraph crawl`), the baseline;
//! 2. the services over a tansu broker on loopback (memory storage): one
//!    frontier, one fetcher and one parser;
//! 3. the same with two fetchers;
//! 4. one, then two fetchers where the fetchers are the bottleneck: the same
//!    web from an nginx that sends each connection at most 64 KB/s (a page
//!    takes about 0.3 s), each fetcher 32 fetches at once, 30 s each. A
//!    fetcher then does about 32 / 0.3 s pages/s whatever the CPU, and a
//!    second one should double it.
//!
//! Every run uses the same crawl flags (`--per-host-rps 1000`, 256 fetches
//! at once per fetcher or crawl, no per-IP limit) and is measured the same
//! way: requests counted in nginx's access log over the time from the first
//! to the last, and the CPU seconds each process used (the broker's too,
//! from `/proc/PID/stat`), per 1,000 pages, so a reader can size a cluster.
//! A distributed run ends when the frontier has been idle for 10 s or after
//! `LINKGRAPH_DIST_SECONDS` (default 120) from its first request.
//!
//! Topics get `LINKGRAPH_DIST_PARTITIONS` partitions (default 4: room for
//! the run's two fetchers). Not `topics create`'s 12: tansu's memory storage
//! lists every batch a partition has ever stored to answer each fetch, and
//! producers make one batch per partition per linger window, so with 12
//! the broker spent about half the pipeline's extra CPU listing batches,
//! more the longer the run (README, `make bench-distributed`).
//!
//! Needs `nginx` (Debian `nginx-light`) and `tansu` (`make test` installs
//! it into ~/.cargo/bin).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/disk.rs"]
mod disk;
#[path = "common/staticweb.rs"]
mod staticweb;
use staticweb::*;

/// Flags every run shares: a broad crawl, bounded by CPU, not politeness.
const RPS: &str = "1000";
const CONCURRENCY: &str = "256";
/// The fetch-bound runs: nginx sends each connection at most this much per
/// second (a ~20 KB page takes ~0.3 s, a slow but ordinary web server) ...
const SLOW_RATE: &str = "64k";
/// ... each fetcher fetches this many pages at once ...
const SLOW_CONCURRENCY: &str = "32";
/// ... and each run lasts this long from its first request.
const SLOW_SECONDS: Duration = Duration::from_secs(30);

fn tansu() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("tansu")).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/tansu"));
    }
    candidates.into_iter().find(|p| p.is_file()).expect(
        "tansu is required: cargo install tansu --version 0.6.0 --features dynostore --locked",
    )
}

/// The requests of one run and the CPU seconds of each of its processes.
struct Run {
    name: String,
    requests: usize,
    secs: f64,
    cpu: Vec<(String, f64)>,
    /// Where the logs of a run that hit its time limit were kept.
    stalled: Option<PathBuf>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

/// Named child processes, killed when dropped (a failed run leaves nothing
/// running).
#[derive(Default)]
struct Procs(Vec<(String, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn linkgraph(args: &[String], log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_linkgraph"))
        .args(args)
        .env("LINKGRAPH_LOG", "info,lsm_tree=warn,fjall=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn run_embedded(dir: &Path, seed: &str, port: u16, access: &Path, ticks: f64) -> Run {
    let from = lines(access);
    let before = children_cpu_secs(ticks);
    let data = dir.join("data-embedded");
    let out = Command::new(env!("CARGO_BIN_EXE_linkgraph"))
        .args(["crawl", "--seeds", seed, "--data"])
        .arg(&data)
        .args(["--resolve", &format!("*=127.0.0.1:{port}")])
        .args(["--allow-private-networks", "--per-ip-concurrency", "0"])
        .args(["--per-host-rps", RPS, "--concurrency", CONCURRENCY])
        .arg("--no-progress")
        .env("LINKGRAPH_LOG", "warn")
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the embedded crawl failed:\n{summary}"
    );
    let cpu = children_cpu_secs(ticks) - before;
    let (requests, secs, _) = measure(access, from);
    // The stored bytes per edge, for sizing a store: the engine's tables
    // (its journals are a bounded write-ahead log, not data).
    let edges: u64 = summary
        .lines()
        .find_map(|l| {
            l.trim_start()
                .strip_prefix("edges")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let (all, journals) = disk::disk_bytes(&data.join("store"));
    println!(
        "embedded store: {edges} edges, {:.0} MiB of tables (+{:.0} MiB of journal) = {:.0} bytes per edge",
        (all - journals) as f64 / 1048576.0,
        journals as f64 / 1048576.0,
        (all - journals) as f64 / edges.max(1) as f64
    );
    let _ = std::fs::remove_dir_all(&data);
    Run {
        name: "embedded (linkgraph crawl)".into(),
        requests,
        secs,
        cpu: vec![("crawl".into(), cpu)],
        stalled: None,
    }
}

fn free_port_after(port: u16) -> u16 {
    loop {
        let p = free_port();
        if p != port {
            return p;
        }
    }
}

/// What one distributed run varies.
struct Shape {
    fetchers: usize,
    /// Each fetcher's `--concurrency`.
    fetch_concurrency: &'static str,
    /// Time limit after the first request.
    limit: Duration,
    /// Whether the run should end with the frontier idle (the whole web
    /// crawled) rather than at its time limit.
    until_idle: bool,
    /// Named in the run's label and directory.
    web: &'static str,
}

/// One frontier, `shape.fetchers` fetchers and one parser over a fresh
/// tansu, crawling the web nginx serves on `port`.
fn run_distributed(
    dir: &Path,
    seed: &str,
    (port, access): (u16, &Path),
    ticks: f64,
    shape: &Shape,
) -> Run {
    let fetchers = shape.fetchers;
    let run_dir = dir.join(format!("dist-{}-{fetchers}", shape.web));
    std::fs::create_dir_all(&run_dir).unwrap();
    let bport = free_port_after(port);
    let listener = format!("tcp://127.0.0.1:{bport}");
    let broker = Command::new(tansu())
        .args(["broker", "--listener-url", &listener])
        .args(["--advertised-listener-url", &listener])
        .args(["--storage-engine", "memory://tansu/"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(run_dir.join("broker.log")).unwrap())
        .spawn()
        .unwrap();
    let broker_pid = broker.id();
    let _broker = Procs(vec![("broker".into(), broker)]);
    wait_for_port(bport, Duration::from_secs(30), "tansu");
    let bus = format!("kafka://127.0.0.1:{bport}");
    let s = |v: &str| v.to_owned();
    let ok = |args: Vec<String>| {
        let out = Command::new(env!("CARGO_BIN_EXE_linkgraph"))
            .args(&args)
            .env("LINKGRAPH_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "linkgraph {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(vec![
        s("topics"),
        s("create"),
        s("--bus"),
        bus.clone(),
        s("--replication-factor"),
        s("1"),
        s("--partitions"),
        env_usize("LINKGRAPH_DIST_PARTITIONS", 4).to_string(),
    ]);
    let svc = |role: &str| {
        let admin = ["--admin-addr", "127.0.0.1:0", "--grace-period", "5s"];
        [
            vec![s(role), s("--bus"), bus.clone()],
            admin.map(s).to_vec(),
        ]
        .concat()
    };
    let data = |name: &str| vec![s("--data"), run_dir.join(name).display().to_string()];
    let mut procs = Procs::default();
    let parser = [
        svc("parser"),
        data("parser"),
        vec![s("--concurrency"), s(CONCURRENCY)],
    ]
    .concat();
    procs.0.push((
        "parser".into(),
        linkgraph(&parser, &run_dir.join("parser.log")),
    ));
    for i in 0..fetchers {
        let fetcher = [
            svc("fetcher"),
            vec![
                s("--resolve"),
                format!("*=127.0.0.1:{port}"),
                s("--allow-private-networks"),
                s("--per-ip-concurrency"),
                s("0"),
                s("--per-host-rps"),
                s(RPS),
                s("--concurrency"),
                s(shape.fetch_concurrency),
            ],
        ]
        .concat();
        let log = run_dir.join(format!("fetcher-{}.log", i + 1));
        procs
            .0
            .push((format!("fetcher {}", i + 1), linkgraph(&fetcher, &log)));
    }
    let frontier = [
        svc("frontier"),
        data("frontier"),
        vec![s("--per-host-rps"), s(RPS), s("--exit-when-idle"), s("10")],
    ]
    .concat();
    procs.0.push((
        "frontier".into(),
        linkgraph(&frontier, &run_dir.join("frontier.log")),
    ));
    let from = lines(access);
    ok(vec![
        s("seed"),
        s("--bus"),
        bus.clone(),
        s("--seeds"),
        s(seed),
    ]);

    // Until the frontier exits idle, or the time limit after the first request.
    let started = Instant::now();
    let mut first: Option<Instant> = None;
    let cpu_at_end = loop {
        std::thread::sleep(Duration::from_millis(500));
        if first.is_none() && lines(access) > from {
            first = Some(Instant::now());
        }
        let over = first.is_some_and(|t| t.elapsed() > shape.limit)
            || (first.is_none() && started.elapsed() > Duration::from_secs(120));
        // Read every process's CPU while all are alive (a reaped one has no stat).
        let cpu: Vec<(String, f64)> = procs
            .0
            .iter()
            .map(|(name, c)| (name.clone(), cpu_secs(c.id(), ticks)))
            .chain([("broker (tansu)".to_owned(), cpu_secs(broker_pid, ticks))])
            .collect();
        let mut frontier_done = false;
        for (name, c) in &mut procs.0 {
            let Some(status) = c.try_wait().ok().flatten() else {
                continue;
            };
            let log = run_dir.join(format!("{}.log", name.replace(' ', "-")));
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                name == "frontier" && status.success(),
                "the {name} exited ({status}): {}",
                tail.lines().rev().take(5).collect::<Vec<_>>().join("\n")
            );
            frontier_done = true;
        }
        if frontier_done || over {
            break (cpu, !frontier_done);
        }
    };
    let (cpu_at_end, over) = cpu_at_end;
    let (requests, secs, _) = measure(access, from);
    drop(procs);
    // A run that never went idle keeps its services' logs for a post-mortem.
    let stalled = (over && shape.until_idle).then(|| {
        let keep = std::env::temp_dir().join(format!(
            "linkgraph-dist-{fetchers}-stalled-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&keep);
        std::fs::create_dir_all(&keep).unwrap();
        for e in std::fs::read_dir(&run_dir).unwrap().flatten() {
            if e.file_name().to_string_lossy().ends_with(".log") {
                std::fs::copy(e.path(), keep.join(e.file_name())).unwrap();
            }
        }
        keep
    });
    let _ = std::fs::remove_dir_all(&run_dir);
    Run {
        name: format!(
            "{}: 1 frontier, {fetchers} fetcher{}, 1 parser",
            shape.web,
            if fetchers > 1 { "s" } else { "" }
        ),
        requests,
        secs,
        cpu: cpu_at_end,
        stalled,
    }
}

fn main() {
    let hosts = env_usize("LINKGRAPH_DIST_HOSTS", 1000);
    let pages = env_usize("LINKGRAPH_DIST_PAGES", 100);
    let limit = Duration::from_secs(env_usize("LINKGRAPH_DIST_SECONDS", 120) as u64);
    let ticks = clock_ticks();
    let dir: PathBuf = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let bytes = write_web(&dir.join("web"), hosts, pages, port);
    println!(
        "static web: {hosts} hosts x {pages} pages = {} pages, {:.0} MiB, in {}",
        hosts * pages,
        bytes as f64 / 1048576.0,
        dir.display()
    );
    let nginx = start_nginx(&dir, port);
    let access = dir.join("access.log");
    let seed = format!("http://{}:{port}/", host(0));

    let embedded = run_embedded(&dir, &seed, port, &access, ticks);
    let shape = |fetchers| Shape {
        fetchers,
        fetch_concurrency: CONCURRENCY,
        limit,
        until_idle: true,
        web: "distributed",
    };
    let one = run_distributed(&dir, &seed, (port, &access), ticks, &shape(1));
    let two = run_distributed(&dir, &seed, (port, &access), ticks, &shape(2));
    stop_nginx(nginx);

    // Where the fetchers are the bottleneck: the same web from a server
    // that sends each connection at most SLOW_RATE, so a page takes about
    // 0.3 s and each fetcher's SLOW_CONCURRENCY fetches at once bound it.
    // The same port (the pages' links carry it), a fresh log.
    let slow_dir = dir.join("slow");
    std::fs::create_dir_all(&slow_dir).unwrap();
    let nginx = start_nginx_with(
        &slow_dir,
        &dir.join("web"),
        port,
        // nginx applies the limit between writes, and sendfile sends a
        // whole page in one unless its chunks are capped.
        &format!("limit_rate {SLOW_RATE}; sendfile_max_chunk 4k;"),
    );
    let slow_access = slow_dir.join("access.log");
    let slow = |fetchers| Shape {
        fetchers,
        fetch_concurrency: SLOW_CONCURRENCY,
        limit: SLOW_SECONDS,
        until_idle: false,
        web: "fetch-bound",
    };
    let slow_one = run_distributed(&dir, &seed, (port, &slow_access), ticks, &slow(1));
    let slow_two = run_distributed(&dir, &seed, (port, &slow_access), ticks, &slow(2));
    stop_nginx(nginx);

    for r in [&embedded, &one, &two, &slow_one, &slow_two] {
        let total: f64 = r.cpu.iter().map(|(_, c)| c).sum();
        println!(
            "{:<45} {:>7} requests in {:>6.1} s = {:>6.0} pages/s; CPU s per 1,000 pages: {} (all {:.2})",
            r.name,
            r.requests,
            r.secs,
            r.rate(),
            r.cpu
                .iter()
                .map(|(n, c)| format!("{n} {:.2}", 1000.0 * c / r.requests.max(1) as f64))
                .collect::<Vec<_>>()
                .join(", "),
            1000.0 * total / r.requests.max(1) as f64
        );
        if let Some(logs) = &r.stalled {
            println!(
                "  STALLED: the frontier never went idle within the time limit; the services' and broker's logs are in {}",
                logs.display()
            );
        }
    }
    print_ratio(
        "distributed, 1 fetcher / embedded",
        one.rate(),
        embedded.rate(),
    );
    print_ratio(
        "distributed, 2 fetchers / 1 fetcher",
        two.rate(),
        one.rate(),
    );
    print_ratio(
        "fetch-bound, 2 fetchers / 1 fetcher",
        slow_two.rate(),
        slow_one.rate(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
