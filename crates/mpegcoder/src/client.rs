//! [`Client`]: the pull pipeline (mpegCoder's `MpegClient`). A background worker pulls H.264
//! over RTSP or RTMP ([`crate::transport::pull::Puller`]), decodes it with FFmpeg
//! ([`crate::codec::PacketDecoder`]), optionally decimates it to a target frame rate, and keeps
//! the newest decoded frames in a ring that any thread can read.
//!
//! Two ways to consume frames:
//! - [`Client::extract_frames`]: the newest `read_size` frames of the ring, oldest first — for
//!   consumers that want "what is on screen now" and may skip frames.
//! - [`Client::subscribe`]: every frame, in order, through a bounded channel — for consumers
//!   that must not miss one (hashing, recording). When the channel is full the worker waits,
//!   which slows the network read (TCP flow control) rather than dropping frames.

use std::collections::VecDeque;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::codec::{CodecError, Frame, PacketDecoder, PacketDecoderOptions, PixelLayout, Rational};
use crate::transport::h264::write_annexb;
use crate::transport::pull::{check_url, PullError, PullProtocol, PullStats, Puller};
use crate::transport::{AccessUnit, VideoTrack};
use mpegcoder_types::FrameRateConverter;

pub use crate::transport::pull::PullOptions;

/// How long the worker keeps trying to hand flushed frames to a full subscriber channel after a
/// stop was requested (nobody may be reading any more).
const FLUSH_DELIVERY_BUDGET: Duration = Duration::from_millis(500);
/// How often a worker waiting for room in the subscriber channel looks again.
const DELIVERY_POLL: Duration = Duration::from_millis(2);

/// Options of a [`Client`]: a struct literal with `..Default::default()` (plain data, like
/// mpegCoder's `setParameter` keywords).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// Network options: RTSP transport (TCP default, or UDP) and the connect, setup and idle
    /// timeouts (5 s, 10 s, 10 s).
    pub pull: PullOptions,
    /// How many of the newest decoded frames the ring keeps (mpegCoder's `cacheSize`; default
    /// 30). At least 1.
    pub cache_size: usize,
    /// Decimate to this frame rate (frames per second), by presentation time: frames are
    /// dropped, never duplicated. `None` keeps every frame.
    pub target_fps: Option<f64>,
    /// Output width (with only one of width/height the other keeps the aspect ratio).
    pub width_dst: Option<u32>,
    /// Output height.
    pub height_dst: Option<u32>,
    /// Pixel layout of the frames handed out (default RGB24).
    pub output: PixelLayout,
    /// Decode at all (default true). Without decoding, only the access units are counted and
    /// recorded ([`Client::record_annexb`]); no frames are produced.
    pub decode: bool,
    /// Decoder threads (default 1: frame threading adds a frame of delay per thread; 0 =
    /// automatic).
    pub decoder_threads: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            pull: PullOptions::default(),
            cache_size: 30,
            target_fps: None,
            width_dst: None,
            height_dst: None,
            output: PixelLayout::Rgb24,
            decode: true,
            decoder_threads: 1,
        }
    }
}

impl ClientOptions {
    /// Checks the values; the message says which one is wrong.
    pub fn validate(&self) -> Result<(), String> {
        self.pull.validate().map_err(|e| e.to_string())?;
        if self.cache_size == 0 {
            return Err("cache_size is zero".into());
        }
        if let Some(fps) = self.target_fps {
            if !(fps.is_finite() && fps > 0.0) {
                return Err(format!("target_fps {fps} is not a positive frame rate"));
            }
        }
        for (name, v) in [
            ("width_dst", self.width_dst),
            ("height_dst", self.height_dst),
        ] {
            if v == Some(0) {
                return Err(format!("{name} is zero"));
            }
        }
        Ok(())
    }
}

/// An error of the pull pipeline.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The network side failed (connection, protocol, timeout, end of data).
    #[error(transparent)]
    Pull(#[from] PullError),
    /// The decoder could not be created or failed beyond recovery.
    #[error("cannot decode the video of {url}: {source}")]
    Decoder {
        /// The URL, credentials removed.
        url: String,
        /// The codec layer's error.
        #[source]
        source: Arc<CodecError>,
    },
    /// Writing the received access units ([`Client::record_annexb`]) failed.
    #[error("cannot write the received video of {url}: {source}")]
    Record {
        /// The URL, credentials removed.
        url: String,
        /// The writer's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The options are not usable.
    #[error("invalid client options: {0}")]
    InvalidOptions(String),
    /// The call is not allowed now (e.g. `subscribe` after `start`, `start` twice).
    #[error("not allowed: {0}")]
    InvalidState(&'static str),
    /// The worker thread or its runtime could not be started.
    #[error("cannot start the pull worker: {0}")]
    Worker(Arc<std::io::Error>),
    /// [`Client::wait_ready`] gave up.
    #[error("the stream's parameters were not known within {0:?}")]
    NotReady(Duration),
}

/// What the worker is doing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientStatus {
    /// [`Client::start`] was not called yet.
    NotStarted,
    /// Connecting and setting up the session.
    Connecting,
    /// Receiving and decoding.
    Running,
    /// The stream ended (the server said so, or closed the connection after playing).
    Ended,
    /// Stopped by [`Client::terminate`] (or [`Client::request_stop`]).
    Stopped,
    /// The worker failed; frames received before stay readable.
    Failed(ClientError),
}

impl ClientStatus {
    /// True once the worker has finished (ended, stopped or failed).
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            ClientStatus::Ended | ClientStatus::Stopped | ClientStatus::Failed(_)
        )
    }

    /// The error of a failed worker.
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
        }
    }
}

/// Counters of a [`Client`].
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
    /// Seconds between the first and the last access unit's timestamp.
    pub stream_duration_s: f64,
    /// Frames the decoder produced.
    pub frames_decoded: u64,
    /// Decoded frames dropped by decimation ([`ClientOptions::target_fps`]).
    pub frames_dropped: u64,
    /// Frames put into the ring (decoded minus dropped).
    pub frames_delivered: u64,
    /// Access units the decoder rejected (skipped; decoding went on).
    pub decode_errors: u64,
}

/// Every frame the worker delivers, in order: see [`Client::subscribe`]. Iterating ends when
/// the worker has finished and every frame was taken; then [`Client::status`] says why.
#[derive(Debug)]
pub struct FrameReceiver {
    rx: Receiver<Frame>,
}

impl FrameReceiver {
    /// Waits up to `timeout` for the next frame. `Err(Timeout)` when none came in time,
    /// `Err(Disconnected)` when the worker has finished and every frame was taken.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Frame, RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }

    /// The next frame if one is waiting.
    pub fn try_recv(&self) -> Option<Frame> {
        self.rx.try_recv().ok()
    }
}

impl Iterator for FrameReceiver {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        self.rx.recv().ok()
    }
}

/// State shared between the client and its worker.
#[derive(Debug)]
struct Shared {
    ring: Mutex<VecDeque<Frame>>,
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    stop_notify: tokio::sync::Notify,
}

#[derive(Debug)]
struct State {
    status: ClientStatus,
    params: Option<StreamParams>,
    counters: ClientCounters,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // The worker never panics while holding the lock in a way that leaves the state
        // inconsistent; keep going with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ring(&self) -> MutexGuard<'_, VecDeque<Frame>> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_status(&self, status: ClientStatus) {
        self.state().status = status;
        self.changed.notify_all();
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Pulls a live H.264 stream (RTSP or RTMP), decodes it on a background thread and keeps the
/// newest frames (mpegCoder's `MpegClient`).
///
/// ```no_run
/// use std::time::Duration;
/// use mpegcoder::{Client, ClientOptions};
///
/// # fn main() -> Result<(), mpegcoder::ClientError> {
/// let options = ClientOptions { cache_size: 10, target_fps: Some(5.0), ..Default::default() };
/// let mut client = Client::new("rtsp://user:pass@camera.local/stream1", options)?;
/// client.start()?;
/// let params = client.wait_ready(Duration::from_secs(15))?;
/// println!("{}x{} at {} fps", params.width, params.height, params.fps);
/// std::thread::sleep(Duration::from_secs(2));
/// for frame in client.extract_frames(4) {
///     // RGB24, oldest first: frame.data holds width * height * 3 bytes.
///     println!("frame {} at {:.3} s", frame.index, frame.pts_seconds());
/// }
/// client.terminate();
/// # Ok(())
/// # }
/// ```
///
/// `Client` is `Send` and `Sync`: one thread can extract frames while another watches the
/// status. Dropping it stops the worker.
pub struct Client {
    /// The URL as given (with any credentials): only the worker uses it.
    target: String,
    /// The URL without credentials.
    url: String,
    protocol: PullProtocol,
    options: ClientOptions,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    subscriber: Option<SyncSender<Frame>>,
    /// Behind a mutex only so that `Client` is `Sync` (it is moved to the worker at start).
    recorder: Mutex<Option<Box<dyn Write + Send>>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("options", &self.options)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `url` (`rtsp://…` or `rtmp://…`). Checks the URL and the options; does
    /// not connect (see [`start`](Self::start)).
    pub fn new(url: &str, options: ClientOptions) -> Result<Client, ClientError> {
        options.validate().map_err(ClientError::InvalidOptions)?;
        let (protocol, shown) = check_url(url)?;
        Ok(Client {
            target: url.trim().to_string(),
            url: shown,
            protocol,
            options,
            shared: Arc::new(Shared {
                ring: Mutex::new(VecDeque::new()),
                state: Mutex::new(State {
                    status: ClientStatus::NotStarted,
                    params: None,
                    counters: ClientCounters::default(),
                }),
                changed: Condvar::new(),
                stop: AtomicBool::new(false),
                stop_notify: tokio::sync::Notify::new(),
            }),
            worker: None,
            subscriber: None,
            recorder: Mutex::new(None),
        })
    }

    /// The URL without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The options.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Every delivered frame (after decimation), in order, through a channel of `capacity`
    /// frames. Call before [`start`](Self::start). While the channel is full the worker waits
    /// (and so reads the network more slowly); frames are never dropped for a live receiver,
    /// except the decoder's last frames at the end of a stream when nobody reads them for a
    /// while.
    pub fn subscribe(&mut self, capacity: usize) -> Result<FrameReceiver, ClientError> {
        if self.worker.is_some() {
            return Err(ClientError::InvalidState("subscribe after start"));
        }
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        self.subscriber = Some(tx);
        Ok(FrameReceiver { rx })
    }

    /// Writes what arrives as a raw H.264 Annex B stream: the parameter sets first (again
    /// whenever they change), then every access unit from the first key frame on. Call before
    /// [`start`](Self::start). The writer is flushed when the worker finishes.
    pub fn record_annexb(
        &mut self,
        writer: impl Write + Send + 'static,
    ) -> Result<(), ClientError> {
        if self.worker.is_some() {
            return Err(ClientError::InvalidState("record_annexb after start"));
        }
        *self.recorder.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(writer));
        Ok(())
    }

    /// Starts the background worker (a thread owning a single-threaded tokio runtime) and
    /// returns at once; connection errors show up in [`status`](Self::status).
    pub fn start(&mut self) -> Result<(), ClientError> {
        if self.worker.is_some() {
            return Err(ClientError::InvalidState("start twice"));
        }
        self.shared.set_status(ClientStatus::Connecting);
        let worker = Worker {
            url: self.target.clone(),
            shown: self.url.clone(),
            protocol: self.protocol,
            options: self.options.clone(),
            shared: Arc::clone(&self.shared),
            subscriber: self.subscriber.take(),
            recorder: self
                .recorder
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
            decoder: None,
            decimator: Decimator::new(self.options.target_fps),
            recorded_track: None,
            params_track: None,
            index: 0,
            arrivals: Arrivals::default(),
        };
        let handle = std::thread::Builder::new()
            .name("mpegcoder-client".into())
            .spawn(move || worker.run())
            .map_err(|e| {
                let err = ClientError::Worker(Arc::new(e));
                self.shared.set_status(ClientStatus::Failed(err.clone()));
                err
            })?;
        self.worker = Some(handle);
        Ok(())
    }

    /// The worker's status.
    pub fn status(&self) -> ClientStatus {
        self.shared.state().status.clone()
    }

    /// The stream's parameters, once the video track is known.
    pub fn params(&self) -> Option<StreamParams> {
        self.shared.state().params.clone()
    }

    /// Counters so far.
    pub fn counters(&self) -> ClientCounters {
        self.shared.state().counters.clone()
    }

    /// Waits up to `timeout` for the stream's parameters. Fails with the worker's error if it
    /// failed first, or [`ClientError::NotReady`].
    pub fn wait_ready(&self, timeout: Duration) -> Result<StreamParams, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state();
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
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Waits up to `timeout` for the worker to finish (end of stream, failure, stop); returns
    /// the status then (not finished if the time ran out).
    pub fn wait_finished(&self, timeout: Duration) -> ClientStatus {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state();
        loop {
            if state.status.is_finished() || matches!(state.status, ClientStatus::NotStarted) {
                return state.status.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                return state.status.clone();
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// The newest `read_size` frames of the ring (fewer if it holds fewer), oldest first
    /// (mpegCoder's `ExtractFrame`). The ring is not emptied: a later call returns the same
    /// frames if none arrived in between; compare [`Frame::index`] to see which are new.
    /// Cheap: frames share their pixel buffers.
    pub fn extract_frames(&self, read_size: usize) -> Vec<Frame> {
        let ring = self.shared.ring();
        let skip = ring.len().saturating_sub(read_size);
        ring.iter().skip(skip).cloned().collect()
    }

    /// Asks the worker to stop without waiting: it finishes with [`ClientStatus::Stopped`]
    /// (unless it had already finished). Frames the decoder still holds back for reordering
    /// are handed out if the stream had gone quiet (nothing for half a second, or three mean
    /// frame intervals), and dropped if it was still flowing, so what was handed out has no
    /// gap. A subscriber should keep reading until its iterator ends.
    pub fn request_stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.stop_notify.notify_one();
    }

    /// Stops the worker and waits for it (mpegCoder's `terminate`). Frames already in the ring
    /// stay readable. Returns the final status. Idempotent.
    pub fn terminate(&mut self) -> ClientStatus {
        self.request_stop();
        if let Some(handle) = self.worker.take() {
            if handle.join().is_err() {
                let err = ClientError::Worker(Arc::new(std::io::Error::other(
                    "the pull worker panicked",
                )));
                self.shared.set_status(ClientStatus::Failed(err));
            }
        }
        self.status()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Why the worker's receive loop ended without an error.
enum End {
    Ended,
    Stopped,
}

/// The worker: everything the background thread owns.
struct Worker {
    url: String,
    shown: String,
    protocol: PullProtocol,
    options: ClientOptions,
    shared: Arc<Shared>,
    subscriber: Option<SyncSender<Frame>>,
    recorder: Option<Box<dyn Write + Send>>,
    decoder: Option<(VideoTrack, PacketDecoder)>,
    decimator: Decimator,
    recorded_track: Option<VideoTrack>,
    /// The track the published parameters describe.
    params_track: Option<VideoTrack>,
    /// Index of the next decoded frame (counted from the first key frame).
    index: u64,
    /// When access units arrived, to tell on a stop whether the stream had gone quiet.
    arrivals: Arrivals,
}

/// Arrival times of the access units: the first, the last, and how many.
#[derive(Debug, Default, Clone, Copy)]
struct Arrivals {
    first: Option<Instant>,
    last: Option<Instant>,
    count: u64,
}

/// A stream counts as quiet after this long without an access unit, or three of its mean
/// arrival intervals if that is longer (slow streams).
const QUIET_AFTER: Duration = Duration::from_millis(500);

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

impl Worker {
    fn run(mut self) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                self.finish(Err(ClientError::Worker(Arc::new(e))));
                return;
            }
        };
        let result = runtime.block_on(self.receive());
        drop(runtime);
        // The decoder's delayed frames (held back for B-frame reordering) go out when the
        // stream ended, or had gone quiet before a stop or a stall (everything sent has
        // arrived). After a stop or a failure mid-stream, the frames shown between them and
        // the last frame handed out may never have arrived, and a consumer must not see a gap
        // (a reference frame right after frames it never got): they are dropped. Timestamps
        // cannot decide this: relays re-stamp packets by arrival, in decoding order.
        let complete = matches!(result, Ok(End::Ended)) || self.arrivals.quiet(Instant::now());
        let flushed = if complete {
            self.flush_decoder()
        } else {
            self.decoder = None;
            Ok(())
        };
        let result = match (result, flushed) {
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            (Ok(end), Ok(())) => Ok(end),
        };
        let recorded = self.finish_recording();
        let result = match (result, recorded) {
            (Ok(_), Err(e)) => Err(e),
            (r, _) => r,
        };
        self.finish(result);
    }

    /// Sets the final status, then lets subscribers see the end (status first, so a receiver
    /// that sees its iterator end reads the final status).
    fn finish(&mut self, result: Result<End, ClientError>) {
        let status = match result {
            Ok(End::Ended) => ClientStatus::Ended,
            Ok(End::Stopped) => ClientStatus::Stopped,
            Err(e) => ClientStatus::Failed(e),
        };
        self.shared.set_status(status);
        self.subscriber = None;
    }

    async fn receive(&mut self) -> Result<End, ClientError> {
        let shared = Arc::clone(&self.shared);
        if shared.stopping() {
            return Ok(End::Stopped);
        }
        let connect = Puller::connect(&self.url, self.options.pull.clone());
        let mut puller = tokio::select! {
            p = connect => p?,
            _ = shared.stop_notify.notified() => return Ok(End::Stopped),
        };
        self.publish_progress(&puller);
        shared.set_status(ClientStatus::Running);
        let result = self.receive_from(&mut puller).await;
        // TEARDOWN / deleteStream, bounded; also after a stop that cancelled a read.
        puller.close().await;
        result
    }

    async fn receive_from(&mut self, puller: &mut Puller) -> Result<End, ClientError> {
        let shared = Arc::clone(&self.shared);
        loop {
            if shared.stopping() {
                return Ok(End::Stopped);
            }
            let next = tokio::select! {
                n = puller.next() => n,
                _ = shared.stop_notify.notified() => return Ok(End::Stopped),
            };
            self.publish_progress(puller);
            match next {
                Ok(Some(au)) => self.on_access_unit(puller, &au).await?,
                Ok(None) => return Ok(End::Ended),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Copies the puller's counters and the parameters into the shared state.
    fn publish_progress(&mut self, puller: &Puller) {
        let stats: &PullStats = puller.stats();
        let mut state = self.shared.state();
        let c = &mut state.counters;
        c.access_units = stats.access_units;
        c.key_frames = stats.key_frames;
        c.bytes = stats.bytes;
        c.skipped_before_key = stats.skipped_before_key;
        c.lost_packets = stats.lost_packets;
        c.stream_duration_s = stats.duration_s();
        drop(state);
        let Some(track) = puller.track() else {
            return;
        };
        if self.params_track.as_ref() == Some(track) {
            return;
        }
        self.params_track = Some(track.clone());
        let params = StreamParams::from_track(&self.shown, self.protocol, track);
        self.shared.state().params = Some(params);
        self.shared.changed.notify_all();
    }

    async fn on_access_unit(
        &mut self,
        puller: &Puller,
        au: &AccessUnit,
    ) -> Result<(), ClientError> {
        let Some(track) = puller.track().cloned() else {
            // The puller hands out nothing before the track is known.
            return Ok(());
        };
        self.arrivals.record(Instant::now());
        self.record(&track, au)?;
        if !self.options.decode {
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
            self.deliver_all(frames).await;
            self.decoder = Some((track.clone(), self.new_decoder(&track, au)?));
        }
        let Some((_, decoder)) = self.decoder.as_mut() else {
            return Ok(());
        };
        let frames = match decoder.decode(&au.to_annexb(), au.pts) {
            Ok(frames) => frames,
            Err(_) => {
                self.shared.state().counters.decode_errors += 1;
                return Ok(());
            }
        };
        self.deliver_all(frames).await;
        Ok(())
    }

    fn new_decoder(
        &self,
        track: &VideoTrack,
        au: &AccessUnit,
    ) -> Result<PacketDecoder, ClientError> {
        let mut parameter_sets = bytes::BytesMut::new();
        write_annexb([&track.sps, &track.pps], &mut parameter_sets);
        let options = PacketDecoderOptions::default()
            .with_output(self.options.output)
            .with_width_dst(self.options.width_dst)
            .with_height_dst(self.options.height_dst)
            .with_threads(self.options.decoder_threads);
        let time_base = Rational::new(au.time_base.num, au.time_base.den);
        PacketDecoder::new(&parameter_sets, time_base, options).map_err(|e| ClientError::Decoder {
            url: self.shown.clone(),
            source: Arc::new(e),
        })
    }

    /// Flushes the current decoder (if any) and returns its delayed frames.
    fn drain_decoder(&mut self) -> Result<Vec<Frame>, ClientError> {
        let Some((_, decoder)) = self.decoder.as_mut() else {
            return Ok(Vec::new());
        };
        decoder.flush().map_err(|e| ClientError::Decoder {
            url: self.shown.clone(),
            source: Arc::new(e),
        })
    }

    /// At the end: delayed frames go out too (with a bounded wait for a full subscriber).
    fn flush_decoder(&mut self) -> Result<(), ClientError> {
        let frames = self.drain_decoder()?;
        self.decoder = None;
        let deadline = Instant::now() + FLUSH_DELIVERY_BUDGET;
        for frame in frames {
            if let Some(frame) = self.accept(frame) {
                self.deliver_blocking(frame, deadline);
            }
        }
        Ok(())
    }

    async fn deliver_all(&mut self, frames: Vec<Frame>) {
        for frame in frames {
            if let Some(frame) = self.accept(frame) {
                self.deliver(frame).await;
            }
        }
    }

    /// Counts, renumbers and decimates a decoded frame; puts a kept one into the ring and
    /// returns it for the subscriber.
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
        {
            let mut ring = self.shared.ring();
            while ring.len() >= self.options.cache_size {
                ring.pop_front();
            }
            ring.push_back(frame.clone());
        }
        Some(frame)
    }

    /// Hands a frame to the subscriber, waiting (asynchronously) while its channel is full.
    /// Gives up when the receiver is gone or a stop was requested.
    async fn deliver(&mut self, frame: Frame) {
        let Some(tx) = self.subscriber.as_ref() else {
            return;
        };
        let mut frame = frame;
        loop {
            match tx.try_send(frame) {
                Ok(()) => return,
                Err(TrySendError::Disconnected(_)) => {
                    self.subscriber = None;
                    return;
                }
                Err(TrySendError::Full(f)) => {
                    if self.shared.stopping() {
                        // Keep it for the bounded flush wait instead of spinning here.
                        let deadline = Instant::now() + FLUSH_DELIVERY_BUDGET;
                        self.deliver_blocking(f, deadline);
                        return;
                    }
                    frame = f;
                    tokio::time::sleep(DELIVERY_POLL).await;
                }
            }
        }
    }

    /// Hands a frame to the subscriber, waiting at most until `deadline` for room.
    fn deliver_blocking(&mut self, frame: Frame, deadline: Instant) {
        let Some(tx) = self.subscriber.as_ref() else {
            return;
        };
        let mut frame = frame;
        loop {
            match tx.try_send(frame) {
                Ok(()) => return,
                Err(TrySendError::Disconnected(_)) => {
                    self.subscriber = None;
                    return;
                }
                Err(TrySendError::Full(f)) => {
                    if Instant::now() >= deadline {
                        return;
                    }
                    frame = f;
                    std::thread::sleep(DELIVERY_POLL);
                }
            }
        }
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
            url: self.shown.clone(),
            source: Arc::new(e),
        })
    }

    fn finish_recording(&mut self) -> Result<(), ClientError> {
        let Some(mut writer) = self.recorder.take() else {
            return Ok(());
        };
        writer.flush().map_err(|e| ClientError::Record {
            url: self.shown.clone(),
            source: Arc::new(e),
        })
    }
}

/// Decimation to [`ClientOptions::target_fps`] by presentation time, with the shared
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

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn client_is_send_and_sync() {
        assert_send_sync::<Client>();
        assert_send_sync::<ClientStatus>();
        assert_send_sync::<StreamParams>();
    }

    #[test]
    fn rejects_bad_urls_and_options_without_connecting() {
        let e = Client::new("http://u:hunter2@host/x", ClientOptions::default()).unwrap_err();
        assert!(
            matches!(&e, ClientError::Pull(PullError::UnsupportedScheme { scheme, .. }) if scheme == "http"),
            "{e:?}"
        );
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(matches!(
            Client::new("rtmp://host/onlyapp", ClientOptions::default()),
            Err(ClientError::Pull(PullError::InvalidUrl { .. }))
        ));
        let options = ClientOptions {
            cache_size: 0,
            ..ClientOptions::default()
        };
        assert!(matches!(
            Client::new("rtsp://host/x", options),
            Err(ClientError::InvalidOptions(_))
        ));
        let options = ClientOptions {
            target_fps: Some(-1.0),
            ..ClientOptions::default()
        };
        assert!(matches!(
            Client::new("rtsp://host/x", options),
            Err(ClientError::InvalidOptions(_))
        ));
        let client = Client::new("rtsp://u:pw@host/x", ClientOptions::default()).unwrap();
        assert_eq!(client.url(), "rtsp://host/x");
        assert!(matches!(client.status(), ClientStatus::NotStarted));
        assert!(client.extract_frames(5).is_empty());
    }
}
