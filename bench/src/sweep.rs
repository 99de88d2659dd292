//! The concurrency sweep: for growing N, one `push-many` process (this binary) publishes N
//! copies of the short clip to the bench's RTMP sink (wire timing, every stream's frame count)
//! and then to nginx-rtmp (every recording's frame count).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::flv;
use crate::many::{Design, ManySummary};
use crate::nginx::Nginx;
use crate::process::{load_average, Timed, Usage};
use crate::sink::{Sink, SinkKind};
use crate::stats::{steady_abs_deviations_ms, Spread};

/// The p99 deviation a step may reach and still count, ms.
pub const P99_LIMIT_MS: f64 = 5.0;

/// Programs and files of the sweep.
#[derive(Debug, Clone)]
pub struct SweepSetup {
    /// This binary (runs `push-many`).
    pub bench: PathBuf,
    /// GNU time.
    pub time: PathBuf,
    /// nginx, when available.
    pub nginx: Option<PathBuf>,
    /// The short clip.
    pub clip: PathBuf,
    /// Its frame count.
    pub frames: usize,
    /// Its frame rate.
    pub fps: f64,
    /// Directory for logs and recordings.
    pub work: PathBuf,
}

/// One target's side of a step.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// Streams whose every frame arrived.
    pub streams_complete: usize,
    /// The fewest frames any stream delivered.
    pub frames_min: usize,
    /// Frames delivered in all.
    pub frames_total: usize,
    /// The `push-many` process.
    pub usage: Usage,
    /// Milliseconds to open every server.
    pub open_ms: f64,
    /// The first few errors (publisher or receiver).
    pub errors: Vec<String>,
}

/// One N.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The design.
    pub design: Design,
    /// Streams.
    pub streams: usize,
    /// All streams started at the same instant.
    pub aligned: bool,
    /// At the sink.
    pub sink: Delivery,
    /// Steady-state deviation at the sink, all streams pooled.
    pub pooled: Option<Spread>,
    /// The largest per-stream p99.
    pub worst_stream_p99_ms: Option<f64>,
    /// At nginx (when it ran).
    pub nginx: Option<Delivery>,
    /// 1-minute load average before the step.
    pub load_before: Option<f64>,
}

impl Step {
    /// Every stream complete at every target and the pooled p99 within the limit.
    pub fn passed(&self) -> bool {
        self.sink.streams_complete == self.streams
            && self
                .nginx
                .as_ref()
                .is_none_or(|d| d.streams_complete == self.streams)
            && self.pooled.is_some_and(|p| p.p99_ms <= P99_LIMIT_MS)
    }
}

fn run_push_many(
    setup: &SweepSetup,
    design: Design,
    n: usize,
    aligned: bool,
    url_prefix: &str,
    tag: &str,
) -> Result<(Usage, Option<ManySummary>)> {
    let json = setup.work.join(format!("{tag}.json"));
    let _ = std::fs::remove_file(&json);
    let mut args = vec![
        "push-many".to_string(),
        "--clip".into(),
        setup.clip.display().to_string(),
        "--url-prefix".into(),
        url_prefix.into(),
        "--streams".into(),
        n.to_string(),
        "--design".into(),
        design.name().into(),
        "--json".into(),
        json.display().to_string(),
    ];
    if aligned {
        args.push("--aligned".into());
    }
    let child = Timed::spawn(
        &setup.time,
        &setup.bench,
        &args,
        &setup.work.join(format!("{tag}.log")),
    )?;
    let limit = Duration::from_secs_f64(setup.frames as f64 / setup.fps + 60.0 + n as f64 * 0.1);
    let usage = child.wait(limit)?;
    let summary = std::fs::read(&json)
        .ok()
        .and_then(|b| serde_json::from_slice::<ManySummary>(&b).ok());
    Ok((usage, summary))
}

fn publisher_errors(summary: Option<&ManySummary>) -> Vec<String> {
    match summary {
        None => vec!["push-many wrote no summary".into()],
        Some(s) => s
            .outcomes
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.error.as_ref().map(|e| format!("stream {i}: {e}")))
            .take(5)
            .collect(),
    }
}

/// Runs one step: N streams to the sink, then (when nginx is there) N streams to nginx.
pub fn step(setup: &SweepSetup, design: Design, n: usize, aligned: bool) -> Result<Step> {
    let load_before = load_average();
    let tag = format!(
        "many-{}-{n}{}",
        design.name(),
        if aligned { "-aligned" } else { "" }
    );
    let sink = Sink::start(SinkKind::Rtmp, Duration::from_secs(20))?;
    let (usage, summary) = run_push_many(setup, design, n, aligned, &sink.url("s"), &tag)?;
    let sessions = sink.finish(n, Duration::from_secs(10));
    let mut errors = publisher_errors(summary.as_ref());
    let mut pooled = Vec::new();
    let mut worst: Option<f64> = None;
    let mut counts = Vec::new();
    for s in &sessions {
        counts.push(s.frames.len());
        if let Some(e) = &s.error {
            if errors.len() < 10 {
                errors.push(format!("sink session {}: {e}", s.name));
            }
        }
        let Some(first) = s.frames.first() else {
            continue;
        };
        let dev = steady_abs_deviations_ms(&s.arrivals_after(first.at), setup.fps);
        if let Some(p) = Spread::of(&dev) {
            worst = Some(worst.map_or(p.p99_ms, |w: f64| w.max(p.p99_ms)));
        }
        pooled.extend(dev);
    }
    counts.resize(n.max(counts.len()), 0);
    let sink_delivery = Delivery {
        streams_complete: counts.iter().filter(|&&c| c == setup.frames).count(),
        frames_min: counts.iter().copied().min().unwrap_or(0),
        frames_total: counts.iter().sum(),
        usage,
        open_ms: summary.as_ref().map_or(f64::NAN, |s| s.open_ms),
        errors,
    };
    let nginx = match &setup.nginx {
        Some(path) => Some(nginx_step(setup, path, design, n, aligned, &tag)?),
        None => None,
    };
    Ok(Step {
        design,
        streams: n,
        aligned,
        sink: sink_delivery,
        pooled: Spread::of(&pooled),
        worst_stream_p99_ms: worst,
        nginx,
        load_before,
    })
}

fn nginx_step(
    setup: &SweepSetup,
    nginx: &Path,
    design: Design,
    n: usize,
    aligned: bool,
    tag: &str,
) -> Result<Delivery> {
    let dir = setup.work.join(format!("{tag}-nginx"));
    let _ = std::fs::remove_dir_all(&dir);
    let server = Nginx::start(nginx, &dir, n)?;
    let (usage, summary) = run_push_many(
        setup,
        design,
        n,
        aligned,
        &server.url("s"),
        &format!("{tag}-nginx"),
    )?;
    let keys: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let open = server.wait_recordings(&keys, Duration::from_secs(30));
    let mut errors = publisher_errors(summary.as_ref());
    if !open.is_empty() {
        errors.push(format!("{} recordings not closed by nginx", open.len()));
    }
    let mut counts = Vec::with_capacity(n);
    for k in &keys {
        let path = server.recording(k);
        let c = std::fs::read(&path)
            .ok()
            .and_then(|b| flv::count(&b))
            .map_or(0, |c| c.frames);
        counts.push(c);
    }
    drop(server);
    // The recordings are large (N × the clip); only the counts are kept.
    std::fs::remove_dir_all(dir.join("rec"))
        .with_context(|| format!("cannot remove {}", dir.display()))?;
    Ok(Delivery {
        streams_complete: counts.iter().filter(|&&c| c == setup.frames).count(),
        frames_min: counts.iter().copied().min().unwrap_or(0),
        frames_total: counts.iter().sum(),
        usage,
        open_ms: summary.as_ref().map_or(f64::NAN, |s| s.open_ms),
        errors,
    })
}

/// Runs `steps` in order for `design` until one fails (that one is kept in the result).
pub fn sweep(
    setup: &SweepSetup,
    design: Design,
    steps: &[usize],
    aligned: bool,
) -> Result<Vec<Step>> {
    let mut out = Vec::new();
    for &n in steps {
        eprintln!(
            "concurrency: {} × copy push, design {}{} ...",
            n,
            design.name(),
            if aligned { ", aligned starts" } else { "" }
        );
        let s = step(setup, design, n, aligned)?;
        eprintln!(
            "  sink: {}/{} streams complete, pooled p99 {:.2} ms; nginx: {}; CPU {:.2} s, RSS {:.1} MiB",
            s.sink.streams_complete,
            n,
            s.pooled.map_or(f64::NAN, |p| p.p99_ms),
            s.nginx
                .as_ref()
                .map_or("not run".to_string(), |d| format!("{}/{} complete", d.streams_complete, n)),
            s.sink.usage.cpu_s(),
            s.sink.usage.max_rss_kib as f64 / 1024.0,
        );
        let passed = s.passed();
        out.push(s);
        if !passed {
            break;
        }
    }
    Ok(out)
}

/// The largest N of `steps` that passed.
pub fn largest_passing(steps: &[Step]) -> Option<usize> {
    steps.iter().filter(|s| s.passed()).map(|s| s.streams).max()
}
