//! One publisher process, one stream: `mpegcoder push` and `ffmpeg -re` publish the same clip
//! to a sink of the bench, which records when each frame arrives; GNU time measures the
//! process.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::process::{load_average, Timed, Usage};
use crate::sink::{seconds_between, Sink, SinkKind};
use crate::stats::Timing;

/// Who publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// `mpegcoder push`.
    Ours,
    /// `ffmpeg -re`.
    Ffmpeg,
}

/// Pass-through or re-encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The H.264 packets pass through.
    Copy,
    /// Decode and encode with libx264 (preset veryfast).
    Libx264,
}

impl Mode {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Copy => "copy",
            Mode::Libx264 => "libx264 veryfast",
        }
    }
}

/// Protocol and lower transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proto {
    /// RTSP RECORD, RTP interleaved on the TCP connection.
    RtspTcp,
    /// RTSP RECORD, RTP over UDP.
    RtspUdp,
    /// RTMP publish.
    Rtmp,
}

impl Proto {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Proto::RtspTcp => "RTSP/TCP",
            Proto::RtspUdp => "RTSP/UDP",
            Proto::Rtmp => "RTMP",
        }
    }

    fn sink(self) -> SinkKind {
        match self {
            Proto::RtspTcp | Proto::RtspUdp => SinkKind::Rtsp,
            Proto::Rtmp => SinkKind::Rtmp,
        }
    }
}

/// The programs and settings of the side-by-side runs.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The `mpegcoder` binary.
    pub mpegcoder: PathBuf,
    /// The `ffmpeg` binary.
    pub ffmpeg: PathBuf,
    /// GNU time.
    pub time: PathBuf,
    /// The clip.
    pub clip: PathBuf,
    /// Its frame count.
    pub frames: usize,
    /// Its frame rate.
    pub fps: f64,
    /// Its GOP and B-frames, passed to ffmpeg's libx264 (ours inherits them from the clip).
    pub gop: u32,
    /// See `gop`.
    pub bframes: u32,
    /// Bit rate for libx264 on both sides, e.g. `2M`.
    pub bitrate: String,
    /// Directory for logs.
    pub logs: PathBuf,
}

impl Setup {
    /// The command line (program, arguments) of one side.
    pub fn command(
        &self,
        side: Side,
        mode: Mode,
        proto: Proto,
        url: &str,
    ) -> (PathBuf, Vec<String>) {
        let clip = self.clip.display().to_string();
        let mut a: Vec<String> = Vec::new();
        let mut push = |s: &str| a.push(s.to_string());
        match side {
            Side::Ours => {
                for s in ["push", &clip, url, "--quiet"] {
                    push(s);
                }
                match mode {
                    Mode::Copy => ["--codec", "copy"].iter().for_each(|s| push(s)),
                    Mode::Libx264 => {
                        for s in ["--codec", "libx264", "--preset", "veryfast", "--bitrate"] {
                            push(s);
                        }
                        push(&self.bitrate);
                    }
                }
                match proto {
                    Proto::RtspTcp => ["--transport", "tcp"].iter().for_each(|s| push(s)),
                    Proto::RtspUdp => ["--transport", "udp"].iter().for_each(|s| push(s)),
                    Proto::Rtmp => {}
                }
                (self.mpegcoder.clone(), a)
            }
            Side::Ffmpeg => {
                for s in [
                    "-hide_banner",
                    "-nostdin",
                    "-loglevel",
                    "error",
                    "-re",
                    "-i",
                    &clip,
                    "-map",
                    "0:v:0",
                ] {
                    push(s);
                }
                match mode {
                    Mode::Copy => ["-c:v", "copy"].iter().for_each(|s| push(s)),
                    Mode::Libx264 => {
                        for s in ["-c:v", "libx264", "-preset", "veryfast", "-b:v"] {
                            push(s);
                        }
                        push(&self.bitrate);
                        push("-g");
                        push(&self.gop.to_string());
                        push("-bf");
                        push(&self.bframes.to_string());
                    }
                }
                match proto {
                    Proto::RtspTcp => {
                        for s in ["-f", "rtsp", "-rtsp_transport", "tcp"] {
                            push(s);
                        }
                    }
                    Proto::RtspUdp => {
                        for s in ["-f", "rtsp", "-rtsp_transport", "udp"] {
                            push(s);
                        }
                    }
                    Proto::Rtmp => ["-f", "flv"].iter().for_each(|s| push(s)),
                }
                push(url);
                (self.ffmpeg.clone(), a)
            }
        }
    }
}

/// The outcome of one publisher run.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Who published.
    pub side: Side,
    /// Copy or libx264.
    pub mode: Mode,
    /// Protocol.
    pub proto: Proto,
    /// Repetition, from 0.
    pub repetition: usize,
    /// The command line.
    pub command: Vec<String>,
    /// Frames the sink received.
    pub frames_received: usize,
    /// Frames in the clip.
    pub frames_expected: usize,
    /// The publisher ended its session properly (TEARDOWN, deleteStream).
    pub ended_cleanly: bool,
    /// Why the sink's session ended abnormally, if it did.
    pub sink_error: Option<String>,
    /// Wire timing.
    pub timing: Option<Timing>,
    /// Process start → first complete frame at the sink, ms.
    pub start_to_first_frame_ms: Option<f64>,
    /// Process start → the sink accepted the connection, ms.
    pub start_to_connect_ms: Option<f64>,
    /// CPU and memory of the process.
    pub usage: Usage,
    /// 1-minute load average before and after the run.
    pub load_before: Option<f64>,
    /// See `load_before`.
    pub load_after: Option<f64>,
    /// Frame arrivals, ms after the first.
    pub arrivals_ms: Vec<f64>,
    /// The frames' media timestamps as sent (RTP: 90 kHz presentation time; RTMP: ms
    /// decoding time).
    pub media_timestamps: Vec<u32>,
}

/// Publishes the clip once with `side` and measures it.
pub fn run(
    setup: &Setup,
    side: Side,
    mode: Mode,
    proto: Proto,
    repetition: usize,
) -> Result<RunResult> {
    let sink = Sink::start(proto.sink(), Duration::from_secs(15))?;
    let url = sink.url("bench");
    let (program, args) = setup.command(side, mode, proto, &url);
    let log = setup.logs.join(format!(
        "{}-{}-{}-{repetition}.log",
        serde_plain(&side),
        serde_plain(&mode),
        serde_plain(&proto)
    ));
    let load_before = load_average();
    let child = Timed::spawn(&setup.time, &program, &args, &log)?;
    let spawned_at = child.spawned_at;
    let limit = Duration::from_secs_f64(setup.frames as f64 / setup.fps + 60.0);
    let usage = child.wait(limit)?;
    let sessions = sink.finish(1, Duration::from_secs(5));
    let load_after = load_average();
    let session = sessions.into_iter().next();
    let first = session
        .as_ref()
        .and_then(|s| s.frames.first())
        .map(|f| f.at);
    let arrivals: Vec<f64> = match (&session, first) {
        (Some(s), Some(t0)) => s.arrivals_after(t0),
        _ => Vec::new(),
    };
    let mut command = vec![program.display().to_string()];
    command.extend(args);
    Ok(RunResult {
        side,
        mode,
        proto,
        repetition,
        command,
        frames_received: arrivals.len(),
        frames_expected: setup.frames,
        ended_cleanly: session.as_ref().is_some_and(|s| s.ended_cleanly),
        sink_error: match &session {
            Some(s) => s.error.clone(),
            None => Some("no connection".into()),
        },
        timing: Timing::of(&arrivals, setup.fps),
        start_to_first_frame_ms: first.map(|t| seconds_between(spawned_at, t) * 1e3),
        start_to_connect_ms: session
            .as_ref()
            .map(|s| seconds_between(spawned_at, s.accepted_at) * 1e3),
        usage,
        load_before,
        load_after,
        arrivals_ms: arrivals.iter().map(|a| (a * 1e6).round() / 1e3).collect(),
        media_timestamps: session
            .as_ref()
            .map(|s| s.frames.iter().map(|f| f.timestamp).collect())
            .unwrap_or_default(),
    })
}

/// A unit enum's serde name.
fn serde_plain<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| j.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup {
        Setup {
            mpegcoder: "/bin/mpegcoder".into(),
            ffmpeg: "/bin/ffmpeg".into(),
            time: "/usr/bin/time".into(),
            clip: "/c.mp4".into(),
            frames: 600,
            fps: 30.0,
            gop: 60,
            bframes: 2,
            bitrate: "2M".into(),
            logs: "/tmp".into(),
        }
    }

    #[test]
    fn both_sides_get_the_same_settings() {
        let s = setup();
        let (_, ours) = s.command(Side::Ours, Mode::Libx264, Proto::RtspUdp, "rtsp://h/x");
        assert_eq!(
            ours.join(" "),
            "push /c.mp4 rtsp://h/x --quiet --codec libx264 --preset veryfast --bitrate 2M \
             --transport udp"
        );
        let (_, theirs) = s.command(Side::Ffmpeg, Mode::Libx264, Proto::RtspUdp, "rtsp://h/x");
        let line = theirs.join(" ");
        assert!(line.contains("-re -i /c.mp4"), "{line}");
        assert!(
            line.contains("-c:v libx264 -preset veryfast -b:v 2M -g 60 -bf 2"),
            "{line}"
        );
        assert!(
            line.ends_with("-f rtsp -rtsp_transport udp rtsp://h/x"),
            "{line}"
        );
        let (_, copy) = s.command(Side::Ffmpeg, Mode::Copy, Proto::Rtmp, "rtmp://h/a/b");
        assert!(copy.join(" ").ends_with("-c:v copy -f flv rtmp://h/a/b"));
        assert_eq!(serde_plain(&Proto::RtspTcp), "rtsp-tcp");
    }
}
