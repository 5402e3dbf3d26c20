//! The crawl: frontier, fetcher, parser and store wired together, in one
//! process or as services over a bus. The reports are the read side's
//! (`linkgraph-query`).
//!
//! # Layout
//! * [`stages`]: the pure stage functions over the proto messages;
//! * [`record`]: parse-then-store, shared by the embedded crawl and the parser service;
//! * [`embedded`]: the one-process crawl loop;
//! * [`services`]: the frontier, fetcher and parser services over a bus;
//! * [`admin`]: `/metrics`, `/healthz`, `/readyz` and the Prometheus recorder;
//! * [`metrics_spec`]: every metric's name, type and help;
//! * [`memory`]: handing free heap memory back to the OS;
//! * [`config`]: the per-host rate and seed lists.

pub mod admin;
pub mod config;
pub mod embedded;
pub mod limits;
pub mod memory;
pub mod metrics_spec;
pub mod record;
pub mod services;
pub mod stages;

pub use embedded::{
    CrawlError, CrawlOptions, CrawlSummary, StopReason, crawl, crawl_into, open_store,
    peak_rss_bytes,
};

/// Sleeps until `at`, or forever when there is nothing to wake for.
pub(crate) async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
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
