//! [`AsyncClient`]: the pull pipeline on the caller's tokio runtime.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::pipeline::{self, Outputs, Shared, Sink};
use super::{ClientCounters, ClientError, ClientOptions, ClientStatus, StreamParams};
use crate::codec::Frame;
use crate::transport::pull::{check_url, Puller};
use crate::transport::{AudioFrame, AudioTrack};

/// Frames decoded ahead of [`AsyncClient::next_frame`]. Beyond them the decoder thread waits,
/// and then the network task.
const FRAME_QUEUE: usize = 32;

/// The longest [`AsyncClient::close`] waits: the polite end of the session takes at most half
/// a second, what is left to decode a few milliseconds.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Pulls a live H.264 stream (RTSP or RTMP) and decodes it, from async code.
///
/// The network task runs on the caller's tokio runtime (spawned by [`connect`](Self::connect),
/// which must run inside one with the `net` and `time` drivers); decoding runs on a thread of
/// its own, so nothing here blocks a runtime thread. Every kept frame (after decimation) comes
/// out of [`next_frame`](Self::next_frame), in order; the newest ones also stay in a ring
/// ([`extract_frames`](Self::extract_frames)). Frames flow only as fast as `next_frame` takes
/// them: while it is not called, the decoder and then the network reading wait.
///
/// ```no_run
/// use mpegcoder::{AsyncClient, ClientOptions};
///
/// # async fn pull() -> Result<(), mpegcoder::ClientError> {
/// let options = ClientOptions::default().with_target_fps(10.0);
/// let mut client = AsyncClient::connect("rtmp://media.local/live/cam", options).await?;
/// while let Some(frame) = client.next_frame().await? {
///     // RGB24: frame.data holds width * height * 3 bytes.
///     println!("frame {} at {:.3} s", frame.index, frame.pts_seconds());
///     if frame.index >= 300 {
///         break;
///     }
/// }
/// if let Some(params) = client.params() {
///     println!("{}x{} {}", params.width, params.height, params.codec_string);
/// }
/// println!("{:?}", client.counters());
/// client.close().await?;
/// # Ok(())
/// # }
/// ```
///
/// Dropping it stops the pipeline without waiting (the session still ends politely in the
/// background while the runtime runs); [`close`](Self::close) waits for that.
pub struct AsyncClient {
    shared: Arc<Shared>,
    options: ClientOptions,
    frames: mpsc::Receiver<Frame>,
    /// Completes when the decoder thread has finished (after the network task).
    done: oneshot::Receiver<()>,
}

impl fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncClient")
            .field("url", &self.shared.url)
            .field("options", &self.options)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl AsyncClient {
    /// Connects to `url` (`rtsp://…` or `rtmp://…`, credentials in the userinfo allowed) and
    /// starts playing: returns once the server accepted, within the connect and setup timeouts
    /// of [`ClientOptions::pull`]. Then receives and decodes in the background.
    ///
    /// Cancel-safe: dropping the future before it completes leaves nothing running.
    pub async fn connect(url: &str, options: ClientOptions) -> Result<AsyncClient, ClientError> {
        Self::start(url, options, Sink::None).await
    }

    /// Like [`connect`](Self::connect), and also hands out every audio frame of the stream
    /// (encoded as it came, with its timestamp) through the returned receiver, which queues
    /// up to `capacity` frames, from the first video key frame on.
    ///
    /// A full audio queue makes the pipeline wait, video included: read the receiver in its
    /// own task, or in a `select!` together with [`next_frame`](Self::next_frame). A stream
    /// without audio ends the receiver empty.
    ///
    /// ```no_run
    /// use mpegcoder::{AsyncClient, ClientOptions};
    ///
    /// # async fn pull() -> Result<(), mpegcoder::ClientError> {
    /// let url = "rtmp://media.local/live/cam";
    /// let (mut client, mut audio) =
    ///     AsyncClient::connect_with_audio(url, ClientOptions::default(), 64).await?;
    /// let audio_task = tokio::spawn(async move {
    ///     let mut bytes = 0;
    ///     while let Some(frame) = audio.recv().await {
    ///         bytes += frame.data.len();
    ///     }
    ///     bytes
    /// });
    /// while let Some(frame) = client.next_frame().await? {
    ///     println!("frame {} at {:.3} s", frame.index, frame.pts_seconds());
    /// }
    /// println!("{:?}: {:?} bytes", client.audio_track(), audio_task.await);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with_audio(
        url: &str,
        options: ClientOptions,
        capacity: usize,
    ) -> Result<(AsyncClient, AsyncAudioReceiver), ClientError> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let client = Self::start(url, options, Sink::Async(tx)).await?;
        Ok((client, AsyncAudioReceiver { rx }))
    }

    async fn start(
        url: &str,
        options: ClientOptions,
        audio: Sink<AudioFrame>,
    ) -> Result<AsyncClient, ClientError> {
        options.validate()?;
        let (protocol, shown) = check_url(url)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            ClientError::Worker(Arc::new(std::io::Error::other(format!(
                "AsyncClient::connect needs a tokio runtime: {e}"
            ))))
        })?;
        let shared = Shared::new(shown, protocol);
        let puller = Puller::connect(url.trim(), options.pull().clone()).await?;
        let (tx, frames) = mpsc::channel(FRAME_QUEUE);
        let outputs = Outputs {
            frames: Sink::Async(tx),
            audio,
            ..Outputs::default()
        };
        let (network, decoder) = match pipeline::start(&shared, &options, outputs) {
            Ok(started) => started,
            Err(e) => {
                drop(runtime.spawn(puller.close()));
                return Err(e);
            }
        };
        drop(runtime.spawn(network.run(puller)));
        Ok(AsyncClient {
            shared,
            options,
            frames,
            done: decoder.done,
        })
    }

    /// The next frame, in order; `Ok(None)` once the stream ended or was stopped and every
    /// frame was taken. A failure comes after the frames decoded before it (and again on later
    /// calls).
    ///
    /// Cancel-safe: a frame is never lost when the future is dropped (e.g. in `select!`).
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, ClientError> {
        if let Some(frame) = self.frames.recv().await {
            return Ok(Some(frame));
        }
        // The decoder thread sets the final status before it closes the channel.
        match self.shared.status() {
            ClientStatus::Failed(e) => Err(e),
            _ => Ok(None),
        }
    }

    /// The URL without credentials.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The options.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The stream's parameters, once the video track is known (RTSP: often at connect, from
    /// the SDP; RTMP: with the first video data). Always known once a frame came out.
    pub fn params(&self) -> Option<StreamParams> {
        self.shared.params()
    }

    /// The audio track (codec, rate, channels, AAC AudioSpecificConfig), once known.
    pub fn audio_track(&self) -> Option<AudioTrack> {
        self.shared.audio_track()
    }

    /// Counters so far.
    pub fn counters(&self) -> ClientCounters {
        self.shared.counters()
    }

    /// The pipeline's status: [`ClientStatus::Running`] until it finished.
    pub fn status(&self) -> ClientStatus {
        self.shared.status()
    }

    /// The newest `read_size` frames of the ring of [`ClientOptions::cache_size`] frames,
    /// oldest first (see [`Client::extract_frames`](super::Client::extract_frames)).
    pub fn extract_frames(&self, read_size: usize) -> Vec<Frame> {
        self.shared.extract_frames(read_size)
    }

    /// Asks the pipeline to stop without waiting. Keep calling
    /// [`next_frame`](Self::next_frame) until it returns `None` to get the last frames:
    /// access units already received are still decoded, and frames the decoder holds back for
    /// reordering are handed out if the stream had gone quiet (nothing for half a second, or
    /// three mean frame intervals) and dropped if it was still flowing, so what was handed
    /// out has no gap (always handed out with [`ClientOptions::with_flush_at_end`]).
    pub fn request_stop(&self) {
        self.shared.stop.request();
    }

    /// Stops the pipeline, ends the session politely and waits for both (at most a couple of
    /// seconds). Frames not yet taken are dropped. Returns the pipeline's error if it failed
    /// (also one [`next_frame`](Self::next_frame) already returned, or the recording's).
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.shared.stop.request();
        // The decoder thread may be waiting to hand over a frame: let it go on.
        self.frames.close();
        let done = &mut self.done;
        // Errs when the decoder thread ended, which is what is awaited; a timeout leaves it
        // finishing in the background.
        let _ = tokio::time::timeout(CLOSE_WAIT, done).await;
        match self.shared.status() {
            ClientStatus::Failed(e) => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for AsyncClient {
    fn drop(&mut self) {
        // No waiting here: the network task sees the stop and ends the session, the decoder
        // thread then finishes (the frame channel's receiver is dropped with `self`).
        self.shared.stop.request();
    }
}

/// The audio frames of an [`AsyncClient`] made by
/// [`AsyncClient::connect_with_audio`], in order.
#[derive(Debug)]
pub struct AsyncAudioReceiver {
    rx: mpsc::Receiver<AudioFrame>,
}

impl AsyncAudioReceiver {
    /// The next audio frame; `None` once the pipeline has finished and every frame was taken
    /// (then [`AsyncClient::status`] says why).
    ///
    /// Cancel-safe: a frame is never lost when the future is dropped.
    pub async fn recv(&mut self) -> Option<AudioFrame> {
        self.rx.recv().await
    }

    /// The next audio frame if one is waiting.
    pub fn try_recv(&mut self) -> Option<AudioFrame> {
        self.rx.try_recv().ok()
    }
}
