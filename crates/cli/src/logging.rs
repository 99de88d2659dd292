//! Log lines on stderr. By default only warnings, each as one line `warning: <message>`, so a
//! normal run prints nothing but its own output. `-v` shows what the mpegcoder crates log at
//! debug level (every RTSP request and reply with its CSeq and status, RTMP commands and
//! status messages, session start and end), `-vv` everything down to trace; `RUST_LOG`, when
//! set, replaces both (e.g. `RUST_LOG=mpegcoder_transport=trace`).
//!
//! The library masks credentials in every URL it logs (`mpegcoder::types::redact_url`); this
//! module adds no field of its own.

use std::fmt;
use std::io::IsTerminal;
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The filter directives for `-v` counted `verbose` times, unless `rust_log` (the value of
/// `RUST_LOG`) is set and not blank: then it is used as given.
fn directives(verbose: u8, rust_log: Option<&str>) -> String {
    if let Some(given) = rust_log.filter(|s| !s.trim().is_empty()) {
        return given.to_string();
    }
    // A target directive matches every target it is a prefix of: `mpegcoder` covers
    // mpegcoder_transport, mpegcoder_codec, mpegcoder_pacer and the command itself.
    match verbose {
        0 => "warn".to_string(),
        1 => "warn,mpegcoder=debug".to_string(),
        _ => "warn,mpegcoder=trace".to_string(),
    }
}

/// Installs the log output for `-v` counted `verbose` times and `RUST_LOG`. Returns true when
/// more than warnings may be printed (a progress bar would then be torn by log lines).
pub fn init(verbose: u8) -> bool {
    let rust_log = std::env::var("RUST_LOG").ok();
    let from_env = rust_log.as_deref().is_some_and(|s| !s.trim().is_empty());
    let filter = EnvFilter::builder().parse_lossy(directives(verbose, rust_log.as_deref()));
    let detailed = verbose > 0 || from_env;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // Fails only when a subscriber is already installed, which this program never does twice.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .fmt_fields(Fields)
        .event_format(LineFormat {
            detailed,
            started: Instant::now(),
        })
        .try_init();
    detailed
}

/// One line per event: `warning: message field=value …`; with `detailed`, the seconds since
/// start and the event's target come first, for reading a protocol exchange.
struct LineFormat {
    detailed: bool,
    started: Instant,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if self.detailed {
            let t = self.started.elapsed();
            write!(writer, "{:>3}.{:03}s ", t.as_secs(), t.subsec_millis())?;
        }
        let (word, colour) = level_word(*meta.level());
        if writer.has_ansi_escapes() {
            write!(writer, "\x1b[1;{colour}m{word}\x1b[0m")?;
        } else {
            writer.write_str(word)?;
        }
        if self.detailed {
            write!(writer, " {}", meta.target())?;
        }
        writer.write_str(": ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The message, then `name=value` for each field; text values as they are (`method=SETUP`,
/// not `method="SETUP"`), others in their `Debug` form.
struct Fields;

impl<'writer> FormatFields<'writer> for Fields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = FieldWriter {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct FieldWriter<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl FieldWriter<'_> {
    fn write(&mut self, field: &Field, value: &dyn fmt::Display) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            write!(self.writer, "{separator}{value}")
        } else {
            write!(self.writer, "{separator}{}={value}", field.name())
        };
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // The message arrives as format arguments, whose Debug form is the text itself.
        self.write(field, &format_args!("{value:?}"));
    }
}

/// How a level is named on the line, and its ANSI colour.
fn level_word(level: Level) -> (&'static str, &'static str) {
    match level {
        Level::ERROR => ("error", "31"),
        Level::WARN => ("warning", "33"),
        Level::INFO => ("info", "32"),
        Level::DEBUG => ("debug", "34"),
        Level::TRACE => ("trace", "35"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_choose_the_level_and_rust_log_wins() {
        assert_eq!(directives(0, None), "warn");
        assert_eq!(directives(1, None), "warn,mpegcoder=debug");
        assert_eq!(directives(2, None), "warn,mpegcoder=trace");
        assert_eq!(directives(5, None), "warn,mpegcoder=trace");
        assert_eq!(directives(0, Some("  ")), "warn");
        assert_eq!(
            directives(2, Some("mpegcoder_transport=debug")),
            "mpegcoder_transport=debug"
        );
    }

    #[test]
    fn lines_name_the_level_without_time_or_target_by_default() {
        use std::sync::{Arc, Mutex};

        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(data);
                Ok(data.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let capture = |detailed: bool| {
            let buffer = Buffer::default();
            let out = buffer.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::new("trace"))
                .with_writer(move || out.clone())
                .with_ansi(false)
                .fmt_fields(Fields)
                .event_format(LineFormat {
                    detailed,
                    started: Instant::now(),
                })
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                tracing::warn!(url = "rtsp://h/x", "skipping a packet");
                tracing::debug!(method = "SETUP", cseq = 3, reason = ?"OK", "RTSP reply");
            });
            let text = buffer.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
            String::from_utf8_lossy(&text).into_owned()
        };
        let plain = capture(false);
        assert_eq!(
            plain,
            "warning: skipping a packet url=rtsp://h/x\n\
             debug: RTSP reply method=SETUP cseq=3 reason=\"OK\"\n"
        );
        let detailed = capture(true);
        let lines: Vec<&str> = detailed.lines().collect();
        assert_eq!(lines.len(), 2, "{detailed}");
        assert!(
            lines[0]
                .ends_with("s warning mpegcoder::logging::tests: skipping a packet url=rtsp://h/x"),
            "{detailed}"
        );
        assert!(
            lines[1].contains(" debug mpegcoder::logging::tests: RTSP reply method=SETUP cseq=3"),
            "{detailed}"
        );
    }
}
