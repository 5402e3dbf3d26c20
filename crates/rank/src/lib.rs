//! Domain ranks: open, reproducible answers to "how strong is the linking
//! site?", computed on the **dofollow domain graph** of the store and stored
//! back with the time they were computed.
//!
//! # The graph
//! * One node per registrable domain that was crawled (has a page row) or
//!   that appears at either end of any stored external link, live or lost,
//!   whatever its rel. A domain reached only through nofollow links is a
//!   node with no arcs, and it counts in PageRank's normalization.
//! * One arc per (source domain, target domain) with at least one live
//!   external link that is neither nofollow, sponsored nor ugc. Duplicates
//!   collapse; internal links are not external, so there are no self-loops.
//!
//! Arcs are spooled to a file (8 bytes each), sorted externally in batches of
//! `sort_memory_bytes` and compressed as BVGraphs (forward and transpose) by
//! `webgraph`, the Rust port of the framework behind the Common Crawl web
//! graph, so the edge list never has to fit in RAM. What stays in RAM is the
//! domain-name table and a few `f64`s per node.
//!
//! # The ranks
//! * `pagerank`: damping 0.85, uniform teleport, the mass of dangling
//!   domains spread uniformly; iterated (`webgraph-algo`'s parallel
//!   Gauss–Seidel) until α/(1−α)·‖Δ‖₁, an upper bound on the L1 error, is
//!   below 1e-9. It sums to 1 over every node.
//! * `harmonic`: Σ 1/d(y, x) over every domain y that reaches x through
//!   arcs (incoming shortest paths), as the Common Crawl web graph ranks
//!   hosts. Exact (one breadth-first visit per node) up to
//!   `exact_harmonic_max_nodes` nodes; above, HyperBall's estimate with
//!   2^`hyperball_log2m` registers per node, and the run says so.
//! * `authority`: 0–100, `100 · ln(pr / pr_min) / ln(pr_max / pr_min)`
//!   over the graph's nodes: monotone in PageRank, 0 for the weakest domain
//!   (only teleport reaches it), 100 for the strongest; 0 for every domain
//!   when all PageRanks are equal.
//! * `trust` (with trusted seeds): PageRank personalized to the seeds
//!   (teleport and dangling mass go to them only), as TrustRank: a domain
//!   has trust only when a dofollow path leads to it from a seed.
//! * `referring_domains`: distinct domains with a live external link of any
//!   rel to the domain (what `refdomains` lists as live).

pub mod graph;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use linkgraph_core::{registrable_domain, url_host};
use linkgraph_store::{DomainRank, LinkStore, RankRun, Row, StoreError, Table};

pub use graph::{DAMPING, Harmonic, TOLERANCE};

/// Why ranking failed.
#[derive(Debug, thiserror::Error)]
pub enum RankError {
    /// Reading the graph or writing the ranks failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A work file failed.
    #[error("cannot {step}: {source}")]
    Io {
        /// What was being done.
        step: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The graph library failed.
    #[error("cannot {step}: {reason}")]
    Graph {
        /// What was being done.
        step: &'static str,
        /// The library's error chain.
        reason: String,
    },
    /// More domains than node ids.
    #[error("the domain graph has more than {0} domains")]
    TooManyDomains(u32),
}

/// How to rank.
#[derive(Debug, Clone)]
pub struct Options {
    /// Trusted seed domains for `trust` (none: no trust).
    pub trusted: Vec<String>,
    /// Harmonic centrality is exact up to this many nodes, HyperBall above.
    pub exact_harmonic_max_nodes: usize,
    /// HyperBall's registers per node, as a base-2 log.
    pub hyperball_log2m: u32,
    /// Where the work files go (the system's temp dir by default).
    pub work_dir: Option<PathBuf>,
    /// RAM for each in-memory sort batch of arcs.
    pub sort_memory_bytes: usize,
    /// HyperBall's random seed.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            trusted: Vec::new(),
            exact_harmonic_max_nodes: 20_000,
            hyperball_log2m: 8,
            work_dir: None,
            sort_memory_bytes: 256 << 20,
            seed: 0,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The stored run.
    pub run: RankRun,
    /// Bits per arc of the compressed forward graph.
    pub bits_per_arc: f64,
    /// PageRank's iterations.
    pub pagerank_iterations: usize,
    /// Trusted domains that are not nodes of the graph.
    pub trusted_missing: Vec<String>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

/// Registrable domains, numbered in the order first seen. The names live
/// once, end to end in one string (about 30 bytes a domain in all: the
/// name, its end offset, and a 4-byte slot of the hash table), since this
/// table is what must fit in RAM when the graph does not.
#[derive(Debug, Default)]
pub struct Domains {
    table: hashbrown::HashTable<u32>,
    text: String,
    ends: Vec<u64>,
    hasher: std::hash::RandomState,
}

impl Domains {
    fn slice<'a>(text: &'a str, ends: &[u64], id: usize) -> &'a str {
        let start = if id == 0 { 0 } else { ends[id - 1] as usize };
        &text[start..ends[id] as usize]
    }
    /// The id of `domain`, numbering it when new.
    pub fn id(&mut self, domain: &str) -> Result<u32, RankError> {
        use std::hash::BuildHasher;
        let h = self.hasher.hash_one(domain);
        let (text, ends) = (&self.text, &self.ends);
        if let Some(&id) = self
            .table
            .find(h, |&id| Self::slice(text, ends, id as usize) == domain)
        {
            return Ok(id);
        }
        let id = u32::try_from(self.ends.len()).map_err(|_| RankError::TooManyDomains(u32::MAX))?;
        self.text.push_str(domain);
        self.ends.push(self.text.len() as u64);
        let (text, ends, hasher) = (&self.text, &self.ends, &self.hasher);
        self.table.insert_unique(h, id, |&i| {
            hasher.hash_one(Self::slice(text, ends, i as usize))
        });
        Ok(id)
    }
    /// The id of a known domain.
    pub fn get(&self, domain: &str) -> Option<u32> {
        use std::hash::BuildHasher;
        let h = self.hasher.hash_one(domain);
        self.table
            .find(h, |&id| {
                Self::slice(&self.text, &self.ends, id as usize) == domain
            })
            .copied()
    }
    /// How many.
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    /// True when none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    /// The name of `id`.
    pub fn name(&self, id: usize) -> &str {
        Self::slice(&self.text, &self.ends, id)
    }
}

/// Authority (0–100) of each PageRank: see the crate doc.
pub fn authority(pagerank: &[f64]) -> Vec<f64> {
    let positive = pagerank.iter().copied().filter(|p| *p > 0.0);
    let min = positive.clone().fold(f64::INFINITY, f64::min);
    let max = positive.fold(0.0, f64::max);
    let span = (max / min).ln();
    pagerank
        .iter()
        .map(|&p| {
            if !(span.is_finite() && span > 0.0) || p <= 0.0 {
                0.0
            } else {
                (100.0 * (p / min).ln() / span).clamp(0.0, 100.0)
            }
        })
        .collect()
}

/// Rows per store read and per rank write.
const CHUNK: usize = 10_000;

/// Builds the dofollow domain graph of `store`, ranks it and stores the
/// ranks (then the run) at `now_ms`.
pub async fn rank(
    store: &dyn LinkStore,
    opts: &Options,
    now_ms: i64,
) -> Result<Outcome, RankError> {
    let started = Instant::now();
    let work = match &opts.work_dir {
        Some(d) => tempfile::Builder::new()
            .prefix("linkgraph-rank")
            .tempdir_in(d),
        None => tempfile::Builder::new().prefix("linkgraph-rank").tempdir(),
    }
    .map_err(|source| RankError::Io {
        step: "create the work directory",
        source,
    })?;
    let mut domains = Domains::default();
    let mut follow = graph::Spool::create(work.path(), "follow.arcs")?;
    let mut live = graph::Spool::create(work.path(), "live.arcs")?;
    let mut after = None;
    loop {
        let page = store.scan(Table::Pages, after, CHUNK).await?;
        for row in &page.rows {
            if let Row::Page { url, .. } = row {
                domains.id(registrable_domain(url_host(url)))?;
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mut after = None;
    loop {
        let page = store.scan(Table::Backlinks, after, CHUNK).await?;
        for row in &page.rows {
            let Row::Backlink(b) = row else { continue };
            let (sd, td) = (b.link.source_domain(), b.link.target_domain());
            if sd == td {
                continue;
            }
            let (s, t) = (domains.id(sd)?, domains.id(td)?);
            if b.lost_at_ms.is_none() {
                live.push(s, t)?;
                if b.link.rel.is_follow() {
                    follow.push(s, t)?;
                }
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let (follow, live) = (follow.finish()?, live.finish()?);
    let nodes = domains.len();
    let mut seeds = Vec::new();
    let mut trusted_missing = Vec::new();
    for t in &opts.trusted {
        match domains.get(t) {
            Some(id) => seeds.push(id as usize),
            None => trusted_missing.push(t.clone()),
        }
    }
    seeds.sort_unstable();
    seeds.dedup();
    let harmonic = if nodes <= opts.exact_harmonic_max_nodes {
        Harmonic::Exact
    } else {
        Harmonic::HyperBall {
            log2m: opts.hyperball_log2m,
        }
    };
    let (mem, seed, dir) = (opts.sort_memory_bytes, opts.seed, work.path().to_path_buf());
    let seeds_for_run = seeds.clone();
    let (ranks, indegrees, arcs, bits) = tokio::task::spawn_blocking(move || {
        let fwd = graph::compress(&follow, nodes, false, dir.join("graph"), mem)?;
        let back = graph::compress(&follow, nodes, true, dir.join("transpose"), mem)?;
        let arcs = fwd.arcs;
        let ranks = graph::compute(&fwd, &back, nodes, &seeds_for_run, harmonic, seed)?;
        let indegrees = live.distinct_indegrees(nodes, mem)?;
        Ok::<_, RankError>((ranks, indegrees, arcs, fwd.bits))
    })
    .await
    .map_err(|e| StoreError::Task(e.to_string()))??;
    let authority = authority(&ranks.pagerank);
    let mut chunk = Vec::with_capacity(CHUNK);
    for id in 0..nodes {
        chunk.push(DomainRank {
            domain: domains.name(id).to_owned(),
            authority: authority[id],
            pagerank: ranks.pagerank[id],
            harmonic: ranks.harmonic[id],
            trust: ranks.trust.as_ref().map(|t| t[id]),
            referring_domains: indegrees[id],
            computed_at_ms: now_ms,
        });
        if chunk.len() == CHUNK {
            store.write_ranks(std::mem::take(&mut chunk)).await?;
        }
    }
    if !chunk.is_empty() {
        store.write_ranks(chunk).await?;
    }
    let run = RankRun {
        computed_at_ms: now_ms,
        nodes: nodes as u64,
        arcs,
        harmonic_method: ranks.harmonic_method.clone(),
        trusted: seeds.len() as u64,
    };
    store.write_rank_run(run.clone()).await?;
    Ok(Outcome {
        run,
        bits_per_arc: if arcs == 0 {
            0.0
        } else {
            bits as f64 / arcs as f64
        },
        pagerank_iterations: ranks.iterations,
        trusted_missing,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use linkgraph_core::{Link, LinkKind, Placement, Rel};
    use linkgraph_store::{FjallStore, LinkSetUpdate, PageWrite};

    fn page(url: &str, targets: &[(&str, Rel)]) -> PageWrite {
        PageWrite {
            url: url.into(),
            status: 200,
            outcome: 1,
            fetched_at_ms: 1_000,
            update: LinkSetUpdate::Replace,
            links: targets
                .iter()
                .map(|(t, rel)| Link {
                    source_url: url.into(),
                    target_url: (*t).into(),
                    anchor: "a".into(),
                    rel: *rel,
                    placement: Placement::Content,
                    kind: LinkKind::Link,
                })
                .collect(),
            ..PageWrite::default()
        }
    }

    /// a → b → c, a → c, c → a (follow); b → d only nofollow; a page of
    /// `a` links itself (internal); e is crawled and links nothing.
    async fn small() -> (tempfile::TempDir, FjallStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = FjallStore::open(&dir.path().join("store"), true).unwrap();
        let f = Rel::follow();
        let writes = [
            page(
                "http://a.example/",
                &[
                    ("http://b.example/", f),
                    ("http://www.c.example/x", f),
                    ("http://a.example/self", f),
                ],
            ),
            page("http://a.example/2", &[("http://b.example/y", f)]),
            page(
                "http://b.example/",
                &[
                    ("http://c.example/", f),
                    ("http://d.example/", Rel::NOFOLLOW),
                ],
            ),
            page("http://c.example/", &[("http://a.example/", f)]),
            page("http://e.example/", &[]),
        ];
        for w in writes {
            s.write_page(w).await.unwrap();
        }
        (dir, s)
    }

    use std::collections::HashMap;

    fn by_domain(rows: Vec<DomainRank>) -> HashMap<String, DomainRank> {
        rows.into_iter().map(|r| (r.domain.clone(), r)).collect()
    }

    async fn all_ranks(s: &FjallStore) -> HashMap<String, DomainRank> {
        by_domain(s.scan_ranks(None, 1000).await.unwrap().0)
    }

    #[tokio::test]
    async fn ranks_the_dofollow_domain_graph() {
        let (_d, s) = small().await;
        let opts = Options {
            trusted: vec!["c.example".into(), "nowhere.example".into()],
            ..Options::default()
        };
        let out = rank(&s, &opts, 5_000).await.unwrap();
        // Nodes: a, b, c, d (nofollow only), e (crawled only).
        assert_eq!(out.run.nodes, 5);
        // Arcs: a→b, a→c, b→c, c→a (a→b twice collapses; b→d is nofollow).
        assert_eq!(out.run.arcs, 4);
        assert_eq!(out.run.harmonic_method, "exact");
        assert_eq!(out.run.trusted, 1);
        assert_eq!(out.trusted_missing, vec!["nowhere.example".to_owned()]);
        assert_eq!(s.rank_run().await.unwrap(), Some(out.run.clone()));
        let r = all_ranks(&s).await;
        let total: f64 = r.values().map(|x| x.pagerank).sum();
        assert!((total - 1.0).abs() < 1e-9, "pagerank sums to {total}");
        // Harmonic, incoming: c ← a (1), b (1): 2; a ← c (1), b (1/2): 1.5;
        // b ← a (1), c (1/2): 1.5; d and e: nobody.
        for (d, h) in [("a", 1.5), ("b", 1.5), ("c", 2.0), ("d", 0.0), ("e", 0.0)] {
            let got = r[&format!("{d}.example")].harmonic;
            assert!((got - h).abs() < 1e-12, "{d}: harmonic {got}, want {h}");
        }
        // d has a nofollow link only: teleport mass, like e.
        assert!((r["d.example"].pagerank - r["e.example"].pagerank).abs() < 1e-12);
        assert_eq!(r["d.example"].authority, 0.0);
        let top = r.values().map(|x| x.authority).fold(0.0, f64::max);
        assert_eq!(top, 100.0);
        assert_eq!(r["c.example"].authority, 100.0, "c has the most rank");
        // Trust flows from c only: e and d get none.
        assert_eq!(r["e.example"].trust, Some(0.0));
        assert_eq!(r["d.example"].trust, Some(0.0));
        assert!(r["a.example"].trust.unwrap() > 0.0);
        // Referring domains count live links of any rel.
        assert_eq!(r["d.example"].referring_domains, 1);
        assert_eq!(r["c.example"].referring_domains, 2);
        assert!(r.values().all(|x| x.computed_at_ms == 5_000));
    }

    #[tokio::test]
    async fn hyperball_estimates_what_bfs_counts() {
        let (_d, s) = small().await;
        rank(&s, &Options::default(), 1).await.unwrap();
        let exact = all_ranks(&s).await;
        let opts = Options {
            exact_harmonic_max_nodes: 0,
            ..Options::default()
        };
        let out = rank(&s, &opts, 2).await.unwrap();
        assert!(out.run.harmonic_method.starts_with("hyperball(log2m=8"));
        let est = all_ranks(&s).await;
        for (d, r) in &exact {
            let e = est[d].harmonic;
            assert!(
                (e - r.harmonic).abs() <= 0.1 * r.harmonic.max(1.0),
                "{d}: hyperball {e}, exact {}",
                r.harmonic
            );
            assert_eq!(est[d].trust, None);
        }
    }

    #[test]
    fn domains_are_numbered_once_in_order() {
        let mut d = Domains::default();
        let names: Vec<String> = (0..2000).map(|i| format!("d{i}.example")).collect();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(d.id(n).unwrap() as usize, i);
        }
        for (i, n) in names.iter().enumerate().rev() {
            assert_eq!(d.id(n).unwrap() as usize, i);
            assert_eq!(d.get(n), Some(i as u32));
            assert_eq!(d.name(i), n);
        }
        assert_eq!(d.len(), 2000);
        assert_eq!(d.get("other.example"), None);
    }

    #[test]
    fn authority_is_a_log_scale_of_pagerank() {
        let a = authority(&[0.01, 0.1, 1.0]);
        assert_eq!(a, vec![0.0, 50.0, 100.0]);
        assert_eq!(authority(&[0.5, 0.5]), vec![0.0, 0.0]);
        assert!(authority(&[]).is_empty());
    }
}
