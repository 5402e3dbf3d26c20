//! `linkgraph`: crawl the web politely and ask who links to whom.
//!
//! This file declares the commands and dispatches each to the crate that
//! does the work; the flag groups and their settings are in [`args`].

mod args;

/// mimalloc instead of glibc's malloc: a crawl's threads allocate on one
/// thread and free on another at a high rate, and glibc spent about a
/// quarter of the broad crawl's CPU in its arenas (`docs/performance-log.md`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use linkgraph_core::{parse_time, set_clock_start};
use linkgraph_pipeline::config::read_seeds;
use linkgraph_pipeline::record::Recorder;
use linkgraph_pipeline::services::{self, FrontierServiceOptions, ServiceOptions};
use linkgraph_pipeline::{CrawlOptions, shutdown_signal};
use linkgraph_query::render::{self, BacklinksFormat, Format};
use linkgraph_query::{Reader, normalize_domain, parse_target, refdomains_report, velocity_report};
use linkgraph_store::Initialized;
use linkgraph_store::Status;

#[cfg(feature = "kafka")]
use args::TopicsCreateCmd;
use args::{
    AnchorsCmd, BacklinksCmd, BrokenCmd, CrawlCmd, DisavowCmd, DomainReportCmd, DomainsCmd,
    ExportCmd, FetcherCmd, FrontierCmd, IntersectCmd, ParserCmd, RankCmd, RefdomainsCmd,
    ReportFlags, RiskCmd, SeedCmd, ServeCmd, ServiceFlags, SimwebCmd, StoreInitCmd, StoreSel,
    SummaryCmd, VelocityCmd,
};

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
    Crawl(Box<CrawlCmd>),
    /// List the referring domains of a registrable domain.
    Refdomains(RefdomainsCmd),
    /// List the backlinks of a registrable domain or of one URL.
    Backlinks(BacklinksCmd),
    /// New and lost links and referring domains per day or week, with spikes.
    Velocity(VelocityCmd),
    /// One domain's link profile at a glance: live referring domains and backlinks,
    /// follow share, recent gains and losses, rel, placement and anchor mix.
    Summary(SummaryCmd),
    /// The anchor texts of a domain's or URL's backlinks, by referring domains.
    Anchors(AnchorsCmd),
    /// Rank every domain of the dofollow domain graph: PageRank, harmonic centrality,
    /// authority (0-100) and, with --trusted, trust; stored for `domains` and reports.
    Rank(RankCmd),
    /// The ranked domains, strongest first (run `rank` first).
    Domains(DomainsCmd),
    /// Referring domains with risk signals (reciprocal, link farm, sitewide, exact-match
    /// anchor, velocity spike, shared network, low authority), each with its evidence
    /// and a score.
    Risk(RiskCmd),
    /// A disavow file (Google's format) of the referring domains with risk signals.
    Disavow(DisavowCmd),
    /// A domain's pages by the backlinks they earn, with each one's HTTP status.
    Pages(DomainReportCmd),
    /// Links to pages that answer 404 or 410: inbound (yours) or outbound (others').
    Broken(BrokenCmd),
    /// The domains a domain links to.
    Outlinks(DomainReportCmd),
    /// Link gap: referring domains that link to several domains and not to others.
    Intersect(IntersectCmd),
    /// Serve every report as JSON over HTTP (GET /v1/<report>), with /v1/openapi.json.
    Serve(ServeCmd),
    /// Write the link graph as Apache Parquet files, for DuckDB, Spark or pandas.
    Export(ExportCmd),
    /// Serve a simulated web on a loopback address, for demos and tests.
    Simweb(SimwebCmd),
    /// Manage a link store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Run the frontier service: seeds, discovered URLs and feedback in, fetch requests out.
    Frontier(Box<FrontierCmd>),
    /// Run the fetcher service: fetch requests in, fetch results out.
    Fetcher(Box<FetcherCmd>),
    /// Run the parser service: fetch results in, edges to the store, discoveries and feedback out.
    Parser(Box<ParserCmd>),
    /// Inject seed URLs into a running crawl through the bus.
    Seed(SeedCmd),
    /// Manage the bus's topics.
    #[cfg(feature = "kafka")]
    #[command(subcommand)]
    Topics(TopicsCommand),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Create the store's schema (idempotent): the keyspace and tables of
    /// deploy/scylla/schema.cql for scylla://, the data directory for fjall://.
    Init(StoreInitCmd),
}

#[cfg(feature = "kafka")]
#[derive(Subcommand)]
enum TopicsCommand {
    /// Create the topics the services exchange (idempotent).
    Create(TopicsCreateCmd),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing();
    // LINKGRAPH_NOW starts every command's clock at another time: a testing
    // and backfill aid. Everything recorded is stamped with that clock.
    if let Ok(now) = std::env::var("LINKGRAPH_NOW") {
        let Some(ms) = parse_time(&now) else {
            eprintln!(
                "linkgraph: error: LINKGRAPH_NOW={now:?} is not an RFC 3339 time (e.g. 2026-03-02T12:00:00Z)"
            );
            return std::process::ExitCode::FAILURE;
        };
        set_clock_start(ms);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => Err(anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader of a report went away (`linkgraph refdomains x | head`):
        // what it read was written; nothing failed.
        Err(e) if reader_went_away(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("linkgraph: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `e` is a write to a closed pipe.
fn reader_went_away(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
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

/// Open files below which a crawl or a fetcher warns at start.
const MIN_OPEN_FILES: u64 = 4096;

async fn run(cli: Cli) -> Result<()> {
    // A crawl or a service runs for hours: its engines' background threads
    // free memory that glibc would otherwise keep resident.
    tokio::spawn(linkgraph_pipeline::memory::release_free_memory_every(
        linkgraph_pipeline::memory::RELEASE_EVERY,
    ));
    // A crawl's kept-open connections and its tables' files outgrow the
    // 1,024 open files many systems allow a process by default.
    let open_files = linkgraph_pipeline::limits::raise_open_files_limit();
    let crawls = matches!(cli.command, Command::Crawl(_) | Command::Fetcher(_));
    if let Some(n) = open_files.filter(|n| crawls && *n < MIN_OPEN_FILES) {
        tracing::warn!(
            limit = n,
            "the open-file limit is low for a crawl (sockets kept open, store tables): \
                 raise its hard limit (ulimit -Hn, or the container's nofile)"
        );
    }
    let mut out = std::io::stdout();
    match cli.command {
        Command::Crawl(a) => run_crawl(*a).await,
        Command::Refdomains(a) => {
            let domain = normalize_domain(&a.domain)?;
            let reader = open_reader(&a.sel).await?;
            let out = &mut out.lock();
            let limit = a.limit.or((a.format == Format::Table).then_some(1000));
            Ok(refdomains_report(&reader, out, &domain, a.status, limit, a.format).await?)
        }
        Command::Backlinks(a) => {
            let target = parse_target(&a.target)?;
            let reader = open_reader(&a.sel).await?;
            let (internal, status) = (a.include_internal, a.status);
            let limit = a
                .limit
                .or((a.format == BacklinksFormat::Table).then_some(1000));
            let out = &mut out.lock();
            Ok(reader
                .write_backlinks(out, &target, internal, status, limit, a.format)
                .await?)
        }
        Command::Velocity(a) => {
            let domain = normalize_domain(&a.domain)?;
            let reader = open_reader(&a.sel).await?;
            let range = (a.from, a.to);
            let out = &mut out.lock();
            let all = a.include_discovered;
            Ok(velocity_report(&reader, out, &domain, a.bucket, range, all, a.format).await?)
        }
        Command::Summary(a) => {
            let domain = normalize_domain(&a.domain)?;
            let reader = open_reader(&a.sel).await?;
            let r = reader.summary(&domain).await?;
            Ok(render::write_summary(&mut out.lock(), &r, a.format)?)
        }
        Command::Rank(a) => run_rank(a).await,
        Command::Domains(a) => {
            let reader = open_reader(&a.sel).await?;
            let r = reader.domains(a.sort, a.limit).await?;
            Ok(render::write_domains(&mut out.lock(), &r, a.format)?)
        }
        Command::Risk(a) => {
            let domain = normalize_domain(&a.domain)?;
            let reader = open_reader(&a.sel).await?;
            let r = reader.risk(&domain, a.thresholds.thresholds()).await?;
            Ok(render::write_risk(&mut out.lock(), &r, a.format)?)
        }
        Command::Disavow(a) => {
            let domain = normalize_domain(&a.domain)?;
            let allow = match &a.allow {
                None => Default::default(),
                Some(f) => {
                    let text = std::fs::read_to_string(f)
                        .with_context(|| format!("cannot read the allow file {}", f.display()))?;
                    linkgraph_query::risk::parse_allow(&text)
                        .with_context(|| format!("in the allow file {}", f.display()))?
                }
            };
            let reader = open_reader(&a.sel).await?;
            let t = a.thresholds.thresholds();
            let (text, n) = reader.disavow(&domain, t, a.min_score, &allow).await?;
            match &a.out {
                Some(path) => {
                    std::fs::write(path, &text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("{n} domains to disavow written to {}", path.display());
                }
                None => out.lock().write_all(&text)?,
            }
            Ok(())
        }
        Command::Anchors(a) => {
            let target = parse_target(&a.target)?;
            let (reader, status, limit) = open_report(&a.report, a.format == Format::Table).await?;
            let r = reader.anchors(&target, status, limit).await?;
            Ok(render::write_anchors(&mut out.lock(), &r, a.format)?)
        }
        Command::Pages(a) => {
            let domain = normalize_domain(&a.domain)?;
            let (reader, status, limit) = open_report(&a.report, a.format == Format::Table).await?;
            let r = reader.pages(&domain, status, limit).await?;
            Ok(render::write_pages(&mut out.lock(), &r, a.format)?)
        }
        Command::Outlinks(a) => {
            let domain = normalize_domain(&a.domain)?;
            let (reader, status, limit) = open_report(&a.report, a.format == Format::Table).await?;
            let r = reader.outlinks(&domain, status, limit).await?;
            Ok(render::write_outlinks(&mut out.lock(), &r, a.format)?)
        }
        Command::Intersect(a) => {
            let (targets, exclude) = (domains(&a.domains)?, domains(&a.exclude)?);
            let (reader, status, limit) = open_report(&a.report, a.format == Format::Table).await?;
            let r = reader
                .intersect(&targets, &exclude, a.min_targets, status, limit)
                .await?;
            Ok(render::write_intersect(&mut out.lock(), &r, a.format)?)
        }
        Command::Broken(a) => {
            let domain = normalize_domain(&a.domain)?;
            let table = a.format == BacklinksFormat::Table;
            let (reader, status, limit) = open_report(&a.report, table).await?;
            let out = &mut out.lock();
            Ok(reader
                .write_broken(out, &domain, a.direction, status, limit, a.format)
                .await?)
        }
        Command::Serve(a) => {
            let (token, limits) = a.api.settings(a.listen)?;
            let reader = open_reader(&a.sel).await?;
            let metrics = linkgraph_pipeline::admin::install_recorder()?;
            let listener = linkgraph_api::bind(a.listen).await?;
            let local = listener.local_addr()?;
            eprintln!("api listening on http://{local}/v1/ (see /v1/openapi.json)");
            let api = linkgraph_api::Api::new(reader, token, limits, Some(metrics));
            linkgraph_api::serve(listener, Arc::new(api), shutdown_signal()).await;
            Ok(())
        }
        Command::Export(a) => {
            let reader = open_reader(&a.sel).await?;
            let summary = linkgraph_export::export(reader.store(), &a.out).await?;
            writeln!(out, "{summary} to {}", a.out.display())?;
            Ok(())
        }
        Command::Simweb(a) => {
            let opts = linkgraph_simweb::demo::DemoOptions {
                listen: a.listen,
                hosts: a.hosts,
                pages_per_host: a.pages_per_host,
                seed: a.seed,
                burst: (a.burst_epoch.zip(a.burst_target))
                    .map(|(epoch, target)| linkgraph_simweb::Burst { epoch, target }),
                risk_patterns: a.risk_patterns,
                truth: a.truth,
                info: a.info,
            };
            Ok(linkgraph_simweb::demo::run(opts, shutdown_signal()).await?)
        }
        Command::Store(StoreCommand::Init(a)) => {
            let done = linkgraph_store::init(&a.store, a.replication_factor, a.buckets)
                .await
                .with_context(|| format!("cannot initialize {}", a.store))?;
            match done {
                Initialized::Embedded => writeln!(out, "store {} ready", a.store)?,
                Initialized::Scylla { keyspace, buckets } => {
                    if buckets != a.buckets {
                        eprintln!(
                            "note: keyspace {keyspace} already exists with {buckets} buckets per domain; kept"
                        );
                    }
                    writeln!(
                        out,
                        "store {} ready: keyspace {keyspace}, {buckets} buckets per domain",
                        a.store
                    )?;
                }
            }
            Ok(())
        }
        Command::Frontier(a) => run_frontier(*a).await,
        Command::Fetcher(a) => {
            let cfg = a.fetch.config(&a.agent, &a.rate)?;
            let archive = robots_archive(a.store.as_deref()).await?;
            let fetcher = linkgraph_fetcher::Fetcher::with_archive(cfg, archive)?;
            let (opts, _admin) = service_options("fetcher", &a.svc).await?;
            let concurrency = a.concurrency.concurrency;
            Ok(services::run_fetcher(opts, fetcher, concurrency, shutdown_signal()).await?)
        }
        Command::Parser(a) => {
            let url = match (&a.store.store, &a.store.data) {
                (Some(url), _) => url.clone(),
                (None, Some(dir)) => linkgraph_store::data_store_url(dir),
                (None, None) => bail!("the parser needs --store URL or --data DIR"),
            };
            let store = linkgraph_store::open(&url, true)
                .await
                .with_context(|| format!("cannot open the link store {url}"))?;
            let token = linkgraph_fetcher::product_token(&a.agent.user_agent);
            let recorder = Recorder::new(store, &token, a.parse.limits(), a.urls.policy());
            let (opts, _admin) = service_options("parser", &a.svc).await?;
            let concurrency = a.concurrency.concurrency;
            Ok(services::run_parser(opts, recorder, concurrency, shutdown_signal()).await?)
        }
        Command::Seed(a) => {
            let bus = linkgraph_bus::connect(&a.bus)?;
            let n = services::publish_seeds(bus.as_ref(), &read_seeds(&a.seeds)?)
                .await
                .context("cannot publish the seeds")?;
            writeln!(out, "{n} seeds published to {}", a.bus)?;
            Ok(())
        }
        #[cfg(feature = "kafka")]
        Command::Topics(TopicsCommand::Create(a)) => {
            let bus =
                linkgraph_bus::KafkaBus::from_url(&a.bus)?.with_replication(a.replication_factor);
            let specs = linkgraph_bus::TOPICS.map(|t| linkgraph_bus::TopicSpec {
                partitions: if t.partitions > 1 { a.partitions } else { 1 },
                ..t
            });
            linkgraph_bus::Bus::create_topics(&bus, &specs).await?;
            for t in specs {
                let plural = if t.partitions == 1 { "" } else { "s" };
                writeln!(out, "{} ({} partition{plural})", t.name, t.partitions)?;
            }
            Ok(())
        }
    }
}

/// Opens the store a read command names.
/// `rank`: builds and ranks the domain graph, stores the ranks, reports.
async fn run_rank(a: RankCmd) -> Result<()> {
    let url = match (&a.sel.store, &a.sel.data) {
        (Some(u), _) => u.clone(),
        (None, Some(d)) => {
            if !linkgraph_store::data_store_path(d).is_dir() {
                bail!(
                    "{} holds no link store (run `linkgraph crawl --data {}` first)",
                    d.display(),
                    d.display()
                );
            }
            linkgraph_store::data_store_url(d)
        }
        (None, None) => bail!("give --data DIR or --store URL"),
    };
    let trusted = match &a.trusted {
        None => Vec::new(),
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the trusted file {}", f.display()))?;
            linkgraph_query::risk::parse_allow(&text)
                .with_context(|| format!("in the trusted file {}", f.display()))?
                .into_iter()
                .collect()
        }
    };
    if a.trusted.is_some() && trusted.is_empty() {
        bail!("the trusted file names no domain");
    }
    let store = linkgraph_store::open(&url, true)
        .await
        .with_context(|| format!("cannot open the link store {url}"))?;
    let opts = linkgraph_rank::Options {
        trusted,
        exact_harmonic_max_nodes: a.exact_harmonic_max_nodes,
        hyperball_log2m: a.hyperball_log2m,
        work_dir: a.work_dir.clone(),
        sort_memory_bytes: a.sort_memory_mb << 20,
        seed: 0,
    };
    let out = linkgraph_rank::rank(store.as_ref(), &opts, linkgraph_core::now_ms()).await?;
    store.flush().await?;
    let r = &out.run;
    eprintln!(
        "ranked {} domains and {} dofollow arcs in {:.1}s ({:.2} bits/arc compressed; pagerank {} iterations; harmonic {})",
        r.nodes,
        r.arcs,
        out.elapsed.as_secs_f64(),
        out.bits_per_arc,
        out.pagerank_iterations,
        r.harmonic_method
    );
    if a.trusted.is_some() {
        eprintln!("trust from {} seed domains", r.trusted);
    }
    for d in &out.trusted_missing {
        eprintln!("warning: trusted domain {d} is not in the domain graph");
    }
    Ok(())
}

async fn open_reader(sel: &StoreSel) -> Result<Reader> {
    Ok(Reader::open(sel.data.as_deref(), sel.store.as_deref()).await?)
}

/// The robots.txt archive of a distributed fetcher: the Scylla store's
/// `robots` table, when `--store` names one (connected on first use, so a
/// fetcher starts while ScyllaDB is away).
async fn robots_archive(
    store: Option<&str>,
) -> Result<Option<Arc<dyn linkgraph_fetcher::RobotsArchive>>> {
    let Some(url) = store else {
        return Ok(None);
    };
    #[cfg(feature = "scylla")]
    {
        let uri = linkgraph_store::ScyllaUri::parse(url)?;
        Ok(Some(Arc::new(ScyllaRobots {
            uri,
            store: Arc::new(tokio::sync::OnceCell::new()),
        })))
    }
    #[cfg(not(feature = "scylla"))]
    {
        bail!(
            "--store {url}: this linkgraph was built without ScyllaDB (enable the `scylla` cargo feature)"
        )
    }
}

/// Each origin's last good robots.txt in the Scylla store. Saves run in the
/// background; a load (only after a failed fetch) waits for the store. A
/// store that cannot be reached is logged and tried again on the next use.
#[cfg(feature = "scylla")]
struct ScyllaRobots {
    uri: linkgraph_store::ScyllaUri,
    store: Arc<tokio::sync::OnceCell<linkgraph_store::ScyllaStore>>,
}

/// Connects `cell` to the store at `uri` unless it already is; a failure is
/// logged and leaves it empty, to be tried again.
#[cfg(feature = "scylla")]
async fn connect_once(
    uri: &linkgraph_store::ScyllaUri,
    cell: &tokio::sync::OnceCell<linkgraph_store::ScyllaStore>,
) {
    let connect = || linkgraph_store::ScyllaStore::connect(uri);
    if let Err(e) = cell.get_or_try_init(connect).await {
        tracing::warn!(error = %e, "cannot reach the robots.txt archive; retrying on next use");
    }
}

#[cfg(feature = "scylla")]
impl linkgraph_fetcher::RobotsArchive for ScyllaRobots {
    fn load(&self, origin: &str) -> Option<linkgraph_fetcher::ArchivedRobots> {
        let got = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                connect_once(&self.uri, &self.store).await;
                match self.store.get() {
                    Some(s) => s.robots_load(origin).await,
                    None => Ok(None),
                }
            })
        });
        match got {
            Ok(copy) => copy.map(|(fetched_at_ms, body)| linkgraph_fetcher::ArchivedRobots {
                fetched_at_ms,
                body,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the robots.txt archive");
                None
            }
        }
    }
    fn save(&self, origin: &str, copy: &linkgraph_fetcher::ArchivedRobots) {
        let (uri, cell) = (self.uri.clone(), Arc::clone(&self.store));
        let (origin, copy) = (origin.to_owned(), copy.clone());
        tokio::spawn(async move {
            connect_once(&uri, &cell).await;
            let Some(store) = cell.get() else { return };
            if let Err(e) = store
                .robots_save(&origin, copy.fetched_at_ms, copy.body.as_deref())
                .await
            {
                tracing::warn!(error = %e, "cannot write the robots.txt archive");
            }
        });
    }
}

/// Each of `input` as a registrable domain.
fn domains(input: &[String]) -> Result<Vec<String>> {
    input.iter().map(|d| Ok(normalize_domain(d)?)).collect()
}

/// Opens a report's store, with its status and row limit (1000 rows by
/// default for a table, all otherwise).
async fn open_report(r: &ReportFlags, table: bool) -> Result<(Reader, Status, Option<usize>)> {
    let limit = r.limit.or(table.then_some(1000));
    Ok((open_reader(&r.sel).await?, r.status, limit))
}

/// Connects a service to its bus and starts its admin endpoints, which
/// serve until the returned guard is dropped.
async fn service_options(
    role: &str,
    svc: &ServiceFlags,
) -> Result<(ServiceOptions, tokio::sync::oneshot::Sender<()>)> {
    let bus = linkgraph_bus::connect_as(&svc.bus, svc.instance_id.clone())?;
    let ready = Arc::new(AtomicBool::new(false));
    let admin = linkgraph_pipeline::admin::start(svc.admin_addr, Arc::clone(&ready)).await?;
    tracing::info!(service = role, bus = %svc.bus, "starting");
    let opts = ServiceOptions {
        bus,
        group: svc.group.clone(),
        dead_letter: svc.dead_letter,
        grace: svc.grace_period,
        ready,
    };
    Ok((opts, admin))
}

async fn run_frontier(a: FrontierCmd) -> Result<()> {
    let config = a.frontier.config(&a.rate, &a.urls)?;
    let seeds = read_seeds(&a.seeds.seeds)?;
    let (opts, _admin) = service_options("frontier", &a.svc).await?;
    let f_opts = FrontierServiceOptions {
        data_dir: a.data,
        config,
        seeds,
        exit_when_idle: a.exit_when_idle,
        inflight_deadline: a.inflight_deadline,
    };
    let run = services::run_frontier(opts, f_opts, shutdown_signal()).await?;
    println!(
        "frontier stopped{}: {} requests dispatched, {} completed",
        if run.idle { " (idle)" } else { "" },
        run.dispatched,
        run.completed
    );
    Ok(())
}

async fn run_crawl(a: CrawlCmd) -> Result<()> {
    let fetcher = a.fetch.config(&a.agent, &a.rate)?;
    let frontier = a.frontier.config(&a.rate, &a.urls)?;
    let seeds = read_seeds(&a.seeds.seeds)?;
    let Some(data_dir) = a.store.data else {
        bail!(
            "--data DIR is required: the crawl keeps its frontier (and by default its store) there"
        );
    };
    let opts = CrawlOptions {
        seeds,
        data_dir,
        store_url: a.store.store,
        max_pages: a.max_pages,
        concurrency: a.concurrency.concurrency,
        frontier,
        fetcher,
        parse_limits: a.parse.limits(),
        progress: !a.no_progress,
        continuous: a.continuous,
    };
    let store = linkgraph_pipeline::open_store(&opts).await?;
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api_task = match a.listen {
        Some(addr) => {
            let (token, limits) = a.api.settings(addr)?;
            let metrics = linkgraph_pipeline::admin::install_recorder()?;
            let listener = linkgraph_api::bind(addr).await?;
            eprintln!(
                "api listening on http://{}/v1/ while crawling",
                listener.local_addr()?
            );
            let reader = Reader::new(Arc::clone(&store), opts.data_dir.display().to_string());
            let api = Arc::new(linkgraph_api::Api::new(
                reader,
                token,
                limits,
                Some(metrics),
            ));
            Some(tokio::spawn(linkgraph_api::serve(listener, api, async {
                let _ = api_stopped.await;
            })))
        }
        None => None,
    };
    let summary = linkgraph_pipeline::crawl_into(opts, store, shutdown_signal()).await;
    drop(stop_api);
    if let Some(t) = api_task {
        let _ = t.await;
    }
    println!("{}", summary?);
    Ok(())
}
