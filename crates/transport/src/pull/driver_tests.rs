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
fn a_closed_connection_after_playing_is_a_lost_connection() {
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
        // No unpublish status before the close: not the end of the stream.
        let e = puller.next().await.unwrap_err();
        assert!(
            matches!(
                e,
                PullError::ConnectionClosed {
                    step: PullStep::Streaming,
                    ..
                }
            ),
            "{e:?}"
        );
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

/// [`Puller`] over RTSP against a scripted server on loopback TCP (RTP interleaved, RFC 2326
/// §10.12): losses, the end of a stream, and the setup timeouts.
mod rtsp {
    use super::*;
    use base64::Engine as _;

    use super::super::rtmp_core_tests::{PPS, SPS};

    const SSRC: u32 = 0x1234_5678;

    /// What the scripted server sends once PLAY was answered.
    #[derive(Debug, Clone)]
    enum Send {
        /// One RTP packet of the video stream: timestamp, marker bit, payload.
        Rtp(u32, bool, Vec<u8>),
        /// An RTCP BYE (RFC 3550 §6.6) of the video stream.
        Bye,
        /// Close the connection at once, without a BYE.
        Close,
        /// Reset the connection (RST), as a dying server's kernel may.
        Reset,
    }

    fn sdp() -> String {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=test\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n\
             a=rtpmap:96 H264/90000\r\n\
             a=fmtp:96 packetization-mode=1;profile-level-id=64000d;sprop-parameter-sets={},{}\r\n\
             a=control:trackID=0\r\n",
            b64(SPS),
            b64(PPS)
        )
    }

    /// The method and CSeq of each complete request in `buf`, removed from it.
    fn requests(buf: &mut Vec<u8>) -> Vec<(String, String)> {
        let mut found = Vec::new();
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            buf.drain(..end + 4);
            let method = head.split(' ').next().unwrap_or("").to_string();
            let cseq = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("cseq")
                        .then(|| value.trim().to_string())
                })
                .unwrap_or_default();
            found.push((method, cseq));
        }
        found
    }

    fn interleaved(channel: u8, packet: &[u8]) -> Vec<u8> {
        let len = u16::try_from(packet.len()).unwrap();
        let mut v = vec![b'$', channel];
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(packet);
        v
    }

    fn rtp(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, (u8::from(marker) << 7) | 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&SSRC.to_be_bytes());
        p.extend_from_slice(payload);
        interleaved(0, &p)
    }

    fn bye() -> Vec<u8> {
        let mut p = vec![0x81, 203, 0x00, 0x01];
        p.extend_from_slice(&SSRC.to_be_bytes());
        interleaved(1, &p)
    }

    /// An RTSP server on loopback that answers DESCRIBE, SETUP and PLAY of one H.264 stream
    /// over TCP, then sends `script`, then answers requests (TEARDOWN) until the client
    /// leaves.
    async fn scripted_rtsp(script: Vec<Send>) -> (String, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("rtsp://127.0.0.1:{port}/cam");
        let base = url.clone();
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 4096];
            let mut script = Some(script);
            loop {
                let n = match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                for (method, cseq) in requests(&mut buf) {
                    let reply = match method.as_str() {
                        "DESCRIBE" => {
                            let body = sdp();
                            format!(
                                "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: {base}/\r\n\
                                 Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        }
                        "SETUP" => format!(
                            "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\
                             Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\
                             Session: 12345678;timeout=60\r\n\r\n"
                        ),
                        _ => {
                            format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 12345678\r\n\r\n")
                        }
                    };
                    if sock.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                    if method != "PLAY" {
                        continue;
                    }
                    let Some(actions) = script.take() else {
                        continue;
                    };
                    let mut seq = 100u16;
                    for action in actions {
                        let bytes = match action {
                            Send::Rtp(ts, marker, payload) => {
                                seq = seq.wrapping_add(1);
                                rtp(seq, ts, marker, &payload)
                            }
                            Send::Bye => bye(),
                            Send::Close => return,
                            Send::Reset => {
                                let _ =
                                    socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO));
                                return;
                            }
                        };
                        if sock.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        (url, task)
    }

    /// A complete IDR picture in one RTP packet (single NAL unit packet, RFC 6184 §5.6).
    fn idr_packet(ts: u32, n: u8) -> Send {
        Send::Rtp(ts, true, vec![0x65, 0x88, 0x84, n, 0x21, 0x43])
    }

    /// A complete non-IDR picture in one RTP packet.
    fn p_packet(ts: u32, n: u8) -> Send {
        Send::Rtp(ts, true, vec![0x41, 0x9a, 0x02, n, 0x11])
    }

    /// The middle fragment of a fragmented IDR NAL unit (FU-A, RFC 6184 §5.8: neither the
    /// start nor the end bit), what a reader that joins mid-frame or loses the start over UDP
    /// sees first.
    fn fu_a_middle(ts: u32) -> Send {
        Send::Rtp(ts, false, vec![0x7c, 0x05, 0x11, 0x22, 0x33])
    }

    fn rtsp_options() -> PullOptions {
        PullOptions {
            connect_timeout: Duration::from_secs(5),
            setup_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            ..PullOptions::default()
        }
    }

    /// Every access unit until the end, as (pts, key, first byte of the first NAL unit).
    async fn drain(puller: &mut Puller) -> (Vec<(i64, bool, u8)>, Result<(), PullError>) {
        let mut got = Vec::new();
        loop {
            match puller.next().await {
                Ok(Some(au)) => got.push((au.pts, au.key, au.nalus[0][3])),
                Ok(None) => return (got, Ok(())),
                Err(e) => return (got, Err(e)),
            }
        }
    }

    #[test]
    fn an_fu_a_fragment_without_its_start_drops_one_access_unit_and_the_pull_goes_on() {
        runtime().block_on(async {
            let (url, server) = scripted_rtsp(vec![
                // Joined mid-frame: the first packet is the middle of a fragmented NAL unit.
                fu_a_middle(0),
                idr_packet(3000, 1),
                p_packet(6000, 2),
                Send::Bye,
            ])
            .await;
            let mut puller = Puller::connect(&url, rtsp_options()).await.unwrap();
            assert_eq!(puller.protocol(), PullProtocol::Rtsp);
            let (got, end) = drain(&mut puller).await;
            end.unwrap();
            // pts counts from the first packet (the fragment), 3000 ticks before the IDR.
            assert_eq!(got, vec![(3000, true, 1), (6000, false, 2)]);
            let s = puller.stats().clone();
            assert_eq!(
                (s.depacketize_errors, s.dropped_after_loss),
                (1, 0),
                "{s:?}"
            );
            assert_eq!((s.access_units, s.key_frames), (2, 1));
            // After the BYE, `next` keeps saying the stream ended.
            assert!(puller.next().await.unwrap().is_none());
            puller.close().await;
            server.await.unwrap();
        });
    }

    #[test]
    fn after_a_loss_mid_stream_the_pull_resumes_at_the_next_key_frame() {
        runtime().block_on(async {
            let (url, server) = scripted_rtsp(vec![
                idr_packet(0, 1),
                p_packet(3000, 2),
                // The start of the next picture was lost: the rest of it is rejected.
                fu_a_middle(6000),
                // Pictures that may refer to the lost one: dropped.
                p_packet(9000, 4),
                p_packet(12000, 5),
                idr_packet(15000, 6),
                p_packet(18000, 7),
                Send::Bye,
            ])
            .await;
            let mut puller = Puller::connect(&url, rtsp_options()).await.unwrap();
            let (got, end) = drain(&mut puller).await;
            end.unwrap();
            assert_eq!(
                got,
                vec![
                    (0, true, 1),
                    (3000, false, 2),
                    (15000, true, 6),
                    (18000, false, 7)
                ]
            );
            let s = puller.stats().clone();
            assert_eq!(
                (s.depacketize_errors, s.dropped_after_loss),
                (1, 2),
                "{s:?}"
            );
            puller.close().await;
            server.await.unwrap();
        });
    }

    #[test]
    fn a_connection_closed_without_bye_is_a_lost_connection_not_the_end() {
        runtime().block_on(async {
            let (url, server) =
                scripted_rtsp(vec![idr_packet(0, 1), p_packet(3000, 2), Send::Close]).await;
            let mut puller = Puller::connect(&url, rtsp_options()).await.unwrap();
            let (got, end) = drain(&mut puller).await;
            assert_eq!(got.len(), 2);
            let e = end.unwrap_err();
            assert!(
                matches!(
                    &e,
                    PullError::ConnectionClosed {
                        step: PullStep::Streaming,
                        url: shown,
                    } if shown == &url
                ),
                "{e:?}"
            );
            assert!(e.to_string().contains("127.0.0.1"), "{e}");
            assert!(e.heals(), "a lost connection may heal");
            server.await.unwrap();

            // A reset is a lost connection too, with the socket's error.
            let (url, server) = scripted_rtsp(vec![idr_packet(0, 1), Send::Reset]).await;
            let mut puller = Puller::connect(&url, rtsp_options()).await.unwrap();
            let (got, end) = drain(&mut puller).await;
            // The kernel discards what was not read yet when the reset arrives.
            assert!(got.len() <= 1, "{got:?}");
            let e = end.unwrap_err();
            match &e {
                PullError::Io {
                    step: PullStep::Streaming,
                    source,
                    ..
                } => assert_eq!(source.kind(), std::io::ErrorKind::ConnectionReset, "{e:?}"),
                // The reset may come after the kernel already reported the end.
                PullError::ConnectionClosed {
                    step: PullStep::Streaming,
                    ..
                } => {}
                _ => panic!("{e:?}"),
            }
            server.await.unwrap();
        });
    }

    #[test]
    fn a_server_that_never_answers_describe_times_out_naming_the_step() {
        runtime().block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            // Accepts, reads, never answers.
            let server = tokio::spawn(async move {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
            });
            let limit = Duration::from_millis(400);
            let options = PullOptions {
                connect_timeout: limit,
                setup_timeout: limit,
                idle_timeout: limit,
                ..PullOptions::default()
            };
            let url = format!("rtsp://u:hunter2@127.0.0.1:{port}/x");
            let started = Instant::now();
            let e = Puller::connect(&url, options).await.unwrap_err();
            let took = started.elapsed();
            assert!(
                matches!(
                    e,
                    PullError::Timeout {
                        step: PullStep::Describe,
                        after,
                        ..
                    } if after == limit
                ),
                "{e:?}"
            );
            let text = e.to_string();
            assert!(text.contains("DESCRIBE") && text.contains(&format!("127.0.0.1:{port}/x")));
            assert!(!text.contains("hunter2"), "{text}");
            assert!(took >= limit && took < limit * 3, "{took:?}");
            server.abort();
        });
    }
}
