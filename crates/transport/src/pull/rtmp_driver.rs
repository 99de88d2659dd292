//! The tokio driver of an RTMP play session: moves bytes between a TCP socket and an
//! [`RtmpPlayCore`] and applies the timeouts. Reading is driven by the caller's
//! [`next`](RtmpPull::next): while nobody asks for frames nothing is read, and TCP flow control
//! slows the server down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::error::{PullError, PullStep};
use super::rtmp_core::{PlayEvent, PlayState, RtmpPlayCore};
use super::PullOptions;
use crate::h264::{AccessUnit, VideoTrack};
use crate::rtmp::url::RtmpUrl;

/// Read buffer size.
const READ_BUFFER: usize = 64 * 1024;
/// How long closing may take to flush `deleteStream`.
const CLOSE_LIMIT: Duration = Duration::from_millis(500);

/// An RTMP play session over TCP.
#[derive(Debug)]
pub(super) struct RtmpPull {
    core: RtmpPlayCore,
    stream: TcpStream,
    buf: Vec<u8>,
    url: String,
    options: PullOptions,
    /// When the last access unit was handed out (or playing started).
    last_video: Instant,
    saw_video: bool,
}

impl RtmpPull {
    /// Connects, performs the handshake, `connect`, `createStream` and `play`, and returns
    /// once the server started playing (`NetStream.Play.Start` or the first media message).
    pub(super) async fn connect(url: RtmpUrl, options: &PullOptions) -> Result<Self, PullError> {
        let core = RtmpPlayCore::new(url.clone(), options)?;
        let stream = open_tcp(&url, options).await?;
        let mut me = RtmpPull {
            core,
            stream,
            buf: vec![0u8; READ_BUFFER],
            url: url.redacted(),
            options: options.clone(),
            last_video: Instant::now(),
            saw_video: false,
        };
        let mut current: Option<PlayState> = None;
        let mut deadline = Instant::now();
        loop {
            me.flush().await?;
            if let Some(e) = me.core.error() {
                return Err(e.clone());
            }
            let state = me.core.state();
            if matches!(state, PlayState::Playing | PlayState::Ended) {
                me.last_video = Instant::now();
                return Ok(me);
            }
            if current != Some(state) {
                current = Some(state);
                deadline = Instant::now() + me.step_limit(state);
            }
            match timeout_at(deadline, me.stream.read(&mut me.buf)).await {
                Err(_) => {
                    let err = me.timeout_error(state);
                    me.core.fail(err.clone());
                    return Err(err);
                }
                Ok(Ok(0)) => {
                    return Err(PullError::ConnectionClosed {
                        url: me.url.clone(),
                        step: state.step(),
                    })
                }
                Ok(Ok(n)) => {
                    let data = me.buf.get(..n).unwrap_or(&[]);
                    me.core.handle_input(data)?;
                }
                Ok(Err(e)) => return Err(me.io_error(state.step(), e)),
            }
        }
    }

    /// The video track, once known.
    pub(super) fn track(&self) -> Option<&VideoTrack> {
        self.core.track()
    }

    /// The next access unit; `None` once the server ended playback or closed the connection
    /// after playing started.
    pub(super) async fn next(&mut self) -> Result<Option<AccessUnit>, PullError> {
        loop {
            while let Some(event) = self.core.poll_event() {
                match event {
                    PlayEvent::AccessUnit(au) => {
                        self.saw_video = true;
                        self.last_video = Instant::now();
                        return Ok(Some(au));
                    }
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
            self.flush().await?;
            let deadline = self.last_video + self.options.idle_timeout;
            match timeout_at(deadline, self.stream.read(&mut self.buf)).await {
                Err(_) => {
                    let err = self.idle_error();
                    self.core.fail(err.clone());
                    return Err(err);
                }
                // The server closed the connection after playing started: for a live stream
                // this is how several servers end it (RTMP has no other end-of-connection
                // signal), so it ends the stream rather than failing it.
                Ok(Ok(0)) => {
                    self.core.close();
                    return Ok(None);
                }
                Ok(Ok(n)) => {
                    let data = self.buf.get(..n).unwrap_or(&[]);
                    self.core.handle_input(data)?;
                }
                Ok(Err(e)) => {
                    let err = self.io_error(PullStep::Streaming, e);
                    self.core.fail(err.clone());
                    return Err(err);
                }
            }
        }
    }

    /// Sends `deleteStream` (best effort, briefly) and shuts the write side down.
    pub(super) async fn close(mut self) {
        self.core.close();
        let deadline = Instant::now() + CLOSE_LIMIT;
        while let Some(bytes) = self.core.poll_transmit() {
            if !matches!(
                timeout_at(deadline, self.stream.write_all(&bytes)).await,
                Ok(Ok(()))
            ) {
                return;
            }
        }
        let _ = timeout_at(deadline, self.stream.shutdown()).await;
    }

    /// Writes everything the core queued, within the setup timeout.
    async fn flush(&mut self) -> Result<(), PullError> {
        while let Some(bytes) = self.core.poll_transmit() {
            let step = self.core.state().step();
            match tokio::time::timeout(self.options.setup_timeout, self.stream.write_all(&bytes))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let err = self.io_error(step, e);
                    self.core.fail(err.clone());
                    return Err(err);
                }
                Err(_) => {
                    let err = PullError::Timeout {
                        url: self.url.clone(),
                        step,
                        after: self.options.setup_timeout,
                    };
                    self.core.fail(err.clone());
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    fn step_limit(&self, state: PlayState) -> Duration {
        match state {
            // After `play` the server may legitimately wait for a publisher: the idle timeout.
            PlayState::PlayRequested => self.options.idle_timeout,
            _ => self.options.setup_timeout,
        }
    }

    fn timeout_error(&self, state: PlayState) -> PullError {
        match state {
            PlayState::PlayRequested => self.idle_error(),
            _ => PullError::Timeout {
                url: self.url.clone(),
                step: state.step(),
                after: self.options.setup_timeout,
            },
        }
    }

    fn idle_error(&self) -> PullError {
        let after = self.options.idle_timeout;
        let url = self.url.clone();
        if self.saw_video {
            PullError::Stalled { url, after }
        } else if self.core.stats().audio_messages > 0 && self.core.stats().video_messages == 0 {
            PullError::NoVideo {
                url,
                found: format!("only audio arrived within {after:?}"),
            }
        } else {
            PullError::NoVideoReceived { url, after }
        }
    }

    fn io_error(&self, step: PullStep, e: std::io::Error) -> PullError {
        PullError::Io {
            url: self.url.clone(),
            step,
            source: Arc::new(e),
        }
    }
}

/// Resolves `host:port` within `deadline`.
pub(super) async fn resolve(
    host: &str,
    port: u16,
    url: &str,
    limit: Duration,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, PullError> {
    match timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(PullError::Timeout {
            url: url.to_string(),
            step: PullStep::Resolve,
            after: limit,
        }),
        Ok(Err(e)) => Err(PullError::Resolve {
            url: url.to_string(),
            reason: e.to_string(),
        }),
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(PullError::Resolve {
                    url: url.to_string(),
                    reason: "the host has no address".into(),
                })
            } else {
                Ok(addrs)
            }
        }
    }
}

/// Resolves the host and connects within the connect timeout; sets `TCP_NODELAY` (the
/// player's few small messages — acknowledgements, pongs — should not wait for delayed ACKs).
async fn open_tcp(url: &RtmpUrl, options: &PullOptions) -> Result<TcpStream, PullError> {
    let shown = url.redacted();
    let limit = options.connect_timeout;
    let deadline = Instant::now() + limit;
    let addrs = resolve(url.host(), url.port(), &shown, limit, deadline).await?;
    let mut last = None;
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(PullError::Timeout {
                    url: shown,
                    step: PullStep::TcpConnect,
                    after: limit,
                })
            }
            Ok(Ok(stream)) => {
                stream.set_nodelay(true).map_err(|e| PullError::Io {
                    url: shown.clone(),
                    step: PullStep::TcpConnect,
                    source: Arc::new(e),
                })?;
                return Ok(stream);
            }
            Ok(Err(e)) => last = Some(e),
        }
    }
    Err(PullError::Connect {
        url: shown,
        reason: last.map_or_else(|| "no address connected".to_string(), |e| e.to_string()),
    })
}
