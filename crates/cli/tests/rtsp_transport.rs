//! `--transport auto` and the RTSP publisher's dealings with servers that refuse a lower
//! transport, against GStreamer's RTSP server restricted to one of them.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use mpegcoder_protocol_tests::cli::*;
use mpegcoder_protocol_tests::*;

fn mpegcoder(args: &[&str]) -> (std::process::Output, Duration) {
    run_cli(env!("CARGO_BIN_EXE_mpegcoder"), args)
}

fn server(dir: &std::path::Path, protocols: &'static str) -> GstRtspRecord {
    GstRtspRecord::start_with(
        dir,
        GstOptions {
            protocols: Some(protocols),
            ..GstOptions::default()
        },
    )
}

/// Pushes the clip unpaced with `--transport <transport>`; returns the run's output.
fn push(clip: &Clip, url: &str, transport: &str) -> std::process::Output {
    let (out, _) = mpegcoder(&[
        "push",
        clip.mp4.to_str().unwrap(),
        url,
        "--codec",
        "copy",
        "--no-pace",
        "--transport",
        transport,
    ]);
    out
}

#[test]
fn auto_falls_back_to_udp_when_setup_over_tcp_is_refused() {
    if !require(
        "auto_falls_back_to_udp_when_setup_over_tcp_is_refused",
        GST_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("cli-auto-udp");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    let gst = server(dir.path(), "udp");
    let out = push(&clip, &gst.url(Some(("u", "secret"))), "auto");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
    // One line says what happened: the server refused TCP, the push went over UDP.
    let warnings = warning_lines(&out);
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("461"), "{stderr}");
    assert!(warnings[0].contains("UDP"), "{stderr}");
    let rec = gst.wait_recording(Duration::from_secs(1), Duration::from_secs(15));
    assert_frames_match(&clip.framemd5, &framemd5(&rec), true, "auto over udp");
}

#[test]
fn auto_uses_tcp_where_the_server_takes_it() {
    if !require("auto_uses_tcp_where_the_server_takes_it", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-auto-tcp");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    let gst = server(dir.path(), "tcp");
    let out = push(&clip, &gst.url(None), "auto");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(warning_lines(&out).is_empty(), "{stderr}");
    let rec = gst.wait_recording(Duration::from_secs(1), Duration::from_secs(15));
    assert_frames_match(&clip.framemd5, &framemd5(&rec), true, "auto over tcp");
}

#[test]
fn tcp_alone_reports_the_servers_refusal() {
    if !require("tcp_alone_reports_the_servers_refusal", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("cli-tcp-refused");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    let gst = server(dir.path(), "udp");
    let out = push(&clip, &gst.url(Some(("u", "secret"))), "tcp");
    let line = one_error_line(&out, &["SETUP", "461"]);
    assert!(!line.contains("secret"), "{line}");
    assert_eq!(out.status.code(), Some(1), "{line}");
}
