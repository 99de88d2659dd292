//! `mpegcoder pull --audio-out FILE.aac`: the ADTS file decodes (ffprobe) to as many frames as
//! the summary counts, and holds the source's AAC packets, one for one (MD5s against the ones
//! `ffmpeg -f framemd5` computes from the clip), from where the reader joined on.
//!
//! - nginx-rtmp fed by the ffmpeg CLI (a known-good publisher): the frames run to the end.
//! - Both ends our own: `mpegcoder push` into GStreamer's RTSP server (RECORD, both tracks)
//!   while `mpegcoder pull` reads its PLAY relay over TCP: the relay starts when the reader
//!   joins, so the frames are a contiguous run of the source's, and `--out` holds the video
//!   frames next to them.
//! - Audio that ADTS cannot hold (MP3) ends the command with one error line.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use mpegcoder_protocol_tests::cli::*;
use mpegcoder_protocol_tests::*;

/// When the reader joins the live clip: before its second key frame.
const JOIN_AFTER: Duration = Duration::from_millis(400);

fn mpegcoder(args: &[&str]) -> (Output, Duration) {
    run_cli(env!("CARGO_BIN_EXE_mpegcoder"), args)
}

/// The harness's H.264 + AAC clip (48 kHz stereo), `frames` long at 30 fps, a key frame every
/// `gop` frames.
fn av_clip(dir: &Path, frames: u32, gop: u32) -> Clip {
    let spec = ClipSpec::default().with_frames(frames).with_gop(gop);
    Clip::generate(dir, spec.with_audio(AudioSpec::default()))
}

/// The `--stats-json` file of a run.
fn stats_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Checks the ADTS file `aac` against the `--stats-json` summary `json` of the pull that wrote
/// it: ffprobe decodes as many frames as it counts, with the clip's codec, rate and channels;
/// without their headers the frames are a contiguous run of at least `min` of the clip's
/// packets. Returns the source packet the run starts at.
fn assert_adts_matches(aac: &Path, json: &serde_json::Value, clip: &Clip, min: usize) -> usize {
    let frames = json["audio_frames"].as_u64().unwrap() as usize;
    let spec = clip.spec.audio.unwrap();
    assert_eq!(json["audio_codec"], "aac", "{json}");
    assert_eq!(json["audio_sample_rate"], spec.sample_rate, "{json}");
    assert_eq!(json["audio_channels"], spec.channels, "{json}");
    assert!(json["audio_bytes"].as_u64().unwrap() > 1000, "{json}");
    let probe = probe_audio(aac, "a:0");
    assert_eq!(
        probe,
        AudioProbe {
            codec: "aac".into(),
            sample_rate: spec.sample_rate,
            channels: spec.channels,
            frames,
        },
        "{json}"
    );
    let stored = adts_framemd5(aac);
    assert_eq!(stored.len(), frames);
    assert_contiguous_run(&clip.audio_md5, &stored, min, "--audio-out")
}

#[test]
fn pull_rtmp_audio_out_writes_the_source_aac_as_adts() {
    if !require(
        "pull_rtmp_audio_out_writes_the_source_aac_as_adts",
        NGINX_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("cli-pull-audio");
    let clip = av_clip(dir.path(), 60, 30);
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("aac");
    let publisher = FfmpegPublisher::start_av(&url, &clip);
    std::thread::sleep(JOIN_AFTER);
    let aac = dir.path().join("pulled.aac");
    let stats = dir.path().join("stats.json");
    let (out, _) = mpegcoder(&[
        "pull",
        &url,
        "--audio-out",
        aac.to_str().unwrap(),
        "--stats-json",
        stats.to_str().unwrap(),
        "--timeout",
        "5",
    ]);
    publisher.wait(Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}; nginx log: {}", nginx.log());
    let json = stats_json(&stats);
    let frames = json["audio_frames"].as_u64().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("and {frames} audio frames")),
        "{stdout}"
    );
    // Joined before the second key frame (1 s into the 2 s clip): at least the last 40 of
    // the source's 95 packets, and every one of them to the end.
    let start = assert_adts_matches(&aac, &json, &clip, 40);
    assert_eq!(
        start + frames as usize,
        clip.audio_md5.len(),
        "the run is not the source's tail"
    );
}

/// The fewest AAC frames the relay reader must write. It joins 1 s into the 5 s push and
/// stops after 2 s of playing (`--duration 2`, wall time from PLAY), less up to one GOP
/// (0.5 s) it may spend waiting for a key frame before audio counts: 1.5 s, 70 frames. 91 to
/// 96 arrived here.
const RELAY_MIN_AUDIO: usize = 70;

/// The same for video: 1.5 s at 30 fps (58 to 61 frames arrived here).
const RELAY_MIN_VIDEO: usize = 45;

#[test]
fn push_and_pull_audio_out_through_the_gstreamer_relay() {
    if !require(
        "push_and_pull_audio_out_through_the_gstreamer_relay",
        GST_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("cli-relay-audio");
    let clip = av_clip(dir.path(), 150, 15);
    let server = GstRtspRecord::start_with(dir.path(), GstOptions::av_relay("/play"));
    let mp4 = clip.mp4.to_str().unwrap();
    let push = [
        "push",
        mp4,
        &server.url(None),
        "--codec",
        "copy",
        "--transport",
        "tcp",
    ];
    let pusher = spawn_cli(env!("CARGO_BIN_EXE_mpegcoder"), &push);
    std::thread::sleep(Duration::from_secs(1));
    let aac = dir.path().join("relay.aac");
    let h264 = dir.path().join("relay.h264");
    let stats = dir.path().join("relay.json");
    let (out, _) = mpegcoder(&[
        "pull",
        &server.relay_url(),
        "--transport",
        "tcp",
        "--audio-out",
        aac.to_str().unwrap(),
        "--out",
        h264.to_str().unwrap(),
        "--duration",
        "2",
        "--stats-json",
        stats.to_str().unwrap(),
    ]);
    let pushed = pusher.wait_with_output().unwrap();
    let push_log = String::from_utf8_lossy(&pushed.stderr);
    assert!(pushed.status.success(), "push: {push_log}");
    // Every audio packet of the clip went out.
    let sent = format!("and {} aac audio frames", clip.audio_packets.len());
    assert!(push_log.contains(&sent), "push: {push_log}");
    assert!(
        out.status.success(),
        "pull: {}; server log: {}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    let json = stats_json(&stats);
    assert_eq!(json["status"], "stopped", "{json}");
    let start = assert_adts_matches(&aac, &json, &clip, RELAY_MIN_AUDIO);
    // The video next to it: the clip's frames (ffmpeg CLI decoding `--out`) from a key frame.
    let video = framemd5(&h264);
    assert_eq!(json["frames"], video.len(), "{json}");
    let first = assert_contiguous_run(&clip.framemd5, &video, RELAY_MIN_VIDEO, "--out");
    assert_eq!(
        first % clip.spec.gop as usize,
        0,
        "--out: not from a key frame"
    );
    eprintln!(
        "relay: {} audio frames from source packet {start} of {}, {} video frames from {first}; \
         {json}",
        json["audio_frames"],
        clip.audio_md5.len(),
        video.len()
    );
}

#[test]
fn pull_rtmp_audio_out_refuses_mp3_with_one_error_line() {
    if !require(
        "pull_rtmp_audio_out_refuses_mp3_with_one_error_line",
        NGINX_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("cli-pull-mp3");
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("mp3");
    let mut publisher = FfmpegPublisher::tone(&url, &["-c:a", "libmp3lame", "-ar", "44100"]);
    std::thread::sleep(JOIN_AFTER);
    let aac = dir.path().join("pulled.aac");
    let (out, _) = mpegcoder(&["pull", &url, "--audio-out", aac.to_str().unwrap()]);
    publisher.kill();
    let stderr = one_error_line(&out, &[]);
    assert_eq!(
        stderr.trim(),
        format!(
            "error: cannot record the audio of {url} as ADTS: the stream's audio is mp3, not AAC"
        )
    );
}
