//! One publisher for both protocols: [`Publisher::connect`] picks RTSP RECORD or RTMP publish
//! from the URL scheme.
//!
//! ```no_run
//! # async fn run(track: mpegcoder_transport::VideoTrack, aus: Vec<mpegcoder_transport::AccessUnit>)
//! #     -> Result<(), mpegcoder_transport::PublishError> {
//! use mpegcoder_transport::{PublishOptions, Publisher, Track};
//! let tracks = [Track::H264(track)];
//! let mut publisher =
//!     Publisher::connect("rtsp://127.0.0.1:8554/cam", &tracks, PublishOptions::default()).await?;
//! for au in aus {
//!     publisher.send(au).await?;
//! }
//! let stats = publisher.close().await?;
//! println!("{} frames", stats.frames);
//! # Ok(()) }
//! ```

use std::fmt;

use crate::rtmp::{RtmpError, RtmpOptions, RtmpPublisher};
use crate::rtsp::{RtspError, RtspOptions, RtspPublisher};
use crate::session::{Media, MediaError, PublisherStats, Track};
use crate::{redact_url, Transport};

/// The protocol of a publish URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `rtsp://` or `rtsps://` (TLS): ANNOUNCE / SETUP / RECORD (RFC 2326).
    Rtsp,
    /// `rtmp://` or `rtmps://` (TLS): connect / createStream / publish.
    Rtmp,
}

impl Protocol {
    /// The protocol named by `url`'s scheme (case-insensitive), if it is one we publish to.
    pub fn from_url(url: &str) -> Option<Protocol> {
        let scheme = url.split_once("://")?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "rtsp" | "rtsps" => Some(Protocol::Rtsp),
            "rtmp" | "rtmps" => Some(Protocol::Rtmp),
            _ => None,
        }
    }

    /// True when the protocol can carry `codec`: RTP has a payload format for every one
    /// ([`crate::rtp::AudioPacketizer`]); FLV has a SoundFormat for every one but Opus (FLV
    /// spec v10.1 E.4.2.1).
    pub fn carries(self, codec: crate::audio::AudioCodec) -> bool {
        match self {
            Protocol::Rtsp => true,
            Protocol::Rtmp => crate::rtmp::flv_audio::sound_format(codec).is_some(),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Rtsp => "RTSP",
            Protocol::Rtmp => "RTMP",
        })
    }
}

/// Options of both publishers; only the one matching the URL is used. Start from
/// [`PublishOptions::default`] and change what differs with the `with_*` setters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishOptions {
    /// RTSP settings (transport TCP or UDP, timeouts, queue size).
    pub rtsp: RtspOptions,
    /// RTMP settings (timeouts, chunk size, queue size).
    pub rtmp: RtmpOptions,
}

impl PublishOptions {
    /// The options with another RTSP lower transport.
    pub fn with_rtsp_transport(mut self, transport: Transport) -> Self {
        self.rtsp.transport = transport;
        self
    }

    /// The options with these RTSP settings.
    pub fn with_rtsp(mut self, rtsp: RtspOptions) -> Self {
        self.rtsp = rtsp;
        self
    }

    /// The options with these RTMP settings.
    pub fn with_rtmp(mut self, rtmp: RtmpOptions) -> Self {
        self.rtmp = rtmp;
        self
    }

    /// The certificate checks of `rtsps://` and `rtmps://` connections, for both protocols.
    pub fn with_tls(mut self, tls: crate::tls::TlsOptions) -> Self {
        self.rtsp.tls = tls.clone();
        self.rtmp.tls = tls;
        self
    }
}

/// Errors of [`Publisher`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The URL's scheme is none of `rtsp://`, `rtsps://`, `rtmp://`, `rtmps://`.
    #[error(
        "unsupported URL {url}: expected rtsp[s]://host[:port]/path or \
         rtmp[s]://host[:port]/app/key"
    )]
    UnsupportedScheme {
        /// The URL, credentials removed.
        url: String,
    },
    /// A media unit was refused before it was queued; the session goes on.
    #[error(transparent)]
    Media(MediaError),
    /// From the RTSP publisher.
    #[error(transparent)]
    Rtsp(RtspError),
    /// From the RTMP publisher.
    #[error(transparent)]
    Rtmp(RtmpError),
}

impl PublishError {
    /// True when the error is about one media unit and the session goes on.
    pub fn is_media_error(&self) -> bool {
        matches!(self, PublishError::Media(_))
    }
}

impl From<MediaError> for PublishError {
    fn from(e: MediaError) -> Self {
        PublishError::Media(e)
    }
}

impl From<RtspError> for PublishError {
    fn from(e: RtspError) -> Self {
        match e {
            RtspError::Media(m) => PublishError::Media(m),
            e => PublishError::Rtsp(e),
        }
    }
}

impl From<RtmpError> for PublishError {
    fn from(e: RtmpError) -> Self {
        match e {
            RtmpError::Media(m) => PublishError::Media(m),
            e => PublishError::Rtmp(e),
        }
    }
}

/// A connected publisher of either protocol: a [`Session`](crate::session::Session) of the
/// protocol the URL names. Both follow the same rules (see [`crate::session`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Publisher {
    /// RTSP RECORD.
    Rtsp(RtspPublisher),
    /// RTMP publish.
    Rtmp(RtmpPublisher),
}

impl Publisher {
    /// Connects to `url` and starts publishing `tracks`: RTSP when the scheme is `rtsp`, RTMP
    /// when it is `rtmp`. Every network step is bounded by the options' timeouts. Must be
    /// called inside a tokio runtime.
    pub async fn connect(
        url: &str,
        tracks: &[Track],
        options: PublishOptions,
    ) -> Result<Publisher, PublishError> {
        match Protocol::from_url(url) {
            Some(Protocol::Rtsp) => Ok(Publisher::Rtsp(
                RtspPublisher::connect(url, tracks, options.rtsp).await?,
            )),
            Some(Protocol::Rtmp) => Ok(Publisher::Rtmp(
                RtmpPublisher::connect(url, tracks, options.rtmp).await?,
            )),
            None => Err(PublishError::UnsupportedScheme {
                url: redact_url(url),
            }),
        }
    }

    /// Queues one media unit (waits while the send queue is full). See
    /// [`Session::send`](crate::session::Session::send).
    pub async fn send(&mut self, media: impl Into<Media>) -> Result<(), PublishError> {
        match self {
            Publisher::Rtsp(p) => Ok(p.send(media).await?),
            Publisher::Rtmp(p) => Ok(p.send(media).await?),
        }
    }

    /// Queues one media unit if the send queue has room; `Ok(false)` when it is full (nothing
    /// queued). See [`Session::try_send`](crate::session::Session::try_send).
    pub fn try_send(&mut self, media: impl Into<Media>) -> Result<bool, PublishError> {
        match self {
            Publisher::Rtsp(p) => Ok(p.try_send(media)?),
            Publisher::Rtmp(p) => Ok(p.try_send(media)?),
        }
    }

    /// Ends the publish cleanly and waits for the server to confirm it; returns the final
    /// counters.
    pub async fn close(self) -> Result<PublisherStats, PublishError> {
        match self {
            Publisher::Rtsp(p) => Ok(p.close().await?),
            Publisher::Rtmp(p) => Ok(p.close().await?),
        }
    }

    /// Counters so far and what the server reported.
    pub fn stats(&self) -> PublisherStats {
        match self {
            Publisher::Rtsp(p) => p.stats(),
            Publisher::Rtmp(p) => p.stats(),
        }
    }

    /// The protocol in use.
    pub fn protocol(&self) -> Protocol {
        match self {
            Publisher::Rtsp(_) => Protocol::Rtsp,
            Publisher::Rtmp(_) => Protocol::Rtmp,
        }
    }

    /// The URL published to, credentials removed.
    pub fn url(&self) -> &str {
        match self {
            Publisher::Rtsp(p) => p.url(),
            Publisher::Rtmp(p) => p.url(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_protocol_from_scheme() {
        assert_eq!(Protocol::from_url("rtsp://h/x"), Some(Protocol::Rtsp));
        assert_eq!(Protocol::from_url("RTMP://h/app/k"), Some(Protocol::Rtmp));
        assert_eq!(Protocol::from_url("http://h/x"), None);
        assert_eq!(Protocol::from_url("/tmp/file.mp4"), None);
    }

    #[test]
    fn audio_codecs_each_protocol_carries() {
        use crate::audio::AudioCodec::*;
        for codec in [Aac, Mp3, Opus, Pcmu, Pcma] {
            assert!(Protocol::Rtsp.carries(codec), "{codec}");
            assert_eq!(Protocol::Rtmp.carries(codec), codec != Opus, "{codec}");
        }
    }

    #[tokio::test]
    async fn unsupported_scheme_is_a_typed_error_without_credentials() {
        // SPS and PPS of a 320x240 libx264 stream.
        let sps = bytes::Bytes::from_static(&[
            0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03,
            0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
        ]);
        let pps = bytes::Bytes::from_static(&[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]);
        let track = crate::VideoTrack::new(sps, pps).expect("valid parameter sets");
        let err = Publisher::connect(
            "http://u:pw@host/x",
            &[track.into()],
            PublishOptions::default(),
        )
        .await
        .expect_err("http is not a publish scheme");
        let msg = err.to_string();
        assert!(msg.contains("http://host/x"), "{msg}");
        assert!(!msg.contains("pw"), "{msg}");
    }
}
