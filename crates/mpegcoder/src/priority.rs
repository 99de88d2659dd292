//! Background work yields the CPU to the thread that sends frames on time.
//!
//! Decoding and libx264 encoding keep both cores of a small machine busy in bursts; a sending
//! thread that wakes for its deadline then waits for a core behind them, and the frame leaves
//! milliseconds late. Linux keeps the nice value per thread and a new thread inherits its
//! creator's (sched(7), setpriority(2) NOTES), so a thread that lowers itself before it opens
//! the decoder or the encoder lowers FFmpeg's and libx264's worker threads too, while the
//! sending thread keeps the normal priority. Raising a nice value back needs privileges, so
//! only threads that do nothing else are lowered.

/// How much the background threads are lowered: nice +5, about a third of a normal thread's
/// CPU weight when both want the same core.
pub const BACKGROUND_NICE: i32 = 5;

/// Lowers the calling thread's priority by [`BACKGROUND_NICE`] (a no-op where it cannot).
pub fn lower_current_thread() {
    #[cfg(target_os = "linux")]
    {
        // `None` means the calling thread on Linux, whose nice value is per thread.
        let current = rustix::process::getpriority_process(None).unwrap_or(0);
        // Failing only costs timing precision: ignore it.
        let _ = rustix::process::setpriority_process(None, current + BACKGROUND_NICE);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn lowers_only_the_calling_thread_and_the_threads_it_creates() {
        let before = rustix::process::getpriority_process(None).unwrap();
        let (own, child) = std::thread::spawn(|| {
            super::lower_current_thread();
            let own = rustix::process::getpriority_process(None).unwrap();
            let child = std::thread::spawn(|| rustix::process::getpriority_process(None).unwrap())
                .join()
                .unwrap();
            (own, child)
        })
        .join()
        .unwrap();
        let expected = (before + super::BACKGROUND_NICE).min(19);
        assert_eq!(own, expected);
        assert_eq!(child, expected, "new threads inherit the lowered value");
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), before);
    }
}
