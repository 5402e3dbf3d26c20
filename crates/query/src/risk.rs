//! Risk signals of a domain's referring domains (`linkgraph risk`) and the
//! disavow file built from them (`linkgraph disavow`). Every signal is a
//! documented rule over the stored graph and names the evidence that
//! raised it; a domain's score is the sum of its signals' weights, capped at
//! 100, so a single weak signal never reaches a high score.
//!
//! The rules (thresholds in [`Thresholds`]):
//! * `reciprocal` (weight 15): the target domain links back to the
//!   referring domain;
//! * `link_farm` (35): one of its pages that links to the target carries
//!   `link_farm_links` or more external links (distinct target URLs on
//!   other registrable domains);
//! * `sitewide` (20): it links to the target from at least
//!   `sitewide_share` of its crawled pages (HTML pages fetched with status
//!   200), and from at least `sitewide_pages` pages;
//! * `exact_match_anchor` (25): it uses an anchor (not empty, not branded,
//!   not a URL: see [`anchor_kind`]) that at least `anchor_share` of the
//!   target's referring domains, and at least `anchor_domains`, use;
//! * `velocity_spike` (15): it became a referring domain (new, not
//!   discovered) on a day that `velocity` flags as a spike;
//! * `shared_network` (30): one of its hosts was fetched from the same IPv4
//!   /24 (IPv6 /48) as hosts of at least `network_domains` other referring
//!   domains of the target: the footprint of a private blog network. The
//!   fetcher records the address it connected to for every host
//!   (`--resolve` addresses count). A prefix that hosts more than
//!   `network_max_share` of all the target's referring domains is shared
//!   hosting (a CDN, or a crawl where every host resolves to one address),
//!   not a network: it raises no signal, and the report's notes say so;
//! * `low_authority` (10): its authority (from the last `linkgraph rank`)
//!   is below `low_authority`. Weak on its own, and its detail says so;
//!   not computed before `rank` has run (the notes say so).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{self, Write};

use linkgraph_core::{format_rfc3339_ms, registrable_domain, url_host};
use linkgraph_store::{EventKind, OutlinkQuery, Row, Status, Table, Target};
use serde::Serialize;

use crate::overview::{AnchorKind, anchor_kind};
use crate::velocity::Bucket;
use crate::{QueryError, Reader};

/// Rows per store read.
const CHUNK: usize = 1000;

/// The thresholds of the signals (each a flag of `linkgraph risk`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// External links on one page that make it a link farm.
    pub link_farm_links: usize,
    /// Share of a domain's crawled pages that link to the target for a
    /// sitewide link.
    pub sitewide_share: f64,
    /// Fewest pages of a domain that link to the target for a sitewide link.
    pub sitewide_pages: usize,
    /// Share of the target's referring domains that use one anchor for an
    /// exact-match campaign.
    pub anchor_share: f64,
    /// Fewest referring domains that use it.
    pub anchor_domains: usize,
    /// Fewest other referring domains on one /24 (/48) for a network.
    pub network_domains: usize,
    /// Share of all referring domains above which a /24 (/48) is shared
    /// hosting, not a network.
    pub network_max_share: f64,
    /// Authority below which a domain is low-authority.
    pub low_authority: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            link_farm_links: 100,
            sitewide_share: 0.5,
            sitewide_pages: 5,
            anchor_share: 0.2,
            anchor_domains: 3,
            network_domains: 2,
            network_max_share: 0.5,
            low_authority: 10.0,
        }
    }
}

/// One kind of signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// The target links back.
    Reciprocal,
    /// A linking page is stuffed with external links.
    LinkFarm,
    /// Linked from most of the domain's pages.
    Sitewide,
    /// A shared commercial anchor.
    ExactMatchAnchor,
    /// Arrived in a spike of new referring domains.
    VelocitySpike,
    /// Hosted on one /24 (/48) with other referring domains.
    SharedNetwork,
    /// Low authority.
    LowAuthority,
}

impl SignalKind {
    /// The name used in output.
    pub const fn as_str(self) -> &'static str {
        match self {
            SignalKind::Reciprocal => "reciprocal",
            SignalKind::LinkFarm => "link_farm",
            SignalKind::Sitewide => "sitewide",
            SignalKind::ExactMatchAnchor => "exact_match_anchor",
            SignalKind::VelocitySpike => "velocity_spike",
            SignalKind::SharedNetwork => "shared_network",
            SignalKind::LowAuthority => "low_authority",
        }
    }

    /// Its weight in the score.
    pub const fn weight(self) -> u32 {
        match self {
            SignalKind::Reciprocal => 15,
            SignalKind::LinkFarm => 35,
            SignalKind::Sitewide => 20,
            SignalKind::ExactMatchAnchor => 25,
            SignalKind::VelocitySpike => 15,
            SignalKind::SharedNetwork => 30,
            SignalKind::LowAuthority => 10,
        }
    }
}

/// One signal and its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signal {
    /// What was found.
    pub kind: SignalKind,
    /// The evidence, in words: the page, the count, the anchor, the day.
    pub detail: String,
}

/// A referring domain with at least one signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskyDomain {
    /// The referring registrable domain.
    pub domain: String,
    /// Sum of its signals' weights, at most 100.
    pub score: u32,
    /// Its signals, one per kind, in kind order.
    pub signals: Vec<Signal>,
}

/// `risk`: the referring domains of a target that carry risk signals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Risk {
    /// The target registrable domain.
    pub target: String,
    /// By score desc, then domain asc.
    pub domains: Vec<RiskyDomain>,
    /// What the signals could not see, e.g. shared hosting left out, or
    /// ranks not computed yet.
    pub notes: Vec<String>,
}

/// The score of a set of signals.
fn score(signals: &[Signal]) -> u32 {
    let kinds: BTreeSet<SignalKind> = signals.iter().map(|s| s.kind).collect();
    kinds.iter().map(|k| k.weight()).sum::<u32>().min(100)
}

/// HTML pages fetched with status 200 (outcome OK or not modified, as in
/// `linkgraph_proto::FetchOutcome`).
fn is_crawled_page(outcome: i32, status: Option<u32>) -> bool {
    matches!(outcome, 1 | 11) && status == Some(200)
}

impl Reader {
    /// The risk signals of `domain`'s live referring domains.
    pub async fn risk(&self, domain: &str, t: Thresholds) -> Result<Risk, QueryError> {
        self.ensure_known(domain).await?;
        let target = Target::Domain(domain.to_owned());
        let refdomains = self.refdomains(domain, Status::Live).await?;
        let total = refdomains.len();
        let mut signals: BTreeMap<String, Vec<Signal>> = BTreeMap::new();

        // What each referring domain's links to the target look like.
        let mut linking_pages: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut anchors: HashMap<String, BTreeSet<String>> = HashMap::new();
        self.each_backlink(&target, Status::Live, |b| {
            let d = b.link.source_domain().to_owned();
            if anchor_kind(&b.link.anchor, domain) == AnchorKind::Other {
                anchors
                    .entry(b.link.anchor.clone())
                    .or_default()
                    .insert(d.clone());
            }
            linking_pages
                .entry(d)
                .or_default()
                .insert(b.link.source_url.clone());
        })
        .await?;

        // exact_match_anchor: an anchor shared by many referring domains.
        for (anchor, users) in &anchors {
            let share = users.len() as f64 / total.max(1) as f64;
            if users.len() >= t.anchor_domains && share >= t.anchor_share {
                for d in users {
                    signals.entry(d.clone()).or_default().push(Signal {
                        kind: SignalKind::ExactMatchAnchor,
                        detail: format!(
                            "anchor {anchor:?} is used by {} of the {total} referring domains ({:.0}%)",
                            users.len(),
                            share * 100.0
                        ),
                    });
                }
            }
        }

        // reciprocal: the target's own external links.
        let mut back: HashMap<String, (u64, String)> = HashMap::new();
        self.each_outlink(domain, |source, target_url| {
            let d = registrable_domain(url_host(target_url)).to_owned();
            let e = back
                .entry(d)
                .or_insert_with(|| (0, format!("{source} links to {target_url}")));
            e.0 += 1;
        })
        .await?;
        for r in &refdomains {
            if let Some((n, example)) = back.get(&r.domain) {
                signals.entry(r.domain.clone()).or_default().push(Signal {
                    kind: SignalKind::Reciprocal,
                    detail: format!(
                        "{domain} links back to {} with {n} link{} ({example})",
                        r.domain,
                        if *n == 1 { "" } else { "s" }
                    ),
                });
            }
        }

        // link_farm: a linking page stuffed with external links.
        for r in &refdomains {
            let Some(pages) = linking_pages.get(&r.domain) else {
                continue;
            };
            let mut per_page: HashMap<String, HashSet<String>> = HashMap::new();
            self.each_outlink(&r.domain, |source, target_url| {
                if pages.contains(source) {
                    per_page
                        .entry(source.to_owned())
                        .or_default()
                        .insert(target_url.to_owned());
                }
            })
            .await?;
            let worst = per_page
                .iter()
                .map(|(page, targets)| (targets.len(), page))
                .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)));
            if let Some((n, page)) = worst.filter(|(n, _)| *n >= t.link_farm_links) {
                let more = per_page
                    .values()
                    .filter(|v| v.len() >= t.link_farm_links)
                    .count();
                signals.entry(r.domain.clone()).or_default().push(Signal {
                    kind: SignalKind::LinkFarm,
                    detail: format!(
                        "{page} carries {n} external links ({more} of its pages linking here carry {} or more)",
                        t.link_farm_links
                    ),
                });
            }
        }

        // sitewide: linked from most of the domain's crawled pages.
        let candidates: HashSet<&str> = linking_pages
            .iter()
            .filter(|(_, p)| p.len() >= t.sitewide_pages)
            .map(|(d, _)| d.as_str())
            .collect();
        if !candidates.is_empty() {
            let crawled = self.crawled_pages(&candidates).await?;
            for d in candidates {
                let linking = linking_pages.get(d).map_or(0, BTreeSet::len);
                let pages = crawled.get(d).copied().unwrap_or(0).max(linking);
                let share = linking as f64 / pages.max(1) as f64;
                if share >= t.sitewide_share {
                    signals.entry(d.to_owned()).or_default().push(Signal {
                        kind: SignalKind::Sitewide,
                        detail: format!(
                            "{linking} of its {pages} crawled pages link here ({:.0}%)",
                            share * 100.0
                        ),
                    });
                }
            }
        }

        // velocity_spike: new on a day flagged as a spike (one read of the
        // events serves both the spikes and the domains' arrivals).
        let events = self.store.events(domain, 0, i64::MAX).await?;
        let v = crate::velocity::velocity(domain, &events, Bucket::Day, None, None, false);
        for e in events.iter().filter(|e| e.kind == EventKind::NewRefdomain) {
            let day = Bucket::Day.start_of(e.at_ms);
            let Some(s) = v.spikes.iter().find(|s| s.start_ms == day) else {
                continue;
            };
            let d = &e.link.source_url;
            if !refdomains.iter().any(|r| &r.domain == d) {
                continue;
            }
            signals.entry(d.clone()).or_default().push(Signal {
                kind: SignalKind::VelocitySpike,
                detail: format!(
                    "new on {}, a spike of {} new referring domains against a baseline of {:.1} (score {:.1})",
                    &format_rfc3339_ms(day)[..10],
                    s.new_refdomains,
                    s.baseline,
                    s.score
                ),
            });
        }

        let mut notes = Vec::new();
        self.shared_network(&refdomains, t, &mut signals, &mut notes)
            .await?;
        self.low_authority(&refdomains, t, &mut signals, &mut notes)
            .await?;

        let mut domains: Vec<RiskyDomain> = signals
            .into_iter()
            .map(|(domain, mut signals)| {
                signals.sort_by_key(|s| s.kind);
                signals.dedup_by(|a, b| a.kind == b.kind);
                RiskyDomain {
                    score: score(&signals),
                    domain,
                    signals,
                }
            })
            .collect();
        domains.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.domain.cmp(&b.domain)));
        Ok(Risk {
            target: domain.to_owned(),
            domains,
            notes,
        })
    }

    /// `shared_network`: referring domains whose hosts answered from one
    /// /24 (/48).
    async fn shared_network(
        &self,
        refdomains: &[linkgraph_store::RefDomain],
        t: Thresholds,
        signals: &mut BTreeMap<String, Vec<Signal>>,
        notes: &mut Vec<String>,
    ) -> Result<(), QueryError> {
        // prefix -> referring domain -> (host, address) it was seen with
        let mut nets: BTreeMap<String, BTreeMap<String, (String, String)>> = BTreeMap::new();
        for r in refdomains {
            for h in self.store.host_addrs(&r.domain).await? {
                nets.entry(network_of(h.ip))
                    .or_default()
                    .entry(r.domain.clone())
                    .or_insert((h.host, h.ip.to_string()));
            }
        }
        let total = refdomains.len();
        for (net, members) in &nets {
            if members.len() < t.network_domains + 1 {
                continue;
            }
            let share = members.len() as f64 / total.max(1) as f64;
            if share > t.network_max_share {
                notes.push(format!(
                    "{net} hosts {} of the {total} referring domains ({:.0}%): shared hosting, not counted as a network",
                    members.len(),
                    share * 100.0
                ));
                continue;
            }
            for (d, (host, ip)) in members {
                let others: Vec<&str> = members
                    .keys()
                    .filter(|o| *o != d)
                    .map(String::as_str)
                    .collect();
                let shown = others
                    .iter()
                    .take(5)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ");
                let more = others.len().saturating_sub(5);
                signals.entry(d.clone()).or_default().push(Signal {
                    kind: SignalKind::SharedNetwork,
                    detail: format!(
                        "{host} was fetched from {ip}, in {net} with {} other referring domains: {shown}{}",
                        others.len(),
                        if more > 0 { format!(" and {more} more") } else { String::new() }
                    ),
                });
            }
        }
        Ok(())
    }

    /// `low_authority`: authority from the last rank run below the threshold.
    async fn low_authority(
        &self,
        refdomains: &[linkgraph_store::RefDomain],
        t: Thresholds,
        signals: &mut BTreeMap<String, Vec<Signal>>,
        notes: &mut Vec<String>,
    ) -> Result<(), QueryError> {
        let names: Vec<String> = refdomains.iter().map(|r| r.domain.clone()).collect();
        let Some(authority) = self.authorities(&names).await? else {
            notes.push("low_authority is not computed: run `linkgraph rank` first".to_owned());
            return Ok(());
        };
        for d in &names {
            match authority.get(d) {
                Some(a) if *a < t.low_authority => {
                    signals.entry(d.clone()).or_default().push(Signal {
                        kind: SignalKind::LowAuthority,
                        detail: format!(
                            "authority {a:.1} is below {:.1} (a weak signal on its own)",
                            t.low_authority
                        ),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The disavow file of `domain` (see [`write_disavow`]), stamped with
    /// the clock's now, and how many domains it lists.
    pub async fn disavow(
        &self,
        domain: &str,
        t: Thresholds,
        min_score: u32,
        allow: &BTreeSet<String>,
    ) -> Result<(Vec<u8>, usize), QueryError> {
        let r = self.risk(domain, t).await?;
        let mut out = Vec::new();
        let n = write_disavow(&mut out, &r, min_score, allow, linkgraph_core::now_ms())?;
        Ok((out, n))
    }

    /// Calls `f(source_url, target_url)` on every live external link of
    /// `domain`'s pages.
    async fn each_outlink(
        &self,
        domain: &str,
        mut f: impl FnMut(&str, &str),
    ) -> Result<(), QueryError> {
        let mut after = None;
        loop {
            let page = self
                .store
                .outlinks(OutlinkQuery {
                    domain: domain.to_owned(),
                    status: Status::Live,
                    limit: CHUNK,
                    after,
                })
                .await?;
            for b in &page.items {
                f(&b.link.source_url, &b.link.target_url);
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// The crawled HTML pages (status 200) of each of `domains`, from one
    /// scan of every fetched URL.
    async fn crawled_pages(
        &self,
        domains: &HashSet<&str>,
    ) -> Result<HashMap<String, usize>, QueryError> {
        let mut out: HashMap<String, usize> = HashMap::new();
        let mut after = None;
        loop {
            let page = self.store.scan(Table::Pages, after, CHUNK).await?;
            for row in &page.rows {
                if let Row::Page { url, state } = row {
                    let d = registrable_domain(url_host(url));
                    if domains.contains(d) && is_crawled_page(state.outcome, state.http_status()) {
                        *out.entry(d.to_owned()).or_default() += 1;
                    }
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }
}

/// The network an address belongs to, for `shared_network`: its IPv4 /24
/// or IPv6 /48, e.g. `127.0.5.0/24`.
pub fn network_of(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        std::net::IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return network_of(std::net::IpAddr::V4(v4));
            }
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// Reads an allow file: one domain a line, `#` starts a comment; each is
/// normalized to its registrable domain.
pub fn parse_allow(text: &str) -> Result<BTreeSet<String>, QueryError> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if !line.is_empty() {
            let d = line.strip_prefix("domain:").unwrap_or(line);
            out.insert(crate::normalize_domain(d)?);
        }
    }
    Ok(out)
}

/// Writes Google's disavow format for `r`: a header, then for each domain
/// scoring at least `min_score` and not in `allow`, a `#` comment with its
/// signals and a `domain:` line. Returns the number of domains listed.
pub fn write_disavow(
    out: &mut impl Write,
    r: &Risk,
    min_score: u32,
    allow: &BTreeSet<String>,
    generated_ms: i64,
) -> io::Result<usize> {
    writeln!(
        out,
        "# disavow file for {}, by linkgraph {} (risk score >= {min_score})",
        r.target,
        format_rfc3339_ms(generated_ms)
    )?;
    if !allow.is_empty() {
        writeln!(out, "# kept by the allow file: {}", allow.len())?;
    }
    for n in &r.notes {
        writeln!(out, "# note: {}", n.replace('\n', " "))?;
    }
    let mut n = 0;
    for d in &r.domains {
        if d.score < min_score || d.signals.is_empty() || allow.contains(&d.domain) {
            continue;
        }
        let what: Vec<String> = d
            .signals
            .iter()
            .map(|s| format!("{}: {}", s.kind.as_str(), s.detail.replace('\n', " ")))
            .collect();
        writeln!(out, "# score {}; {}", d.score, what.join("; "))?;
        writeln!(out, "domain:{}", d.domain)?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn risky(domain: &str, kinds: &[SignalKind]) -> RiskyDomain {
        let signals: Vec<Signal> = kinds
            .iter()
            .map(|k| Signal {
                kind: *k,
                detail: format!("{} evidence", k.as_str()),
            })
            .collect();
        RiskyDomain {
            domain: domain.into(),
            score: score(&signals),
            signals,
        }
    }

    use linkgraph_core::{Link, LinkKind, Placement, Rel};
    use linkgraph_store::{LinkSetUpdate, PageWrite};

    /// A crawled page at `url` with links `(target, anchor)`.
    fn page(url: &str, links: &[(String, &str)]) -> PageWrite {
        PageWrite {
            url: url.into(),
            status: 200,
            outcome: 1,
            fetched_at_ms: 1_000,
            content_hash: 0,
            noindex: false,
            remote_ip: None,
            update: LinkSetUpdate::Replace,
            links: links
                .iter()
                .map(|(to, anchor)| Link {
                    source_url: url.into(),
                    target_url: to.clone(),
                    anchor: (*anchor).into(),
                    rel: Rel::follow(),
                    placement: Placement::Content,
                    kind: LinkKind::Link,
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn planted_patterns_raise_their_signals_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = linkgraph_store::data_store_url(dir.path());
        let store = linkgraph_store::open(&url, true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let t = |p: &str| format!("http://acmewidgets.com/{p}");
        let mut pages = vec![
            // reciprocal: back.com and the target link to each other.
            page("http://back.com/", &[(t(""), "a friend")]),
            page(
                "http://acmewidgets.com/",
                &[("http://back.com/x".into(), "our friend")],
            ),
            // link_farm: 120 external links on the page that links here;
            // almost.com's page has 99, one short.
            page(
                "http://farm.com/links",
                &(0..120)
                    .map(|i| (format!("http://site{i}.org/"), "x"))
                    .chain([(t("p"), "farm anchor")])
                    .collect::<Vec<_>>(),
            ),
            page(
                "http://almost.com/links",
                &(0..98)
                    .map(|i| (format!("http://site{i}.org/"), "x"))
                    .chain([(t("p"), "almost anchor")])
                    .collect::<Vec<_>>(),
            ),
        ];
        // sitewide: 6 of sw.com's 6 pages link here; few.com links from 2 of 2.
        for i in 0..6 {
            pages.push(page(
                &format!("http://sw.com/{i}"),
                &[(t(""), "Acme Widgets")],
            ));
        }
        for i in 0..2 {
            pages.push(page(
                &format!("http://few.com/{i}"),
                &[(t(""), "acmewidgets.com")],
            ));
        }
        // exact_match_anchor: 4 of 18 referring domains use "cheap widgets";
        // two use "best gadgets" (fewer than 3); brands and URLs never count.
        for d in ["a1.com", "a2.com", "a3.com", "a4.com"] {
            pages.push(page(
                &format!("http://{d}/"),
                &[(t("buy"), "cheap widgets")],
            ));
        }
        for d in ["b1.com", "b2.com"] {
            pages.push(page(&format!("http://{d}/"), &[(t("buy"), "best gadgets")]));
        }
        pages.push(page(
            "http://c1.com/",
            &[(t(""), "https://acmewidgets.com/")],
        ));
        // Every host so far answered from 127.0.0.1: shared hosting.
        for p in &mut pages {
            p.remote_ip = "127.0.0.1".parse().ok();
        }
        // shared_network: three domains on 10.7.7.0/24; lone.com on its own
        // /24, pair1/pair2 share one with only one other (two needed).
        for (d, ip) in [
            ("net1.com", "10.7.7.1"),
            ("www.net2.com", "10.7.7.2"),
            ("net3.com", "10.7.7.3"),
            ("lone.com", "10.7.8.1"),
            ("pair1.com", "10.7.9.1"),
            ("pair2.com", "10.7.9.2"),
        ] {
            let mut p = page(&format!("http://{d}/"), &[(t(""), "Acme-Widgets")]);
            p.remote_ip = ip.parse().ok();
            pages.push(p);
        }
        for p in pages {
            store.write_page(p).await.unwrap_or_else(|e| panic!("{e}"));
        }
        let reader = Reader::new(store, "test");
        let r = reader
            .risk("acmewidgets.com", Thresholds::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let got: BTreeMap<&str, Vec<&str>> = r
            .domains
            .iter()
            .map(|d| {
                let kinds = d.signals.iter().map(|s| s.kind.as_str()).collect();
                (d.domain.as_str(), kinds)
            })
            .collect();
        let want: BTreeMap<&str, Vec<&str>> = [
            ("back.com", vec!["reciprocal"]),
            ("farm.com", vec!["link_farm"]),
            ("sw.com", vec!["sitewide"]),
            ("a1.com", vec!["exact_match_anchor"]),
            ("a2.com", vec!["exact_match_anchor"]),
            ("a3.com", vec!["exact_match_anchor"]),
            ("a4.com", vec!["exact_match_anchor"]),
            ("net1.com", vec!["shared_network"]),
            ("net2.com", vec!["shared_network"]),
            ("net3.com", vec!["shared_network"]),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
        assert_eq!(
            r.notes,
            vec![
                "127.0.0.0/24 hosts 12 of the 18 referring domains (67%): shared hosting, not counted as a network".to_owned(),
                "low_authority is not computed: run `linkgraph rank` first".to_owned(),
            ]
        );
        let detail = |d: &str| {
            r.domains
                .iter()
                .find(|x| x.domain == d)
                .map(|x| x.signals[0].detail.clone())
                .unwrap_or_default()
        };
        assert!(
            detail("farm.com").contains("http://farm.com/links carries 121 external links"),
            "{}",
            detail("farm.com")
        );
        assert!(
            detail("sw.com").contains("6 of its 6 crawled pages"),
            "{}",
            detail("sw.com")
        );
        assert!(
            detail("a1.com").contains("\"cheap widgets\" is used by 4 of the 18"),
            "{}",
            detail("a1.com")
        );
        assert!(detail("back.com").contains("http://acmewidgets.com/ links to http://back.com/x"));
        assert_eq!(r.domains[0].domain, "farm.com", "highest score first");
        assert!(
            detail("net2.com").contains(
                "www.net2.com was fetched from 10.7.7.2, in 10.7.7.0/24 with 2 other referring domains: net1.com, net3.com"
            ),
            "{}",
            detail("net2.com")
        );

        // low_authority, once ranks exist: only the domain below 10.
        let ranks = ["farm.com", "back.com", "lone.com"]
            .iter()
            .zip([3.0, 50.0, 10.0])
            .map(|(d, a)| linkgraph_store::DomainRank {
                domain: (*d).into(),
                authority: a,
                pagerank: 0.1,
                harmonic: 1.0,
                trust: None,
                referring_domains: 1,
                computed_at_ms: 9,
            })
            .collect();
        reader
            .store()
            .write_ranks(ranks)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let run = linkgraph_store::RankRun {
            computed_at_ms: 9,
            ..Default::default()
        };
        reader
            .store()
            .write_rank_run(run)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let r = reader
            .risk("acmewidgets.com", Thresholds::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let low: Vec<(&str, &str)> = r
            .domains
            .iter()
            .flat_map(|d| d.signals.iter().map(move |s| (d.domain.as_str(), s)))
            .filter(|(_, s)| s.kind == SignalKind::LowAuthority)
            .map(|(d, s)| (d, s.detail.as_str()))
            .collect();
        assert_eq!(
            low,
            vec![(
                "farm.com",
                "authority 3.0 is below 10.0 (a weak signal on its own)"
            )]
        );
        assert_eq!(r.notes.len(), 1, "ranks exist now: {:?}", r.notes);
    }

    #[test]
    fn scores_add_weights_and_cap_at_100() {
        use SignalKind::*;
        assert_eq!(risky("a.com", &[Reciprocal]).score, 15);
        assert_eq!(risky("a.com", &[LinkFarm, ExactMatchAnchor]).score, 60);
        let all = [
            Reciprocal,
            LinkFarm,
            Sitewide,
            ExactMatchAnchor,
            VelocitySpike,
        ];
        assert_eq!(risky("a.com", &all).score, 100);
    }

    #[test]
    fn disavow_lists_flagged_domains_not_allowed_ones() {
        use SignalKind::*;
        let r = Risk {
            target: "t.com".into(),
            domains: vec![
                risky("farm.com", &[LinkFarm, ExactMatchAnchor]),
                risky("friend.org", &[Reciprocal]),
                risky("spiky.net", &[VelocitySpike]),
            ],
            notes: Vec::new(),
        };
        let allow = parse_allow("# partners\nFriend.org  # a real partner\n\n").unwrap_or_default();
        let mut out = Vec::new();
        let n = write_disavow(&mut out, &r, 0, &allow, 0).unwrap_or(0);
        let text = String::from_utf8(out).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines, ["domain:farm.com", "domain:spiky.net"], "{text}");
        assert_eq!(n, 2);
        assert!(text.contains("# score 60; link_farm: link_farm evidence; exact_match_anchor"));
        let mut out = Vec::new();
        let n = write_disavow(&mut out, &r, 20, &BTreeSet::new(), 0).unwrap_or(0);
        assert_eq!(n, 1);
        assert!(parse_allow("not a domain/x").is_err());
    }
}
