//! Minimal receiving servers that record when each frame arrives on the wire.
//!
//! A [`Sink`] listens on a free loopback port. An acceptor thread hands every connection to a
//! thread of its own; all sockets are blocking, every read and write has a timeout, and the
//! arrival instant of a frame is `Instant::now()` taken right after the `recv` that completed
//! it. Two protocols:
//! - [`rtsp`]: RTSP RECORD (OPTIONS, ANNOUNCE, SETUP, RECORD, GET_PARAMETER, TEARDOWN all
//!   answered 200), RTP over TCP interleaved or UDP, one SETUP per media section of the
//!   ANNOUNCE; a video frame is an RTP packet with the marker bit set (the last packet of an
//!   access unit), an audio arrival is an audio RTP packet with the marker bit set (for AAC,
//!   a packet of whole frames or the last fragment of one).
//! - [`rtmp`]: RTMP publish through rml_rtmp's `ServerSession`; a video frame is a video
//!   message holding an AVC NALU tag (sequence headers and end-of-sequence tags are not
//!   frames), an audio arrival an audio message other than an AAC sequence header.
//!
//! Each frame is marked as a key frame when it holds an IDR slice and, when the sink was
//! started with [`SinkConfig::hash`], carries a hash of its VCL NAL units ([`digest`]), so a
//! frame can be matched with the same frame seen elsewhere (the relay measurement).
//!
//! [`Sink::kill`] stops a sink the way a crashing server would: the listener closes and every
//! open connection is shut down at once (no drain); [`Sink::start_with`] can bind the same
//! port again (the reconnect measurement).
//!
//! Peer bytes are parsed without panicking: a malformed message ends that connection with an
//! error in its [`Session`] record.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub mod digest;
pub mod rtmp;
pub mod rtsp;

/// How long a blocking read waits before the handler checks its stop flag and idle limit.
pub(crate) const POLL: Duration = Duration::from_millis(200);
/// Limit of a single blocking write.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which protocol a [`Sink`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// RTSP RECORD, RTP over TCP interleaved or UDP.
    Rtsp,
    /// RTMP publish.
    Rtmp,
}

/// One frame as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct FrameArrival {
    /// When the `recv` that completed the frame returned.
    pub at: Instant,
    /// Its media timestamp: RTP timestamp (90 kHz) or RTMP timestamp (ms).
    pub timestamp: u32,
    /// It holds an IDR slice.
    pub key: bool,
    /// The hash of its VCL NAL units ([`digest::AuDigest`]), when the sink hashes.
    pub hash: Option<u64>,
}

/// One audio RTP packet or RTMP audio message as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct AudioArrival {
    /// When the `recv` that completed it returned.
    pub at: Instant,
    /// Its media timestamp: RTP timestamp (at the SDP's clock rate; for AAC the first frame's)
    /// or RTMP timestamp (ms).
    pub timestamp: u32,
    /// The audio frames it completes (AAC: the AU headers of an RFC 3640 packet; otherwise 1).
    pub frames: u32,
}

/// A sender report's mapping of a track's RTP timestamps to the sender's wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    /// NTP timestamp (32.32 fixed point seconds).
    pub ntp: u64,
    /// The RTP timestamp that corresponds to it.
    pub rtp: u32,
}

impl SenderReport {
    /// The sender's wall-clock instant of RTP timestamp `ts` at `clock_rate`, as seconds
    /// after this report's NTP instant (negative when earlier).
    pub fn seconds_of(&self, ts: u32, clock_rate: u32) -> f64 {
        f64::from(ts.wrapping_sub(self.rtp) as i32) / f64::from(clock_rate.max(1))
    }

    /// `other`'s NTP instant less this one's, s.
    pub fn ntp_seconds_until(&self, other: &SenderReport) -> f64 {
        other.ntp.wrapping_sub(self.ntp) as i64 as f64 / 4_294_967_296.0
    }
}

/// What one publishing connection delivered.
#[derive(Debug, Clone)]
pub struct Session {
    /// Order of acceptance, from 0.
    pub id: usize,
    /// When the connection was accepted.
    pub accepted_at: Instant,
    /// When the publisher asked to start (the RTSP RECORD request, the RTMP publish command)
    /// arrived.
    pub ready_at: Option<Instant>,
    /// The RTSP request path, or the RTMP `app/stream key`.
    pub name: String,
    /// Video frames in arrival order.
    pub frames: Vec<FrameArrival>,
    /// Video media packets (RTP packets, or RTMP video messages) received.
    pub media_packets: u64,
    /// Video media bytes (RTP packets, or RTMP video message bodies) received.
    pub media_bytes: u64,
    /// Audio packets or messages that complete frames, in arrival order.
    pub audio: Vec<AudioArrival>,
    /// Audio RTP packets or RTMP audio messages received (sequence headers and fragments
    /// included).
    pub audio_packets: u64,
    /// Their bytes (RTP packets, or RTMP audio message bodies).
    pub audio_bytes: u64,
    /// Ticks per second of the audio timestamps: the audio rtpmap's clock rate (RTSP), 1000
    /// (RTMP); `None` before an audio track was seen.
    pub audio_clock_rate: Option<u32>,
    /// RTSP: the first RTCP sender report of the video track.
    pub video_sender_report: Option<SenderReport>,
    /// RTSP: the first RTCP sender report of the audio track.
    pub audio_sender_report: Option<SenderReport>,
    /// The publisher ended properly (TEARDOWN, or the RTMP stream was deleted).
    pub ended_cleanly: bool,
    /// Why the connection ended abnormally, if it did.
    pub error: Option<String>,
}

impl Session {
    pub(crate) fn new(id: usize, accepted_at: Instant) -> Session {
        Session {
            id,
            accepted_at,
            ready_at: None,
            name: String::new(),
            frames: Vec::new(),
            media_packets: 0,
            media_bytes: 0,
            audio: Vec::new(),
            audio_packets: 0,
            audio_bytes: 0,
            audio_clock_rate: None,
            video_sender_report: None,
            audio_sender_report: None,
            ended_cleanly: false,
            error: None,
        }
    }

    /// Video frame arrival instants as seconds after `epoch` (negative when earlier).
    pub fn arrivals_after(&self, epoch: Instant) -> Vec<f64> {
        self.frames
            .iter()
            .map(|f| seconds_between(epoch, f.at))
            .collect()
    }

    /// Audio arrival instants as seconds after `epoch` (negative when earlier).
    pub fn audio_arrivals_after(&self, epoch: Instant) -> Vec<f64> {
        self.audio
            .iter()
            .map(|a| seconds_between(epoch, a.at))
            .collect()
    }
}

/// `to − from` in seconds, negative when `to` is earlier.
pub fn seconds_between(from: Instant, to: Instant) -> f64 {
    match to.checked_duration_since(from) {
        Some(d) => d.as_secs_f64(),
        None => -from.duration_since(to).as_secs_f64(),
    }
}

/// Counters every receiving thread of a sink updates (the UDP receivers hold their own
/// reference).
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Video frames received so far, every connection counted.
    pub(crate) frames: AtomicU64,
    /// The sink was killed: receivers stop at once, without draining.
    pub(crate) killed: AtomicBool,
}

/// State shared by the acceptor, the connection handlers and the owner.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) stop: AtomicBool,
    pub(crate) hash: bool,
    pub(crate) progress: Arc<Progress>,
    live: AtomicUsize,
    done: Mutex<Vec<Session>>,
    handlers: Mutex<Vec<JoinHandle<()>>>,
    /// A second handle of each open connection, by session id, for [`Sink::kill`]; removed
    /// when the connection ends (it would otherwise keep the socket open).
    streams: Mutex<HashMap<usize, TcpStream>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How a sink listens and what it records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkConfig {
    /// The loopback port; 0 for a free one.
    pub port: u16,
    /// A connection that stays silent this long is closed.
    pub idle: Duration,
    /// Hash every frame's VCL NAL units.
    pub hash: bool,
}

impl SinkConfig {
    /// A free port, no hashing.
    pub fn new(idle: Duration) -> SinkConfig {
        SinkConfig {
            port: 0,
            idle,
            hash: false,
        }
    }
}

/// A receiving server on a loopback port; see the module docs.
#[derive(Debug)]
pub struct Sink {
    kind: SinkKind,
    port: u16,
    /// When the listener was bound (it accepts connections from then on).
    pub bound_at: Instant,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Sink {
    /// Starts a sink on a free loopback port. A connection that stays silent for `idle` is
    /// closed.
    pub fn start(kind: SinkKind, idle: Duration) -> io::Result<Sink> {
        Sink::start_with(kind, SinkConfig::new(idle))
    }

    /// Starts a sink as `config` says (the port of a sink that was killed may be bound again:
    /// the standard library sets `SO_REUSEADDR`).
    pub fn start_with(kind: SinkKind, config: SinkConfig) -> io::Result<Sink> {
        let listener = TcpListener::bind(("127.0.0.1", config.port))?;
        let bound_at = Instant::now();
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            hash: config.hash,
            ..Shared::default()
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            let idle = config.idle;
            std::thread::Builder::new()
                .name(format!("sink-accept-{port}"))
                .spawn(move || accept_loop(kind, listener, shared, idle))?
        };
        Ok(Sink {
            kind,
            port,
            bound_at,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Video frames received so far, every connection counted (UDP frames included as they
    /// arrive).
    pub fn frames_seen(&self) -> u64 {
        self.shared.progress.frames.load(Ordering::SeqCst)
    }

    /// Stops the sink like a server that goes away: the listener closes first (new
    /// connections are refused), then every open connection is shut down in both directions
    /// at once, and UDP receivers stop without draining. Returns every session, in order of
    /// acceptance.
    pub fn kill(mut self) -> Vec<Session> {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.progress.killed.store(true, Ordering::SeqCst);
        self.join_acceptor();
        for s in lock(&self.shared.streams).values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.join_handlers();
        let mut done = std::mem::take(&mut *lock(&self.shared.done));
        done.sort_by_key(|s| s.id);
        done
    }

    /// The URL a publisher should use for stream `key`.
    pub fn url(&self, key: &str) -> String {
        match self.kind {
            SinkKind::Rtsp => format!("rtsp://127.0.0.1:{}/{key}", self.port),
            SinkKind::Rtmp => format!("rtmp://127.0.0.1:{}/live/{key}", self.port),
        }
    }

    /// Sessions that have ended so far.
    pub fn ended(&self) -> usize {
        lock(&self.shared.done).len()
    }

    /// Connections still open.
    pub fn live(&self) -> usize {
        self.shared.live.load(Ordering::SeqCst)
    }

    /// Waits until `sessions` connections have ended and none is open, or `timeout` passed;
    /// then stops the sink (open connections are closed) and returns every session, in order
    /// of acceptance.
    pub fn finish(mut self, sessions: usize, timeout: Duration) -> Vec<Session> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && !(self.ended() >= sessions && self.live() == 0) {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        let mut done = std::mem::take(&mut *lock(&self.shared.done));
        done.sort_by_key(|s| s.id);
        done
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.join_acceptor();
        self.join_handlers();
    }

    /// Wakes the blocking accept with a connection of our own (it sees the stop flag) and
    /// waits for the acceptor, which drops the listener.
    fn join_acceptor(&mut self) {
        if let Ok(s) = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_secs(1),
        ) {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }

    fn join_handlers(&mut self) {
        let handlers = std::mem::take(&mut *lock(&self.shared.handlers));
        for h in handlers {
            let _ = h.join();
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.stop();
        }
    }
}

fn accept_loop(kind: SinkKind, listener: TcpListener, shared: Arc<Shared>, idle: Duration) {
    let mut next_id = 0usize;
    loop {
        let accepted = listener.accept();
        let accepted_at = Instant::now();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok((stream, _peer)) = accepted else {
            // EMFILE and the like: back off a little instead of spinning.
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let id = next_id;
        next_id += 1;
        shared.live.fetch_add(1, Ordering::SeqCst);
        if let Ok(handle) = stream.try_clone() {
            lock(&shared.streams).insert(id, handle);
        }
        let handler_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name(format!("sink-conn-{id}"))
            .spawn(move || {
                let mut session = Session::new(id, accepted_at);
                let conn = Conn {
                    stream,
                    shared: &handler_shared,
                    idle,
                    media_seen: Arc::new(AtomicBool::new(false)),
                };
                let result = match kind {
                    SinkKind::Rtsp => rtsp::serve(conn, &mut session),
                    SinkKind::Rtmp => rtmp::serve(conn, &mut session),
                };
                if let Err(e) = result {
                    session.error.get_or_insert(e);
                }
                lock(&handler_shared.streams).remove(&id);
                lock(&handler_shared.done).push(session);
                handler_shared.live.fetch_sub(1, Ordering::SeqCst);
            });
        match spawned {
            Ok(h) => lock(&shared.handlers).push(h),
            Err(_) => {
                lock(&shared.streams).remove(&id);
                shared.live.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// One accepted connection with its limits.
pub(crate) struct Conn<'a> {
    pub(crate) stream: TcpStream,
    pub(crate) shared: &'a Shared,
    pub(crate) idle: Duration,
    /// Set by whoever receives this session's media elsewhere (RTP over UDP): the connection
    /// is then not idle even when the TCP connection is silent.
    pub(crate) media_seen: Arc<AtomicBool>,
}

/// What a [`Conn::read`] produced.
pub(crate) enum Read {
    /// `n` bytes, received at the instant given.
    Data(usize, Instant),
    /// The peer closed its side.
    Eof,
}

impl Conn<'_> {
    /// Sets the socket's timeouts and `TCP_NODELAY` (replies go out at once).
    pub(crate) fn configure(&self) -> Result<(), String> {
        self.stream
            .set_read_timeout(Some(POLL))
            .and_then(|()| self.stream.set_write_timeout(Some(WRITE_TIMEOUT)))
            .and_then(|()| self.stream.set_nodelay(true))
            .map_err(|e| format!("configuring the socket: {e}"))
    }

    /// Reads into `buf`, waiting at most the idle limit; fails when the sink stops or the
    /// peer stays silent that long.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Result<Read, String> {
        let mut deadline = Instant::now() + self.idle;
        loop {
            match io::Read::read(&mut self.stream, buf) {
                Ok(0) => return Ok(Read::Eof),
                Ok(n) => return Ok(Read::Data(n, Instant::now())),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Ok(Read::Eof)
                }
                Err(e) => return Err(format!("reading: {e}")),
            }
            if self.shared.stop.load(Ordering::SeqCst) {
                return Err("the sink stopped with the connection still open".into());
            }
            if self.media_seen.swap(false, Ordering::SeqCst) {
                deadline = Instant::now() + self.idle;
            }
            if Instant::now() >= deadline {
                return Err(format!("no data for {:?}", self.idle));
            }
        }
    }

    /// Writes all of `data` (bounded by the write timeout).
    pub(crate) fn write_all(&mut self, data: &[u8]) -> Result<(), String> {
        io::Write::write_all(&mut self.stream, data).map_err(|e| format!("writing: {e}"))
    }

    /// True once the owner asked the sink to stop.
    pub(crate) fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// Counts `n` more video frames received.
    pub(crate) fn count_frames(&self, n: usize) {
        if n > 0 {
            self.shared
                .progress
                .frames
                .fetch_add(n as u64, Ordering::SeqCst);
        }
    }
}
