//! The pipeline: the stage functions over the wire contract ([`stages`]),
//! the embedded crawl that wires frontier, fetcher, parser and store in one
//! process ([`embedded`]), the reports ([`report`]) and link velocity
//! ([`velocity`]).

pub mod embedded;
pub mod report;
pub mod stages;
pub mod velocity;

pub use embedded::{CrawlError, CrawlOptions, CrawlSummary, StopReason, crawl, peak_rss_bytes};
