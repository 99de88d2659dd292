//! Where the blocking API's network work runs.
//!
//! The async types ([`crate::AsyncServer`], [`crate::AsyncClient`]) run on the caller's tokio
//! runtime. The blocking types ([`crate::Server`], [`crate::Client`]) are thin wrappers over
//! the same async code; their sessions run on one process-wide runtime of this module, built on
//! first use and never dropped (dropping a runtime inside async code panics; this one is never
//! dropped at all). A blocking call waits on its own thread for a result computed there, so it
//! works from plain threads and, without panicking, from inside another runtime (where it
//! blocks that runtime's thread for the duration of the call: async code should use the async
//! types instead).

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

static RUNTIME: OnceLock<Result<Handle, String>> = OnceLock::new();

/// The shared runtime's handle, built on first use: a current-thread runtime driven by one
/// thread of its own. Network sessions spend their time waiting, so one thread moves the bytes
/// of many; and a single thread wakes once per frame handed to it, where a work-stealing pool
/// wakes a second worker to look for work (measured: a third of a copy push's CPU).
pub(crate) fn handle() -> Result<&'static Handle, std::io::Error> {
    let built = RUNTIME.get_or_init(|| {
        let runtime: Runtime = Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("mpegcoder-net".into())
            // Never returns: the runtime lives as long as the process.
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .map_err(|e| e.to_string())?;
        Ok(handle)
    });
    match built {
        Ok(handle) => Ok(handle),
        Err(e) => Err(std::io::Error::other(format!(
            "cannot start the network runtime: {e}"
        ))),
    }
}

/// Runs `future` on the shared runtime and waits for its output on the calling thread.
pub(crate) fn run<F>(future: F) -> Result<F::Output, std::io::Error>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let task = handle()?.spawn(future);
    match wait(task) {
        Ok(output) => Ok(output),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(std::io::Error::other(
            "the network runtime is shutting down",
        )),
    }
}

/// Waits on the calling thread for a future that needs no runtime of its own (channel
/// operations, or a task's `JoinHandle`). Unlike `Runtime::block_on`, it does not panic when
/// the calling thread belongs to a tokio runtime.
pub(crate) fn wait<F: Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_from_a_plain_thread_and_from_inside_a_runtime() {
        let answer = run(async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            42
        })
        .expect("runs");
        assert_eq!(answer, 42);
        let outer = Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let inside = outer.block_on(async {
            // A blocking call from async code: it blocks this thread, but must not panic.
            run(async { 7 }).expect("runs")
        });
        assert_eq!(inside, 7);
    }
}
