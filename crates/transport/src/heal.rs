//! Which failures a reconnection can heal.
//!
//! A publisher or puller that reconnects (see `mpegcoder`'s reconnect policy) retries only
//! what a server that restarts, drops a connection or stalls could have caused: a refused or
//! reset connection, a timeout, a closed connection, a server error (5xx), a busy stream name.
//! What retrying cannot change is final and reported at once: a bad URL or options, a host
//! name that does not resolve, 401/403 (credentials), 404 (no such path), a track or codec the
//! protocol cannot carry, a server whose replies we cannot use, and every TLS failure but a
//! lost or stalled handshake: a certificate that is not trusted, names another host or expired,
//! a protocol version or handshake the server refused, a server that does not speak TLS.

use crate::net::ConnectError;
use crate::publisher::PublishError;
use crate::pull::PullError;
use crate::rtmp::{RefusedStep, RtmpError};
use crate::rtsp::RtspError;

/// Whether an RTSP status may change on a later attempt (RFC 2326 §7.1.1): the server-side
/// errors (5xx) and the 4xx codes about the moment rather than the request: 408 Request
/// Timeout, 453 Not Enough Bandwidth, 454 Session Not Found, 455 Method Not Valid in This
/// State. 401, 403, 404 and the other client errors are final.
pub fn rtsp_status_heals(status: u16) -> bool {
    matches!(status, 408 | 453 | 454 | 455 | 500..=599)
}

impl ConnectError {
    /// A refused, reset or timed-out connection may heal; a host that does not resolve is a
    /// bad URL; TLS heals only when the handshake was lost or stalled
    /// ([`crate::tls::TlsFailure::heals`]), never on a certificate error.
    pub fn heals(&self) -> bool {
        match self {
            ConnectError::Resolve { .. }
            | ConnectError::NoAddress { .. }
            | ConnectError::TlsSetup { .. } => false,
            ConnectError::Tls { failure, .. } => failure.heals(),
            _ => true,
        }
    }
}

impl RtspError {
    /// True when the same request could succeed once the server is back (see the module docs).
    pub fn heals(&self) -> bool {
        match self {
            RtspError::Connect(c) => c.heals(),
            RtspError::Timeout { .. }
            | RtspError::ConnectionClosed { .. }
            | RtspError::Io { .. }
            | RtspError::SessionNotFound(_)
            | RtspError::MethodNotValidInState(_) => true,
            RtspError::Status(s) => rtsp_status_heals(s.status),
            // Bytes that are not RTSP (another protocol on the port) are final, like a bad URL.
            _ => false,
        }
    }
}

impl RtmpError {
    /// True when the same publish could succeed once the server is back. A refused `connect`
    /// is final (an application that does not exist, or an authentication hook that said
    /// no); a refused `publish` heals, since the usual cause, a stream name still held by our
    /// previous connection, clears once the server notices that connection is gone.
    pub fn heals(&self) -> bool {
        match self {
            RtmpError::Connect(c) => c.heals(),
            RtmpError::Timeout { .. }
            | RtmpError::ConnectionClosed { .. }
            | RtmpError::Io { .. }
            | RtmpError::Start(_)
            | RtmpError::CloseNotConfirmed { .. } => true,
            RtmpError::Refused(r) => r.step != RefusedStep::Connect,
            _ => false,
        }
    }
}

impl PublishError {
    /// True when reconnecting may heal the failure (see the [module docs](crate::heal)).
    pub fn heals(&self) -> bool {
        match self {
            PublishError::Rtsp(e) => e.heals(),
            PublishError::Rtmp(e) => e.heals(),
            PublishError::UnsupportedScheme { .. } | PublishError::Media(_) => false,
        }
    }
}

impl PullError {
    /// True when reconnecting may heal the failure: a source that went away (a camera
    /// rebooting, a server restarting) or stalled. Bad URLs, credentials, missing paths and
    /// streams without H.264 are final.
    pub fn heals(&self) -> bool {
        match self {
            PullError::Connect(c) => c.heals(),
            PullError::Timeout { .. }
            | PullError::NoVideoReceived { .. }
            | PullError::NoUsableVideo { .. }
            | PullError::Stalled { .. }
            | PullError::ConnectionClosed { .. }
            | PullError::Io { .. }
            | PullError::Start(_)
            | PullError::Rtsp { .. } => true,
            PullError::RtspStatus { status, .. } => rtsp_status_heals(*status),
            PullError::Refused(r) => r.step != RefusedStep::Connect,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn server_side_and_momentary_statuses_heal_the_rest_do_not() {
        for s in [408, 453, 454, 455, 500, 503, 551] {
            assert!(rtsp_status_heals(s), "{s}");
        }
        for s in [400, 401, 403, 404, 405, 451, 461] {
            assert!(!rtsp_status_heals(s), "{s}");
        }
    }

    #[test]
    fn lost_connections_heal_bad_urls_do_not() {
        let refused = ConnectError::Refused {
            addr: "127.0.0.1:1".parse().expect("address"),
            url: "rtsp://h/x".into(),
        };
        assert!(refused.heals());
        let unresolved = ConnectError::NoAddress {
            host: "nowhere".into(),
            url: "rtsp://nowhere/x".into(),
        };
        assert!(!unresolved.heals());
        let closed = RtspError::ConnectionClosed {
            during: "while recording".into(),
            url: "rtsp://h/x".into(),
        };
        assert!(PublishError::from(closed).heals());
        assert!(PublishError::from(RtspError::Connect(refused.clone())).heals());
        assert!(!PublishError::from(RtspError::Connect(unresolved)).heals());
        let bad_url = RtspError::InvalidUrl {
            url: "rtsp://".into(),
            reason: "no host".into(),
        };
        assert!(!PublishError::from(bad_url).heals());
        assert!(!PublishError::UnsupportedScheme { url: "x".into() }.heals());
        let io = RtmpError::Io {
            url: "rtmp://h/a/k".into(),
            step: crate::rtmp::Step::Streaming,
            during: "writing",
            source: Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        };
        assert!(PublishError::from(io).heals());
        let stalled = PullError::Stalled {
            url: "rtsp://h/x".into(),
            after: Duration::from_secs(5),
        };
        assert!(stalled.heals());
        let forbidden = PullError::RtspStatus {
            url: "rtsp://h/x".into(),
            step: crate::pull::PullStep::Describe,
            status: 403,
            message: "403 Forbidden".into(),
        };
        assert!(!forbidden.heals());
    }

    #[test]
    fn certificate_errors_are_final_a_lost_handshake_heals() {
        use crate::tls::{TlsFailure, TlsSetupError};
        let tls = |failure| ConnectError::Tls {
            host: "h".into(),
            url: "rtmps://h/a/k".into(),
            failure,
        };
        for final_failure in [
            TlsFailure::UnknownIssuer,
            TlsFailure::NameMismatch {
                expected: "h".into(),
                presented: vec!["other".into()],
            },
            TlsFailure::Expired { not_after: None },
            TlsFailure::ProtocolVersion("x".into()),
            TlsFailure::NotTls {
                seen: "RTSP/1.0 400".into(),
            },
        ] {
            let e = tls(final_failure);
            assert!(!e.heals(), "{e}");
            assert!(!PublishError::from(RtmpError::Connect(e.clone())).heals());
            assert!(!PullError::Connect(e).heals());
        }
        for healing in [
            TlsFailure::Closed,
            TlsFailure::Timeout(Duration::from_secs(5)),
        ] {
            assert!(tls(healing).heals());
        }
        let setup = ConnectError::TlsSetup {
            url: "rtsps://h/x".into(),
            source: TlsSetupError::NoRoots,
        };
        assert!(!PublishError::from(RtspError::Connect(setup)).heals());
    }
}
