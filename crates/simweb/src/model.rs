//! The simulated web's model: hosts, robots.txt, pages and their links, all
//! pure functions of the seed, and the ground truth derived from them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};

use linkgraph_core::{Link, LinkKind, Placement, Rel, canonicalize, normalize_anchor};
use serde::{Deserialize, Serialize};
use url::Url;

/// Size and seed of a simulated web.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimConfig {
    /// Number of hosts (at least 2).
    pub hosts: usize,
    /// HTML pages per host (at least 2): `/` and `/articles/1..N-1`.
    pub pages_per_host: usize,
    /// The seed every page derives from.
    pub seed: u64,
    /// A burst: from this epoch on, every host's home page links to one host.
    pub burst: Option<Burst>,
    /// Plant link-spam patterns around a target (see [`Planted`]).
    pub risk_patterns: bool,
}

/// Link-spam patterns planted around a target (the burst's target when
/// there is a burst, so its spike comes with them; else the popular
/// domain), each on domains of their own, for risk-signal tests. Every planted link is on
/// every epoch's page (no epoch removes it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planted {
    /// The target's registrable domain.
    pub target: String,
    /// The index of the target's host in [`SimWeb::hosts`].
    pub target_host: usize,
    /// Reciprocal pairs: each links the target's home page, which links back.
    pub reciprocal: Vec<String>,
    /// Its `/articles/1` carries [`FARM_LINKS`] external links and one to
    /// the target.
    pub link_farm: String,
    /// Every page of every host of it links the target from the footer.
    pub sitewide: String,
    /// Each home page links the target with [`Planted::anchor`].
    pub anchor_campaign: Vec<String>,
    /// The campaign's exact-match anchor.
    pub anchor: String,
    /// A network: each home page links the target; a test serves their
    /// hosts from one /24 (`--resolve`).
    pub network: Vec<String>,
}

/// External links on the planted link farm's page.
pub const FARM_LINKS: usize = 120;

/// A sudden wave of new referring domains for one target, for spike tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burst {
    /// The epoch the links appear in (and stay).
    pub epoch: u32,
    /// Index of the target host in [`SimWeb::hosts`].
    pub target: usize,
}

/// What an article page is in a given epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageState {
    Live,
    Gone,
    RedirectTo(usize),
}

/// Picks the planted domains: from the last host backwards, distinct
/// registrable domains other than the target's; a quarter of all domains
/// run the anchor campaign (so it passes any 20% share of referring
/// domains), at least 3.
fn plant(hosts: &[Host], target_host: usize) -> Planted {
    let target = hosts[target_host].domain.clone();
    let mut domains: Vec<String> = Vec::new();
    for h in hosts.iter().rev() {
        if h.domain != target && !domains.contains(&h.domain) {
            domains.push(h.domain.clone());
        }
    }
    let all = domains.len() + 1;
    let campaign = all.div_ceil(4).max(3);
    let mut it = domains.into_iter();
    let mut take = |n: usize| it.by_ref().take(n).collect::<Vec<_>>();
    let reciprocal = take(2);
    let link_farm = take(1).pop().unwrap_or_default();
    let sitewide = take(1).pop().unwrap_or_default();
    let network = take(3);
    let anchor_campaign = take(campaign);
    Planted {
        target,
        target_host,
        reciprocal,
        link_farm,
        sitewide,
        anchor_campaign,
        anchor: "cheap blue widgets".into(),
        network,
    }
}

/// splitmix64: tiny, fast, and stable across versions and platforms.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(parts: &[u64]) -> Self {
        let mut r = Rng(0x9E37_79B9_7F4A_7C15);
        for p in parts {
            r.0 ^= *p;
            r.next();
        }
        r
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// True with probability `pct`%.
    pub(crate) fn pct(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The public-suffix shapes host names are drawn from. The `true` ones are
/// private suffixes where every subdomain is its own registrable domain.
const SUFFIXES: &[(&str, bool)] = &[
    ("com", false),
    ("co.uk", false),
    ("org", false),
    ("com.au", false),
    ("de", false),
    ("net", false),
    ("github.io", true),
    ("blogspot.com", true),
];
const SUBDOMAINS: &[&str] = &["www", "blog", "shop", "news"];
const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ra", "ten", "vo", "zu", "pel", "dan", "ri", "so", "nor", "bi", "ga", "tu",
];
const ANCHORS: &[&str] = &[
    "best running shoes",
    "cheap flights to Lisbon",
    "click here",
    "read more",
    "this article",
    "official site",
    "learn more",
    "Tom & Jerry's guide",
    "buy now",
    "a detailed review",
    "source",
    "the <full> story",
    "home   page \n  of the   project",
];
const LATIN1_ANCHORS: &[&str] = &[
    "Café Müller",
    "Straße & Söhne",
    "Crème brûlée recipes",
    "Ångström units",
];
/// Hosts outside the simulated web (reserved `.example` names): their pages
/// answer 404, like a dead link.
const OUTSIDE: &[&str] = &[
    "www.outside.example",
    "wiki.reference.example",
    "cdn.assets.example",
];

/// One simulated host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Its name, e.g. `blog.kalomi3.co.uk`.
    pub name: String,
    /// Its registrable domain.
    pub domain: String,
    /// robots.txt has a group for our product token (which also disallows `/drafts/`).
    pub linkgraph_group: bool,
}

/// What the server answers for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200 with a body and headers.
    Page {
        /// The body bytes (possibly not UTF-8).
        body: Vec<u8>,
        /// The Content-Type.
        content_type: String,
        /// An X-Robots-Tag header, if any.
        x_robots_tag: Option<String>,
    },
    /// 410: the page was deleted.
    Gone,
    /// A redirect.
    Redirect {
        /// 301 or 302.
        status: u16,
        /// The Location header as sent (may be relative).
        location: String,
    },
    /// 404.
    NotFound,
}

#[derive(Debug, Clone)]
struct LinkSpec {
    href: String,
    text: String,
    img_alt: Option<String>,
    rel: &'static str,
    placement: Placement,
}

#[derive(Debug, Clone)]
struct PageSpec {
    title: String,
    links: Vec<LinkSpec>,
    base: Option<String>,
    meta_nofollow: bool,
    header_nofollow: bool,
    latin1: Option<bool>, // Some(true): charset in header, Some(false): in meta
}

/// A seeded, reproducible simulated web. It changes by epochs: each epoch
/// (cumulatively, and the same way for the same seed) removes some links,
/// adds others, turns some links off in odd epochs and on again in even ones,
/// deletes pages (410) and turns pages into redirects.
#[derive(Debug)]
pub struct SimWeb {
    cfg: SimConfig,
    planted: Option<Planted>,
    hosts: Vec<Host>,
    by_name: HashMap<String, usize>,
    epoch: AtomicU32,
}

/// What a crawler that knew `known` before must find in one epoch, and how
/// that differs from the epoch before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochTruth {
    /// The epoch.
    pub epoch: u32,
    /// The live edges (recrawling every known URL, then everything reachable).
    pub truth: Truth,
    /// Every URL the crawler knows after this epoch.
    pub known: BTreeSet<String>,
}

/// One ground-truth edge.
pub type TruthEdge = Link;

/// What a compliant crawler must find, starting from [`SimWeb::seed_url`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    /// The seed URL.
    pub seed: String,
    /// Every edge, unique by (source, target).
    pub edges: Vec<TruthEdge>,
    /// URLs a compliant crawler reaches but must not request (robots.txt).
    pub disallowed: Vec<String>,
    /// URLs answered 200 and parsed.
    pub pages: usize,
    /// The HTTP status of every URL a compliant crawler requests (pages,
    /// redirects, dead links; not the sitemaps).
    #[serde(default)]
    pub statuses: BTreeMap<String, u16>,
}

impl SimWeb {
    /// Builds the web for `cfg`.
    pub fn new(cfg: SimConfig) -> Self {
        let cfg = SimConfig {
            hosts: cfg.hosts.max(2),
            pages_per_host: cfg.pages_per_host.max(2),
            ..cfg
        };
        let mut hosts = Vec::with_capacity(cfg.hosts);
        let mut d = 0u64;
        while hosts.len() < cfg.hosts {
            let mut rng = Rng::new(&[cfg.seed, 1, d]);
            let (suffix, private) = *rng.pick(SUFFIXES);
            let word: String = (0..2).map(|_| *rng.pick(SYLLABLES)).collect();
            let label = format!("{word}{d}");
            let domain = format!("{label}.{suffix}");
            let names: Vec<String> = if private {
                vec![domain.clone()]
            } else {
                let n = 1 + rng.below(3);
                SUBDOMAINS
                    .iter()
                    .take(n)
                    .map(|s| format!("{s}.{domain}"))
                    .collect()
            };
            for name in names {
                if hosts.len() == cfg.hosts {
                    break;
                }
                let linkgraph_group = rng.pct(33);
                hosts.push(Host {
                    name,
                    domain: domain.clone(),
                    linkgraph_group,
                });
            }
            d += 1;
        }
        let by_name = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.clone(), i))
            .collect();
        let target = cfg.burst.map_or(0, |b| b.target % hosts.len());
        let planted = cfg.risk_patterns.then(|| plant(&hosts, target));
        SimWeb {
            cfg,
            planted,
            hosts,
            by_name,
            epoch: AtomicU32::new(0),
        }
    }

    /// The epoch being served.
    pub fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Serves epoch `e` from now on.
    pub fn set_epoch(&self, e: u32) {
        self.epoch.store(e, Ordering::SeqCst);
    }

    /// Moves to the next epoch and returns it.
    pub fn advance(&self) -> u32 {
        self.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn page_state(&self, host: usize, page: usize, epoch: u32) -> PageState {
        let p = self.cfg.pages_per_host;
        if page < 2 {
            return PageState::Live;
        }
        for ep in 1..=epoch {
            let mut r = Rng::new(&[self.cfg.seed, 7, host as u64, page as u64, u64::from(ep)]);
            if r.pct(4) {
                return PageState::Gone;
            }
            if r.pct(3) {
                let to = 1 + r.below(p - 1);
                if to != page {
                    return PageState::RedirectTo(to);
                }
            }
        }
        PageState::Live
    }

    /// The planted link-spam patterns, with [`SimConfig::risk_patterns`].
    pub fn planted(&self) -> Option<&Planted> {
        self.planted.as_ref()
    }

    /// The host names of registrable domain `domain`.
    pub fn hosts_of(&self, domain: &str) -> Vec<String> {
        self.hosts
            .iter()
            .filter(|h| h.domain == domain)
            .map(|h| h.name.clone())
            .collect()
    }

    /// Puts the planted links of `host`'s page `page` (see [`Planted`])
    /// first in their sections, so a page's other link to the same URL
    /// never hides them (the first occurrence of a URL wins).
    fn plant_links(&self, page_links: &mut Vec<LinkSpec>, host: usize, page: usize) {
        let Some(pl) = &self.planted else { return };
        let mut planted = Vec::new();
        let links = &mut planted;
        let d = self.hosts[host].domain.as_str();
        let t = pl.target_host;
        let target_home = self.article_url(t, 0);
        let first_host = |dom: &str| self.hosts.iter().position(|h| h.domain == dom);
        if host == t && page == 0 {
            for r in &pl.reciprocal {
                if let Some(h) = first_host(r) {
                    let href = self.article_url(h, 0);
                    add(
                        links,
                        href,
                        &format!("Partner: {r}"),
                        "",
                        Placement::Content,
                    );
                }
            }
        }
        if page == 0 && pl.reciprocal.iter().any(|r| r == d) {
            add(
                links,
                target_home.clone(),
                "Our partners",
                "",
                Placement::Content,
            );
        }
        if d == pl.link_farm && page == 1 && first_host(d) == Some(host) {
            for i in 0..FARM_LINKS {
                let href = format!("http://{}/directory/{i}", OUTSIDE[0]);
                add(links, href, &format!("Listing {i}"), "", Placement::Content);
            }
            add(
                links,
                target_home.clone(),
                "Featured listing",
                "",
                Placement::Content,
            );
        }
        if d == pl.sitewide {
            add(
                links,
                target_home.clone(),
                "Our sponsor",
                "",
                Placement::Footer,
            );
        }
        if page == 0 && pl.anchor_campaign.iter().any(|c| c == d) {
            add(
                links,
                self.article_url(t, 1),
                &pl.anchor,
                "",
                Placement::Content,
            );
        }
        if page == 0 && pl.network.iter().any(|n| n == d) {
            add(
                links,
                target_home,
                "Network partner",
                "",
                Placement::Content,
            );
        }
        page_links.splice(0..0, planted);
    }

    /// The configuration (with minimums applied).
    pub fn config(&self) -> SimConfig {
        self.cfg
    }

    /// Every host.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The URL to start crawling from.
    pub fn seed_url(&self) -> String {
        format!("http://{}/", self.hosts[0].name)
    }

    /// The registrable domain most linked to (by construction).
    pub fn popular_domain(&self) -> &str {
        &self.hosts[0].domain
    }

    /// The robots.txt of a host, or `None` (404) for unknown hosts.
    pub fn robots_txt(&self, host: &str) -> Option<String> {
        let h = &self.hosts[*self.by_name.get(host)?];
        let mut txt =
            String::from("# simulated robots.txt\nUser-agent: *\nDisallow: /private/\n\n");
        if h.linkgraph_group {
            txt.push_str("User-agent: LinkGraph\nDisallow: /private/\nDisallow: /drafts/\n\n");
        }
        txt.push_str(&format!("Sitemap: http://{host}/sitemap.xml\n"));
        Some(txt)
    }

    /// True when robots.txt disallows `path` on `host` for linkgraph.
    pub fn disallowed(&self, host: &str, path: &str) -> bool {
        let Some(&i) = self.by_name.get(host) else {
            return false;
        };
        path.starts_with("/private/")
            || (self.hosts[i].linkgraph_group && path.starts_with("/drafts/"))
    }

    fn article_url(&self, host: usize, page: usize) -> String {
        let name = &self.hosts[host].name;
        if page == 0 {
            format!("http://{name}/")
        } else {
            format!("http://{name}/articles/{page}")
        }
    }

    /// A target host skewed toward low indices, so a few domains are popular.
    fn popular_host(&self, rng: &mut Rng) -> usize {
        let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * u) * self.cfg.hosts as f64) as usize % self.cfg.hosts
    }

    fn page_spec(&self, host: usize, page: usize, kind: u64, epoch: u32) -> PageSpec {
        let p = self.cfg.pages_per_host;
        let mut rng = Rng::new(&[self.cfg.seed, 2, host as u64, page as u64, kind]);
        let name = &self.hosts[host].name;
        let mut links = Vec::new();
        // Header: a logo image link home, and the navigation.
        add(&mut links, "/".into(), "", "", Placement::Header);
        if let Some(l) = links.last_mut() {
            l.img_alt = Some(format!("{name} logo"));
        }
        for _ in 0..3 {
            let k = 1 + rng.below(p - 1);
            add(
                &mut links,
                format!("/articles/{k}"),
                &format!("Section {k}"),
                "",
                Placement::Nav,
            );
        }
        let latin1 = if rng.pct(6) { Some(rng.pct(50)) } else { None };
        let base = (page > 0 && rng.pct(5)).then(|| format!("http://{name}/articles/"));
        // Content: the next article (relative), then links out.
        if page + 1 < p && kind == 0 {
            let next = if base.is_some() {
                format!("{}", page + 1)
            } else if page == 0 {
                "articles/1".to_owned()
            } else {
                format!("../articles/{}", page + 1)
            };
            add(&mut links, next, "Next article", "", Placement::Content);
        }
        if page == 0 && kind == 0 {
            // Every home page links the next host's home: all hosts are reachable.
            let next_host = (host + 1) % self.cfg.hosts;
            add(
                &mut links,
                format!("http://{}/", self.hosts[next_host].name),
                "Friends of the site",
                "",
                Placement::Content,
            );
        }
        let external = 2 + rng.below(5);
        for _ in 0..external {
            let th = self.popular_host(&mut rng);
            let tp = rng.below(p);
            let rel = match rng.below(20) {
                0..=11 => "",
                12..=14 => "nofollow",
                15 => "sponsored",
                16 => "ugc",
                17 => "nofollow noopener",
                18 => "noopener noreferrer",
                _ => "sponsored nofollow",
            };
            let text = if let Some(true) | Some(false) = latin1 {
                (*rng.pick(LATIN1_ANCHORS)).to_owned()
            } else if rng.pct(15) {
                self.hosts[th].domain.clone()
            } else {
                (*rng.pick(ANCHORS)).to_owned()
            };
            let href = self.article_url(th, tp);
            if rng.pct(10) {
                links.push(LinkSpec {
                    href,
                    text: String::new(),
                    img_alt: Some(format!("Banner for {}", self.hosts[th].domain)),
                    rel,
                    placement: Placement::Content,
                });
            } else {
                add(&mut links, href, &text, rel, Placement::Content);
            }
        }
        // Dead backlinks: links to other hosts' pages that answer 404 or 410
        // (drawn from their own generator, so the rest of the web stays as
        // it was for a seed).
        let mut dead = Rng::new(&[self.cfg.seed, 9, host as u64, page as u64, kind]);
        for (pct, path, text) in [
            (12, "missing", "Dead resource"),
            (8, "removed", "Archived report"),
        ] {
            if dead.pct(pct) {
                let th = self.popular_host(&mut dead);
                if th != host {
                    let k = dead.below(p);
                    let href = format!("http://{}/{path}/{k}", self.hosts[th].name);
                    add(&mut links, href, text, "", Placement::Content);
                }
            }
        }
        // Special targets: redirects, 404s, robots-disallowed paths, skipped schemes.
        let k = 1 + rng.below(p - 1);
        if rng.pct(10) {
            add(
                &mut links,
                format!("/old/{k}"),
                "Old permalink",
                "",
                Placement::Content,
            );
        }
        if rng.pct(8) {
            add(
                &mut links,
                format!("/go/{k}"),
                "Partner offer",
                "sponsored",
                Placement::Content,
            );
        }
        if rng.pct(8) {
            add(
                &mut links,
                format!("/missing/{k}"),
                "Broken link",
                "",
                Placement::Content,
            );
        }
        if rng.pct(10) {
            add(
                &mut links,
                format!("/private/{k}"),
                "Members only",
                "",
                Placement::Content,
            );
        }
        if rng.pct(10) {
            add(
                &mut links,
                format!("/drafts/{k}"),
                "Draft",
                "",
                Placement::Content,
            );
        }
        if rng.pct(5) {
            let o = *rng.pick(OUTSIDE);
            add(
                &mut links,
                format!("http://{o}/page/{k}"),
                "Elsewhere",
                "",
                Placement::Content,
            );
        }
        if rng.pct(20) {
            add(
                &mut links,
                "mailto:editor@example.invalid".into(),
                "Mail us",
                "",
                Placement::Content,
            );
            add(
                &mut links,
                "javascript:void(0)".into(),
                "Share",
                "",
                Placement::Content,
            );
            add(
                &mut links,
                "#top".into(),
                "Back to top",
                "",
                Placement::Content,
            );
        }
        if rng.pct(15) {
            // A duplicate target: only the first occurrence is an edge.
            let dup = links
                .iter()
                .find(|l| l.placement == Placement::Nav)
                .map(|l| l.href.clone());
            if let Some(href) = dup {
                add(
                    &mut links,
                    href,
                    "Duplicate",
                    "nofollow",
                    Placement::Content,
                );
            }
        }
        // Spec order is document order: comments sit in <main>, before the sidebar.
        // Comments, with user-generated links.
        if page > 0 && rng.pct(35) {
            for _ in 0..1 + rng.below(3) {
                let th = rng.below(self.cfg.hosts);
                add(
                    &mut links,
                    self.article_url(th, rng.below(p)),
                    "my blog",
                    "ugc nofollow",
                    Placement::Comment,
                );
            }
        }
        // Sidebar.
        for _ in 0..1 + rng.below(2) {
            let th = self.popular_host(&mut rng);
            add(
                &mut links,
                self.article_url(th, rng.below(p)),
                "Related reading",
                "",
                Placement::Aside,
            );
        }
        // Footer.
        add(&mut links, "/".into(), "Home", "", Placement::Footer);
        if rng.pct(30) {
            let th = self.popular_host(&mut rng);
            add(
                &mut links,
                format!("http://{}/", self.hosts[th].name),
                "Our partner",
                "",
                Placement::Footer,
            );
        }
        if kind == 0 {
            self.mutate(&mut links, host, page, epoch);
            self.plant_links(&mut links, host, page);
        }
        PageSpec {
            title: format!("{name} page {page}"),
            links,
            base,
            meta_nofollow: rng.pct(5),
            header_nofollow: rng.pct(3),
            latin1,
        }
    }

    /// Applies epochs `1..=epoch` of link changes to an article's links.
    fn mutate(&self, links: &mut Vec<LinkSpec>, host: usize, page: usize, epoch: u32) {
        let p = self.cfg.pages_per_host;
        let own = format!("http://{}/", self.hosts[host].name);
        for ep in 1..=epoch {
            let mut r = Rng::new(&[self.cfg.seed, 5, host as u64, page as u64, u64::from(ep)]);
            if r.pct(15) {
                let external: Vec<usize> = links
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| {
                        l.placement == Placement::Content
                            && l.href.starts_with("http://")
                            && !l.href.starts_with(&own)
                    })
                    .map(|(i, _)| i)
                    .collect();
                if !external.is_empty() {
                    links.remove(external[r.below(external.len())]);
                }
            }
            if r.pct(20) {
                let th = self.popular_host(&mut r);
                let rel = if r.pct(25) { "nofollow" } else { "" };
                let href = self.article_url(th, r.below(p));
                links.push(LinkSpec {
                    href,
                    text: format!("New mention {ep}"),
                    img_alt: None,
                    rel,
                    placement: Placement::Content,
                });
            }
            if let Some(b) = self.cfg.burst
                && b.epoch == ep
                && page == 0
            {
                let href = format!("http://{}/", self.hosts[b.target % self.cfg.hosts].name);
                links.push(LinkSpec {
                    href,
                    text: "Everyone links here".into(),
                    img_alt: None,
                    rel: "",
                    placement: Placement::Content,
                });
            }
        }
        // A flaky link: there in even epochs, gone in odd ones.
        let mut f = Rng::new(&[self.cfg.seed, 6, host as u64, page as u64]);
        if f.pct(10) && epoch.is_multiple_of(2) {
            let th = self.popular_host(&mut f);
            let href = self.article_url(th, f.below(p));
            links.push(LinkSpec {
                href,
                text: "Sometimes here".into(),
                img_alt: None,
                rel: "",
                placement: Placement::Content,
            });
        }
    }

    /// What `host` answers for `path` in the current epoch (`path` may carry
    /// a query, ignored).
    pub fn answer(&self, host: &str, path: &str) -> Answer {
        self.answer_at(host, path, self.epoch())
    }

    /// What `host` answers for `path` in epoch `epoch`.
    pub fn answer_at(&self, host: &str, path: &str, epoch: u32) -> Answer {
        let Some(&h) = self.by_name.get(host) else {
            return Answer::NotFound;
        };
        let path = path.split(['?', '#']).next().unwrap_or("/");
        let p = self.cfg.pages_per_host;
        let num = |prefix: &str| {
            path.strip_prefix(prefix)
                .and_then(|n| n.parse::<usize>().ok())
        };
        if path == "/" {
            return self.render(h, 0, 0, epoch);
        }
        if let Some(k) = num("/articles/").filter(|k| (1..p).contains(k)) {
            return match self.page_state(h, k, epoch) {
                PageState::Live => self.render(h, k, 0, epoch),
                PageState::Gone => Answer::Gone,
                PageState::RedirectTo(to) => Answer::Redirect {
                    status: 301,
                    location: format!("/articles/{to}"),
                },
            };
        }
        if let Some(k) = num("/private/")
            .or_else(|| num("/drafts/"))
            .filter(|k| *k < p)
        {
            return self.render(h, k, 1, epoch);
        }
        if path == "/sitemap.xml" {
            return Answer::Page {
                body: self.sitemap_xml(h).into_bytes(),
                content_type: "application/xml".into(),
                x_robots_tag: None,
            };
        }
        if num("/removed/").is_some() {
            return Answer::Gone;
        }
        if let Some(k) = num("/old/").filter(|k| (1..p).contains(k)) {
            return Answer::Redirect {
                status: 301,
                location: format!("/articles/{k}"),
            };
        }
        if let Some(k) = num("/go/") {
            let mut rng = Rng::new(&[self.cfg.seed, 3, h as u64, k as u64]);
            let th = self.popular_host(&mut rng);
            return Answer::Redirect {
                status: 302,
                location: self.article_url(th, rng.below(p)),
            };
        }
        Answer::NotFound
    }

    fn render(&self, host: usize, page: usize, kind: u64, epoch: u32) -> Answer {
        let spec = self.page_spec(host, page, kind, epoch);
        let html = render_html(&spec);
        let (body, content_type) = match spec.latin1 {
            Some(in_header) => {
                let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&html);
                let ct = if in_header {
                    "text/html; charset=windows-1252"
                } else {
                    "text/html"
                };
                (bytes.into_owned(), ct.to_owned())
            }
            None => (html.into_bytes(), "text/html; charset=utf-8".to_owned()),
        };
        Answer::Page {
            body,
            content_type,
            x_robots_tag: spec
                .header_nofollow
                .then(|| "noarchive, nofollow".to_owned()),
        }
    }

    /// The host's sitemap: its home page and every article.
    fn sitemap_xml(&self, host: usize) -> String {
        let mut x = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
        );
        for p in 0..self.cfg.pages_per_host {
            x.push_str(&format!(
                "  <url><loc>{}</loc></url>\n",
                self.article_url(host, p)
            ));
        }
        x.push_str("</urlset>\n");
        x
    }

    /// The edges of one 200 page, as a compliant crawler must record them.
    fn page_edges(&self, url: &Url, host: usize, page: usize, kind: u64, epoch: u32) -> Vec<Link> {
        let spec = self.page_spec(host, page, kind, epoch);
        let base = spec
            .base
            .as_deref()
            .and_then(|b| Url::parse(b).ok())
            .unwrap_or_else(|| url.clone());
        let nofollow = spec.meta_nofollow || spec.header_nofollow;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        // Document order: the sections in the order the page renders them.
        let mut ordered: Vec<&LinkSpec> = spec.links.iter().collect();
        ordered.sort_by_key(|l| section_rank(l.placement));
        for l in ordered {
            let Ok(target) = canonicalize(&l.href, Some(&base)) else {
                continue;
            };
            if target == *url || !seen.insert(target.as_str().to_owned()) {
                continue;
            }
            let mut anchor = normalize_anchor(&l.text);
            if anchor.is_empty() {
                anchor = normalize_anchor(l.img_alt.as_deref().unwrap_or(""));
            }
            let mut rel = linkgraph_core::parse_rel_attribute(l.rel);
            if nofollow {
                rel |= Rel::NOFOLLOW;
            }
            out.push(Link {
                source_url: url.as_str().to_owned(),
                target_url: target.into(),
                anchor,
                rel,
                placement: l.placement,
                kind: LinkKind::Link,
            });
        }
        out
    }

    /// The ground truth of the current epoch for a first crawl: a
    /// breadth-first walk from the seed that follows every link and
    /// redirect, fetches nothing robots.txt disallows, and records every edge
    /// of every page answered 200.
    pub fn truth(&self) -> Truth {
        self.truth_at(self.epoch(), &BTreeSet::new()).truth
    }

    /// The ground truth of `epoch` for a crawler that already knows `known`
    /// (and recrawls all of it): the walk starts from the seed and every
    /// known URL.
    pub fn truth_at(&self, epoch: u32, known: &BTreeSet<String>) -> EpochTruth {
        let seed = self.seed_url();
        let mut truth = Truth {
            seed: seed.clone(),
            ..Truth::default()
        };
        let mut seen: BTreeSet<String> = known.clone();
        seen.insert(seed.clone());
        let mut queue: VecDeque<String> = VecDeque::from([seed.clone()]);
        queue.extend(known.iter().filter(|u| **u != seed).cloned());
        let mut touched: HashSet<String> = HashSet::new();
        while let Some(u) = queue.pop_front() {
            let Ok(url) = Url::parse(&u) else { continue };
            let host = url.host_str().unwrap_or_default();
            // The crawler reads robots.txt on its first request to a host,
            // and with it the host's sitemap, which it then fetches.
            if touched.insert(host.to_owned()) && self.by_name.contains_key(host) {
                let map = format!("http://{host}/sitemap.xml");
                if seen.insert(map.clone()) {
                    queue.push_back(map);
                }
            }
            if self.disallowed(host, url.path()) {
                truth.disallowed.push(u);
                continue;
            }
            if let (Some(&h), "/sitemap.xml") = (self.by_name.get(host), url.path()) {
                for p in 0..self.cfg.pages_per_host {
                    let listed = self.article_url(h, p);
                    if seen.insert(listed.clone()) {
                        queue.push_back(listed);
                    }
                }
                continue;
            }
            let answer = self.answer_at(host, url.path(), epoch);
            let status = match &answer {
                Answer::Page { .. } => 200,
                Answer::Gone => 410,
                Answer::Redirect { status, .. } => *status,
                Answer::NotFound => 404,
            };
            truth.statuses.insert(u.clone(), status);
            let found: Vec<Link> = match (self.by_name.get(host), answer) {
                (Some(&h), Answer::Page { .. }) => {
                    truth.pages += 1;
                    let path = url.path();
                    let (page, kind) = if path == "/" {
                        (0, 0)
                    } else if let Some(n) = path.strip_prefix("/articles/") {
                        (n.parse().unwrap_or(0), 0)
                    } else {
                        (
                            path.rsplit('/')
                                .next()
                                .and_then(|n| n.parse().ok())
                                .unwrap_or(0),
                            1,
                        )
                    };
                    self.page_edges(&url, h, page, kind, epoch)
                }
                (_, Answer::Redirect { location, .. }) => match canonicalize(&location, Some(&url))
                {
                    Ok(t) => vec![Link {
                        source_url: u.clone(),
                        target_url: t.into(),
                        anchor: String::new(),
                        rel: Rel::follow(),
                        placement: Placement::Content,
                        kind: LinkKind::Redirect,
                    }],
                    Err(_) => Vec::new(),
                },
                _ => Vec::new(),
            };
            for l in found {
                if seen.insert(l.target_url.clone()) {
                    queue.push_back(l.target_url.clone());
                }
                truth.edges.push(l);
            }
        }
        EpochTruth {
            epoch,
            truth,
            known: seen,
        }
    }
}

fn section_rank(p: Placement) -> u8 {
    match p {
        Placement::Header => 0,
        Placement::Nav => 1,
        Placement::Content => 2,
        Placement::Comment => 3,
        Placement::Aside => 4,
        Placement::Footer => 5,
    }
}

fn add(
    links: &mut Vec<LinkSpec>,
    href: String,
    text: &str,
    rel: &'static str,
    placement: Placement,
) {
    links.push(LinkSpec {
        href,
        text: text.to_owned(),
        img_alt: None,
        rel,
        placement,
    });
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn render_html(spec: &PageSpec) -> String {
    let mut h = String::with_capacity(4096);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head>");
    if spec.latin1 == Some(false) {
        h.push_str("<meta charset=\"windows-1252\">");
    } else if spec.latin1.is_none() {
        h.push_str("<meta charset=\"utf-8\">");
    }
    h.push_str(&format!("<title>{}</title>", esc(&spec.title)));
    if let Some(b) = &spec.base {
        h.push_str(&format!("<base href=\"{}\">", esc(b)));
    }
    if spec.meta_nofollow {
        h.push_str("<meta name=\"robots\" content=\"index, nofollow\">");
    }
    h.push_str("<link rel=\"stylesheet\" href=\"/style.css\"></head>\n<body>");
    let section = |p: Placement| spec.links.iter().filter(move |l| l.placement == p);
    let a = |l: &LinkSpec| {
        let rel = if l.rel.is_empty() {
            String::new()
        } else {
            format!(" rel=\"{}\"", l.rel)
        };
        let inner = match &l.img_alt {
            Some(alt) => format!(
                "<img src=\"/img/banner.png\" alt=\"{}\">{}",
                esc(alt),
                esc(&l.text)
            ),
            None => esc(&l.text),
        };
        format!("<a href=\"{}\"{rel}>{inner}</a>", esc(&l.href))
    };
    h.push_str("<header class=\"site-header\">");
    for l in section(Placement::Header) {
        h.push_str(&a(l));
    }
    h.push_str("<nav><ul>");
    for l in section(Placement::Nav) {
        h.push_str(&format!("<li>{}</li>", a(l)));
    }
    h.push_str("</ul></nav></header>\n<main><article><h1>");
    h.push_str(&esc(&spec.title));
    h.push_str("</h1>");
    for l in section(Placement::Content) {
        h.push_str(&format!(
            "<p>Some prose about the topic, then {} and more prose.</p>\n",
            a(l)
        ));
    }
    h.push_str("</article>");
    let comments: Vec<&LinkSpec> = section(Placement::Comment).collect();
    if !comments.is_empty() {
        h.push_str("<section id=\"comments\"><h2>Comments</h2>");
        for l in comments {
            h.push_str(&format!(
                "<div class=\"comment-body\"><p>Great post! Visit {}</p></div>",
                a(l)
            ));
        }
        h.push_str("</section>");
    }
    h.push_str("</main>\n<aside class=\"sidebar\"><h3>Related</h3>");
    for l in section(Placement::Aside) {
        h.push_str(&a(l));
    }
    h.push_str("</aside>\n<footer><p>&copy; simulated</p>");
    for l in section(Placement::Footer) {
        h.push_str(&a(l));
    }
    h.push_str("</footer></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> SimWeb {
        SimWeb::new(SimConfig {
            hosts: 30,
            pages_per_host: 8,
            seed: 7,
            ..SimConfig::default()
        })
    }

    #[test]
    fn is_reproducible() {
        let (a, b) = (web(), web());
        assert_eq!(a.hosts(), b.hosts());
        assert_eq!(
            a.answer(&a.hosts()[3].name, "/articles/2"),
            b.answer(&b.hosts()[3].name, "/articles/2")
        );
        assert_eq!(a.truth(), b.truth());
        let other = SimWeb::new(SimConfig {
            seed: 8,
            ..a.config()
        });
        assert_ne!(a.hosts(), other.hosts());
    }

    #[test]
    fn has_varied_suffixes_and_several_hosts_per_domain() {
        let w = web();
        let domains: HashSet<&str> = w.hosts().iter().map(|h| h.domain.as_str()).collect();
        assert!(
            domains.len() < w.hosts().len(),
            "some domain has several hosts"
        );
        for h in w.hosts() {
            assert_eq!(
                linkgraph_core::registrable_domain(&h.name),
                h.domain,
                "{}",
                h.name
            );
        }
        let suffixes: HashSet<&str> = w
            .hosts()
            .iter()
            .map(|h| h.domain.split_once('.').map_or("", |(_, s)| s))
            .collect();
        assert!(suffixes.len() >= 4, "{suffixes:?}");
    }

    #[test]
    fn truth_covers_every_host_and_every_kind_of_link() {
        let w = web();
        let t = w.truth();
        let sources: HashSet<&str> = t.edges.iter().map(|l| l.source_url.as_str()).collect();
        for (h, host) in w.hosts().iter().enumerate() {
            for p in 0..8 {
                let u = w.article_url(h, p);
                assert!(
                    sources.contains(u.as_str()),
                    "{u} ({}) is reachable",
                    host.name
                );
            }
        }
        assert!(t.pages >= 30 * 8);
        let has = |f: &dyn Fn(&Link) -> bool| t.edges.iter().any(f);
        assert!(has(&|l| l.kind == LinkKind::Redirect));
        for p in Placement::ALL {
            assert!(has(&|l| l.placement == p), "{p}");
        }
        for r in [Rel::NOFOLLOW, Rel::SPONSORED, Rel::UGC] {
            assert!(has(&|l| l.rel.contains(r)));
        }
        assert!(has(&|l| l.anchor.contains('é')), "latin-1 anchors");
        assert!(has(&|l| l.anchor.ends_with("logo")), "image alt anchors");
        assert!(!t.disallowed.is_empty());
        let mut pairs: Vec<(&str, &str)> = t
            .edges
            .iter()
            .map(|l| (l.source_url.as_str(), l.target_url.as_str()))
            .collect();
        let n = pairs.len();
        pairs.sort_unstable();
        pairs.dedup();
        assert_eq!(n, pairs.len(), "edges are unique by (source, target)");
    }

    #[test]
    fn robots_and_routes_agree() {
        let w = web();
        let h = &w.hosts()[0].name;
        assert!(
            w.robots_txt(h)
                .is_some_and(|t| t.contains("Disallow: /private/"))
        );
        assert!(w.robots_txt("unknown.example").is_none());
        assert!(w.disallowed(h, "/private/1"));
        assert!(matches!(
            w.answer(h, "/old/2"),
            Answer::Redirect { status: 301, .. }
        ));
        assert_eq!(w.answer(h, "/missing/2"), Answer::NotFound);
        assert_eq!(w.answer("nope.example", "/"), Answer::NotFound);
    }

    #[test]
    fn epochs_change_the_web_reproducibly() {
        let w = web();
        let e0 = w.truth_at(0, &BTreeSet::new());
        let e1 = w.truth_at(1, &e0.known);
        let e2 = w.truth_at(2, &e1.known);
        let pairs = |t: &Truth| -> BTreeSet<(String, String)> {
            t.edges
                .iter()
                .map(|l| (l.source_url.clone(), l.target_url.clone()))
                .collect()
        };
        let (p0, p1, p2) = (pairs(&e0.truth), pairs(&e1.truth), pairs(&e2.truth));
        assert!(p0.difference(&p1).count() > 0, "epoch 1 loses links");
        assert!(p1.difference(&p0).count() > 0, "epoch 1 gains links");
        assert!(
            p2.difference(&p1).any(|x| p0.contains(x)),
            "some links come back in epoch 2"
        );
        assert!(e1.known.is_superset(&e0.known));
        let gone = (1..20).any(|e| {
            w.hosts().iter().any(|h| {
                (2..8).any(|p| w.answer_at(&h.name, &format!("/articles/{p}"), e) == Answer::Gone)
            })
        });
        assert!(gone, "pages get deleted");
        assert_eq!(w.truth_at(1, &e0.known), web().truth_at(1, &e0.known));
        w.set_epoch(1);
        assert_eq!(w.truth(), w.truth_at(1, &BTreeSet::new()).truth);
        assert_eq!(w.advance(), 2);
    }
}
