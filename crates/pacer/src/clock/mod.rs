//! The edge where time is read: the [`Clock`] trait, a monotonic clock with a precise
//! [`sleep_until`], a [`VirtualClock`] for tests and simulations, and [`serve_blocking`], the
//! schedule → sleep → send → report loop body of a blocking sender thread.
//!
//! This is the only module of the crate that reads the system clock; [`sleep_until_async`]
//! (its `timer` part) is the precise wait for async senders.

use std::hint;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::pacer::{Decision, Pacer};

mod timer;
pub use timer::{sleep_until_async, PreciseSleep};

/// A source of monotonic time that can also wait.
pub trait Clock {
    /// The current instant; never earlier than a previous call.
    fn now(&self) -> Instant;
    /// Returns once [`Clock::now`] has reached `deadline` (at once if it has already).
    fn sleep_until(&self, deadline: Instant);
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn sleep_until(&self, deadline: Instant) {
        (**self).sleep_until(deadline)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn sleep_until(&self, deadline: Instant) {
        (**self).sleep_until(deadline)
    }
}

/// How [`sleep_until_with`] splits a wait: an OS sleep until `margin` before the deadline,
/// then `yield_now` until `spin` before it, then a busy spin. The OS sleep alone overshoots by
/// the kernel's timer slack plus the wake-up latency (about 50–150 µs on an idle Linux box);
/// the tail absorbs that.
///
/// Yielding saves CPU but on a busy machine `yield_now` can hand the core to another process
/// for a whole time slice (milliseconds), while a thread that just woke from a sleep and spins
/// keeps it; so the default tail spins only (`spin == margin`).
///
/// Build it with [`SleepTail::new`], or from [`SleepTail::DEFAULT`] with the `with_*` setters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SleepTail {
    /// The OS sleep ends this long before the deadline.
    pub margin: Duration,
    /// The last this long is a busy spin (`std::hint::spin_loop`) instead of yields.
    pub spin: Duration,
}

impl SleepTail {
    /// The default tail: OS sleep until 1 ms before the deadline, then spin. Costs up to 1 ms
    /// of busy CPU per wait (3 % of a core at 30 frames per second). On a 2-core Linux VM the
    /// OS sleep alone overshot by 140–160 µs typically (p99 ≈ 250 µs); with this tail the
    /// wake-up error measured p50 ≈ 1 µs, p99 15–35 µs, with rare millisecond outliers when
    /// another process takes the core (see `benches/sleep_accuracy.rs`).
    ///
    /// No user-space tail helps when the machine is oversubscribed (more runnable threads than
    /// cores): the scheduler then preempts the sender for milliseconds. Give the sending thread
    /// a real-time priority there (e.g. run the process under `chrt -f 50`).
    pub const DEFAULT: SleepTail = SleepTail {
        margin: Duration::from_millis(1),
        spin: Duration::from_millis(1),
    };
    /// A plain OS sleep, no tail: no busy CPU, but the kernel's wake-up latency as overshoot.
    pub const NONE: SleepTail = SleepTail {
        margin: Duration::ZERO,
        spin: Duration::ZERO,
    };

    /// A tail that stops the OS sleep `margin` before the deadline and spins the last `spin`.
    #[must_use]
    pub const fn new(margin: Duration, spin: Duration) -> SleepTail {
        SleepTail { margin, spin }
    }

    /// Sets how long before the deadline the OS sleep ends.
    #[must_use]
    pub const fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Sets how long before the deadline yielding gives way to a busy spin.
    #[must_use]
    pub const fn with_spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }
}

impl Default for SleepTail {
    fn default() -> Self {
        SleepTail::DEFAULT
    }
}

/// Sleeps the current thread until `deadline` precisely, with [`SleepTail::DEFAULT`].
pub fn sleep_until(deadline: Instant) {
    sleep_until_with(deadline, SleepTail::DEFAULT);
}

/// Sleeps the current thread until `deadline`: an OS sleep until `tail.margin` before it, then
/// yields, then a busy spin for the last `tail.spin`. Returns at once for a past deadline.
pub fn sleep_until_with(deadline: Instant, tail: SleepTail) {
    loop {
        let now = Instant::now(); // the clock module: the one place that reads the clock
        let left = deadline.saturating_duration_since(now);
        if left.is_zero() {
            return;
        }
        if left > tail.margin {
            thread::sleep(left.saturating_sub(tail.margin));
        } else if left > tail.spin {
            thread::yield_now();
        } else {
            hint::spin_loop();
        }
    }
}

/// For async callers: the instant to hand to a runtime timer for a frame due to leave at
/// `deadline`, `granularity` early. Runtime timers fire on a coarse wheel (tokio's is 1 ms, and
/// it rounds up), so sleep until this instant with the runtime, then finish with a short
/// yield loop until `deadline`; see the crate documentation for the full recipe.
#[must_use]
pub fn coarse_wake(deadline: Instant, granularity: Duration) -> Instant {
    deadline.checked_sub(granularity).unwrap_or(deadline)
}

/// The system's monotonic clock (`std::time::Instant`) with the precise [`sleep_until_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonotonicClock {
    tail: SleepTail,
}

impl MonotonicClock {
    /// A monotonic clock sleeping with [`SleepTail::DEFAULT`].
    pub const fn new() -> MonotonicClock {
        MonotonicClock {
            tail: SleepTail::DEFAULT,
        }
    }

    /// A monotonic clock sleeping with the given tail.
    #[must_use]
    pub const fn with_tail(tail: SleepTail) -> MonotonicClock {
        MonotonicClock { tail }
    }

    /// The sleep tail in use.
    pub const fn tail(&self) -> SleepTail {
        self.tail
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Instant {
        Instant::now() // the clock module: the one place that reads the clock
    }

    fn sleep_until(&self, deadline: Instant) {
        sleep_until_with(deadline, self.tail);
    }
}

/// A clock whose time moves only when told ([`VirtualClock::advance`],
/// [`VirtualClock::advance_to`]) or when something sleeps on it, which jumps straight to the
/// deadline. Clones share the same time, so a test can hand one to a thread and steer it from
/// another. Hours of virtual time run in milliseconds.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    origin: Instant,
    elapsed_ns: Arc<AtomicU64>,
}

impl VirtualClock {
    /// A virtual clock starting at the current real instant (any instant would do; a real one
    /// keeps virtual and real instants comparable).
    pub fn new() -> VirtualClock {
        VirtualClock::starting_at(Instant::now()) // the clock module: reads the clock once
    }

    /// A virtual clock starting at `origin`.
    pub fn starting_at(origin: Instant) -> VirtualClock {
        VirtualClock {
            origin,
            elapsed_ns: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Virtual time passed since the origin.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed_ns.load(Ordering::Acquire))
    }

    /// Moves time forward by `step` (saturating after about 584 years).
    pub fn advance(&self, step: Duration) {
        let step = u64::try_from(step.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .elapsed_ns
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |ns| {
                Some(ns.saturating_add(step))
            });
    }

    /// Moves time forward to `t`; does nothing if `t` is not later than now.
    pub fn advance_to(&self, t: Instant) {
        let target =
            u64::try_from(t.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_ns.fetch_max(target, Ordering::AcqRel);
    }
}

impl Default for VirtualClock {
    fn default() -> Self {
        VirtualClock::new()
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        let mut elapsed = self.elapsed();
        loop {
            match self.origin.checked_add(elapsed) {
                Some(t) => return t,
                None => elapsed /= 2,
            }
        }
    }

    fn sleep_until(&self, deadline: Instant) {
        self.advance_to(deadline);
    }
}

/// One step of a blocking sender (mpegCoder's `ServeFrameBlock`): schedules the frame at
/// `clock.now()`, sleeps until its release instant, calls `send`, and reports the send time.
/// Returns `send`'s result, or `None` if the pacer dropped the frame (then `send` is not
/// called).
pub fn serve_blocking<C, R, F>(
    pacer: &mut Pacer,
    clock: &C,
    ts: i64,
    is_key: bool,
    send: F,
) -> Option<R>
where
    C: Clock + ?Sized,
    F: FnOnce() -> R,
{
    match pacer.schedule(ts, is_key, clock.now()) {
        Decision::Send(release) => {
            clock.sleep_until(release.at);
            let result = send();
            pacer.released(clock.now());
            Some(result)
        }
        Decision::Drop => None,
    }
}
