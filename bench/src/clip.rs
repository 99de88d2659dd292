//! The benchmark clips: ffmpeg's `testsrc2` encoded with libx264 (preset veryfast, with
//! B-frames, a fixed GOP), made once and cached by their parameters.

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
}
