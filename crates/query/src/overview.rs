//! The overview of one domain's link profile (`linkgraph summary`, the web
//! page's headline figures): live referring domains and backlinks, the
//! follow share, new and lost referring domains over the last 30 days, the
//! rel, placement and anchor mixes. Also the anchor classes the mix is made
//! of ([`anchor_kind`]), shared with every report that classifies anchors.

use std::collections::{BTreeMap, HashMap, HashSet};

use linkgraph_core::{Placement, Rel, format_rfc3339_ms, now_ms};
use linkgraph_store::{Status, Target};
use serde::Serialize;

use crate::reports::DomainIds;
use crate::velocity::Bucket;
use crate::{QueryError, Reader};

/// The window of the "recent" figures: the last 30 days.
pub const RECENT_DAYS: i64 = 30;

/// What an anchor text says about the link, relative to its target domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AnchorKind {
    /// No text (an image without alt, an empty link).
    Empty,
    /// A URL (`https://acme.com/x`) or a bare host name (`www.acme.com`).
    Url,
    /// Contains the brand: the target's registrable-domain label.
    Branded,
    /// Anything else: keywords, "click here", a sentence.
    Other,
}

impl AnchorKind {
    /// Every kind, in output order.
    pub const ALL: [AnchorKind; 4] = [
        AnchorKind::Branded,
        AnchorKind::Url,
        AnchorKind::Other,
        AnchorKind::Empty,
    ];

    /// The lower-case name used in output.
    pub const fn as_str(self) -> &'static str {
        match self {
            AnchorKind::Empty => "empty",
            AnchorKind::Url => "url",
            AnchorKind::Branded => "branded",
            AnchorKind::Other => "other",
        }
    }
}

/// The brand of a registrable domain: its first label (`acme` for
/// `acme.co.uk`, `x` for `x.blogspot.com`).
pub fn brand(domain: &str) -> &str {
    domain.split('.').next().unwrap_or(domain)
}

/// Lower-cases and drops spaces and hyphens, so "ACME Widgets" and
/// "acme-widgets" compare alike.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// True when `anchor` is a URL: it parses as an absolute http(s) URL, or
/// starts with a bare host name (`acme.com`, `www.acme.com/pricing`).
fn is_url(anchor: &str) -> bool {
    if anchor.chars().any(char::is_whitespace) {
        return false;
    }
    let lower = anchor.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("//") {
        return url::Url::parse(&lower)
            .or_else(|_| url::Url::parse(&format!("http:{lower}")))
            .is_ok_and(|u| u.host_str().is_some());
    }
    let host = lower.split(['/', '?', '#']).next().unwrap_or_default();
    let labels: Vec<&str> = host.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic))
        && url::Url::parse(&format!("http://{host}/")).is_ok()
}

/// Classifies `anchor` for a link to `target_domain` (a registrable domain):
/// empty, then URL, then branded (it contains the brand, ignoring case,
/// spaces and hyphens), else other.
pub fn anchor_kind(anchor: &str, target_domain: &str) -> AnchorKind {
    if anchor.trim().is_empty() {
        return AnchorKind::Empty;
    }
    if is_url(anchor.trim()) {
        return AnchorKind::Url;
    }
    let brand = squash(brand(target_domain));
    if !brand.is_empty() && squash(anchor).contains(&brand) {
        AnchorKind::Branded
    } else {
        AnchorKind::Other
    }
}

/// Links and referring domains of one slice of a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Share {
    /// Live external links.
    pub links: u64,
    /// Distinct referring domains among them.
    pub refdomains: u64,
}

/// `summary`: one domain's link profile at a glance (live external links).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The registrable domain.
    pub target: String,
    /// Live referring domains.
    pub referring_domains: u64,
    /// Live external backlinks (redirects included).
    pub backlinks: u64,
    /// Of those, follow links (none of nofollow, sponsored, ugc).
    pub follow_links: u64,
    /// follow_links / backlinks, 0 when there are none.
    pub follow_share: f64,
    /// The window of the recent figures: `[from, to)`, RFC 3339.
    pub recent_from: String,
    /// End of the recent window (now).
    pub recent_to: String,
    /// Referring domains gained in the window (new, not discovered).
    pub new_refdomains: u64,
    /// Referring domains lost in the window.
    pub lost_refdomains: u64,
    /// Referring domains first discovered in the window (first crawls).
    pub discovered_refdomains: u64,
    /// Links per rel: `follow`, then each flag (a link may carry several).
    pub rel: BTreeMap<&'static str, Share>,
    /// Links per placement.
    pub placement: BTreeMap<&'static str, Share>,
    /// Links per anchor class (see [`anchor_kind`]).
    pub anchor_mix: BTreeMap<&'static str, Share>,
    /// The domain's authority (0-100) once `rank` has run; `None` before.
    pub authority: Option<f64>,
}

/// Tallies one slice: links and distinct domains (numbered by
/// [`DomainIds`]).
#[derive(Default)]
struct Slice {
    links: u64,
    domains: HashSet<u32>,
}

impl Slice {
    fn add(&mut self, domain: u32) {
        self.links += 1;
        self.domains.insert(domain);
    }
}

fn shares<K: Ord + Copy>(
    names: impl IntoIterator<Item = (K, &'static str)>,
    mut slices: BTreeMap<K, Slice>,
) -> BTreeMap<&'static str, Share> {
    names
        .into_iter()
        .map(|(k, name)| {
            let s = slices.remove(&k).unwrap_or_default();
            let share = Share {
                links: s.links,
                refdomains: s.domains.len() as u64,
            };
            (name, share)
        })
        .collect()
}

impl Reader {
    /// The overview of `domain`'s live external backlinks; the recent
    /// window ends at the clock's now.
    pub async fn summary(&self, domain: &str) -> Result<Summary, QueryError> {
        self.ensure_known(domain).await?;
        let target = Target::Domain(domain.to_owned());
        let mut all = Slice::default();
        let mut follow = 0u64;
        let mut rel: BTreeMap<u8, Slice> = BTreeMap::new();
        let mut placement: BTreeMap<u8, Slice> = BTreeMap::new();
        let mut anchors: BTreeMap<AnchorKind, Slice> = BTreeMap::new();
        let flags = [Rel::NOFOLLOW, Rel::SPONSORED, Rel::UGC];
        let mut ids = DomainIds::default();
        // Anchors repeat: each is classified once.
        let mut kinds: HashMap<String, AnchorKind> = HashMap::new();
        self.each_backlink(&target, Status::Live, |b| {
            let d = ids.of(&b.link.source_url);
            all.add(d);
            if b.link.rel.is_follow() {
                follow += 1;
                rel.entry(0).or_default().add(d);
            }
            for f in flags.iter().filter(|f| b.link.rel.contains(**f)) {
                rel.entry(f.bits()).or_default().add(d);
            }
            placement.entry(b.link.placement.code()).or_default().add(d);
            let kind = match kinds.get(&b.link.anchor) {
                Some(k) => *k,
                None => {
                    let k = anchor_kind(&b.link.anchor, domain);
                    kinds.insert(b.link.anchor.clone(), k);
                    k
                }
            };
            anchors.entry(kind).or_default().add(d);
        })
        .await?;
        let to = now_ms();
        let from = to - RECENT_DAYS * 86_400_000;
        let v = self
            .velocity(domain, Bucket::Day, (Some(from), None), false)
            .await?;
        let sum = |f: fn(&crate::velocity::Point) -> u64| v.series.iter().map(f).sum::<u64>();
        let rel_names = std::iter::once((0u8, "follow")).chain(
            flags
                .iter()
                .map(|f| (f.bits(), f.names().first().copied().unwrap_or("?"))),
        );
        Ok(Summary {
            target: domain.to_owned(),
            referring_domains: all.domains.len() as u64,
            backlinks: all.links,
            follow_links: follow,
            follow_share: if all.links == 0 {
                0.0
            } else {
                follow as f64 / all.links as f64
            },
            recent_from: format_rfc3339_ms(from),
            recent_to: format_rfc3339_ms(to),
            new_refdomains: sum(|p| p.new_refdomains),
            lost_refdomains: sum(|p| p.lost_refdomains),
            discovered_refdomains: sum(|p| p.discovered_refdomains),
            rel: shares(rel_names, rel),
            placement: shares(
                Placement::ALL.iter().map(|p| (p.code(), p.as_str())),
                placement,
            ),
            anchor_mix: shares(AnchorKind::ALL.iter().map(|k| (*k, k.as_str())), anchors),
            authority: self
                .authorities(std::slice::from_ref(&domain.to_owned()))
                .await?
                .and_then(|a| a.get(domain).copied()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_classified_against_the_brand() {
        let d = "acme-widgets.co.uk";
        for (anchor, want) in [
            ("", AnchorKind::Empty),
            ("   ", AnchorKind::Empty),
            ("https://acme-widgets.co.uk/pricing", AnchorKind::Url),
            ("http://other.org", AnchorKind::Url),
            ("www.acme-widgets.co.uk", AnchorKind::Url),
            ("example.com/page", AnchorKind::Url),
            ("Acme Widgets", AnchorKind::Branded),
            ("ACMEWIDGETS shop", AnchorKind::Branded),
            ("the acme-widgets team", AnchorKind::Branded),
            ("cheap widgets", AnchorKind::Other),
            ("click here.", AnchorKind::Other),
            ("v1.2", AnchorKind::Other),
            ("<script>alert(1)</script>", AnchorKind::Other),
        ] {
            assert_eq!(anchor_kind(anchor, d), want, "{anchor:?}");
        }
        assert_eq!(brand("x.blogspot.com"), "x");
    }
}
