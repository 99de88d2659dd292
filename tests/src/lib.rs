//! Harness for protocol tests: fixtures, checksums and real servers on loopback.
#![forbid(unsafe_code)]
