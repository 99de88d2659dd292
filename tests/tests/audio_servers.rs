//! The harness's own check for audio: an independent publisher (the ffmpeg CLI) pushes a
//! generated H.264 + AAC clip into each real server, and what the server recorded holds the
//! source's video frames, its audio packets bit for bit, and its start offset between audio and
//! video. If this fails, the servers or the harness are broken, not the code under test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mpegcoder_protocol_tests::*;

/// Pushes the clip paced (`-re`) with ffmpeg, both tracks copied.
fn ffmpeg_push(clip: &Clip, args: &[&str], url: &str) -> Duration {
    let started = Instant::now();
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-re", "-i"])
        .arg(&clip.mp4)
        .args(["-map", "0:v:0", "-map", "0:a:0", "-c", "copy"])
        .args(args)
        .arg(url));
    started.elapsed()
}

/// How many AAC frames at the end of the clip ffmpeg's RTP packetizer never sends. FFmpeg 5.1
/// (libavformat/rtpenc_aac.c) gathers frames into one RFC 3640 packet (up to 50 AU headers,
/// 2 + 2 * 50 bytes reserved for them, a 1460-byte payload, at most `-muxdelay` = 0.7 s) and
/// sends a packet only when the next frame no longer fits; its trailer does not flush the last
/// packet. So every ffmpeg RTSP publish drops the clip's last few AAC frames, whatever the
/// server (GStreamer's depayloader logs every AU it receives: 18 packets of 5 AUs for a
/// 95-frame clip whose last 5 frames filled the 19th).
fn ffmpeg_unsent_aac_frames(clip: &Clip) -> usize {
    const MAX_PAYLOAD: usize = 1472 - 12;
    const AU_HEADERS: usize = 2 + 2 * 50;
    let tb = clip.audio_time_base.unwrap();
    let max_delay = (0.7 * f64::from(tb.1) / f64::from(tb.0)) as i64;
    let (mut frames, mut len, mut first_pts) = (0usize, 0usize, 0i64);
    for p in &clip.audio_packets {
        let size = p.data.len();
        if frames > 0
            && (frames == 50 || len + size > MAX_PAYLOAD || p.pts - first_pts >= max_delay)
        {
            frames = 0;
        }
        if frames == 0 {
            len = AU_HEADERS;
            first_pts = p.pts;
        }
        if size <= MAX_PAYLOAD - AU_HEADERS {
            len += size;
            frames += 1;
        }
    }
    frames
}

#[test]
fn ffmpeg_av_into_gstreamer_record_tcp_and_udp() {
    if !require("ffmpeg_av_into_gstreamer_record_tcp_and_udp", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("audio-gst");
    let clip = av_clip(dir.path());
    let source_offset = clip.audio_start_offset.unwrap();
    let unsent = ffmpeg_unsent_aac_frames(&clip);
    // Never none: the last packet always waits for a frame that does not come.
    assert!(unsent >= 1);
    let sent = &clip.audio_md5[..clip.audio_md5.len() - unsent];
    for transport in ["tcp", "udp"] {
        let what = format!("GStreamer {transport}");
        let server = GstRtspRecord::start_with(
            dir.path(),
            GstOptions {
                audio: true,
                ..GstOptions::default()
            },
        );
        let took = ffmpeg_push(
            &clip,
            &["-rtsp_transport", transport, "-f", "rtsp"],
            &server.url(None),
        );
        let rec = server.wait_recording(Duration::from_millis(500), Duration::from_secs(10));
        assert_frames_match(&clip.framemd5, &framemd5(&rec), true, &what);
        assert_audio_match(sent, &audio_framemd5(&rec), &what);
        assert_audio_steady(&rec, &what);
        let offset = start_offset(&rec, &what);
        eprintln!(
            "{what}: push {took:?}, start offset {:.1} ms (source {:.1} ms)",
            offset * 1e3,
            source_offset * 1e3
        );
        assert!(
            (offset - source_offset).abs() <= AV_OFFSET_TOLERANCE_S,
            "{what}: recorded start offset {offset:.4} s, source {source_offset:.4} s; server \
             log: {}",
            server.log()
        );
    }
}

#[test]
fn ffmpeg_av_into_nginx_rtmp() {
    if !require("ffmpeg_av_into_nginx_rtmp", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("audio-rtmp");
    let clip = av_clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let took = ffmpeg_push(&clip, &["-f", "flv"], &nginx.url("av"));
    let flv = nginx.wait_recording("av", Duration::from_secs(10));
    assert_frames_match(&clip.framemd5, &framemd5(&flv), true, "nginx");
    // FLV carries every AAC frame in its own tag: nothing is held back at the end.
    assert_audio_match(&clip.audio_md5, &audio_framemd5(&flv), "nginx");
    assert_audio_steady(&flv, "nginx");
    let ts = check_timestamps(&flv);
    assert_eq!((ts.non_monotonic_dts, ts.pts_below_dts), (0, 0));
    let offset = start_offset(&flv, "nginx");
    let source_offset = clip.audio_start_offset.unwrap();
    eprintln!(
        "nginx: push {took:?}, start offset {:.1} ms (source {:.1} ms)",
        offset * 1e3,
        source_offset * 1e3
    );
    assert!(
        (offset - source_offset).abs() <= AV_OFFSET_TOLERANCE_S,
        "nginx: recorded start offset {offset:.4} s, source {source_offset:.4} s"
    );
}

/// The --audio mount takes a publisher that announces one track, or both in the other order:
/// GStreamer alone answers 415 to an SDP with fewer media than the mount has depayloaders, and
/// records nothing for a stream that is announced but not SETUP (see the server script).
#[test]
fn gstreamer_av_mount_takes_one_track_or_either_order() {
    if !require(
        "gstreamer_av_mount_takes_one_track_or_either_order",
        GST_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("audio-gst-tracks");
    let clip = av_clip(dir.path());
    let unsent = ffmpeg_unsent_aac_frames(&clip);
    let sent = &clip.audio_md5[..clip.audio_md5.len() - unsent];
    // Over TCP the push needs no pacing (timing is not checked here).
    for (maps, video, audio) in [
        (&["-map", "0:v:0"][..], true, false),
        (&["-map", "0:a:0", "-map", "0:v:0"][..], true, true),
        (&["-map", "0:a:0"][..], false, true),
    ] {
        let what = format!("publisher with {maps:?}");
        let server = GstRtspRecord::start_with(
            dir.path(),
            GstOptions {
                audio: true,
                ..GstOptions::default()
            },
        );
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-i"])
            .arg(&clip.mp4)
            .args(maps)
            .args(["-c", "copy", "-rtsp_transport", "tcp", "-f", "rtsp"])
            .arg(server.url(None)));
        let rec = server.wait_recording(Duration::from_millis(500), Duration::from_secs(10));
        let (v, a) = first_pts(&rec);
        assert_eq!((v.is_some(), a.is_some()), (video, audio), "{what}: tracks");
        if video {
            assert_frames_match(&clip.framemd5, &framemd5(&rec), true, &what);
        }
        if audio {
            assert_audio_match(sent, &audio_framemd5(&rec), &what);
        }
    }
}

/// With a relay mount, a reader joining the running publish pulls both tracks back.
#[test]
fn gstreamer_av_relay_serves_both_tracks() {
    if !require("gstreamer_av_relay_serves_both_tracks", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("audio-gst-relay");
    let clip = Clip::generate(
        dir.path(),
        ClipSpec {
            frames: 120,
            ..ClipSpec::default()
        }
        .with_audio(AudioSpec::default()),
    );
    assert_distinct(&clip.audio_md5);
    assert_distinct(&clip.framemd5);
    let server = GstRtspRecord::start_with(
        dir.path(),
        GstOptions {
            audio: true,
            relay_mount: Some("/play".into()),
            ..GstOptions::default()
        },
    );
    let mut publisher = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-re", "-i"])
        .arg(&clip.mp4)
        .args(["-c", "copy", "-rtsp_transport", "tcp", "-f", "rtsp"])
        .arg(server.url(None))
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    // The reader leaves after 2 s of stream (the relay never ends a PLAY session by itself);
    // `timeout` bounds it should it hang.
    let audio_md5 = dir.path().join("relay-audio.framemd5");
    let video_md5 = dir.path().join("relay-video.framemd5");
    run(Command::new("timeout")
        .args(["-k", "2", "15", "ffmpeg", "-v", "error", "-nostdin"])
        .args(["-rtsp_transport", "tcp", "-i"])
        .arg(server.relay_url())
        .args(["-map", "0:a:0", "-c", "copy", "-t", "2", "-f", "framemd5"])
        .arg(&audio_md5)
        .args(["-map", "0:v:0", "-fps_mode", "passthrough", "-t", "2"])
        .args(["-f", "framemd5"])
        .arg(&video_md5));
    assert!(publisher.wait().unwrap().success());
    let hashes = |path: &Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(',').nth(5).map(|h| h.trim().to_string()))
            .collect()
    };
    // About 2 s of each: at least 1.5 s.
    let a = assert_contiguous_run(&clip.audio_md5, &hashes(&audio_md5), 70, "relay audio");
    let v = assert_contiguous_run(&clip.framemd5, &hashes(&video_md5), 45, "relay video");
    eprintln!("relay: audio from source packet {a}, video from source frame {v}");
}
