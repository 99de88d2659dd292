//! Summaries of the runs: the median of each figure over repetitions, side by side, with the
//! ratio ours / ffmpeg, as markdown tables and JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::single::{Mode, Proto, RunResult, Side};
use crate::stats::median;
use crate::sweep::Step;

/// The figures compared, in table order: (key, label).
pub const FIGURES: &[(&str, &str)] = &[
    ("frames_received", "frames received (fewest of the runs)"),
    ("steady_p50_ms", "steady deviation p50, ms"),
    ("steady_p99_ms", "steady deviation p99, ms"),
    ("steady_max_ms", "steady deviation max, ms"),
    ("first_100ms", "frames in the first 100 ms"),
    ("last_100ms", "frames in the last 100 ms"),
    ("start_to_first_ms", "process start → first frame, ms"),
    ("cpu_s", "CPU user+sys, s"),
    ("rss_mib", "peak RSS, MiB"),
];

/// The audio figures of a mode with audio, after [`FIGURES`]: (key, label).
pub const AUDIO_FIGURES: &[(&str, &str)] = &[
    (
        "audio_frames_received",
        "audio: AAC frames received (fewest of the runs)",
    ),
    ("audio_frames_per_packet", "audio: frames per packet"),
    ("audio_steady_p50_ms", "audio: steady deviation p50, ms"),
    ("audio_steady_p99_ms", "audio: steady deviation p99, ms"),
    ("audio_steady_max_ms", "audio: steady deviation max, ms"),
    (
        "av_offset_ms",
        "A/V offset of the arrival schedules less the source's, ms",
    ),
    (
        "av_ts_offset_ms",
        "A/V offset of the first timestamps less the source's, ms",
    ),
];

/// The figures of `mode`, in table order.
pub fn figures(mode: Mode) -> Vec<(&'static str, &'static str)> {
    let mut f = FIGURES.to_vec();
    if mode.has_audio() {
        f.extend_from_slice(AUDIO_FIGURES);
    }
    f
}

/// A figure's label in the table of `mode`: with audio, the wire figures of the video say
/// so.
fn label(mode: Mode, key: &str, label: &'static str) -> String {
    let video = matches!(
        key,
        "frames_received"
            | "steady_p50_ms"
            | "steady_p99_ms"
            | "steady_max_ms"
            | "first_100ms"
            | "last_100ms"
    );
    if mode.has_audio() && video {
        format!("video: {label}")
    } else {
        label.to_string()
    }
}

/// Figures without a meaningful ratio ours / ffmpeg: counts that must match, and signed
/// offsets.
fn no_ratio(key: &str) -> bool {
    matches!(
        key,
        "frames_received"
            | "audio_frames_received"
            | "audio_frames_per_packet"
            | "av_offset_ms"
            | "av_ts_offset_ms"
    )
}

/// One figure of one run.
pub fn figure(r: &RunResult, key: &str) -> Option<f64> {
    let t = r.timing.as_ref();
    match key {
        "frames_received" => Some(r.frames_received as f64),
        "steady_p50_ms" => t.and_then(|t| t.steady).map(|s| s.p50_ms),
        "steady_p99_ms" => t.and_then(|t| t.steady).map(|s| s.p99_ms),
        "steady_max_ms" => t.and_then(|t| t.steady).map(|s| s.max_ms),
        "first_100ms" => t.map(|t| t.first_100ms as f64),
        "last_100ms" => t.map(|t| t.last_100ms as f64),
        "start_to_first_ms" => r.start_to_first_frame_ms,
        "cpu_s" => Some(r.usage.cpu_s()),
        "rss_mib" => Some(r.usage.max_rss_kib as f64 / 1024.0),
        _ => audio_figure(r, key),
    }
}

fn audio_figure(r: &RunResult, key: &str) -> Option<f64> {
    let a = r.audio.as_ref()?;
    let t = a.timing.as_ref();
    match key {
        "audio_frames_received" => Some(a.frames_received() as f64),
        "audio_frames_per_packet" => t.map(|t| t.frames_per_packet()),
        "audio_steady_p50_ms" => t.and_then(|t| t.steady).map(|s| s.p50_ms),
        "audio_steady_p99_ms" => t.and_then(|t| t.steady).map(|s| s.p99_ms),
        "audio_steady_max_ms" => t.and_then(|t| t.steady).map(|s| s.max_ms),
        "av_offset_ms" => a.av_offset_ms,
        "av_ts_offset_ms" => a.av_timestamp_offset_ms,
        _ => None,
    }
}

/// One figure for one mode and protocol, both sides.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Copy or libx264.
    pub mode: Mode,
    /// Protocol.
    pub proto: Proto,
    /// Figure key (see [`FIGURES`]).
    pub figure: &'static str,
    /// Ours: median over repetitions (fewest for the frame count).
    pub ours: Option<f64>,
    /// ffmpeg: the same.
    pub ffmpeg: Option<f64>,
    /// ours / ffmpeg.
    pub ratio: Option<f64>,
    /// Ours, every repetition.
    pub ours_runs: Vec<f64>,
    /// ffmpeg, every repetition.
    pub ffmpeg_runs: Vec<f64>,
}

fn summarize(values: &[f64], key: &str) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    if matches!(key, "frames_received" | "audio_frames_received") {
        return values.iter().copied().reduce(f64::min);
    }
    Some(median(values))
}

/// The rows of every figure for every (mode, protocol) present in `runs`.
pub fn rows(runs: &[RunResult]) -> Vec<Row> {
    let mut out = Vec::new();
    for mode in Mode::ALL {
        for proto in [Proto::RtspTcp, Proto::RtspUdp, Proto::Rtmp] {
            let of = |side: Side, key: &str| -> Vec<f64> {
                runs.iter()
                    .filter(|r| r.mode == mode && r.proto == proto && r.side == side)
                    .filter_map(|r| figure(r, key))
                    .collect()
            };
            if of(Side::Ours, "cpu_s").is_empty() && of(Side::Ffmpeg, "cpu_s").is_empty() {
                continue;
            }
            for (key, _) in figures(mode) {
                let (ours_runs, ffmpeg_runs) = (of(Side::Ours, key), of(Side::Ffmpeg, key));
                let ours = summarize(&ours_runs, key);
                let ffmpeg = summarize(&ffmpeg_runs, key);
                let ratio = match (ours, ffmpeg) {
                    _ if no_ratio(key) => None,
                    (Some(a), Some(b)) if b != 0.0 => Some(a / b),
                    _ => None,
                };
                out.push(Row {
                    mode,
                    proto,
                    figure: key,
                    ours,
                    ffmpeg,
                    ratio,
                    ours_runs,
                    ffmpeg_runs,
                });
            }
        }
    }
    out
}

fn num(v: Option<f64>, key: &str) -> String {
    match v {
        None => "–".into(),
        Some(v) if !v.is_finite() => "–".into(),
        Some(v) => match key {
            "frames_received" | "first_100ms" | "last_100ms" | "audio_frames_received" => {
                format!("{v:.0}")
            }
            "steady_p50_ms" | "steady_p99_ms" | "steady_max_ms" => format!("{v:.2}"),
            "start_to_first_ms" | "rss_mib" | "av_offset_ms" | "av_ts_offset_ms" => {
                format!("{v:.1}")
            }
            _ => format!("{v:.2}"),
        },
    }
}

fn ratio(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.2}×"),
        _ => "–".into(),
    }
}

/// One markdown table per mode: figures down, (protocol × ours / ffmpeg / ratio) across.
pub fn markdown(rows: &[Row], frames_expected: usize, repetitions: usize) -> String {
    let mut s = String::new();
    for mode in Mode::ALL {
        let protos: Vec<Proto> = [Proto::RtspTcp, Proto::RtspUdp, Proto::Rtmp]
            .into_iter()
            .filter(|p| rows.iter().any(|r| r.mode == mode && r.proto == *p))
            .collect();
        if protos.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "\n### {} (median of {repetitions} run{} each; {frames_expected} frames sent)\n",
            mode.name(),
            if repetitions == 1 { "" } else { "s" }
        );
        s.push_str("| figure |");
        for p in &protos {
            let _ = write!(s, " {} ours | ffmpeg | ratio |", p.name());
        }
        s.push_str("\n|---|");
        for _ in &protos {
            s.push_str("---:|---:|---:|");
        }
        s.push('\n');
        for (key, text) in figures(mode) {
            let _ = write!(s, "| {} |", label(mode, key, text));
            for p in &protos {
                let r = rows
                    .iter()
                    .find(|r| r.mode == mode && r.proto == *p && r.figure == key);
                let (o, f, q) = r.map_or((None, None, None), |r| (r.ours, r.ffmpeg, r.ratio));
                let q = if no_ratio(key) { "".into() } else { ratio(q) };
                let _ = write!(s, " {} | {} | {} |", num(o, key), num(f, key), q);
            }
            s.push('\n');
        }
    }
    s
}

/// The concurrency steps as a markdown table.
pub fn markdown_steps(steps: &[Step], frames: usize) -> String {
    let mut s = String::new();
    s.push_str(
        "| design | N | sink: complete streams | pooled p99 / max, ms | worst stream p99, ms \
         | nginx: complete streams | CPU, s | peak RSS, MiB | load before |\n",
    );
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for st in steps {
        let _ = writeln!(
            s,
            "| {}{} | {} | {}/{} (min {} of {frames} frames) | {} / {} | {} | {} | {:.2} | {:.1} | {} |",
            st.design.name(),
            if st.aligned { ", aligned" } else { "" },
            st.streams,
            st.sink.streams_complete,
            st.streams,
            st.sink.frames_min,
            num(st.pooled.map(|p| p.p99_ms), "steady_p99_ms"),
            num(st.pooled.map(|p| p.max_ms), "steady_max_ms"),
            num(st.worst_stream_p99_ms, "steady_p99_ms"),
            st.nginx.as_ref().map_or("not run".into(), |d| format!(
                "{}/{} (min {} frames)",
                d.streams_complete, st.streams, d.frames_min
            )),
            st.sink.usage.cpu_s(),
            st.sink.usage.max_rss_kib as f64 / 1024.0,
            st.load_before.map_or("–".into(), |l| format!("{l:.2}")),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::Usage;
    use crate::stats::Timing;

    fn run(side: Side, cpu: f64) -> RunResult {
        let arrivals: Vec<f64> = (0..600).map(|n| f64::from(n) / 30.0).collect();
        RunResult {
            side,
            mode: Mode::Copy,
            proto: Proto::Rtmp,
            repetition: 0,
            command: Vec::new(),
            frames_received: 600,
            frames_expected: 600,
            ended_cleanly: true,
            sink_error: None,
            timing: Timing::of(&arrivals, 30.0),
            start_to_first_frame_ms: Some(40.0),
            start_to_connect_ms: Some(30.0),
            usage: Usage {
                user_s: cpu,
                max_rss_kib: 10 * 1024,
                ..Usage::default()
            },
            load_before: None,
            load_after: None,
            arrivals_ms: Vec::new(),
            media_timestamps: Vec::new(),
            audio: None,
        }
    }

    #[test]
    fn medians_ratios_and_table() {
        let runs = vec![
            run(Side::Ours, 0.1),
            run(Side::Ours, 0.3),
            run(Side::Ours, 0.2),
            run(Side::Ffmpeg, 0.4),
        ];
        let rows = rows(&runs);
        assert_eq!(rows.len(), FIGURES.len());
        let cpu = rows.iter().find(|r| r.figure == "cpu_s").expect("cpu row");
        assert_eq!(cpu.ours, Some(0.2));
        assert_eq!(cpu.ratio, Some(0.5));
        assert_eq!(cpu.ours_runs.len(), 3);
        let md = markdown(&rows, 600, 3);
        assert!(
            md.contains("| CPU user+sys, s | 0.20 | 0.40 | 0.50× |"),
            "{md}"
        );
        assert!(
            md.contains("| frames received (fewest of the runs) | 600 | 600 |  |"),
            "{md}"
        );
        assert!(!md.contains("RTSP/TCP"), "{md}");
    }
}
