//! RTMP URLs: `rtmp://[user:pass@]host[:port]/app[/instance]/streamkey[?query]`.
//!
//! RTMP has no URL in the protocol itself: a client connects to an *application* (the
//! `connect` command's `app` and `tcUrl` properties, RTMP spec §7.2.1.1) and then publishes a
//! *stream name* (the `publish` command, §7.2.2.6). This module splits a URL into those parts
//! the way common tools (ffmpeg, OBS) do:
//!
//! - one path segment after the application (`/live/key`): app `live`, key `key`;
//! - two or more (`/app/instance/key`, `/app/instance/a/b`): app `app/instance`, key the rest.
//!
//! The query stays on the stream key (`key?user=u&pass=p`): MediaMTX, nginx-rtmp's
//! `on_publish` and SRS read publish parameters from there. Credentials in the userinfo part
//! (`user:pass@`) are not part of the RTMP protocol; they are appended to the key's query as
//! `user=…&pass=…` (MediaMTX's convention) unless the query already names a `user`.
//!
//! Credentials are never printed: [`RtmpUrl`]'s `Display` and `Debug` (and so every error that
//! carries a URL) go through [`redact_url`]: no userinfo, and the values of secret-looking
//! query parameters replaced by `***`.

use std::fmt;

use crate::redact_url;

/// The default RTMP port (RTMP spec §4: "port 1935").
pub const DEFAULT_PORT: u16 = 1935;

/// The default RTMPS port: RTMP inside TLS is served where HTTPS is (443), as ffmpeg, OBS and
/// the large ingest services use it.
pub const DEFAULT_TLS_PORT: u16 = 443;

/// Why a URL is not a usable RTMP publish URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The text is not a URL at all.
    #[error("not a URL: {0}")]
    Syntax(String),
    /// The scheme is neither `rtmp` nor `rtmps` (`rtmpt` and `rtmpe` are not supported).
    #[error("unsupported scheme {0:?} (only rtmp:// and rtmps:// are supported)")]
    Scheme(String),
    /// No host.
    #[error("no host")]
    NoHost,
    /// No application name in the path.
    #[error("no application name (expected rtmp://host/app/streamkey)")]
    NoApp,
    /// No stream key after the application.
    #[error("no stream key (expected rtmp://host/app/streamkey)")]
    NoStreamKey,
}

/// A parsed RTMP publish URL.
///
/// ```
/// use mpegcoder_transport::rtmp::RtmpUrl;
/// let url = RtmpUrl::parse("rtmp://alice:s3cret@example.com/live/cam?x=1").unwrap();
/// assert_eq!(url.app(), "live");
/// assert_eq!(url.tc_url(), "rtmp://example.com/live");
/// assert_eq!(url.stream_key(), "cam?x=1&user=alice&pass=s3cret");
/// assert_eq!(url.port(), 1935);
/// assert_eq!(url.to_string(), "rtmp://example.com/live/cam?x=1");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// `rtmps://`: RTMP inside TLS.
    tls: bool,
    host: String,
    /// Host as written in a URL (IPv6 in brackets).
    host_in_url: String,
    port: u16,
    explicit_port: bool,
    app: String,
    key: String,
    /// The query as given (without credentials from the userinfo).
    query: Option<String>,
    user: Option<String>,
    password: Option<String>,
}

impl RtmpUrl {
    /// Parses a publish URL.
    pub fn parse(text: &str) -> Result<RtmpUrl, UrlError> {
        let url = url::Url::parse(text.trim()).map_err(|e| UrlError::Syntax(e.to_string()))?;
        let tls = if url.scheme().eq_ignore_ascii_case("rtmp") {
            false
        } else if url.scheme().eq_ignore_ascii_case("rtmps") {
            true
        } else {
            return Err(UrlError::Scheme(url.scheme().to_string()));
        };
        let (host, host_in_url) = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => (d.to_string(), d.to_string()),
            Some(url::Host::Ipv4(a)) => (a.to_string(), a.to_string()),
            Some(url::Host::Ipv6(a)) => (a.to_string(), format!("[{a}]")),
            _ => return Err(UrlError::NoHost),
        };
        let segments: Vec<&str> = url
            .path()
            .trim_start_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let (app, key) = match segments.as_slice() {
            [] => return Err(UrlError::NoApp),
            [_] => return Err(UrlError::NoStreamKey),
            [app, key] => ((*app).to_string(), (*key).to_string()),
            [app, instance, rest @ ..] => (format!("{app}/{instance}"), rest.join("/")),
        };
        let user = Some(url.username())
            .filter(|u| !u.is_empty())
            .map(str::to_string);
        let password = url.password().map(str::to_string);
        let default_port = if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT };
        Ok(RtmpUrl {
            tls,
            host,
            host_in_url,
            port: url.port().unwrap_or(default_port),
            explicit_port: url.port().is_some(),
            app,
            key,
            query: url.query().filter(|q| !q.is_empty()).map(str::to_string),
            user,
            password,
        })
    }

    /// The host name or address (IPv6 without brackets), for resolving and connecting.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port (1935, or 443 for `rtmps://`, unless the URL names one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// True for `rtmps://`: the connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The scheme: `rtmp` or `rtmps`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "rtmps"
        } else {
            "rtmp"
        }
    }

    /// The application name sent in `connect` (`app` or `app/instance`).
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The `tcUrl` sent in `connect`: `rtmp[s]://host[:port]/app`, without credentials or
    /// query.
    pub fn tc_url(&self) -> String {
        format!(
            "{}://{}{}/{}",
            self.scheme(),
            self.host_in_url,
            self.port_suffix(),
            self.app
        )
    }

    /// The stream name sent in `publish`: the key with its query, plus `user`/`pass` from the
    /// URL's userinfo when the query does not already carry a `user` (see the module docs).
    /// Contains secrets: never print it.
    pub fn stream_key(&self) -> String {
        let mut query: Vec<String> = self.query.iter().cloned().collect();
        let has_user = self.query.as_deref().is_some_and(|q| {
            q.split('&')
                .any(|p| p.split('=').next().is_some_and(|k| k == "user"))
        });
        if !has_user {
            if let Some(user) = &self.user {
                query.push(format!("user={user}"));
                if let Some(pass) = &self.password {
                    query.push(format!("pass={pass}"));
                }
            }
        }
        if query.is_empty() {
            self.key.clone()
        } else {
            format!("{}?{}", self.key, query.join("&"))
        }
    }

    /// The stream key without any query.
    pub fn key_name(&self) -> &str {
        &self.key
    }

    /// True when the URL carries a user name or password in its userinfo.
    pub fn has_credentials(&self) -> bool {
        self.user.is_some() || self.password.is_some()
    }

    /// The URL with credentials removed (what `Display` prints).
    pub fn redacted(&self) -> String {
        self.to_string()
    }

    fn port_suffix(&self) -> String {
        if self.explicit_port {
            format!(":{}", self.port)
        } else {
            String::new()
        }
    }
}

impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let query = self
            .query
            .as_deref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let plain = format!(
            "{}://{}{}/{}/{}{query}",
            self.scheme(),
            self.host_in_url,
            self.port_suffix(),
            self.app,
            self.key
        );
        f.write_str(&redact_url(&plain))
    }
}

impl fmt::Debug for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RtmpUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> RtmpUrl {
        RtmpUrl::parse(s).expect("valid URL")
    }

    #[test]
    fn app_key_and_tc_url() {
        let u = parse("rtmp://127.0.0.1/live/cam");
        assert_eq!(
            (u.host(), u.port(), u.app(), u.stream_key().as_str()),
            ("127.0.0.1", 1935, "live", "cam")
        );
        assert_eq!(u.tc_url(), "rtmp://127.0.0.1/live");
        assert_eq!(u.to_string(), "rtmp://127.0.0.1/live/cam");

        let u = parse("rtmp://media.example:19350/app/inst/key");
        assert_eq!(
            (u.app(), u.key_name(), u.port()),
            ("app/inst", "key", 19350)
        );
        assert_eq!(u.tc_url(), "rtmp://media.example:19350/app/inst");

        // Everything after app/instance is the key.
        let u = parse("rtmp://h/app/inst/a/b");
        assert_eq!((u.app(), u.key_name()), ("app/inst", "a/b"));

        // IPv6 literal: bracketed in tcUrl, bare for connecting.
        let u = parse("rtmp://[::1]:1936/live/x");
        assert_eq!(u.host(), "::1");
        assert_eq!(u.tc_url(), "rtmp://[::1]:1936/live");
    }

    #[test]
    fn rtmps_defaults_to_443_and_keeps_its_scheme() {
        let u = parse("RTMPS://live.example/app/key");
        assert!(u.is_tls());
        assert_eq!(u.port(), 443);
        assert_eq!(u.tc_url(), "rtmps://live.example/app");
        assert_eq!(u.to_string(), "rtmps://live.example/app/key");
        let u = parse("rtmps://127.0.0.1:8443/live/x");
        assert_eq!(
            (u.port(), u.tc_url().as_str()),
            (8443, "rtmps://127.0.0.1:8443/live")
        );
        assert!(!parse("rtmp://h/a/b").is_tls());
        assert!(matches!(
            RtmpUrl::parse("rtmpt://h/a/b"),
            Err(UrlError::Scheme(_))
        ));
    }

    #[test]
    fn query_stays_on_the_key() {
        let u = parse("rtmp://h/live/cam?user=bob&pass=pw&x=1");
        assert_eq!(u.stream_key(), "cam?user=bob&pass=pw&x=1");
        assert_eq!(u.tc_url(), "rtmp://h/live");
        assert_eq!(u.to_string(), "rtmp://h/live/cam?user=bob&pass=***&x=1");
    }

    #[test]
    fn userinfo_becomes_query_credentials_and_is_redacted() {
        let u = parse("rtmp://alice:s%40cret@h:1935/live/cam");
        assert!(u.has_credentials());
        assert_eq!(u.stream_key(), "cam?user=alice&pass=s%40cret");
        assert_eq!(u.tc_url(), "rtmp://h:1935/live");
        let shown = format!("{u} {u:?} {}", u.redacted());
        assert!(
            !shown.contains("s%40cret") && !shown.contains("alice"),
            "{shown}"
        );
        assert!(shown.contains("rtmp://h:1935/live/cam"));
        // A query that already names a user wins over the userinfo.
        let u = parse("rtmp://alice:pw@h/live/cam?user=bob&password=x");
        assert_eq!(u.stream_key(), "cam?user=bob&password=x");
        assert_eq!(u.to_string(), "rtmp://h/live/cam?user=bob&password=***");
    }

    #[test]
    fn rejects_what_cannot_be_published() {
        assert_eq!(
            RtmpUrl::parse("rtsp://h/live/x"),
            Err(UrlError::Scheme("rtsp".into()))
        );
        assert_eq!(RtmpUrl::parse("rtmp://h/live"), Err(UrlError::NoStreamKey));
        assert_eq!(RtmpUrl::parse("rtmp://h/"), Err(UrlError::NoApp));
        assert!(matches!(
            RtmpUrl::parse("not a url"),
            Err(UrlError::Syntax(_))
        ));
    }
}
