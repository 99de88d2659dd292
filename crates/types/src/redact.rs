//! The one place that decides what of a URL may be printed.

use std::fmt;

/// Query parameters whose values are secrets when their lower-cased name contains one of these
/// (`pass`, `password`, `pwd`, `token`, `access_token`, `secret`, `key`, `streamkey`, `sig`,
/// `signature`, `auth`, …).
const SECRET_PARTS: &[&str] = &["pass", "pwd", "token", "secret", "key", "sig", "auth"];

/// `url` as it may be printed: the userinfo (`user:password@`) removed and the values of
/// secret-looking query parameters replaced by `***`. Every message, log line, `Debug` and
/// `Display` of the project that shows a URL goes through this function.
///
/// Text without `://` (a file path) is returned unchanged, unless it reads as
/// `user:secret@host` (an `@` with a `:` or a space before it: a URL missing its scheme, or
/// not a URL at all), which is shown as `***@host`. The userinfo ends at the last `@` of
/// the authority, as URL parsers read it (RFC 3986 §3.2.1), so a password with an `@` in it
/// is hidden whole. A password with an unescaped `/`, `?` or `#` makes the URL malformed; when
/// the authority then looks like `user:secret` (what follows its `:` is not a port number),
/// everything up to the last `@` of the URL is hidden: better to hide a path than to show a
/// password.
///
/// ASCII tabs and line breaks are removed first, as URL parsers remove them before reading a
/// URL (WHATWG URL Standard, basic URL parser): the userinfo is then found where the parser
/// finds it, and the result stays on one line.
///
/// ```
/// use mpegcoder_types::redact_url;
/// assert_eq!(redact_url("rtsp://alice:s3cret@cam:8554/live?x=1"), "rtsp://cam:8554/live?x=1");
/// assert_eq!(redact_url("rtmp://host/app/cam?token=abc"), "rtmp://host/app/cam?token=***");
/// assert_eq!(redact_url("/videos/a@b.mp4"), "/videos/a@b.mp4");
/// ```
pub fn redact_url(url: &str) -> String {
    if url.contains(['\t', '\r', '\n']) {
        let cleaned: String = url
            .chars()
            .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
            .collect();
        return redact_url(&cleaned);
    }
    let Some(scheme_end) = url.find("://") else {
        return match url.rfind('@') {
            Some(at) if url[..at].contains(|c: char| c == ':' || c.is_whitespace()) => {
                format!("***@{}", &url[at + 1..])
            }
            _ => url.to_string(),
        };
    };
    let (scheme, rest) = (&url[..scheme_end + 3], &url[scheme_end + 3..]);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let (host_and_tail_start, host_end) = match authority.rfind('@') {
        Some(at) => (at + 1, authority_end),
        None if looks_like_credentials(authority) && rest[authority_end..].contains('@') => {
            // Malformed: a delimiter inside the password. Hide up to the last '@'.
            let at = rest.rfind('@').unwrap_or(0);
            let host_end = rest[at + 1..]
                .find(['/', '?', '#'])
                .map_or(rest.len(), |i| at + 1 + i);
            (at + 1, host_end)
        }
        None => (0, authority_end),
    };
    let host = &rest[host_and_tail_start..host_end];
    let tail = &rest[host_end..];
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    out.push_str(host);
    push_masked_tail(&mut out, tail);
    out
}

/// True when an authority without `@` reads as `user:secret` rather than `host[:port]`.
fn looks_like_credentials(authority: &str) -> bool {
    if authority.starts_with('[') {
        // An IPv6 literal: `[::1]` or `[::1]:8554`.
        return false;
    }
    match authority.rsplit_once(':') {
        Some((_, port)) => port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Appends a path-query-fragment tail with secret query values masked.
fn push_masked_tail(out: &mut String, tail: &str) {
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (tail, None),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((name, _)) if is_secret(name) => {
                        out.push_str(name);
                        out.push_str("=***");
                    }
                    _ => out.push_str(pair),
                }
            }
        }
        None => out.push_str(before_fragment),
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
}

fn is_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_PARTS.iter().any(|s| lower.contains(s))
}

/// Displays a URL redacted by [`redact_url`], without allocating a copy up front:
/// `format!("{}", Redacted(&url))`, or `.field("url", &Redacted(&url))` in a `Debug` impl.
#[derive(Clone, Copy)]
pub struct Redacted<'a>(pub &'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(self.0))
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", redact_url(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tabs_and_line_breaks_are_removed_before_the_userinfo_is_found() {
        // A URL parser reads this as rtsp://alice:s3cret@cam/x?u=rtsp://h.
        let shown = redact_url("rtsp:/\n/alice:s3cret@cam/x?u=rtsp://h");
        assert_eq!(shown, "rtsp://cam/x?u=rtsp://h");
        assert_eq!(redact_url("rtmp://bob:p\tw@host/app"), "rtmp://host/app");
    }

    #[test]
    fn removes_userinfo_and_masks_secret_query_values() {
        assert_eq!(
            redact_url("rtsp://alice:s3cret@host:8554/cam?x=1"),
            "rtsp://host:8554/cam?x=1"
        );
        assert_eq!(
            redact_url("rtmp://host/live/key?user=bob&pass=hunter2"),
            "rtmp://host/live/key?user=bob&pass=***"
        );
        assert_eq!(
            redact_url("rtmp://host/live/cam?key=abc&Token=t&streamKey=s&x=1"),
            "rtmp://host/live/cam?key=***&Token=***&streamKey=***&x=1"
        );
        assert_eq!(redact_url("srt://u:p@h:9000"), "srt://h:9000");
        assert_eq!(redact_url("rtsp://u@h/x"), "rtsp://h/x");
        // A password containing '@': everything up to the last '@' of the authority goes.
        assert_eq!(redact_url("rtsp://u:p@ss@h/x"), "rtsp://h/x");
        assert_eq!(
            redact_url("rtsp://user:secret@cam.local:554/live?x=1"),
            "rtsp://cam.local:554/live?x=1"
        );
    }

    #[test]
    fn leaves_paths_and_hosts_alone() {
        assert_eq!(redact_url("/tmp/a@b.mp4"), "/tmp/a@b.mp4");
        assert_eq!(redact_url("http://host/p@th"), "http://host/p@th");
        assert_eq!(redact_url("rtsp://host:8554/p@th"), "rtsp://host:8554/p@th");
        assert_eq!(redact_url("rtsp://[::1]:8554/a@b"), "rtsp://[::1]:8554/a@b");
        assert_eq!(redact_url("rtsp://[::1]/a@b"), "rtsp://[::1]/a@b");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("videos/u@host.mp4"), "videos/u@host.mp4");
        assert_eq!(redact_url("u:p@host"), "***@host");
        assert_eq!(redact_url("clip@2x.mp4"), "clip@2x.mp4");
        assert_eq!(redact_url("not a url hunter2@"), "***@");
        assert_eq!(redact_url("rtmp:/u:p@host/live/x"), "***@host/live/x");
        assert_eq!(redact_url(""), "");
        assert_eq!(redact_url("rtsp://"), "rtsp://");
    }

    #[test]
    fn malformed_passwords_with_delimiters_are_hidden() {
        assert_eq!(redact_url("rtsp://u:pa/ss@host/cam"), "rtsp://host/cam");
        assert_eq!(redact_url("rtsp://u:pa?ss@host/cam"), "rtsp://host/cam");
        assert_eq!(redact_url("rtsp://u:pa#ss@host/cam"), "rtsp://host/cam");
        assert_eq!(
            redact_url("rtmp://u:a/b@c@host/app/key"),
            "rtmp://host/app/key"
        );
        assert_eq!(redact_url("rtsp://u:/x@host/cam"), "rtsp://host/cam");
        // A backslash is no delimiter for rtsp or rtmp (nor for URL parsers outside http).
        assert_eq!(redact_url("rtsp://u:12\\x@host/p"), "rtsp://host/p");
        assert_eq!(redact_url("rtsp://:Qpw:0\\@h:5/cam"), "rtsp://h:5/cam");
    }

    #[test]
    fn display_adapter_matches() {
        let url = "rtsp://u:pw@h/x?token=t";
        assert_eq!(Redacted(url).to_string(), "rtsp://h/x?token=***");
        assert_eq!(format!("{:?}", Redacted(url)), "\"rtsp://h/x?token=***\"");
    }

    fn secret() -> impl Strategy<Value = String> {
        // Distinctive (upper case, never in generated hosts or paths), with every character a
        // password may hold without escaping in the authority, '@' and ':' included.
        "Q[A-Z!$%&'()*+,;=:@~_.\\\\-]{5,14}"
    }

    proptest! {
        #[test]
        fn no_password_or_secret_query_value_survives(
            scheme in "(rtsp|rtmp|rtsps|rtmps|http|srt)",
            user in "[a-z0-9._~-]{0,8}",
            password in secret(),
            host in "[a-z0-9]{1,10}(\\.[a-z]{2,5})?",
            port in proptest::option::of(1u16..),
            path in "(/[a-z0-9@._-]{0,8}){0,3}",
            token in "Q[A-Z0-9!$'()*+,;=:@~_.-]{5,14}",
            name in "(token|key|pass|password|pwd|secret|streamKey|auth|sig|access_token)",
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            for url in [
                format!("{scheme}://{user}:{password}@{host}{port}{path}"),
                format!("{scheme}://{user}:{password}@{host}{port}{path}?{name}={token}&a=1"),
                format!("{scheme}://{host}{port}{path}?a=1&{name}={token}"),
            ] {
                let shown = redact_url(&url);
                prop_assert!(!shown.contains(&password), "{url} -> {shown}");
                prop_assert!(!shown.contains(&token), "{url} -> {shown}");
                prop_assert!(shown.contains(&host), "{url} -> {shown}");
                let displayed = Redacted(&url).to_string();
                prop_assert_eq!(&displayed, &shown);
            }
        }
    }
}
