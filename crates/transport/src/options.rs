//! What is wrong with an option, for every options struct of the crate.

use std::time::Duration;

/// An option value that cannot work, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{option} {problem}")]
pub struct InvalidOption {
    /// The option's name, as the field is called.
    pub option: &'static str,
    /// What is wrong, as a predicate: `must not be zero`.
    pub problem: String,
}

impl InvalidOption {
    /// `option` with `problem`.
    pub fn new(option: &'static str, problem: impl Into<String>) -> InvalidOption {
        InvalidOption {
            option,
            problem: problem.into(),
        }
    }
}

/// Refuses the first zero duration among `(name, value)` pairs: a zero timeout would fail
/// every step at once.
pub(crate) fn nonzero_durations(limits: &[(&'static str, Duration)]) -> Result<(), InvalidOption> {
    match limits.iter().find(|(_, d)| d.is_zero()) {
        Some((name, _)) => Err(InvalidOption::new(name, "must not be zero")),
        None => Ok(()),
    }
}
