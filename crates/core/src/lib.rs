//! The linkgraph core model, free of I/O: URL canonicalization, hosts and
//! registrable domains, and the link record every other crate exchanges.
//!
//! # Layout
//! * `urlcanon`: canonical URLs ([`canonicalize`]) and their errors;
//! * `domain`: hosts and registrable domains by the Public Suffix List;
//! * `link`: the link record ([`Link`]): rel, placement, kind, anchors;
//! * `trap`: the URL admission policy ([`UrlPolicy`]) against crawler traps;
//! * `time`: the crawl clock (`LINKGRAPH_NOW`) and RFC 3339 times.

mod domain;
mod link;
mod time;
mod trap;
mod urlcanon;

pub use domain::{is_ip_host, registrable_domain};
pub use link::{
    Link, LinkKind, MAX_ANCHOR_CHARS, Placement, Rel, normalize_anchor, parse_rel_attribute,
    url_host,
};
pub use time::{
    body_hash, fnv1a64, format_rfc3339_ms, now_ms, parse_time, poll_until, set_clock_start,
};
pub use trap::{DEFAULT_STRIP_PARAMS, TrapReason, UrlPolicy};
pub use urlcanon::{MAX_URL_BYTES, UrlError, canonicalize, canonicalize_str};
