//! The harness's own check: an independent publisher (the ffmpeg CLI) pushes a generated clip
//! into each real server, and what the server recorded decodes to the source's frames. If this
//! fails, the servers or the harness are broken, not the code under test.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use mpegcoder_protocol_tests::*;

fn ffmpeg_publish(input: &std::path::Path, args: &[&str], url: &str) {
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(input)
        .args(["-map", "0:v:0", "-c", "copy"])
        .args(args)
        .arg(url));
}

#[test]
fn ffmpeg_into_gstreamer_record_tcp_and_udp() {
    if !require("ffmpeg_into_gstreamer_record", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("harness-gst");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    assert!(clip.has_bframes());
    assert_eq!(clip.framemd5.len(), 60);
    for transport in ["tcp", "udp"] {
        let server = GstRtspRecord::start(dir.path());
        // Paced (-re): an unpaced UDP burst overflows the server's socket buffer.
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-re", "-i"])
            .arg(&clip.mp4)
            .args([
                "-map",
                "0:v:0",
                "-c",
                "copy",
                "-rtsp_transport",
                transport,
                "-f",
                "rtsp",
            ])
            .arg(server.url(None)));
        let rec = server.wait_recording(Duration::from_millis(500), Duration::from_secs(10));
        assert_frames_match(&clip.framemd5, &framemd5(&rec), true, transport);
    }
}

#[test]
fn ffmpeg_into_nginx_rtmp_and_ffmpeg_listeners() {
    if !require("ffmpeg_into_nginx_rtmp", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("harness-rtmp");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    let nginx = NginxRtmp::start(dir.path());
    ffmpeg_publish(&clip.mp4, &["-f", "flv"], &nginx.url("cam"));
    let flv = nginx.wait_recording("cam", Duration::from_secs(10));
    assert_frames_match(&clip.framemd5, &framemd5(&flv), true, "nginx");
    let ts = check_timestamps(&flv);
    assert_eq!(ts.packets, 60);
    assert_eq!((ts.non_monotonic_dts, ts.pts_below_dts), (0, 0));

    for kind in [ListenerKind::Rtmp, ListenerKind::Rtsp] {
        let listener = FfmpegListener::start(dir.path(), kind, 20);
        let fmt: &[&str] = match kind {
            ListenerKind::Rtmp => &["-f", "flv"],
            ListenerKind::Rtsp => &["-rtsp_transport", "tcp", "-f", "rtsp"],
        };
        ffmpeg_publish(&clip.mp4, fmt, &listener.url());
        let out = listener.finish(Duration::from_secs(10));
        assert_frames_match(&clip.framemd5, &framemd5(&out), true, &format!("{kind:?}"));
    }
}

#[test]
fn gstreamer_record_requires_credentials() {
    if !require("gstreamer_record_requires_credentials", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("harness-auth");
    let clip = Clip::generate(
        dir.path(),
        ClipSpec {
            frames: 10,
            ..ClipSpec::default()
        },
    );
    let server = GstRtspRecord::start_with(
        dir.path(),
        GstOptions {
            auth: Some(("alice".into(), "s3cret".into(), "digest")),
            ..GstOptions::default()
        },
    );
    let denied = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(&clip.mp4)
        .args(["-c", "copy", "-rtsp_transport", "tcp", "-f", "rtsp"])
        .arg(server.url(None))
        .output()
        .unwrap();
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("401"));
    // TCP: an unpaced UDP burst from ffmpeg loses its tail to the TEARDOWN race.
    ffmpeg_publish(
        &clip.mp4,
        &["-rtsp_transport", "tcp", "-f", "rtsp"],
        &server.url(Some(("alice", "s3cret"))),
    );
    let rec = server.wait_recording(Duration::from_millis(500), Duration::from_secs(10));
    assert_frames_match(&clip.framemd5, &framemd5(&rec), true, "digest");
}
