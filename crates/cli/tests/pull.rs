//! `mpegcoder pull` as a user runs it, against live streams published by the ffmpeg CLI (an
//! independent publisher): the frame hashes equal the source's from the first key frame on,
//! `--out` holds a decodable copy of what arrived, and every failure is one `error:` line with
//! a non-zero exit within its timeout.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use mpegcoder_protocol_tests::cli::*;
use mpegcoder_protocol_tests::*;

/// When the reader joins the live clip (mid-GOP).
const JOIN_AFTER: Duration = Duration::from_millis(650);

fn mpegcoder(args: &[&str]) -> (Output, Duration) {
    run_cli(env!("CARGO_BIN_EXE_mpegcoder"), args)
}

fn live_clip(dir: &Path) -> Clip {
    Clip::generate(
        dir,
        ClipSpec {
            frames: 90,
            gop: 15,
            ..ClipSpec::default()
        },
    )
}

/// Asserts a failed run: one `error:` line containing every needle, without the password of
/// the URLs these tests use.
fn assert_one_error_line(out: &Output, needles: &[&str]) -> String {
    let stderr = one_error_line(out, needles);
    assert!(!stderr.contains("hunter2"), "credentials leaked: {stderr}");
    stderr
}

/// Reads `<index> <md5>` lines, checking the indices count from 0.
fn parse_framemd5(text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let (index, hash) = line.split_once(' ').unwrap();
            assert_eq!(index.parse::<usize>().unwrap(), i, "{line}");
            assert_eq!(hash.len(), 32, "{line}");
            hash.to_string()
        })
        .collect()
}

#[test]
fn pull_rtmp_framemd5_out_and_stats_match_the_source() {
    if !require("pull_rtmp_framemd5_out_and_stats", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-pull-rtmp");
    let clip = live_clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("cli");
    let publisher = FfmpegPublisher::start(&url, &clip);
    std::thread::sleep(JOIN_AFTER);
    let md5 = dir.path().join("pulled.md5");
    let raw = dir.path().join("pulled.h264");
    let stats = dir.path().join("stats.json");
    let (out, took) = mpegcoder(&[
        "pull",
        &url,
        "--framemd5",
        md5.to_str().unwrap(),
        "--out",
        raw.to_str().unwrap(),
        "--stats-json",
        stats.to_str().unwrap(),
        "--timeout",
        "5",
    ]);
    publisher.wait(Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}; nginx log: {}", nginx.log());
    // The stream ends when the publisher leaves (3 s clip, joined 0.65 s in).
    assert!(took < Duration::from_secs(6), "{took:?}");
    let hashes = parse_framemd5(&std::fs::read_to_string(&md5).unwrap());
    assert!(hashes.len() >= 15, "{} frames", hashes.len());
    assert_frames_match(&clip.framemd5, &hashes, false, "pull --framemd5");
    // --out decodes (ffmpeg CLI) to the same frames.
    assert_eq!(framemd5(&raw), hashes);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(json["frames"], hashes.len() as u64, "{json}");
    assert_eq!(json["decoded_frames"], hashes.len() as u64, "{json}");
    assert_eq!(
        (json["width"].clone(), json["height"].clone()),
        (320.into(), 240.into())
    );
    assert_eq!(json["codec"], "h264");
    assert_eq!(json["status"], "ended");
    assert!(
        (json["fps"].as_f64().unwrap() - 30.0).abs() < 1e-9,
        "{json}"
    );
    assert!(json["key_frames"].as_u64().unwrap() >= 1, "{json}");
    assert!(json["bytes"].as_u64().unwrap() > 10_000, "{json}");
    let expected = (hashes.len() - 1) as f64 / 30.0;
    assert!(
        (json["duration_s"].as_f64().unwrap() - expected).abs() < 0.05,
        "{json}"
    );
}

#[test]
fn pull_rtsp_frames_limit_to_stdout() {
    if !require("pull_rtsp_frames_limit_to_stdout", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-pull-rtsp");
    let clip = live_clip(dir.path());
    let server = GstRtspRecord::start_with(
        dir.path(),
        GstOptions {
            relay_mount: Some("/play".into()),
            ..GstOptions::default()
        },
    );
    let publisher = FfmpegPublisher::start(&server.url(None), &clip);
    std::thread::sleep(JOIN_AFTER);
    // Meanwhile a second reader stops after a second of stream.
    let stats = dir.path().join("duration.json");
    let by_duration = {
        let (url, stats) = (server.relay_url(), stats.clone());
        std::thread::spawn(move || {
            mpegcoder(&[
                "pull",
                &url,
                "--duration",
                "1",
                "--stats-json",
                stats.to_str().unwrap(),
            ])
        })
    };
    let (out, took) = mpegcoder(&[
        "pull",
        &server.relay_url(),
        "--frames",
        "20",
        "--framemd5",
        "-",
    ]);
    let (d_out, d_took) = by_duration.join().unwrap();
    publisher.wait(Duration::from_secs(10));
    assert!(
        d_out.status.success(),
        "{}",
        String::from_utf8_lossy(&d_out.stderr)
    );
    assert!(d_took < Duration::from_secs(4), "{d_took:?}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(json["status"], "stopped", "{json}");
    // One second at 30 fps, give or take the machine's load.
    let frames = json["frames"].as_u64().unwrap();
    assert!((15..=45).contains(&frames), "{json}");
    assert_eq!(json["decoded_frames"], serde_json::Value::Null);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{stderr}; server log: {}",
        server.log()
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    let hashes = parse_framemd5(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(hashes.len(), 20);
    // A contiguous run of the source from a key frame on (GOPs of 15).
    let start = clip
        .framemd5
        .iter()
        .position(|h| h == &hashes[0])
        .expect("first pulled frame is a source frame");
    assert_eq!(start % 15, 0, "did not start at a key frame");
    assert_eq!(&clip.framemd5[start..start + 20], &hashes[..]);
}

#[test]
fn pull_failures_are_one_line_within_the_timeout() {
    if !require("pull_failures", GST_TOOLS) || !require("pull_failures", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-pull-errors");

    // Not a pull URL: refused before any connection.
    let (out, took) = mpegcoder(&["pull", "http://u:hunter2@127.0.0.1/x"]);
    assert_one_error_line(&out, &["unsupported URL scheme", "http"]);
    assert!(took < Duration::from_secs(2), "{took:?}");

    // Nothing listens.
    for scheme in ["rtsp", "rtmp"] {
        let url = format!("{scheme}://u:hunter2@127.0.0.1:{}/live/x", free_tcp_port());
        let (out, took) = mpegcoder(&["pull", &url]);
        assert_one_error_line(&out, &["cannot connect", "127.0.0.1"]);
        assert!(took < Duration::from_secs(3), "{scheme}: {took:?}");
    }

    // RTSP: a path the server does not serve.
    let server = GstRtspRecord::start(dir.path());
    let url = format!("rtsp://127.0.0.1:{}/no/such/path", server.port);
    let (out, took) = mpegcoder(&["pull", &url]);
    assert_one_error_line(&out, &["404", "/no/such/path"]);
    assert!(took < Duration::from_secs(3), "{took:?}");

    // RTMP: nginx accepts `play` of a stream nobody publishes and sends nothing.
    let nginx = NginxRtmp::start(dir.path());
    let (out, took) = mpegcoder(&["pull", &nginx.url("nobody"), "--timeout", "1.5"]);
    assert_one_error_line(&out, &["no video received within 1.5s", "/live/nobody"]);
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_millis(4500),
        "{took:?}"
    );

    // Bad flag values.
    let (out, _) = mpegcoder(&["pull", &nginx.url("x"), "--timeout", "0"]);
    assert_one_error_line(&out, &["--timeout"]);
}
