//! The pipeline: the stage functions over the wire contract ([`stages`]),
//! the embedded crawl that wires frontier, fetcher, parser and store in one
//! process ([`embedded`]), the distributed services over a bus
//! ([`services`]) with their admin endpoints ([`admin`]), the reports
//! ([`report`]) and link velocity ([`velocity`]).

pub mod admin;
pub mod embedded;
pub mod metrics_spec;
pub mod report;
pub mod services;
pub mod stages;
pub mod velocity;

pub use embedded::{CrawlError, CrawlOptions, CrawlSummary, StopReason, crawl, peak_rss_bytes};
