//! [`Server`]: the blocking face of the push pipeline.

use std::fmt;

use crate::pacer::Clock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use crate::codec::{EncodedPacket, Encoder, EncoderConfig, PixelLayout};
use crate::runtime;
use crate::transport::{AccessUnit, Media, PublishError, Publisher, Track};

use super::core::{encoded_to_au, Core, Outlet, Wait};
use super::{
    FrameRef, KeyFrameRequest, PacketStream, ServerConfig, ServerError, ServerStats, VideoSource,
};

/// The push pipeline with mpegCoder's blocking API: encoder (or passthrough), pacer,
/// publisher. Encoding and pacing run on the calling thread; the session runs on the
/// process-wide runtime of the blocking API, so the server works from plain threads and,
/// without panicking, from inside a tokio runtime (where [`crate::AsyncServer`] is the better
/// fit: these calls block the thread that makes them).
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
///
/// Dropping a server without [`close`](Self::close) ends the session in the background
/// (without flushing the encoder).
pub struct Server {
    outlet: Outlet,
    encoder: Option<Encoder>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("url", &self.outlet.url)
            .field("codec", &self.outlet.core.config.codec())
            .finish_non_exhaustive()
    }
}

/// Opens the encoder on a short-lived thread of lowered priority, so that the worker threads
/// libx264 starts there inherit it and yield to the thread that sends frames on time (see
/// [`crate::priority`]); the caller's own priority is untouched.
pub(super) fn open_encoder_in_background(config: &EncoderConfig) -> Result<Encoder, ServerError> {
    std::thread::scope(|scope| {
        let opener = std::thread::Builder::new()
            .name("mpegcoder-encoder".into())
            .spawn_scoped(scope, || {
                crate::priority::lower_current_thread();
                Encoder::new(config.clone())
            })
            .map_err(|e| ServerError::Runtime {
                what: "encoder thread",
                source: Arc::new(e),
            })?;
        match opener.join() {
            Ok(result) => Ok(result?),
            Err(_) => Err(ServerError::Runtime {
                what: "encoder thread",
                source: Arc::new(std::io::Error::other(
                    "the thread opening the encoder panicked",
                )),
            }),
        }
    })
}

/// Connects every destination on the runtime while this thread watches `stop`.
fn connect_unless_stopped(
    handle: &tokio::runtime::Handle,
    config: &ServerConfig,
    tracks: &Arc<[Track]>,
    stop: &AtomicBool,
) -> Result<Vec<Result<Publisher, PublishError>>, ServerError> {
    let (tx, rx) = sync_channel(1);
    let connecting = Outlet::connect_all(config, tracks);
    let task = handle.spawn(async move {
        let _ = tx.send(connecting.await);
    });
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(connected) => return Ok(connected),
            Err(RecvTimeoutError::Timeout) => {
                if stop.load(Ordering::Relaxed) {
                    task.abort();
                    return Err(ServerError::Interrupted);
                }
            }
            // The task ended without an answer: it panicked (passed on, as `runtime::run`
            // does), or the runtime is going away.
            Err(RecvTimeoutError::Disconnected) => {
                return match runtime::wait(task) {
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    _ => Err(ServerError::Runtime {
                        what: "network runtime",
                        source: Arc::new(std::io::Error::other(
                            "the network runtime is shutting down",
                        )),
                    }),
                };
            }
        }
    }
}

impl Server {
    /// Opens the server: starts the encoder when it encodes (its SPS/PPS describe the stream),
    /// connects, announces or publishes, and marks the start time (mpegCoder's
    /// `FFmpegSetup`). The pacer's clock starts at the first frame that leaves, so the
    /// encoder's lookahead delay does not count as lateness.
    pub fn open(config: ServerConfig) -> Result<Server, ServerError> {
        Server::open_with_key_frame_request(config, KeyFrameRequest::new())
    }

    /// [`Server::open`], raising `key_frames` when a destination needs a key frame: for a
    /// program that encodes the packets it serves on another thread and made the flag before
    /// the server (see [`KeyFrameRequest`]).
    pub fn open_with_key_frame_request(
        config: ServerConfig,
        key_frames: KeyFrameRequest,
    ) -> Result<Server, ServerError> {
        Server::open_inner(config, key_frames, None)
    }

    /// [`Server::open_with_key_frame_request`] that gives up when `stop` becomes true while
    /// it connects (checked every 20 ms): the connection attempts are dropped (their sockets
    /// closed; nothing was sent but the handshake) and it returns
    /// [`ServerError::Interrupted`]. Without it, a silent server holds the caller for the
    /// whole network timeout.
    pub fn open_stoppable(
        config: ServerConfig,
        key_frames: KeyFrameRequest,
        stop: &AtomicBool,
    ) -> Result<Server, ServerError> {
        Server::open_inner(config, key_frames, Some(stop))
    }

    fn open_inner(
        config: ServerConfig,
        key_frames: KeyFrameRequest,
        stop: Option<&AtomicBool>,
    ) -> Result<Server, ServerError> {
        let (encoder, stream) = match &config.video {
            VideoSource::Encode(e) => {
                let encoder = open_encoder_in_background(e)?;
                let stream = PacketStream::libx264(
                    encoder.extradata().clone(),
                    encoder.time_base(),
                    encoder.config(),
                );
                (Some(encoder), stream)
            }
            VideoSource::Packets(stream) => (None, stream.clone()),
        };
        let (tracks, time_base) = Core::tracks(&stream, &config)?;
        // Checked before connecting.
        let core = Core::new(config.clone(), time_base)?;
        let runtime_error = |e| ServerError::Runtime {
            what: "network runtime",
            source: Arc::new(e),
        };
        let handle = runtime::handle().map_err(runtime_error)?.clone();
        let tracks: Arc<[Track]> = tracks.into();
        let connected = match stop {
            Some(stop) => connect_unless_stopped(&handle, &config, &tracks, stop)?,
            None => runtime::run(Outlet::connect_all(&config, &tracks)).map_err(runtime_error)?,
        };
        let now = core.clock.now();
        let fanout = Outlet::fanout(&config, connected, tracks, &key_frames, handle, now)?;
        Ok(Server {
            outlet: Outlet::new(core, fanout, key_frames),
            encoder,
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

    /// Sends an H.264 packet at once (packet sources; see [`Server::serve_frame`]).
    pub fn serve_packet(&mut self, packet: &EncodedPacket) -> Result<(), ServerError> {
        let au = self.outlet.core.packet_to_au(packet)?;
        self.send_au(au, false)
    }

    /// Sends an H.264 packet when it is due (packet sources; see
    /// [`Server::serve_frame_block`]).
    pub fn serve_packet_block(&mut self, packet: &EncodedPacket) -> Result<(), ServerError> {
        let au = self.outlet.core.packet_to_au(packet)?;
        self.send_au(au, true)
    }

    /// Sends an audio packet at once (servers configured with
    /// [`ServerConfig::with_audio`]): an encoded frame from a demuxer or the user's own
    /// encoder, stamped in the stream's time base (or its own). AAC may come raw or with ADTS
    /// headers. Audio and video are paced on one timeline: hand them over in timestamp order
    /// across the tracks (as a muxer interleaves them; up to a second out of order is
    /// tolerated).
    ///
    /// AAC from your own encoder next to frames from a decoder:
    ///
    /// ```no_run
    /// use bytes::Bytes;
    /// use mpegcoder::codec::{Decoder, DecoderOptions, EncodedPacket, PixelLayout, Rational};
    /// use mpegcoder::{AudioStream, Server, ServerConfig};
    ///
    /// # fn aac_frames_until(_: f64) -> Vec<Bytes> { Vec::new() }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut decoder = Decoder::open(
    ///     "test-video.mp4",
    ///     DecoderOptions::default().with_output(PixelLayout::Yuv420p),
    /// )?;
    /// // The encoder's AudioSpecificConfig (AAC LC, 48 kHz, stereo); frames of 1024 samples
    /// // stamped in 1/48000.
    /// let tb = Rational::new(1, 48_000);
    /// let audio = AudioStream::aac(Bytes::from_static(&[0x11, 0x90]), tb)?;
    /// let config = ServerConfig::from_params(decoder.params(), "rtmp://localhost/live/cam")
    ///     .with_audio(Some(audio));
    /// let mut server = Server::open(config)?;
    /// let mut samples = 0i64;
    /// while let Some(frame) = decoder.next_frame()? {
    ///     server.serve_frame_block(&frame)?;
    ///     // The audio your encoder produced up to this frame's time, in order.
    ///     for data in aac_frames_until(frame.pts_seconds()) {
    ///         let packet = EncodedPacket { data, pts: samples, dts: samples, key: true,
    ///                                      duration: 1024, time_base: tb };
    ///         server.serve_audio_block(&packet)?;
    ///         samples += 1024;
    ///     }
    /// }
    /// let stats = server.close()?;
    /// println!("{} frames, {} audio frames", stats.frames_sent, stats.audio_frames_sent);
    /// # Ok(()) }
    /// ```
    /// Sends an access unit or an audio frame at once, as it is (packet sources): for units
    /// that come already split, e.g. from a [`crate::transport::pull::Puller`] relaying a
    /// live source. Its track must be one the server was opened with.
    pub fn serve_media(&mut self, media: impl Into<Media>) -> Result<(), ServerError> {
        runtime::wait(self.outlet.send(media, false, Wait::Thread))
    }

    /// Sends an access unit or an audio frame when it is due (see [`Server::serve_media`]).
    pub fn serve_media_block(&mut self, media: impl Into<Media>) -> Result<(), ServerError> {
        runtime::wait(self.outlet.send(media, true, Wait::Thread))
    }

    /// The flag by which the server asks for a key frame (see [`KeyFrameRequest`]): a
    /// program that encodes the packets it serves takes it before each frame.
    pub fn key_frame_request(&self) -> KeyFrameRequest {
        self.outlet.key_frames.clone()
    }

    pub fn serve_audio(&mut self, packet: &EncodedPacket) -> Result<(), ServerError> {
        self.send_audio(packet, false)
    }

    /// Sends an audio packet when it is due (see [`Server::serve_audio`]).
    pub fn serve_audio_block(&mut self, packet: &EncodedPacket) -> Result<(), ServerError> {
        self.send_audio(packet, true)
    }

    fn send_audio(&mut self, packet: &EncodedPacket, block: bool) -> Result<(), ServerError> {
        for frame in self.outlet.core.audio_frames(packet)? {
            runtime::wait(self.outlet.send(frame, block, Wait::Thread))?;
        }
        Ok(())
    }

    /// Half of how far the stream is ahead of the playing time, never negative: how long a
    /// caller using [`Server::serve_frame`] should sleep (mpegCoder's
    /// `getParameter('waitRef')`).
    pub fn wait_ref(&self) -> Duration {
        self.outlet.core.wait_ref()
    }

    /// Current statistics, with what the media server reported (receiver reports, status).
    pub fn stats(&self) -> ServerStats {
        self.outlet
            .stats(self.encoder.as_ref().map_or(0, Encoder::frames_in))
    }

    /// The URL published to, credentials removed.
    pub fn url(&self) -> &str {
        &self.outlet.url
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.outlet.core.config
    }

    /// Flushes every frame the encoder still holds (paced like the others, so the stream does
    /// not end in a burst), then ends the publish cleanly and waits for the server to confirm
    /// it (TEARDOWN answered; RTMP: the server closed its side), and returns the final
    /// statistics (mpegCoder's `FFmpegClose`).
    pub fn close(self) -> Result<ServerStats, ServerError> {
        match self.close_reporting() {
            (stats, None) => Ok(stats),
            (_, Some(e)) => Err(e),
        }
    }

    /// Like [`Server::close`], but with the final statistics also when some destination
    /// did not receive the stream to the end.
    pub(crate) fn close_reporting(mut self) -> (ServerStats, Option<ServerError>) {
        if let Some(encoder) = self.encoder.as_mut() {
            let tail = match encoder.finish() {
                Ok(tail) => tail,
                Err(e) => return (self.stats(), Some(e.into())),
            };
            let tb = self.outlet.core.time_base;
            for p in &tail {
                if let Err(e) = self.send_au(encoded_to_au(p, tb), true) {
                    return (self.stats(), Some(e));
                }
            }
        }
        let frames_encoded = self.encoder.as_ref().map_or(0, Encoder::frames_in);
        let closed = runtime::wait(self.outlet.close(frames_encoded));
        (closed.stats, closed.error)
    }

    fn serve(&mut self, frame: FrameRef<'_>, block: bool) -> Result<(), ServerError> {
        let encoder = self.encoder.as_mut().ok_or(ServerError::WrongInput(
            "this server sends packets (codec copy, or encoded elsewhere): use serve_packet",
        ))?;
        if self.outlet.key_frames.take() {
            encoder.force_key_frame();
        }
        let packets = match frame {
            FrameRef::Frame(f) => encoder.encode(f)?,
            FrameRef::Rgb24(data) => encoder.encode_buffer(PixelLayout::Rgb24, data, None)?,
            FrameRef::Yuv420p(data) => encoder.encode_buffer(PixelLayout::Yuv420p, data, None)?,
        };
        let tb = self.outlet.core.time_base;
        for p in &packets {
            self.send_au(encoded_to_au(p, tb), block)?;
        }
        Ok(())
    }

    /// Paces with a thread sleep on this thread, then hands the unit to the session.
    fn send_au(&mut self, au: AccessUnit, block: bool) -> Result<(), ServerError> {
        runtime::wait(self.outlet.send(au, block, Wait::Thread))
    }
}
