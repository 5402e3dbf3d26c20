//! URL canonicalization and trap rules: never panic, canonical URLs are
//! fixed points, and stripping parameters is idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linkgraph_core::{UrlPolicy, canonicalize, registrable_domain};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let base = url::Url::parse("http://www.example.co.uk/a/b/c.html?q=1").expect("valid base");
    let Ok(url) = canonicalize(&input, Some(&base)) else { return };
    let again = canonicalize(url.as_str(), None).expect("a canonical URL parses again");
    assert_eq!(url, again, "canonicalization is idempotent");
    if let Some(host) = url.host_str() {
        let d = registrable_domain(host);
        assert!(host.ends_with(d), "{d} is a suffix of {host}");
    }
    let policy = UrlPolicy::default();
    let mut stripped = url.clone();
    policy.strip(&mut stripped);
    let mut twice = stripped.clone();
    assert!(!policy.strip(&mut twice), "stripping is idempotent: {stripped}");
    let _ = policy.trap(&stripped);
});
