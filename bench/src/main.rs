//! Publisher benchmarks (see BENCHMARKS.md).
#![forbid(unsafe_code)]

fn main() {}
