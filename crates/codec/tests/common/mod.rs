//! Shared helpers of the codec tests: fixture clips made with the ffmpeg CLI (cached under
//! Cargo's per-target temp dir), and ffmpeg's own per-frame hashes as the reference.
#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

/// True when `CI=true` (or 1): a missing ffmpeg fails the test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether the ffmpeg and ffprobe CLIs are available. Panics under CI when they are not;
/// otherwise prints a note so the caller can skip.
pub fn have_ffmpeg(test: &str) -> bool {
    let ok = ["ffmpeg", "ffprobe"].iter().all(|t| {
        Command::new(t)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        let msg =
            format!("{test}: the ffmpeg/ffprobe CLI is missing (install: bash .ci/install-deps)");
        if in_ci() {
            panic!("{msg}; tests may not skip under CI=true");
        }
        eprintln!("SKIPPED {msg}");
    }
    ok
}

/// Directory for fixtures, shared by the test binaries of this crate.
pub fn fixture_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("codec-fixtures");
    std::fs::create_dir_all(&dir).expect("create fixture dir");
    dir
}

/// Runs ffmpeg, panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fixture made by `ffmpeg <args> <output>`, cached by its arguments. `ext` is the output
/// file extension (selects the container).
pub fn clip(args: &[&str], ext: &str) -> PathBuf {
    let mut h = DefaultHasher::new();
    args.hash(&mut h);
    ext.hash(&mut h);
    let path = fixture_dir().join(format!("clip-{:016x}.{ext}", h.finish()));
    // Tests of one binary run on parallel threads: make each fixture once.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !path.exists() {
        // Write under a unique name, then rename: test binaries may run concurrently.
        let tmp = fixture_dir().join(format!(
            "tmp-{}-{:016x}.{ext}",
            std::process::id(),
            h.finish()
        ));
        let mut all: Vec<&str> = args.to_vec();
        let tmp_s = tmp.to_str().expect("utf-8 path");
        all.push(tmp_s);
        ffmpeg(&all);
        std::fs::rename(&tmp, &path).expect("rename fixture");
    }
    path
}

/// 320x240 testsrc2 at 30 fps through libx264 with the given GOP and B-frames.
pub fn h264_clip(seconds: &str, gop: u32, bframes: u32, ext: &str) -> PathBuf {
    let g = gop.to_string();
    let bf = bframes.to_string();
    clip(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-t",
            seconds,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-bf",
            &bf,
            "-g",
            &g,
            "-keyint_min",
            &g,
            "-sc_threshold",
            "0",
        ],
        ext,
    )
}

/// 2 s, B-frames (2), GOP 12, MP4.
pub fn bframes_mp4() -> PathBuf {
    h264_clip("2", 12, 2, "mp4")
}

/// The same content as MPEG-TS (Annex B packets).
pub fn bframes_ts() -> PathBuf {
    h264_clip("2", 12, 2, "ts")
}

/// The same content as a raw H.264 elementary stream (no timestamps at all).
pub fn bframes_h264() -> PathBuf {
    let src = bframes_mp4();
    let s = src.to_str().expect("utf-8").to_owned();
    clip(
        &[
            "-i",
            &s,
            "-c",
            "copy",
            "-bsf:v",
            "h264_mp4toannexb",
            "-f",
            "h264",
        ],
        "h264",
    )
}

/// A variable-frame-rate clip: 3 of every 10 frames dropped, so some frames last 4/30 s.
pub fn vfr_mp4() -> PathBuf {
    clip(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-t",
            "2",
            "-vf",
            "select='not(between(mod(n\\,10)\\,3\\,5))'",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-bf",
            "2",
            "-g",
            "15",
        ],
        "mp4",
    )
}

/// The VFR clip in Matroska (millisecond time base, no frame count in the header).
pub fn vfr_mkv() -> PathBuf {
    let src = vfr_mp4();
    let s = src.to_str().expect("utf-8").to_owned();
    clip(&["-i", &s, "-c", "copy"], "mkv")
}

/// ffmpeg's per-frame MD5s (6th column of framemd5) of the first video stream.
pub fn framemd5(path: &Path) -> Vec<String> {
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
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "framemd5 of {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(',').nth(5).map(|h| h.trim().to_owned()))
        .collect()
}

/// Presentation times (seconds) of every decoded frame, as ffprobe reports them.
pub fn ffprobe_frame_times(path: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=best_effort_timestamp_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// Splits Annex B data into NAL units (without start codes).
pub fn annexb_nals(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for (n, &s) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(data.len(), |&next| next - 3);
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        out.push(&data[s..end]);
    }
    out
}

/// NAL unit types of Annex B data, in order.
pub fn nal_types(data: &[u8]) -> Vec<u8> {
    annexb_nals(data)
        .iter()
        .filter_map(|n| n.first().map(|b| b & 0x1f))
        .collect()
}
