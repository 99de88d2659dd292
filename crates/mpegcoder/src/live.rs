//! `mpegcoder push rtsp://… URL` / `rtmp://… URL`: a live source relayed natively.
//!
//! The transport's own [`Puller`] reads the source (RTSP PLAY or RTMP play, credentials in the
//! URL as for `mpegcoder pull`), never FFmpeg's demuxer. A live source is already real time,
//! so nothing is re-paced: the server is opened with pacing off and every unit leaves as it
//! arrives.
//!
//! - **Copy**: access units and audio frames go to the destinations as they came, with their
//!   timestamps moved onto the output timeline, never decoded.
//! - **libx264**: the access units are decoded ([`PacketDecoder`]) and re-encoded; the audio
//!   passes through. Encoded video and audio are merged into timestamp order (libx264 holds
//!   its lookahead back, the audio does not wait) before they leave.
//!
//! The pacing options (`pace`, `max_lead`) do not apply, nor do the loop, rate and frame rate
//! options (refused).
//!
//! The puller runs as a task on the process-wide runtime and hands its units over a bounded
//! queue to the calling thread, which waits on it in short slices: a stop takes effect within
//! a tenth of a second, whether the source is silent, connecting, or in a reconnect backoff.
//!
//! **The output timeline.** The first session's first unit (always a video key frame: the
//! puller starts there) is placed at 0. When the source is lost and comes back
//! ([`PushOptions::reconnect`]), the new session's first key frame is placed after everything
//! sent so far, by the wall-clock time the source was away: a new session restarts its clock
//! anywhere, but the destinations see one timeline whose decoding times never go back, with
//! the outage as a gap. Video and audio share each session's offset, so they stay aligned.
//! Audio stamped before the session's first key frame is dropped (the puller drops what
//! arrives before it; this extends that to what is stamped before it).
//!
//! **Decoding times over RTSP.** RTP carries presentation times only (RFC 6184 §5.1), so the
//! puller's RTSP access units have `dts = pts`, which goes back with B-frames. The relay
//! derives decoding times from the SPS's `max_num_reorder_frames` (H.264 §E.2.1): with at
//! most `n` frames shown after a frame decoded later, frame `k`'s decoding time is the `k − n`th
//! smallest presentation time seen so far ([`DecodingTimes`]). RTMP carries decoding times
//! (FLV tag timestamps); they are kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use crossbeam_channel as cb;
use futures::future::{select, Either};
use serde::{Deserialize, Serialize};

use crate::codec::{
    EncodedPacket, Encoder, EncoderConfig, FrameCountSource, PacketDecoder, PacketDecoderOptions,
    PixelLayout, Rational, VideoParams,
};
use crate::continuity::Continuity;
use crate::pacer::Interleaver;
use crate::push::{AudioMode, PushError, PushOptions, PushSummary, Pusher, Tally};
use crate::reconnect::Jitter;
use crate::runtime;
use crate::server::{AudioStream, KeyFrameRequest, PacketStream, Server, ServerError, ServerStats};
use crate::transport::h264::{split_annexb, write_annexb};
use crate::transport::pull::{PullError, PullOptions, PullProtocol, Puller};
use crate::transport::{
    redact_url, AccessUnit, AudioCodec, AudioFrame, AudioTrack, Media, Protocol, TimeBase,
    VideoTrack,
};

/// How long the calling thread waits for the source at a time before it looks at the stop
/// flag again.
const POLL: Duration = Duration::from_millis(100);
/// Units the source task may hold for the calling thread (some seconds of audio and video):
/// libx264 may fall behind for a moment without the source being held up.
const QUEUE: usize = 512;
/// The smallest gap placed between two sessions of the source on the output timeline.
const MIN_GAP_NS: i128 = 1_000_000;
/// The frame rate assumed when neither the SPS nor the session announces one.
const FALLBACK_FRAME_RATE: Rational = Rational::new(30, 1);

/// True when `input` is a live source this module relays: an `rtsp://` or `rtmp://` URL.
pub(crate) fn is_live(input: &str) -> bool {
    PullProtocol::of(input).is_ok()
}

/// What came from a live source, and how its connection fared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SourceStats {
    /// The source URL, credentials removed.
    pub url: String,
    /// Access units received (from every session).
    pub frames: u64,
    /// Audio frames received.
    pub audio_frames: u64,
    /// Units received but not relayed: audio stamped before its session's first key frame,
    /// audio of a track the destinations were not set up with, frames the session refused,
    /// frames reordered deeper than the SPS announced (RTSP).
    pub dropped: u64,
    /// Times the source came back after it was lost or ended.
    pub reconnects: u64,
    /// Seconds without the source: from the last unit before each loss to the first unit
    /// after it came back (the gap on the output timeline), the current outage included.
    pub outage_s: f64,
}

/// Relays the live source `options.input` to the destinations (see the module docs).
pub(crate) fn push_live(
    options: &PushOptions,
    stop: &AtomicBool,
    progress: &mut impl FnMut(&ServerStats),
) -> Result<PushSummary, PushError> {
    check_options(options)?;
    let protocol = PullProtocol::of(&options.input).map_err(PushError::Source)?;
    let mut relay = Relay::new(options, protocol);
    let mut pusher = Pusher::new(progress);
    let mut jitter = Jitter::new();
    // Attempts in the current outage (reset once a session delivers).
    let mut attempt = 0u32;
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        let source = match Source::start(&options.input, source_options(options)) {
            Ok(s) => s,
            Err(e) => break Err(e),
        };
        let end = relay.run_session(&source, stop, &mut pusher);
        source.stop();
        let error = match end {
            SessionEnd::Stopped => break Ok(()),
            SessionEnd::Failed(e) => break Err(e),
            SessionEnd::Ended => None,
            SessionEnd::Lost(e) => Some(e),
        };
        relay.session_over();
        let Some(policy) = options.reconnect else {
            break match error {
                None => {
                    pusher.loops_completed = 1;
                    Ok(())
                }
                Some(e) => Err(PushError::Source(e)),
            };
        };
        if let Some(e) = error.as_ref().filter(|e| !e.heals()) {
            break Err(PushError::Source(e.clone()));
        }
        if relay.session_delivered {
            attempt = 0;
        }
        attempt += 1;
        if !policy.allows(attempt) {
            break match error {
                None => {
                    pusher.loops_completed = 1;
                    Ok(())
                }
                Some(source) => Err(PushError::SourceGaveUp {
                    attempts: attempt - 1,
                    source,
                }),
            };
        }
        let delay = policy.delay(attempt, jitter.next());
        match &error {
            Some(e) => tracing::warn!(
                "the live source was lost ({}); reconnecting in {:.1} s (attempt {attempt})",
                mpegcoder_types::error_chain(e),
                delay.as_secs_f64()
            ),
            None => tracing::info!(
                url = %relay.stats.url,
                "the live source ended; reconnecting in {:.1} s (attempt {attempt})",
                delay.as_secs_f64()
            ),
        }
        if !relay.wait(delay, stop, &mut pusher) {
            break Ok(());
        }
    };
    relay.finish(result, pusher, stop)
}

/// Refuses the options a live source cannot honour.
fn check_options(options: &PushOptions) -> Result<(), PushError> {
    let problem = if options.loops != 1 {
        Some("a live source cannot be looped (--loop)")
    } else if options.rate != 1.0 {
        Some("a live source plays at its own speed (--rate)")
    } else if options.frame_rate.is_some() {
        Some("frame rate conversion (--fps) is not available for a live source")
    } else if options.audio_stream.is_some_and(|n| n != 0) {
        Some("a live source relays its first audio stream only (--audio-stream)")
    } else {
        None
    };
    match problem {
        Some(p) => Err(PushError::Config(format!(
            "{}: {p}",
            redact_url(&options.input)
        ))),
        None => Ok(()),
    }
}

/// How the source is pulled: RTSP over TCP (interleaved, RFC 2326 §10.12), whatever
/// [`PushOptions::transport`] says, since that is the transport of the RTSP destinations:
/// one connection that firewalls and NAT pass, no loss to conceal, and the default of
/// `mpegcoder pull`. The connect, setup and idle timeouts are the puller's defaults (5 s,
/// 10 s, 10 s): a source silent for 10 s counts as lost.
fn source_options(options: &PushOptions) -> PullOptions {
    PullOptions::default()
        .with_transport(crate::Transport::Tcp)
        .with_tls(options.tls.clone())
}

/// What the source task reports, in order.
#[derive(Debug)]
enum Event {
    /// The video track: before the first access unit, and again when it changes.
    Video(VideoTrack),
    /// The audio track, when it becomes known or changes.
    Audio(AudioTrack),
    /// A unit, in arrival order.
    Media(Media),
    /// The source ended the stream (RTMP unpublish, RTSP BYE or end of the connection).
    End,
    /// The session failed.
    Failed(PullError),
}

/// One session of the source: a task on the runtime pulling into a bounded queue.
struct Source {
    events: cb::Receiver<Event>,
    cancel: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Source {
    fn start(url: &str, options: PullOptions) -> Result<Source, PushError> {
        let handle = runtime::handle().map_err(|e| {
            PushError::Server(ServerError::Runtime {
                what: "network runtime",
                source: Arc::new(e),
            })
        })?;
        let (tx, events) = cb::bounded(QUEUE);
        let (cancel, cancelled) = tokio::sync::oneshot::channel();
        let task = handle.spawn(pull(url.to_string(), options, tx, cancelled));
        Ok(Source {
            events,
            cancel,
            task,
        })
    }

    /// Ends the session (dropping the puller if it is still running) and waits for the task.
    fn stop(self) {
        let Source {
            events,
            cancel,
            task,
        } = self;
        // A task waiting for room in the queue sees it closed; one waiting for the network
        // sees the cancellation.
        drop(events);
        let _ = cancel.send(());
        let _ = runtime::wait(task);
    }
}

/// The source task: connects, then hands over the tracks and units until the session ends,
/// fails, or is cancelled (the puller is then dropped: its futures are not cancel-safe).
async fn pull(
    url: String,
    options: PullOptions,
    tx: cb::Sender<Event>,
    mut cancelled: tokio::sync::oneshot::Receiver<()>,
) {
    let connected = {
        let connect = std::pin::pin!(Puller::connect(&url, options));
        match select(connect, &mut cancelled).await {
            Either::Left((result, _)) => result,
            Either::Right(_) => return,
        }
    };
    let mut puller = match connected {
        Ok(p) => p,
        Err(e) => {
            emit(&tx, Event::Failed(e)).await;
            return;
        }
    };
    let mut video: Option<VideoTrack> = None;
    let mut audio: Option<AudioTrack> = None;
    loop {
        let next = {
            let next = std::pin::pin!(puller.next_media());
            match select(next, &mut cancelled).await {
                Either::Left((result, _)) => Some(result),
                Either::Right(_) => None,
            }
        };
        let media = match next {
            None => return,
            Some(Ok(Some(media))) => media,
            Some(Ok(None)) => {
                if emit(&tx, Event::End).await {
                    puller.close().await;
                }
                return;
            }
            Some(Err(e)) => {
                emit(&tx, Event::Failed(e)).await;
                return;
            }
        };
        // The tracks as they stand before this unit (the puller knows a unit's track when
        // it hands the unit out).
        let mut changes = Vec::new();
        if let Some(t) = puller.track().filter(|t| video.as_ref() != Some(*t)) {
            video = Some(t.clone());
            changes.push(Event::Video(t.clone()));
        }
        if let Some(t) = puller.audio_track().filter(|t| audio.as_ref() != Some(*t)) {
            audio = Some(t.clone());
            changes.push(Event::Audio(t.clone()));
        }
        for event in changes.into_iter().chain([Event::Media(media)]) {
            if !emit(&tx, event).await {
                // The relay is gone.
                puller.close().await;
                return;
            }
        }
    }
}

/// Queues `event` for the relay, waiting politely (never blocking the runtime's thread) while
/// the queue is full; `false` once the relay is gone.
async fn emit(tx: &cb::Sender<Event>, mut event: Event) -> bool {
    loop {
        match tx.try_send(event) {
            Ok(()) => return true,
            Err(cb::TrySendError::Disconnected(_)) => return false,
            Err(cb::TrySendError::Full(back)) => {
                event = back;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// How a session of the source ended.
enum SessionEnd {
    /// The stop flag was raised.
    Stopped,
    /// The source ended the stream.
    Ended,
    /// The source failed (whether reconnecting may heal it is for the caller to decide).
    Lost(PullError),
    /// The destinations or the encoder failed: the push ends.
    Failed(PushError),
}

/// What the destinations were opened with.
struct Opened {
    server: Server,
    /// The video track announced (copy mode: parameter sets that differ travel in-band).
    video: VideoTrack,
    /// The audio track announced, if audio is relayed.
    audio: Option<AudioTrack>,
    /// Width, height and frame rate, for the summary.
    shape: (u32, u32, Rational),
}

/// The relay: the destinations, the output timeline, and the current session's state.
struct Relay<'o> {
    options: &'o PushOptions,
    protocol: PullProtocol,
    opened: Option<Opened>,
    /// libx264 mode: the decoder, the encoder and the merge of their output with the audio.
    encode: Option<Reencoder>,
    timeline: Timeline,
    /// Jumps of the source's clock within a session, taken out of both tracks.
    continuity: Continuity,
    jumps: u64,
    /// RTSP: decoding times of the current session.
    dts: Option<DecodingTimes>,
    /// The current session's tracks.
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    /// The current session delivered a unit.
    session_delivered: bool,
    /// When the last unit arrived (the start of an outage).
    last_unit_at: Option<Instant>,
    /// The source is lost (or ended) and not back yet.
    lost: bool,
    /// Parameter sets to send in-band in front of key frames (copy mode, a session whose
    /// parameter sets differ from the announced ones).
    in_band: Option<Bytes>,
    warned_audio: bool,
    warned_reorder: bool,
    stats: SourceStats,
}

impl<'o> Relay<'o> {
    fn new(options: &'o PushOptions, protocol: PullProtocol) -> Relay<'o> {
        Relay {
            options,
            protocol,
            opened: None,
            encode: None,
            timeline: Timeline::default(),
            continuity: Continuity::default(),
            jumps: 0,
            dts: None,
            video: None,
            audio: None,
            session_delivered: false,
            last_unit_at: None,
            lost: false,
            in_band: None,
            warned_audio: false,
            warned_reorder: false,
            stats: SourceStats {
                url: redact_url(&options.input),
                ..SourceStats::default()
            },
        }
    }

    /// Relays one session of the source until it ends, fails, or the stop flag is raised.
    fn run_session<P: FnMut(&ServerStats)>(
        &mut self,
        source: &Source,
        stop: &AtomicBool,
        pusher: &mut Pusher<'_, P>,
    ) -> SessionEnd {
        self.timeline.new_session();
        self.jumps += std::mem::take(&mut self.continuity).jumps();
        self.dts = None;
        self.video = None;
        self.audio = None;
        self.in_band = None;
        self.session_delivered = false;
        loop {
            if stop.load(Ordering::Relaxed) {
                return SessionEnd::Stopped;
            }
            let event = match source.events.recv_timeout(POLL) {
                Ok(event) => event,
                Err(cb::RecvTimeoutError::Timeout) => {
                    self.tick(pusher);
                    continue;
                }
                // The task is gone without a word: only a panic does that.
                Err(cb::RecvTimeoutError::Disconnected) => {
                    return SessionEnd::Failed(PushError::Reader(Arc::new(std::io::Error::other(
                        "the live source's task ended unexpectedly",
                    ))))
                }
            };
            let step = match event {
                Event::Video(track) => {
                    self.on_video_track(track);
                    Ok(())
                }
                Event::Audio(track) => {
                    self.audio = Some(track);
                    Ok(())
                }
                Event::Media(media) => self.on_media(media),
                Event::End => return SessionEnd::Ended,
                Event::Failed(e) => return SessionEnd::Lost(e),
            };
            if let Err(e) = step {
                return SessionEnd::Failed(e);
            }
            self.tick(pusher);
        }
    }

    fn tick<P: FnMut(&ServerStats)>(&self, pusher: &mut Pusher<'_, P>) {
        if let Some(o) = &self.opened {
            pusher.tick(&o.server);
        }
    }

    /// A session's video track: the decoding times it needs (RTSP), and in copy mode the
    /// parameter sets to send in-band when they are not the announced ones.
    fn on_video_track(&mut self, track: VideoTrack) {
        if self.protocol == PullProtocol::Rtsp && self.dts.is_none() {
            let reorder = reorder_frames(&track);
            let (num, den) = track
                .frame_rate
                .unwrap_or((FALLBACK_FRAME_RATE.num, FALLBACK_FRAME_RATE.den));
            self.dts = Some(DecodingTimes::new(reorder, Rational::new(den, num.max(1))));
        }
        if let Some(o) = &self.opened {
            let same = o.video.sps == track.sps && o.video.pps == track.pps;
            self.in_band = (!same && self.encode.is_none()).then(|| {
                tracing::info!(
                    url = %self.stats.url,
                    "the live source's parameter sets changed: they travel in-band from now on"
                );
                annexb_parameter_sets(&track)
            });
        }
        self.video = Some(track);
    }

    fn on_media(&mut self, media: Media) -> Result<(), PushError> {
        let arrived = Instant::now();
        let result = match media {
            Media::H264(au) => {
                self.stats.frames += 1;
                self.on_video(au)
            }
            Media::Audio(frame) => {
                self.stats.audio_frames += 1;
                self.on_audio(frame)
            }
            // A kind of unit this relay does not know yet.
            _ => {
                self.stats.dropped += 1;
                Ok(())
            }
        };
        self.last_unit_at = Some(arrived);
        result
    }

    fn on_video(&mut self, mut au: AccessUnit) -> Result<(), PushError> {
        if self.opened.is_none() {
            self.open(&au)?;
        }
        let tb = au.time_base;
        // A jump of the source's clock within the session (RFC 3550 §5.1 lets a source
        // start anywhere; some restart mid-session): taken out of both tracks alike.
        let frame_ns = tb.ticks_to_nanos(self.frame_ticks(tb));
        let jump = self
            .continuity
            .offset(0, tb.ticks_to_nanos(au.dts), frame_ns);
        shift(&mut au.pts, &mut au.dts, jump, tb);
        if let Some(dts) = self.dts.as_mut() {
            match dts.next(au.pts, tb) {
                Some(d) => au.dts = d,
                None => {
                    self.stats.dropped += 1;
                    if !std::mem::replace(&mut self.warned_reorder, true) {
                        tracing::warn!(
                            url = %self.stats.url,
                            "the live source reorders frames more deeply than its SPS says; \
                             dropped the frame that showed it"
                        );
                    }
                    return Ok(());
                }
            }
        }
        if !self.timeline.anchored() {
            let outage = if self.lost {
                self.outage()
            } else {
                Duration::ZERO
            };
            self.timeline.anchor(tb.ticks_to_nanos(au.dts), outage);
            if self.lost {
                self.lost = false;
                self.stats.reconnects += 1;
                self.stats.outage_s += outage.as_secs_f64();
                tracing::info!(
                    url = %self.stats.url,
                    outage_s = outage.as_secs_f64(),
                    "the live source is back; relaying from its key frame"
                );
            }
        }
        self.session_delivered = true;
        let Some((dts, pts)) = self.timeline.video(au.dts, au.pts, tb) else {
            self.stats.dropped += 1;
            return Ok(());
        };
        au.dts = dts;
        au.pts = pts;
        match (self.encode.as_mut(), self.opened.as_mut()) {
            (Some(enc), Some(opened)) => enc.video(&mut opened.server, self.video.as_ref(), &au),
            _ => {
                if let Some(sets) = &self.in_band {
                    if au.key && !au.has_parameter_sets() {
                        let mut nalus = split_annexb(sets);
                        nalus.append(&mut au.nalus);
                        au.nalus = nalus;
                    }
                }
                self.serve(Media::H264(au))
            }
        }
    }

    fn on_audio(&mut self, mut frame: AudioFrame) -> Result<(), PushError> {
        let relayed = self
            .opened
            .as_ref()
            .and_then(|o| o.audio.as_ref())
            .is_some_and(|t| self.audio.as_ref().is_some_and(|a| same_audio(a, t)));
        if !relayed {
            self.stats.dropped += 1;
            if self.opened.as_ref().is_some_and(|o| o.audio.is_some())
                && !std::mem::replace(&mut self.warned_audio, true)
            {
                tracing::warn!(
                    url = %self.stats.url,
                    "the live source's audio is not the one the destinations were set up \
                     with; relaying its video only"
                );
            }
            return Ok(());
        }
        let tb = frame.time_base;
        let jump = self.continuity.offset(1, tb.ticks_to_nanos(frame.pts), 0);
        let mut unused = 0;
        shift(&mut frame.pts, &mut unused, jump, tb);
        let Some(pts) = self.timeline.audio(frame.pts, tb) else {
            self.stats.dropped += 1;
            return Ok(());
        };
        frame.pts = pts;
        match (self.encode.as_mut(), self.opened.as_mut()) {
            (Some(enc), Some(opened)) => enc.audio(&mut opened.server, frame),
            _ => self.serve(Media::Audio(frame)),
        }
    }

    fn serve(&mut self, media: Media) -> Result<(), PushError> {
        let Some(opened) = self.opened.as_mut() else {
            return Ok(());
        };
        if !serve(&mut opened.server, Unit::Media(media))? {
            self.stats.dropped += 1;
        }
        Ok(())
    }

    /// One video frame, in the source's time base.
    fn frame_ticks(&self, tb: TimeBase) -> i64 {
        let rate = self
            .video
            .as_ref()
            .and_then(|t| t.frame_rate)
            .map_or(FALLBACK_FRAME_RATE, |(n, d)| Rational::new(n, d.max(1)));
        rate.invert().rescale(1, tb).max(1)
    }

    /// Opens the destinations at the first access unit (a key frame, its track known).
    fn open(&mut self, au: &AccessUnit) -> Result<(), PushError> {
        let url = redact_url(&self.options.input);
        let video = self.video.clone().ok_or_else(|| {
            PushError::Source(PullError::BadMedia {
                url: url.clone(),
                reason: "an access unit came before its track".into(),
            })
        })?;
        let audio = self.choose_audio()?;
        let audio_stream = match &audio {
            Some(t) => Some(audio_stream(t).map_err(PushError::Server)?),
            None => None,
        };
        let fps = video
            .frame_rate
            .map(|(n, d)| Rational::new(n, d.max(1)))
            .filter(|r| r.is_valid());
        let keys = KeyFrameRequest::new();
        let (stream, shape, encode) = match self.options.codec {
            crate::VideoCodec::Copy => {
                let stream = PacketStream::new(annexb_parameter_sets(&video), au.time_base)
                    .with_frame_rate(fps)
                    .with_bit_rate(video.bitrate);
                let shape = (
                    video.width(),
                    video.height(),
                    fps.unwrap_or(Rational::UNKNOWN),
                );
                (stream, shape, None)
            }
            crate::VideoCodec::Libx264 => {
                let params = live_params(&video);
                let config = self.options.encoder_config(&params);
                let encoder = Encoder::new(config.clone()).map_err(ServerError::from)?;
                let stream = PacketStream::libx264(
                    encoder.extradata().clone(),
                    encoder.time_base(),
                    &config,
                );
                let shape = (config.width, config.height, config.frame_rate);
                let enc = Reencoder::new(
                    config,
                    encoder,
                    (video.width(), video.height()),
                    self.options.decoder_threads,
                    keys.clone(),
                    audio.is_some(),
                );
                (stream, shape, Some(enc))
            }
        };
        let audio_codec = audio_stream.as_ref().map(|a| a.codec.clone());
        let config = self
            .options
            .server_config(stream, audio_stream)
            .with_pace(false);
        let server = Server::open_with_key_frame_request(config, keys)?;
        tracing::info!(
            source = %url,
            codec = ?self.options.codec,
            audio = ?audio_codec,
            "relaying the live source"
        );
        self.encode = encode;
        self.opened = Some(Opened {
            server,
            video,
            audio,
            shape,
        });
        Ok(())
    }

    /// The source's audio track if it is relayed (see [`AudioMode`]): known at the first
    /// key frame, carried by every destination.
    fn choose_audio(&self) -> Result<Option<AudioTrack>, PushError> {
        let input = redact_url(&self.options.input);
        if self.options.audio == AudioMode::None {
            return Ok(None);
        }
        let Some(track) = self.audio.clone() else {
            if self.options.audio == AudioMode::Copy {
                return Err(PushError::Audio(format!(
                    "{input}: --audio copy, but the live source announced no audio before its \
                     first key frame"
                )));
            }
            return Ok(None);
        };
        let refusing = self
            .options
            .addresses()
            .filter_map(Protocol::from_url)
            .find(|p| !p.carries(track.codec));
        match (refusing, self.options.audio) {
            (None, _) => Ok(Some(track)),
            (Some(p), AudioMode::Copy) => Err(PushError::Audio(format!(
                "{input}: the live source's audio is {}, which {p} cannot carry",
                track.codec
            ))),
            (Some(p), _) => {
                tracing::warn!(
                    "{input}: the live source's audio is {}, which {p} cannot carry; relaying \
                     the video only (--audio none hides this)",
                    track.codec
                );
                Ok(None)
            }
        }
    }

    /// The session ended: libx264's delayed frames go out now (the source may be away for a
    /// while), and an outage begins.
    fn session_over(&mut self) {
        if let (Some(enc), Some(opened)) = (self.encode.as_mut(), self.opened.as_mut()) {
            if let Err(e) = enc.flush(&mut opened.server) {
                tracing::warn!("flushing the encoder after the source was lost: {e}");
            }
        }
        if self.session_delivered || self.opened.is_some() {
            self.lost = true;
        }
    }

    /// Waits `delay` for the next attempt, in short slices; `false` when stopped meanwhile.
    fn wait<P: FnMut(&ServerStats)>(
        &self,
        delay: Duration,
        stop: &AtomicBool,
        pusher: &mut Pusher<'_, P>,
    ) -> bool {
        let until = Instant::now() + delay;
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(POLL));
            self.tick(pusher);
        }
    }

    /// The time since the last unit arrived.
    fn outage(&self) -> Duration {
        self.last_unit_at.map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// Closes the destinations (libx264's tail first) and sums up.
    fn finish<P: FnMut(&ServerStats)>(
        mut self,
        result: Result<(), PushError>,
        pusher: Pusher<'_, P>,
        stop: &AtomicBool,
    ) -> Result<PushSummary, PushError> {
        if self.lost {
            self.stats.outage_s += self.outage().as_secs_f64();
        }
        let input = redact_url(&self.options.input);
        let Some(mut opened) = self.opened.take() else {
            return match result {
                Err(e) => Err(e),
                Ok(()) if stop.load(Ordering::Relaxed) => Ok(self.empty_summary()),
                Ok(()) => Err(PushError::EmptyInput { input }),
            };
        };
        let mut frames_encoded = 0;
        if let Some(enc) = self.encode.as_mut() {
            let flushed = enc.flush(&mut opened.server);
            frames_encoded = enc.frames_encoded;
            if let (Err(e), Ok(())) = (flushed, &result) {
                let _ = opened.server.close();
                return Err(e);
            }
        }
        if let Err(e) = result {
            // The push ends with the source's error; the destinations still end cleanly.
            let _ = opened.server.close();
            return Err(e);
        }
        let tally = Tally {
            frames_encoded,
            audio_codec: opened.audio.as_ref().map(|t| t.codec.name().to_string()),
            timestamp_jumps: self.jumps + self.continuity.jumps(),
        };
        let source = self.stats.clone();
        let attach = |mut s: PushSummary| {
            s.source = Some(source.clone());
            s
        };
        match pusher.finish(
            self.options,
            stop,
            opened.server,
            input,
            opened.shape,
            tally,
        ) {
            Ok(summary) => Ok(attach(summary)),
            Err(PushError::Destinations { failures, summary }) => Err(PushError::Destinations {
                failures,
                summary: Box::new(attach(*summary)),
            }),
            Err(e) => Err(e),
        }
    }

    /// The summary of a push stopped before the source delivered anything.
    fn empty_summary(&self) -> PushSummary {
        PushSummary {
            input: redact_url(&self.options.input),
            url: redact_url(&self.options.address),
            codec: self.options.codec,
            width: 0,
            height: 0,
            frame_rate: Rational::UNKNOWN.to_string(),
            audio_codec: None,
            loops_completed: 0,
            interrupted: true,
            timestamp_jumps: 0,
            source: Some(self.stats.clone()),
            stats: ServerStats::default(),
        }
    }
}

/// A unit on its way to the destinations.
#[derive(Debug)]
enum Unit {
    /// An encoded packet (libx264 mode).
    Packet(EncodedPacket),
    /// An access unit or audio frame as it is.
    Media(Media),
}

/// Sends a unit at once (the server is unpaced). A unit the session refuses is skipped with a
/// warning, as push does for files (`Ok(false)`); anything else ends the push.
fn serve(server: &mut Server, unit: Unit) -> Result<bool, PushError> {
    let sent = match unit {
        Unit::Packet(p) => server.serve_packet(&p),
        Unit::Media(m) => server.serve_media(m),
    };
    match sent {
        Ok(()) => Ok(true),
        Err(ServerError::Publish(e)) if e.is_media_error() => {
            tracing::warn!(url = %server.url(), "skipping a unit the stream cannot carry: {e}");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Moves `pts` and `dts` (ticks of `tb`) by `ns` nanoseconds.
fn shift(pts: &mut i64, dts: &mut i64, ns: i128, tb: TimeBase) {
    if ns != 0 {
        let ns = i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX });
        let ticks = TimeBase::NANOS.rescale(ns, tb);
        *pts = pts.saturating_add(ticks);
        *dts = dts.saturating_add(ticks);
    }
}

/// The SPS and PPS of a track as Annex B extradata.
fn annexb_parameter_sets(track: &VideoTrack) -> Bytes {
    let mut out = BytesMut::new();
    write_annexb([&track.sps, &track.pps], &mut out);
    out.freeze()
}

/// Whether two audio tracks describe the same stream (the destinations can go on with it).
fn same_audio(a: &AudioTrack, b: &AudioTrack) -> bool {
    a.codec == b.codec
        && a.sample_rate == b.sample_rate
        && a.channels == b.channels
        && a.config == b.config
}

/// The audio stream a server announces for a source's track; AAC carries its
/// AudioSpecificConfig as extradata.
fn audio_stream(track: &AudioTrack) -> Result<AudioStream, ServerError> {
    let tb = track.sample_time_base();
    let stream = match track.codec {
        AudioCodec::Aac => AudioStream::aac(track.config.clone(), tb)?,
        other => AudioStream::new(
            other.name(),
            track.sample_rate,
            u32::from(track.channels),
            tb,
        ),
    };
    Ok(stream.with_bit_rate(track.bitrate))
}

/// What the encoder inherits from a live source: its size from the SPS, its frame rate from
/// the SPS timing or the session (SDP `a=framerate`, RTMP metadata), else 30/1, its bit rate
/// when the session announced one (else libx264's constant quality). Timestamps in 1/90000.
/// No B-frames unless asked for (`--bframes`): a relay of a live source wants latency low.
fn live_params(track: &VideoTrack) -> VideoParams {
    let frame_rate = track
        .frame_rate
        .map(|(n, d)| Rational::new(n, d.max(1)))
        .filter(|r| r.is_valid())
        .unwrap_or(FALLBACK_FRAME_RATE);
    VideoParams {
        width: track.width(),
        height: track.height(),
        frame_rate,
        avg_frame_rate: frame_rate,
        time_base: TimeBase::RTP_VIDEO,
        start_time: 0,
        duration_s: None,
        frame_count: 0,
        frame_count_source: FrameCountSource::Unknown,
        codec: "h264".into(),
        bit_rate: track.bitrate.filter(|b| *b > 0),
        pixel_format: "yuv420p".into(),
        gop_size: None,
        max_b_frames: Some(0),
    }
}

/// How many frames the stream may show after a frame decoded later: the SPS's
/// `max_num_reorder_frames` (H.264 §E.2.1). Without it: 0 for the profiles without B slices
/// (Baseline, profile_idc 66, and the constrained Baseline of constraint_set1, §A.2.1–A.2.2),
/// else 2 (libx264's B-pyramid), raised as deeper reordering shows ([`DecodingTimes`]).
fn reorder_frames(track: &VideoTrack) -> usize {
    if let Some(n) = track.info.max_num_reorder_frames {
        return n.min(16) as usize;
    }
    let baseline = track.info.profile_idc == 66 || track.info.constraint_flags & 0x40 != 0;
    if baseline {
        0
    } else {
        2
    }
}

/// Decoding times for access units that carry presentation times only (RTP): with at most
/// `reorder` frames shown after a frame decoded later, the `k`th frame is decoded at the
/// `(k − reorder)`th smallest presentation time seen so far, which never goes back and is
/// never after the frame's own presentation time. The first `reorder` frames are decoded one
/// frame apart before the first presentation time.
///
/// A frame shown before the last decoding time given out proves the reordering deeper than
/// assumed: it cannot be given a decoding time (`None`: skip it), and from then on the
/// decoding times trail by one frame more.
#[derive(Debug, Clone)]
struct DecodingTimes {
    reorder: usize,
    /// One frame, in `time_base` (of the first frame).
    frame: Rational,
    /// Presentation times not yet given out as decoding times, ascending.
    pending: Vec<i64>,
    first_pts: Option<i64>,
    last_dts: Option<i64>,
    /// Decoding times were taken from `pending` already (past the start).
    popping: bool,
}

impl DecodingTimes {
    fn new(reorder: usize, frame: Rational) -> DecodingTimes {
        DecodingTimes {
            reorder,
            frame,
            pending: Vec::with_capacity(reorder + 1),
            first_pts: None,
            last_dts: None,
            popping: false,
        }
    }

    /// The decoding time of the next frame in decoding order, presented at `pts` (ticks of
    /// `tb`, the same for every frame of a session).
    fn next(&mut self, pts: i64, tb: TimeBase) -> Option<i64> {
        if self.last_dts.is_some_and(|last| pts < last) {
            self.reorder += 1;
            return None;
        }
        let first = *self.first_pts.get_or_insert(pts);
        let at = self.pending.partition_point(|p| *p <= pts);
        self.pending.insert(at, pts);
        let dts = if self.pending.len() > self.reorder {
            self.popping = true;
            self.pending.remove(0)
        } else if self.popping {
            // The trail just grew by a frame: this one is decoded with the previous one.
            self.last_dts.unwrap_or(pts)
        } else {
            let frames = (self.reorder + 1 - self.pending.len()) as i64;
            let frame = self.frame.rescale(1, tb).max(1);
            first.saturating_sub(frames.saturating_mul(frame))
        };
        let dts = dts.min(pts).max(self.last_dts.unwrap_or(i64::MIN));
        self.last_dts = Some(dts);
        Some(dts)
    }
}

/// The output timeline (see the module docs): each session's offset, and what was sent.
#[derive(Debug, Default)]
struct Timeline {
    /// Nanoseconds added to the current session's timestamps; `None` until its first unit.
    offset_ns: Option<i64>,
    /// Where the current session starts on the output timeline (its first decoding time).
    origin_ns: i128,
    /// The latest output time of any unit sent (video presentation or decoding time, audio
    /// time).
    end_ns: Option<i128>,
    last_video_ns: Option<i128>,
    last_audio_ns: Option<i128>,
}

impl Timeline {
    /// A new session: its offset is set by its first unit.
    fn new_session(&mut self) {
        self.offset_ns = None;
    }

    fn anchored(&self) -> bool {
        self.offset_ns.is_some()
    }

    /// Places the session's first unit, a key frame decoded at `dts_ns` on the source's
    /// clock: at 0 for the first session, else `outage` (at least a millisecond) after the
    /// latest unit sent.
    fn anchor(&mut self, dts_ns: i128, outage: Duration) {
        let origin = match self.end_ns {
            None => 0,
            Some(end) => end + (outage.as_nanos() as i128).max(MIN_GAP_NS),
        };
        self.origin_ns = origin;
        let offset = origin - dts_ns;
        self.offset_ns =
            Some(i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX }));
    }

    /// The output (dts, pts) of an access unit stamped in `tb`; `None` before the session
    /// is anchored or when it would decode before the previous one.
    fn video(&mut self, dts: i64, pts: i64, tb: TimeBase) -> Option<(i64, i64)> {
        let shift = TimeBase::NANOS.rescale(self.offset_ns?, tb);
        let (dts, pts) = (dts.checked_add(shift)?, pts.checked_add(shift)?);
        let dts_ns = tb.ticks_to_nanos(dts);
        if self.last_video_ns.is_some_and(|last| dts_ns < last) {
            return None;
        }
        self.last_video_ns = Some(dts_ns);
        self.extend(dts_ns.max(tb.ticks_to_nanos(pts)));
        Some((dts, pts))
    }

    /// The output time of an audio frame stamped in `tb`; `None` before the session's first
    /// key frame or when it would not follow the previous audio frame.
    fn audio(&mut self, pts: i64, tb: TimeBase) -> Option<i64> {
        let shift = TimeBase::NANOS.rescale(self.offset_ns?, tb);
        let pts = pts.checked_add(shift)?;
        let ns = tb.ticks_to_nanos(pts);
        if ns < self.origin_ns || self.last_audio_ns.is_some_and(|last| ns <= last) {
            return None;
        }
        self.last_audio_ns = Some(ns);
        self.extend(ns);
        Some(pts)
    }

    fn extend(&mut self, ns: i128) {
        self.end_ns = Some(self.end_ns.map_or(ns, |e| e.max(ns)));
    }
}

/// libx264 mode: decodes the source's access units, encodes the frames, and merges the
/// encoded packets with the audio into timestamp order.
struct Reencoder {
    config: EncoderConfig,
    /// `None` between sessions: flushed when the source was lost, opened again at its next
    /// frame (an IDR picture, at once).
    encoder: Option<Encoder>,
    decoder: Option<(VideoTrack, PacketDecoder)>,
    /// The size frames are decoded to: the first session's, which the encoder was set up for.
    source_size: (u32, u32),
    decoder_threads: usize,
    keys: KeyFrameRequest,
    audio: bool,
    merge: Interleaver<Unit>,
    /// The last frame's pts, in the encoder's time base.
    last_pts: Option<i64>,
    /// Frames given to encoders so far.
    frames_encoded: u64,
    warned_decode: bool,
}

impl Reencoder {
    /// How long (stream time) the audio may wait for the encoder's delayed video, and how
    /// many units: as push's merge of a file's tracks.
    const MAX_WAIT: Duration = Duration::from_secs(5);
    const MAX_QUEUED: usize = 4096;

    fn new(
        config: EncoderConfig,
        encoder: Encoder,
        source_size: (u32, u32),
        decoder_threads: usize,
        keys: KeyFrameRequest,
        audio: bool,
    ) -> Reencoder {
        Reencoder {
            config,
            encoder: Some(encoder),
            decoder: None,
            source_size,
            // Frame threading delays output by a frame per thread: one thread unless asked.
            decoder_threads: if decoder_threads == 0 {
                1
            } else {
                decoder_threads
            },
            keys,
            audio,
            merge: Reencoder::merge(audio),
            last_pts: None,
            frames_encoded: 0,
            warned_decode: false,
        }
    }

    fn merge(audio: bool) -> Interleaver<Unit> {
        let mut merge = Interleaver::new(2, Reencoder::MAX_WAIT, Reencoder::MAX_QUEUED);
        if !audio {
            merge.end(1);
        }
        merge
    }

    /// Decodes an access unit (stamped on the output timeline) and encodes what comes out.
    fn video(
        &mut self,
        server: &mut Server,
        track: Option<&VideoTrack>,
        au: &AccessUnit,
    ) -> Result<(), PushError> {
        let Some(track) = track else {
            return Ok(());
        };
        let same = self
            .decoder
            .as_ref()
            .is_some_and(|(t, _)| t.sps == track.sps && t.pps == track.pps);
        if !same {
            // New parameter sets: the old decoder's pictures first, then a fresh decoder.
            self.drain_decoder(server)?;
            let (w, h) = self.source_size;
            let options = PacketDecoderOptions::default()
                .with_output(PixelLayout::Yuv420p)
                .with_width_dst(w)
                .with_height_dst(h)
                .with_threads(self.decoder_threads);
            let decoder = PacketDecoder::new(&annexb_parameter_sets(track), au.time_base, options)?;
            self.decoder = Some((track.clone(), decoder));
        }
        let Some((_, decoder)) = self.decoder.as_mut() else {
            return Ok(());
        };
        let frames = match decoder.decode(&au.to_annexb(), au.pts) {
            Ok(frames) => frames,
            Err(e) => {
                if !std::mem::replace(&mut self.warned_decode, true) {
                    tracing::warn!(
                        "skipping an access unit of the live source that does not decode: {e}"
                    );
                }
                return Ok(());
            }
        };
        self.encode(server, frames)
    }

    fn encode(
        &mut self,
        server: &mut Server,
        frames: Vec<crate::codec::Frame>,
    ) -> Result<(), PushError> {
        for frame in frames {
            let pts = frame.time_base.rescale(frame.pts, self.config.time_base);
            if self.last_pts.is_some_and(|last| pts <= last) {
                continue;
            }
            self.last_pts = Some(pts);
            let encoder = match self.encoder.as_mut() {
                Some(e) => e,
                None => self
                    .encoder
                    .insert(Encoder::new(self.config.clone()).map_err(ServerError::from)?),
            };
            if self.keys.take() {
                encoder.force_key_frame();
            }
            let packets = encoder.encode(&frame).map_err(ServerError::from)?;
            self.frames_encoded += 1;
            for p in packets {
                let ts = p.time_base.ticks_to_nanos(p.dts);
                self.merge.push(0, ts, Unit::Packet(p));
            }
        }
        self.send_ready(server)
    }

    fn audio(&mut self, server: &mut Server, frame: AudioFrame) -> Result<(), PushError> {
        let ts = frame.time_base.ticks_to_nanos(frame.pts);
        self.merge.push(1, ts, Unit::Media(Media::Audio(frame)));
        self.send_ready(server)
    }

    fn send_ready(&mut self, server: &mut Server) -> Result<(), PushError> {
        while let Some(unit) = self.merge.pop() {
            serve(server, unit)?;
        }
        Ok(())
    }

    /// Flushes the current decoder's delayed pictures into the encoder.
    fn drain_decoder(&mut self, server: &mut Server) -> Result<(), PushError> {
        let frames = match self.decoder.as_mut() {
            Some((_, d)) => d.flush()?,
            None => Vec::new(),
        };
        self.encode(server, frames)
    }

    /// Everything held goes out: the decoder's and the encoder's delayed frames, then the
    /// audio waiting for them. The next frame opens a new decoder and encoder.
    fn flush(&mut self, server: &mut Server) -> Result<(), PushError> {
        self.drain_decoder(server)?;
        self.decoder = None;
        if let Some(mut encoder) = self.encoder.take() {
            for p in encoder.finish().map_err(ServerError::from)? {
                let ts = p.time_base.ticks_to_nanos(p.dts);
                self.merge.push(0, ts, Unit::Packet(p));
            }
        }
        self.merge.end_all();
        self.send_ready(server)?;
        self.merge = Reencoder::merge(self.audio);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TB: TimeBase = TimeBase::RTP_VIDEO;

    /// Frames of libx264 with two B-frames and a B-pyramid, in decoding order: presentation
    /// indices 0 3 1 2 6 4 5 9 7 8.
    fn pyramid() -> Vec<i64> {
        let mut out = vec![0];
        for g in 0..3 {
            let p = 3 * (g + 1);
            out.extend([p, p - 2, p - 1]);
        }
        out.iter().map(|i| i * 3000).collect()
    }

    #[test]
    fn decoding_times_follow_the_presentation_times_reordered() {
        let mut dts = DecodingTimes::new(2, Rational::new(1, 30));
        let got: Vec<i64> = pyramid()
            .into_iter()
            .map(|pts| dts.next(pts, TB).expect("a decoding time"))
            .collect();
        assert_eq!(
            got,
            [-6000, -3000, 0, 3000, 6000, 9000, 12000, 15000, 18000, 21000]
        );
        for (d, p) in got.iter().zip(pyramid()) {
            assert!(*d <= p);
        }
        // Without reordering the decoding time is the presentation time.
        let mut plain = DecodingTimes::new(0, Rational::new(1, 30));
        for k in 0..5 {
            assert_eq!(plain.next(k * 3000, TB), Some(k * 3000));
        }
    }

    #[test]
    fn deeper_reordering_than_announced_costs_one_frame_then_trails_further() {
        // Frame 1 follows 4 and 2 in decoding order: a reordering depth of 2, not 1.
        let order = [0, 4, 2, 1, 3, 8, 6, 5, 7];
        let mut dts = DecodingTimes::new(1, Rational::new(1, 30));
        let got: Vec<Option<i64>> = order
            .iter()
            .map(|k| dts.next(k * 3000, TB).map(|d| d / 3000))
            .collect();
        assert_eq!(
            got,
            [
                Some(-1),
                Some(0),
                Some(2),
                None,
                Some(2),
                Some(3),
                Some(4),
                Some(5),
                Some(6)
            ]
        );
    }

    #[test]
    fn sessions_continue_the_timeline_after_the_outage() {
        let mut t = Timeline::default();
        t.new_session();
        // The first session starts at 0, whatever its clock says.
        t.anchor(TB.ticks_to_nanos(900_000), Duration::ZERO);
        assert_eq!(t.video(900_000, 906_000, TB), Some((0, 6000)));
        let ms = TimeBase::MILLIS;
        // Audio before the key frame is dropped, after it kept on the same offset.
        let atb = TimeBase::new(1, 48_000);
        assert_eq!(t.audio(479_000, atb), None);
        assert_eq!(t.audio(480_000, atb), Some(0));
        assert_eq!(t.audio(481_024, atb), Some(1024));
        assert_eq!(t.video(903_000, 903_000, TB), Some((3000, 3000)));
        // The source comes back 2 s later, its clock at 0 again (RTMP, milliseconds).
        t.new_session();
        assert_eq!(t.video(0, 0, ms), None);
        t.anchor(0, Duration::from_secs(2));
        // The latest unit sent was video shown at 6000 / 90000 s = 66.7 ms.
        let (d, p) = t.video(0, 40, ms).expect("placed");
        assert_eq!((d, p), (2067, 2107));
        assert_eq!(t.audio(480, atb), Some(99_680));
        // Nothing goes back.
        assert_eq!(t.video(-10, 0, ms), None);
    }

    #[test]
    fn live_inputs_are_rtsp_and_rtmp_urls() {
        assert!(is_live("rtsp://cam/stream"));
        assert!(is_live("RTMP://host/app/key"));
        assert!(!is_live("clip.mp4"));
        assert!(!is_live("http://host/x.m3u8"));
        let o = PushOptions::new("rtsp://u:secret@cam/x", "rtmp://h/a/k").with_loops(2);
        let e = check_options(&o).expect_err("no loops");
        assert!(e.to_string().contains("rtsp://cam/x"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
