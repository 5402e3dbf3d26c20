//! Spider-trap control: URL rules that keep infinite URL spaces (session ids,
//! tracking parameters, calendars, ever-deeper paths) from eating a crawl.

use url::Url;

/// Query parameters stripped by default: tracking and session identifiers.
/// A trailing `*` matches a prefix; matching ignores case.
pub const DEFAULT_STRIP_PARAMS: &[&str] = &[
    "utm_*",
    "gclid",
    "fbclid",
    "msclkid",
    "dclid",
    "yclid",
    "mc_cid",
    "mc_eid",
    "_ga",
    "_gl",
    "igshid",
    "phpsessid",
    "jsessionid",
    "aspsessionid*",
    "sid",
    "sessionid",
    "session_id",
    "cfid",
    "cftoken",
];

/// The URL rules. Defaults are documented on each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Query parameters removed before de-duplication ([`DEFAULT_STRIP_PARAMS`]).
    pub strip_params: Vec<String>,
    /// Longest URL admitted, in bytes. Default 1024.
    pub max_url_bytes: usize,
    /// Most path segments. Default 16.
    pub max_path_depth: usize,
    /// Most times one path segment may occur in a path. Default 2.
    pub max_segment_repeats: usize,
}

impl Default for UrlPolicy {
    fn default() -> Self {
        UrlPolicy {
            strip_params: DEFAULT_STRIP_PARAMS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            max_url_bytes: 1024,
            max_path_depth: 16,
            max_segment_repeats: 2,
        }
    }
}

/// Why a URL looks like a trap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapReason {
    /// Longer than `max_url_bytes`.
    TooLong,
    /// More than `max_path_depth` path segments.
    TooDeep,
    /// A path segment occurs more than `max_segment_repeats` times.
    RepeatingSegments,
}

impl TrapReason {
    /// A short, fixed label.
    pub fn label(self) -> &'static str {
        match self {
            TrapReason::TooLong => "url_too_long",
            TrapReason::TooDeep => "path_too_deep",
            TrapReason::RepeatingSegments => "repeating_segments",
        }
    }
}

impl UrlPolicy {
    fn strips(&self, name: &str) -> bool {
        self.strip_params.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name
                .as_bytes()
                .get(..prefix.len())
                .is_some_and(|n| n.eq_ignore_ascii_case(prefix.as_bytes())),
            None => name.eq_ignore_ascii_case(p),
        })
    }

    /// Removes stripped query parameters and `;jsessionid=`-style path
    /// parameters. Returns true when the URL changed.
    pub fn strip(&self, url: &mut Url) -> bool {
        let mut changed = false;
        let path = url.path().to_owned();
        if let Some(i) = path.find(';') {
            let (head, params) = path.split_at(i);
            let kept: Vec<&str> = params[1..]
                .split(';')
                .filter(|p| !self.strips(p.split('=').next().unwrap_or("")))
                .collect();
            let new_path = if kept.is_empty() {
                head.to_owned()
            } else {
                format!("{head};{}", kept.join(";"))
            };
            if new_path != path {
                url.set_path(&new_path);
                changed = true;
            }
        }
        if let Some(q) = url.query().map(str::to_owned) {
            let kept: Vec<&str> = q
                .split('&')
                .filter(|kv| !kv.is_empty() && !self.strips(kv.split('=').next().unwrap_or("")))
                .collect();
            let new_q = kept.join("&");
            if new_q != q {
                url.set_query(if new_q.is_empty() { None } else { Some(&new_q) });
                changed = true;
            }
        }
        changed
    }

    /// Why `url` looks like a trap, if it does.
    pub fn trap(&self, url: &Url) -> Option<TrapReason> {
        if url.as_str().len() > self.max_url_bytes {
            return Some(TrapReason::TooLong);
        }
        let segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        if segments.len() > self.max_path_depth {
            return Some(TrapReason::TooDeep);
        }
        let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for s in &segments {
            let c = counts.entry(s).or_default();
            *c += 1;
            if *c > self.max_segment_repeats {
                return Some(TrapReason::RepeatingSegments);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn strips_tracking_and_session_parameters() {
        let p = UrlPolicy::default();
        for (input, want) in [
            (
                "http://a.com/x?utm_source=t&id=3&UTM_Medium=m",
                "http://a.com/x?id=3",
            ),
            ("http://a.com/x?PHPSESSID=abc", "http://a.com/x"),
            (
                "http://a.com/x;jsessionid=ABC?q=1&fbclid=zz",
                "http://a.com/x?q=1",
            ),
            (
                "http://a.com/x?aspsessionidqq=1&page=2",
                "http://a.com/x?page=2",
            ),
            ("http://a.com/x?side=1", "http://a.com/x?side=1"),
            // A non-ASCII name shorter in characters than a prefix rule once
            // panicked: a byte slice inside 'é'.
            (
                "http://a.com/x?caf%C3%A9=1&utm_x=2",
                "http://a.com/x?caf%C3%A9=1",
            ),
            ("http://a.com/x?ut%C3%A9=1", "http://a.com/x?ut%C3%A9=1"),
        ] {
            let mut url = u(input);
            p.strip(&mut url);
            assert_eq!(url.as_str(), want, "{input}");
        }
        let custom = UrlPolicy {
            strip_params: vec!["ref".into()],
            ..UrlPolicy::default()
        };
        let mut url = u("http://a.com/?ref=x&utm_source=y");
        custom.strip(&mut url);
        assert_eq!(
            url.as_str(),
            "http://a.com/?utm_source=y",
            "the list is configurable"
        );
    }

    #[test]
    fn flags_long_deep_and_repeating_urls() {
        let p = UrlPolicy::default();
        assert_eq!(p.trap(&u("http://a.com/2026/01/post")), None);
        assert_eq!(
            p.trap(&u(&format!("http://a.com/{}", "x".repeat(2000)))),
            Some(TrapReason::TooLong)
        );
        let deep: String = (0..20).map(|i| format!("/s{i}")).collect();
        assert_eq!(
            p.trap(&u(&format!("http://a.com{deep}"))),
            Some(TrapReason::TooDeep)
        );
        assert_eq!(
            p.trap(&u("http://a.com/deep/a/a/a/")),
            Some(TrapReason::RepeatingSegments)
        );
        assert_eq!(
            p.trap(&u("http://a.com/a/b/a/b/a/b")),
            Some(TrapReason::RepeatingSegments)
        );
        assert_eq!(p.trap(&u("http://a.com/a/b/a/b")), None);
    }

    proptest! {
        #[test]
        fn stripping_is_idempotent(q in "[a-z_]{1,8}=[a-z0-9]{0,5}(&[a-z_]{1,8}=[a-z0-9]{0,5}){0,4}") {
            let p = UrlPolicy::default();
            let mut once = u(&format!("http://a.com/p?{q}"));
            p.strip(&mut once);
            let mut twice = once.clone();
            prop_assert!(!p.strip(&mut twice));
            prop_assert_eq!(once, twice);
        }
    }
}
