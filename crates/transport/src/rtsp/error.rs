//! The typed errors of the RTSP publisher.
//!
//! Every error names what a user can act on: the URL (always without credentials), the RTSP
//! method, the status code and reason phrase, the step that timed out, or the byte offset of a
//! malformed reply.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::net::ConnectError;
use crate::rtp::RtpError;
use crate::session::MediaError;

/// An RTSP request method the publisher sends (RFC 2326 §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// OPTIONS (§10.1): capabilities, and the keepalive of servers without GET_PARAMETER.
    Options,
    /// ANNOUNCE (§10.3): posts the SDP description of what will be recorded.
    Announce,
    /// SETUP (§10.4): negotiates the transport of the stream.
    Setup,
    /// RECORD (§10.11): starts recording.
    Record,
    /// GET_PARAMETER (§10.8): the keepalive, when the server lists it in `Public`.
    GetParameter,
    /// TEARDOWN (§10.7): ends the session.
    Teardown,
}

impl Method {
    /// The method name as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Options => "OPTIONS",
            Method::Announce => "ANNOUNCE",
            Method::Setup => "SETUP",
            Method::Record => "RECORD",
            Method::GetParameter => "GET_PARAMETER",
            Method::Teardown => "TEARDOWN",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The network step that timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Waiting for the reply to a request.
    Request(Method),
    /// Writing to the connection (the server stopped reading).
    Write,
    /// Waiting for the server to close the connection after TEARDOWN.
    Shutdown,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Request(m) => write!(f, "waiting for the reply to {m}"),
            Step::Write => f.write_str("writing to the server"),
            Step::Shutdown => f.write_str("closing the connection"),
        }
    }
}

/// A reply status the publisher did not expect, with its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusError {
    /// The request that was answered.
    pub method: Method,
    /// The status code (e.g. 404).
    pub status: u16,
    /// The server's reason phrase (e.g. "Not Found").
    pub reason: String,
    /// The request URL, without credentials.
    pub url: String,
    /// The CSeq of the request.
    pub cseq: u32,
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} (CSeq {}): {} {}",
            self.method, self.url, self.cseq, self.status, self.reason
        )
    }
}

/// Errors of the RTSP publisher. URLs in errors never contain credentials.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RtspError {
    /// The URL is not a valid `rtsp://` URL.
    #[error("invalid RTSP URL {url}: {reason}")]
    InvalidUrl {
        /// The URL with any credentials removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The connection could not be opened (DNS, refused, timed out).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A network step took longer than its configured time.
    #[error("timed out after {after:?} {step} ({url})")]
    Timeout {
        /// What the publisher was doing.
        step: Step,
        /// The configured limit.
        after: Duration,
        /// The URL, without credentials.
        url: String,
    },
    /// 401 Unauthorized: no credentials were given, or the server rejected them.
    #[error("{status} ({})", if *.credentials_given { "credentials rejected" } else { "the server requires credentials; give them in the URL" })]
    Unauthorized {
        /// The reply.
        status: StatusError,
        /// Whether credentials were sent (false: the URL had none).
        credentials_given: bool,
    },
    /// 404 Not Found: no such path on the server.
    #[error("{0}")]
    NotFound(StatusError),
    /// 454 Session Not Found: the server forgot the session (timeout, restart).
    #[error("{0}")]
    SessionNotFound(StatusError),
    /// 455 Method Not Valid in This State.
    #[error("{0}")]
    MethodNotValidInState(StatusError),
    /// 461 Unsupported Transport: the server refuses this lower transport (try the other one).
    #[error("{0}")]
    UnsupportedTransport(StatusError),
    /// Any other non-success status.
    #[error("{0}")]
    Status(StatusError),
    /// The server closed the connection.
    #[error("the server closed the connection {during} ({url})")]
    ConnectionClosed {
        /// What the publisher was doing ("while recording", "waiting for the reply to SETUP").
        during: String,
        /// The URL, without credentials.
        url: String,
    },
    /// The server sent bytes that are not a valid RTSP message.
    #[error(
        "malformed reply from {url} at byte {offset} of the connection: {reason} (it sent \
         {seen}); is this an RTSP server?"
    )]
    MalformedReply {
        /// Byte offset in the server's stream where the problem was found.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
        /// The first bytes of the message that failed, escaped.
        seen: String,
        /// The URL, without credentials.
        url: String,
    },
    /// The server took RTP interleaved on the RTSP connection in SETUP, then answered the
    /// data with error replies that carry no CSeq: it parses the interleaved frames as
    /// requests (RFC 2326 §10.12) and cannot record them.
    #[error(
        "{url}: the server rejects RTP interleaved on the RTSP connection: it answered the \
         media with \"{status} {reason}\" replies that carry no CSeq; try UDP (--transport udp)"
    )]
    InterleavedRejected {
        /// The status of the first such reply.
        status: u16,
        /// Its reason phrase.
        reason: String,
        /// The URL, without credentials.
        url: String,
    },
    /// The server's reply is well-formed but unusable (e.g. no `Session` header after SETUP).
    #[error("{method} {url}: {reason}")]
    Protocol {
        /// The request that was answered.
        method: Method,
        /// What is missing or wrong.
        reason: String,
        /// The URL, without credentials.
        url: String,
    },
    /// The server asks for an authentication scheme the publisher does not support.
    #[error("{url}: unsupported authentication ({offered})")]
    UnsupportedAuth {
        /// The schemes the server offered.
        offered: String,
        /// The URL, without credentials.
        url: String,
    },
    /// An I/O error on the connection or the UDP sockets.
    #[error("I/O error {during} ({url})")]
    Io {
        /// What the publisher was doing.
        during: &'static str,
        /// The URL, without credentials.
        url: String,
        /// The error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A media unit was refused before it was queued; the session goes on.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// The access unit could not be packetized.
    #[error("cannot packetize the access unit")]
    Packetize(#[source] RtpError),
    /// The publisher is not recording (closed, failed, or not set up yet).
    #[error("the publisher is not recording ({0})")]
    NotRecording(&'static str),
    /// The core's send queue is over its limit (a driver must wait for `can_send`).
    #[error("send queue full ({queued} bytes queued, limit {limit})")]
    QueueFull {
        /// Bytes queued.
        queued: usize,
        /// The configured limit.
        limit: usize,
    },
}

impl RtspError {
    /// The status code, for errors that come from a server reply.
    pub fn status(&self) -> Option<u16> {
        self.status_error().map(|s| s.status)
    }

    /// The status details, for errors that come from a server reply.
    pub fn status_error(&self) -> Option<&StatusError> {
        match self {
            RtspError::Unauthorized { status: s, .. }
            | RtspError::NotFound(s)
            | RtspError::SessionNotFound(s)
            | RtspError::MethodNotValidInState(s)
            | RtspError::UnsupportedTransport(s)
            | RtspError::Status(s) => Some(s),
            _ => None,
        }
    }

    /// The typed error for a non-success reply.
    pub(crate) fn from_status(s: StatusError, credentials_given: bool) -> RtspError {
        match s.status {
            401 => RtspError::Unauthorized {
                status: s,
                credentials_given,
            },
            404 => RtspError::NotFound(s),
            454 => RtspError::SessionNotFound(s),
            455 => RtspError::MethodNotValidInState(s),
            461 => RtspError::UnsupportedTransport(s),
            _ => RtspError::Status(s),
        }
    }

    pub(crate) fn io(during: &'static str, url: &str, e: std::io::Error) -> RtspError {
        RtspError::Io {
            during,
            url: url.to_string(),
            source: Arc::new(e),
        }
    }
}
