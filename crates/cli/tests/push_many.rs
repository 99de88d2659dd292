//! `mpegcoder push-many LIST`: every stream of a list from one process, into real servers.
//! What each server recorded is checked against its source (every video frame and every
//! audio packet by its MD5); a stream that cannot connect fails alone with one error line
//! naming the list's line; a bad list is refused before anything connects; Ctrl-C ends every
//! stream cleanly with the statistics written.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use mpegcoder_protocol_tests::cli::*;
use mpegcoder_protocol_tests::*;

fn mpegcoder(args: &[&str]) -> Output {
    run_cli(env!("CARGO_BIN_EXE_mpegcoder"), args).0
}

fn json_file(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn write_list(dir: &Path, text: &str) -> String {
    let path = dir.join("streams.txt");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn every_stream_of_the_list_arrives_bit_exact_at_nginx_and_gstreamer() {
    if !(require("push_many", NGINX_TOOLS) && require("push_many", GST_TOOLS)) {
        return;
    }
    let dir = TempDir::new("push-many");
    let av = Clip::generate(
        dir.path(),
        ClipSpec::default().with_audio(AudioSpec::default()),
    );
    let video = Clip::generate(dir.path(), ClipSpec::default().with_gop(10));
    let nginx = NginxRtmp::start(dir.path());
    let gst = GstRtspRecord::start(dir.path());
    // Six RTMP streams from two files (one with AAC), one line feeding two servers, and
    // comments, blank lines and a quoted field.
    let (a, v) = (
        av.mp4.display().to_string(),
        video.mp4.display().to_string(),
    );
    let mut list = String::from("# streams of the test\n\n");
    let keys: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        let input = if i % 2 == 0 { &a } else { &v };
        list.push_str(&format!("\"{input}\"  {}   # stream {i}\n", nginx.url(k)));
    }
    list.push_str(&format!("{v}\t{} {}\n", gst.url(None), nginx.url("fan")));
    let list = write_list(dir.path(), &list);
    let stats = dir.path().join("stats.json");
    let out = mpegcoder(&[
        "push-many",
        &list,
        "--codec",
        "copy",
        "--no-pace",
        "--stats-json",
        stats.to_str().unwrap(),
    ]);
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(
        stderr.contains("pushed 7 streams from") && stderr.contains("(7 complete, 0 failed)"),
        "{stderr}"
    );

    for (i, k) in keys.iter().enumerate() {
        let clip = if i % 2 == 0 { &av } else { &video };
        let flv = nginx.wait_recording(k, Duration::from_secs(15));
        assert_frames_match(&clip.framemd5, &framemd5(&flv), true, k);
        if i % 2 == 0 {
            assert_audio_match(&clip.audio_md5, &audio_framemd5(&flv), k);
        } else {
            assert!(
                !has_stream(&flv, "a:0"),
                "{k}: audio from a video-only input"
            );
        }
    }
    let flv = nginx.wait_recording("fan", Duration::from_secs(15));
    assert_frames_match(&video.framemd5, &framemd5(&flv), true, "fan-out to nginx");
    let mkv = gst.wait_recording(Duration::from_millis(500), Duration::from_secs(15));
    assert_frames_match(
        &video.framemd5,
        &framemd5(&mkv),
        true,
        "fan-out to GStreamer",
    );

    let json = json_file(&stats);
    let t = &json["total"];
    assert_eq!(t["streams"], 7, "{t}");
    assert_eq!(t["streams_complete"], 7, "{t}");
    assert_eq!(t["streams_failed"], 0, "{t}");
    assert_eq!(t["interrupted"], false, "{t}");
    let want_frames = 3 * av.framemd5.len() + 4 * video.framemd5.len();
    assert_eq!(t["frames_sent"], want_frames, "{t}");
    assert_eq!(t["audio_frames_sent"], 3 * av.audio_md5.len(), "{t}");
    let streams = json["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 7);
    // In the list's order, with their line numbers (after the comment and the blank line).
    for (i, s) in streams.iter().enumerate() {
        assert_eq!(s["line"], i + 3, "{s}");
        assert!(s["error"].is_null(), "{s}");
        let frames = if i % 2 == 0 && i < 6 {
            av.framemd5.len()
        } else {
            video.framemd5.len()
        };
        assert_eq!(s["summary"]["frames_sent"], frames, "stream {i}: {s}");
    }
    assert_eq!(streams[6]["urls"].as_array().unwrap().len(), 2);
    assert_eq!(
        streams[6]["summary"]["destinations"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_stream_that_cannot_connect_fails_alone() {
    if !require("push_many_failure", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("push-many-fail");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    let nginx = NginxRtmp::start(dir.path());
    let closed = free_tcp_port();
    let c = clip.mp4.display().to_string();
    let list = write_list(
        dir.path(),
        &format!(
            "{c} {}\n{c} rtmp://user:secret@127.0.0.1:{closed}/live/x\n{c} {}\n",
            nginx.url("ok1"),
            nginx.url("ok2")
        ),
    );
    let stats = dir.path().join("stats.json");
    let out = mpegcoder(&[
        "push-many",
        &list,
        "--codec",
        "copy",
        "--no-pace",
        "-q",
        "--stats-json",
        stats.to_str().unwrap(),
    ]);
    // The one failure is the one line; the others went to the end.
    let line = one_error_line(
        &out,
        &[
            &format!("{list}:2: "),
            &format!("rtmp://127.0.0.1:{closed}/live/x"),
            "refused",
        ],
    );
    assert!(!line.contains("secret"), "{line}");
    for k in ["ok1", "ok2"] {
        let flv = nginx.wait_recording(k, Duration::from_secs(15));
        assert_frames_match(&clip.framemd5, &framemd5(&flv), true, k);
    }
    let json = json_file(&stats);
    assert_eq!(json["total"]["streams_complete"], 2, "{json}");
    assert_eq!(json["total"]["streams_failed"], 1, "{json}");
    let failed = &json["streams"][1];
    assert!(
        failed["error"].as_str().unwrap().contains("refused"),
        "{failed}"
    );
    assert!(!json.to_string().contains("secret"));
}

#[test]
fn a_bad_list_is_refused_before_anything_connects() {
    let dir = TempDir::new("push-many-bad");
    let clip = Clip::generate(dir.path(), ClipSpec::default().with_frames(10));
    let c = clip.mp4.display().to_string();
    // A server that counts the connections it gets: none may come.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = |k: &str| format!("rtmp://127.0.0.1:{port}/live/{k}");
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!("{c} {}\n{c}\n", url("a")),
            vec![":2: ".into(), "expected INPUT URL".into()],
        ),
        (
            format!("{c} {}\n/nowhere/clip.mp4 {}\n", url("a"), url("b")),
            vec![":2: ".into(), "/nowhere/clip.mp4: no such file".into()],
        ),
        (
            format!("{c} {}\n{c} {}\n", url("a"), url("a")),
            vec![":2: ".into(), "already published by line 1".into()],
        ),
        (
            format!("{c} {} \"unclosed\n", url("a")),
            vec![":1: ".into(), "quoted field is not closed".into()],
        ),
        ("# only a comment\n".into(), vec!["no streams".into()]),
    ];
    for (text, needles) in &cases {
        let list = write_list(dir.path(), text);
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        let out = mpegcoder(&["push-many", &list, "--codec", "copy", "--no-pace"]);
        let line = one_error_line(&out, &needles);
        assert!(line.contains(&list), "the list is named: {line}");
    }
    // Options that cannot work are refused for the whole list too.
    let list = write_list(dir.path(), &format!("{c} {}\n", url("a")));
    let out = mpegcoder(&["push-many", &list, "--codec", "copy", "--gop", "10"]);
    one_error_line(&out, &["gop"]);
    let out = mpegcoder(&[
        "push-many",
        &dir.path().join("none.txt").display().to_string(),
    ]);
    one_error_line(&out, &["cannot read", "none.txt"]);
    assert!(
        listener.accept().is_err(),
        "a refused list must connect nowhere"
    );
}

#[test]
fn ctrl_c_ends_every_stream_cleanly() {
    if !require("push_many_interrupt", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("push-many-int");
    // Without B-frames, so that a stream cut anywhere holds the frames sent in display order.
    let clip = Clip::generate(
        dir.path(),
        ClipSpec {
            bframes: 0,
            ..ClipSpec::default()
        },
    );
    let nginx = NginxRtmp::start(dir.path());
    let c = clip.mp4.display().to_string();
    let keys = ["i0", "i1", "i2"];
    let text: String = keys
        .iter()
        .map(|k| format!("{c} {}\n", nginx.url(k)))
        .collect();
    let list = write_list(dir.path(), &text);
    let stats = dir.path().join("stats.json");
    let mut child = spawn_cli(
        env!("CARGO_BIN_EXE_mpegcoder"),
        &[
            "push-many",
            &list,
            "--codec",
            "copy",
            "--loop",
            "-1",
            "--start-spread-ms",
            "300",
            "--stats-json",
            stats.to_str().unwrap(),
        ],
    );
    // Every stream publishing before the signal.
    let deadline = Instant::now() + Duration::from_secs(15);
    while keys.iter().any(|k| nginx.sessions(k) == 0) {
        assert!(Instant::now() < deadline, "not every stream published");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "cannot signal push-many");
    let started = Instant::now();
    let out = loop {
        if let Some(_status) = child.try_wait().unwrap() {
            break child.wait_with_output().unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "push-many did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(!stderr.lines().any(|l| l.starts_with("error:")), "{stderr}");
    let json = json_file(&stats);
    assert_eq!(json["total"]["interrupted"], true, "{json}");
    assert_eq!(json["total"]["streams_complete"], 3, "{json}");
    for (i, k) in keys.iter().enumerate() {
        // Each recording closed by the unpublish holds a contiguous run of the looped clip
        // from its start, as many frames as the stream says it sent.
        let flv = nginx.wait_recording(k, Duration::from_secs(15));
        let got = framemd5(&flv);
        let sent = json["streams"][i]["summary"]["frames_sent"]
            .as_u64()
            .unwrap() as usize;
        assert_eq!(got.len(), sent, "{k}");
        assert!(sent > clip.framemd5.len() / 2, "{k}: only {sent} frames");
        for (j, h) in got.iter().enumerate() {
            assert_eq!(h, &clip.framemd5[j % clip.framemd5.len()], "{k}: frame {j}");
        }
    }
}
