//! Parse-then-store, written once: the embedded crawl and the parser service
//! both turn a fetch result into a stored page through a [`Recorder`].

use std::sync::Arc;

use linkgraph_core::UrlPolicy;
use linkgraph_parser::ParseLimits;
use linkgraph_proto::{FetchResult, FrontierFeedback};
use linkgraph_store::{LinkStore, StoreError, WriteStats};
use tokio::sync::Semaphore;

use crate::stages;

/// Bodies up to this size are parsed on the async task that records them:
/// at about 400 MB/s that is under 200 µs, less than handing the page to a
/// blocking thread and back costs in wake-ups and context switches (they
/// were 6% of a crawl's CPU). Larger bodies (up to the fetch cap) would hold
/// a runtime worker for milliseconds, so they still go to a blocking thread.
pub const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// Why a page could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The link store failed; the page must not be acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The parse task could not run (the runtime is shutting down).
    #[error("parse task failed: {0}")]
    Task(String),
}

/// Parses fetch results, at most one per CPU at once, and writes each page
/// and its edges to the store. A body up to [`INLINE_PARSE_BYTES`] is parsed
/// on the calling task; a larger one on a blocking thread.
#[derive(Clone)]
pub struct Recorder {
    store: Arc<dyn LinkStore>,
    permits: Arc<Semaphore>,
    product_token: Arc<str>,
    limits: ParseLimits,
    policy: Arc<UrlPolicy>,
}

impl Recorder {
    /// A recorder into `store`; robots meta tags are matched against
    /// `product_token`, and targets are cleaned by `policy`.
    pub fn new(
        store: Arc<dyn LinkStore>,
        product_token: &str,
        limits: ParseLimits,
        policy: UrlPolicy,
    ) -> Recorder {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Recorder {
            store,
            permits: Arc::new(Semaphore::new(cpus)),
            product_token: product_token.into(),
            limits,
            policy: Arc::new(policy),
        }
    }

    /// The store written to.
    pub fn store(&self) -> &Arc<dyn LinkStore> {
        &self.store
    }

    /// Parses `fetched` and stores the page; returns the frontier's
    /// feedback for it and what the write changed.
    pub async fn record(
        &self,
        fetched: FetchResult,
    ) -> Result<(FrontierFeedback, WriteStats), RecordError> {
        let page = {
            let _permit = Arc::clone(&self.permits)
                .acquire_owned()
                .await
                .map_err(|e| RecordError::Task(e.to_string()))?;
            let (token, limits, policy) = (
                Arc::clone(&self.product_token),
                self.limits,
                Arc::clone(&self.policy),
            );
            if fetched.body.len() <= INLINE_PARSE_BYTES {
                // `parse` catches a panic of the parser and records the page
                // as failed, so the task is as safe as a blocking thread.
                stages::parse(fetched, &token, limits, &policy)
            } else {
                tokio::task::spawn_blocking(move || stages::parse(fetched, &token, limits, &policy))
                    .await
                    .map_err(|e| RecordError::Task(e.to_string()))?
            }
        };
        // The feedback copies the link targets it needs; the links
        // themselves move into the write.
        let mut feedback = stages::feedback(&page);
        let stats = self.store.write_page(stages::page_write(page)).await?;
        feedback.changed = stats.changed;
        Ok((feedback, stats))
    }
}
