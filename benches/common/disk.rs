//! What a benchmark's data directory holds on disk.

use std::path::Path;

/// Bytes of the files under `dir`: all of them, and those of the engines'
/// journals (`N.jnl`).
pub fn disk_bytes(dir: &Path) -> (u64, u64) {
    let mut sum = (0, 0);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            let (a, j) = disk_bytes(&e.path());
            sum = (sum.0 + a, sum.1 + j);
        } else {
            sum.0 += m.len();
            if e.file_name().to_string_lossy().ends_with(".jnl") {
                sum.1 += m.len();
            }
        }
    }
    sum
}
