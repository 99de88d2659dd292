//! Publisher benchmarks, mpegcoder side by side with ffmpeg (see BENCHMARKS.md).
//!
//! `mpegcoder-bench run` publishes the same clip with `mpegcoder push` and with `ffmpeg -re`,
//! in copy and libx264 modes (and, with `--modes copy-av`, an audio+video variant of the clip
//! in copy mode), over RTSP/TCP, RTSP/UDP and RTMP, to sinks of its own that record when
//! every frame and every audio packet arrives; GNU time measures each publisher process. Then it pushes
//! N copy streams at once from one process (`mpegcoder-bench push-many`) to its RTMP sink and
//! to nginx-rtmp, for growing N. Four round-2 measurements run when asked for (`--modes
//! reconnect,fanout,relay,rtmps`, or `--round2`): reconnect recovery after a server restart
//! ([`reconnect`]), one push to three destinations against three ffmpeg processes
//! ([`fanout`]), the latency a live relay adds ([`relay`]), and a copy push over RTMPS
//! against RTMP ([`tls`]). It prints markdown tables and
//! writes `report.json` and `report.md` into the output directory. `mpegcoder-bench
//! criterion` summarizes the criterion benches' results. `mpegcoder-bench python` runs
//! mpegCoder's two example scripts with the `mpegcoder` Python package against `mpegcoder
//! push` publishing the same clip ([`python`]). `mpegcoder-bench scale` (also part of `run`)
//! pushes N copy streams with audio into one receiver from one `mpegcoder push-many` against N
//! `ffmpeg -re -c copy` processes, for growing N ([`scale`]).
#![forbid(unsafe_code)]

mod clip;
mod criterion;
mod fanout;
mod flv;
mod many;
mod nginx;
mod process;
mod python;
mod reconnect;
mod relay;
mod report;
mod scale;
mod single;
mod sink;
mod source;
mod stats;
mod sweep;
mod tls;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::clip::{AudioSpec, AvClip, ClipSpec};
use crate::fanout::FanoutSide;
use crate::many::{Design, ManyOptions};
use crate::reconnect::Codec;
use crate::relay::{RelaySource, Relayer};
use crate::single::{Mode, Proto, Setup, Side};

/// Side-by-side publisher benchmarks of mpegcoder and ffmpeg.
#[derive(Debug, Parser)]
#[command(name = "mpegcoder-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the benchmarks and write the report.
    Run(Box<RunArgs>),
    /// Push N copies of a clip at once from this process (used by `run`).
    PushMany(PushManyArgs),
    /// Summarize the criterion benches' results as a markdown table.
    Criterion(CriterionArgs),
    /// mpegCoder's two example scripts (the Python package) against `mpegcoder push`.
    Python(Box<PythonArgs>),
    /// N copy streams (H.264 + AAC) into one receiver: one `mpegcoder push-many` against N
    /// `ffmpeg -re -c copy` processes, for growing N, each side until it fails.
    Scale(Box<ScaleArgs>),
}

/// The programs a measurement runs.
#[derive(Debug, Args)]
struct Tools {
    /// The mpegcoder binary (a release build).
    #[arg(long, default_value = "target/release/mpegcoder")]
    mpegcoder: PathBuf,
    /// ffmpeg (the other publisher; also makes the clips).
    #[arg(long, default_value = "ffmpeg")]
    ffmpeg: PathBuf,
    /// ffprobe.
    #[arg(long, default_value = "ffprobe")]
    ffprobe: PathBuf,
    /// GNU time.
    #[arg(long, default_value = "/usr/bin/time")]
    time: PathBuf,
    /// nginx (with the RTMP module at /usr/lib/nginx/modules/ngx_rtmp_module.so).
    #[arg(long, default_value = "nginx")]
    nginx: PathBuf,
}

#[derive(Debug, Args)]
struct ScaleArgs {
    /// Output directory: lists, logs, scale.md and scale.json.
    #[arg(long, default_value = "target/bench/scale")]
    out: PathBuf,
    /// Where the clips are cached.
    #[arg(long, default_value = "target/bench/clips")]
    clips: PathBuf,
    /// Stream counts, run in increasing order; a side that fails is not run at larger N.
    #[arg(long, value_delimiter = ',', default_values_t = SCALE_STEPS)]
    steps: Vec<usize>,
    /// Sides to run.
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["mpegcoder", "ffmpeg"])]
    sides: Vec<scale::Side>,
    /// Length of the clip, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Skip nginx (the sink's wire timing only).
    #[arg(long)]
    no_nginx: bool,
    #[command(flatten)]
    tools: Tools,
}

/// The scale comparison's default stream counts.
const SCALE_STEPS: [usize; 10] = [1, 25, 50, 100, 150, 200, 300, 400, 600, 800];

#[derive(Debug, Args)]
struct PythonArgs {
    /// Output directory: the clip is cached in OUT/clips; scripts, logs, report.md and
    /// report.json go to OUT/python.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// The Python with the `mpegcoder` package installed (a release build; `bash
    /// scripts/bench.sh --python` makes this one).
    #[arg(long, default_value = "target/bench-python-venv/bin/python")]
    python: PathBuf,
    #[command(flatten)]
    tools: Tools,
    /// Runs of each configuration; figures are medians.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Length of the clip, seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u32,
    /// Protocols (rtsp-tcp, rtsp-udp, rtmp).
    #[arg(long, value_delimiter = ',', default_values = ["rtsp-tcp", "rtmp"])]
    protos: Vec<String>,
    /// Publishers: non-blocking (the non-blocking script), dual-process (the dual-process
    /// script), cli (`mpegcoder push` with the clip's B-frames), cli16 (`mpegcoder push
    /// --bframes 16`).
    #[arg(long, value_delimiter = ',', default_values = ["non-blocking", "dual-process", "cli", "cli16"])]
    publishers: Vec<String>,
}

#[derive(Debug, Args)]
struct CriterionArgs {
    /// Criterion's output directory.
    #[arg(long, default_value = "target/criterion")]
    dir: PathBuf,
    /// Also append the table to this file (e.g. the report.md of a run).
    #[arg(long)]
    append: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Output directory (clips, logs, report.json, report.md).
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    #[command(flatten)]
    tools: Tools,
    /// Runs of each side-by-side configuration; figures are medians.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Bit rate of libx264 on both sides.
    #[arg(long, default_value = "2M")]
    bitrate: String,
    /// Length of the side-by-side clip, seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u32,
    /// Modes to run: copy, libx264, copy-av (the clip with an AAC track next to the video,
    /// both passed through); and the round-2 measurements, not in the defaults: reconnect
    /// (recovery after a server restart), fanout (one push to three destinations against
    /// three ffmpeg processes), relay (the latency a live relay adds), rtmps (a copy push over
    /// RTMPS through stunnel against the same over RTMP: CPU and RSS).
    #[arg(long, value_delimiter = ',', default_values = ["copy", "libx264"])]
    modes: Vec<String>,
    /// Run the round-2 measurements (reconnect, fanout, relay, rtmps) besides --modes.
    #[arg(long)]
    round2: bool,
    /// Protocols to run.
    #[arg(long, value_delimiter = ',', default_values = ["rtsp-tcp", "rtsp-udp", "rtmp"])]
    protos: Vec<String>,
    /// reconnect: restarts of the sink per configuration.
    #[arg(long, default_value_t = 10)]
    reconnect_cycles: usize,
    /// reconnect: how long the sink stays down, ms.
    #[arg(long, default_value_t = 1000)]
    reconnect_down_ms: u64,
    /// reconnect: streaming on a connection before the next kill, ms (plus a share of a GOP
    /// that varies from restart to restart).
    #[arg(long, default_value_t = 1000)]
    reconnect_settle_ms: u64,
    /// reconnect: codecs (copy, libx264).
    #[arg(long, value_delimiter = ',', default_values = ["copy", "libx264"])]
    reconnect_codecs: Vec<String>,
    /// reconnect: protocols (default: --protos).
    #[arg(long, value_delimiter = ',')]
    reconnect_protos: Option<Vec<String>>,
    /// reconnect: skip the check of what ffmpeg does when its server restarts.
    #[arg(long)]
    no_ffmpeg_restart: bool,
    /// fanout: destinations.
    #[arg(long, default_value_t = 3)]
    fanout_destinations: usize,
    /// fanout: protocols (default: --protos).
    #[arg(long, value_delimiter = ',')]
    fanout_protos: Option<Vec<String>>,
    /// fanout: runs of each side (default: --repeat).
    #[arg(long)]
    fanout_repeat: Option<usize>,
    /// relay: destination protocols (the source is always RTMP, nginx).
    #[arg(long, value_delimiter = ',', default_values = ["rtmp", "rtsp-tcp"])]
    relay_protos: Vec<String>,
    /// relay: sources (nginx: nginx-rtmp fed by ffmpeg -re, with direct players in the
    /// bench; bench: the bench's own RTMP source).
    #[arg(long, value_delimiter = ',', default_values = ["nginx", "bench"])]
    relay_sources: Vec<String>,
    /// relay: runs of each relay (default: --repeat).
    #[arg(long)]
    relay_repeat: Option<usize>,
    /// relay: the mpegcoder binary that relays (one with live inputs; default --mpegcoder).
    #[arg(long)]
    relay_mpegcoder: Option<PathBuf>,
    /// relay: what to call that binary in the report (e.g. the branch and commit it was
    /// built from).
    #[arg(long)]
    relay_label: Option<String>,
    /// Skip the side-by-side runs.
    #[arg(long)]
    skip_single: bool,
    /// Skip the concurrency sweep.
    #[arg(long)]
    skip_concurrency: bool,
    /// Stream counts of the concurrency sweep, in order; it stops at the first that fails.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 10, 25, 50, 100, 150, 200])]
    steps: Vec<usize>,
    /// Designs of the concurrency sweep.
    #[arg(long, value_delimiter = ',', default_values = ["scheduler", "threads"])]
    designs: Vec<Design>,
    /// Length of the concurrency clip, seconds.
    #[arg(long, default_value_t = 10)]
    many_seconds: u32,
    /// Skip the extra step that runs the largest passing N with every stream starting at the
    /// same instant (every stream's frames due together: the worst case).
    #[arg(long)]
    no_aligned_check: bool,
    /// Skip nginx in the concurrency sweep and the scale comparison (wire timing only).
    #[arg(long)]
    no_nginx: bool,
    /// Skip the scale comparison (N copy streams with audio: one `mpegcoder push-many`
    /// against N ffmpeg processes).
    #[arg(long)]
    skip_scale: bool,
    /// Stream counts of the scale comparison, run in increasing order.
    #[arg(long, value_delimiter = ',', default_values_t = SCALE_STEPS)]
    scale_steps: Vec<usize>,
    /// Sides of the scale comparison.
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["mpegcoder", "ffmpeg"])]
    scale_sides: Vec<scale::Side>,
}

#[derive(Debug, Args)]
struct PushManyArgs {
    /// The clip (H.264).
    #[arg(long)]
    clip: PathBuf,
    /// Stream i is published to PREFIX followed by i.
    #[arg(long)]
    url_prefix: String,
    /// Number of streams.
    #[arg(long)]
    streams: usize,
    /// How the streams are driven.
    #[arg(long, value_enum, default_value = "scheduler")]
    design: Design,
    /// Start all streams at the same instant.
    #[arg(long)]
    aligned: bool,
    /// Write the summary as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run(args) => run(&args),
        Cmd::PushMany(args) => push_many(&args),
        Cmd::Criterion(args) => criterion::summarize(&args.dir, args.append.as_deref()),
        Cmd::Python(args) => python_bench(&args),
        Cmd::Scale(args) => scale_bench(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn push_many(args: &PushManyArgs) -> Result<()> {
    let summary = many::push_many(&ManyOptions {
        clip: args.clip.clone(),
        url_prefix: args.url_prefix.clone(),
        streams: args.streams,
        design: args.design,
        aligned: args.aligned,
    })?;
    let json = serde_json::to_string_pretty(&summary)?;
    match &args.json {
        Some(p) => std::fs::write(p, json + "\n")
            .with_context(|| format!("cannot write {}", p.display()))?,
        None => println!("{json}"),
    }
    Ok(())
}

/// Everything `python` measured.
#[derive(Debug, Serialize)]
struct PythonReport {
    machine: Machine,
    clip: ClipSpec,
    python: python::PythonInfo,
    repetitions: usize,
    runs: Vec<python::PythonRun>,
    /// The bench's own commit (`git rev-parse HEAD` where it ran).
    bench_commit: String,
}

fn python_bench(args: &PythonArgs) -> Result<()> {
    let ffmpeg = require(&args.tools.ffmpeg, "ffmpeg")?;
    let ffprobe = require(&args.tools.ffprobe, "ffprobe")?;
    let time = require(&args.tools.time, "GNU time")?;
    let mpegcoder = require(
        &args.tools.mpegcoder,
        "the mpegcoder binary (cargo build --release)",
    )?;
    let python = which(&args.python).with_context(|| {
        format!(
            "no Python at {}: `bash scripts/bench.sh --python` makes a virtual environment \
             there with the package built in release mode, or pass --python",
            args.python.display()
        )
    })?;
    let protos = parse_protos(&args.protos)?;
    let publishers = args
        .publishers
        .iter()
        .map(|p| {
            python::Publisher::parse(p).with_context(|| {
                format!("unknown publisher {p:?} (non-blocking, dual-process, cli, cli16)")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let work = args.out.join("python");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let spec = ClipSpec::hd(args.seconds);
    let clip = clip::ensure(&ffmpeg, &ffprobe, &args.out.join("clips"), spec)?;
    let info = python::probe(&python, &clip)?;
    eprintln!(
        "python {} with mpegcoder {} ({}); the decoder says bitRate {} kb/s, GOPSize {}, \
         maxBframe {}",
        info.python_version,
        info.package_version,
        info.native_module,
        info.inherited.bit_rate_kbps,
        info.inherited.gop_size,
        info.inherited.max_bframe
    );
    let machine = machine_with(&ffmpeg, &mpegcoder);
    eprintln!(
        "machine: {} × {}, kernel {}, load {:.2}",
        machine.nproc,
        machine.cpu_model,
        machine.kernel,
        machine.load_at_start.unwrap_or(f64::NAN)
    );
    if machine.load_at_start.is_some_and(|l| l > 0.5) {
        eprintln!("warning: the load average is above 0.5; timing figures may suffer");
    }
    let setup = python::PythonSetup {
        python,
        mpegcoder,
        time,
        clip,
        frames: spec.frames() as usize,
        fps: f64::from(spec.fps),
        inherited: info.inherited.clone(),
        work: work.clone(),
    };
    let mut report = PythonReport {
        machine,
        clip: spec,
        python: info,
        repetitions: args.repeat.max(1),
        runs: Vec::new(),
        bench_commit: git_commit(),
    };
    for rep in 0..args.repeat.max(1) {
        for &proto in &protos {
            // Rotate the order from one repetition to the next, so that no publisher always
            // runs first.
            let mut order = publishers.clone();
            let n = order.len().max(1);
            order.rotate_left(rep % n);
            for publisher in order {
                let r = python::run(&setup, publisher, proto, rep)?;
                eprintln!(
                    "{:<12} {:<8} run {rep}: {}/{} frames, p99 {:.2} ms, max {:.2} ms, CPU {:.2} \
                     s (sampled {:.2} s over {} processes), RSS {:.1} MiB (tree {:.1}, PSS \
                     {:.1}), load {:.2}{}",
                    publisher.key(),
                    proto.name(),
                    r.frames_received,
                    r.frames_expected,
                    python::figure(&r, "steady_p99_ms").unwrap_or(f64::NAN),
                    python::figure(&r, "steady_max_ms").unwrap_or(f64::NAN),
                    r.usage.cpu_s(),
                    r.tree.cpu_s,
                    r.tree.processes,
                    r.usage.max_rss_kib as f64 / 1024.0,
                    r.tree.peak_rss_kib as f64 / 1024.0,
                    r.tree.peak_pss_kib as f64 / 1024.0,
                    r.load_before.unwrap_or(f64::NAN),
                    match (&r.sink_error, r.usage.exit_code) {
                        (Some(e), _) => format!(" (sink: {e})"),
                        (None, Some(0)) => String::new(),
                        (None, code) => format!(" (exit {code:?})"),
                    }
                );
                report.runs.push(r);
            }
        }
    }
    report.machine.load_at_end = process::load_average();
    let mut md = render_machine(&report.machine);
    md.push_str(&format!(
        "\n## mpegCoder's example scripts against `mpegcoder push`\n\nClip: {}x{} at {} fps, \
         {} s ({} frames), a key frame every {} frames, {} B-frames; bench at `{}`.\n",
        spec.width,
        spec.height,
        spec.fps,
        spec.seconds,
        spec.frames(),
        spec.gop,
        spec.bframes,
        report.bench_commit
    ));
    md.push_str(&python::settings(&report.python));
    md.push_str(&python::markdown(
        &report.runs,
        &report.python,
        spec.frames() as usize,
    ));
    println!("{md}");
    std::fs::write(work.join("report.md"), &md)?;
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(work.join("report.json"), json + "\n")?;
    eprintln!(
        "wrote {} and {}",
        work.join("report.md").display(),
        work.join("report.json").display()
    );
    Ok(())
}

/// The machine and tool versions.
#[derive(Debug, Serialize)]
struct Machine {
    nproc: usize,
    cpu_model: String,
    kernel: String,
    memory_mib: u64,
    ffmpeg: String,
    rustc: String,
    mpegcoder: String,
    load_at_start: Option<f64>,
    load_at_end: Option<f64>,
}

fn first_line(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default()
}

fn machine(args: &RunArgs) -> Machine {
    machine_with(&args.tools.ffmpeg, &args.tools.mpegcoder)
}

fn machine_with(ffmpeg: &Path, mpegcoder: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model: field(&cpuinfo, "model name"),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        memory_mib: field(&meminfo, "MemTotal")
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .map_or(0, |k| k / 1024),
        ffmpeg: first_line(ffmpeg, &["-version"]),
        rustc: first_line(Path::new("rustc"), &["--version"]),
        mpegcoder: first_line(mpegcoder, &["--version"]),
        load_at_start: process::load_average(),
        load_at_end: None,
    }
}

/// Everything `run` measured.
#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    clip: Option<ClipSpec>,
    av_clip: Option<AvClip>,
    bitrate: String,
    repetitions: usize,
    summary: Vec<report::Row>,
    runs: Vec<single::RunResult>,
    concurrency_clip: Option<ClipSpec>,
    concurrency: Vec<sweep::Step>,
    largest_passing: Vec<(Design, Option<usize>)>,
    /// The scale comparison's clip.
    scale_clip: Option<ClipSpec>,
    /// Its audio+video file.
    scale_av_clip: Option<AvClip>,
    /// The scale comparison's sides, in the order asked for.
    scale_sides: Vec<scale::Side>,
    /// Its steps.
    scale: Vec<scale::ScaleStep>,
    /// The largest passing N of each side.
    scale_largest_passing: Vec<(scale::Side, Option<usize>)>,
    /// The round-2 measurements' clip.
    round2_clip: Option<ClipSpec>,
    reconnect: Vec<reconnect::ReconnectRun>,
    ffmpeg_restart: Vec<reconnect::FfmpegRestart>,
    fanout: Vec<fanout::FanoutRun>,
    relay: Vec<relay::RelayRun>,
    /// RTMPS against RTMP.
    rtmps: Vec<tls::TlsRun>,
    /// The relaying binary and what it was built from.
    relay_binary: Option<String>,
    /// The bench's own commit (`git rev-parse HEAD` where it ran).
    bench_commit: String,
}

/// The round-2 measurements asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Round2 {
    reconnect: bool,
    fanout: bool,
    relay: bool,
    rtmps: bool,
}

impl Round2 {
    fn any(self) -> bool {
        self.reconnect || self.fanout || self.relay || self.rtmps
    }
}

fn parse_modes(names: &[String]) -> Result<(Vec<Mode>, Round2)> {
    let mut modes = Vec::new();
    let mut round2 = Round2::default();
    for m in names {
        match m.as_str() {
            "copy" => modes.push(Mode::Copy),
            "libx264" => modes.push(Mode::Libx264),
            "copy-av" => modes.push(Mode::CopyAv),
            "reconnect" => round2.reconnect = true,
            "fanout" => round2.fanout = true,
            "relay" => round2.relay = true,
            "rtmps" => round2.rtmps = true,
            other => {
                bail!(
                    "unknown mode {other:?} (copy, libx264, copy-av, reconnect, fanout, relay, \
                     rtmps)"
                )
            }
        }
    }
    Ok((modes, round2))
}

fn parse_codecs(names: &[String]) -> Result<Vec<Codec>> {
    names
        .iter()
        .map(|c| Codec::parse(c).with_context(|| format!("unknown codec {c:?} (copy, libx264)")))
        .collect()
}

/// The commit checked out where the bench runs, with `-dirty` when the tree has changes.
fn git_commit() -> String {
    let head = first_line(Path::new("git"), &["rev-parse", "--short", "HEAD"]);
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .stdin(Stdio::null())
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty && !head.is_empty() {
        format!("{head}-dirty")
    } else {
        head
    }
}

fn parse_protos(names: &[String]) -> Result<Vec<Proto>> {
    names
        .iter()
        .map(|p| match p.as_str() {
            "rtsp-tcp" => Ok(Proto::RtspTcp),
            "rtsp-udp" => Ok(Proto::RtspUdp),
            "rtmp" => Ok(Proto::Rtmp),
            other => bail!("unknown protocol {other:?} (rtsp-tcp, rtsp-udp, rtmp)"),
        })
        .collect()
}

fn which(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.exists().then(|| program.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|c| c.is_file())
    })
}

fn require(program: &Path, what: &str) -> Result<PathBuf> {
    which(program).with_context(|| {
        format!(
            "{what} not found at {} (install the system packages with `bash .ci/install-deps`)",
            program.display()
        )
    })
}

fn run(args: &RunArgs) -> Result<()> {
    let ffmpeg = require(&args.tools.ffmpeg, "ffmpeg")?;
    let ffprobe = require(&args.tools.ffprobe, "ffprobe")?;
    let time = require(&args.tools.time, "GNU time")?;
    let mpegcoder = require(
        &args.tools.mpegcoder,
        "the mpegcoder binary (cargo build --release)",
    )?;
    let (modes, mut round2) = parse_modes(&args.modes)?;
    if args.round2 {
        round2 = Round2 {
            reconnect: true,
            fanout: true,
            relay: true,
            rtmps: true,
        };
    }
    let protos = parse_protos(&args.protos)?;
    let reconnect_protos = match &args.reconnect_protos {
        Some(p) => parse_protos(p)?,
        None => protos.clone(),
    };
    let fanout_protos = match &args.fanout_protos {
        Some(p) => parse_protos(p)?,
        None => protos.clone(),
    };
    let relay_protos = parse_protos(&args.relay_protos)?;
    let relay_sources = args
        .relay_sources
        .iter()
        .map(|s| {
            RelaySource::parse(s)
                .with_context(|| format!("unknown relay source {s:?} (nginx, bench)"))
        })
        .collect::<Result<Vec<_>>>()?;
    let reconnect_codecs = parse_codecs(&args.reconnect_codecs)?;
    let nginx_bin = which(&args.tools.nginx).filter(|_| Path::new(nginx::RTMP_MODULE).exists());
    if round2.relay && relay_sources.contains(&RelaySource::Nginx) && nginx_bin.is_none() {
        bail!(
            "the relay measurement needs nginx with its RTMP module ({}); install it with `bash \
             .ci/install-deps`",
            nginx::RTMP_MODULE
        );
    }
    let logs = args.out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let clips = args.out.join("clips");

    let machine = machine(args);
    eprintln!(
        "machine: {} × {}, kernel {}, load {:.2}",
        machine.nproc,
        machine.cpu_model,
        machine.kernel,
        machine.load_at_start.unwrap_or(f64::NAN)
    );
    if machine.load_at_start.is_some_and(|l| l > 0.5) {
        eprintln!("warning: the load average is above 0.5; timing figures may suffer");
    }

    let mut report = Report {
        machine,
        clip: None,
        av_clip: None,
        bitrate: args.bitrate.clone(),
        repetitions: args.repeat,
        summary: Vec::new(),
        runs: Vec::new(),
        concurrency_clip: None,
        concurrency: Vec::new(),
        largest_passing: Vec::new(),
        scale_clip: None,
        scale_av_clip: None,
        scale_sides: Vec::new(),
        scale: Vec::new(),
        scale_largest_passing: Vec::new(),
        round2_clip: None,
        reconnect: Vec::new(),
        ffmpeg_restart: Vec::new(),
        fanout: Vec::new(),
        relay: Vec::new(),
        rtmps: Vec::new(),
        relay_binary: None,
        bench_commit: git_commit(),
    };

    if !args.skip_single && !modes.is_empty() {
        let spec = ClipSpec::hd(args.seconds);
        let clip = clip::ensure(&ffmpeg, &ffprobe, &clips, spec)?;
        report.clip = Some(spec);
        let av = if modes.iter().any(|m| m.has_audio()) {
            let av = clip::ensure_av(
                &ffmpeg,
                &ffprobe,
                &clips,
                &clip,
                spec,
                AudioSpec::AAC_48K_STEREO,
            )?;
            report.av_clip = Some(av.clone());
            Some(av)
        } else {
            None
        };
        let setup = Setup {
            mpegcoder: mpegcoder.clone(),
            ffmpeg: ffmpeg.clone(),
            time: time.clone(),
            clip,
            av,
            frames: spec.frames() as usize,
            fps: f64::from(spec.fps),
            gop: spec.gop,
            bframes: spec.bframes,
            bitrate: args.bitrate.clone(),
            logs: logs.clone(),
        };
        for rep in 0..args.repeat.max(1) {
            for &mode in &modes {
                for &proto in &protos {
                    // Alternate which side goes first, so neither always runs on a cooler
                    // machine.
                    let sides = if rep % 2 == 0 {
                        [Side::Ours, Side::Ffmpeg]
                    } else {
                        [Side::Ffmpeg, Side::Ours]
                    };
                    for side in sides {
                        let r = single::run(&setup, side, mode, proto, rep)?;
                        eprintln!(
                            "{:<6} {:<16} {:<8} run {rep}: {}/{} frames, p99 {:.2} ms, first \
                             100 ms {}, last 100 ms {}, start {:.1} ms, CPU {:.2} s, RSS {:.1} \
                             MiB{}{}",
                            format!("{side:?}").to_lowercase(),
                            mode.name(),
                            proto.name(),
                            r.frames_received,
                            r.frames_expected,
                            r.timing
                                .as_ref()
                                .and_then(|t| t.steady)
                                .map_or(f64::NAN, |s| s.p99_ms),
                            r.timing.as_ref().map_or(0, |t| t.first_100ms),
                            r.timing.as_ref().map_or(0, |t| t.last_100ms),
                            r.start_to_first_frame_ms.unwrap_or(f64::NAN),
                            r.usage.cpu_s(),
                            r.usage.max_rss_kib as f64 / 1024.0,
                            r.audio.as_ref().map_or(String::new(), |a| format!(
                                "; audio {}/{} frames in {} packets, p99 {:.2} ms, A/V offset \
                                 {:.1} ms",
                                a.frames_received(),
                                a.frames_expected,
                                a.timing.as_ref().map_or(0, |t| t.packets),
                                a.timing
                                    .as_ref()
                                    .and_then(|t| t.steady)
                                    .map_or(f64::NAN, |s| s.p99_ms),
                                a.av_offset_ms.unwrap_or(f64::NAN),
                            )),
                            match (&r.sink_error, r.usage.exit_code) {
                                (Some(e), _) => format!(" (sink: {e})"),
                                (None, Some(0)) => String::new(),
                                (None, code) => format!(" (exit {code:?})"),
                            }
                        );
                        report.runs.push(r);
                    }
                }
            }
        }
        report.summary = report::rows(&report.runs);
    }

    if round2.any() {
        let spec = ClipSpec::hd(args.seconds);
        let clip = clip::ensure(&ffmpeg, &ffprobe, &clips, spec)?;
        report.round2_clip = Some(spec);
        let frames = spec.frames() as usize;
        let fps = f64::from(spec.fps);
        if round2.reconnect {
            let setup = reconnect::ReconnectSetup {
                mpegcoder: mpegcoder.clone(),
                ffmpeg: ffmpeg.clone(),
                clip: clip.clone(),
                frames,
                fps,
                gop: spec.gop,
                bitrate: args.bitrate.clone(),
                logs: logs.clone(),
                cycles: args.reconnect_cycles.max(1),
                down: std::time::Duration::from_millis(args.reconnect_down_ms),
                settle: std::time::Duration::from_millis(args.reconnect_settle_ms),
            };
            for &codec in &reconnect_codecs {
                for &proto in &reconnect_protos {
                    let r = reconnect::run(&setup, codec, proto)?;
                    let t = r.recovery.total.as_ref();
                    eprintln!(
                        "reconnect {:<16} {:<8}: {}/{} recovered, recovery p50 {:.0} ms, max \
                         {:.0} ms (to the attempt p50 {:.0}, key frame wait p50 {:.0}); the \
                         publisher counted {} reconnects",
                        codec.name(),
                        proto.name(),
                        r.recovered,
                        r.cycles.len(),
                        t.map_or(f64::NAN, |s| s.p50_ms),
                        t.map_or(f64::NAN, |s| s.max_ms),
                        r.recovery
                            .to_attempt
                            .as_ref()
                            .map_or(f64::NAN, |s| s.p50_ms),
                        r.recovery.key_wait.as_ref().map_or(f64::NAN, |s| s.p50_ms),
                        r.pusher.reconnects.map_or("no".into(), |n| n.to_string()),
                    );
                    report.reconnect.push(r);
                }
            }
            if !args.no_ffmpeg_restart {
                for &proto in &reconnect_protos {
                    let f = reconnect::ffmpeg_restart(&setup, proto)?;
                    eprintln!(
                        "ffmpeg restart {:<8}: exited {}, status {:?}, {} connections after \
                         the restart; last line {:?}",
                        proto.name(),
                        f.exited_after_kill_ms
                            .map_or("not at all".into(), |ms| format!(
                                "{ms:.0} ms after the kill"
                            )),
                        f.exit_code,
                        f.connections_after_restart,
                        f.stderr_tail.last().cloned().unwrap_or_default()
                    );
                    report.ffmpeg_restart.push(f);
                }
            }
        }
        if round2.rtmps {
            let setup = tls::TlsSetup {
                mpegcoder: mpegcoder.clone(),
                ffmpeg: ffmpeg.clone(),
                ffprobe: ffprobe.clone(),
                time: time.clone(),
                nginx: nginx_bin
                    .clone()
                    .unwrap_or_else(|| args.tools.nginx.clone()),
                clip: clip.clone(),
                frames,
                seconds: frames as f64 / fps,
                work: args.out.join("rtmps"),
                logs: logs.clone(),
            };
            report.rtmps = tls::run(&setup, args.repeat)?;
        }
        if round2.fanout {
            let setup = fanout::FanoutSetup {
                mpegcoder: mpegcoder.clone(),
                ffmpeg: ffmpeg.clone(),
                time: time.clone(),
                clip: clip.clone(),
                frames,
                fps,
                logs: logs.clone(),
                destinations: args.fanout_destinations.max(1),
            };
            for rep in 0..args.fanout_repeat.unwrap_or(args.repeat).max(1) {
                for &proto in &fanout_protos {
                    // Alternate the order of the sides from one repetition to the next.
                    let mut sides = FanoutSide::ALL.to_vec();
                    if rep % 2 == 1 {
                        sides.reverse();
                    }
                    for side in sides {
                        let r = fanout::run(&setup, side, proto, rep)?;
                        eprintln!(
                            "fanout {:<46} {:<8} run {rep}: CPU {:.2} s, RSS {:.1} MiB, {}/{} \
                             destinations complete (fewest {} frames), p99 {}",
                            side.name(),
                            proto.name(),
                            r.cpu_s,
                            r.rss_mib,
                            r.complete(),
                            r.destinations.len(),
                            r.frames_min(),
                            r.destinations
                                .iter()
                                .map(|d| d
                                    .steady
                                    .map_or("–".into(), |p| format!("{:.2}", p.p99_ms)))
                                .collect::<Vec<_>>()
                                .join(" / ")
                        );
                        report.fanout.push(r);
                    }
                }
            }
        }
        if round2.relay {
            let relay_bin = match &args.relay_mpegcoder {
                Some(p) => require(p, "the relaying mpegcoder binary")?,
                None => mpegcoder.clone(),
            };
            report.relay_binary = Some(format!(
                "`{}` ({}){}",
                relay_bin.display(),
                first_line(&relay_bin, &["--version"]),
                args.relay_label
                    .as_ref()
                    .map_or(String::new(), |l| format!(", {l}"))
            ));
            let setup = relay::RelaySetup {
                mpegcoder: relay_bin,
                ffmpeg: ffmpeg.clone(),
                time: time.clone(),
                nginx: nginx_bin
                    .clone()
                    .unwrap_or_else(|| args.tools.nginx.clone()),
                clip: clip.clone(),
                frames,
                fps,
                work: args.out.join("relay"),
                logs: logs.clone(),
            };
            std::fs::create_dir_all(&setup.work)?;
            for rep in 0..args.relay_repeat.unwrap_or(args.repeat).max(1) {
                for &(source, proto) in relay_sources
                    .iter()
                    .flat_map(|s| relay_protos.iter().map(move |p| (*s, *p)))
                    .collect::<Vec<_>>()
                    .iter()
                {
                    for relayer in Relayer::ALL {
                        let r = relay::run(&setup, source, relayer, proto, rep)?;
                        eprintln!(
                            "relay from {:<12} {:<28} to {:<8} run {rep}: {} of {} frames \
                             matched ({} from the source), latency p50 {:.2} ms, p99 {:.2} ms, \
                             max {:.1} ms; control p99 {:.2} ms{}",
                            source.name(),
                            relayer.name(),
                            proto.name(),
                            r.matched,
                            r.destination_frames,
                            r.source_frames,
                            r.latency.map_or(f64::NAN, |l| l.p50_ms),
                            r.latency.map_or(f64::NAN, |l| l.p99_ms),
                            r.latency.map_or(f64::NAN, |l| l.max_ms),
                            r.control.map_or(f64::NAN, |l| l.p99_ms),
                            r.player_error
                                .as_ref()
                                .map_or(String::new(), |e| format!(" (direct player: {e})"))
                        );
                        report.relay.push(r);
                    }
                }
            }
        }
    }

    if !args.skip_concurrency {
        let spec = ClipSpec::hd(args.many_seconds);
        let clip = clip::ensure(&ffmpeg, &ffprobe, &clips, spec)?;
        report.concurrency_clip = Some(spec);
        let nginx = nginx_unless(&args.tools.nginx, args.no_nginx, "the sweep");
        let setup = sweep::SweepSetup {
            bench: std::env::current_exe()?,
            time: time.clone(),
            nginx,
            clip,
            frames: spec.frames() as usize,
            fps: f64::from(spec.fps),
            work: args.out.join("many"),
        };
        std::fs::create_dir_all(&setup.work)?;
        for &design in &args.designs {
            let steps = sweep::sweep(&setup, design, &args.steps, false)?;
            let best = sweep::largest_passing(&steps);
            report.concurrency.extend(steps);
            if let (false, Some(n)) = (args.no_aligned_check, best) {
                report
                    .concurrency
                    .push(sweep::step(&setup, design, n, true)?);
            }
            report.largest_passing.push((design, best));
        }
    }

    if !args.skip_scale {
        let (spec, av) = scale_clip(&ffmpeg, &ffprobe, &clips, args.many_seconds)?;
        let setup = scale::ScaleSetup {
            mpegcoder: Some(mpegcoder.clone()),
            ffmpeg: ffmpeg.clone(),
            time: time.clone(),
            nginx: nginx_unless(&args.tools.nginx, args.no_nginx, "the scale comparison"),
            clip: av.clone(),
            frames: spec.frames() as usize,
            fps: f64::from(spec.fps),
            work: args.out.join("scale"),
        };
        report.scale = scale::scale(&setup, &args.scale_steps, &args.scale_sides)?;
        report.scale_largest_passing = args
            .scale_sides
            .iter()
            .map(|&side| (side, scale::largest_passing(&report.scale, side)))
            .collect();
        report.scale_sides = args.scale_sides.clone();
        report.scale_clip = Some(spec);
        report.scale_av_clip = Some(av);
    }

    report.machine.load_at_end = process::load_average();
    let md = render(&report);
    println!("{md}");
    std::fs::write(args.out.join("report.md"), &md)?;
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(args.out.join("report.json"), json + "\n")?;
    eprintln!(
        "wrote {} and {}",
        args.out.join("report.md").display(),
        args.out.join("report.json").display()
    );
    Ok(())
}

/// nginx with its RTMP module, unless `skip`; `None`, with a warning that `what` checks the
/// sink only, when either is missing.
fn nginx_unless(nginx: &Path, skip: bool, what: &str) -> Option<PathBuf> {
    if skip {
        return None;
    }
    match (which(nginx), Path::new(nginx::RTMP_MODULE).exists()) {
        (Some(n), true) => Some(n),
        _ => {
            eprintln!("warning: nginx or its RTMP module is missing: {what} checks the sink only");
            None
        }
    }
}

/// The 720p30 clip of `seconds` and its audio+video variant (AAC), made once and cached.
fn scale_clip(
    ffmpeg: &Path,
    ffprobe: &Path,
    clips: &Path,
    seconds: u32,
) -> Result<(ClipSpec, AvClip)> {
    let spec = ClipSpec::hd(seconds);
    let video = clip::ensure(ffmpeg, ffprobe, clips, spec)?;
    let av = clip::ensure_av(
        ffmpeg,
        ffprobe,
        clips,
        &video,
        spec,
        AudioSpec::AAC_48K_STEREO,
    )?;
    Ok((spec, av))
}

/// Everything `scale` measured.
#[derive(Debug, Serialize)]
struct ScaleReport {
    machine: Machine,
    clip: ClipSpec,
    av_clip: AvClip,
    sides: Vec<scale::Side>,
    /// nginx ran as the second receiver.
    nginx: bool,
    steps: Vec<scale::ScaleStep>,
    largest_passing: Vec<(scale::Side, Option<usize>)>,
    /// The bench's own commit (`git rev-parse HEAD` where it ran).
    bench_commit: String,
}

fn scale_bench(args: &ScaleArgs) -> Result<()> {
    let ffmpeg = require(&args.tools.ffmpeg, "ffmpeg")?;
    let ffprobe = require(&args.tools.ffprobe, "ffprobe")?;
    let time = require(&args.tools.time, "GNU time")?;
    if args.sides.is_empty() {
        bail!("--sides is empty (mpegcoder, ffmpeg)");
    }
    let mpegcoder = if args.sides.contains(&scale::Side::Mpegcoder) {
        Some(require(
            &args.tools.mpegcoder,
            "the mpegcoder binary (cargo build --release)",
        )?)
    } else {
        None
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let machine = machine_with(
        &ffmpeg,
        mpegcoder.as_deref().unwrap_or(&args.tools.mpegcoder),
    );
    eprintln!(
        "machine: {} × {}, kernel {}, load {:.2}",
        machine.nproc,
        machine.cpu_model,
        machine.kernel,
        machine.load_at_start.unwrap_or(f64::NAN)
    );
    if machine.load_at_start.is_some_and(|l| l > 0.5) {
        eprintln!("warning: the load average is above 0.5; timing figures may suffer");
    }
    let (spec, av) = scale_clip(&ffmpeg, &ffprobe, &args.clips, args.seconds)?;
    let setup = scale::ScaleSetup {
        mpegcoder,
        ffmpeg: ffmpeg.clone(),
        time,
        nginx: nginx_unless(&args.tools.nginx, args.no_nginx, "the scale comparison"),
        clip: av.clone(),
        frames: spec.frames() as usize,
        fps: f64::from(spec.fps),
        work: args.out.clone(),
    };
    let steps = scale::scale(&setup, &args.steps, &args.sides)?;
    let mut report = ScaleReport {
        machine,
        clip: spec,
        nginx: setup.nginx.is_some(),
        largest_passing: args
            .sides
            .iter()
            .map(|&side| (side, scale::largest_passing(&steps, side)))
            .collect(),
        sides: args.sides.clone(),
        steps,
        av_clip: av,
        bench_commit: git_commit(),
    };
    report.machine.load_at_end = process::load_average();
    let mut md = render_machine(&report.machine);
    md.push_str(&scale::markdown(
        &report.steps,
        &report.clip,
        &report.av_clip,
        &report.sides,
    ));
    if !report.nginx {
        md.push_str("\nnginx did not run: the steps checked the sink only.\n");
    }
    println!("{md}");
    let (md_path, json_path) = (args.out.join("scale.md"), args.out.join("scale.json"));
    std::fs::write(&md_path, &md).with_context(|| format!("cannot write {}", md_path.display()))?;
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    eprintln!("wrote {} and {}", md_path.display(), json_path.display());
    Ok(())
}

fn render_machine(m: &Machine) -> String {
    format!(
        "## Machine\n\n{} × {}, {} MiB, Linux {}; load average {} at the start, {} at the end.\n\
         {}; {}; {}.\n",
        m.nproc,
        m.cpu_model,
        m.memory_mib,
        m.kernel,
        m.load_at_start.map_or("–".into(), |l| format!("{l:.2}")),
        m.load_at_end.map_or("–".into(), |l| format!("{l:.2}")),
        m.ffmpeg,
        m.rustc,
        m.mpegcoder,
    )
}

fn render(report: &Report) -> String {
    let mut md = render_machine(&report.machine);
    if let Some(spec) = report.clip {
        let incomplete: Vec<String> = report
            .runs
            .iter()
            .filter(|r| r.frames_received != r.frames_expected)
            .map(|r| {
                format!(
                    "{:?} {} {} run {}: {}",
                    r.side,
                    r.mode.name(),
                    r.proto.name(),
                    r.repetition,
                    r.frames_received
                )
            })
            .collect();
        md.push_str(&format!(
            "\n## Side by side\n\nClip: {}x{} at {} fps, {} s ({} frames), libx264 bit rate {}.\n\
             Frames received: {}.\n",
            spec.width,
            spec.height,
            spec.fps,
            spec.seconds,
            spec.frames(),
            report.bitrate,
            if incomplete.is_empty() {
                format!("every run delivered all {} frames", spec.frames())
            } else {
                format!("short runs: {}", incomplete.join("; "))
            }
        ));
        if let Some(av) = &report.av_clip {
            md.push_str(&av_clip_note(av, &report.runs));
        }
        md.push_str(&report::markdown(
            &report.summary,
            spec.frames() as usize,
            report.repetitions.max(1),
        ));
    }
    if let Some(spec) = report.concurrency_clip {
        md.push_str(&format!(
            "\n## Concurrent copy pushes from one process\n\nClip: {}x{} at {} fps, {} s ({} \
             frames); a step passes when every stream delivered every frame and the pooled \
             steady p99 deviation is at most {} ms.\n\n",
            spec.width,
            spec.height,
            spec.fps,
            spec.seconds,
            spec.frames(),
            sweep::P99_LIMIT_MS
        ));
        md.push_str(&report::markdown_steps(
            &report.concurrency,
            spec.frames() as usize,
        ));
        for (design, best) in &report.largest_passing {
            md.push_str(&format!(
                "\nLargest passing N, design {}: {}.\n",
                design.name(),
                best.map_or("none".into(), |n| n.to_string())
            ));
        }
    }
    if let (Some(spec), Some(av)) = (&report.scale_clip, &report.scale_av_clip) {
        md.push_str(&scale::markdown(
            &report.scale,
            spec,
            av,
            &report.scale_sides,
        ));
    }
    if let Some(spec) = report.round2_clip {
        md.push_str(&format!(
            "\n## Round 2\n\nClip: {}x{} at {} fps, {} s ({} frames), a key frame every {} \
             frames; bench at `{}`.\n",
            spec.width,
            spec.height,
            spec.fps,
            spec.seconds,
            spec.frames(),
            spec.gop,
            report.bench_commit
        ));
        md.push_str(&reconnect::markdown(
            &report.reconnect,
            &report.ffmpeg_restart,
        ));
        md.push_str(&fanout::markdown(&report.fanout, spec.frames() as usize));
        md.push_str(&relay::markdown(
            &report.relay,
            report.relay_binary.as_deref().unwrap_or("–"),
        ));
        md.push_str(&tls::markdown(&report.rtmps, spec.frames() as usize));
    }
    md
}

/// What the audio+video clip holds, and which runs fell short of its audio frames.
fn av_clip_note(av: &AvClip, runs: &[single::RunResult]) -> String {
    let short: Vec<String> = runs
        .iter()
        .filter_map(|r| {
            let a = r.audio.as_ref()?;
            (a.frames_received() != a.frames_expected).then(|| {
                format!(
                    "{:?} {} run {}: {}",
                    r.side,
                    r.proto.name(),
                    r.repetition,
                    a.frames_received()
                )
            })
        })
        .collect();
    let a = av.audio_spec;
    format!(
        "\nAudio+video clip: the same video next to AAC (ffmpeg's native encoder, a 440 Hz sine) \
         at {} Hz, {} channels, {} kb/s ({} kb/s measured), {} frames of {} samples; first \
         audio frame {:.1} ms, first video frame (decoding time) {:.1} ms.\n\
         Audio frames received: {}.\n",
        a.sample_rate,
        a.channels,
        a.kbps,
        av.audio_bit_rate
            .map_or("–".into(), |b| format!("{:.0}", b as f64 / 1e3)),
        av.audio_packets,
        av.audio_frame_samples,
        av.audio_first_pts_s * 1e3,
        av.video_first_dts_s * 1e3,
        if short.is_empty() {
            format!("every run delivered all {}", av.audio_packets)
        } else {
            format!("short runs: {}", short.join("; "))
        }
    )
}
