//! [`push`]: publish a file (or any input FFmpeg reads) to a server, the way `mpegcoder push`
//! does.
//!
//! - Copy mode: the calling thread demuxes, paces and hands each packet to the session's
//!   network task — one hand-over per frame, like ffmpeg's single muxing thread. Reading a
//!   packet of a local file takes microseconds and happens before the wait for its deadline,
//!   so it never delays a send.
//! - libx264 mode: a reader thread decodes and encodes and hands the packets over a bounded
//!   queue to the calling thread, which paces and sends — the two-process layout of mpegCoder's
//!   dual-process example, in threads. Encoding on the reader's side keeps libx264's work off
//!   the sending thread, and the reader and its codec threads run at a lower priority
//!   ([`crate::priority`]).
//!
//! Audio (AAC, and MP3, Opus or G.711 where the protocol carries them) passes through next to
//! the video in both modes, never re-encoded. Video and audio are merged into timestamp order
//! ([`crate::pacer::Interleaver`]) and paced on one timeline, so neither bursts and they never
//! drift apart. An audio track that cannot pass through is dropped with one warning
//! ([`AudioMode::Auto`]), is an error before connecting ([`AudioMode::Copy`]), or is dropped
//! silently ([`AudioMode::None`]).
//!
//! An `rtsp://` or `rtmp://` input is a live source: the transport's own puller reads it (not
//! FFmpeg's demuxer) and the units leave as they arrive, unpaced, in copy mode untouched and
//! with libx264 decoded and re-encoded; with a reconnect policy a lost source is reconnected
//! and the output timeline goes on across the outage ([`SourceStats`] in the summary).
//!
//! Loop playback offsets the timestamps of each pass by the length of the input (its longest
//! track), the same for every track, so they stay monotonic across the wrap and aligned with
//! no drift (integer ticks, each track's offset derived from one exact total). A jump of the
//! input's own clock (a step back of over a second, or forward of over ten) is taken out of
//! both tracks alike ([`crate::continuity`]), so the stream goes on instead of being refused.
//!
//! A local input that turns out truncated or corrupt part way ([`CodecError::Damaged`]) is
//! pushed up to its last complete frame and the session is ended as at the end of the input
//! (TEARDOWN, unpublish), so what the server recorded is valid; then [`push`] fails with
//! [`PushError::InputDamaged`], which carries the summary. The caller's stop flag is also
//! watched while the session connects ([`Server::open_stoppable`]): a stop then returns an
//! interrupted summary with nothing sent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::codec::{
    rescale, AudioParams, AudioSelection, CodecError, Decoder, DecoderOptions, DemuxedPacket,
    Demuxer, EncodedPacket, Encoder, EncoderConfig, Frame, OpenOptions, PacketFormat, PixelLayout,
    Rational, VideoParams, X264Option,
};
use crate::continuity::Continuity;
pub use crate::live::SourceStats;
use crate::pacer::Interleaver;
use crate::reconnect::ReconnectPolicy;
use crate::server::{
    codec_of, config_from_adts, AudioStream, DestinationState, KeyFrameRequest, PacketStream,
    Server, ServerConfig, ServerError, ServerStats, VideoCodec,
};
use crate::transport::h264::{nal_type, nal_unit_type, split_annexb};
use crate::transport::pull::PullError;
use crate::transport::redact_url;
use crate::transport::VideoTrack;
use crate::transport::{Protocol, TlsOptions, Transport};
use mpegcoder_types::FrameRateConverter;

/// What happens to the input's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum AudioMode {
    /// Pass the audio through when the destination can carry it; otherwise one warning line
    /// naming the codec, and video only.
    #[default]
    Auto,
    /// Pass the audio through, or fail before connecting when it cannot be (or there is none).
    Copy,
    /// Drop the audio.
    None,
}

impl std::str::FromStr for AudioMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(AudioMode::Auto),
            "copy" => Ok(AudioMode::Copy),
            "none" | "no" | "off" => Ok(AudioMode::None),
            other => Err(format!(
                "unknown audio mode {other:?} (expected auto, copy or none)"
            )),
        }
    }
}

/// What to push and how. Encoder fields left `None` are inherited from the input. Start from
/// [`PushOptions::new`] and change what differs with the `with_*` setters.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PushOptions {
    /// Input file or URL.
    pub input: String,
    /// `rtsp://…` or `rtmp://…`.
    pub address: String,
    /// libx264 or copy.
    pub codec: VideoCodec,
    /// RTSP over TCP or UDP.
    pub transport: Transport,
    /// Bit rate in bits/s.
    pub bit_rate: Option<u64>,
    /// Key frame interval in frames.
    pub gop_size: Option<u32>,
    /// Maximum consecutive B-frames.
    pub max_b_frames: Option<u32>,
    /// libx264 preset.
    pub preset: Option<String>,
    /// libx264 tune.
    pub tune: Option<String>,
    /// H.264 profile.
    pub profile: Option<String>,
    /// Output size (scaled).
    pub size: Option<(u32, u32)>,
    /// Output frame rate (frames are dropped or repeated to reach it, like ffmpeg's `-r`).
    pub frame_rate: Option<Rational>,
    /// How many times to play the input; -1 = forever.
    pub loops: i64,
    /// Playback speed (1.0 = real time).
    pub rate: f64,
    /// Pace by timestamps.
    pub pace: bool,
    /// Allowed lead of a frame over its deadline.
    pub max_lead: Duration,
    /// libx264 mode: capacity of the reader → pusher queue, in packets (default 4). The pusher
    /// waits for each packet's deadline, so the queue is always full; the reader decodes and
    /// encodes far faster than real time, so a few packets of slack are enough (libx264 keeps
    /// its own lookahead of frames).
    pub queue_capacity: usize,
    /// Decoder threads (0 = automatic).
    pub decoder_threads: usize,
    /// What happens to the input's audio.
    #[serde(default)]
    pub audio: AudioMode,
    /// Which audio stream to pass through (0 = the first); `None`: the first.
    #[serde(default)]
    pub audio_stream: Option<usize>,
    /// More destinations beside `address`, fed by the same decode, encode and timeline.
    #[serde(default)]
    pub extra_addresses: Vec<String>,
    /// Reconnect lost destinations (and a live source); `None`: a lost connection ends it.
    #[serde(default)]
    pub reconnect: Option<ReconnectPolicy>,
    /// Certificate checks of `rtsps://` and `rtmps://` destinations and live sources (default:
    /// verified against the system's CAs).
    #[serde(default)]
    pub tls: TlsOptions,
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("input", &redact_url(&self.input))
            .field("address", &redact_url(&self.address))
            .field(
                "extra_addresses",
                &self
                    .extra_addresses
                    .iter()
                    .map(|a| redact_url(a))
                    .collect::<Vec<_>>(),
            )
            .field("reconnect", &self.reconnect)
            .field("tls", &self.tls)
            .field("codec", &self.codec)
            .field("transport", &self.transport)
            .field("loops", &self.loops)
            .field("rate", &self.rate)
            .field("pace", &self.pace)
            .field("audio", &self.audio)
            .field("audio_stream", &self.audio_stream)
            .finish_non_exhaustive()
    }
}

impl PushOptions {
    /// Push `input` to `address` once, with libx264, over RTSP/TCP, paced at real time.
    pub fn new(input: impl Into<String>, address: impl Into<String>) -> PushOptions {
        PushOptions {
            input: input.into(),
            address: address.into(),
            codec: VideoCodec::Libx264,
            transport: Transport::Tcp,
            bit_rate: None,
            gop_size: None,
            max_b_frames: None,
            preset: None,
            tune: None,
            profile: None,
            size: None,
            frame_rate: None,
            loops: 1,
            rate: 1.0,
            pace: true,
            max_lead: Duration::from_millis(10),
            queue_capacity: 4,
            decoder_threads: 0,
            audio: AudioMode::Auto,
            audio_stream: None,
            extra_addresses: Vec::new(),
            reconnect: None,
            tls: TlsOptions::default(),
        }
    }

    /// Publishes to every address of `addresses` (the first becomes `address`); an empty
    /// list changes nothing.
    pub fn with_addresses<S: Into<String>>(
        mut self,
        addresses: impl IntoIterator<Item = S>,
    ) -> Self {
        let mut all = addresses.into_iter().map(Into::into);
        if let Some(first) = all.next() {
            self.address = first;
            self.extra_addresses = all.collect();
        }
        self
    }

    /// Every destination, `address` first.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.address.as_str())
            .chain(self.extra_addresses.iter().map(String::as_str))
    }

    /// Reconnects lost destinations (and a live source) with this policy, or not at all.
    pub fn with_reconnect(mut self, policy: Option<ReconnectPolicy>) -> Self {
        self.reconnect = policy;
        self
    }

    /// Checks certificates of `rtsps://` and `rtmps://` destinations and sources this way.
    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Encode with libx264, or pass the packets through (`copy`).
    pub fn with_codec(mut self, codec: VideoCodec) -> Self {
        self.codec = codec;
        self
    }

    /// RTSP over TCP or UDP.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// The bit rate in bits/s (libx264).
    pub fn with_bit_rate(mut self, bit_rate: Option<u64>) -> Self {
        self.bit_rate = bit_rate;
        self
    }

    /// The key frame interval in frames (libx264).
    pub fn with_gop_size(mut self, gop_size: Option<u32>) -> Self {
        self.gop_size = gop_size;
        self
    }

    /// The most consecutive B-frames (libx264).
    pub fn with_max_b_frames(mut self, max_b_frames: Option<u32>) -> Self {
        self.max_b_frames = max_b_frames;
        self
    }

    /// libx264's preset.
    pub fn with_preset(mut self, preset: Option<String>) -> Self {
        self.preset = preset;
        self
    }

    /// libx264's tune.
    pub fn with_tune(mut self, tune: Option<String>) -> Self {
        self.tune = tune;
        self
    }

    /// The H.264 profile (libx264).
    pub fn with_profile(mut self, profile: Option<String>) -> Self {
        self.profile = profile;
        self
    }

    /// The output size (libx264; scaled).
    pub fn with_size(mut self, size: Option<(u32, u32)>) -> Self {
        self.size = size;
        self
    }

    /// The output frame rate (libx264; frames dropped or repeated to reach it).
    pub fn with_frame_rate(mut self, frame_rate: Option<Rational>) -> Self {
        self.frame_rate = frame_rate;
        self
    }

    /// How many times to play the input (-1: forever).
    pub fn with_loops(mut self, loops: i64) -> Self {
        self.loops = loops;
        self
    }

    /// The playback speed (1.0: real time).
    pub fn with_rate(mut self, rate: f64) -> Self {
        self.rate = rate;
        self
    }

    /// Pace by timestamps, or send as fast as possible.
    pub fn with_pace(mut self, pace: bool) -> Self {
        self.pace = pace;
        self
    }

    /// How far ahead of its deadline a frame may leave.
    pub fn with_max_lead(mut self, max_lead: Duration) -> Self {
        self.max_lead = max_lead;
        self
    }

    /// libx264 mode: the capacity of the reader → pusher queue, in packets.
    pub fn with_queue_capacity(mut self, packets: usize) -> Self {
        self.queue_capacity = packets;
        self
    }

    /// The decoder's threads (0: automatic).
    pub fn with_decoder_threads(mut self, threads: usize) -> Self {
        self.decoder_threads = threads;
        self
    }

    /// What happens to the input's audio.
    pub fn with_audio(mut self, audio: AudioMode) -> Self {
        self.audio = audio;
        self
    }

    /// Which audio stream to pass through (counted from 0 among the audio streams).
    pub fn with_audio_stream(mut self, index: Option<usize>) -> Self {
        self.audio_stream = index;
        self
    }

    /// How the input is opened: with the audio stream these options ask for.
    fn open_options(&self) -> OpenOptions {
        let audio = match (self.audio, self.audio_stream) {
            (AudioMode::None, _) => AudioSelection::None,
            (_, Some(n)) => AudioSelection::Index(n),
            (_, None) => AudioSelection::First,
        };
        OpenOptions::default().with_audio(audio)
    }

    /// Checks the options that need no input or server (libx264's names, the loop count,
    /// encoder options in copy mode, …); [`push`] does the same first. Useful to refuse a
    /// batch of pushes before any of them starts.
    pub fn validate(&self) -> Result<(), PushError> {
        for (option, value) in [
            (X264Option::Preset, &self.preset),
            (X264Option::Tune, &self.tune),
            (X264Option::Profile, &self.profile),
        ] {
            if let Some(v) = value {
                option
                    .check(v)
                    .map_err(|why| PushError::Config(format!("invalid {option} {v:?}: {why}")))?;
            }
        }
        if self.loops == 0 || self.loops < -1 {
            return Err(PushError::Config(format!(
                "loop count must be a positive number or -1 (forever), got {}",
                self.loops
            )));
        }
        if self.codec == VideoCodec::Copy {
            let encoder_flags = [
                ("bit rate", self.bit_rate.is_some()),
                ("GOP size", self.gop_size.is_some()),
                ("B-frames", self.max_b_frames.is_some()),
                ("preset", self.preset.is_some()),
                ("tune", self.tune.is_some()),
                ("profile", self.profile.is_some()),
                ("size", self.size.is_some()),
                ("frame rate", self.frame_rate.is_some()),
            ];
            if let Some((name, _)) = encoder_flags.iter().find(|(_, set)| *set) {
                return Err(PushError::Config(format!(
                    "{name} cannot be changed with codec copy (the packets pass through \
                     untouched); use codec libx264"
                )));
            }
        }
        if let Some(fr) = self.frame_rate {
            if !fr.is_valid() {
                return Err(PushError::Config(format!("invalid frame rate {fr}")));
            }
        }
        if self.audio == AudioMode::None && self.audio_stream.is_some() {
            return Err(PushError::Config(
                "an audio stream was chosen, but audio is turned off".into(),
            ));
        }
        Ok(())
    }

    /// The libx264 settings for an input with `params`: the input's, with these options'
    /// overrides.
    pub fn encoder_config(&self, params: &VideoParams) -> EncoderConfig {
        let mut enc = EncoderConfig::from_params(params);
        if let Some(b) = self.bit_rate {
            enc.bit_rate = b;
        }
        if let Some(g) = self.gop_size {
            enc.gop_size = g;
        }
        if let Some(b) = self.max_b_frames {
            enc.max_b_frames = b;
        }
        if let Some(p) = &self.preset {
            enc.preset = p.clone();
        }
        if self.tune.is_some() {
            enc.tune = self.tune.clone();
        }
        if self.profile.is_some() {
            enc.profile = self.profile.clone();
        }
        if let Some((w, h)) = self.size {
            enc.width = w;
            enc.height = h;
        } else {
            // 4:2:0 halves both dimensions of the chroma planes: libx264 needs them even
            // (H.264 §6.2, SubWidthC = SubHeightC = 2). An odd input is scaled to the even
            // size below it ([`PushOptions::size_change`] says so).
            enc.width = (enc.width & !1).max(2);
            enc.height = (enc.height & !1).max(2);
        }
        if let Some(fr) = self.frame_rate {
            enc.frame_rate = fr;
            enc.time_base = fr.invert();
            if self.gop_size.is_none() {
                // Keep the input's key frame spacing in seconds at the new rate.
                let secs = f64::from(enc.gop_size) / params.best_frame_rate().as_f64();
                enc.gop_size = ((secs * fr.as_f64()).round() as u32).max(1);
            }
        }
        enc
    }

    /// The warning due when re-encoding changes the size of the input's video without being
    /// asked to (`size` unset): an odd width or height is scaled to the even size below it.
    pub fn size_change(&self, params: &VideoParams, enc: &EncoderConfig) -> Option<String> {
        let (w, h) = (params.width, params.height);
        (self.size.is_none() && (enc.width, enc.height) != (w, h)).then(|| {
            format!(
                "{}: the video is {w}x{h}, but libx264 encodes 4:2:0 video in even sizes only: \
                 sending it scaled to {}x{} (--size WxH picks another size)",
                redact_url(&self.input),
                enc.width,
                enc.height
            )
        })
    }

    /// The server configuration for packets described by `stream`, with `audio` passed
    /// through next to them.
    pub fn server_config(&self, stream: PacketStream, audio: Option<AudioStream>) -> ServerConfig {
        ServerConfig::packets(stream, self.address.clone())
            .with_extra_addresses(self.extra_addresses.clone())
            .with_reconnect(self.reconnect)
            .with_tls(self.tls.clone())
            .with_audio(audio)
            .with_transport(self.transport)
            .with_pace(self.pace)
            .with_rate(self.rate)
            .with_max_lead(self.max_lead)
    }
}

/// Errors of [`push`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The options cannot work.
    #[error("{0}")]
    Config(String),
    /// Reading or decoding the input failed.
    #[error(transparent)]
    Input(#[from] CodecError),
    /// The input has no frames.
    #[error("{input}: the video stream has no frames")]
    EmptyInput {
        /// The input, credentials removed.
        input: String,
    },
    /// Copy mode with an input that is not H.264.
    #[error("{input}: codec copy needs H.264 video, but the stream is {codec}; use codec libx264")]
    NotH264 {
        /// The input, credentials removed.
        input: String,
        /// Its codec.
        codec: String,
    },
    /// Encoding, connecting or sending failed.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The reader thread could not start or died.
    #[error("the input reader stopped unexpectedly")]
    Reader(#[source] std::sync::Arc<std::io::Error>),
    /// The audio was asked for (`--audio copy`) and cannot be passed through.
    #[error("{0}")]
    Audio(String),
    /// The live source failed with an error that reconnecting cannot heal, or was lost
    /// without a reconnect policy.
    #[error("the live source failed")]
    Source(#[source] PullError),
    /// The live source was lost and did not come back within the reconnect policy's
    /// attempts.
    #[error("the live source did not come back after {attempts} reconnection attempts")]
    SourceGaveUp {
        /// Attempts made in the last outage.
        attempts: u32,
        /// Why the last one failed.
        #[source]
        source: PullError,
    },
    /// The input turned out truncated or corrupt ([`CodecError::Damaged`]) part way: every
    /// complete frame before the damage was sent, and the session was ended as at the end
    /// of the input (RTSP TEARDOWN, RTMP unpublish), so what the server holds is valid.
    #[error(
        "{error}; the {} frames before it were sent and the stream was ended cleanly",
        summary.stats.frames_sent
    )]
    InputDamaged {
        /// What is wrong with the input.
        error: CodecError,
        /// What was pushed.
        summary: Box<PushSummary>,
    },
    /// Some destinations did not receive the stream to the end; the others did (see the
    /// summary's per-destination statistics).
    #[error("{}", failures.iter().map(|(url, why)| crate::server::destination_line(url, why)).collect::<Vec<_>>().join("\n"))]
    Destinations {
        /// The URL (credentials removed) and why, per failed destination.
        failures: Vec<(String, String)>,
        /// What was pushed.
        summary: Box<PushSummary>,
    },
}

impl PushError {
    /// What was pushed before the error, when something was: a damaged input
    /// ([`PushError::InputDamaged`]) or destinations that failed ([`PushError::Destinations`]).
    #[must_use]
    pub fn summary(&self) -> Option<&PushSummary> {
        match self {
            PushError::InputDamaged { summary, .. } | PushError::Destinations { summary, .. } => {
                Some(summary)
            }
            _ => None,
        }
    }
}

/// The outcome of a [`push`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushSummary {
    /// The input, credentials removed.
    pub input: String,
    /// The URL published to, credentials removed.
    pub url: String,
    /// `libx264` or `copy`.
    pub codec: VideoCodec,
    /// Width of the published video.
    pub width: u32,
    /// Height of the published video.
    pub height: u32,
    /// Frame rate of the published video, `num/den`.
    pub frame_rate: String,
    /// The audio passed through (`aac`, …), if any.
    pub audio_codec: Option<String>,
    /// Passes over the input completed.
    pub loops_completed: u64,
    /// Stopped by the caller's stop flag (Ctrl-C) before the input ended.
    pub interrupted: bool,
    /// Jumps of the input's own clock taken out of every track (see [`crate::push`]).
    pub timestamp_jumps: u64,
    /// A live source (`rtsp://`, `rtmp://` input): what came from it, and its reconnections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceStats>,
    /// The server's final statistics.
    #[serde(flatten)]
    pub stats: ServerStats,
}

/// What the libx264 reader thread hands to the pusher.
enum Item {
    Start {
        params: Box<VideoParams>,
        stream: PacketStream,
        audio: Option<AudioStream>,
    },
    Packet(EncodedPacket),
    Audio(EncodedPacket),
    LoopDone,
    /// Frames given to the encoder (sent once it has been flushed), and the jumps of the
    /// input's clock taken out.
    FramesEncoded(u64, u64),
    Error(PushError),
}

fn reader_error(what: &str) -> PushError {
    PushError::Reader(std::sync::Arc::new(std::io::Error::other(what.to_string())))
}

/// Pushes `options.input` to `options.address` and returns when the input ends (after
/// `loops` passes), when `stop` becomes true (the server then flushes and tears down
/// cleanly), or on the first error. `progress` is called about four times a second with the
/// current statistics.
///
/// A live source (`rtsp://`, `rtmp://`) ends the push when it ends the stream; with
/// [`PushOptions::reconnect`] it is waited for instead, until `stop`. A source error that
/// reconnecting cannot heal (401/403, 404, a bad URL) ends it at once.
pub fn push(
    options: &PushOptions,
    stop: &AtomicBool,
    mut progress: impl FnMut(&ServerStats),
) -> Result<PushSummary, PushError> {
    options.validate()?;
    if crate::live::is_live(&options.input) {
        return crate::live::push_live(options, stop, &mut progress);
    }
    match options.codec {
        VideoCodec::Copy => push_copy(options, stop, &mut progress),
        VideoCodec::Libx264 => push_encoded(options, stop, &mut progress),
    }
}

/// The audio stream to pass through, decided before connecting: the selected stream when
/// the destination carries its codec; otherwise one warning and none (`auto`), an error
/// (`copy`), or none without a word (`none`, which opens the input without audio anyway).
fn choose_audio(
    options: &PushOptions,
    selected: Option<&AudioParams>,
) -> Result<Option<AudioStream>, PushError> {
    let input = redact_url(&options.input);
    let Some(params) = selected else {
        if options.audio == AudioMode::Copy {
            return Err(PushError::Audio(format!(
                "{input}: --audio copy, but the input has no audio stream"
            )));
        }
        return Ok(None);
    };
    let protocol = Protocol::from_url(&options.address);
    let problem = match codec_of(&params.codec) {
        None => Some(format!(
            "audio stream {} is {}, which cannot be passed through (supported: {})",
            params.ordinal,
            params.codec,
            crate::transport::AudioCodec::supported()
        )),
        Some(c) => protocol.filter(|p| !p.carries(c)).map(|p| {
            format!(
                "audio stream {} is {}, which {p} cannot carry",
                params.ordinal, params.codec
            )
        }),
    };
    let mut stream = AudioStream::new(
        params.codec.clone(),
        params.sample_rate,
        params.channels,
        params.time_base,
    )
    .with_bit_rate(params.bit_rate)
    .with_extradata(params.extradata.clone());
    let problem = problem.or_else(|| {
        // AAC from MPEG-TS or `.aac` carries ADTS headers instead of extradata: the first
        // packet's header describes the stream.
        if params.codec == "aac" && params.extradata.is_empty() {
            match first_adts_config(options) {
                Some(config) => stream = stream.clone().with_extradata(config),
                None => {
                    return Some(format!(
                        "audio stream {} is AAC without an AudioSpecificConfig or ADTS \
                         headers",
                        params.ordinal
                    ))
                }
            }
        }
        None
    });
    match (problem, options.audio) {
        (None, _) => Ok(Some(stream)),
        (Some(p), AudioMode::Copy) => Err(PushError::Audio(format!("{input}: {p}"))),
        (Some(p), _) => {
            tracing::warn!("{input}: {p}; pushing the video only (--audio none hides this)");
            Ok(None)
        }
    }
}

/// The AudioSpecificConfig in the ADTS header of the selected audio stream's first packet
/// (read from a second opening of the input, before connecting).
fn first_adts_config(options: &PushOptions) -> Option<Bytes> {
    let mut demuxer = Demuxer::open(&options.input, &options.open_options()).ok()?;
    // The first audio packet comes within the first few hundred packets of any muxer.
    for _ in 0..2000 {
        match demuxer.next_media().ok()?? {
            DemuxedPacket::Audio(p) => return config_from_adts(&p.data),
            _ => continue,
        }
    }
    None
}

/// Copy mode: demux, interleave, pace and send on this thread.
fn push_copy(
    options: &PushOptions,
    stop: &AtomicBool,
    progress: &mut impl FnMut(&ServerStats),
) -> Result<PushSummary, PushError> {
    let input = redact_url(&options.input);
    let mut reader = PacketReader::open(options)?;
    let params = reader.params.clone();
    if params.codec != "h264" {
        return Err(PushError::NotH264 {
            input,
            codec: params.codec.clone(),
        });
    }
    let audio = choose_audio(options, reader.demuxer.audio())?;
    if audio.is_none() {
        reader.audio_time_base = None;
    }
    let mut extradata = reader.extradata.clone();
    let mut first = Vec::new();
    if VideoTrack::from_extradata(&extradata).is_err() && reader.format == PacketFormat::AnnexB {
        // Raw Annex B input without extradata: take the parameter sets in-band.
        loop {
            match reader.next(stop)? {
                Some(Read::Packet(p)) => {
                    extradata = in_band_parameter_sets(&p.data);
                    first.push(Read::Packet(p));
                    break;
                }
                Some(other @ Read::Audio(_)) => first.push(other),
                _ => return Err(PushError::EmptyInput { input }),
            }
        }
    }
    if let Some(warning) = uncommon_profile(&extradata, &params) {
        tracing::warn!("{input}: {warning}");
    }
    let stream = PacketStream::new(extradata, reader.time_base)
        .with_frame_rate(Some(params.best_frame_rate()))
        .with_bit_rate(params.bit_rate);
    let audio_codec = audio.as_ref().map(|a| a.codec.clone());
    let size = (params.width, params.height, params.best_frame_rate());
    let config = options.server_config(stream, audio);
    let Some(mut server) = open_server(config, KeyFrameRequest::new(), stop)? else {
        return Ok(stopped_while_connecting(options, input, size, audio_codec));
    };
    let mut pusher = Pusher::new(progress);
    pusher.report(&server);
    let mut merge = Merge::new(reader.audio_time_base.is_some());
    let mut reads = first.into_iter();
    let mut damage = None;
    loop {
        let read = match reads.next() {
            Some(r) => Some(r),
            None => match reader.next(stop) {
                Ok(read) => read,
                // Send what came before it, end the stream as at the end, then report it.
                Err(PushError::Input(e @ CodecError::Damaged { .. })) => {
                    damage = Some(e);
                    None
                }
                Err(e) => return Err(e),
            },
        };
        match read {
            Some(Read::Packet(p)) => merge.push_video(p, reader.time_base),
            Some(Read::Audio(p)) => merge.push_audio(p),
            Some(Read::LoopDone) => pusher.loops_completed += 1,
            None => break,
        }
        while let Some(unit) = merge.pop() {
            pusher.serve(&mut server, &unit)?;
        }
    }
    merge.finish();
    while let Some(unit) = merge.pop() {
        pusher.serve(&mut server, &unit)?;
    }
    let finished = pusher.finish(
        options,
        stop,
        server,
        input,
        size,
        Tally {
            frames_encoded: 0,
            audio_codec,
            timestamp_jumps: reader.continuity.jumps(),
        },
    );
    with_damage(finished, damage)
}

/// The outcome of a push whose input may have turned out damaged: the damage is the error
/// (with what was sent), unless the push failed on its own account.
fn with_damage(
    finished: Result<PushSummary, PushError>,
    damage: Option<CodecError>,
) -> Result<PushSummary, PushError> {
    match (finished, damage) {
        (finished, None) => finished,
        (Ok(summary), Some(error)) => Err(PushError::InputDamaged {
            error,
            summary: Box::new(summary),
        }),
        // Damaged before its first frame: nothing was sent.
        (Err(PushError::EmptyInput { .. }), Some(error)) => Err(PushError::Input(error)),
        (Err(e), Some(_)) => Err(e),
    }
}

/// Opens the session unless `stop` is raised while it connects (`None` then).
fn open_server(
    config: ServerConfig,
    keys: KeyFrameRequest,
    stop: &AtomicBool,
) -> Result<Option<Server>, PushError> {
    match Server::open_stoppable(config, keys, stop) {
        Ok(server) => Ok(Some(server)),
        Err(ServerError::Interrupted) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The summary of a push stopped before its session was up: nothing was sent.
fn stopped_while_connecting(
    options: &PushOptions,
    input: String,
    (width, height, frame_rate): (u32, u32, Rational),
    audio_codec: Option<String>,
) -> PushSummary {
    PushSummary {
        input,
        url: redact_url(&options.address),
        codec: options.codec,
        width,
        height,
        frame_rate: frame_rate.to_string(),
        audio_codec,
        loops_completed: 0,
        interrupted: true,
        timestamp_jumps: 0,
        source: None,
        stats: ServerStats::default(),
    }
}

/// Why a copy push of this H.264 stream may not play: profiles beyond High, whose video is
/// more than 8 bits per sample or not 4:2:0, which most players, browsers and servers
/// cannot decode. `profile_idc` is the SPS's first byte (H.264 §7.3.2.1.1); Annex A.2
/// defines 110 High 10, 122 High 4:2:2, 244 High 4:4:4 Predictive and 44 CAVLC 4:4:4 Intra.
/// The decoder's pixel format (from FFmpeg's reading of chroma_format_idc and
/// bit_depth_luma_minus8 in the same SPS) names what the samples are.
fn uncommon_profile(extradata: &Bytes, params: &VideoParams) -> Option<String> {
    let profile_idc = VideoTrack::from_extradata(extradata).ok()?.info.profile_idc;
    let profile = match profile_idc {
        110 => "High 10",
        122 => "High 4:2:2",
        244 => "High 4:4:4 Predictive",
        44 => "CAVLC 4:4:4 Intra",
        _ => return None,
    };
    let format = match params.pixel_format.as_str() {
        "" => String::new(),
        f => format!(", {f}"),
    };
    Some(format!(
        "the H.264 video is {profile} profile (profile_idc {profile_idc}{format}), which most \
         players and servers cannot decode; --codec libx264 sends it as 8-bit 4:2:0 High \
         profile"
    ))
}

/// libx264 mode: decode and encode on a reader thread, pace and send on this one.
fn push_encoded(
    options: &PushOptions,
    stop: &AtomicBool,
    progress: &mut impl FnMut(&ServerStats),
) -> Result<PushSummary, PushError> {
    let (tx, rx) = sync_channel::<Item>(options.queue_capacity.max(1));
    let keys = KeyFrameRequest::new();
    std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("mpegcoder-reader".into())
            .spawn_scoped(scope, || read_input(options, stop, tx, &keys))
            .map_err(|e| PushError::Reader(std::sync::Arc::new(e)))?;
        let result = run_encoded(options, stop, &rx, progress, &keys);
        // Unblock the reader if it waits on a full queue, then wait for it.
        drop(rx);
        if reader.join().is_err() {
            return Err(reader_error("the reader thread panicked"));
        }
        result
    })
}

fn run_encoded(
    options: &PushOptions,
    stop: &AtomicBool,
    rx: &Receiver<Item>,
    progress: &mut impl FnMut(&ServerStats),
    keys: &KeyFrameRequest,
) -> Result<PushSummary, PushError> {
    let input = redact_url(&options.input);
    let (params, stream, audio) = match rx.recv() {
        Ok(Item::Start {
            params,
            stream,
            audio,
        }) => (params, stream, audio),
        Ok(Item::Error(e)) => return Err(e),
        Ok(_) => return Err(reader_error("stream information came late")),
        // Stopped while opening the input: the reader left without a word.
        Err(_) if stop.load(Ordering::Relaxed) => {
            return Ok(stopped_while_connecting(
                options,
                input,
                (0, 0, Rational::new(0, 1)),
                None,
            ))
        }
        Err(_) => return Err(reader_error("no stream information")),
    };
    let enc = options.encoder_config(&params);
    let video_tb = stream.time_base;
    let audio_codec = audio.as_ref().map(|a| a.codec.clone());
    let mut merge = Merge::new(audio.is_some());
    let size = (enc.width, enc.height, enc.frame_rate);
    let config = options.server_config(stream, audio);
    let Some(mut server) = open_server(config, keys.clone(), stop)? else {
        return Ok(stopped_while_connecting(options, input, size, audio_codec));
    };
    let mut pusher = Pusher::new(progress);
    pusher.report(&server);
    let mut frames_encoded = 0u64;
    let mut jumps = 0u64;
    let mut damage = None;
    // After a stop the reader stops reading and flushes the encoder: what it still sends
    // (libx264's delayed frames) goes out paced, until it hangs up.
    while let Ok(item) = rx.recv() {
        match item {
            Item::Packet(p) => merge.push_video(p, video_tb),
            Item::Audio(p) => merge.push_audio(p),
            Item::LoopDone => pusher.loops_completed += 1,
            Item::FramesEncoded(n, j) => {
                frames_encoded = n;
                jumps = j;
            }
            // The reader flushed the encoder before it said so: what it sent goes out first.
            Item::Error(PushError::Input(e @ CodecError::Damaged { .. })) => damage = Some(e),
            Item::Error(e) => return Err(e),
            Item::Start { .. } => {}
        }
        while let Some(unit) = merge.pop() {
            pusher.serve(&mut server, &unit)?;
        }
    }
    merge.finish();
    while let Some(unit) = merge.pop() {
        pusher.serve(&mut server, &unit)?;
    }
    let finished = pusher.finish(
        options,
        stop,
        server,
        input,
        size,
        Tally {
            frames_encoded,
            audio_codec,
            timestamp_jumps: jumps,
        },
    );
    with_damage(finished, damage)
}

/// What the reading side counted, for the summary.
pub(crate) struct Tally {
    pub(crate) frames_encoded: u64,
    pub(crate) audio_codec: Option<String>,
    pub(crate) timestamp_jumps: u64,
}

/// A packet on its way to the server.
enum Unit {
    Video(EncodedPacket),
    Audio(EncodedPacket),
}

/// Video and audio merged into timestamp order (video by DTS, audio by PTS) on one
/// nanosecond timeline, for the one pacer.
struct Merge {
    interleaver: Interleaver<Unit>,
}

impl Merge {
    /// How long (stream time) a track with nothing to send is waited for: longer than any
    /// muxer's interleave and any encoder's delay, short enough to bound the memory.
    const MAX_WAIT: Duration = Duration::from_secs(5);
    const MAX_QUEUED: usize = 4096;

    fn new(audio: bool) -> Merge {
        let mut interleaver = Interleaver::new(2, Merge::MAX_WAIT, Merge::MAX_QUEUED);
        if !audio {
            interleaver.end(1);
        }
        Merge { interleaver }
    }

    fn push_video(&mut self, p: EncodedPacket, time_base: Rational) {
        let tb = if p.time_base.is_valid() {
            p.time_base
        } else {
            time_base
        };
        self.interleaver
            .push(0, tb.ticks_to_nanos(p.dts), Unit::Video(p));
    }

    fn push_audio(&mut self, p: EncodedPacket) {
        let ts = p.time_base.ticks_to_nanos(p.pts);
        self.interleaver.push(1, ts, Unit::Audio(p));
    }

    fn pop(&mut self) -> Option<Unit> {
        self.interleaver.pop()
    }

    /// The input ended: hand out everything left.
    fn finish(&mut self) {
        self.interleaver.end_all();
    }
}

/// The sending side's bookkeeping, shared by both modes.
pub(crate) struct Pusher<'a, P: FnMut(&ServerStats)> {
    progress: &'a mut P,
    last_report: Instant,
    pub(crate) loops_completed: u64,
}

impl<'a, P: FnMut(&ServerStats)> Pusher<'a, P> {
    pub(crate) fn new(progress: &'a mut P) -> Self {
        Pusher {
            progress,
            last_report: Instant::now(),
            loops_completed: 0,
        }
    }

    /// Sends a packet when it is due. A packet the session refuses (broken timestamps, no
    /// NAL unit to send) is skipped with a warning, as ffmpeg does; anything else ends the
    /// push.
    fn serve(&mut self, server: &mut Server, unit: &Unit) -> Result<(), PushError> {
        let sent = match unit {
            Unit::Video(p) => server.serve_packet_block(p),
            Unit::Audio(p) => server.serve_audio_block(p),
        };
        match sent {
            Ok(()) => {}
            Err(ServerError::Publish(e)) if e.is_media_error() => {
                tracing::warn!(url = %server.url(), "skipping a packet the stream cannot carry: {e}");
            }
            Err(e) => return Err(e.into()),
        }
        if self.last_report.elapsed() >= Duration::from_millis(250) {
            self.last_report = Instant::now();
            (self.progress)(&server.stats());
        }
        Ok(())
    }

    /// Reports the server's statistics now: the first report says the session is up.
    pub(crate) fn report(&mut self, server: &Server) {
        self.last_report = Instant::now();
        (self.progress)(&server.stats());
    }

    /// Reports the server's statistics when the last report is a quarter second old.
    pub(crate) fn tick(&mut self, server: &Server) {
        if self.last_report.elapsed() >= Duration::from_millis(250) {
            self.last_report = Instant::now();
            (self.progress)(&server.stats());
        }
    }

    pub(crate) fn finish(
        self,
        options: &PushOptions,
        stop: &AtomicBool,
        server: Server,
        input: String,
        (width, height, frame_rate): (u32, u32, Rational),
        tally: Tally,
    ) -> Result<PushSummary, PushError> {
        let finished = options.loops != -1 && self.loops_completed >= options.loops.unsigned_abs();
        let interrupted = stop.load(Ordering::Relaxed) && !finished;
        let url = server.url().to_string();
        let destinations = server.config().addresses().count();
        let (mut stats, error) = server.close_reporting();
        if options.codec == VideoCodec::Libx264 {
            stats.frames_encoded = tally.frames_encoded;
        }
        (self.progress)(&stats);
        // Stopped while a destination was still reconnecting: the stop is the user's, and
        // the statistics say where each destination stood.
        let only_reconnecting = stats.destinations.iter().all(|d| {
            matches!(
                d.state,
                DestinationState::Closed
                    | DestinationState::Reconnecting
                    | DestinationState::Connecting
            )
        });
        let failures = match error {
            None => None,
            Some(_) if interrupted && only_reconnecting => None,
            Some(ServerError::Destinations { failures }) => Some(failures),
            Some(e) if destinations == 1 => return Err(e.into()),
            Some(e) => Some(vec![(url.clone(), mpegcoder_types::error_chain(&e))]),
        };
        if stats.frames_sent == 0 && !interrupted && failures.is_none() {
            return Err(PushError::EmptyInput { input });
        }
        let summary = PushSummary {
            input,
            url,
            codec: options.codec,
            width,
            height,
            frame_rate: frame_rate.to_string(),
            audio_codec: tally.audio_codec,
            loops_completed: self.loops_completed,
            interrupted,
            timestamp_jumps: tally.timestamp_jumps,
            source: None,
            stats,
        };
        match failures {
            Some(failures) => Err(PushError::Destinations {
                failures,
                summary: Box::new(summary),
            }),
            None => Ok(summary),
        }
    }
}

/// The SPS and PPS NAL units of an Annex B access unit, as Annex B extradata.
fn in_band_parameter_sets(data: &Bytes) -> Bytes {
    let mut out = BytesMut::new();
    for nal in split_annexb(data) {
        if matches!(nal_unit_type(&nal), nal_type::SPS | nal_type::PPS) {
            out.put_slice(&[0, 0, 0, 1]);
            out.put_slice(&nal);
        }
    }
    out.freeze()
}

/// The reader thread of libx264 mode: sends `Start`, then the encoded packets and the audio
/// packets with loop offsets, `LoopDone` after each pass, the encoder's flushed packets and
/// `FramesEncoded` at the end or on a stop. Returns when done, stopped, or the pusher hung up.
fn read_input(
    options: &PushOptions,
    stop: &AtomicBool,
    tx: SyncSender<Item>,
    keys: &KeyFrameRequest,
) {
    // Reading runs ahead of the pacer: it (and the decoder's and encoder's threads, created
    // here) must not delay the pusher's sends.
    crate::priority::lower_current_thread();
    if let Err(e) = read_frames(options, stop, &tx, keys) {
        let _ = tx.send(Item::Error(e));
    }
}

/// `Err(())` from a send means the pusher is gone: stop quietly.
fn send(tx: &SyncSender<Item>, item: Item) -> Result<(), ()> {
    tx.send(item).map_err(|_| ())
}

fn read_frames(
    options: &PushOptions,
    stop: &AtomicBool,
    tx: &SyncSender<Item>,
    keys: &KeyFrameRequest,
) -> Result<(), PushError> {
    let mut decoder = Decoder::open(
        &options.input,
        DecoderOptions::default()
            .with_threads(options.decoder_threads)
            .with_output(PixelLayout::Yuv420p)
            .with_open(options.open_options()),
    )?;
    let audio = choose_audio(options, decoder.audio())?;
    let audio_params = decoder.audio().cloned().filter(|_| audio.is_some());
    if std::path::Path::new(&options.input).is_file() {
        // Reading the packets of a local file (no decoding) gives exact GOP size and B-frame
        // count, which the encoder inherits like the original's configDict.
        decoder.build_index()?;
    }
    let params = decoder.params().clone();
    let time_base = decoder.time_base();
    let frame_duration = rescale(1, params.best_frame_rate().invert(), time_base).max(1);
    let config = options.encoder_config(&params);
    let mut encoder = Encoder::new(config.clone()).map_err(ServerError::from)?;
    if stop.load(Ordering::Relaxed) {
        // Stopped while opening: the pusher sees the queue close before `Start`.
        return Ok(());
    }
    if let Some(warning) = options.size_change(&params, &config) {
        tracing::warn!("{warning}");
    }
    let stream = PacketStream::libx264(encoder.extradata().clone(), encoder.time_base(), &config);
    let start = Item::Start {
        params: Box::new(params.clone()),
        stream,
        audio,
    };
    if send(tx, start).is_err() {
        return Ok(());
    }
    let mut fps = options.frame_rate.and_then(FpsConverter::new);
    let mut clock = LoopClock::new(time_base, audio_params.as_ref());
    // With a frame rate conversion the video is re-stamped from 0 at its first frame: the
    // audio moves with it.
    let mut audio_shift: Option<i128> = None;
    let mut continuity = Continuity::default();
    let mut pass = 0i64;
    loop {
        let mut damage = None;
        loop {
            let mut frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                // The frames before the damage are out: end as at the end of the input.
                Err(e @ CodecError::Damaged { .. }) => {
                    damage = Some(e);
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            if stop.load(Ordering::Relaxed) {
                return finish_encoding(&mut encoder, continuity.jumps(), tx);
            }
            clock.video(frame.pts, frame.pts + frame_duration);
            frame.pts += clock.video_offset();
            let shift = continuity.offset(
                0,
                time_base.ticks_to_nanos(frame.pts),
                time_base.ticks_to_nanos(frame_duration),
            );
            frame.pts = frame
                .pts
                .saturating_add(Rational::NANOS.rescale(ns_i64(shift), time_base));
            if fps.is_some() && audio_shift.is_none() {
                audio_shift = Some(time_base.ticks_to_nanos(frame.pts));
            }
            let out = match fps.as_mut() {
                Some(conv) => conv.push(frame),
                None => vec![frame],
            };
            for f in out {
                if !encode_and_send(&mut encoder, &f, tx, keys)? {
                    return Ok(());
                }
            }
            if !send_audio(&mut decoder, &mut clock, &mut continuity, audio_shift, tx) {
                return Ok(());
            }
        }
        // The end of the pass: the audio read after the last frame.
        if !send_audio(&mut decoder, &mut clock, &mut continuity, audio_shift, tx) {
            return Ok(());
        }
        if let Some(damage) = damage {
            if let Some(conv) = fps.as_mut() {
                let end = clock.video_end().unwrap_or(0) + clock.video_offset();
                for f in conv.finish(end, time_base) {
                    if !encode_and_send(&mut encoder, &f, tx, keys)? {
                        return Ok(());
                    }
                }
            }
            finish_encoding(&mut encoder, continuity.jumps(), tx)?;
            return Err(damage.into());
        }
        if !clock.has_video() {
            return Err(PushError::EmptyInput {
                input: redact_url(&options.input),
            });
        }
        pass += 1;
        let last_pass = options.loops != -1 && pass >= options.loops;
        if last_pass {
            if let Some(conv) = fps.as_mut() {
                let end = clock.video_end().unwrap_or(0) + clock.video_offset();
                for f in conv.finish(end, time_base) {
                    if !encode_and_send(&mut encoder, &f, tx, keys)? {
                        return Ok(());
                    }
                }
            }
            finish_encoding(&mut encoder, continuity.jumps(), tx)?;
        }
        if send(tx, Item::LoopDone).is_err() || last_pass {
            return Ok(());
        }
        clock.next_pass();
        decoder.rewind()?;
    }
}

/// Hands the audio packets the decoder read to the pusher, with the loop offset (and the
/// frame-rate conversion's shift). `false` when the pusher is gone.
fn send_audio(
    decoder: &mut Decoder,
    clock: &mut LoopClock,
    continuity: &mut Continuity,
    shift_ns: Option<i128>,
    tx: &SyncSender<Item>,
) -> bool {
    for mut p in decoder.take_audio_packets() {
        clock.audio(p.pts, p.pts + p.duration.max(0));
        let offset = clock.audio_offset();
        p.pts += offset;
        p.dts += offset;
        let tb = p.time_base;
        let jump = continuity.offset(
            1,
            tb.ticks_to_nanos(p.pts),
            tb.ticks_to_nanos(p.duration.max(0)),
        );
        shift_packet(&mut p, jump - shift_ns.unwrap_or(0));
        if send(tx, Item::Audio(p)).is_err() {
            return false;
        }
    }
    true
}

fn ns_i64(ns: i128) -> i64 {
    i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
}

/// Encodes a frame (as an IDR picture when a destination asked for a key frame) and queues
/// what the encoder outputs. `Ok(false)` means the pusher is gone.
fn encode_and_send(
    encoder: &mut Encoder,
    frame: &Frame,
    tx: &SyncSender<Item>,
    keys: &KeyFrameRequest,
) -> Result<bool, PushError> {
    if keys.take() {
        encoder.force_key_frame();
    }
    let packets = encoder.encode(frame).map_err(ServerError::from)?;
    for p in packets {
        if send(tx, Item::Packet(p)).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Flushes the encoder's delayed frames into the queue, then the count of frames encoded.
fn finish_encoding(
    encoder: &mut Encoder,
    jumps: u64,
    tx: &SyncSender<Item>,
) -> Result<(), PushError> {
    let packets = encoder.finish().map_err(ServerError::from)?;
    for p in packets {
        if send(tx, Item::Packet(p)).is_err() {
            return Ok(());
        }
    }
    let _ = send(tx, Item::FramesEncoded(encoder.frames_in(), jumps));
    Ok(())
}

/// The timestamp offsets of loop playback. Each pass shifts every track by one duration, the
/// span of the longest track, so every track's timestamps keep increasing across the wrap
/// and the tracks stay aligned. The longest track's offset grows by its exact span; the
/// other's is derived from that total (never summed from rounded steps), so nothing drifts.
#[derive(Debug)]
struct LoopClock {
    video_tb: Rational,
    audio_tb: Option<Rational>,
    /// One audio frame, for packets without a stored duration.
    audio_frame: i64,
    video_offset: i64,
    audio_offset: i64,
    /// Lowest pts and highest end of this pass, per track.
    video_span: Option<(i64, i64)>,
    audio_span: Option<(i64, i64)>,
}

impl LoopClock {
    fn new(video_tb: Rational, audio: Option<&AudioParams>) -> LoopClock {
        LoopClock {
            video_tb,
            audio_tb: audio.map(|a| a.time_base),
            audio_frame: audio.and_then(AudioParams::frame_ticks).unwrap_or(0),
            video_offset: 0,
            audio_offset: 0,
            video_span: None,
            audio_span: None,
        }
    }

    fn widen(span: &mut Option<(i64, i64)>, pts: i64, end: i64) {
        let (lo, hi) = span.get_or_insert((pts, end));
        *lo = (*lo).min(pts);
        *hi = (*hi).max(end);
    }

    /// A video frame (or packet) of this pass, before its offset.
    fn video(&mut self, pts: i64, end: i64) {
        Self::widen(&mut self.video_span, pts, end);
    }

    /// An audio packet of this pass, before its offset.
    fn audio(&mut self, pts: i64, end: i64) {
        let end = if end > pts {
            end
        } else {
            pts + self.audio_frame
        };
        Self::widen(&mut self.audio_span, pts, end);
    }

    fn has_video(&self) -> bool {
        self.video_span.is_some()
    }

    fn video_end(&self) -> Option<i64> {
        self.video_span.map(|(_, hi)| hi)
    }

    fn video_offset(&self) -> i64 {
        self.video_offset
    }

    fn audio_offset(&self) -> i64 {
        self.audio_offset
    }

    /// The end of a pass: both offsets move on by the longest track's span.
    fn next_pass(&mut self) {
        let video = self.video_span.take().map(|(lo, hi)| hi - lo).unwrap_or(0);
        let audio = self.audio_span.take().map(|(lo, hi)| hi - lo).unwrap_or(0);
        let Some(atb) = self.audio_tb else {
            self.video_offset += video;
            return;
        };
        let vtb = self.video_tb;
        if atb.ticks_to_nanos(audio) > vtb.ticks_to_nanos(video) {
            self.audio_offset += audio;
            self.video_offset = atb.rescale(self.audio_offset, vtb);
        } else {
            self.video_offset += video;
            self.audio_offset = vtb.rescale(self.video_offset, atb);
        }
    }
}

/// What the copy-mode reader produced.
enum Read {
    Packet(EncodedPacket),
    Audio(EncodedPacket),
    LoopDone,
}

/// The copy-mode reader: demuxed packets with loop offsets, on the calling thread.
struct PacketReader {
    demuxer: Demuxer,
    params: VideoParams,
    extradata: Bytes,
    time_base: Rational,
    /// The audio's time base, while audio is read (`None`: audio packets are dropped).
    audio_time_base: Option<Rational>,
    format: PacketFormat,
    input: String,
    loops: i64,
    pass: i64,
    clock: LoopClock,
    continuity: Continuity,
    /// One video frame (the step a jump of the input's clock is replaced with), ticks.
    frame_ticks: i64,
    done: bool,
}

/// Shifts `p` by `ns` nanoseconds (its own time base).
fn shift_packet(p: &mut EncodedPacket, ns: i128) {
    if ns != 0 {
        let ticks = Rational::NANOS.rescale(ns_i64(ns), p.time_base);
        p.pts = p.pts.saturating_add(ticks);
        p.dts = p.dts.saturating_add(ticks);
    }
}

impl PacketReader {
    fn open(options: &PushOptions) -> Result<PacketReader, PushError> {
        let demuxer = Demuxer::open(&options.input, &options.open_options())?;
        let time_base = demuxer.time_base();
        Ok(PacketReader {
            params: demuxer.params().clone(),
            extradata: demuxer.extradata().clone(),
            time_base,
            audio_time_base: demuxer.audio().map(|a| a.time_base),
            format: demuxer.packet_format(),
            clock: LoopClock::new(time_base, demuxer.audio()),
            continuity: Continuity::default(),
            frame_ticks: rescale(1, demuxer.params().best_frame_rate().invert(), time_base).max(1),
            demuxer,
            input: redact_url(&options.input),
            loops: options.loops,
            pass: 0,
            done: false,
        })
    }

    /// The next packet (timestamps offset by the passes before), `LoopDone` at the end of a
    /// pass, `None` at the end or once `stop` is set.
    fn next(&mut self, stop: &AtomicBool) -> Result<Option<Read>, PushError> {
        loop {
            if self.done || stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            match self.demuxer.next_media()? {
                Some(DemuxedPacket::Video(mut packet)) => {
                    let end = packet.pts + packet.duration.max(1);
                    self.clock.video(packet.pts, end);
                    packet.pts += self.clock.video_offset();
                    packet.dts += self.clock.video_offset();
                    let tb = packet.time_base;
                    let duration = if packet.duration > 0 {
                        packet.duration
                    } else {
                        self.frame_ticks
                    };
                    let shift = self.continuity.offset(
                        0,
                        tb.ticks_to_nanos(packet.dts),
                        tb.ticks_to_nanos(duration),
                    );
                    shift_packet(&mut packet, shift);
                    return Ok(Some(Read::Packet(packet)));
                }
                Some(DemuxedPacket::Audio(mut packet)) => {
                    if self.audio_time_base.is_none() {
                        continue;
                    }
                    self.clock
                        .audio(packet.pts, packet.pts + packet.duration.max(0));
                    packet.pts += self.clock.audio_offset();
                    packet.dts += self.clock.audio_offset();
                    let tb = packet.time_base;
                    let shift = self.continuity.offset(
                        1,
                        tb.ticks_to_nanos(packet.pts),
                        tb.ticks_to_nanos(packet.duration.max(0)),
                    );
                    shift_packet(&mut packet, shift);
                    return Ok(Some(Read::Audio(packet)));
                }
                Some(_) => continue,
                None => {}
            }
            if !self.clock.has_video() {
                return Err(PushError::EmptyInput {
                    input: self.input.clone(),
                });
            }
            self.pass += 1;
            if self.loops != -1 && self.pass >= self.loops {
                self.done = true;
            } else {
                self.clock.next_pass();
                self.demuxer.rewind()?;
            }
            return Ok(Some(Read::LoopDone));
        }
    }
}

/// Converts a stream to a constant output frame rate by dropping or repeating frames: output
/// slot n (at n / rate from the first frame) shows the latest input frame at or before it
/// (the schedule is the shared [`FrameRateConverter`]).
struct FpsConverter {
    slots: FrameRateConverter,
    pending: Option<Frame>,
}

impl FpsConverter {
    fn new(rate: Rational) -> Option<FpsConverter> {
        Some(FpsConverter {
            slots: FrameRateConverter::new(rate)?,
            pending: None,
        })
    }

    /// Feeds a frame; returns the output frames that became final.
    fn push(&mut self, frame: Frame) -> Vec<Frame> {
        let n = self.slots.slots_before(frame.pts, frame.time_base);
        let out = self.emit(n);
        self.pending = Some(frame);
        out
    }

    /// Emits the pending frame for every slot before `end` (ticks of the input time base).
    fn finish(&mut self, end: i64, time_base: Rational) -> Vec<Frame> {
        let n = self.slots.finish(end, time_base);
        self.emit(n)
    }

    /// The pending frame `n` times, stamped with consecutive output slots.
    fn emit(&mut self, n: u64) -> Vec<Frame> {
        let Some(pending) = &self.pending else {
            return Vec::new();
        };
        let first = self.slots.next_slot() - n;
        let time_base = self.slots.output_time_base();
        (first..first + n)
            .map(|slot| {
                let mut f = pending.clone();
                f.pts = i64::try_from(slot).unwrap_or(i64::MAX);
                f.time_base = time_base;
                f
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pts: i64) -> Frame {
        Frame::from_packed(
            PixelLayout::Yuv420p,
            2,
            2,
            Bytes::from(vec![pts as u8; 6]),
            pts,
            Rational::new(1, 30),
        )
        .expect("valid frame")
    }

    #[test]
    fn fps_conversion_drops_and_repeats_without_duplicating_time() {
        // 30 fps → 10 fps keeps every third frame.
        let mut conv = FpsConverter::new(Rational::new(10, 1)).expect("valid rate");
        let mut out = Vec::new();
        for n in 0..30 {
            out.extend(conv.push(frame(n)));
        }
        out.extend(conv.finish(30, Rational::new(1, 30)));
        let src: Vec<u8> = out.iter().map(|f| f.data[0]).collect();
        assert_eq!(src, (0..30).step_by(3).map(|n| n as u8).collect::<Vec<_>>());
        assert!(out.iter().enumerate().all(|(i, f)| f.pts == i as i64));
        // 30 fps → 60 fps shows every frame twice.
        let mut conv = FpsConverter::new(Rational::new(60, 1)).expect("valid rate");
        let mut out = Vec::new();
        for n in 0..5 {
            out.extend(conv.push(frame(n)));
        }
        out.extend(conv.finish(5, Rational::new(1, 30)));
        let src: Vec<u8> = out.iter().map(|f| f.data[0]).collect();
        assert_eq!(src, vec![0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
    }

    #[test]
    fn rejects_options_that_cannot_work() {
        let mut o = PushOptions::new("in.mp4", "rtsp://h/x");
        o.loops = 0;
        assert!(matches!(o.validate(), Err(PushError::Config(_))));
        let mut o = PushOptions::new("in.mp4", "rtsp://h/x");
        o.codec = VideoCodec::Copy;
        o.bit_rate = Some(1_000_000);
        let err = o.validate().expect_err("bit rate with copy");
        assert!(err.to_string().contains("bit rate"), "{err}");
        assert!(PushOptions::new("in.mp4", "rtsp://h/x").validate().is_ok());
        // libx264's names: an error naming the option, the value and what is accepted.
        let o = PushOptions::new("in.mp4", "rtsp://h/x").with_preset(Some("bogus".into()));
        let err = o.validate().expect_err("bad preset").to_string();
        assert!(err.starts_with("invalid preset \"bogus\""), "{err}");
        assert!(
            err.contains("ultrafast") && err.contains("placebo"),
            "{err}"
        );
        let o = PushOptions::new("in.mp4", "rtsp://h/x").with_profile(Some("high444".into()));
        let err = o.validate().expect_err("bad profile").to_string();
        assert!(err.contains("baseline, main, high"), "{err}");
        let o = PushOptions::new("in.mp4", "rtsp://h/x")
            .with_tune(Some("fastdecode,zerolatency".into()))
            .with_profile(Some("main".into()));
        assert!(o.validate().is_ok());
    }

    fn params(width: u32, height: u32) -> VideoParams {
        VideoParams {
            width,
            height,
            frame_rate: Rational::new(30, 1),
            avg_frame_rate: Rational::new(30, 1),
            time_base: Rational::new(1, 15360),
            start_time: 0,
            duration_s: Some(2.0),
            frame_count: 60,
            frame_count_source: crate::codec::FrameCountSource::Container,
            codec: "ffv1".into(),
            bit_rate: None,
            pixel_format: "bgr0".into(),
            gop_size: None,
            max_b_frames: Some(0),
        }
    }

    #[test]
    fn odd_sizes_are_encoded_one_pixel_smaller_with_a_warning() {
        let o = PushOptions::new("odd.mkv", "rtsp://h/x");
        let p = params(321, 241);
        let enc = o.encoder_config(&p);
        assert_eq!((enc.width, enc.height), (320, 240));
        assert_eq!((enc.source_width, enc.source_height), (321, 241));
        let warning = o.size_change(&p, &enc).expect("a warning");
        assert!(
            warning.contains("odd.mkv")
                && warning.contains("321x241,")
                && warning.contains("320x240"),
            "{warning}"
        );
        // Even, or a size the user asked for: nothing to say.
        let p = params(320, 240);
        assert_eq!(o.size_change(&p, &o.encoder_config(&p)), None);
        let o = o.with_size(Some((160, 120)));
        let p = params(321, 241);
        let enc = o.encoder_config(&p);
        assert_eq!((enc.width, enc.height), (160, 120));
        assert_eq!(o.size_change(&p, &enc), None);
    }
}
