//! The sans-IO publish session ([`RtmpPublisherCore`]), the server status replies it reads, and
//! the check of the server's bytes before rml_rtmp reads them (shared with the player).

mod contain;
mod core;
pub(crate) mod guard;
pub(crate) mod status;

#[cfg(test)]
pub(crate) mod guard_tests;
#[cfg(test)]
mod tests;

pub use self::core::{PublishEvent, PublishState, PublishStats, RtmpPublisherCore};
pub use self::status::{RefusedStep, ServerRefusal, ServerStatus};
