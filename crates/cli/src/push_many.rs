//! `mpegcoder push-many LIST [push options]`: every stream of a list pushed from one process.
//!
//! Each line of the list is one push (`INPUT URL [URL…]`) with the options of the command
//! line, run on its own thread through the same [`mpegcoder::push`] as `mpegcoder push`: its
//! own input, pacing, connections, reconnection and statistics. The network I/O of all of
//! them runs on the process's one network thread. The list is checked whole before anything
//! opens or connects; once running, a stream that fails does not stop the others.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use mpegcoder::server::destination_line as error_line;
use mpegcoder::transport::redact_url;
use mpegcoder::{push, DestinationState, PushError, PushOptions, PushSummary, ServerStats};
use serde::Serialize;

use crate::push::{check_stats_path, Progress, PushExit, PushFlags};
use crate::signals::Signals;

/// Arguments of `mpegcoder push-many`.
#[derive(Debug, Args)]
pub struct PushManyArgs {
    /// A text file with one stream per line: INPUT URL [URL…], separated by spaces or tabs
    /// (a field holding spaces in double quotes). `#` at the start of a field begins a
    /// comment; blank lines are skipped. Every option below applies to every stream.
    pub list: PathBuf,
    /// Spread the starts of the streams evenly over this many milliseconds (0: all at once),
    /// so that the server does not take every connection in the same instant and the frames
    /// of different streams do not all fall due together.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub start_spread_ms: u64,
    #[command(flatten)]
    pub flags: PushFlags,
}

/// One line of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its line number, from 1.
    pub line: usize,
    /// The input.
    pub input: String,
    /// Where it goes.
    pub urls: Vec<String>,
}

/// The fields of one line: whitespace-separated, `"…"` quoted (a quote inside written `\"`,
/// a backslash `\\`), up to a `#` that begins a field. `Err` names what is wrong.
fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None | Some('#') => return Ok(out),
            Some('"') => {
                chars.next();
                let mut field = String::new();
                loop {
                    match chars.next() {
                        None => return Err("a quoted field is not closed".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => field.push(c),
                            Some(c) => {
                                field.push('\\');
                                field.push(c);
                            }
                            None => return Err("a quoted field is not closed".into()),
                        },
                        Some(c) => field.push(c),
                    }
                }
                if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                    return Err("a quoted field must be followed by a space".into());
                }
                out.push(field);
            }
            Some(_) => {
                let mut field = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    field.push(c);
                    chars.next();
                }
                out.push(field);
            }
        }
    }
}

/// A local file (not a URL FFmpeg opens, nor a pipe).
fn is_local_file(input: &str) -> bool {
    !(input.contains("://") || input.starts_with("pipe:") || input == "-")
}

/// Reads the list: every line's fields, and the checks that need no server (each line has
/// an input and a URL, local inputs exist, no URL is published twice). `name` is how errors
/// call the file. Relative input paths are taken from the current directory, like
/// `mpegcoder push`'s.
pub fn parse_list(text: &str, name: &str) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    // Keyed by the URL without credentials: the same stream whoever logs in.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut lines = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let f = fields(l).map_err(|why| anyhow::anyhow!("{name}:{}: {why}", i + 1))?;
        lines.push((i + 1, f));
    }
    for (line, f) in &lines {
        match f.len() {
            0 => continue,
            1 => bail!(
                "{name}:{line}: expected INPUT URL [URL…], found only {:?}",
                redact_url(&f[0])
            ),
            _ => {}
        }
        let input = &f[0];
        if is_local_file(input) && !Path::new(input).exists() {
            bail!("{name}:{line}: {input}: no such file");
        }
        for url in &f[1..] {
            let shown = redact_url(url);
            if let Some(first) = seen.insert(shown.clone(), *line) {
                bail!(
                    "{name}:{line}: {shown} is already published by line {first} (two \
                     publishers of one stream would push each other off the server)"
                );
            }
        }
        entries.push(Entry {
            line: *line,
            input: input.clone(),
            urls: f[1..].to_vec(),
        });
    }
    if entries.is_empty() {
        bail!("{name}: no streams (expected lines of INPUT URL)");
    }
    Ok(entries)
}

/// Where a stream stands, for the progress line.
const WAITING: u8 = 0;
const OPENING: u8 = 1;
const RUNNING: u8 = 2;
const DONE: u8 = 3;
const FAILED: u8 = 4;

/// One stream while it runs.
struct Slot {
    state: AtomicU8,
    stats: Mutex<Option<ServerStats>>,
}

/// How one stream ended.
#[derive(Debug, Clone, Serialize)]
pub struct StreamResult {
    /// Its line in the list.
    pub line: usize,
    /// The input, credentials removed.
    pub input: String,
    /// The first URL, credentials removed.
    pub url: String,
    /// Every URL, credentials removed.
    pub urls: Vec<String>,
    /// Why it failed (one line per failed destination, joined with "; "), if it did.
    pub error: Option<String>,
    /// What it pushed, when it got as far as opening its input.
    pub summary: Option<PushSummary>,
}

/// The streams together.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Streams in the list.
    pub streams: usize,
    /// Streams pushed to the end (or until the interruption) without an error.
    pub streams_complete: usize,
    /// Streams that failed.
    pub streams_failed: usize,
    /// Video frames sent, all streams.
    pub frames_sent: u64,
    /// Audio frames sent, all streams.
    pub audio_frames_sent: u64,
    /// Media bytes sent, all streams.
    pub bytes_sent: u64,
    /// Frames sent after their deadline (beyond the pacer's tolerance).
    pub late_frames: u64,
    /// Frames the pacer dropped.
    pub dropped_frames: u64,
    /// Frames destinations dropped while reconnecting.
    pub destination_frames_dropped: u64,
    /// Reconnections, all streams.
    pub reconnects: u64,
    /// Seconds destinations were down, summed.
    pub outage_s: f64,
    /// Seconds from the start of the first stream to the end of the last.
    pub elapsed_s: f64,
    /// Stopped by SIGINT or SIGTERM.
    pub interrupted: bool,
}

/// What `--stats-json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct ManyReport {
    /// The list file.
    pub list: String,
    /// Per stream, in the list's order.
    pub streams: Vec<StreamResult>,
    /// The sums.
    pub total: Totals,
}

impl Totals {
    fn of(streams: &[StreamResult], elapsed_s: f64, interrupted: bool) -> Totals {
        let mut t = Totals {
            streams: streams.len(),
            elapsed_s,
            interrupted,
            ..Totals::default()
        };
        for s in streams {
            match &s.error {
                Some(_) => t.streams_failed += 1,
                None if s.summary.is_some() => t.streams_complete += 1,
                None => {}
            }
            if let Some(summary) = &s.summary {
                let st = &summary.stats;
                t.frames_sent += st.frames_sent;
                t.audio_frames_sent += st.audio_frames_sent;
                t.bytes_sent += st.bytes_sent;
                t.late_frames += st.late_frames;
                t.dropped_frames += st.dropped_frames;
                t.destination_frames_dropped += st.destination_frames_dropped;
                t.reconnects += st.reconnects;
                t.outage_s += st.outage_s;
            }
        }
        t
    }
}

/// The progress line of all streams.
fn progress_line(slots: &[Slot]) -> String {
    let mut counts = [0usize; 5];
    let (mut frames, mut audio, mut late) = (0u64, 0u64, 0u64);
    let (mut fps, mut bitrate) = (0.0, 0.0);
    let mut reconnecting = 0;
    for slot in slots {
        let state = slot.state.load(Ordering::Relaxed);
        counts[usize::from(state.min(FAILED))] += 1;
        if let Ok(guard) = slot.stats.lock() {
            if let Some(s) = guard.as_ref() {
                frames += s.frames_sent;
                audio += s.audio_frames_sent;
                late += s.late_frames;
                if state == RUNNING {
                    fps += s.fps;
                    bitrate += s.bitrate_bps;
                    if s.destinations.iter().any(|d| {
                        matches!(
                            d.state,
                            DestinationState::Reconnecting | DestinationState::Connecting
                        )
                    }) {
                        reconnecting += 1;
                    }
                }
            }
        }
    }
    let mut line = format!(
        "streams {}: {} running",
        slots.len(),
        counts[usize::from(RUNNING)]
    );
    for (n, what) in [
        (
            counts[usize::from(WAITING)] + counts[usize::from(OPENING)],
            "starting",
        ),
        (reconnecting, "reconnecting"),
        (counts[usize::from(DONE)], "done"),
        (counts[usize::from(FAILED)], "failed"),
    ] {
        if n > 0 {
            line.push_str(&format!(", {n} {what}"));
        }
    }
    line.push_str(&format!("  frames {frames}"));
    if audio > 0 {
        line.push_str(&format!("  audio {audio}"));
    }
    line.push_str(&format!(
        "  fps {fps:.0}  bitrate {:.0} kb/s  late {late}",
        bitrate / 1000.0
    ));
    line
}

/// Sleeps until `at`, in short steps so that a stop is seen within 50 ms. False when stopped.
fn wait_start(at: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= at {
            return true;
        }
        std::thread::sleep((at - now).min(Duration::from_millis(50)));
    }
}

/// One stream's push, to its end: (summary, error).
fn run_one(
    options: &PushOptions,
    stop: &AtomicBool,
    slot: &Slot,
    signals: &Signals,
) -> (Option<PushSummary>, Option<String>) {
    slot.state.store(OPENING, Ordering::Relaxed);
    let result = push(options, stop, |s| {
        signals.running();
        slot.state.store(RUNNING, Ordering::Relaxed);
        if let Ok(mut guard) = slot.stats.lock() {
            *guard = Some(s.clone());
        }
    });
    let outcome = match result {
        Ok(summary) => (Some(summary), None),
        Err(PushError::Destinations { failures, summary }) => {
            let why: Vec<String> = failures
                .iter()
                .map(|(url, why)| error_line(url, &why.replace('\n', " ")))
                .collect();
            (Some(*summary), Some(why.join("; ")))
        }
        Err(e) => (
            e.summary().cloned(),
            Some(mpegcoder::types::error_chain(&e)),
        ),
    };
    let state = if outcome.1.is_some() { FAILED } else { DONE };
    slot.state.store(state, Ordering::Relaxed);
    outcome
}

/// Runs the subcommand.
pub fn run(args: &PushManyArgs, logging: bool) -> Result<PushExit> {
    let flags = &args.flags;
    let name = args.list.display().to_string();
    let text =
        std::fs::read_to_string(&args.list).with_context(|| format!("cannot read {name}"))?;
    let entries = parse_list(&text, &name)?;
    if let Some(path) = &flags.stats_json {
        check_stats_path(path)?;
    }
    // Everything that can be refused without a server is refused now, for every line.
    let mut all: Vec<&str> = Vec::new();
    for e in &entries {
        all.push(&e.input);
        all.extend(e.urls.iter().map(String::as_str));
    }
    let tls = flags.tls.options(&all, flags.transport)?;
    let mut options = Vec::with_capacity(entries.len());
    for e in &entries {
        let o = flags.options_with_tls(&e.input, &e.urls, tls.clone())?;
        o.validate()
            .map_err(|err| anyhow::anyhow!("{}", mpegcoder::types::error_chain(&err)))?;
        options.push(o);
    }

    let signals = Signals::install()?;
    let stop = signals.stop_flag();
    let slots: Vec<Slot> = entries
        .iter()
        .map(|_| Slot {
            state: AtomicU8::new(WAITING),
            stats: Mutex::new(None),
        })
        .collect();
    let n = entries.len();
    let spread = Duration::from_millis(args.start_spread_ms);
    let mut progress = Progress::new(flags.quiet, logging);
    let began = Instant::now();
    let outcomes: Vec<(Option<PushSummary>, Option<String>)> = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(n);
        for (i, (e, o)) in entries.iter().zip(&options).enumerate() {
            let slot = &slots[i];
            let signals = &signals;
            let at = began + spread.mul_f64(i as f64 / n as f64);
            let spawned = std::thread::Builder::new()
                .name(format!("push-{}", e.line))
                .spawn_scoped(scope, move || {
                    if !wait_start(at, stop) {
                        return (None, None);
                    }
                    run_one(o, stop, slot, signals)
                });
            handles.push(spawned.map_err(|err| {
                slot.state.store(FAILED, Ordering::Relaxed);
                format!("cannot start a thread for this stream: {err}")
            }));
        }
        while !handles
            .iter()
            .all(|h| h.as_ref().map_or(true, |h| h.is_finished()))
        {
            progress.show(began.elapsed().as_secs_f64(), || progress_line(&slots));
            std::thread::sleep(Duration::from_millis(200));
        }
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| (None, Some("the stream's thread panicked".to_string()))),
                Err(why) => (None, Some(why)),
            })
            .collect()
    });
    signals.finishing();
    progress.finish();
    let elapsed_s = began.elapsed().as_secs_f64();
    let interrupted = signals.exit_code().is_some() || stop.load(Ordering::Relaxed);

    let streams: Vec<StreamResult> = entries
        .iter()
        .zip(outcomes)
        .map(|(e, (summary, error))| StreamResult {
            line: e.line,
            input: redact_url(&e.input),
            url: redact_url(&e.urls[0]),
            urls: e.urls.iter().map(|u| redact_url(u)).collect(),
            error,
            summary,
        })
        .collect();
    let report = ManyReport {
        list: name.clone(),
        total: Totals::of(&streams, elapsed_s, interrupted),
        streams,
    };
    if !flags.quiet {
        print_summary(&report);
    }
    if let Some(path) = &flags.stats_json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    for s in &report.streams {
        if let Some(why) = &s.error {
            eprintln!("error: {name}:{}: {why}", s.line);
        }
    }
    Ok(if report.total.streams_failed > 0 {
        PushExit::Failed
    } else if interrupted {
        PushExit::Interrupted(signals.exit_code().unwrap_or(130))
    } else {
        PushExit::Done
    })
}

/// How many streams the summary describes one by one (those that reconnected, were late or
/// dropped frames) before it refers to `--stats-json`.
const NOTABLE_SHOWN: usize = 20;

/// The total line, then a line for each stream worth a look.
fn print_summary(report: &ManyReport) {
    let t = &report.total;
    let audio = if t.audio_frames_sent > 0 {
        format!(" and {} audio frames", t.audio_frames_sent)
    } else {
        String::new()
    };
    let reconnects = if t.reconnects > 0 {
        format!(
            ", {} reconnects ({:.1} s down, {} frames dropped)",
            t.reconnects, t.outage_s, t.destination_frames_dropped
        )
    } else {
        String::new()
    };
    eprintln!(
        "pushed {} streams from {} ({} complete, {} failed): {} frames ({:.2} MB){audio} in \
         {:.2} s, late {}, dropped {}{reconnects}{}",
        t.streams,
        report.list,
        t.streams_complete,
        t.streams_failed,
        t.frames_sent,
        t.bytes_sent as f64 / 1e6,
        t.elapsed_s,
        t.late_frames,
        t.dropped_frames,
        if t.interrupted { " (interrupted)" } else { "" }
    );
    let notable: Vec<&StreamResult> = report
        .streams
        .iter()
        .filter(|s| {
            s.error.is_none()
                && s.summary.as_ref().is_some_and(|m| {
                    m.stats.reconnects > 0 || m.stats.late_frames > 0 || m.stats.dropped_frames > 0
                })
        })
        .collect();
    for s in notable.iter().take(NOTABLE_SHOWN) {
        if let Some(m) = &s.summary {
            eprintln!(
                "  line {}: {} → {}: frames {}, late {}, dropped {}, reconnects {} ({:.1} s down)",
                s.line,
                s.input,
                s.urls.join(" "),
                m.stats.frames_sent,
                m.stats.late_frames,
                m.stats.dropped_frames,
                m.stats.reconnects,
                m.stats.outage_s
            );
        }
    }
    if notable.len() > NOTABLE_SHOWN {
        eprintln!(
            "  … and {} more (per stream in --stats-json)",
            notable.len() - NOTABLE_SHOWN
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fields_split_on_whitespace_with_quotes_and_comments() {
        assert_eq!(fields("a b\tc").unwrap(), ["a", "b", "c"]);
        assert_eq!(fields("  # all comment").unwrap(), Vec::<String>::new());
        assert_eq!(
            fields("a rtmp://h/x # the camera").unwrap(),
            ["a", "rtmp://h/x"]
        );
        // A `#` inside a field is part of it.
        assert_eq!(fields("a rtsp://h/x#y").unwrap(), ["a", "rtsp://h/x#y"]);
        assert_eq!(
            fields(r#""my clip.mp4" rtmp://h/x"#).unwrap(),
            ["my clip.mp4", "rtmp://h/x"]
        );
        assert_eq!(
            fields(r#""a \"b\" \\ c" d"#).unwrap(),
            [r#"a "b" \ c"#, "d"]
        );
        assert!(fields(r#""open rtmp://h/x"#).is_err());
        assert!(fields(r#""a"b c"#).is_err());
    }

    #[test]
    fn the_list_is_checked_whole() {
        let dir = std::env::temp_dir().join(format!("push-many-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let clip = dir.join("clip.mp4");
        std::fs::write(&clip, b"x").unwrap();
        let c = clip.display().to_string();
        let text =
            format!("# streams\n\n{c} rtmp://h/live/a\n{c} rtsp://h/b rtmp://h/live/c  # two\n");
        let entries = parse_list(&text, "l.txt").unwrap();
        assert_eq!(
            entries,
            [
                Entry {
                    line: 3,
                    input: c.clone(),
                    urls: vec!["rtmp://h/live/a".into()]
                },
                Entry {
                    line: 4,
                    input: c.clone(),
                    urls: vec!["rtsp://h/b".into(), "rtmp://h/live/c".into()]
                }
            ]
        );
        // URLs as inputs are not checked here (the push reports them).
        assert!(parse_list("rtsp://cam/1 rtmp://h/live/a\n", "l").is_ok());
        let err = |text: &str| parse_list(text, "l.txt").unwrap_err().to_string();
        assert_eq!(
            err(&format!("{c} rtmp://h/a\n{c}\n")),
            format!("l.txt:2: expected INPUT URL [URL…], found only {c:?}")
        );
        assert_eq!(
            err("nowhere.mp4 rtmp://h/a\n"),
            "l.txt:1: nowhere.mp4: no such file"
        );
        let dup = err(&format!(
            "{c} rtmp://u:secret@h/a\n{c} rtmp://h/b rtmp://other:pw@h/a\n"
        ));
        assert!(
            dup.starts_with("l.txt:2: rtmp://h/a is already published by line 1"),
            "{dup}"
        );
        assert!(!dup.contains("secret"), "{dup}");
        assert_eq!(
            err("# nothing\n\n"),
            "l.txt: no streams (expected lines of INPUT URL)"
        );
        assert_eq!(err("a \"b\n"), "l.txt:1: a quoted field is not closed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn totals_sum_the_streams() {
        let mut a = ServerStats::default();
        a.frames_sent = 10;
        a.audio_frames_sent = 20;
        a.bytes_sent = 1000;
        a.late_frames = 1;
        a.reconnects = 2;
        a.outage_s = 1.5;
        let summary = |stats: ServerStats| PushSummary {
            input: "i".into(),
            url: "u".into(),
            codec: mpegcoder::VideoCodec::Copy,
            width: 2,
            height: 2,
            frame_rate: "25/1".into(),
            audio_codec: None,
            loops_completed: 1,
            interrupted: false,
            timestamp_jumps: 0,
            source: None,
            stats,
        };
        let stream = |error: Option<&str>, s: Option<PushSummary>| StreamResult {
            line: 1,
            input: "i".into(),
            url: "u".into(),
            urls: vec!["u".into()],
            error: error.map(String::from),
            summary: s,
        };
        let streams = [
            stream(None, Some(summary(a.clone()))),
            stream(Some("refused"), Some(summary(a))),
            stream(Some("no such file"), None),
            stream(None, None),
        ];
        let t = Totals::of(&streams, 3.0, true);
        assert_eq!((t.streams, t.streams_complete, t.streams_failed), (4, 1, 2));
        assert_eq!(
            (t.frames_sent, t.audio_frames_sent, t.bytes_sent),
            (20, 40, 2000)
        );
        assert_eq!((t.late_frames, t.reconnects), (2, 4));
        assert!((t.outage_s - 3.0).abs() < 1e-9);
        assert!(t.interrupted);
    }
}
