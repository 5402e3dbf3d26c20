use super::*;
use proptest::prelude::*;

const TOKEN: &str = "linkgraph";

fn url(s: &str) -> Url {
    Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn parse_with(html: &[u8], ct: Option<&str>, xrt: Option<&str>) -> Extracted {
    parse_limited(html, ct, xrt, ParseLimits::default())
}

fn parse_limited(
    html: &[u8],
    ct: Option<&str>,
    xrt: Option<&str>,
    limits: ParseLimits,
) -> Extracted {
    let page = url("http://www.example.com/dir/page.html");
    let meta = PageMeta {
        url: &page,
        content_type: ct,
        x_robots_tag: xrt,
        product_token: TOKEN,
    };
    extract_links(meta, html, limits).unwrap_or_else(|e| panic!("{e}"))
}

fn parse(html: &str) -> Extracted {
    parse_with(html.as_bytes(), Some("text/html; charset=utf-8"), None)
}

/// Tokens of `html`, scanned to the end (each token consumes input).
fn scan_all(html: &[u8]) -> usize {
    let mut s = scan::Scanner::new(html);
    let mut n = 0;
    while s.next_token().is_some() {
        n += 1;
    }
    n
}

fn find<'a>(x: &'a Extracted, target: &str) -> &'a Link {
    x.links
        .iter()
        .find(|l| l.target_url == target)
        .unwrap_or_else(|| panic!("no link to {target} in {:#?}", x.links))
}

#[test]
fn extracts_anchors_and_areas_with_rel() {
    let x = parse(
        r#"<p><a href="http://a.com/x" rel="nofollow sponsored">Buy <b>now</b></a>
           <a href="https://b.org/" rel="ugc">b</a><a href="/rel">rel</a>
           <map><area href="http://c.com/" alt="Area alt"></map></p>"#,
    );
    let a = find(&x, "http://a.com/x");
    assert_eq!(a.anchor, "Buy now");
    assert_eq!(a.rel, Rel::NOFOLLOW | Rel::SPONSORED);
    assert_eq!(find(&x, "https://b.org/").rel, Rel::UGC);
    assert!(find(&x, "http://www.example.com/rel").rel.is_follow());
    assert_eq!(find(&x, "http://c.com/").anchor, "Area alt");
    assert_eq!(x.links.len(), 4);
}

#[test]
fn honours_base_href_wherever_it_is() {
    let x = parse(r#"<head><base href="http://cdn.example.net/sub/"></head><a href="x/y">y</a>"#);
    assert_eq!(x.links[0].target_url, "http://cdn.example.net/sub/x/y");
    let y = parse(r#"<a href="rel">r</a>"#);
    assert_eq!(y.links[0].target_url, "http://www.example.com/dir/rel");
}

#[test]
fn placement_comes_from_enclosing_sections() {
    let x = parse(
        r#"<header><a href="/h">h</a><nav><a href="/n">n</a></nav></header>
           <article><a href="/c">c</a>
             <section id="comments"><footer><a href="/cm">cm</a></footer></section>
             <div class="user-comment-body"><a href="/cm2">cm2</a></div>
           </article>
           <aside><a href="/s">s</a></aside>
           <footer><a href="/f">f</a></footer><a href="/after">after</a>"#,
    );
    let p = |t: &str| find(&x, &format!("http://www.example.com{t}")).placement;
    assert_eq!(p("/h"), Placement::Header);
    assert_eq!(p("/n"), Placement::Nav);
    assert_eq!(p("/c"), Placement::Content);
    assert_eq!(p("/cm"), Placement::Comment);
    assert_eq!(p("/cm2"), Placement::Comment);
    assert_eq!(p("/s"), Placement::Aside);
    assert_eq!(p("/f"), Placement::Footer);
    assert_eq!(p("/after"), Placement::Content);
}

#[test]
fn an_implicitly_closed_section_does_not_leak() {
    // The </div> closes the <nav> implicitly; the next link is content.
    let x = parse(r#"<div><nav><a href="/n">n</a></div><a href="/c">c</a>"#);
    assert_eq!(
        find(&x, "http://www.example.com/n").placement,
        Placement::Nav
    );
    assert_eq!(
        find(&x, "http://www.example.com/c").placement,
        Placement::Content
    );
}

#[test]
fn non_ascii_hrefs_never_panic_and_are_percent_encoded() {
    // Each of these once ended a crawl: a byte-index slice inside 'é'.
    let x = parse(
        r#"<meta charset="utf-8"><a href="/café">Café</a><a href="/статья">Статья</a>
           <a href="/日本">日本</a><a href="dé">d</a><a href="%C3%A9t%C3%A9">été</a>
           <a href="http://bücher.example/x">IDN</a>"#,
    );
    let targets: Vec<&str> = x.links.iter().map(|l| l.target_url.as_str()).collect();
    assert_eq!(
        targets,
        vec![
            "http://www.example.com/caf%C3%A9",
            "http://www.example.com/%D1%81%D1%82%D0%B0%D1%82%D1%8C%D1%8F",
            "http://www.example.com/%E6%97%A5%E6%9C%AC",
            "http://www.example.com/dir/d%C3%A9",
            "http://www.example.com/dir/%C3%A9t%C3%A9",
            "http://xn--bcher-kva.example/x",
        ]
    );
    assert_eq!(find(&x, "http://www.example.com/caf%C3%A9").anchor, "Café");
    for scheme in ["dé", "ja€", "€€€€€€€€€€€€", "mailt€"] {
        let _ = parse(&format!("<a href='{scheme}'>x</a>"));
        assert!(!skipped_scheme(scheme), "{scheme}");
    }
    assert!(skipped_scheme(" JavaScript:void(0)"));
}

#[test]
fn noscript_is_markup_as_with_scripting_disabled() {
    let x = parse(
        r#"<a href="/story"><img alt=""><noscript><img src="p.jpg" alt="Photo"></noscript></a>
           <noscript><a href="/plain">Plain</a></noscript>
           <NOSCRIPT><nav><a href="/nav">N</a></nav></NOSCRIPT>"#,
    );
    assert_eq!(find(&x, "http://www.example.com/story").anchor, "Photo");
    assert_eq!(find(&x, "http://www.example.com/plain").anchor, "Plain");
    let n = find(&x, "http://www.example.com/nav");
    assert_eq!((n.anchor.as_str(), n.placement), ("N", Placement::Nav));
    // In the head too, and through a legacy encoding.
    let y = parse_with(
        b"<head><noscript><a href='/h'>Caf\xe9</a></noscript></head>",
        Some("text/html; charset=windows-1252"),
        None,
    );
    assert_eq!(find(&y, "http://www.example.com/h").anchor, "Café");
}

#[test]
fn comment_flags_high_up_do_not_make_the_page_a_comment() {
    let x = parse(
        r#"<html class="comments-on"><body class="f_comment_nofollow_on">
           <nav><a href="/n">n</a></nav><article class="commented"><a href="/c">c</a></article>
           <p class="comment-count"><a href="/count">3 comments</a></p>
           <div id="comments-wrapper"><nav><a href="/pages">2</a></nav>
             <ol class="commentlist"><li class="comment"><article class="comment-body">
               <footer class="comment-meta"><a href="http://commenter.example/" rel="ugc">Bob</a></footer>
               <p>text <a href="/in">in</a></p></article></li></ol>
             <aside><a href="/side">s</a></aside></div>
           <footer><a href="/f">f</a></footer></body></html>"#,
    );
    let p = |t: &str| find(&x, t).placement;
    assert_eq!(p("http://www.example.com/n"), Placement::Nav);
    assert_eq!(p("http://www.example.com/c"), Placement::Content);
    assert_eq!(p("http://www.example.com/count"), Placement::Content);
    assert_eq!(
        p("http://www.example.com/pages"),
        Placement::Nav,
        "a closer nav wins"
    );
    assert_eq!(
        p("http://commenter.example/"),
        Placement::Comment,
        "a comment's own footer"
    );
    assert_eq!(p("http://www.example.com/in"), Placement::Comment);
    assert_eq!(
        p("http://www.example.com/side"),
        Placement::Aside,
        "a closer aside wins"
    );
    assert_eq!(p("http://www.example.com/f"), Placement::Footer);
    for (value, marker) in [
        ("comments", true),
        ("user-comment-body", true),
        ("commentList", true),
        ("fb_comments_box", true),
        ("f_comment_nofollow_on", false),
        ("commented", false),
        ("comment-count", false),
        ("no-comments", false),
        ("commentator", false),
        ("x comments-link", false),
        ("widget widget_recent_comments", false),
    ] {
        assert_eq!(is_comment_marker(value), marker, "{value}");
    }
}

#[test]
fn character_references_follow_the_html_spec() {
    let x = parse(
        r#"<a href="/a">&copy 2020</a><a href="/b">It&#146;s &#x80;5 &amp &notin; &notit;</a>
           <a href="/c?x=1&copy=2&amp;y=&lt;">q</a><a href="/d">&am<b>p;</b></a>"#,
    );
    assert_eq!(find(&x, "http://www.example.com/a").anchor, "© 2020");
    assert_eq!(
        find(&x, "http://www.example.com/b").anchor,
        "It’s €5 & ∉ ¬it;"
    );
    // In an attribute, a legacy name followed by '=' stays as written.
    assert!(
        x.links
            .iter()
            .any(|l| l.target_url == "http://www.example.com/c?x=1&copy=2&y=%3C"),
        "{:?}",
        x.links
    );
    // A reference never spans two text nodes.
    assert_eq!(find(&x, "http://www.example.com/d").anchor, "&amp;");
}

#[test]
fn an_a_start_tag_closes_the_open_link() {
    let x = parse(
        r#"<a href="/a">x <a href="/b">y</a> z</a><a href="/c">c <a name="n">n</a> after</a>"#,
    );
    assert_eq!(find(&x, "http://www.example.com/a").anchor, "x");
    assert_eq!(find(&x, "http://www.example.com/b").anchor, "y");
    assert_eq!(find(&x, "http://www.example.com/c").anchor, "c");
}

#[test]
fn template_content_is_not_part_of_the_page() {
    let x = parse(
        r#"<template><a href="/in-template">t</a><map><area href="/area" alt="a"></map></template>
           <a href="/after">after</a>"#,
    );
    let targets: Vec<&str> = x.links.iter().map(|l| l.target_url.as_str()).collect();
    assert_eq!(targets, vec!["http://www.example.com/after"]);
}

#[test]
fn script_and_style_are_not_anchor_text() {
    let x = parse(
        r#"<a href="/a">Buy<script>var s = "<b>x</b>";</script> <style>.a{}</style>now<textarea>t</textarea></a>
           <a href="/b"><script>document.write('x')</script><img alt="Logo"></a>"#,
    );
    assert_eq!(find(&x, "http://www.example.com/a").anchor, "Buy now");
    assert_eq!(find(&x, "http://www.example.com/b").anchor, "Logo");
}

#[test]
fn page_level_nofollow_from_meta_and_header() {
    let x =
        parse(r#"<meta name="ROBOTS" content="noindex, NoFollow"><a href="http://a.com/">a</a>"#);
    assert!(x.nofollow_page);
    assert!(x.links[0].rel.contains(Rel::NOFOLLOW));
    let y = parse_with(
        b"<a href='http://a.com/' rel=ugc>a</a>",
        None,
        Some("nofollow"),
    );
    assert_eq!(y.links[0].rel, Rel::NOFOLLOW | Rel::UGC);
    let z = parse_with(
        b"<a href='http://a.com/'>a</a>",
        None,
        Some("googlebot: nofollow"),
    );
    assert!(
        !z.nofollow_page,
        "a directive scoped to another agent does not apply"
    );
    let w = parse_with(
        b"<a href='http://a.com/'>a</a>",
        None,
        Some("linkgraph: none"),
    );
    assert!(w.nofollow_page);
    let v = parse(r#"<meta name="robots" content="noindex"><a href="http://a.com/">a</a>"#);
    assert!(!v.nofollow_page);
}

#[test]
fn page_level_noindex_from_meta_and_header() {
    let v = parse(r#"<meta name="robots" content="noindex"><a href="http://a.com/">a</a>"#);
    assert!(v.noindex_page && !v.nofollow_page);
    assert_eq!(v.links.len(), 1, "a noindex page's links are still read");
    let none = parse(r#"<meta name="linkgraph" content="none"><a href="http://a.com/">a</a>"#);
    assert!(none.noindex_page && none.nofollow_page);
    let hdr = parse_with(
        b"<a href='http://a.com/'>a</a>",
        None,
        Some("noarchive, noindex"),
    );
    assert!(hdr.noindex_page);
    let other = parse_with(
        b"<a href='http://a.com/'>a</a>",
        None,
        Some("googlebot: noindex"),
    );
    assert!(!other.noindex_page, "scoped to another agent");
    assert!(!parse(r#"<meta name="robots" content="index, follow">"#).noindex_page);
}

#[test]
fn skips_non_http_schemes_and_self_links() {
    let x = parse(
        r##"<a href="javascript:void(0)">j</a><a href=" MAILTO:a@b.c">m</a><a href="tel:+1">t</a>
           <a href="data:text/html,hi">d</a><a href="ftp://f.com/">f</a><a href="#top">top</a>
           <a href="http://ok.com/">ok</a>"##,
    );
    assert_eq!(x.links.len(), 1);
    assert_eq!(x.skipped, 6);
}

#[test]
fn image_links_use_alt_text_and_text_wins_over_alt() {
    let x = parse(
        r#"<a href="http://i.com/"><img src="logo.png" alt="  Logo   of I "></a>
           <a href="http://j.com/"><img alt="ignored">Text</a>"#,
    );
    assert_eq!(find(&x, "http://i.com/").anchor, "Logo of I");
    assert_eq!(find(&x, "http://j.com/").anchor, "Text");
}

#[test]
fn decodes_entities_in_hrefs_and_text() {
    let x = parse(r#"<a href="http://a.com/?a=1&amp;b=2">Tom &amp; Jerry&#39;s &eacute;</a>"#);
    assert_eq!(x.links[0].target_url, "http://a.com/?a=1&b=2");
    assert_eq!(x.links[0].anchor, "Tom & Jerry's é");
}

#[test]
fn decodes_legacy_encodings() {
    // "Café Müller" in windows-1252, declared in the header, in a meta tag,
    // and not declared at all.
    let body = b"<a href=\"http://a.com/\">Caf\xe9 M\xfcller</a>";
    for ct in [Some("text/html; charset=ISO-8859-1"), None] {
        let x = parse_with(body, ct, None);
        assert_eq!(x.links[0].anchor, "Café Müller", "content-type {ct:?}");
    }
    let mut meta = b"<meta charset=\"windows-1252\">".to_vec();
    meta.extend_from_slice(body);
    assert_eq!(parse_with(&meta, None, None).links[0].anchor, "Café Müller");
    let koi8 = b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=koi8-r\"><a href=\"http://a.ru/\">\xf0\xd2\xc9\xd7\xc5\xd4</a>";
    assert_eq!(parse_with(koi8, None, None).links[0].anchor, "Привет");
    let utf16: Vec<u8> = "\u{feff}<a href=\"http://u.com/\">Grüße</a>"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert_eq!(parse_with(&utf16, None, None).links[0].anchor, "Grüße");
}

#[test]
fn first_occurrence_wins_and_the_cap_is_counted() {
    let x = parse(
        r#"<nav><a href="http://a.com/">first</a></nav><a href="http://a.com/" rel="nofollow">second</a>"#,
    );
    assert_eq!(x.links.len(), 1);
    assert_eq!(x.links[0].anchor, "first");
    assert_eq!(x.links[0].placement, Placement::Nav);

    let many: String = (0..50)
        .map(|i| format!("<a href='/p{i}'>{i}</a>"))
        .collect();
    let page = url("http://www.example.com/");
    let meta = PageMeta {
        url: &page,
        content_type: None,
        x_robots_tag: None,
        product_token: TOKEN,
    };
    let limits = ParseLimits {
        max_links: 10,
        ..ParseLimits::default()
    };
    let x = extract_links(meta, many.as_bytes(), limits).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((x.links.len(), x.dropped), (10, 40));
}

#[test]
fn malformed_markup_still_yields_links() {
    let x = parse(
        "<a href=http://a.com/x>unquoted<a href='http://b.com/'>b</a><div><<<a href=\"/c\">c",
    );
    assert!(x.links.iter().any(|l| l.target_url == "http://a.com/x"));
    assert!(x.links.iter().any(|l| l.target_url == "http://b.com/"));
    assert!(
        x.links
            .iter()
            .any(|l| l.target_url == "http://www.example.com/c")
    );
}

#[test]
fn anchor_text_is_bounded() {
    let html = format!("<a href='http://a.com/'>{}</a>", "word ".repeat(100_000));
    let x = parse(&html);
    assert_eq!(
        x.links[0].anchor.chars().count(),
        linkgraph_core::MAX_ANCHOR_CHARS
    );
}

#[test]
fn redirect_edges_point_from_the_redirecting_url() {
    let l = redirect_link(&url("http://a.com/old"), &url("http://b.com/new"));
    assert_eq!(
        (l.source_url.as_str(), l.kind),
        ("http://a.com/old", LinkKind::Redirect)
    );
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = parse_with(&body, None, None);
    }

    /// Markup cut anywhere: the tokenizer's states (tags, attributes,
    /// comments, script escapes, raw text, foreign content) at every
    /// boundary, never a panic, never a truncated parse.
    #[test]
    fn never_panics_on_markup_soup(parts in proptest::collection::vec(0usize..32, 0..120)) {
        const PIECES: [&str; 32] = [
            "<", "</", ">", "/>", "<!--", "-->", "--!>", "-", "<!", "<?", "<a href=", "<a href='/x'>",
            "</a>", "\"", "'", "=", " ", "<script>", "</script>", "<!--<script>", "<style>", "</style",
            "<svg>", "</svg>", "<math><mi>", "<![CDATA[", "]]>", "<title>", "<textarea>", "<nav class=comments>",
            "&amp;", "<plaintext>",
        ];
        let html: String = parts.iter().map(|&i| PIECES[i]).collect();
        let x = parse(&html);
        prop_assert!(x.truncated_by.is_none());
        let scanned = scan_all(html.as_bytes());
        prop_assert!(scanned <= html.len() + 1);
    }

    #[test]
    fn every_generated_link_is_found(targets in proptest::collection::vec("[a-z]{1,8}", 1..30)) {
        let html: String = targets.iter().map(|t| format!("<p><a href='/{t}'>{t}</a></p>")).collect();
        let x = parse(&html);
        let unique: std::collections::HashSet<&String> = targets.iter().collect();
        prop_assert_eq!(x.links.len(), unique.len());
    }
}

#[test]
fn rare_elements_in_upper_case_still_install_their_handlers() {
    // Each of these elements turns a handler on only when the page has it
    // (`Present`); tag names are case-insensitive, so upper case must too.
    let x = parse(
        r#"<HTML><HEAD><BASE HREF="http://cdn.example.net/s/">
           <META NAME="robots" CONTENT="nofollow"></HEAD><BODY>
           <TEMPLATE><A HREF="/inert">inert</A></TEMPLATE>
           <DIV CLASS="comments"><A HREF="c">c</A></DIV>
           <A HREF="i"><IMG SRC="x.png" ALT="Logo"></A>
           <MAP><AREA HREF="http://area.example.org/" ALT="Area"></MAP></BODY></HTML>"#,
    );
    assert!(x.nofollow_page);
    assert!(!x.links.iter().any(|l| l.target_url.ends_with("/inert")));
    assert_eq!(
        find(&x, "http://cdn.example.net/s/c").placement,
        Placement::Comment
    );
    assert_eq!(find(&x, "http://cdn.example.net/s/i").anchor, "Logo");
    assert_eq!(find(&x, "http://area.example.org/").anchor, "Area");
    assert_eq!(x.links.len(), 3);
}

#[test]
fn nesting_past_the_memory_limit_stops_the_parse_and_keeps_what_came_before() {
    let html = format!(
        "<a href=/before>b</a>{}<a href=/after>a</a>",
        "<div>".repeat(100_000)
    );
    let limits = ParseLimits {
        max_parser_memory: 64 << 10,
        ..ParseLimits::default()
    };
    let x = parse_limited(html.as_bytes(), None, None, limits);
    assert_eq!(x.links.len(), 1, "{:?}", x.links);
    assert_eq!(x.links[0].target_url, "http://www.example.com/before");
    let why = x.truncated_by.unwrap_or_default();
    assert!(why.contains("65536 bytes"), "{why}");
    // The default limit holds the same page whole.
    let x = parse_limited(html.as_bytes(), None, None, ParseLimits::default());
    assert_eq!((x.links.len(), x.truncated_by), (2, None));
}

#[test]
fn real_web_markup_shapes() {
    let x = parse(concat!(
        "<!--[if lt IE 9]><a href=\"/ie\">ie</a><![endif]-->",
        "<script type=\"text/template\"><a href=\"/tpl\">x</a></script>",
        "<SCRIPT>document.write('<a href=\"/dw\">')</SCRIPT >",
        "<a href=\"/tight\"class=\"x\"title='t'>tight</a>",
        "<a href=\"/multi\nline\">ml</a>",
        "<a href=\"/icon\"><svg class=\"icon\"><use xlink:href=\"#i\"></use></svg>Icon text</a>",
        "<textarea><a href=\"/ta\"></TEXTAREA ><a href=\"/after-ta\">after</a>",
        "<a href=/unq?a=1&b=2>unq</a>",
        "<p>1 < 2 and <a href=\"/lt\">lt</a></p>",
        "<a href=\"/gt\">a > b</a>",
        "<a href='/js' onclick=\"go('<a href=/x>')\">js</a>",
    ));
    let got: Vec<(&str, &str)> = x
        .links
        .iter()
        .map(|l| (l.target_url.as_str(), l.anchor.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("http://www.example.com/tight", "tight"),
            ("http://www.example.com/multiline", "ml"),
            ("http://www.example.com/icon", "Icon text"),
            ("http://www.example.com/after-ta", "after"),
            ("http://www.example.com/unq?a=1&b=2", "unq"),
            ("http://www.example.com/lt", "lt"),
            ("http://www.example.com/gt", "a > b"),
            ("http://www.example.com/js", "js"),
        ]
    );
}

#[test]
fn hostile_nesting_stray_end_tags_and_attributes_stay_linear() {
    // 100,000 open elements, then 100,000 end tags of a name none of them
    // has: each is rejected without walking the stack (walking it made
    // such a page quadratic: 10^10 steps).
    let html = format!(
        "<a href=/first>f</a>{}{}<a href=/last {}>l</a>",
        "<div>".repeat(100_000),
        "</section>".repeat(100_000),
        "x ".repeat(100_000)
    );
    let x = parse(&html);
    let got: Vec<&str> = x.links.iter().map(|l| l.target_url.as_str()).collect();
    assert_eq!(
        got,
        [
            "http://www.example.com/first",
            "http://www.example.com/last"
        ]
    );
    // Only the first attributes of a tag are kept: an href after them is
    // read past.
    let x = parse(&format!("<a {} href=/late>l</a>", "x ".repeat(1000)));
    assert!(x.links.is_empty(), "{:?}", x.links);
}
