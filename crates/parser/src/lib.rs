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
//!   The open elements are lol_html's, so an implicitly closed `<nav>`
//!   never leaks into the rest of the page.
//! * `<meta name="robots" content="nofollow">` (or `none`) and an
//!   `X-Robots-Tag` header saying nofollow make every link on the page nofollow.
//! * The character set comes from the Content-Type header, a BOM, or a
//!   `<meta charset>`; without any, valid UTF-8 is read as UTF-8 and anything
//!   else as windows-1252, as browsers do.
//! * A page yields at most one edge per target URL: the first occurrence in
//!   document order. Self-links (e.g. `#top`) are not edges.
//! * Known, intended differences from a DOM: an anchor keeps at most
//!   [`linkgraph_core::MAX_ANCHOR_CHARS`] characters; an image link with no
//!   text takes the alts of all its images joined by spaces; a link cut by a
//!   misnested end tag (`<a><p></a>`) is not reopened by the adoption agency.
//!
//! # Layout
//! * this file: link extraction ([`extract_links`]), sitemaps, redirects;
//! * `differential` (tests): the stream checked against an HTML5 DOM;
//! * `tests`: unit and property tests.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::rc::Rc;

use encoding_rs::Encoding;
use linkgraph_core::{
    Link, LinkKind, Placement, Rel, canonicalize, normalize_anchor, parse_rel_attribute,
};
use lol_html::html_content::{Element, TextChunk, TextType};
use lol_html::{
    AsciiCompatibleEncoding, ElementContentHandlers, HandlerResult, HtmlRewriter, MemorySettings,
    Selector, Settings, end_tag,
};
use url::Url;

/// Types an element handler closure, as lol_html's `element!` does.
fn element_handler<'h, T>(h: T) -> T
where
    T: FnMut(&mut Element<'_, '_>) -> HandlerResult + 'h,
{
    h
}

/// Types a text handler closure, as lol_html's `text!` does.
fn text_handler<'h, T>(h: T) -> T
where
    T: FnMut(&mut TextChunk<'_>) -> HandlerResult + 'h,
{
    h
}

/// lol_html's `element!` and `text!`, with the selector parsed once per
/// process instead of once per page (parsing the selectors was a tenth of
/// a page's extraction time).
macro_rules! on {
    ($kind:ident, $hint:ident, $sel:literal, $handler:expr) => {{
        static SELECTOR: std::sync::LazyLock<Selector> = std::sync::LazyLock::new(|| {
            $sel.parse()
                .unwrap_or_else(|e| panic!("selector {:?}: {e}", $sel))
        });
        (
            std::borrow::Cow::Borrowed(&*SELECTOR),
            ElementContentHandlers::default().$kind($hint($handler)),
        )
    }};
}

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
    /// Raw text of the text node being read inside the current link; its
    /// character references are decoded once the node ends.
    pending: String,
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

/// An attribute value with its character references decoded by the HTML
/// spec's attribute rules (`?a=1&copy=2` keeps `&copy`).
fn attr(el: &Element<'_, '_>, name: &str) -> Option<String> {
    el.get_attribute(name)
        .map(|v| htmlize::unescape_attribute(v).into_owned())
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
    let h = href.trim_start().as_bytes();
    ["javascript:", "mailto:", "tel:", "data:"].iter().any(|s| {
        h.get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s.as_bytes()))
    })
}

/// What a page's bytes may hold that costs a pass or a check to handle.
/// A false positive only costs speed; a false negative is impossible,
/// since tag names and the class/id words are ASCII in every
/// ASCII-compatible encoding.
#[derive(Debug, Clone, Copy, Default)]
struct Present {
    /// A `<noscript>` tag (in any case): its content is unwrapped first.
    noscript: bool,
    /// The bytes "omment": only then are class and id attributes read for
    /// comment markers (reading an element's attributes parses them all).
    comment: bool,
}

impl Present {
    /// One pass over the page's `<` and one substring search (both
    /// memchr's, with SIMD).
    fn scan(bytes: &[u8]) -> Present {
        let noscript = memchr::memchr_iter(b'<', bytes).any(|i| {
            bytes
                .get(i + 1..i + 9)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"noscript"))
        });
        Present {
            noscript,
            comment: memchr::memmem::find(bytes, b"omment").is_some(),
        }
    }
}

/// A crawler runs no scripts, so it reads `<noscript>` content as markup,
/// as a browser with scripting disabled does. lol_html (like a browser with
/// scripting on) reads it as raw text; this pass drops the noscript tags and
/// keeps their content verbatim, so the main pass parses it as markup.
/// `None` when the page has no noscript, or the pass failed (then the page
/// is parsed as it is).
fn unwrap_noscript(
    bytes: &[u8],
    encoding: AsciiCompatibleEncoding,
    meta_may_override: bool,
    max_memory: usize,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let settings = Settings::new()
        .with_encoding(encoding)
        .with_strict(false)
        .with_adjust_charset_on_meta_tag(meta_may_override)
        .with_memory_settings(MemorySettings::new().with_max_allowed_memory_usage(max_memory))
        .append_element_content_handler(on!(element, element_handler, "noscript", |el| {
            el.remove_and_keep_content();
            Ok(())
        }));
    let mut rewriter = HtmlRewriter::new(settings, |c: &[u8]| out.extend_from_slice(c));
    for chunk in bytes.chunks(16 * 1024) {
        rewriter.write(chunk).ok()?;
    }
    rewriter.end().ok()?;
    Some(out)
}

/// The most sections tracked as open at once; deeper ones do not count.
const MAX_OPEN_SECTIONS: usize = 256;

/// The parse's state, shared by its handlers.
type Shared = Rc<RefCell<State>>;

/// Opens the section `el` (tag `tag`) is, if any: a nav, aside, header,
/// footer, article or section, or (when the page has the word "omment"
/// at all, `comments`) an element whose class or id contains it and marks
/// a comment ([`is_comment_marker`]). Its end tag closes it: lol_html runs
/// the end-tag handlers of implicitly closed elements too, so the open
/// sections follow its open elements.
fn open_section(
    state: &Shared,
    el: &mut Element<'_, '_>,
    tag: &str,
    comments: bool,
) -> HandlerResult {
    let kind = match tag {
        "nav" => SectionKind::Nav,
        "aside" => SectionKind::Aside,
        "header" => SectionKind::Header,
        "footer" => SectionKind::Footer,
        "article" | "section" => SectionKind::Sectioning,
        // Page-wide flags ("f_comment_nofollow_on") live on these; a
        // link's own class says nothing of its place.
        "html" | "head" | "body" | "a" | "area" => return Ok(()),
        _ => SectionKind::Other,
    };
    let comment = comments && {
        let (class, id) = (el.get_attribute("class"), el.get_attribute("id"));
        let values = || class.iter().chain(&id);
        // Any other element counts only when a value has "omment" as it
        // is in the bytes (as lol_html's `[class*=omment]` matched).
        (kind != SectionKind::Other || values().any(|v| v.contains("omment")))
            && values().any(|v| is_comment_marker(v))
    };
    if (kind == SectionKind::Other && !comment) || !el.can_have_content() {
        return Ok(());
    }
    let depth = {
        let mut st = state.borrow_mut();
        if st.open.len() >= MAX_OPEN_SECTIONS {
            return Ok(());
        }
        st.open.push(Section { kind, comment });
        st.open.len() - 1
    };
    let s = Rc::clone(state);
    el.on_end_tag(end_tag!(move |_| {
        s.borrow_mut().open.truncate(depth);
        Ok(())
    }))
}

/// A `<template>`: its content is inert until its end tag.
fn open_template(state: &Shared, el: &mut Element<'_, '_>) -> HandlerResult {
    if !el.can_have_content() {
        return Ok(());
    }
    state.borrow_mut().templates += 1;
    let s = Rc::clone(state);
    el.on_end_tag(end_tag!(move |_| {
        let mut st = s.borrow_mut();
        st.templates = st.templates.saturating_sub(1);
        Ok(())
    }))
}

/// An `<a>`: it closes an open link (the tree builder's adoption agency:
/// text after a nested link is nobody's), and with an href opens one,
/// whose text and image alts follow until its end tag.
fn open_link(state: &Shared, el: &mut Element<'_, '_>) -> HandlerResult {
    let mut st = state.borrow_mut();
    st.current = None;
    st.pending.clear();
    if st.templates > 0 {
        return Ok(());
    }
    let Some(href) = attr(el, "href") else {
        return Ok(());
    };
    let link = RawLink {
        href,
        rel: attr(el, "rel")
            .map(|r| parse_rel_attribute(&r))
            .unwrap_or_default(),
        placement: placement_of(&st.open),
        ..RawLink::default()
    };
    let Some(i) = st.push(link) else {
        return Ok(());
    };
    if !el.can_have_content() {
        return Ok(());
    }
    st.current = Some(i);
    drop(st);
    let s = Rc::clone(state);
    el.on_end_tag(end_tag!(move |_| {
        let mut st = s.borrow_mut();
        if st.current == Some(i) {
            st.current = None;
        }
        Ok(())
    }))
}

/// An `<area href>`: a link whose anchor is its alt.
fn area_link(state: &Shared, el: &mut Element<'_, '_>) -> HandlerResult {
    let mut st = state.borrow_mut();
    if st.templates > 0 {
        return Ok(());
    }
    let Some(href) = attr(el, "href") else {
        return Ok(());
    };
    let link = RawLink {
        href,
        rel: attr(el, "rel")
            .map(|r| parse_rel_attribute(&r))
            .unwrap_or_default(),
        alt: attr(el, "alt").unwrap_or_default(),
        placement: placement_of(&st.open),
        ..RawLink::default()
    };
    st.push(link);
    Ok(())
}

/// An `<img alt>` inside the open link: its alt joins the link's.
fn image_alt(state: &Shared, el: &mut Element<'_, '_>) -> HandlerResult {
    let mut st = state.borrow_mut();
    let cap = st.max_buf;
    if let Some(i) = st.current
        && let Some(alt) = attr(el, "alt")
        && let Some(link) = st.raw.get_mut(i)
    {
        if !link.alt.is_empty() {
            push_capped(&mut link.alt, " ", cap);
        }
        push_capped(&mut link.alt, &alt, cap);
    }
    Ok(())
}

/// A `<meta name content>` for robots or for our product token.
fn robots_meta(state: &Shared, el: &mut Element<'_, '_>) -> HandlerResult {
    let mut st = state.borrow_mut();
    let (Some(name), Some(content)) = (attr(el, "name"), attr(el, "content")) else {
        return Ok(());
    };
    let scoped =
        name.eq_ignore_ascii_case("robots") || name.eq_ignore_ascii_case(&st.product_token);
    if scoped {
        let token = st.product_token.clone();
        st.meta_nofollow |= robots_directives_nofollow(&content, &token);
        st.meta_noindex |= robots_directives_noindex(&content, &token);
    }
    Ok(())
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
    // Unwrapping noscript keeps every other tag, so `present` holds after.
    let present = Present::scan(bytes);
    let unwrapped = if present.noscript {
        unwrap_noscript(
            bytes,
            ascii_enc,
            meta_may_override,
            limits.max_parser_memory,
        )
    } else {
        None
    };
    let bytes = unwrapped.as_deref().unwrap_or(bytes);

    let state = Rc::new(RefCell::new(State {
        max_links: limits.max_links,
        max_buf: limits.max_anchor_buffer,
        product_token: meta.product_token.to_ascii_lowercase(),
        ..State::default()
    }));

    let truncated_by = {
        let s_el = Rc::clone(&state);
        let s_text = Rc::clone(&state);
        let comments = present.comment;
        // One handler sees every element and dispatches on its tag name: a
        // selector per kind of element made lol_html build and compile a
        // selector program for every page (an eighth of an extraction),
        // which cost more than this call per element does.
        let element = element_handler(move |el| {
            let tag = el.tag_name();
            open_section(&s_el, el, &tag, comments)?;
            match tag.as_str() {
                "a" => open_link(&s_el, el),
                "area" => area_link(&s_el, el),
                "img" => image_alt(&s_el, el),
                "template" => open_template(&s_el, el),
                "base" => {
                    let mut st = s_el.borrow_mut();
                    if st.base_href.is_none() {
                        st.base_href = attr(el, "href");
                    }
                    Ok(())
                }
                "meta" => robots_meta(&s_el, el),
                _ => Ok(()),
            }
        });
        let settings = Settings::new()
            .with_encoding(ascii_enc)
            .with_strict(false)
            .with_adjust_charset_on_meta_tag(meta_may_override)
            .with_memory_settings(
                MemorySettings::new().with_max_allowed_memory_usage(limits.max_parser_memory),
            )
            .append_element_content_handler(on!(element, element_handler, "*", element));
        let settings = settings.append_element_content_handler(on!(
            text,
            text_handler,
            "a[href]",
            move |t: &mut TextChunk<'_>| {
                // Only character data is anchor text: not script, style,
                // textarea or title content.
                if t.text_type() != TextType::Data {
                    return Ok(());
                }
                let mut st = s_text.borrow_mut();
                let Some(i) = st.current else {
                    return Ok(());
                };
                let cap = st.max_buf;
                // Room for a reference cut at the cap to still decode.
                push_capped(&mut st.pending, t.as_str(), cap + 64);
                if t.last_in_text_node() {
                    // References are decoded per text node, as the
                    // tokenizer does: one never spans two nodes.
                    let raw = std::mem::take(&mut st.pending);
                    let decoded = htmlize::unescape(raw);
                    if let Some(link) = st.raw.get_mut(i) {
                        push_capped(&mut link.text, &decoded, cap);
                    }
                }
                Ok(())
            }
        ));
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

    let mut out = Extracted {
        nofollow_page,
        ..Extracted::default()
    };
    let source = meta.url.as_str();
    let seen_hasher = std::hash::RandomState::new();
    let mut seen: HashMap<u64, usize> = HashMap::new();
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
