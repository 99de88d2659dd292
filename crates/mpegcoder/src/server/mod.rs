//! The push pipeline (mpegCoder's `MpegServer`): frames are encoded with libx264 (or demuxed
//! H.264 packets pass through untouched), paced against the wall clock by their decoding
//! timestamps, and published over RTSP or RTMP.
//!
//! Two faces over one core:
//! - [`AsyncServer`]: async, on the caller's tokio runtime. The session's task runs there;
//!   pacing waits on a precise timer ([`crate::pacer::sleep_until_async`]); libx264 encodes on
//!   a thread of its own, never on a runtime thread.
//! - [`Server`]: the blocking, mpegCoder-like API (`serve_frame`, `serve_frame_block`,
//!   `wait_ref`, `close`). It encodes and paces on the calling thread and hands each access
//!   unit to the session's task on the process-wide runtime of the blocking API; it works from
//!   plain threads and, without panicking, from inside another runtime.
//!
//! Pacing happens at the send point, after the encoder, on DTS: libx264's lookahead delays its
//! output, and `close` flushes the delayed frames still paced, so neither the start nor the
//! end of a stream bursts.

mod asynk;
mod audio;
mod blocking;
mod core;
mod encoder;
mod fanout;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::codec::{CodecError, EncoderConfig, Frame, Rational, VideoParams};
use crate::reconnect::ReconnectPolicy;
use crate::transport::h264::H264Error;
use crate::transport::{PublishError, PublisherStats, TlsOptions, Transport};
use crate::types::Redacted;

pub use self::asynk::AsyncServer;
pub use self::audio::{codec_of, config_from_adts, AudioStream};
pub use self::blocking::Server;

/// How frames become H.264.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// Encode with libx264.
    #[default]
    Libx264,
    /// Pass demuxed H.264 packets through untouched.
    Copy,
}

impl std::str::FromStr for VideoCodec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "libx264" | "h264" | "x264" => Ok(VideoCodec::Libx264),
            "copy" => Ok(VideoCodec::Copy),
            other => Err(format!(
                "unknown codec {other:?} (expected libx264 or copy)"
            )),
        }
    }
}

/// H.264 packets encoded elsewhere (demuxed for copy mode, or from an encoder on another
/// thread): what the stream is, so the server can describe it to the media server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PacketStream {
    /// The stream's global header: an avcC record, or Annex B SPS and PPS. Packets are
    /// length-prefixed when it is an avcC record, Annex B otherwise.
    pub extradata: Bytes,
    /// The time base of the packets' timestamps.
    pub time_base: Rational,
    /// The nominal frame rate, when known (announced in the SDP / `onMetaData`).
    pub frame_rate: Option<Rational>,
    /// The bit rate in bits/s, when known (announced likewise).
    pub bit_rate: Option<u64>,
    /// The encoder's name, announced in `onMetaData` (e.g. `libx264`).
    pub encoder: Option<String>,
}

impl PacketStream {
    /// Packets with this global header and time base.
    pub fn new(extradata: Bytes, time_base: Rational) -> PacketStream {
        PacketStream {
            extradata,
            time_base,
            frame_rate: None,
            bit_rate: None,
            encoder: None,
        }
    }

    /// The packets of a libx264 encoder with these settings, whose global header is
    /// `extradata` and whose packets are stamped in `time_base`.
    pub fn libx264(extradata: Bytes, time_base: Rational, config: &EncoderConfig) -> PacketStream {
        PacketStream::new(extradata, time_base)
            .with_frame_rate(Some(config.frame_rate))
            .with_bit_rate(Some(config.bit_rate))
            .with_encoder("libx264")
    }

    /// Announces a nominal frame rate.
    pub fn with_frame_rate(mut self, frame_rate: Option<Rational>) -> Self {
        self.frame_rate = frame_rate;
        self
    }

    /// Announces a bit rate in bits/s.
    pub fn with_bit_rate(mut self, bit_rate: Option<u64>) -> Self {
        self.bit_rate = bit_rate;
        self
    }

    /// Names the encoder that produced the packets.
    pub fn with_encoder(mut self, name: impl Into<String>) -> Self {
        self.encoder = Some(name.into());
        self
    }
}

/// Where the video comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum VideoSource {
    /// Frames, encoded by the server with libx264 (`serve_frame`).
    Encode(EncoderConfig),
    /// H.264 packets encoded elsewhere or demuxed (`serve_packet`).
    Packets(PacketStream),
}

/// Everything a [`Server`] or [`AsyncServer`] needs, as plain data (serde), so it can cross a
/// thread or process boundary like mpegCoder's `configDict`. The video source decides what the
/// server takes: frames to encode, or packets; no other setting can contradict it.
///
/// Build it with [`ServerConfig::from_params`] (inherit a decoder's parameters and encode
/// with libx264, mpegCoder's `setParameter(configDict=...)`), [`ServerConfig::encode`] or
/// [`ServerConfig::packets`], then change what differs with the `with_*` setters.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where to publish: `rtsp[s]://[user:pass@]host[:port]/path` or
    /// `rtmp[s]://[user:pass@]host[:port]/app/key` (`rtsps` and `rtmps`: inside TLS).
    pub address: String,
    /// The video: frames to encode with libx264, or packets to pass through.
    pub video: VideoSource,
    /// RTSP over TCP or UDP (ignored for RTMP).
    pub transport: Transport,
    /// Pace by timestamps (false: send as fast as frames come).
    pub pace: bool,
    /// Playback speed: 1.0 is real time.
    pub rate: f64,
    /// How far ahead of its deadline a frame may leave.
    pub max_lead: Duration,
    /// The audio passed through next to the video (`serve_audio`), if any.
    #[serde(default)]
    pub audio: Option<AudioStream>,
    /// More destinations beside `address`: one encode and one timeline feed them all, each
    /// with its own connection, queue and reconnect state.
    #[serde(default)]
    pub extra_addresses: Vec<String>,
    /// Reconnect a lost destination with this policy; `None`: a lost connection ends it.
    #[serde(default)]
    pub reconnect: Option<ReconnectPolicy>,
    /// Certificate checks of `rtsps://` and `rtmps://` destinations (default: verified against
    /// the system's CAs).
    #[serde(default)]
    pub tls: TlsOptions,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("address", &Redacted(&self.address))
            .field("video", &self.video)
            .field("transport", &self.transport)
            .field("pace", &self.pace)
            .field("rate", &self.rate)
            .field("max_lead", &self.max_lead)
            .field("audio", &self.audio)
            .field(
                "extra_addresses",
                &self
                    .extra_addresses
                    .iter()
                    .map(|a| Redacted(a))
                    .collect::<Vec<_>>(),
            )
            .field("reconnect", &self.reconnect)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ServerConfig {
    /// A configuration inheriting size, frame rate, time base, bit rate, GOP size and maximum
    /// B-frames from a decoder (mpegCoder's `setParameter(configDict=d.getParameter(), ...)`),
    /// encoding with libx264 over RTSP/TCP, paced at real time with a 10 ms lead.
    pub fn from_params(params: &VideoParams, address: impl Into<String>) -> ServerConfig {
        ServerConfig::encode(EncoderConfig::from_params(params), address)
    }

    /// Frames encoded by the server with these libx264 settings.
    pub fn encode(encoder: EncoderConfig, address: impl Into<String>) -> ServerConfig {
        ServerConfig::with_source(VideoSource::Encode(encoder), address)
    }

    /// Packets encoded elsewhere or demuxed (copy mode).
    pub fn packets(stream: PacketStream, address: impl Into<String>) -> ServerConfig {
        ServerConfig::with_source(VideoSource::Packets(stream), address)
    }

    fn with_source(video: VideoSource, address: impl Into<String>) -> ServerConfig {
        ServerConfig {
            address: address.into(),
            video,
            transport: Transport::Tcp,
            pace: true,
            rate: 1.0,
            max_lead: Duration::from_millis(10),
            audio: None,
            extra_addresses: Vec::new(),
            reconnect: None,
            tls: TlsOptions::default(),
        }
    }

    /// Every destination, `address` first.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.address.as_str())
            .chain(self.extra_addresses.iter().map(String::as_str))
    }

    /// Publishes to these destinations too, beside `address`.
    pub fn with_extra_addresses(mut self, addresses: Vec<String>) -> Self {
        self.extra_addresses = addresses;
        self
    }

    /// Checks certificates of `rtsps://` and `rtmps://` destinations this way.
    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Reconnects lost destinations with this policy, or not at all.
    pub fn with_reconnect(mut self, policy: Option<ReconnectPolicy>) -> Self {
        self.reconnect = policy;
        self
    }

    /// Whether the server encodes (libx264) or passes packets through (copy).
    pub fn codec(&self) -> VideoCodec {
        match self.video {
            VideoSource::Encode(_) => VideoCodec::Libx264,
            VideoSource::Packets(_) => VideoCodec::Copy,
        }
    }

    /// The libx264 settings, when the server encodes.
    pub fn encoder(&self) -> Option<&EncoderConfig> {
        match &self.video {
            VideoSource::Encode(e) => Some(e),
            VideoSource::Packets(_) => None,
        }
    }

    /// The libx264 settings to change, when the server encodes.
    pub fn encoder_mut(&mut self) -> Option<&mut EncoderConfig> {
        match &mut self.video {
            VideoSource::Encode(e) => Some(e),
            VideoSource::Packets(_) => None,
        }
    }

    /// Sets the address.
    pub fn with_address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// Sets the RTSP transport.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Turns pacing on or off.
    pub fn with_pace(mut self, pace: bool) -> Self {
        self.pace = pace;
        self
    }

    /// Sets the playback speed (1.0 = real time).
    pub fn with_rate(mut self, rate: f64) -> Self {
        self.rate = rate;
        self
    }

    /// Sets how far ahead of its deadline a frame may leave.
    pub fn with_max_lead(mut self, lead: Duration) -> Self {
        self.max_lead = lead;
        self
    }

    /// Adds an audio track passed through next to the video (`serve_audio`), or removes it.
    pub fn with_audio(mut self, audio: Option<AudioStream>) -> Self {
        self.audio = audio;
        self
    }

    /// Replaces the libx264 settings (the server then encodes frames).
    pub fn with_encoder(mut self, encoder: EncoderConfig) -> Self {
        self.video = VideoSource::Encode(encoder);
        self
    }
}

/// Errors of the push pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Decoding or encoding failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Connecting, publishing or sending failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The H.264 parameter sets are missing or invalid.
    #[error("the H.264 stream cannot be described")]
    H264(#[from] H264Error),
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The audio track cannot be described or passed through.
    #[error("audio: {0}")]
    Audio(String),
    /// The call does not fit the server's video source (a frame to a server taking packets,
    /// a packet to one that encodes).
    #[error("{0}")]
    WrongInput(&'static str),
    /// Destinations that did not receive the stream to the end (several destinations, or a
    /// destination whose reconnection gave up): one `(url, why)` per destination.
    #[error("{}", destination_lines(.failures))]
    Destinations {
        /// The URL (credentials removed) and why, per failed destination.
        failures: Vec<(String, String)>,
    },
    /// The caller's stop flag was raised while the server connected
    /// ([`crate::Server::open_stoppable`]); nothing was published.
    #[error("stopped while connecting")]
    Interrupted,
    /// A thread or the network runtime could not start.
    #[error("cannot start the server's {what}")]
    Runtime {
        /// What could not start.
        what: &'static str,
        /// Why.
        #[source]
        source: Arc<std::io::Error>,
    },
}

/// A shared flag by which the publishing side asks the encoding side for a key frame: a
/// destination that reconnected (or dropped to its next key frame) wants an IDR picture now
/// rather than at the end of the GOP. The server sets it; whoever owns the libx264 encoder
/// (the server itself, or a reader thread feeding it packets) takes it before each frame and
/// forces an IDR ([`crate::codec::Encoder::force_key_frame`]). Copy mode has no encoder: the
/// destination waits for the next key frame of the input.
#[derive(Debug, Clone, Default)]
pub struct KeyFrameRequest(Arc<AtomicBool>);

impl KeyFrameRequest {
    /// A flag nobody has raised.
    pub fn new() -> KeyFrameRequest {
        KeyFrameRequest::default()
    }

    /// Asks for a key frame.
    pub fn request(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once per request: the caller then encodes its next frame as an IDR.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

fn destination_lines(failures: &[(String, String)]) -> String {
    failures
        .iter()
        .map(|(url, why)| destination_line(url, why))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The error line of a destination that failed: its URL (credentials removed), then why,
/// unless why names the URL already.
pub fn destination_line(url: &str, why: &str) -> String {
    if why.contains(url) {
        why.to_string()
    } else {
        format!("{url}: {why}")
    }
}

/// Where a destination stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DestinationState {
    /// Not connected yet (the first connection failed and is being retried).
    #[default]
    Connecting,
    /// Publishing.
    Connected,
    /// The connection was lost; reconnecting.
    Reconnecting,
    /// Ended with an error (see [`DestinationStats::error`]).
    Failed,
    /// Ended cleanly: the server confirmed the end of the stream.
    Closed,
}

impl fmt::Display for DestinationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DestinationState::Connecting => "connecting",
            DestinationState::Connected => "connected",
            DestinationState::Reconnecting => "reconnecting",
            DestinationState::Failed => "failed",
            DestinationState::Closed => "closed",
        })
    }
}

/// What one destination received, and how its connection fared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DestinationStats {
    /// The URL, credentials removed.
    pub url: String,
    /// Where it stands.
    pub state: DestinationState,
    /// Video frames its sessions took.
    pub frames_sent: u64,
    /// Of those, key frames.
    pub key_frames_sent: u64,
    /// Audio frames its sessions took.
    pub audio_frames_sent: u64,
    /// Bytes written to its connections (protocol framing included), over every connection.
    pub bytes_written: u64,
    /// Video frames it did not get: stale while it was down, or skipped to the next key
    /// frame after a full queue or a reconnection.
    pub frames_dropped: u64,
    /// Audio frames it did not get, likewise.
    pub audio_frames_dropped: u64,
    /// Times its queue was full (each one drops to the next key frame).
    pub queue_overflows: u64,
    /// Units its session refused (see `transport::MediaError`).
    pub refused: u64,
    /// Connections re-established after a loss.
    pub reconnects: u64,
    /// The reconnection attempt under way (while connecting or reconnecting).
    pub attempt: u32,
    /// Seconds it was not connected, the current outage included.
    pub outage_s: f64,
    /// Seconds of the current outage, while it lasts.
    pub current_outage_s: Option<f64>,
    /// Milliseconds from the last reconnection to the first video frame it took (the wait
    /// for a key frame).
    pub last_resume_wait_ms: Option<f64>,
    /// Why it failed, or why the last reconnection attempt failed.
    pub error: Option<String>,
}

impl DestinationStats {
    fn new(url: String) -> DestinationStats {
        DestinationStats {
            url,
            ..DestinationStats::default()
        }
    }
}

/// A frame for `serve_frame`: a decoded [`Frame`], or a packed buffer of the encoder's source
/// size from the user's own program.
#[derive(Debug, Clone, Copy)]
pub enum FrameRef<'a> {
    /// A decoded frame (RGB24 or YUV420P), encoded at its own timestamp.
    Frame(&'a Frame),
    /// Packed RGB24, timestamped n / frame rate.
    Rgb24(&'a [u8]),
    /// Packed YUV420P, timestamped n / frame rate.
    Yuv420p(&'a [u8]),
}

impl<'a> From<&'a Frame> for FrameRef<'a> {
    fn from(f: &'a Frame) -> Self {
        FrameRef::Frame(f)
    }
}

/// What the server has done so far, and what the media server reported. Bit rates in bits/s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServerStats {
    /// Access units (frames) sent.
    pub frames_sent: u64,
    /// Of those, key frames.
    pub key_frames_sent: u64,
    /// Encoded H.264 bytes sent (NAL units, without protocol framing).
    pub bytes_sent: u64,
    /// Bytes written to the network (protocol framing included).
    pub bytes_written: u64,
    /// Frames given to the encoder (libx264 mode).
    pub frames_encoded: u64,
    /// Video frames per second over the last second.
    pub fps: f64,
    /// Media bit rate (video and audio) over the last second, bits/s.
    pub bitrate_bps: f64,
    /// How far the last sent frame is ahead of the playing time, ms.
    pub lead_ms: f64,
    /// Frames handed over after their deadline by more than the late threshold (stalls)
    /// or within it.
    pub late_frames: u64,
    /// Frames dropped by the late policy.
    pub dropped_frames: u64,
    /// Access units refused before sending (see `transport::MediaError`).
    pub refused_frames: u64,
    /// Audio frames sent.
    pub audio_frames_sent: u64,
    /// Encoded audio bytes sent (without protocol framing).
    pub audio_bytes_sent: u64,
    /// Audio frames refused before sending.
    pub refused_audio_frames: u64,
    /// Reconnections, over every destination.
    pub reconnects: u64,
    /// Seconds destinations were not connected, summed over them.
    #[serde(default)]
    pub outage_s: f64,
    /// Video frames destinations did not get (outages, full queues), summed over them.
    #[serde(default)]
    pub destination_frames_dropped: u64,
    /// Each destination, in the order given.
    #[serde(default)]
    pub destinations: Vec<DestinationStats>,
    /// Seconds since the server opened.
    pub elapsed_s: f64,
    /// Stream time sent so far (latest DTS of any track minus the first), seconds.
    pub stream_time_s: f64,
    /// Milliseconds from the server opening to the first frame handed to the network.
    pub first_frame_ms: Option<f64>,
    /// RTCP receiver reports received (RTSP; some servers send none).
    pub receiver_reports: u64,
    /// Fraction of packets lost since the previous receiver report, 0.0–1.0.
    pub loss_fraction: Option<f64>,
    /// Packets lost since the start, as the server reported.
    pub packets_lost: Option<i64>,
    /// Interarrival jitter the server reported, ms.
    pub jitter_ms: Option<f64>,
    /// Round-trip time from the last receiver report (RFC 3550 §6.4.1), ms.
    pub rtt_ms: Option<f64>,
    /// The server sent an RTCP BYE.
    pub server_bye: bool,
    /// The last status message from the server (RTMP `onStatus`), `code: description`.
    pub server_status: Option<String>,
}

impl ServerStats {
    /// Copies the destinations' totals and their statistics (the session counters of the
    /// first one that is up came in with [`ServerStats::absorb`]).
    fn absorb_destinations(&mut self, dests: Vec<DestinationStats>) {
        self.bytes_written = dests.iter().map(|d| d.bytes_written).sum();
        self.reconnects = dests.iter().map(|d| d.reconnects).sum();
        self.outage_s = dests.iter().map(|d| d.outage_s).sum();
        self.destination_frames_dropped = dests.iter().map(|d| d.frames_dropped).sum();
        self.destinations = dests;
    }

    /// Copies what the session reported.
    fn absorb(&mut self, p: &PublisherStats) {
        self.bytes_written = p.bytes_written;
        self.receiver_reports = p.receiver_reports;
        if let Some(r) = &p.reception {
            self.loss_fraction = Some(r.fraction_lost);
            self.packets_lost = Some(r.cumulative_lost);
            self.jitter_ms = Some(r.jitter.as_secs_f64() * 1e3);
            self.rtt_ms = r.round_trip.map(|d| d.as_secs_f64() * 1e3);
        }
        self.server_bye = p.server_bye;
        self.server_status = p
            .last_status
            .as_ref()
            .map(|s| format!("{}: {}", s.code_or_command(), s.description));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> VideoParams {
        VideoParams {
            width: 640,
            height: 360,
            frame_rate: Rational::new(30, 1),
            avg_frame_rate: Rational::new(30, 1),
            time_base: Rational::new(1, 15360),
            start_time: 0,
            duration_s: Some(2.0),
            frame_count: 60,
            frame_count_source: crate::codec::FrameCountSource::Container,
            codec: "h264".into(),
            bit_rate: Some(1_500_000),
            pixel_format: "yuv420p".into(),
            gop_size: Some(15),
            max_b_frames: Some(2),
        }
    }

    #[test]
    fn config_round_trips_as_data_and_hides_credentials_in_debug() {
        let config = ServerConfig::from_params(&params(), "rtsp://u:secret@host/cam")
            .with_transport(Transport::Udp)
            .with_rate(2.0);
        let enc = config.encoder().expect("encodes");
        assert_eq!(enc.width, 640);
        assert_eq!(enc.bit_rate, 1_500_000);
        assert_eq!(enc.gop_size, 15);
        assert_eq!(enc.max_b_frames, 2);
        assert_eq!(config.codec(), VideoCodec::Libx264);
        let json = serde_json::to_string(&config).expect("serialises");
        let back: ServerConfig = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, config);
        let debug = format!("{config:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("rtsp://host/cam"), "{debug}");
    }

    #[test]
    fn a_stop_while_connecting_ends_the_open_at_once() {
        // A server that accepts (the kernel does) and never answers: without the stop the
        // open would wait for the network timeout.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = silent.local_addr().expect("address").port();
        let config = ServerConfig::from_params(&params(), format!("rtsp://127.0.0.1:{port}/x"));
        let stop = AtomicBool::new(false);
        let started = std::time::Instant::now();
        let result = std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(300));
                stop.store(true, Ordering::SeqCst);
            });
            crate::Server::open_stoppable(config, KeyFrameRequest::new(), &stop)
        });
        assert!(
            matches!(result, Err(ServerError::Interrupted)),
            "{result:?}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn the_video_source_decides_the_codec() {
        let stream = PacketStream::new(Bytes::from_static(&[1, 2]), Rational::new(1, 90_000));
        let config = ServerConfig::packets(stream, "rtmp://h/live/x");
        assert_eq!(config.codec(), VideoCodec::Copy);
        assert!(config.encoder().is_none());
        let config = config.with_encoder(EncoderConfig::from_params(&params()));
        assert_eq!(config.codec(), VideoCodec::Libx264);
    }

    #[test]
    fn parses_codec_names() {
        assert_eq!("copy".parse::<VideoCodec>(), Ok(VideoCodec::Copy));
        assert_eq!("libx264".parse::<VideoCodec>(), Ok(VideoCodec::Libx264));
        assert!("vp9".parse::<VideoCodec>().is_err());
        assert_eq!("UDP".parse::<Transport>(), Ok(Transport::Udp));
        assert!("sctp".parse::<Transport>().is_err());
    }
}
