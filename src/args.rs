//! The command line's flag groups. Each command flattens only the groups
//! whose flags it uses, so a service never accepts a flag it would ignore;
//! each group turns into the settings of the crate that owns them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use linkgraph_core::UrlPolicy;
use linkgraph_core::parse_time;
use linkgraph_fetcher::{FetcherConfig, ResolveRule, Throughput, default_user_agent};
use linkgraph_frontier::{FrontierConfig, RecrawlPolicy};
use linkgraph_parser::ParseLimits;
use linkgraph_pipeline::config::PerHostRate;
use linkgraph_query::ranks::DomainSort;
use linkgraph_query::render::{BacklinksFormat, Format};
use linkgraph_query::reports::Direction;
use linkgraph_query::velocity::Bucket;
use linkgraph_store::Status;

/// A number of seconds as a duration, or a clear error naming the flag.
fn secs(name: &str, s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .with_context(|| format!("--{name} must be a non-negative number of seconds, got {s}"))
}

/// Politeness every process that schedules or sends requests obeys.
#[derive(Args)]
pub struct RateFlags {
    /// Most requests per second any one host receives.
    #[arg(long, env = "LINKGRAPH_PER_HOST_RPS", default_value = "1")]
    pub per_host_rps: PerHostRate,
    /// Most chained redirect hops followed from one URL.
    #[arg(long, env = "LINKGRAPH_MAX_REDIRECTS", default_value_t = 5)]
    pub max_redirects: u32,
}

/// How URLs are cleaned and which are admitted.
#[derive(Args)]
pub struct UrlFlags {
    /// Query parameters stripped from URLs ('*' suffix = prefix match); default: tracking and session ids.
    #[arg(long, env = "LINKGRAPH_STRIP_PARAMS", value_delimiter = ',', default_values_t = linkgraph_core::DEFAULT_STRIP_PARAMS.iter().map(|s| (*s).to_owned()))]
    pub strip_params: Vec<String>,
    /// Longest URL admitted, in bytes.
    #[arg(long, env = "LINKGRAPH_MAX_URL_LENGTH", default_value_t = 1024)]
    pub max_url_length: usize,
    /// Most path segments in an admitted URL.
    #[arg(long, env = "LINKGRAPH_MAX_PATH_DEPTH", default_value_t = 16)]
    pub max_path_depth: usize,
    /// Most times one path segment may occur in an admitted URL.
    #[arg(long, env = "LINKGRAPH_MAX_SEGMENT_REPEATS", default_value_t = 2)]
    pub max_segment_repeats: usize,
}

impl UrlFlags {
    /// The URL policy.
    pub fn policy(&self) -> UrlPolicy {
        UrlPolicy {
            strip_params: self.strip_params.clone(),
            max_url_bytes: self.max_url_length,
            max_path_depth: self.max_path_depth,
            max_segment_repeats: self.max_segment_repeats,
        }
    }
}

/// Who the crawler says it is.
#[derive(Args)]
pub struct AgentFlags {
    /// User-Agent header; robots.txt groups match its product token (the part before '/').
    #[arg(long, env = "LINKGRAPH_USER_AGENT", default_value_t = default_user_agent())]
    pub user_agent: String,
}

/// Work in progress at once.
#[derive(Args)]
pub struct ConcurrencyFlags {
    /// Requests (or, for the parser, pages) in flight at once, across all hosts.
    #[arg(long, env = "LINKGRAPH_CONCURRENCY", default_value_t = 64)]
    pub concurrency: usize,
}

/// How pages are fetched.
#[derive(Args)]
pub struct FetchFlags {
    /// Connect to ADDR:PORT for HOST instead of resolving it ('*' matches every host). Repeatable.
    #[arg(
        long,
        value_name = "HOST=ADDR:PORT",
        env = "LINKGRAPH_RESOLVE",
        value_delimiter = ','
    )]
    pub resolve: Vec<ResolveRule>,
    /// Allow loopback, private, link-local and unspecified addresses (off: SSRF guard).
    #[arg(long, env = "LINKGRAPH_ALLOW_PRIVATE_NETWORKS")]
    pub allow_private_networks: bool,
    /// Seconds to establish a connection.
    #[arg(long, env = "LINKGRAPH_CONNECT_TIMEOUT", default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Seconds for a whole request, body included.
    #[arg(long, env = "LINKGRAPH_TIMEOUT", default_value_t = 30.0)]
    pub timeout: f64,
    /// Seconds to wait for the next bytes of a response.
    #[arg(long, env = "LINKGRAPH_READ_TIMEOUT", default_value_t = 10.0)]
    pub read_timeout: f64,
    /// Least average body throughput, in bytes per second, once the grace period has passed.
    #[arg(long, env = "LINKGRAPH_MIN_THROUGHPUT", default_value_t = 1024)]
    pub min_throughput: u64,
    /// Seconds before the minimum throughput applies.
    #[arg(long, env = "LINKGRAPH_THROUGHPUT_GRACE", default_value_t = 5.0)]
    pub throughput_grace: f64,
    /// Largest decompressed body kept, in bytes; longer bodies are cut.
    #[arg(long, env = "LINKGRAPH_MAX_BODY_BYTES", default_value_t = 5 << 20)]
    pub max_body_bytes: usize,
    /// Requests in flight at once to one IP address across all its hosts (0 = no cap,
    /// e.g. for a simulated web where every host is 127.0.0.1); `crawl` raises it to
    /// --per-host-concurrency when lower (a fetcher service: set it so yourself).
    #[arg(long, env = "LINKGRAPH_PER_IP_CONCURRENCY", default_value_t = 8)]
    pub per_ip_concurrency: usize,
    /// Idle keep-alive connections kept open per host; `crawl` raises it to
    /// --per-host-concurrency (a fetcher service: set it to the frontier's).
    #[arg(long, env = "LINKGRAPH_KEEP_ALIVE_PER_HOST", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub keep_alive_per_host: u32,
    /// Largest robots.txt Crawl-delay honoured, in seconds.
    #[arg(long, env = "LINKGRAPH_MAX_CRAWL_DELAY", default_value_t = 30.0)]
    pub max_crawl_delay: f64,
}

impl FetchFlags {
    /// The fetcher's settings.
    pub fn config(&self, agent: &AgentFlags, rate: &RateFlags) -> Result<FetcherConfig> {
        Ok(FetcherConfig {
            user_agent: agent.user_agent.clone(),
            per_host_rps: rate.per_host_rps.rps(),
            connect_timeout: secs("connect-timeout", self.connect_timeout)?,
            total_timeout: secs("timeout", self.timeout)?,
            max_body_bytes: self.max_body_bytes,
            max_redirects: rate.max_redirects,
            read_timeout: secs("read-timeout", self.read_timeout)?,
            max_crawl_delay: secs("max-crawl-delay", self.max_crawl_delay)?,
            per_ip_concurrency: self.per_ip_concurrency,
            keep_alive_per_host: self.keep_alive_per_host as usize,
            throughput: Throughput {
                min_bytes_per_sec: self.min_throughput,
                grace: secs("throughput-grace", self.throughput_grace)?,
            },
            resolve: self.resolve.clone(),
            allow_private_networks: self.allow_private_networks,
            ..FetcherConfig::default()
        })
    }
}

/// What the frontier admits, and when it revisits.
#[derive(Args)]
pub struct FrontierFlags {
    /// Most link hops from a seed (unlimited when absent).
    #[arg(long, env = "LINKGRAPH_MAX_DEPTH")]
    pub max_depth: Option<u32>,
    /// Most URLs admitted per host, ever (seed hosts get all of it).
    #[arg(long, env = "LINKGRAPH_MAX_URLS_PER_HOST", default_value_t = 10_000)]
    pub max_urls_per_host: u64,
    /// URL budget of a host that no other domain links to.
    #[arg(long, env = "LINKGRAPH_HOST_BUDGET_BASE", default_value_t = 100)]
    pub host_budget_base: u64,
    /// URL budget added for every other domain seen linking to a host.
    #[arg(
        long,
        env = "LINKGRAPH_HOST_BUDGET_PER_LINKING_DOMAIN",
        default_value_t = 100
    )]
    pub host_budget_per_linking_domain: u64,
    /// Longest back-off, in seconds, of a host that keeps failing.
    #[arg(long, env = "LINKGRAPH_MAX_BACKOFF", default_value_t = 600.0)]
    pub max_backoff: f64,
    /// Consecutive temporary failures (5xx, 429, timeouts) after which a host is parked.
    #[arg(long, env = "LINKGRAPH_PARK_AFTER", default_value_t = 8)]
    pub park_after: u32,
    /// Tries of a URL that fails temporarily.
    #[arg(long, env = "LINKGRAPH_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,
    /// Revisit interval after a page's first fetch (e.g. 12h, 1d).
    #[arg(long, env = "LINKGRAPH_RECRAWL_INITIAL", default_value = "1d", value_parser = humantime::parse_duration)]
    pub recrawl_initial: Duration,
    /// Shortest revisit interval (pages that keep changing).
    #[arg(long, env = "LINKGRAPH_RECRAWL_MIN", default_value = "1h", value_parser = humantime::parse_duration)]
    pub recrawl_min: Duration,
    /// Longest revisit interval (pages that never change).
    #[arg(long, env = "LINKGRAPH_RECRAWL_MAX", default_value = "30d", value_parser = humantime::parse_duration)]
    pub recrawl_max: Duration,
    /// Requests in flight at once to one host, still spaced by --per-host-rps: raise it to
    /// crawl your own site fast (others' sites: keep 1). A request's slot frees when its
    /// response is in, before its page is stored.
    #[arg(long, env = "LINKGRAPH_PER_HOST_CONCURRENCY", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub per_host_concurrency: u32,
}

impl FrontierFlags {
    /// The frontier's settings.
    pub fn config(&self, rate: &RateFlags, urls: &UrlFlags) -> Result<FrontierConfig> {
        if self.recrawl_min.is_zero() || self.recrawl_min > self.recrawl_max {
            bail!("--recrawl-min must be positive and at most --recrawl-max");
        }
        Ok(FrontierConfig {
            max_depth: self.max_depth,
            max_urls_per_host: self.max_urls_per_host,
            host_budget_base: self.host_budget_base,
            host_budget_per_linking_domain: self.host_budget_per_linking_domain,
            url_policy: urls.policy(),
            host_interval: rate.per_host_rps.host_interval(),
            per_host_concurrency: self.per_host_concurrency as usize,
            max_redirects: rate.max_redirects,
            max_backoff: secs("max-backoff", self.max_backoff)?,
            park_after: self.park_after.max(1),
            park_for: Duration::from_secs(3600),
            max_attempts: self.max_attempts.max(1),
            recrawl: RecrawlPolicy {
                initial: self.recrawl_initial,
                min: self.recrawl_min,
                max: self.recrawl_max,
            },
        })
    }
}

/// How pages are read.
#[derive(Args)]
pub struct ParseFlags {
    /// Most links kept per page.
    #[arg(long, env = "LINKGRAPH_MAX_LINKS_PER_PAGE", default_value_t = 10_000)]
    pub max_links_per_page: usize,
}

impl ParseFlags {
    /// The parser's limits.
    pub fn limits(&self) -> ParseLimits {
        ParseLimits {
            max_links: self.max_links_per_page,
            ..Default::default()
        }
    }
}

/// Where a writer keeps the link graph.
#[derive(Args)]
pub struct StoreFlags {
    /// Data directory: the link store (DATA/store) and, for a crawl or a frontier, the
    /// frontier state live here.
    #[arg(long, env = "LINKGRAPH_DATA")]
    pub data: Option<PathBuf>,
    /// Write the link graph to this store instead of DATA/store:
    /// scylla://HOST:PORT/KEYSPACE (see `linkgraph store init`).
    #[arg(long, env = "LINKGRAPH_STORE")]
    pub store: Option<String>,
}

/// Where a read command finds the link store.
#[derive(Args)]
pub struct StoreSel {
    /// Data directory of a crawl (its embedded store).
    #[arg(
        long,
        env = "LINKGRAPH_DATA",
        required_unless_present = "store",
        conflicts_with = "store"
    )]
    pub data: Option<PathBuf>,
    /// A store URL instead of --data: scylla://HOST:PORT/KEYSPACE or fjall:///DIR.
    #[arg(long, env = "LINKGRAPH_STORE")]
    pub store: Option<String>,
}

/// Flags every service takes.
#[derive(Args)]
pub struct ServiceFlags {
    /// The bus: kafka://HOST:PORT[,HOST:PORT] (or memory:// for one process).
    #[arg(long, env = "LINKGRAPH_BUS")]
    pub bus: String,
    /// Address of the admin endpoints: /metrics, /healthz, /readyz.
    #[arg(long, env = "LINKGRAPH_ADMIN_ADDR", default_value = "0.0.0.0:9464")]
    pub admin_addr: SocketAddr,
    /// Consumer group prefix: services of one crawl share it.
    #[arg(long, env = "LINKGRAPH_GROUP", default_value = "linkgraph")]
    pub group: String,
    /// On SIGTERM, how long to wait for in-flight work before exiting (e.g. 20s).
    #[arg(long, env = "LINKGRAPH_GRACE_PERIOD", default_value = "20s", value_parser = humantime::parse_duration)]
    pub grace_period: Duration,
    /// Stable member name (e.g. the pod name): static consumer-group membership, so a
    /// restarted replica takes its partitions back at once.
    #[arg(long, env = "LINKGRAPH_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Also send undecodable messages to the dead-letter topic.
    #[arg(long, env = "LINKGRAPH_DEAD_LETTER")]
    pub dead_letter: bool,
}

/// Seed URLs.
#[derive(Args)]
pub struct SeedFlags {
    /// Seed URLs, or files with one URL per line ('#' starts a comment). Optional when
    /// the data directory already holds a crawl: it then resumes and recrawls what is due.
    #[arg(long, num_args = 1.., env = "LINKGRAPH_SEEDS", value_delimiter = ',')]
    pub seeds: Vec<String>,
}

/// `crawl`: the whole pipeline in one process.
#[derive(Args)]
pub struct CrawlCmd {
    #[command(flatten)]
    pub seeds: SeedFlags,
    /// Keep crawling and recrawling until stopped (Ctrl-C or SIGTERM).
    #[arg(long, env = "LINKGRAPH_CONTINUOUS")]
    pub continuous: bool,
    #[command(flatten)]
    pub store: StoreFlags,
    /// Stop after this many URLs in this run (unlimited when absent).
    #[arg(long, env = "LINKGRAPH_MAX_PAGES")]
    pub max_pages: Option<u64>,
    /// Do not show live progress (it only shows on a terminal anyway).
    #[arg(long, env = "LINKGRAPH_NO_PROGRESS")]
    pub no_progress: bool,
    #[command(flatten)]
    pub concurrency: ConcurrencyFlags,
    #[command(flatten)]
    pub rate: RateFlags,
    #[command(flatten)]
    pub agent: AgentFlags,
    #[command(flatten)]
    pub fetch: FetchFlags,
    #[command(flatten)]
    pub urls: UrlFlags,
    #[command(flatten)]
    pub frontier: FrontierFlags,
    #[command(flatten)]
    pub parse: ParseFlags,
    /// Also serve the HTTP API (and the crawl's /metrics) on this address while crawling,
    /// e.g. 127.0.0.1:8080.
    #[arg(long, env = "LINKGRAPH_LISTEN")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub api: ApiFlags,
}

/// `refdomains`: the referring domains report.
#[derive(Args)]
pub struct RefdomainsCmd {
    /// The target, taken as a registrable domain: links to any of its hosts count.
    pub domain: String,
    #[command(flatten)]
    pub sel: StoreSel,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, env = "LINKGRAPH_FORMAT")]
    pub format: Format,
    /// Referring domains with live links, those whose links are all lost, or both.
    #[arg(long, value_enum, default_value_t = Status::Live, env = "LINKGRAPH_STATUS")]
    pub status: Status,
    /// At most this many rows (default: 1000 for a table, all for json and csv); the
    /// count of referring domains stays the total.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// `backlinks`: every backlink of a domain or URL.
#[derive(Args)]
pub struct BacklinksCmd {
    /// A registrable domain (all its hosts), or one absolute URL.
    pub target: String,
    #[command(flatten)]
    pub sel: StoreSel,
    /// Output format.
    #[arg(long, value_enum, default_value_t = BacklinksFormat::Table, env = "LINKGRAPH_FORMAT")]
    pub format: BacklinksFormat,
    /// Include links from the target's own registrable domain.
    #[arg(long, env = "LINKGRAPH_INCLUDE_INTERNAL")]
    pub include_internal: bool,
    /// Live links, lost links, or both.
    #[arg(long, value_enum, default_value_t = Status::Live, env = "LINKGRAPH_STATUS")]
    pub status: Status,
    /// At most this many rows (default: 1000 for a table, all for jsonl and csv).
    #[arg(long)]
    pub limit: Option<usize>,
}

/// `velocity`: new and lost links per bucket.
#[derive(Args)]
pub struct VelocityCmd {
    /// The target registrable domain.
    pub domain: String,
    #[command(flatten)]
    pub sel: StoreSel,
    /// Bucket width.
    #[arg(long, value_enum, default_value_t = Bucket::Day, env = "LINKGRAPH_BUCKET")]
    pub bucket: Bucket,
    /// First day included (YYYY-MM-DD or RFC 3339); default: the first event.
    #[arg(long, value_parser = parse_time_arg)]
    pub from: Option<i64>,
    /// Day after the last one included (YYYY-MM-DD or RFC 3339); default: after the last event.
    #[arg(long, value_parser = parse_time_arg)]
    pub to: Option<i64>,
    /// Count links and referring domains found on a page's first fetch (discovered, of
    /// unknown age) as new too; spikes still come from new ones only.
    #[arg(long, env = "LINKGRAPH_INCLUDE_DISCOVERED")]
    pub include_discovered: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, env = "LINKGRAPH_FORMAT")]
    pub format: Format,
}

/// `summary`: one domain's link profile at a glance.
#[derive(Args)]
pub struct SummaryCmd {
    /// The registrable domain.
    pub domain: String,
    #[command(flatten)]
    pub sel: StoreSel,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, env = "LINKGRAPH_FORMAT")]
    pub format: Format,
}

/// `rank`: the domain graph's ranks.
#[derive(Args)]
pub struct RankCmd {
    #[command(flatten)]
    pub sel: StoreSel,
    /// Trusted seed domains, one a line ('#' starts a comment): computes trust (TrustRank).
    #[arg(long)]
    pub trusted: Option<PathBuf>,
    /// Harmonic centrality is exact (a breadth-first visit per domain) up to this many
    /// domains, and HyperBall's estimate above.
    #[arg(long, default_value_t = 20_000)]
    pub exact_harmonic_max_nodes: usize,
    /// HyperBall's registers per domain, as a base-2 log (relative error about 1.04/sqrt(2^N)).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(4..=16))]
    pub hyperball_log2m: u32,
    /// Directory for the work files (the sorted arcs and compressed graphs); default: the
    /// system's temporary directory.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// RAM for each in-memory batch of the external arc sort, in MiB.
    #[arg(long, default_value_t = 256)]
    pub sort_memory_mb: usize,
}

/// `domains`: the ranked domains.
#[derive(Args)]
pub struct DomainsCmd {
    #[command(flatten)]
    pub sel: StoreSel,
    /// Sort key (descending).
    #[arg(long, value_enum, default_value_t = DomainSort::Authority)]
    pub sort: DomainSort,
    /// Show at most this many domains.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, env = "LINKGRAPH_FORMAT")]
    pub format: Format,
}

/// The thresholds of the risk signals.
#[derive(Args)]
pub struct RiskFlags {
    /// A linking page with this many external links (distinct target URLs on other
    /// domains) or more is a link farm.
    #[arg(long, default_value_t = 100)]
    pub link_farm_links: usize,
    /// A domain linking from at least this share of its crawled pages links sitewide.
    #[arg(long, default_value_t = 0.5)]
    pub sitewide_share: f64,
    /// ...and from at least this many pages.
    #[arg(long, default_value_t = 5)]
    pub sitewide_pages: usize,
    /// An anchor (not branded, not a URL, not empty) used by at least this share of the
    /// target's referring domains is an exact-match campaign.
    #[arg(long, default_value_t = 0.2)]
    pub anchor_share: f64,
    /// ...and by at least this many of them.
    #[arg(long, default_value_t = 3)]
    pub anchor_domains: usize,
    /// A domain whose host shares an IPv4 /24 (IPv6 /48) with hosts of at least this many
    /// other referring domains is in a shared network.
    #[arg(long, default_value_t = 2)]
    pub network_domains: usize,
    /// ...unless the /24 hosts more than this share of all referring domains (shared hosting).
    #[arg(long, default_value_t = 0.5)]
    pub network_max_share: f64,
    /// Authority (0-100, from `rank`) below which a referring domain is low-authority.
    #[arg(long, default_value_t = 10.0)]
    pub low_authority: f64,
}

impl RiskFlags {
    /// The thresholds these flags set.
    pub fn thresholds(&self) -> linkgraph_query::risk::Thresholds {
        linkgraph_query::risk::Thresholds {
            link_farm_links: self.link_farm_links,
            sitewide_share: self.sitewide_share,
            sitewide_pages: self.sitewide_pages,
            anchor_share: self.anchor_share,
            anchor_domains: self.anchor_domains,
            network_domains: self.network_domains,
            network_max_share: self.network_max_share,
            low_authority: self.low_authority,
        }
    }
}

/// `risk`: the referring domains of a domain that carry risk signals.
#[derive(Args)]
pub struct RiskCmd {
    /// The target registrable domain.
    pub domain: String,
    #[command(flatten)]
    pub sel: StoreSel,
    #[command(flatten)]
    pub thresholds: RiskFlags,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, env = "LINKGRAPH_FORMAT")]
    pub format: Format,
}

/// `disavow`: a disavow file of the referring domains with risk signals.
#[derive(Args)]
pub struct DisavowCmd {
    /// The target registrable domain.
    pub domain: String,
    #[command(flatten)]
    pub sel: StoreSel,
    #[command(flatten)]
    pub thresholds: RiskFlags,
    /// List domains whose risk score is at least this (0: every domain with a signal).
    #[arg(long, default_value_t = 0)]
    pub min_score: u32,
    /// Never list the domains in this file (one a line; '#' starts a comment).
    #[arg(long)]
    pub allow: Option<std::path::PathBuf>,
    /// Write the file here instead of to stdout.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// Flags every link-intelligence report takes.
#[derive(Args)]
pub struct ReportFlags {
    #[command(flatten)]
    pub sel: StoreSel,
    /// Count live links, lost links, or both.
    #[arg(long, value_enum, default_value_t = Status::Live, env = "LINKGRAPH_STATUS")]
    pub status: Status,
    /// At most this many rows (default: 1000 for a table, all for json, jsonl and csv).
    #[arg(long)]
    pub limit: Option<usize>,
}

/// `anchors`: the anchor texts of a target's backlinks.
#[derive(Args)]
pub struct AnchorsCmd {
    /// A registrable domain (all its hosts), or one absolute URL.
    pub target: String,
    #[command(flatten)]
    pub report: ReportFlags,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, env = "LINKGRAPH_FORMAT")]
    pub format: Format,
}

/// `pages` and `outlinks`: a report on one registrable domain.
#[derive(Args)]
pub struct DomainReportCmd {
    /// The registrable domain.
    pub domain: String,
    #[command(flatten)]
    pub report: ReportFlags,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, env = "LINKGRAPH_FORMAT")]
    pub format: Format,
}

/// `broken`: links to URLs that answer 404 or 410.
#[derive(Args)]
pub struct BrokenCmd {
    /// The registrable domain.
    pub domain: String,
    /// inbound: backlinks of DOMAIN to its dead pages; outbound: links on DOMAIN's pages
    /// to other domains' dead pages.
    #[arg(long, value_enum, default_value_t = Direction::Inbound)]
    pub direction: Direction,
    #[command(flatten)]
    pub report: ReportFlags,
    /// Output format.
    #[arg(long, value_enum, default_value_t = BacklinksFormat::Table, env = "LINKGRAPH_FORMAT")]
    pub format: BacklinksFormat,
}

/// `intersect`: the link gap between domains.
#[derive(Args)]
pub struct IntersectCmd {
    /// The target registrable domains (e.g. your competitors).
    #[arg(required = true, num_args = 1..)]
    pub domains: Vec<String>,
    /// Leave out referring domains that link to this domain (e.g. yours); repeatable.
    #[arg(long)]
    pub exclude: Vec<String>,
    /// List referring domains that link to at least this many targets (default: all).
    #[arg(long)]
    pub min_targets: Option<usize>,
    #[command(flatten)]
    pub report: ReportFlags,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, env = "LINKGRAPH_FORMAT")]
    pub format: Format,
}

/// How the HTTP API listens and whom it serves.
#[derive(Args)]
pub struct ApiFlags {
    /// A file holding a bearer token: every request but /healthz must send
    /// `Authorization: Bearer <token>`. Required to listen beyond loopback, unless
    /// --insecure-no-auth.
    #[arg(long, env = "LINKGRAPH_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Serve without authentication on a non-loopback address (anyone who reaches it
    /// can read the graph).
    #[arg(
        long,
        env = "LINKGRAPH_INSECURE_NO_AUTH",
        conflicts_with = "auth_token_file"
    )]
    pub insecure_no_auth: bool,
    /// Requests handled at once; more get a 503 with Retry-After.
    #[arg(long, env = "LINKGRAPH_API_MAX_CONCURRENT", default_value_t = 32)]
    pub api_max_concurrent: usize,
    /// Rows one response may hold; a larger `limit` is a 400.
    #[arg(long, env = "LINKGRAPH_API_MAX_ROWS", default_value_t = 10_000)]
    pub api_max_rows: usize,
    /// Time for one request, from its first byte to its last (e.g. 30s).
    #[arg(long, env = "LINKGRAPH_API_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub api_timeout: Duration,
    /// Time a client has to send a request's head before it is cut off (e.g. 10s).
    #[arg(long, env = "LINKGRAPH_API_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub api_header_timeout: Duration,
}

impl ApiFlags {
    /// The token (read from its file) and the limits; fails when `addr` is
    /// not loopback and no decision about authentication was made.
    pub fn settings(
        &self,
        addr: SocketAddr,
    ) -> anyhow::Result<(Option<String>, linkgraph_api::Limits)> {
        let token = self
            .auth_token_file
            .as_deref()
            .map(linkgraph_api::read_token)
            .transpose()?;
        linkgraph_api::check_bind(addr, token.is_some(), self.insecure_no_auth)?;
        let limits = linkgraph_api::Limits {
            request_timeout: self.api_timeout,
            header_timeout: self.api_header_timeout,
            max_concurrent: self.api_max_concurrent,
            max_rows: self.api_max_rows,
            ..linkgraph_api::Limits::default()
        };
        Ok((token, limits))
    }
}

/// `export`: the link graph as Parquet files.
#[derive(Args)]
pub struct ExportCmd {
    #[command(flatten)]
    pub sel: StoreSel,
    /// Output directory (created; must be empty): backlinks/, refdomains/, pages/ and
    /// link_events/, each of part-NNNNN.parquet files.
    #[arg(long)]
    pub out: PathBuf,
}

/// `serve`: the HTTP API over a store.
#[derive(Args)]
pub struct ServeCmd {
    #[command(flatten)]
    pub sel: StoreSel,
    /// Address to listen on.
    #[arg(long, env = "LINKGRAPH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub api: ApiFlags,
}

/// `simweb`: serve a simulated web.
#[derive(Args)]
pub struct SimwebCmd {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "LINKGRAPH_SIMWEB_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Number of hosts.
    #[arg(long, env = "LINKGRAPH_SIMWEB_HOSTS", default_value_t = 50)]
    pub hosts: usize,
    /// HTML pages per host.
    #[arg(long, env = "LINKGRAPH_SIMWEB_PAGES_PER_HOST", default_value_t = 20)]
    pub pages_per_host: usize,
    /// Seed of the generated web: the same seed serves the same web.
    #[arg(long, env = "LINKGRAPH_SIMWEB_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Write the ground truth here (JSON lines: a header, then one edge per line); each
    /// epoch's changes go to FILE.epoch-N.jsonl when advanced (GET /__simweb/advance).
    #[arg(long, env = "LINKGRAPH_SIMWEB_TRUTH")]
    pub truth: Option<PathBuf>,
    /// From this epoch on, every host's home page links to host --burst-target (a burst
    /// of new referring domains, to see a spike).
    #[arg(long, requires = "burst_target")]
    pub burst_epoch: Option<u32>,
    /// The index (0-based) of the host the burst links to.
    #[arg(long, requires = "burst_epoch")]
    pub burst_target: Option<usize>,
    /// Plant link-spam patterns around the popular domain: reciprocal pairs, a link farm, a
    /// sitewide footer link, an exact-match anchor campaign and a network (the planted domains
    /// go to the --info file).
    #[arg(long)]
    pub risk_patterns: bool,
    /// Write shell-readable facts (listen address, seed URL, popular domain) here.
    #[arg(long, env = "LINKGRAPH_SIMWEB_INFO")]
    pub info: Option<PathBuf>,
}

/// `store init`: create a store's schema.
#[derive(Args)]
pub struct StoreInitCmd {
    /// The store: scylla://HOST:PORT[,HOST:PORT]/KEYSPACE or fjall:///DIR.
    #[arg(long, env = "LINKGRAPH_STORE")]
    pub store: String,
    /// Replicas per datacenter of a new keyspace (NetworkTopologyStrategy).
    #[arg(long, env = "LINKGRAPH_SCYLLA_RF", default_value_t = 3)]
    pub replication_factor: u32,
    /// Partitions per target domain in a new keyspace (fixed once created):
    /// 16 for a large crawl, 256 for the whole web.
    #[arg(long, env = "LINKGRAPH_SCYLLA_BUCKETS", default_value_t = linkgraph_store::DEFAULT_BUCKETS)]
    pub buckets: u32,
}

/// `frontier`: the frontier service.
#[derive(Args)]
pub struct FrontierCmd {
    #[command(flatten)]
    pub svc: ServiceFlags,
    /// Data directory: the frontier's state lives in DATA/frontier.
    #[arg(long, env = "LINKGRAPH_DATA")]
    pub data: PathBuf,
    #[command(flatten)]
    pub seeds: SeedFlags,
    /// Exit 0 once no URL has been queued or in flight for this many seconds.
    #[arg(long, env = "LINKGRAPH_EXIT_WHEN_IDLE", value_name = "SECONDS", value_parser = seconds_arg)]
    pub exit_when_idle: Option<Duration>,
    /// Dispatch a request again when its feedback has not come back after this long
    /// (e.g. 2m; a few times the fetch timeout): a lost message never stalls a crawl.
    #[arg(long, env = "LINKGRAPH_INFLIGHT_DEADLINE", default_value = "2m", value_parser = humantime::parse_duration)]
    pub inflight_deadline: Duration,
    #[command(flatten)]
    pub rate: RateFlags,
    #[command(flatten)]
    pub urls: UrlFlags,
    #[command(flatten)]
    pub frontier: FrontierFlags,
}

/// `fetcher`: the fetcher service.
#[derive(Args)]
pub struct FetcherCmd {
    #[command(flatten)]
    pub svc: ServiceFlags,
    #[command(flatten)]
    pub concurrency: ConcurrencyFlags,
    #[command(flatten)]
    pub rate: RateFlags,
    #[command(flatten)]
    pub agent: AgentFlags,
    #[command(flatten)]
    pub fetch: FetchFlags,
    /// Keep each origin's last good robots.txt in this ScyllaDB store
    /// (scylla://HOST:PORT/KEYSPACE), so a failed refresh is answered from it for up to
    /// 30 days across restarts and fetchers; without it, only in memory.
    #[arg(long, env = "LINKGRAPH_STORE")]
    pub store: Option<String>,
}

/// `parser`: the parser service.
#[derive(Args)]
pub struct ParserCmd {
    #[command(flatten)]
    pub svc: ServiceFlags,
    #[command(flatten)]
    pub store: StoreFlags,
    #[command(flatten)]
    pub concurrency: ConcurrencyFlags,
    #[command(flatten)]
    pub agent: AgentFlags,
    #[command(flatten)]
    pub urls: UrlFlags,
    #[command(flatten)]
    pub parse: ParseFlags,
}

/// `seed`: publish seeds to a running crawl.
#[derive(Args)]
pub struct SeedCmd {
    /// The bus: kafka://HOST:PORT[,HOST:PORT].
    #[arg(long, env = "LINKGRAPH_BUS")]
    pub bus: String,
    /// Seed URLs, or files with one URL per line ('#' starts a comment).
    #[arg(long, num_args = 1.., required = true, value_delimiter = ',')]
    pub seeds: Vec<String>,
}

/// `topics create`: create the bus topics.
#[cfg(feature = "kafka")]
#[derive(Args)]
pub struct TopicsCreateCmd {
    /// The bus: kafka://HOST:PORT[,HOST:PORT].
    #[arg(long, env = "LINKGRAPH_BUS")]
    pub bus: String,
    /// Replicas of each partition.
    #[arg(long, env = "LINKGRAPH_TOPIC_REPLICATION", default_value_t = 3)]
    pub replication_factor: i32,
    /// Partitions of each new topic (the dead-letter topic has 1): the most
    /// replicas of a service that can consume at once. Existing topics keep theirs.
    #[arg(long, env = "LINKGRAPH_TOPIC_PARTITIONS", default_value_t = 12,
          value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub partitions: i32,
}

/// A date or time flag, as ms since the epoch.
fn parse_time_arg(s: &str) -> Result<i64, String> {
    parse_time(s).ok_or_else(|| format!("{s:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))
}

/// A number of seconds flag.
fn seconds_arg(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("{s:?} is not a non-negative number of seconds"))
}
