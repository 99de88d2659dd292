//! The Python package `mpegcoder` (module `mpegcoder._native`): mpegCoder's classes
//! `MpegDecoder`, `MpegServer` and `MpegClient` over the facade crate. The binding only
//! converts: Python arguments to facade options, frames to numpy arrays, facade errors to
//! Python exceptions. Every call that can wait runs with the GIL released.
#![forbid(unsafe_code)]
// The Python API keeps mpegCoder's parameter names (framePos, configDict, …): PyO3 takes a
// keyword's name from the Rust parameter's.
#![allow(non_snake_case)]

mod client;
mod convert;
mod decoder;
mod server;

use pyo3::prelude::*;

pyo3::create_exception!(
    mpegcoder,
    MpegError,
    pyo3::exceptions::PyRuntimeError,
    "A decode, encode, publish or pull failure; str(e) is one line naming the problem."
);

/// The package's version.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MpegError", m.py().get_type::<MpegError>())?;
    m.add_class::<decoder::PyDecoder>()?;
    m.add_class::<server::PyServer>()?;
    m.add_class::<client::PyClient>()?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
