//! The pipeline: the stage functions over the wire contract ([`stages`]),
//! the embedded crawl that wires frontier, fetcher, parser and store in one
//! process ([`embedded`]), and the reports ([`report`]).

pub mod embedded;
pub mod report;
pub mod stages;

pub use embedded::{CrawlError, CrawlOptions, CrawlSummary, StopReason, crawl, peak_rss_bytes};
