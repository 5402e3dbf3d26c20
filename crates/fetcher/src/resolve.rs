//! Name resolution with `--resolve` overrides and the SSRF guard.
//!
//! Every connection the fetcher makes goes through [`GuardedResolver`]; IP
//! literals in URLs, which skip DNS, are checked with [`check_ip`] first.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// One `--resolve HOST=ADDR:PORT` rule; `*` as HOST matches every host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveRule {
    /// Host name (lower-case) or `*`.
    pub host: String,
    /// Where to connect instead.
    pub addr: SocketAddr,
}

impl FromStr for ResolveRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, addr) = s
            .split_once('=')
            .ok_or_else(|| format!("expected HOST=ADDR:PORT, got {s:?}"))?;
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err(format!("empty host in {s:?}"));
        }
        let addr = addr.trim().parse::<SocketAddr>().map_err(|e| {
            format!("bad address {addr:?} in {s:?}: {e} (expected e.g. 127.0.0.1:8080)")
        })?;
        Ok(ResolveRule { host, addr })
    }
}

/// Why the guard refused an address.
#[derive(Debug, thiserror::Error)]
#[error("address {addr} of {host:?} is {class}; pass --allow-private-networks to permit it")]
pub struct Blocked {
    /// The host name.
    pub host: String,
    /// The refused address.
    pub addr: IpAddr,
    /// Which forbidden range it is in.
    pub class: &'static str,
}

/// The forbidden class of `ip`, or `None` for a public address.
pub fn forbidden_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_class(v4);
            }
            v6_class(v6)
        }
    }
}

fn v4_class(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata)")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared address space (carrier-grade NAT)")
    } else if ip.is_broadcast() || ip.is_multicast() || o[0] >= 240 {
        Some("broadcast, multicast or reserved")
    } else {
        None
    }
}

fn v6_class(ip: Ipv6Addr) -> Option<&'static str> {
    let seg0 = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if (seg0 & 0xfe00) == 0xfc00 {
        Some("private (unique local)")
    } else if (seg0 & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else {
        None
    }
}

/// Refuses `ip` for `host` unless private networks are allowed.
pub fn check_ip(host: &str, ip: IpAddr, allow_private: bool) -> Result<(), Blocked> {
    match forbidden_class(ip) {
        Some(class) if !allow_private => Err(Blocked {
            host: host.to_owned(),
            addr: ip,
            class,
        }),
        _ => Ok(()),
    }
}

/// A cached lookup: addresses, when it expires, when it was last used.
type DnsEntry = (Vec<SocketAddr>, Instant, Instant);

/// A bounded DNS cache: LRU eviction past `capacity`, entries trusted for `ttl`.
#[derive(Debug)]
pub struct DnsCache {
    entries: Mutex<HashMap<String, DnsEntry>>,
    capacity: usize,
    ttl: Duration,
    hits: AtomicU64,
}

impl DnsCache {
    /// A cache of at most `capacity` names, each trusted for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        DnsCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            ttl,
            hits: AtomicU64::new(0),
        }
    }
    /// Names cached now.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Lookups answered from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
    fn get(&self, name: &str) -> Option<Vec<SocketAddr>> {
        let mut e = self.entries.lock().ok()?;
        let now = Instant::now();
        let (addrs, expires, used) = e.get_mut(name)?;
        if *expires <= now {
            e.remove(name);
            return None;
        }
        *used = now;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(addrs.clone())
    }
    /// Remembers the addresses of `name`.
    pub fn insert(&self, name: &str, addrs: Vec<SocketAddr>) {
        let Ok(mut e) = self.entries.lock() else {
            return;
        };
        let now = Instant::now();
        if e.len() >= self.capacity && !e.contains_key(name) {
            e.retain(|_, (_, expires, _)| *expires > now);
            if e.len() >= self.capacity {
                // Drop the least recently used tenth.
                let mut used: Vec<(Instant, String)> =
                    e.iter().map(|(k, (_, _, u))| (*u, k.clone())).collect();
                used.sort_unstable();
                for (_, k) in used.into_iter().take((self.capacity / 10).max(1)) {
                    e.remove(&k);
                }
            }
        }
        e.insert(name.to_owned(), (addrs, now + self.ttl, now));
    }
}

/// A DNS resolver that applies `--resolve` rules, then a bounded cache over
/// the system resolver (10,000 names, 5 minutes), and drops forbidden addresses.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    rules: Arc<Vec<ResolveRule>>,
    allow_private: bool,
    cache: Arc<DnsCache>,
}

impl GuardedResolver {
    /// A resolver with these overrides and policy.
    pub fn new(rules: Vec<ResolveRule>, allow_private: bool) -> Self {
        GuardedResolver {
            rules: Arc::new(rules),
            allow_private,
            cache: Arc::new(DnsCache::new(10_000, Duration::from_secs(300))),
        }
    }

    /// The first address `host` resolves to (overrides, cache, then DNS),
    /// for per-IP politeness; `None` when it does not resolve.
    pub async fn first_ip(&self, host: &str) -> Option<IpAddr> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Some(ip);
        }
        self.lookup(host).await.ok()?.first().map(SocketAddr::ip)
    }

    /// The addresses of `host`: its `--resolve` override, else the cache,
    /// else the system resolver (cached). Not yet filtered by the guard.
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<SocketAddr>> {
        if let Some(a) = self.override_for(host) {
            return Ok(vec![a]);
        }
        if let Some(a) = self.cache.get(host) {
            return Ok(a);
        }
        // Port 0: the connector uses the URL's port.
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
        if !addrs.is_empty() {
            self.cache.insert(host, addrs.clone());
        }
        Ok(addrs)
    }

    /// The DNS cache (for diagnostics and tests).
    pub fn cache(&self) -> &DnsCache {
        &self.cache
    }

    /// The override for `host`: an exact rule, else `*`.
    pub fn override_for(&self, host: &str) -> Option<SocketAddr> {
        let host = host.trim_end_matches('.');
        self.rules
            .iter()
            .find(|r| r.host.eq_ignore_ascii_case(host))
            .or_else(|| self.rules.iter().find(|r| r.host == "*"))
            .map(|r| r.addr)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs = this.lookup(&host).await?;
            let mut allowed = Vec::with_capacity(addrs.len());
            let mut first_block = None;
            for a in addrs {
                match check_ip(&host, a.ip(), this.allow_private) {
                    Ok(()) => allowed.push(a),
                    Err(b) => {
                        first_block.get_or_insert(b);
                    }
                }
            }
            if allowed.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = match first_block {
                    Some(b) => Box::new(b),
                    None => format!("no addresses for {host:?}").into(),
                };
                return Err(err);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules() {
        let r: ResolveRule = "WWW.Example.com=127.0.0.1:8080"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.host, "www.example.com");
        assert_eq!(r.addr, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert!("*=[::1]:80".parse::<ResolveRule>().is_ok());
        assert!("example.com".parse::<ResolveRule>().is_err());
        assert!("example.com=127.0.0.1".parse::<ResolveRule>().is_err());
    }

    #[test]
    fn exact_rules_win_over_the_wildcard() {
        let g = GuardedResolver::new(
            vec![
                "*=127.0.0.1:1"
                    .parse()
                    .unwrap_or_else(|e: String| panic!("{e}")),
                "a.com=127.0.0.2:2"
                    .parse()
                    .unwrap_or_else(|e: String| panic!("{e}")),
            ],
            true,
        );
        assert_eq!(
            g.override_for("a.com"),
            Some(SocketAddr::from(([127, 0, 0, 2], 2)))
        );
        assert_eq!(
            g.override_for("b.com"),
            Some(SocketAddr::from(([127, 0, 0, 1], 1)))
        );
    }

    #[test]
    fn the_guard_classifies_addresses() {
        for (ip, blocked) in [
            ("127.0.0.1", true),
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("0.0.0.0", true),
            ("100.64.0.1", true),
            ("::1", true),
            ("fd00::1", true),
            ("fe80::1", true),
            ("::ffff:127.0.0.1", true),
            ("::", true),
            ("93.184.216.34", false),
            ("2606:2800:220:1::1", false),
        ] {
            let ip: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
            assert_eq!(forbidden_class(ip).is_some(), blocked, "{ip}");
            assert!(check_ip("h", ip, true).is_ok());
        }
    }

    #[tokio::test]
    async fn blocks_overrides_into_private_space_unless_allowed() {
        let rule: ResolveRule = "*=127.0.0.1:9"
            .parse()
            .unwrap_or_else(|e: String| panic!("{e}"));
        let name = || Name::from_str("example.com").unwrap_or_else(|e| panic!("{e}"));
        let strict = GuardedResolver::new(vec![rule.clone()], false);
        let err = strict.resolve(name()).await.err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("loopback")));
        let lax = GuardedResolver::new(vec![rule], true);
        let addrs: Vec<SocketAddr> = lax
            .resolve(name())
            .await
            .map(Iterator::collect)
            .unwrap_or_default();
        assert_eq!(addrs, vec![SocketAddr::from(([127, 0, 0, 1], 9))]);
    }

    #[tokio::test]
    async fn system_lookups_are_cached_and_the_cache_is_bounded() {
        let g = GuardedResolver::new(Vec::new(), true);
        let name = || Name::from_str("localhost").unwrap_or_else(|e| panic!("{e}"));
        let first: Vec<SocketAddr> = g
            .resolve(name())
            .await
            .map(Iterator::collect)
            .unwrap_or_default();
        let second: Vec<SocketAddr> = g
            .resolve(name())
            .await
            .map(Iterator::collect)
            .unwrap_or_default();
        assert!(!first.is_empty() && first == second);
        assert_eq!(g.cache().hits(), 1);
        let small = DnsCache::new(10, Duration::from_secs(60));
        for i in 0..100 {
            small.insert(
                &format!("h{i}.example"),
                vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            );
        }
        assert!(small.len() <= 10);
        let expired = DnsCache::new(10, Duration::ZERO);
        expired.insert("a.example", vec![SocketAddr::from(([127, 0, 0, 1], 0))]);
        assert!(expired.get("a.example").is_none(), "entries expire");
    }
}
