//! Link-extraction speed (`make bench-extract`): MB/s on one core of
//! [`linkgraph_parser::extract_links`] over the in-repo page corpus
//! (`tests/corpus/*.html`) and a 20 KB page of the benchmark webs' shape,
//! next to a bare lol_html scan of the same bytes: a rewriter that only
//! reads every `a[href]` and the text inside links, with nothing resolved,
//! canonicalized or classified. The ratio says what our extraction costs on
//! top of the HTML tokenizer.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use linkgraph_parser::{PageMeta, ParseLimits, extract_links};
use lol_html::{HtmlRewriter, Settings, element, text};
use url::Url;

/// A page like those of `make bench` and `make bench-peers`: ~20 KB with 29 links.
fn shaped_page() -> Vec<u8> {
    let mut html = String::from("<!doctype html><html><head><title>t</title></head><body><nav>");
    for i in 0..8 {
        html.push_str(&format!("<a href=\"/p/{i}.html\">section {i}</a> "));
    }
    html.push_str("</nav><main>");
    for i in 0..17 {
        html.push_str("<p>");
        for w in 0..180 {
            html.push_str(["garden ", "coffee ", "review ", "history "][(i + w) % 4]);
        }
        html.push_str(&format!(
            "<a href=\"http://site{i}.test/p/{}.html\">read the guide {i}</a></p>",
            i * 3
        ));
    }
    html.push_str("</main><footer>");
    for i in 0..4 {
        html.push_str(&format!(
            "<a rel=\"nofollow\" href=\"/legal/{i}\">legal {i}</a> "
        ));
    }
    html.push_str("</footer></body></html>");
    html.into_bytes()
}

fn bare_scan(body: &[u8]) -> usize {
    let mut n = 0usize;
    let mut chars = 0usize;
    let mut w = HtmlRewriter::new(
        Settings::new()
            .append_element_content_handler(element!("a[href]", |el| {
                n += el.get_attribute("href").map_or(0, |h| h.len());
                Ok(())
            }))
            .append_element_content_handler(text!("a", |t| {
                chars += t.as_str().len();
                Ok(())
            })),
        |_: &[u8]| {},
    );
    w.write(body).unwrap();
    w.end().unwrap();
    n + chars
}

/// Runs `f` once over every page; seconds taken.
fn round(pages: &[(Url, Vec<u8>)], f: &mut impl FnMut(&Url, &[u8]) -> usize) -> f64 {
    let t0 = Instant::now();
    for (u, b) in pages {
        black_box(f(u, b));
    }
    t0.elapsed().as_secs_f64()
}

/// MB/s of `ours` and `bare`, measured in alternating slices of about
/// 50 ms each until `min` has passed, so that the machine's drift (other
/// load, clock changes) falls on both sides alike.
fn rates(
    pages: &[(Url, Vec<u8>)],
    min: Duration,
    mut ours: impl FnMut(&Url, &[u8]) -> usize,
    mut bare: impl FnMut(&Url, &[u8]) -> usize,
) -> (f64, f64) {
    let bytes: usize = pages.iter().map(|(_, b)| b.len()).sum();
    // Rounds per slice, from one warm-up round of ours.
    let per = (0.05 / round(pages, &mut ours).max(1e-6)).clamp(1.0, 1e6) as usize;
    let (mut t_ours, mut t_bare, mut rounds) = (0.0, 0.0, 0usize);
    let t0 = Instant::now();
    while t0.elapsed() < min {
        for _ in 0..per {
            t_ours += round(pages, &mut ours);
            t_bare += round(pages, &mut bare);
        }
        rounds += per;
    }
    let mb = (bytes * rounds) as f64 / 1e6;
    (mb / t_ours, mb / t_bare)
}

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/corpus");
    let mut corpus: Vec<(Url, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "html"))
        .map(|p| {
            let url = Url::parse(&format!(
                "http://corpus.test/{}",
                p.file_name().unwrap().to_string_lossy()
            ))
            .unwrap();
            (url, std::fs::read(p).unwrap())
        })
        .collect();
    corpus.sort_by(|a, b| a.0.cmp(&b.0));
    let shaped = vec![(
        Url::parse("http://site0.test/p/1.html").unwrap(),
        shaped_page(),
    )];
    let min = Duration::from_secs(6);
    for (name, pages) in [
        ("in-repo corpus", &corpus),
        ("20 KB page, 29 links", &shaped),
    ] {
        let bytes: usize = pages.iter().map(|(_, b)| b.len()).sum();
        let (ours, bare) = rates(
            pages,
            min,
            |u, b| {
                let meta = PageMeta {
                    url: u,
                    content_type: Some("text/html"),
                    x_robots_tag: None,
                    product_token: "linkgraph",
                };
                extract_links(meta, b, ParseLimits::default()).map_or(0, |e| e.links.len())
            },
            |_, b| bare_scan(b),
        );
        println!(
            "{name} ({} pages, {:.0} KB): extract_links {ours:.0} MB/s, bare lol_html scan {bare:.0} MB/s, ratio {:.2}",
            pages.len(),
            bytes as f64 / 1e3,
            ours / bare
        );
    }
}
