//! `mpegcoder push rtsp://… | rtmp://… URL`: a live source relayed by the transport's own
//! puller, checked by what the destination recorded.
//!
//! - The ffmpeg CLI publishes a 4 s H.264 + AAC clip into GStreamer's RTSP server; the relay
//!   pulls its PLAY mount and publishes to nginx-rtmp, in copy mode (the recording is a
//!   contiguous run of the clip's frames and AAC packets, bit for bit, from a key frame to the
//!   end) and with libx264 (every recorded frame decodes, as many as the relay pulled).
//! - nginx-rtmp as the source: the publisher is killed and started again mid-relay; with
//!   `--reconnect` the relay waits for it, resumes at a key frame with the outage as a gap of
//!   monotonic decoding times, and ends with exit 130 on SIGINT.
//! - A source that cannot heal (404, wrong credentials) ends the relay at once with one error
//!   line, even with `--reconnect`.
//!
//! These tests run the command (they need its binary, which only this package's tests get).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use mpegcoder_protocol_tests::cli::*;
use mpegcoder_protocol_tests::*;

/// The clip: 4 s at 30 fps with B-frames, a key frame every 15 frames, 48 kHz stereo AAC.
fn av_clip(dir: &Path) -> Clip {
    let spec = ClipSpec::default().with_frames(120);
    let clip = Clip::generate(dir, spec.with_audio(AudioSpec::default()));
    assert!(clip.has_bframes());
    assert_eq!(clip.framemd5.len(), 120);
    assert_eq!(clip.audio_md5.len(), 189);
    clip
}

/// The fewest frames of the 4 s clip a relay joining ~1 s in must deliver: the last 2 s
/// (room for a join a second late on a loaded machine).
const MIN_FRAMES: usize = 60;
/// The same for the AAC frames (94 frames are 2 s).
const MIN_AUDIO: usize = 94;

fn mpegcoder(args: &[&str]) -> (Output, Duration) {
    run_cli(env!("CARGO_BIN_EXE_mpegcoder"), args)
}

fn stats_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Sends SIGINT to the relay by its PID, as Ctrl-C does, and waits for it (at most 10 s).
fn interrupt(child: Child) -> (Output, Duration) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
    (out, took)
}

/// One video packet of a recording as ffprobe reads it.
#[derive(Debug, Clone, Copy)]
struct Packet {
    dts: f64,
    key: bool,
}

fn video_packets(path: &Path) -> Vec<Packet> {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["packet=dts_time,flags", "-of", "csv=p=0"])
        .arg(path));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut cols = l.split(',');
            let dts = cols.next()?.trim().parse().ok()?;
            let key = cols.next().is_some_and(|f| f.starts_with('K'));
            Some(Packet { dts, key })
        })
        .collect()
}

/// ffmpeg decodes every frame of `path` without a word on stderr; returns how many.
fn decodes_cleanly(path: &Path) -> usize {
    let out = run(Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-f", "null", "-"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.trim().is_empty(),
        "decoding {}: {stderr}",
        path.display()
    );
    framemd5(path).len()
}

/// The ffmpeg CLI publishing the clip into GStreamer's RTSP server, which serves it for
/// PLAY at `/relay`; the relay's source URL once the mount can be described.
fn gst_source(dir: &Path, clip: &Clip) -> (GstRtspRecord, FfmpegPublisher) {
    let server = GstRtspRecord::start_with(dir, GstOptions::av_relay("/relay"));
    let publisher = FfmpegPublisher::start_av(&server.url(None), clip);
    // The PLAY mount describes both tracks once AAC arrived at the RECORD mount.
    std::thread::sleep(Duration::from_millis(800));
    (server, publisher)
}

/// What a relay from GStreamer into nginx left behind.
struct Relayed {
    /// nginx's recording of the relay.
    flv: std::path::PathBuf,
    /// GStreamer's recording of what the ffmpeg CLI published: what the source had (ffmpeg
    /// loses its last AAC frames over RTSP).
    source: std::path::PathBuf,
    /// The relay's `--stats-json`.
    json: serde_json::Value,
}

/// Relays GStreamer's PLAY mount into nginx with `codec`, stopped by SIGINT once the clip
/// is over.
fn relay_gst_to_nginx(dir: &Path, clip: &Clip, codec: &str) -> Relayed {
    let (server, publisher) = gst_source(dir, clip);
    let nginx = NginxRtmp::start(dir);
    let stats = dir.join("relay.json");
    let (src, dst) = (server.relay_url(), nginx.url("k"));
    let relay = spawn_cli(
        env!("CARGO_BIN_EXE_mpegcoder"),
        &[
            "push",
            &src,
            &dst,
            "--codec",
            codec,
            "--stats-json",
            stats.to_str().unwrap(),
        ],
    );
    publisher.wait(Duration::from_secs(20));
    // GStreamer's relay never ends a PLAY session: stop once the last frames got through
    // its 200 ms jitterbuffer (the relay's own idle limit is 10 s).
    std::thread::sleep(Duration::from_millis(1500));
    let (out, _) = interrupt(relay);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{stderr}; server log: {}",
        server.log()
    );
    eprintln!("relay: {}", stderr.trim());
    Relayed {
        flv: nginx.wait_recording("k", Duration::from_secs(10)),
        source: server.wait_recording(Duration::ZERO, Duration::from_secs(10)),
        json: stats_json(&stats),
    }
}

/// The AAC packets nginx recorded are a contiguous run of the clip's, bit for bit, at least
/// [`MIN_AUDIO`] long, ending where GStreamer's recording of the source ends; returns the
/// source packet the run starts at.
fn assert_audio_relayed(clip: &Clip, relayed: &Relayed) -> usize {
    let audio = audio_framemd5(&relayed.flv);
    let a = assert_contiguous_run(&clip.audio_md5, &audio, MIN_AUDIO, "relayed audio");
    let had = audio_framemd5(&relayed.source);
    let s = assert_contiguous_run(&clip.audio_md5, &had, MIN_AUDIO, "source audio");
    assert_eq!(
        a + audio.len(),
        s + had.len(),
        "the relayed audio (from packet {a}) stops before the source's (from {s})"
    );
    let json = &relayed.json;
    assert_eq!(json["audio_frames_sent"], audio.len(), "{json}");
    assert_eq!(json["audio_codec"], "aac", "{json}");
    a
}

#[test]
fn copy_relay_from_gstreamer_to_nginx_is_bit_exact() {
    let mut tools = GST_TOOLS.to_vec();
    tools.extend_from_slice(NGINX_TOOLS);
    if !require("copy_relay_from_gstreamer_to_nginx_is_bit_exact", &tools) {
        return;
    }
    let dir = TempDir::new("relay-copy");
    let clip = av_clip(dir.path());
    let relayed = relay_gst_to_nginx(dir.path(), &clip, "copy");
    let (flv, json) = (&relayed.flv, &relayed.json);
    // The video: the clip's frames, decoded by the ffmpeg CLI, from a key frame to the end.
    let decoded = framemd5(flv);
    let first = assert_contiguous_run(&clip.framemd5, &decoded, MIN_FRAMES, "relayed video");
    assert_eq!(first % clip.spec.gop as usize, 0, "not from a key frame");
    assert_eq!(
        first + decoded.len(),
        clip.framemd5.len(),
        "the run stops early"
    );
    let a = assert_audio_relayed(&clip, &relayed);
    let ts = check_timestamps(flv);
    assert_eq!((ts.non_monotonic_dts, ts.pts_below_dts), (0, 0), "{ts:?}");
    // Nothing pulled was lost on the way, and the summary says where it came from.
    assert_eq!(json["frames_sent"], decoded.len(), "{json}");
    assert_eq!(json["interrupted"], true, "{json}");
    let source = &json["source"];
    assert_eq!(source["url"], json["input"], "{json}");
    assert_eq!(source["frames"], decoded.len(), "{json}");
    assert_eq!(source["reconnects"], 0, "{json}");
    eprintln!("copy relay: video from source frame {first}, audio from packet {a}; {source}");
}

#[test]
fn libx264_relay_from_gstreamer_to_nginx_decodes_every_frame() {
    let mut tools = GST_TOOLS.to_vec();
    tools.extend_from_slice(NGINX_TOOLS);
    if !require(
        "libx264_relay_from_gstreamer_to_nginx_decodes_every_frame",
        &tools,
    ) {
        return;
    }
    let dir = TempDir::new("relay-x264");
    let clip = av_clip(dir.path());
    let relayed = relay_gst_to_nginx(dir.path(), &clip, "libx264");
    let (flv, json) = (&relayed.flv, &relayed.json);
    let decoded = decodes_cleanly(flv);
    // Every access unit pulled became one frame, encoded and recorded: the decoder's and
    // libx264's delayed frames are flushed at the stop. The relay joins about 1 s into the
    // 4 s clip at a key frame, so it pulls between the last 2 s and all of it.
    let pulled = json["source"]["frames"].as_u64().unwrap() as usize;
    assert_eq!(decoded, pulled, "{json}");
    assert_eq!(json["frames_sent"], decoded, "{json}");
    assert_eq!(json["frames_encoded"], decoded, "{json}");
    assert!(
        (MIN_FRAMES..=clip.framemd5.len()).contains(&decoded),
        "{decoded} frames: {json}"
    );
    let ts = check_timestamps(flv);
    assert_eq!((ts.non_monotonic_dts, ts.pts_below_dts), (0, 0), "{ts:?}");
    let a = assert_audio_relayed(&clip, &relayed);
    assert_eq!(
        (json["width"].as_u64(), json["height"].as_u64()),
        (Some(320), Some(240))
    );
    eprintln!("libx264 relay: {decoded} frames, audio from packet {a}");
}

/// What a relay of nginx's `src` into its `out` recorded across a restart of the source.
struct Restarted {
    flv: std::path::PathBuf,
    json: serde_json::Value,
    packets: Vec<Packet>,
    /// The first packet after the outage, and the step of decoding time before it.
    gap_at: usize,
    gap_s: f64,
    /// From the kill of the first publisher to the start of the second.
    outage: Duration,
}

/// The ffmpeg CLI publishes the clip into nginx's `src`; the relay (`--reconnect`) pulls it
/// into `out`. 1.8 s in, the publisher is killed (by its PID); a second one publishes the
/// clip again a second later. SIGINT once it is over: exit 130. Checks what every codec
/// must show: the source's reconnect in the summary, increasing decoding times with the
/// outage as the largest step, a key frame first and right after the outage.
fn relay_through_a_restart(dir: &Path, clip: &Clip, codec: &str) -> Restarted {
    let nginx = NginxRtmp::start(dir);
    let (src, dst) = (nginx.url("src"), nginx.url("out"));
    let stats = dir.join("relay.json");
    let mut first = FfmpegPublisher::start_av(&src, clip);
    std::thread::sleep(Duration::from_millis(700));
    let relay = spawn_cli(
        env!("CARGO_BIN_EXE_mpegcoder"),
        &[
            "push",
            &src,
            &dst,
            "--codec",
            codec,
            "--reconnect",
            "--stats-json",
            stats.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_millis(1800));
    first.kill();
    let lost_at = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let second = FfmpegPublisher::start_av(&src, clip);
    let outage = lost_at.elapsed();
    second.wait(Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let (out, took) = interrupt(relay);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(took < Duration::from_secs(2), "stopping took {took:?}");
    let json = stats_json(&stats);
    assert_eq!(json["interrupted"], true, "{json}");
    let source = &json["source"];
    assert_eq!(source["reconnects"], 1, "{json}");
    // From the last unit before the kill to the first after the restart, plus the wait
    // from the second publisher's end to the SIGINT.
    let outage_s = source["outage_s"].as_f64().unwrap();
    assert!(outage_s > 1.0 && outage_s < 8.0, "{json}");

    let flv = nginx.wait_recording("out", Duration::from_secs(10));
    let packets = video_packets(&flv);
    let ts = check_timestamps(&flv);
    assert_eq!((ts.non_monotonic_dts, ts.pts_below_dts), (0, 0), "{ts:?}");
    assert_eq!(json["frames_sent"], packets.len(), "{json}");
    let (gap_at, gap_s) = packets
        .windows(2)
        .enumerate()
        .map(|(i, w)| (i + 1, w[1].dts - w[0].dts))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    // The gap is the wall-clock outage: at least the second the source was away, and no
    // more than the time the second publisher took to send its first key frame on top.
    assert!(
        gap_s > outage.as_secs_f64() && gap_s < outage.as_secs_f64() + 3.0,
        "gap {gap_s:.3} s at packet {gap_at}, outage {outage:?}"
    );
    assert!(
        packets[0].key,
        "the recording does not start at a key frame"
    );
    assert!(
        packets[gap_at].key,
        "resumed at packet {gap_at}, not a key frame"
    );
    // The audio went on, on the same timeline.
    assert!(json["audio_frames_sent"].as_u64().unwrap() > 150, "{json}");
    let audio = packet_times(&flv, "a:0");
    assert!(
        audio.windows(2).all(|w| w[1].pts > w[0].pts),
        "audio goes back"
    );
    eprintln!(
        "{codec}: {} frames, gap {gap_s:.3} s at packet {gap_at} (outage {outage:?}); \
         stopped in {took:?}; {source}",
        packets.len()
    );
    Restarted {
        flv,
        json,
        packets,
        gap_at,
        gap_s,
        outage,
    }
}

#[test]
fn reconnect_resumes_the_copy_relay_at_a_key_frame_after_the_source_restarts() {
    if !require(
        "reconnect_resumes_the_copy_relay_at_a_key_frame_after_the_source_restarts",
        NGINX_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("relay-reconnect");
    let clip = av_clip(dir.path());
    let r = relay_through_a_restart(dir.path(), &clip, "copy");
    // Two runs of the clip's frames: the second from the clip's first key frame (the
    // second publisher's first) to the end.
    let decoded = framemd5(&r.flv);
    assert_eq!(decoded.len(), r.packets.len());
    let (before, after) = decoded.split_at(r.gap_at);
    // The first publisher was killed mid-GOP: the B-frames of the last frame it sent never
    // came, so the last two shown are not contiguous with the rest (they are still the
    // clip's).
    let cut = before.len().saturating_sub(2);
    let a = assert_contiguous_run(&clip.framemd5, &before[..cut], 15, "before the outage");
    assert!(
        before[cut..].iter().all(|f| clip.framemd5.contains(f)),
        "frames before the outage that are not the clip's"
    );
    let b = assert_contiguous_run(&clip.framemd5, after, MIN_FRAMES, "after the outage");
    assert_eq!((a % 15, b), (0, 0), "runs from {a} and {b}");
    assert_eq!(
        after.len(),
        clip.framemd5.len(),
        "the second run stops early"
    );
    eprintln!("copy: {:.3} s gap for {:?} away", r.gap_s, r.outage);
}

#[test]
fn reconnect_resumes_the_libx264_relay_with_an_idr_after_the_source_restarts() {
    if !require(
        "reconnect_resumes_the_libx264_relay_with_an_idr_after_the_source_restarts",
        NGINX_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("relay-reconnect-x264");
    let clip = av_clip(dir.path());
    let r = relay_through_a_restart(dir.path(), &clip, "libx264");
    // Every frame pulled from both sessions was encoded (the encoder is flushed when the
    // source is lost, and opened again when it is back) and decodes.
    let decoded = decodes_cleanly(&r.flv);
    assert_eq!(decoded, r.packets.len());
    assert_eq!(r.json["source"]["frames"], decoded, "{}", r.json);
    assert_eq!(r.json["frames_encoded"], decoded, "{}", r.json);
    // The second session is the whole clip.
    assert_eq!(decoded - r.gap_at, clip.framemd5.len(), "{}", r.json);
}

#[test]
fn a_source_that_ends_ends_the_relay() {
    if !require("a_source_that_ends_ends_the_relay", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("relay-end");
    let clip = av_clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let (src, dst) = (nginx.url("src"), nginx.url("out"));
    let stats = dir.path().join("relay.json");
    let publisher = FfmpegPublisher::start_av(&src, &clip);
    std::thread::sleep(Duration::from_millis(700));
    let (out, took) = mpegcoder(&[
        "push",
        &src,
        &dst,
        "--codec",
        "copy",
        "--stats-json",
        stats.to_str().unwrap(),
    ]);
    publisher.wait(Duration::from_secs(5));
    // nginx tells a player when its publisher leaves (NetStream.Play.UnpublishNotify): the
    // relay ends with the clip, cleanly.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(took < Duration::from_secs(6), "took {took:?}");
    let json = stats_json(&stats);
    assert_eq!(json["interrupted"], false, "{json}");
    let flv = nginx.wait_recording("out", Duration::from_secs(10));
    let decoded = framemd5(&flv);
    let first = assert_contiguous_run(&clip.framemd5, &decoded, MIN_FRAMES, "relayed video");
    assert_eq!(first % 15, 0, "not from a key frame");
    assert_eq!(
        first + decoded.len(),
        clip.framemd5.len(),
        "the run stops early"
    );
    assert_eq!(json["frames_sent"], decoded.len(), "{json}");
}

#[test]
fn a_source_that_cannot_heal_ends_the_relay_at_once() {
    if !require(
        "a_source_that_cannot_heal_ends_the_relay_at_once",
        GST_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("relay-final");
    let server = GstRtspRecord::start_with(
        dir.path(),
        GstOptions {
            auth: Some(("user".into(), "right".into(), "digest")),
            relay_mount: Some("/relay".into()),
            ..GstOptions::default()
        },
    );
    // Nothing listens at the destination: the relay never gets that far.
    let dst = "rtmp://127.0.0.1:9/live/x";
    let cases = [
        (
            format!("rtsp://user:secret@127.0.0.1:{}/relay", server.port),
            "401",
        ),
        (
            format!("rtsp://user:right@127.0.0.1:{}/nosuch", server.port),
            "404",
        ),
    ];
    for (src, status) in &cases {
        let (out, took) = mpegcoder(&["push", src, dst, "--codec", "copy", "--reconnect"]);
        let line = one_error_line(&out, &[status, "live source", "/127.0.0.1:"]);
        assert!(
            !line.contains("secret") && !line.contains("right"),
            "{line}"
        );
        assert!(took < Duration::from_secs(5), "{status}: took {took:?}");
        eprintln!("{status} in {took:?}: {}", line.trim());
    }
}
