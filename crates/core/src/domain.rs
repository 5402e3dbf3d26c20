//! Hosts and registrable domains by the Public Suffix List.

use std::net::IpAddr;

/// True when `host` is an IPv4 or IPv6 literal (brackets allowed).
pub fn is_ip_host(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok()
}

/// The registrable domain of `host` ("eTLD+1") by the Public Suffix List.
///
/// `www.example.co.uk` → `example.co.uk`; `a.github.io` is its own domain;
/// an IP address, and a host that is itself a public suffix, are their own
/// domain. The host is expected lower-case, as canonical URLs carry it.
pub fn registrable_domain(host: &str) -> &str {
    let host = host.trim_end_matches('.');
    if is_ip_host(host) {
        return host;
    }
    psl::domain_str(host).unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn registrable_domains_follow_the_public_suffix_list() {
        assert_eq!(registrable_domain("www.example.co.uk"), "example.co.uk");
        assert_eq!(registrable_domain("shop.example.co.uk"), "example.co.uk");
        assert_eq!(registrable_domain("example.com"), "example.com");
        assert_eq!(registrable_domain("a.b.example.com"), "example.com");
        assert_eq!(registrable_domain("a.github.io"), "a.github.io");
        assert_eq!(registrable_domain("x.blogspot.com"), "x.blogspot.com");
        assert_eq!(registrable_domain("news.example.com.au"), "example.com.au");
    }

    #[test]
    fn ip_hosts_are_their_own_domain() {
        assert_eq!(registrable_domain("127.0.0.1"), "127.0.0.1");
        assert_eq!(registrable_domain("[::1]"), "[::1]");
        assert!(is_ip_host("10.1.2.3"));
        assert!(!is_ip_host("example.com"));
    }

    #[test]
    fn a_public_suffix_is_its_own_domain() {
        assert_eq!(registrable_domain("github.io"), "github.io");
        assert_eq!(registrable_domain("localhost"), "localhost");
    }

    proptest! {
        #[test]
        fn domain_is_a_suffix_of_the_host(labels in proptest::collection::vec("[a-z][a-z0-9]{0,8}", 1..5),
                                           tld in "(com|co\\.uk|org|github\\.io|de)") {
            let host = format!("{}.{tld}", labels.join("."));
            let d = registrable_domain(&host);
            prop_assert!(host.ends_with(d));
            prop_assert_eq!(registrable_domain(d), d);
        }
    }
}
