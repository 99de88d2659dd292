//! Native Rust publishing of H.264 video and its audio (AAC; MP3, Opus, G.711 where the
//! protocol carries them) over RTSP (RECORD) and RTMP (publish), and pulling both back. This
//! crate does not link FFmpeg: a user with their own encoder can use it alone.
//!
//! Modules:
//! - [`audio`]: audio tracks and frames (AAC, MP3, Opus, G.711), AudioSpecificConfig, ADTS.
//! - [`h264`]: Annex B / length-prefixed NAL units, avcC records, SPS facts, [`AccessUnit`].
//! - [`heal`]: which failures a reconnection can heal.
//! - [`publisher`]: [`Publisher`], which picks RTSP or RTMP from the URL scheme.
//! - [`rtp`], [`rtcp`]: RTP packetization of H.264 (RFC 6184) and of audio (RFC 3640 AAC,
//!   RFC 2250, RFC 7587, G.711), and RTCP reports.
//! - [`rtsp`]: RTSP RECORD publisher (sans-IO core and tokio driver).
//! - [`rtmp`]: RTMP publisher (FLV tags over rml_rtmp's sans-IO session).
//! - [`pull`]: pulling video back: RTSP PLAY through retina, RTMP play through rml_rtmp
//!   (sans-IO play core, FLV tag parsing), as access units from the first key frame on.
//! - [`TimeBase`], [`Rational`], [`rescale`], [`Transport`], [`redact_url`]: the shared small
//!   types of `mpegcoder-types`, re-exported.
#![forbid(unsafe_code)]

pub mod audio;
mod clock;
pub mod h264;
pub mod heal;
pub mod net;
pub mod options;
pub mod publisher;
pub mod pull;
pub mod rtcp;
pub mod rtmp;
pub mod rtp;
pub mod rtsp;
pub mod session;
pub mod tls;

pub use audio::{AudioCodec, AudioFrame, AudioTrack};
pub use h264::{AccessUnit, VideoTrack};
pub use mpegcoder_types::{redact_url, rescale, Rational, TimeBase, Transport};
pub use publisher::{Protocol, PublishError, PublishOptions, Publisher};
pub use session::{Media, MediaError, PublisherStats, ReceptionReport, Session, Track};
pub use tls::{TlsFailure, TlsOptions, TlsSetupError};
