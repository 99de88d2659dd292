//! Running a call into rml_rtmp that reads the server's bytes so that a panic in it becomes an
//! error ([`contain`]).
//!
//! rml_rtmp 0.8.0 panics on some malformed input instead of returning an error (see
//! [`super::guard`], which checks the known cases first). [`contain`] is the backstop: the call
//! runs inside [`std::panic::catch_unwind`], and the caller ends the session with an error,
//! since rml_rtmp's state is unusable after a panic.
//!
//! The panic hook: Rust's default hook writes "thread … panicked at …" to stderr for every
//! panic, caught or not, but the rule is one clear error line. A library must not replace the
//! process's hook for good, so the replacement is scoped to the calls: the first of any
//! concurrent [`contain`] calls installs a hook that stays silent for the threads inside a
//! [`contain`] call and hands every other panic to the hook it replaced; the last call to leave
//! puts that hook back. If the application sets a hook of its own meanwhile, that hook is
//! left in place (the swap back happens only while ours is still the current one). Nothing
//! is swapped on a thread that is already panicking (`set_hook` would panic there); such a
//! call still catches, only without silencing.

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
use std::sync::{Arc, Mutex, MutexGuard};

type Hook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

thread_local! {
    /// True while this thread is inside [`contain`].
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// The hook swap shared by every thread.
struct Swap {
    /// [`contain`] calls in progress.
    inside: usize,
    /// The hook that was current when the first of them began.
    previous: Option<Arc<Hook>>,
    /// The address of the hook installed in its place, to tell it from one the application
    /// set meanwhile.
    ours: usize,
}

static SWAP: Mutex<Swap> = Mutex::new(Swap {
    inside: 0,
    previous: None,
    ours: 0,
});

fn swap_state() -> MutexGuard<'static, Swap> {
    // The lock is never held across a call that can panic; recover from poison anyway.
    SWAP.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a hook lives: its data pointer.
fn address(hook: &Hook) -> usize {
    let ptr: *const (dyn Fn(&PanicHookInfo<'_>) + Sync + Send) = &**hook;
    ptr.cast::<u8>() as usize
}

fn enter() {
    let mut swap = swap_state();
    if swap.inside == 0 {
        let previous = Arc::new(panic::take_hook());
        let forward = Arc::clone(&previous);
        let quiet: Hook = Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                (*forward)(info);
            }
        });
        swap.ours = address(&quiet);
        swap.previous = Some(previous);
        panic::set_hook(quiet);
    }
    swap.inside += 1;
}

fn leave() {
    let mut swap = swap_state();
    swap.inside = swap.inside.saturating_sub(1);
    if swap.inside > 0 {
        return;
    }
    let current = panic::take_hook();
    let previous = swap.previous.take();
    if address(&current) != swap.ours {
        // The application replaced our hook: keep its hook.
        panic::set_hook(current);
        return;
    }
    // Dropping ours releases its share of the previous hook, which can then be put back as it
    // was (not wrapped, so that repeated swaps do not nest).
    drop(current);
    if let Some(previous) = previous {
        match Arc::try_unwrap(previous) {
            Ok(hook) => panic::set_hook(hook),
            Err(shared) => panic::set_hook(Box::new(move |info| (*shared)(info))),
        }
    }
}

/// Resets the thread's flag and the hook swap when the call ends, also by unwinding.
struct Inside {
    swapped: bool,
}

impl Drop for Inside {
    fn drop(&mut self) {
        CONTAINED.with(|c| c.set(false));
        if self.swapped {
            leave();
        }
    }
}

/// Runs `f`, returning the panic's message if it panicked (the default panic hook's output is
/// suppressed for it, see the [module docs](self)). `f` must leave nothing that is used after a
/// panic: callers drop or stop using whatever `f` touched.
pub(crate) fn contain<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    // A nested call (not made today) must not end the outer call's silence early.
    if CONTAINED.with(Cell::get) {
        return panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| message(p.as_ref()));
    }
    let swapped = !std::thread::panicking();
    if swapped {
        enter();
    }
    CONTAINED.with(|c| c.set(true));
    let guard = Inside { swapped };
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    drop(guard);
    result.map_err(|p| message(p.as_ref()))
}

/// The text a panic was raised with.
fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_the_hook_is_put_back() {
        let caught = contain(|| -> u32 { panic!("boom {}", 7) });
        assert_eq!(caught, Err("boom 7".to_string()));
        let sliced = contain(|| {
            let v: Vec<u8> = vec![1];
            let n = v.len() + 2;
            v[..n].len()
        });
        assert!(
            sliced.as_ref().is_err_and(|m| m.contains("out of range")),
            "{sliced:?}"
        );
        assert_eq!(contain(|| 5), Ok(5));
        // Nested calls keep the outer call's silence and catch on their own.
        let nested = contain(|| contain(|| -> u8 { panic!("inner") }));
        assert_eq!(nested, Ok(Err("inner".to_string())));
    }
}
