//! The embedded store's page writers: a few threads that write pages in
//! groups, one engine commit per group.
//!
//! A page write ran on a blocking thread of its own and committed its own
//! batch: at thousands of pages a second, handing every page to a thread
//! and back, and a journal write to the OS per page, cost about a tenth of
//! a crawl's CPU. Writes now queue for one of a few threads (one per CPU,
//! at most [`MAX_WRITERS`]), each owning a share of the write shards, so
//! that no two writers read or write the same source domain's rows. A
//! writer takes every write waiting for it (at most [`MAX_GROUP`]) and
//! writes them as one batch ([`Inner::write_group`]); each caller is
//! answered once that batch is committed, so an acknowledged write
//! survives `kill -9` as before.
//!
//! One more thread ingests the buffered rows ([`super::backlog`]) when a
//! writer says enough wait, so that the writers go on meanwhile; past
//! twice the limit a writer ingests itself, which holds its writes back.
//!
//! The threads start with the first write (a store opened to be read has
//! none) and stop when the last handle of the store is dropped, after
//! what they hold is written.

use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use linkgraph_core::{registrable_domain, url_host};
use tokio::sync::oneshot;

use super::{Inner, WRITE_SHARDS, Written, shard_of};
use crate::{PageWrite, StoreError, WriteStats};

/// Pages written in one batch, at most.
const MAX_GROUP: usize = 64;
/// Writer threads, at most (they are also bounded by the CPUs).
const MAX_WRITERS: usize = 8;

/// A page write waiting for its writer.
struct Job {
    page: PageWrite,
    reply: oneshot::Sender<Result<WriteStats, StoreError>>,
}

/// The writer threads of one store, and the queue of each.
pub(super) struct Writers {
    queues: Vec<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

/// A store's writers, started by its first write.
#[derive(Default)]
pub(super) struct Lazy(OnceLock<Result<Writers, String>>);

impl Lazy {
    /// Queues `page` for its writer (starting them if need be) and waits
    /// for its answer.
    pub(super) async fn write(
        &self,
        inner: &Arc<Inner>,
        page: PageWrite,
    ) -> Result<WriteStats, StoreError> {
        let writers = self
            .0
            .get_or_init(|| Writers::start(inner).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| StoreError::Task(format!("cannot start the store's writers: {e}")))?;
        let slot = shard_of(registrable_domain(url_host(&page.url)));
        let queue = &writers.queues[slot % writers.queues.len()];
        let (reply, answer) = oneshot::channel();
        queue
            .send(Job { page, reply })
            .map_err(|_| StoreError::Task("the store's writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Task("the store's writer failed writing this page".into()))?
    }
}

impl Writers {
    /// Starts the writers and the ingester of `inner`.
    fn start(inner: &Arc<Inner>) -> std::io::Result<Writers> {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let count = cpus.clamp(1, MAX_WRITERS).min(WRITE_SHARDS);
        let (nudge, nudged) = mpsc::sync_channel(1);
        let mut writers = Writers {
            queues: Vec::with_capacity(count),
            threads: Vec::with_capacity(count + 1),
        };
        for n in 0..count {
            let (queue, jobs) = mpsc::channel();
            let (inner, nudge) = (Arc::clone(inner), nudge.clone());
            let thread = std::thread::Builder::new()
                .name(format!("store-writer-{n}"))
                .spawn(move || run_writer(&inner, &jobs, &nudge))?;
            writers.queues.push(queue);
            writers.threads.push(thread);
        }
        drop(nudge);
        let inner = Arc::clone(inner);
        let thread = std::thread::Builder::new()
            .name("store-ingester".into())
            .spawn(move || run_ingester(&inner, &nudged))?;
        writers.threads.push(thread);
        Ok(writers)
    }
}

/// The last handle is gone: the writers finish what is queued, and the
/// ingester stops once they have.
impl Drop for Writers {
    fn drop(&mut self) {
        self.queues.clear();
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("a link store writer thread panicked");
            }
        }
    }
}

/// A writer: takes every page waiting (at most [`MAX_GROUP`]), writes them
/// as one group, answers each; until its queue closes.
fn run_writer(inner: &Inner, jobs: &mpsc::Receiver<Job>, nudge: &mpsc::SyncSender<()>) {
    let mut group: Vec<Job> = Vec::with_capacity(MAX_GROUP);
    // The counters this writer's shards hold ([`Written`]).
    let mut counters = Written::default();
    while let Ok(first) = jobs.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let pages: Vec<&PageWrite> = group.iter().map(|j| &j.page).collect();
        // A panic is a bug: the group's callers get an error (their reply
        // is dropped), and the writer goes on with the next group.
        let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // A full channel: an ingestion is asked for already.
            inner.write_group(&pages, &mut counters, || {
                let _ = nudge.try_send(());
            })
        }));
        drop(pages);
        match written {
            Ok(answers) => {
                for (job, answer) in group.drain(..).zip(answers) {
                    // The caller may have gone (its task cancelled): the
                    // write stands.
                    let _ = job.reply.send(answer);
                }
            }
            Err(_) => {
                tracing::error!(pages = group.len(), "a link store write panicked");
                // It may hold counters of a batch never committed.
                counters.clear();
                group.clear();
            }
        }
    }
}

/// The ingester: ingests the buffered rows each time a writer asks, until
/// every writer has stopped.
fn run_ingester(inner: &Inner, nudged: &mpsc::Receiver<()>) {
    while nudged.recv().is_ok() {
        if let Err(e) = inner.ingest(false) {
            // The rows stay buffered (and logged) for the next ingestion.
            tracing::warn!(error = %e, "ingesting the buffered rows failed; retried when more wait");
        }
    }
}
