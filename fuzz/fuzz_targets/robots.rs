//! robots.txt parsing and matching: arbitrary files and paths never panic,
//! and a file that disallows nothing allows everything.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use linkgraph_fetcher::{MAX_ROBOTS_BYTES, RobotsFile, RobotsVerdict};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (file, path) = data.split_at(split);
    let file = &file[..file.len().min(MAX_ROBOTS_BYTES)];
    let robots = RobotsFile::parsed("linkgraph", file, Duration::from_secs(60));
    let path = String::from_utf8_lossy(path);
    let url = format!("http://a.example/{}", path.trim_start_matches('\0'));
    let verdict = robots.verdict(&url);
    if !file.windows(8).any(|w| w.eq_ignore_ascii_case(b"disallow")) {
        assert_eq!(verdict, RobotsVerdict::Allowed, "nothing disallowed, yet {url} was refused");
    }
    let _ = robots.crawl_delay();
    let _ = robots.sitemaps();
});
