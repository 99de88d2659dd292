//! The tokio driver of [`RtspPublisherCore`]: it owns the sockets in a background task, reads
//! the connection continuously (replies, keepalive answers, interleaved RTCP) whether or not
//! the caller is sending, and takes access units from a bounded channel only while the core's
//! send queue has room — so `send` waits instead of buffering without bound.

use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::h264::{AccessUnit, VideoTrack};
use crate::rtp::RtpPacket;
use crate::Transport;

use super::core::{
    ConnectionInfo, Event, Negotiated, PublishStats, RtspOptions, RtspPublisherCore, TcpChunks,
    Transmit,
};
use super::error::{RtspError, Step};
use super::url::RtspUrl;

/// Access units waiting in the channel between [`RtspPublisher::send`] and the driver task.
const COMMAND_QUEUE: usize = 8;
/// Bytes read from the connection per wake-up.
const READ_CHUNK: usize = 64 * 1024;
/// How long to wait for the server to close after TEARDOWN was answered and we shut down
/// our side (closing with unread data would reset the connection).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);
/// Send buffer asked for the UDP RTP socket, so an access unit's burst fits.
const UDP_SEND_BUFFER: usize = 1 << 20;

#[derive(Debug)]
enum Command {
    Media(AccessUnit),
    Close,
}

/// Publishes H.264 to an RTSP server with ANNOUNCE / SETUP / RECORD (RFC 2326 §10), over TCP
/// interleaved or UDP.
///
/// A background task on the caller's tokio runtime owns the connection: it reads the server
/// continuously, answers keepalives and RTCP, and writes media in order. Dropping the
/// publisher without [`close`](Self::close) still ends the session (in the background).
#[derive(Debug)]
pub struct RtspPublisher {
    tx: Option<mpsc::Sender<Command>>,
    task: Option<JoinHandle<Result<PublishStats, RtspError>>>,
    deferred: Arc<Mutex<Option<RtspError>>>,
    negotiated: Negotiated,
    url: String,
    failed: Option<RtspError>,
}

impl RtspPublisher {
    /// Connects to `url` (`rtsp://[user:pass@]host[:port]/path`), announces `track` and
    /// returns once the server accepted RECORD. Each network step is bounded by the timeouts
    /// in `options`.
    pub async fn connect(
        url: &str,
        track: &VideoTrack,
        options: RtspOptions,
    ) -> Result<RtspPublisher, RtspError> {
        let url = RtspUrl::parse(url)?;
        let shown = url.to_string();
        let stream = open(&url, &options).await?;
        stream
            .set_nodelay(true)
            .map_err(|e| RtspError::io("setting TCP_NODELAY", &shown, e))?;
        let peer = stream
            .peer_addr()
            .map_err(|e| RtspError::io("reading the peer address", &shown, e))?;
        let local = stream
            .local_addr()
            .map_err(|e| RtspError::io("reading the local address", &shown, e))?;
        let udp = match options.transport {
            Transport::Udp => Some(
                bind_udp_pair(local.ip())
                    .await
                    .map_err(|e| RtspError::io("binding UDP ports", &shown, e))?,
            ),
            Transport::Tcp => None,
        };
        let client_ports = match &udp {
            Some(u) => Some((
                u.rtp
                    .local_addr()
                    .map_err(|e| RtspError::io("binding UDP ports", &shown, e))?
                    .port(),
                u.rtcp
                    .local_addr()
                    .map_err(|e| RtspError::io("binding UDP ports", &shown, e))?
                    .port(),
            )),
            None => None,
        };
        let conn = ConnectionInfo {
            server_ip: peer.ip(),
            local_ip: local.ip(),
            client_ports,
            seed: rand::random(),
        };
        let request_timeout = options.request_timeout;
        let read_pause_bytes = options.send_queue_bytes.saturating_mul(4).max(16 << 20);
        // The only clock reads: the core gets them as arguments.
        let core = RtspPublisherCore::new(
            url,
            track,
            options,
            conn,
            Instant::now().into_std(),
            SystemTime::now(),
        )?;
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (ready_tx, ready_rx) = oneshot::channel();
        let deferred = Arc::new(Mutex::new(None));
        let driver = Driver {
            core,
            stream,
            udp,
            server_ip: peer.ip(),
            rx,
            ready: Some(ready_tx),
            deferred: Arc::clone(&deferred),
            url: shown.clone(),
            request_timeout,
            read_pause_bytes,
            write: None,
            write_progress: Instant::now(),
            read_buf: vec![0; READ_CHUNK],
            udp_in: vec![0; 4096],
            udp_out: BytesMut::with_capacity(2048),
            closing: false,
            eof: false,
        };
        let task = tokio::spawn(driver.run());
        match ready_rx.await {
            Ok(Ok(negotiated)) => Ok(RtspPublisher {
                tx: Some(tx),
                task: Some(task),
                deferred,
                negotiated,
                url: shown,
                failed: None,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(match task.await {
                Ok(Err(e)) => e,
                _ => RtspError::NotRecording("the driver task ended during setup"),
            }),
        }
    }

    /// The session the server accepted.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// The URL, without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Queues one access unit (decoding order). Waits while the send queue is full. An error
    /// from the session (the server left, a timeout) is returned here; an access unit the
    /// packetizer rejects is dropped and its error returned by the next call.
    pub async fn send(&mut self, au: &AccessUnit) -> Result<(), RtspError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if let Some(e) = self.take_deferred() {
            return Err(e);
        }
        let Some(tx) = &self.tx else {
            return Err(RtspError::NotRecording("closed"));
        };
        if tx.send(Command::Media(au.clone())).await.is_err() {
            return Err(self.task_error().await);
        }
        Ok(())
    }

    /// Ends the session (RTCP BYE, TEARDOWN; over UDP after the server acknowledged the last
    /// packet or a bounded wait) and returns what was sent.
    pub async fn close(mut self) -> Result<PublishStats, RtspError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if let Some(tx) = self.tx.take() {
            // A closed channel means the task already ended; its result tells why.
            let _ = tx.send(Command::Close).await;
        }
        let result = match self.task.take() {
            Some(h) => match h.await {
                Ok(r) => r,
                Err(_) => Err(RtspError::NotRecording("the driver task was cancelled")),
            },
            None => Err(RtspError::NotRecording("closed")),
        };
        let stats = result?;
        match self.take_deferred() {
            Some(e) => Err(e),
            None => Ok(stats),
        }
    }

    fn take_deferred(&self) -> Option<RtspError> {
        self.deferred.lock().ok().and_then(|mut g| g.take())
    }

    async fn task_error(&mut self) -> RtspError {
        let e = match self.task.take() {
            Some(h) => match h.await {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => RtspError::NotRecording("closed"),
                Err(_) => RtspError::NotRecording("the driver task was cancelled"),
            },
            None => RtspError::NotRecording("failed"),
        };
        self.failed = Some(e.clone());
        self.tx = None;
        e
    }
}

/// Resolves and connects, each within `connect_timeout`.
async fn open(url: &RtspUrl, opts: &RtspOptions) -> Result<TcpStream, RtspError> {
    let host = url.host();
    let shown = url.to_string();
    let limit = opts.connect_timeout;
    let lookup = tokio::net::lookup_host((host.clone(), url.port()));
    let resolved = tokio::time::timeout(limit, lookup)
        .await
        .map_err(|_| RtspError::Timeout {
            step: Step::Resolve,
            after: limit,
            url: shown.clone(),
        })?;
    let addrs: Vec<SocketAddr> = match resolved {
        Ok(a) => a.collect(),
        Err(e) => {
            return Err(RtspError::Dns {
                host,
                url: shown,
                source: Arc::new(e),
            })
        }
    };
    if addrs.is_empty() {
        return Err(RtspError::Dns {
            host,
            url: shown,
            source: Arc::new(io::Error::new(io::ErrorKind::NotFound, "no addresses")),
        });
    }
    let deadline = Instant::now() + limit;
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(RtspError::Timeout {
                    step: Step::Connect,
                    after: limit,
                    url: shown,
                })
            }
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                last = Some(RtspError::ConnectionRefused {
                    addr,
                    url: shown.clone(),
                });
            }
            Ok(Err(e)) => last = Some(RtspError::io("connecting", &shown, e)),
        }
    }
    Err(last.unwrap_or(RtspError::ConnectionRefused {
        addr: SocketAddr::new(IpAddr::from([0, 0, 0, 0]), url.port()),
        url: shown,
    }))
}

#[derive(Debug)]
struct UdpPair {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

/// Binds an even RTP port and the odd port above it for RTCP (RFC 3550 §11).
async fn bind_udp_pair(ip: IpAddr) -> io::Result<UdpPair> {
    for _ in 0..64 {
        let rtp = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, port + 1)).await {
            // Best effort: a larger send buffer absorbs an access unit's burst.
            let _ = socket2::SockRef::from(&rtp).set_send_buffer_size(UDP_SEND_BUFFER);
            return Ok(UdpPair { rtp, rtcp });
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free even/odd UDP port pair",
    ))
}

/// The background task.
#[derive(Debug)]
struct Driver {
    core: RtspPublisherCore,
    stream: TcpStream,
    udp: Option<UdpPair>,
    server_ip: IpAddr,
    rx: mpsc::Receiver<Command>,
    ready: Option<oneshot::Sender<Result<Negotiated, RtspError>>>,
    deferred: Arc<Mutex<Option<RtspError>>>,
    url: String,
    request_timeout: Duration,
    /// Reading pauses while more than this is queued for writing: only answers to a server
    /// that floods us with requests while not reading our replies can get there.
    read_pause_bytes: usize,
    /// The TCP write in progress and how many of its bytes are written.
    write: Option<(TcpChunks, usize)>,
    write_progress: Instant,
    read_buf: Vec<u8>,
    udp_in: Vec<u8>,
    udp_out: BytesMut,
    closing: bool,
    eof: bool,
}

impl Driver {
    async fn run(mut self) -> Result<PublishStats, RtspError> {
        let result = self.run_inner().await;
        if let Err(e) = &result {
            if let Some(ready) = self.ready.take() {
                let _ = ready.send(Err(e.clone()));
            }
        }
        result
    }

    async fn run_inner(&mut self) -> Result<PublishStats, RtspError> {
        loop {
            while let Some(ev) = self.core.poll_event() {
                match ev {
                    Event::Recording(n) => {
                        if let Some(ready) = self.ready.take() {
                            let _ = ready.send(Ok(n));
                        }
                    }
                    Event::Closed => {
                        self.finish().await;
                        return Ok(self.core.stats());
                    }
                    _ => {}
                }
            }
            while self.write.is_none() {
                match self.core.poll_transmit() {
                    None => break,
                    Some(Transmit::Tcp(chunks)) => {
                        self.write = Some((chunks, 0));
                        self.write_progress = Instant::now();
                        // Most writes complete at once: no need to wait for readiness.
                        self.try_write()?;
                    }
                    Some(Transmit::UdpRtp { dest, packets }) => {
                        self.send_rtp(dest, &packets).await?;
                    }
                    Some(Transmit::UdpRtcp { dest, data }) => {
                        self.send_rtcp(dest, &data).await?;
                    }
                }
            }

            let write_deadline = self
                .write
                .as_ref()
                .map(|_| self.write_progress + self.request_timeout);
            let core_deadline = self.core.poll_timeout().map(Instant::from_std);
            let deadline = match (write_deadline, core_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // Commands (media, and the close behind them) are taken only while the core's queue
            // has room: that is the backpressure `send` feels.
            let accepting = !self.closing && self.core.can_send();
            let reading = !self.eof && self.core.queued_bytes() <= self.read_pause_bytes;
            let writing = self.write.is_some();
            let udp = self.udp.as_ref();

            tokio::select! {
                r = self.stream.readable(), if reading => {
                    r.map_err(|e| RtspError::io("reading from the server", &self.url, e))?;
                    self.read_once()?;
                }
                r = self.stream.writable(), if writing => {
                    r.map_err(|e| RtspError::io("writing to the server", &self.url, e))?;
                    self.try_write()?;
                }
                cmd = self.rx.recv(), if accepting => match cmd {
                    Some(Command::Media(au)) => {
                        if let Err(e) = self.core.send(Instant::now().into_std(), &au) {
                            match e {
                                RtspError::Packetize(_) | RtspError::QueueFull { .. } => {
                                    if let Ok(mut slot) = self.deferred.lock() {
                                        slot.get_or_insert(e);
                                    }
                                }
                                e => return Err(e),
                            }
                        }
                    }
                    Some(Command::Close) | None => {
                        self.closing = true;
                        self.core.close(Instant::now().into_std())?;
                    }
                },
                () = sleep_until_opt(deadline) => {
                    let now = Instant::now();
                    if write_deadline.is_some_and(|d| now >= d) && self.write.is_some() {
                        return Err(RtspError::Timeout {
                            step: Step::Write,
                            after: self.request_timeout,
                            url: self.url.clone(),
                        });
                    }
                    self.core.handle_timeout(now.into_std())?;
                }
                r = recv_opt(udp.map(|u| &u.rtcp), &mut self.udp_in) => {
                    if let Ok((n, from)) = r {
                        if from.ip() == self.server_ip {
                            let data = self.udp_in.get(..n).unwrap_or_default();
                            self.core.handle_rtcp(Instant::now().into_std(), data);
                        }
                    }
                }
                _ = recv_discard(udp.map(|u| &u.rtp)) => {}
            }
        }
    }

    /// One read from the connection into the core.
    fn read_once(&mut self) -> Result<(), RtspError> {
        let now = Instant::now().into_std();
        match self.stream.try_read(&mut self.read_buf) {
            Ok(0) => {
                self.eof = true;
                self.core.handle_eof(now)
            }
            Ok(n) => {
                let data = self.read_buf.get(..n).unwrap_or_default();
                self.core.handle_input(now, data)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) if is_disconnect(&e) => {
                self.eof = true;
                self.core.handle_eof(now)
            }
            Err(e) => Err(RtspError::io("reading from the server", &self.url, e)),
        }
    }

    /// Writes as much of the current TCP transmit as the socket takes, in vectored writes
    /// (one for a whole access unit unless the kernel takes less).
    fn try_write(&mut self) -> Result<(), RtspError> {
        loop {
            let Some((chunks, offset)) = &mut self.write else {
                return Ok(());
            };
            let mut slices = Vec::new();
            chunks.io_slices(&mut slices);
            let mut rest: &mut [IoSlice<'_>] = &mut slices;
            if *offset > 0 {
                IoSlice::advance_slices(&mut rest, *offset);
            }
            match self.stream.try_write_vectored(rest) {
                Ok(0) => {
                    return Err(RtspError::ConnectionClosed {
                        during: "while writing".into(),
                        url: self.url.clone(),
                    })
                }
                Ok(n) => {
                    *offset += n;
                    let done = *offset >= chunks.len();
                    self.write_progress = Instant::now();
                    if done {
                        self.write = None;
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if is_disconnect(&e) => {
                    // The server is gone: whether that is an error depends on the session
                    // state (after our BYE it is the end of a normal session).
                    self.write = None;
                    self.eof = true;
                    return self.core.handle_eof(Instant::now().into_std());
                }
                Err(e) => return Err(RtspError::io("writing to the server", &self.url, e)),
            }
        }
    }

    async fn send_rtp(&mut self, dest: SocketAddr, packets: &[RtpPacket]) -> Result<(), RtspError> {
        let Some(udp) = &self.udp else {
            return Ok(());
        };
        for p in packets {
            self.udp_out.clear();
            p.write_to(&mut self.udp_out);
            match udp.rtp.send_to(&self.udp_out, dest).await {
                Ok(_) => {}
                // An ICMP port unreachable from an earlier datagram: not fatal for UDP.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(RtspError::io("sending RTP", &self.url, e)),
            }
        }
        Ok(())
    }

    async fn send_rtcp(&mut self, dest: SocketAddr, data: &[u8]) -> Result<(), RtspError> {
        let Some(udp) = &self.udp else {
            return Ok(());
        };
        match udp.rtcp.send_to(data, dest).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
            Err(e) => Err(RtspError::io("sending RTCP", &self.url, e)),
        }
    }

    /// After TEARDOWN: flush, shut our side down, and read until the server closes (bounded),
    /// so unread bytes do not make the kernel reset the connection.
    async fn finish(&mut self) {
        let _ = tokio::time::timeout(SHUTDOWN_WAIT, async {
            while self.write.is_some() {
                if self.stream.writable().await.is_err() || self.try_write().is_err() {
                    break;
                }
            }
            let _ = self.stream.shutdown().await;
            while !self.eof {
                match self.stream.read(&mut self.read_buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
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

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn recv_opt(sock: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Reads and drops datagrams arriving on our RTP port (a RECORD server sends none; this keeps
/// the socket's buffer from holding stale data).
async fn recv_discard(sock: Option<&UdpSocket>) {
    let mut buf = [0u8; 2048];
    match sock {
        Some(s) => {
            let _ = s.recv_from(&mut buf).await;
        }
        None => std::future::pending().await,
    }
}
