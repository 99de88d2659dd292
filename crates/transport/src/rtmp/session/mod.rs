//! The sans-IO publish session ([`PublisherCore`]) and the server status replies it reads.

mod core;
pub(crate) mod status;

#[cfg(test)]
mod tests;

pub use self::core::{PublishEvent, PublishState, PublishStats, PublisherCore};
pub use self::status::ServerStatus;
