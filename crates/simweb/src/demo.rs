//! The `linkgraph simweb` command: serve a simulated web on loopback, write
//! its ground truth (and each epoch's changes), and say how to crawl it.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::{Burst, EpochTruth, SimConfig, SimWeb, write_epoch_changes, write_truth};

/// What to serve, and where to write what it knows.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Address to listen on; loopback only.
    pub listen: SocketAddr,
    /// Number of hosts.
    pub hosts: usize,
    /// HTML pages per host.
    pub pages_per_host: usize,
    /// Seed of the generated web.
    pub seed: u64,
    /// A wave of new referring domains for one host from some epoch on.
    pub burst: Option<Burst>,
    /// Plant link-spam patterns around the popular domain.
    pub risk_patterns: bool,
    /// Ground-truth file; each epoch's changes go to FILE.epoch-N.jsonl.
    pub truth: Option<PathBuf>,
    /// Shell-readable facts (listen address, seed URL, popular domain).
    pub info: Option<PathBuf>,
}

/// Why the simulated web could not be served.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The address is not a loopback address.
    #[error("the simulated web only listens on loopback addresses, not {0}")]
    NotLoopback(SocketAddr),
    /// The burst names a host the web does not have.
    #[error("--burst-target {target} is not a host index (the web has {hosts} hosts)")]
    BadBurst {
        /// The index given.
        target: usize,
        /// Hosts in the web.
        hosts: usize,
    },
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn write_file(
    path: &Path,
    f: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), DemoError> {
    let err = |source| DemoError::Write {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(err)?;
    let mut w = std::io::BufWriter::new(file);
    f(&mut w).and_then(|()| w.flush()).map_err(err)
}

/// Writes `TRUTH.epoch-N.jsonl` (the changes of epoch N) whenever the
/// simulated web is advanced through `/__simweb/advance`.
async fn write_epoch_truths(web: Arc<SimWeb>, path: PathBuf, mut last: EpochTruth) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        while last.epoch < web.epoch() {
            let next = web.truth_at(last.epoch + 1, &last.known);
            let file = PathBuf::from(format!("{}.epoch-{}.jsonl", path.display(), next.epoch));
            match write_file(&file, |w| write_epoch_changes(&last.truth, &next, w)) {
                Ok(()) => eprintln!("simweb: epoch {} changes in {}", next.epoch, file.display()),
                Err(e) => eprintln!("simweb: {e}"),
            }
            last = next;
        }
    }
}

/// Serves the simulated web until `shutdown` resolves.
pub async fn run(opts: DemoOptions, shutdown: impl Future<Output = ()>) -> Result<(), DemoError> {
    if !opts.listen.ip().is_loopback() {
        return Err(DemoError::NotLoopback(opts.listen));
    }
    if let Some(b) = opts.burst
        && b.target >= opts.hosts.max(2)
    {
        return Err(DemoError::BadBurst {
            target: b.target,
            hosts: opts.hosts.max(2),
        });
    }
    let web = Arc::new(SimWeb::new(SimConfig {
        hosts: opts.hosts,
        pages_per_host: opts.pages_per_host,
        seed: opts.seed,
        burst: opts.burst,
        risk_patterns: opts.risk_patterns,
    }));
    let listen_err = |source| DemoError::Listen {
        addr: opts.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(listen_err)?;
    let addr = listener.local_addr().map_err(listen_err)?;
    if let Some(path) = opts.truth.clone() {
        let first = web.truth_at(0, &Default::default());
        write_file(&path, |w| write_truth(&first.truth, w))?;
        eprintln!(
            "simweb: ground truth ({} edges, {} pages) in {}; each epoch's changes go to {}.epoch-N.jsonl",
            first.truth.edges.len(),
            first.truth.pages,
            path.display(),
            path.display()
        );
        tokio::spawn(write_epoch_truths(Arc::clone(&web), path, first));
    }
    if let Some(path) = &opts.info {
        let info = format!(
            "LISTEN={addr}\nSEED_URL={}\nPOPULAR_DOMAIN={}\nHOSTS={}\nPAGES_PER_HOST={}\n",
            web.seed_url(),
            web.popular_domain(),
            web.config().hosts,
            web.config().pages_per_host
        );
        let burst = match opts.burst.and_then(|b| web.hosts().get(b.target)) {
            Some(h) => format!("BURST_DOMAIN={}\n", h.domain),
            None => String::new(),
        };
        let planted = match web.planted() {
            Some(p) => format!(
                "PLANTED_RECIPROCAL=\"{}\"\nPLANTED_LINK_FARM={}\nPLANTED_SITEWIDE={}\nPLANTED_NETWORK=\"{}\"\nPLANTED_ANCHOR_CAMPAIGN=\"{}\"\n",
                p.reciprocal.join(" "),
                p.link_farm,
                p.sitewide,
                p.network.join(" "),
                p.anchor_campaign.join(" ")
            ),
            None => String::new(),
        };
        write_file(path, |w| {
            w.write_all(format!("{info}{burst}{planted}").as_bytes())
        })?;
    }
    let mut out = std::io::stdout().lock();
    // The banner is best effort: a closed stdout must not stop the server.
    let _ = writeln!(
        out,
        "simweb: {} hosts x {} pages (seed {}) on {addr}\n  seed URL:  {}\n  crawl it:  linkgraph crawl --seeds {} --data DIR --resolve '*={addr}' --allow-private-networks",
        web.config().hosts,
        web.config().pages_per_host,
        opts.seed,
        web.seed_url(),
        web.seed_url()
    )
    .and_then(|()| out.flush());
    drop(out);
    crate::serve(listener, web, None, shutdown).await;
    Ok(())
}
