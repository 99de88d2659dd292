//! `mpegcoder probe` against the ffmpeg CLI's own view of the same file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether the ffmpeg CLI is available; panics under CI when it is not.
fn have_ffmpeg(test: &str) -> bool {
    let ok = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let msg = format!("{test}: the ffmpeg CLI is missing (install: bash .ci/install-deps)");
        if in_ci() {
            panic!("{msg}; tests may not skip under CI=true");
        }
        eprintln!("SKIPPED {msg}");
    }
    ok
}

fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-probe");
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

/// A 2 s 320x240 clip with B-frames (made once, kept in Cargo's target temp dir).
fn clip() -> PathBuf {
    static CLIP: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CLIP.get_or_init(|| {
        let path = dir().join("clip-320x240-bf2-g12.mp4");
        if path.exists() {
            return path;
        }
        let tmp = dir().join(format!("tmp-{}.mp4", std::process::id()));
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi"])
            .args([
                "-i",
                "testsrc2=size=320x240:rate=30",
                "-t",
                "2",
                "-c:v",
                "libx264",
            ])
            .args([
                "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "2", "-g", "12",
            ])
            .arg(&tmp)
            .output()
            .expect("ffmpeg");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        std::fs::rename(&tmp, &path).expect("rename");
        path
    })
    .clone()
}

fn framemd5(path: &Path) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-f",
            "framemd5",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(',').nth(5).map(|h| h.trim().to_owned()))
        .collect()
}

fn probe(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mpegcoder"))
        // Log lines of the caller's RUST_LOG would add to the lines the tests count.
        .env_remove("RUST_LOG")
        .arg("probe")
        .args(args)
        .output()
        .expect("run mpegcoder")
}

#[test]
fn probe_json_describes_the_clip() {
    if !have_ffmpeg("probe_json_describes_the_clip") {
        return;
    }
    let path = clip();
    let out = probe(&[path.as_os_str(), "--json".as_ref()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "nothing on stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let n = framemd5(&path).len();
    assert_eq!(v["width"], 320);
    assert_eq!(v["height"], 240);
    assert_eq!(v["frame_rate"], "30/1");
    assert_eq!(v["frame_count"], n);
    assert_eq!(v["codec"], "h264");
    assert_eq!(v["gop_size"], 12);
    assert_eq!(v["max_b_frames"], 2);
    let d = v["duration_s"].as_f64().expect("duration");
    assert!((d - 2.0).abs() < 0.01, "duration {d}");

    let text = probe(&[path.as_os_str()]);
    assert!(text.status.success());
    let s = String::from_utf8_lossy(&text.stdout);
    assert!(s.contains("320x240") && s.contains("30/1"), "{s}");
}

#[test]
fn probe_framemd5_matches_ffmpeg() {
    if !have_ffmpeg("probe_framemd5_matches_ffmpeg") {
        return;
    }
    let path = clip();
    let hashes = dir().join(format!("hashes-{}.txt", std::process::id()));
    let out = probe(&[path.as_os_str(), "--framemd5".as_ref(), hashes.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = std::fs::read_to_string(&hashes).expect("hash file");
    let _ = std::fs::remove_file(&hashes);
    let expected: Vec<String> = framemd5(&path)
        .iter()
        .enumerate()
        .map(|(i, h)| format!("{i} {h}"))
        .collect();
    assert_eq!(ours.lines().collect::<Vec<_>>(), expected);

    // `-` writes the hashes, and only them, to stdout.
    let out = probe(&[path.as_os_str(), "--framemd5".as_ref(), "-".as_ref()]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .collect::<Vec<_>>(),
        expected
    );
}

#[test]
fn bad_input_gives_one_error_line() {
    let text = dir().join(format!("notes-{}.txt", std::process::id()));
    std::fs::write(&text, "not a video\n").expect("write");
    for input in [PathBuf::from("/nonexistent/clip.mp4"), text.clone()] {
        let out = probe(&[input.as_os_str()]);
        assert!(!out.status.success(), "{}: must fail", input.display());
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "exactly one line: {err:?}");
        assert!(lines[0].starts_with("error: "), "{err}");
        assert!(
            lines[0].contains(&*input.to_string_lossy()),
            "names the file: {err}"
        );
        assert!(out.stdout.is_empty());
    }
    let _ = std::fs::remove_file(&text);
    let out = probe(&["/nonexistent/clip.mp4".as_ref(), "--json".as_ref()]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn unwritable_hash_file_is_an_error() {
    if !have_ffmpeg("unwritable_hash_file_is_an_error") {
        return;
    }
    let out = probe(&[
        clip().as_os_str(),
        "--framemd5".as_ref(),
        "/nonexistent/dir/h.txt".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: cannot create /nonexistent/dir/h.txt"),
        "{err}"
    );
}
