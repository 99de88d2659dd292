//! `mpegcoder pull URL`: receive a live H.264 stream over RTSP or RTMP; optionally hash every
//! decoded frame (`--framemd5`, the same lines as `probe --framemd5`), keep what arrived as raw
//! Annex B (`--out`) and its AAC audio as ADTS (`--audio-out`), and write a summary
//! (`--stats-json`).
//!
//! `--audio-out` writes AAC only: ADTS (ISO/IEC 14496-3 §1.A.2) has no way to describe another
//! codec, and a file named `.aac` that holds MP3 or G.711 would mislead. A stream whose audio
//! turns out to be something else ends the command with one error line naming the codec.
//!
//! How a pull ends decides the exit code. Exit 0 only for an explicit end: the server ended
//! the stream (RTSP: an RTCP BYE, RFC 3550 §6.6; RTMP: an unpublish or end-of-stream status),
//! or `--frames` / `--duration` was reached. A lost connection (closed without such an end,
//! or no video for `--timeout`) is an error, exit 1, with one line naming the URL and what
//! happened; Ctrl-C (SIGINT) is exit 130 and SIGTERM 143, with the summary. Whatever the end,
//! the outputs hold the same frames: `--out` is flushed with every access unit received, and
//! `--framemd5` hashes the decoding of exactly those (the decoder's delayed frames included).

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mpegcoder::codec::PixelLayout;
use mpegcoder::transport::pull::{PullError, PullStep};
use mpegcoder::{Client, ClientError, ClientOptions, ClientStatus, PullOptions, Transport};

use crate::signals::Signals;
use crate::tls::TlsArgs;

/// How often the command looks at the client when no frame arrives.
const POLL: Duration = Duration::from_millis(50);
/// Capacity of the frame channel between the pull worker and the hash writer.
const FRAME_QUEUE: usize = 64;

/// Arguments of `mpegcoder pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// What to pull: rtsp[s]://[user:pass@]host[:port]/path or rtmp[s]://host[:port]/app/key
    /// (rtsps and rtmps: inside TLS, ports 322 and 443).
    pub url: String,
    /// RTSP lower transport: tcp, udp, or auto (pulls over tcp). Ignored for RTMP.
    #[arg(long, default_value = "tcp")]
    pub transport: Transport,
    /// Stop after N frames from the first key frame (access units, in decoding order): --out
    /// then holds N frames and --framemd5 N lines (fewer only if some fail to decode).
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
    /// Stop after S seconds of receiving (wall clock, from when playing started).
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
    /// Decode every frame and write one line per frame, `<index> <md5hex>` (index from 0 at
    /// the first key frame; MD5 over the packed YUV420P planes) to PATH; `-` = stdout.
    #[arg(long, value_name = "PATH")]
    pub framemd5: Option<PathBuf>,
    /// Write what arrived as raw H.264 Annex B: parameter sets, then every access unit.
    #[arg(long, value_name = "FILE.h264")]
    pub out: Option<PathBuf>,
    /// Write the stream's AAC audio as ADTS (a 7-byte header before every frame: a playable
    /// .aac file), from the first video key frame on. Audio in another codec (MP3, G.711) is an
    /// error; a stream without audio leaves the file empty.
    #[arg(long, value_name = "FILE.aac")]
    pub audio_out: Option<PathBuf>,
    /// Write a JSON summary (frames, key frames, bytes, duration, size, codec, fps; audio
    /// frames, bytes, codec, rate, channels) to PATH.
    #[arg(long, value_name = "PATH")]
    pub stats_json: Option<PathBuf>,
    /// Bound every network step by S seconds: connecting, each setup step (RTSP DESCRIBE,
    /// SETUP, PLAY; RTMP handshake, connect, createStream, play), the first frame, and every
    /// gap between frames (audio alone does not count).
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub timeout: f64,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
}

fn seconds(what: &str, s: f64) -> Result<Duration> {
    if !(s.is_finite() && s > 0.0) {
        bail!("{what} must be a positive number of seconds, got {s}");
    }
    Duration::try_from_secs_f64(s).with_context(|| format!("{what} {s} is out of range"))
}

/// Where the frame hashes go.
enum HashSink {
    None,
    Stdout(io::StdoutLock<'static>),
    File(BufWriter<File>, PathBuf),
}

impl HashSink {
    fn write(&mut self, index: u64, md5: &str) -> Result<()> {
        match self {
            HashSink::None => Ok(()),
            HashSink::Stdout(out) => {
                writeln!(out, "{index} {md5}").context("writing frame hashes to stdout")
            }
            HashSink::File(out, path) => writeln!(out, "{index} {md5}")
                .with_context(|| format!("writing frame hashes to {}", path.display())),
        }
    }

    fn flush(&mut self) -> Result<()> {
        match self {
            HashSink::None => Ok(()),
            HashSink::Stdout(out) => out.flush().context("writing frame hashes to stdout"),
            HashSink::File(out, path) => out
                .flush()
                .with_context(|| format!("writing frame hashes to {}", path.display())),
        }
    }
}

/// Why the pull ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The server ended the stream (RTCP BYE, RTMP unpublish).
    Stream,
    /// `--frames` was reached.
    Frames,
    /// `--duration` was reached.
    Duration,
    /// SIGINT (Ctrl-C) or SIGTERM.
    Interrupted,
    /// The pipeline failed (a lost connection among others).
    Failed,
}

impl End {
    fn name(self) -> &'static str {
        match self {
            End::Stream => "stream_ended",
            End::Frames => "frames",
            End::Duration => "duration",
            End::Interrupted => "interrupted",
            End::Failed => "error",
        }
    }
}

/// The exit code of an interrupted pull when the signal's own is not known: 128 + SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

/// Runs the subcommand. `logging`: log lines beyond warnings may appear on stderr (no
/// progress bar then).
///
/// Returns `Ok` for an explicit end and the error of a failed pull (exit 1). A pull
/// interrupted by SIGINT (Ctrl-C) or SIGTERM writes its outputs and summary and then exits the
/// process with 128 + the signal's number (130, 143), like `push`.
pub fn run(args: &PullArgs, logging: bool) -> Result<()> {
    let limit = seconds("--timeout", args.timeout)?;
    let duration = args
        .duration
        .map(|d| seconds("--duration", d))
        .transpose()?;
    if args.frames == Some(0) {
        bail!("--frames must be at least 1");
    }
    // Before any thread starts (the progress bar's, the runtime's, the decoder's): they
    // inherit the blocked signal mask. Connecting checks the stop flag, so the first signal
    // only ever raises it, from the start.
    let signals = Signals::install()?;
    signals.running();
    let hashing = args.framemd5.is_some();
    let hashes_to_stdout = args.framemd5.as_deref() == Some(Path::new("-"));
    let mut options = ClientOptions::default()
        .with_pull(
            // --timeout bounds every step, DESCRIBE (which opens the connection) included.
            PullOptions::default()
                .with_transport(args.transport)
                .with_connect_timeout(limit)
                .with_setup_timeout(limit)
                .with_idle_timeout(limit)
                .with_tls(args.tls.options(&[&args.url], args.transport)?),
        )
        .with_output(PixelLayout::Yuv420p)
        .with_decode(hashing)
        .with_cache_size(1)
        // The hashes are the decoding of what --out holds, however the pull ends.
        .with_flush_at_end(true);
    if let Some(n) = args.frames {
        // Exact: the pipeline stops reading after the N-th access unit.
        options = options.with_max_access_units(n);
    }
    let mut client = Client::new(&args.url, options)?;
    let receiver = if hashing {
        Some(client.subscribe(FRAME_QUEUE)?)
    } else {
        None
    };
    let mut sink = match &args.framemd5 {
        None => HashSink::None,
        Some(_) if hashes_to_stdout => HashSink::Stdout(io::stdout().lock()),
        Some(path) => HashSink::File(
            BufWriter::new(
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
            ),
            path.clone(),
        ),
    };
    if let Some(path) = &args.out {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        client.record_annexb(BufWriter::new(file))?;
    }
    if let Some(path) = &args.audio_out {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        client.record_adts(BufWriter::new(file))?;
    }
    let progress = progress_bar(args.quiet || hashes_to_stdout || logging);

    let started = Instant::now();
    client.start()?;
    let mut playing_since: Option<Instant> = None;
    let mut hashed = 0u64;
    let mut stop: Option<End> = None;
    loop {
        if let Some(rx) = &receiver {
            match rx.recv_timeout(POLL) {
                Ok(frame) => {
                    if args.frames.is_none_or(|n| hashed < n) {
                        sink.write(hashed, &frame.md5_hex()?)?;
                        hashed += 1;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The worker finished and every frame was taken.
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else if client.wait_finished(POLL).is_finished() {
            break;
        }
        let status = client.status();
        if playing_since.is_none() && matches!(status, ClientStatus::Running) {
            playing_since = Some(Instant::now());
        }
        let counters = client.counters();
        if let Some(bar) = &progress {
            let done = if hashing {
                hashed
            } else {
                counters.access_units
            };
            bar.set_message(format!(
                "{} frames, {} key, {} audio, {:.1} MB, {:.1} s",
                done,
                counters.key_frames,
                counters.audio_frames,
                (counters.bytes + counters.audio_bytes) as f64 / 1e6,
                counters.stream_duration_s
            ));
        }
        if stop.is_none() {
            if signals.stop_flag().load(Ordering::SeqCst) {
                stop = Some(End::Interrupted);
            } else if duration.is_some_and(|d| playing_since.is_some_and(|t| t.elapsed() >= d)) {
                stop = Some(End::Duration);
            }
            if stop.is_some() {
                // The worker decodes what it received, flushes the decoder, then the channel
                // ends.
                client.request_stop();
            }
        }
    }
    let status = client.terminate();
    signals.finishing();
    sink.flush()?;
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    let wall = started.elapsed();
    let end = match &status {
        ClientStatus::Failed(_) => End::Failed,
        ClientStatus::Ended => stop.unwrap_or(End::Stream),
        // Stopped without being asked: the pipeline reached the --frames limit.
        _ => stop.unwrap_or(End::Frames),
    };
    if let Some(path) = &args.stats_json {
        write_stats(path, &client, &status, end, hashing.then_some(hashed), wall)?;
    }
    let c = client.counters();
    if let ClientStatus::Failed(e) = status {
        return Err(failure(e, c.access_units));
    }
    if let Some(path) = &args.audio_out {
        if c.audio_frames == 0 && !args.quiet {
            eprintln!("warning: no audio arrived; {} is empty", path.display());
        }
    }
    if !args.quiet && !hashes_to_stdout {
        let size = client
            .params()
            .map(|p| format!(", {}x{} {}", p.width, p.height, p.codec))
            .unwrap_or_default();
        let audio = match client.audio_track() {
            Some(t) => format!(
                " and {} audio frames ({} bytes, {} {} Hz {} ch)",
                c.audio_frames, c.audio_bytes, t.codec, t.sample_rate, t.channels
            ),
            None => String::new(),
        };
        let losses = if c.depacketize_errors > 0 || c.dropped_after_loss > 0 {
            format!(
                "; {} RTP packets rejected, {} frames dropped until the next key frame",
                c.depacketize_errors, c.dropped_after_loss
            )
        } else {
            String::new()
        };
        println!(
            "pulled {} frames ({} key frames, {} bytes, {:.3} s of stream{size}){audio} from {} in {:.1} s{losses}",
            c.access_units,
            c.key_frames,
            c.bytes,
            c.stream_duration_s,
            client.url(),
            wall.as_secs_f64()
        );
    }
    if end == End::Interrupted {
        // The outputs are complete and the summary is out; main's error path knows only
        // exit 1, so the conventional code is set here.
        drop(sink);
        let _ = io::stdout().flush();
        drop(client);
        let code = signals.exit_code().unwrap_or(EXIT_INTERRUPTED);
        std::process::exit(i32::from(code));
    }
    Ok(())
}

/// The error of a failed pull. A connection lost while playing says so, with the URL and how
/// many frames had arrived (what `--out` and `--framemd5` hold).
fn failure(e: ClientError, frames: u64) -> anyhow::Error {
    let ClientError::Pull(pull) = &e else {
        return e.into();
    };
    match pull {
        PullError::ConnectionClosed {
            url,
            step: PullStep::Streaming,
            ..
        } => anyhow::anyhow!(
            "{url}: the connection was closed by the server after {frames} frames, without \
             ending the stream"
        ),
        PullError::Io {
            url,
            step: PullStep::Streaming,
            source,
            ..
        } => anyhow::Error::new(Arc::clone(source)).context(format!(
            "{url}: the connection was lost after {frames} frames"
        )),
        PullError::Stalled { url, after, .. } => anyhow::anyhow!(
            "{url}: no video for {} s after {frames} frames (the connection is lost or the \
             stream stalled)",
            after.as_secs_f64()
        ),
        _ => e.into(),
    }
}

fn progress_bar(quiet: bool) -> Option<ProgressBar> {
    if quiet || !io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} pulling: {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

fn write_stats(
    path: &Path,
    client: &Client,
    status: &ClientStatus,
    end: End,
    decoded: Option<u64>,
    wall: Duration,
) -> Result<()> {
    let c = client.counters();
    let p = client.params();
    let audio = client.audio_track();
    let measured_fps = (c.access_units > 1 && c.stream_duration_s > 0.0)
        .then(|| (c.access_units - 1) as f64 / c.stream_duration_s);
    let (state, error) = match status {
        ClientStatus::Ended => ("ended", None),
        ClientStatus::Stopped => ("stopped", None),
        ClientStatus::Failed(e) => ("failed", Some(mpegcoder::types::error_chain(e))),
        _ => ("running", None),
    };
    let value = serde_json::json!({
        "url": client.url(),
        "protocol": p.as_ref().map(|p| p.protocol),
        "frames": c.access_units,
        "key_frames": c.key_frames,
        "bytes": c.bytes,
        "duration_s": c.stream_duration_s,
        "width": p.as_ref().map(|p| p.width),
        "height": p.as_ref().map(|p| p.height),
        "codec": p.as_ref().map(|p| p.codec),
        "codec_string": p.as_ref().map(|p| p.codec_string.clone()),
        "fps": p.as_ref().and_then(|p| (p.fps > 0.0).then_some(p.fps)).or(measured_fps),
        "decoded_frames": decoded,
        "skipped_before_key": c.skipped_before_key,
        "lost_packets": c.lost_packets,
        "depacketize_errors": c.depacketize_errors,
        "dropped_after_loss": c.dropped_after_loss,
        "audio_frames": c.audio_frames,
        "audio_bytes": c.audio_bytes,
        "audio_duration_s": c.audio_duration_s,
        "audio_codec": audio.as_ref().map(|t| t.codec.name()),
        "audio_sample_rate": audio.as_ref().map(|t| t.sample_rate),
        "audio_channels": audio.as_ref().map(|t| t.channels),
        "audio_skipped_before_key": c.audio_skipped_before_key,
        "audio_unsupported": c.audio_unsupported,
        "audio_bad": c.audio_bad,
        "wall_time_s": wall.as_secs_f64(),
        "status": state,
        "end": end.name(),
        "error": error,
    });
    let text = serde_json::to_string_pretty(&value).context("serializing the summary")?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_summary_names_an_error_and_its_cause_once() {
        let e = mpegcoder::ClientError::Record {
            url: "rtmp://host/app/key".into(),
            source: Arc::new(io::Error::other("No space left on device")),
        };
        assert_eq!(
            mpegcoder::types::error_chain(&e),
            "cannot write the received video of rtmp://host/app/key: No space left on device"
        );
    }
}
