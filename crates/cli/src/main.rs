//! The `mpegcoder` command: a thin dispatcher over one module per subcommand.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod probe;
mod push;

/// Decode, encode, pace and publish video to RTSP/RTMP servers, and pull it back.
#[derive(Debug, Parser)]
#[command(name = "mpegcoder", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a video's parameters; optionally the MD5 of every decoded frame.
    Probe(probe::ProbeArgs),
    /// Publish a video to an RTSP or RTMP server, paced at real time.
    Push(push::PushArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Probe(args) => probe::run(args),
        Command::Push(args) => match push::run(args) {
            // Interrupted by Ctrl-C after a clean teardown: the conventional 128 + SIGINT.
            Ok(true) => return ExitCode::from(130),
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`mpegcoder probe ... | head`) is not an error worth a message.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, joined by ": ".
            let line = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {line}");
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
