//! The simulated web: many hosts on one loopback listener, routed by the Host
//! header, generated from a seed so every run is the same web. It knows its
//! own ground truth (every edge a compliant crawler must find) and can log
//! every request it serves, so tests check the crawler from the server's side.
//! It changes by epochs (see [`SimWeb`]), with a ground truth for each.
//!
//! # Layout
//! * `model`: the generated web, its epochs and ground truth;
//! * `server`: the HTTP server with its request log;
//! * [`hostile`]: hosts that misbehave on purpose;
//! * [`raw`]: a raw loopback server for byte-exact responses;
//! * [`demo`]: the `linkgraph simweb` command.

pub mod demo;
pub mod hostile;
mod model;
pub mod raw;
mod server;

pub use model::{
    Answer, Burst, EpochTruth, FARM_LINKS, Host, Planted, SimConfig, SimWeb, Truth, TruthEdge,
};
pub use server::{LoggedRequest, RequestLog, serve};

use std::io::Write;

/// Writes the ground truth as JSON lines: a header object, then one edge per line.
pub fn write_truth(truth: &Truth, out: &mut impl Write) -> std::io::Result<()> {
    let header = serde_json::json!({
        "seed": truth.seed,
        "pages": truth.pages,
        "edges": truth.edges.len(),
        "disallowed": truth.disallowed,
    });
    writeln!(out, "{header}")?;
    for e in &truth.edges {
        serde_json::to_writer(&mut *out, e)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Writes what changed from `prev` (the live edges of the epoch before) to
/// `cur` as JSON lines: a header `{"epoch", "new", "lost"}`, then one
/// `{"change": "new"|"lost", ...edge}` per edge.
pub fn write_epoch_changes(
    prev: &Truth,
    cur: &EpochTruth,
    out: &mut impl Write,
) -> std::io::Result<()> {
    use std::collections::BTreeMap;
    let index = |t: &Truth| -> BTreeMap<(String, String), TruthEdge> {
        t.edges
            .iter()
            .map(|l| ((l.source_url.clone(), l.target_url.clone()), l.clone()))
            .collect()
    };
    let (before, after) = (index(prev), index(&cur.truth));
    let new: Vec<&TruthEdge> = after
        .iter()
        .filter(|(k, _)| !before.contains_key(*k))
        .map(|(_, l)| l)
        .collect();
    let lost: Vec<&TruthEdge> = before
        .iter()
        .filter(|(k, _)| !after.contains_key(*k))
        .map(|(_, l)| l)
        .collect();
    writeln!(
        out,
        "{}",
        serde_json::json!({"epoch": cur.epoch, "new": new.len(), "lost": lost.len()})
    )?;
    for (change, edges) in [("new", new), ("lost", lost)] {
        for e in edges {
            let mut v = serde_json::to_value(e)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("change".into(), change.into());
            }
            writeln!(out, "{v}")?;
        }
    }
    Ok(())
}
