//! [`AsyncServer`]: the async face of the push pipeline, on the caller's tokio runtime.

use std::fmt;

use crate::pacer::Clock;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::EncodedPacket;
use crate::transport::{AccessUnit, Media, Track};

use super::core::{encoded_to_au, Core, Outlet, Wait};
use super::encoder::{EncoderThread, OwnedFrame};
use super::{
    FrameRef, KeyFrameRequest, PacketStream, ServerConfig, ServerError, ServerStats, VideoSource,
};

/// The push pipeline for async code: the same encoder, pacer and publisher as [`crate::Server`],
/// with the session's task on the caller's runtime, pacing on a precise timer
/// ([`crate::pacer::sleep_until_async`]) and libx264 on a thread of its own. Must be used
/// inside a tokio runtime.
///
/// ```no_run
/// use mpegcoder::codec::{Demuxer, OpenOptions};
/// use mpegcoder::{AsyncServer, PacketStream, ServerConfig};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// // Demuxing is blocking file I/O: keep it off the runtime's threads, and stream the packets
/// // through a bounded channel rather than reading the whole file first.
/// let open = || Demuxer::open("in.mp4", &OpenOptions::default());
/// let mut demuxer = tokio::task::spawn_blocking(open).await??;
/// let stream = PacketStream::new(demuxer.extradata().clone(), demuxer.time_base());
/// let (tx, mut packets) = tokio::sync::mpsc::channel(8);
/// let reader = tokio::task::spawn_blocking(move || {
///     while let Some(packet) = demuxer.next_packet()? {
///         if tx.blocking_send(packet).is_err() {
///             break;
///         }
///     }
///     Ok::<_, mpegcoder::codec::CodecError>(())
/// });
/// let mut server = AsyncServer::open(ServerConfig::packets(stream, "rtmp://localhost/live/cam")).await?;
/// while let Some(packet) = packets.recv().await {
///     server.serve_packet_block(&packet).await?; // waits until the packet is due
/// }
/// reader.await??;
/// let stats = server.close().await?;
/// println!("{} frames", stats.frames_sent);
/// # Ok(()) }
/// ```
///
/// Dropping it without [`close`](Self::close) ends the session in the background.
pub struct AsyncServer {
    outlet: Outlet,
    encoder: Option<EncoderThread>,
}

impl fmt::Debug for AsyncServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncServer")
            .field("url", &self.outlet.url)
            .field("codec", &self.outlet.core.config.codec())
            .finish_non_exhaustive()
    }
}

impl AsyncServer {
    /// Opens the server: starts the encoder thread when it encodes, connects, announces or
    /// publishes, and marks the start time.
    ///
    /// Outside a tokio runtime it fails with [`ServerError::Runtime`] (it does not panic).
    pub async fn open(config: ServerConfig) -> Result<AsyncServer, ServerError> {
        if let Err(e) = tokio::runtime::Handle::try_current() {
            return Err(ServerError::Runtime {
                what: "network session",
                source: Arc::new(std::io::Error::other(format!(
                    "AsyncServer::open needs a tokio runtime: {e}"
                ))),
            });
        }
        let (encoder, stream) = match &config.video {
            VideoSource::Encode(e) => {
                let (thread, opened) = EncoderThread::start(e.clone()).await?;
                let stream = PacketStream::libx264(
                    opened.extradata,
                    opened.time_base,
                    &opened.encoder_config,
                );
                (Some(thread), stream)
            }
            VideoSource::Packets(stream) => (None, stream.clone()),
        };
        let (tracks, time_base) = Core::tracks(&stream, &config)?;
        let core = Core::new(config.clone(), time_base)?;
        let tracks: Arc<[Track]> = tracks.into();
        let connected = Outlet::connect_all(&config, &tracks).await;
        let key_frames = KeyFrameRequest::new();
        let handle = tokio::runtime::Handle::current();
        let now = core.clock.now();
        let fanout = Outlet::fanout(&config, connected, tracks, &key_frames, handle, now)?;
        Ok(AsyncServer {
            outlet: Outlet::new(core, fanout, key_frames),
            encoder,
        })
    }

    /// Encodes a frame (on the encoder thread) and sends what the encoder outputs at once,
    /// keeping the lead accounted (see [`AsyncServer::wait_ref`]).
    pub async fn serve_frame<'a>(
        &mut self,
        frame: impl Into<FrameRef<'a>>,
    ) -> Result<(), ServerError> {
        let frame = OwnedFrame::of(frame.into());
        self.serve(frame, false).await
    }

    /// Encodes a frame and sends what the encoder outputs, each access unit when it is due.
    pub async fn serve_frame_block<'a>(
        &mut self,
        frame: impl Into<FrameRef<'a>>,
    ) -> Result<(), ServerError> {
        let frame = OwnedFrame::of(frame.into());
        self.serve(frame, true).await
    }

    /// Sends an H.264 packet at once (packet sources).
    pub async fn serve_packet(&mut self, packet: &EncodedPacket) -> Result<(), ServerError> {
        let au = self.outlet.core.packet_to_au(packet)?;
        self.send_au(au, false).await
    }

    /// Sends an H.264 packet when it is due (packet sources).
    pub async fn serve_packet_block(&mut self, packet: &EncodedPacket) -> Result<(), ServerError> {
        let au = self.outlet.core.packet_to_au(packet)?;
        self.send_au(au, true).await
    }

    /// Sends an access unit or an audio frame at once, as it is (see
    /// [`crate::Server::serve_media`]).
    pub async fn serve_media(&mut self, media: impl Into<Media>) -> Result<(), ServerError> {
        self.outlet.send(media, false, Wait::Async).await
    }

    /// Sends an access unit or an audio frame when it is due.
    pub async fn serve_media_block(&mut self, media: impl Into<Media>) -> Result<(), ServerError> {
        self.outlet.send(media, true, Wait::Async).await
    }

    /// The flag by which the server asks for a key frame (see [`KeyFrameRequest`]).
    pub fn key_frame_request(&self) -> KeyFrameRequest {
        self.outlet.key_frames.clone()
    }

    /// Sends an audio packet at once (see [`crate::Server::serve_audio`]).
    pub async fn serve_audio(&mut self, packet: &EncodedPacket) -> Result<(), ServerError> {
        self.send_audio(packet, false).await
    }

    /// Sends an audio packet when it is due (see [`crate::Server::serve_audio`]).
    pub async fn serve_audio_block(&mut self, packet: &EncodedPacket) -> Result<(), ServerError> {
        self.send_audio(packet, true).await
    }

    async fn send_audio(&mut self, packet: &EncodedPacket, block: bool) -> Result<(), ServerError> {
        for frame in self.outlet.core.audio_frames(packet)? {
            self.outlet.send(frame, block, Wait::Async).await?;
        }
        Ok(())
    }

    /// Half of how far the stream is ahead of the playing time (mpegCoder's `waitRef`).
    pub fn wait_ref(&self) -> Duration {
        self.outlet.core.wait_ref()
    }

    /// Current statistics, with what the media server reported.
    pub fn stats(&self) -> ServerStats {
        self.outlet
            .stats(self.encoder.as_ref().map_or(0, EncoderThread::frames_in))
    }

    /// The URL published to, credentials removed.
    pub fn url(&self) -> &str {
        &self.outlet.url
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.outlet.core.config
    }

    /// Flushes the encoder's delayed frames (paced), ends the publish cleanly, waits for the
    /// server to confirm it, and returns the final statistics.
    pub async fn close(mut self) -> Result<ServerStats, ServerError> {
        if let Some(mut encoder) = self.encoder.take() {
            let tail = encoder.finish().await?;
            let tb = self.outlet.core.time_base;
            for p in &tail {
                self.outlet
                    .send(encoded_to_au(p, tb), true, Wait::Async)
                    .await?;
            }
            self.encoder = Some(encoder);
        }
        let frames_encoded = self.encoder.as_ref().map_or(0, EncoderThread::frames_in);
        self.outlet.close(frames_encoded).await.into_result()
    }

    async fn serve(&mut self, frame: OwnedFrame, block: bool) -> Result<(), ServerError> {
        let encoder = self.encoder.as_mut().ok_or(ServerError::WrongInput(
            "this server sends packets (codec copy, or encoded elsewhere): use serve_packet",
        ))?;
        let key = self.outlet.key_frames.take();
        let packets = encoder.encode(frame, key).await?;
        let tb = self.outlet.core.time_base;
        for p in &packets {
            self.send_au(encoded_to_au(p, tb), block).await?;
        }
        Ok(())
    }

    async fn send_au(&mut self, au: AccessUnit, block: bool) -> Result<(), ServerError> {
        self.outlet.send(au, block, Wait::Async).await
    }
}
