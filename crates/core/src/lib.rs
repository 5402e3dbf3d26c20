//! The linkgraph core model, free of I/O: URL canonicalization, hosts and
//! registrable domains, and the link record every other crate exchanges.

mod domain;
mod link;
mod time;
mod urlcanon;

pub use domain::{is_ip_host, registrable_domain};
pub use link::{
    Link, LinkKind, Placement, Rel, normalize_anchor, MAX_ANCHOR_CHARS, parse_rel_attribute,
};
pub use time::{format_rfc3339_ms, now_ms, system_time_from_ms};
pub use urlcanon::{canonicalize, canonicalize_str, host_of, UrlError, MAX_URL_BYTES};
