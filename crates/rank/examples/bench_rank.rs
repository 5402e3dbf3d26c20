//! `make bench-rank`: ranks a synthetic domain graph (1M nodes, 20M arcs by
//! default) through the same path as `linkgraph rank` (spool, external sort,
//! BVGraph compression, PageRank, HyperBall) and prints the time of each
//! step, the peak RSS and the compressed bits per arc.
//!
//! The graph: each node links to 20 targets on average; half of a node's
//! arcs go to nodes near it in id order (as domains of one network or
//! language cluster sit together after a good ordering), half to a skewed
//! global choice (a few domains collect most links), so in-degrees follow a
//! heavy tail like the web's.

use std::time::Instant;

use linkgraph_rank::graph::{self, Harmonic, Spool};

/// A small, fast, deterministic generator (SplitMix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let nodes: usize = std::env::var("BENCH_RANK_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let arcs: u64 = std::env::var("BENCH_RANK_ARCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000_000);
    let n = nodes as u64;
    let dir = tempfile::tempdir()?;
    let total = Instant::now();
    let t = Instant::now();
    let mut spool = Spool::create(dir.path(), "follow.arcs")?;
    let mut rng = Mix(42);
    for _ in 0..arcs {
        let s = rng.below(n);
        let target = if rng.next() & 1 == 0 {
            // Near in id order.
            (s + 1 + rng.below(64)) % n
        } else {
            // Skewed: the square of a uniform fraction favours low ids.
            let u = rng.below(1 << 20) as f64 / f64::from(1u32 << 20);
            ((u * u * u) * n as f64) as u64 % n
        };
        if target != s {
            spool.push(s as u32, target as u32)?;
        }
    }
    let pushed = spool.len();
    let spool = spool.finish()?;
    let gen_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mem = 256 << 20;
    let fwd = graph::compress(&spool, nodes, false, dir.path().join("graph"), mem)?;
    let back = graph::compress(&spool, nodes, true, dir.path().join("transpose"), mem)?;
    let comp_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let ranks = graph::compute(
        &fwd,
        &back,
        nodes,
        &[0, 1, 2],
        Harmonic::HyperBall { log2m: 8 },
        0,
    )?;
    let rank_s = t.elapsed().as_secs_f64();
    let sum: f64 = ranks.pagerank.iter().sum();
    println!(
        "bench-rank: {nodes} nodes, {pushed} arcs generated, {} distinct",
        fwd.arcs
    );
    println!(
        "  compressed: {:.2} bits/arc ({:.1} MiB for the forward graph)",
        fwd.bits as f64 / fwd.arcs.max(1) as f64,
        fwd.bits as f64 / 8.0 / (1 << 20) as f64
    );
    println!("  spool {gen_s:.1}s, sort + compress (both directions) {comp_s:.1}s");
    println!(
        "  pagerank ({} iterations) + trust + harmonic ({}) {rank_s:.1}s",
        ranks.iterations, ranks.harmonic_method
    );
    println!(
        "  total {:.1}s, peak RSS {:.0} MiB, pagerank sums to {sum:.9}",
        total.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    Ok(())
}
