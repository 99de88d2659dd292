//! `mpegcoder push` as a user runs it: against real servers, with bad inputs, a server that
//! goes away mid-stream, and Ctrl-C. Every failure must be one `error:` line and a non-zero
//! exit within the network timeouts.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mpegcoder_protocol_tests::cli::*;
use mpegcoder_protocol_tests::*;

fn mpegcoder(args: &[&str]) -> (Output, Duration) {
    run_cli(env!("CARGO_BIN_EXE_mpegcoder"), args)
}

/// Asserts a failed run: one `error:` line containing every `needle`, never containing the
/// password of the URLs these tests use.
fn assert_one_error_line(out: &Output, needles: &[&str]) -> String {
    let stderr = one_error_line(out, needles);
    assert!(!stderr.contains("secret"), "credentials leaked: {stderr}");
    stderr
}

fn clip(dir: &Path) -> Clip {
    Clip::generate(dir, ClipSpec::default())
}

#[test]
fn push_copy_to_nginx_with_stats_json() {
    if !require("push_copy_to_nginx_with_stats_json", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-push");
    let clip = clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let stats = dir.path().join("stats.json");
    let (out, _) = mpegcoder(&[
        "push",
        clip.mp4.to_str().unwrap(),
        &nginx.url("cli"),
        "--codec",
        "copy",
        "--no-pace",
        "--stats-json",
        stats.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // A normal run prints its summary and nothing else (no log lines below warnings).
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("pushed 60 frames"), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(json["frames_sent"], 60);
    assert_eq!(json["codec"], "copy");
    assert_eq!(json["width"], 320);
    // What the session reported is part of the summary: bytes on the wire, and the receiver
    // report fields (nginx-rtmp sends none: zero reports, no figures).
    assert!(json["bytes_written"].as_u64().unwrap() > json["bytes_sent"].as_u64().unwrap());
    assert_eq!(json["receiver_reports"], 0);
    for key in ["loss_fraction", "jitter_ms", "rtt_ms", "server_status"] {
        assert!(json.get(key).is_some(), "{key} missing: {json}");
    }
    let flv = nginx.wait_recording("cli", Duration::from_secs(10));
    assert_frames_match(&clip.framemd5, &framemd5(&flv), true, "cli copy");
}

#[test]
fn verbose_push_logs_the_rtsp_exchange_without_credentials() {
    if !require("verbose_push_logs_the_rtsp_exchange", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-push-verbose");
    let clip = clip(dir.path());
    let server = GstRtspRecord::start_with(
        dir.path(),
        GstOptions {
            auth: Some(("user".into(), "secret".into(), "digest")),
            ..GstOptions::default()
        },
    );
    let url = server.url(Some(("user", "secret")));
    assert!(url.contains("user:secret@127.0.0.1:"), "{url}");
    let mp4 = clip.mp4.to_str().unwrap();
    let (out, _) = mpegcoder(&["-vv", "push", mp4, &url, "--codec", "copy", "--no-pace"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("secret"), "credentials leaked: {stderr}");
    let lines = stderr_lines(&out);
    for method in ["OPTIONS", "ANNOUNCE", "SETUP", "RECORD", "TEARDOWN"] {
        let request = lines
            .iter()
            .find(|l| l.contains("RTSP request") && l.contains(&format!("method={method}")));
        assert!(request.is_some(), "no {method} request logged: {stderr}");
        let reply = lines.iter().find(|l| {
            l.contains("RTSP reply")
                && l.contains(&format!("method={method}"))
                && l.contains("status=200")
        });
        assert!(reply.is_some(), "no 200 reply to {method} logged: {stderr}");
    }
    // The request lines name the URL, without its credentials.
    let target = format!("127.0.0.1:{}/record", server.port);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("RTSP request") && l.contains(&target)),
        "{stderr}"
    );
    assert!(lines.iter().any(|l| l.contains("publishing")), "{stderr}");
    assert!(lines.iter().all(|l| !l.contains("panicked")), "{stderr}");
    let rec = server.wait_recording(Duration::from_millis(500), Duration::from_secs(10));
    assert_eq!(framemd5(&rec), clip.framemd5, "what arrived");

    // -v alone shows the same exchange; RUST_LOG, when set, wins over the flags.
    let quiet_server = GstRtspRecord::start(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_mpegcoder"))
        .args(["push", mp4, &quiet_server.url(None), "--codec", "copy"])
        .args(["--no-pace", "-v"])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "RUST_LOG=error still logged: {lines:?}");
    assert!(lines[0].starts_with("pushed 60 frames"), "{lines:?}");
}

#[test]
fn verbose_push_logs_rtmp_status_without_credentials() {
    if !require("verbose_push_logs_rtmp_status", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-push-verbose-rtmp");
    let clip = clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let url = format!(
        "rtmp://user:secret@127.0.0.1:{}/live/vv?token=secret-token&x=1",
        nginx.port
    );
    let mp4 = clip.mp4.to_str().unwrap();
    let (out, _) = mpegcoder(&["push", "-v", mp4, &url, "--codec", "copy", "--no-pace"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("secret"), "credentials leaked: {stderr}");
    let lines = stderr_lines(&out);
    for needle in [
        "RTMP connect accepted",
        "RTMP publish accepted",
        "NetStream.Publish.Start",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(needle)),
            "{needle} not logged: {stderr}"
        );
    }
    assert!(lines.iter().any(|l| l.contains("token=***")), "{stderr}");
    // -v is debug, not trace.
    assert!(lines.iter().all(|l| !l.contains(" trace ")), "{stderr}");
    let flv = nginx.wait_recording("vv", Duration::from_secs(10));
    assert_frames_match(&clip.framemd5, &framemd5(&flv), true, "verbose rtmp push");
}

#[test]
fn bad_inputs_give_one_error_line() {
    if !require("bad_inputs_give_one_error_line", FFMPEG_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-push-bad");
    let clip = clip(dir.path());
    let mp4 = clip.mp4.to_str().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "this is not a video\n").unwrap();
    let truncated = dir.path().join("truncated.mp4");
    let bytes = std::fs::read(&clip.mp4).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let refused = format!("rtsp://127.0.0.1:{}/x", free_tcp_port());
    let refused_rtmp = format!("rtmp://127.0.0.1:{}/live/x", free_tcp_port());

    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            vec!["/nonexistent/in.mp4".into(), refused.clone()],
            vec!["/nonexistent/in.mp4"],
        ),
        (
            vec![text.to_str().unwrap().into(), refused.clone()],
            vec!["notes.txt"],
        ),
        (
            vec![
                mp4.into(),
                "http://user:secret@127.0.0.1/x".into(),
                "--codec".into(),
                "copy".into(),
            ],
            vec!["unsupported", "http://127.0.0.1/x"],
        ),
        (vec![mp4.into(), refused.clone()], vec!["refused"]),
        (
            vec![mp4.into(), refused_rtmp, "--codec".into(), "copy".into()],
            vec!["refused"],
        ),
        (
            vec![
                mp4.into(),
                refused.clone(),
                "--codec".into(),
                "copy".into(),
                "--bitrate".into(),
                "1M".into(),
            ],
            vec!["copy"],
        ),
        (
            vec![mp4.into(), refused.clone(), "--loop".into(), "0".into()],
            vec!["loop"],
        ),
    ];
    for (args, needles) in cases {
        let mut argv = vec!["push".to_string()];
        argv.extend(args);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let (out, took) = mpegcoder(&argv);
        assert_one_error_line(&out, &needles);
        assert!(took < Duration::from_secs(10), "{argv:?} took {took:?}");
    }
    // A truncated file either fails cleanly or pushes what it has: never a panic.
    let (out, _) = mpegcoder(&["push", truncated.to_str().unwrap(), &refused]);
    assert_one_error_line(&out, &[]);
}

#[test]
fn refusing_rtsp_server_errors_name_the_reply() {
    if !require("refusing_rtsp_server", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-push-refuse");
    let clip = clip(dir.path());
    let server = GstRtspRecord::start_with(
        dir.path(),
        GstOptions {
            auth: Some(("alice".into(), "s3cret".into(), "digest")),
            ..GstOptions::default()
        },
    );
    let mp4 = clip.mp4.to_str().unwrap();
    let (out, _) = mpegcoder(&["push", mp4, &server.url(None), "--codec", "copy"]);
    assert_one_error_line(&out, &["401"]);
    let wrong = server.url(Some(("alice", "secret-but-wrong")));
    let (out, _) = mpegcoder(&["push", mp4, &wrong, "--codec", "copy"]);
    assert_one_error_line(&out, &["401"]);
    let missing = format!("rtsp://alice:s3cret@127.0.0.1:{}/nothing-here", server.port);
    let (out, _) = mpegcoder(&["push", mp4, &missing, "--codec", "copy"]);
    assert_one_error_line(&out, &["404"]);
}

#[test]
fn server_going_away_mid_stream_ends_the_push_with_an_error() {
    if !require("server_going_away_mid_stream", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-push-gone");
    let clip = clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("gone");
    // The server stops one second into a 2 s paced push.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        drop(nginx);
    });
    let (out, took) = mpegcoder(&["push", clip.mp4.to_str().unwrap(), &url, "--loop", "3"]);
    killer.join().unwrap();
    assert_one_error_line(&out, &[]);
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

#[test]
fn ctrl_c_flushes_and_tears_down_cleanly() {
    if !require("ctrl_c_flushes_and_tears_down_cleanly", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-push-sigint");
    let clip = clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let stats = dir.path().join("stats.json");
    let (mp4, url, stats_path) = (
        clip.mp4.to_str().unwrap(),
        nginx.url("int"),
        stats.to_str().unwrap(),
    );
    let args = [
        "push",
        mp4,
        &url,
        "--loop",
        "-1",
        "--stats-json",
        stats_path,
    ];
    let child = spawn_cli(env!("CARGO_BIN_EXE_mpegcoder"), &args);
    std::thread::sleep(Duration::from_millis(1500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(json["interrupted"], true);
    let sent = json["frames_sent"].as_u64().unwrap();
    // About 1.5 s of a 30 fps stream, plus the flushed encoder tail.
    assert!(sent >= 30, "only {sent} frames before Ctrl-C");
    // The server saw a clean end: it closed the recording, and every sent frame is in it.
    let flv = nginx.wait_recording("int", Duration::from_secs(10));
    assert_eq!(check_timestamps(&flv).packets as u64, sent);
    let decoded = framemd5(&flv);
    assert_eq!(decoded.len() as u64, sent);
}
