//! Harness for protocol tests against real media servers on loopback.
//!
//! - [`Clip`]: a generated H.264 clip (ffmpeg's `testsrc2` through libx264), with its stored
//!   packets and avcC extradata read back through ffprobe, and the per-frame MD5 of every
//!   decoded frame. With [`ClipSpec::audio`] it also holds AAC audio (ffmpeg's native `aac`
//!   encoder fed by a tone per channel): its packets, AudioSpecificConfig, per-packet MD5 and
//!   its start offset against the video. Tests publish these packets and compare what the
//!   server recorded.
//! - [`framemd5`], [`audio_framemd5`] (and [`audio_framemd5_of`], [`adts_framemd5`]): per-frame
//!   hashes of decoded video and per-packet hashes of stored audio of any file, computed by the
//!   ffmpeg CLI (an independent demuxer and decoder), so a test never grades itself with its own
//!   code. [`first_pts`] and [`packet_times`] read a file's timestamps with ffprobe,
//!   [`probe_audio`] an audio stream's codec, rate, channels and decoded frame count.
//! - Servers: [`GstRtspRecord`] (GStreamer RTSP server in RECORD mode), [`NginxRtmp`] (nginx
//!   with the RTMP module, recording), [`FfmpegListener`] (ffmpeg as an RTSP or RTMP listener).
//!   Each binds a free loopback port chosen at run time and is killed by its own PID on drop.
//!   [`FfmpegPublisher`]: the ffmpeg CLI publishing at real time, an independent publisher.
//! - [`cli`]: running the `mpegcoder` command and checking its stderr lines.
//!
//! Missing tools: [`require`] skips a test with a note on a developer machine, and fails it when
//! `CI=true`, so a real-server test never silently passes in CI.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod cli;
pub mod fake_server;
mod servers;
pub mod tls;
pub use servers::{
    FfmpegListener, FfmpegPublisher, GstOptions, GstRtspRecord, ListenerKind, NginxRtmp,
};

/// True when running under CI (`CI=true`): missing servers fail instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Full path of an executable on PATH (or an absolute path that exists).
pub fn which(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.exists().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}

/// Checks that every tool in `tools` exists. When one is missing: under CI this panics (the
/// test fails); elsewhere it prints why the test is skipped and returns false.
pub fn require(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{test}: missing {} (install with `bash .ci/install-deps`)",
        missing.join(", ")
    );
    if in_ci() {
        panic!("{msg}; real-server tests may not skip under CI=true");
    }
    eprintln!("SKIPPED {msg}");
    false
}

/// The tools the RTSP-server tests need.
pub const GST_TOOLS: &[&str] = &["/usr/bin/python3", "ffmpeg", "ffprobe", "gst-launch-1.0"];
/// The tools the RTMP-server tests need.
pub const NGINX_TOOLS: &[&str] = &[
    "ffmpeg",
    "ffprobe",
    "nginx",
    "/usr/lib/nginx/modules/ngx_rtmp_module.so",
];
/// The tools the ffmpeg-listener tests need.
pub const FFMPEG_TOOLS: &[&str] = &["ffmpeg", "ffprobe"];

/// A temporary directory removed on drop (kept when `MPEGCODER_KEEP_TEST_DIRS` is set).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh directory under the system temp dir, world-writable so a server running
    /// as another user (nginx workers run as `nobody`) can write into it.
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "mpegcoder-{tag}-{}-{n}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&path).unwrap();
        set_world_writable(&path);
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("MPEGCODER_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        } else {
            eprintln!("kept {}", self.path.display());
        }
    }
}

fn set_world_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777));
}

/// A free TCP port on loopback (bound, then released; servers bind it right after).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free UDP port on loopback.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True when some socket LISTENs on TCP `port` (read from /proc, so no connection is made:
/// ffmpeg's listeners accept exactly one connection and a probe would use it up).
pub fn tcp_listening(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f)
            .map(|s| {
                s.lines().skip(1).any(|l| {
                    let cols: Vec<&str> = l.split_whitespace().collect();
                    cols.len() > 3 && format!("{} ", cols[1]).ends_with(&needle) && cols[3] == "0A"
                })
            })
            .unwrap_or(false)
    })
}

/// Waits until TCP `port` is listening, or panics after `timeout` with `what` in the message.
pub fn wait_listening(port: u16, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    while !tcp_listening(port) {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until nothing LISTENs on TCP `port` any more, or panics after `timeout`.
pub fn wait_port_free(port: u16, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    while tcp_listening(port) {
        assert!(
            Instant::now() < deadline,
            "{what} still listens on port {port} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs a command to completion, panicking with its stderr when it fails.
pub fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Per-frame MD5 of every decoded video frame of `path`, in output order, as the ffmpeg CLI
/// computes it (`-f framemd5`, hash over the packed planes of each frame).
pub fn framemd5(path: &Path) -> Vec<String> {
    let out = run(Command::new("ffmpeg")
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
        ]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(',').nth(5).map(|h| h.trim().to_string()))
        .collect()
}

/// [`framemd5`] and what ffmpeg reported (`-v error`) while decoding: empty when the video
/// decodes cleanly. One decode for both.
pub fn framemd5_and_errors(path: &Path) -> (Vec<String>, String) {
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
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg: {e}"));
    let mut errors = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() && errors.is_empty() {
        errors = format!("ffmpeg failed ({})", out.status);
    }
    let md5 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(',').nth(5).map(|h| h.trim().to_string()))
        .collect();
    (md5, errors)
}

/// What the ffmpeg CLI reports (`-v error`) while decoding every stream of `path`: empty
/// when it decodes cleanly (a stream starting on a non-key frame, a broken slice or a
/// truncated packet print errors).
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg: {e}"));
    let mut errors = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() && errors.is_empty() {
        errors = format!("ffmpeg failed ({})", out.status);
    }
    errors
}

/// MD5 of every packet of the first audio stream of `path`, in file order, as the ffmpeg CLI
/// computes it with `-c copy -f framemd5` (a hash of each packet's data, no decoding): equal
/// lists mean the same AAC frames arrived, bit for bit. Empty when `path` has no audio.
pub fn audio_framemd5(path: &Path) -> Vec<String> {
    audio_framemd5_of(path, 0)
}

/// [`audio_framemd5`] of the audio stream numbered `n` (from 0, ffmpeg's `0:a:N`).
pub fn audio_framemd5_of(path: &Path, n: usize) -> Vec<String> {
    packet_md5s(path, &format!("a:{n}"), &[])
}

/// [`audio_framemd5`] of an ADTS file (`.aac`): the hash of each frame without its 7-byte
/// header (ffmpeg's `aac_adtstoasc`), so it compares with the packets of an MP4, FLV or
/// Matroska file.
pub fn adts_framemd5(path: &Path) -> Vec<String> {
    packet_md5s(path, "a:0", &["-bsf:a", "aac_adtstoasc"])
}

/// The MD5 of every packet of stream `spec` of `path` (copied, through `bsf`), from
/// `ffmpeg -f framemd5`; empty when there is no such stream.
fn packet_md5s(path: &Path, spec: &str, bsf: &[&str]) -> Vec<String> {
    if !has_stream(path, spec) {
        return Vec::new();
    }
    let out = run(Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-map", &format!("0:{spec}"), "-c", "copy"])
        .args(bsf)
        .args(["-f", "framemd5", "-"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(',').nth(5).map(|h| h.trim().to_string()))
        .collect()
}

/// True when `path` has a stream matching ffprobe's specifier `spec` (e.g. "a:0").
pub fn has_stream(path: &Path, spec: &str) -> bool {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", spec])
        .args(["-show_entries", "stream=index", "-of", "csv=p=0"])
        .arg(path));
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

/// What ffprobe reads of an audio stream, decoding every frame of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioProbe {
    /// ffprobe's codec name ("aac", "opus", ...).
    pub codec: String,
    /// Samples per second.
    pub sample_rate: u32,
    /// Number of channels.
    pub channels: u32,
    /// Frames the decoder read (`-count_frames`).
    pub frames: usize,
}

/// [`AudioProbe`] of the audio stream `spec` ("a:0") of `path`; panics when there is none.
pub fn probe_audio(path: &Path, spec: &str) -> AudioProbe {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", spec, "-count_frames"])
        .args([
            "-show_entries",
            "stream=codec_name,sample_rate,channels,nb_read_frames",
            "-of",
            "json",
        ])
        .arg(path));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &json["streams"][0];
    let number = |v: &serde_json::Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|t| t.parse().ok()))
            .unwrap_or_else(|| panic!("{}: no {spec} stream: {json}", path.display()))
    };
    AudioProbe {
        codec: s["codec_name"].as_str().unwrap_or_default().to_string(),
        sample_rate: number(&s["sample_rate"]) as u32,
        channels: number(&s["channels"]) as u32,
        frames: number(&s["nb_read_frames"]) as usize,
    }
}

/// Timestamps of one packet, in seconds (None where the container has none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacketTime {
    /// Presentation time.
    pub pts: Option<f64>,
    /// Decoding time.
    pub dts: Option<f64>,
}

/// Every packet's timestamps (seconds) of the stream `spec` of `path` ("v:0", "a:0", as in
/// ffprobe's `-select_streams`), in file order.
pub fn packet_times(path: &Path, spec: &str) -> Vec<PacketTime> {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", spec])
        .args(["-show_entries", "packet=pts_time,dts_time", "-of", "json"])
        .arg(path));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let seconds = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    json["packets"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| PacketTime {
                    pts: seconds(&p["pts_time"]),
                    dts: seconds(&p["dts_time"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every packet's key frame flag of the stream `spec` of `path` ("v:0"), in file order, as
/// ffprobe reads the container.
pub fn packet_keys(path: &Path, spec: &str) -> Vec<bool> {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", spec])
        .args(["-show_entries", "packet=flags", "-of", "csv=p=0"])
        .arg(path));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().starts_with('K'))
        .collect()
}

/// How many of a stream's first packets [`first_pts`] looks at: enough to cover the frames a
/// decoder reorders (B-frames may present before the key frame that is stored first).
const FIRST_PACKETS: usize = 16;

/// The first presentation time (seconds) of the first video stream and of the first audio
/// stream of `path`, read with ffprobe: the minimum pts among each stream's first packets
/// (None for a stream that is absent or has no pts).
pub fn first_pts(path: &Path) -> (Option<f64>, Option<f64>) {
    let first = |spec: &str| {
        packet_times(path, spec)
            .iter()
            .take(FIRST_PACKETS)
            .filter_map(|t| t.pts)
            .reduce(f64::min)
    };
    (first("v:0"), first("a:0"))
}

/// Checks that the audio packets that arrived (`actual`, per-packet MD5s) are exactly the
/// source's (`expected`), in order. On failure the message gives both counts, the first index
/// where they differ and, when the first arrived packet is a later source packet, which one.
pub fn assert_audio_match(expected: &[String], actual: &[String], what: &str) {
    if expected == actual {
        return;
    }
    let mut report = format!(
        "{what}: {} audio packets arrived, expected {}",
        actual.len(),
        expected.len()
    );
    match expected.iter().zip(actual).position(|(a, b)| a != b) {
        Some(i) => {
            let _ = write!(report, "; first mismatch at packet {i}");
        }
        None if actual.len() < expected.len() => {
            let _ = write!(
                report,
                "; the arrived packets are the source's first {}, the last {} are missing",
                actual.len(),
                expected.len() - actual.len()
            );
        }
        None => {
            let _ = write!(
                report,
                "; all source packets arrived, then {} more",
                actual.len() - expected.len()
            );
        }
    }
    if let Some(first) = actual.first() {
        match expected.iter().position(|h| h == first) {
            Some(0) => {}
            Some(k) => {
                let _ = write!(report, "; the first arrived packet is source packet {k}");
            }
            None => report.push_str("; the first arrived packet matches no source packet"),
        }
    }
    panic!("{report}");
}

/// Checks that `actual` is a contiguous run of `expected` (any start, any end: a reader that
/// joined a live stream late and left early) of at least `min_len` items; returns the index in
/// `expected` where the run starts.
pub fn assert_contiguous_run(
    expected: &[String],
    actual: &[String],
    min_len: usize,
    what: &str,
) -> usize {
    assert!(
        actual.len() >= min_len,
        "{what}: {} items arrived, expected at least {min_len}",
        actual.len()
    );
    let Some(first) = actual.first() else {
        return 0;
    };
    let start = expected
        .iter()
        .position(|h| h == first)
        .unwrap_or_else(|| panic!("{what}: first arrived item matches no source item"));
    let run = &expected[start..];
    assert!(
        run.len() >= actual.len(),
        "{what}: {} items arrived from source item {start}, the source has only {} from there",
        actual.len(),
        run.len()
    );
    if let Some(i) = run.iter().zip(actual).position(|(a, b)| a != b) {
        panic!(
            "{what}: arrived item {i} is not source item {} (the run started at source item \
             {start})",
            start + i
        );
    }
    start
}

/// Checks that `actual` equals `expected` from the first frame of `actual` on: `actual` must be
/// a contiguous run of `expected` (a reader joining mid-stream starts at a later key frame).
/// With `from_start`, `actual` must equal `expected` exactly.
pub fn assert_frames_match(expected: &[String], actual: &[String], from_start: bool, what: &str) {
    assert!(!actual.is_empty(), "{what}: no frames arrived");
    let offset = if from_start {
        0
    } else {
        expected
            .iter()
            .position(|h| h == &actual[0])
            .unwrap_or_else(|| panic!("{what}: first arrived frame matches no source frame"))
    };
    let mut report = String::new();
    let tail = &expected[offset..];
    if actual.len() != tail.len() {
        let _ = write!(
            report,
            "{what}: {} frames arrived, expected {} (from source frame {offset}); ",
            actual.len(),
            tail.len()
        );
    }
    let mismatches: Vec<usize> = tail
        .iter()
        .zip(actual)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i + offset)
        .collect();
    if !mismatches.is_empty() {
        let _ = write!(
            report,
            "{what}: {} frames differ from the source, first at source frame {}",
            mismatches.len(),
            mismatches[0]
        );
    }
    assert!(report.is_empty(), "{report}");
}

/// One stored packet of a clip, as the MP4 holds it: for video 4-byte length-prefixed NAL
/// units, for audio one raw AAC frame (no ADTS header).
#[derive(Debug, Clone)]
pub struct ClipPacket {
    /// Presentation timestamp in the stream's time base.
    pub pts: i64,
    /// Decoding timestamp in the stream's time base.
    pub dts: i64,
    /// Key frame (every AAC frame is one).
    pub key: bool,
    /// The packet's data.
    pub data: Vec<u8>,
}

/// The audio of a generated clip: AAC-LC from ffmpeg's native `aac` encoder, fed by a sine
/// tone per channel (440 Hz, 660 Hz, 880 Hz, ...), as long as the video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpec {
    /// Samples per second.
    pub sample_rate: u32,
    /// Number of channels.
    pub channels: u32,
    /// Bit rate in bits per second.
    pub bit_rate: u32,
}

impl Default for AudioSpec {
    /// 48 kHz stereo at 96 kb/s.
    fn default() -> Self {
        AudioSpec {
            sample_rate: 48_000,
            channels: 2,
            bit_rate: 96_000,
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct ClipSpec {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Number of frames.
    pub frames: u32,
    /// Maximum consecutive B-frames (0 = none).
    pub bframes: u32,
    /// Key frame interval in frames.
    pub gop: u32,
    /// An AAC audio track as long as the video (None: video only).
    pub audio: Option<AudioSpec>,
}

impl Default for ClipSpec {
    fn default() -> Self {
        ClipSpec {
            width: 320,
            height: 240,
            fps: 30,
            frames: 60,
            bframes: 2,
            gop: 15,
            audio: None,
        }
    }
}

impl ClipSpec {
    /// The same clip, `frames` long.
    pub fn with_frames(self, frames: u32) -> ClipSpec {
        ClipSpec { frames, ..self }
    }

    /// The same clip with a key frame every `gop` frames.
    pub fn with_gop(self, gop: u32) -> ClipSpec {
        ClipSpec { gop, ..self }
    }

    /// The same clip with an audio track.
    pub fn with_audio(self, audio: AudioSpec) -> ClipSpec {
        ClipSpec {
            audio: Some(audio),
            ..self
        }
    }
}

/// A generated H.264 clip in MP4 (with AAC audio when its spec asks for it), with its packets,
/// extradata and hashes.
#[derive(Debug)]
pub struct Clip {
    /// The MP4 file.
    pub mp4: PathBuf,
    /// The spec it was made from.
    pub spec: ClipSpec,
    /// Time base of video packet timestamps (num, den).
    pub time_base: (u32, u32),
    /// The avcC record.
    pub extradata: Vec<u8>,
    /// Video packets in decoding order.
    pub packets: Vec<ClipPacket>,
    /// MD5 of every decoded frame, in presentation order (ffmpeg's framemd5).
    pub framemd5: Vec<String>,
    /// Time base of audio packet timestamps (num, den); None without audio.
    pub audio_time_base: Option<(u32, u32)>,
    /// The AudioSpecificConfig (empty without audio).
    pub audio_extradata: Vec<u8>,
    /// Audio packets (raw AAC frames) in file order; the first carries the encoder's priming
    /// (its pts is negative: the MP4's edit list skips those samples).
    pub audio_packets: Vec<ClipPacket>,
    /// MD5 of every audio packet (see [`audio_framemd5`]).
    pub audio_md5: Vec<String>,
    /// First audio presentation time minus first video presentation time, in seconds, as
    /// ffprobe reads the MP4 (see [`first_pts`]); None without audio.
    pub audio_start_offset: Option<f64>,
}

impl Clip {
    /// Generates a clip into `dir` with ffmpeg's `testsrc2` and libx264 (preset veryfast), and
    /// reads its packets back with ffprobe.
    pub fn generate(dir: &Path, spec: ClipSpec) -> Clip {
        if let Some(audio) = spec.audio {
            return Clip::generate_av(dir, spec, audio);
        }
        let mp4 = dir.join(format!(
            "clip-{}x{}-{}fps-{}f-b{}-g{}.mp4",
            spec.width, spec.height, spec.fps, spec.frames, spec.bframes, spec.gop
        ));
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
            .arg(format!(
                "testsrc2=size={}x{}:rate={}",
                spec.width, spec.height, spec.fps
            ))
            .args(["-frames:v", &spec.frames.to_string()])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            ])
            .args([
                "-bf",
                &spec.bframes.to_string(),
                "-g",
                &spec.gop.to_string(),
            ])
            .args(["-keyint_min", &spec.gop.to_string(), "-sc_threshold", "0"])
            .arg(&mp4));
        Clip::load(&mp4, spec)
    }

    /// Generates a clip with video as [`Clip::generate`] does and an AAC track of the same
    /// duration. Both sources are cut by count (`trim` frames, `atrim` samples) rather than
    /// with `-frames:v`, which would end the audio together with the video's last input frame,
    /// before the encoders drain.
    fn generate_av(dir: &Path, spec: ClipSpec, audio: AudioSpec) -> Clip {
        let mp4 = dir.join(format!(
            "clip-{}x{}-{}fps-{}f-b{}-g{}-aac{}x{}.mp4",
            spec.width,
            spec.height,
            spec.fps,
            spec.frames,
            spec.bframes,
            spec.gop,
            audio.sample_rate,
            audio.channels
        ));
        let tones: Vec<String> = (0..audio.channels.max(1))
            .map(|c| format!("0.4*sin(2*PI*{}*t)", 440 + 220 * c))
            .collect();
        let samples = u64::from(spec.frames) * u64::from(audio.sample_rate) / u64::from(spec.fps);
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
            .arg(format!(
                "testsrc2=size={}x{}:rate={},trim=end_frame={}",
                spec.width, spec.height, spec.fps, spec.frames
            ))
            .args(["-f", "lavfi", "-i"])
            .arg(format!(
                "aevalsrc=exprs={}:s={},atrim=end_sample={samples}",
                tones.join("|"),
                audio.sample_rate
            ))
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            ])
            .args([
                "-bf",
                &spec.bframes.to_string(),
                "-g",
                &spec.gop.to_string(),
            ])
            .args(["-keyint_min", &spec.gop.to_string(), "-sc_threshold", "0"])
            .args(["-c:a", "aac", "-b:a", &audio.bit_rate.to_string()])
            .arg(&mp4));
        Clip::load(&mp4, spec)
    }

    /// Reads an existing MP4's packets and hashes: its first video stream and, if it has one,
    /// its first audio stream.
    pub fn load(mp4: &Path, spec: ClipSpec) -> Clip {
        let out = run(Command::new("ffprobe")
            .args(["-v", "error"])
            .args([
                "-show_streams",
                "-show_packets",
                "-show_data",
                "-of",
                "json",
            ])
            .arg(mp4));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let streams = json["streams"].as_array().cloned().unwrap_or_default();
        let find = |kind: &str| {
            streams
                .iter()
                .find(|s| s["codec_type"].as_str() == Some(kind))
        };
        let video = find("video").unwrap_or_else(|| panic!("{} has no video", mp4.display()));
        let audio = find("audio");
        let packets_of = |stream: &serde_json::Value| -> Vec<ClipPacket> {
            let index = stream["index"].as_i64();
            json["packets"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["stream_index"].as_i64() == index)
                .map(|p| ClipPacket {
                    pts: p["pts"].as_i64().unwrap(),
                    dts: p["dts"].as_i64().unwrap(),
                    key: p["flags"].as_str().unwrap_or("").starts_with('K'),
                    data: parse_hexdump(p["data"].as_str().unwrap()),
                })
                .collect()
        };
        let (v_first, a_first) = if audio.is_some() {
            first_pts(mp4)
        } else {
            (None, None)
        };
        Clip {
            mp4: mp4.to_path_buf(),
            spec,
            time_base: time_base_of(video),
            extradata: parse_hexdump(video["extradata"].as_str().unwrap_or("")),
            packets: packets_of(video),
            framemd5: framemd5(mp4),
            audio_time_base: audio.map(time_base_of),
            audio_extradata: audio
                .map(|a| parse_hexdump(a["extradata"].as_str().unwrap_or("")))
                .unwrap_or_default(),
            audio_packets: audio.map(packets_of).unwrap_or_default(),
            audio_md5: if audio.is_some() {
                audio_framemd5(mp4)
            } else {
                Vec::new()
            },
            audio_start_offset: v_first.zip(a_first).map(|(v, a)| a - v),
        }
    }

    /// The positions of the key frames among the decoded frames (presentation order, the
    /// order of [`Clip::framemd5`]).
    pub fn key_frame_positions(&self) -> Vec<usize> {
        let mut by_pts: Vec<&ClipPacket> = self.packets.iter().collect();
        by_pts.sort_by_key(|p| p.pts);
        by_pts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.key)
            .map(|(i, _)| i)
            .collect()
    }

    /// True when some packet's pts differs from its dts (the clip really has B-frames).
    pub fn has_bframes(&self) -> bool {
        self.packets.iter().any(|p| p.pts != p.dts)
    }
}

/// A stream's `time_base` ("1/15360") from ffprobe's JSON.
fn time_base_of(stream: &serde_json::Value) -> (u32, u32) {
    let tb = stream["time_base"].as_str().unwrap();
    let (num, den) = tb.split_once('/').unwrap();
    (num.parse().unwrap(), den.parse().unwrap())
}

/// Decodes ffprobe's `-show_data` hex dump ("00000000: 0164 000d ...  ascii").
fn parse_hexdump(dump: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in dump.lines() {
        let Some((_, rest)) = line.split_once(": ") else {
            continue;
        };
        // 8 groups of up to 4 hex digits, each followed by a space: 40 characters.
        let hex: String = rest
            .chars()
            .take(40)
            .filter(|c| !c.is_whitespace())
            .collect();
        for i in (0..hex.len() / 2 * 2).step_by(2) {
            out.push(u8::from_str_radix(&hex[i..i + 2], 16).unwrap());
        }
    }
    out
}

/// Result of ffprobe's check of a recording's packet timestamps.
#[derive(Debug, Clone)]
pub struct TimestampReport {
    /// Number of video packets.
    pub packets: usize,
    /// Packets whose DTS is not greater than the previous packet's DTS.
    pub non_monotonic_dts: usize,
    /// Packets whose PTS is below their DTS.
    pub pts_below_dts: usize,
}

/// Reads every video packet's timestamps of `path` with ffprobe and counts DTS that do not
/// increase and PTS below DTS.
pub fn check_timestamps(path: &Path) -> TimestampReport {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["packet=pts,dts", "-of", "csv=p=0"])
        .arg(path));
    let mut prev: Option<i64> = None;
    let mut report = TimestampReport {
        packets: 0,
        non_monotonic_dts: 0,
        pts_below_dts: 0,
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut cols = line.split(',');
        let pts = cols.next().and_then(|v| v.trim().parse::<i64>().ok());
        let dts = cols.next().and_then(|v| v.trim().parse::<i64>().ok());
        report.packets += 1;
        if let Some(d) = dts {
            if prev.is_some_and(|p| d <= p) {
                report.non_monotonic_dts += 1;
            }
            if pts.is_some_and(|p| p < d) {
                report.pts_below_dts += 1;
            }
            prev = Some(d);
        }
    }
    report
}

/// A child process killed (by its own PID) when dropped, with its stderr going to a log file.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ServerProcess {
    /// Spawns `cmd` with stdin closed and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> ServerProcess {
        let err = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        ServerProcess {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// Waits up to `timeout` for a line on the child's stdout starting with `prefix`.
    pub fn wait_stdout_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let stdout = self.child.stdout.take().unwrap_or_else(|| {
            panic!("{}: stdout not captured", self.name);
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let prefix_owned = prefix.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with(&prefix_owned) || line.starts_with("ERROR") {
                    let _ = tx.send(line);
                    return;
                }
            }
        });
        match rx.recv_timeout(timeout) {
            Ok(line) if line.starts_with(prefix) => line,
            Ok(line) => panic!(
                "{} failed to start: {line}; log: {}",
                self.name,
                self.log_text()
            ),
            Err(_) => panic!(
                "{} did not report {prefix:?} within {timeout:?}; log: {}",
                self.name,
                self.log_text()
            ),
        }
    }

    /// Waits up to `timeout` for the child to exit on its own; returns whether it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the child has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asks the child to stop (SIGTERM), then kills it if it has not exited after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if !self.wait_exit(grace) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// The PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log so far (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

/// Mean PSNR (dB, over Y, U and V) of `decoded` against `reference`, frame by frame in output
/// order (both re-timed to frame numbers, so container time bases do not matter), computed by
/// ffmpeg's `psnr` filter. Also returns the number of frames compared.
pub fn psnr(decoded: &Path, reference: &Path) -> (f64, usize) {
    let out = run(Command::new("ffmpeg")
        .args(["-v", "info", "-nostdin", "-i"])
        .arg(decoded)
        .arg("-i")
        .arg(reference)
        .args([
            "-lavfi",
            "[0:v]settb=1/25,setpts=N[a];[1:v]settb=1/25,setpts=N[b];[a][b]psnr",
            "-fps_mode",
            "passthrough",
            "-f",
            "null",
            "-",
        ]));
    let log = String::from_utf8_lossy(&out.stderr);
    let line = log
        .lines()
        .find(|l| l.contains("PSNR") && l.contains("average:"))
        .unwrap_or_else(|| panic!("no PSNR in ffmpeg's output: {log}"));
    let avg = line
        .split("average:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("cannot read the PSNR in {line:?}"));
    (avg, framemd5(decoded).len())
}

/// How far a recorded start offset (first audio pts minus first video pts) may be from the
/// source's. Matroska and FLV keep milliseconds, so rounding alone moves it by up to 2 ms.
/// An AAC frame lasts 21.3 ms at 48 kHz, and the A/V clip's own offset is one frame (the
/// encoder's priming): a server timing each stream from its first arrival instead of the
/// sender reports records some 20 ms off (measured: between 0 and +20 ms instead of -21 ms),
/// which this bound catches.
pub const AV_OFFSET_TOLERANCE_S: f64 = 0.005;

/// The 2 s A/V clip of the audio tests (60 frames at 30 fps with B-frames, 48 kHz stereo
/// AAC of 95 frames, the first the encoder's priming 21.3 ms before the video), checked.
pub fn av_clip(dir: &Path) -> Clip {
    let clip = Clip::generate(dir, ClipSpec::default().with_audio(AudioSpec::default()));
    assert!(clip.has_bframes());
    assert_eq!(clip.framemd5.len(), 60);
    assert_eq!(clip.audio_time_base, Some((1, 48_000)));
    // 2 s of 1024-sample frames, plus the frame of encoder priming.
    assert_eq!(clip.audio_packets.len(), 95);
    assert_eq!(clip.audio_md5.len(), clip.audio_packets.len());
    assert_distinct(&clip.audio_md5);
    assert!(!clip.audio_extradata.is_empty());
    let offset = clip.audio_start_offset.unwrap();
    assert!(
        (offset + 1024.0 / 48_000.0).abs() < 1e-6,
        "source start offset {offset}"
    );
    clip
}

/// A recording's start offset (first audio pts minus first video pts), in seconds.
pub fn start_offset(rec: &Path, what: &str) -> f64 {
    let (v, a) = first_pts(rec);
    let (v, a) = (
        v.unwrap_or_else(|| panic!("{what}: no video pts")),
        a.unwrap_or_else(|| panic!("{what}: no audio pts")),
    );
    a - v
}

/// Checks that a recording's start offset is the clip's within [`AV_OFFSET_TOLERANCE_S`].
pub fn assert_start_offset(clip: &Clip, rec: &Path, what: &str) {
    let source = clip.audio_start_offset.unwrap();
    let got = start_offset(rec, what);
    assert!(
        (got - source).abs() <= AV_OFFSET_TOLERANCE_S,
        "{what}: recorded start offset {:.1} ms, source {:.1} ms",
        got * 1e3,
        source * 1e3
    );
}

/// Checks that a recording's 48 kHz AAC timestamps increase by one frame each (within the
/// containers' millisecond rounding): no packet lost its timestamp or was re-timed.
pub fn assert_audio_steady(rec: &Path, what: &str) {
    let times = packet_times(rec, "a:0");
    let frame = 1024.0 / 48_000.0;
    for (i, w) in times.windows(2).enumerate() {
        let (a, b) = (w[0].pts.unwrap(), w[1].pts.unwrap());
        assert!(
            ((b - a) - frame).abs() <= 0.0015,
            "{what}: audio packet {} at {b:.4} s follows {a:.4} s (expected +{frame:.4} s)",
            i + 1
        );
    }
}

/// Checks that every hash differs from the others, so a hash names one source packet or frame
/// (the clip's tones never make the AAC encoder repeat a frame).
pub fn assert_distinct(hashes: &[String]) {
    let unique: std::collections::HashSet<&String> = hashes.iter().collect();
    assert_eq!(unique.len(), hashes.len(), "repeated hashes");
}
