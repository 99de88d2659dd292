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
    // The source's frames from a key frame on (GOPs of 15), in order. `--frames` counts
    // access units in decoding order: with B-frames (2 here) the last pictures may be a
    // reference picture shown after B-frames that came beyond the limit.
    let positions: Vec<usize> = hashes
        .iter()
        .map(|h| {
            clip.framemd5
                .iter()
                .position(|s| s == h)
                .expect("every pulled frame is a source frame")
        })
        .collect();
    let start = positions[0];
    assert_eq!(start % 15, 0, "did not start at a key frame");
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert!(positions[19] <= start + 19 + 2, "{positions:?}");
    assert_eq!(&clip.framemd5[start..start + 17], &hashes[..17]);
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

/// Frames ffprobe decodes from `path` (`-count_frames`).
fn count_frames(path: &Path) -> usize {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe -count_frames of {}: {text:?}", path.display()))
}

/// Starts `mpegcoder ARGS` with stdout and stderr piped.
fn spawn_mpegcoder(args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_mpegcoder"))
        .env_remove("RUST_LOG")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends `signal` (e.g. "-INT") to the process `pid`.
fn send_signal(signal: &str, pid: u32) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// Waits for `child` (at most `limit`, else kills it and fails).
fn wait_child(child: std::process::Child, limit: Duration) -> (Output, Duration) {
    let started = std::time::Instant::now();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => (out.unwrap(), started.elapsed()),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("mpegcoder did not finish within {limit:?}");
        }
    }
}

/// A clip long enough to be cut short: 10 s, a key frame every 15 frames, B-frames.
fn long_clip(dir: &Path) -> Clip {
    Clip::generate(
        dir,
        ClipSpec {
            frames: 300,
            gop: 15,
            ..ClipSpec::default()
        },
    )
}

/// The outputs of a pull agree: `--framemd5` has as many lines as `--out` has frames, and they
/// are the same frames (the ffmpeg CLI decodes `--out` to the same hashes).
fn assert_outputs_agree(md5: &Path, raw: &Path, what: &str) -> usize {
    let hashes = parse_framemd5(&std::fs::read_to_string(md5).unwrap());
    assert_eq!(
        count_frames(raw),
        hashes.len(),
        "{what}: --out vs --framemd5"
    );
    assert_eq!(
        framemd5(raw),
        hashes,
        "{what}: --out decodes to other frames"
    );
    hashes.len()
}

#[test]
fn pull_from_a_killed_rtsp_server_is_one_error_and_keeps_what_arrived() {
    if !require("pull_from_a_killed_rtsp_server", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-pull-killed");
    let clip = long_clip(dir.path());
    let mut server = GstRtspRecord::start_with(
        dir.path(),
        GstOptions {
            relay_mount: Some("/play".into()),
            ..GstOptions::default()
        },
    );
    let publisher = FfmpegPublisher::start(&server.url(None), &clip);
    std::thread::sleep(JOIN_AFTER);
    let (md5, raw, stats) = (
        dir.path().join("killed.md5"),
        dir.path().join("killed.h264"),
        dir.path().join("killed.json"),
    );
    let url = server.relay_url();
    let pull = spawn_mpegcoder(&[
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
    std::thread::sleep(Duration::from_secs(2));
    // No TEARDOWN, no RTCP BYE: the process is gone.
    send_signal("-KILL", server.pid());
    let (out, took) = wait_child(pull, Duration::from_secs(10));
    drop(publisher);
    server.kill();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The closed connection is seen at once, not after --timeout.
    assert!(took < Duration::from_secs(3), "{took:?}");
    let line = assert_one_error_line(
        &out,
        &[
            "the connection was",
            "after",
            "frames",
            &url["rtsp://".len()..],
        ],
    );
    let frames = assert_outputs_agree(&md5, &raw, "killed server");
    assert!(frames >= 15, "{frames} frames; {line}");
    assert!(line.contains(&format!("after {frames} frames")), "{line}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(
        (json["status"].as_str(), json["end"].as_str()),
        (Some("failed"), Some("error")),
        "{json}"
    );
    assert_eq!(json["frames"], frames as u64, "{json}");
    assert_eq!(json["decoded_frames"], frames as u64, "{json}");
}

#[test]
fn pull_frames_n_reports_n_in_the_summary_framemd5_and_out() {
    if !require("pull_frames_n", GST_TOOLS) || !require("pull_frames_n", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-pull-frames");
    // Long enough for four pulls in a row.
    let clip = long_clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let gst = GstRtspRecord::start_with(
        dir.path(),
        GstOptions {
            relay_mount: Some("/play".into()),
            ..GstOptions::default()
        },
    );
    let rtmp = FfmpegPublisher::start(&nginx.url("frames"), &clip);
    let rtsp = FfmpegPublisher::start(&gst.url(None), &clip);
    std::thread::sleep(JOIN_AFTER);
    for (name, url) in [("rtsp", gst.relay_url()), ("rtmp", nginx.url("frames"))] {
        let md5 = dir.path().join(format!("{name}.md5"));
        let raw = dir.path().join(format!("{name}.h264"));
        let stats = dir.path().join(format!("{name}.json"));
        let (out, _) = mpegcoder(&[
            "pull",
            &url,
            "--frames",
            "30",
            "--framemd5",
            md5.to_str().unwrap(),
            "--out",
            raw.to_str().unwrap(),
            "--stats-json",
            stats.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("pulled 30 frames "), "{name}: {stdout}");
        assert_eq!(assert_outputs_agree(&md5, &raw, name), 30, "{name}");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
        assert_eq!(json["frames"], 30, "{name}: {json}");
        assert_eq!(json["decoded_frames"], 30, "{name}: {json}");
        assert_eq!(json["end"], "frames", "{name}: {json}");
        assert_eq!(json["status"], "stopped", "{name}: {json}");
        // Without decoding: access units, exactly as many.
        let raw = dir.path().join(format!("{name}-copy.h264"));
        let (out, _) = mpegcoder(&[
            "pull",
            &url,
            "--frames",
            "30",
            "--out",
            raw.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("pulled 30 frames "), "{name}: {stdout}");
        assert_eq!(count_frames(&raw), 30, "{name}");
    }
    drop((rtmp, rtsp));
}

#[test]
fn pull_interrupted_by_sigint_or_sigterm_exits_130_or_143_with_the_summary() {
    if !require("pull_interrupted_by_a_signal", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-pull-signals");
    let clip = long_clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("signals");
    let publisher = FfmpegPublisher::start(&url, &clip);
    std::thread::sleep(JOIN_AFTER);
    // Ctrl-C sends SIGINT; a service manager SIGTERM.
    for (signal, code) in [("-INT", 130), ("-TERM", 143)] {
        let name = &signal[1..];
        let (md5, raw, stats) = (
            dir.path().join(format!("{name}.md5")),
            dir.path().join(format!("{name}.h264")),
            dir.path().join(format!("{name}.json")),
        );
        let pull = spawn_mpegcoder(&[
            "pull",
            &url,
            "--framemd5",
            md5.to_str().unwrap(),
            "--out",
            raw.to_str().unwrap(),
            "--stats-json",
            stats.to_str().unwrap(),
        ]);
        std::thread::sleep(Duration::from_secs(2));
        send_signal(signal, pull.id());
        let (out, took) = wait_child(pull, Duration::from_secs(10));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{name}: {stderr}");
        assert!(took < Duration::from_secs(3), "{name}: {took:?}");
        assert!(!stderr.contains("error"), "{name}: {stderr}");
        let frames = assert_outputs_agree(&md5, &raw, name);
        assert!(frames >= 15, "{name}: {frames} frames");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.starts_with(&format!("pulled {frames} frames ")),
            "{name}: {stdout}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
        assert_eq!(json["end"], "interrupted", "{name}: {json}");
        assert_eq!(json["frames"], frames as u64, "{name}: {json}");
    }
    drop(publisher);
}

#[test]
fn pull_timeout_bounds_every_setup_step() {
    // Servers that accept the connection and never answer: RTSP DESCRIBE, the RTMP handshake.
    for (scheme, step) in [("rtsp", "DESCRIBE"), ("rtmp", "handshake")] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let silent = std::thread::spawn(move || {
            let held = listener.accept();
            let _ = wait.recv_timeout(Duration::from_secs(30));
            drop(held);
        });
        let url = format!("{scheme}://u:hunter2@127.0.0.1:{port}/live/x");
        let (out, took) = mpegcoder(&["pull", &url, "--timeout", "2"]);
        let _ = done.send(());
        silent.join().unwrap();
        assert_one_error_line(&out, &[step, &format!("127.0.0.1:{port}/live/x"), "2s"]);
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(6),
            "{scheme}: {took:?}"
        );
    }
}
