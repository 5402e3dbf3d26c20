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
//!   discovered) on a day that `velocity` flags as a spike.
//!
//! Signals that need data linkgraph does not keep yet (a shared /24 of the
//! hosts' addresses; authority from domain ranks) are not computed.

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
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            link_farm_links: 100,
            sitewide_share: 0.5,
            sitewide_pages: 5,
            anchor_share: 0.2,
            anchor_domains: 3,
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
        })
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
        // exact_match_anchor: 3 of 11 referring domains use "cheap widgets";
        // two use "best gadgets" (fewer than 3); brands and URLs never count.
        for d in ["a1.com", "a2.com", "a3.com"] {
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
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
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
            detail("a1.com").contains("\"cheap widgets\" is used by 3 of the 11"),
            "{}",
            detail("a1.com")
        );
        assert!(detail("back.com").contains("http://acmewidgets.com/ links to http://back.com/x"));
        assert_eq!(r.domains[0].domain, "farm.com", "highest score first");
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
