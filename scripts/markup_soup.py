#!/usr/bin/env python3
"""Writes pages of random markup soup, to compare the link extractor with a DOM.

Usage: scripts/markup_soup.py DIR [PAGES] [SEED]   (defaults: 400 pages, seed 7)

Each page concatenates 5 to 60 fragments drawn from real-web shapes: links
(nested, misnested, with images, entities, non-ASCII, odd quoting), sections
and comment containers, scripts with `<!--` escapes, style, textarea, title,
xmp, iframe, plaintext, SVG and MathML (self-closing, integration points,
CDATA), templates, noscript, base and robots meta tags, comments and doctypes,
and tags cut by the end of the page; a fifth of the pages are windows-1252.
Then: LINKGRAPH_CORPUS=DIR cargo test --release -p linkgraph-parser \
      agreement_on_an_external_corpus -- --ignored --nocapture
"""
import os
import random
import sys

FRAGMENTS = [
    '<a href="/p{n}">link {n}</a>', "<A HREF='/q{n}' REL=nofollow>Q &amp; {n}</A>", '<a href=/u{n}/>u</a>',
    '<a href="http://other{n}.test/x?a=1&copy=2">ext &copy; {n}</a>', '<a href="#top">top</a>', '<a>no href</a>',
    '<a href="/img{n}"><img src=x alt="Alt {n}"><img alt=second></a>',
    '<a href="/nest{n}">outer <a href="/inner{n}">inner</a> after</a>',
    '<nav>', '</nav>', '<header>', '</header>', '<footer>', '</footer>', '<aside>', '</aside>', '<article>',
    '</article>', '<section>', '</section>', '<div class="comments">', '<div id="comment-{n}" class="comment-body">',
    '<div class="comment-count">', '</div>', '<div>', '<p>', '</p>', '<span>', '</span>', '<ul><li>', '</li>',
    '</ul>', '<br>', '<br/>', '<hr>', '<svg>', '</svg>', '<svg/>', '<math>', '</math>', '<foreignObject>',
    '</foreignObject>', '<title>t <a href="/t{n}">x</a></title>',
    '<svg><a href="/svg{n}">svg text<![CDATA[cdata {n}]]></a></svg>',
    '<svg><style><a href="/svgstyle{n}">s</a></style></svg>',
    '<script>var a = "<a href=/s{n}>";</script>', '<script><!-- <a href="/s2{n}"> --></script>',
    '<script><!--<script>x</script><a href="/s3{n}">--></script>',
    '<style>a{{color:red}} <a href="/st{n}"></style>', '<textarea><a href="/ta{n}"></textarea>',
    '<template><a href="/tpl{n}">tpl</a></template>', '<noscript><a href="/ns{n}"><img alt="ns alt"></a></noscript>',
    '<map><area href="/area{n}" alt="Area {n}"></map>', '<area href="/ar2{n}">', '<base href="http://cdn.test/b/">',
    '<meta name="robots" content="nofollow">', '<meta name="linkgraph" content="noindex">',
    '<meta charset="windows-1252">', '<!-- comment <a href="/c{n}"> -->', '<!---->', '<!-->', '<!--->',
    '<!DOCTYPE html>', '<?xml version="1.0"?>', '<![CDATA[<a href="/cd{n}">]]>', '</a>', '</p>', '</>', '</ x>',
    ' text {n} ', ' &lt;&gt;&amp;amp; &nbsp; ', ' caf\u00e9 \u2014 ', ' 1 < 2 > 0 ', '<xmp><a href="/xmp{n}"></xmp>',
    '<iframe><a href="/if{n}"></iframe>', '<plaintext>', '<a href="javascript:void(0)">js</a>',
    '<a href="mailto:x@y">m</a>', '<a href=" /spaced{n} ">sp</a>', '<a href="/caf\u00e9{n}">caf\u00e9</a>',
    '<a href="/q?x={n}&amp;y=2">q</a>', '<font color=red>', '</font>',
    '<math><mi><a href="/mi{n}">mi</a></mi></math>', '<table><tr><td><a href="/td{n}">td</a></td></tr></table>',
    '<b><i>bold</b></i>', '<a href="/ent{n}">&#x41;&#65;&notin;&notit; &#128;</a>',
    '<div class="f_comment_nofollow_on">', '<body class="comments">', '<HTML>', '<NAV>', '</NAV>',
    '<Title>T</TITLE>', '<a href=\'/sq{n}\' rel="ugc sponsored">sq</a>', '<a href="/unterminated{n}', '<a href',
    '<', '<!', '</', '<a href="/x{n}" <b>>weird</b>',
]


def main():
    out = sys.argv[1]
    pages = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 7)
    os.makedirs(out, exist_ok=True)
    for k in range(pages):
        parts = [rng.choice(FRAGMENTS).format(n=rng.randint(0, 9)) for _ in range(rng.randint(5, 60))]
        # Most pages keep their markup after a `<plaintext>` rare.
        parts = [p for p in parts if p != '<plaintext>' or rng.random() < 0.3]
        enc = 'utf-8' if rng.random() < 0.8 else 'windows-1252'
        with open(os.path.join(out, f'{k:04d}.html'), 'wb') as f:
            f.write(''.join(parts).encode(enc, errors='replace'))


if __name__ == '__main__':
    main()
