//! The RTMP publisher against real servers on loopback: nginx with the RTMP module (recording
//! to FLV) and the ffmpeg CLI as an RTMP listener. What the server recorded is decoded by the
//! ffmpeg CLI and compared frame by frame with the source clip.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use mpegcoder_protocol_tests::*;
use mpegcoder_transport::net::ConnectError;
use mpegcoder_transport::rtmp::{
    PublishStats, RefusedStep, RtmpError, RtmpOptions, RtmpPublisher, ServerRefusal, Step,
};
use mpegcoder_transport::{AccessUnit, TimeBase, Track, VideoTrack};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The clip's track and access units, as a demuxer would hand them over.
fn units(clip: &Clip) -> (VideoTrack, Vec<AccessUnit>) {
    let track = VideoTrack::from_extradata(&Bytes::from(clip.extradata.clone()))
        .unwrap()
        .with_encoder("libx264");
    let tb = TimeBase {
        num: clip.time_base.0,
        den: clip.time_base.1,
    };
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

/// Publishes every access unit unpaced and closes gracefully.
fn publish(url: &str, track: &VideoTrack, aus: &[AccessUnit]) -> Result<PublishStats, RtmpError> {
    runtime().block_on(async {
        let mut publisher =
            RtmpPublisher::connect(url, &[Track::from(track)], RtmpOptions::default()).await?;
        for au in aus {
            publisher.send(au).await?;
        }
        let stats = publisher.close().await?;
        Ok(stats.rtmp().cloned().unwrap_or_default())
    })
}

fn assert_clean_timestamps(path: &std::path::Path, frames: usize, what: &str) {
    let ts = check_timestamps(path);
    assert_eq!(ts.packets, frames, "{what}: packets in the recording");
    assert_eq!(ts.non_monotonic_dts, 0, "{what}: non-monotonic DTS");
    assert_eq!(ts.pts_below_dts, 0, "{what}: PTS below DTS");
}

#[test]
fn bframes_into_nginx_arrive_bit_exact() {
    if !require("bframes_into_nginx_arrive_bit_exact", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("rtmp-nginx");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    assert!(clip.has_bframes());
    assert!(
        clip.packets[0].dts < 0,
        "libx264 with B-frames starts below zero"
    );
    let (track, aus) = units(&clip);
    let nginx = NginxRtmp::start(dir.path());
    let stats = publish(&nginx.url("cam"), &track, &aus)
        .unwrap_or_else(|e| panic!("{e}; nginx log: {}", nginx.log()));
    assert_eq!(stats.frames, 60);
    assert_eq!(stats.sequence_headers, 1);
    assert!(stats.closed_cleanly, "nginx closed after our FIN");
    let flv = nginx.wait_recording("cam", Duration::from_secs(10));
    assert_frames_match(&clip.framemd5, &framemd5(&flv), true, "nginx");
    assert_clean_timestamps(&flv, 60, "nginx");
}

#[test]
fn bframes_into_ffmpeg_listener_arrive_bit_exact() {
    if !require("bframes_into_ffmpeg_listener_arrive_bit_exact", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("rtmp-ffmpeg");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    assert!(clip.has_bframes());
    let (track, aus) = units(&clip);
    let listener = FfmpegListener::start(dir.path(), ListenerKind::Rtmp, 20);
    let stats = publish(&listener.url(), &track, &aus)
        .unwrap_or_else(|e| panic!("{e}; ffmpeg log: {}", listener.log()));
    assert_eq!(stats.frames, 60);
    let out = listener.finish(Duration::from_secs(10));
    assert_frames_match(&clip.framemd5, &framemd5(&out), true, "ffmpeg listener");
    assert_clean_timestamps(&out, 60, "ffmpeg listener");
}

#[test]
fn long_unpaced_clip_arrives_completely_in_nginx() {
    if !require("long_unpaced_clip_arrives_completely_in_nginx", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("rtmp-long");
    let clip = Clip::generate(
        dir.path(),
        ClipSpec {
            frames: 300,
            gop: 30,
            ..ClipSpec::default()
        },
    );
    let (track, aus) = units(&clip);
    let nginx = NginxRtmp::start(dir.path());
    let stats = publish(&nginx.url("long"), &track, &aus)
        .unwrap_or_else(|e| panic!("{e}; nginx log: {}", nginx.log()));
    assert_eq!(stats.frames, 300);
    let flv = nginx.wait_recording("long", Duration::from_secs(15));
    // The tail is the first thing lost when a socket is closed with unread data.
    assert_frames_match(
        &clip.framemd5,
        &framemd5(&flv),
        true,
        "300 frames into nginx",
    );
    assert_clean_timestamps(&flv, 300, "300 frames into nginx");
}

#[test]
fn busy_stream_name_is_rejected_by_nginx_with_its_code() {
    if !require(
        "busy_stream_name_is_rejected_by_nginx_with_its_code",
        NGINX_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("rtmp-busy");
    let clip = Clip::generate(
        dir.path(),
        ClipSpec {
            frames: 5,
            ..ClipSpec::default()
        },
    );
    let (track, aus) = units(&clip);
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("busy?pass=hunter2");
    runtime().block_on(async {
        let mut first =
            RtmpPublisher::connect(&url, &[Track::from(&track)], RtmpOptions::default())
                .await
                .unwrap();
        first.send(&aus[0]).await.unwrap();
        let second =
            RtmpPublisher::connect(&url, &[Track::from(&track)], RtmpOptions::default()).await;
        let err = second.expect_err("a second publisher on a busy name is refused");
        match &err {
            RtmpError::Refused(ServerRefusal {
                step: RefusedStep::Publish,
                code,
                ..
            }) => {
                assert_eq!(code, "NetStream.Publish.BadName", "{err}")
            }
            other => panic!("expected a publish rejection, got {other:?}"),
        }
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        first.close().await.unwrap();
    });
}

#[test]
fn refused_port_is_a_typed_error_quickly() {
    if !require("refused_port_is_a_typed_error_quickly", NGINX_TOOLS) {
        return;
    }
    let port = free_tcp_port();
    let dir = TempDir::new("rtmp-refused");
    let clip = Clip::generate(
        dir.path(),
        ClipSpec {
            frames: 1,
            ..ClipSpec::default()
        },
    );
    let (track, _) = units(&clip);
    let started = Instant::now();
    let result = runtime().block_on(RtmpPublisher::connect(
        &format!("rtmp://bob:secret@127.0.0.1:{port}/live/x"),
        &[Track::from(&track)],
        RtmpOptions::default(),
    ));
    let err = result.expect_err("nothing listens there");
    assert!(
        matches!(&err, RtmpError::Connect(ConnectError::Refused { url, .. }) if url == &format!("rtmp://127.0.0.1:{port}/live/x")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("secret"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn silent_server_times_out_within_the_configured_time() {
    if !require(
        "silent_server_times_out_within_the_configured_time",
        NGINX_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("rtmp-silent");
    let clip = Clip::generate(
        dir.path(),
        ClipSpec {
            frames: 1,
            ..ClipSpec::default()
        },
    );
    let (track, _) = units(&clip);
    // Accepts TCP (the kernel completes the handshake from the backlog) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut options = RtmpOptions::default();
    options.handshake_timeout = Duration::from_millis(800);
    let started = Instant::now();
    let result = runtime().block_on(RtmpPublisher::connect(
        &format!("rtmp://127.0.0.1:{port}/live/x"),
        &[Track::from(&track)],
        options,
    ));
    let elapsed = started.elapsed();
    let err = result.expect_err("the server never answers");
    assert!(
        matches!(
            &err,
            RtmpError::Timeout {
                step: Step::Handshake,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(800) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    drop(silent);
}
