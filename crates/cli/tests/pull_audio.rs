//! `mpegcoder pull --audio-out FILE.aac` against nginx-rtmp, fed by the ffmpeg CLI: the ADTS
//! file decodes (ffprobe) to as many frames as the summary counts, and holds the source's AAC
//! packets, one for one, from where the reader joined to the end. Audio that ADTS cannot hold
//! (MP3) ends the command with one error line.
//!
//! Self-contained: the clip comes from the ffmpeg CLI here.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use mpegcoder_protocol_tests::*;

/// When the reader joins the live clip: before its second key frame.
const JOIN_AFTER: Duration = Duration::from_millis(400);

fn mpegcoder(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mpegcoder"))
        .env_remove("RUST_LOG")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The MD5 of every audio packet of `path` (`-c copy`, then `bsf`), from `ffmpeg -f framemd5`.
fn audio_md5s(path: &Path, bsf: &[&str]) -> Vec<String> {
    let out = run(Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-c", "copy"])
        .args(bsf)
        .args(["-f", "framemd5", "-"]));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        // stream, dts, pts, duration, size, hash[, side data]
        .map(|l| l.split(',').nth(5).unwrap().trim().to_string())
        .collect()
}

/// A 2 s clip: H.264 320x240 at 30 fps (GOP 30) and AAC LC at 48 kHz.
fn av_clip(dir: &Path) -> std::path::PathBuf {
    let mp4 = dir.join("av.mp4");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t", "2", "-c:v", "libx264", "-g", "30", "-pix_fmt", "yuv420p",
        ])
        .args(["-c:a", "aac"])
        .arg(&mp4));
    mp4
}

fn publish(input: &[&str], url: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-re"])
        .args(input)
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn pull_rtmp_audio_out_writes_the_source_aac_as_adts() {
    if !require(
        "pull_rtmp_audio_out_writes_the_source_aac_as_adts",
        NGINX_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("cli-pull-audio");
    let mp4 = av_clip(dir.path());
    let source = audio_md5s(&mp4, &[]);
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("aac");
    let mut publisher = publish(&["-i", mp4.to_str().unwrap(), "-c", "copy"], &url);
    std::thread::sleep(JOIN_AFTER);
    let aac = dir.path().join("pulled.aac");
    let stats = dir.path().join("stats.json");
    let out = mpegcoder(&[
        "pull",
        &url,
        "--audio-out",
        aac.to_str().unwrap(),
        "--stats-json",
        stats.to_str().unwrap(),
        "--timeout",
        "5",
    ]);
    assert!(publisher.wait().unwrap().success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}; nginx log: {}", nginx.log());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let frames = json["audio_frames"].as_u64().unwrap();
    assert!(frames >= 40, "{json}");
    assert_eq!(json["audio_codec"], "aac", "{json}");
    assert_eq!(json["audio_sample_rate"], 48_000, "{json}");
    assert_eq!(json["audio_channels"], 1, "{json}");
    assert!(json["audio_bytes"].as_u64().unwrap() > 1000, "{json}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("and {frames} audio frames")),
        "{stdout}"
    );

    // ffprobe decodes every frame of the ADTS file.
    let probe = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-count_frames"])
        .args([
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(&aac));
    let probe = String::from_utf8_lossy(&probe.stdout).to_string();
    assert!(probe.contains("codec_name=aac"), "{probe}");
    assert!(
        probe.contains(&format!("nb_read_frames={frames}")),
        "{probe} vs {frames}"
    );
    // Without their ADTS headers the frames are the source's packets, a contiguous run to the
    // end.
    let stored = audio_md5s(&aac, &["-bsf:a", "aac_adtstoasc"]);
    assert_eq!(stored.len() as u64, frames);
    let start = source.len() - stored.len();
    assert_eq!(
        &source[start..],
        &stored[..],
        "the run is not the source's tail"
    );
}

#[test]
fn pull_rtmp_audio_out_refuses_mp3_with_one_error_line() {
    if !require(
        "pull_rtmp_audio_out_refuses_mp3_with_one_error_line",
        NGINX_TOOLS,
    ) {
        return;
    }
    let dir = TempDir::new("cli-pull-mp3");
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("mp3");
    let mut publisher = publish(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=15",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-g",
            "15",
            "-c:a",
            "libmp3lame",
        ],
        &url,
    );
    std::thread::sleep(JOIN_AFTER);
    let aac = dir.path().join("pulled.aac");
    let out = mpegcoder(&["pull", &url, "--audio-out", aac.to_str().unwrap()]);
    let _ = publisher.kill();
    let _ = publisher.wait();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert_eq!(
        lines[0],
        format!(
            "error: cannot record the audio of {url} as ADTS: the stream's audio is mp3, not AAC"
        )
    );
}
