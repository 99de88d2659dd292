//! Running a publisher process under GNU time (`/usr/bin/time`): user and system CPU seconds
//! and peak resident set size, with a limit on how long it may run. A process that outlives
//! its limit is killed by PID (the measured process first, then `time` itself).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// GNU time's output format: user s, system s, max RSS KiB, wall s, exit status.
const TIME_FORMAT: &str = "mpegcoder-bench %U %S %M %e %x";

/// What GNU time measured of one process.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub sys_s: f64,
    /// Peak resident set size, KiB.
    pub max_rss_kib: u64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Exit status; `None` when a signal ended the process.
    pub exit_code: Option<i32>,
    /// The limit was reached and the process was killed.
    pub timed_out: bool,
}

impl Usage {
    /// User + system CPU seconds.
    pub fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }

    /// Parses the line [`TIME_FORMAT`] produces, anywhere in GNU time's output file.
    pub fn parse(text: &str) -> Option<Usage> {
        let line = text
            .lines()
            .rev()
            .find(|l| l.starts_with("mpegcoder-bench "))?;
        let f: Vec<&str> = line.split_whitespace().skip(1).collect();
        let terminated = text.contains("terminated by signal");
        Some(Usage {
            user_s: f.first()?.parse().ok()?,
            sys_s: f.get(1)?.parse().ok()?,
            max_rss_kib: f.get(2)?.parse().ok()?,
            wall_s: f.get(3)?.parse().ok()?,
            exit_code: if terminated {
                None
            } else {
                f.get(4).and_then(|v| v.parse().ok())
            },
            timed_out: false,
        })
    }
}

/// A process started under GNU time.
#[derive(Debug)]
pub struct Timed {
    child: Child,
    usage_file: PathBuf,
    /// The instant just before the process was spawned.
    pub spawned_at: Instant,
}

impl Timed {
    /// Starts `program args` under `time` (GNU time's path), stdout and stderr to `log`.
    pub fn spawn(time: &Path, program: &Path, args: &[String], log: &Path) -> Result<Timed> {
        let usage_file = log.with_extension("usage");
        let out = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(time);
        cmd.arg("-f")
            .arg(TIME_FORMAT)
            .arg("-o")
            .arg(&usage_file)
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let spawned_at = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {} {}", time.display(), program.display()))?;
        Ok(Timed {
            child,
            usage_file,
            spawned_at,
        })
    }

    /// Waits for the process to exit, at most `limit` from its start; kills it (by PID) when
    /// the limit passes. Returns what GNU time measured.
    pub fn wait(mut self, limit: Duration) -> Result<Usage> {
        let deadline = self.spawned_at + limit;
        let mut timed_out = false;
        loop {
            if self.child.try_wait()?.is_some() {
                break;
            }
            if Instant::now() >= deadline {
                timed_out = true;
                self.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&self.usage_file).unwrap_or_default();
        let Some(mut usage) = Usage::parse(&text) else {
            bail!(
                "GNU time wrote no usage to {} (output: {text:?})",
                self.usage_file.display()
            );
        };
        usage.timed_out = timed_out;
        Ok(usage)
    }

    /// GNU time's PID (the measured process is its child).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True once the process (GNU time, hence the measured process too) has exited.
    pub fn finished(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGINT to the measured process (the child of `time`), by its PID: a publisher's
    /// Ctrl-C, which ends its stream cleanly.
    pub fn interrupt(&self) {
        for grandchild in children(self.child.id()) {
            signal(grandchild, "INT");
        }
    }

    /// Kills the measured process (the child of `time`), then `time`, each by its PID.
    fn kill(&mut self) {
        let pid = self.child.id();
        for grandchild in children(pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &grandchild.to_string()])
                .status();
        }
        // `time` reports the killed process and exits by itself; make sure it does.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// The head of an `ffmpeg -re` copy push of the clip's video: everything before the output's
/// format options and URL.
pub fn ffmpeg_copy_head(clip: &Path, loglevel: &str) -> Vec<String> {
    let clip = clip.display().to_string();
    let head = [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        loglevel,
        "-re",
        "-i",
        &clip,
    ];
    head.iter()
        .chain(&["-map", "0:v:0", "-c:v", "copy"])
        .map(|s| s.to_string())
        .collect()
}

/// Sends signal `name` (`INT`, `KILL`, ...) to process `pid`; true when it was delivered.
pub fn signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits for `child` to exit, at most `limit`; `None` when it is still running.
pub fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => return None,
        }
    }
}

/// Ends `child` the way a user would: SIGINT (Ctrl-C) by its PID, then SIGKILL when it is
/// still running after `grace`. Returns its exit status (`None` when even SIGKILL did not
/// end it).
pub fn interrupt_child(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    signal(child.id(), "INT");
    if let Some(status) = wait_for_exit(child, grace) {
        return Some(status);
    }
    let _ = child.kill();
    wait_for_exit(child, Duration::from_secs(5))
}

/// A child process that is killed (by its PID) when the guard is dropped, so an error in the
/// bench does not leave publishers running.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The last `n` non-empty lines of the file at `path`.
pub fn tail_lines(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<String> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// The PIDs of `pid`'s children, from /proc.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The 1-minute load average from /proc/loadavg.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gnu_time_output() {
        let u = Usage::parse("mpegcoder-bench 0.12 0.03 41236 20.05 0\n").expect("parses");
        assert_eq!(u.max_rss_kib, 41236);
        assert!((u.cpu_s() - 0.15).abs() < 1e-9);
        assert_eq!(u.exit_code, Some(0));
        let killed = "Command terminated by signal 9\nmpegcoder-bench 1.00 0.00 1000 3.00 0\n";
        assert_eq!(Usage::parse(killed).expect("parses").exit_code, None);
        let failed = "Command exited with non-zero status 1\nmpegcoder-bench 0 0 900 0.01 1\n";
        assert_eq!(Usage::parse(failed).expect("parses").exit_code, Some(1));
        assert!(Usage::parse("garbage").is_none());
    }
}
