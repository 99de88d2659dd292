//! A precise timer for async code: [`sleep_until_async`] is a future woken by one shared
//! thread that sleeps with the OS until the earliest deadline registered. Runtime timers fire
//! on a coarse wheel (tokio's has 1 ms slots and rounds up), which is too coarse for pacing
//! frames to a fraction of a millisecond; spinning to close the gap costs a core. This thread
//! wakes within the kernel's timer slack of the deadline (tens of microseconds) without
//! spinning, and any executor can await the future (it needs no runtime).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Instant;

#[derive(Default)]
struct State {
    /// Deadlines with the id of their sleep; stale entries (a sleep that ended) are skipped.
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    wakers: HashMap<u64, Waker>,
    next_id: u64,
}

struct Timer {
    state: Mutex<State>,
    changed: Condvar,
}

impl Timer {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; keep going with the state if it did.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run(&self) {
        let mut due: Vec<Waker> = Vec::new();
        let mut state = self.lock();
        loop {
            let now = Instant::now(); // the clock module's timer: it reads the clock to wait
            while let Some(&Reverse((at, id))) = state.heap.peek() {
                if at > now {
                    break;
                }
                state.heap.pop();
                if let Some(w) = state.wakers.remove(&id) {
                    due.push(w);
                }
            }
            if !due.is_empty() {
                drop(state);
                due.drain(..).for_each(Waker::wake);
                state = self.lock();
                continue;
            }
            state = match state.heap.peek() {
                None => self.changed.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(&Reverse((at, _))) => {
                    let wait = at.saturating_duration_since(now);
                    self.changed
                        .wait_timeout(state, wait)
                        .map(|(s, _)| s)
                        .unwrap_or_else(|p| p.into_inner().0)
                }
            };
        }
    }
}

static TIMER: OnceLock<Option<&'static Timer>> = OnceLock::new();

/// The shared timer, its thread started on first use; `None` if the thread could not start.
fn timer() -> Option<&'static Timer> {
    *TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }));
        thread::Builder::new()
            .name("mpegcoder-timer".into())
            .spawn(move || timer.run())
            .ok()
            .map(|_| timer)
    })
}

/// A future that completes at `deadline` (at once for a past one), woken by the shared precise
/// timer thread. Works under any executor. If the timer thread cannot start, it falls back to
/// waking itself at once and polling again, which is correct but busy.
pub fn sleep_until_async(deadline: Instant) -> PreciseSleep {
    PreciseSleep { deadline, id: None }
}

/// The future of [`sleep_until_async`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct PreciseSleep {
    deadline: Instant,
    id: Option<u64>,
}

impl PreciseSleep {
    /// The instant it completes at.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Future for PreciseSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.unregister();
            return Poll::Ready(());
        }
        let Some(timer) = timer() else {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        };
        let mut state = timer.lock();
        match self.id {
            Some(id) => {
                state.wakers.insert(id, cx.waker().clone());
            }
            None => {
                let id = state.next_id;
                state.next_id = state.next_id.wrapping_add(1);
                let earliest = state
                    .heap
                    .peek()
                    .is_none_or(|&Reverse((at, _))| self.deadline < at);
                state.heap.push(Reverse((self.deadline, id)));
                state.wakers.insert(id, cx.waker().clone());
                self.id = Some(id);
                if earliest {
                    timer.changed.notify_one();
                }
            }
        }
        Poll::Pending
    }
}

impl PreciseSleep {
    fn unregister(&mut self) {
        if let (Some(id), Some(timer)) = (self.id.take(), timer()) {
            timer.lock().wakers.remove(&id);
        }
    }
}

impl Drop for PreciseSleep {
    fn drop(&mut self) {
        self.unregister();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn completes_at_the_deadline_in_any_order() {
        let start = Instant::now();
        let deadlines: Vec<Instant> = [30u64, 10, 20, 0]
            .iter()
            .map(|ms| start + Duration::from_millis(*ms))
            .collect();
        let handles: Vec<_> = deadlines
            .iter()
            .map(|&d| {
                thread::spawn(move || {
                    futures_lite_block_on(sleep_until_async(d));
                    Instant::now()
                })
            })
            .collect();
        for (h, d) in handles.into_iter().zip(deadlines) {
            let woke = h.join().expect("no panic");
            assert!(woke >= d, "woke before its deadline");
        }
    }

    /// A minimal executor for the test: poll, park until woken.
    fn futures_lite_block_on<F: Future>(f: F) -> F::Output {
        use std::sync::Arc;
        use std::task::Wake;
        struct Unpark(thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            thread::park();
        }
    }
}
