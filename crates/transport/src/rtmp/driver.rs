//! The tokio driver: moves bytes between a TCP socket and a [`PublisherCore`], applies the
//! timeouts, and gives the caller an async publish API.
//!
//! One background task owns the socket. It reads whenever bytes arrive (acknowledgements,
//! pings, status replies) — also while the caller is idle between frames — and writes what the
//! core queued, one packet at a time, with cancel-safe `read`/`write` inside one `select!`.
//! The core sits behind a `std` mutex that is never held across an `.await`; two `Notify`s
//! wake the task (new bytes queued, close requested) and the caller (room in the queue, state
//! changed, failure).
//!
//! Backpressure: `send` waits while more than [`RtmpOptions::max_queued_bytes`] are queued,
//! so memory stays bounded by that mark plus one access unit (plus the one packet being
//! written) and a caller faster than the network is slowed to the network's pace.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

use super::error::{RtmpError, Step};
use super::options::RtmpOptions;
use super::session::{PublishState, PublishStats, PublisherCore};
use super::url::RtmpUrl;
use crate::h264::{AccessUnit, VideoTrack};
use crate::redact_url;

/// How long `close` waits for the background task beyond the close timeout.
const CLOSE_GRACE: Duration = Duration::from_millis(250);
/// Read buffer size of the background task.
const READ_BUFFER: usize = 16 * 1024;

/// An RTMP publish session over TCP: see the [module docs](super) for an example.
///
/// Dropping it without [`close`](Self::close) aborts the background task and drops the socket
/// at once; the server may then lose the tail of the stream.
#[derive(Debug)]
pub struct RtmpPublisher {
    shared: Arc<Shared>,
    io: Option<JoinHandle<()>>,
    options: RtmpOptions,
    url: String,
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    /// Wakes the background task: bytes queued, close requested, failure.
    wake_io: Notify,
    /// Wakes the caller: queue drained, state changed, failure, task finished.
    wake_caller: Notify,
    /// The configured close timeout (for the error when flushing does not finish).
    close_timeout: Duration,
}

#[derive(Debug)]
struct Inner {
    core: PublisherCore,
    /// Set by `close`: flush, shut down the write side, drain until this deadline.
    closing: Option<Instant>,
    bytes_written: u64,
    closed_cleanly: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the core half-updated in a way that
        // matters more than the panic itself; keep going with its state.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fail(&self, error: RtmpError) {
        self.lock().core.fail(error);
        self.wake_io.notify_one();
        self.wake_caller.notify_one();
    }
}

impl RtmpPublisher {
    /// Connects to `url`, performs the handshake, `connect`, `createStream` and `publish`
    /// (live), and returns once the server answered `NetStream.Publish.Start`. The
    /// `onMetaData` for `track` is sent then; its AVC sequence header goes out with the first
    /// frame.
    ///
    /// Must be called inside a tokio runtime (with the `net` and `time` drivers enabled).
    pub async fn connect(
        url: &str,
        track: &VideoTrack,
        options: RtmpOptions,
    ) -> Result<RtmpPublisher, RtmpError> {
        let parsed = RtmpUrl::parse(url).map_err(|source| RtmpError::InvalidUrl {
            url: redact_url(url),
            source,
        })?;
        let core = PublisherCore::new(parsed.clone(), track, &options)?;
        let stream = open_tcp(&parsed, &options).await?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                core,
                closing: None,
                bytes_written: 0,
                closed_cleanly: false,
            }),
            wake_io: Notify::new(),
            wake_caller: Notify::new(),
            close_timeout: options.close_timeout,
        });
        let io = tokio::spawn(io_task(Arc::clone(&shared), stream));
        let publisher = RtmpPublisher {
            shared,
            io: Some(io),
            options,
            url: parsed.redacted(),
        };
        // On error `publisher` is dropped here, which aborts the task and closes the socket.
        publisher.wait_published().await?;
        Ok(publisher)
    }

    /// Queues one access unit (see [`PublisherCore::send`]). Returns once it is queued, not
    /// when it was written; waits while the send queue is above its high-water mark, at most
    /// [`RtmpOptions::send_timeout`].
    ///
    /// Errors about the access unit itself ([`RtmpError::InvalidAccessUnit`]) leave the
    /// session usable; any other error is final and every later call returns it again.
    pub async fn send(&mut self, au: &AccessUnit) -> Result<(), RtmpError> {
        let deadline = Instant::now() + self.options.send_timeout;
        loop {
            let notified = self.shared.wake_caller.notified();
            {
                let mut g = self.shared.lock();
                if let Some(e) = g.core.error() {
                    return Err(e.clone());
                }
                let queued = g.core.queued_bytes();
                if queued == 0 || queued + au.payload_len() <= self.options.max_queued_bytes {
                    let result = g.core.send(au);
                    drop(g);
                    // Also on error: a failed core must end the background task.
                    self.shared.wake_io.notify_one();
                    return result;
                }
            }
            if timeout_at(deadline, notified).await.is_err() {
                let err = RtmpError::Timeout {
                    url: self.url.clone(),
                    step: Step::Streaming,
                    after: self.options.send_timeout,
                };
                self.shared.fail(err.clone());
                return Err(err);
            }
        }
    }

    /// Ends the stream gracefully: queues the AVC end of sequence and `deleteStream`, writes
    /// everything queued, shuts down the write side, then reads until the server closes the
    /// connection (at most [`RtmpOptions::close_timeout`] in all). Reading to the end matters:
    /// closing a socket with unread data makes Linux reset the connection, and a server may
    /// then drop the tail of what it already received.
    pub async fn close(mut self) -> Result<PublishStats, RtmpError> {
        let deadline = Instant::now() + self.options.close_timeout;
        {
            let mut g = self.shared.lock();
            if let Some(e) = g.core.error() {
                return Err(e.clone());
            }
            g.core.close()?;
            g.closing = Some(deadline);
        }
        self.shared.wake_io.notify_one();
        let Some(mut io) = self.io.take() else {
            return Err(RtmpError::InvalidState("closed"));
        };
        if timeout_at(deadline + CLOSE_GRACE, &mut io).await.is_err() {
            io.abort();
            return Err(RtmpError::Timeout {
                url: self.url.clone(),
                step: Step::Closing,
                after: self.options.close_timeout,
            });
        }
        let g = self.shared.lock();
        if let Some(e) = g.core.error() {
            return Err(e.clone());
        }
        Ok(stats_of(&g))
    }

    /// Counters so far (bytes written, frames, acknowledgements).
    pub fn stats(&self) -> PublishStats {
        stats_of(&self.shared.lock())
    }

    /// The URL without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Waits for `NetStream.Publish.Start`, each step bounded by its timeout.
    async fn wait_published(&self) -> Result<(), RtmpError> {
        let mut current: Option<PublishState> = None;
        let mut deadline = Instant::now();
        loop {
            let notified = self.shared.wake_caller.notified();
            {
                let g = self.shared.lock();
                if let Some(e) = g.core.error() {
                    return Err(e.clone());
                }
                let state = g.core.state();
                if state == PublishState::Publishing {
                    return Ok(());
                }
                if current != Some(state) {
                    current = Some(state);
                    deadline = Instant::now() + self.step_timeout(state);
                }
            }
            if timeout_at(deadline, notified).await.is_err() {
                let state = current.unwrap_or(PublishState::Handshaking);
                let err = RtmpError::Timeout {
                    url: self.url.clone(),
                    step: state.step(),
                    after: self.step_timeout(state),
                };
                self.shared.fail(err.clone());
                return Err(err);
            }
        }
    }

    fn step_timeout(&self, state: PublishState) -> Duration {
        match state {
            PublishState::Handshaking => self.options.handshake_timeout,
            _ => self.options.command_timeout,
        }
    }
}

impl Drop for RtmpPublisher {
    fn drop(&mut self) {
        if let Some(io) = self.io.take() {
            io.abort();
        }
    }
}

fn stats_of(g: &Inner) -> PublishStats {
    let mut stats = g.core.stats().clone();
    stats.bytes_written = g.bytes_written;
    stats.closed_cleanly = g.closed_cleanly;
    stats
}

/// Resolves the host and connects, within the TCP connect timeout; sets `TCP_NODELAY`
/// (media goes out as soon as it is queued instead of waiting for delayed ACKs).
async fn open_tcp(url: &RtmpUrl, options: &RtmpOptions) -> Result<TcpStream, RtmpError> {
    let shown = url.redacted();
    let limit = options.tcp_connect_timeout;
    let deadline = Instant::now() + limit;
    let timeout = |step| RtmpError::Timeout {
        url: shown.clone(),
        step,
        after: limit,
    };
    let addrs: Vec<SocketAddr> =
        match timeout_at(deadline, tokio::net::lookup_host((url.host(), url.port()))).await {
            Err(_) => return Err(timeout(Step::Resolve)),
            Ok(Err(e)) => {
                return Err(RtmpError::Resolve {
                    url: shown,
                    source: Arc::new(e),
                })
            }
            Ok(Ok(addrs)) => addrs.collect(),
        };
    if addrs.is_empty() {
        return Err(RtmpError::Resolve {
            url: shown,
            source: Arc::new(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the host has no address",
            )),
        });
    }
    let mut last = None;
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return Err(timeout(Step::TcpConnect)),
            Ok(Ok(stream)) => {
                stream.set_nodelay(true).map_err(|e| RtmpError::Io {
                    url: shown.clone(),
                    step: Step::TcpConnect,
                    source: Arc::new(e),
                })?;
                return Ok(stream);
            }
            Ok(Err(e)) => last = Some(e),
        }
    }
    Err(RtmpError::Connect {
        url: shown,
        source: Arc::new(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotConnected, "no address connected")
        })),
    })
}

/// What one turn of the background task's `select!` produced.
enum Turn {
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    Woken,
    CloseDeadline,
}

/// The background task: owns the socket until the session ends.
async fn io_task(shared: Arc<Shared>, stream: TcpStream) {
    let url = shared.lock().core.url().redacted();
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = vec![0u8; READ_BUFFER];
    let mut pending: Option<Bytes> = None;
    let io_error = |step: Step, e: std::io::Error| RtmpError::Io {
        url: url.clone(),
        step,
        source: Arc::new(e),
    };

    // Streaming (and flushing after `close`).
    let close_deadline = loop {
        let (step, closing) = {
            let mut g = shared.lock();
            if g.core.error().is_some() {
                drop(g);
                shared.wake_caller.notify_one();
                return;
            }
            if pending.is_none() {
                pending = g.core.poll_transmit();
                if pending.is_some() {
                    // The queue shrank: a caller waiting for room may go on.
                    shared.wake_caller.notify_one();
                }
            }
            // Acknowledgements are counted in the core's stats; nothing else needs the driver.
            while g.core.poll_event().is_some() {}
            (g.core.state().step(), g.closing)
        };
        if let (None, Some(deadline)) = (&pending, closing) {
            break deadline;
        }
        let chunk = pending.clone();
        let turn = tokio::select! {
            r = rd.read(&mut buf) => Turn::Read(r),
            r = write_some(&mut wr, chunk.as_ref()), if chunk.is_some() => Turn::Wrote(r),
            _ = shared.wake_io.notified() => Turn::Woken,
            _ = sleep_until_opt(closing), if closing.is_some() => Turn::CloseDeadline,
        };
        match turn {
            Turn::Read(Ok(0)) => shared.fail(RtmpError::ConnectionClosed {
                url: url.clone(),
                step,
            }),
            Turn::Read(Ok(n)) => {
                // A failure is recorded in the core; the loop's next turn ends the task.
                let _ = shared.lock().core.handle_input(buf.get(..n).unwrap_or(&[]));
                shared.wake_caller.notify_one();
            }
            Turn::Read(Err(e)) => shared.fail(io_error(step, e)),
            Turn::Wrote(Ok(n)) => {
                shared.lock().bytes_written += n as u64;
                pending = pending.and_then(|p| (n < p.len()).then(|| p.slice(n..)));
            }
            Turn::Wrote(Err(e)) => shared.fail(io_error(step, e)),
            Turn::Woken => {}
            Turn::CloseDeadline => shared.fail(RtmpError::Timeout {
                url: url.clone(),
                step: Step::Closing,
                after: shared.close_timeout,
            }),
        }
    };

    // Everything is written: send FIN, then read until the server closes its side.
    let clean = match timeout_at(close_deadline, wr.shutdown()).await {
        Err(_) => false,
        Ok(Err(e)) => {
            shared.fail(io_error(Step::Closing, e));
            return;
        }
        Ok(Ok(())) => loop {
            match timeout_at(close_deadline, rd.read(&mut buf)).await {
                Err(_) => break false,
                Ok(Ok(0)) => break true,
                Ok(Ok(n)) => {
                    let mut g = shared.lock();
                    let _ = g.core.handle_input(buf.get(..n).unwrap_or(&[]));
                    // The write side is shut: replies (acks, pongs) can no longer go out.
                    while g.core.poll_transmit().is_some() {}
                    while g.core.poll_event().is_some() {}
                }
                Ok(Err(e)) => {
                    shared.fail(io_error(Step::Closing, e));
                    return;
                }
            }
        },
    };
    shared.lock().closed_cleanly = clean;
    shared.wake_caller.notify_one();
}

/// Writes some of `chunk` (cancel-safe: a cancelled `write` wrote nothing).
async fn write_some(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    chunk: Option<&Bytes>,
) -> std::io::Result<usize> {
    match chunk {
        Some(b) => wr.write(b).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
