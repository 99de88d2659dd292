//! mpegCoder's two example scripts ("Pushing a video stream" in mpegCoder's documentation),
//! run with the `mpegcoder` Python package, against `mpegcoder push` publishing the same clip
//! (`mpegcoder-bench python`).
//!
//! The publishers, each publishing the bench's clip to one of its sinks (RTSP/TCP, RTMP),
//! which records when every frame arrives:
//! - **non-blocking script** ([`non_blocking_script`]): one process; `MpegDecoder.ExtractGOP`
//!   decodes a GOP at a time, `MpegServer.ServeFrame` encodes and sends each frame at once,
//!   and every 10 frames the script sleeps `getParameter('waitRef')` (half of how far the
//!   stream is ahead of the playing time);
//! - **dual-process script** ([`dual_process_script`]): a decoder process and an encoder
//!   process (`multiprocessing`), the frames pickled through a `multiprocessing.Queue` of 20,
//!   `ServeFrameBlock` (the server's own pacer), `maxBframe=16`;
//! - **`mpegcoder push`** with what the scripts' servers inherit from the decoder made
//!   explicit: `--codec libx264 --preset veryfast --bitrate B --gop G --bframes N`, with B and
//!   G the decoder's `bitRate` and `GOPSize` and N its `maxBframe` (as in the non-blocking
//!   script) or 16 (as in the dual-process script).
//!
//! The scripts are the documentation's, indentation restored, with three substitutions only:
//! `import mpegCoder` becomes `import mpegcoder as mpegCoder`, the video name
//! `'test-video.mp4'` becomes the clip's path and the address `'rtsp://localhost:8554/video'`
//! the sink's URL ([`script`]). A copy is written into `OUT/python/scripts/` for each run (the
//! sink's port changes from run to run) and run with `PYTHON SCRIPT`.
//!
//! Every publisher runs under GNU time. Its user + system CPU includes the processes that the
//! measured process waited for (Linux fills in wait4's usage with the child's own time and
//! that of its reaped children), so the dual-process script's two `multiprocessing` children
//! count. Its peak RSS does not add up: it is the largest of the processes. So the bench also
//! samples the process tree every 100 ms from /proc: the sum of the processes' RSS and PSS
//! (smaps_rollup; PSS shares the pages that the forked children still share with their
//! parent), and the CPU time of each process at its last sample, summed (a lower bound of the
//! tree's CPU, to check GNU time's figure against: a figure of the main process alone would
//! fall far below it).
//!
//! Python: `--python PATH`, by default `target/bench-python-venv/bin/python`: a virtual
//! environment with the package built in release mode, which `bash scripts/bench.sh --python`
//! makes (`python3 -m venv target/bench-python-venv`, `pip install maturin==1.9.6
//! numpy==2.3.5`, then `PATH=VENV/bin:$PATH VENV/bin/pip install --no-build-isolation
//! ./python`: pip's build of the package is a release build). Before the runs the bench opens
//! the clip with that Python's `MpegDecoder` and reads what `getParameter()` returns: the
//! settings the scripts inherit, and so those given to `mpegcoder push`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::process::{load_average, Timed, Usage};
use crate::single::{serde_plain, Proto};
use crate::sink::{seconds_between, Sink};
use crate::stats::{median, Timing};

/// mpegCoder's non-blocking example (`server-non-blocking.py`) as its documentation gives it:
/// the copy in `python/tests/` (which the package's tests run) with its import line back to
/// the documentation's.
pub fn non_blocking_script() -> String {
    as_documented(include_str!("../../python/tests/server_non_blocking.py"))
}

/// mpegCoder's dual-process example (`server-dual-procs.py`), the same way.
pub fn dual_process_script() -> String {
    as_documented(include_str!("../../python/tests/server_dual_procs.py"))
}

/// A script of `python/tests/` with the documentation's `import mpegCoder`.
fn as_documented(ours: &str) -> String {
    ours.replacen("import mpegcoder as mpegCoder\n", "import mpegCoder\n", 1)
}

/// The dual-process script's `maxBframe`.
pub const DUAL_PROCESS_BFRAMES: u32 = 16;

/// The video name and the address in the documentation's scripts.
const DOC_VIDEO: &str = "'test-video.mp4'";
const DOC_ADDRESS: &str = "'rtsp://localhost:8554/video'";

/// `text` as a single-quoted Python string literal.
fn py_str(text: &str) -> Result<String> {
    if text.chars().any(char::is_control) {
        bail!("{text:?} holds a control character");
    }
    Ok(format!(
        "'{}'",
        text.replace('\\', "\\\\").replace('\'', "\\'")
    ))
}

/// The documentation's `script` with the package imported as `mpegCoder`, and the clip and
/// the URL in place of its video name and address.
pub fn script(script: &str, clip: &Path, url: &str) -> Result<String> {
    let clip = clip.display().to_string();
    Ok(script
        .replacen("import mpegCoder\n", "import mpegcoder as mpegCoder\n", 1)
        .replace(DOC_VIDEO, &py_str(&clip)?)
        .replace(DOC_ADDRESS, &py_str(url)?))
}

/// Who publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Publisher {
    /// [`non_blocking_script`].
    NonBlocking,
    /// [`dual_process_script`].
    DualProcess,
    /// `mpegcoder push` with the decoder's B-frames (the non-blocking script's settings).
    Cli,
    /// `mpegcoder push --bframes 16` (the dual-process script's settings).
    Cli16,
}

impl Publisher {
    /// Every publisher, in table order.
    pub const ALL: [Publisher; 4] = [
        Publisher::NonBlocking,
        Publisher::DualProcess,
        Publisher::Cli,
        Publisher::Cli16,
    ];

    /// Its name on the command line.
    pub fn key(self) -> String {
        serde_plain(&self)
    }

    /// Parses [`Publisher::key`].
    pub fn parse(s: &str) -> Option<Publisher> {
        Publisher::ALL.into_iter().find(|p| p.key() == s)
    }

    /// Its column heading.
    fn heading(self, inherited: &Inherited) -> String {
        match self {
            Publisher::NonBlocking => "non-blocking script".into(),
            Publisher::DualProcess => "dual-process script".into(),
            Publisher::Cli => format!("`mpegcoder push` (B-frames {})", inherited.max_bframe),
            Publisher::Cli16 => format!("`mpegcoder push` (B-frames {DUAL_PROCESS_BFRAMES})"),
        }
    }
}

/// What `MpegDecoder.getParameter()` says of the clip: what the scripts' servers inherit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inherited {
    /// kb/s.
    #[serde(rename = "bitRate")]
    pub bit_rate_kbps: f64,
    /// Key frame interval.
    #[serde(rename = "GOPSize")]
    pub gop_size: u32,
    /// Maximum consecutive B-frames.
    #[serde(rename = "maxBframe")]
    pub max_bframe: u32,
    /// (num, den).
    #[serde(rename = "frameRate")]
    pub frame_rate: (u32, u32),
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

impl Inherited {
    /// The bit rate in bit/s, rounded as the package rounds it.
    pub fn bit_rate_bps(&self) -> u64 {
        (self.bit_rate_kbps * 1000.0).round() as u64
    }
}

/// The Python side, as the bench found it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PythonInfo {
    /// The interpreter run.
    #[serde(default)]
    pub python: String,
    /// Its version.
    pub python_version: String,
    /// `mpegcoder.version()`.
    pub package_version: String,
    /// Where the package's native module was loaded from.
    pub native_module: String,
    /// numpy's version.
    pub numpy_version: String,
    /// The decoder's parameters of the clip.
    pub inherited: Inherited,
}

/// The probe: opens the clip with `MpegDecoder` and prints what the scripts will inherit.
const PROBE: &str = r#"import json, sys
import numpy
import mpegcoder
from mpegcoder import _native
d = mpegcoder.MpegDecoder()
if not d.FFmpegSetup(sys.argv[1]):
    sys.exit('cannot open %s: %s' % (sys.argv[1], d))
p = d.getParameter()
keys = ['bitRate', 'GOPSize', 'maxBframe', 'frameRate', 'width', 'height']
print(json.dumps({'python_version': sys.version.split()[0],
                  'package_version': mpegcoder.version(),
                  'native_module': _native.__file__,
                  'numpy_version': numpy.__version__,
                  'inherited': {k: p[k] for k in keys}}))
d.clear()
"#;

/// Runs [`PROBE`] with `python` on `clip`.
pub fn probe(python: &Path, clip: &Path) -> Result<PythonInfo> {
    let out = Command::new(python)
        .arg("-c")
        .arg(PROBE)
        .arg(clip)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "{} could not open the clip with mpegcoder.MpegDecoder ({}): {}",
            python.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    let mut info: PythonInfo = serde_json::from_str(line)
        .with_context(|| format!("the probe's output {line:?} is not what was expected"))?;
    info.python = python.display().to_string();
    Ok(info)
}

/// Programs and settings of the runs.
#[derive(Debug, Clone)]
pub struct PythonSetup {
    /// The interpreter with the package.
    pub python: PathBuf,
    /// The `mpegcoder` binary.
    pub mpegcoder: PathBuf,
    /// GNU time.
    pub time: PathBuf,
    /// The clip.
    pub clip: PathBuf,
    /// Its frame count.
    pub frames: usize,
    /// Its frame rate.
    pub fps: f64,
    /// What the decoder says of it.
    pub inherited: Inherited,
    /// Working directory: `scripts/` and `logs/` go here.
    pub work: PathBuf,
}

impl PythonSetup {
    /// The command line (program, arguments) of `publisher` publishing to `url`; a script is
    /// written into the working directory first, named after `tag`.
    pub fn command(
        &self,
        publisher: Publisher,
        proto: Proto,
        url: &str,
        tag: &str,
    ) -> Result<(PathBuf, Vec<String>)> {
        let source = match publisher {
            Publisher::NonBlocking => non_blocking_script(),
            Publisher::DualProcess => dual_process_script(),
            Publisher::Cli | Publisher::Cli16 => {
                return Ok((
                    self.mpegcoder.clone(),
                    self.push_args(publisher, proto, url),
                ))
            }
        };
        let dir = self.work.join("scripts");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{tag}.py"));
        std::fs::write(&path, script(&source, &self.clip, url)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok((self.python.clone(), vec![path.display().to_string()]))
    }

    /// `mpegcoder push`'s arguments.
    fn push_args(&self, publisher: Publisher, proto: Proto, url: &str) -> Vec<String> {
        let bframes = match publisher {
            Publisher::Cli16 => DUAL_PROCESS_BFRAMES,
            _ => self.inherited.max_bframe,
        };
        let mut a: Vec<String> = [
            "push".to_string(),
            "--codec".into(),
            "libx264".into(),
            self.clip.display().to_string(),
            url.into(),
            "--quiet".into(),
            "--preset".into(),
            "veryfast".into(),
            "--bitrate".into(),
            self.inherited.bit_rate_bps().to_string(),
            "--gop".into(),
            self.inherited.gop_size.to_string(),
            "--bframes".into(),
            bframes.to_string(),
        ]
        .into();
        a.extend(proto.push_args().iter().map(|s| s.to_string()));
        a
    }
}

/// What the samples of a process tree showed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TreeUsage {
    /// Samples taken.
    pub samples: usize,
    /// Processes seen below GNU time (the publisher and its descendants).
    pub processes: usize,
    /// Largest sum of the processes' RSS, KiB.
    pub peak_rss_kib: u64,
    /// Largest sum of their PSS, KiB.
    pub peak_pss_kib: u64,
    /// User + system CPU of every process at its last sample, summed, s.
    pub cpu_s: f64,
    /// The same of the publisher's own process (GNU time's child) alone, s.
    pub root_cpu_s: f64,
}

/// One process as the last sample saw it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// Start time (clock ticks after boot): tells a reused PID apart.
    start: u64,
    /// User + system clock ticks.
    ticks: u64,
    /// Gone at the last sample.
    exited: bool,
}

/// Samples the processes below a PID every 100 ms, on a thread of its own.
#[derive(Debug)]
struct TreeSampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(TreeUsage, HashMap<u32, Seen>)>>,
}

/// The fields after the command name of /proc/PID/stat (the first is the state).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// (start time, user + system ticks, zombie) of a process.
fn stat_of(pid: u32) -> Option<(u64, u64, bool)> {
    let f = stat_fields(pid)?;
    // Fields 14 and 15 (utime, stime) and 22 (starttime) of proc(5); `f[0]` is field 3.
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((
        num(19)?,
        num(11)? + num(12)?,
        f.first().is_some_and(|s| s == "Z"),
    ))
}

/// (RSS, PSS) of a process, KiB.
fn memory_of(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |key: &str| {
        text.lines().find(|l| l.starts_with(key)).and_then(|l| {
            l[key.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
    };
    Some((field("Rss:")?, field("Pss:")?))
}

/// Every descendant of `pid` (children of each of its threads), nearest first.
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut queue = vec![pid];
    while let Some(p) = queue.pop() {
        let tasks: Vec<u32> = std::fs::read_dir(format!("/proc/{p}/task"))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        for tid in tasks {
            let kids = std::fs::read_to_string(format!("/proc/{p}/task/{tid}/children"))
                .unwrap_or_default();
            for kid in kids
                .split_whitespace()
                .filter_map(|k| k.parse::<u32>().ok())
            {
                if kid != pid && !out.contains(&kid) {
                    out.push(kid);
                    queue.push(kid);
                }
            }
        }
    }
    out
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when it cannot tell).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

impl TreeSampler {
    /// Starts sampling the descendants of `pid` (GNU time's PID: the publisher and below).
    fn start(pid: u32) -> Result<TreeSampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let hz = clock_ticks();
        let thread = std::thread::Builder::new()
            .name("tree-sampler".into())
            .spawn(move || {
                let mut usage = TreeUsage::default();
                let mut seen: HashMap<u32, Seen> = HashMap::new();
                let mut root: Option<u32> = None;
                while !flag.load(Ordering::SeqCst) {
                    let tree = descendants(pid);
                    root = root.or_else(|| tree.first().copied());
                    let (mut rss, mut pss) = (0u64, 0u64);
                    for s in seen.values_mut() {
                        s.exited = true;
                    }
                    for &p in &tree {
                        let Some((start, ticks, zombie)) = stat_of(p) else {
                            continue;
                        };
                        let entry = seen.entry(p).or_insert(Seen {
                            start,
                            ticks,
                            exited: false,
                        });
                        if entry.start == start {
                            entry.ticks = entry.ticks.max(ticks);
                            entry.exited = zombie;
                        }
                        if !zombie {
                            if let Some((r, q)) = memory_of(p) {
                                rss += r;
                                pss += q;
                            }
                        }
                    }
                    usage.samples += 1;
                    usage.peak_rss_kib = usage.peak_rss_kib.max(rss);
                    usage.peak_pss_kib = usage.peak_pss_kib.max(pss);
                    std::thread::sleep(Duration::from_millis(100));
                }
                usage.processes = seen.len();
                usage.cpu_s = seen.values().map(|s| s.ticks as f64 / hz).sum();
                usage.root_cpu_s = root
                    .and_then(|r| seen.get(&r))
                    .map_or(0.0, |s| s.ticks as f64 / hz);
                (usage, seen)
            })?;
        Ok(TreeSampler {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops sampling; kills (by PID) every process of the tree that is still running, when
    /// `kill` (a publisher that outlived its limit leaves its children behind).
    fn finish(mut self, kill: bool) -> TreeUsage {
        self.stop.store(true, Ordering::SeqCst);
        let Some((usage, seen)) = self.thread.take().and_then(|t| t.join().ok()) else {
            return TreeUsage::default();
        };
        if kill {
            for (&pid, s) in &seen {
                if stat_of(pid).is_some_and(|(start, _, zombie)| start == s.start && !zombie) {
                    crate::process::signal(pid, "KILL");
                }
            }
        }
        usage
    }
}

impl Drop for TreeSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One publisher run.
#[derive(Debug, Clone, Serialize)]
pub struct PythonRun {
    /// Who published.
    pub publisher: Publisher,
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
    /// What GNU time measured.
    pub usage: Usage,
    /// What the samples of the process tree showed.
    pub tree: TreeUsage,
    /// 1-minute load average before and after the run.
    pub load_before: Option<f64>,
    /// See `load_before`.
    pub load_after: Option<f64>,
    /// Frame arrivals, ms after the first.
    pub arrivals_ms: Vec<f64>,
}

/// Publishes the clip once with `publisher` and measures it.
pub fn run(
    setup: &PythonSetup,
    publisher: Publisher,
    proto: Proto,
    repetition: usize,
) -> Result<PythonRun> {
    let logs = setup.work.join("logs");
    std::fs::create_dir_all(&logs)?;
    let tag = format!("{}-{}-{repetition}", publisher.key(), serde_plain(&proto));
    let sink = Sink::start(proto.sink(), Duration::from_secs(15))?;
    let url = sink.url("bench");
    let (program, args) = setup.command(publisher, proto, &url, &tag)?;
    let log = logs.join(format!("{tag}.log"));
    let load_before = load_average();
    let child = Timed::spawn(&setup.time, &program, &args, &log)?;
    let spawned_at = child.spawned_at;
    let sampler = TreeSampler::start(child.pid())?;
    let limit = Duration::from_secs_f64(setup.frames as f64 / setup.fps + 60.0);
    let usage = child.wait(limit);
    let tree = sampler.finish(usage.as_ref().map_or(true, |u| u.timed_out));
    let usage = usage?;
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
    Ok(PythonRun {
        publisher,
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
        usage,
        tree,
        load_before,
        load_after,
        arrivals_ms: arrivals.iter().map(|a| (a * 1e6).round() / 1e3).collect(),
    })
}

/// The figures, in table order: (key, label).
pub const FIGURES: &[(&str, &str)] = &[
    ("frames_received", "frames received (fewest of the runs)"),
    ("steady_p50_ms", "steady deviation p50, ms"),
    ("steady_p99_ms", "steady deviation p99, ms"),
    ("steady_max_ms", "steady deviation max, ms"),
    ("first_100ms", "frames in the first 100 ms"),
    ("last_100ms", "frames in the last 100 ms"),
    ("span_s", "first → last frame, s"),
    ("start_to_first_ms", "process start → first frame, ms"),
    ("cpu_s", "CPU user+sys (GNU time), s"),
    ("tree_cpu_s", "CPU of every process, sampled, s"),
    ("root_cpu_s", "CPU of the main process alone, sampled, s"),
    ("processes", "processes"),
    ("rss_mib", "peak RSS (GNU time: largest process), MiB"),
    ("tree_rss_mib", "peak RSS of all processes, summed, MiB"),
    ("tree_pss_mib", "peak PSS of all processes, summed, MiB"),
    ("wall_s", "wall time, s"),
    ("load_before", "load average before the run"),
];

/// One figure of one run.
pub fn figure(r: &PythonRun, key: &str) -> Option<f64> {
    let t = r.timing.as_ref();
    let mib = |kib: u64| kib as f64 / 1024.0;
    match key {
        "frames_received" => Some(r.frames_received as f64),
        "steady_p50_ms" => t.and_then(|t| t.steady).map(|s| s.p50_ms),
        "steady_p99_ms" => t.and_then(|t| t.steady).map(|s| s.p99_ms),
        "steady_max_ms" => t.and_then(|t| t.steady).map(|s| s.max_ms),
        "first_100ms" => t.map(|t| t.first_100ms as f64),
        "last_100ms" => t.map(|t| t.last_100ms as f64),
        "span_s" => t.map(|t| t.span_s),
        "start_to_first_ms" => r.start_to_first_frame_ms,
        "cpu_s" => Some(r.usage.cpu_s()),
        "tree_cpu_s" => Some(r.tree.cpu_s),
        "root_cpu_s" => Some(r.tree.root_cpu_s),
        "processes" => Some(r.tree.processes as f64),
        "rss_mib" => Some(mib(r.usage.max_rss_kib)),
        "tree_rss_mib" => Some(mib(r.tree.peak_rss_kib)),
        "tree_pss_mib" => Some(mib(r.tree.peak_pss_kib)),
        "wall_s" => Some(r.usage.wall_s),
        "load_before" => r.load_before,
        _ => None,
    }
}

/// The median of a figure over `runs` (the fewest for the frame count).
pub fn summary(runs: &[&PythonRun], key: &str) -> Option<f64> {
    let values: Vec<f64> = runs.iter().filter_map(|r| figure(r, key)).collect();
    if values.is_empty() {
        return None;
    }
    if key == "frames_received" {
        return values.into_iter().reduce(f64::min);
    }
    Some(median(&values))
}

fn num(v: Option<f64>, key: &str) -> String {
    match v {
        Some(v) if v.is_finite() => match key {
            "frames_received" | "first_100ms" | "last_100ms" | "processes" => format!("{v:.0}"),
            "start_to_first_ms" | "rss_mib" | "tree_rss_mib" | "tree_pss_mib" => {
                format!("{v:.1}")
            }
            _ => format!("{v:.2}"),
        },
        _ => "–".into(),
    }
}

/// One markdown table per protocol: figures down, publishers across (medians of the runs).
pub fn markdown(runs: &[PythonRun], info: &PythonInfo, frames: usize) -> String {
    let mut s = String::new();
    let reps = runs.iter().map(|r| r.repetition + 1).max().unwrap_or(0);
    for proto in [Proto::RtspTcp, Proto::RtspUdp, Proto::Rtmp] {
        let publishers: Vec<Publisher> = Publisher::ALL
            .into_iter()
            .filter(|p| runs.iter().any(|r| r.proto == proto && r.publisher == *p))
            .collect();
        if publishers.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "\n### {} (median of {reps} run{} each; {frames} frames sent)\n",
            proto.name(),
            if reps == 1 { "" } else { "s" }
        );
        s.push_str("| figure |");
        for p in &publishers {
            let _ = write!(s, " {} |", p.heading(&info.inherited));
        }
        s.push_str("\n|---|");
        for _ in &publishers {
            s.push_str("---:|");
        }
        s.push('\n');
        for &(key, label) in FIGURES {
            let _ = write!(s, "| {label} |");
            for &p in &publishers {
                let of: Vec<&PythonRun> = runs
                    .iter()
                    .filter(|r| r.proto == proto && r.publisher == p)
                    .collect();
                let _ = write!(s, " {} |", num(summary(&of, key), key));
            }
            s.push('\n');
        }
    }
    let short: Vec<String> = runs
        .iter()
        .filter(|r| r.frames_received != r.frames_expected || r.usage.exit_code != Some(0))
        .map(|r| {
            format!(
                "{} {} run {}: {} frames, exit {:?}{}",
                r.publisher.key(),
                r.proto.name(),
                r.repetition,
                r.frames_received,
                r.usage.exit_code,
                r.sink_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" (sink: {e})"))
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "\nFrames received: {}.",
        if short.is_empty() {
            format!("every run delivered all {frames} frames and exited 0")
        } else {
            format!("short or failed runs: {}", short.join("; "))
        }
    );
    s
}

/// The settings paragraph: what the scripts inherit and what the CLI is given.
pub fn settings(info: &PythonInfo) -> String {
    let i = &info.inherited;
    format!(
        "Python {} (`{}`), mpegcoder {} (native module `{}`), numpy {}.\n\n\
         The decoder's `getParameter()` of the clip: {}x{}, frameRate {}/{}, bitRate {} kb/s, \
         GOPSize {}, maxBframe {}. The scripts' servers inherit these (the dual-process one \
         sets maxBframe=16); both use libx264's defaults of the package (preset veryfast, \
         automatic threads) and hand it RGB frames (the decoder converts to RGB, the server \
         back to YUV 4:2:0). `mpegcoder push` is given the same settings explicitly: \
         `--codec libx264 --preset veryfast --bitrate {} --gop {} --bframes {}|{}` (it \
         decodes to YUV 4:2:0 and encodes that, without the RGB round trip). Pacing: the CLI \
         and `ServeFrameBlock` use the same pacer (a frame leaves at most 10 ms before it is \
         due); `ServeFrame` sends at once and the non-blocking script sleeps \
         `waitRef` (half the lead) every 10 frames.\n",
        info.python_version,
        info.python,
        info.package_version,
        info.native_module,
        info.numpy_version,
        i.width,
        i.height,
        i.frame_rate.0,
        i.frame_rate.1,
        i.bit_rate_kbps,
        i.gop_size,
        i.max_bframe,
        i.bit_rate_bps(),
        i.gop_size,
        i.max_bframe,
        DUAL_PROCESS_BFRAMES,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inherited() -> Inherited {
        Inherited {
            bit_rate_kbps: 2687.63,
            gop_size: 60,
            max_bframe: 2,
            frame_rate: (30, 1),
            width: 1280,
            height: 720,
        }
    }

    #[test]
    fn the_scripts_change_only_in_the_import_the_video_and_the_address() {
        let url = "rtsp://127.0.0.1:4242/bench";
        let clip = Path::new("/clips/it's.mp4");
        for doc in [non_blocking_script(), dual_process_script()] {
            let ours = script(&doc, clip, url).expect("script");
            let (a, b): (Vec<&str>, Vec<&str>) = (doc.lines().collect(), ours.lines().collect());
            assert_eq!(a.len(), b.len());
            for (before, after) in a.iter().zip(&b) {
                let back = after
                    .replace("import mpegcoder as mpegCoder", "import mpegCoder")
                    .replace(r"'/clips/it\'s.mp4'", DOC_VIDEO)
                    .replace("'rtsp://127.0.0.1:4242/bench'", DOC_ADDRESS);
                assert_eq!(*before, back);
            }
            assert!(ours.contains("import mpegcoder as mpegCoder\n"), "{ours}");
            assert!(!ours.contains("test-video") && !ours.contains("localhost"));
        }
        let dual = script(&dual_process_script(), clip, url).expect("script");
        assert_eq!(dual.matches(r"'/clips/it\'s.mp4'").count(), 2);
        assert!(dual.contains("maxBframe=16"));
        assert!(py_str("a\nb").is_err());
    }

    #[test]
    fn the_cli_gets_what_the_scripts_inherit() {
        let setup = PythonSetup {
            python: "/venv/bin/python".into(),
            mpegcoder: "/bin/mpegcoder".into(),
            time: "/usr/bin/time".into(),
            clip: "/c.mp4".into(),
            frames: 600,
            fps: 30.0,
            inherited: inherited(),
            work: "/tmp".into(),
        };
        let line = setup
            .push_args(Publisher::Cli, Proto::RtspTcp, "rtsp://h/x")
            .join(" ");
        assert_eq!(
            line,
            "push --codec libx264 /c.mp4 rtsp://h/x --quiet --preset veryfast --bitrate \
             2687630 --gop 60 --bframes 2 --transport tcp"
        );
        let line = setup
            .push_args(Publisher::Cli16, Proto::Rtmp, "rtmp://h/a/b")
            .join(" ");
        assert!(line.ends_with("--gop 60 --bframes 16"), "{line}");
        assert_eq!(
            Publisher::parse("dual-process"),
            Some(Publisher::DualProcess)
        );
        assert_eq!(Publisher::parse("cli16"), Some(Publisher::Cli16));
    }

    #[test]
    fn the_probe_output_parses() {
        let line = r#"{"python_version": "3.11.7", "package_version": "0.1.0", "native_module": "/v/_native.so", "numpy_version": "2.3.5", "inherited": {"bitRate": 2687.63, "GOPSize": 60, "maxBframe": 2, "frameRate": [30, 1], "width": 1280, "height": 720}}"#;
        let info: PythonInfo = serde_json::from_str(line).expect("parses");
        assert_eq!(info.inherited, inherited());
        assert_eq!(info.inherited.bit_rate_bps(), 2_687_630);
    }

    #[test]
    fn this_process_is_sampled() {
        let me = std::process::id();
        let (start, _, zombie) = stat_of(me).expect("stat");
        assert!(start > 0 && !zombie);
        let (rss, pss) = memory_of(me).expect("smaps_rollup");
        assert!(rss > 0 && pss > 0);
        let _ = crate::process::children(me);
    }
}
