//! Bad input, table-driven: files that are not videos (or not H.264 for `--codec copy`), bad
//! options and URLs, every RTSP error status from a scripted server, servers that stay silent,
//! answer in another protocol or close at once, and ports nobody listens on, for `push` and
//! `pull`, over RTSP and RTMP.
//!
//! Every case runs the `mpegcoder` binary and checks what a user sees:
//! - the exit code (2 for what the argument parser refuses, and for libx264 names it does not
//!   know; 1 for everything else; 0 for the control cases that show the scripted server can
//!   also let a push through);
//! - exactly one line starting with `error:` on stderr, naming what the case says it must
//!   (the file, the option and its value, the method and status, the URL without credentials,
//!   what arrived), and nothing else on stderr (the parser's usage lines aside);
//! - the time it took, against a generous bound (2-3 times the expected time: the machine is
//!   noisy and cases run side by side);
//! - that the password of the URLs (every network case uses `user:s3cr3tpw@`) appears nowhere
//!   in stdout or stderr, nor in the request lines a scripted server received.
//!
//! Each group runs its cases in parallel (each with its own server on its own port) and
//! reports every failing case at once, with what the command printed.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mpegcoder_protocol_tests::fake_server::{
    refused_port, Behaviour, FakeServer, RtspScript, SeenRequest,
};
use mpegcoder_protocol_tests::{framemd5, framemd5_and_errors, require, run, TempDir};

/// The password in every network case's URL: it must never be printed.
const PASSWORD: &str = "s3cr3tpw";
/// Cases of a group running at the same time.
const WORKERS: usize = 4;
/// Bound of the cases that fail before doing anything slow (parsing, opening a file, a
/// refused connection, a reply at once): they take 0.1-0.5 s alone, but up to 4 s were seen
/// with the groups running side by side on two busy cores.
const QUICK: f64 = 5.0;
/// Bound of a case waiting for the 10 s step timeouts of push (RTSP request, RTMP handshake
/// and command).
const STEP_TIMEOUT: f64 = 25.0;
/// Bound of a pull with `--timeout 2` that gets no answer: it gives up after some 2.2 s.
const PULL_TIMEOUT_2: f64 = 6.0;

/// What a case needs before the command runs.
enum Setup {
    /// Nothing listens: `{port}` is a refused port.
    Nothing,
    /// A scripted server; `{port}` is its port.
    Server(Behaviour),
}

/// A check of the requests a scripted RTSP server received.
type ServerCheck = Box<dyn Fn(&[SeenRequest]) -> Result<(), String> + Send>;

/// One bad-input case. In `args` and `must_name`: `{clip}` is the H.264 clip, `{dir}` the
/// fixture directory, `{port}` the case's port, `{rtsp}` and `{rtmp}` URLs with credentials
/// on that port.
struct Case {
    name: String,
    args: Vec<String>,
    setup: Setup,
    expect_exit: i32,
    must_name: Vec<String>,
    max_secs: f64,
    check: Option<ServerCheck>,
}

fn case(
    name: &str,
    setup: Setup,
    args: &[&str],
    expect_exit: i32,
    must_name: &[&str],
    max_secs: f64,
) -> Case {
    Case {
        name: name.to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        setup,
        expect_exit,
        must_name: must_name.iter().map(|a| a.to_string()).collect(),
        max_secs,
        check: None,
    }
}

impl Case {
    fn with_check(
        mut self,
        check: impl Fn(&[SeenRequest]) -> Result<(), String> + Send + 'static,
    ) -> Case {
        self.check = Some(Box::new(check));
        self
    }
}

fn server(b: Behaviour) -> Setup {
    Setup::Server(b)
}

fn rtsp(script: RtspScript) -> Setup {
    Setup::Server(Behaviour::Rtsp(script))
}

/// The fixture files, made with the ffmpeg CLI.
struct Fixtures {
    dir: TempDir,
}

impl Fixtures {
    /// The H.264 clip (2 s, 320x240, 30 fps, a key frame every 15 frames, no audio) and, with
    /// `all`, the bad files.
    fn new(tag: &str, all: bool) -> Fixtures {
        let dir = TempDir::new(tag);
        let d = dir.path();
        let ffmpeg = |args: &[&str], out: &str| {
            run(Command::new("ffmpeg")
                .args(["-v", "error", "-nostdin", "-y"])
                .args(args)
                .arg(d.join(out)));
        };
        let testsrc = [
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-t",
            "2",
        ];
        let h264 = [
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "15",
        ];
        ffmpeg(&[&testsrc[..], &h264[..]].concat(), "clip.mp4");
        if all {
            ffmpeg(&[&testsrc[..], &["-c:v", "mpeg4"]].concat(), "mpeg4.mkv");
            let vp9 = [
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
            ];
            ffmpeg(&[&testsrc[..], &vp9[..]].concat(), "vp9.webm");
            let tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"];
            ffmpeg(
                &[&tone[..], &["-t", "2", "-c:a", "aac"]].concat(),
                "audio.m4a",
            );
            // The index (moov) after the media data: both truncations below keep a part of
            // the media, one without the index, one with it.
            let clip = std::fs::read(d.join("clip.mp4")).unwrap();
            std::fs::write(d.join("trunc_moov.mp4"), &clip[..clip.len() / 3]).unwrap();
            run(Command::new("ffmpeg")
                .args(["-v", "error", "-nostdin", "-y", "-i"])
                .arg(d.join("clip.mp4"))
                .args(["-c", "copy", "-movflags", "+faststart"])
                .arg(d.join("faststart.mp4")));
            let fast = std::fs::read(d.join("faststart.mp4")).unwrap();
            std::fs::write(d.join("trunc_fast.mp4"), &fast[..fast.len() * 2 / 5]).unwrap();
            std::fs::write(d.join("empty.mp4"), b"").unwrap();
            std::fs::write(d.join("notes.txt"), "this is not a video\n").unwrap();
            // Bytes of no format (a fixed xorshift sequence), under a video's name.
            let mut x: u32 = 0x9e37_79b9;
            let noise: Vec<u8> = (0..64 * 1024)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x >> 24) as u8
                })
                .collect();
            std::fs::write(d.join("noise.mp4"), noise).unwrap();
            std::fs::create_dir_all(d.join("adir.mp4")).unwrap();
        }
        Fixtures { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// What one case produced.
struct Outcome {
    name: String,
    problems: Vec<String>,
    code: Option<i32>,
    took: Duration,
    stdout: String,
    stderr: String,
}

fn fill(template: &str, dir: &Path, port: u16) -> String {
    template
        .replace(
            "{rtsp}",
            &format!("rtsp://user:{PASSWORD}@127.0.0.1:{port}/live"),
        )
        .replace(
            "{rtmp}",
            &format!("rtmp://user:{PASSWORD}@127.0.0.1:{port}/live/key"),
        )
        .replace("{clip}", &dir.join("clip.mp4").to_string_lossy())
        .replace("{dir}", &dir.to_string_lossy())
        .replace("{port}", &port.to_string())
}

/// Runs the binary with `args`, stdout and stderr captured, killed (by its own handle) when
/// it outlives `limit`; returns the output and how long it ran.
fn run_mpegcoder(args: &[String], limit: Duration) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mpegcoder"))
        .env_remove("RUST_LOG")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpegcoder");
    let collect = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = pipe.read_to_end(&mut v);
            v
        })
    };
    let out = collect(Box::new(child.stdout.take().unwrap()));
    let err = collect(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for mpegcoder") {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            break child.wait().expect("wait for mpegcoder");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    let output = std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    (output, took)
}

/// The argument parser's lines after its `error:` line (a tip, the missing arguments, the
/// usage, the pointer to --help): allowed on stderr only when the parser refused the command.
fn is_usage_line(line: &str) -> bool {
    line.starts_with("  ") || line.starts_with("Usage:") || line.starts_with("For more information")
}

/// What is wrong with a run's stderr. A failed run (`exit` ≠ 0) prints exactly one line,
/// `error: …`, containing every name (case-insensitive), no part of it said twice, nothing
/// else (only when the parser refused the command, `exit` 2, its usage lines may follow),
/// and no panic. A successful run prints no `error:` line.
fn error_line_problems(stderr: &str, exit: i32, names: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    if stderr.contains("panicked") {
        problems.push("it panicked".into());
    }
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("error:"))
        .collect();
    if exit == 0 {
        if !errors.is_empty() {
            problems.push("an error line in a run that should succeed".into());
        }
        return problems;
    }
    if errors.len() != 1 {
        problems.push(format!("{} error lines, expected one", errors.len()));
    }
    let others: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.starts_with("error:") && (exit != 2 || !is_usage_line(l)))
        .collect();
    if !others.is_empty() {
        problems.push(format!("other lines on stderr: {others:?}"));
    }
    let Some(line) = errors.first() else {
        return problems;
    };
    if !line.starts_with("error: ") {
        problems.push("the error line does not start with `error: `".into());
    }
    let lower = line.to_lowercase();
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !lower.contains(&n.to_lowercase()))
        .collect();
    if !missing.is_empty() {
        problems.push(format!("the error line does not name {missing:?}"));
    }
    if let Some((a, b)) = repetition(line) {
        problems.push(format!("{b:?} repeats {a:?}"));
    }
    problems
}

/// Two parts of an error line (between ": ", at least 8 characters) where one contains the
/// other: a cause said twice.
fn repetition(line: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = line
        .trim_start_matches("error: ")
        .split(": ")
        .map(str::trim)
        .filter(|p| p.len() >= 8)
        .collect();
    parts.iter().enumerate().find_map(|(i, a)| {
        parts[i + 1..]
            .iter()
            .find(|b| a.contains(*b) || b.contains(*a))
            .map(|b| (*a, *b))
    })
}

fn run_case(c: &Case, dir: &Path) -> Outcome {
    let fake = match &c.setup {
        Setup::Nothing => None,
        Setup::Server(b) => Some(FakeServer::start(b.clone())),
    };
    let port = fake.as_ref().map_or_else(refused_port, FakeServer::port);
    let args: Vec<String> = c.args.iter().map(|a| fill(a, dir, port)).collect();
    let names: Vec<String> = c.must_name.iter().map(|n| fill(n, dir, port)).collect();
    // Killed at twice its bound (plus a margin): a hang fails the case, not the suite.
    let limit = Duration::from_secs_f64(c.max_secs * 2.0 + 5.0);
    let (out, took) = run_mpegcoder(&args, limit);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let mut problems = Vec::new();
    let code = out.status.code();
    if code != Some(c.expect_exit) {
        problems.push(format!("exit {code:?}, expected {}", c.expect_exit));
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    problems.extend(error_line_problems(&stderr, c.expect_exit, &names));
    if took.as_secs_f64() > c.max_secs {
        problems.push(format!(
            "took {:.1} s, bound {:.1} s",
            took.as_secs_f64(),
            c.max_secs
        ));
    }
    for (what, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        if text.contains(PASSWORD) {
            problems.push(format!("the password appears on {what}"));
        }
    }
    if let Some(server) = &fake {
        let seen = server.requests();
        if seen.iter().any(|r| r.url.contains(PASSWORD)) {
            problems.push("the password went into a request line".into());
        }
        if let Some(check) = &c.check {
            if let Err(e) = check(&seen) {
                problems.push(format!("server saw {}: {e}", describe(&seen)));
            }
        }
    }
    Outcome {
        name: c.name.clone(),
        problems,
        code,
        took,
        stdout,
        stderr,
    }
}

fn describe(seen: &[SeenRequest]) -> String {
    let list: Vec<String> = seen
        .iter()
        .map(|r| {
            format!(
                "{}{}→{}",
                r.method,
                if r.authorization { "+auth" } else { "" },
                r.status
            )
        })
        .collect();
    format!("[{}]", list.join(", "))
}

/// Runs the group's cases on [`WORKERS`] threads and fails with every failing case listed.
fn run_group(group: &str, fixtures: &Fixtures, cases: Vec<Case>) {
    let total = cases.len();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let dup = names.windows(2).find(|w| w[0] == w[1]);
    assert!(dup.is_none(), "{group}: case names repeat: {dup:?}");
    let queue: Mutex<VecDeque<(usize, Case)>> = Mutex::new(cases.into_iter().enumerate().collect());
    let results: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..WORKERS.min(total) {
            s.spawn(|| loop {
                let Some((i, c)) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                let outcome = run_case(&c, fixtures.path());
                results.lock().unwrap().push((i, outcome));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let mut report = String::new();
    let mut failed = 0;
    for (_, o) in &results {
        let said = o
            .stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .or_else(|| o.stderr.lines().next())
            .unwrap_or_default();
        println!(
            "{group}/{}: exit {:?}, {:.2} s{}: {said}",
            o.name,
            o.code,
            o.took.as_secs_f64(),
            if o.problems.is_empty() { "" } else { " FAILED" }
        );
        if !o.problems.is_empty() {
            failed += 1;
            report.push_str(&format!(
                "\n- {}: {}\n    exit {:?} after {:.2} s\n    stderr: {}\n    stdout: {}",
                o.name,
                o.problems.join("; "),
                o.code,
                o.took.as_secs_f64(),
                o.stderr.trim_end().replace('\n', "\n            "),
                o.stdout.trim_end().replace('\n', "\n            "),
            ));
        }
    }
    println!(
        "{group}: {total} cases in {:.1} s, {failed} failed",
        started.elapsed().as_secs_f64()
    );
    assert!(
        failed == 0,
        "{group}: {failed} of {total} cases failed:{report}"
    );
}

/// Under CI the tools must be there; elsewhere a missing ffmpeg skips the group.
fn fixtures(group: &str, all: bool) -> Option<Fixtures> {
    require(&format!("bad_input::{group}"), &["ffmpeg"])
        .then(|| Fixtures::new(&format!("bad-{group}"), all))
}

/// The requests of the script reach `method` and stop at its failure: what follows is at most
/// a TEARDOWN of the session.
fn stops_at(method: &'static str, status: u16) -> impl Fn(&[SeenRequest]) -> Result<(), String> {
    move |seen| {
        let at = seen
            .iter()
            .position(|r| r.method == method && r.status == status)
            .ok_or_else(|| format!("no {method} answered {status}"))?;
        match seen[at + 1..].iter().find(|r| r.method != "TEARDOWN") {
            Some(r) => Err(format!("{} sent after {method} got {status}", r.method)),
            None => Ok(()),
        }
    }
}

/// The client sent `method` without credentials, once more with them after the 401, and
/// then gave up: nothing follows but a TEARDOWN.
fn auth_tried_once(method: &'static str) -> impl Fn(&[SeenRequest]) -> Result<(), String> {
    move |seen| {
        let tries: Vec<bool> = seen
            .iter()
            .filter(|r| r.method == method)
            .map(|r| r.authorization)
            .collect();
        if tries != [false, true] {
            return Err(format!(
                "expected {method}, then {method} once with Authorization"
            ));
        }
        let last = seen.iter().rposition(|r| r.method == method).unwrap_or(0);
        match seen[last + 1..].iter().find(|r| r.method != "TEARDOWN") {
            Some(r) => Err(format!("{} sent after the second 401", r.method)),
            None => Ok(()),
        }
    }
}

#[test]
fn bad_files() {
    let Some(fx) = fixtures("files", true) else {
        return;
    };
    let cases = vec![
        case(
            "push_missing_file",
            Setup::Nothing,
            &["push", "{dir}/missing.mp4", "{rtsp}"],
            1,
            &["{dir}/missing.mp4", "no such file"],
            QUICK,
        ),
        case(
            "push_empty_file",
            Setup::Nothing,
            &["push", "{dir}/empty.mp4", "{rtsp}"],
            1,
            &["empty.mp4"],
            QUICK,
        ),
        case(
            "push_text_file",
            Setup::Nothing,
            &["push", "{dir}/notes.txt", "{rtsp}"],
            1,
            &["notes.txt"],
            QUICK,
        ),
        case(
            "push_noise_file",
            Setup::Nothing,
            &["push", "{dir}/noise.mp4", "{rtmp}", "--codec", "copy"],
            1,
            &["noise.mp4"],
            QUICK,
        ),
        case(
            "push_directory",
            Setup::Nothing,
            &["push", "{dir}/adir.mp4", "{rtsp}"],
            1,
            &["adir.mp4", "directory"],
            QUICK,
        ),
        case(
            "push_path_under_a_file",
            Setup::Nothing,
            &["push", "/etc/passwd/in.mp4", "{rtsp}"],
            1,
            &["/etc/passwd/in.mp4", "not a directory"],
            QUICK,
        ),
        case(
            "push_mpeg4_with_copy",
            Setup::Nothing,
            &["push", "{dir}/mpeg4.mkv", "{rtsp}", "--codec", "copy"],
            1,
            &["mpeg4.mkv", "mpeg4", "H.264"],
            QUICK,
        ),
        case(
            "push_vp9_with_copy",
            Setup::Nothing,
            &["push", "{dir}/vp9.webm", "{rtmp}", "--codec", "copy"],
            1,
            &["vp9.webm", "vp9", "H.264"],
            QUICK,
        ),
        case(
            "push_audio_only",
            Setup::Nothing,
            &["push", "{dir}/audio.m4a", "{rtsp}"],
            1,
            &["audio.m4a", "no video"],
            QUICK,
        ),
        case(
            "push_audio_only_with_copy",
            Setup::Nothing,
            &["push", "{dir}/audio.m4a", "{rtmp}", "--codec", "copy"],
            1,
            &["audio.m4a", "no video"],
            QUICK,
        ),
        case(
            "push_truncated_without_index",
            Setup::Nothing,
            &["push", "{dir}/trunc_moov.mp4", "{rtsp}"],
            1,
            &["trunc_moov.mp4"],
            QUICK,
        ),
        // The index promises 60 frames, the file holds some 25: the push must not end as if
        // the input were complete. The server takes everything, so the file is what fails.
        case(
            "push_truncated_media_copy",
            rtsp(RtspScript::accept_all()),
            &["push", "{dir}/trunc_fast.mp4", "{rtsp}", "--codec", "copy"],
            1,
            &["trunc_fast.mp4"],
            8.0,
        ),
        case(
            "push_truncated_media_libx264",
            rtsp(RtspScript::accept_all()),
            &["push", "{dir}/trunc_fast.mp4", "{rtsp}"],
            1,
            &["trunc_fast.mp4"],
            8.0,
        ),
        case(
            "probe_missing_file",
            Setup::Nothing,
            &["probe", "{dir}/missing.mp4"],
            1,
            &["{dir}/missing.mp4", "no such file"],
            QUICK,
        ),
        case(
            "probe_empty_file",
            Setup::Nothing,
            &["probe", "{dir}/empty.mp4"],
            1,
            &["empty.mp4"],
            QUICK,
        ),
        case(
            "probe_text_file",
            Setup::Nothing,
            &["probe", "--json", "{dir}/notes.txt"],
            1,
            &["notes.txt"],
            QUICK,
        ),
        case(
            "probe_directory",
            Setup::Nothing,
            &["probe", "{dir}/adir.mp4"],
            1,
            &["adir.mp4", "directory"],
            QUICK,
        ),
        // Control cases: the same server lets the whole clip through, in both modes.
        case(
            "control_push_copy_to_accepting_server",
            rtsp(RtspScript::accept_all()),
            &["push", "{clip}", "{rtsp}", "--codec", "copy"],
            0,
            &[],
            8.0,
        )
        .with_check(|seen| {
            let methods: Vec<&str> = seen.iter().map(|r| r.method.as_str()).collect();
            match methods.as_slice() {
                ["OPTIONS", "ANNOUNCE", "SETUP", "RECORD", .., "TEARDOWN"] => Ok(()),
                _ => Err("not a whole RECORD session".into()),
            }
        }),
        case(
            "control_push_libx264_to_accepting_server",
            rtsp(RtspScript::accept_all()),
            &["push", "{clip}", "{rtsp}"],
            0,
            &[],
            8.0,
        ),
    ];
    run_group("files", &fx, cases);
}

#[test]
fn bad_options() {
    let Some(fx) = fixtures("options", false) else {
        return;
    };
    let usage = |name: &str, args: &[&str], names: &[&str]| {
        case(name, Setup::Nothing, args, 2, names, QUICK)
    };
    let refused = |name: &str, args: &[&str], names: &[&str]| {
        case(name, Setup::Nothing, args, 1, names, QUICK)
    };
    let cases = vec![
        usage(
            "push_unknown_option",
            &["push", "{clip}", "{rtsp}", "--bogus"],
            &["--bogus"],
        ),
        usage(
            "pull_unknown_option",
            &["pull", "{rtsp}", "--codec", "copy"],
            &["--codec"],
        ),
        usage("unknown_subcommand", &["serve", "{clip}"], &["serve"]),
        usage("push_without_url", &["push", "{clip}"], &["required"]),
        usage(
            "push_fps_not_a_number",
            &["push", "{clip}", "{rtsp}", "--fps", "abc"],
            &["--fps", "abc"],
        ),
        usage(
            "push_fps_zero",
            &["push", "{clip}", "{rtsp}", "--fps", "0"],
            &["--fps", "'0'"],
        ),
        usage(
            "push_fps_zero_denominator",
            &["push", "{clip}", "{rtsp}", "--fps", "30/0"],
            &["--fps", "30/0"],
        ),
        usage(
            "push_bitrate_not_a_number",
            &["push", "{clip}", "{rtsp}", "--bitrate", "fast"],
            &["--bitrate", "fast"],
        ),
        usage(
            "push_bitrate_zero",
            &["push", "{clip}", "{rtsp}", "--bitrate", "0"],
            &["--bitrate", "'0'"],
        ),
        usage(
            "push_bitrate_bad_suffix",
            &["push", "{clip}", "{rtsp}", "--bitrate", "2G"],
            &["--bitrate", "2G"],
        ),
        usage(
            "push_gop_not_a_number",
            &["push", "{clip}", "{rtsp}", "--gop", "x"],
            &["--gop", "'x'"],
        ),
        usage(
            "push_size_bad",
            &["push", "{clip}", "{rtsp}", "--size", "big"],
            &["--size", "big"],
        ),
        usage(
            "push_size_zero",
            &["push", "{clip}", "{rtsp}", "--size", "0x0"],
            &["--size", "0x0"],
        ),
        usage(
            "push_codec_unknown",
            &["push", "{clip}", "{rtsp}", "--codec", "vp9"],
            &["--codec", "vp9"],
        ),
        usage(
            "push_audio_mode_unknown",
            &["push", "{clip}", "{rtsp}", "--audio", "loud"],
            &["--audio", "loud"],
        ),
        usage(
            "push_transport_bogus",
            &["push", "{clip}", "{rtsp}", "--transport", "bogus"],
            &["--transport", "bogus"],
        ),
        usage(
            "pull_transport_bogus",
            &["pull", "{rtsp}", "--transport", "sctp"],
            &["--transport", "sctp"],
        ),
        usage(
            "push_reconnect_max_zero",
            &["push", "{clip}", "{rtsp}", "--reconnect-max", "0"],
            &["--reconnect-max", "'0'"],
        ),
        usage(
            "pull_timeout_not_a_number",
            &["pull", "{rtsp}", "--timeout", "soon"],
            &["--timeout", "soon"],
        ),
        usage(
            "pull_frames_not_a_number",
            &["pull", "{rtsp}", "--frames", "many"],
            &["--frames", "many"],
        ),
        // libx264's own names: refused like any other bad value, naming option and value
        // (not libx264's log line plus "Invalid argument").
        usage(
            "push_preset_bogus",
            &["push", "{clip}", "{rtsp}", "--preset", "bogus"],
            &["preset", "bogus"],
        ),
        usage(
            "push_tune_bogus",
            &["push", "{clip}", "{rtsp}", "--tune", "bogus"],
            &["tune", "bogus"],
        ),
        usage(
            "push_profile_bogus",
            &["push", "{clip}", "{rtsp}", "--profile", "bogus"],
            &["profile", "bogus"],
        ),
        refused(
            "push_loop_zero",
            &["push", "{clip}", "{rtsp}", "--loop", "0"],
            &["loop", "0"],
        ),
        refused(
            "push_rate_zero",
            &["push", "{clip}", "{rtsp}", "--rate", "0"],
            &["--rate", "0"],
        ),
        refused(
            "pull_timeout_zero",
            &["pull", "{rtsp}", "--timeout", "0"],
            &["--timeout", "0"],
        ),
        refused(
            "pull_frames_zero",
            &["pull", "{rtsp}", "--frames", "0"],
            &["--frames"],
        ),
        refused(
            "push_bitrate_with_copy",
            &[
                "push",
                "{clip}",
                "{rtsp}",
                "--codec",
                "copy",
                "--bitrate",
                "1M",
            ],
            &["bit rate", "copy"],
        ),
        refused(
            "push_audio_copy_without_audio",
            &["push", "{clip}", "{rtsp}", "--audio", "copy"],
            &["clip.mp4", "no audio"],
        ),
        refused(
            "push_audio_stream_missing",
            &["push", "{clip}", "{rtsp}", "--audio-stream", "3"],
            &["clip.mp4", "audio stream 3"],
        ),
        refused(
            "push_http_url",
            &["push", "{clip}", "http://user:s3cr3tpw@127.0.0.1:{port}/x"],
            &["unsupported", "http://127.0.0.1:{port}/x"],
        ),
        refused(
            "push_udp_url",
            &["push", "{clip}", "udp://user:s3cr3tpw@127.0.0.1:{port}"],
            &["unsupported", "udp://127.0.0.1:{port}"],
        ),
        refused(
            "pull_http_url",
            &["pull", "http://user:s3cr3tpw@127.0.0.1:{port}/x"],
            &["http", "127.0.0.1:{port}"],
        ),
        refused(
            "push_rtsp_url_without_host",
            &["push", "{clip}", "rtsp://user:s3cr3tpw@/live"],
            &["rtsp://", "host"],
        ),
        refused(
            "push_rtmp_url_without_host",
            &["push", "{clip}", "rtmp:///live/key"],
            &["rtmp:///live/key", "host"],
        ),
        refused(
            "pull_rtmp_url_without_host",
            &["pull", "rtmp:///live/key"],
            &["rtmp:///live/key", "host"],
        ),
        refused(
            "push_rtsp_port_out_of_range",
            &["push", "{clip}", "rtsp://user:s3cr3tpw@127.0.0.1:99999/x"],
            &["rtsp://127.0.0.1:99999/x", "port"],
        ),
        refused(
            "push_rtmp_port_out_of_range",
            &[
                "push",
                "{clip}",
                "rtmp://user:s3cr3tpw@127.0.0.1:99999/live/key",
            ],
            &["99999", "port"],
        ),
        refused(
            "pull_rtsp_port_out_of_range",
            &["pull", "rtsp://user:s3cr3tpw@127.0.0.1:99999/x"],
            &["99999", "port"],
        ),
        refused(
            "push_rtmp_without_stream_key",
            &[
                "push",
                "{clip}",
                "rtmp://user:s3cr3tpw@127.0.0.1:{port}/live",
            ],
            &["rtmp://127.0.0.1:{port}/live", "stream key"],
        ),
        refused(
            "pull_rtmp_without_stream_key",
            &["pull", "rtmp://user:s3cr3tpw@127.0.0.1:{port}/live"],
            &["rtmp://127.0.0.1:{port}/live", "stream key"],
        ),
        refused(
            "push_rtsps_over_udp",
            &[
                "push",
                "{clip}",
                "rtsps://user:s3cr3tpw@127.0.0.1:{port}/x",
                "--transport",
                "udp",
            ],
            &["rtsps://127.0.0.1:{port}/x", "udp"],
        ),
        refused(
            "pull_rtsps",
            &["pull", "rtsps://user:s3cr3tpw@127.0.0.1:{port}/x"],
            &["rtsps://127.0.0.1:{port}/x", "not supported"],
        ),
        refused(
            "push_tls_ca_missing",
            &[
                "push",
                "{clip}",
                "rtsps://user:s3cr3tpw@127.0.0.1:{port}/x",
                "--tls-ca",
                "{dir}/missing-ca.pem",
            ],
            &["{dir}/missing-ca.pem"],
        ),
        refused(
            "pull_tls_ca_missing",
            &[
                "pull",
                "rtmps://user:s3cr3tpw@127.0.0.1:{port}/live/key",
                "--tls-ca",
                "{dir}/missing-ca.pem",
            ],
            &["{dir}/missing-ca.pem"],
        ),
        refused(
            "push_tls_ca_not_pem",
            &[
                "push",
                "{clip}",
                "rtmps://user:s3cr3tpw@127.0.0.1:{port}/live/key",
                "--tls-ca",
                "{clip}",
            ],
            &["clip.mp4"],
        ),
        refused(
            "pull_framemd5_in_missing_dir",
            &["pull", "{rtsp}", "--framemd5", "{dir}/no/such/dir/f.md5"],
            &["{dir}/no/such/dir/f.md5"],
        ),
        refused(
            "pull_out_in_missing_dir",
            &["pull", "{rtmp}", "--out", "{dir}/no/such/dir/v.h264"],
            &["{dir}/no/such/dir/v.h264"],
        ),
        // The summary's path is checked before connecting: the error names it, not the
        // (refused) server.
        refused(
            "push_stats_json_in_missing_dir",
            &[
                "push",
                "{clip}",
                "{rtsp}",
                "--stats-json",
                "{dir}/no/such/dir/s.json",
            ],
            &["{dir}/no/such/dir/s.json"],
        ),
        refused(
            "pull_stats_json_in_missing_dir",
            &["pull", "{rtsp}", "--stats-json", "{dir}/no/such/dir/s.json"],
            &["{dir}/no/such/dir/s.json"],
        ),
    ];
    run_group("options", &fx, cases);
}

/// The RTSP statuses a scripted server answers each publisher request with (RFC 2326 §7.1.1).
const ANNOUNCE_STATUSES: &[u16] = &[
    400, 403, 404, 405, 406, 451, 453, 454, 455, 457, 459, 461, 500, 501, 503, 505,
];
const OPTIONS_STATUSES: &[u16] = &[400, 403, 404, 500, 503];
const SETUP_STATUSES: &[u16] = &[403, 404, 453, 454, 455, 459, 461, 500, 503];
const RECORD_STATUSES: &[u16] = &[403, 404, 454, 455, 457, 500, 503];

fn status_cases(method: &'static str, statuses: &[u16]) -> Vec<Case> {
    statuses
        .iter()
        .map(|&status| {
            let code = status.to_string();
            let reason = mpegcoder_protocol_tests::fake_server::rtsp_reason(status);
            case(
                &format!("push_{}_{status}", method.to_lowercase()),
                rtsp(RtspScript::fail(method, status)),
                &["push", "{clip}", "{rtsp}", "--codec", "copy"],
                1,
                &[method, &code, reason, "rtsp://127.0.0.1:{port}/live"],
                QUICK,
            )
            .with_check(stops_at(method, status))
        })
        .collect()
}

#[test]
fn rtsp_scripted_server() {
    let Some(fx) = fixtures("rtsp", false) else {
        return;
    };
    let mut cases = Vec::new();
    cases.extend(status_cases("OPTIONS", OPTIONS_STATUSES));
    cases.extend(status_cases("ANNOUNCE", ANNOUNCE_STATUSES));
    cases.extend(status_cases("SETUP", SETUP_STATUSES));
    cases.extend(status_cases("RECORD", RECORD_STATUSES));
    let copy = ["push", "{clip}", "{rtsp}", "--codec", "copy"];
    let rtsp_url = "rtsp://127.0.0.1:{port}/live";
    cases.extend([
        // Credentials sent once, refused again: final, without a third try.
        case(
            "push_announce_401_wrong_credentials",
            rtsp(RtspScript::fail("ANNOUNCE", 401)),
            &copy,
            1,
            &["ANNOUNCE", "401", "credentials rejected", rtsp_url],
            QUICK,
        )
        .with_check(auth_tried_once("ANNOUNCE")),
        case(
            "push_announce_401_digest_wrong_credentials",
            rtsp(
                RtspScript::fail("ANNOUNCE", 401)
                    .with_challenge(Some(r#"Digest realm="fake", nonce="0a1b2c3d4e5f""#)),
            ),
            &copy,
            1,
            &["ANNOUNCE", "401", "credentials rejected"],
            QUICK,
        )
        .with_check(auth_tried_once("ANNOUNCE")),
        case(
            "push_options_401_wrong_credentials",
            rtsp(RtspScript::fail("OPTIONS", 401)),
            &copy,
            1,
            &["OPTIONS", "401", "credentials rejected"],
            QUICK,
        )
        .with_check(auth_tried_once("OPTIONS")),
        case(
            "push_setup_401_wrong_credentials",
            rtsp(RtspScript::fail("SETUP", 401)),
            &copy,
            1,
            &["SETUP", "401", "credentials rejected"],
            QUICK,
        )
        .with_check(auth_tried_once("SETUP")),
        // A stale nonce is worth another try, but not forever.
        case(
            "push_announce_401_stale_nonce_forever",
            rtsp(RtspScript::fail("ANNOUNCE", 401).with_challenge(Some(
                r#"Digest realm="fake", nonce="0a1b2c3d4e5f", stale=true"#,
            ))),
            &copy,
            1,
            &["ANNOUNCE", "401"],
            QUICK,
        )
        .with_check(|seen| {
            let n = seen.iter().filter(|r| r.method == "ANNOUNCE").count();
            (2..=4)
                .contains(&n)
                .then_some(())
                .ok_or_else(|| format!("{n} ANNOUNCEs"))
        }),
        case(
            "push_announce_401_without_credentials",
            rtsp(RtspScript::fail("ANNOUNCE", 401)),
            &[
                "push",
                "{clip}",
                "rtsp://127.0.0.1:{port}/live",
                "--codec",
                "copy",
            ],
            1,
            &["ANNOUNCE", "401", "credentials", rtsp_url],
            QUICK,
        ),
        case(
            "push_announce_401_without_challenge",
            rtsp(RtspScript::fail("ANNOUNCE", 401).with_challenge(None)),
            &copy,
            1,
            &["authentication", "no WWW-Authenticate", rtsp_url],
            QUICK,
        ),
        case(
            "push_announce_401_unknown_scheme",
            rtsp(RtspScript::fail("ANNOUNCE", 401).with_challenge(Some("Negotiate abc"))),
            &copy,
            1,
            &["authentication", "Negotiate"],
            QUICK,
        ),
        // A server that does not do OPTIONS is fine; its ANNOUNCE refusal is what counts.
        case(
            "push_options_501_then_announce_404",
            rtsp(RtspScript::fail("OPTIONS", 501).with_status("ANNOUNCE", 404)),
            &copy,
            1,
            &["ANNOUNCE", "404", rtsp_url],
            QUICK,
        ),
        case(
            "push_libx264_announce_403",
            rtsp(RtspScript::fail("ANNOUNCE", 403)),
            &["push", "{clip}", "{rtsp}"],
            1,
            &["ANNOUNCE", "403", rtsp_url],
            QUICK,
        ),
        case(
            "push_udp_setup_461",
            rtsp(RtspScript::fail("SETUP", 461)),
            &[
                "push",
                "{clip}",
                "{rtsp}",
                "--codec",
                "copy",
                "--transport",
                "udp",
            ],
            1,
            &["SETUP", "461", rtsp_url],
            QUICK,
        ),
        case(
            "push_reconnect_announce_404_is_final",
            rtsp(RtspScript::fail("ANNOUNCE", 404)),
            &["push", "{clip}", "{rtsp}", "--codec", "copy", "--reconnect"],
            1,
            &["ANNOUNCE", "404", rtsp_url],
            QUICK,
        ),
        case(
            "push_reconnect_announce_401_is_final",
            rtsp(RtspScript::fail("ANNOUNCE", 401)),
            &["push", "{clip}", "{rtsp}", "--codec", "copy", "--reconnect"],
            1,
            &["ANNOUNCE", "401", rtsp_url],
            QUICK,
        ),
        // One request is outstanding at a time: a reply with another CSeq is the server's
        // mistake, reported at once (not after the request's timeout).
        case(
            "push_reply_with_wrong_cseq",
            rtsp(RtspScript::accept_all().with_cseq_offset(7)),
            &copy,
            1,
            &["CSeq", "OPTIONS", rtsp_url],
            QUICK,
        ),
        case(
            "pull_describe_404",
            rtsp(RtspScript::fail("DESCRIBE", 404)),
            &["pull", "{rtsp}", "--timeout", "2"],
            1,
            &["DESCRIBE", "404", rtsp_url],
            QUICK,
        ),
        case(
            "pull_describe_401_wrong_credentials",
            rtsp(RtspScript::fail("DESCRIBE", 401)),
            &["pull", "{rtsp}", "--timeout", "2"],
            1,
            &["DESCRIBE", "401", rtsp_url],
            QUICK,
        ),
        case(
            "pull_describe_500",
            rtsp(RtspScript::fail("DESCRIBE", 500)),
            &["pull", "{rtsp}", "--timeout", "2"],
            1,
            &["DESCRIBE", "500", rtsp_url],
            QUICK,
        ),
    ]);
    run_group("rtsp", &fx, cases);
}

/// `n` bytes of no protocol (a fixed xorshift sequence), never starting with 3 (the RTMP
/// version byte) or a letter.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    let mut v: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    v[0] = 0xfe;
    v
}

#[test]
fn rtmp_scripted_server() {
    let Some(fx) = fixtures("rtmp", false) else {
        return;
    };
    let url = "rtmp://127.0.0.1:{port}/live/key";
    let push = ["push", "{clip}", "{rtmp}", "--codec", "copy"];
    let pull = ["pull", "{rtmp}", "--timeout", "2"];
    let cases = vec![
        case(
            "push_close_after_handshake",
            server(Behaviour::RtmpCloseAfterHandshake),
            &push,
            1,
            &["closed", "connect", url],
            QUICK,
        ),
        case(
            "push_libx264_close_after_handshake",
            server(Behaviour::RtmpCloseAfterHandshake),
            &["push", "{clip}", "{rtmp}"],
            1,
            &["closed", "connect", url],
            QUICK,
        ),
        case(
            "push_silent_after_handshake",
            server(Behaviour::RtmpSilentAfterHandshake),
            &push,
            1,
            &["timed out", "connect", url],
            STEP_TIMEOUT,
        ),
        case(
            "pull_close_after_handshake",
            server(Behaviour::RtmpCloseAfterHandshake),
            &pull,
            1,
            &["closed", "connect", url],
            QUICK,
        ),
        // `--timeout 2` bounds the setup of a pull too.
        case(
            "pull_silent_after_handshake",
            server(Behaviour::RtmpSilentAfterHandshake),
            &pull,
            1,
            &["timed out", "connect", url],
            PULL_TIMEOUT_2,
        ),
    ];
    run_group("rtmp", &fx, cases);
}

/// A server of another kind, or none, on the port: for push and pull over RTSP and RTMP, a
/// refused connection, a server that accepts and says nothing, one that closes at once, and
/// replies in other protocols (an SSH banner, an HTTP reply, bytes of no protocol).
#[test]
fn refused_silent_and_garbage_servers() {
    let Some(fx) = fixtures("unresponsive", false) else {
        return;
    };
    let ssh = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".to_vec();
    let http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n".to_vec();
    let rtsp_url = "rtsp://127.0.0.1:{port}/live";
    let rtmp_url = "rtmp://127.0.0.1:{port}/live/key";
    let rtsp_push = ["push", "{clip}", "{rtsp}", "--codec", "copy"];
    let rtsp_pull = ["pull", "{rtsp}", "--timeout", "2"];
    let rtmp_push = ["push", "{clip}", "{rtmp}", "--codec", "copy"];
    let rtmp_pull = ["pull", "{rtmp}", "--timeout", "2"];
    let cases = vec![
        // RTSP push: the publisher's own parser names what arrived.
        case(
            "rtsp_push_refused",
            Setup::Nothing,
            &rtsp_push,
            1,
            &["refused", rtsp_url],
            QUICK,
        ),
        case(
            "rtsp_push_libx264_refused",
            Setup::Nothing,
            &["push", "{clip}", "{rtsp}"],
            1,
            &["refused", rtsp_url],
            QUICK,
        ),
        case(
            "rtsp_push_silent",
            server(Behaviour::Silent),
            &rtsp_push,
            1,
            &["timed out", "OPTIONS", rtsp_url],
            STEP_TIMEOUT,
        ),
        case(
            "rtsp_push_close_after_accept",
            server(Behaviour::CloseAfterAccept),
            &rtsp_push,
            1,
            &["closed", "OPTIONS", rtsp_url],
            QUICK,
        ),
        case(
            "rtsp_push_ssh_banner",
            server(Behaviour::Banner(ssh.clone())),
            &rtsp_push,
            1,
            &["SSH-2.0", rtsp_url],
            QUICK,
        ),
        case(
            "rtsp_push_ssh_answering",
            server(Behaviour::Garbage(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec())),
            &rtsp_push,
            1,
            &["SSH-2.0", rtsp_url],
            QUICK,
        ),
        case(
            "rtsp_push_http_reply",
            server(Behaviour::Garbage(http.clone())),
            &rtsp_push,
            1,
            &["HTTP/1.1", rtsp_url],
            QUICK,
        ),
        case(
            "rtsp_push_random_bytes",
            server(Behaviour::Garbage(noise(64))),
            &rtsp_push,
            1,
            &["\\xfe", rtsp_url],
            QUICK,
        ),
        // RTSP pull (retina's parser).
        case(
            "rtsp_pull_refused",
            Setup::Nothing,
            &rtsp_pull,
            1,
            &["refused", rtsp_url],
            QUICK,
        ),
        // `--timeout 2` bounds the whole wait for video, DESCRIBE included.
        case(
            "rtsp_pull_silent",
            server(Behaviour::Silent),
            &rtsp_pull,
            1,
            &["DESCRIBE", "timed out", rtsp_url],
            PULL_TIMEOUT_2,
        ),
        case(
            "rtsp_pull_close_after_accept",
            server(Behaviour::CloseAfterAccept),
            &rtsp_pull,
            1,
            &["DESCRIBE", rtsp_url],
            QUICK,
        ),
        case(
            "rtsp_pull_ssh_banner",
            server(Behaviour::Banner(ssh.clone())),
            &rtsp_pull,
            1,
            &["DESCRIBE", rtsp_url],
            QUICK,
        ),
        case(
            "rtsp_pull_http_reply",
            server(Behaviour::Garbage(http.clone())),
            &rtsp_pull,
            1,
            &["DESCRIBE", rtsp_url],
            QUICK,
        ),
        case(
            "rtsp_pull_random_bytes",
            server(Behaviour::Garbage(noise(64))),
            &rtsp_pull,
            1,
            &["DESCRIBE", rtsp_url],
            QUICK,
        ),
        // RTMP push and pull: the handshake's first byte is not 3.
        case(
            "rtmp_push_refused",
            Setup::Nothing,
            &rtmp_push,
            1,
            &["refused", rtmp_url],
            QUICK,
        ),
        case(
            "rtmp_push_libx264_refused",
            Setup::Nothing,
            &["push", "{clip}", "{rtmp}"],
            1,
            &["refused", rtmp_url],
            QUICK,
        ),
        case(
            "rtmp_push_silent",
            server(Behaviour::Silent),
            &rtmp_push,
            1,
            &["timed out", "handshake", rtmp_url],
            STEP_TIMEOUT,
        ),
        case(
            "rtmp_push_close_after_accept",
            server(Behaviour::CloseAfterAccept),
            &rtmp_push,
            1,
            &["closed", "handshake", rtmp_url],
            QUICK,
        ),
        case(
            "rtmp_push_ssh_banner",
            server(Behaviour::Banner(ssh.clone())),
            &rtmp_push,
            1,
            &["handshake", rtmp_url],
            QUICK,
        ),
        case(
            "rtmp_push_http_reply",
            server(Behaviour::Garbage(http.clone())),
            &rtmp_push,
            1,
            &["handshake", rtmp_url],
            QUICK,
        ),
        case(
            "rtmp_push_random_bytes",
            server(Behaviour::Garbage(noise(64))),
            &rtmp_push,
            1,
            &["handshake", rtmp_url],
            QUICK,
        ),
        case(
            "rtmp_pull_refused",
            Setup::Nothing,
            &rtmp_pull,
            1,
            &["refused", rtmp_url],
            QUICK,
        ),
        // `--timeout 2` bounds the handshake of a pull too.
        case(
            "rtmp_pull_silent",
            server(Behaviour::Silent),
            &rtmp_pull,
            1,
            &["timed out", "handshake", rtmp_url],
            PULL_TIMEOUT_2,
        ),
        case(
            "rtmp_pull_close_after_accept",
            server(Behaviour::CloseAfterAccept),
            &rtmp_pull,
            1,
            &["closed", "handshake", rtmp_url],
            QUICK,
        ),
        case(
            "rtmp_pull_ssh_banner",
            server(Behaviour::Banner(ssh)),
            &rtmp_pull,
            1,
            &["handshake", rtmp_url],
            QUICK,
        ),
        case(
            "rtmp_pull_http_reply",
            server(Behaviour::Garbage(http)),
            &rtmp_pull,
            1,
            &["handshake", rtmp_url],
            QUICK,
        ),
        case(
            "rtmp_pull_random_bytes",
            server(Behaviour::Garbage(noise(64))),
            &rtmp_pull,
            1,
            &["handshake", rtmp_url],
            QUICK,
        ),
    ];
    run_group("unresponsive", &fx, cases);
}

#[test]
fn fixtures_are_what_the_cases_say() {
    // The bad files must be bad in the way their cases assume, checked with ffprobe where it
    // matters (a case against a file that is accidentally fine would test nothing).
    if !require("bad_input::fixtures", &["ffmpeg", "ffprobe"]) {
        return;
    }
    let fx = Fixtures::new("bad-fixtures", true);
    let codec = |name: &str| -> String {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=codec_name", "-of", "csv=p=0"])
            .arg(fx.path().join(name))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(codec("clip.mp4"), "h264");
    assert_eq!(codec("mpeg4.mkv"), "mpeg4");
    assert_eq!(codec("vp9.webm"), "vp9");
    assert_eq!(codec("audio.m4a"), "", "audio.m4a has no video");
    assert_eq!(
        codec("trunc_fast.mp4"),
        "h264",
        "trunc_fast.mp4 keeps its index"
    );
    assert_eq!(codec("trunc_moov.mp4"), "", "trunc_moov.mp4 lost its index");
    let frames = framemd5(&fx.path().join("clip.mp4")).len();
    assert_eq!(frames, 60);
    let (decoded, errors) = framemd5_and_errors(&fx.path().join("trunc_fast.mp4"));
    assert!(
        !decoded.is_empty() && decoded.len() < 60,
        "trunc_fast.mp4 decodes {} frames; ffmpeg said: {errors}",
        decoded.len()
    );
}

#[test]
fn the_checks_catch_what_they_should() {
    let ok = "error: ANNOUNCE rtsp://127.0.0.1:1/live (CSeq 2): 404 Not Found\n";
    assert!(error_line_problems(ok, 1, &["announce", "404"]).is_empty());
    assert_eq!(error_line_problems(ok, 1, &["403"]).len(), 1);
    assert_eq!(error_line_problems(ok, 0, &[]).len(), 1);
    let two = format!("x264 [error]: invalid preset 'bogus'\n{ok}");
    assert_eq!(error_line_problems(&two, 1, &[]).len(), 1);
    let twice = format!("{ok}{ok}");
    assert_eq!(error_line_problems(&twice, 1, &[]).len(), 1);
    let usage = "error: invalid value 'x' for '--gop <GOP>': invalid digit\n\n  tip: a\n\
                 Usage: mpegcoder push\n\nFor more information, try '--help'.\n";
    assert!(error_line_problems(usage, 2, &["--gop", "'x'"]).is_empty());
    assert_eq!(error_line_problems(usage, 1, &[]).len(), 1);
    let repeated = "error: cannot open a.mp4: No such file: cannot open a.mp4\n";
    assert_eq!(error_line_problems(repeated, 1, &[]).len(), 1);
    let panicked = "thread 'main' panicked at src/x.rs:1:1:\nerror: boom\n";
    assert_eq!(error_line_problems(panicked, 1, &[]).len(), 2);
    assert!(error_line_problems("pushed 60 frames\n", 0, &[]).is_empty());
}
