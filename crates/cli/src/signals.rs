//! SIGINT (Ctrl-C) and SIGTERM for a command that publishes: one thread waits for them, and
//! how it reacts depends on how far the command got.
//!
//! - **Opening** (the input is being opened, the session connecting): the first signal
//!   raises the stop flag, which the push pipeline checks while it connects, so it returns
//!   (with an interrupted summary, statistics written) well within a second. Opening the
//!   input can block where nothing can check a flag (FFmpeg's `avformat_open_input` on a
//!   FIFO that no writer has opened blocks inside open(2)); if the command has not returned
//!   [`GRACE`] after the signal, the process exits at once with 128 + the signal's number:
//!   nothing was sent yet, so there is nothing to tear down.
//! - **Running** (the session is up, [`Signals::running`]): the first signal only raises the
//!   stop flag: the command stops reading, sends what the encoder still holds, tears the
//!   session down and exits with 128 + the signal's number (130 for SIGINT, 143 for
//!   SIGTERM) after writing its statistics.
//! - A second signal, at any time, exits at once.
//!
//! The signals are blocked in every thread (the mask is inherited by the threads started
//! later: FFmpeg's, libx264's, the network runtime's) and taken with sigwait(2) by the
//! waiting thread, so no code runs in a signal handler and no system call of another thread
//! is interrupted. [`Signals::install`] must therefore run before the command starts any
//! thread.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, Signal};

/// How long a signal during the opening phase waits for the command to return by itself.
pub const GRACE: Duration = Duration::from_millis(500);

const OPENING: u8 = 0;
const RUNNING: u8 = 1;
const FINISHING: u8 = 2;

#[derive(Debug, Default)]
struct State {
    stop: AtomicBool,
    /// The number of the first signal received; 0 before.
    first: AtomicI32,
    phase: AtomicU8,
}

/// The stop flag and what the signals said; see the module documentation.
#[derive(Debug, Clone)]
pub struct Signals {
    state: Arc<State>,
}

impl Signals {
    /// Blocks SIGINT and SIGTERM in the calling thread (and so in every thread started from
    /// it later) and starts the thread that waits for them, in the opening phase. Call it
    /// before any other thread is started.
    pub fn install() -> Result<Signals> {
        let set = SigSet::from_iter([Signal::SIGINT, Signal::SIGTERM]);
        set.thread_block()
            .context("cannot block SIGINT and SIGTERM")?;
        let state = Arc::new(State::default());
        let waiter = Arc::clone(&state);
        std::thread::Builder::new()
            .name("mpegcoder-signals".into())
            .spawn(move || wait_for_signals(&set, &waiter))
            .context("cannot start the signal thread")?;
        Ok(Signals { state })
    }

    /// Raised by the first signal: the command should stop reading and end cleanly.
    pub fn stop_flag(&self) -> &AtomicBool {
        &self.state.stop
    }

    /// The session is up: from now on the first signal only raises the stop flag.
    pub fn running(&self) {
        let _ =
            self.state
                .phase
                .compare_exchange(OPENING, RUNNING, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The command has returned and is writing its results: the first signal no longer
    /// exits the process by itself.
    pub fn finishing(&self) {
        self.state.phase.store(FINISHING, Ordering::SeqCst);
    }

    /// The exit code a signal asks for, 128 + its number (130 for SIGINT, 143 for SIGTERM);
    /// `None` when none came.
    pub fn exit_code(&self) -> Option<u8> {
        code(self.state.first.load(Ordering::SeqCst))
    }
}

fn code(signal: i32) -> Option<u8> {
    (signal > 0).then(|| u8::try_from(128 + signal).unwrap_or(u8::MAX))
}

fn wait_for_signals(set: &SigSet, state: &Arc<State>) {
    loop {
        let Ok(signal) = set.wait() else {
            // sigwait fails only for an invalid set; there is nothing to wait for then.
            return;
        };
        let number = signal as i32;
        let exit = code(number).map_or(1, i32::from);
        if state
            .first
            .compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            eprintln!("error: interrupted twice, exiting without tearing down");
            std::process::exit(exit);
        }
        state.stop.store(true, Ordering::SeqCst);
        if state.phase.load(Ordering::SeqCst) == OPENING {
            let state = Arc::clone(state);
            // The waiting goes on (a second signal still exits at once) while this decides.
            let _ = std::thread::Builder::new()
                .name("mpegcoder-signal-grace".into())
                .spawn(move || {
                    std::thread::sleep(GRACE);
                    if state.phase.load(Ordering::SeqCst) == OPENING {
                        eprintln!("interrupted while opening the input; nothing was sent");
                        std::process::exit(exit);
                    }
                });
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exit_codes_are_128_plus_the_signal() {
        assert_eq!(super::code(2), Some(130));
        assert_eq!(super::code(15), Some(143));
        assert_eq!(super::code(0), None);
    }
}
