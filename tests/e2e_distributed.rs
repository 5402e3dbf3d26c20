//! End to end, distributed: a real Kafka-protocol broker (tansu) on
//! loopback, one frontier, two fetchers and a parser as separate processes
//! against the simulated web. A fetcher, the parser and the frontier are
//! killed with SIGKILL mid-crawl (and replaced); the stored graph must still
//! equal the ground truth exactly, and no host may see requests faster than
//! the per-host rate.
//!
//! Needs `tansu` (`cargo install tansu --features dynostore`; `make test`
//! installs it) and `promtool` (Debian package `prometheus`). A missing tool
//! fails the test with what to install: it never skips silently.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn tool(name: &str, install: &str) -> PathBuf {
    let env_name = format!("LINKGRAPH_{}", name.to_uppercase());
    if let Ok(p) = std::env::var(&env_name) {
        return PathBuf::from(p);
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin").join(name));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is required for this test and was not found: {install} (or set {env_name})"
            )
        })
}

/// The services' consumer session timeout (6 s), and some.
const SESSION_EXPIRY: Duration = Duration::from_secs(8);

/// A tansu broker with memory storage on a loopback port, killed on drop.
struct Broker {
    child: Child,
    url: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_broker() -> Broker {
    let tansu = tool(
        "tansu",
        "cargo install tansu --version 0.6.0 --features dynostore --locked",
    );
    let port = free_port();
    let listener = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu)
        .args([
            "broker",
            "--listener-url",
            &listener,
            "--advertised-listener-url",
            &listener,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "tansu did not start listening");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Broker {
        child,
        url: format!("kafka://127.0.0.1:{port}"),
    }
}

/// Kills every service process it saw when dropped, so a failing test
/// leaves nothing running (services retry a vanished broker forever).
#[derive(Default)]
struct Reaper(std::sync::Mutex<Vec<u32>>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in self.0.lock().map(|p| p.clone()).unwrap_or_default() {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn spawn(reaper: &Reaper, args: &[String], log: &std::path::Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_linkgraph"))
        .args(args)
        .env("LINKGRAPH_LOG", "info,lsm_tree=warn,fjall=warn")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .unwrap();
    reaper.0.lock().unwrap().push(child.id());
    child
}

fn kill9(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

async fn wait_for_requests(served: &Served, n: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while served.log.len() < n {
        assert!(
            Instant::now() < deadline,
            "the crawl stalled at {} requests",
            served.log.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh log directory under the target dir (kept for a post-mortem),
/// the topics created on `broker`, and the web's seed published.
async fn prepare(broker: &Broker, served: &Served, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let s = |v: &str| v.to_owned();
    linkgraph_ok(vec![
        s("topics"),
        s("create"),
        s("--bus"),
        broker.url.clone(),
        s("--replication-factor"),
        s("1"),
    ])
    .await;
    let seeded = linkgraph_ok(vec![
        s("seed"),
        s("--bus"),
        broker.url.clone(),
        s("--seeds"),
        served.web.seed_url(),
    ])
    .await;
    assert!(seeded.contains("1 seeds published"), "{seeded}");
    dir
}

/// Arguments of a service `role` crawling `served` over `broker`: each
/// service takes only the flags it uses.
fn service_args(
    broker: &Broker,
    served: &Served,
    rps: f64,
    role: &str,
    admin: u16,
    extra: &[String],
) -> Vec<String> {
    let mut a: Vec<String> = vec![
        role.into(),
        "--bus".into(),
        broker.url.clone(),
        "--admin-addr".into(),
        format!("127.0.0.1:{admin}"),
        "--grace-period".into(),
        "5s".into(),
    ];
    if role != "parser" {
        a.extend(["--per-host-rps".into(), rps.to_string()]);
    }
    if role == "fetcher" {
        a.extend([
            "--resolve".into(),
            format!("*={}", served.addr),
            "--allow-private-networks".into(),
            "--per-ip-concurrency".into(),
            "0".into(),
        ]);
    }
    a.extend(extra.iter().cloned());
    a
}

/// The sum of a metric's samples on a service's admin port.
async fn metric(port: u16, name: &str) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_frontier_takes_over_its_hosts_with_their_urls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let broker = start_broker().await;
    let reaper = Reaper::default();
    let served = serve(12, 10, 31).await;
    let truth = served.web.truth();
    let dir = prepare(&broker, &served, "e2e-scale-out").await;
    let rps = 5.0;
    let args = |role: &str, admin: u16, extra: &[String]| {
        service_args(&broker, &served, rps, role, admin, extra)
    };
    let data = |name: &str| vec!["--data".to_owned(), dir.join(name).display().to_string()];
    let parser = spawn(
        &reaper,
        &args("parser", 0, &data("parser")),
        &dir.join("parser.log"),
    );
    let fetcher = spawn(&reaper, &args("fetcher", 0, &[]), &dir.join("fetcher.log"));
    let (a_port, b_port) = (free_port(), free_port());
    let frontier_a = spawn(
        &reaper,
        &args("frontier", a_port, &data("fa")),
        &dir.join("frontier-a.log"),
    );

    // Mid-crawl, a second frontier joins: the group splits the partitions,
    // and the first hands the moved hosts' URLs over.
    wait_for_requests(&served, 30, Duration::from_secs(120)).await;
    let frontier_b = spawn(
        &reaper,
        &args("frontier", b_port, &data("fb")),
        &dir.join("frontier-b.log"),
    );

    // Finished: neither frontier has anything queued or in flight, and the
    // web has seen no request for 5 s.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut quiet_since = (served.log.len(), Instant::now());
    loop {
        assert!(
            Instant::now() < deadline,
            "the crawl did not finish (logs in {})",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut busy = 0.0;
        for port in [a_port, b_port] {
            busy += metric(port, "linkgraph_frontier_queued_urls").await
                + metric(port, "linkgraph_frontier_inflight_requests").await;
        }
        let n = served.log.len();
        if n != quiet_since.0 || busy > 0.0 {
            quiet_since = (n, Instant::now());
        } else if quiet_since.1.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    assert!(metric(a_port, "linkgraph_frontier_handed_off_urls_total").await > 0.0);
    assert!(metric(b_port, "linkgraph_frontier_dispatched_requests_total").await > 0.0);
    for port in [a_port, b_port] {
        // Hand-offs find hosts by the producer's partitioner: it must agree.
        assert!(metric(port, "linkgraph_frontier_dispatched_requests_total").await > 0.0);
        assert_eq!(
            metric(port, "linkgraph_bus_partition_mismatches_total").await,
            0.0
        );
    }
    for child in [frontier_b, frontier_a, fetcher, parser] {
        sigterm(child).await;
    }
    assert_graph_equals(&dir.join("parser"), &truth.edges).await;
    let checked = assert_rate(&served.log.snapshot(), rps);
    assert!(checked > 50, "too few same-host request pairs: {checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_over_kafka_survive_kill_9_and_match_ground_truth() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let promtool = tool("promtool", "apt-get install prometheus");
    let broker = start_broker().await;
    let reaper = Reaper::default();
    let served = serve(16, 12, 23).await;
    let truth = served.web.truth();
    let dir_path = prepare(&broker, &served, "e2e-distributed").await;
    let dir = &dir_path;
    let rps = 5.0;
    let s = |v: &str| v.to_owned();
    let common = |role: &str, admin: u16, extra: &[String]| {
        service_args(&broker, &served, rps, role, admin, extra)
    };
    let store_dir = dir.join("parser");
    let parser_args = common("parser", 0, &[s("--data"), store_dir.display().to_string()]);
    let logs = dir;
    let mut parser = spawn(&reaper, &parser_args, &logs.join("parser-1.log"));
    let mut fetcher_a = spawn(
        &reaper,
        &common("fetcher", 0, &[]),
        &logs.join("fetcher-a.log"),
    );
    let fetcher_b_admin = free_port();
    let fetcher_b = spawn(
        &reaper,
        &common("fetcher", fetcher_b_admin, &[]),
        &logs.join("fetcher-b.log"),
    );
    let frontier_args = common(
        "frontier",
        0,
        &[
            s("--data"),
            dir.join("frontier").display().to_string(),
            s("--exit-when-idle"),
            s("8"),
        ],
    );
    let frontier = spawn(&reaper, &frontier_args, &logs.join("frontier.log"));

    // Mid-crawl: SIGKILL one fetcher and the parser; each is replaced once
    // its session has expired, as its Deployment would replace a killed pod.
    // (tansu 0.6 expires the dead member but elects no new group leader, so
    // the survivors keep their old assignment until a member joins; a Kafka
    // broker reassigns the dead member's partitions on expiry.)
    wait_for_requests(&served, 30, Duration::from_secs(120)).await;
    kill9(&mut fetcher_a);
    let at_fetcher_kill = served.log.len();
    tokio::time::sleep(SESSION_EXPIRY).await;
    let fetcher_a2 = spawn(
        &reaper,
        &common("fetcher", 0, &[]),
        &logs.join("fetcher-a2.log"),
    );
    wait_for_requests(&served, at_fetcher_kill + 40, Duration::from_secs(120)).await;
    kill9(&mut parser);
    let at_parser_kill = served.log.len();
    tokio::time::sleep(SESSION_EXPIRY).await;
    let parser2 = spawn(&reaper, &parser_args, &logs.join("parser-2.log"));

    // And the frontier: its replacement resumes from its data directory.
    wait_for_requests(&served, at_parser_kill + 40, Duration::from_secs(120)).await;
    let mut frontier = frontier;
    kill9(&mut frontier);
    let at_frontier_kill = served.log.len();
    tokio::time::sleep(SESSION_EXPIRY).await;
    let frontier = spawn(&reaper, &frontier_args, &logs.join("frontier-2.log"));

    // The frontier exits 0 once nothing is queued or in flight.
    let frontier_out = tokio::task::spawn_blocking(move || {
        let mut f = frontier;
        let deadline = Instant::now() + Duration::from_secs(150);
        loop {
            if let Some(status) = f.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = f.kill();
                panic!(
                    "the frontier did not finish within 150 s (logs in target/tmp/e2e-distributed)"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    let log_text = |name: &str| std::fs::read_to_string(logs.join(name)).unwrap_or_default();
    assert!(
        frontier_out.success(),
        "frontier failed: {}",
        log_text("frontier-2.log")
    );
    assert!(
        served.log.len() > at_frontier_kill,
        "work continued after the kills"
    );

    // The surviving fetcher serves Prometheus metrics that promtool accepts.
    let metrics = reqwest::get(format!("http://127.0.0.1:{fetcher_b_admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "linkgraph_fetcher_pages_total",
        "linkgraph_fetcher_fetch_duration_seconds_bucket",
        "linkgraph_fetcher_downloaded_bytes_total",
        "linkgraph_bus_messages_produced_total",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    // Every member reports every partition of its topic, owned or not,
    // with the group's committed offset and the end offset, so a partition
    // nobody consumes shows (the alert rules in deploy/ fire on it).
    let partitions = |name: &str| -> std::collections::BTreeMap<u32, f64> {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with(&format!("{name}{{")) && l.contains("topic=\"linkgraph.fetch\"")
            })
            .filter_map(|l| {
                let p = l
                    .split("partition=\"")
                    .nth(1)?
                    .split('"')
                    .next()?
                    .parse()
                    .ok()?;
                let v = l.rsplit(' ').next()?.parse().ok()?;
                Some((p, v))
            })
            .collect()
    };
    let owned = partitions("linkgraph_bus_owned_partitions");
    assert_eq!(
        owned.keys().copied().collect::<Vec<_>>(),
        (0..12).collect::<Vec<u32>>(),
        "owned partitions:\n{metrics}"
    );
    assert!(owned.values().all(|v| *v == 0.0 || *v == 1.0), "{owned:?}");
    let ends = partitions("linkgraph_bus_end_offset_messages");
    assert_eq!(ends.len(), 12, "end offsets:\n{metrics}");
    let committed = partitions("linkgraph_bus_committed_offset_messages");
    assert!(
        committed
            .iter()
            .all(|(p, c)| ends.get(p).is_some_and(|e| c <= e)),
        "committed {committed:?} past end {ends:?}"
    );
    assert!(!committed.is_empty(), "no committed offsets:\n{metrics}");
    let page = dir.join("metrics.txt");
    std::fs::write(&page, &metrics).unwrap();
    let check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&page).unwrap())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    for path in ["/healthz", "/readyz"] {
        let r = reqwest::get(format!("http://127.0.0.1:{fetcher_b_admin}{path}"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }

    // SIGTERM drains and exits 0.
    sigterm(fetcher_b).await;
    sigterm(fetcher_a2).await;
    sigterm(parser2).await;

    // The stored graph equals the ground truth: nothing lost, nothing twice.
    assert_graph_equals(&store_dir, &truth.edges).await;

    // Politeness held across processes and the kills (server's own log).
    let log = assert_no_disallowed(&served);
    let checked = assert_rate(&log, rps);
    assert!(checked > 100, "too few same-host request pairs: {checked}");
}

/// One kill of a crawl through kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    /// SIGKILL a fetcher; it is never replaced (its Deployment scaled down,
    /// its node lost).
    Fetcher,
    /// SIGKILL the parser and start a new one.
    Parser,
    /// SIGKILL the frontier and restart it on its data directory.
    Frontier,
}

/// 1 frontier, 2 fetchers and 1 parser at --per-host-rps 5 over an 80-host
/// web; the kills of step i of `steps` happen after (i + 1) / (steps + 1)
/// of the web's requests. The crawl must finish (the frontier exits when idle) and the
/// stored graph equal the ground truth, with no per-host rate violation.
/// With `must_rejoin`, the surviving fetcher must have re-joined its group
/// (a fetcher killed early leaves a backlog on its partitions for sure).
async fn crawl_through(name: &str, steps: &[&[Kill]], must_rejoin: bool) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let broker = start_broker().await;
    let reaper = Reaper::default();
    let served = serve(80, 4, 31).await;
    let truth = served.web.truth();
    let dir = prepare(&broker, &served, name).await;
    let rps = 5.0;
    let s = |v: &str| v.to_owned();
    let common = |role: &str, extra: &[String]| service_args(&broker, &served, rps, role, 0, extra);
    let store_dir = dir.join("parser");
    let parser_args = common("parser", &[s("--data"), store_dir.display().to_string()]);
    let frontier_args = common(
        "frontier",
        &[
            s("--data"),
            dir.join("frontier").display().to_string(),
            s("--exit-when-idle"),
            s("8"),
        ],
    );
    let mut parser = spawn(&reaper, &parser_args, &dir.join("parser-0.log"));
    let mut fetcher = spawn(&reaper, &common("fetcher", &[]), &dir.join("fetcher-a.log"));
    let survivor = spawn(&reaper, &common("fetcher", &[]), &dir.join("fetcher-b.log"));
    let mut frontier = spawn(&reaper, &frontier_args, &dir.join("frontier-0.log"));
    let share = (truth.statuses.len() / (steps.len() + 1)).max(10);
    let kills: Vec<(usize, Kill)> = steps
        .iter()
        .enumerate()
        .flat_map(|(i, step)| step.iter().map(move |k| (i, *k)))
        .collect();
    for (i, kill) in kills.iter().copied() {
        wait_for_requests(&served, share * (i + 1), Duration::from_secs(240)).await;
        eprintln!("{name}: kill {kill:?} at {} requests", served.log.len());
        match kill {
            Kill::Fetcher => kill9(&mut fetcher),
            Kill::Parser => {
                kill9(&mut parser);
                let log = dir.join(format!("parser-{}.log", i + 1));
                parser = spawn(&reaper, &parser_args, &log);
            }
            Kill::Frontier => {
                kill9(&mut frontier);
                let log = dir.join(format!("frontier-{}.log", i + 1));
                frontier = spawn(&reaper, &frontier_args, &log);
            }
        }
    }
    // The frontier exits 0 once nothing is queued or in flight. A dead
    // fetcher's partitions are taken over when the survivor finds them
    // stalled (a minute) and re-joins the group.
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(status) = frontier.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = frontier.kill();
                panic!("the crawl did not finish within 300 s after its kills");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    assert!(
        status.success(),
        "frontier failed (logs in {})",
        dir.display()
    );
    for child in [survivor, parser] {
        sigterm(child).await;
    }
    if must_rejoin {
        let log = std::fs::read_to_string(dir.join("fetcher-b.log")).unwrap_or_default();
        assert!(
            log.contains("re-joining the group"),
            "the surviving fetcher never re-joined (logs in {})",
            dir.display()
        );
    }
    if !kills.iter().any(|(_, k)| *k == Kill::Fetcher) {
        let _ = fetcher.kill();
    }
    assert_graph_equals(&store_dir, &truth.edges).await;
    assert_rate(&served.log.snapshot(), rps);
}

/// The sequence that once stalled a crawl for good (#12): a third of the
/// way in, one fetcher and the parser die and only the parser is replaced;
/// two thirds in, the frontier dies and restarts. tansu 0.6 never gives the
/// dead fetcher's partitions to the survivor (see the README); the
/// survivor's partition probe finds them stalled and re-joins the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_fetcher_that_is_never_replaced_does_not_stall_the_crawl() {
    crawl_through(
        "e2e-dead-fetcher",
        &[&[Kill::Fetcher, Kill::Parser], &[Kill::Frontier]],
        true,
    )
    .await;
}

/// The same kills in an order drawn from a seed, printed so that a failure
/// can be replayed with LINKGRAPH_KILL_SEED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_in_a_random_order_still_finish_with_the_exact_graph() {
    let seed: u64 = std::env::var("LINKGRAPH_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    let mut kills = vec![Kill::Fetcher, Kill::Parser, Kill::Frontier];
    // Fisher-Yates with splitmix64.
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..kills.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        kills.swap(i, j);
    }
    eprintln!("kill order {kills:?} from seed {seed} (replay: LINKGRAPH_KILL_SEED={seed})");
    let steps: Vec<&[Kill]> = kills.iter().map(std::slice::from_ref).collect();
    crawl_through("e2e-random-kills", &steps, false).await;
}
