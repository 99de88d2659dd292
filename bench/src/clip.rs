//! The benchmark clips: ffmpeg's `testsrc2` encoded with libx264 (preset veryfast, with
//! B-frames, a fixed GOP), made once and cached by their parameters; and its audio+video
//! variant, the same H.264 stream (copied) next to a sine tone encoded with ffmpeg's native
//! AAC encoder.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// What a clip is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClipSpec {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Length in seconds.
    pub seconds: u32,
    /// Maximum consecutive B-frames.
    pub bframes: u32,
    /// Key frame interval in frames.
    pub gop: u32,
}

impl ClipSpec {
    /// 720p30 with 2 B-frames and a key frame every 2 s.
    pub fn hd(seconds: u32) -> ClipSpec {
        ClipSpec {
            width: 1280,
            height: 720,
            fps: 30,
            seconds,
            bframes: 2,
            gop: 60,
        }
    }

    /// Number of frames.
    pub fn frames(&self) -> u32 {
        self.fps * self.seconds
    }

    /// The cache file name, which names every parameter.
    pub fn file_name(&self) -> String {
        format!(
            "clip-{}x{}-{}fps-{}s-b{}-g{}.mp4",
            self.width, self.height, self.fps, self.seconds, self.bframes, self.gop
        )
    }

    /// The ffmpeg arguments that make the clip into `out`.
    pub fn ffmpeg_args(&self, out: &Path) -> Vec<String> {
        let mut a: Vec<String> = [
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(format!(
            "testsrc2=size={}x{}:rate={}",
            self.width, self.height, self.fps
        ));
        for (k, v) in [
            ("-frames:v", self.frames().to_string()),
            ("-c:v", "libx264".into()),
            ("-preset", "veryfast".into()),
            ("-pix_fmt", "yuv420p".into()),
            ("-bf", self.bframes.to_string()),
            ("-g", self.gop.to_string()),
            ("-keyint_min", self.gop.to_string()),
            ("-sc_threshold", "0".into()),
        ] {
            a.push(k.into());
            a.push(v);
        }
        a.push(out.display().to_string());
        a
    }
}

/// The clip for `spec` in `dir`: reused when a file with its frame count exists, made with
/// `ffmpeg` otherwise.
pub fn ensure(ffmpeg: &Path, ffprobe: &Path, dir: &Path, spec: ClipSpec) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(spec.file_name());
    if path.exists() && frame_count(ffprobe, &path).ok() == Some(u64::from(spec.frames())) {
        return Ok(path);
    }
    let partial = dir.join(format!("partial-{}", spec.file_name()));
    let status = Command::new(ffmpeg)
        .args(spec.ffmpeg_args(&partial))
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", ffmpeg.display()))?;
    if !status.success() {
        bail!(
            "ffmpeg could not make the clip {} ({status})",
            path.display()
        );
    }
    std::fs::rename(&partial, &path)?;
    let n = frame_count(ffprobe, &path)?;
    if n != u64::from(spec.frames()) {
        bail!(
            "{} has {n} frames, expected {}",
            path.display(),
            spec.frames()
        );
    }
    Ok(path)
}

/// The number of video packets in `path`, counted by ffprobe.
pub fn frame_count(ffprobe: &Path, path: &Path) -> Result<u64> {
    let out = Command::new(ffprobe)
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", ffprobe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .with_context(|| format!("ffprobe's packet count for {}: {text:?}", path.display()))
}

/// The audio of the audio+video clip: a 440 Hz sine, AAC (ffmpeg's native encoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AudioSpec {
    /// Sampling rate, Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u32,
    /// Bit rate, kb/s.
    pub kbps: u32,
}

impl AudioSpec {
    /// 48 kHz stereo at 128 kb/s.
    pub const AAC_48K_STEREO: AudioSpec = AudioSpec {
        sample_rate: 48_000,
        channels: 2,
        kbps: 128,
    };

    /// The cache file name of `video`'s audio+video variant.
    pub fn file_name(&self, video: &ClipSpec) -> String {
        let v = video.file_name();
        let stem = v.strip_suffix(".mp4").unwrap_or(&v);
        format!(
            "{stem}-aac{}-{}ch-{}k.mp4",
            self.sample_rate, self.channels, self.kbps
        )
    }

    /// The ffmpeg arguments that mux `video`'s H.264 stream (copied) with `seconds` of the
    /// tone into `out`.
    pub fn ffmpeg_args(&self, video: &Path, seconds: u32, out: &Path) -> Vec<String> {
        let mut a: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(video.display().to_string());
        a.push("-f".into());
        a.push("lavfi".into());
        a.push("-i".into());
        a.push(format!(
            "sine=frequency=440:sample_rate={}:duration={seconds}",
            self.sample_rate
        ));
        for (k, v) in [
            ("-map", "0:v:0".to_string()),
            ("-map", "1:a:0".into()),
            ("-c:v", "copy".into()),
            ("-c:a", "aac".into()),
            ("-b:a", format!("{}k", self.kbps)),
            ("-ac", self.channels.to_string()),
        ] {
            a.push(k.into());
            a.push(v);
        }
        a.push(out.display().to_string());
        a
    }
}

/// An audio+video clip as ffprobe reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AvClip {
    /// The file.
    pub path: PathBuf,
    /// What its audio was made as.
    pub audio_spec: AudioSpec,
    /// Video packets.
    pub video_packets: u64,
    /// Audio packets (AAC frames), the encoder's priming frame included.
    pub audio_packets: u64,
    /// The first video packet's decoding time, s (negative with B-frames).
    pub video_first_dts_s: f64,
    /// The first video packet's presentation time, s.
    pub video_first_pts_s: f64,
    /// The first audio packet's presentation time, s (negative: the encoder's priming).
    pub audio_first_pts_s: f64,
    /// Samples per AAC frame (the audio packets' usual duration).
    pub audio_frame_samples: u32,
    /// Audio bit rate ffprobe reports, b/s.
    pub audio_bit_rate: Option<u64>,
}

impl AvClip {
    /// The duration of one audio frame, s.
    pub fn audio_frame_s(&self) -> f64 {
        f64::from(self.audio_frame_samples) / f64::from(self.audio_spec.sample_rate.max(1))
    }

    /// Where the source's first audio frame sits against its first video frame on the
    /// decoding timeline, s: the start offset a publisher that paces both tracks on one
    /// timeline reproduces on the wire, and the offset of the first FLV audio timestamp from
    /// the first video one (FLV video timestamps are decoding times).
    pub fn source_av_offset_s(&self) -> f64 {
        self.audio_first_pts_s - self.video_first_dts_s
    }

    /// The first audio frame's presentation time less the first video packet's, s: what RTP
    /// timestamps (presentation times) mapped through the sender reports should show.
    pub fn source_av_pts_offset_s(&self) -> f64 {
        self.audio_first_pts_s - self.video_first_pts_s
    }
}

/// The audio+video variant of the clip `video` (made for `spec`): reused when a file with
/// the expected packets exists, made with `ffmpeg` otherwise.
pub fn ensure_av(
    ffmpeg: &Path,
    ffprobe: &Path,
    dir: &Path,
    video: &Path,
    spec: ClipSpec,
    audio: AudioSpec,
) -> Result<AvClip> {
    let path = dir.join(audio.file_name(&spec));
    // At least the samples of the clip's length, in 1024-sample frames.
    let min_audio = u64::from(spec.seconds) * u64::from(audio.sample_rate) / 1024;
    let usable = |c: &AvClip| {
        c.video_packets == u64::from(spec.frames())
            && c.audio_packets >= min_audio
            && c.audio_frame_samples > 0
    };
    if path.exists() {
        if let Ok(c) = probe_av(ffprobe, &path, audio) {
            if usable(&c) {
                return Ok(c);
            }
        }
    }
    let partial = dir.join(format!("partial-{}", audio.file_name(&spec)));
    let status = Command::new(ffmpeg)
        .args(audio.ffmpeg_args(video, spec.seconds, &partial))
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", ffmpeg.display()))?;
    if !status.success() {
        bail!(
            "ffmpeg could not make the clip {} ({status})",
            path.display()
        );
    }
    std::fs::rename(&partial, &path)?;
    let c = probe_av(ffprobe, &path, audio)?;
    if !usable(&c) {
        bail!(
            "{} has {} video and {} audio packets, expected {} and at least {min_audio}",
            path.display(),
            c.video_packets,
            c.audio_packets,
            spec.frames()
        );
    }
    Ok(c)
}

/// Reads the packets of an audio+video clip with ffprobe.
pub fn probe_av(ffprobe: &Path, path: &Path, audio_spec: AudioSpec) -> Result<AvClip> {
    let out = Command::new(ffprobe)
        .args(["-v", "error", "-of", "json", "-show_entries"])
        .arg("stream=index,codec_type,bit_rate:packet=stream_index,pts,dts_time,pts_time,duration")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", ffprobe.display()))?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("ffprobe's packets of {}", path.display()))?;
    let streams = json["streams"].as_array().cloned().unwrap_or_default();
    let index_of = |kind: &str| {
        streams
            .iter()
            .find(|s| s["codec_type"] == kind)
            .and_then(|s| s["index"].as_u64())
    };
    let (Some(v), Some(a)) = (index_of("video"), index_of("audio")) else {
        bail!("{} lacks a video or an audio stream", path.display());
    };
    let audio_bit_rate = streams
        .iter()
        .find(|s| s["index"].as_u64() == Some(a))
        .and_then(|s| s["bit_rate"].as_str())
        .and_then(|b| b.parse().ok());
    let time =
        |p: &serde_json::Value, key: &str| p[key].as_str().and_then(|t| t.parse::<f64>().ok());
    let packets = json["packets"].as_array().cloned().unwrap_or_default();
    let of = |index: u64| {
        packets
            .iter()
            .filter(move |p| p["stream_index"].as_u64() == Some(index))
    };
    let mut durations: Vec<u64> = of(a).filter_map(|p| p["duration"].as_u64()).collect();
    durations.sort_unstable();
    Ok(AvClip {
        path: path.to_path_buf(),
        audio_spec,
        video_packets: of(v).count() as u64,
        audio_packets: of(a).count() as u64,
        video_first_dts_s: of(v)
            .next()
            .and_then(|p| time(p, "dts_time"))
            .context("no video packet with a decoding time")?,
        video_first_pts_s: of(v)
            .next()
            .and_then(|p| time(p, "pts_time"))
            .context("no video packet with a presentation time")?,
        audio_first_pts_s: of(a)
            .next()
            .and_then(|p| time(p, "pts_time"))
            .context("no audio packet with a presentation time")?,
        // The most common duration (in the audio time base, 1 / sampling rate, for MP4).
        audio_frame_samples: durations
            .get(durations.len() / 2)
            .and_then(|d| u32::try_from(*d).ok())
            .unwrap_or(0),
        audio_bit_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arguments() {
        let s = ClipSpec::hd(20);
        assert_eq!(s.frames(), 600);
        assert_eq!(s.file_name(), "clip-1280x720-30fps-20s-b2-g60.mp4");
        let a = s.ffmpeg_args(Path::new("/x/out.mp4"));
        assert!(a.windows(2).any(|w| w[0] == "-bf" && w[1] == "2"));
        assert!(a.contains(&"testsrc2=size=1280x720:rate=30".to_string()));
        assert_eq!(a.last().map(String::as_str), Some("/x/out.mp4"));
    }

    #[test]
    fn the_av_variant_copies_the_video_and_names_the_audio() {
        let s = ClipSpec::hd(20);
        let a = AudioSpec::AAC_48K_STEREO;
        assert_eq!(
            a.file_name(&s),
            "clip-1280x720-30fps-20s-b2-g60-aac48000-2ch-128k.mp4"
        );
        let args = a
            .ffmpeg_args(Path::new("/x/v.mp4"), 20, Path::new("/x/av.mp4"))
            .join(" ");
        assert!(
            args.contains(
                "-i /x/v.mp4 -f lavfi -i sine=frequency=440:sample_rate=48000:duration=20"
            ),
            "{args}"
        );
        assert!(
            args.ends_with("-map 0:v:0 -map 1:a:0 -c:v copy -c:a aac -b:a 128k -ac 2 /x/av.mp4"),
            "{args}"
        );
    }
}
