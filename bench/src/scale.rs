//! The scale comparison: N copy streams of the audio+video clip (H.264 + AAC) into one
//! receiver, published either by ONE `mpegcoder push-many` process or by N `ffmpeg -re -c copy`
//! processes, for growing N; each side steps up until a step fails.
//!
//! A step (side, N) has two passes, as in the concurrency sweep ([`crate::sweep`]): the
//! bench's RTMP sink (every stream's video and audio arrivals, steady wire deviation pooled
//! over all streams), then nginx-rtmp recording every stream (frames counted in each
//! recording, which is deleted afterwards). GNU time measures every publisher process; CPU
//! and peak RSS are summed over a side's processes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::clip::{AvClip, ClipSpec};
use crate::flv;
use crate::nginx::Nginx;
use crate::process::{load_average, tail_lines, Timed, Usage};
use crate::sink::{Session, Sink, SinkKind};
use crate::stats::{steady_abs_deviations_ms, Spread};
use crate::sweep::P99_LIMIT_MS;

/// At most this many error lines are kept per pass.
const MAX_ERRORS: usize = 8;

/// Who publishes the N streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// One `mpegcoder push-many` process.
    Mpegcoder,
    /// One `ffmpeg -re -c copy` process per stream.
    Ffmpeg,
}

impl Side {
    /// Its name in tables and file names.
    pub fn name(self) -> &'static str {
        match self {
            Side::Mpegcoder => "mpegcoder",
            Side::Ffmpeg => "ffmpeg",
        }
    }
}

/// Programs and files of the scale comparison.
#[derive(Debug, Clone)]
pub struct ScaleSetup {
    /// The `mpegcoder` binary (needed for [`Side::Mpegcoder`] only).
    pub mpegcoder: Option<PathBuf>,
    /// ffmpeg.
    pub ffmpeg: PathBuf,
    /// GNU time.
    pub time: PathBuf,
    /// nginx, when available.
    pub nginx: Option<PathBuf>,
    /// The audio+video clip.
    pub clip: AvClip,
    /// Its video frames.
    pub frames: usize,
    /// Its frame rate.
    pub fps: f64,
    /// Directory for lists, logs and recordings.
    pub work: PathBuf,
}

impl ScaleSetup {
    /// How long a side's processes may run: the clip, a minute, and 0.2 s per stream.
    fn limit(&self, n: usize) -> Duration {
        Duration::from_secs_f64(self.frames as f64 / self.fps.max(1.0) + 60.0 + n as f64 * 0.2)
    }

    /// The arguments of the ffmpeg process that pushes the clip's video and audio to `url`.
    pub fn ffmpeg_args(&self, url: &str) -> Vec<String> {
        let clip = self.clip.path.display().to_string();
        [
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-i",
            &clip,
            "-map",
            "0:v:0",
            "-map",
            "0:a:0?",
            "-c",
            "copy",
            "-f",
            "flv",
            url,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

/// CPU, memory and exits of a side's processes, summed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageSum {
    /// Processes measured.
    pub processes: usize,
    /// User CPU seconds, summed.
    pub user_s: f64,
    /// System CPU seconds, summed.
    pub sys_s: f64,
    /// User + system CPU seconds, summed.
    pub cpu_s: f64,
    /// Each process's peak RSS, summed, MiB (shared libraries count once per process).
    pub rss_mib_sum: f64,
    /// The largest peak RSS of one process, MiB.
    pub rss_mib_max: f64,
    /// The longest wall time, s.
    pub wall_s_max: f64,
    /// Processes that did not exit with status 0 (signals and time-outs included).
    pub failed: usize,
    /// Processes killed at the time limit.
    pub timed_out: usize,
}

impl UsageSum {
    /// The sums of `usages`.
    pub fn of(usages: &[Usage]) -> UsageSum {
        UsageSum {
            processes: usages.len(),
            user_s: usages.iter().map(|u| u.user_s).sum(),
            sys_s: usages.iter().map(|u| u.sys_s).sum(),
            cpu_s: usages.iter().map(Usage::cpu_s).sum(),
            rss_mib_sum: usages.iter().map(|u| u.max_rss_kib as f64).sum::<f64>() / 1024.0,
            rss_mib_max: usages
                .iter()
                .map(|u| u.max_rss_kib as f64 / 1024.0)
                .fold(0.0, f64::max),
            wall_s_max: usages.iter().map(|u| u.wall_s).fold(0.0, f64::max),
            failed: usages
                .iter()
                .filter(|u| u.timed_out || u.exit_code != Some(0))
                .count(),
            timed_out: usages.iter().filter(|u| u.timed_out).count(),
        }
    }

    /// The mean peak RSS of a process, MiB; `None` without processes.
    pub fn rss_mib_mean(&self) -> Option<f64> {
        (self.processes > 0).then(|| self.rss_mib_sum / self.processes as f64)
    }
}

/// What `mpegcoder push-many --stats-json` reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PublisherReport {
    /// Streams (`total.streams`).
    pub streams: u64,
    /// Streams that failed (`total.streams_failed`).
    pub streams_failed: u64,
    /// Video frames sent, all streams (`total.frames_sent`).
    pub frames_sent: u64,
    /// Audio frames sent, all streams (`total.audio_frames_sent`).
    pub audio_frames_sent: u64,
    /// The fewest video frames a stream sent (streams without a summary count 0).
    pub frames_sent_min: Option<u64>,
    /// The first few streams' errors.
    pub stream_errors: Vec<String>,
}

/// Reads the stats JSON of `push-many` for `n` streams; an error string when it does not
/// have the expected shape.
pub fn parse_stats(text: &str, n: usize) -> std::result::Result<PublisherReport, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("stats JSON does not parse: {e}"))?;
    let streams = v
        .get("streams")
        .and_then(|s| s.as_array())
        .ok_or("stats JSON lacks a \"streams\" array")?;
    if streams.len() != n {
        return Err(format!(
            "stats JSON lists {} streams, expected {n}",
            streams.len()
        ));
    }
    let total = v
        .get("total")
        .filter(|t| t.is_object())
        .ok_or("stats JSON lacks a \"total\" object")?;
    let field = |key: &str| {
        total
            .get(key)
            .and_then(|x| x.as_u64())
            .ok_or(format!("stats JSON lacks total.{key}"))
    };
    let mut stream_errors = Vec::new();
    let mut frames_sent_min: Option<u64> = None;
    for (i, s) in streams.iter().enumerate() {
        if let Some(e) = s.get("error").and_then(|e| e.as_str()) {
            if stream_errors.len() < MAX_ERRORS {
                stream_errors.push(format!("stream {i}: {e}"));
            }
        }
        // The push summary's count: under "stats", or at its top level.
        let summary = s.get("summary");
        let sent = summary
            .and_then(|m| m.get("stats"))
            .and_then(|st| st.get("frames_sent"))
            .or(summary.and_then(|m| m.get("frames_sent")))
            .and_then(|f| f.as_u64())
            .unwrap_or(0);
        frames_sent_min = Some(frames_sent_min.map_or(sent, |m| m.min(sent)));
    }
    Ok(PublisherReport {
        streams: field("streams")?,
        streams_failed: field("streams_failed")?,
        frames_sent: field("frames_sent")?,
        audio_frames_sent: field("audio_frames_sent")?,
        frames_sent_min,
        stream_errors,
    })
}

/// The text of a `push-many` list file: one `INPUT URL` line per URL. Fails when the input
/// or a URL holds whitespace (the list separates them by whitespace).
pub fn list_text(input: &Path, urls: &[String]) -> Result<String> {
    let input = input.display().to_string();
    if input.is_empty() || input.contains(char::is_whitespace) {
        bail!("the clip path {input:?} cannot go in a push-many list (whitespace)");
    }
    let mut s = format!("# {} streams of {input}\n", urls.len());
    for url in urls {
        if url.is_empty() || url.contains(char::is_whitespace) {
            bail!("the URL {url:?} cannot go in a push-many list (whitespace)");
        }
        let _ = writeln!(s, "{input} {url}");
    }
    Ok(s)
}

/// What the publishers of one pass did.
#[derive(Debug, Default)]
struct Pushed {
    usages: Vec<Usage>,
    publisher: Option<PublisherReport>,
    errors: Vec<String>,
}

impl Pushed {
    fn error(&mut self, e: String) {
        self.errors.push(one_line(&e));
    }
}

/// `e` on one line (for the table), at most 400 characters.
fn one_line(e: &str) -> String {
    let line = e.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(400) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

/// Pushes the clip to every URL with `side`; `tag` names the files of the pass.
fn push(setup: &ScaleSetup, side: Side, urls: &[String], tag: &str) -> Pushed {
    match side {
        Side::Mpegcoder => push_mpegcoder(setup, urls, tag),
        Side::Ffmpeg => push_ffmpeg(setup, urls, tag),
    }
}

fn push_mpegcoder(setup: &ScaleSetup, urls: &[String], tag: &str) -> Pushed {
    let mut out = Pushed::default();
    let Some(mpegcoder) = &setup.mpegcoder else {
        out.error("no mpegcoder binary".into());
        return out;
    };
    let list = setup.work.join(format!("{tag}.list"));
    let json = setup.work.join(format!("{tag}.json"));
    let log = setup.work.join(format!("{tag}.log"));
    let _ = std::fs::remove_file(&json);
    let written = list_text(&setup.clip.path, urls).and_then(|text| {
        std::fs::write(&list, text).with_context(|| format!("cannot write {}", list.display()))
    });
    if let Err(e) = written {
        out.error(format!("{e:#}"));
        return out;
    }
    let args: Vec<String> = [
        "push-many".to_string(),
        list.display().to_string(),
        "--codec".into(),
        "copy".into(),
        "-q".into(),
        "--stats-json".into(),
        json.display().to_string(),
    ]
    .into();
    let usage = Timed::spawn(&setup.time, mpegcoder, &args, &log)
        .and_then(|child| child.wait(setup.limit(urls.len())));
    match usage {
        Ok(u) => {
            if let Some(e) = exit_error(&u) {
                out.error(format!("mpegcoder push-many {e}"));
            }
            out.usages.push(u);
        }
        Err(e) => out.error(format!("mpegcoder push-many: {e:#}")),
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    for line in text.lines().filter(|l| l.starts_with("error: ")) {
        out.error(line.to_string());
    }
    match std::fs::read_to_string(&json) {
        Err(e) => out.error(format!("no stats JSON at {}: {e}", json.display())),
        Ok(text) => match parse_stats(&text, urls.len()) {
            Ok(p) => out.publisher = Some(p),
            Err(e) => out.error(e),
        },
    }
    out
}

fn push_ffmpeg(setup: &ScaleSetup, urls: &[String], tag: &str) -> Pushed {
    let mut out = Pushed::default();
    let dir = setup.work.join(tag);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        out.error(format!("cannot create {}: {e}", dir.display()));
        return out;
    }
    // Start them all, one right after the other.
    let mut children = Vec::with_capacity(urls.len());
    for (i, url) in urls.iter().enumerate() {
        let log = dir.join(format!("ffmpeg-{i}.log"));
        match Timed::spawn(&setup.time, &setup.ffmpeg, &setup.ffmpeg_args(url), &log) {
            Ok(c) => children.push((i, c, log)),
            Err(e) => out.error(format!("stream {i}: {e:#}")),
        }
    }
    let limit = setup.limit(urls.len());
    for (i, child, log) in children {
        // Each has its own deadline from its start; `wait` kills it by PID when it passes.
        match child.wait(limit) {
            Ok(u) => {
                if let Some(e) = exit_error(&u) {
                    let last = tail_lines(&log, 1).pop().unwrap_or_default();
                    out.error(format!("stream {i}: ffmpeg {e}: {last}"));
                }
                out.usages.push(u);
            }
            Err(e) => out.error(format!("stream {i}: {e:#}")),
        }
    }
    out
}

/// How a process that did not end well ended; `None` for exit status 0.
fn exit_error(u: &Usage) -> Option<String> {
    match (u.timed_out, u.exit_code) {
        (true, _) => Some(format!("killed at the time limit after {:.1} s", u.wall_s)),
        (false, Some(0)) => None,
        (false, Some(c)) => Some(format!("exited with status {c}")),
        (false, None) => Some("was ended by a signal".into()),
    }
}

/// One pass (the sink, or nginx) of a step.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pass {
    /// Streams whose every video frame arrived.
    pub streams_complete: usize,
    /// The fewest video frames any stream delivered.
    pub frames_min: usize,
    /// Video frames delivered in all.
    pub frames_total: usize,
    /// The sink: the fewest audio frames any stream delivered (the clip has
    /// [`ScaleStep::audio_frames_expected`]).
    pub audio_frames_min: Option<u64>,
    /// The sink: streams whose every audio frame arrived.
    pub audio_streams_complete: Option<usize>,
    /// The side's processes.
    pub usage: UsageSum,
    /// The mpegcoder side: what `push-many` reported.
    pub publisher: Option<PublisherReport>,
    /// The first few errors (publisher exits and error lines, receiver errors).
    pub errors: Vec<String>,
    /// Errors seen in all (`errors` keeps the first few).
    pub error_count: usize,
}

impl Pass {
    fn new(pushed: Pushed, video: &[usize], frames: usize) -> Pass {
        Pass {
            streams_complete: video.iter().filter(|&&c| c == frames).count(),
            frames_min: video.iter().copied().min().unwrap_or(0),
            frames_total: video.iter().sum(),
            audio_frames_min: None,
            audio_streams_complete: None,
            usage: UsageSum::of(&pushed.usages),
            publisher: pushed.publisher,
            error_count: pushed.errors.len(),
            errors: pushed.errors.into_iter().take(MAX_ERRORS).collect(),
        }
    }

    fn add_error(&mut self, e: String) {
        self.error_count += 1;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(one_line(&e));
        }
    }
}

/// One (side, N).
#[derive(Debug, Clone, Serialize)]
pub struct ScaleStep {
    /// Who published.
    pub side: Side,
    /// Streams.
    pub streams: usize,
    /// The clip's video frames (per stream).
    pub frames_expected: usize,
    /// The clip's audio packets (per stream).
    pub audio_frames_expected: u64,
    /// At the sink.
    pub sink: Pass,
    /// Steady-state deviation at the sink, all streams pooled.
    pub pooled: Option<Spread>,
    /// The largest per-stream p99.
    pub worst_stream_p99_ms: Option<f64>,
    /// At nginx (when it ran).
    pub nginx: Option<Pass>,
    /// 1-minute load average before the step.
    pub load_before: Option<f64>,
    /// See [`ScaleStep::passed`] (kept in the JSON).
    pub passed: bool,
    /// See [`ScaleStep::delivered`] (kept in the JSON).
    pub delivered: bool,
}

/// The pooled p99 up to which a side still counts as delivering (stepping goes on): past
/// 20 ms a frame arrives nearer to the next frame's slot (33 ms at 30 fps) than to its own.
/// The pass rule is [`P99_LIMIT_MS`]; this looser one shows where a side breaks down even
/// when it never met the pass rule (ffmpeg's `-re` pacing of audio+video sits just above
/// 5 ms with a single stream).
pub const DELIVERY_P99_LIMIT_MS: f64 = 20.0;

impl ScaleStep {
    /// Every stream complete at both receivers and the pooled p99 within
    /// [`DELIVERY_P99_LIMIT_MS`].
    pub fn delivered(&self) -> bool {
        self.complete_within(DELIVERY_P99_LIMIT_MS)
    }

    /// Every stream complete at the sink and at nginx (when it ran), and the pooled p99
    /// within [`P99_LIMIT_MS`].
    pub fn passed(&self) -> bool {
        self.complete_within(P99_LIMIT_MS)
    }

    fn complete_within(&self, p99_ms: f64) -> bool {
        self.sink.streams_complete == self.streams
            && self
                .nginx
                .as_ref()
                .is_none_or(|d| d.streams_complete == self.streams)
            && self.pooled.is_some_and(|p| p.p99_ms <= p99_ms)
    }
}

/// The stream index of a sink session named `live/s{i}`.
fn stream_index(name: &str, n: usize) -> Option<usize> {
    name.strip_prefix("live/s")?
        .parse::<usize>()
        .ok()
        .filter(|&i| i < n)
}

/// Per stream: video frames and audio frames of the session that delivered the most frames
/// under its name; the other sessions (duplicates, unknown names) as errors.
fn per_stream(sessions: &[Session], n: usize) -> (Vec<usize>, Vec<u64>, Vec<String>) {
    let mut video = vec![0usize; n];
    let mut audio = vec![0u64; n];
    let mut seen = vec![0usize; n];
    let mut errors = Vec::new();
    for s in sessions {
        let Some(i) = stream_index(&s.name, n) else {
            errors.push(format!("sink: unexpected session {:?}", s.name));
            continue;
        };
        seen[i] += 1;
        if seen[i] == 2 {
            errors.push(format!("sink: stream {i} connected more than once"));
        }
        let frames = s.frames.len();
        if frames >= video[i] {
            video[i] = frames;
            audio[i] = s.audio.iter().map(|a| u64::from(a.frames)).sum();
        }
    }
    for (i, &k) in seen.iter().enumerate() {
        if k == 0 {
            errors.push(format!("sink: stream {i} never connected"));
        }
    }
    (video, audio, errors)
}

fn wire_pass(
    setup: &ScaleSetup,
    side: Side,
    n: usize,
) -> Result<(Pass, Option<Spread>, Option<f64>)> {
    let sink = Sink::start(SinkKind::Rtmp, Duration::from_secs(20))?;
    let prefix = sink.url("s");
    let urls: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    let pushed = push(setup, side, &urls, &format!("scale-{}-{n}", side.name()));
    let sessions = sink.finish(n, Duration::from_secs(10));
    let mut pooled = Vec::new();
    let mut worst: Option<f64> = None;
    for s in &sessions {
        let Some(first) = s.frames.first() else {
            continue;
        };
        let dev = steady_abs_deviations_ms(&s.arrivals_after(first.at), setup.fps);
        if let Some(p) = Spread::of(&dev) {
            worst = Some(worst.map_or(p.p99_ms, |w: f64| w.max(p.p99_ms)));
        }
        pooled.extend(dev);
    }
    let (video, audio, sink_errors) = per_stream(&sessions, n);
    let mut pass = Pass::new(pushed, &video, setup.frames);
    pass.audio_frames_min = audio.iter().copied().min();
    pass.audio_streams_complete = Some(
        audio
            .iter()
            .filter(|&&a| a == setup.clip.audio_packets)
            .count(),
    );
    for e in sink_errors {
        pass.add_error(e);
    }
    for s in &sessions {
        if let Some(e) = &s.error {
            pass.add_error(format!("sink session {}: {e}", s.name));
        }
    }
    Ok((pass, Spread::of(&pooled), worst))
}

fn nginx_pass(setup: &ScaleSetup, nginx: &Path, side: Side, n: usize) -> Result<Pass> {
    let tag = format!("scale-{}-{n}-nginx", side.name());
    let dir = setup.work.join(format!("{tag}-server"));
    let _ = std::fs::remove_dir_all(&dir);
    let server = match Nginx::start(nginx, &dir, n) {
        Ok(s) => s,
        Err(e) => {
            let mut pass = Pass::new(Pushed::default(), &vec![0; n], setup.frames);
            pass.add_error(format!("nginx did not start: {e:#}"));
            return Ok(pass);
        }
    };
    let prefix = server.url("s");
    let urls: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    let pushed = push(setup, side, &urls, &tag);
    let keys: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let open = server.wait_recordings(&keys, Duration::from_secs_f64(30.0 + n as f64 * 0.05));
    let counts: Vec<usize> = keys
        .iter()
        .map(|k| {
            std::fs::read(server.recording(k))
                .ok()
                .and_then(|b| flv::count(&b))
                .map_or(0, |c| c.frames)
        })
        .collect();
    drop(server);
    // The recordings are large (N × the clip); only the counts are kept.
    std::fs::remove_dir_all(dir.join("rec"))
        .with_context(|| format!("cannot remove {}", dir.join("rec").display()))?;
    let mut pass = Pass::new(pushed, &counts, setup.frames);
    if !open.is_empty() {
        pass.add_error(format!("{} recordings not closed by nginx", open.len()));
    }
    Ok(pass)
}

/// Runs one step: N streams to the sink, then (when nginx is there) N streams to nginx.
pub fn step(setup: &ScaleSetup, side: Side, n: usize) -> Result<ScaleStep> {
    let load_before = load_average();
    let (sink, pooled, worst) = wire_pass(setup, side, n)?;
    let nginx = match &setup.nginx {
        Some(path) => Some(nginx_pass(setup, path, side, n)?),
        None => None,
    };
    let mut s = ScaleStep {
        side,
        streams: n,
        frames_expected: setup.frames,
        audio_frames_expected: setup.clip.audio_packets,
        sink,
        pooled,
        worst_stream_p99_ms: worst,
        nginx,
        load_before,
        passed: false,
        delivered: false,
    };
    s.passed = s.passed();
    s.delivered = s.delivered();
    Ok(s)
}

fn progress(s: &ScaleStep) -> String {
    format!(
        "  sink: {}/{} complete (min {} of {} frames, min {} of {} audio), pooled p99 {:.2} ms; \
         nginx: {}; CPU {:.2} s, RSS {:.1} MiB in {} processes; {}{}",
        s.sink.streams_complete,
        s.streams,
        s.sink.frames_min,
        s.frames_expected,
        s.sink
            .audio_frames_min
            .map_or("–".into(), |a| a.to_string()),
        s.audio_frames_expected,
        s.pooled.map_or(f64::NAN, |p| p.p99_ms),
        s.nginx.as_ref().map_or("not run".to_string(), |d| format!(
            "{}/{} complete",
            d.streams_complete, s.streams
        )),
        s.sink.usage.cpu_s,
        s.sink.usage.rss_mib_sum,
        s.sink.usage.processes,
        if s.passed { "passed" } else { "FAILED" },
        s.sink
            .errors
            .first()
            .or(s.nginx.as_ref().and_then(|d| d.errors.first()))
            .map_or(String::new(), |e| format!(" ({e})")),
    )
}

/// For each N of `steps` in increasing order, runs each of `sides` that still delivers
/// ([`ScaleStep::delivered`]); a step that does not deliver runs once more, and the side
/// stops when that one does not either. Ends when no side delivers or the steps ran out.
pub fn scale(setup: &ScaleSetup, steps: &[usize], sides: &[Side]) -> Result<Vec<ScaleStep>> {
    std::fs::create_dir_all(&setup.work)
        .with_context(|| format!("cannot create {}", setup.work.display()))?;
    // nginx reads its files relative to its prefix: the work directory must be absolute (and
    // the list files name the clip by its absolute path).
    let absolute = |p: &Path| {
        std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))
    };
    let mut clip = setup.clip.clone();
    clip.path = absolute(&clip.path)?;
    let setup = &ScaleSetup {
        work: absolute(&setup.work)?,
        clip,
        ..setup.clone()
    };
    scale_with(steps, sides, |side, n| {
        eprintln!(
            "scale: {n} copy streams (audio + video), {} ...",
            match side {
                Side::Mpegcoder => "one mpegcoder push-many".to_string(),
                Side::Ffmpeg => format!("{n} ffmpeg processes"),
            }
        );
        let s = step(setup, side, n)?;
        eprintln!("{}", progress(&s));
        Ok(s)
    })
}

/// The stepping rule of [`scale`], with `run` doing each step.
fn scale_with(
    steps: &[usize],
    sides: &[Side],
    mut run: impl FnMut(Side, usize) -> Result<ScaleStep>,
) -> Result<Vec<ScaleStep>> {
    let mut ns: Vec<usize> = steps.iter().copied().filter(|&n| n > 0).collect();
    ns.sort_unstable();
    ns.dedup();
    let mut order: Vec<Side> = Vec::new();
    for &s in sides {
        if !order.contains(&s) {
            order.push(s);
        }
    }
    let mut failed: Vec<Side> = Vec::new();
    let mut out = Vec::new();
    for (k, &n) in ns.iter().enumerate() {
        if failed.len() == order.len() {
            break;
        }
        // Alternate which side goes first, so neither always runs on a cooler machine.
        let mut this = order.clone();
        if k % 2 == 1 {
            this.reverse();
        }
        for side in this {
            if failed.contains(&side) {
                continue;
            }
            let s = run(side, n)?;
            let delivered = s.delivered();
            out.push(s);
            if delivered {
                continue;
            }
            // Once more before the side stops: on a shared machine one step can fall on a
            // burst of other load (both rows are kept).
            let again = run(side, n)?;
            if !again.delivered() {
                failed.push(side);
            }
            out.push(again);
        }
    }
    Ok(out)
}

/// The largest N at which `side` still delivered (see [`ScaleStep::delivered`]).
pub fn largest_delivering(steps: &[ScaleStep], side: Side) -> Option<usize> {
    steps
        .iter()
        .filter(|s| s.side == side && s.delivered())
        .map(|s| s.streams)
        .max()
}

/// The largest N at which `side` passed.
pub fn largest_passing(steps: &[ScaleStep], side: Side) -> Option<usize> {
    steps
        .iter()
        .filter(|s| s.side == side && s.passed())
        .map(|s| s.streams)
        .max()
}

fn ms(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map_or("–".into(), |v| format!("{v:.2}"))
}

/// The markdown section: the clip, the table, the largest passing N of each side.
pub fn markdown(steps: &[ScaleStep], spec: &ClipSpec, clip: &AvClip, sides: &[Side]) -> String {
    let mut s = format!(
        "\n## N copy streams: one `mpegcoder push-many` against N `ffmpeg -re -c copy`\n\n\
         Clip: {}x{} at {} fps, {} s ({} video frames) with AAC ({} frames); every stream goes \
         to one receiver (the bench's RTMP sink, then nginx-rtmp recording every stream). A step \
         passes when every stream delivered every video frame to both and the pooled steady \
         p99 deviation at the sink is at most {} ms. A side keeps stepping up while it still \
         delivers (every frame, pooled p99 at most {} ms), so that its breaking point shows \
         even where it never passed.\n\n",
        spec.width,
        spec.height,
        spec.fps,
        spec.seconds,
        spec.frames(),
        clip.audio_packets,
        P99_LIMIT_MS,
        DELIVERY_P99_LIMIT_MS
    );
    s.push_str(
        "| side | N | sink: complete streams (min video / min audio frames) | pooled p99 / max, \
         ms | worst stream p99, ms | nginx: complete streams | CPU, s (sum) | RSS, MiB (sum) \
         | load before | passed (≤ 5 ms) | delivered |\n",
    );
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    for st in steps {
        let u = &st.sink.usage;
        let _ = writeln!(
            s,
            "| {} | {} | {}/{} ({} of {} / {} of {}) | {} / {} | {} | {} | {:.2} | {} | {} | {} | {} |",
            st.side.name(),
            st.streams,
            st.sink.streams_complete,
            st.streams,
            st.sink.frames_min,
            st.frames_expected,
            st.sink
                .audio_frames_min
                .map_or("–".into(), |a| a.to_string()),
            st.audio_frames_expected,
            ms(st.pooled.map(|p| p.p99_ms)),
            ms(st.pooled.map(|p| p.max_ms)),
            ms(st.worst_stream_p99_ms),
            st.nginx.as_ref().map_or("not run".into(), |d| format!(
                "{}/{} (min {} frames)",
                d.streams_complete, st.streams, d.frames_min
            )),
            u.cpu_s,
            match (st.side, u.rss_mib_mean()) {
                (Side::Ffmpeg, Some(mean)) =>
                    format!("{:.1} ({mean:.1} per process)", u.rss_mib_sum),
                _ => format!("{:.1}", u.rss_mib_sum),
            },
            st.load_before.map_or("–".into(), |l| format!("{l:.2}")),
            if st.passed() { "yes" } else { "no" },
            if st.delivered() { "yes" } else { "no" },
        );
    }
    s.push_str(
        "\nCPU and RSS are the sink pass's, summed over the side's processes (GNU time); \
         ffmpeg's RSS sums count the shared libraries once per process, so they overstate the \
         memory N ffmpeg processes take together.\n",
    );
    let failures: Vec<String> = steps
        .iter()
        .filter(|st| !st.delivered())
        .filter_map(|st| {
            let e = st
                .sink
                .errors
                .first()
                .or(st.nginx.as_ref().and_then(|d| d.errors.first()))?;
            Some(format!("{} at {}: {e}", st.side.name(), st.streams))
        })
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(
            s,
            "\nFirst errors of the failed steps: {}.",
            failures.join("; ")
        );
    }
    let best: Vec<String> = sides
        .iter()
        .map(|&side| {
            format!(
                "{} {}",
                side.name(),
                largest_passing(steps, side).map_or("none".into(), |n| n.to_string())
            )
        })
        .collect();
    let _ = writeln!(s, "\nLargest passing N: {}.", best.join(", "));
    let delivering: Vec<String> = sides
        .iter()
        .map(|&side| {
            format!(
                "{} {}",
                side.name(),
                largest_delivering(steps, side).map_or("none".into(), |n| n.to_string())
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "\nLargest N still delivering (p99 ≤ {DELIVERY_P99_LIMIT_MS} ms): {}.",
        delivering.join(", ")
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::AudioSpec;

    fn clip() -> AvClip {
        AvClip {
            path: PathBuf::from("/c/av.mp4"),
            audio_spec: AudioSpec::AAC_48K_STEREO,
            video_packets: 300,
            audio_packets: 470,
            video_first_dts_s: -0.066,
            video_first_pts_s: 0.0,
            audio_first_pts_s: -0.021,
            audio_frame_samples: 1024,
            audio_bit_rate: None,
        }
    }

    fn fake(side: Side, n: usize, ok: bool) -> ScaleStep {
        let pass = Pass {
            streams_complete: if ok { n } else { n - 1 },
            frames_min: 300,
            frames_total: 300 * n,
            audio_frames_min: Some(470),
            audio_streams_complete: Some(n),
            usage: UsageSum::of(&[Usage {
                user_s: 1.0,
                max_rss_kib: 2048,
                exit_code: Some(0),
                ..Usage::default()
            }]),
            ..Pass::default()
        };
        let mut s = ScaleStep {
            side,
            streams: n,
            frames_expected: 300,
            audio_frames_expected: 470,
            sink: pass.clone(),
            pooled: Spread::of(&[1.0, 2.0]),
            worst_stream_p99_ms: Some(2.0),
            nginx: Some(pass),
            load_before: Some(0.5),
            passed: false,
            delivered: false,
        };
        s.passed = s.passed();
        s.delivered = s.delivered();
        s
    }

    #[test]
    fn writes_the_list_file() {
        let urls = vec![
            "rtmp://h:1/live/s0".to_string(),
            "rtmp://h:1/live/s1".into(),
        ];
        let t = list_text(Path::new("/c/av.mp4"), &urls).expect("list");
        let lines: Vec<&str> = t
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines,
            [
                "/c/av.mp4 rtmp://h:1/live/s0",
                "/c/av.mp4 rtmp://h:1/live/s1"
            ]
        );
        assert!(list_text(Path::new("/my clips/av.mp4"), &urls).is_err());
        assert!(list_text(Path::new("/c/av.mp4"), &["rtmp://h/a b".into()]).is_err());
    }

    #[test]
    fn ffmpeg_maps_video_and_audio() {
        let setup = ScaleSetup {
            mpegcoder: None,
            ffmpeg: "ffmpeg".into(),
            time: "/usr/bin/time".into(),
            nginx: None,
            clip: clip(),
            frames: 300,
            fps: 30.0,
            work: "/w".into(),
        };
        assert_eq!(
            setup.ffmpeg_args("rtmp://h/live/s3").join(" "),
            "-hide_banner -nostdin -loglevel error -re -i /c/av.mp4 -map 0:v:0 -map 0:a:0? -c \
             copy -f flv rtmp://h/live/s3"
        );
        assert_eq!(setup.limit(100), Duration::from_secs(90));
    }

    #[test]
    fn sums_usages() {
        let u = |cpu: f64, rss: u64, wall: f64, code: Option<i32>, timed_out: bool| Usage {
            user_s: cpu,
            sys_s: 0.5,
            max_rss_kib: rss,
            wall_s: wall,
            exit_code: code,
            timed_out,
        };
        let s = UsageSum::of(&[
            u(1.0, 10 * 1024, 10.0, Some(0), false),
            u(2.0, 20 * 1024, 12.0, Some(1), false),
            u(0.5, 30 * 1024, 70.0, None, true),
        ]);
        assert_eq!(s.processes, 3);
        assert!((s.cpu_s - 5.0).abs() < 1e-9);
        assert!((s.sys_s - 1.5).abs() < 1e-9);
        assert!((s.rss_mib_sum - 60.0).abs() < 1e-9);
        assert!((s.rss_mib_max - 30.0).abs() < 1e-9);
        assert_eq!(s.rss_mib_mean(), Some(20.0));
        assert!((s.wall_s_max - 70.0).abs() < 1e-9);
        assert_eq!((s.failed, s.timed_out), (2, 1));
        assert_eq!(UsageSum::of(&[]).rss_mib_mean(), None);
    }

    #[test]
    fn parses_the_stats_json() {
        let text = r#"{
            "streams": [
                {"input": "a", "url": "u0", "error": null,
                 "summary": {"stats": {"frames_sent": 300, "audio_frames_sent": 470}}},
                {"input": "a", "url": "u1", "error": "connection refused", "summary": null},
                {"input": "a", "url": "u2", "error": null,
                 "summary": {"frames_sent": 280, "audio_frames_sent": 400}}
            ],
            "total": {"streams": 3, "streams_failed": 1, "frames_sent": 580,
                      "audio_frames_sent": 470}
        }"#;
        let p = parse_stats(text, 3).expect("parses");
        assert_eq!((p.streams, p.streams_failed, p.frames_sent), (3, 1, 580));
        assert_eq!(p.audio_frames_sent, 470);
        assert_eq!(p.frames_sent_min, Some(0));
        assert_eq!(p.stream_errors, ["stream 1: connection refused"]);
        let ok = text.replace(
            r#""connection refused", "summary": null"#,
            r#"null, "summary": {"stats": {"frames_sent": 290}}"#,
        );
        assert_eq!(
            parse_stats(&ok, 3).expect("parses").frames_sent_min,
            Some(280)
        );
        assert!(parse_stats(text, 2)
            .expect_err("count")
            .contains("expected 2"));
        assert!(parse_stats("{\"streams\": []}", 0)
            .expect_err("total")
            .contains("total"));
        assert!(
            parse_stats(r#"{"streams": [], "total": {"streams": 0}}"#, 0)
                .expect_err("field")
                .contains("total.streams_failed")
        );
        assert!(parse_stats("not json", 0).is_err());
    }

    #[test]
    fn maps_sessions_to_streams() {
        let at = std::time::Instant::now();
        let mut a = Session::new(0, at);
        a.name = "live/s1".into();
        let mut b = Session::new(1, at);
        b.name = "live/other".into();
        let (video, audio, errors) = per_stream(&[a, b], 2);
        assert_eq!((video, audio), (vec![0, 0], vec![0, 0]));
        assert_eq!(
            errors,
            [
                "sink: unexpected session \"live/other\"",
                "sink: stream 0 never connected"
            ]
        );
        assert_eq!(stream_index("live/s12", 13), Some(12));
        assert_eq!(stream_index("live/s12", 12), None);
        assert_eq!(one_line("a\n  b\tc "), "a b c");
        assert_eq!(one_line(&"é".repeat(500)).chars().count(), 401);
    }

    #[test]
    fn the_pass_rule() {
        assert!(fake(Side::Ffmpeg, 5, true).passed());
        assert!(!fake(Side::Ffmpeg, 5, false).passed());
        let mut s = fake(Side::Mpegcoder, 5, true);
        s.pooled = Spread::of(&[6.0]);
        assert!(!s.passed());
        assert!(s.delivered(), "over 5 ms, within 20 ms: still stepping");
        s.pooled = Spread::of(&[21.0]);
        assert!(!s.delivered());
        s.pooled = None;
        assert!(!s.passed());
        let mut s = fake(Side::Mpegcoder, 5, true);
        if let Some(n) = s.nginx.as_mut() {
            n.streams_complete = 4;
        }
        assert!(!s.passed());
        s.nginx = None;
        assert!(s.passed());
    }

    #[test]
    fn a_failed_side_stops_stepping() {
        let mut ran = Vec::new();
        let steps = scale_with(
            &[10, 5, 20, 40, 5],
            &[Side::Mpegcoder, Side::Ffmpeg],
            |side, n| {
                ran.push((side, n));
                Ok(fake(side, n, side == Side::Mpegcoder || n < 20))
            },
        )
        .expect("runs");
        assert_eq!(
            ran,
            [
                (Side::Mpegcoder, 5),
                (Side::Ffmpeg, 5),
                (Side::Ffmpeg, 10),
                (Side::Mpegcoder, 10),
                (Side::Mpegcoder, 20),
                (Side::Ffmpeg, 20),
                (Side::Ffmpeg, 20),
                (Side::Mpegcoder, 40),
            ]
        );
        assert_eq!(largest_passing(&steps, Side::Mpegcoder), Some(40));
        assert_eq!(largest_passing(&steps, Side::Ffmpeg), Some(10));
        let mut count = 0;
        let both_fail = scale_with(&[1, 2, 3], &[Side::Ffmpeg, Side::Mpegcoder], |side, n| {
            count += 1;
            Ok(fake(side, n, false))
        })
        .expect("runs");
        // Each failing step runs twice before its side stops.
        assert_eq!((count, both_fail.len()), (4, 4));
        // A step that delivers on its second run lets the side go on.
        let mut tries = 0;
        let flaky = scale_with(&[1, 2], &[Side::Mpegcoder], |side, n| {
            tries += 1;
            Ok(fake(side, n, tries != 1))
        })
        .expect("runs");
        assert_eq!(flaky.len(), 3);
        assert_eq!(largest_delivering(&flaky, Side::Mpegcoder), Some(2));
    }

    #[test]
    fn renders_the_table() {
        let steps = vec![
            fake(Side::Mpegcoder, 5, true),
            fake(Side::Ffmpeg, 5, true),
            fake(Side::Ffmpeg, 10, false),
        ];
        let md = markdown(
            &steps,
            &ClipSpec::hd(10),
            &clip(),
            &[Side::Mpegcoder, Side::Ffmpeg],
        );
        assert!(md.contains("| mpegcoder | 5 | 5/5 (300 of 300 / 470 of 470) | 2.00 / 2.00 |"));
        assert!(md.contains("| 2.0 (2.0 per process) |"), "{md}");
        assert!(md.contains("| ffmpeg | 10 | 9/10 "));
        assert!(md.contains("| no |"));
        assert!(md.contains("shared libraries once per process"));
        assert!(md.contains("Largest passing N: mpegcoder 5, ffmpeg 5."));
    }
}
