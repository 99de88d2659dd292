//! The RTSP RECORD publisher against real servers on loopback: GStreamer's RTSP server in
//! RECORD mode and `ffmpeg -rtsp_flags listen`, over TCP and UDP, unpaced. What each server
//! recorded is decoded by the ffmpeg CLI and compared frame by frame with the source.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mpegcoder_protocol_tests::*;
use mpegcoder_transport::net::{ConnectError, ConnectStep};
use mpegcoder_transport::rtsp::{
    Method, NegotiatedTransport, RtspError, RtspOptions, RtspPublisher, Step,
};
use mpegcoder_transport::{AccessUnit, TimeBase, Track, Transport, VideoTrack};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The clip's track and access units, as a demuxer hands them to a publisher.
fn units(clip: &Clip) -> (VideoTrack, Vec<AccessUnit>) {
    let track = VideoTrack::from_extradata(&Bytes::from(clip.extradata.clone())).unwrap();
    let tb = TimeBase::new(clip.time_base.0, clip.time_base.1);
    let aus = clip
        .packets
        .iter()
        .map(|p| {
            AccessUnit::from_length_prefixed(
                &Bytes::from(p.data.clone()),
                4,
                p.pts,
                p.dts,
                tb,
                p.key,
            )
            .unwrap()
        })
        .collect();
    (track, aus)
}

/// Publishes every access unit as fast as the publisher takes them, then closes.
fn publish(
    rt: &tokio::runtime::Runtime,
    url: &str,
    track: &VideoTrack,
    aus: &[AccessUnit],
    options: RtspOptions,
) -> Result<mpegcoder_transport::rtsp::PublishStats, RtspError> {
    rt.block_on(async {
        let mut p = RtspPublisher::connect(url, &[Track::from(track)], options).await?;
        for au in aus {
            p.send(au).await?;
        }
        let shown = p.url().to_string();
        let started = Instant::now();
        let stats = p.close().await;
        eprintln!("{shown}: close took {:?}", started.elapsed());
        stats.map(|s| s.rtsp().copied().unwrap_or_default())
    })
}

fn with(transport: Transport) -> RtspOptions {
    RtspOptions::default().with_transport(transport)
}

#[test]
fn publish_into_gstreamer_tcp_and_udp_bit_exact() {
    if !require("publish_into_gstreamer_tcp_and_udp_bit_exact", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("rtsp-gst");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    assert!(clip.has_bframes());
    let (track, aus) = units(&clip);
    let rt = runtime();
    for transport in [Transport::Tcp, Transport::Udp] {
        let server = GstRtspRecord::start(dir.path());
        let stats = publish(&rt, &server.url(None), &track, &aus, with(transport))
            .unwrap_or_else(|e| panic!("{transport:?}: {e}; server log: {}", server.log()));
        assert_eq!(stats.frames, aus.len() as u64);
        assert!(stats.packets >= stats.frames);
        let rec = server.wait_recording(Duration::from_millis(500), Duration::from_secs(10));
        assert_frames_match(
            &clip.framemd5,
            &framemd5(&rec),
            true,
            &format!("GStreamer {transport:?}"),
        );
    }
}

#[test]
fn publish_into_ffmpeg_listener_tcp_and_udp_bit_exact() {
    if !require(
        "publish_into_ffmpeg_listener_tcp_and_udp_bit_exact",
        GST_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("rtsp-ffmpeg");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    let (track, aus) = units(&clip);
    let rt = runtime();
    for transport in [Transport::Tcp, Transport::Udp] {
        let listener = FfmpegListener::start(dir.path(), ListenerKind::Rtsp, 20);
        let stats = publish(&rt, &listener.url(), &track, &aus, with(transport))
            .unwrap_or_else(|e| panic!("{transport:?}: {e}; ffmpeg log: {}", listener.log()));
        assert_eq!(stats.frames, aus.len() as u64);
        let out = listener.finish(Duration::from_secs(10));
        assert_frames_match(
            &clip.framemd5,
            &framemd5(&out),
            true,
            &format!("ffmpeg listener {transport:?}"),
        );
    }
}

#[test]
fn gstreamer_digest_and_basic_auth() {
    if !require("gstreamer_digest_and_basic_auth", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("rtsp-auth");
    let clip = Clip::generate(
        dir.path(),
        ClipSpec {
            frames: 30,
            ..ClipSpec::default()
        },
    );
    let (track, aus) = units(&clip);
    let rt = runtime();
    for method in ["digest", "basic"] {
        let server = GstRtspRecord::start_with(
            dir.path(),
            GstOptions {
                auth: Some(("alice".into(), "s3cr:et@/x".into(), method)),
                ..GstOptions::default()
            },
        );
        // Wrong password: a typed 401 that names the request and never shows the password.
        let bad = server.url(Some(("alice", "wrong-pw")));
        let e = publish(&rt, &bad, &track, &aus, with(Transport::Tcp)).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("wrong-pw"), "{shown}");
        let RtspError::Unauthorized {
            status,
            credentials_given: true,
        } = &e
        else {
            panic!("{method}: {e:?}")
        };
        assert_eq!(status.status, 401);
        // No credentials at all.
        let e = publish(&rt, &server.url(None), &track, &aus, with(Transport::Tcp)).unwrap_err();
        assert!(
            matches!(
                e,
                RtspError::Unauthorized {
                    credentials_given: false,
                    ..
                }
            ),
            "{e:?}"
        );
        // Right password (percent-encoded special characters).
        let good = server.url(Some(("alice", "s3cr%3Aet%40%2Fx")));
        let stats = publish(&rt, &good, &track, &aus, with(Transport::Tcp))
            .unwrap_or_else(|e| panic!("{method}: {e}; log: {}", server.log()));
        assert_eq!(stats.frames, 30);
        let rec = server.wait_recording(Duration::from_millis(500), Duration::from_secs(10));
        assert_frames_match(&clip.framemd5, &framemd5(&rec), true, method);
    }
}

#[test]
fn gstreamer_wrong_path_is_not_found() {
    if !require("gstreamer_wrong_path_is_not_found", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("rtsp-404");
    let clip = Clip::generate(
        dir.path(),
        ClipSpec {
            frames: 5,
            ..ClipSpec::default()
        },
    );
    let (track, aus) = units(&clip);
    let server = GstRtspRecord::start(dir.path());
    let url = format!("rtsp://127.0.0.1:{}/no/such/mount", server.port);
    let e = publish(&runtime(), &url, &track, &aus, with(Transport::Tcp)).unwrap_err();
    // GStreamer answers OPTIONS for any path and refuses the ANNOUNCE.
    let RtspError::NotFound(s) = &e else {
        panic!("{e:?}")
    };
    assert_eq!((s.method, s.status), (Method::Announce, 404));
    assert!(e.to_string().contains("/no/such/mount"), "{e}");
}

#[test]
fn refused_silent_and_unresolvable_servers() {
    let rt = runtime();
    let sps = Bytes::from_static(&[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
    ]);
    let track = VideoTrack::new(
        sps,
        Bytes::from_static(&[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]),
    )
    .unwrap();

    // Nothing listens.
    let port = free_tcp_port();
    let url = format!("rtsp://u:hunter2@127.0.0.1:{port}/x");
    let e = rt
        .block_on(RtspPublisher::connect(
            &url,
            &[Track::from(&track)],
            RtspOptions::default(),
        ))
        .unwrap_err();
    assert!(
        matches!(e, RtspError::Connect(ConnectError::Refused { .. })),
        "{e:?}"
    );
    assert!(!format!("{e} {e:?}").contains("hunter2"));

    // Accepts TCP, never answers: the OPTIONS reply times out within the configured time.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("rtsp://127.0.0.1:{}/x", silent.local_addr().unwrap().port());
    let opts = RtspOptions::default().with_request_timeout(Duration::from_millis(700));
    let started = Instant::now();
    let e = rt
        .block_on(RtspPublisher::connect(&url, &[Track::from(&track)], opts))
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            e,
            RtspError::Timeout {
                step: Step::Request(Method::Options),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(3),
        "{took:?}"
    );
    drop(silent);

    // DNS failure (.invalid never resolves, RFC 6761).
    let e = rt
        .block_on(RtspPublisher::connect(
            "rtsp://no-such-host.invalid/x",
            &[Track::from(&track)],
            RtspOptions::default(),
        ))
        .unwrap_err();
    assert!(
        matches!(
            e,
            RtspError::Connect(
                ConnectError::Resolve { .. }
                    | ConnectError::Timeout {
                        step: ConnectStep::Resolve,
                        ..
                    }
            )
        ),
        "{e:?}"
    );
}

#[test]
fn negotiated_transport_is_reported() {
    if !require("negotiated_transport_is_reported", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("rtsp-negotiated");
    let clip = Clip::generate(
        dir.path(),
        ClipSpec {
            frames: 5,
            ..ClipSpec::default()
        },
    );
    let (track, _) = units(&clip);
    let server = GstRtspRecord::start(dir.path());
    let rt = runtime();
    rt.block_on(async {
        let p = RtspPublisher::connect(&server.url(None), &[Track::from(&track)], with(Transport::Udp))
            .await
            .unwrap();
        let n = p.negotiated().clone();
        assert!(matches!(n.transport, NegotiatedTransport::Udp { client_ports: (a, b), .. } if a % 2 == 0 && b == a + 1));
        assert!(!n.session_id.is_empty());
        // Idle for a while: the driver keeps the session (and its socket) serviced.
        tokio::time::sleep(Duration::from_millis(300)).await;
        p.close().await.unwrap();
    });
}
