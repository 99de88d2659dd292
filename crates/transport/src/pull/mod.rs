//! Pulling H.264 video and its audio back from a server: RTSP (PLAY, through retina) and RTMP
//! (play, through rml_rtmp), as [`AccessUnit`]s and [`AudioFrame`]s with their timing, plus the
//! [`VideoTrack`] and [`AudioTrack`] that decode them.
//!
//! Layers:
//! - [`flv_parse`]: pure parsing of FLV video and audio tag bodies (the inverse of
//!   [`crate::rtmp::flv`]) and 32-bit RTMP timestamp extension.
//! - [`RtmpPlayCore`]: the sans-IO RTMP play session — bytes in, bytes and events out.
//! - [`Puller`]: the tokio driver for both protocols, with a timeout on every network step.
//!
//! What every puller guarantees:
//! - The first access unit handed out is a key frame (an IDR picture, or an FLV key frame)
//!   whose track is known; everything before it is dropped and counted
//!   ([`PullStats::skipped_before_key`]). A reader that joins a live stream mid-GOP therefore
//!   starts at the next key frame and never feeds a decoder pictures it cannot decode.
//! - [`Puller::next_media`] hands out video and audio in arrival order; audio frames that
//!   arrive before the first key frame is handed out are dropped and counted
//!   ([`PullStats::audio_skipped_before_key`]), so video and audio start together.
//!   [`Puller::next`] hands out video only (audio is then dropped and counted,
//!   [`PullStats::audio_ignored`]).
//! - Audio is optional and never ends a session: RTSP sets up the first audio stream retina can
//!   depacketize (AAC `mpeg4-generic`, G.711 `PCMA` / `PCMU`) and skips others with a log line;
//!   RTMP hands out AAC, MP3 and G.711 tags and counts the others
//!   ([`PullStats::audio_unsupported`]) and malformed ones ([`PullStats::audio_bad`]).
//! - [`Puller::next`] returns `Ok(None)` at the end of the stream: RTSP when the server sends
//!   an RTCP BYE (RFC 3550 §6.6); RTMP on `NetStream.Play.UnpublishNotify`, `.Stop`,
//!   `.Complete`, Stream EOF, or the server closing the connection after playing started.
//!   An RTSP server closing the connection without a BYE is
//!   [`PullError::ConnectionClosed`] (step [`PullStep::Streaming`]): a lost connection.
//! - RTSP losses do not end the session (RFC 6184 §5.8): an RTP packet the depacketizer
//!   rejects drops its access unit, and after a loss no access unit is handed out until the
//!   next IDR picture ([`PullStats::depacketize_errors`], [`PullStats::dropped_after_loss`]).
//! - No video for [`PullOptions::idle_timeout`] ends the session with
//!   [`PullError::NoVideoReceived`] (nothing ever came: e.g. nginx-rtmp answers `play` of a
//!   stream nobody publishes by sending nothing) or [`PullError::Stalled`].
//! - Errors name the URL without its credentials.
//!
//! ```no_run
//! # async fn example() -> Result<(), mpegcoder_transport::pull::PullError> {
//! use mpegcoder_transport::pull::{PullOptions, Puller};
//! use mpegcoder_transport::Media;
//!
//! let mut puller = Puller::connect("rtmp://127.0.0.1/live/cam", PullOptions::default()).await?;
//! while let Some(media) = puller.next_media().await? {
//!     match media {
//!         Media::H264(au) => {
//!             let track = puller.track().expect("known before the first access unit");
//!             println!("{}x{} dts {} key {}", track.width(), track.height(), au.dts, au.key);
//!         }
//!         Media::Audio(frame) => {
//!             let track = puller.audio_track().expect("known before the first audio frame");
//!             println!("{} pts {} ({} bytes)", track.codec, frame.pts, frame.data.len());
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```

#[cfg(test)]
mod driver_tests;
mod error;
pub mod flv_parse;
mod rtmp_core;
#[cfg(test)]
mod rtmp_core_tests;
mod rtmp_driver;
mod rtsp_driver;

use std::time::Duration;

pub use self::error::{PullError, PullStep};
pub use self::flv_parse::{AudioTagBody, AudioTagError};
pub use self::rtmp_core::{PlayEvent, PlayState, PlayStats, RtmpPlayCore};

use crate::audio::{AudioFrame, AudioTrack};
use crate::h264::{AccessUnit, VideoTrack};
use crate::options::{nonzero_durations, InvalidOption};
use crate::rtmp::url::RtmpUrl;
use crate::rtsp::RtspUrl;
use crate::session::Media;
use crate::TimeBase;
use crate::{redact_url, Transport};

/// The protocol of a pull URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PullProtocol {
    /// `rtsp://` or `rtsps://` (TLS).
    Rtsp,
    /// `rtmp://` or `rtmps://` (TLS).
    Rtmp,
}

impl PullProtocol {
    /// The scheme (`rtsp`, `rtmp`).
    pub fn name(self) -> &'static str {
        match self {
            PullProtocol::Rtsp => "rtsp",
            PullProtocol::Rtmp => "rtmp",
        }
    }

    /// The protocol of `url`, from its scheme.
    pub fn of(url: &str) -> Result<PullProtocol, PullError> {
        let text = url.trim();
        let Some((scheme, _)) = text.split_once("://") else {
            return Err(PullError::InvalidUrl {
                url: redact_url(text),
                reason: "not a URL (expected rtsp[s]://… or rtmp[s]://…)".into(),
            });
        };
        if scheme.eq_ignore_ascii_case("rtsp") || scheme.eq_ignore_ascii_case("rtsps") {
            Ok(PullProtocol::Rtsp)
        } else if scheme.eq_ignore_ascii_case("rtmp") || scheme.eq_ignore_ascii_case("rtmps") {
            Ok(PullProtocol::Rtmp)
        } else {
            Err(PullError::UnsupportedScheme {
                url: redact_url(text),
                scheme: scheme.to_string(),
            })
        }
    }
}

/// Checks a pull URL without connecting: returns its protocol and its text without credentials
/// (what errors and logs show).
pub fn check_url(url: &str) -> Result<(PullProtocol, String), PullError> {
    let invalid = |reason: String| PullError::InvalidUrl {
        url: redact_url(url),
        reason,
    };
    match PullProtocol::of(url)? {
        PullProtocol::Rtsp => RtspUrl::parse(url)
            .map(|u| (PullProtocol::Rtsp, u.to_string()))
            .map_err(|e| invalid(rtsp_url_problem(e))),
        PullProtocol::Rtmp => RtmpUrl::parse(url)
            .map(|u| (PullProtocol::Rtmp, u.redacted()))
            .map_err(|e| invalid(e.to_string())),
    }
}

/// What is wrong with an RTSP URL, without the URL (the pull error names it itself).
fn rtsp_url_problem(e: crate::rtsp::RtspError) -> String {
    match e {
        crate::rtsp::RtspError::InvalidUrl { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// Options of a pull session. Start from [`PullOptions::default`] and change fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullOptions {
    /// RTP transport for RTSP (default TCP); ignored for RTMP.
    pub transport: Transport,
    /// Resolving the host and opening the TCP connection (default 5 s).
    pub connect_timeout: Duration,
    /// Each setup step (default 10 s): RTMP handshake, `connect`, `createStream`; RTSP SETUP,
    /// PLAY. RTSP DESCRIBE (which includes retina's TCP connect) gets the longer of this and
    /// the connect timeout.
    pub setup_timeout: Duration,
    /// Longest wait for video (default 10 s): after `play` until the first access unit, and
    /// between access units.
    pub idle_timeout: Duration,
    /// `User-Agent` of RTSP requests.
    pub user_agent: String,
    /// Certificate checks of `rtsps://` and `rtmps://` connections (default: verified against
    /// the system's CAs).
    pub tls: crate::tls::TlsOptions,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            transport: Transport::Tcp,
            connect_timeout: Duration::from_secs(5),
            setup_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            user_agent: concat!("mpegcoder/", env!("CARGO_PKG_VERSION")).to_string(),
            tls: crate::tls::TlsOptions::default(),
        }
    }
}

impl PullOptions {
    /// Sets the RTP transport for RTSP.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Sets the certificate checks of `rtsps://` and `rtmps://` connections.
    pub fn with_tls(mut self, tls: crate::tls::TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Sets the idle timeout.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets the limit for resolving the host and opening the connection.
    pub fn with_connect_timeout(mut self, limit: Duration) -> Self {
        self.connect_timeout = limit;
        self
    }

    /// Sets the limit for each setup step.
    pub fn with_setup_timeout(mut self, limit: Duration) -> Self {
        self.setup_timeout = limit;
        self
    }

    /// Sets the `User-Agent` of RTSP requests.
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Checks the values; the error names the option that cannot work.
    pub fn validate(&self) -> Result<(), InvalidOption> {
        nonzero_durations(&[
            ("connect_timeout", self.connect_timeout),
            ("setup_timeout", self.setup_timeout),
            ("idle_timeout", self.idle_timeout),
        ])
    }
}

/// Counters of a pull session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullStats {
    /// Access units handed out.
    pub access_units: u64,
    /// Of those, key frames.
    pub key_frames: u64,
    /// Bytes of NAL units handed out (without framing).
    pub bytes: u64,
    /// Access units dropped before the first key frame.
    pub skipped_before_key: u64,
    /// DTS of the first access unit handed out, in [`PullStats::time_base`].
    pub first_dts: Option<i64>,
    /// DTS of the last access unit handed out.
    pub last_dts: Option<i64>,
    /// The time base of the timestamps (1/1000 for RTMP, the RTP clock for RTSP).
    pub time_base: Option<TimeBase>,
    /// RTP packets lost (RTSP only; video and audio).
    pub lost_packets: u64,
    /// RTP packets the depacketizer rejected (RTSP only), e.g. an FU-A fragment whose start
    /// was never received (joining mid-frame, a lost UDP packet). RFC 6184 §5.8: the
    /// incomplete NAL unit is dropped, with its access unit; the session goes on.
    pub depacketize_errors: u64,
    /// Access units dropped after a loss (RTSP only) while waiting for the next IDR picture:
    /// the pictures in between may refer to what was lost.
    pub dropped_after_loss: u64,
    /// Audio frames handed out ([`Puller::next_media`]).
    pub audio_frames: u64,
    /// Bytes of those audio frames.
    pub audio_bytes: u64,
    /// Audio frames dropped because they arrived before the first video key frame was handed
    /// out.
    pub audio_skipped_before_key: u64,
    /// Audio frames dropped because they were read through [`Puller::next`], which hands
    /// out video only.
    pub audio_ignored: u64,
    /// Audio messages in a format the puller does not hand out (RTMP: ADPCM, Nellymoser,
    /// Speex, linear PCM…), skipped. (RTSP skips such streams at SETUP instead.)
    pub audio_unsupported: u64,
    /// Audio that could not be used and was skipped: malformed FLV audio tags or AAC
    /// sequence headers, AAC frames before any sequence header, empty frames, frames stamped
    /// before the previous one.
    pub audio_bad: u64,
    /// PTS of the first audio frame handed out, in [`PullStats::audio_time_base`].
    pub audio_first_pts: Option<i64>,
    /// PTS of the last audio frame handed out.
    pub audio_last_pts: Option<i64>,
    /// The time base of the audio timestamps (1/1000 for RTMP, the RTP clock for RTSP).
    pub audio_time_base: Option<TimeBase>,
}

impl PullStats {
    /// Seconds between the first and the last access unit's DTS.
    pub fn duration_s(&self) -> f64 {
        match (self.first_dts, self.last_dts, self.time_base) {
            (Some(a), Some(b), Some(tb)) => tb.seconds(b.saturating_sub(a)),
            _ => 0.0,
        }
    }

    /// Seconds between the first and the last audio frame's PTS.
    pub fn audio_duration_s(&self) -> f64 {
        match (
            self.audio_first_pts,
            self.audio_last_pts,
            self.audio_time_base,
        ) {
            (Some(a), Some(b), Some(tb)) => tb.seconds(b.saturating_sub(a)),
            _ => 0.0,
        }
    }
}

#[derive(Debug)]
enum Session {
    Rtsp(Box<rtsp_driver::RtspPull>),
    Rtmp(Box<rtmp_driver::RtmpPull>),
}

/// A pull session: connect, then call [`next`](Puller::next) until it returns `None`. See the
/// [module docs](self) for what it guarantees and an example.
#[derive(Debug)]
pub struct Puller {
    url: String,
    protocol: PullProtocol,
    session: Session,
    started: bool,
    stats: PullStats,
}

impl Puller {
    /// Connects to `url` (`rtsp://…` or `rtmp://…`, credentials in the userinfo allowed) and
    /// starts playing. Returns once the server accepted: RTSP after PLAY; RTMP after
    /// `NetStream.Play.Start` or the first media message (bounded by the idle timeout, since
    /// some servers wait silently for a publisher).
    ///
    /// Must be called inside a tokio runtime with the `net` and `time` drivers enabled.
    pub async fn connect(url: &str, options: PullOptions) -> Result<Puller, PullError> {
        options.validate()?;
        let protocol = PullProtocol::of(url)?;
        let (shown, session) = match protocol {
            PullProtocol::Rtsp => {
                let parsed = RtspUrl::parse(url).map_err(|e| PullError::InvalidUrl {
                    url: redact_url(url),
                    reason: rtsp_url_problem(e),
                })?;
                if parsed.is_tls() {
                    // RTSP pulling runs on retina, which opens its own TCP connection and has
                    // no way to run over a TLS stream; publishing over rtsps works.
                    let reason = if options.transport == Transport::Udp {
                        "rtsps:// carries RTP inside the TLS connection: RTP over UDP would \
                         need SRTP, which is not supported"
                    } else {
                        "pulling over rtsps:// is not supported yet (the RTSP player cannot run \
                         inside TLS; publishing to rtsps:// and pulling rtmps:// work)"
                    };
                    return Err(PullError::InvalidUrl {
                        url: parsed.to_string(),
                        reason: reason.into(),
                    });
                }
                let session = rtsp_driver::RtspPull::connect(parsed.clone(), &options).await?;
                (parsed.to_string(), Session::Rtsp(Box::new(session)))
            }
            PullProtocol::Rtmp => {
                let parsed = RtmpUrl::parse(url).map_err(|e| PullError::InvalidUrl {
                    url: redact_url(url),
                    reason: e.to_string(),
                })?;
                let session = rtmp_driver::RtmpPull::connect(parsed.clone(), &options).await?;
                (parsed.redacted(), Session::Rtmp(Box::new(session)))
            }
        };
        Ok(Puller {
            url: shown,
            protocol,
            session,
            started: false,
            stats: PullStats::default(),
        })
    }

    /// The URL without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The protocol.
    pub fn protocol(&self) -> PullProtocol {
        self.protocol
    }

    /// The video track (parameter sets, size, nominal frame rate), once known: RTSP from the
    /// SDP when it carries `sprop-parameter-sets`, else from the first in-band SPS/PPS; RTMP
    /// from the AVC sequence header. Always known when an access unit has been handed out; it
    /// may change between access units (new parameter sets).
    pub fn track(&self) -> Option<&VideoTrack> {
        match &self.session {
            Session::Rtsp(s) => s.track(),
            Session::Rtmp(s) => s.track(),
        }
    }

    /// The audio track, if the stream has audio this puller hands out: RTSP from the SDP (known
    /// at connect); RTMP from the AAC sequence header or the first MP3 / G.711 tag. Always
    /// known when an audio frame has been handed out; over RTMP it may change between frames.
    pub fn audio_track(&self) -> Option<&AudioTrack> {
        match &self.session {
            Session::Rtsp(s) => s.audio_track(),
            Session::Rtmp(s) => s.audio_track(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &PullStats {
        &self.stats
    }

    /// The next unit from the session, with the protocol's counters brought up to date.
    async fn receive(&mut self) -> Result<Option<Media>, PullError> {
        match &mut self.session {
            Session::Rtsp(s) => {
                let media = s.next().await;
                self.stats.lost_packets = s.lost_packets();
                self.stats.depacketize_errors = s.depacketize_errors();
                self.stats.dropped_after_loss = s.dropped_after_loss();
                self.stats.audio_bad = s.audio_dropped();
                media
            }
            Session::Rtmp(s) => {
                let media = s.next().await;
                let play = s.play_stats();
                self.stats.audio_unsupported = play.audio_unsupported;
                self.stats.audio_bad =
                    play.bad_audio_tags + play.audio_without_config + play.audio_backwards;
                media
            }
        }
    }

    /// Applies the join gate to an access unit and counts it; `None` when it is dropped.
    fn accept_video(&mut self, au: AccessUnit) -> Option<AccessUnit> {
        if !self.started {
            if !au.key || self.track().is_none() {
                self.stats.skipped_before_key += 1;
                return None;
            }
            self.started = true;
        }
        self.stats.access_units += 1;
        self.stats.key_frames += u64::from(au.key);
        self.stats.bytes += au.payload_len() as u64;
        self.stats.first_dts.get_or_insert(au.dts);
        self.stats.last_dts = Some(au.dts);
        self.stats.time_base = Some(au.time_base);
        Some(au)
    }

    /// Applies the join gate to an audio frame and counts it; `None` when it is dropped.
    fn accept_audio(&mut self, frame: AudioFrame) -> Option<AudioFrame> {
        if !self.started || self.audio_track().is_none() {
            self.stats.audio_skipped_before_key += 1;
            return None;
        }
        self.stats.audio_frames += 1;
        self.stats.audio_bytes += frame.data.len() as u64;
        self.stats.audio_first_pts.get_or_insert(frame.pts);
        self.stats.audio_last_pts = Some(frame.pts);
        self.stats.audio_time_base = Some(frame.time_base);
        Some(frame)
    }

    /// The next access unit or audio frame, in arrival order; `None` at the end of the
    /// stream. The first unit is a video key frame (audio before it is dropped and counted);
    /// the video and audio tracks are known whenever a unit of their kind is handed out.
    ///
    /// Timestamps as [`next`](Self::next) describes for video. Audio frames: RTMP stamps them
    /// with the tag timestamp in milliseconds, on the same timeline as the video; RTSP with
    /// the RTP timestamp in the stream's clock (the sampling rate for AAC, 8 kHz for G.711),
    /// from the RTP-Info `rtptime` when the server gives it for both streams (then video and
    /// audio share one origin), else from the stream's first packet. Audio timestamps never go
    /// back.
    ///
    /// Not cancel-safe: if the future is dropped before it completes, drop the puller too.
    pub async fn next_media(&mut self) -> Result<Option<Media>, PullError> {
        loop {
            let Some(media) = self.receive().await? else {
                return Ok(None);
            };
            let accepted = match media {
                Media::H264(au) => self.accept_video(au).map(Media::H264),
                Media::Audio(frame) => self.accept_audio(frame).map(Media::Audio),
            };
            if accepted.is_some() {
                return Ok(accepted);
            }
        }
    }

    /// The next access unit, `None` at the end of the stream. The first one is a key frame.
    /// Video only: audio frames that arrive meanwhile are dropped and counted
    /// ([`PullStats::audio_ignored`]); use [`next_media`](Self::next_media) for both.
    ///
    /// RTMP: `dts` is the tag timestamp and `pts` = `dts` + composition time, in milliseconds.
    /// RTSP: `pts` is the RTP timestamp since the first packet (90 kHz) and `dts` = `pts`
    /// (RTP does not carry decoding times).
    ///
    /// Not cancel-safe: if the future is dropped before it completes, drop the puller too.
    pub async fn next(&mut self) -> Result<Option<AccessUnit>, PullError> {
        loop {
            match self.receive().await? {
                None => return Ok(None),
                Some(Media::H264(au)) => {
                    if let Some(au) = self.accept_video(au) {
                        return Ok(Some(au));
                    }
                }
                Some(Media::Audio(_)) => self.stats.audio_ignored += 1,
            }
        }
    }

    /// Ends the session politely, within half a second: RTSP sends TEARDOWN (through retina),
    /// RTMP `deleteStream`, then the connection closes. Dropping the puller also ends the
    /// session, less politely (retina still attempts TEARDOWN in the background while the
    /// runtime lives).
    pub async fn close(self) {
        match self.session {
            Session::Rtsp(s) => s.close().await,
            Session::Rtmp(s) => s.close().await,
        }
    }
}
