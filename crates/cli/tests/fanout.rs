//! `mpegcoder push INPUT URL URL`: one timeline feeding GStreamer's RTSP server and
//! nginx-rtmp at once. What each server recorded is checked against the source (every frame
//! by its MD5): both copies bit-exact in copy mode; with libx264 every frame in both and the
//! two recordings identical (one encode feeds both). A destination killed midway leaves the
//! other one untouched: every frame, with the source's timestamps, and the push fails with
//! one error line naming the dead destination.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use mpegcoder_protocol_tests::cli::*;
use mpegcoder_protocol_tests::*;

const KEY: &str = "fan";

fn mpegcoder(args: &[&str]) -> (Output, Duration) {
    run_cli(env!("CARGO_BIN_EXE_mpegcoder"), args)
}

fn tools(test: &str) -> bool {
    require(test, GST_TOOLS) && require(test, NGINX_TOOLS)
}

fn json_file(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

/// The `destinations` entry of `url` in a `--stats-json` summary.
fn destination<'a>(json: &'a serde_json::Value, url: &str) -> &'a serde_json::Value {
    json["destinations"]
        .as_array()
        .unwrap_or_else(|| panic!("no destinations: {json}"))
        .iter()
        .find(|d| d["url"] == url)
        .unwrap_or_else(|| panic!("no destination {url}: {json}"))
}

/// Checks a destination that received the whole stream of `frames` frames and closed.
fn assert_complete(json: &serde_json::Value, url: &str, frames: u64) {
    let d = destination(json, url);
    assert_eq!(d["state"], "closed", "{url}: {d}");
    assert_eq!(d["frames_sent"], frames, "{url}: {d}");
    assert_eq!(d["audio_frames_sent"], 0, "{url}: {d}");
    assert_eq!(d["frames_dropped"], 0, "{url}: {d}");
    assert_eq!(d["reconnects"], 0, "{url}: {d}");
    assert_eq!(d["outage_s"], 0.0, "{url}: {d}");
    assert!(d["error"].is_null(), "{url}: {d}");
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The two servers, the push's arguments to both, and its stats file.
struct Setup {
    gst: GstRtspRecord,
    nginx: NginxRtmp,
    stats: PathBuf,
}

impl Setup {
    fn new(dir: &Path, gst: GstOptions) -> Setup {
        Setup {
            gst: GstRtspRecord::start_with(dir, gst),
            nginx: NginxRtmp::start(dir),
            stats: dir.join("stats.json"),
        }
    }

    fn urls(&self) -> (String, String) {
        (self.gst.url(None), self.nginx.url(KEY))
    }

    /// `push CLIP RTSP RTMP --stats-json STATS` and `extra`.
    fn args<'a>(
        &'a self,
        clip: &'a Clip,
        urls: &'a (String, String),
        extra: &[&'a str],
    ) -> Vec<&'a str> {
        let mut args = vec![
            "push",
            clip.mp4.to_str().unwrap(),
            urls.0.as_str(),
            urls.1.as_str(),
            "--stats-json",
            self.stats.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args
    }
}

#[test]
fn copy_to_gstreamer_and_nginx_at_once_arrives_bit_exact_at_both() {
    if !tools("copy_fanout") {
        return;
    }
    let dir = TempDir::new("fanout-copy");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    assert!(clip.has_bframes());
    let s = Setup::new(dir.path(), GstOptions::default());
    let urls = s.urls();
    let (out, _) = mpegcoder(&s.args(&clip, &urls, &["--codec", "copy", "--no-pace"]));
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    let rtsp = s
        .gst
        .wait_recording(Duration::from_millis(500), Duration::from_secs(15));
    let rtmp = s.nginx.wait_recording(KEY, Duration::from_secs(15));
    assert_frames_match(&clip.framemd5, &framemd5(&rtsp), true, "GStreamer");
    assert_frames_match(&clip.framemd5, &framemd5(&rtmp), true, "nginx");
    assert_eq!(check_timestamps(&rtmp).non_monotonic_dts, 0, "nginx DTS");

    let json = json_file(&s.stats);
    assert_eq!(json["frames_sent"], 60, "{json}");
    assert_eq!(json["reconnects"], 0, "{json}");
    assert_eq!(
        json["destinations"].as_array().map(Vec::len),
        Some(2),
        "{json}"
    );
    assert_complete(&json, &urls.0, 60);
    assert_complete(&json, &urls.1, 60);
    // Both destinations appear in the order given.
    assert_eq!(json["destinations"][0]["url"], urls.0.as_str());
    assert_eq!(json["destinations"][1]["url"], urls.1.as_str());
}

#[test]
fn libx264_to_gstreamer_and_nginx_at_once_sends_one_encode_to_both() {
    if !tools("libx264_fanout") {
        return;
    }
    let dir = TempDir::new("fanout-x264");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    let s = Setup::new(dir.path(), GstOptions::default());
    let urls = s.urls();
    let (out, _) = mpegcoder(&s.args(
        &clip,
        &urls,
        &["--codec", "libx264", "--no-pace", "--bitrate", "1M"],
    ));
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    let rtsp = s
        .gst
        .wait_recording(Duration::from_millis(500), Duration::from_secs(15));
    let rtmp = s.nginx.wait_recording(KEY, Duration::from_secs(15));
    let (a, b) = (framemd5(&rtsp), framemd5(&rtmp));
    assert_eq!(a.len(), 60, "GStreamer: frames");
    assert_eq!(b.len(), 60, "nginx: frames");
    // One encode: the same pictures, bit for bit, at both servers.
    assert_frames_match(&a, &b, true, "nginx against GStreamer");
    // And they are the source's pictures (libx264 at 1 Mb/s on a 320x240 clip).
    let (db, frames) = psnr(&rtmp, &clip.mp4);
    assert_eq!(frames, 60);
    assert!(db > 35.0, "PSNR {db:.2} dB");
    let json = json_file(&s.stats);
    assert_complete(&json, &urls.0, 60);
    assert_complete(&json, &urls.1, 60);
}

/// Which server a test kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    Gst,
    Nginx,
}

/// A paced copy push of a 4 s clip to both servers; once both took the publisher's session
/// and a second of stream, `victim` is killed (by its PID). The other server must record
/// every frame with the source's timestamps; the push fails with one error line, naming the
/// dead destination.
fn kill_one_midway(victim: Victim) {
    let name = format!("fanout_kill_{victim:?}");
    if !tools(&name) {
        return;
    }
    let dir = TempDir::new(&format!("fanout-kill-{victim:?}"));
    let clip = Clip::generate(dir.path(), ClipSpec::default().with_frames(120));
    // Matroska: the survivor's recording keeps the sender's timestamps (RTP times).
    let mut s = Setup::new(
        dir.path(),
        GstOptions {
            audio: true,
            ..GstOptions::default()
        },
    );
    let urls = s.urls();
    let args = s.args(&clip, &urls, &["--codec", "copy"]);
    let mut child = spawn_cli(env!("CARGO_BIN_EXE_mpegcoder"), &args);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.gst.sessions() == 0 || s.nginx.sessions(KEY) == 0 {
        assert!(
            Instant::now() < deadline,
            "no sessions at both servers: {} / {}",
            s.gst.log(),
            s.nginx.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "the push ended before the kill"
    );
    let (dead, alive) = match victim {
        Victim::Gst => {
            s.gst.kill();
            (&urls.0, &urls.1)
        }
        Victim::Nginx => {
            s.nginx.kill();
            (&urls.1, &urls.0)
        }
    };
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    // The rest of the 4 s clip, and the teardown.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let stderr = stderr_of(&out);
    assert!(!out.status.success(), "a destination died: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The survivor: every frame, the source's timestamps.
    let rec = match victim {
        Victim::Gst => s.nginx.wait_recording(KEY, Duration::from_secs(15)),
        Victim::Nginx => s
            .gst
            .wait_recording(Duration::from_millis(500), Duration::from_secs(15)),
    };
    let what = format!("{alive} after {dead} died");
    assert_frames_match(&clip.framemd5, &framemd5(&rec), true, &what);
    let times = packet_times(&rec, "v:0");
    assert_eq!(times.len(), clip.packets.len(), "{what}: packets");
    let (num, den) = clip.time_base;
    let tb = f64::from(num) / f64::from(den);
    let src0 = clip.packets[0].pts as f64 * tb;
    let rec0 = times[0].pts.unwrap();
    for (i, (t, p)) in times.iter().zip(&clip.packets).enumerate() {
        let want = p.pts as f64 * tb - src0;
        let got = t
            .pts
            .unwrap_or_else(|| panic!("{what}: packet {i} has no pts"))
            - rec0;
        // Both containers keep milliseconds.
        assert!(
            (got - want).abs() <= 0.0015,
            "{what}: packet {i} at {got:.4} s, the source's at {want:.4} s"
        );
    }
    assert_eq!(check_timestamps(&rec).non_monotonic_dts, 0, "{what}: DTS");

    let json = json_file(&s.stats);
    assert_complete(&json, alive, 120);
    let d = destination(&json, dead);
    assert_eq!(d["state"], "failed", "{d}");
    assert_eq!(d["reconnects"], 0, "{d}");
    let error = d["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {d}"));
    assert!(!error.is_empty());
    let sent = d["frames_sent"].as_u64().unwrap();
    assert!(sent > 0 && sent < 120, "{dead}: {d}");
    assert_eq!(json["frames_sent"], 120, "{json}");

    // One error line, for the dead destination alone (what arrived is checked first, so a
    // failure here is about the message only).
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(errors[0].contains(dead.as_str()), "names {dead}: {stderr}");
    assert!(
        !errors[0].contains(alive.as_str()),
        "names only {dead}: {stderr}"
    );
    assert_no_repetition(errors[0]);
}

#[test]
fn nginx_dying_midway_leaves_gstreamer_every_frame_on_time() {
    kill_one_midway(Victim::Nginx);
}

#[test]
fn gstreamer_dying_midway_leaves_nginx_every_frame_on_time() {
    kill_one_midway(Victim::Gst);
}
