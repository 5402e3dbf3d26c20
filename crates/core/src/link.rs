//! The link record: one edge of the link graph with its attributes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::registrable_domain;

/// Anchor text longer than this many characters is truncated.
pub const MAX_ANCHOR_CHARS: usize = 256;

/// The rel qualifiers that change how a link passes authority.
/// No flag set means an ordinary "follow" link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rel(u8);

impl Rel {
    /// `rel="nofollow"`, or the page said nofollow.
    pub const NOFOLLOW: Rel = Rel(1);
    /// `rel="sponsored"`.
    pub const SPONSORED: Rel = Rel(2);
    /// `rel="ugc"` (user-generated content).
    pub const UGC: Rel = Rel(4);
    const ALL: [(Rel, &'static str); 3] = [
        (Rel::NOFOLLOW, "nofollow"),
        (Rel::SPONSORED, "sponsored"),
        (Rel::UGC, "ugc"),
    ];

    /// No qualifiers: a follow link.
    pub const fn follow() -> Rel {
        Rel(0)
    }
    /// The raw bit set (stable: used on the wire and on disk).
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Rebuilds from [`Rel::bits`], ignoring unknown bits.
    pub const fn from_bits(bits: u8) -> Rel {
        Rel(bits & 0b111)
    }
    /// True when every flag of `other` is set.
    pub const fn contains(self, other: Rel) -> bool {
        self.0 & other.0 == other.0
    }
    /// True for a link that passes authority (none of nofollow, sponsored, ugc).
    pub const fn is_follow(self) -> bool {
        self.0 == 0
    }
    /// The flags' names, in a fixed order; empty for a follow link.
    pub fn names(self) -> Vec<&'static str> {
        Rel::ALL
            .iter()
            .filter(|(r, _)| self.contains(*r))
            .map(|(_, n)| *n)
            .collect()
    }
    /// Parses one flag name.
    pub fn from_name(name: &str) -> Option<Rel> {
        Rel::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(r, _)| *r)
    }
}

impl std::ops::BitOr for Rel {
    type Output = Rel;
    fn bitor(self, rhs: Rel) -> Rel {
        Rel(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Rel {
    fn bitor_assign(&mut self, rhs: Rel) {
        self.0 |= rhs.0;
    }
}

/// Parses an HTML `rel` attribute value (space-separated, case-insensitive).
pub fn parse_rel_attribute(value: &str) -> Rel {
    value
        .split_ascii_whitespace()
        .filter_map(Rel::from_name)
        .fold(Rel::follow(), |a, b| a | b)
}

impl Serialize for Rel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Rel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names.iter().try_fold(Rel::follow(), |acc, n| {
            Rel::from_name(n)
                .map(|r| acc | r)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown rel value {n:?}")))
        })
    }
}

/// Where on the page a link sits.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// The main content (anything not in the sections below).
    #[default]
    Content,
    /// A `<nav>` element.
    Nav,
    /// A `<header>` element.
    Header,
    /// A `<footer>` element.
    Footer,
    /// An `<aside>` element (sidebars).
    Aside,
    /// A comment section (an element whose class or id names a comment container).
    Comment,
}

impl Placement {
    /// Every placement, in wire order.
    pub const ALL: [Placement; 6] = [
        Placement::Content,
        Placement::Nav,
        Placement::Header,
        Placement::Footer,
        Placement::Aside,
        Placement::Comment,
    ];
    /// The lower-case name used in output.
    pub const fn as_str(self) -> &'static str {
        match self {
            Placement::Content => "content",
            Placement::Nav => "nav",
            Placement::Header => "header",
            Placement::Footer => "footer",
            Placement::Aside => "aside",
            Placement::Comment => "comment",
        }
    }
    /// The stable numeric code (wire and disk).
    pub const fn code(self) -> u8 {
        self as u8
    }
    /// Rebuilds from [`Placement::code`]; unknown codes read as content.
    pub fn from_code(code: u8) -> Placement {
        Placement::ALL
            .get(usize::from(code))
            .copied()
            .unwrap_or_default()
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the edge was found.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// An `<a href>` or `<area href>` in the page.
    #[default]
    Link,
    /// An HTTP redirect from the source URL to the target URL.
    Redirect,
}

impl LinkKind {
    /// The lower-case name used in output.
    pub const fn as_str(self) -> &'static str {
        match self {
            LinkKind::Link => "link",
            LinkKind::Redirect => "redirect",
        }
    }
}

/// One edge: a link from a source page to a target URL, with its attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The canonical URL of the page the link is on (or that redirects).
    pub source_url: String,
    /// The canonical URL the link points to.
    pub target_url: String,
    /// Whitespace-normalized anchor text (an image link's alt text), capped.
    pub anchor: String,
    /// The rel qualifiers; none means follow.
    pub rel: Rel,
    /// Where on the page the link sits.
    pub placement: Placement,
    /// A page link or a redirect.
    pub kind: LinkKind,
}

impl Link {
    /// The host of the source URL.
    pub fn source_host(&self) -> &str {
        url_host(&self.source_url)
    }
    /// The host of the target URL.
    pub fn target_host(&self) -> &str {
        url_host(&self.target_url)
    }
    /// The registrable domain of the source.
    pub fn source_domain(&self) -> &str {
        registrable_domain(self.source_host())
    }
    /// The registrable domain of the target.
    pub fn target_domain(&self) -> &str {
        registrable_domain(self.target_host())
    }
    /// True when source and target share a registrable domain (at once,
    /// without a suffix-list lookup, when they share a host).
    pub fn is_internal(&self) -> bool {
        let (source, target) = (self.source_host(), self.target_host());
        source == target || registrable_domain(source) == registrable_domain(target)
    }
}

/// The host part of an absolute URL string, without port or credentials
/// (IPv6 hosts keep their brackets); cheap, with no full parse.
pub fn url_host(url: &str) -> &str {
    // A byte scan: this runs for every link several times over (the
    // frontier, the store's shards and keys), and a char-pattern split cost
    // about 1% of a crawl's CPU.
    let rest = match url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    {
        Some(rest) => rest,
        None => url.split_once("://").map_or(url, |(_, r)| r),
    };
    let end = rest
        .bytes()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let hostport = authority
        .rfind('@')
        .map_or(authority, |at| &authority[at + 1..]);
    if hostport.starts_with('[') {
        return hostport
            .find(']')
            .map_or(hostport, |close| &hostport[..=close]);
    }
    hostport
        .find(':')
        .map_or(hostport, |colon| &hostport[..colon])
}

/// Collapses runs of whitespace to one space, trims, and caps the length at
/// [`MAX_ANCHOR_CHARS`] characters.
pub fn normalize_anchor(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_ANCHOR_CHARS * 2));
    let mut chars = 0;
    for word in text.split(char::is_whitespace).filter(|w| !w.is_empty()) {
        if chars >= MAX_ANCHOR_CHARS {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
            chars += 1;
        }
        for ch in word.chars() {
            if chars >= MAX_ANCHOR_CHARS {
                break;
            }
            out.push(ch);
            chars += 1;
        }
    }
    let trimmed_len = out.trim_end().len();
    out.truncate(trimmed_len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn link(src: &str, dst: &str) -> Link {
        Link {
            source_url: src.into(),
            target_url: dst.into(),
            anchor: String::new(),
            rel: Rel::follow(),
            placement: Placement::Content,
            kind: LinkKind::Link,
        }
    }

    #[test]
    fn rel_parses_and_names() {
        let r = parse_rel_attribute("NoFollow  noopener sponsored");
        assert!(r.contains(Rel::NOFOLLOW) && r.contains(Rel::SPONSORED) && !r.contains(Rel::UGC));
        assert_eq!(r.names(), vec!["nofollow", "sponsored"]);
        assert!(parse_rel_attribute("noopener noreferrer").is_follow());
        assert_eq!(Rel::from_bits(r.bits()), r);
    }

    proptest! {
        /// The host a URL parser reads, for every canonical URL shape
        /// (credentials, ports, IPv4 and IPv6 literals, queries, fragments).
        #[test]
        fn url_host_is_the_parsed_host(
            scheme in "https?",
            user in proptest::option::of("[a-z]{1,4}(:[a-z]{1,4})?"),
            host in "([a-z0-9-]{1,8}\\.){0,3}[a-z]{2,6}|[0-9]{1,3}(\\.[0-9]{1,3}){3}|\\[::[0-9a-f]{1,4}\\]",
            port in proptest::option::of(1u16..),
            tail in "(/[a-z0-9:@.?#=&-]{0,12})?([?#][a-z0-9:/@?#=&-]{0,8})?",
        ) {
            let userinfo = user.map(|u| format!("{u}@")).unwrap_or_default();
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let raw = format!("{scheme}://{userinfo}{host}{port}{tail}");
            if let Ok(parsed) = url::Url::parse(&raw) {
                let canonical = parsed.as_str();
                prop_assert_eq!(Some(url_host(canonical)), parsed.host_str(), "{}", canonical);
            }
        }
    }

    #[test]
    fn internal_means_same_registrable_domain() {
        assert!(link("http://www.a.co.uk/x", "https://shop.a.co.uk/").is_internal());
        assert!(!link("http://a.github.io/", "http://b.github.io/").is_internal());
        assert!(!link("http://a.com:8080/", "http://b.com/").is_internal());
        // Same host, however the ports and schemes differ.
        assert!(link("http://a.com:8080/x", "https://u@a.com/y").is_internal());
        assert!(link("http://[::1]:80/", "http://[::1]:81/").is_internal());
        assert_eq!(
            link("http://u@a.com:8080/p", "http://[::1]:80/").target_host(),
            "[::1]"
        );
        assert_eq!(
            link("http://u@a.com:8080/p", "http://b.com").source_host(),
            "a.com"
        );
    }

    #[test]
    fn anchor_is_normalized_and_capped() {
        assert_eq!(normalize_anchor("  Read\n\t the   docs "), "Read the docs");
        assert_eq!(normalize_anchor("a\u{a0}b"), "a b");
        let long = "é".repeat(1000);
        assert_eq!(normalize_anchor(&long).chars().count(), MAX_ANCHOR_CHARS);
    }

    #[test]
    fn placement_codes_round_trip() {
        for p in Placement::ALL {
            assert_eq!(Placement::from_code(p.code()), p);
        }
    }

    proptest! {
        #[test]
        fn anchor_normalization_is_idempotent(s in "\\PC{0,400}") {
            let once = normalize_anchor(&s);
            prop_assert!(once.chars().count() <= MAX_ANCHOR_CHARS);
            prop_assert_eq!(normalize_anchor(&once), once.clone());
        }
    }
}
