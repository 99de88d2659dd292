//! The RTMP publisher's errors.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::connect::RtmpStartError;
use super::flv::FlvError;
use super::session::ServerRefusal;
use super::url::UrlError;
use crate::h264::H264Error;
use crate::net::ConnectError;
use crate::options::InvalidOption;
use crate::session::MediaError;

/// The step of a publish session an error or timeout happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// The RTMP handshake (RTMP spec §5.2).
    Handshake,
    /// `connect` to the application, waiting for `NetConnection.Connect.Success` (§7.2.1.1).
    Connect,
    /// `createStream` and `publish`, waiting for `NetStream.Publish.Start` (§7.2.2.6).
    Publish,
    /// Sending media.
    Streaming,
    /// End of sequence, `deleteStream`, and draining the connection.
    Closing,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Handshake => "RTMP handshake",
            Step::Connect => "connect",
            Step::Publish => "publish",
            Step::Streaming => "streaming",
            Step::Closing => "closing",
        })
    }
}

/// An error of the RTMP publisher. Every variant that concerns a connection names the URL
/// with its credentials removed (see [`RtmpUrl`](super::RtmpUrl)'s `Display`).
///
/// Errors are `Clone` (I/O errors are shared behind an `Arc`): once a session fails, every
/// later call returns the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RtmpError {
    /// The URL cannot be used for publishing.
    #[error("invalid RTMP URL {url}")]
    InvalidUrl {
        /// The URL as given, credentials removed.
        url: String,
        /// What is wrong with it.
        #[source]
        source: UrlError,
    },
    /// The options are not usable (e.g. a chunk size out of range).
    #[error("invalid RTMP options")]
    InvalidOptions(#[from] InvalidOption),
    /// The video track cannot be described to the server (no usable SPS/PPS).
    #[error("cannot publish this track to {url}")]
    Track {
        /// The URL, credentials removed.
        url: String,
        /// Why.
        #[source]
        source: H264Error,
    },
    /// The audio track's codec has no FLV sound format (Opus).
    #[error("cannot publish {codec} audio to {url}: FLV has no sound format for it")]
    UnsupportedAudio {
        /// The URL, credentials removed.
        url: String,
        /// The codec.
        codec: crate::audio::AudioCodec,
    },
    /// The connection could not be opened (DNS, refused, timed out).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A step did not finish in time.
    #[error("{step} with {url} timed out after {after:?}")]
    Timeout {
        /// The URL, credentials removed.
        url: String,
        /// The step that timed out.
        step: Step,
        /// The configured limit.
        after: Duration,
    },
    /// The handshake or the session's setup failed.
    #[error(transparent)]
    Start(#[from] RtmpStartError),
    /// The server refused (`connect`, `publish`) or reported an error while streaming.
    #[error(transparent)]
    Refused(#[from] ServerRefusal),
    /// The server closed the connection.
    #[error("{url} closed the connection during {step}")]
    ConnectionClosed {
        /// The URL, credentials removed.
        url: String,
        /// What the publisher was doing.
        step: Step,
    },
    /// A socket error.
    #[error("I/O error {during} ({url}, during {step})")]
    Io {
        /// The URL, credentials removed.
        url: String,
        /// What the publisher was doing.
        step: Step,
        /// The socket operation.
        during: &'static str,
        /// The socket error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The RTMP session broke: a chunk or message rml_rtmp could not parse or build, a message
    /// the session did not expect, or server bytes refused before rml_rtmp read them (a
    /// malformed chunk header or command, interleaved chunk streams rml_rtmp 0.8 cannot
    /// reassemble) or that made it panic. The reason then starts with `the server sent …` and
    /// names the chunk: chunk type, chunk stream, message type, message stream, length.
    #[error("RTMP protocol error with {url} during {step}: {reason}")]
    Protocol {
        /// The URL, credentials removed.
        url: String,
        /// What the publisher was doing.
        step: Step,
        /// What went wrong.
        reason: String,
    },
    /// An access unit cannot be sent (e.g. DTS going backwards, composition time out of
    /// range). The session is unchanged: the caller may skip the access unit and go on.
    #[error("cannot send the access unit")]
    InvalidAccessUnit(#[from] FlvError),
    /// A media unit was refused before it was queued; the session goes on.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// `close` was not confirmed by the server in time.
    #[error("{url} did not confirm the end of the stream within {after:?}: {what}")]
    CloseNotConfirmed {
        /// The URL, credentials removed.
        url: String,
        /// The close timeout.
        after: Duration,
        /// What was not confirmed.
        what: String,
    },
    /// The call is not allowed in the session's state (e.g. `send` before publishing started
    /// or after `close`).
    #[error("not allowed while {0}")]
    InvalidState(&'static str),
}

impl RtmpError {
    /// The server's status code, for rejections and server errors.
    pub fn server_code(&self) -> Option<&str> {
        match self {
            RtmpError::Refused(r) => Some(&r.code),
            _ => None,
        }
    }

    /// True for a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RtmpError::Timeout { .. })
    }
}
