//! [`Client`]: the blocking, mpegCoder-like front end of the pull pipeline.

use std::fmt;
use std::io::Write;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel as cb;

use super::pipeline::{self, DecoderThread, Outputs, Shared, Sink};
use super::{ClientCounters, ClientError, ClientOptions, ClientStatus, StreamParams};
use crate::codec::Frame;
use crate::runtime;
use crate::transport::pull::check_url;
use crate::transport::{AudioFrame, AudioTrack};

/// Every frame the pipeline delivers, in order: see [`Client::subscribe`]. Iterating ends when
/// the pipeline has finished and every frame was taken; then [`Client::status`] says why.
#[derive(Debug)]
pub struct FrameReceiver {
    rx: cb::Receiver<Frame>,
}

impl FrameReceiver {
    /// Waits for the next frame; `None` when the pipeline has finished and every frame was
    /// taken.
    pub fn recv(&self) -> Option<Frame> {
        self.rx.recv().ok()
    }

    /// Waits up to `timeout` for the next frame. `Err(Timeout)` when none came in time,
    /// `Err(Disconnected)` when the pipeline has finished and every frame was taken.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Frame, RecvTimeoutError> {
        self.rx.recv_timeout(timeout).map_err(|e| match e {
            cb::RecvTimeoutError::Timeout => RecvTimeoutError::Timeout,
            cb::RecvTimeoutError::Disconnected => RecvTimeoutError::Disconnected,
        })
    }

    /// The next frame if one is waiting.
    pub fn try_recv(&self) -> Option<Frame> {
        self.rx.try_recv().ok()
    }
}

impl Iterator for FrameReceiver {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        self.recv()
    }
}

/// Every audio frame the stream carries, encoded as it came (an AAC frame without ADTS
/// header, an MP3 frame, G.711 samples), in order, with its timestamp: see
/// [`Client::subscribe_audio`]. The codec and configuration are [`Client::audio_track`].
/// Iterating ends when the pipeline has finished and every frame was taken.
#[derive(Debug)]
pub struct AudioReceiver {
    rx: cb::Receiver<AudioFrame>,
}

impl AudioReceiver {
    /// Waits for the next audio frame; `None` when the pipeline has finished and every frame
    /// was taken.
    pub fn recv(&self) -> Option<AudioFrame> {
        self.rx.recv().ok()
    }

    /// Waits up to `timeout` for the next audio frame. `Err(Timeout)` when none came in time,
    /// `Err(Disconnected)` when the pipeline has finished and every frame was taken.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<AudioFrame, RecvTimeoutError> {
        self.rx.recv_timeout(timeout).map_err(|e| match e {
            cb::RecvTimeoutError::Timeout => RecvTimeoutError::Timeout,
            cb::RecvTimeoutError::Disconnected => RecvTimeoutError::Disconnected,
        })
    }

    /// The next audio frame if one is waiting.
    pub fn try_recv(&self) -> Option<AudioFrame> {
        self.rx.try_recv().ok()
    }
}

impl Iterator for AudioReceiver {
    type Item = AudioFrame;

    fn next(&mut self) -> Option<AudioFrame> {
        self.recv()
    }
}

/// Pulls a live H.264 stream (RTSP or RTMP), decodes it in the background and keeps the
/// newest frames (mpegCoder's `MpegClient`).
///
/// ```no_run
/// use std::time::Duration;
/// use mpegcoder::{Client, ClientOptions};
///
/// # fn main() -> Result<(), mpegcoder::ClientError> {
/// let options = ClientOptions::default()
///     .with_cache_size(10)
///     .with_target_fps(5.0);
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
/// It is a thin wrapper over the pipeline of [`AsyncClient`](super::AsyncClient): the network
/// task runs on a process-wide runtime of this crate, decoding on a thread of its own. Its
/// methods block the calling thread (`wait_*`, `terminate`, dropping it) but never panic, also
/// when called from a thread of a tokio runtime; async code should prefer
/// [`AsyncClient`](super::AsyncClient), which does not block.
///
/// `Client` is `Send` and `Sync`: one thread can extract frames while another watches the
/// status. Dropping it stops the pipeline and waits for it (about half a second at most: the
/// polite end of the session).
pub struct Client {
    /// The URL as given (with any credentials): only the network task uses it.
    target: String,
    shared: Arc<Shared>,
    options: ClientOptions,
    subscriber: Option<cb::Sender<Frame>>,
    audio_subscriber: Option<cb::Sender<AudioFrame>>,
    /// Behind a mutex only so that `Client` is `Sync` (it moves to the decoder thread at start).
    recorder: Mutex<Option<Box<dyn Write + Send>>>,
    /// The same for the ADTS recording.
    adts: Mutex<Option<Box<dyn Write + Send>>>,
    decoder: Option<DecoderThread>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.shared.url)
            .field("options", &self.options)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `url` (`rtsp://…` or `rtmp://…`). Checks the URL and the options; does
    /// not connect (see [`start`](Self::start)).
    pub fn new(url: &str, options: ClientOptions) -> Result<Client, ClientError> {
        options.validate()?;
        let (protocol, shown) = check_url(url)?;
        Ok(Client {
            target: url.trim().to_string(),
            shared: Shared::new(shown, protocol),
            options,
            subscriber: None,
            audio_subscriber: None,
            recorder: Mutex::new(None),
            adts: Mutex::new(None),
            decoder: None,
        })
    }

    /// The URL without credentials.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The options.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Every delivered frame (after decimation), in order, through a channel of `capacity`
    /// frames. Call before [`start`](Self::start). While the channel is full the pipeline
    /// waits (and so reads the network more slowly); frames are never dropped for a receiver
    /// that is still there, except after a stop: then a delivery waits for room only briefly
    /// (0.2 s), and the first one that gives up ends the channel, so what was received has no
    /// gap.
    pub fn subscribe(&mut self, capacity: usize) -> Result<FrameReceiver, ClientError> {
        if self.decoder.is_some() {
            return Err(ClientError::InvalidState("subscribe after start"));
        }
        let (tx, rx) = cb::bounded(capacity.max(1));
        self.subscriber = Some(tx);
        Ok(FrameReceiver { rx })
    }

    /// Every audio frame of the stream, in order, through a channel of `capacity` frames, from
    /// the first video key frame on (what came before is counted in
    /// [`ClientCounters::audio_skipped_before_key`]). Call before [`start`](Self::start).
    ///
    /// Like [`subscribe`](Self::subscribe), a full channel makes the pipeline wait, video
    /// included: read it on its own thread (or with a timeout, alternating with the frames),
    /// never only after the video has ended. A stream without audio ends the channel empty.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), mpegcoder::ClientError> {
    /// use mpegcoder::{Client, ClientOptions};
    ///
    /// let mut client = Client::new("rtmp://media.local/live/cam", ClientOptions::default())?;
    /// let audio = client.subscribe_audio(256)?;
    /// client.start()?;
    /// let reader = std::thread::spawn(move || {
    ///     audio.map(|f| f.data.len()).sum::<usize>()
    /// });
    /// // ... take frames from the ring meanwhile ...
    /// client.terminate();
    /// println!("{} bytes of {:?}", reader.join().unwrap(), client.audio_track());
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe_audio(&mut self, capacity: usize) -> Result<AudioReceiver, ClientError> {
        if self.decoder.is_some() {
            return Err(ClientError::InvalidState("subscribe_audio after start"));
        }
        let (tx, rx) = cb::bounded(capacity.max(1));
        self.audio_subscriber = Some(tx);
        Ok(AudioReceiver { rx })
    }

    /// Writes the stream's AAC audio as ADTS (ISO/IEC 14496-3 §1.A.2: a 7-byte header before
    /// every frame, what a `.aac` file holds), from the first video key frame on. Call before
    /// [`start`](Self::start). The writer is used on the decoder thread and flushed when the
    /// pipeline finishes. If the stream's audio turns out not to be AAC (or an AAC variant an
    /// ADTS header cannot describe), the pipeline fails with
    /// [`ClientError::AdtsUnsupported`]; a stream without audio leaves the writer untouched.
    pub fn record_adts(&mut self, writer: impl Write + Send + 'static) -> Result<(), ClientError> {
        if self.decoder.is_some() {
            return Err(ClientError::InvalidState("record_adts after start"));
        }
        *self.adts.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(writer));
        Ok(())
    }

    /// Writes what arrives as a raw H.264 Annex B stream: the parameter sets first (again
    /// whenever they change), then every access unit from the first key frame on. Call before
    /// [`start`](Self::start). The writer is used on the decoder thread and flushed when the
    /// pipeline finishes.
    pub fn record_annexb(
        &mut self,
        writer: impl Write + Send + 'static,
    ) -> Result<(), ClientError> {
        if self.decoder.is_some() {
            return Err(ClientError::InvalidState("record_annexb after start"));
        }
        *self.recorder.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(writer));
        Ok(())
    }

    /// Starts the pipeline and returns at once; connection errors show up in
    /// [`status`](Self::status).
    pub fn start(&mut self) -> Result<(), ClientError> {
        if self.decoder.is_some() {
            return Err(ClientError::InvalidState("start twice"));
        }
        let started = self.launch();
        if let Err(e) = &started {
            self.shared.set_status(ClientStatus::Failed(e.clone()));
        }
        started
    }

    fn launch(&mut self) -> Result<(), ClientError> {
        let handle = runtime::handle().map_err(|e| ClientError::Worker(Arc::new(e)))?;
        self.shared.set_status(ClientStatus::Connecting);
        let outputs = Outputs {
            frames: self.subscriber.take().map_or(Sink::None, Sink::Blocking),
            audio: self
                .audio_subscriber
                .take()
                .map_or(Sink::None, Sink::Blocking),
            annexb: self
                .recorder
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
            adts: self
                .adts
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        };
        let (network, decoder) = pipeline::start(&self.shared, &self.options, outputs)?;
        // Spawning needs no runtime context: this works from any thread.
        drop(
            handle.spawn(network.connect_and_run(self.target.clone(), self.options.pull().clone())),
        );
        self.decoder = Some(decoder);
        Ok(())
    }

    /// The pipeline's status.
    pub fn status(&self) -> ClientStatus {
        self.shared.status()
    }

    /// The stream's parameters, once the video track is known.
    pub fn params(&self) -> Option<StreamParams> {
        self.shared.params()
    }

    /// The audio track (codec, rate, channels, AAC AudioSpecificConfig), once known; `None`
    /// when the stream has no audio the puller hands out.
    pub fn audio_track(&self) -> Option<AudioTrack> {
        self.shared.audio_track()
    }

    /// Counters so far.
    pub fn counters(&self) -> ClientCounters {
        self.shared.counters()
    }

    /// Waits up to `timeout` for the stream's parameters. Fails with the pipeline's error if
    /// it failed first, or [`ClientError::NotReady`].
    pub fn wait_ready(&self, timeout: Duration) -> Result<StreamParams, ClientError> {
        self.shared.wait_ready(timeout)
    }

    /// Waits up to `timeout` for the pipeline to finish (end of stream, failure, stop);
    /// returns the status then (not finished if the time ran out).
    pub fn wait_finished(&self, timeout: Duration) -> ClientStatus {
        self.shared.wait_finished(timeout)
    }

    /// The newest `read_size` frames of the ring (fewer if it holds fewer), oldest first
    /// (mpegCoder's `ExtractFrame`). The ring is not emptied: a later call returns the same
    /// frames if none arrived in between; compare [`Frame::index`] to see which are new.
    /// Cheap: frames share their pixel buffers.
    pub fn extract_frames(&self, read_size: usize) -> Vec<Frame> {
        self.shared.extract_frames(read_size)
    }

    /// Asks the pipeline to stop without waiting: it finishes with [`ClientStatus::Stopped`]
    /// (unless it had already finished). Access units already received are still decoded.
    /// Frames the decoder holds back for reordering are handed out if the stream had gone
    /// quiet (nothing for half a second, or three mean frame intervals), and dropped if it was
    /// still flowing, so what was handed out has no gap (always handed out with
    /// [`ClientOptions::with_flush_at_end`]). A subscriber should keep reading until its
    /// iterator ends.
    pub fn request_stop(&self) {
        self.shared.stop.request();
    }

    /// Stops the pipeline and waits for it (mpegCoder's `terminate`). Frames already in the
    /// ring stay readable. Returns the final status. Idempotent.
    pub fn terminate(&mut self) -> ClientStatus {
        self.request_stop();
        if let Some(decoder) = self.decoder.take() {
            // The decoder thread ends after the network task, and sets the final status even
            // when it panics.
            let _ = decoder.handle.join();
        }
        self.status()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.terminate();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::transport::pull::PullError;

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
        let options = ClientOptions::default().with_cache_size(0);
        assert!(matches!(
            Client::new("rtsp://host/x", options),
            Err(ClientError::InvalidOptions(_))
        ));
        let options = ClientOptions::default().with_target_fps(-1.0);
        assert!(matches!(
            Client::new("rtsp://host/x", options),
            Err(ClientError::InvalidOptions(_))
        ));
        let client = Client::new("rtsp://u:pw@host/x", ClientOptions::default()).unwrap();
        assert_eq!(client.url(), "rtsp://host/x");
        assert!(matches!(client.status(), ClientStatus::NotStarted));
        assert!(client.extract_frames(5).is_empty());
    }

    #[test]
    fn calls_out_of_order_are_refused_and_a_refused_connection_ends_the_stream() {
        // Nothing listens on a port that was just free.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut client = Client::new(
            &format!("rtmp://127.0.0.1:{port}/app/key"),
            ClientOptions::default(),
        )
        .unwrap();
        let frames = client.subscribe(4).unwrap();
        client.start().unwrap();
        assert!(matches!(
            client.start(),
            Err(ClientError::InvalidState("start twice"))
        ));
        assert!(matches!(
            client.subscribe(4),
            Err(ClientError::InvalidState(_))
        ));
        assert!(matches!(
            client.record_annexb(Vec::new()),
            Err(ClientError::InvalidState(_))
        ));
        assert!(matches!(
            client.record_adts(Vec::new()),
            Err(ClientError::InvalidState(_))
        ));
        assert!(matches!(
            client.subscribe_audio(4),
            Err(ClientError::InvalidState(_))
        ));
        // The receiver ends once the pipeline has finished; the status is final then.
        assert_eq!(frames.count(), 0);
        let status = client.status();
        assert!(
            matches!(
                &status,
                ClientStatus::Failed(ClientError::Pull(PullError::Connect { .. }))
            ),
            "{status:?}"
        );
        assert!(client.wait_ready(Duration::from_secs(1)).is_err());
        assert!(matches!(client.terminate(), ClientStatus::Failed(_)));
    }

    #[test]
    fn a_stop_before_start_ends_the_pipeline_without_connecting() {
        let mut client = Client::new("rtsp://192.0.2.1/x", ClientOptions::default()).unwrap();
        client.request_stop();
        client.start().unwrap();
        let status = client.wait_finished(Duration::from_secs(5));
        assert!(matches!(status, ClientStatus::Stopped), "{status:?}");
    }
}
