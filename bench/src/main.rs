//! Publisher benchmarks, mpegcoder side by side with ffmpeg (see BENCHMARKS.md).
//!
//! `mpegcoder-bench run` publishes the same clip with `mpegcoder push` and with `ffmpeg -re`,
//! in copy and libx264 modes (and, with `--modes copy-av`, an audio+video variant of the clip
//! in copy mode), over RTSP/TCP, RTSP/UDP and RTMP, to sinks of its own that record when
//! every frame and every audio packet arrives; GNU time measures each publisher process. Then it pushes
//! N copy streams at once from one process (`mpegcoder-bench push-many`) to its RTMP sink and
//! to nginx-rtmp, for growing N. It prints markdown tables and writes `report.json` and
//! `report.md` into the output directory. `mpegcoder-bench criterion` summarizes the
//! criterion benches' results.
#![forbid(unsafe_code)]

mod clip;
mod criterion;
mod flv;
mod many;
mod nginx;
mod process;
mod report;
mod single;
mod sink;
mod stats;
mod sweep;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::clip::{AudioSpec, AvClip, ClipSpec};
use crate::many::{Design, ManyOptions};
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
    Run(RunArgs),
    /// Push N copies of a clip at once from this process (used by `run`).
    PushMany(PushManyArgs),
    /// Summarize the criterion benches' results as a markdown table.
    Criterion(CriterionArgs),
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
    /// The mpegcoder binary (a release build).
    #[arg(long, default_value = "target/release/mpegcoder")]
    mpegcoder: PathBuf,
    /// ffmpeg.
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
    /// both passed through).
    #[arg(long, value_delimiter = ',', default_values = ["copy", "libx264"])]
    modes: Vec<String>,
    /// Protocols to run.
    #[arg(long, value_delimiter = ',', default_values = ["rtsp-tcp", "rtsp-udp", "rtmp"])]
    protos: Vec<String>,
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
    /// Skip nginx in the concurrency sweep (wire timing only).
    #[arg(long)]
    no_nginx: bool,
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
        ffmpeg: first_line(&args.ffmpeg, &["-version"]),
        rustc: first_line(Path::new("rustc"), &["--version"]),
        mpegcoder: first_line(&args.mpegcoder, &["--version"]),
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
}

fn parse_modes(names: &[String]) -> Result<Vec<Mode>> {
    names
        .iter()
        .map(|m| match m.as_str() {
            "copy" => Ok(Mode::Copy),
            "libx264" => Ok(Mode::Libx264),
            "copy-av" => Ok(Mode::CopyAv),
            other => bail!("unknown mode {other:?} (copy, libx264, copy-av)"),
        })
        .collect()
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
    let ffmpeg = require(&args.ffmpeg, "ffmpeg")?;
    let ffprobe = require(&args.ffprobe, "ffprobe")?;
    let time = require(&args.time, "GNU time")?;
    let mpegcoder = require(
        &args.mpegcoder,
        "the mpegcoder binary (cargo build --release)",
    )?;
    let modes = parse_modes(&args.modes)?;
    let protos = parse_protos(&args.protos)?;
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
    };

    if !args.skip_single {
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

    if !args.skip_concurrency {
        let spec = ClipSpec::hd(args.many_seconds);
        let clip = clip::ensure(&ffmpeg, &ffprobe, &clips, spec)?;
        report.concurrency_clip = Some(spec);
        let nginx = if args.no_nginx {
            None
        } else {
            match (which(&args.nginx), Path::new(nginx::RTMP_MODULE).exists()) {
                (Some(n), true) => Some(n),
                _ => {
                    eprintln!(
                        "warning: nginx or its RTMP module is missing: the sweep checks the \
                         sink only"
                    );
                    None
                }
            }
        };
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

fn render(report: &Report) -> String {
    let m = &report.machine;
    let mut md = format!(
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
    );
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
