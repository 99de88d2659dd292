//! Fan-out: one `mpegcoder push CLIP URL1 URL2 URL3 --codec copy` (paced) against three
//! `ffmpeg -re -i CLIP -c:v copy URLi` processes, and against one ffmpeg with its tee muxer
//! writing the three. Each destination is a sink of its own (the same kind of receiver for
//! every side); GNU time measures every process, and the three ffmpeg processes' CPU and peak
//! RSS are summed. Each destination's frames are counted (every one of the clip's must
//! arrive, each once) and their wire pacing fitted as in the side-by-side runs.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::process::{load_average, Timed, Usage};
use crate::single::{serde_plain, Proto};
use crate::sink::{Session, Sink};
use crate::stats::{Spread, Timing};

/// Who publishes the three streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FanoutSide {
    /// One `mpegcoder push` with three URLs.
    Ours,
    /// Three `ffmpeg -re` processes, one per destination.
    FfmpegEach,
    /// One `ffmpeg -re` with `-f tee`.
    FfmpegTee,
}

impl FanoutSide {
    /// Every side, in table order.
    pub const ALL: [FanoutSide; 3] = [
        FanoutSide::Ours,
        FanoutSide::FfmpegEach,
        FanoutSide::FfmpegTee,
    ];

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            FanoutSide::Ours => "mpegcoder, one process",
            FanoutSide::FfmpegEach => "ffmpeg, one process per destination (summed)",
            FanoutSide::FfmpegTee => "ffmpeg -f tee, one process",
        }
    }
}

/// Programs and settings of the fan-out runs.
#[derive(Debug, Clone)]
pub struct FanoutSetup {
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
    /// Directory for logs.
    pub logs: PathBuf,
    /// Destinations.
    pub destinations: usize,
}

impl FanoutSetup {
    fn ffmpeg_head(&self) -> Vec<String> {
        crate::process::ffmpeg_copy_head(&self.clip, "error")
    }

    /// The command lines (program, arguments) of `side` publishing to `urls`.
    pub fn commands(
        &self,
        side: FanoutSide,
        proto: Proto,
        urls: &[String],
        stats: &str,
    ) -> Vec<(PathBuf, Vec<String>)> {
        match side {
            FanoutSide::Ours => {
                let mut a = vec!["push".to_string(), self.clip.display().to_string()];
                a.extend(urls.iter().cloned());
                a.extend(["--quiet", "--codec", "copy"].iter().map(|s| s.to_string()));
                a.extend(proto.push_args().iter().map(|s| s.to_string()));
                a.extend(["--stats-json".to_string(), stats.to_string()]);
                vec![(self.mpegcoder.clone(), a)]
            }
            FanoutSide::FfmpegEach => urls
                .iter()
                .map(|url| {
                    let mut a = self.ffmpeg_head();
                    a.extend(proto.ffmpeg_args().iter().map(|s| s.to_string()));
                    a.push(url.clone());
                    (self.ffmpeg.clone(), a)
                })
                .collect(),
            FanoutSide::FfmpegTee => {
                let mut a = self.ffmpeg_head();
                if proto == Proto::Rtmp {
                    // The tee muxer keeps the MP4's codec tag (avc1), which FLV refuses ("Tag
                    // avc1 incompatible with output codec id '27'"); FLV's own is 7.
                    a.extend(["-tag:v".to_string(), "7".to_string()]);
                }
                a.extend(["-f".to_string(), "tee".to_string()]);
                a.push(
                    urls.iter()
                        .map(|u| format!("[{}]{u}", proto.tee_options()))
                        .collect::<Vec<_>>()
                        .join("|"),
                );
                vec![(self.ffmpeg.clone(), a)]
            }
        }
    }
}

/// What one destination received.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationResult {
    /// Its URL.
    pub url: String,
    /// Frames received.
    pub frames_received: usize,
    /// Distinct media timestamps among them.
    pub distinct_timestamps: usize,
    /// Every frame of the clip arrived, each once.
    pub complete: bool,
    /// Steady-state wire deviation.
    pub steady: Option<Spread>,
    /// The publisher ended the session properly.
    pub ended_cleanly: bool,
    /// Why the sink's session ended abnormally, if it did.
    pub sink_error: Option<String>,
    /// The publisher's count of frames sent to it (ours only, from `--stats-json`).
    pub frames_sent: Option<u64>,
    /// The publisher's count of frames it dropped (ours only).
    pub frames_dropped: Option<u64>,
    /// Queue overflows (ours only).
    pub queue_overflows: Option<u64>,
}

/// One fan-out run.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutRun {
    /// Who published.
    pub side: FanoutSide,
    /// Protocol.
    pub proto: Proto,
    /// Repetition, from 0.
    pub repetition: usize,
    /// The command lines.
    pub commands: Vec<Vec<String>>,
    /// Each process.
    pub processes: Vec<Usage>,
    /// CPU user+sys, summed over the processes, s.
    pub cpu_s: f64,
    /// Peak RSS, summed over the processes, MiB.
    pub rss_mib: f64,
    /// Every destination.
    pub destinations: Vec<DestinationResult>,
    /// 1-minute load average before and after.
    pub load_before: Option<f64>,
    /// See `load_before`.
    pub load_after: Option<f64>,
}

impl FanoutRun {
    /// Destinations that received every frame.
    pub fn complete(&self) -> usize {
        self.destinations.iter().filter(|d| d.complete).count()
    }

    /// The fewest frames a destination received.
    pub fn frames_min(&self) -> usize {
        self.destinations
            .iter()
            .map(|d| d.frames_received)
            .min()
            .unwrap_or(0)
    }
}

fn destination(
    url: String,
    session: Option<&Session>,
    frames: usize,
    fps: f64,
) -> DestinationResult {
    let Some(s) = session else {
        return DestinationResult {
            url,
            frames_received: 0,
            distinct_timestamps: 0,
            complete: false,
            steady: None,
            ended_cleanly: false,
            sink_error: Some("no connection".into()),
            frames_sent: None,
            frames_dropped: None,
            queue_overflows: None,
        };
    };
    let distinct = s
        .frames
        .iter()
        .map(|f| f.timestamp)
        .collect::<HashSet<_>>()
        .len();
    let arrivals = s
        .frames
        .first()
        .map_or(Vec::new(), |f| s.arrivals_after(f.at));
    DestinationResult {
        url,
        frames_received: s.frames.len(),
        distinct_timestamps: distinct,
        complete: s.frames.len() == frames && distinct == frames,
        steady: Timing::of(&arrivals, fps).and_then(|t| t.steady),
        ended_cleanly: s.ended_cleanly,
        sink_error: s.error.clone(),
        frames_sent: None,
        frames_dropped: None,
        queue_overflows: None,
    }
}

/// Publishes the clip to `setup.destinations` sinks with `side`, once.
pub fn run(
    setup: &FanoutSetup,
    side: FanoutSide,
    proto: Proto,
    repetition: usize,
) -> Result<FanoutRun> {
    let sinks = (0..setup.destinations)
        .map(|_| Sink::start(proto.sink(), Duration::from_secs(15)))
        .collect::<std::io::Result<Vec<Sink>>>()?;
    let urls: Vec<String> = sinks
        .iter()
        .enumerate()
        .map(|(i, s)| s.url(&format!("fan{i}")))
        .collect();
    let name = format!(
        "fanout-{}-{}-{repetition}",
        serde_plain(&side),
        serde_plain(&proto)
    );
    let stats = setup.logs.join(format!("{name}.json"));
    let _ = std::fs::remove_file(&stats);
    let commands = setup.commands(side, proto, &urls, &stats.display().to_string());
    let load_before = load_average();
    let mut children = Vec::new();
    for (k, (program, args)) in commands.iter().enumerate() {
        let log = setup.logs.join(format!("{name}-{k}.log"));
        children.push(Timed::spawn(&setup.time, program, args, &log)?);
    }
    let limit = Duration::from_secs_f64(setup.frames as f64 / setup.fps + 60.0);
    let mut processes = Vec::new();
    for child in children {
        processes.push(child.wait(limit)?);
    }
    let load_after = load_average();
    let mut destinations: Vec<DestinationResult> = sinks
        .into_iter()
        .zip(&urls)
        .map(|(sink, url)| {
            let sessions = sink.finish(1, Duration::from_secs(5));
            destination(url.clone(), sessions.first(), setup.frames, setup.fps)
        })
        .collect();
    if side == FanoutSide::Ours {
        let v: Option<serde_json::Value> = std::fs::read_to_string(&stats)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let listed = v
            .as_ref()
            .and_then(|v| v.get("destinations")?.as_array().cloned())
            .unwrap_or_default();
        for (d, s) in destinations.iter_mut().zip(&listed) {
            d.frames_sent = s.get("frames_sent").and_then(|x| x.as_u64());
            d.frames_dropped = s.get("frames_dropped").and_then(|x| x.as_u64());
            d.queue_overflows = s.get("queue_overflows").and_then(|x| x.as_u64());
        }
    }
    Ok(FanoutRun {
        side,
        proto,
        repetition,
        commands: commands
            .into_iter()
            .map(|(p, a)| std::iter::once(p.display().to_string()).chain(a).collect())
            .collect(),
        cpu_s: processes.iter().map(Usage::cpu_s).sum(),
        rss_mib: processes.iter().map(|u| u.max_rss_kib as f64).sum::<f64>() / 1024.0,
        processes,
        destinations,
        load_before,
        load_after,
    })
}

/// The fan-out tables, one per protocol: a row per run.
pub fn markdown(runs: &[FanoutRun], frames: usize) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let Some(first) = runs.first() else {
        return s;
    };
    let n = first.destinations.len();
    let _ = writeln!(
        s,
        "\n## Fan-out: one input, {n} destinations\n\n`mpegcoder push CLIP URL1 … URL{n} \
         --codec copy` (paced) against {n} `ffmpeg -re -i CLIP -map 0:v:0 -c:v copy … URLi` \
         processes (CPU and peak RSS summed over them) and one `ffmpeg -re … -f tee \
         \"[f=…]URL1|…\"`; each destination is a sink of its own. A destination is complete \
         when it received all {frames} frames, each once."
    );
    for proto in [Proto::RtspTcp, Proto::RtspUdp, Proto::Rtmp] {
        let rows: Vec<&FanoutRun> = runs.iter().filter(|r| r.proto == proto).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n### {}\n", proto.name());
        s.push_str(
            "| publisher | run | CPU user+sys, s | peak RSS, MiB | destinations complete | \
             fewest frames | steady p99 per destination, ms | load before |\n",
        );
        s.push_str("|---|---:|---:|---:|---:|---:|---|---:|\n");
        for r in &rows {
            let _ = writeln!(
                s,
                "| {} | {} | {:.2} | {:.1} | {}/{} | {} | {} | {} |",
                r.side.name(),
                r.repetition,
                r.cpu_s,
                r.rss_mib,
                r.complete(),
                r.destinations.len(),
                r.frames_min(),
                r.destinations
                    .iter()
                    .map(|d| d.steady.map_or("–".into(), |p| format!("{:.2}", p.p99_ms)))
                    .collect::<Vec<_>>()
                    .join(" / "),
                r.load_before.map_or("–".into(), |l| format!("{l:.2}")),
            );
        }
        let median_of = |side: FanoutSide, f: fn(&FanoutRun) -> f64| {
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| r.side == side)
                .map(|r| f(r))
                .collect();
            (!v.is_empty()).then(|| crate::stats::median(&v))
        };
        let ratio = |f: fn(&FanoutRun) -> f64, other: FanoutSide| match (
            median_of(FanoutSide::Ours, f),
            median_of(other, f),
        ) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
            _ => "–".into(),
        };
        let _ = writeln!(
            s,
            "\nOurs against {n} ffmpeg processes (medians): CPU {}, RSS {}; against ffmpeg's \
             tee: CPU {}, RSS {}.",
            ratio(|r| r.cpu_s, FanoutSide::FfmpegEach),
            ratio(|r| r.rss_mib, FanoutSide::FfmpegEach),
            ratio(|r| r.cpu_s, FanoutSide::FfmpegTee),
            ratio(|r| r.rss_mib, FanoutSide::FfmpegTee),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> FanoutSetup {
        FanoutSetup {
            mpegcoder: "/bin/mpegcoder".into(),
            ffmpeg: "/bin/ffmpeg".into(),
            time: "/usr/bin/time".into(),
            clip: "/c.mp4".into(),
            frames: 600,
            fps: 30.0,
            logs: "/tmp".into(),
            destinations: 3,
        }
    }

    #[test]
    fn one_command_or_three_or_a_tee() {
        let s = setup();
        let urls: Vec<String> = (0..3).map(|i| format!("rtmp://h/live/fan{i}")).collect();
        let ours = s.commands(FanoutSide::Ours, Proto::Rtmp, &urls, "/s.json");
        assert_eq!(ours.len(), 1);
        assert_eq!(
            ours[0].1.join(" "),
            "push /c.mp4 rtmp://h/live/fan0 rtmp://h/live/fan1 rtmp://h/live/fan2 --quiet \
             --codec copy --stats-json /s.json"
        );
        let each = s.commands(FanoutSide::FfmpegEach, Proto::RtspTcp, &urls, "");
        assert_eq!(each.len(), 3);
        assert!(each[2].1.join(" ").ends_with(
            "-re -i /c.mp4 -map 0:v:0 -c:v copy -f rtsp -rtsp_transport tcp rtmp://h/live/fan2"
        ));
        let tee = s.commands(FanoutSide::FfmpegTee, Proto::Rtmp, &urls, "");
        assert_eq!(tee.len(), 1);
        assert!(tee[0].1.join(" ").contains("-c:v copy -tag:v 7 -f tee"));
        assert_eq!(
            tee[0].1.last().map(String::as_str),
            Some("[f=flv]rtmp://h/live/fan0|[f=flv]rtmp://h/live/fan1|[f=flv]rtmp://h/live/fan2")
        );
    }
}
