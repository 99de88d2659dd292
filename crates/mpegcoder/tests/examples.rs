//! The examples, run as a user runs them. The two reproducing mpegCoder's pushing scripts go
//! to GStreamer's RTSP server: every frame arrives and decodes close to the source, and both
//! pace at real time (the non-blocking one through `wait_ref`, the two-thread one through
//! `serve_frame_block`). The async one goes to nginx-rtmp in copy mode: every frame arrives
//! bit-exact, paced.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use mpegcoder_protocol_tests::*;

/// `cargo test` builds the examples next to the test binaries' directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples").join(name))
        .unwrap();
    assert!(
        path.exists(),
        "example {name} not built at {}",
        path.display()
    );
    path
}

#[test]
fn seed_examples_push_every_frame_at_real_time() {
    if !require("seed_examples", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("examples");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    for name in ["server_non_blocking", "server_dual_thread"] {
        let server = GstRtspRecord::start(dir.path());
        let started = Instant::now();
        let out = Command::new(example(name))
            .arg(&clip.mp4)
            .arg(server.url(None))
            .output()
            .unwrap();
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("sent 60 frames"), "{name}: {stdout}");
        // 60 frames at 30 fps: the last one is due 1.97 s after the first.
        assert!(
            took >= Duration::from_millis(1800) && took < Duration::from_secs(6),
            "{name} took {took:?}"
        );
        let rec = server.wait_recording(Duration::from_millis(500), Duration::from_secs(10));
        let (db, frames) = psnr(&rec, &clip.mp4);
        assert_eq!(frames, 60, "{name}");
        assert!(db > 30.0, "{name}: PSNR {db:.2} dB");
    }
}

#[test]
fn async_example_publishes_the_packets_bit_exact_at_real_time() {
    if !require("async_push_example", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("example-async");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    let nginx = NginxRtmp::start(dir.path());
    let started = Instant::now();
    let out = Command::new(example("async_push"))
        .arg(&clip.mp4)
        .arg(nginx.url("async"))
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "async_push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "one summary line: {stdout}");
    assert!(stdout.starts_with("sent 60 frames"), "{stdout}");
    // Paced: the last of 60 frames at 30 fps is due 1.97 s after the first.
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(6),
        "async_push took {took:?}"
    );
    // Copy mode is bit-exact: every frame arrives and decodes to the source's pixels.
    let flv = nginx.wait_recording("async", Duration::from_secs(10));
    assert_eq!(check_timestamps(&flv).packets, 60);
    assert_frames_match(&clip.framemd5, &framemd5(&flv), true, "async_push");

    // A failure is one error line and a non-zero exit.
    let out = Command::new(example("async_push"))
        .arg(&clip.mp4)
        .arg(format!("rtmp://127.0.0.1:{}/live/x", free_tcp_port()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("connection refused"), "{stderr}");
}
