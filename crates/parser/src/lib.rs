//! Streaming link extraction from HTML: every `a[href]` and `area[href]` of a
//! page becomes a [`Link`] with its anchor text, rel flags and placement.
//!
//! Pure over bytes: no I/O, so it is unit-, property- and fuzz-testable.
//! Where a rule is not stated below, it follows what a browser with
//! scripting disabled builds from the same bytes:
//!
//! * `<noscript>` content is markup, not text: its links count and its
//!   image alts name the link around it.
//! * An `<a>` start tag closes an open link (nested links do not exist in
//!   the DOM); anchor text is character data only, never script, style,
//!   textarea or title content; character references are decoded by the
//!   HTML spec's rules (legacy names without `;`, C1 numbers through
//!   windows-1252, the attribute exception for `&name=`).
//! * `<template>` content is inert (never rendered), so its links are not
//!   the page's.
//! * Links resolve against `<base href>` (wherever it appears) or the page URL.
//! * Placement is the nearest enclosing nav, aside, header, footer or comment
//!   container; a header or footer inside a comment is that comment's. A
//!   comment container is an element whose class or id has a comment word
//!   ("comments", "comment-body") and no flag word ("comment-count",
//!   "f_comment_nofollow_on"); flags on `<html>` and `<body>` are ignored.
//!   An end tag closes the nearest open element of its name and every
//!   element opened after it (as lol_html keeps its open elements), so an
//!   implicitly closed `<nav>` never leaks into the rest of the page.
//! * `<meta name="robots" content="nofollow">` (or `none`) and an
//!   `X-Robots-Tag` header saying nofollow make every link on the page nofollow.
//! * The character set comes from the Content-Type header, a BOM, or a
//!   `<meta charset>` (the first one that names an ASCII-compatible
//!   encoding, from where it is); without any, valid UTF-8 is read as
//!   UTF-8 and anything else as windows-1252, as browsers do.
//! * A page yields at most one edge per target URL: the first occurrence in
//!   document order. Self-links (e.g. `#top`) are not edges.
//! * Known, intended differences from a DOM: an anchor keeps at most
//!   [`linkgraph_core::MAX_ANCHOR_CHARS`] characters; an image link with no
//!   text takes the alts of all its images joined by spaces; a link cut by a
//!   misnested end tag (`<a><p></a>`) is not reopened by the adoption agency;
//!   an `<a>` inside SVG or MathML closes the open link (the DOM keeps an
//!   HTML link open around a foreign one). Text in a CDATA section (SVG,
//!   MathML) is character data, as in the DOM.
//!
//! # Layout
//! * this file: link extraction ([`extract_links`]) over the tokens of
//!   `scan` (our tokenizer: a scan of the bytes, a tenth of the cost of
//!   lol_html with handlers), sitemaps, redirects;
//! * `differential` (tests): the stream checked against an HTML5 DOM;
//! * `tests`: unit and property tests.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;

use encoding_rs::Encoding;
use linkgraph_core::{
    Link, LinkKind, Placement, Rel, canonicalize, normalize_anchor, parse_rel_attribute,
};
use url::Url;

use scan::{Scanner, StartTag, Token};

mod scan;

/// Bounds on what one page may cost.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Links kept per page; the rest are counted as dropped.
    pub max_links: usize,
    /// Characters of raw anchor text buffered per link before normalization.
    pub max_anchor_buffer: usize,
    /// Memory the stack of open elements may use; a page nested deeper
    /// stops parsing there (its links found before are kept).
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
    /// The page said noindex (meta robots or X-Robots-Tag): it is out of
    /// the index, so its links do not count as backlinks.
    pub noindex_page: bool,
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
    placement: Placement,
    text: String,
    alt: String,
}

/// An open element that can decide where a link sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SectionKind {
    Nav,
    Aside,
    Header,
    Footer,
    /// `<article>` or `<section>`: what a header or footer belongs to.
    Sectioning,
    /// Any other element, open here only for its comment marker.
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Section {
    kind: SectionKind,
    /// Its class or id marks a comment (see [`is_comment_marker`]).
    comment: bool,
}

/// Where a link sits, from the open sections, innermost first: the nearest
/// nav, aside, header, footer or comment wins. A header or footer inside a
/// comment (up to its nearest article, section, nav or aside) is that
/// comment's own byline, so it stays a comment.
fn placement_of(open: &[Section]) -> Placement {
    for (i, s) in open.iter().enumerate().rev() {
        if s.comment {
            return Placement::Comment;
        }
        match s.kind {
            SectionKind::Nav => return Placement::Nav,
            SectionKind::Aside => return Placement::Aside,
            SectionKind::Header | SectionKind::Footer => {
                for outer in open[..i].iter().rev() {
                    if outer.comment {
                        return Placement::Comment;
                    }
                    if outer.kind != SectionKind::Other {
                        break;
                    }
                }
                return if s.kind == SectionKind::Header {
                    Placement::Header
                } else {
                    Placement::Footer
                };
            }
            SectionKind::Sectioning | SectionKind::Other => {}
        }
    }
    Placement::Content
}

/// Words that name a comment container in a class or id ("comments",
/// "comment-body", "commentlist", "user_comment_text").
fn is_comment_word(w: &str) -> bool {
    const SUFFIXES: [&str; 14] = [
        "",
        "s",
        "list",
        "body",
        "box",
        "area",
        "section",
        "thread",
        "wrap",
        "wrapper",
        "container",
        "content",
        "text",
        "item",
    ];
    w.strip_prefix("comment")
        .is_some_and(|rest| SUFFIXES.contains(&rest))
}

/// Words that make a class a flag about comments, not a comment container:
/// `f_comment_nofollow_on`, `comment-count`, `comments-link`, `no-comments`,
/// and widgets listing recent comments elsewhere (`widget_recent_comments`).
fn is_flag_word(w: &str) -> bool {
    const FLAGS: [&str; 21] = [
        "no", "has", "with", "count", "counts", "number", "num", "link", "links", "closed", "open",
        "on", "off", "enabled", "disabled", "nofollow", "icon", "button", "recent", "latest",
        "widget",
    ];
    FLAGS.contains(&w)
}

/// True when a class list or id marks a comment container: one of its
/// tokens, split into words at `-`, `_` and other punctuation, has a comment
/// word and no flag word. `commented`, `comment-count` and
/// `f_comment_nofollow_on` are flags, not containers.
fn is_comment_marker(value: &str) -> bool {
    value.split_ascii_whitespace().any(|token| {
        let token = token.to_ascii_lowercase();
        let words = || token.split(|c: char| !c.is_ascii_alphanumeric());
        words().any(is_comment_word) && !words().any(is_flag_word)
    })
}

#[derive(Default)]
struct State {
    raw: Vec<RawLink>,
    /// Index of the open `<a href>`, for its text and image alts. An `<a>`
    /// start tag closes it, as the HTML tree builder does with nested links.
    current: Option<usize>,
    /// Open sections, outermost first.
    open: Vec<Section>,
    /// Open `<template>` elements: their content is inert, not part of the
    /// page, so links in it are not links of the page.
    templates: u32,
    base_href: Option<String>,
    meta_nofollow: bool,
    meta_noindex: bool,
    over_cap: u32,
    max_links: usize,
    max_buf: usize,
    product_token: String,
}

impl State {
    fn push(&mut self, link: RawLink) -> Option<usize> {
        if self.raw.len() >= self.max_links {
            self.over_cap += 1;
            return None;
        }
        self.raw.push(link);
        Some(self.raw.len() - 1)
    }
}

/// Text of the page in `enc`, as UTF-8 (malformed bytes become U+FFFD).
fn decode<'a>(enc: &'static Encoding, bytes: &'a [u8]) -> Cow<'a, str> {
    if enc == encoding_rs::UTF_8 {
        String::from_utf8_lossy(bytes)
    } else {
        enc.decode_without_bom_handling(bytes).0
    }
}

/// The value of the start tag's attribute `name`, its character references
/// decoded by the HTML spec's attribute rules (`?a=1&copy=2` keeps `&copy`).
fn attr(scan: &Scanner<'_>, enc: &'static Encoding, name: &[u8]) -> Option<String> {
    let v = scan.attr(name)?;
    Some(htmlize::unescape_attribute(decode(enc, v)).into_owned())
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
    robots_directive(value, token, &["nofollow", "none"])
}

/// True when a robots directive list says noindex for everyone or for
/// `token`.
pub fn robots_directives_noindex(value: &str, token: &str) -> bool {
    robots_directive(value, token, &["noindex", "none"])
}

/// True when `value` holds one of `names` for everyone or for `token`.
fn robots_directive(value: &str, token: &str, names: &[&str]) -> bool {
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
            if applies && names.iter().any(|n| d.eq_ignore_ascii_case(n)) {
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

/// Picks the encoding: header charset, then BOM, then (for a
/// `<meta charset>` to refine) UTF-8 when the bytes are valid UTF-8, else
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
    let h = href.trim_start().as_bytes();
    ["javascript:", "mailto:", "tel:", "data:"].iter().any(|s| {
        h.get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s.as_bytes()))
    })
}

/// The most sections tracked as open at once; deeper ones do not count.
const MAX_OPEN_SECTIONS: usize = 256;

/// An element on the stack of open elements: what its end undoes.
#[derive(Debug, Clone, Copy)]
struct Open {
    /// Where its lower-case name starts in [`Walk::names`] (it ends where
    /// the next element's starts).
    name_at: usize,
    /// Its name's hash ([`Walk::open_names`]).
    hash: u64,
    /// The open sections' count before it opened one.
    section: Option<usize>,
    /// The link it opened.
    link: Option<usize>,
    template: bool,
}

/// The extraction's state over the scanner's tokens.
struct Walk {
    st: State,
    /// The open elements (all but void ones), outermost first, as lol_html
    /// keeps them: an end tag closes the nearest open element of its name
    /// and every element opened after it; an end tag with no open element
    /// of its name is ignored.
    stack: Vec<Open>,
    names: Vec<u8>,
    /// How many elements are open under each name's hash (keyed per
    /// process, so a page cannot choose collisions): an end tag of a name
    /// with none open is rejected without walking the stack (a page of
    /// deep nesting and stray end tags would make that quadratic).
    open_names: hashbrown::HashMap<u64, u32>,
    name_hasher: hashbrown::DefaultHashBuilder,
    /// The encoding of text and attribute values from here on.
    enc: &'static Encoding,
    /// A `<meta>` may still set the encoding (no header or BOM did; only
    /// the first that names one does).
    meta_may_override: bool,
    max_memory: usize,
    /// The current tag's name in lower case.
    tag: Vec<u8>,
}

impl Walk {
    /// A start tag. Err when the open elements pass the memory limit.
    fn start(&mut self, scan: &Scanner<'_>, t: StartTag<'_>) -> Result<(), String> {
        self.tag.clear();
        self.tag.extend(t.name.iter().map(u8::to_ascii_lowercase));
        let mut open = Open {
            name_at: self.names.len(),
            hash: self.name_hasher.hash_one(self.tag.as_slice()),
            section: self.open_section(scan, t.has_content),
            link: None,
            template: false,
        };
        let enc = self.enc;
        let st = &mut self.st;
        match self.tag.as_slice() {
            b"a" => {
                // An <a> start tag closes an open link (the tree builder's
                // adoption agency): text after a nested link is nobody's.
                st.current = None;
                if st.templates == 0
                    && let Some(href) = attr(scan, enc, b"href")
                {
                    let link = RawLink {
                        href,
                        rel: rel_of(scan, enc),
                        placement: placement_of(&st.open),
                        ..RawLink::default()
                    };
                    if let Some(i) = st.push(link)
                        && t.has_content
                    {
                        st.current = Some(i);
                        open.link = Some(i);
                    }
                }
            }
            b"area" if st.templates == 0 => {
                if let Some(href) = attr(scan, enc, b"href") {
                    st.push(RawLink {
                        href,
                        rel: rel_of(scan, enc),
                        alt: attr(scan, enc, b"alt").unwrap_or_default(),
                        placement: placement_of(&st.open),
                        ..RawLink::default()
                    });
                }
            }
            b"img" => {
                let cap = st.max_buf;
                if let Some(i) = st.current
                    && let Some(alt) = attr(scan, enc, b"alt")
                    && let Some(link) = st.raw.get_mut(i)
                {
                    if !link.alt.is_empty() {
                        push_capped(&mut link.alt, " ", cap);
                    }
                    push_capped(&mut link.alt, &alt, cap);
                }
            }
            b"template" if t.has_content => {
                st.templates += 1;
                open.template = true;
            }
            b"base" if st.base_href.is_none() => st.base_href = attr(scan, enc, b"href"),
            b"meta" => self.meta(scan),
            _ => {}
        }
        if t.has_content {
            self.names.extend_from_slice(&self.tag);
            *self.open_names.entry(open.hash).or_insert(0) += 1;
            self.stack.push(open);
            let used = self.names.len() + self.stack.len() * std::mem::size_of::<Open>();
            if used > self.max_memory {
                return Err(format!(
                    "open elements need more than the parser's {} bytes",
                    self.max_memory
                ));
            }
        }
        Ok(())
    }

    /// Opens the section the element of the current tag is, if any: a
    /// nav, aside, header, footer, article or section, or an element whose
    /// class or id marks a comment ([`is_comment_marker`]). Returns the
    /// open sections' count before it.
    fn open_section(&mut self, scan: &Scanner<'_>, has_content: bool) -> Option<usize> {
        let kind = match self.tag.as_slice() {
            b"nav" => SectionKind::Nav,
            b"aside" => SectionKind::Aside,
            b"header" => SectionKind::Header,
            b"footer" => SectionKind::Footer,
            b"article" | b"section" => SectionKind::Sectioning,
            // Page-wide flags ("f_comment_nofollow_on") live on these; a
            // link's own class says nothing of its place.
            b"html" | b"head" | b"body" | b"a" | b"area" => return None,
            _ => SectionKind::Other,
        };
        let comment = [b"class".as_slice(), b"id"].iter().any(|name| {
            scan.attr(name).is_some_and(|v| {
                // Decoded only when it may hold a comment word.
                let maybe =
                    v.contains(&b'&') || v.windows(6).any(|w| w.eq_ignore_ascii_case(b"omment"));
                maybe && is_comment_marker(&htmlize::unescape_attribute(decode(self.enc, v)))
            })
        });
        if (kind == SectionKind::Other && !comment)
            || !has_content
            || self.st.open.len() >= MAX_OPEN_SECTIONS
        {
            return None;
        }
        self.st.open.push(Section { kind, comment });
        Some(self.st.open.len() - 1)
    }

    /// A `<meta>`: robots directives for us, and the page's encoding.
    fn meta(&mut self, scan: &Scanner<'_>) {
        let enc = self.enc;
        if let (Some(name), Some(content)) = (attr(scan, enc, b"name"), attr(scan, enc, b"content"))
        {
            let st = &mut self.st;
            if name.eq_ignore_ascii_case("robots") || name.eq_ignore_ascii_case(&st.product_token) {
                st.meta_nofollow |= robots_directives_nofollow(&content, &st.product_token);
                st.meta_noindex |= robots_directives_noindex(&content, &st.product_token);
            }
        }
        if !self.meta_may_override {
            return;
        }
        let declared = scan
            .attr(b"charset")
            .and_then(Encoding::for_label_no_replacement)
            .or_else(|| {
                let http_equiv = scan.attr(b"http-equiv")?;
                if !http_equiv.eq_ignore_ascii_case(b"content-type") {
                    return None;
                }
                charset_from_content_type(&decode(enc, scan.attr(b"content")?))
            })
            .filter(|e| e.is_ascii_compatible() && *e != encoding_rs::REPLACEMENT);
        if let Some(e) = declared {
            self.enc = e;
            self.meta_may_override = false;
        }
    }

    /// An end tag: closes the nearest open element of its name and every
    /// element opened after it (lol_html runs their end-tag handlers too,
    /// so the sections follow its open elements).
    fn end(&mut self, name: &[u8]) {
        self.tag.clear();
        self.tag.extend(name.iter().map(u8::to_ascii_lowercase));
        let hash = self.name_hasher.hash_one(self.tag.as_slice());
        if !self.open_names.contains_key(&hash) {
            return;
        }
        let Some(at) = (0..self.stack.len())
            .rev()
            .find(|&i| self.stack[i].hash == hash && self.name(i) == self.tag)
        else {
            return;
        };
        self.names.truncate(self.stack[at].name_at);
        for o in self.stack.drain(at..) {
            if let Some(n) = self.open_names.get_mut(&o.hash) {
                *n -= 1;
                if *n == 0 {
                    self.open_names.remove(&o.hash);
                }
            }
            let st = &mut self.st;
            if let Some(depth) = o.section {
                st.open.truncate(depth);
            }
            if o.link.is_some() && st.current == o.link {
                st.current = None;
            }
            if o.template {
                st.templates = st.templates.saturating_sub(1);
            }
        }
    }

    /// The lower-case name of open element `i`.
    fn name(&self, i: usize) -> &[u8] {
        let to = self
            .stack
            .get(i + 1)
            .map_or(self.names.len(), |o| o.name_at);
        &self.names[self.stack[i].name_at..to]
    }

    /// Character data: anchor text when a link is open.
    fn text(&mut self, raw: &[u8]) {
        let st = &mut self.st;
        let Some(i) = st.current else {
            return;
        };
        let cap = st.max_buf;
        // Room for a reference cut at the cap to still decode; references
        // are decoded per text node, as the tokenizer does.
        let raw = &raw[..raw.len().min(cap.saturating_mul(4) + 64)];
        let mut text = String::new();
        push_capped(&mut text, &decode(self.enc, raw), cap + 64);
        let decoded = htmlize::unescape(text);
        if let Some(link) = st.raw.get_mut(i) {
            push_capped(&mut link.text, &decoded, cap);
        }
    }
}

/// The rel attribute of the current tag.
fn rel_of(scan: &Scanner<'_>, enc: &'static Encoding) -> Rel {
    attr(scan, enc, b"rel")
        .map(|r| parse_rel_attribute(&r))
        .unwrap_or_default()
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
    let (bytes, enc) = if encoding.is_ascii_compatible() {
        (body, encoding)
    } else {
        let (text, _, _) = encoding.decode(body);
        transcoded = text.into_owned();
        (transcoded.as_bytes(), encoding_rs::UTF_8)
    };
    let mut walk = Walk {
        st: State {
            max_links: limits.max_links,
            max_buf: limits.max_anchor_buffer,
            product_token: meta.product_token.to_ascii_lowercase(),
            ..State::default()
        },
        stack: Vec::new(),
        names: Vec::new(),
        open_names: hashbrown::HashMap::new(),
        name_hasher: hashbrown::DefaultHashBuilder::default(),
        enc,
        meta_may_override,
        max_memory: limits.max_parser_memory,
        tag: Vec::new(),
    };
    let mut scan = Scanner::new(bytes);
    let mut truncated_by = None;
    while let Some(token) = scan.next_token() {
        match token {
            Token::Start(t) => {
                if let Err(e) = walk.start(&scan, t) {
                    truncated_by = Some(e);
                    break;
                }
            }
            Token::End(name) => walk.end(name),
            Token::Text { raw, data: true } => walk.text(raw),
            Token::Text { data: false, .. } => {}
        }
    }
    let st = walk.st;
    let mut out = finish(meta, st.raw, st.base_href.as_deref(), st.meta_nofollow);
    out.noindex_page = st.meta_noindex
        || meta
            .x_robots_tag
            .is_some_and(|v| robots_directives_noindex(v, meta.product_token));
    out.dropped += st.over_cap;
    out.encoding = encoding.name();
    out.truncated_by = truncated_by;
    Ok(out)
}

/// Turns the raw links of a page, in document order, into its edges:
/// resolved against the base, canonical, one per target (the first), with
/// no self-links or non-HTTP schemes, anchors normalized, and page-level
/// nofollow applied.
fn finish(
    meta: PageMeta<'_>,
    raw_links: Vec<RawLink>,
    base_href: Option<&str>,
    meta_nofollow: bool,
) -> Extracted {
    let base = base_href
        .and_then(|b| meta.url.join(b.trim()).ok())
        .filter(|b| matches!(b.scheme(), "http" | "https"))
        .unwrap_or_else(|| meta.url.clone());
    let nofollow_page = meta_nofollow
        || meta
            .x_robots_tag
            .is_some_and(|v| robots_directives_nofollow(v, meta.product_token));

    // Sized for every raw link: most become edges.
    let mut out = Extracted {
        nofollow_page,
        links: Vec::with_capacity(raw_links.len()),
        ..Extracted::default()
    };
    let source = meta.url.as_str();
    let seen_hasher = std::hash::RandomState::new();
    let mut seen: HashMap<u64, usize> = HashMap::with_capacity(raw_links.len());
    for raw in raw_links {
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
        // One per target: the first. Keyed by the target's hash, checked
        // against the stored link, so no URL is copied to be remembered.
        let h = seen_hasher.hash_one(target.as_str());
        match seen.get(&h) {
            Some(&i) if out.links[i].target_url == target.as_str() => continue,
            Some(_) if out.links.iter().any(|l| l.target_url == target.as_str()) => continue,
            Some(_) => {}
            None => {
                seen.insert(h, out.links.len());
            }
        }
        let mut anchor = normalize_anchor(&raw.text);
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
            placement: raw.placement,
            kind: LinkKind::Link,
        });
    }
    out
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

#[cfg(test)]
mod differential;

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
        let decoded = htmlize::unescape(raw);
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
