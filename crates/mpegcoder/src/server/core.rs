//! What both faces of the server share: the stream's description, the pacer on its one
//! timeline, the conversion of packets to access units, and the statistics. No I/O, no
//! sleeping: the faces do that their own way (a thread sleep, or an async precise timer).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::{EncodedPacket, PacketFormat, Rational};
use crate::pacer::{
    sleep_until_async, Clock, Decision, MonotonicClock, Pacer, PacerConfig, Rate, SleepTail,
};
use crate::transport::h264::AvcDecoderConfig;
use crate::transport::{
    AccessUnit, AudioFrame, Media, PublishError, PublishOptions, Publisher, PublisherStats,
    TimeBase, Track, VideoTrack,
};

use super::audio::{packet_frames, track_of};
use super::fanout::{Fanout, Setup};
use super::{KeyFrameRequest, PacketStream, ServerConfig, ServerError, ServerStats, VideoSource};

/// How far audio and video handed to a server may be out of order across tracks (each track
/// in its own order) before the pacer takes a step back as a discontinuity.
const TRACK_SKEW: Duration = Duration::from_secs(1);

/// How incoming packets are framed.
#[derive(Debug, Clone, Copy)]
pub(super) struct PacketInput {
    length_size: Option<u8>,
}

/// The pacing and bookkeeping of one server.
#[derive(Debug)]
pub(super) struct Core {
    pub(super) config: ServerConfig,
    /// The time base of the video's access units.
    pub(super) time_base: TimeBase,
    /// AAC samples per frame (1024, or 960), for stamping the frames of an ADTS packet.
    audio_frame_length: u32,
    /// Set when the server takes packets.
    packets: Option<PacketInput>,
    pacer: Pacer,
    pub(super) clock: MonotonicClock,
    opened_at: Instant,
    stats: ServerStats,
    /// The first unit's DTS in nanoseconds.
    first_ns: Option<i64>,
    /// Video frames (and bytes of every track) sent in the last second.
    window: VecDeque<(Instant, bool, u64)>,
}

/// What the books keep of a unit handed to the session.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sent {
    video: bool,
    key: bool,
    dts_ns: i64,
    len: u64,
}

impl Sent {
    pub(super) fn of(media: &Media) -> Sent {
        Sent {
            video: media.video().is_some(),
            key: media.is_key(),
            dts_ns: media.dts_in(TimeBase::NANOS),
            len: media.payload_len() as u64,
        }
    }
}

/// What to do with an access unit.
pub(super) enum Step {
    /// Send it once this instant has come (now for a non-paced or non-blocking send).
    SendAt(Option<Instant>),
    /// The late policy drops it.
    Drop,
}

impl Core {
    /// The core of a server with `config`, whose stream has this time base; `encoder` is the
    /// server's own libx264 encoder when it encodes.
    pub(super) fn new(config: ServerConfig, time_base: TimeBase) -> Result<Core, ServerError> {
        if !(config.rate.is_finite() && config.rate > 0.0) {
            return Err(ServerError::Config(format!(
                "rate must be a positive number, got {}",
                config.rate
            )));
        }
        if !time_base.is_valid() {
            return Err(ServerError::Config(format!(
                "invalid time base {time_base}"
            )));
        }
        let rate = Rate::from_f64(config.rate)
            .map_err(|e| ServerError::Config(format!("rate {}: {e}", config.rate)))?;
        let mut pacer_config = PacerConfig::default()
            .with_rate(rate)
            .with_max_lead(config.max_lead);
        if config.audio.is_some() {
            pacer_config = pacer_config.with_max_backward_step(TRACK_SKEW);
        }
        // One timeline for every track: decoding times in nanoseconds.
        let pacer = Pacer::new(pacer_config, TimeBase::NANOS)
            .map_err(|e| ServerError::Config(e.to_string()))?;
        let audio_frame_length = match &config.audio {
            Some(a) => track_of(a)?.aac_config().map_or(1024, |c| c.frame_length),
            None => 1024,
        };
        let packets = match &config.video {
            VideoSource::Packets(stream) => Some(PacketInput {
                length_size: match PacketFormat::from_extradata(&stream.extradata) {
                    PacketFormat::LengthPrefixed => {
                        Some(AvcDecoderConfig::parse(&stream.extradata)?.length_size)
                    }
                    _ => None,
                },
            }),
            VideoSource::Encode(_) => None,
        };
        // A plain OS sleep, without the busy-spin tail: it wakes 0.1–0.2 ms late, but by
        // nearly the same amount every frame, so the frames still leave evenly spaced (the
        // wire deviation from the ideal schedule measured by `bench/` stays far below 1 ms),
        // while the spin cost 1 ms of busy CPU per frame.
        let clock = MonotonicClock::with_tail(SleepTail::NONE);
        Ok(Core {
            opened_at: clock.now(),
            config,
            time_base,
            audio_frame_length,
            packets,
            pacer,
            clock,
            stats: ServerStats::default(),
            first_ns: None,
            window: VecDeque::new(),
        })
    }

    /// The tracks that describe a stream of packets and the server's audio, and the video's
    /// time base.
    pub(super) fn tracks(
        stream: &PacketStream,
        config: &ServerConfig,
    ) -> Result<(Vec<Track>, TimeBase), ServerError> {
        let mut track = describe(
            VideoTrack::from_extradata(&stream.extradata)?,
            stream.frame_rate,
            stream.bit_rate,
        );
        if let Some(name) = &stream.encoder {
            track = track.with_encoder(name.clone());
        }
        let mut tracks = vec![Track::H264(track)];
        if let Some(audio) = &config.audio {
            tracks.push(Track::Audio(track_of(audio)?));
        }
        Ok((tracks, stream.time_base))
    }

    /// The audio frames of an audio packet (audio servers only).
    pub(super) fn audio_frames(
        &self,
        packet: &EncodedPacket,
    ) -> Result<Vec<AudioFrame>, ServerError> {
        let stream = self.config.audio.as_ref().ok_or(ServerError::WrongInput(
            "this server has no audio track (configure it with ServerConfig::with_audio)",
        ))?;
        packet_frames(packet, stream, self.audio_frame_length)
    }

    /// The options of the session.
    pub(super) fn publish_options(config: &ServerConfig) -> PublishOptions {
        PublishOptions::default()
            .with_rtsp_transport(config.transport)
            .with_tls(config.tls.clone())
    }

    /// An access unit from a packet (packet sources only).
    pub(super) fn packet_to_au(&self, packet: &EncodedPacket) -> Result<AccessUnit, ServerError> {
        let input = self.packets.ok_or(ServerError::WrongInput(
            "this server encodes with libx264 itself: use serve_frame",
        ))?;
        let tb = if packet.time_base.is_valid() {
            packet.time_base
        } else {
            self.time_base
        };
        let (pts, dts) = (
            tb.rescale(packet.pts, self.time_base),
            tb.rescale(packet.dts, self.time_base),
        );
        Ok(match input.length_size {
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

    /// When `media` may leave. `block`: wait until it is due (else it leaves now and the lead
    /// is accounted for `wait_ref`).
    pub(super) fn schedule(&mut self, media: &Media, block: bool) -> Step {
        if !self.config.pace {
            return Step::SendAt(None);
        }
        let dts = media.dts_in(TimeBase::NANOS);
        match self.pacer.schedule(dts, media.is_key(), self.clock.now()) {
            Decision::Drop => Step::Drop,
            Decision::Send(release) => Step::SendAt(block.then_some(release.at)),
        }
    }

    /// Marks the start time (mpegCoder's `FFmpegSetup`): once the session is publishing.
    pub(super) fn mark_start(&mut self) {
        self.opened_at = self.clock.now();
    }

    /// Books an access unit that went to the network.
    pub(super) fn sent(&mut self, unit: Sent) {
        let now = self.clock.now();
        if self.config.pace {
            self.pacer.released(now);
        }
        let len = unit.len;
        let s = &mut self.stats;
        if unit.video {
            s.frames_sent += 1;
            s.key_frames_sent += u64::from(unit.key);
            s.bytes_sent += len;
            if s.first_frame_ms.is_none() {
                s.first_frame_ms = Some(now.duration_since(self.opened_at).as_secs_f64() * 1e3);
            }
        } else {
            s.audio_frames_sent += 1;
            s.audio_bytes_sent += len;
        }
        let first = *self.first_ns.get_or_insert(unit.dts_ns);
        let time = unit.dts_ns.saturating_sub(first) as f64 / 1e9;
        s.stream_time_s = s.stream_time_s.max(time);
        self.window.push_back((now, unit.video, len));
        while self
            .window
            .front()
            .is_some_and(|(t, _, _)| now.duration_since(*t) > Duration::from_secs(1))
        {
            self.window.pop_front();
        }
    }

    /// Books a unit the session refused before sending it.
    pub(super) fn refused(&mut self, video: bool) {
        if video {
            self.stats.refused_frames += 1;
        } else {
            self.stats.refused_audio_frames += 1;
        }
    }

    /// Half of how far the stream is ahead of the playing time (mpegCoder's `waitRef`).
    pub(super) fn wait_ref(&self) -> Duration {
        self.pacer.wait_ref(self.clock.now())
    }

    /// Current statistics, with what the session reported.
    pub(super) fn stats(&self, session: &PublisherStats, frames_encoded: u64) -> ServerStats {
        let now = self.clock.now();
        let mut s = self.stats.clone();
        s.elapsed_s = now.duration_since(self.opened_at).as_secs_f64();
        s.lead_ms = self.pacer.lead(now).as_secs_f64() * 1e3;
        let p = self.pacer.stats();
        s.late_frames = p.late;
        s.dropped_frames = p.dropped;
        s.frames_encoded = frames_encoded;
        let recent = self
            .window
            .iter()
            .filter(|(t, _, _)| now.duration_since(*t) < Duration::from_secs(1));
        let (n, bytes) = recent.fold((0u64, 0u64), |(n, b), (_, video, len)| {
            (n + u64::from(*video), b + len)
        });
        s.fps = n as f64;
        s.bitrate_bps = bytes as f64 * 8.0;
        s.absorb(session);
        s
    }
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

/// An access unit from one of libx264's packets (Annex B).
pub(super) fn encoded_to_au(p: &EncodedPacket, tb: TimeBase) -> AccessUnit {
    AccessUnit::from_annexb(&p.data, p.pts, p.dts, tb, p.key)
}

/// How a face of the server waits for a frame's deadline.
#[derive(Debug, Clone, Copy)]
pub(super) enum Wait {
    /// A thread sleep (the blocking server, on the caller's thread).
    Thread,
    /// The precise async timer (the async server, on the caller's task).
    Async,
}

/// The pacing core and the destinations, as both faces of the server use them.
#[derive(Debug)]
pub(super) struct Outlet {
    pub(super) core: Core,
    fanout: Option<Fanout>,
    pub(super) url: String,
    /// Raised when a destination needs a key frame.
    pub(super) key_frames: KeyFrameRequest,
}

/// How a server ended: its final statistics, and the error of the destinations that did not
/// receive the stream to the end.
pub(super) struct Closed {
    pub(super) stats: ServerStats,
    pub(super) error: Option<ServerError>,
}

impl Closed {
    pub(super) fn into_result(self) -> Result<ServerStats, ServerError> {
        match self.error {
            None => Ok(self.stats),
            Some(e) => Err(e),
        }
    }
}

impl Outlet {
    /// The core and the destinations; the start time is marked now.
    pub(super) fn new(mut core: Core, fanout: Fanout, key_frames: KeyFrameRequest) -> Outlet {
        core.mark_start();
        tracing::info!(
            url = %fanout.url(),
            destinations = fanout.len(),
            codec = ?core.config.codec(),
            "publishing"
        );
        Outlet {
            url: fanout.url().to_string(),
            core,
            fanout: Some(fanout),
            key_frames,
        }
    }

    /// The addresses to connect to, for a server with `config`.
    pub(super) fn targets(config: &ServerConfig) -> Vec<String> {
        config.addresses().map(str::to_string).collect()
    }

    /// Connects to every destination of `config` at once (a future for the runtime).
    pub(super) fn connect_all(
        config: &ServerConfig,
        tracks: &Arc<[Track]>,
    ) -> impl std::future::Future<Output = Vec<Result<Publisher, PublishError>>> + Send + 'static
    {
        super::fanout::connect_all(
            Outlet::targets(config),
            Arc::clone(tracks),
            Core::publish_options(config),
        )
    }

    /// The destinations of `config` from the results of their first connection.
    pub(super) fn fanout(
        config: &ServerConfig,
        connected: Vec<Result<Publisher, PublishError>>,
        tracks: Arc<[Track]>,
        key_frames: &KeyFrameRequest,
        handle: tokio::runtime::Handle,
        now: Instant,
    ) -> Result<Fanout, ServerError> {
        let setup = Setup {
            tracks,
            options: Core::publish_options(config),
            policy: config.reconnect,
            key_frames: key_frames.clone(),
            handle,
        };
        Fanout::new(&Outlet::targets(config), connected, setup, now)
    }

    /// Paces `media` (waiting for its deadline when `block`) and hands it to the destinations.
    pub(super) async fn send(
        &mut self,
        media: impl Into<Media>,
        block: bool,
        wait: Wait,
    ) -> Result<(), ServerError> {
        let media = media.into();
        match self.core.schedule(&media, block) {
            Step::Drop => return Ok(()),
            Step::SendAt(Some(at)) => match wait {
                Wait::Thread => self.core.clock.sleep_until(at),
                Wait::Async => sleep_until_async(at).await,
            },
            Step::SendAt(None) => {}
        }
        let fanout = self
            .fanout
            .as_mut()
            .ok_or(ServerError::WrongInput("the server is closed"))?;
        let unit = Sent::of(&media);
        // Unpaced, the slowest destination sets the pace; paced, none may hold the others.
        let wait_for_room = !self.core.config.pace;
        match fanout
            .send(media, wait_for_room, self.core.clock.now())
            .await
        {
            Ok(true) => {
                self.core.sent(unit);
                Ok(())
            }
            // No destination was up to take it.
            Ok(false) => Ok(()),
            Err(ServerError::Publish(e)) if e.is_media_error() => {
                self.core.refused(unit.video);
                Err(e.into())
            }
            Err(e) => Err(e),
        }
    }

    /// Statistics so far, with what the destinations reported.
    pub(super) fn stats(&self, frames_encoded: u64) -> ServerStats {
        match &self.fanout {
            Some(f) => {
                let primary = f.primary_stats();
                let mut s = self.core.stats(&primary, frames_encoded);
                s.absorb_destinations(f.stats(self.core.clock.now()));
                s
            }
            None => self.core.stats(&PublisherStats::default(), frames_encoded),
        }
    }

    /// Ends every session, waits for the servers' confirmations, and gives the final
    /// statistics with the error of the destinations that did not get the stream to the end.
    pub(super) async fn close(&mut self, frames_encoded: u64) -> Closed {
        let Some(mut fanout) = self.fanout.take() else {
            return Closed {
                stats: self.core.stats(&PublisherStats::default(), frames_encoded),
                error: Some(ServerError::WrongInput("the server is closed")),
            };
        };
        let primary = fanout.primary_stats();
        let (dests, failures) = fanout.close(self.core.clock.now()).await;
        let mut stats = self.core.stats(&primary, frames_encoded);
        stats.absorb_destinations(dests);
        tracing::info!(url = %self.url, frames = stats.frames_sent, "publish closed");
        let error = match fanout.sole_failure() {
            Some(e) => Some(e),
            None if failures.is_empty() => None,
            None => Some(ServerError::Destinations { failures }),
        };
        Closed { stats, error }
    }
}

impl Drop for Outlet {
    fn drop(&mut self) {
        if self.fanout.is_some() {
            tracing::info!(
                url = %self.url,
                "server dropped without close: the sessions end in the background"
            );
        }
    }
}
