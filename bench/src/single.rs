//! One publisher process, one stream: `mpegcoder push` and `ffmpeg -re` publish the same clip
//! to a sink of the bench, which records when each frame arrives (and each audio packet, for
//! the audio+video clip); GNU time measures the process.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::clip::AvClip;
use crate::process::{load_average, Timed, Usage};
use crate::sink::{seconds_between, Session, Sink, SinkKind};
use crate::stats::{media_times, AudioTiming, Timing};

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
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The H.264 packets pass through.
    Copy,
    /// Decode and encode with libx264 (preset veryfast).
    Libx264,
    /// The audio+video clip, both tracks passed through.
    CopyAv,
}

impl Mode {
    /// Every mode, in table order.
    pub const ALL: [Mode; 3] = [Mode::Copy, Mode::Libx264, Mode::CopyAv];

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Copy => "copy",
            Mode::Libx264 => "libx264 veryfast",
            Mode::CopyAv => "copy, audio + video",
        }
    }

    /// The mode carries an audio track.
    pub fn has_audio(self) -> bool {
        self == Mode::CopyAv
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

    /// The kind of sink that receives it.
    pub fn sink(self) -> SinkKind {
        match self {
            Proto::RtspTcp | Proto::RtspUdp => SinkKind::Rtsp,
            Proto::Rtmp => SinkKind::Rtmp,
        }
    }

    /// `mpegcoder push`'s arguments for it (the RTSP lower transport).
    pub fn push_args(self) -> &'static [&'static str] {
        match self {
            Proto::RtspTcp => &["--transport", "tcp"],
            Proto::RtspUdp => &["--transport", "udp"],
            Proto::Rtmp => &[],
        }
    }

    /// ffmpeg's output format arguments for it (before the URL).
    pub fn ffmpeg_args(self) -> &'static [&'static str] {
        match self {
            Proto::RtspTcp => &["-f", "rtsp", "-rtsp_transport", "tcp"],
            Proto::RtspUdp => &["-f", "rtsp", "-rtsp_transport", "udp"],
            Proto::Rtmp => &["-f", "flv"],
        }
    }

    /// The options of a slave of ffmpeg's tee muxer for it (`[...]URL`).
    pub fn tee_options(self) -> &'static str {
        match self {
            Proto::RtspTcp => "f=rtsp:rtsp_transport=tcp",
            Proto::RtspUdp => "f=rtsp:rtsp_transport=udp",
            Proto::Rtmp => "f=flv",
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
    /// The audio+video clip (the same video), for [`Mode::CopyAv`].
    pub av: Option<AvClip>,
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
        let clip = match (mode, &self.av) {
            (Mode::CopyAv, Some(av)) => av.path.display().to_string(),
            _ => self.clip.display().to_string(),
        };
        let mut a: Vec<String> = Vec::new();
        let mut push = |s: &str| a.push(s.to_string());
        match side {
            Side::Ours => {
                for s in ["push", &clip, url, "--quiet"] {
                    push(s);
                }
                match mode {
                    Mode::Copy => ["--codec", "copy"].iter().for_each(|s| push(s)),
                    Mode::CopyAv => {
                        for s in ["--codec", "copy", "--audio", "copy"] {
                            push(s);
                        }
                    }
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
                    Mode::CopyAv => {
                        for s in ["-map", "0:a:0", "-c", "copy"] {
                            push(s);
                        }
                    }
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
    /// The audio track, for a mode with audio.
    pub audio: Option<AudioResult>,
}

/// What arrived of the audio track of one run.
#[derive(Debug, Clone, Serialize)]
pub struct AudioResult {
    /// Audio frames in the clip (AAC frames, the priming frame included).
    pub frames_expected: u64,
    /// Audio RTP packets or RTMP audio messages received, sequence headers and fragments
    /// included.
    pub packets_received: u64,
    /// Ticks per second of the timestamps (the SDP's clock rate; 1000 for RTMP).
    pub clock_rate: Option<u32>,
    /// Wire timing, fitted on the timestamps.
    pub timing: Option<AudioTiming>,
    /// Where the sink's audio schedule starts against its video schedule, less where the
    /// source's first audio frame sits against its first video frame, ms: positive when the
    /// audio arrives later, relative to the video, than the clip's timestamps say.
    pub av_offset_ms: Option<f64>,
    /// The first audio timestamp less the first video timestamp on the sender's clock, less
    /// the same difference in the source, ms: positive when a player going by the timestamps
    /// would play the audio late. RTMP: both tracks' timestamps are on one timeline (the
    /// video's are decoding times); RTSP: each track's first RTCP sender report maps its RTP
    /// timestamps (presentation times) to the sender's NTP clock.
    pub av_timestamp_offset_ms: Option<f64>,
    /// Arrivals, ms after the first video frame's.
    pub arrivals_ms: Vec<f64>,
    /// Their timestamps as sent.
    pub timestamps: Vec<u32>,
    /// The frames each carried.
    pub frames: Vec<u32>,
}

impl AudioResult {
    /// The audio of `session`, with `epoch` the first video frame's arrival and `video` its
    /// timing.
    fn of(
        session: &Session,
        epoch: Instant,
        video: Option<&Timing>,
        clip: &AvClip,
        proto: Proto,
    ) -> AudioResult {
        let arrivals = session.audio_arrivals_after(epoch);
        let timestamps: Vec<u32> = session.audio.iter().map(|a| a.timestamp).collect();
        let frames: Vec<u32> = session.audio.iter().map(|a| a.frames).collect();
        let clock_rate = session.audio_clock_rate;
        // Whole-millisecond RTMP timestamps of 1024-sample frames: back onto the frame grid.
        let grid = (clock_rate == Some(1000)).then(|| clip.audio_frame_s());
        let media = media_times(&timestamps, clock_rate.unwrap_or(1), grid);
        let timing = clock_rate.and_then(|_| AudioTiming::of(&arrivals, &media, &frames));
        let source = clip.source_av_offset_s();
        let av_offset_ms = match (&timing, video) {
            // The video schedule's frame 0 sits at `offset_ms` after the first video frame.
            (Some(a), Some(v)) => Some((a.origin_s - v.offset_ms / 1e3 - source) * 1e3),
            _ => None,
        };
        let (first_video, first_audio) = (session.frames.first(), timestamps.first());
        let av_timestamp_offset_ms = match (proto, first_video, first_audio) {
            (Proto::Rtmp, Some(v), Some(&a)) => {
                Some(f64::from(a.wrapping_sub(v.timestamp) as i32) - source * 1e3)
            }
            (Proto::RtspTcp | Proto::RtspUdp, Some(v), Some(&a)) => match (
                session.video_sender_report,
                session.audio_sender_report,
                clock_rate,
            ) {
                (Some(vsr), Some(asr), Some(rate)) => {
                    let video_at = vsr.seconds_of(v.timestamp, 90_000);
                    let audio_at = vsr.ntp_seconds_until(&asr) + asr.seconds_of(a, rate);
                    Some((audio_at - video_at - clip.source_av_pts_offset_s()) * 1e3)
                }
                _ => None,
            },
            _ => None,
        };
        AudioResult {
            frames_expected: clip.audio_packets,
            packets_received: session.audio_packets,
            clock_rate,
            timing,
            av_offset_ms,
            av_timestamp_offset_ms,
            arrivals_ms: arrivals.iter().map(|a| (a * 1e6).round() / 1e3).collect(),
            timestamps,
            frames,
        }
    }

    /// Audio frames received.
    pub fn frames_received(&self) -> u64 {
        self.frames.iter().map(|&f| u64::from(f)).sum()
    }
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
    let timing = Timing::of(&arrivals, setup.fps);
    let audio = match (mode.has_audio(), &session, first, &setup.av) {
        (true, Some(s), Some(t0), Some(clip)) => {
            Some(AudioResult::of(s, t0, timing.as_ref(), clip, proto))
        }
        _ => None,
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
        timing,
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
        audio,
    })
}

/// A unit enum's serde name.
pub fn serde_plain<T: Serialize>(v: &T) -> String {
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
            av: None,
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
        assert_eq!(serde_plain(&Mode::CopyAv), "copy-av");
    }

    #[test]
    fn audio_and_video_pass_through_on_both_sides() {
        let mut s = setup();
        s.av = Some(AvClip {
            path: "/av.mp4".into(),
            audio_spec: crate::clip::AudioSpec::AAC_48K_STEREO,
            video_packets: 600,
            audio_packets: 939,
            video_first_dts_s: -0.066_667,
            video_first_pts_s: 0.0,
            audio_first_pts_s: -0.021_333,
            audio_frame_samples: 1024,
            audio_bit_rate: None,
        });
        let (_, ours) = s.command(Side::Ours, Mode::CopyAv, Proto::RtspTcp, "rtsp://h/x");
        assert_eq!(
            ours.join(" "),
            "push /av.mp4 rtsp://h/x --quiet --codec copy --audio copy --transport tcp"
        );
        let (_, theirs) = s.command(Side::Ffmpeg, Mode::CopyAv, Proto::Rtmp, "rtmp://h/a/b");
        assert!(theirs
            .join(" ")
            .ends_with("-re -i /av.mp4 -map 0:v:0 -map 0:a:0 -c copy -f flv rtmp://h/a/b"));
        // The video-only modes keep the video clip.
        let (_, copy) = s.command(Side::Ours, Mode::Copy, Proto::Rtmp, "rtmp://h/a/b");
        assert_eq!(copy[1], "/c.mp4");
    }
}
