//! The tokio driver every publishing session uses. The connection (and, for RTSP over UDP, the
//! RTP/RTCP sockets) and the [`SessionCore`] sit together behind one lock:
//!
//! - [`Session::send`] hands a media unit to the core and writes what it produced right away,
//!   on the caller's thread, as far as the socket takes it without waiting: a paced sender
//!   hands each frame to no other thread.
//! - One task on the runtime does everything that waits: it reads the connection (replies,
//!   keepalive answers, RTCP, acknowledgements) whether or not anyone sends, finishes writes
//!   the socket did not take at once, and calls the core at its deadlines. The caller wakes it
//!   only when there is something for it: a write left over, an event, an earlier deadline,
//!   the close.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use super::{Chunks, Media, MediaCheck, MediaError, PublisherStats, SessionCore, SessionEvent};
use super::{Track, Transmit};
use crate::rtp::RtpPacket;

/// Bytes read from the connection per wake-up.
const READ_CHUNK: usize = 64 * 1024;

/// A byte stream a session runs over: TCP, or TLS over TCP.
pub trait SessionStream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> SessionStream for T {}

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

/// What a session owns of the network.
pub struct SessionIo {
    stream: Box<dyn SessionStream>,
    udp: Vec<UdpPair>,
    flush: bool,
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
        SessionIo::with_udp_pairs(stream, udp.into_iter().collect())
    }

    /// A connection with one UDP socket pair per track (RTSP over UDP; empty otherwise):
    /// [`Transmit::RtpDatagrams`] and [`Transmit::RtcpDatagram`] name the pair by index.
    pub fn with_udp_pairs(stream: impl SessionStream, udp: Vec<UdpPair>) -> SessionIo {
        SessionIo {
            stream: Box::new(stream),
            udp,
            flush: false,
        }
    }

    /// An opened connection ([`crate::net::connect_stream`]), with the UDP socket pairs of RTSP
    /// over UDP (empty otherwise). A TLS stream is flushed after each transmit: TLS may keep
    /// encrypted bytes the socket did not take, which only a flush (or the next write) sends.
    pub fn connected(conn: crate::net::Connected, udp: Vec<UdpPair>) -> SessionIo {
        SessionIo {
            stream: conn.stream,
            udp,
            flush: conn.tls,
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
        socket: usize,
        dest: SocketAddr,
        packets: Vec<RtpPacket>,
        next: usize,
    },
    Rtcp {
        socket: usize,
        dest: SocketAddr,
        data: Bytes,
    },
    /// Pushing out what the TLS layer still holds of the last transmit.
    Flush,
    Shutdown,
}

/// The core and the connection, behind the session's lock.
struct Inner<C: SessionCore> {
    core: C,
    stream: Box<dyn SessionStream>,
    udp: Vec<UdpPair>,
    /// Flush the stream after each transmit on it (TLS).
    flush: bool,
    current: Option<Current>,
    read_buf: Vec<u8>,
    udp_buf: Vec<u8>,
    udp_out: BytesMut,
    eof: bool,
    /// The task's waker (set at each of its polls).
    task: Option<Waker>,
    /// The deadline the task's timer is set for.
    armed: Option<Instant>,
    ready: Option<oneshot::Sender<Result<C::Info, C::Error>>>,
    /// How the session ended, once it has.
    result: Option<Result<PublisherStats, C::Error>>,
}

struct Shared<C: SessionCore> {
    inner: Mutex<Inner<C>>,
    /// Signalled when the core's queue has room again, and when the session ends.
    room: Notify,
}

impl<C: SessionCore> Shared<C> {
    fn lock(&self) -> MutexGuard<'_, Inner<C>> {
        // Nothing panics while holding the lock; keep going with what is there if it did.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running publishing session: a [`SessionCore`] and its connection, with the task that
/// reads and keeps time. See the [module docs](super) for the rules (errors, close, drop,
/// backpressure).
pub struct Session<C: SessionCore> {
    shared: Arc<Shared<C>>,
    task: Option<JoinHandle<()>>,
    info: C::Info,
    url: String,
    check: MediaCheck,
    closed_error: C::Error,
    closed: bool,
}

impl<C: SessionCore> std::fmt::Debug for Session<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// What one attempt to send gave.
enum Sent {
    Done,
    /// The core's queue is full: wait for room.
    Full,
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
        let (ready_tx, ready_rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                core,
                stream: io.stream,
                udp: io.udp,
                flush: io.flush,
                current: None,
                read_buf: vec![0; READ_CHUNK],
                udp_buf: vec![0; 2048],
                udp_out: BytesMut::with_capacity(2048),
                eof: false,
                task: None,
                armed: None,
                ready: Some(ready_tx),
                result: None,
            }),
            room: Notify::new(),
        });
        let task = tokio::spawn(run(Arc::clone(&shared)));
        match ready_rx.await {
            Ok(Ok(info)) => Ok(Session {
                shared,
                task: Some(task),
                info,
                url,
                check: MediaCheck::new(tracks),
                closed_error,
                closed: false,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                // The task ended without a word: its result says why.
                let _ = task.await;
                let ended = shared.lock().result.take();
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

    /// Hands one media unit to the session (decoding order per track) and writes it out as far
    /// as the connection takes it at once. Refuses a unit the session cannot carry at once
    /// ([`MediaError`], nothing queued); waits while the queue is full; returns the session's
    /// error once it failed.
    pub async fn send(&mut self, media: impl Into<Media>) -> Result<(), C::Error> {
        let media = media.into();
        if let Some(e) = self.failure() {
            return Err(e);
        }
        self.check.check(&media)?;
        let shared = Arc::clone(&self.shared);
        loop {
            let room = shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.offer(&media)? {
                Sent::Done => return Ok(()),
                Sent::Full => room.await,
            }
        }
    }

    /// Like [`send`](Self::send), but never waits: `Ok(false)` when the queue is full and the
    /// unit was not taken. A publisher feeding several destinations from one timeline uses it,
    /// so that a slow destination drops to its next key frame instead of holding the others.
    pub fn try_send(&mut self, media: impl Into<Media>) -> Result<bool, C::Error> {
        let media = media.into();
        if let Some(e) = self.failure() {
            return Err(e);
        }
        self.check.check(&media)?;
        match self.offer(&media)? {
            Sent::Done => Ok(true),
            Sent::Full => Ok(false),
        }
    }

    /// Counters so far and what the server reported (receiver reports, status messages).
    pub fn stats(&self) -> PublisherStats {
        let inner = self.shared.lock();
        match &inner.result {
            Some(Ok(stats)) => stats.clone(),
            _ => inner.core.publisher_stats(),
        }
    }

    /// Ends the session gracefully and waits until the server confirmed it (bounded by the
    /// options' timeouts); returns the final counters.
    pub async fn close(mut self) -> Result<PublisherStats, C::Error> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        self.begin_close();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        match self.shared.lock().result.clone() {
            Some(r) => r,
            None => Err(self.closed_error.clone()),
        }
    }

    fn failure(&self) -> Option<C::Error> {
        match &self.shared.lock().result {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        }
    }

    fn offer(&self, media: &Media) -> Result<Sent, C::Error> {
        let mut inner = self.shared.lock();
        match &inner.result {
            Some(Err(e)) => return Err(e.clone()),
            Some(Ok(_)) => return Err(self.closed_error.clone()),
            None => {}
        }
        if !inner.core.can_send() {
            return Ok(Sent::Full);
        }
        let now = crate::clock::now();
        if let Err(e) = inner.core.send(now, media) {
            if inner.core.failure().is_some() {
                inner.wake_task();
                return Err(e);
            }
            tracing::warn!(url = %self.url, error = %e, "media unit dropped");
        }
        inner.write_now(now);
        Ok(Sent::Done)
    }

    /// Starts the close (once): the core queues its goodbye, which goes out now as far as the
    /// connection takes it; the task does the rest.
    fn begin_close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut inner = self.shared.lock();
        if inner.result.is_some() {
            return;
        }
        let now = crate::clock::now();
        if inner.core.close(now).is_ok() {
            inner.write_now(now);
        }
        inner.wake_task();
    }
}

impl<C: SessionCore> Drop for Session<C> {
    /// Ends the session in the background, as [`Session::close`] would, while the runtime runs.
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut inner = self.shared.lock();
        if inner.result.is_none() {
            let now = crate::clock::now();
            let _ = inner.core.close(now);
            inner.wake_task();
        }
    }
}

/// What one step of the task did.
enum Step {
    /// Something happened: look again.
    Progress,
    /// Nothing is ready; wake at this deadline (if any).
    Idle(Option<Instant>),
    /// The session is over.
    Done,
}

/// The task: reads, finishes writes, keeps time, until the session is over.
async fn run<C: SessionCore>(shared: Arc<Shared<C>>) {
    let url = shared.lock().core.url();
    let mut sleep = Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
        crate::clock::now(),
    )));
    let mut sleep_at: Option<Instant> = None;
    poll_fn(|cx| {
        let mut inner = shared.lock();
        if !inner.task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            inner.task = Some(cx.waker().clone());
        }
        loop {
            match inner.step(cx) {
                Step::Progress => {
                    if inner.core.can_send() {
                        shared.room.notify_waiters();
                    }
                }
                Step::Done => return Poll::Ready(()),
                Step::Idle(deadline) => {
                    if deadline != sleep_at {
                        if let Some(d) = deadline {
                            sleep.as_mut().reset(tokio::time::Instant::from_std(d));
                        }
                        sleep_at = deadline;
                    }
                    inner.armed = deadline;
                    if sleep_at.is_some() && sleep.as_mut().poll(cx).is_ready() {
                        sleep_at = None;
                        let now = crate::clock::now();
                        if let Err(e) = inner.core.handle_timeout(now) {
                            inner.finish(Err(e));
                            return Poll::Ready(());
                        }
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    })
    .await;
    let outcome = {
        let inner = shared.lock();
        match &inner.result {
            Some(Ok(_)) => "closed".to_string(),
            Some(Err(e)) => format!("ended with an error: {e}"),
            None => "ended".to_string(),
        }
    };
    tracing::debug!(url = %url, "session {outcome}");
    shared.room.notify_waiters();
}

impl<C: SessionCore> Inner<C> {
    /// Records how the session ended and tells whoever waits for the start.
    fn finish(&mut self, result: Result<PublisherStats, C::Error>) {
        if let (Err(e), Some(ready)) = (&result, self.ready.take()) {
            let _ = ready.send(Err(e.clone()));
        }
        self.result.get_or_insert(result);
    }

    fn wake_task(&self) {
        if let Some(w) = &self.task {
            w.wake_by_ref();
        }
    }

    /// Writes what the core queued as far as the connection takes it without waiting (on the
    /// sender's thread), then wakes the task if it has something to do.
    fn write_now(&mut self, now: Instant) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut needs_task = false;
        loop {
            if self.current.is_none() {
                self.current = self.core.poll_transmit().map(Current::from);
            }
            if self.current.is_none() {
                break;
            }
            match self.poll_current(&mut cx) {
                // The connection is full: the task waits until it takes more. (Polling with a
                // waker that does nothing replaced the task's: it polls again to register.)
                None => {
                    needs_task = true;
                    break;
                }
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    let r = self.after_write_error(now, e);
                    if let Err(e) = r {
                        self.finish(Err(e));
                    }
                    needs_task = true;
                    break;
                }
            }
        }
        let earlier = match (self.core.poll_timeout(), self.armed) {
            (Some(d), Some(a)) => d < a,
            (Some(_), None) => true,
            _ => false,
        };
        if needs_task || earlier || self.result.is_some() {
            self.wake_task();
        }
    }

    /// One step of the task; see [`Step`].
    fn step(&mut self, cx: &mut Context<'_>) -> Step {
        if self.result.is_some() {
            return Step::Done;
        }
        if let Some(done) = self.drain_events() {
            self.finish(Ok(done));
            return Step::Done;
        }
        let now = crate::clock::now();
        if self.current.is_none() {
            self.current = self.core.poll_transmit().map(Current::from);
        }
        match self.poll_current(cx) {
            Some(Ok(())) => return Step::Progress,
            Some(Err(e)) => {
                return match self.after_write_error(now, e) {
                    Ok(()) => Step::Progress,
                    Err(e) => {
                        self.finish(Err(e));
                        Step::Done
                    }
                }
            }
            None => {}
        }
        match self.poll_input(cx) {
            Some(Ok(())) => Step::Progress,
            Some(Err(e)) => {
                self.finish(Err(e));
                Step::Done
            }
            None => Step::Idle(self.core.poll_timeout()),
        }
    }

    /// Handles the core's events; the final counters when the session is over.
    fn drain_events(&mut self) -> Option<PublisherStats> {
        while let Some(event) = self.core.poll_event() {
            let url = self.core.url();
            match event {
                SessionEvent::Publishing => {
                    tracing::debug!(url = %url, "publishing");
                    if let (Some(ready), Some(info)) = (self.ready.take(), self.core.info()) {
                        let _ = ready.send(Ok(info));
                    }
                }
                SessionEvent::ReceiverReport(r) => tracing::debug!(
                    url = %url,
                    fraction_lost = r.fraction_lost,
                    cumulative_lost = r.cumulative_lost,
                    jitter_ms = r.jitter.as_secs_f64() * 1e3,
                    rtt_ms = r.round_trip.map(|d| d.as_secs_f64() * 1e3),
                    "RTCP receiver report"
                ),
                SessionEvent::ServerBye => tracing::info!(url = %url, "the server sent RTCP BYE"),
                SessionEvent::ServerStatus(s) => tracing::info!(
                    url = %url,
                    code = %s.code,
                    description = %s.description,
                    "server status"
                ),
                SessionEvent::Acknowledged(n) => {
                    tracing::trace!(url = %url, bytes = n, "acknowledged")
                }
                SessionEvent::Closed => return Some(self.core.publisher_stats()),
            }
        }
        None
    }

    /// Polls the transmit in progress: `Some(Ok)` when it moved, `None` when it must wait.
    fn poll_current(&mut self, cx: &mut Context<'_>) -> Option<io::Result<()>> {
        let now = crate::clock::now();
        let mut written = 0;
        let mut finished = false;
        let polled = match self.current.as_mut()? {
            Current::Stream { chunks, offset } => {
                let mut slices = Vec::with_capacity(16);
                chunks.io_slices(&mut slices);
                let mut rest: &mut [IoSlice<'_>] = &mut slices;
                if *offset > 0 {
                    IoSlice::advance_slices(&mut rest, *offset);
                }
                match Pin::new(&mut self.stream).poll_write_vectored(cx, rest) {
                    Poll::Ready(Ok(0)) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the connection accepts no more bytes",
                    ))),
                    Poll::Ready(Ok(n)) => {
                        *offset += n;
                        written = n;
                        finished = *offset >= chunks.len();
                        Poll::Ready(Ok(()))
                    }
                    other => other.map_ok(|_| ()),
                }
            }
            Current::Flush => Pin::new(&mut self.stream).poll_flush(cx).map(|r| {
                finished = r.is_ok();
                r
            }),
            // Shutting down a connection the server already closed is no failure.
            Current::Shutdown => Pin::new(&mut self.stream).poll_shutdown(cx).map(|_| {
                finished = true;
                Ok(())
            }),
            Current::Rtp {
                socket,
                dest,
                packets,
                next,
            } => {
                let rest = packets.get(*next..).unwrap_or_default();
                if rest.is_empty() {
                    finished = true;
                    Poll::Ready(Ok(()))
                } else {
                    let socket = self.udp.get(*socket).map(|u| &u.rtp);
                    match poll_datagrams(socket, cx, rest, *dest, &mut self.udp_out) {
                        Poll::Ready(Ok(sent)) => {
                            *next += sent;
                            Poll::Ready(Ok(()))
                        }
                        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                        Poll::Pending => Poll::Pending,
                    }
                }
            }
            Current::Rtcp { socket, dest, data } => {
                let socket = self.udp.get(*socket).map(|u| &u.rtcp);
                let sent = poll_datagram(socket, cx, data, *dest);
                finished = matches!(sent, Poll::Ready(Ok(())));
                sent
            }
        };
        if written > 0 {
            self.core.handle_written(now, written);
        }
        if finished {
            let flush_next = self.flush && matches!(self.current, Some(Current::Stream { .. }));
            self.current = flush_next.then_some(Current::Flush);
        }
        match polled {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }

    /// A write failed: the server being gone is the core's to judge (after a close it may be
    /// the normal end); anything else fails the session.
    fn after_write_error(&mut self, now: Instant, e: io::Error) -> Result<(), C::Error> {
        self.current = None;
        if is_disconnect(&e) {
            self.eof = true;
            self.core.handle_eof(now)
        } else {
            Err(self.core.handle_io_error(now, "writing to the server", e))
        }
    }

    /// Polls the connection and the RTCP socket: `Some(Ok)` when something was handled.
    fn poll_input(&mut self, cx: &mut Context<'_>) -> Option<Result<(), C::Error>> {
        let now = crate::clock::now();
        if !self.eof {
            let mut buf = ReadBuf::new(&mut self.read_buf);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    self.eof = true;
                    return Some(self.core.handle_eof(now));
                }
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    let data = self.read_buf.get(..n).unwrap_or_default();
                    return Some(self.core.handle_input(now, data));
                }
                Poll::Ready(Err(e)) => {
                    self.eof = true;
                    return Some(if is_disconnect(&e) {
                        self.core.handle_eof(now)
                    } else {
                        Err(self.core.handle_io_error(now, "reading from the server", e))
                    });
                }
                Poll::Pending => {}
            }
        }
        for udp in &self.udp {
            let mut buf = ReadBuf::new(&mut self.udp_buf);
            if let Poll::Ready(Ok(from)) = udp.rtcp.poll_recv_from(cx, &mut buf) {
                let n = buf.filled().len();
                if from.ip() == udp.server {
                    let data = self.udp_buf.get(..n).unwrap_or_default();
                    self.core.handle_datagram(now, data);
                }
                return Some(Ok(()));
            }
            // A RECORD server sends nothing to our RTP port; drain anything that arrives so
            // the socket's buffer does not hold stale data.
            let mut scratch = [0u8; 64];
            let mut buf = ReadBuf::new(&mut scratch);
            while let Poll::Ready(Ok(_)) = udp.rtp.poll_recv_from(cx, &mut buf) {
                buf.clear();
            }
        }
        None
    }
}

impl From<Transmit> for Current {
    fn from(t: Transmit) -> Current {
        match t {
            Transmit::Stream(chunks) => Current::Stream { chunks, offset: 0 },
            Transmit::Shutdown => Current::Shutdown,
            Transmit::RtpDatagrams {
                socket,
                dest,
                packets,
            } => Current::Rtp {
                socket,
                dest,
                packets,
                next: 0,
            },
            Transmit::RtcpDatagram { socket, dest, data } => Current::Rtcp { socket, dest, data },
        }
    }
}

/// Sends as many of `packets` as the socket takes now, one datagram each; returns how many
/// went out. On Linux they leave in one `sendmmsg` per batch, each datagram gathered from the
/// packet's header and its slices of the access unit (no copy); elsewhere one `sendto` each.
fn poll_datagrams(
    socket: Option<&UdpSocket>,
    cx: &mut Context<'_>,
    packets: &[RtpPacket],
    dest: SocketAddr,
    scratch: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let Some(socket) = socket else {
        return Poll::Ready(Ok(packets.len()));
    };
    loop {
        match socket.poll_send_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        match socket.try_io(tokio::io::Interest::WRITABLE, || {
            send_batch(socket, packets, dest, scratch)
        }) {
            // The kernel sends at least one datagram when it reports success.
            Ok(n) => return Poll::Ready(Ok(n.max(1))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            // An ICMP port unreachable from an earlier datagram: not fatal for UDP. The failed
            // call consumed it; the caller tries the same datagrams again.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Poll::Ready(Ok(0)),
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

/// The most datagrams one `sendmmsg` carries.
#[cfg(target_os = "linux")]
const BATCH: usize = 64;

#[cfg(target_os = "linux")]
fn send_batch(
    socket: &UdpSocket,
    packets: &[RtpPacket],
    dest: SocketAddr,
    _scratch: &mut BytesMut,
) -> io::Result<usize> {
    use rustix::net::addr::SocketAddrArg;
    use rustix::net::{sendmmsg, MMsgHdr, SendAncillaryBuffer, SendFlags};
    let batch = packets.get(..BATCH.min(packets.len())).unwrap_or_default();
    let addr = dest.as_any();
    let iovs: Vec<Vec<IoSlice<'_>>> = batch
        .iter()
        .map(|p| {
            let mut v = Vec::with_capacity(4);
            p.io_slices(&mut v);
            v
        })
        .collect();
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = batch
        .iter()
        .map(|_| SendAncillaryBuffer::default())
        .collect();
    let mut msgs: Vec<MMsgHdr<'_>> = iovs
        .iter()
        .zip(controls.iter_mut())
        .map(|(iov, control)| MMsgHdr::new_with_addr(&addr, iov, control))
        .collect();
    Ok(sendmmsg(socket, &mut msgs, SendFlags::empty())?)
}

#[cfg(not(target_os = "linux"))]
fn send_batch(
    socket: &UdpSocket,
    packets: &[RtpPacket],
    dest: SocketAddr,
    scratch: &mut BytesMut,
) -> io::Result<usize> {
    let Some(packet) = packets.first() else {
        return Ok(0);
    };
    scratch.clear();
    packet.write_to(scratch);
    socket.try_send_to(scratch, dest)?;
    Ok(1)
}

fn poll_datagram(
    socket: Option<&UdpSocket>,
    cx: &mut Context<'_>,
    data: &[u8],
    dest: SocketAddr,
) -> Poll<io::Result<()>> {
    let Some(socket) = socket else {
        return Poll::Ready(Ok(()));
    };
    match socket.poll_send_to(cx, data, dest) {
        Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
        // An ICMP port unreachable from an earlier datagram: not fatal for UDP.
        Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Poll::Ready(Ok(())),
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
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
