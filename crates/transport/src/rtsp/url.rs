//! `rtsp://` URLs with their credentials held apart, so they are never printed.

use std::fmt;

use url::Url;

use super::error::RtspError;
use crate::redact_url;

/// The default RTSP port (RFC 2326 §3.2).
pub const DEFAULT_PORT: u16 = 554;

/// The default RTSPS port (RFC 7826 §19.2: `rtsps` "identifies a resource … over TLS", port
/// 322).
pub const DEFAULT_TLS_PORT: u16 = 322;

/// User name and password taken from a URL's userinfo, percent-decoded.
///
/// `Debug` shows neither: only that credentials are present.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// An `rtsp://` or `rtsps://` `[user:pass@]host[:port]/path[?query]` URL.
///
/// The credentials are split off when parsing: [`Display`](fmt::Display), [`Debug`] and every
/// error show the URL without them, and requests are sent to the URL without them.
#[derive(Clone, PartialEq, Eq)]
pub struct RtspUrl {
    url: Url,
    credentials: Option<Credentials>,
}

impl RtspUrl {
    /// Parses a URL. The scheme must be `rtsp` or `rtsps` (TLS); the port defaults to 554, or
    /// 322 for `rtsps`.
    pub fn parse(input: &str) -> Result<RtspUrl, RtspError> {
        let invalid = |reason: String| RtspError::InvalidUrl {
            url: redact_url(input),
            reason,
        };
        let mut url = Url::parse(input.trim()).map_err(|e| invalid(e.to_string()))?;
        if !url.scheme().eq_ignore_ascii_case("rtsp") && !url.scheme().eq_ignore_ascii_case("rtsps")
        {
            return Err(invalid(format!(
                "scheme {:?} is neither \"rtsp\" nor \"rtsps\"",
                url.scheme()
            )));
        }
        match url.host_str() {
            None | Some("") => return Err(invalid("no host".into())),
            Some(_) => {}
        }
        if url.fragment().is_some() {
            url.set_fragment(None);
        }
        let credentials = if !url.username().is_empty() || url.password().is_some() {
            let username = percent_decode(url.username())
                .ok_or_else(|| invalid("user name is not valid UTF-8".into()))?;
            let password = percent_decode(url.password().unwrap_or(""))
                .ok_or_else(|| invalid("password is not valid UTF-8".into()))?;
            // Removing userinfo cannot fail for a URL with a host.
            url.set_username("")
                .map_err(|()| invalid("cannot remove user name".into()))?;
            url.set_password(None)
                .map_err(|()| invalid("cannot remove password".into()))?;
            Some(Credentials { username, password })
        } else {
            None
        };
        Ok(RtspUrl { url, credentials })
    }

    /// The URL without credentials (what requests are sent to).
    pub fn as_url(&self) -> &Url {
        &self.url
    }

    /// The URL without credentials, as a string.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The host name or address (IPv6 addresses without brackets).
    pub fn host(&self) -> String {
        match self.url.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => String::new(),
        }
    }

    /// The port (554, or 322 for `rtsps`, when the URL names none).
    pub fn port(&self) -> u16 {
        let default = if self.is_tls() {
            DEFAULT_TLS_PORT
        } else {
            DEFAULT_PORT
        };
        self.url.port().unwrap_or(default)
    }

    /// True for `rtsps://`: the connection is TLS, and RTP must be interleaved on it.
    pub fn is_tls(&self) -> bool {
        self.url.scheme().eq_ignore_ascii_case("rtsps")
    }

    /// The credentials from the URL, percent-decoded.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// Control URL resolution for SETUP (RFC 2326 §C.1.1): `control` is taken relative to this
    /// URL (the base). An absolute control URL is used as is; `*` means the base itself.
    ///
    /// RFC 2326 resolves relative URLs as RFC 1808 does, which would replace the base's last
    /// path segment; every server we publish to (GStreamer, ffmpeg, MediaMTX, Wowza) instead
    /// treats the presentation URL as a directory and expects `<base>/<control>`, so a `/` is
    /// inserted when the base path does not end in one. A query string stays at the end.
    pub fn join_control(&self, control: &str) -> Result<RtspUrl, RtspError> {
        let control = control.trim();
        if control.is_empty() || control == "*" {
            return Ok(self.clone());
        }
        let absolute = |scheme: &str| {
            control
                .get(..scheme.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
        };
        if absolute("rtsp://") || absolute("rtsps://") {
            let mut joined = RtspUrl::parse(control)?;
            joined.credentials = self.credentials.clone();
            return Ok(joined);
        }
        let mut url = self.url.clone();
        let path = url.path().to_string();
        let new_path = if path.ends_with('/') {
            format!("{path}{control}")
        } else {
            format!("{path}/{control}")
        };
        url.set_path(&new_path);
        Ok(RtspUrl {
            url,
            credentials: self.credentials.clone(),
        })
    }

    /// A copy with another base URL (from `Content-Base` or `Content-Location`), keeping the
    /// credentials. Relative values are resolved against this URL.
    pub fn with_base(&self, base: &str) -> Result<RtspUrl, RtspError> {
        let url = self
            .url
            .join(base.trim())
            .map_err(|e| RtspError::InvalidUrl {
                url: redact_url(base),
                reason: format!("bad base URL from the server: {e}"),
            })?;
        let mut joined = RtspUrl::parse(url.as_str())?;
        joined.credentials = self.credentials.clone();
        Ok(joined)
    }
}

/// The URL without credentials, secret query values masked ([`redact_url`]): for messages.
/// Requests use [`RtspUrl::as_str`].
impl fmt::Display for RtspUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(self.url.as_str()))
    }
}

impl fmt::Debug for RtspUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtspUrl")
            .field("url", &redact_url(self.url.as_str()))
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl std::str::FromStr for RtspUrl {
    type Err = RtspError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RtspUrl::parse(s)
    }
}

/// Decodes `%XX` escapes; `None` when the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |c: Option<&u8>| c.and_then(|&c| (c as char).to_digit(16));
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            if let (Some(h), Some(l)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_and_redacts_credentials() {
        let u = RtspUrl::parse("rtsp://al%20ice:p%40ss%3Aw0rd@example.com/live/cam?x=1").unwrap();
        assert_eq!(u.to_string(), "rtsp://example.com/live/cam?x=1");
        assert_eq!(u.as_str(), "rtsp://example.com/live/cam?x=1");
        assert_eq!(u.port(), 554);
        assert_eq!(u.host(), "example.com");
        let c = u.credentials().unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("al ice", "p@ss:w0rd")
        );
        let dbg = format!("{u:?} {c:?}");
        assert!(
            !dbg.contains("ss") && !dbg.contains("al ice") && !dbg.contains("al%20ice"),
            "{dbg}"
        );
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn ports_hosts_and_ipv6() {
        let u = RtspUrl::parse("rtsp://127.0.0.1:8554/record").unwrap();
        assert_eq!((u.host().as_str(), u.port()), ("127.0.0.1", 8554));
        assert!(u.credentials().is_none());
        let u = RtspUrl::parse("rtsp://[::1]:9000/x").unwrap();
        assert_eq!((u.host().as_str(), u.port()), ("::1", 9000));
        let u = RtspUrl::parse("RTSP://Host").unwrap();
        assert_eq!(u.port(), 554);
        assert!(!u.is_tls());
        let u = RtspUrl::parse("RTSPS://Host/live").unwrap();
        assert_eq!(u.port(), 322);
        assert!(u.is_tls());
        assert_eq!(u.to_string(), "rtsps://Host/live");
        let u = RtspUrl::parse("rtsps://h:8322/live").unwrap();
        assert_eq!(u.port(), 8322);
        assert_eq!(
            u.join_control("rtsps://h:8322/live/stream=0")
                .unwrap()
                .to_string(),
            "rtsps://h:8322/live/stream=0"
        );
        assert!(RtspUrl::parse("rtspu://h/x").is_err());
        // The unencoded '@' in a password: the last '@' separates the userinfo.
        let u = RtspUrl::parse("rtsp://bob:a@b@host/p").unwrap();
        assert_eq!(u.credentials().unwrap().password, "a@b");
        assert_eq!(u.host(), "host");
    }

    #[test]
    fn rejects_bad_urls_without_echoing_passwords() {
        for bad in [
            "http://u:hunter2@host/x",
            "rtsp://u:hunter2@/x",
            "rtsp://u:hunter2@ho st/x",
            "not a url hunter2@",
        ] {
            let e = RtspUrl::parse(bad).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(matches!(e, RtspError::InvalidUrl { .. }), "{shown}");
        }
        let e = RtspUrl::parse("rtsp://u:p/w@d@host/x").unwrap_err();
        assert!(!e.to_string().contains("p/w"), "{e}");
        let u = RtspUrl::parse("rtsp://h/x?token=abc").unwrap();
        assert_eq!(u.to_string(), "rtsp://h/x?token=***");
        assert_eq!(u.as_str(), "rtsp://h/x?token=abc");
    }

    #[test]
    fn control_urls_resolve_as_servers_expect() {
        let base = RtspUrl::parse("rtsp://u:p@h:1/live/cam?k=v").unwrap();
        let s = base.join_control("streamid=0").unwrap();
        assert_eq!(s.as_str(), "rtsp://h:1/live/cam/streamid=0?k=v");
        assert_eq!(s.credentials(), base.credentials());
        let slash = RtspUrl::parse("rtsp://h/live/").unwrap();
        assert_eq!(
            slash.join_control("trackID=0").unwrap().as_str(),
            "rtsp://h/live/trackID=0"
        );
        assert_eq!(base.join_control("*").unwrap(), base);
        assert_eq!(
            base.join_control("rtsp://other:2/a/b").unwrap().as_str(),
            "rtsp://other:2/a/b"
        );
        let rebased = base.with_base("rtsp://h:1/live/cam2/").unwrap();
        assert_eq!(
            rebased.join_control("streamid=0").unwrap().as_str(),
            "rtsp://h:1/live/cam2/streamid=0"
        );
        assert_eq!(rebased.credentials(), base.credentials());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%41%zz%4").unwrap(), "aA%zz%4");
        assert_eq!(percent_decode("%").unwrap(), "%");
        assert!(percent_decode("%ff").is_none());
    }
}
