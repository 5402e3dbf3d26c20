//! The robots.txt cache: one entry per origin, fetched once by the first
//! request that needs it while concurrent requests wait, trusted until it
//! expires, and bounded in size (least recently used entries go first).
//! When a refresh fails (unreachable, 5xx), the last good copy keeps
//! answering for up to [`MAX_STALE`] (Google keeps one for 30 days) while the
//! refresh is retried with back-off.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

/// The most robots.txt bytes parsed (RFC 9309 asks for at least 500 KiB).
pub const MAX_ROBOTS_BYTES: usize = 500 * 1024;

/// Redirect hops followed when fetching robots.txt (RFC 9309: at least five).
pub const MAX_ROBOTS_REDIRECTS: usize = 5;

/// How long the last good robots.txt of an origin stands in for one that
/// cannot be fetched.
pub const MAX_STALE: Duration = Duration::from_secs(30 * 86_400);

/// An origin's last good robots.txt, kept across runs by a [`RobotsArchive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedRobots {
    /// When it was fetched (ms since the Unix epoch, crawl clock).
    pub fetched_at_ms: i64,
    /// The file; `None` for a 4xx (everything allowed).
    pub body: Option<Vec<u8>>,
}

impl ArchivedRobots {
    /// Bytes: the time (8 bytes, big-endian), a flag byte (1 = body), the body.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.fetched_at_ms.to_be_bytes().to_vec();
        v.push(u8::from(self.body.is_some()));
        v.extend_from_slice(self.body.as_deref().unwrap_or_default());
        v
    }
    /// The copy `encode` wrote, or `None` for bytes it did not write.
    pub fn decode(bytes: &[u8]) -> Option<ArchivedRobots> {
        let (time, rest) = bytes.split_at_checked(8)?;
        let (flag, body) = rest.split_first()?;
        Some(ArchivedRobots {
            fetched_at_ms: i64::from_be_bytes(time.try_into().ok()?),
            body: match flag {
                0 => None,
                1 => Some(body.to_vec()),
                _ => return None,
            },
        })
    }
}

/// Keeps each origin's last good robots.txt beyond the process (the
/// embedded crawl keeps them in its data directory), so a run that cannot
/// fetch one uses the copy of an earlier run, for up to [`MAX_STALE`].
pub trait RobotsArchive: Send + Sync {
    /// The last good copy of `origin`'s robots.txt, if one was kept.
    fn load(&self, origin: &str) -> Option<ArchivedRobots>;
    /// Keeps `copy` as `origin`'s last good robots.txt.
    fn save(&self, origin: &str, copy: &ArchivedRobots);
}

/// What robots.txt says about one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RobotsVerdict {
    /// Fetching is allowed.
    Allowed,
    /// A rule disallows it.
    Disallowed,
    /// robots.txt could not be fetched (5xx, unreachable) and no good copy
    /// is at hand: nothing may be fetched, but nothing is denied either.
    Unavailable(String),
    /// The SSRF guard refused the host's address.
    Blocked(String),
}

#[derive(Clone)]
enum Kind {
    Rules(Arc<texting_robots::Robot>),
    AllowAll,
    Unreachable(String),
    Blocked(String),
}

/// A robots.txt as fetched, with its expiry.
pub struct Fetched {
    kind: Kind,
    expires: Instant,
    /// When this copy was fetched (a stand-in keeps its original's time).
    fetched: Instant,
}

impl Fetched {
    /// A 2xx robots.txt, parsed for `token`. Unparseable files allow all.
    /// Patterns are compared with paths after `normalize_escapes` (RFC 9309 §2.2.2).
    pub fn parsed(token: &str, body: &[u8], ttl: Duration) -> Self {
        let body = normalize_escapes(body);
        let kind = match texting_robots::Robot::new(token, &body) {
            Ok(r) => Kind::Rules(Arc::new(r)),
            Err(_) => Kind::AllowAll,
        };
        Fetched {
            kind,
            expires: Instant::now() + ttl,
            fetched: Instant::now(),
        }
    }
    /// A 4xx (or absent) robots.txt: everything is allowed.
    pub fn allow_all(ttl: Duration) -> Self {
        Fetched {
            kind: Kind::AllowAll,
            expires: Instant::now() + ttl,
            fetched: Instant::now(),
        }
    }
    /// An unreachable or 5xx robots.txt: everything is disallowed for `ttl`.
    pub fn unreachable(why: String, ttl: Duration) -> Self {
        Fetched {
            kind: Kind::Unreachable(why),
            expires: Instant::now() + ttl,
            fetched: Instant::now(),
        }
    }
    /// The host's address is refused by the SSRF guard (cached like an error).
    pub fn blocked(why: String, ttl: Duration) -> Self {
        Fetched {
            kind: Kind::Blocked(why),
            expires: Instant::now() + ttl,
            fetched: Instant::now(),
        }
    }
    /// The verdict for a full URL.
    pub fn verdict(&self, url: &str) -> RobotsVerdict {
        match &self.kind {
            Kind::Rules(r) if r.allowed(&robots_path(url)) => RobotsVerdict::Allowed,
            Kind::Rules(_) => RobotsVerdict::Disallowed,
            Kind::AllowAll => RobotsVerdict::Allowed,
            Kind::Unreachable(why) => RobotsVerdict::Unavailable(why.clone()),
            Kind::Blocked(why) => RobotsVerdict::Blocked(why.clone()),
        }
    }
    /// `Sitemap:` URLs the file announced.
    pub fn sitemaps(&self) -> Vec<String> {
        match &self.kind {
            Kind::Rules(r) => r.sitemaps.clone(),
            _ => Vec::new(),
        }
    }
    /// The `Crawl-delay` for our group, if any.
    pub fn crawl_delay(&self) -> Option<f32> {
        match &self.kind {
            Kind::Rules(r) => r.delay,
            _ => None,
        }
    }
    /// True for an unreachable or 5xx robots.txt.
    pub(crate) fn is_error(&self) -> bool {
        matches!(self.kind, Kind::Unreachable(_))
    }
    /// True for a robots.txt that answered (rules, or allow-all).
    fn is_good(&self) -> bool {
        matches!(self.kind, Kind::Rules(_) | Kind::AllowAll)
    }
    fn expired(&self, now: Instant) -> bool {
        now >= self.expires
    }
}

/// RFC 9309 §2.2.2: a percent-encoded unreserved character (ALPHA, DIGIT,
/// `-`, `.`, `_`, `~`) is compared decoded, and every other escape is
/// compared as itself (hex case aside), so `Allow: /foo/bar/%62%61%7A`
/// matches `/foo/bar/baz` and `%2F` never becomes a `/`, nor `%2A` a
/// wildcard. Applied to a whole robots.txt, it changes only escapes: in a
/// user-agent or sitemap line they mean the same decoded.
pub fn normalize_escapes(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escape {
            Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
                out.push(b);
                i += 3;
            }
            Some(b) => {
                out.extend_from_slice(format!("%{b:02X}").as_bytes());
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// The path and query of `url` as robots.txt rules see them: absolute-path
/// form, escapes normalized. A string that is not a URL is taken as a path.
fn robots_path(url: &str) -> String {
    let tail = match url::Url::parse(url) {
        Ok(u) => u[url::Position::BeforePath..url::Position::AfterQuery].to_owned(),
        Err(_) => url.to_owned(),
    };
    String::from_utf8(normalize_escapes(tail.as_bytes())).unwrap_or(tail)
}

struct Slot {
    cell: Arc<OnceCell<Arc<Fetched>>>,
    /// Last lookup, for least-recently-used eviction.
    used: Instant,
    /// Consecutive failed fetches of this origin's robots.txt before this one.
    failures: u32,
    /// The last good copy, standing in while refreshes fail.
    last_good: Option<Arc<Fetched>>,
}

/// A bounded cache of robots.txt files keyed by origin.
pub struct RobotsCache {
    slots: Mutex<HashMap<String, Slot>>,
    capacity: usize,
    max_stale: Duration,
}

impl RobotsCache {
    /// A cache holding at most `capacity` origins.
    pub fn new(capacity: usize) -> Self {
        RobotsCache::with_max_stale(capacity, MAX_STALE)
    }

    /// A cache holding at most `capacity` origins, whose last good copies
    /// stand in for failed refreshes for at most `max_stale`.
    pub fn with_max_stale(capacity: usize, max_stale: Duration) -> Self {
        RobotsCache {
            slots: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            max_stale,
        }
    }

    /// Origins cached now.
    pub fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry for `origin`, fetching it with `fetch` when absent or
    /// expired. The flag is true when this call did the fetch.
    pub async fn get_or_fetch<F, Fut>(&self, origin: &str, fetch: F) -> (Arc<Fetched>, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Fetched>,
    {
        let cell = {
            let now = Instant::now();
            let mut slots = match self.slots.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            let stale = slots.get(origin).and_then(|s| {
                let f = s.cell.get()?;
                let last_good = if f.is_good() {
                    Some(Arc::clone(f))
                } else {
                    s.last_good.clone()
                };
                f.expired(now).then(|| {
                    let failures = if f.is_good() { 0 } else { s.failures + 1 };
                    (failures, last_good)
                })
            });
            if stale.is_some() || !slots.contains_key(origin) {
                if slots.len() >= self.capacity {
                    evict(&mut slots, now, self.capacity);
                }
                let (failures, last_good) = stale.unwrap_or((0, None));
                slots.insert(
                    origin.to_owned(),
                    Slot {
                        cell: Arc::new(OnceCell::new()),
                        used: now,
                        failures,
                        last_good,
                    },
                );
            }
            match slots.get_mut(origin) {
                Some(s) => {
                    s.used = now;
                    (Arc::clone(&s.cell), s.failures, s.last_good.clone())
                }
                None => (Arc::new(OnceCell::new()), 0, None),
            }
        };
        let (cell, failures, last_good) = cell;
        let max_stale = self.max_stale;
        let ran = AtomicBool::new(false);
        let entry = cell
            .get_or_init(|| {
                ran.store(true, Ordering::Relaxed);
                async move {
                    let started = Instant::now();
                    let mut f = fetch().await;
                    if f.is_error() {
                        // Retried with back-off: each consecutive failure doubles the wait.
                        let ttl = f.expires.saturating_duration_since(started);
                        f.expires = started + ttl * (1u32 << failures.min(6));
                        // Meanwhile the last good copy answers, if it is recent enough.
                        if let Some(good) = last_good
                            && started.saturating_duration_since(good.fetched) <= max_stale
                        {
                            metrics::counter!("linkgraph_fetcher_robots_stale_used_total")
                                .increment(1);
                            f = Fetched {
                                kind: good.kind.clone(),
                                expires: f.expires,
                                fetched: good.fetched,
                            };
                        }
                    }
                    Arc::new(f)
                }
            })
            .await;
        (Arc::clone(entry), ran.load(Ordering::Relaxed))
    }
}

/// Drops expired entries, then the least recently used tenth, so inserts
/// stay amortized O(1).
fn evict(slots: &mut HashMap<String, Slot>, now: Instant, capacity: usize) {
    slots.retain(|_, s| !s.cell.get().is_some_and(|f| f.expired(now)));
    if slots.len() < capacity {
        return;
    }
    let mut ages: Vec<(Instant, String)> = slots.iter().map(|(k, s)| (s.used, k.clone())).collect();
    ages.sort_unstable();
    for (_, k) in ages.into_iter().take((capacity / 10).max(1)) {
        slots.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TXT: &[u8] = b"User-agent: *\nDisallow: /private/\n\nUser-agent: linkgraph\nDisallow: /nolg/\nAllow: /nolg/ok$\nCrawl-delay: 2\n\nSitemap: http://a.com/sitemap.xml\n";

    #[test]
    fn our_group_wins_over_the_wildcard() {
        let f = Fetched::parsed("linkgraph", TXT, Duration::from_secs(60));
        assert_eq!(f.verdict("http://a.com/nolg/x"), RobotsVerdict::Disallowed);
        assert_eq!(f.verdict("http://a.com/nolg/ok"), RobotsVerdict::Allowed);
        // Our own group applies, so the wildcard group's rule does not.
        assert_eq!(f.verdict("http://a.com/private/x"), RobotsVerdict::Allowed);
        assert_eq!(f.crawl_delay(), Some(2.0));
        assert_eq!(f.sitemaps(), vec!["http://a.com/sitemap.xml".to_string()]);
        let other = Fetched::parsed("otherbot", TXT, Duration::from_secs(60));
        assert_eq!(
            other.verdict("http://a.com/private/x"),
            RobotsVerdict::Disallowed
        );
    }

    #[test]
    fn escapes_compare_as_rfc_9309_says() {
        assert_eq!(
            normalize_escapes(b"/foo/%62%61%7a/%2f%2A%e3%83%84%zz%4"),
            b"/foo/baz/%2F%2A%E3%83%84%zz%4".to_vec()
        );
        let f = Fetched::parsed(
            "linkgraph",
            b"User-agent: *\nDisallow: /\nAllow: /foo/bar/%62%61%7A\nAllow: /a%2fb\n",
            Duration::from_secs(60),
        );
        assert_eq!(
            f.verdict("http://a.com/foo/bar/baz"),
            RobotsVerdict::Allowed
        );
        assert_eq!(
            f.verdict("http://a.com/foo/bar/%62az"),
            RobotsVerdict::Allowed
        );
        assert_eq!(f.verdict("http://a.com/a%2Fb"), RobotsVerdict::Allowed);
        assert_eq!(f.verdict("http://a.com/a/b"), RobotsVerdict::Disallowed);
    }

    #[test]
    fn unreachable_disallows_and_4xx_allows() {
        let u = Fetched::unreachable("503".into(), Duration::from_secs(1));
        assert!(matches!(
            u.verdict("http://a.com/"),
            RobotsVerdict::Unavailable(_)
        ));
        assert_eq!(
            Fetched::allow_all(Duration::from_secs(1)).verdict("http://a.com/x"),
            RobotsVerdict::Allowed
        );
    }

    #[test]
    fn archived_copies_round_trip() {
        for copy in [
            ArchivedRobots {
                fetched_at_ms: 1_700_000_000_000,
                body: Some(TXT.to_vec()),
            },
            ArchivedRobots {
                fetched_at_ms: 5,
                body: None,
            },
        ] {
            assert_eq!(ArchivedRobots::decode(&copy.encode()), Some(copy));
        }
        assert_eq!(ArchivedRobots::decode(b"short"), None);
        assert_eq!(ArchivedRobots::decode(&[0, 0, 0, 0, 0, 0, 0, 1, 7]), None);
    }

    #[tokio::test]
    async fn the_last_good_copy_answers_while_refreshes_fail() {
        let cache = RobotsCache::with_max_stale(10, Duration::from_millis(200));
        let good = || async { Fetched::parsed("linkgraph", TXT, Duration::ZERO) };
        let down = || async { Fetched::unreachable("503".into(), Duration::ZERO) };
        let (f, fetched) = cache.get_or_fetch("http://a.com", good).await;
        assert!(fetched);
        assert_eq!(f.verdict("http://a.com/nolg/x"), RobotsVerdict::Disallowed);
        // Expired; the refresh fails: the old rules still answer.
        let (f, fetched) = cache.get_or_fetch("http://a.com", down).await;
        assert!(fetched);
        assert_eq!(f.verdict("http://a.com/nolg/x"), RobotsVerdict::Disallowed);
        assert_eq!(f.verdict("http://a.com/ok"), RobotsVerdict::Allowed);
        // Past the stale limit, a failed refresh is unavailable.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (f, _) = cache.get_or_fetch("http://a.com", down).await;
        assert!(matches!(
            f.verdict("http://a.com/ok"),
            RobotsVerdict::Unavailable(_)
        ));
        // With no good copy ever, unavailable at once.
        let (f, _) = cache.get_or_fetch("http://b.com", down).await;
        assert!(matches!(
            f.verdict("http://b.com/"),
            RobotsVerdict::Unavailable(_)
        ));
    }

    #[tokio::test]
    async fn fetches_once_refetches_when_expired_and_stays_bounded() {
        let cache = RobotsCache::new(10);
        let (_, first) = cache
            .get_or_fetch("http://a.com", || async {
                Fetched::allow_all(Duration::from_secs(60))
            })
            .await;
        let (_, second) = cache
            .get_or_fetch("http://a.com", || async {
                Fetched::allow_all(Duration::from_secs(60))
            })
            .await;
        assert!(first && !second);
        let (_, _) = cache
            .get_or_fetch("http://b.com", || async {
                Fetched::allow_all(Duration::ZERO)
            })
            .await;
        let (_, again) = cache
            .get_or_fetch("http://b.com", || async {
                Fetched::allow_all(Duration::ZERO)
            })
            .await;
        assert!(again, "an expired entry is fetched again");
        for i in 0..100 {
            let o = format!("http://h{i}.com");
            cache
                .get_or_fetch(&o, || async { Fetched::allow_all(Duration::from_secs(60)) })
                .await;
        }
        assert!(cache.len() <= 10);
    }

    #[tokio::test]
    async fn evicts_the_least_recently_used() {
        let cache = RobotsCache::new(10);
        let ttl = Duration::from_secs(60);
        for i in 0..10 {
            cache
                .get_or_fetch(&format!("http://h{i}.com"), || async move {
                    Fetched::allow_all(ttl)
                })
                .await;
        }
        // h0 is the oldest entry, but it was just used; h1 is the least recently used.
        cache
            .get_or_fetch("http://h0.com", || async move { Fetched::allow_all(ttl) })
            .await;
        cache
            .get_or_fetch("http://h10.com", || async move { Fetched::allow_all(ttl) })
            .await;
        let (_, h0_refetched) = cache
            .get_or_fetch("http://h0.com", || async move { Fetched::allow_all(ttl) })
            .await;
        let (_, h1_refetched) = cache
            .get_or_fetch("http://h1.com", || async move { Fetched::allow_all(ttl) })
            .await;
        assert!(!h0_refetched && h1_refetched);
    }

    #[tokio::test]
    async fn unreachable_robots_are_retried_with_back_off() {
        let cache = RobotsCache::new(10);
        let base = Duration::from_millis(40);
        let down = || async move { Fetched::unreachable("503".into(), base) };
        let (_, first) = cache.get_or_fetch("http://d.com", down).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, second) = cache.get_or_fetch("http://d.com", down).await;
        assert!(first && second, "retried once the first wait passed");
        // The second failure waits twice as long: still cached after 50 ms.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, third) = cache.get_or_fetch("http://d.com", down).await;
        assert!(!third, "backing off");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, fourth) = cache
            .get_or_fetch("http://d.com", || async {
                Fetched::allow_all(Duration::from_secs(60))
            })
            .await;
        assert!(fourth);
    }
}
