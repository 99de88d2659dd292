//! The pull pipeline shared by [`Client`](super::Client) and [`AsyncClient`](super::AsyncClient).
//!
//! ```text
//! Network task (async) --Input, bounded--> decoder thread --Frame, bounded--> consumer
//!   Puller: connect, next_media, close        record, decode, decimate, ring
//!                                             audio: record ADTS --AudioFrame, bounded--> consumer
//! ```
//! Audio frames travel the same queue as the access units, in arrival order, and only when
//! someone takes them (an audio subscriber or an ADTS recording); otherwise they are only
//! counted.
//! The network task only awaits: the socket, the timers, room in the decoder's queue. The
//! decoder thread is a plain thread that owns everything that blocks (FFmpeg, the recording's
//! writer); it waits on its queue and on the consumer's channel, never on a runtime. When the
//! network task is done it reports its [`Outcome`] and drops its end of the queue; the decoder
//! thread decodes what is left, applies the end-of-stream rules, sets the final status and then
//! closes the consumer's channel, so a consumer that sees the end reads the final status.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel as cb;
use tokio::sync::{mpsc, oneshot, watch};

use super::{ClientCounters, ClientError, ClientOptions, ClientStatus, StreamAudio, StreamParams};
use crate::codec::{Frame, PacketDecoder, PacketDecoderOptions, Rational};
use crate::transport::audio::{write_adts, AacConfig, AudioCodec};
use crate::transport::h264::write_annexb;
use crate::transport::pull::{PullOptions, PullProtocol, PullStats, Puller};
use crate::transport::{AccessUnit, AudioFrame, AudioTrack, Media, VideoTrack};
use mpegcoder_types::FrameRateConverter;

/// Access units the network task may have queued for the decoder thread. A little slack for
/// a decode that takes longer than one frame interval; beyond it the network task waits, and
/// TCP flow control slows the server.
const INPUT_QUEUE: usize = 16;

/// After a stop, how long one delivery waits for room in a [`Client::subscribe`] (or
/// [`Client::subscribe_audio`]) channel. A consumer that still reads takes a frame in far
/// less; one that stopped reading must not hold up the stop. The first delivery that gives up
/// ends the subscription, so what was delivered has no gap.
///
/// [`Client::subscribe`]: super::Client::subscribe
/// [`Client::subscribe_audio`]: super::Client::subscribe_audio
pub(super) const STOPPED_DELIVERY_WAIT: Duration = Duration::from_millis(200);

/// A stream counts as quiet after this long without an access unit, or three of its mean
/// arrival intervals if that is longer (slow streams).
const QUIET_AFTER: Duration = Duration::from_millis(500);

/// A stop request, seen by async code (the network task awaits it) and by the decoder thread
/// (a crossbeam `Select` waits on it together with a delivery).
#[derive(Debug)]
pub(super) struct Stop {
    flag: watch::Sender<bool>,
    /// Dropped by [`Stop::request`]: `closed` then reports a disconnect, which a `Select`
    /// counts as ready. Nothing is ever sent on it.
    open: Mutex<Option<cb::Sender<()>>>,
    closed: cb::Receiver<()>,
}

impl Stop {
    fn new() -> Stop {
        let (open, closed) = cb::bounded(0);
        Stop {
            flag: watch::Sender::new(false),
            open: Mutex::new(Some(open)),
            closed,
        }
    }

    /// Requests the stop (idempotent).
    pub(super) fn request(&self) {
        self.flag.send_replace(true);
        self.open.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// True once a stop was requested.
    pub(super) fn is_requested(&self) -> bool {
        *self.flag.borrow()
    }

    /// A receiver for [`Stop::requested`].
    fn watch(&self) -> watch::Receiver<bool> {
        self.flag.subscribe()
    }
}

/// Completes once the stop is requested (at once if it already is).
async fn requested(stop: &mut watch::Receiver<bool>) {
    // Errs only when the sender is gone, which `Shared` outlives.
    let _ = stop.wait_for(|&s| s).await;
}

/// State shared by the front end, the network task and the decoder thread.
#[derive(Debug)]
pub(super) struct Shared {
    /// The URL without credentials.
    pub(super) url: String,
    pub(super) protocol: PullProtocol,
    pub(super) stop: Stop,
    state: Mutex<State>,
    changed: Condvar,
    ring: Mutex<VecDeque<Frame>>,
}

#[derive(Debug)]
struct State {
    status: ClientStatus,
    params: Option<StreamParams>,
    audio_track: Option<AudioTrack>,
    counters: ClientCounters,
}

impl Shared {
    pub(super) fn new(url: String, protocol: PullProtocol) -> Arc<Shared> {
        Arc::new(Shared {
            url,
            protocol,
            stop: Stop::new(),
            state: Mutex::new(State {
                status: ClientStatus::NotStarted,
                params: None,
                audio_track: None,
                counters: ClientCounters::default(),
            }),
            changed: Condvar::new(),
            ring: Mutex::new(VecDeque::new()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock in a way that leaves the state inconsistent;
        // keep going with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ring(&self) -> MutexGuard<'_, VecDeque<Frame>> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn set_status(&self, status: ClientStatus) {
        self.state().status = status;
        self.changed.notify_all();
    }

    pub(super) fn status(&self) -> ClientStatus {
        self.state().status.clone()
    }

    pub(super) fn params(&self) -> Option<StreamParams> {
        self.state().params.clone()
    }

    pub(super) fn audio_track(&self) -> Option<AudioTrack> {
        self.state().audio_track.clone()
    }

    pub(super) fn counters(&self) -> ClientCounters {
        self.state().counters.clone()
    }

    /// The newest `read_size` frames of the ring, oldest first.
    pub(super) fn extract_frames(&self, read_size: usize) -> Vec<Frame> {
        let ring = self.ring();
        let skip = ring.len().saturating_sub(read_size);
        ring.iter().skip(skip).cloned().collect()
    }

    /// Blocks up to `timeout` for the parameters (see [`Client::wait_ready`]).
    ///
    /// [`Client::wait_ready`]: super::Client::wait_ready
    pub(super) fn wait_ready(&self, timeout: Duration) -> Result<StreamParams, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            if let Some(p) = &state.params {
                return Ok(p.clone());
            }
            match &state.status {
                ClientStatus::Failed(e) => return Err(e.clone()),
                ClientStatus::Ended | ClientStatus::Stopped | ClientStatus::NotStarted => {
                    return Err(ClientError::NotReady(timeout))
                }
                _ => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::NotReady(timeout));
            }
            state = self.wait_change(state, deadline - now);
        }
    }

    /// Blocks up to `timeout` for the final status (see [`Client::wait_finished`]).
    ///
    /// [`Client::wait_finished`]: super::Client::wait_finished
    pub(super) fn wait_finished(&self, timeout: Duration) -> ClientStatus {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            if state.status.is_finished() || matches!(state.status, ClientStatus::NotStarted) {
                return state.status.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                return state.status.clone();
            }
            state = self.wait_change(state, deadline - now);
        }
    }

    fn wait_change<'a>(
        &self,
        state: MutexGuard<'a, State>,
        up_to: Duration,
    ) -> MutexGuard<'a, State> {
        self.changed
            .wait_timeout(state, up_to)
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0)
    }
}

/// What the network task hands the decoder thread.
#[derive(Debug)]
enum Input {
    /// The track of the access units that follow (sent first, and whenever it changes).
    Track(VideoTrack),
    Unit(AccessUnit),
    /// The track of the audio frames that follow (sent first, and whenever it changes).
    AudioTrack(AudioTrack),
    Audio(AudioFrame),
}

/// Why the network task's receive loop ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The server ended the stream.
    Ended,
    /// A stop was requested.
    Stopped,
    /// The access unit limit ([`ClientOptions::with_max_access_units`]) was reached.
    Limit,
}

/// How the network side ended.
#[derive(Debug)]
struct Outcome {
    result: Result<End, ClientError>,
    /// Nothing had arrived for a while when it ended: see [`Arrivals::quiet`].
    quiet: bool,
}

/// Where the decoder thread hands the kept frames (`T` = [`Frame`]) or the audio frames
/// (`T` = [`AudioFrame`]).
#[derive(Debug, Default)]
pub(super) enum Sink<T = Frame> {
    /// Only the ring (frames), or nobody (audio).
    #[default]
    None,
    /// A [`Client::subscribe`](super::Client::subscribe) or
    /// [`Client::subscribe_audio`](super::Client::subscribe_audio) channel.
    Blocking(cb::Sender<T>),
    /// [`AsyncClient::next_frame`](super::AsyncClient::next_frame)'s channel, or an
    /// [`AsyncAudioReceiver`](super::AsyncAudioReceiver)'s.
    Async(mpsc::Sender<T>),
}

impl<T> Sink<T> {
    /// True when someone takes what is delivered.
    fn is_open(&self) -> bool {
        !matches!(self, Sink::None)
    }

    /// Hands an item to the consumer, waiting for room. The sink closes when the consumer is
    /// gone, or when a stop came and the consumer did not make room in time.
    fn deliver(&mut self, frame: T, stop: &Stop) {
        let kept = match self {
            Sink::None => return,
            Sink::Blocking(tx) => deliver_blocking(tx, frame, stop),
            // On this plain thread a blocking send is fine. It ends when the consumer takes a
            // frame, or closes or drops the receiver (`close` and drop do).
            Sink::Async(tx) => tx.blocking_send(frame).is_ok(),
        };
        if !kept {
            *self = Sink::None;
        }
    }
}

/// Sends `frame` on a subscriber channel, waiting for room until the frame is taken, the
/// receiver is dropped, or a stop: after a stop the wait is at most [`STOPPED_DELIVERY_WAIT`].
/// Returns whether the frame was delivered.
pub(super) fn deliver_blocking<T>(tx: &cb::Sender<T>, frame: T, stop: &Stop) -> bool {
    if !stop.is_requested() {
        let mut select = cb::Select::new();
        let send = select.send(tx);
        select.recv(&stop.closed);
        let op = select.select();
        if op.index() == send {
            return op.send(tx, frame).is_ok();
        }
        // The stop channel only ever disconnects: this completes the operation at once.
        let _ = op.recv(&stop.closed);
    }
    tx.send_timeout(frame, STOPPED_DELIVERY_WAIT).is_ok()
}

/// Where the pipeline's output goes besides the ring.
#[derive(Default)]
pub(super) struct Outputs {
    /// The decoded frames' consumer.
    pub(super) frames: Sink,
    /// The audio frames' consumer.
    pub(super) audio: Sink<AudioFrame>,
    /// The Annex B recording of the video.
    pub(super) annexb: Option<Box<dyn Write + Send>>,
    /// The ADTS recording of the audio.
    pub(super) adts: Option<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs")
            .field("frames", &self.frames)
            .field("audio", &self.audio)
            .field("annexb", &self.annexb.is_some())
            .field("adts", &self.adts.is_some())
            .finish()
    }
}

/// Starts the decoder thread and returns the network side that feeds it, to be run (or
/// dropped) by the caller, and the thread.
pub(super) fn start(
    shared: &Arc<Shared>,
    options: &ClientOptions,
    outputs: Outputs,
) -> Result<(Network, DecoderThread), ClientError> {
    let (to_decoder, input) = mpsc::channel(INPUT_QUEUE);
    let (outcome_tx, outcome_rx) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    let audio_wanted = outputs.audio.is_open() || outputs.adts.is_some();
    let decoder = Decoder {
        shared: Arc::clone(shared),
        options: options.clone(),
        sink: outputs.frames,
        audio_sink: outputs.audio,
        recorder: outputs.annexb,
        adts: outputs.adts,
        audio_track: None,
        adts_config: None,
        decoder: None,
        track: None,
        decimator: Decimator::new(options.target_fps()),
        recorded_track: None,
        index: 0,
        failed: None,
        finished: false,
        _done: done_tx,
    };
    let handle = std::thread::Builder::new()
        .name("mpegcoder-pull-decode".into())
        .spawn(move || decoder.run(input, outcome_rx))
        .map_err(|e| ClientError::Worker(Arc::new(e)))?;
    let network = Network {
        shared: Arc::clone(shared),
        stop: shared.stop.watch(),
        to_decoder,
        outcome: Some(outcome_tx),
        arrivals: Arrivals::default(),
        sent_track: None,
        params_track: None,
        audio_wanted,
        sent_audio_track: None,
        params_audio_track: None,
        max_access_units: options.max_access_units(),
    };
    Ok((network, DecoderThread { handle, done }))
}

/// The running decoder thread.
#[derive(Debug)]
pub(super) struct DecoderThread {
    pub(super) handle: JoinHandle<()>,
    /// Completes (with an error: its sender is dropped) when the thread has finished, after it
    /// set the final status.
    pub(super) done: oneshot::Receiver<()>,
}

/// The network side: owns the puller, feeds the decoder thread, publishes the parameters and
/// the network counters.
#[derive(Debug)]
pub(super) struct Network {
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    to_decoder: mpsc::Sender<Input>,
    outcome: Option<oneshot::Sender<Outcome>>,
    /// When access units arrived, to tell on a stop whether the stream had gone quiet.
    arrivals: Arrivals,
    /// The track the decoder thread was last told about.
    sent_track: Option<VideoTrack>,
    /// The track the published parameters describe.
    params_track: Option<VideoTrack>,
    /// Someone takes the audio frames: they go to the decoder thread (else only counted).
    audio_wanted: bool,
    /// The audio track the decoder thread was last told about.
    sent_audio_track: Option<AudioTrack>,
    /// The audio track the published parameters describe.
    params_audio_track: Option<AudioTrack>,
    /// Stop receiving after this many access units.
    max_access_units: Option<u64>,
}

impl Network {
    /// The blocking client's task: connects (unless stopped first), then receives until the
    /// end.
    pub(super) async fn connect_and_run(mut self, target: String, options: PullOptions) {
        if self.shared.stop.is_requested() {
            return self.finish(Ok(End::Stopped), false);
        }
        let connect = Puller::connect(&target, options);
        let puller = tokio::select! {
            biased;
            () = requested(&mut self.stop) => return self.finish(Ok(End::Stopped), false),
            p = connect => p,
        };
        match puller {
            Ok(puller) => self.run(puller).await,
            Err(e) => self.finish(Err(e.into()), false),
        }
    }

    /// Receives from a connected puller until the end of the stream, a failure or a stop;
    /// closes the session (bounded) and reports the outcome to the decoder thread.
    pub(super) async fn run(mut self, mut puller: Puller) {
        tracing::info!(url = %self.shared.url, protocol = self.shared.protocol.name(), "pulling");
        self.shared.set_status(ClientStatus::Running);
        self.publish_progress(&puller);
        let result = self.receive(&mut puller).await;
        let quiet = self.arrivals.quiet(Instant::now());
        let access_units = puller.stats().access_units;
        // TEARDOWN / deleteStream, bounded; also after a stop that cancelled a read.
        puller.close().await;
        match &result {
            Ok(end) => tracing::info!(
                url = %self.shared.url,
                access_units,
                "pull {}",
                match end {
                    End::Ended => "ended",
                    End::Stopped => "stopped",
                    End::Limit => "reached its access unit limit",
                }
            ),
            Err(e) => tracing::info!(url = %self.shared.url, error = %e, "pull failed"),
        }
        self.finish(result, quiet);
    }

    /// Reports how the network side ended; dropping `self` then ends the decoder's input.
    fn finish(mut self, result: Result<End, ClientError>, quiet: bool) {
        if let Some(tx) = self.outcome.take() {
            let _ = tx.send(Outcome { result, quiet });
        }
    }

    async fn receive(&mut self, puller: &mut Puller) -> Result<End, ClientError> {
        loop {
            if self.shared.stop.is_requested() {
                return Ok(End::Stopped);
            }
            let next = tokio::select! {
                biased;
                () = requested(&mut self.stop) => return Ok(End::Stopped),
                n = puller.next_media() => n,
            };
            self.publish_progress(puller);
            let au = match next {
                Ok(Some(Media::H264(au))) => au,
                Ok(Some(Media::Audio(frame))) => {
                    self.on_audio(puller, frame).await?;
                    continue;
                }
                Ok(Some(_)) => continue,
                Ok(None) => return Ok(End::Ended),
                Err(e) => return Err(e.into()),
            };
            self.arrivals.record(Instant::now());
            // The puller hands out nothing before the track is known.
            let Some(track) = puller.track() else {
                continue;
            };
            if self.sent_track.as_ref() != Some(track) {
                self.sent_track = Some(track.clone());
                self.send(Input::Track(track.clone())).await?;
            }
            self.send(Input::Unit(au)).await?;
            // Nothing more is read: the limit is exact, whatever else was on its way.
            if self
                .max_access_units
                .is_some_and(|n| puller.stats().access_units >= n)
            {
                return Ok(End::Limit);
            }
        }
    }

    /// Passes an audio frame on to the decoder thread (preceded by its track when that is
    /// new) if someone takes audio.
    async fn on_audio(&mut self, puller: &Puller, frame: AudioFrame) -> Result<(), ClientError> {
        if !self.audio_wanted {
            return Ok(());
        }
        // The puller hands out no audio frame before its track is known.
        let Some(track) = puller.audio_track() else {
            return Ok(());
        };
        if self.sent_audio_track.as_ref() != Some(track) {
            self.sent_audio_track = Some(track.clone());
            self.send(Input::AudioTrack(track.clone())).await?;
        }
        self.send(Input::Audio(frame)).await
    }

    /// Queues an input for the decoder thread, waiting for room (never dropping: what was
    /// counted as received is decoded).
    async fn send(&self, input: Input) -> Result<(), ClientError> {
        self.to_decoder
            .send(input)
            .await
            .map_err(|_| ClientError::WorkerLost)
    }

    /// Copies the puller's counters and the parameters into the shared state.
    fn publish_progress(&mut self, puller: &Puller) {
        let stats: &PullStats = puller.stats();
        {
            let mut state = self.shared.state();
            let c = &mut state.counters;
            c.access_units = stats.access_units;
            c.key_frames = stats.key_frames;
            c.bytes = stats.bytes;
            c.skipped_before_key = stats.skipped_before_key;
            c.lost_packets = stats.lost_packets;
            c.depacketize_errors = stats.depacketize_errors;
            c.dropped_after_loss = stats.dropped_after_loss;
            c.stream_duration_s = stats.duration_s();
            c.audio_frames = stats.audio_frames;
            c.audio_bytes = stats.audio_bytes;
            c.audio_skipped_before_key = stats.audio_skipped_before_key;
            c.audio_unsupported = stats.audio_unsupported;
            c.audio_bad = stats.audio_bad;
            c.audio_duration_s = stats.audio_duration_s();
        }
        let audio = puller.audio_track();
        let Some(track) = puller.track() else {
            return;
        };
        if self.params_track.as_ref() == Some(track) && self.params_audio_track.as_ref() == audio {
            return;
        }
        self.params_track = Some(track.clone());
        self.params_audio_track = audio.cloned();
        let mut params = StreamParams::from_track(&self.shared.url, self.shared.protocol, track);
        params.audio = audio.map(StreamAudio::from_track);
        {
            let mut state = self.shared.state();
            state.params = Some(params);
            state.audio_track = audio.cloned();
        }
        self.shared.changed.notify_all();
    }
}

/// Everything the decoder thread owns.
struct Decoder {
    shared: Arc<Shared>,
    options: ClientOptions,
    sink: Sink,
    audio_sink: Sink<AudioFrame>,
    recorder: Option<Box<dyn Write + Send>>,
    /// The ADTS recording of the audio.
    adts: Option<Box<dyn Write + Send>>,
    /// The track of the next audio frames.
    audio_track: Option<AudioTrack>,
    /// The AAC configuration the ADTS headers describe, parsed once per track.
    adts_config: Option<AacConfig>,
    decoder: Option<(VideoTrack, PacketDecoder)>,
    /// The track of the next access units.
    track: Option<VideoTrack>,
    decimator: Decimator,
    recorded_track: Option<VideoTrack>,
    /// Index of the next decoded frame (counted from the first key frame).
    index: u64,
    /// The decoder thread's own failure (decoder, recording): input is then only drained.
    failed: Option<ClientError>,
    /// The final status is set.
    finished: bool,
    /// Dropped when the thread ends, after the final status is set.
    _done: oneshot::Sender<()>,
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // Runs before the fields drop (the sink among them), so even after a panic a consumer
        // that sees its channel end reads a final status.
        if !self.finished {
            self.shared
                .set_status(ClientStatus::Failed(ClientError::WorkerLost));
        }
    }
}

impl Decoder {
    fn run(mut self, mut input: mpsc::Receiver<Input>, outcome: oneshot::Receiver<Outcome>) {
        // A plain thread: the blocking receives below are fine here.
        while let Some(next) = input.blocking_recv() {
            if self.failed.is_some() {
                // Keep draining so that the network task never waits on a full queue.
                continue;
            }
            let step = match next {
                Input::Track(track) => {
                    self.track = Some(track);
                    Ok(())
                }
                Input::Unit(au) => self.on_access_unit(&au),
                Input::AudioTrack(track) => self.on_audio_track(track),
                Input::Audio(frame) => self.on_audio(frame),
            };
            if let Err(e) = step {
                self.failed = Some(e);
                self.shared.stop.request();
            }
        }
        let outcome = outcome.blocking_recv().unwrap_or(Outcome {
            result: Err(ClientError::WorkerLost),
            quiet: false,
        });
        let result = self.end(outcome);
        let status = match result {
            Ok(End::Ended) => ClientStatus::Ended,
            Ok(End::Stopped | End::Limit) => ClientStatus::Stopped,
            Err(e) => ClientStatus::Failed(e),
        };
        // Status first, then the end of the consumer's channel.
        self.shared.set_status(status);
        self.finished = true;
        self.sink = Sink::None;
        self.audio_sink = Sink::None;
    }

    /// The end of the stream: flushes or drops the decoder's delayed frames, flushes the
    /// recording; returns the final result.
    fn end(&mut self, outcome: Outcome) -> Result<End, ClientError> {
        let own = self.failed.take();
        // The decoder's delayed frames (held back for B-frame reordering) go out when the
        // stream ended, or had gone quiet before a stop or a stall (everything sent has
        // arrived). After a stop or a failure mid-stream, the frames shown between them and
        // the last frame handed out may never have arrived, and a consumer must not see a gap
        // (a reference frame right after frames it never got): they are dropped. Timestamps
        // cannot decide this: relays re-stamp packets by arrival, in decoding order.
        // At the access unit limit everything wanted has arrived; `flush_at_end` asks for the
        // decoding of everything received, whatever the end.
        let complete = matches!(outcome.result, Ok(End::Ended | End::Limit))
            || outcome.quiet
            || self.options.flush_at_end();
        let flushed = if own.is_none() && complete {
            self.flush_decoder()
        } else {
            self.decoder = None;
            Ok(())
        };
        let result = match (own, outcome.result, flushed) {
            (Some(e), _, _) | (None, Err(e), _) | (None, Ok(_), Err(e)) => Err(e),
            (None, Ok(end), Ok(())) => Ok(end),
        };
        let recorded = self.finish_recording();
        match (result, recorded) {
            (Ok(_), Err(e)) => Err(e),
            (r, _) => r,
        }
    }

    fn on_access_unit(&mut self, au: &AccessUnit) -> Result<(), ClientError> {
        let Some(track) = self.track.clone() else {
            return Ok(());
        };
        self.record(&track, au)?;
        if !self.options.decode() {
            return Ok(());
        }
        let same_track = self
            .decoder
            .as_ref()
            .is_some_and(|(t, _)| t.sps == track.sps && t.pps == track.pps);
        if !same_track {
            // New parameter sets (possibly a new size): finish the old decoder's pictures,
            // then start a fresh one configured for the new track.
            let frames = self.drain_decoder()?;
            self.deliver_all(frames);
            let decoder = self.new_decoder(&track, au)?;
            self.decoder = Some((track, decoder));
        }
        let Some((_, decoder)) = self.decoder.as_mut() else {
            return Ok(());
        };
        match decoder.decode(&au.to_annexb(), au.pts) {
            Ok(frames) => self.deliver_all(frames),
            Err(_) => self.shared.state().counters.decode_errors += 1,
        }
        Ok(())
    }

    fn new_decoder(
        &self,
        track: &VideoTrack,
        au: &AccessUnit,
    ) -> Result<PacketDecoder, ClientError> {
        let mut parameter_sets = bytes::BytesMut::new();
        write_annexb([&track.sps, &track.pps], &mut parameter_sets);
        let (width_dst, height_dst) = self.options.size();
        let options = PacketDecoderOptions::default()
            .with_output(self.options.output())
            .with_width_dst(width_dst)
            .with_height_dst(height_dst)
            .with_threads(self.options.decoder_threads());
        let time_base = Rational::new(au.time_base.num, au.time_base.den);
        PacketDecoder::new(&parameter_sets, time_base, options).map_err(|e| self.decode_error(e))
    }

    fn decode_error(&self, e: crate::codec::CodecError) -> ClientError {
        ClientError::Decoder {
            url: self.shared.url.clone(),
            source: Arc::new(e),
        }
    }

    /// Flushes the current decoder (if any) and returns its delayed frames.
    fn drain_decoder(&mut self) -> Result<Vec<Frame>, ClientError> {
        let Some((_, decoder)) = self.decoder.as_mut() else {
            return Ok(Vec::new());
        };
        decoder.flush().map_err(|e| self.decode_error(e))
    }

    /// At the end: the delayed frames go out too.
    fn flush_decoder(&mut self) -> Result<(), ClientError> {
        let frames = self.drain_decoder()?;
        self.decoder = None;
        self.deliver_all(frames);
        Ok(())
    }

    fn deliver_all(&mut self, frames: Vec<Frame>) {
        for frame in frames {
            if let Some(frame) = self.accept(frame) {
                self.sink.deliver(frame, &self.shared.stop);
            }
        }
    }

    /// Counts, renumbers and decimates a decoded frame; puts a kept one into the ring and
    /// returns it for the consumer.
    fn accept(&mut self, mut frame: Frame) -> Option<Frame> {
        frame.index = self.index;
        self.index += 1;
        let keep = self.decimator.keep(frame.pts, frame.time_base);
        {
            let mut state = self.shared.state();
            state.counters.frames_decoded += 1;
            if keep {
                state.counters.frames_delivered += 1;
            } else {
                state.counters.frames_dropped += 1;
            }
        }
        if !keep {
            return None;
        }
        let mut ring = self.shared.ring();
        while ring.len() >= self.options.cache_size() {
            ring.pop_front();
        }
        ring.push_back(frame.clone());
        Some(frame)
    }

    /// Writes an access unit to the Annex B recording, preceded by the parameter sets when
    /// they are new.
    fn record(&mut self, track: &VideoTrack, au: &AccessUnit) -> Result<(), ClientError> {
        let Some(writer) = self.recorder.as_mut() else {
            return Ok(());
        };
        let mut buf = bytes::BytesMut::with_capacity(au.payload_len() + 64);
        let new_track = self
            .recorded_track
            .as_ref()
            .is_none_or(|t| t.sps != track.sps || t.pps != track.pps);
        if new_track {
            write_annexb([&track.sps, &track.pps], &mut buf);
            self.recorded_track = Some(track.clone());
        }
        write_annexb(&au.nalus, &mut buf);
        writer.write_all(&buf).map_err(|e| ClientError::Record {
            url: self.shared.url.clone(),
            source: Arc::new(e),
        })
    }

    fn finish_recording(&mut self) -> Result<(), ClientError> {
        let video = match self.recorder.take() {
            Some(mut writer) => writer.flush().map_err(|e| ClientError::Record {
                url: self.shared.url.clone(),
                source: Arc::new(e),
            }),
            None => Ok(()),
        };
        let audio = match self.adts.take() {
            Some(mut writer) => writer.flush().map_err(|e| ClientError::RecordAudio {
                url: self.shared.url.clone(),
                source: Arc::new(e),
            }),
            None => Ok(()),
        };
        video.and(audio)
    }

    /// A new audio track. The ADTS recording needs AAC that ADTS can describe: anything else
    /// fails the pipeline with the reason (an ADTS header has no room for another codec, nor
    /// for object types above 4 or an explicit sampling frequency, ISO/IEC 14496-3 §1.A.2.2.1).
    fn on_audio_track(&mut self, track: AudioTrack) -> Result<(), ClientError> {
        if self.adts.is_some() {
            let unsupported = |reason: String| ClientError::AdtsUnsupported {
                url: self.shared.url.clone(),
                reason,
            };
            if track.codec != AudioCodec::Aac {
                return Err(unsupported(format!(
                    "the stream's audio is {}, not AAC",
                    track.codec
                )));
            }
            let config = track
                .aac_config()
                .ok_or_else(|| unsupported("its AudioSpecificConfig does not parse".into()))?;
            // Probe the header once, so the error names the reason before any frame.
            write_adts(&config, &[], &mut bytes::BytesMut::new())
                .map_err(|e| unsupported(e.to_string()))?;
            self.adts_config = Some(config);
        }
        self.audio_track = Some(track);
        Ok(())
    }

    /// An audio frame: into the ADTS recording, then to the audio subscriber.
    fn on_audio(&mut self, frame: AudioFrame) -> Result<(), ClientError> {
        if self.audio_track.is_none() {
            return Ok(());
        }
        if let (Some(writer), Some(config)) = (self.adts.as_mut(), self.adts_config.as_ref()) {
            let mut buf = bytes::BytesMut::with_capacity(frame.data.len() + 9);
            write_adts(config, &frame.data, &mut buf).map_err(|e| {
                ClientError::AdtsUnsupported {
                    url: self.shared.url.clone(),
                    reason: e.to_string(),
                }
            })?;
            writer
                .write_all(&buf)
                .map_err(|e| ClientError::RecordAudio {
                    url: self.shared.url.clone(),
                    source: Arc::new(e),
                })?;
        }
        self.audio_sink.deliver(frame, &self.shared.stop);
        Ok(())
    }
}

/// Arrival times of the access units: the first, the last, and how many.
#[derive(Debug, Default, Clone, Copy)]
struct Arrivals {
    first: Option<Instant>,
    last: Option<Instant>,
    count: u64,
}

impl Arrivals {
    fn record(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.count += 1;
    }

    /// True when nothing arrived for [`QUIET_AFTER`] (or three mean arrival intervals):
    /// the publisher stopped sending, so everything it sent has been received. Servers that
    /// relay a live stream often never signal its end (GStreamer's RTSP relay does not).
    fn quiet(&self, now: Instant) -> bool {
        let (Some(first), Some(last)) = (self.first, self.last) else {
            return false;
        };
        let intervals = u32::try_from(self.count.saturating_sub(1).max(1)).unwrap_or(u32::MAX);
        let mean = last.saturating_duration_since(first) / intervals;
        now.saturating_duration_since(last) >= QUIET_AFTER.max(mean * 3)
    }
}

/// Decimation to the target frame rate by presentation time, with the shared
/// [`FrameRateConverter`]: frames are only ever dropped; each decoded frame is delivered at most
/// once.
#[derive(Debug, Clone)]
pub(crate) struct Decimator(Option<FrameRateConverter>);

impl Decimator {
    pub(crate) fn new(target_fps: Option<f64>) -> Self {
        Decimator(
            target_fps
                .and_then(Rational::from_f64_thousandths)
                .and_then(FrameRateConverter::new),
        )
    }

    /// Whether to keep a frame presented at `pts` ticks of `time_base`.
    pub(crate) fn keep(&mut self, pts: i64, time_base: Rational) -> bool {
        match &mut self.0 {
            Some(c) if time_base.is_valid() => c.keep(pts, time_base),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::codec::PixelLayout;

    #[test]
    fn a_stream_is_quiet_after_half_a_second_or_three_mean_intervals() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut a = Arrivals::default();
        assert!(
            !a.quiet(t0 + ms(10_000)),
            "nothing arrived: not known to be quiet"
        );
        // 30 fps.
        for i in 0..30 {
            a.record(t0 + ms(i * 33));
        }
        let last = t0 + ms(29 * 33);
        assert!(!a.quiet(last + ms(499)));
        assert!(a.quiet(last + ms(500)));
        // One frame every 2 s: quiet only after 6 s.
        let mut a = Arrivals::default();
        for i in 0..4 {
            a.record(t0 + ms(i * 2000));
        }
        assert!(!a.quiet(t0 + ms(6000 + 5999)));
        assert!(a.quiet(t0 + ms(6000 + 6000)));
    }

    #[test]
    fn decimates_by_the_shared_schedule_and_keeps_everything_without_a_target() {
        let mut d = Decimator::new(Some(10.0));
        let ms = Rational::MILLIS;
        let kept = (0..300).filter(|i| d.keep(i * 1000 / 30, ms)).count();
        assert_eq!(kept, 100);
        let mut d = Decimator::new(None);
        assert!((0..10).all(|i| d.keep(i, ms)));
    }

    fn frame(pts: i64) -> Frame {
        Frame::from_packed(
            PixelLayout::Rgb24,
            2,
            2,
            vec![0u8; 12],
            pts,
            Rational::MILLIS,
        )
        .unwrap()
    }

    /// How long a check may take beyond what it waits for: generous, the machine may be busy.
    const SLACK: Duration = Duration::from_millis(700);

    #[test]
    fn a_stop_interrupts_a_delivery_waiting_for_room() {
        let stop = Arc::new(Stop::new());
        let (tx, rx) = cb::bounded(1);
        assert!(deliver_blocking(&tx, frame(0), &stop));
        // The channel is full and nobody reads: the next delivery waits.
        let (done_tx, done_rx) = cb::bounded(1);
        let waiting = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let delivered = deliver_blocking(&tx, frame(1), &stop);
                let _ = done_tx.send(Instant::now());
                delivered
            })
        };
        assert!(
            done_rx.recv_timeout(Duration::from_millis(400)).is_err(),
            "the delivery did not wait for room"
        );
        let stopped_at = Instant::now();
        stop.request();
        let returned_at = done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            returned_at.duration_since(stopped_at) <= STOPPED_DELIVERY_WAIT + SLACK,
            "the stop took {:?} to interrupt the delivery",
            returned_at.duration_since(stopped_at)
        );
        assert!(!waiting.join().unwrap(), "the frame was not delivered");
        assert_eq!(rx.try_recv().unwrap().pts, 0);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_waiting_delivery_goes_through_when_the_reader_takes_a_frame() {
        let stop = Stop::new();
        let (tx, rx) = cb::bounded(1);
        assert!(deliver_blocking(&tx, frame(0), &stop));
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let first = rx.recv().unwrap();
            let second = rx.recv().unwrap();
            (first.pts, second.pts)
        });
        assert!(deliver_blocking(&tx, frame(1), &stop));
        assert_eq!(reader.join().unwrap(), (0, 1));
        // After a stop a delivery still goes through while there is room, and a gone reader
        // ends it at once.
        stop.request();
        let (tx, rx) = cb::bounded(1);
        assert!(deliver_blocking(&tx, frame(2), &stop));
        drop(rx);
        let started = Instant::now();
        assert!(!deliver_blocking(&tx, frame(3), &stop));
        assert!(started.elapsed() < SLACK);
    }

    #[test]
    fn a_stop_wakes_async_waiters_and_is_seen_at_once_later() {
        let stop = Stop::new();
        let mut early = stop.watch();
        assert!(!stop.is_requested());
        let waiter = std::thread::spawn(move || {
            futures::executor::block_on(requested(&mut early));
        });
        stop.request();
        waiter.join().unwrap();
        let mut late = stop.watch();
        futures::executor::block_on(requested(&mut late));
        assert!(stop.is_requested());
        stop.request();
    }
}
