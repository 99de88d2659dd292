//! The `mpegcoder` command: a thin dispatcher over one module per subcommand.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use push::PushExit;

mod logging;
mod probe;
mod pull;
mod push;
mod push_many;
mod signals;
mod tls;

/// Decode, encode, pace and publish video to RTSP/RTMP servers, and pull it back.
#[derive(Debug, Parser)]
#[command(name = "mpegcoder", version, about)]
struct Cli {
    /// More log output on stderr: -v shows every RTSP request and reply and every RTMP
    /// command and status, -vv traces everything. RUST_LOG, when set, takes precedence.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a video's parameters; optionally the MD5 of every decoded frame.
    Probe(probe::ProbeArgs),
    /// Publish a video to an RTSP or RTMP server, paced at real time.
    Push(push::PushArgs),
    /// Publish every stream of a list (one INPUT URL per line) from one process, each paced
    /// at real time with the push options given.
    PushMany(push_many::PushManyArgs),
    /// Receive a live stream over RTSP or RTMP; optionally hash every frame, save the video
    /// (Annex B) or its AAC audio (ADTS).
    Pull(pull::PullArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logging = logging::init(cli.verbose);
    let result = match &cli.command {
        Command::Probe(args) => probe::run(args).map(|()| PushExit::Done),
        Command::Pull(args) => pull::run(args, logging).map(|()| PushExit::Done),
        Command::Push(args) => push::run(args, logging),
        Command::PushMany(args) => push_many::run(args, logging),
    };
    match result {
        Ok(PushExit::Done) => ExitCode::SUCCESS,
        // Interrupted by SIGINT or SIGTERM after a clean teardown: the conventional
        // 128 + the signal's number.
        Ok(PushExit::Interrupted(code)) => ExitCode::from(code),
        // Its error lines are printed, one per destination (or stream of the list).
        Ok(PushExit::Failed) => ExitCode::FAILURE,
        // A closed pipe (`mpegcoder probe ... | head`) is not an error worth a message.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, joined by ": ". Every error of the project says
/// its own part once (a cause is either in its message or its `source()`, never both), so the
/// chain reads as one sentence without repetition.
fn one_line(e: &anyhow::Error) -> String {
    mpegcoder::types::error_chain(e.as_ref())
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_joins_the_chain() {
        let e = anyhow::Error::new(std::io::Error::other("disk full")).context("cannot write a");
        assert_eq!(super::one_line(&e), "cannot write a: disk full");
        let e = anyhow::Error::new(std::io::Error::other("line one\nline two"));
        assert_eq!(super::one_line(&e), "line one line two");
    }
}
