//! The domain graph on disk and the ranks computed on it: arcs spooled to a
//! file, sorted externally and compressed as BVGraphs (forward and
//! transpose) by `webgraph`, then PageRank, TrustRank and harmonic
//! centrality by `webgraph-algo`.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use dsi_bitstream::prelude::BE;
use dsi_progress_logger::no_logging;
use rand::SeedableRng;
use webgraph::graphs::bvgraph::{BvComp, BvGraph, store_ef_with_data};
use webgraph::graphs::par_sorted_graph::ParSortedGraph;
use webgraph::traits::{RandomAccessGraph, RandomAccessLabeling, SequentialLabeling};
use webgraph::utils::MemoryUsage;
use webgraph_algo::distances::hyperball::HyperBallBuilder;
use webgraph_algo::rank::pagerank::{Mode, PageRank, preds};

use crate::RankError;

/// PageRank's damping factor.
pub const DAMPING: f64 = 0.85;
/// PageRank stops once the L1 change of an iteration is below this.
pub const TOLERANCE: f64 = 1e-9;

/// Maps a graph-library error (an `anyhow::Error` chain) at `step`.
fn graph_err<E: std::fmt::Display>(step: &'static str) -> impl FnOnce(E) -> RankError {
    move |e| RankError::Graph {
        step,
        reason: format!("{e:#}"),
    }
}

fn io_err(step: &'static str) -> impl FnOnce(io::Error) -> RankError {
    move |source| RankError::Io { step, source }
}

/// Arcs (source id, target id) appended to a file, 8 bytes each, so the
/// edge list never has to fit in RAM.
pub struct Spool {
    path: PathBuf,
    out: BufWriter<File>,
    arcs: u64,
}

impl Spool {
    /// A new, empty spool file in `dir`.
    pub fn create(dir: &Path, name: &str) -> Result<Self, RankError> {
        let path = dir.join(name);
        let file = File::create(&path).map_err(io_err("create the arc spool"))?;
        Ok(Spool {
            path,
            out: BufWriter::with_capacity(1 << 20, file),
            arcs: 0,
        })
    }

    /// Appends one arc.
    pub fn push(&mut self, source: u32, target: u32) -> Result<(), RankError> {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&source.to_le_bytes());
        b[4..].copy_from_slice(&target.to_le_bytes());
        self.arcs += 1;
        self.out
            .write_all(&b)
            .map_err(io_err("write the arc spool"))
    }

    /// Arcs pushed so far (duplicates included).
    pub fn len(&self) -> u64 {
        self.arcs
    }

    /// True when no arc was pushed.
    pub fn is_empty(&self) -> bool {
        self.arcs == 0
    }

    /// Closes the file for reading.
    pub fn finish(mut self) -> Result<SpoolFile, RankError> {
        self.out.flush().map_err(io_err("write the arc spool"))?;
        Ok(SpoolFile { path: self.path })
    }
}

/// A finished [`Spool`].
pub struct SpoolFile {
    path: PathBuf,
}

impl SpoolFile {
    /// Its arcs, reversed with `transpose`.
    fn pairs(
        &self,
        transpose: bool,
    ) -> Result<impl Iterator<Item = io::Result<(usize, usize)>> + use<>, RankError> {
        let file = File::open(&self.path).map_err(io_err("read the arc spool"))?;
        let mut r = BufReader::with_capacity(1 << 20, file);
        Ok(std::iter::from_fn(move || {
            let mut b = [0u8; 8];
            match r.read_exact(&mut b) {
                Ok(()) => {
                    let s = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                    let t = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
                    Some(Ok(if transpose { (t, s) } else { (s, t) }))
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => None,
                Err(e) => Some(Err(e)),
            }
        }))
    }

    /// The in-degree of every node over the distinct arcs (duplicates
    /// collapsed by an external sort).
    pub fn distinct_indegrees(
        &self,
        nodes: usize,
        sort_memory: usize,
    ) -> Result<Vec<u64>, RankError> {
        let mut indeg = vec![0u64; nodes];
        if nodes == 0 {
            return Ok(indeg);
        }
        let sorted = ParSortedGraph::config()
            .dedup()
            .memory_usage(MemoryUsage::MemorySize(sort_memory))
            .sort_try_pairs(nodes, self.pairs(true)?)
            .map_err(graph_err("sort the live arcs"))?;
        let (_, iters) = sorted.into_parts();
        for it in iters {
            for ((target, _), ()) in it {
                indeg[target] += 1;
            }
        }
        Ok(indeg)
    }
}

/// A graph compressed to `basename.{graph,offsets,ef,properties}`.
pub struct Compressed {
    basename: PathBuf,
    /// Bits of the graph bitstream.
    pub bits: u64,
    /// Distinct arcs.
    pub arcs: u64,
}

/// Sorts the spool's arcs (reversed with `transpose`), drops duplicates and
/// compresses them as a BVGraph with random access.
pub fn compress(
    spool: &SpoolFile,
    nodes: usize,
    transpose: bool,
    basename: PathBuf,
    sort_memory: usize,
) -> Result<Compressed, RankError> {
    let sorted = ParSortedGraph::config()
        .dedup()
        .memory_usage(MemoryUsage::MemorySize(sort_memory))
        .sort_try_pairs(nodes, spool.pairs(transpose)?)
        .map_err(graph_err("sort the arcs"))?;
    let bits = BvComp::with_basename(&basename)
        .par_comp::<BE, _>(sorted)
        .map_err(graph_err("compress the graph"))?;
    store_ef_with_data(
        nodes,
        basename.with_extension("graph"),
        basename.with_extension("offsets"),
        basename.with_extension("ef"),
        no_logging![],
    )
    .map_err(graph_err("index the graph"))?;
    let arcs = load(&basename)?.num_arcs();
    Ok(Compressed {
        basename,
        bits,
        arcs,
    })
}

/// Loads a compressed graph for random access (memory-mapped).
fn load(
    basename: &Path,
) -> Result<impl RandomAccessGraph + SequentialLabeling<Label = usize> + Sync, RankError> {
    BvGraph::with_basename(basename)
        .endianness::<BE>()
        .load()
        .map_err(graph_err("load the graph"))
}

/// How harmonic centrality is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Harmonic {
    /// One breadth-first visit per node.
    Exact,
    /// HyperBall with 2^log2m HyperLogLog registers per node.
    HyperBall {
        /// Base-2 log of the registers per counter.
        log2m: u32,
    },
}

impl Harmonic {
    /// How the output names it.
    pub fn describe(self) -> String {
        match self {
            Harmonic::Exact => "exact".into(),
            Harmonic::HyperBall { log2m } => format!(
                "hyperball(log2m={log2m}, relative standard deviation {:.1}%)",
                104.0 / f64::from(1u32 << log2m).sqrt()
            ),
        }
    }
}

/// The ranks of every node, by node id.
#[derive(Debug, Clone, Default)]
pub struct Ranks {
    /// PageRank (sums to 1).
    pub pagerank: Vec<f64>,
    /// TrustRank, when there were seeds.
    pub trust: Option<Vec<f64>>,
    /// Harmonic centrality over incoming paths.
    pub harmonic: Vec<f64>,
    /// How harmonic was computed.
    pub harmonic_method: String,
    /// PageRank's iterations.
    pub iterations: usize,
}

/// Computes every rank on the compressed forward graph and its transpose.
pub fn compute(
    forward: &Compressed,
    transpose: &Compressed,
    nodes: usize,
    seeds: &[usize],
    harmonic: Harmonic,
    seed: u64,
) -> Result<Ranks, RankError> {
    if nodes == 0 {
        return Ok(Ranks {
            harmonic_method: harmonic.describe(),
            ..Ranks::default()
        });
    }
    let g = load(&forward.basename)?;
    let gt = load(&transpose.basename)?;
    let (pr, iterations) = pagerank(&gt, None)?;
    let trust = if seeds.is_empty() {
        None
    } else {
        let mut pref = vec![0.0; nodes];
        for &s in seeds {
            pref[s] = 1.0 / seeds.len() as f64;
        }
        Some(pagerank(&gt, Some(pref))?.0)
    };
    let harmonic_values = match harmonic {
        Harmonic::Exact => exact_harmonic(&g),
        Harmonic::HyperBall { log2m } => {
            // Incoming paths: HyperBall computes positive (outgoing)
            // centralities, so it runs on the transpose, with the graph
            // itself as the transpose's transpose for systolic iterations.
            let dcf = gt.build_dcf();
            let mut hb = HyperBallBuilder::with_hyper_log_log(&gt, Some(&g), &dcf, log2m, None)
                .map_err(graph_err("set up hyperball"))?
                .sum_of_inverse_distances(true)
                .build(no_logging![]);
            hb.run_until_done(rand::rngs::SmallRng::seed_from_u64(seed), no_logging![])
                .map_err(graph_err("run hyperball"))?;
            hb.harmonic_centralities()
                .map_err(graph_err("read hyperball"))?
                .iter()
                .map(|&h| f64::from(h))
                .collect()
        }
    };
    Ok(Ranks {
        pagerank: pr,
        trust,
        harmonic: harmonic_values,
        harmonic_method: harmonic.describe(),
        iterations,
    })
}

/// PageRank on the graph whose transpose is `gt`: uniform teleport and
/// dangling mass without `preference`; with it, both go to the preference
/// (TrustRank: trust only flows out of the seeds).
fn pagerank<G: RandomAccessGraph + Sync>(
    gt: &G,
    preference: Option<Vec<f64>>,
) -> Result<(Vec<f64>, usize), RankError> {
    let stop = preds::L1Norm::try_from(TOLERANCE).map_err(|e| RankError::Graph {
        step: "set pagerank's tolerance",
        reason: format!("{e:?}"),
    })?;
    Ok(match preference {
        None => {
            let mut pr = PageRank::new(gt);
            pr.alpha(DAMPING).mode(Mode::WeaklyPreferential);
            pr.run(stop);
            (pr.rank().to_vec(), pr.iterations())
        }
        Some(pref) => {
            let mut pr = PageRank::new(gt).preference(pref.as_slice());
            pr.alpha(DAMPING).mode(Mode::StronglyPreferential);
            pr.run(stop);
            (pr.rank().to_vec(), pr.iterations())
        }
    })
}

/// Σ 1/d(y, x) over every y that reaches x, by one breadth-first visit of
/// the graph from each node.
fn exact_harmonic<G: RandomAccessGraph>(g: &G) -> Vec<f64> {
    let n = g.num_nodes();
    let mut harmonic = vec![0.0; n];
    let mut dist = vec![u32::MAX; n];
    let mut queue = std::collections::VecDeque::new();
    let mut seen = Vec::new();
    for y in 0..n {
        dist[y] = 0;
        seen.push(y);
        queue.push_back(y);
        while let Some(v) = queue.pop_front() {
            let d = dist[v] + 1;
            for w in g.successors(v) {
                if dist[w] == u32::MAX {
                    dist[w] = d;
                    harmonic[w] += 1.0 / f64::from(d);
                    seen.push(w);
                    queue.push_back(w);
                }
            }
        }
        for v in seen.drain(..) {
            dist[v] = u32::MAX;
        }
    }
    harmonic
}
