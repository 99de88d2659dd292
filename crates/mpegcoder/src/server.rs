//! [`Server`]: the push pipeline (mpegCoder's `MpegServer`). Frames are encoded with libx264 (or
//! demuxed H.264 packets pass through untouched), paced against the wall clock by their
//! decoding timestamps, and published over RTSP or RTMP.
//!
//! Pacing happens at the send point, after the encoder, on DTS: libx264's lookahead delays its
//! output, and [`Server::close`] flushes the delayed frames still paced, so neither the start
//! nor the end of a stream bursts.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::codec::{
    CodecError, EncodedPacket, Encoder, EncoderConfig, Frame, PacketFormat, PixelLayout, Rational,
    VideoParams,
};
use crate::pacer::{Clock, Decision, MonotonicClock, Pacer, PacerConfig, Rate, SleepTail};
use crate::transport::h264::{AvcDecoderConfig, H264Error};
use crate::transport::{
    redact_url, AccessUnit, PublishError, PublishOptions, Publisher, TimeBase, Transport,
    VideoTrack,
};

/// How frames become H.264.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// Encode with libx264.
    #[default]
    Libx264,
    /// Pass demuxed H.264 packets through untouched ([`Server::serve_packet`]).
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

/// Everything a [`Server`] needs, as plain data (serde), so it can cross a thread or process
/// boundary like the original's `configDict`. Build it from a decoder's [`VideoParams`] with
/// [`ServerConfig::from_params`] and override what differs.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerConfig {
    /// Where to publish: `rtsp://[user:pass@]host[:port]/path` or
    /// `rtmp://[user:pass@]host[:port]/app/key`.
    pub address: String,
    /// Encode with libx264, or pass packets through.
    pub codec: VideoCodec,
    /// The libx264 settings (size, frame rate, bit rate in bits/s, GOP, B-frames, preset, ...);
    /// unused in copy mode.
    pub encoder: EncoderConfig,
    /// RTSP over TCP or UDP.
    pub transport: Transport,
    /// Pace by timestamps (false: send as fast as frames come).
    pub pace: bool,
    /// Playback speed: 1.0 is real time.
    pub rate: f64,
    /// How far ahead of its deadline a frame may leave, in milliseconds.
    pub max_lead_ms: u64,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("address", &redact_url(&self.address))
            .field("codec", &self.codec)
            .field("encoder", &self.encoder)
            .field("transport", &self.transport)
            .field("pace", &self.pace)
            .field("rate", &self.rate)
            .field("max_lead_ms", &self.max_lead_ms)
            .finish()
    }
}

impl ServerConfig {
    /// A configuration inheriting size, frame rate, time base, bit rate, GOP size and maximum
    /// B-frames from a decoder (the original's
    /// `setParameter(configDict=d.getParameter(), videoAddress=...)`), encoding with libx264
    /// over RTSP/TCP, paced at real time with a 10 ms lead.
    pub fn from_params(params: &VideoParams, address: impl Into<String>) -> ServerConfig {
        ServerConfig {
            address: address.into(),
            codec: VideoCodec::Libx264,
            encoder: EncoderConfig::from_params(params),
            transport: Transport::Tcp,
            pace: true,
            rate: 1.0,
            max_lead_ms: 10,
        }
    }

    /// Sets the codec.
    pub fn with_codec(mut self, codec: VideoCodec) -> Self {
        self.codec = codec;
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

    /// Sets the allowed lead.
    pub fn with_max_lead(mut self, lead: Duration) -> Self {
        self.max_lead_ms = u64::try_from(lead.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Sets the encoder settings.
    pub fn with_encoder(mut self, encoder: EncoderConfig) -> Self {
        self.encoder = encoder;
        self
    }

    fn pacer_config(&self) -> Result<PacerConfig, ServerError> {
        let rate = Rate::from_f64(self.rate)
            .map_err(|e| ServerError::Config(format!("rate {}: {e}", self.rate)))?;
        Ok(PacerConfig::default()
            .with_rate(rate)
            .with_max_lead(Duration::from_millis(self.max_lead_ms)))
    }

    fn publish_options(&self) -> PublishOptions {
        PublishOptions::default().with_rtsp_transport(self.transport)
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
    #[error("H.264 stream: {0}")]
    H264(#[from] H264Error),
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The call does not fit the server's codec (a frame in copy mode, a packet with libx264).
    #[error("{0}")]
    WrongInput(&'static str),
    /// The async runtime could not start.
    #[error("cannot start the network runtime: {0}")]
    Runtime(String),
}

/// A frame for [`Server::serve_frame`]: a decoded [`Frame`], or a packed buffer of the
/// encoder's source size from the user's own program.
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

/// What the server has done so far. Bit rates in bits/s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerStats {
    /// Access units (frames) sent.
    pub frames_sent: u64,
    /// Of those, key frames.
    pub key_frames_sent: u64,
    /// Encoded H.264 bytes sent (NAL units, without protocol framing).
    pub bytes_sent: u64,
    /// Frames given to the encoder (libx264 mode).
    pub frames_encoded: u64,
    /// Frames per second over the last second.
    pub fps: f64,
    /// Bit rate over the last second, bits/s.
    pub bitrate_bps: f64,
    /// How far the last sent frame is ahead of the playing time, ms.
    pub lead_ms: f64,
    /// Frames handed over after their deadline by more than the late threshold (stalls)
    /// or within it.
    pub late_frames: u64,
    /// Frames dropped by the late policy.
    pub dropped_frames: u64,
    /// Reconnections (always 0: a lost connection ends the push).
    pub reconnects: u64,
    /// Seconds since [`Server::open`].
    pub elapsed_s: f64,
    /// Stream time sent so far (DTS of the last frame minus DTS of the first), seconds.
    pub stream_time_s: f64,
    /// Milliseconds from [`Server::open`] returning to the first frame handed to the network.
    pub first_frame_ms: Option<f64>,
}

/// How incoming packets are framed in copy mode.
#[derive(Debug, Clone, Copy)]
struct CopyInput {
    length_size: Option<u8>,
}

/// The push pipeline: encoder (or passthrough), pacer, publisher. See the module docs.
///
/// ```no_run
/// use mpegcoder::codec::{Decoder, DecoderOptions, PixelLayout};
/// use mpegcoder::{Server, ServerConfig};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut decoder = Decoder::open(
///     "test-video.mp4",
///     DecoderOptions::default().with_output(PixelLayout::Yuv420p),
/// )?;
/// let config = ServerConfig::from_params(decoder.params(), "rtsp://localhost:8554/video");
/// let mut server = Server::open(config)?;
/// while let Some(frame) = decoder.next_frame()? {
///     server.serve_frame_block(&frame)?; // waits until the frame is due
/// }
/// let stats = server.close()?; // flushes libx264's delayed frames, still paced
/// println!("sent {} frames", stats.frames_sent);
/// # Ok(()) }
/// ```
pub struct Server {
    config: ServerConfig,
    runtime: tokio::runtime::Runtime,
    publisher: Option<Publisher>,
    encoder: Option<Encoder>,
    copy: Option<CopyInput>,
    time_base: TimeBase,
    pacer: Pacer,
    clock: MonotonicClock,
    opened_at: Instant,
    stats: ServerStats,
    first_dts: Option<i64>,
    window: VecDeque<(Instant, u64)>,
    url: String,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("url", &self.url)
            .field("codec", &self.config.codec)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Opens the encoder on a short-lived thread of lowered priority, so that the worker threads
/// libx264 starts there inherit it and yield to the thread that sends frames on time (see
/// [`crate::priority`]); the caller's own priority is untouched.
fn open_encoder_in_background(config: &EncoderConfig) -> Result<Encoder, ServerError> {
    std::thread::scope(|scope| {
        let opener = std::thread::Builder::new()
            .name("mpegcoder-encoder".into())
            .spawn_scoped(scope, || {
                crate::priority::lower_current_thread();
                Encoder::new(config.clone())
            })
            .map_err(|e| ServerError::Runtime(e.to_string()))?;
        match opener.join() {
            Ok(result) => Ok(result?),
            Err(_) => Err(ServerError::Runtime(
                "the thread opening the encoder panicked".into(),
            )),
        }
    })
}

impl Server {
    /// Opens a libx264 server: starts the encoder (whose SPS/PPS describe the stream),
    /// connects, announces or publishes, and marks the start time (mpegCoder's
    /// `FFmpegSetup`). The pacer's clock starts at the first frame that leaves, so the
    /// encoder's lookahead delay does not count as lateness.
    pub fn open(config: ServerConfig) -> Result<Server, ServerError> {
        if config.codec != VideoCodec::Libx264 {
            return Err(ServerError::WrongInput(
                "Server::open encodes with libx264; use Server::open_copy for codec copy",
            ));
        }
        let encoder = open_encoder_in_background(&config.encoder)?;
        let enc = encoder.config();
        let track = describe(
            VideoTrack::from_extradata(encoder.extradata())?.with_encoder("libx264"),
            Some(enc.frame_rate),
            Some(enc.bit_rate),
        );
        let time_base = to_time_base(encoder.time_base())?;
        Server::connect(config, track, time_base, Some(encoder), None)
    }

    /// Opens a passthrough server for demuxed H.264 packets with the stream's `extradata`
    /// (an avcC record, or Annex B parameter sets) and packet time base.
    pub fn open_copy(
        config: ServerConfig,
        extradata: &Bytes,
        time_base: Rational,
        frame_rate: Option<Rational>,
        bit_rate: Option<u64>,
    ) -> Result<Server, ServerError> {
        let track = describe(VideoTrack::from_extradata(extradata)?, frame_rate, bit_rate);
        let config = ServerConfig {
            codec: VideoCodec::Copy,
            ..config
        };
        Server::connect_packets(config, track, extradata, time_base)
    }

    /// Opens a server for libx264 access units encoded elsewhere, typically on another
    /// thread, so that encoding never holds up a send (what [`push`](crate::push()) does).
    /// `extradata` is the encoder's global header (its SPS and PPS), `time_base` the time base
    /// of its packets; the packets go in with [`Server::serve_packet_block`]. The stream is
    /// described by `config.encoder` (frame rate, bit rate) and named as libx264's.
    pub fn open_encoded(
        config: ServerConfig,
        extradata: &Bytes,
        time_base: Rational,
    ) -> Result<Server, ServerError> {
        let track = describe(
            VideoTrack::from_extradata(extradata)?.with_encoder("libx264"),
            Some(config.encoder.frame_rate),
            Some(config.encoder.bit_rate),
        );
        let config = ServerConfig {
            codec: VideoCodec::Libx264,
            ..config
        };
        Server::connect_packets(config, track, extradata, time_base)
    }

    /// Connects a server fed with packets (copy, or encoded elsewhere), framed as
    /// `extradata` says (avcC: length-prefixed; otherwise Annex B).
    fn connect_packets(
        config: ServerConfig,
        track: VideoTrack,
        extradata: &Bytes,
        time_base: Rational,
    ) -> Result<Server, ServerError> {
        let length_size = match PacketFormat::from_extradata(extradata) {
            PacketFormat::LengthPrefixed => Some(AvcDecoderConfig::parse(extradata)?.length_size),
            _ => None,
        };
        Server::connect(
            config,
            track,
            to_time_base(time_base)?,
            None,
            Some(CopyInput { length_size }),
        )
    }

    fn connect(
        config: ServerConfig,
        track: VideoTrack,
        time_base: TimeBase,
        encoder: Option<Encoder>,
        copy: Option<CopyInput>,
    ) -> Result<Server, ServerError> {
        if !(config.rate.is_finite() && config.rate > 0.0) {
            return Err(ServerError::Config(format!(
                "rate must be a positive number, got {}",
                config.rate
            )));
        }
        let pacer = Pacer::new(config.pacer_config()?, time_base)
            .map_err(|e| ServerError::Config(e.to_string()))?;
        // One worker thread keeps the publisher's socket task running (keepalives, RTCP,
        // acknowledgements) while the caller sleeps between frames.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mpegcoder-net")
            .enable_all()
            .build()
            .map_err(|e| ServerError::Runtime(e.to_string()))?;
        let publisher = runtime.block_on(Publisher::connect(
            &config.address,
            &track,
            config.publish_options(),
        ))?;
        let url = publisher.url().to_string();
        // A plain OS sleep, without the busy-spin tail: it wakes 0.1–0.2 ms late, but by
        // nearly the same amount every frame, so the frames still leave evenly spaced (the
        // wire deviation from the ideal schedule measured by `bench/` stays far below 1 ms),
        // while the spin cost 1 ms of busy CPU per frame: 0.6 s of the 0.7 s a 20 s copy
        // push used, and one busy core per 30 streams in a process serving many.
        let clock = MonotonicClock::with_tail(SleepTail::NONE);
        Ok(Server {
            opened_at: clock.now(),
            config,
            runtime,
            publisher: Some(publisher),
            encoder,
            copy,
            time_base,
            pacer,
            clock,
            stats: ServerStats::default(),
            first_dts: None,
            window: VecDeque::new(),
            url,
        })
    }

    /// Encodes and sends a frame at once, however far ahead of the playing time it is
    /// (mpegCoder's `ServeFrame`); the lead is still accounted, so [`Server::wait_ref`] tells
    /// a caller that paces itself how long to sleep.
    pub fn serve_frame<'a>(&mut self, frame: impl Into<FrameRef<'a>>) -> Result<(), ServerError> {
        self.serve(frame.into(), false)
    }

    /// Encodes a frame and sends what the encoder outputs, each access unit waiting until it
    /// is no longer more than the allowed lead ahead of the playing time (mpegCoder's
    /// `ServeFrameBlock`).
    pub fn serve_frame_block<'a>(
        &mut self,
        frame: impl Into<FrameRef<'a>>,
    ) -> Result<(), ServerError> {
        self.serve(frame.into(), true)
    }

    /// Sends a demuxed H.264 packet at once (copy mode; see [`Server::serve_frame`]).
    pub fn serve_packet(&mut self, packet: &EncodedPacket) -> Result<(), ServerError> {
        let au = self.packet_to_au(packet)?;
        self.send_au(&au, false)
    }

    /// Sends a demuxed H.264 packet when it is due (copy mode; see
    /// [`Server::serve_frame_block`]).
    pub fn serve_packet_block(&mut self, packet: &EncodedPacket) -> Result<(), ServerError> {
        let au = self.packet_to_au(packet)?;
        self.send_au(&au, true)
    }

    /// Half of how far the stream is ahead of the playing time, never negative: how long a
    /// caller using [`Server::serve_frame`] should sleep (mpegCoder's
    /// `getParameter('waitRef')`).
    pub fn wait_ref(&self) -> Duration {
        self.pacer.wait_ref(self.clock.now())
    }

    /// Current statistics.
    pub fn stats(&self) -> ServerStats {
        let now = self.clock.now();
        let mut s = self.stats.clone();
        s.elapsed_s = now.duration_since(self.opened_at).as_secs_f64();
        s.lead_ms = self.pacer.lead(now).as_secs_f64() * 1e3;
        let p = self.pacer.stats();
        s.late_frames = p.late;
        s.dropped_frames = p.dropped;
        s.frames_encoded = self.encoder.as_ref().map_or(0, Encoder::frames_in);
        let recent = self
            .window
            .iter()
            .filter(|(t, _)| now.duration_since(*t) < Duration::from_secs(1));
        let (n, bytes) = recent.fold((0u64, 0u64), |(n, b), (_, len)| (n + 1, b + len));
        s.fps = n as f64;
        s.bitrate_bps = bytes as f64 * 8.0;
        s
    }

    /// The URL published to, credentials removed.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Flushes every frame the encoder still holds (paced like the others, so the stream does
    /// not end in a burst), then ends the publish cleanly (TEARDOWN / unpublish) and returns
    /// the final statistics (mpegCoder's `FFmpegClose`).
    pub fn close(mut self) -> Result<ServerStats, ServerError> {
        if let Some(encoder) = self.encoder.as_mut() {
            let tail = encoder.finish()?;
            for p in &tail {
                let au = encoded_to_au(p, self.time_base);
                self.send_au(&au, true)?;
            }
        }
        let stats = self.stats();
        if let Some(publisher) = self.publisher.take() {
            self.runtime.block_on(publisher.close())?;
        }
        Ok(stats)
    }

    fn serve(&mut self, frame: FrameRef<'_>, block: bool) -> Result<(), ServerError> {
        let encoder = self.encoder.as_mut().ok_or(ServerError::WrongInput(
            "this server sends packets (codec copy, or encoded elsewhere): use serve_packet",
        ))?;
        let packets = match frame {
            FrameRef::Frame(f) => encoder.encode(f)?,
            FrameRef::Rgb24(data) => encoder.encode_buffer(PixelLayout::Rgb24, data, None)?,
            FrameRef::Yuv420p(data) => encoder.encode_buffer(PixelLayout::Yuv420p, data, None)?,
        };
        for p in &packets {
            let au = encoded_to_au(p, self.time_base);
            self.send_au(&au, block)?;
        }
        Ok(())
    }

    fn packet_to_au(&self, packet: &EncodedPacket) -> Result<AccessUnit, ServerError> {
        let copy = self.copy.ok_or(ServerError::WrongInput(
            "this server encodes with libx264 itself: use serve_frame",
        ))?;
        let tb = to_time_base(packet.time_base).unwrap_or(self.time_base);
        let (pts, dts) = (
            tb.rescale(packet.pts, self.time_base),
            tb.rescale(packet.dts, self.time_base),
        );
        Ok(match copy.length_size {
            Some(n) => AccessUnit::from_length_prefixed(
                &packet.data,
                n,
                pts,
                dts,
                self.time_base,
                packet.key,
            )?,
            None => AccessUnit::from_annexb(&packet.data, pts, dts, self.time_base, packet.key),
        })
    }

    fn send_au(&mut self, au: &AccessUnit, block: bool) -> Result<(), ServerError> {
        if self.config.pace {
            match self.pacer.schedule(au.dts, au.key, self.clock.now()) {
                Decision::Drop => return Ok(()),
                Decision::Send(release) => {
                    if block {
                        self.clock.sleep_until(release.at);
                    }
                }
            }
        }
        let publisher = self
            .publisher
            .as_mut()
            .ok_or(ServerError::WrongInput("the server is closed"))?;
        self.runtime.block_on(publisher.send(au))?;
        let now = self.clock.now();
        if self.config.pace {
            self.pacer.released(now);
        }
        let len = au.payload_len() as u64;
        let s = &mut self.stats;
        s.frames_sent += 1;
        s.key_frames_sent += u64::from(au.key);
        s.bytes_sent += len;
        if s.first_frame_ms.is_none() {
            s.first_frame_ms = Some(now.duration_since(self.opened_at).as_secs_f64() * 1e3);
        }
        let first = *self.first_dts.get_or_insert(au.dts);
        s.stream_time_s = self.time_base.seconds(au.dts.saturating_sub(first));
        self.window.push_back((now, len));
        while self
            .window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(1))
        {
            self.window.pop_front();
        }
        Ok(())
    }
}

fn to_time_base(r: Rational) -> Result<TimeBase, ServerError> {
    TimeBase::checked(r.num, r.den)
        .ok_or_else(|| ServerError::Config(format!("invalid time base {}/{}", r.num, r.den)))
}

/// The track with the frame rate and bit rate it is announced with, where known.
fn describe(
    mut track: VideoTrack,
    frame_rate: Option<Rational>,
    bit_rate: Option<u64>,
) -> VideoTrack {
    if let Some(fr) = frame_rate.filter(|r| r.is_valid()) {
        track = track.with_frame_rate(fr.num, fr.den);
    }
    if let Some(b) = bit_rate.filter(|b| *b > 0) {
        track = track.with_bitrate(b);
    }
    track
}

fn encoded_to_au(p: &EncodedPacket, tb: TimeBase) -> AccessUnit {
    AccessUnit::from_annexb(&p.data, p.pts, p.dts, tb, p.key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_as_data_and_hides_credentials_in_debug() {
        let params = VideoParams {
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
        };
        let config = ServerConfig::from_params(&params, "rtsp://u:secret@host/cam")
            .with_transport(Transport::Udp)
            .with_rate(2.0);
        assert_eq!(config.encoder.width, 640);
        assert_eq!(config.encoder.bit_rate, 1_500_000);
        assert_eq!(config.encoder.gop_size, 15);
        assert_eq!(config.encoder.max_b_frames, 2);
        let json = serde_json::to_string(&config).expect("serialises");
        let back: ServerConfig = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, config);
        let debug = format!("{config:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("rtsp://host/cam"), "{debug}");
    }

    #[test]
    fn parses_codec_and_transport_names() {
        assert_eq!("copy".parse::<VideoCodec>(), Ok(VideoCodec::Copy));
        assert_eq!("libx264".parse::<VideoCodec>(), Ok(VideoCodec::Libx264));
        assert!("vp9".parse::<VideoCodec>().is_err());
        assert_eq!("UDP".parse::<Transport>(), Ok(Transport::Udp));
        assert!("sctp".parse::<Transport>().is_err());
    }
}
