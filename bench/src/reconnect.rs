//! Reconnect recovery: how long `mpegcoder push --loop -1 --reconnect` takes to put a frame on
//! the wire again after its server comes back.
//!
//! The publisher pushes the clip forever to a sink of the bench. Then, `cycles` times: the
//! sink is killed ([`Sink::kill`]: the listener closes and every connection is shut down at
//! once, so the publisher sees its connection lost and its next attempts refused), stays down
//! for `down`, and is started again on the same port. Recovery runs from the instant the new
//! listener is bound to the first media frame the sink receives on the new connection, and is
//! broken down from the sink's records of that connection:
//! - *to the attempt*: bound → the publisher's connection accepted (what is left of its
//!   backoff, plus a loopback TCP connect);
//! - *handshake*: accepted → the RECORD request (RTSP) or the publish command (RTMP) arrived;
//! - *key frame wait*: that request → the first frame (copy: the input's next key frame, up
//!   to one GOP; libx264: the forced IDR, after the frames already in the encoder).
//!
//! Between two kills the stream runs for `settle` plus a share of a GOP that differs from
//! cycle to cycle (a golden-ratio sequence), so the kills, and with them the resumes, fall at
//! spread-out points of the GOP.
//!
//! ffmpeg has no reconnect for publishing; [`ffmpeg_restart`] checks what `ffmpeg -re` does
//! when its server goes away and comes back.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::process::{interrupt_child, load_average, tail_lines, ChildGuard};
use crate::single::{serde_plain, Proto};
use crate::sink::{seconds_between, Session, Sink, SinkConfig};
use crate::stats::Spread;

/// Pass-through or re-encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// `--codec copy`.
    Copy,
    /// `--codec libx264 --preset veryfast`.
    Libx264,
}

impl Codec {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Copy => "copy",
            Codec::Libx264 => "libx264 veryfast",
        }
    }

    /// Parses `copy` or `libx264`.
    pub fn parse(s: &str) -> Option<Codec> {
        match s {
            "copy" => Some(Codec::Copy),
            "libx264" => Some(Codec::Libx264),
            _ => None,
        }
    }
}

/// Programs and settings of the reconnect measurement.
#[derive(Debug, Clone)]
pub struct ReconnectSetup {
    /// The `mpegcoder` binary.
    pub mpegcoder: PathBuf,
    /// The `ffmpeg` binary.
    pub ffmpeg: PathBuf,
    /// The clip.
    pub clip: PathBuf,
    /// Its frame count.
    pub frames: usize,
    /// Its frame rate.
    pub fps: f64,
    /// Its key frame interval, frames.
    pub gop: u32,
    /// libx264's bit rate.
    pub bitrate: String,
    /// Directory for logs and the publishers' summaries.
    pub logs: PathBuf,
    /// Restarts per configuration.
    pub cycles: usize,
    /// How long the sink stays down.
    pub down: Duration,
    /// Streaming on a connection before it is killed (plus a share of a GOP).
    pub settle: Duration,
}

impl ReconnectSetup {
    /// `mpegcoder push`'s arguments.
    pub fn command(&self, codec: Codec, proto: Proto, url: &str, stats: &str) -> Vec<String> {
        let clip = self.clip.display().to_string();
        let mut a: Vec<String> = ["push", &clip, url, "--quiet", "--loop", "-1", "--reconnect"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        match codec {
            Codec::Copy => a.extend(["--codec".into(), "copy".into()]),
            Codec::Libx264 => a.extend(
                ["--codec", "libx264", "--preset", "veryfast", "--bitrate"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain([self.bitrate.clone()]),
            ),
        }
        a.extend(proto.push_args().iter().map(|s| s.to_string()));
        a.extend(["--stats-json".into(), stats.into()]);
        a
    }

    /// Frames to receive on a connection before killing it, in cycle `i`: `settle` plus a
    /// fraction of a GOP from the golden-ratio sequence.
    pub fn frames_before_kill(&self, i: usize) -> u64 {
        let phase = (i as f64 * 0.618_033_988_749_895).fract();
        (self.settle.as_secs_f64() * self.fps + phase * f64::from(self.gop)).round() as u64
    }
}

/// One restart.
#[derive(Debug, Clone, Serialize)]
pub struct Cycle {
    /// From 0.
    pub index: usize,
    /// Kill → the new listener bound, ms (the down time as it happened).
    pub down_ms: f64,
    /// Bound → the publisher's connection accepted, ms.
    pub to_attempt_ms: Option<f64>,
    /// Accepted → RECORD / publish, ms.
    pub handshake_ms: Option<f64>,
    /// RECORD / publish → the first frame, ms.
    pub key_wait_ms: Option<f64>,
    /// Bound → the first frame, ms.
    pub recovery_ms: Option<f64>,
    /// The first frame on the new connection held an IDR slice.
    pub first_is_key: Option<bool>,
    /// Connections the new listener accepted.
    pub connections: usize,
    /// Frames the killed connection had delivered.
    pub frames_before_kill: usize,
    /// 1-minute load average at the kill.
    pub load: Option<f64>,
}

/// The recovery figures of a set of cycles.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    /// Bound → first frame.
    pub total: Option<Spread>,
    /// Bound → accepted.
    pub to_attempt: Option<Spread>,
    /// Accepted → RECORD / publish.
    pub handshake: Option<Spread>,
    /// RECORD / publish → first frame.
    pub key_wait: Option<Spread>,
}

impl Recovery {
    /// The figures of `cycles`.
    pub fn of(cycles: &[Cycle]) -> Recovery {
        let spread = |f: fn(&Cycle) -> Option<f64>| {
            Spread::of(&cycles.iter().filter_map(f).collect::<Vec<f64>>())
        };
        Recovery {
            total: spread(|c| c.recovery_ms),
            to_attempt: spread(|c| c.to_attempt_ms),
            handshake: spread(|c| c.handshake_ms),
            key_wait: spread(|c| c.key_wait_ms),
        }
    }
}

/// What the publisher's `--stats-json` summary says about its reconnections.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PusherReport {
    /// Reconnections, over every destination.
    pub reconnects: Option<u64>,
    /// Seconds its destinations were down.
    pub outage_s: Option<f64>,
    /// Video frames its destinations did not get.
    pub frames_dropped: Option<u64>,
    /// Video frames sent to the (first) destination.
    pub frames_sent: Option<u64>,
    /// Of those, key frames.
    pub key_frames_sent: Option<u64>,
    /// The wait for a key frame after the last reconnection, as the publisher saw it, ms.
    pub last_resume_wait_ms: Option<f64>,
}

impl PusherReport {
    /// Reads the summary at `path`; empty when it is missing or unreadable.
    pub fn read(path: &std::path::Path) -> PusherReport {
        let Some(v) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        else {
            return PusherReport::default();
        };
        let d = v.get("destinations").and_then(|d| d.get(0));
        let u = |v: Option<&serde_json::Value>, k: &str| v.and_then(|v| v.get(k)?.as_u64());
        let f = |v: Option<&serde_json::Value>, k: &str| v.and_then(|v| v.get(k)?.as_f64());
        PusherReport {
            reconnects: u(Some(&v), "reconnects"),
            outage_s: f(Some(&v), "outage_s"),
            frames_dropped: u(Some(&v), "destination_frames_dropped"),
            frames_sent: u(d, "frames_sent"),
            key_frames_sent: u(d, "key_frames_sent"),
            last_resume_wait_ms: f(d, "last_resume_wait_ms"),
        }
    }
}

/// One configuration's restarts.
#[derive(Debug, Clone, Serialize)]
pub struct ReconnectRun {
    /// Copy or libx264.
    pub codec: Codec,
    /// Protocol.
    pub proto: Proto,
    /// The publisher's command line.
    pub command: Vec<String>,
    /// Down time asked for, ms.
    pub down_ms: f64,
    /// Every restart.
    pub cycles: Vec<Cycle>,
    /// Their figures.
    pub recovery: Recovery,
    /// Restarts after which a frame arrived.
    pub recovered: usize,
    /// Restarts whose first frame was a key frame.
    pub first_key: usize,
    /// The publisher's own account.
    pub pusher: PusherReport,
    /// The publisher's exit status after its Ctrl-C (`None`: killed, or a signal).
    pub exit_code: Option<i32>,
    /// 1-minute load average before and after.
    pub load_before: Option<f64>,
    /// See `load_before`.
    pub load_after: Option<f64>,
}

/// The longest wait for a connection's frames before the cycle goes on without them.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

/// Waits until `sink` has received `frames` frames, at most `limit`; false when the limit
/// passed or `alive` says the publisher is gone.
fn wait_frames(sink: &Sink, frames: u64, limit: Duration, mut alive: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while sink.frames_seen() < frames {
        if Instant::now() >= deadline || !alive() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Binds the sink again on `port`, retrying for a second if the port is still taken.
fn restart(proto: Proto, config: SinkConfig) -> Result<Sink> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match Sink::start_with(proto.sink(), config) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot bind port {} again", config.port))
            }
        }
    }
}

/// The figures of a restart from the sessions of the sink bound at `bound_at`.
fn evaluate(
    index: usize,
    killed_at: Instant,
    bound_at: Instant,
    frames_before_kill: usize,
    load: Option<f64>,
    sessions: &[Session],
) -> Cycle {
    let ms = |from: Instant, to: Instant| seconds_between(from, to) * 1e3;
    let accepted = sessions.iter().map(|s| s.accepted_at).min();
    let first = sessions
        .iter()
        .filter_map(|s| s.frames.first().map(|f| (f, s)))
        .min_by_key(|(f, _)| f.at);
    Cycle {
        index,
        down_ms: ms(killed_at, bound_at),
        to_attempt_ms: accepted.map(|a| ms(bound_at, a)),
        handshake_ms: first.and_then(|(_, s)| s.ready_at.map(|r| ms(s.accepted_at, r))),
        key_wait_ms: first.and_then(|(f, s)| s.ready_at.map(|r| ms(r, f.at))),
        recovery_ms: first.map(|(f, _)| ms(bound_at, f.at)),
        first_is_key: first.map(|(f, _)| f.key),
        connections: sessions.len(),
        frames_before_kill,
        load,
    }
}

/// Pushes with `codec` over `proto` and restarts the sink `setup.cycles` times.
pub fn run(setup: &ReconnectSetup, codec: Codec, proto: Proto) -> Result<ReconnectRun> {
    let config = SinkConfig::new(Duration::from_secs(30));
    let mut sink = Sink::start_with(proto.sink(), config)?;
    let config = SinkConfig {
        port: sink.port(),
        ..config
    };
    let name = format!("reconnect-{}-{}", serde_plain(&codec), serde_plain(&proto));
    let stats = setup.logs.join(format!("{name}.json"));
    let _ = std::fs::remove_file(&stats);
    let args = setup.command(
        codec,
        proto,
        &sink.url("bench"),
        &stats.display().to_string(),
    );
    let log = setup.logs.join(format!("{name}.log"));
    let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let load_before = load_average();
    let mut child = ChildGuard(
        Command::new(&setup.mpegcoder)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()
            .with_context(|| format!("cannot start {}", setup.mpegcoder.display()))?,
    );
    let alive = |c: &mut ChildGuard| matches!(c.0.try_wait(), Ok(None));
    let mut cycles = Vec::new();
    // The kill that started the restart being measured: (kill instant, frames delivered
    // before it, load).
    let mut pending: Option<(Instant, usize, Option<f64>)> = None;
    for i in 0..setup.cycles {
        let target = setup.frames_before_kill(i).max(1);
        wait_frames(&sink, target, RECOVERY_LIMIT, || alive(&mut child));
        if !alive(&mut child) {
            break;
        }
        let load = load_average();
        let killed_at = Instant::now();
        let bound_at = sink.bound_at;
        let sessions = sink.kill();
        let delivered = sessions.iter().map(|s| s.frames.len()).sum();
        if let Some((at, before, l)) = pending.take() {
            cycles.push(evaluate(i - 1, at, bound_at, before, l, &sessions));
        }
        std::thread::sleep(setup.down.saturating_sub(killed_at.elapsed()));
        sink = restart(proto, config)?;
        pending = Some((killed_at, delivered, load));
        eprintln!(
            "reconnect {} {} cycle {i}: killed after {delivered} frames",
            codec.name(),
            proto.name()
        );
    }
    // The last restart: let it deliver, then end the publisher with Ctrl-C.
    let recovered_last = wait_frames(
        &sink,
        setup.frames_before_kill(setup.cycles).max(1),
        RECOVERY_LIMIT,
        || alive(&mut child),
    );
    let status = interrupt_child(&mut child.0, Duration::from_secs(10));
    let bound_at = sink.bound_at;
    let sessions = sink.finish(1, Duration::from_secs(3));
    if let Some((at, before, l)) = pending.take() {
        cycles.push(evaluate(
            setup.cycles - 1,
            at,
            bound_at,
            before,
            l,
            &sessions,
        ));
    }
    if !recovered_last {
        eprintln!("warning: the last restart delivered no frames in time");
    }
    let mut command = vec![setup.mpegcoder.display().to_string()];
    command.extend(args);
    Ok(ReconnectRun {
        codec,
        proto,
        command,
        down_ms: setup.down.as_secs_f64() * 1e3,
        recovery: Recovery::of(&cycles),
        recovered: cycles.iter().filter(|c| c.recovery_ms.is_some()).count(),
        first_key: cycles
            .iter()
            .filter(|c| c.first_is_key == Some(true))
            .count(),
        cycles,
        pusher: PusherReport::read(&stats),
        exit_code: status.and_then(|s| s.code()),
        load_before,
        load_after: load_average(),
    })
}

/// What `ffmpeg -re … -c copy` did when its server went away and came back.
#[derive(Debug, Clone, Serialize)]
pub struct FfmpegRestart {
    /// Protocol.
    pub proto: Proto,
    /// Its command line.
    pub command: Vec<String>,
    /// Frames the sink received before it was killed.
    pub frames_before_kill: usize,
    /// Kill → ffmpeg exited, ms; `None` when it was still running at the end of the check.
    pub exited_after_kill_ms: Option<f64>,
    /// Its exit status.
    pub exit_code: Option<i32>,
    /// Connections the restarted sink accepted.
    pub connections_after_restart: usize,
    /// Frames the restarted sink received.
    pub frames_after_restart: usize,
    /// The last lines ffmpeg printed (log level `warning`).
    pub stderr_tail: Vec<String>,
    /// 1-minute load average at the kill.
    pub load: Option<f64>,
}

/// Runs `ffmpeg -re -i CLIP -c:v copy` to a sink, kills the sink after two seconds of
/// frames, binds it again after `setup.down`, and watches ffmpeg until it exits or the clip's
/// length has passed.
pub fn ffmpeg_restart(setup: &ReconnectSetup, proto: Proto) -> Result<FfmpegRestart> {
    let config = SinkConfig::new(Duration::from_secs(30));
    let sink = Sink::start_with(proto.sink(), config)?;
    let config = SinkConfig {
        port: sink.port(),
        ..config
    };
    let url = sink.url("bench");
    let mut args = crate::process::ffmpeg_copy_head(&setup.clip, "warning");
    args.extend(proto.ffmpeg_args().iter().map(|s| s.to_string()));
    args.push(url);
    let log = setup
        .logs
        .join(format!("reconnect-ffmpeg-{}.log", serde_plain(&proto)));
    let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let spawned_at = Instant::now();
    let mut child = ChildGuard(
        Command::new(&setup.ffmpeg)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()
            .with_context(|| format!("cannot start {}", setup.ffmpeg.display()))?,
    );
    let two_seconds = (2.0 * setup.fps).round() as u64;
    wait_frames(&sink, two_seconds, RECOVERY_LIMIT, || {
        matches!(child.0.try_wait(), Ok(None))
    });
    let load = load_average();
    let killed_at = Instant::now();
    let before = sink.kill();
    // Watch ffmpeg through the down time too: it may give up before the sink is back.
    let mut exited = None;
    let mut watch = |until: Instant, child: &mut ChildGuard| {
        while exited.is_none() && Instant::now() < until {
            if let Ok(Some(status)) = child.0.try_wait() {
                exited = Some((Instant::now(), status));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    watch(killed_at + setup.down, &mut child);
    let sink = restart(proto, config)?;
    // ffmpeg -re would end by itself at the end of the clip; give it that and 5 s more.
    let clip_end = spawned_at + Duration::from_secs_f64(setup.frames as f64 / setup.fps + 5.0);
    watch(clip_end, &mut child);
    if exited.is_none() {
        let status = interrupt_child(&mut child.0, Duration::from_secs(3));
        eprintln!("ffmpeg was still running at the end of the clip ({status:?})");
    }
    let after = sink.finish(0, Duration::from_secs(1));
    let mut command = vec![setup.ffmpeg.display().to_string()];
    command.extend(args);
    Ok(FfmpegRestart {
        proto,
        command,
        frames_before_kill: before.iter().map(|s| s.frames.len()).sum(),
        exited_after_kill_ms: exited.map(|(at, _)| seconds_between(killed_at, at) * 1e3),
        exit_code: exited.and_then(|(_, s)| s.code()),
        connections_after_restart: after.len(),
        frames_after_restart: after.iter().map(|s| s.frames.len()).sum(),
        stderr_tail: tail_lines(&log, 6),
        load,
    })
}

/// `p50 / max` of a spread, ms.
fn p50_max(s: Option<&Spread>) -> String {
    s.map_or("–".into(), |s| {
        format!("{:.0} / {:.0}", s.p50_ms, s.max_ms)
    })
}

/// The reconnect tables: ours, then what ffmpeg did.
pub fn markdown(runs: &[ReconnectRun], ffmpeg: &[FfmpegRestart]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if let Some(first) = runs.first() {
        let _ = writeln!(
            s,
            "\n## Reconnect recovery\n\n`mpegcoder push CLIP URL --loop -1 --reconnect` to a sink \
             that is killed (listener closed, every connection shut down) and bound again on \
             the same port {:.0} ms later; recovery runs from the new listener's bind to the \
             first frame on the new connection. p50 / max over the restarts, ms.\n",
            first.down_ms
        );
        s.push_str(
            "| codec | protocol | recovered | first frame a key frame | recovery | to the \
             attempt (backoff left) | connect + handshake | key frame wait | publisher: \
             reconnects, frames dropped | load |\n",
        );
        s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in runs {
            let loads: Vec<f64> = r.cycles.iter().filter_map(|c| c.load).collect();
            let _ = writeln!(
                s,
                "| {} | {} | {}/{} | {}/{} | {} | {} | {} | {} | {}, {} | {} |",
                r.codec.name(),
                r.proto.name(),
                r.recovered,
                r.cycles.len(),
                r.first_key,
                r.recovered,
                p50_max(r.recovery.total.as_ref()),
                p50_max(r.recovery.to_attempt.as_ref()),
                r.recovery
                    .handshake
                    .as_ref()
                    .map_or("–".into(), |h| format!(
                        "{:.1} / {:.1}",
                        h.p50_ms, h.max_ms
                    )),
                p50_max(r.recovery.key_wait.as_ref()),
                r.pusher.reconnects.map_or("–".into(), |n| n.to_string()),
                r.pusher
                    .frames_dropped
                    .map_or("–".into(), |n| n.to_string()),
                match (
                    loads.iter().copied().reduce(f64::min),
                    loads.iter().copied().reduce(f64::max)
                ) {
                    (Some(a), Some(b)) => format!("{a:.2}–{b:.2}"),
                    _ => "–".into(),
                }
            );
        }
    }
    if !ffmpeg.is_empty() {
        s.push_str(
            "\nffmpeg: no equivalent (the push ends). `ffmpeg -re -i CLIP -map 0:v:0 -c:v copy \
             -f flv|rtsp URL` against the same restart, after 2 s of frames:\n\n",
        );
        s.push_str(
            "| protocol | frames before the kill | ffmpeg exited | exit status | connections \
             to the restarted sink | its last message |\n",
        );
        s.push_str("|---|---:|---|---:|---:|---|\n");
        for f in ffmpeg {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                f.proto.name(),
                f.frames_before_kill,
                f.exited_after_kill_ms
                    .map_or("still running at the end of the clip".into(), |ms| format!(
                        "{ms:.0} ms after the kill"
                    )),
                f.exit_code.map_or("–".into(), |c| c.to_string()),
                f.connections_after_restart,
                f.stderr_tail
                    .last()
                    .map_or("–".into(), |l| format!("`{}`", l.replace('|', "\\|"))),
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> ReconnectSetup {
        ReconnectSetup {
            mpegcoder: "/bin/mpegcoder".into(),
            ffmpeg: "/bin/ffmpeg".into(),
            clip: "/c.mp4".into(),
            frames: 600,
            fps: 30.0,
            gop: 60,
            bitrate: "2M".into(),
            logs: "/tmp".into(),
            cycles: 10,
            down: Duration::from_secs(1),
            settle: Duration::from_secs(1),
        }
    }

    #[test]
    fn publisher_command_and_kill_points() {
        let s = setup();
        let a = s.command(Codec::Copy, Proto::RtspUdp, "rtsp://h/x", "/s.json");
        assert_eq!(
            a.join(" "),
            "push /c.mp4 rtsp://h/x --quiet --loop -1 --reconnect --codec copy --transport udp \
             --stats-json /s.json"
        );
        let a = s.command(Codec::Libx264, Proto::Rtmp, "rtmp://h/a/b", "/s.json");
        assert!(a
            .join(" ")
            .contains("--codec libx264 --preset veryfast --bitrate 2M --stats-json"));
        // 30 frames of settling plus a spread-out share of the 60-frame GOP.
        let kills: Vec<u64> = (0..5).map(|i| s.frames_before_kill(i)).collect();
        assert_eq!(kills, vec![30, 67, 44, 81, 58]);
    }

    #[test]
    fn a_restart_is_broken_down_from_the_sessions() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut s = Session::new(3, at(1300));
        s.ready_at = Some(at(1302));
        s.frames.push(crate::sink::FrameArrival {
            at: at(1900),
            timestamp: 0,
            key: true,
            hash: None,
        });
        let c = evaluate(0, t0, at(1000), 45, None, &[s]);
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-6);
        assert!((c.down_ms - 1000.0).abs() < 1e-6);
        assert!(close(c.to_attempt_ms, 300.0));
        assert!(close(c.handshake_ms, 2.0));
        assert!(close(c.key_wait_ms, 598.0));
        assert!(close(c.recovery_ms, 900.0));
        assert_eq!(c.first_is_key, Some(true));
        let none = evaluate(1, t0, at(1000), 0, None, &[]);
        assert_eq!((none.recovery_ms, none.connections), (None, 0));
    }
}
