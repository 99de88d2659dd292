//! The tokio driver every publishing session uses: one task owns the connection (and, for
//! RTSP over UDP, the RTP/RTCP sockets) and moves bytes between it and a [`SessionCore`]; a
//! [`Session`] handle feeds it media through a bounded channel.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use super::{Chunks, Media, MediaCheck, MediaError, PublisherStats, SessionCore, SessionEvent};
use super::{Track, Transmit};
use crate::rtp::RtpPacket;

/// Media units waiting between [`Session::send`] and the task. Small: the pacer hands each
/// unit over when it is due, so a longer queue would only hold late units.
const COMMAND_QUEUE: usize = 2;
/// Bytes read from the connection per wake-up.
const READ_CHUNK: usize = 64 * 1024;

/// A byte stream a session runs over: TCP, or TLS over TCP.
pub trait SessionStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> SessionStream for T {}

/// Our RTP and RTCP sockets (RTSP over UDP): an even port and the odd one above it (RFC 3550
/// §11).
#[derive(Debug)]
pub struct UdpPair {
    /// The RTP socket.
    pub rtp: UdpSocket,
    /// The RTCP socket.
    pub rtcp: UdpSocket,
    /// Only datagrams from this address are read as RTCP (the server).
    pub server: std::net::IpAddr,
}

/// What a session task owns.
pub struct SessionIo {
    stream: Box<dyn SessionStream>,
    udp: Option<UdpPair>,
}

impl std::fmt::Debug for SessionIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionIo")
            .field("udp", &self.udp)
            .finish_non_exhaustive()
    }
}

impl SessionIo {
    /// A connection, with the UDP sockets of RTSP over UDP if any.
    pub fn new(stream: impl SessionStream, udp: Option<UdpPair>) -> SessionIo {
        SessionIo {
            stream: Box::new(stream),
            udp,
        }
    }
}

#[derive(Debug)]
enum Command {
    Media(Media),
    Close,
}

#[derive(Debug)]
struct Shared<E> {
    stats: PublisherStats,
    /// How the task ended, once it has.
    result: Option<Result<PublisherStats, E>>,
}

type SharedState<E> = Arc<Mutex<Shared<E>>>;

fn lock<E>(s: &Mutex<Shared<E>>) -> MutexGuard<'_, Shared<E>> {
    // The task never panics holding the lock; keep going with what is there if it did.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running publishing session: the handle of the task that drives a [`SessionCore`]. See the
/// [module docs](super) for the rules (errors, close, drop, backpressure).
pub struct Session<C: SessionCore> {
    tx: Option<mpsc::Sender<Command>>,
    task: Option<JoinHandle<()>>,
    shared: SharedState<C::Error>,
    info: C::Info,
    url: String,
    check: MediaCheck,
    closed_error: C::Error,
}

impl<C: SessionCore> std::fmt::Debug for Session<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl<C: SessionCore> Session<C>
where
    C::Error: From<MediaError>,
{
    /// Spawns the task driving `core` over `io` on the current tokio runtime and waits until
    /// the server accepted the publish (every step bounded by the core's timeouts).
    pub async fn start(core: C, io: SessionIo, tracks: &[Track]) -> Result<Session<C>, C::Error> {
        let url = core.url();
        let closed_error = core.closed_error();
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (ready_tx, ready_rx) = oneshot::channel();
        let shared: SharedState<C::Error> = Arc::new(Mutex::new(Shared {
            stats: PublisherStats::default(),
            result: None,
        }));
        let driver = Driver {
            core,
            stream: io.stream,
            udp: io.udp,
            rx,
            ready: Some(ready_tx),
            shared: Arc::clone(&shared),
            current: None,
            read_buf: vec![0; READ_CHUNK],
            udp_buf: vec![0; 2048],
            udp_out: BytesMut::with_capacity(2048),
            slices_hint: 0,
            eof: false,
            closing: false,
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
            sleep_at: None,
        };
        let task = tokio::spawn(driver.run());
        match ready_rx.await {
            Ok(Ok(info)) => Ok(Session {
                tx: Some(tx),
                task: Some(task),
                shared,
                info,
                url,
                check: MediaCheck::new(tracks),
                closed_error,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                // The task ended without a word: its result says why.
                let _ = task.await;
                let ended = lock(&shared).result.take();
                Err(match ended {
                    Some(Err(e)) => e,
                    _ => closed_error,
                })
            }
        }
    }

    /// What the session negotiated.
    pub fn info(&self) -> &C::Info {
        &self.info
    }

    /// The URL, credentials removed.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Queues one media unit (decoding order per track). Refuses a unit the session cannot
    /// carry at once ([`MediaError`], nothing queued); waits while the queue is full; returns
    /// the session's error once it failed.
    pub async fn send(&mut self, media: impl Into<Media>) -> Result<(), C::Error> {
        let media = media.into();
        if let Some(e) = self.failure() {
            return Err(e);
        }
        self.check.check(&media)?;
        let Some(tx) = &self.tx else {
            return Err(self.closed_error.clone());
        };
        if tx.send(Command::Media(media)).await.is_err() {
            self.tx = None;
            return Err(self.ended().await);
        }
        Ok(())
    }

    /// Counters so far and what the server reported (receiver reports, status messages).
    pub fn stats(&self) -> PublisherStats {
        lock(&self.shared).stats.clone()
    }

    /// Ends the session gracefully and waits until the server confirmed it (bounded by the
    /// options' timeouts); returns the final counters.
    pub async fn close(mut self) -> Result<PublisherStats, C::Error> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        if let Some(tx) = self.tx.take() {
            // A closed channel means the task already ended; its result tells why.
            let _ = tx.send(Command::Close).await;
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        match lock(&self.shared).result.clone() {
            Some(r) => r,
            None => Err(self.closed_error.clone()),
        }
    }

    fn failure(&self) -> Option<C::Error> {
        match &lock(&self.shared).result {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        }
    }

    /// The error to report once the task has ended.
    async fn ended(&mut self) -> C::Error {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        match &lock(&self.shared).result {
            Some(Err(e)) => e.clone(),
            _ => self.closed_error.clone(),
        }
    }
}

/// The transmit in progress.
#[derive(Debug)]
enum Current {
    Stream {
        chunks: Chunks,
        offset: usize,
    },
    Rtp {
        dest: SocketAddr,
        packets: Vec<RtpPacket>,
        next: usize,
    },
    Rtcp {
        dest: SocketAddr,
        data: bytes::Bytes,
    },
    Shutdown,
}

/// What woke the task.
enum Wake {
    Read(usize),
    Eof,
    ReadFailed(io::Error),
    Wrote(usize),
    Sent,
    WriteFailed(io::Error),
    ShutDown,
    Rtcp(usize, SocketAddr),
    Command(Option<Command>),
    Timer,
}

struct Driver<C: SessionCore> {
    core: C,
    stream: Box<dyn SessionStream>,
    udp: Option<UdpPair>,
    rx: mpsc::Receiver<Command>,
    ready: Option<oneshot::Sender<Result<C::Info, C::Error>>>,
    shared: SharedState<C::Error>,
    current: Option<Current>,
    read_buf: Vec<u8>,
    udp_buf: Vec<u8>,
    udp_out: BytesMut,
    slices_hint: usize,
    eof: bool,
    closing: bool,
    sleep: Pin<Box<Sleep>>,
    sleep_at: Option<std::time::Instant>,
}

impl<C: SessionCore> Driver<C> {
    async fn run(mut self) {
        let url = self.core.url();
        let result = self.run_inner().await;
        match &result {
            Ok(_) => tracing::debug!(url = %url, "session closed"),
            Err(e) => tracing::debug!(url = %url, error = %e, "session ended with an error"),
        }
        if let (Err(e), Some(ready)) = (&result, self.ready.take()) {
            let _ = ready.send(Err(e.clone()));
        }
        let mut shared = lock(&self.shared);
        shared.stats = self.core.publisher_stats();
        shared.result = Some(result);
    }

    async fn run_inner(&mut self) -> Result<PublisherStats, C::Error> {
        loop {
            if self.drain_events() {
                return Ok(self.core.publisher_stats());
            }
            if self.current.is_none() {
                self.current = self.core.poll_transmit().map(|t| match t {
                    Transmit::Stream(chunks) => Current::Stream { chunks, offset: 0 },
                    Transmit::Shutdown => Current::Shutdown,
                    Transmit::RtpDatagrams { dest, packets } => Current::Rtp {
                        dest,
                        packets,
                        next: 0,
                    },
                    Transmit::RtcpDatagram { dest, data } => Current::Rtcp { dest, data },
                });
            }
            let deadline = self.core.poll_timeout();
            if deadline != self.sleep_at {
                if let Some(d) = deadline {
                    self.sleep.as_mut().reset(Instant::from_std(d));
                }
                self.sleep_at = deadline;
            }
            let wake = poll_fn(|cx| self.poll_wake(cx)).await;
            let now = Instant::now().into_std();
            let counted = matches!(wake, Wake::Wrote(_) | Wake::Command(_) | Wake::Sent);
            match wake {
                Wake::Read(n) => {
                    let data = self.read_buf.get(..n).unwrap_or_default();
                    self.core.handle_input(now, data)?;
                }
                Wake::Eof => {
                    self.eof = true;
                    self.core.handle_eof(now)?;
                }
                Wake::ReadFailed(e) => {
                    self.eof = true;
                    if is_disconnect(&e) {
                        self.core.handle_eof(now)?;
                    } else {
                        return Err(self.core.handle_io_error(now, "reading from the server", e));
                    }
                }
                Wake::Wrote(n) => {
                    self.core.handle_written(now, n);
                    if let Some(Current::Stream { chunks, offset }) = &mut self.current {
                        *offset += n;
                        if *offset >= chunks.len() {
                            self.current = None;
                        }
                    }
                }
                Wake::Sent => {
                    let done = match &mut self.current {
                        Some(Current::Rtp { packets, next, .. }) => {
                            *next += 1;
                            *next >= packets.len()
                        }
                        _ => true,
                    };
                    if done {
                        self.current = None;
                    }
                }
                Wake::WriteFailed(e) => {
                    self.current = None;
                    if is_disconnect(&e) {
                        // The server is gone: whether that is an error depends on where the
                        // session is (after a close it may be the normal end).
                        self.eof = true;
                        self.core.handle_eof(now)?;
                    } else {
                        return Err(self.core.handle_io_error(now, "writing to the server", e));
                    }
                }
                Wake::ShutDown => self.current = None,
                Wake::Rtcp(n, from) => {
                    let server = self.udp.as_ref().map(|u| u.server);
                    if Some(from.ip()) == server {
                        let data = self.udp_buf.get(..n).unwrap_or_default();
                        self.core.handle_datagram(now, data);
                    }
                }
                Wake::Command(Some(Command::Media(media))) => {
                    if let Err(e) = self.core.send(now, &media) {
                        if self.core.failure().is_some() {
                            return Err(e);
                        }
                        tracing::warn!(url = %self.core.url(), error = %e, "media unit dropped");
                    }
                }
                Wake::Command(Some(Command::Close) | None) => {
                    self.closing = true;
                    self.core.close(now)?;
                }
                Wake::Timer => {
                    self.sleep_at = None;
                    self.core.handle_timeout(now)?;
                }
            }
            if counted {
                lock(&self.shared).stats = self.core.publisher_stats();
            }
        }
    }

    /// Handles the core's events; true when the session is over.
    fn drain_events(&mut self) -> bool {
        let mut changed = false;
        while let Some(event) = self.core.poll_event() {
            changed = true;
            match event {
                SessionEvent::Publishing => {
                    tracing::debug!(url = %self.core.url(), "publishing");
                    if let (Some(ready), Some(info)) = (self.ready.take(), self.core.info()) {
                        let _ = ready.send(Ok(info));
                    }
                }
                SessionEvent::ReceiverReport(r) => tracing::debug!(
                    url = %self.core.url(),
                    fraction_lost = r.fraction_lost,
                    cumulative_lost = r.cumulative_lost,
                    jitter_ms = r.jitter.as_secs_f64() * 1e3,
                    rtt_ms = r.round_trip.map(|d| d.as_secs_f64() * 1e3),
                    "RTCP receiver report"
                ),
                SessionEvent::ServerBye => {
                    tracing::info!(url = %self.core.url(), "the server sent RTCP BYE")
                }
                SessionEvent::ServerStatus(s) => tracing::info!(
                    url = %self.core.url(),
                    code = %s.code,
                    description = %s.description,
                    "server status"
                ),
                SessionEvent::Acknowledged(n) => {
                    tracing::trace!(url = %self.core.url(), bytes = n, "acknowledged")
                }
                SessionEvent::Closed => {
                    lock(&self.shared).stats = self.core.publisher_stats();
                    return true;
                }
            }
        }
        if changed {
            lock(&self.shared).stats = self.core.publisher_stats();
        }
        false
    }

    /// Polls every source the task waits on; the first ready one wins.
    fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        // Writing first: a server that floods us must not delay our media.
        if let Some(wake) = self.poll_current(cx) {
            return Poll::Ready(wake);
        }
        if !self.eof {
            let mut buf = ReadBuf::new(&mut self.read_buf);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Wake::Eof),
                Poll::Ready(Ok(())) => return Poll::Ready(Wake::Read(buf.filled().len())),
                Poll::Ready(Err(e)) => return Poll::Ready(Wake::ReadFailed(e)),
                Poll::Pending => {}
            }
        }
        if let Some(udp) = &self.udp {
            let mut buf = ReadBuf::new(&mut self.udp_buf);
            if let Poll::Ready(Ok(from)) = udp.rtcp.poll_recv_from(cx, &mut buf) {
                return Poll::Ready(Wake::Rtcp(buf.filled().len(), from));
            }
            // A RECORD server sends nothing to our RTP port; drain anything that arrives so
            // the socket's buffer does not hold stale data.
            let mut scratch = [0u8; 64];
            let mut buf = ReadBuf::new(&mut scratch);
            while let Poll::Ready(Ok(_)) = udp.rtp.poll_recv_from(cx, &mut buf) {
                buf.clear();
            }
        }
        // Commands only while the core takes media (that is the backpressure `send` feels).
        if !self.closing && self.core.can_send() {
            if let Poll::Ready(cmd) = self.rx.poll_recv(cx) {
                return Poll::Ready(Wake::Command(cmd));
            }
        } else if !self.closing && self.rx.is_closed() && self.rx.is_empty() {
            // The handle was dropped while the queue was full: close after what is queued.
            // Only once the channel is empty too: units still in it were accepted by `send`
            // and are taken above when the core has room (receiving one here, with nowhere
            // to put it, dropped it without a word).
            if let Poll::Ready(None) = self.rx.poll_recv(cx) {
                return Poll::Ready(Wake::Command(None));
            }
        }
        if self.sleep_at.is_some() && self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Wake::Timer);
        }
        Poll::Pending
    }

    fn poll_current(&mut self, cx: &mut Context<'_>) -> Option<Wake> {
        let current = self.current.as_ref()?;
        let polled = match current {
            Current::Stream { chunks, offset } => {
                let mut slices = Vec::with_capacity(self.slices_hint);
                chunks.io_slices(&mut slices);
                self.slices_hint = self.slices_hint.max(slices.len());
                let mut rest: &mut [IoSlice<'_>] = &mut slices;
                if *offset > 0 {
                    IoSlice::advance_slices(&mut rest, *offset);
                }
                match Pin::new(&mut self.stream).poll_write_vectored(cx, rest) {
                    Poll::Ready(Ok(0)) => Poll::Ready(Wake::WriteFailed(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the connection accepts no more bytes",
                    ))),
                    Poll::Ready(Ok(n)) => Poll::Ready(Wake::Wrote(n)),
                    Poll::Ready(Err(e)) => Poll::Ready(Wake::WriteFailed(e)),
                    Poll::Pending => Poll::Pending,
                }
            }
            Current::Shutdown => match Pin::new(&mut self.stream).poll_shutdown(cx) {
                // Shutting down a connection the server already closed is no failure.
                Poll::Ready(_) => Poll::Ready(Wake::ShutDown),
                Poll::Pending => Poll::Pending,
            },
            Current::Rtp {
                dest,
                packets,
                next,
            } => {
                let Some(packet) = packets.get(*next) else {
                    return Some(Wake::Sent);
                };
                self.udp_out.clear();
                packet.write_to(&mut self.udp_out);
                poll_datagram(self.udp.as_ref().map(|u| &u.rtp), cx, &self.udp_out, *dest)
            }
            Current::Rtcp { dest, data } => {
                poll_datagram(self.udp.as_ref().map(|u| &u.rtcp), cx, data, *dest)
            }
        };
        match polled {
            Poll::Ready(w) => Some(w),
            Poll::Pending => None,
        }
    }
}

fn poll_datagram(
    socket: Option<&UdpSocket>,
    cx: &mut Context<'_>,
    data: &[u8],
    dest: SocketAddr,
) -> Poll<Wake> {
    let Some(socket) = socket else {
        return Poll::Ready(Wake::Sent);
    };
    match socket.poll_send_to(cx, data, dest) {
        Poll::Ready(Ok(_)) => Poll::Ready(Wake::Sent),
        // An ICMP port unreachable from an earlier datagram: not fatal for UDP.
        Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            Poll::Ready(Wake::Sent)
        }
        Poll::Ready(Err(e)) => Poll::Ready(Wake::WriteFailed(e)),
        Poll::Pending => Poll::Pending,
    }
}

fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}
