//! The audio codecs besides AAC from MP4, through `mpegcoder::push` in copy mode: MP3 and
//! G.711 into nginx-rtmp (FLV sound formats 2, 8, 7), MP3 (RFC 2250), Opus (RFC 7587) and
//! G.711 (RFC 3551) into ffmpeg's RTSP listener, and AAC with ADTS headers from MPEG-TS. What
//! arrived is compared packet for packet with the source (`ffmpeg -c copy -f framemd5`).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use mpegcoder::{push, PushOptions, PushSummary, VideoCodec};
use mpegcoder_protocol_tests::*;

/// A 2 s clip: H.264 with B-frames (Matroska stores no decoding time for the first packets)
/// and a tone in `codec` (ffmpeg's encoder name) with `extra` arguments, in `container`.
fn clip(dir: &Path, codec: &str, extra: &[&str], container: &str) -> PathBuf {
    let out = dir.join(format!("av-{codec}.{container}"));
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=320x240:rate=30", "-f", "lavfi"])
        .args(["-i", "sine=frequency=440:sample_rate=48000", "-t", "2"])
        .args(["-c:v", "libx264", "-bf", "2", "-g", "30", "-c:a", codec])
        .args(extra)
        .arg(&out));
    out
}

fn copy_push(input: &Path, url: &str) -> PushSummary {
    let mut o = PushOptions::new(input.to_string_lossy(), url).with_codec(VideoCodec::Copy);
    o.pace = false;
    o.audio = mpegcoder::push::AudioMode::Copy;
    push(&o, &AtomicBool::new(false), |_| {}).unwrap_or_else(|e| panic!("push failed: {e}"))
}

#[test]
fn mp3_and_g711_into_nginx_rtmp_arrive_packet_for_packet() {
    if !require("mp3_and_g711_into_nginx_rtmp", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("codecs-rtmp");
    let nginx = NginxRtmp::start(dir.path());
    for (codec, extra, name) in [
        ("libmp3lame", &["-ar", "44100", "-b:a", "128k"][..], "mp3"),
        ("pcm_mulaw", &["-ar", "8000", "-ac", "1"][..], "pcm_mulaw"),
        ("pcm_alaw", &["-ar", "8000", "-ac", "1"][..], "pcm_alaw"),
    ] {
        let input = clip(dir.path(), codec, extra, "mkv");
        let source = audio_framemd5(&input);
        assert!(source.len() > 10, "{name}: {} source packets", source.len());
        let summary = copy_push(&input, &nginx.url(name));
        assert_eq!(summary.audio_codec.as_deref(), Some(name));
        assert_eq!(summary.stats.frames_sent, 60, "{name}: video frames");
        assert_eq!(summary.stats.refused_frames, 0, "{name}");
        assert_eq!(
            summary.stats.audio_frames_sent,
            source.len() as u64,
            "{name}"
        );
        let flv = nginx.wait_recording(name, Duration::from_secs(10));
        assert_audio_match(&source, &audio_framemd5(&flv), &format!("nginx {name}"));
        let (v, a) = first_pts(&flv);
        assert!(v.is_some() && a.is_some(), "{name}: both tracks recorded");
    }
}

/// ffmpeg as an RTSP listener writing the audio it receives as per-packet MD5s.
fn rtsp_listener(dir: &Path, tag: &str) -> (ServerProcess, String, PathBuf) {
    let port = free_tcp_port();
    let out = dir.join(format!("{tag}.md5"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "warning", "-nostdin", "-y", "-rtsp_flags", "listen"])
        .args(["-timeout", "20", "-i"])
        .arg(format!("rtsp://127.0.0.1:{port}/live"))
        .args(["-map", "0:a:0", "-c", "copy", "-f", "framemd5"])
        .arg(&out)
        .stdout(Stdio::null());
    let proc = ServerProcess::spawn("ffmpeg", cmd, dir.join(format!("{tag}.log")));
    wait_listening(port, Duration::from_secs(10), "ffmpeg listener");
    (proc, format!("rtsp://127.0.0.1:{port}/live"), out)
}

/// The packet hashes of a `-f framemd5` file.
fn hashes(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(',').nth(5).map(|h| h.trim().to_string()))
        .collect()
}

#[test]
fn mp3_opus_and_g711_over_rtsp_arrive_packet_for_packet() {
    if !require("mp3_opus_and_g711_over_rtsp", FFMPEG_TOOLS) {
        return;
    }
    let dir = TempDir::new("codecs-rtsp");
    for (codec, extra, name) in [
        ("libmp3lame", &["-ar", "44100", "-b:a", "128k"][..], "mp3"),
        ("libopus", &["-b:a", "64k"][..], "opus"),
        ("pcm_mulaw", &["-ar", "8000", "-ac", "1"][..], "pcm_mulaw"),
        ("pcm_alaw", &["-ar", "8000", "-ac", "1"][..], "pcm_alaw"),
    ] {
        let input = clip(dir.path(), codec, extra, "mkv");
        let source = audio_framemd5(&input);
        let (mut listener, url, out) = rtsp_listener(dir.path(), name);
        let summary = copy_push(&input, &url);
        assert_eq!(summary.audio_codec.as_deref(), Some(name));
        assert!(
            listener.wait_exit(Duration::from_secs(10)),
            "{name}: {}",
            listener.log_text()
        );
        let received = hashes(&out);
        assert_audio_match(
            &source,
            &received,
            &format!("ffmpeg listener {name}: {}", listener.log_text()),
        );
    }
}

/// MPEG-TS stores AAC with ADTS headers and no AudioSpecificConfig: the pusher takes the
/// configuration from the first header and sends the raw frames, which equal the MP4's.
#[test]
fn adts_aac_from_mpeg_ts_arrives_as_raw_frames() {
    if !require("adts_aac_from_mpeg_ts", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("codecs-ts");
    let mp4 = clip(dir.path(), "aac", &["-ac", "2"], "mp4");
    let ts = dir.path().join("av.ts");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(&mp4)
        .args(["-c", "copy", "-f", "mpegts"])
        .arg(&ts));
    let nginx = NginxRtmp::start(dir.path());
    let summary = copy_push(&ts, &nginx.url("ts"));
    assert_eq!(summary.audio_codec.as_deref(), Some("aac"));
    let flv = nginx.wait_recording("ts", Duration::from_secs(10));
    // The MP4's packets are raw frames; the TS's carry a 7-byte ADTS header each.
    assert_audio_match(
        &audio_framemd5(&mp4),
        &audio_framemd5(&flv),
        "nginx from TS",
    );
}

/// Three recordings concatenated as one MPEG-TS whose clock jumps between them (back, then
/// forward): both tracks continue across the jumps together, so every frame arrives, the
/// timestamps keep increasing without a gap, and the audio stays where it was against the
/// video. Each recording's audio starts with the encoder's priming frame 21 ms before its
/// video and ends 5 ms after it: kept in place, that frame would overlap the previous
/// recording's last one, and is refused (the only audio not sent).
#[test]
fn a_jump_of_the_inputs_clock_is_taken_out_of_both_tracks() {
    if !require("a_jump_of_the_inputs_clock", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("codecs-jump");
    let mp4 = clip(dir.path(), "aac", &["-ac", "2"], "mp4");
    let part = |name: &str, offset_s: &str| {
        let out = dir.path().join(name);
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-y", "-i"])
            .arg(&mp4)
            .args(["-c", "copy", "-output_ts_offset", offset_s, "-f", "mpegts"])
            .arg(&out));
        std::fs::read(out).unwrap()
    };
    // 100 s, then 20 s (back 82 s), then 300 s (forward 278 s).
    let joined = dir.path().join("joined.ts");
    let mut bytes = part("a.ts", "100");
    bytes.extend(part("b.ts", "20"));
    bytes.extend(part("c.ts", "300"));
    std::fs::write(&joined, bytes).unwrap();

    let nginx = NginxRtmp::start(dir.path());
    let summary = copy_push(&joined, &nginx.url("jump"));
    assert_eq!(summary.timestamp_jumps, 2);
    assert_eq!(summary.stats.frames_sent, 180);
    let source_audio = audio_framemd5(&mp4);
    let n = source_audio.len();
    assert_eq!(summary.stats.audio_frames_sent, 3 * n as u64 - 2);
    assert_eq!(summary.stats.refused_audio_frames, 2);
    assert!(
        summary.stats.stream_time_s < 6.5,
        "stream time {} s: the jumps stayed in",
        summary.stats.stream_time_s
    );
    let flv = nginx.wait_recording("jump", Duration::from_secs(10));
    let expected: Vec<String> = source_audio
        .iter()
        .chain(&source_audio[1..])
        .chain(&source_audio[1..])
        .cloned()
        .collect();
    assert_audio_match(&expected, &audio_framemd5(&flv), "nginx");
    let video: Vec<f64> = packet_times(&flv, "v:0")
        .iter()
        .filter_map(|t| t.dts)
        .collect();
    let audio: Vec<f64> = packet_times(&flv, "a:0")
        .iter()
        .filter_map(|t| t.pts)
        .collect();
    assert_eq!(video.len(), 180);
    for (what, ts, max_step) in [("video", &video, 0.05), ("audio", &audio, 0.05)] {
        for w in ts.windows(2) {
            let step = w[1] - w[0];
            assert!(
                (0.0..=max_step).contains(&step),
                "{what}: {:.3} s after {:.3} s",
                w[1],
                w[0]
            );
        }
    }
    // Each part's audio frame at 0 (after the priming frame) keeps its place against the
    // part's first video frame.
    let parts_a = [&audio[1..n], &audio[n..2 * n - 1], &audio[2 * n - 1..]];
    let firsts: Vec<(f64, f64)> = video
        .chunks(60)
        .zip(parts_a)
        .map(|(v, a)| (v[0], a[0]))
        .collect();
    for (v, a) in &firsts[1..] {
        let (v0, a0) = firsts[0];
        assert!(
            ((a - v) - (a0 - v0)).abs() <= 0.003,
            "audio against video {:.1} ms, first part {:.1} ms",
            (a - v) * 1e3,
            (a0 - v0) * 1e3
        );
    }
}
