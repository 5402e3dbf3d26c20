//! An HTML tokenizer for link extraction: where the markup of a page is.
//!
//! It follows the HTML spec's tokenizer states that decide where a tag,
//! comment or text starts and ends: tags and their attributes, comments
//! (including `--!>` and bogus ones), doctypes, raw text (`style`, `xmp`,
//! `iframe`, `noembed`, `noframes`), RCDATA (`title`, `textarea`), script
//! data with its escaped and double-escaped states, `plaintext`, and CDATA
//! sections in foreign content. The tree builder's feedback into the
//! tokenizer is simulated the way lol_html does it: which start tags switch
//! the text state, and when SVG or MathML content starts and ends
//! (integration points, and the HTML tags that break out of it).
//! `<noscript>` is markup, as in a browser with scripting disabled.
//!
//! It builds no tree and decodes nothing: tokens are spans of the input,
//! whose markup is ASCII in every ASCII-compatible encoding.

use memchr::{memchr, memchr_iter};

/// One attribute of a start tag: spans of the input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attr {
    name: (usize, usize),
    value: (usize, usize),
}

/// A start tag; its attributes are [`Scanner::attr`]'s to read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StartTag<'a> {
    /// The name as in the input (compare it case-insensitively).
    pub name: &'a [u8],
    /// The element has content, and an end tag or an ancestor's closes it:
    /// false for void HTML elements and self-closing foreign ones.
    pub has_content: bool,
}

/// What the input holds next.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Token<'a> {
    /// A start tag.
    Start(StartTag<'a>),
    /// An end tag, by name (as in the input).
    End(&'a [u8]),
    /// A text node, references not decoded. `data` is character data
    /// (the DOM's text); raw text, RCDATA and script are not.
    Text { raw: &'a [u8], data: bool },
}

/// The tokenizer's text state after a start tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    /// Raw text or RCDATA until the end tag of the element that opened it.
    RawUntilEnd,
    Script,
    Plaintext,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Html,
    Svg,
    MathMl,
}

/// The tokenizer over one page's bytes.
pub(crate) struct Scanner<'a> {
    input: &'a [u8],
    at: usize,
    state: State,
    /// The element whose end tag ends raw text, RCDATA or script data.
    raw_end: &'a [u8],
    /// The namespaces entered: foreign content, and HTML again inside it
    /// at integration points. Never empty.
    ns: Vec<Ns>,
    attrs: Vec<Attr>,
}

/// Attributes kept per tag, the first ones: a tag of a hostile page may
/// hold millions (the rest are read past, as if absent).
const MAX_ATTRS: usize = 256;

const WHITESPACE: [u8; 5] = [b' ', b'\t', b'\n', b'\r', 0x0c];

fn is_space(b: u8) -> bool {
    WHITESPACE.contains(&b)
}

fn eq(name: &[u8], lower: &[u8]) -> bool {
    name.eq_ignore_ascii_case(lower)
}

fn one_of(name: &[u8], names: &[&[u8]]) -> bool {
    names.iter().any(|n| eq(name, n))
}

/// HTML elements that never have content (lol_html's list).
const VOID: [&[u8]; 17] = [
    b"area",
    b"base",
    b"basefont",
    b"bgsound",
    b"br",
    b"col",
    b"embed",
    b"hr",
    b"img",
    b"input",
    b"keygen",
    b"link",
    b"meta",
    b"param",
    b"source",
    b"track",
    b"wbr",
];

/// HTML start tags that end foreign content (the spec's breakout list;
/// `font` too when it has a color, face or size).
const BREAKOUT: [&[u8]; 44] = [
    b"b",
    b"big",
    b"blockquote",
    b"body",
    b"br",
    b"center",
    b"code",
    b"dd",
    b"div",
    b"dl",
    b"dt",
    b"em",
    b"embed",
    b"h1",
    b"h2",
    b"h3",
    b"h4",
    b"h5",
    b"h6",
    b"head",
    b"hr",
    b"i",
    b"img",
    b"li",
    b"listing",
    b"menu",
    b"meta",
    b"nobr",
    b"ol",
    b"p",
    b"pre",
    b"ruby",
    b"s",
    b"small",
    b"span",
    b"strong",
    b"strike",
    b"sub",
    b"sup",
    b"table",
    b"tt",
    b"u",
    b"ul",
    b"var",
];

/// HTML elements whose content is raw text or RCDATA up to their end tag
/// (`noscript` is not: a crawler runs no scripts).
const RAW_TEXT: [&[u8]; 7] = [
    b"textarea",
    b"title",
    b"style",
    b"iframe",
    b"xmp",
    b"noembed",
    b"noframes",
];

const SVG_HTML_POINTS: [&[u8]; 3] = [b"desc", b"title", b"foreignobject"];
const MATHML_TEXT_POINTS: [&[u8]; 5] = [b"mi", b"mo", b"mn", b"ms", b"mtext"];

impl<'a> Scanner<'a> {
    /// A tokenizer at the start of `input`.
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Scanner {
            input,
            at: 0,
            state: State::Data,
            raw_end: b"",
            ns: vec![Ns::Html],
            attrs: Vec::new(),
        }
    }

    fn ns(&self) -> Ns {
        self.ns.last().copied().unwrap_or(Ns::Html)
    }

    /// The value of the last start tag's attribute `name` (lower case),
    /// the first of that name; `Some(b"")` for one without a value.
    pub(crate) fn attr(&self, name: &[u8]) -> Option<&'a [u8]> {
        let input = self.input;
        self.attrs
            .iter()
            .find(|a| eq(&input[a.name.0..a.name.1], name))
            .map(|a| &input[a.value.0..a.value.1])
    }

    /// The next token, or `None` at the end of the input.
    pub(crate) fn next_token(&mut self) -> Option<Token<'a>> {
        loop {
            if self.at >= self.input.len() {
                return None;
            }
            match self.state {
                State::Data => {}
                State::Plaintext => {
                    let raw = &self.input[self.at..];
                    self.at = self.input.len();
                    return Some(Token::Text { raw, data: false });
                }
                State::RawUntilEnd | State::Script => {
                    let from = self.at;
                    let end = if self.state == State::Script {
                        self.script_end(from)
                    } else {
                        self.end_tag_at(from, self.raw_end)
                    };
                    self.state = State::Data;
                    let end = end.unwrap_or(self.input.len());
                    self.at = end;
                    if end > from {
                        return Some(Token::Text {
                            raw: &self.input[from..end],
                            data: false,
                        });
                    }
                    continue;
                }
            }
            let from = self.at;
            let Some(markup) = self.next_markup(from) else {
                self.at = self.input.len();
                return Some(Token::Text {
                    raw: &self.input[from..],
                    data: true,
                });
            };
            if markup > from {
                self.at = markup;
                return Some(Token::Text {
                    raw: &self.input[from..markup],
                    data: true,
                });
            }
            if let Some(token) = self.markup(markup) {
                return Some(token);
            }
        }
    }

    /// Where the next markup (a `<` that starts a tag, comment, doctype or
    /// CDATA section) is, from `from`.
    fn next_markup(&self, from: usize) -> Option<usize> {
        let input = self.input;
        memchr_iter(b'<', &input[from..])
            .map(|i| from + i)
            .find(|&i| match input.get(i + 1) {
                Some(b) if b.is_ascii_alphabetic() => true,
                Some(b'!' | b'?') => true,
                Some(b'/') => input.get(i + 2).is_some(),
                _ => false,
            })
    }

    /// Reads the markup at `at` (a `<`); a token, or `None` for markup
    /// that makes none (a comment, a doctype, a tag cut by the end).
    fn markup(&mut self, at: usize) -> Option<Token<'a>> {
        let input = self.input;
        let next = input.get(at + 1).copied().unwrap_or(0);
        if next.is_ascii_alphabetic() {
            return self.start_tag(at);
        }
        match next {
            b'/' => {
                let after = input.get(at + 2).copied().unwrap_or(0);
                if after.is_ascii_alphabetic() {
                    return self.end_tag(at);
                }
                // `</>` is nothing; anything else a bogus comment.
                self.at = if after == b'>' {
                    at + 3
                } else {
                    self.past_gt(at + 2)
                };
                None
            }
            b'!' => {
                let rest = &input[at + 2..];
                if rest.starts_with(b"--") {
                    self.at = comment_end(input, at + 4);
                } else if self.ns() != Ns::Html && rest.starts_with(b"[CDATA[") {
                    let from = at + 9;
                    let end = memchr::memmem::find(&input[from..], b"]]>")
                        .map_or(input.len(), |e| from + e);
                    self.at = (end + 3).min(input.len());
                    if end > from {
                        return Some(Token::Text {
                            raw: &input[from..end],
                            data: true,
                        });
                    }
                } else {
                    // A doctype, or a bogus comment: both end at the first `>`.
                    self.at = self.past_gt(at + 2);
                }
                None
            }
            // `<?`: a bogus comment.
            _ => {
                self.at = self.past_gt(at + 1);
                None
            }
        }
    }

    /// Just past the first `>` from `from`, or the end of the input.
    fn past_gt(&self, from: usize) -> usize {
        memchr(b'>', &self.input[from..]).map_or(self.input.len(), |i| from + i + 1)
    }

    /// Reads a tag's name from `from`: its end.
    fn name_end(&self, from: usize) -> usize {
        let input = self.input;
        input[from..]
            .iter()
            .position(|&b| is_space(b) || b == b'/' || b == b'>')
            .map_or(input.len(), |i| from + i)
    }

    /// Reads attributes from `from` into `self.attrs`, up to the tag's
    /// `>`: where the tag ends and whether it closed itself, or `None`
    /// when the input ends first (the tag is dropped).
    fn attributes(&mut self, mut i: usize) -> Option<(usize, bool)> {
        let input = self.input;
        self.attrs.clear();
        loop {
            while i < input.len() && is_space(input[i]) {
                i += 1;
            }
            match *input.get(i)? {
                b'>' => return Some((i + 1, false)),
                b'/' => {
                    if input.get(i + 1) == Some(&b'>') {
                        return Some((i + 2, true));
                    }
                    i += 1;
                    continue;
                }
                _ => {}
            }
            // A name: its first character may be `=`.
            let start = i;
            i += 1;
            while i < input.len() && !matches!(input[i], b'=' | b'/' | b'>') && !is_space(input[i])
            {
                i += 1;
            }
            let name = (start, i);
            while i < input.len() && is_space(input[i]) {
                i += 1;
            }
            if input.get(i) != Some(&b'=') {
                self.keep(Attr {
                    name,
                    value: (i, i),
                });
                continue;
            }
            i += 1;
            while i < input.len() && is_space(input[i]) {
                i += 1;
            }
            let value = match *input.get(i)? {
                q @ (b'"' | b'\'') => {
                    let end = memchr(q, &input[i + 1..])? + i + 1;
                    let v = (i + 1, end);
                    i = end + 1;
                    v
                }
                b'>' => (i, i),
                _ => {
                    let start = i;
                    while i < input.len() && input[i] != b'>' && !is_space(input[i]) {
                        i += 1;
                    }
                    (start, i)
                }
            };
            self.keep(Attr { name, value });
        }
    }

    /// Keeps an attribute of the current tag, up to [`MAX_ATTRS`].
    fn keep(&mut self, a: Attr) {
        if self.attrs.len() < MAX_ATTRS {
            self.attrs.push(a);
        }
    }

    fn start_tag(&mut self, at: usize) -> Option<Token<'a>> {
        let input = self.input;
        let name_end = self.name_end(at + 1);
        let name = &input[at + 1..name_end];
        let Some((end, self_closing)) = self.attributes(name_end) else {
            self.at = input.len();
            return None;
        };
        self.at = end;
        let foreign = self.start_tag_feedback(name, self_closing);
        let has_content = if foreign {
            !self_closing
        } else {
            !one_of(name, &VOID)
        };
        Some(Token::Start(StartTag { name, has_content }))
    }

    fn end_tag(&mut self, at: usize) -> Option<Token<'a>> {
        let input = self.input;
        let name_end = self.name_end(at + 2);
        let name = &input[at + 2..name_end];
        let Some((end, _)) = self.attributes(name_end) else {
            self.at = input.len();
            return None;
        };
        self.attrs.clear();
        self.at = end;
        self.end_tag_feedback(name);
        Some(Token::End(name))
    }

    /// The tree builder's feedback on a start tag (as lol_html simulates
    /// it): namespace changes and the text state. Whether the element is
    /// a foreign one.
    fn start_tag_feedback(&mut self, name: &'a [u8], self_closing: bool) -> bool {
        let ns = self.ns();
        if eq(name, b"svg") || eq(name, b"math") {
            if !self_closing {
                self.ns.push(if eq(name, b"svg") {
                    Ns::Svg
                } else {
                    Ns::MathMl
                });
            }
            return true;
        }
        if ns != Ns::Html {
            let breakout = one_of(name, &BREAKOUT)
                || (eq(name, b"font")
                    && [b"color".as_slice(), b"face", b"size"]
                        .iter()
                        .any(|a| self.attr(a).is_some()));
            if breakout {
                self.leave_foreign();
                self.html_start_tag(name);
                return false;
            }
            let integration = match ns {
                Ns::Svg => one_of(name, &SVG_HTML_POINTS),
                _ => {
                    one_of(name, &MATHML_TEXT_POINTS)
                        || (eq(name, b"annotation-xml")
                            && self.attr(b"encoding").is_some_and(|e| {
                                eq(e, b"text/html") || eq(e, b"application/xhtml+xml")
                            }))
                }
            };
            if integration && !self_closing {
                self.ns.push(Ns::Html);
            }
            return true;
        }
        self.html_start_tag(name);
        false
    }

    /// Leaves foreign content for the nearest HTML content around it.
    fn leave_foreign(&mut self) {
        while self.ns.len() > 1 && self.ns() != Ns::Html {
            self.ns.pop();
        }
    }

    /// Switches to the text state an HTML start tag opens, if any.
    fn html_start_tag(&mut self, name: &'a [u8]) {
        if one_of(name, &RAW_TEXT) {
            self.state = State::RawUntilEnd;
            self.raw_end = name;
        } else if eq(name, b"script") {
            self.state = State::Script;
            self.raw_end = name;
        } else if eq(name, b"plaintext") {
            self.state = State::Plaintext;
        }
    }

    /// The tree builder's feedback on an end tag: leaving foreign content
    /// or an integration point.
    fn end_tag_feedback(&mut self, name: &[u8]) {
        let depth = self.ns.len();
        match self.ns() {
            Ns::Html if depth >= 2 => {
                let leaves = match self.ns[depth - 2] {
                    Ns::Svg => one_of(name, &SVG_HTML_POINTS),
                    Ns::MathMl => one_of(name, &MATHML_TEXT_POINTS) || eq(name, b"annotation-xml"),
                    Ns::Html => false,
                };
                if leaves {
                    self.ns.pop();
                }
            }
            Ns::Html => {}
            ns => {
                if (ns == Ns::Svg && eq(name, b"svg")) || (ns == Ns::MathMl && eq(name, b"math")) {
                    self.ns.pop();
                } else if one_of(name, &[b"p", b"br"]) {
                    self.leave_foreign();
                }
            }
        }
    }

    /// Where the end tag of `name` (an appropriate end tag: `</name`
    /// followed by whitespace, `/` or `>`) starts, from `from`.
    fn end_tag_at(&self, from: usize, name: &[u8]) -> Option<usize> {
        let input = self.input;
        memchr::memmem::find_iter(&input[from..], b"</")
            .map(|i| from + i)
            .find(|&i| self.is_end_tag_of(i, name))
    }

    fn is_end_tag_of(&self, at: usize, name: &[u8]) -> bool {
        self.is_tag(at, b"</", name)
    }

    /// `open` (`<` or `</`), then `name` in any case, then whitespace,
    /// `/` or `>`, at `at`.
    fn is_tag(&self, at: usize, open: &[u8], name: &[u8]) -> bool {
        let input = self.input;
        let from = at + open.len();
        let n = from + name.len();
        input.get(at..from) == Some(open)
            && input
                .get(from..n)
                .is_some_and(|w| w.eq_ignore_ascii_case(name))
            && input
                .get(n)
                .is_some_and(|&b| is_space(b) || b == b'/' || b == b'>')
    }

    /// Where script data from `from` ends: at its appropriate end tag,
    /// through the spec's escaped (`<!--`) and double-escaped
    /// (`<!--<script>`) states, in which `</script>` may not end it.
    fn script_end(&self, from: usize) -> Option<usize> {
        /// Where script data is: plain, escaped by `<!--`, or double-escaped
        /// by a `<script` inside that.
        #[derive(Clone, Copy)]
        enum Escape {
            No,
            Escaped,
            Double,
        }
        let (input, name) = (self.input, self.raw_end);
        let mut state = Escape::No;
        let mut i = from;
        loop {
            let j = match state {
                Escape::No => memchr(b'<', &input[i..])?,
                Escape::Escaped | Escape::Double => memchr::memchr2(b'<', b'>', &input[i..])?,
            } + i;
            i = j + 1;
            if input[j] == b'>' {
                // `-->` ends an escape; the dashes may be `<!--`'s own.
                if input[..j].ends_with(b"--") {
                    state = Escape::No;
                }
                continue;
            }
            match state {
                // `</script` only goes back to the escaped state.
                Escape::Double if self.is_end_tag_of(j, name) => {
                    state = Escape::Escaped;
                    i = j + 2 + name.len();
                }
                Escape::Double => {}
                _ if self.is_end_tag_of(j, name) => return Some(j),
                Escape::No if input[j..].starts_with(b"<!--") => {
                    state = Escape::Escaped;
                    i = j + 2;
                }
                Escape::Escaped if self.is_tag(j, b"<", name) => {
                    state = Escape::Double;
                    i = j + 1 + name.len();
                }
                Escape::No | Escape::Escaped => {}
            }
        }
    }
}

/// Just past the comment whose text starts at `from` (after `<!--`): at
/// `-->` or `--!>`, or `>` right away (`<!-->`, `<!--->`), or the end.
fn comment_end(input: &[u8], from: usize) -> usize {
    let rest = &input[from.min(input.len())..];
    if rest.starts_with(b">") {
        return from + 1;
    }
    if rest.starts_with(b"->") {
        return from + 2;
    }
    let mut i = from;
    while let Some(d) = memchr::memmem::find(&input[i.min(input.len())..], b"--") {
        let p = i + d;
        match input.get(p + 2) {
            Some(b'>') => return p + 3,
            Some(b'!') if input.get(p + 3) == Some(&b'>') => return p + 4,
            _ => i = p + 1,
        }
    }
    input.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every token of `html`, as text.
    fn tokens(html: &str) -> Vec<String> {
        let mut s = Scanner::new(html.as_bytes());
        let mut out = Vec::new();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        while let Some(t) = s.next_token() {
            out.push(match t {
                Token::Start(t) => {
                    let href = s.attr(b"href").map(text);
                    format!(
                        "<{}{}{}>",
                        text(t.name),
                        href.map_or(String::new(), |h| format!(" href={h}")),
                        if t.has_content { "" } else { "/" }
                    )
                }
                Token::End(n) => format!("</{}>", text(n)),
                Token::Text { raw, data } => {
                    format!("{}{}", if data { "" } else { "raw:" }, text(raw))
                }
            });
        }
        out
    }

    #[test]
    fn tags_attributes_and_text() {
        assert_eq!(
            tokens(r#"a<A HREF='/x' rel=nofollow data-x = "1>2">b</a> c < d <br/><p/>"#),
            ["a", "<A href=/x>", "b", "</a>", " c < d ", "<br/>", "<p>"]
        );
        assert_eq!(tokens("<a href=/x/>y"), ["<a href=/x/>", "y"]);
        assert_eq!(tokens("<a href"), Vec::<String>::new());
        assert_eq!(tokens("x<a href='y"), ["x"]);
        assert_eq!(tokens("<a href=x href=y>"), ["<a href=x>"]);
        assert_eq!(tokens("x</>y</ p>z</"), ["x", "y", "z</"]);
    }

    #[test]
    fn comments_doctypes_and_bogus_comments() {
        assert_eq!(
            tokens("<!DOCTYPE html><!-- <a href=x> -->a<!---->b<!-->c<!--->d<!-- x --!>e"),
            ["a", "b", "c", "d", "e"]
        );
        assert_eq!(tokens("<?php <a href=x> ?>a<!x>b"), [" ?>a", "b"]);
        assert_eq!(tokens("a<!-- never closed <a href=x>"), ["a"]);
    }

    #[test]
    fn raw_text_rcdata_and_plaintext() {
        assert_eq!(
            tokens("<title><a href=x></title ><style>a</styles></style>b<textarea></TEXTAREA>"),
            [
                "<title>",
                "raw:<a href=x>",
                "</title>",
                "<style>",
                "raw:a</styles>",
                "</style>",
                "b",
                "<textarea>",
                "</TEXTAREA>"
            ]
        );
        assert_eq!(
            tokens("<plaintext><a href=x></plaintext>"),
            ["<plaintext>", "raw:<a href=x></plaintext>"]
        );
        assert_eq!(
            tokens("<noscript><a href=x>y</a></noscript>"),
            ["<noscript>", "<a href=x>", "y", "</a>", "</noscript>"]
        );
    }

    #[test]
    fn script_data_escapes() {
        assert_eq!(
            tokens("<script>if (a</b) x='</scripts>'</script>z"),
            ["<script>", "raw:if (a</b) x='</scripts>'", "</script>", "z"]
        );
        // Escaped: `</script>` still ends it.
        assert_eq!(
            tokens("<script><!-- x </script>z"),
            ["<script>", "raw:<!-- x ", "</script>", "z"]
        );
        // Double-escaped: the first `</script>` does not end it.
        assert_eq!(
            tokens("<script><!--<script>x</script>y--></script>z"),
            [
                "<script>",
                "raw:<!--<script>x</script>y-->",
                "</script>",
                "z"
            ]
        );
        // `-->` leaves the double escape, so the next one ends it.
        assert_eq!(
            tokens("<script><!--<script>--></script>z"),
            ["<script>", "raw:<!--<script>-->", "</script>", "z"]
        );
        assert_eq!(
            tokens("<script><!--></script>z"),
            ["<script>", "raw:<!-->", "</script>", "z"]
        );
    }

    #[test]
    fn foreign_content() {
        // In SVG, style is markup, a self-closing element has no content,
        // and CDATA is text; `<p>` breaks out, and then style is raw again.
        assert_eq!(
            tokens("<svg><style><a href=x/></style><![CDATA[c<d]]></svg><style><a></style>"),
            [
                "<svg>",
                "<style>",
                "<a href=x/>",
                "</style>",
                "c<d",
                "</svg>",
                "<style>",
                "raw:<a>",
                "</style>"
            ]
        );
        assert_eq!(
            tokens("<math><p><title><a></title>"),
            ["<math>", "<p>", "<title>", "raw:<a>", "</title>"]
        );
        // A foreignObject is HTML inside; after it, SVG again.
        assert_eq!(
            tokens("<svg><foreignObject><title>t</title></foreignObject><title><a>"),
            [
                "<svg>",
                "<foreignObject>",
                "<title>",
                "raw:t",
                "</title>",
                "</foreignObject>",
                "<title>",
                "<a>"
            ]
        );
        assert_eq!(tokens("<svg/><title><a>"), ["<svg/>", "<title>", "raw:<a>"]);
        assert_eq!(tokens("<![CDATA[x]]>y"), ["y"]);
    }
}
