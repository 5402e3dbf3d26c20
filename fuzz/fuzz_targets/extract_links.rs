//! Link and sitemap extraction: arbitrary bytes never panic, and every link
//! found is a bounded, canonical http(s) edge from the page.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linkgraph_core::MAX_ANCHOR_CHARS;
use linkgraph_parser::{PageMeta, ParseLimits, extract_links, extract_sitemap};

fuzz_target!(|data: &[u8]| {
    let page = url::Url::parse("http://www.example.com/dir/page.html").expect("valid page url");
    let ct = if data.first().is_some_and(|b| b % 2 == 0) { Some("text/html; charset=windows-1252") } else { None };
    let meta = PageMeta { url: &page, content_type: ct, x_robots_tag: None, product_token: "linkgraph" };
    let limits = ParseLimits { max_links: 1000, ..ParseLimits::default() };
    let x = extract_links(meta, data, limits).expect("an http page url parses");
    assert!(x.links.len() <= 1000);
    for l in &x.links {
        assert_eq!(l.source_url, page.as_str());
        assert!(l.target_url.starts_with("http://") || l.target_url.starts_with("https://"));
        assert!(l.anchor.chars().count() <= MAX_ANCHOR_CHARS);
    }
    let map = extract_sitemap(data, &page, 100);
    assert!(map.urls.len() <= 100);
});
