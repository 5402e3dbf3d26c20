//! Streaming link extraction from HTML: every `a[href]` and `area[href]` of a
//! page becomes a [`Link`] with its anchor text, rel flags and placement.
//!
//! Pure over bytes: no I/O, so it is unit-, property- and fuzz-testable.
//!
//! * Links resolve against `<base href>` (wherever it appears) or the page URL.
//! * Placement comes from lol_html's own view of the open elements (descendant
//!   selectors), so an implicitly closed `<nav>` never leaks into the rest of
//!   the page. Precedence when sections nest: comment > nav > aside > header >
//!   footer > content.
//! * `<meta name="robots" content="nofollow">` (or `none`) and an
//!   `X-Robots-Tag` header saying nofollow make every link on the page nofollow.
//! * The character set comes from the Content-Type header, a BOM, or a
//!   `<meta charset>`; without any, valid UTF-8 is read as UTF-8 and anything
//!   else as windows-1252, as browsers do.
//! * A page yields at most one edge per target URL: the first occurrence in
//!   document order. Self-links (e.g. `#top`) are not edges.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use encoding_rs::Encoding;
use linkgraph_core::{
    Link, LinkKind, Placement, Rel, canonicalize, normalize_anchor, parse_rel_attribute,
};
use lol_html::html_content::{Element, TextChunk};
use lol_html::{AsciiCompatibleEncoding, HtmlRewriter, MemorySettings, Settings, element, text};
use url::Url;

/// Bounds on what one page may cost.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Links kept per page; the rest are counted as dropped.
    pub max_links: usize,
    /// Characters of raw anchor text buffered per link before normalization.
    pub max_anchor_buffer: usize,
    /// Memory lol_html may use for its parsing buffers.
    pub max_parser_memory: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_links: 10_000,
            max_anchor_buffer: 4096,
            max_parser_memory: 8 << 20,
        }
    }
}

/// What a page is, besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct PageMeta<'a> {
    /// The canonical URL the body was fetched from.
    pub url: &'a Url,
    /// The Content-Type header, if any.
    pub content_type: Option<&'a str>,
    /// The X-Robots-Tag header values, if any.
    pub x_robots_tag: Option<&'a str>,
    /// Our product token, for user-agent-specific robots directives.
    pub product_token: &'a str,
}

/// The links of one page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    /// Unique by target, first occurrence in document order.
    pub links: Vec<Link>,
    /// The page said nofollow (meta robots or X-Robots-Tag).
    pub nofollow_page: bool,
    /// Links dropped: over the per-page cap, or with an unparseable URL.
    pub dropped: u32,
    /// Links skipped on purpose: javascript:, mailto:, tel:, data: and other
    /// non-HTTP schemes, and self-links.
    pub skipped: u32,
    /// The encoding the page was decoded with.
    pub encoding: &'static str,
    /// Set when parsing stopped early (the links found before are kept).
    pub truncated_by: Option<String>,
}

/// Why a page could not be parsed at all.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The page URL is not a crawlable http(s) URL.
    #[error("page url {0:?} is not an http(s) url")]
    BadPageUrl(String),
}

#[derive(Default)]
struct RawLink {
    href: String,
    rel: Rel,
    sections: u8,
    text: String,
    alt: String,
}

const SEC_NAV: u8 = 1;
const SEC_HEADER: u8 = 2;
const SEC_FOOTER: u8 = 4;
const SEC_ASIDE: u8 = 8;
const SEC_COMMENT: u8 = 16;

fn placement_of(sections: u8) -> Placement {
    if sections & SEC_COMMENT != 0 {
        Placement::Comment
    } else if sections & SEC_NAV != 0 {
        Placement::Nav
    } else if sections & SEC_ASIDE != 0 {
        Placement::Aside
    } else if sections & SEC_HEADER != 0 {
        Placement::Header
    } else if sections & SEC_FOOTER != 0 {
        Placement::Footer
    } else {
        Placement::Content
    }
}

#[derive(Default)]
struct State {
    raw: Vec<RawLink>,
    /// Index of the innermost open `<a href>`, for its text and image alts.
    current: Option<usize>,
    base_href: Option<String>,
    meta_nofollow: bool,
    over_cap: u32,
    max_links: usize,
    max_buf: usize,
    product_token: String,
}

impl State {
    fn push(&mut self, link: RawLink) -> bool {
        if self.raw.len() >= self.max_links {
            self.over_cap += 1;
            self.current = None;
            return false;
        }
        self.raw.push(link);
        true
    }
    fn mark(&mut self, section: u8) {
        // Section handlers run right after the link handler for the same
        // element, so the link in question is the last one pushed.
        if let Some(last) = self.raw.last_mut() {
            last.sections |= section;
        }
    }
}

fn attr(el: &Element<'_, '_>, name: &str) -> Option<String> {
    el.get_attribute(name)
        .map(|v| html_escape::decode_html_entities(&v).into_owned())
}

fn push_capped(buf: &mut String, s: &str, cap: usize) {
    if buf.len() >= cap {
        return;
    }
    let room = cap - buf.len();
    if s.len() <= room {
        buf.push_str(s);
    } else {
        let mut end = room;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        buf.push_str(&s[..end]);
    }
}

/// True when a robots directive list (meta content or X-Robots-Tag) says
/// nofollow for everyone or for `token`.
pub fn robots_directives_nofollow(value: &str, token: &str) -> bool {
    // X-Robots-Tag may be "googlebot: nofollow, noindex" or "nofollow"; an
    // agent prefix scopes the directives that follow it.
    let mut applies = true;
    for part in value.split(',') {
        let mut part = part.trim();
        if let Some((agent, rest)) = part.split_once(':') {
            let agent = agent.trim();
            if !agent.is_empty() && !agent.contains(' ') && !is_directive(agent) {
                applies = agent.eq_ignore_ascii_case(token);
                part = rest.trim();
            }
        }
        for d in part.split_ascii_whitespace() {
            if applies && (d.eq_ignore_ascii_case("nofollow") || d.eq_ignore_ascii_case("none")) {
                return true;
            }
        }
    }
    false
}

fn is_directive(s: &str) -> bool {
    [
        "unavailable_after",
        "max-snippet",
        "max-image-preview",
        "max-video-preview",
    ]
    .iter()
    .any(|d| d.eq_ignore_ascii_case(s))
}

/// Picks the encoding: header charset, then BOM, then (for lol_html to
/// refine on `<meta charset>`) UTF-8 when the bytes are valid UTF-8, else
/// windows-1252. Returns the encoding and whether a meta tag may override it.
fn sniff_encoding(body: &[u8], content_type: Option<&str>) -> (&'static Encoding, bool) {
    if let Some(enc) = content_type.and_then(charset_from_content_type) {
        return (enc, false);
    }
    if let Some((enc, _)) = Encoding::for_bom(body) {
        return (enc, false);
    }
    if let Some(enc) = meta_charset_prescan(body) {
        return (enc, false);
    }
    let probe = &body[..body.len().min(64 * 1024)];
    match std::str::from_utf8(probe) {
        Ok(_) => (encoding_rs::UTF_8, true),
        // A multi-byte character cut at the probe boundary is still UTF-8.
        Err(e) if e.error_len().is_none() && e.valid_up_to() + 4 > probe.len() => {
            (encoding_rs::UTF_8, true)
        }
        Err(_) => (encoding_rs::WINDOWS_1252, true),
    }
}

fn charset_from_content_type(ct: &str) -> Option<&'static Encoding> {
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("charset") {
            Encoding::for_label(v.trim().trim_matches(['"', '\'']).as_bytes())
        } else {
            None
        }
    })
}

/// The HTML spec's meta prescan, simplified: a `charset=` inside a `<meta`
/// tag in the first 1024 bytes.
fn meta_charset_prescan(body: &[u8]) -> Option<&'static Encoding> {
    let head = &body[..body.len().min(1024)];
    let lower: Vec<u8> = head.iter().map(u8::to_ascii_lowercase).collect();
    let mut from = 0;
    while let Some(pos) = find(&lower[from..], b"<meta") {
        let start = from + pos;
        let end = find(&lower[start..], b">").map_or(lower.len(), |e| start + e);
        let tag = &lower[start..end];
        if let Some(cs) = find(tag, b"charset=") {
            let v = &tag[cs + 8..];
            let v = v
                .strip_prefix(b"\"")
                .or_else(|| v.strip_prefix(b"'"))
                .unwrap_or(v);
            let len = v
                .iter()
                .position(|c| matches!(c, b'"' | b'\'' | b';' | b' ' | b'/' | b'>'))
                .unwrap_or(v.len());
            if let Some(enc) = Encoding::for_label(&v[..len]) {
                // A page that declares UTF-16 in ASCII is really ASCII-compatible.
                return Some(
                    if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
                        encoding_rs::UTF_8
                    } else {
                        enc
                    },
                );
            }
        }
        from = end.max(start + 1);
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn skipped_scheme(href: &str) -> bool {
    let h = href.trim_start();
    ["javascript:", "mailto:", "tel:", "data:"]
        .iter()
        .any(|s| h.len() >= s.len() && h[..s.len()].eq_ignore_ascii_case(s))
}

/// Extracts the links of an HTML page.
pub fn extract_links(
    meta: PageMeta<'_>,
    body: &[u8],
    limits: ParseLimits,
) -> Result<Extracted, ParseError> {
    if !matches!(meta.url.scheme(), "http" | "https") {
        return Err(ParseError::BadPageUrl(meta.url.to_string()));
    }
    let (encoding, meta_may_override) = sniff_encoding(body, meta.content_type);
    // UTF-16 and friends are not ASCII-compatible; transcode them first.
    let transcoded;
    let (bytes, ascii_enc) = match AsciiCompatibleEncoding::new(encoding) {
        Some(e) => (body, e),
        None => {
            let (text, _, _) = encoding.decode(body);
            transcoded = text.into_owned();
            (transcoded.as_bytes(), AsciiCompatibleEncoding::utf_8())
        }
    };

    let state = Rc::new(RefCell::new(State {
        max_links: limits.max_links,
        max_buf: limits.max_anchor_buffer,
        product_token: meta.product_token.to_ascii_lowercase(),
        ..State::default()
    }));

    let truncated_by = {
        let s_a = Rc::clone(&state);
        let s_area = Rc::clone(&state);
        let s_text = Rc::clone(&state);
        let s_img = Rc::clone(&state);
        let s_base = Rc::clone(&state);
        let s_meta = Rc::clone(&state);
        let mut settings = Settings::new()
            .with_encoding(ascii_enc)
            .with_strict(false)
            .with_adjust_charset_on_meta_tag(meta_may_override)
            .with_memory_settings(
                MemorySettings::new().with_max_allowed_memory_usage(limits.max_parser_memory),
            )
            .append_element_content_handler(element!("a[href]", move |el| {
                let mut st = s_a.borrow_mut();
                let link = RawLink {
                    href: attr(el, "href").unwrap_or_default(),
                    rel: attr(el, "rel")
                        .map(|r| parse_rel_attribute(&r))
                        .unwrap_or_default(),
                    ..RawLink::default()
                };
                st.current = if st.push(link) {
                    Some(st.raw.len() - 1)
                } else {
                    None
                };
                Ok(())
            }))
            .append_element_content_handler(element!("area[href]", move |el| {
                let mut st = s_area.borrow_mut();
                let link = RawLink {
                    href: attr(el, "href").unwrap_or_default(),
                    rel: attr(el, "rel")
                        .map(|r| parse_rel_attribute(&r))
                        .unwrap_or_default(),
                    alt: attr(el, "alt").unwrap_or_default(),
                    ..RawLink::default()
                };
                st.push(link);
                Ok(())
            }));
        for (selector, section) in [
            ("nav", SEC_NAV),
            ("header", SEC_HEADER),
            ("footer", SEC_FOOTER),
            ("aside", SEC_ASIDE),
            ("[id*=comment]", SEC_COMMENT),
            ("[class*=comment]", SEC_COMMENT),
        ] {
            for target in ["a[href]", "area[href]"] {
                let s = Rc::clone(&state);
                let sel = format!("{selector} {target}");
                settings = settings.append_element_content_handler(element!(sel, move |_el| {
                    s.borrow_mut().mark(section);
                    Ok(())
                }));
            }
        }
        let settings = settings
            .append_element_content_handler(text!("a[href]", move |t: &mut TextChunk<'_>| {
                let mut st = s_text.borrow_mut();
                let cap = st.max_buf;
                if let Some(i) = st.current
                    && let Some(link) = st.raw.get_mut(i)
                {
                    push_capped(&mut link.text, t.as_str(), cap);
                }
                Ok(())
            }))
            .append_element_content_handler(element!("a[href] img[alt]", move |el| {
                let mut st = s_img.borrow_mut();
                let cap = st.max_buf;
                let alt = attr(el, "alt").unwrap_or_default();
                if let Some(i) = st.current
                    && let Some(link) = st.raw.get_mut(i)
                {
                    if !link.alt.is_empty() {
                        push_capped(&mut link.alt, " ", cap);
                    }
                    push_capped(&mut link.alt, &alt, cap);
                }
                Ok(())
            }))
            .append_element_content_handler(element!("base[href]", move |el| {
                let mut st = s_base.borrow_mut();
                if st.base_href.is_none() {
                    st.base_href = attr(el, "href");
                }
                Ok(())
            }))
            .append_element_content_handler(element!("meta[name][content]", move |el| {
                let mut st = s_meta.borrow_mut();
                let name = attr(el, "name").unwrap_or_default();
                let scoped = name.eq_ignore_ascii_case("robots")
                    || name.eq_ignore_ascii_case(&st.product_token);
                if scoped {
                    let content = attr(el, "content").unwrap_or_default();
                    let token = st.product_token.clone();
                    st.meta_nofollow |= robots_directives_nofollow(&content, &token);
                }
                Ok(())
            }));

        let mut rewriter = HtmlRewriter::new(settings, |_: &[u8]| {});
        let mut err = None;
        for chunk in bytes.chunks(16 * 1024) {
            if let Err(e) = rewriter.write(chunk) {
                err = Some(e.to_string());
                break;
            }
        }
        match err {
            Some(e) => Some(e),
            None => rewriter.end().err().map(|e| e.to_string()),
        }
    };

    let st = Rc::try_unwrap(state)
        .map(RefCell::into_inner)
        .unwrap_or_default();
    let base = st
        .base_href
        .as_deref()
        .and_then(|b| meta.url.join(b.trim()).ok())
        .filter(|b| matches!(b.scheme(), "http" | "https"))
        .unwrap_or_else(|| meta.url.clone());
    let nofollow_page = st.meta_nofollow
        || meta
            .x_robots_tag
            .is_some_and(|v| robots_directives_nofollow(v, meta.product_token));

    let mut out = Extracted {
        nofollow_page,
        dropped: st.over_cap,
        encoding: encoding.name(),
        truncated_by,
        ..Extracted::default()
    };
    let source = meta.url.as_str();
    let mut seen: HashSet<String> = HashSet::new();
    for raw in st.raw {
        if skipped_scheme(&raw.href) {
            out.skipped += 1;
            continue;
        }
        let target = match canonicalize(&raw.href, Some(&base)) {
            Ok(u) => u,
            Err(linkgraph_core::UrlError::UnsupportedScheme { .. }) => {
                out.skipped += 1;
                continue;
            }
            Err(_) => {
                out.dropped += 1;
                continue;
            }
        };
        if target.as_str() == source {
            out.skipped += 1;
            continue;
        }
        if !seen.insert(target.as_str().to_owned()) {
            continue;
        }
        // Entities can straddle text chunks, so decode the joined text.
        let mut anchor = normalize_anchor(&html_escape::decode_html_entities(&raw.text));
        if anchor.is_empty() {
            anchor = normalize_anchor(&raw.alt);
        }
        let mut rel = raw.rel;
        if nofollow_page {
            rel |= Rel::NOFOLLOW;
        }
        out.links.push(Link {
            source_url: source.to_owned(),
            target_url: target.into(),
            anchor,
            rel,
            placement: placement_of(raw.sections),
            kind: LinkKind::Link,
        });
    }
    Ok(out)
}

/// The edge a redirect makes: from the redirecting URL to its target.
pub fn redirect_link(source: &Url, target: &Url) -> Link {
    Link {
        source_url: source.as_str().to_owned(),
        target_url: target.as_str().to_owned(),
        anchor: String::new(),
        rel: Rel::follow(),
        placement: Placement::Content,
        kind: LinkKind::Redirect,
    }
}

#[cfg(test)]
mod tests;

/// The URLs an XML sitemap lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sitemap {
    /// Canonical http(s) URLs from `<loc>` entries, at most the cap.
    pub urls: Vec<String>,
    /// A `<sitemapindex>`: the URLs are sitemaps themselves.
    pub is_index: bool,
    /// Entries skipped: unparseable, not http(s), or over the cap.
    pub skipped: u32,
}

/// The most URLs one sitemap may list (the sitemaps.org limit).
pub const MAX_SITEMAP_URLS: usize = 50_000;

/// Reads the `<loc>` entries of a sitemap or sitemap index (sitemaps.org),
/// relative to `base`. Tolerant: a truncated or malformed file yields the
/// entries found before the damage.
pub fn extract_sitemap(body: &[u8], base: &Url, max: usize) -> Sitemap {
    let text = String::from_utf8_lossy(body);
    let mut out = Sitemap {
        is_index: text.contains("<sitemapindex"),
        ..Sitemap::default()
    };
    let mut rest = text.as_ref();
    while let Some(start) = rest.find("<loc>") {
        let after = &rest[start + 5..];
        let Some(end) = after.find("</loc>") else {
            break;
        };
        let raw = after[..end].trim();
        let raw = raw
            .strip_prefix("<![CDATA[")
            .and_then(|r| r.strip_suffix("]]>"))
            .unwrap_or(raw);
        let decoded = html_escape::decode_html_entities(raw);
        match canonicalize(decoded.trim(), Some(base)) {
            Ok(u) if out.urls.len() < max => out.urls.push(u.into()),
            _ => out.skipped += 1,
        }
        rest = &after[end + 6..];
    }
    out
}

#[cfg(test)]
mod sitemap_tests {
    use super::*;

    fn base() -> Url {
        Url::parse("http://a.com/sitemap.xml").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn reads_urlsets_and_indexes() {
        let xml =
            br#"<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
            <url><loc> http://a.com/one?x=1&amp;y=2 </loc><lastmod>2026-01-01</lastmod></url>
            <url><loc><![CDATA[http://a.com/two]]></loc></url>
            <url><loc>mailto:x@y.z</loc></url><url><loc>/relative</loc></url></urlset>"#;
        let s = extract_sitemap(xml, &base(), MAX_SITEMAP_URLS);
        assert_eq!(
            s.urls,
            vec![
                "http://a.com/one?x=1&y=2",
                "http://a.com/two",
                "http://a.com/relative"
            ]
        );
        assert!(!s.is_index);
        assert_eq!(s.skipped, 1);
        let idx = extract_sitemap(
            b"<sitemapindex><sitemap><loc>http://a.com/s1.xml</loc></sitemap></sitemapindex>",
            &base(),
            10,
        );
        assert!(idx.is_index);
        assert_eq!(idx.urls, vec!["http://a.com/s1.xml"]);
    }

    #[test]
    fn is_bounded_and_tolerant() {
        let many: String = (0..100)
            .map(|i| format!("<url><loc>http://a.com/{i}</loc></url>"))
            .collect();
        let s = extract_sitemap(many.as_bytes(), &base(), 10);
        assert_eq!((s.urls.len(), s.skipped), (10, 90));
        let cut = extract_sitemap(
            b"<urlset><url><loc>http://a.com/1</loc></url><url><loc>http://a.com/2",
            &base(),
            10,
        );
        assert_eq!(cut.urls, vec!["http://a.com/1"]);
        assert!(
            extract_sitemap(&[0xff, 0x00, 0x3c], &base(), 10)
                .urls
                .is_empty()
        );
    }
}
