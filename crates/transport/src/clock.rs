//! Where the transport crate reads the time. The sans-IO cores never do: their drivers call
//! [`now`] and pass the instant in. It reads tokio's clock, so a test that pauses tokio's time
//! moves the drivers' time with it.

use std::time::Instant;

/// The current instant, for a core.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The unit tests' one clock read: a fixed origin from which they build instants by adding
/// durations (virtual time).
#[cfg(test)]
pub(crate) fn test_origin() -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}
