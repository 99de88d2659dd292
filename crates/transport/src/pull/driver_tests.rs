//! [`Puller`] over loopback TCP against rml_rtmp's `ServerSession` (no external tools): the
//! join gate (nothing before the first key frame), the ends of a stream, and the timeouts.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::rtmp_core_tests::{aac_frame, aac_header, config, idr, Answer, TestServer, ASC};
use super::*;
use crate::rtmp::flv::{self, FrameType};
use crate::session::Media;

/// What the scripted server does once playing was accepted.
#[derive(Debug, Clone)]
enum Action {
    Video(u32, Bytes),
    /// An audio message with this FLV audio tag body.
    Audio(u32, Bytes),
    /// `NetStream.Play.Complete`.
    Finish,
    /// Close the connection.
    Close,
    /// Keep the connection open, sending nothing, reading until the client leaves.
    Idle,
}

fn p_frame(n: u8) -> Bytes {
    flv::nalu_body(FrameType::Inter, 0, &[Bytes::from(vec![0x41, 0x9a, n])]).unwrap()
}

/// A server on loopback that answers one client and then plays `script`.
async fn scripted_server(script: Vec<Action>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut server = TestServer::new(Answer::Accept);
        let mut buf = vec![0u8; 64 * 1024];
        let mut script = Some(script);
        loop {
            let out = std::mem::take(&mut server.out);
            if !out.is_empty() && sock.write_all(&out).await.is_err() {
                return;
            }
            if server.stream_id.is_some() {
                if let Some(actions) = script.take() {
                    for action in actions {
                        match action {
                            Action::Video(ts, body) => server.send_video(ts, body),
                            Action::Audio(ts, body) => server.send_audio_body(ts, body),
                            Action::Finish => server.finish(),
                            Action::Close => {
                                let out = std::mem::take(&mut server.out);
                                let _ = sock.write_all(&out).await;
                                return;
                            }
                            Action::Idle => {}
                        }
                    }
                    continue;
                }
            }
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => server.feed(&buf[..n]),
            }
        }
    });
    (format!("rtmp://127.0.0.1:{port}/live/cam"), task)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn options(idle: Duration) -> PullOptions {
    PullOptions {
        setup_timeout: Duration::from_secs(5),
        idle_timeout: idle,
        ..PullOptions::default()
    }
}

#[test]
fn starts_at_the_first_key_frame_and_ends_with_the_server() {
    runtime().block_on(async {
        let (url, server) = scripted_server(vec![
            Action::Video(0, flv::sequence_header_body(&config()).unwrap()),
            // Joined mid-GOP: two inter frames before the key frame.
            Action::Video(0, p_frame(1)),
            Action::Video(33, p_frame(2)),
            Action::Video(67, flv::nalu_body(FrameType::Key, 0, &[idr()]).unwrap()),
            Action::Video(100, p_frame(3)),
            Action::Finish,
            Action::Idle,
        ])
        .await;
        let mut puller = Puller::connect(&url, options(Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(puller.protocol(), PullProtocol::Rtmp);
        let mut got = Vec::new();
        while let Some(au) = puller.next().await.unwrap() {
            got.push((au.dts, au.key));
        }
        assert_eq!(got, vec![(67, true), (100, false)]);
        let track = puller.track().unwrap();
        assert_eq!((track.width(), track.height()), (320, 240));
        let stats = puller.stats().clone();
        assert_eq!(
            (
                stats.skipped_before_key,
                stats.access_units,
                stats.key_frames
            ),
            (2, 2, 1)
        );
        assert!((stats.duration_s() - 0.033).abs() < 1e-9);
        // After the end, `next` keeps saying so.
        assert!(puller.next().await.unwrap().is_none());
        puller.close().await;
        server.await.unwrap();
    });
}

/// A joiner's view of a stream with audio: headers, audio and an inter frame before the key
/// frame, then both interleaved.
fn av_script() -> Vec<Action> {
    vec![
        Action::Audio(0, aac_header()),
        Action::Video(0, flv::sequence_header_body(&config()).unwrap()),
        Action::Audio(10, aac_frame(1, 20)),
        Action::Video(20, p_frame(1)),
        Action::Audio(31, aac_frame(2, 20)),
        Action::Video(40, flv::nalu_body(FrameType::Key, 0, &[idr()]).unwrap()),
        Action::Audio(53, aac_frame(3, 20)),
        // Speex: counted, skipped.
        Action::Audio(60, Bytes::from_static(&[0xb2, 1, 2])),
        Action::Audio(74, aac_frame(4, 20)),
        Action::Video(80, p_frame(2)),
        Action::Audio(95, aac_frame(5, 20)),
        Action::Finish,
        Action::Idle,
    ]
}

#[test]
fn next_media_starts_audio_with_the_first_key_frame_and_keeps_arrival_order() {
    runtime().block_on(async {
        let (url, server) = scripted_server(av_script()).await;
        let mut puller = Puller::connect(&url, options(Duration::from_secs(5)))
            .await
            .unwrap();
        let mut got = Vec::new();
        while let Some(media) = puller.next_media().await.unwrap() {
            match &media {
                Media::H264(au) => got.push(("video", au.dts)),
                Media::Audio(f) => {
                    assert_eq!(f.time_base, TimeBase::MILLIS);
                    assert_eq!(f.data.len(), 20);
                    got.push(("audio", f.pts));
                }
            }
        }
        assert_eq!(
            got,
            vec![
                ("video", 40),
                ("audio", 53),
                ("audio", 74),
                ("video", 80),
                ("audio", 95)
            ]
        );
        let track = puller.audio_track().unwrap();
        assert_eq!(track, &AudioTrack::aac(Bytes::from_static(ASC)).unwrap());
        let s = puller.stats().clone();
        assert_eq!(
            (s.audio_frames, s.audio_bytes, s.audio_skipped_before_key),
            (3, 60, 2)
        );
        assert_eq!(
            (s.audio_unsupported, s.audio_bad, s.audio_ignored),
            (1, 0, 0)
        );
        assert_eq!((s.access_units, s.skipped_before_key), (2, 1));
        assert_eq!(s.audio_time_base, Some(TimeBase::MILLIS));
        assert!((s.audio_duration_s() - 0.042).abs() < 1e-9);
        puller.close().await;
        server.await.unwrap();
    });
}

#[test]
fn next_hands_out_video_only_and_counts_the_audio_it_drops() {
    runtime().block_on(async {
        let (url, server) = scripted_server(av_script()).await;
        let mut puller = Puller::connect(&url, options(Duration::from_secs(5)))
            .await
            .unwrap();
        let mut got = Vec::new();
        while let Some(au) = puller.next().await.unwrap() {
            got.push(au.dts);
        }
        assert_eq!(got, vec![40, 80]);
        let s = puller.stats().clone();
        assert_eq!((s.audio_frames, s.audio_ignored), (0, 5));
        assert!(puller.audio_track().is_some());
        puller.close().await;
        server.await.unwrap();
    });
}

#[test]
fn a_closed_connection_after_playing_ends_the_stream() {
    runtime().block_on(async {
        let (url, server) = scripted_server(vec![
            Action::Video(0, flv::sequence_header_body(&config()).unwrap()),
            Action::Video(0, flv::nalu_body(FrameType::Key, 0, &[idr()]).unwrap()),
            Action::Close,
        ])
        .await;
        let mut puller = Puller::connect(&url, options(Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(puller.next().await.unwrap().is_some());
        assert!(puller.next().await.unwrap().is_none());
        server.await.unwrap();
    });
}

#[test]
fn silence_after_play_and_after_video_are_told_apart() {
    runtime().block_on(async {
        let idle = Duration::from_millis(300);
        // Nothing after play.
        let (url, _server) = scripted_server(vec![Action::Idle]).await;
        let mut puller = Puller::connect(&url, options(idle)).await.unwrap();
        let started = Instant::now();
        let e = puller.next().await.unwrap_err();
        assert!(
            matches!(e, PullError::NoVideoReceived { after, .. } if after == idle),
            "{e:?}"
        );
        assert!(started.elapsed() >= idle && started.elapsed() < idle * 4);
        // One frame, then nothing.
        let (url, _server) = scripted_server(vec![
            Action::Video(0, flv::sequence_header_body(&config()).unwrap()),
            Action::Video(0, flv::nalu_body(FrameType::Key, 0, &[idr()]).unwrap()),
            Action::Idle,
        ])
        .await;
        let mut puller = Puller::connect(&url, options(idle)).await.unwrap();
        assert!(puller.next().await.unwrap().is_some());
        let e = puller.next().await.unwrap_err();
        assert!(matches!(e, PullError::Stalled { .. }), "{e:?}");
        assert!(e.is_timeout());
    });
}

#[test]
fn a_server_closing_during_setup_is_an_error() {
    runtime().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            drop(sock);
        });
        let url = format!("rtmp://127.0.0.1:{port}/live/cam");
        let e = Puller::connect(&url, options(Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                PullError::ConnectionClosed {
                    step: PullStep::Handshake,
                    ..
                } | PullError::Io { .. }
            ),
            "{e:?}"
        );
        server.await.unwrap();
    });
}

#[test]
fn urls_and_options_are_checked_before_connecting() {
    assert_eq!(
        check_url("RTSP://u:p@h:9/x").unwrap(),
        (PullProtocol::Rtsp, "rtsp://h:9/x".to_string())
    );
    assert_eq!(
        check_url("rtmp://u:p@h/live/k").unwrap(),
        (PullProtocol::Rtmp, "rtmp://h/live/k".to_string())
    );
    let e = check_url("srt://u:secret@h/x").unwrap_err();
    assert!(matches!(e, PullError::UnsupportedScheme { .. }), "{e:?}");
    assert!(!e.to_string().contains("secret"), "{e}");
    assert!(matches!(
        check_url("h/x").unwrap_err(),
        PullError::InvalidUrl { .. }
    ));
    let zero = PullOptions {
        idle_timeout: Duration::ZERO,
        ..PullOptions::default()
    };
    let e = runtime()
        .block_on(Puller::connect("rtmp://127.0.0.1/live/x", zero))
        .unwrap_err();
    assert!(matches!(e, PullError::InvalidOptions(_)), "{e:?}");
}
