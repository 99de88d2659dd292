//! The tokio driver over loopback TCP against an rml_rtmp `ServerSession` (no external tools).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::h264::{AccessUnit, VideoTrack};
use crate::session::Track;
use crate::TimeBase;

const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

fn track() -> VideoTrack {
    VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap()
}

/// Frame `i` at 25 fps in milliseconds, `size` bytes of slice data.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Accept everything, read until the client's FIN, then close.
    Normal,
    /// Close the connection after the first video message.
    CloseAfterFirstVideo,
    /// Accept publishing, then never read again (the client's socket buffer fills up).
    StopReading,
    /// Send a ping request once publishing started.
    Ping,
}

#[derive(Debug, Default)]
struct Seen {
    video: Vec<(u32, Bytes)>,
    finished: bool,
    pong: bool,
    eof: bool,
}

async fn serve(listener: TcpListener, behaviour: Behaviour) -> Seen {
    let (mut sock, _) = listener.accept().await.unwrap();
    let mut handshake = Some(Handshake::new(PeerType::Server));
    let mut session: Option<ServerSession> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = Seen::default();
    let mut publishing = false;
    loop {
        let n = sock.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            seen.eof = true;
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
                            | ServerSessionEvent::PublishStreamRequested { request_id, .. } => {
                                work.extend(s.accept_request(request_id).unwrap());
                            }
                            ServerSessionEvent::StreamMetadataChanged { .. } => {
                                publishing = true;
                                if behaviour == Behaviour::Ping {
                                    out.extend(s.send_ping_request().unwrap().0.bytes);
                                }
                            }
                            ServerSessionEvent::VideoDataReceived {
                                data, timestamp, ..
                            } => seen.video.push((timestamp.value, data)),
                            ServerSessionEvent::PublishStreamFinished { .. } => {
                                seen.finished = true
                            }
                            ServerSessionEvent::PingResponseReceived { .. } => seen.pong = true,
                            _ => {}
                        },
                        ServerSessionResult::UnhandleableMessageReceived(_) => {}
                    }
                }
            }
        }
        sock.write_all(&out).await.unwrap();
        match behaviour {
            Behaviour::CloseAfterFirstVideo if !seen.video.is_empty() => return seen,
            Behaviour::StopReading if publishing => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                return seen;
            }
            _ => {}
        }
    }
}

async fn server(behaviour: Behaviour) -> (String, tokio::task::JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (
        format!("rtmp://127.0.0.1:{port}/live/test"),
        tokio::spawn(serve(listener, behaviour)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_over_loopback_and_drains_on_close() {
    let (url, server) = server(Behaviour::Normal).await;
    let mut publisher =
        RtmpPublisher::connect(&url, &[Track::from(track())], RtmpOptions::default())
            .await
            .unwrap();
    for i in 0..50 {
        publisher.send(&frame(i, 3000)).await.unwrap();
    }
    let stats = publisher.close().await.unwrap();
    assert_eq!(stats.frames, 50);
    // `close` returned Ok: the server closed its side after our FIN (confirmed).
    assert!(stats.bytes_written > 50 * 3000);
    let seen = server.await.unwrap();
    assert!(seen.eof && seen.finished);
    // Sequence header, 50 frames, end of sequence.
    assert_eq!(seen.video.len(), 52);
    let ts: Vec<u32> = seen.video[1..51].iter().map(|(t, _)| *t).collect();
    assert_eq!(ts, (0..50).map(|i| i * 40).collect::<Vec<u32>>());
    assert_eq!(&seen.video[51].1[..], &[0x17, 0x02, 0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_pings_while_the_caller_is_idle() {
    let (url, server) = server(Behaviour::Ping).await;
    let mut publisher =
        RtmpPublisher::connect(&url, &[Track::from(track())], RtmpOptions::default())
            .await
            .unwrap();
    // No send for a while: the background task still reads and answers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    publisher.send(&frame(0, 100)).await.unwrap();
    publisher.close().await.unwrap();
    assert!(server.await.unwrap().pong);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_closing_mid_stream_is_a_typed_error() {
    let (url, server) = server(Behaviour::CloseAfterFirstVideo).await;
    let mut publisher =
        RtmpPublisher::connect(&url, &[Track::from(track())], RtmpOptions::default())
            .await
            .unwrap();
    let mut result = Ok(());
    for i in 0..500 {
        result = publisher.send(&frame(i, 2000)).await;
        if result.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let err = result.expect_err("the server left");
    assert!(
        matches!(
            &err,
            RtmpError::ConnectionClosed {
                step: Step::Streaming,
                ..
            } | RtmpError::Io {
                step: Step::Streaming,
                ..
            }
        ),
        "{err:?}"
    );
    // Final: later calls report the same failure.
    assert_eq!(
        publisher
            .send(&frame(600, 10))
            .await
            .unwrap_err()
            .to_string(),
        err.to_string()
    );
    assert!(publisher.close().await.is_err());
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_reading_makes_send_time_out() {
    let (url, server) = server(Behaviour::StopReading).await;
    let options = RtmpOptions {
        send_timeout: Duration::from_millis(500),
        max_queued_bytes: 256 * 1024,
        ..RtmpOptions::default()
    };
    let mut publisher = RtmpPublisher::connect(&url, &[Track::from(track())], options)
        .await
        .unwrap();
    let started = Instant::now();
    let mut sent = 0;
    let err = loop {
        match publisher.send(&frame(sent, 100_000)).await {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never blocked");
    };
    assert!(
        matches!(
            err,
            RtmpError::Timeout {
                step: Step::Streaming,
                ..
            }
        ),
        "{err:?}"
    );
    // Bounded: the queue mark, the frame accepted over it, the units waiting between the
    // handle and the session task, and what the kernel took — not everything offered.
    let written = publisher.stats().bytes_written;
    assert!(
        (sent as u64) * 100_000 <= written + 256 * 1024 + (2 + 2) * 100_010,
        "queued beyond the mark: sent {sent} frames, wrote {written} bytes"
    );
    drop(publisher);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresolvable_host_is_a_typed_error() {
    let options = RtmpOptions {
        tcp_connect_timeout: Duration::from_secs(3),
        ..RtmpOptions::default()
    };
    let err = RtmpPublisher::connect(
        "rtmp://no-such-host.invalid/live/x",
        &[Track::from(track())],
        options,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            RtmpError::Connect(
                crate::net::ConnectError::Resolve { .. }
                    | crate::net::ConnectError::Timeout {
                        step: crate::net::ConnectStep::Resolve,
                        ..
                    }
            )
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_url_is_a_typed_error_without_credentials() {
    let err = RtmpPublisher::connect(
        "rtmp://u:topsecret@host/live",
        &[Track::from(track())],
        RtmpOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RtmpError::InvalidUrl { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("topsecret"));
    let options = RtmpOptions {
        chunk_size: 0,
        ..RtmpOptions::default()
    };
    assert!(matches!(
        RtmpPublisher::connect("rtmp://h/live/x", &[Track::from(track())], options).await,
        Err(RtmpError::InvalidOptions(_))
    ));
}

/// The publisher and its futures can move between threads (a facade may spawn them).
#[test]
fn publisher_and_its_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RtmpPublisher>();
    assert_send_sync::<RtmpError>();
    assert_send_sync::<RtmpPublisherCore>();
    let track = track();
    let tracks = [Track::from(&track)];
    let connect = RtmpPublisher::connect("rtmp://h/live/x", &tracks, RtmpOptions::default());
    assert_send(&connect);
    #[allow(dead_code)]
    async fn send_and_close(mut p: RtmpPublisher, au: AccessUnit) {
        let _ = p.send(&au).await;
        let _ = p.close().await;
    }
    fn check(p: RtmpPublisher, au: AccessUnit) {
        assert_send(&send_and_close(p, au));
    }
    let _ = check;
}
