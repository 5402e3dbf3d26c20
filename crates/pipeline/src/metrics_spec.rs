//! Every metric linkgraph emits, with its help text and unit: the one place
//! an operator reads to know what is measured (Vector's
//! `instrumentation.md` pattern). Names follow
//! `linkgraph_<component>_<noun>_<unit>[_total]`; labels come from fixed
//! sets (outcome, reason, backend, op, topic, partition: bounded by the
//! topics' partition counts), never a host or a URL.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Counters: (name, help).
pub const COUNTERS: [(&str, &str); 25] = [
    (
        "linkgraph_store_memtable_rotations_total",
        "Memtables the embedded store rotated itself because the engine's write buffer passed 256 MiB (fjall had dropped its own rotation request).",
    ),
    (
        "linkgraph_store_commits_total",
        "Batches the embedded store committed for page writes: the pages waiting for a writer thread go in one batch (group commit), so pages written / commits is the group size.",
    ),
    (
        "linkgraph_store_row_ingests_total",
        "Times the embedded store ingested its buffered backlinks, link-event and outlink rows into the engine as sorted runs (every 16 MiB of rows, and before a query of them or a flush).",
    ),
    (
        "linkgraph_frontier_memtable_rotations_total",
        "Memtables the frontier rotated itself because the engine's write buffer passed 64 MiB (fjall had dropped its own rotation request).",
    ),
    (
        "linkgraph_process_memory_releases_total",
        "Periodic calls that returned free heap memory to the OS (glibc malloc_trim, every 10 s).",
    ),
    (
        "linkgraph_bus_rejoins_total",
        "Times a consumer re-joined its group because a partition it does not own had a backlog nobody committed for a minute.",
    ),
    (
        "linkgraph_api_requests_total",
        "API requests answered (labels endpoint, code).",
    ),
    (
        "linkgraph_parser_panics_total",
        "Pages whose processing panicked (a bug, caught): completed as outcome internal_error.",
    ),
    (
        "linkgraph_bus_partition_mismatches_total",
        "Messages found in another partition than their key hashes to (hand-offs rely on it).",
    ),
    (
        "linkgraph_frontier_dispatched_requests_total",
        "Fetch requests the frontier handed to fetchers.",
    ),
    (
        "linkgraph_frontier_handed_off_urls_total",
        "URLs handed to another frontier when their hosts' partition moved.",
    ),
    (
        "linkgraph_bus_consume_errors_total",
        "Failed receives from the bus (retried).",
    ),
    (
        "linkgraph_fetcher_pages_total",
        "Fetches by outcome class (label outcome).",
    ),
    (
        "linkgraph_fetcher_downloaded_bytes_total",
        "Body bytes downloaded, after decompression.",
    ),
    (
        "linkgraph_frontier_redispatched_requests_total",
        "Requests dispatched again because their feedback did not come back within --inflight-deadline.",
    ),
    (
        "linkgraph_fetcher_robots_denied_total",
        "URLs not fetched because robots.txt disallows them.",
    ),
    (
        "linkgraph_fetcher_robots_unavailable_total",
        "URLs not fetched because robots.txt could not be fetched and no good copy was at hand; they are tried again.",
    ),
    (
        "linkgraph_fetcher_robots_stale_used_total",
        "Failed robots.txt refreshes answered by the last good copy (kept up to 30 days).",
    ),
    (
        "linkgraph_frontier_rejected_urls_total",
        "Discovered URLs refused by the frontier (label reason).",
    ),
    (
        "linkgraph_frontier_parked_hosts_total",
        "Hosts parked after repeated failures.",
    ),
    (
        "linkgraph_store_edges_written_total",
        "Edges written to the link store (label backend).",
    ),
    (
        "linkgraph_store_errors_total",
        "Failed link store operations (labels backend, op).",
    ),
    (
        "linkgraph_bus_messages_produced_total",
        "Messages acknowledged by the bus.",
    ),
    (
        "linkgraph_bus_malformed_messages_total",
        "Consumed messages skipped because they do not decode (label topic).",
    ),
    (
        "linkgraph_bus_rebalances_total",
        "Consumer group rebalances seen.",
    ),
];

/// Gauges: (name, help).
pub const GAUGES: [(&str, &str); 8] = [
    (
        "linkgraph_frontier_memtable_bytes",
        "Bytes in the frontier engine's memtables (active and sealed); bounded at 64 MiB by the frontier's own rotation.",
    ),
    (
        "linkgraph_bus_owned_partitions",
        "1 when this consumer owns the partition (labels topic, partition), else 0; every member reports every partition of its topics.",
    ),
    (
        "linkgraph_bus_committed_offset_messages",
        "The consumer group's committed offset of a partition (labels topic, partition), as any member sees it.",
    ),
    (
        "linkgraph_bus_end_offset_messages",
        "The end offset of a partition (labels topic, partition): the offset its next message will get.",
    ),
    (
        "linkgraph_frontier_queued_urls",
        "URLs queued in the frontier, not yet dispatched.",
    ),
    (
        "linkgraph_frontier_inflight_requests",
        "Requests dispatched and not yet answered.",
    ),
    (
        "linkgraph_frontier_ready_hosts",
        "Hosts with queued URLs on the politeness schedule.",
    ),
    (
        "linkgraph_bus_consumer_lag_messages",
        "Messages behind the end of the consumed partitions (label topic).",
    ),
];

/// Histograms, in seconds: (name, help).
pub const HISTOGRAMS: [(&str, &str); 4] = [
    (
        "linkgraph_api_request_duration_seconds",
        "Time to answer an API request (label endpoint).",
    ),
    (
        "linkgraph_fetcher_fetch_duration_seconds",
        "Wall time of a fetch, rate-limit wait included.",
    ),
    (
        "linkgraph_store_write_duration_seconds",
        "Time to write one page to the link store, from the call to its acknowledgement: for the embedded store, waiting for its writer and the group commit of its batch (label backend).",
    ),
    (
        "linkgraph_store_read_duration_seconds",
        "Time of a link store query (labels backend, op).",
    ),
];

/// Registers the help text and unit of every metric with the installed
/// recorder.
pub fn describe() {
    for (name, help) in COUNTERS {
        describe_counter!(name, help);
    }
    for (name, help) in GAUGES {
        describe_gauge!(name, help);
    }
    for (name, help) in HISTOGRAMS {
        describe_histogram!(name, Unit::Seconds, help);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric the code emits is described here, and named by the
    /// convention.
    #[test]
    fn every_emitted_metric_is_described_and_well_named() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let mut emitted = std::collections::BTreeSet::new();
        let mut stack = vec![std::path::PathBuf::from(root)];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    for part in text.split("!(\"linkgraph_").skip(1) {
                        if let Some(name) = part.split('"').next().filter(|n| !n.contains('{')) {
                            emitted.insert(format!("linkgraph_{name}"));
                        }
                    }
                }
            }
        }
        let described: std::collections::BTreeSet<String> = COUNTERS
            .iter()
            .chain(&GAUGES)
            .chain(&HISTOGRAMS)
            .map(|(n, _)| (*n).to_owned())
            .collect();
        let undescribed: Vec<_> = emitted.difference(&described).collect();
        assert!(
            undescribed.is_empty(),
            "undescribed metrics: {undescribed:?}"
        );
        for (n, _) in COUNTERS {
            assert!(n.ends_with("_total"), "{n}");
        }
        for (n, _) in HISTOGRAMS {
            assert!(n.ends_with("_seconds"), "{n}");
        }
        for n in &described {
            assert!(
                n.split('_').count() >= 4,
                "{n}: linkgraph_<component>_<noun>_<unit>"
            );
        }
    }

    /// The dashboard and the alert rules only query metrics that exist.
    #[test]
    fn dashboard_and_alerts_use_described_metrics() {
        let described: std::collections::BTreeSet<&str> = COUNTERS
            .iter()
            .chain(&GAUGES)
            .chain(&HISTOGRAMS)
            .map(|(n, _)| *n)
            .collect();
        for file in ["grafana/linkgraph.json", "prometheus/alerts.yaml"] {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/").to_owned() + file;
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let mut used = 0;
            for part in text.split("linkgraph_").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if name.is_empty() {
                    continue;
                }
                let name = format!("linkgraph_{name}");
                let base = name.strip_suffix("_bucket").unwrap_or(&name);
                assert!(
                    described.contains(base),
                    "{file} queries unknown metric {name}"
                );
                used += 1;
            }
            assert!(used > 3, "{file} queries too few metrics");
        }
    }
}
