//! `linkgraph`: crawl the web politely and ask who links to whom.
//!
//! The binary only parses flags and wires the crates together.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use linkgraph_core::{
    UrlPolicy, canonicalize, format_rfc3339_ms, parse_time, registrable_domain, set_clock_start,
};
use linkgraph_fetcher::{FetcherConfig, ResolveRule, Throughput, default_user_agent};
use linkgraph_frontier::{FrontierConfig, RecrawlPolicy};
use linkgraph_parser::ParseLimits;
use linkgraph_pipeline::report::{self, BacklinksFormat, RefdomainsFormat};
use linkgraph_pipeline::services::{
    FrontierServiceOptions, ServiceOptions, run_fetcher, run_frontier, run_parser,
};
use linkgraph_pipeline::velocity::{Bucket, velocity};
use linkgraph_pipeline::{CrawlOptions, crawl};
use linkgraph_simweb::{SimConfig, SimWeb};
use linkgraph_store::{BacklinkQuery, LinkStore, ScyllaStore, ScyllaUri, Status, Target};

#[derive(Parser)]
#[command(
    name = "linkgraph",
    version,
    about = "Crawl the web politely and build its inbound link graph."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Crawl from seed URLs into a data directory (resumes a previous crawl there).
    Crawl(Box<CrawlArgs>),
    /// List the referring domains of a registrable domain.
    Refdomains(RefdomainsArgs),
    /// List the backlinks of a registrable domain or of one URL.
    Backlinks(BacklinksArgs),
    /// New and lost links and referring domains per day or week, with spikes.
    Velocity(VelocityArgs),
    /// Serve a simulated web on a loopback address, for demos and tests.
    Simweb(SimwebArgs),
    /// Manage a link store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Run the frontier service: seeds, discovered URLs and feedback in, fetch requests out.
    Frontier(Box<ServiceCmd>),
    /// Run the fetcher service: fetch requests in, fetch results out.
    Fetcher(Box<ServiceCmd>),
    /// Run the parser service: fetch results in, edges to the store, discoveries and feedback out.
    Parser(Box<ServiceCmd>),
    /// Inject seed URLs into a running crawl through the bus.
    Seed(SeedArgs),
    /// Manage the bus's topics.
    #[command(subcommand)]
    Topics(TopicsCommand),
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Create the topics the services exchange (idempotent).
    Create(TopicsCreateArgs),
}

#[derive(Args)]
struct TopicsCreateArgs {
    /// The bus: kafka://HOST:PORT[,HOST:PORT].
    #[arg(long, env = "LINKGRAPH_BUS")]
    bus: String,
    /// Replicas of each partition.
    #[arg(long, env = "LINKGRAPH_TOPIC_REPLICATION", default_value_t = 3)]
    replication_factor: i32,
}

#[derive(Args)]
struct SeedArgs {
    /// The bus: kafka://HOST:PORT[,HOST:PORT].
    #[arg(long, env = "LINKGRAPH_BUS")]
    bus: String,
    /// Seed URLs, or files with one URL per line ('#' starts a comment).
    #[arg(long, num_args = 1.., required = true, value_delimiter = ',')]
    seeds: Vec<String>,
}

/// Flags every service takes.
#[derive(Args)]
struct ServiceArgs {
    /// The bus: kafka://HOST:PORT[,HOST:PORT] (or memory:// for one process).
    #[arg(long, env = "LINKGRAPH_BUS")]
    bus: String,
    /// Address of the admin endpoints: /metrics, /healthz, /readyz.
    #[arg(long, env = "LINKGRAPH_ADMIN_ADDR", default_value = "0.0.0.0:9464")]
    admin_addr: SocketAddr,
    /// Consumer group prefix: services of one crawl share it.
    #[arg(long, env = "LINKGRAPH_GROUP", default_value = "linkgraph")]
    group: String,
    /// On SIGTERM, how long to wait for in-flight work before exiting (e.g. 20s).
    #[arg(long, env = "LINKGRAPH_GRACE_PERIOD", default_value = "20s", value_parser = humantime::parse_duration)]
    grace_period: Duration,
    /// Stable member name (e.g. the pod name): static consumer-group membership, so a
    /// restarted replica takes its partitions back at once.
    #[arg(long, env = "LINKGRAPH_INSTANCE_ID")]
    instance_id: Option<String>,
    /// Also send undecodable messages to the dead-letter topic.
    #[arg(long, env = "LINKGRAPH_DEAD_LETTER")]
    dead_letter: bool,
    /// Frontier only: exit 0 once no URL has been queued or in flight for this many seconds.
    #[arg(long, env = "LINKGRAPH_EXIT_WHEN_IDLE", value_name = "SECONDS")]
    exit_when_idle: Option<f64>,
}

#[derive(Args)]
struct ServiceCmd {
    #[command(flatten)]
    svc: ServiceArgs,
    #[command(flatten)]
    crawl: CrawlArgs,
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Create the store's schema (idempotent): the keyspace and tables of
    /// deploy/scylla/schema.cql for scylla://, the data directory for fjall://.
    Init(StoreInitArgs),
}

#[derive(Args)]
struct StoreInitArgs {
    /// The store: scylla://HOST:PORT[,HOST:PORT]/KEYSPACE or fjall:///DIR.
    #[arg(long, env = "LINKGRAPH_STORE")]
    store: String,
    /// Replicas per datacenter of a new keyspace (NetworkTopologyStrategy).
    #[arg(long, env = "LINKGRAPH_SCYLLA_RF", default_value_t = 3)]
    replication_factor: u32,
    /// Partitions per target domain in a new keyspace (fixed once created):
    /// 16 for a large crawl, 256 for the whole web.
    #[arg(long, env = "LINKGRAPH_SCYLLA_BUCKETS", default_value_t = linkgraph_store::scylla::DEFAULT_BUCKETS)]
    buckets: u32,
}

/// Where a read command finds the link store.
#[derive(Args)]
struct StoreSel {
    /// Data directory of a crawl (its embedded store).
    #[arg(
        long,
        env = "LINKGRAPH_DATA",
        required_unless_present = "store",
        conflicts_with = "store"
    )]
    data: Option<PathBuf>,
    /// A store URL instead of --data: scylla://HOST:PORT/KEYSPACE or fjall:///DIR.
    #[arg(long, env = "LINKGRAPH_STORE")]
    store: Option<String>,
}

#[derive(Args)]
struct CrawlArgs {
    /// Seed URLs, or files with one URL per line ('#' starts a comment). Optional when
    /// the data directory already holds a crawl: it then resumes and recrawls what is due.
    #[arg(long, num_args = 1.., env = "LINKGRAPH_SEEDS", value_delimiter = ',')]
    seeds: Vec<String>,
    /// Keep crawling and recrawling until stopped (Ctrl-C or SIGTERM).
    #[arg(long, env = "LINKGRAPH_CONTINUOUS")]
    continuous: bool,
    /// Revisit interval after a page's first fetch (e.g. 12h, 1d).
    #[arg(long, env = "LINKGRAPH_RECRAWL_INITIAL", default_value = "1d", value_parser = humantime::parse_duration)]
    recrawl_initial: Duration,
    /// Shortest revisit interval (pages that keep changing).
    #[arg(long, env = "LINKGRAPH_RECRAWL_MIN", default_value = "1h", value_parser = humantime::parse_duration)]
    recrawl_min: Duration,
    /// Longest revisit interval (pages that never change).
    #[arg(long, env = "LINKGRAPH_RECRAWL_MAX", default_value = "30d", value_parser = humantime::parse_duration)]
    recrawl_max: Duration,
    /// Data directory: the link store and the frontier state live here
    /// (required by crawl, frontier and, for the embedded store, parser).
    #[arg(long, env = "LINKGRAPH_DATA")]
    data: Option<PathBuf>,
    /// Write the link graph to this store instead of DATA/store:
    /// scylla://HOST:PORT/KEYSPACE (see `linkgraph store init`).
    #[arg(long, env = "LINKGRAPH_STORE")]
    store: Option<String>,
    /// Stop after this many URLs in this run (unlimited when absent).
    #[arg(long, env = "LINKGRAPH_MAX_PAGES")]
    max_pages: Option<u64>,
    /// Most link hops from a seed (unlimited when absent).
    #[arg(long, env = "LINKGRAPH_MAX_DEPTH")]
    max_depth: Option<u32>,
    /// Most URLs admitted per host, ever (seed hosts get all of it).
    #[arg(long, env = "LINKGRAPH_MAX_URLS_PER_HOST", default_value_t = 10_000)]
    max_urls_per_host: u64,
    /// URL budget of a host that no other domain links to.
    #[arg(long, env = "LINKGRAPH_HOST_BUDGET_BASE", default_value_t = 100)]
    host_budget_base: u64,
    /// URL budget added for every other domain seen linking to a host.
    #[arg(
        long,
        env = "LINKGRAPH_HOST_BUDGET_PER_LINKING_DOMAIN",
        default_value_t = 100
    )]
    host_budget_per_linking_domain: u64,
    /// Query parameters stripped from URLs ('*' suffix = prefix match); default: tracking and session ids.
    #[arg(long, env = "LINKGRAPH_STRIP_PARAMS", value_delimiter = ',', default_values_t = linkgraph_core::DEFAULT_STRIP_PARAMS.iter().map(|s| (*s).to_owned()))]
    strip_params: Vec<String>,
    /// Longest URL admitted, in bytes.
    #[arg(long, env = "LINKGRAPH_MAX_URL_LENGTH", default_value_t = 1024)]
    max_url_length: usize,
    /// Most path segments in an admitted URL.
    #[arg(long, env = "LINKGRAPH_MAX_PATH_DEPTH", default_value_t = 16)]
    max_path_depth: usize,
    /// Most times one path segment may occur in an admitted URL.
    #[arg(long, env = "LINKGRAPH_MAX_SEGMENT_REPEATS", default_value_t = 2)]
    max_segment_repeats: usize,
    /// Most requests per second any one host receives.
    #[arg(long, env = "LINKGRAPH_PER_HOST_RPS", default_value_t = 1.0)]
    per_host_rps: f64,
    /// Requests in flight at once, across all hosts.
    #[arg(long, env = "LINKGRAPH_CONCURRENCY", default_value_t = 64)]
    concurrency: usize,
    /// User-Agent header; robots.txt groups match its product token (the part before '/').
    #[arg(long, env = "LINKGRAPH_USER_AGENT", default_value_t = default_user_agent())]
    user_agent: String,
    /// Connect to ADDR:PORT for HOST instead of resolving it ('*' matches every host). Repeatable.
    #[arg(
        long,
        value_name = "HOST=ADDR:PORT",
        env = "LINKGRAPH_RESOLVE",
        value_delimiter = ','
    )]
    resolve: Vec<ResolveRule>,
    /// Allow loopback, private, link-local and unspecified addresses (off: SSRF guard).
    #[arg(long, env = "LINKGRAPH_ALLOW_PRIVATE_NETWORKS")]
    allow_private_networks: bool,
    /// Seconds to establish a connection.
    #[arg(long, env = "LINKGRAPH_CONNECT_TIMEOUT", default_value_t = 10.0)]
    connect_timeout: f64,
    /// Seconds for a whole request, body included.
    #[arg(long, env = "LINKGRAPH_TIMEOUT", default_value_t = 30.0)]
    timeout: f64,
    /// Seconds to wait for the next bytes of a response.
    #[arg(long, env = "LINKGRAPH_READ_TIMEOUT", default_value_t = 10.0)]
    read_timeout: f64,
    /// Least average body throughput, in bytes per second, once the grace period has passed.
    #[arg(long, env = "LINKGRAPH_MIN_THROUGHPUT", default_value_t = 1024)]
    min_throughput: u64,
    /// Seconds before the minimum throughput applies.
    #[arg(long, env = "LINKGRAPH_THROUGHPUT_GRACE", default_value_t = 5.0)]
    throughput_grace: f64,
    /// Largest decompressed body kept, in bytes; longer bodies are cut.
    #[arg(long, env = "LINKGRAPH_MAX_BODY_BYTES", default_value_t = 5 << 20)]
    max_body_bytes: usize,
    /// Requests in flight at once to one IP address across all its hosts (0 = no cap,
    /// e.g. for a simulated web where every host is 127.0.0.1).
    #[arg(long, env = "LINKGRAPH_PER_IP_CONCURRENCY", default_value_t = 8)]
    per_ip_concurrency: usize,
    /// Longest back-off, in seconds, of a host that keeps failing.
    #[arg(long, env = "LINKGRAPH_MAX_BACKOFF", default_value_t = 600.0)]
    max_backoff: f64,
    /// Consecutive temporary failures (5xx, 429, timeouts) after which a host is parked.
    #[arg(long, env = "LINKGRAPH_PARK_AFTER", default_value_t = 8)]
    park_after: u32,
    /// Tries of a URL that fails temporarily.
    #[arg(long, env = "LINKGRAPH_MAX_ATTEMPTS", default_value_t = 3)]
    max_attempts: u32,
    /// Largest robots.txt Crawl-delay honoured, in seconds.
    #[arg(long, env = "LINKGRAPH_MAX_CRAWL_DELAY", default_value_t = 30.0)]
    max_crawl_delay: f64,
    /// Most chained redirect hops followed from one URL.
    #[arg(long, env = "LINKGRAPH_MAX_REDIRECTS", default_value_t = 5)]
    max_redirects: u32,
    /// Most links kept per page.
    #[arg(long, env = "LINKGRAPH_MAX_LINKS_PER_PAGE", default_value_t = 10_000)]
    max_links_per_page: usize,
    /// Do not show live progress (it only shows on a terminal anyway).
    #[arg(long, env = "LINKGRAPH_NO_PROGRESS")]
    no_progress: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum RefFormat {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum BlFormat {
    Table,
    Jsonl,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum StatusArg {
    Live,
    Lost,
    All,
}

impl From<StatusArg> for Status {
    fn from(s: StatusArg) -> Status {
        match s {
            StatusArg::Live => Status::Live,
            StatusArg::Lost => Status::Lost,
            StatusArg::All => Status::All,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum BucketArg {
    Day,
    Week,
}

#[derive(Args)]
struct VelocityArgs {
    /// The target registrable domain.
    domain: String,
    #[command(flatten)]
    sel: StoreSel,
    /// Bucket width.
    #[arg(long, value_enum, default_value_t = BucketArg::Day, env = "LINKGRAPH_BUCKET")]
    bucket: BucketArg,
    /// First day included (YYYY-MM-DD or RFC 3339); default: the first event.
    #[arg(long, value_parser = parse_time_arg)]
    from: Option<i64>,
    /// Day after the last one included (YYYY-MM-DD or RFC 3339); default: after the last event.
    #[arg(long, value_parser = parse_time_arg)]
    to: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = RefFormat::Table, env = "LINKGRAPH_FORMAT")]
    format: RefFormat,
}

fn parse_time_arg(s: &str) -> Result<i64, String> {
    parse_time(s).ok_or_else(|| format!("{s:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))
}

#[derive(Args)]
struct RefdomainsArgs {
    /// The target, taken as a registrable domain: links to any of its hosts count.
    domain: String,
    #[command(flatten)]
    sel: StoreSel,
    /// Output format.
    #[arg(long, value_enum, default_value_t = RefFormat::Table, env = "LINKGRAPH_FORMAT")]
    format: RefFormat,
    /// Referring domains with live links, those whose links are all lost, or both.
    #[arg(long, value_enum, default_value_t = StatusArg::Live, env = "LINKGRAPH_STATUS")]
    status: StatusArg,
}

#[derive(Args)]
struct BacklinksArgs {
    /// A registrable domain (all its hosts), or one absolute URL.
    target: String,
    #[command(flatten)]
    sel: StoreSel,
    /// Output format.
    #[arg(long, value_enum, default_value_t = BlFormat::Table, env = "LINKGRAPH_FORMAT")]
    format: BlFormat,
    /// Include links from the target's own registrable domain.
    #[arg(long, env = "LINKGRAPH_INCLUDE_INTERNAL")]
    include_internal: bool,
    /// Live links, lost links, or both.
    #[arg(long, value_enum, default_value_t = StatusArg::Live, env = "LINKGRAPH_STATUS")]
    status: StatusArg,
}

#[derive(Args)]
struct SimwebArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "LINKGRAPH_SIMWEB_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Number of hosts.
    #[arg(long, env = "LINKGRAPH_SIMWEB_HOSTS", default_value_t = 50)]
    hosts: usize,
    /// HTML pages per host.
    #[arg(long, env = "LINKGRAPH_SIMWEB_PAGES_PER_HOST", default_value_t = 20)]
    pages_per_host: usize,
    /// Seed of the generated web: the same seed serves the same web.
    #[arg(long, env = "LINKGRAPH_SIMWEB_SEED", default_value_t = 42)]
    seed: u64,
    /// Write the ground truth here (JSON lines: a header, then one edge per line); each
    /// epoch's changes go to FILE.epoch-N.jsonl when advanced (GET /__simweb/advance).
    #[arg(long, env = "LINKGRAPH_SIMWEB_TRUTH")]
    truth: Option<PathBuf>,
    /// Write shell-readable facts (listen address, seed URL, popular domain) here.
    #[arg(long, env = "LINKGRAPH_SIMWEB_INFO")]
    info: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing();
    // LINKGRAPH_NOW starts every command's clock at another time: a testing
    // and backfill aid. Everything recorded is stamped with that clock.
    if let Ok(now) = std::env::var("LINKGRAPH_NOW") {
        match parse_time(&now) {
            Some(ms) => {
                set_clock_start(ms);
            }
            None => {
                eprintln!(
                    "linkgraph: error: LINKGRAPH_NOW={now:?} is not an RFC 3339 time (e.g. 2026-03-02T12:00:00Z)"
                );
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("linkgraph: error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("linkgraph: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("LINKGRAPH_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Crawl(a) => run_crawl(*a).await,
        Command::Refdomains(a) => run_refdomains(a).await,
        Command::Backlinks(a) => run_backlinks(a).await,
        Command::Velocity(a) => run_velocity(a).await,
        Command::Simweb(a) => run_simweb(a).await,
        Command::Store(StoreCommand::Init(a)) => run_store_init(a).await,
        Command::Frontier(a) => run_service(Role::Frontier, *a).await,
        Command::Fetcher(a) => run_service(Role::Fetcher, *a).await,
        Command::Parser(a) => run_service(Role::Parser, *a).await,
        Command::Seed(a) => run_seed(a).await,
        Command::Topics(TopicsCommand::Create(a)) => run_topics_create(a).await,
    }
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn read_seeds(values: &[String]) -> Result<Vec<String>> {
    let mut seeds = Vec::new();
    for v in values {
        let v = v.trim();
        if v.contains("://") {
            canonicalize(v, None).with_context(|| format!("seed {v:?}"))?;
            seeds.push(v.to_owned());
            continue;
        }
        let text = std::fs::read_to_string(v)
            .with_context(|| format!("seed {v:?} is neither a URL nor a readable file"))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            canonicalize(line, None).with_context(|| format!("{v}:{}: bad seed", n + 1))?;
            seeds.push(line.to_owned());
        }
    }
    if seeds.is_empty() && !values.is_empty() {
        bail!("no seed URLs found in {values:?}");
    }
    Ok(seeds)
}

fn secs(name: &str, s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .with_context(|| format!("--{name} must be a non-negative number of seconds, got {s}"))
}

/// The fetcher, frontier and parser settings the crawl flags describe.
fn configs(a: &CrawlArgs) -> Result<(FetcherConfig, FrontierConfig, ParseLimits)> {
    if !(a.per_host_rps.is_finite() && a.per_host_rps > 0.0) {
        bail!(
            "--per-host-rps must be a positive number, got {}",
            a.per_host_rps
        );
    }
    let fetcher = FetcherConfig {
        user_agent: a.user_agent.clone(),
        per_host_rps: a.per_host_rps,
        connect_timeout: secs("connect-timeout", a.connect_timeout)?,
        total_timeout: secs("timeout", a.timeout)?,
        max_body_bytes: a.max_body_bytes,
        max_redirects: a.max_redirects,
        read_timeout: secs("read-timeout", a.read_timeout)?,
        max_crawl_delay: secs("max-crawl-delay", a.max_crawl_delay)?,
        per_ip_concurrency: a.per_ip_concurrency,
        throughput: Throughput {
            min_bytes_per_sec: a.min_throughput,
            grace: secs("throughput-grace", a.throughput_grace)?,
        },
        resolve: a.resolve.clone(),
        allow_private_networks: a.allow_private_networks,
        ..FetcherConfig::default()
    };
    let frontier = FrontierConfig {
        max_depth: a.max_depth,
        max_urls_per_host: a.max_urls_per_host,
        host_budget_base: a.host_budget_base,
        host_budget_per_linking_domain: a.host_budget_per_linking_domain,
        url_policy: UrlPolicy {
            strip_params: a.strip_params.clone(),
            max_url_bytes: a.max_url_length,
            max_path_depth: a.max_path_depth,
            max_segment_repeats: a.max_segment_repeats,
        },
        host_interval: Duration::from_secs_f64(1.0 / a.per_host_rps),
        max_redirects: a.max_redirects,
        max_backoff: secs("max-backoff", a.max_backoff)?,
        park_after: a.park_after.max(1),
        park_for: Duration::from_secs(3600),
        max_attempts: a.max_attempts.max(1),
        recrawl: RecrawlPolicy {
            initial: a.recrawl_initial,
            min: a.recrawl_min,
            max: a.recrawl_max,
        },
    };
    if a.recrawl_min.is_zero() || a.recrawl_min > a.recrawl_max {
        bail!("--recrawl-min must be positive and at most --recrawl-max");
    }
    let limits = ParseLimits {
        max_links: a.max_links_per_page,
        ..Default::default()
    };
    Ok((fetcher, frontier, limits))
}

async fn run_crawl(a: CrawlArgs) -> Result<()> {
    let (fetcher, frontier, parse_limits) = configs(&a)?;
    let seeds = read_seeds(&a.seeds)?;
    let Some(data_dir) = a.data else {
        bail!(
            "--data DIR is required: the crawl keeps its frontier (and by default its store) there"
        );
    };
    let opts = CrawlOptions {
        seeds,
        data_dir,
        store_url: a.store,
        max_pages: a.max_pages,
        concurrency: a.concurrency,
        frontier,
        fetcher,
        parse_limits,
        progress: !a.no_progress,
        continuous: a.continuous,
    };
    let summary = crawl(opts, shutdown_signal()).await?;
    println!("{summary}");
    Ok(())
}

/// Normalizes a user-given domain to its registrable domain (punycode, lower-case).
fn normalize_domain(input: &str) -> Result<String> {
    let trimmed = input.trim().trim_end_matches('.');
    if trimmed.is_empty() || trimmed.contains(['/', ':', '?', '#', '@', ' ']) {
        bail!("{input:?} is not a domain name (give e.g. example.co.uk)");
    }
    let url = url::Url::parse(&format!("http://{trimmed}/"))
        .with_context(|| format!("{input:?} is not a domain name"))?;
    let host = url
        .host_str()
        .with_context(|| format!("{input:?} is not a domain name"))?;
    Ok(registrable_domain(host).to_owned())
}

/// Fails with a clear message when the store has never seen `domain`.
async fn ensure_known(store: &dyn LinkStore, domain: &str, sel: &StoreSel) -> Result<()> {
    if !store.knows_domain(domain).await? {
        let place = match (&sel.store, &sel.data) {
            (Some(url), _) => url.clone(),
            (None, Some(d)) => d.display().to_string(),
            (None, None) => String::new(),
        };
        bail!(
            "unknown domain {domain:?}: no page of it was crawled and no link to it was found in {place}"
        );
    }
    Ok(())
}

async fn open_store(sel: &StoreSel) -> Result<Arc<dyn LinkStore>> {
    if let Some(url) = &sel.store {
        return linkgraph_store::open(url, false)
            .await
            .with_context(|| format!("cannot open the link store {url}"));
    }
    let Some(data) = &sel.data else {
        bail!("give --data DIR or --store URL");
    };
    if !data.is_dir() {
        bail!(
            "data directory {} does not exist or is not a directory",
            data.display()
        );
    }
    let path = data.join("store");
    if !path.is_dir() {
        bail!(
            "{} holds no link store (run `linkgraph crawl --data {}` first)",
            data.display(),
            data.display()
        );
    }
    let url = format!("fjall://{}", path.display());
    linkgraph_store::open(&url, false)
        .await
        .with_context(|| format!("cannot read the link store in {}", data.display()))
}

async fn run_refdomains(a: RefdomainsArgs) -> Result<()> {
    let domain = normalize_domain(&a.domain)?;
    let store = open_store(&a.sel).await?;
    ensure_known(store.as_ref(), &domain, &a.sel).await?;
    let rows = store.refdomains(&domain, a.status.into()).await?;
    let format = match a.format {
        RefFormat::Table => RefdomainsFormat::Table,
        RefFormat::Json => RefdomainsFormat::Json,
        RefFormat::Csv => RefdomainsFormat::Csv,
    };
    let mut out = std::io::stdout().lock();
    report::write_refdomains(&mut out, &domain, &rows, format)?;
    out.flush()?;
    Ok(())
}

async fn run_backlinks(a: BacklinksArgs) -> Result<()> {
    let (target, domain) = if a.target.contains("://") {
        let u = canonicalize(&a.target, None).with_context(|| format!("target {:?}", a.target))?;
        let d = registrable_domain(u.host_str().unwrap_or_default()).to_owned();
        (Target::Url(u.into()), d)
    } else {
        let d = normalize_domain(&a.target)?;
        (Target::Domain(d.clone()), d)
    };
    let store = open_store(&a.sel).await?;
    ensure_known(store.as_ref(), &domain, &a.sel).await?;
    let format = match a.format {
        BlFormat::Table => BacklinksFormat::Table,
        BlFormat::Jsonl => BacklinksFormat::Jsonl,
        BlFormat::Csv => BacklinksFormat::Csv,
    };
    let mut out = std::io::stdout().lock();
    report::write_backlinks_header(&mut out, format)?;
    // Tables align per page, so read them in one page; stream the others.
    let limit = if format == BacklinksFormat::Table {
        usize::MAX
    } else {
        1000
    };
    let mut after = None;
    loop {
        let page = store
            .backlinks(BacklinkQuery {
                target: target.clone(),
                include_internal: a.include_internal,
                status: a.status.into(),
                limit,
                after,
            })
            .await?;
        if let Err(e) = report::write_backlinks(&mut out, &page.items, format) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e.into());
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    out.flush().or_else(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    Ok(())
}

async fn run_velocity(a: VelocityArgs) -> Result<()> {
    let domain = normalize_domain(&a.domain)?;
    let store = open_store(&a.sel).await?;
    ensure_known(store.as_ref(), &domain, &a.sel).await?;
    if let (Some(f), Some(t)) = (a.from, a.to)
        && f >= t
    {
        bail!("--from must be before --to");
    }
    let events = store
        .events(&domain, a.from.unwrap_or(0), a.to.unwrap_or(i64::MAX))
        .await?;
    let bucket = match a.bucket {
        BucketArg::Day => Bucket::Day,
        BucketArg::Week => Bucket::Week,
    };
    let v = velocity(&domain, &events, bucket, a.from, a.to);
    let mut out = std::io::stdout().lock();
    match a.format {
        RefFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &v.to_json())?;
            writeln!(out)?;
        }
        RefFormat::Csv => {
            writeln!(
                out,
                "start,new_links,lost_links,new_refdomains,lost_refdomains,spike"
            )?;
            for p in &v.series {
                let spike = v.spikes.iter().any(|s| s.start_ms == p.start_ms);
                writeln!(
                    out,
                    "{},{},{},{},{},{spike}",
                    format_rfc3339_ms(p.start_ms),
                    p.new_links,
                    p.lost_links,
                    p.new_refdomains,
                    p.lost_refdomains
                )?;
            }
        }
        RefFormat::Table => {
            writeln!(out, "link velocity of {domain} per {}", bucket.as_str())?;
            writeln!(
                out,
                "{:<10}  {:>9}  {:>10}  {:>14}  {:>15}",
                "START", "NEW LINKS", "LOST LINKS", "NEW REFDOMAINS", "LOST REFDOMAINS"
            )?;
            for p in &v.series {
                let mark = match v.spikes.iter().find(|s| s.start_ms == p.start_ms) {
                    Some(s) => format!(
                        "  <- spike (baseline {:.1}, score {:.1})",
                        s.baseline, s.score
                    ),
                    None => String::new(),
                };
                let day = format_rfc3339_ms(p.start_ms);
                writeln!(
                    out,
                    "{:<10}  {:>9}  {:>10}  {:>14}  {:>15}{mark}",
                    &day[..10],
                    p.new_links,
                    p.lost_links,
                    p.new_refdomains,
                    p.lost_refdomains
                )?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn write_file(
    path: &Path,
    f: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    f(&mut w)
        .and_then(|()| w.flush())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes `TRUTH.epoch-N.jsonl` (the changes of epoch N) whenever the
/// simulated web is advanced through `/__simweb/advance`.
async fn write_epoch_truths(
    web: Arc<SimWeb>,
    path: PathBuf,
    mut last: linkgraph_simweb::EpochTruth,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        while last.epoch < web.epoch() {
            let next = web.truth_at(last.epoch + 1, &last.known);
            let file = PathBuf::from(format!("{}.epoch-{}.jsonl", path.display(), next.epoch));
            match write_file(&file, |w| {
                linkgraph_simweb::write_epoch_changes(&last.truth, &next, w)
            }) {
                Ok(()) => eprintln!("simweb: epoch {} changes in {}", next.epoch, file.display()),
                Err(e) => eprintln!("simweb: {e:#}"),
            }
            last = next;
        }
    }
}

async fn run_simweb(a: SimwebArgs) -> Result<()> {
    if !a.listen.ip().is_loopback() {
        bail!(
            "the simulated web only listens on loopback addresses, not {}",
            a.listen
        );
    }
    let web = Arc::new(SimWeb::new(SimConfig {
        hosts: a.hosts,
        pages_per_host: a.pages_per_host,
        seed: a.seed,
        ..SimConfig::default()
    }));
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let addr = listener.local_addr()?;
    if let Some(path) = a.truth.clone() {
        let first = web.truth_at(0, &Default::default());
        write_file(&path, |w| linkgraph_simweb::write_truth(&first.truth, w))?;
        eprintln!(
            "simweb: ground truth ({} edges, {} pages) in {}; each epoch's changes go to {}.epoch-N.jsonl",
            first.truth.edges.len(),
            first.truth.pages,
            path.display(),
            path.display()
        );
        tokio::spawn(write_epoch_truths(Arc::clone(&web), path, first));
    }
    if let Some(path) = &a.info {
        let info = format!(
            "LISTEN={addr}\nSEED_URL={}\nPOPULAR_DOMAIN={}\nHOSTS={}\nPAGES_PER_HOST={}\n",
            web.seed_url(),
            web.popular_domain(),
            web.config().hosts,
            web.config().pages_per_host
        );
        std::fs::write(path, info).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "simweb: {} hosts x {} pages (seed {}) on {addr}\n  seed URL:  {}\n  crawl it:  linkgraph crawl --seeds {} --data DIR --resolve '*={addr}' --allow-private-networks",
        web.config().hosts,
        web.config().pages_per_host,
        a.seed,
        web.seed_url(),
        web.seed_url()
    );
    std::io::stdout().flush()?;
    linkgraph_simweb::serve(listener, web, None, shutdown_signal()).await;
    Ok(())
}

async fn run_store_init(a: StoreInitArgs) -> Result<()> {
    if a.store.starts_with("scylla://") {
        let uri = ScyllaUri::parse(&a.store)?;
        let buckets = ScyllaStore::init(&uri, a.replication_factor, a.buckets)
            .await
            .with_context(|| format!("cannot initialize {}", a.store))?;
        if buckets != a.buckets {
            eprintln!(
                "note: keyspace {} already exists with {buckets} buckets per domain; kept",
                uri.keyspace
            );
        }
        println!(
            "store {} ready: keyspace {}, {buckets} buckets per domain",
            a.store, uri.keyspace
        );
        return Ok(());
    }
    linkgraph_store::open(&a.store, true)
        .await
        .with_context(|| format!("cannot initialize {}", a.store))?;
    println!("store {} ready", a.store);
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Frontier,
    Fetcher,
    Parser,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Frontier => "frontier",
            Role::Fetcher => "fetcher",
            Role::Parser => "parser",
        }
    }
}

/// Installs the Prometheus recorder and serves the admin endpoints.
async fn start_admin(
    addr: SocketAddr,
    ready: Arc<std::sync::atomic::AtomicBool>,
) -> Result<tokio::sync::oneshot::Sender<()>> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ])
        .context("metric buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    linkgraph_pipeline::metrics_spec::describe();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on admin address {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "admin endpoints on /metrics, /healthz, /readyz");
    eprintln!("admin listening on http://{local}");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let render: linkgraph_pipeline::admin::Render = Arc::new(move || handle.render());
    tokio::spawn(linkgraph_pipeline::admin::serve(
        listener,
        render,
        ready,
        async {
            let _ = rx.await;
        },
    ));
    Ok(tx)
}

async fn run_service(role: Role, a: ServiceCmd) -> Result<()> {
    let (fetcher_cfg, frontier_cfg, limits) = configs(&a.crawl)?;
    let bus = linkgraph_bus::connect_as(&a.svc.bus, a.svc.instance_id.clone())?;
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _admin = start_admin(a.svc.admin_addr, Arc::clone(&ready)).await?;
    let opts = ServiceOptions {
        bus,
        group: a.svc.group.clone(),
        dead_letter: a.svc.dead_letter,
        grace: a.svc.grace_period,
        ready,
    };
    tracing::info!(service = role.name(), bus = %a.svc.bus, "starting");
    match role {
        Role::Fetcher => {
            let fetcher = linkgraph_fetcher::Fetcher::new(fetcher_cfg)?;
            run_fetcher(opts, fetcher, a.crawl.concurrency, shutdown_signal()).await?;
        }
        Role::Parser => {
            let url = match (&a.crawl.store, &a.crawl.data) {
                (Some(url), _) => url.clone(),
                (None, Some(dir)) => format!("fjall://{}", dir.join("store").display()),
                (None, None) => bail!("the parser needs --store URL or --data DIR"),
            };
            let store = linkgraph_store::open(&url, true)
                .await
                .with_context(|| format!("cannot open the link store {url}"))?;
            let token = linkgraph_fetcher::Fetcher::new(fetcher_cfg.clone())?
                .product_token()
                .to_owned();
            run_parser(
                opts,
                store,
                token,
                limits,
                frontier_cfg.url_policy.clone(),
                a.crawl.concurrency,
                shutdown_signal(),
            )
            .await?;
        }
        Role::Frontier => {
            let Some(data_dir) = a.crawl.data.clone() else {
                bail!("the frontier needs --data DIR for its state");
            };
            let exit_when_idle = a
                .svc
                .exit_when_idle
                .map(|s| secs("exit-when-idle", s))
                .transpose()?;
            let run = run_frontier(
                opts,
                FrontierServiceOptions {
                    data_dir,
                    config: frontier_cfg,
                    seeds: read_seeds(&a.crawl.seeds)?,
                    exit_when_idle,
                },
                shutdown_signal(),
            )
            .await?;
            println!(
                "frontier stopped{}: {} requests dispatched, {} completed",
                if run.idle { " (idle)" } else { "" },
                run.dispatched,
                run.completed
            );
        }
    }
    Ok(())
}

async fn run_seed(a: SeedArgs) -> Result<()> {
    let bus = linkgraph_bus::connect(&a.bus)?;
    let seeds = read_seeds(&a.seeds)?;
    for s in &seeds {
        let url = canonicalize(s, None).with_context(|| format!("seed {s:?}"))?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let d = linkgraph_proto::DiscoveredUrl {
            url: url.into(),
            host: host.clone(),
            ..Default::default()
        };
        bus.publish(
            linkgraph_bus::topics::SEEDS,
            &host,
            prost::Message::encode_to_vec(&d),
        )
        .await
        .with_context(|| format!("cannot publish seed {s:?}"))?;
    }
    println!("{} seeds published to {}", seeds.len(), a.bus);
    Ok(())
}

async fn run_topics_create(a: TopicsCreateArgs) -> Result<()> {
    let bus = linkgraph_bus::KafkaBus::from_url(&a.bus)?.with_replication(a.replication_factor);
    linkgraph_bus::Bus::create_topics(&bus, &linkgraph_bus::TOPICS).await?;
    for t in linkgraph_bus::TOPICS {
        println!("{} ({} partitions)", t.name, t.partitions);
    }
    Ok(())
}
