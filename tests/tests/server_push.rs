//! The push pipeline (`mpegcoder::push`, `Server`) against real servers: what arrives is
//! decoded by the ffmpeg CLI and compared with the source — frame count and a quality floor
//! for libx264, per-frame hashes for copy. Unpaced except where pacing is the point.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use mpegcoder::{push, PushOptions, PushSummary, Transport, VideoCodec};
use mpegcoder_protocol_tests::*;

fn options(clip: &Clip, url: &str, codec: VideoCodec) -> PushOptions {
    let mut o = PushOptions::new(clip.mp4.to_string_lossy(), url);
    o.codec = codec;
    o.pace = false;
    if codec == VideoCodec::Libx264 {
        o.bit_rate = Some(1_000_000);
    }
    o
}

fn run_push(o: &PushOptions) -> PushSummary {
    push(o, &AtomicBool::new(false), |_| {}).unwrap_or_else(|e| panic!("push failed: {e}"))
}

/// libx264 output that arrived: every frame, decodable, and close to the source.
fn assert_encoded_arrived(clip: &Clip, recording: &std::path::Path, what: &str) {
    let (db, frames) = psnr(recording, &clip.mp4);
    assert_eq!(frames, clip.framemd5.len(), "{what}: frames that arrived");
    assert!(db > 35.0, "{what}: PSNR {db:.2} dB against the source");
}

#[test]
fn libx264_push_to_gstreamer_over_tcp_and_udp() {
    if !require("libx264_push_to_gstreamer", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("push-x264-gst");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    for transport in [Transport::Tcp, Transport::Udp] {
        let server = GstRtspRecord::start(dir.path());
        let mut o = options(&clip, &server.url(None), VideoCodec::Libx264);
        o.transport = transport;
        let summary = run_push(&o);
        assert_eq!(summary.stats.frames_sent, 60);
        assert_eq!(summary.stats.frames_encoded, 60);
        let rec = server.wait_recording(Duration::from_millis(500), Duration::from_secs(10));
        assert_encoded_arrived(&clip, &rec, &format!("{transport:?}"));
    }
}

#[test]
fn libx264_push_to_nginx_rtmp_keeps_b_frame_timestamps() {
    if !require("libx264_push_to_nginx_rtmp", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("push-x264-rtmp");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    let nginx = NginxRtmp::start(dir.path());
    let mut o = options(&clip, &nginx.url("x264"), VideoCodec::Libx264);
    o.max_b_frames = Some(3);
    let summary = run_push(&o);
    assert_eq!(summary.stats.frames_sent, 60);
    let flv = nginx.wait_recording("x264", Duration::from_secs(10));
    assert_encoded_arrived(&clip, &flv, "rtmp");
    let ts = check_timestamps(&flv);
    assert_eq!(ts.packets, 60);
    assert_eq!((ts.non_monotonic_dts, ts.pts_below_dts), (0, 0));
    // B-frames really went out: some packets are shown later than they are decoded.
    let out = run(std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["packet=pts,dts", "-of", "csv=p=0"])
        .arg(&flv));
    let reordered = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            let v: Vec<&str> = l.split(',').collect();
            v.len() == 2 && v[0] != v[1]
        })
        .count();
    assert!(reordered > 0, "no packet with pts != dts: B-frames lost");
}

#[test]
fn copy_push_arrives_bit_exact_over_rtsp_and_rtmp() {
    if !require("copy_push_arrives_bit_exact", GST_TOOLS)
        || !require("copy_push_arrives_bit_exact", NGINX_TOOLS)
    {
        return;
    }
    let dir = TempDir::new("push-copy");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    for transport in [Transport::Tcp, Transport::Udp] {
        let server = GstRtspRecord::start(dir.path());
        let mut o = options(&clip, &server.url(None), VideoCodec::Copy);
        o.transport = transport;
        assert_eq!(run_push(&o).stats.frames_sent, 60);
        let rec = server.wait_recording(Duration::from_millis(500), Duration::from_secs(10));
        assert_frames_match(
            &clip.framemd5,
            &framemd5(&rec),
            true,
            &format!("{transport:?}"),
        );
    }
    let nginx = NginxRtmp::start(dir.path());
    let o = options(&clip, &nginx.url("copy"), VideoCodec::Copy);
    assert_eq!(run_push(&o).stats.frames_sent, 60);
    let flv = nginx.wait_recording("copy", Duration::from_secs(10));
    assert_frames_match(&clip.framemd5, &framemd5(&flv), true, "rtmp");
}

#[test]
fn paced_push_takes_about_the_clip_duration() {
    if !require("paced_push_takes_about_the_clip_duration", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("push-paced");
    // 2 s at 30 fps.
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    let nginx = NginxRtmp::start(dir.path());
    let mut o = options(&clip, &nginx.url("paced"), VideoCodec::Copy);
    o.pace = true;
    let started = Instant::now();
    let summary = run_push(&o);
    let took = started.elapsed();
    // The last frame is due 59/30 s after the first. Generous bounds: the machine is shared.
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "a paced push of a 2 s clip took {took:?}"
    );
    assert_eq!(summary.stats.frames_sent, 60);
    assert!((summary.stats.stream_time_s - 59.0 / 30.0).abs() < 1e-6);
    let flv = nginx.wait_recording("paced", Duration::from_secs(10));
    assert_frames_match(&clip.framemd5, &framemd5(&flv), true, "paced");

    // --rate 2: the same clip in about half the time.
    let mut o = options(&clip, &nginx.url("paced2"), VideoCodec::Copy);
    o.pace = true;
    o.rate = 2.0;
    let started = Instant::now();
    run_push(&o);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(2500),
        "a paced push at rate 2 took {took:?}"
    );
}

#[test]
fn loop_twice_sends_every_frame_twice_with_monotonic_timestamps() {
    if !require("loop_twice", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("push-loop");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    let nginx = NginxRtmp::start(dir.path());
    for codec in [VideoCodec::Copy, VideoCodec::Libx264] {
        let key = format!("loop-{codec:?}").to_lowercase();
        let mut o = options(&clip, &nginx.url(&key), codec);
        o.loops = 2;
        let summary = run_push(&o);
        assert_eq!(summary.loops_completed, 2);
        assert_eq!(summary.stats.frames_sent, 120);
        let flv = nginx.wait_recording(&key, Duration::from_secs(10));
        let ts = check_timestamps(&flv);
        assert_eq!(ts.packets, 120, "{codec:?}");
        assert_eq!(
            (ts.non_monotonic_dts, ts.pts_below_dts),
            (0, 0),
            "{codec:?}"
        );
        if codec == VideoCodec::Copy {
            let twice: Vec<String> = [clip.framemd5.clone(), clip.framemd5.clone()].concat();
            assert_frames_match(&twice, &framemd5(&flv), true, "loop copy");
        }
        // Two passes of 60 frames at 30 fps: the last dts is 119/30 s after the first.
        assert!((summary.stats.stream_time_s - 119.0 / 30.0).abs() < 0.002);
    }
}
