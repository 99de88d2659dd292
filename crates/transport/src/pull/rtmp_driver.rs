//! The tokio driver of an RTMP play session: moves bytes between a TCP socket and an
//! [`RtmpPlayCore`], which owns every timeout. Reading is driven by the caller's
//! [`next`](RtmpPull::next): while nobody asks for frames nothing is read, and TCP flow control
//! slows the server down.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

use super::error::{PullError, PullStep};
use super::rtmp_core::{PlayEvent, PlayState, RtmpPlayCore};
use super::PullOptions;
use crate::audio::AudioTrack;
use crate::h264::VideoTrack;
use crate::net::connect_stream;
use crate::rtmp::url::RtmpUrl;
use crate::session::Media;
use crate::session::SessionStream;

/// Read buffer size.
const READ_BUFFER: usize = 64 * 1024;
/// How long closing may take to flush `deleteStream`.
const CLOSE_LIMIT: Duration = Duration::from_millis(500);

/// An RTMP play session over TCP or TLS.
pub(super) struct RtmpPull {
    core: RtmpPlayCore,
    stream: Box<dyn SessionStream>,
    buf: Vec<u8>,
    url: String,
    /// Limit for writing the few small messages a player sends.
    write_timeout: Duration,
}

impl std::fmt::Debug for RtmpPull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtmpPull")
            .field("url", &self.url)
            .field("state", &self.core.state())
            .finish_non_exhaustive()
    }
}

impl RtmpPull {
    /// Connects, performs the handshake, `connect`, `createStream` and `play`, and returns
    /// once the server started playing (`NetStream.Play.Start` or the first media message).
    pub(super) async fn connect(url: RtmpUrl, options: &PullOptions) -> Result<Self, PullError> {
        let mut core = RtmpPlayCore::new(url.clone(), options, crate::clock::now())?;
        let tls = url.is_tls().then_some(&options.tls);
        let stream = connect_stream(
            url.host(),
            url.port(),
            &url.redacted(),
            options.connect_timeout,
            tls,
        )
        .await?
        .stream;
        core.restart_handshake_deadline(crate::clock::now());
        let mut me = RtmpPull {
            core,
            stream,
            buf: vec![0u8; READ_BUFFER],
            url: url.redacted(),
            write_timeout: options.setup_timeout,
        };
        while !matches!(me.core.state(), PlayState::Playing | PlayState::Ended) {
            me.turn().await?;
        }
        Ok(me)
    }

    /// The video track, once known.
    pub(super) fn track(&self) -> Option<&VideoTrack> {
        self.core.track()
    }

    /// The audio track, once known.
    pub(super) fn audio_track(&self) -> Option<&AudioTrack> {
        self.core.audio_track()
    }

    /// Counters of the play core.
    pub(super) fn play_stats(&self) -> &super::PlayStats {
        self.core.stats()
    }

    /// The next access unit or audio frame, in arrival order; `None` once the server ended
    /// playback or closed the connection after playing started.
    pub(super) async fn next(&mut self) -> Result<Option<Media>, PullError> {
        loop {
            while let Some(event) = self.core.poll_event() {
                match event {
                    PlayEvent::AccessUnit(au) => return Ok(Some(Media::H264(au))),
                    PlayEvent::AudioFrame(frame) => return Ok(Some(Media::Audio(frame))),
                    PlayEvent::EndOfStream(_) => return Ok(None),
                    _ => {}
                }
            }
            if let Some(e) = self.core.error() {
                return Err(e.clone());
            }
            if self.core.state() == PlayState::Ended {
                return Ok(None);
            }
            self.turn().await?;
        }
    }

    /// Sends `deleteStream` (best effort, briefly) and shuts the write side down.
    pub(super) async fn close(mut self) {
        self.core.close();
        let deadline = Instant::from_std(crate::clock::now()) + CLOSE_LIMIT;
        while let Some(bytes) = self.core.poll_transmit() {
            if !matches!(
                timeout_at(deadline, self.stream.write_all(&bytes)).await,
                Ok(Ok(()))
            ) {
                return;
            }
        }
        let _ = timeout_at(deadline, self.stream.flush()).await;
        let _ = timeout_at(deadline, self.stream.shutdown()).await;
    }

    /// Writes what the core queued, then reads once or handles the core's deadline.
    async fn turn(&mut self) -> Result<(), PullError> {
        self.flush().await?;
        let Some(deadline) = self.core.poll_timeout() else {
            // Ended or failed: the caller looks at the state.
            return match self.core.error() {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            };
        };
        match timeout_at(Instant::from_std(deadline), self.stream.read(&mut self.buf)).await {
            Err(_) => self.core.handle_timeout(crate::clock::now()),
            Ok(Ok(0)) => self.core.handle_eof(crate::clock::now()),
            Ok(Ok(n)) => {
                let data = self.buf.get(..n).unwrap_or(&[]);
                self.core.handle_input(crate::clock::now(), data)
            }
            Ok(Err(e)) => Err(self.io_error(e)),
        }
    }

    /// Writes everything the core queued, each write within the write timeout.
    async fn flush(&mut self) -> Result<(), PullError> {
        let mut wrote = false;
        while let Some(bytes) = self.core.poll_transmit() {
            wrote = true;
            match tokio::time::timeout(self.write_timeout, self.stream.write_all(&bytes)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(self.io_error(e)),
                Err(_) => {
                    let err = PullError::Timeout {
                        url: self.url.clone(),
                        step: self.core.state().step(),
                        after: self.write_timeout,
                    };
                    self.core.fail(err.clone());
                    return Err(err);
                }
            }
        }
        // TLS may hold back what the socket did not take: push it out before reading.
        if wrote {
            if let Ok(Err(e)) = tokio::time::timeout(self.write_timeout, self.stream.flush()).await
            {
                return Err(self.io_error(e));
            }
        }
        Ok(())
    }

    fn io_error(&mut self, e: std::io::Error) -> PullError {
        let step = match self.core.state() {
            PlayState::Failed => PullStep::Streaming,
            s => s.step(),
        };
        let err = PullError::Io {
            url: self.url.clone(),
            step,
            source: Arc::new(e),
        };
        self.core.fail(err.clone());
        err
    }
}
