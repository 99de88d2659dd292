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

#[test]
fn invalid_x264_names_fail_before_connecting() {
    if !require("invalid_x264_names_fail_before_connecting", FFMPEG_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-push-x264-names");
    let clip = clip(dir.path());
    // A listener of our own: it must see no connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!(
        "rtsp://127.0.0.1:{}/x",
        listener.local_addr().unwrap().port()
    );
    let mp4 = clip.mp4.to_str().unwrap();
    for (flag, value, needles) in [
        ("--preset", "bogus", vec!["ultrafast", "placebo"]),
        ("--tune", "speed", vec!["film", "zerolatency"]),
        ("--tune", "film,grain", vec!["at most one"]),
        (
            "--profile",
            "high10",
            vec!["baseline, main, high", "8-bit 4:2:0"],
        ),
        ("--profile", "extended", vec!["baseline, main, high"]),
    ] {
        let (out, took) = mpegcoder(&["push", mp4, &url, flag, value]);
        // A usage error like any bad value: exit 2, the error line (and clap's hint to
        // --help) naming the option, the value and what is accepted.
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let errors: Vec<String> = stderr_lines(&out)
            .into_iter()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        let mut all = vec![flag, value];
        all.extend(needles);
        for n in all {
            assert!(errors[0].contains(n), "{n:?} missing in: {stderr}");
        }
        // libx264's own "x264 [error]" line never shows: it is not even opened.
        assert!(!stderr.contains("x264 ["), "{stderr}");
        assert!(!stderr.contains("Invalid argument"), "{stderr}");
        assert!(
            took < Duration::from_secs(5),
            "{flag} {value} took {took:?}"
        );
    }
    assert!(
        listener.accept().is_err(),
        "a push with a bad libx264 name connected"
    );
}

#[test]
fn truncated_input_sends_the_complete_frames_and_ends_cleanly() {
    if !require(
        "truncated_input_sends_the_complete_frames_and_ends_cleanly",
        NGINX_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("cli-push-truncated");
    // No B-frames: the first N packets decode to the first N frames.
    let spec = ClipSpec {
        bframes: 0,
        ..ClipSpec::default().with_frames(90)
    };
    let source = Clip::generate(dir.path(), spec);
    // moov first, as a recording made for streaming has it: the cut leaves the index whole.
    let fast = dir.path().join("faststart.mp4");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(&source.mp4)
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&fast));
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pos", "-of", "csv=p=0"])
        .arg(&fast));
    let positions: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(positions.len(), 90);
    let bytes = std::fs::read(&fast).unwrap();
    let nginx = NginxRtmp::start(dir.path());
    let k = 57;
    // Cut inside frame 57's data, and exactly where it begins; copy and libx264.
    for (name, cut, codec) in [
        ("mid", positions[k] + 100, "copy"),
        ("edge", positions[k], "copy"),
        ("mid264", positions[k] + 100, "libx264"),
    ] {
        let cut_file = dir.path().join(format!("trunc-{name}.mp4"));
        std::fs::write(&cut_file, &bytes[..cut]).unwrap();
        let stats = dir.path().join(format!("{name}.json"));
        let (out, took) = mpegcoder(&[
            "push",
            cut_file.to_str().unwrap(),
            &nginx.url(name),
            "--codec",
            codec,
            "--no-pace",
            "--stats-json",
            stats.to_str().unwrap(),
        ]);
        let line = assert_one_error_line(
            &out,
            &[
                cut_file.to_str().unwrap(),
                "input is truncated or corrupt at frame 57",
                "the 57 frames before it were sent",
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{line}");
        assert!(took < Duration::from_secs(10), "{name} took {took:?}");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
        assert_eq!(json["frames_sent"], 57, "{name}: {json}");
        // nginx closed the recording: the publisher unpublished as at a normal end.
        let flv = nginx.wait_recording(name, Duration::from_secs(10));
        let arrived = framemd5(&flv);
        if codec == "copy" {
            assert_frames_match(&source.framemd5[..k], &arrived, true, name);
        } else {
            assert_eq!(arrived.len(), k, "{name}: frames re-encoded and recorded");
        }
    }
}

#[test]
fn stats_json_path_is_checked_before_connecting() {
    if !require("stats_json_path_is_checked_before_connecting", FFMPEG_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-push-stats-path");
    let clip = clip(dir.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!(
        "rtmp://127.0.0.1:{}/live/x",
        listener.local_addr().unwrap().port()
    );
    let missing = dir.path().join("no-such-dir").join("stats.json");
    let mp4 = clip.mp4.to_str().unwrap();
    for (path, needle) in [
        (missing.to_str().unwrap(), "does not exist"),
        (dir.path().to_str().unwrap(), "is a directory"),
    ] {
        let (out, took) = mpegcoder(&["push", mp4, &url, "--stats-json", path]);
        let line = assert_one_error_line(&out, &["--stats-json", path, needle]);
        assert_eq!(out.status.code(), Some(1), "{line}");
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }
    assert!(listener.accept().is_err(), "it connected before the check");
}

#[test]
fn odd_sized_input_is_scaled_with_one_warning() {
    if !require("odd_sized_input_is_scaled_with_one_warning", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-push-odd-size");
    // FFV1 stores 321x241 as it is (libx264 in 4:2:0 cannot; testsrc2 would round it).
    let odd = dir.path().join("odd.mkv");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=321x241:rate=30")
        .args(["-frames:v", "60", "-c:v", "ffv1"])
        .arg(&odd));
    let nginx = NginxRtmp::start(dir.path());
    let (out, _) = mpegcoder(&[
        "push",
        odd.to_str().unwrap(),
        &nginx.url("odd"),
        "--no-pace",
        "-q",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let warnings = warning_lines(&out);
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert_eq!(stderr_lines(&out).len(), 1, "{stderr}");
    for needle in ["odd.mkv", "321x241", "320x240"] {
        assert!(warnings[0].contains(needle), "{needle} missing: {stderr}");
    }
    let flv = nginx.wait_recording("odd", Duration::from_secs(10));
    let probe = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(&flv));
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "320,240");
    assert_eq!(framemd5(&flv).len(), 60);

    // An even input re-encoded at its own size says nothing.
    let clip = clip(dir.path());
    let mp4 = clip.mp4.to_str().unwrap();
    let (out, _) = mpegcoder(&["push", mp4, &nginx.url("even"), "--no-pace", "-q"]);
    assert!(out.status.success());
    assert!(stderr_lines(&out).is_empty(), "{:?}", stderr_lines(&out));
}

#[test]
fn copy_push_of_high_10_or_4_4_4_warns_once() {
    if !require("copy_push_of_high_10_or_4_4_4_warns_once", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-push-high10");
    let nginx = NginxRtmp::start(dir.path());
    // High 10 when this libx264 has 10-bit, High 4:4:4 Predictive in any case.
    let mut made = Vec::new();
    for (name, pix_fmt, profile) in [
        ("h10", "yuv420p10le", "High 10"),
        ("h444", "yuv444p", "High 4:4:4 Predictive"),
    ] {
        let mp4 = dir.path().join(format!("{name}.mp4"));
        let ok = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=320x240:rate=30")
            .args(["-frames:v", "60", "-c:v", "libx264", "-pix_fmt", pix_fmt])
            .arg(&mp4)
            .stdin(Stdio::null())
            .status()
            .unwrap()
            .success();
        if ok {
            made.push((name, mp4, profile));
        }
    }
    assert!(!made.is_empty(), "ffmpeg made neither clip");
    for (name, mp4, profile) in made {
        let (out, _) = mpegcoder(&[
            "push",
            mp4.to_str().unwrap(),
            &nginx.url(name),
            "--codec",
            "copy",
            "--no-pace",
            "-q",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        let warnings = warning_lines(&out);
        assert_eq!(warnings.len(), 1, "{stderr}");
        assert_eq!(stderr_lines(&out).len(), 1, "{stderr}");
        for needle in [profile, "cannot decode", "--codec libx264"] {
            assert!(warnings[0].contains(needle), "{needle} missing: {stderr}");
        }
        // It still goes through untouched.
        let flv = nginx.wait_recording(name, Duration::from_secs(10));
        assert_eq!(framemd5(&flv), framemd5(&mp4), "{name}");
    }
    // 8-bit 4:2:0 High profile: no warning.
    let clip = clip(dir.path());
    let (out, _) = mpegcoder(&[
        "push",
        clip.mp4.to_str().unwrap(),
        &nginx.url("plain"),
        "--codec",
        "copy",
        "--no-pace",
        "-q",
    ]);
    assert!(out.status.success());
    assert!(stderr_lines(&out).is_empty(), "{:?}", stderr_lines(&out));
}

#[test]
fn sigterm_tears_down_writes_stats_and_exits_143() {
    if !require("sigterm_tears_down_writes_stats_and_exits_143", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-push-sigterm");
    let clip = clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let stats = dir.path().join("stats.json");
    let url = nginx.url("term");
    let args = [
        "push",
        clip.mp4.to_str().unwrap(),
        &url,
        "--loop",
        "-1",
        "--stats-json",
        stats.to_str().unwrap(),
    ];
    let child = spawn_cli(env!("CARGO_BIN_EXE_mpegcoder"), &args);
    std::thread::sleep(Duration::from_millis(1500));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(json["interrupted"], true);
    let sent = json["frames_sent"].as_u64().unwrap();
    assert!(sent >= 30, "only {sent} frames before SIGTERM");
    // A clean end: nginx closed the recording and holds every frame sent.
    let flv = nginx.wait_recording("term", Duration::from_secs(10));
    assert_eq!(framemd5(&flv).len() as u64, sent);
}

#[test]
fn a_signal_while_connecting_or_opening_stops_within_a_second() {
    if !require(
        "a_signal_while_connecting_or_opening_stops_within_a_second",
        FFMPEG_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("cli-push-signal-connect");
    let clip = clip(dir.path());
    // A server that accepts the connection (the kernel does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let fifo = dir.path().join("input.fifo");
    run(Command::new("mkfifo").arg(&fifo));
    let mp4 = clip.mp4.to_str().unwrap();
    let rtsp = format!("rtsp://127.0.0.1:{port}/x");
    let rtmp = format!("rtmp://127.0.0.1:{port}/live/x");
    for (what, input, url, codec, signal, code) in [
        ("rtsp connect, INT", mp4, &rtsp, "copy", "-INT", 130),
        ("rtmp connect, TERM", mp4, &rtmp, "libx264", "-TERM", 143),
        (
            "FIFO open, INT",
            fifo.to_str().unwrap(),
            &rtsp,
            "copy",
            "-INT",
            130,
        ),
        (
            "FIFO open, TERM",
            fifo.to_str().unwrap(),
            &rtsp,
            "copy",
            "-TERM",
            143,
        ),
    ] {
        let stats = dir.path().join("stats.json");
        let _ = std::fs::remove_file(&stats);
        let args = [
            "push",
            input,
            url,
            "--codec",
            codec,
            "--stats-json",
            stats.to_str().unwrap(),
        ];
        let child = spawn_cli(env!("CARGO_BIN_EXE_mpegcoder"), &args);
        std::thread::sleep(Duration::from_millis(1000));
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let started = Instant::now();
        let out = child.wait_with_output().unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // "Within 1 s", with room for a loaded machine.
        assert!(took < Duration::from_secs(5), "{what}: took {took:?}");
        assert_eq!(out.status.code(), Some(code), "{what}: {stderr}");
        assert!(stderr.contains("interrupted"), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        if input == mp4 {
            // Stopped while connecting: the summary says nothing was sent.
            let json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
            assert_eq!(json["interrupted"], true, "{what}");
            assert_eq!(json["frames_sent"], 0, "{what}");
        } else {
            assert!(stderr.contains("nothing was sent"), "{what}: {stderr}");
        }
    }
}
