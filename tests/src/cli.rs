//! Running the `mpegcoder` command as a user does and reading what it printed.
//!
//! The command's tests (crates/cli/tests) pass their binary, `env!("CARGO_BIN_EXE_mpegcoder")`,
//! to [`run_cli`]. A failure must be one `error:` line ([`one_error_line`]); warnings are
//! `warning:` lines ([`warning_lines`]).

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `exe` with `args` (stdin closed) to completion; returns its output and how long it
/// took. The caller's `RUST_LOG` is removed: its log lines would add to the lines tests count.
pub fn run_cli(exe: &str, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(exe)
        .env_remove("RUST_LOG")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {exe}: {e}"));
    (out, started.elapsed())
}

/// Starts `exe` with `args` in the background (stdin closed, stdout dropped, stderr piped for
/// `wait_with_output`), without the caller's `RUST_LOG`.
pub fn spawn_cli(exe: &str, args: &[&str]) -> Child {
    Command::new(exe)
        .env_remove("RUST_LOG")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"))
}

/// The non-empty stderr lines of a run.
pub fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The stderr lines of a run that start with `warning: `.
pub fn warning_lines(out: &Output) -> Vec<String> {
    stderr_lines(out)
        .into_iter()
        .filter(|l| l.starts_with("warning: "))
        .collect()
}

/// Asserts that no part of an error line (the pieces between ": ") is said twice: each error
/// of the chain adds its own text.
pub fn assert_no_repetition(line: &str) {
    let parts: Vec<&str> = line
        .trim_start_matches("error: ")
        .split(": ")
        .map(str::trim)
        .filter(|p| p.len() >= 8)
        .collect();
    for (i, a) in parts.iter().enumerate() {
        for b in &parts[i + 1..] {
            assert!(
                !a.contains(b) && !b.contains(a),
                "{b:?} repeats {a:?} in: {line}"
            );
        }
    }
}

/// Asserts a failed run: non-zero exit, exactly one stderr line, `error: ` first, no part of
/// it said twice, containing every `needle` (case-insensitive), no panic. Returns stderr.
pub fn one_error_line(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "expected failure; stderr: {stderr}");
    let lines = stderr_lines(out);
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert_no_repetition(&lines[0]);
    for n in needles {
        assert!(
            lines[0].to_lowercase().contains(&n.to_lowercase()),
            "{n:?} missing in: {stderr}"
        );
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}
