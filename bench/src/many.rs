//! Many simultaneous copy pushes from one process with [`mpegcoder::Server`], in one of two
//! designs:
//! - [`Design::Threads`]: one thread per stream, each calling
//!   [`Server::serve_packet_block`] (the server's own pacer sleeps until each packet is due).
//! - [`Design::Scheduler`]: one thread paces every stream. It keeps the next deadline of each
//!   stream in a heap, sleeps until the earliest, and hands that packet to its server with the
//!   non-blocking [`Server::serve_packet`].
//!
//! Either way each [`Server`] keeps its own network runtime thread. The clip is demuxed once
//! into memory and shared. Stream `i` starts `i / N` of a frame interval after the common
//! start, like independent streams whose frames do not all fall due at the same instant;
//! [`ManyOptions::aligned`] starts them all at once instead.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use mpegcoder::codec::{Demuxer, EncodedPacket, OpenOptions, Rational, VideoParams};
use mpegcoder::pacer::clock::{sleep_until_with, SleepTail};
use mpegcoder::{PacketStream, Server, ServerConfig};
use serde::{Deserialize, Serialize};

/// How the streams are driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Design {
    /// One thread per stream, blocking sends.
    Threads,
    /// One pacing thread for all streams, non-blocking sends.
    Scheduler,
}

impl Design {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Design::Threads => "threads",
            Design::Scheduler => "scheduler",
        }
    }
}

/// What to push.
#[derive(Debug, Clone)]
pub struct ManyOptions {
    /// The clip.
    pub clip: PathBuf,
    /// URL prefix: stream `i` goes to `{prefix}{i}`.
    pub url_prefix: String,
    /// Number of streams.
    pub streams: usize,
    /// The design.
    pub design: Design,
    /// Start every stream at the same instant instead of spreading the starts over one frame
    /// interval.
    pub aligned: bool,
}

/// What one stream did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamOutcome {
    /// Frames handed to the network.
    pub frames_sent: u64,
    /// The first error, if any.
    pub error: Option<String>,
}

/// What the whole push did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManySummary {
    /// The design.
    pub design: Design,
    /// Streams asked for.
    pub streams: usize,
    /// Packets per stream.
    pub packets: usize,
    /// Milliseconds to open every server.
    pub open_ms: f64,
    /// Per stream.
    pub outcomes: Vec<StreamOutcome>,
}

/// The clip in memory.
struct Clip {
    params: VideoParams,
    extradata: Bytes,
    time_base: Rational,
    packets: Vec<EncodedPacket>,
    /// Each packet's due time after its stream's start (DTS − first DTS).
    offsets: Vec<Duration>,
}

fn load(path: &std::path::Path) -> Result<Clip> {
    let mut demuxer = Demuxer::open(path, &OpenOptions::default())
        .with_context(|| format!("cannot open {}", path.display()))?;
    let params = demuxer.params().clone();
    let extradata = demuxer.extradata().clone();
    let time_base = demuxer.time_base();
    let mut packets = Vec::new();
    while let Some(p) = demuxer.next_packet()? {
        packets.push(p);
    }
    let Some(first) = packets.first().map(|p| p.dts) else {
        bail!("{} has no video packets", path.display());
    };
    let offsets = packets
        .iter()
        .map(|p| {
            let ticks = i128::from(p.dts.saturating_sub(first).max(0));
            let ns = ticks * i128::from(time_base.num) * 1_000_000_000
                / i128::from(time_base.den.max(1));
            Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
        })
        .collect();
    Ok(Clip {
        params,
        extradata,
        time_base,
        packets,
        offsets,
    })
}

fn open(clip: &Clip, url: String) -> Result<Server, String> {
    let stream = PacketStream::new(clip.extradata.clone(), clip.time_base)
        .with_frame_rate(Some(clip.params.best_frame_rate()))
        .with_bit_rate(clip.params.bit_rate);
    Server::open(ServerConfig::packets(stream, url)).map_err(|e| e.to_string())
}

/// The start of stream `i` of `n` after the common start.
fn stagger(i: usize, n: usize, frame: Duration, aligned: bool) -> Duration {
    if aligned || n == 0 {
        return Duration::ZERO;
    }
    frame.mul_f64(i as f64 / n as f64)
}

/// Pushes the clip to every stream at once; see the module docs.
pub fn push_many(options: &ManyOptions) -> Result<ManySummary> {
    let clip = load(&options.clip)?;
    let n = options.streams;
    let fps = clip.params.best_frame_rate();
    let frame = Duration::from_secs_f64(f64::from(fps.den) / f64::from(fps.num.max(1)));
    let urls: Vec<String> = (0..n)
        .map(|i| format!("{}{i}", options.url_prefix))
        .collect();
    let began = Instant::now();
    let opened = OnceLock::new();
    let outcomes = match options.design {
        Design::Threads => threads(&clip, &urls, frame, options.aligned, |at| {
            let _ = opened.set(at.duration_since(began));
        })?,
        Design::Scheduler => scheduler(&clip, &urls, frame, options.aligned, |at| {
            let _ = opened.set(at.duration_since(began));
        })?,
    };
    Ok(ManySummary {
        design: options.design,
        streams: n,
        packets: clip.packets.len(),
        open_ms: opened.get().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
        outcomes,
    })
}

/// A short pause between the last server opening and the common start.
const START_DELAY: Duration = Duration::from_millis(50);

fn threads(
    clip: &Clip,
    urls: &[String],
    frame: Duration,
    aligned: bool,
    all_open: impl FnOnce(Instant),
) -> Result<Vec<StreamOutcome>> {
    let n = urls.len();
    let opened = Barrier::new(n + 1);
    let go = Barrier::new(n + 1);
    let start: OnceLock<Instant> = OnceLock::new();
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(n);
        for (i, url) in urls.iter().enumerate() {
            let (opened, go, start) = (&opened, &go, &start);
            let h = std::thread::Builder::new()
                .name(format!("push-{i}"))
                .stack_size(256 << 10)
                .spawn_scoped(scope, move || {
                    let server = open(clip, url.clone());
                    opened.wait();
                    go.wait();
                    let mut server = match server {
                        Ok(s) => s,
                        Err(e) => {
                            return StreamOutcome {
                                frames_sent: 0,
                                error: Some(e),
                            }
                        }
                    };
                    let t0 = start.get().copied().unwrap_or_else(Instant::now);
                    sleep_until_with(t0 + stagger(i, n, frame, aligned), SleepTail::NONE);
                    let mut error = None;
                    for p in &clip.packets {
                        if let Err(e) = server.serve_packet_block(p) {
                            error = Some(e.to_string());
                            break;
                        }
                    }
                    match server.close() {
                        Ok(stats) => StreamOutcome {
                            frames_sent: stats.frames_sent,
                            error,
                        },
                        Err(e) => StreamOutcome {
                            frames_sent: 0,
                            error: error.or(Some(e.to_string())),
                        },
                    }
                });
            match h {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // The barriers count on every thread: without this one they would wait
                    // forever. Give up on the whole run.
                    eprintln!("cannot start thread {i}: {e}");
                    std::process::exit(3);
                }
            }
        }
        opened.wait();
        let now = Instant::now();
        all_open(now);
        let _ = start.set(now + START_DELAY);
        go.wait();
        Ok(handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| StreamOutcome {
                    frames_sent: 0,
                    error: Some("the thread panicked".into()),
                })
            })
            .collect())
    })
}

fn scheduler(
    clip: &Clip,
    urls: &[String],
    frame: Duration,
    aligned: bool,
    all_open: impl FnOnce(Instant),
) -> Result<Vec<StreamOutcome>> {
    let n = urls.len();
    // Open in parallel: each open is a connection and a handshake.
    let mut servers: Vec<Option<Server>> = Vec::with_capacity(n);
    let mut outcomes = vec![StreamOutcome::default(); n];
    std::thread::scope(|scope| {
        let handles: Vec<_> = urls
            .iter()
            .map(|url| scope.spawn(move || open(clip, url.clone())))
            .collect();
        for (h, outcome) in handles.into_iter().zip(outcomes.iter_mut()) {
            match h.join() {
                Ok(Ok(s)) => servers.push(Some(s)),
                Ok(Err(e)) => {
                    outcome.error = Some(e);
                    servers.push(None);
                }
                Err(_) => {
                    outcome.error = Some("the opening thread panicked".into());
                    servers.push(None);
                }
            }
        }
    });
    let now = Instant::now();
    all_open(now);
    let t0 = now + START_DELAY;
    let starts: Vec<Instant> = (0..n).map(|i| t0 + stagger(i, n, frame, aligned)).collect();
    let mut heap: BinaryHeap<Reverse<(Instant, usize, usize)>> = BinaryHeap::with_capacity(n);
    for (i, s) in servers.iter().enumerate() {
        if s.is_some() {
            heap.push(Reverse((starts[i], i, 0)));
        }
    }
    while let Some(Reverse((due, i, k))) = heap.pop() {
        sleep_until_with(due, SleepTail::NONE);
        let (Some(Some(server)), Some(packet)) = (servers.get_mut(i), clip.packets.get(k)) else {
            continue;
        };
        if let Err(e) = server.serve_packet(packet) {
            outcomes[i].error = Some(e.to_string());
            continue;
        }
        if let Some(next) = clip.offsets.get(k + 1) {
            heap.push(Reverse((starts[i] + *next, i, k + 1)));
        }
    }
    // Close in parallel: each close flushes and waits for the server to finish.
    std::thread::scope(|scope| {
        let handles: Vec<_> = servers
            .into_iter()
            .map(|s| scope.spawn(move || s.map(Server::close)))
            .collect();
        for (h, outcome) in handles.into_iter().zip(outcomes.iter_mut()) {
            match h.join() {
                Ok(Some(Ok(stats))) => outcome.frames_sent = stats.frames_sent,
                Ok(Some(Err(e))) => {
                    outcome.error.get_or_insert(e.to_string());
                }
                Ok(None) => {}
                Err(_) => {
                    outcome
                        .error
                        .get_or_insert("the closing thread panicked".into());
                }
            }
        }
    });
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_spread_over_one_frame() {
        let frame = Duration::from_millis(30);
        assert_eq!(stagger(0, 10, frame, false), Duration::ZERO);
        assert_eq!(stagger(5, 10, frame, false), Duration::from_millis(15));
        assert_eq!(stagger(5, 10, frame, true), Duration::ZERO);
        assert!(stagger(9, 10, frame, false) < frame);
    }
}
