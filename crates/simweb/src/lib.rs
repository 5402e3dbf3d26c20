//! The simulated web: many hosts on one loopback listener, routed by the Host
//! header, generated from a seed so every run is the same web. It knows its
//! own ground truth (every edge a compliant crawler must find) and can log
//! every request it serves, so tests check the crawler from the server's side.

mod model;
mod server;

pub use model::{Answer, Burst, EpochTruth, Host, SimConfig, SimWeb, Truth, TruthEdge};
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
