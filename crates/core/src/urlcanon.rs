//! URL canonicalization for de-duplication.
//!
//! Two URLs that a server must treat identically canonicalize to the same
//! string: scheme and host lower-cased (IDN hosts to punycode), the default
//! port and the fragment dropped, dot segments resolved, and percent-encoding
//! normalized (unreserved characters decoded, hex digits upper-cased).

use url::Url;

/// The longest URL, in bytes, that the crawler accepts.
pub const MAX_URL_BYTES: usize = 2048;

/// Why a string is not a crawlable URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The string does not parse as a URL, even relative to its base.
    #[error("invalid url {input:?}: {reason}")]
    Invalid {
        /// The offending input (truncated).
        input: String,
        /// What the URL parser said.
        reason: String,
    },
    /// The scheme is not http or https.
    #[error("unsupported scheme {scheme:?} in {input:?}")]
    UnsupportedScheme {
        /// The scheme found.
        scheme: String,
        /// The offending input (truncated).
        input: String,
    },
    /// The URL has no host.
    #[error("url {input:?} has no host")]
    NoHost {
        /// The offending input (truncated).
        input: String,
    },
    /// The URL is longer than [`MAX_URL_BYTES`].
    #[error("url of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}

fn excerpt(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Parses `input` (relative to `base` when given) and canonicalizes it.
pub fn canonicalize(input: &str, base: Option<&Url>) -> Result<Url, UrlError> {
    let trimmed = input.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\u{0}');
    if trimmed.len() > MAX_URL_BYTES {
        return Err(UrlError::TooLong {
            len: trimmed.len(),
            max: MAX_URL_BYTES,
        });
    }
    let parsed = match base {
        Some(b) => b.join(trimmed),
        None => Url::parse(trimmed),
    }
    .map_err(|e| UrlError::Invalid {
        input: excerpt(trimmed),
        reason: e.to_string(),
    })?;
    canonicalize_url(parsed, trimmed)
}

/// Canonicalizes an absolute URL string; a convenience over [`canonicalize`].
pub fn canonicalize_str(input: &str) -> Result<String, UrlError> {
    canonicalize(input, None).map(String::from)
}

fn canonicalize_url(mut url: Url, input: &str) -> Result<Url, UrlError> {
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(UrlError::UnsupportedScheme {
                scheme: other.to_owned(),
                input: excerpt(input),
            });
        }
    }
    // The url crate already lower-cases scheme and host, converts IDN hosts to
    // punycode, drops the scheme's default port and resolves dot segments.
    match url.host_str() {
        None | Some("") => {
            return Err(UrlError::NoHost {
                input: excerpt(input),
            });
        }
        Some(h) if h.ends_with('.') => {
            // "example.com." names the same host as "example.com".
            let fixed = h.trim_end_matches('.').to_owned();
            if fixed.is_empty() {
                return Err(UrlError::NoHost {
                    input: excerpt(input),
                });
            }
            url.set_host(Some(&fixed)).map_err(|e| UrlError::Invalid {
                input: excerpt(input),
                reason: e.to_string(),
            })?;
        }
        Some(_) => {}
    }
    // Each setter re-serializes the URL: only call the ones with work.
    if url.fragment().is_some() {
        url.set_fragment(None);
    }
    // Credentials never identify a different resource for a crawler.
    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }

    if url.path().contains('%') {
        let path = normalize_percent(url.path());
        if path != url.path() {
            url.set_path(&path);
        }
    }
    match url.query() {
        Some("") => url.set_query(None),
        Some(q) if q.contains('%') => {
            let nq = normalize_percent(q);
            if nq != q {
                url.set_query(Some(&nq));
            }
        }
        _ => {}
    }
    let len = url.as_str().len();
    if len > MAX_URL_BYTES {
        return Err(UrlError::TooLong {
            len,
            max: MAX_URL_BYTES,
        });
    }
    Ok(url)
}

/// Decodes percent-escapes of unreserved characters and upper-cases the hex
/// digits of the escapes that remain.
fn normalize_percent(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let (h, l) = (b[i + 1], b[i + 2]);
            if let (Some(hv), Some(lv)) = (hex_val(h), hex_val(l)) {
                let c = hv * 16 + lv;
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    out.push(c as char);
                } else {
                    out.push('%');
                    out.push(h.to_ascii_uppercase() as char);
                    out.push(l.to_ascii_uppercase() as char);
                }
                i += 3;
                continue;
            }
        }
        if b[i] == b'%' {
            // A stray '%' is escaped itself: left bare, it could merge with
            // a decoded neighbour into a new escape ("%%32E" -> "%2E").
            out.push_str("%25");
            i += 1;
            continue;
        }
        // Copy one whole character: escapes are ASCII, so boundaries hold.
        let ch_len = utf8_len(b[i]);
        out.push_str(&s[i..i + ch_len]);
        i += ch_len;
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(s: &str) -> String {
        canonicalize_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn lowercases_scheme_and_host_and_drops_default_port_and_fragment() {
        assert_eq!(c("HTTP://Example.COM:80/a#frag"), "http://example.com/a");
        assert_eq!(c("https://example.com:443/"), "https://example.com/");
        assert_eq!(
            c("https://example.com:8443/x"),
            "https://example.com:8443/x"
        );
        assert_eq!(c("http://example.com"), "http://example.com/");
        assert_eq!(c("http://example.com./a"), "http://example.com/a");
    }

    #[test]
    fn resolves_dot_segments() {
        assert_eq!(c("http://a.com/b/../c/./d"), "http://a.com/c/d");
        assert_eq!(c("http://a.com/../../x"), "http://a.com/x");
    }

    #[test]
    fn normalizes_percent_encoding() {
        assert_eq!(c("http://a.com/%7euser/%61"), "http://a.com/~user/a");
        assert_eq!(c("http://a.com/a%2fb%3a"), "http://a.com/a%2Fb%3A");
        assert_eq!(c("http://a.com/?q=%7e%2f"), "http://a.com/?q=~%2F");
        assert_eq!(c("http://a.com/caf%C3%A9"), "http://a.com/caf%C3%A9");
        assert_eq!(c("http://a.com/café"), "http://a.com/caf%C3%A9");
    }

    #[test]
    fn stray_percent_signs_are_escaped_so_decoding_cannot_forge_an_escape() {
        // Found by the canonicalize fuzzer: "%%32E" decoded to "%2E", which a
        // second pass decoded again.
        let base = Url::parse("http://a.com/a/b/c").unwrap_or_else(|e| panic!("{e}"));
        let once = canonicalize("%%32Ee$$", Some(&base)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(once.as_str(), "http://a.com/a/b/%252Ee$$");
        assert_eq!(canonicalize(once.as_str(), None).ok(), Some(once));
        assert_eq!(c("http://a.com/100%"), "http://a.com/100%25");
    }

    #[test]
    fn idn_hosts_become_punycode() {
        assert_eq!(c("http://Bücher.example/"), "http://xn--bcher-kva.example/");
    }

    #[test]
    fn drops_empty_query_and_credentials() {
        assert_eq!(c("http://u:p@a.com/x?"), "http://a.com/x");
    }

    #[test]
    fn resolves_relative_against_base() {
        let base = Url::parse("http://a.com/dir/page.html").unwrap_or_else(|e| panic!("{e}"));
        let u = canonicalize("../other?x=1#f", Some(&base)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.as_str(), "http://a.com/other?x=1");
    }

    #[test]
    fn rejects_what_is_not_crawlable() {
        assert!(matches!(
            canonicalize_str("mailto:a@b.c"),
            Err(UrlError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            canonicalize_str("javascript:void(0)"),
            Err(UrlError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            canonicalize_str("not a url"),
            Err(UrlError::Invalid { .. })
        ));
        let long = format!("http://a.com/{}", "x".repeat(MAX_URL_BYTES));
        assert!(matches!(
            canonicalize_str(&long),
            Err(UrlError::TooLong { .. })
        ));
    }

    proptest! {
        #[test]
        fn canonicalization_is_idempotent(path in "[a-zA-Z0-9%/._~!$&'()*+,;=:@-]{0,40}",
                                           query in proptest::option::of("[a-zA-Z0-9%=&._~-]{0,20}"),
                                           host in "[a-zA-Z][a-zA-Z0-9-]{0,10}\\.(com|co\\.uk|org)") {
            let mut s = format!("http://{host}/{path}");
            if let Some(q) = query { s.push('?'); s.push_str(&q); }
            if let Ok(once) = canonicalize_str(&s) {
                let twice = canonicalize_str(&once);
                prop_assert_eq!(Ok(once.clone()), twice);
            }
        }

        #[test]
        fn never_panics_on_arbitrary_input(s in ".{0,200}") {
            let _ = canonicalize_str(&s);
        }

        #[test]
        fn escaped_unreserved_equals_literal(word in "[a-zA-Z0-9._~-]{1,20}") {
            let escaped: String = word.bytes().map(|b| format!("%{b:02x}")).collect();
            prop_assert_eq!(
                canonicalize_str(&format!("http://a.com/{escaped}")),
                canonicalize_str(&format!("http://a.com/{word}"))
            );
        }
    }
}
