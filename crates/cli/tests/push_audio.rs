//! `mpegcoder push` with audio in the input, as a user runs it: `--audio auto` (the default)
//! drops audio the destination cannot carry with one warning, `--audio copy` makes that an
//! error before connecting, `--audio none` / `--no-audio` drop it without a word, and
//! `--audio-stream N` picks among several audio streams. What the server recorded is read
//! back by the ffmpeg CLI: the video frames bit-exact, the audio packets (or their absence)
//! as the mode says.
//!
//! Inputs made by the ffmpeg CLI: H.264 with Opus in Matroska (Opus cannot go over RTMP:
//! FLV has no Opus), H.264 with two AAC streams of different sample rates in MP4, and the
//! harness's H.264 + AAC clip. (Opus over RTSP is not tried here: GStreamer's RECORD server
//! only takes AAC.)
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use mpegcoder_protocol_tests::cli::*;
use mpegcoder_protocol_tests::*;

fn mpegcoder(args: &[&str]) -> (Output, Duration) {
    run_cli(env!("CARGO_BIN_EXE_mpegcoder"), args)
}

/// A 2 s 320x240 H.264 clip at 30 fps (a key frame every 15 frames) made by the ffmpeg CLI,
/// with an audio stream per `(frequency, sample rate)` of `tones` (a mono sine each), in that
/// order, and `codecs` (the audio codec and any other output options).
fn ffmpeg_clip(dir: &Path, name: &str, tones: &[(u32, u32)], codecs: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-nostdin", "-y"]).args([
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
    ]);
    for (frequency, rate) in tones {
        cmd.args(["-f", "lavfi", "-i"])
            .arg(format!("sine=frequency={frequency}:sample_rate={rate}"));
    }
    cmd.args(["-map", "0:v"]);
    for input in 1..=tones.len() {
        cmd.arg("-map").arg(format!("{input}:a"));
    }
    run(cmd
        .args(codecs)
        .args(["-t", "2", "-c:v", "libx264", "-preset", "veryfast"])
        .args(["-pix_fmt", "yuv420p", "-g", "15"])
        .arg(&path));
    path
}

/// H.264 (with B-frames: Matroska stores no decoding time for the first packets) + Opus
/// (48 kHz, mono) in Matroska.
fn opus_clip(dir: &Path) -> PathBuf {
    let codecs = ["-c:a", "libopus", "-bf", "2"];
    let mkv = ffmpeg_clip(dir, "opus.mkv", &[(440, 48_000)], &codecs);
    assert_eq!(probe_audio(&mkv, "a:0").codec, "opus");
    mkv
}

/// H.264 + two AAC streams in MP4: audio stream 0 at 48 kHz, audio stream 1 at 44.1 kHz.
fn two_aac_clip(dir: &Path) -> PathBuf {
    let tones = [(440, 48_000), (660, 44_100)];
    let mp4 = ffmpeg_clip(dir, "two-aac.mp4", &tones, &["-c:a", "aac"]);
    assert_eq!(probe_audio(&mp4, "a:0").sample_rate, 48_000);
    assert_eq!(probe_audio(&mp4, "a:1").sample_rate, 44_100);
    mp4
}

/// `mpegcoder push INPUT URL --codec copy --no-pace EXTRA…`; asserts it succeeded and returns
/// its stderr lines.
fn push_ok(input: &Path, url: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["push", input.to_str().unwrap(), url];
    args.extend(["--codec", "copy", "--no-pace"]);
    args.extend_from_slice(extra);
    let (out, _) = mpegcoder(&args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stderr_lines(&out)
}

/// The video of the recording is the input's, frame for frame.
fn assert_video_of(input: &Path, rec: &Path, what: &str) {
    assert_frames_match(&framemd5(input), &framemd5(rec), true, what);
}

/// The recording has no audio stream.
fn assert_no_audio(rec: &Path, what: &str) {
    assert!(!has_stream(rec, "a"), "{what}: the recording has audio");
}

#[test]
fn auto_drops_opus_for_rtmp_with_one_warning() {
    if !require("auto_drops_opus_for_rtmp_with_one_warning", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-audio-auto");
    let mkv = opus_clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    // `--audio auto` is the default: the same with and without the flag.
    for (key, extra) in [("default", &[][..]), ("auto", &["--audio", "auto"][..])] {
        let lines = push_ok(&mkv, &nginx.url(key), extra);
        let warnings: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("warning: "))
            .collect();
        assert_eq!(warnings.len(), 1, "{key}: {lines:?}");
        let warning = warnings[0].to_lowercase();
        assert!(
            warning.contains("opus") && warning.contains("rtmp"),
            "{key}: {lines:?}"
        );
        // Besides the warning only the summary, which counts no audio.
        assert_eq!(lines.len(), 2, "{key}: {lines:?}");
        let summary = lines.iter().find(|l| l.starts_with("pushed 60 frames"));
        let summary = summary.unwrap_or_else(|| panic!("{key}: no summary in {lines:?}"));
        assert!(!summary.contains("audio frames"), "{key}: {summary}");
        let flv = nginx.wait_recording(key, Duration::from_secs(10));
        assert_video_of(&mkv, &flv, key);
        assert_no_audio(&flv, key);
    }
}

#[test]
fn copy_of_opus_to_rtmp_fails_before_connecting() {
    if !require("copy_of_opus_to_rtmp_fails_before_connecting", FFMPEG_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-audio-copy-opus");
    let mkv = opus_clip(dir.path());
    // Nobody listens there: reaching the network would fail with "connection refused".
    let url = format!("rtmp://127.0.0.1:{}/live/x", free_tcp_port());
    let (out, took) = mpegcoder(&["push", mkv.to_str().unwrap(), &url, "--audio", "copy"]);
    let stderr = one_error_line(&out, &["opus", "RTMP", "audio stream 0"]);
    let lower = stderr.to_lowercase();
    assert!(
        !lower.contains("refused") && !lower.contains("connect"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn none_and_no_audio_push_the_video_only_without_a_warning() {
    if !require("none_and_no_audio_push_the_video_only", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-audio-none");
    let mkv = opus_clip(dir.path());
    let mp4 = two_aac_clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    // Opus (which `auto` would warn about) and AAC (which `auto` would carry).
    let inputs = [("opus", &mkv), ("aac", &mp4)];
    let flags = [
        ("none", &["--audio", "none"][..]),
        ("noaudio", &["--no-audio"][..]),
    ];
    for (codec, input) in inputs {
        for (flag, extra) in flags {
            let key = format!("{codec}-{flag}");
            let lines = push_ok(input, &nginx.url(&key), extra);
            assert_eq!(lines.len(), 1, "{key}: {lines:?}");
            assert!(lines[0].starts_with("pushed 60 frames"), "{key}: {lines:?}");
            assert!(!lines[0].contains("audio frames"), "{key}: {lines:?}");
            let flv = nginx.wait_recording(&key, Duration::from_secs(10));
            assert_video_of(input, &flv, &key);
            assert_no_audio(&flv, &key);
        }
    }
}

#[test]
fn audio_stream_picks_among_the_inputs_audio_streams() {
    if !require(
        "audio_stream_picks_among_the_inputs_audio_streams",
        NGINX_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("cli-audio-stream");
    let mp4 = two_aac_clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    // No flag: the first audio stream; `--audio-stream 1`: the second.
    for (key, extra, stream, rate) in [
        ("first", &[][..], 0, 48_000),
        ("second", &["--audio-stream", "1"][..], 1, 44_100),
    ] {
        let lines = push_ok(&mp4, &nginx.url(key), extra);
        assert_eq!(lines.len(), 1, "{key}: {lines:?}");
        let source = audio_framemd5_of(&mp4, stream);
        let sent = format!("and {} aac audio frames", source.len());
        assert!(lines[0].contains(&sent), "{key}: {lines:?}");
        let flv = nginx.wait_recording(key, Duration::from_secs(10));
        let probe = probe_audio(&flv, "a:0");
        assert_eq!(
            (probe.codec.as_str(), probe.sample_rate),
            ("aac", rate),
            "{key}: {probe:?}"
        );
        assert_audio_match(&source, &audio_framemd5(&flv), key);
        assert_video_of(&mp4, &flv, key);
    }
    // A stream the input does not have: one error line naming how many it has.
    let url = format!("rtmp://127.0.0.1:{}/live/x", free_tcp_port());
    let mp4 = mp4.to_str().unwrap();
    let (out, took) = mpegcoder(&["push", mp4, &url, "--audio-stream", "5"]);
    one_error_line(&out, &["audio stream 5", "2 audio streams"]);
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn copy_without_audio_in_the_input_is_one_error_line() {
    if !require(
        "copy_without_audio_in_the_input_is_one_error_line",
        FFMPEG_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("cli-audio-copy-none");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    let url = format!("rtmp://127.0.0.1:{}/live/x", free_tcp_port());
    let (out, took) = mpegcoder(&["push", clip.mp4.to_str().unwrap(), &url, "--audio", "copy"]);
    let stderr = one_error_line(&out, &["--audio copy", "no audio stream"]);
    assert!(!stderr.to_lowercase().contains("refused"), "{stderr}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn stats_json_of_an_av_push_counts_the_audio_frames() {
    if !require(
        "stats_json_of_an_av_push_counts_the_audio_frames",
        NGINX_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("cli-audio-stats");
    let clip = Clip::generate(
        dir.path(),
        ClipSpec::default().with_audio(AudioSpec::default()),
    );
    let nginx = NginxRtmp::start(dir.path());
    let stats = dir.path().join("stats.json");
    let lines = push_ok(
        &clip.mp4,
        &nginx.url("stats"),
        &["--stats-json", stats.to_str().unwrap()],
    );
    let packets = clip.audio_packets.len();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(&format!("and {packets} aac audio frames")),
        "{lines:?}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(json["audio_codec"], "aac", "{json}");
    assert_eq!(json["audio_frames_sent"], packets, "{json}");
    let bytes: usize = clip.audio_packets.iter().map(|p| p.data.len()).sum();
    assert_eq!(json["audio_bytes_sent"], bytes, "{json}");
    assert_eq!(json["frames_sent"], clip.packets.len(), "{json}");
    // And that is what arrived.
    let flv = nginx.wait_recording("stats", Duration::from_secs(10));
    assert_audio_match(&clip.audio_md5, &audio_framemd5(&flv), "stats push");
    assert_frames_match(&clip.framemd5, &framemd5(&flv), true, "stats push");
}
