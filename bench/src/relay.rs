//! Relay latency: what a relay adds between the source server and the destination.
//!
//! The relay under test (`mpegcoder push rtmp://…/live/src DEST --codec copy`, or
//! `ffmpeg -i rtmp://…/live/src -c:v copy … DEST` for comparison) plays an RTMP source and
//! publishes it to a sink of the bench (the destination), which stamps each frame as it
//! arrives. Frames are matched by a hash of their VCL NAL units ([`AuDigest`]: the slices
//! pass through a copy relay untouched, whatever the framing). Two sources:
//! - [`RelaySource::Nginx`]: `ffmpeg -re -i CLIP -c:v copy -f flv` publishes the clip to
//!   nginx-rtmp. In the bench process a direct player of the source ([`Puller`], on a thread
//!   of its own) stamps each access unit as it arrives from nginx; a frame's latency is the
//!   sink's arrival less the direct player's. Both paths include nginx's forwarding. A second
//!   direct player (the *control*) is matched against the first the same way: its spread is
//!   the method's own noise, nginx's stalls on one player's connection and not the other's
//!   (nginx-rtmp does not set `TCP_NODELAY`, so now and then a frame waits for a player's
//!   delayed ACK, about 40 ms; see [`crate::source`]).
//! - [`RelaySource::Bench`]: the bench's own RTMP source ([`crate::source`]) serves the clip,
//!   paced, to the relay and records when each frame's write returned; a frame's latency is
//!   the sink's arrival less that instant: the relay's receive, processing and send plus one
//!   more loopback hop, with no server stall on the path.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mpegcoder::transport::pull::{PullOptions, Puller};
use serde::Serialize;

use crate::nginx::Nginx;
use crate::process::{load_average, wait_for_exit, ChildGuard, Timed, Usage};
use crate::single::{serde_plain, Proto};
use crate::sink::digest::AuDigest;
use crate::sink::{seconds_between, FrameArrival, Sink, SinkConfig};
use crate::source::{self, Source};
use crate::stats::Spread;

/// Where the relay plays the stream from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RelaySource {
    /// nginx-rtmp, published to by `ffmpeg -re`; direct players in the bench.
    Nginx,
    /// The bench's own RTMP source.
    Bench,
}

impl RelaySource {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            RelaySource::Nginx => "nginx-rtmp",
            RelaySource::Bench => "bench source",
        }
    }

    /// Parses `nginx` or `bench`.
    pub fn parse(s: &str) -> Option<RelaySource> {
        match s {
            "nginx" => Some(RelaySource::Nginx),
            "bench" => Some(RelaySource::Bench),
            _ => None,
        }
    }
}

/// Who relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Relayer {
    /// `mpegcoder push rtmp://… DEST --codec copy`.
    Ours,
    /// `ffmpeg -i rtmp://… -c:v copy … DEST`.
    Ffmpeg,
}

impl Relayer {
    /// Both, in table order.
    pub const ALL: [Relayer; 2] = [Relayer::Ours, Relayer::Ffmpeg];

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Relayer::Ours => "mpegcoder push --codec copy",
            Relayer::Ffmpeg => "ffmpeg -i … -c:v copy",
        }
    }
}

/// Programs and settings of the relay runs.
#[derive(Debug, Clone)]
pub struct RelaySetup {
    /// The `mpegcoder` binary that relays (one with live inputs).
    pub mpegcoder: PathBuf,
    /// The `ffmpeg` binary.
    pub ffmpeg: PathBuf,
    /// GNU time.
    pub time: PathBuf,
    /// nginx with the RTMP module.
    pub nginx: PathBuf,
    /// The clip.
    pub clip: PathBuf,
    /// Its frame count.
    pub frames: usize,
    /// Its frame rate.
    pub fps: f64,
    /// Directory for nginx.
    pub work: PathBuf,
    /// Directory for logs.
    pub logs: PathBuf,
}

impl RelaySetup {
    /// The relay's command line.
    pub fn command(
        &self,
        relayer: Relayer,
        proto: Proto,
        source: &str,
        dest: &str,
        stats: &str,
    ) -> (PathBuf, Vec<String>) {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
        match relayer {
            Relayer::Ours => {
                let mut a = owned(&["push", source, dest, "--quiet", "--codec", "copy"]);
                a.extend(owned(proto.push_args()));
                a.extend(owned(&["--stats-json", stats]));
                (self.mpegcoder.clone(), a)
            }
            Relayer::Ffmpeg => {
                let mut a = owned(&[
                    "-hide_banner",
                    "-nostdin",
                    "-loglevel",
                    "error",
                    "-i",
                    source,
                    "-map",
                    "0:v:0",
                    "-c:v",
                    "copy",
                ]);
                a.extend(owned(proto.ffmpeg_args()));
                a.push(dest.to_string());
                (self.ffmpeg.clone(), a)
            }
        }
    }
}

/// One access unit as the direct player got it.
#[derive(Debug, Clone, Copy)]
struct Direct {
    at: Instant,
    hash: Option<u64>,
}

/// The direct player: connects to `url`, reports on `ready` once playing, and records every
/// access unit until the stream ends. Returns the arrivals and the error that ended it, if
/// any.
fn spawn_player(
    url: String,
    ready: mpsc::Sender<()>,
) -> std::io::Result<JoinHandle<(Vec<Direct>, Option<String>)>> {
    std::thread::Builder::new()
        .name("relay-direct-player".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => return (Vec::new(), Some(format!("tokio runtime: {e}"))),
            };
            runtime.block_on(async move {
                let options = PullOptions::default().with_idle_timeout(Duration::from_secs(8));
                let mut puller = match Puller::connect(&url, options).await {
                    Ok(p) => p,
                    Err(e) => return (Vec::new(), Some(format!("connect: {e}"))),
                };
                let _ = ready.send(());
                let mut out = Vec::new();
                let mut digest = AuDigest::new(true);
                let error = loop {
                    match puller.next().await {
                        Ok(Some(au)) => {
                            let at = Instant::now();
                            for nal in &au.nalus {
                                digest.nal(nal);
                            }
                            let (_, hash) = digest.finish();
                            out.push(Direct { at, hash });
                        }
                        Ok(None) => break None,
                        Err(e) => break Some(e.to_string()),
                    }
                };
                puller.close().await;
                (out, error)
            })
        })
}

/// The latencies of the destination's frames found among the direct player's, ms, in the
/// destination's order; and how many of the direct player's hashes were not unique (left
/// out).
fn match_frames(direct: &[Direct], dest: &[FrameArrival]) -> (Vec<f64>, usize) {
    let mut seen: HashMap<u64, Option<Instant>> = HashMap::new();
    for d in direct {
        if let Some(h) = d.hash {
            seen.entry(h)
                .and_modify(|at| *at = None)
                .or_insert(Some(d.at));
        }
    }
    let duplicates = seen.values().filter(|v| v.is_none()).count();
    let latencies = dest
        .iter()
        .filter_map(|f| {
            let at = (*seen.get(&f.hash?)?)?;
            Some(seconds_between(at, f.at) * 1e3)
        })
        .collect();
    (latencies, duplicates)
}

/// One relay run.
#[derive(Debug, Clone, Serialize)]
pub struct RelayRun {
    /// Where it played from.
    pub source: RelaySource,
    /// Who relayed.
    pub relayer: Relayer,
    /// The destination's protocol (the source is RTMP, nginx).
    pub proto: Proto,
    /// Repetition, from 0.
    pub repetition: usize,
    /// The relay's command line.
    pub command: Vec<String>,
    /// Frames in the clip.
    pub frames_expected: usize,
    /// Access units the direct player received (nginx), or frames the bench source sent.
    pub source_frames: usize,
    /// Frames the destination received.
    pub destination_frames: usize,
    /// Destination frames matched with a direct one.
    pub matched: usize,
    /// Hashes the direct player saw more than once (left out of the matching).
    pub duplicate_hashes: usize,
    /// Latency of every matched frame.
    pub latency: Option<Spread>,
    /// The same, over the second half of the matched frames (after any start-up backlog:
    /// ffmpeg buffers seconds of input while it probes the stream).
    pub steady_latency: Option<Spread>,
    /// The smallest latency, ms.
    pub min_latency_ms: Option<f64>,
    /// The first matched frame's latency, ms (includes the relay's connection to the
    /// destination when it connects only once it knows the stream).
    pub first_latency_ms: Option<f64>,
    /// nginx: the second direct player's arrival less the first's, over the matched frames
    /// (the noise of the method).
    pub control: Option<Spread>,
    /// The same, its largest negative value (ms): how early one player got a frame.
    pub control_min_ms: Option<f64>,
    /// The relay process.
    pub usage: Usage,
    /// Why the direct player ended, when not at the end of the stream.
    pub player_error: Option<String>,
    /// Why the sink's session ended abnormally, if it did.
    pub sink_error: Option<String>,
    /// 1-minute load average before and after.
    pub load_before: Option<f64>,
    /// See `load_before`.
    pub load_after: Option<f64>,
    /// Every matched frame's latency, ms, in the destination's order.
    pub latencies_ms: Vec<f64>,
}

/// Starts the ffmpeg that publishes the clip to nginx at `url`.
fn publish_to_nginx(setup: &RelaySetup, url: &str, log: &std::path::Path) -> Result<ChildGuard> {
    let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    Ok(ChildGuard(
        Command::new(&setup.ffmpeg)
            .args(crate::process::ffmpeg_copy_head(&setup.clip, "error"))
            .args(["-f", "flv", url])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()
            .with_context(|| format!("cannot start {}", setup.ffmpeg.display()))?,
    ))
}

/// Arrivals as sink frames, for matching one player against another.
fn as_frames(direct: &[Direct]) -> Vec<FrameArrival> {
    direct
        .iter()
        .map(|d| FrameArrival {
            at: d.at,
            timestamp: 0,
            key: false,
            hash: d.hash,
        })
        .collect()
}

/// Relays the clip once through `relayer` from `source` to a sink over `proto`.
pub fn run(
    setup: &RelaySetup,
    source: RelaySource,
    relayer: Relayer,
    proto: Proto,
    repetition: usize,
) -> Result<RelayRun> {
    let name = format!(
        "relay-{}-{}-{}-{repetition}",
        serde_plain(&source),
        serde_plain(&relayer),
        serde_plain(&proto)
    );
    let clip_s = setup.frames as f64 / setup.fps;
    let sink = Sink::start_with(
        proto.sink(),
        SinkConfig {
            hash: true,
            ..SinkConfig::new(Duration::from_secs(30))
        },
    )?;
    let dest = sink.url("relay");
    let stats = setup.logs.join(format!("{name}.json"));
    let load_before = load_average();
    // The source, and what the relay plays.
    let (mut nginx, bench_source, players, source_url) = match source {
        RelaySource::Nginx => {
            let nginx = Nginx::start_with(&setup.nginx, &setup.work.join(&name), 16, false)?;
            let url = nginx.url("src");
            let mut players = Vec::new();
            let mut ready = Vec::new();
            for _ in 0..2 {
                let (tx, rx) = mpsc::channel();
                players.push(spawn_player(url.clone(), tx)?);
                ready.push(rx);
            }
            for rx in ready {
                let _ = rx.recv_timeout(Duration::from_secs(3));
            }
            (Some(nginx), None, players, url)
        }
        RelaySource::Bench => {
            let clip = source::load(&setup.clip)?;
            let s = Source::start(clip, Duration::from_secs(20))?;
            let url = s.url("src");
            (None, Some(s), Vec::new(), url)
        }
    };
    let (program, args) = setup.command(
        relayer,
        proto,
        &source_url,
        &dest,
        &stats.display().to_string(),
    );
    let mut relay = Timed::spawn(
        &setup.time,
        &program,
        &args,
        &setup.logs.join(format!("{name}.log")),
    )?;
    if nginx.is_some() {
        // Every player subscribes before the source publishes (nginx lets them wait), so
        // none joins mid-GOP; one that is late still matches from its first key frame on.
        std::thread::sleep(Duration::from_millis(1000));
        let mut publisher = publish_to_nginx(
            setup,
            &source_url,
            &setup.logs.join(format!("{name}-source.log")),
        )?;
        wait_for_exit(&mut publisher.0, Duration::from_secs_f64(clip_s + 30.0));
    }
    let record = bench_source.map(Source::finish);
    // The source has ended: the relay should end by itself; Ctrl-C it if it does not (ffmpeg
    // playing from nginx waits for more).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !relay.finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !relay.finished() {
        eprintln!("{name}: the relay did not end with its source; interrupting it");
        relay.interrupt();
    }
    let usage = relay.wait(Duration::from_secs_f64(clip_s + 60.0))?;
    let mut direct: Vec<(Vec<Direct>, Option<String>)> = players
        .into_iter()
        .map(|p| {
            p.join()
                .unwrap_or_else(|_| (Vec::new(), Some("the player thread panicked".into())))
        })
        .collect();
    let sessions = sink.finish(1, Duration::from_secs(5));
    if let Some(n) = nginx.as_mut() {
        n.stop();
    }
    let load_after = load_average();
    let dest_frames: Vec<FrameArrival> = sessions
        .iter()
        .flat_map(|s| s.frames.iter().copied())
        .collect();
    let (reference, player_error, control) = match record {
        Some(r) => (
            r.sent
                .iter()
                .map(|&(at, hash)| Direct { at, hash })
                .collect::<Vec<Direct>>(),
            r.error,
            None,
        ),
        None => {
            let second = if direct.len() > 1 {
                Some(direct.remove(1))
            } else {
                None
            };
            let (first, error) = direct.into_iter().next().unwrap_or_default();
            let control = second.map(|(b, _)| match_frames(&first, &as_frames(&b)).0);
            (first, error, control)
        }
    };
    let (latencies, duplicate_hashes) = match_frames(&reference, &dest_frames);
    let skip = latencies.len() / 2;
    let mut command = vec![program.display().to_string()];
    command.extend(args);
    Ok(RelayRun {
        source,
        relayer,
        proto,
        repetition,
        command,
        frames_expected: setup.frames,
        source_frames: reference.len(),
        destination_frames: dest_frames.len(),
        matched: latencies.len(),
        duplicate_hashes,
        latency: Spread::of(&latencies),
        steady_latency: Spread::of(latencies.get(skip..).unwrap_or_default()),
        min_latency_ms: latencies.iter().copied().reduce(f64::min),
        first_latency_ms: latencies.first().copied(),
        control: control
            .as_ref()
            .and_then(|c| Spread::of(&c.iter().map(|v| v.abs()).collect::<Vec<f64>>())),
        control_min_ms: control
            .as_ref()
            .and_then(|c| c.iter().copied().reduce(f64::min)),
        usage,
        player_error,
        sink_error: sessions.iter().find_map(|s| s.error.clone()),
        load_before,
        load_after,
        latencies_ms: latencies.iter().map(|l| (l * 1e3).round() / 1e3).collect(),
    })
}

/// The relay table.
pub fn markdown(runs: &[RelayRun], binary: &str) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if runs.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "\n## Relay latency\n\nThe relay plays an RTMP source and publishes to a sink; frames \
         are matched by a hash of their slices. *nginx-rtmp*: ffmpeg `-re` publishes the clip \
         to nginx, a direct player in the bench (mpegcoder's `Puller`) stamps each access \
         unit arriving from nginx, latency = sink arrival − direct arrival (both paths \
         include nginx); the *control* is a second direct player against the first (|B − A|: \
         the method's own noise, nginx's per-player delayed-ACK stalls). *bench source*: the \
         bench serves the clip itself (RTMP, `TCP_NODELAY`), latency = sink arrival − the \
         return of the source's write. Relaying mpegcoder: {binary}.\n"
    );
    s.push_str(
        "| source | relay | destination | run | matched / received / source | latency p50 / \
         p99 / max, ms | second half: p50 / p99, ms | first frame, ms | control \
         p50 / p99 / max, ms | CPU, s | peak RSS, MiB | load before |\n",
    );
    s.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in runs {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} / {} / {} | {} | {} | {} | {} | {:.2} | {:.1} | {} |",
            r.source.name(),
            r.relayer.name(),
            r.proto.name(),
            r.repetition,
            r.matched,
            r.destination_frames,
            r.source_frames,
            r.latency.map_or("–".into(), |l| format!(
                "{:.2} / {:.2} / {:.1}",
                l.p50_ms, l.p99_ms, l.max_ms
            )),
            r.steady_latency.map_or("–".into(), |l| format!(
                "{:.2} / {:.2}",
                l.p50_ms, l.p99_ms
            )),
            r.first_latency_ms.map_or("–".into(), |l| format!("{l:.1}")),
            r.control.map_or("–".into(), |l| format!(
                "{:.2} / {:.1} / {:.1}",
                l.p50_ms, l.p99_ms, l.max_ms
            )),
            r.usage.cpu_s(),
            r.usage.max_rss_kib as f64 / 1024.0,
            r.load_before.map_or("–".into(), |l| format!("{l:.2}")),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_matched_by_hash_and_duplicates_left_out() {
        let t0 = Instant::now();
        let at = |us: u64| t0 + Duration::from_micros(us);
        let direct = [
            Direct {
                at: at(0),
                hash: Some(1),
            },
            Direct {
                at: at(33_000),
                hash: Some(2),
            },
            Direct {
                at: at(66_000),
                hash: Some(3),
            },
            Direct {
                at: at(99_000),
                hash: Some(3),
            },
        ];
        let frame = |us: u64, hash: Option<u64>| FrameArrival {
            at: at(us),
            timestamp: 0,
            key: false,
            hash,
        };
        let dest = [
            frame(1_500, Some(1)),
            frame(34_000, Some(2)),
            frame(70_000, Some(3)),
            frame(80_000, Some(9)),
            frame(90_000, None),
        ];
        let (lat, dups) = match_frames(&direct, &dest);
        assert_eq!(dups, 1);
        assert_eq!(lat.len(), 2);
        assert!(
            (lat[0] - 1.5).abs() < 1e-9 && (lat[1] - 1.0).abs() < 1e-9,
            "{lat:?}"
        );
    }

    #[test]
    fn relay_commands() {
        let s = RelaySetup {
            mpegcoder: "/bin/mpegcoder".into(),
            ffmpeg: "/bin/ffmpeg".into(),
            time: "/usr/bin/time".into(),
            nginx: "nginx".into(),
            clip: "/c.mp4".into(),
            frames: 600,
            fps: 30.0,
            work: "/tmp".into(),
            logs: "/tmp".into(),
        };
        let (_, ours) = s.command(
            Relayer::Ours,
            Proto::RtspTcp,
            "rtmp://h/live/src",
            "rtsp://d/x",
            "/s.json",
        );
        assert_eq!(
            ours.join(" "),
            "push rtmp://h/live/src rtsp://d/x --quiet --codec copy --transport tcp --stats-json \
             /s.json"
        );
        let (_, theirs) = s.command(
            Relayer::Ffmpeg,
            Proto::Rtmp,
            "rtmp://h/live/src",
            "rtmp://d/a/b",
            "",
        );
        assert!(theirs
            .join(" ")
            .ends_with("-i rtmp://h/live/src -map 0:v:0 -c:v copy -f flv rtmp://d/a/b"));
    }
}
