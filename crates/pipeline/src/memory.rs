//! Handing the memory glibc's allocator holds free back to the operating
//! system.
//!
//! The `linkgraph` binary allocates with mimalloc, which returns what it
//! frees to the OS itself (after a second); what still goes through glibc's
//! malloc is the C libraries' (librdkafka's buffers) and any program built
//! on these crates with the default allocator. glibc keeps what a thread
//! frees in that thread's arena and returns pages only from the top of a
//! heap. The embedded engines' flush and compaction threads allocate and
//! free hundreds of megabytes in blocks, so without help a long crawl's RSS
//! settled at its peak on glibc: the frontier benchmark held 405 MiB after
//! admitting 10M URLs, and 222 MiB once the free pages were returned. Every
//! long-running command calls [`release_free_memory`] every
//! [`RELEASE_EVERY`].

use std::time::Duration;

/// How often a long-running command returns free memory to the OS.
pub const RELEASE_EVERY: Duration = Duration::from_secs(10);

/// Asks the allocator to return the free pages of every arena to the OS
/// (glibc's `malloc_trim(0)`); returns whether any came back. It locks each
/// arena in turn for a few milliseconds. Elsewhere (musl, macOS) it does
/// nothing and returns false: those allocators return memory themselves.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() -> bool {
    // SAFETY: malloc_trim takes no pointers; glibc locks each arena while it
    // rearranges that arena's free lists.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Asks the allocator to return free memory to the OS: nothing to do off glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}

/// Calls [`release_free_memory`] every `period`, on a blocking thread, for
/// as long as the task runs; counts the calls that released memory in
/// `linkgraph_process_memory_releases_total`.
pub async fn release_free_memory_every(period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: nothing has been freed yet.
    tick.tick().await;
    loop {
        tick.tick().await;
        match tokio::task::spawn_blocking(release_free_memory).await {
            Ok(true) => metrics::counter!("linkgraph_process_memory_releases_total").increment(1),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "returning free memory to the os failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory freed by another thread comes back to the OS: RSS falls.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_arena_memory_is_returned() {
        let rss_kib = || crate::embedded::status_bytes("VmRSS:").unwrap_or(0) / 1024;
        // A thread fills its own arena with small blocks, keeps one block
        // at the top (so the heap cannot shrink from its end) and frees the
        // rest, as a compaction thread does.
        let pin = std::thread::spawn(|| {
            let blocks: Vec<Vec<u8>> = (0..200_000).map(|i| vec![i as u8; 1_000]).collect();
            // Allocated after every block, so above them in the arena.
            let pin = vec![1u8; 1_000];
            drop(blocks);
            pin
        })
        .join();
        assert!(pin.is_ok_and(|p| p.len() == 1_000));
        let before = rss_kib();
        assert!(release_free_memory(), "glibc returned nothing");
        let after = rss_kib();
        assert!(
            after + 50_000 < before,
            "RSS {before} KiB -> {after} KiB: expected ~190 MiB back"
        );
    }
}
