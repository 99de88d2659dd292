//! The pull pipeline (mpegCoder's `MpegClient`): pulls H.264 over RTSP or RTMP
//! ([`crate::transport::pull::Puller`]), decodes it with FFmpeg
//! ([`crate::codec::PacketDecoder`]), optionally decimates it to a target frame rate, and keeps
//! the newest decoded frames in a ring. The stream's audio passes through undecoded: it is
//! counted, and handed out as encoded [`AudioFrame`](crate::transport::AudioFrame)s
//! ([`Client::subscribe_audio`], [`AsyncClient::connect_with_audio`]) or recorded as ADTS
//! ([`Client::record_adts`]) for whoever asks.
//!
//! Two front ends share one pipeline:
//! - [`AsyncClient`] runs on the caller's tokio runtime: `connect(..).await`, then
//!   `next_frame().await` for every frame in order.
//! - [`Client`] is the blocking, mpegCoder-like API (`start`, `extract_frames`, `terminate`); its
//!   network task runs on a process-wide runtime of this crate, so it works from plain threads
//!   and, without panicking, from inside another runtime.
//!
//! In both, the network task (async: it only moves bytes and waits) hands access units through a
//! bounded channel to a decoder thread, a plain thread that owns the FFmpeg decoder and the
//! optional Annex B recording, the two things that block. The decoder thread decimates, fills
//! the ring and hands every kept frame to the consumer through another bounded channel. When a
//! consumer reads slowly the channels fill up, the network task stops reading, and TCP flow
//! control slows the server: frames are not dropped for a consumer that is still there.

mod async_client;
mod blocking;
mod options;
mod pipeline;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::codec::CodecError;
use crate::transport::pull::{PullError, PullProtocol};
use crate::transport::{AudioCodec, AudioTrack, VideoTrack};

pub use self::async_client::{AsyncAudioReceiver, AsyncClient};
pub use self::blocking::{AudioReceiver, Client, FrameReceiver};
pub use self::options::ClientOptions;
pub use crate::transport::pull::PullOptions;

/// An error of the pull pipeline.
///
/// Each variant says what failed in its message; where another error caused it, that error is
/// the [`source`](std::error::Error::source) and is not repeated in the message (print the
/// whole chain to see both).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The network side failed (connection, protocol, timeout, end of data).
    #[error(transparent)]
    Pull(#[from] PullError),
    /// The decoder could not be created or failed beyond recovery.
    #[error("cannot decode the video of {url}")]
    Decoder {
        /// The URL, credentials removed.
        url: String,
        /// The codec layer's error.
        #[source]
        source: Arc<CodecError>,
    },
    /// Writing the received access units ([`Client::record_annexb`]) failed.
    #[error("cannot write the received video of {url}")]
    Record {
        /// The URL, credentials removed.
        url: String,
        /// The writer's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Writing the received audio ([`Client::record_adts`]) failed.
    #[error("cannot write the received audio of {url}")]
    RecordAudio {
        /// The URL, credentials removed.
        url: String,
        /// The writer's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The stream's audio cannot be recorded as ADTS ([`Client::record_adts`]): it is not
    /// AAC, or an AAC variant an ADTS header cannot describe (ISO/IEC 14496-3 §1.A.2.2.1).
    #[error("cannot record the audio of {url} as ADTS: {reason}")]
    AdtsUnsupported {
        /// The URL, credentials removed.
        url: String,
        /// Why, e.g. `the stream's audio is mp3, not AAC`.
        reason: String,
    },
    /// The options are not usable.
    #[error("invalid client options")]
    InvalidOptions(#[from] crate::transport::options::InvalidOption),
    /// The call is not allowed now (e.g. `subscribe` after `start`, `start` twice).
    #[error("not allowed: {0}")]
    InvalidState(&'static str),
    /// The decoder thread or the network task could not be started.
    #[error("cannot start the pull worker")]
    Worker(#[source] Arc<std::io::Error>),
    /// The decoder thread or the network task ended without a result (it panicked, or the
    /// runtime it ran on shut down).
    #[error("the pull worker ended unexpectedly")]
    WorkerLost,
    /// [`Client::wait_ready`] gave up.
    #[error("the stream's parameters were not known within {0:?}")]
    NotReady(Duration),
}

/// What the pipeline is doing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientStatus {
    /// [`Client::start`] was not called yet.
    NotStarted,
    /// Connecting and setting up the session.
    Connecting,
    /// Receiving and decoding.
    Running,
    /// The stream ended: the server said so (RTSP: an RTCP BYE; RTMP: an unpublish or
    /// end-of-stream status, or the server closing the connection after playing). An RTSP
    /// server closing the connection without a BYE is a failure (a lost connection).
    Ended,
    /// Stopped by [`Client::terminate`] or a `request_stop`, or at
    /// [`ClientOptions::with_max_access_units`].
    Stopped,
    /// The pipeline failed; frames received before stay readable.
    Failed(ClientError),
}

impl ClientStatus {
    /// True once the pipeline has finished (ended, stopped or failed).
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            ClientStatus::Ended | ClientStatus::Stopped | ClientStatus::Failed(_)
        )
    }

    /// The error of a failed pipeline.
    pub fn error(&self) -> Option<&ClientError> {
        match self {
            ClientStatus::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// The stream's parameters, known once the video track is (mpegCoder's `getParameter()`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StreamParams {
    /// The URL without credentials.
    pub url: String,
    /// `rtsp` or `rtmp`.
    pub protocol: &'static str,
    /// The codec: `h264`.
    pub codec: &'static str,
    /// The RFC 6381 codec string, e.g. `avc1.64001f` (profile, constraints, level).
    pub codec_string: String,
    /// Width of the stream in pixels (before any scaling).
    pub width: u32,
    /// Height of the stream in pixels.
    pub height: u32,
    /// Nominal source frame rate (from the SPS timing, or the server's metadata / SDP), as
    /// `(num, den)` frames per second; `None` when the stream does not say.
    pub frame_rate: Option<(u32, u32)>,
    /// The same as a number (0.0 when unknown).
    pub fps: f64,
    /// The audio track, once known (RTSP: from the SDP; RTMP: with the first audio data, so
    /// it may appear after the video's parameters). `None` when the stream has no audio the
    /// puller hands out.
    pub audio: Option<StreamAudio>,
}

/// The audio of a stream, as [`StreamParams::audio`] describes it. The whole track (with the
/// AAC AudioSpecificConfig) is [`Client::audio_track`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StreamAudio {
    /// The codec, as FFmpeg names it: `aac`, `mp3`, `opus`, `pcm_alaw`, `pcm_mulaw`.
    pub codec: &'static str,
    /// The RFC 6381 codec string of AAC, `mp4a.40.<audio object type>` (e.g. `mp4a.40.2` for
    /// AAC LC); `None` for the other codecs.
    pub codec_string: Option<String>,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u8,
}

impl StreamAudio {
    pub(crate) fn from_track(track: &AudioTrack) -> Self {
        StreamAudio {
            codec: track.codec.name(),
            codec_string: (track.codec == AudioCodec::Aac)
                .then(|| track.aac_config())
                .flatten()
                .map(|c| format!("mp4a.40.{}", c.object_type)),
            sample_rate: track.sample_rate,
            channels: track.channels,
        }
    }
}

impl StreamParams {
    fn from_track(url: &str, protocol: PullProtocol, track: &VideoTrack) -> Self {
        let frame_rate = track.frame_rate.filter(|&(n, d)| n > 0 && d > 0);
        StreamParams {
            url: url.to_string(),
            protocol: protocol.name(),
            codec: "h264",
            codec_string: format!("avc1.{}", track.info.profile_level_id()),
            width: track.width(),
            height: track.height(),
            frame_rate,
            fps: frame_rate.map_or(0.0, |(n, d)| f64::from(n) / f64::from(d)),
            audio: None,
        }
    }
}

/// Counters of a [`Client`] or an [`AsyncClient`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ClientCounters {
    /// Access units received (from the first key frame on).
    pub access_units: u64,
    /// Of those, key frames.
    pub key_frames: u64,
    /// Bytes of NAL units received.
    pub bytes: u64,
    /// Access units dropped before the first key frame.
    pub skipped_before_key: u64,
    /// RTP packets lost (RTSP over UDP).
    pub lost_packets: u64,
    /// RTP packets the depacketizer rejected (RTSP), e.g. an FU-A fragment whose start was
    /// lost; each drops its access unit (RFC 6184 §5.8) and the pull goes on.
    pub depacketize_errors: u64,
    /// Access units dropped after a loss (RTSP) while waiting for the next key frame.
    pub dropped_after_loss: u64,
    /// Seconds between the first and the last access unit's timestamp.
    pub stream_duration_s: f64,
    /// Frames the decoder produced.
    pub frames_decoded: u64,
    /// Decoded frames dropped by decimation ([`ClientOptions::with_target_fps`]).
    pub frames_dropped: u64,
    /// Frames put into the ring (decoded minus dropped).
    pub frames_delivered: u64,
    /// Access units the decoder rejected (skipped; decoding went on).
    pub decode_errors: u64,
    /// Audio frames received (from the first video key frame on).
    pub audio_frames: u64,
    /// Bytes of those audio frames.
    pub audio_bytes: u64,
    /// Audio frames dropped because they came before the first video key frame.
    pub audio_skipped_before_key: u64,
    /// Audio in a format the puller does not hand out, skipped (RTMP).
    pub audio_unsupported: u64,
    /// Audio that could not be used (malformed, before its configuration, out of order),
    /// skipped.
    pub audio_bad: u64,
    /// Seconds between the first and the last audio frame's timestamp.
    pub audio_duration_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<Client>();
        assert_send_sync::<AsyncClient>();
        assert_send_sync::<FrameReceiver>();
        assert_send_sync::<AudioReceiver>();
        assert_send_sync::<AsyncAudioReceiver>();
        assert_send_sync::<ClientStatus>();
        assert_send_sync::<ClientError>();
        assert_send_sync::<StreamParams>();
    }

    /// The chain as a user prints it: every message once.
    fn chain(e: &dyn std::error::Error) -> String {
        crate::types::error_chain(e)
    }

    #[test]
    fn errors_say_their_cause_once() {
        let io = || Arc::new(std::io::Error::other("disk full"));
        let e = ClientError::Record {
            url: "rtsp://host/x".into(),
            source: io(),
        };
        assert_eq!(
            chain(&e),
            "cannot write the received video of rtsp://host/x: disk full"
        );
        let e = ClientError::Decoder {
            url: "rtmp://host/app/key".into(),
            source: Arc::new(CodecError::Decode {
                url: "packets".into(),
                // AVERROR_INVALIDDATA.
                source: crate::codec::FfmpegError::from_code(-0x4144_4e49),
            }),
        };
        let line = chain(&e);
        assert_eq!(line.matches("Invalid data").count(), 1, "{line}");
        assert!(line.starts_with("cannot decode the video of rtmp://host/app/key: "));
        let e = ClientError::RecordAudio {
            url: "rtsp://host/x".into(),
            source: io(),
        };
        assert_eq!(
            chain(&e),
            "cannot write the received audio of rtsp://host/x: disk full"
        );
        let e = ClientError::AdtsUnsupported {
            url: "rtmp://host/app/key".into(),
            reason: "the stream's audio is mp3, not AAC".into(),
        };
        assert_eq!(
            chain(&e),
            "cannot record the audio of rtmp://host/app/key as ADTS: the stream's audio is mp3, not AAC"
        );
        let e = ClientError::Worker(io());
        assert_eq!(chain(&e), "cannot start the pull worker: disk full");
        assert!(e.source().is_some());
    }
}

#[cfg(test)]
mod audio_params_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use bytes::Bytes;

    #[test]
    fn audio_params_describe_the_track() {
        let aac = AudioTrack::aac(Bytes::from_static(&[0x11, 0x90])).unwrap();
        assert_eq!(
            StreamAudio::from_track(&aac),
            StreamAudio {
                codec: "aac",
                codec_string: Some("mp4a.40.2".into()),
                sample_rate: 48_000,
                channels: 2,
            }
        );
        let g711 = AudioTrack::new(AudioCodec::Pcma, 8_000, 1).unwrap();
        let p = StreamAudio::from_track(&g711);
        assert_eq!((p.codec, p.codec_string, p.channels), ("pcm_alaw", None, 1));
    }
}
