//! The sans-IO publish session ([`RtmpPublisherCore`]) and the server status replies it reads.

mod core;
pub(crate) mod status;

#[cfg(test)]
mod tests;

pub use self::core::{PublishEvent, PublishState, PublishStats, RtmpPublisherCore};
pub use self::status::{RefusedStep, ServerRefusal, ServerStatus};
