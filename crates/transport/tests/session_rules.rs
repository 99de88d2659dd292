//! The rules every publishing session follows (see `mpegcoder_transport::session`), checked
//! for RTSP and RTMP alike through the real driver against scripted servers on loopback:
//! media refused at once, a close the server does not confirm, a server that stops reading,
//! drop without close, and a final error repeated by every later call. Every wait is bounded.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mpegcoder_transport::rtmp::{RtmpError, RtmpOptions, RtmpPublisher};
use mpegcoder_transport::rtsp::message::{Incoming, MessageDecoder};
use mpegcoder_transport::rtsp::{RtspError, RtspOptions, RtspPublisher, Step};
use mpegcoder_transport::{AccessUnit, MediaError, TimeBase, Track, VideoTrack};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

/// The longest any single wait of these tests may take: longer is a hang, and a failure.
const BOUND: Duration = Duration::from_secs(5);
/// How long a server holds a connection it was told to hold, at most.
const HOLD: Duration = Duration::from_secs(8);
/// The short limits the sessions under test get.
const SHORT: Duration = Duration::from_millis(400);
/// Time allowed beyond a limit for the scheduler and the loopback on a busy machine.
const SLACK: Duration = Duration::from_secs(2);

fn track() -> Track {
    Track::from(VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap())
}

/// Frame `i` at 25 fps (milliseconds), `size` bytes of slice data; the first is a key frame.
fn frame(i: i64, size: usize) -> AccessUnit {
    let mut nal = vec![if i == 0 { 0x65 } else { 0x41 }];
    nal.resize(size.max(2), 0x5a);
    AccessUnit {
        pts: i * 40,
        dts: i * 40,
        time_base: TimeBase::MILLIS,
        key: i == 0,
        nalus: vec![Bytes::from(nal)],
    }
}

/// An access unit with only a delimiter: nothing to send.
fn only_aud(dts: i64) -> AccessUnit {
    AccessUnit {
        pts: dts,
        dts,
        time_base: TimeBase::MILLIS,
        key: false,
        nalus: vec![Bytes::from_static(&[0x09, 0xf0])],
    }
}

/// Awaits `fut`, failing the test when it takes longer than `limit`.
async fn within<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Waits for the test's release signal (or its sender's drop), at most `HOLD`.
async fn hold(release: &mut oneshot::Receiver<()>) {
    let _ = tokio::time::timeout(HOLD, release).await;
}

// ---- a scripted RTSP RECORD server ---------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RtspBehaviour {
    /// Answers everything, reads until the client closes.
    Normal,
    /// Reads everything, never answers TEARDOWN.
    NoTeardownReply,
    /// Stops reading once recording, holds the connection until released, then drops it.
    StopReading,
    /// Stops reading once recording until released, then reads slowly (32 KiB a
    /// millisecond), otherwise as `Normal`.
    PauseReading,
}

#[derive(Debug, Default)]
struct RtspSeen {
    /// RTP timestamps of the access units (marker bits on channel 0), in order.
    access_units: Vec<u32>,
    teardown: bool,
    eof: bool,
}

struct RtspConn {
    sock: TcpStream,
    decoder: MessageDecoder,
    buf: Vec<u8>,
    /// Pause a millisecond before each read.
    slow: bool,
}

impl RtspConn {
    /// The next message; `None` once the client closed (or reset) the connection.
    async fn next(&mut self) -> Option<Incoming> {
        loop {
            if let Some(m) = self.decoder.next_message().unwrap() {
                return Some(m);
            }
            if self.slow {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let n = self.sock.read(&mut self.buf).await.unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.decoder.push(&self.buf[..n]);
        }
    }

    async fn respond(&mut self, cseq: u32, extra: &str) {
        let r = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}\r\n");
        let _ = self.sock.write_all(r.as_bytes()).await;
    }
}

/// Starts a server; returns its port, its task and the release signal of the holding
/// behaviours.
async fn rtsp_server(behaviour: RtspBehaviour) -> (u16, JoinHandle<RtspSeen>, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (release_tx, mut release) = oneshot::channel();
    let task = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let mut conn = RtspConn {
            sock,
            decoder: MessageDecoder::new(),
            buf: vec![0; 64 * 1024],
            slow: false,
        };
        let mut seen = RtspSeen::default();
        for (method, extra) in [
            (
                "OPTIONS",
                "Public: OPTIONS, ANNOUNCE, SETUP, RECORD, TEARDOWN\r\n",
            ),
            ("ANNOUNCE", ""),
            (
                "SETUP",
                "Session: s1;timeout=60\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
            ),
            ("RECORD", ""),
        ] {
            match conn.next().await {
                Some(Incoming::Request(r)) if r.method == method => {
                    conn.respond(r.headers.cseq().unwrap(), extra).await
                }
                other => panic!("expected {method}, got {other:?}"),
            }
        }
        match behaviour {
            RtspBehaviour::StopReading => {
                hold(&mut release).await;
                return seen;
            }
            RtspBehaviour::PauseReading => {
                hold(&mut release).await;
                conn.slow = true;
                conn.buf.truncate(32 * 1024);
            }
            _ => {}
        }
        while let Some(m) = conn.next().await {
            match m {
                Incoming::Data {
                    channel: 0,
                    payload,
                } if payload.len() >= 12 && payload[1] & 0x80 != 0 => {
                    let ts = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                    seen.access_units.push(ts);
                }
                Incoming::Request(r) => {
                    let is_teardown = r.method == "TEARDOWN";
                    seen.teardown |= is_teardown;
                    if !(is_teardown && behaviour == RtspBehaviour::NoTeardownReply) {
                        conn.respond(r.headers.cseq().unwrap(), "").await;
                    }
                }
                _ => {}
            }
        }
        seen.eof = true;
        seen
    });
    (port, task, release_tx)
}

/// Short limits, for the tests that wait for one of them; the others keep the defaults, so
/// that a slow machine cannot fail them.
fn rtsp_short() -> RtspOptions {
    RtspOptions::default().with_request_timeout(SHORT)
}

async fn rtsp_connect(url: &str, options: RtspOptions) -> RtspPublisher {
    within(
        "RTSP connect",
        BOUND,
        RtspPublisher::connect(url, &[track()], options),
    )
    .await
    .unwrap()
}

// ---- a scripted RTMP server (rml_rtmp's ServerSession) ------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RtmpBehaviour {
    /// Accepts everything, reads until the client's FIN, then closes.
    Normal,
    /// Reads everything, but after the client's FIN keeps its side open until released.
    NeverClose,
    /// Stops reading once publishing, holds the connection until released, then drops it.
    StopReading,
    /// Stops reading once publishing until released, then reads slowly (32 KiB a
    /// millisecond), otherwise as `Normal`.
    PauseReading,
}

#[derive(Debug, Default)]
struct RtmpSeen {
    /// Video messages: FLV tag bodies with their timestamps.
    video: Vec<(u32, Bytes)>,
    /// `deleteStream` arrived.
    finished: bool,
    /// The client closed its side.
    eof: bool,
    /// `deleteStream` had arrived when the client closed its side.
    finished_before_eof: bool,
}

async fn rtmp_server(behaviour: RtmpBehaviour) -> (u16, JoinHandle<RtmpSeen>, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (release_tx, mut release) = oneshot::channel();
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut handshake = Some(Handshake::new(PeerType::Server));
        let mut session: Option<ServerSession> = None;
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = RtmpSeen::default();
        let mut publishing = false;
        let mut paused = false;
        loop {
            if paused {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let n = sock.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                seen.eof = true;
                seen.finished_before_eof = seen.finished;
                if behaviour == RtmpBehaviour::NeverClose {
                    hold(&mut release).await;
                }
                return seen;
            }
            let mut out = Vec::new();
            let mut work: Vec<ServerSessionResult> = Vec::new();
            let mut input = buf[..n].to_vec();
            if let Some(hs) = handshake.as_mut() {
                match hs.process_bytes(&input).unwrap() {
                    HandshakeProcessResult::InProgress { response_bytes } => {
                        out.extend(response_bytes);
                        input.clear();
                    }
                    HandshakeProcessResult::Completed {
                        response_bytes,
                        remaining_bytes,
                    } => {
                        out.extend(response_bytes);
                        handshake = None;
                        let (s, results) = ServerSession::new(ServerSessionConfig::new()).unwrap();
                        session = Some(s);
                        work.extend(results);
                        input = remaining_bytes;
                    }
                }
            }
            if let Some(s) = session.as_mut() {
                if !input.is_empty() {
                    work.extend(s.handle_input(&input).unwrap());
                }
                while !work.is_empty() {
                    for r in std::mem::take(&mut work) {
                        match r {
                            ServerSessionResult::OutboundResponse(p) => out.extend(p.bytes),
                            ServerSessionResult::RaisedEvent(e) => match e {
                                ServerSessionEvent::ConnectionRequested { request_id, .. }
                                | ServerSessionEvent::PublishStreamRequested {
                                    request_id, ..
                                } => work.extend(s.accept_request(request_id).unwrap()),
                                ServerSessionEvent::StreamMetadataChanged { .. } => {
                                    publishing = true
                                }
                                ServerSessionEvent::VideoDataReceived {
                                    data, timestamp, ..
                                } => seen.video.push((timestamp.value, data)),
                                ServerSessionEvent::PublishStreamFinished { .. } => {
                                    seen.finished = true
                                }
                                _ => {}
                            },
                            ServerSessionResult::UnhandleableMessageReceived(_) => {}
                        }
                    }
                }
            }
            let _ = sock.write_all(&out).await;
            if publishing {
                match behaviour {
                    RtmpBehaviour::StopReading => {
                        hold(&mut release).await;
                        return seen;
                    }
                    RtmpBehaviour::PauseReading if !paused => {
                        paused = true;
                        hold(&mut release).await;
                        buf.truncate(32 * 1024);
                    }
                    _ => {}
                }
            }
        }
    });
    (port, task, release_tx)
}

/// Short limits, for the tests that wait for one of them (see `rtsp_short`).
fn rtmp_short() -> RtmpOptions {
    RtmpOptions::default()
        .with_send_timeout(SHORT)
        .with_close_timeout(SHORT)
        .with_max_queued_bytes(256 * 1024)
}

async fn rtmp_connect(url: &str, options: RtmpOptions) -> RtmpPublisher {
    within(
        "RTMP connect",
        BOUND,
        RtmpPublisher::connect(url, &[track()], options),
    )
    .await
    .unwrap()
}

/// The video tags of `seen` that carry frames (not the sequence header or end of sequence).
fn rtmp_frame_timestamps(seen: &RtmpSeen) -> Vec<u32> {
    seen.video
        .iter()
        .filter(|(_, body)| body.len() > 5 && body[1] == 1)
        .map(|(ts, _)| *ts)
        .collect()
}

// ---- media refused at once, the session goes on --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_refuses_a_unit_it_cannot_carry_at_once_and_goes_on() {
    let (port, server, _release) = rtsp_server(RtspBehaviour::Normal).await;
    let mut p = rtsp_connect(
        &format!("rtsp://127.0.0.1:{port}/live"),
        RtspOptions::default(),
    )
    .await;
    within("send", BOUND, p.send(frame(0, 500))).await.unwrap();
    within("send", BOUND, p.send(frame(1, 500))).await.unwrap();
    // DTS going backwards and a unit with only a delimiter: refused before queueing.
    let backwards = AccessUnit {
        pts: 20,
        dts: 20,
        ..frame(2, 500)
    };
    let e = within("refusal", SLACK, p.send(backwards))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            RtspError::Media(MediaError::DtsBackwards {
                previous: 40,
                dts: 20,
                ..
            })
        ),
        "{e:?}"
    );
    let e = within("refusal", SLACK, p.send(only_aud(60)))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, RtspError::Media(MediaError::Empty { dts: 60 })),
        "{e:?}"
    );
    // The next good unit goes out and arrives.
    within("send", BOUND, p.send(frame(2, 500))).await.unwrap();
    let stats = within("close", BOUND, p.close()).await.unwrap();
    assert_eq!(stats.frames, 3);
    let seen = within("server", BOUND, server).await.unwrap();
    assert!(seen.teardown && seen.eof);
    let first = seen.access_units[0];
    let offsets: Vec<u32> = seen
        .access_units
        .iter()
        .map(|ts| ts.wrapping_sub(first))
        .collect();
    // 0, 40 and 80 ms on the 90 kHz clock.
    assert_eq!(offsets, vec![0, 3600, 7200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_refuses_a_unit_it_cannot_carry_at_once_and_goes_on() {
    let (port, server, _release) = rtmp_server(RtmpBehaviour::Normal).await;
    let mut p = rtmp_connect(
        &format!("rtmp://127.0.0.1:{port}/live/test"),
        RtmpOptions::default(),
    )
    .await;
    within("send", BOUND, p.send(frame(0, 500))).await.unwrap();
    within("send", BOUND, p.send(frame(1, 500))).await.unwrap();
    let backwards = AccessUnit {
        pts: 20,
        dts: 20,
        ..frame(2, 500)
    };
    let e = within("refusal", SLACK, p.send(backwards))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            RtmpError::Media(MediaError::DtsBackwards {
                previous: 40,
                dts: 20,
                ..
            })
        ),
        "{e:?}"
    );
    let e = within("refusal", SLACK, p.send(only_aud(60)))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, RtmpError::Media(MediaError::Empty { dts: 60 })),
        "{e:?}"
    );
    within("send", BOUND, p.send(frame(2, 500))).await.unwrap();
    let stats = within("close", BOUND, p.close()).await.unwrap();
    assert_eq!(stats.frames, 3);
    assert!(stats.rtmp().unwrap().closed_cleanly);
    let seen = within("server", BOUND, server).await.unwrap();
    assert!(seen.finished_before_eof);
    assert_eq!(rtmp_frame_timestamps(&seen), vec![0, 40, 80]);
}

// ---- close that the server does not confirm -----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_close_without_a_teardown_reply_ends_cleanly_after_the_teardown_timeout() {
    let (port, server, _release) = rtsp_server(RtspBehaviour::NoTeardownReply).await;
    let mut options = rtsp_short();
    options.teardown_timeout = SHORT;
    let mut p = rtsp_connect(
        &format!("rtsp://user:secret-pw@127.0.0.1:{port}/live"),
        options,
    )
    .await;
    within("send", BOUND, p.send(frame(0, 500))).await.unwrap();
    let started = Instant::now();
    // Every frame was written and nothing failed: an unanswered TEARDOWN is no error.
    let stats = within("close", SHORT + SLACK, p.close()).await.unwrap();
    let elapsed = started.elapsed();
    assert!(stats.rtsp().unwrap().teardown_unanswered, "{stats:?}");
    assert_eq!(stats.frames, 1);
    assert!(elapsed >= SHORT - Duration::from_millis(50), "{elapsed:?}");
    let seen = within("server", BOUND, server).await.unwrap();
    assert!(seen.teardown, "TEARDOWN was sent");
    assert_eq!(seen.access_units.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_close_the_server_never_confirms_is_an_error_naming_the_url() {
    let (port, server, release) = rtmp_server(RtmpBehaviour::NeverClose).await;
    let shown = format!("rtmp://127.0.0.1:{port}/live/test");
    let mut p = rtmp_connect(
        &format!("rtmp://user:secret-pw@127.0.0.1:{port}/live/test"),
        rtmp_short(),
    )
    .await;
    within("send", BOUND, p.send(frame(0, 500))).await.unwrap();
    let started = Instant::now();
    let e = within("close", SHORT + SLACK, p.close()).await.unwrap_err();
    let elapsed = started.elapsed();
    let RtmpError::CloseNotConfirmed { url, after, what } = &e else {
        panic!("{e:?}")
    };
    assert_eq!((url, *after), (&shown, SHORT));
    assert!(what.contains("deleteStream"), "{what}");
    assert!(elapsed >= SHORT - Duration::from_millis(50), "{elapsed:?}");
    let text = e.to_string();
    assert!(text.contains(&shown), "{text}");
    assert!(!format!("{text} {e:?}").contains("secret-pw"), "{text}");
    release.send(()).unwrap();
    let seen = within("server", BOUND, server).await.unwrap();
    // It read everything, our FIN included; it just never closed its side.
    assert!(seen.finished_before_eof);
    assert_eq!(rtmp_frame_timestamps(&seen), vec![0]);
}

// ---- close against a server that stopped reading ------------------------------------------

/// Sends `size`-byte frames from frame 0 on until one does not go within 300 ms: the server
/// stopped reading and every buffer on the way is full (a cancelled send queues nothing).
/// Evaluates to the number of frames accepted.
macro_rules! fill {
    ($p:expr, $size:expr) => {{
        let started = Instant::now();
        let mut accepted: i64 = 0;
        loop {
            assert!(started.elapsed() < BOUND, "send never waited");
            match tokio::time::timeout(Duration::from_millis(300), $p.send(frame(accepted, $size)))
                .await
            {
                Ok(r) => {
                    r.unwrap();
                    accepted += 1;
                }
                Err(_) => break,
            }
        }
        assert!(accepted > 0);
        accepted
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_close_against_a_server_that_stopped_reading_is_a_write_timeout() {
    let (port, server, release) = rtsp_server(RtspBehaviour::StopReading).await;
    let shown = format!("rtsp://127.0.0.1:{port}/live");
    // The write limit is longer than `fill`'s wait, so the session is still alive after it.
    let limit = Duration::from_millis(800);
    let mut p = rtsp_connect(&shown, RtspOptions::default().with_request_timeout(limit)).await;
    fill!(p, 1_000_000);
    let started = Instant::now();
    let e = within("close", limit + SLACK, p.close()).await.unwrap_err();
    assert!(
        matches!(&e, RtspError::Timeout { step: Step::Write, after, url } if *after == limit && url == &shown),
        "{e:?} after {:?}",
        started.elapsed()
    );
    assert!(e.to_string().contains(&shown), "{e}");
    release.send(()).unwrap();
    within("server", BOUND, server).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_close_against_a_server_that_stopped_reading_is_an_error() {
    let (port, server, release) = rtmp_server(RtmpBehaviour::StopReading).await;
    let shown = format!("rtmp://127.0.0.1:{port}/live/test");
    let limit = Duration::from_millis(800);
    let options = rtmp_short()
        .with_send_timeout(limit)
        .with_close_timeout(limit);
    let mut p = rtmp_connect(&shown, options).await;
    fill!(p, 100_000);
    let e = within("close", limit + SLACK, p.close()).await.unwrap_err();
    match &e {
        RtmpError::Timeout { url, after, .. } => assert_eq!((url, *after), (&shown, limit)),
        RtmpError::CloseNotConfirmed { url, what, .. } => {
            assert_eq!(url, &shown);
            assert!(what.contains("unwritten"), "{what}");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains(&shown), "{e}");
    release.send(()).unwrap();
    within("server", BOUND, server).await.unwrap();
}

// ---- drop without close ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_drop_tears_down_in_the_background() {
    let (port, server, _release) = rtsp_server(RtspBehaviour::Normal).await;
    let mut p = rtsp_connect(
        &format!("rtsp://127.0.0.1:{port}/live"),
        RtspOptions::default(),
    )
    .await;
    for i in 0..3 {
        within("send", BOUND, p.send(frame(i, 2000))).await.unwrap();
    }
    drop(p);
    // The runtime keeps running; the session's task finishes the close on its own.
    let seen = within("the server seeing the goodbye", BOUND, server)
        .await
        .unwrap();
    assert!(seen.teardown, "TEARDOWN arrived");
    assert!(seen.eof);
    assert_eq!(seen.access_units.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_drop_deletes_the_stream_in_the_background() {
    let (port, server, _release) = rtmp_server(RtmpBehaviour::Normal).await;
    let mut p = rtmp_connect(
        &format!("rtmp://127.0.0.1:{port}/live/test"),
        RtmpOptions::default(),
    )
    .await;
    for i in 0..3 {
        within("send", BOUND, p.send(frame(i, 2000))).await.unwrap();
    }
    drop(p);
    let seen = within("the server seeing the goodbye", BOUND, server)
        .await
        .unwrap();
    assert!(seen.finished_before_eof, "deleteStream, then EOF");
    assert_eq!(rtmp_frame_timestamps(&seen), vec![0, 40, 80]);
    // End of sequence after the last frame.
    assert_eq!(&seen.video.last().unwrap().1[..], &[0x17, 0x02, 0, 0, 0]);
}

// ---- a final error is returned by every later call ---------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_a_final_error_is_returned_by_every_later_send() {
    let (port, server, release) = rtsp_server(RtspBehaviour::StopReading).await;
    let mut p = rtsp_connect(&format!("rtsp://127.0.0.1:{port}/live"), rtsp_short()).await;
    let started = Instant::now();
    let mut i = 0;
    let e = loop {
        assert!(started.elapsed() < BOUND, "no error");
        match within("send", BOUND, p.send(frame(i, 1_000_000))).await {
            Ok(()) => i += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            e,
            RtspError::Timeout {
                step: Step::Write,
                ..
            }
        ),
        "{e:?}"
    );
    for j in 0..3 {
        let again = within("send", SLACK, p.send(frame(i + j, 10)))
            .await
            .unwrap_err();
        assert_eq!(again.to_string(), e.to_string());
    }
    let again = within("close", SLACK, p.close()).await.unwrap_err();
    assert_eq!(again.to_string(), e.to_string());
    release.send(()).unwrap();
    within("server", BOUND, server).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_a_final_error_is_returned_by_every_later_send() {
    let (port, server, release) = rtmp_server(RtmpBehaviour::StopReading).await;
    let mut p = rtmp_connect(&format!("rtmp://127.0.0.1:{port}/live/test"), rtmp_short()).await;
    let started = Instant::now();
    let mut i = 0;
    let e = loop {
        assert!(started.elapsed() < BOUND, "no error");
        match within("send", BOUND, p.send(frame(i, 100_000))).await {
            Ok(()) => i += 1,
            Err(e) => break e,
        }
    };
    assert!(e.is_timeout(), "{e:?}");
    for j in 0..3 {
        let again = within("send", SLACK, p.send(frame(i + j, 10)))
            .await
            .unwrap_err();
        assert_eq!(again.to_string(), e.to_string());
    }
    let again = within("close", SLACK, p.close()).await.unwrap_err();
    assert_eq!(again.to_string(), e.to_string());
    release.send(()).unwrap();
    within("server", BOUND, server).await.unwrap();
}

// ---- units accepted before a drop are all delivered ---------------------------------------
//
// Frames larger than what the kernel takes at one wake-up leave the session task waiting in
// the middle of a frame with its queue over the mark and units still in the channel; the
// handle is dropped then. Every unit `send` accepted must still go out before the goodbye.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_units_accepted_before_a_drop_with_a_full_queue_all_arrive() {
    let (port, server, release) = rtsp_server(RtspBehaviour::PauseReading).await;
    // Long enough a write limit that the pause is no failure.
    let options = RtspOptions::default().with_request_timeout(BOUND);
    let mut p = rtsp_connect(&format!("rtsp://127.0.0.1:{port}/live"), options).await;
    let accepted = fill!(p, 4 << 20);
    drop(p);
    tokio::time::sleep(Duration::from_millis(100)).await;
    release.send(()).unwrap();
    let seen = within("server", BOUND, server).await.unwrap();
    assert!(seen.teardown && seen.eof);
    assert_eq!(seen.access_units.len() as i64, accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_units_accepted_before_a_drop_with_a_full_queue_all_arrive() {
    let (port, server, release) = rtmp_server(RtmpBehaviour::PauseReading).await;
    let options = RtmpOptions::default()
        .with_send_timeout(BOUND)
        .with_close_timeout(BOUND)
        .with_max_queued_bytes(1 << 20);
    let mut p = rtmp_connect(&format!("rtmp://127.0.0.1:{port}/live/test"), options).await;
    let accepted = fill!(p, 4 << 20);
    drop(p);
    tokio::time::sleep(Duration::from_millis(100)).await;
    release.send(()).unwrap();
    let seen = within("server", BOUND, server).await.unwrap();
    assert!(seen.finished_before_eof);
    assert_eq!(rtmp_frame_timestamps(&seen).len() as i64, accepted);
}
