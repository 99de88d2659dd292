//! The puller's errors.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::net::ConnectError;
use crate::options::InvalidOption;
use crate::rtmp::{RtmpStartError, ServerRefusal};

/// The step of a pull session an error or timeout happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PullStep {
    /// RTSP `DESCRIBE` (retina opens the connection as part of it).
    Describe,
    /// RTSP `SETUP` of the video stream (or of the audio stream that goes with it).
    Setup,
    /// RTSP `PLAY`.
    Play,
    /// The RTMP handshake (RTMP spec §5.2).
    Handshake,
    /// RTMP `connect` to the application, waiting for `NetConnection.Connect.Success`
    /// (RTMP spec §7.2.1.1).
    Connect,
    /// RTMP `createStream` (§7.2.1.3).
    CreateStream,
    /// RTMP `play` (§7.2.2.1), until `NetStream.Play.Start` or the first media message.
    RequestPlay,
    /// Receiving media.
    Streaming,
}

impl fmt::Display for PullStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PullStep::Describe => "DESCRIBE",
            PullStep::Setup => "SETUP",
            PullStep::Play => "PLAY",
            PullStep::Handshake => "RTMP handshake",
            PullStep::Connect => "connect",
            PullStep::CreateStream => "createStream",
            PullStep::RequestPlay => "play",
            PullStep::Streaming => "streaming",
        })
    }
}

/// An error of a pull session. Every variant that concerns a server names its URL with the
/// credentials removed.
///
/// Errors are `Clone` (I/O errors are shared behind an `Arc`), so a worker can hand the same
/// error to every caller that asks.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// The URL cannot be parsed or lacks a part the protocol needs.
    #[error("invalid URL {url}: {reason}")]
    InvalidUrl {
        /// The URL as given, credentials removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The scheme is none of `rtsp`, `rtsps`, `rtmp`, `rtmps`.
    #[error(
        "unsupported URL scheme {scheme:?} in {url} (expected rtsp://, rtsps://, rtmp:// or \
         rtmps://)"
    )]
    UnsupportedScheme {
        /// The URL as given, credentials removed.
        url: String,
        /// The scheme found.
        scheme: String,
    },
    /// The options are not usable (e.g. a zero timeout).
    #[error("invalid pull options")]
    InvalidOptions(#[from] InvalidOption),
    /// The connection could not be opened (DNS, refused, timed out).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A setup step did not finish in time.
    #[error("{step} with {url} timed out after {after:?}")]
    Timeout {
        /// The URL, credentials removed.
        url: String,
        /// The step that timed out.
        step: PullStep,
        /// The configured limit.
        after: Duration,
    },
    /// The server accepted the session but no video arrived within the idle timeout (nginx-rtmp,
    /// for one, answers `play` of a stream nobody publishes by sending nothing).
    #[error("no video received within {after:?} from {url}")]
    NoVideoReceived {
        /// The URL, credentials removed.
        url: String,
        /// The idle timeout.
        after: Duration,
    },
    /// Within the idle timeout messages arrived but none gave a picture: video tags before any
    /// AVC sequence header, tags that could not be parsed, or messages the player does not
    /// read (e.g. RTMP aggregate messages). `arrived` says what came and why it was unusable.
    #[error("no usable video within {after:?} from {url}: {arrived}")]
    NoUsableVideo {
        /// The URL, credentials removed.
        url: String,
        /// The idle timeout.
        after: Duration,
        /// What arrived, e.g. `312 video messages arrived but none gave a picture: 312 before
        /// any AVC sequence header; 150 audio messages`.
        arrived: String,
    },
    /// Video was flowing and then stopped for longer than the idle timeout.
    #[error("no video from {url} for {after:?} (the stream stalled)")]
    Stalled {
        /// The URL, credentials removed.
        url: String,
        /// The idle timeout.
        after: Duration,
    },
    /// The RTSP server answered a request with an error status (e.g. 404 for an unknown path,
    /// 401 for missing or wrong credentials).
    #[error("{url}: {message}")]
    RtspStatus {
        /// The URL, credentials removed.
        url: String,
        /// The step (request) that was answered.
        step: PullStep,
        /// The RTSP status code.
        status: u16,
        /// The server's reply as retina reports it (first line).
        message: String,
    },
    /// Another RTSP failure reported by retina (framing, depacketization, transport).
    #[error("RTSP error with {url} during {step}: {message}")]
    Rtsp {
        /// The URL, credentials removed.
        url: String,
        /// What the puller was doing.
        step: PullStep,
        /// retina's description (first line).
        message: String,
    },
    /// The stream has no H.264 video track (audio only, or another video codec).
    #[error("{url} has no H.264 video: {found}")]
    NoVideo {
        /// The URL, credentials removed.
        url: String,
        /// What the stream offers instead (e.g. `audio/mpeg4-generic`, `video codec HEVC`).
        found: String,
    },
    /// The RTMP handshake or the session's setup failed.
    #[error(transparent)]
    Start(#[from] RtmpStartError),
    /// The RTMP server refused (`connect`, `play`) or reported an error while streaming.
    #[error(transparent)]
    Refused(#[from] ServerRefusal),
    /// The server closed the connection before the session was set up.
    #[error("{url} closed the connection during {step}")]
    ConnectionClosed {
        /// The URL, credentials removed.
        url: String,
        /// What the puller was doing.
        step: PullStep,
    },
    /// A socket error.
    #[error("I/O error with {url} during {step}")]
    Io {
        /// The URL, credentials removed.
        url: String,
        /// What the puller was doing.
        step: PullStep,
        /// The socket error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The RTMP session broke: a chunk or message rml_rtmp could not parse or build, or server
    /// bytes refused before rml_rtmp read them (a malformed chunk header or command,
    /// interleaved chunk streams rml_rtmp 0.8 cannot reassemble) or that made it panic. The
    /// reason then starts with `the server sent …` and names the chunk: chunk type, chunk
    /// stream, message type, message stream, length.
    #[error("RTMP protocol error with {url} during {step}: {reason}")]
    Protocol {
        /// The URL, credentials removed.
        url: String,
        /// What the puller was doing.
        step: PullStep,
        /// What went wrong.
        reason: String,
    },
    /// The server sent video the puller cannot use (a malformed FLV tag or avcC record, a
    /// length prefix running past the end of the NAL unit data).
    #[error("bad video data from {url}: {reason}")]
    BadMedia {
        /// The URL, credentials removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl PullError {
    /// True for a timeout of a setup step or the idle timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            PullError::Timeout { .. }
                | PullError::Connect(ConnectError::Timeout { .. })
                | PullError::NoVideoReceived { .. }
                | PullError::NoUsableVideo { .. }
                | PullError::Stalled { .. }
        )
    }

    /// The RTSP status code of an [`PullError::RtspStatus`].
    pub fn rtsp_status(&self) -> Option<u16> {
        match self {
            PullError::RtspStatus { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The RTMP server's status code, for rejections and server errors.
    pub fn server_code(&self) -> Option<&str> {
        match self {
            PullError::Refused(r) => Some(&r.code),
            _ => None,
        }
    }
}
