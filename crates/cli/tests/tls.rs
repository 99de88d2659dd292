//! `rtsps://` and `rtmps://` through stunnel in front of GStreamer's RTSP server and
//! nginx-rtmp, with certificates made by the harness. What the servers recorded is checked
//! against the source frame by frame; every certificate the client must refuse gives one error
//! line naming the host and the reason, at once, even with `--reconnect`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use mpegcoder_protocol_tests::cli::*;
use mpegcoder_protocol_tests::tls::{Stunnel, TestPki, TlsVersions, TLS_TOOLS};
use mpegcoder_protocol_tests::*;

fn mpegcoder(args: &[&str]) -> (Output, Duration) {
    run_cli(env!("CARGO_BIN_EXE_mpegcoder"), args)
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn rtmps_url(tunnel: &Stunnel, host: &str, key: &str) -> String {
    format!("rtmps://{host}:{}/live/{key}", tunnel.port)
}

fn rtsps_url(tunnel: &Stunnel, host: &str, mount: &str) -> String {
    format!("rtsps://{host}:{}{mount}", tunnel.port)
}

fn push_ok(args: &[&str]) -> String {
    let (out, _) = mpegcoder(args);
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{args:?}: {stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    stderr
}

#[test]
fn rtmps_copy_with_audio_and_libx264_arrive_whole_over_tls_1_2_and_pull_back() {
    if !(require("rtmps", NGINX_TOOLS) && require("rtmps", TLS_TOOLS)) {
        return;
    }
    let dir = TempDir::new("tls-rtmps");
    let pki = TestPki::new(dir.path());
    let clip = av_clip(dir.path());
    let nginx = NginxRtmp::start(dir.path());
    let tunnel = Stunnel::start(dir.path(), nginx.port, &pki.good, TlsVersions::Tls12);
    let ca = pki.ca.to_str().unwrap();
    let mp4 = clip.mp4.to_str().unwrap();

    // Copy, video and AAC: bit-exact.
    let url = rtmps_url(&tunnel, "127.0.0.1", "copy");
    push_ok(&[
        "push",
        mp4,
        &url,
        "--codec",
        "copy",
        "--no-pace",
        "-q",
        "--tls-ca",
        ca,
    ]);
    let flv = nginx.wait_recording("copy", Duration::from_secs(15));
    assert_frames_match(&clip.framemd5, &framemd5(&flv), true, "rtmps copy");
    assert_audio_match(&clip.audio_md5, &audio_framemd5(&flv), "rtmps copy audio");

    // libx264, by host name: every frame arrives.
    let url = rtmps_url(&tunnel, "localhost", "x264");
    push_ok(&["push", mp4, &url, "--no-pace", "-q", "--tls-ca", ca]);
    let flv = nginx.wait_recording("x264", Duration::from_secs(15));
    assert_eq!(framemd5(&flv).len(), clip.framemd5.len(), "rtmps libx264");

    // Pull over RTMPS while a paced copy push runs: a contiguous run of the source's frames.
    let live = rtmps_url(&tunnel, "127.0.0.1", "live");
    let mut publisher = spawn_cli(
        env!("CARGO_BIN_EXE_mpegcoder"),
        &["push", mp4, &live, "--codec", "copy", "-q", "--tls-ca", ca],
    );
    std::thread::sleep(Duration::from_millis(300));
    let hashes = dir.path().join("pull.md5");
    let (out, _) = mpegcoder(&[
        "pull",
        &live,
        "--tls-ca",
        ca,
        "--framemd5",
        hashes.to_str().unwrap(),
        "--timeout",
        "3",
        "-q",
    ]);
    let status = publisher.wait().unwrap();
    assert!(status.success(), "publisher");
    let stderr = stderr_of(&out);
    let lines: Vec<String> = std::fs::read_to_string(&hashes)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, md5)| md5.to_string()))
        .collect();
    assert!(
        lines.len() >= 20,
        "only {} frames pulled over rtmps: {stderr}",
        lines.len()
    );
    assert_contiguous_run(&clip.framemd5, &lines, 20, "rtmps pull");
}

#[test]
fn rtsps_copy_with_audio_and_libx264_arrive_whole_over_tls_1_3() {
    if !(require("rtsps", GST_TOOLS) && require("rtsps", TLS_TOOLS)) {
        return;
    }
    let dir = TempDir::new("tls-rtsps");
    let pki = TestPki::new(dir.path());
    let ca = pki.ca.to_str().unwrap();

    // Copy, video only: bit-exact.
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    let gst = GstRtspRecord::start(dir.path());
    let tunnel = Stunnel::start(dir.path(), gst.port, &pki.good, TlsVersions::Tls13);
    let url = rtsps_url(&tunnel, "127.0.0.1", "/record");
    let mp4 = clip.mp4.to_str().unwrap();
    push_ok(&[
        "push",
        mp4,
        &url,
        "--codec",
        "copy",
        "--no-pace",
        "-q",
        "--tls-ca",
        ca,
    ]);
    let rec = gst.wait_recording(Duration::from_millis(500), Duration::from_secs(15));
    assert_frames_match(&clip.framemd5, &framemd5(&rec), true, "rtsps copy");
    drop(tunnel);
    drop(gst);

    // libx264 with AAC alongside: every frame and every audio packet.
    let av = av_clip(dir.path());
    let gst = GstRtspRecord::start_with(
        dir.path(),
        GstOptions {
            audio: true,
            ..GstOptions::default()
        },
    );
    let tunnel = Stunnel::start(dir.path(), gst.port, &pki.good, TlsVersions::Tls13);
    let url = rtsps_url(&tunnel, "localhost", "/record");
    push_ok(&[
        "push",
        av.mp4.to_str().unwrap(),
        &url,
        "--audio",
        "copy",
        "--no-pace",
        "-q",
        "--tls-ca",
        ca,
    ]);
    let rec = gst.wait_recording(Duration::from_millis(500), Duration::from_secs(20));
    assert_eq!(framemd5(&rec).len(), av.framemd5.len(), "rtsps libx264");
    assert_audio_match(&av.audio_md5, &audio_framemd5(&rec), "rtsps audio");
}

/// One push of `clip` to `url` with `extra` that must fail at once with one error line holding
/// `needles`.
fn refused(clip: &Path, url: &str, extra: &[&str], needles: &[&str]) -> String {
    let mut args = vec!["push", clip.to_str().unwrap(), url, "--codec", "copy", "-q"];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let (out, _) = mpegcoder(&args);
    let line = one_error_line(&out, needles);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{url}: took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{line}");
    line
}

#[test]
fn certificates_that_must_not_be_trusted_are_refused_with_the_reason() {
    if !(require("tls_refusals", NGINX_TOOLS) && require("tls_refusals", TLS_TOOLS)) {
        return;
    }
    let dir = TempDir::new("tls-refused");
    let pki = TestPki::new(dir.path());
    let ca = pki.ca.to_str().unwrap();
    let clip = Clip::generate(dir.path(), ClipSpec::default().with_frames(25));
    let nginx = NginxRtmp::start(dir.path());

    // A CA nobody trusts: refused; trusted with --tls-ca (the test CA is not the one): still
    // refused; --tls-insecure: works, with the warning.
    let unknown = Stunnel::start(dir.path(), nginx.port, &pki.unknown_ca, TlsVersions::Tls13);
    let url = rtmps_url(&unknown, "127.0.0.1", "a");
    refused(&clip.mp4, &url, &[], &["127.0.0.1", "not trusted"]);
    refused(&clip.mp4, &url, &["--tls-ca", ca], &["not trusted"]);
    // --reconnect never retries a certificate error: one connection only.
    let before = unknown.connections();
    refused(&clip.mp4, &url, &["--reconnect"], &["not trusted"]);
    assert_eq!(unknown.connections(), before + 1, "{}", unknown.log());
    let stderr = push_ok(&[
        "push",
        clip.mp4.to_str().unwrap(),
        &url,
        "--codec",
        "copy",
        "--no-pace",
        "-q",
        "--tls-insecure",
    ]);
    let warnings = stderr
        .lines()
        .filter(|l| l.starts_with("warning:") && l.contains("not verified"))
        .count();
    assert_eq!(warnings, 1, "{stderr}");
    let flv = nginx.wait_recording("a", Duration::from_secs(15));
    assert_frames_match(&clip.framemd5, &framemd5(&flv), true, "insecure");

    // The test CA's certificate for the right host works with --tls-ca only.
    let good = Stunnel::start(dir.path(), nginx.port, &pki.good, TlsVersions::Tls12);
    let url = rtmps_url(&good, "localhost", "b");
    refused(&clip.mp4, &url, &[], &["localhost", "not trusted"]);
    push_ok(&[
        "push",
        clip.mp4.to_str().unwrap(),
        &url,
        "--codec",
        "copy",
        "--no-pace",
        "-q",
        "--tls-ca",
        ca,
    ]);

    // A certificate for another name.
    let wrong = Stunnel::start(dir.path(), nginx.port, &pki.wrong_name, TlsVersions::Tls13);
    refused(
        &clip.mp4,
        &rtmps_url(&wrong, "127.0.0.1", "c"),
        &["--tls-ca", ca],
        &["host name mismatch", "wrong.example"],
    );

    // An expired one.
    let expired = Stunnel::start(dir.path(), nginx.port, &pki.expired, TlsVersions::Tls12);
    refused(
        &clip.mp4,
        &rtmps_url(&expired, "localhost", "d"),
        &["--tls-ca", ca, "--reconnect"],
        &["expired", "2021-01-01"],
    );

    // Plain RTMP behind an rtmps:// URL: a clear error within the connect timeout.
    refused(
        &clip.mp4,
        &format!("rtmps://127.0.0.1:{}/live/e", nginx.port),
        &["--tls-ca", ca],
        &["does not speak TLS"],
    );

    // A CA file that does not exist, and UDP with rtsps: refused before connecting.
    refused(
        &clip.mp4,
        &url,
        &["--tls-ca", "/nonexistent/ca.pem"],
        &["/nonexistent/ca.pem", "no such file"],
    );
    refused(
        &clip.mp4,
        "rtsps://127.0.0.1:1/record",
        &["--transport", "udp"],
        &["SRTP"],
    );
}

#[test]
fn reconnect_re_establishes_tls_after_the_terminator_restarts() {
    if !(require("tls_reconnect", NGINX_TOOLS) && require("tls_reconnect", TLS_TOOLS)) {
        return;
    }
    let dir = TempDir::new("tls-reconnect");
    let pki = TestPki::new(dir.path());
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    let nginx = NginxRtmp::start(dir.path());
    let mut tunnel = Stunnel::start(dir.path(), nginx.port, &pki.good, TlsVersions::Tls13);
    let url = rtmps_url(&tunnel, "localhost", "again");
    let stats = dir.path().join("stats.json");
    // About 7 s paced: the terminator dies 2 s in and is back 0.5 s later.
    let mut push = spawn_cli(
        env!("CARGO_BIN_EXE_mpegcoder"),
        &[
            "push",
            clip.mp4.to_str().unwrap(),
            &url,
            "--codec",
            "copy",
            "--loop",
            "3",
            "--reconnect",
            "-q",
            "--tls-ca",
            pki.ca.to_str().unwrap(),
            "--stats-json",
            stats.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_secs(2));
    tunnel.kill();
    std::thread::sleep(Duration::from_millis(500));
    tunnel.restart();
    let status = push.wait().unwrap();
    assert!(status.success(), "push; stunnel log: {}", tunnel.log());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert!(json["reconnects"].as_u64().unwrap() >= 1, "{json}");
    assert!(nginx.sessions("again") >= 2, "{}", nginx.log());
    // The session after the restart went through TLS again and delivered frames.
    assert!(tunnel.connections() >= 1, "{}", tunnel.log());
    let d = &json["destinations"][0];
    assert_eq!(d["state"], "closed", "{json}");
    assert!(d["frames_sent"].as_u64().unwrap() > 60, "{json}");
}
