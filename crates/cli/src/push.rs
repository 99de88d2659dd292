//! `mpegcoder push INPUT URL`: publish a video to an RTSP or RTMP server, paced at real time.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::signals::Signals;
use crate::tls::TlsArgs;
use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mpegcoder::codec::{Rational, X264Option};
use mpegcoder::push::AudioMode;
use mpegcoder::server::destination_line as error_line;
use mpegcoder::{
    push, DestinationState, DestinationStats, PushError, PushOptions, PushSummary, ReconnectPolicy,
    ServerStats, Transport, VideoCodec,
};

/// Arguments of `mpegcoder push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Input file (or any URL FFmpeg reads).
    pub input: String,
    /// Where to publish: rtsp[s]://[user:pass@]host[:port]/path or
    /// rtmp[s]://host[:port]/app/key (rtsps and rtmps: inside TLS, ports 322 and 443).
    /// Several URLs: one decode, one encode and one timeline feed them all, each with its own
    /// connection, queue and reconnect state.
    #[arg(required = true, num_args = 1..)]
    pub urls: Vec<String>,
    #[command(flatten)]
    pub flags: PushFlags,
}

/// The options of `mpegcoder push` after its INPUT and URLs, shared with `push-many`.
#[derive(Debug, Args)]
pub struct PushFlags {
    /// Reconnect a lost destination (and a live source) forever, with capped exponential
    /// backoff (0.5 s up to 10 s, with jitter). 401/403, 404, bad URLs and TLS certificate
    /// errors are never retried.
    #[arg(long)]
    pub reconnect: bool,
    /// Like --reconnect, with at most N attempts per outage.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub reconnect_max: Option<u32>,
    /// libx264 (encode) or copy (pass the H.264 packets through untouched).
    #[arg(long, default_value = "libx264", value_parser = parse_codec)]
    pub codec: VideoCodec,
    /// RTSP lower transport: tcp, udp, or auto (tcp, then udp when the server refuses
    /// interleaved RTP: 461/501 to SETUP, or error replies to it at the start). Ignored for
    /// RTMP.
    #[arg(long, default_value = "tcp")]
    pub transport: Transport,
    /// Bit rate in bits/s; k and M suffixes allowed (2M = 2000000). Default: the input's.
    #[arg(long, value_parser = parse_bitrate)]
    pub bitrate: Option<u64>,
    /// Key frame interval in frames. Default: the input's.
    #[arg(long)]
    pub gop: Option<u32>,
    /// Maximum consecutive B-frames. Default: the input's.
    #[arg(long)]
    pub bframes: Option<u32>,
    /// libx264 preset (ultrafast superfast veryfast faster fast medium slow slower veryslow
    /// placebo). Default: veryfast.
    #[arg(long, value_parser = parse_preset)]
    pub preset: Option<String>,
    /// libx264 tune (film animation grain stillimage psnr ssim fastdecode zerolatency; one
    /// of the first six may be joined with the last two, e.g. film,zerolatency).
    #[arg(long, value_parser = parse_tune)]
    pub tune: Option<String>,
    /// H.264 profile (baseline, main, high: the encoder makes 8-bit 4:2:0 video).
    #[arg(long, value_parser = parse_profile)]
    pub profile: Option<String>,
    /// Output size WxH (scaled).
    #[arg(long, value_parser = parse_size)]
    pub size: Option<(u32, u32)>,
    /// Output frame rate N or N/D (frames dropped or repeated to reach it).
    #[arg(long, value_parser = parse_fps)]
    pub fps: Option<Rational>,
    /// Play the input N times; -1 = forever.
    #[arg(long = "loop", default_value_t = 1, allow_negative_numbers = true)]
    pub loops: i64,
    /// Playback speed: 1.0 = real time, 2.0 = twice as fast.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Send as fast as possible instead of pacing by timestamps.
    #[arg(long)]
    pub no_pace: bool,
    /// How far ahead of its deadline a frame may leave, in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub max_lead_ms: u64,
    /// Audio: auto passes it through when the destination carries its codec (AAC over RTSP
    /// and RTMP; MP3 over both, G.711 over both, Opus over RTSP), else warns once and pushes
    /// video only; copy fails before connecting when it cannot pass through; none drops it.
    /// Audio is never re-encoded.
    #[arg(long, default_value = "auto", value_parser = parse_audio_mode)]
    pub audio: AudioMode,
    /// Drop the audio (same as --audio none).
    #[arg(long, conflicts_with = "audio")]
    pub no_audio: bool,
    /// Which audio stream to pass through, counted from 0 among the input's audio streams.
    /// Default: the first.
    #[arg(long, value_name = "N")]
    pub audio_stream: Option<usize>,
    /// Write the final summary as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub stats_json: Option<PathBuf>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
}

fn parse_codec(s: &str) -> Result<VideoCodec, String> {
    s.parse()
}

fn parse_audio_mode(s: &str) -> Result<AudioMode, String> {
    s.parse()
}

// libx264's names are checked while parsing, like any other bad value (a usage error naming
// the option, the value and what is accepted), so nothing opens or connects: libx264 itself
// would print only its own log line and fail to open with "Invalid argument".

fn parse_preset(s: &str) -> Result<String, String> {
    X264Option::Preset.check(s).map(|()| s.to_string())
}

fn parse_tune(s: &str) -> Result<String, String> {
    X264Option::Tune.check(s).map(|()| s.to_string())
}

fn parse_profile(s: &str) -> Result<String, String> {
    X264Option::Profile.check(s).map(|()| s.to_string())
}

/// `2M`, `1500k`, `800000` → bits/s.
pub fn parse_bitrate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1_000.0),
        Some((i, 'm' | 'M')) => (&t[..i], 1_000_000.0),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("invalid bit rate {s:?} (examples: 2M, 1500k, 800000)"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("bit rate must be positive, got {s:?}"));
    }
    Ok((v * mul).round() as u64)
}

/// `1280x720` → (1280, 720).
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("invalid size {s:?} (expected WxH, e.g. 1280x720)"))?;
    let w: u32 = w.parse().map_err(|_| format!("invalid width in {s:?}"))?;
    let h: u32 = h.parse().map_err(|_| format!("invalid height in {s:?}"))?;
    if w == 0 || h == 0 || w % 2 == 1 || h % 2 == 1 {
        return Err(format!("size {s:?} must be even and non-zero (YUV 4:2:0)"));
    }
    Ok((w, h))
}

/// `30`, `30000/1001` → a frame rate.
pub fn parse_fps(s: &str) -> Result<Rational, String> {
    let (n, d) = s.split_once('/').unwrap_or((s, "1"));
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("invalid frame rate {s:?}"))?;
    let d: u32 = d
        .trim()
        .parse()
        .map_err(|_| format!("invalid frame rate {s:?}"))?;
    if n == 0 || d == 0 {
        return Err(format!("frame rate {s:?} must be positive"));
    }
    Ok(Rational::new(n, d))
}

/// Checks before connecting that the `--stats-json` file can be written (it is written only
/// after the push): its directory exists and the file can be created or opened for writing.
/// A file made by the check is removed again, so a failed push leaves nothing behind.
pub fn check_stats_path(path: &Path) -> Result<()> {
    let shown = path.display();
    if path.is_dir() {
        bail!("cannot write --stats-json {shown}: it is a directory");
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        let what = if dir.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        bail!(
            "cannot write --stats-json {shown}: the directory {} {what}",
            dir.display()
        );
    }
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("cannot write --stats-json {shown}"))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

impl PushFlags {
    /// The push options for `input` to `urls`, checked (TLS files and flags, libx264's
    /// names, the rate) before anything opens or connects.
    pub fn options(&self, input: &str, urls: &[String]) -> Result<PushOptions> {
        let mut all: Vec<&str> = urls.iter().map(String::as_str).collect();
        all.push(input);
        let tls = self.tls.options(&all, self.transport)?;
        self.options_with_tls(input, urls, tls)
    }

    /// Like [`PushFlags::options`] with the TLS options already made (checked once for many
    /// streams).
    pub fn options_with_tls(
        &self,
        input: &str,
        urls: &[String],
        tls: mpegcoder::TlsOptions,
    ) -> Result<PushOptions> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            bail!("--rate must be a positive number, got {}", self.rate);
        }
        let reconnect = match (self.reconnect_max, self.reconnect) {
            (Some(n), _) => Some(ReconnectPolicy::attempts(n)),
            (None, true) => Some(ReconnectPolicy::forever()),
            (None, false) => None,
        };
        let options = PushOptions::new(input.to_string(), String::new())
            .with_addresses(urls.iter().cloned())
            .with_tls(tls)
            .with_reconnect(reconnect)
            .with_codec(self.codec)
            .with_transport(self.transport)
            .with_bit_rate(self.bitrate)
            .with_gop_size(self.gop)
            .with_max_b_frames(self.bframes)
            .with_preset(self.preset.clone())
            .with_tune(self.tune.clone())
            .with_profile(self.profile.clone())
            .with_size(self.size)
            .with_frame_rate(self.fps)
            .with_loops(self.loops)
            .with_rate(self.rate)
            .with_pace(!self.no_pace)
            .with_max_lead(Duration::from_millis(self.max_lead_ms))
            .with_audio(if self.no_audio {
                AudioMode::None
            } else {
                self.audio
            })
            .with_audio_stream(self.audio_stream);
        Ok(options)
    }
}

/// Runs the subcommand. Returns how it ended (Ctrl-C, or destinations that failed). `logging`: log
/// lines beyond warnings may appear on stderr (no progress bar then, so they stay readable).
pub fn run(push_args: &PushArgs, logging: bool) -> Result<PushExit> {
    let args = &push_args.flags;
    if let Some(path) = &args.stats_json {
        check_stats_path(path)?;
    }
    let options = args.options(&push_args.input, &push_args.urls)?;

    // SIGINT or SIGTERM while opening or connecting: stop within a second. Once the session
    // is up (its first progress report): stop reading, flush the encoder (paced) and tear
    // down cleanly. A second signal: give up at once. See `signals`.
    let signals = Signals::install()?;

    let mut progress = Progress::new(args.quiet, logging);
    let result = push(&options, signals.stop_flag(), |s| {
        signals.running();
        progress.update(s);
    });
    signals.finishing();
    progress.finish();
    // A damaged input was pushed up to the damage: its one error line says so.
    let mut damaged = None;
    let (summary, failures) = match result {
        Ok(summary) => (summary, Vec::new()),
        Err(PushError::Destinations { failures, summary }) => (*summary, failures),
        Err(e) => match e.summary() {
            Some(summary) => {
                damaged = Some(mpegcoder::types::error_chain(&e));
                (summary.clone(), Vec::new())
            }
            None => return Err(e.into()),
        },
    };

    if !args.quiet && damaged.is_none() {
        print_summary(&summary);
    }
    if let Some(path) = &args.stats_json {
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(line) = damaged {
        eprintln!("error: {line}");
        return Ok(PushExit::Failed);
    }
    if failures.is_empty() {
        return Ok(if summary.interrupted {
            PushExit::Interrupted(signals.exit_code().unwrap_or(130))
        } else {
            PushExit::Done
        });
    }
    for (url, why) in &failures {
        eprintln!("error: {}", error_line(url, &why.replace('\n', " ")));
    }
    Ok(PushExit::Failed)
}

/// How a push ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushExit {
    /// Every destination received the stream to the end.
    Done,
    /// Stopped by SIGINT or SIGTERM, after a clean teardown: the exit code, 128 + the
    /// signal's number (130, 143).
    Interrupted(u8),
    /// Some destination did not receive the stream to the end; its error line is printed.
    Failed,
}

/// The last line: what was pushed, to where, and how each destination fared when there are
/// several or any reconnected.
fn print_summary(summary: &PushSummary) {
    let s = &summary.stats;
    let audio = match &summary.audio_codec {
        Some(codec) => format!(
            " and {} {codec} audio frames ({:.2} MB)",
            s.audio_frames_sent,
            s.audio_bytes_sent as f64 / 1e6
        ),
        None => String::new(),
    };
    let to = if s.destinations.len() > 1 {
        format!("{} destinations", s.destinations.len())
    } else {
        summary.url.clone()
    };
    let reconnects = if s.reconnects > 0 {
        format!(
            ", {} reconnect{} ({:.1} s down, {} frames dropped)",
            s.reconnects,
            if s.reconnects == 1 { "" } else { "s" },
            s.outage_s,
            s.destination_frames_dropped
        )
    } else {
        String::new()
    };
    // What the server's RTCP receiver reports said (RFC 3550 §6.4.1: cumulative loss since
    // the start, negative when duplicates arrived: shown as 0); nothing when it sent none.
    let reported = match (s.receiver_reports, s.packets_lost.map(|l| l.max(0))) {
        (0, _) | (_, None) => String::new(),
        (n, Some(lost)) => format!(
            ", server lost {lost} packet{} ({n} receiver report{})",
            if lost == 1 { "" } else { "s" },
            if n == 1 { "" } else { "s" }
        ),
    };
    eprintln!(
        "pushed {} frames ({:.2} MB){audio} to {to} in {:.2} s (stream {:.2} s, {} loop{}), \
         late {}, dropped {}{reconnects}{reported}{}",
        s.frames_sent,
        s.bytes_sent as f64 / 1e6,
        s.elapsed_s,
        s.stream_time_s,
        summary.loops_completed,
        if summary.loops_completed == 1 {
            ""
        } else {
            "s"
        },
        s.late_frames,
        s.dropped_frames,
        if summary.interrupted {
            " (interrupted)"
        } else {
            ""
        },
    );
    if s.destinations.len() > 1 {
        for d in &s.destinations {
            eprintln!("  {}", destination_line(d));
        }
    }
}

/// One destination: where it stands and what it received.
fn destination_line(d: &DestinationStats) -> String {
    let mut line = format!("{} {}: frames {}", d.url, d.state, d.frames_sent);
    if d.audio_frames_sent > 0 {
        line.push_str(&format!("  audio {}", d.audio_frames_sent));
    }
    if d.frames_dropped > 0 {
        line.push_str(&format!("  dropped {}", d.frames_dropped));
    }
    if d.reconnects > 0 {
        line.push_str(&format!(
            "  reconnects {} ({:.1} s down)",
            d.reconnects, d.outage_s
        ));
    }
    if let Some(outage) = d.current_outage_s {
        line.push_str(&format!("  attempt {}, down {outage:.1} s", d.attempt));
    }
    line
}

/// A progress bar on a terminal, a line every few seconds otherwise (also while log lines
/// beyond warnings are shown, which would tear a bar).
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    last_line: Instant,
}

impl Progress {
    pub(crate) fn new(quiet: bool, logging: bool) -> Progress {
        let bar = (!quiet && !logging && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            quiet,
            last_line: Instant::now(),
        }
    }

    /// The counters, then what the server reported: loss, jitter and round trip from RTCP
    /// receiver reports (RTSP servers that send them), the last status message (RTMP).
    fn line(s: &ServerStats) -> String {
        let mut line = format!("frames {}", s.frames_sent);
        if s.audio_frames_sent > 0 {
            line.push_str(&format!("  audio {}", s.audio_frames_sent));
        }
        line.push_str(&format!(
            "  fps {:.1}  bitrate {:.0} kb/s  lead {:.1} ms  late {}",
            s.fps,
            s.bitrate_bps / 1000.0,
            s.lead_ms,
            s.late_frames
        ));
        if s.receiver_reports > 0 {
            if let Some(loss) = s.loss_fraction {
                line.push_str(&format!("  loss {:.1}%", loss * 100.0));
            }
            if let Some(jitter) = s.jitter_ms {
                line.push_str(&format!("  jitter {jitter:.1} ms"));
            }
            if let Some(rtt) = s.rtt_ms {
                line.push_str(&format!("  rtt {rtt:.1} ms"));
            }
        }
        if let Some(status) = &s.server_status {
            line.push_str(&format!("  server: {status}"));
        }
        // Each destination's state when there are several, or when the one is not plainly
        // connected: reconnecting (attempt n, outage so far), or resumed (reconnects).
        let plain =
            |d: &DestinationStats| d.state == DestinationState::Connected && d.reconnects == 0;
        if s.destinations.len() > 1 || !s.destinations.iter().all(plain) {
            for d in &s.destinations {
                line.push_str(&format!("  | {}", Progress::destination(d)));
            }
        }
        line
    }

    /// A destination's part of the progress line.
    fn destination(d: &DestinationStats) -> String {
        match d.state {
            DestinationState::Reconnecting | DestinationState::Connecting => format!(
                "{} {} (attempt {}, {:.1} s)",
                d.url,
                d.state,
                d.attempt.max(1),
                d.current_outage_s.unwrap_or(0.0)
            ),
            DestinationState::Connected if d.reconnects > 0 => format!(
                "{} resumed ({} reconnect{}, {:.1} s down, {} dropped)",
                d.url,
                d.reconnects,
                if d.reconnects == 1 { "" } else { "s" },
                d.outage_s,
                d.frames_dropped
            ),
            _ => format!("{} {} {}", d.url, d.state, d.frames_sent),
        }
    }

    fn update(&mut self, s: &ServerStats) {
        self.show(s.elapsed_s, || Progress::line(s));
    }

    /// Shows `line()` at `elapsed_s` seconds: in the bar, or as a line when five seconds
    /// passed since the last one.
    pub(crate) fn show(&mut self, elapsed_s: f64, line: impl FnOnce() -> String) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.set_message(line()),
            None => {
                if self.last_line.elapsed() >= Duration::from_secs(5) {
                    self.last_line = Instant::now();
                    eprintln!("{elapsed_s:.1}s {}", line());
                }
            }
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bit_rates_sizes_and_frame_rates() {
        assert_eq!(parse_bitrate("2M"), Ok(2_000_000));
        assert_eq!(parse_bitrate("1500k"), Ok(1_500_000));
        assert_eq!(parse_bitrate("2.5M"), Ok(2_500_000));
        assert_eq!(parse_bitrate("800000"), Ok(800_000));
        assert!(parse_bitrate("fast").is_err());
        assert!(parse_bitrate("-1M").is_err());
        assert_eq!(parse_size("1280x720"), Ok((1280, 720)));
        assert!(parse_size("1281x720").is_err());
        assert!(parse_size("1280").is_err());
        assert_eq!(parse_fps("30000/1001"), Ok(Rational::new(30000, 1001)));
        assert_eq!(parse_fps("25"), Ok(Rational::new(25, 1)));
        assert!(parse_fps("0").is_err());
    }

    #[test]
    fn the_progress_line_adds_what_the_server_reported() {
        let mut s = ServerStats::default();
        s.frames_sent = 90;
        s.fps = 30.0;
        s.bitrate_bps = 1_500_000.0;
        s.lead_ms = 2.5;
        let plain = "frames 90  fps 30.0  bitrate 1500 kb/s  lead 2.5 ms  late 0";
        assert_eq!(Progress::line(&s), plain);
        let mut with_audio = s.clone();
        with_audio.audio_frames_sent = 140;
        assert_eq!(
            Progress::line(&with_audio),
            "frames 90  audio 140  fps 30.0  bitrate 1500 kb/s  lead 2.5 ms  late 0"
        );
        // Reception figures count only once a receiver report came.
        s.jitter_ms = Some(1.0);
        assert_eq!(Progress::line(&s), plain);
        s.receiver_reports = 3;
        s.loss_fraction = Some(0.25);
        s.jitter_ms = Some(4.2);
        assert_eq!(
            Progress::line(&s),
            format!("{plain}  loss 25.0%  jitter 4.2 ms")
        );
        s.rtt_ms = Some(0.8);
        s.server_status = Some("NetStream.Publish.Start: Start publishing".into());
        assert_eq!(
            Progress::line(&s),
            format!(
                "{plain}  loss 25.0%  jitter 4.2 ms  rtt 0.8 ms  \
                 server: NetStream.Publish.Start: Start publishing"
            )
        );
    }

    #[test]
    fn the_progress_line_shows_destinations_that_are_not_plainly_connected() {
        let mut s = ServerStats::default();
        s.frames_sent = 90;
        s.fps = 30.0;
        let plain = "frames 90  fps 30.0  bitrate 0 kb/s  lead 0.0 ms  late 0";
        let mut d = DestinationStats::default();
        d.url = "rtmp://h/live/k".into();
        d.state = DestinationState::Connected;
        d.frames_sent = 90;
        s.destinations = vec![d.clone()];
        assert_eq!(Progress::line(&s), plain, "one destination, connected");
        d.state = DestinationState::Reconnecting;
        d.attempt = 3;
        d.current_outage_s = Some(4.25);
        s.destinations = vec![d.clone()];
        assert_eq!(
            Progress::line(&s),
            format!("{plain}  | rtmp://h/live/k reconnecting (attempt 3, 4.2 s)")
        );
        d.state = DestinationState::Connected;
        d.reconnects = 1;
        d.outage_s = 1.4;
        d.frames_dropped = 48;
        let mut other = DestinationStats::default();
        other.url = "rtsp://h/cam".into();
        other.state = DestinationState::Connected;
        other.frames_sent = 90;
        s.destinations = vec![d, other];
        assert_eq!(
            Progress::line(&s),
            format!(
                "{plain}  | rtmp://h/live/k resumed (1 reconnect, 1.4 s down, 48 dropped)  \
                 | rtsp://h/cam connected 90"
            )
        );
    }
}
